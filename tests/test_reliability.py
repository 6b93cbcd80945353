"""Streaming in tiny batches and atomic writes (labelclean/io.py, and a command's run through labelclean/api.py).

Everything here is small: a few dozen rows, batches of a few rows. Kept here until the tests move to their files.
"""

from __future__ import annotations

import os

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from click.testing import CliRunner

from labelclean import io as lio
from labelclean.cli import cli
from tests.helpers import TINY_CLI as FAST
from tests.helpers import tiny_table as _table


def test_atomic_path_keeps_temporary_files_of_running_processes(tmp_path):
    target = tmp_path / "out.parquet"
    live = tmp_path / f".out.parquet.{os.getppid()}.abc.tmp"  # the parent process is alive
    dead = tmp_path / ".out.parquet.999999999.abc.tmp"  # no such process
    other = tmp_path / ".other.parquet.999999999.abc.tmp"  # another target
    longer = tmp_path / ".out.parquet.5.999999999.abc.tmp"  # the target out.parquet.5
    for p in (live, dead, other, longer):
        p.write_bytes(b"x")
    with lio.atomic_path(target) as tmp:
        tmp.write_bytes(b"new")
    assert sorted(p.name for p in tmp_path.iterdir()) == sorted([live.name, other.name, longer.name, "out.parquet"])


def test_streaming_read_and_write_with_tiny_batches(tmp_path):
    rng = np.random.default_rng(0)
    n = 53
    emb = rng.normal(size=(n, 3)).astype(np.float32)
    lists = pa.array([None if i % 11 == 4 else list(e) for i, e in enumerate(emb)], type=pa.list_(pa.float32()))
    fixed = pa.FixedSizeListArray.from_arrays(pa.array(emb.ravel()), 3)
    num = pa.array([None if i % 7 == 0 else float(i) for i in range(n)])
    table = pa.table({"emb": lists, "fixed": fixed, "num": num, "label": pa.array(np.arange(n) % 3)})
    path = tmp_path / "small.parquet"
    pq.write_table(table, path, row_group_size=10)
    pf = lio.open_parquet(path)
    plan = lio.plan_features(pf, label="label")
    streamed = lio.read_features(pf, plan, batch_rows=4)
    whole = lio.read_features(table, plan, batch_rows=n)
    np.testing.assert_array_equal(streamed, whole)
    np.testing.assert_array_equal(streamed[:, 3:6], emb)
    assert np.all(streamed[4, :3] == 0) and streamed[0, 6] == pytest.approx(np.nanmean(num.to_numpy(False)[1:]))
    # the row numbers in errors count across batches
    bad = table.set_column(2, "num", pa.array([1.0] * 41 + [np.nan] + [1.0] * 11))
    pq.write_table(bad, tmp_path / "bad.parquet", row_group_size=10)
    with pytest.raises(lio.DataError, match="holds nan at row 41"):
        lio.read_features(lio.open_parquet(tmp_path / "bad.parquet"), plan, batch_rows=4)
    added = pa.table({"is_clean": pa.array(np.arange(n) % 2 == 0)})
    written = lio.write_with_columns(pf, tmp_path / "out.parquet", added, keep=np.arange(n) % 2 == 0, batch_rows=3)
    out = pq.read_table(tmp_path / "out.parquet")
    assert written == out.num_rows == 27 and out.column_names == ["emb", "fixed", "num", "label", "is_clean"]
    assert out.column("label").to_pylist() == list(np.arange(0, n, 2) % 3)


def test_cli_streams_in_tiny_batches(tmp_path, monkeypatch):
    monkeypatch.setattr(lio, "batch_rows_for", lambda plan, target_bytes=0: 6)
    src = tmp_path / "data.parquet"
    pq.write_table(_table(50), src, row_group_size=7)
    result = CliRunner().invoke(cli, ["filter", str(src), *FAST, "--noise-rate", "0.2"])
    assert result.exit_code == 0, result.output
    out = pq.read_table(tmp_path / "data.clean.parquet")
    assert out.num_rows == 50 and out.column("key").to_pylist() == [f"k{i}" for i in range(50)]
