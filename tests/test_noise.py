"""Label-noise simulation (labelclean/noise.py): symmetric, pair, asymmetric and instance noise, all reproducible."""

import numpy as np
import pytest

from labelclean import make_noisy_labels
from labelclean.noise import make_asymmetric_labels, make_instance_labels


def test_symmetric_noise_flips_exact_share_to_other_classes():
    y = np.repeat(np.array(["a", "b", "c", "d", "e"]), 200)
    y_noisy = make_noisy_labels(y, 0.3, random_state=0)
    assert y_noisy.dtype == y.dtype
    assert np.mean(y_noisy != y) == pytest.approx(0.3)
    flipped_to = y_noisy[y_noisy != y]
    # every other class receives flips, roughly uniformly
    counts = np.unique(flipped_to, return_counts=True)[1]
    assert len(counts) == 5 and counts.min() > 30


def test_pair_noise_moves_class_to_next():
    y = np.repeat(np.arange(4), 100)
    y_noisy = make_noisy_labels(y, 0.45, kind="pair", random_state=0)
    changed = y_noisy != y
    assert changed.mean() == pytest.approx(0.45)
    assert np.all(y_noisy[changed] == (y[changed] + 1) % 4)


def test_noise_is_reproducible_and_validates():
    y = np.arange(100) % 3
    assert np.array_equal(make_noisy_labels(y, 0.2, random_state=5), make_noisy_labels(y, 0.2, random_state=5))
    with pytest.raises(ValueError, match="rate"):
        make_noisy_labels(y, 1.5)
    with pytest.raises(ValueError, match="kind"):
        make_noisy_labels(y, 0.1, kind="diagonal")
    with pytest.raises(ValueError, match="two classes"):
        make_noisy_labels(np.zeros(10), 0.1)


def test_asymmetric_noise_moves_only_other_classes_to_the_majority():
    y = np.r_[np.zeros(900, int), np.ones(60, int), np.full(40, 2)]
    noisy = make_asymmetric_labels(y, 0.3, random_state=0)
    assert (noisy[y == 0] == 0).all()
    assert (noisy[y == 1] == 0).sum() == 18 and (noisy[y == 2] == 0).sum() == 12
    assert set(noisy[(y != 0) & (noisy != y)]) == {0}


def test_instance_noise_flips_the_hardest_rows_to_the_second_choice():
    rng = np.random.default_rng(0)
    y = rng.integers(0, 3, 300)
    p = rng.dirichlet([1, 1, 1], size=300)
    noisy = make_instance_labels(y, p, 0.2)
    flipped = noisy != y
    own = p[np.arange(300), y]
    assert flipped.sum() == 60 and own[flipped].max() <= own[~flipped].min()
    second = p.copy()
    second[np.arange(300), y] = -1
    assert (noisy[flipped] == second.argmax(1)[flipped]).all()
