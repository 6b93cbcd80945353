"""Semi-supervised and positive–unlabeled learning on the real data of the suite, with peers side by side.

::

    python -m benchmarks.real_semi --split validation --seeds 100 --datasets sonar,vote --no-lock   # a quick look
    python -m benchmarks.real_semi --split test --seeds 0 --doc          # every table and the text set → the doc
    python -m benchmarks.real_semi --split test --seeds 0 --mnist --cifar --doc   # with the pixel sets

Every dataset of ``<data-dir>/tabular`` (the text set as TF-IDF → SVD vectors,
:func:`benchmarks.real_data.text_vectors`) is split per seed as in :mod:`benchmarks.real_suite`
(:func:`~benchmarks.real_suite.split_rows`: 70 / 30, ``--split validation`` splits the training
rows again, so the test rows are never read while defaults are chosen). Options: MNIST (a
subsample, as images and as 784-pixel rows) and CIFAR-10N's clean labels (a subsample), as
:func:`~benchmarks.real_suite.mnist_cells` / :func:`~benchmarks.real_suite.cifar_cells` draw them.

Two tasks, on the training rows only:

- **semi** (:class:`labelclean.SelfTrainer`): 1 %, 5 % and 20 % of the training rows keep their
  label (stratified, at least 2 a class, every row of a class with fewer), the rest are ``-1``.
  Peers: scikit-learn's ``SelfTrainingClassifier`` around ``HistGradientBoostingClassifier`` and
  around a logistic regression, ``LabelSpreading(kernel="knn")``, and the same learner as ours
  on the labeled rows alone (``SelfTrainer(strategy=NoisyStudent(max_iter=0))``); the ceiling is gradient boosting on
  every true label.
- **pu** (:class:`labelclean.PUClassifier`): one class is the positive class, 10 % and 50 % of
  its training rows are labeled (at least 4, SCAR: at random), every other row is unlabeled and
  the prior is not given. Binary sets: the minority and the majority class in turn; multi-class
  sets: three classes at most, to keep a CPU run affordable: the largest, the smallest and the
  middle one by training count. Peers: pulearn's ``ElkanotoPuClassifier`` around gradient
  boosting and around a logistic regression, ``BaggingPuClassifier`` (100 decision trees, each on
  as many unlabeled rows as there are labeled positives) and ``NNPUClassifier`` (pulearn's
  linear nnPU; it needs the prior, so it gets pulearn's own ``ScarEMPriorEstimator``); the
  ceiling is gradient boosting on the true positive/negative labels. The estimated prior
  ``class_prior_`` and its interval ``class_prior_interval_`` are scored against the true
  positive share of the training rows.

Our estimators get the data as a user has it (DataFrames with strings and nulls); the peers get
numbers: the one-hot / imputed view of a :class:`labelclean.tabular.TablePlan` learnt on the
training rows (``dense()``), standardized for the linear and neighbour models. Score: balanced
accuracy of ``predict`` on the held-out rows (for PU against the binary truth). Records are JSON
lines in ``benchmarks/raw/real_semi_<split>_<date>.jsonl`` (or ``--out``); the run holds the
machine's benchmark lock (:func:`~benchmarks.real_suite.bench_lock`) unless ``--no-lock``;
``--doc`` writes the tables between ``<!-- semi:begin -->`` / ``<!-- semi:end -->`` and
``<!-- pu:begin -->`` / ``<!-- pu:end -->`` of ``docs/benchmarks.md``.
"""

from __future__ import annotations

import argparse
import contextlib
import datetime as dt
import json
import math
import os
import time
import traceback
import warnings
from collections import defaultdict
from collections.abc import Iterable, Iterator, Mapping, Sequence
from pathlib import Path
from statistics import median
from typing import Any

import numpy as np

from benchmarks import real_data
from benchmarks.real_suite import balanced_accuracy, bench_lock, cifar_cells, log, mnist_cells, split_rows, take
from benchmarks.tables import replace_region_at_end

REPO = Path(__file__).resolve().parent.parent
OURS = "labelclean"
#: The estimators' networks (the earlier default on every data kind): the comparison that chose the backbone.
OURS_NETWORK = "labelclean_network"
SEMI_FRACTIONS = (0.01, 0.05, 0.20)
PU_FRACTIONS = (0.10, 0.50)
#: Fewest labeled rows a class keeps (semi), fewest labeled positives (PU).
MIN_LABELED, MIN_POSITIVES = 2, 4
SEMI_METHODS = (OURS, OURS_NETWORK, "labeled_only", "st_hgb", "st_logreg", "label_spreading", "oracle")
#: Runs only when named in ``--methods``: self-training without the guard, to choose the guard on validation rows.
SEMI_EXTRA = ("unguarded",)
SEMI_PEERS = ("labeled_only", "st_hgb", "st_logreg", "label_spreading")
PU_METHODS = (OURS, OURS_NETWORK, "elkanoto_hgb", "elkanoto_logreg", "bagging_pu", "pulearn_nnpu", "oracle")
PU_PEERS = ("elkanoto_hgb", "elkanoto_logreg", "bagging_pu", "pulearn_nnpu")
#: Gradient boosting is left out on pixels (too slow for a CPU run, as in the noisy-label suite).
PIXEL_SKIP = ("st_hgb", "elkanoto_hgb", "oracle", OURS_NETWORK)
PEER_NAMES = {
    "labeled_only": "ours, labeled rows only",
    "st_hgb": "SelfTraining(HGB)",
    "st_logreg": "SelfTraining(LR)",
    "label_spreading": "LabelSpreading(knn)",
    "elkanoto_hgb": "Elkan-Noto(HGB)",
    "elkanoto_logreg": "Elkan-Noto(LR)",
    "bagging_pu": "BaggingPU(trees)",
    "pulearn_nnpu": "pulearn nnPU (linear)",
    "oracle": "HGB on true labels",
}
SEMI_BEGIN, SEMI_END = "<!-- semi:begin -->", "<!-- semi:end -->"
PU_BEGIN, PU_END = "<!-- pu:begin -->", "<!-- pu:end -->"


# ---------------------------------------------------------------------------
# Data and labels
# ---------------------------------------------------------------------------


def table_data(name: str, data_dir: Path, split: str, seed: int) -> dict:
    """One table (or the text set) split as the noisy-label suite splits it; labels encoded 0..K-1."""
    ds = real_data.load_table(name, data_dir)
    classes, y_all = np.unique(ds.y, return_inverse=True)
    train, test = split_rows(y_all, split, seed)
    X, X_test = take(ds.X, train), take(ds.X, test)
    if ds.kind == "text":
        X, X_test = real_data.text_vectors(X["text"], [X_test["text"]], seed)
    return dict(dataset=name, kind=ds.kind, X=X, y=y_all[train], X_test=X_test, y_test=y_all[test], classes=classes)


def pixel_data(which: str, data_dir: Path, split: str, seed: int) -> Iterator[dict]:
    """MNIST (images and pixel rows) or CIFAR-10N's clean labels, subsampled as the noisy-label suite does."""
    cells = mnist_cells(split, seed, ["none"]) if which == "mnist" else cifar_cells(data_dir, split, seed, ["none"])
    for cell in cells:
        yield {k: cell[k] for k in ("dataset", "kind", "X", "y", "X_test", "y_test")}


def semi_labels(y: np.ndarray, fraction: float, seed: int) -> np.ndarray:
    """``y`` with all but ``fraction`` of each class's rows set to ``-1`` (at least 2 labeled a class)."""
    rng = np.random.default_rng(seed)
    out = np.full(len(y), -1, dtype=np.int64)
    for c in np.unique(y):
        members = rng.permutation(np.flatnonzero(y == c))
        n = min(len(members), max(MIN_LABELED, int(round(fraction * len(members)))))
        out[members[:n]] = c
    return out


def pu_classes(y: np.ndarray) -> list[int]:
    """Positive classes to try: both classes of a binary set; the largest, smallest and a middle class otherwise."""
    counts = np.bincount(y)
    present = np.flatnonzero(counts)
    order = present[np.argsort(counts[present], kind="stable")]  # smallest first
    if len(order) <= 2:
        return [int(c) for c in order]
    picks = [order[-1], order[0], order[len(order) // 2]]
    return list(dict.fromkeys(int(c) for c in picks))


def pu_labels(y: np.ndarray, positive: int, fraction: float, seed: int) -> np.ndarray:
    """``s``: 1 for ``fraction`` of the positive rows (at random, at least 4, never all), 0 elsewhere."""
    rng = np.random.default_rng(seed)
    members = rng.permutation(np.flatnonzero(y == positive))
    n = min(len(members) - 1, max(MIN_POSITIVES, int(round(fraction * len(members)))))
    s = np.zeros(len(y), dtype=np.int64)
    s[members[:n]] = 1
    return s


def numeric_views(X: Any, X_test: Any) -> tuple[np.ndarray, np.ndarray]:
    """Numbers for the peers: a TablePlan's one-hot / imputed ``dense()`` view, learnt on the training rows."""
    if hasattr(X, "columns"):
        from labelclean.tabular import TablePlan

        plan = TablePlan.fit(X)
        return plan.dense(X).astype(np.float64), plan.dense(X_test).astype(np.float64)
    return (
        np.asarray(X, dtype=np.float64).reshape(len(X), -1),
        np.asarray(X_test, dtype=np.float64).reshape(len(X_test), -1),
    )


# ---------------------------------------------------------------------------
# Methods
# ---------------------------------------------------------------------------


def _hgb(seed: int) -> Any:
    from sklearn.ensemble import HistGradientBoostingClassifier

    return HistGradientBoostingClassifier(random_state=seed)


def _logreg() -> Any:
    from sklearn.linear_model import LogisticRegression
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import StandardScaler

    return make_pipeline(StandardScaler(), LogisticRegression(max_iter=1000))


def run_semi(method: str, cell: dict, y_semi: np.ndarray, seed: int) -> dict:
    """Fit ``method`` on the cell's training rows with ``y_semi`` (``-1`` unlabeled); its test predictions."""
    if method in (OURS, OURS_NETWORK, "labeled_only"):
        from labelclean import NoisyStudent, SelfTrainer

        params = {"strategy": NoisyStudent(max_iter=0)} if method == "labeled_only" else {}
        if method == OURS_NETWORK:
            params["estimator"] = "network"
        model = SelfTrainer(random_state=seed, **params).fit(cell["X"], y_semi)
        guard = [h for h in model.history_ if h.get("phase") == "guard"]
        extra = {"guard": {k: guard[-1].get(k) for k in ("labeled_only", "self_trained", "folds")}} if guard else {}
        return {"pred": model.predict(cell["X_test"]), "backbone": model.backbone_, **extra}
    if method == "unguarded":  # the guard's other arm, for choosing the guard on validation rows
        from labelclean import NoisyStudent, SelfTrainer

        model = SelfTrainer(random_state=seed, strategy=NoisyStudent(guard=False)).fit(cell["X"], y_semi)
        return {"pred": model.predict(cell["X_test"]), "backbone": model.backbone_}
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import StandardScaler
    from sklearn.semi_supervised import LabelSpreading, SelfTrainingClassifier

    Xn, Xn_test = cell["numeric"]
    if method == "oracle":
        return {"pred": _hgb(seed).fit(Xn, cell["y"]).predict(Xn_test)}
    if method == "st_hgb":
        model = SelfTrainingClassifier(_hgb(seed))
    elif method == "st_logreg":
        model = SelfTrainingClassifier(_logreg())
    elif method == "label_spreading":
        model = make_pipeline(StandardScaler(), LabelSpreading(kernel="knn"))
    else:
        raise ValueError(f"unknown semi-supervised method {method!r}")
    return {"pred": model.fit(Xn, y_semi).predict(Xn_test)}


def run_pu(method: str, cell: dict, s: np.ndarray, y_bin: np.ndarray, seed: int) -> dict:
    """Fit ``method`` on labeled positives ``s`` (1) and unlabeled rows (0); test predictions and prior estimate."""
    if method in (OURS, OURS_NETWORK):
        from labelclean import PUClassifier

        params = {"estimator": "network", "method": "nnpu"} if method == OURS_NETWORK else {}
        model = PUClassifier(random_state=seed, **params).fit(cell["X"], s)
        low, high = model.class_prior_interval_
        return {
            "pred": model.predict(cell["X_test"]),
            "prior_estimate": float(model.class_prior_),
            "prior_low": float(low),
            "prior_high": float(high),
            "backbone": model.backbone_,
            "pu_method": model.method_,
        }
    Xn, Xn_test = cell["numeric"]
    if method == "oracle":
        return {"pred": _hgb(seed).fit(Xn, y_bin).predict(Xn_test)}
    from pulearn import BaggingPuClassifier, ElkanotoPuClassifier, NNPUClassifier, ScarEMPriorEstimator
    from sklearn.linear_model import LogisticRegression
    from sklearn.preprocessing import StandardScaler

    if method in ("elkanoto_hgb", "elkanoto_logreg"):
        base = _hgb(seed) if method == "elkanoto_hgb" else _logreg()
        model = ElkanotoPuClassifier(base, hold_out_ratio=0.1, random_state=seed).fit(Xn, s)
        return {
            "pred": (model.predict(Xn_test) > 0.5).astype(np.int64),
            "prior_estimate": float(min(1.0, s.mean() / model.c)),
        }
    if method == "bagging_pu":
        model = BaggingPuClassifier(n_estimators=100, max_samples=int(s.sum()), n_jobs=1, random_state=seed)
        model.fit(Xn, s)
        return {"pred": (model.predict_proba(Xn_test)[:, 1] >= 0.5).astype(np.int64)}
    if method == "pulearn_nnpu":
        scaler = StandardScaler().fit(Xn)
        Xs, Xs_test = scaler.transform(Xn), scaler.transform(Xn_test)
        prior = float(ScarEMPriorEstimator(estimator=LogisticRegression(max_iter=1000)).fit(Xs, s).pi_)
        prior = float(np.clip(prior, s.mean() + 1e-3, 1 - 1e-3))
        model = NNPUClassifier(prior=prior, random_state=seed).fit(Xs, s)
        return {"pred": (model.predict(Xs_test) == 1).astype(np.int64), "prior_estimate": prior}
    raise ValueError(f"unknown PU method {method!r}")


def _record(cell: dict, task: str, setting: str, method: str, seed: int, split: str) -> dict:
    return dict(
        task=task,
        dataset=cell["dataset"],
        kind=cell["kind"],
        setting=setting,
        method=method,
        seed=seed,
        split=split,
        n_train=len(cell["y"]),
        n_test=len(cell["y_test"]),
        n_classes=int(len(np.unique(cell["y"]))),
    )


def _run_one(rec: dict, fit, out: Any) -> dict:
    load_before = os.getloadavg()[0]
    t0 = time.perf_counter()
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            rec.update(fit())
        rec["seconds"] = time.perf_counter() - t0
    except Exception as exc:  # one failed fit must not cost the rest of the run
        rec.update(error=f"{type(exc).__name__}: {exc}", traceback=traceback.format_exc())
    rec["loadavg_before_after"] = [load_before, os.getloadavg()[0]]
    out.write(json.dumps(rec, default=float) + "\n")
    out.flush()
    detail = rec.get("error") or f"bal.acc {rec['balanced_accuracy']:.3f} {rec['seconds']:.1f}s"
    if "prior_estimate" in rec and "error" not in rec:
        detail += f" prior {rec['prior_estimate']:.3f} (true {rec['prior_true']:.3f})"
    log(f"{rec['task']} {rec['dataset']}/{rec['kind']}/{rec['setting']} {rec['method']}: {detail}")
    return rec


def semi_cells(cell: dict, methods: Sequence[str], seed: int, split: str, out: Any) -> list[dict]:
    records = []
    for fraction in SEMI_FRACTIONS:
        y_semi = semi_labels(cell["y"], fraction, seed)
        setting = f"{100 * fraction:g}%"
        for method in methods:
            if cell["kind"] in ("images", "vectors") and method in PIXEL_SKIP:
                continue
            if cell["kind"] == "images" and method not in (OURS, "labeled_only"):
                continue  # the pixel peers run on the "vectors" cell of the same rows and labels
            rec = _record(cell, "semi", setting, method, seed, split)
            rec.update(fraction=fraction, n_labeled=int((y_semi >= 0).sum()))

            def fit(method=method, y_semi=y_semi) -> dict:
                res = run_semi(method, cell, y_semi, seed)
                pred = res.pop("pred")
                return {"balanced_accuracy": balanced_accuracy(cell["y_test"], pred), **res}

            records.append(_run_one(rec, fit, out))
    return records


def pu_cells(cell: dict, methods: Sequence[str], seed: int, split: str, out: Any) -> list[dict]:
    records = []
    for positive in pu_classes(cell["y"]):
        y_bin, y_test_bin = (cell["y"] == positive).astype(np.int64), (cell["y_test"] == positive).astype(np.int64)
        for fraction in PU_FRACTIONS:
            s = pu_labels(cell["y"], positive, fraction, seed)
            setting = f"class {positive}, {100 * fraction:g}%"
            for method in methods:
                if cell["kind"] in ("images", "vectors") and method in PIXEL_SKIP:
                    continue
                if cell["kind"] == "images" and method != OURS:
                    continue
                rec = _record(cell, "pu", setting, method, seed, split)
                rec.update(
                    positive=positive,
                    fraction=fraction,
                    n_labeled=int(s.sum()),
                    prior_true=float(y_bin.mean()),
                    minority=bool(y_bin.mean() <= 0.5),
                )

                def fit(method=method, s=s, y_bin=y_bin, y_test_bin=y_test_bin) -> dict:
                    res = run_pu(method, cell, s, y_bin, seed)
                    pred = res.pop("pred")
                    return {"balanced_accuracy": balanced_accuracy(y_test_bin, pred), **res}

                records.append(_run_one(rec, fit, out))
    return records


# ---------------------------------------------------------------------------
# Tables
# ---------------------------------------------------------------------------


def load(paths: Iterable[Path]) -> list[dict]:
    records = []
    for path in paths:
        with Path(path).open() as fh:
            records += [json.loads(line) for line in fh if line.strip()]
    return [r for r in records if "error" not in r]


def group(records: Sequence[Mapping], task: str) -> dict[tuple, dict[str, Mapping]]:
    """``(dataset, kind, setting, seed) -> {method: record}`` for one task (the last record of a method wins).

    Image cells borrow the peers of the pixel-row cell of the same rows and labels.
    """
    out: dict[tuple, dict[str, Mapping]] = defaultdict(dict)
    for r in records:
        if r.get("task") == task:
            out[(r["dataset"], r["kind"], r["setting"], r["seed"])][r["method"]] = r
    for (dataset, kind, setting, seed), by in out.items():
        if kind == "images":
            for method, rec in out.get((dataset, "vectors", setting, seed), {}).items():
                if method not in (OURS, "labeled_only"):
                    by.setdefault(method, rec)
    return out


def _best(by: Mapping[str, Mapping], peers: Sequence[str]) -> tuple[str | None, float]:
    scored = [(m, by[m]["balanced_accuracy"]) for m in peers if m in by]
    return max(scored, key=lambda kv: kv[1], default=(None, math.nan))


def judge_semi(by: Mapping[str, Mapping]) -> dict | None:
    ours = by.get(OURS)
    if ours is None:
        return None
    name, best = _best(by, SEMI_PEERS)
    alone = by.get("labeled_only", {}).get("balanced_accuracy", math.nan)
    out = {
        "bal": ours["balanced_accuracy"],
        "best": best,
        "best_name": name,
        "alone": alone,
        "oracle": by.get("oracle", {}).get("balanced_accuracy", math.nan),
        "n_labeled": ours["n_labeled"],
        "seconds": ours["seconds"],
        "backbone": ours.get("backbone"),
    }
    out["win"] = not (out["bal"] < best - 1e-12)
    out["never_below"] = None if math.isnan(alone) else out["bal"] >= alone - 1e-12
    return out


def judge_pu(by: Mapping[str, Mapping]) -> dict | None:
    ours = by.get(OURS)
    if ours is None:
        return None
    name, best = _best(by, PU_PEERS)
    truth = ours["prior_true"]
    out = {
        "bal": ours["balanced_accuracy"],
        "best": best,
        "best_name": name,
        "oracle": by.get("oracle", {}).get("balanced_accuracy", math.nan),
        "prior_true": truth,
        "prior": ours["prior_estimate"],
        "low": ours["prior_low"],
        "high": ours["prior_high"],
        "peer_priors": {m: by[m]["prior_estimate"] for m in PU_PEERS if m in by and "prior_estimate" in by[m]},
        "n_labeled": ours["n_labeled"],
        "seconds": ours["seconds"],
    }
    out["win"] = not (out["bal"] < best - 1e-12)
    out["error"] = abs(out["prior"] - truth)
    out["covered"] = out["low"] - 1e-12 <= truth <= out["high"] + 1e-12
    return out


def mark(ok: bool | None) -> str:
    return "–" if ok is None else ("✓" if ok else "✗")


def _peer(name: str | None, value: float) -> str:
    return "–" if name is None else f"{value:.3f} ({PEER_NAMES.get(name, name)})"


def semi_tables(judged: Mapping[tuple, Mapping]) -> tuple[str, dict]:
    every = list(judged.values())
    alone = [j for j in every if j["never_below"] is not None]
    figures = {
        "cells": len(every),
        "win_share": sum(j["win"] for j in every) / max(len(every), 1),
        "median_margin": median([j["bal"] - j["best"] for j in every if not math.isnan(j["best"])] or [math.nan]),
        "never_below": sum(j["never_below"] for j in alone),
        "alone_cells": len(alone),
    }
    f = figures
    rows = [
        ("balanced accuracy ≥ best peer's, share of cells (target ≥ 80 %)", f"{100 * f['win_share']:.0f} % of "
         f"{f['cells']}", f["win_share"] >= 0.8),
        ("median balanced accuracy − best peer's (target ≥ 0)", f"{f['median_margin']:+.3f}",
         f["median_margin"] >= 0),
        ("never below the same learner on the labeled rows alone", f"{f['never_below']} of {f['alone_cells']}",
         f["never_below"] == f["alone_cells"]),
    ]  # fmt: skip
    summary = "| rule | measured | |\n| --- | --- | :-: |\n" + "\n".join(
        f"| {a} | {b} | {mark(c)} |" for a, b, c in rows
    )
    head = (
        "| dataset | kind | labeled | rows labeled | bal. acc ours | best peer | | labeled only | | ceiling | s |\n"
        "| --- | --- | --- | ---: | ---: | --- | :-: | ---: | :-: | ---: | ---: |"
    )
    lines = [
        f"| {d} | {k} | {st} | {j['n_labeled']} | {j['bal']:.3f} | {_peer(j['best_name'], j['best'])} | "
        f"{mark(j['win'])} | {j['alone']:.3f} | {mark(j['never_below'])} | {j['oracle']:.3f} | {j['seconds']:.1f} |"
        for (d, k, st, _s), j in sorted(judged.items(), key=lambda kv: (kv[0][0], kv[0][1], _pct(kv[0][2]), kv[0][3]))
    ]
    return summary + "\n\n" + head + "\n" + "\n".join(lines), figures


def pu_tables(judged: Mapping[tuple, Mapping]) -> tuple[str, dict]:
    every = list(judged.values())
    errors = [j["error"] for j in every]
    figures = {
        "cells": len(every),
        "win_share": sum(j["win"] for j in every) / max(len(every), 1),
        "median_margin": median([j["bal"] - j["best"] for j in every] or [math.nan]),
        "median_error": median(errors) if errors else math.nan,
        "max_error": max(errors) if errors else math.nan,
        "within_005": sum(e <= 0.05 for e in errors),
        "coverage": sum(j["covered"] for j in every) / max(len(every), 1),
    }
    f = figures
    rows = [
        ("balanced accuracy ≥ best peer's, share of cells (target ≥ 80 %)", f"{100 * f['win_share']:.0f} % of "
         f"{f['cells']}", f["win_share"] >= 0.8),
        ("median balanced accuracy − best peer's", f"{f['median_margin']:+.3f}", None),
        ("median cell: estimated prior within 0.02 of the truth", f"{f['median_error']:.3f}",
         f["median_error"] <= 0.02),
        ("every cell: estimated prior within 0.05 of the truth", f"{f['within_005']} of {f['cells']} "
         f"(worst {f['max_error']:.3f})", f["within_005"] == f["cells"]),
        ("95 % interval `class_prior_interval_` holds the true prior", f"{100 * f['coverage']:.0f} % of cells",
         None),
    ]  # fmt: skip
    summary = "| rule | measured | |\n| --- | --- | :-: |\n" + "\n".join(
        f"| {a} | {b} | {mark(c)} |" for a, b, c in rows
    )
    head = (
        "| dataset | kind | positive class, labeled | bal. acc ours | best peer | | ceiling | true prior | "
        "ours [95 % interval] | | Elkan-Noto(HGB) / (LR) / ScarEM | s |\n"
        "| --- | --- | --- | ---: | --- | :-: | ---: | ---: | --- | :-: | --- | ---: |"
    )
    lines = []
    for (d, k, st, _s), j in sorted(judged.items()):
        pp = j["peer_priors"]
        peers = " / ".join(
            f"{pp[m]:.3f}" if m in pp else "–" for m in ("elkanoto_hgb", "elkanoto_logreg", "pulearn_nnpu")
        )
        lines.append(
            f"| {d} | {k} | {st} | {j['bal']:.3f} | {_peer(j['best_name'], j['best'])} | {mark(j['win'])} | "
            f"{j['oracle']:.3f} | {j['prior_true']:.3f} | {j['prior']:.3f} [{j['low']:.3f}, {j['high']:.3f}] | "
            f"{mark(j['error'] <= 0.05)} | {peers} | {j['seconds']:.1f} |"
        )
    return summary + "\n\n" + head + "\n" + "\n".join(lines), figures


def _pct(setting: str) -> float:
    """``"5%"`` → 5.0, so that the semi-supervised rows sort by their labeled share."""
    return float(setting.rstrip("%"))


def _source_line(records: Sequence[Mapping], source: str, task: str) -> str:
    mine = [r for r in records if r.get("task") == task]
    loads = [r["loadavg_before_after"][0] for r in mine if "loadavg_before_after" in r] or [math.nan]
    return (
        f"Generated by `python -m benchmarks.real_semi` from `{source}` (split {sorted({r['split'] for r in mine})}, "
        f"seeds {sorted({r['seed'] for r in mine})}; load average before each fit {min(loads):.2f}–{max(loads):.2f})."
    )


def render(records: Sequence[Mapping], source: str, task: str) -> str:
    if task == "semi":
        judged = {k: j for k, by in group(records, "semi").items() if (j := judge_semi(by)) is not None}
        text, _ = semi_tables(judged)
        note = (
            "*best peer*: the best of SelfTraining(HGB), SelfTraining(LR), LabelSpreading(knn) and our learner on "
            "the labeled rows alone; *ceiling*: gradient boosting on every true label."
        )
    else:
        judged = {k: j for k, by in group(records, "pu").items() if (j := judge_pu(by)) is not None}
        text, _ = pu_tables(judged)
        note = (
            "*best peer*: the best of pulearn's Elkan-Noto (HGB, LR), BaggingPU and nnPU; *ceiling*: gradient "
            "boosting on the true positive/negative labels; the priors of the peers are Elkan-Noto's "
            "`p(s=1) / c` and pulearn's ScarEM estimate (fed to its nnPU)."
        )
    if not judged:
        return _source_line(records, source, task) + "\n\nNo cells."
    return _source_line(records, source, task) + "\n\n" + note + "\n\n" + text


def write_doc(results: Sequence[Path], doc: Path, tasks: Sequence[str] = ("semi", "pu")) -> None:
    records = load(results)
    root = doc.parent.parent
    source = ", ".join(str(p.relative_to(root)) if p.is_relative_to(root) else str(p) for p in map(Path, results))
    text = doc.read_text()
    for task, (begin, end) in (("semi", (SEMI_BEGIN, SEMI_END)), ("pu", (PU_BEGIN, PU_END))):
        if task in tasks and any(r.get("task") == task for r in records):
            text = replace_region_at_end(text, render(records, source, task), begin, end)
    doc.write_text(text)


# ---------------------------------------------------------------------------
# Command line
# ---------------------------------------------------------------------------


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--data-dir", default=None, help="folder holding tabular/ and cifar10n.parquet")
    parser.add_argument("--split", choices=("test", "validation"), default="test")
    parser.add_argument("--seeds", default="0")
    parser.add_argument("--tasks", default="semi,pu", help="comma-separated: semi, pu")
    parser.add_argument("--datasets", default=None, help="comma-separated table names (default: all)")
    parser.add_argument("--methods", default=None, help="comma-separated methods (default: ours and every peer)")
    parser.add_argument("--mnist", action="store_true", help="also MNIST (images and pixel rows, subsampled)")
    parser.add_argument("--cifar", action="store_true", help="also CIFAR-10N's clean labels (subsampled)")
    parser.add_argument("--no-tables", action="store_true", help="skip the tables and the text set")
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument(
        "--out", default=None, help="JSON-lines file (default benchmarks/raw/real_semi_<split>_<date>.jsonl)"
    )
    parser.add_argument("--doc", action="store_true", help="write the tables into docs/benchmarks.md")
    parser.add_argument("--no-lock", action="store_true", help="do not take the benchmark lock (smoke tests only)")
    args = parser.parse_args(argv)

    import torch

    torch.set_num_threads(args.threads)
    os.environ.setdefault("OMP_NUM_THREADS", str(args.threads))
    data_dir = real_data.resolve_data_dir(args.data_dir)
    seeds = [int(s) for s in args.seeds.split(",")]
    tasks = args.tasks.split(",")
    names = args.datasets.split(",") if args.datasets else real_data.table_names(data_dir)
    date = dt.date.today().isoformat()
    out_path = Path(args.out) if args.out else REPO / "benchmarks" / "raw" / f"real_semi_{args.split}_{date}.jsonl"
    out_path.parent.mkdir(parents=True, exist_ok=True)
    lock = contextlib.nullcontext() if args.no_lock else bench_lock()
    with lock, out_path.open("a") as out:
        log(f"writing {out_path}; load average {os.getloadavg()}")
        for seed in seeds:
            cells: list[Iterable[dict]] = []
            if not args.no_tables:
                cells.append(table_data(name, data_dir, args.split, seed) for name in names)
            if args.mnist:
                cells.append(pixel_data("mnist", data_dir, args.split, seed))
            if args.cifar and (data_dir / "cifar10n.parquet").exists():
                cells.append(pixel_data("cifar10n", data_dir, args.split, seed))
            for source in cells:
                for cell in source:
                    cell["numeric"] = numeric_views(cell["X"], cell["X_test"])
                    if "semi" in tasks:
                        methods = args.methods.split(",") if args.methods else SEMI_METHODS
                        semi_cells(cell, [m for m in methods if m in SEMI_METHODS + SEMI_EXTRA], seed, args.split, out)
                    if "pu" in tasks:
                        methods = args.methods.split(",") if args.methods else PU_METHODS
                        pu_cells(cell, [m for m in methods if m in PU_METHODS], seed, args.split, out)
    if args.doc:
        write_doc([out_path], REPO / "docs" / "benchmarks.md", tasks)
        log("docs/benchmarks.md updated")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
