"""Tables of the real-data suite (:mod:`benchmarks.real_suite`), with a ✓ / ✗ for each rule per cell.

::

    python -m benchmarks.real_tables benchmarks/raw/real_suite_test_<date>.jsonl            # print the tables
    python -m benchmarks.real_tables benchmarks/raw/real_suite_test_<date>.jsonl --write    # and write the doc

The rules, per (dataset, data kind, noise) cell:

- **never worse**: the corrected labels are at least as accurate as the given ones;
- **clean labels**: at 0 % noise, no more labels changed than cleanlab's ``CleanLearning(HGB)``
  changes (its flagged rows whose predicted label differs from the given one);
- **F1**: detection F1 at least the best peer's (target: in ≥ 80 % of the noisy cells, and above
  it on the median);
- **balanced accuracy** of ``predict`` on the held-out rows, against the best peer (target: at
  least the best peer's on the median);
- **minority share**: the rarest class's share among the corrected labels, against its true share.
"""

from __future__ import annotations

import argparse
import json
import math
from collections import defaultdict
from collections.abc import Iterable, Mapping, Sequence
from pathlib import Path
from statistics import median

from benchmarks.tables import replace_region_at_end

BEGIN, END = "<!-- real:begin -->", "<!-- real:end -->"
OURS = "labelclean"
PEERS = ("cleanlab_hgb", "cleanlab_logreg", "hgb", "network")
CEILINGS = ("clean_hgb", "clean_network")
PEER_NAMES = {
    "cleanlab_hgb": "cleanlab + HGB",
    "cleanlab_logreg": "cleanlab + LR",
    "hgb": "HGB",
    "network": "own net, plain",
    "clean_hgb": "HGB on clean labels",
    "clean_network": "own net on clean labels",
}


def load(paths: Iterable[Path]) -> list[dict]:
    records = []
    for path in paths:
        with Path(path).open() as fh:
            records += [json.loads(line) for line in fh if line.strip()]
    return [r for r in records if "error" not in r]


def cells(records: Sequence[Mapping]) -> dict[tuple, dict[str, Mapping]]:
    """``(dataset, kind, noise, seed) -> {method: record}`` (the last record of a method wins)."""
    out: dict[tuple, dict[str, Mapping]] = defaultdict(dict)
    for r in records:
        out[(r["dataset"], r["kind"], r["noise"], r["seed"])][r["method"]] = r
    for (dataset, kind, noise, seed), by in out.items():  # images: the pixel peers of the same rows and labels
        if kind == "images":
            for method, rec in out.get((dataset, "vectors", noise, seed), {}).items():
                if method != OURS:
                    by.setdefault(method, rec)
    return out


def judge(by_method: Mapping[str, Mapping]) -> dict | None:
    """The rules on one cell, or None when our record is missing."""
    ours = by_method.get(OURS)
    if ours is None:
        return None
    peers = {m: by_method[m] for m in PEERS if m in by_method and "f1" in by_method[m]}
    best_f1 = max(peers.items(), key=lambda kv: kv[1]["f1"], default=(None, None))
    best_bal = max(
        ((m, r) for m, r in by_method.items() if m in PEERS),
        key=lambda kv: kv[1]["balanced_accuracy"],
        default=(None, None),
    )
    out = {
        "f1": ours["f1"],
        "best_peer_f1": best_f1[1]["f1"] if best_f1[1] else math.nan,
        "best_peer_f1_name": best_f1[0],
        "bal": ours["balanced_accuracy"],
        "best_peer_bal": best_bal[1]["balanced_accuracy"] if best_bal[1] else math.nan,
        "best_peer_bal_name": best_bal[0],
        "pseudo": ours["pseudo_accuracy"],
        "given": ours["given_accuracy"],
        "changed": ours["n_changed"],
        "cleanlab_changed": by_method.get("cleanlab_hgb", {}).get("n_changed", math.nan),
        "ceiling_bal": max((by_method[m]["balanced_accuracy"] for m in CEILINGS if m in by_method), default=math.nan),
        "minority_true": ours["minority_true_share"],
        "minority_given": ours["minority_given_share"],
        "minority_pseudo": ours["minority_pseudo_share"],
        "seconds": ours["seconds"],
        "backbone": ours.get("backbone"),
    }
    out["never_worse"] = out["pseudo"] >= out["given"] - 1e-12
    out["f1_ok"] = out["f1"] >= out["best_peer_f1"] - 1e-12
    out["bal_ok"] = out["bal"] >= out["best_peer_bal"] - 1e-12
    out["clean_ok"] = out["changed"] <= out["cleanlab_changed"] if not math.isnan(out["cleanlab_changed"]) else None
    return out


def mark(ok: bool | None) -> str:
    return "–" if ok is None else ("✓" if ok else "✗")


def cell_table(judged: Mapping[tuple, Mapping]) -> str:
    head = (
        "| dataset | kind | noise | F1 ours | best peer F1 | | labels given → ours | never worse | "
        "bal. acc ours | best peer | | changed (cleanlab) | s |\n"
        "| --- | --- | --- | ---: | --- | :-: | --- | :-: | ---: | --- | :-: | --- | ---: |"
    )
    rows = []
    for (dataset, kind, noise, _seed), j in sorted(judged.items()):
        f1 = "–" if noise == "none" else f"{j['f1']:.3f}"
        peer_f1 = "–" if noise == "none" else f"{j['best_peer_f1']:.3f} ({PEER_NAMES.get(j['best_peer_f1_name'], '?')})"
        f1_mark = "–" if noise == "none" else mark(j["f1_ok"])
        changed = f"{j['changed']} ({j['cleanlab_changed']:.0f})" if noise == "none" else f"{j['changed']}"
        peer_bal = f"{j['best_peer_bal']:.3f} ({PEER_NAMES.get(j['best_peer_bal_name'], '?')})"
        clean_mark = " " + mark(j["clean_ok"]) if noise == "none" else ""
        rows.append(
            f"| {dataset} | {kind} | {noise} | {f1} | {peer_f1} | {f1_mark} | {j['given']:.3f} → {j['pseudo']:.3f} | "
            f"{mark(j['never_worse'])} | {j['bal']:.3f} | {peer_bal} | {mark(j['bal_ok'])} | {changed}{clean_mark} | "
            f"{j['seconds']:.1f} |"
        )
    return head + "\n" + "\n".join(rows)


def summary(judged: Mapping[tuple, Mapping]) -> tuple[str, dict]:
    noisy = [j for (d, k, n, s), j in judged.items() if n != "none"]
    clean = [j for (d, k, n, s), j in judged.items() if n == "none"]
    every = list(judged.values())
    figures = {
        "cells": len(every),
        "noisy_cells": len(noisy),
        "f1_win_share": sum(j["f1_ok"] for j in noisy) / max(len(noisy), 1),
        "median_f1_margin": median([j["f1"] - j["best_peer_f1"] for j in noisy]) if noisy else math.nan,
        "never_worse_noisy": sum(j["never_worse"] for j in noisy),
        "never_worse_clean": sum(j["never_worse"] for j in clean),
        "clean_ok": sum(bool(j["clean_ok"]) for j in clean),
        "median_bal_margin": median([j["bal"] - j["best_peer_bal"] for j in every]) if every else math.nan,
        "median_pseudo_gain": median([j["pseudo"] - j["given"] for j in noisy]) if noisy else math.nan,
    }
    f = figures
    rows = [
        (
            "F1 ≥ best peer, share of noisy cells (target ≥ 80 %)",
            f"{100 * f['f1_win_share']:.0f} % of {f['noisy_cells']}",
            f["f1_win_share"] >= 0.8,
        ),
        (
            "median F1 − best peer's F1, noisy cells (target > 0)",
            f"{f['median_f1_margin']:+.3f}",
            f["median_f1_margin"] > 0,
        ),
        (
            "corrected labels at least as accurate as the given ones, noisy cells",
            f"{f['never_worse_noisy']} of {len(noisy)}",
            f["never_worse_noisy"] == len(noisy),
        ),
        (
            "the same at 0 % noise (any change counts against)",
            f"{f['never_worse_clean']} of {len(clean)}",
            f["never_worse_clean"] == len(clean),
        ),
        (
            "0 % noise: changed no more labels than cleanlab + HGB",
            f"{f['clean_ok']} of {len(clean)}",
            f["clean_ok"] == len(clean),
        ),
        (
            "median balanced accuracy − best peer's (target ≥ 0)",
            f"{f['median_bal_margin']:+.3f}",
            f["median_bal_margin"] >= 0,
        ),
        ("median accuracy gain of the corrected labels, noisy cells", f"{f['median_pseudo_gain']:+.4f}", None),
    ]
    text = "| rule | measured | |\n| --- | --- | :-: |\n" + "\n".join(f"| {a} | {b} | {mark(c)} |" for a, b, c in rows)
    return text, figures


def minority_table(judged: Mapping[tuple, Mapping], threshold: float = 0.06) -> str:
    """Sets whose rarest class is under ``threshold`` of the rows: its share true / given / corrected."""
    rows = []
    for (dataset, _kind, noise, _seed), j in sorted(judged.items()):
        if j["minority_true"] < threshold:
            ok = abs(j["minority_pseudo"] - j["minority_true"]) <= max(
                0.01, abs(j["minority_given"] - j["minority_true"])
            )
            rows.append(
                f"| {dataset} | {noise} | {100 * j['minority_true']:.2f} % | {100 * j['minority_given']:.2f} % | "
                f"{100 * j['minority_pseudo']:.2f} % | {mark(ok)} |"
            )
    head = "| dataset | noise | true share | given | corrected | |\n| --- | --- | ---: | ---: | ---: | :-: |"
    return head + "\n" + "\n".join(rows)


def render(records: Sequence[Mapping], source: str) -> str:
    judged = {key: j for key, by in cells(records).items() if (j := judge(by)) is not None}
    text, _ = summary(judged)
    loads = [r["loadavg_before_after"][0] for r in records if "loadavg_before_after" in r]
    seeds = sorted({r["seed"] for r in records})
    return "\n\n".join(
        [
            f"Generated by `python -m benchmarks.real_suite` from `{source}` (split "
            f"{sorted({r['split'] for r in records})}, seeds {seeds}; load average before each fit "
            f"{min(loads):.2f}–{max(loads):.2f}).",
            "### Summary over cells\n\n" + text,
            "### Every cell\n\nF1 is the detection F1 of the flagged rows against the truly wrong labels (not defined "
            "at 0 % noise); *labels given → ours* is the accuracy of the given labels and of `pseudo_labels_`; "
            "*changed* counts labels changed (at 0 % noise, cleanlab + HGB's count in brackets).\n\n"
            + cell_table(judged),
            "### A rare class is neither erased nor inflated\n\nShare of the rarest class among the true, given and "
            "corrected labels, on the sets where it is under 6 % (✓: the corrected share is within 1 point of the "
            "truth, or no farther from it than the given share).\n\n" + minority_table(judged),
        ]
    )


def write_doc(results: Path, doc: Path) -> None:
    records = load([results])
    source = str(results.relative_to(doc.parent.parent)) if results.is_relative_to(doc.parent.parent) else str(results)
    doc.write_text(replace_region_at_end(doc.read_text(), render(records, source), BEGIN, END, heading="## Real data"))


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description="Tables of the real-data suite.")
    parser.add_argument("results", nargs="+", type=Path)
    parser.add_argument("--write", action="store_true", help="write docs/benchmarks.md (first results file)")
    args = parser.parse_args(argv)
    records = load(args.results)
    print(render(records, ", ".join(map(str, args.results))))
    if args.write:
        write_doc(args.results[0], Path(__file__).resolve().parent.parent / "docs" / "benchmarks.md")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
