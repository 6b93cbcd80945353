"""The documentation site builds in strict mode, and every script in examples/ runs and prints sensible figures.

Docstring examples run through pytest's ``--doctest-modules``; the ``>>>`` examples in the
docs pages run here. Together these keep the docs from drifting away from the code.
"""

from __future__ import annotations

import doctest
import html
import importlib.util
import os
import re
import subprocess
import sys
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
DOCS = ROOT / "docs"
EXAMPLES = sorted((ROOT / "examples").glob("*.py"))
PAGES_WITH_EXAMPLES = sorted(p.relative_to(DOCS).as_posix() for p in DOCS.rglob("*.md") if ">>>" in p.read_text())
DOCS_TOOLS = ("mkdocs", "material", "mkdocstrings", "mkdocstrings_handlers.python")


def _load_runner():
    spec = importlib.util.spec_from_file_location("run_examples", ROOT / "scripts" / "run_examples.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def _missing_docs_tools() -> list[str]:
    missing = []
    for name in DOCS_TOOLS:
        try:
            found = importlib.util.find_spec(name) is not None
        except ModuleNotFoundError:
            found = False
        if not found:
            missing.append(name)
    return missing


# ---------------------------------------------------------------------------
# The site
# ---------------------------------------------------------------------------


def test_docs_build_strict(tmp_path):
    """`mkdocs build --strict`: a broken link, anchor, API cross-reference or docstring fails the build."""
    missing = _missing_docs_tools()
    if missing:
        pytest.skip(f"docs tools not installed ({', '.join(missing)}); run: bash scripts/setup.sh dev")
    site = tmp_path / "site"
    proc = subprocess.run(
        [sys.executable, "-m", "mkdocs", "build", "--strict", "--site-dir", str(site)],
        cwd=ROOT,
        env={**os.environ, "NO_MKDOCS_2_WARNING": "1"},
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert proc.returncode == 0, f"mkdocs build --strict failed:\n{proc.stderr[-4000:]}"
    api = (site / "api" / "estimators" / "index.html").read_text()
    for name in ("CoTeachingFilter", "SelfTrainer", "PUClassifier", "fit_resample", "random_state"):
        assert name in api, f"{name} missing from the generated API reference"
    guide = html.unescape(re.sub(r"<[^>]+>", "", (site / "guide" / "coteaching" / "index.html").read_text()))
    assert "CoTeachingFilter(random_state=0).fit(X_train, y_noisy)" in guide, "example code not included"
    assert "labels right, pseudo" in guide, "example output not included"


def test_every_cli_option_is_documented():
    """docs/cli.md names every command and every option of the command line."""
    from labelclean.cli import cli

    text = (DOCS / "cli.md").read_text()
    missing = []
    for name, command in cli.commands.items():
        if f"labelclean {name}" not in text:
            missing.append(f"command {name}")
        for param in command.params:
            for opt in param.opts:
                if opt.startswith("-") and opt not in text:
                    missing.append(f"{name} {opt}")
    assert not missing, f"docs/cli.md does not mention: {', '.join(missing)}"


def test_docstrings_point_at_anchors_of_the_benchmarks_page():
    """``docs/benchmarks.md#anchor`` in the package's docstrings and comments names an anchor that exists.

    The docstrings say what a parameter does and where its default was chosen; mkdocs checks the
    pages' links, this checks the plain-text ones of ``help()``.
    """
    page = (DOCS / "benchmarks.md").read_text()
    anchors = set(re.findall(r'<a id="([^"]+)"></a>', page))
    headings = re.findall(r"^#+ (.+)$", page, re.M)
    anchors |= {re.sub(r"[^\w\- ]", "", h).strip().lower().replace(" ", "-") for h in headings}
    cited = {
        (path.relative_to(ROOT).as_posix(), anchor)
        for path in (ROOT / "labelclean").rglob("*.py")
        for anchor in re.findall(r"benchmarks\.md#([\w-]+)", path.read_text())
    }
    assert cited, "no docstring points at the benchmarks page"
    missing = sorted(f"{path}: #{anchor}" for path, anchor in cited if anchor not in anchors)
    assert not missing, f"anchors missing from docs/benchmarks.md: {missing}"


@pytest.mark.parametrize("page", PAGES_WITH_EXAMPLES)
def test_docs_page_examples(page):
    """The ``>>>`` examples in the docs pages run and print what the page shows."""
    result = doctest.testfile(
        str(DOCS / page), module_relative=False, optionflags=doctest.ELLIPSIS | doctest.NORMALIZE_WHITESPACE
    )
    assert result.failed == 0, f"{result.failed} of {result.attempted} examples in docs/{page} failed (output above)"


# ---------------------------------------------------------------------------
# The examples
# ---------------------------------------------------------------------------


def _figure(out: str, label: str) -> float:
    match = re.search(re.escape(label) + r"\s+([0-9]+(?:\.[0-9]+)?)", out)
    assert match, f"the example no longer prints {label!r}:\n{out}"
    return float(match.group(1))


def _check_first_cleaning(out: str) -> None:
    match = re.search(r"labels right: ([0-9.]+) given, ([0-9.]+) after cleaning", out)
    assert match and float(match.group(2)) >= float(match.group(1)), out
    assert _figure(out, "every flagged row relabeled:") > float(match.group(1)) + 0.1, out
    flagged = re.search(r"(\d+) of (\d+) rows flagged", out)
    assert flagged and 0.15 < int(flagged.group(1)) / int(flagged.group(2)) < 0.3, out


def _check_noisy_tabular(out: str) -> None:
    assert _figure(out, "labels right, pseudo") >= _figure(out, "labels right, given"), out
    assert _figure(out, "labels right, eager") > _figure(out, "labels right, given") + 0.1, out
    assert re.search(r"F1 0\.[89]", out), out
    assert _figure(out, "test accuracy") > 0.8, out


def _check_noisy_images(out: str) -> None:
    assert _figure(out, "labels right, pseudo") > _figure(out, "labels right, given") + 0.1, out
    assert _figure(out, "test accuracy") > 0.9, out


def _check_positive_unlabeled(out: str) -> None:
    assert abs(_figure(out, "class prior, estimated") - _figure(out, "class prior, true")) < 0.1, out
    assert _figure(out, "test accuracy") > 0.8, out


def _check_semi_supervised(out: str) -> None:
    assert _figure(out, "test accuracy, SelfTrainer") > 0.85, out


def _check_pipeline(out: str) -> None:
    alone = re.search(r"all noisy labels:\s+test accuracy ([0-9.]+)", out)
    filtered = re.search(r"kept rows:\s+test accuracy ([0-9.]+)", out)
    assert alone and filtered and float(filtered.group(1)) > float(alone.group(1)), out


def _check_parquet_data_ops(out: str) -> None:
    assert _figure(out, "labels right, pseudo") >= _figure(out, "labels right, given"), out
    assert "is_clean, pseudo_label, label_quality" in out, out


def _check_contrastive_pretraining(out: str) -> None:
    for what in ("on the pixels", "on the embeddings"):
        match = re.search(what + r",\s+50 % wrong labels: test accuracy ([0-9.]+)", out)
        assert match and float(match.group(1)) > 0.85, out
    for what in ("pixels", "embedding"):
        match = re.search(r"linear probe, 50 labels, " + what + r" \(\d+ features\):\s+test accuracy ([0-9.]+)", out)
        assert match and float(match.group(1)) > 0.7, out


def _check_cluster_scoring(out: str) -> None:
    assert "equal to the single-machine run: True" in out, out
    assert _figure(out, "labels right, kept rows") > _figure(out, "labels right, given") + 0.1, out
    assert "day=4/part-0.parquet" in out and "_SUCCESS" in out, out


CHECKS = {
    "first_cleaning": _check_first_cleaning,
    "noisy_tabular": _check_noisy_tabular,
    "noisy_images": _check_noisy_images,
    "positive_unlabeled": _check_positive_unlabeled,
    "semi_supervised": _check_semi_supervised,
    "pipeline": _check_pipeline,
    "parquet_data_ops": _check_parquet_data_ops,
    "contrastive_pretraining": _check_contrastive_pretraining,
    "cluster_scoring": _check_cluster_scoring,
}


@pytest.fixture(scope="module")
def example_runs():
    """Every example run once, two at a time (one torch thread each), in a fresh process."""
    runner = _load_runner()
    with ThreadPoolExecutor(max_workers=2) as pool:
        runs = dict(zip([p.stem for p in EXAMPLES], pool.map(runner.run_example, EXAMPLES)))
    return runs


@pytest.mark.parametrize("name", [p.stem for p in EXAMPLES])
def test_example_runs(name, example_runs):
    proc, _seconds = example_runs[name]
    assert proc.returncode == 0, f"examples/{name}.py failed:\n{proc.stderr[-4000:]}"
    assert name in CHECKS, f"examples/{name}.py has no figure check in tests/test_docs.py; add one"
    CHECKS[name](proc.stdout)  # speed is the benchmarks' business; the runner's timeout only stops a hang


@pytest.mark.parametrize("name", [p.stem for p in EXAMPLES])
def test_example_is_shown_in_the_docs(name):
    """Each example has saved output (scripts/run_examples.py --write) and a docs page that includes it."""
    assert (DOCS / "outputs" / f"{name}.txt").is_file(), f"run: python scripts/run_examples.py --write {name}"
    pages = [p for p in DOCS.rglob("*.md") if f"examples/{name}.py" in p.read_text()]
    assert pages, f"no docs page includes examples/{name}.py"
