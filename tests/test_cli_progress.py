"""The commands' progress displays (labelclean/cli/_common.py): a line per phase in a log, bars on a terminal."""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys

import pytest

from labelclean import _progress
from tests.helpers import embedding_table, write


def test_progress_log_lines():
    from labelclean.cli._common import ProgressLog

    lines = []
    log = ProgressLog()
    log._line = lambda *parts: lines.append(", ".join(p for p in parts if p))
    log.every = 0.0
    base = dict(phase="co-teaching", total=200, unit="steps", steps=0, loss=None)
    log.on_event("training", _progress.Event("start", done=0, rows=0, seconds=0.0, **base))
    log.on_event("training", _progress.Event("advance", done=100, rows=5300, seconds=1.0, **{**base, "loss": 0.5}))
    log.on_event("training", _progress.Event("end", done=200, rows=10070, seconds=1.9, **{**base, "loss": 0.412}))
    assert lines == [
        "training: co-teaching 200 steps ...",
        "training: co-teaching 100/200 steps, 1.0 s, 5,300 rows/s, loss 0.500, 1.0 s left",
        "training: co-teaching 200 steps, 1.9 s, 5,300 rows/s, loss 0.412",
    ]


def test_progress_bars_draw_training_phases():
    pytest.importorskip("rich")
    from labelclean.cli._common import ProgressBars

    base = dict(phase="warm-up", total=10, unit="steps", steps=0, rows=0, loss=None, seconds=0.0)
    with ProgressBars() as bars:
        bars("reading", 5, 10)
        bars.on_event("training", _progress.Event("start", done=0, **base))
        bars.on_event("training", _progress.Event("advance", done=4, **{**base, "rows": 400, "seconds": 1.0}))
        task = bars._progress.tasks[bars._tasks["training: warm-up"]]
        assert task.completed == 4 and task.total == 10
        assert task.fields["count"] == "4/10 steps" and task.fields["rate"] == "400 rows/s"
        assert task.fields["left"] == "1.5 s left"
    assert set(bars._tasks) == {"reading", "training: warm-up"}


def cli(tmp_path, *args):
    src = write(embedding_table(120), tmp_path / "small.parquet")
    env = {**os.environ, "PYTHONWARNINGS": "ignore", "OMP_NUM_THREADS": "1"}
    fast = ["--epochs", "2", "--seed", "0", "--param", "hidden_dims=[16]", "--param", "estimator=network"]
    return subprocess.run(
        [sys.executable, "-m", "labelclean", "filter", str(src), *fast, *args],
        capture_output=True,
        text=True,
        env=env,
        timeout=300,
    )


def test_cli_logs_one_line_per_phase_when_stderr_is_not_a_terminal(tmp_path):
    run = cli(tmp_path, "--json")
    assert run.returncode == 0, run.stderr
    assert json.loads(run.stdout)["rows"] == 120  # stdout stays clean JSON
    lines = run.stderr.splitlines()
    starts = dict(re.findall(r"^training: ([\w-]+) ([\d,]+) steps \.\.\.$", run.stderr, re.M))
    ends = dict(
        re.findall(r"^training: ([\w-]+) ([\d,]+) steps, [\d.]+ s, [\d,]+ rows/s, loss [\d.]+$", run.stderr, re.M)
    )
    assert list(starts) == ["warm-up", "co-teaching", "refinement"], run.stderr
    assert ends == starts  # each phase ends at the total it announced
    assert len(lines) == 6, run.stderr


def test_cli_quiet_prints_no_progress(tmp_path):
    run = cli(tmp_path, "--quiet")
    assert run.returncode == 0 and run.stdout == "" and run.stderr == ""
