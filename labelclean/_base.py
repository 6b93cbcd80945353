"""Shared estimator base: validation, label encoding, devices, seeding, the row contract, ``fit_resample``."""

from __future__ import annotations

import contextlib
import functools
import os
import warnings
from collections.abc import Callable
from numbers import Integral, Real
from pathlib import Path
from typing import Any

import numpy as np
import torch
from sklearn.base import BaseEstimator, ClassifierMixin
from sklearn.utils import check_random_state
from sklearn.utils.multiclass import check_classification_targets
from sklearn.utils.validation import check_consistent_length, check_is_fitted, column_or_1d

from . import _progress
from ._compat import Interval, _safe_indexing, validate_data
from ._data import input_stats, reshape_input
from ._nets import backbone_name, build_network
from ._tabular import TablePlan, needs_plan
from ._train import augmentation, local_torch_seed, predict_proba_nets, resolve_device, torch_threads
from .detection import Detection


def _describe_non_numeric(X: Any) -> str:
    if hasattr(X, "dtypes") and hasattr(X, "columns"):
        bad = [str(c) for c, dt in zip(X.columns, X.dtypes) if getattr(dt, "kind", "O") not in "biuf"]
        if bad:
            return f"columns {bad[:5]} are not numeric"
    return "X holds non-numeric values"


def _where_not_finite(X: Any) -> str:
    """``" (first at row i, column j)"`` for the first NaN or infinite value of ``X``, or ``""``."""
    try:
        values = np.asarray(X, dtype=np.float64)
        bad = np.argwhere(~np.isfinite(values))
    except (TypeError, ValueError):
        return ""
    if not len(bad):
        return ""
    row, *rest = (int(i) for i in bad[0])
    return f" (first at row {row}" + (f", column {rest[0]})" if rest else ")")


def _friendly_validation_error(exc: ValueError, X: Any, y: Any) -> ValueError | None:
    """A shorter error naming the problem and the fix for scikit-learn's common input errors, or None."""
    msg = str(exc)
    if "could not convert string to float" in msg or "dtype='numeric' is not compatible" in msg:
        return ValueError(
            f"{_describe_non_numeric(X)}; labelclean needs numeric features. Encode text or "
            "categorical columns first, e.g. with sklearn.preprocessing.OneHotEncoder."
        )
    if msg.startswith("Input X contains NaN"):
        return ValueError(
            f"X contains NaN (missing values){_where_not_finite(X)}; impute them first (e.g. "
            "sklearn.impute.SimpleImputer in a Pipeline) or drop those rows."
        )
    if msg.startswith("Input X contains infinity"):
        return ValueError(
            f"X contains infinity or a value too large for float32{_where_not_finite(X)}; clip or rescale "
            "those features, or drop those rows."
        )
    if msg.startswith("Input y contains NaN"):
        return ValueError(
            f"y contains NaN labels{_where_not_finite(y)}; drop those rows, or mark unlabeled rows with -1 "
            "(SelfTrainer) or 0 (PUClassifier)."
        )
    if "inhomogeneous shape" in msg or "setting an array element with a sequence" in msg:
        return ValueError(
            "X has rows of different lengths (or nested sequences); every row needs the same number of numeric "
            "features: pad or truncate them to one length first."
        )
    return None


def _scalar_kind(value: Any) -> str:
    """``"b"``, ``"i"`` or ``"f"`` for Python or NumPy bools, integers and floats; ``"O"`` for anything else."""
    if isinstance(value, (bool, np.bool_)):
        return "b"
    if isinstance(value, (int, np.integer)):
        return "i"
    return "f" if isinstance(value, (float, np.floating)) else "O"


def _pick(proba: np.ndarray, columns: np.ndarray, chunk: int = 1 << 16) -> np.ndarray:
    """``proba[i, columns[i]]`` clipped to [0, 1] as float32, gathered in chunks (no row-sized index arrays)."""
    out = np.empty(len(columns), dtype=np.float32)
    for start in range(0, len(columns), chunk):
        stop = min(start + chunk, len(columns))
        out[start:stop] = proba[np.arange(start, stop), columns[start:stop]]
    return np.clip(out, 0.0, 1.0, out=out)


def _recording_phase_seconds(fit: Callable) -> Callable:
    """``fit`` that times the progress phases it runs (:func:`labelclean._progress.timing`) into ``phase_seconds_``."""

    @functools.wraps(fit)
    def timed_fit(self, *args, **kwargs):
        with _progress.timing() as seconds:
            result = fit(self, *args, **kwargs)
        self.phase_seconds_ = dict(seconds)
        return result

    timed_fit._records_phase_seconds = True
    return timed_fit


def _as_tensor(X: np.ndarray) -> torch.Tensor:
    """Share memory with ``X`` (never written to), also when NumPy marks it read-only."""
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", message="The given NumPy array is not writable")
        return torch.from_numpy(X)


class TorchEstimatorMixin:
    """Inputs, devices, seeds, threads and networks: what every labelclean estimator shares.

    The label estimators get it through :class:`LabelEstimatorBase`; the
    :class:`~labelclean.ContrastiveEncoder` (a transformer, not a classifier) mixes it in
    directly. ``fit`` calls :meth:`_prepare` first and trains inside :meth:`_seeded`.

    Every subclass's ``fit`` is timed by phase: the seconds of each progress phase it runs
    (:func:`labelclean._progress.phase`, the names a progress listener is shown) end up in
    ``phase_seconds_``, in the order the phases started (:func:`labelclean._progress.timing`:
    a phase inside another counts toward the outer one). Time outside the phases (checking
    the input, predicting between phases, the detection rule) is in no entry.
    """

    def __init_subclass__(cls, **kwargs: Any) -> None:
        super().__init_subclass__(**kwargs)
        fit = cls.__dict__.get("fit")
        if callable(fit) and not getattr(fit, "_records_phase_seconds", False):
            cls.fit = _recording_phase_seconds(fit)

    _parameter_constraints: dict = {
        "module": [callable, None],
        "hidden_dims": ["array-like"],
        "dropout": [Interval(Real, 0.0, 1.0, closed="left")],
        "input_shape": ["array-like", None],
        "max_epochs": [Interval(Integral, 1, None, closed="left")],
        "batch_size": [Interval(Integral, 2, None, closed="left")],
        "lr": [Interval(Real, 0.0, 1e6, closed="right")],
        "weight_decay": [Interval(Real, 0.0, None, closed="left")],
        "device": [str, torch.device],
        "random_state": ["random_state"],
        "verbose": ["verbose"],
        "n_jobs": [Interval(Integral, 1, None, closed="left"), Interval(Integral, None, -1, closed="right"), None],
    }

    def __sklearn_tags__(self):
        tags = super().__sklearn_tags__()
        tags.input_tags.allow_nan = True  # missing values are filled (networks) or kept (trees)
        return tags

    # ------------------------------------------------------------------ inputs
    def _validate_X(self, X: Any, y: Any = None, *, reset: bool) -> tuple[np.ndarray, np.ndarray | None]:
        """Validate and convert to float32 ``(n, *input_shape)`` (a view where possible)."""
        if hasattr(X, "dtype") and getattr(X.dtype, "kind", "") in "USa":
            raise ValueError(
                f"X holds strings (dtype {X.dtype}); labelclean needs numeric features: pass a pandas DataFrame "
                "instead (its text and categorical "
                "columns are encoded, one column each), or encode them first, e.g. with "
                "sklearn.preprocessing.OneHotEncoder."
            )
        if hasattr(X, "dtype") and getattr(X.dtype, "kind", "") == "c":
            raise ValueError(
                f"Complex data not supported: X holds complex numbers (dtype {X.dtype}); labelclean needs real "
                "features. Pass np.abs(X), or the real and imaginary parts as separate columns."
            )
        if reset:
            self.table_plan_ = TablePlan.fit(X).to_dict() if needs_plan(X) else None
        plan = getattr(self, "table_plan_", None)
        if plan is not None:
            return self._validate_table(X, y, TablePlan.from_dict(plan), reset=reset)
        kwargs = dict(allow_nd=True, dtype=np.float32, ensure_min_samples=1)
        try:
            if y is None:
                Xv = validate_data(self, X, reset=reset, **kwargs)
                yv = None
            else:
                Xv, yv = validate_data(self, X, y, reset=reset, y_numeric=False, **kwargs)
        except ValueError as exc:
            friendly = _friendly_validation_error(exc, X, y)
            if friendly is None and not reset and "is expecting" in str(exc):
                friendly = ValueError(
                    f"{exc} (X has shape {getattr(X, 'shape', '?')}; the estimator was fitted on rows shaped "
                    f"{self.input_shape_}). Pass data shaped like the training data."
                )
            if friendly is not None:
                raise friendly from exc
            raise
        shape_param = None if self.input_shape is None else tuple(int(s) for s in self.input_shape)
        Xr = reshape_input(Xv, shape_param)
        if not reset and tuple(Xr.shape[1:]) != self.input_shape_:
            raise ValueError(
                f"X has input shape {tuple(Xr.shape[1:])} per row, but this estimator was fitted on "
                f"{self.input_shape_}; pass data shaped like the training data."
            )
        return Xr, yv

    def _validate_table(self, X: Any, y: Any, plan: TablePlan, *, reset: bool) -> tuple[np.ndarray, np.ndarray | None]:
        """A table with text, categorical or missing values: feature names checked, then the networks' view."""
        if y is None:
            validate_data(self, X, reset=reset, skip_check_array=True)
            yv = None
        else:
            validate_data(self, X, reset=reset, skip_check_array=True)
            yv = column_or_1d(y, warn=True)
            check_consistent_length(X, yv)
        if len(X) < 1:
            raise ValueError("Found array with 0 sample(s) (shape=(0, ...)) while a minimum of 1 is required.")
        return plan.dense(X), yv

    def _tree_view(self, X: Any) -> tuple[np.ndarray, np.ndarray]:
        """``X`` as gradient-boosted trees take it: numbers with NaN for missing values, and the categorical mask."""
        plan = getattr(self, "table_plan_", None)
        if plan is None:
            Xv, _ = self._validate_X(X, reset=False)
            return Xv.reshape(len(Xv), -1), np.zeros(int(np.prod(Xv.shape[1:])), dtype=bool)
        plan = TablePlan.from_dict(plan)
        return plan.codes(X), plan.categorical

    @staticmethod
    def _check_label_types(y: Any) -> None:
        """Reject labels that mix strings and numbers (NumPy would silently turn them all into strings)."""
        if y is None or (hasattr(y, "dtype") and getattr(y.dtype, "kind", "O") != "O"):
            return
        values = np.asarray(y, dtype=object).ravel()
        missing = np.fromiter((v is None for v in values), dtype=bool, count=len(values))
        if missing.any():
            raise ValueError(
                f"y holds missing labels (None) at {int(missing.sum())} rows, first at row {int(np.argmax(missing))}; "
                "drop those rows, or mark unlabeled rows with -1 (SelfTrainer) or 0 (PUClassifier)."
            )
        is_str = np.fromiter((isinstance(v, (str, bytes)) for v in values), dtype=bool, count=len(values))
        if is_str.any() and not is_str.all():
            kinds = sorted({type(v).__name__ for v in values})
            raise TypeError(f"y mixes label types {kinds}; use one type for all labels (e.g. all str or all int).")

    @staticmethod
    def _tidy_labels(y: Any) -> Any:
        """An object array of plain bools, ints or floats as an array of that type (else ``y`` unchanged).

        scikit-learn cannot classify object arrays of numbers (pandas makes them, e.g. after
        ``dropna`` on a column that held ``None``); their values are kept, only the dtype changes.
        """
        if not isinstance(y, np.ndarray) or y.dtype != object or y.size == 0:
            return y
        kinds = {_scalar_kind(v) for v in y.ravel().tolist()}
        return np.array(y.tolist()) if len(kinds) == 1 and kinds <= set("bif") else y

    def _encode_labels(self, y: np.ndarray) -> np.ndarray:
        y = self._tidy_labels(y)
        check_classification_targets(y)
        classes, y_enc = np.unique(y, return_inverse=True)
        self.classes_ = classes
        return y_enc.astype(np.int64)

    def _prepare(self, X: Any, y: Any) -> tuple[torch.Tensor, np.ndarray]:
        """Validate ``X, y``, set ``input_shape_``, ``classes_``, device and seed; return tensors."""
        self._check_label_types(y)
        self._check_hidden_dims()
        Xr, yv = self._validate_X(X, y, reset=True)
        yv = self._tidy_labels(yv)
        self.input_shape_ = tuple(int(s) for s in Xr.shape[1:])
        self._x_mean, self._x_scale = input_stats(Xr)
        self.device_ = resolve_device(self.device)
        self._seed = int(check_random_state(self.random_state).randint(np.iinfo(np.int32).max))
        return _as_tensor(Xr), yv

    def _check_hidden_dims(self) -> None:
        dims = list(self.hidden_dims)
        if not all(isinstance(h, Integral) and not isinstance(h, bool) and h >= 1 for h in dims):
            raise ValueError(
                f"hidden_dims={self.hidden_dims!r} must hold positive integers (layer widths), e.g. (256, 256); "
                "pass () for a linear model."
            )

    def _seeded(self) -> contextlib.AbstractContextManager:
        """The block in which ``fit`` trains.

        Inside it torch's default generators are seeded from ``random_state`` and torch runs
        on ``n_jobs`` threads; on exit both are restored and, when the estimator trained on
        CUDA, the cached GPU memory that its temporaries held is handed back to the driver.
        """
        stack = contextlib.ExitStack()
        stack.callback(self._release_device_memory)
        stack.enter_context(self._threads())
        stack.enter_context(local_torch_seed(self._seed, self.device_))
        return stack

    def _threads(self) -> contextlib.AbstractContextManager:
        """Torch on ``n_jobs`` threads for the duration of a ``with`` block (None: torch's own setting)."""
        return torch_threads(getattr(self, "n_jobs", None))

    def _release_device_memory(self) -> None:
        if self.device_.type == "cuda":
            torch.cuda.empty_cache()

    def _generator(self, offset: int = 0) -> torch.Generator:
        return torch.Generator().manual_seed(self._seed + offset)

    def _new_net(self, n_outputs: int, width: float = 1.0, backbone: str = "auto") -> torch.nn.Module:
        """A fresh network for ``n_outputs`` outputs; ``backbone`` ``"auto"`` picks by input shape (see ``_nets``)."""
        backbone = "module" if self.module is not None else backbone_name(self.input_shape_, backbone)
        net = build_network(
            self.input_shape_,
            n_outputs,
            mean=self._x_mean,
            scale=self._x_scale,
            module=self.module,
            hidden_dims=tuple(self.hidden_dims),
            dropout=self.dropout,
            width=width,
            backbone="auto" if backbone == "module" else backbone,
        ).to(self.device_)
        # How save/load rebuild it.
        net._labelclean_spec = {"n_outputs": int(n_outputs), "width": float(width), "backbone": backbone}
        return net

    def _rebuild_network(self, spec: dict[str, Any]) -> torch.nn.Module:
        """A network like the one ``spec`` (its ``_labelclean_spec``) describes, for :meth:`load` to fill."""
        default = "mlp" if len(self.input_shape_) == 1 else "small_cnn"  # files from before backbones were recorded
        backbone = spec.get("backbone", default)
        backbone = "auto" if backbone == "module" else backbone
        return self._new_net(int(spec["n_outputs"]), width=float(spec["width"]), backbone=backbone)

    # ------------------------------------------------------------- persistence
    def save(self, path: str | os.PathLike) -> Path:
        """Save the fitted estimator to one file, without pickle.

        The parameters and fitted attributes are stored as JSON, the network weights and
        numeric arrays as tensors, in a file written by :func:`torch.save` that
        :meth:`load` reads with ``torch.load(weights_only=True)`` (no code is ever run from
        it) and checks against a SHA-256 digest. The file is written to a temporary name
        and renamed into place.

        Parameters
        ----------
        path : str or path-like
            The file to write (conventionally ``*.pt``); an existing file is replaced.

        Returns
        -------
        pathlib.Path

        Raises
        ------
        ValueError
            The estimator holds a fitted scikit-learn model (``estimator=``, ``teacher=``),
            which cannot be stored without pickle.

        Notes
        -----
        A custom ``module=`` factory is code and is not stored: pass it again to
        :meth:`load`. ``predict`` after ``load`` equals ``predict`` before ``save`` bit for
        bit on the same device.

        Examples
        --------
        >>> import os, tempfile
        >>> from sklearn.datasets import make_classification
        >>> from labelclean import CoTeachingFilter
        >>> X, y = make_classification(100, n_features=5, random_state=0)
        >>> f = CoTeachingFilter(estimator="network", max_epochs=1, refine_epochs=0, forget_rate=0.1, random_state=0)
        >>> f = f.fit(X, y)
        >>> path = f.save(os.path.join(tempfile.mkdtemp(), "filter.pt"))
        >>> g = CoTeachingFilter.load(path)
        >>> bool((g.predict_proba(X) == f.predict_proba(X)).all())
        True
        """
        from ._persist import save_estimator

        return save_estimator(self, path)

    @classmethod
    def load(
        cls, path: str | os.PathLike, *, module: Any = None, device: str | torch.device | None = None
    ) -> TorchEstimatorMixin:
        """Load an estimator written by :meth:`save`.

        Parameters
        ----------
        path : str or path-like
        module : callable or None
            The ``module=`` factory the estimator was fitted with, if any (required then).
        device : str or None
            Where to put the networks (default: the saved ``device`` parameter, resolved
            again on this machine, e.g. ``"auto"``).

        Returns
        -------
        The fitted estimator, of the saved class (``cls`` or a subclass of it).

        Raises
        ------
        ValueError
            The file is not a labelclean model, is damaged or was modified, holds another
            class, or needs ``module=``.
        """
        from ._persist import load_estimator

        return load_estimator(cls, path, module=module, device=device)


class LabelEstimatorBase(TorchEstimatorMixin, ClassifierMixin, BaseEstimator):
    """Base of the labelclean estimators: one place for inputs, labels, devices, seeds and the row contract.

    Subclasses implement ``fit``; they call :meth:`_prepare` first and :meth:`_set_contract`
    last, and keep their trained networks in ``networks_``.

    Notes
    -----
    **Reproducibility.** ``random_state`` seeds a private :class:`torch.Generator` (shuffling,
    noise) and, inside ``fit`` only, torch's default generators (initialisation, dropout),
    which are restored afterwards; nothing global is reseeded. On CPU, the same
    ``random_state``, data, parameters, thread count (``n_jobs``), torch build and machine
    give bit-identical results across runs and processes (tested). Different thread counts
    may change the last bits of floating-point sums. On CUDA the initialisation and the
    shuffling are the same, but cuDNN and cuBLAS pick kernels whose floating-point sums
    are not ordered, so results agree only approximately from run to run, and never bit
    for bit with the CPU. For bit-identical GPU runs set
    ``torch.use_deterministic_algorithms(True)``, ``torch.backends.cudnn.benchmark = False``
    and the environment variable ``CUBLAS_WORKSPACE_CONFIG=:4096:8`` before fitting
    (slower; labelclean does not change these process-wide settings for you).

    **Resources.** ``n_jobs`` sets torch's thread count for the duration of ``fit`` and
    ``predict`` and restores it afterwards; ``None`` leaves torch's setting, which follows
    ``OMP_NUM_THREADS`` / ``MKL_NUM_THREADS``. No thread or process outlives a call. On CUDA,
    when training ends the blocks torch's caching allocator kept for the training
    temporaries are handed back to the driver (``torch.cuda.empty_cache``), so other
    processes can use them; the trained networks stay on the device until the estimator
    is deleted (``save`` it and ``load(path, device="cpu")`` to move it off the GPU).
    """

    # -------------------------------------------------------------- prediction
    def predict_proba(self, X: Any) -> np.ndarray:
        """Class probabilities, the average of the estimator's networks.

        Parameters
        ----------
        X : array-like of shape (n_samples, n_features) or image array
            Rows shaped like the training rows.

        Returns
        -------
        ndarray of shape (n_samples, n_classes), float32
        """
        check_is_fitted(self, "networks_")
        Xr, _ = self._validate_X(X, reset=False)
        with self._threads():
            return predict_proba_nets(self.networks_, _as_tensor(Xr), self.device_)

    def predict(self, X: Any) -> np.ndarray:
        """Most probable class per row, in the user's label values."""
        proba = self.predict_proba(X)
        return self.classes_[np.argmax(proba, axis=1)]

    def score(self, X: Any, y: Any, sample_weight: Any = None) -> float:
        """Mean accuracy of :meth:`predict` on ``X`` against the true labels ``y``.

        Raises a ``ValueError`` when ``y`` holds labels the estimator never saw in ``fit``
        (they could never be predicted, and usually mean mismatched label encodings).
        """
        check_is_fitted(self, "classes_")
        y_arr = np.asarray(y)
        if y_arr.ndim == 1 and len(y_arr):
            with contextlib.suppress(TypeError):  # mixed types: accuracy_score names them
                unseen = np.setdiff1d(np.unique(y_arr), self.classes_)
                if len(unseen):
                    raise ValueError(
                        f"y holds labels never seen in fit: {unseen[:5].tolist()}; this estimator predicts only "
                        f"{self.classes_[:10].tolist()}. Check that y uses the same label values as in fit."
                    )
        return super().score(X, y, sample_weight=sample_weight)

    # ------------------------------------------------------------ row contract
    def _set_contract(self, verdict: Detection) -> None:
        """Fill ``clean_mask_``, ``pseudo_labels_`` and ``label_quality_`` from the detection rule's verdict."""
        self.clean_mask_ = np.asarray(verdict.clean, dtype=bool)
        self.pseudo_labels_ = self.classes_[verdict.pseudo]
        self.label_quality_ = np.asarray(verdict.quality, dtype=np.float32)

    def fit_resample(self, X: Any, y: Any) -> tuple[Any, Any]:
        """Fit, then return the rows whose labels are trusted (``clean_mask_``) with their given labels.

        The imbalanced-learn sampler contract: in an ``imblearn.pipeline.Pipeline`` the next
        step is trained on the kept rows only. The container types of ``X`` and ``y``
        (NumPy arrays, DataFrames, Series) are kept.
        """
        self.fit(X, y)
        keep = np.flatnonzero(self.clean_mask_)
        return _safe_indexing(X, keep), _safe_indexing(y, keep)

    @staticmethod
    def _warn(message: str) -> None:
        warnings.warn(message, UserWarning, stacklevel=3)

    # ---------------------------------------------------------- shared pieces
    def _augmenter(self) -> Any:
        """The training noise of ``augment`` for rows of ``input_shape_`` (:func:`~labelclean._train.augmentation`)."""
        return augmentation(self.augment, self.input_shape_)

    def _table_views(self, X: Any, Xr: np.ndarray) -> tuple[dict[str, np.ndarray], np.ndarray]:
        """The feature views of the scikit-learn backbones, and the categorical mask of the ``"codes"`` columns.

        ``"dense"`` is the validated rows ``Xr`` flattened, the networks' view (categories
        one-hot, missing values filled); the default tabular backbones (``backbone_ ==
        "table"``) also get ``"codes"``, :meth:`_tree_view` of ``X``. The mask is all ``False``
        without them.
        """
        views = {"dense": Xr.reshape(len(Xr), -1)}
        mask = np.zeros(views["dense"].shape[1], dtype=bool)
        if self.backbone_ == "table":
            views["codes"], mask = self._tree_view(X)
        return views, mask

    def _fit_final_models(self, backbones: list, views: dict[str, np.ndarray], y: np.ndarray, rows: np.ndarray) -> None:
        """Fit every backbone on ``rows`` of its view: ``estimators_``, one step of the "final models" phase each."""
        from ._crossfit import fit_model

        with _progress.phase("final models", len(backbones), unit="fits"):
            self.estimators_ = []
            for b in backbones:
                self.estimators_.append(fit_model(b.model, views[b.view], y, rows))
                _progress.advance(1, rows=len(rows))
        self._estimator_views = [b.view for b in backbones]
