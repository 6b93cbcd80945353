"""Co-teaching and its successors: learn from noisy labels, flag and correct the wrong ones."""

from __future__ import annotations

import math
import time
from functools import partial
from numbers import Integral, Real
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from sklearn.utils.validation import check_is_fitted

from . import _distributed, _progress
from ._base import LabelEstimatorBase
from ._compat import HasMethods, Interval, StrOptions, _fit_context
from ._crossfit import (
    AUTO_TABLE_MAX_COLUMNS,  # noqa: F401 (re-exported, as default_table_backbones)
    AUTO_TABLE_MAX_ROWS,  # noqa: F401
    Backbone,
    aligned_proba,
    backbone_kind,
    choose_weights,
    cross_fit_proba,
    default_table_backbones,  # noqa: F401
    mix,
    stratified_folds,
    table_backbones,
)
from ._engine import (
    Feed,
    History,
    LearningRate,
    MovingAverage,
    Progress,
    fit_epochs,
    predict_own,
    predict_proba,
    run_epoch,
    supervised,
)
from ._train import AUGMENTATIONS, adam, forget_rate_schedule, lr_factor, moving_averages
from .detection import calibrate, detect, flag_by_class_noise

# ---------------------------------------------------------------------------
# Pure functions: the algorithms, on tensors.
# ---------------------------------------------------------------------------


def small_loss_index(losses: torch.Tensor, forget_rate: float, labels: torch.Tensor | None = None) -> torch.Tensor:
    """Indices of the ``ceil((1 - forget_rate) · n)`` smallest losses (at least one).

    With ``labels``, the share is kept within each labelled class of the batch instead, so a
    class the networks have not learnt yet (all of its losses high) is never dropped whole
    — at heavy noise, batch-wide selection lets such classes starve.
    """
    order = torch.argsort(losses.detach())
    if labels is None:
        return order[: max(1, math.ceil((1.0 - forget_rate) * losses.shape[0]))]
    lab = labels[order]
    by_class = torch.argsort(lab, stable=True)  # grouped by class, ascending loss within each class
    idx, lab = order[by_class], lab[by_class]
    counts = torch.bincount(lab)
    starts = torch.cumsum(counts, 0) - counts
    position = torch.arange(lab.shape[0], device=lab.device) - starts[lab]
    n_keep = torch.clamp(torch.ceil((1.0 - forget_rate) * counts.float()), min=1).long()
    return idx[position < n_keep[lab]]


def peer_pseudo_loss(
    student_logits: torch.Tensor, teacher_logits: torch.Tensor, dropped: torch.Tensor, threshold: float
) -> torch.Tensor:
    """Cross-entropy of ``student_logits`` against the peer's confident labels, on the ``dropped`` rows only.

    The rows a network's small-loss selection dropped are treated as unlabeled: its peer's
    prediction becomes their target where the peer's top probability exceeds ``threshold``
    (semi-supervised use of the suspect rows, in the spirit of DivideMix, Li et al., ICLR
    2020, with FixMatch's confidence mask, Sohn et al., NeurIPS 2020). Averaged over the whole
    batch, so the term fades when few rows are dropped or few are confident.
    """
    proba = torch.softmax(teacher_logits.detach().float(), dim=1)
    confidence, target = proba.max(dim=1)
    mask = (dropped & (confidence > threshold)).float()
    ce = F.cross_entropy(student_logits, target, reduction="none")
    return (ce * mask).sum() / student_logits.shape[0]


def coteaching_loss(
    logits1: torch.Tensor,
    logits2: torch.Tensor,
    y: torch.Tensor,
    forget_rate: float,
    per_class: bool = False,
    pseudo_weight: float = 0.0,
    pseudo_threshold: float = 0.95,
) -> tuple[torch.Tensor, dict[str, float]]:
    """Co-teaching (Han et al., NeurIPS 2018): each net picks its small-loss rows, its peer learns from them.

    Returns the sum of both nets' losses (their parameters are disjoint, so one backward
    pass updates each net on its peer's selection) and the kept fraction. With
    ``pseudo_weight > 0`` each net also learns the rows its peer dropped, with the peer's
    confident prediction as the label (:func:`peer_pseudo_loss`).
    """
    loss1 = F.cross_entropy(logits1, y, reduction="none")
    loss2 = F.cross_entropy(logits2, y, reduction="none")
    labels = y if per_class else None
    keep1 = small_loss_index(loss1, forget_rate, labels)
    keep2 = small_loss_index(loss2, forget_rate, labels)
    loss = loss1[keep2].mean() + loss2[keep1].mean()
    if pseudo_weight > 0:
        dropped1 = torch.ones_like(y, dtype=torch.bool).index_fill_(0, keep1, False)
        dropped2 = torch.ones_like(y, dtype=torch.bool).index_fill_(0, keep2, False)
        loss = loss + pseudo_weight * (
            peer_pseudo_loss(logits1, logits2, dropped2, pseudo_threshold)
            + peer_pseudo_loss(logits2, logits1, dropped1, pseudo_threshold)
        )
    return loss, {"kept": keep1.shape[0] / y.shape[0]}


def coteaching_plus_loss(
    logits1: torch.Tensor, logits2: torch.Tensor, y: torch.Tensor, forget_rate: float, per_class: bool = False
) -> tuple[torch.Tensor, dict[str, float]]:
    """Co-teaching+ (Yu et al., ICML 2019): small-loss exchange restricted to rows where the nets disagree.

    Falls back to plain co-teaching on a batch where the two nets agree everywhere.
    """
    disagree = torch.nonzero(logits1.argmax(1) != logits2.argmax(1)).squeeze(1)
    if disagree.numel() < 2:
        loss, _ = coteaching_loss(logits1, logits2, y, forget_rate, per_class)
        return loss, {"kept": 1.0 - forget_rate, "disagree": disagree.numel() / y.shape[0]}
    loss, stats = coteaching_loss(logits1[disagree], logits2[disagree], y[disagree], forget_rate, per_class)
    # Scale by the disagreement share so the step size shrinks as the nets converge (as in the paper).
    share = disagree.numel() / y.shape[0]
    return loss * share, {"kept": stats["kept"] * share, "disagree": share}


def jocor_loss(
    logits1: torch.Tensor,
    logits2: torch.Tensor,
    y: torch.Tensor,
    forget_rate: float,
    co_lambda: float,
    per_class: bool = False,
) -> tuple[torch.Tensor, dict[str, float]]:
    """JoCoR (Wei et al., CVPR 2020): joint loss with a symmetric-KL co-regularisation, small-loss selected.

    ``ℓ = (1 − λ)(CE₁ + CE₂) + λ (KL(p₁‖p₂) + KL(p₂‖p₁))`` per row; the rows with the
    smallest joint loss are kept and both nets are updated on them with one optimizer.
    """
    logp1, logp2 = F.log_softmax(logits1, 1), F.log_softmax(logits2, 1)
    ce = F.nll_loss(logp1, y, reduction="none") + F.nll_loss(logp2, y, reduction="none")
    kl = (logp1.exp() * (logp1 - logp2)).sum(1) + (logp2.exp() * (logp2 - logp1)).sum(1)
    joint = (1.0 - co_lambda) * ce + co_lambda * kl
    keep = small_loss_index(joint, forget_rate, y if per_class else None)
    return joint[keep].mean(), {"kept": keep.shape[0] / y.shape[0]}


_BLOCK_ROWS = 65_536


def consensus_targets(proba: np.ndarray, y: np.ndarray) -> tuple[np.ndarray, float]:
    """Targets and forget rate of the refinement stage: the networks' consensus label for every row.

    (Where the consensus agrees with the given label, that is the given label.) The forget
    rate is the expected share of wrong targets under the consensus' own probabilities,
    ``1 − mean(proba[i, target_i])``, at most 0.5.
    """
    targets = np.argmax(proba, axis=1)
    doubt = 1.0 - float(np.mean(proba[np.arange(len(y)), targets]))
    return targets, float(np.clip(doubt, 0.0, 0.5))


def posterior_targets(proba: np.ndarray, y: np.ndarray) -> tuple[np.ndarray, float]:
    """Targets and forget rate of the refinement stage: the label posterior ``p(k | x, ỹ)``.

    Combines the networks' consensus ``proba`` with the given label ``ỹ`` through a noise
    transition matrix estimated from the same rows, ``T[k, j] = P(ỹ = j | consensus k)``
    (Laplace-smoothed counts, as in the confident joint of Northcutt et al., JAIR 2021):
    ``p(k | x, ỹ) ∝ proba[k] · T[k, ỹ]``. Under light noise the given label wins unless the
    networks are sure; under pair noise the choice narrows to the given class and the class
    that flips into it. The forget rate is the expected share of wrong targets under that
    posterior, ``1 − mean(posterior[i, target_i])``, at most 0.5. Rows are processed in
    blocks, so no second ``(n, K)`` matrix is built.
    """
    n, k = proba.shape
    predicted = np.argmax(proba, axis=1)
    counts = np.bincount(predicted * k + y, minlength=k * k).reshape(k, k).astype(np.float32)
    likelihood = ((counts + 1.0) / (counts.sum(axis=1, keepdims=True) + k)).T  # [ỹ, k] = T[k, ỹ]
    targets = np.empty(n, dtype=np.int64)
    trust = 0.0
    for start in range(0, n, _BLOCK_ROWS):
        block = slice(start, start + _BLOCK_ROWS)
        posterior = likelihood[y[block]] * proba[block]
        posterior /= np.maximum(posterior.sum(axis=1, keepdims=True), np.finfo(np.float32).tiny)
        targets[block] = np.argmax(posterior, axis=1)
        trust += float(posterior[np.arange(len(posterior)), targets[block]].sum(dtype=np.float64))
    doubt = 1.0 - trust / max(n, 1)
    return targets, float(np.clip(doubt, 0.0, 0.5))


#: The refinement stage's labelling rules, by ``refine_labels`` value.
REFINE_LABELS = {"consensus": consensus_targets, "posterior": posterior_targets}


def estimate_noise_rate(proba_out_of_fold: np.ndarray, y: np.ndarray) -> float:
    """Noise rate estimate: the share of rows whose out-of-fold prediction differs from the given label.

    The predictions come from a network that never saw the row, so it cannot have
    memorised a wrong label; the estimate is biased upwards by that network's own error
    on clean rows, and Co-teaching is known to tolerate a slightly high ``τ`` far better
    than a low one (Han et al., 2018, Fig. 5).
    """
    return float(np.mean(np.argmax(proba_out_of_fold, axis=1) != y))


#: ``batch_size="auto"``: the base batch and the largest batch of the default MLP.
AUTO_BATCH_BASE = 128
AUTO_BATCH_MLP_MAX = 512
#: Fewest optimizer steps per epoch an ``"auto"`` batch size leaves.
AUTO_BATCH_MIN_STEPS = 25
#: ``refine_epochs="auto"``: refinement epochs for images and for vector rows.
AUTO_REFINE_EPOCHS_IMAGES = 10
AUTO_REFINE_EPOCHS = 5


def auto_batch_size(
    n_rows: int, largest: int, *, base: int = AUTO_BATCH_BASE, min_steps: int = AUTO_BATCH_MIN_STEPS
) -> int:
    """The largest of ``base, 2·base, 4·base, …`` up to ``largest`` that still leaves ``min_steps`` steps an epoch.

    Examples
    --------
    >>> auto_batch_size(60_000, 512), auto_batch_size(8_000, 512), auto_batch_size(1_000, 512)
    (512, 256, 128)
    """
    batch = base
    while batch * 2 <= largest and n_rows // (batch * 2) >= min_steps:
        batch *= 2
    return batch


def resolve_batch(batch_size: int | str, lr: float, n_rows: int, *, mlp: bool) -> tuple[int, float]:
    """Rows per step and learning rate of a fit: as given, or ``batch_size="auto"`` resolved.

    ``"auto"`` is ``AUTO_BATCH_BASE`` (128) rows, except for the default MLP (``mlp=True``), which
    gets :func:`auto_batch_size` rows and ``lr`` scaled by ``batch / AUTO_BATCH_BASE``.

    Examples
    --------
    >>> resolve_batch("auto", 1e-3, 60_000, mlp=True), resolve_batch("auto", 1e-3, 60_000, mlp=False)
    ((512, 0.004), (128, 0.001))
    >>> resolve_batch(64, 1e-3, 60_000, mlp=True)
    (64, 0.001)
    """
    if batch_size != "auto":
        return int(batch_size), float(lr)
    if not mlp:
        return AUTO_BATCH_BASE, float(lr)
    batch = auto_batch_size(n_rows, AUTO_BATCH_MLP_MAX)
    return batch, float(lr) * batch / AUTO_BATCH_BASE


# ---------------------------------------------------------------------------
# Pieces of the fit: the table path's rounds, the networks' warm-up and epochs.
# ---------------------------------------------------------------------------


def _refine_epochs(refine_epochs: int | str, input_shape: tuple[int, ...]) -> int:
    """``refine_epochs``, with ``"auto"`` as ``AUTO_REFINE_EPOCHS_IMAGES`` on images, else ``AUTO_REFINE_EPOCHS``."""
    if refine_epochs != "auto":  # how "auto" was chosen: docs/benchmarks.md#cotea
        return refine_epochs
    return AUTO_REFINE_EPOCHS_IMAGES if len(input_shape) == 3 else AUTO_REFINE_EPOCHS


def _trusted_rows(y: np.ndarray, proba: np.ndarray, forget_rate: float | str) -> np.ndarray:
    """Rows a later round (and the final models) learn from: each class pruned by its noise rate.

    The noise rate of each class is estimated from ``proba`` (``forget_rate="auto"``) or is
    ``forget_rate`` (:func:`~labelclean.detection.flag_by_class_noise`).
    """
    if forget_rate == "auto":
        noise = detect(y, proba, flag="class_noise", relabel_threshold=1.0, calibrated=False).class_noise
    else:
        noise = np.full(proba.shape[1], float(forget_rate))
    return ~flag_by_class_noise(y, proba, noise)


def _cross_fit_rounds(
    backbones: list[Backbone],
    views: dict[str, np.ndarray],
    y: np.ndarray,
    folds: np.ndarray,
    n_rounds: int,
    forget_rate: float | str,
    history: list[dict[str, Any]],
) -> tuple[np.ndarray, np.ndarray, list[Backbone]]:
    """The table path's evidence: out-of-fold probabilities averaged over ``n_rounds`` rounds of cross-fitting.

    Round 1: each fold's rows are predicted by models fitted on the other folds, and the
    backbones that fit the given labels best are kept (:func:`~labelclean._crossfit.choose_weights`).
    Each later round: the same, but each fold's models learn only the rows the rounds so far
    trust in the other folds (:func:`_trusted_rows`, so that the selection follows the estimated
    true class balance). ``history`` gets one entry per round. Returns the average over the
    rounds, the weights of ``backbones`` and the backbones kept.
    """
    k = int(y.max()) + 1  # every class occurs in the encoded labels
    with _progress.phase("cross-fitting", n_rounds * len(np.unique(folds)), unit="folds"):
        t0 = time.perf_counter()
        firsts = cross_fit_proba(backbones, views, y, folds, k)
        weights = choose_weights(firsts, y)
        kept, kept_weights = [b for b, w in zip(backbones, weights) if w > 0], weights[weights > 0]
        rounds = [mix([p for p, w in zip(firsts, weights) if w > 0], kept_weights)]
        history.append({"phase": "crossfit", "round": 1, "seconds": time.perf_counter() - t0})
        for r in range(2, n_rounds + 1):  # each round learns the rows the rounds so far trust
            t0 = time.perf_counter()
            trusted = _trusted_rows(y, sum(rounds) / len(rounds), forget_rate)
            rounds.append(mix(cross_fit_proba(kept, views, y, folds, k, trusted=trusted), kept_weights))
            seconds = time.perf_counter() - t0
            history.append({"phase": "crossfit", "round": r, "trusted": float(trusted.mean()), "seconds": seconds})
    return sum(rounds) / len(rounds), weights, kept


def _warm_up(nets, feed: Feed, y: torch.Tensor, halves, batch_size: int, lr: float, updates: int, record: History):
    """The noise rate of ``forget_rate="auto"``: each of two networks learns one half of the rows, predicts the other.

    Each network gets about ``updates`` steps (at most 10 epochs); ``record`` gets every epoch.
    Returns the lowest out-of-fold disagreement with the given labels over the epochs
    (:func:`estimate_noise_rate`; an early stop: later epochs may start to memorise wrong labels).
    In a distributed job each process counts the disagreements on its block of the rows and
    the counts are summed, so every process gets the same estimate.
    """
    n = feed.X.shape[0]
    per_epoch = max(1, math.ceil(len(halves[0]) / batch_size))
    epochs = int(min(max(1, math.ceil(updates / per_epoch)), 10))
    optimizer = adam([p for net in nets for p in net.parameters()], lr)
    ce = lambda logits, yb: (F.cross_entropy(logits[0], yb), {})  # noqa: E731
    progress = Progress(feed.device)

    def epoch(_: int) -> dict[str, float]:
        for net, rows in zip(nets, halves):
            plan = feed.shuffled(rows, batch_size)
            stats = run_epoch(supervised([net], ce, feed, y), plan, optimizer, [net], [progress])
        wrong = 0
        for net, rows in zip(nets, halves[::-1]):
            own, proba = predict_own([net], feed, rows)
            wrong += int(np.sum(np.argmax(proba, 1) != y[own].numpy()))
        return {"loss": stats["loss"], "oof_disagreement": feed.world.sum(wrong) / n}

    total = sum(feed.steps(len(rows), batch_size) for rows in halves)
    fit_epochs(epochs, epoch, [record], phase="warm-up", steps=total)
    return min(h["oof_disagreement"] for h in record.entries if h["phase"] == "warmup")


def _decayed_lr(lr: float, epochs: int, epoch: int) -> float:
    """Co-teaching's learning rate at ``epoch`` of ``epochs``: ``lr``, decaying linearly over the second half."""
    return lr * lr_factor(epoch, epochs)


def _refine_lr(lr: float, epochs: int, epoch: int) -> float:
    """The refinement's learning rate: ``R / (R + 1)`` of ``lr`` down to ``1 / (R + 1)`` over ``R = epochs``."""
    return lr * (epochs - epoch) / (epochs + 1)


def _scheduled_loss(loss_fn, tau: float, num_gradual: int, epoch: int) -> tuple[Any, dict[str, float]]:
    """``loss_fn(R, epoch)`` at the scheduled forget rate ``R`` of the epoch (``forget_rate_schedule``), and ``R``."""
    rate = forget_rate_schedule(epoch, tau, num_gradual)
    return loss_fn(rate, epoch), {"forget_rate": rate}


def _train_pair(nets, optimizer, feed: Feed, targets: torch.Tensor, callbacks, epochs, batch_size, title, losses):
    """``epochs`` passes of ``nets`` over every row; epoch ``e`` minimises the loss of ``losses(e)``.

    ``losses(e)`` returns the loss function and the extra fields of the epoch's record; the
    epochs are one progress phase ``title``.
    """
    n = feed.X.shape[0]

    def epoch(e: int) -> dict[str, float]:
        loss_fn, info = losses(e)
        plan = feed.shuffled(n, batch_size)
        return {**info, **run_epoch(supervised(nets, loss_fn, feed, targets), plan, optimizer, nets, callbacks)}

    fit_epochs(epochs, epoch, callbacks, phase=title, steps=feed.steps(n, batch_size))


# ---------------------------------------------------------------------------
# The estimator: thin orchestration.
# ---------------------------------------------------------------------------


class CoTeachingFilter(LabelEstimatorBase):
    """Find wrong labels and learn despite them: cross-fitted models on tables, Co-teaching networks elsewhere.

    **Tables** (2-D rows of at most 512 columns: DataFrames with text, categories and nulls,
    or numeric arrays), by default: every one of ``n_folds`` folds is predicted by
    gradient-boosted trees and a logistic regression fitted on the other folds (the better
    fitting of them, or both, chosen on those out-of-fold predictions); later rounds refit
    each fold's models on the rows the earlier rounds trust, pruned per class by the class's
    estimated noise. The averaged, calibrated out-of-fold probabilities decide the row
    contract (:func:`labelclean.detection.detect`), and the final models learn the trusted
    rows. Any scikit-learn classifier can take the models' place (``estimator``).

    **Images, wide vectors (embeddings, pixels), or** ``estimator="network"``: two networks
    are trained side by side. On every mini-batch each keeps the rows on which it has the
    smallest loss — deep networks fit clean labels before noisy ones — and its peer is updated
    on them. The share of rows dropped grows as ``R(T) = min(T / T_k · τ, τ)`` over the epochs
    ``T``. The network parameters below (``method`` … ``augment``) apply to this path.

    How the defaults were chosen: ``docs/benchmarks.md#real-defaults`` (the table path) and
    ``docs/benchmarks.md#cotea`` (the networks).

    Parameters
    ----------
    estimator : "auto", "network" or a classifier, default="auto"
        ``"auto"``: the cross-fitted table models for 2-D rows of at most 512 columns and
        200,000 rows, the networks otherwise; ``"network"``: always the networks; a
        scikit-learn classifier with ``predict_proba``: that classifier, cross-fitted, on the
        numeric view of the rows (categories one-hot encoded, missing values filled).
    n_folds : int >= 2, default=5
        Folds of the cross-fitted models: each row is judged by models that never saw it.
    n_rounds : int >= 1, default=3
        Rounds of cross-fitting; from the second on, each fold's models learn only the rows the
        earlier rounds trust, and the evidence is the average over the rounds.
    relabel_threshold : float in [0, 1], default=0.9
        Cross-fitted models: the evidence a flagged row needs before ``pseudo_labels_`` changes
        its label (see :func:`labelclean.detection.detect`); flagged rows below it keep their
        given label. ``0`` relabels every flagged row.
    method : {"coteaching", "coteaching+", "jocor"}, default="coteaching"
        ``"coteaching"`` (Han et al., NeurIPS 2018); ``"coteaching+"`` (Yu et al., ICML 2019)
        exchanges small-loss rows only among rows the nets disagree on; ``"jocor"`` (Wei et
        al., CVPR 2020) trains both nets with one joint, co-regularised loss.
    forget_rate : "auto" or float in [0, 1), default="auto"
        ``τ``, the share of rows each batch drops at full schedule. ``"auto"`` estimates the
        noise rate first: during a warm-up each network trains on one half of the rows and
        predicts the other; ``τ`` is the share of out-of-fold predictions that disagree with
        the given label (see :func:`estimate_noise_rate`), exposed as ``noise_rate_``.
    num_gradual : int, default=5
        ``T_k``, epochs over which the forget rate grows linearly to ``τ``.
    co_lambda : float in [0, 1], default=0.1
        JoCoR's co-regularisation weight ``λ``.
    per_class : bool, default=True
        Keep the small-loss share within each labelled class of a batch rather than across
        the batch, so that no class is starved while the networks have not learnt it yet.
    pseudo_weight : float >= 0, default=1.0
        Weight of the semi-supervised term: each network also learns the rows its peer's
        small-loss selection dropped, labelled with the peer's prediction where the peer is
        confident (see :func:`peer_pseudo_loss`). ``0`` is plain Co-teaching.
    pseudo_threshold : float in [0, 1), default=0.95
        Peer confidence a dropped row needs to get a pseudo-label.
    max_epochs : int, default=10
        Co-teaching epochs (after the warm-up of ``forget_rate="auto"``).
    refine_epochs : int or "auto", default="auto"
        Epochs of a second stage that also learns from the rows Co-teaching dropped: every
        row gets a corrected label (``refine_labels``) and both networks keep training on all
        rows with the share of those labels expected to be wrong as the forget rate, at a
        learning rate falling linearly from ``R / (R + 1)`` to ``1 / (R + 1)`` of ``lr`` over
        its ``R`` epochs. ``0`` turns it off; ``"auto"``: ``AUTO_REFINE_EPOCHS_IMAGES`` for
        images, ``AUTO_REFINE_EPOCHS`` for vector rows (``refine_epochs_``).
    refine_labels : {"consensus", "posterior"}, default="consensus"
        The refinement stage's labels: the networks' consensus label
        (:func:`consensus_targets`), or the most likely true label given both the consensus
        and the given label, through a noise transition matrix counted from the rows
        (:func:`posterior_targets`: opt-in, see ``docs/benchmarks.md#cotea``).
    ema_decay : float in [0, 1), default=0.0
        When positive, each network's weights (and batch-norm statistics) are also kept as an
        exponential moving average with this decay, updated after every step
        (:func:`~labelclean._train.ema_update`); the averages label the refinement stage and
        are the final ``networks_``. ``0``: the trained networks themselves.
    batch_size : int or "auto", default="auto"
        Rows per step. ``"auto"`` (:func:`resolve_batch`): 128 for images and for ``module``;
        the default MLP trains on the largest of 128, 256 and 512 rows that leaves 25 steps an
        epoch, with ``lr`` scaled by ``batch / 128`` (the linear scaling rule, Goyal et al., 2017).
    lr : float, default=1e-3
        Adam's learning rate (at batches of 128 when ``batch_size="auto"``); decays
        linearly to zero over the second half of the epochs.
    weight_decay : float, default=0.0
    hidden_dims : sequence of int, default=(256, 256)
        Hidden widths of the default MLP (2-D inputs).
    dropout : float in [0, 1), default=0.0
    input_shape : tuple (C, H, W) or None, default=None
        Treat 2-D rows as images of this shape (default CNN).
    module : callable or None, default=None
        ``module(input_shape, n_classes) -> torch.nn.Module`` to replace the default networks.
    augment : {"auto", "none", "shift", "affine"}, default="auto"
        Image augmentation while training, as for every estimator
        (:func:`~labelclean._train.augmentation`): ``"shift"`` moves images by up to 1/12 of
        their side, ``"affine"`` also rotates and zooms them, ``"auto"`` is ``"affine"`` from
        12 px a side and shifts below; vector rows get none.
    device : str, default="auto"
        ``"auto"`` uses CUDA when available.
    random_state : int, RandomState instance or None, default=None
        Seeds network initialisation, shuffling and dropout, without touching global generators.
    verbose : int, default=0
        Print one line per epoch when positive.
    n_jobs : int or None, default=None
        Torch threads during ``fit`` and ``predict`` (restored afterwards); ``None`` leaves
        torch's setting, ``-1`` uses all cores.

    Attributes
    ----------
    classes_ : ndarray of shape (n_classes,)
    backbone_ : {"table", "estimator", "network"}
        The path taken (``estimator`` resolved).
    clean_mask_ : ndarray of bool, shape (n_samples,)
        Rows whose given label is trusted: the models' most probable class (after the shift
        to the estimated true class balance) is the given label.
    pseudo_labels_ : ndarray of shape (n_samples,)
        The most likely true label: the given label where trusted or where the evidence
        against it is weak (``relabel_threshold``), the models' label elsewhere.
    label_quality_ : ndarray of float32, shape (n_samples,)
        Probability that the given label is right (cross-fitted models: its label posterior;
        networks: their averaged probability of it).
    class_noise_ : ndarray of shape (n_classes,)
        Cross-fitted models: estimated share of wrong labels among the rows given each class.
    estimators_ : list of fitted classifiers
        Cross-fitted models: the final models (empty on the network path).
    backbone_weights_ : ndarray
        Cross-fitted models: the weight of each model in the averaged probabilities.
    temperature_ : float
        Cross-fitted models: the temperature that calibrated the out-of-fold probabilities.
    oof_proba_ : ndarray of float32, shape (n_samples, n_classes)
        Cross-fitted models: the calibrated out-of-fold probabilities the row contract was
        decided from (columns follow ``classes_``). To decide again with another rule without
        refitting: ``find_label_issues(y, f.oof_proba_, calibrated=True, flag="disagreement",
        relabel_threshold=0)`` (the rule this estimator applies, with another threshold).
    noise_rate_ : float
        ``τ`` used (estimated when ``forget_rate="auto"``); cross-fitted models: the estimated
        share of wrong labels.
    batch_size_ : int
        Rows per step used (``batch_size`` resolved).
    lr_ : float
        Learning rate used (``lr``, scaled with an ``"auto"`` batch size).
    refine_epochs_ : int
        Refinement epochs used (``refine_epochs`` resolved).
    history_ : list of dict
        One entry per epoch: phase, loss, forget rate, kept fraction, seconds.
    phase_seconds_ : dict of str to float
        Seconds of each phase of the fit, named as its progress shows them (``"warm-up"``, ``"co-teaching"``, ...).
    networks_ : list of torch.nn.Module
        The two trained networks (their moving averages with ``ema_decay > 0``).
    n_features_in_ : int

    Examples
    --------
    >>> from sklearn.datasets import make_classification
    >>> from labelclean import CoTeachingFilter
    >>> from labelclean.noise import make_noisy_labels
    >>> X, y = make_classification(600, n_features=10, n_informative=6, n_classes=3, random_state=0)
    >>> y_noisy = make_noisy_labels(y, 0.3, random_state=0)
    >>> f = CoTeachingFilter(random_state=0).fit(X, y_noisy)
    >>> f.backbone_, f.clean_mask_.shape, f.pseudo_labels_.shape
    ('table', (600,), (600,))
    >>> from labelclean import detection_scores
    >>> bool(detection_scores(f.clean_mask_, y_noisy, y)["recall"] > 0.7)  # most wrong labels are flagged
    True
    >>> bool((f.pseudo_labels_ == y).mean() >= (y_noisy == y).mean())  # here the corrections help
    True
    """

    _parameter_constraints: dict = {
        **LabelEstimatorBase._parameter_constraints,
        "method": [StrOptions({"coteaching", "coteaching+", "jocor"})],
        "forget_rate": [StrOptions({"auto"}), Interval(Real, 0.0, 1.0, closed="left")],
        "num_gradual": [Interval(Integral, 0, None, closed="left")],
        "co_lambda": [Interval(Real, 0.0, 1.0, closed="both")],
        "augment": [StrOptions(set(AUGMENTATIONS))],
        "refine_epochs": [Interval(Integral, 0, None, closed="left"), StrOptions({"auto"})],
        "refine_labels": [StrOptions(set(REFINE_LABELS))],
        "per_class": ["boolean"],
        "pseudo_weight": [Interval(Real, 0.0, None, closed="left")],
        "pseudo_threshold": [Interval(Real, 0.0, 1.0, closed="left")],
        "batch_size": [StrOptions({"auto"}), Interval(Integral, 2, None, closed="left")],
        "ema_decay": [Interval(Real, 0.0, 1.0, closed="left")],
        "estimator": [StrOptions({"auto", "network"}), HasMethods(["fit", "predict_proba"])],
        "n_folds": [Interval(Integral, 2, None, closed="left")],
        "n_rounds": [Interval(Integral, 1, None, closed="left")],
        "relabel_threshold": [Interval(Real, 0.0, 1.0, closed="both")],
    }

    def __init__(
        self,
        *,
        estimator: Any = "auto",
        n_folds: int = 5,
        n_rounds: int = 3,
        relabel_threshold: float = 0.9,
        method: str = "coteaching",
        forget_rate: float | str = "auto",
        num_gradual: int = 5,
        co_lambda: float = 0.1,
        per_class: bool = True,
        pseudo_weight: float = 1.0,
        pseudo_threshold: float = 0.95,
        max_epochs: int = 10,
        refine_epochs: int | str = "auto",
        refine_labels: str = "consensus",
        ema_decay: float = 0.0,
        batch_size: int | str = "auto",
        lr: float = 1e-3,
        weight_decay: float = 0.0,
        hidden_dims: tuple[int, ...] = (256, 256),
        dropout: float = 0.0,
        input_shape: tuple[int, ...] | None = None,
        module: Any = None,
        augment: str = "auto",
        device: str = "auto",
        random_state: Any = None,
        verbose: int = 0,
        n_jobs: int | None = None,
    ) -> None:
        self.estimator = estimator
        self.n_folds = n_folds
        self.n_rounds = n_rounds
        self.relabel_threshold = relabel_threshold
        self.method = method
        self.forget_rate = forget_rate
        self.num_gradual = num_gradual
        self.co_lambda = co_lambda
        self.per_class = per_class
        self.pseudo_weight = pseudo_weight
        self.pseudo_threshold = pseudo_threshold
        self.max_epochs = max_epochs
        self.refine_epochs = refine_epochs
        self.refine_labels = refine_labels
        self.ema_decay = ema_decay
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

    #: Warm-up updates (per network) of ``forget_rate="auto"``'s noise estimate, at most 10 epochs.
    _warmup_steps = 100

    @_fit_context(prefer_skip_nested_validation=True)
    def fit(self, X: Any, y: Any) -> CoTeachingFilter:
        """Learn from ``X, y`` (cross-fitted models or two networks) and fill the row contract.

        Parameters
        ----------
        X : array-like of shape (n_samples, n_features), or an image array
        y : array-like of shape (n_samples,)
            Possibly noisy labels of any hashable type.

        Returns
        -------
        self
        """
        Xt, y_raw = self._prepare(X, y)
        y_enc = self._encode_labels(y_raw)
        if len(self.classes_) < 2:
            raise ValueError(f"y has only one class ({self.classes_[0]!r}); label cleaning needs at least two classes.")
        self.history_ = []
        facts = dict(rows=len(y_enc), labels=y_enc, inputs=self._x_mean.numpy(), scale=self._x_scale.numpy())
        world, self._seed, self.device_ = _distributed.join(self._seed, self.device_, **facts)
        shape, n_features = self.input_shape_, self.n_features_in_
        self.backbone_ = backbone_kind(
            self.estimator, module=self.module, input_shape=shape, n_features=n_features, n_rows=len(y_enc)
        )
        if self.backbone_ != "network":
            return self._fit_cross_fitted(X, Xt, y_enc)
        return self._fit_networks(Xt, y_enc, world)

    # -- the networks ---------------------------------------------------------
    def _fit_networks(self, Xt: torch.Tensor, y_enc: np.ndarray, world: _distributed.World) -> CoTeachingFilter:
        """The forget rate ``τ``, the co-teaching epochs, the refinement; the row contract from their consensus.

        In a ``torchrun`` job (``world``) every process ends in the same state (:mod:`labelclean._distributed`)."""
        self.estimators_ = []
        yt = torch.from_numpy(y_enc)
        mlp = self.module is None and len(self.input_shape_) == 1
        self.batch_size_, self.lr_ = resolve_batch(self.batch_size, self.lr, Xt.shape[0], mlp=mlp)
        self.refine_epochs_ = _refine_epochs(self.refine_epochs, self.input_shape_)
        gen = self._generator()
        with self._seeded():
            tau = self._forget_rate(Xt, yt, gen, world)
            nets = [self._new_net(len(self.classes_)) for _ in range(2)]
            optimizer = adam([p for net in nets for p in net.parameters()], self.lr_, self.weight_decay)
            averages = moving_averages(nets, self.ema_decay) if self.ema_decay > 0 else None
            feed = Feed(Xt, self.device_, gen, self._augmenter(), world)
            lr = partial(_decayed_lr, self.lr_, self.max_epochs)
            losses = partial(_scheduled_loss, self._loss_fn, tau, self.num_gradual)
            self._train_nets(nets, optimizer, feed, yt, "coteaching", self.max_epochs, lr, losses, averages)
            proba = predict_proba(averages or nets, feed)
            if self.refine_epochs_:
                proba = self._refine(nets, optimizer, feed, y_enc, proba, averages)
        self.networks_ = [a.module for a in averages] if averages else nets
        self.noise_rate_ = float(tau)
        self._set_contract(detect(y_enc, proba, flag="disagreement", relabel_threshold=0.0, calibrated=True))
        return self

    def _forget_rate(self, X: torch.Tensor, y: torch.Tensor, gen: torch.Generator, world: _distributed.World) -> float:
        """``τ``: ``forget_rate``, or for ``"auto"`` the warm-up's noise estimate (:func:`_warm_up`), at most 0.95."""
        if self.forget_rate != "auto":
            return float(self.forget_rate)
        halves = torch.randperm(X.shape[0], generator=gen).chunk(2)
        nets = [self._new_net(len(self.classes_)) for _ in range(2)]
        feed = Feed(X, self.device_, gen, self._augmenter(), world)
        record = History(self.history_, {"phase": "warmup"}, verbose=self.verbose, name="CoTeachingFilter")
        noise = _warm_up(nets, feed, y, halves, self.batch_size_, self.lr_, self._warmup_steps, record)
        return min(noise, 0.95)

    def _loss_fn(self, forget_rate: float, epoch: int, method: str | None = None):
        """The loss of ``method`` (default ``self.method``) at ``forget_rate`` in epoch ``epoch``."""
        method = method or self.method
        # Co-teaching+ starts with plain co-teaching while the forget rate ramps up (Yu et al., 2019).
        if method == "coteaching" or (method == "coteaching+" and epoch < self.num_gradual):
            return lambda logits, y: coteaching_loss(
                logits[0], logits[1], y, forget_rate, self.per_class, self.pseudo_weight, self.pseudo_threshold
            )
        if method == "coteaching+":
            return lambda logits, y: coteaching_plus_loss(logits[0], logits[1], y, forget_rate, self.per_class)
        return lambda logits, y: jocor_loss(logits[0], logits[1], y, forget_rate, self.co_lambda, self.per_class)

    def _train_nets(self, nets, optimizer, feed: Feed, targets, phase: str, epochs: int, lr, losses, averages) -> None:
        """:func:`_train_pair` at learning rate ``lr(epoch)``, moving ``averages`` along, ``history_`` as ``phase``."""
        moving = [MovingAverage(averages, nets)] if averages else []
        record = History(self.history_, {"phase": phase}, verbose=self.verbose, name="CoTeachingFilter")
        callbacks = [LearningRate(optimizer, lr), *moving, Progress(self.device_), record]
        title = {"coteaching": "co-teaching", "refine": "refinement"}[phase]
        _train_pair(nets, optimizer, feed, targets, callbacks, epochs, self.batch_size_, title, losses)

    def _refine(self, nets, optimizer, feed: Feed, y_enc, proba, averages=None) -> np.ndarray:
        """Second stage: every row with its refined label (``refine_labels``), at the forget rate of their doubt.

        Returns the new consensus (of the moving ``averages`` where given), written over ``proba``.
        """
        targets, rate = REFINE_LABELS[self.refine_labels](proba, y_enc)
        info = {"forget_rate": rate, "relabeled": float(np.mean(targets != y_enc))}
        loss_fn, epochs = self._loss_fn(rate, 0, method="coteaching"), self.refine_epochs_
        lr = partial(_refine_lr, self.lr_, epochs)
        self._train_nets(
            nets, optimizer, feed, torch.from_numpy(targets), "refine", epochs, lr, lambda e: (loss_fn, info), averages
        )
        return predict_proba(averages or nets, feed, out=proba)

    # -- the cross-fitted models (scikit-learn backbones) ---------------------
    def _fit_cross_fitted(self, X: Any, Xt: torch.Tensor, y_enc: np.ndarray) -> CoTeachingFilter:
        """Rounds of cross-fitting (:func:`_cross_fit_rounds`), calibrated, then the detection rule.

        The final models learn the rows the evidence trusts (:func:`_trusted_rows`).
        """
        views, mask = self._table_views(X, Xt.numpy())
        backbones = table_backbones(self.backbone_, self.estimator, mask, self._seed)
        folds = stratified_folds(y_enc, self.n_folds, self._seed)
        rounds = _cross_fit_rounds(backbones, views, y_enc, folds, self.n_rounds, self.forget_rate, self.history_)
        evidence, self.backbone_weights_, backbones = rounds
        proba, self.temperature_ = calibrate(evidence, y_enc)
        self.oof_proba_ = proba
        verdict = detect(y_enc, proba, flag="disagreement", relabel_threshold=self.relabel_threshold, calibrated=True)
        t0 = time.perf_counter()
        keep = np.flatnonzero(_trusted_rows(y_enc, proba, self.forget_rate))
        if len(np.unique(y_enc[keep])) < 2:
            keep = np.arange(len(y_enc))
        self._fit_final_models(backbones, views, y_enc, keep)
        self.history_.append({"phase": "final", "rows": len(keep), "seconds": time.perf_counter() - t0})
        self.networks_ = []
        self.noise_rate_ = verdict.noise_rate if self.forget_rate == "auto" else float(self.forget_rate)
        self.class_noise_ = verdict.class_noise
        self.batch_size_, self.lr_, self.refine_epochs_ = None, None, 0
        self._set_contract(verdict)
        return self

    def predict_proba(self, X: Any) -> np.ndarray:
        """Class probabilities: the average of the final networks, or of the final cross-fitted models.

        Parameters
        ----------
        X : array-like of shape (n_samples, n_features) or image array
            Rows shaped like the training rows.

        Returns
        -------
        ndarray of shape (n_samples, n_classes), float32
        """
        check_is_fitted(self, "networks_")
        if not self.estimators_:
            return super().predict_proba(X)
        Xt, _ = self._validate_X(X, reset=False)
        views, _ = self._table_views(X, Xt)
        k, weights = len(self.classes_), self.backbone_weights_[self.backbone_weights_ > 0]
        probas = [aligned_proba(m, views[v], k) for m, v in zip(self.estimators_, self._estimator_views)]
        return mix(probas, weights).astype(np.float32)
