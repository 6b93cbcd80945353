"""Data-parallel training under torchrun: the batch plan and helpers, and real 2-process gloo jobs on small data.

The jobs start two processes with the environment ``torchrun`` gives its workers (``RANK``,
``WORLD_SIZE``, ``LOCAL_RANK``, ``MASTER_ADDR``, ``MASTER_PORT``), so :func:`labelclean._distributed.world`
starts the process group itself; the command-line case runs ``torchrun`` itself.
"""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch

from labelclean import _distributed
from labelclean._data import batches
from labelclean._distributed import LOCAL, World, batch_plan, block, is_main, job_from_env, plan_steps, share
from labelclean._engine import Feed, run_epoch, supervised
from labelclean._train import adam, steps_per_epoch
from labelclean.coteaching import CoTeachingFilter, coteaching_loss

ROOT = Path(__file__).resolve().parents[1]

# ---------------------------------------------------------------------------
# The batch plan, the shares and the blocks (pure functions; no process group).
# ---------------------------------------------------------------------------


@pytest.mark.parametrize("n, batch_size", [(1, 4), (9, 4), (257, 128), (1000, 128), (130, 128), (10, 128)])
def test_the_plan_of_one_process_is_the_plain_batches(n, batch_size):
    plan = batch_plan(n, batch_size, torch.Generator().manual_seed(3))
    plain = batches(n, batch_size, torch.Generator().manual_seed(3))
    assert [b.tolist() for b in plan] == [b.tolist() for b in plain]
    assert plan_steps(n, batch_size) == steps_per_epoch(n, batch_size) == len(plan)


@pytest.mark.parametrize("size", [2, 3, 4])
@pytest.mark.parametrize("n, batch_size", [(1, 4), (5, 2), (9, 4), (130, 128), (257, 128), (1000, 96), (1001, 64)])
def test_every_process_gets_an_equal_share_of_every_batch_and_every_row_is_seen(size, n, batch_size):
    plan = batch_plan(n, batch_size, torch.Generator().manual_seed(0), size)
    assert plan_steps(n, batch_size, size) == len(plan)
    rows = torch.cat(plan)
    assert set(rows.tolist()) == set(range(n)) and len(rows) == n + (-n) % size  # padded with < size repeats
    for idx in plan:
        shares = [share(idx, r, size) for r in range(size)]
        assert len({len(s) for s in shares}) == 1 and len(shares[0]) >= min(2, len(idx) // size)
        assert torch.equal(torch.cat(shares), idx)  # the shares in rank order are the batch


def test_with_a_batch_divisible_by_the_job_the_batches_are_those_of_one_process():
    one = batch_plan(1000, 128, torch.Generator().manual_seed(5))
    two = batch_plan(1000, 128, torch.Generator().manual_seed(5), size=2)
    assert [b.tolist() for b in one] == [b.tolist() for b in two]


def test_the_prediction_blocks_cover_every_row_once():
    for n, size in [(0, 2), (1, 2), (5, 2), (10, 3), (7, 4)]:
        covered = [i for r in range(size) for i in range(n)[block(n, r, size)]]
        assert covered == list(range(n))


# ---------------------------------------------------------------------------
# Outside a job: nothing changes.
# ---------------------------------------------------------------------------


def test_outside_a_job_the_world_is_local_and_every_helper_is_the_identity(monkeypatch):
    for name in ("RANK", "WORLD_SIZE", "LOCAL_RANK"):
        monkeypatch.delenv(name, raising=False)
    assert job_from_env() is None and is_main() and _distributed.world() is LOCAL
    assert not LOCAL.distributed and LOCAL.place(torch.device("cuda")) == torch.device("cuda")
    idx, x = torch.arange(7), torch.randn(4, 3, requires_grad=True)
    part = np.arange(12.0).reshape(6, 2)
    assert LOCAL.share(idx) is idx and LOCAL.gather(x) is x and LOCAL.gather_rows(part, 6) is part
    assert LOCAL.sum(3) == 3 and LOCAL.sum(part) is part and LOCAL.broadcast_int(11) == 11
    LOCAL.check_same(rows=5, labels=np.arange(5))  # nothing to compare with
    LOCAL.broadcast_state([torch.nn.Linear(2, 2)])


def test_the_torchrun_environment_names_the_job(monkeypatch):
    monkeypatch.setenv("RANK", "1")
    monkeypatch.setenv("WORLD_SIZE", "2")
    monkeypatch.setenv("LOCAL_RANK", "1")
    assert job_from_env() == (1, 2, 1) and not is_main()
    monkeypatch.setenv("WORLD_SIZE", "1")  # torchrun with one process: no job
    assert job_from_env() is None and is_main()
    monkeypatch.setenv("WORLD_SIZE", "two")
    with pytest.raises(ValueError, match="must be integers"):
        job_from_env()


def test_a_job_puts_each_process_on_its_own_gpu():
    world = World(rank=1, size=2, local_rank=1)
    assert world.place(torch.device("cpu")) == torch.device("cpu")
    assert world.place(torch.device("cuda", 0)) == torch.device("cuda", 0)  # an explicit index is kept


# ---------------------------------------------------------------------------
# Two gloo processes.
# ---------------------------------------------------------------------------


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _env(**extra: str) -> dict[str, str]:
    path = os.pathsep.join(filter(None, [str(ROOT), os.environ.get("PYTHONPATH")]))
    return {**os.environ, "PYTHONPATH": path, "OMP_NUM_THREADS": "1", **extra}


def _run_job(code: str, size: int = 2, timeout: float = 240) -> list[str]:
    """Run ``code`` in ``size`` processes with torchrun's worker environment; their stderr (all must exit 0)."""
    port = str(_free_port())
    procs = [
        subprocess.Popen(
            [sys.executable, "-c", code],
            cwd=ROOT,
            env=_env(RANK=str(r), LOCAL_RANK=str(r), WORLD_SIZE=str(size), MASTER_ADDR="127.0.0.1", MASTER_PORT=port),
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        for r in range(size)
    ]
    try:
        outs = [p.communicate(timeout=timeout) for p in procs]
    finally:
        for p in procs:
            if p.poll() is None:
                p.kill()
    for p, (_, err) in zip(procs, outs):
        assert p.returncode == 0, err[-3000:]
    return [err for _, err in outs]


def job_data(n: int = 1200) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Ten Gaussian classes in 20 dimensions, 40 % of the labels flipped to another class."""
    rng = np.random.default_rng(0)
    y = rng.integers(0, 10, n)
    X = rng.normal(0, 1, (n, 20)) + 3.0 * np.eye(10, 20)[y]
    flip = rng.random(n) < 0.4
    noisy = np.where(flip, (y + rng.integers(1, 10, n)) % 10, y)
    return X.astype(np.float32), y, noisy


def job_filter(random_state=0, **params) -> CoTeachingFilter:
    """The fit both the job and the single process run: the networks, the warm-up's noise estimate, a refinement."""
    X, _, noisy = job_data()
    settings = dict(hidden_dims=(64,), max_epochs=6, refine_epochs=2, lr=3e-3, device="cpu", n_jobs=1)
    return CoTeachingFilter(estimator="network", random_state=random_state, **{**settings, **params}).fit(X, noisy)


def _state(f: CoTeachingFilter) -> np.ndarray:
    return torch.cat([t.reshape(-1).double() for net in f.networks_ for t in net.state_dict().values()]).numpy()


def _engine_gap() -> float:
    """Largest parameter difference between this job's training and one process's, on networks without batch norm."""

    def train(world: World) -> torch.Tensor:
        torch.manual_seed(0)
        nets = [torch.nn.Sequential(torch.nn.Linear(5, 16), torch.nn.ReLU(), torch.nn.Linear(16, 3)) for _ in range(2)]
        g = torch.Generator().manual_seed(1)
        X, y = torch.randn(200, 5, generator=g), torch.randint(0, 3, (200,), generator=g)
        feed = Feed(X, torch.device("cpu"), torch.Generator().manual_seed(2), world=world)
        optimizer = adam([p for net in nets for p in net.parameters()], 1e-2)
        loss = lambda logits, yb: coteaching_loss(logits[0], logits[1], yb, 0.3, True, 1.0, 0.5)  # noqa: E731
        for _ in range(3):
            run_epoch(supervised(nets, loss, feed, y), feed.shuffled(200, 32), optimizer, nets)
        return torch.cat([p.detach().reshape(-1) for net in nets for p in net.parameters()])

    return float((train(_distributed.world()) - train(LOCAL)).abs().max())


def job_worker(out: str) -> None:
    """One process of the job: what the test compares, written to ``out/rank<r>.npz``."""
    torch.set_num_threads(1)
    world = _distributed.world()
    gap = _engine_gap()
    f = job_filter()
    X, _, noisy = job_data()
    unseeded = job_filter(random_state=None, forget_rate=0.2, max_epochs=1, refine_epochs=0)
    mismatch = ""
    try:  # process 1 fits other labels: every process must refuse, none may hang
        CoTeachingFilter(estimator="network", max_epochs=1, device="cpu").fit(X, np.roll(noisy, world.rank))
    except ValueError as exc:
        mismatch = str(exc)
    history = [{k: v for k, v in h.items() if k != "seconds"} for h in f.history_]
    np.savez(
        Path(out) / f"rank{world.rank}.npz",
        gap=gap,
        clean=f.clean_mask_,
        pseudo=f.pseudo_labels_,
        quality=f.label_quality_,
        noise=f.noise_rate_,
        proba=f.predict_proba(X[:100]),
        state=_state(f),
        unseeded=_state(unseeded),
        history=json.dumps(history),
        mismatch=mismatch,
        world=json.dumps([world.rank, world.size]),
    )


@pytest.fixture(scope="module")
def job(tmp_path_factory):
    out = tmp_path_factory.mktemp("job")
    _run_job(f"from tests.test_distributed import job_worker; job_worker({str(out)!r})")
    return [dict(np.load(out / f"rank{r}.npz")) for r in range(2)]


def test_the_job_steps_like_one_process_on_the_same_batches(job):
    for rank in job:  # the gathered loss and DDP's averaged gradients: one process's step, to rounding
        assert float(rank["gap"]) < 1e-5


def test_every_process_ends_with_the_same_fitted_state(job):
    first, second = job
    assert json.loads(str(first["world"])) == [0, 2] and json.loads(str(second["world"])) == [1, 2]
    for key in ("clean", "pseudo", "quality", "noise", "proba", "state", "unseeded", "history"):
        np.testing.assert_array_equal(first[key], second[key], err_msg=key)


def test_the_job_agrees_with_one_process_within_seed_noise(job):
    _, y, noisy = job_data()
    single = job_filter()
    got = job[0]
    # Batch norm normalises each process's half of a batch by its own statistics, so the runs part
    # after the first steps. On these 1,200 rows seeds 0-2 of one process span 0.6 points of accuracy,
    # 1.5 points of noise rate and 0.6 points of kept rows; the bounds allow about twice that.
    assert abs((got["pseudo"] == y).mean() - (single.pseudo_labels_ == y).mean()) <= 0.015
    assert abs(float(got["noise"]) - single.noise_rate_) <= 0.03
    assert abs(got["clean"].mean() - single.clean_mask_.mean()) <= 0.015
    assert (single.pseudo_labels_ == y).mean() > (noisy == y).mean() + 0.2  # the runs did learn


def test_processes_with_different_data_refuse_together(job):
    for rank in job:
        assert "fit different data" in str(rank["mismatch"]) and "labels" in str(rank["mismatch"])


def test_torchrun_filter_writes_once_from_rank_zero(tmp_path):
    pa, pq = pytest.importorskip("pyarrow"), pytest.importorskip("pyarrow.parquet")
    X, _, noisy = job_data(400)
    pq.write_table(pa.table({**{f"f{j}": X[:, j] for j in range(X.shape[1])}, "label": noisy}), tmp_path / "d.parquet")
    cmd = [sys.executable, "-m", "torch.distributed.run", "--nproc-per-node", "2", "--master-port", str(_free_port())]
    cmd += ["-m", "labelclean", "filter", str(tmp_path / "d.parquet"), "-o", str(tmp_path / "out.parquet"), "--json"]
    cmd += ["--seed", "0", "--epochs", "2", "--device", "cpu", "--param", "estimator=network"]
    cmd += ["--param", "hidden_dims=[16]", "--param", "refine_epochs=1", "--report", str(tmp_path / "r.html")]
    proc = subprocess.run(cmd, cwd=tmp_path, env=_env(), capture_output=True, text=True, timeout=240)
    assert proc.returncode == 0, proc.stderr[-3000:]
    summaries = [json.loads(line) for line in proc.stdout.splitlines() if line.startswith("{")]
    assert len(summaries) == 1 and summaries[0]["rows_written"] == 400  # rank 1 printed nothing
    assert pq.read_table(tmp_path / "out.parquet").num_rows == 400 and (tmp_path / "r.html").exists()
    assert sorted(p.name for p in tmp_path.iterdir()) == ["d.parquet", "out.parquet", "r.html"]
