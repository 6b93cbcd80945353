"""ContrastiveEncoder on MNIST: does a label-free representation make the label cleaners stronger?

One encoder is fitted on the training rows' images (no labels; the default small CNN with
image augmentations). Its embeddings are then given to

1. a linear probe (``StandardScaler`` + ``LogisticRegression`` on the clean training labels),
   next to the same probe on the raw pixels;
2. ``CoTeachingFilter`` (defaults) at symmetric 80 % and pair 45 % label noise, next to
   ``CoTeachingFilter`` (defaults) on the raw images;
3. ``SelfTrainer`` (defaults) with 100 labels (10 per class), next to ``SelfTrainer`` on the
   raw images.

Because the encoder never sees a label and ``random_state`` makes it deterministic, one fit
serves every setting: ``make_pipeline(ContrastiveEncoder(random_state=s), CoTeachingFilter(random_state=s))``
refits the identical encoder and gives the identical result. Its seconds are counted once,
and reported beside every pipeline figure. The ``alternating`` row of the probe table fits a
second encoder with ``phases="alternating"``.

Accuracy is on the clean 10,000 test images (``--validation``: trained on rows of the first
50,000 training images, scored on the last 10,000 — how the settings were chosen).

    flock /tmp/labelclean-bench.lock python -m benchmarks.bench_contrastive
    flock /tmp/labelclean-bench.lock python -m benchmarks.bench_contrastive --rows 5000 --epochs 3 --settings probe
"""

from __future__ import annotations

import argparse
import json
import platform
import time
import warnings
from pathlib import Path

import numpy as np
import torch

from benchmarks.data import load_mnist
from labelclean import CoTeachingFilter, SelfTrainer, detection_scores, make_noisy_labels
from labelclean.contrastive import ContrastiveEncoder, corrupt_features, embedding_stats

SETTINGS = ("raw_probe", "probe", "alternating", "sym80", "pair45", "labels100")
PHASES_GRID = [("joint", {}), *[("alternating", {"margin": m}) for m in (0.5, 1.0, 1.4)]]
NOISE = {"sym80": (0.8, "symmetric"), "pair45": (0.45, "pair")}


def split(rows: int, validation: bool, seed: int):
    """Training subset (a fixed random draw of ``rows`` training images) and the evaluation rows."""
    X, y, X_test, y_test = load_mnist()
    if validation:
        X, y, X_test, y_test = X[:50_000], y[:50_000], X[50_000:], y[50_000:]
    take = np.sort(np.random.default_rng(seed).permutation(len(X))[:rows])
    return X[take], y[take], X_test, y_test


def linear_probe(Z: np.ndarray, y: np.ndarray, Z_eval: np.ndarray, y_eval: np.ndarray) -> dict:
    from sklearn.linear_model import LogisticRegression
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import StandardScaler

    t0 = time.perf_counter()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # lbfgs may stop at max_iter on raw pixels; the figure is what it is
        model = make_pipeline(StandardScaler(), LogisticRegression(max_iter=300)).fit(Z, y)
    return {"accuracy": float(model.score(Z_eval, y_eval)), "seconds": time.perf_counter() - t0}


def fit_encoder(X, X_eval, seed: int, device: str, **params) -> tuple[np.ndarray, np.ndarray, dict]:
    t0 = time.perf_counter()
    enc = ContrastiveEncoder(random_state=seed, device=device, **params).fit(X)
    seconds = time.perf_counter() - t0
    info = {"seconds": seconds, "params": params, "history": enc.history_}
    return enc.transform(X), enc.transform(X_eval), info


def run_filter(X, y_true, y_noisy, X_eval, y_eval, seed: int, device: str) -> dict:
    t0 = time.perf_counter()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        f = CoTeachingFilter(random_state=seed, device=device).fit(X, y_noisy)
    seconds = time.perf_counter() - t0
    det = detection_scores(f.clean_mask_, y_noisy, y_true)
    return {
        "accuracy": float(np.mean(f.predict(X_eval) == y_eval)),
        **{k: det[k] for k in ("precision", "recall", "f1")},
        "noise_rate_": f.noise_rate_,
        "seconds": seconds,
    }


def run_selftrainer(X, y_semi, X_eval, y_eval, seed: int, device: str) -> dict:
    t0 = time.perf_counter()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        st = SelfTrainer(random_state=seed, device=device).fit(X, y_semi)
    return {"accuracy": float(np.mean(st.predict(X_eval) == y_eval)), "seconds": time.perf_counter() - t0}


def hidden_circle(n: int, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """The synthetic task of ``tests/test_contrastive.py``: eight clusters on a circle, classes alternating.

    The 2-D latent circle is hidden in 24 rotated noisy features beside 8 features of pure
    noise; no hyperplane separates the classes.
    """
    rng = np.random.default_rng(seed)
    cluster = rng.integers(0, 8, n)
    angle = 2 * np.pi * cluster / 8
    latent = 3.0 * np.c_[np.cos(angle), np.sin(angle)] + rng.normal(0, 0.35, (n, 2))
    rotation, _ = np.linalg.qr(rng.normal(size=(24, 24)))
    x = latent @ rng.normal(size=(2, 24)) @ rotation + rng.normal(0, 0.5, (n, 24))
    return np.c_[x, rng.normal(0, 3.0, (n, 8))].astype(np.float32), cluster % 2


def end_geometry(enc: ContrastiveEncoder, X: np.ndarray, seed: int) -> dict:
    """``alignment``, ``uniformity``, ``within_margin`` of a fitted encoder on two fresh views of ``X`` (eval mode)."""
    gen = torch.Generator().manual_seed(seed)
    xb = torch.from_numpy(X)
    with torch.no_grad():
        z1, z2 = (
            enc.head_(enc.encoder_(corrupt_features(xb, gen, corruption=enc.corruption, noise=enc.noise, scale=scale)))
            for scale in (enc.encoder_[0].scale, enc.encoder_[0].scale)
        )
    return {k: float(v) for k, v in embedding_stats(z1, z2, enc.margin).items()}


def phases_on_circle(seeds: range) -> list[dict]:
    """Joint vs alternating phases (several margins) on the hidden circle: linear probe and end-of-fit geometry."""
    rows = []
    for phases, extra in PHASES_GRID:
        for seed in seeds:
            X, y = hidden_circle(1500, seed)
            enc = ContrastiveEncoder(phases=phases, random_state=seed, **extra).fit(X[:1000])
            probe = linear_probe(enc.transform(X[:1000]), y[:1000], enc.transform(X[1000:]), y[1000:])
            geometry = end_geometry(enc, X[:1000], seed)
            rows.append({"phases": phases, **extra, "seed": seed, "probe": probe["accuracy"], **geometry})
    return rows


def semi_labels(y: np.ndarray, per_class: int, seed: int) -> np.ndarray:
    rng = np.random.default_rng(seed)
    keep = np.concatenate([rng.choice(np.flatnonzero(y == c), per_class, replace=False) for c in range(10)])
    out = np.full_like(y, -1)
    out[keep] = y[keep]
    return out


def report_phases(seeds: range, json_path: str | None) -> list[dict]:
    rows = phases_on_circle(seeds)
    print("| phases | margin | linear probe (mean of 3 seeds) | alignment | uniformity | negatives within margin |")
    print("|---|---:|---:|---:|---:|---:|")
    for phases, extra in PHASES_GRID:
        sel = [r for r in rows if r["phases"] == phases and r.get("margin") == extra.get("margin")]
        mean = {k: float(np.mean([r[k] for r in sel])) for k in ("probe", "alignment", "uniformity", "within_margin")}
        spread = float(np.ptp([r["probe"] for r in sel]))
        print(
            f"| {phases} | {extra.get('margin', '—')} | {mean['probe']:.3f} (±{spread / 2:.3f}) | "
            f"{mean['alignment']:.3f} | {mean['uniformity']:.3f} | {mean['within_margin']:.3f} |"
        )
    if json_path:
        Path(json_path).write_text(json.dumps(rows, indent=1))
    return rows


def main(argv: list[str] | None = None) -> dict:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--rows", type=int, default=20_000, help="training images used (a fixed random subset)")
    ap.add_argument(
        "--epochs", type=int, default=10, help="encoder epochs (10 fits the 25-minute budget; 20 gave the same probe)"
    )
    ap.add_argument(
        "--settings",
        default=",".join(SETTINGS),
        help=f"comma-separated subset of {SETTINGS}, or 'phases' (joint vs alternating on a synthetic task, no MNIST)",
    )
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--threads", type=int, default=1, help="torch threads (1 on the shared benchmark machine)")
    ap.add_argument("--device", default="cpu")
    ap.add_argument("--validation", action="store_true", help="score on the last 10k training rows, not the test set")
    ap.add_argument("--set", action="append", default=[], metavar="KEY=VALUE", help="an encoder parameter (JSON)")
    ap.add_argument("--json", default=None, help="also write the results to this file")
    args = ap.parse_args(argv)
    torch.set_num_threads(args.threads)
    settings = [s.strip() for s in args.settings.split(",") if s.strip()]
    enc_params = {"max_epochs": args.epochs, **{k: json.loads(v) for k, v in (kv.split("=", 1) for kv in args.set)}}
    start = time.perf_counter()
    if settings == ["phases"]:
        return {"phases": report_phases(range(args.seed, args.seed + 3), args.json)}
    X, y, X_eval, y_eval = split(args.rows, args.validation, args.seed)
    eval_name = "validation (last 10k training rows)" if args.validation else "test (10k)"
    print(f"# {len(X)} training images, evaluated on {eval_name}; torch {torch.__version__}, {args.threads} thread(s),")
    print(f"# {args.device}, {platform.processor() or platform.machine()}; encoder {enc_params}")
    out: dict = {"rows": len(X), "eval": eval_name, "encoder": {}, "results": []}

    def record(setting: str, model: str, res: dict) -> None:
        out["results"].append({"setting": setting, "model": model, **res})
        figures = ", ".join(f"{k} {v:.4f}" if isinstance(v, float) else f"{k} {v}" for k, v in res.items())
        print(f"{setting:<10} {model:<38} {figures}", flush=True)

    Z, Z_eval, info = fit_encoder(X, X_eval, args.seed, args.device, **enc_params)
    out["encoder"]["joint"] = info
    enc_s = info["seconds"]
    print(
        f"encoder (joint) fitted in {enc_s:.1f} s; loss {info['history'][0]['loss']:.3f} -> "
        f"{info['history'][-1]['loss']:.3f}",
        flush=True,
    )
    flat, flat_eval = X.reshape(len(X), -1), X_eval.reshape(len(X_eval), -1)
    if "raw_probe" in settings:
        record("probe", "raw pixels + linear probe", linear_probe(flat, y, flat_eval, y_eval))
    if "probe" in settings:
        record("probe", "ContrastiveEncoder + linear probe", {**linear_probe(Z, y, Z_eval, y_eval), "encoder_s": enc_s})
    if "alternating" in settings:
        Za, Za_eval, ainfo = fit_encoder(X, X_eval, args.seed, args.device, phases="alternating", **enc_params)
        out["encoder"]["alternating"] = ainfo
        res = {**linear_probe(Za, y, Za_eval, y_eval), "encoder_s": ainfo["seconds"]}
        record("probe", "ContrastiveEncoder(alternating) + probe", res)
    for setting in [s for s in settings if s in NOISE]:
        rate, kind = NOISE[setting]
        y_noisy = make_noisy_labels(y, rate, kind, random_state=args.seed)
        record(setting, "CoTeachingFilter", run_filter(X, y, y_noisy, X_eval, y_eval, args.seed, args.device))
        res = run_filter(Z, y, y_noisy, Z_eval, y_eval, args.seed, args.device)
        record(setting, "ContrastiveEncoder + CoTeachingFilter", {**res, "encoder_s": enc_s})
    if "labels100" in settings:
        y_semi = semi_labels(y, 10, args.seed)
        record("labels100", "SelfTrainer", run_selftrainer(X, y_semi, X_eval, y_eval, args.seed, args.device))
        res = run_selftrainer(Z, y_semi, Z_eval, y_eval, args.seed, args.device)
        record("labels100", "ContrastiveEncoder + SelfTrainer", {**res, "encoder_s": enc_s})
    out["total_seconds"] = time.perf_counter() - start
    print(f"# total {out['total_seconds']:.0f} s")
    if args.json:
        Path(args.json).write_text(json.dumps(out, indent=1, default=float))
    return out


if __name__ == "__main__":
    main()
