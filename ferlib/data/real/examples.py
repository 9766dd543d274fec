"""Tiny example copies of each official layout, drawn as cartoon faces (not real data), to show
and test a layout, its splits and its label map without the dataset."""

from __future__ import annotations

import csv
from pathlib import Path

import cv2
import numpy as np

from ferlib.data.labels import EMOTIONS
from ferlib.data.real.affectnet import AFFECTNET_CODES
from ferlib.data.real.base import emotion_classes, label_id
from ferlib.data.real.ckplus import CKPLUS_CODES
from ferlib.data.real.rafdb import RAFDB_CODES
from ferlib.errors import ConfigError

__all__ = ["EXAMPLE_LAYOUTS", "write_example_layout"]

EXAMPLE_LAYOUTS = ("fer2013", "fer2013-csv", "ckplus", "ck48", "rafdb", "affectnet", "imagefolder", "videofolder")


def _cartoon_face(label: int, rng: np.random.Generator, size: int = 96) -> np.ndarray:
    """A crude grayscale face whose mouth and brows depend on the emotion (for layout examples only)."""
    image = np.full((size, size), int(rng.integers(30, 80)), np.uint8)
    centre = (size // 2 + int(rng.integers(-3, 4)), size // 2 + int(rng.integers(-3, 4)))
    cv2.ellipse(
        image, centre, (int(size * 0.32), int(size * 0.42)), 0, 0, 360, int(rng.integers(150, 210)), -1
    )
    eye_y = centre[1] - size // 8
    for dx in (-size // 7, size // 7):
        openness = 2 if label in (3, 6) else 5 if label in (2, 5) else 3
        cv2.ellipse(image, (centre[0] + dx, eye_y), (size // 16, openness), 0, 0, 360, 40, -1)
        tilt = {0: 4, 4: -4, 2: -3}.get(label, 0) * (1 if dx < 0 else -1)
        cv2.line(image, (centre[0] + dx - 7, eye_y - 9 - tilt), (centre[0] + dx + 7, eye_y - 9 + tilt), 40, 2)
    mouth_y = centre[1] + size // 5
    curve = {3: 9, 4: -7, 0: -4, 1: -5, 2: -2, 5: 0, 6: 0}[label]
    if label == 5:
        cv2.ellipse(image, (centre[0], mouth_y), (7, 10), 0, 0, 360, 30, -1)
    else:
        cv2.ellipse(
            image,
            (centre[0], mouth_y - curve // 2),
            (size // 7, abs(curve) + 1),
            0,
            0 if curve >= 0 else 180,
            180 if curve >= 0 else 360,
            30,
            2,
        )
    noise = rng.normal(0, 6, image.shape)
    return np.clip(image + noise, 0, 255).astype(np.uint8)


def write_example_layout(name: str, root, *, per_class: int = 3, seed: int = 0) -> Path:
    """Write a tiny example of dataset ``name`` in its official layout under ``root``.

    The images are crude cartoon faces, not real data: the point is to show (and test) a
    layout, its splits and its label map without the real dataset. Returns the folder to
    pass as ``root=``. Names: fer2013 (folder layout), fer2013-csv, ckplus, ck48, rafdb,
    affectnet, imagefolder, videofolder.
    """
    rng = np.random.default_rng(seed)
    base = Path(root) / name
    base.mkdir(parents=True, exist_ok=True)

    def save(path: Path, image: np.ndarray) -> None:
        path.parent.mkdir(parents=True, exist_ok=True)
        cv2.imwrite(str(path), image)

    if name == "fer2013":
        for usage, folder in (("Training", "train"), ("PublicTest", "test"), ("PrivateTest", "test")):
            for label, emotion in enumerate(EMOTIONS):
                for _ in range(per_class):
                    save(
                        base / folder / emotion / f"{usage}_{rng.integers(1e8)}.jpg",
                        cv2.resize(_cartoon_face(label, rng), (48, 48), interpolation=cv2.INTER_AREA),
                    )
    elif name == "fer2013-csv":
        with open(base / "fer2013.csv", "w", newline="") as handle:
            writer = csv.writer(handle)
            writer.writerow(["emotion", "pixels", "Usage"])
            for usage in ("Training", "PublicTest", "PrivateTest"):
                for label in range(len(EMOTIONS)):
                    for _ in range(per_class):
                        face = cv2.resize(_cartoon_face(label, rng), (48, 48), interpolation=cv2.INTER_AREA)
                        writer.writerow([label, " ".join(map(str, face.reshape(-1))), usage])
    elif name == "ckplus":
        codes = [1, 2, 3, 4, 5, 6, 7]
        for s in range(1, 4 + per_class):
            for q, code in enumerate(codes[s % 3 :: 2], start=1):
                subject, sequence = f"S{s:03d}", f"{q:03d}"
                label = label_id(CKPLUS_CODES[code], emotion_classes(True), None, True)
                for f in range(1, 7):
                    face = _cartoon_face(6 if f == 1 else min(label, 6), rng, 160)
                    canvas = np.full((240, 320), 20, np.uint8)
                    canvas[40:200, 80:240] = face
                    save(
                        base
                        / "cohn-kanade-images"
                        / subject
                        / sequence
                        / f"{subject}_{sequence}_{f:08d}.png",
                        canvas,
                    )
                label_file = (
                    base / "Emotion" / subject / sequence / f"{subject}_{sequence}_{6:08d}_emotion.txt"
                )
                label_file.parent.mkdir(parents=True, exist_ok=True)
                label_file.write_text(f"   {code:.7e}\n")
    elif name == "ck48":
        for label, folder in enumerate(
            ("anger", "disgust", "fear", "happy", "sadness", "surprise", "contempt")
        ):
            emotion = label_id(folder, emotion_classes(True), None, True)
            for s in range(per_class + 2):
                for f in (14, 15, 16):
                    face = cv2.resize(
                        _cartoon_face(min(emotion, 6), rng), (48, 48), interpolation=cv2.INTER_AREA
                    )
                    save(base / folder / f"S{s + 10:03d}_{label + 1:03d}_{f:08d}.png", face)
    elif name == "rafdb":
        lines = []
        inverse = {v: k for k, v in RAFDB_CODES.items()}
        for part in ("train", "test"):
            for label, emotion in enumerate(EMOTIONS):
                for i in range(per_class):
                    stem = f"{part}_{label * per_class + i + 1:05d}"
                    lines.append(f"{stem}.jpg {inverse[emotion]}")
                    face = cv2.cvtColor(cv2.resize(_cartoon_face(label, rng), (100, 100)), cv2.COLOR_GRAY2BGR)
                    save(base / "Image" / "aligned" / f"{stem}_aligned.jpg", face)
                    attributes = base / "Annotation" / "manual" / f"{stem}_manu_attri.txt"
                    attributes.parent.mkdir(parents=True, exist_ok=True)
                    points = "\n".join(f"{30 + 8 * k}.0\t{40 + 5 * k}.0" for k in range(5))
                    attributes.write_text(
                        f"{points}\n{rng.integers(2)}\n{rng.integers(3)}\n{rng.integers(1, 4)}\n"
                    )
        (base / "EmoLabel").mkdir(parents=True, exist_ok=True)
        (base / "EmoLabel" / "list_patition_label.txt").write_text("\n".join(lines) + "\n")
    elif name == "affectnet":
        lists = base / "Manually_Annotated_file_lists"
        lists.mkdir(parents=True, exist_ok=True)
        columns = [
            "subDirectory_filePath",
            "face_x",
            "face_y",
            "face_width",
            "face_height",
            "facial_landmarks",
            "expression",
            "valence",
            "arousal",
        ]
        for file_name in ("training.csv", "validation.csv"):
            with open(lists / file_name, "w", newline="") as handle:
                writer = csv.writer(handle)
                writer.writerow(columns)
                for code, emotion in enumerate(AFFECTNET_CODES):
                    label = label_id(emotion, emotion_classes(True), None, True)
                    for i in range(per_class):
                        relative = f"{code + 1}/{file_name[:5]}_{code}_{i}.jpg"
                        canvas = np.full((160, 160, 3), 90, np.uint8)
                        canvas[20:140, 30:150] = cv2.cvtColor(
                            cv2.resize(_cartoon_face(min(label, 6), rng), (120, 120)), cv2.COLOR_GRAY2BGR
                        )
                        save(base / "Manually_Annotated_Images" / relative, canvas)
                        writer.writerow([relative, 30, 20, 120, 120, "", code, 0.0, 0.0])
    elif name in ("imagefolder", "videofolder"):
        rows = ["file,subject,gender"]
        for label, emotion in enumerate(EMOTIONS):
            for i in range(per_class):
                subject = f"P{(label * per_class + i) % 5:02d}"
                if name == "imagefolder":
                    relative = f"{emotion}/{subject}_{emotion}_{i}.png"
                    save(base / relative, _cartoon_face(label, rng))
                else:
                    relative = f"{emotion}/{subject}_{emotion}_{i}"
                    for f in range(4):
                        save(
                            base / relative / f"frame_{f:03d}.png", _cartoon_face(6 if f == 0 else label, rng)
                        )
                gender = "female" if int(subject[1:]) % 2 else "male"
                rows.append(f"{relative},{subject},{gender}")
        (base / "groups.csv").write_text("\n".join(rows) + "\n")
    else:
        raise ConfigError.unknown("example layout", name, EXAMPLE_LAYOUTS)
    return base
