"""Batching samples ``(x, y)`` or ``(x, y, meta)``: tensors are stacked, metadata kept as a list.

:func:`make_loader` is the one place ferlib builds a ``DataLoader`` (training, evaluation and the
analyses all batch through it), with :func:`collate_samples` as its collate function.

Video clips ``[T, C, H, W]`` of different lengths are zero-padded at the end to the longest
clip of the batch. Each clip's true length then reaches the model through the metadata:
``meta["num_frames"]`` (in a copy of the sample's meta dict) and
:func:`ferlib.models.base.forward_kwargs`, which turns it into ``lengths=`` for video models.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import torch
from torch.utils.data import DataLoader, Dataset

__all__ = ["collate_samples", "make_loader"]


def collate_samples(batch: Sequence[tuple]) -> tuple:
    """Stack images/clips and labels; keep ``meta`` dicts as a list (their keys may differ).

    Returns ``(x, y)`` or ``(x, y, metas)``, matching the samples' arity. Video clips
    (4-D samples ``[T, C, H, W]``) may differ in ``T``: they are zero-padded to the longest,
    and every sample's meta (a copy; ``{}`` if it had none) gets ``"num_frames": T_i``. Clips
    of different lengths given as ``(x, y)`` come back as ``(x, y, metas)`` so the lengths
    are not lost. Other shape differences raise a ``ValueError``.
    """
    first = batch[0]
    if not isinstance(first, (tuple, list)) or len(first) not in (2, 3):
        raise ValueError(
            f"a sample must be (x, y) or (x, y, meta), got {type(first).__name__}"
            + (f" of length {len(first)}" if isinstance(first, (tuple, list)) else "")
        )
    tensors = [torch.as_tensor(sample[0]) for sample in batch]
    shapes = {tuple(t.shape) for t in tensors}
    is_video = all(t.dim() == 4 for t in tensors)
    if len(shapes) > 1 and not (is_video and len({shape[1:] for shape in shapes}) == 1):
        raise ValueError(f"samples in a batch have different shapes {sorted(shapes)}; resize them first")
    if len(shapes) > 1:
        x = torch.nn.utils.rnn.pad_sequence(tensors, batch_first=True)  # zeros after each clip's end
    else:
        x = torch.stack(tensors)
    y = torch.as_tensor([int(sample[1]) for sample in batch], dtype=torch.long)
    if len(first) == 2 and len(shapes) == 1:
        return x, y
    metas = [sample[2] if len(sample) == 3 else None for sample in batch]
    if is_video:
        metas = [
            {**(meta if isinstance(meta, Mapping) else {}), "num_frames": int(t.shape[0])}
            for meta, t in zip(metas, tensors, strict=True)
        ]
    return x, y, metas


def make_loader(
    data,
    batch_size: int,
    *,
    shuffle: bool = False,
    num_workers: int = 0,
    pin_memory: bool = False,
    sample_weights=None,
) -> DataLoader:
    """A ``DataLoader`` over ``data`` batched by :func:`collate_samples` (``data`` itself if it
    already is a loader).

    ``shuffle`` and ``sample_weights`` (one non-negative weight per sample: batches drawn with
    replacement by a ``WeightedRandomSampler``) draw from the loader's own ``torch.Generator``,
    which a caller reseeds through ``loader.generator`` (``fit`` does every epoch); without
    either, the order is the dataset's. Workers persist between epochs when ``num_workers > 0``.
    An empty dataset gives an empty loader: callers say what that means for them.
    """
    if isinstance(data, DataLoader):
        return data
    if not isinstance(data, Dataset) and not hasattr(data, "__getitem__"):
        raise TypeError(f"expected a Dataset or DataLoader, got {type(data).__name__}")
    generator = torch.Generator() if shuffle or sample_weights is not None else None
    sampler = None
    if sample_weights is not None:
        weights = torch.as_tensor(sample_weights, dtype=torch.double)
        sampler = torch.utils.data.WeightedRandomSampler(weights, len(data), generator=generator)
    return DataLoader(
        data,
        batch_size=batch_size,
        shuffle=shuffle and sampler is None,
        sampler=sampler,
        generator=generator,
        num_workers=num_workers,
        collate_fn=collate_samples,
        pin_memory=pin_memory,
        persistent_workers=num_workers > 0,
    )
