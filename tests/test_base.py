"""What the three estimators share (labelclean/_base.py): validation, labels, the row contract, seeding, threads.

Everything here is small: networks of 8 units, one epoch, a few dozen rows.
"""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow.parquet as pq
import pytest
import torch
from click.testing import CliRunner
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from sklearn.exceptions import NotFittedError
from torch import nn

from labelclean import CoTeachingFilter, PUClassifier, SelfTrainer
from labelclean.cli import cli
from tests.helpers import TINY_CLI as FAST
from tests.helpers import X40 as _X
from tests.helpers import Y40 as _Y
from tests.helpers import labels_for, tiny, write
from tests.helpers import tiny_table as _table

ROOT = Path(__file__).resolve().parents[1]
ESTIMATORS = [CoTeachingFilter, SelfTrainer, PUClassifier]


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
# Bad input: every case × every estimator
# ---------------------------------------------------------------------------

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
# Property-based: random small data sets, the row contract or a clear error
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
# Determinism
# ---------------------------------------------------------------------------


_FINGERPRINT = textwrap.dedent(
    """
    import hashlib
    import numpy as np
    from labelclean import CoTeachingFilter, NoisyStudent, PUClassifier, SelfTrainer

    EXTRA = {
        CoTeachingFilter: {"estimator": "network", "forget_rate": 0.2, "refine_epochs": 1},
        SelfTrainer: {"estimator": "network", "strategy": NoisyStudent(max_iter=1), "min_steps": 1},
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
# Threads
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


# ---------------------------------------------------------------------------
# Seconds per phase
# ---------------------------------------------------------------------------


@pytest.mark.parametrize("cls", ESTIMATORS, ids=lambda c: c.__name__)
def test_every_fit_records_the_seconds_of_its_phases(cls, tmp_path):
    from labelclean import _progress

    started: list[str] = []
    est = tiny(cls)
    t0 = time.perf_counter()
    with _progress.reporting(lambda e: started.append(e.phase) if e.kind == "start" else None):
        est.fit(_X, labels_for(cls, _Y))
    wall = time.perf_counter() - t0
    seconds = est.phase_seconds_
    assert list(seconds) == list(dict.fromkeys(started)) and seconds  # the progress phases, in order
    assert all(isinstance(v, float) and v >= 0 for v in seconds.values())
    assert sum(seconds.values()) <= wall
    again = tiny(cls).fit(_X, labels_for(cls, _Y))  # nobody listening: timed all the same
    assert list(again.phase_seconds_) == list(seconds)
    assert cls.load(est.save(tmp_path / "m.pt")).phase_seconds_ == seconds


def test_an_estimator_fitted_inside_a_phase_counts_toward_it_and_keeps_its_own_seconds():
    from labelclean.contrastive import ContrastiveEncoder

    teacher = tiny(CoTeachingFilter)
    st = tiny(SelfTrainer, teacher=teacher).fit(_X, labels_for(SelfTrainer, _Y))
    assert "teacher" in st.phase_seconds_ and "co-teaching" not in st.phase_seconds_
    assert list(st.teacher_.phase_seconds_) == ["co-teaching"]
    assert st.phase_seconds_["teacher"] >= st.teacher_.phase_seconds_["co-teaching"]
    enc = ContrastiveEncoder(max_epochs=1, n_components=2, random_state=0).fit(_X)
    assert list(enc.phase_seconds_) == ["contrastive"]
