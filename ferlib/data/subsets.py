"""Sized, stratified views of a dataset, so a profile can cap how much data a chapter uses."""

from __future__ import annotations

import numpy as np
from torch.utils.data import Dataset, Subset

from ferlib.data.splits import dataset_labels
from ferlib.profiles import get_profile


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
    **options,
) -> Dataset:
    """The ``split`` of ``dataset`` at the size the ``profile`` allows.

    SynthFER is generated at the profile's size; a real dataset is read from ``data_dir`` by
    :func:`ferlib.data.datasets.load_split` (which derives a split the layout lacks by the
    standard protocol) and, except in the ``full`` profile, capped to a stratified sample of
    that size.
    """
    from ferlib.data.datasets import load_split
    from ferlib.data.registry import load_dataset
    from ferlib.data.splits import stratified_holdout

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
    data = load_split(dataset, split, root=data_dir, seed=seed, **options)
    if settings.name != "full" and len(data) > size:
        _, sample = stratified_holdout(dataset_labels(data), size / len(data), seed)
        data = data.subset(sample) if hasattr(data, "subset") else LabelledSubset(data, sample)
    return data
