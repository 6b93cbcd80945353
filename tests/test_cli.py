"""The command line: click's CliRunner and real subprocesses on small parquet files."""

from __future__ import annotations

import hashlib
import json
import os
import subprocess
import sys

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from click.testing import CliRunner

from labelclean import io as lio
from labelclean.cli import cli
from tests.helpers import FAST, embedding_table, image_table, tabular_table, write

ADDED = ["is_clean", "pseudo_label", "label_quality"]


def invoke(*args: str):
    return CliRunner().invoke(cli, [str(a) for a in args])


def digest(path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


@pytest.fixture(scope="module")
def tabular_run(tmp_path_factory):
    """One filter run on the tabular file, shared by the checks below."""
    folder = tmp_path_factory.mktemp("tab")
    table = tabular_table(150)
    src = write(table, folder / "data.parquet")
    before = digest(src)
    result = invoke("filter", src, *FAST)
    return folder, table, src, before, result


def test_filter_keeps_every_column_and_row_and_adds_three(tabular_run):
    folder, table, src, before, result = tabular_run
    assert result.exit_code == 0, result.output
    out = pq.read_table(folder / "data.clean.parquet")
    assert out.column_names == table.column_names + ADDED
    assert out.select(table.column_names).equals(table)
    assert out.schema.field("pseudo_label").type == table.schema.field("label").type == pa.string()
    assert out.schema.field("is_clean").type == pa.bool_()
    assert out.schema.field("label_quality").type == pa.float32()
    assert digest(src) == before  # the input is never modified


def test_filter_added_columns_are_consistent(tabular_run):
    folder, table, *_ = tabular_run
    out = pq.read_table(folder / "data.clean.parquet").to_pandas()
    q = out.label_quality.to_numpy()
    assert ((q >= 0) & (q <= 1)).all()
    clean = out.is_clean.to_numpy()
    assert (out.pseudo_label[clean] == out.label[clean]).all()  # trusted rows keep their label
    assert set(out.pseudo_label) <= {"bird", "cat", "dog"}
    assert 0 < (~clean).sum() < len(out)


def test_filter_prints_a_summary(tabular_run):
    *_, result = tabular_run
    assert "labelclean filter: 150 rows" in result.stdout and "flagged" in result.stdout
    assert "estimated noise rate 0.100" in result.stdout
    assert "skipped: id (" in result.stdout and "note (" in result.stdout
    assert "f0, f1, f2, color" in result.stdout


def test_embedding_column_with_drop_and_json(tmp_path):
    table = embedding_table()
    src = write(table, tmp_path / "emb.parquet")
    out_path = tmp_path / "kept.parquet"
    result = invoke("filter", src, "-o", out_path, "--drop", "--json", *FAST)
    assert result.exit_code == 0, result.output
    summary = json.loads(result.stdout)
    assert summary["features"] == ["emb"] and summary["feature_shape"] == [8]
    assert summary["rows"] == 200 and summary["output"] == str(out_path)
    out = pq.read_table(out_path)
    assert out.num_rows == summary["rows_written"] == 200 - summary["flagged"]
    assert pc_all(out["is_clean"])
    ids = [int(k[1:]) for k in out["key"].to_pylist()]
    assert ids == sorted(ids)  # row order kept
    assert out.select(table.column_names).equals(table.take(pa.array(ids)))
    for key in ("noise_rate", "seconds", "flagged_fraction", "skipped_columns", "task"):
        assert key in summary


def pc_all(col) -> bool:
    return bool(np.all(col.to_numpy(zero_copy_only=False)))


def test_png_image_column_with_report(tmp_path):
    pytest.importorskip("PIL")
    pytest.importorskip("matplotlib")
    table = image_table()
    src = write(table, tmp_path / "img.parquet")
    result = invoke("filter", src, "--report", tmp_path / "r.html", "--label-column", "label", *FAST)
    assert result.exit_code == 0, result.output
    out = pq.read_table(tmp_path / "img.clean.parquet")
    assert out.select(table.column_names).equals(table)
    assert "row shape (1, 8, 8)" in result.stdout
    html = (tmp_path / "r.html").read_text()
    for section in ("id='quality'", "id='per-class'", "id='confusion'", "id='training'", "id='suspicious'"):
        assert section in html
    assert html.count('class="plot"') == 4 and html.count('class="thumb"') == 20
    assert "img" in html and ".png</td>" in html  # the 'name' column is shown beside the rows


@pytest.mark.parametrize(
    ("case", "code", "needle"),
    [
        ("missing file", 2, "does not exist"),
        ("not parquet", 1, "not a parquet file"),
        ("truncated", 1, "truncated or damaged"),
        ("empty table", 1, "no rows"),
        ("missing label column", 2, "label column 'target' not found"),
        ("unknown feature", 2, "unknown feature column 'nope'"),
        ("all labels null", 1, "all labels in column 'label' are null"),
        ("no usable feature", 1, "no usable feature column"),
        ("output exists", 2, "already exists; pass --force"),
        ("bad noise rate", 2, "Invalid value for '--noise-rate'"),
        ("bad param", 2, "has no parameter nope"),
        ("bad device", 2, "is not a torch device"),
        ("report exists", 2, "r.html' already exists"),
        ("output is input", 2, "is the input file"),
        ("one class", 1, "holds only one label value ('cat')"),
    ],
)
def test_errors_one_line_exit_code_no_file(tmp_path, case, code, needle):
    table = tabular_table(40)
    src = tmp_path / "data.parquet"
    args = ["filter", src, *FAST]
    if case == "not parquet":
        src.write_text("label,x\n1,2\n")
    elif case == "truncated":
        write(table, tmp_path / "full.parquet")
        src.write_bytes((tmp_path / "full.parquet").read_bytes()[:-50])
        os.remove(tmp_path / "full.parquet")
    elif case == "empty table":
        write(table.slice(0, 0), src)
    elif case == "all labels null":
        write(table.set_column(6, "label", pa.nulls(40, pa.string())), src)
    elif case == "no usable feature":
        write(table.select(["note", "label"]), src)
    elif case == "one class":
        write(table.set_column(6, "label", pa.array(["cat"] * 40)), src)
    elif case != "missing file":
        write(table, src)
    if case == "missing label column":
        args += ["--label-column", "target"]
    elif case == "unknown feature":
        args += ["--features", "f0,nope"]
    elif case == "output exists":
        (tmp_path / "data.clean.parquet").write_text("earlier result")
    elif case == "bad noise rate":
        args += ["--noise-rate", "1.5"]
    elif case == "bad param":
        args += ["--param", "nope=1"]
    elif case == "bad device":
        args += ["--device", "gpu0"]
    elif case == "report exists":
        (tmp_path / "r.html").write_text("old report")
        args += ["--report", tmp_path / "r.html"]
    elif case == "output is input":
        args += ["-o", src, "--force"]
    before = sorted(os.listdir(tmp_path))
    result = invoke(*args)
    assert result.exit_code == code, result.output
    assert needle in result.stderr
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("Error: "), result.stderr
    assert "Traceback" not in result.output and result.stdout == ""
    assert sorted(os.listdir(tmp_path)) == before  # no output, no temp file
    if case == "output exists":
        assert (tmp_path / "data.clean.parquet").read_text() == "earlier result"


def test_force_overwrites_and_debug_shows_the_exception(tmp_path):
    src = write(embedding_table(60), tmp_path / "d.parquet")
    (tmp_path / "d.clean.parquet").write_text("old")
    assert invoke("filter", src, "--force", "-q", *FAST).exit_code == 0
    assert pq.read_table(tmp_path / "d.clean.parquet").num_rows == 60
    result = invoke("filter", src, "--label-column", "nope", "--debug")
    assert result.exit_code != 0 and isinstance(result.exception, lio.OptionError)


@pytest.mark.parametrize("exc", [KeyboardInterrupt, RuntimeError])
def test_interrupted_write_leaves_no_output(tmp_path, monkeypatch, exc):
    src = write(embedding_table(60), tmp_path / "d.parquet")
    (tmp_path / "d.clean.parquet").write_bytes(b"earlier")

    def fail(a, b):
        raise exc("simulated failure before the rename")

    monkeypatch.setattr(lio.os, "replace", fail)
    result = invoke("filter", src, "--force", *FAST)
    assert result.exit_code == (130 if exc is KeyboardInterrupt else 1)
    assert sorted(os.listdir(tmp_path)) == ["d.clean.parquet", "d.parquet"]
    assert (tmp_path / "d.clean.parquet").read_bytes() == b"earlier"


def test_quiet_prints_nothing_and_help_has_examples(tmp_path):
    src = write(embedding_table(60), tmp_path / "d.parquet")
    result = invoke("filter", src, "--quiet", *FAST)
    assert result.exit_code == 0 and result.stdout == "" and result.stderr == ""
    for command in ("filter", "selftrain", "pu"):
        text = invoke(command, "--help").stdout
        assert "Examples:" in text and f"labelclean {command} data.parquet" in text
    assert "filter" in invoke("--help").stdout


def test_selftrain_fills_missing_labels(tmp_path):
    pytest.importorskip("labelclean.self_training")
    table = tabular_table(120)
    labels = table["label"].to_pylist()
    labels = [v if i < 60 else None for i, v in enumerate(labels)]
    table = table.set_column(6, "label", pa.array(labels))
    src = write(table, tmp_path / "s.parquet")
    result = invoke(
        "selftrain",
        src,
        "--epochs",
        "2",
        "--max-iter",
        "1",
        "--seed",
        "0",
        "--json",
        "--param",
        "min_steps=5",
        "--param",
        "hidden_dims=[32]",
    )
    assert result.exit_code == 0, result.output
    summary = json.loads(result.stdout)
    assert summary["unlabeled"] == 60
    out = pq.read_table(tmp_path / "s.clean.parquet")
    assert out.select(table.column_names).equals(table)
    assert out["pseudo_label"].null_count == 0
    assert out["pseudo_label"].to_pylist()[:60] == labels[:60]


def test_selftrain_consistency_epochs_reaches_the_estimator(tmp_path):
    pytest.importorskip("labelclean.self_training")
    table = tabular_table(120)
    labels = [v if i < 60 else None for i, v in enumerate(table["label"].to_pylist())]
    src = write(table.set_column(6, "label", pa.array(labels)), tmp_path / "s.parquet")
    base = ["selftrain", src, "--max-iter", "0", "--seed", "0", "--param", "min_steps=5", "--param", "hidden_dims=[16]"]
    base += ["--param", "estimator=network"]  # consistency training is a network phase

    def quality(*extra: str, name: str) -> list[float]:
        result = invoke(*base, *extra, "--output", str(tmp_path / name))
        assert result.exit_code == 0, result.output
        return pq.read_table(tmp_path / name)["label_quality"].to_pylist()

    option = quality("--consistency-epochs", "0", name="a.parquet")
    param = quality("--param", "consistency_epochs=0", name="b.parquet")
    consistency = quality("--consistency-epochs", "2", name="c.parquet")
    assert option == param  # the option sets the estimator's parameter
    assert option != consistency  # and it changes the first teacher's training
    assert quality("--consistency-epochs", "auto", name="d.parquet") == option  # 60 labels: fewer than 50 a class
    for bad in ("-1", "many"):
        result = invoke(*base, "--consistency-epochs", bad)
        assert result.exit_code == 2 and "consistency-epochs" in result.output
    result = invoke(*base, "--max-iter", "some")
    assert result.exit_code == 2 and "max-iter" in result.output


def test_pu_with_a_string_positive(tmp_path):
    pytest.importorskip("labelclean.pu")
    table = tabular_table(160)
    labels = ["cat" if (v == "cat" and i % 2 == 0) else None for i, v in enumerate(table["label"].to_pylist())]
    table = table.set_column(6, "label", pa.array(labels, pa.string()))
    src = write(table, tmp_path / "p.parquet")
    result = invoke(
        "pu",
        src,
        "--positive",
        "cat",
        "--epochs",
        "2",
        "--seed",
        "0",
        "--json",
        "--param",
        "hidden_dims=[32]",
        "--param",
        "prior_epochs=1",
    )
    assert result.exit_code == 0, result.output
    summary = json.loads(result.stdout)
    assert 0 < summary["class_prior"] < 1
    out = pq.read_table(tmp_path / "p.clean.parquet")
    assert out.select(table.column_names).equals(table)
    assert set(out["pseudo_label"].to_pylist()) <= {"cat", "negative"}
    assert all(p == "cat" for p, g in zip(out["pseudo_label"].to_pylist(), labels, strict=True) if g == "cat")
    missing = invoke("pu", src, "--epochs", "1")
    assert missing.exit_code == 2 and "--positive" in missing.stderr


def test_real_subprocess_runs(tmp_path):
    src = write(embedding_table(80), tmp_path / "d.parquet")
    env = {**os.environ, "PYTHONWARNINGS": "ignore", "OMP_NUM_THREADS": "1"}
    ok = subprocess.run(
        [sys.executable, "-m", "labelclean.cli", "filter", str(src), "--json", *FAST],
        capture_output=True,
        text=True,
        env=env,
        timeout=120,
    )
    assert ok.returncode == 0, ok.stderr
    assert json.loads(ok.stdout)["rows"] == 80
    progress = ok.stderr.splitlines()  # stderr is not a terminal: a plain line per phase, no bars
    assert progress and all(line.startswith(("reading:", "training:", "writing:")) for line in progress), ok.stderr
    again = subprocess.run(
        [sys.executable, "-m", "labelclean.cli", "filter", str(src)],
        capture_output=True,
        text=True,
        env=env,
        timeout=120,
    )
    assert again.returncode == 2 and again.stdout == ""
    assert again.stderr.count("\n") == 1 and "already exists" in again.stderr


def test_progress_bars_draw_every_stage():
    pytest.importorskip("rich")
    from labelclean.cli._common import ProgressBars

    with ProgressBars() as bars:
        bars("reading", 5, 10)
        bars("training", 3, None)
        bars("training", 4, 4)
        bars("writing", 10, 10)
    assert set(bars._tasks) == {"reading", "training", "writing"}
