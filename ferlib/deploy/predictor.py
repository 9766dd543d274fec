"""Run a trained checkpoint on photos and videos: ``ferlib predict``.

    predictor = load_predictor("runs/demo/best.ckpt")
    predict_image("photo.jpg", predictor, "predictions/")   # annotated PNG + CSV + JSON
    predict_video("clip.mp4", predictor, "predictions/")    # annotated MP4 + timeline CSV + plot

This module loads a checkpoint (:class:`Predictor`) and predicts on images; videos, the webcam
and ``ferlib predict``'s loop over many paths are in :mod:`ferlib.deploy.video`.

**Images.** Faces are found with OpenCV's bundled Haar cascade (:mod:`ferlib.data.faces`),
levelled on the eyes when both are found, cropped (square, ``margin`` around the box),
resized and converted to the checkpoint's input (its size and channels are read from the
checkpoint: ``train_config.input_shape`` written by :func:`ferlib.fit`, else 48x48 and the
model's ``in_channels``) and classified in one batch (on the centre crop, for a model trained
with :func:`ferlib.fit`'s ``crop``). For ``photo.jpg`` the outputs are

* ``photo.annotated.png``: boxes with the top emotion and its probability;
* ``photo.faces.csv``: one row per face, columns :data:`FACE_COLUMNS` then ``prob_<class>``;
* ``photo.faces.json``: ``{"source", "checkpoint", "model", "classes", "image": {"width",
  "height"}, "faces": [{"face", "box": {"x", "y", "w", "h"}, "emotion", "probability",
  "probabilities": {class: p}}]}``.

An image without a face is an error (:class:`~ferlib.errors.NoFaceError`) and writes
nothing (outputs appear only when complete: :mod:`ferlib.deploy.outputs`).

**Speed.** On the CPU, :func:`load_predictor` classifies with
:func:`ferlib.deploy.optimize.optimize_for_inference` (batch norm folded into the convolutions,
channels-last weights; cnn_small ran about twice as fast on a 2-core CPU); it is used only
when it gives the same classes and logits within 1e-4 on a test batch, else the model runs as
loaded.
``predictor.model`` is always the model as loaded (export, explanations).
"""

from __future__ import annotations

import csv
import json
import os
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path

import cv2
import numpy as np
import torch

from ferlib.data.faces import detect_faces, preprocess_face, read_image
from ferlib.data.labels import EMOTIONS
from ferlib.data.transforms import center_crop, crop_size
from ferlib.deploy.optimize import optimize_for_inference
from ferlib.deploy.outputs import commit, discard, draw_box, partial, top_label, write_png
from ferlib.errors import DataError, FerlibError, NoFaceError
from ferlib.models.checkpoint import load_checkpoint, read_checkpoint
from ferlib.runtime import resolve_device

FACE_COLUMNS = ["face", "x", "y", "w", "h", "emotion", "probability"]

__all__ = ["FACE_COLUMNS", "Predictor", "load_predictor", "predict_image", "torch_threads"]


@dataclass
class Predictor:
    """A loaded model and what its inputs must look like."""

    model: torch.nn.Module
    channels: int
    image_size: tuple[int, int]
    kind: str = "static"
    frames: int = 1
    class_names: list[str] = field(default_factory=list)
    device: torch.device = field(default_factory=lambda: torch.device("cpu"))
    checkpoint: str = ""
    margin: float = 0.1
    runner: torch.nn.Module | None = None  # a faster copy of model for classify (see load_predictor)
    crop_fraction: float | None = None  # a model trained on crops (fit's ``crop``) classifies the centre crop

    @property
    def name(self) -> str:
        return getattr(self.model, "ferlib_name", type(self.model).__name__)

    @property
    def model_input_shape(self) -> tuple[int, ...]:
        """One input as the model sees it: ``(C, H, W)`` (the centre crop's size for a model
        trained on crops), ``(T, C, H, W)`` for a video model."""
        shape = (self.channels, *self.image_size)
        if self.crop_fraction is not None:
            shape = (self.channels, *crop_size(self.crop_fraction, shape))
        return (self.frames, *shape) if self.kind == "video" else shape

    def crop(self, image: np.ndarray, box, align: bool = False) -> torch.Tensor:
        """The model input ``[C, H, W]`` for one face ``box`` of ``image`` (RGB or grayscale uint8)."""
        return preprocess_face(image, box, self.image_size, channels=self.channels, align=align, margin=self.margin)

    @torch.inference_mode()
    def classify(self, inputs: torch.Tensor) -> np.ndarray:
        """Softmax probabilities ``[N, classes]`` for a batch of inputs."""
        model = self.runner if self.runner is not None else self.model
        if self.crop_fraction is not None:
            inputs = center_crop(inputs, crop_size(self.crop_fraction, inputs.shape))
        logits = model(inputs.to(self.device))
        return torch.softmax(logits.float(), dim=1).cpu().numpy()


def load_predictor(
    checkpoint: str | os.PathLike,
    device: str = "cpu",
    image_size: int | None = None,
    margin: float = 0.1,
    optimize: bool = True,
) -> Predictor:
    """Load a checkpoint for prediction; a missing or broken file raises ``CheckpointError``.

    ``optimize`` (CPU only): classify with :func:`~ferlib.deploy.optimize.optimize_for_inference`'s
    copy (``predictor.runner``) when it matches the model on a random batch of the predictor's
    input shape; otherwise, or with ``optimize=False``, with the model itself.
    """
    state = read_checkpoint(checkpoint)
    resolved = resolve_device(device)
    model = load_checkpoint(checkpoint, device=resolved)
    config = state.get("model_config", {}) or {}
    kind = getattr(model, "ferlib_kind", "static")
    shape = (state.get("train_config") or {}).get("input_shape")
    channels = int(config.get("in_channels", getattr(model, "in_channels", 1)))
    frames = 1
    if shape:
        channels = int(shape[-3])
        size = (int(shape[-2]), int(shape[-1]))
        if len(shape) == 4:
            frames = int(shape[0])
    else:
        side = int(config.get("image_size", 48))
        size = (side, side)
        if kind == "video":
            frames = int(config.get("frames", 16))
    if image_size:
        size = (int(image_size), int(image_size))
    num_classes = int(config.get("num_classes", len(EMOTIONS)))
    names = list(EMOTIONS) if num_classes == len(EMOTIONS) else [f"class_{i}" for i in range(num_classes)]
    crop = (state.get("train_config") or {}).get("crop")
    predictor = Predictor(
        model, channels, size, kind, frames, names, resolved, str(checkpoint), margin, crop_fraction=crop
    )
    if optimize and torch.device(resolved).type == "cpu":
        predictor.runner = _optimized(predictor)
    return predictor


def _optimized(predictor: Predictor) -> torch.nn.Module | None:
    """The model's optimize_for_inference copy, checked on a random batch of its input; None if it
    differs or fails (the model is then used as it is)."""
    example = torch.rand(3, *predictor.model_input_shape, generator=torch.Generator().manual_seed(0))
    try:
        return optimize_for_inference(predictor.model, example)
    except (ValueError, RuntimeError, TypeError):
        return None


@contextmanager
def torch_threads(threads: int | None):
    """Run the block with ``torch.set_num_threads(threads)`` (None: unchanged), then restore."""
    previous = torch.get_num_threads()
    if threads:
        torch.set_num_threads(int(threads))
    try:
        yield
    finally:
        torch.set_num_threads(previous)


def predict_image(
    path: str | os.PathLike,
    predictor: Predictor,
    out: str | os.PathLike,
    detector=None,
    threads: int | None = 1,
) -> dict:
    """Detect and classify every face of one image; write the annotated PNG, CSV and JSON.

    Returns the JSON record plus ``"outputs"`` (the written paths). Raises ``DataError`` for an
    unreadable file and ``NoFaceError`` when no face is found (nothing is written then).
    ``threads``: torch's intra-op threads while classifying (see :func:`predict_video`).
    """
    path, out = Path(path), Path(out)
    if predictor.kind == "video":
        raise FerlibError(f"{predictor.name} is a video model: give it a video, not the image {path.name}")
    if not path.is_file():
        raise DataError(f"no such file: {path}")
    image = read_image(path, channels=3)
    faces = detect_faces(image, detector)
    if not faces:
        raise NoFaceError(f"no face found in {path} ({image.shape[1]}x{image.shape[0]})")
    batch = torch.stack([predictor.crop(image, box, align=True) for box in faces])
    with torch_threads(threads):
        probs = predictor.classify(batch)
    names = predictor.class_names
    annotated = cv2.cvtColor(image, cv2.COLOR_RGB2BGR)
    records = []
    for index, (box, p) in enumerate(zip(faces, probs, strict=True)):
        emotion, probability = top_label(names, p)
        draw_box(annotated, box.as_tuple(), f"{emotion} {probability:.2f}")
        records.append(
            {
                "face": index,
                "box": {"x": box.x, "y": box.y, "w": box.w, "h": box.h},
                "emotion": emotion,
                "probability": probability,
                "probabilities": {name: float(v) for name, v in zip(names, p, strict=True)},
            }
        )
    result = {
        "source": str(path),
        "checkpoint": predictor.checkpoint,
        "model": predictor.name,
        "classes": names,
        "image": {"width": int(image.shape[1]), "height": int(image.shape[0])},
        "faces": records,
    }
    out.mkdir(parents=True, exist_ok=True)
    outputs = [out / f"{path.stem}.annotated.png", out / f"{path.stem}.faces.csv", out / f"{path.stem}.faces.json"]
    try:
        write_png(partial(outputs[0]), annotated)
        with open(partial(outputs[1]), "w", newline="") as handle:
            writer = csv.writer(handle)
            writer.writerow(FACE_COLUMNS + [f"prob_{name}" for name in names])
            for record, p in zip(records, probs, strict=True):
                box = record["box"]
                writer.writerow(
                    [record["face"], box["x"], box["y"], box["w"], box["h"], record["emotion"]]
                    + [f"{record['probability']:.6f}"]
                    + [f"{v:.6f}" for v in p]
                )
        partial(outputs[2]).write_text(json.dumps(result, indent=2) + "\n")
        commit(outputs)
    finally:
        discard(outputs)
    return {**result, "outputs": [str(p) for p in outputs]}
