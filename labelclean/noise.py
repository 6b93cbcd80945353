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
