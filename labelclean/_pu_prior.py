"""The class prior of PU learning: Best Bin Estimation, Elkan–Noto's ``c``, their bootstrap intervals.

Pure functions on held-out scores (NumPy only); :class:`~labelclean.pu.PUClassifier` trains the
models that score the rows, and :mod:`labelclean.pu` re-exports the public names.
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np

#: ``class_prior_interval_``: bootstrap resamples of the held-out scores, and the interval's coverage.
PRIOR_BOOTSTRAPS = 200
PRIOR_LEVEL = 0.95


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


def unlabeled_share_from_prior(prior: float, n_pos: int, n_unl: int) -> float:
    """Positive share of the unlabeled rows implied by ``π`` over all rows (raises if ``π`` is too small)."""
    alpha = (prior * (n_pos + n_unl) - n_pos) / n_unl
    if alpha < 0.0:
        raise ValueError(
            f"prior={prior} implies at most {prior * (n_pos + n_unl):.0f} positives, but {n_pos} rows are labeled "
            "positive; prior is p(y=1) over all rows: pass a larger value or prior='auto'."
        )
    return float(min(alpha, 1.0))


def elkan_noto_prior(n_pos: int, n_rows: int, c: float) -> float:
    """Elkan and Noto's ``π = p(s=1) / c``, clipped to ``[p(s=1), 1]``."""
    return float(np.clip(n_pos / n_rows / c, n_pos / n_rows, 1.0))


def check_prior_rows(n_pos: int, n_unl: int) -> None:
    """Raise a clear error when too few rows are labeled positive or unlabeled to estimate the prior."""
    if n_pos < 4 or n_unl < 4:
        raise ValueError(
            f"prior='auto' needs at least 4 labeled positives and 4 unlabeled rows to estimate the class "
            f"prior (got {n_pos} and {n_unl}); pass prior=<p(y=1)> instead."
        )


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


def held_out_rank_labels(s: np.ndarray, held_out: list[tuple[np.ndarray, np.ndarray]], alpha: float) -> np.ndarray:
    """:func:`prior_rank_labels` within each fold: ``held_out`` holds ``(unlabeled rows, their held-out scores)``.

    The folds' scores come from different models, whose scales differ, so the top ``α`` share
    is taken within each fold rather than over all unlabeled rows.
    """
    labels = (s == 1).astype(np.int64)
    for rows, scores in held_out:
        labels[rows[np.argsort(-scores, kind="stable")[: int(round(alpha * len(rows)))]]] = 1
    return labels


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


def prior_interval(
    estimate: float,
    prior: Any,
    scores: list[tuple[np.ndarray, np.ndarray]],
    held_c: np.ndarray | None,
    n_pos: int,
    n_unl: int,
    *,
    seed: int,
) -> tuple[float, float]:
    """``class_prior_interval_``: the bootstrap interval behind ``estimate``, widened to hold it.

    ``(prior, prior)`` for a given prior; with Elkan–Noto's held-back scores ``held_c``
    :func:`bootstrap_c_interval`, else :func:`bootstrap_prior_interval` on ``scores``.
    """
    if prior != "auto":
        return (float(prior), float(prior))
    if held_c is not None:
        low, high = bootstrap_c_interval(np.asarray(held_c, dtype=np.float64), n_pos / (n_pos + n_unl), seed=seed)
    else:
        low, high = bootstrap_prior_interval(scores, n_pos, n_unl, seed=seed)
    return (min(low, estimate), max(high, estimate))
