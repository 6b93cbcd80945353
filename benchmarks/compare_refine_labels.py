"""Consensus vs label-posterior refinement of CoTeachingFilter on a small set (scikit-learn's 8×8 digits).

The posterior helped on 50,000 MNIST images (``docs/benchmarks.md``, round 3); this checks a
small set, where the networks' probabilities on the rows they trained on are overconfident.
Each fit trains on three quarters of the 1,797 digits with 30 % of the labels flipped
(symmetric or pair) and is scored on the held-out quarter::

    python -m benchmarks.compare_refine_labels            # seeds 0-3, both noise kinds: 16 fits, ~40 s on 2 cores
"""

from __future__ import annotations

import argparse

import numpy as np
from sklearn.datasets import load_digits
from sklearn.model_selection import train_test_split

from labelclean import CoTeachingFilter, make_noisy_labels


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--seeds", type=int, default=4)
    ap.add_argument("--noise", type=float, default=0.3)
    args = ap.parse_args()
    digits = load_digits()
    images = (digits.images / 16.0).astype(np.float32)
    scores: dict[str, list[float]] = {"consensus": [], "posterior": []}
    for seed in range(args.seeds):
        X_train, X_test, y_train, y_test = train_test_split(
            images, digits.target, test_size=0.25, random_state=seed, stratify=digits.target
        )
        for kind in ("symmetric", "pair"):
            y_noisy = make_noisy_labels(y_train, args.noise, kind, random_state=seed)
            for labels in scores:
                f = CoTeachingFilter(estimator="network", refine_labels=labels, random_state=seed).fit(X_train, y_noisy)
                scores[labels].append(f.score(X_test, y_test))
                right = np.mean(f.pseudo_labels_ == y_train)
                print(f"seed {seed} {kind:9s} {labels:9s} test {scores[labels][-1]:.4f}  labels right {right:.4f}")
    for labels, acc in scores.items():
        print(f"{labels:9s} mean test accuracy {np.mean(acc):.4f} over {len(acc)} fits")
    worse = sum(p < c for p, c in zip(scores["posterior"], scores["consensus"]))
    print(f"posterior worse than consensus in {worse} of {len(scores['posterior'])} fits")


if __name__ == "__main__":
    main()
