"""Detection metrics for a clean mask against the truth."""

from __future__ import annotations

from typing import Any

import numpy as np


def detection_scores(clean_mask: Any, y_given: Any, y_true: Any) -> dict[str, float]:
    """Precision, recall and F1 of the *flagged* rows (``~clean_mask``) at finding wrong labels.

    Parameters
    ----------
    clean_mask : array-like of bool, shape (n_samples,)
        ``True`` where the label is trusted.
    y_given, y_true : array-like of shape (n_samples,)
        Given (possibly noisy) and true labels.

    Returns
    -------
    dict with ``precision``, ``recall``, ``f1``, ``n_flagged`` and ``n_noisy``.

    Examples
    --------
    >>> detection_scores([True, False, False, True], [0, 1, 1, 0], [0, 0, 1, 0])
    {'precision': 0.5, 'recall': 1.0, 'f1': 0.6666666666666666, 'n_flagged': 2, 'n_noisy': 1}
    """
    clean_mask = np.asarray(clean_mask, dtype=bool)
    y_given, y_true = np.asarray(y_given), np.asarray(y_true)
    if not clean_mask.shape == y_given.shape == y_true.shape:
        raise ValueError(
            f"clean_mask, y_given and y_true must have the same length, got "
            f"{clean_mask.shape}, {y_given.shape} and {y_true.shape}."
        )
    flagged = ~clean_mask
    noisy = y_given != y_true
    tp = int(np.sum(flagged & noisy))
    precision = tp / flagged.sum() if flagged.any() else 1.0
    recall = tp / noisy.sum() if noisy.any() else 1.0
    f1 = 2 * precision * recall / (precision + recall) if precision + recall > 0 else 0.0
    return {
        "precision": float(precision),
        "recall": float(recall),
        "f1": float(f1),
        "n_flagged": int(flagged.sum()),
        "n_noisy": int(noisy.sum()),
    }
