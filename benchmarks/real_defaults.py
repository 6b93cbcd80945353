"""How the table defaults of ``CoTeachingFilter`` were chosen: each candidate, on validation rows only.

::

    flock /tmp/labelclean-bench.lock python -m benchmarks.real_defaults --seed 100 \\
        --peers benchmarks/raw/real_suite_validation_<date>.jsonl

For every table and the text set of the development suite (the ``validation`` split of
:mod:`benchmarks.real_suite`: its training rows split again, the test rows never read) and every
noise setting, the out-of-fold probabilities of each backbone are computed once, then every
candidate is scored on the same probabilities:

- **backbones**: gradient-boosted trees (``hgb``), logistic regression (``logreg``), an MLP
  (scikit-learn's ``MLPClassifier``), their averages, and the choice by calibrated out-of-fold
  log-loss (:func:`labelclean.crossfit.choose_weights`) among trees and LR, or among all three;
- **rounds** of cross-fitting (1, 2, 3; each later round learns the rows the earlier ones trust);
- **flag rules**: most probable class (raw, calibrated, calibrated and shifted to the estimated true
  class balance) against the given label, or confident learning's per-class count;
- **relabel rules**: the default (calibrated, shifted probabilities and the label posterior both at
  least ``relabel_threshold``) at several thresholds; the label posterior of a clean-posterior
  estimate (forward-calibrated later rounds, or the inverted noise matrix); every flagged row.

Detection F1 is compared with the best peer of the same cell (from ``--peers``, a validation run
of the suite). Prints one markdown table per question and writes the raw figures as JSON lines.
"""

from __future__ import annotations

import argparse
import json
import warnings
from collections import defaultdict
from pathlib import Path
from typing import Any

import numpy as np

from benchmarks import real_data, real_suite

PEERS = ("cleanlab_hgb", "cleanlab_logreg", "hgb", "network")


def table_views(X: Any) -> tuple[dict[str, np.ndarray], np.ndarray]:
    """The two views ``CoTeachingFilter``'s table path reads (``"dense"``, ``"codes"``) and the categorical mask."""
    from labelclean.tabular import TablePlan, needs_plan

    if needs_plan(X):
        plan = TablePlan.fit(X)
        return {"dense": plan.dense(X), "codes": plan.codes(X)}, plan.categorical
    dense = np.asarray(X, dtype=np.float32).reshape(len(X), -1)
    return {"dense": dense, "codes": dense}, np.zeros(dense.shape[1], dtype=bool)


def trusted_rows(y: np.ndarray, proba: np.ndarray) -> np.ndarray:
    """The rows a later round learns from (``forget_rate="auto"``): each class pruned by its estimated noise."""
    from labelclean.detection import detect, flag_by_class_noise

    return ~flag_by_class_noise(y, proba, detect(y, proba, relabel_threshold=1.0).class_noise)


def cell_probabilities(cell: dict, seed: int) -> dict:
    """Out-of-fold probabilities of the three backbones (round 1) and rounds 2, 3 of the chosen mix.

    The same folds, views and seeds as ``CoTeachingFilter(random_state=seed)`` on the cell.
    """
    from sklearn.neural_network import MLPClassifier
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import StandardScaler
    from sklearn.utils import check_random_state

    from labelclean.crossfit import (
        Backbone,
        choose_weights,
        cross_fit_proba,
        default_table_backbones,
        mix,
        stratified_folds,
    )

    est_seed = int(check_random_state(seed).randint(np.iinfo(np.int32).max))  # as the estimators draw it
    classes, y = np.unique(np.asarray(cell["y_noisy"]), return_inverse=True)
    y = y.astype(np.int64)
    views, categorical = table_views(cell["X"])
    k = len(classes)
    mlp = make_pipeline(StandardScaler(), MLPClassifier((64,), alpha=1e-3, max_iter=300, random_state=seed))
    backbones = default_table_backbones(categorical, est_seed) + [Backbone(mlp, "dense")]
    folds = stratified_folds(y, 5, est_seed)
    firsts = cross_fit_proba(backbones, views, y, folds, k)
    weights = choose_weights(firsts[:2], y)
    chosen = [b for b, w in zip(backbones[:2], weights) if w > 0]
    w = weights[weights > 0]
    rounds = [mix([p for p, wi in zip(firsts[:2], weights) if wi > 0], w)]
    for _ in range(2):
        trusted = trusted_rows(y, sum(rounds) / len(rounds))
        rounds.append(mix(cross_fit_proba(chosen, views, y, folds, k, trusted=trusted), w))
    return {"y": y, "y_true": cell["y"], "classes": classes, "firsts": firsts, "rounds": rounds}


def flags(y: np.ndarray, proba: np.ndarray, rule: str) -> np.ndarray:
    from labelclean import detection as D

    if rule == "raw":
        return proba.argmax(1) != y
    calibrated, _ = D.calibrate(proba, y)
    joint = D.estimate_joint(y, calibrated)
    if rule == "calibrated":
        return calibrated.argmax(1) != y
    if rule == "shifted":
        return D.prior_shift(calibrated, joint).argmax(1) != y
    return D.flag_by_class_noise(y, calibrated, D.class_noise(joint))


def relabel(y: np.ndarray, evidence: np.ndarray, clean_estimate: np.ndarray, rule: str, tau: float) -> np.ndarray:
    """Corrected labels under one relabel rule (``clean_estimate``: the later rounds, trained on trusted rows)."""
    from scipy.optimize import minimize_scalar

    from labelclean import detection as D

    rows = np.arange(len(y))
    calibrated, _ = D.calibrate(evidence, y)
    joint = D.estimate_joint(y, calibrated)
    noise = D.noise_matrix(joint)
    shifted = D.prior_shift(calibrated, joint)
    best = shifted.argmax(1)
    flagged = best != y
    if rule == "default":
        return D.detect(y, calibrated, flag="disagreement", relabel_threshold=tau, calibrated=True).pseudo
    if rule == "eager":
        return np.where(flagged, best, y)
    if rule == "forward":  # the clean estimate, tempered so that through the noise matrix it fits the labels
        logp = np.log(np.clip(clean_estimate, 1e-7, 1))

        def tempered(t: float) -> np.ndarray:
            z = np.exp(logp / t - (logp / t).max(1, keepdims=True))
            return z / z.sum(1, keepdims=True)

        t = minimize_scalar(
            lambda t: -np.mean(np.log(np.clip((tempered(t) @ noise.T)[rows, y], 1e-9, 1))),
            bounds=(0.05, 50),
            method="bounded",
        ).x
        clean = tempered(t)
    else:  # "inverted": the clean posterior from the noisy one through the inverse noise matrix
        clean = np.clip(shifted @ np.linalg.pinv(noise).T, 0, None)
        clean /= np.maximum(clean.sum(1, keepdims=True), 1e-12)
    post = clean * noise[y]
    post /= np.maximum(post.sum(1, keepdims=True), 1e-12)
    choice = post.argmax(1)
    return np.where(flagged & (choice != y) & (post[rows, choice] >= tau), choice, y)


def evaluate(probs: dict, best_peer_f1: float) -> dict:
    from labelclean import detection_scores
    from labelclean.crossfit import choose_weights, mix

    y, y_true = probs["y"], probs["y_true"]
    hgb, logreg, mlp = probs["firsts"]
    rounds = probs["rounds"]
    out: dict[str, dict] = {"backbone": {}, "rounds": {}, "flag": {}, "relabel": {}}
    evidence = sum(rounds) / 3
    candidates = {
        "hgb": hgb,
        "logreg": logreg,
        "mlp": mlp,
        "hgb+logreg": (hgb + logreg) / 2,
        "hgb+logreg+mlp": (hgb + logreg + mlp) / 3,
        "chosen of hgb, logreg": rounds[0],
        "chosen of hgb, logreg, mlp": mix(probs["firsts"], choose_weights(probs["firsts"], y)),
    }
    for name, p in candidates.items():  # one round each, the default flag rule
        out["backbone"][name] = detection_scores(~flags(y, p, "shifted"), y, y_true)["f1"]
    for r in (1, 2, 3):
        out["rounds"][str(r)] = detection_scores(~flags(y, sum(rounds[:r]) / r, "shifted"), y, y_true)["f1"]
    for rule in ("raw", "calibrated", "shifted", "class_noise"):
        out["flag"][rule] = detection_scores(~flags(y, evidence, rule), y, y_true)["f1"]
    given = float(np.mean(y == y_true))
    clean_estimate = (rounds[1] + rounds[2]) / 2
    for rule, taus in (("default", (0.8, 0.9, 0.95)), ("forward", (0.9, 0.98)), ("inverted", (0.9,)), ("eager", (0,))):
        for tau in taus:
            pseudo = relabel(y, evidence, clean_estimate, rule, tau)
            out["relabel"][f"{rule} {tau:g}"] = float(np.mean(pseudo == y_true)) - given
    out["best_peer_f1"] = best_peer_f1
    return out


def best_peers(path: Path | None, seed: int) -> dict:
    if path is None:
        return {}
    best: dict = defaultdict(lambda: float("nan"))
    for line in path.read_text().splitlines():
        r = json.loads(line)
        if r.get("seed") == seed and r.get("method") in PEERS and "f1" in r:
            key = (r["dataset"], r["noise"])
            best[key] = r["f1"] if np.isnan(best[key]) else max(best[key], r["f1"])
    return dict(best)


def report(records: list[dict]) -> str:
    noisy = [r for r in records if r["noise"] != "none"]
    lines = []
    for question in ("backbone", "rounds", "flag"):
        lines += [f"\n**{question}** (detection F1, noisy cells)\n", "| candidate | mean F1 | ≥ best peer |"]
        lines.append("| --- | ---: | ---: |")
        for name in noisy[0][question]:
            f1 = np.array([r[question][name] for r in noisy])
            peer = np.array([r["best_peer_f1"] for r in noisy])
            wins = np.nanmean(f1 >= peer - 1e-12) if np.isfinite(peer).any() else float("nan")
            lines.append(f"| {name} | {f1.mean():.3f} | {100 * wins:.0f} % |")
    lines += [
        "\n**relabel** (accuracy of the corrected labels minus the given ones)\n",
        "| rule | never worse, noisy cells | never worse, 0 % noise | mean gain, noisy cells |",
        "| --- | ---: | ---: | ---: |",
    ]
    clean = [r for r in records if r["noise"] == "none"]
    for name in records[0]["relabel"]:
        g_noisy = np.array([r["relabel"][name] for r in noisy])
        g_clean = np.array([r["relabel"][name] for r in clean])
        lines.append(
            f"| {name} | {np.sum(g_noisy >= 0)} of {len(g_noisy)} | {np.sum(g_clean >= 0)} of {len(g_clean)} | "
            f"{g_noisy.mean():+.4f} |"
        )
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description="Candidates for the table defaults, on validation rows.")
    parser.add_argument("--data-dir", default=None)
    parser.add_argument("--seed", type=int, default=100)
    parser.add_argument("--peers", type=Path, default=None, help="a validation run of benchmarks.real_suite")
    parser.add_argument("--out", type=Path, default=None)
    parser.add_argument("--datasets", default=None)
    args = parser.parse_args(argv)
    data_dir = real_data.resolve_data_dir(args.data_dir)
    peers = best_peers(args.peers, args.seed)
    names = args.datasets.split(",") if args.datasets else real_data.table_names(data_dir)
    records = []
    out = args.out.open("a") if args.out else None
    with real_suite.bench_lock():
        for name in names:
            for cell in real_suite.table_cells(name, data_dir, "validation", args.seed, list(real_suite.NOISES)):
                with warnings.catch_warnings():
                    warnings.simplefilter("ignore")
                    probs = cell_probabilities(cell, args.seed)
                if len(probs["classes"]) != int(probs["y_true"].max()) + 1:
                    continue  # a class vanished from the noisy labels: encodings differ, skip the cell
                rec = {"dataset": name, "noise": cell["noise"], "seed": args.seed}
                rec.update(evaluate(probs, peers.get((name, cell["noise"]), float("nan"))))
                records.append(rec)
                if out:
                    out.write(json.dumps(rec) + "\n")
                    out.flush()
                real_suite.log(f"{name}/{cell['noise']} done")
    print(report(records))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
