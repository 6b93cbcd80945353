"""Self-training (FixMatch-style consistency, Noisy Student), and teacher–student relabeling of a noisy set."""

from __future__ import annotations

import contextlib
import functools
import math
import time
from numbers import Integral, Real
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from sklearn.base import clone
from sklearn.utils.multiclass import check_classification_targets
from sklearn.utils.validation import check_is_fitted, has_fit_parameter

from . import _progress
from ._base import LabelEstimatorBase
from ._compat import Interval, StrOptions, _fit_context, _safe_indexing
from ._crossfit import (
    backbone_kind,
    choose_weights,
    cross_fit_proba,
    fit_model,
    log_loss,
    models_proba,
    stratified_folds,
    table_backbones,
)
from ._engine import (
    EarlyStopping,
    Feed,
    History,
    LearningRate,
    MovingAverage,
    Progress,
    StepOut,
    fit_epochs,
    run_epoch,
    supervised,
)
from ._train import (
    AUGMENTATIONS,
    adam,
    augmentation,
    lr_factor,
    moving_averages,
    predict_proba_nets,
    random_shift,
    steps_per_epoch,
)
from .detection import RELABEL_THRESHOLD, detect

#: ``consistency_epochs="auto"``: consistency-train the first teacher for this many passes when
#: every class has at least ``AUTO_CONSISTENCY_MIN_LABELS`` labeled rows (see SelfTrainer).
AUTO_CONSISTENCY_EPOCHS = 20
AUTO_CONSISTENCY_MIN_LABELS = 50
#: ``max_iter="auto"``: student rounds after a labeled-only (or relabel) first teacher.
AUTO_STUDENTS = 5
#: Most folds of the cross-fitting that picks the tabular backbones on the labeled rows.
TABLE_FOLDS = 5
#: Most folds of the labeled rows over which ``guard`` checks that self-training helps (tabular path).
GUARD_FOLDS = 3


# ---------------------------------------------------------------------------
# Pure functions: the algorithm, on arrays and tensors.
# ---------------------------------------------------------------------------


def unlabeled_mask(y: np.ndarray) -> np.ndarray:
    """Rows marked unlabeled: the value ``-1`` (for string or object labels also the string ``"-1"``)."""
    y = np.asarray(y)
    if y.dtype.kind in "US":
        return y == "-1"
    if y.dtype.kind == "O":
        return np.asarray((y == -1) | (y == "-1"), dtype=bool)
    if y.dtype.kind in "iuf":
        return y == -1
    return np.zeros(y.shape, dtype=bool)


def soft_cross_entropy(logits: list[torch.Tensor], targets: torch.Tensor) -> tuple[torch.Tensor, dict[str, float]]:
    """Cross-entropy against full target distributions ``(n, K)``: ``-Σ_k t_k log softmax(z)_k``, batch mean."""
    return -(targets * F.log_softmax(logits[0], dim=1)).sum(1).mean(), {}


def one_hot(labels: np.ndarray, n_classes: int) -> np.ndarray:
    """Float32 one-hot rows for integer ``labels``."""
    out = np.zeros((len(labels), n_classes), dtype=np.float32)
    out[np.arange(len(labels)), labels] = 1.0
    return out


def balance_rows(labels: np.ndarray, confidence: np.ndarray, n_classes: int) -> np.ndarray:
    """Noisy Student's class balancing: the same number of rows for every class present.

    Each class keeps its most confident rows up to the common count (the mean class size);
    smaller classes are topped up by repeating their rows. Returns positions into ``labels``.
    """
    counts = np.bincount(labels, minlength=n_classes)
    present = np.flatnonzero(counts)
    if len(present) == 0:
        return np.zeros(0, dtype=np.int64)
    target = int(math.ceil(counts[present].mean()))
    order = np.lexsort((-confidence, labels))  # by class, most confident first
    starts = np.concatenate([[0], np.cumsum(counts)[:-1]])
    out = []
    for c in present:  # a loop over classes, not rows
        members = order[starts[c] : starts[c] + counts[c]]
        out.append(np.resize(members, target))
    return np.concatenate(out).astype(np.int64)


def prior_balance_rows(labels: np.ndarray, confidence: np.ndarray, shares: np.ndarray, n_rows: int) -> np.ndarray:
    """Class balancing that follows estimated class shares: ``round(shares[c] · n_rows)`` rows for class ``c``.

    Each class keeps its most confident rows up to its quota; a class with fewer rows than its
    quota is topped up by repeating them, one without rows stays absent. Unlike
    :func:`balance_rows` (equal counts, Noisy Student's rule), a rare class keeps its share
    instead of being inflated to the mean class size. Returns positions into ``labels``.

    Examples
    --------
    >>> import numpy as np
    >>> labels, conf = np.array([0, 0, 0, 0, 1, 1]), np.array([0.9, 0.8, 0.7, 0.6, 0.9, 0.5])
    >>> prior_balance_rows(labels, conf, np.array([0.5, 0.5]), 4).tolist()
    [0, 1, 4, 5]
    >>> prior_balance_rows(labels, conf, np.array([0.75, 0.25]), 4).tolist()
    [0, 1, 2, 4]
    """
    n_classes = len(shares)
    counts = np.bincount(labels, minlength=n_classes)
    quotas = np.round(np.asarray(shares, dtype=np.float64) * n_rows).astype(np.int64)
    order = np.lexsort((-confidence, labels))  # by class, most confident first
    starts = np.concatenate([[0], np.cumsum(counts)[:-1]])
    out = [np.zeros(0, dtype=np.int64)]
    for c in np.flatnonzero((counts > 0) & (quotas > 0)):
        members = order[starts[c] : starts[c] + counts[c]]
        out.append(np.resize(members, quotas[c]))
    return np.concatenate(out).astype(np.int64)


def select_pseudo_rows(
    proba: np.ndarray,
    candidates: np.ndarray,
    *,
    threshold: float,
    balance: bool,
    shares: np.ndarray | None = None,
    n_rows: int | None = None,
) -> tuple[np.ndarray, np.ndarray]:
    """Rows the student learns a pseudo-label for: candidates whose teacher confidence reaches ``threshold``.

    Returns the selection mask over all rows and the row indices to train on (with
    repeats when ``balance`` tops up rare classes). With ``shares`` (estimated class shares)
    the balancing follows them (:func:`prior_balance_rows`, ``n_rows`` rows in all, default
    every selected row) instead of giving every class the same count (:func:`balance_rows`);
    the mask then marks the rows kept.
    """
    confidence = proba.max(axis=1)
    selected = candidates & (confidence >= threshold)
    rows = np.flatnonzero(selected)
    if balance and len(rows):
        labels = proba[rows].argmax(axis=1)
        if shares is None:
            rows = rows[balance_rows(labels, confidence[rows], proba.shape[1])]
        else:
            n = len(rows) if n_rows is None else n_rows
            rows = rows[prior_balance_rows(labels, confidence[rows], shares, n)]
            selected = np.zeros_like(selected)
            selected[rows] = True
    return selected, rows


def labeled_repeats(n_labeled: int, n_pseudo: int, share: float) -> int:
    """Copies of each labeled row in a student's training rows, so that they make up about ``share`` of them.

    Solves ``r·L / (r·L + P) = share`` for ``r`` (``L`` labeled rows, ``P`` pseudo-labeled
    ones) and rounds, with at least one copy.

    Examples
    --------
    >>> labeled_repeats(1000, 49000, 0.17)
    10
    >>> labeled_repeats(1000, 2000, 0.17), labeled_repeats(0, 2000, 0.17)
    (1, 1)
    """
    if n_labeled <= 0 or share <= 0:
        return 1
    return max(1, round(share * n_pseudo / ((1.0 - share) * n_labeled)))


def student_targets(proba: np.ndarray, y_enc: np.ndarray, labeled: np.ndarray, *, soft: bool) -> np.ndarray:
    """Training targets ``(n, K)``: one-hot given labels where labeled, the teacher's soft or hard labels elsewhere."""
    n_classes = proba.shape[1]
    targets = proba.astype(np.float32, copy=True) if soft else one_hot(proba.argmax(axis=1), n_classes)
    targets[labeled] = one_hot(y_enc[labeled], n_classes)
    return targets


def weighted_rows(targets: np.ndarray, min_weight: float = 1e-3) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Soft labels for estimators without soft-label support: one copy of a row per class, weighted by its probability.

    Returns ``(row, class, weight)`` for every entry of ``targets`` above ``min_weight``.
    """
    rows, classes = np.nonzero(targets > min_weight)
    return rows, classes, targets[rows, classes].astype(np.float64)


def gaussian_noise(x: torch.Tensor, generator: torch.Generator, *, std: float, scale: torch.Tensor) -> torch.Tensor:
    """Input noise for vector rows: ``x + std · scale · ε`` with ``ε ~ N(0, 1)`` (``scale`` = feature spread)."""
    eps = torch.randn(x.shape, generator=generator).to(x.device)
    return x + std * scale.to(x.device) * eps


def epochs_for(n_rows: int, batch_size: int, max_epochs: int, min_steps: int) -> int:
    """Epochs to train on ``n_rows``: ``max_epochs``, raised so that small sets still get ``min_steps`` updates."""
    steps = max(1, math.ceil(n_rows / batch_size))
    return max(max_epochs, math.ceil(min_steps / steps))


def fold_ids(n: int, n_folds: int, generator: torch.Generator) -> torch.Tensor:
    """A random fold number in ``[0, n_folds)`` for each of ``n`` rows, folds of (nearly) equal size."""
    return torch.randperm(n, generator=generator) % n_folds


def align_distribution(p: torch.Tensor, prior: torch.Tensor, running: torch.Tensor) -> torch.Tensor:
    """Distribution alignment (Berthelot et al., ReMixMatch, ICLR 2020): ``p · prior / running``, renormalised.

    ``running`` (a running mean of the predictions) takes in ``p`` first, in place, with momentum 0.99.
    """
    running.mul_(0.99).add_(0.01 * p.mean(0))
    p = p * prior / running
    return p / p.sum(1, keepdim=True)


@torch.no_grad()
def weak_targets(
    guesser: torch.nn.Module,
    xu: torch.Tensor,
    *,
    threshold: float,
    generator: torch.Generator,
    weak=None,
    prior: torch.Tensor | None = None,
    running: torch.Tensor | None = None,
) -> tuple[torch.Tensor, torch.Tensor]:
    """FixMatch's targets: ``guesser``'s class on the weak view of ``xu`` (eval mode), and a 0/1 mask of confidence.

    The mask is 1 where the top probability (aligned with :func:`align_distribution` when
    ``prior`` and ``running`` are given) reaches ``threshold``.
    """
    guesser.eval()
    p_weak = torch.softmax(guesser(xu if weak is None else weak(xu, generator)).float(), dim=1)
    if prior is not None and running is not None:
        p_weak = align_distribution(p_weak, prior, running)
    conf, guess = p_weak.max(1)
    return guess, (conf >= threshold).float()


def fixmatch_loss(
    logits: torch.Tensor, y_labeled: torch.Tensor, guess: torch.Tensor, mask: torch.Tensor
) -> torch.Tensor:
    """Cross-entropy of the labeled rows (the first ``len(y_labeled)`` logits) plus the masked one of the others."""
    n_lab = len(y_labeled)
    loss_u = (F.cross_entropy(logits[n_lab:], guess, reduction="none") * mask).mean()
    return F.cross_entropy(logits[:n_lab], y_labeled) + loss_u


def consistency_step(
    net: torch.nn.Module,
    feed: Feed,
    y: torch.Tensor,
    labeled: torch.Tensor,
    unlabeled: torch.Tensor,
    idx: torch.Tensor,
    *,
    labeled_batch: int,
    threshold: float,
    weak=None,
    strong=None,
    prior: torch.Tensor | None = None,
    running: torch.Tensor | None = None,
    guesser: torch.nn.Module | None = None,
) -> StepOut:
    """One step of FixMatch-style consistency training on the unlabeled rows ``unlabeled[idx]`` (see
    :func:`consistency_epoch`); ``labeled_batch`` labeled rows are drawn at random to join it."""
    xu = feed.x(unlabeled[idx])
    lab = labeled[torch.randint(len(labeled), (labeled_batch,), generator=feed.generator)]
    xl, yl = feed.x(lab), feed.take(y, lab)
    guess, mask = weak_targets(
        net if guesser is None else guesser,
        xu,
        threshold=threshold,
        generator=feed.generator,
        weak=weak,
        prior=prior,
        running=running,
    )
    net.train()
    xs = torch.cat([xl, xu])
    loss = fixmatch_loss(net(xs if strong is None else strong(xs, feed.generator)), yl, guess, mask)
    b = len(idx)
    return StepOut(loss, {"loss": loss.detach() * b, "mask_rate": mask.sum()}, b, shown=b + labeled_batch)


def consistency_epoch(
    net: torch.nn.Module,
    optimizer: torch.optim.Optimizer,
    X: torch.Tensor,
    y: torch.Tensor,
    labeled: torch.Tensor,
    unlabeled: torch.Tensor,
    *,
    batch_size: int,
    labeled_batch: int,
    threshold: float,
    generator: torch.Generator,
    device: torch.device,
    weak=None,
    strong=None,
    prior: torch.Tensor | None = None,
    running: torch.Tensor | None = None,
    averaged: torch.nn.Module | None = None,
) -> dict[str, float]:
    """One pass of FixMatch-style consistency training over the ``unlabeled`` rows (Sohn et al., NeurIPS 2020).

    Each step takes ``batch_size`` unlabeled rows (shuffled) and ``labeled_batch`` labeled rows
    (drawn at random). The network's prediction on the *weak* view of an unlabeled row (eval
    mode, no gradient) is that row's target wherever its top probability reaches
    ``threshold``; the loss is the cross-entropy of the labeled rows against ``y`` plus that
    of the *strong* views of the unlabeled rows against their targets (rows under the
    threshold count as zero), both computed in one training-mode pass over the strong views
    of all rows of the step. ``weak`` / ``strong`` are ``f(x, generator)`` or ``None`` (the
    row as it is). Returns the mean loss and ``mask_rate``, the share of unlabeled rows that
    had a target.

    With ``prior`` (class frequencies, shape ``(K,)``) and ``running`` (a running mean of the
    weak-view predictions, updated in place with momentum 0.99 at every step; start it
    uniform and keep it across passes), the predictions are first *aligned*: multiplied by
    ``prior / running`` and renormalised (distribution alignment, Berthelot et al.,
    ReMixMatch, ICLR 2020), so that a class the network favours early does not take the
    pseudo-labels of the others.

    With ``averaged`` (a :class:`torch.optim.swa_utils.AveragedModel` of ``net``, e.g. an
    exponential moving average), the targets come from the averaged network instead, which is
    updated after every step (the mean teacher of Tarvainen and Valpola, NeurIPS 2017).
    """
    feed = Feed(X, device, generator)
    step = functools.partial(
        consistency_step,
        net,
        feed,
        y,
        labeled,
        unlabeled,
        labeled_batch=labeled_batch,
        threshold=threshold,
        weak=weak,
        strong=strong,
        prior=prior,
        running=running,
        guesser=averaged,
    )
    callbacks = [*([MovingAverage([averaged], [net])] if averaged is not None else []), Progress(device)]
    return run_epoch(step, feed.shuffled(len(unlabeled), batch_size), optimizer, [net], callbacks)


def align_columns(proba: np.ndarray, model_classes: np.ndarray, classes: np.ndarray) -> np.ndarray:
    """Place a model's ``predict_proba`` columns (for ``model_classes``) into columns of ``classes``; float32."""
    out = np.zeros((proba.shape[0], len(classes)), dtype=np.float32)
    out[:, np.searchsorted(classes, model_classes)] = proba
    return out


def balanced_accuracy(y: np.ndarray, pred: np.ndarray, n_classes: int) -> float:
    """Mean recall over the classes present in ``y`` (scikit-learn's ``balanced_accuracy_score``).

    Examples
    --------
    >>> import numpy as np
    >>> balanced_accuracy(np.array([0, 0, 0, 1]), np.array([0, 0, 1, 1]), 2)
    0.8333333333333333
    """
    counts = np.bincount(y, minlength=n_classes)
    hits = np.bincount(y[pred == y], minlength=n_classes)
    present = counts > 0
    return float(np.mean(hits[present] / counts[present]))


# ---------------------------------------------------------------------------
# The estimator: thin orchestration.
# ---------------------------------------------------------------------------


class SelfTrainer(LabelEstimatorBase):
    """Fill in missing labels (consistency training, Noisy Student) or relabel a noisy set (teacher–student).

    **Semi-supervised** (default): rows labeled ``-1`` are unlabeled. With at least 50 labels
    a class (``consistency_epochs="auto"``) one network learns from labeled and unlabeled
    rows together by FixMatch-style consistency training with a moving-average teacher, and
    is the final model. Otherwise a teacher is trained on the labeled rows; the teacher,
    without noise, labels the unlabeled rows (soft distributions or hard labels); the rows
    it is confident about (``threshold``), optionally class-balanced, are added to the
    labeled rows; a student of width ``student_width`` is trained on them *with* noise
    (dropout; Gaussian input noise for vectors, random warps for images); the student
    becomes the next teacher, for ``max_iter`` rounds (Noisy Student, Xie et al., CVPR 2020).

    **Relabel** (``relabel=True``): every given label may be wrong. The first teacher learns
    from the noisy labels and is stopped early on held-back training rows (or is the
    ``teacher`` estimator); each student learns from its teacher's soft predictions on all
    rows (Hinton's distillation experiment on MNIST with 80 % wrong labels).

    Parameters
    ----------
    relabel : bool, default=False
        Treat every given label as possibly wrong instead of filling in ``-1`` rows.
    soft : bool, default=False
        ``True``: students learn the teacher's full class distribution (Noisy Student's soft
        pseudo-labels); ``False``: its argmax. Hard labels are the default: a teacher trained
        on noisy labels predicts nearly flat distributions, from which students learn little
        (``docs/benchmarks.md#selft``).
    threshold : float in [0, 1), default=0.0
        Minimum teacher confidence (top probability) for a row to get a pseudo-label.
    balance : bool or "auto", default="auto"
        ``True``: give every class the same number of pseudo-labeled rows (most confident
        first, rare classes repeated), as Noisy Student does. ``"auto"``: in semi-supervised
        mode, balance the pseudo-labeled rows to the class shares estimated from the data, the
        shares of the labeled rows (:func:`prior_balance_rows`): a rare class keeps its share
        instead of being inflated to the mean class size (on balanced sets such as MNIST the
        two agree); in relabel mode the classes keep the shares the teacher finds (balancing
        them would push a rare class's share up and relabel rows to it). ``False``: every
        selected row once.
    labeled_share : float in [0, 1), default=0.17
        Share of each student's training rows that carry a given label: the labeled rows are
        repeated (each copy with fresh training noise) until they make up about this share
        (:func:`labeled_repeats`); ``0`` adds each once. The teacher's pseudo-labels are wrong
        in systematic places, and a student copies such errors unless the true labels weigh
        enough. How the default was chosen: ``docs/benchmarks.md#selft``.
    max_iter : int >= 0 or "auto", default="auto"
        Teacher → student rounds; ``"auto"``: none after a consistency-trained first teacher
        (``consistency_epochs_ > 0``), which is then the final model, else 5 (``docs/benchmarks.md#selft``).
    student_width : float >= 1, default=1.0
        Width factor of the students' default networks relative to the first teacher.
    estimator : "auto", "network", classifier or None, default="auto"
        The learner. ``"auto"``: in semi-supervised mode (without ``teacher``), 2-D rows of at
        most 512 columns and 200,000 rows are a table: scikit-learn's gradient-boosted trees on
        the native columns (categories as categories, missing values kept) and a logistic
        regression on the one-hot view; the one, or the equal mix, whose cross-fitted
        probabilities fit the labeled rows best is kept (as ``CoTeachingFilter(estimator="auto")``
        picks its backbones), first fitted on the labeled rows, then for ``max_iter`` rounds on
        the labeled rows (repeated to ``labeled_share``) and a growing share of the unlabeled
        rows, ``r / max_iter`` of them in round ``r``, pseudo-labeled by the previous round's
        models, most confident first and balanced to the estimated class shares (``balance``);
        the self-trained models are kept only where ``guard`` finds them no worse. Images,
        wider rows and relabel mode get the torch networks. ``"network"`` (or ``None``): the
        torch networks. A scikit-learn classifier with ``predict_proba``: used
        instead of the torch networks.
        Soft labels reach it as duplicated rows with ``sample_weight``; without
        ``sample_weight`` support use ``soft=False``.
    teacher : classifier or None, default=None
        An unfitted estimator whose ``predict_proba`` (after ``fit``) gives the first round's
        labels, e.g. a :class:`~labelclean.CoTeachingFilter` in relabel mode. It is fitted
        on all rows in relabel mode, on the labeled rows otherwise.
    guard : bool, default=True
        Table path (``backbone_ == "table"``): keep the self-trained models only where
        self-training is not worse than the same learner on the labeled rows alone, judged on
        the labeled rows only. They are split into three stratified folds (two when a class has
        fewer than three labeled rows); for each fold the ``max_iter`` rounds run on the other
        folds' labeled rows and every unlabeled row, and both the round-0 models (labeled rows
        alone) and the final ones predict the held-out fold. Self-training is kept when it is
        worse on neither pooled held-out score, balanced accuracy (not lower) and log-loss (not
        higher); otherwise the models fitted on the labeled rows are the final ones
        (``self_training_kept_`` is ``False``, ``termination_condition_`` ``"no_gain"``). The
        check costs about as many times the rounds as there are folds. Not used on the other
        paths. How it fares on the suite: ``docs/benchmarks.md#semi``.
    n_folds : int >= 2, default=2
        Relabel mode, default networks: the first teacher is ``n_folds`` networks, each trained
        on all folds but one and stopped early on its held-back fold (accuracy against the
        noisy labels, recorded in ``history_`` as ``holdout_accuracy``); every row is labeled by
        the network that never saw it, so memorised wrong labels are not passed on.
    patience : int, default=3
        Epochs without a better held-back accuracy before a relabel-mode teacher stops.
    max_teacher_epochs : int, default=20
        Relabel mode: most epochs an early-stopped teacher network may train (``docs/benchmarks.md#selft``).
    consistency_epochs : int >= 0 or "auto", default="auto"
        Semi-supervised mode, default networks: when positive, the first teacher learns from the
        unlabeled rows as well, by FixMatch-style consistency training (Sohn et al., NeurIPS
        2020; see :func:`consistency_epoch`) for this many passes over the unlabeled rows
        (raised so that it gets at least ``min_steps`` updates): a moving average of the
        network's weights (``consistency_ema``) predicts each weakly perturbed row (images
        shifted by up to 1/14 of their side, vectors as they are), and where it is confident
        that prediction is the target of a strongly perturbed copy (the student noise: random
        warps, Gaussian noise); labeled rows join every step; the averaged network is the
        teacher. ``0`` trains the first teacher on the labeled rows alone (plain Noisy
        Student). Not used in relabel mode, with ``estimator`` or with ``teacher``.
        ``"auto"``: 20 passes when every class has at least 50 labeled rows, else 0: with
        fewer labels a class the network's own confident mistakes can take over. How the rule
        was chosen, on images and vector rows: ``docs/benchmarks.md#selft``.
    consistency_threshold : float in [0, 1), default=0.95
        Confidence the teacher's prediction on the weak view needs to become a target.
    consistency_align : bool, default=False
        Align the weak-view predictions with the labeled rows' class frequencies before reading
        their confidence (distribution alignment, Berthelot et al., ICLR 2020); not the default
        (``docs/benchmarks.md#selft``).
    consistency_ema : float in [0, 1), default=0.999
        Consistency training: weight of the moving average of the network's weights (updated
        every step, with a warm-up ``min(consistency_ema, (1 + n) / (10 + n))`` after ``n``
        steps), which makes the targets and is the teacher (mean teacher, Tarvainen and
        Valpola, NeurIPS 2017); ``0`` uses the network itself (``docs/benchmarks.md#selft``).
    input_noise : float, default=0.1
        Student noise for vector rows: Gaussian noise of this many feature standard deviations.
    augment : {"auto", "none", "shift", "affine"}, default="auto"
        Student noise for images, as every estimator's augmentation: ``"shift"`` moves images
        by up to 1/12 of their side (2 px on 28×28, at least 1 px); ``"affine"`` also rotates
        them by up to 10° and zooms by up to 10 %; ``"auto"`` is ``"affine"`` for images of
        12 px and more, shifts of 1/12 of the side below (``docs/benchmarks.md#selft``).
    max_epochs : int, default=4
        Epochs per network (raised for small sets so each network gets ``min_steps`` updates).
    min_steps : int, default=300
        Minimum number of mini-batch updates per network.
    batch_size : int, default=128
    lr : float, default=1e-3
        Adam's learning rate, decayed linearly over the second half of each network's epochs.
    weight_decay : float, default=0.0
    hidden_dims : sequence of int, default=(256, 256)
        Hidden widths of the default MLP (2-D inputs).
    dropout : float in [0, 1), default=0.3
        Dropout of the default networks (training noise).
    input_shape : tuple (C, H, W) or None, default=None
        Treat 2-D rows as images of this shape (default CNN).
    module : callable or None, default=None
        ``module(input_shape, n_classes) -> torch.nn.Module`` to replace the default networks.
    device : str, default="auto"
    random_state : int, RandomState instance or None, default=None
        Seeds initialisation, shuffling, noise and the held-back split, without touching global generators.
    verbose : int, default=0
    n_jobs : int or None, default=None
        Torch threads during ``fit`` and ``predict`` (restored afterwards). ``None`` leaves
        torch's setting (``OMP_NUM_THREADS`` when set, else all cores); ``-1`` uses all cores.

    Attributes
    ----------
    classes_ : ndarray of shape (n_classes,)
        The label values, without the unlabeled marker ``-1``.
    pseudo_labels_ : ndarray of shape (n_samples,)
        Given label on labeled rows (semi-supervised mode), the final model's label elsewhere.
        Relabel mode: the final model's label where it doubts the given one, else the given one.
    label_quality_ : ndarray of float32, shape (n_samples,)
        Semi-supervised mode: the final model's probability of ``pseudo_labels_`` (its
        confidence). Relabel mode: the quality of the *given* label, as on
        :class:`~labelclean.CoTeachingFilter` (:func:`labelclean.detection.detect`).
    clean_mask_ : ndarray of bool, shape (n_samples,)
        Semi-supervised mode: the labeled rows, plus the filled rows the final model trained
        on (for a consistency-trained teacher kept as the final model, the rows its prediction
        reaches ``consistency_threshold`` on) whose ``label_quality_`` reaches 0.9, the
        threshold at which the detection rule trusts a proposed label
        (``labelclean.detection.RELABEL_THRESHOLD``); so dropping the other rows keeps
        trusted labels only. Relabel mode: the given label is trusted, i.e. the final model
        agrees with it.
    consistency_epochs_ : int
        Passes of consistency training the first teacher got (``consistency_epochs`` resolved;
        0: trained on the labeled rows alone).
    n_iter_ : int
        Student rounds run (0 when there was nothing to pseudo-label, or when ``guard`` kept
        the labeled-only models).
    termination_condition_ : {"max_iter", "no_change", "all_labeled", "no_gain"}
        ``"no_change"``: the pseudo-labels stopped changing or no row passed ``threshold``;
        ``"all_labeled"``: ``y`` had no unlabeled rows (plain training); ``"no_gain"``: the
        ``guard`` kept the models fitted on the labeled rows alone.
    self_training_kept_ : bool or None
        Table path: whether the final models are the self-trained ones (``False`` when
        ``guard`` found self-training worse on held-out labeled rows, or when no round ran);
        the held-out scores of both are in ``history_`` (phase ``"guard"``). ``None`` on the
        other paths.
    history_ : list of dict
        One entry per epoch (phase, round, loss, seconds, ...) and one per pseudo-labeling.
    networks_ : list of torch.nn.Module
        The final network (empty when ``estimator`` is given).
    estimator_ : fitted estimator or None
        The final model when ``estimator`` is given.
    teacher_ : fitted estimator or None
        The fitted ``teacher``.
    n_features_in_ : int

    Examples
    --------
    >>> import numpy as np
    >>> from sklearn.datasets import make_classification
    >>> from labelclean.self_training import SelfTrainer
    >>> X, y = make_classification(300, n_features=8, n_informative=5, n_classes=3, random_state=0)
    >>> y_semi = y.copy()
    >>> y_semi[30:] = -1  # only the first 30 rows are labeled
    >>> st = SelfTrainer(max_iter=2, min_steps=100, hidden_dims=(32,), random_state=0).fit(X, y_semi)
    >>> st.classes_
    array([0, 1, 2])
    >>> st.pseudo_labels_.shape, st.termination_condition_  # the guard: no gain on held-out labeled rows
    ((300,), 'no_gain')
    >>> bool((st.pseudo_labels_[30:] == y[30:]).mean() > 0.6)
    True
    """

    _parameter_constraints: dict = {
        **LabelEstimatorBase._parameter_constraints,
        "relabel": ["boolean"],
        "soft": ["boolean"],
        "threshold": [Interval(Real, 0.0, 1.0, closed="left")],
        "balance": ["boolean", StrOptions({"auto"})],
        "labeled_share": [Interval(Real, 0.0, 1.0, closed="left")],
        "max_iter": [Interval(Integral, 0, None, closed="left"), StrOptions({"auto"})],
        "student_width": [Interval(Real, 1.0, None, closed="left")],
        "estimator": "no_validation",
        "teacher": "no_validation",
        "guard": ["boolean"],
        "n_folds": [Interval(Integral, 2, None, closed="left")],
        "patience": [Interval(Integral, 1, None, closed="left")],
        "max_teacher_epochs": [Interval(Integral, 1, None, closed="left")],
        "consistency_epochs": [Interval(Integral, 0, None, closed="left"), StrOptions({"auto"})],
        "consistency_threshold": [Interval(Real, 0.0, 1.0, closed="left")],
        "consistency_align": ["boolean"],
        "consistency_ema": [Interval(Real, 0.0, 1.0, closed="left")],
        "input_noise": [Interval(Real, 0.0, None, closed="left")],
        "augment": [StrOptions(set(AUGMENTATIONS))],
        "min_steps": [Interval(Integral, 0, None, closed="left")],
    }

    def __init__(
        self,
        *,
        relabel: bool = False,
        soft: bool = False,
        threshold: float = 0.0,
        balance: bool | str = "auto",
        labeled_share: float = 0.17,
        max_iter: int | str = "auto",
        student_width: float = 1.0,
        estimator: Any = "auto",
        teacher: Any = None,
        guard: bool = True,
        n_folds: int = 2,
        patience: int = 3,
        max_teacher_epochs: int = 20,
        consistency_epochs: int | str = "auto",
        consistency_threshold: float = 0.95,
        consistency_align: bool = False,
        consistency_ema: float = 0.999,
        input_noise: float = 0.1,
        augment: str = "auto",
        max_epochs: int = 4,
        min_steps: int = 300,
        batch_size: int = 128,
        lr: float = 1e-3,
        weight_decay: float = 0.0,
        hidden_dims: tuple[int, ...] = (256, 256),
        dropout: float = 0.3,
        input_shape: tuple[int, ...] | None = None,
        module: Any = None,
        device: str = "auto",
        random_state: Any = None,
        verbose: int = 0,
        n_jobs: int | None = None,
    ) -> None:
        self.relabel = relabel
        self.soft = soft
        self.threshold = threshold
        self.balance = balance
        self.labeled_share = labeled_share
        self.max_iter = max_iter
        self.student_width = student_width
        self.estimator = estimator
        self.teacher = teacher
        self.guard = guard
        self.n_folds = n_folds
        self.patience = patience
        self.max_teacher_epochs = max_teacher_epochs
        self.consistency_epochs = consistency_epochs
        self.consistency_threshold = consistency_threshold
        self.consistency_align = consistency_align
        self.consistency_ema = consistency_ema
        self.input_noise = input_noise
        self.augment = augment
        self.max_epochs = max_epochs
        self.min_steps = min_steps
        self.batch_size = batch_size
        self.lr = lr
        self.weight_decay = weight_decay
        self.hidden_dims = hidden_dims
        self.dropout = dropout
        self.input_shape = input_shape
        self.module = module
        self.device = device
        self.random_state = random_state
        self.verbose = verbose
        self.n_jobs = n_jobs

    # -- checks -------------------------------------------------------------
    def _check_models(self) -> None:
        if isinstance(self.estimator, str) and self.estimator not in ("auto", "network"):
            raise TypeError(
                f"estimator={self.estimator!r} is neither 'auto', 'network' nor a classifier with fit/predict_proba; "
                "e.g. LogisticRegression(), or 'network' for the default networks."
            )
        for name in ("estimator", "teacher"):
            model = getattr(self, name)
            if (
                model is not None
                and not isinstance(model, str)
                and not (hasattr(model, "fit") and hasattr(model, "predict_proba"))
            ):
                raise TypeError(
                    f"{name}={model!r} lacks fit/predict_proba; pass a classifier with predict_proba "
                    "(e.g. LogisticRegression(), or SVC(probability=True)), or None for the default networks."
                )
        if self._user_estimator() and self.soft and not has_fit_parameter(self.estimator, "sample_weight"):
            raise ValueError(
                f"estimator={self.estimator!r} has no sample_weight in fit, which soft labels need; "
                "pass soft=False to train it on hard pseudo-labels."
            )

    def _user_estimator(self) -> bool:
        """True when ``estimator`` is a classifier (not ``"auto"``, ``"network"`` or ``None``)."""
        return self.estimator is not None and not isinstance(self.estimator, str)

    def _resolve_backbone(self, n_rows: int) -> str:
        """``backbone_``: ``"table"``, ``"network"`` or ``"estimator"`` (see ``estimator``)."""
        kind = backbone_kind(
            self.estimator,
            module=self.module,
            input_shape=self.input_shape_,
            n_features=int(np.prod(self.input_shape_)),
            n_rows=n_rows,
        )
        if kind == "table" and (self.relabel or self.teacher is not None):
            return "network"
        return kind

    def _check_label_types(self, y: Any) -> None:
        """The base check, on the labeled rows only: the int marker ``-1`` may sit among string labels."""
        values = None if y is None else np.asarray(y)
        if values is not None and values.ndim == 1:
            y = values[~unlabeled_mask(values)]
        super()._check_label_types(y)

    def _split_labels(self, y: Any) -> tuple[np.ndarray, np.ndarray]:
        """Encode labels, ``-1`` → unlabeled; return ``(y_enc with -1 for unlabeled, labeled mask)``."""
        if y is None:
            check_classification_targets(y)  # raises scikit-learn's "y is None" error
        labeled = ~unlabeled_mask(y)
        check_classification_targets(self._tidy_labels(y[labeled]))
        if not labeled.any():
            raise ValueError(
                "every row of y is unlabeled (-1); label at least one row per class, or pass relabel=True "
                "with the (noisy) labels."
            )
        if self.relabel and not labeled.all():
            raise ValueError(
                f"relabel=True treats every label as possibly wrong, but {int((~labeled).sum())} rows are "
                "unlabeled (-1); pass relabel=False to fill them in, or drop them."
            )
        y_enc = np.full(len(y), -1, dtype=np.int64)
        y_enc[labeled] = self._encode_labels(y[labeled])
        if len(self.classes_) < 2:
            raise ValueError(
                f"the labeled rows hold only one class ({self.classes_[0]!r}); "
                "self-training needs at least two classes."
            )
        return y_enc, labeled

    # -- models -------------------------------------------------------------
    def _noise(self):
        if len(self.input_shape_) == 3:
            return augmentation(self.augment, self.input_shape_)
        if self.input_noise > 0:
            return functools.partial(gaussian_noise, std=float(self.input_noise), scale=self._x_scale)
        return None

    def _consistency_passes(self, y_enc: np.ndarray, labeled: np.ndarray) -> int:
        """Passes of consistency training for the first teacher; 0 where it is not used (see the docstring)."""
        if self.relabel or self.backbone_ != "network" or self.teacher is not None or labeled.all():
            return 0
        if self.consistency_epochs != "auto":
            return int(self.consistency_epochs)
        per_class = np.bincount(y_enc[labeled], minlength=len(self.classes_))
        return AUTO_CONSISTENCY_EPOCHS if per_class.min() >= AUTO_CONSISTENCY_MIN_LABELS else 0

    def _weak_noise(self):
        """Consistency training's weak view: images shifted by up to 1/14 of their side; vectors unchanged."""
        if len(self.input_shape_) != 3 or self.augment == "none":
            return None
        shift = min(self.input_shape_[1:]) // 14
        return functools.partial(random_shift, max_shift=shift) if shift else None

    def _consistency_teacher(self, Xt, y_enc, labeled, gen) -> tuple[np.ndarray, torch.nn.Module]:
        """First teacher by consistency training on labeled and unlabeled rows; its probabilities and network."""
        net = self._new_net(len(self.classes_))
        optimizer = adam(net.parameters(), self.lr, self.weight_decay)
        lab, unl = torch.from_numpy(np.flatnonzero(labeled)), torch.from_numpy(np.flatnonzero(~labeled))
        epochs = epochs_for(len(unl), self.batch_size, self.consistency_epochs_, self.min_steps)
        y_t, weak, strong = torch.from_numpy(y_enc), self._weak_noise(), self._noise()
        prior = running = None
        if self.consistency_align:
            k = len(self.classes_)
            prior = torch.bincount(y_t[lab], minlength=k).float().to(self.device_)
            prior, running = prior / prior.sum(), torch.full((k,), 1.0 / k, device=self.device_)
        averaged = moving_averages([net], self.consistency_ema)[0] if self.consistency_ema > 0 else None
        callbacks = [
            LearningRate(optimizer, lambda e: self.lr * lr_factor(e, epochs)),
            History(self.history_, {"phase": "teacher", "round": 0}, verbose=self.verbose, name="SelfTrainer"),
        ]

        def epoch(_: int) -> dict[str, float]:
            return consistency_epoch(
                net,
                optimizer,
                Xt,
                y_t,
                lab,
                unl,
                batch_size=self.batch_size,
                labeled_batch=max(1, self.batch_size // 4),
                threshold=float(self.consistency_threshold),
                generator=gen,
                device=self.device_,
                weak=weak,
                strong=strong,
                prior=prior,
                running=running,
                averaged=averaged,
            )

        steps = steps_per_epoch(len(unl), self.batch_size)
        fit_epochs(epochs, epoch, callbacks, phase="teacher (consistency)", steps=steps)
        if averaged is not None:
            net = averaged.module
        return predict_proba_nets([net], Xt, self.device_), net

    def _train_net(self, Xt, targets, rows, *, width, gen, tag, holdout=None) -> torch.nn.Module:
        """Train one network on ``rows`` against soft ``targets``; early-stopped on ``holdout`` when given."""
        net = self._new_net(len(self.classes_), width=width)
        optimizer = adam(net.parameters(), self.lr, self.weight_decay)
        epochs = epochs_for(len(rows), self.batch_size, self.max_epochs, self.min_steps)
        callbacks = [
            LearningRate(optimizer, lambda e: self.lr * (1.0 if holdout is not None else lr_factor(e, epochs))),
            Progress(self.device_),
        ]
        if holdout is not None:  # early stopping decides, within max_teacher_epochs
            epochs = max(epochs, self.max_teacher_epochs)
            held_labels = targets[holdout].argmax(1).numpy()  # the (noisy) labels it is scored against

            def accuracy() -> float:
                return float(
                    np.mean(predict_proba_nets([net], Xt, self.device_, rows=holdout).argmax(1) == held_labels)
                )

            callbacks.append(EarlyStopping(net, accuracy, patience=self.patience, key="holdout_accuracy"))
        callbacks.append(History(self.history_, tag, verbose=self.verbose, name="SelfTrainer"))
        feed = Feed(Xt, self.device_, gen, self._noise())
        step = supervised([net], soft_cross_entropy, feed, targets)
        fit_epochs(
            epochs,
            lambda e: run_epoch(step, feed.shuffled(rows, self.batch_size), optimizer, [net], callbacks),
            callbacks,
            phase=self._phase_name(tag),
            steps=steps_per_epoch(len(rows), self.batch_size),
        )
        return net

    def _train_model(self, Xt, targets, rows, *, width, gen, tag, holdout=None):
        if self.backbone_ == "network":
            return self._train_net(Xt, targets, torch.as_tensor(rows), width=width, gen=gen, tag=tag, holdout=holdout)
        t0 = time.perf_counter()
        X2, T = Xt.reshape(Xt.shape[0], -1).numpy(), targets.numpy()
        model = clone(self.estimator)
        with _progress.phase(self._phase_name(tag), 1, unit="fits"):
            if self.soft:
                r, c, w = weighted_rows(T[rows])
                model.fit(X2[rows][r], c, sample_weight=w)
            else:
                model.fit(X2[rows], T[rows].argmax(1))
            _progress.advance(1, rows=len(rows))
        self.history_.append({**tag, "epoch": 0, "seconds": time.perf_counter() - t0})
        return model

    def _phase_name(self, tag: dict[str, Any]) -> str:
        """The progress phase of a model's training, from its ``history_`` tag."""
        if tag["phase"] == "student":
            return f"student {tag['round']}"
        if "fold" in tag:
            return f"teacher, fold {tag['fold'] + 1}/{self.n_folds}"
        return "teacher"

    def _proba(self, model, Xr: np.ndarray | torch.Tensor) -> np.ndarray:
        if isinstance(model, torch.nn.Module):
            return predict_proba_nets([model], torch.as_tensor(Xr), self.device_)
        X2 = np.asarray(Xr).reshape(len(Xr), -1)
        return align_columns(model.predict_proba(X2), np.asarray(model.classes_), np.arange(len(self.classes_)))

    def _first_teacher(self, X, y, Xt, y_enc, labeled, gen) -> tuple[np.ndarray, Any]:
        """First-round probabilities for every row, and the teacher (a list of networks when cross-fitted)."""
        if self.teacher is not None:
            fit_rows = np.flatnonzero(labeled)
            with _progress.phase("teacher", 1, unit="fits"):
                self.teacher_ = clone(self.teacher).fit(_safe_indexing(X, fit_rows), _safe_indexing(y, fit_rows))
                _progress.advance(1, rows=len(fit_rows))
            proba = self.teacher_.predict_proba(X)
            return align_columns(proba, np.asarray(self.teacher_.classes_), self.classes_), None
        if self.consistency_epochs_ > 0:
            return self._consistency_teacher(Xt, y_enc, labeled, gen)
        targets = torch.from_numpy(one_hot(np.maximum(y_enc, 0), len(self.classes_)))
        if not (self.relabel and self.backbone_ == "network"):
            model = self._train_model(
                Xt, targets, np.flatnonzero(labeled), width=1.0, gen=gen, tag={"phase": "teacher", "round": 0}
            )
            return self._proba(model, Xt), model
        folds = fold_ids(len(y_enc), self.n_folds, gen)
        proba, nets = np.zeros((len(y_enc), len(self.classes_)), dtype=np.float32), []
        for k in range(self.n_folds):  # cross-fitting: each row is labeled by a network that never saw it
            held = torch.nonzero(folds == k).squeeze(1)
            net = self._train_net(
                Xt,
                targets,
                torch.nonzero(folds != k).squeeze(1),
                width=1.0,
                gen=gen,
                tag={"phase": "teacher", "round": 0, "fold": k},
                holdout=held,
            )
            proba[held.numpy()] = predict_proba_nets([net], Xt, self.device_, rows=held)
            nets.append(net)
        return proba, nets

    # -- fit ----------------------------------------------------------------
    @_fit_context(prefer_skip_nested_validation=True)
    def fit(self, X: Any, y: Any) -> SelfTrainer:
        """Self-train on ``X, y`` (``-1`` = unlabeled) or relabel it, and fill the row contract.

        Parameters
        ----------
        X : array-like of shape (n_samples, n_features), or an image array
        y : array-like of shape (n_samples,)
            Labels of any hashable type; ``-1`` marks an unlabeled row.

        Returns
        -------
        self
        """
        self._check_models()
        Xt, y_raw = self._prepare(X, y)
        y_enc, labeled = self._split_labels(y_raw)
        self.backbone_ = self._resolve_backbone(len(y_enc))
        self.consistency_epochs_ = self._consistency_passes(y_enc, labeled)
        self.history_, self.teacher_, self.n_iter_ = [], None, 0
        self.estimators_, self.backbone_weights_ = [], None
        self.termination_condition_ = "max_iter"
        self.self_training_kept_ = None
        given = np.zeros_like(labeled) if self.relabel else labeled  # rows whose label is trusted
        if given.all():
            self._warn(
                "y has no unlabeled rows (-1), so there is nothing to self-train on; "
                "training a plain classifier. Mark unlabeled rows with -1, or pass relabel=True."
            )
            self.termination_condition_ = "all_labeled"
        if self.backbone_ == "table":
            with self._seeded():
                proba, trained = self._fit_table(X, Xt, y_enc, given)
            self._finish(None, proba, y_enc, given, trained)
            return self
        gen = self._generator()
        with self._seeded():
            proba, model = self._first_teacher(X, y_raw, Xt, y_enc, labeled, gen)
            trained = labeled.copy()
            if self.consistency_epochs_ > 0:  # it learnt the rows it is confident about, as a student does
                trained |= proba.max(axis=1) >= self.consistency_threshold
            if not given.all():
                model, proba, trained = self._self_train(Xt, y_enc, given, proba, model, trained, gen)
        self._finish(model, proba, y_enc, given, trained)
        return self

    def _self_train(self, Xt, y_enc, given, proba, model, trained, gen):
        """Teacher → student rounds; returns the last model, its probabilities and the rows it trained on."""
        previous, given_rows = None, np.flatnonzero(given)
        max_iter = self.max_iter
        if max_iter == "auto":  # a consistency-trained teacher is the final model; otherwise five students
            max_iter = 0 if self.consistency_epochs_ > 0 else AUTO_STUDENTS
        for rnd in range(1, max_iter + 1):
            balance = (not self.relabel) if self.balance == "auto" else bool(self.balance)
            shares = self._label_shares(y_enc, given) if self.balance == "auto" else None
            selected, rows = select_pseudo_rows(proba, ~given, threshold=self.threshold, balance=balance, shares=shares)
            labels = np.where(selected, proba.argmax(1), -1)
            changed = None if previous is None else int(np.sum(labels != previous))
            copies = labeled_repeats(len(given_rows), len(rows), self.labeled_share)
            self.history_.append(
                {
                    "phase": "pseudo_label",
                    "round": rnd,
                    "n_selected": int(selected.sum()),
                    "changed": changed,
                    "labeled_copies": copies,
                }
            )
            if not selected.any() or changed == 0:
                self.termination_condition_ = "no_change"
                break
            targets = torch.from_numpy(student_targets(proba, y_enc, given, soft=self.soft))
            train_rows = np.concatenate([np.tile(given_rows, copies), rows])
            tag = {"phase": "student", "round": rnd}
            model = self._train_model(Xt, targets, train_rows, width=self.student_width, gen=gen, tag=tag)
            proba, previous, trained = self._proba(model, Xt), labels, selected | given
            self.n_iter_ = rnd
        return model, proba, trained

    def _label_shares(self, y_enc: np.ndarray, given: np.ndarray) -> np.ndarray:
        """Class shares estimated from the data: those of the labeled rows."""
        counts = np.bincount(y_enc[given], minlength=len(self.classes_)).astype(np.float64)
        return counts / max(counts.sum(), 1.0)

    def _max_rounds(self) -> int:
        if self.max_iter == "auto":  # a consistency-trained teacher is the final model; otherwise five students
            return 0 if self.consistency_epochs_ > 0 else AUTO_STUDENTS
        return int(self.max_iter)

    # -- the tabular path (scikit-learn backbones) ---------------------------
    def _fit_table(self, X: Any, Xt: torch.Tensor, y_enc: np.ndarray, given: np.ndarray):
        """Self-training of the tabular backbones; returns the final probabilities and the rows trained on.

        The backbones are picked on the labeled rows (cross-fitted, :func:`choose_weights`) and
        fitted on them; in each round ``r`` the previous models label the unlabeled rows, the
        ``r / max_iter`` most confident share of them (balanced to the labeled rows' class
        shares) joins the labeled rows (repeated to ``labeled_share``), and the backbones are
        refitted on that. With ``guard`` the rounds are first run within folds of the labeled
        rows (:meth:`_table_guard`); where they do no better there than the labeled rows alone,
        the models fitted on the labeled rows are the final ones.
        """
        k = len(self.classes_)
        views = {"dense": Xt.numpy().reshape(len(y_enc), -1)}
        mask = np.zeros(views["dense"].shape[1], dtype=bool)
        if self.backbone_ == "table":
            views["codes"], mask = self._tree_view(X)
        backbones = table_backbones(self.backbone_, self.estimator, mask, self._seed)
        lab = np.flatnonzero(given)
        y_lab = y_enc[lab]
        t0 = time.perf_counter()
        if len(backbones) > 1:
            n_folds = int(min(TABLE_FOLDS, max(2, np.bincount(y_lab, minlength=k).min())))
            folds = stratified_folds(y_lab, n_folds, self._seed)
            lab_views = {name: v[lab] for name, v in views.items()}
            with _progress.phase("choosing the learner", len(np.unique(folds)), unit="folds"):
                weights = choose_weights(cross_fit_proba(backbones, lab_views, y_lab, folds, k), y_lab)
        else:
            weights = np.ones(1)
        backbones = [b for b, w in zip(backbones, weights) if w > 0]
        self.backbone_weights_ = np.asarray(weights[weights > 0], dtype=np.float64)
        self._estimator_views = [b.view for b in backbones]
        self.history_.append({"phase": "choose", "weights": weights.tolist(), "seconds": time.perf_counter() - t0})
        n_rounds = self._max_rounds() if (~given).any() else 0
        self.self_training_kept_ = n_rounds > 0
        if self.self_training_kept_ and self.guard:
            self.self_training_kept_ = self._table_guard(backbones, views, y_enc, given, n_rounds)
            if not self.self_training_kept_:
                n_rounds = 0
                self.termination_condition_ = "no_gain"
        models, proba, _, trained = self._table_rounds(backbones, views, y_enc, given, n_rounds, record=True)
        self.estimators_ = models
        return proba, trained

    def _table_rounds(self, backbones, views, y_enc, given, n_rounds, *, record):
        """The self-training rounds of the tabular path on the labeled rows ``given`` and every other row.

        Rows that are neither labeled nor unlabeled (``y_enc == -1`` and ``given`` false are the
        unlabeled ones; held-out labeled rows of :meth:`_table_guard` are passed with
        ``y_enc = -2``) take no part. Returns the final models, their probabilities on every
        row, the probabilities of the models fitted on the labeled rows alone (round 0) and
        the rows trained on. ``record``: write ``history_`` and set ``n_iter_`` /
        ``termination_condition_``.
        """
        k = len(self.classes_)
        weights = self.backbone_weights_
        lab = np.flatnonzero(given)
        pool = ~given & (y_enc == -1)
        unl = np.flatnonzero(pool)
        shares = self._label_shares(y_enc, given)
        balance = self.balance in ("auto", True)
        targets, rows, trained = y_enc.copy(), lab, given.copy()
        first = None
        for rnd in range(n_rounds + 1):
            t0 = time.perf_counter()
            name = "teacher" if rnd == 0 else f"student {rnd}"
            with _progress.phase(name, len(backbones), unit="fits") if record else contextlib.nullcontext():
                models = []
                for b in backbones:
                    models.append(fit_model(b.model, views[b.view], targets, rows))
                    if record:
                        _progress.advance(1, rows=len(rows))
            proba = models_proba(models, self._estimator_views, views, weights, k)
            if first is None:
                first = proba
            if record:
                phase = "teacher" if rnd == 0 else "student"
                self.history_.append(
                    {"phase": phase, "round": rnd, "rows": len(rows), "seconds": time.perf_counter() - t0}
                )
                self.n_iter_ = rnd
            if rnd == n_rounds or len(unl) == 0:
                break
            n_take = int(round((rnd + 1) / n_rounds * len(unl)))
            selected, picked = select_pseudo_rows(
                proba,
                pool,
                threshold=self.threshold,
                balance=balance,
                shares=shares if self.balance == "auto" else None,
                n_rows=n_take,
            )
            if not balance or self.balance is True:  # no quotas: the most confident n_take rows
                conf = proba[picked].max(axis=1)
                picked = picked[np.argsort(-conf, kind="stable")[:n_take]]
                selected = np.zeros_like(selected)
                selected[picked] = True
            if record:
                self.history_.append({"phase": "pseudo_label", "round": rnd + 1, "n_selected": int(selected.sum())})
            if not len(picked):
                if record:
                    self.termination_condition_ = "no_change"
                break
            targets = np.where(given, y_enc, proba.argmax(axis=1))
            copies = labeled_repeats(len(lab), len(picked), self.labeled_share)
            rows, trained = np.concatenate([np.tile(lab, copies), picked]), given | selected
        return models, proba, first, trained

    def _table_guard(self, backbones, views, y_enc, given, n_rounds) -> bool:
        """Whether self-training is kept: cross-validated over the labeled rows, never on other rows.

        The labeled rows are split into ``GUARD_FOLDS`` stratified folds (fewer when a class
        has fewer rows). For each fold, the rounds of :meth:`_table_rounds` run on the other
        folds' labeled rows and every unlabeled row (the held-out fold takes no part); its
        round-0 models (the same learner on those labeled rows alone) and its final models
        predict the held-out fold. Self-training is kept when, pooled over the folds, the final
        models are worse on neither score: their held-out balanced accuracy (the decisions) is
        at least that of the round-0 models and their held-out log-loss (the probabilities) is
        not higher. The scores go to ``history_`` (phase ``"guard"``).
        """
        t0 = time.perf_counter()
        k = len(self.classes_)
        lab = np.flatnonzero(given)
        y_lab = y_enc[lab]
        n_folds = int(min(GUARD_FOLDS, max(2, np.bincount(y_lab, minlength=k).min())))
        folds = stratified_folds(y_lab, n_folds, self._seed)
        alone = np.zeros((len(lab), k), dtype=np.float64)
        trained = np.zeros((len(lab), k), dtype=np.float64)
        with _progress.phase("checking self-training", n_folds, unit="folds"):
            for fold in range(n_folds):
                held = folds == fold
                fit_given = given.copy()
                fit_given[lab[held]] = False
                if len(np.unique(y_enc[fit_given])) < 2:  # nothing to learn from: both guess the class shares
                    alone[held] = trained[held] = np.bincount(y_lab, minlength=k) / len(y_lab)
                    _progress.advance(1)
                    continue
                y_fold = y_enc.copy()
                y_fold[lab[held]] = -2  # neither labeled nor unlabeled: out of this fold's rounds
                _, last, first, _ = self._table_rounds(backbones, views, y_fold, fit_given, n_rounds, record=False)
                alone[held], trained[held] = first[lab[held]], last[lab[held]]
                _progress.advance(1)
        scores = {
            name: {"balanced_accuracy": balanced_accuracy(y_lab, p.argmax(1), k), "log_loss": log_loss(p, y_lab)}
            for name, p in (("labeled_only", alone), ("self_trained", trained))
        }
        a, s = scores["labeled_only"], scores["self_trained"]
        kept = bool(s["balanced_accuracy"] >= a["balanced_accuracy"] - 1e-12 and s["log_loss"] <= a["log_loss"])
        self.history_.append(
            {"phase": "guard", "folds": n_folds, **scores, "kept": kept, "seconds": time.perf_counter() - t0}
        )
        return kept

    def _finish(self, model, proba, y_enc, given, trained) -> None:
        """Keep the final model and fill the row contract."""
        if model is None and self.backbone_ != "table":  # the user's teacher was never replaced by a student
            model = self.teacher_
        self.networks_ = model if isinstance(model, list) else [model] if isinstance(model, torch.nn.Module) else []
        self.estimator_ = None if self.networks_ or self.backbone_ == "table" else model
        if self.relabel:  # every label was given and may be wrong: the detection rule on the final model
            self._set_contract(detect(y_enc, proba, flag="disagreement", relabel_threshold=0.0, calibrated=True))
            return
        best = np.where(given, y_enc, proba.argmax(1))
        self.pseudo_labels_ = self.classes_[best]
        self.label_quality_ = np.clip(proba[np.arange(len(best)), best], 0.0, 1.0).astype(np.float32)
        # A filled label is trusted as the detection rule trusts a proposed one: confident enough.
        confident = np.asarray(trained, dtype=bool) & (self.label_quality_ >= RELABEL_THRESHOLD)
        self.clean_mask_ = given | confident

    # -- prediction ---------------------------------------------------------
    def predict_proba(self, X: Any) -> np.ndarray:
        """Class probabilities of the final model.

        Parameters
        ----------
        X : array-like of shape (n_samples, n_features) or image array
            Rows shaped like the training rows.

        Returns
        -------
        ndarray of shape (n_samples, n_classes), float32
        """
        check_is_fitted(self, "networks_")
        if self.networks_:
            return super().predict_proba(X)
        Xr, _ = self._validate_X(X, reset=False)
        if self.estimators_:
            views = {"dense": Xr.reshape(len(Xr), -1)}
            if self.backbone_ == "table":
                views["codes"], _ = self._tree_view(X)
            return models_proba(
                self.estimators_, self._estimator_views, views, self.backbone_weights_, len(self.classes_)
            )
        if self.estimator_ is self.teacher_:  # a user teacher predicts in the user's label values
            return align_columns(self.teacher_.predict_proba(X), np.asarray(self.teacher_.classes_), self.classes_)
        return self._proba(self.estimator_, Xr)

    def fit_resample(self, X: Any, y: Any) -> tuple[Any, Any]:
        """Fit, then return the trusted rows (``clean_mask_``) with their ``pseudo_labels_``.

        Unlike the other estimators the returned labels are not the given ones: unlabeled
        (or, in relabel mode, relabeled) rows come back with their inferred label. The
        container types of ``X`` and ``y`` are kept.
        """
        self.fit(X, y)
        keep = np.flatnonzero(self.clean_mask_)
        y_kept = _safe_indexing(y, keep)
        labels = self.pseudo_labels_[keep]
        if hasattr(y_kept, "iloc"):
            y_kept = y_kept.copy()
            y_kept[:] = labels
            return _safe_indexing(X, keep), y_kept
        return _safe_indexing(X, keep), labels
