"""The standard split protocols: :func:`load_split` derives a split that a layout lacks (val as
a hold-out of train, the official val as test), :func:`load_splits` gives all three."""

from __future__ import annotations

from collections.abc import Callable

import numpy as np
from torch.utils.data import Dataset

from ferlib.data.real.base import RealDataset, check_split
from ferlib.data.registry import load_dataset
from ferlib.data.splits import stratified_holdout, subject_independent_split
from ferlib.errors import DataError, MissingSplitError

__all__ = ["load_split", "load_splits"]


def _holdout(train: Dataset, fraction: float, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """Indices (keep, held) of ``train``: subject-independent if it has subjects, else stratified."""
    subjects = list(getattr(train, "subjects", None) or [])
    if subjects and any(s is not None for s in subjects):
        parts = subject_independent_split(train, (1.0 - fraction, fraction, 0.0), seed)
        return parts["train"], parts["val"]
    return stratified_holdout(np.asarray(train.labels), fraction, seed)


def _missing_splits(name: str, root, options: dict) -> set[str]:
    """Which of val/test the layout lacks (a lacking split fails before decoding anything)."""
    missing = set()
    for probe in ("val", "test"):
        try:
            load_dataset(name, split=probe, root=root, **options)  # decoded once, then held in memory
        except MissingSplitError:
            missing.add(probe)
    return missing


def load_split(
    name: str, split: str, root=None, *, val_fraction: float = 0.1, seed: int = 0, **options
) -> Dataset:
    """Like :func:`~ferlib.data.registry.load_dataset`, but a split that the layout lacks is
    derived by the standard protocol instead of raising:

    - no ``val`` (RAF-DB): val is a stratified ``val_fraction`` of train (subject-independent
      when subjects are known) and train is the rest;
    - no ``test`` but a ``val`` (AffectNet; the FER2013 folder copy without PrivateTest): the
      official val becomes test, and val is carved from train as above.

    ``dataset.protocol`` says what was done, and ``dataset.derived_from`` is ``"train"`` for the
    two parts carved out of train. ``val_fraction=0`` holds nothing out: train is then the whole
    official train split, and a val the layout lacks cannot be made. Layouts without official
    splits, and SynthFER, are passed through unchanged.
    """
    check_split(split)
    if not 0.0 <= val_fraction < 1.0:
        raise ValueError(f"val_fraction must be in [0, 1), got {val_fraction}")
    from ferlib.data.registry import _DATASETS

    factory = _DATASETS.get(name.lower())
    if split == "all" or not (isinstance(factory, type) and issubclass(factory, RealDataset)):
        return load_dataset(name, split=split, root=root, **options)
    missing = _missing_splits(name, root, options)
    if not missing:
        return load_dataset(name, split=split, root=root, **options)
    if missing == {"val", "test"}:
        raise DataError(f"{name} at {root} has neither a val nor a test split; nothing to report on")
    if split == "test":
        if "test" not in missing:
            return load_dataset(name, split="test", root=root, **options)
        test = load_dataset(name, split="val", root=root, **options)
        test.split, test.protocol = "test", "test: the official val split (the layout has no test split)"
        return test
    if val_fraction == 0.0:  # nothing held out: refused before train is decoded for nothing
        if split == "val":
            raise DataError(f"{name} at {root} has no val split, and val_fraction=0 holds none out of train")
        return load_dataset(name, split="train", root=root, **options)
    train = load_dataset(name, split="train", root=root, **options)
    keep, held = _holdout(train, val_fraction, seed)
    kind = "subject-independent" if any(s is not None for s in train.subjects) else "stratified"
    how = f"{kind} {val_fraction:g} hold-out of the official train split, seed {seed}"
    if split == "val":
        part = train.subset(held, split="val", protocol=f"val: {how}")
    else:
        part = train.subset(keep, split="train", protocol=f"train: the official train split less the {how}")
    part.derived_from = "train"
    return part


def load_splits(
    name: str,
    root=None,
    *,
    val_fraction: float = 0.1,
    seed: int = 0,
    train_transform: Callable | None | str = "same",
    **options,
) -> dict[str, Dataset]:
    """``{"train", "val", "test"}`` by :func:`load_split`; ``train_transform`` (e.g. an
    augmentation) replaces ``transform`` on the train part only.

    Examples
    --------
    >>> parts = load_splits("fer2013", root="/data/fer2013")  # doctest: +SKIP
    >>> {k: len(v) for k, v in parts.items()}  # doctest: +SKIP
    {'train': 25838, 'val': 2871, 'test': 3589}
    """
    parts = {
        split: load_split(name, split, root, val_fraction=val_fraction, seed=seed, **options)
        for split in ("train", "val", "test")
    }
    if train_transform != "same":
        parts["train"].transform = train_transform
    return parts

