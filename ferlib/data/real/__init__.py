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

# Importing the loaders registers them with ferlib.data.registry (load_dataset("fer2013", ...)).
from ferlib.data.real._decode import DecodeOptions
from ferlib.data.real.affectnet import AFFECTNET_CODES, AffectNet
from ferlib.data.real.base import (
    ALIASES,
    CONTEMPT,
    IMAGE_SUFFIXES,
    SPLITS,
    VIDEO_SUFFIXES,
    FaceDataset,
)
from ferlib.data.real.ckplus import CKPLUS_CODES, CKPlus
from ferlib.data.real.examples import EXAMPLE_LAYOUTS, write_example_layout
from ferlib.data.real.fer2013 import FER2013
from ferlib.data.real.folder import ImageFolder, VideoFolder
from ferlib.data.real.protocols import load_split, load_splits
from ferlib.data.real.rafdb import RAFDB, RAFDB_AGE, RAFDB_CODES, RAFDB_GENDER, RAFDB_RACE
from ferlib.errors import MissingSplitError

__all__ = [
    "AFFECTNET_CODES",
    "ALIASES",
    "AffectNet",
    "CKPLUS_CODES",
    "CKPlus",
    "CONTEMPT",
    "DecodeOptions",
    "EXAMPLE_LAYOUTS",
    "FER2013",
    "FaceDataset",
    "IMAGE_SUFFIXES",
    "ImageFolder",
    "MissingSplitError",
    "RAFDB",
    "RAFDB_AGE",
    "RAFDB_CODES",
    "RAFDB_GENDER",
    "RAFDB_RACE",
    "SPLITS",
    "VIDEO_SUFFIXES",
    "VideoFolder",
    "load_split",
    "load_splits",
    "write_example_layout",
]
