"""Learning from positive and unlabeled rows: nnPU, Elkan–Noto, spies; class-prior estimation."""

from __future__ import annotations

import math
import time
from collections.abc import Callable
from functools import partial
from numbers import Integral, Real
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from sklearn.base import clone
from sklearn.utils.multiclass import check_classification_targets
from sklearn.utils.validation import check_is_fitted

from . import _progress
from ._base import LabelEstimatorBase
from ._compat import Interval, StrOptions, _fit_context, _safe_indexing
from ._crossfit import (
    backbone_kind,
    choose_weights,
    cross_fit_proba,
    fit_model,
    mix,
    models_proba,
    stratified_folds,
    table_backbones,
)
from ._engine import Feed, History, LearningRate, Progress, StepOut, fit_epochs, run_epoch
from ._train import AUGMENTATIONS, adam, augmentation, batched_forward, lr_factor

# ---------------------------------------------------------------------------
# Pure functions: labels, losses, batches, prior estimation.
# ---------------------------------------------------------------------------

_UNLABELED_MARKERS = (0, -1)
_PRIOR_MAX_UNLABELED = 10_000  # unlabeled rows that train each prior network (all of them are scored)
_PRIOR_STEPS_PER_EPOCH = 100  # small data: each prior network gets at least this many steps per prior_epoch
#: Folds of the cross-fitted labeled-vs-unlabeled models of the tabular backbones (``estimator="auto"``).
TABLE_FOLDS = 5
#: ``class_prior_interval_``: bootstrap resamples of the held-out scores, and the interval's coverage.
PRIOR_BOOTSTRAPS = 200
PRIOR_LEVEL = 0.95


def pu_indicator(y: np.ndarray, pos_label: Any = 1) -> np.ndarray:
    """Return ``s``: 1 for labeled positives (``y == pos_label``), 0 for unlabeled rows, as int64.

    With the default ``pos_label=1`` every other value must be ``0`` or ``-1``; with any
    other ``pos_label`` every other value marks an unlabeled row.
    """
    y = np.asarray(y)
    check_classification_targets(y)
    if y.dtype.kind == "f" and not np.all(np.isfinite(y)):
        raise ValueError("y contains NaN or infinity; mark unlabeled rows with 0 or -1 instead.")
    s = (y == pos_label).astype(np.int64)
    if pos_label == 1 and not isinstance(pos_label, bool):
        others = np.unique(y[s == 0]) if (s == 0).any() else np.array([])
        bad = [v for v in others.tolist() if v not in _UNLABELED_MARKERS]
        if bad:
            raise ValueError(
                f"Only binary classification is supported. y holds labels {bad[:5]} outside the expected set "
                "{1, 0, -1}: 1 marks a labeled positive, "
                "0 or -1 an unlabeled row. Recode y, or pass pos_label=<your positive value> to treat every "
                "other value as unlabeled."
            )
    return s


def check_pu_rows(s: np.ndarray, pos_label: Any) -> None:
    """Raise a clear error when ``s`` has too few rows, no labeled positives or no unlabeled rows."""
    if s.shape[0] < 2:
        raise ValueError(f"PUClassifier needs at least 2 samples, got n_samples={s.shape[0]}.")
    if not s.any():
        raise ValueError(
            f"y has no labeled positives (no value equals pos_label={pos_label!r}), so it holds only one class; "
            "mark the known positives with pos_label, or set pos_label to the value that marks them."
        )
    if s.all():
        raise ValueError(
            f"y has no unlabeled rows (every value equals pos_label={pos_label!r}), so it holds only one class; "
            "PU learning needs unlabeled rows marked 0 or -1 next to the labeled positives."
        )


def sigmoid_loss(z: torch.Tensor, sign: float) -> torch.Tensor:
    """``ℓ(z, t) = σ(−t·z)``: bounded, the loss of Kiryo et al. (2017)."""
    return torch.sigmoid(-sign * z)


def logistic_loss(z: torch.Tensor, sign: float) -> torch.Tensor:
    """``ℓ(z, t) = log(1 + exp(−t·z))``: proper, so ``σ(z)`` estimates ``p(y=1 | x)``."""
    return F.softplus(-sign * z)


_LOSSES = {"sigmoid": sigmoid_loss, "logistic": logistic_loss}


def nnpu_loss(
    z: torch.Tensor,
    s: torch.Tensor,
    prior: float,
    *,
    loss: str = "sigmoid",
    beta: float = 0.0,
    gamma: float = 1.0,
    non_negative: bool = True,
) -> tuple[torch.Tensor, dict[str, float]]:
    """The PU risk of Kiryo et al. (NeurIPS 2017) on one batch of logits ``z`` and indicators ``s``.

    ``R = π·R_p⁺ + (R_u⁻ − π·R_p⁻)``. The second term estimates the risk of the negatives
    and cannot be below zero; a flexible model drives it there by over-fitting (uPU). With
    ``non_negative`` the objective becomes ``−γ·(R_u⁻ − π·R_p⁻)`` whenever that term is
    below ``−β``: a step back up instead of further down. ``prior`` is the positive share of
    the unlabeled sample (:class:`PUClassifier` uses all training rows, so it is ``π``).
    Returns the objective to minimise and the batch statistics.
    """
    ell = _LOSSES[loss]
    zp, zu = z[s == 1], z[s == 0]
    risk_pos = ell(zp, 1.0).mean()
    negative = ell(zu, -1.0).mean() - prior * ell(zp, -1.0).mean()
    corrected = non_negative and float(negative.detach()) < -beta
    objective = -gamma * negative if corrected else prior * risk_pos + negative
    risk = prior * risk_pos + (negative.clamp_min(0.0) if non_negative else negative)
    stats = {
        "risk": float(risk.detach()),
        "positive_risk": float(prior * risk_pos.detach()),
        "negative_risk": float(negative.detach()),
        "corrected": float(corrected),
    }
    return objective, stats


def pu_batches(
    n_pos: int, n_unl: int, batch_size: int, generator: torch.Generator, pos_share: float = 0.25
) -> list[tuple[torch.Tensor, torch.Tensor]]:
    """One epoch of ``(positive indices, unlabeled indices)`` batches: each unlabeled row once.

    Every batch holds at least ``pos_share`` labeled positives (cycled through shuffled
    passes), so the positive risk is estimated on every step even when positives are rare.
    """
    b_pos, b_unl = _pu_batch_sizes(n_pos, n_unl, batch_size, pos_share)
    unl = torch.randperm(n_unl, generator=generator).split(b_unl)
    need = len(unl) * b_pos
    passes = [torch.randperm(n_pos, generator=generator) for _ in range(math.ceil(need / n_pos))]
    pos = torch.cat(passes)[:need].split(b_pos)
    return list(zip(pos, unl, strict=True))


def _pu_batch_sizes(n_pos: int, n_unl: int, batch_size: int, pos_share: float) -> tuple[int, int]:
    """Positives and unlabeled rows in each batch of :func:`pu_batches`."""
    share = max(n_pos / (n_pos + n_unl), pos_share)
    b_pos = min(n_pos, max(1, round(batch_size * share)))
    return b_pos, max(1, batch_size - b_pos)


def pu_steps(n_pos: int, n_unl: int, batch_size: int, pos_share: float = 0.25) -> int:
    """Batches in one epoch of :func:`pu_batches`, without drawing its random numbers.

    Examples
    --------
    >>> pu_steps(10, 90, 20)
    6
    """
    return max(1, math.ceil(n_unl / _pu_batch_sizes(n_pos, n_unl, batch_size, pos_share)[1]))


def pu_step(
    net: torch.nn.Module,
    loss_fn: Callable[[torch.Tensor, torch.Tensor], tuple[torch.Tensor, dict[str, float]]],
    feed: Feed,
    pos: torch.Tensor,
    unl: torch.Tensor,
    batch: tuple[torch.Tensor, torch.Tensor],
) -> StepOut:
    """One step on a batch of :func:`pu_batches`: ``loss_fn(logits, s)``, ``s`` 1 for the positives, 0 for the rest.

    The loss and the statistics are summed on the host (``loss_fn`` reads its risks there anyway).
    """
    bp, bu = batch
    idx = torch.cat([pos[bp], unl[bu]])
    xb = feed.x(idx)
    s = torch.cat([torch.ones(len(bp)), torch.zeros(len(bu))]).to(feed.device)
    loss, stats = loss_fn(net(xb)[:, 0].float(), s)
    b = len(idx)
    return StepOut(loss, {"loss": float(loss.detach()) * b, **{k: v * b for k, v in stats.items()}}, b)


def _phase_title(tag: str, spy_iterations: int) -> str:
    """The progress phase of a ``history_`` phase tag: ``"prior_fold0"`` → ``"class prior, fold 1/2"``."""
    if tag.startswith("prior_fold"):
        return f"class prior, fold {int(tag[len('prior_fold') :]) + 1}/2"
    if tag.startswith("pn"):
        return f"negatives {int(tag[2:]) + 1}/{spy_iterations}"
    return {"nnpu": "nnPU", "upu": "uPU", "elkan_noto": "Elkan-Noto", "spy": "spies"}.get(tag, tag)


def oversampling_offset(n_pos: int, n_neg: int, batch_size: int, pos_share: float = 0.25) -> float:
    """Logit correction ``−log w`` undoing the positive oversampling of :func:`pu_batches`.

    Training on batches with ``w`` times the natural positive-to-negative ratio shifts the
    logits by ``log w`` (a prior shift); subtracting it restores the natural frequencies.
    """
    share = max(n_pos / (n_pos + n_neg), pos_share)
    b_pos = min(n_pos, max(1, round(batch_size * share)))
    b_neg = max(1, batch_size - b_pos)
    return float(-math.log((b_pos / b_neg) / (n_pos / n_neg)))


def bbe_mixture_proportion(
    scores_pos: np.ndarray, scores_unl: np.ndarray, delta: float = 0.1, gamma: float = 0.01
) -> float:
    """Share of positives among unlabeled rows by Best Bin Estimation (Garg et al., NeurIPS 2021).

    ``scores_*`` are held-out scores of a labeled-vs-unlabeled classifier (only their order
    matters). For every threshold ``t``, ``q_u(t) / q_p(t)`` — the shares of unlabeled and
    of labeled-positive rows scoring at least ``t`` — bounds the proportion from above,
    with equality on a top bin that holds positives only. The threshold minimising the
    paper's upper confidence bound ``(q_u + (1 + γ)·(√(log(4/δ)/2n_u) + √(log(4/δ)/2n_p))) / q_p``
    is picked and its ratio returned.
    """
    sp, su = np.sort(scores_pos), np.sort(scores_unl)
    n_p, n_u = sp.shape[0], su.shape[0]
    q_p = (n_p - np.searchsorted(sp, sp, side="left")) / n_p
    q_u = (n_u - np.searchsorted(su, sp, side="left")) / n_u
    slack = (1.0 + gamma) * (math.sqrt(math.log(4 / delta) / (2 * n_u)) + math.sqrt(math.log(4 / delta) / (2 * n_p)))
    best = int(np.argmin((q_u + slack) / q_p))
    return float(np.clip(q_u[best] / q_p[best], 0.0, 1.0))


def prior_from_unlabeled_share(alpha: float, n_pos: int, n_unl: int) -> float:
    """``π = p(y=1)`` over all rows from the positive share ``α`` of the unlabeled rows."""
    return (n_pos + alpha * n_unl) / (n_pos + n_unl)


def bootstrap_prior_interval(
    scores: list[tuple[np.ndarray, np.ndarray]],
    n_pos: int,
    n_unl: int,
    *,
    n_boot: int = PRIOR_BOOTSTRAPS,
    level: float = PRIOR_LEVEL,
    seed: int = 0,
) -> tuple[float, float]:
    """Percentile bootstrap interval of the Best Bin Estimation prior, over the rows of its held-out scores.

    ``scores`` holds one ``(labeled-positive scores, unlabeled scores)`` pair per fold of
    held-out rows, exactly what :func:`bbe_mixture_proportion` read for the point estimate
    (the estimate is the mean of the folds' proportions). Each resample draws the rows of
    every fold with replacement and repeats the estimate on the same scores; no model is
    refitted, so the interval reflects the sampling of the rows that were scored, not the
    variation of the models themselves. Returns ``(low, high)`` of ``π`` over all rows
    (:func:`prior_from_unlabeled_share`).

    Examples
    --------
    >>> import numpy as np
    >>> rng = np.random.default_rng(0)
    >>> pos, unl = rng.normal(2, 1, 300), np.r_[rng.normal(2, 1, 300), rng.normal(-2, 1, 700)]
    >>> low, high = bootstrap_prior_interval([(pos, unl)], 300, 1000)
    >>> bool(low <= prior_from_unlabeled_share(0.3, 300, 1000) <= high)
    True
    """
    rng = np.random.default_rng(seed)
    draws = np.empty(n_boot)
    for b in range(n_boot):
        shares = [
            bbe_mixture_proportion(sp[rng.integers(len(sp), size=len(sp))], su[rng.integers(len(su), size=len(su))])
            for sp, su in scores
        ]
        draws[b] = prior_from_unlabeled_share(float(np.mean(shares)), n_pos, n_unl)
    low, high = np.quantile(draws, [(1.0 - level) / 2, (1.0 + level) / 2])
    return float(low), float(high)


def bootstrap_c_interval(
    held_scores: np.ndarray,
    p_labeled: float,
    *,
    n_boot: int = PRIOR_BOOTSTRAPS,
    level: float = PRIOR_LEVEL,
    seed: int = 0,
) -> tuple[float, float]:
    """Elkan and Noto's ``π = p(s=1) / c``, ``c`` the mean score of held-back positives: a bootstrap interval.

    The held-back positives' scores are resampled with replacement (no model is refitted).
    """
    rng = np.random.default_rng(seed)
    n = len(held_scores)
    c = np.clip(held_scores[rng.integers(n, size=(n_boot, n))].mean(axis=1), 1e-6, 1.0)
    draws = np.clip(p_labeled / c, p_labeled, 1.0)
    low, high = np.quantile(draws, [(1.0 - level) / 2, (1.0 + level) / 2])
    return float(low), float(high)


def prior_rank_labels(scores: np.ndarray, s: np.ndarray, alpha: float) -> np.ndarray:
    """0/1 training labels from the prior: the labeled positives and the top ``α`` share of the unlabeled rows are 1.

    ``scores`` are held-out labeled-vs-unlabeled scores (only their order among the
    unlabeled rows matters); ties keep the row order.

    Examples
    --------
    >>> import numpy as np
    >>> prior_rank_labels(np.array([0.9, 0.8, 0.1, 0.7, 0.2]), np.array([1, 0, 0, 0, 0]), 0.5).tolist()
    [1, 1, 0, 1, 0]
    """
    unl = np.flatnonzero(s == 0)
    n_top = int(round(alpha * len(unl)))
    labels = (s == 1).astype(np.int64)
    labels[unl[np.argsort(-scores[unl], kind="stable")[:n_top]]] = 1
    return labels


def unlabeled_share_from_prior(prior: float, n_pos: int, n_unl: int) -> float:
    """Positive share of the unlabeled rows implied by ``π`` over all rows (raises if ``π`` is too small)."""
    alpha = (prior * (n_pos + n_unl) - n_pos) / n_unl
    if alpha < 0.0:
        raise ValueError(
            f"prior={prior} implies at most {prior * (n_pos + n_unl):.0f} positives, but {n_pos} rows are labeled "
            "positive; prior is p(y=1) over all rows: pass a larger value or prior='auto'."
        )
    return float(min(alpha, 1.0))


def label_quality(proba: np.ndarray, pseudo: np.ndarray) -> np.ndarray:
    """Probability of each row's (pseudo) label: ``p`` where it is 1, ``1 − p`` where it is 0."""
    return np.where(pseudo == 1, proba, 1.0 - proba).astype(np.float32)


# ---------------------------------------------------------------------------
# The estimator: thin orchestration.
# ---------------------------------------------------------------------------


class PUClassifier(LabelEstimatorBase):
    """Binary classifier learned from labeled positives and unlabeled rows (PU learning).

    ``y`` marks labeled positives with ``1`` (``pos_label``) and unlabeled rows with ``0``
    or ``-1``. The classifier predicts ``0``/``1`` and a probability of being positive.

    Parameters
    ----------
    method : {"auto", "rank", "nnpu", "upu", "elkan_noto", "spy"}, default="auto"
        ``"auto"``: ``"rank"`` on tables (the backbone ``estimator="auto"`` picks for 2-D rows
        of at most 512 columns), ``"nnpu"`` on images, wide rows and with ``estimator="network"``.
        ``"rank"``: the prior is estimated from cross-fitted labeled-vs-unlabeled scores (see
        ``prior``); the labeled positives and the top ``α`` share of the unlabeled rows by that
        held-out score (``α`` the positive share of the unlabeled rows implied by the prior,
        :func:`prior_rank_labels`) become positives, the other rows negatives, and the backbone
        learns them as an ordinary positive-vs-negative classifier. It needs no calibrated
        probabilities, only the ranking that the prior estimate already relies on.
        ``"nnpu"``: the non-negative PU risk of Kiryo et al. (NeurIPS 2017) on the torch
        backbone (see :func:`nnpu_loss`); ``"upu"``: the same risk without the correction
        (du Plessis et al., 2015), for comparison. ``"elkan_noto"`` (KDD 2008): a classifier
        ``g`` of labeled vs unlabeled, ``c = p(s=1 | y=1)`` estimated as the mean of ``g`` on
        held-back labeled positives, ``p(y=1 | x) = g(x) / c`` clipped to 1. ``"spy"`` (Liu et
        al., 2002): hide ``spy_ratio`` of the positives among the unlabeled rows; unlabeled
        rows scoring below the spies' ``spy_quantile`` are reliable negatives; a
        positive-vs-negative classifier is trained on them (``spy_iterations`` rounds).
    prior : "auto" or float in (0, 1), default="auto"
        ``π = p(y=1)`` over all training rows. ``"auto"`` estimates it. For ``"nnpu"`` /
        ``"upu"`` / ``"spy"`` with Best Bin Estimation (Garg et al., NeurIPS 2021, see
        :func:`bbe_mixture_proportion`) on cross-fitted scores of a labeled-vs-unlabeled
        network: it needs only the *ranking* of that network, not calibrated probabilities
        (which ``c``-based estimates need and deep networks rarely give), and only
        that some top-scoring region is purely positive. For ``"elkan_noto"`` with Elkan and
        Noto's own estimate, ``π = p(s=1) / c``.
    loss : {"sigmoid", "logistic"}, default="sigmoid"
        Surrogate loss of nnPU/uPU.
    beta : float >= 0, default=0.0
        nnPU's ``β``: the negative risk may fall to ``−β`` before the correction engages.
    gamma : float in (0, 1], default=1.0
        nnPU's ``γ``: step size of the correction.
    estimator : "auto", "network", scikit-learn classifier or None, default="auto"
        The backbone. ``"auto"``: for ``"rank"`` on 2-D rows of at most 512 columns (and at
        most 200,000 rows), scikit-learn's gradient-boosted trees on the native columns
        (categories as categories, missing values kept) and a logistic regression on the
        one-hot view, cross-fitted in 5 folds; the one, or the equal mix, whose held-out
        probabilities of ``s`` fit best is kept (as ``CoTeachingFilter(estimator="auto")``
        does); otherwise the torch network. ``"network"`` (or ``None``): the torch network.
        A classifier with ``predict_proba`` (cloned, fitted on the flattened or one-hot rows):
        the backbone of ``"rank"``, ``"elkan_noto"`` and ``"spy"`` instead of the network.
    holdout_ratio : float in (0, 1), default=0.1
        ``"elkan_noto"``: share of the labeled positives held back to estimate ``c``.
    spy_ratio : float in (0, 1), default=0.15
    spy_quantile : float in [0, 1), default=0.05
        ``"spy"``: unlabeled rows scoring below this quantile of the spies' scores are
        reliable negatives.
    spy_iterations : int >= 1, default=1
        ``"spy"``: rounds of positive-vs-negative training; after each but the last,
        unlabeled rows predicted negative join the reliable negatives.
    negative_threshold : float in (0, 0.5], default=0.05
        ``"nnpu"``, ``"upu"``, ``"elkan_noto"``: unlabeled rows with ``p(y=1 | x)`` at most
        this are reliable negatives (in ``clean_mask_``).
    pos_label : hashable, default=1
        The value of ``y`` that marks a labeled positive. With the default every other
        value must be ``0`` or ``-1``; with another value, every other value is unlabeled.
    prior_epochs : int, default=3
        Epochs of each labeled-vs-unlabeled network trained to estimate the prior; on small
        data sets at least ``100 · prior_epochs`` optimizer steps (a ranking needs a trained
        network), and at most 10,000 unlabeled rows per network.
    max_epochs : int, default=15
    batch_size : int, default=256
        Rows per batch; at least a quarter of each batch are labeled positives.
    lr : float, default=1e-3
        Adam's learning rate; decays linearly over the second half of the epochs.
    weight_decay : float, default=0.0
    hidden_dims : sequence of int, default=(256, 256)
        Hidden widths of the default MLP (2-D inputs).
    dropout : float in [0, 1), default=0.0
    input_shape : tuple (C, H, W) or None, default=None
        Treat 2-D rows as images of this shape (default CNN).
    module : callable or None, default=None
        ``module(input_shape, 1) -> torch.nn.Module`` returning one logit per row.
    augment : {"auto", "none", "shift", "affine"}, default="shift"
        Image augmentation while training, as for every estimator: ``"shift"`` moves images by
        up to 1/12 of their side (2 px on 28×28), ``"affine"`` also rotates and zooms them,
        ``"auto"`` is ``"affine"`` from 12 px a side and shifts below; vector rows get none.
        The default, shifts, is the augmentation the PU defaults were chosen with
        (``docs/benchmarks.md#pucla``).
    device : str, default="auto"
    random_state : int, RandomState instance or None, default=None
        Seeds initialisation, splits and shuffling without touching global generators.
    verbose : int, default=0
    n_jobs : int or None, default=None
        Torch threads during ``fit`` and ``predict`` (restored afterwards). ``None`` leaves
        torch's setting (``OMP_NUM_THREADS`` when set, else all cores); ``-1`` uses all cores.

    Attributes
    ----------
    classes_ : ndarray ``[0, 1]``
    class_prior_ : float
        ``π`` used (estimated when ``prior="auto"``).
    class_prior_interval_ : tuple of float
        ``(low, high)``: a 95 % percentile bootstrap interval of the estimated ``π``, from 200
        resamples of the rows whose held-out scores made the estimate (Best Bin Estimation
        repeated on the same scores; for ``"elkan_noto"`` the held-back positives' scores
        behind ``c``). No model is refitted, so it is cheap, and it covers the sampling of the
        scored rows, not the spread between refitted models. ``(π, π)`` for a given prior.
    method_ : str
        ``method`` resolved (``"auto"`` → ``"rank"`` or ``"nnpu"``).
    backbone_ : {"table", "network", "estimator"}
        The backbone used: the default tabular models, the torch network, or ``estimator``.
    estimators_ : list of fitted scikit-learn classifiers
        ``"rank"`` with a tabular or given backbone: the final models (empty otherwise).
    backbone_weights_ : ndarray or None
        Their weights in the mix (:func:`labelclean._crossfit.choose_weights`).
    c_ : float
        Labeling frequency ``p(s=1 | y=1)``: estimated by ``"elkan_noto"``, else ``p(s=1) / π``.
    pseudo_labels_ : ndarray of int, shape (n_samples,)
        1 for labeled positives, the inferred 0/1 for unlabeled rows.
    clean_mask_ : ndarray of bool, shape (n_samples,)
        Labeled positives and reliable negatives.
    label_quality_ : ndarray of float32, shape (n_samples,)
        Model probability of the row's pseudo label.
    history_ : list of dict
        One entry per epoch: phase, risks (``negative_risk``, the share of batches
        ``corrected`` by nnPU), loss, seconds.
    networks_ : list of torch.nn.Module
        The trained network (empty with ``estimator=``).
    estimator_ : fitted scikit-learn classifier or None
    n_features_in_ : int

    Examples
    --------
    >>> import numpy as np
    >>> from sklearn.datasets import make_classification
    >>> from labelclean.pu import PUClassifier
    >>> X, y_true = make_classification(600, n_features=8, class_sep=2.0, random_state=0)
    >>> rng = np.random.default_rng(0)
    >>> y_pu = np.where((y_true == 1) & (rng.random(600) < 0.5), 1, 0)  # half of the positives labeled
    >>> clf = PUClassifier(hidden_dims=(64,), max_epochs=10, prior_epochs=1, random_state=0).fit(X, y_pu)
    >>> bool(abs(clf.class_prior_ - y_true.mean()) < 0.1), bool(clf.score(X, y_true) > 0.85)
    (True, True)
    """

    _parameter_constraints: dict = {
        **LabelEstimatorBase._parameter_constraints,
        "method": [StrOptions({"auto", "rank", "nnpu", "upu", "elkan_noto", "spy"})],
        "prior": [StrOptions({"auto"}), Interval(Real, 0.0, 1.0, closed="neither")],
        "loss": [StrOptions({"sigmoid", "logistic"})],
        "beta": [Interval(Real, 0.0, None, closed="left")],
        "gamma": [Interval(Real, 0.0, 1.0, closed="right")],
        "estimator": "no_validation",  # checked in fit (HasMethods is not in _compat)
        "holdout_ratio": [Interval(Real, 0.0, 1.0, closed="neither")],
        "spy_ratio": [Interval(Real, 0.0, 1.0, closed="neither")],
        "spy_quantile": [Interval(Real, 0.0, 1.0, closed="left")],
        "spy_iterations": [Interval(Integral, 1, None, closed="left")],
        "negative_threshold": [Interval(Real, 0.0, 0.5, closed="right")],
        "pos_label": "no_validation",
        "prior_epochs": [Interval(Integral, 1, None, closed="left")],
        "augment": [StrOptions(set(AUGMENTATIONS))],
    }

    def __init__(
        self,
        *,
        method: str = "auto",
        prior: float | str = "auto",
        loss: str = "sigmoid",
        beta: float = 0.0,
        gamma: float = 1.0,
        estimator: Any = "auto",
        holdout_ratio: float = 0.1,
        spy_ratio: float = 0.15,
        spy_quantile: float = 0.05,
        spy_iterations: int = 1,
        negative_threshold: float = 0.05,
        pos_label: Any = 1,
        prior_epochs: int = 3,
        max_epochs: int = 15,
        batch_size: int = 256,
        lr: float = 1e-3,
        weight_decay: float = 0.0,
        hidden_dims: tuple[int, ...] = (256, 256),
        dropout: float = 0.0,
        input_shape: tuple[int, ...] | None = None,
        module: Any = None,
        augment: str = "shift",
        device: str = "auto",
        random_state: Any = None,
        verbose: int = 0,
        n_jobs: int | None = None,
    ) -> None:
        self.method = method
        self.prior = prior
        self.loss = loss
        self.beta = beta
        self.gamma = gamma
        self.estimator = estimator
        self.holdout_ratio = holdout_ratio
        self.spy_ratio = spy_ratio
        self.spy_quantile = spy_quantile
        self.spy_iterations = spy_iterations
        self.negative_threshold = negative_threshold
        self.pos_label = pos_label
        self.prior_epochs = prior_epochs
        self.max_epochs = max_epochs
        self.batch_size = batch_size
        self.lr = lr
        self.weight_decay = weight_decay
        self.hidden_dims = hidden_dims
        self.dropout = dropout
        self.input_shape = input_shape
        self.module = module
        self.augment = augment
        self.device = device
        self.random_state = random_state
        self.verbose = verbose
        self.n_jobs = n_jobs

    # -- training pieces ---------------------------------------------------
    def _augmenter(self):
        return augmentation(self.augment, self.input_shape_)

    def _run_epochs(self, net, X, pos, unl, loss_fn, epochs: int, gen: torch.Generator, phase: str) -> None:
        """Train ``net`` for ``epochs`` on batches of positives ``pos`` and other rows ``unl`` (:func:`pu_step`)."""
        optimizer = adam(net.parameters(), self.lr, self.weight_decay)
        feed = Feed(X, self.device_, gen, self._augmenter())
        step = partial(pu_step, net, loss_fn, feed, pos, unl)
        plan = partial(pu_batches, len(pos), len(unl), self.batch_size, gen)
        callbacks = [
            LearningRate(optimizer, lambda e: self.lr * lr_factor(e, epochs)),
            Progress(self.device_),
            History(self.history_, {"phase": phase}, verbose=self.verbose, name="PUClassifier"),
        ]
        fit_epochs(
            epochs,
            lambda e: run_epoch(step, plan(), optimizer, [net], callbacks),
            callbacks,
            phase=_phase_title(phase, self.spy_iterations),
            steps=pu_steps(len(pos), len(unl), self.batch_size),
        )

    def _fit_binary(self, X, pos, neg, epochs: int, gen: torch.Generator, phase: str, *, use_estimator: bool):
        """A positives-vs-rest model on rows ``pos``/``neg``; returns ``predict(rows) -> p`` at natural frequencies.

        The model is also kept as the estimator's final model (``networks_`` or ``estimator_``).
        """
        if use_estimator and self.backbone_ == "estimator":
            est = clone(self.estimator)
            rows = torch.cat([pos, neg]).numpy()
            with _progress.phase(_phase_title(phase, self.spy_iterations), 1, unit="fits"):
                targets = np.r_[np.ones(len(pos)), np.zeros(len(neg))].astype(int)
                est.fit(X[rows].reshape(len(rows), -1).numpy(), targets)
                _progress.advance(1, rows=len(rows))
            self.networks_, self.estimator_, self._logit_offset = [], est, 0.0
            column = list(est.classes_).index(1)
            return lambda r: est.predict_proba(X[r].reshape(len(r), -1).numpy())[:, column].astype(np.float32)
        net = self._new_net(1)
        self._run_epochs(
            net, X, pos, neg, lambda z, s: (F.binary_cross_entropy_with_logits(z, s), {}), epochs, gen, phase
        )
        offset = oversampling_offset(len(pos), len(neg), self.batch_size)
        self.networks_, self.estimator_, self._logit_offset = [net], None, offset
        return lambda r: self._net_proba(net, X, offset, rows=r)

    def _net_proba(self, net, X: torch.Tensor, offset: float = 0.0, rows: torch.Tensor | None = None) -> np.ndarray:
        """``σ(z + offset)`` for ``X`` (or its ``rows``), batch by batch (``batched_forward``)."""
        net.eval()
        return batched_forward(lambda xb: torch.sigmoid(net(xb)[:, 0].float() + offset), X, self.device_, rows=rows)

    # -- class prior ---------------------------------------------------------
    @staticmethod
    def _check_prior_rows(n_pos: int, n_unl: int) -> None:
        if n_pos < 4 or n_unl < 4:
            raise ValueError(
                f"prior='auto' needs at least 4 labeled positives and 4 unlabeled rows to estimate the class "
                f"prior (got {n_pos} and {n_unl}); pass prior=<p(y=1)> instead."
            )

    def _estimate_unlabeled_share(self, X, pos, unl, gen) -> float:
        """Best Bin Estimation on two-fold cross-fitted labeled-vs-unlabeled scores (see ``prior``)."""
        self._check_prior_rows(len(pos), len(unl))
        order_p, order_u = torch.randperm(len(pos), generator=gen), torch.randperm(len(unl), generator=gen)
        shares, self._prior_scores, self._held_out = [], [], []
        for k in (0, 1):
            train_pos, held_pos = pos[order_p[1 - k :: 2]], pos[order_p[k::2]]
            train_unl, held_unl = unl[order_u[1 - k :: 2]][:_PRIOR_MAX_UNLABELED], unl[order_u[k::2]]
            steps = len(pu_batches(len(train_pos), len(train_unl), self.batch_size, gen))
            epochs = min(max(self.prior_epochs, math.ceil(_PRIOR_STEPS_PER_EPOCH * self.prior_epochs / steps)), 50)
            predict = self._fit_binary(X, train_pos, train_unl, epochs, gen, f"prior_fold{k}", use_estimator=False)
            scores_pos, scores_unl = predict(held_pos), predict(held_unl)
            shares.append(bbe_mixture_proportion(scores_pos, scores_unl))
            self._prior_scores.append((scores_pos, scores_unl))
            self._held_out.append((held_unl.numpy(), scores_unl))
        return float(np.mean(shares))

    # -- methods -------------------------------------------------------------
    def _fit_nnpu(self, X, pos, n_rows: int, prior: float, gen):
        """nnPU/uPU with every training row as the unlabeled sample of the marginal ``p(x)`` (prior ``π``).

        The labeled positives are part of that sample too (single-training-set PU): the
        risk then weighs positives by ``π`` over all rows, which stays above zero even when
        no unlabeled row is positive.
        """
        net = self._new_net(1)
        nn_flag = self.method_ == "nnpu"
        loss_fn = partial(
            nnpu_loss, prior=prior, loss=self.loss, beta=self.beta, gamma=self.gamma, non_negative=nn_flag
        )
        self._run_epochs(net, X, pos, torch.arange(n_rows), loss_fn, self.max_epochs, gen, self.method_)
        self.networks_, self._logit_offset = [net], 0.0
        return lambda r: self._net_proba(net, X, rows=r)

    def _fit_elkan_noto(self, X, pos, unl, gen):
        held = torch.randperm(len(pos), generator=gen)[: max(1, round(self.holdout_ratio * len(pos)))]
        train_pos = pos[np.setdiff1d(np.arange(len(pos)), held.numpy())]
        if len(train_pos) == 0:
            raise ValueError("elkan_noto needs at least 2 labeled positives (one to train, one to estimate c).")
        g = self._fit_binary(X, train_pos, unl, self.max_epochs, gen, "elkan_noto", use_estimator=True)
        if self.prior == "auto":  # Elkan & Noto's estimator e1: the mean of g on held-back positives
            self._held_c = g(pos[held])
            self.c_ = float(np.clip(np.mean(self._held_c), 1e-6, 1.0))
        else:  # a given prior fixes c = p(s=1) / π
            self.c_ = min(1.0, len(pos) / (float(self.prior) * (len(pos) + len(unl))))
        return g

    def _fit_spy(self, X, pos, unl, gen):
        order = torch.randperm(len(pos), generator=gen)
        n_spy = min(len(pos) - 1, max(1, round(self.spy_ratio * len(pos))))
        if n_spy < 1:
            raise ValueError("method='spy' needs at least 2 labeled positives (spies and positives to train on).")
        spies, kept = pos[order[:n_spy]], pos[order[n_spy:]]
        g = self._fit_binary(X, kept, torch.cat([unl, spies]), self.max_epochs, gen, "spy", use_estimator=True)
        g_unl = g(unl)
        threshold = max(float(np.quantile(g(spies), self.spy_quantile)), float(g_unl.min()))
        negatives = unl[torch.from_numpy(g_unl <= threshold)]
        for it in range(self.spy_iterations):
            f = self._fit_binary(X, pos, negatives, self.max_epochs, gen, f"pn{it}", use_estimator=True)
            if it + 1 < self.spy_iterations:
                more = unl[torch.from_numpy(f(unl) < 0.5)]
                negatives = torch.unique(torch.cat([negatives, more]))
        self._spy_negatives = negatives
        return f

    # -- fit ------------------------------------------------------------------
    @_fit_context(prefer_skip_nested_validation=True)
    def fit(self, X: Any, y: Any) -> PUClassifier:
        """Learn from labeled positives and unlabeled rows, then fill the row contract.

        Parameters
        ----------
        X : array-like of shape (n_samples, n_features), or an image array
        y : array-like of shape (n_samples,)
            ``pos_label`` (default 1) for labeled positives; 0 or -1 for unlabeled rows.

        Returns
        -------
        self
        """
        if y is None:
            raise ValueError(
                "PUClassifier requires y to be passed, but the target y is None; pass 1 for labeled positives "
                "and 0 or -1 for unlabeled rows."
            )
        self._check_estimator_param()
        Xt, y_raw = self._prepare(X, y)
        s = pu_indicator(y_raw, self.pos_label)
        check_pu_rows(s, self.pos_label)
        self.classes_ = np.array([0, 1])
        self.history_, self.networks_, self.estimator_, self._logit_offset = [], [], None, 0.0
        self.estimators_, self.backbone_weights_ = [], None
        self._prior_scores, self._held_out, self._held_c = [], [], None
        self.backbone_ = backbone_kind(
            self.estimator,
            module=self.module,
            input_shape=self.input_shape_,
            n_features=int(np.prod(self.input_shape_)),
            n_rows=len(s),
        )
        self.method_ = self.method
        if self.method == "auto":
            self.method_ = "rank" if self.backbone_ == "table" else "nnpu"
        if self.method_ != "rank" and self.backbone_ == "table":  # the other methods train the network
            self.backbone_ = "network"
        pos, unl = torch.from_numpy(np.flatnonzero(s)), torch.from_numpy(np.flatnonzero(s == 0))
        gen = self._generator()
        with self._seeded():
            if self.method_ == "rank" and self.backbone_ != "network":
                alpha, proba = self._fit_rank_models(X, Xt, s)
            else:
                alpha = self._unlabeled_share(Xt, pos, unl, gen)
                if self.method_ == "elkan_noto":
                    predict = self._fit_elkan_noto(Xt, pos, unl, gen)
                elif self.method_ == "spy":
                    predict = self._fit_spy(Xt, pos, unl, gen)
                elif self.method_ == "rank":
                    predict = self._fit_rank_network(Xt, s, pos, unl, alpha, gen)
                else:
                    prior = prior_from_unlabeled_share(alpha, len(pos), len(unl))
                    predict = self._fit_nnpu(Xt, pos, len(s), prior, gen)
                proba = self._calibrate(predict(torch.arange(len(s))))
        self._finish(s, proba, alpha)
        return self

    # -- "rank" ---------------------------------------------------------------
    def _fit_rank_models(self, X: Any, Xt: torch.Tensor, s: np.ndarray) -> tuple[float, np.ndarray]:
        """``"rank"`` on scikit-learn backbones: cross-fitted scores, the prior, then the final models.

        Returns the positive share of the unlabeled rows and the final models' ``p(y=1 | x)``
        for every training row.
        """
        if self.prior == "auto":
            self._check_prior_rows(int(s.sum()), int((s == 0).sum()))
        views = {"dense": Xt.numpy().reshape(len(s), -1)}
        mask = np.zeros(views["dense"].shape[1], dtype=bool)
        if self.backbone_ == "table":
            views["codes"], mask = self._tree_view(X)
        backbones = table_backbones(self.backbone_, self.estimator, mask, self._seed)
        folds = stratified_folds(s, TABLE_FOLDS, self._seed)
        t0 = time.perf_counter()
        with _progress.phase("class prior (cross-fitting)", len(np.unique(folds)), unit="folds"):
            probas = cross_fit_proba(backbones, views, s, folds, 2)
        weights = choose_weights(probas, s) if len(backbones) > 1 else np.ones(1)
        scores = mix(probas, weights)[:, 1]
        self.history_.append({"phase": "prior_crossfit", "seconds": time.perf_counter() - t0})
        pos, unl = np.flatnonzero(s == 1), np.flatnonzero(s == 0)
        if self.prior == "auto":
            self._prior_scores = [(scores[pos], scores[unl])]
            alpha = bbe_mixture_proportion(scores[pos], scores[unl])
        else:
            alpha = unlabeled_share_from_prior(float(self.prior), len(pos), len(unl))
        target = prior_rank_labels(scores, s, alpha)
        if target.all():  # every row positive: nothing to contrast, keep the labeled rows as the only positives
            target = s.astype(np.int64)
        t0 = time.perf_counter()
        backbones = [b for b, w in zip(backbones, weights) if w > 0]
        self.backbone_weights_ = np.asarray(weights[weights > 0], dtype=np.float64)
        with _progress.phase("final models", len(backbones), unit="fits"):
            self.estimators_ = []
            for b in backbones:
                self.estimators_.append(fit_model(b.model, views[b.view], target, np.arange(len(s))))
                _progress.advance(1, rows=len(s))
        self._estimator_views = [b.view for b in backbones]
        self.history_.append({"phase": "rank", "rows": len(s), "seconds": time.perf_counter() - t0})
        return alpha, self._models_proba(views)

    def _models_proba(self, views: dict[str, np.ndarray]) -> np.ndarray:
        """``p(y=1 | x)`` of the final scikit-learn models, mixed by ``backbone_weights_``."""
        return models_proba(self.estimators_, self._estimator_views, views, self.backbone_weights_, 2)[:, 1]

    def _fit_rank_network(self, X, s, pos, unl, alpha: float, gen):
        """``"rank"`` on the torch network: each half of the unlabeled rows ranked by the network that never saw it."""
        target = (s == 1).astype(np.int64)
        if self._held_out:
            for rows, scores in self._held_out:  # the two prior networks' scales differ: rank within each half
                top = rows[np.argsort(-scores, kind="stable")[: int(round(alpha * len(rows)))]]
                target[top] = 1
        else:  # a given prior: no held-out scores yet, so one labeled-vs-unlabeled network ranks the rows
            g = self._fit_binary(X, pos, unl, self.max_epochs, gen, "rank_scores", use_estimator=True)
            target = prior_rank_labels(g(torch.arange(len(s))), s, alpha)
        positives = torch.from_numpy(np.flatnonzero(target == 1))
        negatives = torch.from_numpy(np.flatnonzero(target == 0))
        if len(negatives) == 0:
            positives, negatives = pos, unl
        return self._fit_binary(X, positives, negatives, self.max_epochs, gen, "rank", use_estimator=True)

    def _check_estimator_param(self) -> None:
        if self.estimator is None:
            return
        if isinstance(self.estimator, str):
            if self.estimator not in ("auto", "network"):
                raise TypeError(
                    f"estimator={self.estimator!r} is neither 'auto', 'network' nor a scikit-learn classifier with fit "
                    "and predict_proba; e.g. LogisticRegression(), or 'network' for the torch network."
                )
            return
        if not (hasattr(self.estimator, "fit") and hasattr(self.estimator, "predict_proba")):
            raise TypeError(
                f"estimator must be a scikit-learn classifier with fit and predict_proba, got "
                f"{type(self.estimator).__name__}; e.g. LogisticRegression(), or None for the torch network."
            )
        if self.method in ("nnpu", "upu"):
            raise ValueError(
                f"estimator= is used by 'rank', 'elkan_noto' and 'spy'; method={self.method!r} trains a torch "
                "network: pass module= to change its backbone, or choose another method."
            )

    def _unlabeled_share(self, X, pos, unl, gen) -> float | None:
        if self.prior != "auto":
            return unlabeled_share_from_prior(float(self.prior), len(pos), len(unl))
        if self.method_ == "elkan_noto":
            return None
        return self._estimate_unlabeled_share(X, pos, unl, gen)

    def _calibrate(self, p: np.ndarray) -> np.ndarray:
        divisor = getattr(self, "c_", None) if self.method_ == "elkan_noto" else None
        return p if divisor is None else np.clip(p / divisor, 0.0, 1.0).astype(np.float32)

    def _prior_interval(self, n_pos: int, n_unl: int, n_rows: int) -> tuple[float, float]:
        """``class_prior_interval_``: a bootstrap over the scored rows behind the estimate, holding the estimate."""
        if self.prior != "auto":
            return (float(self.prior), float(self.prior))
        seed = self._seed + 1
        if self.method_ == "elkan_noto":
            low, high = bootstrap_c_interval(np.asarray(self._held_c, dtype=np.float64), n_pos / n_rows, seed=seed)
        else:
            low, high = bootstrap_prior_interval(self._prior_scores, n_pos, n_unl, seed=seed)
        return (min(low, self.class_prior_), max(high, self.class_prior_))

    def _finish(self, s: np.ndarray, proba: np.ndarray, alpha: float | None) -> None:
        """Fill ``class_prior_``, ``c_`` and the row contract."""
        n_pos, n_unl = int(s.sum()), int((s == 0).sum())
        if self.method_ == "elkan_noto":  # π = p(s=1) / c
            self.class_prior_ = float(np.clip(n_pos / len(s) / self.c_, n_pos / len(s), 1.0))
        else:
            self.class_prior_ = prior_from_unlabeled_share(alpha, n_pos, n_unl)
            self.c_ = n_pos / (self.class_prior_ * len(s))
        self.class_prior_interval_ = self._prior_interval(n_pos, n_unl, len(s))
        del self._prior_scores, self._held_out, self._held_c
        self.pseudo_labels_ = np.where(s == 1, 1, (proba >= 0.5).astype(np.int64))
        if self.method_ == "spy":
            reliable = np.zeros(len(s), dtype=bool)
            reliable[self._spy_negatives.numpy()] = True
            del self._spy_negatives
        else:
            reliable = (s == 0) & (proba <= self.negative_threshold)
        self.pseudo_labels_[reliable] = 0
        self.clean_mask_ = (s == 1) | reliable
        self.label_quality_ = label_quality(proba, self.pseudo_labels_)

    # -- prediction -----------------------------------------------------------
    def predict_proba(self, X: Any) -> np.ndarray:
        """Calibrated probabilities ``[p(y=0 | x), p(y=1 | x)]``, never above 1.

        Parameters
        ----------
        X : array-like of shape (n_samples, n_features) or image array
            Rows shaped like the training rows.

        Returns
        -------
        ndarray of shape (n_samples, 2), float32
        """
        check_is_fitted(self, "class_prior_")
        Xr, _ = self._validate_X(X, reset=False)
        if self.estimators_:
            views = {"dense": Xr.reshape(len(Xr), -1)}
            if self.backbone_ == "table":
                views["codes"], _ = self._tree_view(X)
            p = self._models_proba(views)
        elif self.estimator_ is not None:
            column = list(self.estimator_.classes_).index(1)
            p = self.estimator_.predict_proba(Xr.reshape(len(Xr), -1))[:, column].astype(np.float32)
        else:
            with self._threads():
                p = self._net_proba(self.networks_[0], torch.from_numpy(Xr), self._logit_offset)
        p = self._calibrate(p)
        return np.stack([1.0 - p, p], axis=1).astype(np.float32)

    def predict(self, X: Any) -> np.ndarray:
        """``1`` where ``p(y=1 | x) >= 0.5``, else ``0``."""
        return (self.predict_proba(X)[:, 1] >= 0.5).astype(np.int64)

    def fit_resample(self, X: Any, y: Any) -> tuple[Any, Any]:
        """Fit, then return the trusted rows (``clean_mask_``) with their inferred 0/1 labels.

        Labeled positives come back as 1, reliable negatives as 0. Container types are kept
        (a pandas ``y`` keeps its index and name).
        """
        self.fit(X, y)
        keep = np.flatnonzero(self.clean_mask_)
        y_kept = _safe_indexing(y, keep)
        labels = self.pseudo_labels_[keep]
        if hasattr(y_kept, "iloc"):
            y_kept = y_kept.copy()
            y_kept[:] = labels
        else:
            y_kept = labels
        return _safe_indexing(X, keep), y_kept

    def __sklearn_tags__(self):
        tags = super().__sklearn_tags__()
        tags.classifier_tags.multi_class = False
        return tags
