"""What one partition runs on a worker: read it, score it, count its statistics, write its output.

Every pass of :mod:`labelclean.cluster` is one :class:`PartStep` applied to each part by the
engine. A step holds the :class:`Job` (where the parts are, how their probabilities are
obtained, the rule's options) and the :class:`Stats` the driver has gathered so far; it
returns a few small arrays per part, which the driver sums and broadcasts with the next
pass. The per-row arithmetic is :mod:`labelclean.detection`'s own functions applied to the
part's rows, so each row gets the values it gets in the single-machine run.

The first pass keeps each part's probabilities and label codes in a staging file below the
destination (``_labelclean_tmp/proba/``), so the later passes read ``n × K`` numbers instead
of running the model again; the last pass writes each output part to
``_labelclean_tmp/out/`` (to a temporary name, renamed when complete), from where the driver
moves the finished set into place.
"""

from __future__ import annotations

import os
import tempfile
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from .. import detection as _rule
from ..api import _added_columns, _label_values
from ..io import (
    DataError,
    DatasetSource,
    FeaturePlan,
    OptionError,
    Part,
    _text_numbers,
    _write_columns,
    atomic_path,
    part_output_name,
    read_column,
    read_features,
)
from ._select import Selection, histogram, selected, sortable

#: The hidden folder below the destination that holds a run's intermediate files.
STAGING = "_labelclean_tmp"
#: Errors that mean "the data or an option is wrong": sent back as data, raised again on the driver, never retried.
USER_ERRORS = {"DataError": DataError, "OptionError": OptionError}
_READ_BUFFER = 8 << 20


@dataclass(frozen=True)
class Layout:
    """The dataset as each worker reads it, part by part, and where its outputs go."""

    root: str | None
    paths: tuple[str, ...]
    names: tuple[str, ...]
    rows: tuple[int, ...]
    schema: pa.Schema
    file_schema: pa.Schema
    partition_schema: pa.Schema | None
    dest: str

    def open(self, i: int) -> DatasetSource:
        """Part ``i`` as a one-part dataset: the dataset's unified types, its hive columns from its folder names."""
        import pyarrow.dataset as ds

        fmt = ds.ParquetFileFormat(
            default_fragment_scan_options=ds.ParquetFragmentScanOptions(
                use_buffered_stream=True, buffer_size=_READ_BUFFER, pre_buffer=False
            )
        )
        hive = None if self.partition_schema is None else ds.partitioning(self.partition_schema, flavor="hive")
        dataset = ds.dataset(
            [self.paths[i]],
            schema=self.schema,
            format=fmt,
            partitioning=hive,
            partition_base_dir=None if hive is None else self.root,
        )
        part = Part(Path(self.paths[i]), self.names[i], self.rows[i])
        return DatasetSource([part], self.schema, self.file_schema, "parquet", dataset=dataset)

    @property
    def staging(self) -> Path:
        return Path(self.dest) / STAGING

    def proba_file(self, i: int) -> Path:
        return self.staging / "proba" / f"part-{i:06d}.npz"

    def staged_output(self, i: int) -> Path:
        return self.staging / "out" / part_output_name(self.names[i])

    def target(self, i: int) -> Path:
        return Path(self.dest) / part_output_name(self.names[i])


@dataclass(frozen=True)
class ModelScores:
    """Probabilities from a fitted estimator, shipped as the bytes of its ``save`` file and rebuilt with ``load``.

    ``columns``: the DataFrame columns of an estimator fitted on a DataFrame (its fitted table
    plan encodes them); otherwise ``plan`` reads the features as ``labelclean filter`` does.
    """

    model: bytes
    plan: FeaturePlan | None
    columns: tuple[str, ...] | None
    n_features: int
    device: str | None = None

    def load(self) -> Any:
        """The estimator, rebuilt from its file with ``load`` (``torch.load(weights_only=True)``: no pickle)."""
        from .._base import TorchEstimatorMixin

        fd, name = tempfile.mkstemp(suffix=".pt")
        try:
            with os.fdopen(fd, "wb") as fh:
                fh.write(self.model)
            return TorchEstimatorMixin.load(name, device=self.device)
        finally:
            os.unlink(name)

    def read(self, model: Any, source: DatasetSource, part: str) -> np.ndarray:
        if self.columns is not None:
            X = source.read(list(self.columns)).to_pandas()
        else:
            X = _read_part_features(source, self.plan, part)
            if X.ndim > 2 and X.shape[1] != self.n_features:
                X = X.reshape(len(X), -1)  # fitted on flat rows (with input_shape=)
        return np.asarray(model.predict_proba(X), dtype=np.float32)


@dataclass(frozen=True)
class ColumnScores:
    """Probabilities the data already hold: a list column, or one number column per class."""

    plan: FeaturePlan

    def read(self, model: Any, source: DatasetSource, part: str) -> np.ndarray:
        return _read_part_features(source, self.plan, part)


def _read_part_features(source: DatasetSource, plan: FeaturePlan, part: str) -> np.ndarray:
    """The part's rows of the (driver's) feature plan, as one float32 array."""
    _check_no_missing(source, plan, part)
    return read_features(source, replace(plan, n_rows=source.num_rows))


def _check_no_missing(source: DatasetSource, plan: FeaturePlan, part: str) -> None:
    """Refuse missing numbers: one machine fills them with the column's mean, which a part cannot know."""
    for c in plan.columns:
        if c.kind != "numeric":
            continue
        col = read_column(source, c.name)
        if c.from_text:
            parsed = _text_numbers(col)
            col = pa.chunked_array([pa.nulls(len(col))]) if parsed is None else parsed
        if col.null_count:
            raise DataError(
                f"column '{c.name}' has {col.null_count} missing values in part '{part}'; a cluster run does not fill "
                "them (the fill, a mean, would depend on the partitioning). Fill them in the data first, or fit the "
                "estimator on a pandas DataFrame, whose fitted table plan fills them the same way on every worker."
            )


@dataclass(frozen=True)
class Job:
    """Everything the parts need besides the statistics: the layout, the labels, the probabilities, the rule."""

    layout: Layout
    label: str
    classes: pa.Array
    label_type: pa.DataType
    scores: ModelScores | ColumnScores
    flag: str = "rank"
    relabel_threshold: float = _rule.RELABEL_THRESHOLD
    drop: bool = False


@dataclass(frozen=True)
class Stats:
    """What the driver has learnt so far, broadcast with each pass (see :func:`labelclean.cluster._driver`)."""

    normalize: bool = False
    labels: np.ndarray | None = None
    thresholds: np.ndarray | None = None
    calibration_step: int = 1
    offsets: np.ndarray | None = None
    joint: np.ndarray | None = None
    temperature: float = 1.0
    selection: Selection | None = None
    round: int = 0
    take: list[np.ndarray] = field(default_factory=list)


class PartStep:
    """One pass over the parts: ``step(i)`` runs it on part ``i`` and returns a dict of small arrays.

    ``stateful`` steps (the scoring pass with a model) call :meth:`setup` once per worker
    before their first part, so the model is rebuilt once per worker, not once per part.
    A :class:`~labelclean.io.DataError` or :class:`~labelclean.io.OptionError` comes back as
    an ``error`` entry (a wrong input fails the same way on every attempt: nothing to retry),
    which the driver raises again.
    """

    def __init__(self, kind: str, job: Job, stats: Stats) -> None:
        self.kind, self.job, self.stats = kind, job, stats
        self.stateful = kind == "score" and isinstance(job.scores, ModelScores)
        self._model = None

    def __getstate__(self) -> dict[str, Any]:
        return {**self.__dict__, "_model": None}  # a loaded model never travels

    def setup(self) -> None:
        if self.stateful and self._model is None:
            self._model = self.job.scores.load()

    def __call__(self, i: int) -> dict[str, np.ndarray]:
        try:
            if self.stateful:
                self.setup()
            return _STEPS[self.kind](self.job, self.stats, i, self._model)
        except (DataError, OptionError) as exc:
            return {"error": np.array([type(exc).__name__, str(exc)])}


def raise_errors(results: list[dict[str, np.ndarray]]) -> None:
    """Raise the first error a part sent back (:class:`PartStep`)."""
    for result in results:
        if "error" in result:
            kind, message = (str(v) for v in result["error"])
            raise USER_ERRORS[kind](message)


# ---------------------------------------------------------------------------
# The passes
# ---------------------------------------------------------------------------


def _label_codes(job: Job, source: DatasetSource, part: str) -> np.ndarray:
    """The part's labels as codes into ``job.classes`` (``-1`` for null); a value outside them is an error."""
    values = _label_values(read_column(source, job.label), job.label)
    codes = pc.index_in(values, value_set=job.classes)
    unknown = pc.and_(pc.is_null(codes), pc.is_valid(values))
    if pc.any(unknown).as_py():
        row = int(np.argmax(unknown.to_numpy(zero_copy_only=False)))
        raise DataError(
            f"label {values[row].as_py()!r} (row {row} of part '{part}') is not one of the classes "
            f"{job.classes.to_pylist()[:10]}; the model knows only those (refit it with every label value)."
        )
    return codes.fill_null(-1).to_numpy().astype(np.int64)


def label_values(job: Job, stats: Stats, i: int, model: Any) -> dict[str, np.ndarray]:
    """Pass 0 (probabilities from columns only): the part's distinct labels, as Arrow IPC bytes."""
    values = _label_values(read_column(job.layout.open(i), job.label), job.label)
    table = pa.table({"value": pc.drop_null(pc.unique(values))})
    sink = pa.BufferOutputStream()
    with pa.ipc.new_stream(sink, table.schema) as writer:
        writer.write_table(table)
    return {"values": np.frombuffer(sink.getvalue(), dtype=np.uint8)}


def read_values(data: np.ndarray) -> pa.Array:
    """The labels :func:`label_values` sent."""
    return pa.ipc.open_stream(pa.py_buffer(data.tobytes())).read_all().column("value").combine_chunks()


def _check_probabilities(p: np.ndarray, k: int, part: str) -> None:
    if p.ndim != 2 or p.shape[1] != k:
        raise DataError(
            f"part '{part}' gives {p.shape[1] if p.ndim == 2 else p.shape} class probabilities per row, but there are "
            f"{k} classes; give one probability per label value, in sorted order."
        )
    bad = ~np.isfinite(p).all(axis=1) | (p < 0).any(axis=1)
    if bad.any():
        raise DataError(
            f"the probabilities of part '{part}' hold negative, NaN or infinite values (first at row "
            f"{int(np.argmax(bad))}); pass probabilities in [0, 1] (apply a softmax to logits first)."
        )


def score(job: Job, stats: Stats, i: int, model: Any) -> dict[str, np.ndarray]:
    """Pass 1: the part's probabilities and codes, kept for the later passes; per class, label counts and the sums
    of the given label's probability, raw and divided by the row sums (which ones count is decided globally)."""
    layout, k = job.layout, len(job.classes)
    source = layout.open(i)
    codes = _label_codes(job, source, layout.names[i])
    P = job.scores.read(model, source, layout.names[i])
    _check_probabilities(P, k, layout.names[i])
    path = layout.proba_file(i)
    path.parent.mkdir(parents=True, exist_ok=True)
    with atomic_path(path) as tmp, open(tmp, "wb") as fh:
        np.savez(fh, codes=codes, proba=P)
    y, p = codes[codes >= 0], P[codes >= 0]
    sums = p.sum(axis=1)
    with np.errstate(divide="ignore", invalid="ignore"):
        own, own_scaled = p[np.arange(len(y)), y], p[np.arange(len(y)), y] / sums
    return {
        "labels": np.bincount(y, minlength=k),
        "sums": np.bincount(y, weights=own, minlength=k),
        "sums_scaled": np.bincount(y, weights=np.nan_to_num(own_scaled), minlength=k),
        "deviation": np.array([np.abs(sums - 1.0).max() if len(y) else 0.0]),
        "zero_row": np.array([int(np.argmax(sums <= 0)) if (sums <= 0).any() else -1]),
    }


def _labeled(job: Job, stats: Stats, i: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """The part's staged codes and probabilities, and its labeled rows' probabilities (divided by their sums where
    the run normalises, as :func:`labelclean.find_label_issues` does)."""
    with np.load(job.layout.proba_file(i), allow_pickle=False) as staged:
        codes, P = staged["codes"], staged["proba"]
    p = P[codes >= 0]
    if stats.normalize:
        p = p / p.sum(axis=1)[:, None]
    return codes, P, p


def joint(job: Job, stats: Stats, i: int, model: Any) -> dict[str, np.ndarray]:
    """Pass 2: the part's confident-joint counts at the global thresholds, and its rows of the calibration sample."""
    codes, _, p = _labeled(job, stats, i)
    y = codes[codes >= 0]
    counts = _rule.confident_joint(y, p, stats.thresholds)
    sample = (stats.offsets[i] + np.arange(len(y))) % stats.calibration_step == 0
    return {"counts": counts, "sample_proba": p[sample], "sample_labels": y[sample]}


@dataclass(frozen=True)
class _Verdict:
    """A part's labeled rows as the rule sees them at the global joint."""

    y: np.ndarray
    p: np.ndarray
    best: np.ndarray
    quality: np.ndarray
    strong: np.ndarray
    keys: np.ndarray | None
    groups: np.ndarray | None
    margin: np.ndarray | None


def _verdict(job: Job, stats: Stats, i: int) -> tuple[np.ndarray, np.ndarray, _Verdict]:
    codes, P, p = _labeled(job, stats, i)
    y = codes[codes >= 0]
    shifted = _rule._shift(np.array(p, dtype=np.float32), stats.joint)
    best = np.argmax(shifted, axis=1)
    noise = _rule.noise_matrix(stats.joint)
    quality, strong = _rule._posterior_at(y, shifted, best, noise, job.relabel_threshold)
    keys = groups = margin = None
    if job.flag == "rank":
        keys, groups = sortable(quality), np.zeros(len(y), dtype=np.int64)
    elif job.flag == "class_noise":
        margin = _rule._margins(y, shifted)
        keys, groups = sortable(margin, descending=True), y
    return codes, P, _Verdict(y, p, best, quality, strong, keys, groups, margin)


def select(job: Job, stats: Stats, i: int, model: Any) -> dict[str, np.ndarray]:
    """A selection pass: the histogram of the part's keys still in play (:mod:`labelclean.cluster._select`)."""
    _, _, v = _verdict(job, stats, i)
    cells, counts = histogram(v.keys, v.groups, stats.selection, stats.round)
    return {"cells": cells, "counts": counts}


def _flagged(job: Job, stats: Stats, i: int, v: _Verdict) -> np.ndarray:
    """Step 3 of :func:`labelclean.detection.detect` on the part's rows, with the global cuts."""
    if job.flag == "disagreement":
        return v.best != v.y
    chosen = selected(v.keys, v.groups, stats.selection, stats.take[i])
    return chosen & (v.margin > 0) if job.flag == "class_noise" else chosen & (v.best != v.y)


def write(job: Job, stats: Stats, i: int, model: Any) -> dict[str, np.ndarray]:
    """The last pass: the part's ``is_clean``, ``pseudo_label`` and ``label_quality``, written with its columns."""
    codes, P, v = _verdict(job, stats, i)
    flagged = _flagged(job, stats, i, v)
    pseudo_l = _rule._pseudo_labels(
        v.y, v.p, v.best, flagged, v.strong, stats.joint, stats.temperature, job.relabel_threshold
    )
    labeled = codes >= 0
    clean = np.zeros(len(codes), dtype=bool)
    pseudo = np.argmax(P, axis=1).astype(np.int64)  # unlabeled rows: the most probable class
    quality = np.zeros(len(codes), dtype=np.float32)
    clean[labeled], pseudo[labeled], quality[labeled] = ~flagged, pseudo_l, np.clip(v.quality, 0.0, 1.0)
    added = _added_columns(clean, pseudo, quality, job.classes, job.label_type)
    target = job.layout.staged_output(i)
    target.parent.mkdir(parents=True, exist_ok=True)
    part = job.layout.open(i).part(0, file_columns=True)
    with atomic_path(target) as tmp:
        written = _write_columns(part, tmp, added, keep=clean if job.drop else None, batch_rows=16_384, progress=None)
    return {"written": np.array([written]), "clean": np.array([int(clean.sum())])}


_STEPS = {"classes": label_values, "score": score, "joint": joint, "select": select, "write": write}


def encode(result: dict[str, np.ndarray]) -> bytes:
    """A part's result as bytes (an ``.npz`` archive) for the engines that move bytes."""
    import io

    buffer = io.BytesIO()
    np.savez(buffer, **result)
    return buffer.getvalue()


def decode(data: bytes) -> dict[str, np.ndarray]:
    import io

    with np.load(io.BytesIO(data), allow_pickle=False) as archive:
        return {name: archive[name] for name in archive.files}
