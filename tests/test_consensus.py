"""AnnotatorConsensus: several annotators per row (majority vote, Dawid-Skene, votes with a model)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow.parquet as pq
import pytest
from sklearn.linear_model import LogisticRegression
from sklearn.utils.estimator_checks import parametrize_with_checks

from labelclean.consensus import (
    AnnotatorConsensus,
    agreement_rates,
    dawid_skene,
    majority_vote,
    model_consensus,
    posterior,
)

REPO = Path(__file__).resolve().parent.parent


def crowd(n=5000, k=4, acc=(0.9, 0.8, 0.7, 0.6, 0.55), seed=0, p_missing=0.0):
    """True classes and votes of annotators who are right with probability ``acc`` (else a random other class)."""
    rng = np.random.default_rng(seed)
    y = rng.integers(k, size=n)
    Y = np.empty((n, len(acc)), dtype=np.int64)
    for j, a in enumerate(acc):
        right = rng.random(n) < a
        Y[:, j] = np.where(right, y, (y + rng.integers(1, k, size=n)) % k)
    if p_missing:
        Y[rng.random(Y.shape) < p_missing] = -1
    return y, Y


def true_accuracy(Y, y):
    return np.array([np.mean(Y[Y[:, j] >= 0, j] == y[Y[:, j] >= 0]) for j in range(Y.shape[1])])


def test_dawid_skene_recovers_annotator_accuracies():
    y, Y = crowd()
    est = AnnotatorConsensus(method="dawid_skene").fit(None, Y)
    assert np.abs(est.annotator_accuracy_.to_numpy() - true_accuracy(Y, y)).max() < 0.03
    majority = AnnotatorConsensus(method="majority").fit(None, Y)
    assert (est.consensus_labels_ != y).mean() < (majority.consensus_labels_ != y).mean()
    assert est.annotator_confusion_.shape == (5, 4, 4)
    np.testing.assert_allclose(est.annotator_confusion_.sum(axis=2), 1.0)
    assert ((est.label_quality_ >= 0) & (est.label_quality_ <= 1)).all()
    assert 0 < est.n_iter_ <= est.max_iter


def test_auto_is_dawid_skene_without_x_and_the_flags_catch_wrong_consensus():
    y, Y = crowd(2000, acc=(0.8, 0.7, 0.6))
    est = AnnotatorConsensus().fit(None, Y)
    assert est.method_ == "dawid_skene"
    wrong = est.consensus_labels_ != y
    flagged = ~est.clean_mask_
    assert wrong[flagged].mean() > 2 * wrong.mean()  # flagged rows are mostly the wrong ones


def test_majority_tie_rule_most_agreeing_annotator_then_lower_index():
    votes = np.array([[0, 0, 0], [1, 1, 1], [0, 1, 1], [2, 1, 0], [3, 3, 2], [2, -1, 0], [-1, -1, -1]])
    # pairs that agree: annotator 0: 5 of 11, annotator 1: 6 of 10, annotator 2: 5 of 11
    np.testing.assert_allclose(agreement_rates(votes), [5 / 11, 0.6, 5 / 11])
    # row 3 (all votes differ) takes annotator 1's vote, class 1, over the lower class 0;
    # row 5 ties annotators 0 and 2, who agree equally often: the lower class, 0
    labels = majority_vote(votes, 4)
    assert labels.tolist() == [0, 1, 1, 1, 3, 0, -1]
    again = majority_vote(votes[::-1], 4)[::-1]  # not the row order
    assert again.tolist() == labels.tolist()
    equal = np.array([[0, 1], [1, 0], [2, 2], [3, 2]])  # equal rates: the lower class index
    assert majority_vote(equal, 4).tolist() == [0, 0, 2, 2]


def test_majority_ties_follow_the_better_annotator_on_a_crowd():
    y, Y = crowd(6000, k=6, acc=(0.6, 0.85, 0.7), seed=5)
    rates = agreement_rates(Y)
    assert rates.argmax() == 1  # the most accurate annotator agrees most often
    labels = majority_vote(Y, 6)
    all_differ = (Y[:, 0] != Y[:, 1]) & (Y[:, 1] != Y[:, 2]) & (Y[:, 0] != Y[:, 2])
    assert all_differ.sum() > 100
    np.testing.assert_array_equal(labels[all_differ], Y[all_differ, 1])
    assert (labels[all_differ] == y[all_differ]).mean() > (Y[all_differ, 0] == y[all_differ]).mean()


def test_missing_votes_rows_with_one_and_five_votes():
    y, Y = crowd(3000, acc=(0.9, 0.8, 0.75, 0.7, 0.65), seed=1)
    Y[:1000, 1:] = -1  # one vote
    est = AnnotatorConsensus(method="dawid_skene").fit(None, Y.astype(float))  # -1 as a float too
    assert est.n_votes_[:1000].tolist() == [1] * 1000 and (est.n_votes_[1000:] == 5).all()
    assert (est.consensus_labels_[:1000] == Y[:1000, 0]).all()
    assert (est.agreement_[:1000] == 1.0).all()
    assert (est.consensus_labels_[1000:] != y[1000:]).mean() < (Y[1000:, 0] != y[1000:]).mean()
    Yn = Y.astype(float)
    Yn[Yn == -1] = np.nan  # NaN is missing too
    same = AnnotatorConsensus(method="dawid_skene").fit(None, Yn)
    np.testing.assert_array_equal(same.consensus_labels_, est.consensus_labels_)


def test_string_labels_and_dataframe_annotator_names():
    y, Y = crowd(600, k=3, acc=(0.9, 0.75, 0.6), seed=2)
    names = np.array(["bird", "cat", "dog"], dtype=object)
    frame = pd.DataFrame(names[Y], columns=["ann", "bob", "cy"])
    frame.iloc[::7, 1] = None
    est = AnnotatorConsensus().fit(None, frame)
    assert est.classes_.tolist() == ["bird", "cat", "dog"]
    assert list(est.annotator_accuracy_.index) == ["ann", "bob", "cy"]
    assert set(est.consensus_labels_) <= {"bird", "cat", "dog"}
    acc = est.annotator_accuracy_
    assert acc["ann"] > acc["bob"] > acc["cy"]
    plain = AnnotatorConsensus().fit(None, frame.to_numpy())
    assert list(plain.annotator_accuracy_.index) == [0, 1, 2]


def informative(n=1500, k=3, seed=3):
    """Votes of three weak annotators and features that tell the class well."""
    y, Y = crowd(n, k=k, acc=(0.7, 0.65, 0.6), seed=seed)
    rng = np.random.default_rng(seed)
    X = rng.normal(0, 1, (n, 4)) + 2.5 * np.eye(k, 4)[y]
    return y, Y, X


def test_model_with_x_beats_dawid_skene_and_predicts():
    y, Y, X = informative()
    votes_only = AnnotatorConsensus(method="dawid_skene").fit(None, Y)
    est = AnnotatorConsensus(estimator=LogisticRegression(), random_state=0).fit(X, Y)
    assert est.method_ == "model" and est.model_weight_ > 0
    assert (est.consensus_labels_ != y).mean() < (votes_only.consensus_labels_ != y).mean() - 0.02
    assert est.predict_proba(X[:5]).shape == (5, 3)
    assert (est.predict(X) == y).mean() > 0.8
    assert est.n_features_in_ == 4


def test_model_weight_maximises_the_likelihood_of_the_votes():
    y, Y = crowd(3000, k=4, acc=(0.75, 0.7, 0.65), seed=6)
    rng = np.random.default_rng(6)

    def probs(strength):  # a classifier right more often with a larger strength
        logits = rng.normal(0, 1, (len(y), 4)) + strength * np.eye(4)[y]
        return np.exp(logits) / np.exp(logits).sum(axis=1, keepdims=True)

    def loglik(p, w):
        prior = w * np.log(p)
        prior -= np.logaddexp.reduce(prior, axis=1, keepdims=True)
        _, confusion, _ = dawid_skene(Y, 4, log_prior=prior)
        return posterior(Y, confusion, prior)[1]

    weak, strong = probs(0.5), probs(2.5)
    post_weak, _, w_weak = model_consensus(Y, weak)
    post_strong, _, w_strong = model_consensus(Y, strong)
    assert w_strong > w_weak
    for p, w in ((weak, w_weak), (strong, w_strong)):
        assert loglik(p, w) >= max(loglik(p, 0.7 * w), loglik(p, 1.4 * w))
    assert (post_strong.argmax(axis=1) != y).mean() < (post_weak.argmax(axis=1) != y).mean()


def test_pred_probs_path_and_its_shape_check():
    y, Y, X = informative(seed=4)
    proba = LogisticRegression().fit(X[:500], y[:500]).predict_proba(X)  # a user's own model
    est = AnnotatorConsensus().fit(None, Y, pred_probs=proba)
    assert est.method_ == "model"
    votes_only = AnnotatorConsensus(method="dawid_skene").fit(None, Y)
    assert (est.consensus_labels_ != y).mean() < (votes_only.consensus_labels_ != y).mean()
    with pytest.raises(AttributeError, match="fit with X"):
        est.predict(X)
    with pytest.raises(ValueError, match="pred_probs has shape"):
        AnnotatorConsensus().fit(None, Y, pred_probs=proba[:, :2])
    with pytest.raises(ValueError, match="pred_probs has shape"):
        AnnotatorConsensus().fit(None, Y, pred_probs=proba[:-1])


def test_pure_functions_agree_with_the_estimator():
    y, Y = crowd(800, k=3, acc=(0.85, 0.7, 0.6), seed=5)
    post, conf, _ = dawid_skene(Y, 3)
    est = AnnotatorConsensus(method="dawid_skene").fit(None, Y)
    np.testing.assert_array_equal(est.consensus_labels_, post.argmax(axis=1))
    p = np.full((800, 3), 0.2)
    p[np.arange(800), y] = 0.6
    post_m, _, weight = model_consensus(Y, p)
    assert weight > 0 and (post_m.argmax(axis=1) != y).mean() < (post.argmax(axis=1) != y).mean()


def test_reproducible_with_random_state():
    y, Y, X = informative(600, seed=6)
    a = AnnotatorConsensus(estimator=LogisticRegression(), random_state=3).fit(X, Y)
    b = AnnotatorConsensus(estimator=LogisticRegression(), random_state=3).fit(X, Y)
    np.testing.assert_array_equal(a.label_quality_, b.label_quality_)
    np.testing.assert_array_equal(a.predict_proba(X), b.predict_proba(X))


def test_empty_rows_error_or_allowed():
    _, Y = crowd(200, k=3, acc=(0.9, 0.8), seed=7)
    Y[[3, 10]] = -1
    with pytest.raises(ValueError, match=r"2 of 200 rows have no vote.*allow_empty=True"):
        AnnotatorConsensus().fit(None, Y)
    est = AnnotatorConsensus(allow_empty=True).fit(None, Y)
    assert est.consensus_labels_[[3, 10]].tolist() == [-1, -1]
    assert not est.clean_mask_[[3, 10]].any() and (est.label_quality_[[3, 10]] == 0).all()
    assert np.isnan(est.agreement_[[3, 10]]).all()
    strings = np.array(["a", "b", "c"], dtype=object)[np.maximum(Y, 0)]
    strings[Y < 0] = None
    est = AnnotatorConsensus(allow_empty=True, method="majority").fit(None, strings)
    assert est.consensus_labels_[3] is None


def test_bad_inputs():
    _, Y = crowd(100, k=3, acc=(0.9, 0.8, 0.7), seed=8)
    with pytest.raises(ValueError, match="CoTeachingFilter"):
        AnnotatorConsensus().fit(None, Y[:, 0])
    with pytest.raises(ValueError, match="CoTeachingFilter"):
        AnnotatorConsensus().fit(None, Y[:, :1])
    with pytest.raises(ValueError, match=r"classes \[3\] .*received no vote"):
        AnnotatorConsensus(classes=[0, 1, 2, 3]).fit(None, Y)
    with pytest.raises(ValueError, match="not one of classes"):
        AnnotatorConsensus(classes=[0, 1]).fit(None, Y)
    with pytest.raises(ValueError, match="X has 99 rows but Y has 100"):
        AnnotatorConsensus().fit(np.zeros((99, 2)), Y)
    with pytest.raises(ValueError, match="needs X"):
        AnnotatorConsensus(method="model").fit(None, Y)
    with pytest.raises(ValueError, match="not both"):
        AnnotatorConsensus().fit(np.zeros((100, 2)), Y, pred_probs=np.full((100, 3), 1 / 3))
    with pytest.raises(ValueError, match="method"):
        AnnotatorConsensus(method="vote").fit(None, Y)


# -------------------------------------------------------------- scikit-learn
#: The checks pass a 1-D y: one label per row, which is not a crowd; the estimator refuses it with
#: the error that names the right tool. Every check that fits with such a y is expected to fail.
ONE_ANNOTATOR = (
    "the checks fit with a 1-D y (one annotator); AnnotatorConsensus needs a votes matrix of two or more "
    "annotators and refuses a single one (use CoTeachingFilter / find_label_issues)"
)
FITTING_CHECKS = (
    "check_fit_score_takes_y",
    "check_estimators_overwrite_params",
    "check_dont_overwrite_parameters",
    "check_estimators_fit_returns_self",
    "check_readonly_memmap_input",
    "check_n_features_in_after_fitting",
    "check_positive_only_tag_during_fit",
    "check_estimators_dtypes",
    "check_dtype_object",
    "check_pipeline_consistency",
    "check_estimators_pickle",
    "check_f_contiguous_array_estimator",
    "check_classifier_data_not_an_array",
    "check_classifiers_one_label",
    "check_classifiers_classes",
    "check_classifiers_train",
    "check_classifiers_regression_target",
    "check_supervised_y_2d",
    "check_non_transformer_estimators_n_iter",
    "check_methods_sample_order_invariance",
    "check_methods_subset_invariance",
    "check_fit2d_1sample",
    "check_fit2d_1feature",
    "check_dict_unchanged",
    "check_fit_idempotent",
    "check_fit_check_is_fitted",
    "check_n_features_in",
    "check_fit2d_predict1d",
    "check_requires_y_none",
)
EXPECTED_FAILED_CHECKS = dict.fromkeys(FITTING_CHECKS, ONE_ANNOTATOR)


def _expected_failed_checks(estimator):
    return EXPECTED_FAILED_CHECKS


@parametrize_with_checks([AnnotatorConsensus(random_state=0)], expected_failed_checks=_expected_failed_checks)
def test_sklearn_compatible(estimator, check):
    check(estimator)


# ------------------------------------------------------------------ the CLI
def _votes_file(path: Path, n: int = 240) -> Path:
    y, Y = crowd(n, k=3, acc=(0.9, 0.75, 0.6), seed=9)
    names = np.array(["bird", "cat", "dog"], dtype=object)
    votes = names[Y]
    votes[1::5, 2] = None
    votes[2::7, 1:] = None
    rng = np.random.default_rng(9)
    frame = pd.DataFrame({"id": np.arange(n), "f0": y + rng.normal(0, 0.5, n), "truth": names[y]})
    for j, name in enumerate(["a1", "a2", "a3"]):
        frame[name] = votes[:, j]
    frame.to_parquet(path)
    return path


def _run(*args: str, cwd: Path) -> subprocess.CompletedProcess:
    env = {**os.environ, "PYTHONPATH": str(REPO), "OMP_NUM_THREADS": "1"}
    return subprocess.run(
        [sys.executable, "-m", "labelclean", "consensus", *args], cwd=cwd, env=env, capture_output=True, text=True
    )


def test_cli_writes_every_column_plus_five_and_prints_the_table(tmp_path):
    src = _votes_file(tmp_path / "votes.parquet")
    done = _run("votes.parquet", "--annotators", "a1,a2,a3", "--report", "r.html", cwd=tmp_path)
    assert done.returncode == 0, done.stderr
    out = pq.read_table(tmp_path / "votes.consensus.parquet")
    before = pq.read_table(src)
    added = ["consensus_label", "label_quality", "is_clean", "n_votes", "agreement"]
    assert out.column_names == before.column_names + added
    assert out.select(before.column_names).equals(before)
    frame = out.to_pandas()
    assert (frame.consensus_label == frame.truth).mean() > 0.85
    assert "annotator" in done.stdout and "a1" in done.stdout and "accuracy" in done.stdout
    assert "<table>" in (tmp_path / "r.html").read_text()
    again = _run("votes.parquet", "--annotators", "a1,a2,a3", cwd=tmp_path)
    assert again.returncode == 2 and "--force" in again.stderr  # the output exists
    kept = _run("votes.parquet", "--annotators", "a1,a2,a3", "--drop", "-o", "k.parquet", "--json", cwd=tmp_path)
    summary = json.loads(kept.stdout)
    assert summary["rows_written"] == pq.read_metadata(tmp_path / "k.parquet").num_rows < 240
    assert set(summary["annotators"]) == {"a1", "a2", "a3"}


def test_cli_errors_are_one_line(tmp_path):
    _votes_file(tmp_path / "votes.parquet")
    one = _run("votes.parquet", "--annotators", "a1", cwd=tmp_path)
    assert one.returncode == 2 and one.stderr.count("\n") == 1
    unknown = _run("votes.parquet", "--annotators", "a1,zz", cwd=tmp_path)
    assert unknown.returncode == 2 and "zz" in unknown.stderr
    frame = pd.read_parquet(tmp_path / "votes.parquet")
    frame.loc[0, ["a1", "a2", "a3"]] = None
    frame.to_parquet(tmp_path / "empty.parquet")
    empty = _run("empty.parquet", "--annotators", "a1,a2,a3", "--method", "majority", cwd=tmp_path)
    assert empty.returncode == 1 and "--allow-empty" in empty.stderr and empty.stderr.count("\n") == 1
    ok = _run("empty.parquet", "--annotators", "a1,a2,a3", "--allow-empty", "--features", "f0", "-q", cwd=tmp_path)
    assert ok.returncode == 0, ok.stderr
    out = pq.read_table(tmp_path / "empty.consensus.parquet").to_pandas()
    assert pd.isna(out.consensus_label[0]) and not out.is_clean[0] and out.n_votes[0] == 0


def test_coates_features_are_float32_and_independent_of_the_batch():
    """4 non-negative triangle activations per centroid (one per quadrant), the same whatever the batch."""
    from benchmarks.consensus_bench import coates_features

    rng = np.random.default_rng(0)
    images = rng.random((5, 3, 12, 12)).astype(np.float32)
    feats = coates_features(images, filters=7, stride=2, samples=500, iters=3, batch=2, compile=False)
    assert feats.shape == (5, 28) and feats.dtype == np.float32
    assert np.isfinite(feats).all() and (feats >= 0).all() and (feats > 0).any()
    again = coates_features(images, filters=7, stride=2, samples=500, iters=3, batch=3, compile=False)
    np.testing.assert_allclose(feats, again, rtol=1e-5, atol=1e-5)


def test_ridge_oof_proba_chooses_its_penalty_by_the_votes():
    from benchmarks.consensus_bench import ridge_oof_proba

    rng = np.random.default_rng(1)
    truth = rng.integers(0, 3, size=600)
    features = rng.normal(size=(600, 20)) + 2.0 * np.eye(3)[truth] @ rng.normal(size=(3, 20))
    votes = np.where(rng.random((600, 3)) < 0.8, truth[:, None], rng.integers(0, 3, size=(600, 3)))
    labels = np.array([np.bincount(v, minlength=3).argmax() for v in votes])
    soft = np.stack([(votes == c).mean(axis=1) for c in range(3)], axis=1)
    proba = ridge_oof_proba(features, labels, 0, targets=soft, votes=votes, penalties=(0.01, 1.0, 100.0))
    assert proba.shape == (600, 3) and proba.dtype == np.float32
    np.testing.assert_allclose(proba.sum(axis=1), 1.0, rtol=1e-5)
    assert (proba.argmax(axis=1) == truth).mean() > 0.8
