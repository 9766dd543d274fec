"""Real FER datasets in their official layouts: FER2013, CK+, RAF-DB, AffectNet, and your own
image or video folders. Every loader is reached through ``load_dataset(name, split, root=...)``.

Nothing is downloaded: each loader reads local files and, when they are missing, says which
layout it expected and where the data comes from. Images are decoded once per split into a
uint8 tensor held in memory (and, with ``cache_dir=`` or ``$FERLIB_CACHE_DIR``, saved as a
``.pt`` file keyed by root, split and options, never inside the data root), so an epoch does
not decode JPEGs again.

Options shared by every loader
------------------------------
split : ``"train"``, ``"val"``, ``"test"`` or ``"all"``.
transform : callable applied to the float image/clip tensor of each sample.
image_size : output side in pixels (default 48); channels : 1 (grayscale, default) or 3 (RGB).
label_map : renames the dataset's class names first, e.g. ``{"contempt": None}`` drops a class,
    ``{"contempt": "disgust"}`` merges it; ``keep_contempt=True`` adds ``contempt`` as class 7.
on_corrupt : ``"raise"`` (default) or ``"skip"`` an unreadable image or malformed CSV row;
    skipped items are listed in ``dataset.skipped`` with the reason.
detect : run the face pipeline (detect, align, crop; :mod:`ferlib.data.faces`) on every image
    before resizing; ``on_no_face`` (``"keep"`` the whole image, ``"skip"`` or ``"raise"``)
    decides what happens when none is found, and ``dataset.no_face`` lists those files.
enhance : ``None``, ``"equalize"`` or ``"clahe"`` contrast enhancement, applied once at decoding.
cache_dir : folder for decoded tensors (default ``$FERLIB_CACHE_DIR`` if set, else memory only).
fractions, split_seed : the subject-independent (train, val, test) split used by layouts that
    have no official one (CK+, folders without split sub-folders).
"""

from __future__ import annotations

import csv
import hashlib
import os
import re
import warnings
from collections import OrderedDict
from collections.abc import Callable, Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path

import cv2
import numpy as np
import torch
from torch.utils.data import Dataset

from ferlib.data.faces import (
    NoFaceError,
    apply_clahe,
    crop_face,
    equalize_histogram,
    preprocess_face,
    read_image,
)
from ferlib.data.labels import EMOTIONS
from ferlib.data.registry import load_dataset, register_dataset
from ferlib.data.splits import stratified_holdout, subject_independent_split
from ferlib.errors import DataError

__all__ = [
    "AffectNet",
    "CKPlus",
    "FER2013",
    "FaceDataset",
    "ImageFolder",
    "MissingSplitError",
    "RAFDB",
    "VideoFolder",
    "load_split",
    "load_splits",
    "write_example_layout",
]

SPLITS = ("train", "val", "test", "all")
IMAGE_SUFFIXES = (".jpg", ".jpeg", ".png", ".bmp", ".tif", ".tiff", ".webp", ".pgm", ".ppm")
VIDEO_SUFFIXES = (".mp4", ".avi", ".mov", ".mkv", ".webm", ".mpg", ".mpeg", ".m4v")
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


class MissingSplitError(DataError):
    """The layout on disk has no such split (``available`` lists those it has)."""

    def __init__(self, message: str, available: Sequence[str] = ()) -> None:
        super().__init__(message)
        self.available = tuple(available)


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
            images,
            labels,
            metas,
            class_names=class_names,
            split=split,
            root=root,
            transform=transform,
            protocol=protocol,
            skipped=skipped,
            no_face=no_face,
            name=name,
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


# ----------------------------------------------------------------------------- records and decoding


@dataclass
class _Record:
    """One sample before decoding: where its pixels are and what we know about it."""

    kind: str  # "file", "pixels" (FER2013 CSV string), "frames" (list of files), "video" (file)
    source: object
    label: int
    meta: dict = field(default_factory=dict)
    split: str | None = None  # the official split, None when the layout has none
    box: tuple[int, int, int, int] | None = None  # a crop given by the dataset's annotations


@dataclass(frozen=True)
class _Decode:
    image_size: tuple[int, int] = (48, 48)
    channels: int = 1
    detect: bool = False
    on_no_face: str = "keep"
    enhance: str | None = None
    num_frames: int = 16
    margin: float = 0.1


def _size_pair(image_size) -> tuple[int, int]:
    if isinstance(image_size, int):
        return (image_size, image_size)
    height, width = image_size
    return (int(height), int(width))


def _finish(image: np.ndarray, settings: _Decode, box=None, source: str = "") -> tuple[np.ndarray, bool]:
    """Crop/detect, resize, convert and enhance one decoded image; returns ([C, H, W], face_found)."""
    found = True
    if settings.detect:
        try:
            tensor = preprocess_face(
                image,
                box,
                settings.image_size,
                channels=settings.channels,
                margin=settings.margin,
                source=source,
            )
            image = (tensor.permute(1, 2, 0).numpy() * 255.0).round().astype(np.uint8)
            image = image[:, :, 0] if settings.channels == 1 else image
        except NoFaceError:
            if settings.on_no_face == "raise":
                raise
            found = False
            image = crop_face(image, None)
    elif box is not None:
        image = crop_face(image, box)
    height, width = settings.image_size
    if image.shape[:2] != (height, width):
        shrinking = image.shape[0] > height or image.shape[1] > width
        image = cv2.resize(
            image, (width, height), interpolation=cv2.INTER_AREA if shrinking else cv2.INTER_LINEAR
        )
    if settings.channels == 1 and image.ndim == 3:
        image = cv2.cvtColor(image, cv2.COLOR_RGB2GRAY)
    elif settings.channels == 3 and image.ndim == 2:
        image = cv2.cvtColor(image, cv2.COLOR_GRAY2RGB)
    if settings.enhance == "equalize":
        image = equalize_histogram(image)
    elif settings.enhance == "clahe":
        image = apply_clahe(image)
    image = image[None] if image.ndim == 2 else image.transpose(2, 0, 1)
    return np.ascontiguousarray(image), found


def _pick_frames(count: int, num_frames: int) -> list[int]:
    """``num_frames`` indices spread evenly from the first frame to the last (repeats if short)."""
    if count <= 0:
        return []
    return [int(round(v)) for v in np.linspace(0, count - 1, num_frames)]


def _read_video(path: Path, num_frames: int, channels: int) -> list[np.ndarray]:
    capture = cv2.VideoCapture(str(path))
    if not capture.isOpened():
        raise DataError(f"cannot open video {path}: not a video file or no codec for it")
    frames = []
    try:
        while True:
            ok, frame = capture.read()
            if not ok:
                break
            frames.append(cv2.cvtColor(frame, cv2.COLOR_BGR2GRAY if channels == 1 else cv2.COLOR_BGR2RGB))
    finally:
        capture.release()
    if not frames:
        raise DataError(f"cannot decode video {path}: no frames could be read")
    return [frames[i] for i in _pick_frames(len(frames), num_frames)]


def _decode(record: _Record, settings: _Decode) -> tuple[np.ndarray, bool]:
    """Pixels of one record as uint8 ``[C, H, W]`` or ``[T, C, H, W]``."""
    read_channels = 1 if settings.channels == 1 and not settings.detect else 3
    if record.kind == "pixels":
        side = int(round(np.sqrt(record.source.size)))
        return _finish(record.source.reshape(side, side), settings, record.box, str(record.meta.get("row")))
    if record.kind == "file":
        image = read_image(record.source, read_channels)
        return _finish(image, settings, record.box, str(record.source))
    if record.kind in ("frames", "video"):
        if record.kind == "frames":
            paths = [record.source[i] for i in _pick_frames(len(record.source), settings.num_frames)]
            images = [read_image(p, read_channels) for p in paths]
            name = str(Path(record.source[0]).parent)
        else:
            images = _read_video(Path(record.source), settings.num_frames, read_channels)
            name = str(record.source)
        box = record.box
        found = True
        if settings.detect and box is None:
            # One box per clip, found on the middle frame: faces in FER clips barely move, and a
            # fixed crop keeps the motion the model should see.
            from ferlib.data.faces import detect_faces

            faces = detect_faces(images[len(images) // 2])
            if faces:
                box = faces[0].as_tuple()
            elif settings.on_no_face == "raise":
                raise NoFaceError(f"no face found in {name}")
            else:
                found = False
        clip_settings = _Decode(
            settings.image_size,
            settings.channels,
            False,
            settings.on_no_face,
            settings.enhance,
            settings.num_frames,
        )
        frames = [_finish(image, clip_settings, box, name)[0] for image in images]
        return np.stack(frames), found
    raise ValueError(f"unknown record kind {record.kind!r}")


def _source_name(record: _Record) -> str:
    if record.kind == "pixels":
        return f"{record.meta.get('file', 'CSV')} line {record.meta.get('line', '?')}"
    if record.kind == "frames":
        return str(Path(record.source[0]).parent)
    return str(record.source)


_MEMORY: OrderedDict[str, tuple] = OrderedDict()
_MEMORY_ENTRIES = 6


def _fingerprint(records: Sequence[_Record], settings: _Decode, extra: str) -> str:
    digest = hashlib.sha1(repr((settings, extra)).encode())
    for record in records:
        digest.update(repr((record.kind, record.label, record.box, record.split)).encode())
        sources = record.source if record.kind == "frames" else [record.source]
        for source in sources:
            if record.kind == "pixels":
                digest.update(source.tobytes())
                continue
            try:
                stat = os.stat(source)
                digest.update(f"{source}|{stat.st_size}|{stat.st_mtime_ns}".encode())
            except OSError:
                digest.update(f"{source}|missing".encode())
    return digest.hexdigest()[:20]


def _cache_dir(cache_dir) -> Path | None:
    folder = cache_dir if cache_dir is not None else os.environ.get("FERLIB_CACHE_DIR")
    return Path(folder).expanduser() if folder else None


def _decode_all(
    records: Sequence[_Record], settings: _Decode, *, on_corrupt: str, cache_dir, cache_name: str
) -> tuple[torch.Tensor, list[int], list[dict], list[tuple[str, str]], list[str]]:
    """Decode every record (in threads; OpenCV releases the GIL), skipping or raising on bad ones."""
    if on_corrupt not in ("raise", "skip"):
        raise ValueError(f"on_corrupt must be 'raise' or 'skip', got {on_corrupt!r}")
    if settings.on_no_face not in ("keep", "skip", "raise"):
        raise ValueError(f"on_no_face must be 'keep', 'skip' or 'raise', got {settings.on_no_face!r}")
    key = _fingerprint(records, settings, cache_name + on_corrupt)
    if key in _MEMORY:
        _MEMORY.move_to_end(key)
        return _MEMORY[key]
    folder = _cache_dir(cache_dir)
    cache_file = folder / f"{re.sub(r'[^A-Za-z0-9_.-]', '_', cache_name)}-{key}.pt" if folder else None
    if cache_file is not None and cache_file.is_file():
        try:
            stored = torch.load(cache_file, weights_only=True)
            result = (
                stored["images"],
                stored["labels"],
                stored["metas"],
                stored["skipped"],
                stored["no_face"],
            )
            return _remember(key, result)
        except Exception as error:  # a stale or truncated cache is rebuilt, never trusted
            warnings.warn(f"ignoring unreadable cache {cache_file}: {error}", stacklevel=3)

    def work(record):
        try:
            return _decode(record, settings)
        except DataError as error:  # NoFaceError included
            return error

    workers = max(1, min(8, os.cpu_count() or 1))
    with ThreadPoolExecutor(workers) as pool:
        results = list(pool.map(work, records, chunksize=64))
    images, labels, metas, skipped, no_face = [], [], [], [], []
    for record, result in zip(records, results, strict=True):
        if isinstance(result, NoFaceError):
            if settings.on_no_face == "raise":
                raise result
            no_face.append(_source_name(record))
            continue
        if isinstance(result, DataError):
            if on_corrupt == "raise":
                raise DataError(f"{result} (pass on_corrupt='skip' to leave such files out)") from result
            skipped.append((_source_name(record), str(result)))
            continue
        array, found = result
        if not found:
            no_face.append(_source_name(record))
            if settings.on_no_face == "skip":
                continue
        images.append(array)
        labels.append(record.label)
        metas.append(record.meta)
    if skipped:
        warnings.warn(
            f"skipped {len(skipped)} unreadable item(s), e.g. {skipped[0][0]}: {skipped[0][1]}", stacklevel=3
        )
    if no_face:
        warnings.warn(
            f"no face found in {len(no_face)} image(s), e.g. {no_face[0]} "
            f"({'left out' if settings.on_no_face == 'skip' else 'kept uncropped'})",
            stacklevel=3,
        )
    if images:
        stacked = torch.from_numpy(np.stack(images))
    else:
        frames = (settings.num_frames,) if records and records[0].kind in ("frames", "video") else ()
        stacked = torch.zeros((0, *frames, settings.channels, *settings.image_size), dtype=torch.uint8)
    result = (stacked, labels, metas, skipped, no_face)
    if cache_file is not None:
        try:
            cache_file.parent.mkdir(parents=True, exist_ok=True)
            partial = cache_file.with_suffix(f".{os.getpid()}.tmp")
            torch.save(
                {"images": stacked, "labels": labels, "metas": metas, "skipped": skipped, "no_face": no_face},
                partial,
            )
            os.replace(partial, cache_file)
        except OSError as error:
            warnings.warn(f"could not write the decoded-image cache {cache_file}: {error}", stacklevel=3)
    return _remember(key, result)


def _remember(key: str, result: tuple) -> tuple:
    _MEMORY[key] = result
    while len(_MEMORY) > _MEMORY_ENTRIES:
        _MEMORY.popitem(last=False)
    return result


# ----------------------------------------------------------------------------- shared helpers


def _class_names(keep_contempt: bool) -> tuple[str, ...]:
    return EMOTIONS + ((CONTEMPT,) if keep_contempt else ())


def _label_id(
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


def _find_root(
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


def _check_split(split: str) -> None:
    if split not in SPLITS:
        raise ValueError(f"unknown split {split!r}: expected one of {', '.join(SPLITS)}")


def _select(
    records: list[_Record], split: str, *, name: str, root: Path, fractions, split_seed: int
) -> tuple[list[_Record], str]:
    """Records of ``split``: the official split where the layout has one, else a subject-independent one."""
    _check_split(split)
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


class _RealDataset(FaceDataset):
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
        records: list[_Record],
        root: Path,
        split: str,
        *,
        class_names,
        transform,
        image_size,
        channels,
        on_corrupt,
        cache_dir,
        detect=False,
        on_no_face="keep",
        enhance=None,
        num_frames=16,
        fractions=(0.7, 0.1, 0.2),
        split_seed=0,
        extra="",
    ) -> None:
        if channels not in (1, 3):
            raise ValueError(f"channels must be 1 or 3, got {channels}")
        if enhance not in (None, "equalize", "clahe"):
            raise ValueError(f"enhance must be None, 'equalize' or 'clahe', got {enhance!r}")
        if not records:
            raise DataError(
                f"{self.name}: found no labelled samples under {root}. Expected layout:\n{self.LAYOUT}"
            )
        chosen, protocol = _select(
            records, split, name=self.name, root=root, fractions=fractions, split_seed=split_seed
        )
        settings = _Decode(_size_pair(image_size), channels, detect, on_no_face, enhance, num_frames)
        images, labels, metas, skipped, no_face = _decode_all(
            chosen,
            settings,
            on_corrupt=on_corrupt,
            cache_dir=cache_dir,
            cache_name=f"{self.name}-{split}-{extra}",
        )
        self._set_data(
            images,
            labels,
            metas,
            class_names=class_names,
            split=split,
            root=str(root),
            transform=transform,
            protocol=protocol,
            skipped=skipped,
            no_face=no_face,
        )


def _read_csv_rows(path: Path, on_corrupt: str, skipped: list):
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


def _groups_table(root: Path, groups_csv) -> dict[str, dict]:
    """``groups.csv`` (a ``file`` column, optional ``subject``, any attribute columns) by file name."""
    path = Path(groups_csv) if groups_csv is not None else root / "groups.csv"
    if not path.is_file():
        if groups_csv is not None:
            raise DataError(f"groups file {path} does not exist")
        return {}
    table: dict[str, dict] = {}
    for line, row in _read_csv_rows(path, "raise", []):
        name = row.pop("file", None) or row.pop("filename", None) or row.pop("path", None)
        if not name:
            raise DataError(f"{path}, line {line}: needs a 'file' column naming the image or clip")
        table[name.replace("\\", "/")] = row
    return table


def _join_group(meta: dict, relative: str, table: Mapping[str, dict]) -> dict:
    row = table.get(relative) or table.get(Path(relative).name) or table.get(Path(relative).stem)
    if row:
        row = dict(row)
        subject = row.pop("subject", None)
        if subject:
            meta["subject"] = subject
        if row:
            meta["group"] = row
    return meta


def _map_key(label_map) -> str:
    return repr(sorted((label_map or {}).items(), key=str))


def _subject_options(options: dict) -> tuple:
    fractions = tuple(options.pop("fractions", (0.7, 0.1, 0.2)))
    return fractions, int(options.pop("split_seed", 0))


# ----------------------------------------------------------------------------- FER2013

_CSV_MEMORY: OrderedDict[tuple, tuple] = OrderedDict()
_FER_USAGE = {"training": "train", "publictest": "val", "privatetest": "test"}


@register_dataset("fer2013")
class FER2013(_RealDataset):
    """FER2013 (Goodfellow et al. 2013): 35,887 48x48 grayscale faces, 7 classes.

    Splits: ``train`` = Training (28,709), ``val`` = PublicTest (3,589), ``test`` = PrivateTest
    (3,589), the protocol papers report. Layouts (``root`` or ``root/fer2013``):

    - ``fer2013.csv`` (emotion, pixels, Usage) or ``icml_face_data.csv`` (emotion, " Usage",
      " pixels"); ``train.csv``/``test.csv`` of the Kaggle challenge (test.csv needs labels).
    - the image-folder copy ``train/<class>/Training_<id>.jpg``, ``test/<class>/PublicTest_<id>.jpg``
      (usage from the file-name prefix; an unprefixed file in ``test/`` counts as ``test``).

    ``labels="ferplus"`` takes FER+ majority-vote labels (Barsoum et al. 2016) from
    ``fer2013new.csv`` (in root, or ``ferplus_csv=``), CSV layouts only: images whose votes have
    no majority, or whose majority is unknown/not-a-face, are left out; contempt follows
    ``keep_contempt`` / ``label_map``.
    """

    name = "fer2013"
    LAYOUT = (
        "  <root>/fer2013.csv                      columns emotion, pixels, Usage\n"
        "  or <root>/icml_face_data.csv            columns emotion, ' Usage', ' pixels'\n"
        "  or <root>/train.csv (+ test.csv with labels)\n"
        "  or <root>/train/<class>/Training_<id>.jpg and <root>/test/<class>/PublicTest_<id>.jpg\n"
        "  (<root> may also be the folder above fer2013/)"
    )
    SOURCE = (
        "Kaggle: 'Challenges in Representation Learning: Facial Expression Recognition "
        "Challenge' (CSV) or the 'fer2013' image-folder dataset"
    )

    def __init__(
        self,
        root=None,
        split: str = "train",
        transform: Callable | None = None,
        *,
        image_size=48,
        channels: int = 1,
        labels: str = "fer2013",
        ferplus_csv=None,
        label_map=None,
        keep_contempt: bool = False,
        on_corrupt: str = "raise",
        cache_dir=None,
        enhance: str | None = None,
    ) -> None:
        _check_split(split)
        if labels not in ("fer2013", "ferplus"):
            raise ValueError(f"labels must be 'fer2013' or 'ferplus', got {labels!r}")
        base = _find_root(
            root,
            self.name,
            self.LAYOUT,
            self.SOURCE,
            ("fer2013.csv", "icml_face_data.csv", "train.csv", "train", "test"),
            ("fer2013",),
        )
        class_names = _class_names(keep_contempt)
        skipped: list = []
        csv_path = next(
            (base / n for n in ("fer2013.csv", "icml_face_data.csv") if (base / n).is_file()), None
        )
        if csv_path is not None or (base / "train.csv").is_file():
            paths = (
                [csv_path]
                if csv_path is not None
                else [p for p in (base / "train.csv", base / "test.csv") if p.is_file()]
            )
            records = self._csv_records(paths, split, on_corrupt, skipped)
            if labels == "ferplus":
                if csv_path is None:
                    raise DataError(
                        "FER+ labels need the full fer2013.csv / icml_face_data.csv (row-aligned)"
                    )
                records = self._ferplus(
                    records,
                    Path(ferplus_csv) if ferplus_csv else base / "fer2013new.csv",
                    class_names,
                    label_map,
                    keep_contempt,
                )
            elif label_map is not None or keep_contempt:
                records = self._remap(records, class_names, label_map, keep_contempt)
        else:
            if labels == "ferplus":
                raise DataError(
                    "FER+ labels align with the CSV rows; the image-folder layout has no row order. "
                    "Use fer2013.csv or icml_face_data.csv with fer2013new.csv"
                )
            records = self._folder_records(base, class_names, label_map, keep_contempt)
        self._load(
            records,
            base,
            split,
            class_names=class_names,
            transform=transform,
            image_size=image_size,
            channels=channels,
            on_corrupt=on_corrupt,
            cache_dir=cache_dir,
            enhance=enhance,
            extra=f"{labels}-{keep_contempt}-{_map_key(label_map)}",
        )
        self._add_skipped(skipped)

    @staticmethod
    def _csv_records(paths: list[Path], split: str, on_corrupt: str, skipped: list) -> list[_Record]:
        # Parsing the 290 MB CSV takes seconds; keep the parsed split while its file is unchanged.
        key = (tuple((str(p), p.stat().st_size, p.stat().st_mtime_ns) for p in paths), split, on_corrupt)
        if key not in _CSV_MEMORY:
            rows_skipped: list = []
            _CSV_MEMORY[key] = (FER2013._parse_csv(paths, split, on_corrupt, rows_skipped), rows_skipped)
            while len(_CSV_MEMORY) > 3:
                _CSV_MEMORY.popitem(last=False)
        records, rows_skipped = _CSV_MEMORY[key]
        skipped.extend(rows_skipped)
        # Copies: FER+ relabels records in place.
        return [_Record(r.kind, r.source, r.label, dict(r.meta), r.split, r.box) for r in records]

    @staticmethod
    def _parse_csv(paths: list[Path], split: str, on_corrupt: str, skipped: list) -> list[_Record]:
        records = []
        row_index = 0
        for path in paths:
            for file_row, (line, row) in enumerate(_read_csv_rows(path, on_corrupt, skipped)):
                index = row_index
                row_index += 1
                usage = row.get("usage")
                if usage is None and path.name == "train.csv":
                    usage = "Training"
                elif usage is None:  # Kaggle's test.csv: 3,589 PublicTest rows, then PrivateTest rows
                    usage = "PublicTest" if file_row < 3589 else "PrivateTest"
                wanted = _FER_USAGE.get(usage.lower())
                try:
                    if wanted is None:
                        raise DataError(f"Usage {usage!r} is not Training, PublicTest or PrivateTest")
                    if split != "all" and wanted != split:
                        records.append(
                            _Record("pixels", None, -1, {}, wanted)
                        )  # placeholder, keeps row order
                        continue
                    if not row.get("emotion"):
                        raise DataError(
                            f"no emotion label (columns: {', '.join(row)}); Kaggle's test.csv "
                            "has none, use fer2013.csv or icml_face_data.csv"
                        )
                    label = int(row["emotion"])
                    if not 0 <= label < len(EMOTIONS):
                        raise DataError(f"emotion {label} is not in 0..6")
                    with warnings.catch_warnings():
                        warnings.simplefilter("ignore", DeprecationWarning)
                        pixels = np.fromstring(row.get("pixels", ""), dtype=np.int64, sep=" ")
                    if pixels.size != 48 * 48 or pixels.min() < 0 or pixels.max() > 255:
                        raise DataError(
                            f"pixels must be 2304 numbers in 0..255, found {pixels.size} valid ones"
                        )
                except (DataError, ValueError) as error:
                    message = f"{path}, line {line}: {error}"
                    if on_corrupt == "raise":
                        raise DataError(
                            message + " (pass on_corrupt='skip' to leave such rows out)"
                        ) from None
                    skipped.append((f"{path} line {line}", message))
                    records.append(_Record("pixels", None, -1, {}, "skipped"))
                    continue
                meta = {"file": path.name, "line": line, "row": index, "usage": usage}
                records.append(_Record("pixels", pixels.astype(np.uint8), label, meta, wanted))
        return records

    @staticmethod
    def _remap(records, class_names, label_map, keep_contempt):
        kept = []
        for record in records:
            if record.source is None:
                kept.append(record)
                continue
            label = _label_id(EMOTIONS[record.label], class_names, label_map, keep_contempt)
            if label is not None:
                record.label = label
                kept.append(record)
        return kept

    @staticmethod
    def _ferplus(records, path: Path, class_names, label_map, keep_contempt) -> list[_Record]:
        if not path.is_file():
            raise DataError(
                f"FER+ labels file {path} not found: get fer2013new.csv from "
                "https://github.com/microsoft/FERPlus and put it next to fer2013.csv"
            )
        votes_columns = (
            "neutral",
            "happiness",
            "surprise",
            "sadness",
            "anger",
            "disgust",
            "fear",
            "contempt",
            "unknown",
            "nf",
        )
        rows = list(_read_csv_rows(path, "raise", []))
        if len(rows) != len(records):
            raise DataError(
                f"{path} has {len(rows)} rows but the FER2013 CSV has {len(records)}; "
                "they must be row-aligned"
            )
        kept = []
        for (line, row), record in zip(rows, records, strict=True):
            if record.source is None:
                kept.append(record)
                continue
            try:
                votes = np.array([float(row[c]) for c in votes_columns])
            except (KeyError, ValueError) as error:
                raise DataError(f"{path}, line {line}: bad vote counts ({error})") from None
            winner = int(np.argmax(votes))
            if votes.sum() <= 0 or votes[winner] * 2 <= votes.sum() or winner >= 8:
                continue
            label = _label_id(votes_columns[winner], class_names, label_map, keep_contempt)
            if label is None:
                continue
            record.label = label
            record.meta["labels"] = "ferplus"
            kept.append(record)
        return kept

    @staticmethod
    def _folder_records(base: Path, class_names, label_map, keep_contempt) -> list[_Record]:
        records = []
        for folder_name, default_split in (("train", "train"), ("test", "test"), ("val", "val")):
            folder = base / folder_name
            if not folder.is_dir():
                continue
            for class_dir in sorted(p for p in folder.iterdir() if p.is_dir()):
                label = _label_id(class_dir.name, class_names, label_map, keep_contempt)
                if label is None:
                    continue
                for path in sorted(class_dir.iterdir()):
                    if path.suffix.lower() not in IMAGE_SUFFIXES:
                        continue
                    prefix = path.name.split("_", 1)[0]
                    usage = prefix if prefix.lower() in _FER_USAGE else None
                    split = _FER_USAGE[usage.lower()] if usage else default_split
                    meta = {
                        "file": f"{folder_name}/{class_dir.name}/{path.name}",
                        "usage": usage or folder_name,
                    }
                    records.append(_Record("file", str(path), label, meta, split))
        return records


# ----------------------------------------------------------------------------- CK+

CKPLUS_CODES = ("neutral", "anger", "contempt", "disgust", "fear", "happy", "sadness", "surprise")


@register_dataset("ckplus")
class CKPlus(_RealDataset):
    """The extended Cohn-Kanade dataset (Lucey et al. 2010): posed sequences from neutral to apex.

    Layouts (``root`` or a folder below it):

    - official: ``cohn-kanade-images/S005/001/S005_001_00000001.png`` with
      ``Emotion/S005/001/S005_001_00000011_emotion.txt`` (code 0-7) and optional ``Landmarks/``
      (68 points, used to crop the face); only the 327 labelled sequences are used.
    - ``CK+48``: ``<class>/S010_004_00000017.png`` (48x48 crops of the last 3 frames).

    ``mode="static"``: the last ``last_k`` frames of each sequence with its emotion, plus the
    first frame as neutral when ``include_neutral``; ``mode="video"``: one clip per sequence,
    ``num_frames`` frames from neutral to apex, ``[T, C, H, W]``. Contempt is dropped unless
    ``keep_contempt=True`` or a ``label_map`` maps it. CK+ has no official split: ``train``,
    ``val``, ``test`` are subject-independent (``fractions``, ``split_seed``); meta holds
    ``subject`` (``S005``) and ``sequence``.
    """

    name = "ckplus"
    LAYOUT = (
        "  <root>/cohn-kanade-images/S005/001/S005_001_00000001.png ...\n"
        "  <root>/Emotion/S005/001/S005_001_00000011_emotion.txt   (one code 0-7)\n"
        "  [<root>/Landmarks/S005/001/S005_001_00000001_landmarks.txt]\n"
        "  or CK+48: <root>/<anger|contempt|disgust|fear|happy|sadness|surprise>/S010_004_00000017.png"
    )
    SOURCE = "the CK+ distribution site (https://www.jeffcohn.net/Resources/, licence agreement required)"

    def __init__(
        self,
        root=None,
        split: str = "all",
        transform: Callable | None = None,
        *,
        mode: str = "static",
        last_k: int = 3,
        include_neutral: bool = True,
        num_frames: int = 16,
        image_size=48,
        channels: int = 1,
        label_map=None,
        keep_contempt: bool = False,
        crop: str | None = "auto",
        on_corrupt: str = "raise",
        cache_dir=None,
        enhance: str | None = None,
        **options,
    ) -> None:
        _check_split(split)
        if mode not in ("static", "video"):
            raise ValueError(f"mode must be 'static' or 'video', got {mode!r}")
        if crop not in ("auto", "landmarks", "detect", None):
            raise ValueError(f"crop must be 'auto', 'landmarks', 'detect' or None, got {crop!r}")
        fractions, split_seed = _subject_options(options)
        if options:
            raise TypeError(f"unexpected options for ckplus: {', '.join(options)}")
        base = self._locate(root)
        class_names = _class_names(keep_contempt)
        official = (base / "cohn-kanade-images").is_dir()
        if official:
            records = self._official(
                base, mode, last_k, include_neutral, class_names, label_map, keep_contempt, crop
            )
            detect = crop == "detect" or (crop == "auto" and not (base / "Landmarks").is_dir())
        else:
            records = self._ck48(base, mode, class_names, label_map, keep_contempt)
            detect = crop == "detect"
        self._load(
            records,
            base,
            split,
            class_names=class_names,
            transform=transform,
            image_size=image_size,
            channels=channels,
            on_corrupt=on_corrupt,
            cache_dir=cache_dir,
            detect=detect,
            enhance=enhance,
            num_frames=num_frames,
            fractions=fractions,
            split_seed=split_seed,
            extra=f"{mode}-{last_k}-{include_neutral}-{keep_contempt}-{_map_key(label_map)}",
        )
        self.mode = mode

    def _locate(self, root) -> Path:
        if root is None and os.environ.get("FERLIB_DATA_DIR") is None:
            _find_root(None, self.name, self.LAYOUT, self.SOURCE, ())
        base = Path(root if root is not None else os.environ["FERLIB_DATA_DIR"]).expanduser()
        candidates = [base]
        if base.is_dir():
            children = sorted(p for p in base.iterdir() if p.is_dir())
            candidates += children + [g for c in children for g in sorted(c.iterdir()) if g.is_dir()]
        ck48_classes = {"anger", "disgust", "fear", "happy", "sadness", "surprise"}
        for candidate in candidates:
            if (candidate / "cohn-kanade-images").is_dir():
                return candidate
            names = (
                {p.name.lower() for p in candidate.iterdir() if p.is_dir()} if candidate.is_dir() else set()
            )
            if len(names & ck48_classes) >= 3:
                return candidate
        return _find_root(base, self.name, self.LAYOUT, self.SOURCE, ("cohn-kanade-images",))

    @staticmethod
    def _official(base, mode, last_k, include_neutral, class_names, label_map, keep_contempt, crop):
        images_root = base / "cohn-kanade-images"
        emotion_root = base / "Emotion"
        landmarks_root = base / "Landmarks"
        if not emotion_root.is_dir():
            raise DataError(f"ckplus: {base} has cohn-kanade-images/ but no Emotion/ folder of labels")
        records = []
        for label_file in sorted(emotion_root.rglob("*_emotion.txt")):
            subject, sequence = label_file.parent.parent.name, label_file.parent.name
            try:
                code = int(round(float(label_file.read_text().split()[0])))
                if not 0 <= code < len(CKPLUS_CODES):
                    raise ValueError(f"code {code} is not in 0..7")
            except (ValueError, IndexError) as error:
                raise DataError(f"malformed CK+ label file {label_file}: {error}") from None
            label = _label_id(CKPLUS_CODES[code], class_names, label_map, keep_contempt)
            frames = sorted(
                p
                for p in (images_root / subject / sequence).glob("*")
                if p.suffix.lower() in IMAGE_SUFFIXES and not p.name.startswith(".")
            )
            if not frames:
                raise DataError(
                    f"ckplus: {label_file} labels a sequence with no frames in "
                    f"{images_root / subject / sequence}"
                )
            box = None
            if crop in ("auto", "landmarks") and landmarks_root.is_dir():
                box = _landmark_box(landmarks_root / subject / sequence)
            meta = {"subject": subject, "sequence": f"{subject}_{sequence}"}
            if mode == "video":
                if label is not None:
                    records.append(_Record("frames", [str(p) for p in frames], label, dict(meta), None, box))
                continue
            if label is not None:
                for path in frames[-last_k:]:
                    records.append(_Record("file", str(path), label, {**meta, "file": path.name}, None, box))
            neutral = _label_id("neutral", class_names, label_map, keep_contempt)
            if include_neutral and neutral is not None:
                records.append(
                    _Record("file", str(frames[0]), neutral, {**meta, "file": frames[0].name}, None, box)
                )
        return records

    @staticmethod
    def _ck48(base, mode, class_names, label_map, keep_contempt):
        pattern = re.compile(r"^(S\d+)_(\d+)_(\d+)")
        by_sequence: dict[tuple, list] = {}
        records = []
        for class_dir in sorted(p for p in base.iterdir() if p.is_dir()):
            label = _label_id(class_dir.name, class_names, label_map, keep_contempt)
            if label is None:
                continue
            for path in sorted(class_dir.iterdir()):
                if path.suffix.lower() not in IMAGE_SUFFIXES:
                    continue
                match = pattern.match(path.name)
                if match is None:
                    raise DataError(f"ckplus: {path} is not named Sxxx_yyy_zzzzzzzz.png as in CK+48")
                subject, sequence = match.group(1), f"{match.group(1)}_{match.group(2)}"
                meta = {"subject": subject, "sequence": sequence, "file": f"{class_dir.name}/{path.name}"}
                if mode == "video":
                    by_sequence.setdefault((label, sequence, subject), []).append(str(path))
                else:
                    records.append(_Record("file", str(path), label, meta))
        for (label, sequence, subject), paths in sorted(by_sequence.items(), key=lambda item: item[0][1]):
            records.append(
                _Record("frames", sorted(paths), label, {"subject": subject, "sequence": sequence})
            )
        return records


def _landmark_box(folder: Path) -> tuple[int, int, int, int] | None:
    """A square box around a sequence's first-frame 68 landmarks, widened to take in the brow and chin."""
    files = sorted(folder.glob("*_landmarks.txt")) if folder.is_dir() else []
    if not files:
        return None
    try:
        points = np.loadtxt(files[0]).reshape(-1, 2)
    except ValueError as error:
        raise DataError(f"malformed CK+ landmarks file {files[0]}: {error}") from None
    (x0, y0), (x1, y1) = points.min(axis=0), points.max(axis=0)
    side = max(x1 - x0, y1 - y0) * 1.15
    cx, cy = (x0 + x1) / 2.0, (y0 + y1) / 2.0 - 0.05 * side
    return (int(cx - side / 2), int(cy - side / 2), int(side), int(side))


# ----------------------------------------------------------------------------- RAF-DB

RAFDB_CODES = {1: "surprise", 2: "fear", 3: "disgust", 4: "happy", 5: "sad", 6: "angry", 7: "neutral"}
RAFDB_GENDER = ("male", "female", "unsure")
RAFDB_RACE = ("caucasian", "african-american", "asian")
RAFDB_AGE = ("0-3", "4-19", "20-39", "40-69", "70+")


@register_dataset("rafdb")
class RAFDB(_RealDataset):
    """RAF-DB basic emotions (Li et al. 2017): 15,339 in-the-wild faces, 7 classes.

    Layout (``root`` or ``root/basic``): ``EmoLabel/list_patition_label.txt`` (sic; lines
    ``train_00001.jpg 5`` with codes 1-7), ``Image/aligned/train_00001_aligned.jpg`` (or
    ``Image/original/`` with ``aligned=False``) and, when present,
    ``Annotation/manual/train_00001_manu_attri.txt`` whose gender, race and age go to
    ``meta["group"]``. Splits: ``train`` and ``test`` are official; there is no ``val``
    (:func:`load_splits` carves one from train).
    """

    name = "rafdb"
    LAYOUT = (
        "  <root>/EmoLabel/list_patition_label.txt     lines 'train_00001.jpg 5' (1-7)\n"
        "  <root>/Image/aligned/train_00001_aligned.jpg  (or Image/original/train_00001.jpg)\n"
        "  [<root>/Annotation/manual/train_00001_manu_attri.txt  landmarks, gender, race, age]"
    )
    SOURCE = "the RAF-DB site (http://www.whdeng.cn/RAF/model1.html, agreement required)"

    def __init__(
        self,
        root=None,
        split: str = "train",
        transform: Callable | None = None,
        *,
        aligned: bool = True,
        attributes: bool = True,
        image_size=48,
        channels: int = 1,
        label_map=None,
        on_corrupt: str = "raise",
        cache_dir=None,
        enhance: str | None = None,
        detect: bool = False,
        on_no_face: str = "keep",
    ) -> None:
        _check_split(split)
        base = _find_root(root, self.name, self.LAYOUT, self.SOURCE, ("EmoLabel",), ("basic",))
        label_file = base / "EmoLabel" / "list_patition_label.txt"
        if not label_file.is_file():
            raise DataError(f"rafdb: {label_file} not found. Expected layout:\n{self.LAYOUT}")
        image_dir = base / "Image" / ("aligned" if aligned else "original")
        class_names = EMOTIONS
        records = []
        skipped: list = []
        for line_number, line in enumerate(label_file.read_text().splitlines(), start=1):
            if not line.strip():
                continue
            parts = line.split()
            try:
                if len(parts) != 2:
                    raise ValueError(f"expected '<file> <label>', found {line.strip()!r}")
                code = int(parts[1])
                if code not in RAFDB_CODES:
                    raise ValueError(f"label {code} is not in 1..7")
            except ValueError as error:
                message = f"{label_file}, line {line_number}: {error}"
                if on_corrupt == "raise":
                    raise DataError(message + " (pass on_corrupt='skip' to leave such rows out)") from None
                skipped.append((f"{label_file} line {line_number}", message))
                continue
            label = _label_id(RAFDB_CODES[code], class_names, label_map, False)
            if label is None:
                continue
            stem = Path(parts[0]).stem
            path = image_dir / (f"{stem}_aligned.jpg" if aligned else parts[0])
            meta = {"file": path.name}
            if attributes:
                group = _rafdb_attributes(base / "Annotation" / "manual" / f"{stem}_manu_attri.txt")
                if group:
                    meta["group"] = group
            records.append(
                _Record("file", str(path), label, meta, "train" if stem.startswith("train") else "test")
            )
        self._load(
            records,
            base,
            split,
            class_names=class_names,
            transform=transform,
            image_size=image_size,
            channels=channels,
            on_corrupt=on_corrupt,
            cache_dir=cache_dir,
            enhance=enhance,
            detect=detect,
            on_no_face=on_no_face,
            extra=f"{aligned}-{attributes}-{_map_key(label_map)}",
        )
        self._add_skipped(skipped)


def _rafdb_attributes(path: Path) -> dict | None:
    """Gender, race and age group from a RAF-DB manual attribute file (5 landmark lines, then 3 codes)."""
    if not path.is_file():
        return None
    rows = [line.split() for line in path.read_text().splitlines() if line.strip()]
    codes = [row[0] for row in rows if len(row) == 1]
    if len(codes) < 3:
        raise DataError(
            f"malformed RAF-DB attribute file {path}: expected gender, race and age codes "
            "after the landmark lines"
        )
    try:
        gender, race, age = (int(float(c)) for c in codes[-3:])
        return {"gender": RAFDB_GENDER[gender], "race": RAFDB_RACE[race], "age": RAFDB_AGE[age]}
    except (ValueError, IndexError):
        raise DataError(f"malformed RAF-DB attribute file {path}: codes {codes[-3:]} out of range") from None


# ----------------------------------------------------------------------------- AffectNet

AFFECTNET_CODES = ("neutral", "happy", "sad", "surprise", "fear", "disgust", "anger", "contempt")


@register_dataset("affectnet")
class AffectNet(_RealDataset):
    """AffectNet (Mollahosseini et al. 2019), manually annotated part, 7 or 8 classes.

    Layouts (``root`` or a folder below it):

    - CSV: ``Manually_Annotated_file_lists/training.csv`` and ``validation.csv`` (columns
      subDirectory_filePath, face_x, face_y, face_width, face_height, ..., expression) with
      images under ``Manually_Annotated_Images/`` (cropped to the face box given).
    - folder: ``train_set/images/<id>.jpg`` with ``train_set/annotations/<id>_exp.npy``, and
      ``val_set/...``; or class folders ``train/<class>/*.jpg``, ``val/<class>/*.jpg`` (class
      names, or AffectNet's codes 0-7).

    ``classes=7`` drops contempt, ``8`` keeps it (class 7); codes 8-10 (none, uncertain,
    no-face) are always dropped. ``train`` = training set, ``val`` = validation set; the test
    set is not public, so papers report on validation (:func:`load_splits` does this).
    """

    name = "affectnet"
    LAYOUT = (
        "  <root>/Manually_Annotated_file_lists/{training,validation}.csv\n"
        "    with images in <root>/Manually_Annotated_Images/\n"
        "  or <root>/{train_set,val_set}/images/<id>.jpg + annotations/<id>_exp.npy\n"
        "  or <root>/{train,val}/<class or code>/*.jpg"
    )
    SOURCE = "the AffectNet site (http://mohammadmahoor.com/affectnet/, agreement required)"

    def __init__(
        self,
        root=None,
        split: str = "train",
        transform: Callable | None = None,
        *,
        classes: int = 7,
        image_size=48,
        channels: int = 1,
        label_map=None,
        on_corrupt: str = "raise",
        cache_dir=None,
        enhance: str | None = None,
    ) -> None:
        _check_split(split)
        if classes not in (7, 8):
            raise ValueError(f"classes must be 7 or 8, got {classes}")
        keep = classes == 8
        class_names = _class_names(keep)
        base = _find_root(
            root,
            self.name,
            self.LAYOUT,
            self.SOURCE,
            ("Manually_Annotated_file_lists", "train_set", "train", "val_set"),
            ("Manually_Annotated", "AffectNet"),
        )
        skipped: list = []
        if (base / "Manually_Annotated_file_lists").is_dir():
            records = self._csv(base, class_names, label_map, keep, on_corrupt, skipped)
        elif (base / "train_set").is_dir() or (base / "val_set").is_dir():
            records = self._npy(base, class_names, label_map, keep, on_corrupt, skipped)
        else:
            records = []
            for folder, split_name in (("train", "train"), ("val", "val"), ("validation", "val")):
                if (base / folder).is_dir():
                    records += _class_folder_records(
                        base / folder,
                        split_name,
                        class_names,
                        label_map,
                        keep,
                        code_names=AFFECTNET_CODES,
                        relative_to=base,
                    )
        self._load(
            records,
            base,
            split,
            class_names=class_names,
            transform=transform,
            image_size=image_size,
            channels=channels,
            on_corrupt=on_corrupt,
            cache_dir=cache_dir,
            enhance=enhance,
            extra=f"{classes}-{_map_key(label_map)}",
        )
        self._add_skipped(skipped)

    @staticmethod
    def _code_label(code: int, class_names, label_map, keep):
        if not 0 <= code < len(AFFECTNET_CODES):
            return None  # 8 none, 9 uncertain, 10 no-face
        return _label_id(AFFECTNET_CODES[code], class_names, label_map, keep)

    def _csv(self, base, class_names, label_map, keep, on_corrupt, skipped):
        lists = base / "Manually_Annotated_file_lists"
        images = next(
            (
                p
                for p in (
                    base / "Manually_Annotated_Images",
                    base / "Manually_Annotated" / "Manually_Annotated_Images",
                )
                if p.is_dir()
            ),
            base / "Manually_Annotated_Images",
        )
        records = []
        for file_name, split_name in (("training.csv", "train"), ("validation.csv", "val")):
            path = lists / file_name
            if not path.is_file():
                continue
            for line, row in _read_csv_rows(path, on_corrupt, skipped):
                try:
                    code = int(float(row["expression"]))
                    box = tuple(int(float(row[c])) for c in ("face_x", "face_y", "face_width", "face_height"))
                    relative = row["subdirectory_filepath"]
                except (KeyError, ValueError) as error:
                    message = f"{path}, line {line}: bad or missing field ({error})"
                    if on_corrupt == "raise":
                        raise DataError(
                            message + " (pass on_corrupt='skip' to leave such rows out)"
                        ) from None
                    skipped.append((f"{path} line {line}", message))
                    continue
                label = self._code_label(code, class_names, label_map, keep)
                if label is None:
                    continue
                box = box if box[2] > 0 and box[3] > 0 else None
                records.append(
                    _Record("file", str(images / relative), label, {"file": relative}, split_name, box)
                )
        return records

    def _npy(self, base, class_names, label_map, keep, on_corrupt, skipped):
        records = []
        for folder, split_name in (("train_set", "train"), ("val_set", "val")):
            image_dir, annotations = base / folder / "images", base / folder / "annotations"
            if not image_dir.is_dir():
                continue
            for path in sorted(image_dir.iterdir()):
                if path.suffix.lower() not in IMAGE_SUFFIXES:
                    continue
                label_file = annotations / f"{path.stem}_exp.npy"
                try:
                    code = int(np.load(label_file).item())
                except (OSError, ValueError) as error:
                    message = f"AffectNet label {label_file} is missing or unreadable ({error})"
                    if on_corrupt == "raise":
                        raise DataError(message) from None
                    skipped.append((str(label_file), message))
                    continue
                label = self._code_label(code, class_names, label_map, keep)
                if label is not None:
                    records.append(
                        _Record(
                            "file", str(path), label, {"file": f"{folder}/images/{path.name}"}, split_name
                        )
                    )
        return records


def _class_folder_records(
    folder: Path,
    split_name,
    class_names,
    label_map,
    keep,
    *,
    code_names=None,
    relative_to: Path,
    groups: Mapping[str, dict] | None = None,
    videos: bool = False,
):
    records = []
    for class_dir in sorted(p for p in folder.iterdir() if p.is_dir()):
        class_name = class_dir.name
        if code_names is not None and class_name.isdigit():
            code = int(class_name)
            if not 0 <= code < len(code_names):
                continue
            class_name = code_names[code]
        label = _label_id(class_name, class_names, label_map, keep)
        if label is None:
            continue
        for path in sorted(class_dir.iterdir()):
            relative = path.relative_to(relative_to).as_posix()
            meta = {"file": relative}
            if groups:
                _join_group(meta, relative, groups)
            if not videos:
                if path.is_file() and path.suffix.lower() in IMAGE_SUFFIXES:
                    records.append(_Record("file", str(path), label, meta, split_name))
            elif path.is_dir():
                frames = sorted(str(p) for p in path.iterdir() if p.suffix.lower() in IMAGE_SUFFIXES)
                if frames:
                    records.append(_Record("frames", frames, label, meta, split_name))
            elif path.suffix.lower() in VIDEO_SUFFIXES:
                records.append(_Record("video", str(path), label, meta, split_name))
    return records


# ----------------------------------------------------------------------------- your own folders

_SPLIT_FOLDERS = {
    "train": "train",
    "training": "train",
    "val": "val",
    "valid": "val",
    "validation": "val",
    "test": "test",
    "testing": "test",
}


class _Folder(_RealDataset):
    VIDEOS = False

    def _folder(
        self,
        root,
        split,
        transform,
        image_size,
        channels,
        label_map,
        keep_contempt,
        groups_csv,
        on_corrupt,
        cache_dir,
        detect,
        on_no_face,
        enhance,
        num_frames,
        options,
    ) -> None:
        _check_split(split)
        fractions, split_seed = _subject_options(options)
        if options:
            raise TypeError(f"unexpected options for {self.name}: {', '.join(options)}")
        if root is None and os.environ.get("FERLIB_DATA_DIR") is None:
            _find_root(None, self.name, self.LAYOUT, self.SOURCE, ())
        base = Path(root if root is not None else os.environ["FERLIB_DATA_DIR"]).expanduser()
        if not base.is_dir():
            _find_root(base, self.name, self.LAYOUT, self.SOURCE, ())
        class_names = _class_names(keep_contempt)
        groups = _groups_table(base, groups_csv)
        split_dirs = {
            p: _SPLIT_FOLDERS[p.name.lower()]
            for p in base.iterdir()
            if p.is_dir() and p.name.lower() in _SPLIT_FOLDERS
        }
        records = []
        if split_dirs:
            for folder, split_name in sorted(split_dirs.items()):
                records += _class_folder_records(
                    folder,
                    split_name,
                    class_names,
                    label_map,
                    keep_contempt,
                    relative_to=base,
                    groups=groups,
                    videos=self.VIDEOS,
                )
        else:
            records = _class_folder_records(
                base,
                None,
                class_names,
                label_map,
                keep_contempt,
                relative_to=base,
                groups=groups,
                videos=self.VIDEOS,
            )
        self._load(
            records,
            base,
            split,
            class_names=class_names,
            transform=transform,
            image_size=image_size,
            channels=channels,
            on_corrupt=on_corrupt,
            cache_dir=cache_dir,
            detect=detect,
            on_no_face=on_no_face,
            enhance=enhance,
            num_frames=num_frames,
            fractions=fractions,
            split_seed=split_seed,
            extra=f"{keep_contempt}-{_map_key(label_map)}-{sorted(groups.items())}",
        )


@register_dataset("imagefolder")
class ImageFolder(_Folder):
    """Your own photos: ``<root>/<class>/*.jpg`` or ``<root>/<train|val|test>/<class>/*.jpg``.

    Class folder names are ferlib's (``angry`` ... ``neutral``) or common spellings
    (``anger``, ``happiness``...), else mapped with ``label_map``. An optional
    ``<root>/groups.csv`` (or ``groups_csv=``) with a ``file`` column (path below root, or
    file name) adds a ``subject`` and any other columns as ``meta["group"]`` (e.g. gender,
    age). Without split folders, ``train``/``val``/``test`` are a subject-independent split.
    Set ``detect=True`` for photos that are not face crops.
    """

    name = "imagefolder"
    LAYOUT = (
        "  <root>/<class>/<image>.jpg  or  <root>/<train|val|test>/<class>/<image>.jpg\n"
        "  [<root>/groups.csv with columns file, subject, <attribute>...]"
    )
    SOURCE = "your own images"

    def __init__(
        self,
        root=None,
        split: str = "all",
        transform: Callable | None = None,
        *,
        image_size=48,
        channels: int = 1,
        label_map=None,
        keep_contempt: bool = False,
        groups_csv=None,
        on_corrupt: str = "raise",
        cache_dir=None,
        detect: bool = False,
        on_no_face: str = "keep",
        enhance: str | None = None,
        **options,
    ) -> None:
        self._folder(
            root,
            split,
            transform,
            image_size,
            channels,
            label_map,
            keep_contempt,
            groups_csv,
            on_corrupt,
            cache_dir,
            detect,
            on_no_face,
            enhance,
            16,
            options,
        )


@register_dataset("videofolder")
class VideoFolder(_Folder):
    """Your own clips: ``<root>/<class>/<clip>/`` of frame images, or ``<root>/<class>/<clip>.mp4``
    (any format OpenCV reads), optionally below ``train``/``val``/``test`` folders.

    Each clip gives ``num_frames`` frames spread from its first to its last, ``[T, C, H, W]``;
    with ``detect=True`` the face is found on the middle frame and that box crops every frame.
    ``groups.csv`` works as for :class:`ImageFolder` (the ``file`` is the clip's path or name).
    """

    name = "videofolder"
    VIDEOS = True
    LAYOUT = (
        "  <root>/<class>/<clip>/<frame>.png  or  <root>/<class>/<clip>.mp4\n"
        "  (optionally under <root>/<train|val|test>/; [<root>/groups.csv])"
    )
    SOURCE = "your own videos"

    def __init__(
        self,
        root=None,
        split: str = "all",
        transform: Callable | None = None,
        *,
        num_frames: int = 16,
        image_size=48,
        channels: int = 1,
        label_map=None,
        keep_contempt: bool = False,
        groups_csv=None,
        on_corrupt: str = "raise",
        cache_dir=None,
        detect: bool = False,
        on_no_face: str = "keep",
        enhance: str | None = None,
        **options,
    ) -> None:
        self._folder(
            root,
            split,
            transform,
            image_size,
            channels,
            label_map,
            keep_contempt,
            groups_csv,
            on_corrupt,
            cache_dir,
            detect,
            on_no_face,
            enhance,
            num_frames,
            options,
        )


# ----------------------------------------------------------------------------- protocols


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
    _check_split(split)
    if not 0.0 <= val_fraction < 1.0:
        raise ValueError(f"val_fraction must be in [0, 1), got {val_fraction}")
    from ferlib.data.registry import _DATASETS

    factory = _DATASETS.get(name.lower())
    if split == "all" or not (isinstance(factory, type) and issubclass(factory, _RealDataset)):
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


# ----------------------------------------------------------------------------- example layouts


def _cartoon_face(label: int, rng: np.random.Generator, size: int = 96) -> np.ndarray:
    """A crude grayscale face whose mouth and brows depend on the emotion (for layout examples only)."""
    image = np.full((size, size), int(rng.integers(30, 80)), np.uint8)
    centre = (size // 2 + int(rng.integers(-3, 4)), size // 2 + int(rng.integers(-3, 4)))
    cv2.ellipse(
        image, centre, (int(size * 0.32), int(size * 0.42)), 0, 0, 360, int(rng.integers(150, 210)), -1
    )
    eye_y = centre[1] - size // 8
    for dx in (-size // 7, size // 7):
        openness = 2 if label in (3, 6) else 5 if label in (2, 5) else 3
        cv2.ellipse(image, (centre[0] + dx, eye_y), (size // 16, openness), 0, 0, 360, 40, -1)
        tilt = {0: 4, 4: -4, 2: -3}.get(label, 0) * (1 if dx < 0 else -1)
        cv2.line(image, (centre[0] + dx - 7, eye_y - 9 - tilt), (centre[0] + dx + 7, eye_y - 9 + tilt), 40, 2)
    mouth_y = centre[1] + size // 5
    curve = {3: 9, 4: -7, 0: -4, 1: -5, 2: -2, 5: 0, 6: 0}[label]
    if label == 5:
        cv2.ellipse(image, (centre[0], mouth_y), (7, 10), 0, 0, 360, 30, -1)
    else:
        cv2.ellipse(
            image,
            (centre[0], mouth_y - curve // 2),
            (size // 7, abs(curve) + 1),
            0,
            0 if curve >= 0 else 180,
            180 if curve >= 0 else 360,
            30,
            2,
        )
    noise = rng.normal(0, 6, image.shape)
    return np.clip(image + noise, 0, 255).astype(np.uint8)


def write_example_layout(name: str, root, *, per_class: int = 3, seed: int = 0) -> Path:
    """Write a tiny example of dataset ``name`` in its official layout under ``root``.

    The images are crude cartoon faces, not real data: the point is to show (and test) a
    layout, its splits and its label map without the real dataset. Returns the folder to
    pass as ``root=``. Names: fer2013 (folder layout), fer2013-csv, ckplus, ck48, rafdb,
    affectnet, imagefolder, videofolder.
    """
    rng = np.random.default_rng(seed)
    base = Path(root) / name
    base.mkdir(parents=True, exist_ok=True)

    def save(path: Path, image: np.ndarray) -> None:
        path.parent.mkdir(parents=True, exist_ok=True)
        cv2.imwrite(str(path), image)

    if name == "fer2013":
        for usage, folder in (("Training", "train"), ("PublicTest", "test"), ("PrivateTest", "test")):
            for label, emotion in enumerate(EMOTIONS):
                for _ in range(per_class):
                    save(
                        base / folder / emotion / f"{usage}_{rng.integers(1e8)}.jpg",
                        cv2.resize(_cartoon_face(label, rng), (48, 48), interpolation=cv2.INTER_AREA),
                    )
    elif name == "fer2013-csv":
        with open(base / "fer2013.csv", "w", newline="") as handle:
            writer = csv.writer(handle)
            writer.writerow(["emotion", "pixels", "Usage"])
            for usage in ("Training", "PublicTest", "PrivateTest"):
                for label in range(len(EMOTIONS)):
                    for _ in range(per_class):
                        face = cv2.resize(_cartoon_face(label, rng), (48, 48), interpolation=cv2.INTER_AREA)
                        writer.writerow([label, " ".join(map(str, face.reshape(-1))), usage])
    elif name == "ckplus":
        codes = [1, 2, 3, 4, 5, 6, 7]
        for s in range(1, 4 + per_class):
            for q, code in enumerate(codes[s % 3 :: 2], start=1):
                subject, sequence = f"S{s:03d}", f"{q:03d}"
                label = _label_id(CKPLUS_CODES[code], _class_names(True), None, True)
                for f in range(1, 7):
                    face = _cartoon_face(6 if f == 1 else min(label, 6), rng, 160)
                    canvas = np.full((240, 320), 20, np.uint8)
                    canvas[40:200, 80:240] = face
                    save(
                        base
                        / "cohn-kanade-images"
                        / subject
                        / sequence
                        / f"{subject}_{sequence}_{f:08d}.png",
                        canvas,
                    )
                label_file = (
                    base / "Emotion" / subject / sequence / f"{subject}_{sequence}_{6:08d}_emotion.txt"
                )
                label_file.parent.mkdir(parents=True, exist_ok=True)
                label_file.write_text(f"   {code:.7e}\n")
    elif name == "ck48":
        for label, folder in enumerate(
            ("anger", "disgust", "fear", "happy", "sadness", "surprise", "contempt")
        ):
            emotion = _label_id(folder, _class_names(True), None, True)
            for s in range(per_class + 2):
                for f in (14, 15, 16):
                    face = cv2.resize(
                        _cartoon_face(min(emotion, 6), rng), (48, 48), interpolation=cv2.INTER_AREA
                    )
                    save(base / folder / f"S{s + 10:03d}_{label + 1:03d}_{f:08d}.png", face)
    elif name == "rafdb":
        lines = []
        inverse = {v: k for k, v in RAFDB_CODES.items()}
        for part in ("train", "test"):
            for label, emotion in enumerate(EMOTIONS):
                for i in range(per_class):
                    stem = f"{part}_{label * per_class + i + 1:05d}"
                    lines.append(f"{stem}.jpg {inverse[emotion]}")
                    face = cv2.cvtColor(cv2.resize(_cartoon_face(label, rng), (100, 100)), cv2.COLOR_GRAY2BGR)
                    save(base / "Image" / "aligned" / f"{stem}_aligned.jpg", face)
                    attributes = base / "Annotation" / "manual" / f"{stem}_manu_attri.txt"
                    attributes.parent.mkdir(parents=True, exist_ok=True)
                    points = "\n".join(f"{30 + 8 * k}.0\t{40 + 5 * k}.0" for k in range(5))
                    attributes.write_text(
                        f"{points}\n{rng.integers(2)}\n{rng.integers(3)}\n{rng.integers(1, 4)}\n"
                    )
        (base / "EmoLabel").mkdir(parents=True, exist_ok=True)
        (base / "EmoLabel" / "list_patition_label.txt").write_text("\n".join(lines) + "\n")
    elif name == "affectnet":
        lists = base / "Manually_Annotated_file_lists"
        lists.mkdir(parents=True, exist_ok=True)
        columns = [
            "subDirectory_filePath",
            "face_x",
            "face_y",
            "face_width",
            "face_height",
            "facial_landmarks",
            "expression",
            "valence",
            "arousal",
        ]
        for file_name in ("training.csv", "validation.csv"):
            with open(lists / file_name, "w", newline="") as handle:
                writer = csv.writer(handle)
                writer.writerow(columns)
                for code, emotion in enumerate(AFFECTNET_CODES):
                    label = _label_id(emotion, _class_names(True), None, True)
                    for i in range(per_class):
                        relative = f"{code + 1}/{file_name[:5]}_{code}_{i}.jpg"
                        canvas = np.full((160, 160, 3), 90, np.uint8)
                        canvas[20:140, 30:150] = cv2.cvtColor(
                            cv2.resize(_cartoon_face(min(label, 6), rng), (120, 120)), cv2.COLOR_GRAY2BGR
                        )
                        save(base / "Manually_Annotated_Images" / relative, canvas)
                        writer.writerow([relative, 30, 20, 120, 120, "", code, 0.0, 0.0])
    elif name in ("imagefolder", "videofolder"):
        rows = ["file,subject,gender"]
        for label, emotion in enumerate(EMOTIONS):
            for i in range(per_class):
                subject = f"P{(label * per_class + i) % 5:02d}"
                if name == "imagefolder":
                    relative = f"{emotion}/{subject}_{emotion}_{i}.png"
                    save(base / relative, _cartoon_face(label, rng))
                else:
                    relative = f"{emotion}/{subject}_{emotion}_{i}"
                    for f in range(4):
                        save(
                            base / relative / f"frame_{f:03d}.png", _cartoon_face(6 if f == 0 else label, rng)
                        )
                gender = "female" if int(subject[1:]) % 2 else "male"
                rows.append(f"{relative},{subject},{gender}")
        (base / "groups.csv").write_text("\n".join(rows) + "\n")
    else:
        raise ValueError(f"no example layout for {name!r}")
    return base
