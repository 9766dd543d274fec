"""ferlib.experiments.compare: t intervals over seeds, batch-1 latency, the model comparison loop."""

from __future__ import annotations

import math

import pytest
import torch
from scipy import stats

from ferlib.efficiency import latency_ms
from ferlib.experiments.compare import compare_models, mean_interval, summarize_runs
from tests.conftest import BlobFaces


def test_mean_interval_matches_the_t_formula():
    values = [0.70, 0.74, 0.78]
    mean, low, high = mean_interval(values)
    half = stats.t.ppf(0.975, 2) * 0.04 / math.sqrt(3)
    assert mean == pytest.approx(0.74)
    assert (low, high) == pytest.approx((0.74 - half, 0.74 + half))


def test_mean_interval_of_one_value_has_no_interval_and_empty_fails():
    mean, low, high = mean_interval([0.5])
    assert mean == 0.5 and math.isnan(low) and math.isnan(high)
    with pytest.raises(ValueError):
        mean_interval([])


def test_latency_is_positive_and_keeps_training_mode():
    model = torch.nn.Sequential(torch.nn.Flatten(), torch.nn.Linear(16, 2)).train()
    assert latency_ms(model, (1, 4, 4), runs=3, warmup=1) > 0
    assert model.training
    with pytest.raises(ValueError):
        latency_ms(model, (1, 4, 4), runs=0)


def test_compare_models_records_every_seed_and_summarises():
    train, test = BlobFaces(n=48, size=16, seed=0), BlobFaces(n=24, size=16, seed=1)
    records, models = compare_models(
        ["cnn_small", "gru_rows"], train, None, test,
        seeds={"cnn_small": (0, 1), "gru_rows": (0,)},
        fit_kwargs={"epochs": 1, "batch_size": 16, "monitor": "train_loss"},
        device="cpu", latency_runs=2,
    )
    assert [(r["model"], r["seed"]) for r in records] == [("cnn_small", 0), ("cnn_small", 1), ("gru_rows", 0)]
    assert set(models) == {("cnn_small", 0), ("cnn_small", 1), ("gru_rows", 0)}
    assert all(0 <= r["accuracy"] <= 1 and r["parameters"] > 0 and r["flops"] > 0 for r in records)
    summary = summarize_runs(records).set_index("model")
    assert summary.loc["cnn_small", "n"] == 2 and summary.loc["gru_rows", "n"] == 1
    assert math.isnan(summary.loc["gru_rows", "accuracy_low"])
    cnn = summary.loc["cnn_small"]
    assert cnn["accuracy_low"] <= cnn["accuracy"] <= cnn["accuracy_high"]


def test_compare_models_measures_cost_of_landmark_video_models():
    import ferlib

    clips = [ferlib.load_dataset("synthfer", split=s, size=8, task="video-basic", frames=3, image_size=24)
             for s in ("train", "val", "test")]
    records, _ = compare_models(["gru"], *clips, seeds=[0], model_kwargs={"gru": {"features": "landmarks"}},
                                fit_kwargs={"epochs": 1}, latency_runs=1)
    assert records[0]["flops"] > 0 and records[0]["latency_ms"] > 0
