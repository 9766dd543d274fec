"""What every real dataset shares: :class:`FaceDataset` (decoded samples in memory), the
:class:`RealDataset` constructor steps (find the layout, pick the split, decode), class-name
mapping and the constants of the layouts."""

from __future__ import annotations

import csv
import os
import warnings
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path

import numpy as np
import torch
from torch.utils.data import Dataset

from ferlib.data.labels import EMOTIONS
from ferlib.data.real._decode import DecodeOptions, Record, decode_all
from ferlib.data.splits import subject_independent_split
from ferlib.errors import ConfigError, DataError, MissingSplitError

SPLITS = ("train", "val", "test", "all")
IMAGE_SUFFIXES = (".jpg", ".jpeg", ".png", ".bmp", ".tif", ".tiff", ".webp", ".pgm", ".ppm")
# Video files that OpenCV (its FFmpeg backend) reads; ferlib.deploy reads the same list.
VIDEO_SUFFIXES = (".mp4", ".avi", ".mov", ".mkv", ".webm", ".mpg", ".mpeg", ".m4v", ".wmv")
CONTEMPT = "contempt"

# Spellings that datasets use for ferlib's classes.
ALIASES: dict[str, str] = {
    "anger": "angry",
    "disgusted": "disgust",
    "fearful": "fear",
    "happiness": "happy",
    "sadness": "sad",
    "surprised": "surprise",
    "suprise": "surprise",  # sic, in some FER2013 folder copies
}


# ----------------------------------------------------------------------------- the dataset


class FaceDataset(Dataset):
    """Images or clips decoded into memory, with labels and per-sample metadata.

    ``dataset[i]`` is ``(x, y, meta)``: ``x`` float32 ``[C, H, W]`` (or ``[T, C, H, W]``) in
    [0, 1] after ``transform``, ``y`` an int, ``meta`` a dict (``subject``, ``group``, ``file``...).

    Attributes: ``labels`` (LongTensor of all labels), ``num_classes``, ``class_names``,
    ``subjects`` (list, ``None`` where unknown), ``metas``, ``split``, ``root``, ``protocol``
    (how the split was made), ``derived_from`` (the official split that a split the layout
    lacks was carved out of, e.g. ``"train"``; ``None`` for an official split), ``skipped``
    and ``no_face`` (files left out or kept uncropped).
    """

    name = "faces"
    derived_from: str | None = None

    def __init__(
        self,
        images: torch.Tensor,
        labels: Sequence[int] | torch.Tensor,
        metas: Sequence[dict] | None = None,
        *,
        class_names: Sequence[str] = EMOTIONS,
        split: str = "all",
        root: str | None = None,
        transform: Callable | None = None,
        protocol: str = "",
        skipped: Sequence[tuple[str, str]] = (),
        no_face: Sequence[str] = (),
        name: str | None = None,
    ) -> None:
        self._set_data(
            images, labels, metas, class_names=class_names, split=split, root=root, transform=transform,
            protocol=protocol, skipped=skipped, no_face=no_face, name=name
        )

    def _set_data(
        self,
        images,
        labels,
        metas,
        *,
        class_names,
        split,
        root,
        transform,
        protocol,
        skipped=(),
        no_face=(),
        name=None,
    ) -> None:
        if images.dtype != torch.uint8 or images.ndim not in (4, 5):
            raise ValueError("images must be a uint8 tensor [N, C, H, W] or [N, T, C, H, W]")
        self.images = images
        self.labels = torch.as_tensor(np.asarray(labels, dtype=np.int64)).reshape(-1)
        if len(self.labels) != len(images):
            raise ValueError(f"{len(images)} images but {len(self.labels)} labels")
        self.metas = [dict(m) for m in metas] if metas is not None else [{} for _ in range(len(images))]
        self.class_names = tuple(class_names)
        self.num_classes = len(self.class_names)
        self.split = split
        self.root = None if root is None else str(root)
        self.transform = transform
        self.protocol = protocol
        self.skipped = list(skipped)
        self.no_face = list(no_face)
        if name is not None:
            self.name = name

    def __len__(self) -> int:
        return len(self.labels)

    def __getitem__(self, index: int):
        x = self.images[index].float().div_(255.0)
        if self.transform is not None:
            x = self.transform(x)
        return x, int(self.labels[index]), dict(self.metas[index])

    @property
    def is_video(self) -> bool:
        return self.images.ndim == 5

    @property
    def subjects(self) -> list:
        return [m.get("subject") for m in self.metas]

    @property
    def sample_shape(self) -> tuple[int, ...]:
        return tuple(self.images.shape[1:])

    def class_counts(self) -> dict[str, int]:
        """Samples per class name, in class order."""
        counts = torch.bincount(self.labels, minlength=self.num_classes).tolist()
        return dict(zip(self.class_names, counts, strict=True))

    def subset(
        self,
        indices,
        *,
        split: str | None = None,
        protocol: str | None = None,
        transform: Callable | None | str = "same",
    ) -> FaceDataset:
        """A new dataset holding the samples at ``indices`` (tensor data are copied), carved from
        the same official split as this one (``derived_from``)."""
        index = torch.as_tensor(np.asarray(indices, dtype=np.int64)).reshape(-1)
        part = FaceDataset(
            self.images[index],
            self.labels[index],
            [self.metas[i] for i in index.tolist()],
            class_names=self.class_names,
            split=split or self.split,
            root=self.root,
            transform=self.transform if transform == "same" else transform,
            protocol=self.protocol if protocol is None else protocol,
            name=self.name,
        )
        part.derived_from = self.derived_from
        return part

    def extra_repr(self) -> str:
        return (
            f"split={self.split!r}, root={self.root!r}, samples={len(self)}, shape={list(self.sample_shape)}"
        )

    def __repr__(self) -> str:
        lines = [
            f"{type(self).__name__}({self.name})",
            f"    split: {self.split}",
            f"    samples: {len(self)}",
            f"    shape: {list(self.sample_shape)}",
        ]
        if self.root:
            lines.append(f"    root: {self.root}")
        if self.protocol:
            lines.append(f"    protocol: {self.protocol}")
        if self.transform is not None:
            lines.append(f"    transform: {self.transform!r}")
        return "\n".join(lines)


# ----------------------------------------------------------------------------- shared helpers


def emotion_classes(keep_contempt: bool) -> tuple[str, ...]:
    return EMOTIONS + ((CONTEMPT,) if keep_contempt else ())


def label_id(
    name: str, class_names: Sequence[str], label_map: Mapping[str, str | None] | None, keep_contempt: bool
) -> int | None:
    """A dataset class name -> a ferlib label id, or None for a class that is dropped."""
    key = str(name).strip().lower()
    if label_map is not None and key in label_map:
        if label_map[key] is None:
            return None
        key = str(label_map[key]).strip().lower()
    key = ALIASES.get(key, key)
    if key == CONTEMPT and not keep_contempt:
        return None
    if key not in class_names:
        raise DataError(
            f"unknown class {name!r}: expected one of {', '.join(class_names)} "
            "(or map it with label_map={...})"
        )
    return list(class_names).index(key)


def find_root(
    root, name: str, layout: str, source: str, probes: Sequence[str], subfolders: Sequence[str] = ()
) -> Path:
    """The folder under ``root`` that holds one of ``probes``; else a DataError describing the layout."""
    if root is None:
        root = os.environ.get("FERLIB_DATA_DIR")
    if root is None:
        raise DataError(
            f"{name} needs root=<folder>. Expected layout:\n{layout}\nObtain it from {source}; "
            "ferlib never downloads it."
        )
    base = Path(root).expanduser()
    candidates = [base] + [base / sub for sub in subfolders]
    for candidate in candidates:
        if any((candidate / probe).exists() for probe in probes):
            return candidate
    state = "does not exist" if not base.exists() else "does not hold the expected files"
    raise DataError(
        f"{name}: {base} {state}. Expected layout:\n{layout}\nObtain it from {source}; "
        "ferlib never downloads it."
    )


def check_split(split: str) -> None:
    if split not in SPLITS:
        raise ConfigError.unknown("split", split, SPLITS)


def _select(
    records: list[Record], split: str, *, name: str, root: Path, fractions, split_seed: int
) -> tuple[list[Record], str]:
    """Records of ``split``: the official split where the layout has one, else a subject-independent one."""
    check_split(split)
    if split == "all":
        return [r for r in records if r.source is not None], "all samples"
    official = {r.split for r in records if r.split in ("train", "val", "test")}
    if official:
        # Records without a source are placeholders for rows of other splits (kept for row order).
        chosen = [r for r in records if r.split == split and r.source is not None]
        if split not in official:
            available = [s for s in ("train", "val", "test") if s in set(official)]
            raise MissingSplitError(
                f"{name} at {root} has no {split!r} split (it has: {', '.join(available)}). "
                "ferlib.data.load_split / load_splits derive a missing one by the standard protocol "
                "(a stratified hold-out of train for val; val as test).",
                available,
            )
        return chosen, f"official {split} split"
    labels = [r.label for r in records]
    subjects = [r.meta.get("subject") for r in records]
    parts = subject_independent_split(labels, tuple(fractions), split_seed, subjects=subjects)
    has_subjects = any(s is not None for s in subjects)
    protocol = (
        f"{'subject-independent' if has_subjects else 'stratified'} {split} part of a "
        f"{'/'.join(str(f) for f in fractions)} split, seed {split_seed}"
    )
    return [records[i] for i in parts[split]], protocol


class RealDataset(FaceDataset):
    """Shared constructor: scan the layout into records, pick the split, decode, keep in memory."""

    name = "real"
    LAYOUT = ""
    SOURCE = ""

    def _add_skipped(self, skipped: list) -> None:
        """Record rows left out while reading labels (before decoding), with one warning."""
        if skipped:
            warnings.warn(f"skipped {len(skipped)} malformed row(s), e.g. {skipped[0][1]}", stacklevel=3)
        self.skipped = list(skipped) + self.skipped

    def _load(
        self,
        records: list[Record],
        root: Path,
        split: str,
        decode: DecodeOptions,
        *,
        class_names,
        transform,
        fractions=(0.7, 0.1, 0.2),
        split_seed=0,
        extra="",
    ) -> None:
        """Pick ``split`` from ``records`` (see :func:`_select`), decode it by ``decode`` and hold
        it; ``extra`` names what else the records depend on (label options), for the cache key."""
        decode.check()
        if not records:
            raise DataError(
                f"{self.name}: found no labelled samples under {root}. Expected layout:\n{self.LAYOUT}"
            )
        chosen, protocol = _select(
            records, split, name=self.name, root=root, fractions=fractions, split_seed=split_seed
        )
        images, labels, metas, skipped, no_face = decode_all(chosen, decode, f"{self.name}-{split}-{extra}")
        self._set_data(
            images, labels, metas, class_names=class_names, split=split, root=str(root), transform=transform,
            protocol=protocol, skipped=skipped, no_face=no_face
        )


def read_csv_rows(path: Path, on_corrupt: str, skipped: list):
    """Yield ``(line_number, row dict)`` with stripped, lower-case column names."""
    with open(path, newline="", encoding="utf-8-sig") as handle:
        reader = csv.reader(handle)
        try:
            header = next(reader)
        except StopIteration:
            raise DataError(f"{path} is empty") from None
        columns = [c.strip().lower() for c in header]
        for row in reader:
            if not row or all(not cell.strip() for cell in row):
                continue
            if len(row) != len(columns):
                message = f"{path}, line {reader.line_num}: expected {len(columns)} fields, found {len(row)}"
                if on_corrupt == "raise":
                    raise DataError(message + " (pass on_corrupt='skip' to leave such rows out)")
                skipped.append((f"{path} line {reader.line_num}", message))
                continue
            yield reader.line_num, dict(zip(columns, (cell.strip() for cell in row), strict=True))


def label_map_key(label_map) -> str:
    return repr(sorted((label_map or {}).items(), key=str))


def subject_options(options: dict) -> tuple:
    fractions = tuple(options.pop("fractions", (0.7, 0.1, 0.2)))
    return fractions, int(options.pop("split_seed", 0))

