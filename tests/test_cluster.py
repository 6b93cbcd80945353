"""labelclean.cluster: a partitioned folder cleaned on Ray Data (local mode) equals the single-machine run.

The passes, the statistics between them and the exact selection are checked on the in-process
engine (no cluster needed, fast); the same runs on Ray check what only an engine does: shipping
the model without pickle, actor pools, retrying a part whose worker died, and a rerun after a
crash. The Ray tests share one local Ray session (2 CPUs, no dashboard) and are skipped, with
the reason, only where Ray cannot be imported.
"""

from __future__ import annotations

import os
import sys
import warnings
from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from labelclean import CoTeachingFilter, find_label_issues
from labelclean.api import clean_file
from labelclean.cluster import RayEngine, clean_dataset, score_dataset
from labelclean.cluster._driver import SUCCESS
from labelclean.cluster._engines import InProcess, resolve_engine
from labelclean.cluster._parts import STAGING
from labelclean.cluster._select import ROUNDS, Selection, histogram, selected, sortable
from labelclean.detection import _largest
from labelclean.io import DataError, OptionError, open_dataset

SIZES = {"a": 90, "b": 140, "c": 70}  # three hive parts of different sizes
COLORS = np.array(["red", "green", "blue"])


def _rows(n: int, seed: int, *, scale: float = 1.0) -> pa.Table:
    """Three classes; 20 % of the labels flipped, 5 % null; features, a text column and a model's probabilities."""
    rng = np.random.default_rng(seed)
    truth = rng.integers(0, 3, n)
    logits = rng.normal(0.0, 1.0, (n, 3))
    logits[np.arange(n), truth] += 2.0
    probs = np.exp(logits) / np.exp(logits).sum(axis=1, keepdims=True) * scale
    given = np.where(rng.random(n) < 0.2, (truth + 1) % 3, truth)
    color = np.where(rng.random(n) < 0.8, COLORS[truth], COLORS[rng.integers(0, 3, n)])
    return pa.table(
        {
            "x0": (truth + rng.normal(0.0, 0.7, n)).astype(np.float32),
            "x1": (-truth + rng.normal(0.0, 0.7, n)).astype(np.float32),
            "color": pa.array(color.tolist(), mask=rng.random(n) < 0.05),
            "probs": pa.array(probs.astype(np.float32).tolist(), pa.list_(pa.float32())),
            "label": pa.array(given.tolist(), pa.int64(), mask=rng.random(n) < 0.05),
        }
    )


def _write_parts(root: Path, scales: dict[str, float] | None = None) -> Path:
    for i, (region, n) in enumerate(SIZES.items()):
        folder = root / f"region={region}"
        folder.mkdir(parents=True)
        pq.write_table(_rows(n, i, scale=(scales or {}).get(region, 1.0)), folder / "part-0.parquet")
    return root


@pytest.fixture(scope="module")
def parts(tmp_path_factory) -> Path:
    return _write_parts(tmp_path_factory.mktemp("cluster") / "parts")


@pytest.fixture(scope="module")
def reference(parts, tmp_path_factory) -> Path:
    """The single-machine run: ``labelclean filter parts/ --pred-probs probs --output-dir ref/``."""
    ref = tmp_path_factory.mktemp("reference") / "ref"
    clean_file("filter", parts, output_dir=ref, pred_probs="probs")
    return ref


@pytest.fixture(scope="module")
def model():
    """A small network fitted on a DataFrame with a text column and missing values (its table plan encodes them)."""
    train = _rows(300, 99).to_pandas()
    labels = train.pop("label").fillna(0).astype(int)
    features = train[["x0", "x1", "color"]].copy()
    features.loc[::17, "x0"] = np.nan
    return CoTeachingFilter(
        estimator="network", max_epochs=2, refine_epochs=0, forget_rate=0.2, hidden_dims=(16,), random_state=0
    ).fit(features, labels)


def _same_parts(out: Path, ref: Path) -> None:
    """Every part of ``ref`` is in ``out`` under the same name, with the same table (schema and metadata included)."""
    expected = sorted(p.relative_to(ref) for p in ref.rglob("*.parquet"))
    assert sorted(p.relative_to(out) for p in out.rglob("*.parquet")) == expected
    for name in expected:
        got, want = pq.read_table(out / name), pq.read_table(ref / name)
        assert got.schema.equals(want.schema, check_metadata=True), name
        assert got.equals(want), name


def _contract(out: Path) -> pd.DataFrame:
    return open_dataset(out).read(["label", "is_clean", "pseudo_label", "label_quality"]).to_pandas()


def _single_machine(parts: Path, proba: np.ndarray, **rule) -> pd.DataFrame:
    """:func:`find_label_issues` on all the rows at once (labeled rows; the others get the api's convention)."""
    labels = open_dataset(parts).read(["label"]).column(0).to_numpy(zero_copy_only=False)
    labeled = ~np.isnan(labels)
    issues = find_label_issues(labels[labeled].astype(np.int64), proba[labeled], classes=np.arange(3), **rule)
    out = pd.DataFrame(
        {"is_clean": False, "pseudo_label": proba.argmax(axis=1), "label_quality": np.float32(0)},
        index=np.arange(len(labels)),
    )
    out.loc[labeled, "is_clean"] = issues["is_clean"].to_numpy()
    out.loc[labeled, "pseudo_label"] = issues["pseudo_label"].to_numpy()
    out.loc[labeled, "label_quality"] = issues["label_quality"].to_numpy()
    return out


def _assert_contract(out: Path, want: pd.DataFrame) -> None:
    got = _contract(out)
    assert np.array_equal(got["is_clean"].to_numpy(), want["is_clean"].to_numpy(bool))
    assert np.array_equal(got["pseudo_label"].to_numpy(), want["pseudo_label"].to_numpy())
    assert np.array_equal(got["label_quality"].to_numpy(), want["label_quality"].to_numpy(np.float32))


# ---------------------------------------------------------------------------
# The statistics and the selection, without an engine
# ---------------------------------------------------------------------------


def test_the_selection_over_parts_is_the_rules_selection_on_all_rows():
    """The count smallest keys per group, ties in row order, found from histograms: `detection._largest` exactly."""
    rng = np.random.default_rng(0)
    for trial in range(200):
        n, n_groups = int(rng.integers(1, 200)), int(rng.integers(1, 4))
        pool = np.array([0.0, -0.0, 0.1, 0.25, 1 / 3, 1.0], dtype=np.float32)
        values = rng.choice(pool, n) if trial % 2 else rng.random(n).astype(np.float32)  # many ties, or none
        groups = rng.integers(0, n_groups, n)
        size = np.bincount(groups, minlength=n_groups)
        count = np.array([int(rng.integers(0, s + 2)) for s in size])
        cuts = sorted(rng.choice(np.arange(1, n), size=min(n - 1, 3), replace=False).tolist()) if n > 1 else []
        spans = [slice(a, b) for a, b in zip([0, *cuts], [*cuts, n])]
        keys = sortable(values, descending=True)  # the largest values first, as the rule flags widest margins
        sel = Selection.start(count, size)
        for r in range(ROUNDS):
            hists = [histogram(keys[s], groups[s], sel, r) for s in spans]
            sel = sel.narrow(hists, r)
        take = sel.ties_per_part(hists)
        got = np.concatenate([selected(keys[s], groups[s], sel, take[i]) for i, s in enumerate(spans)])
        want = np.zeros(n, dtype=bool)
        for g in range(n_groups):
            rows = np.flatnonzero(groups == g)
            if count[g] and len(rows):
                want[rows[_largest(values[rows], min(count[g], len(rows)))]] = True
        assert np.array_equal(got, want), trial


def test_clean_dataset_writes_what_labelclean_filter_writes_part_by_part(parts, reference, tmp_path):
    summary = clean_dataset(parts, tmp_path / "out", pred_probs="probs", engine=InProcess())
    _same_parts(tmp_path / "out", reference)
    assert (tmp_path / "out" / SUCCESS).is_file() and not (tmp_path / "out" / STAGING).exists()
    assert summary["parts"] == 3 and summary["rows"] == summary["rows_written"] == sum(SIZES.values())
    assert 0 < summary["flagged"] < summary["rows"]


@pytest.mark.parametrize("flag", ["rank", "class_noise", "disagreement"])
@pytest.mark.parametrize("relabel_threshold", [0.9, 0.3])
def test_every_rule_equals_find_label_issues_on_all_rows(flag, relabel_threshold, tmp_path):
    """One part's probabilities sum to 1.01: as on one machine, then every row is divided by its sum."""
    parts = _write_parts(tmp_path / "parts", scales={"b": 1.01})
    with pytest.warns(UserWarning, match="divided by their sums"):
        clean_dataset(
            parts,
            tmp_path / "out",
            pred_probs="probs",
            flag=flag,
            relabel_threshold=relabel_threshold,
            engine=InProcess(),
        )
    proba = np.array(open_dataset(parts).read(["probs"]).column(0).to_pylist(), dtype=np.float32)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", UserWarning)
        want = _single_machine(parts, proba, flag=flag, relabel_threshold=relabel_threshold)
    _assert_contract(tmp_path / "out", want)


def test_a_model_fitted_on_arrays_reads_the_features_as_labelclean_filter_does(parts, tmp_path):
    X = open_dataset(parts).read(["x0", "x1"]).to_pandas().to_numpy(np.float32)
    y = np.arange(len(X)) % 3
    est = CoTeachingFilter(
        estimator="network", max_epochs=1, refine_epochs=0, forget_rate=0.1, hidden_dims=(8,), random_state=0
    ).fit(X, y)
    est.save(tmp_path / "model.pt")
    score_dataset(tmp_path / "model.pt", parts, tmp_path / "out", features=["x0", "x1"], engine=InProcess())
    _assert_contract(tmp_path / "out", _single_machine(parts, est.predict_proba(X)))


# ---------------------------------------------------------------------------
# Wrong input: a clear error, and nothing written
# ---------------------------------------------------------------------------


def test_wrong_inputs_are_refused_before_anything_is_written(parts, model, tmp_path):
    dest = tmp_path / "out"
    cases = [
        (
            lambda: clean_dataset(parts, dest, pred_probs="probs", label="y", engine=InProcess()),
            OptionError,
            "label column 'y' not found",
        ),
        (lambda: clean_dataset(parts, dest, pred_probs="p", engine=InProcess()), OptionError, "column 'p' not found"),
        (lambda: score_dataset(CoTeachingFilter(), parts, dest, engine=InProcess()), OptionError, "is not fitted"),
        (lambda: score_dataset(model, parts, parts / "region=a" / "out", engine=InProcess()), OptionError, "overlap"),
        (lambda: clean_dataset(parts, dest, pred_probs="probs", flag="all", engine=InProcess()), OptionError, "flag"),
        (lambda: clean_dataset(parts, dest, pred_probs="probs", engine="dask"), OptionError, "unknown engine"),
        (
            lambda: score_dataset(tmp_path / "nothing.pt", parts, dest, engine=InProcess()),
            FileNotFoundError,
            "does not exist",
        ),
    ]
    for call, error, message in cases:
        with pytest.raises(error, match=message):
            call()
        assert not dest.exists()
    csv = tmp_path / "data.csv"
    pd.DataFrame({"x": [1.0, 2.0], "label": [0, 1]}).to_csv(csv, index=False)
    with pytest.raises(OptionError, match="CSV; the cluster engines read parquet"):
        clean_dataset(csv, dest, pred_probs="x", engine=InProcess())
    dest.mkdir()
    (dest / "old.parquet").write_bytes(b"")
    with pytest.raises(OptionError, match="pass overwrite=True"):
        score_dataset(model, parts, dest, engine=InProcess())
    assert sorted(os.listdir(dest)) == ["old.parquet"]


def _spoil(root: Path, region: str, column: str, values: pa.Array) -> Path:
    path = root / f"region={region}" / "part-0.parquet"
    table = pq.read_table(path)
    pq.write_table(table.set_column(table.column_names.index(column), column, values), path)
    return root


def test_a_part_with_bad_data_stops_the_run_and_names_the_part(model, tmp_path):
    unknown = _spoil(_write_parts(tmp_path / "unknown"), "b", "label", pa.array([7] * SIZES["b"]))
    with pytest.raises(DataError, match=r"label 7 \(row 0 of part 'region=b/part-0.parquet'\) is not one of"):
        score_dataset(model, unknown, tmp_path / "out", engine=InProcess())
    assert not (tmp_path / "out").exists()
    arrays = CoTeachingFilter(estimator="network", max_epochs=1, refine_epochs=0, forget_rate=0.1, random_state=0)
    arrays.fit(np.zeros((6, 2), dtype=np.float32), [0, 1, 2] * 2)
    with pytest.raises(OptionError, match="'color' hold text"):
        score_dataset(arrays, unknown, tmp_path / "out", features=["x0", "color"], engine=InProcess())
    missing = _spoil(_write_parts(tmp_path / "missing"), "c", "x0", pa.nulls(SIZES["c"], pa.float32()))
    with pytest.raises(DataError, match="'x0' has 70 missing values in part 'region=c/part-0.parquet'"):
        score_dataset(arrays, missing, tmp_path / "out", features=["x0", "x1"], engine=InProcess())
    assert not (tmp_path / "out").exists()


def test_the_engines_by_name():
    try:
        import ray.data  # noqa: F401
    except ImportError:
        with pytest.raises(ImportError, match=r"labelclean\[cluster\]"):
            resolve_engine("ray")
    else:
        assert isinstance(resolve_engine("ray"), RayEngine)
    with pytest.raises(OptionError, match="not an engine"):
        resolve_engine(object())


# ---------------------------------------------------------------------------
# Ray Data in local mode
# ---------------------------------------------------------------------------


@pytest.fixture(scope="module")
def ray_session():
    """One lean local Ray session for the Ray tests: 2 CPUs, no dashboard, the workers' logs kept off the driver.

    Started at the first Ray test and shut down after the last test of this module, so the rest of the suite does
    not share its two cores with Ray's idle processes.
    """
    ray = pytest.importorskip("ray", reason="Ray Data is not installed; bash scripts/setup.sh dev installs it")
    from ray import cloudpickle
    from ray import data as ray_data

    ray.init(
        num_cpus=2,
        include_dashboard=False,
        log_to_driver=False,
        logging_level="ERROR",
        object_store_memory=256 << 20,
    )
    ray_data.DataContext.get_current().enable_progress_bars = False
    cloudpickle.register_pickle_by_value(sys.modules[__name__])  # the fault-injecting steps below
    yield ray
    ray.shutdown()


class _Faulty:
    """A step that fails on one part: its worker dies the first time (``how="die"``), or it always raises."""

    def __init__(self, step, part: int, marker: Path, how: str) -> None:
        self.step, self.part, self.marker, self.how = step, part, marker, how
        self.kind, self.stateful = step.kind, step.stateful

    def setup(self) -> None:
        self.step.setup()

    def __call__(self, i: int):
        if i == self.part and self.how == "raise":
            raise RuntimeError("simulated crash")
        if i == self.part and not self.marker.exists():
            self.marker.write_text("died once")
            os._exit(1)  # the worker process dies: Ray retries the part elsewhere
        return self.step(i)


class _FaultyRay(RayEngine):
    def __init__(self, kind: str, part: int, marker: Path, how: str, **kwargs) -> None:
        super().__init__(**kwargs)
        self.fault = (kind, part, marker, how)

    def map(self, step, n):
        kind, part, marker, how = self.fault
        return super().map(_Faulty(step, part, marker, how) if step.kind == kind else step, n)


#: Ray Data's own deprecation notices (about its settings, not about labelclean's calls).
on_ray = pytest.mark.filterwarnings("ignore::DeprecationWarning:ray", "ignore::FutureWarning:ray")


@on_ray
def test_ray_cleans_a_partitioned_folder_like_the_single_machine_run(ray_session, parts, reference, tmp_path):
    summary = clean_dataset(parts, tmp_path / "out", pred_probs="probs", engine="ray")
    _same_parts(tmp_path / "out", reference)
    assert summary["engine"] == "ray" and (tmp_path / "out" / SUCCESS).is_file()


@on_ray
def test_ray_scores_with_a_model_shipped_as_its_saved_file(ray_session, parts, model, tmp_path):
    """An actor pool rebuilds the model with load(); the output equals find_label_issues on every row at once."""
    summary = score_dataset(model, parts, tmp_path / "out", engine=RayEngine(concurrency=1))
    frame = open_dataset(parts).read(["x0", "x1", "color"]).to_pandas()
    _assert_contract(tmp_path / "out", _single_machine(parts, model.predict_proba(frame)))
    assert summary["rows_written"] == sum(SIZES.values())
    written = pq.read_table(tmp_path / "out" / "region=a" / "part-0.parquet")
    assert written.column_names == ["x0", "x1", "color", "probs", "label", "is_clean", "pseudo_label", "label_quality"]


@on_ray
def test_ray_retries_a_part_whose_worker_died(ray_session, parts, reference, tmp_path):
    marker = tmp_path / "died"
    clean_dataset(parts, tmp_path / "out", pred_probs="probs", engine=_FaultyRay("score", 1, marker, "die"))
    assert marker.read_text() == "died once"
    _same_parts(tmp_path / "out", reference)


@on_ray
def test_ray_sends_a_parts_data_error_back_to_the_driver(ray_session, tmp_path):
    bad = _write_parts(tmp_path / "parts")
    negative = pa.array([[-0.5, 1.0, 0.5]] * SIZES["c"], pa.list_(pa.float32()))
    _spoil(bad, "c", "probs", negative)
    with pytest.raises(DataError, match="probabilities of part 'region=c/part-0.parquet' hold negative"):
        clean_dataset(bad, tmp_path / "out", pred_probs="probs", engine="ray")
    assert not (tmp_path / "out").exists()


@on_ray
def test_ray_rerun_after_a_crash_gives_the_same_output(ray_session, parts, reference, tmp_path):
    out = tmp_path / "out"
    clean_dataset(parts, out, pred_probs="probs", engine="ray")
    first = {p: p.read_bytes() for p in out.rglob("*.parquet")}
    with pytest.raises(Exception, match="simulated crash"):  # the last pass fails on one part
        clean_dataset(
            parts, out, pred_probs="probs", overwrite=True, engine=_FaultyRay("write", 2, tmp_path / "unused", "raise")
        )
    assert not (out / SUCCESS).exists() and not (out / STAGING).exists()  # marked unfinished, no half-written part
    assert {p: p.read_bytes() for p in out.rglob("*.parquet")} == first  # the earlier parts untouched
    (out / STAGING / "proba").mkdir(parents=True)  # what a killed driver would leave
    (out / STAGING / "proba" / "part-000001.npz").write_bytes(b"half")
    clean_dataset(parts, out, pred_probs="probs", overwrite=True, engine="ray")
    _same_parts(out, reference)
    assert {p: p.read_bytes() for p in out.rglob("*.parquet")} == first  # byte for byte
    assert (out / SUCCESS).is_file() and not (out / STAGING).exists()


# ---------------------------------------------------------------------------
# Spark in local mode, through the same adapter (only where pyspark is installed)
# ---------------------------------------------------------------------------


@pytest.fixture(scope="module")
def spark_session():
    pytest.importorskip("pyspark", reason="PySpark is not installed (it is optional: pip install pyspark, Java 17+)")
    from pyspark.sql import SparkSession

    os.environ.setdefault("PYSPARK_PYTHON", sys.executable)
    spark = (
        SparkSession.builder.master("local[2,2]")  # two cores; a failed task is tried twice
        .config("spark.ui.enabled", "false")
        .config("spark.sql.shuffle.partitions", "2")
        .getOrCreate()
    )
    yield spark
    spark.stop()


@pytest.mark.filterwarnings("ignore::FutureWarning:pyspark")  # PySpark's notice about pandas 3
def test_spark_scores_like_the_single_machine_run(spark_session, parts, model, tmp_path):
    from labelclean.cluster import SparkEngine

    summary = score_dataset(model, parts, tmp_path / "out", engine=SparkEngine(spark=spark_session))
    frame = open_dataset(parts).read(["x0", "x1", "color"]).to_pandas()
    _assert_contract(tmp_path / "out", _single_machine(parts, model.predict_proba(frame)))
    assert summary["engine"] == "spark"
