"""RAF-DB basic emotions, with the gender, race and age annotations as groups."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

from ferlib.data.labels import EMOTIONS
from ferlib.data.real._decode import DecodeOptions, Record
from ferlib.data.real.base import RealDataset, check_split, find_root, label_id, label_map_key
from ferlib.data.registry import register_dataset
from ferlib.errors import DataError

RAFDB_CODES = {1: "surprise", 2: "fear", 3: "disgust", 4: "happy", 5: "sad", 6: "angry", 7: "neutral"}
RAFDB_GENDER = ("male", "female", "unsure")
RAFDB_RACE = ("caucasian", "african-american", "asian")
RAFDB_AGE = ("0-3", "4-19", "20-39", "40-69", "70+")


@register_dataset("rafdb")
class RAFDB(RealDataset):
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
        check_split(split)
        base = find_root(root, self.name, self.LAYOUT, self.SOURCE, ("EmoLabel",), ("basic",))
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
            label = label_id(RAFDB_CODES[code], class_names, label_map, False)
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
                Record("file", str(path), label, meta, "train" if stem.startswith("train") else "test")
            )
        decode = DecodeOptions(
            image_size=image_size, channels=channels, detect=detect, on_no_face=on_no_face, enhance=enhance,
            on_corrupt=on_corrupt, cache_dir=cache_dir
        )
        self._load(
            records, base, split, decode, class_names=class_names, transform=transform,
            extra=f"{aligned}-{attributes}-{label_map_key(label_map)}"
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

