"""Sized, stratified views of a dataset, so a profile can cap how much data a chapter uses."""

from __future__ import annotations

import numpy as np
from torch.utils.data import Dataset, Subset

from ferlib.profiles import get_profile


class LabelledSubset(Subset):
    """A ``Subset`` that keeps ``labels``, ``num_classes`` and ``class_names`` of its dataset."""

    def __init__(self, dataset: Dataset, indices):
        super().__init__(dataset, list(int(i) for i in indices))
        parent = np.asarray(_labels_of(dataset))
        self.labels = parent[np.asarray(self.indices, dtype=np.int64)] if len(self.indices) else parent[:0]
        self.num_classes = getattr(dataset, "num_classes", None)
        self.class_names = getattr(dataset, "class_names", None)


def _labels_of(dataset: Dataset):
    labels = getattr(dataset, "labels", None)
    if labels is None:
        labels = [int(dataset[i][1]) for i in range(len(dataset))]
    return labels


def stratified_sample(labels, size: int, seed: int = 0) -> np.ndarray:
    """``size`` indices drawn without replacement, each class in proportion to its frequency."""
    labels = np.asarray(labels)
    if size >= len(labels):
        return np.arange(len(labels))
    rng = np.random.default_rng(seed)
    classes, counts = np.unique(labels, return_counts=True)
    quota = np.floor(counts / counts.sum() * size).astype(int)
    # Hand the remainder to the classes with the largest fractional parts.
    remainder = size - quota.sum()
    order = np.argsort(-(counts / counts.sum() * size - quota), kind="stable")
    quota[order[:remainder]] += 1
    chosen = [rng.choice(np.flatnonzero(labels == c), q, replace=False) for c, q in zip(classes, quota)]
    return np.sort(np.concatenate(chosen))


def load_profile_split(
    dataset: str,
    split: str,
    profile: str = "quick",
    data_dir: str | None = None,
    *,
    task: str = "static",
    seed: int = 0,
    **options,
) -> Dataset:
    """The ``split`` of ``dataset`` at the size the ``profile`` allows.

    SynthFER is generated at the profile's size; a real dataset is read from ``data_dir`` and,
    except in the ``full`` profile, capped to a stratified sample of that size.
    """
    from ferlib.data.registry import load_dataset

    settings = get_profile(profile)
    video = task != "static"
    sizes = {
        "train": settings.clip_train_size if video else settings.train_size,
        "val": settings.clip_test_size if video else settings.val_size,
        "test": settings.clip_test_size if video else settings.test_size,
    }
    size = sizes.get(split, sizes["test"])
    if dataset.lower() == "synthfer":
        return load_dataset("synthfer", split=split, size=size, task=task, **options)
    data = load_dataset(dataset, split=split, root=data_dir, **options)
    if settings.name != "full" and len(data) > size:
        data = LabelledSubset(data, stratified_sample(_labels_of(data), size, seed))
    return data
