"""Label-noise simulation for tests, docs and benchmarks."""

from __future__ import annotations

from typing import Any

import numpy as np
from sklearn.utils import check_random_state


def make_noisy_labels(y: Any, rate: float, kind: str = "symmetric", *, random_state: Any = None) -> np.ndarray:
    """Return a copy of ``y`` with a share ``rate`` of the labels flipped.

    Parameters
    ----------
    y : array-like of shape (n_samples,)
        Clean labels of any sortable type.
    rate : float in [0, 1]
        Share of rows whose label is changed.
    kind : {"symmetric", "pair"}, default="symmetric"
        ``"symmetric"``: a flipped row gets a label drawn uniformly from the *other*
        classes. ``"pair"``: class ``c`` (in sorted order) becomes ``c + 1`` (the last
        class becomes the first), the pair-flip noise of Han et al. (2018).
    random_state : int, RandomState instance or None

    Returns
    -------
    ndarray of shape (n_samples,), same dtype as ``y``

    Examples
    --------
    >>> import numpy as np
    >>> y = np.repeat(np.arange(4), 250)
    >>> y_noisy = make_noisy_labels(y, 0.4, random_state=0)
    >>> float(np.mean(y_noisy != y))
    0.4
    """
    y = np.asarray(y)
    if y.ndim != 1:
        raise ValueError(f"y must be 1-D, got shape {y.shape}.")
    if not 0.0 <= rate <= 1.0:
        raise ValueError(f"rate must be in [0, 1], got {rate}.")
    if kind not in ("symmetric", "pair"):
        raise ValueError(f"kind must be 'symmetric' or 'pair', got {kind!r}.")
    classes, codes = np.unique(y, return_inverse=True)
    k = len(classes)
    if k < 2:
        raise ValueError("y needs at least two classes to flip labels between.")
    rng = check_random_state(random_state)
    flip = rng.permutation(len(y))[: int(round(rate * len(y)))]
    new = codes.copy()
    if kind == "symmetric":
        new[flip] = (codes[flip] + rng.randint(1, k, size=len(flip))) % k
    else:
        new[flip] = (codes[flip] + 1) % k
    return classes[new]


def make_asymmetric_labels(y: Any, rate: float, *, random_state: Any = None) -> np.ndarray:
    """Class-conditional noise towards the majority: each other class loses ``rate`` of its rows to it.

    The most frequent class (the first in sorted order on a tie) keeps its labels; every
    other class has a share ``rate`` of its rows, drawn at random, relabeled as the most
    frequent class — the minority-to-majority mistakes of tired annotators and of weak
    rules that default to the common answer.

    Examples
    --------
    >>> import numpy as np
    >>> y = np.array([0] * 90 + [1] * 10)
    >>> y_noisy = make_asymmetric_labels(y, 0.3, random_state=0)
    >>> int((y_noisy[90:] == 0).sum()), bool((y_noisy[:90] == 0).all())
    (3, True)
    """
    y = np.asarray(y)
    if not 0.0 <= rate <= 1.0:
        raise ValueError(f"rate must be in [0, 1], got {rate}.")
    classes, codes = np.unique(y, return_inverse=True)
    majority = int(np.argmax(np.bincount(codes)))
    rng = check_random_state(random_state)
    new = codes.copy()
    for c in range(len(classes)):  # a loop over classes, not rows
        if c == majority:
            continue
        members = np.flatnonzero(codes == c)
        new[rng.permutation(members)[: int(round(rate * len(members)))]] = majority
    return classes[new]


def make_instance_labels(y: Any, pred_probs: Any, rate: float) -> np.ndarray:
    """Instance-dependent noise: the hardest rows get the model's second choice.

    ``pred_probs`` are out-of-sample class probabilities of a model trained on the clean
    labels (columns in sorted label order). The ``rate`` share of rows with the lowest
    probability of their true label is relabeled as their most probable *other* class, the
    mistake a careful annotator is most likely to make on them.

    Examples
    --------
    >>> import numpy as np
    >>> p = np.array([[0.9, 0.1, 0.0], [0.4, 0.5, 0.1], [0.2, 0.2, 0.6], [0.1, 0.8, 0.1]])
    >>> make_instance_labels(np.array([0, 0, 2, 1]), p, 0.25).tolist()
    [0, 1, 2, 1]
    """
    y = np.asarray(y)
    classes, codes = np.unique(y, return_inverse=True)
    proba = np.asarray(pred_probs, dtype=np.float64)
    if proba.shape != (len(y), len(classes)):
        raise ValueError(f"pred_probs must have shape {(len(y), len(classes))}, got {proba.shape}.")
    own = proba[np.arange(len(y)), codes]
    hardest = np.argsort(own, kind="stable")[: int(round(rate * len(y)))]
    others = proba[hardest].copy()
    others[np.arange(len(hardest)), codes[hardest]] = -np.inf
    new = codes.copy()
    new[hardest] = np.argmax(others, axis=1)
    return classes[new]
