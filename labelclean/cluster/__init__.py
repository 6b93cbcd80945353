"""Cleaning partitioned parquet datasets on a cluster engine: Ray Data (the default) or Spark.

:func:`score_dataset` applies a fitted estimator to every part of a dataset and
:func:`clean_dataset` takes the probabilities the parts already hold; both write, for each
input part, an output part with every input column plus ``is_clean``, ``pseudo_label`` and
``label_quality``, equal to what the single-machine run gives on all the rows at once
(:func:`labelclean.find_label_issues`, ``labelclean filter --pred-probs ... --output-dir``).

The detection rule needs statistics over all rows (per-class thresholds, the joint of given
and true labels, the calibration temperature, the cut of the rows to flag); they are gathered
in passes over the parts and broadcast with the next pass, so no part ever needs another's
rows. The estimator travels as the bytes of its ``save`` file and is rebuilt on each worker
with ``load`` (``torch.load(weights_only=True)``): never pickled. Engines are adapters with one
method (:class:`RayEngine`, :class:`SparkEngine`); ``ray`` and ``pyspark`` are imported only
when a run starts, so the rest of labelclean works without them. See ``docs/cluster.md``.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from typing import Any

from ..detection import RELABEL_THRESHOLD
from . import _driver
from ._engines import RayEngine, SparkEngine, resolve_engine
from ._parts import Job

__all__ = ["RayEngine", "SparkEngine", "clean_dataset", "score_dataset"]


def score_dataset(
    model: Any,
    source: str | os.PathLike | Sequence[str | os.PathLike],
    dest: str | os.PathLike,
    *,
    label: str = "label",
    features: Sequence[str] | None = None,
    flag: str = "rank",
    relabel_threshold: float = RELABEL_THRESHOLD,
    drop: bool = False,
    overwrite: bool = False,
    device: str | None = None,
    engine: Any = "ray",
) -> dict[str, Any]:
    """Check the labels of a partitioned parquet dataset with a fitted estimator, on a cluster engine.

    Each part is scored by ``model`` on a worker; the detection rule then decides, from
    those probabilities and the given labels, which labels to trust, exactly as
    :func:`labelclean.find_label_issues` does on all the rows at once. Rows whose label is
    null get ``is_clean=False``, the most probable class and ``label_quality=0``.

    Parameters
    ----------
    model : fitted CoTeachingFilter, SelfTrainer or PUClassifier, or the path of one saved with ``.save(path)``
        Its probabilities must be out of sample for these rows (it never trained on them).
        It must have been fitted with the networks (``estimator="network"``): a fitted
        scikit-learn model cannot be saved without pickle.
    source : path, glob or list of paths
        Parquet files (a folder with hive ``key=value`` subfolders included), read as
        :func:`labelclean.io.open_dataset` reads them; every worker must reach them (a shared
        file system on a cluster).
    dest : path
        The folder for the output parts: one per input part, under the part's own name, and
        ``_SUCCESS`` once every part is in place.
    label : str, default="label"
        The label column, with values among the model's ``classes_``.
    features : sequence of str or None
        The feature columns. A model fitted on a pandas DataFrame reads the columns it was
        fitted on (leave this out); for a model fitted on arrays the columns are read as
        ``labelclean filter`` reads them (numbers, numbers stored as text, lists of numbers,
        PNG/JPEG images), default every usable column but the label.
    flag, relabel_threshold
        The rule's options, as in :func:`labelclean.find_label_issues`.
    drop : bool, default=False
        Write only the rows with ``is_clean``.
    overwrite : bool, default=False
        Replace the parts of an earlier run in ``dest`` (other files there stay).
    device : str or None
        Where each worker puts the model (default: its saved ``device``, resolved on the worker).
    engine : {"ray", "spark"} or an engine, default="ray"
        ``RayEngine(concurrency=..., num_gpus=...)`` or ``SparkEngine(spark=...)`` to set it up.

    Returns
    -------
    dict
        ``rows``, ``labeled``, ``flagged``, ``noise_rate``, ``parts``, ``outputs`` (each part's
        path and rows written), ``engine`` and ``seconds``.

    Raises
    ------
    OptionError
        A missing column, a model that is not fitted, a non-parquet source, or ``dest``
        existing (without ``overwrite``) or overlapping the input. Nothing is written then.
    DataError
        A part whose data cannot be used (a label the model does not know, missing numbers);
        the run stops and ``dest`` gets none of the parts.
    """
    _driver.check_rule(flag, relabel_threshold)
    engine = resolve_engine(engine)
    dataset, root = _driver.open_parts(source)
    label_type = _driver.check_label(dataset, label)
    estimator, data = _driver.model_bytes(model)
    classes = _driver.model_classes(estimator, label, label_type)
    scores = _driver.model_scores(estimator, data, dataset, label, features, device)
    layout = _driver.layout(dataset, root, dest, overwrite)
    job = Job(layout, label, classes, label_type, scores, flag, float(relabel_threshold), drop)
    return _driver.run(job, engine)


def clean_dataset(
    source: str | os.PathLike | Sequence[str | os.PathLike],
    dest: str | os.PathLike,
    *,
    pred_probs: str | Sequence[str],
    label: str = "label",
    flag: str = "rank",
    relabel_threshold: float = RELABEL_THRESHOLD,
    drop: bool = False,
    overwrite: bool = False,
    engine: Any = "ray",
) -> dict[str, Any]:
    """Check the labels of a partitioned parquet dataset against probabilities it already holds, on a cluster engine.

    The cluster form of ``labelclean filter DIR --pred-probs COLUMN --output-dir DEST``, with
    the same output parts: the probabilities of your own model (out of sample), in a list
    column or one number column per label value (in sorted order), decide ``is_clean``,
    ``pseudo_label`` and ``label_quality`` as :func:`labelclean.find_label_issues` does on
    all the rows at once. Parameters, result and errors as in :func:`score_dataset`.
    """
    _driver.check_rule(flag, relabel_threshold)
    engine = resolve_engine(engine)
    dataset, root = _driver.open_parts(source)
    label_type = _driver.check_label(dataset, label)
    scores = _driver.column_scores(dataset, label, pred_probs)
    layout = _driver.layout(dataset, root, dest, overwrite)
    probe = Job(layout, label, None, label_type, scores, flag, float(relabel_threshold), drop)
    classes = _driver.dataset_classes(probe, engine)
    _driver.check_classes(classes, scores, label)
    return _driver.run(Job(layout, label, classes, label_type, scores, flag, float(relabel_threshold), drop), engine)
