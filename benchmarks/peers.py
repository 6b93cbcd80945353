"""The peers of the suite, built from their own libraries (cleanlab, skorch, scikit-learn, pulearn).

The MLP every peer wraps is labelclean's default vector backbone rebuilt in skorch: per-feature
standardization (scikit-learn's ``StandardScaler``, the same statistics labelclean's
``Standardize`` layer uses), then ``[Linear → BatchNorm1d → ReLU] × 2`` with 256 units and a
linear head, trained with Adam and cross-entropy — the architecture and optimiser of
``CoTeachingFilter``'s default MLP (``hidden_dims=(256, 256)``). The batch size and learning rate
default to 128 rows and 1e-3 (``SelfTrainer``'s); the cleanlab peer is given those
``CoTeachingFilter``'s ``batch_size="auto"`` picks for its MLP on the same rows. skorch's
silent 20 % validation split is switched off (``train_split=None``) so that the peer trains on
every row it is given, as labelclean does.

The heavy imports (cleanlab, skorch, pulearn) happen inside the factories, so importing this
module is cheap.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any

import numpy as np
import torch
from torch import nn

HIDDEN_DIMS = (256, 256)
BATCH_SIZE = 128
LR = 1e-3


class SkorchMLP(nn.Module):
    """``[Linear → BatchNorm1d → ReLU] * len(hidden_dims) → Linear``, logits out (labelclean's MLP layout)."""

    def __init__(self, n_features: int = 784, n_classes: int = 10, hidden_dims: Sequence[int] = HIDDEN_DIMS) -> None:
        super().__init__()
        layers: list[nn.Module] = []
        width = n_features
        for h in hidden_dims:
            layers += [nn.Linear(width, h), nn.BatchNorm1d(h), nn.ReLU()]
            width = h
        layers.append(nn.Linear(width, n_classes))
        self.body = nn.Sequential(*layers)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.body(x)


def as_float32(X: Any) -> Any:
    """Cast to float32 (skorch's torch module expects it; scikit-learn steps may return float64)."""
    return X.astype("float32", copy=False)


def skorch_mlp(
    n_features: int,
    n_classes: int,
    *,
    epochs: int,
    seed: int,
    min_steps: int = 0,
    hidden_dims: Sequence[int] = HIDDEN_DIMS,
    batch_size: int = BATCH_SIZE,
    lr: float = LR,
) -> Any:
    """A scikit-learn pipeline: ``StandardScaler`` (float32 kept) → skorch ``NeuralNetClassifier(SkorchMLP)``.

    Parameters
    ----------
    n_features, n_classes : int
        Input width and number of classes (the labels must be ``0 .. n_classes - 1``).
    epochs : int
        Passes over the rows the pipeline is fitted on.
    min_steps : int, default=0
        Raise the passes so that every ``fit`` makes at least this many mini-batch updates
        (``SelfTrainer``'s own rule for small labeled sets).
    batch_size, lr : int, float
        Rows per mini-batch and Adam's learning rate.
    seed : int
        Seeds torch's generators at the start of every ``fit`` (skorch has no seed of its own),
        so each cross-validation fold starts from a reproducible initialisation.
    """
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import FunctionTransformer, StandardScaler
    from skorch import NeuralNetClassifier

    class SeededNet(NeuralNetClassifier):
        """``NeuralNetClassifier`` whose ``fit`` seeds torch, casts labels to int64, applies ``min_steps``.

        It also drops a last mini-batch of a single row, which batch norm cannot train on.
        """

        def fit(self, X: Any, y: Any = None, **fit_params: Any) -> Any:
            torch.manual_seed(seed)
            # A last mini-batch of one row cannot train batch norm; skip it (a random row each
            # epoch, the rows being shuffled), as labelclean merges it into the previous batch.
            self.iterator_train__drop_last = len(X) > batch_size and len(X) % batch_size == 1
            steps_per_epoch = max(1, math.ceil(len(X) / batch_size))
            fit_params.setdefault("epochs", max(epochs, math.ceil(min_steps / steps_per_epoch)))
            return super().fit(X, None if y is None else np.asarray(y).astype("int64"), **fit_params)

    net = SeededNet(
        SkorchMLP,
        module__n_features=n_features,
        module__n_classes=n_classes,
        module__hidden_dims=tuple(hidden_dims),
        criterion=nn.CrossEntropyLoss,
        optimizer=torch.optim.Adam,
        lr=lr,
        batch_size=batch_size,
        max_epochs=epochs,
        train_split=None,
        iterator_train__shuffle=True,
        classes=list(range(n_classes)),
        verbose=0,
        device="cpu",
    )
    return make_pipeline(StandardScaler(), FunctionTransformer(as_float32), net)


def clean_learning(
    n_features: int,
    n_classes: int,
    *,
    epochs: int,
    seed: int,
    cv_n_folds: int = 5,
    batch_size: int = BATCH_SIZE,
    lr: float = LR,
) -> Any:
    """cleanlab ``CleanLearning`` (``cv_n_folds``-fold cross-validated label issues) around :func:`skorch_mlp`."""
    from cleanlab.classification import CleanLearning

    clf = skorch_mlp(n_features, n_classes, epochs=epochs, seed=seed, batch_size=batch_size, lr=lr)
    # n_jobs=1: cleanlab's pruning pool relies on module globals that a spawned process does not
    # inherit (NameError), and one process keeps the peer on the suite's thread budget.
    return CleanLearning(clf, seed=seed, cv_n_folds=cv_n_folds, find_label_issues_kwargs={"n_jobs": 1})


def self_training(base: str, n_features: int, n_classes: int, *, epochs: int, seed: int, min_steps: int = 0) -> Any:
    """scikit-learn ``SelfTrainingClassifier`` (its defaults) around ``LogisticRegression()`` or :func:`skorch_mlp`."""
    from sklearn.linear_model import LogisticRegression
    from sklearn.semi_supervised import SelfTrainingClassifier

    if base == "logreg":
        estimator = LogisticRegression()
    elif base == "mlp":
        estimator = skorch_mlp(n_features, n_classes, epochs=epochs, seed=seed, min_steps=min_steps)
    else:
        raise ValueError(f"base must be 'logreg' or 'mlp', got {base!r}.")
    return SelfTrainingClassifier(estimator)


def pulearn_peer(name: str, n_labeled: int, seed: int) -> Any:
    """pulearn's Elkan–Noto or bagging PU classifier on ``LogisticRegression(max_iter=1000)``.

    The settings of ``benchmarks/bench_pu.py``: Elkan–Noto with ``hold_out_ratio=0.1``;
    bagging with 10 balanced bags (``max_samples`` = the number of labeled positives, as in
    Mordelet & Vert, 2014).
    """
    from pulearn import BaggingPuClassifier, ElkanotoPuClassifier
    from sklearn.linear_model import LogisticRegression

    lr = LogisticRegression(max_iter=1000)
    if name == "elkanoto":
        return ElkanotoPuClassifier(estimator=lr, hold_out_ratio=0.1, random_state=seed)
    if name == "bagging":
        return BaggingPuClassifier(estimator=lr, n_estimators=10, max_samples=n_labeled, n_jobs=1, random_state=seed)
    raise ValueError(f"name must be 'elkanoto' or 'bagging', got {name!r}.")
