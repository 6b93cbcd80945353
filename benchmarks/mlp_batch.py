"""Batch size and learning rate of CoTeachingFilter's default MLP, on validation rows (never the test set).

    python -m benchmarks.mlp_batch --data mnist --noise sym50 --params '{"batch_size": 512}'
    python -m benchmarks.mlp_batch --data synthetic:20000 --noise sym30 --params '{"batch_size": 512, "lr": 4e-3}'
    python -m benchmarks.mlp_batch --data digits --noise sym30 --seeds 0,1,2

``mnist``: the flattened pixels of training rows 0–50,000 (``--rows`` fewer) with labels flipped,
scored on the true labels of training rows 50,000–60,000; the utilisation of the training loop
(``benchmarks.throughput``) is printed against ``--peak`` GFLOP/s. ``synthetic:N``
(``make_classification``, 20 features, 4 classes) and ``digits`` (scikit-learn's 8×8 digits):
three quarters of the rows fitted, the rest scored. One JSON line per seed.
"""

from __future__ import annotations

import argparse
import json
import time

import numpy as np


def load(data: str, rows: int | None) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """``X_fit, y_fit, X_val, y_val`` of a data name (clean labels)."""
    if data == "mnist":
        from benchmarks.data import load_mnist

        X, y, _, _ = load_mnist()
        X = X.reshape(len(X), -1)
        n = rows or 50_000
        return X[:n], y[:n], X[50_000:], y[50_000:]
    if data == "digits":
        from sklearn.datasets import load_digits

        X, y = load_digits(return_X_y=True)
    elif data.startswith("synthetic:"):
        from sklearn.datasets import make_classification

        n = int(data.split(":")[1])
        X, y = make_classification(n, n_features=20, n_informative=10, n_classes=4, random_state=0)
    else:
        raise SystemExit(f"unknown --data {data!r}: use mnist, digits or synthetic:N")
    perm = np.random.default_rng(0).permutation(len(X))
    fit, val = perm[: int(0.75 * len(X))], perm[int(0.75 * len(X)) :]
    return X[fit], y[fit], X[val], y[val]


def run(data: str, noise: str, params: dict, seed: int, rows: int | None, peak: float) -> dict:
    """Fit one CoTeachingFilter on flipped labels; validation accuracy, F1 of the flagged rows, utilisation."""
    from benchmarks.throughput import mlp_layers, rows_from_history, training_flops
    from labelclean import CoTeachingFilter, detection_scores, make_noisy_labels

    X, y, X_val, y_val = load(data, rows)
    kind = "pair" if noise.startswith("pair") else "symmetric"
    rate = int(noise.removeprefix("pair").removeprefix("sym")) / 100
    y_noisy = make_noisy_labels(y, rate, kind, random_state=seed) if rate else y
    f = CoTeachingFilter(estimator="network", random_state=seed, **params)
    t0 = time.perf_counter()
    f.fit(X, y_noisy)
    seconds = time.perf_counter() - t0
    out = {
        "data": data,
        "noise": noise,
        "params": params,
        "seed": seed,
        "batch_size": f.batch_size_,
        "lr": f.lr_,
        "val_acc": round(100 * float(f.score(X_val, y_val)), 2),
        "f1": round(detection_scores(f.clean_mask_, y_noisy, y)["f1"], 4) if rate else None,
        "fit_s": round(seconds, 1),
    }
    if data == "mnist":
        counted = rows_from_history(f.history_, len(y))
        flops = training_flops(mlp_layers(X.shape[1], f.hidden_dims, 10), counted["trained"], counted["predicted"])
        gflops = flops / counted["seconds"] / 1e9
        out.update(loop_s=round(counted["seconds"], 1), gflops=round(gflops, 1), utilisation=round(gflops / peak, 3))
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--data", default="mnist", help="mnist, digits or synthetic:N")
    ap.add_argument("--noise", default="sym50", help="symNN or pairNN (percent flipped), sym0 for clean labels")
    ap.add_argument("--params", default="{}", help="CoTeachingFilter parameters as JSON")
    ap.add_argument("--seeds", default="0")
    ap.add_argument("--rows", type=int, default=None, help="MNIST: fit on fewer training rows")
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--peak", type=float, default=159.2, help="matmul peak GFLOP/s for the utilisation ratio")
    args = ap.parse_args()
    import torch

    torch.set_num_threads(args.threads)
    for seed in (int(s) for s in args.seeds.split(",")):
        print(json.dumps(run(args.data, args.noise, json.loads(args.params), seed, args.rows, args.peak)), flush=True)


if __name__ == "__main__":
    main()
