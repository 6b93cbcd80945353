"""SelfTrainer candidates on validation rows, each student scored as it is trained.

    python -m benchmarks.selftrain_probe --setting labels1000 --variant base
    python -m benchmarks.selftrain_probe --setting labels1000 --variant threshold --value 0.9
    python -m benchmarks.selftrain_probe --setting labels1000 --variant last_epochs --value 8
    python -m benchmarks.selftrain_probe --setting labels1000 --variant cross_students --value 2
    python -m benchmarks.selftrain_probe --setting relabel80 --variant teacher_lr --value 2
    python -m benchmarks.selftrain_probe --setting relabel50 --variant base

Fits ``SelfTrainer`` (defaults, plus the variant) on MNIST training rows 0–50,000 with the suite's
labels (``benchmarks.bench_self_training.make_targets``; ``relabel50``: half of the labels flipped,
relabel mode) and scores every network on the true labels of training rows 50,000–60,000. Prints
one JSON line per trained network and one for the fit (validation accuracy, seconds, teacher
epochs). The test set is never read. Variants:

``base``
    the defaults.
``threshold`` (``--value``: the confidence)
    ``SelfTrainer(threshold=value)``: only confident rows get a pseudo-label.
``last_epochs`` (``--value``: epochs)
    the last student trains ``value`` epochs instead of ``max_epochs``.
``cross_students`` (``--value``: folds)
    each round trains one student per fold of the rows, on the other folds' pseudo-labels (and the
    labeled rows), and every row's next pseudo-label comes from the student that never trained
    on it; the final model averages the fold students.
``teacher_lr`` (``--value``: factor)
    relabel mode: the early-stopped teachers train at ``value`` times ``lr``.
"""

from __future__ import annotations

import argparse
import json
import time

import numpy as np


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--setting", default="labels1000", choices=["labels100", "labels1000", "relabel80", "relabel50"])
    ap.add_argument(
        "--variant", default="base", choices=["base", "threshold", "last_epochs", "cross_students", "teacher_lr"]
    )
    ap.add_argument("--value", type=float, default=None)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--threads", type=int, default=2)
    args = ap.parse_args()
    import torch

    from benchmarks.bench_self_training import make_targets
    from benchmarks.data import load_mnist
    from labelclean import SelfTrainer
    from labelclean._train import predict_proba_nets
    from labelclean.noise import make_noisy_labels
    from labelclean.self_training import fold_ids, labeled_repeats, select_pseudo_rows, student_targets

    if args.variant != "base" and args.value is None:
        ap.error(f"--variant {args.variant} needs --value")
    torch.set_num_threads(args.threads)
    X, y, _, _ = load_mnist()
    X_fit, y_fit, X_val, y_val = X[:50_000], y[:50_000], X[50_000:], y[50_000:]
    X_val_t = torch.from_numpy(X_val[:, None])
    variant, value = args.variant, args.value

    def val_acc(nets, device) -> float:
        return round(100 * float(np.mean(predict_proba_nets(nets, X_val_t, device).argmax(1) == y_val)), 2)

    class Probe(SelfTrainer):
        """SelfTrainer with the variant applied, scoring each network on the validation rows."""

        def _train_net(self, Xt, targets, rows, *, width, gen, tag, holdout=None):
            lr, epochs = self.lr, self.max_epochs
            if variant == "teacher_lr" and holdout is not None:
                self.lr = lr * value
            if variant == "last_epochs" and tag.get("phase") == "student" and tag["round"] == self.max_iter:
                self.max_epochs = int(value)
            t0 = time.perf_counter()
            try:
                net = super()._train_net(Xt, targets, rows, width=width, gen=gen, tag=tag, holdout=holdout)
            finally:
                self.lr, self.max_epochs = lr, epochs
            line = {**tag, "val": val_acc([net], self.device_), "seconds": round(time.perf_counter() - t0, 1)}
            print(json.dumps(line), flush=True)
            return net

        def _self_train(self, Xt, y_enc, given, proba, model, trained, gen):
            if variant != "cross_students":
                return super()._self_train(Xt, y_enc, given, proba, model, trained, gen)
            n_folds, given_rows = int(value), np.flatnonzero(given)
            folds = fold_ids(len(y_enc), n_folds, gen).numpy()
            for rnd in range(1, self.max_iter + 1):
                selected, rows = select_pseudo_rows(proba, ~given, threshold=self.threshold, balance=self.balance)
                targets = torch.from_numpy(student_targets(proba, y_enc, given, soft=self.soft))
                new, nets = np.zeros_like(proba), []
                for k in range(n_folds):
                    own = rows[folds[rows] != k]
                    copies = labeled_repeats(len(given_rows), len(own), self.labeled_share)
                    train_rows = np.concatenate([np.tile(given_rows, copies), own])
                    tag = {"phase": "student", "round": rnd, "fold": k}
                    net = self._train_model(Xt, targets, train_rows, width=self.student_width, gen=gen, tag=tag)
                    held = torch.from_numpy(np.flatnonzero(folds == k))
                    new[held.numpy()] = predict_proba_nets([net], Xt, self.device_, rows=held)
                    nets.append(net)
                proba, trained, model, self.n_iter_ = new, selected | given, nets, rnd
                print(json.dumps({"round": rnd, "val_average": val_acc(nets, self.device_)}), flush=True)
            return model, proba, trained

    if args.setting == "relabel50":
        targets = make_noisy_labels(y_fit, 0.5, random_state=args.seed)
    else:
        targets = make_targets(args.setting, y_fit, args.seed)
    params = {"threshold": value} if variant == "threshold" else {}
    t0 = time.perf_counter()
    st = Probe(relabel=args.setting.startswith("relabel"), random_state=args.seed, **params).fit(X_fit, targets)
    seconds = time.perf_counter() - t0
    teachers = [h for h in st.history_ if h.get("phase") == "teacher"]
    result = {
        "setting": args.setting,
        "variant": variant,
        "value": value,
        "seed": args.seed,
        "threads": args.threads,
        "val_acc": round(100 * float(st.score(X_val, y_val)), 2),
        "seconds": round(seconds, 1),
        "teacher_epochs": len(teachers),
        "teacher_seconds": round(sum(h["seconds"] for h in teachers), 1),
    }
    print(json.dumps(result), flush=True)


if __name__ == "__main__":
    main()
