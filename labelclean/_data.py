"""Input kinds → float32 arrays of shape ``(n, *input_shape)``; batching without needless copies."""

from __future__ import annotations

import numpy as np
import torch

_CHANNEL_SIZES = (1, 2, 3, 4)


def reshape_input(X: np.ndarray, input_shape: tuple[int, ...] | None) -> np.ndarray:
    """Return a view of ``X`` shaped ``(n, *shape)``: ``(n, d)`` for vectors, ``(n, C, H, W)`` for images.

    Accepts 2-D rows (optionally with ``input_shape=(C, H, W)``), ``N×H×W`` and
    ``N×C×H×W`` / ``N×H×W×C`` image arrays. Channels-last arrays are detected by a last
    axis of size 1–4 and a second axis that is not.
    """
    if X.ndim > 2 and 0 in X.shape[1:]:
        raise ValueError(f"X has shape {X.shape}: an image axis of length 0 holds no features; check how X was built.")
    if X.ndim == 2:
        if input_shape is None:
            return X
        shape = tuple(int(s) for s in input_shape)
        if len(shape) == 2:
            shape = (1, *shape)
        if len(shape) != 3 or int(np.prod(shape)) != X.shape[1]:
            raise ValueError(
                f"input_shape={tuple(input_shape)} does not fit rows of {X.shape[1]} features; "
                f"pass (C, H, W) with C*H*W == {X.shape[1]}, or input_shape=None for plain vectors."
            )
        return X.reshape(X.shape[0], *shape)
    if input_shape is not None:
        raise ValueError(
            f"input_shape is only used with 2-D X, but X has shape {X.shape}; drop input_shape or flatten X."
        )
    if X.ndim == 3:
        return X[:, None, :, :]
    if X.ndim == 4:
        if X.shape[-1] in _CHANNEL_SIZES and X.shape[1] not in _CHANNEL_SIZES:
            return np.ascontiguousarray(X.transpose(0, 3, 1, 2))
        return X
    raise ValueError(
        f"X has {X.ndim} dimensions (shape {X.shape}); expected 2-D rows (n_samples, n_features), "
        "3-D images (n, H, W) or 4-D images (n, C, H, W) / (n, H, W, C)."
    )


def input_stats(X: np.ndarray, max_rows: int = 100_000) -> tuple[torch.Tensor, torch.Tensor]:
    """Mean and scale for input standardization: per feature for vectors, per channel for images.

    Computed on at most ``max_rows`` evenly spaced rows (no copy of the full data).
    """
    step = max(1, X.shape[0] // max_rows)
    sample = X[::step]
    if X.ndim == 2:
        mean = sample.mean(axis=0, dtype=np.float64)
        std = sample.std(axis=0, dtype=np.float64)
        view: tuple[int, ...] = (X.shape[1],)
    else:
        axes = (0, 2, 3)
        mean = sample.mean(axis=axes, dtype=np.float64)
        std = sample.std(axis=axes, dtype=np.float64)
        view = (X.shape[1], 1, 1)
    std = np.where(std > 1e-12, std, 1.0)
    return (
        torch.from_numpy(mean.astype(np.float32)).reshape(view),
        torch.from_numpy(std.astype(np.float32)).reshape(view),
    )


def batches(n: int, batch_size: int, generator: torch.Generator | None = None) -> list[torch.Tensor]:
    """Split ``range(n)`` into index batches, shuffled with ``generator`` when given.

    A last batch of a single row is merged into the previous one (batch norm needs two rows).

    Examples
    --------
    >>> import torch
    >>> [len(b) for b in batches(257, 128)], [len(b) for b in batches(3, 2)]
    ([128, 129], [3])
    >>> sorted(torch.cat(batches(9, 4, torch.Generator().manual_seed(0))).tolist()) == list(range(9))
    True
    """
    order = torch.randperm(n, generator=generator) if generator is not None else torch.arange(n)
    out = list(torch.split(order, batch_size))
    if len(out) > 1 and len(out[-1]) < 2:
        last = out.pop()
        out[-1] = torch.cat([out[-1], last])
    return out
