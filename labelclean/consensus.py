"""Several annotators per row: one consensus label, its confidence, and each annotator's quality.

Each algorithm is a short pure function on encoded votes, an ``(n_rows, n_annotators)`` integer
matrix with ``-1`` for a missing vote:

- :func:`majority_vote`: the most frequent vote of each row, ties to the most agreeing annotator;
- :func:`dawid_skene`: expectation-maximisation over one confusion matrix per annotator
  (A. P. Dawid and A. M. Skene, *Maximum likelihood estimation of observer error-rates using the
  EM algorithm*, Applied Statistics 28(1), 1979), started from the majority vote;
- :func:`model_consensus`: the votes and a classifier's out-of-fold probabilities combined, in
  the spirit of CROWDLAB (H. W. Goh, U. Tkachenko and J. Mueller, *CROWDLAB: Supervised learning
  to infer consensus labels and quality scores for data with multiple annotators*, 2022): each
  vote becomes a soft label through its annotator's estimated confusion matrix, the classifier's
  probabilities are tempered by the exponent that makes the votes most likely, and the two are
  combined as a product of experts.

:class:`AnnotatorConsensus` is the scikit-learn estimator that orchestrates them; it imports
no torch.
"""

from __future__ import annotations

import html
import warnings
from numbers import Integral, Real
from typing import Any

import numpy as np
from sklearn.base import BaseEstimator, ClassifierMixin, clone
from sklearn.exceptions import NotFittedError
from sklearn.utils import check_random_state

from ._compat import HasMethods, Interval, StrOptions, _fit_context, validate_data

__all__ = [
    "AnnotatorConsensus",
    "agreement_rates",
    "annotator_accuracy",
    "confusion_from_posterior",
    "consensus_labels",
    "dawid_skene",
    "encode_votes",
    "majority_vote",
    "model_consensus",
    "posterior",
    "vote_counts",
]

#: Pseudo-count added to every cell of an annotator's confusion matrix (Dirichlet smoothing).
SMOOTHING = 1.0
#: The range searched for the exponent of a classifier's probabilities (:func:`model_consensus`).
MODEL_WEIGHT_LOW, MODEL_WEIGHT_HIGH = 0.05, 20.0


# ---------------------------------------------------------------------------
# Encoding the votes
# ---------------------------------------------------------------------------


def _missing(values: np.ndarray) -> np.ndarray:
    """Whether each entry of a 2-D array is a missing vote: null, NaN or the number ``-1``."""
    if values.dtype.kind == "f":
        return np.isnan(values) | (values == -1)
    if values.dtype.kind in "iu":
        return values == -1
    if values.dtype.kind == "b":
        return np.zeros(values.shape, dtype=bool)
    if values.dtype.kind in "US":
        return np.zeros(values.shape, dtype=bool)
    import pandas as pd

    flat = values.ravel()
    out = np.fromiter(
        (
            v is None
            or (not isinstance(v, str) and bool(pd.isna(v)))
            or (isinstance(v, (int, float, np.integer, np.floating)) and not isinstance(v, bool) and v == -1)
            for v in flat
        ),
        dtype=bool,
        count=len(flat),
    )
    return out.reshape(values.shape)


def encode_votes(Y: Any, classes: Any = None) -> tuple[np.ndarray, np.ndarray, list]:
    """Votes as class codes ``0 .. K-1`` (``-1`` missing), the classes, and the annotator names.

    ``Y`` is an ``(n_rows, n_annotators)`` array or DataFrame of labels of any type; null, NaN
    and ``-1`` are missing votes. The classes are the sorted distinct votes, or ``classes`` in
    the order given (a vote outside them is an error, and so is a class that no annotator chose).

    Examples
    --------
    >>> import numpy as np
    >>> codes, classes, names = encode_votes(np.array([["cat", "dog"], ["dog", None]], dtype=object))
    >>> codes.tolist(), classes.tolist(), names
    ([[0, 1], [1, -1]], ['cat', 'dog'], [0, 1])
    """
    names: list
    if hasattr(Y, "columns") and hasattr(Y, "dtypes"):
        names = list(Y.columns)
        values = Y.to_numpy(dtype=object) if any(dt.kind not in "biuf" for dt in Y.dtypes) else Y.to_numpy()
    else:
        values = np.asarray(Y)
        names = list(range(values.shape[1])) if values.ndim == 2 else []
    if values.ndim != 2:
        raise ValueError(
            f"Y must be a 2-D matrix (n_rows, n_annotators) of votes, got an array of shape {values.shape}; "
            "one annotator's labels (a 1-D y) have no consensus to find: use CoTeachingFilter or "
            "find_label_issues for those."
        )
    missing = _missing(values)
    if classes is None:
        present = values[~missing]
        try:
            classes_ = np.unique(present)
        except TypeError as exc:
            raise ValueError(f"the votes mix label types that cannot be sorted ({exc}); use one type.") from None
        if present.dtype == object and len(classes_) and all(isinstance(c, str) for c in classes_):
            classes_ = classes_.astype(object)
    else:
        classes_ = np.asarray(classes)
        if classes_.ndim != 1 or len(set(classes_.tolist())) != len(classes_):
            raise ValueError("classes must be a 1-D list of distinct labels.")
    codes = np.full(values.shape, -1, dtype=np.int64)
    if len(classes_):
        lookup = {c: i for i, c in enumerate(classes_.tolist())}
        flat_values, flat_codes = values.ravel(), codes.ravel()
        for pos in np.flatnonzero(~missing.ravel()):
            v = flat_values[pos]
            key = v.item() if hasattr(v, "item") else v
            code = lookup.get(key)
            if code is None:
                raise ValueError(f"the vote {key!r} (row {pos // values.shape[1]}) is not one of classes={classes_!r}.")
            flat_codes[pos] = code
        codes = flat_codes.reshape(values.shape)
    if classes is not None:
        seen = np.bincount(codes[codes >= 0], minlength=len(classes_))
        unseen = [
            classes_[k].item() if hasattr(classes_[k], "item") else classes_[k] for k in np.flatnonzero(seen == 0)
        ]
        if unseen:
            raise ValueError(
                f"classes {unseen!r} of classes= received no vote from any annotator; its confusion rows cannot be "
                "estimated: remove them from classes=, or leave classes= out to use the classes voted."
            )
    return codes, classes_, names


# ---------------------------------------------------------------------------
# The algorithms (pure functions)
# ---------------------------------------------------------------------------


def vote_counts(votes: np.ndarray, n_classes: int) -> np.ndarray:
    """``(n_rows, n_classes)`` number of votes each row got for each class.

    Examples
    --------
    >>> import numpy as np
    >>> vote_counts(np.array([[0, 1, 1], [2, -1, -1]]), 3).tolist()
    [[1, 2, 0], [0, 0, 1]]
    """
    n, m = votes.shape
    counts = np.zeros((n, n_classes), dtype=np.int64)
    for j in range(m):  # a loop over annotators, not rows
        seen = votes[:, j] >= 0
        counts[np.flatnonzero(seen), votes[seen, j]] += 1
    return counts


def agreement_rates(votes: np.ndarray) -> np.ndarray:
    """Each annotator's agreement rate: the share of the other votes on its rows that equal its vote.

    Over every row an annotator voted on, each other vote of that row is one pair; the rate is
    the share of those pairs that agree (0 for an annotator never on a row with another vote).
    It needs no truth and does not depend on the row order.

    Examples
    --------
    >>> import numpy as np
    >>> agreement_rates(np.array([[0, 0, 1], [1, 1, 1], [2, 0, -1]])).tolist()
    [0.6, 0.6, 0.5]
    """
    n, m = votes.shape
    counts = vote_counts(votes, int(votes.max()) + 1 if votes.size and votes.max() >= 0 else 1)
    n_votes = counts.sum(axis=1)
    rates = np.zeros(m)
    for j in range(m):  # a loop over annotators, not rows
        seen = np.flatnonzero(votes[:, j] >= 0)
        pairs = int((n_votes[seen] - 1).sum())
        if pairs:
            rates[j] = float((counts[seen, votes[seen, j]] - 1).sum()) / pairs
    return rates


def majority_vote(votes: np.ndarray, n_classes: int) -> np.ndarray:
    """The most frequent vote of each row (``-1`` for a row without votes).

    Tie rule: among the classes tied for the most votes of a row, the class voted by the most
    agreeing annotator of the row wins (the highest :func:`agreement_rates`: the votes of an
    annotator who often agrees with the others are the likelier to be right); among classes whose
    best voters agree equally often, the lower class index. A row whose votes all differ therefore
    takes the vote of its most agreeing annotator. The result is deterministic and does not
    depend on the row order.

    Examples
    --------
    >>> import numpy as np
    >>> votes = np.array([[0, 0, 0], [1, 1, 1], [0, 1, 1], [2, 1, 0], [3, 3, 2], [2, -1, 0], [-1, -1, -1]])
    >>> agreement_rates(votes).round(2).tolist()
    [0.45, 0.6, 0.45]
    >>> majority_vote(votes, 4).tolist()  # row 3: annotator 1's vote; row 5: equal rates, the lower class
    [0, 1, 1, 1, 3, 0, -1]
    """
    counts = vote_counts(votes, n_classes)
    rates = agreement_rates(votes)
    support = np.full(counts.shape, -1.0)  # the highest agreement rate among a class's voters, per row
    for j in range(votes.shape[1]):
        seen = np.flatnonzero(votes[:, j] >= 0)
        cells = (seen, votes[seen, j])
        support[cells] = np.maximum(support[cells], rates[j])
    top = counts == counts.max(axis=1, keepdims=True)
    labels = np.argmax(np.where(top, support, -2.0), axis=1)
    labels[counts.sum(axis=1) == 0] = -1
    return labels


def confusion_from_posterior(votes: np.ndarray, post: np.ndarray, *, smoothing: float = SMOOTHING) -> np.ndarray:
    """Each annotator's confusion matrix ``(m, K, K)``: row ``k`` is P(vote | true class ``k``).

    The expected counts of the votes under the posterior ``post`` ``(n, K)``, plus ``smoothing``
    in every cell (a symmetric Dirichlet prior), normalised per row: an annotator with few
    votes gets a matrix close to uniform, never one with zeros.

    Examples
    --------
    >>> import numpy as np
    >>> conf = confusion_from_posterior(np.array([[0], [1]]), np.eye(2), smoothing=1.0)
    >>> conf[0].tolist()
    [[0.6666666666666666, 0.3333333333333333], [0.3333333333333333, 0.6666666666666666]]
    """
    n, m = votes.shape
    k = post.shape[1]
    conf = np.full((m, k, k), float(smoothing))
    for j in range(m):
        seen = np.flatnonzero(votes[:, j] >= 0)
        for cls in range(k):  # expected counts: true class (rows) x vote (columns)
            conf[j, :, cls] += post[seen[votes[seen, j] == cls]].sum(axis=0)
    return conf / conf.sum(axis=2, keepdims=True)


def posterior(votes: np.ndarray, confusion: np.ndarray, log_prior: np.ndarray) -> tuple[np.ndarray, float]:
    """P(true class | votes) for every row and the mean log-likelihood of the votes.

    ``log_prior`` is ``(K,)`` (one class prior) or ``(n, K)`` (a prior per row, e.g. a model's
    log-probabilities). Each vote multiplies the prior by its annotator's confusion column.
    """
    log_post = np.array(np.broadcast_to(log_prior, (len(votes), confusion.shape[1])), dtype=np.float64)
    log_conf = np.log(confusion)
    for j in range(votes.shape[1]):
        seen = np.flatnonzero(votes[:, j] >= 0)
        log_post[seen] += log_conf[j][:, votes[seen, j]].T
    top = log_post.max(axis=1, keepdims=True)
    post = np.exp(log_post - top)
    total = post.sum(axis=1, keepdims=True)
    post /= total
    return post, float(np.mean(np.log(total[:, 0]) + top[:, 0]))


def dawid_skene(
    votes: np.ndarray,
    n_classes: int,
    *,
    log_prior: np.ndarray | None = None,
    smoothing: float = SMOOTHING,
    max_iter: int = 100,
    tol: float = 1e-6,
) -> tuple[np.ndarray, np.ndarray, int]:
    """Dawid and Skene (1979): the posterior of the true classes and each annotator's confusion matrix, by EM.

    Started from the majority vote (:func:`majority_vote`, one-hot). M-step: the class prior and
    every annotator's confusion matrix from the expected counts (:func:`confusion_from_posterior`,
    with ``smoothing``); E-step: the posterior of each row (:func:`posterior`). Stops when the
    mean log-likelihood of the votes changes by less than ``tol``, or after ``max_iter`` rounds.
    A fixed ``log_prior`` ``(n, K)`` per row replaces the estimated class prior (how
    :func:`model_consensus` lets a classifier join the votes).

    Returns
    -------
    post : ndarray (n, K)
        P(true class | votes); rows without votes get the prior.
    confusion : ndarray (m, K, K)
    n_iter : int

    Examples
    --------
    >>> import numpy as np
    >>> votes = np.array([[0, 0, 1], [1, 1, 1], [0, 0, 0], [1, 1, 0]])
    >>> post, conf, n_iter = dawid_skene(votes, 2)
    >>> post.argmax(axis=1).tolist()
    [0, 1, 0, 1]
    """
    start = majority_vote(votes, n_classes)
    post = np.zeros((len(votes), n_classes))
    post[start >= 0, start[start >= 0]] = 1.0
    voted = start >= 0
    post[~voted] = 1.0 / n_classes
    previous = -np.inf
    n_iter = 0
    while n_iter < max_iter:
        n_iter += 1
        confusion = confusion_from_posterior(votes, post, smoothing=smoothing)
        if log_prior is None:
            prior = (post[voted].sum(axis=0) + smoothing) / (voted.sum() + smoothing * n_classes)
            row_prior: np.ndarray = np.log(prior)
        else:
            row_prior = log_prior
        post, loglik = posterior(votes, confusion, row_prior)
        if abs(loglik - previous) < tol:
            break
        previous = loglik
    return post, confusion, n_iter


def annotator_accuracy(votes: np.ndarray, post: np.ndarray) -> np.ndarray:
    """Each annotator's estimated accuracy: the mean posterior probability of its votes (NaN: no votes).

    Examples
    --------
    >>> import numpy as np
    >>> annotator_accuracy(np.array([[0, 1], [1, -1]]), np.array([[0.9, 0.1], [0.2, 0.8]])).round(2).tolist()
    [0.85, 0.1]
    """
    out = np.full(votes.shape[1], np.nan)
    for j in range(votes.shape[1]):
        seen = np.flatnonzero(votes[:, j] >= 0)
        if len(seen):
            out[j] = post[seen, votes[seen, j]].mean()
    return out


def model_consensus(
    votes: np.ndarray,
    pred_probs: np.ndarray,
    *,
    smoothing: float = SMOOTHING,
    max_iter: int = 100,
    tol: float = 1e-6,
) -> tuple[np.ndarray, np.ndarray, float]:
    """The votes and a classifier's out-of-fold probabilities, combined (in the spirit of Goh et al. 2022).

    A weighted ensemble, as a product of experts: each vote is a soft label over the classes,
    its annotator's estimated confusion column (an annotator who agrees with the consensus
    weighs much, one who does not weighs little), and the classifier's probabilities enter
    tempered, ``p ** w`` (normalised per row), as each row's prior of the true class in the
    Dawid-Skene model (:func:`dawid_skene` with ``log_prior``). The weight ``w`` is the one that
    maximises the likelihood of the votes under that model (an empirical-Bayes choice, searched
    over ``[MODEL_WEIGHT_LOW, MODEL_WEIGHT_HIGH]``): a classifier whose probabilities predict the
    votes well weighs much. Calibrating ``p`` against the votes-only consensus instead would
    cap its weight at how well it matches that consensus, wrong labels included.

    Returns
    -------
    post : ndarray (n, K)
    confusion : ndarray (m, K, K)
    model_weight : float
        ``w``, the exponent of the classifier's probabilities.

    Examples
    --------
    >>> import numpy as np
    >>> votes = np.array([[0, 1], [0, 0], [1, 1], [1, 0]])
    >>> p = np.array([[0.9, 0.1], [0.8, 0.2], [0.1, 0.9], [0.2, 0.8]])
    >>> post, conf, w = model_consensus(votes, p)
    >>> post.argmax(axis=1).tolist()
    [0, 0, 1, 1]
    """
    from scipy.optimize import minimize_scalar

    k = pred_probs.shape[1]
    log_p = np.log(np.clip(np.asarray(pred_probs, dtype=np.float64), 1e-7, 1.0))
    fits: dict[float, tuple] = {}

    def fit(log_w: float) -> float:
        prior = np.exp(log_w) * log_p
        prior -= np.logaddexp.reduce(prior, axis=1, keepdims=True)
        post, confusion, _ = dawid_skene(votes, k, log_prior=prior, smoothing=smoothing, max_iter=max_iter, tol=tol)
        _, loglik = posterior(votes, confusion, prior)
        fits[log_w] = (post, confusion)
        return -loglik

    bounds = (float(np.log(MODEL_WEIGHT_LOW)), float(np.log(MODEL_WEIGHT_HIGH)))
    best = float(minimize_scalar(fit, bounds=bounds, method="bounded", options={"xatol": 0.02}).x)
    if best not in fits:
        fit(best)
    post, confusion = fits[best]
    return post, confusion, float(np.exp(best))


def flag_rows(quality: np.ndarray, threshold: float | str) -> np.ndarray:
    """Rows whose consensus is not trusted: ``quality < threshold``, or the expected number of wrong ones (``"auto"``).

    ``"auto"``: the sum of ``1 - quality`` (the expected number of wrong consensus labels when
    ``quality`` is the probability that the consensus is right), rounded, of lowest quality.

    Examples
    --------
    >>> import numpy as np
    >>> flag_rows(np.array([0.99, 0.4, 0.95, 0.7]), "auto").tolist()
    [False, True, False, False]
    """
    if threshold != "auto":
        return quality < float(threshold)
    n_flag = int(round(float(np.sum(1.0 - quality))))
    flagged = np.zeros(len(quality), dtype=bool)
    if n_flag:
        flagged[np.argsort(quality, kind="stable")[:n_flag]] = True
    return flagged


# ---------------------------------------------------------------------------
# The estimator
# ---------------------------------------------------------------------------


def _check_fitted(est: Any) -> None:
    if not hasattr(est, "consensus_labels_"):
        raise NotFittedError(f"This {type(est).__name__} instance is not fitted yet; call 'fit' with the votes first.")


def _table_backbones(seed: int) -> list:
    """CoTeachingFilter's tabular backbones (trees and a logistic regression), both on the numeric rows."""
    from ._crossfit import Backbone, default_table_backbones

    return [Backbone(b.model, "dense") for b in default_table_backbones(np.zeros(0, dtype=bool), seed)]


def _seeded(model: Any, seed: int) -> Any:
    """``model`` with every ``random_state`` parameter (nested ones too) set to ``seed`` where it is None."""
    params = model.get_params(deep=True) if hasattr(model, "get_params") else {}
    fixed = {name: seed for name, value in params.items() if name.endswith("random_state") and value is None}
    return model.set_params(**fixed) if fixed else model


def _check_model_inputs(X: np.ndarray | None, pred_probs: Any, votes: np.ndarray, classes: np.ndarray) -> Any:
    """``pred_probs`` as a float array checked against the votes (None when not given); ``X`` checked to match."""
    n, k = len(votes), len(classes)
    if X is not None and len(X) != n:
        raise ValueError(f"X has {len(X)} rows but Y has {n}; they must describe the same rows.")
    if pred_probs is None:
        return None
    proba = np.asarray(pred_probs, dtype=np.float64)
    if proba.shape != (n, k):
        raise ValueError(
            f"pred_probs has shape {proba.shape} but Y has {n} rows and {k} classes; pass one column per "
            f"class in the order of classes_ ({classes.tolist()!r}), one row per row of Y."
        )
    if not np.isfinite(proba).all() or (proba < 0).any():
        raise ValueError("pred_probs holds negative or non-finite values; pass probabilities.")
    return proba


class AnnotatorConsensus(ClassifierMixin, BaseEstimator):
    """One consensus label per row from several annotators' votes, with its confidence and each annotator's quality.

    ``fit(X, Y)`` takes the votes ``Y``, an ``(n_rows, n_annotators)`` array or DataFrame of
    labels of any type (strings too) with missing votes as null, NaN or ``-1``; rows may have
    one vote or many. ``X`` (features or embeddings, optional: ``fit(None, Y)``) lets a model
    of the data join the votes: a classifier is cross-fitted on the votes-only consensus and
    its out-of-fold probabilities are combined with the votes. ``pred_probs=`` (a fit
    parameter) gives such probabilities from the user's own model instead of ``X``.

    Parameters
    ----------
    method : {"auto", "majority", "dawid_skene", "model"}, default="auto"
        ``"majority"``: :func:`majority_vote` (ties: the class voted by the annotator who agrees most
        often with the others, then the lower class index). ``"dawid_skene"``: :func:`dawid_skene`. ``"model"``:
        :func:`model_consensus` (needs ``X`` or ``pred_probs``). ``"auto"``: ``"model"`` when
        ``X`` or ``pred_probs`` is given, else ``"dawid_skene"``.
    estimator : "auto" or a scikit-learn classifier with ``predict_proba``, default="auto"
        The model of the data for ``X``: ``"auto"`` cross-fits gradient-boosted trees and a
        logistic regression and keeps the one (or the mix) that fits the consensus best.
    classes : array-like or None, default=None
        The classes, in this order; default: the sorted distinct votes.
    threshold : "auto" or float in (0, 1), default="auto"
        A row is clean when its consensus is trusted: ``label_quality_ >= threshold``; ``"auto"``
        flags as many rows of lowest quality as the expected number of wrong consensus labels.
    smoothing : float, default=1.0
        Pseudo-count added to every cell of each annotator's confusion matrix.
    max_iter : int, default=100
        EM rounds at most.
    tol : float, default=1e-6
        EM stops when the mean log-likelihood of the votes changes by less.
    n_folds : int, default=5
        Folds of the cross-fitting for ``X``.
    allow_empty : bool, default=False
        A row without any vote is an error, unless ``allow_empty=True``: its consensus is then
        ``-1`` (``None`` for non-numeric labels), its quality 0, and it is never clean.
    random_state : int, RandomState or None, default=None
        Seeds the folds and the default models: the same value gives the same result.

    Attributes
    ----------
    classes_ : ndarray (K,)
    consensus_labels_ : ndarray (n,)
    label_quality_ : ndarray of float (n,)
        Posterior probability that the consensus label is right, in [0, 1].
    clean_mask_ : ndarray of bool (n,)
    agreement_ : ndarray of float (n,)
        Share of the row's votes equal to the consensus (NaN for a row without votes).
    n_votes_ : ndarray of int (n,)
    annotator_accuracy_ : pandas.Series
        Estimated accuracy of each annotator, indexed by annotator name (the DataFrame's
        columns, else ``0 .. m-1``).
    annotator_confusion_ : ndarray (m, K, K)
        Row ``k`` of annotator ``j``'s matrix: P(vote | true class ``k``).
    posterior_ : ndarray (n, K)
    method_ : str
        The method used (``"auto"`` resolved).
    model_weight_ : float or None
        The exponent of the model's probabilities, the one that makes the votes most likely
        (method ``"model"``; see :func:`model_consensus`).
    n_iter_ : int
    n_features_in_ : int
        Only when ``X`` was given.

    Examples
    --------
    >>> import numpy as np
    >>> rows = [["cat", "cat", "dog"], ["dog", "dog", "dog"], ["cat", None, "cat"]]
    >>> rows += [["dog", "dog", "cat"], ["cat", "cat", None]]
    >>> Y = np.array(rows * 4, dtype=object)  # annotator 2 is often wrong
    >>> est = AnnotatorConsensus(random_state=0).fit(None, Y)
    >>> est.consensus_labels_[:5].tolist(), est.n_votes_[:5].tolist()
    (['cat', 'dog', 'cat', 'dog', 'cat'], [3, 3, 2, 3, 2])
    >>> est.annotator_accuracy_.round(2).tolist()
    [0.96, 0.98, 0.47]
    """

    _parameter_constraints: dict = {
        "method": [StrOptions({"auto", "majority", "dawid_skene", "model"})],
        "estimator": [StrOptions({"auto"}), HasMethods(["fit", "predict_proba"])],
        "classes": ["array-like", None],
        "threshold": [StrOptions({"auto"}), Interval(Real, 0.0, 1.0, closed="neither")],
        "smoothing": [Interval(Real, 0.0, None, closed="neither")],
        "max_iter": [Interval(Integral, 1, None, closed="left")],
        "tol": [Interval(Real, 0.0, None, closed="left")],
        "n_folds": [Interval(Integral, 2, None, closed="left")],
        "allow_empty": ["boolean"],
        "random_state": ["random_state"],
    }

    def __init__(
        self,
        *,
        method: str = "auto",
        estimator: Any = "auto",
        classes: Any = None,
        threshold: float | str = "auto",
        smoothing: float = SMOOTHING,
        max_iter: int = 100,
        tol: float = 1e-6,
        n_folds: int = 5,
        allow_empty: bool = False,
        random_state: Any = None,
    ) -> None:
        self.method = method
        self.estimator = estimator
        self.classes = classes
        self.threshold = threshold
        self.smoothing = smoothing
        self.max_iter = max_iter
        self.tol = tol
        self.n_folds = n_folds
        self.allow_empty = allow_empty
        self.random_state = random_state

    def __sklearn_tags__(self):
        tags = super().__sklearn_tags__()
        tags.target_tags.required = True
        tags.input_tags.allow_nan = True
        return tags

    # ------------------------------------------------------------------ fit
    @_fit_context(prefer_skip_nested_validation=True)
    def fit(self, X: Any, Y: Any, *, pred_probs: Any = None) -> AnnotatorConsensus:
        """Find the consensus of the votes ``Y`` (with the model of ``X`` or ``pred_probs`` when given).

        Parameters
        ----------
        X : array-like of shape (n, d) or None
        Y : array-like or DataFrame of shape (n, m)
            Votes; null, NaN or ``-1`` for a missing one. Two annotators or more.
        pred_probs : array-like of shape (n, K) or None
            Out-of-fold class probabilities from the user's own model (instead of ``X``),
            columns in the order of the classes.

        Returns
        -------
        self
        """
        X = self._check_X(X, Y, pred_probs)
        votes, classes, names = encode_votes(Y, self.classes)
        empty = self._check_votes(votes, classes)
        proba = _check_model_inputs(X, pred_probs, votes, classes)
        method = self._resolve_method(X, proba)
        k = len(classes)
        seed = int(check_random_state(self.random_state).randint(2**31 - 1))
        self.model_weight_ = None
        self.n_iter_ = 0
        rows = np.flatnonzero(~empty)
        if method == "majority":
            labels, post, confusion, accuracy = self._majority(votes[rows], k)
        else:
            labels, post, confusion, accuracy = self._expectation_maximisation(method, X, votes, rows, proba, k, seed)
        self._store(votes, classes, names, rows, labels, post, confusion, accuracy, method)
        if X is not None:
            self._fit_final(X[self.clean_mask_], self._codes[self.clean_mask_], k, seed)
        return self

    def _check_X(self, X: Any, Y: Any, pred_probs: Any) -> np.ndarray | None:
        """``X`` validated (it sets ``n_features_in_``), after checking that the votes are given, with one model."""
        if Y is None:
            raise ValueError("Y (the votes, n_rows x n_annotators) is required.")
        if X is not None and pred_probs is not None:
            raise ValueError("give X (a model is cross-fitted on it) or pred_probs (your own model's), not both.")
        if X is not None:
            return validate_data(self, X, reset=True, dtype=np.float64, ensure_all_finite="allow-nan")
        self.__dict__.pop("n_features_in_", None)
        return None

    def _check_votes(self, votes: np.ndarray, classes: np.ndarray) -> np.ndarray:
        """Whether each row has no vote, after checking that there are two annotators, two classes and votes."""
        n, m = votes.shape
        if m < 2:
            raise ValueError(
                f"Y has {m} annotator column; a consensus needs two or more annotators. For one label per row, "
                "use CoTeachingFilter or labelclean.find_label_issues to find the wrong labels."
            )
        if len(classes) < 2:
            raise ValueError(f"the votes name {len(classes)} class; a consensus needs two classes or more.")
        empty = (votes >= 0).sum(axis=1) == 0
        if empty.any() and not self.allow_empty:
            raise ValueError(
                f"{int(empty.sum())} of {n} rows have no vote (first: row {int(np.flatnonzero(empty)[0])}); drop "
                "them, or pass allow_empty=True (--allow-empty) to give them a -1 / null consensus."
            )
        if empty.all():
            raise ValueError("no row has a vote.")
        return empty

    def _resolve_method(self, X: np.ndarray | None, proba: np.ndarray | None) -> str:
        """The method to use: ``"auto"`` resolved, ``"model"`` checked to have a model of the data."""
        method = self.method
        if method == "auto":
            method = "model" if X is not None or proba is not None else "dawid_skene"
        if method == "model" and X is None and proba is None:
            raise ValueError('method="model" needs X (features) or pred_probs; or use method="dawid_skene".')
        return method

    def _majority(self, sub: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
        """The majority vote of the rows with votes ``sub``: labels, their posterior, confusion matrices, accuracy."""
        labels = majority_vote(sub, k)
        hard = np.eye(k)[labels]
        confusion = confusion_from_posterior(sub, hard, smoothing=self.smoothing)
        prior = (hard.sum(axis=0) + self.smoothing) / (len(sub) + self.smoothing * k)
        post, _ = posterior(sub, confusion, np.log(prior))  # the confidence in the majority label
        m = sub.shape[1]
        accuracy = np.array([np.mean(sub[sub[:, j] >= 0, j] == labels[sub[:, j] >= 0]) for j in range(m)])
        return labels, post, confusion, accuracy

    def _expectation_maximisation(
        self,
        method: str,
        X: np.ndarray | None,
        votes: np.ndarray,
        rows: np.ndarray,
        proba: np.ndarray | None,
        k: int,
        seed: int,
    ) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
        """Dawid-Skene, or with ``method="model"`` the votes and a model's probabilities, on the rows with votes.

        Without ``pred_probs`` the model's probabilities are cross-fitted on ``X`` against the
        votes-only Dawid-Skene consensus. Sets ``model_weight_`` or ``n_iter_``; returns as :meth:`_majority`.
        """
        sub = votes[rows]
        if method == "model" and proba is None:
            start, _, _ = dawid_skene(sub, k, smoothing=self.smoothing, max_iter=self.max_iter, tol=self.tol)
            proba = np.zeros((len(votes), k))
            proba[rows] = self._cross_fit(X[rows], start.argmax(axis=1), k, seed)
        if method == "model":
            proba = proba / np.clip(proba.sum(axis=1, keepdims=True), 1e-12, None)
            post, confusion, self.model_weight_ = model_consensus(
                sub, proba[rows], smoothing=self.smoothing, max_iter=self.max_iter, tol=self.tol
            )
        else:
            post, confusion, self.n_iter_ = dawid_skene(
                sub, k, smoothing=self.smoothing, max_iter=self.max_iter, tol=self.tol
            )
        return post.argmax(axis=1), post, confusion, annotator_accuracy(sub, post)

    def _store(self, votes, classes, names, rows, labels, post, confusion, accuracy, method) -> None:
        import pandas as pd

        n = len(votes)
        codes = np.full(n, -1, dtype=np.int64)
        codes[rows] = labels
        self._codes = codes
        self.classes_ = classes
        self.method_ = method
        full_post = np.zeros((n, len(classes)))
        full_post[rows] = post
        self.posterior_ = full_post
        quality = np.zeros(n)
        quality[rows] = np.clip(post[np.arange(len(rows)), labels], 0.0, 1.0)
        self.label_quality_ = quality
        clean = np.zeros(n, dtype=bool)
        clean[rows] = ~flag_rows(quality[rows], self.threshold)
        self.clean_mask_ = clean
        self.n_votes_ = (votes >= 0).sum(axis=1)
        with np.errstate(invalid="ignore", divide="ignore"):
            agree = ((votes == codes[:, None]) & (votes >= 0)).sum(axis=1) / self.n_votes_
        self.agreement_ = np.where(self.n_votes_ > 0, agree, np.nan)
        if len(rows) == n:
            self.consensus_labels_ = classes[codes]
        else:
            filler = -1 if classes.dtype.kind in "iuf" else None
            out = np.empty(n, dtype=classes.dtype if filler == -1 else object)
            out[rows] = classes[labels]
            out[codes < 0] = filler
            self.consensus_labels_ = out
        self.annotator_accuracy_ = pd.Series(accuracy, index=pd.Index(names), name="accuracy")
        self.annotator_confusion_ = confusion
        seen = votes >= 0
        self._votes_per_annotator = seen.sum(axis=0)
        with np.errstate(invalid="ignore", divide="ignore"):
            self._agreement_per_annotator = ((votes == codes[:, None]) & seen).sum(axis=0) / seen.sum(axis=0)

    # ------------------------------------------------------------ the model
    def _backbones(self, seed: int) -> list:
        from ._crossfit import Backbone

        if isinstance(self.estimator, str):
            return _table_backbones(seed)
        return [Backbone(_seeded(clone(self.estimator), seed), "dense")]

    def _cross_fit(self, X: np.ndarray, y: np.ndarray, k: int, seed: int) -> np.ndarray:
        """Out-of-fold probabilities on ``y`` (the votes-only consensus); keeps the backbones that fit it best."""
        from ._crossfit import choose_weights, cross_fit_proba, mix, stratified_folds

        backbones = self._backbones(seed)
        folds = stratified_folds(y, self.n_folds, seed)
        with warnings.catch_warnings():
            warnings.filterwarnings("ignore", message=".*least populated class.*")
            probas = cross_fit_proba(backbones, {"dense": X}, y, folds, k)
        self.backbone_weights_ = choose_weights(probas, y) if len(probas) > 1 else np.ones(1)
        return mix(probas, self.backbone_weights_).astype(np.float64)

    def _fit_final(self, X: np.ndarray, y: np.ndarray, k: int, seed: int) -> None:
        from ._crossfit import fit_model

        weights = getattr(self, "backbone_weights_", None)
        backbones = self._backbones(seed)
        if weights is None or len(weights) != len(backbones):
            weights = np.ones(len(backbones)) / len(backbones)
        rows = np.arange(len(y))
        self.estimators_ = [fit_model(b.model, X, y, rows) for b, w in zip(backbones, weights) if w > 0]
        self._estimator_weights = weights[weights > 0]

    # ------------------------------------------------------------ predict
    def predict_proba(self, X: Any) -> np.ndarray:
        """Class probabilities of new rows, from the model fitted on the trusted consensus labels (needs ``X``)."""
        _check_fitted(self)
        if not hasattr(self, "estimators_"):
            raise AttributeError("predict_proba needs a model of the data: fit with X (features), not only the votes.")
        X = validate_data(self, X, reset=False, dtype=np.float64, ensure_all_finite="allow-nan")
        from ._crossfit import aligned_proba

        k = len(self.classes_)
        probas = [aligned_proba(m, X, k) for m in self.estimators_]
        return (sum(w * p for w, p in zip(self._estimator_weights, probas)) / self._estimator_weights.sum()).astype(
            np.float64
        )

    def predict(self, X: Any) -> np.ndarray:
        """The most probable class of new rows (needs ``X`` in fit)."""
        proba = self.predict_proba(X)
        return self.classes_[np.argmax(proba, axis=1)]

    def annotator_table(self) -> Any:
        """Per-annotator quality as a DataFrame: votes cast, estimated accuracy, agreement with the consensus."""
        import pandas as pd

        _check_fitted(self)
        return pd.DataFrame(
            {
                "votes": self._votes_per_annotator,
                "accuracy": self.annotator_accuracy_.to_numpy(),
                "agreement": self._agreement_per_annotator,
            },
            index=self.annotator_accuracy_.index,
        )


# ---------------------------------------------------------------------------
# Data ops: a table in, the consensus columns out
# ---------------------------------------------------------------------------


def consensus_labels(
    data: Any,
    annotators: list[str],
    *,
    features: list[str] | None = None,
    **params: Any,
) -> tuple[Any, AnnotatorConsensus]:
    """Consensus columns of a table: ``consensus_label``, ``label_quality``, ``is_clean``, ``n_votes``, ``agreement``.

    ``data`` is a pandas DataFrame, a pyarrow Table or a parquet path; ``annotators`` names its
    vote columns; ``features`` optional feature columns (read as in :func:`labelclean.io.plan_features`).
    ``params`` go to :class:`AnnotatorConsensus`. Returns the added columns as a pyarrow Table
    (``consensus_label`` of the first annotator column's type, null for a row without votes)
    and the fitted estimator.

    Examples
    --------
    >>> import pandas as pd
    >>> df = pd.DataFrame({"a": ["x", "y", "x"] * 4, "b": ["x", "y", "y"] * 4, "c": ["x", None, "x"] * 4})
    >>> added, est = consensus_labels(df, ["a", "b", "c"])
    >>> added.column_names
    ['consensus_label', 'label_quality', 'is_clean', 'n_votes', 'agreement']
    >>> added.column("consensus_label").to_pylist()[:3]
    ['x', 'y', 'x']
    """
    import pyarrow as pa
    import pyarrow.compute as pc

    from .io import DataError, OptionError, as_source, plan_features, read_column, read_features, source_schema

    source = as_source(data)
    names = source_schema(source).names
    unknown = [a for a in annotators if a not in names]
    if unknown:
        raise OptionError(f"annotator columns {unknown} are not in the data; its columns are {names[:20]}.")
    if len(set(annotators)) != len(annotators):
        raise OptionError("an annotator column is named twice.")
    if features and set(features) & set(annotators):
        raise OptionError(f"columns {sorted(set(features) & set(annotators))} are both annotators and features.")
    columns = [read_column(source, a) for a in annotators]
    first_type = columns[0].type
    frame = pa.table(dict(zip(annotators, columns))).to_pandas()
    X = None
    if features:
        plan = plan_features(source, label=None, features=features)
        X = read_features(source, plan)
        X = X.reshape(len(X), -1)
    try:
        est = AnnotatorConsensus(**params).fit(X, frame)
    except ValueError as exc:
        if type(exc) is ValueError and "InvalidParameterError" not in type(exc).__name__:
            raise DataError(str(exc)) from None
        raise
    labels = est.consensus_labels_
    valid = est.n_votes_ > 0
    values = [v.item() if hasattr(v, "item") else v for v in labels]
    values = [v if ok else None for v, ok in zip(values, valid)]
    try:
        consensus = pc.cast(pa.array(values), first_type) if values else pa.array([], type=first_type)
    except (pa.ArrowInvalid, pa.ArrowNotImplementedError):
        consensus = pa.array(values)
    added = pa.table(
        {
            "consensus_label": consensus,
            "label_quality": pa.array(est.label_quality_.astype(np.float32)),
            "is_clean": pa.array(est.clean_mask_),
            "n_votes": pa.array(est.n_votes_.astype(np.int32)),
            "agreement": pa.array(est.agreement_.astype(np.float32), from_pandas=True),
        }
    )
    return added, est


def report_html(est: AnnotatorConsensus, *, title: str = "labelclean consensus") -> str:
    """A small self-contained HTML page: the consensus summary and the per-annotator quality table."""
    table = est.annotator_table()
    rows = "".join(
        f"<tr><td>{html.escape(str(name))}</td><td>{int(r.votes):,}</td><td>{r.accuracy:.3f}</td>"
        f"<td>{r.agreement:.3f}</td></tr>"
        for name, r in table.iterrows()
    )
    voted = est.n_votes_ > 0
    flagged = int((~est.clean_mask_ & voted).sum())
    hist = np.bincount(est.n_votes_, minlength=2)
    votes_line = ", ".join(f"{c:,} rows with {i} vote{'s' if i != 1 else ''}" for i, c in enumerate(hist) if c)
    return f"""<!DOCTYPE html>
<html lang="en"><head><meta charset="utf-8"><title>{html.escape(title)}</title>
<style>body{{font-family:sans-serif;margin:2em;max-width:60em}}table{{border-collapse:collapse}}
td,th{{border:1px solid #ccc;padding:4px 10px;text-align:right}}td:first-child{{text-align:left}}</style>
</head><body>
<h1>{html.escape(title)}</h1>
<p>Method <b>{html.escape(est.method_)}</b>: {len(est.n_votes_):,} rows, {len(est.classes_)} classes,
{flagged:,} consensus labels not trusted ({flagged / max(1, int(voted.sum())):.1%}); {votes_line}.
Mean label quality {float(est.label_quality_[voted].mean()):.3f}.</p>
<h2>Annotators</h2>
<table><tr><th>annotator</th><th>votes</th><th>estimated accuracy</th><th>agreement with consensus</th></tr>
{rows}</table>
</body></html>
"""
