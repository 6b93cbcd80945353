"""Score each SelfTrainer student, and the average of the last two and three, on validation rows.

    python -m benchmarks.student_average --setting labels1000 --seed 0
    python -m benchmarks.student_average --setting relabel80 --threads 2   # relabel mode, 80 % flipped

The self-trainer is fitted with its defaults on MNIST training rows 0–50,000 (labels hidden as in
the suite, ``benchmarks.bench_self_training.make_targets``) and every student, as soon as it is
trained, is scored on the true labels of training rows 50,000–60,000 alone and averaged with the
one or two students before it. One JSON line per round, then one for the fit with its seconds
per phase and round. The test set is never read.
"""

from __future__ import annotations

import argparse
import json
import time

import numpy as np


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--setting", default="labels1000", choices=["labels100", "labels1000", "relabel80"])
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--threads", type=int, default=1)
    args = ap.parse_args()
    import torch

    from benchmarks.bench_self_training import make_targets
    from benchmarks.data import load_mnist
    from labelclean import SelfTrainer
    from labelclean._train import predict_proba_nets

    torch.set_num_threads(args.threads)
    X, y, _, _ = load_mnist()
    X_fit, y_fit, X_val, y_val = X[:50_000], y[:50_000], X[50_000:], y[50_000:]
    X_val_t = torch.from_numpy(X_val[:, None])
    scored: list[np.ndarray] = []

    class Scored(SelfTrainer):
        """SelfTrainer that scores every student on the validation rows when it is trained."""

        def _train_model(self, Xt, targets, rows, *, width, gen, tag, holdout=None):
            model = super()._train_model(Xt, targets, rows, width=width, gen=gen, tag=tag, holdout=holdout)
            if tag.get("phase") == "student":
                scored.append(predict_proba_nets([model], X_val_t, self.device_))

                def acc(k: int) -> float:
                    return round(100 * float(np.mean(sum(scored[-k:]).argmax(1) == y_val)), 2)

                line = {"round": tag["round"], "last": acc(1), "last_2": acc(2), "last_3": acc(3)}
                print(json.dumps(line), flush=True)
            return model

    t0 = time.perf_counter()
    relabel = args.setting == "relabel80"
    st = Scored(relabel=relabel, random_state=args.seed).fit(X_fit, make_targets(args.setting, y_fit, args.seed))
    result = {"setting": args.setting, "seed": args.seed, "val_acc": round(100 * float(st.score(X_val, y_val)), 2)}
    phases: dict[str, float] = {}
    for h in st.history_:  # seconds per phase and round: where the fit's time goes
        key = f"{h.get('phase')}{h.get('round', '')}"
        phases[key] = round(phases.get(key, 0.0) + float(h.get("seconds", 0.0)), 1)
    result["seconds_by_phase"] = phases
    print(json.dumps({**result, "seconds": round(time.perf_counter() - t0, 1)}), flush=True)


if __name__ == "__main__":
    main()
