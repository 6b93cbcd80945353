"""Noisy images: clean the labels of scikit-learn's 8×8 handwritten digits with the default small CNN.

Images go in as an (N, H, W) array — (N, C, H, W), (N, H, W, C), or 2-D rows with
input_shape=(C, H, W) work too. 25 % of the training labels are flipped on purpose.
"""

import numpy as np
from sklearn.datasets import load_digits
from sklearn.model_selection import train_test_split

from labelclean import CoTeachingFilter, detection_scores, make_noisy_labels

digits = load_digits()
images = (digits.images / 16.0).astype(np.float32)  # (1797, 8, 8), pixel values in [0, 1]
X_train, X_test, y_train, y_test = train_test_split(
    images, digits.target, test_size=0.25, stratify=digits.target, random_state=0
)
y_noisy = make_noisy_labels(y_train, 0.25, random_state=0)

f = CoTeachingFilter(random_state=0).fit(X_train, y_noisy)

found = detection_scores(f.clean_mask_, y_noisy, y_train)
print(f"training images           {len(y_train)} of shape {X_train.shape[1:]}, {found['n_noisy']} labels flipped")
print(f"estimated noise rate      {f.noise_rate_:.3f}")
print(
    f"rows flagged              {found['n_flagged']}  (precision {found['precision']:.3f}, "
    f"recall {found['recall']:.3f}, F1 {found['f1']:.3f})"
)
print(f"labels right, given       {np.mean(y_noisy == y_train):.3f}")
print(f"labels right, pseudo      {np.mean(f.pseudo_labels_ == y_train):.3f}")
print(f"test accuracy             {f.score(X_test, y_test):.3f}")

# The least trusted image, drawn in characters.
i = int(np.argmin(f.label_quality_))
print(f"\nimage {i}: given label {y_noisy[i]}, proposed {f.pseudo_labels_[i]} (true {y_train[i]})")
for row in X_train[i]:
    print("  " + "".join(" .:-=+*#%@"[min(9, int(v * 10))] * 2 for v in row))
