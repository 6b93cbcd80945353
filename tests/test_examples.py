"""The example files (labelclean/examples.py): what the command-line page's commands read, run as printed on them."""

from __future__ import annotations

import os
import re
import shlex
import subprocess
import sys
from pathlib import Path

import pytest

from labelclean import examples

ROOT = Path(__file__).resolve().parents[1]
PAGE = ROOT / "docs" / "cli.md"
ENV = {
    **os.environ,
    "PYTHONPATH": os.pathsep.join(filter(None, [str(ROOT), os.environ.get("PYTHONPATH")])),
    "OMP_NUM_THREADS": "1",
}
#: The placeholder inputs of the generic examples (a file, a folder, a glob, several paths): not meant to exist.
PLACEHOLDERS = {"data.parquet", "data/", "data/part-*.parquet", "a.parquet", "votes.parquet"}


def shown_runs() -> list[tuple[str, str]]:
    """``(command, first output line)`` of every ``$ labelclean ...`` line in a text block of the page."""
    lines = PAGE.read_text().splitlines()
    return [(line[2:], lines[i + 1]) for i, line in enumerate(lines) if line.startswith("$ labelclean ")]


def shell_commands() -> list[str]:
    """Every ``labelclean ...`` line in a bash block of the page (comments stripped)."""
    text = PAGE.read_text()
    blocks = re.findall(r"```bash\n(.*?)```", text, flags=re.S)
    return [line.split("  #")[0].strip() for b in blocks for line in b.splitlines() if line.startswith("labelclean ")]


def test_every_file_a_command_reads_is_an_example_file_or_the_placeholder():
    names = set(examples.NAMES) | PLACEHOLDERS
    for command in shell_commands() + [c for c, _ in shown_runs()]:
        args = shlex.split(command)
        inputs = [a for a in args[2:3] if not a.startswith("-")]
        assert inputs and inputs[0] in names, f"{command!r} reads a file nothing writes"


@pytest.fixture(scope="module")
def example_dir(tmp_path_factory):
    d = tmp_path_factory.mktemp("examples")
    subprocess.run([sys.executable, "-m", "labelclean.examples", "write", str(d)], check=True, env=ENV, timeout=120)
    return d


@pytest.mark.parametrize("command, first_line", shown_runs(), ids=[c for c, _ in shown_runs()])
def test_a_shown_run_runs_as_printed(example_dir, command, first_line):
    args = shlex.split(command)[1:]
    proc = subprocess.run(
        [sys.executable, "-m", "labelclean", *args, "--force"],
        cwd=example_dir,
        capture_output=True,
        text=True,
        env=ENV,
        timeout=600,
    )
    assert proc.returncode == 0, proc.stderr
    head = re.match(r"labelclean \w+: [\d,]+ rows", first_line)
    assert head, f"the page shows no summary after {command!r}"
    assert proc.stdout.startswith(head.group(0)), proc.stdout
