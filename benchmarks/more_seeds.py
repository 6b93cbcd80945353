"""More seeds for labelclean's own estimators on chosen suite settings, outside the suite's tables.

    python -m benchmarks.more_seeds --jobs noisy:sym50,semi:labels1000 --seeds 1,2

A single-seed suite run leaves open how much a figure moves with the seed (the noise drawn, the
labeled rows chosen, the networks' initialisation and shuffling all follow it). This runs the
same fits as the suite, through its ``Runner`` (CoTeachingFilter on the noisy settings,
SelfTrainer on the semi-supervised ones, PUClassifier on ``pu:even_odd``), one after another,
each in a fresh child process, and appends one JSON line per fit to
``benchmarks/results/more_seeds.jsonl``; the peers are not rerun. Then it prints, per setting,
the accuracies by seed with their median and range.
"""

from __future__ import annotations

import argparse
import statistics
from pathlib import Path

from benchmarks.suite import FULL_ROWS, Runner
from benchmarks.tables import CT, PU, ST

OURS = {"noisy": CT, "semi": ST, "pu": PU}
OUT = Path(__file__).resolve().parent / "results" / "more_seeds.jsonl"


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--jobs", required=True, help="comma-separated section:setting, e.g. noisy:sym50,semi:labels1000")
    ap.add_argument("--seeds", default="1,2", help="comma-separated seeds (default 1,2; seed 0 is the suite's)")
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--out", type=Path, default=OUT)
    args = ap.parse_args(argv)
    seeds = [int(s) for s in args.seeds.split(",")]
    jobs = [tuple(job.split(":")) for job in args.jobs.split(",")]
    unknown = [":".join(j) for j in jobs if len(j) != 2 or j[0] not in OURS]
    if unknown:
        raise SystemExit(f"unknown jobs {unknown}; use section:setting with section one of {sorted(OURS)}")
    args.out.parent.mkdir(parents=True, exist_ok=True)
    fits = argparse.Namespace(rows=FULL_ROWS, threads=args.threads)
    results: dict[str, list[tuple[int, float]]] = {}
    for section, setting in jobs:
        runner = Runner(section, fits, args.out)  # logs each fit and appends its record to args.out
        for seed in seeds:
            record = runner.fit(setting, OURS[section], seed)
            if not record.get("error"):
                results.setdefault(f"{section}:{setting}", []).append((seed, 100 * record["accuracy"]))
    for key, values in results.items():
        acc = [a for _, a in values]
        by_seed = ", ".join(f"seed {s}: {a:.2f}" for s, a in values)
        print(f"{key}: {by_seed}; median {statistics.median(acc):.2f} (range {min(acc):.2f}–{max(acc):.2f})")


if __name__ == "__main__":
    main()
