"""SelfTrainer on MNIST, side by side with scikit-learn's ``SelfTrainingClassifier(LogisticRegression())``.

Settings: 1,000 labels (100 per class) and 100 labels (10 per class) with the other training
rows unlabeled (``-1``); and relabel mode with 80 % of all 60,000 training labels flipped
symmetrically. Accuracy is measured on the clean 10,000-row test set.

    flock /tmp/labelclean-bench.lock python -m benchmarks.bench_self_training
    flock /tmp/labelclean-bench.lock python -m benchmarks.bench_self_training --settings labels100 --no-peer

``--validation`` trains on the first 50,000 training rows and scores on the last 10,000
(never the test set): this is how the defaults were chosen. ``--set key=value`` overrides
a SelfTrainer parameter (parsed as a Python literal).
"""

from __future__ import annotations

import argparse
import ast
import json
import multiprocessing as mp
import os
import resource
import sys
import time
import warnings
from pathlib import Path

import numpy as np
import torch

from benchmarks.data import load_mnist
from labelclean.noise import make_noisy_labels
from labelclean.self_training import SelfTrainer

SETTINGS = ("labels1000", "labels100", "relabel80")


def make_targets(setting: str, y: np.ndarray, seed: int) -> np.ndarray:
    """The training labels a setting gives the estimators: ``-1`` for unlabeled rows, or noisy labels."""
    rng = np.random.default_rng(seed)
    if setting == "relabel80":
        return make_noisy_labels(y, 0.8, random_state=seed)
    per_class = int(setting.removeprefix("labels")) // 10  # labels1000: 100 rows of each digit
    keep = np.concatenate([rng.choice(np.flatnonzero(y == c), per_class, replace=False) for c in range(10)])
    out = np.full_like(y, -1)
    out[keep] = y[keep]
    return out


def peak_rss_mib() -> float:
    """Peak resident memory of this process so far (Linux reports KiB)."""
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def run_selftrainer(setting, X, y_train, X_eval, y_eval, params, seed) -> dict:
    model = SelfTrainer(strategy="relabel" if setting == "relabel80" else "auto", random_state=seed, **params)
    t0 = time.perf_counter()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        model.fit(X, y_train)
    seconds = time.perf_counter() - t0
    acc = float(np.mean(model.predict(X_eval) == y_eval))
    return {
        "model": "SelfTrainer",
        "accuracy": acc,
        "seconds": seconds,
        "n_iter": model.n_iter_,
        "termination": model.termination_condition_,
        "peak_rss_mib": peak_rss_mib(),
    }


def run_peer(setting, X, y_train, X_eval, y_eval, seed) -> dict:
    from sklearn.linear_model import LogisticRegression
    from sklearn.semi_supervised import SelfTrainingClassifier

    model = SelfTrainingClassifier(LogisticRegression())
    t0 = time.perf_counter()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        model.fit(X.reshape(len(X), -1), y_train)
    seconds = time.perf_counter() - t0
    acc = float(np.mean(model.predict(X_eval.reshape(len(X_eval), -1)) == y_eval))
    return {
        "model": "SelfTrainingClassifier(LogisticRegression())",
        "accuracy": acc,
        "seconds": seconds,
        "n_iter": model.n_iter_,
        "termination": model.termination_condition_,
        "peak_rss_mib": peak_rss_mib(),
    }


def in_child(fn, *args) -> dict:
    """Run ``fn(*args)`` in a forked process so each peak-memory figure is its own (plus the shared MNIST arrays)."""
    ctx = mp.get_context("fork")
    queue = ctx.Queue()
    proc = ctx.Process(target=lambda: queue.put(fn(*args)))
    proc.start()
    result = queue.get()
    proc.join()
    return result


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--settings", nargs="+", default=list(SETTINGS), choices=SETTINGS)
    parser.add_argument("--validation", action="store_true", help="train on rows 0-50k, score on rows 50k-60k")
    parser.add_argument("--no-peer", action="store_true", help="skip SelfTrainingClassifier(LogisticRegression())")
    parser.add_argument(
        "--peer-only", action="store_true", help="run only SelfTrainingClassifier(LogisticRegression())"
    )
    parser.add_argument("--set", nargs="*", default=[], metavar="KEY=VALUE", help="SelfTrainer parameter overrides")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--limit", type=int, default=None, help="use only this many training rows (development)")
    parser.add_argument(
        "--threads", type=int, default=1, help="torch CPU threads (1 avoids oversubscription when the cores are shared)"
    )
    parser.add_argument("--out", type=Path, default=None, help="append JSON lines here")
    args = parser.parse_args(argv)
    params = {k: ast.literal_eval(v) for k, v in (s.split("=", 1) for s in args.set)}
    torch.set_num_threads(args.threads)

    X_train, y_train, X_test, y_test = load_mnist()
    if args.validation:
        X_train, y_train, X_test, y_test = X_train[:50_000], y_train[:50_000], X_train[50_000:], y_train[50_000:]
    if args.limit:
        X_train, y_train = X_train[: args.limit], y_train[: args.limit]
    for setting in args.settings:
        y_given = make_targets(setting, y_train, args.seed)
        runs = (
            [] if args.peer_only else [(run_selftrainer, setting, X_train, y_given, X_test, y_test, params, args.seed)]
        )
        if not args.no_peer:
            runs.append((run_peer, setting, X_train, y_given, X_test, y_test, args.seed))
        for fn, *fn_args in runs:
            load_before = os.getloadavg()[0]
            result = {
                "setting": setting,
                "split": "validation" if args.validation else "test",
                "n_train": len(y_given),
                **in_child(fn, *fn_args),
                "params": params,
                "threads": args.threads,
                "loadavg_1min_before_after": [load_before, os.getloadavg()[0]],
            }
            line = json.dumps(result)
            print(line, flush=True)
            if args.out is not None:
                with args.out.open("a") as fh:
                    fh.write(line + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
