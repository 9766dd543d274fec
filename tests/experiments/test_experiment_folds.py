"""Subject-independent K-fold cross-validation of one run: ``ferlib train --folds K --fold I``."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch

from ferlib.cli import main
from ferlib.data.registry import _DATASETS, register_dataset
from ferlib.data.splits import dataset_subjects
from ferlib.experiments.run import fold_data, training_data
from tests.conftest import BlobFaces


class _NoSubjects(BlobFaces):
    """The blobs without subject ids, as FER2013 or RAF-DB images."""

    def __getitem__(self, index: int):
        image, label, _ = super().__getitem__(index)
        return image, label, {}


if "test-blobs-no-subjects" not in _DATASETS:
    register_dataset("test-blobs-no-subjects")(lambda split="train", root=None, **options: _NoSubjects(n=40))


def _config(**overrides) -> dict:
    return {"dataset": "test-blobs", "profile": "smoke", "folds": 5, "fold": 1, **overrides}


def _subjects(part) -> set[str]:
    return set(dataset_subjects(part).tolist())


def test_each_fold_keeps_subjects_apart_and_the_folds_cover_the_pool():
    tested = []
    for fold in range(1, 6):
        train, val, test = fold_data(_config(fold=fold))
        assert len(train) and len(val) and len(test)
        assert not _subjects(train) & _subjects(test)
        assert not _subjects(val) & (_subjects(train) | _subjects(test))
        tested += list(test.indices)
    pool_size = len(BlobFaces(n=96))  # test-blobs has no "all" split: its train split is the pool
    assert sorted(tested) == list(range(pool_size))


def test_training_data_follows_the_fold_keys_and_the_seed_moves_the_partition():
    train, val, test = training_data(_config(fold=2))
    assert list(test.indices) == list(fold_data(_config(fold=2))[2].indices)
    moved = [list(fold_data(_config(fold=2, seed=seed))[2].indices) for seed in (1, 2, 3)]
    assert any(indices != list(test.indices) for indices in moved)


def test_augmentation_reaches_the_training_part_only():
    def mark(x):
        return torch.full_like(x, 7.0)

    # SynthFER (which applies transforms; the blobs do not): its train split is the pool.
    config = _config(dataset="synthfer", image_size=16, sizes={"train": 40}, folds=2)
    train, val, test = fold_data(config, transform=mark)
    assert len(train) + len(val) + len(test) == 40
    assert float(train[0][0].max()) == 7.0
    assert float(val[0][0].max()) < 7.0 and float(test[0][0].max()) < 7.0


@pytest.mark.parametrize(
    "overrides, message",
    [
        ({"fold": 6}, "between 1 and 5"),
        ({"fold": 0}, "between 1 and 5"),
        ({"fold": None}, "both folds and fold"),
        ({"folds": 1}, "folds must be an integer >= 2"),
        ({"folds": 9}, "cannot make 9 subject-independent folds from 5 subjects"),
        ({"dataset": "test-blobs-no-subjects"}, "no subject ids"),
    ],
)
def test_bad_fold_settings_fail_clearly(overrides, message):
    with pytest.raises(ValueError, match=message):
        fold_data(_config(**overrides))


def _train_args(tmp_path, *extra: str) -> list[str]:
    return [
        "train",
        "--dataset",
        "test-blobs",
        "--profile",
        "smoke",
        "--epochs",
        "1",
        "--batch-size",
        "16",
        "--out",
        str(tmp_path / "run"),
        "--results",
        str(tmp_path / "results.sqlite"),
        "--no-progress",
        "--device",
        "cpu",
        *extra,
    ]


def test_cli_trains_one_fold_and_stores_it(tmp_path, capsys):
    assert main(_train_args(tmp_path, "--folds", "5", "--fold", "3")) == 0
    report = json.loads((tmp_path / "run" / "metrics.json").read_text())
    assert report["config"]["folds"] == 5 and report["config"]["fold"] == 3
    assert 0.0 <= report["metrics"]["test_accuracy"] <= 1.0
    _, _, test = fold_data(_config(fold=3))
    assert report["metrics"]["test_n"] == len(test)
    capsys.readouterr()
    assert main(["runs", "--results", str(tmp_path / "results.sqlite"), "--format", "json"]) == 0
    stored = json.loads(capsys.readouterr().out)
    assert [run["config.fold"] for run in stored] == [3]


def test_cli_without_folds_keeps_the_config_unchanged(tmp_path):
    assert main(_train_args(tmp_path)) == 0
    config = json.loads((tmp_path / "run" / "metrics.json").read_text())["config"]
    assert "folds" not in config and "fold" not in config


@pytest.mark.parametrize(
    "extra, message",
    [
        (("--folds", "5", "--fold", "6"), "fold must be between 1 and 5"),
        (("--fold", "2"), "both folds and fold"),
        (("--folds", "5", "--fold", "1", "--dataset", "test-blobs-no-subjects"), "no subject ids"),
    ],
)
def test_cli_fold_errors_are_one_line(tmp_path, capsys, extra, message):
    assert main(_train_args(tmp_path, *extra)) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and message in err[0], err
    assert not np.any([(tmp_path / "run" / name).exists() for name in ("best.ckpt", "metrics.json")])
