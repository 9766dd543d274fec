"""SynthFER: determinism, splits, metadata, videos, export and bad input."""

from __future__ import annotations

import csv
import dataclasses
import subprocess
import sys

import numpy as np
import pytest
import torch
from torch.utils.data import DataLoader

from ferlib.data import collate_samples, load_dataset
from ferlib.data.labels import EMOTIONS
from ferlib.data.synth import (
    AU_NAMES,
    LANDMARK_NAMES,
    NUISANCES,
    SynthConfig,
    SynthFER,
    class_prototype,
    export_synthfer,
)
from ferlib.errors import ConfigError


def small(**kw) -> SynthFER:
    kw.setdefault("size", 24)
    kw.setdefault("cache", False)
    return SynthFER(**kw)


def test_sample_contract():
    data = small()
    x, y, meta = data[0]
    assert x.dtype == torch.float32 and tuple(x.shape) == (1, 48, 48)
    assert 0.0 <= float(x.min()) and float(x.max()) <= 1.0
    assert isinstance(y, int) and 0 <= y < 7
    assert data.num_classes == 7 and data.class_names == EMOTIONS
    assert data.labels.shape == (24,) and int(data.labels[0]) == y
    assert set(meta) >= {"subject", "group", "landmarks", "aus", "nuisance", "intensity", "true_label"}
    assert set(meta["group"]) == {"skin_tone", "age", "gender"}
    assert meta["landmarks"].shape == (len(LANDMARK_NAMES), 2) and len(LANDMARK_NAMES) >= 20
    assert set(meta["aus"]) == set(AU_NAMES)
    for name in NUISANCES:
        assert f"{name}_severity" in meta["nuisance"]
    assert {"roll", "yaw", "pitch", "gamma", "noise_sigma", "blur_sigma", "jpeg_quality", "occluder"} <= set(
        meta["nuisance"]
    )


def test_landmarks_are_inside_the_image_for_frontal_faces():
    data = small(preset="easy")
    marks = np.stack([data.meta(i)["landmarks"] for i in range(len(data))])
    assert (marks > 0).all() and (marks < 48).all()


def test_same_seed_same_bytes_and_different_seed_differs():
    a, b = small(seed=3), small(seed=3)
    assert np.array_equal(a._data["images"], b._data["images"])
    assert torch.equal(a.labels, b.labels)
    c = small(seed=4)
    assert not np.array_equal(a._data["images"], c._data["images"])


def test_same_bytes_in_another_process():
    code = (
        "import hashlib; from ferlib.data.synth import SynthFER; "
        "d = SynthFER(size=24, seed=3, cache=False); "
        "print(hashlib.sha1(d._data['images'].tobytes()).hexdigest())"
    )
    out = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True
    ).stdout.strip()
    import hashlib

    assert out == hashlib.sha1(small(seed=3)._data["images"].tobytes()).hexdigest()


@pytest.mark.parametrize(
    "kwargs",
    [
        {"size": 80, "preset": "wild"},  # supersampled eyes, occluders, gamma
        {"size": 40, "image_size": 37, "rgb": True, "supersample": 3},  # odd size: loop tails
        {"size": 6, "task": "video-basic", "frames": 12, "image_size": 30},
    ],
)
def test_rendering_in_groups_changes_no_byte(monkeypatch, kwargs):
    from ferlib.data.synth import render as synth_render

    whole = small(**kwargs)._data  # each chunk in one group
    assert synth_render.group_size(kwargs.get("image_size", 48)) >= 72
    monkeypatch.setattr(synth_render, "_GROUP_BYTES", 1)  # groups of 32 faces (or frames)
    assert synth_render.group_size(kwargs.get("image_size", 48)) == 32
    grouped = small(**kwargs)._data
    for key in ("images", "landmarks"):
        assert np.array_equal(whole[key], grouped[key]), key


def test_dataloader_workers_give_the_same_set():
    data = small(size=16)

    def collect(workers):
        loader = DataLoader(data, batch_size=5, num_workers=workers, collate_fn=collate_samples)
        xs, ys = zip(*[(x, y) for x, y, _ in loader], strict=True)
        return torch.cat(xs), torch.cat(ys)

    x0, y0 = collect(0)
    x2, y2 = collect(2)
    assert torch.equal(x0, x2) and torch.equal(y0, y2)


def test_splits_have_disjoint_identities():
    subjects = {
        split: set(small(split=split, size=60).subjects.tolist()) for split in ("train", "val", "test")
    }
    assert not subjects["train"] & subjects["val"]
    assert not subjects["train"] & subjects["test"]
    assert not subjects["val"] & subjects["test"]


def test_load_dataset_and_transform():
    data = load_dataset("synthfer", split="val", size=8, cache=False, transform=lambda x: x * 0 + 0.5)
    x, _, _ = data[0]
    assert torch.all(x == 0.5)


def test_cache_round_trip(tmp_path, monkeypatch):
    monkeypatch.setenv("FERLIB_CACHE", str(tmp_path))
    first = SynthFER(size=8, seed=1)
    files = list((tmp_path / "synthfer").glob("*.npz"))
    assert len(files) == 1
    second = SynthFER(size=8, seed=1)
    assert np.array_equal(first._data["images"], second._data["images"])
    SynthFER(size=8, seed=1, cache_dir=tmp_path / "elsewhere")
    assert len(list((tmp_path / "elsewhere").glob("*.npz"))) == 1


def test_rgb_and_image_size():
    x, _, meta = small(size=4, rgb=True, image_size=64)[0]
    assert tuple(x.shape) == (3, 64, 64)
    assert (meta["landmarks"] < 64).all()


@pytest.mark.parametrize("task", ["video-basic", "video-subtle", "smile-dynamics"])
def test_video_tasks(task):
    data = small(size=6, task=task, frames=8)
    x, y, meta = data[0]
    assert tuple(x.shape) == (8, 1, 48, 48)
    assert meta["landmarks"].shape == (8, len(LANDMARK_NAMES), 2)
    assert meta["aus"]["AU12"].shape == (8,)
    assert "video" in meta
    if task == "smile-dynamics":
        assert data.num_classes == 2 and data.class_names == ("posed", "spontaneous")
        assert set(data.labels.tolist()) <= {0, 1}


def test_smile_dynamics_posed_is_faster():
    data = small(size=64, task="smile-dynamics")
    info = {k: data._data[f"video_{k}"] for k in ("onset", "apex", "offset")}
    posed = data.labels.numpy() == 0
    assert info["onset"][posed].max() < info["onset"][~posed].min()
    assert info["apex"][posed].mean() < info["apex"][~posed].mean()


def test_video_subtle_starts_neutral():
    data = small(size=16, task="video-subtle")
    aus = data._data["aus"]  # [N, T, A]
    assert np.abs(aus[:, 0, : AU_NAMES.index("AU25")]).max() < 0.05


def test_knobs_change_what_they_say():
    frontal = small(pose=0.0, preset="wild")
    assert all(abs(frontal.meta(i)["nuisance"]["roll"]) == 0 for i in range(len(frontal)))
    posed = small(pose=4.0)
    assert max(abs(posed.meta(i)["nuisance"]["yaw"]) for i in range(len(posed))) > 5
    weak = small(intensity=0.2, au_dropout=0.0)
    assert max(weak.meta(i)["intensity"] for i in range(len(weak))) <= 0.2 + 1e-6


def test_bias_knobs():
    base = small(size=80, label_noise=1.0, bias_group=("gender", "feminine"))
    frame = base.group_frame()
    flipped = frame["label"] != frame["true_label"]
    assert flipped.any()
    assert (frame.loc[flipped, "gender"] == "feminine").all()
    skin = small(size=40, group_weights={"skin_tone": [0, 0, 0, 0, 0, 1]})
    assert set(skin.group_frame()["skin_tone"]) == {5}


@pytest.mark.parametrize(
    "kwargs, word",
    [
        ({"task": "nope"}, "task"),
        ({"preset": "hard"}, "preset"),
        ({"split": "dev"}, "split"),
        ({"size": 0}, "size"),
        ({"pose": 7}, "pose"),
        ({"intensity": (0.5, 0.2)}, "intensity"),
        ({"image_size": 8}, "image_size"),
        ({"occluders": ("scarf",)}, "occluders"),
        ({"label_noise": 1.5}, "label_noise"),
        ({"bias_group": ("height", 1)}, "bias_group"),
        ({"group_weights": {"skin_tone": [1, 1]}}, "group_weights"),
    ],
)
def test_bad_input_raises_value_error_naming_the_parameter(kwargs, word):
    with pytest.raises(ValueError, match=word):
        SynthFER(cache=False, **{"size": 4, **kwargs})


@pytest.mark.parametrize(
    "kwargs, message",
    [
        ({"task": "statc"}, "unknown task 'statc'.*static, video-basic.*did you mean 'static'"),
        ({"split": "tran"}, "unknown split 'tran'.*did you mean 'train'"),
        ({"preset": "wlid"}, "unknown preset 'wlid'.*did you mean 'wild'"),
        ({"occluders": ("mask", "hands")}, "unknown occluders entry 'hands'.*did you mean 'hand'"),
        ({"bias_group": ("age", "old")}, "unknown bias_group value for age 'old'.*did you mean 'older'"),
    ],
)
def test_unknown_names_raise_config_error_with_a_suggestion(kwargs, message):
    with pytest.raises(ConfigError, match=message):
        SynthFER(cache=False, **{"size": 4, **kwargs})
    with pytest.raises(ConfigError, match="unknown class 'hapy'.*did you mean 'happy'"):
        class_prototype("hapy")


def test_synth_config_is_checked_once_frozen_and_keys_the_cache_as_before():
    cfg = SynthConfig.build("train", 8, "static", 1, "default", 48)
    data = SynthFER(size=8, seed=1, cache=False)
    assert data.settings == cfg and data.config == cfg.as_dict()
    assert data.config["severities"]["pose"] == [0.7, 0.0, 2.0] and data.config["frames"] == 1
    # The keys of caches written before SynthConfig existed (a changed key silently regenerates).
    assert cfg.cache_key() == "1ac465e74ffd8c7c69ec"
    knobs = {"pose": (0, 2), "group_weights": {"age": [1, 0, 1]}, "bias_group": ("skin_tone", 2)}
    assert SynthFER(size=8, task="video-basic", cache=False, **knobs).settings.cache_key() == "d5263822cc937efc0077"
    with pytest.raises(dataclasses.FrozenInstanceError):
        cfg.size = 9
    with pytest.raises(TypeError):
        cfg.severities["pose"] = (1.0, 0.0, 5.0)


def test_export_layout(tmp_path):
    root = export_synthfer(tmp_path / "out", size=10, seed=2, cache=False)
    base = root / "train"
    pngs = sorted(base.glob("*/*.png"))
    assert len(pngs) == 10
    assert {p.parent.name for p in pngs} <= set(EMOTIONS)
    with open(base / "metadata.csv") as handle:
        rows = list(csv.DictReader(handle))
    assert len(rows) == 10 and {"path", "label", "subject", "skin_tone"} <= set(rows[0])
    assert all((base / row["path"]).exists() for row in rows)
    clips = export_synthfer(tmp_path / "vid", task="video-basic", split="val", size=3, frames=4, cache=False)
    frames = sorted((clips / "val").glob("*/*/*.png"))
    assert len(frames) == 12
