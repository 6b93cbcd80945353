"""PUClassifier's class prior: the estimate on a real table and the bootstrap interval ``class_prior_interval_``."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from sklearn.datasets import make_classification

from labelclean.pu import PUClassifier, bootstrap_prior_interval, prior_from_unlabeled_share, prior_rank_labels

TABULAR = Path(__file__).resolve().parents[2] / "shared" / "data" / "tabular"


def _pu(y: np.ndarray, fraction: float, seed: int) -> np.ndarray:
    rng = np.random.default_rng(seed)
    return np.where((y == 1) & (rng.random(len(y)) < fraction), 1, 0)


def test_interval_contains_the_true_prior_on_synthetic_rows():
    """A 95 % interval: it holds the true prior on at least 4 of 5 seeds (Best Bin Estimation leans high)."""
    covered = []
    for seed in range(5):
        X, y = make_classification(
            1500, n_features=8, n_informative=5, class_sep=2.0, weights=[0.7, 0.3], flip_y=0.0, random_state=seed
        )
        clf = PUClassifier(random_state=seed).fit(X, _pu(y, 0.5, seed))
        low, high = clf.class_prior_interval_
        assert clf.backbone_ == "table" and clf.method_ == "rank"
        assert low <= clf.class_prior_ <= high and high - low < 0.15  # informative, not [0, 1]
        assert abs(clf.class_prior_ - y.mean()) < 0.05
        covered.append(low <= y.mean() <= high)
    assert sum(covered) >= 4, covered


def test_network_and_elkan_noto_intervals_hold_the_estimate():
    X, y = make_classification(600, n_features=6, class_sep=2.0, weights=[0.6, 0.4], random_state=0)
    s = _pu(y, 0.5, 0)
    for params in ({"estimator": "network", "prior_epochs": 1, "max_epochs": 3}, {"method": "elkan_noto"}):
        clf = PUClassifier(hidden_dims=(16,), random_state=0, **params).fit(X, s)
        low, high = clf.class_prior_interval_
        assert 0.0 <= low <= clf.class_prior_ <= high <= 1.0
    given = PUClassifier(prior=0.4, random_state=0).fit(X, s)
    assert given.class_prior_interval_ == (0.4, 0.4)


def test_bootstrap_interval_is_reproducible_and_narrows_with_more_rows():
    rng = np.random.default_rng(0)

    def scores(n):
        pos = rng.normal(2, 1, n)
        return pos, np.r_[rng.normal(2, 1, n), rng.normal(-2, 1, 2 * n)]

    small, large = [scores(100)], [scores(2000)]
    a = bootstrap_prior_interval(small, 100, 300, seed=1)
    assert a == bootstrap_prior_interval(small, 100, 300, seed=1)
    b = bootstrap_prior_interval(large, 2000, 6000, seed=1)
    assert b[1] - b[0] < a[1] - a[0]
    assert b[0] <= prior_from_unlabeled_share(1 / 3, 2000, 6000) <= b[1]


def test_rank_labels_follow_the_prior():
    s = np.array([1, 1, 0, 0, 0, 0, 0, 0])
    scores = np.array([0.9, 0.8, 0.7, 0.1, 0.6, 0.2, 0.3, 0.0])
    labels = prior_rank_labels(scores, s, 0.5)
    assert labels.tolist() == [1, 1, 1, 0, 1, 0, 1, 0]
    assert prior_rank_labels(scores, s, 0.0).tolist() == s.tolist()


@pytest.mark.skipif(not TABULAR.is_dir(), reason=f"the suite's real tables are not here ({TABULAR})")
def test_prior_within_005_on_a_real_table():
    import pandas as pd

    df = pd.read_parquet(TABULAR / "banknote_authentication.parquet")
    X, y = df.drop(columns=["label"]), (df["label"] == df["label"].value_counts().idxmin()).to_numpy().astype(int)
    s = _pu(y, 0.5, 0)
    clf = PUClassifier(random_state=0).fit(X, s)
    assert abs(clf.class_prior_ - y.mean()) <= 0.05
    low, high = clf.class_prior_interval_
    assert low <= clf.class_prior_ <= high
