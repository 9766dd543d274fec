import numpy as np
import pytest
from sklearn.metrics import accuracy_score, balanced_accuracy_score, f1_score, precision_recall_fscore_support

import ferlib
from ferlib.engine.metrics import (
    bootstrap_intervals,
    confusion_matrix,
    expected_calibration_error,
    metrics_from_confusion,
    per_class_scores,
)


@pytest.mark.filterwarnings("ignore:y_pred contains classes not in y_true")
@pytest.mark.parametrize("seed", [0, 1, 2])
def test_metrics_match_scikit_learn(seed):
    rng = np.random.default_rng(seed)
    y_true = rng.integers(0, 6, 200)  # class 6 never occurs in y_true
    y_pred = np.where(rng.random(200) < 0.6, y_true, rng.integers(0, 7, 200))
    metrics = metrics_from_confusion(confusion_matrix(y_true, y_pred, 7))
    assert metrics["accuracy"] == pytest.approx(accuracy_score(y_true, y_pred))
    assert metrics["balanced_accuracy"] == pytest.approx(balanced_accuracy_score(y_true, y_pred))
    assert metrics["macro_f1"] == pytest.approx(f1_score(y_true, y_pred, average="macro", zero_division=0))
    precision, recall, _, support = precision_recall_fscore_support(y_true, y_pred, labels=range(7), zero_division=0)
    scores = per_class_scores(confusion_matrix(y_true, y_pred, 7))
    assert np.allclose(scores["precision"], precision) and np.allclose(scores["recall"], recall)
    assert np.array_equal(scores["support"], support)


def test_ece_by_hand():
    probs = np.array([[0.9, 0.1], [0.6, 0.4], [0.2, 0.8], [0.3, 0.7]])
    y_true = np.array([0, 1, 1, 1])
    # Bins of width 0.1: 0.9 (correct), 0.6 (wrong), 0.8 (correct), 0.7 (correct); each bin holds one sample.
    expected = (abs(1 - 0.9) + abs(0 - 0.6) + abs(1 - 0.8) + abs(1 - 0.7)) / 4
    assert expected_calibration_error(probs, y_true, bins=10) == pytest.approx(expected)


def test_bootstrap_interval_contains_estimate_and_narrows_with_n():
    rng = np.random.default_rng(0)
    small_true = rng.integers(0, 3, 100)
    small_pred = np.where(rng.random(100) < 0.7, small_true, (small_true + 1) % 3)
    big_true = np.tile(small_true, 20)
    big_pred = np.tile(small_pred, 20)
    low, high = bootstrap_intervals(small_true, small_pred, 3, 500)["accuracy"]
    big_low, big_high = bootstrap_intervals(big_true, big_pred, 3, 500)["accuracy"]
    accuracy = (small_true == small_pred).mean()
    assert low <= accuracy <= high
    assert big_high - big_low < (high - low) / 2


def test_evaluate_returns_tidy_records(blobs):
    import pandas as pd

    ferlib.seed_everything(0)
    model = ferlib.create_model("cnn_small", num_classes=4, width=8)
    ferlib.fit(model, blobs, epochs=4, lr=3e-3, batch_size=16, device="cpu", progress=False)
    result = ferlib.evaluate(model, blobs, device="cpu", n_bootstrap=200)
    frame = pd.DataFrame(result.to_records())
    assert list(frame["metric"]) == ["accuracy", "balanced_accuracy", "macro_f1", "ece"]
    assert result.confusion.sum() == len(blobs) == result.n
    assert result.class_names == blobs.class_names
    assert result.intervals["accuracy"][0] <= result.accuracy <= result.intervals["accuracy"][1]
    assert len(result.meta) == len(blobs) and "subject" in result.meta[0]
    assert list(result.per_class()["class"]) == list(blobs.class_names)
    flipped = ferlib.evaluate(model, blobs, device="cpu", n_bootstrap=0, tta_flip=True)
    assert flipped.intervals == {} and 0.0 <= flipped.accuracy <= 1.0


def test_evaluate_rejects_labels_beyond_the_model(blobs):
    model = ferlib.create_model("cnn_small", num_classes=2, width=8)
    with pytest.raises(ValueError, match="model has 2 classes"):
        ferlib.evaluate(model, blobs, device="cpu", n_bootstrap=0)
