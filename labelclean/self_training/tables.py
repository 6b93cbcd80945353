"""Noisy Student's rounds on the tabular backbones: trees and linear models refitted on a growing share of rows.

:class:`~labelclean.NoisyStudent` runs these steps when ``SelfTrainer.backbone_`` is
``"table"``. The backbones take no training noise; instead each round restarts from the
labeled rows and takes a growing, most-confident-first share of the pseudo-labeled rows, as in
Curriculum Labeling (Cascante-Bonilla et al., AAAI 2021), and a cross-validated check on the
labeled rows (``guard``) keeps the self-trained models only where they do no worse.
"""

from __future__ import annotations

import contextlib
import time
from typing import TYPE_CHECKING, Any

import numpy as np

from .. import _progress
from .._crossfit import choose_weights, cross_fit_proba, fit_model, log_loss, models_proba, stratified_folds
from .._crossfit import table_backbones as make_backbones
from .algorithms import balanced_accuracy, labeled_repeats, select_pseudo_rows
from .strategy import Outcome, Rows

if TYPE_CHECKING:
    from . import SelfTrainer
    from .noisy_student import NoisyStudent

#: Most folds of the cross-fitting that picks the tabular backbones on the labeled rows.
TABLE_FOLDS = 5
#: Most folds of the labeled rows over which ``guard`` checks that self-training helps.
GUARD_FOLDS = 3


def label_shares(y_enc: np.ndarray, given: np.ndarray, n_classes: int) -> np.ndarray:
    """Class shares estimated from the data: those of the labeled rows."""
    counts = np.bincount(y_enc[given], minlength=n_classes).astype(np.float64)
    return counts / max(counts.sum(), 1.0)


def fit_tables(strategy: NoisyStudent, st: SelfTrainer, rows: Rows) -> Outcome:
    """Self-training of the tabular backbones; ``(None, probabilities, rows trained on)``, models in ``estimators_``.

    1. The backbones are picked on the labeled rows (cross-fitted, ``choose_weights``) and
       fitted on them (round 0).
    2. In each round ``r`` the previous models label the unlabeled rows; the ``r / max_iter``
       most confident share of them (balanced per ``balance``) joins the labeled rows (repeated
       to ``labeled_share``), and the backbones are refitted on that (:func:`table_rounds`).
    3. With ``guard`` the rounds are first run within folds of the labeled rows
       (:func:`table_guard`); where they do no better there than the labeled rows alone, the
       models fitted on the labeled rows are the final ones.
    """
    y_enc, given = rows.y_enc, rows.given
    k = len(st.classes_)
    views, mask = st._table_views(rows.X, rows.Xt.numpy())
    backbones = make_backbones(st.backbone_, st.estimator, mask, st._seed)
    lab = np.flatnonzero(given)
    y_lab = y_enc[lab]
    t0 = time.perf_counter()
    if len(backbones) > 1:
        n_folds = int(min(TABLE_FOLDS, max(2, np.bincount(y_lab, minlength=k).min())))
        folds = stratified_folds(y_lab, n_folds, st._seed)
        lab_views = {name: v[lab] for name, v in views.items()}
        with _progress.phase("choosing the learner", len(np.unique(folds)), unit="folds"):
            weights = choose_weights(cross_fit_proba(backbones, lab_views, y_lab, folds, k), y_lab)
    else:
        weights = np.ones(1)
    backbones = [b for b, w in zip(backbones, weights) if w > 0]
    st.backbone_weights_ = np.asarray(weights[weights > 0], dtype=np.float64)
    st._estimator_views = [b.view for b in backbones]
    st.history_.append({"phase": "choose", "weights": weights.tolist(), "seconds": time.perf_counter() - t0})
    n_rounds = strategy.max_iter if (~given).any() else 0
    st.self_training_kept_ = n_rounds > 0
    if st.self_training_kept_ and strategy.guard:
        st.self_training_kept_ = table_guard(strategy, st, backbones, views, y_enc, given, n_rounds)
        if not st.self_training_kept_:
            n_rounds = 0
            st.termination_condition_ = "no_gain"
    models, proba, _, trained = table_rounds(strategy, st, backbones, views, y_enc, given, n_rounds, record=True)
    st.estimators_ = models
    return None, proba, trained


def _pick(strategy: NoisyStudent, proba, pool, shares, n_take: int) -> tuple[np.ndarray, np.ndarray]:
    """The ``n_take`` pseudo-labeled rows of a round: balanced to ``shares`` (``"shares"``), else the most confident."""
    selected, picked = select_pseudo_rows(
        proba,
        pool,
        threshold=strategy.threshold,
        balance=strategy.balance != "none",
        shares=shares if strategy.balance == "shares" else None,
        n_rows=n_take,
    )
    if strategy.balance != "shares":  # no quotas: the most confident n_take rows
        conf = proba[picked].max(axis=1)
        picked = picked[np.argsort(-conf, kind="stable")[:n_take]]
        selected = np.zeros_like(selected)
        selected[picked] = True
    return selected, picked


def table_rounds(strategy: NoisyStudent, st: SelfTrainer, backbones, views, y_enc, given, n_rounds, *, record):
    """The self-training rounds of the tabular path on the labeled rows ``given`` and every other row.

    Rows that are neither labeled nor unlabeled (``y_enc == -1`` and ``given`` false are the
    unlabeled ones; held-out labeled rows of :func:`table_guard` are passed with
    ``y_enc = -2``) take no part. Returns the final models, their probabilities on every
    row, the probabilities of the models fitted on the labeled rows alone (round 0) and
    the rows trained on. ``record``: write ``history_`` and set ``n_iter_`` /
    ``termination_condition_``.
    """
    k = len(st.classes_)
    lab = np.flatnonzero(given)
    pool = ~given & (y_enc == -1)
    unl = np.flatnonzero(pool)
    shares = label_shares(y_enc, given, k)
    targets, train_rows, trained = y_enc.copy(), lab, given.copy()
    first = None
    for rnd in range(n_rounds + 1):
        t0 = time.perf_counter()
        models = _fit_backbones(
            backbones, views, targets, train_rows, "teacher" if rnd == 0 else f"student {rnd}", record
        )
        proba = models_proba(models, st._estimator_views, views, st.backbone_weights_, k)
        if first is None:
            first = proba
        if record:
            phase = "teacher" if rnd == 0 else "student"
            st.history_.append(
                {"phase": phase, "round": rnd, "rows": len(train_rows), "seconds": time.perf_counter() - t0}
            )
            st.n_iter_ = rnd
        if rnd == n_rounds or len(unl) == 0:
            break
        selected, picked = _pick(strategy, proba, pool, shares, int(round((rnd + 1) / n_rounds * len(unl))))
        if record:
            st.history_.append({"phase": "pseudo_label", "round": rnd + 1, "n_selected": int(selected.sum())})
        if not len(picked):
            if record:
                st.termination_condition_ = "no_change"
            break
        targets = np.where(given, y_enc, proba.argmax(axis=1))
        copies = labeled_repeats(len(lab), len(picked), strategy.labeled_share)
        train_rows, trained = np.concatenate([np.tile(lab, copies), picked]), given | selected
    return models, proba, first, trained


def _fit_backbones(backbones, views, targets, rows, name: str, record: bool) -> list[Any]:
    """Each backbone fitted on ``rows`` of its view against ``targets`` (a progress phase when ``record``)."""
    with _progress.phase(name, len(backbones), unit="fits") if record else contextlib.nullcontext():
        models = []
        for b in backbones:
            models.append(fit_model(b.model, views[b.view], targets, rows))
            if record:
                _progress.advance(1, rows=len(rows))
    return models


def table_guard(strategy: NoisyStudent, st: SelfTrainer, backbones, views, y_enc, given, n_rounds) -> bool:
    """Whether self-training is kept: cross-validated over the labeled rows, never on other rows.

    The labeled rows are split into ``GUARD_FOLDS`` stratified folds. A class with fewer
    labeled rows than folds would be missing from a held-out fold, and a check on one or two
    rows of a class is chance: then self-training is not kept, unchecked (the history entry
    says ``"too few labeled rows"``). For each fold, the rounds of :func:`table_rounds` run on the other
    folds' labeled rows and every unlabeled row (the held-out fold takes no part); its
    round-0 models (the same learner on those labeled rows alone) and its final models
    predict the held-out fold. Self-training is kept when, pooled over the folds, the final
    models are worse on neither score: their held-out balanced accuracy (the decisions) is
    at least that of the round-0 models and their held-out log-loss (the probabilities) is
    not higher. The scores go to ``history_`` (phase ``"guard"``).
    """
    t0 = time.perf_counter()
    k = len(st.classes_)
    lab = np.flatnonzero(given)
    y_lab = y_enc[lab]
    smallest = int(np.bincount(y_lab, minlength=k).min())
    if smallest < GUARD_FOLDS:
        reason = f"too few labeled rows: {smallest} in a class, the check needs {GUARD_FOLDS}"
        st.history_.append({"phase": "guard", "folds": 0, "kept": False, "reason": reason, "seconds": 0.0})
        return False
    n_folds = GUARD_FOLDS
    folds = stratified_folds(y_lab, n_folds, st._seed)
    alone = np.zeros((len(lab), k), dtype=np.float64)
    trained = np.zeros((len(lab), k), dtype=np.float64)
    with _progress.phase("checking self-training", n_folds, unit="folds"):
        for fold in range(n_folds):
            held = folds == fold
            fit_given = given.copy()
            fit_given[lab[held]] = False
            if len(np.unique(y_enc[fit_given])) < 2:  # nothing to learn from: both guess the class shares
                alone[held] = trained[held] = np.bincount(y_lab, minlength=k) / len(y_lab)
                _progress.advance(1)
                continue
            y_fold = y_enc.copy()
            y_fold[lab[held]] = -2  # neither labeled nor unlabeled: out of this fold's rounds
            _, last, first, _ = table_rounds(strategy, st, backbones, views, y_fold, fit_given, n_rounds, record=False)
            alone[held], trained[held] = first[lab[held]], last[lab[held]]
            _progress.advance(1)
    scores = {
        name: {"balanced_accuracy": balanced_accuracy(y_lab, p.argmax(1), k), "log_loss": log_loss(p, y_lab)}
        for name, p in (("labeled_only", alone), ("self_trained", trained))
    }
    a, s = scores["labeled_only"], scores["self_trained"]
    kept = bool(s["balanced_accuracy"] >= a["balanced_accuracy"] - 1e-12 and s["log_loss"] <= a["log_loss"])
    st.history_.append(
        {"phase": "guard", "folds": n_folds, **scores, "kept": kept, "seconds": time.perf_counter() - t0}
    )
    return kept
