"""Tables as users have them, and the cross-fitted table backbone of CoTeachingFilter."""

from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from sklearn.datasets import load_breast_cancer, load_iris, load_wine, make_classification
from sklearn.linear_model import LogisticRegression

from labelclean import CoTeachingFilter, SelfTrainer, detection_scores
from labelclean._tabular import TablePlan, needs_plan
from labelclean.noise import make_asymmetric_labels, make_noisy_labels

SHARED = Path(__file__).resolve().parents[2] / "shared" / "data" / "tabular"

# ----------------------------------------------------------------- the plan


def test_plan_encodes_text_categories_missing_values_and_numbers_stored_as_text():
    df = pd.DataFrame(
        {
            "x": [1.0, np.nan, 3.0, 4.0],
            "colour": ["red", None, "blue", "red"],
            "size": pd.Categorical(["S", "M", "S", "L"]),
            "price": ["1.5", "2", None, "4"],
            "empty": [np.nan] * 4,
        }
    )
    assert needs_plan(df) and not needs_plan(np.zeros((3, 2))) and needs_plan(np.array([[1.0, np.nan]]))
    plan = TablePlan.fit(df)
    assert plan.kinds == ["numeric", "categorical", "categorical", "numeric", "empty"]
    codes = plan.codes(df)
    assert codes.shape == (4, 4) and np.isnan(codes[1, 0]) and np.isnan(codes[1, 1])
    assert codes[:, 3].tolist()[:2] == [1.5, 2.0] and plan.categorical.tolist() == [False, True, True, False]
    dense = plan.dense(df)
    assert dense.shape == (4, plan.n_dense) and np.isfinite(dense).all()
    assert dense[1, 0] == pytest.approx((1 + 3 + 4) / 3)  # filled with the training mean
    assert TablePlan.from_dict(plan.to_dict()) == plan  # plain data: stored as JSON with the estimator
    unseen = plan.dense(df.assign(colour=["green"] * 4))
    assert np.isfinite(unseen).all()


def test_plan_refuses_free_text_and_changed_columns_with_the_fix():
    df = pd.DataFrame({"id": [f"row-{i}" for i in range(300)], "x": np.arange(300.0)})
    with pytest.raises(ValueError, match="column 'id'.*free text or ids"):
        TablePlan.fit(df)
    plan = TablePlan.fit(df[["x"]].assign(c=["a", "b", "c"] * 100))
    with pytest.raises(ValueError, match="columns"):
        plan.codes(df)


# ----------------------------------------------------------------- the table backbone


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


def test_relabel_mode_keeps_the_row_contract():
    X, y = make_classification(600, n_features=6, n_informative=4, random_state=0)
    y_noisy = make_noisy_labels(y, 0.3, random_state=0)
    st = SelfTrainer(relabel=True, max_iter=1, hidden_dims=(32,), random_state=0).fit(X, y_noisy)
    changed = st.pseudo_labels_ != y_noisy
    assert changed.any() and not st.clean_mask_[changed].any()  # a changed label is never trusted
    assert (~st.clean_mask_).sum() >= changed.sum()
    assert st.label_quality_[y_noisy != y].mean() < st.label_quality_[y_noisy == y].mean()  # of the given label
    assert np.mean(st.pseudo_labels_ == y) > np.mean(y_noisy == y)
    share = np.bincount(st.pseudo_labels_, minlength=2) / len(y)
    assert abs(share[1] - np.mean(y == 1)) < 0.1  # no push towards equal shares
