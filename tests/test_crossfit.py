"""The table path (labelclean/crossfit.py, labelclean/_crossfit.py): cross-fitted scikit-learn backbones.

``CoTeachingFilter`` on tables as users have them, judged by models that never saw the row; the helpers: folds,
cross-fitted probabilities, the weights of the backbones.
"""

from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from sklearn.datasets import load_breast_cancer, load_iris, load_wine, make_classification
from sklearn.linear_model import LogisticRegression
from sklearn.neighbors import KNeighborsClassifier

from labelclean import CoTeachingFilter, detection_scores
from labelclean._crossfit import Backbone, choose_weights, cross_fit_proba, stratified_folds
from labelclean.noise import make_asymmetric_labels, make_noisy_labels

SHARED = Path(__file__).resolve().parents[2] / "shared" / "data" / "tabular"


def test_auto_picks_the_table_backbone_for_rows_and_networks_for_images_and_wide_vectors():
    # 512 columns: text embeddings of the suite (256) go to the table models, pixels (784 and more) to the networks
    X, y = make_classification(200, n_features=6, random_state=0)
    assert CoTeachingFilter(random_state=0).fit(X, y).backbone_ == "table"
    wide = np.random.default_rng(0).normal(size=(200, 600)).astype(np.float32)
    quick = dict(max_epochs=1, refine_epochs=0, forget_rate=0.1, random_state=0)
    assert CoTeachingFilter(**quick).fit(wide, y).backbone_ == "network"
    images = np.random.default_rng(0).random((200, 8, 8)).astype(np.float32)
    assert CoTeachingFilter(**quick).fit(images, y).backbone_ == "network"
    assert CoTeachingFilter(estimator="network", **quick).fit(X, y).backbone_ == "network"


def _real_sets():
    sets = {}
    for name, loader in [("breast_cancer_wisconsin", load_breast_cancer), ("wine", load_wine), ("iris", load_iris)]:
        X, y = loader(return_X_y=True, as_frame=True)
        sets[name] = (X, y.to_numpy())
    for name in ("vote", "breast_cancer", "glass"):  # the development suite's, where the data is at hand
        if (SHARED / f"{name}.parquet").exists():
            df = pd.read_parquet(SHARED / f"{name}.parquet")
            sets[name] = (df.drop(columns="label"), df["label"].to_numpy())
    return sets


@pytest.mark.parametrize("name", list(_real_sets()))
@pytest.mark.parametrize("rate", [0.0, 0.2])
def test_corrected_labels_are_never_worse_than_the_given_ones(name, rate):
    X, y = _real_sets()[name]
    y_noisy = make_noisy_labels(y, rate, random_state=1) if rate else y
    f = CoTeachingFilter(random_state=0).fit(X, y_noisy)
    if rate == 0:  # clean labels: hardly any changed (the suite compares the count with cleanlab's)
        assert np.sum(f.pseudo_labels_ != y_noisy) <= 0.01 * len(y)
    else:
        assert np.mean(f.pseudo_labels_ == y) >= np.mean(y_noisy == y)
        assert detection_scores(f.clean_mask_, y_noisy, y)["f1"] > 0.3


@pytest.mark.parametrize("noise", ["none", "asym30", "sym20"])
def test_a_two_percent_minority_is_neither_erased_nor_inflated(noise):
    X, y = make_classification(3000, n_features=8, n_informative=5, weights=[0.98], flip_y=0, random_state=0)
    y_noisy = {
        "none": y,
        "asym30": make_asymmetric_labels(y, 0.3, random_state=0),
        "sym20": make_noisy_labels(y, 0.2, random_state=0),
    }[noise]
    f = CoTeachingFilter(random_state=0).fit(X, y_noisy)
    assert abs(np.mean(f.pseudo_labels_ == 1) - np.mean(y == 1)) <= max(
        0.01, abs(np.mean(y_noisy == 1) - np.mean(y == 1))
    )
    assert np.mean(f.predict(X) == 1) < 0.05  # the minority is predicted, not inflated
    assert np.mean(f.predict(X)[y == 1] == 1) > 0.3


def test_a_user_classifier_is_cross_fitted_and_save_says_what_to_do(tmp_path):
    X, y = make_classification(300, n_features=5, random_state=0)
    y_noisy = make_noisy_labels(y, 0.2, random_state=0)
    f = CoTeachingFilter(estimator=LogisticRegression(), random_state=0).fit(X, y_noisy)
    assert f.backbone_ == "estimator" and isinstance(f.estimators_[0], LogisticRegression)
    assert detection_scores(f.clean_mask_, y_noisy, y)["f1"] > 0.6 and f.score(X, y) > 0.8
    with pytest.raises(ValueError, match="need pickle"):
        f.save(tmp_path / "m.pt")
    with pytest.raises(ValueError, match="estimator"):
        CoTeachingFilter(estimator=object()).fit(X, y)


def test_table_backbone_is_bit_identical_for_a_seed_and_reads_dataframes_back():
    df = pd.DataFrame({"x": np.r_[np.arange(100.0), [np.nan] * 20], "c": (["a", "b", "c"] * 40)})
    y = (np.nan_to_num(df["x"].to_numpy()) > 50).astype(int) ^ (df["c"] == "c").to_numpy()
    a = CoTeachingFilter(random_state=3).fit(df, y)
    b = CoTeachingFilter(random_state=3).fit(df, y)
    assert np.array_equal(a.predict_proba(df), b.predict_proba(df)) and np.array_equal(a.clean_mask_, b.clean_mask_)
    assert a.predict_proba(df).dtype == np.float32 and a.score(df, y) > 0.8


def test_stratified_folds_spread_every_class_even_a_rare_one():
    y = np.r_[np.zeros(50, int), np.ones(3, int)]
    folds = stratified_folds(y, 5, seed=0)
    assert np.bincount(folds[:50]).tolist() == [10] * 5
    assert len(set(folds[50:])) == 3
    assert np.array_equal(folds, stratified_folds(y, 5, seed=0))


def test_cross_fitted_probabilities_come_from_models_that_never_saw_the_row():
    rng = np.random.default_rng(0)
    X = rng.normal(size=(200, 3))
    y = rng.integers(0, 2, 200)  # random labels: a memorising model is right in sample only
    memo = [Backbone(KNeighborsClassifier(1), "dense")]
    proba = cross_fit_proba(memo, {"dense": X}, y, stratified_folds(y, 5, 0), 2)[0]
    assert abs(np.mean(proba.argmax(1) == y) - 0.5) < 0.1
    trusted = np.arange(200) < 100
    only = cross_fit_proba(memo, {"dense": X}, y, stratified_folds(y, 5, 0), 2, trusted=trusted)[0]
    assert not np.array_equal(only, proba)


def test_choose_weights_prefers_the_backbone_that_fits_the_labels():
    y = np.r_[np.zeros(100, int), np.ones(100, int)]
    good = np.c_[np.where(y == 0, 0.9, 0.1), np.where(y == 0, 0.1, 0.9)]
    bad = np.full((200, 2), 0.5)
    assert choose_weights([bad, good], y).tolist() == [0.0, 1.0]
    assert choose_weights([good], y).tolist() == [1.0]


def test_cross_fit_on_a_tiny_set_falls_back_to_the_class_shares():
    y = np.array([0, 1])
    proba = cross_fit_proba([Backbone(LogisticRegression(), "dense")], {"dense": np.eye(2)}, y, np.array([0, 1]), 2)
    np.testing.assert_allclose(proba[0], [[0.5, 0.5], [0.5, 0.5]])


def test_a_column_missing_on_every_fitted_row_does_not_stop_the_trees():
    from sklearn.ensemble import HistGradientBoostingClassifier

    from labelclean._crossfit import fit_model

    rng = np.random.default_rng(0)
    X = rng.random((40, 3))
    X[:20, 1] = np.nan  # missing on every row the model is fitted on, present elsewhere
    y = (X[:, 0] > 0.5).astype(int)
    before = X.copy()
    for rows in (np.arange(20), slice(0, 20)):
        model = fit_model(HistGradientBoostingClassifier(max_iter=5), X, y, rows)
        assert model.predict_proba(X).shape == (40, 2)
    np.testing.assert_array_equal(X, before)  # the caller's array is untouched
