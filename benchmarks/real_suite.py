"""The real-data suite: every table of ``<data-dir>/tabular``, the text set, MNIST and CIFAR-10N, with peers.

::

    python -m benchmarks.real_suite                          # test split, seed 0, every dataset → docs/benchmarks.md
    python -m benchmarks.real_suite --split validation --seeds 100,101 --no-doc   # what the defaults were chosen on
    python -m benchmarks.real_suite --datasets sonar,vote --noises none,sym20 --no-images --no-doc   # a quick look

Each dataset is split once per seed into training rows (70 %, stratified) and test rows (30 %);
``--split validation`` splits the training rows again (70 / 30) and scores on that part, so the
test rows are never seen while defaults are chosen. Noise is applied to the training labels
only (:data:`NOISES`); every method sees the same noisy labels and features, in the form a user
has them (DataFrames with strings and nulls for the tables; the peers get scikit-learn's own
preprocessing). Scores:

- detection F1 of the flagged rows (``~clean_mask_``; cleanlab's ``is_label_issue``; for a plain
  model, out-of-fold predictions that disagree with the given label) against the truly noisy rows;
- the accuracy of the corrected labels (``pseudo_labels_``; for the peers, their predicted label
  on the flagged rows) against the true labels, beside the accuracy of the given labels;
- balanced accuracy of ``predict`` on the held-out rows;
- seconds per fit, and the load average before and after it.

The run takes an exclusive lock on ``/tmp/labelclean-bench.lock`` (two benchmarks never share
the cores), writes every record as a JSON line to ``benchmarks/raw/real_suite_<split>_<date>.jsonl``
(or ``--out``), and, for the test split, the tables between ``<!-- real:begin -->`` and
``<!-- real:end -->`` of ``docs/benchmarks.md`` (:mod:`benchmarks.real_tables`).
"""

from __future__ import annotations

import argparse
import contextlib
import datetime as dt
import fcntl
import json
import os
import sys
import time
import traceback
import warnings
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np

from benchmarks import real_data

REPO = Path(__file__).resolve().parent.parent
LOCK = Path("/tmp/labelclean-bench.lock")
#: Noise settings of the tables and the text set, applied to the training labels.
NOISES = ("none", "sym20", "sym40", "asym30", "inst30")
#: CIFAR-10N: the clean labels and three of its real human label sets.
CIFAR_NOISES = ("none", "aggre_label", "random_label1", "worse_label")
OURS = "labelclean"
METHODS = (OURS, "cleanlab_hgb", "cleanlab_logreg", "hgb", "network", "clean_hgb", "clean_network")
#: Pixels (MNIST, CIFAR-10N): gradient boosting is left out, too slow on pixels for a CPU run
#: (one HistGradientBoostingClassifier fit on 2,000 CIFAR rows of 3,072 pixels took 175 s on the
#: 2-core machine; cleanlab fits six). The ceiling is labelclean's network on the clean labels.
PIXEL_METHODS = {
    "images": (OURS, "network", "clean_network"),
    "vectors": (OURS, "cleanlab_logreg", "network", "clean_network"),
}
#: Peers whose flags compete with ours (``clean_hgb`` is the clean-label ceiling, not a peer).
PEERS = ("cleanlab_hgb", "cleanlab_logreg", "hgb", "network")
MNIST_ROWS, MNIST_TEST_ROWS = 6_000, 2_000
CIFAR_ROWS, CIFAR_TEST_ROWS = 4_000, 2_000


def log(message: str) -> None:
    print(f"[real_suite {time.strftime('%H:%M:%S')}] {message}", file=sys.stderr, flush=True)


@contextlib.contextmanager
def bench_lock() -> Iterator[None]:
    """Hold the machine's benchmark lock for the duration of the run (waits for another run to end)."""
    with LOCK.open("a") as fh:
        try:
            fcntl.flock(fh, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            log(f"waiting for {LOCK} (another benchmark holds it)")
            fcntl.flock(fh, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(fh, fcntl.LOCK_UN)


# ---------------------------------------------------------------------------
# Splits and noise
# ---------------------------------------------------------------------------


def strat_key(y: np.ndarray) -> np.ndarray:
    """Stratification labels: classes with a single row are grouped with the largest class."""
    counts = np.bincount(y)
    return np.where(counts[y] < 2, np.argmax(counts), y)


def split_rows(y: np.ndarray, split: str, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """Training and scoring rows: 70 / 30 stratified; ``validation`` splits the training part again."""
    from sklearn.model_selection import train_test_split

    idx = np.arange(len(y))
    train, test = train_test_split(idx, test_size=0.3, stratify=strat_key(y), random_state=seed)
    if split == "validation":
        train, test = train_test_split(train, test_size=0.3, stratify=strat_key(y[train]), random_state=seed)
    return np.sort(train), np.sort(test)


def noise_model_proba(X: Any, y: np.ndarray, kind: str, seed: int) -> np.ndarray:
    """Out-of-fold probabilities of a model trained on the clean labels (for instance-dependent noise).

    Trees (scikit-learn's gradient boosting, native categories) for tables; a logistic
    regression for vectors and pixels.
    """
    from sklearn.model_selection import StratifiedKFold

    folds = StratifiedKFold(5, shuffle=True, random_state=seed)
    X = _peer_tables(X, X)[0]
    proba = np.zeros((len(y), int(y.max()) + 1))
    for fit, held in folds.split(np.zeros(len(y)), strat_key(y)):
        model = peer_model("hgb" if kind == "tabular" else "logreg", X, seed).fit(take(X, fit), y[fit])
        proba[np.ix_(held, model.classes_)] = model.predict_proba(take(X, held))
    return proba


def make_noise(setting: str, y: np.ndarray, X: Any, kind: str, seed: int) -> np.ndarray:
    from labelclean.noise import make_asymmetric_labels, make_instance_labels, make_noisy_labels

    if setting == "none":
        return y.copy()
    if setting.startswith("sym"):
        return make_noisy_labels(y, int(setting[3:]) / 100, random_state=seed)
    if setting == "asym30":
        return make_asymmetric_labels(y, 0.3, random_state=seed)
    if setting == "inst30":
        return make_instance_labels(y, noise_model_proba(X, y, kind, seed), 0.3)
    raise ValueError(f"unknown noise setting {setting!r}")


def take(X: Any, rows: np.ndarray) -> Any:
    return X.iloc[rows].reset_index(drop=True) if hasattr(X, "iloc") else X[rows]


# ---------------------------------------------------------------------------
# Peers (built from their own libraries, with scikit-learn's own preprocessing)
# ---------------------------------------------------------------------------


def peer_model(name: str, X: Any, seed: int) -> Any:
    """``"hgb"``: gradient boosting with pandas categories as categories; ``"logreg"``: one-hot + scaling + LR."""
    from sklearn.compose import make_column_selector, make_column_transformer
    from sklearn.ensemble import HistGradientBoostingClassifier
    from sklearn.impute import SimpleImputer
    from sklearn.linear_model import LogisticRegression
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import OneHotEncoder, StandardScaler

    if name == "hgb":
        return HistGradientBoostingClassifier(random_state=seed)
    if not hasattr(X, "columns"):
        return make_pipeline(StandardScaler(), LogisticRegression(max_iter=1000))
    numeric = make_pipeline(
        SimpleImputer(strategy="mean", add_indicator=True, keep_empty_features=True), StandardScaler()
    )
    categorical = make_pipeline(
        SimpleImputer(strategy="constant", fill_value="missing"), OneHotEncoder(handle_unknown="ignore")
    )
    prep = make_column_transformer(
        (numeric, make_column_selector(dtype_include="number")),
        (categorical, make_column_selector(dtype_exclude="number")),
    )
    return make_pipeline(prep, LogisticRegression(max_iter=1000))


def peer_frame(X: Any) -> Any:
    """Tables for the peers: string columns as pandas categories (which the boosted trees take natively)."""
    if not hasattr(X, "columns"):
        return X
    import pandas as pd

    X = X.copy()
    for c in X.columns:
        if not pd.api.types.is_numeric_dtype(X[c].dtype):
            X[c] = X[c].astype("category")
    return X


def _peer_tables(X_train: Any, X_test: Any) -> tuple[Any, Any]:
    """Categories fixed on the training rows, so the test rows encode the same way."""
    if not hasattr(X_train, "columns"):
        return X_train, X_test
    import pandas as pd

    a, b = peer_frame(X_train), X_test.copy()
    for c in a.columns:
        if isinstance(a[c].dtype, pd.CategoricalDtype):
            b[c] = pd.Categorical(b[c].astype(object).where(b[c].notna(), None), categories=a[c].cat.categories)
    keep = [c for c in a.columns if a[c].notna().any()]  # an all-null column breaks the boosted trees' binning
    return a[keep], b[keep]


# ---------------------------------------------------------------------------
# One fit
# ---------------------------------------------------------------------------


def balanced_accuracy(y_true: np.ndarray, y_pred: np.ndarray) -> float:
    from sklearn.metrics import balanced_accuracy_score

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return float(balanced_accuracy_score(y_true, y_pred))


def run_method(method: str, cell: dict, seed: int) -> dict:
    """Fit ``method`` on the cell's training rows; return its flags, corrected labels and test predictions."""
    from sklearn.model_selection import StratifiedKFold, cross_val_predict

    X, y_noisy, X_test = cell["X"], cell["y_noisy"], cell["X_test"]
    if method == OURS:
        from labelclean import CoTeachingFilter

        model = CoTeachingFilter(random_state=seed).fit(X, y_noisy)
        return {
            "clean": model.clean_mask_,
            "pseudo": model.pseudo_labels_,
            "pred": model.predict(X_test),
            "backbone": model.backbone_,
            "noise_rate_estimate": float(model.noise_rate_),
        }
    if method in ("network", "clean_network"):  # labelclean's own network with every cleaning stage off
        from labelclean import CoTeachingFilter

        labels = cell["y"] if method == "clean_network" else y_noisy
        model = CoTeachingFilter(
            estimator="network", forget_rate=0.0, refine_epochs=0, pseudo_weight=0.0, random_state=seed
        ).fit(X, labels)
        if method == "clean_network":
            return {"pred": model.predict(X_test)}
        proba = model.predict_proba(X)
        best = model.classes_[np.argmax(proba, axis=1)]
        return {"clean": best == y_noisy, "pseudo": best, "pred": model.predict(X_test)}
    Xp, Xp_test = _peer_tables(X, X_test)
    if method.startswith("cleanlab"):
        from cleanlab.classification import CleanLearning

        base = peer_model("hgb" if method == "cleanlab_hgb" else "logreg", Xp, seed)
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            model = CleanLearning(base, seed=seed).fit(Xp, y_noisy)
        issues = model.label_issues_df
        flagged = issues["is_label_issue"].to_numpy()
        pseudo = np.where(flagged, issues["predicted_label"].to_numpy(), y_noisy)
        return {"clean": ~flagged, "pseudo": pseudo, "pred": model.predict(Xp_test)}
    if method in ("hgb", "clean_hgb"):
        labels = cell["y"] if method == "clean_hgb" else y_noisy
        model = peer_model("hgb", Xp, seed)
        out: dict[str, Any] = {"pred": model.fit(Xp, labels).predict(Xp_test)}
        if method == "hgb":
            folds = StratifiedKFold(5, shuffle=True, random_state=seed)
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")
                oof = cross_val_predict(
                    peer_model("hgb", Xp, seed), Xp, y_noisy, cv=folds.split(Xp, strat_key(y_noisy))
                )
            out.update(clean=oof == y_noisy, pseudo=oof)
        return out
    raise ValueError(f"unknown method {method!r}")


def score(method: str, cell: dict, result: dict) -> dict:
    from labelclean import detection_scores

    y, y_noisy, y_test = cell["y"], cell["y_noisy"], cell["y_test"]
    rec: dict[str, Any] = {
        "balanced_accuracy": balanced_accuracy(y_test, result["pred"]),
        "accuracy": float(np.mean(result["pred"] == y_test)),
    }
    if "clean" in result:
        det = detection_scores(result["clean"], y_noisy, y)
        pseudo = np.asarray(result["pseudo"])
        minority = int(np.argmin(np.bincount(y)))
        rec.update(
            f1=det["f1"],
            precision=det["precision"],
            recall=det["recall"],
            n_flagged=det["n_flagged"],
            n_noisy=det["n_noisy"],
            pseudo_accuracy=float(np.mean(pseudo == y)),
            given_accuracy=float(np.mean(y_noisy == y)),
            n_changed=int(np.sum(pseudo != y_noisy)),
            minority_true_share=float(np.mean(y == minority)),
            minority_given_share=float(np.mean(y_noisy == minority)),
            minority_pseudo_share=float(np.mean(pseudo == minority)),
        )
    rec.update({k: v for k, v in result.items() if k in ("backbone", "noise_rate_estimate")})
    return rec


# ---------------------------------------------------------------------------
# Cells: (dataset, kind, noise) with their data
# ---------------------------------------------------------------------------


def table_cells(name: str, data_dir: Path, split: str, seed: int, noises: list[str]) -> Iterator[dict]:
    ds = real_data.load_table(name, data_dir)
    classes, y_all = np.unique(ds.y, return_inverse=True)
    train, test = split_rows(y_all, split, seed)
    X, X_test = take(ds.X, train), take(ds.X, test)
    kind = ds.kind
    if kind == "text":
        X, X_test = real_data.text_vectors(X["text"], [X_test["text"]], seed)
    for setting in noises:
        y_noisy = make_noise(setting, y_all[train], X, "tabular" if kind == "tabular" else "vectors", seed)
        yield dict(
            dataset=name,
            kind=kind,
            noise=setting,
            X=X,
            y=y_all[train],
            y_noisy=y_noisy,
            X_test=X_test,
            y_test=y_all[test],
            classes=classes,
        )


def mnist_cells(split: str, seed: int, noises: list[str]) -> Iterator[dict]:
    """MNIST subsample as images (N×28×28) and as flat 784-pixel rows; the same rows and noise for both."""
    X, y, X_test, y_test = real_data.load_mnist(MNIST_ROWS * 2, seed)
    train, held = split_rows(y, "test", seed)  # a validation part from the training rows only
    if split == "validation":
        X_test, y_test = X[held], y[held]
    else:
        keep = real_data.stratified_sample(y_test, MNIST_TEST_ROWS, seed)
        X_test, y_test = X_test[keep], y_test[keep]
    X, y = X[train][:MNIST_ROWS], y[train][:MNIST_ROWS]
    for setting in noises:
        y_noisy = make_noise(setting, y, X.reshape(len(X), -1), "vectors", seed)
        for kind, Xk, Xk_test in (
            ("images", X, X_test),
            ("vectors", X.reshape(len(X), -1), X_test.reshape(len(X_test), -1)),
        ):
            yield dict(
                dataset="mnist", kind=kind, noise=setting, X=Xk, y=y, y_noisy=y_noisy, X_test=Xk_test, y_test=y_test
            )


def cifar_cells(data_dir: Path, split: str, seed: int, noises: list[str]) -> Iterator[dict]:
    """CIFAR-10N subsample with its real human label sets, as images (3×32×32) and as flat rows."""
    data = real_data.load_cifar10n(data_dir, CIFAR_ROWS + CIFAR_TEST_ROWS, CIFAR_TEST_ROWS, seed)
    X, y = data["X"], data["clean"]
    train, held = split_rows(y, "test", seed)
    train = train[:CIFAR_ROWS]
    X_test, y_test = (X[held], y[held]) if split == "validation" else (data["X_test"], data["y_test"])
    for setting in noises:
        y_noisy = y[train].copy() if setting == "none" else data[setting][train]
        for kind, Xk, Xk_test in (
            ("images", X[train], X_test),
            ("vectors", X[train].reshape(len(train), -1), X_test.reshape(len(X_test), -1)),
        ):
            yield dict(
                dataset="cifar10n",
                kind=kind,
                noise=setting,
                X=Xk,
                y=y[train],
                y_noisy=y_noisy,
                X_test=Xk_test,
                y_test=y_test,
            )


def run_cell(cell: dict, methods: list[str], seed: int, split: str, out: Any) -> list[dict]:
    records = []
    if cell["dataset"] in ("mnist", "cifar10n"):
        methods = [m for m in methods if m in PIXEL_METHODS[cell["kind"]]]
    else:
        methods = [m for m in methods if m != "clean_network"]
    for method in methods:
        load_before = os.getloadavg()[0]
        t0 = time.perf_counter()
        rec = {k: cell[k] for k in ("dataset", "kind", "noise")}
        rec.update(
            method=method,
            seed=seed,
            split=split,
            n_train=len(cell["y"]),
            n_test=len(cell["y_test"]),
            n_classes=int(len(np.unique(cell["y"]))),
        )
        try:
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")
                result = run_method(method, cell, seed)
            rec["seconds"] = time.perf_counter() - t0
            rec.update(score(method, cell, result))
        except Exception as exc:  # one failed fit must not cost the rest of the suite
            rec.update(error=f"{type(exc).__name__}: {exc}", traceback=traceback.format_exc())
        rec["loadavg_before_after"] = [load_before, os.getloadavg()[0]]
        out.write(json.dumps(rec, default=float) + "\n")
        out.flush()
        records.append(rec)
        log(
            f"{rec['dataset']}/{rec['kind']}/{rec['noise']} {method}: "
            + (
                rec.get("error")
                or f"F1 {rec.get('f1', float('nan')):.3f} pseudo {rec.get('pseudo_accuracy', float('nan')):.3f} "
                f"(given {rec.get('given_accuracy', float('nan')):.3f}) bal.acc {rec['balanced_accuracy']:.3f} "
                f"{rec['seconds']:.1f}s"
            )
        )
    return records


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--data-dir", default=None, help="folder holding tabular/ and cifar10n.parquet")
    parser.add_argument("--split", choices=("test", "validation"), default="test")
    parser.add_argument("--seeds", default="0")
    parser.add_argument("--datasets", default=None, help="comma-separated table names (default: all)")
    parser.add_argument("--noises", default=",".join(NOISES))
    parser.add_argument("--methods", default=",".join(METHODS))
    parser.add_argument("--no-images", action="store_true", help="skip MNIST and CIFAR-10N")
    parser.add_argument("--no-tables", action="store_true", help="only MNIST and CIFAR-10N")
    parser.add_argument("--no-cifar", action="store_true")
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument(
        "--out", default=None, help="JSON-lines file (default benchmarks/raw/real_suite_<split>_<date>.jsonl)"
    )
    parser.add_argument("--no-doc", action="store_true", help="do not rewrite docs/benchmarks.md")
    args = parser.parse_args(argv)

    import torch

    torch.set_num_threads(args.threads)
    os.environ.setdefault("OMP_NUM_THREADS", str(args.threads))
    data_dir = real_data.resolve_data_dir(args.data_dir)
    seeds = [int(s) for s in args.seeds.split(",")]
    methods = args.methods.split(",")
    noises = args.noises.split(",")
    names = args.datasets.split(",") if args.datasets else real_data.table_names(data_dir)
    date = dt.date.today().isoformat()
    out_path = Path(args.out) if args.out else REPO / "benchmarks" / "raw" / f"real_suite_{args.split}_{date}.jsonl"
    out_path.parent.mkdir(parents=True, exist_ok=True)
    with bench_lock(), out_path.open("a") as out:
        log(f"writing {out_path}; load average {os.getloadavg()}")
        for seed in seeds:
            if not args.no_tables:
                for name in names:
                    for cell in table_cells(name, data_dir, args.split, seed, noises):
                        run_cell(cell, methods, seed, args.split, out)
            if not args.no_images:
                image_noises = [n for n in noises if n in ("none", "sym20", "sym40", "asym30", "inst30")]
                for cell in mnist_cells(args.split, seed, image_noises):
                    run_cell(cell, methods, seed, args.split, out)
                if not args.no_cifar and (data_dir / "cifar10n.parquet").exists():
                    for cell in cifar_cells(data_dir, args.split, seed, list(CIFAR_NOISES)):
                        run_cell(cell, methods, seed, args.split, out)
    if args.split == "test" and not args.no_doc:
        from benchmarks import real_tables

        real_tables.write_doc(out_path, REPO / "docs" / "benchmarks.md")
        log("docs/benchmarks.md updated")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
