"""Shared pieces of the training loops (labelclean/_train.py): threads, batched inference, the loss probe.

Also the schedules (forget rate, learning rate), the optimizer, the moving average of the weights and the
augmentation.
"""

from __future__ import annotations

import os

import numpy as np
import pytest
import torch

from labelclean._train import (
    adam,
    affine_warp,
    batched_forward,
    ema_update,
    forget_rate_schedule,
    lr_factor,
    predict_proba_nets,
)


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


def test_predict_proba_nets_does_not_depend_on_the_inference_batch_and_gathers_rows():
    from labelclean._nets import build_network
    from labelclean._train import INFERENCE_BATCH, predict_proba_nets

    gen = torch.Generator().manual_seed(0)
    X = torch.rand((INFERENCE_BATCH * 2 + 37, 1, 8, 8), generator=gen)
    nets = [build_network((1, 8, 8), 3, mean=torch.zeros(1), scale=torch.ones(1)) for _ in range(2)]
    whole = predict_proba_nets(nets, X, torch.device("cpu"), batch_size=len(X))
    batched = predict_proba_nets(nets, X, torch.device("cpu"))  # INFERENCE_BATCH rows at a time, last batch short
    assert batched.shape == (len(X), 3) and batched.dtype == np.float32
    np.testing.assert_allclose(batched, whole, rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(batched.sum(1), 1.0, rtol=1e-5)
    rows = torch.randperm(len(X), generator=gen)[:300]
    gathered = predict_proba_nets(nets, X, torch.device("cpu"), rows=rows)
    np.testing.assert_allclose(gathered, whole[rows.numpy()], atol=1e-6)
    assert all(not net.training for net in nets)  # left in eval mode


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


def test_forget_rate_schedule_ramps_then_holds():
    rates = [forget_rate_schedule(t, 0.4, 10) for t in range(15)]
    assert rates[0] == 0.0 and rates[5] == pytest.approx(0.2) and rates[10:] == [0.4] * 5
    assert forget_rate_schedule(0, 0.3, 0) == 0.3


def test_lr_factor_is_constant_then_decays_linearly():
    f = [lr_factor(e, 10) for e in range(10)]
    assert f[:5] == [1.0] * 5 and all(a > b for a, b in zip(f[4:], f[5:])) and f[-1] > 0


def test_adam_steps_like_the_reference_update():
    torch.manual_seed(0)
    w = torch.randn(5, 3)
    a, b = torch.nn.Parameter(w.clone()), torch.nn.Parameter(w.clone())
    fast, reference = adam([a], 1e-2), torch.optim.Adam([b], lr=1e-2, foreach=False)
    for _ in range(3):
        for p, opt in ((a, fast), (b, reference)):
            opt.zero_grad()
            (p**2).sum().backward()
            opt.step()
    torch.testing.assert_close(a, b)
    assert not torch.equal(a, w)


def test_ema_update_warms_up_then_keeps_the_decay():
    avg, cur = torch.zeros(3), torch.ones(3)
    torch.testing.assert_close(ema_update(avg, cur, torch.tensor(0), decay=0.999), torch.full((3,), 0.9))
    torch.testing.assert_close(ema_update(avg, cur, torch.tensor(10**6), decay=0.999), torch.full((3,), 0.001))


def test_affine_warp_is_seeded_batched_and_identity_at_zero():
    x = torch.rand(6, 1, 14, 14)
    a = affine_warp(x, torch.Generator().manual_seed(0))
    b = affine_warp(x, torch.Generator().manual_seed(0))
    assert a.shape == x.shape and a.dtype == torch.float32 and torch.equal(a, b)
    assert not torch.allclose(a, x)  # each image moved
    still = affine_warp(x, torch.Generator().manual_seed(0), max_shift=0.0, max_rotation=0.0, max_scale=0.0)
    assert torch.allclose(still, x, atol=1e-5)
