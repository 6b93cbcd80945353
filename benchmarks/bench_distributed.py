"""Data-parallel CoTeachingFilter: one process against a ``torchrun`` job of 2 gloo processes, on the same MNIST rows.

``--rows`` MNIST training images as flat rows of 784 pixels (the default MLP), a share
``--noise`` of their labels flipped at random (``make_noisy_labels``, seed 0), the estimator's
defaults. Every seed is fitted by one process on 1 torch thread and by ``torchrun
--nproc-per-node 2`` with 1 thread a process (gloo, the CPU); the first seed also by one
process on 2 threads (the same fit as on 1 thread but for rounding: it is there for the
seconds). Each fit runs in a fresh interpreter. Scored: the accuracy of ``pseudo_labels_`` against the true training
labels, detection precision / recall / F1 of the flagged rows (``~clean_mask_``), the
accuracy on the clean 10,000 test images, ``noise_rate_``, the seconds of ``fit`` and of the
whole run (start, reading and all), the seconds of each phase (from ``history_``). To take
the time of a step apart, every fit also times a training step of its two networks without
any communication, at the rows one process computes per step (the whole batch alone, half of
it in the job), and the job times its collectives: one gloo all-reduce of the gradients
(every parameter of both networks, float32) and one gather of the networks' outputs. With the
optimizer steps of each phase this gives the communication volume. One JSON line per fit
goes to ``benchmarks/raw/distributed_<date>.jsonl``; the table, the volume and the step
model are printed.

Run (the run takes the machine's benchmark lock)::

    python -m benchmarks.bench_distributed                         # all 60,000 rows, seeds 0-2 (about 6 min)
    python -m benchmarks.bench_distributed --rows 3000 --seeds 0    # a quick look
"""

from __future__ import annotations

import argparse
import json
import math
import os
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parent.parent
#: The ways every seed is fitted: (name, processes, torch threads per process).
SETUPS = (("1 process, 1 thread", 1, 1), ("1 process, 2 threads", 1, 2), ("2 processes, 1 thread each", 2, 1))


def _data(rows: int, noise: float) -> tuple[np.ndarray, ...]:
    from benchmarks.data import load_mnist
    from labelclean.noise import make_noisy_labels

    X, y, X_test, y_test = load_mnist()
    pick = np.random.default_rng(0).permutation(len(y))[:rows]
    X, y = X[pick].reshape(rows, -1), y[pick]
    return X, y, make_noisy_labels(y, noise, random_state=0), X_test.reshape(len(X_test), -1), y_test


def _collective_seconds(values: int, rows: int, width: int, repeats: int = 20) -> dict[str, float]:
    """Mean seconds of one all-reduce of ``values`` float32 numbers and of one gather of ``rows × width`` outputs."""
    import torch
    import torch.distributed as dist

    grads, outputs = torch.zeros(values), torch.zeros(rows, width)
    parts = [torch.empty_like(outputs) for _ in range(dist.get_world_size())]
    out = {}
    for name, call in (
        ("allreduce", lambda: dist.all_reduce(grads)),
        ("gather", lambda: dist.all_gather(parts, outputs)),
    ):
        call()
        dist.barrier()
        t0 = time.perf_counter()
        for _ in range(repeats):
            call()
        out[f"{name}_seconds"] = (time.perf_counter() - t0) / repeats
    return out


def _step_seconds(est, rows: int, repeats: int = 30) -> float:
    """Mean seconds of one Co-teaching step (forward, backward, Adam) of copies of ``est``'s networks on ``rows``."""
    import copy

    import torch

    from labelclean.coteaching import coteaching_loss

    nets = [copy.deepcopy(net).train() for net in est.networks_]
    params = [p for net in nets for p in net.parameters()]
    try:  # the fit's Adam: fused where torch has the kernel, else multi-tensor
        optimizer = torch.optim.Adam(params, 1e-3, fused=True)
    except (RuntimeError, ValueError, TypeError):
        optimizer = torch.optim.Adam(params, 1e-3, foreach=True)
    g = torch.Generator().manual_seed(0)
    x, y = torch.randn(rows, est.n_features_in_, generator=g), torch.randint(0, len(est.classes_), (rows,), generator=g)

    def step() -> None:
        loss, _ = coteaching_loss(nets[0](x), nets[1](x), y, 0.4, True, 1.0, 0.95)
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()

    for _ in range(3):
        step()
    t0 = time.perf_counter()
    for _ in range(repeats):
        step()
    return (time.perf_counter() - t0) / repeats


def _epochs(f) -> dict[str, int]:
    """Epochs of each phase of a fitted network ``f`` (from its ``history_``)."""
    epochs: dict[str, int] = {}
    for h in f.history_:
        epochs[h["phase"]] = epochs.get(h["phase"], 0) + 1
    return epochs


def plan_steps(n: int, batch_size: int, size: int) -> int:
    """Steps of one pass over ``n`` rows in a job of ``size``, as the engine plans them.

    The rows are padded to a multiple of ``size``, cut into batches of ``size · ceil(batch_size /
    size)`` rows (at least 2 a process), and a last batch of fewer than 2 rows a process is merged.
    """
    share = batch_size if size == 1 else max(2, math.ceil(batch_size / size))
    padded, batch = n + (-n) % size, share * size
    steps = max(1, math.ceil(padded / batch))
    return steps - 1 if steps > 1 and padded - (steps - 1) * batch < 2 * size else steps


def _steps(f, rows: int, size: int) -> dict[str, int]:
    """Optimizer steps of each phase of a fitted network ``f`` (from its ``history_``), in a job of ``size``."""
    epochs = _epochs(f)
    b, half = f.batch_size_, rows // 2  # the warm-up trains each network on one half, one network a step
    return {
        "warmup": epochs.get("warmup", 0) * (plan_steps(half, b, size) + plan_steps(rows - half, b, size)),
        "coteaching": epochs.get("coteaching", 0) * plan_steps(rows, b, size),
        "refine": epochs.get("refine", 0) * plan_steps(rows, b, size),
    }


def fit_worker(args: argparse.Namespace) -> None:
    """One fit (one process, or one process of the job); rank 0 writes its record to ``args.record``."""
    import torch

    from labelclean import CoTeachingFilter, detection_scores

    torch.set_num_threads(args.threads)  # also for the step timed after the fit
    X, y, noisy, X_test, y_test = _data(args.rows, args.noise)
    size, rank = int(os.environ.get("WORLD_SIZE", "1")), int(os.environ.get("RANK", "0"))  # set by torchrun
    est = CoTeachingFilter(random_state=args.seed, device="cpu", n_jobs=args.threads)
    t0 = time.perf_counter()
    est.fit(X, noisy)
    seconds = time.perf_counter() - t0
    scores = detection_scores(est.clean_mask_, noisy, y)
    params = sum(p.numel() for net in est.networks_ for p in net.parameters())
    share = est.batch_size_ // size
    comm = None
    if size > 1:
        comm = {"allreduce_values": params, **_collective_seconds(params, share, 2 * len(est.classes_))}
    phases: dict[str, float] = {}
    for h in est.history_:
        phases[h["phase"]] = phases.get(h["phase"], 0.0) + h["seconds"]
    record = {
        "processes": size,
        "threads": args.threads,
        "seed": args.seed,
        "rows": args.rows,
        "noise": args.noise,
        "fit_seconds": seconds,
        "label_accuracy": float(np.mean(est.pseudo_labels_ == y)),
        "noisy_accuracy": float(np.mean(noisy == y)),
        "test_accuracy": float(est.score(X_test, y_test)),
        "precision": scores["precision"],
        "recall": scores["recall"],
        "f1": scores["f1"],
        "noise_rate": est.noise_rate_,
        "batch_size": est.batch_size_,
        "classes": len(est.classes_),
        "parameters": params,
        "epochs": _epochs(est),
        "steps": _steps(est, args.rows, size),
        "phase_seconds": phases,
        "step_rows": share,
        "step_seconds": _step_seconds(est, share),
        "comm": comm,
        "torch": torch.__version__,
    }
    if rank == 0:
        Path(args.record).write_text(json.dumps(record))


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def run_setup(processes: int, threads: int, seed: int, args: argparse.Namespace, record: Path) -> dict:
    """One fit in a fresh interpreter (``torchrun`` for a job); its record, with the wall-clock seconds of the run."""
    fit = ["-m", "benchmarks.bench_distributed", "--fit", "--seed", str(seed), "--threads", str(threads)]
    fit += ["--rows", str(args.rows), "--noise", str(args.noise), "--record", str(record)]
    cmd = [sys.executable, *fit]
    if processes > 1:
        torchrun = ["-m", "torch.distributed.run", f"--nproc-per-node={processes}", f"--master-port={_free_port()}"]
        cmd = [sys.executable, *torchrun, *fit]
    env = {**os.environ, "OMP_NUM_THREADS": str(threads), "PYTHONPATH": str(REPO)}
    load = os.getloadavg()
    t0 = time.perf_counter()
    subprocess.run(cmd, cwd=REPO, env=env, check=True)
    return {**json.loads(record.read_text()), "run_seconds": time.perf_counter() - t0, "loadavg_before": load}


def communication(rec: dict) -> dict:
    """Bytes one process of the job sends: per step and per fit, by what is sent.

    A ring all-reduce (gloo and NCCL for buffers of this size) sends ``2 (N - 1) / N`` of the
    buffer per process, a ring all-gather ``(N - 1) / N`` of the gathered whole. Each Co-teaching
    or refinement step all-reduces the gradients of both networks and gathers both networks'
    outputs; each warm-up step, one network's. The statistics over all rows: the warm-up's
    disagreement count (one number an epoch), rank 0's weights before every prediction (sent by
    rank 0), and the gathered probabilities of every row after Co-teaching and after the refinement.
    """
    n, params, k, b = rec["processes"], rec["parameters"], rec["classes"], rec["batch_size"]
    steps, epochs = rec["steps"], rec["epochs"]
    full = steps["coteaching"] + steps["refine"]
    grads = 2 * (n - 1) / n * 4 * params  # per step of both networks
    outputs = (n - 1) / n * 4 * b * 2 * k  # per step of both networks
    predictions = 1 + (steps["refine"] > 0)
    statistics = {
        "warm-up counts": 8 * epochs.get("warmup", 0),
        "weights before predictions": 4 * params * (predictions + epochs.get("warmup", 0)),
        "probabilities of every row": (n - 1) / n * 4 * rec["rows"] * k * predictions,
    }
    return {
        "gradient_bytes_per_step": 4 * params,
        "sent_bytes_per_step": grads + outputs,
        "gradients_per_fit": grads * (full + steps["warmup"] / 2),
        "outputs_per_fit": outputs * (full + steps["warmup"] / 2),
        "statistics_per_fit": statistics,
        "steps": sum(steps.values()),
    }


def _table(records: list[dict]) -> str:
    lines = [
        "| setup | seeds | label accuracy | test accuracy | detection F1 | noise rate | fit seconds | run seconds |",
        "|---|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for name, processes, threads in SETUPS:
        rs = [r for r in records if r["processes"] == processes and r["threads"] == threads]
        if not rs:
            continue

        def mean(key: str, rs: list[dict] = rs) -> float:
            return float(np.mean([r[key] for r in rs]))

        lines.append(
            f"| {name} | {len(rs)} | {100 * mean('label_accuracy'):.2f} | {100 * mean('test_accuracy'):.2f} | "
            f"{mean('f1'):.3f} | {mean('noise_rate'):.3f} | {mean('fit_seconds'):.0f} | {mean('run_seconds'):.0f} |"
        )
    return "\n".join(lines)


def _mean(records: list[dict], key) -> float:
    return float(np.mean([key(r) for r in records]))


def report(records: list[dict]) -> str:
    """The table, the communication volume of the job and its per-step model, as markdown."""
    lines = [_table(records)]
    jobs = [r for r in records if r["processes"] > 1]
    singles = [r for r in records if r["processes"] == 1 and r["threads"] == 1]
    if not jobs:
        return lines[0]
    c, job = communication(jobs[0]), jobs[0]
    stats = c["statistics_per_fit"]
    lines += [
        "",
        f"Per step: {c['gradient_bytes_per_step'] / 1e6:.2f} MB of float32 gradients all-reduced "
        f"({job['parameters']:,} parameters, both networks), {c['sent_bytes_per_step'] / 1e6:.3f} MB sent by each "
        f"process (gradients and outputs). Per fit ({c['steps']} steps): {c['gradients_per_fit'] / 1e9:.2f} GB of "
        f"gradients, {c['outputs_per_fit'] / 1e6:.1f} MB of outputs, statistics: "
        + ", ".join(f"{name} {v / 1e6:.3g} MB" for name, v in stats.items())
        + ".",
    ]
    per_step = lambda r: r["phase_seconds"]["coteaching"] / r["steps"]["coteaching"]  # noqa: E731
    compute, allreduce = _mean(jobs, lambda r: r["step_seconds"]), _mean(jobs, lambda r: r["comm"]["allreduce_seconds"])
    gather = _mean(jobs, lambda r: r["comm"]["gather_seconds"])
    if singles:
        one = _mean(singles, lambda r: r["step_seconds"])
        lines.append(
            f"Co-teaching step, one process: {1e3 * _mean(singles, per_step):.1f} ms in the fit; its forward, backward "
            f"and Adam alone on {singles[0]['step_rows']} rows: {1e3 * one:.1f} ms."
        )
        lines.append(
            f"Co-teaching step, {job['processes']} processes: {1e3 * _mean(jobs, per_step):.1f} ms in the fit; model: "
            f"{1e3 * compute:.1f} ms on {job['step_rows']} rows + {1e3 * allreduce:.1f} ms all-reduce + "
            f"{1e3 * gather:.2f} ms gather = {1e3 * (compute + allreduce + gather):.1f} ms; speed-up of the step on "
            f"paper {one / (compute + allreduce + gather):.2f}x."
        )
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, default=60_000, help="MNIST training rows")
    parser.add_argument("--noise", type=float, default=0.4, help="share of labels flipped")
    parser.add_argument("--seeds", default="0,1,2")
    parser.add_argument("--setups", default="0,1,2", help="which of SETUPS to run, by index")
    parser.add_argument("--out", default=None, help="JSON-lines file [benchmarks/raw/distributed_<date>.jsonl]")
    parser.add_argument("--report", default=None, metavar="JSONL", help="print the tables of a raw file; fit nothing")
    parser.add_argument("--fit", action="store_true", help=argparse.SUPPRESS)  # one fit (a worker)
    parser.add_argument("--seed", type=int, default=0, help=argparse.SUPPRESS)
    parser.add_argument("--threads", type=int, default=1, help=argparse.SUPPRESS)
    parser.add_argument("--record", default=None, help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.fit:
        fit_worker(args)
        return
    if args.report:
        records = [json.loads(line) for line in Path(args.report).read_text().splitlines() if line.strip()]
        print(report([r for r in records if r["rows"] == args.rows]))
        return

    from benchmarks.machine import describe
    from benchmarks.real_suite import bench_lock, log

    seeds = [int(s) for s in args.seeds.split(",") if s]
    setups = [SETUPS[int(i)] for i in args.setups.split(",") if i]
    out = Path(args.out) if args.out else REPO / "benchmarks" / "raw" / f"distributed_{time.strftime('%Y-%m-%d')}.jsonl"
    out.parent.mkdir(parents=True, exist_ok=True)
    machine = describe(1, REPO)
    records = []
    with bench_lock(), tempfile.TemporaryDirectory() as tmp, out.open("a") as fh:
        for i, seed in enumerate(seeds):
            for name, processes, threads in setups:
                if i and processes == 1 and threads > 1:
                    continue
                rec = run_setup(processes, threads, seed, args, Path(tmp) / "record.json")
                rec = {"setup": name, **rec, "machine": machine}
                fh.write(json.dumps(rec, default=float) + "\n")
                fh.flush()
                log(
                    f"seed {seed}, {name}: test accuracy {rec['test_accuracy']:.4f}, label accuracy "
                    f"{rec['label_accuracy']:.4f}, F1 {rec['f1']:.3f}, fit {rec['fit_seconds']:.0f} s"
                )
                records.append(rec)
    print(report(records))
    print(f"\n{args.rows} MNIST rows (flat), {args.noise:.0%} symmetric noise; raw: {out}")


if __name__ == "__main__":
    main()
