"""Input kinds to float32 arrays: reshaping without copies, per-feature and per-channel statistics, batches."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from labelclean._data import batches, input_stats, reshape_input


def test_reshape_input_gives_views_for_rows_and_images():
    X = np.arange(24, dtype=np.float32).reshape(2, 12)
    assert reshape_input(X, None) is X
    img = reshape_input(X, (3, 2, 2))
    assert img.shape == (2, 3, 2, 2) and np.shares_memory(img, X)
    assert reshape_input(X, (3, 4)).shape == (2, 1, 3, 4)  # (H, W) means one channel
    assert reshape_input(X.reshape(2, 3, 4), None).shape == (2, 1, 3, 4)


def test_channels_last_images_are_moved_to_channels_first():
    X = np.random.default_rng(0).random((5, 6, 7, 3), dtype=np.float32)
    out = reshape_input(X, None)
    assert out.shape == (5, 3, 6, 7)
    np.testing.assert_array_equal(out[:, 2], X[..., 2])
    assert reshape_input(X.transpose(0, 3, 1, 2), None).shape == (5, 3, 6, 7)  # already channels-first


@pytest.mark.parametrize(
    ("shape", "input_shape", "needle"),
    [
        ((2, 12), (3, 3, 3), "does not fit rows of 12 features"),
        ((2, 3, 4), (3, 4), "only used with 2-D X"),
        ((2, 0, 4), None, "axis of length 0"),
        ((2, 1, 1, 1, 1), None, "has 5 dimensions"),
    ],
)
def test_reshape_input_names_the_problem(shape, input_shape, needle):
    with pytest.raises(ValueError, match=needle):
        reshape_input(np.zeros(shape, np.float32), input_shape)


def test_input_stats_are_per_feature_for_rows_and_per_channel_for_images():
    rng = np.random.default_rng(1)
    rows = (rng.normal(0, 1, (400, 3)) * [1, 5, 0] + [0, 10, 7]).astype(np.float32)
    mean, scale = input_stats(rows)
    np.testing.assert_allclose(mean.numpy(), rows.mean(0), rtol=1e-5, atol=1e-5)
    assert scale.shape == (3,) and scale[2] == 1.0  # a constant feature is not divided by zero
    imgs = rng.random((50, 2, 4, 4), dtype=np.float32)
    imgs[:, 1] += 3
    mean, scale = input_stats(imgs)
    assert mean.shape == (2, 1, 1) and scale.shape == (2, 1, 1)
    np.testing.assert_allclose(mean.flatten().numpy(), imgs.mean(axis=(0, 2, 3)), rtol=1e-5)


def test_batches_cover_every_row_once_and_never_leave_a_batch_of_one():
    for n, size in [(257, 128), (256, 128), (5, 2), (1, 4)]:
        parts = batches(n, size, torch.Generator().manual_seed(0))
        assert sorted(torch.cat(parts).tolist()) == list(range(n))
        assert n == 1 or min(len(b) for b in parts) > 1
    assert [b.tolist() for b in batches(5, 2)] == [[0, 1], [2, 3, 4]]  # no generator: in order
