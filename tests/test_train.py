"""Shared pieces of the training loops (labelclean/_train.py): threads, batched inference, the loss probe."""

from __future__ import annotations

import os

import numpy as np
import pytest
import torch

from labelclean._train import batched_forward, predict_proba_nets


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


def test_batched_forward_matches_one_pass_and_gathers_rows():
    torch.manual_seed(0)
    net = torch.nn.Linear(3, 2).eval()
    X = torch.randn(10, 3)
    whole = batched_forward(lambda xb: net(xb).float(), X, torch.device("cpu"), batch_size=10)
    batched = batched_forward(lambda xb: net(xb).float(), X, torch.device("cpu"), batch_size=3)
    np.testing.assert_allclose(whole, batched, rtol=1e-5, atol=1e-7)
    rows = torch.tensor([4, 1, 8])
    gathered = batched_forward(lambda xb: net(xb)[:, 0].float(), X, torch.device("cpu"), batch_size=2, rows=rows)
    assert gathered.shape == (3,) and gathered.dtype == np.float32
    np.testing.assert_allclose(gathered, whole[[4, 1, 8], 0], rtol=1e-6)
    proba = predict_proba_nets([net], X, torch.device("cpu"))
    np.testing.assert_allclose(proba.sum(1), 1.0, rtol=1e-6)


def test_loss_probe_reads_the_running_mean():
    import torch

    from labelclean._train import LossProbe

    assert LossProbe(torch.device("cpu")).read(torch.tensor(6.0), 4) == 1.5
    if not torch.cuda.is_available():
        return
    probe = LossProbe(torch.device("cuda"))
    total = torch.tensor(6.0, device="cuda")
    first = probe.read(total, 4)  # the copy is queued; nothing read yet
    torch.cuda.synchronize()
    assert first is None and probe.read(total * 2, 8) == 1.5  # the arrived copy, one report behind
