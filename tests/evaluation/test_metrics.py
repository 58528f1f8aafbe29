"""compute_metrics against hand-computed values (exact fractions written out below)."""

from __future__ import annotations

import json
import math
from fractions import Fraction as F

import numpy as np
import pytest

from rsseg_cli.evaluation.confusion import ConfusionMatrix
from rsseg_cli.evaluation.metrics import compute_metrics

NAMES = ["water", "forest", "urban"]

# Rows = ground truth, columns = prediction. "urban" never occurs in the truth but is predicted twice.
M = np.array(
    [
        [5, 1, 2],
        [1, 3, 0],
        [0, 0, 0],
    ],
    dtype=np.int64,
)
# N = 12; support (row sums) = 8, 4, 0; predicted (column sums) = 6, 4, 2; tp = 5, 3, 0.
#
# water:  precision = 5/6, recall = 5/8, IoU = 5 / (8 + 6 - 5) = 5/9, F1 = 2*5 / (8 + 6) = 5/7
# forest: precision = 3/4, recall = 3/4, IoU = 3 / (4 + 4 - 3) = 3/5, F1 = 2*3 / (4 + 4) = 3/4
# urban:  precision = 0/2 = 0, recall = 0/0 -> null, IoU = 0 / (0 + 2 - 0) = 0, F1 = 0 / (0 + 2) = 0
#
# OA      = (5 + 3 + 0) / 12 = 2/3
# mIoU    = (5/9 + 3/5) / 2 = (25/45 + 27/45) / 2 = 26/45          (present classes only: water, forest)
# mean F1 = (5/7 + 3/4) / 2 = (20/28 + 21/28) / 2 = 41/56
# FWIoU   = 8/12 * 5/9 + 4/12 * 3/5 = 10/27 + 1/5 = 77/135
# kappa:  po = 2/3, pe = (8*6 + 4*4 + 0*2) / 12^2 = 64/144 = 4/9, kappa = (2/3 - 4/9) / (1 - 4/9) = 2/5
EXPECTED_CLASSES = [
    dict(precision=F(5, 6), recall=F(5, 8), iou=F(5, 9), f1=F(5, 7), support=8, predicted=6),
    dict(precision=F(3, 4), recall=F(3, 4), iou=F(3, 5), f1=F(3, 4), support=4, predicted=4),
    dict(precision=F(0), recall=None, iou=F(0), f1=F(0), support=0, predicted=2),
]


def approx(expected: F | None):
    return None if expected is None else pytest.approx(float(expected), rel=1e-12, abs=1e-15)


def test_hand_computed_three_class_matrix():
    m = compute_metrics(M, NAMES)
    assert m["pixels"] == 12
    assert m["overall_accuracy"] == approx(F(2, 3))
    assert m["mean_iou"] == approx(F(26, 45))
    assert m["mean_f1"] == approx(F(41, 56))
    assert m["fw_iou"] == approx(F(77, 135))
    assert m["kappa"] == approx(F(2, 5))
    assert "present" in m["mean_iou_note"] and "urban" in m["mean_iou_note"]
    assert m["absent_classes"] == ["urban"]
    assert len(m["per_class"]) == 3
    for i, (row, exp) in enumerate(zip(m["per_class"], EXPECTED_CLASSES)):
        assert row["id"] == i and row["name"] == NAMES[i]
        for key in ("precision", "recall", "iou", "f1"):
            assert row[key] == approx(exp[key]), (NAMES[i], key)
        assert row["support"] == exp["support"] and row["predicted"] == exp["predicted"]


def test_output_is_plain_python_and_strict_json():
    m = compute_metrics(M, NAMES)

    def walk(x):
        if isinstance(x, dict):
            for v in x.values():
                walk(v)
        elif isinstance(x, list):
            for v in x:
                walk(v)
        else:
            assert x is None or type(x) in (int, float, str, bool), type(x)
            if isinstance(x, float):
                assert math.isfinite(x)

    walk(m)
    assert m["per_class"][2]["recall"] is None
    text = json.dumps(m, allow_nan=False)
    assert "null" in text


def test_same_numbers_from_pixels_through_confusion_matrix():
    # Expand M into pixel pairs (plus ignore pixels) and rebuild it.
    t, p = [], []
    for i in range(3):
        for j in range(3):
            t += [i] * int(M[i, j])
            p += [j] * int(M[i, j])
    t += [255] * 5
    p += [0] * 5
    cm = ConfusionMatrix(3).update(np.array(p), np.array(t))
    np.testing.assert_array_equal(cm.matrix, M)
    assert compute_metrics(cm.matrix, NAMES)["kappa"] == approx(F(2, 5))


def test_class_absent_from_truth_and_prediction_is_null_everywhere():
    m = compute_metrics(np.array([[2, 1, 0], [0, 3, 0], [0, 0, 0]]), ["a", "b", "c"])
    c = m["per_class"][2]
    assert c["iou"] is None and c["f1"] is None and c["precision"] is None and c["recall"] is None
    # mIoU over a and b: IoU_a = 2/(3+2-2) = 2/3, IoU_b = 3/(3+4-3) = 3/4 -> (2/3 + 3/4)/2 = 17/24
    assert m["mean_iou"] == approx(F(17, 24))


def test_perfect_prediction():
    m = compute_metrics(np.diag([10, 3, 7]).astype(np.int64), ["a", "b", "c"])
    assert m["overall_accuracy"] == 1.0
    assert m["mean_iou"] == 1.0
    assert m["mean_f1"] == 1.0
    assert m["fw_iou"] == 1.0
    assert m["kappa"] == 1.0


def test_single_class_everywhere_and_perfect_has_kappa_one_not_nan():
    # pe = 1: kappa is 0/0; reported as 1.0 because agreement is perfect.
    m = compute_metrics(np.array([[9, 0], [0, 0]]), ["a", "b"])
    assert m["kappa"] == 1.0
    assert m["overall_accuracy"] == 1.0


def test_predicting_one_class_everywhere_gives_kappa_zero():
    # Truth 6/3/1 pixels, all predicted as class 0: po = 6/10 and pe = (6*10 + 3*0 + 1*0)/100 = 6/10.
    m = compute_metrics(np.array([[6, 0, 0], [3, 0, 0], [1, 0, 0]]), ["a", "b", "c"])
    assert m["kappa"] == pytest.approx(0.0, abs=1e-15)
    assert m["overall_accuracy"] == approx(F(6, 10))
    assert m["per_class"][1]["precision"] is None  # never predicted
    assert m["per_class"][1]["recall"] == 0.0


def test_textbook_kappa_example():
    # Two raters, 50 items: 20 both yes, 15 both no, 5 and 10 disagreements.
    # po = 35/50 = 0.7; yes marginals 25 and 30: pe = (25*30 + 25*20) / 50^2 = 0.5; kappa = 0.2/0.5 = 0.4.
    m = compute_metrics(np.array([[20, 5], [10, 15]]), ["yes", "no"])
    assert m["overall_accuracy"] == pytest.approx(0.7)
    assert m["kappa"] == pytest.approx(0.4)


def test_kappa_stays_exact_for_huge_counts():
    # N^2 ~ 1.6e21 overflows int64; the same proportions as the textbook example must give 0.4.
    scale = 800_000_000
    m = compute_metrics(np.array([[20, 5], [10, 15]], dtype=np.int64) * scale, ["yes", "no"])
    assert m["kappa"] == pytest.approx(0.4, rel=1e-12)


def test_no_pixels_gives_nulls_not_nan():
    m = compute_metrics(np.zeros((2, 2), dtype=np.int64), ["a", "b"])
    for key in ("overall_accuracy", "mean_iou", "mean_f1", "fw_iou", "kappa"):
        assert m[key] is None
    assert m["pixels"] == 0
    json.dumps(m, allow_nan=False)


def test_bad_inputs():
    with pytest.raises(ValueError):
        compute_metrics(np.zeros((2, 3), dtype=np.int64), ["a", "b"])
    with pytest.raises(ValueError):
        compute_metrics(np.zeros((2, 2), dtype=np.int64), ["a"])
    with pytest.raises(TypeError):
        compute_metrics(np.zeros((2, 2)), ["a", "b"])
