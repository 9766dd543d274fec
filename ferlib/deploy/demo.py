"""A video to run ``ferlib predict`` on without real data: SynthFER clips written to a video
file (:func:`write_synth_video`), for the tests, the book and the benchmarks."""

from __future__ import annotations

import os
from pathlib import Path

import cv2
import numpy as np

from ferlib.data.synth import SynthFER
from ferlib.errors import FerlibError

__all__ = ["write_synth_video"]


def write_synth_video(
    path: str | os.PathLike,
    clips: int = 2,
    *,
    task: str = "video-basic",
    split: str = "test",
    canvas: tuple[int, int] = (320, 240),
    face_size: int = 160,
    fps: float = 15.0,
    seed: int = 0,
    drift: int = 20,
) -> Path:
    """Write a demo video: ``clips`` SynthFER clips, one after the other, each frame upscaled to
    ``face_size`` and pasted on a gray ``canvas`` (width, height), drifting sideways by up to
    ``drift`` pixels. mp4v in an .mp4 (or whatever OpenCV picks for the suffix). For tests,
    the book and benchmarks: OpenCV's Haar cascade finds these faces in most frames."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    width, height = canvas
    if face_size > min(width, height):
        raise ValueError(f"face_size {face_size} does not fit a {width}x{height} canvas")
    data = SynthFER(split, size=clips, task=task, seed=seed, image_size=64)
    writer = cv2.VideoWriter(str(path), cv2.VideoWriter_fourcc(*"mp4v"), fps, (width, height))
    if not writer.isOpened():
        raise FerlibError(f"OpenCV could not write {path}")
    try:
        for index in range(len(data)):
            clip = data.image_array(index)  # [T, C, H, W] uint8
            steps = clip.shape[0]
            for t in range(steps):
                face = clip[t].transpose(1, 2, 0)
                face = face[:, :, 0] if face.shape[2] == 1 else cv2.cvtColor(face, cv2.COLOR_RGB2GRAY)
                face = cv2.resize(face, (face_size, face_size), interpolation=cv2.INTER_CUBIC)
                frame = np.full((height, width), 128, np.uint8)
                shift = int(round(drift * np.sin(2 * np.pi * t / max(steps, 1))))
                left = (width - face_size) // 2 + shift
                left = min(max(left, 0), width - face_size)
                top = (height - face_size) // 2
                frame[top : top + face_size, left : left + face_size] = face
                writer.write(cv2.cvtColor(frame, cv2.COLOR_GRAY2BGR))
    finally:
        writer.release()
    return path
