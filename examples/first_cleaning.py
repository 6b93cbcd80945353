"""A first cleaning: flip 20 % of the digits labels on purpose, then let CoTeachingFilter find them."""

from sklearn.datasets import load_digits

from labelclean import CoTeachingFilter, find_label_issues, make_noisy_labels

X, y = load_digits(return_X_y=True)
y_noisy = make_noisy_labels(y, 0.2, random_state=0)  # 20 % of the labels made wrong
f = CoTeachingFilter(random_state=0).fit(X, y_noisy)
print(f"{(~f.clean_mask_).sum()} of {len(y)} rows flagged, estimated noise rate {f.noise_rate_:.3f}")
print(f"labels right: {(y_noisy == y).mean():.3f} given, {(f.pseudo_labels_ == y).mean():.3f} after cleaning")
# By default a label is changed only on strong evidence (relabel_threshold=0.9), so the corrected labels are
# never worse than the given ones; relabel_threshold=0 takes the models' label on every flagged row. The
# out-of-fold probabilities are kept, so another rule needs no refit (the same as
# CoTeachingFilter(relabel_threshold=0.0).fit(X, y_noisy)):
eager = find_label_issues(y_noisy, f.oof_proba_, calibrated=True, flag="disagreement", relabel_threshold=0.0)
print(f"labels right, every flagged row relabeled: {(eager['pseudo_label'] == y).mean():.3f}")
