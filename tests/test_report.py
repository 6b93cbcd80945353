"""labelclean.report: one self-contained HTML file with embedded plots."""

from __future__ import annotations

import base64
import re

import numpy as np
import pytest
from _lc_data import FAST_PARAMS, image_table, tabular_table

pytest.importorskip("matplotlib")

from labelclean.api import run_labeling  # noqa: E402
from labelclean.report import plot_history, report_html, thumbnail, write_report  # noqa: E402


def _pngs(html: str) -> list[bytes]:
    return [base64.b64decode(b) for b in re.findall(r'src="data:image/png;base64,([^"]+)"', html)]


def test_report_has_every_plot_and_the_suspicious_rows(tmp_path):
    table = tabular_table(120)
    result = run_labeling("filter", table, params=FAST_PARAMS)
    path = write_report(tmp_path / "r.html", result, source=table)
    html = (tmp_path / "r.html").read_text()
    assert path.endswith("r.html") and html.startswith("<!DOCTYPE html>")
    pngs = _pngs(html)
    assert len(pngs) == 4 and all(p.startswith(b"\x89PNG") for p in pngs)
    for title in ("Label quality: kept vs flagged", "Flagged rows per class", "Given vs pseudo labels",
                  "Training curves", "The 20 most suspicious rows"):  # fmt: skip
        assert title in html
    assert html.count("<tr>") == 21  # header + 20 rows
    q = result.added["label_quality"].to_numpy()
    worst = int(np.argmin(q))
    assert f"<td>{worst}</td>" in html
    assert "<th>id</th>" in html and "<th>note</th>" in html  # context columns, not the features
    assert "<th>f0</th>" not in html and "http" not in html.replace("http-equiv", "")


def test_image_report_has_thumbnails():
    pytest.importorskip("PIL")
    table = image_table(60)
    result = run_labeling("filter", table, params=FAST_PARAMS)
    html = report_html(result, source=table)
    assert html.count('class="thumb"') == 20 and len(_pngs(html)) == 24


def test_plot_helpers():
    assert plot_history([]) is None
    history = [{"phase": "warmup", "epoch": 0, "loss": 1.0}, {"phase": "train", "epoch": 0, "loss": 0.5, "kept": 0.9}]
    assert base64.b64decode(plot_history(history)).startswith(b"\x89PNG")
    pytest.importorskip("PIL")
    rgb = np.random.default_rng(0).random((3, 5, 5)).astype(np.float32)
    assert base64.b64decode(thumbnail(rgb)).startswith(b"\x89PNG")
