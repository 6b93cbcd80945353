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

In a ``torchrun`` job (:mod:`labelclean._distributed`) a :class:`Feed` with the job's
:class:`~labelclean._distributed.World` plans the same batches on every process, runs the
networks on this process's share of each batch in ``DistributedDataParallel`` and gathers
their outputs, so a step function computes its loss and statistics over the whole batch, as
in one process; :func:`predict_proba` predicts every row, each process a block of them.
Without a job (``world=LOCAL``, the default) nothing of this runs.

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
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import torch
from torch import nn

from . import _progress
from ._distributed import LOCAL, World, is_main
from ._train import LossProbe, check_finite_loss, predict_proba_nets, set_lr, update_averages

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
        In a distributed job it draws the shuffles, the same on every process; with ``augment``
        each process draws its noise from a generator of its own, seeded by one draw from this one.
    augment : callable or None
        ``augment(x, generator)`` applied to every input batch of :meth:`x`.
    world : World
        The distributed job (:data:`~labelclean._distributed.LOCAL`: none).
    """

    X: torch.Tensor
    device: torch.device
    generator: torch.Generator
    augment: Augment | None = None
    world: World = LOCAL
    _noise: torch.Generator | None = field(default=None, init=False, repr=False, compare=False)
    _replicas: dict[tuple[int, ...], nn.Module] = field(default_factory=dict, init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        noise = self.generator
        if self.world.distributed and self.augment is not None:  # one draw on every process: still in step
            draw = int(torch.randint(2**62, (1,), generator=self.generator))
            seed = np.random.SeedSequence([draw, self.world.rank]).generate_state(2)
            noise = torch.Generator().manual_seed(int(seed[0]) << 32 | int(seed[1]))
        object.__setattr__(self, "_noise", noise)

    def x(self, idx: torch.Tensor) -> torch.Tensor:
        """Rows ``idx`` of ``X`` on the device, with the training noise."""
        xb = self.X[idx].to(self.device, non_blocking=True)
        return xb if self.augment is None else self.augment(xb, self._noise)

    def take(self, values: torch.Tensor, idx: torch.Tensor) -> torch.Tensor:
        """Rows ``idx`` of ``values`` (targets, labels) on the device."""
        return values[idx].to(self.device, non_blocking=True)

    def shuffled(self, rows: int | torch.Tensor, batch_size: int) -> Iterator[torch.Tensor]:
        """One shuffled pass over ``rows`` (a count, or row indices) in batches (:func:`labelclean._data.batches`).

        The shuffle is drawn when the pass starts, so the random stream keeps the loop's order.
        In a distributed job the batches are whole (every process gets the same ones,
        :func:`~labelclean._distributed.batch_plan`); a step runs on its :meth:`share`.
        """
        n = rows if isinstance(rows, int) else len(rows)
        for idx in self.world.batches(n, batch_size, self.generator):
            yield idx if isinstance(rows, int) else rows[idx]

    def steps(self, rows: int, batch_size: int) -> int:
        """Batches of one :meth:`shuffled` pass over ``rows`` rows."""
        return self.world.steps(rows, batch_size)

    def share(self, idx: torch.Tensor) -> torch.Tensor:
        """This process's rows of batch ``idx``: the batch itself outside a distributed job."""
        return self.world.share(idx)

    def forward(self, nets: Sequence[nn.Module], xb: torch.Tensor) -> list[torch.Tensor]:
        """Every network's outputs on ``xb``, this process's :meth:`share` of a batch, for the whole batch.

        In a distributed job the networks run together in ``DistributedDataParallel`` (made
        once per set of networks) and their outputs are gathered from every process
        (:meth:`~labelclean._distributed.World.gather`), in the batch's row order.
        """
        if not self.world.distributed:
            return [net(xb) for net in nets]
        key = tuple(id(net) for net in nets)
        if key not in self._replicas:
            self._replicas[key] = self.world.wrap(_Together(nets), self.device)
        outs = self._replicas[key](xb)
        flat = self.world.gather(torch.cat([o.reshape(len(o), -1) for o in outs], 1))
        parts = flat.split([o[0].numel() for o in outs], 1)
        return [p.reshape(-1, *o.shape[1:]) for p, o in zip(parts, outs)]


class _Together(nn.Module):
    """Several networks as one module (one ``DistributedDataParallel`` for all): the list of their outputs."""

    def __init__(self, nets: Sequence[nn.Module]) -> None:
        super().__init__()
        self.nets = nn.ModuleList(nets)

    def forward(self, x: torch.Tensor) -> list[torch.Tensor]:
        return [net(x) for net in self.nets]


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
        if self.verbose and is_main():  # in a distributed job rank 0 speaks
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
    """``loss_fn(logits_per_net, targets_batch)`` on rows ``idx``: the loss and its statistics (batch-weighted).

    In a distributed job the networks run on this process's share of the rows and the loss
    is computed over the whole batch (:meth:`Feed.forward`).
    """
    xb, yb = feed.x(feed.share(idx)), feed.take(targets, idx)
    loss, stats = loss_fn(feed.forward(nets, xb), yb)
    b = len(idx)
    return StepOut(loss, {"loss": loss.detach() * b, **{k: v * b for k, v in stats.items()}}, b)


def supervised(nets: Sequence[nn.Module], loss_fn, feed: Feed, targets: torch.Tensor) -> Callable[[Any], StepOut]:
    """:func:`supervised_step` bound to its networks, loss and data: a step function."""
    return functools.partial(supervised_step, nets, loss_fn, feed, targets)


# ---------------------------------------------------------------------------
# Inference over every row, each process of a distributed job predicting a block of them.
# ---------------------------------------------------------------------------


def predict_own(
    nets: Sequence[nn.Module], feed: Feed, rows: torch.Tensor | None = None
) -> tuple[torch.Tensor | None, np.ndarray]:
    """This process's block of the rows of ``feed.X`` (or of ``rows``) and the average softmax of ``nets`` on it.

    Outside a distributed job the block is every row (``rows`` as given, ``None`` for all of
    ``X``). In a job every process first takes rank 0's weights and buffers
    (:meth:`~labelclean._distributed.World.broadcast_state`), so all predict with one model.
    """
    if not feed.world.distributed:
        return rows, predict_proba_nets(nets, feed.X, feed.device, rows=rows)
    feed.world.broadcast_state(nets)
    n = feed.X.shape[0] if rows is None else len(rows)
    own = torch.arange(n)[feed.world.block(n)] if rows is None else rows[feed.world.block(n)]
    return own, predict_proba_nets(nets, feed.X, feed.device, rows=own)


def predict_proba(
    nets: Sequence[nn.Module], feed: Feed, rows: torch.Tensor | None = None, out: np.ndarray | None = None
) -> np.ndarray:
    """The average softmax of ``nets`` on every row of ``feed.X`` (or ``rows``), the same array on every process.

    :func:`~labelclean._train.predict_proba_nets` outside a distributed job; in one, every
    process predicts its block (:func:`predict_own`) and the blocks are gathered. Written
    over ``out`` where it fits.
    """
    if not feed.world.distributed:
        return predict_proba_nets(nets, feed.X, feed.device, rows=rows, out=out)
    _, part = predict_own(nets, feed, rows)
    return feed.world.gather_rows(part, feed.X.shape[0] if rows is None else len(rows), out=out)
