"""Learning from positive and unlabeled rows: nnPU, Elkan–Noto, spies; class-prior estimation.

The risks, batches and steps of the papers are the functions below; the class prior's estimators
live in :mod:`labelclean._pu_prior` and are re-exported here. :class:`PUClassifier` orchestrates them.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
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
    Backbone,
    backbone_kind,
    choose_weights,
    cross_fit_proba,
    mix,
    models_proba,
    stratified_folds,
    table_backbones,
)
from ._engine import Feed, History, LearningRate, Progress, StepOut, fit_epochs, run_epoch
from ._pu_prior import (
    PRIOR_BOOTSTRAPS,
    PRIOR_LEVEL,
    bbe_mixture_proportion,
    bootstrap_c_interval,
    bootstrap_prior_interval,
    check_prior_rows,
    elkan_noto_prior,
    held_out_rank_labels,
    prior_from_unlabeled_share,
    prior_interval,
    prior_rank_labels,
    unlabeled_share_from_prior,
)
from ._train import AUGMENTATIONS, adam, batched_forward, lr_factor

__all__ = [
    "PRIOR_BOOTSTRAPS",
    "PRIOR_LEVEL",
    "TABLE_FOLDS",
    "PUClassifier",
    "bbe_mixture_proportion",
    "bootstrap_c_interval",
    "bootstrap_prior_interval",
    "check_prior_rows",
    "check_pu_rows",
    "elkan_noto_prior",
    "held_out_rank_labels",
    "label_quality",
    "logistic_loss",
    "nnpu_loss",
    "oversampling_offset",
    "prior_from_unlabeled_share",
    "prior_interval",
    "prior_rank_labels",
    "pu_batches",
    "pu_indicator",
    "pu_row_contract",
    "pu_step",
    "pu_steps",
    "sigmoid_loss",
    "spy_negatives",
    "unlabeled_share_from_prior",
]

# ---------------------------------------------------------------------------
# Pure functions: labels, losses, batches, the row contract.
# ---------------------------------------------------------------------------

_UNLABELED_MARKERS = (0, -1)
_PRIOR_MAX_UNLABELED = 10_000  # unlabeled rows that train each prior network (all of them are scored)
_PRIOR_STEPS_PER_EPOCH = 100  # small data: each prior network gets at least this many steps per prior_epoch
#: Folds of the cross-fitted labeled-vs-unlabeled models of the tabular backbones (``estimator="auto"``).
TABLE_FOLDS = 5


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


def oversampling_offset(n_pos: int, n_neg: int, batch_size: int, pos_share: float = 0.25) -> float:
    """Logit correction ``−log w`` undoing the positive oversampling of :func:`pu_batches`.

    Training on batches with ``w`` times the natural positive-to-negative ratio shifts the
    logits by ``log w`` (a prior shift); subtracting it restores the natural frequencies.
    """
    b_pos, b_neg = _pu_batch_sizes(n_pos, n_neg, batch_size, pos_share)
    return float(-math.log((b_pos / b_neg) / (n_pos / n_neg)))


def spy_negatives(scores_spies: np.ndarray, scores_unl: np.ndarray, quantile: float) -> np.ndarray:
    """The spy technique's reliable negatives (Liu et al., ICML 2002): a mask of the unlabeled rows.

    Labeled positives hidden among the unlabeled rows (the spies) show how low a positive
    can score; unlabeled rows scoring at most the spies' ``quantile`` are taken as
    negatives (at least the lowest-scoring unlabeled row).
    """
    threshold = max(float(np.quantile(scores_spies, quantile)), float(scores_unl.min()))
    return scores_unl <= threshold


def label_quality(proba: np.ndarray, pseudo: np.ndarray) -> np.ndarray:
    """Probability of each row's (pseudo) label: ``p`` where it is 1, ``1 − p`` where it is 0."""
    return np.where(pseudo == 1, proba, 1.0 - proba).astype(np.float32)


def pu_row_contract(s: np.ndarray, proba: np.ndarray, reliable: np.ndarray) -> tuple[np.ndarray, ...]:
    """``pseudo_labels_``, ``clean_mask_`` and ``label_quality_`` from ``p(y=1 | x)`` and the reliable negatives.

    Labeled positives stay 1, reliable negatives become 0, every other unlabeled row takes
    the more probable label; the labeled positives and the reliable negatives are trusted.
    """
    pseudo = np.where(s == 1, 1, (proba >= 0.5).astype(np.int64))
    pseudo[reliable] = 0
    return pseudo, (s == 1) | reliable, label_quality(proba, pseudo)


# ---------------------------------------------------------------------------
# Training pieces: the models PUClassifier fits, and the scores it reads from them.
# ---------------------------------------------------------------------------


def _phase_title(tag: str, spy_iterations: int) -> str:
    """The progress phase of a ``history_`` phase tag: ``"prior_fold0"`` → ``"class prior, fold 1/2"``."""
    if tag.startswith("prior_fold"):
        return f"class prior, fold {int(tag[len('prior_fold') :]) + 1}/2"
    if tag.startswith("pn"):
        return f"negatives {int(tag[2:]) + 1}/{spy_iterations}"
    return {"nnpu": "nnPU", "upu": "uPU", "elkan_noto": "Elkan-Noto", "spy": "spies"}.get(tag, tag)


def _bce_loss(z: torch.Tensor, s: torch.Tensor) -> tuple[torch.Tensor, dict[str, float]]:
    """Positives-vs-rest cross-entropy on logits ``z``, the loss of a plain binary network."""
    return F.binary_cross_entropy_with_logits(z, s), {}


def _pu_epochs(net, loss_fn, feed: Feed, pos, unl, optimizer, callbacks, epochs: int, batch_size: int, title: str):
    """``epochs`` of :func:`pu_step` on :func:`pu_batches` of rows ``pos`` and ``unl``, one progress phase ``title``."""
    step = partial(pu_step, net, loss_fn, feed, pos, unl)
    plan = partial(pu_batches, len(pos), len(unl), batch_size, feed.generator)
    steps = pu_steps(len(pos), len(unl), batch_size)
    fit_epochs(
        epochs, lambda e: run_epoch(step, plan(), optimizer, [net], callbacks), callbacks, phase=title, steps=steps
    )


def _sigmoid_scores(net, X: torch.Tensor, device: torch.device, offset: float, rows=None) -> np.ndarray:
    """``σ(z + offset)`` of a one-logit network for ``X`` (or its ``rows``), batch by batch."""
    net.eval()
    return batched_forward(lambda xb: torch.sigmoid(net(xb)[:, 0].float() + offset), X, device, rows=rows)


def _positive_proba(model: Any, X: np.ndarray) -> np.ndarray:
    """``p(1 | x)`` of a fitted scikit-learn classifier on 2-D rows, as float32."""
    return model.predict_proba(X)[:, list(model.classes_).index(1)].astype(np.float32)


def _fit_classifier(estimator: Any, X: torch.Tensor, pos, neg, title: str) -> tuple[Any, Callable]:
    """A fitted clone of ``estimator``: rows ``pos`` as 1, ``neg`` as 0 (flattened); and its ``predict(rows)``."""
    est = clone(estimator)
    rows = torch.cat([pos, neg]).numpy()
    with _progress.phase(title, 1, unit="fits"):
        targets = np.r_[np.ones(len(pos)), np.zeros(len(neg))].astype(int)
        est.fit(X[rows].reshape(len(rows), -1).numpy(), targets)
        _progress.advance(1, rows=len(rows))
    return est, lambda r: _positive_proba(est, X[r].reshape(len(r), -1).numpy())


def _cross_fitted_share(fit: Callable, pos, unl, generator: torch.Generator, *, batch_size: int, prior_epochs: int):
    """Best Bin Estimation on two-fold cross-fitted labeled-vs-unlabeled scores of the networks.

    ``fit(train_pos, train_unl, tag, epochs)`` trains a labeled-vs-unlabeled network and returns
    its ``predict(rows)``; each half of the rows is scored by the network trained on the other
    half (on at most ``_PRIOR_MAX_UNLABELED`` unlabeled rows, for at least
    ``_PRIOR_STEPS_PER_EPOCH · prior_epochs`` steps). Returns the positive share of the unlabeled
    rows (the folds' mean), the ``(labeled-positive, unlabeled)`` held-out scores of each fold and
    each fold's ``(unlabeled rows, their scores)``.
    """
    order_p, order_u = torch.randperm(len(pos), generator=generator), torch.randperm(len(unl), generator=generator)
    shares, scores, held_out = [], [], []
    for k in (0, 1):
        train_pos, held_pos = pos[order_p[1 - k :: 2]], pos[order_p[k::2]]
        train_unl, held_unl = unl[order_u[1 - k :: 2]][:_PRIOR_MAX_UNLABELED], unl[order_u[k::2]]
        steps = len(
            pu_batches(len(train_pos), len(train_unl), batch_size, generator)
        )  # drawn, not counted: it advances the generator
        epochs = min(max(prior_epochs, math.ceil(_PRIOR_STEPS_PER_EPOCH * prior_epochs / steps)), 50)
        predict = fit(train_pos, train_unl, f"prior_fold{k}", epochs)
        scores_pos, scores_unl = predict(held_pos), predict(held_unl)
        shares.append(bbe_mixture_proportion(scores_pos, scores_unl))
        scores.append((scores_pos, scores_unl))
        held_out.append((held_unl.numpy(), scores_unl))
    return float(np.mean(shares)), scores, held_out


def _cross_fitted_scores(
    backbones: Sequence[Backbone], views, s: np.ndarray, seed: int, history: list
) -> tuple[np.ndarray, np.ndarray]:
    """Held-out ``p(s=1 | x)`` of every row from ``TABLE_FOLDS``-fold cross-fitted backbones, and their weights.

    The weights pick the backbone, or the equal mix, whose held-out probabilities fit ``s``
    best (:func:`~labelclean._crossfit.choose_weights`); ``history`` gets the phase's time.
    """
    folds = stratified_folds(s, TABLE_FOLDS, seed)
    t0 = time.perf_counter()
    with _progress.phase("class prior (cross-fitting)", len(np.unique(folds)), unit="folds"):
        probas = cross_fit_proba(backbones, views, s, folds, 2)
    weights = choose_weights(probas, s) if len(backbones) > 1 else np.ones(1)
    history.append({"phase": "prior_crossfit", "seconds": time.perf_counter() - t0})
    return mix(probas, weights)[:, 1], weights


# ---------------------------------------------------------------------------
# The methods' steps, on any positives-vs-rest learner ``fit(positives, negatives, tag) -> predict``.
# ---------------------------------------------------------------------------

_Fit = Callable[[torch.Tensor, torch.Tensor, str], Callable[[torch.Tensor], np.ndarray]]


def _elkan_noto(fit: _Fit, pos, unl, generator: torch.Generator, holdout_ratio: float, prior: Any):
    """Elkan and Noto (KDD 2008): a labeled-vs-unlabeled model ``g`` on all but the held-back positives.

    ``fit(positives, negatives, tag)`` fits a model and returns its ``predict(rows) -> p``.
    Returns ``g``, ``c = p(s=1 | y=1)`` and the scores behind it: for ``prior="auto"`` the
    held-back positives' mean score (the paper's estimator e1), else ``p(s=1) / π``.
    """
    held = torch.randperm(len(pos), generator=generator)[: max(1, round(holdout_ratio * len(pos)))]
    train_pos = pos[np.setdiff1d(np.arange(len(pos)), held.numpy())]
    if len(train_pos) == 0:
        raise ValueError("elkan_noto needs at least 2 labeled positives (one to train, one to estimate c).")
    g = fit(train_pos, unl, "elkan_noto")
    if prior != "auto":
        return g, min(1.0, len(pos) / (float(prior) * (len(pos) + len(unl)))), None
    held_scores = g(pos[held])
    return g, float(np.clip(np.mean(held_scores), 1e-6, 1.0)), held_scores


def _spies(fit: _Fit, pos, unl, generator: torch.Generator, *, ratio: float, quantile: float, iterations: int):
    """The spy technique (Liu et al., ICML 2002), with ``fit`` as in :func:`_elkan_noto`.

    A ``ratio`` share of the positives hides among the unlabeled rows for a labeled-vs-unlabeled
    model; :func:`spy_negatives` reads the reliable negatives off its scores; ``iterations``
    positive-vs-negative models follow, each but the last adding the unlabeled rows it
    predicts negative. Returns the last model's ``predict`` and the reliable negatives.
    """
    order = torch.randperm(len(pos), generator=generator)
    n_spy = min(len(pos) - 1, max(1, round(ratio * len(pos))))
    if n_spy < 1:
        raise ValueError("method='spy' needs at least 2 labeled positives (spies and positives to train on).")
    spies, kept = pos[order[:n_spy]], pos[order[n_spy:]]
    g = fit(kept, torch.cat([unl, spies]), "spy")
    g_unl = g(unl)
    negatives = unl[torch.from_numpy(spy_negatives(g(spies), g_unl, quantile))]
    for it in range(iterations):
        f = fit(pos, negatives, f"pn{it}")
        if it + 1 < iterations:
            more = unl[torch.from_numpy(f(unl) < 0.5)]
            negatives = torch.unique(torch.cat([negatives, more]))
    return f, negatives


def _rank(fit: _Fit, s: np.ndarray, pos, unl, alpha: float, held_out: list):
    """``"rank"`` with ``fit`` as in :func:`_elkan_noto`: a positive-vs-negative model on the prior's ranked labels.

    The unlabeled rows are ranked within each fold by their ``held_out`` scores
    (:func:`held_out_rank_labels`), or, without them (a given prior), by one
    labeled-vs-unlabeled model (:func:`prior_rank_labels`).
    """
    if held_out:
        target = held_out_rank_labels(s, held_out, alpha)
    else:
        target = prior_rank_labels(fit(pos, unl, "rank_scores")(torch.arange(len(s))), s, alpha)
    positives = torch.from_numpy(np.flatnonzero(target == 1))
    negatives = torch.from_numpy(np.flatnonzero(target == 0))
    if len(negatives) == 0:
        positives, negatives = pos, unl
    return fit(positives, negatives, "rank")


def _rank_targets(scores: np.ndarray, s: np.ndarray, prior: Any) -> tuple[float, np.ndarray]:
    """``"rank"`` on held-out scores of every row: ``α`` and the 0/1 targets (:func:`prior_rank_labels`).

    ``α`` is Best Bin Estimation's for ``prior="auto"``, else the share ``prior`` implies. When
    every row would be positive, the labeled positives stay the only ones (nothing to contrast).
    """
    pos, unl = np.flatnonzero(s == 1), np.flatnonzero(s == 0)
    if prior == "auto":
        alpha = bbe_mixture_proportion(scores[pos], scores[unl])
    else:
        alpha = unlabeled_share_from_prior(float(prior), len(pos), len(unl))
    target = prior_rank_labels(scores, s, alpha)
    return alpha, (s.astype(np.int64) if target.all() else target)


def _check_inputs(estimator: Any, method: str, y: Any) -> None:
    """Clear errors for a missing ``y`` and for an ``estimator`` that is no classifier or that ``method`` cannot use."""
    if y is None:
        raise ValueError(
            "PUClassifier requires y to be passed, but the target y is None; pass 1 for labeled positives "
            "and 0 or -1 for unlabeled rows."
        )
    if estimator is None:
        return
    if isinstance(estimator, str):
        if estimator not in ("auto", "network"):
            raise TypeError(
                f"estimator={estimator!r} is neither 'auto', 'network' nor a scikit-learn classifier with fit "
                "and predict_proba; e.g. LogisticRegression(), or 'network' for the torch network."
            )
        return
    if not (hasattr(estimator, "fit") and hasattr(estimator, "predict_proba")):
        raise TypeError(
            f"estimator must be a scikit-learn classifier with fit and predict_proba, got "
            f"{type(estimator).__name__}; e.g. LogisticRegression(), or None for the torch network."
        )
    if method in ("nnpu", "upu"):
        raise ValueError(
            f"estimator= is used by 'rank', 'elkan_noto' and 'spy'; method={method!r} trains a torch "
            "network: pass module= to change its backbone, or choose another method."
        )


def _resolve_method(method: str, backbone: str) -> tuple[str, str]:
    """``(backbone_, method_)``: ``"auto"`` is ``"rank"`` on the tabular backbones, else ``"nnpu"``.

    Every method but ``"rank"`` trains the network where ``"auto"`` picked the tabular backbones.
    """
    if method == "auto":
        method = "rank" if backbone == "table" else "nnpu"
    if method != "rank" and backbone == "table":
        backbone = "network"
    return backbone, method


def _with_values(y: Any, values: np.ndarray) -> Any:
    """``values`` in the container of ``y``: a pandas ``y`` keeps its index and name; otherwise ``values``."""
    if not hasattr(y, "iloc"):
        return values
    y = y.copy()
    y[:] = values
    return y


@dataclass
class _Evidence:
    """What a fit reads besides its final model until the row contract is filled (never stored)."""

    scores: list = field(default_factory=list)  # held-out (labeled-positive, unlabeled) scores behind the prior
    held_out: list = field(default_factory=list)  # per fold: (unlabeled rows, their held-out scores)
    held_c: np.ndarray | None = None  # Elkan–Noto: the held-back positives' scores behind c
    negatives: torch.Tensor | None = None  # spies: the reliable negatives


# ---------------------------------------------------------------------------
# The estimator: thin orchestration.
# ---------------------------------------------------------------------------


class PUClassifier(LabelEstimatorBase):
    """Binary classifier learned from labeled positives and unlabeled rows (PU learning).

    ``y`` marks labeled positives with ``1`` (``pos_label``) and unlabeled rows with ``0``
    or ``-1``. The classifier predicts ``0``/``1`` and a probability of being positive.
    How the defaults were chosen: ``docs/benchmarks.md#real-defaults`` (tables) and
    ``docs/benchmarks.md#pucla`` (images).

    Parameters
    ----------
    method : {"auto", "rank", "nnpu", "upu", "elkan_noto", "spy"}, default="auto"
        ``"auto"``: ``"rank"`` where ``estimator="auto"`` picks the tabular backbones, else
        ``"nnpu"``. ``"rank"``: the labeled positives and the top ``α`` share of the unlabeled
        rows by a held-out labeled-vs-unlabeled score (``α`` implied by the prior,
        :func:`prior_rank_labels`) become positives, the rest negatives, and the backbone learns
        them as an ordinary classifier (only the ranking matters, no calibration). ``"nnpu"``:
        the non-negative PU risk of Kiryo et al. (NeurIPS 2017, :func:`nnpu_loss`) on the
        network; ``"upu"``: the same risk uncorrected (du Plessis et al., 2015).
        ``"elkan_noto"`` (KDD 2008): a labeled-vs-unlabeled classifier ``g`` and
        ``p(y=1 | x) = g(x) / c``, ``c`` its mean on held-back positives. ``"spy"`` (Liu et al.,
        2002): spies hidden among the unlabeled rows find reliable negatives
        (:func:`spy_negatives`), which a positive-vs-negative classifier then learns.
    prior : "auto" or float in (0, 1), default="auto"
        ``π = p(y=1)`` over all training rows. ``"auto"`` estimates it by Best Bin Estimation
        (Garg et al., NeurIPS 2021, :func:`bbe_mixture_proportion`) on cross-fitted
        labeled-vs-unlabeled scores, which needs only their ranking, or, for ``"elkan_noto"``,
        as ``p(s=1) / c``.
    loss : {"sigmoid", "logistic"}, default="sigmoid"
        Surrogate loss of nnPU/uPU.
    beta : float >= 0, default=0.0
        nnPU's ``β``: the negative risk may fall to ``−β`` before the correction engages.
    gamma : float in (0, 1], default=1.0
        nnPU's ``γ``: step size of the correction.
    estimator : "auto", "network", scikit-learn classifier or None, default="auto"
        The backbone. ``"auto"``: for ``"rank"`` on tables (2-D rows of at most 512 columns and
        200,000 rows) gradient-boosted trees and a logistic regression, cross-fitted in
        ``TABLE_FOLDS`` folds, as in ``CoTeachingFilter``; otherwise the torch network, as with
        ``"network"`` or ``None``. A classifier with ``predict_proba`` (cloned, fitted on the
        flattened or one-hot rows): the backbone of ``"rank"``, ``"elkan_noto"`` and ``"spy"``.
    holdout_ratio : float in (0, 1), default=0.1
        ``"elkan_noto"``: share of the labeled positives held back to estimate ``c``.
    spy_ratio : float in (0, 1), default=0.15
        ``"spy"``: share of the labeled positives hidden among the unlabeled rows.
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
        Epochs of each labeled-vs-unlabeled network of the prior estimate: at least
        ``100 · prior_epochs`` steps, on at most 10,000 unlabeled rows.
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
        Image augmentation while training, as for every estimator
        (:func:`~labelclean._train.augmentation`); vector rows get none. The default is the
        augmentation the PU defaults were chosen with (``docs/benchmarks.md#pucla``).
    device : str, default="auto"
    random_state : int, RandomState instance or None, default=None
        Seeds initialisation, splits and shuffling without touching global generators.
    verbose : int, default=0
    n_jobs : int or None, default=None
        Torch threads during ``fit`` and ``predict`` (restored afterwards); ``None`` leaves
        torch's setting, ``-1`` uses all cores.

    Attributes
    ----------
    classes_ : ndarray ``[0, 1]``
    class_prior_ : float
        ``π`` used (estimated when ``prior="auto"``).
    class_prior_interval_ : tuple of float
        ``(low, high)``: a percentile bootstrap interval of the estimated ``π`` over the rows
        whose held-out scores made it, no model refitted (:func:`prior_interval`); ``(π, π)``
        for a given prior.
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
        One entry per epoch: phase, loss, risks (``corrected``: the share of batches nnPU
        corrected), seconds.
    phase_seconds_ : dict of str to float
        Seconds of each phase of the fit, named as its progress shows them (``"nnPU"``, ...).
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
        _check_inputs(self.estimator, self.method, y)
        Xt, y_raw = self._prepare(X, y)
        s = pu_indicator(y_raw, self.pos_label)
        check_pu_rows(s, self.pos_label)
        self.classes_ = np.array([0, 1])
        self.history_, self.networks_, self.estimator_, self._logit_offset = [], [], None, 0.0
        self.estimators_, self.backbone_weights_ = [], None
        n_features = int(np.prod(self.input_shape_))
        kind = backbone_kind(
            self.estimator, module=self.module, input_shape=self.input_shape_, n_features=n_features, n_rows=len(s)
        )
        self.backbone_, self.method_ = _resolve_method(self.method, kind)
        pos, unl = torch.from_numpy(np.flatnonzero(s)), torch.from_numpy(np.flatnonzero(s == 0))
        gen, evidence = self._generator(), _Evidence()
        with self._seeded():
            if self.method_ == "rank" and self.backbone_ != "network":
                alpha, proba = self._fit_rank_models(X, Xt, s, evidence)
            else:
                alpha = self._unlabeled_share(Xt, pos, unl, gen, evidence)
                method = {"elkan_noto": self._fit_elkan_noto, "spy": self._fit_spy, "rank": self._fit_rank_network}
                predict = method.get(self.method_, self._fit_nnpu)(Xt, s, pos, unl, alpha, gen, evidence)
                proba = self._calibrate(predict(torch.arange(len(s))))
        self._finish(s, proba, alpha, evidence)
        return self

    # -- the models -----------------------------------------------------------
    def _train(self, net, X, pos, unl, loss_fn, epochs: int, gen: torch.Generator, phase: str) -> None:
        """Train ``net`` on batches of positives ``pos`` and rows ``unl``, recorded as ``history_`` phase ``phase``."""
        optimizer = adam(net.parameters(), self.lr, self.weight_decay)
        callbacks = [
            LearningRate(optimizer, lambda e: self.lr * lr_factor(e, epochs)),
            Progress(self.device_),
            History(self.history_, {"phase": phase}, verbose=self.verbose, name="PUClassifier"),
        ]
        feed = Feed(X, self.device_, gen, self._augmenter())
        title = _phase_title(phase, self.spy_iterations)
        _pu_epochs(net, loss_fn, feed, pos, unl, optimizer, callbacks, epochs, self.batch_size, title)

    def _fit_binary(self, X, gen: torch.Generator, pos, neg, phase: str, epochs=None, *, use_estimator: bool = True):
        """A positives-vs-rest model on rows ``pos``/``neg`` of ``X``, kept as the final model; ``predict(rows) -> p``.

        ``estimator`` where given (and ``use_estimator``), else a network trained for ``epochs``
        (``max_epochs``), whose ``p`` undoes the batches' oversampling (:func:`oversampling_offset`).
        """
        epochs = self.max_epochs if epochs is None else epochs
        if use_estimator and self.backbone_ == "estimator":
            est, predict = _fit_classifier(self.estimator, X, pos, neg, _phase_title(phase, self.spy_iterations))
            self.networks_, self.estimator_, self._logit_offset = [], est, 0.0
            return predict
        net = self._new_net(1)
        self._train(net, X, pos, neg, _bce_loss, epochs, gen, phase)
        offset = oversampling_offset(len(pos), len(neg), self.batch_size)
        self.networks_, self.estimator_, self._logit_offset = [net], None, offset
        return partial(_sigmoid_scores, net, X, self.device_, offset)

    def _unlabeled_share(self, X, pos, unl, gen, evidence: _Evidence) -> float | None:
        """``α``, the positive share of the unlabeled rows: from ``prior``, or estimated (see ``prior``)."""
        if self.prior != "auto":
            return unlabeled_share_from_prior(float(self.prior), len(pos), len(unl))
        if self.method_ == "elkan_noto":  # its prior comes from c
            return None
        check_prior_rows(len(pos), len(unl))
        fit = partial(self._fit_binary, X, gen, use_estimator=False)
        share = _cross_fitted_share(fit, pos, unl, gen, batch_size=self.batch_size, prior_epochs=self.prior_epochs)
        alpha, evidence.scores, evidence.held_out = share
        return alpha

    def _fit_nnpu(self, X, s, pos, unl, alpha, gen, evidence: _Evidence):
        """nnPU/uPU with every training row, the labeled positives too, as the sample of ``p(x)`` (prior ``π``).

        In this single-training-set PU the risk weighs positives by ``π`` over all rows, which
        stays above zero even when no unlabeled row is positive.
        """
        net = self._new_net(1)
        prior, nn = prior_from_unlabeled_share(alpha, len(pos), len(unl)), self.method_ == "nnpu"
        loss_fn = partial(nnpu_loss, prior=prior, loss=self.loss, beta=self.beta, gamma=self.gamma, non_negative=nn)
        self._train(net, X, pos, torch.arange(len(s)), loss_fn, self.max_epochs, gen, self.method_)
        self.networks_, self._logit_offset = [net], 0.0
        return partial(_sigmoid_scores, net, X, self.device_, 0.0)

    def _fit_elkan_noto(self, X, s, pos, unl, alpha, gen, evidence: _Evidence):
        fit = partial(self._fit_binary, X, gen)
        g, self.c_, evidence.held_c = _elkan_noto(fit, pos, unl, gen, self.holdout_ratio, self.prior)
        return g

    def _fit_spy(self, X, s, pos, unl, alpha, gen, evidence: _Evidence):
        params = dict(ratio=self.spy_ratio, quantile=self.spy_quantile, iterations=self.spy_iterations)
        predict, evidence.negatives = _spies(partial(self._fit_binary, X, gen), pos, unl, gen, **params)
        return predict

    def _fit_rank_network(self, X, s, pos, unl, alpha, gen, evidence: _Evidence):
        return _rank(partial(self._fit_binary, X, gen), s, pos, unl, alpha, evidence.held_out)

    def _fit_rank_models(self, X: Any, Xt: torch.Tensor, s: np.ndarray, evidence: _Evidence):
        """``"rank"`` on scikit-learn backbones: cross-fitted scores, the prior, then the final models.

        Returns ``α`` and the final models' ``p(y=1 | x)`` for every training row.
        """
        if self.prior == "auto":
            check_prior_rows(int(s.sum()), int((s == 0).sum()))
        views, mask = self._table_views(X, Xt.numpy())
        backbones = table_backbones(self.backbone_, self.estimator, mask, self._seed)
        scores, weights = _cross_fitted_scores(backbones, views, s, self._seed, self.history_)
        evidence.scores = [(scores[s == 1], scores[s == 0])]  # read by the interval only when prior="auto"
        alpha, target = _rank_targets(scores, s, self.prior)
        t0 = time.perf_counter()
        self.backbone_weights_ = np.asarray(weights[weights > 0], dtype=np.float64)
        self._fit_final_models([b for b, w in zip(backbones, weights) if w > 0], views, target, np.arange(len(s)))
        self.history_.append({"phase": "rank", "rows": len(s), "seconds": time.perf_counter() - t0})
        return alpha, self._models_proba(views)

    def _models_proba(self, views: dict[str, np.ndarray]) -> np.ndarray:
        """``p(y=1 | x)`` of the final scikit-learn models, mixed by ``backbone_weights_``."""
        return models_proba(self.estimators_, self._estimator_views, views, self.backbone_weights_, 2)[:, 1]

    def _calibrate(self, p: np.ndarray) -> np.ndarray:
        """Elkan–Noto's ``p(y=1 | x) = g(x) / c`` clipped to 1; ``p`` itself for the other methods."""
        divisor = getattr(self, "c_", None) if self.method_ == "elkan_noto" else None
        return p if divisor is None else np.clip(p / divisor, 0.0, 1.0).astype(np.float32)

    def _finish(self, s: np.ndarray, proba: np.ndarray, alpha: float | None, evidence: _Evidence) -> None:
        """Fill ``class_prior_``, ``c_``, ``class_prior_interval_`` and the row contract."""
        n_pos, n_unl = int(s.sum()), int((s == 0).sum())
        if self.method_ == "elkan_noto":  # π = p(s=1) / c
            self.class_prior_ = elkan_noto_prior(n_pos, len(s), self.c_)
        else:
            self.class_prior_ = prior_from_unlabeled_share(alpha, n_pos, n_unl)
            self.c_ = n_pos / (self.class_prior_ * len(s))
        self.class_prior_interval_ = prior_interval(
            self.class_prior_, self.prior, evidence.scores, evidence.held_c, n_pos, n_unl, seed=self._seed + 1
        )
        reliable = (s == 0) & (proba <= self.negative_threshold)
        if self.method_ == "spy":  # the spies' reliable negatives instead
            reliable = np.isin(np.arange(len(s)), evidence.negatives.numpy())
        self.pseudo_labels_, self.clean_mask_, self.label_quality_ = pu_row_contract(s, proba, reliable)

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
            p = self._models_proba(self._table_views(X, Xr)[0])
        elif self.estimator_ is not None:
            p = _positive_proba(self.estimator_, Xr.reshape(len(Xr), -1))
        else:
            with self._threads():
                p = _sigmoid_scores(self.networks_[0], torch.from_numpy(Xr), self.device_, self._logit_offset)
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
        return _safe_indexing(X, keep), _with_values(_safe_indexing(y, keep), self.pseudo_labels_[keep])

    def __sklearn_tags__(self):
        tags = super().__sklearn_tags__()
        tags.classifier_tags.multi_class = False
        return tags
