"""Tests for the GLUE metrics against hand-computed values."""

from __future__ import annotations

import math
import warnings

import numpy as np
import pytest

from propetl_adapters.data.metrics import (
    accuracy,
    compute_glue_metrics,
    f1,
    main_metric,
    matthews_corrcoef,
    paper_average,
    pearson,
    spearmanr,
)


def test_accuracy_three_of_four():
    assert compute_glue_metrics("sst2", [1, 0, 1, 1], [1, 0, 0, 1]) == {"accuracy": 75.0}
    assert accuracy([1, 0, 1, 1], [1, 0, 0, 1]) == 0.75


def test_mrpc_accuracy_and_f1():
    # tp = 2 (positions 0, 3), fp = 1 (position 1), fn = 1 (position 4): F1 = 2*2 / (2*2 + 1 + 1).
    result = compute_glue_metrics("mrpc", [1, 1, 0, 1, 0], [1, 0, 0, 1, 1])
    assert list(result) == ["accuracy", "f1"]
    assert result["accuracy"] == pytest.approx(60.0)
    assert result["f1"] == pytest.approx(100 * 4 / 6)


def test_f1_counts_invalid_predictions_as_negative():
    # -1 (an unparsable generated answer) is wrong and not positive: tp = 1, fp = 1, fn = 1.
    result = compute_glue_metrics("qqp", [-1, 1, 0, 1], [1, 1, 0, 0])
    assert result == {"accuracy": 50.0, "f1": 50.0}


def test_f1_without_true_positives_is_zero():
    assert f1([0, 0, 0], [1, 1, 0]) == 0.0
    assert f1([0, 0], [0, 0]) == 0.0


def test_matthews_correlation_hand_computed():
    # tp = 3, fn = 1, tn = 2, fp = 2:
    # MCC = (tp*tn - fp*fn) / sqrt((tp+fp)(tp+fn)(tn+fp)(tn+fn)) = (6 - 2) / sqrt(5*4*4*3).
    labels = [1, 1, 1, 1, 0, 0, 0, 0]
    preds = [1, 1, 1, 0, 0, 0, 1, 1]
    expected = 100 * 4 / math.sqrt(240)
    assert compute_glue_metrics("cola", preds, labels)["matthews_correlation"] == pytest.approx(expected)
    assert expected == pytest.approx(25.819889)


def test_matthews_correlation_perfect_inverse_and_constant():
    assert matthews_corrcoef([1, 0, 1, 0], [1, 0, 1, 0]) == pytest.approx(1.0)
    assert matthews_corrcoef([0, 1, 0, 1], [1, 0, 1, 0]) == pytest.approx(-1.0)
    assert compute_glue_metrics("cola", [1, 1, 1, 1], [1, 0, 1, 0]) == {"matthews_correlation": 0.0}


def test_pearson_known_values():
    x = np.array([0.0, 1.0, 2.5, 4.0, 5.0])
    assert pearson(2 * x + 1, x) == pytest.approx(1.0)
    assert pearson(-3 * x, x) == pytest.approx(-1.0)
    # deviations (-1, 0, 1) and (-1, 1, 0): covariance 1, variances 2 and 2 -> r = 0.5.
    assert pearson([1, 2, 3], [1, 3, 2]) == pytest.approx(0.5)


def test_spearman_known_value():
    # No ties: rho = 1 - 6 * sum(d^2) / (n (n^2 - 1)) = 1 - 6 * 2 / 60 = 0.8.
    assert spearmanr([1, 2, 3, 4], [1, 3, 2, 4]) == pytest.approx(0.8)
    # Monotonic but not linear: Spearman is perfect, Pearson is not.
    assert spearmanr([1, 4, 9, 16], [1, 2, 3, 4]) == pytest.approx(1.0)
    assert pearson([1, 4, 9, 16], [1, 2, 3, 4]) < 0.99


def test_stsb_percentages():
    result = compute_glue_metrics("stsb", [0.5, 1.5, 2.5, 3.5], [1.0, 2.0, 3.0, 4.0])
    assert result == {"pearson": pytest.approx(100.0), "spearmanr": pytest.approx(100.0)}
    result = compute_glue_metrics("stsb", [1, 3, 2, 4], [1, 2, 3, 4])
    assert result["spearmanr"] == pytest.approx(80.0)
    assert result["pearson"] == pytest.approx(80.0)  # ranks equal values here


def test_constant_predictions_give_zero_correlation_without_warnings():
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        assert compute_glue_metrics("stsb", [2.0, 2.0, 2.0], [1.0, 2.0, 3.0]) == {"pearson": 0.0, "spearmanr": 0.0}
        assert pearson([1.0, 2.0], [3.0, 3.0]) == 0.0
        assert spearmanr([5.0], [1.0]) == 0.0


def test_regression_head_shape_is_accepted():
    preds = np.array([[1.0], [2.0], [3.0]])
    assert compute_glue_metrics("stsb", preds, [1.0, 2.0, 3.0])["pearson"] == pytest.approx(100.0)


def test_integer_valued_float_class_ids_are_accepted():
    assert compute_glue_metrics("rte", np.array([1.0, 0.0]), np.array([1, 1])) == {"accuracy": 50.0}


@pytest.mark.parametrize(
    "task, preds, labels, message",
    [
        ("sst2", [1, 0], [1], "non-empty and equally long, got 2 and 1"),
        ("sst2", [], [], "non-empty and equally long, got 0 and 0"),
        ("sst2", [[0.1, 0.9], [0.8, 0.2]], [1, 0], r"one value per example, got shape \(2, 2\)"),
        ("sst2", [0.5, 1], [1, 0], "predictions must be integer class ids"),
        ("mnli", [0, 1], [0, 3], "gold label id 3 is outside the label set; expected ids 0..2"),
        ("stsb", [float("nan"), 1.0], [1.0, 2.0], "predictions contain non-finite values"),
    ],
)
def test_invalid_inputs(task, preds, labels, message):
    with pytest.raises(ValueError, match=message):
        compute_glue_metrics(task, preds, labels)


def test_main_metric():
    expected = {"cola": "matthews_correlation", "stsb": "pearson", "mrpc": "f1", "qqp": "f1",
                "sst2": "accuracy", "mnli": "accuracy", "qnli": "accuracy", "rte": "accuracy"}
    assert {task: main_metric(task) for task in expected} == expected
    assert main_metric("STS-B") == "pearson"


def test_paper_average_counts_mrpc_qqp_stsb_twice():
    results = {
        "cola": {"matthews_correlation": 60.0},
        "sst2": {"accuracy": 94.0},
        "mrpc": {"accuracy": 88.0, "f1": 91.0},
        "stsb": {"pearson": 90.0, "spearmanr": 89.0},
        "qqp": {"accuracy": 90.0, "f1": 87.0},
        "mnli": {"accuracy": 86.0, "loss": 0.4},  # extra keys are ignored
        "qnli": {"accuracy": 92.0},
        "rte": {"accuracy": 75.0},
    }
    # 11 numbers summing to 942.
    assert paper_average(results) == pytest.approx(942.0 / 11)


def test_paper_average_of_a_subset():
    assert paper_average({"rte": {"accuracy": 70.0}, "mrpc": {"accuracy": 80.0, "f1": 90.0}}) == pytest.approx(80.0)


def test_paper_average_errors():
    with pytest.raises(ValueError, match="at least one task"):
        paper_average({})
    missing = r"results for stsb lack \['spearmanr'\]; expected keys \['pearson', 'spearmanr'\]"
    with pytest.raises(ValueError, match=missing):
        paper_average({"stsb": {"pearson": 90.0}})
    with pytest.raises(ValueError, match="unknown GLUE task 'wnli'"):
        paper_average({"wnli": {"accuracy": 50.0}})
