"""Positive-unlabeled data: only some positives are labeled; which unlabeled rows are negative?

Task: tell the digits 0-4 (positive) from 5-9 (negative) in scikit-learn's digits, when only
40 % of the positive rows carry a label and every other row is unlabeled. The share of
positives (the class prior) is not given: PUClassifier estimates it.
"""

import numpy as np
from sklearn.datasets import load_digits
from sklearn.model_selection import train_test_split

from labelclean import PUClassifier

X, digit = load_digits(return_X_y=True)
is_positive = (digit <= 4).astype(int)
X_train, X_test, pos_train, pos_test = train_test_split(
    X / 16.0, is_positive, test_size=0.25, stratify=digit, random_state=0
)
rng = np.random.default_rng(0)
y_pu = np.where((pos_train == 1) & (rng.random(len(pos_train)) < 0.4), 1, 0)  # 1 = labeled positive, 0 = unlabeled

clf = PUClassifier(random_state=0).fit(X_train, y_pu)

unlabeled = y_pu == 0
print(f"training rows             {len(y_pu)}: {int(y_pu.sum())} labeled positives, {int(unlabeled.sum())} unlabeled")
print(f"class prior, true         {pos_train.mean():.3f}")
print(f"class prior, estimated    {clf.class_prior_:.3f}")
print(f"unlabeled rows right      {np.mean(clf.pseudo_labels_[unlabeled] == pos_train[unlabeled]):.3f}")
negatives = unlabeled & clf.clean_mask_
truly = np.mean(pos_train[negatives] == 0)
print(f"reliable negatives        {int(negatives.sum())}, of which {truly:.3f} truly negative")
print(f"test accuracy             {clf.score(X_test, pos_test):.3f}")
