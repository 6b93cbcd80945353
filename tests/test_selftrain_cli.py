"""``labelclean selftrain --drop`` keeps trusted rows only: labeled ones, and filled ones only when confident."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
from sklearn.datasets import load_digits

from labelclean.detection import RELABEL_THRESHOLD

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
