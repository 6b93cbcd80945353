"""The detection rule (labelclean.detection) and ``find_label_issues``."""

import numpy as np
import pytest

from labelclean import detection as D


def noisy_probs(n=2000, k=3, noise=0.3, seed=0):
    """True labels, labels with symmetric noise, and probabilities that know the truth 90 % of the way."""
    rng = np.random.default_rng(seed)
    y = rng.integers(0, k, n)
    flip = rng.random(n) < noise
    given = np.where(flip, (y + rng.integers(1, k, n)) % k, y)
    p = np.full((n, k), 0.1 / (k - 1))
    p[np.arange(n), y] = 0.9
    return y, given, p


def test_confident_joint_counts_given_against_confident_label():
    p = np.array([[0.9, 0.1], [0.8, 0.2], [0.3, 0.7], [0.2, 0.8], [0.95, 0.05]])
    y = np.array([0, 0, 1, 1, 1])  # the last row is given 1 but looks like 0
    cj = D.confident_joint(y, p)
    assert cj.tolist() == [[1, 0], [1, 2]]  # row 1 (0.8 < threshold 0.85) is not counted


def test_the_joint_summed_over_parts_at_shared_thresholds_is_the_joint_of_all_rows():
    from labelclean.detection import confident_joint, estimate_joint, joint_from_counts, per_class_thresholds

    rng = np.random.default_rng(1)
    p = rng.dirichlet(np.ones(4), 500).astype(np.float32)
    y = rng.integers(0, 4, 500)
    t = per_class_thresholds(y, p)
    parts = np.array_split(np.argsort(p[np.arange(500), y]), 3)  # parts of low, middle, high confidence
    counts = sum(confident_joint(y[r], p[r], t) for r in parts)
    assert np.array_equal(counts, confident_joint(y, p))
    high = parts[-1]  # its own thresholds are higher than those of all rows
    assert not np.array_equal(confident_joint(y[high], p[high]), confident_joint(y[high], p[high], t))
    assert np.array_equal(joint_from_counts(counts, np.bincount(y, minlength=4)), estimate_joint(y, p))


def test_estimated_joint_finds_the_noise_rate_and_keeps_given_shares():
    y, given, p = noisy_probs()
    joint = D.estimate_joint(given, p)
    assert joint.sum() == pytest.approx(1.0)
    np.testing.assert_allclose(joint.sum(axis=1), np.bincount(given) / len(given))
    true_rate = np.mean(given != y)
    assert abs((1 - np.trace(joint)) - true_rate) < 0.03
    np.testing.assert_allclose(D.noise_matrix(joint).sum(axis=0), 1.0)


def test_calibrate_lowers_the_log_loss_of_an_overconfident_model():
    y, given, _ = noisy_probs()
    over = np.full((len(y), 3), 0.005)
    over[np.arange(len(y)), y] = 0.99
    scaled, t = D.calibrate(over, given)
    nll = lambda q: -np.mean(np.log(q[np.arange(len(given)), given]))  # noqa: E731
    assert t > 1 and nll(scaled) < nll(over) - 0.5
    assert (scaled.argmax(1) == over.argmax(1)).all()


def test_flag_by_class_noise_flags_each_class_by_its_own_share():
    rng = np.random.default_rng(0)
    labels = np.r_[np.zeros(100, int), np.ones(20, int)]
    p = rng.dirichlet([1, 1], size=120)
    flagged = D.flag_by_class_noise(labels, p, np.array([0.1, 0.5]))
    assert flagged[:100].sum() <= 10 and flagged[100:].sum() <= 10
    margin = p[np.arange(120), 1 - labels] - p[np.arange(120), labels]
    assert (margin[flagged] > 0).all()  # never a row whose given label is its most probable one


def test_prior_shift_moves_probabilities_to_the_true_balance():
    p = np.tile([0.6, 0.4], (10, 1))
    joint = np.array([[0.5, 0.2], [0.0, 0.3]])  # given shares 0.7 / 0.3, true shares 0.5 / 0.5
    shifted = D.prior_shift(p, joint)
    assert shifted[0, 1] > 0.4 and np.allclose(shifted.sum(1), 1)


def test_detect_flags_the_noise_and_relabels_only_on_strong_evidence():
    y, given, p = noisy_probs()
    verdict = D.detect(given, p, flag="disagreement")
    noisy = given != y
    assert (~verdict.clean == noisy).mean() > 0.98
    changed = verdict.pseudo != given
    assert not changed[verdict.clean].any()
    assert np.mean(verdict.pseudo == y) >= np.mean(given == y)
    eager = D.detect(given, p, flag="disagreement", relabel_threshold=0.0)
    assert np.array_equal(eager.pseudo[~eager.clean], p.argmax(1)[~eager.clean])
    assert np.mean(eager.pseudo == y) > 0.97
    assert verdict.quality.dtype == np.float32 and ((verdict.quality >= 0) & (verdict.quality <= 1)).all()
    assert verdict.quality[noisy].mean() < verdict.quality[~noisy].mean() - 0.3
    with pytest.raises(ValueError, match="flag="):
        D.detect(given, p, flag="margin")


def test_find_label_issues_takes_any_labels_and_any_form_of_probabilities():
    import pandas as pd

    from labelclean import find_label_issues

    y, given, p = noisy_probs(n=600)
    names = np.array(["ant", "bee", "cat"])
    table = find_label_issues(names[given], p)
    assert list(table.columns) == ["given_label", "is_clean", "label_quality", "pseudo_label"]
    assert (table["given_label"] == names[given]).all() and set(table["pseudo_label"]) <= set(names)
    assert detection_scores_f1(table["is_clean"].to_numpy(), given, y) > 0.95
    assert abs(table.attrs["noise_rate"] - np.mean(given != y)) < 0.05
    assert set(table.attrs["class_noise"]) == set(names) and table.attrs["noise_matrix"].shape == (3, 3)
    # the same verdict from a DataFrame with the columns in another order, and from a list column
    frame = pd.DataFrame(p, columns=names)[["cat", "ant", "bee"]]
    for other in (
        find_label_issues(names[given], frame),
        find_label_issues(names[given], pd.Series(list(p)), classes=names),
        find_label_issues(given, p).assign(given_label=names[given], pseudo_label=lambda t: names[t.pseudo_label]),
    ):
        for column in ("given_label", "is_clean", "pseudo_label"):
            assert (other[column].to_numpy() == table[column].to_numpy()).all()
        np.testing.assert_allclose(other["label_quality"], table["label_quality"], rtol=1e-5)
    with pytest.raises(ValueError, match="classes="):
        find_label_issues(names[given], p[:, :2])
    with pytest.raises(ValueError, match="not one of the classes"):
        find_label_issues(np.r_[names[given][:-1], ["eel"]], p, classes=names)
    with pytest.raises(ValueError, match="one row of class probabilities per label"):
        find_label_issues(names[given][:10], p)
    with pytest.raises(ValueError, match="NaN.*first at row 3.*softmax"):
        find_label_issues(names[given], np.where(np.arange(600)[:, None] == 3, np.nan, p))
    with pytest.warns(UserWarning, match="divided by their sums"):
        scaled = find_label_issues(names[given], p * 7)
    assert (scaled["is_clean"] == table["is_clean"]).all()


def detection_scores_f1(clean, given, y):
    from labelclean import detection_scores

    return detection_scores(clean, given, y)["f1"]


def test_a_known_noise_rate_flags_that_share_lowest_quality_first():
    find_label_issues = D.find_label_issues
    rng = np.random.default_rng(3)
    y = rng.integers(0, 3, 300)
    p = rng.dirichlet(np.ones(3), 300).astype(np.float32)
    auto = find_label_issues(y, p)
    fixed = find_label_issues(y, p, noise_rate=0.1)
    assert int((~fixed["is_clean"]).sum()) == 30
    np.testing.assert_array_equal(fixed["label_quality"], auto["label_quality"])  # the ranking is the same
    worst = np.argsort(auto["label_quality"].to_numpy(), kind="stable")[:25]
    assert not fixed["is_clean"].to_numpy()[worst].any()  # the lowest-quality rows are among the flagged
    kept = fixed["is_clean"].to_numpy()
    assert (fixed["pseudo_label"].to_numpy()[kept] == y[kept]).all()  # a row not flagged keeps its label
    assert find_label_issues(y, p, noise_rate=0.0)["is_clean"].all()
    for bad in (1.0, -0.1, "half"):
        with pytest.raises(ValueError, match="noise_rate must be 'auto' or a number"):
            find_label_issues(y, p, noise_rate=bad)


def test_the_rank_rule_flags_the_estimated_number_of_rows_lowest_quality_first():
    rng = np.random.default_rng(5)
    y = rng.integers(0, 3, 600)
    p = rng.dirichlet(np.full(3, 0.5), 600).astype(np.float32)
    p[np.arange(600), y] += 1.5
    p /= p.sum(axis=1, keepdims=True)
    flip = rng.random(600) < 0.1
    given = np.where(flip, (y + 1) % 3, y)
    d = D.detect(given, p, flag="rank")
    count = int(round(d.noise_rate * len(given)))
    lowest = np.zeros(len(given), dtype=bool)
    lowest[np.argsort(d.quality, kind="stable")[:count]] = True
    other = D.prior_shift(p, d.joint).argmax(axis=1) != given  # the model prefers another class
    assert count > 0 and 0 < (lowest & ~other).sum() < count  # some of the lowest are the model's own class
    np.testing.assert_array_equal(~d.clean, lowest & other)  # the lowest label posteriors, where the model disagrees
    assert flip[~d.clean].mean() > 0.8  # and they are the flipped rows


def test_find_label_issues_changes_labels_on_temperature_scaled_evidence():
    rng = np.random.default_rng(3)
    n, k = 3000, 3
    y = rng.integers(0, k, n)
    p = rng.dirichlet(np.full(k, 0.3), n)
    p[np.arange(n), y] += 3.0
    p /= p.sum(axis=1, keepdims=True)
    given = np.where(rng.random(n) < 0.03, (y + rng.integers(1, k, n)) % k, y)
    sharp = p**6 / (p**6).sum(axis=1, keepdims=True)  # the same model, overconfident
    for q in (p.astype(np.float32), sharp.astype(np.float32)):
        issues = D.find_label_issues(given, q)
        pseudo = issues["pseudo_label"].to_numpy()
        _, t = D.calibrate(q, given)  # the temperature fitted to the given labels
        np.testing.assert_array_equal(pseudo, D.detect(given, q, relabel_temperature=t).pseudo)
        np.testing.assert_array_equal(issues["is_clean"], D.detect(given, q).clean)  # flags: as given
        changed = pseudo != given
        assert (pseudo[changed] == y[changed]).all()  # every change is right
    raw = D.detect(given, sharp.astype(np.float32))  # read as given, the overconfident model changes more
    assert (raw.pseudo != given).sum() > (pseudo != given).sum()
    assert (D.find_label_issues(given, p)["pseudo_label"].to_numpy() != given).sum() > 10
