"""Subject-independent splits, k-fold and stratified hold-outs."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from ferlib.data.real import FaceDataset
from ferlib.data.splits import (
    dataset_subjects,
    stratified_holdout,
    subject_independent_kfold,
    subject_independent_split,
)
from ferlib.errors import DataError


def _dataset(subjects=12, per_subject=7, seed=0):
    """Each subject shows every class once (as in CK+-style posed data)."""
    rng = np.random.default_rng(seed)
    n = subjects * per_subject
    labels = np.tile(np.arange(per_subject) % 7, subjects)
    metas = [{"subject": f"S{i // per_subject:03d}"} for i in range(n)]
    images = torch.from_numpy(rng.integers(0, 256, (n, 1, 8, 8), dtype=np.uint8))
    return FaceDataset(images, labels, metas)


@pytest.mark.parametrize("k", [2, 3, 5])
def test_kfold_has_no_subject_on_both_sides_and_covers_everything(k):
    data = _dataset()
    subjects = np.asarray(data.subjects)
    folds = list(subject_independent_kfold(data, k=k, seed=1))
    assert len(folds) == k
    tested = np.concatenate([test for _, test in folds])
    assert sorted(tested.tolist()) == list(range(len(data)))
    for train, test in folds:
        assert not set(subjects[train]) & set(subjects[test])
        assert len(train) + len(test) == len(data)


def test_kfold_is_stratified_and_reproducible():
    labels = np.repeat([0, 1], [60, 20])
    subjects = [f"S{i}" for i in range(80)]  # one image per subject
    folds = list(subject_independent_kfold(labels, k=4, seed=3, subjects=subjects))
    for _, test in folds:
        assert np.mean(labels[test] == 1) == pytest.approx(0.25, abs=0.05)
    again = list(subject_independent_kfold(labels, k=4, seed=3, subjects=subjects))
    assert all(np.array_equal(a[1], b[1]) for a, b in zip(folds, again, strict=True))
    other = list(subject_independent_kfold(labels, k=4, seed=4, subjects=subjects))
    assert any(not np.array_equal(a[1], b[1]) for a, b in zip(folds, other, strict=True))


def test_kfold_needs_enough_subjects():
    with pytest.raises(DataError, match="3 subjects"):
        list(subject_independent_kfold([0, 1, 2], k=5, subjects=["a", "b", "c"]))


def test_samples_without_subject_are_their_own_subject():
    data = FaceDataset(
        torch.zeros(4, 1, 2, 2, dtype=torch.uint8), [0, 1, 0, 1], [{"subject": "A"}, {}, {}, {}]
    )
    assert dataset_subjects(data).tolist() == ["A", "#1", "#2", "#3"]


def test_train_val_test_split_is_subject_disjoint():
    data = _dataset(subjects=20)
    parts = subject_independent_split(data, (0.6, 0.2, 0.2), seed=0)
    subjects = np.asarray(data.subjects)
    sets = {name: set(subjects[index]) for name, index in parts.items()}
    assert (
        not sets["train"] & sets["val"]
        and not sets["train"] & sets["test"]
        and not sets["val"] & sets["test"]
    )
    assert sum(len(index) for index in parts.values()) == len(data)
    assert len(sets["test"]) == 4 and len(sets["val"]) == 4  # whole subjects, 20% each


def test_split_with_empty_val():
    parts = subject_independent_split(list(range(5)) * 4, (0.8, 0.0, 0.2), seed=0)
    assert len(parts["val"]) == 0 and len(parts["train"]) == 16 and len(parts["test"]) == 4


def test_stratified_holdout_keeps_class_proportions():
    labels = np.repeat(np.arange(7), [3995, 436, 4097, 7215, 4830, 3171, 4965])
    keep, held = stratified_holdout(labels, 0.1, seed=0)
    assert len(keep) + len(held) == len(labels) and not set(keep) & set(held)
    for label, count in enumerate([3995, 436, 4097, 7215, 4830, 3171, 4965]):
        assert np.sum(labels[held] == label) == round(0.1 * count)
    assert np.array_equal(held, stratified_holdout(labels, 0.1, seed=0)[1])
    with pytest.raises(ValueError):
        stratified_holdout(labels, 1.5)
