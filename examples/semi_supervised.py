"""Semi-supervised labels: 10 labeled images per digit, the rest unlabeled (-1); fill in the rest.

SelfTrainer (Noisy Student self-training) against a logistic regression that sees only the
labeled rows, and against scikit-learn's own SelfTrainingClassifier around that regression.
"""

import numpy as np
from sklearn.datasets import load_digits
from sklearn.linear_model import LogisticRegression
from sklearn.model_selection import train_test_split
from sklearn.semi_supervised import SelfTrainingClassifier

from labelclean import SelfTrainer

X, y = load_digits(return_X_y=True)
X = X / 16.0
X_train, X_test, y_train, y_test = train_test_split(X, y, test_size=0.25, stratify=y, random_state=0)

rng = np.random.default_rng(0)
labeled = np.zeros(len(y_train), dtype=bool)
for digit in range(10):  # 10 labeled rows per class
    labeled[rng.choice(np.flatnonzero(y_train == digit), 10, replace=False)] = True
y_semi = np.where(labeled, y_train, -1)  # -1 marks an unlabeled row

st = SelfTrainer(random_state=0).fit(X_train, y_semi)

print(f"training rows             {len(y_semi)}: {labeled.sum()} labeled, {(~labeled).sum()} unlabeled (-1)")
print(f"filled-in labels right    {np.mean(st.pseudo_labels_[~labeled] == y_train[~labeled]):.3f}")
print(f"rounds                    {st.n_iter_} ({st.termination_condition_})")
print(f"test accuracy, SelfTrainer                    {st.score(X_test, y_test):.3f}")
lr = LogisticRegression(max_iter=1000).fit(X_train[labeled], y_train[labeled])
print(f"test accuracy, LogisticRegression on {labeled.sum()} rows {lr.score(X_test, y_test):.3f}")
sk = SelfTrainingClassifier(LogisticRegression(max_iter=1000)).fit(X_train, y_semi)
print(f"test accuracy, sklearn SelfTrainingClassifier {sk.score(X_test, y_test):.3f}")
