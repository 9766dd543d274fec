"""Which images a run selects its checkpoint on and reports: refused when they would mislead,
recorded in metrics.json otherwise."""

from __future__ import annotations

import json

import cv2
import numpy as np
import pytest

from ferlib.cli import main
from ferlib.data import EMOTIONS
from ferlib.errors import DataError
from ferlib.experiments.run import training_data


@pytest.fixture
def fer_copy_without_private_test(tmp_path):
    """FER2013 in the Kaggle folder layout with Training and PublicTest only, like ../shared's copy."""
    rng = np.random.default_rng(0)
    root = tmp_path / "fer2013"
    for name in EMOTIONS:
        for usage, folder, count in (("Training", "train", 10), ("PublicTest", "test", 2)):
            for i in range(count):
                path = root / folder / name / f"{usage}_{i}.jpg"
                path.parent.mkdir(parents=True, exist_ok=True)
                assert cv2.imwrite(str(path), rng.integers(0, 256, (48, 48), dtype=np.uint8))
    return root


def config(root, **overrides) -> dict:
    return {"dataset": "fer2013", "data_dir": str(root), "profile": "smoke", **overrides}


def test_reporting_a_split_carved_out_of_training_is_refused(fer_copy_without_private_test):
    # without PrivateTest, the loader's 'val' is a hold-out of Training and 'test' is PublicTest
    with pytest.raises(DataError, match=r"report_split 'val' of fer2013 .* is not an official split but stratified"):
        training_data(config(fer_copy_without_private_test, val_split="holdout", report_split="val"))
    train, val, report = training_data(config(fer_copy_without_private_test))
    assert {meta["usage"] for _, _, meta in report} == {"PublicTest"}
    assert {meta["usage"] for _, _, meta in val} == {"Training"}
    assert len(train) + len(val) == 70 and len(report) == 14


def test_selecting_on_the_reported_split_is_refused(fer_copy_without_private_test):
    with pytest.raises(DataError, match="chosen on the split it reports"):
        training_data(config(fer_copy_without_private_test, val_split="val", report_split="val"))


def test_metrics_json_says_what_each_split_held(fer_copy_without_private_test, tmp_path):
    out = tmp_path / "run"
    args = ["train", "--dataset", "fer2013", "--data-dir", str(fer_copy_without_private_test), "--profile", "smoke",
            "--model", "cnn_small", "--epochs", "1", "--device", "cpu", "--no-progress", "--out", str(out),
            "--results", str(tmp_path / "r.sqlite")]
    assert main(args) == 0
    splits = json.loads((out / "metrics.json").read_text())["splits"]
    assert splits["train"]["n"] + splits["selection"]["n"] == 70
    assert "hold-out of the official train split" in splits["selection"]["protocol"]
    assert splits["report"] == {"n": 14, "protocol": "test: the official val split (the layout has no test split)",
                                "usage": {"PublicTest": 14}}


def test_the_guard_reads_where_a_split_came_from_not_its_wording(fer_copy_without_private_test):
    from ferlib.data.real import load_split
    from ferlib.experiments.run import _check_report_split

    root = fer_copy_without_private_test
    val = load_split("fer2013", "val", root)
    assert val.derived_from == "train" and load_split("fer2013", "train", root).derived_from == "train"
    assert load_split("fer2013", "test", root).derived_from is None  # PublicTest, an official split
    assert val.subset([0, 1]).derived_from == "train"  # a profile's sample of it still says so
    val.protocol = ""  # reworded or lost, the hold-out is still refused as a report split
    with pytest.raises(DataError, match="not an official split but part of the official train split"):
        _check_report_split(config(root, val_split="holdout", report_split="val"), val)


def test_without_selection_the_whole_official_train_split_trains(fer_copy_without_private_test):
    from ferlib.data.real import load_split

    root = fer_copy_without_private_test
    train, val, report = training_data(config(root, val_split="none"))
    assert val is None and len(train) == 70 and {meta["usage"] for _, _, meta in train} == {"Training"}
    assert {meta["usage"] for _, _, meta in report} == {"PublicTest"}
    assert getattr(train, "derived_from", None) is None
    with pytest.raises(DataError, match="val_fraction=0 holds none out of train"):
        load_split("fer2013", "val", root, val_fraction=0.0)
    with pytest.raises(ValueError, match=r"val_fraction must be in \[0, 1\), got 1.5"):
        load_split("fer2013", "train", root, val_fraction=1.5)
    with pytest.raises(ValueError, match="unknown val_split 'hold-out': expected one of val, holdout, none"):
        training_data(config(root, val_split="hold-out"))


def test_a_run_without_selection_reports_its_last_epoch(fer_copy_without_private_test, tmp_path):
    import torch

    from ferlib.models.checkpoint import read_checkpoint

    out = tmp_path / "run"
    args = ["train", "--dataset", "fer2013", "--data-dir", str(fer_copy_without_private_test), "--profile", "smoke",
            "--model", "cnn_small", "--epochs", "2", "--lr", "0.05", "--val-split", "none", "--device", "cpu",
            "--no-progress", "--out", str(out), "--results", str(tmp_path / "r.sqlite")]
    assert main(args) == 0
    run = json.loads((out / "metrics.json").read_text())
    assert run["splits"]["train"]["n"] == 70 and run["splits"]["selection"] is None
    assert run["metrics"]["best_epoch"] == 2 and run["metrics"]["best_val"] is None
    best, last = (read_checkpoint(out / name) for name in ("best.ckpt", "last.ckpt"))
    assert best["epoch"] == last["epoch"] == 2
    assert all(torch.equal(best["state_dict"][key], value) for key, value in last["state_dict"].items())
