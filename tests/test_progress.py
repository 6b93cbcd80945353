"""Progress of the fits: phases with their totals, reported by the training loops; the CLI's displays."""

from __future__ import annotations

import json
import math
import os
import re
import subprocess
import sys
from collections import defaultdict

import numpy as np
import pytest

from labelclean import _progress
from labelclean._train import steps_per_epoch
from labelclean.coteaching import CoTeachingFilter
from labelclean.self_training import SelfTrainer
from tests.helpers import embedding_table, write


def record(fit):
    """Run ``fit()`` with a recording listener; the events, grouped by phase in the order phases started."""
    events: list[_progress.Event] = []
    with _progress.reporting(events.append):
        fit()
    phases: dict[str, list[_progress.Event]] = defaultdict(list)
    for e in events:
        phases[e.phase].append(e)
    return dict(phases)


def check_phase(events: list[_progress.Event]) -> None:
    """A phase starts with its total, its steps add up to that total, and it ends there."""
    start, end = events[0], events[-1]
    assert start.kind == "start" and start.done == 0 and start.total > 0
    assert end.kind == "end" and end.done == end.total
    assert sum(e.steps for e in events) == end.total
    assert [e.kind for e in events[1:-1]] == ["advance"] * (len(events) - 2)
    dones = [e.done for e in events]
    assert dones == sorted(dones)
    losses = [e.loss for e in events if e.loss is not None]
    assert losses and all(math.isfinite(v) for v in losses)


def data(n=240, seed=0):
    rng = np.random.default_rng(seed)
    y = rng.integers(0, 2, n)
    X = (rng.normal(0, 1, (n, 6)) + 2.0 * y[:, None]).astype(np.float32)
    flip = rng.random(n) < 0.1
    return X, np.where(flip, 1 - y, y)


def test_coteaching_reports_its_phases_with_totals_and_gives_the_same_result():
    X, y = data()
    params = dict(estimator="network", max_epochs=2, hidden_dims=(16,), random_state=0)
    quiet = CoTeachingFilter(**params).fit(X, y)
    est = CoTeachingFilter(**params)
    phases = record(lambda: est.fit(X, y))
    assert list(phases) == ["warm-up", "co-teaching", "refinement"]
    for events in phases.values():
        check_phase(events)
    steps = steps_per_epoch(len(y), est.batch_size_)
    assert phases["co-teaching"][0].total == 2 * steps
    assert phases["refinement"][0].total == est.refine_epochs_ * steps
    assert phases["co-teaching"][-1].rows == 2 * len(y)
    assert phases["co-teaching"][-1].loss == pytest.approx(est.history_[-1 - est.refine_epochs_]["loss"])
    # listening changes nothing: same random stream, same training order
    np.testing.assert_array_equal(est.clean_mask_, quiet.clean_mask_)
    np.testing.assert_array_equal(est.pseudo_labels_, quiet.pseudo_labels_)
    np.testing.assert_array_equal(est.label_quality_, quiet.label_quality_)
    assert [h["loss"] for h in est.history_] == [h["loss"] for h in quiet.history_]


def test_a_heartbeat_within_each_epoch(monkeypatch):
    monkeypatch.setattr(_progress, "INTERVAL", 0.0)  # a report after every step
    X, y = data()
    est = CoTeachingFilter(estimator="network", max_epochs=2, forget_rate=0.1, refine_epochs=0, hidden_dims=(16,))
    phases = record(lambda: est.set_params(random_state=0).fit(X, y))
    assert list(phases) == ["co-teaching"]
    events = phases["co-teaching"]
    check_phase(events)
    assert events[0].total > 2  # more steps than epochs, so the bar moves within an epoch
    assert sum(e.steps == 1 for e in events) == events[0].total


def test_table_path_reports_folds_of_every_round():
    X, y = data(150)
    est = CoTeachingFilter(n_folds=3, n_rounds=2, random_state=0)
    phases = record(lambda: est.fit(X, y))
    assert list(phases) == ["cross-fitting", "final models"]
    folds = phases["cross-fitting"]
    check_phase(folds)
    assert folds[0].total == 6 and folds[0].unit == "folds"
    assert phases["final models"][0].unit == "fits" and phases["final models"][-1].done == len(est.estimators_)


def test_selftrainer_reports_teacher_and_students_and_gives_the_same_result():
    X, y = data()
    y_semi = y.copy()
    y_semi[80:] = -1
    params = dict(estimator="network", max_iter=2, min_steps=20, hidden_dims=(16,), random_state=0)
    quiet = SelfTrainer(**params).fit(X, y_semi)
    est = SelfTrainer(**params)
    phases = record(lambda: est.fit(X, y_semi))
    assert list(phases) == ["teacher", "student 1", "student 2"][: 1 + est.n_iter_] and est.n_iter_ >= 1
    for events in phases.values():
        check_phase(events)
    teacher_epochs = sum(h["phase"] == "teacher" for h in est.history_)
    assert phases["teacher"][0].total == teacher_epochs * steps_per_epoch(80, est.batch_size)
    np.testing.assert_array_equal(est.pseudo_labels_, quiet.pseudo_labels_)
    np.testing.assert_array_equal(est.label_quality_, quiet.label_quality_)
    np.testing.assert_array_equal(est.clean_mask_, quiet.clean_mask_)


def test_an_early_stop_lowers_the_total():
    X, y = data(160)
    est = SelfTrainer(
        relabel=True, max_iter=0, patience=1, max_teacher_epochs=30, min_steps=1, hidden_dims=(16,), random_state=0
    )
    phases = record(lambda: est.fit(X, y))
    assert list(phases) == ["teacher, fold 1/2", "teacher, fold 2/2"]
    for name, events in phases.items():
        check_phase(events)
        fold = int(name[-3]) - 1
        epochs = sum(h["phase"] == "teacher" and h.get("fold") == fold for h in est.history_)
        assert epochs < 30  # stopped early ...
        steps = steps_per_epoch(events[-1].rows // epochs, est.batch_size)
        assert events[0].total == 30 * steps  # ... after announcing max_teacher_epochs
        assert events[-1].done == events[-1].total == epochs * steps  # the total lowered to what ran


def test_pu_and_contrastive_report_their_phases():
    from labelclean.contrastive import ContrastiveEncoder
    from labelclean.pu import PUClassifier

    X, y = data()
    s = np.where((y == 1) & (np.arange(len(y)) % 2 == 0), 1, 0)
    phases = record(
        lambda: PUClassifier(
            estimator="network", method="nnpu", prior=0.5, max_epochs=2, hidden_dims=(16,), random_state=0
        ).fit(X, s)
    )
    assert list(phases) == ["nnPU"]
    check_phase(phases["nnPU"])
    enc = ContrastiveEncoder(max_epochs=2, n_components=4, random_state=0)
    phases = record(lambda: enc.fit(X))
    assert list(phases) == ["contrastive"]
    check_phase(phases["contrastive"])
    assert phases["contrastive"][0].total == 2 * steps_per_epoch(len(X), enc.batch_size)


def test_nothing_listens_nothing_happens():
    assert not _progress.listening() and _progress.beat() is None
    _progress.advance(3, rows=10, loss=1.0)
    _progress.skip(2)
    with _progress.phase("alone", 5):
        assert _progress.beat() is None


def test_phases_nest_and_a_failed_phase_reports_no_end():
    events = []
    with _progress.reporting(events.append):
        with _progress.phase("outer", 1, unit="fits"):
            with _progress.phase("inner", 2):
                _progress.advance(2, rows=4, loss=0.5)
            _progress.advance(1)
        with pytest.raises(RuntimeError), _progress.phase("broken", 3):
            raise RuntimeError("stop")
        _progress.advance(1)  # no phase open any more: ignored
    kinds = [(e.phase, e.kind, e.done) for e in events]
    assert kinds == [
        ("outer", "start", 0),
        ("inner", "start", 0),
        ("inner", "advance", 2),
        ("inner", "end", 2),
        ("outer", "advance", 1),
        ("outer", "end", 1),
        ("broken", "start", 0),
    ]


def test_a_plain_progress_function_gets_one_stage_per_phase():
    from labelclean.api import _report_phases

    calls = []
    X, y = data(120)
    with _report_phases(lambda stage, done, total: calls.append((stage, done, total))):
        CoTeachingFilter(estimator="network", max_epochs=1, forget_rate=0.1, refine_epochs=0).fit(X, y)
    assert calls[0] == ("training: co-teaching", 0, calls[-1][2]) and calls[-1][1] == calls[-1][2] > 0


def test_progress_log_lines():
    from labelclean.cli._common import ProgressLog

    lines = []
    log = ProgressLog()
    log._line = lambda *parts: lines.append(", ".join(p for p in parts if p))
    log.every = 0.0
    base = dict(phase="co-teaching", total=200, unit="steps", steps=0, loss=None)
    log.on_event("training", _progress.Event("start", done=0, rows=0, seconds=0.0, **base))
    log.on_event("training", _progress.Event("advance", done=100, rows=5300, seconds=1.0, **{**base, "loss": 0.5}))
    log.on_event("training", _progress.Event("end", done=200, rows=10070, seconds=1.9, **{**base, "loss": 0.412}))
    assert lines == [
        "training: co-teaching 200 steps ...",
        "training: co-teaching 100/200 steps, 1.0 s, 5,300 rows/s, loss 0.500, 1.0 s left",
        "training: co-teaching 200 steps, 1.9 s, 5,300 rows/s, loss 0.412",
    ]


def test_progress_bars_draw_training_phases():
    pytest.importorskip("rich")
    from labelclean.cli._common import ProgressBars

    base = dict(phase="warm-up", total=10, unit="steps", steps=0, rows=0, loss=None, seconds=0.0)
    with ProgressBars() as bars:
        bars("reading", 5, 10)
        bars.on_event("training", _progress.Event("start", done=0, **base))
        bars.on_event("training", _progress.Event("advance", done=4, **{**base, "rows": 400, "seconds": 1.0}))
        task = bars._progress.tasks[bars._tasks["training: warm-up"]]
        assert task.completed == 4 and task.total == 10
        assert task.fields["count"] == "4/10 steps" and task.fields["rate"] == "400 rows/s"
        assert task.fields["left"] == "1.5 s left"
    assert set(bars._tasks) == {"reading", "training: warm-up"}


def cli(tmp_path, *args):
    src = write(embedding_table(120), tmp_path / "small.parquet")
    env = {**os.environ, "PYTHONWARNINGS": "ignore", "OMP_NUM_THREADS": "1"}
    fast = ["--epochs", "2", "--seed", "0", "--param", "hidden_dims=[16]", "--param", "estimator=network"]
    return subprocess.run(
        [sys.executable, "-m", "labelclean", "filter", str(src), *fast, *args],
        capture_output=True,
        text=True,
        env=env,
        timeout=300,
    )


def test_cli_logs_one_line_per_phase_when_stderr_is_not_a_terminal(tmp_path):
    run = cli(tmp_path, "--json")
    assert run.returncode == 0, run.stderr
    assert json.loads(run.stdout)["rows"] == 120  # stdout stays clean JSON
    lines = run.stderr.splitlines()
    starts = dict(re.findall(r"^training: ([\w-]+) ([\d,]+) steps \.\.\.$", run.stderr, re.M))
    ends = dict(
        re.findall(r"^training: ([\w-]+) ([\d,]+) steps, [\d.]+ s, [\d,]+ rows/s, loss [\d.]+$", run.stderr, re.M)
    )
    assert list(starts) == ["warm-up", "co-teaching", "refinement"], run.stderr
    assert ends == starts  # each phase ends at the total it announced
    assert len(lines) == 6, run.stderr


def test_cli_quiet_prints_no_progress(tmp_path):
    run = cli(tmp_path, "--quiet")
    assert run.returncode == 0 and run.stdout == "" and run.stderr == ""


def test_loss_probe_reads_the_running_mean():
    import torch

    from labelclean._train import LossProbe

    assert LossProbe(torch.device("cpu")).read(torch.tensor(6.0), 4) == 1.5
    if not torch.cuda.is_available():
        return
    probe = LossProbe(torch.device("cuda"))
    total = torch.tensor(6.0, device="cuda")
    first = probe.read(total, 4)  # the copy is queued; nothing read yet
    torch.cuda.synchronize()
    assert first is None and probe.read(total * 2, 8) == 1.5  # the arrived copy, one report behind
