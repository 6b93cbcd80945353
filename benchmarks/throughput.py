"""Pure arithmetic of the speed section: training FLOPs of an MLP, epochs read from ``history_``, scaling fits.

FLOPs are counted analytically. A dense layer of ``i`` inputs and ``o`` outputs costs
``2·i·o`` floating-point operations per row forward (one multiply and one add per weight).
Backward, every layer computes the gradient of its weights (another ``2·i·o``) and every
layer but the first the gradient of its inputs (``2·i·o`` again): the first layer's input is
the data, which needs no gradient, and autograd skips that product (a profile of one
training step shows three weight-gradient and two input-gradient matrix products per
3-layer network). Batch norm, ReLU, the loss and the optimizer step are element-wise and
left out, so the count slightly understates the work done.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence

import numpy as np

# Phases of CoTeachingFilter.history_ whose networks train on only a share of the rows per
# epoch; every other phase is taken to train each network on all rows. "warmup" (forget_rate
# "auto") trains two throw-away networks, each on one half, and then each predicts the other half.
PHASE_ROW_SHARE: dict[str, float] = {"warmup": 0.5}
# Phases that train networks that are thrown away: not part of the final networks' epochs.
THROWAWAY_PHASES = frozenset({"warmup"})


def mlp_layers(n_features: int, hidden_dims: Sequence[int], n_classes: int) -> list[tuple[int, int]]:
    """``(inputs, outputs)`` of each dense layer of ``MLP(n_features, n_classes, hidden_dims)``."""
    widths = [n_features, *hidden_dims, n_classes]
    return list(zip(widths[:-1], widths[1:]))


def forward_flops_per_row(layers: Iterable[tuple[int, int]]) -> float:
    """Forward FLOPs of one row through dense layers: ``2 · Σ inputs · outputs``."""
    return float(sum(2 * i * o for i, o in layers))


def train_flops_per_row(layers: Iterable[tuple[int, int]]) -> float:
    """FLOPs of one training step per row: forward, weight gradients, and input gradients past the first layer."""
    layers = list(layers)
    forward = forward_flops_per_row(layers)
    return 2.0 * forward + forward_flops_per_row(layers[1:])


def rows_from_history(history: Sequence[Mapping], n_rows: int, n_nets: int = 2) -> dict[str, float]:
    """Network-rows trained and predicted in the epochs recorded by ``CoTeachingFilter.history_``.

    Returns ``trained`` (rows × networks that took a training step), ``predicted`` (rows ×
    networks run forward only inside a recorded epoch: the warm-up's out-of-fold predictions),
    ``seconds`` (the sum of the epochs' ``seconds``) and ``epochs`` (the number of entries).
    """
    trained = predicted = seconds = 0.0
    for entry in history:
        share = PHASE_ROW_SHARE.get(str(entry.get("phase")), 1.0)
        trained += n_nets * share * n_rows
        if "oof_disagreement" in entry:  # the warm-up scores each held-out half inside its epoch
            predicted += n_nets * (1.0 - share) * n_rows
        seconds += float(entry.get("seconds", 0.0))
    return {"trained": trained, "predicted": predicted, "seconds": seconds, "epochs": float(len(history))}


def training_flops(layers: Sequence[tuple[int, int]], trained_rows: float, predicted_rows: float = 0.0) -> float:
    """Total FLOPs of ``trained_rows`` training steps and ``predicted_rows`` forward passes (network-rows)."""
    return train_flops_per_row(layers) * trained_rows + forward_flops_per_row(layers) * predicted_rows


def final_network_epochs(history: Sequence[Mapping]) -> int:
    """Epochs each of the final networks trained on all rows: ``history_`` entries outside throw-away phases.

    This is the per-model epoch budget the suite gives the skorch MLP of the cleanlab peer.
    """
    return sum(1 for entry in history if str(entry.get("phase")) not in THROWAWAY_PHASES)


def loglog_slope(n_rows: Sequence[float], seconds: Sequence[float]) -> float:
    """Exponent ``k`` of the least-squares fit ``seconds ∝ n_rows^k`` (1 = linear growth)."""
    k, _ = np.polyfit(np.log(np.asarray(n_rows, float)), np.log(np.asarray(seconds, float)), 1)
    return float(k)


def linear_fit(n_rows: Sequence[float], seconds: Sequence[float]) -> dict[str, float]:
    """Least-squares ``seconds = intercept + slope · n_rows``, its R² and the log–log exponent."""
    x, y = np.asarray(n_rows, float), np.asarray(seconds, float)
    slope, intercept = np.polyfit(x, y, 1)
    residual = y - (intercept + slope * x)
    total = float(np.sum((y - y.mean()) ** 2))
    r2 = 1.0 - float(np.sum(residual**2)) / total if total > 0 else 1.0
    return {
        "intercept_s": float(intercept),
        "seconds_per_1k_rows": float(slope) * 1000,
        "r2": r2,
        "exponent": loglog_slope(x, y),
    }
