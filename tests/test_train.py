"""Shared pieces of the training loops (labelclean/_train.py): threads, batched inference, the loss probe."""

from __future__ import annotations

import os

import pytest
import torch


def test_n_jobs_none_leaves_torch_setting_and_negative_counts_from_all_cores():
    from labelclean._train import resolve_n_jobs, torch_threads, usable_cores

    before = torch.get_num_threads()
    with torch_threads(None):
        assert torch.get_num_threads() == before
    cores = usable_cores()
    assert 1 <= cores <= (os.cpu_count() or 1)
    assert resolve_n_jobs(-1) == cores and resolve_n_jobs(-2) == max(1, cores - 1) and resolve_n_jobs(3) == 3
    with pytest.raises(ValueError, match="n_jobs=0"):
        resolve_n_jobs(0)
    with pytest.raises(RuntimeError), torch_threads(1):
        raise RuntimeError("restored even on errors")
    assert torch.get_num_threads() == before
