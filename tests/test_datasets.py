"""Datasets of several files (folders, globs, several paths), CSV input and numbers stored as text."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from click.testing import CliRunner

from labelclean import io as lio
from labelclean.api import filter_labels
from labelclean.cli import cli
from labelclean.cli._common import format_summary
from labelclean.io import DataError, OptionError
from tests.helpers import FAST, tabular_table, write

ADDED = ["is_clean", "pseudo_label", "label_quality"]
ENV = {**os.environ, "PYTHONWARNINGS": "ignore", "OMP_NUM_THREADS": "1"}


def invoke(*args):
    return CliRunner().invoke(cli, [str(a) for a in args])


def run_cli(*args) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "labelclean.cli", *map(str, args)],
        capture_output=True,
        text=True,
        env=ENV,
        timeout=180,
    )


def partitioned(folder: Path, n: int = 150) -> tuple[Path, pa.Table, list[Path]]:
    """Three parts of one table in hive folders, with the side files partitioned writers leave behind."""
    table = tabular_table(n)
    root = folder / "data"
    (root / "split=a").mkdir(parents=True)
    (root / "split=b").mkdir()
    (root / "_temporary").mkdir()
    cuts = [0, n // 3, 2 * n // 3, n]
    paths = [
        root / "split=a" / "part-0.parquet",
        root / "split=a" / "part-1.parquet",
        root / "split=b" / "part-2.parquet",
    ]
    for path, lo, hi in zip(paths, cuts[:-1], cuts[1:], strict=True):
        write(table.slice(lo, hi - lo), path)
    (root / "_SUCCESS").write_text("")
    (root / "split=a" / ".part-0.parquet.crc").write_bytes(b"crc")
    (root / "_temporary" / "junk.parquet").write_bytes(b"not parquet")
    return root, table, paths


# ---------------------------------------------------------------------------
# Reading
# ---------------------------------------------------------------------------


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


# ---------------------------------------------------------------------------
# Command line
# ---------------------------------------------------------------------------


def test_cli_folder_gives_one_output_and_output_dir_one_file_per_part(tmp_path):
    root, table, paths = partitioned(tmp_path)
    one = run_cli("filter", root, "--json", *FAST)
    assert one.returncode == 0, one.stderr
    summary = json.loads(one.stdout)
    assert summary["output"] == str(tmp_path / "data.clean.parquet") and summary["rows"] == 150
    assert summary["inputs"] == [str(p) for p in paths]
    out = pq.read_table(tmp_path / "data.clean.parquet")
    assert out.column_names == [*table.column_names, "split", *ADDED]
    assert out.select(table.column_names).equals(table)

    parts = run_cli("filter", root, "--output-dir", tmp_path / "cleaned", *FAST)
    assert parts.returncode == 0, parts.stderr
    assert "wrote 3 files to" in parts.stdout and "read 3 files as one table" in parts.stdout
    written = sorted(p.relative_to(tmp_path / "cleaned").as_posix() for p in (tmp_path / "cleaned").rglob("*"))
    assert written == [
        "split=a",
        "split=a/part-0.parquet",
        "split=a/part-1.parquet",
        "split=b",
        "split=b/part-2.parquet",
    ]
    for path in paths:
        part = pq.read_table(tmp_path / "cleaned" / path.relative_to(root))
        original = pq.read_table(path)
        assert part.column_names == [*original.column_names, *ADDED]
        assert part.select(original.column_names).equals(original)  # rows match their input part
    again = invoke("filter", root, "--output-dir", tmp_path / "cleaned", *FAST)
    assert again.exit_code == 2 and "already exists; pass --force" in again.stderr


def test_cli_glob_and_several_paths(tmp_path):
    root, table, paths = partitioned(tmp_path, 90)
    pattern = str(root / "split=*" / "part-*.parquet")
    result = invoke("filter", pattern, "-o", tmp_path / "g.parquet", "-q", *FAST)
    assert result.exit_code == 0, result.output
    assert pq.read_table(tmp_path / "g.parquet").select(table.column_names).equals(table)
    result = invoke("filter", *paths[:2], "-o", tmp_path / "two.parquet", "-q", *FAST)
    assert result.exit_code == 0, result.output
    assert pq.read_table(tmp_path / "two.parquet").select(table.column_names).equals(table.slice(0, 60))
    for args in ([pattern], paths[:2]):
        before = sorted(os.listdir(tmp_path))
        result = invoke("filter", *args, *FAST)
        assert result.exit_code == 2 and "pass -o FILE" in result.stderr and "--output-dir" in result.stderr
        assert sorted(os.listdir(tmp_path)) == before
    result = invoke("filter", root, "-o", root / "inside.parquet", *FAST)
    assert result.exit_code == 2 and "inside the input folder" in result.stderr


def test_cli_schema_clash_is_a_data_error(tmp_path):
    write(pa.table({"x": [1.0, 2.0], "label": [0, 1]}), tmp_path / "a.parquet")
    write(pa.table({"x": ["a", "b"], "label": [0, 1]}), tmp_path / "b.parquet")
    result = invoke("filter", tmp_path / "a.parquet", tmp_path / "b.parquet", "-o", tmp_path / "o.parquet", *FAST)
    assert result.exit_code == 1 and "column 'x' is double in" in result.stderr and "but string in" in result.stderr
    assert len(result.stderr.strip().splitlines()) == 1 and not (tmp_path / "o.parquet").exists()


def test_cli_csv_input_numbers_as_text_and_skipped_columns(tmp_path):
    table = tabular_table(150)
    table = table.append_column("income", pa.array([f"{v:.3f}" for v in table["f0"].to_numpy()]))
    write(table.drop_columns(["f0"]), tmp_path / "t.parquet")
    result = invoke("filter", tmp_path / "t.parquet", "--json", *FAST)
    assert result.exit_code == 0, result.output
    summary = json.loads(result.stdout)
    assert summary["read_as_numbers"] == ["income"] and "income" in summary["features"]
    assert summary["skipped"]["id"]["include_with"] == "--features f1,f2,color,income,id"
    assert summary["skipped"]["note"] == {"reason": summary["skipped_columns"]["note"], "include_with": None}
    text = format_summary(summary)
    assert "read as numbers: income (text)" in text
    assert "skipped: id (all values distinct: looks like an identifier; to use it: --features " in text
    assert "f1,f2,color,income,id)" in text and "note (150 distinct values" in text

    csv = tmp_path / "c.csv"
    table.to_pandas().to_csv(csv, index=False)
    result = invoke("filter", csv, "--json", *FAST)
    assert result.exit_code == 0, result.output
    summary = json.loads(result.stdout)
    assert summary["output"] == str(tmp_path / "c.clean.parquet") and summary["rows"] == 150
    assert any("parquet" in note and "faster" in note for note in summary["notes"])
    assert "note: CSV is parsed anew on every run" in format_summary(summary)
    out = pq.read_table(tmp_path / "c.clean.parquet")
    assert out.column_names == [*table.column_names, *ADDED] and out["id"].to_pylist() == table["id"].to_pylist()
    assert out.schema.field("f0").type == pa.float64()  # types inferred from the text
    parts = invoke("filter", csv, "--output-dir", tmp_path / "p", "-q", *FAST, "--epochs", "1")
    assert parts.exit_code == 0 and pq.read_table(tmp_path / "p" / "c.parquet").num_rows == 150
