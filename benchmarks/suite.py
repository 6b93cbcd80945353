"""The one-command benchmark suite: every table, peers included, on the same data and machine.

::

    python -m benchmarks                      # full mode: 60,000 rows, seed 0, all sections → docs/benchmarks.md
    python -m benchmarks --seeds 0,1,2        # each figure the median over three seeds, (min–max) beside it
    python -m benchmarks --quick              # smoke run: 6,000 rows, one seed, one setting of each kind
                                              #   → benchmarks/results/quick.md
    python -m benchmarks --only speed,pu      # some sections; the doc is rebuilt with the others' stored results
    python -m benchmarks --merge              # no fits: rebuild the doc from the stored JSON results

Each fit runs in a fresh child process (its seconds and peak memory are its own; the process
is forked from a server that has imported torch, scikit-learn and labelclean); fits run one
after another, never side by side. Every section's results are stored as JSON under
``benchmarks/results/suite/<mode>/`` (one file per section, the latest run of it, plus a
time-stamped copy); the full mode then writes the tables between the ``<!-- suite:begin -->``
and ``<!-- suite:end -->`` markers of ``docs/benchmarks.md`` (nothing else in that file is
touched) and a copy of the merged JSON to ``benchmarks/raw/suite_<date>.json``. The quick mode
writes ``benchmarks/results/quick.md`` / ``quick.json`` and leaves the docs alone unless
``--write-doc`` is given (its tables then carry a QUICK SMOKE RUN banner).
"""

from __future__ import annotations

import argparse
import concurrent.futures as cf
import datetime as dt
import json
import multiprocessing as mp
import os
import sys
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

from benchmarks import tables
from benchmarks.tables import (
    BAGGING,
    CLEANLAB,
    CT,
    CT_MLP,
    ELKANOTO,
    PLAIN,
    PU,
    SECTIONS,
    ST,
    ST_LOGREG,
    ST_MLP,
)

REPO = Path(__file__).resolve().parent.parent
RESULTS = REPO / "benchmarks" / "results"
DOC = REPO / "docs" / "benchmarks.md"
RAW = REPO / "benchmarks" / "raw"
FULL_ROWS = 60_000
QUICK_ROWS = 6_000
QUICK_PEER_EPOCHS = 5  # --quick: at most this many epochs per peer model (smoke run only)
NOISE_SETTINGS = ("sym20", "sym50", "sym80", "pair45")
SEMI_SETTINGS = ("labels1000", "labels100", "relabel80")
# --quick: one setting of each kind, so that every code path runs in a few minutes
QUICK_NOISE_SETTINGS = ("sym50", "pair45")
QUICK_SEMI_SETTINGS = ("labels100", "relabel80")
THREAD_VARS = ("OMP_NUM_THREADS", "MKL_NUM_THREADS", "OPENBLAS_NUM_THREADS")


def log(message: str) -> None:
    """Progress on stderr."""
    print(f"[suite {time.strftime('%H:%M:%S')}] {message}", file=sys.stderr, flush=True)


def child_context() -> mp.context.BaseContext:
    """Fresh processes forked from a server that has imported torch, scikit-learn and labelclean once.

    Each fit still gets a process of its own (its own ``ru_maxrss``, which counts those imports
    as a spawned process would), without paying seconds of imports per fit. The peers'
    libraries are imported by the fits that use them, so they count only there.
    """
    ctx = mp.get_context("forkserver")
    ctx.set_forkserver_preload(["numpy", "torch", "sklearn", "labelclean", "benchmarks.tasks"])
    return ctx


def in_child(fn: Callable[..., Any], *args: Any) -> Any:
    """``fn(*args)`` in a fresh child process; a crash of the child becomes an exception here."""
    with cf.ProcessPoolExecutor(max_workers=1, mp_context=child_context()) as pool:
        return pool.submit(fn, *args).result()


class Runner:
    """Runs the fits of one section one after another and keeps their records."""

    def __init__(self, section: str, args: argparse.Namespace, records_log: Path) -> None:
        self.section, self.args, self.records_log = section, args, records_log
        self.records: list[dict] = []

    def fit(self, setting: str, method: str, seed: int, **extra: Any) -> dict:
        """Run one fit in a child process, log it, keep its record and return it."""
        from benchmarks.tasks import run_fit

        spec = {
            "section": self.section,
            "setting": setting,
            "method": method,
            "seed": seed,
            "rows": self.args.rows,
            "threads": self.args.threads,
            **extra,
        }
        load_before = os.getloadavg()[0]
        try:
            record = in_child(run_fit, spec)
        except Exception as exc:  # the child died (killed, out of memory): record it, go on
            record = {k: spec[k] for k in ("section", "setting", "method", "seed")}
            record.update(n_train=spec["rows"], ours=method in (CT, CT_MLP, ST, PU), error=f"child died: {exc!r}")
        record["loadavg_before_after"] = [load_before, os.getloadavg()[0]]
        self.records.append(record)
        with self.records_log.open("a") as fh:
            fh.write(json.dumps(record, default=str) + "\n")
        if record.get("error"):
            log(f"{self.section} {setting} {method} seed {seed}: FAILED {record['error']}")
        else:
            log(
                f"{self.section} {setting} {method} seed {seed}: accuracy {100 * record['accuracy']:.2f} %, "
                f"{record['seconds']:.0f} s, peak {record.get('peak_mb', 0):.0f} MB"
            )
        return record


def peer_epochs(ct_record: dict | None, args: argparse.Namespace) -> int:
    """Epochs of each peer MLP model: those of each final CoTeachingFilter network (capped under --quick).

    When the CoTeachingFilter fit failed, ``max_epochs + refine_epochs`` of its defaults.
    """
    epochs = (ct_record or {}).get("epochs_per_model")
    if not epochs:
        from labelclean import CoTeachingFilter

        p = CoTeachingFilter().get_params()
        epochs = int(p["max_epochs"]) + int(p.get("refine_epochs", 0))
    return min(int(epochs), QUICK_PEER_EPOCHS) if args.quick else int(epochs)


def run_noisy(run: Runner, args: argparse.Namespace) -> dict:
    """Section 1: the four noise settings × CoTeachingFilter, plain training, cleanlab (configurable settings)."""
    from benchmarks.tasks import plain_params

    plain, unreviewed = plain_params()
    if unreviewed:
        log(
            f"WARNING: CoTeachingFilter has parameters {unreviewed} that PLAIN_PARAMS (benchmarks/tasks.py) was not "
            "reviewed for; if any turns on a stage, plain training must switch it off."
        )
    cl_settings = NOISE_SETTINGS if args.cleanlab_settings == "all" else tuple(args.cleanlab_settings.split(","))
    for setting in args.settings:
        for seed in args.seeds:
            ct = run.fit(setting, CT, seed)
            run.fit(setting, PLAIN, seed, params=plain)
            if setting in cl_settings:
                run.fit(setting, CLEANLAB, seed, peer_epochs=peer_epochs(ct, args))
    return {"plain_params": plain, "unreviewed_params": unreviewed, "cleanlab_settings": list(cl_settings)}


def run_speed(run: Runner, args: argparse.Namespace) -> dict:
    """Section 2: matmul peak; CoTeachingFilter (MLP) vs cleanlab at sym-50; scaling at ¼, ½ and all rows."""
    from benchmarks.tasks import matmul_peak

    matmul = in_child(matmul_peak, args.threads, args.quick)
    log(f"speed: float32 matmul peak {matmul['gflops']:.1f} GFLOP/s on {args.threads} threads")
    for seed in args.seeds:
        ct = run.fit("sym50", CT_MLP, seed)
        run.fit("sym50", CLEANLAB, seed, peer_epochs=peer_epochs(ct, args))
        for share in (4, 2):
            run.fit("scaling", CT_MLP, seed, rows=args.rows // share)
        if not ct.get("error"):  # all rows: the sym-50 fit above is the same fit
            run.records.append({**ct, "setting": "scaling"})
    return {"matmul": matmul}


def run_semi(run: Runner, args: argparse.Namespace) -> dict:
    """Section 3: SelfTrainer vs SelfTrainingClassifier (logistic regression, skorch MLP)."""
    from labelclean import SelfTrainer

    p = SelfTrainer().get_params()
    budget = {"peer_epochs": int(p["max_epochs"]), "min_steps": int(p["min_steps"])}
    if args.quick:
        budget["peer_epochs"] = min(budget["peer_epochs"], QUICK_PEER_EPOCHS)
    for setting in args.semi_settings:
        for seed in args.seeds:
            for method in (ST, ST_LOGREG, ST_MLP):
                run.fit(setting, method, seed, **budget)
    return {"peer_budget": budget}


def run_pu(run: Runner, args: argparse.Namespace) -> dict:
    """Section 4: PUClassifier vs pulearn's Elkan–Noto and bagging classifiers."""
    pu_rows = None if args.rows >= FULL_ROWS else args.rows
    for seed in args.seeds:
        for method in (PU, ELKANOTO, BAGGING):
            run.fit("even_odd", method, seed, pu_rows=pu_rows)
    return {}


RUNS = {"noisy": run_noisy, "speed": run_speed, "semi": run_semi, "pu": run_pu}


# ---------------------------------------------------------------------------
# Notes printed above each section's tables
# ---------------------------------------------------------------------------


def section_note(name: str, data: dict) -> str:
    """What the section measures and how, from what its run recorded."""
    extra = data.get("extra", {})
    if name == "noisy":
        plain = ", ".join(f"{k}={v!r}" for k, v in extra.get("plain_params", {}).items())
        cl = ", ".join(extra.get("cleanlab_settings", []))
        return (
            "MNIST training rows with labels flipped on purpose (`make_noisy_labels`, seeded), scored on the clean "
            "10,000 test images. **CoTeachingFilter** with default settings on the images as `(n, 28, 28)` arrays "
            "(its default CNN); **plain training** is the same estimator with every label-selecting stage off "
            f"(`CoTeachingFilter({plain})`, `PLAIN_PARAMS` in `benchmarks/tasks.py`); **cleanlab** is "
            "`CleanLearning(cv_n_folds=5)` around labelclean's MLP rebuilt in skorch (`benchmarks/peers.py`) on "
            "the flattened pixels, each of its models trained for as many epochs as each final CoTeachingFilter "
            "network (read from `history_`), with the batch size and learning rate `CoTeachingFilter` gives its "
            f'own MLP on these rows (`batch_size="auto"`: 512 rows, lr 4e-3), run at: {cl}. Precision / recall / '
            "F1: the flagged rows (`~clean_mask_`, cleanlab's `is_label_issue`) at finding the flipped labels. τ: the "
            "forget rate used."
        )
    if name == "speed":
        return (
            "Both on the flattened pixels (784 features) at symmetric 50 % noise, with the same architecture "
            "(784-256-256-10, batch norm, ReLU) and Adam with the batch size and learning rate that "
            'CoTeachingFilter\'s `batch_size="auto"` picks for its MLP on these rows (512 rows and 4e-3 from '
            "12,800 rows; `batch` and `lr` columns): `CoTeachingFilter` with its "
            "defaults (two networks), and cleanlab's `CleanLearning(cv_n_folds=5)` whose 5 fold models and final "
            "model each train for as many epochs as each final CoTeachingFilter network (its `history_` entries "
            "outside the warm-up, which trains throw-away networks on halves). Utilisation: training FLOPs counted "
            "analytically (forward 2·Σ in·out per row and layer; backward the same again for the weight "
            "gradients, plus the input gradients of every layer but the first, whose input is the data and gets "
            "none; two networks, the rows each `history_` epoch trained on, plus the warm-up's out-of-fold "
            "predictions; `benchmarks/throughput.py`) over the summed seconds of "
            "those epochs, against the best `torch.mm` throughput on large float32 square matrices with the same "
            "thread count; batch norm, activations and optimizer steps are not counted."
        )
    if name == "semi":
        budget = extra.get("peer_budget", {})
        return (
            "1,000 labels (100 a class) and 100 labels (10 a class) with the other training rows `-1`; relabel: 80 % "
            "of all training labels flipped symmetrically (`benchmarks.bench_self_training.make_targets`). "
            "**SelfTrainer** with default settings on the images (its default CNN), `strategy='relabel'` in the "
            "relabel "
            "setting (with 1,000 labels, 100 a class, its defaults consistency-train one network with a moving-average "
            "teacher; with 100 labels they train a teacher on the labeled rows and five noisy students); "
            "scikit-learn's `SelfTrainingClassifier` (its defaults: threshold 0.75, 10 rounds) around "
            "`LogisticRegression()` and around the skorch MLP on flattened pixels, which trains "
            f"{budget.get('peer_epochs', '?')} epochs per fit and at least {budget.get('min_steps', '?')} updates "
            "(SelfTrainer's own `max_epochs` / `min_steps`, read at run time). Training-row label accuracy: of the "
            "labels given to the unlabeled rows (semi-supervised) or of all corrected labels (relabel); "
            "precision / recall / F1 (relabel only): rows whose label was changed, at finding the flipped ones."
        )
    return (
        "Even digits positive; 1,000 of the even training images labeled, every other training row unlabeled; the "
        "class prior is not given (`benchmarks.bench_pu.pu_split`). **PUClassifier** with default settings on the "
        "images; pulearn's `ElkanotoPuClassifier(LogisticRegression(max_iter=1000), hold_out_ratio=0.1)` (prior "
        "p(s=1)/c) and `BaggingPuClassifier(LogisticRegression(max_iter=1000), n_estimators=10, max_samples=1000)` "
        "(balanced bags; no prior estimate) on the flattened pixels."
    )


# ---------------------------------------------------------------------------
# Storage and the document
# ---------------------------------------------------------------------------


def mode_dir(mode: str) -> Path:
    return RESULTS / "suite" / mode


def load_sections(mode: str) -> dict[str, dict]:
    """The latest stored result of each section for ``mode``."""
    out = {}
    for name in SECTIONS:
        path = mode_dir(mode) / f"{name}.json"
        if path.exists():
            out[name] = json.loads(path.read_text())
    return out


def render(sections: dict[str, dict]) -> str:
    """The marked region's Markdown for the stored sections."""
    notes = {name: section_note(name, data) for name, data in sections.items()}
    return tables.render_suite(sections, notes)


def atomic_write(path: Path, text: str) -> None:
    """Write ``text`` to ``path`` through a temporary file and a rename (never a half-written file)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.tmp{os.getpid()}")
    tmp.write_text(text)
    os.replace(tmp, path)


def publish(mode: str, write_doc: bool, doc: Path, only: Sequence[str] | None = None) -> str:
    """Merge the stored sections of ``mode`` (those in ``only`` when given) and write the outputs.

    Returns the rendered Markdown.
    """
    sections = {k: v for k, v in load_sections(mode).items() if only is None or k in only}
    if not sections:
        raise SystemExit(f"no stored results under {mode_dir(mode)}; run `python -m benchmarks` first.")
    body = render(sections)
    merged = json.dumps({"mode": mode, "sections": sections}, indent=1, default=str)
    if mode == "quick":
        atomic_write(RESULTS / "quick.md", body + "\n")
        atomic_write(RESULTS / "quick.json", merged)
        log(f"wrote {RESULTS / 'quick.md'} and quick.json")
    else:
        date = max(d.get("date", "") for d in sections.values())
        atomic_write(RAW / f"suite_{date}.json", merged)
        log(f"wrote {RAW / f'suite_{date}.json'}")
    if mode == "full" or write_doc:
        atomic_write(doc, tables.replace_region(doc.read_text(), body))
        log(f"wrote the marked region of {doc}")
    return body


def run_section(name: str, args: argparse.Namespace, command: str) -> None:
    """Run one section and store its JSON (latest + time-stamped copy)."""
    from benchmarks.machine import describe

    out_dir = mode_dir(args.mode)
    out_dir.mkdir(parents=True, exist_ok=True)
    run = Runner(name, args, out_dir / "records.jsonl")
    started = time.time()
    load_before = os.getloadavg()[0]
    log(f"section {name}: start ({args.mode}, {args.rows:,} rows, seeds {args.seeds}, {args.threads} threads)")
    extra = RUNS[name](run, args)
    data = {
        "section": name,
        "mode": args.mode,
        "date": dt.datetime.now(dt.timezone.utc).strftime("%Y-%m-%d"),
        "started": dt.datetime.fromtimestamp(started, dt.timezone.utc).isoformat(timespec="seconds"),
        "minutes": (time.time() - started) / 60,
        "loadavg": [load_before, os.getloadavg()[0]],
        "machine": describe(args.threads, REPO),
        "args": {
            "seeds": args.seeds,
            "rows": args.rows,
            "threads": args.threads,
            "quick": args.quick,
            "settings": args.settings if name == "noisy" else args.semi_settings if name == "semi" else None,
        },
        "command": command,
        "matmul": extra.pop("matmul", None),
        "extra": extra,
        "records": run.records,
    }
    text = json.dumps(data, indent=1, default=str)
    atomic_write(out_dir / f"{name}.json", text)
    stamp = time.strftime("%Y%m%dT%H%M%S", time.gmtime(started))
    atomic_write(out_dir / f"{name}_{stamp}.json", text)
    log(f"section {name}: done in {data['minutes']:.1f} min")


def parse_args(argv: Sequence[str] | None) -> argparse.Namespace:
    ap = argparse.ArgumentParser(
        prog="python -m benchmarks", description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    ap.add_argument("--quick", action="store_true", help=f"smoke run: {QUICK_ROWS:,} training rows, one seed")
    ap.add_argument("--only", default=",".join(SECTIONS), help=f"sections to run, comma-separated: {SECTIONS}")
    ap.add_argument("--merge", action="store_true", help="run nothing: rebuild the outputs from the stored JSON")
    ap.add_argument("--seeds", default="0", help="comma-separated seeds; figures are medians with (min–max)")
    ap.add_argument("--threads", type=int, default=2, help="torch (and BLAS) threads of every fit (default 2)")
    ap.add_argument("--rows", type=int, default=None, help="training rows (default 60,000; 6,000 with --quick)")
    ap.add_argument(
        "--settings",
        default=None,
        help=f"noise settings of section 1 (default: all; with --quick {','.join(QUICK_NOISE_SETTINGS)})",
    )
    ap.add_argument(
        "--semi-settings",
        default=None,
        help=f"settings of section 3 (default: all; with --quick {','.join(QUICK_SEMI_SETTINGS)})",
    )
    ap.add_argument(
        "--cleanlab-settings", default="sym50", help="section 1 settings with a cleanlab run, or 'all' (default sym50)"
    )
    ap.add_argument("--write-doc", action="store_true", help="with --quick: also write docs/benchmarks.md")
    ap.add_argument("--doc", type=Path, default=DOC, help=argparse.SUPPRESS)
    args = ap.parse_args(argv)
    args.mode = "quick" if args.quick else "full"
    args.seeds = [int(s) for s in args.seeds.split(",")]
    if args.quick and len(args.seeds) > 1:
        ap.error("--quick runs one seed; drop --seeds or run the full mode.")
    args.rows = args.rows or (QUICK_ROWS if args.quick else FULL_ROWS)
    args.only = [s.strip() for s in args.only.split(",") if s.strip()]
    unknown = sorted(set(args.only) - set(SECTIONS))
    if unknown:
        ap.error(f"unknown section(s) {unknown}; choose from {', '.join(SECTIONS)}.")
    for name, every, quick in (
        ("settings", NOISE_SETTINGS, QUICK_NOISE_SETTINGS),
        ("semi_settings", SEMI_SETTINGS, QUICK_SEMI_SETTINGS),
    ):
        given = getattr(args, name)
        chosen = [s.strip() for s in given.split(",")] if given else list(quick if args.quick else every)
        bad = sorted(set(chosen) - set(every))
        if bad:
            ap.error(f"unknown setting(s) {bad} for --{name.replace('_', '-')}; choose from {', '.join(every)}.")
        setattr(args, name, chosen)
    return args


def main(argv: Sequence[str] | None = None) -> int:
    """Run the requested sections (or none with ``--merge``) and write the outputs."""
    args = parse_args(argv)
    command = "python -m benchmarks " + " ".join(sys.argv[1:] if argv is None else argv)
    if not args.merge:
        for var in THREAD_VARS:  # inherited by every child: BLAS in scikit-learn on the same cores
            os.environ[var] = str(args.threads)
        from benchmarks.data import load_mnist

        load_mnist()  # fetch / unpack once, before the children read the cache
        load = os.getloadavg()[0]
        if load > 1.0:
            log(
                f"WARNING: the 1-minute load average is {load:.2f} before any fit: other work is using the cores, "
                "so the seconds will be inflated (fits on a busy machine are marked † in the tables)."
            )
        t0 = time.time()
        for name in args.only:
            run_section(name.strip(), args, command.strip())
        log(f"all sections done in {(time.time() - t0) / 60:.1f} min")
    # A quick run reports only what it ran; the full mode merges every section's latest stored result.
    only = args.only if args.quick and not args.merge else None
    body = publish(args.mode, args.write_doc, args.doc, only)
    print(body)
    return 0
