"""GLUE metrics computed locally with numpy, scikit-learn and scipy.

The single-metric functions return raw values (a fraction for accuracy and F1, a
coefficient in [-1, 1] for the correlations). :func:`compute_glue_metrics` scales
them to percentages, as the ProPETL paper reports them.
"""

from __future__ import annotations

from typing import Callable, Mapping, Sequence

import numpy as np
from scipy import stats
from sklearn.metrics import matthews_corrcoef as _sklearn_mcc

from .glue import GlueTask, get_task

ArrayLike = Sequence[float] | np.ndarray


def accuracy(predictions: ArrayLike, labels: ArrayLike) -> float:
    """Fraction of predictions equal to the label."""
    preds, gold = _paired_arrays(predictions, labels)
    return float(np.mean(preds == gold))


def f1(predictions: ArrayLike, labels: ArrayLike) -> float:
    """Binary F1 score of the positive class 1.

    Any prediction other than 1 (including invalid ids such as -1) counts as a
    negative prediction. Returns 0.0 when there are no true positives.
    """
    preds, gold = _paired_arrays(predictions, labels)
    true_pos = int(np.sum((preds == 1) & (gold == 1)))
    false_pos = int(np.sum((preds == 1) & (gold != 1)))
    false_neg = int(np.sum((preds != 1) & (gold == 1)))
    denominator = 2 * true_pos + false_pos + false_neg
    return 2 * true_pos / denominator if denominator else 0.0


def matthews_corrcoef(predictions: ArrayLike, labels: ArrayLike) -> float:
    """Matthews correlation coefficient; 0.0 when predictions or labels are constant."""
    preds, gold = _paired_arrays(predictions, labels)
    return float(_sklearn_mcc(gold, preds))


def pearson(predictions: ArrayLike, labels: ArrayLike) -> float:
    """Pearson correlation.

    The correlation is undefined (scipy returns nan) when either input is
    constant, e.g. a collapsed regression head; this function reports 0.0 then,
    i.e. "no linear relationship", so averages over tasks stay finite.
    """
    preds, gold = _paired_arrays(predictions, labels)
    if _is_constant(preds) or _is_constant(gold):
        return 0.0
    return float(stats.pearsonr(preds, gold)[0])


def spearmanr(predictions: ArrayLike, labels: ArrayLike) -> float:
    """Spearman rank correlation; 0.0 when either input is constant (see :func:`pearson`)."""
    preds, gold = _paired_arrays(predictions, labels)
    if _is_constant(preds) or _is_constant(gold):
        return 0.0
    return float(stats.spearmanr(preds, gold)[0])


METRIC_FUNCTIONS: dict[str, Callable[[ArrayLike, ArrayLike], float]] = {
    "accuracy": accuracy,
    "f1": f1,
    "matthews_correlation": matthews_corrcoef,
    "pearson": pearson,
    "spearmanr": spearmanr,
}

# Tasks whose two reported numbers both enter the paper's GLUE average.
DOUBLE_COUNTED_TASKS = ("mrpc", "qqp", "stsb")


def compute_glue_metrics(
    task: str | GlueTask, predictions: ArrayLike, labels: ArrayLike
) -> dict[str, float]:
    """Compute the reported metrics of ``task`` as percentages (value x 100).

    Keys: ``matthews_correlation`` (CoLA); ``accuracy`` and ``f1`` (MRPC, QQP);
    ``pearson`` and ``spearmanr`` (STS-B); ``accuracy`` (SST-2, MNLI, QNLI, RTE).

    Args:
        task: Task name or spec.
        predictions: Predicted class ids, or predicted scores for STS-B. A
            classification prediction outside the label set (e.g. -1 for an
            unparsable generated answer) is simply counted as wrong.
        labels: Gold class ids (each in ``range(task.num_labels)``) or gold scores.

    Raises:
        ValueError: on empty or differently sized inputs, non-finite values,
            non-integer class ids or gold labels outside the task's label set.
    """
    spec = get_task(task)
    preds, gold = _paired_arrays(predictions, labels)
    if not spec.is_regression:
        preds, gold = _class_ids(preds, "predictions"), _class_ids(gold, "labels")
        invalid = gold[(gold < 0) | (gold >= spec.num_labels)]
        if invalid.size:
            raise ValueError(
                f"{spec.name}: gold label id {invalid[0]} is outside the label set; "
                f"expected ids 0..{spec.num_labels - 1}"
            )
    return {name: 100.0 * METRIC_FUNCTIONS[name](preds, gold) for name in spec.metrics}


def main_metric(task: str | GlueTask) -> str:
    """Metric key used for model selection on ``task``."""
    return get_task(task).main_metric


def paper_average(results_by_task: Mapping[str, Mapping[str, float]]) -> float:
    """GLUE average as in the ProPETL paper: the mean of all reported numbers.

    Every reported metric of every given task is one number, so MRPC and QQP
    (accuracy and F1) and STS-B (Pearson and Spearman) count twice: the full
    benchmark averages 11 numbers over 8 tasks. Extra keys in a task's results
    (e.g. a loss) are ignored.

    Args:
        results_by_task: ``{task: {metric: value}}`` as returned by
            :func:`compute_glue_metrics`, for any non-empty subset of the tasks.

    Raises:
        ValueError: if no results are given or a task lacks one of its metrics.
    """
    if not results_by_task:
        raise ValueError("paper_average needs results for at least one task")
    numbers = []
    for task, results in results_by_task.items():
        spec = get_task(task)
        missing = [name for name in spec.metrics if name not in results]
        if missing:
            raise ValueError(
                f"results for {spec.name} lack {missing}; expected keys {list(spec.metrics)}, "
                f"found {sorted(results)}"
            )
        numbers.extend(float(results[name]) for name in spec.metrics)
    return float(np.mean(numbers))


def mean_and_std(values: Sequence[float]) -> tuple[float, float]:
    """Mean and sample standard deviation (0 for a single value) of scores over seeds."""
    mean = float(np.mean(values))
    return mean, float(np.std(values, ddof=1)) if len(values) > 1 else 0.0


def mean_std_text(values: Sequence[float]) -> str:
    """A table cell: "mean ± std" over seeds, or the bare mean of a single seed (which has no spread)."""
    mean, std = mean_and_std(values)
    return f"{mean:.2f}" if len(values) < 2 else f"{mean:.2f} ± {std:.2f}"


def _paired_arrays(predictions: ArrayLike, labels: ArrayLike) -> tuple[np.ndarray, np.ndarray]:
    """Validate two inputs as equally long, non-empty, finite 1-D arrays."""
    arrays = []
    for name, values in (("predictions", predictions), ("labels", labels)):
        array = np.asarray(values, dtype=float)
        if array.ndim == 2 and array.shape[1] == 1:  # regression heads output (n, 1)
            array = array[:, 0]
        if array.ndim != 1:
            raise ValueError(
                f"{name} must be one value per example, got shape {array.shape} "
                "(pass class ids, not logits)"
            )
        if not np.all(np.isfinite(array)):
            raise ValueError(f"{name} contain non-finite values (nan or inf)")
        arrays.append(array)
    preds, gold = arrays
    if preds.size == 0 or preds.shape != gold.shape:
        raise ValueError(
            f"predictions and labels must be non-empty and equally long, got {preds.size} and {gold.size}"
        )
    return preds, gold


def _class_ids(values: np.ndarray, name: str) -> np.ndarray:
    if not np.all(values == np.round(values)):
        raise ValueError(f"{name} must be integer class ids for a classification task")
    return values.astype(int)


def _is_constant(values: np.ndarray) -> bool:
    return bool(np.all(values == values[0]))
