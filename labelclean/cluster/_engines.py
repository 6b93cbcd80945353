"""The engine adapters: run one pass (a :class:`~labelclean.cluster._parts.PartStep`) over the parts.

An engine has one method, ``map(step, n)``: apply ``step`` to the parts ``0 .. n-1``, one
engine task per part, and return their results in part order. The step, with everything it
needs (the model as the bytes of its ``save`` file, the statistics so far), travels once per
pass through the engine's own broadcast; each result comes back as an ``.npz`` archive of a
few small arrays. Retrying a part whose worker died is the engine's business.
"""

from __future__ import annotations

import copy
from typing import Any

import numpy as np

from ..io import OptionError
from ._parts import PartStep, decode, encode

_RAY_MISSING = "Ray Data is not installed; install it with: pip install 'labelclean[cluster]' (or 'ray[data]')."
_SPARK_MISSING = "PySpark is not installed; install it with: pip install pyspark (it needs Java 17 or later)."


class RayEngine:
    """Ray Data: the parts as a dataset of one row each, mapped with ``map_batches``.

    The scoring pass with a model runs on an actor pool (each actor rebuilds the model once
    with ``load`` and scores many parts); the passes over the statistics run as plain tasks.
    A task or actor whose worker dies is retried by Ray (Ray Data's default: without limit).
    Without a running Ray session, Ray starts a local one; on a cluster, call
    ``ray.init(address="auto")`` first.

    Parameters
    ----------
    concurrency : int or None
        Actors in the scoring pool; default: as many as the cluster has CPUs (or GPUs, with
        ``num_gpus``) for them, at most one per part.
    num_cpus : float, default=1
        CPUs reserved per task and per actor.
    num_gpus : float or None
        GPUs reserved per scoring actor (e.g. ``1``, or ``0.5`` to share one), for a model
        loaded on the GPU (``device=`` of :func:`labelclean.cluster.score_dataset`).
    """

    name = "ray"

    def __init__(self, *, concurrency: int | None = None, num_cpus: float = 1, num_gpus: float | None = None) -> None:
        self.concurrency = concurrency
        self.num_cpus = num_cpus
        self.num_gpus = num_gpus

    def check(self) -> None:
        """Fail now, before anything is read or written, when Ray Data cannot be imported."""
        try:
            import ray.data  # noqa: F401
        except ImportError as exc:
            raise ImportError(_RAY_MISSING) from exc

    def _pool_size(self, n: int) -> int:
        import ray

        if self.concurrency is not None:
            return int(self.concurrency)
        if not ray.is_initialized():
            ray.init()
        resources = ray.cluster_resources()
        if self.num_gpus:
            slots = resources.get("GPU", 0) / self.num_gpus
        else:
            slots = resources.get("CPU", 1) / max(self.num_cpus, 1e-9)
        return max(1, min(n, int(slots)))

    def map(self, step: PartStep, n: int) -> list[dict[str, np.ndarray]]:
        import ray.data

        parts = ray.data.from_items([{"index": i} for i in range(n)], override_num_blocks=max(n, 1))
        if step.stateful:
            extra = {} if not self.num_gpus else {"num_gpus": self.num_gpus}
            out = parts.map_batches(
                _RayActor,
                fn_constructor_args=(step,),
                batch_size=1,
                compute=ray.data.ActorPoolStrategy(size=self._pool_size(n)),
                num_cpus=self.num_cpus,
                **extra,
            )
        else:
            out = parts.map_batches(_apply, fn_args=(step,), batch_size=1, num_cpus=self.num_cpus)
        rows = sorted(out.take_all(), key=lambda row: int(row["index"]))
        return [decode(row["result"]) for row in rows]


class _RayActor:
    """One scoring actor: the step (and with it the model) set up once, then applied to each part it is given."""

    def __init__(self, step: PartStep) -> None:
        step.setup()
        self.step = step

    def __call__(self, batch: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
        return _apply(batch, self.step)


def _apply(batch: dict[str, np.ndarray], step: PartStep) -> dict[str, np.ndarray]:
    index = batch["index"]
    return {"index": index, "result": np.array([encode(step(int(i))) for i in index], dtype=object)}


class SparkEngine:
    """Spark: one Spark partition per part of the dataset, mapped with ``DataFrame.mapInArrow``.

    The step travels as a broadcast variable; each Spark task sets it up (the scoring pass
    rebuilds the model with ``load``) and scores its part. Spark retries a failed task up
    to ``spark.task.maxFailures`` times (4 on a cluster; ``local[N, F]`` sets it in local
    mode, where the default is no retry).

    Parameters
    ----------
    spark : pyspark.sql.SparkSession or None
        The session; default: the active one, else ``SparkSession.builder.getOrCreate()``.
    """

    name = "spark"

    def __init__(self, *, spark: Any = None) -> None:
        self.spark = spark

    def check(self) -> None:
        try:
            import pyspark  # noqa: F401
        except ImportError as exc:
            raise ImportError(_SPARK_MISSING) from exc

    def map(self, step: PartStep, n: int) -> list[dict[str, np.ndarray]]:
        from pyspark.sql import SparkSession

        spark = self.spark or SparkSession.builder.getOrCreate()
        shared = spark.sparkContext.broadcast(step)

        def run(batches):
            import pyarrow as pa

            part_step = shared.value
            part_step.setup()
            for batch in batches:
                index = batch.column(0).to_pylist()
                results = [encode(part_step(int(i))) for i in index]
                yield pa.RecordBatch.from_pydict({"index": index, "result": results})

        rows = spark.range(0, n, numPartitions=max(n, 1)).mapInArrow(run, "index long, result binary").collect()
        shared.unpersist()
        return [decode(bytes(row["result"])) for row in sorted(rows, key=lambda row: row["index"])]


class InProcess:
    """The passes one part after another in this process (the engine of the tests that need no cluster).

    Each step is deep-copied first (an engine ships a copy to its workers) and each result encoded and
    decoded, as on an engine.
    """

    name = "in-process"

    def check(self) -> None:
        return None

    def map(self, step: PartStep, n: int) -> list[dict[str, np.ndarray]]:
        step = copy.deepcopy(step)
        step.setup()
        return [decode(encode(step(i))) for i in range(n)]


ENGINES = {"ray": RayEngine, "spark": SparkEngine}


def resolve_engine(engine: Any) -> Any:
    """``"ray"``, ``"spark"`` or an engine object → the engine, checked to be usable."""
    if isinstance(engine, str):
        if engine not in ENGINES:
            raise OptionError(
                f"unknown engine {engine!r}; use 'ray' or 'spark', or pass RayEngine(...)/SparkEngine(...)."
            )
        engine = ENGINES[engine]()
    if not callable(getattr(engine, "map", None)):
        raise OptionError(
            f"engine={engine!r} is not an engine; use 'ray', 'spark', RayEngine(...) or SparkEngine(...)."
        )
    check = getattr(engine, "check", None)
    if callable(check):
        check()
    return engine
