"""PUClassifier: positive-unlabeled learning (nnPU, uPU, Elkan–Noto, spies) and class-prior estimation."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
import torch
from sklearn.datasets import make_classification
from sklearn.linear_model import LogisticRegression
from sklearn.neural_network import MLPClassifier
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import StandardScaler
from sklearn.utils._param_validation import InvalidParameterError
from sklearn.utils.estimator_checks import parametrize_with_checks

from labelclean.pu import (
    PUClassifier,
    bbe_mixture_proportion,
    nnpu_loss,
    oversampling_offset,
    pu_batches,
    pu_indicator,
)

FAST = {"estimator": "network", "max_epochs": 10, "batch_size": 128, "random_state": 0}  # the nnPU network
TRUE_PRIOR = 0.4


@pytest.fixture(scope="module")
def pu_data():
    """Two separable classes, 40 % positives, half of the training positives labeled (SCAR)."""
    X, y = make_classification(
        n_samples=2400,
        n_features=10,
        n_informative=5,
        n_redundant=0,
        class_sep=2.5,
        weights=[1 - TRUE_PRIOR, TRUE_PRIOR],
        flip_y=0.0,
        random_state=0,
    )
    X = X.astype(np.float32)
    rng = np.random.default_rng(0)
    X_tr, y_tr, X_te, y_te = X[:1600], y[:1600], X[1600:], y[1600:]
    s = np.where((y_tr == 1) & (rng.random(len(y_tr)) < 0.5), 1, 0)
    return X_tr, y_tr, s, X_te, y_te


@pytest.fixture(scope="module")
def nnpu_fit(pu_data):
    X, _, s, _, _ = pu_data
    return PUClassifier(**FAST).fit(X, s)


# --------------------------------------------------------------------------- behaviour


def test_nnpu_close_to_supervised_and_prior(pu_data, nnpu_fit):
    X, y, _, X_te, y_te = pu_data
    supervised = MLPClassifier((64,), max_iter=300, random_state=0).fit(X, y).score(X_te, y_te)
    assert nnpu_fit.score(X_te, y_te) >= supervised - 0.04
    assert abs(nnpu_fit.class_prior_ - y.mean()) < 0.05
    _, _, s, _, _ = pu_data
    assert nnpu_fit.c_ == pytest.approx(s.sum() / y.sum(), abs=0.05)


def test_row_contract(pu_data, nnpu_fit):
    X, y, s, _, _ = pu_data
    clf = nnpu_fit
    assert list(clf.classes_) == [0, 1]
    assert set(np.unique(clf.pseudo_labels_)) <= {0, 1}
    assert np.all(clf.pseudo_labels_[s == 1] == 1)  # labeled positives keep their label
    assert np.all(clf.clean_mask_[s == 1])
    reliable = clf.clean_mask_ & (s == 0)
    assert reliable.sum() > 0.5 * (y == 0).sum()
    assert np.all(clf.pseudo_labels_[reliable] == 0)
    assert (y[reliable] == 0).mean() > 0.97  # reliable negatives really are negative
    assert (clf.pseudo_labels_[s == 0] == y[s == 0]).mean() > 0.9
    assert clf.label_quality_.dtype == np.float32
    assert np.all((clf.label_quality_ >= 0) & (clf.label_quality_ <= 1))
    assert clf.label_quality_[reliable].min() >= 1 - clf.negative_threshold - 1e-6
    assert {"phase", "epoch", "risk", "negative_risk", "corrected", "seconds"} <= set(clf.history_[-1])


def test_predict_proba_is_calibrated_probability(pu_data, nnpu_fit):
    _, _, _, X_te, y_te = pu_data
    proba = nnpu_fit.predict_proba(X_te)
    assert proba.shape == (len(X_te), 2) and proba.dtype == np.float32
    assert np.all((proba >= 0) & (proba <= 1))
    np.testing.assert_allclose(proba.sum(1), 1.0, atol=1e-6)
    assert set(np.unique(nnpu_fit.predict(X_te))) <= {0, 1}
    # calibration: the mean probability matches the positive share, and confident rows are right
    assert abs(proba[:, 1].mean() - y_te.mean()) < 0.05
    sure = proba[:, 1] > 0.9
    assert y_te[sure].mean() > 0.95


@pytest.mark.parametrize(
    "params",
    [
        {"method": "nnpu", "loss": "logistic"},
        {"method": "elkan_noto"},
        {"method": "elkan_noto", "estimator": LogisticRegression()},
        {"method": "spy"},
        {"method": "spy", "spy_iterations": 2},
        {"method": "spy", "estimator": LogisticRegression()},
    ],
    ids=lambda p: "-".join(f"{v if not hasattr(v, 'fit') else 'LR'}" for v in p.values()),
)
def test_each_method_learns(pu_data, params):
    X, y, s, X_te, y_te = pu_data
    clf = PUClassifier(**{**FAST, **params}).fit(X, s)
    assert clf.score(X_te, y_te) > 0.85
    assert np.all(clf.predict_proba(X_te) <= 1.0)
    assert 0.0 < clf.class_prior_ < 1.0 and 0.0 < clf.c_ <= 1.0
    # clean rows are right; iterating the spy method trades some purity for more reliable negatives
    assert (y[clf.clean_mask_] == clf.pseudo_labels_[clf.clean_mask_]).mean() > (
        0.9 if "spy_iterations" in params else 0.95
    )
    if params.get("estimator") is not None:
        assert clf.networks_ == [] and clf.estimator_ is not None


def test_elkan_noto_estimates_c_and_prior_with_sklearn_estimator(pu_data):
    X, y, s, _, _ = pu_data
    clf = PUClassifier(method="elkan_noto", estimator=LogisticRegression(), holdout_ratio=0.2, random_state=0)
    clf.fit(X, s)
    true_c = s.sum() / y.sum()
    assert clf.c_ == pytest.approx(true_c, abs=0.1)
    assert clf.class_prior_ == pytest.approx(s.mean() / clf.c_)
    assert abs(clf.class_prior_ - y.mean()) < 0.1


def test_given_prior_is_used(pu_data):
    X, y, s, _, _ = pu_data
    clf = PUClassifier(**{**FAST, "max_epochs": 3, "prior": 0.37}).fit(X, s)
    assert clf.class_prior_ == pytest.approx(0.37)
    assert clf.c_ == pytest.approx(s.sum() / (0.37 * len(s)))
    assert not any(h["phase"].startswith("prior") for h in clf.history_)  # no estimation run


def test_nonnegative_correction_engages():
    """uPU drives the negative risk below zero on an over-fitting network; nnPU does not."""
    rng = np.random.default_rng(1)
    X = rng.normal(size=(300, 20)).astype(np.float32)  # pure noise: anything learned is over-fitting
    s = (rng.random(300) < 0.2).astype(int)
    params = {"hidden_dims": (256, 256), "max_epochs": 40, "prior": 0.5, "batch_size": 64, "random_state": 0}
    upu = PUClassifier(method="upu", **params).fit(X, s)
    nnpu = PUClassifier(method="nnpu", **params).fit(X, s)
    upu_neg = [h["negative_risk"] for h in upu.history_]
    nnpu_neg = [h["negative_risk"] for h in nnpu.history_]
    assert min(upu_neg) < -0.1
    assert min(nnpu_neg) > -0.05  # batch averages may dip slightly below -β before the step back up
    assert max(h["corrected"] for h in nnpu.history_) > 0.2  # the correction step ran on many batches
    assert all(h["corrected"] == 0.0 for h in upu.history_)


def test_images_use_cnn():
    rng = np.random.default_rng(0)
    y = rng.integers(0, 2, 400)
    X = rng.normal(0, 0.3, (400, 10, 10)).astype(np.float32)
    X[y == 1, 3:6, :] += 1.5
    s = np.where((y == 1) & (rng.random(400) < 0.5), 1, 0)
    clf = PUClassifier(max_epochs=6, prior_epochs=3, random_state=0, batch_size=64).fit(X, s)
    assert isinstance(clf.networks_[0][1][0], torch.nn.Conv2d)
    assert clf.score(X, y) > 0.9


# --------------------------------------------------------------------------- pure functions


def test_bbe_recovers_mixture_proportion():
    rng = np.random.default_rng(0)
    pos = rng.normal(2.0, 1.0, 2000)
    unl = np.r_[rng.normal(2.0, 1.0, 3000), rng.normal(-2.0, 1.0, 7000)]  # 30 % positives
    assert bbe_mixture_proportion(pos, unl) == pytest.approx(0.3, abs=0.03)
    assert bbe_mixture_proportion(pos, pos) == pytest.approx(1.0, abs=0.05)


def test_nnpu_loss_switches_to_correction_step():
    z = torch.tensor([5.0, 5.0, 5.0, 5.0], requires_grad=True)  # all predicted positive
    s = torch.tensor([1.0, 1.0, 0.0, 0.0])
    obj, stats = nnpu_loss(z, s, prior=0.9, loss="sigmoid", beta=0.0, gamma=0.5)
    # R_u^- - π R_p^- = 1/(1+e^-5)·(1 - 0.9) > 0: no correction
    assert stats["corrected"] == 0.0 and stats["negative_risk"] > 0
    z2 = torch.tensor([5.0, 5.0, -5.0, -5.0], requires_grad=True)
    obj2, stats2 = nnpu_loss(z2, s, prior=0.9, loss="sigmoid", beta=0.0, gamma=0.5)
    assert stats2["negative_risk"] < 0 and stats2["corrected"] == 1.0
    assert float(obj2.detach()) == pytest.approx(-0.5 * stats2["negative_risk"])
    _, stats3 = nnpu_loss(z2, s, prior=0.9, non_negative=False)
    assert stats3["corrected"] == 0.0 and stats3["risk"] < stats2["risk"]


def test_pu_batches_cover_unlabeled_once_and_hold_positives():
    gen = torch.Generator().manual_seed(0)
    out = pu_batches(30, 1000, 100, gen)
    unl = torch.cat([u for _, u in out])
    assert sorted(unl.tolist()) == list(range(1000))
    assert all(len(p) == 25 for p, _ in out)  # a quarter of each batch
    assert offset_is_prior_shift(30, 1000, 100)


def offset_is_prior_shift(n_pos: int, n_neg: int, batch_size: int) -> bool:
    # batches hold 25 positives to 75 negatives, naturally 30 to 1000: odds inflated by (25/75)/(30/1000)
    return oversampling_offset(n_pos, n_neg, batch_size) == pytest.approx(-np.log((25 / 75) / (30 / 1000)))


def test_pu_indicator_encodings():
    assert pu_indicator(np.array([1, 0, -1, 1])).tolist() == [1, 0, 0, 1]
    assert pu_indicator(np.array(["spam", "?", "ham"]), pos_label="spam").tolist() == [1, 0, 0]
    with pytest.raises(ValueError, match=r"outside the expected set .*pos_label"):
        pu_indicator(np.array([1, 0, 2]))


# --------------------------------------------------------------------------- sklearn integration


def test_pipeline_and_pandas(pu_data):
    X, y, s, X_te, y_te = pu_data
    df = pd.DataFrame(X, columns=[f"f{i}" for i in range(X.shape[1])])
    pipe = make_pipeline(StandardScaler(), PUClassifier(**FAST)).fit(df, pd.Series(s))
    assert pipe.score(pd.DataFrame(X_te, columns=df.columns), y_te) > 0.85


def test_fit_resample_returns_inferred_labels(pu_data):
    X, y, s, _, _ = pu_data
    df = pd.DataFrame(X)
    ys = pd.Series(s, index=np.arange(len(s)) + 100, name="label")
    clf = PUClassifier(**{**FAST, "max_epochs": 5})  # the contract holds after any number of epochs
    X_kept, y_kept = clf.fit_resample(df.set_index(ys.index), ys)
    assert isinstance(X_kept, pd.DataFrame) and isinstance(y_kept, pd.Series) and y_kept.name == "label"
    assert len(X_kept) == clf.clean_mask_.sum() == len(y_kept)
    assert set(y_kept.unique()) == {0, 1}  # reliable negatives come back as 0, not as unlabeled
    assert (y_kept == 1).sum() == s.sum()
    rows = np.flatnonzero(clf.clean_mask_)
    assert (y_kept.to_numpy() == y[rows]).mean() > 0.95
    X_np, y_np = clf.fit_resample(X, s)
    assert isinstance(y_np, np.ndarray) and X_np.shape[0] == y_np.shape[0]


def test_imblearn_pipeline_trains_next_step_on_labeled_rows(pu_data):
    """As a sampler, PUClassifier hands the next step positives and reliable negatives: a PN problem."""
    imblearn_pipeline = pytest.importorskip("imblearn.pipeline")
    X, _, s, X_te, y_te = pu_data
    pipe = imblearn_pipeline.Pipeline([("pu", PUClassifier(**FAST)), ("lr", LogisticRegression())]).fit(X, s)
    naive = LogisticRegression().fit(X, s)  # treats every unlabeled row as negative
    assert set(pipe.named_steps["lr"].classes_) == {0, 1}
    assert pipe.score(X_te, y_te) > 0.9
    assert pipe.score(X_te, y_te) > naive.score(X_te, y_te) + 0.05


def test_deterministic_and_no_global_seed(pu_data):
    X, _, s, X_te, _ = pu_data
    before = torch.random.get_rng_state().clone()
    np_before = np.random.get_state()[1].copy()  # noqa: NPY002
    p1 = PUClassifier(**{**FAST, "max_epochs": 3}).fit(X, s).predict_proba(X_te)
    p2 = PUClassifier(**{**FAST, "max_epochs": 3}).fit(X, s).predict_proba(X_te)
    np.testing.assert_array_equal(p1, p2)
    assert torch.equal(before, torch.random.get_rng_state())
    np.testing.assert_array_equal(np_before, np.random.get_state()[1])  # noqa: NPY002
    p3 = PUClassifier(**{**FAST, "max_epochs": 3, "random_state": 1}).fit(X, s).predict_proba(X_te)
    assert not np.array_equal(p1, p3)


# --------------------------------------------------------------------------- bad input


@pytest.mark.parametrize(
    ("y", "params", "error", "match"),
    [
        ([0] * 20, {}, ValueError, "no labeled positives"),
        ([-1] * 20, {}, ValueError, "no labeled positives"),
        ([1] * 20, {}, ValueError, "no unlabeled rows"),
        ([1, 0, 2] * 7 + [1], {}, ValueError, r"outside the expected set \{1, 0, -1\}"),
        ([1, 0] * 10, {"prior": 0.2}, ValueError, "labeled positive; prior is p"),
        ([1, 0] * 10, {"prior": 1.0}, InvalidParameterError, "prior"),
        ([1, 0] * 10, {"prior": 0.0}, InvalidParameterError, "prior"),
        ([1, 0] * 10, {"method": "bogus"}, InvalidParameterError, "method"),
        ([1, 0] * 10, {"method": "nnpu", "estimator": LogisticRegression()}, ValueError, "module= to change"),
        ([1, 0] * 10, {"method": "spy", "estimator": "lr"}, TypeError, "fit and predict_proba"),
        ([1] + [0] * 19, {}, ValueError, "at least 4 labeled positives"),
    ],
)
def test_bad_inputs(y, params, error, match):
    X = np.random.default_rng(0).normal(size=(len(y), 3))
    with pytest.raises(error, match=match):
        PUClassifier(max_epochs=1, prior_epochs=1, **params).fit(X, np.array(y))


def test_bad_X():
    clf = PUClassifier(max_epochs=1, prior=0.6, random_state=0)
    with pytest.raises(ValueError, match="numeric features"):
        clf.fit(np.array([["a", "b"]] * 10), np.array([1, 0] * 5))
    with pytest.raises(ValueError, match="every column of X is missing"):
        clf.fit(np.full((10, 2), np.nan), np.array([1, 0] * 5))
    clf.fit(np.random.default_rng(0).normal(size=(10, 3)), np.array([1, 0] * 5))
    with pytest.raises(ValueError, match="features"):
        clf.predict(np.zeros((4, 5)))


def test_custom_pos_label_and_string_labels(pu_data):
    X, y, s, X_te, y_te = pu_data
    labels = np.where(s == 1, "fraud", "unknown")
    clf = PUClassifier(**{**FAST, "pos_label": "fraud"}).fit(X, labels)
    assert list(clf.classes_) == [0, 1] and clf.score(X_te, y_te) > 0.85


# --------------------------------------------------------------------------- scikit-learn's own checks

_Y_HAS_2 = (
    "the check's y holds the value 2 (y = X[:, 0].astype(int) or a multiclass target); with pos_label=1 PU labels "
    "allow only 1 (labeled positive) and 0 / -1 (unlabeled), so fit rightly raises"
)
EXPECTED_FAILED = {
    "check_classifiers_classes": "string classes ('one', 'two', ...) hold no value equal to pos_label=1, so there "
    "are no labeled positives; and classes_ is always [0, 1] for PU, never the given labels",
    "check_estimators_dtypes": _Y_HAS_2,
    "check_classifier_data_not_an_array": _Y_HAS_2,
    "check_fit2d_1feature": _Y_HAS_2,
}


def _expected_failed(estimator):
    return EXPECTED_FAILED


@parametrize_with_checks(
    [PUClassifier(max_epochs=10, prior_epochs=1, hidden_dims=(32,), batch_size=32, random_state=0)],
    expected_failed_checks=_expected_failed,
)
def test_sklearn_checks(estimator, check):  # noqa: D103
    check(estimator)
