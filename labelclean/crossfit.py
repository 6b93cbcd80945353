"""Cross-fitting scikit-learn classifiers: the table path of the estimators, as functions.

``CoTeachingFilter``, ``SelfTrainer`` and ``PUClassifier`` judge the rows of a table with
scikit-learn models that never saw them: stratified folds (:func:`stratified_folds`), each fold
predicted by models fitted on the other folds (:func:`cross_fit_proba`), the backbones weighted by
how well their calibrated out-of-fold probabilities fit the given labels (:func:`choose_weights`,
:func:`mix`). The defaults are gradient-boosted trees on the native columns and a logistic
regression on the one-hot view (:func:`default_table_backbones`); the two views of a table come
from :class:`labelclean.tabular.TablePlan`.

Examples
--------
>>> import numpy as np
>>> from sklearn.linear_model import LogisticRegression
>>> rng = np.random.default_rng(0)
>>> X = rng.normal(size=(200, 3)); y = (X[:, 0] > 0).astype(int)
>>> folds = stratified_folds(y, 5, seed=0)
>>> [proba] = cross_fit_proba([Backbone(LogisticRegression(), "dense")], {"dense": X}, y, folds, 2)
>>> proba.shape, bool((proba.argmax(1) == y).mean() > 0.9)
((200, 2), True)
"""

from __future__ import annotations

from ._crossfit import (
    AUTO_TABLE_MAX_COLUMNS,
    AUTO_TABLE_MAX_ROWS,
    Backbone,
    aligned_proba,
    backbone_kind,
    choose_weights,
    cross_fit_proba,
    default_table_backbones,
    fit_model,
    log_loss,
    mix,
    models_proba,
    stratified_folds,
    table_backbones,
)

__all__ = [
    "AUTO_TABLE_MAX_COLUMNS",
    "AUTO_TABLE_MAX_ROWS",
    "Backbone",
    "aligned_proba",
    "backbone_kind",
    "choose_weights",
    "cross_fit_proba",
    "default_table_backbones",
    "fit_model",
    "log_loss",
    "mix",
    "models_proba",
    "stratified_folds",
    "table_backbones",
]
