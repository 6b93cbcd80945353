"""Example datasets for trying the command line: ``python -m labelclean.examples write DIR``.

Every file is made from data that ships with scikit-learn (nothing is downloaded), with the
damage done on purpose so that the commands have something to find:

=========================  ===============================================================
file                       what it holds
=========================  ===============================================================
``digits.parquet``         the 1,797 digits, 8×8 pixels as a list column, 20 % of the
                           labels flipped (``labelclean filter``)
``digits_images.parquet``  the same rows with the pixels as PNG bytes (an image column)
``digits_partial.parquet`` the digits with 90 % of the labels removed, nulls
                           (``labelclean selftrain``)
``digits_pu.parquet``      40 % of the even digits labeled ``"even"``, every other label
                           null (``labelclean pu --positive even``)
``cancer.parquet``         the 569-row breast-cancer table, string labels ``"benign"`` /
                           ``"malignant"``, 20 % flipped, a categorical column and nulls
``cancer.csv``             the same table as CSV
``truth.parquet``          ``id`` and the true label of every digits row, to score a run
=========================  ===============================================================

Examples
--------
>>> import tempfile
>>> with tempfile.TemporaryDirectory() as d:
...     paths = write(d)
>>> sorted(p.name for p in paths)[:3]
['cancer.csv', 'cancer.parquet', 'digits.parquet']
"""

from __future__ import annotations

import io as _stdio
import os
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.csv as pacsv
import pyarrow.parquet as pq

from .io import atomic_path
from .noise import make_noisy_labels

#: Share of labels flipped in the noisy examples.
NOISE = 0.2
NAMES = (
    "digits.parquet",
    "digits_images.parquet",
    "digits_partial.parquet",
    "digits_pu.parquet",
    "cancer.parquet",
    "cancer.csv",
    "truth.parquet",
)


def _png(row: np.ndarray) -> bytes:
    from PIL import Image

    buf = _stdio.BytesIO()
    Image.fromarray((row.reshape(8, 8) * 255 / 16).astype(np.uint8), mode="L").save(buf, format="PNG")
    return buf.getvalue()


def digits_table(
    noise: float = NOISE, *, images: bool = False, labeled: float = 1.0, random_state: int = 0
) -> pa.Table:
    """The digits (1,797 rows) with ``noise`` of the labels flipped and ``1 - labeled`` of them null.

    Columns: ``id``, ``pixels`` (64 numbers in [0, 1], a list column) or ``image`` (8×8 PNG
    bytes when ``images``) and ``label``.

    Examples
    --------
    >>> t = digits_table(0.2)
    >>> t.column_names, t.num_rows
    (['id', 'pixels', 'label'], 1797)
    >>> digits_table(0.0, labeled=0.1).column("label").null_count
    1617
    """
    from sklearn.datasets import load_digits

    X, y = load_digits(return_X_y=True)
    rng = np.random.default_rng(random_state)
    y_given = make_noisy_labels(y, noise, random_state=random_state) if noise > 0 else y.copy()
    cols: dict[str, pa.Array] = {"id": pa.array(np.arange(len(y)))}
    if images:
        cols["image"] = pa.array([_png(r) for r in X], type=pa.binary())
    else:
        cols["pixels"] = pa.FixedSizeListArray.from_arrays(pa.array((X / 16.0).astype(np.float32).ravel()), 64)
    missing = rng.permutation(len(y))[: int(round((1.0 - labeled) * len(y)))]
    mask = np.zeros(len(y), dtype=bool)
    mask[missing] = True
    cols["label"] = pa.array(y_given.astype(np.int64), mask=mask)
    return pa.table(cols)


def digits_pu_table(labeled: float = 0.4, *, random_state: int = 0) -> pa.Table:
    """The digits with ``labeled`` of the even digits labeled ``"even"`` and every other label null.

    Examples
    --------
    >>> t = digits_pu_table()
    >>> t.column("label").drop_null().unique().to_pylist(), t.column("label").null_count
    (['even'], 1441)
    """
    t = digits_table(0.0, random_state=random_state)
    y = t.column("label").to_numpy()
    rng = np.random.default_rng(random_state)
    even = np.flatnonzero(y % 2 == 0)
    chosen = rng.choice(even, size=int(round(labeled * even.size)), replace=False)
    label = np.full(len(y), None, dtype=object)
    label[chosen] = "even"
    return t.set_column(t.column_names.index("label"), "label", pa.array(label.tolist(), type=pa.string()))


def cancer_table(noise: float = NOISE, *, random_state: int = 0) -> pa.Table:
    """The breast-cancer table (569 rows, 30 numbers) as users have tables: string labels, a category, nulls.

    ``noise`` of the labels are flipped; ``size`` is a text category (``"small"``,
    ``"medium"``, ``"large"``, from the mean area) and 5 % of the cells of ``mean texture``
    and ``size`` are null.

    Examples
    --------
    >>> t = cancer_table()
    >>> t.num_rows, t.column("label").type, t.column("size").null_count > 0
    (569, DataType(string), True)
    """
    from sklearn.datasets import load_breast_cancer

    data = load_breast_cancer()
    X, y = data.data.astype(np.float32), data.target
    rng = np.random.default_rng(random_state)
    y_given = make_noisy_labels(y, noise, random_state=random_state) if noise > 0 else y
    cols: dict[str, pa.Array] = {"id": pa.array(np.arange(len(y)))}
    for j, name in enumerate(data.feature_names):
        values = X[:, j]
        cols[str(name)] = pa.array(values, mask=rng.random(len(y)) < 0.05) if name == "mean texture" else values
    area = X[:, list(data.feature_names).index("mean area")]
    size = np.where(area < 500, "small", np.where(area < 900, "medium", "large")).astype(object)
    size[rng.random(len(y)) < 0.05] = None
    cols["size"] = pa.array(size.tolist(), type=pa.string())
    cols["label"] = pa.array(np.asarray(data.target_names)[y_given].tolist(), type=pa.string())
    return pa.table(cols)


def write(directory: str | os.PathLike, *, force: bool = False) -> list[Path]:
    """Write every example file into ``directory`` (created if missing) and return their paths.

    Each file is written atomically. An existing file is left alone and named in the error
    unless ``force``; then nothing is written at all.
    """
    out = Path(directory)
    paths = [out / name for name in NAMES]
    existing = [p.name for p in paths if p.exists()]
    if existing and not force:
        raise FileExistsError(f"{out} already holds {', '.join(existing)}; pass --force to overwrite them.")
    out.mkdir(parents=True, exist_ok=True)
    truth = digits_table(0.0)
    tables = {
        "digits.parquet": digits_table(),
        "digits_images.parquet": digits_table(images=True),
        "digits_partial.parquet": digits_table(0.0, labeled=0.1),
        "digits_pu.parquet": digits_pu_table(),
        "cancer.parquet": cancer_table(),
        "truth.parquet": truth.select(["id", "label"]),
    }
    for name in NAMES:
        with atomic_path(out / name) as tmp:
            if name == "cancer.csv":
                pacsv.write_csv(tables["cancer.parquet"], tmp)
            else:
                pq.write_table(tables[name], tmp)
    return paths


def main(argv: list[str] | None = None) -> None:
    """``python -m labelclean.examples write DIR [--force]``."""
    import click

    @click.group(context_settings={"help_option_names": ["-h", "--help"]})
    def cli() -> None:
        """Example datasets for trying labelclean (made from scikit-learn's bundled data)."""

    @cli.command("write")
    @click.argument("directory", type=click.Path(file_okay=False))
    @click.option("-f", "--force", is_flag=True, help="Overwrite example files already there.")
    def write_command(directory: str, force: bool) -> None:
        """Write the example files into DIRECTORY."""
        try:
            paths = write(directory, force=force)
        except FileExistsError as exc:
            raise click.UsageError(str(exc)) from None
        for p in paths:
            click.echo(str(p))

    cli.main(argv, prog_name="python -m labelclean.examples")


if __name__ == "__main__":  # pragma: no cover
    main()
