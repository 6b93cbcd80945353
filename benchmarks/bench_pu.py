"""PU learning on MNIST (even digits positive), the setting of Kiryo et al. (2017), against pulearn.

1,000 of the even-digit training images are labeled positive; the other 59,000 training rows
are unlabeled; the class prior is not given. Every method runs in its own fresh process so
that its peak memory (max RSS, data included) and seconds are its own.

Run (the lock keeps benchmarks of different engineers from sharing the CPU)::

    flock /tmp/labelclean-bench.lock python -m benchmarks.bench_pu            # test-set figures
    flock /tmp/labelclean-bench.lock python -m benchmarks.bench_pu --validate # tuning: 50k fit / 10k val of TRAIN

``--validate`` never reads the test set: it fits on 50,000 training rows and scores the
other 10,000 training rows (with their true labels); defaults were chosen this way.
"""

from __future__ import annotations

import argparse
import json
import multiprocessing as mp
import resource
import time

import numpy as np

from benchmarks.data import load_mnist

N_LABELED = 1000


def pu_split(validate: bool, n_train: int | None, seed: int = 0):
    """Return ``X_fit, s_fit (1 labeled positive / 0 unlabeled), true_prior, X_eval, y_eval (0/1)``."""
    X, y, X_test, y_test = load_mnist()
    rng = np.random.default_rng(seed)
    if validate:
        order = rng.permutation(len(X))
        fit, val = order[:50_000], order[50_000:]
        X, y, X_test, y_test = X[fit], y[fit], X[val], y[val]
    if n_train is not None:
        keep = rng.permutation(len(X))[:n_train]
        X, y = X[keep], y[keep]
    positive = (y % 2 == 0).astype(np.int64)
    labeled = rng.choice(np.flatnonzero(positive), N_LABELED, replace=False)
    s = np.zeros(len(X), dtype=np.int64)
    s[labeled] = 1
    return X, s, float(positive.mean()), X_test, (y_test % 2 == 0).astype(np.int64)


def run_method(name: str, validate: bool, n_train: int | None, params: dict) -> dict:
    """Fit one method on the PU split and score it; runs in a child process."""
    X, s, true_prior, X_eval, y_eval = pu_split(validate, n_train)
    t0 = time.perf_counter()
    if name == "labelclean":
        from labelclean.pu import PUClassifier

        model = PUClassifier(random_state=0, **params).fit(X, s)
        prior = model.class_prior_
        acc = float(np.mean(model.predict(X_eval) == y_eval))
        p = model.predict_proba(X_eval)[:, 1]
        extra = {"ece": expected_calibration_error(p, y_eval), "epochs": model.max_epochs}
    else:
        from pulearn import BaggingPuClassifier, ElkanotoPuClassifier
        from sklearn.linear_model import LogisticRegression

        Xf, Xe = X.reshape(len(X), -1), X_eval.reshape(len(X_eval), -1)
        lr = LogisticRegression(max_iter=1000)
        if name == "pulearn-elkanoto":
            model = ElkanotoPuClassifier(estimator=lr, hold_out_ratio=0.1, random_state=0).fit(Xf, s)
            prior = float(s.mean() / model.c)
        else:
            # Mordelet & Vert: each bag is the labeled positives plus as many unlabeled rows (pulearn's
            # default max_samples=1.0 would draw all 59,000 unlabeled rows per bag and predict all negative)
            model = BaggingPuClassifier(
                estimator=lr, n_estimators=10, max_samples=int(s.sum()), n_jobs=1, random_state=0
            ).fit(Xf, s)
            prior = float("nan")  # BaggingPuClassifier does not estimate the prior
        acc = float(np.mean(model.predict(Xe).astype(int).clip(0, 1) == y_eval))
        extra = {}
    seconds = time.perf_counter() - t0
    peak_mb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    return {
        "method": name,
        "accuracy": acc,
        "prior": prior,
        "true_prior": true_prior,
        "seconds": seconds,
        "peak_mb": peak_mb,
        **extra,
    }


def expected_calibration_error(p: np.ndarray, y: np.ndarray, bins: int = 15) -> float:
    """ECE of the positive-class probability ``p`` (equal-width bins)."""
    idx = np.minimum((p * bins).astype(int), bins - 1)
    total = 0.0
    for b in range(bins):
        m = idx == b
        if m.any():
            total += m.sum() * abs(p[m].mean() - y[m].mean())
    return float(total / len(p))


def _run_in_child(args: tuple) -> dict:
    return run_method(*args)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--validate", action="store_true", help="fit 50k / score 10k TRAINING rows (tuning)")
    parser.add_argument("--n-train", type=int, default=None, help="subsample the fit rows (quick runs)")
    parser.add_argument("--methods", default="labelclean,pulearn-elkanoto,pulearn-bagging")
    parser.add_argument("--params", default="{}", help="JSON keyword arguments for PUClassifier")
    args = parser.parse_args(argv)
    params = json.loads(args.params)
    ctx = mp.get_context("spawn")
    rows = []
    for name in args.methods.split(","):
        with ctx.Pool(1) as pool:
            row = pool.apply(_run_in_child, ((name, args.validate, args.n_train, params),))
        rows.append(row)
        print(json.dumps(row), flush=True)
    split = "validation (10k training rows)" if args.validate else "test (10k clean)"
    print(f"\n| method | {split} accuracy | estimated prior (true {rows[0]['true_prior']:.4f}) | seconds | peak MB |")
    print("| --- | --- | --- | --- | --- |")
    for r in rows:
        prior = "—" if r["prior"] != r["prior"] else f"{r['prior']:.4f}"
        print(f"| {r['method']} | {100 * r['accuracy']:.2f} % | {prior} | {r['seconds']:.0f} | {r['peak_mb']:.0f} |")


if __name__ == "__main__":
    main()
