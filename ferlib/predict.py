"""Run a trained checkpoint on photos and videos: ``ferlib predict``.

    predictor = load_predictor("runs/demo/best.ckpt")
    predict_image("photo.jpg", predictor, "predictions/")   # annotated PNG + CSV + JSON
    predict_video("clip.mp4", predictor, "predictions/")    # annotated MP4 + timeline CSV + plot

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

An image without a face is an error (:class:`~ferlib.data.faces.NoFaceError`) and writes
nothing.

**Videos** are streamed frame by frame with ``cv2.VideoCapture`` (never loaded whole; memory
stays flat with the video's length). Faces are detected every ``every``-th frame on a copy
scaled to at most ``detect_width`` pixels wide; between detections the boxes are carried
over, and detections are linked to tracks by IoU (or, failing that, the nearest centre).
Each track's face is classified on every frame (all faces of a frame in one batch) and its
probabilities are smoothed with an exponential moving average, ``p = a * new + (1 - a) *
p_prev`` with ``a = smooth`` (1 means no smoothing). For ``clip.mp4`` the outputs are

* ``clip.annotated.mp4`` (codec mp4v, the input's frame rate);
* ``clip.timeline.csv``: one row per (frame, track), columns :data:`TIMELINE_COLUMNS` then
  ``prob_<class>`` (smoothed probabilities);
* ``clip.timeline.png``: each track's smoothed probabilities over time.

A video that cannot be opened, has no frames, ends before its stated frame count
(truncated) or never shows a face is an error. Every output is written under a temporary
``.partial`` name and renamed only when the input has been processed completely, so a
failed run never leaves files that look complete.

A video model (``ferlib_kind == "video"``, input ``[T, C, H, W]``) classifies, for each
track, the window of its last ``T`` face crops (the first crop repeated until ``T`` are seen).

**Speed.** On the CPU, :func:`load_predictor` classifies with
:func:`ferlib.efficiency.optimize_for_inference` (batch norm folded into the convolutions,
channels-last weights; cnn_small ran about twice as fast on a 2-core CPU); it is used only
when it gives the same classes and logits within 1e-4 on a test batch, else the model runs as
loaded.
``predictor.model`` is always the model as loaded (export, explanations).
"""

from __future__ import annotations

import csv
import json
import os
import time
from array import array
from collections import deque
from collections.abc import Iterable, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path

import cv2
import numpy as np
import torch

from ferlib.data.transforms import center_crop, crop_size
from ferlib.errors import DataError, FerlibError

# FFmpeg's own log lines (e.g. "moov atom not found" for a truncated MP4) would break the
# one-line error contract; ferlib reports unreadable videos itself. Read when OpenCV first
# opens a video; a user's explicit setting wins.
os.environ.setdefault("OPENCV_FFMPEG_LOGLEVEL", "-8")

VIDEO_SUFFIXES = {".mp4", ".avi", ".mov", ".mkv", ".webm", ".m4v", ".mpg", ".mpeg", ".wmv"}
FACE_COLUMNS = ["face", "x", "y", "w", "h", "emotion", "probability"]
TIMELINE_COLUMNS = ["frame", "time_s", "track", "x", "y", "w", "h", "emotion", "probability"]

__all__ = [
    "FACE_COLUMNS",
    "TIMELINE_COLUMNS",
    "Predictor",
    "load_predictor",
    "predict_image",
    "predict_paths",
    "predict_video",
    "predict_webcam",
]


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
        from ferlib.data.faces import preprocess_face

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

    ``optimize`` (CPU only): classify with :func:`ferlib.efficiency.optimize_for_inference`'s
    copy (``predictor.runner``) when it matches the model on a random batch of the predictor's
    input shape; otherwise, or with ``optimize=False``, with the model itself.
    """
    import ferlib
    from ferlib.data import EMOTIONS
    from ferlib.runtime import resolve_device

    state = ferlib.read_checkpoint(checkpoint)
    resolved = resolve_device(device)
    model = ferlib.load_checkpoint(checkpoint, device=resolved)
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
    from ferlib.efficiency import optimize_for_inference

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


def _partial(path: Path) -> Path:
    """``x.annotated.png`` -> ``x.annotated.partial.png`` (the suffix kept for OpenCV's writers)."""
    return path.with_name(f"{path.stem}.partial{path.suffix}")


def _commit(paths: Iterable[Path]) -> None:
    for final in paths:
        os.replace(_partial(final), final)


def _discard(paths: Iterable[Path]) -> None:
    for final in paths:
        _partial(final).unlink(missing_ok=True)


def _label(names: Sequence[str], probs: np.ndarray) -> tuple[str, float]:
    top = int(np.argmax(probs))
    return names[top], float(probs[top])


def _draw(frame_bgr: np.ndarray, box, text: str, colour=(40, 220, 40)) -> None:
    x, y, w, h = (int(v) for v in box)
    thickness = max(1, round(min(frame_bgr.shape[:2]) / 240))
    cv2.rectangle(frame_bgr, (x, y), (x + w, y + h), colour, thickness)
    scale = max(0.4, min(frame_bgr.shape[:2]) / 700)
    (tw, th), base = cv2.getTextSize(text, cv2.FONT_HERSHEY_SIMPLEX, scale, thickness)
    top = y - th - base - 4 if y - th - base - 4 >= 0 else y + h
    cv2.rectangle(frame_bgr, (x, top), (x + tw + 4, top + th + base + 4), colour, -1)
    cv2.putText(frame_bgr, text, (x + 2, top + th + 2), cv2.FONT_HERSHEY_SIMPLEX, scale, (0, 0, 0), thickness)


def _write_png(path: Path, image_bgr: np.ndarray) -> None:
    ok, buffer = cv2.imencode(".png", image_bgr)
    if not ok:
        raise FerlibError(f"could not encode {path}")
    buffer.tofile(str(path))


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
    from ferlib.data.faces import NoFaceError, detect_faces, read_image

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
        emotion, probability = _label(names, p)
        _draw(annotated, box.as_tuple(), f"{emotion} {probability:.2f}")
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
        _write_png(_partial(outputs[0]), annotated)
        with open(_partial(outputs[1]), "w", newline="") as handle:
            writer = csv.writer(handle)
            writer.writerow(FACE_COLUMNS + [f"prob_{name}" for name in names])
            for record, p in zip(records, probs, strict=True):
                box = record["box"]
                writer.writerow(
                    [record["face"], box["x"], box["y"], box["w"], box["h"], record["emotion"]]
                    + [f"{record['probability']:.6f}"]
                    + [f"{v:.6f}" for v in p]
                )
        _partial(outputs[2]).write_text(json.dumps(result, indent=2) + "\n")
        _commit(outputs)
    finally:
        _discard(outputs)
    return {**result, "outputs": [str(p) for p in outputs]}


# --------------------------------------------------------------------------- tracking


def _iou(a, b) -> float:
    ax, ay, aw, ah = a
    bx, by, bw, bh = b
    iw = max(0, min(ax + aw, bx + bw) - max(ax, bx))
    ih = max(0, min(ay + ah, by + bh) - max(ay, by))
    inter = iw * ih
    union = aw * ah + bw * bh - inter
    return inter / union if union > 0 else 0.0


@dataclass
class _Track:
    id: int
    box: tuple[int, int, int, int]
    probs: np.ndarray | None = None
    missed: int = 0
    window: deque | None = None


class _Tracker:
    """Greedy IoU matching of detections to tracks, then nearest centre within one box side."""

    def __init__(self, iou_threshold: float = 0.3, max_missed: int = 2):
        self.tracks: list[_Track] = []
        self.iou_threshold = iou_threshold
        self.max_missed = max_missed
        self._next = 0

    def update(self, boxes: list[tuple[int, int, int, int]]) -> None:
        unmatched = list(range(len(boxes)))
        pairs = sorted(
            ((_iou(t.box, boxes[j]), i, j) for i, t in enumerate(self.tracks) for j in unmatched),
            reverse=True,
        )
        used_tracks = set()
        for score, i, j in pairs:
            if score < self.iou_threshold:
                break
            if i in used_tracks or j not in unmatched:
                continue
            self.tracks[i].box, self.tracks[i].missed = boxes[j], 0
            used_tracks.add(i)
            unmatched.remove(j)
        for j in list(unmatched):  # nearest centre for boxes that moved fast
            bx, by, bw, bh = boxes[j]
            best, best_distance = None, float("inf")
            for i, track in enumerate(self.tracks):
                if i in used_tracks:
                    continue
                tx, ty, tw, th = track.box
                distance = np.hypot(bx + bw / 2 - tx - tw / 2, by + bh / 2 - ty - th / 2)
                if distance < max(bw, tw) and distance < best_distance:
                    best, best_distance = i, distance
            if best is not None:
                self.tracks[best].box, self.tracks[best].missed = boxes[j], 0
                used_tracks.add(best)
                unmatched.remove(j)
        for i, track in enumerate(self.tracks):
            if i not in used_tracks:
                track.missed += 1
        self.tracks = [t for t in self.tracks if t.missed <= self.max_missed]
        for j in unmatched:
            self.tracks.append(_Track(self._next, boxes[j]))
            self._next += 1


def _detect_scaled(detector, gray: np.ndarray, detect_width: int | None) -> list[tuple[int, int, int, int]]:
    """Face boxes of a grayscale frame, detected on a copy at most ``detect_width`` wide."""
    scale = 1.0
    small = gray
    if detect_width and gray.shape[1] > detect_width:
        scale = gray.shape[1] / detect_width
        small = cv2.resize(gray, (detect_width, round(gray.shape[0] / scale)), interpolation=cv2.INTER_AREA)
    return [tuple(int(round(v * scale)) for v in box.as_tuple()) for box in detector.detect(small)]


def _video_detector():
    from ferlib.data.faces import FaceDetector

    # No eye search (alignment is skipped on video frames: it costs more than it helps at speed).
    return FaceDetector(find_eyes=False)


def _track_and_classify(frame, detect: bool, tracker, detector, detect_width, predictor, smooth: float) -> list:
    """One video frame: detect faces (when ``detect``), update the tracks, classify every face
    seen in this frame and smooth each track's probabilities (EMA); returns those tracks."""
    gray = cv2.cvtColor(frame, cv2.COLOR_BGR2GRAY)
    if detect:
        tracker.update(_detect_scaled(detector, gray, detect_width))
    tracks = [t for t in tracker.tracks if t.missed == 0]
    if tracks:
        source = gray if predictor.channels == 1 else cv2.cvtColor(frame, cv2.COLOR_BGR2RGB)
        probs = predictor.classify(_prepare_tracks(tracks, source, predictor))
        for track, p in zip(tracks, probs, strict=True):
            track.probs = p if track.probs is None else smooth * p + (1.0 - smooth) * track.probs
    return tracks


def _prepare_tracks(tracks: list[_Track], frame: np.ndarray, predictor: Predictor) -> torch.Tensor:
    crops = [predictor.crop(frame, track.box) for track in tracks]
    if predictor.kind != "video":
        return torch.stack(crops)
    windows = []
    for track, crop in zip(tracks, crops, strict=True):
        if track.window is None:
            track.window = deque([crop] * predictor.frames, maxlen=predictor.frames)
        else:
            track.window.append(crop)
        windows.append(torch.stack(list(track.window)))
    return torch.stack(windows)


def _plot_timeline(path: Path, times: array, tracks: array, probs: np.ndarray, names: Sequence[str], title: str):
    # A Figure of its own, not pyplot: choosing a backend here would switch off a notebook's
    # inline plots for the rest of its session.
    from matplotlib.figure import Figure

    times_np, tracks_np = np.frombuffer(times, dtype=np.float32), np.frombuffer(tracks, dtype=np.int32)
    ids, counts = np.unique(tracks_np, return_counts=True)
    shown = ids[np.argsort(-counts)][:4]  # the longest tracks
    fig = Figure(figsize=(8, 2.4 * len(shown) + 0.6))
    axes = fig.subplots(len(shown), 1, squeeze=False, sharex=True)
    for ax, track in zip(axes[:, 0], shown, strict=True):
        rows = tracks_np == track
        for k, name in enumerate(names):
            ax.plot(times_np[rows], probs[rows, k], label=name, lw=1.4)
        ax.set_ylim(0, 1)
        ax.set_ylabel(f"track {track}\nprobability")
    axes[-1, 0].set_xlabel("time (s)")
    axes[0, 0].legend(ncol=min(len(names), 7), fontsize=7, loc="upper center", bbox_to_anchor=(0.5, 1.35))
    fig.suptitle(title, y=0.995, fontsize=10)
    fig.tight_layout()
    fig.savefig(path, dpi=110, format="png")


def predict_video(
    path: str | os.PathLike,
    predictor: Predictor,
    out: str | os.PathLike,
    *,
    every: int = 3,
    smooth: float = 0.3,
    detect_width: int | None = 320,
    progress: bool = True,
    write_video: bool = True,
    plot: bool = True,
    threads: int | None = 1,
) -> dict:
    """Stream a video: detect, track, classify and smooth; write the annotated video, timeline
    CSV and plot (see the module docstring). Returns a summary dict with ``"outputs"``.

    ``threads``: torch's intra-op threads during the run (default 1: a batch of one or two
    faces gains nothing from more, and on a busy CPU extra threads cost more than they give;
    None keeps torch's setting).
    """
    with torch_threads(threads):
        return _predict_video(path, predictor, out, every, smooth, detect_width, progress, write_video, plot)


def _predict_video(path, predictor, out, every, smooth, detect_width, progress, write_video, plot) -> dict:
    from ferlib.data.faces import NoFaceError

    path, out = Path(path), Path(out)
    if every < 1:
        raise ValueError(f"--every must be >= 1, got {every}")
    if not 0.0 < smooth <= 1.0:
        raise ValueError(f"--smooth must be in (0, 1], got {smooth}")
    if not path.is_file():
        raise DataError(f"no such file: {path}")
    if path.stat().st_size == 0:
        raise DataError(f"cannot read video {path}: the file is empty")
    capture = cv2.VideoCapture(str(path))
    if not capture.isOpened():
        capture.release()
        raise DataError(f"cannot open video {path}: not a video, truncated, or a codec OpenCV lacks")
    fps = capture.get(cv2.CAP_PROP_FPS) or 0.0
    fps = fps if 0 < fps < 1000 else 25.0
    stated = int(capture.get(cv2.CAP_PROP_FRAME_COUNT) or 0)
    names = predictor.class_names
    out.mkdir(parents=True, exist_ok=True)
    outputs = [out / f"{path.stem}.timeline.csv"]
    if write_video:
        outputs.append(out / f"{path.stem}.annotated.mp4")
    if plot:
        outputs.append(out / f"{path.stem}.timeline.png")
    detector = _video_detector()
    tracker = _Tracker(max_missed=max(1, 2 // every + 1))
    writer = None
    times, track_ids, prob_rows = array("f"), array("i"), array("f")
    frames = faces_seen = 0
    started = time.perf_counter()
    bar = None
    try:
        if progress:
            from tqdm.auto import tqdm

            bar = tqdm(total=stated or None, desc=path.name, unit="frame", leave=False)
        with open(_partial(outputs[0]), "w", newline="") as handle:
            table = csv.writer(handle)
            table.writerow(TIMELINE_COLUMNS + [f"prob_{name}" for name in names])
            while True:
                ok, frame = capture.read()
                if not ok or frame is None:
                    break
                if writer is None and write_video:
                    height, width = frame.shape[:2]
                    writer = cv2.VideoWriter(
                        str(_partial(outputs[1])), cv2.VideoWriter_fourcc(*"mp4v"), fps, (width, height)
                    )
                    if not writer.isOpened():
                        raise FerlibError(f"OpenCV could not write {outputs[1]} (mp4v codec)")
                detect = frames % every == 0
                tracks = _track_and_classify(frame, detect, tracker, detector, detect_width, predictor, smooth)
                if tracks:
                    for track in tracks:
                        emotion, probability = _label(names, track.probs)
                        x, y, w, h = track.box
                        table.writerow(
                            [frames, f"{frames / fps:.4f}", track.id, x, y, w, h, emotion, f"{probability:.6f}"]
                            + [f"{v:.6f}" for v in track.probs]
                        )
                        times.append(frames / fps)
                        track_ids.append(track.id)
                        prob_rows.extend(track.probs.astype(np.float32).tolist())
                        if writer is not None:
                            _draw(frame, track.box, f"#{track.id} {emotion} {probability:.2f}")
                    faces_seen += len(tracks)
                if writer is not None:
                    writer.write(frame)
                frames += 1
                if bar is not None:
                    bar.update(1)
        if frames == 0:
            raise DataError(f"cannot read video {path}: it has no frames (empty or truncated)")
        if stated and frames < 0.9 * stated - 1:
            raise DataError(f"video {path} is truncated: read {frames} of its {stated} frames")
        if faces_seen == 0:
            raise NoFaceError(f"no face found in any of the {frames} frames of {path}")
        if writer is not None:
            writer.release()
            writer = None
        if plot:
            probs_np = np.frombuffer(prob_rows, dtype=np.float32).reshape(-1, len(names))
            _plot_timeline(_partial(outputs[-1]), times, track_ids, probs_np, names, f"{path.name}: {predictor.name}")
        _commit(outputs)
    finally:
        if bar is not None:
            bar.close()
        if writer is not None:
            writer.release()
        capture.release()
        _discard(outputs)
    seconds = time.perf_counter() - started
    return {
        "source": str(path),
        "frames": frames,
        "fps": fps,
        "rows": len(track_ids),
        "tracks": len(set(track_ids)),
        "seconds": seconds,
        "frames_per_s": frames / seconds if seconds > 0 else float("nan"),
        "outputs": [str(p) for p in outputs],
    }


def predict_webcam(predictor: Predictor, camera: int = 0, every: int = 3, smooth: float = 0.3) -> None:
    """A live loop on camera ``camera``: boxes, smoothed emotion and an FPS counter in a window;
    press ``q`` or Esc to stop. Needs an OpenCV build with GUI support (``opencv-python``, not
    the headless wheel) and a camera; not run by the tests."""
    capture = cv2.VideoCapture(camera)
    if not capture.isOpened():
        raise DataError(f"cannot open camera {camera}")
    detector = _video_detector()
    tracker = _Tracker()
    frames, last, fps = 0, time.perf_counter(), 0.0
    torch.set_num_threads(1)
    try:
        while True:
            ok, frame = capture.read()
            if not ok:
                break
            tracks = _track_and_classify(frame, frames % every == 0, tracker, detector, 320, predictor, smooth)
            if tracks:
                for track in tracks:
                    emotion, probability = _label(predictor.class_names, track.probs)
                    _draw(frame, track.box, f"{emotion} {probability:.2f}")
            now = time.perf_counter()
            fps = 0.9 * fps + 0.1 / max(now - last, 1e-6) if frames else 0.0
            last = now
            cv2.putText(frame, f"{fps:.1f} FPS", (10, 24), cv2.FONT_HERSHEY_SIMPLEX, 0.7, (0, 0, 255), 2)
            try:
                cv2.imshow("ferlib predict", frame)
                key = cv2.waitKey(1) & 0xFF
            except cv2.error as error:
                raise FerlibError(
                    "--webcam needs OpenCV with GUI support: pip install opencv-python (not -headless)"
                ) from error
            if key in (ord("q"), 27):
                break
            frames += 1
    finally:
        capture.release()
        try:
            cv2.destroyAllWindows()
        except cv2.error:
            pass


def is_video(path: str | os.PathLike) -> bool:
    return Path(path).suffix.lower() in VIDEO_SUFFIXES


def predict_paths(
    paths: Sequence[str | os.PathLike],
    predictor: Predictor,
    out: str | os.PathLike,
    *,
    every: int = 3,
    smooth: float = 0.3,
    progress: bool = True,
    on_result=None,
) -> tuple[list[dict], list[str]]:
    """Predict every path (images and videos by suffix); returns ``(results, failures)`` where a
    failure is ``"path: message"``. One bad input does not stop the others."""
    results, failures = [], []
    for path in paths:
        try:
            if is_video(path):
                result = predict_video(path, predictor, out, every=every, smooth=smooth, progress=progress)
            else:
                result = predict_image(path, predictor, out)
        except (FerlibError, ValueError, OSError) as error:
            message = str(error).strip().splitlines()[0] if str(error).strip() else type(error).__name__
            failures.append(message if str(path) in message else f"{path}: {message}")
            continue
        results.append(result)
        if on_result is not None:
            on_result(result)
    return results, failures


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
    from ferlib.data.synth import SynthFER

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
