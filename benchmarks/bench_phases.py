"""Where a fit's time goes: the seconds of each phase, and the split of one training step.

Three measurements, on the CPU, with the estimators' defaults (``random_state`` and
``n_jobs`` aside):

- **phases**: ``CoTeachingFilter`` (20 % of the labels flipped), ``SelfTrainer`` (10 % of
  each class labeled, the rest ``-1``) and ``PUClassifier`` (half of one class labeled
  positive) on one real table (``segment``, read by :mod:`benchmarks.real_data`), on MNIST as
  rows of 784 pixels and on MNIST images, ``--rows`` rows each. Per fit: the wall-clock
  seconds, ``phase_seconds_`` (the seconds of each progress phase, as every estimator records
  them), the time outside every phase, and the seconds of one ``predict_proba`` on the same
  rows (the cost of a pass of inference, which the fits run outside their phases).
- **speed**: the suite's speed setting (``CoTeachingFilter`` defaults on ``--speed-rows``
  MNIST pixel rows, 50 % of the labels flipped): training FLOPs counted analytically
  (:mod:`benchmarks.throughput`) over the seconds of the training epochs, against the float32
  matrix-multiply peak of this machine measured on the same threads
  (:func:`benchmarks.machine.matmul_peak_gflops`).
- **step**: one co-teaching training step of the default MLP (at the speed setting's batch)
  and of the default CNN (images), split with :mod:`torch.profiler` by what ran: forward,
  backward (and their matrix products), the optimizer, data loading, augmentation, the loss
  with its small-loss selection, and the rest (Python between the operators, dispatch, the
  loop's bookkeeping). The
  profiled fits are short ones with the same step (``forget_rate=0.5`` so that no warm-up
  runs, one epoch, no refinement); the profiler's own cost inflates their seconds, so the
  shares, not the milliseconds, are the result.

Two tiny network fits run first, so that torch's one-time set-up is not counted in the first
cell. Every record (with the machine and the load average) goes to ``--out`` (default
``benchmarks/raw/phases_<date>.jsonl``); the run holds the benchmark lock.

Run::

    python -m benchmarks.bench_phases                                 # about 8 minutes on 2 cores
    python -m benchmarks.bench_phases --rows 500 --speed-rows 6000    # a quick look
    python -m benchmarks.bench_phases --doc                           # print the docs section of the newest file
"""

from __future__ import annotations

import argparse
import json
import math
import os
import re
import time
import warnings
from collections import Counter
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from benchmarks.machine import describe, matmul_peak_gflops, usable_cores

REPO = Path(__file__).resolve().parent.parent
RAW = REPO / "benchmarks" / "raw"
ESTIMATORS = ("CoTeachingFilter", "SelfTrainer", "PUClassifier")
DATA = ("table", "pixels", "images")
DATA_NAMES = {"table": "segment (table)", "pixels": "MNIST pixel rows", "images": "MNIST images"}
TABLE = "segment"
NOISE_RATE, LABELED_SHARE, POSITIVE_SHARE = 0.2, 0.1, 0.5
#: Target of the speed issue: the training loop at this share of the measured matmul peak.
UTILISATION_TARGET = 0.70
#: Target of the speed issue: data loading, augmentation and selection under this share of a step.
INPUT_SHARE_TARGET = 0.10


def log(message: str) -> None:
    print(f"[bench_phases {time.strftime('%H:%M:%S')}] {message}", flush=True)


# ---------------------------------------------------------------------------
# Data and labels
# ---------------------------------------------------------------------------


def load_data(kind: str, rows: int, seed: int, data_dir: Path | None) -> tuple[Any, np.ndarray]:
    """Features as a user has them (a DataFrame, pixel rows or images) and labels encoded ``0 .. K-1``."""
    from benchmarks import real_data

    if kind == "table":
        ds = real_data.load_table(TABLE, real_data.resolve_data_dir(data_dir))
        _, y = np.unique(ds.y, return_inverse=True)
        keep = real_data.stratified_sample(y, rows, seed)
        return ds.X.iloc[keep].reset_index(drop=True), y[keep]
    X, y, _, _ = real_data.load_mnist(rows, seed)
    return (X.reshape(len(X), -1) if kind == "pixels" else X), y


def task_labels(estimator: str, kind: str, y: np.ndarray, seed: int) -> np.ndarray:
    """The labels each estimator learns from: flipped, partly unlabeled (``-1``) or positive-unlabeled (1 / 0)."""
    from benchmarks.real_semi import pu_labels, semi_labels
    from labelclean import make_noisy_labels

    if estimator == "CoTeachingFilter":
        return make_noisy_labels(y, NOISE_RATE, random_state=seed)
    if estimator == "SelfTrainer":
        return semi_labels(y, LABELED_SHARE, seed)
    positive = (y % 2 == 0).astype(np.int64) if kind != "table" else (y == np.bincount(y).argmax()).astype(np.int64)
    return pu_labels(positive, 1, POSITIVE_SHARE, seed)


def make_estimator(name: str, seed: int, threads: int, **params: Any) -> Any:
    import labelclean

    return getattr(labelclean, name)(random_state=seed, n_jobs=threads, **params)


# ---------------------------------------------------------------------------
# Measurements
# ---------------------------------------------------------------------------


def fit_phases(estimator: str, kind: str, X: Any, y: np.ndarray, seed: int, threads: int) -> dict:
    """One default fit: its seconds, its ``phase_seconds_`` and one ``predict_proba`` pass over its rows."""
    target = task_labels(estimator, kind, y, seed)
    est = make_estimator(estimator, seed, threads)
    load = os.getloadavg()[0]
    t0 = time.perf_counter()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        est.fit(X, target)
    seconds = time.perf_counter() - t0
    t1 = time.perf_counter()
    est.predict_proba(X)
    predict = time.perf_counter() - t1
    phases = dict(est.phase_seconds_)
    return {
        "kind": "phases",
        "data": kind,
        "rows": len(y),
        "estimator": estimator,
        "backbone": est.backbone_,
        "seconds": seconds,
        "phase_seconds": phases,
        "outside_phases": seconds - sum(phases.values()),
        "predict_seconds": predict,
        "load_before": load,
        "load_after": os.getloadavg()[0],
    }


def fit_speed(rows: int, seed: int, threads: int, peak_gflops: float) -> dict:
    """The suite's speed setting: counted training FLOPs over the training epochs' seconds, against the peak."""
    from torch import nn

    from benchmarks import throughput
    from labelclean import make_noisy_labels

    X, y = load_data("pixels", rows, seed, None)
    y_noisy = make_noisy_labels(y, 0.5, random_state=seed)
    est = make_estimator("CoTeachingFilter", seed, threads)
    load = os.getloadavg()[0]
    t0 = time.perf_counter()
    est.fit(X, y_noisy)
    seconds = time.perf_counter() - t0
    layers = [(m.in_features, m.out_features) for m in est.networks_[0].modules() if isinstance(m, nn.Linear)]
    counted = throughput.rows_from_history(est.history_, len(y), n_nets=len(est.networks_))
    flops = throughput.training_flops(layers, counted["trained"], counted["predicted"])
    loop = counted["seconds"]
    return {
        "kind": "speed",
        "rows": rows,
        "batch_size": int(est.batch_size_),
        "layers": layers,
        "seconds": seconds,
        "phase_seconds": dict(est.phase_seconds_),
        "train_flops": flops,
        "train_seconds": loop,
        "steps": _steps(est.history_, len(y), est.batch_size_),
        "achieved_gflops": flops / loop / 1e9,
        "utilisation": flops / loop / 1e9 / peak_gflops,
        "utilisation_fit": flops / seconds / 1e9 / peak_gflops,
        "load_before": load,
        "load_after": os.getloadavg()[0],
    }


def _steps(history: Sequence[Mapping], n_rows: int, batch_size: int) -> int:
    """Optimizer steps of the co-teaching and refinement epochs (each trains both networks on every row).

    Mini-batches of a pass as the estimators cut them: ``ceil(n / batch)``, a last batch of a
    single row merged into the one before.
    """
    per_epoch = max(1, math.ceil(n_rows / batch_size))
    if per_epoch > 1 and n_rows - (per_epoch - 1) * batch_size < 2:
        per_epoch -= 1
    return per_epoch * sum(1 for h in history if h.get("phase") in ("coteaching", "refine"))


# -- the step profile ---------------------------------------------------------

#: The parts of a training step, in the order the table shows them.
STEP_PARTS = ("forward", "backward", "optimizer", "data loading", "augmentation", "loss & selection", "other")
#: The parts the speed issue wants under 10 % of a step.
INPUT_PARTS = ("data loading", "augmentation", "loss & selection")
#: Functions of the training loop, as ``(file name, function)``: cProfile's keys for the step's parts.
LOOP = {
    "pass": [("_engine.py", "run_epoch")],
    "step": [("_engine.py", "supervised_step")],
    "rows": [("_engine.py", "x")],
    "labels": [("_engine.py", "take")],
    "shuffle": [("_engine.py", "shuffled")],
    "augmentation": [("_train.py", "random_shift"), ("_train.py", "affine_warp")],
    "loss & selection": [("coteaching.py", name) for name in ("coteaching_loss", "coteaching_plus_loss", "jocor_loss")],
    "backward": [("_tensor.py", "backward")],
    "optimizer": [("adam.py", "step"), ("optimizer.py", "zero_grad")],
}
#: Operators whose own time is a matrix product (dense layers, convolutions), forward or backward.
MATMUL_OPS = frozenset(
    {
        "aten::mm",
        "aten::addmm",
        "aten::bmm",
        "aten::mkldnn_convolution",
        "aten::convolution_backward",
        "aten::_slow_conv2d_forward",
        "aten::_slow_conv2d_backward",
        "aten::mkldnn_convolution_backward",
    }
)


def step_split(stats: Mapping[tuple, tuple]) -> dict[str, float]:
    """Seconds of the training passes by :data:`STEP_PARTS`, from cProfile's ``pstats.Stats(...).stats``.

    Forward is the step function's time less the batch's rows and labels and the loss; data
    loading is gathering the rows (less their augmentation), the labels and the shuffle;
    other is what the passes spent outside the step function, the backward pass and the
    optimizer (the loop's bookkeeping, callbacks, Python).
    """
    cumulative: Counter = Counter()
    for (path, _, func), (_, _, _, ct, _) in stats.items():
        cumulative[(Path(path).name, func)] += ct

    def t(key: str) -> float:
        return sum(cumulative.get(k, 0.0) for k in LOOP[key])

    data = t("rows") - t("augmentation") + t("labels") + t("shuffle")
    parts = {
        "forward": t("step") - t("rows") - t("labels") - t("loss & selection"),
        "backward": t("backward"),
        "optimizer": t("optimizer"),
        "data loading": data,
        "augmentation": t("augmentation"),
        "loss & selection": t("loss & selection"),
    }
    parts["other"] = t("pass") - t("step") - t("backward") - t("optimizer") - t("shuffle")
    return parts


def matmul_split(events: Sequence[Any]) -> dict[str, float]:
    """Seconds of the matrix products of training, forward and backward, from :mod:`torch.profiler` events.

    Backward: products under an autograd ``evaluate_function`` record. Forward: the others
    that started before the last optimizer step ended (after it, the fit only predicts).
    """
    last_step = max((e.time_range.end for e in events if e.name.startswith("Optimizer.step")), default=0)
    out = {"forward": 0.0, "backward": 0.0}
    for e in events:
        if e.name not in MATMUL_OPS:
            continue
        above, backward = e.cpu_parent, False
        while above is not None and not backward:
            backward, above = above.name.startswith("autograd::engine::evaluate_function"), above.cpu_parent
        if backward:
            out["backward"] += e.self_cpu_time_total / 1e6
        elif e.time_range.start < last_step:
            out["forward"] += e.self_cpu_time_total / 1e6
    return out


def profile_step(kind: str, rows: int, seed: int, threads: int, batch_size: int | str) -> dict:
    """Short co-teaching fits of one step: timed, under cProfile (the split) and :mod:`torch.profiler` (the products).

    The three fits are the same (``forget_rate=0.5``: no warm-up; two epochs, no refinement),
    so each sees the same steps; the split is of the profiled passes, the matrix products
    are read as seconds of the unprofiled one.
    """
    import cProfile
    import pstats

    from torch.profiler import ProfilerActivity, profile

    from labelclean import make_noisy_labels

    X, y = load_data(kind, rows, seed, None)
    y_noisy = make_noisy_labels(y, NOISE_RATE, random_state=seed)
    params = dict(estimator="network", forget_rate=0.5, max_epochs=2, refine_epochs=0, batch_size=batch_size)

    def fit() -> Any:
        return make_estimator("CoTeachingFilter", seed, threads, **params).fit(X, y_noisy)

    make_estimator("CoTeachingFilter", seed, threads, **params).fit(X[:256], y_noisy[:256])  # threads, caches
    est = fit()
    loop = sum(h["seconds"] for h in est.history_ if h.get("phase") == "coteaching")
    steps = _steps(est.history_, len(y), est.batch_size_)
    profiler = cProfile.Profile()
    profiler.enable()
    fit()
    profiler.disable()
    split = step_split(pstats.Stats(profiler).stats)
    with profile(activities=[ProfilerActivity.CPU]) as prof:
        fit()
    matmul = matmul_split(prof.events())
    return {
        "kind": "step",
        "data": kind,
        "network": "MLP 784-256-256-10" if kind == "pixels" else "CNN (images 1×28×28)",
        "rows": len(y),
        "batch_size": int(est.batch_size_),
        "steps": steps,
        "ms_per_step": 1e3 * loop / steps,
        "profiled_ms_per_step": 1e3 * sum(split.values()) / steps,
        "split_ms_per_step": {k: 1e3 * v / steps for k, v in split.items()},
        "matmul_ms_per_step": {k: 1e3 * v / steps for k, v in matmul.items()},
    }


# ---------------------------------------------------------------------------
# Markdown
# ---------------------------------------------------------------------------


def _group(names_seconds: Mapping[str, float]) -> list[tuple[str, float]]:
    """Phases numbered by round or fold (``student 1`` … ``student 5``) as one entry ``student ×5``."""
    out: dict[str, list[float]] = {}
    for name, seconds in names_seconds.items():
        m = re.fullmatch(r"(.*?),? (?:fold )?\d+(?:/\d+)?", name)
        base = m.group(1) if m else name
        out.setdefault(base, []).append(float(seconds))
    return [(name if len(v) == 1 and name in names_seconds else f"{name} ×{len(v)}", sum(v)) for name, v in out.items()]


def _s(seconds: float) -> str:
    return f"{seconds:.1f}" if seconds < 100 else f"{seconds:,.0f}"


def phases_table(records: Sequence[Mapping]) -> str:
    from benchmarks.tables import render_table

    rows = []
    for r in sorted(records, key=lambda r: (DATA.index(r["data"]), ESTIMATORS.index(r["estimator"]))):
        total = r["seconds"]
        phases = "; ".join(
            f"{name} {_s(s)} ({100 * s / total:.0f} %)" for name, s in _group(r["phase_seconds"])
        )  # fmt: skip
        rows.append(
            [
                DATA_NAMES[r["data"]],
                f"{r['rows']:,}",
                r["estimator"],
                r["backbone"],
                _s(total),
                phases,
                f"{_s(r['outside_phases'])} ({100 * r['outside_phases'] / total:.0f} %)",
                _s(r["predict_seconds"]),
                f"{r['load_before']:.1f}",
            ]
        )
    headers = [
        "data",
        "rows",
        "estimator",
        "path",
        "fit s",
        "phases: seconds (share of the fit)",
        "outside phases s",
        "predict_proba s",
        "load",
    ]
    return render_table(headers, rows, align="lrllrlrrr")


def _mlp_step_flops(batch_size: int, n_nets: int = 2) -> float:
    """Counted FLOPs of one co-teaching step of the default MLP on MNIST pixel rows (:mod:`benchmarks.throughput`)."""
    from benchmarks import throughput

    return n_nets * batch_size * throughput.train_flops_per_row(throughput.mlp_layers(784, (256, 256), 10))


def step_table(records: Sequence[Mapping], peak_gflops: float | None = None) -> str:
    from benchmarks.tables import render_table

    rows = []
    for r in records:
        split, mm = r["split_ms_per_step"], r["matmul_ms_per_step"]
        total = sum(split.values())

        def share(part: str, split=split, total=total) -> str:
            return f"{100 * split.get(part, 0.0) / total:.1f}"

        inputs = sum(split.get(p, 0.0) for p in INPUT_PARTS) / total
        products = mm.get("forward", 0.0) + mm.get("backward", 0.0)
        rate = "—"
        if r["data"] == "pixels" and products > 0:
            gflops = _mlp_step_flops(r["batch_size"]) / (products / 1e3) / 1e9
            rate = f"{gflops:.0f}" + (f" ({100 * gflops / peak_gflops:.0f} %)" if peak_gflops else "")
        rows.append(
            [
                r["network"],
                str(r["batch_size"]),
                f"{r['ms_per_step']:.1f}",
                share("forward"),
                share("backward"),
                share("optimizer"),
                share("data loading"),
                share("augmentation"),
                share("loss & selection"),
                share("other"),
                f"{100 * inputs:.1f} {'✓' if inputs < INPUT_SHARE_TARGET else '✗'}",
                f"{products:.1f} ({100 * products / r['ms_per_step']:.0f} %)",
                rate,
            ]
        )
    headers = [
        "network",
        "batch",
        "ms per step",
        "forward %",
        "backward %",
        "optimizer %",
        "data loading %",
        "augmentation %",
        "loss & selection %",
        "other %",
        f"loading + augmentation + selection % (target < {100 * INPUT_SHARE_TARGET:.0f})",
        "matrix products, ms per step (share of the step)",
        "their GFLOP/s (of the peak)",
    ]
    return render_table(headers, rows, align="lr" + "r" * 11)


def speed_lines(speed: Mapping, machine: Mapping) -> list[str]:
    peak = machine["matmul"]["gflops"]
    ok = "✓" if speed["utilisation"] >= UTILISATION_TARGET else "✗"
    phases = "; ".join(f"{name} {_s(s)}" for name, s in _group(speed["phase_seconds"]))
    return [
        f"- float32 matmul peak: **{peak:.1f} GFLOP/s** on {machine['matmul']['threads']} threads "
        f"({', '.join(f'{n}: {g:.0f}' for n, g in machine['matmul']['by_size'].items())} by matrix side).",
        f"- training loop of `CoTeachingFilter()` on {speed['rows']:,} MNIST pixel rows (MLP, batch "
        f"{speed['batch_size']}, 50 % of the labels flipped): {speed['train_flops'] / 1e12:.2f} TFLOP counted in "
        f"{speed['train_seconds']:.1f} s of training epochs ({1e3 * speed['train_seconds'] / speed['steps']:.1f} ms "
        f"per step) = {speed['achieved_gflops']:.1f} GFLOP/s, **{100 * speed['utilisation']:.1f} % of the peak** "
        f"(target ≥ {100 * UTILISATION_TARGET:.0f} % {ok}); over the whole fit ({speed['seconds']:.1f} s: "
        f"{phases}) {100 * speed['utilisation_fit']:.1f} %.",
    ]


def render(records: Sequence[Mapping], source: str = "") -> str:
    """The docs section: the per-phase table, the speed figures and the step split."""
    machine = next((r for r in records if r["kind"] == "machine"), None)
    phases = [r for r in records if r["kind"] == "phases"]
    steps = [r for r in records if r["kind"] == "step"]
    speed = next((r for r in records if r["kind"] == "speed"), None)
    out = ["### Where the time goes", ""]
    if machine is not None:
        out += [
            f"On {machine['cpu']} ({machine['cores']} cores, torch on {machine['torch_threads']} threads), "
            f"labelclean {machine['labelclean_revision']}, torch {machine['versions']['torch']}; "
            f"`python -m benchmarks.bench_phases`{f' ({source})' if source else ''}. Load: the 1-minute load "
            "average before the fit (the machine is shared; a load above the core count slows every figure).",
            "",
        ]
    if phases:
        out += [
            "Each estimator with its defaults (`random_state=0`): CoTeachingFilter on 20 % flipped labels, "
            "SelfTrainer with 10 % of each class labeled, PUClassifier with half of one class labeled positive "
            "(the table's largest class; even digits on MNIST). Phases: the fit's `phase_seconds_`, named as "
            "its progress bars are (numbered rounds and folds summed: `student ×5`); outside phases: the rest "
            "of the fit (checking the input, the predictions between and after the phases, the detection "
            "rule); predict_proba: one pass of inference over the same rows, after the fit.",
            "",
            phases_table(phases),
            "",
        ]
    if speed is not None and machine is not None:
        out += ["Training loop against the machine's matrix-multiply peak (the suite's speed setting):", ""]
        out += speed_lines(speed, machine) + [""]
    if steps:
        out += [
            "One co-teaching step (both networks on one batch; a short fit with `forget_rate=0.5`, so no warm-up, "
            "two epochs, no refinement). ms per step: the fit's training epochs over its steps, unprofiled. The "
            "shares come from the same fit under cProfile: forward and backward of the networks, the Adam step, "
            "data loading (gathering the batch's rows and labels, the shuffle), augmentation, the loss with its "
            "small-loss selection, and the rest of the loop (its bookkeeping and callbacks); cProfile's own cost "
            "falls on the Python-heavy parts. Matrix products: the own time of the dense-layer and convolution "
            "kernels in forward and backward, from the same fit under `torch.profiler`; their GFLOP/s: the MLP's "
            "counted FLOPs per step over that time.",
            "",
            step_table(steps, machine["matmul"]["gflops"] if machine else None),
            "",
        ]
    return "\n".join(out).rstrip() + "\n"


# ---------------------------------------------------------------------------
# The run
# ---------------------------------------------------------------------------


def warm_up(seed: int, threads: int) -> None:
    """Two tiny network fits (rows and images) first: a process's first network fit also pays torch's one-time set-up.

    That set-up (about a second on 2 cores) is in no phase; without the warm-up it would show
    as time outside the phases of whichever cell runs first.
    """
    rng = np.random.default_rng(seed)
    y = np.arange(64) % 2
    for shape in ((64, 784), (64, 28, 28)):
        est = make_estimator("CoTeachingFilter", seed, threads, estimator="network", max_epochs=1, refine_epochs=0)
        est.fit(rng.random(shape, dtype=np.float32), y)


def newest_raw() -> Path:
    files = sorted(RAW.glob("phases_*.jsonl"))
    if not files:
        raise SystemExit(f"no {RAW}/phases_*.jsonl yet; run `python -m benchmarks.bench_phases` first.")
    return files[-1]


def read_records(path: Path) -> list[dict]:
    """The records of the last run in ``path`` (a run starts with its machine record)."""
    records = [json.loads(line) for line in path.read_text().splitlines() if line.strip()]
    starts = [i for i, r in enumerate(records) if r["kind"] == "machine"]
    return records[starts[-1] :] if starts else records


def run(args: argparse.Namespace, out: Path) -> list[dict]:
    import torch

    from benchmarks.real_suite import bench_lock

    torch.set_num_threads(args.threads)  # the thread count of the matmul peak, fits and profiles alike
    records: list[dict] = []

    def keep(record: dict) -> None:
        records.append(record)
        with out.open("a") as fh:
            fh.write(json.dumps(record) + "\n")

    with bench_lock():
        machine = describe(args.threads, REPO)
        machine.update(
            kind="machine", matmul=matmul_peak_gflops(args.threads), args=vars(args), date=time.strftime("%F")
        )
        keep(machine)
        log(f"matmul peak {machine['matmul']['gflops']:.1f} GFLOP/s on {args.threads} threads")
        warm_up(args.seed, args.threads)
        for kind in args.data:
            X, y = load_data(kind, args.rows, args.seed, args.data_dir)
            for name in args.estimators:
                rec = fit_phases(name, kind, X, y, args.seed, args.threads)
                keep(rec)
                log(f"{kind:6s} {name:16s} {rec['seconds']:6.1f} s  {rec['phase_seconds']}")
        if args.speed_rows:
            rec = fit_speed(args.speed_rows, args.seed, args.threads, machine["matmul"]["gflops"])
            keep(rec)
            log(f"speed: {100 * rec['utilisation']:.1f} % of the matmul peak over the training loop")
        if args.profile:
            mlp_batch = records[-1]["batch_size"] if args.speed_rows else "auto"  # the speed fit's step
            for kind, rows, batch_size in (("pixels", args.profile_rows, mlp_batch), ("images", args.rows, "auto")):
                rec = profile_step(kind, rows, args.seed, args.threads, batch_size)
                keep(rec)
                log(f"step {kind}: {rec['profiled_ms_per_step']:.1f} ms profiled, {rec['split_ms_per_step']}")
    return records


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--rows", type=int, default=2_000, help="rows of each phase fit [2000]")
    parser.add_argument("--speed-rows", type=int, default=60_000, help="MNIST pixel rows of the speed fit; 0: none")
    parser.add_argument("--profile-rows", type=int, default=30_000, help="MNIST pixel rows of the MLP step profile")
    parser.add_argument("--no-profile", dest="profile", action="store_false", help="skip the step profiles")
    parser.add_argument("--data", default=",".join(DATA), help=f"data of the phase fits [{','.join(DATA)}]")
    parser.add_argument("--estimators", default=",".join(ESTIMATORS))
    parser.add_argument("--threads", type=int, default=usable_cores())
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--data-dir", default=None, help="folder holding tabular/ [../shared/data]")
    parser.add_argument("--out", type=Path, default=None, help="JSON-lines file [benchmarks/raw/phases_<date>.jsonl]")
    parser.add_argument("--doc", action="store_true", help="print the docs section of --out (or the newest file)")
    args = parser.parse_args(argv)
    args.data = [d for d in args.data.split(",") if d]
    args.estimators = [e for e in args.estimators.split(",") if e]
    unknown = sorted(set(args.data) - set(DATA)) + sorted(set(args.estimators) - set(ESTIMATORS))
    if unknown:
        parser.error(f"unknown data or estimators {unknown}; use {list(DATA)} and {list(ESTIMATORS)}")
    if args.doc:
        path = args.out or newest_raw()
        print(render(read_records(path), source=f"`{path.relative_to(REPO) if path.is_relative_to(REPO) else path}`"))
        return
    out = args.out or RAW / f"phases_{time.strftime('%Y-%m-%d')}.jsonl"
    out.parent.mkdir(parents=True, exist_ok=True)
    records = run(args, out)
    print(render(records, source=f"`{out.relative_to(REPO) if out.is_relative_to(REPO) else out}`"))


if __name__ == "__main__":
    main()
