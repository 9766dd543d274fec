"""From records to tensors: how one sample is found on disk, decoded, cropped, resized and
cached.

A loader scans its layout into :class:`Record` objects and hands them, with one
:class:`DecodeOptions`, to :func:`decode_all`, which decodes them in threads into one uint8
tensor, held in memory (:data:`_MEMORY`) and, with a cache folder, saved as a ``.pt`` file
keyed by :func:`_fingerprint`.
"""

from __future__ import annotations

import hashlib
import os
import re
import warnings
from collections import OrderedDict
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field, replace
from pathlib import Path

import cv2
import numpy as np
import torch

from ferlib.data.faces import (
    NoFaceError,
    apply_clahe,
    crop_face,
    detect_faces,
    equalize_histogram,
    preprocess_face,
    read_image,
)
from ferlib.errors import ConfigError, DataError

ON_CORRUPT = ("raise", "skip")
ON_NO_FACE = ("keep", "skip", "raise")
ENHANCE = (None, "equalize", "clahe")


@dataclass
class Record:
    """One sample before decoding: where its pixels are and what we know about it."""

    kind: str  # "file", "pixels" (FER2013 CSV string), "frames" (list of files), "video" (file)
    source: object
    label: int
    meta: dict = field(default_factory=dict)
    split: str | None = None  # the official split, None when the layout has none
    box: tuple[int, int, int, int] | None = None  # a crop given by the dataset's annotations


@dataclass(frozen=True)
class DecodeOptions:
    """The decoding options every loader shares, passed down as one object.

    Each loader keeps these as its own keyword arguments (``load_dataset("fer2013",
    image_size=64, enhance="clahe")``) and bundles them here once. ``image_size`` is an int or
    ``(height, width)``; ``on_corrupt`` is ``"raise"`` or ``"skip"``; ``on_no_face`` is
    ``"keep"``, ``"skip"`` or ``"raise"``; ``enhance`` is ``None``, ``"equalize"`` or
    ``"clahe"``; ``num_frames`` is the clip length of video layouts; ``cache_dir`` is the folder
    of decoded tensors (``None``: ``$FERLIB_CACHE_DIR`` if set, else memory only). Values are
    checked only when the loader decodes (:meth:`check`, then :func:`decode_all`), so a missing
    or malformed dataset is reported before a bad option, as before these options had a class.
    """

    image_size: int | tuple[int, int] = 48
    channels: int = 1
    detect: bool = False
    on_no_face: str = "keep"
    enhance: str | None = None
    num_frames: int = 16
    on_corrupt: str = "raise"
    cache_dir: str | os.PathLike | None = None

    def check(self) -> None:
        """Refuse a channel count or enhancement that ferlib does not know."""
        if self.channels not in (1, 3):
            raise ValueError(f"channels must be 1 or 3, got {self.channels}")
        if self.enhance not in ENHANCE:
            raise ConfigError.unknown("enhance", self.enhance, [str(e) for e in ENHANCE])

    @property
    def settings(self) -> _Decode:
        """The part that decides the pixels (and, through its repr, the cache fingerprint)."""
        return _Decode(
            _size_pair(self.image_size), self.channels, self.detect, self.on_no_face, self.enhance, self.num_frames
        )


@dataclass(frozen=True)
class _Decode:
    """What one decoded sample depends on. Its repr is hashed into the cache key, so its name,
    fields and their order must stay as they are for caches written before to be found."""

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


def _decode_record(record: Record, settings: _Decode) -> tuple[np.ndarray, bool]:
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
            faces = detect_faces(images[len(images) // 2])
            if faces:
                box = faces[0].as_tuple()
            elif settings.on_no_face == "raise":
                raise NoFaceError(f"no face found in {name}")
            else:
                found = False
        clip_settings = replace(settings, detect=False)
        frames = [_finish(image, clip_settings, box, name)[0] for image in images]
        return np.stack(frames), found
    raise ValueError(f"unknown record kind {record.kind!r}")


def _source_name(record: Record) -> str:
    if record.kind == "pixels":
        return f"{record.meta.get('file', 'CSV')} line {record.meta.get('line', '?')}"
    if record.kind == "frames":
        return str(Path(record.source[0]).parent)
    return str(record.source)


_MEMORY: OrderedDict[str, tuple] = OrderedDict()
_MEMORY_ENTRIES = 6


def _fingerprint(records: Sequence[Record], settings: _Decode, extra: str) -> str:
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


def decode_all(
    records: Sequence[Record], options: DecodeOptions, cache_name: str
) -> tuple[torch.Tensor, list[int], list[dict], list[tuple[str, str]], list[str]]:
    """Decode every record (in threads; OpenCV releases the GIL), skipping or raising on bad ones."""
    on_corrupt = options.on_corrupt
    if on_corrupt not in ON_CORRUPT:
        raise ConfigError.unknown("on_corrupt", on_corrupt, ON_CORRUPT)
    if options.on_no_face not in ON_NO_FACE:
        raise ConfigError.unknown("on_no_face", options.on_no_face, ON_NO_FACE)
    settings = options.settings
    key = _fingerprint(records, settings, cache_name + on_corrupt)
    if key in _MEMORY:
        _MEMORY.move_to_end(key)
        return _MEMORY[key]
    folder = _cache_dir(options.cache_dir)
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
            return _decode_record(record, settings)
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
