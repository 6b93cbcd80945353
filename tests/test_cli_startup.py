"""The command line answers help, version, usage and data errors without loading the heavy stack.

Each case runs the real ``labelclean`` entry point in a fresh interpreter and reads back which
modules it imported: PyTorch, scikit-learn, matplotlib and the estimators load only when a
command trains.
"""

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

HEAVY = (
    "torch",
    "sklearn",
    "matplotlib",
    "labelclean.coteaching",
    "labelclean.self_training",
    "labelclean.pu",
    "labelclean.contrastive",
    "labelclean._base",
    "labelclean.report",
    "labelclean.consensus",
)

ROOT = str(Path(__file__).resolve().parents[1])
#: The checkout first on the path, so the probe runs this labelclean from any folder.
ENV = {**os.environ, "PYTHONPATH": os.pathsep.join(filter(None, [ROOT, os.environ.get("PYTHONPATH")]))}

PROBE = """
import json, sys
from labelclean.cli import main
try:
    main(sys.argv[1:])
except SystemExit as exc:
    code = exc.code
else:
    code = 0
heavy = [m for m in {heavy!r} if m in sys.modules]
print("@@" + json.dumps({{"code": code, "heavy": heavy}}))
"""


def run_cli(*args: str, cwd) -> tuple[int, list[str], str]:
    proc = subprocess.run(
        [sys.executable, "-c", PROBE.format(heavy=HEAVY), *args],
        cwd=cwd,
        capture_output=True,
        text=True,
        timeout=600,  # stops a hang only: a loaded CI machine may be slow
        env=ENV,
    )
    line = next(x for x in proc.stdout.splitlines() if x.startswith("@@"))
    out = json.loads(line[2:])
    return out["code"], out["heavy"], proc.stderr


@pytest.fixture(scope="module")
def tables(tmp_path_factory):
    d = tmp_path_factory.mktemp("startup")
    rng = np.random.default_rng(0)
    x = rng.normal(size=(40, 3)).astype(np.float32)
    pq.write_table(pa.table({"a": x[:, 0], "b": x[:, 1], "label": np.arange(40) % 2}), d / "ok.parquet")
    pq.write_table(pa.table({"a": x[:, 0], "label": pa.nulls(40, pa.int64())}), d / "null_labels.parquet")
    pq.write_table(pa.table({"a": x[:, 0], "label": np.zeros(40, dtype=np.int64)}), d / "one_class.parquet")
    (d / "not_parquet.parquet").write_text("this is not parquet\n")
    return d


@pytest.mark.parametrize(
    "args, code, needle",
    [
        (["--help"], 0, ""),
        (["--version"], 0, ""),
        (["filter", "--help"], 0, ""),
        (["pu", "--help"], 0, ""),
        (["consensus", "--help"], 0, ""),
        (["consensus", "ok.parquet"], 2, "--annotators"),
        (["filter"], 2, "Missing argument"),
        (["filter", "ok.parquet", "--no-such-option"], 2, "No such option"),
        (["filter", "ok.parquet", "--device", "gpu0"], 2, "is not a torch device"),
        (["filter", "missing.parquet"], 2, "missing.parquet"),
        (["filter", "not_parquet.parquet"], 1, "parquet"),
        (["filter", "ok.parquet", "--label-column", "y"], 2, "label column 'y' not found"),
        (["filter", "ok.parquet", "--param", "no_such_param=1"], 2, "no_such_param"),
        (["filter", "null_labels.parquet"], 1, "null"),
        (["selftrain", "one_class.parquet"], 1, "only one label value"),
        (["pu", "ok.parquet"], 2, "--positive"),
        (["pu", "ok.parquet", "--positive", "7"], 1, "no row of column 'label' has the positive label"),
    ],
)
def test_help_version_and_errors_load_no_heavy_module(tables, args, code, needle):
    got_code, heavy, stderr = run_cli(*args, cwd=tables)
    assert heavy == [], f"{args} imported {heavy}"
    assert got_code == code, stderr
    assert needle in stderr
    assert not list(tables.glob("*.clean.parquet"))  # nothing written on an error


def test_a_training_command_does_load_the_estimators(tables, tmp_path):
    code, heavy, stderr = run_cli(
        "filter", str(tables / "ok.parquet"), "-o", str(tmp_path / "out.parquet"), "--epochs", "1", "-q", cwd=tmp_path
    )
    assert code == 0, stderr
    assert "labelclean.coteaching" in heavy and "torch" in heavy  # the probe sees real imports


def test_the_package_imports_without_loading_torch_or_pyarrow():
    probe = "import sys, labelclean; print(sorted(m for m in ('torch', 'pyarrow', 'sklearn') if m in sys.modules))"
    out = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, timeout=60, check=True, env=ENV)
    assert out.stdout.strip() == "[]"
    probe = "import labelclean; print(labelclean.find_label_issues.__module__, 'find_label_issues' in dir(labelclean))"
    out = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, timeout=60, check=True, env=ENV)
    assert out.stdout.split() == ["labelclean.detection", "True"]
