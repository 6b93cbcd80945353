"""What the commands share (labelclean/cli/_common.py): errors, faults and interrupts, ``--n-jobs``, streaming.

A failed run says what went wrong on one line of stderr, exits with its code and writes nothing;
an interrupted or failed write leaves the previous output as it was.
"""

from __future__ import annotations

import errno
import hashlib
import os
import re
import signal
import subprocess
import sys
import textwrap
import threading
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from click.testing import CliRunner

from labelclean import io as lio
from labelclean.cli import cli
from tests.helpers import TINY_CLI as FAST
from tests.helpers import tiny_table as _table
from tests.helpers import write

ROOT = Path(__file__).resolve().parents[1]

PROGRESS_LINE = re.compile(r"^(reading|pretraining|training|writing)\b")


def first_line_only(message: str) -> bool:
    """The error is one line, the last one; any line before it is a progress line."""
    lines = message.strip().splitlines()
    return bool(lines) and lines[-1].startswith("Error: ") and all(PROGRESS_LINE.match(x) for x in lines[:-1])


# ---------------------------------------------------------------------------
# Bad input: every case × every command
# ---------------------------------------------------------------------------

COMMANDS = {
    "filter": ["--noise-rate", "0.2"],
    "selftrain": ["--max-iter", "1"],
    "pu": ["--positive", "1", "--prior", "0.6"],
}


def _cli_case(tmp: Path, case: str) -> tuple[list, int, str]:
    """Build the files for ``case`` in ``tmp``; return (extra args, exit code, text in the error)."""
    src = tmp / "data.parquet"
    t = _table()
    n = t.num_rows
    if case == "missing file":
        return [], 2, "does not exist"
    if case == "empty file":
        src.write_bytes(b"")
        return [], 1, "not a parquet file"
    if case == "truncated file":
        write(t, tmp / "full.parquet")
        src.write_bytes((tmp / "full.parquet").read_bytes()[:-40])
        (tmp / "full.parquet").unlink()
        return [], 1, "truncated or damaged"
    if case == "CSV file":
        src.write_text("x,label\n1,0\n")
        return [], 1, "not a parquet file"
    if case == "folder":
        src.mkdir()
        return [], 2, "is a folder"
    if case == "no rows":
        write(t.slice(0, 0), src)
        return [], 1, "no rows"
    if case == "missing label column":
        write(t, src)
        return ["--label-column", "target"], 2, "label column 'target' not found"
    if case == "all labels null":
        write(t.set_column(2, "label", pa.nulls(n, pa.int64())), src)
        return [], 1, "are null"
    if case == "nested label column":
        write(t.set_column(2, "label", pa.array([[1, 2]] * n)), src)
        return [], 1, "labels must be scalars"
    if case == "only unsupported feature types":
        write(t.select(["label"]).append_column("m", pa.array([{"a": 1}] * n, pa.map_(pa.string(), pa.int64()))), src)
        return [], 1, "no usable feature column"
    if case == "struct feature named":
        write(t.append_column("s", pa.array([{"a": 1, "b": 2.0}] * n)), src)
        return ["--features", "s"], 1, "cannot be used as a feature"
    if case == "list of lists feature":
        write(t.set_column(1, "emb", pa.array([[[1.0]]] * n)), src)
        return ["--features", "emb"], 1, "not of numbers"
    if case == "NaN inside an embedding":
        emb = np.random.default_rng(0).normal(size=(n, 4)).astype(np.float32)
        emb[9, 2] = np.nan
        write(t.set_column(1, "emb", pa.array(list(emb), type=pa.list_(pa.float32()))), src)
        return [], 1, "column 'emb' holds nan at row 9"
    if case == "inf in a numeric column":
        write(t.append_column("f", pa.array(np.where(np.arange(n) == 4, np.inf, 1.0))), src)
        return [], 1, "column 'f' holds inf at row 4"
    if case == "ragged embeddings":
        write(t.set_column(1, "emb", pa.array([[1.0, 2.0]] * (n - 1) + [[1.0]])), src)
        return [], 1, "lists of different lengths"
    write(t, src)
    if case == "output in a missing folder":
        return ["-o", tmp / "nope" / "out.parquet"], 2, "does not exist; create it first"
    if case == "output exists":
        (tmp / "data.clean.parquet").write_bytes(b"earlier result")
        return [], 2, "already exists; pass --force"
    if case == "output is the input":
        return ["-o", src, "--force"], 2, "is the input file"
    if case == "output is a link to the input":
        (tmp / "link.parquet").symlink_to(src)
        return ["-o", tmp / "link.parquet", "--force"], 2, "is the input file"
    if case == "output is a folder":
        (tmp / "outdir").mkdir()
        return ["-o", tmp / "outdir", "--force"], 2, "is a folder"
    if case == "n-jobs 0":
        return ["--n-jobs", "0"], 2, "--n-jobs"
    if case == "negative seed":
        return ["--seed", "-1"], 2, "--seed"
    if case == "bad parameter value":
        return ["--param", "lr=-1"], 2, "'lr' parameter"
    if case == "unknown parameter":
        return ["--param", "nope=1"], 2, "has no parameter nope"
    raise AssertionError(case)


CLI_CASES = [
    "missing file",
    "empty file",
    "truncated file",
    "CSV file",
    "folder",
    "no rows",
    "missing label column",
    "all labels null",
    "nested label column",
    "only unsupported feature types",
    "struct feature named",
    "list of lists feature",
    "NaN inside an embedding",
    "inf in a numeric column",
    "ragged embeddings",
    "output in a missing folder",
    "output exists",
    "output is the input",
    "output is a link to the input",
    "output is a folder",
    "n-jobs 0",
    "negative seed",
    "bad parameter value",
    "unknown parameter",
]


def _listing(folder: Path) -> dict[str, bytes | None]:
    return {p.name: (p.read_bytes() if p.is_file() and not p.is_symlink() else None) for p in folder.iterdir()}


@pytest.mark.parametrize("command", list(COMMANDS))
@pytest.mark.parametrize("case", CLI_CASES)
def test_cli_bad_input_one_line_exit_code_nothing_written(tmp_path, command, case):
    args, code, needle = _cli_case(tmp_path, case)
    before = _listing(tmp_path)
    result = CliRunner().invoke(
        cli, [command, str(tmp_path / "data.parquet"), *FAST, *COMMANDS[command], *map(str, args)]
    )
    assert result.exit_code == code, result.output
    assert needle in result.stderr, result.stderr
    assert first_line_only(result.stderr)
    assert "Traceback" not in result.output and result.stdout == ""
    assert _listing(tmp_path) == before  # input untouched, no output, no temporary file


@pytest.mark.parametrize("command", list(COMMANDS))
def test_cli_unreadable_input_and_unwritable_folder(tmp_path, monkeypatch, command):
    src = write(_table(), tmp_path / "data.parquet")
    real_open = open

    def deny_input(path, *args, **kwargs):
        if str(path) == str(src):
            raise PermissionError(errno.EACCES, "Permission denied", str(path))
        return real_open(path, *args, **kwargs)

    monkeypatch.setattr("builtins.open", deny_input)
    result = CliRunner().invoke(cli, [command, str(src), *FAST, *COMMANDS[command]])
    assert result.exit_code == 1 and first_line_only(result.stderr)
    assert f"permission denied on '{src}'" in result.stderr
    monkeypatch.undo()

    def deny_folder(*args, **kwargs):
        raise PermissionError(errno.EACCES, "Permission denied", str(tmp_path))

    monkeypatch.setattr(lio.tempfile, "mkstemp", deny_folder)
    result = CliRunner().invoke(cli, [command, str(src), *FAST, *COMMANDS[command]])
    assert result.exit_code == 1 and first_line_only(result.stderr)
    assert "permission denied" in result.stderr and "Traceback" not in result.output
    assert sorted(os.listdir(tmp_path)) == ["data.parquet"]


@pytest.mark.skipif(os.geteuid() == 0, reason="root reads files whatever their permissions")
def test_cli_really_unreadable_input(tmp_path):
    src = write(_table(), tmp_path / "data.parquet")
    src.chmod(0)
    result = CliRunner().invoke(cli, ["filter", str(src), *FAST])
    assert result.exit_code == 1 and "permission denied" in result.stderr


# ---------------------------------------------------------------------------
# No data loss
# ---------------------------------------------------------------------------

_KILL_SCRIPT = textwrap.dedent(
    """
    import signal, sys, time
    import pyarrow.parquet as pq
    import labelclean.api as api

    # A shell that starts jobs in the background hands them SIGINT ignored; a user's terminal does not.
    signal.signal(signal.SIGINT, signal.default_int_handler)

    stage = sys.argv[1]
    real_fit, real_write = api._fit, pq.ParquetWriter.write_batch

    def slow_fit(*args, **kwargs):
        out = real_fit(*args, **kwargs)
        if stage == "fit":
            print("STAGE", flush=True)
            time.sleep(60)
        return out

    def slow_write(self, *args, **kwargs):
        real_write(self, *args, **kwargs)
        if stage == "write":
            print("STAGE", flush=True)
            time.sleep(60)

    api._fit, pq.ParquetWriter.write_batch = slow_fit, slow_write
    from labelclean.cli import main
    main(sys.argv[2:])
    """
)


@pytest.mark.parametrize(("sig", "stage"), [(signal.SIGKILL, "write"), (signal.SIGINT, "fit")])
def test_killed_run_leaves_the_previous_output_intact(tmp_path, sig, stage):
    src = write(_table(200), tmp_path / "data.parquet")
    out = tmp_path / "data.clean.parquet"
    out.write_bytes(b"previous output")
    source_digest = hashlib.sha256(src.read_bytes()).hexdigest()
    args = ["filter", str(src), "--force", *FAST, "--noise-rate", "0.2"]
    env = {**os.environ, "OMP_NUM_THREADS": "1", "PYTHONWARNINGS": "ignore"}
    proc = subprocess.Popen(
        [sys.executable, "-c", _KILL_SCRIPT, stage, *args],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env=env,
        cwd=ROOT,
    )
    try:
        assert proc.stdout.readline().strip() == "STAGE"  # blocks until the run reaches the stage
        if stage == "write":  # the temporary file is half written right now
            assert [p.name for p in tmp_path.glob(".data.clean.parquet.*.tmp")]
        proc.send_signal(sig)
        _, stderr = proc.communicate(timeout=60)
    finally:
        proc.kill()
    assert out.read_bytes() == b"previous output"
    assert hashlib.sha256(src.read_bytes()).hexdigest() == source_digest
    leftovers = sorted(p.name for p in tmp_path.iterdir())
    if sig == signal.SIGINT:
        assert proc.returncode == 130 and first_line_only(stderr)
        assert stderr.strip().splitlines()[-1] == "Error: interrupted; no output was written."
        assert leftovers == ["data.clean.parquet", "data.parquet"]
    else:  # SIGKILL leaves the hidden temporary file; the next run on this output removes it
        assert proc.returncode == -signal.SIGKILL and len(leftovers) == 3
        with lio.atomic_path(out) as tmp:
            tmp.write_bytes(b"next output")
        assert sorted(p.name for p in tmp_path.iterdir()) == ["data.clean.parquet", "data.parquet"]


def test_full_disk_gives_a_clear_message_and_removes_the_temporary_file(tmp_path, monkeypatch):
    src = write(_table(), tmp_path / "data.parquet")
    (tmp_path / "data.clean.parquet").write_bytes(b"previous output")

    def full(self, *args, **kwargs):
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(pq.ParquetWriter, "write_batch", full)
    result = CliRunner().invoke(cli, ["filter", str(src), "--force", *FAST, "--noise-rate", "0.2"])
    assert result.exit_code == 1 and first_line_only(result.stderr)
    assert "no space left on the device" in result.stderr and "-o" in result.stderr
    assert sorted(os.listdir(tmp_path)) == ["data.clean.parquet", "data.parquet"]
    assert (tmp_path / "data.clean.parquet").read_bytes() == b"previous output"


def test_failed_rename_permission_error_removes_the_temporary_file(tmp_path, monkeypatch):
    src = write(_table(), tmp_path / "data.parquet")

    def deny(a, b):
        raise PermissionError(errno.EACCES, "Permission denied", str(b))

    monkeypatch.setattr(lio.os, "replace", deny)
    result = CliRunner().invoke(cli, ["filter", str(src), *FAST, "--noise-rate", "0.2"])
    assert result.exit_code == 1 and "permission denied on" in result.stderr and first_line_only(result.stderr)
    assert sorted(os.listdir(tmp_path)) == ["data.parquet"]


# ---------------------------------------------------------------------------
# Threads
# ---------------------------------------------------------------------------


def test_cli_n_jobs_reaches_the_estimator_and_no_thread_is_left(tmp_path, monkeypatch):
    import labelclean.api as api

    fitted = []
    real_fit = api._fit

    def record(est, *args, **kwargs):
        fitted.append(est)
        return real_fit(est, *args, **kwargs)

    monkeypatch.setattr(api, "_fit", record)
    src = write(_table(), tmp_path / "data.parquet")
    threads_before = set(threading.enumerate())
    result = CliRunner().invoke(cli, ["filter", str(src), "--n-jobs", "1", *FAST, "--noise-rate", "0.2"])
    assert result.exit_code == 0, result.output
    assert fitted[0].n_jobs == 1
    assert set(threading.enumerate()) == threads_before  # the progress poller was joined


def test_cli_streams_in_tiny_batches(tmp_path, monkeypatch):
    monkeypatch.setattr(lio, "batch_rows_for", lambda plan, target_bytes=0: 6)
    src = tmp_path / "data.parquet"
    pq.write_table(_table(50), src, row_group_size=7)
    result = CliRunner().invoke(cli, ["filter", str(src), *FAST, "--noise-rate", "0.2"])
    assert result.exit_code == 0, result.output
    out = pq.read_table(tmp_path / "data.clean.parquet")
    assert out.num_rows == 50 and out.column("key").to_pylist() == [f"k{i}" for i in range(50)]
