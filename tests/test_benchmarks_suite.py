"""The pure pieces of the benchmark suite (``python -m benchmarks``): no MNIST, no training."""

from __future__ import annotations

import math

import numpy as np
import pytest

from benchmarks import tables, throughput
from benchmarks.tables import BEGIN, CLEANLAB, CT, CT_MLP, END, PLAIN, PU


def test_median_spread_ignores_missing_values():
    assert tables.median_spread([3.0, 1.0, 2.0, None, math.nan]) == (2.0, 1.0, 3.0)
    med, lo, hi = tables.median_spread([])
    assert math.isnan(med) and math.isnan(lo) and math.isnan(hi)


def test_fmt_shows_the_spread_only_for_several_distinct_values():
    assert tables.fmt([0.9870]) == "0.99"
    assert tables.fmt([0.987, 0.985, 0.990], scale=100) == "98.70 (98.50–99.00)"
    assert tables.fmt([1.0, 1.0001], digits=2) == "1.00"  # equal after rounding: no spread
    assert tables.fmt([], digits=2) == "—"
    assert tables.fmt([1234.4], digits=0, thousands=True) == "1,234"


def test_render_table_aligns_and_escapes_pipes():
    text = tables.render_table(["a", "b", "c"], [["x", "|e|", "1"]])
    assert text.splitlines() == ["| a | b | c |", "| --- | --- | ---: |", "| x | \\|e\\| | 1 |"]


def test_targets_are_judged_on_the_median():
    t = tables.target_for("noisy", "sym50", CT, "accuracy")
    assert t is not None and t.text() == "≥ 98.8 %"
    assert tables.target_cell("noisy", "sym50", CT, "accuracy", [0.99, 0.98, 0.989]) == "≥ 98.8 % ✓"
    assert tables.target_cell("noisy", "sym50", CT, "accuracy", [0.99, 0.98, 0.97]).endswith("✗")
    assert tables.target_cell("noisy", "sym50", PLAIN, "accuracy", [0.99]) == ""  # no target for the baseline
    prior = tables.target_for("pu", "even_odd", PU, "prior_error")
    assert prior.met(0.019) and not prior.met(0.021) and not prior.met(math.nan)


def test_budget_mark_uses_the_slowest_seed_of_our_estimators():
    ours = [{"ours": True, "seconds": 200.0}, {"ours": True, "seconds": 310.0}]
    assert tables.budget_cell(ours) == "✗"
    assert tables.budget_cell(ours[:1]) == "✓"
    assert tables.budget_cell([{"ours": False, "seconds": 1000.0}]) == "—"


def test_summary_counts_a_target_only_within_the_time_budget():
    rec = {"section": "semi", "setting": "relabel80", "method": "SelfTrainer", "seed": 0, "ours": True}
    fast = {"semi": {"records": [{**rec, "accuracy": 0.976, "seconds": 290.0}]}}
    slow = {"semi": {"records": [{**rec, "accuracy": 0.976, "seconds": 348.0}]}}
    row = next(line for line in tables.summary_table(fast).splitlines() if "relabel" in line)
    assert row.rstrip(" |").endswith("✓")
    row = next(line for line in tables.summary_table(slow).splitlines() if "relabel" in line)
    assert "✗ (figure reached, but a fit took 348 s > 300 s)" in row


def test_busy_fits_are_marked_and_explained():
    quiet = {
        "setting": "s",
        "method": "m",
        "seed": 0,
        "threads": 2,
        "seconds": 10.0,
        "loadavg_before_after": [1.9, 2.4],
    }
    loaded = {**quiet, "loadavg_before_after": [2.1, 4.2]}
    assert not tables.busy(quiet) and tables.busy(loaded)
    assert tables._secs([quiet]) == "10" and tables._secs([loaded]) == "10 †"
    assert "† Other work shared the cores" in tables._footnotes([loaded])
    assert tables._footnotes([quiet]) == ""


def _rec(setting, method, seed=0, **kw):
    return {"section": "x", "setting": setting, "method": method, "seed": seed, "ours": method in (CT, CT_MLP), **kw}


def test_speed_metrics_pair_each_seed():
    records = [
        _rec("sym50", CT_MLP, 0, seconds=10.0, accuracy=0.98, f1=0.99, train_flops=2e12, train_seconds=8.0),
        _rec("sym50", CLEANLAB, 0, seconds=40.0, accuracy=0.96, f1=0.95),
        _rec("sym50", CT_MLP, 1, seconds=12.0, accuracy=0.97, f1=0.98, train_flops=2e12, train_seconds=10.0),
        _rec("sym50", CLEANLAB, 1, seconds=30.0, accuracy=0.97, f1=0.96),
        _rec("sym50", CLEANLAB, 2, error="boom"),
    ]
    m = tables.speed_metrics(records, matmul_gflops=500.0)
    assert m[("sym50", tables.SPEED_PAIR, "time_ratio")] == pytest.approx([0.25, 0.4])
    assert m[("sym50", tables.SPEED_PAIR, "accuracy_gain")] == pytest.approx([2.0, 0.0])
    assert m[("sym50", CT_MLP, "utilisation")] == pytest.approx([0.5, 0.4])  # 250 and 200 GFLOP/s of 500


def test_flop_count_of_the_default_mlp():
    layers = throughput.mlp_layers(784, (256, 256), 10)
    assert layers == [(784, 256), (256, 256), (256, 10)]
    forward = 2 * (784 * 256 + 256 * 256 + 256 * 10)
    assert throughput.forward_flops_per_row(layers) == forward
    # forward + weight gradients of all layers + input gradients of all layers but the first
    train = 2 * forward + 2 * (256 * 256 + 256 * 10)
    assert throughput.train_flops_per_row(layers) == train
    history = [
        {"phase": "warmup", "epoch": 0, "oof_disagreement": 0.5, "seconds": 1.0},
        {"phase": "coteaching", "epoch": 0, "seconds": 2.0},
        {"phase": "refine", "epoch": 0, "seconds": 2.0},
    ]
    counted = throughput.rows_from_history(history, n_rows=1000, n_nets=2)
    # warm-up: each of 2 nets trains on 500 rows and predicts the other 500; then 2 nets × 1000 rows twice
    assert counted == {"trained": 5000.0, "predicted": 1000.0, "seconds": 5.0, "epochs": 3.0}
    assert throughput.training_flops(layers, 5000, 1000) == 5000 * train + 1000 * forward
    assert throughput.final_network_epochs(history) == 2


def test_linear_fit_and_growth_exponent():
    fit = throughput.linear_fit([15_000, 30_000, 60_000], [20.0, 35.0, 65.0])
    assert fit["seconds_per_1k_rows"] == pytest.approx(1.0)
    assert fit["intercept_s"] == pytest.approx(5.0)
    assert fit["r2"] == pytest.approx(1.0)
    assert fit["exponent"] < 1.0  # a fixed cost makes growth sub-linear
    assert throughput.loglog_slope([1, 2, 4], [1, 4, 16]) == pytest.approx(2.0)


DOC = """# Benchmarks

Intro paragraph.

Contents: [a](#a)

<a id="a"></a>
## A section of somebody else

Its text | with a pipe.
"""


def test_replace_region_inserts_after_the_intro_then_replaces_in_place(tmp_path):
    doc = tmp_path / "benchmarks.md"
    doc.write_text(DOC)
    first = tables.replace_region(doc.read_text(), "table one")
    assert first.index("Intro paragraph") < first.index(BEGIN) < first.index(END) < first.index('<a id="a">')
    assert first.replace(f"{BEGIN}\ntable one\n{END}\n\n", "") == DOC  # nothing else touched
    doc.write_text(first + "\nAppended by another engineer.\n")
    second = tables.replace_region(doc.read_text(), "table two")
    assert "table one" not in second and "table two" in second
    assert second.endswith("Appended by another engineer.\n")
    assert second.count(BEGIN) == 1 and second.count(END) == 1


def test_replace_region_appends_without_headings_and_refuses_half_markers():
    assert tables.replace_region("# T\n\ntext\n", "body").endswith(f"{BEGIN}\nbody\n{END}\n")
    with pytest.raises(ValueError, match="only one of the markers"):
        tables.replace_region(f"# T\n{BEGIN}\n", "body")


def test_render_suite_labels_quick_runs_and_marks_targets():
    machine = {"cpu": "Test CPU", "cores": 2, "ram_gib": 8.0, "torch_threads": 2, "versions": {"torch": "x"}}
    section = {
        "section": "pu",
        "mode": "quick",
        "date": "2026-01-01",
        "minutes": 1.0,
        "loadavg": [0.1, 0.2],
        "machine": machine,
        "args": {"seeds": [0], "rows": 6000},
        "command": "python -m benchmarks --quick",
        "records": [
            {**_rec("even_odd", PU), "ours": True, "accuracy": 0.98, "prior": 0.5, "true_prior": 0.49,
             "prior_error": 0.01, "seconds": 10.0, "peak_mb": 900.0},
        ],
    }  # fmt: skip
    text = tables.render_suite({"pu": section})
    assert "QUICK SMOKE RUN" in text and "6,000 training rows" in text
    assert "| 98.00 | ≥ 97.5 % ✓ |" in text
    assert "| PU even/odd: \\|prior estimate − true prior\\| | PUClassifier | — | ≤ 0.02 | 0.010 | ✓ |" in text
    assert "| 100 labels | SelfTrainer | 81.5 (same) | ≥ 95.0 % | not run |  |" in text  # other sections: no mark
    section["records"][0] = {**_rec("even_odd", PU), "error": "boom"}
    assert "| ≥ 97.5 % | no result | ✗ |" in tables.render_suite({"pu": section})  # ran and failed: ✗
    assert "Test CPU, 2 cores" in text


def test_skorch_peer_trains_when_the_last_batch_would_hold_one_row():
    # Batch norm cannot train on one row: the peer failed inside SelfTrainingClassifier at 1,000 labels when a
    # round's rows left one over a multiple of the batch size; it now skips that row for the epoch.
    pytest.importorskip("skorch")
    from benchmarks.peers import BATCH_SIZE, skorch_mlp

    rng = np.random.default_rng(0)
    X = rng.normal(size=(BATCH_SIZE + 1, 6)).astype(np.float32)
    y = (X[:, 0] > 0).astype(np.int64)
    model = skorch_mlp(6, 2, epochs=2, seed=0).fit(X, y)
    assert model[-1].iterator_train__drop_last
    assert model.predict_proba(X).shape == (BATCH_SIZE + 1, 2)


def test_cleanlab_peer_trains_with_the_batch_and_lr_of_coteachings_mlp():
    pytest.importorskip("skorch")
    from benchmarks import peers, tasks

    assert tasks.ct_mlp_batch(60_000) == (512, pytest.approx(4e-3))
    assert tasks.ct_mlp_batch(1_000) == (128, pytest.approx(1e-3))
    net = peers.skorch_mlp(784, 10, epochs=1, seed=0, batch_size=512, lr=4e-3)[-1]
    assert (net.batch_size, net.lr) == (512, 4e-3)


def test_benchmarks_use_the_public_api_only():
    """No file under benchmarks/ imports a private module or a private name of the package."""
    import re
    from pathlib import Path

    root = Path(__file__).resolve().parents[1] / "benchmarks"
    private = re.compile(r"labelclean\._\w+|from labelclean(?:\.\w+)* import [^\n]*\b_\w+")
    found = [f"{p.name}: {m.group(0)}" for p in sorted(root.glob("*.py")) for m in private.finditer(p.read_text())]
    assert not found, found


def test_backbone_benchmark_refuses_an_unknown_backbone(capsys):
    from benchmarks.bench_backbones import main

    with pytest.raises(SystemExit):
        main(["--backbones", "resnet,vgg"])
    assert "unknown backbones ['vgg']" in capsys.readouterr().err
