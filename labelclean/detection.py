"""The detection rule: out-of-sample class probabilities and given labels → the row contract.

Every estimator (and :func:`labelclean.find_label_issues`) decides which given labels to trust,
what the most likely true label is and how good the given label is with the functions of this
module, from probabilities of a model that did not train on the row (cross-fitted, or a peer
network). Pure functions on NumPy arrays; no torch.

The counting follows confident learning (Northcutt, Jiang and Chuang, JAIR 2021): a row is
counted as "given label ``i``, true label ``j``" when its probability of ``j`` reaches the
average probability that rows *given* ``j`` have for ``j`` (a per-class threshold, so a
rare or hard class is not drowned by the common ones); the counts, rescaled to the given
class sizes, estimate the joint distribution of given and true labels, hence the noise
rate, the noise of each class and the balance of the true classes.

The rule, step by step (:func:`detect`):

1. Unless the probabilities are taken as calibrated, they are first temperature-scaled to the
   given labels (:func:`calibrate`).
2. The joint distribution of given and true labels is estimated by confident learning
   (:func:`estimate_joint`) and the probabilities are moved to its true class balance
   (:func:`prior_shift`).
3. Rows are flagged (``clean`` False) by the ``flag`` rule, never a row whose most probable
   class is its given label: ``"rank"`` flags as many rows as the estimated noise rate says
   are wrong over all classes, those with the lowest label posterior (step 5);
   ``"class_noise"`` flags, in each given class, as many rows as its estimated noise says are
   wrong, those with the largest margin against the given label (:func:`flag_by_class_noise`);
   ``"disagreement"`` flags every row whose most probable class is not the given label
   (:func:`flag_disagreement`).
4. A flagged row's pseudo-label becomes its most probable class only where both the
   probabilities and the label posterior (:func:`label_posterior`, which weighs in how often
   the given label is wrong for that class) give it at least ``relabel_threshold``, read at
   ``relabel_temperature``: a wrong label left in place costs nothing new, a right label
   changed is a new mistake.
5. ``quality`` is the label posterior of the given label.

:func:`find_label_issues` applies the rule to the user's own probabilities. It flags on the
probabilities as given and changes a label only on evidence read at the temperature fitted
to the given labels, so an overconfident model changes no more labels than a calibrated one.
Its default ``flag="rank"`` was chosen on CIFAR-10N's human label sets and the tables of the
development suite with flipped labels; every rule's figures, and cleanlab's, are in
``docs/benchmarks.md#detection``.
"""

from __future__ import annotations

import warnings
from dataclasses import dataclass
from typing import Any

import numpy as np

_TINY = np.finfo(np.float32).tiny


#: Rows per block of the row-wise steps, so that large sets need no (n, K) temporaries.
BLOCK_ROWS = 65_536
#: Rows the calibration temperature is fitted on, at most (evenly spaced).
CALIBRATION_ROWS = 200_000


#: A proposed label replaces or fills a given one only where its probability reaches this (see :func:`detect`).
RELABEL_THRESHOLD = 0.9


def _blocks(n: int):
    return (slice(start, min(start + BLOCK_ROWS, n)) for start in range(0, n, BLOCK_ROWS))


def per_class_thresholds(labels: np.ndarray, pred_probs: np.ndarray) -> np.ndarray:
    """``t_j``: the mean probability of class ``j`` over the rows given label ``j`` (1.0 for an absent class).

    Examples
    --------
    >>> import numpy as np
    >>> p = np.array([[0.9, 0.1], [0.7, 0.3], [0.2, 0.8]])
    >>> per_class_thresholds(np.array([0, 0, 1]), p)
    array([0.8, 0.8])
    """
    k = pred_probs.shape[1]
    counts = np.bincount(labels, minlength=k).astype(np.float64)
    sums = np.bincount(labels, weights=pred_probs[np.arange(len(labels)), labels], minlength=k)
    return np.where(counts > 0, sums / np.maximum(counts, 1), 1.0)


def confident_joint(labels: np.ndarray, pred_probs: np.ndarray, thresholds: np.ndarray | None = None) -> np.ndarray:
    """Counts ``C[i, j]`` of rows given label ``i`` whose confident true label is ``j``.

    A row's confident label is its most probable class among those whose probability reaches
    the class threshold (``thresholds``, by default :func:`per_class_thresholds` of these
    rows; a cluster run passes the thresholds of every part); rows with no such class are not
    counted. Returns an ``(K, K)`` int64 matrix, given labels along the rows.
    """
    k = pred_probs.shape[1]
    if thresholds is None:
        thresholds = per_class_thresholds(labels, pred_probs)
    thresholds = np.asarray(thresholds)[None, :] - 1e-6
    counts = np.zeros(k * k, dtype=np.int64)
    for block in _blocks(len(labels)):  # blocks of rows: no (n, K) temporaries on large sets
        p = pred_probs[block]
        above = p >= thresholds
        true = np.argmax(np.where(above, p, -1.0), axis=1)
        counted = above.any(axis=1)
        counts += np.bincount(labels[block][counted] * k + true[counted], minlength=k * k)
    return counts.reshape(k, k)


def estimate_joint(labels: np.ndarray, pred_probs: np.ndarray) -> np.ndarray:
    """``Q[i, j] ≈ P(given = i, true = j)``: the confident joint rescaled to the given class sizes.

    Each row of counts is scaled so that it sums to the share of rows given that label (a
    given class whose rows were never counted keeps all its mass on the diagonal). The
    matrix sums to 1.
    """
    k = pred_probs.shape[1]
    return joint_from_counts(confident_joint(labels, pred_probs), np.bincount(labels, minlength=k))


def joint_from_counts(counts: np.ndarray, label_counts: np.ndarray) -> np.ndarray:
    """:func:`estimate_joint` from a confident joint ``counts`` and the number of rows given each label.

    Both are sums over rows, so a run over parts of the data adds the parts' counts first.
    """
    k = len(label_counts)
    counts = counts.astype(np.float64)
    given_share = label_counts / max(int(np.sum(label_counts)), 1)
    row = counts.sum(axis=1, keepdims=True)
    joint = np.where(row > 0, counts / np.maximum(row, 1), np.eye(k)) * given_share[:, None]
    return joint / max(joint.sum(), _TINY)


def noise_matrix(joint: np.ndarray) -> np.ndarray:
    """``T[i, j] = P(given = i | true = j)`` from the joint (columns sum to 1; identity for absent classes)."""
    col = joint.sum(axis=0, keepdims=True)
    return np.where(col > 0, joint / np.maximum(col, _TINY), np.eye(joint.shape[0]))


def label_posterior(pred_probs: np.ndarray, labels: np.ndarray, noise: np.ndarray) -> np.ndarray:
    """``P(true = k | x, given)`` ∝ ``pred_probs[k] · T[given, k]`` for every row (rows sum to 1).

    The model's probabilities act as the evidence of the features, the estimated noise matrix
    as the likelihood of the given label: a label that is rarely wrong in its class outweighs a
    confident but mistaken model, and under class-conditional noise the choice narrows to the
    classes that are known to flip into the given one.
    """
    post = pred_probs * noise[labels]
    post /= np.maximum(post.sum(axis=1, keepdims=True), _TINY)
    return post


def calibrate(pred_probs: np.ndarray, labels: np.ndarray) -> tuple[np.ndarray, float]:
    """Temperature scaling (Guo et al., ICML 2017) fitted to the given labels: ``softmax(log p / t)``.

    Boosted trees and networks are overconfident out of sample, most of all on noisy labels;
    one temperature ``t``, chosen to maximise the likelihood of the given labels (on at most
    ``CALIBRATION_ROWS`` (200,000) evenly spaced rows), makes their probabilities honest enough to
    weigh against the label. Returns the scaled probabilities (float32) and ``t``.

    Examples
    --------
    >>> import numpy as np
    >>> p = np.array([[0.99, 0.01]] * 8 + [[0.01, 0.99]] * 2)
    >>> scaled, t = calibrate(p, np.array([0] * 6 + [1] * 2 + [1] * 2))
    >>> bool(t > 1), round(float(scaled[0, 0]), 2)
    (True, 0.8)
    """
    beta = _fitted_beta(pred_probs, labels)
    return _temper(pred_probs, beta), 1.0 / beta


def _fitted_beta(pred_probs: np.ndarray, labels: np.ndarray) -> float:
    """``1 / t`` of :func:`calibrate`, fitted on at most ``CALIBRATION_ROWS`` evenly spaced rows."""
    step = max(1, len(labels) // CALIBRATION_ROWS)
    return _inverse_temperature(np.log(np.clip(pred_probs[::step], 1e-7, 1.0), dtype=np.float64), labels[::step])


def _temper(pred_probs: np.ndarray, beta: float) -> np.ndarray:
    """``softmax(beta * log p)`` as a new float32 array, block by block."""
    out = np.empty(pred_probs.shape, dtype=np.float32)
    for block in _blocks(len(pred_probs)):  # p ** beta, normalised, in place in the output
        z = np.clip(pred_probs[block], 1e-7, 1.0, out=out[block])
        np.log(z, out=z)
        z *= beta  # no shift by the row maximum is needed: it is at least beta * log(1 / K)
        np.exp(z, out=z)
        z /= z.sum(axis=1, keepdims=True)
    return out


def _inverse_temperature(logp: np.ndarray, labels: np.ndarray, *, low: float = 0.02, high: float = 20.0) -> float:
    """``beta = 1 / t`` maximising the mean log-likelihood of ``labels`` under ``softmax(beta * logp)``.

    The negative log-likelihood is convex in ``beta`` (a log-sum-exp of functions linear in
    it), with gradient ``E[logp] - logp[label]`` and curvature ``Var[logp]`` under the scaled
    softmax, so a few Newton steps, kept inside ``[low, high]`` by bisection, find it.
    """
    own = logp[np.arange(len(labels)), labels]
    beta, lo, hi = 1.0, low, high
    for _ in range(30):
        z = beta * logp
        z -= z.max(axis=1, keepdims=True)
        w = np.exp(z)
        w /= w.sum(axis=1, keepdims=True)
        mean = np.einsum("ik,ik->i", w, logp)
        grad = float(np.mean(mean - own))
        curv = float(np.mean(np.einsum("ik,ik->i", w, logp * logp) - mean * mean))
        if grad > 0:
            hi = beta
        else:
            lo = beta
        step = beta - grad / curv if curv > 1e-12 else np.nan
        new = step if lo < step < hi else 0.5 * (lo + hi)
        if abs(new - beta) <= 1e-6 * beta:
            return float(np.clip(new, low, high))
        beta = new
    return float(np.clip(beta, low, high))


def flag_disagreement(labels: np.ndarray, pred_probs: np.ndarray) -> np.ndarray:
    """Rows whose most probable class is not the given label."""
    return np.argmax(pred_probs, axis=1) != labels


def _margins(labels: np.ndarray, pred_probs: np.ndarray) -> np.ndarray:
    """``max_{j≠given} p_j − p_given`` per row, block by block."""
    margin = np.empty(len(labels), dtype=np.float32)
    for block in _blocks(len(labels)):
        p = np.array(pred_probs[block], dtype=np.float32)
        rows = np.arange(len(p))
        own = p[rows, labels[block]].copy()
        p[rows, labels[block]] = -np.inf
        margin[block] = p.max(axis=1) - own
    return margin


def flag_by_class_noise(labels: np.ndarray, pred_probs: np.ndarray, class_noise: np.ndarray) -> np.ndarray:
    """In each given class ``i``, the ``class_noise[i]`` share of its rows with the largest margin against it.

    The margin is ``max_{j≠i} p_j − p_i`` (confident learning's pruning by class, Northcutt
    et al., 2021); only rows whose most probable class is not ``i`` are flagged. Because the
    share is set per class from an estimate of that class's noise, a rare class keeps the
    rows that look like it and a class that received many wrong labels loses more.
    """
    n, k = pred_probs.shape
    flagged = np.zeros(n, dtype=bool)
    margin = _margins(labels, pred_probs)
    for i in range(k):  # a loop over classes, not rows
        rows = np.flatnonzero(labels == i)
        count = int(round(float(class_noise[i]) * len(rows)))
        if count and len(rows):
            flagged[rows[_largest(margin[rows], count)]] = True
    return flagged & (margin > 0)


def _largest(values: np.ndarray, count: int) -> np.ndarray:
    """Positions of the ``count`` largest ``values``, ties taken in order: a stable descending sort's first
    ``count``, found by partition in linear time."""
    if count >= len(values):
        return np.arange(len(values))
    cut = -np.partition(-values, count - 1)[count - 1]  # the count-th largest value
    above = np.flatnonzero(values > cut)
    tied = np.flatnonzero(values == cut)[: count - len(above)]
    return np.concatenate([above, tied])


@dataclass(frozen=True)
class Detection:
    """The rule's verdict on every row, in encoded labels ``0 .. K-1``.

    Attributes
    ----------
    clean : ndarray of bool
        The given label is trusted.
    pseudo : ndarray of int64
        The most likely true label: the given label where trusted, and where the evidence for
        another label is not strong enough to change it.
    quality : ndarray of float32
        Probability that the given label is right, in [0, 1].
    joint : ndarray of shape (K, K)
        Estimated ``P(given = i, true = j)``.
    """

    clean: np.ndarray
    pseudo: np.ndarray
    quality: np.ndarray
    joint: np.ndarray

    @property
    def noise_rate(self) -> float:
        """Estimated share of wrong given labels, ``1 − trace(joint)``."""
        return float(np.clip(1.0 - np.trace(self.joint), 0.0, 1.0))

    @property
    def class_noise(self) -> np.ndarray:
        """Per given class, the estimated share of its rows whose label is wrong."""
        return class_noise(self.joint)

    @property
    def true_prior(self) -> np.ndarray:
        """Estimated share of each class among the true labels."""
        return self.joint.sum(axis=0)


def class_noise(joint: np.ndarray) -> np.ndarray:
    """Per given class, the estimated share of its rows whose label is wrong: ``1 − Q[i, i] / Σ_j Q[i, j]``."""
    given = joint.sum(axis=1)
    return np.where(given > 0, 1.0 - np.diag(joint) / np.maximum(given, _TINY), 0.0)


def prior_shift(pred_probs: np.ndarray, joint: np.ndarray) -> np.ndarray:
    """Probabilities moved from the given class balance to the estimated true one (rows sum to 1).

    A model trained on noisy labels learns their class balance: under minority-to-majority
    noise it under-predicts the minority. Reweighting each class by ``true share / given
    share`` (the label-shift correction of Saerens et al., Neural Computation 2002, with the
    shares of the estimated joint) undoes that, so a rare class is neither erased nor
    inflated by the relabeling.
    """
    return _shift(np.array(pred_probs, dtype=np.float32), joint)


def _shift(proba: np.ndarray, joint: np.ndarray) -> np.ndarray:
    """:func:`prior_shift` in place, block by block."""
    given, true = joint.sum(axis=1), joint.sum(axis=0)
    weight = np.where(given > 0, true / np.maximum(given, _TINY), 1.0).astype(proba.dtype)
    for block in _blocks(len(proba)):
        proba[block] *= weight
        proba[block] /= np.maximum(proba[block].sum(axis=1, keepdims=True), _TINY)
    return proba


def detect(
    labels: np.ndarray,
    pred_probs: np.ndarray,
    *,
    flag: str = "rank",
    relabel_threshold: float = RELABEL_THRESHOLD,
    calibrated: bool = True,
    relabel_temperature: float = 1.0,
) -> Detection:
    """Decide the row contract from out-of-sample probabilities and the given labels.

    The steps (calibration, the joint, flagging, relabeling, quality) are those of the module
    docstring (:mod:`labelclean.detection`): each row flagged or not, its pseudo-label and
    the posterior probability of its given label.

    Parameters
    ----------
    labels : ndarray of int, shape (n,)
        Given labels, encoded ``0 .. K-1``.
    pred_probs : ndarray of shape (n, K)
        Each row's class probabilities from a model that did not train on it.
    flag : {"rank", "class_noise", "disagreement"}, default="rank"
        Which rows to flag (step 3).
    relabel_threshold : float in [0, 1], default=0.9
        Evidence a flagged row needs before its label is changed; ``0`` changes every flagged
        row to its most probable class.
    calibrated : bool, default=True
        Take the probabilities as they are. ``False`` temperature-scales them to the given labels
        first (step 1), which the cross-fitted estimators do to their own out-of-fold
        probabilities; on someone else's probabilities it flags too many rows when the labels
        are noisy (see ``docs/benchmarks.md#detection``).
    relabel_temperature : float > 0, default=1.0
        Temperature ``t`` of the probabilities (``softmax(log p / t)``) that step 4 reads: above
        1, an overconfident model needs more evidence before a label is changed.
        :func:`find_label_issues` passes the temperature fitted to the given labels.

    Returns
    -------
    Detection

    Examples
    --------
    >>> import numpy as np
    >>> p = np.array([[0.95, 0.05]] * 8 + [[0.05, 0.95]] * 8 + [[0.999, 0.001]])
    >>> y = np.array([0] * 8 + [1] * 8 + [1])   # the last row is given 1, looks like 0
    >>> d = detect(y, p, relabel_threshold=0.5)
    >>> d.clean.tolist()[-3:], int(d.pseudo[-1])
    ([True, True, False], 0)
    """
    labels = np.asarray(labels, dtype=np.int64)
    proba, joint = _balanced(labels, pred_probs, calibrated)  # steps 1 and 2
    best = np.argmax(proba, axis=1)
    quality, strong = _posterior_at(labels, proba, best, noise_matrix(joint), relabel_threshold)  # step 5
    flagged = _flag(flag, labels, proba, best, joint, quality)  # step 3
    pseudo = _pseudo_labels(labels, pred_probs, best, flagged, strong, joint, relabel_temperature, relabel_threshold)
    return Detection(~flagged, pseudo, np.clip(quality, 0.0, 1.0), joint)


def _balanced(labels: np.ndarray, pred_probs: np.ndarray, calibrated: bool) -> tuple[np.ndarray, np.ndarray]:
    """Steps 1 and 2 of :func:`detect`: the estimated joint, and the probabilities (a new float32 array,
    temperature-scaled unless ``calibrated``) moved to its true class balance."""
    if calibrated:
        proba = np.array(pred_probs, dtype=np.float32)  # a copy: shifted in place below
    else:
        proba, _ = calibrate(np.asarray(pred_probs, dtype=np.float32), labels)
    joint = estimate_joint(labels, proba)
    return _shift(proba, joint), joint


def _flag(
    flag: str, labels: np.ndarray, proba: np.ndarray, best: np.ndarray, joint: np.ndarray, quality: np.ndarray
) -> np.ndarray:
    """Step 3 of :func:`detect`: the rows the ``flag`` rule flags (``"rank"``: :func:`_flag_rank` on ``quality``)."""
    if flag == "disagreement":
        return best != labels
    if flag == "class_noise":
        return flag_by_class_noise(labels, proba, class_noise(joint))
    if flag == "rank":
        return _flag_rank(labels, best, quality, joint)
    raise ValueError(f"flag={flag!r}; use 'class_noise', 'rank' or 'disagreement'.")


def _flag_rank(labels: np.ndarray, best: np.ndarray, quality: np.ndarray, joint: np.ndarray) -> np.ndarray:
    """Step 3 of :func:`detect` for ``"rank"``: the estimated number of wrong labels, lowest label posterior first."""
    flagged = np.zeros(len(labels), dtype=bool)
    count = int(round(float(np.clip(1.0 - np.trace(joint), 0.0, 1.0)) * len(labels)))
    flagged[_largest(-quality, count)] = count > 0
    return flagged & (best != labels)


def _pseudo_labels(
    labels: np.ndarray,
    pred_probs: np.ndarray,
    best: np.ndarray,
    flagged: np.ndarray,
    strong: np.ndarray,
    joint: np.ndarray,
    temperature: float,
    threshold: float,
) -> np.ndarray:
    """Step 4 of :func:`detect`: a flagged row's best class where the evidence for it is ``strong``, else its label.

    At a ``temperature`` other than 1 the evidence is read anew on the tempered probabilities (:func:`_relabel`).
    """
    if temperature == 1.0:
        return np.where(flagged & strong & (best != labels), best, labels)
    return _relabel(labels, pred_probs, flagged & (best != labels), joint, temperature, threshold)


def _relabel(
    labels: np.ndarray,
    pred_probs: np.ndarray,
    rows: np.ndarray,
    joint: np.ndarray,
    temperature: float,
    threshold: float,
) -> np.ndarray:
    """Step 4 of :func:`detect` at ``temperature``, on the candidate ``rows`` only: the pseudo-labels."""
    idx = np.flatnonzero(rows)
    p = _shift(_temper(np.asarray(pred_probs[idx], dtype=np.float32), 1.0 / temperature), joint)
    best = np.argmax(p, axis=1)
    _, strong = _posterior_at(labels[idx], p, best, noise_matrix(joint), threshold)
    pseudo = labels.copy()
    change = strong & (best != labels[idx])
    pseudo[idx[change]] = best[change]
    return pseudo


def _posterior_at(
    labels: np.ndarray, proba: np.ndarray, best: np.ndarray, noise: np.ndarray, threshold: float
) -> tuple[np.ndarray, np.ndarray]:
    """The label posterior (:func:`label_posterior`) at the given label, and whether the best class
    reaches ``threshold`` in both the probabilities and the posterior; block by block, two columns only."""
    noise = noise.astype(np.float32)
    quality = np.empty(len(labels), dtype=np.float32)
    strong = np.empty(len(labels), dtype=bool)
    for block in _blocks(len(labels)):
        p, y, b = proba[block], labels[block], best[block]
        rows = np.arange(len(p))
        norm = np.maximum(np.einsum("ik,ik->i", p, noise[y]), _TINY)
        quality[block] = p[rows, y] * noise[y, y] / norm
        post_best = p[rows, b] * noise[y, b] / norm
        strong[block] = (p[rows, b] >= threshold) & (post_best >= threshold)
    return quality, strong


def find_label_issues(
    labels: Any,
    pred_probs: Any,
    *,
    classes: Any = None,
    noise_rate: float | str = "auto",
    flag: str = "rank",
    relabel_threshold: float = RELABEL_THRESHOLD,
    calibrated: bool = True,
) -> Any:
    """Which given labels do *your* model's out-of-sample probabilities contradict?

    The rule every labelclean estimator uses (:func:`detect`), applied to probabilities from
    any model: a fine-tuned network, gradient-boosted trees, a model served elsewhere. The
    probabilities must be out of sample (cross-validated, or from a model that never trained
    on the rows), or the model's memory of a wrong label hides it.

    Parameters
    ----------
    labels : array-like of shape (n,)
        The given labels, of any type (strings included).
    pred_probs : array-like of shape (n, K), a sequence of per-row lists, or a DataFrame
        Class probabilities per row. A DataFrame's columns name the classes; otherwise the
        columns follow ``classes``.
    classes : array-like of shape (K,), optional
        The class of each column of ``pred_probs``; default: the sorted distinct labels, or
        ``0 .. K-1`` when the labels are integers in that range.
    noise_rate : "auto" or float in [0, 1), default="auto"
        ``"auto"``: the ``flag`` rule decides which rows to flag. A number: flag exactly
        that share of the rows, those with the lowest ``label_quality`` (ties broken by the
        margin of the best class over the given one), e.g. when the share of wrong labels is
        known from an audit.
    flag : {"rank", "class_noise", "disagreement"}, default="rank"
        ``"rank"``: as many rows as the estimated noise rate says are wrong, over all classes,
        lowest ``label_quality`` first. ``"class_noise"``: in each given class, as many rows as
        its estimated noise says are wrong, those with the largest margin against the given
        label. Both flag only rows whose most probable class is another one.
        ``"disagreement"``: every row whose most probable class is not the given label, which
        flags many right labels when the model is less accurate than the labels. Every rule's
        figures, and how the default was chosen, are in ``docs/benchmarks.md#detection``.
    relabel_threshold : float in [0, 1], default=0.9
        Evidence a flagged row needs before ``pseudo_label`` differs from ``given_label``: the
        probability of the new label, and its label posterior, both read on the probabilities
        temperature-scaled to the given labels.
    calibrated : bool, default=True
        Take the probabilities as they are. ``False`` temperature-scales them to the given labels
        first (:func:`calibrate`); fitted to noisy labels, the temperature softens the
        probabilities and more rows are flagged (see ``docs/benchmarks.md#detection``).

    Returns
    -------
    pandas.DataFrame
        One row per input row, columns ``given_label``, ``is_clean``, ``label_quality`` (the
        probability that the given label is right) and ``pseudo_label`` (the most likely true
        label). ``df.attrs`` holds ``noise_rate`` (estimated share of wrong labels),
        ``class_noise`` (per given class) and ``noise_matrix`` (``P(given | true)``, a
        DataFrame with the given classes along the rows).

    Examples
    --------
    >>> import numpy as np
    >>> labels = np.array(["cat"] * 6 + ["dog"] * 6)
    >>> p = np.array([[0.9, 0.1]] * 5 + [[0.01, 0.99]] + [[0.1, 0.9]] * 6)   # row 5 is given "cat"
    >>> issues = find_label_issues(labels, p, relabel_threshold=0.5)
    >>> issues.loc[5, "given_label"], bool(issues.loc[5, "is_clean"]), issues.loc[5, "pseudo_label"]
    ('cat', False, 'dog')
    >>> int((~issues["is_clean"]).sum())
    1
    """
    if not (noise_rate == "auto" or (isinstance(noise_rate, (int, float)) and 0.0 <= noise_rate < 1.0)):
        raise ValueError(f"noise_rate must be 'auto' or a number in [0, 1), got {noise_rate!r}.")
    labels, encoded, proba, classes = _read_inputs(labels, pred_probs, classes)
    if flag not in ("class_noise", "rank", "disagreement"):
        raise ValueError(f"flag must be 'class_noise', 'rank' or 'disagreement', got {flag!r}.")
    verdict = _verdict(encoded, proba, noise_rate, flag, relabel_threshold, calibrated)
    return _as_frame(labels, classes, verdict)


def _verdict(
    encoded: np.ndarray,
    proba: np.ndarray,
    noise_rate: float | str,
    flag: str,
    relabel_threshold: float,
    calibrated: bool,
) -> Detection:
    """:func:`detect` as :func:`find_label_issues` runs it; with a number for ``noise_rate``, that share flagged."""
    # flags on the probabilities as given; a label changes only on calibrated evidence
    temperature = 1.0 / _fitted_beta(proba, encoded) if calibrated else 1.0
    verdict = detect(
        encoded,
        proba,
        relabel_threshold=relabel_threshold,
        calibrated=calibrated,
        flag=flag,
        relabel_temperature=temperature,
    )
    if noise_rate != "auto":
        verdict = _flag_share(verdict, encoded, proba, float(noise_rate))
    return verdict


def _as_frame(labels: np.ndarray, classes: np.ndarray, verdict: Detection) -> Any:
    """The result of :func:`find_label_issues`: one row per label, the noise estimates in ``attrs``."""
    import pandas as pd

    out = pd.DataFrame(
        {
            "given_label": labels,
            "is_clean": verdict.clean,
            "label_quality": verdict.quality,
            "pseudo_label": classes[verdict.pseudo],
        }
    )
    out.attrs["noise_rate"] = verdict.noise_rate
    out.attrs["class_noise"] = dict(zip(classes.tolist(), verdict.class_noise.tolist()))
    out.attrs["noise_matrix"] = pd.DataFrame(noise_matrix(verdict.joint), index=classes, columns=classes)
    return out


def _read_inputs(labels: Any, pred_probs: Any, classes: Any) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """The inputs of :func:`find_label_issues`, checked: labels, their codes, probabilities (rows sum to 1), classes."""
    import pandas as pd

    labels = np.asarray(labels)
    if isinstance(pred_probs, pd.DataFrame):
        classes = np.asarray(pred_probs.columns) if classes is None else np.asarray(classes)
        proba = pred_probs.to_numpy(dtype=np.float32)
    else:
        proba = np.asarray(list(pred_probs) if isinstance(pred_probs, pd.Series) else pred_probs, dtype=np.float32)
    if proba.ndim != 2 or len(proba) != len(labels):
        raise ValueError(
            f"pred_probs must hold one row of class probabilities per label: got shape {proba.shape} for "
            f"{len(labels)} labels."
        )
    if classes is None:
        present = np.unique(labels)
        integer = labels.dtype.kind in "iu" and present.min() >= 0 and present.max() < proba.shape[1]
        classes = np.arange(proba.shape[1]) if integer else present
    classes = np.asarray(classes)
    if len(classes) != proba.shape[1]:
        raise ValueError(
            f"pred_probs has {proba.shape[1]} columns but there are {len(classes)} classes {classes[:10].tolist()}; "
            "pass classes= with the class of each column."
        )
    order = np.argsort(classes, kind="stable")
    position = np.searchsorted(classes[order], labels)
    unknown = (position >= len(classes)) | (classes[order][np.minimum(position, len(classes) - 1)] != labels)
    if unknown.any():
        raise ValueError(
            f"label {labels[np.argmax(unknown)]!r} (row {int(np.argmax(unknown))}) is not one of the classes "
            f"{classes[:10].tolist()}; pass classes= with the class of each column of pred_probs."
        )
    if not np.isfinite(proba).all() or (proba < 0).any():
        bad = int(np.argmax(~np.isfinite(proba).all(axis=1) | (proba < 0).any(axis=1)))
        raise ValueError(
            f"pred_probs holds negative, NaN or infinite values (first at row {bad}); pass probabilities in [0, 1] "
            "(apply a softmax to logits first)."
        )
    sums = proba.sum(axis=1)
    if np.abs(sums - 1.0).max() > 1e-3:
        if (sums <= 0).any():
            raise ValueError(
                f"row {int(np.argmax(sums <= 0))} of pred_probs is all zeros; every row needs a probability."
            )
        warnings.warn(
            f"pred_probs rows sum to {sums.min():.4g}..{sums.max():.4g}, not 1; they were divided by their sums. "
            "Pass probabilities (a softmax of the logits), not scores.",
            UserWarning,
            stacklevel=2,
        )
        proba = proba / sums[:, None]
    return labels, order[position], proba, classes


def _flag_share(verdict: Detection, labels: np.ndarray, proba: np.ndarray, share: float) -> Detection:
    """``verdict`` with exactly ``round(share * n)`` rows flagged: the lowest quality, then the widest margin."""
    n = len(labels)
    margin = _margins(labels, proba)
    order = np.lexsort((-margin, verdict.quality))  # last key first: quality ascending, then margin descending
    clean = np.ones(n, dtype=bool)
    clean[order[: int(round(share * n))]] = False
    pseudo = np.where(clean, labels, verdict.pseudo)
    return Detection(clean, pseudo, verdict.quality, verdict.joint)
