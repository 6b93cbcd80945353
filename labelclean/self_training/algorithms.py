"""The algorithms of self-training, as short functions on arrays and tensors.

Pseudo-label selection and class balancing (Noisy Student, Xie et al., CVPR 2020), the
students' targets, FixMatch-style consistency training (Sohn et al., NeurIPS 2020) with
distribution alignment (ReMixMatch, Berthelot et al., ICLR 2020) and a mean teacher
(Tarvainen and Valpola, NeurIPS 2017). The strategies of :class:`~labelclean.SelfTrainer`
(:class:`~labelclean.Consistency`, :class:`~labelclean.NoisyStudent`,
:class:`~labelclean.Relabel`) call them; they are public so that they can be tested, reused and
read next to the papers.
"""

from __future__ import annotations

import functools
import math

import numpy as np
import torch
import torch.nn.functional as F

from .._engine import Feed, MovingAverage, Progress, StepOut, run_epoch


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
