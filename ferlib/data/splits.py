"""Subject-independent splits, k-fold cross-validation and stratified hold-outs.

A FER model that has seen a person in training recognises that person's expressions more
easily, so papers that mix subjects across train and test report inflated accuracy. Every
split here keeps each subject on one side only, and stratifies by label where it can.
Datasets without subject ids (FER2013, RAF-DB, most folders) treat each image as its own
subject, which reduces to an ordinary stratified split.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence

import numpy as np

from ferlib.errors import DataError

__all__ = [
    "dataset_labels",
    "dataset_subjects",
    "stratified_holdout",
    "subject_independent_kfold",
    "subject_independent_split",
]


def dataset_labels(dataset) -> np.ndarray:
    """All labels of ``dataset`` as an int array: its ``labels`` attribute, else one pass over it."""
    labels = getattr(dataset, "labels", None)
    if labels is None:
        labels = [int(dataset[i][1]) for i in range(len(dataset))]
    return np.asarray(labels, dtype=np.int64).reshape(-1)


def dataset_subjects(dataset) -> np.ndarray:
    """Subject id of every sample as a string array.

    Reads the dataset's ``subjects`` attribute when it has one, else ``meta["subject"]`` of
    each sample. A sample without a subject id becomes its own subject (``"#<index>"``).
    """
    subjects = getattr(dataset, "subjects", None)
    if subjects is None:
        subjects = []
        for i in range(len(dataset)):
            sample = dataset[i]
            meta = sample[2] if len(sample) > 2 and isinstance(sample[2], dict) else {}
            subjects.append(meta.get("subject"))
    return np.asarray([f"#{i}" if s is None else str(s) for i, s in enumerate(subjects)], dtype=object)


def _as_labels_and_groups(dataset_or_labels, subjects) -> tuple[np.ndarray, np.ndarray]:
    if isinstance(dataset_or_labels, (np.ndarray, list, tuple)) or hasattr(dataset_or_labels, "numpy"):
        labels = np.asarray(dataset_or_labels, dtype=np.int64).reshape(-1)
        if subjects is None:
            groups = np.asarray([f"#{i}" for i in range(len(labels))], dtype=object)
        else:
            groups = np.asarray(
                [f"#{i}" if s is None else str(s) for i, s in enumerate(subjects)], dtype=object
            )
    else:
        labels = dataset_labels(dataset_or_labels)
        groups = (
            dataset_subjects(dataset_or_labels)
            if subjects is None
            else np.asarray([str(s) for s in subjects], dtype=object)
        )
    if len(groups) != len(labels):
        raise DataError(f"{len(labels)} labels but {len(groups)} subject ids")
    return labels, groups


def _folds(labels: np.ndarray, groups: np.ndarray, k: int, seed: int, stratify: bool):
    from sklearn.model_selection import GroupKFold, StratifiedGroupKFold  # 0.7 s to import: only when folding

    n_groups = len(set(groups.tolist()))
    if k < 2:
        raise ValueError(f"k must be at least 2, got {k}")
    if n_groups < k:
        raise DataError(f"cannot make {k} subject-independent folds from {n_groups} subjects")
    # StratifiedGroupKFold needs every class to have at least k groups to balance well, but it
    # still returns valid (subject-disjoint) folds otherwise; sklearn only warns.
    # sklearn refuses to stratify when every class has fewer than k members.
    if stratify and np.unique(labels, return_counts=True)[1].max() >= k:
        splitter = StratifiedGroupKFold(n_splits=k, shuffle=True, random_state=seed)
    else:
        # GroupKFold has no shuffle before sklearn 1.6; permute the groups' names instead.
        rng = np.random.default_rng(seed)
        names = np.unique(groups)
        renamed = dict(zip(names, rng.permutation(len(names)), strict=True))
        groups = np.asarray([renamed[g] for g in groups])
        splitter = GroupKFold(n_splits=k)
    import warnings

    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", message=".*least populated class.*")
        for train, test in splitter.split(np.zeros(len(labels)), labels, groups):
            yield np.sort(train), np.sort(test)


def subject_independent_kfold(
    dataset, k: int = 5, seed: int = 0, *, stratify: bool = True, subjects: Sequence | None = None
) -> Iterator[tuple[np.ndarray, np.ndarray]]:
    """Yield ``k`` pairs ``(train_indices, test_indices)`` with no subject on both sides.

    Parameters
    ----------
    dataset : a ferlib dataset (or any sequence of ``(x, y, meta)``), or an array of labels.
    k : number of folds; every index is in exactly one test fold.
    seed : shuffles which subjects go to which fold.
    stratify : balance the label distribution across folds where the subjects allow it.
    subjects : subject id per sample; default the dataset's ``subjects`` / ``meta["subject"]``.

    Examples
    --------
    >>> labels = [0, 1] * 10
    >>> subjects = [f"S{i // 2}" for i in range(20)]
    >>> folds = list(subject_independent_kfold(labels, k=5, subjects=subjects))
    >>> len(folds), sorted(int(i) for _, test in folds for i in test) == list(range(20))
    (5, True)
    """
    labels, groups = _as_labels_and_groups(dataset, subjects)
    yield from _folds(labels, groups, k, seed, stratify)


def subject_independent_split(
    dataset,
    fractions: tuple[float, float, float] = (0.7, 0.1, 0.2),
    seed: int = 0,
    *,
    stratify: bool = True,
    subjects: Sequence | None = None,
) -> dict[str, np.ndarray]:
    """Split indices into ``{"train", "val", "test"}`` with no subject in two parts.

    ``fractions`` (train, val, test) are met approximately: whole subjects move together.
    A zero fraction gives an empty part.

    Examples
    --------
    >>> parts = subject_independent_split([0, 1, 2] * 20, seed=0)
    >>> sorted(parts), sum(len(p) for p in parts.values())
    (['test', 'train', 'val'], 60)
    """
    if len(fractions) != 3 or any(f < 0 for f in fractions) or sum(fractions) <= 0:
        raise ValueError(f"fractions must be three non-negative numbers (train, val, test), got {fractions}")
    total = float(sum(fractions))
    _, f_val, f_test = (f / total for f in fractions)
    labels, groups = _as_labels_and_groups(dataset, subjects)
    everything = np.arange(len(labels))
    empty = np.zeros(0, dtype=np.int64)

    def carve(indices: np.ndarray, fraction: float, salt: int) -> tuple[np.ndarray, np.ndarray]:
        if fraction <= 0 or len(indices) == 0:
            return indices, empty
        if fraction >= 1:
            return empty, indices
        k = max(2, int(round(1.0 / fraction)))
        sub_groups = groups[indices]
        if len(set(sub_groups.tolist())) < k:
            k = len(set(sub_groups.tolist()))
            if k < 2:
                raise DataError("too few subjects to split into train/val/test; give fewer parts")
        rest, held = next(_folds(labels[indices], sub_groups, k, seed + salt, stratify))
        return indices[rest], indices[held]

    remaining, test = carve(everything, f_test, 0)
    val_share = f_val / max(1e-12, 1.0 - f_test)
    train, val = carve(remaining, val_share, 1)
    return {"train": np.sort(train), "val": np.sort(val), "test": np.sort(test)}


def stratified_holdout(labels, fraction: float = 0.1, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """Hold out ``fraction`` of each class: returns ``(keep_indices, holdout_indices)``, both sorted.

    Used to carve a validation set out of a training split when a layout has none of its own
    (e.g. FER2013 without PrivateTest: train on 90% of Training, select on the other 10%,
    report on PublicTest). Each class with at least two samples gives at least one.

    Examples
    --------
    >>> keep, held = stratified_holdout([0] * 90 + [1] * 10, fraction=0.1, seed=0)
    >>> len(keep), len(held)
    (90, 10)
    """
    if not 0.0 < fraction < 1.0:
        raise ValueError(f"fraction must be in (0, 1), got {fraction}")
    labels = np.asarray(labels, dtype=np.int64).reshape(-1)
    rng = np.random.default_rng(seed)
    held: list[np.ndarray] = []
    for label in np.unique(labels):
        members = np.flatnonzero(labels == label)
        n_held = int(round(fraction * len(members)))
        if n_held == 0 and len(members) >= 2:
            n_held = 1
        n_held = min(n_held, len(members) - 1) if len(members) > 1 else 0
        held.append(rng.permutation(members)[:n_held])
    holdout = np.sort(np.concatenate(held)) if held else np.zeros(0, dtype=np.int64)
    keep = np.setdiff1d(np.arange(len(labels)), holdout)
    return keep, holdout
