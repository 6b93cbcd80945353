"""Choose CoTeachingFilter's defaults on a validation split of MNIST's *training* rows.

The 60,000 training rows are split 50,000 / 10,000; the filter is fitted on the first part
with injected noise and scored on the second part's true labels. The 10,000 test rows
are never touched. Jobs run in parallel processes (useful on a GPU machine)::

    python -m benchmarks.tune_coteaching --device cuda --workers 12 --out tune.jsonl
    python -m benchmarks.tune_coteaching --configs defaults,ema999 --settings sym50 --seeds 0,1 --workers 2
"""

from __future__ import annotations

import argparse
import concurrent.futures as cf
import json
import time

import numpy as np

CONFIGS = {
    "ct10_r0": dict(max_epochs=10, refine_epochs=0),
    "ct10_r5": dict(max_epochs=10, refine_epochs=5),
    "ct15_r5": dict(max_epochs=15, refine_epochs=5),
    "jocor10_r5": dict(method="jocor", max_epochs=10, refine_epochs=5),
    "ct10_r5_tk10": dict(max_epochs=10, refine_epochs=5, num_gradual=10),
    "ctplus10_r5": dict(method="coteaching+", max_epochs=10, refine_epochs=5),
    "defaults": {},
    "ema999": dict(ema_decay=0.999),
    "ema9995": dict(ema_decay=0.9995),
    "refine8": dict(refine_epochs=8),
    "refine10": dict(refine_epochs=10),
}
NAMES = {
    "sym20": ("symmetric", 0.2),
    "sym50": ("symmetric", 0.5),
    "sym80": ("symmetric", 0.8),
    "pair45": ("pair", 0.45),
}


def run_job(job: tuple[str, float, str, dict, str, int, int, int]) -> dict:
    import torch

    kind, rate, name, params, device, n_fit, seed, threads = job
    torch.set_num_threads(threads)
    from benchmarks.data import load_mnist
    from labelclean import CoTeachingFilter, detection_scores, make_noisy_labels

    X, y, _, _ = load_mnist()
    X_fit, y_fit, X_val, y_val = X[:n_fit], y[:n_fit], X[50_000:], y[50_000:]
    y_noisy = make_noisy_labels(y_fit, rate, kind, random_state=seed)
    t0 = time.perf_counter()
    f = CoTeachingFilter(random_state=seed, device=device, **params).fit(X_fit, y_noisy)
    seconds = time.perf_counter() - t0
    det = detection_scores(f.clean_mask_, y_noisy, y_fit)
    return {
        "setting": f"{kind}-{rate}",
        "config": name,
        "seed": seed,
        "threads": threads,
        "val_acc": float(f.score(X_val, y_val)),
        "f1": det["f1"],
        "noise_rate": f.noise_rate_,
        "pseudo_acc": float(np.mean(f.pseudo_labels_ == y_fit)),
        "seconds": seconds,
        "epoch_seconds": [round(h["seconds"], 2) for h in f.history_],
    }


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--device", default="auto")
    ap.add_argument("--workers", type=int, default=1)
    ap.add_argument("--configs", default=",".join(CONFIGS))
    ap.add_argument("--n-fit", type=int, default=50_000)
    ap.add_argument("--out", default="tune.jsonl")
    ap.add_argument("--settings", default=",".join(NAMES), help="comma-separated, of " + ", ".join(NAMES))
    ap.add_argument("--seeds", default="0", help="comma-separated seeds of the noise and the fit")
    ap.add_argument("--threads", type=int, default=1, help="torch threads of each worker")
    args = ap.parse_args()
    from benchmarks.data import load_mnist

    load_mnist()  # unpack the data once, before the workers start
    settings = [NAMES[name] for name in args.settings.split(",")]
    seeds = [int(s) for s in args.seeds.split(",")]
    jobs = [
        (k, r, c, CONFIGS[c], args.device, args.n_fit, seed, args.threads)
        for seed in seeds
        for k, r in settings
        for c in args.configs.split(",")
    ]
    with cf.ProcessPoolExecutor(args.workers) as pool, open(args.out, "w") as fh:
        for res in pool.map(run_job, jobs):
            line = json.dumps(res)
            print(line, flush=True)
            fh.write(line + "\n")


if __name__ == "__main__":
    main()
