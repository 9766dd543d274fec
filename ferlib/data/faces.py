"""Face preprocessing for real photos and video frames: detect, align, crop, enhance.

The same steps serve a dataset loader, a chapter and ``ferlib predict``:

    image = read_image("photo.jpg")                 # RGB uint8 array
    for box in detect_faces(image):                 # OpenCV Haar cascade by default
        x = preprocess_face(image, box, size=48)    # float32 tensor [1, 48, 48] in [0, 1]

Detection uses OpenCV's bundled frontal-face Haar cascade (Viola and Jones 2001), or the
YuNet DNN detector (``cv2.FaceDetectorYN``) when the user gives its ONNX model file; no model
is downloaded. Alignment rotates the image so that the eyes lie on a horizontal line when
both eyes are found (YuNet landmarks, else the Haar eye cascade). Contrast enhancement is
global histogram equalisation or CLAHE (Zuiderveld 1994), the step that Pitaloka et al.
(2017) found to help CNNs on FER.

Colour arrays are RGB (as from PIL, scikit-image or :func:`read_image`), never OpenCV's BGR.
"""

from __future__ import annotations

import os
import threading
from dataclasses import dataclass, field
from functools import lru_cache
from pathlib import Path

import cv2
import numpy as np
import torch

from ferlib.errors import ConfigError, DataError, NoFaceError

__all__ = [
    "FaceBox",
    "FaceDetector",
    "NoFaceError",
    "align_face",
    "apply_clahe",
    "crop_face",
    "detect_eyes",
    "detect_faces",
    "equalize_histogram",
    "preprocess_face",
    "read_image",
    "to_gray",
    "to_uint8",
]


@dataclass(frozen=True)
class FaceBox:
    """A face: its box in pixels (``x``, ``y`` top-left; ``w``, ``h``), a detector score, and
    the eye centres ``(x, y)`` in image coordinates when known (the subject's right eye first,
    i.e. the one on the image's left)."""

    x: int
    y: int
    w: int
    h: int
    score: float = 1.0
    eyes: tuple[tuple[float, float], tuple[float, float]] | None = field(default=None, compare=False)

    def as_tuple(self) -> tuple[int, int, int, int]:
        return (self.x, self.y, self.w, self.h)

    @property
    def area(self) -> int:
        return self.w * self.h


def read_image(path: str | os.PathLike, channels: int = 3) -> np.ndarray:
    """Read an image file as uint8: ``[H, W]`` for ``channels=1``, RGB ``[H, W, 3]`` for 3.

    Raises :class:`~ferlib.errors.DataError` naming the file when it is missing or cannot
    be decoded.
    """
    path = Path(path)
    flag = cv2.IMREAD_GRAYSCALE if channels == 1 else cv2.IMREAD_COLOR
    # np.fromfile + imdecode copes with non-ASCII paths, which cv2.imread does not on Windows.
    try:
        buffer = np.fromfile(str(path), dtype=np.uint8)
    except OSError as error:
        raise DataError(f"cannot read image {path}: {error}") from error
    image = cv2.imdecode(buffer, flag) if buffer.size else None
    if image is None:
        raise DataError(f"cannot decode image {path}: the file is empty, truncated or not an image")
    if channels == 3:
        image = cv2.cvtColor(image, cv2.COLOR_BGR2RGB)
    return image


def to_uint8(image) -> np.ndarray:
    """An image as a uint8 numpy array ``[H, W]`` or ``[H, W, 3]`` (RGB).

    Accepts uint8/float numpy arrays (``[H, W]``, ``[H, W, C]``), float tensors ``[C, H, W]``
    in [0, 1], and PIL images.
    """
    if isinstance(image, torch.Tensor):
        array = image.detach().cpu()
        if array.ndim == 3:
            array = array.permute(1, 2, 0)
        array = array.numpy()
    else:
        array = np.asarray(image)
    if array.dtype != np.uint8:
        array = np.asarray(array, dtype=np.float64)
        if array.size and array.max() <= 1.0:
            array = array * 255.0
        array = np.clip(np.rint(array), 0, 255).astype(np.uint8)
    if array.ndim == 3 and array.shape[2] == 1:
        array = array[:, :, 0]
    if array.ndim == 3 and array.shape[2] == 4:
        array = array[:, :, :3]
    if array.ndim not in (2, 3):
        raise ValueError(f"expected an image [H, W] or [H, W, C], got shape {array.shape}")
    return np.ascontiguousarray(array)


def to_gray(image) -> np.ndarray:
    """A uint8 grayscale ``[H, W]`` copy of an image (RGB input)."""
    array = to_uint8(image)
    return array if array.ndim == 2 else cv2.cvtColor(array, cv2.COLOR_RGB2GRAY)


def equalize_histogram(image) -> np.ndarray:
    """Global histogram equalisation; colour images are equalised on luminance only."""
    array = to_uint8(image)
    if array.ndim == 2:
        return cv2.equalizeHist(array)
    ycrcb = cv2.cvtColor(array, cv2.COLOR_RGB2YCrCb)
    ycrcb[:, :, 0] = cv2.equalizeHist(ycrcb[:, :, 0])
    return cv2.cvtColor(ycrcb, cv2.COLOR_YCrCb2RGB)


def apply_clahe(image, clip_limit: float = 2.0, tile_grid_size: int = 8) -> np.ndarray:
    """Contrast-limited adaptive histogram equalisation (on luminance for colour images)."""
    array = to_uint8(image)
    clahe = cv2.createCLAHE(clipLimit=float(clip_limit), tileGridSize=(int(tile_grid_size),) * 2)
    if array.ndim == 2:
        return clahe.apply(array)
    ycrcb = cv2.cvtColor(array, cv2.COLOR_RGB2YCrCb)
    ycrcb[:, :, 0] = clahe.apply(np.ascontiguousarray(ycrcb[:, :, 0]))
    return cv2.cvtColor(ycrcb, cv2.COLOR_YCrCb2RGB)


_THREAD = threading.local()


def _cascade(name: str) -> cv2.CascadeClassifier:
    # One classifier per thread: loaders detect faces from a thread pool, and OpenCV does not
    # promise that one CascadeClassifier may be used by several threads at once.
    cascades = _THREAD.__dict__.setdefault("cascades", {})
    if name not in cascades:
        path = os.path.join(cv2.data.haarcascades, name)
        cascade = cv2.CascadeClassifier(path)
        if cascade.empty():
            raise DataError(
                f"OpenCV's Haar cascade {path} could not be loaded; reinstall opencv-python-headless"
            )
        cascades[name] = cascade
    return cascades[name]


def detect_eyes(gray: np.ndarray, box: FaceBox) -> tuple[tuple[float, float], tuple[float, float]] | None:
    """Eye centres inside a face box with the Haar eye cascade, or None unless two plausible eyes
    (one in each upper quarter of the face) are found."""
    x, y, w, h = box.as_tuple()
    upper = gray[y : y + h // 2, x : x + w]
    if upper.size == 0:
        return None
    candidates = _cascade("haarcascade_eye.xml").detectMultiScale(
        upper, scaleFactor=1.1, minNeighbors=5, minSize=(max(4, w // 10), max(4, h // 10))
    )
    left_side, right_side = [], []
    for ex, ey, ew, eh in candidates:
        centre = (float(x + ex + ew / 2.0), float(y + ey + eh / 2.0))
        (left_side if ex + ew / 2.0 < w / 2.0 else right_side).append((ew * eh, centre))
    if not left_side or not right_side:
        return None
    first = max(left_side)[1]
    second = max(right_side)[1]
    dx, dy = second[0] - first[0], second[1] - first[1]
    # Reject pairs that would rotate the face implausibly (nostrils or brows taken for eyes).
    if dx < w * 0.2 or abs(np.degrees(np.arctan2(dy, dx))) > 30:
        return None
    return first, second


class FaceDetector:
    """Find faces in an image.

    Parameters
    ----------
    method : ``"haar"`` (OpenCV's bundled cascade, the default) or ``"yunet"``.
    model_path : the YuNet ONNX file (e.g. ``face_detection_yunet_2023mar.onnx`` from the
        OpenCV model zoo); giving it selects ``"yunet"``. Never downloaded by ferlib.
    min_size : smallest face side in pixels (default: a tenth of the shorter image side, at
        least 20).
    score_threshold : YuNet's confidence threshold.
    find_eyes : also locate the eyes (used by :func:`align_face`).
    """

    def __init__(
        self,
        method: str = "haar",
        model_path: str | os.PathLike | None = None,
        *,
        min_size: int | None = None,
        scale_factor: float = 1.1,
        min_neighbors: int = 5,
        score_threshold: float = 0.8,
        find_eyes: bool = True,
    ) -> None:
        if model_path is not None:
            method = "yunet"
        if method not in ("haar", "yunet"):
            raise ConfigError.unknown("face detector", method, ("haar", "yunet"))
        if method == "yunet":
            if model_path is None or not Path(model_path).is_file():
                raise DataError(
                    f"the YuNet detector needs its ONNX model file (got {model_path!r}); get "
                    "face_detection_yunet_2023mar.onnx from https://github.com/opencv/opencv_zoo "
                    "and pass model_path=..."
                )
            if not hasattr(cv2, "FaceDetectorYN"):
                raise DataError("this OpenCV build lacks cv2.FaceDetectorYN (needs OpenCV >= 4.5.4)")
        self.method = method
        self.model_path = None if model_path is None else str(model_path)
        self.min_size = min_size
        self.scale_factor = scale_factor
        self.min_neighbors = min_neighbors
        self.score_threshold = score_threshold
        self.find_eyes = find_eyes
        self._yunet = None

    def __repr__(self) -> str:
        return f"FaceDetector(method={self.method!r})"

    def __call__(self, image) -> list[FaceBox]:
        return self.detect(image)

    def detect(self, image) -> list[FaceBox]:
        """Faces in ``image``, largest first (an empty list when there is none)."""
        array = to_uint8(image)
        if self.method == "yunet":
            return self._detect_yunet(array)
        gray = to_gray(array)
        min_side = self.min_size or max(20, min(gray.shape) // 10)
        found = _cascade("haarcascade_frontalface_default.xml").detectMultiScale(
            gray, scaleFactor=self.scale_factor, minNeighbors=self.min_neighbors, minSize=(min_side, min_side)
        )
        boxes = [FaceBox(int(x), int(y), int(w), int(h)) for x, y, w, h in found]
        if self.find_eyes:
            boxes = [FaceBox(*b.as_tuple(), b.score, detect_eyes(gray, b)) for b in boxes]
        return sorted(boxes, key=lambda b: b.area, reverse=True)

    def _detect_yunet(self, array: np.ndarray) -> list[FaceBox]:
        bgr = cv2.cvtColor(array, cv2.COLOR_GRAY2BGR if array.ndim == 2 else cv2.COLOR_RGB2BGR)
        height, width = bgr.shape[:2]
        if self._yunet is None:
            self._yunet = cv2.FaceDetectorYN.create(
                self.model_path, "", (width, height), self.score_threshold
            )
        self._yunet.setInputSize((width, height))
        _, faces = self._yunet.detect(bgr)
        boxes = []
        for row in [] if faces is None else faces:
            x, y, w, h = (int(round(v)) for v in row[:4])
            # YuNet's landmarks: right eye, left eye (of the subject), nose, mouth corners.
            eyes = ((float(row[4]), float(row[5])), (float(row[6]), float(row[7])))
            if eyes[0][0] > eyes[1][0]:
                eyes = (eyes[1], eyes[0])
            x, y = max(0, x), max(0, y)
            boxes.append(FaceBox(x, y, min(w, width - x), min(h, height - y), float(row[14]), eyes))
        return sorted(boxes, key=lambda b: b.area, reverse=True)


@lru_cache(maxsize=4)
def _default_detector() -> FaceDetector:
    return FaceDetector()


def detect_faces(image, detector: FaceDetector | None = None) -> list[FaceBox]:
    """Faces in an image (array, tensor or PIL image), largest first; ``[]`` when none is found."""
    return (detector or _default_detector()).detect(image)


def align_face(image, box: FaceBox) -> tuple[np.ndarray, FaceBox]:
    """Rotate ``image`` about the eyes' midpoint so that they are level.

    Returns the rotated image and the box to crop from it (the same box: the rotation centre
    lies inside it). Without eyes in ``box`` the image comes back unchanged.
    """
    array = to_uint8(image)
    if box.eyes is None:
        return array, box
    (x1, y1), (x2, y2) = box.eyes
    angle = float(np.degrees(np.arctan2(y2 - y1, x2 - x1)))
    centre = ((x1 + x2) / 2.0, (y1 + y2) / 2.0)
    matrix = cv2.getRotationMatrix2D(centre, angle, 1.0)
    rotated = cv2.warpAffine(
        array,
        matrix,
        (array.shape[1], array.shape[0]),
        flags=cv2.INTER_LINEAR,
        borderMode=cv2.BORDER_REPLICATE,
    )
    return rotated, box


def crop_face(image, box: FaceBox | tuple[int, int, int, int] | None, margin: float = 0.0) -> np.ndarray:
    """Crop a square around ``box`` widened by ``margin`` (a fraction of its side), padding at the
    image border by replicating edge pixels; ``box=None`` crops the central square."""
    array = to_uint8(image)
    height, width = array.shape[:2]
    if box is None:
        side = min(height, width)
        x, y, w, h = (width - side) // 2, (height - side) // 2, side, side
    else:
        x, y, w, h = box.as_tuple() if isinstance(box, FaceBox) else tuple(int(v) for v in box)
    side = int(round(max(w, h) * (1.0 + 2.0 * margin)))
    cx, cy = x + w / 2.0, y + h / 2.0
    left, top = int(round(cx - side / 2.0)), int(round(cy - side / 2.0))
    pad = max(0, -left, -top, left + side - width, top + side - height)
    if pad:
        array = cv2.copyMakeBorder(array, pad, pad, pad, pad, cv2.BORDER_REPLICATE)
        left, top = left + pad, top + pad
    return array[top : top + side, left : left + side]


def preprocess_face(
    image,
    box: FaceBox | tuple[int, int, int, int] | None = None,
    size: int | tuple[int, int] = 48,
    *,
    channels: int = 1,
    align: bool = True,
    margin: float = 0.0,
    enhance: str | None = None,
    detector: FaceDetector | None = None,
    source: str | None = None,
) -> torch.Tensor:
    """Turn a photo or video frame into a model input: float32 ``[channels, H, W]`` in [0, 1].

    Steps: find the face (``box=None`` runs the detector and takes the largest face), level
    the eyes (``align``), crop a square with ``margin``, resize to ``size``, convert to
    grayscale when ``channels=1``, and optionally enhance contrast (``"equalize"`` or
    ``"clahe"``). ``source`` (e.g. a file name) is only used in error messages.

    Raises :class:`NoFaceError` when ``box`` is None and no face is found.
    """
    array = to_uint8(image)
    if box is None:
        faces = detect_faces(array, detector)
        if not faces:
            raise NoFaceError(f"no face found in {source or 'the image'} ({array.shape[1]}x{array.shape[0]})")
        box = faces[0]
    elif not isinstance(box, FaceBox):
        box = FaceBox(*(int(v) for v in box))
    if align:
        array, box = align_face(array, box)
    face = crop_face(array, box, margin)
    height, width = (size, size) if isinstance(size, int) else size
    interpolation = cv2.INTER_AREA if face.shape[0] > height else cv2.INTER_LINEAR
    face = cv2.resize(face, (width, height), interpolation=interpolation)
    if channels == 1:
        face = to_gray(face)
    elif channels == 3 and face.ndim == 2:
        face = cv2.cvtColor(face, cv2.COLOR_GRAY2RGB)
    elif channels not in (1, 3):
        raise ValueError(f"channels must be 1 or 3, got {channels}")
    if enhance == "equalize":
        face = equalize_histogram(face)
    elif enhance == "clahe":
        face = apply_clahe(face)
    elif enhance is not None:
        raise ValueError(f"unknown enhance {enhance!r}: expected None, 'equalize' or 'clahe'")
    tensor = torch.from_numpy(np.ascontiguousarray(face))
    tensor = tensor.unsqueeze(0) if tensor.ndim == 2 else tensor.permute(2, 0, 1)
    return tensor.float().div_(255.0)
