"""The training engine: one loop over mini-batches, one loop over epochs, and callbacks for what varies.

An algorithm is a *step function*: ``step(item) -> StepOut`` takes one item of a batch plan
(row indices, or a pair of index sets), runs the forward pass and returns the objective to
minimise with the batch sums of the statistics to report. :func:`run_epoch` is the one loop
over batches: it calls the step, takes the optimizer step and sums the statistics, reading
them back from the device only at the end of the pass. :func:`fit_epochs` is the one loop
over epochs. What varies between estimators is a :class:`Callback`: the learning-rate
schedule (:class:`LearningRate`), moving averages of the weights (:class:`MovingAverage`),
early stopping (:class:`EarlyStopping`), ``history_`` records and verbose lines
(:class:`History`) and progress reporting (:class:`Progress`). A :class:`Feed` moves the rows
of a batch to the device and applies the training noise.

Examples
--------
>>> import torch
>>> net = torch.nn.Linear(3, 2)
>>> optimizer = torch.optim.SGD(net.parameters(), lr=0.1)
>>> feed = Feed(torch.randn(20, 3), torch.device("cpu"), torch.Generator().manual_seed(0))
>>> targets = torch.randint(0, 2, (20,))
>>> ce = lambda logits, y: (torch.nn.functional.cross_entropy(logits[0], y), {})
>>> history = []
>>> callbacks = [LearningRate(optimizer, lambda epoch: 0.1 / (1 + epoch)), History(history, {"phase": "demo"})]
>>> fit_epochs(
...     2,
...     lambda epoch: run_epoch(supervised([net], ce, feed, targets), feed.shuffled(20, 8), optimizer, [net]),
...     callbacks,
...     phase="demo",
...     steps=3,
... )
>>> [(h["phase"], h["epoch"], sorted(h)) for h in history]  # doctest: +NORMALIZE_WHITESPACE
[('demo', 0, ['epoch', 'loss', 'phase', 'seconds']), ('demo', 1, ['epoch', 'loss', 'phase', 'seconds'])]
"""

from __future__ import annotations

import copy
import functools
import time
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass
from typing import Any

import torch
from torch import nn

from . import _progress
from ._data import batches
from ._train import LossProbe, check_finite_loss, set_lr, update_averages

Augment = Callable[[torch.Tensor, torch.Generator], torch.Tensor]


@dataclass(frozen=True)
class StepOut:
    """What a step function returns.

    Attributes
    ----------
    loss : torch.Tensor
        The scalar objective; the loop calls ``backward()`` on it.
    sums : dict
        Batch sums of the statistics to report, ``"loss"`` first (tensors stay on the device,
        floats are summed on the host); the pass reports each sum divided by the rows seen.
    rows : int
        Rows the sums are over.
    shown : int or None
        Rows reported to a progress listener for this step (default ``rows``).
    """

    loss: torch.Tensor
    sums: dict[str, Any]
    rows: int
    shown: int | None = None


@dataclass(frozen=True)
class Feed:
    """Where the batches come from: rows on the host, the device they go to, the random stream, training noise.

    Attributes
    ----------
    X : torch.Tensor
        All rows, on the host; batches are gathered from it (no copy of ``X`` is made).
    device : torch.device
    generator : torch.Generator
        Draws the shuffles and the noise (on the CPU, so results do not depend on the device).
    augment : callable or None
        ``augment(x, generator)`` applied to every input batch of :meth:`x`.
    """

    X: torch.Tensor
    device: torch.device
    generator: torch.Generator
    augment: Augment | None = None

    def x(self, idx: torch.Tensor) -> torch.Tensor:
        """Rows ``idx`` of ``X`` on the device, with the training noise."""
        xb = self.X[idx].to(self.device, non_blocking=True)
        return xb if self.augment is None else self.augment(xb, self.generator)

    def take(self, values: torch.Tensor, idx: torch.Tensor) -> torch.Tensor:
        """Rows ``idx`` of ``values`` (targets, labels) on the device."""
        return values[idx].to(self.device, non_blocking=True)

    def shuffled(self, rows: int | torch.Tensor, batch_size: int) -> Iterator[torch.Tensor]:
        """One shuffled pass over ``rows`` (a count, or row indices) in batches (:func:`labelclean._data.batches`).

        The shuffle is drawn when the pass starts, so the random stream keeps the loop's order.
        """
        n = rows if isinstance(rows, int) else len(rows)
        for idx in batches(n, batch_size, self.generator):
            yield idx if isinstance(rows, int) else rows[idx]


class Callback:
    """A hook into the loops; every method does nothing unless overridden.

    The loops call the callbacks in list order: :func:`fit_epochs` at the start and end of
    every epoch and once after the last, :func:`run_epoch` at the start and end of every pass
    and after every optimizer step. Setting ``stop`` ends the training after the epoch.
    """

    stop: bool = False

    def on_epoch_start(self, epoch: int) -> None:
        """Before epoch ``epoch`` (from 0)."""

    def on_pass_start(self) -> None:
        """Before a pass over the batches."""

    def on_step_end(self, meter: Meter) -> None:
        """After an optimizer step; ``meter`` holds the sums of the pass so far."""

    def on_pass_end(self, means: dict[str, float]) -> None:
        """After a pass, with its mean statistics."""

    def on_epoch_end(self, epoch: int, record: dict[str, Any]) -> None:
        """After an epoch, with its record (which a callback may add to)."""

    def on_fit_end(self) -> None:
        """After the last epoch (or the early stop)."""


class Meter:
    """The running sums of one pass: each statistic of :attr:`StepOut.sums`, the rows seen, the last step's rows."""

    __slots__ = ("sums", "seen", "shown")

    def __init__(self) -> None:
        self.sums: dict[str, Any] = {}
        self.seen = 0
        self.shown = 0

    def add(self, out: StepOut) -> None:
        self.seen += out.rows
        self.shown = out.rows if out.shown is None else out.shown
        for k, v in out.sums.items():
            self.sums[k] = self.sums[k] + v if k in self.sums else v

    def means(self) -> dict[str, float]:
        """Each sum over the rows seen, read back to the host."""
        return {k: float(v) / max(self.seen, 1) for k, v in self.sums.items()}

    def running_loss(self, probe: LossProbe) -> float | None:
        """The mean loss so far: directly when it is summed on the host, else through ``probe`` (no device wait)."""
        loss = self.sums["loss"]
        return loss / max(self.seen, 1) if isinstance(loss, float) else probe.read(loss, self.seen)


def run_epoch(
    step: Callable[[Any], StepOut],
    plan: Iterable[Any],
    optimizer: torch.optim.Optimizer,
    modules: Sequence[nn.Module],
    callbacks: Sequence[Callback] = (),
) -> dict[str, float]:
    """One pass: ``step`` on every item of ``plan``, each followed by an optimizer step; the mean statistics.

    ``modules`` are put in training mode first. Raises when the mean loss is not finite
    (:func:`~labelclean._train.check_finite_loss`).
    """
    for module in modules:
        module.train()
    for cb in callbacks:
        cb.on_pass_start()
    meter = Meter()
    for item in plan:
        out = step(item)
        optimizer.zero_grad(set_to_none=True)
        out.loss.backward()
        optimizer.step()
        meter.add(out)
        for cb in callbacks:
            cb.on_step_end(meter)
    means = meter.means()
    check_finite_loss(means.get("loss", 0.0), optimizer)
    for cb in callbacks:
        cb.on_pass_end(means)
    return means


def fit_epochs(
    epochs: int,
    epoch_fn: Callable[[int], dict[str, Any]],
    callbacks: Sequence[Callback],
    *,
    phase: str,
    steps: int,
) -> None:
    """The epoch loop: ``epoch_fn(epoch)`` (usually one :func:`run_epoch`) returns the epoch's record.

    The epochs are one progress phase named ``phase`` of ``epochs · steps`` optimizer steps;
    after an early stop its total is lowered to the steps that ran.
    """
    with _progress.phase(phase, epochs * steps):
        for epoch in range(epochs):
            for cb in callbacks:
                cb.on_epoch_start(epoch)
            record = epoch_fn(epoch)
            for cb in callbacks:
                cb.on_epoch_end(epoch, record)
            if any(cb.stop for cb in callbacks):
                _progress.skip((epochs - epoch - 1) * steps)  # stopped early: these epochs will not run
                break
    for cb in callbacks:
        cb.on_fit_end()


# ---------------------------------------------------------------------------
# Callbacks.
# ---------------------------------------------------------------------------


class LearningRate(Callback):
    """Set the learning rate of ``optimizer`` to ``schedule(epoch)`` at the start of every epoch."""

    def __init__(self, optimizer: torch.optim.Optimizer, schedule: Callable[[int], float]) -> None:
        self.optimizer, self.schedule = optimizer, schedule

    def on_epoch_start(self, epoch: int) -> None:
        set_lr(self.optimizer, self.schedule(epoch))


class MovingAverage(Callback):
    """After every optimizer step, each moving average takes in its network (``update_averages``)."""

    def __init__(self, averages: Sequence[nn.Module], nets: Sequence[nn.Module]) -> None:
        self.averages, self.nets = averages, nets

    def on_step_end(self, meter: Meter) -> None:
        update_averages(self.averages, self.nets)


class EarlyStopping(Callback):
    """Stop when ``score()`` (higher is better) has not improved for ``patience`` epochs; keep the best weights.

    The score of every epoch is added to its record under ``key``; after the last epoch
    ``module`` gets back the weights of its best epoch.
    """

    def __init__(self, module: nn.Module, score: Callable[[], float], *, patience: int, key: str) -> None:
        self.module, self.score, self.patience, self.key = module, score, patience, key
        self.best, self.state, self.stale = -1.0, None, 0

    def on_epoch_end(self, epoch: int, record: dict[str, Any]) -> None:
        value = record[self.key] = self.score()
        if value > self.best:
            self.best, self.state, self.stale = value, copy.deepcopy(self.module.state_dict()), 0
        else:
            self.stale += 1
        self.stop = self.stale >= self.patience

    def on_fit_end(self) -> None:
        if self.state is not None:
            self.module.load_state_dict(self.state)


class History(Callback):
    """Append one entry per epoch to ``entries`` (an estimator's ``history_``), and print it when ``verbose``.

    The entry is ``{**tag, "epoch": epoch, **record, "seconds": ...}``; ``tag`` is a dict or a
    function of the epoch. Put it after the callbacks that add to the record.
    """

    def __init__(
        self,
        entries: list[dict[str, Any]],
        tag: dict[str, Any] | Callable[[int], dict[str, Any]],
        *,
        verbose: int = 0,
        name: str = "",
    ) -> None:
        self.entries, self.tag, self.verbose, self.name = entries, tag, verbose, name
        self._t0 = 0.0

    def on_epoch_start(self, epoch: int) -> None:
        self._t0 = time.perf_counter()

    def on_epoch_end(self, epoch: int, record: dict[str, Any]) -> None:
        tag = self.tag(epoch) if callable(self.tag) else self.tag
        self.entries.append({**tag, "epoch": epoch, **record, "seconds": time.perf_counter() - self._t0})
        if self.verbose:
            print(f"[{self.name}] {tag.get('phase', '')} epoch {epoch + 1}: {self.entries[-1]}")


class Progress(Callback):
    """Report the steps of every pass to the progress listener (:mod:`labelclean._progress`), when one listens."""

    def __init__(self, device: torch.device) -> None:
        self.device = device
        self._beat: _progress.Beat | None = None
        self._probe: LossProbe | None = None

    def on_pass_start(self) -> None:
        self._beat = _progress.beat()
        self._probe = LossProbe(self.device) if self._beat is not None else None

    def on_step_end(self, meter: Meter) -> None:
        if self._beat is not None and self._beat.step(meter.shown):
            self._beat.report(meter.running_loss(self._probe))

    def on_pass_end(self, means: dict[str, float]) -> None:
        if self._beat is not None:
            self._beat.report(means.get("loss"))


# ---------------------------------------------------------------------------
# The supervised step: every network's logits on one batch, one loss.
# ---------------------------------------------------------------------------


def supervised_step(
    nets: Sequence[nn.Module],
    loss_fn: Callable[[list[torch.Tensor], torch.Tensor], tuple[torch.Tensor, dict[str, float]]],
    feed: Feed,
    targets: torch.Tensor,
    idx: torch.Tensor,
) -> StepOut:
    """``loss_fn(logits_per_net, targets_batch)`` on rows ``idx``: the loss and its statistics (batch-weighted)."""
    xb, yb = feed.x(idx), feed.take(targets, idx)
    loss, stats = loss_fn([net(xb) for net in nets], yb)
    b = len(idx)
    return StepOut(loss, {"loss": loss.detach() * b, **{k: v * b for k, v in stats.items()}}, b)


def supervised(nets: Sequence[nn.Module], loss_fn, feed: Feed, targets: torch.Tensor) -> Callable[[Any], StepOut]:
    """:func:`supervised_step` bound to its networks, loss and data: a step function."""
    return functools.partial(supervised_step, nets, loss_fn, feed, targets)
