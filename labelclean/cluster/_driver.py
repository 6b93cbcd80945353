"""The driver of a cluster run: checks, the passes in order, the global statistics between them, the commit.

The statistics the rule needs over all rows, gathered pass by pass and broadcast with the next:

1. ``score``: per class, the number of labeled rows and the sum of their given label's
   probability, hence the per-class thresholds (:func:`labelclean.detection.per_class_thresholds`);
   whether any row's probabilities stray from 1 (then every row is divided by its sum, as
   :func:`labelclean.find_label_issues` does); each part's offset among the labeled rows;
2. ``joint``: the confident-joint counts at those thresholds, hence the joint and the noise
   matrix (:func:`labelclean.detection.estimate_joint`), and the evenly spaced rows the
   calibration temperature is fitted on (:func:`labelclean.detection.calibrate`);
3. ``select`` (``flag="rank"`` or ``"class_noise"``): the exact cut of the rows to flag
   (:mod:`labelclean.cluster._select`), two passes;
4. ``write``: each part's output, from its rows and the global statistics.
"""

from __future__ import annotations

import os
import shutil
import time
import warnings
from dataclasses import replace
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from .. import detection as _rule
from ..io import (
    DataError,
    DatasetSource,
    OptionError,
    atomic_path,
    open_dataset,
    part_output_name,
    plan_features,
    resolve_inputs,
)
from ._parts import ColumnScores, Job, Layout, ModelScores, PartStep, Stats, raise_errors, read_values
from ._select import ROUNDS, Selection

#: The file written into the destination when every part is in place (Spark's convention).
SUCCESS = "_SUCCESS"
FLAGS = ("rank", "class_noise", "disagreement")


# ---------------------------------------------------------------------------
# Checks, before anything is written
# ---------------------------------------------------------------------------


def check_rule(flag: str, relabel_threshold: float) -> None:
    if flag not in FLAGS:
        raise OptionError(f"flag must be 'rank', 'class_noise' or 'disagreement', got {flag!r}.")
    if not (isinstance(relabel_threshold, (int, float)) and 0.0 <= relabel_threshold <= 1.0):
        raise OptionError(f"relabel_threshold must be a number in [0, 1], got {relabel_threshold!r}.")


def open_parts(source: Any) -> tuple[DatasetSource, Path | None]:
    """The parquet dataset ``source`` names (a folder, a glob, a file or a list of them) and its root folder."""
    if not isinstance(source, (str, os.PathLike, list, tuple)):
        raise OptionError(
            f"source must be a parquet folder, file, glob or list of paths, not {type(source).__name__}; a cluster "
            "run reads the parts where the workers can reach them."
        )
    _, root = resolve_inputs(source)
    dataset = open_dataset(source)
    if dataset.format != "parquet":
        raise OptionError(
            f"'{dataset.parts[0].path}' is CSV; the cluster engines read parquet. Convert the parts once, e.g. "
            "pyarrow.csv.read_csv(path) then pyarrow.parquet.write_table(table, path.with_suffix('.parquet'))."
        )
    return dataset, root


def check_label(dataset: DatasetSource, label: str) -> pa.DataType:
    """The label column's type, after checking that it exists and that there are rows."""
    if label not in dataset.schema.names:
        raise OptionError(
            f"label column '{label}' not found; the columns are: {', '.join(dataset.schema.names)}. "
            "Name the label column with label=."
        )
    if dataset.num_rows == 0:
        raise DataError("the dataset has no rows; there is nothing to clean.")
    return dataset.schema.field(label).type


def layout(dataset: DatasetSource, root: Path | None, dest: Any, overwrite: bool) -> Layout:
    """Where the workers read and write, after checking the destination folder."""
    dest = Path(dest)
    _check_dest(dest, dataset, root, overwrite)
    partitioning = getattr(dataset._dataset, "partitioning", None)
    hive = partitioning.schema if type(partitioning).__name__ == "HivePartitioning" else None
    return Layout(
        root=None if root is None else os.fspath(root),
        paths=tuple(os.fspath(p.path) for p in dataset.parts),
        names=tuple(p.name for p in dataset.parts),
        rows=tuple(p.rows for p in dataset.parts),
        schema=dataset.schema,
        file_schema=dataset.file_schema,
        partition_schema=hive,
        dest=os.fspath(dest),
    )


def _check_dest(dest: Path, dataset: DatasetSource, root: Path | None, overwrite: bool) -> None:
    if dest.exists() and not dest.is_dir():
        raise OptionError(f"dest '{dest}' is a file; give a folder for the output parts.")
    if not dest.exists() and not dest.parent.is_dir():
        raise OptionError(f"the folder of dest '{dest}' does not exist; create it first.")
    _check_overlap(dest.resolve(), dataset, root)
    if dest.is_dir() and any(dest.iterdir()) and not overwrite:
        raise OptionError(
            f"dest '{dest}' already exists and is not empty; pass overwrite=True to replace the parts this run "
            "writes, or choose another folder."
        )


def _check_overlap(dest: Path, dataset: DatasetSource, root: Path | None) -> None:
    """No output may be an input, nor (for a folder read as a dataset) land inside it, where it would become a part."""
    if root is not None:
        folder = root.resolve()
        if dest.is_relative_to(folder) or folder.is_relative_to(dest):
            raise OptionError(
                f"dest '{dest}' and the input folder '{root}' overlap; write the output parts to a folder outside "
                "the input."
            )
        return
    inputs = {p.path.resolve() for p in dataset.parts}
    for part in dataset.parts:
        if (dest / part_output_name(part.name)).resolve() in inputs:
            raise OptionError(f"dest '{dest}' would overwrite the input '{part.path}'; choose another folder.")


def model_bytes(model: Any) -> tuple[Any, bytes]:
    """A fitted classifier and the bytes of its ``save`` file, from the estimator or the path of such a file."""
    import tempfile

    from sklearn.exceptions import NotFittedError
    from sklearn.utils.validation import check_is_fitted

    from .._base import TorchEstimatorMixin

    if isinstance(model, (str, os.PathLike)):
        estimator = TorchEstimatorMixin.load(model, device="cpu")  # checks the file: a labelclean model, intact
        data = Path(model).read_bytes()
    else:
        if not callable(getattr(model, "save", None)):
            raise OptionError(
                f"model must be a fitted labelclean estimator or the path of one saved with .save(path), not "
                f"{type(model).__name__}."
            )
        try:
            check_is_fitted(model)
        except NotFittedError:
            raise OptionError(
                f"the {type(model).__name__} is not fitted; call fit(X, y) first, or pass the path of a model saved "
                "with .save(path)."
            ) from None
        with tempfile.TemporaryDirectory() as folder:
            data = model.save(Path(folder) / "model.pt").read_bytes()
        estimator = model
    if not hasattr(estimator, "classes_") or not callable(getattr(estimator, "predict_proba", None)):
        raise OptionError(
            f"the model is a {type(estimator).__name__}, which gives no class probabilities; pass a fitted "
            "CoTeachingFilter, SelfTrainer or PUClassifier."
        )
    return estimator, data


def model_classes(estimator: Any, label: str, label_type: pa.DataType) -> pa.Array:
    """The model's classes as label values of the label column's type."""
    value_type = label_type.value_type if pa.types.is_dictionary(label_type) else label_type
    try:
        return pa.array(estimator.classes_.tolist()).cast(value_type)
    except (pa.ArrowInvalid, pa.ArrowTypeError, pa.ArrowNotImplementedError) as exc:
        raise OptionError(
            f"the model's classes {estimator.classes_[:10].tolist()} cannot be read as values of column '{label}' "
            f"({value_type}); check label= (the model must have been fitted on labels like these)."
        ) from exc


def model_scores(
    estimator: Any, data: bytes, dataset: DatasetSource, label: str, features: Any, device: str | None
) -> ModelScores:
    """How each part turns into the model's input: the DataFrame columns it was fitted on, or labelclean's reading."""
    n_features = int(getattr(estimator, "n_features_in_", 0))
    names = getattr(estimator, "feature_names_in_", None)
    if names is not None:
        columns = [str(c) for c in names]
        if features is not None and list(features) != columns:
            raise OptionError(
                f"the model was fitted on the DataFrame columns {columns}; leave features= out (they are read by "
                "name) or name exactly those."
            )
        missing = [c for c in columns if c not in dataset.schema.names]
        if missing:
            raise OptionError(
                f"the model was fitted on column{'s' if len(missing) > 1 else ''} {', '.join(map(repr, missing))}, "
                f"which the data do not have; the columns are: {', '.join(dataset.schema.names)}."
            )
        return ModelScores(data, None, tuple(columns), n_features, device)
    plan = plan_features(dataset, label, features)
    text = [c.name for c in plan.columns if c.kind == "onehot"]
    if text:
        raise OptionError(
            f"feature column{'s' if len(text) > 1 else ''} {', '.join(map(repr, text))} hold text; a model fitted on "
            "arrays does not know which category each of its columns was. Fit it on a pandas DataFrame (its fitted "
            "table plan encodes text the same way on every worker), or leave those columns out with features=."
        )
    shape = tuple(getattr(estimator, "input_shape_", ()))
    if int(np.prod(plan.row_shape)) != int(np.prod(shape)):
        raise DataError(
            f"the features {plan.names} give {int(np.prod(plan.row_shape))} numbers per row, but the model was fitted "
            f"on rows of shape {shape}; name the columns it was fitted on with features=."
        )
    return ModelScores(data, plan, None, n_features, device)


def column_scores(dataset: DatasetSource, label: str, pred_probs: Any) -> ColumnScores:
    """How each part's probabilities are read: one list column, or one number column per class."""
    names = [pred_probs] if isinstance(pred_probs, str) else list(pred_probs)
    missing = [c for c in names if c not in dataset.schema.names]
    if missing:
        raise OptionError(
            f"probability column{'s' if len(missing) > 1 else ''} {', '.join(map(repr, missing))} not found; "
            f"the columns are: {', '.join(dataset.schema.names)}."
        )
    plan = plan_features(dataset, label, names)
    if len(plan.row_shape) != 1:
        raise DataError(f"{', '.join(names)} must hold one list of class probabilities per row (or one column each).")
    return ColumnScores(plan)


def check_classes(classes: pa.Array, scores: ColumnScores, label: str) -> None:
    """The label values found in the data against the probabilities' width (as ``labelclean filter --pred-probs``)."""
    if len(classes) < 2:
        raise DataError(
            f"column '{label}' holds {len(classes)} label value{'s' if len(classes) != 1 else ''} "
            f"{classes.to_pylist()}; cleaning needs at least two classes. Check label=."
        )
    k = int(scores.plan.row_shape[0])
    if k != len(classes):
        raise DataError(
            f"the probabilities have {k} classes but column '{label}' holds {len(classes)} label values "
            f"{classes.to_pylist()[:10]}; give one probability per label value, in sorted order."
        )


# ---------------------------------------------------------------------------
# The run
# ---------------------------------------------------------------------------


def dataset_classes(job: Job, engine: Any) -> pa.Array:
    """Pass 0: the sorted distinct labels of all parts (when no model says what the classes are)."""
    results = engine.map(PartStep("classes", job, Stats()), len(job.layout.paths))
    raise_errors(results)
    values = pa.concat_arrays([read_values(r["values"]) for r in results]) if results else pa.array([])
    classes = pc.unique(values)
    return classes.take(pc.array_sort_indices(classes))


def run(job: Job, engine: Any) -> dict[str, Any]:
    """All the passes of ``job`` on ``engine``; the output parts moved into place only when every one is written."""
    t0 = time.perf_counter()
    lay, n = job.layout, len(job.layout.paths)
    dest = Path(lay.dest)
    made = not dest.exists()
    dest.mkdir(exist_ok=True)
    (dest / SUCCESS).unlink(missing_ok=True)
    shutil.rmtree(lay.staging, ignore_errors=True)
    try:
        stats = _after_score(job, _map(engine, "score", job, Stats(), n))
        light = replace(job, scores=None)  # the model travels with the first pass only
        stats = _after_joint(stats, _map(engine, "joint", light, stats, n))
        stats = _cuts(light, stats, engine, n)
        written = _map(engine, "write", light, stats, n)
        outputs = _commit(lay, written)
    except BaseException:
        shutil.rmtree(lay.staging, ignore_errors=True)
        if made:
            _remove_empty(dest)
        raise
    shutil.rmtree(lay.staging, ignore_errors=True)
    return _summary(job, stats, written, outputs, engine, time.perf_counter() - t0)


def _map(engine: Any, kind: str, job: Job, stats: Stats, n: int) -> list[dict[str, np.ndarray]]:
    results = engine.map(PartStep(kind, job, stats), n)
    if len(results) != n:
        raise RuntimeError(f"the engine returned {len(results)} results for {n} parts in the '{kind}' pass.")
    raise_errors(results)
    return results


def _ordered_sum(results: list[dict[str, np.ndarray]], name: str) -> np.ndarray:
    total = results[0][name].copy()
    for r in results[1:]:
        total = total + r[name]  # in part order, so that reruns add in the same order
    return total


def _after_score(job: Job, results: list[dict[str, np.ndarray]]) -> Stats:
    labels = _ordered_sum(results, "labels")
    n = int(labels.sum())
    if n == 0:
        raise DataError(f"all labels in column '{job.label}' are null; there is nothing to check.")
    deviation = max(float(r["deviation"][0]) for r in results)
    normalize = deviation > 1e-3  # as labelclean.find_label_issues: then every row is divided by its sum
    if normalize:
        _check_rows_sum(job, results)
    sums = _ordered_sum(results, "sums_scaled" if normalize else "sums")
    per_part = np.array([int(r["labels"].sum()) for r in results], dtype=np.int64)
    return Stats(
        normalize=normalize,
        thresholds=np.where(labels > 0, sums / np.maximum(labels, 1), 1.0),
        calibration_step=max(1, n // _rule.CALIBRATION_ROWS),
        offsets=np.concatenate([[0], np.cumsum(per_part)[:-1]]),
        labels=labels,
    )


def _check_rows_sum(job: Job, results: list[dict[str, np.ndarray]]) -> None:
    for i, r in enumerate(results):
        if int(r["zero_row"][0]) >= 0:
            raise DataError(
                f"labeled row {int(r['zero_row'][0])} of part '{job.layout.names[i]}' has probabilities that are all "
                "zeros; every row needs a probability."
            )
    warnings.warn(
        "the probabilities' rows do not all sum to 1; they were divided by their sums. Pass probabilities (a softmax "
        "of the logits), not scores.",
        UserWarning,
        stacklevel=4,
    )


def _after_joint(stats: Stats, results: list[dict[str, np.ndarray]]) -> Stats:
    joint = _rule.joint_from_counts(_ordered_sum(results, "counts"), stats.labels)
    proba = np.concatenate([r["sample_proba"] for r in results])
    sample = np.concatenate([r["sample_labels"] for r in results]).astype(np.int64)
    beta = _rule._inverse_temperature(np.log(np.clip(proba, 1e-7, 1.0), dtype=np.float64), sample)
    return replace(stats, joint=joint, temperature=1.0 / beta)


def _cuts(job: Job, stats: Stats, engine: Any, n: int) -> Stats:
    """The selection passes of ``flag="rank"`` and ``"class_noise"``: each part's rows to flag, exactly."""
    if job.flag == "disagreement":
        return stats
    labels, joint = stats.labels, stats.joint
    if job.flag == "rank":
        total = int(labels.sum())
        count, size = [int(round(float(np.clip(1.0 - np.trace(joint), 0.0, 1.0)) * total))], [total]
    else:
        noise = _rule.class_noise(joint)
        count, size = [int(round(float(noise[i]) * int(labels[i]))) for i in range(len(labels))], labels
    sel = Selection.start(np.array(count), np.array(size))
    if not sel.open.any():
        return replace(stats, selection=sel, take=[np.zeros(len(count), dtype=np.int64)] * n)
    for r in range(ROUNDS):
        results = _map(engine, "select", job, replace(stats, selection=sel, round=r), n)
        hists = [(res["cells"], res["counts"]) for res in results]
        sel = sel.narrow(hists, r)
    return replace(stats, selection=sel, take=sel.ties_per_part(hists))


def _commit(lay: Layout, written: list[dict[str, np.ndarray]]) -> list[tuple[Path, int]]:
    """Move every finished part from the staging folder into place, then write ``_SUCCESS``."""
    outputs = []
    for i, result in enumerate(written):
        target = lay.target(i)
        target.parent.mkdir(parents=True, exist_ok=True)
        os.replace(lay.staged_output(i), target)
        outputs.append((target, int(result["written"][0])))
    with atomic_path(Path(lay.dest) / SUCCESS):
        pass
    return outputs


def _remove_empty(folder: Path) -> None:
    """Remove ``folder`` and the folders below it if they hold no file (what a failed run made)."""
    for sub in sorted((p for p in folder.rglob("*") if p.is_dir()), key=lambda p: len(p.parts), reverse=True):
        if not any(sub.iterdir()):
            sub.rmdir()
    if folder.is_dir() and not any(folder.iterdir()):
        folder.rmdir()


def _summary(
    job: Job, stats: Stats, written: list[dict[str, np.ndarray]], outputs: list[tuple[Path, int]], engine: Any, s: float
) -> dict[str, Any]:
    rows = sum(job.layout.rows)
    clean = sum(int(r["clean"][0]) for r in written)
    labeled = int(stats.labels.sum())
    return {
        "rows": rows,
        "labeled": labeled,
        "unlabeled": rows - labeled,
        "flagged": rows - clean,
        "flagged_fraction": (rows - clean) / rows,
        "noise_rate": float(np.clip(1.0 - np.trace(stats.joint), 0.0, 1.0)),
        "parts": len(outputs),
        "dest": job.layout.dest,
        "outputs": [{"path": str(p), "rows_written": w} for p, w in outputs],
        "rows_written": sum(w for _, w in outputs),
        "engine": getattr(engine, "name", type(engine).__name__),
        "seconds": s,
    }
