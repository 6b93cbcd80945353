"""Reliability: bad input, faults, determinism, persistence, resource limits (issue 7)."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from torch import nn

from labelclean import CoTeachingFilter, PUClassifier, SelfTrainer

TINY = {"hidden_dims": (8,), "max_epochs": 1, "batch_size": 16, "device": "cpu"}


def tiny(cls, **params):
    """A fast instance of one of the three estimators (a few steps, a tiny network)."""
    extra = {
        CoTeachingFilter: {"forget_rate": 0.2, "refine_epochs": 0},
        SelfTrainer: {"max_iter": 1, "min_steps": 1},
        PUClassifier: {"prior": 0.6},
    }[cls]
    return cls(**{**TINY, **extra, **params})


def xy(n=40, d=4, seed=0):
    rng = np.random.RandomState(seed)
    X = rng.normal(size=(n, d)).astype(np.float32)
    y = (X[:, 0] > 0).astype(np.int64)
    return X, y


ESTIMATORS = [CoTeachingFilter, SelfTrainer, PUClassifier]


# ---------------------------------------------------------------------------
# Resource limits
# ---------------------------------------------------------------------------


@pytest.mark.parametrize("cls", ESTIMATORS)
def test_n_jobs_sets_torch_threads_during_fit_and_predict_then_restores(cls):
    seen: list[int] = []

    def module(input_shape, n_out):
        seen.append(torch.get_num_threads())
        return nn.Sequential(nn.Flatten(), nn.Linear(int(np.prod(input_shape)), n_out))

    X, y = xy()
    before = torch.get_num_threads()
    est = tiny(cls, module=module, n_jobs=2).fit(X, y)
    assert seen and set(seen) == {2}
    assert torch.get_num_threads() == before
    est.predict(X)
    assert torch.get_num_threads() == before


def test_n_jobs_none_leaves_torch_setting_and_minus_one_uses_all_cores():
    from labelclean._train import resolve_n_jobs, torch_threads

    before = torch.get_num_threads()
    with torch_threads(None):
        assert torch.get_num_threads() == before
    assert resolve_n_jobs(-1) == (__import__("os").cpu_count() or 1)
    assert resolve_n_jobs(3) == 3
    with pytest.raises(ValueError, match="n_jobs=0"):
        resolve_n_jobs(0)


@pytest.mark.parametrize("cls", ESTIMATORS)
def test_n_jobs_zero_is_rejected_in_fit(cls):
    X, y = xy()
    with pytest.raises(ValueError, match="n_jobs"):
        tiny(cls, n_jobs=0).fit(X, y)
