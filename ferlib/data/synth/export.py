"""Writing a SynthFER set to disk as PNG class folders plus ``metadata.csv`` (``ferlib synth``)."""

from __future__ import annotations

import csv
import os
from pathlib import Path

import numpy as np

from ferlib.data.synth.dataset import SynthFER


def export_synthfer(
    out_dir: str | os.PathLike,
    *,
    task: str = "static",
    split: str = "train",
    size: int = 1000,
    seed: int = 0,
    preset: str = "default",
    image_size: int = 48,
    **knobs,
) -> Path:
    """Write a SynthFER set as PNG class folders plus ``metadata.csv``; returns ``out_dir``.

    Static: ``out_dir/<split>/<class>/<id>.png``; video: ``out_dir/<split>/<class>/<clip_id>/<frame>.png``,
    the layout ferlib's ImageFolder and VideoFolder readers read (class folders are EMOTIONS
    names, or ``posed``/``spontaneous`` for smile-dynamics). ``out_dir/<split>/metadata.csv`` has one
    row per image or clip: path, label, class, subject, group attributes, intensity and nuisances.
    """
    from PIL import Image

    data = SynthFER(
        split=split, size=size, task=task, seed=seed, preset=preset, image_size=image_size, **knobs
    )
    root = Path(out_dir)
    base = root / split
    frame = data.group_frame()
    paths = []
    for i in range(len(data)):
        cls = data.class_names[int(data.labels[i])]
        arr = data.image_array(i)
        if data.is_video:
            folder = base / cls / f"{i:06d}"
            folder.mkdir(parents=True, exist_ok=True)
            for t, img in enumerate(arr):
                _save_png(Image, img, folder / f"{t:03d}.png")
            paths.append(folder.relative_to(base).as_posix())
        else:
            (base / cls).mkdir(parents=True, exist_ok=True)
            _save_png(Image, arr, base / cls / f"{i:06d}.png")
            paths.append(f"{cls}/{i:06d}.png")
    frame.insert(0, "path", paths)
    with open(base / "metadata.csv", "w", newline="") as handle:
        writer = csv.writer(handle)
        writer.writerow(frame.columns)
        writer.writerows(frame.itertuples(index=False))
    return root


def _save_png(image_module, arr: np.ndarray, path: Path) -> None:
    img = arr[0] if arr.shape[0] == 1 else np.transpose(arr, (1, 2, 0))
    image_module.fromarray(np.ascontiguousarray(img)).save(path)
