"""Consensus of CIFAR-10N's three annotators: majority vote, Dawid-Skene, the model method, cleanlab's CROWDLAB.

::

    python -m benchmarks.consensus_bench --doc                  # all 50,000 training rows → benchmarks/raw/, docs
    python -m benchmarks.consensus_bench --rows 3000 --no-lock  # a smoke test on a stratified subset
    python -m benchmarks.consensus_bench --image-model kmeans   # the earlier image model (800 centroids, stride 2)
    python -m benchmarks.consensus_bench --proba /tmp/p.npz     # caches the image model's probabilities

The votes are ``random_label1..3`` of ``<data-dir>/cifar10n.parquet`` (see ``<data-dir>/README.md``),
the truth its clean ``label``. Side by side (:func:`run`):

- ``majority`` and ``dawid_skene`` of :class:`labelclean.consensus.AnnotatorConsensus` (votes only),
  and CIFAR-10N's own ``aggre_label``;
- ``model``: the votes with the out-of-fold probabilities of an image model affordable on a
  small CPU, trained on the votes-only (Dawid-Skene) consensus, five folds. By default
  (``--image-model coates``) Coates and Ng's (2011) single-layer network: 1,600 k-means
  centroids of whitened 6 × 6 patches, every second patch (``--stride 2``; their best, stride 1,
  would take about 25 min on this machine) encoded by the triangle activation,
  4-quadrant sum pooling (:func:`coates_features`, 6,400 features), and a ridge classifier
  regressing on the Dawid-Skene posterior (one-hot with ``--hard-targets``), its penalty chosen
  by the first fold's agreement with the votes, never the clean label (:func:`ridge_oof_proba`).
  ``--image-model kmeans`` is the earlier, cheaper model: 800 centroids at stride 2, soft-threshold
  encoding (:func:`kmeans_features`) and a fixed ridge penalty; ``--image-model patches`` the
  random-patch features and logistic regression of the detection benchmark
  (:func:`benchmarks.detection_bench.cifar_features`, :func:`benchmarks.detection_bench.oof_proba`);
- ``cleanlab.multiannotator.get_label_quality_multiannotator`` on the same probabilities
  (skipped with a message when cleanlab is missing); its rows are flagged by the same rule as
  ours (the expected number of wrong consensus labels, of lowest quality).

Each record: consensus noise (share of rows whose consensus is not the clean label), each
annotator's estimated accuracy beside its true one, precision / recall / F1 of the flagged rows
against "consensus wrong", seconds and the load average. One JSON line per record is appended
to ``benchmarks/raw/consensus_bench_<date>.jsonl``; ``--doc`` writes the table between
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


PATCH, STRIDE = 6, 2  #: patch side and step of the encoding, pixels
FILTERS = 800  #: k-means centroids of the image model (features: 8 per centroid)
ALPHA = 0.25  #: soft threshold of the encoding
RIDGE = 1.0  #: ridge penalty of the image model, per unit of standardised feature variance and row


def _normalised_patches(block: np.ndarray, eps: float, stride: int = 1) -> np.ndarray:
    """The ``PATCH`` × ``PATCH`` patches of ``block`` ``(b, H, W, 3)`` every ``stride`` pixels, normalised."""
    win = np.lib.stride_tricks.sliding_window_view(block, (PATCH, PATCH), axis=(1, 2))  # (b, h, w, 3, P, P)
    win = win[:, ::stride, ::stride]
    p = win.reshape(*win.shape[:3], -1).astype(np.float32)
    p -= p.mean(axis=-1, keepdims=True)
    p /= np.sqrt(p.var(axis=-1, keepdims=True) + eps)
    return p


def kmeans_features(
    images: np.ndarray, *, filters: int = FILTERS, stride: int = STRIDE, seed: int = 0, iters: int = 10, batch: int = 50
) -> np.ndarray:
    """Single-layer k-means patch features of images ``(n, 3, H, W)`` in [0, 1], no label seen (Coates and Ng, 2011).

    The patches are normalised and ZCA-whitened (fitted on 200,000 patches) as in
    :func:`benchmarks.detection_bench.cifar_features`; the dictionary is ``filters`` centroids of
    spherical k-means on those whitened patches (``iters`` rounds, started from random patches).
    Every ``stride``-th patch's responses ``z`` are encoded ``max(0, z - ALPHA)`` and ``max(0, -z - ALPHA)`` and
    summed over the four quadrants (a matrix product): ``8 * filters`` float32 features a row.
    """
    rng = np.random.default_rng(seed)
    x = np.ascontiguousarray(images.transpose(0, 2, 3, 1), dtype=np.float32)
    eps = 10.0 / 255.0**2
    sample = _normalised_patches(x[rng.choice(len(x), size=min(len(x), 2000), replace=False)], eps)
    sample = sample.reshape(-1, sample.shape[-1])
    sample = sample[rng.choice(len(sample), size=min(len(sample), 200_000), replace=False)].astype(np.float64)
    mean = sample.mean(axis=0)
    eigval, eigvec = np.linalg.eigh(np.cov(sample, rowvar=False))
    zca = (eigvec / np.sqrt(eigval + 0.1)) @ eigvec.T
    white = ((sample - mean) @ zca).astype(np.float32)
    centroids = white[rng.choice(len(white), size=filters, replace=False)].copy()
    centroids /= np.linalg.norm(centroids, axis=1, keepdims=True) + 1e-8
    for _ in range(iters):  # spherical k-means: assign by cosine, centroid = normalised sum
        sim = white @ centroids.T
        best = sim.argmax(axis=1)
        new = np.zeros_like(centroids)
        np.add.at(new, best, white * sim[np.arange(len(white)), best][:, None])
        norm = np.linalg.norm(new, axis=1)
        empty = norm < 1e-8
        new[empty] = white[rng.choice(len(white), size=int(empty.sum()), replace=False)]
        centroids = new / np.linalg.norm(new, axis=1, keepdims=True)
    proj = (zca @ centroids.T.astype(np.float64)).astype(np.float32)
    shift = (mean @ zca @ centroids.T.astype(np.float64)).astype(np.float32)
    h, w = (x.shape[1] - PATCH) // stride + 1, (x.shape[2] - PATCH) // stride + 1
    rows, cols = np.divmod(np.arange(h * w), w)
    quadrant = (rows >= h // 2) * 2 + (cols >= w // 2)
    pool = np.eye(4, dtype=np.float32)[quadrant].T.copy()  # (4, h * w): a quadrant's sum as a product
    out = np.empty((len(x), 8 * filters), dtype=np.float32)
    buf = np.empty((batch * h * w, filters), dtype=np.float32)
    for start in range(0, len(x), batch):
        p = _normalised_patches(x[start : start + batch], eps, stride)
        b = len(p)
        z = np.matmul(p.reshape(-1, p.shape[-1]), proj, out=buf[: b * h * w])
        z -= shift
        both = np.empty((b, 2, 4, filters), dtype=np.float32)
        tmp = np.empty_like(z)
        np.subtract(z, ALPHA, out=tmp)
        np.maximum(tmp, 0.0, out=tmp)
        np.matmul(pool, tmp.reshape(b, h * w, filters), out=both[:, 0])
        np.add(z, ALPHA, out=tmp)
        np.minimum(tmp, 0.0, out=tmp)  # -max(0, -z - ALPHA)
        np.matmul(pool, tmp.reshape(b, h * w, filters), out=both[:, 1])
        both[:, 1] *= -1.0
        out[start : start + b] = both.reshape(b, -1)
    return out


COATES_FILTERS = 1600  #: centroids of the Coates-Ng encoding (features: 4 per centroid)
#: step of its patches: Coates and Ng's best is 1, whose encoding costs 3.7 times stride 2's (about 25 min here)
COATES_STRIDE = 2
PENALTIES = (0.01, 0.03, 0.1, 0.3, 1.0)  #: ridge penalties tried, per unit of feature variance and row


def _sample_patches(images: np.ndarray, count: int, rng: np.random.Generator) -> np.ndarray:
    """``count`` random ``PATCH`` × ``PATCH`` patches of images ``(n, 3, H, W)``, flattened as ``unfold`` does."""
    n, c, h, w = images.shape
    img = rng.integers(0, n, size=count)
    r = rng.integers(0, h - PATCH + 1, size=count)[:, None] + np.arange(PATCH)
    s = rng.integers(0, w - PATCH + 1, size=count)[:, None] + np.arange(PATCH)
    ch = np.arange(c)[None, :, None, None]
    out = images[img[:, None, None, None], ch, r[:, None, :, None], s[:, None, None, :]]
    return out.reshape(count, -1).astype(np.float32)


def coates_features(
    images: np.ndarray,
    *,
    filters: int = COATES_FILTERS,
    stride: int = COATES_STRIDE,
    seed: int = 0,
    iters: int = 10,
    samples: int = 200_000,
    batch: int = 8,
    compile: bool | None = None,
) -> np.ndarray:
    """Coates and Ng's (2011) single-layer k-means features of images ``(n, 3, H, W)`` in [0, 1], no label seen.

    ``samples`` random 6 × 6 patches are brightness- and contrast-normalised and ZCA-whitened
    (regulariser 0.1); the dictionary is ``filters`` centroids of Euclidean k-means on them
    (``iters`` rounds, started from random patches). Every patch at step ``stride`` is encoded by
    the triangle activation ``max(0, mean_k(d_k) - d_k)`` of its distances ``d_k`` to the centroids
    and summed over the image's four quadrants: ``4 * filters`` float32 features a row. The
    encoding is batched (``batch`` images a step: matrix products in torch, float32), compiled by
    ``torch.compile`` when ``compile`` (default: more than 2,000 images) and eager otherwise.
    """
    import torch
    import torch.nn.functional as F

    rng = np.random.default_rng(seed)
    eps = 10.0 / 255.0**2
    sample = _sample_patches(images, samples, rng).astype(np.float64)
    sample -= sample.mean(axis=1, keepdims=True)
    sample /= np.sqrt(sample.var(axis=1, keepdims=True) + eps)
    mean = sample.mean(axis=0)
    eigval, eigvec = np.linalg.eigh(np.cov(sample, rowvar=False))
    zca = (eigvec / np.sqrt(eigval + 0.1)) @ eigvec.T
    white = torch.from_numpy(((sample - mean) @ zca).astype(np.float32))
    centroids = white[torch.from_numpy(rng.choice(len(white), size=filters, replace=False))].clone()
    for _ in range(iters):  # Euclidean k-means; an empty cluster restarts at a random patch
        cc = (centroids * centroids).sum(1)
        best = torch.cat([torch.addmm(cc, part, centroids.T, alpha=-2).argmin(1) for part in white.split(20_000)])
        sums = torch.zeros_like(centroids).index_add_(0, best, white)
        counts = torch.bincount(best, minlength=filters).to(torch.float32)
        empty = counts == 0
        centroids = sums / counts.clamp(min=1)[:, None]
        if empty.any():
            centroids[empty] = white[torch.from_numpy(rng.choice(len(white), size=int(empty.sum()), replace=False))]
    _, _, h, w = images.shape
    oh, ow = (h - PATCH) // stride + 1, (w - PATCH) // stride + 1
    rows, cols = np.divmod(np.arange(oh * ow), ow)
    quadrant = (rows >= oh // 2) * 2 + (cols >= ow // 2)
    pool = torch.from_numpy(np.eye(4, dtype=np.float32)[quadrant].T.copy())  # (4, oh * ow): quadrant sums
    m = torch.from_numpy(mean.astype(np.float32))
    z = torch.from_numpy(zca.astype(np.float32))
    ct = centroids.T.contiguous()
    cc = (centroids * centroids).sum(1)

    def encode(xb: torch.Tensor) -> torch.Tensor:
        b = xb.shape[0]
        p = F.unfold(xb, PATCH, stride=stride).transpose(1, 2).reshape(-1, 3 * PATCH * PATCH)
        p = (p - p.mean(1, keepdim=True)) / torch.sqrt(p.var(1, unbiased=False, keepdim=True) + eps)
        x = (p - m) @ z
        dist = torch.sqrt(torch.clamp(torch.addmm(cc, x, ct, alpha=-2) + (x * x).sum(1, keepdim=True), min=0))
        act = torch.clamp(dist.mean(1, keepdim=True) - dist, min=0)
        return torch.matmul(pool, act.view(b, oh * ow, filters)).reshape(b, 4 * filters)

    if compile is None:
        compile = len(images) > 2000
    step = encode
    if compile:
        try:
            step = torch.compile(encode, dynamic=False)
            step(torch.zeros((batch, *images.shape[1:])))
        except Exception as exc:  # noqa: BLE001 - no compiler: the eager encoding, same figures
            log(f"torch.compile failed ({type(exc).__name__}): eager encoding")
            step = encode
    out = np.empty((len(images), 4 * filters), dtype=np.float32)
    with torch.inference_mode():
        for start in range(0, len(images), batch):
            xb = torch.from_numpy(np.ascontiguousarray(images[start : start + batch], dtype=np.float32))
            b = len(xb)
            if b < batch:  # a fixed shape for the compiled step
                xb = torch.cat([xb, xb.new_zeros((batch - b, *xb.shape[1:]))])
            out[start : start + b] = step(xb)[:b].numpy()
    return out


def vote_agreement(labels: np.ndarray, votes: np.ndarray) -> float:
    """Mean share of the annotators' votes that ``labels`` agree with (missing votes, -1, left out)."""
    seen = votes >= 0
    return float(((votes == labels[:, None]) & seen).sum() / max(1, seen.sum()))


def ridge_oof_proba(
    features: np.ndarray,
    labels: np.ndarray,
    seed: int,
    *,
    folds: int = 5,
    targets: np.ndarray | None = None,
    votes: np.ndarray | None = None,
    penalties: tuple[float, ...] | None = None,
) -> np.ndarray:
    """Out-of-fold class probabilities of a ridge classifier on standardised ``features``, tempered.

    One-vs-rest ridge regression on ``targets`` (default: the one-hot ``labels``; soft targets such
    as a consensus posterior are welcome), fitted on four folds and scored on the fifth, in float32
    (closed form: the Gram matrix of each fold once, a training set's by subtraction). The penalty
    (per unit of standardised feature variance and training row) is :data:`RIDGE`, or with
    ``penalties`` the one whose first-fold predictions agree most with ``votes`` (default: with
    ``labels``), a score that sees no clean label. The scores become probabilities
    ``softmax(s / t)``, ``t`` maximising the likelihood of ``labels`` on the out-of-fold scores.
    """
    import scipy.linalg
    from scipy.optimize import minimize_scalar
    from scipy.special import log_softmax
    from sklearn.model_selection import StratifiedKFold

    k = int(labels.max()) + 1
    X = features.astype(np.float32, copy=True)
    X -= X.mean(axis=0)
    X /= X.std(axis=0) + 1e-6
    X = np.hstack([X, np.ones((len(X), 1), dtype=np.float32)])
    Y = np.eye(k, dtype=np.float32)[labels] if targets is None else np.asarray(targets, dtype=np.float32)
    split = list(StratifiedKFold(folds, shuffle=True, random_state=seed).split(np.zeros(len(labels)), labels))
    grams = [X[test].T @ X[test] for _, test in split]  # each fold's Gram matrix; the total is their sum
    crosses = [X[test].T @ Y[test] for _, test in split]
    gram, cross = sum(grams), sum(crosses)
    reference = labels[:, None] if votes is None else votes

    def fit(i: int, penalty: float) -> np.ndarray:
        train, test = split[i]
        g = gram - grams[i]
        g[np.diag_indices_from(g)] += penalty * len(train)
        return X[test] @ scipy.linalg.solve(g, cross - crosses[i], assume_a="pos")

    penalty = RIDGE
    if penalties:
        fold = {p: vote_agreement(fit(0, p).argmax(1), reference[split[0][1]]) for p in penalties}
        penalty = max(fold, key=fold.get)
        log("ridge penalty by first-fold vote agreement: " + ", ".join(f"{p:g} {a:.4f}" for p, a in fold.items()))
    scores = np.empty((len(X), k), dtype=np.float64)
    for i, (_, test) in enumerate(split):
        scores[test] = fit(i, penalty)

    def loss(log_t: float) -> float:
        return -float(log_softmax(scores / np.exp(log_t), axis=1)[np.arange(len(labels)), labels].mean())

    t = float(np.exp(minimize_scalar(loss, bounds=(-6.0, 3.0), method="bounded").x))
    return np.exp(log_softmax(scores / t, axis=1)).astype(np.float32)


def votes_only(data: dict) -> list[dict]:
    from labelclean.consensus import AnnotatorConsensus

    records = [score("aggre_label (CIFAR-10N)", data["aggre"], None, None, data, 0.0)]
    for method in ("majority", "dawid_skene"):
        t0 = time.perf_counter()
        est = AnnotatorConsensus(method=method).fit(None, data["votes"])
        seconds = time.perf_counter() - t0
        records.append(score(method, est.consensus_labels_, ~est.clean_mask_, est.annotator_accuracy_, data, seconds))
    v = data["votes"]
    records[1]["ties"] = int(((v[:, 0] != v[:, 1]) & (v[:, 0] != v[:, 2]) & (v[:, 1] != v[:, 2])).sum())
    return records


def image_proba(
    data: dict,
    start: np.ndarray,
    seed: int,
    image_model: str,
    posterior: np.ndarray | None = None,
    *,
    filters: int = COATES_FILTERS,
    stride: int = COATES_STRIDE,
) -> tuple[np.ndarray, str]:
    """Out-of-fold probabilities of the image model trained on ``start`` (the votes-only consensus), and its name.

    ``coates`` regresses on ``posterior`` (the votes-only consensus posterior) when given, its
    penalty chosen by the agreement with the votes.
    """
    if image_model == "patches":
        from benchmarks.detection_bench import cifar_features, cifar_model, oof_proba

        features = cifar_features(data["images"], seed=seed)
        return oof_proba(cifar_model(seed), features, start, seed), "random-patch features + LogisticRegression"
    t0 = time.perf_counter()
    if image_model == "kmeans":
        features = kmeans_features(data["images"], seed=seed)
        name = f"k-means patch features ({FILTERS} centroids, stride {STRIDE}) + ridge"
    else:
        features = coates_features(data["images"], filters=filters, stride=stride, seed=seed)
        name = (
            f"Coates-Ng k-means triangle features ({filters} centroids, 6×6 patches at stride "
            f"{stride}, whitened, 4 quadrants) + ridge"
        )
    log(f"{image_model} features: {features.shape} in {time.perf_counter() - t0:.0f} s, load {os.getloadavg()[0]:.2f}")
    if image_model == "kmeans":
        return ridge_oof_proba(features, start, seed), name
    soft = posterior is not None
    proba = ridge_oof_proba(features, start, seed, targets=posterior, votes=data["votes"], penalties=PENALTIES)
    targets = "the consensus posterior" if soft else "one-hot"
    return proba, f"{name} (targets: {targets}; penalty by vote agreement)"


def with_model(
    data: dict,
    seed: int,
    image_model: str = "coates",
    proba_file: Path | None = None,
    *,
    soft: bool = True,
    filters: int = COATES_FILTERS,
    stride: int = COATES_STRIDE,
) -> list[dict]:
    """The model method and cleanlab's CROWDLAB on the same out-of-fold probabilities.

    With ``proba_file``, the probabilities (and the image model's name and seconds) are read from
    it when it exists, and written to it when it does not.
    """
    from labelclean.consensus import AnnotatorConsensus, flag_rows

    t0 = time.perf_counter()
    if proba_file is not None and proba_file.exists():
        saved = np.load(proba_file)
        proba, model_name, model_seconds = saved["proba"], str(saved["name"]), float(saved["seconds"])
        log(f"image model: probabilities read from {proba_file}")
    else:
        ds = AnnotatorConsensus(method="dawid_skene").fit(None, data["votes"])
        posterior = ds.posterior_ if soft else None
        proba, model_name = image_proba(
            data, ds.consensus_labels_, seed, image_model, posterior, filters=filters, stride=stride
        )
        model_seconds = time.perf_counter() - t0
        if proba_file is not None:
            np.savez(proba_file, proba=proba, name=model_name, seconds=model_seconds)
    accuracy = float(np.mean(proba.argmax(1) == data["truth"]))
    log(f"image model: {len(proba)} rows, out-of-fold accuracy {accuracy:.3f} in {model_seconds:.0f} s")
    t0 = time.perf_counter()
    est = AnnotatorConsensus(random_state=seed).fit(None, data["votes"], pred_probs=proba)
    seconds = time.perf_counter() - t0
    rec = score("model (labelclean)", est.consensus_labels_, ~est.clean_mask_, est.annotator_accuracy_, data, seconds)
    rec.update(
        model_seconds=round(model_seconds, 2),
        model_accuracy=accuracy,
        image_model=model_name,
        model_weight=est.model_weight_,
    )
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


def accuracy_table(records: list[dict]) -> str:
    """Each annotator's estimated accuracy beside its true one, one row per method that estimates it."""
    rows = [r for r in records if r.get("estimated_accuracy") is not None]
    if not rows:
        return ""
    names = ", ".join(f"{a} {t:.4f}" for a, t in zip(ANNOTATORS, rows[0]["true_accuracy"]))
    lines = [
        f"True accuracies: {names}.",
        "",
        "| method | " + " | ".join(ANNOTATORS) + " | max error |",
        "| --- | " + " | ".join("---:" for _ in ANNOTATORS) + " | ---: |",
    ]
    for r in rows:
        cells = " | ".join(f"{e:.4f} ({e - t:+.4f})" for e, t in zip(r["estimated_accuracy"], r["true_accuracy"]))
        lines.append(f"| {r['method']} | {cells} | {r['accuracy_error']:.4f} |")
    return "\n".join(lines)


def doc_body(records: list[dict], command: str) -> str:
    """The consensus region of ``docs/benchmarks.md``: both tables, the image model and how to rerun."""
    load = ", ".join(f"{x:.2f}" for x in records[-1]["loadavg"])
    parts = ["### Consensus of CIFAR-10N's three annotators", "", table(records), ""]
    model = next((r for r in records if "model_accuracy" in r), None)
    if model is not None:
        parts += [
            f"Image model: {model['image_model']}, trained on the Dawid-Skene consensus, out-of-fold "
            f"accuracy {model['model_accuracy']:.3f} against the clean label, {model['model_seconds']:.0f} s "
            f"(features and the five folds); model weight {model['model_weight']:.2f}.",
            "",
        ]
    parts += [
        "Estimated accuracy of each annotator (estimate − truth in brackets); for cleanlab, its "
        "`annotator_quality` score:",
        "",
        accuracy_table(records),
        "",
        f"Majority vote breaks a tie (all three votes differ on {records[1].get('ties', 0):,} rows) by the vote "
        "of the annotator who agrees most often with the others; its accuracy estimate is the agreement "
        "with the majority label. Consensus noise is the share of rows whose consensus is "
        "not the clean label; the flags are the rows not trusted (`~clean_mask_`), scored against "
        '"consensus wrong".',
        "",
        f"`{command}`; load average at the end {load} (2 cores, shared).",
        "",
    ]
    return "\n".join(parts)


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
    parser.add_argument(
        "--image-model",
        choices=("coates", "kmeans", "patches"),
        default="coates",
        help="Coates-Ng triangle k-means features + ridge, the earlier soft-threshold k-means features + ridge, "
        "or the detection benchmark's random patches + logistic regression",
    )
    parser.add_argument(
        "--hard-targets",
        action="store_true",
        help="coates: regress on the one-hot Dawid-Skene consensus rather than its posterior",
    )
    parser.add_argument(
        "--proba",
        default=None,
        help="an .npz file of the image model's out-of-fold probabilities: read if it exists, else written",
    )
    parser.add_argument("--filters", type=int, default=COATES_FILTERS, help="coates: k-means centroids")
    parser.add_argument("--stride", type=int, default=COATES_STRIDE, help="coates: step of the encoded patches")
    parser.add_argument("--no-lock", action="store_true", help="do not wait for the machine's benchmark lock")
    parser.add_argument("--doc", action="store_true", help="write the table into docs/benchmarks.md")
    parser.add_argument("--out", default=None, help="JSON lines file [benchmarks/raw/consensus_bench_<date>.jsonl]")
    args = parser.parse_args(argv)
    data_dir = Path(args.data_dir)
    if not (data_dir / "cifar10n.parquet").exists():
        raise SystemExit(f"no cifar10n.parquet in {data_dir}; pass --data-dir.")
    out = Path(args.out or REPO / "benchmarks" / "raw" / f"consensus_bench_{dt.date.today():%Y-%m-%d}.jsonl")
    from benchmarks.real_suite import bench_lock

    with contextlib.nullcontext() if args.no_lock else bench_lock():
        t0 = time.perf_counter()
        images = not args.votes_only and not (args.proba and Path(args.proba).exists())
        data = load(data_dir, args.rows, args.seed, images=images)
        log(f"loaded {len(data['truth']):,} rows in {time.perf_counter() - t0:.0f} s")
        records = votes_only(data)
        if not args.votes_only:
            proba_file = Path(args.proba) if args.proba else None
            records += with_model(
                data,
                args.seed,
                args.image_model,
                proba_file,
                soft=not args.hard_targets,
                filters=args.filters,
                stride=args.stride,
            )
    with out.open("a") as fh:
        for r in records:
            fh.write(json.dumps({"bench": "consensus", "seed": args.seed, **r}) + "\n")
    options = [f"--rows {args.rows}"] if args.rows != 50_000 else []
    options += (["--votes-only"] if args.votes_only else []) + (
        [f"--image-model {args.image_model}"] if args.image_model != "coates" else []
    )
    options += ["--hard-targets"] if args.hard_targets else []
    options += [f"--filters {args.filters}"] if args.filters != COATES_FILTERS else []
    options += [f"--stride {args.stride}"] if args.stride != COATES_STRIDE else []
    body = doc_body(records, " ".join(["python -m benchmarks.consensus_bench", *options, "--doc"]))
    print(body)
    if args.doc:
        DOC.write_text(write_doc(DOC.read_text(), body))
    return 0


if __name__ == "__main__":
    sys.exit(main())
