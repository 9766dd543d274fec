"""What a prediction writes: boxes and labels drawn on a frame, PNG files, and outputs that
appear only when complete.

Every output of :func:`~ferlib.deploy.predictor.predict_image` and
:func:`~ferlib.deploy.video.predict_video` is written under a temporary ``.partial`` name
(:func:`partial`) and renamed (:func:`commit`) only when the input has been processed
completely; :func:`discard` removes what is left of a failed run, so that it never leaves
files that look complete.
"""

from __future__ import annotations

import os
from collections.abc import Iterable, Sequence
from pathlib import Path

import cv2
import numpy as np

from ferlib.errors import FerlibError


def partial(path: Path) -> Path:
    """``x.annotated.png`` -> ``x.annotated.partial.png`` (the suffix kept for OpenCV's writers)."""
    return path.with_name(f"{path.stem}.partial{path.suffix}")


def commit(paths: Iterable[Path]) -> None:
    """Rename each path's :func:`partial` file to the path itself."""
    for final in paths:
        os.replace(partial(final), final)


def discard(paths: Iterable[Path]) -> None:
    """Remove each path's :func:`partial` file, if there is one."""
    for final in paths:
        partial(final).unlink(missing_ok=True)


def top_label(names: Sequence[str], probs: np.ndarray) -> tuple[str, float]:
    """The most probable class name and its probability."""
    top = int(np.argmax(probs))
    return names[top], float(probs[top])


def draw_box(frame_bgr: np.ndarray, box, text: str, colour=(40, 220, 40)) -> None:
    """Draw ``box`` ``(x, y, w, h)`` and ``text`` on a filled tab above it (below when there is no room)."""
    x, y, w, h = (int(v) for v in box)
    thickness = max(1, round(min(frame_bgr.shape[:2]) / 240))
    cv2.rectangle(frame_bgr, (x, y), (x + w, y + h), colour, thickness)
    scale = max(0.4, min(frame_bgr.shape[:2]) / 700)
    (tw, th), base = cv2.getTextSize(text, cv2.FONT_HERSHEY_SIMPLEX, scale, thickness)
    top = y - th - base - 4 if y - th - base - 4 >= 0 else y + h
    cv2.rectangle(frame_bgr, (x, top), (x + tw + 4, top + th + base + 4), colour, -1)
    cv2.putText(frame_bgr, text, (x + 2, top + th + 2), cv2.FONT_HERSHEY_SIMPLEX, scale, (0, 0, 0), thickness)


def write_png(path: Path, image_bgr: np.ndarray) -> None:
    """Write a BGR image as a PNG file."""
    ok, buffer = cv2.imencode(".png", image_bgr)
    if not ok:
        raise FerlibError(f"could not encode {path}")
    buffer.tofile(str(path))
