"""One fit of the suite, run in a fresh child process so that its seconds and peak memory are its own.

:func:`run_fit` takes a *spec* (plain dict: ``section``, ``setting``, ``method``, ``seed``,
``rows``, ``threads`` and method-specific keys), loads MNIST, builds the data of the setting
with the seed, fits, scores on the clean 10,000 test images, and returns a flat *record*.
Peak memory is the child's ``ru_maxrss``: Python, torch and the MNIST arrays included.
"""

from __future__ import annotations

import resource
import time
import traceback
import warnings
from typing import Any

import numpy as np

from benchmarks.tables import (
    CLEANLAB,
    CT,
    CT_MLP,
    ELKANOTO,
    PLAIN,
    PU,
    ST,
    ST_LOGREG,
)

NOISE = {
    "sym20": ("symmetric", 0.2),
    "sym50": ("symmetric", 0.5),
    "sym80": ("symmetric", 0.8),
    "pair45": ("pair", 0.45),
}
# Plain training of CoTeachingFilter's own networks: every stage that selects or corrects
# labels switched off. THE ONE PLACE to extend when CoTeachingFilter gains a new stage.
PLAIN_PARAMS: dict[str, Any] = {"forget_rate": 0.0, "refine_epochs": 0}
# Switched off too, where CoTeachingFilter has the parameter (stages in development for issue 6).
PLAIN_PARAMS_IF_PRESENT: dict[str, Any] = {"pseudo_weight": 0.0}
# CoTeachingFilter's parameters when PLAIN_PARAMS was last reviewed; a parameter outside this
# set may be a new stage that plain training should switch off (the suite warns about it).
REVIEWED_CT_PARAMS = frozenset(
    {
        "method",
        "forget_rate",
        "num_gradual",
        "co_lambda",
        "per_class",
        "max_epochs",
        "refine_epochs",
        "batch_size",
        "lr",
        "weight_decay",
        "hidden_dims",
        "dropout",
        "input_shape",
        "module",
        "augment",
        "device",
        "random_state",
        "verbose",
        "n_jobs",
        "pseudo_threshold",  # only acts through pseudo_weight, which plain training sets to 0
        "refine_labels",  # only acts through refine_epochs, which plain training sets to 0
        "ema_decay",  # off by default; plain training keeps the default
        *PLAIN_PARAMS_IF_PRESENT,
    }
)


def plain_params() -> tuple[dict[str, Any], list[str]]:
    """Parameters of plain training for the installed ``CoTeachingFilter``, and its unreviewed parameter names.

    Raises
    ------
    KeyError
        If a parameter of :data:`PLAIN_PARAMS` no longer exists (the stages were renamed).
    """
    from labelclean import CoTeachingFilter

    current = CoTeachingFilter().get_params()
    missing = sorted(set(PLAIN_PARAMS) - set(current))
    if missing:
        raise KeyError(
            f"CoTeachingFilter has no parameter(s) {missing}; update PLAIN_PARAMS in benchmarks/tasks.py "
            "so that plain training switches off every stage."
        )
    params = {**PLAIN_PARAMS, **{k: v for k, v in PLAIN_PARAMS_IF_PRESENT.items() if k in current}}
    return params, sorted(set(current) - REVIEWED_CT_PARAMS)


def peak_mb() -> float:
    """Peak resident memory of this process so far, in MB (Linux reports KiB)."""
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def mnist(rows: int) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """The first ``rows`` training images and labels, and the full clean test set, as ``(n, 28, 28)`` float32."""
    from benchmarks.data import load_mnist

    X, y, X_test, y_test = load_mnist()
    return X[:rows], y[:rows], X_test, y_test


def flat(X: np.ndarray) -> np.ndarray:
    """Images as rows of pixels (a view)."""
    return X.reshape(len(X), -1)


def _timed(fn, *args: Any, **kwargs: Any) -> tuple[Any, float]:
    t0 = time.perf_counter()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        out = fn(*args, **kwargs)
    return out, time.perf_counter() - t0


# ---------------------------------------------------------------------------
# Sections 1 and 2: noisy labels
# ---------------------------------------------------------------------------


def ct_mlp_batch(n_rows: int) -> tuple[int, float]:
    """Batch size and learning rate a default ``CoTeachingFilter`` gives its MLP on ``n_rows`` rows."""
    from labelclean import CoTeachingFilter
    from labelclean.coteaching import resolve_batch

    p = CoTeachingFilter().get_params()
    return resolve_batch(p["batch_size"], p["lr"], n_rows, mlp=True)


def fit_noisy(spec: dict) -> dict:
    """CoTeachingFilter (images or flattened), plain training, or cleanlab + skorch MLP on one noise setting."""
    from torch import nn

    from benchmarks import peers, throughput
    from labelclean import CoTeachingFilter, detection_scores, make_noisy_labels

    seed, method = spec["seed"], spec["method"]
    X, y, X_test, y_test = mnist(spec["rows"])
    kind, rate = NOISE["sym50" if spec["setting"] == "scaling" else spec["setting"]]
    y_noisy = make_noisy_labels(y, rate, kind, random_state=seed)
    out: dict[str, Any] = {}
    if method == CLEANLAB:
        epochs = spec["peer_epochs"]
        batch, lr = ct_mlp_batch(len(y_noisy))
        clf = peers.clean_learning(784, 10, epochs=epochs, seed=seed, batch_size=batch, lr=lr)
        model, seconds = _timed(clf.fit, flat(X), y_noisy)
        clean = ~model.label_issues_df["is_label_issue"].to_numpy()
        accuracy = float(np.mean(model.predict(flat(X_test)) == y_test))
        out.update(
            backbone="MLP 784-256-256-10 (skorch)", epochs_per_model=epochs, cv_n_folds=5, batch_size=batch, lr=lr
        )
    else:
        params = spec.get("params", {})
        images = method in (CT, PLAIN)
        Xin, Xt = (X, X_test) if images else (flat(X), flat(X_test))
        model, seconds = _timed(CoTeachingFilter(random_state=seed, **params).fit, Xin, y_noisy)
        clean = model.clean_mask_
        accuracy = float(model.score(Xt, y_test))
        hist = model.history_
        out.update(
            backbone="CNN (images 1×28×28)" if images else "MLP 784-256-256-10",
            noise_rate=float(model.noise_rate_),
            epochs_per_model=throughput.final_network_epochs(hist),
            epochs_by_phase={p: sum(1 for h in hist if h.get("phase") == p) for p in {h.get("phase") for h in hist}},
            params=params,
            batch_size=int(model.batch_size_),
            lr=float(model.lr_),
        )
        if not images:
            net = model.networks_[0]
            linears = [m for m in net.modules() if isinstance(m, nn.Linear)]
            layers = [(m.in_features, m.out_features) for m in linears]
            counted = throughput.rows_from_history(hist, len(y_noisy), n_nets=len(model.networks_))
            out.update(
                layers=layers,
                train_flops=throughput.training_flops(layers, counted["trained"], counted["predicted"]),
                train_seconds=counted["seconds"],
                mlp_default=model.module is None,  # the default network of 2-D rows: the MLP
            )
    det = detection_scores(clean, y_noisy, y)
    return {"accuracy": accuracy, **det, "seconds": seconds, **out}


# ---------------------------------------------------------------------------
# Section 3: semi-supervised and relabel
# ---------------------------------------------------------------------------


def fit_semi(spec: dict) -> dict:
    """SelfTrainer or scikit-learn's SelfTrainingClassifier on 1,000 / 100 labels or 80 % noise."""
    from benchmarks import peers
    from benchmarks.bench_self_training import make_targets
    from labelclean import SelfTrainer, detection_scores

    seed, method, setting = spec["seed"], spec["method"], spec["setting"]
    X, y, X_test, y_test = mnist(spec["rows"])
    y_given = make_targets(setting, y, seed)
    relabel = setting == "relabel80"
    out: dict[str, Any] = {}
    if method == ST:
        model = SelfTrainer(strategy="relabel" if relabel else "auto", random_state=seed)
        model, seconds = _timed(model.fit, X, y_given)
        labels = model.pseudo_labels_
        accuracy = float(np.mean(model.predict(X_test) == y_test))
        out.update(backbone="CNN (images 1×28×28)", n_iter=model.n_iter_, termination=model.termination_condition_)
    else:
        base = "logreg" if method == ST_LOGREG else "mlp"
        clf = peers.self_training(base, 784, 10, epochs=spec["peer_epochs"], seed=seed, min_steps=spec["min_steps"])
        model, seconds = _timed(clf.fit, flat(X), y_given)
        labels = model.predict(flat(X))
        accuracy = float(np.mean(model.predict(flat(X_test)) == y_test))
        out.update(
            backbone="logistic regression" if base == "logreg" else "MLP 784-256-256-10 (skorch)",
            n_iter=int(model.n_iter_),
            termination=model.termination_condition_,
        )
        if base == "mlp":
            out.update(epochs_per_model=spec["peer_epochs"], min_steps=spec["min_steps"])
    if relabel:
        out.update(detection_scores(labels == y_given, y_given, y))
        out["pseudo_accuracy"] = float(np.mean(labels == y))
    else:
        unlabeled = y_given == -1
        out["pseudo_accuracy"] = float(np.mean(labels[unlabeled] == y[unlabeled]))
    return {"accuracy": accuracy, "seconds": seconds, **out}


# ---------------------------------------------------------------------------
# Section 4: PU learning
# ---------------------------------------------------------------------------


def fit_pu(spec: dict) -> dict:
    """PUClassifier or a pulearn peer on even-vs-odd MNIST with 1,000 labeled positives (bench_pu's split)."""
    from benchmarks import peers
    from benchmarks.bench_pu import pu_split
    from labelclean import PUClassifier

    seed, method = spec["seed"], spec["method"]
    X, s, true_prior, X_test, y_test = pu_split(False, spec.get("pu_rows"), seed)
    if method == PU:
        model, seconds = _timed(PUClassifier(random_state=seed).fit, X, s)
        prior = float(model.class_prior_)
        accuracy = float(np.mean(model.predict(X_test) == y_test))
        backbone = "CNN (images 1×28×28)"
    else:
        name = "elkanoto" if method == ELKANOTO else "bagging"
        model, seconds = _timed(peers.pulearn_peer(name, int(s.sum()), seed).fit, flat(X), s)
        # Elkan–Noto's prior is p(s=1) / c; the bagging classifier does not estimate one.
        prior = float(s.mean() / model.c) if method == ELKANOTO else float("nan")
        accuracy = float(np.mean(model.predict(flat(X_test)).astype(int).clip(0, 1) == y_test))
        backbone = "logistic regression"
    return {
        "accuracy": accuracy,
        "prior": prior,
        "true_prior": true_prior,
        "prior_error": abs(prior - true_prior),
        "seconds": seconds,
        "backbone": backbone,
        "n_train": len(s),
    }


FITS = {"noisy": fit_noisy, "speed": fit_noisy, "semi": fit_semi, "pu": fit_pu}


def run_fit(spec: dict) -> dict:
    """Entry point of the child process: fit per ``spec``; failures come back as a record with ``error``."""
    import torch

    torch.set_num_threads(spec["threads"])
    record = {k: spec[k] for k in ("section", "setting", "method", "seed")}
    record.update(n_train=spec.get("rows"), threads=spec["threads"], ours=spec["method"] in (CT, CT_MLP, ST, PU))
    try:
        record.update(FITS[spec["section"]](spec))
    except Exception as exc:  # one failed fit must not cost the rest of the suite
        record["error"] = f"{type(exc).__name__}: {exc}"
        record["traceback"] = traceback.format_exc()
    record["peak_mb"] = peak_mb()
    return record


def matmul_peak(threads: int, quick: bool) -> dict:
    """Child-process entry: the machine's float32 matmul peak on ``threads`` threads."""
    from benchmarks.machine import matmul_peak_gflops

    return matmul_peak_gflops(threads, sizes=(1024, 2048) if quick else (1024, 2048, 3072))
