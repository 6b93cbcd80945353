"""Tests of SelfTrainer: Noisy Student self-training and relabel mode (small synthetic data, CPU)."""

from __future__ import annotations

import json
import warnings

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from sklearn.base import clone
from sklearn.datasets import load_digits, make_classification
from sklearn.linear_model import LogisticRegression
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import StandardScaler
from sklearn.utils.estimator_checks import parametrize_with_checks

from labelclean.coteaching import CoTeachingFilter
from labelclean.detection import RELABEL_THRESHOLD
from labelclean.noise import make_noisy_labels
from labelclean.self_training import (
    Consistency,
    NoisyStudent,
    Relabel,
    SelfTrainer,
    balance_rows,
    consistency_epoch,
    fold_ids,
    labeled_repeats,
    select_pseudo_rows,
    soft_cross_entropy,
    student_targets,
    unlabeled_mask,
    weighted_rows,
)

FAST = dict(estimator="network", max_epochs=5, min_steps=150, hidden_dims=(32, 32), random_state=0)  # the networks


@pytest.fixture(scope="module")
def semi():
    """Three well-clustered classes, 10 labeled rows per class, the other 870 rows unlabeled."""
    X, y = make_classification(
        900,
        n_features=10,
        n_informative=4,
        n_redundant=0,
        n_classes=3,
        n_clusters_per_class=1,
        class_sep=2.0,
        random_state=0,
    )
    rng = np.random.default_rng(0)
    labeled = np.concatenate([rng.choice(np.flatnonzero(y == c), 10, replace=False) for c in range(3)])
    y_semi = np.full_like(y, -1)
    y_semi[labeled] = y[labeled]
    return X.astype(np.float32), y, y_semi


@pytest.fixture(scope="module")
def teacher_only_accuracy(semi):
    X, y, y_semi = semi
    st = SelfTrainer(strategy=NoisyStudent(max_iter=0), **FAST).fit(X, y_semi)
    unl = y_semi == -1
    return float(np.mean(st.pseudo_labels_[unl] == y[unl]))


# ----------------------------------------------------------------------------- pure functions


def test_unlabeled_mask_handles_ints_strings_and_objects():
    assert unlabeled_mask(np.array([0, -1, 2])).tolist() == [False, True, False]
    assert unlabeled_mask(np.array(["a", "-1", "b"])).tolist() == [False, True, False]
    assert unlabeled_mask(np.array(["a", -1, "-1"], dtype=object)).tolist() == [False, True, True]
    assert unlabeled_mask(np.array([0.5, -1.0])).tolist() == [False, True]
    assert unlabeled_mask(np.array([True, False])).tolist() == [False, False]


def test_soft_cross_entropy_matches_cross_entropy_on_one_hot_targets():
    logits = torch.randn(6, 4, generator=torch.Generator().manual_seed(0))
    y = torch.tensor([0, 1, 2, 3, 0, 1])
    loss, _ = soft_cross_entropy([logits], F.one_hot(y, 4).float())
    torch.testing.assert_close(loss, F.cross_entropy(logits, y))


def test_balance_rows_equalises_classes_keeping_the_most_confident():
    labels = np.array([0, 0, 0, 0, 0, 0, 1, 1])
    confidence = np.array([0.1, 0.9, 0.8, 0.7, 0.2, 0.3, 0.6, 0.5])
    picked = balance_rows(labels, confidence, n_classes=3)
    assert np.bincount(labels[picked], minlength=3).tolist() == [4, 4, 0]
    assert set(picked[labels[picked] == 0]) == {1, 2, 3, 5}  # the four most confident of class 0
    assert sorted(picked[labels[picked] == 1]) == [6, 6, 7, 7]  # the rare class repeated


def test_select_pseudo_rows_applies_threshold_to_candidates_only():
    proba = np.array([[0.9, 0.1], [0.6, 0.4], [0.2, 0.8], [0.95, 0.05]], dtype=np.float32)
    candidates = np.array([True, True, True, False])
    selected, rows = select_pseudo_rows(proba, candidates, threshold=0.7, balance=False)
    assert selected.tolist() == [True, False, True, False]
    assert rows.tolist() == [0, 2]


def test_student_targets_soft_and_hard():
    proba = np.array([[0.7, 0.3], [0.4, 0.6], [0.2, 0.8]], dtype=np.float32)
    y_enc = np.array([0, -1, -1])
    labeled = np.array([True, False, False])
    soft = student_targets(proba, y_enc, labeled, soft=True)
    hard = student_targets(proba, y_enc, labeled, soft=False)
    np.testing.assert_allclose(soft, [[1, 0], [0.4, 0.6], [0.2, 0.8]], rtol=1e-6)
    np.testing.assert_array_equal(hard, [[1, 0], [0, 1], [0, 1]])


def test_weighted_rows_duplicates_rows_per_class():
    rows, classes, weights = weighted_rows(np.array([[0.75, 0.25, 0.0], [0.0, 0.0, 1.0]]))
    assert rows.tolist() == [0, 0, 1]
    assert classes.tolist() == [0, 1, 2]
    np.testing.assert_allclose(weights, [0.75, 0.25, 1.0])


@pytest.mark.parametrize("n_labeled", [10, 100, 1000])
@pytest.mark.parametrize("share", [0.1, 0.17, 0.5])
def test_labeled_repeats_reaches_the_requested_share(n_labeled, share):
    n_pseudo = 49_000
    copies = labeled_repeats(n_labeled, n_pseudo, share)
    exact = share * n_pseudo / ((1 - share) * n_labeled)  # copies giving exactly `share`
    assert copies >= 1 and abs(copies - exact) <= 0.5
    # one copy fewer or more would land farther from the requested share
    achieved = [c * n_labeled / (c * n_labeled + n_pseudo) for c in (copies - 1, copies, copies + 1)]
    assert abs(achieved[1] - share) <= min(abs(achieved[0] - share), abs(achieved[2] - share))


def test_labeled_repeats_never_drops_or_multiplies_without_cause():
    assert labeled_repeats(1000, 49_000, 0.0) == 1  # share 0: each labeled row once
    assert labeled_repeats(1000, 100, 0.17) == 1  # already more than the share: still once
    assert labeled_repeats(0, 49_000, 0.17) == 1  # nothing labeled (relabel mode)


def test_fold_ids_are_balanced():
    folds = fold_ids(11, 2, torch.Generator().manual_seed(0))
    assert sorted(torch.bincount(folds).tolist()) == [5, 6]


def _consistency_setup(threshold: float):
    torch.manual_seed(0)
    net = torch.nn.Sequential(torch.nn.Linear(4, 16), torch.nn.BatchNorm1d(16), torch.nn.ReLU(), torch.nn.Linear(16, 3))
    X = torch.randn(200, 4)
    y = torch.full((200,), -1, dtype=torch.int64)
    y[:30] = X[:30, :3].argmax(1)  # learnable labels
    optimizer = torch.optim.Adam(net.parameters(), lr=1e-2)
    kwargs = dict(batch_size=64, labeled_batch=16, threshold=threshold, device=torch.device("cpu"))
    return net, optimizer, X, y, torch.arange(30), torch.arange(30, 200), kwargs


def test_consistency_epoch_targets_only_confident_unlabeled_rows():
    # threshold 0: every unlabeled row gets its guess as target; 0.99: none does for an untrained net
    net, optimizer, X, y, lab, unl, kwargs = _consistency_setup(0.0)
    stats = consistency_epoch(net, optimizer, X, y, lab, unl, generator=torch.Generator().manual_seed(0), **kwargs)
    assert stats["mask_rate"] == 1.0 and np.isfinite(stats["loss"])
    net, optimizer, X, y, lab, unl, kwargs = _consistency_setup(0.99)
    stats = consistency_epoch(net, optimizer, X, y, lab, unl, generator=torch.Generator().manual_seed(0), **kwargs)
    assert stats["mask_rate"] == 0.0
    assert net.training  # left in training mode after the eval-mode guesses


def test_consistency_epoch_without_confident_rows_learns_the_labeled_rows_only():
    # with no unlabeled target the loss is the labeled rows' cross-entropy: it falls on them, epoch by epoch
    net, optimizer, X, y, lab, unl, kwargs = _consistency_setup(0.999)
    gen = torch.Generator().manual_seed(0)
    losses = [consistency_epoch(net, optimizer, X, y, lab, unl, generator=gen, **kwargs)["loss"] for _ in range(30)]
    assert losses[-1] < 0.5 * losses[0]
    net.eval()
    assert float((net(X[lab]).argmax(1) == y[lab]).float().mean()) > 0.9


def test_consistency_epoch_applies_weak_and_strong_views():
    calls = {"weak": 0, "strong": 0}

    def weak(x, generator):
        calls["weak"] += len(x)
        return x

    def strong(x, generator):
        calls["strong"] += len(x)
        return x + 0.1 * torch.randn(x.shape, generator=generator)

    net, optimizer, X, y, lab, unl, kwargs = _consistency_setup(0.5)
    consistency_epoch(net, optimizer, X, y, lab, unl, generator=torch.Generator(), weak=weak, strong=strong, **kwargs)
    steps = -(-len(unl) // kwargs["batch_size"])
    assert calls["weak"] == len(unl)  # the guesses: each unlabeled row once
    assert calls["strong"] == len(unl) + steps * kwargs["labeled_batch"]  # the trained views: unlabeled + labeled


def test_consistency_epoch_aligns_predictions_with_the_class_prior():
    # a network that always says [0.91, 0.05, 0.05]: confident as it is, not once aligned against a running
    # mean that has seen class 0 far too often (ReMixMatch's distribution alignment)
    net, _, X, y, lab, unl, kwargs = _consistency_setup(0.5)
    with torch.no_grad():
        net[-1].weight.zero_()
        net[-1].bias.copy_(torch.tensor([3.0, 0.0, 0.0]))
    frozen = torch.optim.SGD(net.parameters(), lr=0.0)
    gen = torch.Generator().manual_seed(0)
    assert consistency_epoch(net, frozen, X, y, lab, unl, generator=gen, **kwargs)["mask_rate"] == 1.0
    prior, running = torch.full((3,), 1 / 3), torch.tensor([0.98, 0.01, 0.01])
    stats = consistency_epoch(net, frozen, X, y, lab, unl, generator=gen, prior=prior, running=running, **kwargs)
    assert stats["mask_rate"] == 0.0
    steps = -(-len(unl) // kwargs["batch_size"])
    p = torch.softmax(torch.tensor([3.0, 0.0, 0.0]), 0)
    expected = torch.tensor([0.98, 0.01, 0.01]) * 0.99**steps + p * (1 - 0.99**steps)  # updated in place, per step
    torch.testing.assert_close(running, expected)


def test_consistency_epoch_takes_its_targets_from_the_averaged_network():
    # the averaged network always says class 2 with certainty, the trained one is untrained: every unlabeled
    # row gets a target (mask 1), the net learns class 2 there, and the average is updated after every step
    net, optimizer, X, y, lab, unl, kwargs = _consistency_setup(0.9)
    averaged = torch.optim.swa_utils.AveragedModel(net, avg_fn=lambda avg, cur, n: avg)  # never moves
    with torch.no_grad():
        averaged.module[-1].weight.zero_()
        averaged.module[-1].bias.copy_(torch.tensor([0.0, 0.0, 10.0]))
    averaged.n_averaged.fill_(1)  # past the first update, which would copy the network in
    gen = torch.Generator().manual_seed(0)
    for _ in range(5):
        stats = consistency_epoch(net, optimizer, X, y, lab, unl, generator=gen, averaged=averaged, **kwargs)
        assert stats["mask_rate"] == 1.0
    steps = -(-len(unl) // kwargs["batch_size"])
    assert int(averaged.n_averaged) == 1 + 5 * steps
    net.eval()  # class 2 on most unlabeled rows (measured 0.89), where the given labels make it a third
    assert float((net(X[unl]).argmax(1) == 2).float().mean()) > 0.7
    # without it the guesses are the network's own, which are not that confident
    net, optimizer, X, y, lab, unl, kwargs = _consistency_setup(0.9)
    assert consistency_epoch(net, optimizer, X, y, lab, unl, generator=gen, **kwargs)["mask_rate"] < 0.5


# ----------------------------------------------------------------------------- behaviour


def test_consistency_teacher_beats_the_labeled_only_teacher():
    # digits as 24×24 images, 3 labels a class: the consistency-trained teacher also learns from the other rows
    X, y = load_digits(return_X_y=True)
    X = np.kron((X / 16.0).reshape(-1, 8, 8), np.ones((3, 3))).astype(np.float32)
    rng = np.random.default_rng(0)
    labeled = np.concatenate([rng.choice(np.flatnonzero(y == c), 3, replace=False) for c in range(10)])
    y_semi = np.full_like(y, -1)
    y_semi[labeled] = y[labeled]
    unl = y_semi == -1
    for seed in (0, 1):  # measured 0.822 → 0.881 and 0.820 → 0.884 (moving-average targets)
        net = dict(estimator="network", min_steps=200, random_state=seed)
        plain = SelfTrainer(strategy=NoisyStudent(max_iter=0), **net).fit(X, y_semi)  # labeled rows only
        st = SelfTrainer(strategy=Consistency(epochs=10), **net).fit(X, y_semi)
        plain_acc = float(np.mean(plain.pseudo_labels_[unl] == y[unl]))
        acc = float(np.mean(st.pseudo_labels_[unl] == y[unl]))
        assert acc > plain_acc + 0.03, (seed, acc, plain_acc)
        assert not any("mask_rate" in h for h in plain.history_)
    assert st.n_iter_ == 0 and not any(h["phase"] == "student" for h in st.history_)
    teacher = [h for h in st.history_ if h["phase"] == "teacher"]
    assert len(teacher) >= 10 and all("mask_rate" in h for h in teacher)
    assert teacher[-1]["mask_rate"] > teacher[0]["mask_rate"]  # more rows pass the threshold as it learns
    # the row contract: given labels kept; trained on the labeled rows and the confident ones
    np.testing.assert_array_equal(st.pseudo_labels_[~unl], y_semi[~unl])
    confident = st.predict_proba(X).max(1) >= st.strategy_.threshold
    np.testing.assert_array_equal(st.clean_mask_, ~unl | confident)
    assert st.clean_mask_[unl].any()


def test_consistency_training_is_reproducible_and_switchable(semi):
    X, _, y_semi = semi
    params = dict(estimator="network", max_epochs=5, min_steps=100, hidden_dims=(32, 32), random_state=0)
    consistency = Consistency(epochs=3, threshold=0.6)  # rows do pass it on this small set
    a = SelfTrainer(strategy=consistency, **params).fit(X, y_semi)
    b = SelfTrainer(strategy=consistency, **params).fit(X, y_semi)
    np.testing.assert_array_equal(a.predict_proba(X), b.predict_proba(X))
    assert a.n_iter_ == 0 and any("mask_rate" in h for h in a.history_)
    # Noisy Student without consistency: the labeled-only teacher
    c = SelfTrainer(strategy=NoisyStudent(max_iter=0), **params).fit(X, y_semi)
    assert not any("mask_rate" in h for h in c.history_)
    assert not np.array_equal(a.predict_proba(X), c.predict_proba(X))
    # students follow the consistency-trained teacher
    d = SelfTrainer(strategy=NoisyStudent(max_iter=1, consistency=consistency), **params).fit(X, y_semi)
    assert d.n_iter_ == 1 and any(h["phase"] == "student" for h in d.history_)
    teacher_epochs = [h for h in d.history_ if h["phase"] == "teacher"]
    assert all("mask_rate" in h for h in teacher_epochs) and len(teacher_epochs) >= 3
    # distribution alignment changes the targets, so the network it trains
    e = SelfTrainer(strategy=Consistency(epochs=3, threshold=0.6, align=True), **params).fit(X, y_semi)
    assert not np.array_equal(a.predict_proba(X), e.predict_proba(X))
    # and so does the moving average that makes the targets (ema=0: the network itself)
    f = SelfTrainer(strategy=Consistency(epochs=3, threshold=0.6, ema=0.0), **params).fit(X, y_semi)
    assert not np.array_equal(a.predict_proba(X), f.predict_proba(X))
    assert a.history_[-1]["mask_rate"] > 0 and f.history_[-1]["mask_rate"] > 0


def test_auto_consistency_needs_fifty_labels_a_class(semi):
    # "auto": consistency training (and no students) from 50 labeled rows in every class, Noisy Student below
    X, y, _ = semi
    rng = np.random.default_rng(1)
    labeled = np.concatenate([rng.choice(np.flatnonzero(y == c), 50, replace=False) for c in range(3)])
    y_semi = np.full_like(y, -1)
    y_semi[labeled] = y[labeled]
    params = dict(estimator="network", max_epochs=2, min_steps=20, hidden_dims=(16,), random_state=0)
    st = SelfTrainer(**params).fit(X, y_semi)
    assert st.strategy_ == Consistency() and st.consistency_epochs_ == 20 and st.n_iter_ == 0
    teacher = [h for h in st.history_ if h["phase"] == "teacher"]
    assert len(teacher) == 20 and all("mask_rate" in h for h in teacher)
    y_fewer = y_semi.copy()
    y_fewer[labeled[0]] = -1  # class 0 now has 49 labels
    st = SelfTrainer(**params).fit(X, y_fewer)
    assert (
        st.strategy_ == NoisyStudent()
        and st.consistency_epochs_ == 0
        and not any("mask_rate" in h for h in st.history_)
    )
    assert st.n_iter_ >= 1 and any(h["phase"] == "student" for h in st.history_)
    # an explicit strategy wins over the rule; relabeling never uses it
    consistent = NoisyStudent(max_iter=1, consistency=Consistency(epochs=2))
    assert SelfTrainer(strategy=consistent, **params).fit(X, y_fewer).consistency_epochs_ == 2
    assert SelfTrainer(strategy=NoisyStudent(max_iter=0), **params).fit(X, y_semi).consistency_epochs_ == 0
    noisy = make_noisy_labels(y, 0.2, random_state=0)
    relabel = Relabel(max_iter=1, max_teacher_epochs=2)
    assert SelfTrainer(strategy=relabel, **params).fit(X, noisy).consistency_epochs_ == 0


def test_relabel_mode_and_estimators_do_not_use_consistency(semi):
    X, y, y_semi = semi
    y_noisy = make_noisy_labels(y, 0.2, random_state=0)
    assert "epochs" not in Relabel().get_params()  # relabeling has no consistency training to ask for
    st = SelfTrainer(strategy=Relabel(max_iter=1, max_teacher_epochs=2), **FAST)
    assert not any("mask_rate" in h for h in st.fit(X, y_noisy).history_)
    st = SelfTrainer(estimator=LogisticRegression(), strategy=NoisyStudent(max_iter=1), random_state=0).fit(X, y_semi)
    assert not any("mask_rate" in h for h in st.history_) and st.n_iter_ == 1
    # asking a classifier for consistency training is an error, not a silent no-op
    for strategy in (Consistency(epochs=5), NoisyStudent(max_iter=1, consistency=Consistency(epochs=5))):
        with pytest.raises(ValueError, match="replaces the networks"):
            SelfTrainer(estimator=LogisticRegression(), strategy=strategy, random_state=0).fit(X, y_semi)


@pytest.mark.parametrize(
    ("cls", "params"),
    [
        (Consistency, {"epochs": -1}),
        (Consistency, {"epochs": "always"}),
        (Consistency, {"threshold": 1.0}),
        (Consistency, {"align": "yes"}),
        (Consistency, {"ema": 1.0}),
        (NoisyStudent, {"max_iter": "x"}),
    ],
)
def test_bad_consistency_parameters_are_errors(semi, cls, params):
    X, _, y_semi = semi
    with pytest.raises(ValueError, match=next(iter(params))):
        SelfTrainer(strategy=cls(**params), **FAST).fit(X, y_semi)


@pytest.mark.parametrize("soft", [True, False])
def test_self_training_beats_the_teacher_alone(semi, teacher_only_accuracy, soft):
    X, y, y_semi = semi
    st = SelfTrainer(strategy=NoisyStudent(max_iter=3, soft=soft, balance="none"), **FAST).fit(X, y_semi)
    unl = y_semi == -1
    accuracy = float(np.mean(st.pseudo_labels_[unl] == y[unl]))
    assert accuracy > teacher_only_accuracy + 0.02, (accuracy, teacher_only_accuracy)
    assert 1 <= st.n_iter_ <= 3
    assert st.termination_condition_ in {"max_iter", "no_change"}
    # the row contract: labeled rows keep their given label; a filled label is trusted only when confident
    np.testing.assert_array_equal(st.pseudo_labels_[~unl], y_semi[~unl])
    np.testing.assert_array_equal(st.clean_mask_, ~unl | (st.label_quality_ >= RELABEL_THRESHOLD))
    right = st.pseudo_labels_[unl] == y[unl]
    assert right[st.clean_mask_[unl]].mean() >= right.mean()  # dropping the doubtful fills keeps better labels
    assert st.label_quality_.dtype == np.float32 and ((st.label_quality_ >= 0) & (st.label_quality_ <= 1)).all()
    assert {"student", "teacher", "pseudo_label"} <= {h["phase"] for h in st.history_}


def test_threshold_keeps_confident_rows_only(semi):
    X, _, y_semi = semi
    st = SelfTrainer(strategy=NoisyStudent(max_iter=1, threshold=0.9), **FAST).fit(X, y_semi)
    unl = y_semi == -1
    assert st.clean_mask_[~unl].all()
    assert 0 < st.clean_mask_[unl].sum() < unl.sum()
    selected = [h["n_selected"] for h in st.history_ if h["phase"] == "pseudo_label"]
    assert st.clean_mask_[unl].sum() <= selected[-1]  # trusted fills are among the rows trained on
    assert st.label_quality_[unl][st.clean_mask_[unl]].min() >= RELABEL_THRESHOLD


class _RowCountingLogReg(LogisticRegression):
    """Records how many rows each fit received."""

    fitted_rows: list[int] = []

    def fit(self, X, y, sample_weight=None):
        type(self).fitted_rows.append(len(X))
        return super().fit(X, y, sample_weight=sample_weight)


@pytest.mark.parametrize("share", [0.0, 0.5])
def test_students_train_on_labeled_share_copies_of_the_labeled_rows(semi, share):
    X, _, y_semi = semi
    _RowCountingLogReg.fitted_rows = []
    strategy = NoisyStudent(max_iter=2, labeled_share=share)
    st = SelfTrainer(strategy=strategy, **{**FAST, "estimator": _RowCountingLogReg()}).fit(X, y_semi)
    n_labeled = int(np.sum(y_semi != -1))
    rounds = [h for h in st.history_ if h["phase"] == "pseudo_label"]
    assert len(rounds) == st.n_iter_ == 2
    # the first fit is the teacher (labeled rows only); then one fit per student
    assert _RowCountingLogReg.fitted_rows[0] == n_labeled
    for entry, fitted in zip(rounds, _RowCountingLogReg.fitted_rows[1:]):
        n_pseudo = fitted - entry["labeled_copies"] * n_labeled
        assert entry["labeled_copies"] == labeled_repeats(n_labeled, n_pseudo, share)
        assert n_pseudo >= entry["n_selected"]  # balancing gives each class ceil(mean class size) rows
    expected = 1 if share == 0 else 29  # 0.5 · ~870 pseudo rows / (0.5 · 30 labeled)
    assert abs(rounds[0]["labeled_copies"] - expected) <= 1


def test_labeled_share_of_one_is_an_error(semi):
    X, _, y_semi = semi
    with pytest.raises(ValueError, match="labeled_share"):
        SelfTrainer(strategy=NoisyStudent(labeled_share=1.0), **FAST).fit(X, y_semi)


def test_balance_runs_and_trains_on_every_class(semi):
    X, y, y_semi = semi
    st = SelfTrainer(strategy=NoisyStudent(max_iter=1, balance="equal"), **FAST).fit(X, y_semi)
    assert set(st.pseudo_labels_) == {0, 1, 2}
    assert st.score(X, y) > 0.7


def test_relabel_recovers_most_flipped_labels():
    X, y = make_classification(
        2000,
        n_features=10,
        n_informative=5,
        n_redundant=0,
        n_classes=5,
        n_clusters_per_class=1,
        class_sep=2.0,
        random_state=0,
    )
    y_noisy = make_noisy_labels(y, 0.6, random_state=0)
    flipped = y_noisy != y
    st = SelfTrainer(strategy=Relabel(max_iter=2), max_epochs=10, min_steps=100, hidden_dims=(64, 64), random_state=0)
    st.fit(X, y_noisy)
    assert np.mean(st.pseudo_labels_[flipped] == y[flipped]) > 0.6
    assert np.mean(st.pseudo_labels_ == y) > 0.7
    assert any("holdout_accuracy" in h for h in st.history_)
    assert st.n_iter_ >= 1
    # the row contract: a label is trusted exactly where it is kept, and its quality is that of the given label
    assert np.array_equal(st.clean_mask_, st.pseudo_labels_ == y_noisy)
    assert st.label_quality_[flipped].mean() < st.label_quality_[~flipped].mean()


def test_relabel_mode_keeps_the_row_contract():
    X, y = make_classification(600, n_features=6, n_informative=4, random_state=0)
    y_noisy = make_noisy_labels(y, 0.3, random_state=0)
    st = SelfTrainer(strategy=Relabel(max_iter=1), hidden_dims=(32,), random_state=0).fit(X, y_noisy)
    changed = st.pseudo_labels_ != y_noisy
    assert changed.any() and not st.clean_mask_[changed].any()  # a changed label is never trusted
    assert (~st.clean_mask_).sum() >= changed.sum()
    assert st.label_quality_[y_noisy != y].mean() < st.label_quality_[y_noisy == y].mean()  # of the given label
    assert np.mean(st.pseudo_labels_ == y) > np.mean(y_noisy == y)
    share = np.bincount(st.pseudo_labels_, minlength=2) / len(y)
    assert abs(share[1] - np.mean(y == 1)) < 0.1  # no push towards equal shares


def test_string_labels_with_unlabeled_marker(semi):
    X, y, y_semi = semi
    names = np.array(["ant", "bee", "cat"], dtype=object)
    y_obj = np.where(y_semi == -1, -1, names[np.maximum(y_semi, 0)]).astype(object)
    y_str = np.where(y_semi == -1, "-1", names[np.maximum(y_semi, 0)]).astype(str)
    for labels in (y_obj, y_str):
        st = SelfTrainer(strategy=NoisyStudent(max_iter=1), **FAST).fit(X, labels)
        assert list(st.classes_) == ["ant", "bee", "cat"]
        assert set(st.pseudo_labels_) <= {"ant", "bee", "cat"}
        assert set(st.predict(X[:20])) <= {"ant", "bee", "cat"}
        assert np.mean(st.pseudo_labels_ == names[y]) > 0.7


def test_images_use_the_cnn_and_shift_noise():
    X, y = load_digits(return_X_y=True)
    X = (X / 16.0).reshape(-1, 8, 8).astype(np.float32)[:600]
    y = y[:600]
    y_semi = np.full_like(y, -1)
    y_semi[:100] = y[:100]
    st = SelfTrainer(strategy=NoisyStudent(max_iter=1), max_epochs=3, min_steps=200, random_state=0).fit(X, y_semi)
    assert st.input_shape_ == (1, 8, 8)
    assert st.score(X[100:], y[100:]) > 0.6


def test_sklearn_estimator_soft_and_hard(semi):
    X, y, y_semi = semi
    unl = y_semi == -1
    for soft in (True, False):
        strategy = NoisyStudent(soft=soft, max_iter=2)
        st = SelfTrainer(estimator=LogisticRegression(), strategy=strategy, random_state=0).fit(X, y_semi)
        assert isinstance(st.estimator_, LogisticRegression) and st.networks_ == []
        assert st.predict_proba(X).shape == (len(X), 3)
        assert np.mean(st.pseudo_labels_[unl] == y[unl]) > 0.75


def test_coteaching_teacher_in_relabel_mode(semi):
    X, y, _ = semi
    y_noisy = make_noisy_labels(y, 0.3, random_state=0)
    teacher = CoTeachingFilter(max_epochs=5, forget_rate=0.3, hidden_dims=(32, 32), random_state=0)
    st = SelfTrainer(strategy=Relabel(max_iter=1), teacher=teacher, **FAST).fit(X, y_noisy)
    assert isinstance(st.teacher_, CoTeachingFilter)
    assert np.mean(st.pseudo_labels_ == y) > np.mean(y_noisy == y)


def test_fit_resample_returns_pseudo_labels(semi):
    X, y, y_semi = semi
    X_kept, y_kept = SelfTrainer(strategy=NoisyStudent(max_iter=1, threshold=0.8), **FAST).fit_resample(X, y_semi)
    assert len(X_kept) == len(y_kept) < len(X)
    assert -1 not in set(y_kept)


def test_imblearn_pipeline_trains_the_next_step_on_pseudo_labeled_rows(semi):
    imblearn_pipeline = pytest.importorskip("imblearn.pipeline")
    X, y, y_semi = semi
    pipe = imblearn_pipeline.make_pipeline(SelfTrainer(strategy=NoisyStudent(max_iter=1), **FAST), LogisticRegression())
    pipe.fit(X, y_semi)
    assert list(pipe[-1].classes_) == [0, 1, 2]  # -1 never reaches the next step
    assert pipe.score(X, y) > 0.85


def test_pipeline(semi):
    X, y, y_semi = semi
    pipe = make_pipeline(StandardScaler(), SelfTrainer(strategy=NoisyStudent(max_iter=1), **FAST)).fit(X, y_semi)
    assert pipe.score(X, y) > 0.75


def test_same_random_state_gives_identical_results(semi):
    X, _, y_semi = semi
    a = SelfTrainer(strategy=NoisyStudent(max_iter=1), **FAST).fit(X, y_semi)
    b = SelfTrainer(strategy=NoisyStudent(max_iter=1), **FAST).fit(X, y_semi)
    np.testing.assert_array_equal(a.predict_proba(X), b.predict_proba(X))
    np.testing.assert_array_equal(a.pseudo_labels_, b.pseudo_labels_)


# ----------------------------------------------------------------------------- bad input


def test_all_unlabeled_is_an_error(semi):
    X, _, _ = semi
    with pytest.raises(ValueError, match="every row of y is unlabeled"):
        SelfTrainer(**FAST).fit(X, np.full(len(X), -1))


def test_no_unlabeled_rows_warns_and_trains_plainly(semi):
    X, y, _ = semi
    with pytest.warns(UserWarning, match="no unlabeled rows"):
        st = SelfTrainer(**FAST).fit(X, y)
    assert st.termination_condition_ == "all_labeled" and st.n_iter_ == 0
    assert st.score(X, y) > 0.8


@pytest.mark.parametrize("threshold", [1.0, -0.1, 1.5])
def test_threshold_outside_unit_interval_is_an_error(semi, threshold):
    X, _, y_semi = semi
    with pytest.raises(ValueError, match="threshold"):
        SelfTrainer(strategy=NoisyStudent(threshold=threshold), **FAST).fit(X, y_semi)


def test_unlabeled_rows_in_relabel_mode_are_an_error(semi):
    X, _, y_semi = semi
    with pytest.raises(ValueError, match=r"unlabeled \(-1\); use another strategy"):
        SelfTrainer(strategy="relabel", **FAST).fit(X, y_semi)


def test_estimator_without_predict_proba_is_an_error(semi):
    from sklearn.svm import LinearSVC

    X, _, y_semi = semi
    with pytest.raises(TypeError, match="predict_proba"):
        SelfTrainer(**{**FAST, "estimator": LinearSVC()}).fit(X, y_semi)


def test_soft_labels_need_sample_weight(semi):
    from sklearn.neighbors import KNeighborsClassifier

    X, y, y_semi = semi
    with pytest.raises(ValueError, match="soft=False"):
        SelfTrainer(strategy=NoisyStudent(soft=True), **{**FAST, "estimator": KNeighborsClassifier()}).fit(X, y_semi)
    st = SelfTrainer(estimator=KNeighborsClassifier(), strategy=NoisyStudent(max_iter=1)).fit(X, y_semi)
    assert st.score(X, y) > 0.7


# ----------------------------------------------------------------------------- strategies


def test_strategies_follow_scikit_learn_parameter_conventions():
    strategy = NoisyStudent(max_iter=2, consistency=Consistency(epochs=3))
    st = SelfTrainer(strategy=strategy, hidden_dims=(8,))
    deep = st.get_params(deep=True)
    assert deep["strategy"] is strategy and deep["strategy__max_iter"] == 2
    assert deep["strategy__consistency__epochs"] == 3
    copy = clone(st)
    assert copy.strategy == strategy and copy.strategy is not strategy
    assert copy.strategy.consistency is not strategy.consistency  # a deep copy, as for nested estimators
    copy.set_params(strategy__max_iter=4, strategy__consistency__threshold=0.8)
    assert copy.strategy == NoisyStudent(max_iter=4, consistency=Consistency(epochs=3, threshold=0.8))
    assert strategy == NoisyStudent(max_iter=2, consistency=Consistency(epochs=3))  # the original is untouched
    text = "SelfTrainer(hidden_dims=(8,), strategy=NoisyStudent(consistency=Consistency(epochs=3), max_iter=2))"
    assert " ".join(repr(st).split()) == text
    assert Relabel() == Relabel() != Relabel(n_folds=3) and hash(Relabel()) == hash(Relabel())
    assert Consistency(epochs=2) != NoisyStudent()
    with pytest.raises(ValueError, match="strategy"):
        SelfTrainer(strategy="fixmatch").fit(np.zeros((4, 2)), np.array([0, 1, -1, -1]))


def test_strategy_names_and_the_auto_rule(semi):
    X, y, y_semi = semi
    params = dict(estimator="network", max_epochs=1, min_steps=5, hidden_dims=(8,), random_state=0)
    for name, cls in (("consistency", Consistency), ("noisy_student", NoisyStudent)):
        st = SelfTrainer(strategy=name, **params).fit(X, y_semi)
        assert st.strategy == name and st.strategy_ == cls()
    noisy = make_noisy_labels(y, 0.2, random_state=0)
    assert SelfTrainer(strategy="relabel", **params).fit(X, noisy).strategy_ == Relabel()
    assert SelfTrainer(**params).fit(X, y_semi).strategy_ == NoisyStudent()  # 10 labels a class
    # a strategy that trains networks gets them on a table too; Noisy Student keeps the tabular backbones
    Xt, yt = X[:300], y_semi[:300]
    assert SelfTrainer(strategy=Consistency(epochs=1), min_steps=5, random_state=0).fit(Xt, yt).backbone_ == "network"
    assert SelfTrainer(strategy=NoisyStudent(max_iter=0), random_state=0).fit(Xt, yt).backbone_ == "table"


@pytest.mark.parametrize(
    ("params", "match"),
    [
        ({"estimator": LogisticRegression(), "strategy": NoisyStudent(student_width=2.0)}, "student_width"),
        ({"strategy": NoisyStudent(guard=False)}, "guard"),
        ({"teacher": LogisticRegression(), "strategy": Relabel(n_folds=3)}, "n_folds"),
        ({"teacher": LogisticRegression(), "strategy": Consistency()}, "teacher"),
        ({"estimator": "auto", "strategy": NoisyStudent(soft=True)}, "soft"),  # a table: the tabular backbones
    ],
)
def test_a_parameter_that_cannot_apply_is_an_error(semi, params, match):
    X, y, y_semi = semi
    y_fit = y if isinstance(params["strategy"], Relabel) else y_semi
    with pytest.raises(ValueError, match=f"cannot run as asked: {match}"):
        SelfTrainer(**{**FAST, **params}).fit(X[:300], y_fit[:300])


# ----------------------------------------------------------------------------- deprecated flat spellings


@pytest.mark.parametrize(
    ("old", "new"),
    [
        ({"consistency_epochs": 2, "max_iter": 0}, Consistency(epochs=2)),
        (
            {"consistency_epochs": 2, "max_iter": 1, "threshold": 0.5},
            NoisyStudent(max_iter=1, threshold=0.5, consistency=Consistency(epochs=2)),
        ),
        ({"max_iter": 1, "balance": True, "soft": True}, NoisyStudent(max_iter=1, balance="equal", soft=True)),
        (
            {"relabel": True, "max_iter": 1, "n_folds": 3, "max_teacher_epochs": 2},
            Relabel(max_iter=1, n_folds=3, max_teacher_epochs=2),
        ),
    ],
)
def test_a_deprecated_spelling_warns_and_fits_as_the_new_one(semi, old, new):
    X, y, y_semi = semi
    y_fit = y if old.get("relabel") else y_semi
    params = dict(estimator="network", max_epochs=1, min_steps=10, hidden_dims=(8,), random_state=0)
    with pytest.warns(FutureWarning, match=r"deprecated; use strategy=") as caught:
        before = SelfTrainer(**old, **params).fit(X, y_fit)
    message = str(caught[0].message)
    assert all(name in message for name in old) and " ".join(repr(new).split()) in message
    after = SelfTrainer(strategy=new, **params).fit(X, y_fit)
    assert before.strategy_ == new
    np.testing.assert_array_equal(before.predict_proba(X), after.predict_proba(X))
    np.testing.assert_array_equal(before.pseudo_labels_, after.pseudo_labels_)
    np.testing.assert_array_equal(before.clean_mask_, after.clean_mask_)


def test_a_deprecated_spelling_that_did_nothing_says_so(semi):
    X, y, y_semi = semi
    # relabeling never consistency-trained, nor did a classifier: the flat values that asked for it did nothing
    y_noisy = make_noisy_labels(y, 0.2, random_state=0)
    with pytest.warns(FutureWarning, match="consistency_epochs had no effect here"):
        st = SelfTrainer(relabel=True, max_iter=1, max_teacher_epochs=2, consistency_epochs=5, **FAST).fit(X, y_noisy)
    assert not any("mask_rate" in h for h in st.history_) and st.strategy_ == Relabel(max_iter=1, max_teacher_epochs=2)
    with pytest.warns(FutureWarning, match=r"use strategy=NoisyStudent\(max_iter=1\) \(consistency_epochs had"):
        st = SelfTrainer(estimator=LogisticRegression(), max_iter=1, consistency_epochs=5, random_state=0)
        st.fit(X, y_semi)
    assert not any("mask_rate" in h for h in st.history_) and st.n_iter_ == 1
    with pytest.warns(FutureWarning, match="relabel is deprecated; use strategy='relabel'"):
        SelfTrainer(relabel=True, **FAST).fit(X[:100], y_noisy[:100])


def test_a_deprecated_spelling_merges_into_a_strategy_it_agrees_with(semi):
    X, _, y_semi = semi
    params = dict(estimator="network", max_epochs=1, min_steps=5, hidden_dims=(8,), random_state=0)
    with pytest.warns(FutureWarning, match=r"use strategy=NoisyStudent\(max_iter=0\)"):
        st = SelfTrainer(strategy=NoisyStudent(max_iter=0), consistency_epochs=0, **params).fit(X, y_semi)
    assert st.strategy_ == NoisyStudent(max_iter=0) and st.strategy == NoisyStudent(max_iter=0)  # not changed
    with pytest.warns(FutureWarning):
        st = SelfTrainer(strategy=Consistency(epochs=2), consistency_threshold=0.6, max_iter=0, **params)
        assert st.fit(X, y_semi).strategy_ == Consistency(epochs=2, threshold=0.6)


@pytest.mark.parametrize(
    ("strategy", "old", "match"),
    [
        (NoisyStudent(), {"relabel": True}, "relabel=True contradicts"),
        ("relabel", {"relabel": False}, "relabel=False contradicts"),
        (NoisyStudent(max_iter=3), {"max_iter": 2}, "sets max_iter=3"),
        (NoisyStudent(), {"consistency_threshold": 0.6}, "consistency-trained first teacher"),
        (NoisyStudent(consistency=Consistency()), {"consistency_epochs": 0}, "contradicts"),
        (Consistency(), {"max_iter": 1}, "does not apply"),
        (Consistency(), {"consistency_epochs": 0}, "contradicts"),
        ("relabel", {"labeled_share": 0.3}, "does not apply"),
    ],
)
def test_a_deprecated_spelling_that_contradicts_the_strategy_is_an_error(semi, strategy, old, match):
    X, _, y_semi = semi
    with pytest.raises(ValueError, match=match):
        SelfTrainer(strategy=strategy, **old, **FAST).fit(X, y_semi)


# ----------------------------------------------------------------------------- persistence


def test_save_load_with_a_strategy_is_bit_identical(tmp_path, semi):
    X, _, y_semi = semi
    strategy = NoisyStudent(max_iter=1, threshold=0.2, consistency=Consistency(epochs=1, ema=0.9))
    st = SelfTrainer(
        strategy=strategy, estimator="network", max_epochs=1, min_steps=5, hidden_dims=(8,), random_state=0
    )
    st.fit(X, y_semi)
    path = st.save(tmp_path / "st.pt")
    meta = json.loads(torch.load(path, weights_only=True)["meta"])  # its parameters as JSON, never pickled
    assert meta["params"]["strategy"]["__params__"] == "NoisyStudent"
    assert meta["params"]["strategy"]["params"]["consistency"]["params"]["ema"] == 0.9
    loaded = SelfTrainer.load(path)
    assert st.strategy_ == strategy and st.strategy_ is not strategy  # what the fit ran, apart from the parameter
    assert loaded.strategy == strategy and loaded.strategy is not strategy and loaded.strategy_ == strategy
    assert loaded.get_params() == st.get_params()
    assert loaded.predict_proba(X).tobytes() == st.predict_proba(X).tobytes()
    named = SelfTrainer(strategy="relabel", max_epochs=1, min_steps=5, hidden_dims=(8,), random_state=0)
    named.fit(X[:100], np.maximum(y_semi[:100], 0))
    loaded = SelfTrainer.load(named.save(tmp_path / "named.pt"))
    assert loaded.strategy == "relabel" and loaded.strategy_ == Relabel()


def test_a_file_saved_with_the_flat_parameters_still_loads(tmp_path, semi):
    from labelclean import _persist

    X, _, y_semi = semi
    params = dict(estimator="network", max_epochs=1, min_steps=5, hidden_dims=(8,), random_state=0)
    st = SelfTrainer(strategy=NoisyStudent(max_iter=1), **params)
    path = st.fit(X, y_semi).save(tmp_path / "st.pt")
    # rewrite it as the earlier version wrote it: flat parameters (defaults and one set), no strategy
    payload = torch.load(path, weights_only=True)
    meta = json.loads(payload["meta"])
    meta["params"] = {k: v for k, v in meta["params"].items() if k != "strategy"}
    meta["params"].update({**_persist_flat_defaults(), "max_iter": 1})
    del meta["fitted"]["strategy_"]
    payload["meta"] = json.dumps(meta)
    payload["digest"] = _persist._digest(payload["meta"], payload["tensors"])
    torch.save(payload, path)
    loaded = SelfTrainer.load(path)
    assert loaded.predict_proba(X).tobytes() == st.predict_proba(X).tobytes()
    params = loaded.get_params()
    assert params["max_iter"] == 1 and params["strategy"] == "auto"
    assert params["consistency_epochs"] == params["relabel"] == "deprecated"  # the old defaults: not given


def _persist_flat_defaults() -> dict:
    return {
        "relabel": False,
        "soft": False,
        "threshold": 0.0,
        "balance": "auto",
        "labeled_share": 0.17,
        "max_iter": "auto",
        "student_width": 1.0,
        "guard": True,
        "n_folds": 2,
        "patience": 3,
        "max_teacher_epochs": 20,
        "consistency_epochs": "auto",
        "consistency_threshold": 0.95,
        "consistency_align": False,
        "consistency_ema": 0.999,
    }


# ----------------------------------------------------------------------------- scikit-learn conventions

EXPECTED_FAILED_CHECKS = {
    "check_classifiers_classes": (
        "the check trains on labels {-1, 1}; SelfTrainer reads -1 as 'unlabeled' (scikit-learn's semi-supervised "
        "convention, shared with SelfTrainingClassifier), so only one class is left and fit raises"
    ),
    "check_non_transformer_estimators_n_iter": (
        "the checks pass fully labeled y, so no self-training round runs and n_iter_ is 0, as in "
        "scikit-learn's SelfTrainingClassifier"
    ),
}


def _expected_failed_checks(estimator):
    return EXPECTED_FAILED_CHECKS


@parametrize_with_checks(
    [SelfTrainer(strategy=NoisyStudent(max_iter=1), max_epochs=3, min_steps=100, hidden_dims=(16,), random_state=0)],
    expected_failed_checks=_expected_failed_checks,
)
def test_sklearn_compatible(estimator, check):
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", message="y has no unlabeled rows")
        check(estimator)
