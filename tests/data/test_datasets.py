"""Real-dataset loaders on tiny fixtures written here in each official layout (no real data)."""

from __future__ import annotations

import csv
import os
import stat
import warnings

import cv2
import numpy as np
import pytest
import torch

from ferlib.data import EMOTIONS, load_dataset
from ferlib.data.real import FaceDataset, MissingSplitError, load_split, load_splits
from ferlib.errors import DataError

RNG = np.random.default_rng(0)


def _image(path, size=(60, 60), colour=False):
    path.parent.mkdir(parents=True, exist_ok=True)
    shape = (*size, 3) if colour else size
    assert cv2.imwrite(str(path), RNG.integers(0, 256, shape, dtype=np.uint8))
    return path


def _write_csv(path, header, rows):
    with open(path, "w", newline="") as handle:
        writer = csv.writer(handle)
        writer.writerow(header)
        writer.writerows(rows)


def _pixels(value=None):
    values = RNG.integers(0, 256, 48 * 48) if value is None else np.full(48 * 48, value)
    return " ".join(str(int(v)) for v in values)


# ----------------------------------------------------------------------------- FER2013


@pytest.fixture
def fer_folder(tmp_path):
    root = tmp_path / "fer2013"
    for class_name in ("angry", "disgust", "fear", "happy", "neutral", "sad", "surprise"):
        for i in range(3):
            _image(root / "train" / class_name / f"Training_{i}{class_name}.jpg", (48, 48))
        _image(root / "test" / class_name / f"PublicTest_{class_name}.jpg", (48, 48))
        _image(root / "test" / class_name / f"PrivateTest_{class_name}.jpg", (48, 48))
    return root


def test_fer2013_folder_splits_follow_usage_prefix(fer_folder):
    train = load_dataset("fer2013", split="train", root=str(fer_folder))
    val = load_dataset("fer2013", split="val", root=str(fer_folder))
    test = load_dataset("fer2013", split="test", root=str(fer_folder))
    everything = load_dataset(
        "fer2013", split="all", root=str(fer_folder.parent)
    )  # the folder above works too
    assert (len(train), len(val), len(test), len(everything)) == (21, 7, 7, 35)
    x, y, meta = train[0]
    assert x.dtype == torch.float32 and tuple(x.shape) == (1, 48, 48) and 0 <= x.min() and x.max() <= 1
    assert meta["usage"] == "Training" and meta["file"].startswith("train/")
    assert {m["usage"] for m in val.metas} == {"PublicTest"} and {m["usage"] for m in test.metas} == {
        "PrivateTest"
    }
    assert train.class_names == EMOTIONS and train.num_classes == 7
    assert train.labels.tolist().count(EMOTIONS.index("neutral")) == 3
    assert isinstance(train, FaceDataset) and "train" in repr(train)


def test_fer2013_options_size_channels_transform(fer_folder):
    data = load_dataset(
        "fer2013", "val", root=fer_folder, image_size=32, channels=3, transform=lambda x: x * 0
    )
    x, _, _ = data[0]
    assert tuple(x.shape) == (3, 32, 32) and x.abs().sum() == 0


def test_fer2013_missing_private_test_says_so_and_protocol_derives_it(fer_folder):
    for path in fer_folder.rglob("PrivateTest_*.jpg"):
        path.unlink()
    with pytest.raises(MissingSplitError, match="no 'test' split") as info:
        load_dataset("fer2013", "test", root=fer_folder)
    assert info.value.available == ("train", "val")
    parts = load_splits("fer2013", root=fer_folder, val_fraction=0.3, seed=1)
    assert len(parts["test"]) == 7 and "official val" in parts["test"].protocol
    assert len(parts["train"]) + len(parts["val"]) == 21
    train_files = {m["file"] for m in parts["train"].metas}
    assert not train_files & {m["file"] for m in parts["val"].metas}
    assert sorted(parts["val"].labels.tolist()) == list(range(7))  # stratified: one per class
    assert len(load_split("fer2013", "val", fer_folder, val_fraction=0.3, seed=1)) == len(parts["val"])


def test_fer2013_csv_layouts(tmp_path):
    rows = [
        [i % 7, _pixels(), usage] for usage in ("Training", "PublicTest", "PrivateTest") for i in range(7)
    ]
    _write_csv(tmp_path / "fer2013.csv", ["emotion", "pixels", "Usage"], rows)
    data = load_dataset("fer2013", "val", root=tmp_path)
    assert len(data) == 7 and data[0][2]["line"] == 9
    expected = np.array(rows[7][1].split(), dtype=np.uint8).reshape(48, 48)
    assert torch.equal((data[0][0][0] * 255).round().to(torch.uint8), torch.from_numpy(expected))

    icml = tmp_path / "icml"
    icml.mkdir()
    _write_csv(
        icml / "icml_face_data.csv", ["emotion", " Usage", " pixels"], [[r[0], r[2], r[1]] for r in rows]
    )
    assert len(load_dataset("fer2013", "test", root=icml)) == 7

    kaggle = tmp_path / "kaggle"
    kaggle.mkdir()
    _write_csv(kaggle / "train.csv", ["emotion", "pixels"], [r[:2] for r in rows[:7]])
    _write_csv(kaggle / "test.csv", ["pixels"], [[r[1]] for r in rows[7:]])
    assert len(load_dataset("fer2013", "train", root=kaggle)) == 7
    with pytest.raises(DataError, match="no emotion label"):
        load_dataset("fer2013", "val", root=kaggle)


def test_fer2013_malformed_csv_row_names_its_line(tmp_path):
    rows = [[0, _pixels(), "Training"], [1, "1 2 3", "Training"], [2, _pixels(), "Training"]]
    _write_csv(tmp_path / "fer2013.csv", ["emotion", "pixels", "Usage"], rows)
    with open(tmp_path / "fer2013.csv", "a") as handle:
        handle.write("3,only-two-fields\n")
    with pytest.raises(DataError, match=r"fer2013\.csv, line 3"):
        load_dataset("fer2013", "train", root=tmp_path)
    with pytest.warns(UserWarning):
        data = load_dataset("fer2013", "train", root=tmp_path, on_corrupt="skip")
    assert data.labels.tolist() == [0, 2]
    assert sorted(where.rsplit(" ", 1)[1] for where, _ in data.skipped) == ["3", "5"]


def test_fer2013_ferplus_majority_vote(tmp_path):
    rows = [[0, _pixels(), "Training"] for _ in range(4)] + [[0, _pixels(), "PublicTest"]]
    _write_csv(tmp_path / "fer2013.csv", ["emotion", "pixels", "Usage"], rows)
    header = [
        "Usage",
        "Image name",
        "neutral",
        "happiness",
        "surprise",
        "sadness",
        "anger",
        "disgust",
        "fear",
        "contempt",
        "unknown",
        "NF",
    ]
    votes = [
        [0, 8, 1, 0, 1, 0, 0, 0, 0, 0],  # happy
        [0, 4, 4, 0, 2, 0, 0, 0, 0, 0],  # no majority -> dropped
        [0, 0, 0, 0, 0, 0, 0, 7, 3, 0],  # contempt -> dropped unless kept
        [0, 0, 0, 0, 0, 0, 0, 0, 10, 0],  # unknown -> dropped
        [9, 1, 0, 0, 0, 0, 0, 0, 0, 0],  # neutral, PublicTest
    ]
    _write_csv(
        tmp_path / "fer2013new.csv",
        header,
        [[r[2], f"fer{i:07d}.png", *v] for i, (r, v) in enumerate(zip(rows, votes, strict=True))],
    )
    train = load_dataset("fer2013", "train", root=tmp_path, labels="ferplus")
    assert train.labels.tolist() == [EMOTIONS.index("happy")]
    kept = load_dataset("fer2013", "train", root=tmp_path, labels="ferplus", keep_contempt=True)
    assert kept.labels.tolist() == [EMOTIONS.index("happy"), 7] and kept.class_names[7] == "contempt"
    assert load_dataset("fer2013", "val", root=tmp_path, labels="ferplus").labels.tolist() == [6]


def test_missing_root_describes_layout_and_source(tmp_path):
    with pytest.raises(DataError, match="Kaggle") as info:
        load_dataset("fer2013", "train", root=tmp_path / "nowhere")
    assert "does not exist" in str(info.value) and "Training_<id>.jpg" in str(info.value)
    for name, hint in (
        ("ckplus", "cohn-kanade-images"),
        ("rafdb", "list_patition_label"),
        ("affectnet", "Manually_Annotated"),
        ("imagefolder", "<class>"),
    ):
        with pytest.raises(DataError, match=hint):
            load_dataset(name, "all", root=tmp_path / "nowhere")


def test_corrupt_image_is_named_then_skipped(fer_folder):
    bad = fer_folder / "train" / "happy" / "Training_broken.jpg"
    bad.write_bytes(b"not a jpeg at all")
    with pytest.raises(DataError, match="Training_broken.jpg"):
        load_dataset("fer2013", "train", root=fer_folder)
    with pytest.warns(UserWarning, match="skipped 1"):
        data = load_dataset("fer2013", "train", root=fer_folder, on_corrupt="skip")
    assert len(data) == 21 and data.skipped[0][0].endswith("Training_broken.jpg")


def test_bad_split_name_lists_the_valid_ones(fer_folder):
    with pytest.raises(ValueError, match="train, val, test, all"):
        load_dataset("fer2013", "validation", root=fer_folder)


def test_cache_dir_holds_decoded_tensors_outside_a_read_only_root(fer_folder, tmp_path):
    cache = tmp_path / "cache"
    modes = {p: p.stat().st_mode for p in [fer_folder, *fer_folder.rglob("*")] if p.is_dir()}
    try:
        for path in modes:
            path.chmod(stat.S_IRUSR | stat.S_IXUSR)
        first = load_dataset("fer2013", "train", root=fer_folder, cache_dir=cache)
        from ferlib.data.real import _decode

        _decode._MEMORY.clear()
        second = load_dataset("fer2013", "train", root=fer_folder, cache_dir=cache)
    finally:
        for path, mode in modes.items():
            path.chmod(mode)
    assert [p.suffix for p in cache.iterdir()] == [".pt"]
    assert not list(fer_folder.rglob("*.pt"))
    assert torch.equal(first.images, second.images) and first.metas == second.metas


# ----------------------------------------------------------------------------- CK+


def _ckplus(root, with_landmarks=False):
    # S001: happy (5) and contempt (2); S002: surprise (7); S003: anger (1); one unlabelled sequence.
    sequences = {
        ("S001", "001"): 5,
        ("S001", "002"): 2,
        ("S002", "001"): 7,
        ("S003", "004"): 1,
        ("S004", "001"): None,
    }
    for (subject, sequence), code in sequences.items():
        for frame in range(1, 6):
            _image(
                root / "cohn-kanade-images" / subject / sequence / f"{subject}_{sequence}_{frame:08d}.png",
                (64, 80),
            )
        if code is not None:
            label = root / "Emotion" / subject / sequence / f"{subject}_{sequence}_00000005_emotion.txt"
            label.parent.mkdir(parents=True, exist_ok=True)
            label.write_text(f"   {code:.7e}\n")
        if with_landmarks:
            marks = root / "Landmarks" / subject / sequence / f"{subject}_{sequence}_00000001_landmarks.txt"
            marks.parent.mkdir(parents=True, exist_ok=True)
            marks.write_text("\n".join(f"   {20 + k % 20:.7e}   {15 + k % 30:.7e}" for k in range(68)))
    (root / "cohn-kanade-images" / "S001" / "001" / ".DS_Store").write_bytes(b"\0")
    return root


def test_ckplus_official_static_samples(tmp_path):
    root = _ckplus(tmp_path / "CK+", with_landmarks=True)
    data = load_dataset("ckplus", split="all", root=tmp_path, last_k=2)  # found one folder down
    # 3 labelled non-contempt sequences x 2 apex frames + 4 first frames as neutral.
    assert len(data) == 3 * 2 + 4
    counts = data.class_counts()
    assert (
        counts["neutral"] == 4 and counts["happy"] == 2 and counts["surprise"] == 2 and counts["angry"] == 2
    )
    assert set(data.subjects) == {"S001", "S002", "S003"}
    assert all(m["sequence"].startswith(m["subject"]) for m in data.metas)
    assert data.root == str(root)


def test_ckplus_contempt_kept_or_mapped(tmp_path):
    root = _ckplus(tmp_path)
    kept = load_dataset("ckplus", "all", root=root, keep_contempt=True, include_neutral=False, crop=None)
    assert kept.num_classes == 8 and kept.class_counts()["contempt"] == 3
    merged = load_dataset(
        "ckplus", "all", root=root, label_map={"contempt": "disgust"}, include_neutral=False, crop=None
    )
    assert merged.num_classes == 7 and merged.class_counts()["disgust"] == 3


def test_ckplus_video_clips_run_neutral_to_apex(tmp_path):
    root = _ckplus(tmp_path)
    clips = load_dataset("ckplus", "all", root=root, mode="video", num_frames=8, crop=None)
    assert len(clips) == 3 and clips.is_video
    x, y, meta = clips[0]
    assert tuple(x.shape) == (8, 1, 48, 48) and meta["subject"] == "S001"


def test_ckplus_malformed_label_file_is_named(tmp_path):
    root = _ckplus(tmp_path)
    bad = root / "Emotion" / "S002" / "001" / "S002_001_00000005_emotion.txt"
    bad.write_text("happy\n")
    with pytest.raises(DataError, match="S002_001_00000005_emotion.txt"):
        load_dataset("ckplus", "all", root=root, crop=None)


def test_ck48_layout_and_subject_independent_splits(tmp_path):
    root = tmp_path / "CK+48"
    for c, class_name in enumerate(("anger", "contempt", "disgust", "fear", "happy", "sadness", "surprise")):
        for s in range(6):
            for frame in (10, 11, 12):
                _image(root / class_name / f"S{100 + s:03d}_{c + 1:03d}_{frame:08d}.png", (48, 48))
    everything = load_dataset("ckplus", "all", root=root)
    assert len(everything) == 6 * 6 * 3  # contempt dropped by default
    parts = {
        split: load_dataset("ckplus", split, root=root, split_seed=3) for split in ("train", "val", "test")
    }
    subjects = {split: set(data.subjects) for split, data in parts.items()}
    assert sum(len(d) for d in parts.values()) == len(everything)
    assert not subjects["train"] & subjects["test"] and not subjects["train"] & subjects["val"]
    assert not subjects["val"] & subjects["test"]
    clips = load_dataset("ckplus", "all", root=root, mode="video", num_frames=3)
    assert len(clips) == 36 and tuple(clips[0][0].shape) == (3, 1, 48, 48)


# ----------------------------------------------------------------------------- RAF-DB


def _rafdb(root, attributes=True):
    lines = []
    for part in ("train", "test"):
        for i in range(14):
            stem = f"{part}_{i + 1:05d}"
            lines.append(f"{stem}.jpg {i % 7 + 1}")
            _image(root / "Image" / "aligned" / f"{stem}_aligned.jpg", (100, 100), colour=True)
            if attributes:
                path = root / "Annotation" / "manual" / f"{stem}_manu_attri.txt"
                path.parent.mkdir(parents=True, exist_ok=True)
                points = "\n".join(f"{30 + k}.5\t{40 + k}.25" for k in range(5))
                path.write_text(f"{points}\n{i % 2}\n{i % 3}\n{i % 5}\n")
    (root / "EmoLabel").mkdir(parents=True, exist_ok=True)
    (root / "EmoLabel" / "list_patition_label.txt").write_text("\n".join(lines) + "\n")
    return root


def test_rafdb_splits_labels_and_groups(tmp_path):
    root = _rafdb(tmp_path / "basic")
    train = load_dataset("rafdb", "train", root=tmp_path)
    test = load_dataset("rafdb", "test", root=root, channels=3)
    assert len(train) == 14 and len(test) == 14 and tuple(test[0][0].shape) == (3, 48, 48)
    # RAF-DB codes 1..7 = surprise, fear, disgust, happiness, sadness, anger, neutral.
    assert [EMOTIONS[i] for i in train.labels[:7].tolist()] == [
        "surprise",
        "fear",
        "disgust",
        "happy",
        "sad",
        "angry",
        "neutral",
    ]
    assert train.metas[1]["group"] == {"gender": "female", "race": "african-american", "age": "4-19"}
    with pytest.raises(MissingSplitError, match="no 'val' split"):
        load_dataset("rafdb", "val", root=root)
    parts = load_splits("rafdb", root=root, val_fraction=0.5)
    assert len(parts["val"]) == 7 and len(parts["train"]) == 7 and len(parts["test"]) == 14


def test_rafdb_malformed_label_line(tmp_path):
    root = _rafdb(tmp_path, attributes=False)
    with open(root / "EmoLabel" / "list_patition_label.txt", "a") as handle:
        handle.write("train_00099.jpg 9\n")
    with pytest.raises(DataError, match="line 29"):
        load_dataset("rafdb", "train", root=root)
    with pytest.warns(UserWarning):
        assert len(load_dataset("rafdb", "train", root=root, on_corrupt="skip")) == 14


# ----------------------------------------------------------------------------- AffectNet


def test_affectnet_csv_layout_crops_and_drops_codes(tmp_path):
    lists = tmp_path / "Manually_Annotated_file_lists"
    lists.mkdir()
    header = [
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
    for name in ("training.csv", "validation.csv"):
        rows = []
        for code in range(11):
            relative = f"{code}/{name[:3]}_{code}.jpg"
            image = np.zeros((100, 120), np.uint8)
            image[10:60, 20:70] = 200  # the face box is bright, the rest black
            (tmp_path / "Manually_Annotated_Images" / str(code)).mkdir(parents=True, exist_ok=True)
            cv2.imwrite(str(tmp_path / "Manually_Annotated_Images" / relative), image)
            rows.append([relative, 20, 10, 50, 50, "", code, 0.1, -0.1])
        _write_csv(lists / name, header, rows)
    seven = load_dataset("affectnet", "train", root=tmp_path)
    eight = load_dataset("affectnet", "val", root=tmp_path, classes=8)
    assert len(seven) == 7 and len(eight) == 8 and eight.class_names[-1] == "contempt"
    # AffectNet 0..6 = neutral, happy, sad, surprise, fear, disgust, anger.
    assert [EMOTIONS[i] for i in seven.labels.tolist()] == [
        "neutral",
        "happy",
        "sad",
        "surprise",
        "fear",
        "disgust",
        "angry",
    ]
    assert seven[0][0].mean() > 0.7  # cropped to the bright face box
    with pytest.raises(MissingSplitError):
        load_dataset("affectnet", "test", root=tmp_path)


def test_affectnet_npy_and_class_folder_layouts(tmp_path):
    npy = tmp_path / "npy"
    for folder in ("train_set", "val_set"):
        for i, code in enumerate((0, 1, 7, 9)):
            _image(npy / folder / "images" / f"{i}.jpg", (64, 64), colour=True)
            (npy / folder / "annotations").mkdir(parents=True, exist_ok=True)
            np.save(npy / folder / "annotations" / f"{i}_exp.npy", np.array(str(code)))
    assert load_dataset("affectnet", "train", root=npy).labels.tolist() == [6, 3]
    assert load_dataset("affectnet", "val", root=npy, classes=8).labels.tolist() == [6, 3, 7]
    folders = tmp_path / "folders"
    for split in ("train", "val"):
        for code in ("0", "1", "7"):
            _image(folders / split / code / "a.jpg")
        _image(folders / split / "happy" / "b.jpg")
    assert sorted(load_dataset("affectnet", "train", root=folders).labels.tolist()) == [3, 3, 6]


# ----------------------------------------------------------------------------- your own folders


def test_imagefolder_with_groups_and_subject_independent_split(tmp_path):
    rows = ["file,subject,gender,age"]
    for c, class_name in enumerate(("anger", "happiness", "neutral")):
        for p in range(6):
            _image(tmp_path / class_name / f"p{p}_{c}.png", (40, 50), colour=True)
            rows.append(f"{class_name}/p{p}_{c}.png,P{p},{'f' if p % 2 else 'm'},{20 + p}")
    (tmp_path / "groups.csv").write_text("\n".join(rows) + "\n")
    data = load_dataset("imagefolder", "all", root=tmp_path)
    assert len(data) == 18 and set(data.subjects) == {f"P{p}" for p in range(6)}
    assert data.metas[0]["group"] == {"gender": "m", "age": "20"}
    assert data.class_counts() == {**dict.fromkeys(EMOTIONS, 0), "angry": 6, "happy": 6, "neutral": 6}
    test = load_dataset("imagefolder", "test", root=tmp_path, fractions=(0.5, 0.0, 0.5))
    train = load_dataset("imagefolder", "train", root=tmp_path, fractions=(0.5, 0.0, 0.5))
    assert len(train) + len(test) == 18 and not set(train.subjects) & set(test.subjects)


def test_imagefolder_split_folders_and_unknown_class(tmp_path):
    for split in ("train", "test"):
        _image(tmp_path / split / "happy" / "a.png")
        _image(tmp_path / split / "smirk" / "b.png")
    with pytest.raises(DataError, match="unknown class 'smirk'"):
        load_dataset("imagefolder", "train", root=tmp_path)
    data = load_dataset("imagefolder", "train", root=tmp_path, label_map={"smirk": "happy"})
    assert data.labels.tolist() == [3, 3]
    with pytest.raises(MissingSplitError):
        load_dataset("imagefolder", "val", root=tmp_path, label_map={"smirk": None})


def test_no_face_is_reported_per_file(tmp_path):
    blank = np.full((120, 120), 128, np.uint8)
    for name in ("a.png", "b.png"):
        (tmp_path / "happy").mkdir(exist_ok=True)
        cv2.imwrite(str(tmp_path / "happy" / name), blank)
    with pytest.warns(UserWarning, match="no face found in 2"):
        kept = load_dataset("imagefolder", "all", root=tmp_path, detect=True)
    assert len(kept) == 2 and [os.path.basename(f) for f in kept.no_face] == ["a.png", "b.png"]
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        skipped = load_dataset("imagefolder", "all", root=tmp_path, detect=True, on_no_face="skip")
    assert len(skipped) == 0 and len(skipped.no_face) == 2
    with pytest.raises(DataError, match="no face found in .*a.png"):
        load_dataset("imagefolder", "all", root=tmp_path, detect=True, on_no_face="raise")


def test_videofolder_frames_and_video_files(tmp_path):
    for f in range(5):
        _image(tmp_path / "surprise" / "clip1" / f"{f:03d}.png", (64, 64))
    (tmp_path / "happy").mkdir()
    writer = cv2.VideoWriter(
        str(tmp_path / "happy" / "clip2.avi"), cv2.VideoWriter_fourcc(*"MJPG"), 10, (64, 48)
    )
    for _ in range(12):
        writer.write(RNG.integers(0, 256, (48, 64, 3), dtype=np.uint8))
    writer.release()
    (tmp_path / "groups.csv").write_text("file,subject\nclip1,A\nclip2.avi,B\n")
    clips = load_dataset("videofolder", "all", root=tmp_path, num_frames=6, image_size=32)
    assert len(clips) == 2 and clips.is_video
    assert tuple(clips[0][0].shape) == (6, 1, 32, 32)
    assert sorted(clips.subjects) == ["A", "B"]
    (tmp_path / "happy" / "clip3.mp4").write_bytes(b"garbage")
    with pytest.raises(DataError, match="clip3.mp4"):
        load_dataset("videofolder", "all", root=tmp_path, num_frames=6)


def test_subset_keeps_the_dataset_contract(fer_folder):
    data = load_dataset("fer2013", "train", root=fer_folder)
    part = data.subset([0, 2, 4], split="val", protocol="demo")
    assert len(part) == 3 and part.labels.tolist() == data.labels[[0, 2, 4]].tolist()
    assert part.class_names == data.class_names and part.protocol == "demo" and part.split == "val"


def test_batches_through_a_dataloader(fer_folder):
    from torch.utils.data import DataLoader

    from ferlib.data import collate_samples
    from ferlib.data.augment import train_augmentation

    data = load_dataset("fer2013", "train", root=fer_folder, transform=train_augmentation("flip_shift"))
    x, y, metas = next(iter(DataLoader(data, batch_size=8, shuffle=True, collate_fn=collate_samples)))
    assert tuple(x.shape) == (8, 1, 48, 48) and y.dtype == torch.long and len(metas) == 8
