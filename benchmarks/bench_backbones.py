"""The default networks on CIFAR-10 colour images, as images and as flat rows: validation accuracy and seconds.

Plain training (``CoTeachingFilter`` with ``forget_rate=0`` and no refinement: nothing is
dropped) on the clean labels of ``--rows`` CIFAR-10N training images, scored on
``--val-rows`` other *training* images (the test split is never read). Three backbones:
``resnet`` (the default for 3-channel images of 32 px and more), ``small_cnn`` (the default
for grey or smaller images, passed through ``module=``), and ``mlp`` on the same images
flattened to rows of 3,072 values (the default for vector rows). Every fit runs with the same
epochs, seed and threads; the machine, the load average before each fit and the seconds go
to a JSON-lines file (default ``benchmarks/raw/backbones_<date>.jsonl``).

Run::

    python -m benchmarks.bench_backbones --data-dir ../shared/data            # 5,000 + 2,000 images, 10 epochs
    python -m benchmarks.bench_backbones --rows 2000 --val-rows 1000 --epochs 3  # a quick look
"""

from __future__ import annotations

import argparse
import json
import os
import time
from pathlib import Path

import numpy as np

from benchmarks.machine import describe
from benchmarks.real_data import load_cifar10n, resolve_data_dir
from benchmarks.real_suite import bench_lock, log
from labelclean import CoTeachingFilter
from labelclean.nets import SmallCNN

REPO = Path(__file__).resolve().parent.parent
BACKBONES = ("resnet", "small_cnn", "mlp")


def fit_one(name: str, data: dict, epochs: int, threads: int, seed: int) -> dict:
    """One plain fit of backbone ``name``; its validation accuracy and seconds."""
    X, Xv = data["X"], data["X_val"]
    if name == "mlp":
        X, Xv = X.reshape(len(X), -1), Xv.reshape(len(Xv), -1)
    module = (lambda shape, k: SmallCNN(*shape, k)) if name == "small_cnn" else None
    est = CoTeachingFilter(
        estimator="network",
        forget_rate=0.0,
        refine_epochs=0,
        max_epochs=epochs,
        module=module,
        random_state=seed,
        n_jobs=threads,
    )
    load = os.getloadavg()
    t0 = time.perf_counter()
    est.fit(X, data["y"])
    seconds = time.perf_counter() - t0
    return {
        "backbone": name,
        "input": "flat rows" if name == "mlp" else "images",
        "epochs": epochs,
        "rows": len(X),
        "val_rows": len(Xv),
        "val_accuracy": float(est.score(Xv, data["y_val"])),
        "seconds": seconds,
        "loadavg_before": load,
    }


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data-dir", default=None, help="folder holding cifar10n.parquet [../shared/data]")
    parser.add_argument("--rows", type=int, default=5_000, help="training images")
    parser.add_argument("--val-rows", type=int, default=2_000, help="other training images to score on")
    parser.add_argument("--epochs", type=int, default=10)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--backbones", default=",".join(BACKBONES))
    parser.add_argument("--out", default=None, help="JSON-lines file [benchmarks/raw/backbones_<date>.jsonl]")
    args = parser.parse_args(argv)
    names = [b for b in args.backbones.split(",") if b]
    unknown = sorted(set(names) - set(BACKBONES))
    if unknown:
        parser.error(f"unknown backbones {unknown}; choose from {', '.join(BACKBONES)}")
    data_dir = resolve_data_dir(args.data_dir)
    raw = load_cifar10n(data_dir, args.rows + args.val_rows, 10, args.seed)
    rng = np.random.default_rng(args.seed)
    order = rng.permutation(len(raw["clean"]))
    fit, val = order[: args.rows], order[args.rows :]
    data = {"X": raw["X"][fit], "y": raw["clean"][fit], "X_val": raw["X"][val], "y_val": raw["clean"][val]}
    out = Path(args.out) if args.out else REPO / "benchmarks" / "raw" / f"backbones_{time.strftime('%Y-%m-%d')}.jsonl"
    out.parent.mkdir(parents=True, exist_ok=True)
    machine = describe(args.threads, REPO)
    rows = []
    with bench_lock(), out.open("a") as fh:
        for name in names:
            rec = {**fit_one(name, data, args.epochs, args.threads, args.seed), "machine": machine}
            fh.write(json.dumps(rec, default=float) + "\n")
            fh.flush()
            log(f"{name}: validation accuracy {rec['val_accuracy']:.3f} in {rec['seconds']:.0f} s")
            rows.append(rec)
    print("| backbone | input | validation accuracy | seconds | load before |")
    print("|---|---|---:|---:|---:|")
    for r in rows:
        print(
            f"| {r['backbone']} | {r['input']} | {r['val_accuracy']:.3f} | {r['seconds']:.0f} | "
            f"{r['loadavg_before'][0]:.2f} |"
        )
    print(f"\n{len(data['y'])} training / {len(data['y_val'])} validation images, {args.epochs} epochs; raw: {out}")


if __name__ == "__main__":
    main()
