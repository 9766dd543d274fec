"""Batching samples ``(x, y)`` or ``(x, y, meta)``: tensors are stacked, metadata kept as a list."""

from __future__ import annotations

from collections.abc import Sequence

import torch


def collate_samples(batch: Sequence[tuple]) -> tuple:
    """Stack images/clips and labels; keep ``meta`` dicts as a list (their keys may differ).

    Returns ``(x, y)`` or ``(x, y, metas)``, matching the samples' arity.
    """
    first = batch[0]
    if not isinstance(first, (tuple, list)) or len(first) not in (2, 3):
        raise ValueError(
            f"a sample must be (x, y) or (x, y, meta), got {type(first).__name__}"
            + (f" of length {len(first)}" if isinstance(first, (tuple, list)) else "")
        )
    shapes = {tuple(sample[0].shape) for sample in batch}
    if len(shapes) > 1:
        raise ValueError(f"samples in a batch have different shapes {sorted(shapes)}; resize them first")
    x = torch.stack([torch.as_tensor(sample[0]) for sample in batch])
    y = torch.as_tensor([int(sample[1]) for sample in batch], dtype=torch.long)
    if len(first) == 2:
        return x, y
    return x, y, [sample[2] for sample in batch]
