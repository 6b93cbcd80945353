"""``labelclean selftrain --drop`` keeps trusted rows only: labeled ones, and filled ones only when confident."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import click
import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from sklearn.datasets import load_digits

from labelclean.cli.selftrain import strategy_for
from labelclean.detection import RELABEL_THRESHOLD
from labelclean.self_training import Consistency, NoisyStudent, Relabel

ROOT = Path(__file__).resolve().parents[1]
ENV = {
    **os.environ,
    "PYTHONPATH": os.pathsep.join(filter(None, [str(ROOT), os.environ.get("PYTHONPATH")])),
    "OMP_NUM_THREADS": "1",
}


def run(*args: str, cwd: Path) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "labelclean", *args], cwd=cwd, capture_output=True, text=True, env=ENV, timeout=600
    )


def test_selftrain_drop_keeps_labeled_rows_and_confident_fills(tmp_path):
    X, y = load_digits(return_X_y=True)
    X, y = X[:400] / 16.0, y[:400]
    rng = np.random.default_rng(0)
    labeled = rng.random(len(y)) < 0.3
    table = pa.table(
        {
            "row": np.arange(len(y)),
            "pixels": pa.FixedSizeListArray.from_arrays(pa.array(X.astype(np.float32).ravel()), 64),
            "label": pa.array(y, mask=~labeled),
        }
    )
    pq.write_table(table, tmp_path / "d.parquet")
    full = run("selftrain", "d.parquet", "--seed", "0", "--json", "-q", cwd=tmp_path)
    assert full.returncode == 0, full.stderr
    summary = json.loads(full.stdout)
    out = pq.read_table(tmp_path / "d.clean.parquet").to_pandas()
    filled = ~labeled
    quality, clean = out["label_quality"].to_numpy(), out["is_clean"].to_numpy()
    assert clean[labeled].all()
    assert (quality[filled & clean] >= RELABEL_THRESHOLD).all()  # a trusted fill is a confident one
    assert 0 < clean[filled].sum() < filled.sum()  # some fills are trusted, some are not
    assert summary["filled_trusted"] == int(clean[filled].sum())
    right = out["pseudo_label"].to_numpy() == y
    assert right[filled & clean].mean() >= right[filled].mean()  # the trusted fills are the better ones

    dropped = run("selftrain", "d.parquet", "--seed", "0", "--drop", "-o", "kept.parquet", "-q", cwd=tmp_path)
    assert dropped.returncode == 0, dropped.stderr
    kept = pq.read_table(tmp_path / "kept.parquet").to_pandas()
    np.testing.assert_array_equal(kept["row"].to_numpy(), np.flatnonzero(clean))
    assert kept["is_clean"].all()


@pytest.mark.parametrize(
    ("options", "expected"),
    [
        ({}, None),  # SelfTrainer's own choice
        ({"max_iter": "auto", "consistency_epochs": "auto"}, None),
        ({"relabel": True}, "relabel"),
        ({"relabel": True, "max_iter": 2, "threshold": 0.5}, Relabel(max_iter=2, threshold=0.5)),
        ({"threshold": 0.8}, NoisyStudent(threshold=0.8)),
        ({"max_iter": 0}, NoisyStudent(max_iter=0)),
        ({"consistency_epochs": 0}, NoisyStudent()),
        ({"consistency_epochs": 3}, Consistency(epochs=3)),
        ({"consistency_epochs": 3, "max_iter": 0}, Consistency(epochs=3)),
        ({"consistency_epochs": 3, "max_iter": 2}, NoisyStudent(max_iter=2, consistency=Consistency(epochs=3))),
    ],
)
def test_the_options_name_a_strategy(options, expected):
    given = {"relabel": False, "threshold": None, "max_iter": None, "consistency_epochs": None, **options}
    assert strategy_for(**given) == expected


def test_options_that_cannot_apply_together_are_usage_errors(tmp_path):
    with pytest.raises(click.UsageError, match="--consistency-epochs does not apply with --relabel"):
        strategy_for(True, None, None, 2)
    with pytest.raises(click.UsageError, match="add --max-iter"):
        strategy_for(False, 0.8, None, 2)
    pq.write_table(pa.table({"x": [0.0, 1.0, 2.0, 3.0], "label": [0, 1, None, None]}), tmp_path / "d.parquet")
    result = run("selftrain", "d.parquet", "--relabel", "--consistency-epochs", "2", cwd=tmp_path)
    assert result.returncode == 2 and "does not apply with --relabel" in result.stderr
