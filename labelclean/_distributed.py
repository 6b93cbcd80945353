"""Data-parallel training in a ``torchrun`` job: the job, each process's share of a batch, global statistics.

Outside a distributed job :func:`world` is :data:`LOCAL` (process 0 of 1) and every helper
here is the identity: no collective runs, and results stay bit-identical to a plain run.

Under ``torchrun --nproc-per-node N`` (which sets ``RANK``, ``WORLD_SIZE``, ``LOCAL_RANK``
and the rendezvous address), :func:`world` starts PyTorch's process group once, gloo for
CPU tensors and NCCL for CUDA tensors, unless the caller has started one, and the engine
(:mod:`labelclean._engine`) trains with :class:`~torch.nn.parallel.DistributedDataParallel`:

- every epoch draws one shuffle of all rows from the fit's seed, the same on every process,
  cut into the batches one process would take (:func:`batch_plan`); each process runs the
  forward and backward pass of its share of every batch, ``1/N`` of its rows
  (:meth:`World.share`);
- the networks' outputs are gathered over the whole batch (:meth:`World.gather`), so every
  process computes the loss of the whole batch, small-loss selection included, as one
  process would; DDP averages the gradients, so every process takes the same step;
- statistics over all rows are summed (:meth:`World.sum`, the warm-up's noise estimate) or
  gathered (:meth:`World.gather_rows`, the predictions for every row), so every process ends
  a fit in the same state; only rank 0 writes files (:func:`is_main`).

Importing this module loads nothing heavy (the command line asks :func:`is_main` before
anything is trained); torch is imported when a job is used.
"""

from __future__ import annotations

import atexit
import functools
import math
import os
import sys
import zlib
from collections.abc import Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import numpy as np

if TYPE_CHECKING:
    import torch
    from torch import nn


def job_from_env() -> tuple[int, int, int] | None:
    """``(rank, world_size, local_rank)`` of a ``torchrun`` job from its environment, or None outside one.

    A job of one process counts as none.

    Examples
    --------
    >>> job_from_env() is None  # the tests run outside torchrun
    True
    """
    try:
        size = int(os.environ.get("WORLD_SIZE", "1"))
        rank = int(os.environ.get("RANK", "0"))
        local = int(os.environ.get("LOCAL_RANK", str(rank)))
    except ValueError as exc:
        raise ValueError(
            f"the torchrun variables RANK, WORLD_SIZE and LOCAL_RANK must be integers ({exc}); start the job "
            "with `torchrun --nproc-per-node N ...`, which sets them."
        ) from None
    return (rank, size, local) if size > 1 else None


def is_main() -> bool:
    """Whether this process writes outputs: always outside a distributed job, only rank 0 inside one."""
    dist = sys.modules.get("torch.distributed")
    if dist is not None and dist.is_available() and dist.is_initialized():
        return dist.get_rank() == 0
    job = job_from_env()
    return job is None or job[0] == 0


# ---------------------------------------------------------------------------
# Batches and rows: pure functions of the row count, the seed's generator and the job's size.
# ---------------------------------------------------------------------------


def batch_plan(n: int, batch_size: int, generator: torch.Generator, size: int = 1) -> list[torch.Tensor]:
    """One shuffled pass over ``range(n)`` as whole batches, the same on every process of a job of ``size``.

    ``size == 1``: :func:`labelclean._data.batches`. Otherwise the shuffle (the same draw
    from ``generator``) is padded to a multiple of ``size`` with its first rows and cut into
    batches of ``size · ceil(batch_size / size)`` rows (at least 2 a process), a last batch
    of fewer than 2 rows a process merged into the one before: every process gets an equal
    share of every batch. With ``batch_size`` a multiple of ``size`` every batch but the last
    holds the rows one process would take in that step.

    Examples
    --------
    >>> import torch
    >>> [len(b) for b in batch_plan(9, 4, torch.Generator().manual_seed(0), size=2)]
    [4, 6]
    """
    import torch

    from ._data import batches

    if size == 1:
        return batches(n, batch_size, generator)
    order = torch.randperm(n, generator=generator)
    pad = (-n) % size
    if pad:
        order = torch.cat([order, order[torch.arange(pad) % n]])
    out = list(torch.split(order, _share_rows(batch_size, size) * size))
    if len(out) > 1 and len(out[-1]) < 2 * size:
        last = out.pop()
        out[-1] = torch.cat([out[-1], last])
    return out


def plan_steps(n: int, batch_size: int, size: int = 1) -> int:
    """Batches of :func:`batch_plan` (one process: :func:`~labelclean._train.steps_per_epoch`).

    Examples
    --------
    >>> plan_steps(9, 4, size=2), plan_steps(257, 128), plan_steps(1000, 128, size=2)
    (2, 2, 8)
    """
    rows, batch = n + (-n) % size, _share_rows(batch_size, size) * size
    steps = max(1, math.ceil(rows / batch))
    if steps > 1 and rows - (steps - 1) * batch < 2 * size:  # a last batch too small to share is merged
        steps -= 1
    return steps


def _share_rows(batch_size: int, size: int) -> int:
    """Rows of one process in a batch of ``batch_size`` rows shared by ``size`` (at least 2, for batch norm)."""
    return batch_size if size == 1 else max(2, math.ceil(batch_size / size))


def share(idx: torch.Tensor, rank: int, size: int) -> torch.Tensor:
    """Process ``rank``'s share of a batch of :func:`batch_plan`: its ``rank``-th contiguous ``1/size``.

    The shares in rank order are the batch itself, so gathering outputs in rank order
    (:meth:`World.gather`) gives them in the batch's row order.

    Examples
    --------
    >>> import torch
    >>> share(torch.arange(6), 1, 2).tolist()
    [3, 4, 5]
    """
    rows = len(idx) // size
    return idx[rank * rows : (rank + 1) * rows]


def block(n: int, rank: int, size: int) -> slice:
    """The rows of ``n`` that process ``rank`` predicts: its contiguous block of ``ceil(n / size)`` (the last shorter).

    Examples
    --------
    >>> [block(5, r, 2) for r in range(2)]
    [slice(0, 3, None), slice(3, 5, None)]
    """
    rows = math.ceil(n / size)
    return slice(min(rank * rows, n), min((rank + 1) * rows, n))


# ---------------------------------------------------------------------------
# The job.
# ---------------------------------------------------------------------------


@dataclass(frozen=True)
class World:
    """The processes of a distributed job, seen from one of them; :data:`LOCAL` outside a job.

    Attributes
    ----------
    rank : int
        This process, from 0.
    size : int
        Processes in the job.
    local_rank : int
        This process on its machine (which GPU it uses).
    """

    rank: int = 0
    size: int = 1
    local_rank: int = 0

    @property
    def distributed(self) -> bool:
        return self.size > 1

    def place(self, device: torch.device) -> torch.device:
        """``device`` for this process: in a job, CUDA without an index becomes ``cuda:LOCAL_RANK``."""
        import torch

        if self.distributed and device.type == "cuda" and device.index is None:
            return torch.device("cuda", self.local_rank % torch.cuda.device_count())
        return device

    def batches(self, n: int, batch_size: int, generator: torch.Generator) -> list[torch.Tensor]:
        """:func:`batch_plan` for this job."""
        return batch_plan(n, batch_size, generator, self.size)

    def steps(self, n: int, batch_size: int) -> int:
        """:func:`plan_steps` for this job."""
        return plan_steps(n, batch_size, self.size)

    def share(self, idx: torch.Tensor) -> torch.Tensor:
        """This process's rows of a batch (:func:`share`); the batch itself outside a job."""
        return share(idx, self.rank, self.size) if self.distributed else idx

    def block(self, n: int) -> slice:
        """The rows of ``n`` this process predicts (:func:`block`)."""
        return block(n, self.rank, self.size)

    def gather(self, x: torch.Tensor) -> torch.Tensor:
        """Every process's ``x`` (equal shapes) concatenated in rank order, differentiable; ``x`` outside a job.

        The backward pass sends each process the gradient of its own rows without any
        communication: every process must compute the same function of the gathered rows
        (as a loss over the whole batch does), so each holds the whole gradient. It is
        scaled by the job's size because DDP averages, rather than sums, the processes'
        gradients.
        """
        return _gather_rows().apply(x, self.rank, self.size, _group(x.device)) if self.distributed else x

    def sum(self, value: Any) -> Any:
        """``value`` (a number or an array) summed over the processes, the same on every one."""
        if not self.distributed:
            return value
        import torch
        import torch.distributed as dist

        t = torch.as_tensor(np.asarray(value)).clone()
        dist.all_reduce(t, group=_group(t.device))
        return t.item() if np.ndim(value) == 0 else t.numpy()

    def gather_rows(self, part: np.ndarray, n: int, out: np.ndarray | None = None) -> np.ndarray:
        """The ``n`` rows whose :meth:`block` each process holds as ``part``, in row order, on every process.

        Written into ``out`` when it has the shape and dtype of the result.
        """
        if not self.distributed:
            return part
        import torch
        import torch.distributed as dist

        rows, part_t = math.ceil(n / self.size), torch.from_numpy(np.ascontiguousarray(part))
        mine = part_t.new_zeros((rows, *part.shape[1:]))
        mine[: len(part)] = part_t
        parts = [torch.empty_like(mine) for _ in range(self.size)]
        dist.all_gather(parts, mine, group=_group(mine.device))
        whole = torch.cat(parts)[:n].numpy()
        if out is not None and out.shape == whole.shape and out.dtype == whole.dtype:
            out[...] = whole
            return out
        return whole

    def broadcast_int(self, value: int) -> int:
        """Rank 0's ``value`` on every process (e.g. the seed drawn from ``random_state=None``)."""
        if not self.distributed:
            return value
        import torch
        import torch.distributed as dist

        t = torch.tensor([int(value)], dtype=torch.int64)
        dist.broadcast(t, 0, group=_group(t.device))
        return int(t.item())

    def broadcast_state(self, modules: Sequence[nn.Module]) -> None:
        """Give every process rank 0's weights and buffers (batch-norm statistics, moving averages) of ``modules``."""
        if not self.distributed:
            return
        import torch
        import torch.distributed as dist

        groups: dict[tuple[Any, Any], list[torch.Tensor]] = {}
        for module in modules:
            for t in module.state_dict().values():
                groups.setdefault((t.device, t.dtype), []).append(t)
        with torch.no_grad():
            for (device, _), tensors in groups.items():
                flat = torch.cat([t.reshape(-1) for t in tensors])
                dist.broadcast(flat, 0, group=_group(device))
                for t, part in zip(tensors, flat.split([t.numel() for t in tensors])):
                    t.copy_(part.view_as(t))

    def check_same(self, **facts: Any) -> None:
        """Raise on every process unless every process holds the same ``facts`` (numbers, or arrays by checksum)."""
        if not self.distributed:
            return
        import torch
        import torch.distributed as dist

        values = [int(v) if np.ndim(v) == 0 else zlib.crc32(np.ascontiguousarray(v)) for v in facts.values()]
        mine = torch.tensor(values, dtype=torch.int64)
        every = [torch.empty_like(mine) for _ in range(self.size)]
        dist.all_gather(every, mine, group=_group(mine.device))
        for rank, theirs in enumerate(every):
            if not torch.equal(theirs, every[0]):
                differ = [name for name, a, b in zip(facts, theirs.tolist(), every[0].tolist()) if a != b]
                raise ValueError(
                    f"the processes of this torchrun job fit different data: process {rank} differs from process 0 "
                    f"in {', '.join(differ)}. Pass the same X and y to fit on every process; each trains on its "
                    "own share of every batch."
                )

    def wrap(self, module: nn.Module, device: torch.device) -> nn.Module:
        """``module`` in :class:`~torch.nn.parallel.DistributedDataParallel` (rank 0's weights), for training.

        DDP's defaults: gradients averaged in buckets during the backward pass, rank 0's
        buffers (batch-norm statistics) sent to every process before each forward pass.
        """
        from torch.nn.parallel import DistributedDataParallel

        ids = [device.index] if device.type == "cuda" else None
        return DistributedDataParallel(module, device_ids=ids, process_group=_group(device))


#: Outside a distributed job.
LOCAL = World()


def world() -> World:
    """The distributed job this process belongs to (:data:`LOCAL` outside one).

    Under ``torchrun`` the first call starts the process group (gloo, with NCCL for CUDA
    tensors when CUDA is available; the process's GPU is ``LOCAL_RANK``) and ends it when
    the process exits. A process group the caller started is used as it is.
    """
    import torch.distributed as dist

    job = job_from_env()
    if not dist.is_available():
        if job is not None:
            raise RuntimeError("this PyTorch build has no torch.distributed; run without torchrun, or install one.")
        return LOCAL
    if dist.is_initialized():
        size, rank = dist.get_world_size(), dist.get_rank()
        return World(rank, size, int(os.environ.get("LOCAL_RANK", rank))) if size > 1 else LOCAL
    if job is None:
        return LOCAL
    _start(job[2])
    return World(*job)


def join(seed: int, device: torch.device, **facts: Any) -> tuple[World, int, torch.device]:
    """The job an estimator's ``fit`` runs in, rank 0's ``seed`` and this process's ``device``.

    Outside a job ``(LOCAL, seed, device)``. In one, every process first checks that all hold
    the same ``facts`` about the data they fit (:meth:`World.check_same`), then takes rank 0's
    seed (so ``random_state=None`` gives one run, not one per process) and its own device
    (:meth:`World.place`).
    """
    job = world()
    if not job.distributed:
        return job, seed, device
    job.check_same(**facts)
    return job, job.broadcast_int(seed), job.place(device)


def _start(local_rank: int) -> None:
    import torch
    import torch.distributed as dist

    backend = "gloo"
    if torch.cuda.is_available():
        torch.cuda.set_device(local_rank % torch.cuda.device_count())
        backend = "cpu:gloo,cuda:nccl"
    dist.init_process_group(backend)
    atexit.register(_stop)


def _stop() -> None:
    import torch.distributed as dist

    if dist.is_initialized():
        dist.destroy_process_group()


_CPU_GROUP: list[Any] = []


def _group(device: torch.device) -> Any:
    """The process group for tensors on ``device``: the default one, or for CPU tensors in a job started with NCCL
    alone, a gloo group (made once, on every process at the same point, as collectives are)."""
    import torch.distributed as dist

    if device.type != "cpu" or "gloo" in str(dist.get_backend()):
        return None
    if not _CPU_GROUP:
        _CPU_GROUP.append(dist.new_group(backend="gloo"))
    return _CPU_GROUP[0]


@functools.cache
def _gather_rows() -> Any:
    """The autograd function of :meth:`World.gather` (made on first use, so importing this module needs no torch)."""
    import torch
    import torch.distributed as dist

    class GatherRows(torch.autograd.Function):
        @staticmethod
        def forward(ctx, x, rank, size, group):
            parts = [torch.empty_like(x) for _ in range(size)]
            dist.all_gather(parts, x.contiguous(), group=group)
            ctx.rank, ctx.size, ctx.rows = rank, size, x.shape[0]
            return torch.cat(parts)

        @staticmethod
        def backward(ctx, grad):
            start = ctx.rank * ctx.rows
            return grad[start : start + ctx.rows] * ctx.size, None, None, None

    return GatherRows
