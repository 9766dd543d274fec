"""AffectNet's manually annotated part: the official CSV lists, the .npy layout or class folders."""

from __future__ import annotations

from collections.abc import Callable

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
    read_csv_rows,
)
from ferlib.data.real.folder import class_folder_records
from ferlib.data.registry import register_dataset
from ferlib.errors import DataError

AFFECTNET_CODES = ("neutral", "happy", "sad", "surprise", "fear", "disgust", "anger", "contempt")


@register_dataset("affectnet")
class AffectNet(RealDataset):
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
        check_split(split)
        if classes not in (7, 8):
            raise ValueError(f"classes must be 7 or 8, got {classes}")
        keep = classes == 8
        class_names = emotion_classes(keep)
        base = find_root(
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
                    records += class_folder_records(
                        base / folder,
                        split_name,
                        class_names,
                        label_map,
                        keep,
                        code_names=AFFECTNET_CODES,
                        relative_to=base,
                    )
        decode = DecodeOptions(
            image_size=image_size, channels=channels, enhance=enhance, on_corrupt=on_corrupt, cache_dir=cache_dir
        )
        self._load(
            records, base, split, decode, class_names=class_names, transform=transform,
            extra=f"{classes}-{label_map_key(label_map)}"
        )
        self._add_skipped(skipped)

    @staticmethod
    def _code_label(code: int, class_names, label_map, keep):
        if not 0 <= code < len(AFFECTNET_CODES):
            return None  # 8 none, 9 uncertain, 10 no-face
        return label_id(AFFECTNET_CODES[code], class_names, label_map, keep)

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
            for line, row in read_csv_rows(path, on_corrupt, skipped):
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
                    Record("file", str(images / relative), label, {"file": relative}, split_name, box)
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
                        Record(
                            "file", str(path), label, {"file": f"{folder}/images/{path.name}"}, split_name
                        )
                    )
        return records

