"""Shared pieces of the training loops: devices, seeding, schedules, optimizers, noise, batched inference.

The loops themselves are :mod:`labelclean._engine`.
"""

from __future__ import annotations

import contextlib
import functools
import math
import os
from collections.abc import Callable, Iterator, Sequence

import numpy as np
import torch
from torch import nn


def resolve_device(device: str | torch.device) -> torch.device:
    """``"auto"`` → CUDA when available, else CPU; anything else is passed to :class:`torch.device`."""
    if isinstance(device, str) and device == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    try:
        dev = torch.device(device)
    except (RuntimeError, TypeError) as exc:
        raise ValueError(f"device={device!r} is not a valid torch device; use 'auto', 'cpu' or 'cuda'.") from exc
    if dev.type == "cuda" and not torch.cuda.is_available():
        raise ValueError(f"device={device!r} asks for CUDA, but no CUDA device is available; use 'auto' or 'cpu'.")
    return dev


@contextlib.contextmanager
def local_torch_seed(seed: int, device: torch.device) -> Iterator[None]:
    """Seed torch's default generators for the duration of a ``with`` block, then restore them.

    Network initialisation and dropout draw from torch's default generators; forking them
    keeps ``random_state`` reproducible without changing anybody else's random stream.
    """
    devices = [device.index or 0] if device.type == "cuda" else []
    with torch.random.fork_rng(devices=devices):
        torch.manual_seed(seed)
        yield


def resolve_n_jobs(n_jobs: int | None) -> int | None:
    """Torch threads for ``n_jobs``: None → None (torch's setting), ``-1`` → all cores, ``-k`` → all but ``k - 1``."""
    if n_jobs is None:
        return None
    if n_jobs == 0:
        raise ValueError("n_jobs=0 is not a thread count; use a positive number, -1 for all cores, or None.")
    if n_jobs > 0:
        return int(n_jobs)
    return max(1, usable_cores() + 1 + int(n_jobs))


def usable_cores() -> int:
    """Cores this process may run on (its CPU affinity where the platform tells, else all cores)."""
    if hasattr(os, "sched_getaffinity"):
        return len(os.sched_getaffinity(0))
    return os.cpu_count() or 1


@contextlib.contextmanager
def torch_threads(n_jobs: int | None) -> Iterator[None]:
    """Run a ``with`` block on ``n_jobs`` torch intra-op threads, then restore the previous count.

    ``None`` leaves torch's own setting alone (which follows ``OMP_NUM_THREADS`` /
    ``MKL_NUM_THREADS`` when they are set, else the number of cores).
    """
    threads = resolve_n_jobs(n_jobs)
    if threads is None or threads == torch.get_num_threads():
        yield
        return
    previous = torch.get_num_threads()
    torch.set_num_threads(threads)
    try:
        yield
    finally:
        torch.set_num_threads(previous)


def forget_rate_schedule(epoch: int, forget_rate: float, num_gradual: int) -> float:
    """Co-teaching's ``R(T) = min(T / T_k · τ, τ)`` (Han et al., 2018), with ``T`` the epoch from 0."""
    if num_gradual <= 0:
        return float(forget_rate)
    return float(min(epoch / num_gradual, 1.0) * forget_rate)


def lr_factor(epoch: int, max_epochs: int, decay_start: float = 0.5) -> float:
    """Constant learning rate, then a linear decay over the last ``1 - decay_start`` of the epochs."""
    start = math.floor(decay_start * max_epochs)
    if epoch < start or max_epochs <= start:
        return 1.0
    return float(max_epochs - epoch) / float(max_epochs - start + 1)


def adam(params, lr: float, weight_decay: float = 0.0) -> torch.optim.Adam:
    """Adam with its fused update (one kernel per step for all parameters) where torch has one.

    The fused CPU kernel exists from torch 2.4; elsewhere (older torch, other devices without
    it) this falls back to the multi-tensor (``foreach``) update. Both compute Adam's update;
    they differ from each other and from the per-parameter loop only in rounding; both take
    fewer small operations per step than the loop (``docs/benchmarks.md#implementation``).
    """
    params = list(params)
    try:
        return torch.optim.Adam(params, lr=lr, weight_decay=weight_decay, fused=True)
    except (RuntimeError, ValueError, TypeError):  # no fused kernel for this torch or device
        return torch.optim.Adam(params, lr=lr, weight_decay=weight_decay, foreach=True)


def set_lr(optimizer: torch.optim.Optimizer, lr: float) -> None:
    for group in optimizer.param_groups:
        group["lr"] = lr


INFERENCE_BATCH = 256
"""Rows per forward pass when predicting.

Inference of the default CNN is bound by memory traffic, not arithmetic: at 1,024 images of 28×28
its activations after the first convolution no longer fit the caches, while the default MLP is
cheap at any batch size, so 256 serves both (``docs/benchmarks.md#implementation``).
"""


@torch.inference_mode()
def batched_forward(
    forward: Callable[[torch.Tensor], torch.Tensor],
    X: torch.Tensor,
    device: torch.device,
    *,
    batch_size: int = INFERENCE_BATCH,
    rows: torch.Tensor | None = None,
    out: np.ndarray | None = None,
) -> np.ndarray:
    """``forward`` on ``X`` (or its ``rows``), batch by batch on ``device``, as one float32 numpy array.

    The one inference path of the package: the result is written into one preallocated
    array (``out`` when given and of the right shape, e.g. earlier probabilities that are
    no longer needed), and ``rows`` are gathered a batch at a time, so no copy of ``X`` is made.
    """
    n = X.shape[0] if rows is None else rows.shape[0]
    for start in range(0, n, batch_size):
        xb = X[start : start + batch_size] if rows is None else X[rows[start : start + batch_size]]
        y = forward(xb.to(device, non_blocking=True))
        if out is None or out.shape != (n, *y.shape[1:]) or out.dtype != np.float32:
            out = np.empty((n, *y.shape[1:]), dtype=np.float32)
        out[start : start + len(y)] = y.cpu().numpy()
    return out if out is not None else np.zeros((0, 0), dtype=np.float32)


def predict_proba_nets(
    nets: Sequence[nn.Module],
    X: torch.Tensor,
    device: torch.device,
    batch_size: int = INFERENCE_BATCH,
    rows: torch.Tensor | None = None,
    out: np.ndarray | None = None,
) -> np.ndarray:
    """Average softmax of ``nets`` over ``X`` (or its ``rows``) in eval mode, as float32 (:func:`batched_forward`)."""
    for net in nets:
        net.eval()

    def forward(xb: torch.Tensor) -> torch.Tensor:
        return sum(torch.softmax(net(xb).float(), dim=1) for net in nets) / len(nets)

    return batched_forward(forward, X, device, batch_size=batch_size, rows=rows, out=out)


def steps_per_epoch(n_rows: int, batch_size: int) -> int:
    """Mini-batches of one pass over ``n_rows`` rows: as many as :func:`labelclean._data.batches` makes.

    Examples
    --------
    >>> steps_per_epoch(1000, 128), steps_per_epoch(257, 128), steps_per_epoch(10, 128)
    (8, 2, 1)
    """
    n_batches = max(1, math.ceil(n_rows / batch_size))
    if n_batches > 1 and n_rows - (n_batches - 1) * batch_size < 2:  # a last batch of one row is merged
        n_batches -= 1
    return n_batches


class LossProbe:
    """Reads a loop's running loss for progress without making the host wait for the device.

    On the CPU the loss is read as it is. On CUDA a copy of it goes to pinned host memory
    behind the queued work and is read at a later report, once an event says it arrived, so
    the loss shown lags one report behind. On other devices no loss is shown within an epoch.
    """

    __slots__ = ("_kind", "_host", "_event", "_seen", "value")

    def __init__(self, device: torch.device) -> None:
        self._kind = device.type
        self._host: torch.Tensor | None = None
        self._event = None
        self._seen = 0
        self.value: float | None = None

    def read(self, loss_sum: torch.Tensor, seen: int) -> float | None:
        """The mean loss ``loss_sum / seen`` (on CUDA: that of an earlier call whose copy has arrived)."""
        if self._kind == "cpu":
            return float(loss_sum) / max(seen, 1)
        if self._kind != "cuda":
            return None
        if self._event is not None and self._event.query():  # the copy has arrived: no wait
            self.value = float(self._host) / max(self._seen, 1)
            self._event = None
        if self._event is None:
            if self._host is None:
                self._host = torch.empty((), dtype=loss_sum.dtype, pin_memory=True)
            self._host.copy_(loss_sum, non_blocking=True)
            self._event = torch.cuda.Event()
            self._event.record(torch.cuda.current_stream(loss_sum.device))
            self._seen = seen
        return self.value


def ema_update(average: torch.Tensor, current: torch.Tensor, n_averaged: torch.Tensor, *, decay: float):
    """Exponential moving average step with a warm-up: weight ``min(decay, (1 + n) / (10 + n))`` on the average.

    The ``avg_fn`` of :class:`torch.optim.swa_utils.AveragedModel`, after ``n`` earlier updates.
    On an accelerator the weight stays a tensor there: reading ``n`` on the host would wait for
    the device at every step.
    """
    if n_averaged.device.type == "cpu":
        n = float(n_averaged)
        w = min(decay, (1.0 + n) / (10.0 + n))
    else:
        w = torch.clamp((1.0 + n_averaged) / (10.0 + n_averaged), max=decay)
    return w * average + (1.0 - w) * current


def moving_averages(nets, decay: float) -> list[torch.nn.Module]:
    """One :class:`~torch.optim.swa_utils.AveragedModel` per network: an exponential moving average of its
    weights and batch-norm statistics (:func:`ema_update`), to be updated after each optimizer step."""
    avg_fn = functools.partial(ema_update, decay=float(decay))
    return [torch.optim.swa_utils.AveragedModel(net, avg_fn=avg_fn, use_buffers=True) for net in nets]


def update_averages(averages, nets) -> None:
    """One moving-average step: each of ``averages`` (:func:`moving_averages`) takes in its network."""
    for average, net in zip(averages, nets, strict=True):
        average.update_parameters(net)


def check_finite_loss(loss: float, optimizer: torch.optim.Optimizer) -> None:
    """Stop with a clear error once training has diverged (the loss is NaN or infinite)."""
    if not math.isfinite(loss):
        lr = optimizer.param_groups[0]["lr"]
        raise ValueError(
            f"training diverged: the loss became {loss} (learning rate {lr:g}); lower lr, "
            "or rescale features with very large values."
        )


def random_shift(x: torch.Tensor, generator: torch.Generator, max_shift: int = 2) -> torch.Tensor:
    """Shift each image of a ``(n, C, H, W)`` batch by up to ``max_shift`` pixels (zero padding).

    Vectorised with ``torch.roll``-free indexing: one padded copy of the batch, then one gather.
    """
    n, _, h, w = x.shape
    p = max_shift
    padded = torch.nn.functional.pad(x, (p, p, p, p))
    dy = torch.randint(0, 2 * p + 1, (n,), generator=generator).to(x.device)
    dx = torch.randint(0, 2 * p + 1, (n,), generator=generator).to(x.device)
    rows = dy[:, None] + torch.arange(h, device=x.device)[None, :]  # (n, h)
    cols = dx[:, None] + torch.arange(w, device=x.device)[None, :]  # (n, w)
    batch = torch.arange(n, device=x.device)[:, None, None]
    out = padded.permute(0, 2, 3, 1)[batch, rows[:, :, None], cols[:, None, :]]  # (n, h, w, C)
    return out.permute(0, 3, 1, 2).contiguous()


def affine_warp(
    x: torch.Tensor,
    generator: torch.Generator,
    *,
    max_shift: float = 1 / 14,
    max_rotation: float = 10.0,
    max_scale: float = 0.1,
) -> torch.Tensor:
    """Training noise for images: each image of a ``(n, C, H, W)`` batch rotated, zoomed and shifted at random.

    Up to ``max_rotation`` degrees, a zoom in ``[1 - max_scale, 1 + max_scale]`` (a random
    crop when zooming in) and a shift of up to ``max_shift`` of the side (2 px on 28×28), all
    in one ``affine_grid`` / ``grid_sample`` pass (bilinear, border pixels repeated). Random
    numbers come from ``generator`` (on the CPU), so results do not depend on the device.
    """
    n = x.shape[0]
    u = (torch.rand((n, 4), generator=generator) * 2.0 - 1.0).to(x.device)
    angle = u[:, 0] * math.radians(max_rotation)
    zoom = 1.0 + u[:, 1] * max_scale
    # affine_grid maps output to input coordinates in [-1, 1]: a shift of f of the side is 2f there.
    shift = u[:, 2:] * (2.0 * max_shift)
    cos, sin = torch.cos(angle) / zoom, torch.sin(angle) / zoom
    theta = torch.stack([torch.stack([cos, -sin, shift[:, 0]], 1), torch.stack([sin, cos, shift[:, 1]], 1)], 1)
    grid = torch.nn.functional.affine_grid(theta, list(x.shape), align_corners=False)
    return torch.nn.functional.grid_sample(x, grid, mode="bilinear", padding_mode="border", align_corners=False)


AUGMENTATIONS = ("auto", "none", "shift", "affine")


def augmentation(augment: str, input_shape: tuple[int, ...]):
    """The training augmentation every estimator uses: ``augment(x, generator)`` or ``None``.

    One meaning per data kind. Vector rows (``input_shape`` of length 1): none (estimators
    add their own feature noise where their method needs it). Images ``(C, H, W)``:
    ``"affine"``: :func:`affine_warp`; ``"shift"``: :func:`random_shift` by about 1/12 of
    the smaller side (2 px on 28×28, at least 1); ``"none"``: none; ``"auto"``: ``"affine"``
    on images of at least 12 px a side, else shifts of 1/12 of the side (none under 12 px),
    since a rotation or zoom of a few pixels destroys a tiny image.
    """
    if augment not in AUGMENTATIONS:
        raise ValueError(f"augment must be one of {AUGMENTATIONS}, got {augment!r}.")
    if len(input_shape) != 3 or augment == "none":
        return None
    side = min(input_shape[1:])
    if augment == "affine" or (augment == "auto" and side >= 12):
        return affine_warp
    shift = side // 12 if augment == "auto" else max(side // 12, 1)
    return functools.partial(random_shift, max_shift=shift) if shift else None
