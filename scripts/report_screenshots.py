"""Screenshots of the HTML report for the docs: ``docs/images/report_tabular.png`` and ``report_images.png``.

Makes two tiny datasets, runs the command line on each (``labelclean filter DATA.parquet
--report report.html``) and photographs the reports with headless Chromium::

    python scripts/report_screenshots.py                 # both, into docs/images/
    python scripts/report_screenshots.py --out /tmp/shots --chromium /usr/bin/chromium

* tabular: 600 rows, four classes told apart by four numeric columns and a categorical
  one, an ``id`` column, 15 % of the labels moved to another class;
* images: 500 of scikit-learn's 8×8 digits (0 to 4) as PNG bytes, 15 % of the labels wrong.

Needs Chromium, Pillow and scikit-learn (for the bundled digits; nothing is downloaded). The
PNGs are cropped below the last content row and reduced to a 128-colour palette to stay
small (a few hundred KB).
"""

from __future__ import annotations

import argparse
import io
import os
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq

ROOT = Path(__file__).resolve().parent.parent
WIDTH = 1200
#: Window height of the screenshot; the page is cropped below its last content row.
HEIGHT = 6000


def tabular_data(n: int = 600, seed: int = 0) -> pa.Table:
    """Four fruit classes, numeric measurements, a colour, an id and 15 % wrong labels."""
    rng = np.random.default_rng(seed)
    names = np.array(["apple", "banana", "cherry", "grape"])
    y = rng.integers(0, 4, n)
    centres = np.array([[150, 7.5, 12, 0.8], [120, 3.5, 18, 0.2], [8, 2.0, 14, 0.9], [5, 1.6, 16, 0.5]])
    spread = np.array([25, 1.0, 2.5, 0.12])
    X = centres[y] + rng.normal(0, 1, (n, 4)) * spread
    colours = np.array(["red", "yellow", "red", "purple"])[y]
    colours = np.where(rng.random(n) < 0.3, rng.choice(["green", "red", "yellow", "purple"], n), colours)
    labels = names[y].copy()
    flip = rng.random(n) < 0.15
    labels[flip] = names[(y[flip] + rng.integers(1, 4, flip.sum())) % 4]
    return pa.table(
        {
            "id": pa.array([f"F{i:04d}" for i in range(n)]),
            "weight_g": pa.array(np.round(X[:, 0], 1)),
            "length_cm": pa.array(np.round(X[:, 1], 2)),
            "sugar_pct": pa.array(np.round(X[:, 2], 1)),
            "roundness": pa.array(np.round(X[:, 3], 3)),
            "colour": pa.array(colours),
            "label": pa.array(labels),
        }
    )


def image_data(n: int = 500, seed: int = 0) -> pa.Table:
    """Digits 0-4 of scikit-learn's bundled 8×8 set as PNG bytes, 15 % wrong labels."""
    from PIL import Image
    from sklearn.datasets import load_digits

    digits = load_digits(n_class=5)
    rng = np.random.default_rng(seed)
    rows = rng.permutation(len(digits.target))[:n]
    images = (digits.images[rows] * (255 / 16)).astype(np.uint8)
    y = digits.target[rows].copy()
    flip = rng.random(n) < 0.15
    y[flip] = (y[flip] + rng.integers(1, 5, flip.sum())) % 5

    def png(img: np.ndarray) -> bytes:
        buf = io.BytesIO()
        Image.fromarray(img).save(buf, format="PNG")
        return buf.getvalue()

    return pa.table(
        {
            "file": pa.array([f"digit_{r:04d}.png" for r in rows]),
            "image": pa.array([png(im) for im in images], type=pa.binary()),
            "label": pa.array(y.astype(np.int64)),
        }
    )


def screenshot(chromium: str, page: Path, out: Path) -> None:
    """Photograph ``page`` at :data:`WIDTH` pixels wide, crop the empty bottom, save a palette PNG."""
    from PIL import Image

    raw = out.with_suffix(".raw.png")
    flags = ["--headless", "--no-sandbox", "--disable-gpu", "--hide-scrollbars"]
    cmd = [chromium, *flags, f"--screenshot={raw}", f"--window-size={WIDTH},{HEIGHT}", page.resolve().as_uri()]
    subprocess.run(cmd, check=True, capture_output=True, timeout=120)
    img = Image.open(raw).convert("RGB")
    raw.unlink()
    ink = np.flatnonzero((np.asarray(img) < 245).any(axis=(1, 2)))
    bottom = min(img.height, int(ink[-1]) + 40) if ink.size else img.height
    img = img.crop((0, 0, img.width, bottom)).quantize(colors=128, method=Image.Quantize.MEDIANCUT)
    img.save(out, format="PNG", optimize=True)
    print(f"{out}: {img.width}x{img.height}, {out.stat().st_size / 1024:.0f} KB")


def run_report(table: pa.Table, folder: Path, name: str, *options: str) -> Path:
    """``labelclean filter NAME.parquet --report NAME.html OPTIONS``; returns the report's path."""
    pq.write_table(table, folder / f"{name}.parquet")
    cmd = [sys.executable, "-m", "labelclean", "filter", f"{name}.parquet", "--report", f"{name}.html", "-q", *options]
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(filter(None, [str(ROOT), os.environ.get("PYTHONPATH")]))}
    subprocess.run(cmd, check=True, cwd=folder, env=env)  # relative names: the report's header shows them
    return folder / f"{name}.html"


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, default=ROOT / "docs" / "images", help="folder of the PNGs")
    parser.add_argument("--chromium", default=shutil.which("chromium") or "/usr/bin/chromium")
    args = parser.parse_args(argv)
    args.out.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp)
        page = run_report(tabular_data(), folder, "fruit", "--seed", "0")
        screenshot(args.chromium, page, args.out / "report_tabular.png")
        page = run_report(image_data(), folder, "digits", "--seed", "0", "--epochs", "5", "--n-jobs", "2")
        screenshot(args.chromium, page, args.out / "report_images.png")


if __name__ == "__main__":
    main()
