"""Compare candidate defaults on a validation split of MNIST's *training* rows (never the test set).

The filter or self-trainer is fitted on the first 50,000 training rows (noise injected, or
labels hidden) and scored on the last 10,000 training rows' true labels. ``--trace`` records
the CoTeachingFilter networks' validation accuracy after every epoch, to see which stage
helps. Jobs run in parallel processes (on a GPU machine: many workers, one device)::

    python -m benchmarks.explore --device cuda --workers 12 --out explore.jsonl
    python -m benchmarks.explore --jobs ct:sym80:base,ct:sym80:pw1 --workers 1

Also checks the CUDA path of every estimator when CUDA is present (``--cuda-check``).
"""

from __future__ import annotations

import argparse
import concurrent.futures as cf
import json
import multiprocessing as mp
import os
import time
import traceback

import numpy as np

NOISE = {
    "sym20": ("symmetric", 0.2),
    "sym50": ("symmetric", 0.5),
    "sym80": ("symmetric", 0.8),
    "pair45": ("pair", 0.45),
}

N_FIT = int(os.environ.get("EXPLORE_N_FIT", "50000"))  # fewer rows for a smoke run
SEED = int(os.environ.get("EXPLORE_SEED", "0"))  # noise, label split and estimator seed
CT_CONFIGS: dict[str, dict] = {
    "base": {},
    "pw1": {"pseudo_weight": 1.0},
    "pw1_t8": {"pseudo_weight": 1.0, "pseudo_threshold": 0.8},
    "warm500": {"_warmup_steps": 500},
    "warm500_pw1": {"_warmup_steps": 500, "pseudo_weight": 1.0},
    "ct15_pw1": {"max_epochs": 15, "pseudo_weight": 1.0},
    "jocor": {"method": "jocor"},
    "bs256_pw1": {"batch_size": 256, "lr": 2e-3, "pseudo_weight": 1.0},
    "bs256": {"batch_size": 256},
    "plain": {"forget_rate": 0.0, "refine_epochs": 0},
    "aff": {"augment": "affine"},
    "aff_ct15": {"augment": "affine", "max_epochs": 15},
    "tk10": {"num_gradual": 10},
    "cap50": {"forget_rate": 0.5},
    "cap65": {"forget_rate": 0.65},
    "plainref": {"forget_rate": 0.0},
    "post": {"refine_labels": "posterior"},
}
ST_CONFIGS: dict[str, dict] = {
    "base": {},
    "iter5": {"max_iter": 5},
    "ep8": {"max_epochs": 8},
    "width2": {"student_width": 2.0},
    "thr9": {"threshold": 0.9},
    "aff": {"augment": "affine"},
    "aff_ep8": {"augment": "affine", "max_epochs": 8},
    "aff_thr9": {"augment": "affine", "threshold": 0.9},
    "steps1500": {"min_steps": 1500},
    "share0": {"labeled_share": 0.0},
    "share34": {"labeled_share": 0.34},
    "pat2": {"patience": 2},
    "tep10": {"max_teacher_epochs": 10},
}


def _ct_job(setting: str, config: str, device: str, trace: bool) -> dict:
    import torch

    from benchmarks.data import load_mnist
    from labelclean import CoTeachingFilter, detection_scores, make_noisy_labels
    from labelclean._train import predict_proba_nets

    X, y, _, _ = load_mnist()
    X_fit, y_fit, X_val, y_val = X[:N_FIT], y[:N_FIT], X[50_000:], y[50_000:]
    kind, rate = NOISE[setting]
    y_noisy = make_noisy_labels(y_fit, rate, kind, random_state=SEED)
    params = dict(CT_CONFIGS[config])
    private = {k: params.pop(k) for k in list(params) if k.startswith("_")}
    X_val_t = torch.from_numpy(X_val[:, None])

    class Traced(CoTeachingFilter):
        def _epoch(self, phase, epoch, nets, *args, **kwargs):
            super()._epoch(phase, epoch, nets, *args, **kwargs)
            if trace:
                proba = predict_proba_nets(nets, X_val_t, self.device_)
                self.history_[-1]["val"] = round(float(np.mean(np.argmax(proba, 1) == y_val)), 4)

    f = Traced(random_state=SEED, device=device, **params)
    for k, v in private.items():
        setattr(f, k, v)
    t0 = time.perf_counter()
    f.fit(X_fit, y_noisy)
    seconds = time.perf_counter() - t0
    det = detection_scores(f.clean_mask_, y_noisy, y_fit)
    return {
        "job": f"ct:{setting}:{config}",
        "seed": SEED,
        "val_acc": round(float(f.score(X_val, y_val)), 4),
        "f1": round(det["f1"], 4),
        "noise_rate": round(f.noise_rate_, 4),
        "pseudo_acc": round(float(np.mean(f.pseudo_labels_ == y_fit)), 4),
        "seconds": round(seconds, 1),
        "trace": [(h["phase"][0], h.get("val")) for h in f.history_ if "val" in h],
    }


def _st_job(setting: str, config: str, device: str) -> dict:
    from benchmarks.bench_self_training import make_targets
    from benchmarks.data import load_mnist
    from labelclean.self_training import SelfTrainer

    X, y, _, _ = load_mnist()
    X_fit, y_fit, X_val, y_val = X[:N_FIT], y[:N_FIT], X[50_000:], y[50_000:]
    y_train = make_targets(setting, y_fit, SEED)
    t0 = time.perf_counter()
    st = SelfTrainer(relabel=setting == "relabel80", random_state=SEED, device=device, **ST_CONFIGS[config])
    st.fit(X_fit, y_train)
    return {
        "job": f"st:{setting}:{config}",
        "seed": SEED,
        "val_acc": round(float(st.score(X_val, y_val)), 4),
        "pseudo_acc": round(float(np.mean(st.pseudo_labels_ == y_fit)), 4),
        "seconds": round(time.perf_counter() - t0, 1),
    }


def run_job(spec: tuple[str, str, bool]) -> dict:
    import torch

    torch.set_num_threads(1)
    job, device, trace = spec
    kind, setting, config = job.split(":")
    try:
        if kind == "ct":
            return _ct_job(setting, config, device, trace)
        return _st_job(setting, config, device)
    except Exception:  # report and go on with the other jobs
        return {"job": job, "error": traceback.format_exc(limit=3)}


def cuda_check() -> dict:
    """Fit every estimator with ``device="auto"`` on CUDA: device used, outputs, repeatability."""
    import torch
    from sklearn.datasets import make_classification

    from labelclean import ContrastiveEncoder, CoTeachingFilter, PUClassifier, SelfTrainer

    X, y = make_classification(2000, n_features=20, n_informative=10, n_classes=3, random_state=0)
    X = X.astype(np.float32)
    out: dict = {"cuda": torch.cuda.is_available(), "name": torch.cuda.get_device_name(0)}
    y_semi = np.where(np.arange(len(y)) < 200, y, -1)
    y_pu = np.where((y == 0) & (np.arange(len(y)) < 1000), 1, 0)
    for name, make, target in [
        ("CoTeachingFilter", lambda: CoTeachingFilter(max_epochs=4, random_state=0), y),
        ("SelfTrainer", lambda: SelfTrainer(max_iter=1, random_state=0), y_semi),
        ("PUClassifier", lambda: PUClassifier(prior=0.33, random_state=0), y_pu),
    ]:
        torch.cuda.reset_peak_memory_stats()
        a = make().fit(X, target)
        b = make().fit(X, target)
        pa, pb = a.predict_proba(X), b.predict_proba(X)
        out[name] = {
            "device": str(a.device_),
            "train_acc": float(np.mean(a.predict(X) == (y if target is y_semi else target))),
            "max_abs_diff_same_seed": float(np.abs(pa - pb).max()),
            "peak_mib": torch.cuda.max_memory_allocated() / 2**20,
            "allocated_after_fit_mib": torch.cuda.memory_allocated() / 2**20,
        }
    enc = [ContrastiveEncoder(max_epochs=3, random_state=0).fit(X) for _ in range(2)]
    za, zb = enc[0].transform(X), enc[1].transform(X)
    out["ContrastiveEncoder"] = {
        "device": str(enc[0].device_),
        "shape": list(za.shape),
        "finite": bool(np.isfinite(za).all()),
        "max_abs_diff_same_seed": float(np.abs(za - zb).max()),
    }
    return out


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--device", default="auto")
    ap.add_argument("--workers", type=int, default=1)
    ap.add_argument("--jobs", required=True, help="comma-separated kind:setting:config, e.g. ct:sym80:pw1")
    ap.add_argument("--trace", action="store_true")
    ap.add_argument("--cuda-check", action="store_true")
    ap.add_argument("--out", default="explore.jsonl")
    args = ap.parse_args()
    from benchmarks.data import load_mnist

    load_mnist()  # unpack once, before the workers start
    with open(args.out, "w") as fh:
        if args.cuda_check:
            res = cuda_check()
            print(json.dumps(res), flush=True)
            fh.write(json.dumps(res) + "\n")
        specs = [(j, args.device, args.trace) for j in args.jobs.split(",")]
        with cf.ProcessPoolExecutor(args.workers, mp_context=mp.get_context("spawn")) as pool:
            for fut in cf.as_completed([pool.submit(run_job, s) for s in specs]):
                res = fut.result()
                print(json.dumps(res), flush=True)
                fh.write(json.dumps(res) + "\n")
                fh.flush()


if __name__ == "__main__":
    main()
