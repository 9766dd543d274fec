"""Sized, stratified views of a dataset, so a profile can cap how much data a chapter uses."""

from __future__ import annotations

import numpy as np
from torch.utils.data import Dataset, Subset

from ferlib.config import get_profile
from ferlib.data.splits import dataset_labels, stratified_holdout


class LabelledSubset(Subset):
    """A ``Subset`` that keeps ``labels``, ``num_classes`` and ``class_names`` of its dataset."""

    def __init__(self, dataset: Dataset, indices):
        super().__init__(dataset, list(int(i) for i in indices))
        parent = dataset_labels(dataset)
        self.labels = parent[np.asarray(self.indices, dtype=np.int64)] if len(self.indices) else parent[:0]
        self.num_classes = getattr(dataset, "num_classes", None)
        self.class_names = getattr(dataset, "class_names", None)


def load_profile_split(
    dataset: str,
    split: str,
    profile: str = "quick",
    data_dir: str | None = None,
    *,
    task: str = "static",
    seed: int = 0,
    size: int | None = None,
    **options,
) -> Dataset:
    """The ``split`` of ``dataset`` at the size the ``profile`` allows, or at ``size`` when given.

    The one chain from a dataset's name to the data a chapter, ``ferlib train`` or a grid uses.
    SynthFER is generated at that size; a real dataset is read from ``data_dir`` by
    :func:`ferlib.data.real.load_split` (which derives a split the layout lacks by the
    standard protocol) and capped to a stratified sample of that size (except in the ``full``
    profile without ``size``, which keeps the whole split).
    """
    from ferlib.data.real import load_split
    from ferlib.data.registry import load_dataset

    settings = get_profile(profile)
    video = task != "static"
    sizes = {
        "train": settings.clip_train_size if video else settings.train_size,
        "val": settings.clip_test_size if video else settings.val_size,
        "test": settings.clip_test_size if video else settings.test_size,
    }
    cap = settings.name != "full" or size is not None
    size = int(size) if size is not None else sizes.get(split, sizes["test"])
    if dataset.lower() == "synthfer":
        return load_dataset("synthfer", split=split, size=size, task=task, **options)
    data = load_split(dataset, split, root=data_dir, seed=seed, **options)
    return stratified_cap(data, size, seed) if cap else data


def stratified_cap(data: Dataset, size: int, seed: int = 0) -> Dataset:
    """``data`` itself if it holds at most ``size`` samples, else a stratified sample of that size."""
    if len(data) <= size:
        return data
    _, sample = stratified_holdout(dataset_labels(data), size / len(data), seed)
    return data.subset(sample) if hasattr(data, "subset") else LabelledSubset(data, sample)
