"""The commands' inputs: a folder, a glob or several paths read as one table, CSV, numbers stored as text.

One output for all the parts, or one per part with ``--output-dir``.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys

import pyarrow as pa
import pyarrow.parquet as pq
from click.testing import CliRunner

from labelclean.cli import cli
from labelclean.cli._common import format_summary
from tests.helpers import ADDED, FAST, partitioned, tabular_table, write

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
