"""Bundled example: clean noisy labels of scikit-learn's digits set and print what was found.

Run with ``labelclean-demo`` or ``python -m labelclean._demo``.
"""

from __future__ import annotations

import time

import numpy as np
from sklearn.datasets import load_digits
from sklearn.model_selection import train_test_split

from .coteaching import CoTeachingFilter
from .metrics import detection_scores
from .noise import make_noisy_labels


def main(noise: float = 0.3, random_state: int = 0) -> dict[str, float]:
    """Flip ``noise`` of the digits labels, clean them with :class:`CoTeachingFilter`, print a summary."""
    X, y = load_digits(return_X_y=True)
    X = (X / 16.0).reshape(-1, 8, 8).astype(np.float32)
    X_train, X_test, y_train, y_test = train_test_split(X, y, test_size=0.25, random_state=random_state, stratify=y)
    y_noisy = make_noisy_labels(y_train, noise, random_state=random_state)
    t0 = time.perf_counter()
    f = CoTeachingFilter(max_epochs=30, random_state=random_state).fit(X_train, y_noisy)
    seconds = time.perf_counter() - t0
    det = detection_scores(f.clean_mask_, y_noisy, y_train)
    fixed = float(np.mean(f.pseudo_labels_ == y_train))
    print(f"digits: {len(y_train)} training images, {det['n_noisy']} labels flipped on purpose ({noise:.0%})")
    print(f"estimated noise rate      {f.noise_rate_:.3f}")
    print(
        f"rows flagged              {det['n_flagged']}  (precision {det['precision']:.3f}, "
        f"recall {det['recall']:.3f}, F1 {det['f1']:.3f})"
    )
    print(f"labels right before/after {np.mean(y_noisy == y_train):.3f} -> {fixed:.3f}")
    print(f"test accuracy             {f.score(X_test, y_test):.3f}   ({seconds:.1f} s)")
    order = np.argsort(f.label_quality_)[:5]
    print(
        "most suspicious rows      "
        + ", ".join(f"#{i}: given {y_noisy[i]} -> {f.pseudo_labels_[i]} (true {y_train[i]})" for i in order)
    )
    return {**det, "accuracy": float(f.score(X_test, y_test)), "seconds": seconds}


if __name__ == "__main__":
    main()
