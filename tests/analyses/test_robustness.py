"""Tests of ferlib.robustness: corruptions, attacks, robustness metrics and fit's remedies."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st
from torch import nn
from torch.utils.data import TensorDataset

import ferlib
from ferlib.data.augment import POLICIES, augmentation_policy
from ferlib.data.corruptions import CORRUPTIONS, FAMILIES, corrupt, list_corruptions
from ferlib.data.synth import SynthFER
from ferlib.engine.attacks import fgsm, pgd
from ferlib.robustness import (
    adversarial_accuracy,
    class_sensitivity,
    corruption_error,
    evaluate_robustness,
    mce,
    occlusion_sensitivity,
)

NAMES = list_corruptions()


def _images(seed: int, shape) -> torch.Tensor:
    """Smooth random images in [0, 1] (a coarse random grid, upsampled, plus a little texture)."""
    g = torch.Generator().manual_seed(seed)
    *lead, c, h, w = shape
    n = int(np.prod(lead)) if lead else 1
    coarse = torch.rand(n, c, 5, 5, generator=g)
    smooth = torch.nn.functional.interpolate(coarse, size=(h, w), mode="bilinear", align_corners=False)
    return (0.8 * smooth + 0.2 * torch.rand(n, c, h, w, generator=g)).reshape(shape)


shapes = st.tuples(st.integers(1, 3), st.sampled_from([1, 3]), st.integers(16, 40), st.integers(16, 40))


def test_at_least_fifteen_corruptions_in_families():
    assert len(NAMES) >= 15
    assert set(CORRUPTIONS.values()) == set(FAMILIES)
    assert sum(len(list_corruptions(f)) for f in FAMILIES) == len(NAMES)
    for required in ("brightness", "low_light", "contrast", "gaussian_noise", "shot_noise", "gaussian_blur"):
        assert required in NAMES
    assert len(list_corruptions("occlusion")) == 5


@settings(max_examples=40, deadline=None)
@given(name=st.sampled_from(NAMES), shape=shapes, seed=st.integers(0, 2**16), dtype=st.sampled_from(["f32", "f64"]))
def test_corruption_keeps_shape_dtype_range_and_is_deterministic(name, shape, seed, dtype):
    x = _images(seed, shape).to(torch.float32 if dtype == "f32" else torch.float64)
    for severity in (0, 1, 3, 5):
        out = corrupt(x, name, severity, seed=seed)
        assert out.shape == x.shape and out.dtype == x.dtype
        assert float(out.min()) >= 0.0 and float(out.max()) <= 1.0
        assert torch.equal(out, corrupt(x, name, severity, seed=seed))
    assert torch.equal(corrupt(x, name, 0, seed=seed), x)


@settings(max_examples=40, deadline=None)
@given(name=st.sampled_from(NAMES), shape=shapes, seed=st.integers(0, 2**16))
def test_severity_is_monotone_in_the_distance_from_the_clean_image(name, shape, seed):
    x = _images(seed, shape)
    # pixelate's statistic is the RMS difference: its nested grids make that one monotone
    power = 2 if name == "pixelate" else 1
    distance = [float((corrupt(x, name, s, seed=seed) - x).abs().pow(power).mean()) for s in range(6)]
    assert distance[0] == 0.0
    slack = 1e-6 / max(distance[5], 1e-6)
    assert all(b >= a * (1 - slack) - 1e-7 for a, b in zip(distance, distance[1:], strict=False)), distance
    assert distance[5] > 0, distance


@settings(max_examples=15, deadline=None)
@given(shape=shapes, seed=st.integers(0, 2**16))
def test_brightness_raises_the_mean_and_low_light_lowers_it(shape, seed):
    x = _images(seed, shape)
    bright = [float(corrupt(x, "brightness", s).mean()) for s in range(6)]
    dark = [float(corrupt(x, "low_light", s).mean()) for s in range(6)]
    assert bright == sorted(bright) and bright[5] > bright[0]
    assert dark == sorted(dark, reverse=True) and dark[5] < dark[0]


def test_different_seeds_differ_for_random_corruptions():
    x = _images(0, (2, 1, 32, 32))
    for name in ("gaussian_noise", "shot_noise", "occlusion_patch", "motion_blur"):
        assert not torch.equal(corrupt(x, name, 3, seed=0), corrupt(x, name, 3, seed=1)), name


@pytest.mark.parametrize("name", ["rotation", "occlusion_patch", "gaussian_noise", "contrast"])
def test_video_clips_same_corruption_or_per_frame(name):
    frame = _images(3, (2, 1, 1, 24, 24))
    clip = frame.expand(2, 4, 1, 24, 24).contiguous()  # four identical frames
    same = corrupt(clip, name, 4, seed=5)
    per = corrupt(clip, name, 4, seed=5, per_frame=True)
    assert same.shape == clip.shape == per.shape
    assert 0 <= float(same.min()) and float(same.max()) <= 1
    if name in ("rotation", "occlusion_patch", "contrast"):  # no pixel noise: frames stay identical
        assert all(torch.equal(same[:, 0], same[:, t]) for t in range(4))
    if name in ("occlusion_patch", "gaussian_noise"):  # fresh draws per frame make frames differ
        assert not torch.equal(per[:, 0], per[:, 1])


def test_occluders_follow_landmarks():
    x = torch.full((1, 1, 32, 32), 0.5)
    face = SynthFER("test", 4, image_size=32, preset="easy", cache=False)
    landmarks = face.meta(0)["landmarks"][None].copy()
    shifted = landmarks.copy()
    shifted[..., 1] += 6  # the whole face 6 pixels lower
    a = corrupt(x, "occlusion_eyes", 3, landmarks=landmarks)
    b = corrupt(x, "occlusion_eyes", 3, landmarks=shifted)
    rows_a = (a[0, 0] - 0.5).abs().sum(1).nonzero().flatten().float().mean()
    rows_b = (b[0, 0] - 0.5).abs().sum(1).nonzero().flatten().float().mean()
    assert 4 < float(rows_b - rows_a) < 8
    # without landmarks the standard face box puts the band around 37% of the height
    c = corrupt(x, "occlusion_eyes", 3)
    rows_c = (c[0, 0] - 0.5).abs().sum(1).nonzero().flatten().float().mean()
    assert abs(float(rows_c) + 0.5 - 0.365 * 32) < 1.5


@pytest.mark.parametrize(
    "call, words",
    [
        (lambda x: corrupt(x, "fog", 1), ["unknown corruption 'fog'", "brightness", "occlusion_hand"]),
        (lambda x: corrupt(x, "brightness", 6), ["severity must be an integer in 0..5"]),
        (lambda x: corrupt(x, "brightness", 1.5), ["severity must be an integer in 0..5"]),
        (lambda x: corrupt(x, "brightness", -1), ["severity must be an integer in 0..5"]),
        (lambda x: list_corruptions("weather"), ["unknown corruption family", "lighting"]),
        (lambda x: augmentation_policy("mixup"), ["unknown augmentation policy", "trivialaugment", "occlusion"]),
        (lambda x: fgsm(nn.Flatten(), x, torch.zeros(1, dtype=torch.long), 2.0), ["eps must be in [0, 1]"]),
    ],
)
def test_bad_arguments_give_one_line_errors(call, words):
    x = torch.rand(1, 1, 16, 16)
    with pytest.raises(ValueError) as error:
        call(x)
    message = str(error.value)
    assert "\n" not in message
    for word in words:
        assert word in message


# --------------------------------------------------------------------------- attacks


def _separable(n: int = 128, seed: int = 0):
    """Two classes of 1x8x8 images: the left or the right half a little brighter."""
    g = torch.Generator().manual_seed(seed)
    y = torch.arange(n) % 2
    x = 0.4 + 0.2 * torch.rand(n, 1, 8, 8, generator=g)
    x[y == 0, :, :, :4] += 0.1
    x[y == 1, :, :, 4:] += 0.1
    return x.clamp(0, 1), y


@pytest.fixture(scope="module")
def linear_model():
    torch.manual_seed(0)
    model = nn.Sequential(nn.Flatten(), nn.Linear(64, 2))
    x, y = _separable()
    optim = torch.optim.Adam(model.parameters(), lr=0.05)
    for _ in range(200):
        optim.zero_grad()
        nn.functional.cross_entropy(model(x), y).backward()
        optim.step()
    return model


def test_trained_linear_model_is_accurate(linear_model):
    x, y = _separable(seed=1)
    assert (linear_model(x).argmax(1) == y).float().mean() > 0.95


def test_eps_zero_changes_nothing(linear_model):
    x, y = _separable(16, seed=2)
    assert torch.equal(fgsm(linear_model, x, y, 0.0), x)
    assert torch.equal(pgd(linear_model, x, y, 0.0, steps=3), x)


@settings(max_examples=15, deadline=None)
@given(eps=st.floats(0.001, 0.5), steps=st.integers(1, 6), seed=st.integers(0, 1000))
def test_pgd_stays_in_the_ball_and_the_unit_range(linear_model, eps, steps, seed):
    x, y = _separable(16, seed=seed)
    x[0] = 0.0  # pixels at the edges of [0, 1] must stay inside it
    x[1] = 1.0
    adv = pgd(linear_model, x, y, eps, steps=steps, seed=seed)
    assert float((adv - x).abs().max()) <= eps + 1e-6
    assert float(adv.min()) >= 0 and float(adv.max()) <= 1
    fast = fgsm(linear_model, x, y, eps, random_start=True, seed=seed)
    assert float((fast - x).abs().max()) <= eps + 1e-6
    assert float(fast.min()) >= 0 and float(fast.max()) <= 1


def test_attacks_lower_accuracy_and_restore_the_mode(linear_model):
    x, y = _separable(64, seed=3)
    linear_model.train()
    clean = (linear_model(x).argmax(1) == y).float().mean()
    for adv in (fgsm(linear_model, x, y, 0.1), pgd(linear_model, x, y, 0.1, steps=5)):
        assert linear_model.training  # restored
        assert (linear_model(adv).argmax(1) == y).float().mean() < clean - 0.3
    assert linear_model.weight.grad is None if hasattr(linear_model, "weight") else True
    table = adversarial_accuracy(linear_model, TensorDataset(x, y), [0, 0.02, 0.1], attack="pgd", steps=5, device="cpu")
    assert list(table.columns) == ["attack", "eps", "eps_255", "accuracy", "n"]
    assert table.accuracy.iloc[0] == pytest.approx(float(clean))
    assert table.accuracy.is_monotonic_decreasing and table.accuracy.iloc[-1] < 0.5
    assert table.eps_255.iloc[1] == pytest.approx(5.1)
    with pytest.raises(ValueError, match="unknown attack 'cw'"):
        adversarial_accuracy(linear_model, TensorDataset(x, y), [0.1], attack="cw")


# --------------------------------------------------------------------------- evaluation


@pytest.fixture(scope="module")
def faces():
    return SynthFER("test", 24, image_size=32, preset="easy", cache=False)


def test_evaluate_robustness_table_and_mce_against_itself(faces):
    torch.manual_seed(0)
    model = ferlib.create_model("cnn_small", width=8)
    names = ["brightness", "occlusion_eyes", "jpeg"]
    results = evaluate_robustness(model, faces, names, severities=(1, 3), batch_size=10, device="cpu")
    assert list(results.columns) == ["corruption", "family", "severity", "accuracy", "n"]
    assert len(results) == 1 + len(names) * 2
    assert results.iloc[0].corruption == "clean" and (results.n == len(faces)).all()
    assert results.accuracy.between(0, 1).all()
    again = evaluate_robustness(model, faces, names, severities=(1, 3), batch_size=10, device="cpu")
    pd.testing.assert_frame_equal(results, again)
    assert mce(results, results) == pytest.approx(1.0)
    table = corruption_error(results, results)
    assert set(table.corruption) == set(names) and np.allclose(table.ce, 1.0)
    better = results.assign(accuracy=lambda f: np.where(f.corruption == "clean", f.accuracy, (1 + f.accuracy) / 2))
    if (results.accuracy[1:] < 1).all():
        assert mce(better, results) < 1


def test_mce_by_hand():
    ref = pd.DataFrame({"corruption": ["a", "a", "b", "b"], "severity": [1, 2, 1, 2], "accuracy": [0.8, 0.6, 0.5, 0.5]})
    model = ref.assign(accuracy=[0.9, 0.7, 0.5, 0.0])
    # a: (0.1 + 0.3) / (0.2 + 0.4) = 2/3; b: (0.5 + 1.0) / (0.5 + 0.5) = 1.5
    assert mce(model, ref) == pytest.approx((2 / 3 + 1.5) / 2)


def test_occlusion_sensitivity_finds_the_informative_half(linear_model):
    x, y = _separable(6, seed=4)
    maps = occlusion_sensitivity(linear_model, x, y, patch=4, stride=2, device="cpu")
    assert maps.shape == (6, 8, 8)
    # class 0 is told by its brighter left half: hiding it costs the most there
    assert maps[y == 0][:, :, :4].mean() > maps[y == 0][:, :, 4:].mean()
    assert maps[y == 1][:, :, 4:].mean() > maps[y == 1][:, :, :4].mean()
    per_class = class_sensitivity(maps, y, num_classes=3)
    assert per_class.shape == (3, 8, 8) and np.isnan(per_class[2]).all()
    assert np.allclose(per_class[0], maps[y.numpy() == 0].mean(0))


# --------------------------------------------------------------------------- remedies in fit


@pytest.mark.parametrize("name", POLICIES)
def test_augmentation_policies_keep_shape_range_and_change_something(name):
    torch.manual_seed(0)
    x = _images(1, (8, 1, 32, 32))
    out = augmentation_policy(name, p=1.0)(x)
    assert out.shape == x.shape and out.dtype == x.dtype
    assert 0 <= float(out.min()) and float(out.max()) <= 1
    assert not torch.equal(out, x)
    assert augmentation_policy(None) is None


def _fit_data():
    g = torch.Generator().manual_seed(0)
    return TensorDataset(torch.rand(24, 1, 32, 32, generator=g), torch.arange(24) % 7)


@pytest.mark.parametrize(
    "options",
    [
        {"augment": "trivialaugment"},
        {"augment": "randaugment"},
        {"augment": "random_erasing"},
        {"augment": "occlusion"},
        {"augment": lambda x: 1 - x},
        {"adversarial": "fgsm", "adversarial_eps": 4 / 255},
        {"adversarial": "pgd", "adversarial_eps": 4 / 255, "adversarial_steps": 2},
    ],
)
def test_fit_with_augmentation_and_adversarial_training(options, tmp_path):
    torch.manual_seed(0)
    model = ferlib.create_model("cnn_small", width=8)
    history = ferlib.fit(
        model, _fit_data(), epochs=1, batch_size=12, progress=False, device="cpu", checkpoint_dir=tmp_path, **options
    )
    assert len(history.epochs) == 1 and np.isfinite(history.last["train_loss"])
    config = ferlib.read_checkpoint(tmp_path / "last.ckpt")["train_config"]
    for key, value in options.items():
        if isinstance(value, str | int | float):
            assert config[key] == value
    assert ("augment" in config) == ("augment" in options)


def test_fit_rejects_bad_remedies():
    model = ferlib.create_model("cnn_small", width=8)
    with pytest.raises(ValueError, match="unknown adversarial training '.*': expected one of fgsm, pgd"):
        ferlib.fit(model, _fit_data(), epochs=1, progress=False, device="cpu", adversarial="trades")
    with pytest.raises(ValueError, match="unknown augmentation policy 'cutmix'"):
        ferlib.fit(model, _fit_data(), epochs=1, progress=False, device="cpu", augment="cutmix")


def test_adversarial_training_changes_the_model_differently():
    data = _fit_data()
    weights = []
    for adversarial in (None, "fgsm"):
        torch.manual_seed(0)
        model = ferlib.create_model("cnn_small", width=8)
        ferlib.fit(model, data, epochs=1, batch_size=12, progress=False, device="cpu", adversarial=adversarial)
        weights.append(torch.cat([p.detach().flatten() for p in model.parameters()]))
    assert not torch.allclose(weights[0], weights[1])
