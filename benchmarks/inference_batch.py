"""Seconds per predicted row against the inference batch size, for the default CNN and MLP.

    python -m benchmarks.inference_batch --threads 2

Predicts 20,000 random 28×28 images (CNN) or 784-feature rows (MLP) with untrained default
networks through :func:`labelclean._train.predict_proba_nets`, four interleaved passes per batch
size, and prints one JSON line per network and batch size with the fastest and the slowest pass.
``INFERENCE_BATCH`` is chosen from these lines.
"""

from __future__ import annotations

import argparse
import json
import time

import torch

from labelclean._nets import build_network
from labelclean._train import INFERENCE_BATCH, predict_proba_nets


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--rows", type=int, default=20_000)
    ap.add_argument("--batches", default="128,256,512,1024,2048")
    ap.add_argument("--rounds", type=int, default=4)
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    gen = torch.Generator().manual_seed(0)
    images = torch.rand((args.rows, 1, 28, 28), generator=gen)
    for name, shape, X in (("cnn", (1, 28, 28), images), ("mlp", (784,), images.reshape(args.rows, -1))):
        net = build_network(shape, 10, mean=torch.zeros(1), scale=torch.ones(1), dropout=0.3)
        predict_proba_nets([net], X[:2048], torch.device("cpu"))  # warm-up
        sizes = [int(v) for v in args.batches.split(",")]
        passes: dict[int, list[float]] = {b: [] for b in sizes}
        for _ in range(args.rounds):  # sizes interleaved, so a slow spell of the machine hits them all
            for b in sizes:
                t0 = time.perf_counter()
                predict_proba_nets([net], X, torch.device("cpu"), batch_size=b)
                passes[b].append((time.perf_counter() - t0) / args.rows * 1e6)
        for b in sizes:
            line = {"net": name, "threads": args.threads, "batch": b, "us_per_row": round(min(passes[b]), 2)}
            line["slowest_pass_us_per_row"] = round(max(passes[b]), 2)
            print(json.dumps({**line, "default": b == INFERENCE_BATCH}), flush=True)


if __name__ == "__main__":
    main()
