"""FER2013 (and its FER+ relabelling) from the Kaggle CSVs or the image-folder copy."""

from __future__ import annotations

import warnings
from collections import OrderedDict
from collections.abc import Callable
from pathlib import Path

import numpy as np

from ferlib.data.labels import EMOTIONS
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
from ferlib.data.registry import register_dataset
from ferlib.errors import ConfigError, DataError

LABELS = ("fer2013", "ferplus")
_CSV_MEMORY: OrderedDict[tuple, tuple] = OrderedDict()
_FER_USAGE = {"training": "train", "publictest": "val", "privatetest": "test"}


@register_dataset("fer2013")
class FER2013(RealDataset):
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
        check_split(split)
        if labels not in LABELS:
            raise ConfigError.unknown("labels", labels, LABELS)
        decode = DecodeOptions(
            image_size=image_size, channels=channels, enhance=enhance, on_corrupt=on_corrupt, cache_dir=cache_dir
        )
        base = find_root(
            root,
            self.name,
            self.LAYOUT,
            self.SOURCE,
            ("fer2013.csv", "icml_face_data.csv", "train.csv", "train", "test"),
            ("fer2013",),
        )
        class_names = emotion_classes(keep_contempt)
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
            records, base, split, decode, class_names=class_names, transform=transform,
            extra=f"{labels}-{keep_contempt}-{label_map_key(label_map)}"
        )
        self._add_skipped(skipped)

    @staticmethod
    def _csv_records(paths: list[Path], split: str, on_corrupt: str, skipped: list) -> list[Record]:
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
        return [Record(r.kind, r.source, r.label, dict(r.meta), r.split, r.box) for r in records]

    @staticmethod
    def _parse_csv(paths: list[Path], split: str, on_corrupt: str, skipped: list) -> list[Record]:
        records = []
        row_index = 0
        for path in paths:
            for file_row, (line, row) in enumerate(read_csv_rows(path, on_corrupt, skipped)):
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
                            Record("pixels", None, -1, {}, wanted)
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
                    records.append(Record("pixels", None, -1, {}, "skipped"))
                    continue
                meta = {"file": path.name, "line": line, "row": index, "usage": usage}
                records.append(Record("pixels", pixels.astype(np.uint8), label, meta, wanted))
        return records

    @staticmethod
    def _remap(records, class_names, label_map, keep_contempt):
        kept = []
        for record in records:
            if record.source is None:
                kept.append(record)
                continue
            label = label_id(EMOTIONS[record.label], class_names, label_map, keep_contempt)
            if label is not None:
                record.label = label
                kept.append(record)
        return kept

    @staticmethod
    def _ferplus(records, path: Path, class_names, label_map, keep_contempt) -> list[Record]:
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
        rows = list(read_csv_rows(path, "raise", []))
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
            label = label_id(votes_columns[winner], class_names, label_map, keep_contempt)
            if label is None:
                continue
            record.label = label
            record.meta["labels"] = "ferplus"
            kept.append(record)
        return kept

    @staticmethod
    def _folder_records(base: Path, class_names, label_map, keep_contempt) -> list[Record]:
        records = []
        for folder_name, default_split in (("train", "train"), ("test", "test"), ("val", "val")):
            folder = base / folder_name
            if not folder.is_dir():
                continue
            for class_dir in sorted(p for p in folder.iterdir() if p.is_dir()):
                label = label_id(class_dir.name, class_names, label_map, keep_contempt)
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
                    records.append(Record("file", str(path), label, meta, split))
        return records

