"""Shared fixtures: small synthetic data sets that every test can afford on a CPU."""

from __future__ import annotations

import numpy as np
import pytest
from sklearn.datasets import make_blobs

from labelclean.noise import make_noisy_labels


@pytest.fixture(scope="session")
def blobs10():
    """10 well separated classes in 20 dimensions, 40 % symmetric noise on the training rows."""
    X, y = make_blobs(n_samples=2500, n_features=20, centers=10, cluster_std=4.0, random_state=0)
    X = X.astype(np.float32)
    y_noisy = make_noisy_labels(y[:1500], 0.4, random_state=1)
    return X[:1500], y[:1500], y_noisy, X[1500:], y[1500:]


@pytest.fixture(scope="session")
def images4():
    """Four classes of 12×12 single-channel images (a bright bar in one of four places), with noise."""
    rng = np.random.RandomState(0)
    n = 1600
    y = rng.randint(0, 4, n)
    X = rng.normal(0, 0.3, (n, 12, 12)).astype(np.float32)
    for c in range(4):
        rows = y == c
        if c < 2:
            X[rows, 2 + 6 * c : 4 + 6 * c, :] += 1.5
        else:
            X[rows, :, 2 + 6 * (c - 2) : 4 + 6 * (c - 2)] += 1.5
    y_noisy = make_noisy_labels(y[:1200], 0.4, random_state=2)
    return X[:1200], y[:1200], y_noisy, X[1200:], y[1200:]
