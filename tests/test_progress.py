"""Progress of the fits (labelclean/_progress.py): phases with their totals, reported by the training loops."""

from __future__ import annotations

import math
import time
from collections import defaultdict

import numpy as np
import pytest

from labelclean import _progress
from labelclean._train import steps_per_epoch
from labelclean.coteaching import CoTeachingFilter
from labelclean.self_training import NoisyStudent, Relabel, SelfTrainer
from tests.helpers import noisy_binary as data


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


def test_coteaching_reports_its_phases_with_totals_and_gives_the_same_result():
    X, y = data()
    params = dict(estimator="network", max_epochs=2, hidden_dims=(16,), random_state=0)
    quiet = CoTeachingFilter(**params).fit(X, y)
    est = CoTeachingFilter(**params)
    phases = record(lambda: est.fit(X, y))
    assert list(phases) == ["warm-up", "co-teaching", "refinement"]
    assert list(est.phase_seconds_) == list(phases) == list(quiet.phase_seconds_)  # timed with or without listener
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
    assert list(phases) == ["cross-fitting", "final models"] == list(est.phase_seconds_)
    folds = phases["cross-fitting"]
    check_phase(folds)
    assert folds[0].total == 6 and folds[0].unit == "folds"
    assert phases["final models"][0].unit == "fits" and phases["final models"][-1].done == len(est.estimators_)


def test_selftrainer_reports_teacher_and_students_and_gives_the_same_result():
    X, y = data()
    y_semi = y.copy()
    y_semi[80:] = -1
    params = dict(
        estimator="network", strategy=NoisyStudent(max_iter=2), min_steps=20, hidden_dims=(16,), random_state=0
    )
    quiet = SelfTrainer(**params).fit(X, y_semi)
    est = SelfTrainer(**params)
    phases = record(lambda: est.fit(X, y_semi))
    assert list(phases) == ["teacher", "student 1", "student 2"][: 1 + est.n_iter_] and est.n_iter_ >= 1
    assert list(est.phase_seconds_) == list(phases)
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
        strategy=Relabel(max_iter=0, patience=1, max_teacher_epochs=30), min_steps=1, hidden_dims=(16,), random_state=0
    )
    phases = record(lambda: est.fit(X, y))
    assert list(phases) == ["teacher, fold 1/2", "teacher, fold 2/2"] == list(est.phase_seconds_)
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
    pu = PUClassifier(estimator="network", method="nnpu", prior=0.5, max_epochs=2, hidden_dims=(16,), random_state=0)
    phases = record(lambda: pu.fit(X, s))
    assert list(phases) == ["nnPU"] == list(pu.phase_seconds_)
    check_phase(phases["nnPU"])
    enc = ContrastiveEncoder(max_epochs=2, n_components=4, random_state=0)
    phases = record(lambda: enc.fit(X))
    assert list(phases) == ["contrastive"] == list(enc.phase_seconds_)
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


# ---------------------------------------------------------------------------
# Timing: the seconds of the phases (what every fit keeps as phase_seconds_)
# ---------------------------------------------------------------------------


def test_timing_keeps_the_outermost_phases_in_order_and_adds_up_repeats():
    t0 = time.perf_counter()
    with _progress.timing() as seconds:
        with _progress.phase("first", 1):
            with _progress.phase("inside first", 1):  # counted toward "first"
                time.sleep(0.01)
        with _progress.phase("second", 1):
            pass
        with _progress.phase("first", 1):  # runs again: adds up
            time.sleep(0.01)
    wall = time.perf_counter() - t0
    assert list(seconds) == ["first", "second"]
    assert seconds["first"] >= 0.02 and seconds["second"] >= 0
    assert sum(seconds.values()) <= wall


def test_timing_needs_no_listener_and_leaves_progress_as_it_was():
    with _progress.timing() as seconds, _progress.phase("alone", 5):
        assert not _progress.listening() and _progress.beat() is None
        _progress.advance(3, rows=10, loss=1.0)
        _progress.skip(2)
    assert list(seconds) == ["alone"]
    events = []
    with _progress.reporting(events.append), _progress.timing() as timed:
        with _progress.phase("outer", 1):
            with _progress.phase("inner", 2):
                _progress.advance(2)
            _progress.advance(1)
    assert [(e.phase, e.kind, e.done) for e in events] == [
        ("outer", "start", 0),
        ("inner", "start", 0),
        ("inner", "advance", 2),
        ("inner", "end", 2),
        ("outer", "advance", 1),
        ("outer", "end", 1),
    ]
    assert list(timed) == ["outer"]


def test_a_failed_phase_is_timed_and_reported_as_before():
    events = []
    with _progress.reporting(events.append), _progress.timing() as seconds:
        with pytest.raises(RuntimeError), _progress.phase("broken", 3):
            raise RuntimeError("stop")
        _progress.advance(1)  # the failed phase is closed: ignored
        with _progress.phase("after", 1):
            pass
    assert list(seconds) == ["broken", "after"]
    assert [(e.phase, e.kind) for e in events] == [("broken", "start"), ("after", "start"), ("after", "end")]


def test_nested_timing_blocks_each_see_their_own_outermost_phases():
    with _progress.timing() as outer:
        with _progress.phase("teacher", 1), _progress.timing() as inner:  # an estimator fitted inside a phase
            with _progress.phase("co-teaching", 1):
                pass
        with _progress.timing() as alongside, _progress.phase("contrastive", 1):  # one fitted between phases
            pass
    assert list(inner) == ["co-teaching"] and list(alongside) == ["contrastive"]
    assert list(outer) == ["teacher", "contrastive"]  # the inner phase counts toward "teacher"
    assert outer["teacher"] >= inner["co-teaching"]
