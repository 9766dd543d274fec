"""Metrics for expression classifiers, with bootstrap 95% intervals over the test items.

WAR (weighted average recall) is plain accuracy; UAR (unweighted average recall) is balanced
accuracy; both are what FER papers report. Metrics are computed from the confusion matrix, so
that a thousand bootstrap resamples cost one vectorised ``bincount``. Intervals over runs (seeds)
are :mod:`ferlib.stats`'.
"""

from __future__ import annotations

import numpy as np

METRICS = ("accuracy", "balanced_accuracy", "macro_f1")


def confusion_matrix(y_true: np.ndarray, y_pred: np.ndarray, num_classes: int) -> np.ndarray:
    """Counts ``C[i, j]`` of samples of true class ``i`` predicted as ``j``."""
    y_true = np.asarray(y_true, dtype=np.int64)
    y_pred = np.asarray(y_pred, dtype=np.int64)
    if y_true.shape != y_pred.shape:
        raise ValueError(f"y_true and y_pred differ in shape: {y_true.shape} vs {y_pred.shape}")
    return np.bincount(y_true * num_classes + y_pred, minlength=num_classes**2).reshape(num_classes, num_classes)


def _safe_divide(numerator: np.ndarray, denominator: np.ndarray) -> np.ndarray:
    return np.divide(numerator, denominator, out=np.zeros_like(numerator, dtype=np.float64), where=denominator > 0)


def per_class_scores(confusion: np.ndarray) -> dict[str, np.ndarray]:
    """Precision, recall, F1 and support per class (0 where undefined, as scikit-learn's default)."""
    confusion = np.asarray(confusion, dtype=np.float64)
    true_positive = np.diagonal(confusion, axis1=-2, axis2=-1)
    support = confusion.sum(-1)
    predicted = confusion.sum(-2)
    precision = _safe_divide(true_positive, predicted)
    recall = _safe_divide(true_positive, support)
    f1 = _safe_divide(2 * precision * recall, precision + recall)
    return {"precision": precision, "recall": recall, "f1": f1, "support": support}


def metrics_from_confusion(confusion: np.ndarray) -> dict[str, float | np.ndarray]:
    """Accuracy (WAR), balanced accuracy (UAR) and macro-F1 from one or a stack of confusion matrices.

    As scikit-learn: UAR averages recall over classes present in ``y_true``; macro-F1 averages
    over classes present in ``y_true`` or ``y_pred``.
    """
    confusion = np.asarray(confusion, dtype=np.float64)
    scores = per_class_scores(confusion)
    total = confusion.sum((-2, -1))
    accuracy = _safe_divide(np.diagonal(confusion, axis1=-2, axis2=-1).sum(-1), total)
    present = scores["support"] > 0
    balanced = _safe_divide((scores["recall"] * present).sum(-1), present.sum(-1))
    seen = present | (confusion.sum(-2) > 0)
    macro_f1 = _safe_divide((scores["f1"] * seen).sum(-1), seen.sum(-1))
    result = {"accuracy": accuracy, "balanced_accuracy": balanced, "macro_f1": macro_f1}
    return {k: float(v) if np.ndim(v) == 0 else v for k, v in result.items()}


def expected_calibration_error(probs: np.ndarray, y_true: np.ndarray, bins: int = 15) -> float:
    """ECE: the gap between confidence and accuracy, averaged over equal-width confidence bins."""
    probs = np.asarray(probs, dtype=np.float64)
    confidence = probs.max(1)
    correct = probs.argmax(1) == np.asarray(y_true)
    edges = np.linspace(0.0, 1.0, bins + 1)
    which = np.clip(np.digitize(confidence, edges[1:-1], right=True), 0, bins - 1)
    ece = 0.0
    for b in range(bins):
        mask = which == b
        if mask.any():
            ece += mask.mean() * abs(correct[mask].mean() - confidence[mask].mean())
    return float(ece)


def bootstrap_intervals(
    y_true: np.ndarray,
    y_pred: np.ndarray,
    num_classes: int,
    n_resamples: int = 1000,
    level: float = 0.95,
    seed: int = 0,
    chunk: int = 200,
) -> dict[str, tuple[float, float]]:
    """Percentile bootstrap intervals of accuracy, balanced accuracy and macro-F1."""
    y_true = np.asarray(y_true, dtype=np.int64)
    y_pred = np.asarray(y_pred, dtype=np.int64)
    n = len(y_true)
    rng = np.random.default_rng(seed)
    cells = y_true * num_classes + y_pred
    collected: dict[str, list[np.ndarray]] = {name: [] for name in METRICS}
    for start in range(0, n_resamples, chunk):
        size = min(chunk, n_resamples - start)
        index = rng.integers(0, n, size=(size, n))
        offsets = np.arange(size)[:, None] * num_classes**2
        stacked = np.bincount((cells[index] + offsets).ravel(), minlength=size * num_classes**2)
        metrics = metrics_from_confusion(stacked.reshape(size, num_classes, num_classes))
        for name in METRICS:
            collected[name].append(np.atleast_1d(metrics[name]))
    tail = (1.0 - level) / 2 * 100
    return {
        name: (float(np.percentile(np.concatenate(v), tail)), float(np.percentile(np.concatenate(v), 100 - tail)))
        for name, v in collected.items()
    }
