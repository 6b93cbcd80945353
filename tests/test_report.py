"""labelclean.report: one self-contained HTML file with embedded plots."""

from __future__ import annotations

import base64
import dataclasses
import re
import shutil
import struct
import subprocess
from html.parser import HTMLParser

import numpy as np
import pyarrow as pa
import pytest

from tests.helpers import FAST_PARAMS, image_table, tabular_table, write

pytest.importorskip("matplotlib")

import labelclean  # noqa: E402
from labelclean.api import clean_file, run_labeling  # noqa: E402
from labelclean.report import (  # noqa: E402
    class_profiles,
    feature_evidence,
    noise_table,
    phase_text,
    plot_confusion,
    plot_history,
    rank_suspicious,
    report_html,
    text_colors,
    thumbnail,
    write_report,
)


def _pngs(html: str) -> list[bytes]:
    return [base64.b64decode(b) for b in re.findall(r'src="data:image/png;base64,([^"]+)"', html)]


class _Dom(HTMLParser):
    """The bits of a report the tests check: header fields, suspicious rows, noise-table rows."""

    def __init__(self) -> None:
        super().__init__()
        self.ids: dict[str, str] = {}
        self.suspects: list[dict[str, str]] = []
        self.noise_rows: list[list[str]] = []
        self._id: str | None = None
        self._table: str | None = None
        self._row: list[str] | None = None
        self._cell: list[str] | None = None

    def handle_starttag(self, tag, attrs):
        a = dict(attrs)
        if tag == "table":
            self._table = a.get("id")
        elif tag == "tr" and a.get("class") == "suspect":
            self.suspects.append(a)
        elif tag == "tr" and self._table == "noise-table":
            self._row = []
        elif tag == "td" and self._row is not None:
            self._cell = []
        if a.get("id", "").startswith("run-"):
            self._id = a["id"]
            self.ids[self._id] = ""

    def handle_endtag(self, tag):
        if tag == "dd":
            self._id = None
        elif tag == "td" and self._row is not None and self._cell is not None:
            self._row.append("".join(self._cell).strip())
            self._cell = None
        elif tag == "tr" and self._row is not None:
            if self._row:
                self.noise_rows.append(self._row)
            self._row = None
        elif tag == "table":
            self._table = None

    def handle_data(self, data):
        if self._id is not None:
            self.ids[self._id] += data
        if self._cell is not None:
            self._cell.append(data)


def _dom(text: str) -> _Dom:
    dom = _Dom()
    dom.feed(text)
    return dom


def _strictly_ranked(suspects: list[dict[str, str]]) -> bool:
    keys = [(float(s["data-quality"]), float(s["data-margin"])) for s in suspects]
    return all(a < b for a, b in zip(keys, keys[1:], strict=False))


@pytest.fixture(scope="module")
def tabular_run():
    table = tabular_table(120)
    return table, run_labeling("filter", table, params=FAST_PARAMS)


@pytest.fixture(scope="module")
def cli_report(tmp_path_factory):
    """The report of a whole ``clean_file`` run (the command line's path), with its header metadata."""
    folder = tmp_path_factory.mktemp("report")
    data = write(tabular_table(120), folder / "animals.parquet")
    summary = clean_file("filter", data, report=folder / "animals.html", **FAST_PARAMS)
    return folder / "animals.html", summary


def test_report_has_every_plot_and_the_suspicious_rows(tmp_path, tabular_run):
    table, result = tabular_run
    path = write_report(tmp_path / "r.html", result, source=table)
    html = (tmp_path / "r.html").read_text()
    assert path.endswith("r.html") and html.startswith("<!DOCTYPE html>")
    pngs = _pngs(html)
    assert len(pngs) == 4 and all(p.startswith(b"\x89PNG") for p in pngs)
    for title in ("Label quality: kept vs flagged", "Flagged rows per class", "Given vs pseudo labels",
                  "Noise per class: given → corrected", "Training curves", "The 20 most suspicious rows"):  # fmt: skip
        assert title in html
    dom = _dom(html)
    assert len(dom.suspects) == 20 and _strictly_ranked(dom.suspects)
    q = result.added["label_quality"].to_numpy()
    assert int(dom.suspects[0]["data-row"]) == int(np.argmin(q))
    assert "<th>id</th>" in html and "<th>note</th>" in html  # context columns, not the features as columns
    assert "<th>f0</th>" not in html and "http" not in html.replace("http-equiv", "")
    # the features that speak for the proposed label, with both class means
    assert "features for the proposed label" in html
    assert re.search(r"<b>f[012]</b> = -?[0-9.e+-]+ <small>\((bird|cat|dog) ", html)
    # a Python call without metadata still has a header
    assert labelclean.__version__ in dom.ids["run-version"] and dom.ids["run-rows"] == "120"
    assert "in-memory table" in dom.ids["run-input"] and "max_epochs=2" in dom.ids["run-parameters"]
    assert re.fullmatch(r"\d{4}-\d\d-\d\dT.*", dom.ids["run-date"]) and " s" in dom.ids["run-seconds"]


def test_header_shows_the_seconds_of_each_phase_of_the_fit(tabular_run):
    table, result = tabular_run
    phases = result.estimator.phase_seconds_
    text = _dom(report_html(result, source=table)).ids["run-phases"]
    assert phases and [part.rsplit(" ", 2)[0] for part in text.split("; ")] == [*phases, "other"]
    assert phase_text({}) == "" and "run-phases" not in report_html(dataclasses.replace(result, estimator=object()))


def test_ties_in_quality_are_broken_by_the_model_margin(tabular_run):
    table, result = tabular_run
    added = result.added
    zeros = pa.array(np.zeros(added.num_rows, dtype=np.float32))
    tied = dataclasses.replace(result, added=added.set_column(2, "label_quality", zeros))
    dom = _dom(report_html(tied, source=table))
    assert len(dom.suspects) == 20 and _strictly_ranked(dom.suspects)
    proba = result.estimator.predict_proba(result.X).astype(np.float64)
    given = pa.chunked_array(result.labels).to_numpy()
    col = np.searchsorted(np.array(["bird", "cat", "dog"]), given)
    others = proba.copy()
    others[np.arange(len(col)), col] = -np.inf
    margin = proba[np.arange(len(col)), col] - others.max(axis=1)
    assert [int(s["data-row"]) for s in dom.suspects] == np.argsort(margin, kind="stable")[:20].tolist()


def test_rank_suspicious_has_no_ties():
    quality = np.array([0.0, 0.0, 0.3, 0.0, 0.1], dtype=np.float32)
    margin = np.array([-0.5, -0.9, -0.1, -0.7, 0.2])
    assert rank_suspicious(quality, margin, 4).tolist() == [1, 3, 0, 4]
    assert rank_suspicious(np.zeros(3), np.zeros(3)).tolist() == [0, 1, 2]  # last resort: the row order


def test_header_of_a_file_run(cli_report):
    path, summary = cli_report
    dom = _dom(path.read_text())
    assert dom.ids["run-input"].endswith("animals.parquet") and dom.ids["run-output"].endswith(".clean.parquet")
    assert dom.ids["run-command"].startswith("labelclean filter") and "animals.parquet" in dom.ids["run-command"]
    params = dom.ids["run-parameters"]
    assert "label='label'" in params and "max_epochs=2" in params and "forget_rate=0.1" in params
    assert "features=" not in params  # None: left to the detection
    seconds = float(dom.ids["run-seconds"].split()[0])
    assert 0 < seconds <= summary["seconds"]
    assert dom.ids["run-version"] == labelclean.__version__ and dom.ids["run-rows"] == "120"
    assert "animals.parquet" in path.read_text().split("</title>")[0]


def test_noise_table_counts_given_flagged_and_corrected():
    names = ["a<b", "cat", "(none)"]
    given = np.array([0, 0, 0, 1, 1, 2])
    pseudo = np.array([0, 1, 0, 1, 1, 1])
    clean = np.array([True, False, True, True, False, False])
    html = noise_table(given, pseudo, clean, names, np.array([0.25, 0.1, np.nan]), 0.2)
    rows = _dom(html).noise_rows
    assert rows[0][:3] == ["a<b", "3 (50.0%)", "1 (33.3%)"] and "a&lt;b" in html
    assert rows[0][3:] == ["25.0%", "1", "0", "2 (33.3%)"]
    assert rows[1] == ["cat", "2 (33.3%)", "1 (50.0%)", "10.0%", "0", "2", "4 (66.7%)"]
    assert rows[2][0] == "(none)" and rows[2][3] == "—"
    assert rows[-1] == ["all", "6", "3 (50.0%)", "20.0%", "2", "2", "6"]
    assert "estimated noise" not in noise_table(given, pseudo, clean, names)


def test_feature_evidence_names_the_separating_feature():
    rng = np.random.default_rng(0)
    y = np.repeat([0, 1], 50)
    X = np.column_stack([rng.normal(0, 1, 100), 5.0 * y + rng.normal(0, 0.5, 100), (y == 1) | (rng.random(100) < 0.5)])
    X = np.column_stack([X[:, :2], X[:, 2], 1 - X[:, 2]])  # a one-hot pair
    means, sd, counts = class_profiles(X.astype(np.float32), y, 2, block=7)
    assert np.allclose(means, [X[y == 0].mean(0), X[y == 1].mean(0)], atol=1e-5) and counts.tolist() == [50, 50]
    groups = [("noise", "numeric", slice(0, 1), None), ("signal", "numeric", slice(1, 2), None),
              ("kind", "onehot", slice(2, 4), ["x", "y"])]  # fmt: skip
    row = np.array([0.0, 5.1, 1.0, 0.0])  # given 0, but its signal says 1
    ev = feature_evidence(row, 0, 1, means, sd, counts, groups)
    assert ev[0][0] == "signal" and ev[0][1] == "5.1" and ev[0][4] > 5
    assert all(e[4] > 0 for e in ev) and len(ev) <= 3
    assert all(e[0] != "signal" for e in feature_evidence(row, 1, 0, means, sd, counts, groups))
    assert feature_evidence(row, -1, 1, means, sd, counts, groups) == []


def test_confusion_text_follows_the_cell_colour():
    from matplotlib import colormaps

    cmap = colormaps["Blues"]
    assert text_colors(cmap(np.array([0.0, 0.2, 1.0]))).tolist() == ["black", "black", "white"]
    rng = np.random.default_rng(0)
    given = rng.integers(0, 20, 2000)
    pseudo = np.where(rng.random(2000) < 0.8, given, rng.integers(0, 20, 2000))
    names = [f"class {i}" for i in range(20)] + ["(none)"]
    png = base64.b64decode(plot_confusion(given, pseudo, given == pseudo, names))
    width, height = struct.unpack(">II", png[16:24])
    assert png.startswith(b"\x89PNG") and min(width, height) > 20 * 40  # 20 classes: cells of 40+ pixels


def test_image_report_has_thumbnails():
    pytest.importorskip("PIL")
    table = image_table(60)
    result = run_labeling("filter", table, params=FAST_PARAMS)
    html = report_html(result, source=table)
    assert html.count('class="thumb"') == 20 and len(_pngs(html)) == 24
    assert "features for the proposed label" not in html and _strictly_ranked(_dom(html).suspects)


def test_plot_helpers():
    assert plot_history([]) is None
    history = [{"phase": "warmup", "epoch": 0, "loss": 1.0}, {"phase": "train", "epoch": 0, "loss": 0.5, "kept": 0.9}]
    assert base64.b64decode(plot_history(history)).startswith(b"\x89PNG")
    pytest.importorskip("PIL")
    rgb = np.random.default_rng(0).random((3, 5, 5)).astype(np.float32)
    assert base64.b64decode(thumbnail(rgb)).startswith(b"\x89PNG")


CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser") or shutil.which("google-chrome")


@pytest.mark.skipif(CHROMIUM is None, reason="no chromium on PATH: the report is not checked in a real browser")
def test_report_in_a_headless_browser(cli_report, tmp_path):
    path, _ = cli_report
    shot = tmp_path / "report.png"
    flags = [CHROMIUM, "--headless", "--no-sandbox", "--disable-gpu", "--hide-scrollbars"]
    url = path.resolve().as_uri()
    subprocess.run([*flags, f"--screenshot={shot}", "--window-size=1200,2000", url], check=True,
                   capture_output=True, timeout=60)  # fmt: skip
    png = shot.read_bytes()
    assert png.startswith(b"\x89PNG") and struct.unpack(">II", png[16:24]) == (1200, 2000)
    assert len(png) > 50_000  # plots and tables drawn, not a blank page
    dom = subprocess.run([*flags, "--dump-dom", url], check=True, capture_output=True, text=True, timeout=60).stdout
    parsed = _dom(dom)  # the DOM the browser built from the file
    for field in ("input", "rows", "date", "version", "command", "parameters", "seconds"):
        assert parsed.ids[f"run-{field}"].strip(), field
    assert len(parsed.suspects) == 20 and _strictly_ranked(parsed.suspects)
    assert [r[0] for r in parsed.noise_rows] == ["bird", "cat", "dog", "all"]
    assert len(_pngs(dom)) == 4
