"""Consensus of CIFAR-10N's three annotators: majority vote, Dawid-Skene, the model method, cleanlab's CROWDLAB.

::

    python -m benchmarks.consensus_bench --doc                  # all 50,000 training rows → docs/results/, docs
    python -m benchmarks.consensus_bench --rows 3000 --no-lock  # a smoke test on a stratified subset

The votes are ``random_label1..3`` of ``<data-dir>/cifar10n.parquet`` (see ``<data-dir>/README.md``),
the truth its clean ``label``. Side by side (:func:`run`):

- ``majority`` and ``dawid_skene`` of :class:`labelclean.consensus.AnnotatorConsensus` (votes only),
  and CIFAR-10N's own ``aggre_label``;
- ``model``: the votes with the out-of-fold probabilities of an image model affordable on a
  small CPU: random-patch features and a logistic regression
  (:func:`benchmarks.detection_bench.cifar_features`, :func:`benchmarks.detection_bench.oof_proba`),
  trained on the votes-only (Dawid-Skene) consensus;
- ``cleanlab.multiannotator.get_label_quality_multiannotator`` on the same probabilities
  (skipped with a message when cleanlab is missing); its rows are flagged by the same rule as
  ours (the expected number of wrong consensus labels, of lowest quality).

Each record: consensus noise (share of rows whose consensus is not the clean label), each
annotator's estimated accuracy beside its true one, precision / recall / F1 of the flagged rows
against "consensus wrong", seconds and the load average. One JSON line per record is appended
to ``docs/results/consensus_bench_<date>.jsonl``; ``--doc`` writes the table between
``<!-- consensus:begin -->`` and ``<!-- consensus:end -->`` at the end of ``docs/benchmarks.md``.
"""

from __future__ import annotations

import argparse
import contextlib
import datetime as dt
import json
import os
import sys
import time
from pathlib import Path
from typing import Any

import numpy as np

REPO = Path(__file__).resolve().parent.parent
DOC = REPO / "docs" / "benchmarks.md"
BEGIN, END = "<!-- consensus:begin -->", "<!-- consensus:end -->"
ANNOTATORS = ("random_label1", "random_label2", "random_label3")


def log(message: str) -> None:
    print(f"[consensus_bench {time.strftime('%H:%M:%S')}] {message}", file=sys.stderr, flush=True)


def load(data_dir: Path, rows: int, seed: int, *, images: bool) -> dict[str, Any]:
    """The training rows (all, or a stratified sample): votes, truth, ``aggre_label``, and decoded images if asked."""
    import io

    import pyarrow.parquet as pq

    from benchmarks.real_data import stratified_sample

    columns = ["split", "label", "aggre_label", *ANNOTATORS] + (["image"] if images else [])
    table = pq.read_table(data_dir / "cifar10n.parquet", columns=columns)
    train = np.flatnonzero(np.asarray(table.column("split").to_pylist()) == "train")
    truth = table.column("label").to_numpy()[train]
    keep = train[stratified_sample(truth, rows, seed)]
    out: dict[str, Any] = {
        "truth": table.column("label").to_numpy()[keep],
        "aggre": table.column("aggre_label").take(keep).to_numpy(),
        "votes": np.column_stack([table.column(a).take(keep).to_numpy() for a in ANNOTATORS]).astype(np.int64),
    }
    if images:
        from PIL import Image

        raw = table.column("image").take(keep).to_pylist()
        pixels = np.stack([np.asarray(Image.open(io.BytesIO(b)).convert("RGB")) for b in raw])
        out["images"] = (pixels.transpose(0, 3, 1, 2).astype(np.float32) / 255.0).copy()
    return out


def score(name: str, consensus: np.ndarray, flagged: np.ndarray | None, accuracy, data: dict, seconds: float) -> dict:
    """One record: noise of the consensus, annotator accuracy error, flags against "consensus wrong"."""
    truth, votes = data["truth"], data["votes"]
    wrong = consensus != truth
    true_acc = (votes == truth[:, None]).mean(axis=0)
    rec: dict[str, Any] = {
        "method": name,
        "rows": int(len(truth)),
        "noise": float(wrong.mean()),
        "true_accuracy": [round(float(a), 4) for a in true_acc],
        "estimated_accuracy": None if accuracy is None else [round(float(a), 4) for a in accuracy],
        "accuracy_error": None if accuracy is None else float(np.max(np.abs(np.asarray(accuracy) - true_acc))),
        "seconds": round(seconds, 2),
        "loadavg": [round(x, 2) for x in os.getloadavg()],
    }
    if flagged is not None:
        tp = int((flagged & wrong).sum())
        precision = tp / max(1, int(flagged.sum()))
        recall = tp / max(1, int(wrong.sum()))
        rec.update(
            flagged=int(flagged.sum()),
            precision=precision,
            recall=recall,
            f1=0.0 if tp == 0 else 2 * precision * recall / (precision + recall),
        )
    return rec


def votes_only(data: dict) -> list[dict]:
    from labelclean.consensus import AnnotatorConsensus

    records = [score("aggre_label (CIFAR-10N)", data["aggre"], None, None, data, 0.0)]
    for method in ("majority", "dawid_skene"):
        t0 = time.perf_counter()
        est = AnnotatorConsensus(method=method).fit(None, data["votes"])
        seconds = time.perf_counter() - t0
        records.append(score(method, est.consensus_labels_, ~est.clean_mask_, est.annotator_accuracy_, data, seconds))
    return records


def with_model(data: dict, seed: int) -> list[dict]:
    """The model method and cleanlab's CROWDLAB on the same out-of-fold probabilities."""
    from benchmarks.detection_bench import cifar_features, cifar_model, oof_proba
    from labelclean.consensus import AnnotatorConsensus, flag_rows

    t0 = time.perf_counter()
    features = cifar_features(data["images"], seed=seed)
    start = AnnotatorConsensus(method="dawid_skene").fit(None, data["votes"]).consensus_labels_
    proba = oof_proba(cifar_model(seed), features, start, seed)
    model_seconds = time.perf_counter() - t0
    log(f"image model: {len(proba)} rows, out-of-fold accuracy {np.mean(proba.argmax(1) == data['truth']):.3f}")
    t0 = time.perf_counter()
    est = AnnotatorConsensus(random_state=seed).fit(None, data["votes"], pred_probs=proba)
    seconds = time.perf_counter() - t0
    rec = score("model (labelclean)", est.consensus_labels_, ~est.clean_mask_, est.annotator_accuracy_, data, seconds)
    rec.update(model_seconds=round(model_seconds, 2), model_accuracy=float(np.mean(proba.argmax(1) == data["truth"])))
    records = [rec]
    try:
        import pandas as pd
        from cleanlab.multiannotator import get_label_quality_multiannotator
    except ImportError:
        log("cleanlab is not installed: its CROWDLAB row is skipped")
        return records
    t0 = time.perf_counter()
    frame = pd.DataFrame(data["votes"], columns=list(ANNOTATORS)).astype(float)
    out = get_label_quality_multiannotator(frame, proba, verbose=False)
    seconds = time.perf_counter() - t0
    quality = out["label_quality"]["consensus_quality_score"].to_numpy()
    consensus = out["label_quality"]["consensus_label"].to_numpy()
    stats = out["annotator_stats"].reindex(list(ANNOTATORS))
    rec = score(
        "cleanlab get_label_quality_multiannotator",
        consensus,
        flag_rows(quality, "auto"),
        stats["annotator_quality"].to_numpy(),
        data,
        seconds,
    )
    rec["note"] = "estimated_accuracy is cleanlab's annotator_quality score; flags: the same rule as ours"
    return [*records, rec]


def _formatter(r: dict):
    def f(key: str) -> str:
        return "" if r.get(key) is None else f"{r[key]:.3f}"

    return f


def table(records: list[dict]) -> str:
    lines = [
        "| method | rows | consensus noise | annotator accuracy, max error | flag precision | recall | F1 | seconds |",
        "| --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: |",
    ]
    for r in records:
        f = _formatter(r)
        lines.append(
            f"| {r['method']} | {r['rows']:,} | {r['noise']:.2%} | {f('accuracy_error')} | {f('precision')} | "
            f"{f('recall')} | {f('f1')} | {r['seconds']:.1f} |"
        )
    return "\n".join(lines)


def write_doc(text: str, body: str) -> str:
    """``text`` with ``body`` between :data:`BEGIN` and :data:`END`; the markers are appended when missing."""
    from benchmarks.tables import replace_region_at_end

    return replace_region_at_end(text, body, BEGIN, END)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--data-dir", default=str(REPO.parent / "shared" / "data"), help="folder of cifar10n.parquet")
    parser.add_argument("--rows", type=int, default=50_000, help="training rows (stratified sample)")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--votes-only", action="store_true", help="no image model, no cleanlab")
    parser.add_argument("--no-lock", action="store_true", help="do not wait for the machine's benchmark lock")
    parser.add_argument("--doc", action="store_true", help="write the table into docs/benchmarks.md")
    parser.add_argument("--out", default=None, help="JSON lines file [docs/results/consensus_bench_<date>.jsonl]")
    args = parser.parse_args(argv)
    data_dir = Path(args.data_dir)
    if not (data_dir / "cifar10n.parquet").exists():
        raise SystemExit(f"no cifar10n.parquet in {data_dir}; pass --data-dir.")
    out = Path(args.out or REPO / "docs" / "results" / f"consensus_bench_{dt.date.today():%Y-%m-%d}.jsonl")
    from benchmarks.real_suite import bench_lock

    with contextlib.nullcontext() if args.no_lock else bench_lock():
        t0 = time.perf_counter()
        data = load(data_dir, args.rows, args.seed, images=not args.votes_only)
        log(f"loaded {len(data['truth']):,} rows in {time.perf_counter() - t0:.0f} s")
        records = votes_only(data)
        if not args.votes_only:
            records += with_model(data, args.seed)
    with out.open("a") as fh:
        for r in records:
            fh.write(json.dumps({"bench": "consensus", "seed": args.seed, **r}) + "\n")
    body = table(records)
    print(body)
    if args.doc:
        DOC.write_text(write_doc(DOC.read_text(), "### Consensus of CIFAR-10N's three annotators\n\n" + body + "\n"))
    return 0


if __name__ == "__main__":
    sys.exit(main())
