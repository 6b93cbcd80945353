"""The bundled example: scikit-learn's digits as a parquet file with some labels flipped on purpose.

``python -m labelclean._demo_data digits.parquet`` writes it; then
``labelclean filter digits.parquet`` finds the flipped labels.
"""

from __future__ import annotations

import io as _stdio
import os
import sys

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq

from .io import atomic_path
from .noise import make_noisy_labels


def digits_table(noise: float = 0.2, *, images: bool = False, random_state: int = 0) -> pa.Table:
    """Digits (1,797 rows) with ``noise`` of the labels flipped.

    Columns: ``id``, ``pixels`` (64 numbers, a list column) or ``image`` (8×8 PNG bytes
    when ``images``) and ``label`` (noisy).

    Examples
    --------
    >>> t = digits_table(0.2)
    >>> t.column_names, t.num_rows
    (['id', 'pixels', 'label'], 1797)
    """
    from sklearn.datasets import load_digits

    X, y = load_digits(return_X_y=True)
    y_noisy = make_noisy_labels(y, noise, random_state=random_state)
    cols: dict[str, pa.Array] = {"id": pa.array(np.arange(len(y)))}
    if images:
        from PIL import Image

        def png(row: np.ndarray) -> bytes:
            buf = _stdio.BytesIO()
            Image.fromarray((row.reshape(8, 8) * 255 / 16).astype(np.uint8), mode="L").save(buf, format="PNG")
            return buf.getvalue()

        cols["image"] = pa.array([png(r) for r in X], type=pa.binary())
    else:
        flat = pa.array((X / 16.0).astype(np.float32).ravel())
        cols["pixels"] = pa.FixedSizeListArray.from_arrays(flat, 64)
    cols["label"] = pa.array(y_noisy.astype(np.int64))
    return pa.table(cols)


def write_demo_parquet(path: str | os.PathLike, noise: float = 0.2, *, images: bool = False) -> str:
    """Write :func:`digits_table` to ``path`` (atomically) and return the path."""
    with atomic_path(path) as tmp:
        pq.write_table(digits_table(noise, images=images), tmp)
    return str(path)


if __name__ == "__main__":  # pragma: no cover
    print(write_demo_parquet(sys.argv[1] if len(sys.argv) > 1 else "digits.parquet"))
