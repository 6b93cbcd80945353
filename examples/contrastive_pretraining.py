"""Contrastive pre-training: learn features without the labels, then clean the labels on those features.

ContrastiveEncoder sees the 8×8 digits only through random augmentations (small rotations,
zooms, shifts, noise) and learns to tell images apart, never looking at a label. Two checks
of what it learnt: a linear model trained on 50 labels, and CoTeachingFilter at 50 % wrong labels.
"""

import numpy as np
from sklearn.datasets import load_digits
from sklearn.linear_model import LogisticRegression
from sklearn.model_selection import train_test_split
from sklearn.pipeline import make_pipeline

from labelclean import ContrastiveEncoder, CoTeachingFilter, make_noisy_labels

X, y = load_digits(return_X_y=True)
X = X / 16.0  # 64 pixels per row
X_train, X_test, y_train, y_test = train_test_split(X, y, test_size=0.25, stratify=y, random_state=0)
y_noisy = make_noisy_labels(y_train, 0.5, random_state=0)  # half of the labels wrong

# The encoder in front of the filter; input_shape makes it treat the rows as 1×8×8 images.
pipe = make_pipeline(ContrastiveEncoder(input_shape=(1, 8, 8), random_state=0), CoTeachingFilter(random_state=0))
pipe.fit(X_train, y_noisy)
alone = CoTeachingFilter(random_state=0).fit(X_train, y_noisy)
print(f"CoTeachingFilter on the pixels,     50 % wrong labels: test accuracy {alone.score(X_test, y_test):.3f}")
print(f"CoTeachingFilter on the embeddings, 50 % wrong labels: test accuracy {pipe.score(X_test, y_test):.3f}")

# A linear probe: logistic regression on 5 labeled rows per digit, on pixels vs on the embedding.
encoder = pipe.named_steps["contrastiveencoder"]
Z_train, Z_test = encoder.transform(X_train), encoder.transform(X_test)
rng = np.random.default_rng(0)
few = np.concatenate([rng.choice(np.flatnonzero(y_train == d), 5, replace=False) for d in range(10)])
raw = LogisticRegression(max_iter=2000).fit(X_train[few], y_train[few]).score(X_test, y_test)
emb = LogisticRegression(max_iter=2000).fit(Z_train[few], y_train[few]).score(Z_test, y_test)
print(f"linear probe, 50 labels, pixels ({X_train.shape[1]} features):    test accuracy {raw:.3f}")
print(f"linear probe, 50 labels, embedding ({Z_train.shape[1]} features): test accuracy {emb:.3f}")
