"""Tests of the training engine: the loops, the callbacks and the batched inference path (CPU, tiny data)."""

from __future__ import annotations

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from labelclean import _progress
from labelclean._distributed import LOCAL, World
from labelclean._engine import (
    Callback,
    EarlyStopping,
    Feed,
    History,
    LearningRate,
    Progress,
    StepOut,
    fit_epochs,
    predict_own,
    predict_proba,
    run_epoch,
    supervised,
)
from labelclean._train import predict_proba_nets, steps_per_epoch


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


def test_outside_a_job_a_feed_runs_the_networks_on_the_whole_batch_with_its_own_stream():
    net, feed, _, _, _ = setup()
    idx = torch.arange(10)
    assert feed.world is LOCAL and feed.share(idx) is idx and feed._noise is feed.generator
    xb = feed.x(idx)
    torch.testing.assert_close(feed.forward([net, net], xb)[1], net(xb), rtol=0, atol=0)
    assert feed.steps(40, 16) == steps_per_epoch(40, 16) == len(list(feed.shuffled(40, 16)))


def test_in_a_job_a_feed_plans_whole_batches_and_steps_on_its_share():
    """No collective runs here: the plan, the share and the noise are local to each process."""
    X, noise = torch.randn(41, 3), lambda x, g: x + torch.rand(x.shape, generator=g)
    feeds = [Feed(X, torch.device("cpu"), torch.Generator().manual_seed(0), noise, World(r, 2, r)) for r in range(2)]
    plans = [list(f.shuffled(41, 16)) for f in feeds]
    assert [len(b) for b in plans[0]] == [16, 16, 10] and feeds[0].steps(41, 16) == 3  # 41 rows padded to 42
    for a, b in zip(*plans):
        assert torch.equal(a, b)  # every process plans the same batches
        assert torch.equal(torch.cat([feeds[0].share(a), feeds[1].share(a)]), a)
    drawn = [torch.rand(3, generator=f._noise) for f in feeds]
    assert not torch.equal(drawn[0], drawn[1])  # each process draws its own training noise
    plain = Feed(X, torch.device("cpu"), torch.Generator().manual_seed(0), world=World(0, 2, 0))
    one = Feed(X, torch.device("cpu"), torch.Generator().manual_seed(0))
    batches_of = lambda feed: [b.tolist() for b in feed.shuffled(40, 16)]  # noqa: E731
    assert plain._noise is plain.generator and batches_of(plain) == batches_of(one)  # no noise: one process's batches


def test_predicting_outside_a_job_is_the_plain_inference_path():
    net, feed, _, _, _ = setup()
    rows = torch.arange(3, 17)
    own, proba = predict_own([net], feed, rows)
    assert own is rows
    np.testing.assert_array_equal(proba, predict_proba_nets([net], feed.X, feed.device, rows=rows))
    np.testing.assert_array_equal(predict_proba([net], feed), predict_proba_nets([net], feed.X, feed.device))


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
