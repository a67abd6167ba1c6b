"""Tests for cnn.utils.report: per-class precision, recall, F1 and their macro averages."""

import numpy as np
import pytest

from cnn.utils.report import classification_report, format_report


def test_scores_equal_a_hand_count():
    y_true = np.array([0, 0, 0, 1, 1, 2])
    y_pred = np.array([0, 0, 1, 1, 2, 2])
    report = classification_report(y_true, y_pred, ["cat", "dog", "eel"])
    cat, dog, eel = report["classes"]
    assert cat == {"name": "cat", "precision": 1.0, "recall": pytest.approx(2 / 3),
                   "f1": pytest.approx(0.8), "support": 3}
    assert dog["precision"] == 0.5 and dog["recall"] == 0.5 and dog["f1"] == 0.5 and dog["support"] == 2
    assert eel["precision"] == 0.5 and eel["recall"] == 1.0 and eel["f1"] == pytest.approx(2 / 3)
    assert report["accuracy"] == pytest.approx(4 / 6) and report["support"] == 6
    macro = report["macro avg"]
    assert macro["precision"] == pytest.approx((1 + 0.5 + 0.5) / 3)
    assert macro["recall"] == pytest.approx((2 / 3 + 0.5 + 1) / 3)
    assert macro["f1"] == pytest.approx((0.8 + 0.5 + 2 / 3) / 3) and macro["support"] == 6


def test_matches_a_loop_on_random_labels():
    rng = np.random.default_rng(0)
    y_true, y_pred = rng.integers(0, 5, 300), rng.integers(0, 5, 300)
    report = classification_report(y_true, y_pred, range(5))
    for k, row in enumerate(report["classes"]):
        tp = np.sum((y_true == k) & (y_pred == k))
        assert row["precision"] == pytest.approx(tp / np.sum(y_pred == k))
        assert row["recall"] == pytest.approx(tp / np.sum(y_true == k))
        assert row["support"] == np.sum(y_true == k) and row["name"] == str(k)


def test_a_class_never_predicted_or_absent_scores_zero():
    report = classification_report(np.array([0, 0, 1]), np.array([0, 0, 0]), ["a", "b", "c"])
    b, c = report["classes"][1:]
    assert (b["precision"], b["recall"], b["f1"], b["support"]) == (0.0, 0.0, 0.0, 1)
    assert (c["precision"], c["recall"], c["f1"], c["support"]) == (0.0, 0.0, 0.0, 0)


def test_format_report_is_an_aligned_table():
    report = classification_report(np.array([0, 1, 1]), np.array([0, 1, 0]), ["T-shirt/top", "Ankle boot"])
    lines = format_report(report).splitlines()
    assert lines[0].split() == ["precision", "recall", "f1-score", "support"]
    assert lines[1].split() == ["T-shirt/top", "0.5000", "1.0000", "0.6667", "1"]
    assert lines[2].split() == ["Ankle", "boot", "1.0000", "0.5000", "0.6667", "2"]
    assert lines[3] == "" and lines[4].split() == ["accuracy", "0.6667", "3"]
    assert lines[5].split()[:2] == ["macro", "avg"]
    assert len({len(line) for line in lines if line}) == 1  # every row as wide as the header


def test_report_rejects_ids_outside_the_classes():
    with pytest.raises(ValueError, match="outside range"):
        classification_report(np.array([0, 3]), np.array([0, 1]), ["a", "b"])
