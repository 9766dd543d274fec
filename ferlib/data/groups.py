"""The demographic groups of samples: ``meta["group"][attribute]``, one attribute or several.

SynthFER records skin tone, age and gender presentation; real datasets read them from a
``groups.csv`` (ImageFolder) or their attribute files. The analyses (:mod:`ferlib.fairness`) and
the training remedies (:mod:`ferlib.engine.losses`) read groups through these functions.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import pandas as pd

SEPARATOR = " / "  # joins the values of several attributes into one group key


def _attributes(attribute: str | Sequence[str]) -> list[str]:
    attributes = [attribute] if isinstance(attribute, str) else list(attribute)
    if not attributes:
        raise ValueError("give at least one group attribute")
    return attributes


def group_key(meta: dict, attribute: str | Sequence[str]) -> str:
    """The group of one sample as a string: ``meta["group"][attribute]``, several joined by ``" / "``."""
    group = meta.get("group") or {}
    values = []
    for name in _attributes(attribute):
        if name not in group:
            known = ", ".join(sorted(group)) or "none"
            raise KeyError(f"sample has no group attribute {name!r} (its meta['group'] has: {known})")
        values.append(str(group[name]))
    return SEPARATOR.join(values)


def dataset_groups(dataset, attribute: str | Sequence[str]) -> pd.Series | pd.DataFrame:
    """The group of every sample: a Series for one attribute, a DataFrame (one column each) for several.

    Reads SynthFER's ``group_frame()``, a FaceDataset's ``metas``, the parent of a ``Subset``, or
    else ``meta["group"]`` of each sample (one pass over the data). A sample without the
    attribute raises a ``KeyError`` naming the attributes it has.
    """
    attributes = _attributes(attribute)
    frame = _group_frame(dataset, attributes)
    return frame[attributes[0]] if isinstance(attribute, str) else frame


def _group_frame(dataset, attributes: list[str]) -> pd.DataFrame:
    if hasattr(dataset, "group_frame"):
        frame = dataset.group_frame()
        missing = [a for a in attributes if a not in frame]
        if missing:
            raise KeyError(f"{type(dataset).__name__} has no group attribute {missing[0]!r}")
        return frame[attributes].reset_index(drop=True)
    if hasattr(dataset, "dataset") and hasattr(dataset, "indices"):  # torch Subset and LabelledSubset
        parent = _group_frame(dataset.dataset, attributes)
        return parent.iloc[np.asarray(dataset.indices, dtype=np.int64)].reset_index(drop=True)
    metas = getattr(dataset, "metas", None)
    if metas is None:
        metas = []
        for index in range(len(dataset)):
            sample = dataset[index]
            metas.append(sample[2] if len(sample) > 2 and isinstance(sample[2], dict) else {})
    rows = []
    for index, meta in enumerate(metas):
        group = meta.get("group") or {}
        missing = [a for a in attributes if a not in group]
        if missing:
            known = ", ".join(sorted(group)) or "none"
            raise KeyError(f"sample {index} has no group attribute {missing[0]!r} (its meta['group'] has: {known})")
        rows.append({a: group[a] for a in attributes})
    return pd.DataFrame(rows, columns=attributes)


def as_groups(groups) -> tuple[np.ndarray, list[str]]:
    """Group keys (str array) and the attribute column names, from a Series, DataFrame or array."""
    if isinstance(groups, pd.DataFrame):
        columns = [str(c) for c in groups.columns]
        keys = groups.astype(str).agg(SEPARATOR.join, axis=1).to_numpy(dtype=object)
        return keys, columns
    name = getattr(groups, "name", None)
    values = np.asarray(groups, dtype=object).reshape(-1)
    return np.array([str(v) for v in values], dtype=object), [str(name) if name is not None else "group"]


def group_sample_weights(groups=None, labels=None) -> np.ndarray:
    """Per-sample weights that make every group (and/or class, or every (group, class) cell) equally
    likely when sampled: ``1 / count`` of the sample's cell, scaled to mean 1.

    ``group_sample_weights(groups)`` balances groups, ``group_sample_weights(labels=y)`` classes,
    both together the cells of their cross-tabulation.
    """
    if groups is None and labels is None:
        raise ValueError("give groups, labels or both")
    parts = []
    if groups is not None:
        parts.append(as_groups(groups)[0])
    if labels is not None:
        parts.append(np.asarray(labels).astype(str).astype(object).reshape(-1))
    cells = parts[0] if len(parts) == 1 else np.array([f"{g}|{y}" for g, y in zip(*parts, strict=True)], dtype=object)
    _, inverse, counts = np.unique(cells.astype(str), return_inverse=True, return_counts=True)
    weights = 1.0 / counts[inverse]
    return weights * len(weights) / weights.sum()
