"""Colour images as JPEG bytes in a parquet column, through ``labelclean filter``."""

from __future__ import annotations

import io

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from click.testing import CliRunner

from labelclean.cli import cli
from tests.helpers import FAST, write


def jpeg_bytes(img: np.ndarray) -> bytes:
    from PIL import Image

    buf = io.BytesIO()
    Image.fromarray(img, mode="RGB").save(buf, format="JPEG", quality=90)
    return buf.getvalue()


def colour_table(n: int = 96, side: int = 32, seed: int = 0) -> tuple[pa.Table, np.ndarray]:
    """``side``-pixel RGB images: mostly red (class 0) or mostly blue (class 1); every eighth label flipped."""
    rng = np.random.default_rng(seed)
    truth = rng.integers(0, 2, n)
    imgs = rng.integers(0, 70, (n, side, side, 3)).astype(np.uint8)
    imgs[truth == 0, :, :, 0] += 170
    imgs[truth == 1, :, :, 2] += 170
    given = np.where(np.arange(n) % 8 == 0, 1 - truth, truth)
    table = pa.table(
        {
            "file": pa.array([f"img{i}.jpg" for i in range(n)]),
            "image": pa.array([jpeg_bytes(im) for im in imgs], type=pa.binary()),
            "label": pa.array(given.astype(np.int64)),
        }
    )
    return table, truth


@pytest.mark.parametrize("side", [32, 40])
def test_jpeg_colour_images_are_cleaned_through_the_cli(tmp_path, side):
    pytest.importorskip("PIL")
    table, truth = colour_table(side=side)
    src = write(table, tmp_path / "photos.parquet")
    result = CliRunner().invoke(cli, ["filter", str(src), "--label-column", "label", *FAST])
    assert result.exit_code == 0, result.output
    assert f"row shape (3, {side}, {side})" in result.stdout
    out = pq.read_table(tmp_path / "photos.clean.parquet")
    assert out.select(table.column_names).equals(table)  # the input columns come back untouched
    given = table["label"].to_numpy()
    flagged = ~out["is_clean"].to_numpy()
    wrong = given != truth
    assert flagged[wrong].mean() >= 0.75 and wrong[flagged].mean() >= 0.75  # recall and precision
    corrected = out["pseudo_label"].to_numpy()
    assert (corrected == truth).mean() > (given == truth).mean()  # the proposed labels beat the given ones
