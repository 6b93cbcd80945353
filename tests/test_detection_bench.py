"""The pure pieces of the detection benchmark (``python -m benchmarks.detection_bench``): scores, data, tables."""

from __future__ import annotations

import itertools
import math

import numpy as np
import pytest

from benchmarks import detection_bench as db


def _case(seed: int, n: int = 60):
    rng = np.random.default_rng(seed)
    truth = rng.integers(0, 3, n)
    given = np.where(rng.random(n) < 0.3, rng.integers(0, 3, n), truth)
    quality = rng.integers(0, 5, n) / 4.0  # few distinct values: many ties
    flagged = rng.random(n) < 0.4
    return given, truth, quality, flagged


@pytest.mark.parametrize("seed", range(5))
def test_scores_agree_with_brute_force_definitions(seed):
    given, truth, quality, flagged = _case(seed)
    noisy = [g != t for g, t in zip(given, truth)]
    got = db.score(given, truth, flagged=flagged, quality=quality)

    tp = sum(f and w for f, w in zip(flagged, noisy))
    precision, recall = tp / sum(flagged), tp / sum(noisy)
    assert got["precision"] == pytest.approx(precision)
    assert got["recall"] == pytest.approx(recall)
    assert got["f1"] == pytest.approx(2 * precision * recall / (precision + recall))
    assert got["n_noisy"] == sum(noisy) and got["n_flagged"] == sum(flagged)

    ranked = sorted(range(len(quality)), key=lambda i: (quality[i], i))  # lowest quality first, ties by row
    for k in (sum(noisy), 100, 1, 7):
        top = ranked[: min(k, len(ranked))]
        assert db.precision_at_k(quality, np.array(noisy), k) == pytest.approx(sum(noisy[i] for i in top) / len(top))
    assert got["precision_at_noisy"] == pytest.approx(db.precision_at_k(quality, np.array(noisy), sum(noisy)))
    assert got["precision_at_100"] == pytest.approx(sum(noisy) / len(noisy))  # k capped at n: every row

    pairs = [
        1.0 if quality[i] < quality[j] else 0.5 if quality[i] == quality[j] else 0.0
        for i, j in itertools.product(range(len(noisy)), repeat=2)
        if noisy[i] and not noisy[j]
    ]
    assert got["auroc"] == pytest.approx(sum(pairs) / len(pairs))


def test_scores_without_a_part_are_nan_and_degenerate_cases_are_defined():
    given, truth = np.array([0, 1, 1, 0]), np.array([0, 0, 1, 0])
    only_rank = db.score(given, truth, quality=np.array([0.9, 0.1, 0.5, 0.8]))
    assert math.isnan(only_rank["f1"]) and only_rank["precision_at_noisy"] == 1.0 and only_rank["auroc"] == 1.0
    only_flags = db.score(given, truth, flagged=np.array([False, True, False, False]), pseudo=np.array([0, 0, 1, 0]))
    assert only_flags["f1"] == 1.0 and math.isnan(only_flags["auroc"])
    assert only_flags["pseudo_accuracy"] == 1.0 and only_flags["n_changed"] == 1
    assert math.isnan(db.auroc(np.array([0.2, 0.3]), np.array([False, False])))
    assert math.isnan(db.precision_at_k(np.array([0.2, 0.3]), np.array([True, False]), 0))


def test_encode_uses_the_given_classes_and_marks_other_true_classes():
    labels, truth = db.encode(np.array([5, 7, 7, 9]), np.array([5, 7, 3, 9]))
    assert labels.tolist() == [0, 1, 1, 2] and truth.tolist() == [0, 1, -1, 2]


def test_synthetic_probabilities_are_float32_rows_with_the_flip_share():
    given, truth, proba = db.synthetic(50_000, 10, seed=0)
    assert proba.dtype == np.float32 and proba.shape == (50_000, 10)
    assert np.allclose(proba.sum(axis=1), 1.0, atol=1e-5)
    assert abs(np.mean(given != truth) - db.SPEED_FLIP) < 0.01
    assert 0.9 < np.mean(proba.argmax(axis=1) == truth) < 0.96


def test_every_candidate_runs_and_gives_its_parts():
    given, truth, proba = db.synthetic(3_000, 4, seed=1)
    names = [c for c in db.CANDIDATES if not c.startswith("cleanlab") or db.cleanlab_version()]
    records = list(db.score_candidates(given, truth, proba, names, {"section": "detection", "group": "g"}))
    assert [r["candidate"] for r in records] == names
    for r in records:
        assert "error" not in r, r
        assert math.isnan(r["f1"]) == r["candidate"].startswith("cleanlab rank")
        assert math.isnan(r["auroc"]) == r["candidate"].startswith("cleanlab filter")
        assert not math.isnan(r["pseudo_accuracy"]) == r["candidate"].startswith("labelclean")
    ours = {r["candidate"]: r for r in records}
    assert ours[db.OURS]["f1"] == ours["labelclean detect rank"]["f1"]  # the default flag rule
    assert ours[db.OURS]["auroc"] > 0.9


def test_summary_tables_and_the_doc_markers():
    def rec(candidate, noise, f1, pk, dataset="d"):
        return {
            "section": "detection",
            "group": "tables",
            "dataset": dataset,
            "noise": noise,
            "candidate": candidate,
            "f1": f1,
            "precision_at_noisy": pk,
            "seconds": 0.5,
            "n": 100,
            "n_noisy": 20,
            "model": "HGB",
            "model_accuracy": 0.8,
            "given_accuracy": 0.8,
            "pseudo_accuracy": 0.85 if candidate == db.OURS else math.nan,
        }

    records = [
        rec(db.OURS, "sym20", 0.5, 0.6),
        rec(db.OURS, "sym20", 0.7, 0.8, dataset="e"),
        rec("cleanlab rank self_confidence", "sym20", math.nan, 0.4),
        {"section": "speed", "method": "labelclean", "rows": 1000, "classes": 10, "seconds": 1.25, "f1": 0.5}
        | {"peak_extra_bytes": 2**21, "peak_extra_x_nbytes": 2.5, "loadavg": [1.0, 1.0, 1.0]},
    ]
    text = db.summary(records, "header")
    assert "| labelclean find_label_issues | 0.600 | 0.700 | 0.500 |" in text
    assert "| cleanlab rank self_confidence | — | 0.400 | 0.500 |" in text
    assert "| tables | sym20 | 2 | 200 | 0.200 | HGB | 0.800 | 0.800 | 0.850 |" in text
    assert "| labelclean | 1,000 × 10 | 1.2 | 2 | 2.50 | 0.500 | 1.00 |" in text

    doc = "# Benchmarks\n\n<!-- real:begin -->\nkept\n<!-- real:end -->\n\ntail\n"
    once = db.write_doc(doc, "first")
    assert once.startswith(doc.rstrip("\n")) and once.endswith(f"{db.BEGIN}\nfirst\n{db.END}\n")
    twice = db.write_doc(once, "second")
    assert twice == once.replace("first", "second")


def test_a_speed_measurement_runs_in_a_fresh_process():
    rec = db.speed_record("labelclean", 20_000, 5, seed=0)
    assert "error" not in rec, rec
    assert rec["nbytes"] == 20_000 * 5 * 4 and rec["seconds"] > 0
    assert rec["peak_extra_bytes"] >= 0 and len(rec["loadavg"]) == 3
