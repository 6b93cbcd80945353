"""Data-ops API: a table in, the same table out with ``is_clean``, ``pseudo_label`` and ``label_quality`` added.

``filter_labels``, ``selftrain_labels`` and ``pu_labels`` take a pandas DataFrame, a
pyarrow Table or a parquet path and return a DataFrame. :func:`clean_file` does the same
parquet to parquet, streaming, and is what the ``labelclean`` command line calls.
"""

from __future__ import annotations

import contextlib
import os
import time
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from ._distributed import is_main
from .io import (
    DataError,
    DatasetSource,
    FeaturePlan,
    OptionError,
    ProgressFn,
    as_source,
    is_dataset_input,
    open_dataset,
    part_names,
    part_output_name,
    plan_features,
    read_column,
    read_features,
    release_free_memory,
    resolve_inputs,
    source_rows,
    source_schema,
    write_parts,
    write_with_columns,
)

TASKS = ("filter", "selftrain", "pu")


@dataclass
class LabelingResult:
    """Everything one run produced: the added columns, the fitted estimator and a summary."""

    task: str
    added: pa.Table
    estimator: Any
    plan: FeaturePlan
    labels: pa.ChunkedArray
    X: np.ndarray
    summary: dict[str, Any] = field(default_factory=dict)
    encoder: Any = None


# ---------------------------------------------------------------------------
# Labels
# ---------------------------------------------------------------------------


def _value_type(t: pa.DataType) -> pa.DataType:
    return t.value_type if pa.types.is_dictionary(t) else t


def _label_values(labels: pa.ChunkedArray, name: str) -> pa.ChunkedArray:
    t = labels.type
    vt = _value_type(t)
    if pa.types.is_nested(vt) or pa.types.is_binary(vt) or pa.types.is_large_binary(vt):
        raise DataError(f"label column '{name}' holds {t}; labels must be scalars (numbers, text or booleans).")
    return labels.cast(vt) if pa.types.is_dictionary(t) else labels


def encode_labels(labels: pa.ChunkedArray, *, name: str = "label", minus_one_unlabeled: bool = False):
    """Label column → ``(codes, classes)``: int64 codes into the sorted ``classes``, ``-1`` where unlabeled.

    Nulls are unlabeled; with ``minus_one_unlabeled`` so is the number ``-1``.

    Examples
    --------
    >>> import pyarrow as pa
    >>> codes, classes = encode_labels(pa.chunked_array([["b", None, "a", "b"]]))
    >>> codes.tolist(), classes.to_pylist()
    ([1, -1, 0, 1], ['a', 'b'])
    """
    values = _label_values(labels, name)
    if minus_one_unlabeled and (pa.types.is_integer(values.type) or pa.types.is_floating(values.type)):
        values = pc.if_else(pc.equal(values, -1), pa.scalar(None, values.type), values)
    classes = pc.drop_null(pc.unique(values))
    classes = classes.take(pc.array_sort_indices(classes))
    codes = pc.index_in(values, value_set=classes).fill_null(-1)
    return codes.to_numpy().astype(np.int64), classes


def decode_labels(codes: np.ndarray, classes: pa.Array, label_type: pa.DataType) -> pa.Array:
    """Inverse of :func:`encode_labels`, in the label column's own type (``-1`` → null)."""
    codes = np.asarray(codes, dtype=np.int64)
    idx = pa.array(codes, mask=codes < 0)
    out = classes.take(idx)
    return out.cast(label_type) if out.type != label_type else out


def _coerce_value(value: Any, t: pa.DataType, what: str) -> pa.Scalar:
    vt = _value_type(t)
    try:
        if isinstance(value, str) and pa.types.is_boolean(vt):
            low = value.strip().lower()
            if low not in {"true", "false", "1", "0", "yes", "no"}:
                raise ValueError(value)
            return pa.scalar(low in {"true", "1", "yes"})
        return pa.scalar(value).cast(vt)
    except (pa.ArrowInvalid, pa.ArrowNotImplementedError, ValueError) as exc:
        raise OptionError(f"{what} {value!r} is not a valid value for a label column of type {vt}.") from exc


def _default_negative(positive: pa.Scalar) -> Any:
    p = positive.as_py()
    if isinstance(p, bool):
        return not p
    if isinstance(p, (int, float)):
        return 0 if p != 0 else -1
    return "negative" if p != "negative" else "not_negative"


# ---------------------------------------------------------------------------
# Progress of a fit: the phases the training loops report
# ---------------------------------------------------------------------------


@contextlib.contextmanager
def _report_phases(progress: ProgressFn | None, stage: str = "training") -> Iterator[None]:
    """Hand the phases of the fits in the ``with`` block (:mod:`labelclean._progress`) to ``progress``.

    A ``progress`` with an ``on_event(stage, event)`` method (the command line's displays) gets
    every :class:`labelclean._progress.Event`; any other ``progress(stage, done, total)`` is
    called as ``progress("training: co-teaching", steps_done, steps_total)``, one stage per phase.
    """
    if progress is None:
        yield
        return
    from . import _progress

    on_event = getattr(progress, "on_event", None)
    if callable(on_event):

        def listener(event: _progress.Event) -> None:
            on_event(stage, event)

    else:

        def listener(event: _progress.Event) -> None:
            progress(f"{stage}: {event.phase}", event.done, event.total)

    with _progress.reporting(listener):
        yield


# ---------------------------------------------------------------------------
# The three tasks
# ---------------------------------------------------------------------------


#: Task -> (module, class) of its estimator.
_ESTIMATORS = {
    "filter": ("coteaching", "CoTeachingFilter"),
    "selftrain": ("self_training", "SelfTrainer"),
    "pu": ("pu", "PUClassifier"),
    "contrastive": ("contrastive", "ContrastiveEncoder"),
}


def _estimator_class(task: str) -> type:
    """The estimator class of ``task`` (imports it, and with it PyTorch)."""
    import importlib

    module, name = _ESTIMATORS[task]
    return getattr(importlib.import_module(f".{module}", __package__), name)


def _parameter_names(task: str) -> set[str]:
    """The constructor parameters of ``task``'s estimator, read from its source without importing it.

    Checking ``--set`` names this way answers a misspelt name at once, before PyTorch loads.
    Falls back to importing the class where the source is not available (e.g. a zip install).
    """
    import ast
    import importlib.util

    module, name = _ESTIMATORS[task]
    spec = importlib.util.find_spec(f".{module}", __package__)
    source = None
    if spec is not None and spec.origin is not None and spec.origin.endswith(".py"):
        try:  # the file itself: import hooks (pytest's among them) need not offer get_source
            source = Path(spec.origin).read_text(encoding="utf-8")
        except OSError:
            source = None
    if source is not None:
        for node in ast.parse(source).body:
            if isinstance(node, ast.ClassDef) and node.name == name:
                for item in node.body:
                    if isinstance(item, ast.FunctionDef) and item.name == "__init__":
                        args = item.args
                        return {a.arg for a in [*args.posonlyargs, *args.args, *args.kwonlyargs]} - {"self"}
    return set(_estimator_class(task)().get_params())


def _check_param_names(task: str, params: dict[str, Any]) -> None:
    """Raise :class:`OptionError` naming every key of ``params`` that ``task``'s estimator has no parameter for."""
    known = _parameter_names(task)
    unknown = sorted(set(params) - known)
    if unknown:
        raise OptionError(
            f"{_ESTIMATORS[task][1]} has no parameter{'s' if len(unknown) > 1 else ''} {', '.join(unknown)}; "
            f"its parameters are: {', '.join(sorted(known))}."
        )


def _make_estimator(task: str, params: dict[str, Any]) -> Any:
    """The task's estimator with ``params`` (names checked by :func:`_check_param_names` first)."""
    _check_param_names(task, params)
    return _estimator_class(task)(**params)


PRETRAIN = ("none", "contrastive")
_PRETRAIN_PREFIX = "pretrain__"
#: Parameters the encoder takes over from the estimator, so one seed or device rules the whole run.
_SHARED_WITH_ENCODER = ("device", "random_state", "n_jobs", "input_shape", "verbose")


def split_pretrain_params(params: dict[str, Any]) -> tuple[dict[str, Any], dict[str, Any]]:
    """Split ``pretrain__NAME`` entries (parameters of the encoder) from the estimator's parameters.

    Examples
    --------
    >>> split_pretrain_params({"max_epochs": 5, "pretrain__max_epochs": 10})
    ({'max_epochs': 5}, {'max_epochs': 10})
    """
    n = len(_PRETRAIN_PREFIX)
    encoder = {k[n:]: v for k, v in params.items() if k.startswith(_PRETRAIN_PREFIX)}
    return {k: v for k, v in params.items() if not k.startswith(_PRETRAIN_PREFIX)}, encoder


def _make_encoder(pretrain: str | None, estimator: Any, params: dict[str, Any]) -> Any:
    """The encoder of ``pretrain`` (None for none), with the estimator's seed, device and threads."""
    if pretrain is None or pretrain == "none":
        _check_pretrain(pretrain, params)
        return None
    _check_pretrain(pretrain, params)
    shared = {k: v for k, v in estimator.get_params().items() if k in _SHARED_WITH_ENCODER}
    return _make_estimator("contrastive", {**shared, **params})


def _check_pretrain(pretrain: str | None, params: dict[str, Any]) -> None:
    """Raise :class:`OptionError` for an unknown pretraining or encoder parameters without one."""
    if pretrain is None or pretrain == "none":
        if params:
            raise OptionError(
                f"{', '.join(_PRETRAIN_PREFIX + k for k in params)} set, but no pretraining was asked for; "
                "add --pretrain contrastive (pretrain='contrastive' in Python)."
            )
        return
    if pretrain != "contrastive":
        raise OptionError(f"unknown pretraining {pretrain!r}; use one of {', '.join(PRETRAIN)}.")
    _check_param_names("contrastive", params)


def _pretrain(encoder: Any, estimator: Any, X: np.ndarray, progress: ProgressFn | None) -> tuple[np.ndarray, float]:
    """Fit ``encoder`` on every row (labels unused) and return the embeddings the estimator will see."""
    t0 = time.perf_counter()
    with _report_phases(progress, stage="pretraining"):
        Z = encoder.fit_transform(X)
    if getattr(estimator, "input_shape", None) is not None:
        estimator.set_params(input_shape=None)  # it described the raw rows; embeddings are plain vectors
    return Z, time.perf_counter() - t0


def _fit(estimator: Any, X: np.ndarray, y: np.ndarray, progress: ProgressFn | None) -> float:
    release_free_memory()  # what reading and label encoding freed: kept off the peak of training
    t0 = time.perf_counter()
    with _report_phases(progress):
        estimator.fit(X, y)
    return time.perf_counter() - t0


def _need_two_classes(classes: pa.Array, name: str, task: str) -> None:
    if len(classes) < 2:
        raise DataError(
            f"column '{name}' holds only one label value ({classes[0].as_py()!r}); '{task}' needs at least two "
            "classes. Check --label-column."
        )


def _prepare_filter(labels: pa.ChunkedArray, name: str) -> tuple[np.ndarray, pa.Array, dict[str, Any]]:
    codes, classes = encode_labels(labels, name=name)
    if not (codes >= 0).any():
        raise DataError(f"all labels in column '{name}' are null; 'filter' needs labels to check.")
    _need_two_classes(classes, name, "filter")
    return codes, classes, {}


def _prepare_selftrain(labels: pa.ChunkedArray, name: str) -> tuple[np.ndarray, pa.Array, dict[str, Any]]:
    codes, classes = encode_labels(labels, name=name, minus_one_unlabeled=True)
    if not (codes >= 0).any():
        raise DataError(
            f"all labels in column '{name}' are null or -1; 'selftrain' needs some labeled rows to learn from."
        )
    _need_two_classes(classes, name, "selftrain")
    return codes, classes, {}


def _prepare_pu(
    labels: pa.ChunkedArray, name: str, positive: Any, negative: Any
) -> tuple[np.ndarray, pa.Array, dict[str, Any]]:
    values = _label_values(labels, name)
    if positive is None:
        raise OptionError("'pu' needs the positive label value; pass --positive VALUE (positive= in Python).")
    pos = _coerce_value(positive, labels.type, "positive label")
    neg = _coerce_value(_default_negative(pos) if negative is None else negative, labels.type, "negative label")
    y = pc.fill_null(pc.equal(values, pos), False).to_numpy(zero_copy_only=False).astype(np.int64)
    n_pos = int(y.sum())
    if n_pos == 0:
        if values.null_count == len(values):
            raise DataError(f"all labels in column '{name}' are null; 'pu' needs rows labeled {positive!r}.")
        seen = pc.drop_null(pc.unique(values)).to_pylist()[:10]
        raise DataError(f"no row of column '{name}' has the positive label {positive!r}; labels seen: {seen}.")
    if n_pos == len(y):
        raise DataError(f"every row of column '{name}' is labeled {positive!r}; 'pu' needs unlabeled rows too.")
    classes = pa.array([neg.as_py(), pos.as_py()], type=_value_type(labels.type))
    return y, classes, {"labeled_positive": n_pos}


def _run_filter(est: Any, X: np.ndarray, codes: np.ndarray, progress: ProgressFn | None):
    labeled = codes >= 0
    if labeled.all():
        seconds = _fit(est, X, codes, progress)
        return est.clean_mask_, est.pseudo_labels_, est.label_quality_, seconds, {}
    rows = np.flatnonzero(labeled)
    seconds = _fit(est, X[rows], codes[rows], progress)
    clean = np.zeros(len(codes), dtype=bool)
    pseudo = np.empty(len(codes), dtype=np.int64)
    quality = np.zeros(len(codes), dtype=np.float32)
    clean[rows], pseudo[rows], quality[rows] = est.clean_mask_, est.pseudo_labels_, est.label_quality_
    missing = np.flatnonzero(~labeled)
    pseudo[missing] = est.predict(X[missing])
    return clean, pseudo, quality, seconds, {"unlabeled": int(missing.size)}


def _run_selftrain(est: Any, X: np.ndarray, codes: np.ndarray, progress: ProgressFn | None):
    seconds = _fit(est, X, codes, progress)
    pseudo = np.asarray(est.pseudo_labels_)
    unlabeled = codes < 0
    clean = np.asarray(est.clean_mask_, dtype=bool)
    extra = {
        "unlabeled": int(unlabeled.sum()),
        "filled": int(np.sum(unlabeled & (pseudo >= 0))),
        "filled_trusted": int(np.sum(unlabeled & clean)),
    }
    return clean, pseudo, est.label_quality_, seconds, extra


def _run_pu(est: Any, X: np.ndarray, y: np.ndarray, progress: ProgressFn | None):
    seconds = _fit(est, X, y, progress)
    pseudo_pos = np.asarray(est.pseudo_labels_) == 1
    extra = {"class_prior": float(getattr(est, "class_prior_", np.nan))}
    return est.clean_mask_, pseudo_pos.astype(np.int64), est.label_quality_, seconds, extra


def run_labeling(
    task: str,
    data: Any,
    *,
    label: str = "label",
    features: Sequence[str] | None = None,
    params: dict[str, Any] | None = None,
    positive: Any = None,
    negative: Any = None,
    progress: ProgressFn | None = None,
    pretrain: str | None = None,
    pred_probs: str | Sequence[str] | None = None,
) -> LabelingResult:
    """Read ``data``, fit the task's estimator and build the added columns.

    Parameters
    ----------
    task : {"filter", "selftrain", "pu"}
    data : pandas.DataFrame, pyarrow.Table, pyarrow.parquet.ParquetFile or path
    label : str
        The label column.
    features : sequence of str or None
        Feature columns; None detects them (see :func:`labelclean.io.plan_features`).
    params : dict
        Parameters of the estimator (``CoTeachingFilter``, ``SelfTrainer`` or ``PUClassifier``);
        ``pretrain__NAME`` entries are parameters of the encoder instead.
    positive, negative
        ``pu`` only: the label value of the labeled positives, and the value written as
        ``pseudo_label`` for rows found negative (default ``0``, ``False`` or ``"negative"``).
    progress : callable or None
        ``progress(stage, done, total)`` for reading, pretraining and training.
    pretrain : {None, "none", "contrastive"}
        ``"contrastive"``: first learn features from all rows without their labels with a
        :class:`~labelclean.ContrastiveEncoder` (same seed, device and threads as the
        estimator), then fit the estimator on those embeddings.
    pred_probs : str, sequence of str or None
        ``filter`` only: your own model's out-of-sample class probabilities, as one list
        column (one list of K numbers per row) or as K number columns. Nothing is trained:
        :func:`labelclean.find_label_issues` decides the added columns. Column ``j`` is the
        ``j``-th label value in sorted order (for integer labels ``0 .. K-1``, the label
        ``j``); ``params`` are not used.

    Returns
    -------
    LabelingResult
    """
    # Everything that can be wrong with the options or the data is checked before PyTorch loads
    # and before the features are read, so a mistake is answered at once.
    params, encoder_params = _check_options(task, params, pretrain)
    source = as_source(data)
    n = _check_table(source, label)
    labels, targets, classes, prepared = _read_labels(source, task, label, positive, negative)
    if pred_probs is not None:
        if task != "filter":
            raise OptionError(f"pred_probs (--pred-probs) works with 'filter' only, not '{task}'.")
        return _label_from_probabilities(source, label, labels, targets, classes, pred_probs, n, progress)
    plan = plan_features(source, label, features)
    X, read_seconds = _read_timed(source, plan, progress)
    estimator = _make_estimator(task, params)
    encoder = _make_encoder(pretrain, estimator, encoder_params)
    X_fit, pretrain_seconds = (X, 0.0) if encoder is None else _pretrain(encoder, estimator, X, progress)
    run = {"filter": _run_filter, "selftrain": _run_selftrain, "pu": _run_pu}[task]
    clean, pseudo, quality, fit_seconds, extra = run(estimator, X_fit, targets, progress)
    added = _added_columns(clean, pseudo, quality, classes, labels.type)
    summary = _summary(task, label, n, clean, plan, plan.skipped, read_seconds, fit_seconds)
    summary.update(prepared)
    summary.update(extra)
    if task == "filter":
        summary["noise_rate"] = float(getattr(estimator, "noise_rate_", np.nan))
    if encoder is not None:
        summary.update(pretrain="contrastive", pretrain_seconds=pretrain_seconds, embedding_width=X_fit.shape[1])
    return LabelingResult(task, added, estimator, plan, labels, X, summary, encoder)


def _check_options(task: str, params: dict[str, Any] | None, pretrain: str | None) -> tuple[dict, dict]:
    """The task's name and the parameter names checked; ``params`` split into the estimator's and the encoder's."""
    if task not in TASKS:
        raise OptionError(f"unknown task {task!r}; use one of {', '.join(TASKS)}.")
    params, encoder_params = split_pretrain_params(dict(params or {}))
    _check_param_names(task, params)
    _check_pretrain(pretrain, encoder_params)
    return params, encoder_params


def _check_table(source: Any, label: str) -> int:
    """The number of rows, after checking that the label column exists and that there are rows."""
    schema = source_schema(source)
    n = source_rows(source)
    if label not in schema.names:
        raise OptionError(
            f"label column '{label}' not found; the columns are: {', '.join(schema.names)}. "
            "Name the label column with --label-column (label= in Python)."
        )
    if n == 0:
        raise DataError("the table has no rows; there is nothing to clean.")
    return n


def _read_labels(
    source: Any, task: str, label: str, positive: Any, negative: Any
) -> tuple[pa.ChunkedArray, np.ndarray, pa.Array, dict[str, Any]]:
    """The label column, read and encoded for ``task``: labels, targets, classes and facts for the summary."""
    labels = read_column(source, label)
    _label_values(labels, label)
    if task == "pu":
        targets, classes, prepared = _prepare_pu(labels, label, positive, negative)
    else:
        targets, classes, prepared = (_prepare_filter if task == "filter" else _prepare_selftrain)(labels, label)
    return labels, targets, classes, prepared


def _read_timed(source: Any, plan: FeaturePlan, progress: ProgressFn | None) -> tuple[np.ndarray, float]:
    """The feature matrix of ``plan``, and the seconds reading it took."""
    t0 = time.perf_counter()
    X = read_features(source, plan, progress=progress)
    return X, time.perf_counter() - t0


def _added_columns(
    clean: np.ndarray, pseudo: np.ndarray, quality: np.ndarray, classes: pa.Array, label_type: pa.DataType
) -> pa.Table:
    """The three columns a run adds: ``is_clean``, ``pseudo_label`` (in the label column's type), ``label_quality``."""
    return pa.table(
        {
            "is_clean": pa.array(np.asarray(clean, dtype=bool)),
            "pseudo_label": decode_labels(pseudo, classes, label_type),
            "label_quality": pa.array(np.asarray(quality, dtype=np.float32)),
        }
    )


def _summary(
    task: str,
    label: str,
    n: int,
    clean: np.ndarray,
    plan: FeaturePlan,
    skipped: dict[str, str],
    read_seconds: float,
    fit_seconds: float,
) -> dict[str, Any]:
    """What every run's summary starts with: the rows, how many were flagged, the features and the timings."""
    flagged = int(n - np.count_nonzero(clean))
    return {
        "task": task,
        "label_column": label,
        "rows": n,
        "flagged": flagged,
        "flagged_fraction": flagged / n,
        "features": plan.names,
        "skipped_columns": skipped,
        "feature_shape": list(plan.row_shape),
        "read_seconds": read_seconds,
        "fit_seconds": fit_seconds,
    }


class GivenProbabilities:
    """Stands in for a fitted estimator when the probabilities came from the user's model.

    What the report reads of a fitted estimator: ``classes_`` (the label codes), the
    estimated ``noise_rate_`` and ``class_noise_``, and ``predict_proba``, which returns its
    input: the run's feature matrix *is* the probabilities.
    """

    def __init__(self, source: str, classes: np.ndarray, noise_rate: float, class_noise: np.ndarray) -> None:
        self.source = source
        self.classes_ = classes
        self.noise_rate_ = noise_rate
        self.class_noise_ = class_noise

    def predict_proba(self, P: np.ndarray) -> np.ndarray:
        return np.asarray(P)

    def get_params(self, deep: bool = True) -> dict[str, Any]:
        return {"pred_probs": self.source}

    def __repr__(self) -> str:
        return f"probabilities from {self.source}"


def _label_from_probabilities(
    source: Any,
    label: str,
    labels: pa.ChunkedArray,
    codes: np.ndarray,
    classes: pa.Array,
    pred_probs: str | Sequence[str],
    n: int,
    progress: ProgressFn | None,
) -> LabelingResult:
    """The ``filter`` run on the user's probabilities: read them, apply the detection rule, no training."""
    names = [pred_probs] if isinstance(pred_probs, str) else list(pred_probs)
    plan, P, read_seconds = _read_probabilities(source, label, names, classes, progress)
    t0 = time.perf_counter()
    clean, pseudo, quality, estimator = _detect_on_probabilities(codes, P, names)
    added = _added_columns(clean, pseudo, quality, classes, labels.type)
    summary = _summary("filter", label, n, clean, plan, {}, read_seconds, time.perf_counter() - t0)
    summary.update(noise_rate=estimator.noise_rate_, pred_probs=names)
    labeled = codes >= 0
    if not labeled.all():
        summary["unlabeled"] = int(n - labeled.sum())
    return LabelingResult("filter", added, estimator, plan, labels, P, summary)


def _read_probabilities(
    source: Any, label: str, names: list[str], classes: pa.Array, progress: ProgressFn | None
) -> tuple[FeaturePlan, np.ndarray, float]:
    """Read the probability columns ``names``, checked against the label values: the plan, ``P`` and the seconds."""
    missing = [c for c in names if c not in source_schema(source).names]
    if missing:
        raise OptionError(
            f"probability column{'s' if len(missing) > 1 else ''} {', '.join(map(repr, missing))} not found; "
            f"the columns are: {', '.join(source_schema(source).names)}."
        )
    plan = plan_features(source, label, names)
    P, read_seconds = _read_timed(source, plan, progress)
    if P.ndim != 2:
        raise DataError(f"{', '.join(names)} must hold one list of class probabilities per row (or one column each).")
    k = len(classes)
    if P.shape[1] != k:
        raise DataError(
            f"the probabilities have {P.shape[1]} classes but column '{label}' holds {k} label values "
            f"{classes.to_pylist()[:10]}; give one probability per label value, in sorted order."
        )
    return plan, P, read_seconds


def _detect_on_probabilities(
    codes: np.ndarray, P: np.ndarray, names: list[str]
) -> tuple[np.ndarray, np.ndarray, np.ndarray, GivenProbabilities]:
    """:func:`labelclean.find_label_issues` on the labeled rows: ``clean``, ``pseudo``, ``quality`` for every row.

    An unlabeled row is not clean and gets its most probable class; the returned
    :class:`GivenProbabilities` carries the noise estimates the report reads.
    """
    from .detection import find_label_issues

    n, k = P.shape
    labeled = codes >= 0
    clean = np.zeros(n, dtype=bool)
    pseudo = np.argmax(P, axis=1).astype(np.int64)
    quality = np.zeros(n, dtype=np.float32)
    try:
        issues = find_label_issues(codes[labeled], P[labeled], classes=np.arange(k))
    except ValueError as exc:
        raise DataError(f"{', '.join(names)}: {exc}") from None
    clean[labeled] = issues["is_clean"].to_numpy()
    pseudo[labeled] = issues["pseudo_label"].to_numpy()
    quality[labeled] = issues["label_quality"].to_numpy()
    class_noise = np.array([issues.attrs["class_noise"][j] for j in range(k)])
    estimator = GivenProbabilities(", ".join(names), np.arange(k), float(issues.attrs["noise_rate"]), class_noise)
    return clean, pseudo, quality, estimator


# ---------------------------------------------------------------------------
# Public functions
# ---------------------------------------------------------------------------


def _to_frame(data: Any, added: pa.Table, label: str):
    import pandas as pd

    if isinstance(data, pd.DataFrame):
        out = data.copy()
        for name in added.column_names:
            out[name] = pd.Series(added.column(name).to_pandas().to_numpy(), index=out.index)
        with contextlib.suppress(TypeError, ValueError):  # e.g. nulls cannot become int64: keep as is
            out["pseudo_label"] = out["pseudo_label"].astype(data[label].dtype)
        return out
    source = as_source(data)
    table = source if isinstance(source, pa.Table) else source.read()
    table = table.drop_columns([c for c in added.column_names if c in table.column_names])
    for name in added.column_names:
        table = table.append_column(name, added.column(name))
    return table.to_pandas()


def filter_labels(
    data: Any,
    label: str = "label",
    features: Sequence[str] | None = None,
    *,
    pretrain: str | None = None,
    pred_probs: str | Sequence[str] | None = None,
    **params: Any,
):
    """Find wrong labels with :class:`~labelclean.CoTeachingFilter` and return the table with three columns added.

    Parameters
    ----------
    data : pandas.DataFrame, pyarrow.Table or path to a parquet file
    label : str, default="label"
        The label column. Rows whose label is null are not trained on; they get
        ``is_clean=False`` and the predicted class as ``pseudo_label``.
    features : sequence of str or None
        Feature columns; by default every other usable column (numbers, lists of numbers,
        PNG/JPEG bytes, low-cardinality text).
    pretrain : {None, "contrastive"}, default=None
        ``"contrastive"`` fits a :class:`~labelclean.ContrastiveEncoder` on the features of
        all rows (labels unused) and cleans the labels on its embeddings; its parameters go
        in as ``pretrain__NAME=value`` (e.g. ``pretrain__max_epochs=10``).
    pred_probs : str, sequence of str or None
        Your own model's out-of-sample probabilities: a list column, or one number column
        per class (in the sorted order of the label values). Nothing is trained; the
        columns come from :func:`labelclean.find_label_issues`.
    **params
        Parameters of :class:`~labelclean.CoTeachingFilter` (``forget_rate``,
        ``max_epochs``, ``method``, ``device``, ``random_state``, ...).

    Returns
    -------
    pandas.DataFrame
        Every input column unchanged, plus ``is_clean`` (bool), ``pseudo_label`` (the
        label column's type) and ``label_quality`` (float32 in [0, 1]).

    Examples
    --------
    >>> import pandas as pd
    >>> from sklearn.datasets import make_blobs
    >>> X, y = make_blobs(100, n_features=4, centers=2, random_state=0)
    >>> df = pd.DataFrame(X, columns=list("abcd")).assign(label=y)
    >>> df.loc[:9, "label"] = 1 - df.loc[:9, "label"]  # ten wrong labels
    >>> out = filter_labels(df, forget_rate=0.1, max_epochs=4, hidden_dims=(16,), random_state=0)
    >>> list(out.columns)
    ['a', 'b', 'c', 'd', 'label', 'is_clean', 'pseudo_label', 'label_quality']
    >>> int((~out.is_clean[:10]).sum()) >= 8
    True
    """
    result = run_labeling(
        "filter", data, label=label, features=features, params=params, pretrain=pretrain, pred_probs=pred_probs
    )
    return _to_frame(data, result.added, label)


def selftrain_labels(
    data: Any,
    label: str = "label",
    features: Sequence[str] | None = None,
    *,
    pretrain: str | None = None,
    **params: Any,
):
    """Fill missing labels (null or ``-1``) with :class:`~labelclean.SelfTrainer`; see :func:`filter_labels`.

    ``**params`` are parameters of ``SelfTrainer`` (``pretrain`` as in :func:`filter_labels`). Returns a DataFrame with
    ``is_clean``, ``pseudo_label`` and ``label_quality`` added.
    """
    result = run_labeling("selftrain", data, label=label, features=features, params=params, pretrain=pretrain)
    return _to_frame(data, result.added, label)


def pu_labels(
    data: Any,
    positive: Any,
    label: str = "label",
    features: Sequence[str] | None = None,
    negative: Any = None,
    *,
    pretrain: str | None = None,
    **params: Any,
):
    """Positive–unlabeled learning with :class:`~labelclean.PUClassifier`; see :func:`filter_labels`.

    Rows whose label equals ``positive`` are the labeled positives; every other row
    (including nulls) is unlabeled. ``pseudo_label`` is ``positive`` or ``negative``
    (default ``0`` for numbers, ``False`` for booleans, ``"negative"`` for text). ``pretrain``
    as in :func:`filter_labels`.
    """
    result = run_labeling(
        "pu",
        data,
        label=label,
        features=features,
        params=params,
        positive=positive,
        negative=negative,
        pretrain=pretrain,
    )
    return _to_frame(data, result.added, label)


# ---------------------------------------------------------------------------
# Parquet to parquet (the command line)
# ---------------------------------------------------------------------------


def default_output(path: str | os.PathLike) -> Path:
    """``data.parquet`` → ``data.clean.parquet`` beside it; a folder ``DIR`` → ``DIR.clean.parquet`` beside it.

    Examples
    --------
    >>> str(default_output("runs/data.csv")), str(default_output("runs/parts/"))
    ('runs/data.clean.parquet', 'runs/parts.clean.parquet')
    """
    p = Path(path)
    if p.is_dir() or os.fspath(path).endswith(("/", os.sep)):
        return p.with_name(f"{p.name}.clean.parquet")
    stem = p.name[: -len(p.suffix)] if p.suffix else p.name
    return p.with_name(f"{stem}.clean.parquet")


def _inside(path: Path, folder: Path) -> bool:
    return path.resolve().is_relative_to(folder.resolve())


def check_output(
    path: Path, *, inputs: Sequence[Path], force: bool, option: str, input_root: Path | None = None
) -> None:
    """Fail early when ``path`` cannot be written: exists without ``force``, is an input, or has no folder.

    ``input_root``: the folder read as a dataset; an output inside it would become one of its parts.
    """
    if any(path.resolve() == p.resolve() for p in inputs):
        raise OptionError(f"{option} '{path}' is the input file; labelclean never overwrites its input.")
    if input_root is not None and _inside(path, input_root):
        raise OptionError(
            f"{option} '{path}' is inside the input folder '{input_root}', where it would be read as part of the "
            "dataset; write it elsewhere."
        )
    if path.exists() and not force:
        raise OptionError(f"{option} '{path}' already exists; pass --force to overwrite it, or choose another name.")
    if path.is_dir():
        raise OptionError(f"{option} '{path}' is a folder; give a file name.")
    if not path.parent.is_dir():
        raise OptionError(f"the folder of {option} '{path}' does not exist; create it first.")


def _part_targets(
    output_dir: Path, names: Sequence[str], *, inputs: Sequence[Path], force: bool, input_root: Path | None
) -> list[Path]:
    """The files ``--output-dir`` will write, checked like :func:`check_output`."""
    if output_dir.exists() and not output_dir.is_dir():
        raise OptionError(f"--output-dir '{output_dir}' is a file; give a folder.")
    if not output_dir.exists() and not output_dir.parent.is_dir():
        raise OptionError(f"the folder of --output-dir '{output_dir}' does not exist; create it first.")
    if input_root is not None and (_inside(output_dir, input_root) or _inside(input_root, output_dir)):
        raise OptionError(
            f"--output-dir '{output_dir}' and the input folder '{input_root}' overlap; write the parts to a "
            "folder outside the input."
        )
    targets = [output_dir / part_output_name(n) for n in names]
    resolved = {p.resolve() for p in inputs}
    for target in targets:
        if target.resolve() in resolved:
            raise OptionError(f"--output-dir would overwrite the input '{target}'; choose another folder.")
    existing = [t for t in targets if t.exists()]
    if existing and not force:
        more = f" (and {len(existing) - 1} more)" if len(existing) > 1 else ""
        raise OptionError(
            f"--output-dir file '{existing[0]}'{more} already exists; pass --force to overwrite, or choose another "
            "folder."
        )
    for target in existing:
        if target.is_dir():
            raise OptionError(f"--output-dir file '{target}' is a folder; remove it or choose another folder.")
    return targets


def clean_file(
    task: str,
    input: str | os.PathLike | Sequence[str | os.PathLike],
    output: str | os.PathLike | None = None,
    *,
    output_dir: str | os.PathLike | None = None,
    label: str = "label",
    features: Sequence[str] | None = None,
    drop: bool = False,
    force: bool = False,
    report: str | os.PathLike | None = None,
    positive: Any = None,
    negative: Any = None,
    progress: ProgressFn | None = None,
    pretrain: str | None = None,
    pred_probs: str | Sequence[str] | None = None,
    **params: Any,
) -> dict[str, Any]:
    """Parquet (or CSV) in, parquet out: the whole ``labelclean filter|selftrain|pu`` run; returns the summary.

    ``input`` is a parquet or CSV file, a folder of them (hive ``key=value`` subfolders
    included), a glob or a list of paths, read as one table (see
    :func:`labelclean.io.open_dataset`: files in sorted path order, rows in file order).
    The input is never modified. The output (default ``DATA.clean.parquet``, for a folder
    ``DIR.clean.parquet`` beside it; several paths or a glob need ``output`` or
    ``output_dir``) holds every input column unchanged, in order, plus ``is_clean``,
    ``pseudo_label`` and ``label_quality`` (only the rows with ``is_clean`` when ``drop``).
    With ``output_dir``, one file per input part is written there instead, under the part's
    own name (a CSV part's ending becomes ``.parquet``). Every file is written to a temporary
    file and renamed into place, so a failed run leaves no partial file. In a ``torchrun`` job
    every process reads and trains, and rank 0 alone writes (the others return their summary
    with ``rows_written`` 0).
    """
    t0 = time.perf_counter()
    writer = is_main()
    items = [input] if isinstance(input, (str, os.PathLike)) else list(input)
    files, input_root = resolve_inputs(items)
    src_path: Path | str = Path(items[0]) if len(items) == 1 else ", ".join(map(os.fspath, items))
    # Only the writer refuses existing outputs: another process may check after rank 0 has written.
    out_path, report_path = _check_outputs(items, files, input_root, output, output_dir, report, force or not writer)
    source = as_source(items if is_dataset_input(items) else files[0])
    result = run_labeling(
        task,
        source,
        label=label,
        features=features,
        params=params,
        positive=positive,
        negative=negative,
        progress=progress,
        pretrain=pretrain,
        pred_probs=pred_probs,
    )
    if report_path is None or not writer:
        result.X = None  # only the report needs the features again: free them before writing
    written, outputs = 0, None
    if writer:
        written, outputs = _write_output(source, files, out_path, output_dir is not None, result, drop, progress)
    if report_path is not None and writer:
        options = {"label": label, "features": features, "drop": drop, "positive": positive, "negative": negative}
        parameters = {**options, "pretrain": pretrain, **params}
        if pred_probs is not None:  # nothing was trained: the estimator's parameters did not apply
            parameters = {**options, "pred_probs": pred_probs}
        _write_run_report(report_path, result, source, task, src_path, parameters, t0, out_path)
    return {
        **result.summary,
        "input": str(src_path),
        "output": str(out_path),
        "rows_written": written,
        "report": None if report_path is None or not writer else str(report_path),
        "seconds": time.perf_counter() - t0,
        **_source_facts(source, result.plan, files, outputs),
    }


def _check_outputs(
    items: Sequence[str | os.PathLike],
    files: Sequence[Path],
    input_root: Path | None,
    output: str | os.PathLike | None,
    output_dir: str | os.PathLike | None,
    report: str | os.PathLike | None,
    force: bool,
) -> tuple[Path, Path | None]:
    """The output file (or ``--output-dir`` folder) and the report, checked before anything is read or written."""
    if output is not None and output_dir is not None:
        raise OptionError("-o/--output (one file) and --output-dir (one file per part) exclude each other; pick one.")
    targets: list[Path] = []
    if output_dir is not None:
        out_path = Path(output_dir)
        targets = _part_targets(
            out_path, part_names(files, input_root), inputs=files, force=force, input_root=input_root
        )
    else:
        if output is None and (len(items) > 1 or not Path(items[0]).exists()):
            raise OptionError(
                "several inputs (or a glob) have no default output name; pass -o FILE for one output file, "
                "or --output-dir DIR for one file per input part."
            )
        out_path = Path(output) if output is not None else default_output(items[0])
        check_output(out_path, inputs=files, force=force, option="output", input_root=input_root)
    report_path = Path(report) if report is not None else None
    if report_path is not None:
        check_output(
            report_path, inputs=[*files, out_path, *targets], force=force, option="report", input_root=input_root
        )
    return out_path, report_path


def _write_output(
    source: Any,
    files: Sequence[Path],
    out_path: Path,
    per_part: bool,
    result: LabelingResult,
    drop: bool,
    progress: ProgressFn | None,
) -> tuple[int, list[tuple[Path, int]] | None]:
    """Write the input with the added columns (only the clean rows with ``drop``), each file atomically.

    ``per_part``: one file per input part in the folder ``out_path``. Returns the rows written
    and, per part, the file and its rows (None for one output file).
    """
    keep = result.added.column("is_clean").to_numpy(zero_copy_only=False) if drop else None
    if per_part:
        parts = source if isinstance(source, DatasetSource) else _single_part(source, files[0])
        outputs = write_parts(parts, out_path, result.added, keep=keep, progress=progress)
        return sum(rows for _, rows in outputs), outputs
    return write_with_columns(source, out_path, result.added, keep=keep, progress=progress), None


def _write_run_report(
    path: Path,
    result: LabelingResult,
    source: Any,
    task: str,
    src_path: Path | str,
    parameters: dict[str, Any],
    t0: float,
    out_path: Path,
) -> None:
    """Write the HTML report of the run (atomically), its header naming the input, the options and the time so far."""
    from .report import run_metadata, write_report

    meta = run_metadata(task, src_path, parameters, time.perf_counter() - t0, output=out_path)
    write_report(path, result, source=source, metadata=meta)


def _single_part(source: Any, path: Path) -> DatasetSource:
    """One parquet file as a dataset of one part, so that ``--output-dir`` writes it like any dataset."""
    return open_dataset([path]) if not isinstance(source, DatasetSource) else source


def _source_facts(
    source: Any, plan: FeaturePlan, files: Sequence[Path], outputs: list[tuple[Path, int]] | None
) -> dict[str, Any]:
    """What the summary says about the input: parts, text read as numbers, skipped columns and how to use them."""
    facts: dict[str, Any] = {
        "inputs": [str(f) for f in files],
        "read_as_numbers": plan.read_as_numbers,
        "skipped": {
            name: {
                "reason": reason,
                "include_with": None if name not in plan.include else "--features " + ",".join(plan.include[name]),
            }
            for name, reason in plan.skipped.items()
        },
        "notes": [],
    }
    if outputs is not None:
        facts["outputs"] = [{"path": str(p), "rows_written": rows} for p, rows in outputs]
    if isinstance(source, DatasetSource) and source.format == "csv":
        facts["notes"].append(
            "CSV is parsed anew on every run; convert it to parquet once (this output is parquet) for faster "
            "repeated runs."
        )
    return facts
