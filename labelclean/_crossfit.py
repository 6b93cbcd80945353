"""Scikit-learn classifiers as backbones: stratified folds and cross-fitted out-of-fold probabilities.

A row's out-of-fold probabilities come from models that never saw the row, so they cannot have
memorised its label: the evidence the detection rule (:mod:`labelclean.detection`) needs. Fitting
a fold's models only on the rows the previous round trusted lets the models of different folds
select each other's training rows, the small-loss exchange of Co-teaching done across folds.
"""

from __future__ import annotations

import itertools
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
from sklearn.base import clone

from . import _progress

#: ``estimator="auto"``: 2-D rows of at most this many columns are a table (cross-fitted trees and a
#: linear model); wider rows (embeddings, pixels) and images get the networks.
AUTO_TABLE_MAX_COLUMNS = 512
#: ... and at most this many rows: the cross-fitted models are refitted ``n_rounds · n_folds + 1`` times,
#: the networks make a few passes over the rows, so larger sets go to the networks.
AUTO_TABLE_MAX_ROWS = 200_000


@dataclass
class Backbone:
    """One scikit-learn classifier and the view of the features it takes (``"codes"`` or ``"dense"``)."""

    model: Any
    view: str


def stratified_folds(y: np.ndarray, n_folds: int, seed: int) -> np.ndarray:
    """Fold id ``0 .. n_folds-1`` for every row, each class spread evenly over the folds.

    Within each class the rows are shuffled and dealt out in turn, so a class with fewer rows
    than folds still has each of its rows in a different fold (and is absent from the others).

    Examples
    --------
    >>> import numpy as np
    >>> folds = stratified_folds(np.array([0] * 10 + [1] * 5), 5, seed=0)
    >>> np.bincount(folds[:10]).tolist(), np.bincount(folds[10:]).tolist()
    ([2, 2, 2, 2, 2], [1, 1, 1, 1, 1])
    """
    rng = np.random.default_rng(seed)
    order = rng.permutation(len(y))
    order = order[np.argsort(y[order], kind="stable")]  # grouped by class, shuffled within
    counts = np.bincount(y[order])
    starts = np.cumsum(counts) - counts
    rank = np.arange(len(y)) - starts[y[order]]
    offset = rng.integers(n_folds, size=len(counts))  # each class starts dealing at a random fold
    folds = np.empty(len(y), dtype=np.int64)
    folds[order] = (rank + offset[y[order]]) % n_folds
    return folds


def fit_model(model: Any, X: np.ndarray, y: np.ndarray, rows: np.ndarray, sample_weight: np.ndarray | None = None):
    """A fitted clone of ``model`` on ``rows`` (with ``sample_weight`` where given).

    A numeric column missing on every one of ``rows`` (few labeled rows of a table with gaps)
    carries nothing to learn from, and scikit-learn's gradient-boosted trees refuse it: it is
    given as zeros instead, a constant no tree splits on.
    """
    fitted = clone(model)
    Xr = X[rows]
    if Xr.dtype.kind == "f" and len(Xr):
        empty = np.isnan(Xr).all(axis=0)
        if empty.any():
            Xr = Xr.copy() if np.shares_memory(Xr, X) else Xr  # index arrays copy already; slices do not
            Xr[:, empty] = 0.0
    if sample_weight is None:
        return fitted.fit(Xr, y[rows])
    return fitted.fit(Xr, y[rows], sample_weight=sample_weight[rows])


def aligned_proba(model: Any, X: np.ndarray, n_classes: int) -> np.ndarray:
    """``model.predict_proba(X)`` as float32 ``(n, n_classes)`` columns ``0 .. n_classes-1`` (absent classes 0)."""
    proba = np.asarray(model.predict_proba(X), dtype=np.float32)
    classes = np.asarray(model.classes_, dtype=np.int64)
    if len(classes) == n_classes and (classes == np.arange(n_classes)).all():
        return proba
    out = np.zeros((len(proba), n_classes), dtype=np.float32)
    out[:, classes] = proba
    return out


def cross_fit_proba(
    backbones: Sequence[Backbone],
    views: dict[str, np.ndarray],
    y: np.ndarray,
    folds: np.ndarray,
    n_classes: int,
    *,
    trusted: np.ndarray | None = None,
) -> list[np.ndarray]:
    """Out-of-fold probabilities of each backbone: each fold predicted by models fitted on the other folds.

    Parameters
    ----------
    backbones : sequence of Backbone
    views : dict
        Feature matrices by view name (``"codes"``, ``"dense"``), rows aligned with ``y``.
    y : ndarray of int
        Given labels, encoded.
    folds : ndarray of int
        Fold id per row (:func:`stratified_folds`).
    n_classes : int
    trusted : ndarray of bool, optional
        Fit on these rows of the other folds only (the previous round's trusted rows).

    Returns
    -------
    list of ndarray of float32, shape (n, n_classes), one per backbone

    Each fold done is reported as one step of the current progress phase (:mod:`labelclean._progress`),
    with the held-out log-loss of the given labels as its loss.
    """
    probas = [np.zeros((len(y), n_classes), dtype=np.float32) for _ in backbones]
    for fold in np.unique(folds):  # a loop over folds, not rows
        held = folds == fold
        fit_rows = ~held if trusted is None else ~held & trusted
        fit_rows = np.flatnonzero(fit_rows)
        if len(np.unique(y[fit_rows])) < 2:  # too few trusted rows: fall back to all rows of the other folds
            fit_rows = np.flatnonzero(~held)
        held_rows = np.flatnonzero(held)
        if len(np.unique(y[fit_rows])) < 2:  # a tiny set: nothing to learn from, the class shares are the guess
            shares = np.bincount(y, minlength=n_classes) / len(y)
            for proba in probas:
                proba[held_rows] = shares
            _progress.advance(1)
            continue
        for b, proba in zip(backbones, probas):
            model = fit_model(b.model, views[b.view], y, fit_rows)
            proba[held_rows] = aligned_proba(model, views[b.view][held_rows], n_classes)
        if _progress.listening():
            held_loss = float(np.mean([log_loss(p[held_rows], y[held_rows]) for p in probas]))
            _progress.advance(1, rows=len(fit_rows), loss=held_loss)
    return probas


def log_loss(proba: np.ndarray, y: np.ndarray) -> float:
    """Mean negative log-likelihood of the labels ``y`` under ``proba`` (clipped away from 0)."""
    return float(-np.mean(np.log(np.clip(proba[np.arange(len(y)), y], 1e-7, 1.0))))


def choose_weights(probas: Sequence[np.ndarray], y: np.ndarray) -> np.ndarray:
    """Weights of the backbones: the one, or the equal mix of several, whose calibrated probabilities fit ``y`` best.

    Every candidate is temperature-scaled first (:func:`labelclean.detection.calibrate`) so that
    an overconfident model is not penalised for its confidence alone; the candidate with the
    smallest out-of-fold log-loss on the given labels wins. Under label noise that is still the
    model that predicts the true labels best, since the wrong labels cost every candidate alike.
    """
    from .detection import calibrate

    m = len(probas)
    subsets = itertools.chain.from_iterable(itertools.combinations(range(m), r) for r in range(1, m + 1))
    candidates = [np.isin(np.arange(m), s).astype(float) / len(s) for s in subsets]
    scores = [log_loss(calibrate(mix(probas, w), y)[0], y) for w in candidates]
    return candidates[int(np.argmin(scores))]


def mix(probas: Sequence[np.ndarray], weights: np.ndarray) -> np.ndarray:
    """The weighted average of the backbones' probabilities."""
    return sum(w * p for w, p in zip(weights, probas) if w > 0)


def backbone_kind(estimator: Any, *, module: Any, input_shape: tuple[int, ...], n_features: int, n_rows: int) -> str:
    """``estimator="auto"`` resolved per data kind: ``"table"``, ``"network"`` or ``"estimator"`` (the user's).

    A classifier given as ``estimator`` is ``"estimator"``; ``"network"`` (or ``None``), a
    ``module`` or image rows are ``"network"``; 2-D rows of at most
    ``AUTO_TABLE_MAX_COLUMNS`` columns and ``AUTO_TABLE_MAX_ROWS`` rows are
    a ``"table"`` (gradient-boosted trees and a linear model, :func:`~labelclean.coteaching.default_table_backbones`),
    wider or larger sets go to the networks: the rule of ``CoTeachingFilter(estimator="auto")``.

    Examples
    --------
    >>> backbone_kind("auto", module=None, input_shape=(8,), n_features=8, n_rows=500)
    'table'
    >>> backbone_kind("auto", module=None, input_shape=(1, 28, 28), n_features=784, n_rows=500)
    'network'
    """

    if estimator is not None and not isinstance(estimator, str):
        return "estimator"
    if estimator in (None, "network") or module is not None or len(input_shape) != 1:
        return "network"
    small = n_features <= AUTO_TABLE_MAX_COLUMNS and n_rows <= AUTO_TABLE_MAX_ROWS
    return "table" if small else "network"


def table_backbones(kind: str, estimator: Any, categorical: np.ndarray, seed: int) -> list[Backbone]:
    """The backbones of a :func:`backbone_kind`: the default tabular pair, or the user's classifier (dense view)."""
    if kind == "estimator":
        return [Backbone(estimator, "dense")]
    return default_table_backbones(categorical, seed)


def default_table_backbones(categorical: np.ndarray, seed: int) -> list[Backbone]:
    """The tabular backbones: gradient-boosted trees on the native columns and a logistic regression.

    scikit-learn's ``HistGradientBoostingClassifier`` takes the categorical columns as
    categories and missing values as they are; the logistic regression takes the one-hot,
    imputed and standardized view. Their averaged probabilities are the evidence: two
    learners that fail in different places, as Co-teaching's two networks do.
    """
    from sklearn.ensemble import HistGradientBoostingClassifier
    from sklearn.linear_model import LogisticRegression
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import StandardScaler

    trees = HistGradientBoostingClassifier(
        categorical_features=categorical if categorical.any() else None, random_state=seed
    )
    linear = make_pipeline(StandardScaler(), LogisticRegression(max_iter=1000))
    return [Backbone(trees, "codes"), Backbone(linear, "dense")]


def models_proba(
    models: Sequence[Any], view_names: Sequence[str], views: dict[str, np.ndarray], weights: np.ndarray, n_classes: int
) -> np.ndarray:
    """The weighted mix of fitted models' ``predict_proba`` (columns ``0 .. n_classes-1``), as float32.

    The views are read as float64, the sum is taken in float64 and rounded once, so that a row's
    probabilities do not depend on the other rows of the batch (BLAS blocking then changes only
    the last float64 bits, not float32 ones).
    """
    total = np.zeros((len(next(iter(views.values()))), n_classes), dtype=np.float64)
    for model, view, w in zip(models, view_names, weights):
        proba = np.asarray(model.predict_proba(np.asarray(views[view], dtype=np.float64)), dtype=np.float64)
        total[:, np.asarray(model.classes_, dtype=np.int64)] += w * proba
    return total.astype(np.float32)
