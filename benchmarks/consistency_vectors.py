"""Does consistency training help SelfTrainer on *vector* rows (its MLP), as it does on images?

``consistency_epochs="auto"`` was chosen on MNIST images (the default CNN). This script fits
SelfTrainer on vector rows with the labeled-only teacher and five students
(``consistency_epochs=0, max_iter=5``) and with 20 passes of consistency training and no students
(``consistency_epochs=20, max_iter=0``), on validation rows only:

- ``mnist``: MNIST's pixels flattened to 784 features; fit on training rows 0–50,000 with
  ``--per-class`` labels a class, scored on rows 50,000–60,000 (the test set is not read);
- ``synthetic``: ``make_classification`` (40,000 rows, 40 features, 10 classes), ``--per-class``
  labels a class among the first 30,000 rows, scored on the last 10,000.

One JSON line per fit::

    python -m benchmarks.consistency_vectors --data mnist --per-class 100 --seed 0
    python -m benchmarks.consistency_vectors --data synthetic --per-class 50 --seed 1
"""

from __future__ import annotations

import argparse
import json
import time

import numpy as np


def load(data: str) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """Fit rows, their true labels, validation rows and labels, as float32 vectors / int64."""
    if data == "mnist":
        from benchmarks.data import load_mnist

        X, y, _, _ = load_mnist()
        X = X.reshape(len(X), -1)
        return X[:50_000], y[:50_000], X[50_000:], y[50_000:]
    from sklearn.datasets import make_classification

    X, y = make_classification(
        40_000, n_features=40, n_informative=20, n_classes=10, n_clusters_per_class=2, class_sep=1.5, random_state=0
    )
    X = X.astype(np.float32)
    return X[:30_000], y[:30_000], X[30_000:], y[30_000:]


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--data", choices=["mnist", "synthetic"], default="mnist")
    ap.add_argument("--per-class", type=int, default=100, help="labeled rows of each class")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--threads", type=int, default=1)
    args = ap.parse_args()
    import torch

    from labelclean import SelfTrainer

    torch.set_num_threads(args.threads)
    X_fit, y_fit, X_val, y_val = load(args.data)
    rng = np.random.default_rng(args.seed)
    classes = np.unique(y_fit)
    keep = np.concatenate([rng.choice(np.flatnonzero(y_fit == c), args.per_class, replace=False) for c in classes])
    y_semi = np.full_like(y_fit, -1)
    y_semi[keep] = y_fit[keep]
    for name, params in [
        ("students", {"consistency_epochs": 0, "max_iter": 5}),
        ("consistency", {"consistency_epochs": 20, "max_iter": 0}),
    ]:
        t0 = time.perf_counter()
        st = SelfTrainer(random_state=args.seed, **params).fit(X_fit, y_semi)
        line = {
            "data": args.data,
            "per_class": args.per_class,
            "seed": args.seed,
            "threads": args.threads,
            "run": name,
            "params": params,
            "val_acc": round(100 * float(st.score(X_val, y_val)), 2),
            "seconds": round(time.perf_counter() - t0, 1),
        }
        print(json.dumps(line), flush=True)


if __name__ == "__main__":
    main()
