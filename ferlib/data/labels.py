"""The label contract: FER2013's seven classes, in its order and with its ids."""

from __future__ import annotations

from collections.abc import Mapping

EMOTIONS: tuple[str, ...] = ("angry", "disgust", "fear", "happy", "sad", "surprise", "neutral")
NUM_CLASSES = len(EMOTIONS)
EMOTION_TO_ID: dict[str, int] = {name: i for i, name in enumerate(EMOTIONS)}


def emotion_id(name: str, label_map: Mapping[str, str | None] | None = None) -> int | None:
    """Map a dataset's class name to a ferlib label id.

    ``label_map`` renames a dataset's classes first (e.g. ``{"contempt": None}`` drops
    contempt, ``{"anger": "angry"}`` renames); a name mapped to ``None`` returns ``None``.
    An unknown name raises a ``ValueError`` that lists the known ones.
    """
    key = name.strip().lower()
    if label_map is not None and key in label_map:
        mapped = label_map[key]
        if mapped is None:
            return None
        key = mapped
    if key not in EMOTION_TO_ID:
        raise ValueError(
            f"unknown emotion label {name!r}: expected one of {', '.join(EMOTIONS)} (or map it with label_map)"
        )
    return EMOTION_TO_ID[key]
