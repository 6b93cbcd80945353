"""Label-noise simulation (labelclean/noise.py): symmetric and pair noise, reproducible and validated."""

import numpy as np
import pytest

from labelclean import make_noisy_labels


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
