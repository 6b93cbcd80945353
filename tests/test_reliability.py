"""Reliability (issue 7): bad input, faults, determinism, persistence, resource limits.

Everything here is small: networks of 8 units, one epoch, a few dozen rows.
"""

from __future__ import annotations

import errno
import hashlib
import json
import os
import pickle
import re
import signal
import subprocess
import sys
import textwrap
import threading
import time
from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
import torch
from click.testing import CliRunner
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from sklearn.exceptions import NotFittedError
from sklearn.linear_model import LogisticRegression
from torch import nn

from labelclean import CoTeachingFilter, PUClassifier, SelfTrainer
from labelclean import io as lio
from labelclean._base import LabelEstimatorBase
from labelclean.cli import cli
from tests.helpers import embedding_table, write

ROOT = Path(__file__).resolve().parents[1]
ESTIMATORS = [CoTeachingFilter, SelfTrainer, PUClassifier]
TINY = {"hidden_dims": (8,), "max_epochs": 1, "batch_size": 16, "device": "cpu"}
EXTRA = {
    CoTeachingFilter: {"estimator": "network", "forget_rate": 0.2, "refine_epochs": 0},
    SelfTrainer: {"estimator": "network", "max_iter": 1, "min_steps": 1},
    PUClassifier: {"estimator": "network", "method": "nnpu", "prior": 0.6, "prior_epochs": 1},
}


def tiny(cls, **params):
    """A fast instance of one of the three estimators (a few steps, a tiny network)."""
    return cls(**{**TINY, **EXTRA[cls], **params})


def xy(n=40, d=4, seed=0):
    rng = np.random.RandomState(seed)
    X = rng.normal(size=(n, d)).astype(np.float32)
    return X, (X[:, 0] > 0).astype(np.int64)


def labels_for(cls, y):
    """Labels each estimator reads: half unlabeled (-1) for SelfTrainer, as given otherwise."""
    if cls is SelfTrainer:
        y = y.copy()
        y[::2] = -1
    return y


#: What the command line logs on stderr when it is not a terminal: one line per phase.
PROGRESS_LINE = re.compile(r"^(reading|pretraining|training|writing)\b")


def first_line_only(message: str) -> bool:
    """The error is one line, the last one; any line before it is a progress line."""
    lines = message.strip().splitlines()
    return bool(lines) and lines[-1].startswith("Error: ") and all(PROGRESS_LINE.match(x) for x in lines[:-1])


class LinearSeven(nn.Module):
    """A network with the wrong number of outputs."""

    def __init__(self, input_shape, n_outputs):
        super().__init__()
        self.lin = nn.Linear(int(np.prod(input_shape)), 7)

    def forward(self, x):
        return self.lin(x.flatten(1))


class NaNWhileTraining(nn.Module):
    """Fine in eval mode, NaN in train mode: training diverges."""

    def __init__(self, input_shape, n_outputs):
        super().__init__()
        self.lin = nn.Linear(int(np.prod(input_shape)), n_outputs)

    def forward(self, x):
        out = self.lin(x.flatten(1))
        return out * float("nan") if self.training else out


def broken_module(input_shape, n_outputs):
    return nn.Linear(3, n_outputs)  # expects 3 features whatever the data


# ---------------------------------------------------------------------------
# 1. Bad input, library: every case × every estimator
# ---------------------------------------------------------------------------

_X, _Y = xy()
_NAN = _X.copy()
_NAN[5, 2] = np.nan
_INF = _X.copy()
_INF[7, 1] = np.inf


def _case(X, y=None, params=None, error=ValueError, match=""):
    return X, y, params or {}, error, match


BAD_FIT = {
    "inf in X": _case(_INF, match=r"X contains infinity.*row 7, column 1"),
    "float64 too large for float32": _case(_X.astype(np.float64) * 1e300, match="too large for float32"),
    "float16 overflowed to inf": _case(np.full((40, 4), 1e5).astype(np.float16), match="infinity"),
    "empty X": _case(np.zeros((0, 4)), np.zeros(0, int), match="0 sample"),
    "zero features": _case(np.zeros((40, 0)), match="0 feature"),
    "mismatched lengths": _case(_X, _Y[:-3], match="inconsistent numbers of samples"),
    "string X": _case(_X.astype(str), match="X holds strings.*DataFrame.*OneHotEncoder"),
    "DataFrame with a dict column": _case(
        pd.DataFrame({"a": _X[:, 0], "meta": [{"k": 1}] * 40}), error=TypeError, match=r"column 'meta'.*dict"
    ),
    "DataFrame with a date column": _case(
        pd.DataFrame({"a": _X[:, 0], "day": pd.date_range("2026-01-01", periods=40)}), match="dates or times"
    ),
    "complex X": _case(_X.astype(np.complex64), match="complex numbers.*np.abs"),
    "ragged rows": _case([[1.0, 2.0], [3.0]] * 20, match="rows of different lengths"),
    "sparse X": _case(__import__("scipy.sparse").sparse.csr_matrix(_X), error=TypeError, match="dense"),
    "1-D X": _case(_X[:, 0], match="Expected 2D array"),
    "5-D X": _case(np.zeros((40, 1, 2, 2, 2)), match="5 dimensions"),
    "image axis of length 0": _case(np.zeros((40, 1, 0, 3)), match="axis of length 0"),
    "1x1 images": _case(np.ones((40, 1, 1)), match=r"too small for the default CNN.*module="),
    "input_shape not fitting": _case(_X, params={"input_shape": (1, 3, 3)}, match="does not fit rows of 4"),
    "2-D y": _case(_X, np.c_[_Y, _Y], match="1d array"),
    "continuous y": _case(_X, np.linspace(0, 1, 40), match="Unknown label type"),
    "NaN label": _case(_X, np.where(np.arange(40) == 3, np.nan, _Y), match=r"NaN labels.*row 3"),
    "None labels": _case(_X, np.array([1, None] * 20, dtype=object), match=r"missing labels \(None\)"),
    "mixed label types": _case(_X, np.array([1, "a"] * 20, dtype=object), error=TypeError, match="mixes label"),
    "one class": _case(_X, np.ones(40, int), match="only one class|no unlabeled rows"),
    "one row": _case(_X[:1], np.ones(1, int), match="one class|at least 2 samples"),
    "hidden_dims with 0": _case(_X, params={"hidden_dims": (8, 0)}, match="positive integers"),
    "negative hidden_dims": _case(_X, params={"hidden_dims": (-3,)}, match="positive integers"),
    "module with wrong outputs": _case(_X, params={"module": LinearSeven}, match=r"returns \(2, 7\)"),
    "module that cannot run": _case(_X, params={"module": broken_module}, match="fails on a batch"),
    "module returning no network": _case(_X, params={"module": lambda s, n: None}, error=TypeError, match="nn.Module"),
    "training diverges": _case(_X, params={"module": NaNWhileTraining}, match="training diverged.*lower lr"),
    "lr = 0": _case(_X, params={"lr": 0.0}, match="'lr' parameter"),
    "absurd lr": _case(_X, params={"lr": 1e30}, match="'lr' parameter"),
    "batch_size = 1": _case(_X, params={"batch_size": 1}, match="'batch_size' parameter"),
    "max_epochs = 0": _case(_X, params={"max_epochs": 0}, match="'max_epochs' parameter"),
    "dropout = 1": _case(_X, params={"dropout": 1.0}, match="'dropout' parameter"),
    "n_jobs = 0": _case(_X, params={"n_jobs": 0}, match="'n_jobs' parameter"),
    "unknown device": _case(_X, params={"device": "tpu"}, match="not a valid torch device"),
    "negative seed": _case(_X, params={"random_state": -1}, match="'random_state' parameter"),
}


@pytest.mark.parametrize("cls", ESTIMATORS, ids=lambda c: c.__name__)
@pytest.mark.parametrize("case", list(BAD_FIT))
def test_bad_fit_input_raises_a_clear_error(case, cls):
    X, y, params, error, match = BAD_FIT[case]
    if y is None:
        y = labels_for(cls, _Y)
    with pytest.raises(error, match=match) as info:
        tiny(cls, **params).fit(X, y)
    # A clear error is ours or scikit-learn's, never a torch/numpy internal one.
    assert type(info.value).__module__.split(".")[0] in ("builtins", "sklearn", "labelclean")


@pytest.mark.parametrize("cls", ESTIMATORS, ids=lambda c: c.__name__)
def test_tables_with_text_categories_and_missing_values_are_accepted(cls):
    # what users have: strings, a pandas category, nulls in numbers and in text, numbers stored as text
    df = pd.DataFrame(
        {
            "a": np.where(np.arange(40) % 7 == 0, np.nan, _X[:, 0]),
            "colour": pd.Series(["red", "blue", None, "green"] * 10, dtype=object),
            "size": pd.Categorical(["S", "M", "L", "M"] * 10),
            "price": [f"{v:.2f}" for v in _X[:, 1]],
        }
    )
    est = tiny(cls, random_state=0).fit(df, labels_for(cls, _Y))
    assert np.isfinite(est.label_quality_).all() and est.predict_proba(df).shape == (40, 2)
    assert est.n_features_in_ == 4 and list(est.feature_names_in_) == list(df.columns)
    unseen = df.assign(colour=["purple"] * 40)  # a category never seen in fit counts as missing
    assert np.isfinite(est.predict_proba(unseen)).all()
    with pytest.raises(ValueError, match="same order"):
        est.predict(df[["colour", "a", "size", "price"]])


@pytest.mark.parametrize("cls", ESTIMATORS, ids=lambda c: c.__name__)
def test_free_text_column_is_named_with_the_fix(cls):
    rng = np.random.RandomState(0)
    df = pd.DataFrame({"a": rng.normal(size=200), "review": [f"review number {i}" for i in range(200)]})
    y = labels_for(cls, (df["a"] > 0).astype(int).to_numpy())
    with pytest.raises(ValueError, match=r"column 'review'.*free text or ids.*TfidfVectorizer"):
        tiny(cls).fit(df, y)


@pytest.mark.parametrize(
    ("cls", "y", "match"),
    [
        (SelfTrainer, -np.ones(40, int), "every row of y is unlabeled"),
        (SelfTrainer, np.where(np.arange(40) < 20, -1, 1), "only one class"),
        (PUClassifier, np.zeros(40, int), "no labeled positives"),
        (PUClassifier, -np.ones(40, int), "no labeled positives"),
        (PUClassifier, np.array(["a", "b"] * 20), "outside the expected set"),
        (CoTeachingFilter, -np.ones(40, int), "only one class"),
    ],
)
def test_no_labels_or_no_positives(cls, y, match):
    with pytest.raises(ValueError, match=match):
        tiny(cls).fit(_X, y)


@pytest.mark.parametrize("cls", ESTIMATORS, ids=lambda c: c.__name__)
@pytest.mark.parametrize(
    "dtype", [bool, np.float16, np.int8, np.uint8, object, np.float64], ids=lambda d: np.dtype(d).name
)
def test_unusual_numeric_dtypes_are_accepted_as_float32(cls, dtype):
    X = (_X * 3).astype(dtype) if dtype is not bool else _X > 0
    est = tiny(cls, random_state=0).fit(X, labels_for(cls, _Y))
    assert est.label_quality_.dtype == np.float32 and np.isfinite(est.label_quality_).all()
    assert est.predict_proba(X).dtype == np.float32


@pytest.mark.parametrize("cls", ESTIMATORS, ids=lambda c: c.__name__)
@pytest.mark.parametrize("container", ["object ints", "object bools", "pandas object Series"])
def test_labels_in_object_containers_keep_their_values(cls, container):
    y = labels_for(cls, _Y)
    if container == "object bools" and cls is not SelfTrainer:
        y = (y == 1).astype(object)
    elif container == "pandas object Series":
        y = pd.Series(list(y), dtype=object)
    else:
        y = np.asarray(y).astype(object)
    est = tiny(cls, random_state=0).fit(_X, y)
    expected = {False, True} if container == "object bools" and cls is not SelfTrainer else {0, 1}
    assert set(est.classes_.tolist()) == expected and set(est.pseudo_labels_.tolist()) <= expected


@pytest.mark.parametrize("cls", ESTIMATORS, ids=lambda c: c.__name__)
def test_a_class_with_a_single_row_and_two_rows_in_all_are_fine(cls):
    y = labels_for(cls, np.r_[np.ones(39, int), 0]) if cls is not PUClassifier else np.r_[np.ones(20, int), [0] * 20]
    assert len(tiny(cls).fit(_X, y).pseudo_labels_) == 40
    y2 = np.array([0, 1]) if cls is not SelfTrainer else np.array([0, 1])
    assert len(tiny(cls).fit(_X[:2], y2).clean_mask_) == 2


@pytest.mark.parametrize("cls", ESTIMATORS, ids=lambda c: c.__name__)
def test_bad_predict_input(cls):
    with pytest.raises(NotFittedError):
        tiny(cls).predict(_X)
    est = tiny(cls, random_state=0).fit(_X, labels_for(cls, _Y))
    with pytest.raises(ValueError, match=r"X has 3 features.*shape \(40, 3\).*fitted on rows shaped \(4,\)"):
        est.predict(_X[:, :3])  # feature count changed
    with pytest.raises(ValueError, match="NaN"):
        est.predict(_NAN)
    with pytest.raises(ValueError, match="strings"):
        est.predict(_X.astype(str))
    with pytest.raises(ValueError, match="never seen in fit"):
        est.score(_X, np.full(40, 7))  # labels unseen at fit time
    assert 0.0 <= est.score(_X, _Y) <= 1.0


def test_image_shape_change_between_fit_and_predict():
    rng = np.random.RandomState(0)
    X, y = rng.rand(40, 1, 4, 4).astype(np.float32), np.r_[[0] * 20, [1] * 20]
    est = tiny(CoTeachingFilter).fit(X, y)
    with pytest.raises(ValueError, match=r"fitted on \(1, 4, 4\)"):
        est.predict(rng.rand(5, 1, 5, 5))
    with pytest.raises(ValueError, match="fitted on"):
        est.predict(rng.rand(5, 16))


# ---------------------------------------------------------------------------
# 1. Bad input, command line: every case × every command
# ---------------------------------------------------------------------------

COMMANDS = {
    "filter": ["--noise-rate", "0.2"],
    "selftrain": ["--max-iter", "1"],
    "pu": ["--positive", "1", "--prior", "0.6"],
}
FAST = ["--epochs", "1", "--seed", "0", "--param", "hidden_dims=[8]", "--param", "batch_size=16"]


def _table(n=40):
    return embedding_table(n, width=4)


def _cli_case(tmp: Path, case: str) -> tuple[list, int, str]:
    """Build the files for ``case`` in ``tmp``; return (extra args, exit code, text in the error)."""
    src = tmp / "data.parquet"
    t = _table()
    n = t.num_rows
    if case == "missing file":
        return [], 2, "does not exist"
    if case == "empty file":
        src.write_bytes(b"")
        return [], 1, "not a parquet file"
    if case == "truncated file":
        write(t, tmp / "full.parquet")
        src.write_bytes((tmp / "full.parquet").read_bytes()[:-40])
        (tmp / "full.parquet").unlink()
        return [], 1, "truncated or damaged"
    if case == "CSV file":
        src.write_text("x,label\n1,0\n")
        return [], 1, "not a parquet file"
    if case == "folder":
        src.mkdir()
        return [], 2, "is a folder"
    if case == "no rows":
        write(t.slice(0, 0), src)
        return [], 1, "no rows"
    if case == "missing label column":
        write(t, src)
        return ["--label-column", "target"], 2, "label column 'target' not found"
    if case == "all labels null":
        write(t.set_column(2, "label", pa.nulls(n, pa.int64())), src)
        return [], 1, "are null"
    if case == "nested label column":
        write(t.set_column(2, "label", pa.array([[1, 2]] * n)), src)
        return [], 1, "labels must be scalars"
    if case == "only unsupported feature types":
        write(t.select(["label"]).append_column("m", pa.array([{"a": 1}] * n, pa.map_(pa.string(), pa.int64()))), src)
        return [], 1, "no usable feature column"
    if case == "struct feature named":
        write(t.append_column("s", pa.array([{"a": 1, "b": 2.0}] * n)), src)
        return ["--features", "s"], 1, "cannot be used as a feature"
    if case == "list of lists feature":
        write(t.set_column(1, "emb", pa.array([[[1.0]]] * n)), src)
        return ["--features", "emb"], 1, "not of numbers"
    if case == "NaN inside an embedding":
        emb = np.random.default_rng(0).normal(size=(n, 4)).astype(np.float32)
        emb[9, 2] = np.nan
        write(t.set_column(1, "emb", pa.array(list(emb), type=pa.list_(pa.float32()))), src)
        return [], 1, "column 'emb' holds nan at row 9"
    if case == "inf in a numeric column":
        write(t.append_column("f", pa.array(np.where(np.arange(n) == 4, np.inf, 1.0))), src)
        return [], 1, "column 'f' holds inf at row 4"
    if case == "ragged embeddings":
        write(t.set_column(1, "emb", pa.array([[1.0, 2.0]] * (n - 1) + [[1.0]])), src)
        return [], 1, "lists of different lengths"
    write(t, src)
    if case == "output in a missing folder":
        return ["-o", tmp / "nope" / "out.parquet"], 2, "does not exist; create it first"
    if case == "output exists":
        (tmp / "data.clean.parquet").write_bytes(b"earlier result")
        return [], 2, "already exists; pass --force"
    if case == "output is the input":
        return ["-o", src, "--force"], 2, "is the input file"
    if case == "output is a link to the input":
        (tmp / "link.parquet").symlink_to(src)
        return ["-o", tmp / "link.parquet", "--force"], 2, "is the input file"
    if case == "output is a folder":
        (tmp / "outdir").mkdir()
        return ["-o", tmp / "outdir", "--force"], 2, "is a folder"
    if case == "n-jobs 0":
        return ["--n-jobs", "0"], 2, "--n-jobs"
    if case == "negative seed":
        return ["--seed", "-1"], 2, "--seed"
    if case == "bad parameter value":
        return ["--param", "lr=-1"], 2, "'lr' parameter"
    if case == "unknown parameter":
        return ["--param", "nope=1"], 2, "has no parameter nope"
    raise AssertionError(case)


CLI_CASES = [
    "missing file",
    "empty file",
    "truncated file",
    "CSV file",
    "folder",
    "no rows",
    "missing label column",
    "all labels null",
    "nested label column",
    "only unsupported feature types",
    "struct feature named",
    "list of lists feature",
    "NaN inside an embedding",
    "inf in a numeric column",
    "ragged embeddings",
    "output in a missing folder",
    "output exists",
    "output is the input",
    "output is a link to the input",
    "output is a folder",
    "n-jobs 0",
    "negative seed",
    "bad parameter value",
    "unknown parameter",
]


def _listing(folder: Path) -> dict[str, bytes | None]:
    return {p.name: (p.read_bytes() if p.is_file() and not p.is_symlink() else None) for p in folder.iterdir()}


@pytest.mark.parametrize("command", list(COMMANDS))
@pytest.mark.parametrize("case", CLI_CASES)
def test_cli_bad_input_one_line_exit_code_nothing_written(tmp_path, command, case):
    args, code, needle = _cli_case(tmp_path, case)
    before = _listing(tmp_path)
    result = CliRunner().invoke(
        cli, [command, str(tmp_path / "data.parquet"), *FAST, *COMMANDS[command], *map(str, args)]
    )
    assert result.exit_code == code, result.output
    assert needle in result.stderr, result.stderr
    assert first_line_only(result.stderr)
    assert "Traceback" not in result.output and result.stdout == ""
    assert _listing(tmp_path) == before  # input untouched, no output, no temporary file


@pytest.mark.parametrize("command", list(COMMANDS))
def test_cli_unreadable_input_and_unwritable_folder(tmp_path, monkeypatch, command):
    src = write(_table(), tmp_path / "data.parquet")
    real_open = open

    def deny_input(path, *args, **kwargs):
        if str(path) == str(src):
            raise PermissionError(errno.EACCES, "Permission denied", str(path))
        return real_open(path, *args, **kwargs)

    monkeypatch.setattr("builtins.open", deny_input)
    result = CliRunner().invoke(cli, [command, str(src), *FAST, *COMMANDS[command]])
    assert result.exit_code == 1 and first_line_only(result.stderr)
    assert f"permission denied on '{src}'" in result.stderr
    monkeypatch.undo()

    def deny_folder(*args, **kwargs):
        raise PermissionError(errno.EACCES, "Permission denied", str(tmp_path))

    monkeypatch.setattr(lio.tempfile, "mkstemp", deny_folder)
    result = CliRunner().invoke(cli, [command, str(src), *FAST, *COMMANDS[command]])
    assert result.exit_code == 1 and first_line_only(result.stderr)
    assert "permission denied" in result.stderr and "Traceback" not in result.output
    assert sorted(os.listdir(tmp_path)) == ["data.parquet"]


@pytest.mark.skipif(os.geteuid() == 0, reason="root reads files whatever their permissions")
def test_cli_really_unreadable_input(tmp_path):
    src = write(_table(), tmp_path / "data.parquet")
    src.chmod(0)
    result = CliRunner().invoke(cli, ["filter", str(src), *FAST])
    assert result.exit_code == 1 and "permission denied" in result.stderr


# ---------------------------------------------------------------------------
# 2. Property-based: random small data sets
# ---------------------------------------------------------------------------

LABEL_KINDS = {
    "int": lambda codes: codes.astype(np.int64),
    "str": lambda codes: np.array(["ant", "bee", "cat", "dog"])[codes],
    "bool": lambda codes: (codes % 2).astype(bool),
    "float": lambda codes: codes.astype(np.float64) * 2.0,  # whole numbers: fractions are regression targets
    "object": lambda codes: np.array(["x", "y", "z", "w"], dtype=object)[codes],
}


@st.composite
def datasets(draw):
    n = draw(st.integers(2, 30))
    d = draw(st.integers(1, 5))
    seed = draw(st.integers(0, 2**16))
    rng = np.random.default_rng(seed)
    X = rng.normal(size=(n, d)) * draw(st.sampled_from([1e-3, 1.0, 1e3]))
    if draw(st.booleans()):
        X = X.astype(np.float32)
    n_classes = draw(st.integers(1, 4))
    codes = rng.integers(0, n_classes, n)
    noise = draw(st.floats(0.0, 0.5))
    flip = rng.random(n) < noise
    codes[flip] = rng.integers(0, n_classes, int(flip.sum()))
    return X, codes, draw(st.sampled_from(sorted(LABEL_KINDS)))


def _check_contract(est, n, allowed_labels):
    assert est.clean_mask_.shape == (n,) and est.clean_mask_.dtype == bool
    assert est.pseudo_labels_.shape == (n,)
    assert set(np.unique(est.pseudo_labels_).tolist()) <= set(allowed_labels)
    q = est.label_quality_
    assert q.shape == (n,) and q.dtype == np.float32 and np.all((q >= 0) & (q <= 1))
    assert est.predict_proba(est._last_X).shape == (n, len(est.classes_))


PROPERTY = settings(
    max_examples=12,
    deadline=None,
    derandomize=True,  # the same examples on every run: CI stays reproducible
    database=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
)


@PROPERTY
@given(
    data=datasets(),
    forget_rate=st.sampled_from(["auto", 0.0, 0.5]),
    method=st.sampled_from(["coteaching", "coteaching+", "jocor"]),
)
def test_property_coteaching_contract_or_clear_error(data, forget_rate, method):
    X, codes, kind = data
    y = LABEL_KINDS[kind](codes)
    est = tiny(CoTeachingFilter, random_state=0, forget_rate=forget_rate, method=method)
    try:
        est.fit(X, y)
    except ValueError as exc:
        assert len(np.unique(y)) < 2 and "only one class" in str(exc)
        return
    est._last_X = X
    _check_contract(est, len(y), np.unique(y).tolist())
    assert set(est.classes_.tolist()) == set(np.unique(y).tolist())


@PROPERTY
@given(data=datasets(), unlabeled=st.floats(0.0, 0.9))
def test_property_selftrainer_contract_or_clear_error(data, unlabeled):
    X, codes, kind = data
    given = LABEL_KINDS[kind](codes)
    missing = np.random.default_rng(len(codes)).random(len(codes)) < unlabeled
    y = given.astype(object) if kind in ("str", "object", "bool") else given.copy()
    y[missing] = -1  # the unlabeled marker, also among text or boolean labels
    est = tiny(SelfTrainer, random_state=0)
    try:
        est.fit(X, y)
    except ValueError as exc:
        assert len(np.unique(given[~missing])) < 2 and re.search("unlabeled|only one class", str(exc)), exc
        return
    est._last_X = X
    _check_contract(est, len(y), np.unique(given[~missing]).tolist())
    assert list(est.pseudo_labels_[~missing]) == list(given[~missing])  # given labels are kept


@PROPERTY
@given(data=datasets(), prior=st.sampled_from(["auto", 0.5, 0.9]), method=st.sampled_from(["nnpu", "elkan_noto"]))
def test_property_pu_contract_or_clear_error(data, prior, method):
    X, codes, _ = data
    y = np.where(codes == 0, 1, np.where(codes == 1, 0, -1))
    est = tiny(PUClassifier, prior=prior, method=method, random_state=0)
    try:
        est.fit(X, y)
    except ValueError as exc:
        assert re.search("positives|unlabeled|prior|at least", str(exc)), exc
        return
    est._last_X = X
    _check_contract(est, len(y), [0, 1])
    assert np.all(est.pseudo_labels_[y == 1] == 1) and 0 < est.class_prior_ <= 1


# ---------------------------------------------------------------------------
# 3. No data loss
# ---------------------------------------------------------------------------

_KILL_SCRIPT = textwrap.dedent(
    """
    import signal, sys, time
    import pyarrow.parquet as pq
    import labelclean.api as api

    # A shell that starts jobs in the background hands them SIGINT ignored; a user's terminal does not.
    signal.signal(signal.SIGINT, signal.default_int_handler)

    stage = sys.argv[1]
    real_fit, real_write = api._fit, pq.ParquetWriter.write_batch

    def slow_fit(*args, **kwargs):
        out = real_fit(*args, **kwargs)
        if stage == "fit":
            print("STAGE", flush=True)
            time.sleep(60)
        return out

    def slow_write(self, *args, **kwargs):
        real_write(self, *args, **kwargs)
        if stage == "write":
            print("STAGE", flush=True)
            time.sleep(60)

    api._fit, pq.ParquetWriter.write_batch = slow_fit, slow_write
    from labelclean.cli import main
    main(sys.argv[2:])
    """
)


@pytest.mark.parametrize(("sig", "stage"), [(signal.SIGKILL, "write"), (signal.SIGINT, "fit")])
def test_killed_run_leaves_the_previous_output_intact(tmp_path, sig, stage):
    src = write(_table(200), tmp_path / "data.parquet")
    out = tmp_path / "data.clean.parquet"
    out.write_bytes(b"previous output")
    source_digest = hashlib.sha256(src.read_bytes()).hexdigest()
    args = ["filter", str(src), "--force", *FAST, "--noise-rate", "0.2"]
    env = {**os.environ, "OMP_NUM_THREADS": "1", "PYTHONWARNINGS": "ignore"}
    proc = subprocess.Popen(
        [sys.executable, "-c", _KILL_SCRIPT, stage, *args],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env=env,
        cwd=ROOT,
    )
    try:
        assert proc.stdout.readline().strip() == "STAGE"  # blocks until the run reaches the stage
        if stage == "write":  # the temporary file is half written right now
            assert [p.name for p in tmp_path.glob(".data.clean.parquet.*.tmp")]
        proc.send_signal(sig)
        _, stderr = proc.communicate(timeout=60)
    finally:
        proc.kill()
    assert out.read_bytes() == b"previous output"
    assert hashlib.sha256(src.read_bytes()).hexdigest() == source_digest
    leftovers = sorted(p.name for p in tmp_path.iterdir())
    if sig == signal.SIGINT:
        assert proc.returncode == 130 and first_line_only(stderr)
        assert stderr.strip().splitlines()[-1] == "Error: interrupted; no output was written."
        assert leftovers == ["data.clean.parquet", "data.parquet"]
    else:  # SIGKILL leaves the hidden temporary file; the next run on this output removes it
        assert proc.returncode == -signal.SIGKILL and len(leftovers) == 3
        with lio.atomic_path(out) as tmp:
            tmp.write_bytes(b"next output")
        assert sorted(p.name for p in tmp_path.iterdir()) == ["data.clean.parquet", "data.parquet"]


def test_full_disk_gives_a_clear_message_and_removes_the_temporary_file(tmp_path, monkeypatch):
    src = write(_table(), tmp_path / "data.parquet")
    (tmp_path / "data.clean.parquet").write_bytes(b"previous output")

    def full(self, *args, **kwargs):
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(pq.ParquetWriter, "write_batch", full)
    result = CliRunner().invoke(cli, ["filter", str(src), "--force", *FAST, "--noise-rate", "0.2"])
    assert result.exit_code == 1 and first_line_only(result.stderr)
    assert "no space left on the device" in result.stderr and "-o" in result.stderr
    assert sorted(os.listdir(tmp_path)) == ["data.clean.parquet", "data.parquet"]
    assert (tmp_path / "data.clean.parquet").read_bytes() == b"previous output"


def test_failed_rename_permission_error_removes_the_temporary_file(tmp_path, monkeypatch):
    src = write(_table(), tmp_path / "data.parquet")

    def deny(a, b):
        raise PermissionError(errno.EACCES, "Permission denied", str(b))

    monkeypatch.setattr(lio.os, "replace", deny)
    result = CliRunner().invoke(cli, ["filter", str(src), *FAST, "--noise-rate", "0.2"])
    assert result.exit_code == 1 and "permission denied on" in result.stderr and first_line_only(result.stderr)
    assert sorted(os.listdir(tmp_path)) == ["data.parquet"]


def test_atomic_path_keeps_temporary_files_of_running_processes(tmp_path):
    target = tmp_path / "out.parquet"
    live = tmp_path / f".out.parquet.{os.getppid()}.abc.tmp"  # the parent process is alive
    dead = tmp_path / ".out.parquet.999999999.abc.tmp"  # no such process
    other = tmp_path / ".other.parquet.999999999.abc.tmp"  # another target
    longer = tmp_path / ".out.parquet.5.999999999.abc.tmp"  # the target out.parquet.5
    for p in (live, dead, other, longer):
        p.write_bytes(b"x")
    with lio.atomic_path(target) as tmp:
        tmp.write_bytes(b"new")
    assert sorted(p.name for p in tmp_path.iterdir()) == sorted([live.name, other.name, longer.name, "out.parquet"])


# ---------------------------------------------------------------------------
# 4. Determinism
# ---------------------------------------------------------------------------


_FINGERPRINT = textwrap.dedent(
    """
    import hashlib
    import numpy as np
    from labelclean import CoTeachingFilter, PUClassifier, SelfTrainer

    EXTRA = {
        CoTeachingFilter: {"estimator": "network", "forget_rate": 0.2, "refine_epochs": 1},
        SelfTrainer: {"estimator": "network", "max_iter": 1, "min_steps": 1},
        PUClassifier: {"estimator": "network", "method": "nnpu", "prior": "auto", "prior_epochs": 1},
    }

    def fingerprint(cls, seed):
        # SHA-256 of everything a fit produces: the row contract, the probabilities and the weights.
        rng = np.random.RandomState(3)
        X = rng.normal(size=(60, 5)).astype(np.float32)
        y = (X[:, 0] > 0).astype(np.int64)
        if cls is SelfTrainer:
            y[::2] = -1
        params = dict(hidden_dims=(8,), max_epochs=1, batch_size=16, device="cpu", random_state=seed, n_jobs=1)
        est = cls(**params, **EXTRA[cls]).fit(X, y)
        h = hashlib.sha256()
        for a in (est.clean_mask_, est.pseudo_labels_, est.label_quality_, est.predict_proba(X)):
            h.update(np.ascontiguousarray(a).tobytes())
        for net in est.networks_:
            for t in net.state_dict().values():
                h.update(t.numpy().tobytes())
        return h.hexdigest()
    """
)
_namespace: dict = {}
exec(_FINGERPRINT, _namespace)  # the same code runs here and in the subprocess
_fingerprint = _namespace["fingerprint"]

_SUBPROCESS_RUN = _FINGERPRINT + textwrap.dedent(
    """
    import json, sys
    from labelclean.cli import main
    print(json.dumps({c.__name__: fingerprint(c, 7) for c in (CoTeachingFilter, SelfTrainer, PUClassifier)}))
    sys.stdout.flush()
    main(sys.argv[1:])
    """
)


def test_same_random_state_is_bit_identical_across_runs_and_processes_and_no_process_is_left(tmp_path):
    here = {cls.__name__: _fingerprint(cls, 7) for cls in ESTIMATORS}
    assert here == {cls.__name__: _fingerprint(cls, 7) for cls in ESTIMATORS}  # across runs
    assert here["CoTeachingFilter"] != _fingerprint(CoTeachingFilter, 8)  # the seed matters
    src = write(_table(), tmp_path / "data.parquet")
    args = ["filter", str(src), "--n-jobs", "1", *FAST, "--noise-rate", "0.2", "--quiet"]
    in_process = CliRunner().invoke(cli, [*args, "-o", str(tmp_path / "here.parquet")])
    assert in_process.exit_code == 0, in_process.output
    env = {**os.environ, "OMP_NUM_THREADS": "1", "PYTHONHASHSEED": "123", "PYTHONWARNINGS": "ignore"}
    proc = subprocess.Popen(
        [sys.executable, "-c", _SUBPROCESS_RUN, *args, "-o", str(tmp_path / "there.parquet")],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env=env,
        cwd=ROOT,
        start_new_session=True,  # its own process group: any child it started would stay in it
    )
    out, err = proc.communicate(timeout=180)
    assert proc.returncode == 0, err
    assert json.loads(out.strip().splitlines()[0]) == here  # estimators: across processes
    here_table, there_table = pq.read_table(tmp_path / "here.parquet"), pq.read_table(tmp_path / "there.parquet")
    assert here_table.equals(there_table)  # the command line: across processes
    time.sleep(0.2)
    with pytest.raises(ProcessLookupError):
        os.killpg(proc.pid, 0)  # nothing the run started is still alive


# ---------------------------------------------------------------------------
# 5. Streaming on a small file with a tiny batch size
# ---------------------------------------------------------------------------


def test_streaming_read_and_write_with_tiny_batches(tmp_path):
    rng = np.random.default_rng(0)
    n = 53
    emb = rng.normal(size=(n, 3)).astype(np.float32)
    lists = pa.array([None if i % 11 == 4 else list(e) for i, e in enumerate(emb)], type=pa.list_(pa.float32()))
    fixed = pa.FixedSizeListArray.from_arrays(pa.array(emb.ravel()), 3)
    num = pa.array([None if i % 7 == 0 else float(i) for i in range(n)])
    table = pa.table({"emb": lists, "fixed": fixed, "num": num, "label": pa.array(np.arange(n) % 3)})
    path = tmp_path / "small.parquet"
    pq.write_table(table, path, row_group_size=10)
    pf = lio.open_parquet(path)
    plan = lio.plan_features(pf, label="label")
    streamed = lio.read_features(pf, plan, batch_rows=4)
    whole = lio.read_features(table, plan, batch_rows=n)
    np.testing.assert_array_equal(streamed, whole)
    np.testing.assert_array_equal(streamed[:, 3:6], emb)
    assert np.all(streamed[4, :3] == 0) and streamed[0, 6] == pytest.approx(np.nanmean(num.to_numpy(False)[1:]))
    # the row numbers in errors count across batches
    bad = table.set_column(2, "num", pa.array([1.0] * 41 + [np.nan] + [1.0] * 11))
    pq.write_table(bad, tmp_path / "bad.parquet", row_group_size=10)
    with pytest.raises(lio.DataError, match="holds nan at row 41"):
        lio.read_features(lio.open_parquet(tmp_path / "bad.parquet"), plan, batch_rows=4)
    added = pa.table({"is_clean": pa.array(np.arange(n) % 2 == 0)})
    written = lio.write_with_columns(pf, tmp_path / "out.parquet", added, keep=np.arange(n) % 2 == 0, batch_rows=3)
    out = pq.read_table(tmp_path / "out.parquet")
    assert written == out.num_rows == 27 and out.column_names == ["emb", "fixed", "num", "label", "is_clean"]
    assert out.column("label").to_pylist() == list(np.arange(0, n, 2) % 3)


def test_cli_streams_in_tiny_batches(tmp_path, monkeypatch):
    monkeypatch.setattr(lio, "batch_rows_for", lambda plan, target_bytes=0: 6)
    src = tmp_path / "data.parquet"
    pq.write_table(_table(50), src, row_group_size=7)
    result = CliRunner().invoke(cli, ["filter", str(src), *FAST, "--noise-rate", "0.2"])
    assert result.exit_code == 0, result.output
    out = pq.read_table(tmp_path / "data.clean.parquet")
    assert out.num_rows == 50 and out.column("key").to_pylist() == [f"k{i}" for i in range(50)]


# ---------------------------------------------------------------------------
# 6. Safe persistence
# ---------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("cls", "params", "labels"),
    [
        (CoTeachingFilter, {}, "str"),
        (CoTeachingFilter, {"method": "jocor", "refine_epochs": 1}, "int"),
        (SelfTrainer, {"student_width": 2.0}, "int"),
        (SelfTrainer, {"relabel": True, "max_teacher_epochs": 1, "max_iter": 0}, "int"),
        (PUClassifier, {}, "int"),
        (PUClassifier, {"method": "elkan_noto", "prior": "auto"}, "int"),
    ],
)
def test_save_load_round_trip_is_bit_identical(tmp_path, cls, params, labels):
    X, y = xy(60, 5)
    y = labels_for(cls, y) if not params.get("relabel") else y
    if labels == "str":
        y = np.array(["no", "yes"])[y]
    est = tiny(cls, random_state=0, **params).fit(X, y)
    path = est.save(tmp_path / "model.pt")
    loaded = cls.load(path)
    assert type(loaded) is cls and loaded.get_params() == est.get_params()
    assert loaded.predict_proba(X).tobytes() == est.predict_proba(X).tobytes()
    assert np.array_equal(loaded.predict(X), est.predict(X)) and loaded.predict(X).dtype == est.predict(X).dtype
    for name in ("classes_", "clean_mask_", "pseudo_labels_", "label_quality_"):
        a, b = getattr(loaded, name), getattr(est, name)
        assert a.dtype == b.dtype and np.array_equal(a, b)
    assert loaded.input_shape_ == est.input_shape_ and loaded.n_features_in_ == est.n_features_in_
    assert loaded.history_ == est.history_
    assert type(LabelEstimatorBase.load(path)) is cls  # the base loads any of the three


def test_save_load_images_dataframe_and_custom_module(tmp_path):
    rng = np.random.RandomState(0)
    X, y = rng.rand(40, 1, 6, 6).astype(np.float32), np.r_[[0] * 20, [1] * 20]
    est = tiny(CoTeachingFilter, random_state=0).fit(X, y)
    loaded = CoTeachingFilter.load(est.save(tmp_path / "cnn.pt"))
    assert loaded.predict_proba(X).tobytes() == est.predict_proba(X).tobytes()
    df = pd.DataFrame(_X, columns=list("abcd"))
    est = tiny(PUClassifier, random_state=0).fit(df, _Y)
    loaded = PUClassifier.load(est.save(tmp_path / "df.pt"))
    assert list(loaded.feature_names_in_) == list("abcd")
    assert loaded.predict_proba(df).tobytes() == est.predict_proba(df).tobytes()

    def factory(input_shape, n_outputs):
        return nn.Sequential(nn.Linear(input_shape[0], 5), nn.ReLU(), nn.Linear(5, n_outputs))

    est = tiny(SelfTrainer, module=factory, random_state=0).fit(_X, labels_for(SelfTrainer, _Y))
    path = est.save(tmp_path / "custom.pt")
    with pytest.raises(ValueError, match=r"custom module=.*factory.*load\(path, module=...\)"):
        SelfTrainer.load(path)
    loaded = SelfTrainer.load(path, module=factory)
    assert loaded.predict_proba(_X).tobytes() == est.predict_proba(_X).tobytes()
    with pytest.raises(ValueError, match="do not fit"):
        SelfTrainer.load(path, module=lambda s, n: nn.Sequential(nn.Linear(s[0], 9), nn.ReLU(), nn.Linear(9, n)))


def test_save_refuses_what_needs_pickle(tmp_path):
    est = tiny(PUClassifier, method="spy", estimator=LogisticRegression(), random_state=0).fit(_X, _Y)
    with pytest.raises(ValueError, match="needs? pickle|without pickle"):
        est.save(tmp_path / "m.pt")
    assert not (tmp_path / "m.pt").exists() and os.listdir(tmp_path) == []
    with pytest.raises(NotFittedError):
        tiny(CoTeachingFilter).save(tmp_path / "unfitted.pt")


class _Exploit:
    def __reduce__(self):
        return (os.system, ("touch exploited",))


def test_load_refuses_foreign_damaged_and_tampered_files(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    est = tiny(CoTeachingFilter, random_state=0).fit(_X, _Y)
    good = est.save(tmp_path / "good.pt").read_bytes()
    cases = {
        "text.pt": b"hello, not a model",
        "truncated.pt": good[: len(good) // 2],
        "empty.pt": b"",
    }
    for name, content in cases.items():
        (tmp_path / name).write_bytes(content)
    torch.save({"weight": torch.zeros(3)}, tmp_path / "state_dict.pt")
    torch.save([_Exploit()], tmp_path / "exploit.pt")  # a pickle that would run a command
    (tmp_path / "exploit.pkl").write_bytes(pickle.dumps(_Exploit()))
    # tampered: one weight changed inside an otherwise valid file
    payload = torch.load(tmp_path / "good.pt", weights_only=True)
    name = next(k for k in payload["tensors"] if k.startswith("networks_.0.") and k.endswith("weight"))
    payload["tensors"][name] = payload["tensors"][name] + 1.0
    torch.save(payload, tmp_path / "tampered.pt")
    payload = torch.load(tmp_path / "good.pt", weights_only=True)
    payload["meta"] = payload["meta"].replace('"CoTeachingFilter"', '"PUClassifier"')
    torch.save(payload, tmp_path / "meta_edited.pt")
    for name, match in [
        ("text.pt", "not a labelclean model file"),
        ("truncated.pt", "not a labelclean model file"),
        ("empty.pt", "not a labelclean model file"),
        ("state_dict.pt", "not a labelclean model file"),
        ("exploit.pt", "refusing to load"),
        ("exploit.pkl", "not a labelclean model file"),
        ("tampered.pt", "modified or damaged"),
        ("meta_edited.pt", "modified or damaged"),
    ]:
        with pytest.raises(ValueError, match=match):
            CoTeachingFilter.load(tmp_path / name)
    assert not (tmp_path / "exploited").exists()
    with pytest.raises(ValueError, match="holds a 'CoTeachingFilter', not a PUClassifier"):
        PUClassifier.load(tmp_path / "good.pt")
    with pytest.raises(FileNotFoundError):
        CoTeachingFilter.load(tmp_path / "missing.pt")


def test_nothing_in_the_package_unpickles():
    """The CLI and the library never unpickle: no pickle/joblib loads, torch.load only with weights_only=True."""
    offenders = []
    for path in (ROOT / "labelclean").rglob("*.py"):
        text = path.read_text()
        for pattern in (
            r"pickle\.loads?\(",
            r"joblib\.load\(",
            r"read_pickle\(",
            r"allow_pickle\s*=\s*True",
            r"dill\.",
        ):
            offenders += [f"{path.name}: {m.group(0)}" for m in re.finditer(pattern, text)]
        for m in re.finditer(r"torch\.load\(([^)]*)\)", text):
            if "weights_only=True" not in m.group(1):
                offenders.append(f"{path.name}: {m.group(0)}")
    assert offenders == []


# ---------------------------------------------------------------------------
# 7. Resource limits
# ---------------------------------------------------------------------------


@pytest.mark.parametrize("cls", ESTIMATORS, ids=lambda c: c.__name__)
def test_n_jobs_sets_torch_threads_during_fit_and_predict_then_restores(cls):
    seen: list[int] = []

    def module(input_shape, n_out):
        seen.append(torch.get_num_threads())
        return nn.Sequential(nn.Flatten(), nn.Linear(int(np.prod(input_shape)), n_out))

    before = torch.get_num_threads()
    est = tiny(cls, module=module, n_jobs=2).fit(_X, labels_for(cls, _Y))
    assert seen and set(seen) == {2}
    assert torch.get_num_threads() == before
    seen.clear()
    loaded_threads = []
    real = torch.nn.Module.__call__

    def spy(self, *args, **kwargs):
        loaded_threads.append(torch.get_num_threads())
        return real(self, *args, **kwargs)

    torch.nn.Module.__call__ = spy
    try:
        est.predict(_X)
    finally:
        torch.nn.Module.__call__ = real
    assert loaded_threads and set(loaded_threads) == {2}
    assert torch.get_num_threads() == before


def test_n_jobs_none_leaves_torch_setting_and_negative_counts_from_all_cores():
    from labelclean._train import resolve_n_jobs, torch_threads, usable_cores

    before = torch.get_num_threads()
    with torch_threads(None):
        assert torch.get_num_threads() == before
    cores = usable_cores()
    assert 1 <= cores <= (os.cpu_count() or 1)
    assert resolve_n_jobs(-1) == cores and resolve_n_jobs(-2) == max(1, cores - 1) and resolve_n_jobs(3) == 3
    with pytest.raises(ValueError, match="n_jobs=0"):
        resolve_n_jobs(0)
    with pytest.raises(RuntimeError), torch_threads(1):
        raise RuntimeError("restored even on errors")
    assert torch.get_num_threads() == before


def test_cli_n_jobs_reaches_the_estimator_and_no_thread_is_left(tmp_path, monkeypatch):
    import labelclean.api as api

    fitted = []
    real_fit = api._fit

    def record(est, *args, **kwargs):
        fitted.append(est)
        return real_fit(est, *args, **kwargs)

    monkeypatch.setattr(api, "_fit", record)
    src = write(_table(), tmp_path / "data.parquet")
    threads_before = set(threading.enumerate())
    result = CliRunner().invoke(cli, ["filter", str(src), "--n-jobs", "1", *FAST, "--noise-rate", "0.2"])
    assert result.exit_code == 0, result.output
    assert fitted[0].n_jobs == 1
    assert set(threading.enumerate()) == threads_before  # the progress poller was joined
