"""Tests of the training engine: the loops, the callbacks and the batched inference path (CPU, tiny data)."""

from __future__ import annotations

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from labelclean import _progress
from labelclean._engine import (
    Callback,
    EarlyStopping,
    Feed,
    History,
    LearningRate,
    Progress,
    StepOut,
    fit_epochs,
    run_epoch,
    supervised,
)


def setup(n: int = 40):
    torch.manual_seed(0)
    net = torch.nn.Linear(3, 2)
    X, y = torch.randn(n, 3), torch.randint(0, 2, (n,))
    feed = Feed(X, torch.device("cpu"), torch.Generator().manual_seed(0))
    optimizer = torch.optim.SGD(net.parameters(), lr=0.1)
    ce = lambda logits, yb: (F.cross_entropy(logits[0], yb), {"share": 0.5})  # noqa: E731
    return net, feed, y, optimizer, ce


def test_run_epoch_reports_batch_weighted_means_and_calls_the_hooks_in_order():
    net, feed, y, optimizer, ce = setup()
    calls = []

    class Spy(Callback):
        def on_pass_start(self):
            calls.append("start")

        def on_step_end(self, meter):
            calls.append(meter.seen)

        def on_pass_end(self, means):
            calls.append(sorted(means))

    means = run_epoch(supervised([net], ce, feed, y), feed.shuffled(40, 16), optimizer, [net], [Spy()])
    assert calls == ["start", 16, 32, 40, ["loss", "share"]]
    assert means["share"] == pytest.approx(0.5) and np.isfinite(means["loss"])
    assert net.training


def test_run_epoch_stops_on_a_diverged_loss():
    net, feed, y, optimizer, _ = setup()
    nan = lambda logits, yb: (logits[0].sum() * float("nan"), {})  # noqa: E731
    with pytest.raises(ValueError, match="training diverged"):
        run_epoch(supervised([net], nan, feed, y), feed.shuffled(40, 16), optimizer, [net])


def test_feed_shuffles_rows_and_keeps_the_random_stream():
    _, feed, _, _, _ = setup()
    rows = torch.tensor([5, 7, 9, 11, 13])
    got = torch.cat(list(feed.shuffled(rows, 2)))
    assert sorted(got.tolist()) == rows.tolist()
    assert [len(b) for b in feed.shuffled(5, 2)] == [2, 3]  # a last batch of one row is merged


def test_fit_epochs_records_history_sets_the_learning_rate_and_stops_early():
    net, feed, y, optimizer, ce = setup()
    history, lrs, scores = [], [], iter([0.5, 0.7, 0.6, 0.6, 0.9])
    best = {}

    def score():
        value = next(scores)
        if value == 0.7:
            best.update({k: v.clone() for k, v in net.state_dict().items()})
        return value

    class Seen(Callback):
        def on_epoch_start(self, epoch):
            lrs.append(optimizer.param_groups[0]["lr"])

    callbacks = [
        LearningRate(optimizer, lambda e: 0.1 / (1 + e)),
        Seen(),
        EarlyStopping(net, score, patience=2, key="acc"),
        Progress(feed.device),
        History(history, lambda e: {"phase": "demo", "round": e}),
    ]
    events = []
    with _progress.reporting(events.append):
        fit_epochs(
            10,
            lambda e: run_epoch(supervised([net], ce, feed, y), feed.shuffled(40, 16), optimizer, [net], callbacks),
            callbacks,
            phase="demo",
            steps=3,
        )
    assert [h["epoch"] for h in history] == [0, 1, 2, 3]  # two epochs without a better score after epoch 1
    assert list(history[0]) == ["phase", "round", "epoch", "loss", "share", "acc", "seconds"]
    assert lrs == pytest.approx([0.1 / (1 + e) for e in range(4)])  # read after LearningRate set it
    for k, v in net.state_dict().items():  # the best epoch's weights are back
        torch.testing.assert_close(v, best[k])
    assert events[-1].kind == "end" and events[-1].total == events[-1].done == 4 * 3


def test_a_step_may_sum_on_the_host_and_show_other_rows():
    net, feed, y, optimizer, _ = setup()

    def step(idx):
        loss = F.cross_entropy(net(feed.x(idx)), feed.take(y, idx))
        return StepOut(loss, {"loss": float(loss.detach()) * len(idx)}, len(idx), shown=2 * len(idx))

    events = []
    with _progress.reporting(events.append), _progress.phase("host", 3):
        means = run_epoch(step, feed.shuffled(40, 16), optimizer, [net], [Progress(feed.device)])
    assert isinstance(means["loss"], float)
    assert events[-1].rows == 80
