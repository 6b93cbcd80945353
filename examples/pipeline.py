"""A pipeline with a downstream model: drop the suspicious rows, then train any classifier on the rest.

CoTeachingFilter has fit_resample, so inside an imbalanced-learn Pipeline it removes the rows
whose labels it does not trust before the next step is trained (at fit time only; predict
goes straight to the downstream model). Here the downstream model is gradient boosting, on
generated rows with 30 % wrong labels.
"""

from imblearn.pipeline import make_pipeline
from sklearn.datasets import make_classification
from sklearn.ensemble import HistGradientBoostingClassifier
from sklearn.model_selection import train_test_split

from labelclean import CoTeachingFilter, make_noisy_labels

X, y = make_classification(n_samples=3000, n_features=20, n_informative=10, n_classes=5, class_sep=2.0, random_state=0)
X_train, X_test, y_train, y_test = train_test_split(X, y, test_size=0.2, random_state=0)
y_noisy = make_noisy_labels(y_train, 0.3, random_state=0)

plain = HistGradientBoostingClassifier(max_iter=50, random_state=0).fit(X_train, y_noisy)
print(f"{'boosting alone, all noisy labels:':42} test accuracy {plain.score(X_test, y_test):.3f}")

pipe = make_pipeline(
    CoTeachingFilter(max_epochs=6, refine_epochs=2, random_state=0),
    HistGradientBoostingClassifier(max_iter=50, random_state=0),
)
pipe.fit(X_train, y_noisy)  # the filter drops rows, the boosting trains on the rest
kept = pipe.named_steps["coteachingfilter"].clean_mask_
print(f"{f'filter, then boosting on {kept.sum()} kept rows:':42} test accuracy {pipe.score(X_test, y_test):.3f}")
print(f"{'wrong labels among the kept rows:':42} {(y_noisy[kept] != y_train[kept]).mean():.3f} (30 % before)")
