"""Your own data as class folders: :class:`ImageFolder` (photos) and :class:`VideoFolder` (clips),
with an optional ``groups.csv`` of subjects and attributes; also the class-folder scan that
AffectNet's folder layout shares."""

from __future__ import annotations

import os
from collections.abc import Callable, Mapping
from pathlib import Path

from ferlib.data.real._decode import DecodeOptions, Record
from ferlib.data.real.base import (
    IMAGE_SUFFIXES,
    VIDEO_SUFFIXES,
    RealDataset,
    check_split,
    emotion_classes,
    find_root,
    label_id,
    label_map_key,
    read_csv_rows,
    subject_options,
)
from ferlib.data.registry import register_dataset
from ferlib.errors import DataError


def _groups_table(root: Path, groups_csv) -> dict[str, dict]:
    """``groups.csv`` (a ``file`` column, optional ``subject``, any attribute columns) by file name."""
    path = Path(groups_csv) if groups_csv is not None else root / "groups.csv"
    if not path.is_file():
        if groups_csv is not None:
            raise DataError(f"groups file {path} does not exist")
        return {}
    table: dict[str, dict] = {}
    for line, row in read_csv_rows(path, "raise", []):
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


def class_folder_records(
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
        label = label_id(class_name, class_names, label_map, keep)
        if label is None:
            continue
        for path in sorted(class_dir.iterdir()):
            relative = path.relative_to(relative_to).as_posix()
            meta = {"file": relative}
            if groups:
                _join_group(meta, relative, groups)
            if not videos:
                if path.is_file() and path.suffix.lower() in IMAGE_SUFFIXES:
                    records.append(Record("file", str(path), label, meta, split_name))
            elif path.is_dir():
                frames = sorted(str(p) for p in path.iterdir() if p.suffix.lower() in IMAGE_SUFFIXES)
                if frames:
                    records.append(Record("frames", frames, label, meta, split_name))
            elif path.suffix.lower() in VIDEO_SUFFIXES:
                records.append(Record("video", str(path), label, meta, split_name))
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


class _Folder(RealDataset):
    """Class folders, optionally below split folders; :class:`VideoFolder` reads clips instead of images."""

    VIDEOS = False

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
        num_frames = options.pop("num_frames", 16) if self.VIDEOS else 16  # an ImageFolder refuses num_frames
        decode = DecodeOptions(
            image_size=image_size, channels=channels, detect=detect, on_no_face=on_no_face, enhance=enhance,
            num_frames=num_frames, on_corrupt=on_corrupt, cache_dir=cache_dir
        )
        check_split(split)
        fractions, split_seed = subject_options(options)
        if options:
            raise TypeError(f"unexpected options for {self.name}: {', '.join(options)}")
        if root is None and os.environ.get("FERLIB_DATA_DIR") is None:
            find_root(None, self.name, self.LAYOUT, self.SOURCE, ())
        base = Path(root if root is not None else os.environ["FERLIB_DATA_DIR"]).expanduser()
        if not base.is_dir():
            find_root(base, self.name, self.LAYOUT, self.SOURCE, ())
        class_names = emotion_classes(keep_contempt)
        groups = _groups_table(base, groups_csv)
        split_dirs = {
            p: _SPLIT_FOLDERS[p.name.lower()] for p in base.iterdir() if p.is_dir() and p.name.lower() in _SPLIT_FOLDERS
        }
        records = []
        for folder, split_name in sorted(split_dirs.items()) or [(base, None)]:
            records += class_folder_records(
                folder,
                split_name,
                class_names,
                label_map,
                keep_contempt,
                relative_to=base,
                groups=groups,
                videos=self.VIDEOS,
            )
        self._load(
            records, base, split, decode, class_names=class_names, transform=transform, fractions=fractions,
            split_seed=split_seed, extra=f"{keep_contempt}-{label_map_key(label_map)}-{sorted(groups.items())}"
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
        self, root=None, split: str = "all", transform: Callable | None = None, *, num_frames: int = 16, **options
    ) -> None:
        """Options as for :class:`ImageFolder`, plus ``num_frames`` per clip."""
        super().__init__(root, split, transform, num_frames=num_frames, **options)
