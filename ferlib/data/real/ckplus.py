"""CK+ (extended Cohn-Kanade): the official sequences with labels and landmarks, or CK+48."""

from __future__ import annotations

import os
import re
from collections.abc import Callable
from pathlib import Path

import numpy as np

from ferlib.data.real._decode import DecodeOptions, Record
from ferlib.data.real.base import (
    IMAGE_SUFFIXES,
    RealDataset,
    check_split,
    emotion_classes,
    find_root,
    label_id,
    label_map_key,
    subject_options,
)
from ferlib.data.registry import register_dataset
from ferlib.errors import ConfigError, DataError

MODES = ("static", "video")
CROPS = ("auto", "landmarks", "detect", None)
CKPLUS_CODES = ("neutral", "anger", "contempt", "disgust", "fear", "happy", "sadness", "surprise")


@register_dataset("ckplus")
class CKPlus(RealDataset):
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
        check_split(split)
        if mode not in MODES:
            raise ConfigError.unknown("mode", mode, MODES)
        if crop not in CROPS:
            raise ConfigError.unknown("crop", crop, [str(c) for c in CROPS])
        fractions, split_seed = subject_options(options)
        if options:
            raise TypeError(f"unexpected options for ckplus: {', '.join(options)}")
        base = self._locate(root)
        class_names = emotion_classes(keep_contempt)
        official = (base / "cohn-kanade-images").is_dir()
        if official:
            records = self._official(
                base, mode, last_k, include_neutral, class_names, label_map, keep_contempt, crop
            )
            detect = crop == "detect" or (crop == "auto" and not (base / "Landmarks").is_dir())
        else:
            records = self._ck48(base, mode, class_names, label_map, keep_contempt)
            detect = crop == "detect"
        decode = DecodeOptions(
            image_size=image_size, channels=channels, detect=detect, enhance=enhance, num_frames=num_frames,
            on_corrupt=on_corrupt, cache_dir=cache_dir
        )
        self._load(
            records, base, split, decode, class_names=class_names, transform=transform, fractions=fractions,
            split_seed=split_seed, extra=f"{mode}-{last_k}-{include_neutral}-{keep_contempt}-{label_map_key(label_map)}"
        )
        self.mode = mode

    def _locate(self, root) -> Path:
        if root is None and os.environ.get("FERLIB_DATA_DIR") is None:
            find_root(None, self.name, self.LAYOUT, self.SOURCE, ())
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
        return find_root(base, self.name, self.LAYOUT, self.SOURCE, ("cohn-kanade-images",))

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
            label = label_id(CKPLUS_CODES[code], class_names, label_map, keep_contempt)
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
                    records.append(Record("frames", [str(p) for p in frames], label, dict(meta), None, box))
                continue
            if label is not None:
                for path in frames[-last_k:]:
                    records.append(Record("file", str(path), label, {**meta, "file": path.name}, None, box))
            neutral = label_id("neutral", class_names, label_map, keep_contempt)
            if include_neutral and neutral is not None:
                records.append(
                    Record("file", str(frames[0]), neutral, {**meta, "file": frames[0].name}, None, box)
                )
        return records

    @staticmethod
    def _ck48(base, mode, class_names, label_map, keep_contempt):
        pattern = re.compile(r"^(S\d+)_(\d+)_(\d+)")
        by_sequence: dict[tuple, list] = {}
        records = []
        for class_dir in sorted(p for p in base.iterdir() if p.is_dir()):
            label = label_id(class_dir.name, class_names, label_map, keep_contempt)
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
                    records.append(Record("file", str(path), label, meta))
        for (label, sequence, subject), paths in sorted(by_sequence.items(), key=lambda item: item[0][1]):
            records.append(
                Record("frames", sorted(paths), label, {"subject": subject, "sequence": sequence})
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

