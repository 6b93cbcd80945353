"""SelfTrainer candidates on validation rows, each student scored as it is trained.

    python -m benchmarks.selftrain_probe --setting labels1000 --variant base
    python -m benchmarks.selftrain_probe --setting labels1000 --variant threshold --value 0.9
    python -m benchmarks.selftrain_probe --setting labels1000 --variant last_epochs --value 8
    python -m benchmarks.selftrain_probe --setting labels1000 --variant cross_students --value 2
    python -m benchmarks.selftrain_probe --setting relabel80 --variant teacher_lr --value 2
    python -m benchmarks.selftrain_probe --setting relabel50 --variant base

    python -m benchmarks.selftrain_probe --setting labels1000 --variant bootstrap --value 0.5
    python -m benchmarks.selftrain_probe --setting labels1000 --variant base --set soft=True
    python -m benchmarks.selftrain_probe --setting all

Fits ``SelfTrainer`` (defaults, plus the variant and any ``--set`` parameters) on MNIST training rows
0–50,000 with the suite's labels (``benchmarks.bench_self_training.make_targets``; ``relabel50``: half
of the labels flipped, relabel mode; ``all``: every true label, so one plain network is trained, the
students' ceiling) and scores every network on the true labels of training rows 50,000–60,000
(students also as the average of the last three). Prints one JSON line per trained network and one
for the fit (validation accuracy, seconds, teacher epochs). The test set is never read. Variants:

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
``ensemble`` (``--value``: networks)
    each round trains ``value`` students side by side (same batches, own initialisation and
    dropout); their average labels the next round and is the final model.
``mixup`` (``--value``: alpha)
    students train on mixup of their (augmented) batches: images and one-hot targets blended with a
    shuffled copy of the batch, weight ``λ ~ Beta(alpha, alpha)`` per batch (Zhang et al., 2018;
    Arazo et al., 2020 use it against confirmation bias in pseudo-labeling).
``bootstrap`` (``--value``: beta)
    students learn ``(1 - beta) · teacher label + beta · own label`` on pseudo-labeled rows, where
    the own label is the student's current prediction on the un-augmented image (eval mode, no
    gradient) wherever it is at least 0.95 confident (else the teacher's label alone), and the
    loss is taken on the augmented image: hard bootstrapping (Reed et al., 2014) with FixMatch's
    weak/strong views and confidence mask (Sohn et al., 2020).
``small_loss`` (``--value``: share)
    students skip, in every batch, the ``value`` share of its pseudo-labeled rows on which their loss
    is largest (the share grows over the first two epochs: 0, half, full), the small-loss selection
    of Co-teaching within one network, against pseudo-labels the teacher got wrong.
``fixmatch`` (``--value``: epochs over the unlabeled rows)
    ``SelfTrainer(consistency_epochs=value)``: the first teacher is trained FixMatch-style (Sohn et
    al., 2020) instead of on the labeled rows alone: each step takes 32 labeled rows (random
    warps, their labels) and 128 unlabeled ones; the prediction of the moving average of the
    weights (``consistency_ema``, 0.999; ``--set consistency_ema=0``: the network's own, as in
    round 7) on an unlabeled image shifted by up to 2 px (eval mode, no gradient) is the target of
    the same image under a random warp wherever it is at least 0.95 confident. Scored after every
    pass (``val``; ``val_ema``: the moving average); the averaged network is the final model, with
    no students unless ``--set max_iter=N``.
``fixmatch_da`` (``--value``: epochs)
    ``fixmatch`` with distribution alignment (``consistency_align=True``; Berthelot et al.,
    ReMixMatch, ICLR 2020): each weak-view prediction is multiplied by the labeled rows' class
    frequencies over a running mean of recent predictions (momentum 0.99) and renormalised before
    its confidence and class are read, so no class's pseudo-labels crowd out the others.
``fixmatch_warm`` (``--value``: epochs)
    ``fixmatch``, but the consistency-trained network starts from the default first teacher (trained
    on the labeled rows alone) instead of from random weights.
``fixmatch_strong`` (``--value``: epochs)
    ``fixmatch`` with a stronger strong view: warps of up to 20° and 20 % zoom, shifts of up to 3 px,
    and a random 10×10 square blanked (cutout, DeVries and Taylor, 2017), instead of the student noise.
``student_width`` (``--value``: factor)
    ``SelfTrainer(student_width=value)``: wider students than the first teacher.
"""

from __future__ import annotations

import argparse
import ast
import json
import time

import numpy as np


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    settings = ["labels100", "labels500", "labels1000", "relabel80", "relabel50", "all"]
    ap.add_argument("--setting", default="labels1000", choices=settings)
    variants = ["base", "threshold", "last_epochs", "cross_students", "teacher_lr", "ensemble", "mixup"]
    variants += ["bootstrap", "small_loss", "student_width"]
    variants += ["fixmatch", "fixmatch_da", "fixmatch_warm", "fixmatch_strong"]
    ap.add_argument("--variant", default="base", choices=variants)
    ap.add_argument("--value", type=float, default=None)
    ap.add_argument(
        "--set",
        action="append",
        default=[],
        metavar="NAME=VALUE",
        help="a SelfTrainer parameter on top of the variant, e.g. --set soft=True (value read as a Python literal)",
    )
    ap.add_argument(
        "--average-from",
        type=int,
        default=None,
        metavar="PASS",
        help="fixmatch variants: also score the weights averaged over the passes from PASS on (SWA)",
    )
    ap.add_argument(
        "--labeled-batch",
        type=int,
        default=None,
        metavar="N",
        help="fixmatch variants: labeled rows per consistency step instead of batch_size // 4",
    )
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--threads", type=int, default=2)
    args = ap.parse_args()
    import torch
    from torch.optim import swa_utils

    from benchmarks.bench_self_training import make_targets
    from benchmarks.data import load_mnist
    from labelclean import SelfTrainer, self_training
    from labelclean._data import batches
    from labelclean._train import adam, affine_warp, lr_factor, predict_proba_nets, set_lr, train_epoch
    from labelclean.noise import make_noisy_labels
    from labelclean.self_training import (
        epochs_for,
        fold_ids,
        labeled_repeats,
        one_hot,
        select_pseudo_rows,
        soft_cross_entropy,
        student_targets,
    )

    if args.variant != "base" and args.value is None:
        ap.error(f"--variant {args.variant} needs --value")
    torch.set_num_threads(args.threads)
    X, y, _, _ = load_mnist()
    X_fit, y_fit, X_val, y_val = X[:50_000], y[:50_000], X[50_000:], y[50_000:]
    X_val_t = torch.from_numpy(X_val[:, None])
    variant, value = args.variant, args.value

    students: list[np.ndarray] = []  # validation probabilities of each student, for the last-3 average

    def val_acc(nets, device) -> float:
        return round(100 * float(np.mean(predict_proba_nets(nets, X_val_t, device).argmax(1) == y_val)), 2)

    def scores(nets, device, tag) -> dict:
        """The network's validation accuracy; for a student also that of the average of the last three."""
        proba = predict_proba_nets(nets, X_val_t, device)
        out = {"val": round(100 * float(np.mean(proba.argmax(1) == y_val)), 2)}
        if tag.get("phase") == "student" and "fold" not in tag:
            students.append(proba)
            out["val_last3"] = round(100 * float(np.mean(np.mean(students[-3:], axis=0).argmax(1) == y_val)), 2)
        return out

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
            line = {**tag, **scores([net], self.device_, tag), "seconds": round(time.perf_counter() - t0, 1)}
            print(json.dumps(line), flush=True)
            return net

        def _train_model(self, Xt, targets, rows, *, width, gen, tag, holdout=None):
            if variant in ("mixup", "bootstrap", "small_loss") and tag.get("phase") == "student":
                return self._train_student(Xt, targets, torch.as_tensor(rows), width=width, gen=gen, tag=tag)
            if variant != "ensemble" or tag.get("phase") != "student":
                return super()._train_model(Xt, targets, rows, width=width, gen=gen, tag=tag, holdout=holdout)
            t0, rows = time.perf_counter(), torch.as_tensor(rows)
            nets = [self._new_net(len(self.classes_), width=width) for _ in range(int(value))]
            optimizer = adam([p for net in nets for p in net.parameters()], self.lr, self.weight_decay)
            epochs = epochs_for(len(rows), self.batch_size, self.max_epochs, self.min_steps)

            def loss_fn(logits, yb):
                return sum(soft_cross_entropy([z], yb)[0] for z in logits), {}

            for epoch in range(epochs):
                set_lr(optimizer, self.lr * lr_factor(epoch, epochs))
                train_epoch(
                    nets,
                    optimizer,
                    Xt,
                    targets,
                    loss_fn,
                    batch_size=self.batch_size,
                    generator=gen,
                    device=self.device_,
                    augment=self._noise(),
                    rows=rows,
                )
            members = [val_acc([n], self.device_) for n in nets]
            line = {**tag, **scores(nets, self.device_, tag), "members": members}
            print(json.dumps({**line, "seconds": round(time.perf_counter() - t0, 1)}), flush=True)
            return nets

        def _train_student(self, Xt, targets, rows, *, width, gen, tag):
            """A student trained by the variant's own loop (mixup, bootstrap or small_loss)."""
            t0 = time.perf_counter()
            net = self._new_net(len(self.classes_), width=width)
            optimizer = adam(net.parameters(), self.lr, self.weight_decay)
            epochs = epochs_for(len(rows), self.batch_size, self.max_epochs, self.min_steps)
            rng = None
            if variant == "mixup":
                rng = np.random.default_rng(int(torch.randint(2**31 - 1, (1,), generator=gen)))
            noise, pseudo, own_share = self._noise(), torch.from_numpy(~self._given), []
            for epoch in range(epochs):
                set_lr(optimizer, self.lr * lr_factor(epoch, epochs))
                net.train()
                for idx in batches(len(rows), self.batch_size, gen):
                    idx = rows[idx]
                    tb = targets[idx]
                    if variant == "mixup":
                        xb = noise(Xt[idx], gen)
                        lam = float(rng.beta(value, value))
                        perm = torch.randperm(len(idx), generator=gen)
                        xb = lam * xb + (1.0 - lam) * xb[perm]
                        loss = soft_cross_entropy([net(xb)], lam * tb + (1.0 - lam) * tb[perm])[0]
                    elif variant == "bootstrap":
                        net.eval()
                        with torch.no_grad():
                            conf, own = torch.softmax(net(Xt[idx]), 1).max(1)
                        net.train()
                        use = (conf >= 0.95) & pseudo[idx]
                        own_share.append(float(use.float().mean()))
                        mixed = (1.0 - value) * tb + value * torch.nn.functional.one_hot(own, tb.shape[1]).float()
                        loss = soft_cross_entropy([net(noise(Xt[idx], gen))], torch.where(use[:, None], mixed, tb))[0]
                    else:  # small_loss
                        losses = -(tb * torch.log_softmax(net(noise(Xt[idx], gen)), 1)).sum(1)
                        keep = torch.ones(len(idx), dtype=torch.bool)
                        cand = torch.nonzero(pseudo[idx]).squeeze(1)
                        n_drop = int(round(value * min(epoch / 2.0, 1.0) * len(cand)))
                        if n_drop:
                            keep[cand[torch.topk(losses.detach()[cand], n_drop).indices]] = False
                        loss = losses[keep].mean()
                    optimizer.zero_grad(set_to_none=True)
                    loss.backward()
                    optimizer.step()
            line = {**tag, **scores([net], self.device_, tag)}
            if own_share:
                line["own_share"] = round(float(np.mean(own_share)), 3)
            print(json.dumps({**line, "seconds": round(time.perf_counter() - t0, 1)}), flush=True)
            return net

        def _first_teacher(self, X, y, Xt, y_enc, labeled, gen):
            if variant == "fixmatch_warm":  # the labeled-only teacher, handed to the consistency training below
                targets = torch.from_numpy(one_hot(np.maximum(y_enc, 0), len(self.classes_)))
                tag = {"phase": "teacher", "round": 0, "warm_start": True}
                self._warm = self._train_model(Xt, targets, np.flatnonzero(labeled), width=1.0, gen=gen, tag=tag)
            return super()._first_teacher(X, y, Xt, y_enc, labeled, gen)

        def _noise(self):
            if variant != "fixmatch_strong":
                return super()._noise()

            def strong(x, generator):
                x = affine_warp(x, generator, max_shift=3 / 28, max_rotation=20.0, max_scale=0.2)
                n, _, h, w = x.shape
                cy = torch.randint(0, h, (n, 1, 1), generator=generator)
                cx = torch.randint(0, w, (n, 1, 1), generator=generator)
                rows, cols = torch.arange(h)[None, :, None], torch.arange(w)[None, None, :]
                square = ((rows - cy).abs() <= 5) & ((cols - cx).abs() <= 5)
                return x.masked_fill(square[:, None], 0.0)

            return strong

        def _new_net(self, n_outputs, width=1.0):
            warm = getattr(self, "_warm", None)
            if warm is not None:
                self._warm = None
                return warm
            return super()._new_net(n_outputs, width=width)

        def _proba(self, model, Xr):
            if isinstance(model, list):
                return predict_proba_nets(model, torch.as_tensor(Xr), self.device_)
            return super()._proba(model, Xr)

        def _self_train(self, Xt, y_enc, given, proba, model, trained, gen):
            self._given = given
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

    if args.setting == "all":  # every true label given: the plain network, the students' ceiling
        targets = y_fit
    elif args.setting == "relabel50":
        targets = make_noisy_labels(y_fit, 0.5, random_state=args.seed)
    else:
        targets = make_targets(args.setting, y_fit, args.seed)
    params = {"threshold": value} if variant == "threshold" else {}
    if variant == "student_width":
        params = {"student_width": value}
    if variant.startswith("fixmatch"):  # the library's consistency teacher, scored after every pass
        params = {"consistency_epochs": int(value), "consistency_align": variant == "fixmatch_da"}
        one_pass, started = self_training.consistency_epoch, time.perf_counter()

        def scored_pass(net, *a, **kw):
            if args.labeled_batch is not None:
                kw["labeled_batch"] = args.labeled_batch
            stats = one_pass(net, *a, **kw)
            line = {"phase": "fixmatch", "epoch": scored_pass.epoch, "val": val_acc([net], net[0].mean.device)}
            if kw.get("averaged") is not None:  # consistency_ema: the moving average that makes the targets
                line["val_ema"] = val_acc([kw["averaged"].module], net[0].mean.device)
            if args.average_from is not None and scored_pass.epoch >= args.average_from:
                line["val_averaged"] = averaged_score(net, a[1])  # a: optimizer, X, y, labeled, unlabeled
            line.update(mask=round(stats["mask_rate"], 3), seconds=round(time.perf_counter() - started, 1))
            print(json.dumps(line), flush=True)
            scored_pass.epoch += 1
            return stats

        def averaged_score(net, X) -> float:
            """Validation accuracy of the weights averaged over the passes since --average-from (SWA, torch's
            ``swa_utils``), batch-norm statistics recomputed on the training images; the fit is not touched."""
            if averaged_score.model is None:  # running mean of the parameters, pass by pass
                averaged_score.model = swa_utils.AveragedModel(
                    net, avg_fn=lambda avg, cur, n: avg + (cur - avg) / (n + 1)
                )
            averaged_score.model.update_parameters(net)
            batches_of_x = [X[start : start + 512] for start in range(0, X.shape[0], 512)]
            with torch.random.fork_rng():  # dropout here must not move the fit's random stream
                swa_utils.update_bn(batches_of_x, averaged_score.model.module)
            return val_acc([averaged_score.model.module], net[0].mean.device)

        averaged_score.model = None
        scored_pass.epoch = 0
        self_training.consistency_epoch = scored_pass
    for item in args.set:
        name, _, text = item.partition("=")
        params[name] = ast.literal_eval(text)
    t0 = time.perf_counter()
    st = Probe(relabel=args.setting.startswith("relabel"), random_state=args.seed, **params).fit(X_fit, targets)
    seconds = time.perf_counter() - t0
    teachers = [h for h in st.history_ if h.get("phase") == "teacher"]
    result = {
        "setting": args.setting,
        "variant": variant,
        "value": value,
        "set": args.set,
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
