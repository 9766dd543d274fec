"""Predict on videos and the webcam, and ``ferlib predict``'s loop over images and videos.

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
failed run never leaves files that look complete (:mod:`ferlib.deploy.outputs`).

A video model (``ferlib_kind == "video"``, input ``[T, C, H, W]``) classifies, for each
track, the window of its last ``T`` face crops (the first crop repeated until ``T`` are seen).

The checkpoint is loaded, and images are predicted, by :mod:`ferlib.deploy.predictor`;
:func:`predict_paths` takes both, telling videos by their suffix
(:data:`ferlib.data.real.VIDEO_SUFFIXES`).
"""

from __future__ import annotations

import csv
import os
import time
from array import array
from collections import deque
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import cv2
import numpy as np
import torch

from ferlib.data.faces import FaceDetector
from ferlib.data.real import VIDEO_SUFFIXES
from ferlib.deploy.outputs import commit, discard, draw_box, partial, top_label
from ferlib.deploy.predictor import Predictor, predict_image, torch_threads
from ferlib.errors import DataError, FerlibError, NoFaceError

# FFmpeg's own log lines (e.g. "moov atom not found" for a truncated MP4) would break the
# one-line error contract; ferlib reports unreadable videos itself. Read when OpenCV first
# opens a video; a user's explicit setting wins.
os.environ.setdefault("OPENCV_FFMPEG_LOGLEVEL", "-8")

TIMELINE_COLUMNS = ["frame", "time_s", "track", "x", "y", "w", "h", "emotion", "probability"]

__all__ = ["TIMELINE_COLUMNS", "is_video", "predict_paths", "predict_video", "predict_webcam"]


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


def _video_detector() -> FaceDetector:
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
        with open(partial(outputs[0]), "w", newline="") as handle:
            table = csv.writer(handle)
            table.writerow(TIMELINE_COLUMNS + [f"prob_{name}" for name in names])
            while True:
                ok, frame = capture.read()
                if not ok or frame is None:
                    break
                if writer is None and write_video:
                    height, width = frame.shape[:2]
                    writer = cv2.VideoWriter(
                        str(partial(outputs[1])), cv2.VideoWriter_fourcc(*"mp4v"), fps, (width, height)
                    )
                    if not writer.isOpened():
                        raise FerlibError(f"OpenCV could not write {outputs[1]} (mp4v codec)")
                detect = frames % every == 0
                tracks = _track_and_classify(frame, detect, tracker, detector, detect_width, predictor, smooth)
                if tracks:
                    for track in tracks:
                        emotion, probability = top_label(names, track.probs)
                        x, y, w, h = track.box
                        table.writerow(
                            [frames, f"{frames / fps:.4f}", track.id, x, y, w, h, emotion, f"{probability:.6f}"]
                            + [f"{v:.6f}" for v in track.probs]
                        )
                        times.append(frames / fps)
                        track_ids.append(track.id)
                        prob_rows.extend(track.probs.astype(np.float32).tolist())
                        if writer is not None:
                            draw_box(frame, track.box, f"#{track.id} {emotion} {probability:.2f}")
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
            _plot_timeline(partial(outputs[-1]), times, track_ids, probs_np, names, f"{path.name}: {predictor.name}")
        commit(outputs)
    finally:
        if bar is not None:
            bar.close()
        if writer is not None:
            writer.release()
        capture.release()
        discard(outputs)
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
                    emotion, probability = top_label(predictor.class_names, track.probs)
                    draw_box(frame, track.box, f"{emotion} {probability:.2f}")
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
    """Whether ``path`` has a video suffix (:data:`ferlib.data.real.VIDEO_SUFFIXES`, any case)."""
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
