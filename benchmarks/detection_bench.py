"""The detection rule against cleanlab, on the same out-of-fold probabilities, and its speed at 10 million rows.

::

    python -m benchmarks.detection_bench --doc              # everything below → benchmarks/raw/, docs/benchmarks.md
    python -m benchmarks.detection_bench --quick            # 2,000 CIFAR rows, 1,000,000 rows for the speed
    python -m benchmarks.detection_bench --datasets sonar,vote --noises sym20 --no-cifar --speed-rows 200000

Every candidate reads the same given labels and the same out-of-fold probabilities, and its
verdict is scored against the known truth (a row is wrong when its given label is not its true
label):

- **CIFAR-10N**: a stratified subsample of the 50,000 training images with the human label sets
  ``aggre_label``, ``random_label1`` and ``worse_label`` as the given labels and ``label`` as the
  truth. The probabilities come from a logistic regression on fixed random-patch features
  (:func:`cifar_features`), out of fold (5 folds) on the given labels; its accuracy is recorded.
- **Tables**: every table of ``<data-dir>/tabular`` (and the text set), the training part of the
  validation split of :mod:`benchmarks.real_suite` (seed 100 by default: the test rows are never
  read), with its noises ``sym20``, ``asym30`` and ``inst30``; the probabilities are out of fold
  (5 folds) from ``HistGradientBoostingClassifier`` on the noisy labels.

Candidates (:data:`CANDIDATES`): labelclean's :func:`labelclean.find_label_issues` and
:func:`labelclean.detection.detect` with each flag rule (and, marked ``temperature``, on
probabilities first temperature-scaled to the given labels); cleanlab's
``cleanlab.filter.find_label_issues`` with each ``filter_by`` and
``cleanlab.rank.get_label_quality_scores`` with three scores. Metrics (:func:`score`):
precision, recall and F1 of the flagged rows; precision at ``k`` of the quality ranking (``k`` =
the number of wrong labels, and ``k`` = 100) and its AUROC; for labelclean, the accuracy of
``pseudo_label`` beside that of the given labels; seconds.

**Speed** (:func:`measure`): ``find_label_issues`` of both libraries on synthetic Dirichlet
probabilities, 10,000,000 rows × 10 classes (float32), each measurement in a fresh subprocess.

The run holds the machine's benchmark lock (:func:`benchmarks.real_suite.bench_lock`), appends
one JSON line per measurement to ``--out`` (default ``benchmarks/raw/detection_bench_<date>.jsonl``),
prints the Markdown summary, and with ``--doc`` writes it between ``<!-- detection:begin -->``
and ``<!-- detection:end -->`` of ``docs/benchmarks.md``.
"""

from __future__ import annotations

import argparse
import contextlib
import datetime as dt
import json
import math
import os
import resource
import subprocess
import sys
import time
import warnings
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np

REPO = Path(__file__).resolve().parent.parent
DOC = REPO / "docs" / "benchmarks.md"
BEGIN, END = "<!-- detection:begin -->", "<!-- detection:end -->"

#: Noises of the tables (see :func:`benchmarks.real_suite.make_noise`).
TABLE_NOISES = ("sym20", "asym30", "inst30")
#: CIFAR-10N label sets used as the given labels.
CIFAR_LABEL_SETS = ("aggre_label", "random_label1", "worse_label")
CIFAR_ROWS, CIFAR_ROWS_QUICK = 10_000, 2_000
SPEED_ROWS, SPEED_ROWS_QUICK, SPEED_CLASSES = 10_000_000, 1_000_000, 10
#: Share of the synthetic speed rows whose label is flipped to another class.
SPEED_FLIP = 0.05
FOLDS = 5
#: The fixed ``k`` of precision at ``k`` (beside ``k`` = the number of wrong labels).
TOP_K = 100

#: cleanlab's ``filter_by`` options, the first its default.
CLEANLAB_FILTERS = (
    "prune_by_noise_rate",
    "prune_by_class",
    "both",
    "confident_learning",
    "predicted_neq_given",
    "low_normalized_margin",
    "low_self_confidence",
)
#: cleanlab's label quality scores, the first its default.
CLEANLAB_SCORES = ("self_confidence", "normalized_margin", "confidence_weighted_entropy")
OURS = "labelclean find_label_issues"
CANDIDATES = (
    OURS,
    "labelclean detect rank",
    "labelclean detect class_noise",
    "labelclean detect disagreement",
    "labelclean detect rank temperature",
    "labelclean detect class_noise temperature",
    *(f"cleanlab filter {f}" for f in CLEANLAB_FILTERS),
    *(f"cleanlab rank {s}" for s in CLEANLAB_SCORES),
)

#: Random-patch features of CIFAR images (Coates and Ng, ICML 2011): patch side, filters, soft threshold.
PATCH, FILTERS, SOFT_THRESHOLD = 6, 200, 0.25
#: Inverse regularisation of the logistic regression on the standardised CIFAR features.
CIFAR_C = 0.01


def log(message: str) -> None:
    print(f"[detection_bench {time.strftime('%H:%M:%S')}] {message}", file=sys.stderr, flush=True)


def loadavg() -> list[float]:
    """The 1, 5 and 15 minute load averages, rounded."""
    return [round(x, 2) for x in os.getloadavg()]


def cleanlab_version() -> str | None:
    """The installed cleanlab's version, or None when it is missing."""
    from importlib.metadata import PackageNotFoundError, version

    try:
        return version("cleanlab")
    except PackageNotFoundError:
        return None


# ---------------------------------------------------------------------------
# Scores
# ---------------------------------------------------------------------------


def precision_at_k(quality: np.ndarray, noisy: np.ndarray, k: int) -> float:
    """Share of truly wrong labels among the ``k`` rows of lowest quality (ties: the earlier row first).

    ``k`` is capped at the number of rows; NaN for ``k`` ≤ 0.

    Examples
    --------
    >>> precision_at_k(np.array([0.9, 0.1, 0.5, 0.2]), np.array([False, True, False, False]), 2)
    0.5
    """
    k = min(int(k), len(quality))
    if k <= 0:
        return math.nan
    order = np.argsort(np.asarray(quality), kind="stable")[:k]
    return float(np.mean(np.asarray(noisy, dtype=bool)[order]))


def auroc(quality: np.ndarray, noisy: np.ndarray) -> float:
    """Probability that a wrong label has a lower quality than a right one (ties count one half).

    The Mann-Whitney statistic of ``-quality`` on the wrong rows; NaN when every label, or none,
    is wrong.

    Examples
    --------
    >>> auroc(np.array([0.9, 0.1, 0.5, 0.1]), np.array([False, True, False, False]))
    0.8333333333333334
    """
    from scipy.stats import rankdata

    noisy = np.asarray(noisy, dtype=bool)
    n_pos, n_neg = int(noisy.sum()), int((~noisy).sum())
    if n_pos == 0 or n_neg == 0:
        return math.nan
    ranks = rankdata(-np.asarray(quality, dtype=np.float64))  # average ranks of tied values
    return float((ranks[noisy].sum() - n_pos * (n_pos + 1) / 2) / (n_pos * n_neg))


def score(
    given: np.ndarray,
    truth: np.ndarray,
    *,
    flagged: np.ndarray | None = None,
    quality: np.ndarray | None = None,
    pseudo: np.ndarray | None = None,
) -> dict[str, float]:
    """Scores of one verdict against the truth; a verdict may have flags, a quality ranking, pseudo-labels.

    Parameters
    ----------
    given, truth : ndarray of shape (n,)
        Given and true labels; a row is wrong where they differ.
    flagged : ndarray of bool, optional
        Rows the candidate says are wrong: ``precision``, ``recall``, ``f1``, ``n_flagged``.
    quality : ndarray of float, optional
        Higher means the given label is more likely right: ``precision_at_noisy`` (``k`` = the
        number of wrong labels), ``precision_at_100`` and ``auroc``.
    pseudo : ndarray, optional
        Proposed labels: ``pseudo_accuracy`` and ``n_changed``.

    Returns
    -------
    dict
        The keys above (NaN where the verdict lacks the part), with ``n``, ``n_noisy`` and
        ``given_accuracy`` always.
    """
    from labelclean import detection_scores

    given, truth = np.asarray(given), np.asarray(truth)
    noisy = given != truth
    out: dict[str, float] = {
        "n": len(given),
        "n_noisy": int(noisy.sum()),
        "given_accuracy": float(np.mean(~noisy)),
    }
    nan = math.nan
    if flagged is not None:
        det = detection_scores(~np.asarray(flagged, dtype=bool), given, truth)
        out.update({k: det[k] for k in ("precision", "recall", "f1", "n_flagged")})
    else:
        out.update(precision=nan, recall=nan, f1=nan, n_flagged=nan)
    if quality is not None:
        out.update(
            precision_at_noisy=precision_at_k(quality, noisy, int(noisy.sum())),
            precision_at_100=precision_at_k(quality, noisy, TOP_K),
            auroc=auroc(quality, noisy),
        )
    else:
        out.update(precision_at_noisy=nan, precision_at_100=nan, auroc=nan)
    if pseudo is not None:
        pseudo = np.asarray(pseudo)
        out.update(pseudo_accuracy=float(np.mean(pseudo == truth)), n_changed=int(np.sum(pseudo != given)))
    else:
        out.update(pseudo_accuracy=nan, n_changed=nan)
    return out


# ---------------------------------------------------------------------------
# Candidates
# ---------------------------------------------------------------------------


def run_candidate(name: str, labels: np.ndarray, pred_probs: np.ndarray) -> dict[str, np.ndarray]:
    """One candidate's verdict: some of ``flagged``, ``quality`` and ``pseudo`` (see :data:`CANDIDATES`).

    cleanlab runs with ``n_jobs=1``, as labelclean does (one process).
    """
    if name == OURS:
        from labelclean import find_label_issues

        df = find_label_issues(labels, pred_probs)
        return {
            "flagged": ~df["is_clean"].to_numpy(),
            "quality": df["label_quality"].to_numpy(),
            "pseudo": df["pseudo_label"].to_numpy(),
        }
    if name.startswith("labelclean detect "):
        from labelclean.detection import RELABEL_THRESHOLD, detect

        rule, *scaled = name.split()[2:]  # "... temperature": scaled to the given labels first
        d = detect(labels, pred_probs, flag=rule, relabel_threshold=RELABEL_THRESHOLD, calibrated=not scaled)
        return {"flagged": ~d.clean, "quality": d.quality, "pseudo": d.pseudo}
    if name.startswith("cleanlab filter "):
        from cleanlab.filter import find_label_issues as cl_find

        return {"flagged": cl_find(labels, pred_probs, filter_by=name.split()[-1], n_jobs=1)}
    if name.startswith("cleanlab rank "):
        from cleanlab.rank import get_label_quality_scores

        return {"quality": get_label_quality_scores(labels, pred_probs, method=name.split()[-1])}
    raise ValueError(f"unknown candidate {name!r}")


def score_candidates(
    labels: np.ndarray, truth: np.ndarray, pred_probs: np.ndarray, candidates: Sequence[str], meta: Mapping[str, Any]
) -> Iterator[dict]:
    """Every candidate on the same probabilities: one record each (``meta`` copied in; errors recorded)."""
    for name in candidates:
        rec: dict[str, Any] = {**meta, "candidate": name, "loadavg": loadavg()}
        t0 = time.perf_counter()
        try:
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")
                verdict = run_candidate(name, labels, pred_probs)
            rec["seconds"] = time.perf_counter() - t0
            rec.update(score(labels, truth, **verdict))
        except Exception as exc:  # one candidate's failure must not cost the others
            rec["error"] = f"{type(exc).__name__}: {exc}"
        yield rec


# ---------------------------------------------------------------------------
# Out-of-fold probabilities where the truth is known
# ---------------------------------------------------------------------------


def encode(given: np.ndarray, truth: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Given labels as ``0 .. K-1`` over the classes they use, and the truth in the same codes (-1: other class)."""
    classes, labels = np.unique(given, return_inverse=True)
    pos = np.minimum(np.searchsorted(classes, truth), len(classes) - 1)
    return labels.astype(np.int64), np.where(classes[pos] == truth, pos, -1).astype(np.int64)


def oof_proba(model: Any, X: Any, labels: np.ndarray, seed: int) -> np.ndarray:
    """Out-of-fold class probabilities (:data:`FOLDS` stratified folds) of ``model`` trained on ``labels``."""
    from sklearn.model_selection import StratifiedKFold, cross_val_predict

    from benchmarks.real_suite import strat_key

    folds = list(
        StratifiedKFold(FOLDS, shuffle=True, random_state=seed).split(np.zeros(len(labels)), strat_key(labels))
    )
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # classes rarer than the folds
        proba = cross_val_predict(model, X, labels, cv=folds, method="predict_proba")
    return np.asarray(proba, dtype=np.float32)


def cifar_features(images: np.ndarray, *, filters: int = FILTERS, seed: int = 0, batch: int = 250) -> np.ndarray:
    """Fixed random-patch features of images ``(n, 3, H, W)`` in [0, 1], no label seen (Coates and Ng, 2011).

    Every 6×6 patch is normalised for brightness and contrast and ZCA-whitened (fitted on
    100,000 patches of these images); its responses ``z`` to ``filters`` whitened patches drawn at
    random (unit length) are soft-thresholded, ``max(0, z − 0.25)`` and ``max(0, −z − 0.25)``, and
    summed over the four quadrants of the image: ``8 · filters`` float32 features a row.
    """
    rng = np.random.default_rng(seed)
    x = np.ascontiguousarray(images.transpose(0, 2, 3, 1), dtype=np.float32)  # (n, H, W, 3)
    eps = 10.0 / 255.0**2  # the contrast floor of Coates and Ng, for pixels in [0, 1]

    def patches(block: np.ndarray) -> np.ndarray:
        win = np.lib.stride_tricks.sliding_window_view(block, (PATCH, PATCH), axis=(1, 2))  # (b, h, w, 3, P, P)
        p = win.reshape(*win.shape[:3], -1).astype(np.float32)
        p -= p.mean(axis=-1, keepdims=True)
        p /= np.sqrt(p.var(axis=-1, keepdims=True) + eps)
        return p

    sample = patches(x[rng.choice(len(x), size=min(len(x), 400), replace=False)])
    sample = sample.reshape(-1, sample.shape[-1])
    sample = sample[rng.choice(len(sample), size=min(len(sample), 100_000), replace=False)].astype(np.float64)
    mean = sample.mean(axis=0)
    eigval, eigvec = np.linalg.eigh(np.cov(sample, rowvar=False))
    zca = (eigvec / np.sqrt(eigval + 0.1)) @ eigvec.T
    bank = (sample[rng.choice(len(sample), size=filters, replace=False)] - mean) @ zca
    bank /= np.linalg.norm(bank, axis=1, keepdims=True)
    proj = (zca @ bank.T).astype(np.float32)  # whitening and filtering in one matrix
    shift = (mean @ zca @ bank.T).astype(np.float32)

    out = np.empty((len(x), 8 * filters), dtype=np.float32)
    for start in range(0, len(x), batch):
        p = patches(x[start : start + batch])
        b, h, w = p.shape[:3]
        z = p.reshape(-1, p.shape[-1]) @ proj - shift
        feats = []
        for sign in (1.0, -1.0):
            act = np.maximum(sign * z - SOFT_THRESHOLD, 0.0).reshape(b, h, w, filters)
            for rows in (slice(0, h // 2), slice(h // 2, h)):
                for cols in (slice(0, w // 2), slice(w // 2, w)):
                    feats.append(act[:, rows, cols].sum(axis=(1, 2)))
        out[start : start + b] = np.concatenate(feats, axis=1)
    return out


def cifar_model(seed: int) -> Any:
    """Standardised features → multinomial logistic regression (what :func:`cifar_cells` fits)."""
    from sklearn.linear_model import LogisticRegression
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import StandardScaler

    return make_pipeline(StandardScaler(), LogisticRegression(C=CIFAR_C, max_iter=300, random_state=seed))


def cifar_cells(data_dir: Path, rows: int, seed: int) -> Iterator[dict]:
    """CIFAR-10N: one cell per human label set, with out-of-fold probabilities trained on that set."""
    from benchmarks import real_data

    t0 = time.perf_counter()
    data = real_data.load_cifar10n(data_dir, rows, 10, seed)  # 10 test rows: the loader wants some; unused
    features = cifar_features(data["X"], seed=seed)
    log(f"cifar10n: {len(features)} rows, {features.shape[1]} features in {time.perf_counter() - t0:.0f} s")
    for label_set in CIFAR_LABEL_SETS:
        t0 = time.perf_counter()
        labels, truth = encode(data[label_set], data["clean"])
        proba = oof_proba(cifar_model(seed), features, labels, seed)
        yield _cell("cifar10n", "cifar10n", label_set, labels, truth, proba, time.perf_counter() - t0, seed)


def table_cells(name: str, data_dir: Path, noises: Sequence[str], seed: int) -> Iterator[dict]:
    """A table's cells: the training rows of the validation split, each noise, HGB out-of-fold probabilities."""
    from benchmarks import real_suite

    for cell in real_suite.table_cells(name, data_dir, "validation", seed, list(noises)):
        t0 = time.perf_counter()
        X = real_suite._peer_tables(cell["X"], cell["X"])[0]  # strings as pandas categories, as the peers take them
        labels, truth = encode(cell["y_noisy"], cell["y"])
        proba = oof_proba(real_suite.peer_model("hgb", X, seed), X, labels, seed)
        yield _cell("tables", name, cell["noise"], labels, truth, proba, time.perf_counter() - t0, seed)


def _cell(group: str, dataset: str, noise: str, labels, truth, proba, seconds: float, seed: int) -> dict:
    best = np.argmax(proba, axis=1)
    model = "random-patch features + LogisticRegression" if group == "cifar10n" else "HistGradientBoostingClassifier"
    meta = {
        "section": "detection",
        "group": group,
        "dataset": dataset,
        "noise": noise,
        "seed": seed,
        "n_classes": int(proba.shape[1]),
        "model": model,
        "model_accuracy": float(np.mean(best == truth)),
        "model_given_accuracy": float(np.mean(best == labels)),
        "model_seconds": seconds,
    }
    log(
        f"{dataset}/{noise}: {len(labels)} rows, {float(np.mean(labels != truth)):.1%} wrong; out-of-fold "
        f"{model} accuracy {meta['model_accuracy']:.3f} (given labels {meta['model_given_accuracy']:.3f}), "
        f"{seconds:.0f} s"
    )
    return {"meta": meta, "labels": labels, "truth": truth, "proba": proba}


# ---------------------------------------------------------------------------
# Speed and memory on synthetic probabilities
# ---------------------------------------------------------------------------


def synthetic(
    rows: int, classes: int, seed: int, flip: float = SPEED_FLIP
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Given labels, true labels and float32 Dirichlet probabilities (α = 4 at the true class, 0.25 elsewhere).

    The most probable class is the true one on about 93 % of the rows (10 classes).

    A ``flip`` share of the labels is moved to another class at random. Drawn in blocks of
    2**20 rows, so that the drawing needs little more memory than the probabilities themselves.
    """
    rng = np.random.default_rng(seed)
    truth = rng.integers(0, classes, rows)
    given = truth.copy()
    flipped = rng.random(rows) < flip
    given[flipped] = (truth[flipped] + rng.integers(1, classes, int(flipped.sum()))) % classes
    proba = np.empty((rows, classes), dtype=np.float32)
    for start in range(0, rows, 1 << 20):
        t = truth[start : start + (1 << 20)]
        alpha = np.full((len(t), classes), 0.25, dtype=np.float32)
        alpha[np.arange(len(t)), t] = 4.0
        g = rng.standard_gamma(alpha, dtype=np.float32)
        proba[start : start + len(t)] = g / g.sum(axis=1, keepdims=True)
    return given, truth, proba


def _status_bytes(field: str) -> int | None:
    """A ``kB`` field of ``/proc/self/status`` (``VmRSS``, ``VmHWM``) in bytes; None off Linux."""
    try:
        with open("/proc/self/status") as fh:
            for line in fh:
                if line.startswith(field + ":"):
                    return int(line.split()[1]) * 1024
    except OSError:
        pass
    return None


def reset_peak_rss() -> bool:
    """Set this process's peak resident size to its current one (Linux ≥ 4.0, ``/proc/self/clear_refs``)."""
    try:
        with open("/proc/self/clear_refs", "w") as fh:
            fh.write("5")
    except OSError:
        return False
    return True


def peak_rss_bytes() -> int:
    """This process's peak resident size: ``VmHWM``, else ``ru_maxrss``."""
    hwm = _status_bytes("VmHWM")
    return hwm if hwm is not None else resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024


def _speed_labelclean(labels: np.ndarray, pred_probs: np.ndarray) -> np.ndarray:
    from labelclean import find_label_issues

    return ~find_label_issues(labels, pred_probs)["is_clean"].to_numpy()


def _speed_cleanlab(labels: np.ndarray, pred_probs: np.ndarray) -> np.ndarray:
    from cleanlab.filter import find_label_issues

    return find_label_issues(labels, pred_probs, n_jobs=1)


#: The speed test's calls: each library's ``find_label_issues`` with its defaults (cleanlab on one process).
SPEED_METHODS: dict[str, Callable[[np.ndarray, np.ndarray], np.ndarray]] = {
    "labelclean": _speed_labelclean,
    "cleanlab": _speed_cleanlab,
}


def measure(method: str, rows: int, classes: int, seed: int) -> dict:
    """Seconds and peak memory of one ``find_label_issues`` call; run it in a fresh process (:func:`speed_record`).

    Memory is the resident set size the operating system gives the process (RSS): its peak
    during the call minus its size just before, as a multiple of ``pred_probs.nbytes``. RSS
    rather than ``tracemalloc``: it counts every allocation the call makes — NumPy's, pandas',
    SciPy's and any C library's — which is the memory a user needs, and it costs nothing while
    the call is timed (``tracemalloc`` sees only allocations reported to Python, and slows every
    one down). The peak is the kernel's high-water mark ``VmHWM``, reset to the current size just
    before the call; not ``getrusage(RUSAGE_SELF).ru_maxrss``, which on Linux keeps, across
    ``exec``, the peak of the parent the child was forked from (in a child of this benchmark it
    read 1.1 GB before a call on 8 MB of probabilities). A fresh process per measurement keeps
    one call's freed but retained heap from lowering the next one's figure; the imports and a
    small warm-up call happen before the baseline, so the figure is the call's own working
    memory, its outputs included.
    """
    fn = SPEED_METHODS[method]
    given, truth, proba = synthetic(rows, classes, seed)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        fn(given[:5_000].copy(), proba[:5_000].copy())  # imports and lazy initialisation, outside the measure
    reset = reset_peak_rss()
    rss_before, load = _status_bytes("VmRSS") or 0, loadavg()
    t0 = time.perf_counter()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        flagged = np.asarray(fn(given, proba), dtype=bool)
    seconds = time.perf_counter() - t0
    peak = peak_rss_bytes()
    extra = max(peak - rss_before, 0)
    return {
        "section": "speed",
        "method": method,
        "rows": rows,
        "classes": classes,
        "seed": seed,
        "seconds": seconds,
        "nbytes": int(proba.nbytes),
        "rss_before": rss_before,
        "peak_rss": peak,
        "peak_reset": reset,
        "peak_extra_bytes": extra,
        "peak_extra_x_nbytes": extra / proba.nbytes,
        "loadavg": load,
        "loadavg_after": loadavg(),
        **score(given, truth, flagged=flagged),
    }


def speed_record(method: str, rows: int, classes: int, seed: int) -> dict:
    """:func:`measure` in a fresh interpreter; the record it prints as its last line."""
    cmd = [sys.executable, "-m", "benchmarks.detection_bench", "--measure", method]
    cmd += ["--speed-rows", str(rows), "--speed-classes", str(classes), "--seed", str(seed)]
    done = subprocess.run(cmd, cwd=REPO, capture_output=True, text=True)
    if done.returncode != 0:
        tail = done.stderr.strip().splitlines()[-1:] or [f"exit status {done.returncode}"]
        return {"section": "speed", "method": method, "rows": rows, "classes": classes, "error": tail[0]}
    return json.loads(done.stdout.strip().splitlines()[-1])


# ---------------------------------------------------------------------------
# Summary tables and the document
# ---------------------------------------------------------------------------


def _mean(values: Iterable[Any]) -> float:
    vals = [float(v) for v in values if v is not None and not (isinstance(v, float) and math.isnan(v))]
    return sum(vals) / len(vals) if vals else math.nan


def _f(value: float, digits: int = 3) -> str:
    return "—" if value is None or math.isnan(value) else f"{value:.{digits}f}"


def group_names(records: Sequence[Mapping]) -> list[tuple[str, str]]:
    """``(group, noise)`` columns of the detection table: each CIFAR-10N label set, each table noise."""
    seen: dict[tuple[str, str], None] = {}
    for r in records:
        if r.get("section") == "detection":
            seen.setdefault((r["group"], r["noise"]), None)
    return list(seen)


def detection_table(records: Sequence[Mapping]) -> str:
    """Per candidate and per (group, noise): mean F1 and mean precision at k (= number of wrong labels)."""
    from benchmarks.tables import render_table

    det = [r for r in records if r.get("section") == "detection" and "error" not in r]
    cols = group_names(det)
    if not cols:
        return ""
    names = [c for c in CANDIDATES if any(r["candidate"] == c for r in det)]
    names += sorted({r["candidate"] for r in det} - set(names))
    headers = ["candidate"]
    for group, noise in cols:
        label = noise if group == "cifar10n" else f"tables {noise}"
        headers += [f"{label} F1", f"{label} P@k"]
    headers.append("seconds (mean)")
    rows = []
    for name in names:
        mine = [r for r in det if r["candidate"] == name]
        row = [name]
        for group, noise in cols:
            cell = [r for r in mine if r["group"] == group and r["noise"] == noise]
            row += [_f(_mean(r["f1"] for r in cell)), _f(_mean(r["precision_at_noisy"] for r in cell))]
        row.append(_f(_mean(r["seconds"] for r in mine), 3))
        rows.append(row)
    return render_table(headers, rows, align="l" + "r" * (len(headers) - 1))


def context_table(records: Sequence[Mapping]) -> str:
    """Per (group, noise): datasets, rows, wrong labels, the model's out-of-fold accuracy, pseudo-label accuracy."""
    from benchmarks.tables import render_table

    det = [r for r in records if r.get("section") == "detection" and "error" not in r]
    rows = []
    for group, noise in group_names(det):
        cell = [r for r in det if r["group"] == group and r["noise"] == noise]
        ours = [r for r in cell if r["candidate"] == OURS]
        first = list({r["dataset"]: r for r in cell}.values())  # one record per dataset
        rows.append(
            [
                group,
                noise,
                str(len(first)),
                f"{sum(r['n'] for r in first):,}",
                _f(_mean(r["n_noisy"] / r["n"] for r in first)),
                first[0]["model"],
                _f(_mean(r["model_accuracy"] for r in first)),
                _f(_mean(r["given_accuracy"] for r in first)),
                _f(_mean(r["pseudo_accuracy"] for r in ours)),
            ]
        )
    headers = ["group", "noise", "datasets", "rows", "wrong share", "model", "model accuracy", "given", "pseudo_label"]
    return render_table(headers, rows, align="lllrrlrrr")


def speed_table(records: Sequence[Mapping]) -> str:
    """Seconds and peak memory of each speed measurement, with the load average before it."""
    from benchmarks.tables import render_table

    rows = []
    for r in records:
        if r.get("section") != "speed":
            continue
        if "error" in r:
            rows.append([r["method"], f"{r['rows']:,} × {r['classes']}", "error", r["error"][:80], "", "", ""])
            continue
        rows.append(
            [
                r["method"],
                f"{r['rows']:,} × {r['classes']}",
                f"{r['seconds']:.1f}",
                f"{r['peak_extra_bytes'] / 2**20:,.0f}",
                f"{r['peak_extra_x_nbytes']:.2f}",
                _f(r["f1"]),
                f"{r['loadavg'][0]:.2f}",
            ]
        )
    if not rows:
        return ""
    headers = ["find_label_issues", "rows × classes", "seconds", "peak extra MiB", "× pred_probs", "F1", "load"]
    return render_table(headers, rows, align="llrrrrr")


def summary(records: Sequence[Mapping], header: str = "") -> str:
    """The Markdown summary of one run: the detection table, the context of each column, the speed table."""
    parts = [header] if header else []
    det = detection_table(records)
    if det:
        parts += [
            "Mean F1 of the flagged rows and mean precision at k (k = the number of wrong labels) of the quality "
            "ranking, per CIFAR-10N label set and per table noise (mean over the tables); — where a candidate has "
            "no flags or no ranking.",
            det,
            "The probabilities every candidate read: the model, its out-of-fold accuracy against the truth, and the "
            "accuracy of the given labels and of labelclean's `pseudo_label`.",
            context_table(records),
        ]
    speed = speed_table(records)
    if speed:
        parts += [
            "Speed on synthetic Dirichlet probabilities (float32), one fresh process per row; peak extra memory = "
            "peak RSS during the call minus RSS before it, as a multiple of `pred_probs.nbytes`; load = the 1-minute "
            "load average before the call.",
            speed,
        ]
    return "\n\n".join(parts) + "\n"


def write_doc(text: str, body: str) -> str:
    """``text`` with ``body`` between :data:`BEGIN` and :data:`END`; the markers are appended when missing."""
    from benchmarks.tables import replace_region_at_end

    return replace_region_at_end(text, body, BEGIN, END)


# ---------------------------------------------------------------------------
# The run
# ---------------------------------------------------------------------------


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--data-dir", default=None, help="folder holding tabular/ and cifar10n.parquet")
    parser.add_argument(
        "--quick", action="store_true", help=f"{CIFAR_ROWS_QUICK:,} CIFAR rows, {SPEED_ROWS_QUICK:,} speed rows"
    )
    parser.add_argument(
        "--out", default=None, help="JSON-lines file (default benchmarks/raw/detection_bench_<date>.jsonl)"
    )
    parser.add_argument("--doc", action="store_true", help="write the summary into docs/benchmarks.md")
    parser.add_argument(
        "--seed", type=int, default=100, help="split, noise, subsample and fold seed (validation style)"
    )
    parser.add_argument("--datasets", default=None, help="comma-separated table names (default: every table)")
    parser.add_argument("--noises", default=",".join(TABLE_NOISES), help="table noises")
    parser.add_argument("--candidates", default=None, help="comma-separated candidates (default: all)")
    parser.add_argument(
        "--cifar-rows", type=int, default=None, help=f"CIFAR-10N training rows (default {CIFAR_ROWS:,})"
    )
    parser.add_argument("--speed-rows", type=int, default=None, help=f"rows of the speed test (default {SPEED_ROWS:,})")
    parser.add_argument("--speed-classes", type=int, default=SPEED_CLASSES)
    parser.add_argument("--no-tables", action="store_true")
    parser.add_argument("--no-cifar", action="store_true")
    parser.add_argument("--no-speed", action="store_true")
    parser.add_argument(
        "--no-lock", action="store_true", help="run without the benchmark lock (seconds not comparable)"
    )
    parser.add_argument("--measure", default=None, help=argparse.SUPPRESS)  # one speed measurement (a child process)
    return parser.parse_args(argv)


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    speed_rows = args.speed_rows or (SPEED_ROWS_QUICK if args.quick else SPEED_ROWS)
    if args.measure:
        print(json.dumps(measure(args.measure, speed_rows, args.speed_classes, args.seed), default=float))
        return 0
    from benchmarks import real_data
    from benchmarks.real_suite import bench_lock

    data_dir = real_data.resolve_data_dir(args.data_dir)
    cifar_rows = args.cifar_rows or (CIFAR_ROWS_QUICK if args.quick else CIFAR_ROWS)
    candidates = args.candidates.split(",") if args.candidates else list(CANDIDATES)
    speed_methods = list(SPEED_METHODS)
    if cleanlab_version() is None:
        log("cleanlab is not installed (pip install cleanlab): its candidates are skipped")
        candidates = [c for c in candidates if not c.startswith("cleanlab")]
        speed_methods = [m for m in speed_methods if m != "cleanlab"]
    names = args.datasets.split(",") if args.datasets else real_data.table_names(data_dir)
    date = dt.date.today().isoformat()
    out_path = Path(args.out) if args.out else REPO / "benchmarks" / "raw" / f"detection_bench_{date}.jsonl"
    out_path.parent.mkdir(parents=True, exist_ok=True)
    common = {
        "date": date,
        "cpus": os.cpu_count(),
        "omp_threads": os.environ.get("OMP_NUM_THREADS"),
        "locked": not args.no_lock,
    }
    records: list[dict] = []
    t_start = time.perf_counter()
    with contextlib.nullcontext() if args.no_lock else bench_lock(), out_path.open("a") as out:

        def keep(rec: dict) -> None:
            rec = {**rec, **common}
            out.write(json.dumps(rec, default=float) + "\n")
            out.flush()
            records.append(rec)

        log(f"writing {out_path}; load average {loadavg()}")
        cells: list[Iterator[dict]] = []
        if not args.no_cifar and (data_dir / "cifar10n.parquet").exists():
            cells.append(cifar_cells(data_dir, cifar_rows, args.seed))
        if not args.no_tables:
            cells += [table_cells(name, data_dir, args.noises.split(","), args.seed) for name in names]
        for cell in (c for source in cells for c in source):
            for rec in score_candidates(cell["labels"], cell["truth"], cell["proba"], candidates, cell["meta"]):
                keep(rec)
                if "error" in rec:
                    log(f"  {rec['candidate']}: {rec['error']}")
        if not args.no_speed:
            for method in speed_methods:
                log(f"speed: {method} on {speed_rows:,} × {args.speed_classes}; load average {loadavg()}")
                rec = speed_record(method, speed_rows, args.speed_classes, args.seed)
                keep(rec)
                log(
                    f"  {method}: "
                    + (
                        rec.get("error")
                        or f"{rec['seconds']:.1f} s, peak +{rec['peak_extra_bytes'] / 2**20:,.0f} MiB = "
                        f"{rec['peak_extra_x_nbytes']:.2f}× pred_probs; load average {rec['loadavg']} → "
                        f"{rec['loadavg_after']}"
                    )
                )
    log(f"done in {time.perf_counter() - t_start:.0f} s")
    shown = out_path.resolve().relative_to(REPO) if out_path.resolve().is_relative_to(REPO) else out_path
    command = " ".join(["python -m benchmarks.detection_bench", *(argv if argv is not None else sys.argv[1:])])
    header = (
        f"Run of {date}: `{command}` (seed {args.seed}; cleanlab {cleanlab_version()}; {os.cpu_count()} CPUs; "
        f"{time.perf_counter() - t_start:,.0f} s; raw lines in `{shown}`)."
    )
    text = summary(records, header)
    print(text)
    if args.doc:
        DOC.write_text(write_doc(DOC.read_text(), text))
        log(f"{DOC.relative_to(REPO)} updated")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
