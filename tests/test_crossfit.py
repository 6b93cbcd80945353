"""The table path (labelclean/crossfit.py, labelclean/_crossfit.py): cross-fitted scikit-learn backbones.

``CoTeachingFilter`` on tables as users have them, judged by models that never saw the row.
"""

from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from sklearn.datasets import load_breast_cancer, load_iris, load_wine, make_classification
from sklearn.linear_model import LogisticRegression

from labelclean import CoTeachingFilter, detection_scores
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
