"""Face detection, alignment, cropping, contrast enhancement and augmentation presets."""

from __future__ import annotations

import cv2
import numpy as np
import pytest
import torch

from ferlib.data.augment import AUGMENTATIONS, train_augmentation
from ferlib.data.faces import (
    FaceBox,
    FaceDetector,
    NoFaceError,
    apply_clahe,
    crop_face,
    detect_faces,
    equalize_histogram,
    preprocess_face,
    read_image,
)
from ferlib.data.transforms import CLAHE, Equalize, Normalize
from ferlib.errors import DataError


@pytest.fixture(scope="module")
def astronaut():
    skimage_data = pytest.importorskip("skimage.data")
    return skimage_data.astronaut()  # 512x512 RGB photo of Eileen Collins, public domain


def test_haar_finds_the_face_and_its_eyes(astronaut):
    faces = detect_faces(astronaut)
    assert len(faces) == 1
    face = faces[0]
    assert 150 < face.x + face.w / 2 < 300 and 60 < face.y + face.h / 2 < 180
    assert face.eyes is not None and face.eyes[0][0] < face.eyes[1][0]


def test_preprocess_face_gives_a_model_input(astronaut):
    x = preprocess_face(astronaut, size=48)
    assert x.dtype == torch.float32 and tuple(x.shape) == (1, 48, 48) and 0 <= x.min() and x.max() <= 1
    rgb = preprocess_face(astronaut, detect_faces(astronaut)[0], (64, 56), channels=3, enhance="clahe")
    assert tuple(rgb.shape) == (3, 64, 56)
    assert torch.allclose(preprocess_face(torch.from_numpy(astronaut).permute(2, 0, 1) / 255.0), x, atol=0.02)


def test_alignment_levels_a_tilted_face(astronaut):
    matrix = cv2.getRotationMatrix2D((256, 256), 12, 1.0)
    tilted = cv2.warpAffine(astronaut, matrix, (512, 512), borderMode=cv2.BORDER_REPLICATE)
    face = detect_faces(tilted)[0]
    assert face.eyes is not None
    (x1, y1), (x2, y2) = face.eyes
    assert abs(np.degrees(np.arctan2(y2 - y1, x2 - x1))) > 5
    from ferlib.data.faces import align_face

    aligned, box = align_face(tilted, face)
    again = detect_faces(aligned)[0]
    assert again.eyes is not None
    (x1, y1), (x2, y2) = again.eyes
    assert abs(np.degrees(np.arctan2(y2 - y1, x2 - x1))) < 5


def test_no_face_is_an_empty_list_or_a_named_error():
    blank = np.full((120, 160), 90, np.uint8)
    assert detect_faces(blank) == []
    with pytest.raises(NoFaceError, match="holiday.jpg"):
        preprocess_face(blank, source="holiday.jpg")
    # An explicit box skips detection.
    assert tuple(preprocess_face(blank, (10, 10, 50, 50), 32).shape) == (1, 32, 32)


def test_crop_face_pads_at_the_border():
    image = np.arange(100, dtype=np.uint8).reshape(10, 10)
    crop = crop_face(image, FaceBox(-2, -2, 6, 6))
    assert crop.shape == (6, 6) and crop[0, 0] == image[0, 0]
    assert crop_face(np.zeros((20, 30), np.uint8), None).shape == (20, 20)


def test_read_image_names_a_corrupt_or_missing_file(tmp_path):
    bad = tmp_path / "broken.png"
    bad.write_bytes(b"\x89PNG garbage")
    with pytest.raises(DataError, match="broken.png"):
        read_image(bad)
    with pytest.raises(DataError, match="missing.png"):
        read_image(tmp_path / "missing.png")
    good = tmp_path / "good.png"
    cv2.imwrite(str(good), np.dstack([np.zeros((4, 4), np.uint8)] * 2 + [np.full((4, 4), 255, np.uint8)]))
    assert read_image(good)[0, 0].tolist() == [255, 0, 0]  # BGR on disk, RGB in memory


def test_yunet_without_its_model_says_where_to_get_it(tmp_path):
    with pytest.raises(DataError, match="opencv_zoo"):
        FaceDetector("yunet")
    with pytest.raises(DataError, match="opencv_zoo"):
        FaceDetector(model_path=tmp_path / "absent.onnx")
    with pytest.raises(ValueError, match="haar"):
        FaceDetector("mtcnn")


def test_equalisation_and_clahe_spread_a_dull_histogram():
    rng = np.random.default_rng(0)
    dull = (100 + rng.integers(0, 20, (48, 48))).astype(np.uint8)
    assert equalize_histogram(dull).std() > 3 * dull.std()
    assert apply_clahe(dull).std() > dull.std()
    colour = np.dstack([dull] * 3)
    assert equalize_histogram(colour).shape == (48, 48, 3) and apply_clahe(colour).shape == (48, 48, 3)
    x = torch.from_numpy(dull).float().div(255).unsqueeze(0)
    for transform in (Equalize(), CLAHE(clip_limit=3.0)):
        y = transform(x)
        assert y.shape == x.shape and y.dtype == torch.float32 and y.std() > x.std()
        assert transform(torch.stack([x, x])).shape == (2, 1, 48, 48)  # a clip [T, C, H, W]


@pytest.mark.parametrize("name", AUGMENTATIONS)
def test_augmentation_presets_keep_shape_and_range(name):
    torch.manual_seed(0)
    augment = train_augmentation(name)
    for shape in ((1, 48, 48), (3, 40, 40), (6, 1, 48, 48)):
        x = torch.rand(shape)
        y = augment(x)
        assert y.shape == x.shape and y.dtype == torch.float32 and y.min() >= 0 and y.max() <= 1


def test_a_clip_gets_one_augmentation_for_all_frames():
    torch.manual_seed(1)
    frame = torch.rand(1, 32, 32)
    clip = frame.expand(5, 1, 32, 32).clone()
    out = train_augmentation("flip_shift")(clip)
    assert all(torch.equal(out[0], out[t]) for t in range(5))
    assert train_augmentation("none")(clip) is clip or torch.equal(train_augmentation("none")(clip), clip)
    with pytest.raises(ValueError, match="flip_shift"):
        train_augmentation("heavy")


def test_normalize():
    assert torch.allclose(Normalize(0.5, 0.5)(torch.full((1, 2, 2), 0.75)), torch.full((1, 2, 2), 0.5))


def test_imagefolder_detect_runs_the_same_pipeline(astronaut, tmp_path):
    from ferlib.data import load_dataset

    (tmp_path / "happy").mkdir()
    cv2.imwrite(str(tmp_path / "happy" / "astronaut.png"), cv2.cvtColor(astronaut, cv2.COLOR_RGB2BGR))
    data = load_dataset("imagefolder", "all", root=tmp_path, detect=True, channels=3, image_size=64)
    assert len(data) == 1 and data.no_face == []
    direct = preprocess_face(astronaut, size=64, channels=3, margin=0.1)
    assert (data[0][0] - direct).abs().mean() < 0.02
