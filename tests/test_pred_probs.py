"""Bring your own probabilities: ``labelclean filter --pred-probs`` and ``filter_labels(pred_probs=...)``."""

from __future__ import annotations

import subprocess
import sys

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from click.testing import CliRunner
from sklearn.datasets import make_classification
from sklearn.linear_model import LogisticRegression
from sklearn.model_selection import cross_val_predict

from labelclean import filter_labels, find_label_issues
from labelclean.cli import cli

NAMES = np.array(["ant", "bee", "cat"])


@pytest.fixture(scope="module")
def probs_table():
    """300 rows, string labels with 15 % flipped, a list column and per-class columns of out-of-fold probabilities."""
    X, y = make_classification(
        300, n_features=6, n_informative=5, n_redundant=0, n_classes=3, class_sep=2.5, random_state=0
    )
    rng = np.random.default_rng(0)
    flip = rng.random(len(y)) < 0.15
    given = np.where(flip, (y + rng.integers(1, 3, len(y))) % 3, y)
    P = cross_val_predict(LogisticRegression(max_iter=500), X, given, cv=5, method="predict_proba").astype(np.float32)
    table = pa.table(
        {
            "x0": X[:, 0],
            "label": NAMES[given].tolist(),
            "probs": pa.FixedSizeListArray.from_arrays(pa.array(P.ravel()), 3),
            **{f"p_{name}": P[:, j] for j, name in enumerate(NAMES)},
        }
    )
    return table, P, given, flip


def run(*args):
    return CliRunner().invoke(cli, [str(a) for a in args])


def test_the_list_column_gives_what_find_label_issues_gives(probs_table, tmp_path):
    table, P, given, flip = probs_table
    src = tmp_path / "d.parquet"
    pq.write_table(table, src)
    result = run("filter", src, "--pred-probs", "probs", "-o", tmp_path / "out.parquet")
    assert result.exit_code == 0, result.output
    out = pq.read_table(tmp_path / "out.parquet")
    assert out.column_names == [*table.column_names, "is_clean", "pseudo_label", "label_quality"]
    expected = find_label_issues(NAMES[given], P)
    np.testing.assert_array_equal(out.column("is_clean").to_numpy(), expected["is_clean"].to_numpy())
    np.testing.assert_allclose(out.column("label_quality").to_numpy(), expected["label_quality"].to_numpy())
    assert out.column("pseudo_label").to_pylist() == expected["pseudo_label"].tolist()
    flagged = ~out.column("is_clean").to_numpy()
    assert flip[flagged].mean() > 0.5 and flagged[flip].mean() > 0.5  # the flipped rows are found
    # per-class columns give the same result
    again = run("filter", src, "--pred-probs-columns", "p_ant,p_bee,p_cat", "-o", tmp_path / "cols.parquet")
    assert again.exit_code == 0, again.output
    cols = pq.read_table(tmp_path / "cols.parquet")
    assert cols.column("is_clean").equals(out.column("is_clean"))


def test_the_python_api_and_the_report(probs_table, tmp_path):
    table, P, given, _ = probs_table
    df = table.to_pandas()
    out = filter_labels(df, pred_probs="probs")
    assert list(out.columns[-3:]) == ["is_clean", "pseudo_label", "label_quality"]
    assert out["pseudo_label"].isin(NAMES).all()
    src = tmp_path / "d.parquet"
    pq.write_table(table, src)
    report = tmp_path / "r.html"
    result = run("filter", src, "--pred-probs", "probs", "--report", report)
    assert result.exit_code == 0, result.output
    html = report.read_text()
    assert "probs" in html and "pred_probs" in html


@pytest.mark.parametrize(
    "extra, code, needle",
    [
        (["--pred-probs", "nope"], 2, "probability column 'nope' not found"),
        (["--pred-probs-columns", "p_ant,p_bee"], 1, "have 2 classes but column 'label' holds 3"),
        (["--pred-probs", "probs", "--pred-probs-columns", "p_ant"], 2, "exclude each other"),
        (["--pred-probs", "nan"], 1, "holds nan at row 7"),
        (["--pred-probs", "negative"], 1, "negative, NaN or infinite values (first at row 7)"),
        (["--pred-probs", "probs", "--pretrain", "contrastive"], 2, "nothing to pretrain"),
    ],
)
def test_bad_probabilities_are_named_and_nothing_is_written(probs_table, tmp_path, extra, code, needle):
    table, P, _, _ = probs_table
    for name, value in (("nan", np.nan), ("negative", -0.2)):
        bad = P.copy()
        bad[7, 1] = value
        table = table.append_column(name, pa.FixedSizeListArray.from_arrays(pa.array(bad.ravel()), 3))
    src = tmp_path / "d.parquet"
    pq.write_table(table, src)
    result = run("filter", src, *extra)
    assert result.exit_code == code, result.output
    assert needle in result.output
    assert not (tmp_path / "d.clean.parquet").exists()


def test_pred_probs_needs_no_training_stack(probs_table, tmp_path):
    """With probabilities given, the run imports neither torch nor the estimators."""
    table, *_ = probs_table
    src = tmp_path / "d.parquet"
    pq.write_table(table, src)
    probe = (
        "import sys\nfrom labelclean.cli import main\ntry:\n    main(sys.argv[1:])\nexcept SystemExit as e:\n"
        "    assert not e.code, e.code\n"
        "print(sorted(m for m in ('torch', 'labelclean.coteaching') if m in sys.modules))"
    )
    out = subprocess.run(
        [sys.executable, "-c", probe, "filter", str(src), "--pred-probs", "probs", "-q"],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip().splitlines()[-1] == "[]"
