"""Self-training: fill in missing labels, or relabel a noisy set, with one of three strategies.

:class:`~labelclean.SelfTrainer` is the estimator; it orchestrates a *strategy*, a small parameter object
whose ``fit`` runs one paper's steps on the trainer's learner:

- :class:`~labelclean.Consistency`: FixMatch-style consistency training with a mean teacher
  (:mod:`labelclean.self_training.consistency`);
- :class:`~labelclean.NoisyStudent`: teacher → noised student rounds (Noisy Student), also on the tabular
  backbones (:mod:`labelclean.self_training.noisy_student`, :mod:`labelclean.self_training.tables`);
- :class:`~labelclean.Relabel`: teacher–student relabeling of a set whose labels may all be wrong
  (:mod:`labelclean.self_training.relabel`).

The algorithms are short functions in :mod:`labelclean.self_training.algorithms`, re-exported
here. ``SelfTrainer`` itself is defined in this file: the command line reads its parameter
names from this source without importing PyTorch.
"""

from __future__ import annotations

import warnings
from numbers import Integral, Real
from typing import Any

import numpy as np
import torch
from sklearn.base import clone
from sklearn.utils.multiclass import check_classification_targets
from sklearn.utils.validation import check_is_fitted

from .._base import LabelEstimatorBase
from .._compat import Interval, StrOptions, _fit_context, _safe_indexing
from .._crossfit import models_proba
from .._train import AUGMENTATIONS
from ..detection import RELABEL_THRESHOLD, detect
from . import legacy
from .algorithms import (
    align_columns,
    align_distribution,
    balance_rows,
    balanced_accuracy,
    consistency_epoch,
    consistency_step,
    epochs_for,
    fixmatch_loss,
    fold_ids,
    gaussian_noise,
    labeled_repeats,
    one_hot,
    prior_balance_rows,
    select_pseudo_rows,
    soft_cross_entropy,
    student_targets,
    unlabeled_mask,
    weak_targets,
    weighted_rows,
)
from .consistency import AUTO_CONSISTENCY_EPOCHS, AUTO_CONSISTENCY_MIN_LABELS, Consistency
from .noisy_student import AUTO_STUDENTS, NoisyStudent
from .relabel import Relabel
from .strategy import Rows, Strategy
from .tables import GUARD_FOLDS, TABLE_FOLDS
from .training import Learner

__all__ = [
    "AUTO_CONSISTENCY_EPOCHS",
    "AUTO_CONSISTENCY_MIN_LABELS",
    "AUTO_STUDENTS",
    "GUARD_FOLDS",
    "TABLE_FOLDS",
    "Consistency",
    "NoisyStudent",
    "Relabel",
    "Rows",
    "SelfTrainer",
    "Strategy",
    "align_columns",
    "align_distribution",
    "balance_rows",
    "balanced_accuracy",
    "consistency_epoch",
    "consistency_step",
    "epochs_for",
    "fixmatch_loss",
    "fold_ids",
    "gaussian_noise",
    "labeled_repeats",
    "one_hot",
    "prior_balance_rows",
    "select_pseudo_rows",
    "soft_cross_entropy",
    "student_targets",
    "unlabeled_mask",
    "weak_targets",
    "weighted_rows",
]

#: The strategies by the name ``SelfTrainer(strategy=...)`` also takes (with their defaults).
STRATEGIES: dict[str, type[Strategy]] = {cls.name: cls for cls in (Consistency, NoisyStudent, Relabel)}


class SelfTrainer(Learner, LabelEstimatorBase):
    """Fill in missing labels (``-1`` rows), or relabel a noisy set, by self-training with a chosen strategy.

    Rows labeled ``-1`` are unlabeled. The ``strategy`` decides how the labels spread from the
    labeled rows (or, with :class:`~labelclean.Relabel`, how every label is reconsidered); the parameters
    below, shared by every strategy, decide the learner: torch networks (an MLP for vectors,
    a CNN for images) with their training noise, the tabular backbones (scikit-learn's
    gradient-boosted trees and a logistic regression, picked on the labeled rows), or your
    classifier. How the rule of ``strategy="auto"`` and the defaults were chosen:
    ``docs/benchmarks.md#selft`` (images, wide rows) and ``docs/benchmarks.md#semi`` (tables).

    Parameters
    ----------
    strategy : "auto", "consistency", "noisy_student", "relabel" or a strategy, default="auto"
        :class:`~labelclean.Consistency`, :class:`~labelclean.NoisyStudent` or
        :class:`~labelclean.Relabel` (an instance, with its own parameters, or its name for its
        defaults). ``"auto"``: ``Consistency()`` when the learner is the networks, there is no
        ``teacher`` and every class has at least 50 labeled rows; else ``NoisyStudent()`` (on a
        table with ``estimator="auto"``, its rounds of the tabular backbones). Relabeling is
        never automatic: pass ``"relabel"``.
    estimator : "auto", "network", classifier or None, default="auto"
        The learner. ``"auto"``: 2-D rows of at most 512 columns and 200,000 rows are a table
        and get the tabular backbones (categories as categories, missing values kept; the one,
        or the equal mix, whose cross-fitted probabilities fit the labeled rows best, as
        ``CoTeachingFilter(estimator="auto")`` picks them), unless the strategy trains networks
        (:class:`~labelclean.Consistency`, :class:`~labelclean.Relabel`) or ``teacher`` is given;
        images and wider rows get the torch networks. ``"network"`` (or ``None``): the torch networks. A
        scikit-learn classifier with ``predict_proba``: used instead of the networks.
    teacher : classifier or None, default=None
        An unfitted estimator whose ``predict_proba`` (after ``fit``) gives the first round's
        labels, e.g. a :class:`~labelclean.CoTeachingFilter` with ``strategy="relabel"``. It is
        fitted on the labeled rows (all rows when relabeling).
    input_noise : float, default=0.1
        Student noise for vector rows: Gaussian noise of this many feature standard deviations.
    augment : {"auto", "none", "shift", "affine"}, default="auto"
        Student noise for images, as every estimator's augmentation: ``"shift"`` moves images
        by up to 1/12 of their side (at least 1 px); ``"affine"`` also rotates them by up to 10°
        and zooms by up to 10 %; ``"auto"`` is ``"affine"`` for images of 12 px and more,
        shifts of 1/12 of the side below (``docs/benchmarks.md#selft``).
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
        Seeds initialisation, shuffling, noise and folds, without touching global generators.
    verbose : int, default=0
    n_jobs : int or None, default=None
        Torch threads during ``fit`` and ``predict`` (restored afterwards). ``None`` leaves
        torch's setting (``OMP_NUM_THREADS`` when set, else all cores); ``-1`` uses all cores.
    relabel, soft, threshold, balance, labeled_share, max_iter, student_width, guard, n_folds, patience, \
max_teacher_epochs, consistency_epochs, consistency_threshold, consistency_align, consistency_ema : deprecated
        A strategy's parameter, spelt flat as before the strategies: set, it still fits as it did
        and warns (``FutureWarning``) with the ``strategy`` to pass instead; to be removed.

    Attributes
    ----------
    strategy_ : Consistency, NoisyStudent or Relabel
        The strategy the fit ran (``strategy`` resolved).
    backbone_ : {"network", "table", "estimator"}
        The learner: the torch networks, the tabular backbones or ``estimator``.
    classes_ : ndarray of shape (n_classes,)
        The label values, without the unlabeled marker ``-1``.
    pseudo_labels_ : ndarray of shape (n_samples,)
        The given label on labeled rows, the final model's label elsewhere. Relabeling: the
        final model's label where it doubts the given one, else the given one.
    label_quality_ : ndarray of float32, shape (n_samples,)
        The final model's probability of ``pseudo_labels_`` (its confidence). Relabeling: the
        quality of the *given* label, as on :class:`~labelclean.CoTeachingFilter`
        (:func:`labelclean.detection.detect`).
    clean_mask_ : ndarray of bool, shape (n_samples,)
        The labeled rows, plus the filled rows the final model learnt (for a consistency-trained
        final model, those it predicts with at least ``Consistency.threshold``) whose
        ``label_quality_`` reaches 0.9, the threshold at which the detection rule trusts a
        proposed label (``labelclean.detection.RELABEL_THRESHOLD``); so dropping the other rows
        keeps trusted labels only. Relabeling: the final model agrees with the given label.
    consistency_epochs_ : int
        Passes of consistency training the first network got (0: none).
    n_iter_ : int
        Student rounds run (0 when there was nothing to pseudo-label, or when ``guard`` kept
        the labeled-only models).
    termination_condition_ : {"max_iter", "no_change", "all_labeled", "no_gain"}
        ``"no_change"``: the pseudo-labels stopped changing or no row passed the threshold;
        ``"all_labeled"``: ``y`` had no unlabeled rows (plain training); ``"no_gain"``:
        ``NoisyStudent.guard`` kept the models fitted on the labeled rows alone.
    self_training_kept_ : bool or None
        Tabular backbones: whether the final models are the self-trained ones (``False`` when
        the guard found self-training worse on held-out labeled rows, or when no round ran);
        the held-out scores of both are in ``history_`` (phase ``"guard"``). ``None`` otherwise.
    history_ : list of dict
        One entry per epoch (phase, round, loss, seconds, ...) and one per pseudo-labeling.
    phase_seconds_ : dict of str to float
        Seconds of each phase of the fit, named as its progress shows them (``"teacher"``, ``"student 1"``, ...).
    networks_ : list of torch.nn.Module
        The final network (empty when ``estimator`` is a classifier or on the tabular backbones).
    estimator_ : fitted estimator or None
        The final model when ``estimator`` is a classifier.
    teacher_ : fitted estimator or None
        The fitted ``teacher``.
    n_features_in_ : int

    Examples
    --------
    >>> import numpy as np
    >>> from sklearn.datasets import make_classification
    >>> from labelclean import NoisyStudent, SelfTrainer
    >>> X, y = make_classification(300, n_features=8, n_informative=5, n_classes=3, random_state=0)
    >>> y_semi = y.copy()
    >>> y_semi[30:] = -1  # only the first 30 rows are labeled
    >>> st = SelfTrainer(strategy=NoisyStudent(max_iter=2), min_steps=100, hidden_dims=(32,), random_state=0)
    >>> st = st.fit(X, y_semi)
    >>> st.classes_, st.backbone_
    (array([0, 1, 2]), 'table')
    >>> st.pseudo_labels_.shape, st.termination_condition_  # the guard: no gain on held-out labeled rows
    ((300,), 'no_gain')
    >>> bool((st.pseudo_labels_[30:] == y[30:]).mean() > 0.6)
    True
    >>> SelfTrainer(random_state=0).fit(X, y_semi).strategy_  # "auto": fewer than 50 labels a class
    NoisyStudent()
    """

    _parameter_constraints: dict = {
        **LabelEstimatorBase._parameter_constraints,
        "strategy": [StrOptions({"auto", *STRATEGIES}), Strategy],
        "estimator": "no_validation",
        "teacher": "no_validation",
        "input_noise": [Interval(Real, 0.0, None, closed="left")],
        "augment": [StrOptions(set(AUGMENTATIONS))],
        "min_steps": [Interval(Integral, 0, None, closed="left")],
        **legacy.CONSTRAINTS,
    }

    def __init__(
        self,
        *,
        strategy: str | Strategy = "auto",
        estimator: Any = "auto",
        teacher: Any = None,
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
        relabel: Any = legacy.DEPRECATED,
        soft: Any = legacy.DEPRECATED,
        threshold: Any = legacy.DEPRECATED,
        balance: Any = legacy.DEPRECATED,
        labeled_share: Any = legacy.DEPRECATED,
        max_iter: Any = legacy.DEPRECATED,
        student_width: Any = legacy.DEPRECATED,
        guard: Any = legacy.DEPRECATED,
        n_folds: Any = legacy.DEPRECATED,
        patience: Any = legacy.DEPRECATED,
        max_teacher_epochs: Any = legacy.DEPRECATED,
        consistency_epochs: Any = legacy.DEPRECATED,
        consistency_threshold: Any = legacy.DEPRECATED,
        consistency_align: Any = legacy.DEPRECATED,
        consistency_ema: Any = legacy.DEPRECATED,
    ) -> None:
        self.strategy = strategy
        self.estimator = estimator
        self.teacher = teacher
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
        self.relabel = relabel
        self.soft = soft
        self.threshold = threshold
        self.balance = balance
        self.labeled_share = labeled_share
        self.max_iter = max_iter
        self.student_width = student_width
        self.guard = guard
        self.n_folds = n_folds
        self.patience = patience
        self.max_teacher_epochs = max_teacher_epochs
        self.consistency_epochs = consistency_epochs
        self.consistency_threshold = consistency_threshold
        self.consistency_align = consistency_align
        self.consistency_ema = consistency_ema

    # -- fit ----------------------------------------------------------------
    @_fit_context(prefer_skip_nested_validation=True)
    def fit(self, X: Any, y: Any) -> SelfTrainer:
        """Self-train on ``X, y`` (``-1`` = unlabeled), or relabel it, with the strategy; fill the row contract.

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
        old = legacy.given(self)
        requested = self._requested(old)
        relabel = requested.relabels if isinstance(requested, Strategy) else bool(old.get("relabel", False))
        Xt, y_raw = self._prepare(X, y)
        y_enc, labeled = self._split_labels(y_raw, relabel=relabel)
        self.backbone_ = self._resolve_backbone(len(y_enc), requested, relabel=relabel)
        self.strategy_ = self._resolve_strategy(requested, old, y_enc, labeled)
        self.history_, self.teacher_, self.n_iter_, self.consistency_epochs_ = [], None, 0, 0
        self.estimators_, self.backbone_weights_ = [], None
        self.termination_condition_ = "max_iter"
        self.self_training_kept_ = None
        given = np.zeros_like(labeled) if relabel else labeled  # rows whose label is trusted
        if given.all():
            self._warn(
                "y has no unlabeled rows (-1), so there is nothing to self-train on; "
                "training a plain classifier. Mark unlabeled rows with -1, or pass strategy='relabel'."
            )
            self.termination_condition_ = "all_labeled"
        rows = Rows(X, y_raw, Xt, y_enc, labeled, given, self._generator())
        with self._seeded():
            model, proba, trained = self.strategy_.fit(self, rows)
        self._finish(model, proba, y_enc, given, trained)
        return self

    def _requested(self, old: dict[str, Any]) -> str | Strategy:
        """``strategy`` as asked: ``"auto"``, or a validated strategy (a name's defaults, flat values merged in)."""
        strategy = self.strategy
        if isinstance(strategy, str) and strategy != "auto":
            strategy = STRATEGIES[strategy]()
        if isinstance(strategy, Strategy):
            strategy._validate_params()
            if old:
                strategy = legacy.merge(strategy, old)
        return strategy

    def _resolve_strategy(self, requested, old, y_enc: np.ndarray, labeled: np.ndarray) -> Strategy:
        """The strategy to run (``"auto"`` and flat values resolved on the data), checked against the learner."""
        ignored: list[str] = []
        if isinstance(requested, Strategy):
            strategy = clone(requested)  # not the parameter itself, which set_params may change later
        elif old:
            strategy, ignored = legacy.translate(old, self, y_enc, labeled)
        else:
            per_class = np.bincount(y_enc[labeled], minlength=len(self.classes_))
            enough = not labeled.all() and per_class.min() >= AUTO_CONSISTENCY_MIN_LABELS
            auto = self.backbone_ == "network" and self.teacher is None and enough
            strategy = Consistency() if auto else NoisyStudent()
        strategy.check(self)
        if old:
            warnings.warn(legacy.warning(old, strategy, ignored), FutureWarning, stacklevel=4)
        return strategy

    # -- labels -------------------------------------------------------------
    def _check_label_types(self, y: Any) -> None:
        """The base check, on the labeled rows only: the int marker ``-1`` may sit among string labels."""
        values = None if y is None else np.asarray(y)
        if values is not None and values.ndim == 1:
            y = values[~unlabeled_mask(values)]
        super()._check_label_types(y)

    def _split_labels(self, y: Any, *, relabel: bool) -> tuple[np.ndarray, np.ndarray]:
        """Encode labels, ``-1`` → unlabeled; return ``(y_enc with -1 for unlabeled, labeled mask)``."""
        if y is None:
            check_classification_targets(y)  # raises scikit-learn's "y is None" error
        labeled = ~unlabeled_mask(y)
        check_classification_targets(self._tidy_labels(y[labeled]))
        if not labeled.any():
            raise ValueError(
                "every row of y is unlabeled (-1); label at least one row per class, or pass "
                "strategy='relabel' with the (noisy) labels."
            )
        if relabel and not labeled.all():
            raise ValueError(
                f"strategy='relabel' treats every label as possibly wrong, but {int((~labeled).sum())} rows are "
                "unlabeled (-1); use another strategy (the default 'auto') to fill them in, or drop them."
            )
        y_enc = np.full(len(y), -1, dtype=np.int64)
        y_enc[labeled] = self._encode_labels(y[labeled])
        if len(self.classes_) < 2:
            raise ValueError(
                f"the labeled rows hold only one class ({self.classes_[0]!r}); "
                "self-training needs at least two classes."
            )
        return y_enc, labeled

    def _finish(self, model, proba, y_enc, given, trained) -> None:
        """Keep the final model and fill the row contract."""
        if model is None and self.backbone_ != "table":  # the user's teacher was never replaced by a student
            model = self.teacher_
        self.networks_ = model if isinstance(model, list) else [model] if isinstance(model, torch.nn.Module) else []
        self.estimator_ = None if self.networks_ or self.backbone_ == "table" else model
        if self.strategy_.relabels:  # every label was given and may be wrong: the detection rule on the final model
            self._set_contract(detect(y_enc, proba, flag="disagreement", relabel_threshold=0.0, calibrated=True))
            return
        best = np.where(given, y_enc, proba.argmax(1))
        self.pseudo_labels_ = self.classes_[best]
        self.label_quality_ = np.clip(proba[np.arange(len(best)), best], 0.0, 1.0).astype(np.float32)
        # A filled label is trusted as the detection rule trusts a proposed one: confident enough.
        confident = np.asarray(trained, dtype=bool) & (self.label_quality_ >= RELABEL_THRESHOLD)
        self.clean_mask_ = given | confident

    @classmethod
    def _upgrade_saved_params(cls, params: dict[str, Any]) -> dict[str, Any]:
        """Parameters of a file saved before the strategies: the flat ones left at their old default are not given."""
        return {
            k: legacy.DEPRECATED if k in legacy.OLD_DEFAULTS and _same(v, legacy.OLD_DEFAULTS[k]) else v
            for k, v in params.items()
        }

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
            views, _ = self._table_views(X, Xr)
            return models_proba(
                self.estimators_, self._estimator_views, views, self.backbone_weights_, len(self.classes_)
            )
        if self.estimator_ is self.teacher_:  # a user teacher predicts in the user's label values
            return align_columns(self.teacher_.predict_proba(X), np.asarray(self.teacher_.classes_), self.classes_)
        return self._proba(self.estimator_, Xr)

    def fit_resample(self, X: Any, y: Any) -> tuple[Any, Any]:
        """Fit, then return the trusted rows (``clean_mask_``) with their ``pseudo_labels_``.

        Unlike the other estimators the returned labels are not the given ones: unlabeled
        (or, when relabeling, relabeled) rows come back with their inferred label. The
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


def _same(value: Any, default: Any) -> bool:
    """``value == default`` of the same kind (``True`` is not ``1``, ``"auto"`` is not ``0``)."""
    return type(value) is type(default) and value == default
