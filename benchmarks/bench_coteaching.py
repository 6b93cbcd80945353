"""CoTeachingFilter on full MNIST against plain training of the same networks, in one run.

60,000 training rows with injected label noise, scored on the clean 10,000 test rows::

    python -m benchmarks.bench_coteaching                   # the four settings, seed 0
    python -m benchmarks.bench_coteaching --settings sym50 --seeds 0,1,2

Each fit runs in a fresh process so that its peak memory (``ru_maxrss``, which includes
the ~190 MB of MNIST itself) is its own. Prints a Markdown table and writes it, with the
raw figures as JSON, to ``benchmarks/results/``.
"""

from __future__ import annotations

import argparse
import json
import multiprocessing as mp
import platform
import resource
import time
from pathlib import Path

import numpy as np

SETTINGS = {
    "sym20": ("symmetric", 0.2),
    "sym50": ("symmetric", 0.5),
    "sym80": ("symmetric", 0.8),
    "pair45": ("pair", 0.45),
}
RUNNERS = {
    "CoTeachingFilter (defaults)": {},
    "plain training (same nets)": {"forget_rate": 0.0, "refine_epochs": 0},
}


def _fit(args: tuple[str, str, int, dict, dict]) -> dict:
    import torch

    from benchmarks.data import load_mnist
    from labelclean import CoTeachingFilter, detection_scores, make_noisy_labels

    setting, runner, seed, params, overrides = args
    torch.set_num_threads(overrides.pop("threads", torch.get_num_threads()))
    kind, rate = SETTINGS[setting]
    X, y, X_test, y_test = load_mnist()
    n = overrides.pop("n_rows", len(y))
    X, y = X[:n], y[:n]
    y_noisy = make_noisy_labels(y, rate, kind, random_state=seed)
    t0 = time.perf_counter()
    f = CoTeachingFilter(random_state=seed, **params, **overrides).fit(X, y_noisy)
    seconds = time.perf_counter() - t0
    det = detection_scores(f.clean_mask_, y_noisy, y)
    return {
        "setting": setting,
        "runner": runner,
        "seed": seed,
        "accuracy": float(f.score(X_test, y_test)),
        **det,
        "noise_rate_estimate": f.noise_rate_,
        "seconds": seconds,
        "peak_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024,
    }


def _table(rows: list[dict]) -> str:
    lines = [
        "| setting | method | test accuracy % | precision | recall | F1 | τ used | seconds | peak MB |",
        "|---|---|---|---|---|---|---|---|---|",
    ]
    for r in rows:
        lines.append(
            f"| {r['setting']} | {r['runner']} | {100 * r['accuracy']:.2f} | {r['precision']:.3f} | "
            f"{r['recall']:.3f} | {r['f1']:.3f} | {r['noise_rate_estimate']:.3f} | {r['seconds']:.0f} | "
            f"{r['peak_mb']:.0f} |"
        )
    return "\n".join(lines)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--settings", default=",".join(SETTINGS))
    ap.add_argument("--runners", default=",".join(RUNNERS))
    ap.add_argument("--seeds", default="0")
    ap.add_argument("--rows", type=int, default=60_000, help="training rows (fewer for a smoke run)")
    ap.add_argument("--params", default="{}", help="JSON overrides for CoTeachingFilter (tuning only)")
    ap.add_argument("--out", default="benchmarks/results/coteaching")
    args = ap.parse_args()
    from benchmarks.data import load_mnist

    load_mnist()
    ctx = mp.get_context("spawn")
    rows = []
    for setting in args.settings.split(","):
        for runner in args.runners.split(","):
            for seed in (int(s) for s in args.seeds.split(",")):
                overrides = {**json.loads(args.params), "n_rows": args.rows}
                with ctx.Pool(1) as pool:
                    res = pool.apply(_fit, ((setting, runner, seed, RUNNERS[runner], overrides),))
                print(json.dumps(res), flush=True)
                rows.append(res)
    table = _table(rows)
    header = (
        f"Machine: {platform.processor() or platform.machine()}, {mp.cpu_count()} cores; "
        f"numpy {np.__version__}; command: python -m benchmarks.bench_coteaching "
        f"--settings {args.settings} --seeds {args.seeds} --rows {args.rows}"
    )
    print(header + "\n\n" + table)
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.with_suffix(".json").write_text(json.dumps(rows, indent=1))
    out.with_suffix(".md").write_text(header + "\n\n" + table + "\n")


if __name__ == "__main__":
    main()
