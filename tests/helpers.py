"""What several test files share: small parquet files, fast settings, the tiniest fits of the three estimators."""

from __future__ import annotations

import importlib
import io
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq

FAST = ["--epochs", "2", "--noise-rate", "0.1", "--seed", "0", "--param", "hidden_dims=[32]"]
FAST_PARAMS = {"max_epochs": 2, "forget_rate": 0.1, "random_state": 0, "hidden_dims": (32,)}
#: The columns a run adds to its input, in order.
ADDED = ["is_clean", "pseudo_label", "label_quality"]


def tabular_table(n: int = 240, seed: int = 0) -> pa.Table:
    """Three classes with string labels, numeric features, a categorical, an id and a free-text note."""
    rng = np.random.default_rng(seed)
    y = rng.integers(0, 3, n)
    X = rng.normal(0, 1, (n, 3)) + 3.0 * np.eye(3)[y]
    names = np.array(["bird", "cat", "dog"])
    labels = names[y].copy()
    flip = rng.random(n) < 0.15
    labels[flip] = names[(y[flip] + 1) % 3]
    return pa.table(
        {
            "id": pa.array(np.arange(1000, 1000 + n)),
            "f0": pa.array(X[:, 0]),
            "f1": pa.array(X[:, 1].astype(np.float32)),
            "f2": pa.array(np.round(X[:, 2] * 10).astype(np.int32)),
            "color": pa.array(np.array(["red", "green"])[rng.integers(0, 2, n)]),
            "note": pa.array([f"free text {i}" for i in range(n)]),
            "label": pa.array(labels),
        }
    )


def embedding_table(n: int = 200, width: int = 8, seed: int = 1) -> pa.Table:
    rng = np.random.default_rng(seed)
    y = rng.integers(0, 2, n)
    emb = rng.normal(0, 1, (n, width)).astype(np.float32)
    emb[:, 0] += 3.0 * y
    return pa.table(
        {
            "key": pa.array([f"k{i}" for i in range(n)]),
            "emb": pa.array(list(emb), type=pa.list_(pa.float32())),
            "label": pa.array(y.astype(np.int64)),
        }
    )


def png_bytes(img: np.ndarray) -> bytes:
    from PIL import Image

    buf = io.BytesIO()
    Image.fromarray(img).save(buf, format="PNG")
    return buf.getvalue()


def image_table(n: int = 120, seed: int = 2, rgb: bool = False) -> pa.Table:
    """8×8 images: a bright left half (class 0) or right half (class 1)."""
    rng = np.random.default_rng(seed)
    y = rng.integers(0, 2, n)
    imgs = rng.integers(0, 60, (n, 8, 8)).astype(np.uint8)
    imgs[y == 0, :, :4] += 150
    imgs[y == 1, :, 4:] += 150
    if rgb:
        imgs = np.repeat(imgs[..., None], 3, axis=3)
    return pa.table(
        {
            "name": pa.array([f"img{i}.png" for i in range(n)]),
            "image": pa.array([png_bytes(im) for im in imgs], type=pa.binary()),
            "label": pa.array(y.astype(np.int64)),
        }
    )


def write(table: pa.Table, path: Path) -> Path:
    pq.write_table(table, path)
    return path


def partitioned(folder: Path, n: int = 150) -> tuple[Path, pa.Table, list[Path]]:
    """Three parts of one table in hive folders, with the side files partitioned writers leave behind."""
    table = tabular_table(n)
    root = folder / "data"
    (root / "split=a").mkdir(parents=True)
    (root / "split=b").mkdir()
    (root / "_temporary").mkdir()
    cuts = [0, n // 3, 2 * n // 3, n]
    paths = [
        root / "split=a" / "part-0.parquet",
        root / "split=a" / "part-1.parquet",
        root / "split=b" / "part-2.parquet",
    ]
    for path, lo, hi in zip(paths, cuts[:-1], cuts[1:], strict=True):
        write(table.slice(lo, hi - lo), path)
    (root / "_SUCCESS").write_text("")
    (root / "split=a" / ".part-0.parquet.crc").write_bytes(b"crc")
    (root / "_temporary" / "junk.parquet").write_bytes(b"not parquet")
    return root, table, paths


# ---------------------------------------------------------------------------
# The tiniest fits: networks of 8 units, one epoch, a few dozen rows
# ---------------------------------------------------------------------------

# The estimators are named, not imported: the files that only need parquet builders load no torch.
TINY = {"hidden_dims": (8,), "max_epochs": 1, "batch_size": 16, "device": "cpu"}

EXTRA = {
    "CoTeachingFilter": {"estimator": "network", "forget_rate": 0.2, "refine_epochs": 0},
    "SelfTrainer": {"estimator": "network", "min_steps": 1},
    "PUClassifier": {"estimator": "network", "method": "nnpu", "prior": 0.6, "prior_epochs": 1},
}


def tiny(cls, **params):
    """A fast instance of one of the three estimators (a few steps, a tiny network)."""
    extra = dict(EXTRA[cls.__name__])
    if cls.__name__ == "SelfTrainer":  # one student round; the strategy comes from the estimator's own package
        extra["strategy"] = importlib.import_module(cls.__module__).NoisyStudent(max_iter=1)
    return cls(**{**TINY, **extra, **params})


def xy(n=40, d=4, seed=0):
    rng = np.random.RandomState(seed)
    X = rng.normal(size=(n, d)).astype(np.float32)
    return X, (X[:, 0] > 0).astype(np.int64)


def labels_for(cls, y):
    """Labels each estimator reads: half unlabeled (-1) for SelfTrainer, as given otherwise."""
    if cls.__name__ == "SelfTrainer":
        y = y.copy()
        y[::2] = -1
    return y


#: 40 rows of 4 features, labeled by the sign of the first one.
X40, Y40 = xy()

#: The tiniest run of a command: one epoch of an 8-unit network, batches of 16.
TINY_CLI = ["--epochs", "1", "--seed", "0", "--param", "hidden_dims=[8]", "--param", "batch_size=16"]


def tiny_table(n=40):
    """``n`` rows of a key, a 4-wide embedding and a binary label."""
    return embedding_table(n, width=4)


def noisy_binary(n=240, seed=0):
    """Two classes in 6 dimensions, 10 % of the labels flipped: ``(X, y)``."""
    rng = np.random.default_rng(seed)
    y = rng.integers(0, 2, n)
    X = (rng.normal(0, 1, (n, 6)) + 2.0 * y[:, None]).astype(np.float32)
    flip = rng.random(n) < 0.1
    return X, np.where(flip, 1 - y, y)
