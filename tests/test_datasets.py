"""Datasets of several files (folders, globs, several paths), CSV input and numbers stored as text.

Tests of labelclean/io.py and of ``filter_labels`` (labelclean/api.py), kept here until they move to their files.
"""

from __future__ import annotations

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from labelclean import io as lio
from labelclean.api import filter_labels
from labelclean.io import DataError, OptionError
from tests.helpers import ADDED, partitioned, tabular_table, write


def test_folder_is_one_table_in_sorted_path_order_side_files_ignored(tmp_path):
    root, table, paths = partitioned(tmp_path)
    source = lio.as_source(root)
    assert isinstance(source, lio.DatasetSource) and source.format == "parquet"
    assert [p.name for p in source.parts] == [
        "split=a/part-0.parquet",
        "split=a/part-1.parquet",
        "split=b/part-2.parquet",
    ]
    assert source.num_rows == table.num_rows
    assert source.schema.names == [*table.column_names, "split"]  # the hive key comes after the file columns
    whole = source.read()
    assert whole.select(table.column_names).equals(table)
    assert whole["split"].to_pylist() == ["a"] * 100 + ["b"] * 50
    ids = np.concatenate([b.column(0).to_numpy() for b in lio.iter_batches(source, ["id"], batch_rows=7)])
    np.testing.assert_array_equal(ids, table["id"].to_numpy())


def test_glob_and_several_paths_keep_their_order(tmp_path):
    root, table, paths = partitioned(tmp_path)
    globbed = lio.as_source(str(root / "*" / "part-*.parquet"))
    assert [p.path for p in globbed.parts] == paths and globbed.read().select(table.column_names).equals(table)
    given = lio.as_source([paths[2], paths[0]])
    assert [p.name for p in given.parts] == ["split=b/part-2.parquet", "split=a/part-0.parquet"]
    assert given.read()["id"].to_pylist() == table["id"].to_pylist()[100:] + table["id"].to_pylist()[:50]
    assert isinstance(lio.as_source([paths[0]]), pq.ParquetFile)  # one file stays a plain parquet file
    with pytest.raises(FileNotFoundError, match="matches no parquet or CSV file"):
        lio.as_source(str(root / "nothing-*.parquet"))
    with pytest.raises(OptionError, match="given twice"):
        lio.as_source([paths[0], paths[0]])


def test_schemas_are_unified_and_a_clash_names_the_column_types_and_files(tmp_path):
    write(pa.table({"x": pa.array([1, 2], pa.int32()), "label": [0, 1]}), tmp_path / "a.parquet")
    write(pa.table({"x": pa.array([3.5], pa.float64()), "label": [1], "extra": ["e"]}), tmp_path / "b.parquet")
    source = lio.as_source(tmp_path)
    assert source.schema.field("x").type == pa.float64()
    assert source.read().to_pydict() == {"x": [1.0, 2.0, 3.5], "label": [0, 1, 1], "extra": [None, None, "e"]}
    write(pa.table({"x": ["text"], "label": [0]}), tmp_path / "c.parquet")
    with pytest.raises(DataError, match=r"column 'x' is double in '.*a.parquet' but string in '.*c.parquet'"):
        lio.as_source(tmp_path)


def test_folder_errors(tmp_path):
    (tmp_path / "empty").mkdir()
    with pytest.raises(OptionError, match="is a folder with no parquet or CSV files"):
        lio.as_source(tmp_path / "empty")
    mixed = tmp_path / "mixed"
    mixed.mkdir()
    write(tabular_table(10), mixed / "a.parquet")
    (mixed / "b.csv").write_text("x,label\n1,0\n")
    with pytest.raises(OptionError, match="both parquet and CSV"):
        lio.as_source(mixed)
    bad = tmp_path / "bad"
    bad.mkdir()
    write(tabular_table(10), bad / "a.parquet")
    (bad / "b.parquet").write_text("x,label\n1,0\n")
    with pytest.raises(DataError, match="b.parquet' is not a parquet file"):
        lio.as_source(bad)


def test_csv_types_are_inferred(tmp_path):
    path = tmp_path / "d.csv"
    path.write_text("x,color,label\n1.5,red,a\n2,blue,b\n,red,a\n")
    source = lio.as_source(path)
    assert source.format == "csv" and source.num_rows == 3
    assert source.schema.field("x").type == pa.float64()
    plan = lio.plan_features(source, "label")
    assert plan.names == ["x", "color"]
    np.testing.assert_array_equal(lio.read_features(source, plan), [[1.5, 0, 1], [2, 1, 0], [1.75, 0, 1]])


def test_numbers_stored_as_text_are_read_as_numbers():
    t = pa.table(
        {
            "income": [" 1200.5", "800", "", None, "NA", "1e3"],
            "zip": ["1001", "1002", "1003", "1004", "1005", "1006"],
            "city": ["x", "y", "x", "y", "x", "y"],
            "label": [0, 1, 0, 1, 0, 1],
        }
    )
    plan = lio.plan_features(t, "label")
    assert plan.names == ["income", "city"] and plan.read_as_numbers == ["income"]
    assert "identifier" in plan.skipped["zip"] and plan.include["zip"] == ["income", "city", "zip"]
    X = lio.read_features(t, plan, batch_rows=2)  # one batch holds only a blank and a null
    mean = (1200.5 + 800 + 1000) / 3
    np.testing.assert_allclose(X[:, 0], [1200.5, 800, mean, mean, mean, 1000], rtol=1e-6)
    assert lio.plan_features(t, "label", features=["zip"]).read_as_numbers == ["zip"]  # named: used


def test_filter_labels_reads_a_folder(tmp_path):
    root, table, _ = partitioned(tmp_path, 90)
    out = filter_labels(root, features=["f0", "f1", "f2"], max_epochs=1, forget_rate=0.1, random_state=0)
    assert list(out.columns) == [*table.column_names, "split", *ADDED] and len(out) == 90


def test_write_parts_is_all_or_nothing(tmp_path, monkeypatch):
    root, table, _ = partitioned(tmp_path, 30)
    source = lio.as_source(root)
    added = pa.table({"is_clean": pa.array([True] * 30)})
    real = lio._write_columns
    calls = []

    def fail_on_the_last(*args, **kwargs):
        calls.append(1)
        if len(calls) == 3:
            raise OSError("disk full")
        return real(*args, **kwargs)

    monkeypatch.setattr(lio, "_write_columns", fail_on_the_last)
    with pytest.raises(OSError, match="disk full"):
        lio.write_parts(source, tmp_path / "out", added)
    assert not (tmp_path / "out").exists()  # no part, no temporary file, not even the folders
