"""Augmentation of training batches: the batched random affine policy, policies chained with
``+``, and ``ferlib train --batch-augment``, which records the policy with the run."""

from __future__ import annotations

import json

import pytest
import torch

import ferlib
import ferlib.engine.train
from ferlib.book.results import augmentation_label
from ferlib.cli import main
from ferlib.data.augment import _affine_augment, augmentation_policy, train_augmentation
from ferlib.errors import ConfigError


def _square(n: int, side: int = 24, half: int = 4) -> torch.Tensor:
    """``n`` copies of a white square centred on a black image."""
    x = torch.zeros(n, 1, side, side)
    centre = side // 2
    x[:, :, centre - half:centre + half, centre - half:centre + half] = 1.0
    return x


def test_affine_draws_its_own_transform_for_every_sample():
    torch.manual_seed(0)
    x = _square(6)
    out = augmentation_policy("affine")(x)
    assert out.shape == x.shape and out.dtype == x.dtype
    assert 0 <= float(out.min()) and float(out.max()) <= 1
    flat = out.flatten(1)
    assert all(not torch.allclose(flat[i], flat[j], atol=1e-3) for i in range(6) for j in range(i + 1, 6))
    # with no rotation, scaling or shift it is the identity
    assert torch.allclose(_affine_augment(0.0, (1.0, 1.0), 0.0)(x), x, atol=1e-5)


def test_affine_scales_up_and_shifts_as_drawn():
    x = _square(4)
    bigger = _affine_augment(0.0, (1.5, 1.5), 0.0)(x)
    assert float(bigger.sum()) == pytest.approx(1.5**2 * float(x.sum()), rel=0.1)  # the square zooms in
    shifted = _affine_augment(0.0, (1.0, 1.0), 0.25)(x)
    columns = torch.arange(24.0)
    centroid = (shifted[:, 0].sum(1) * columns).sum(1) / shifted[:, 0].sum((1, 2))
    assert float((centroid - 11.5).abs().max()) > 0.5  # moved off the centre, by up to 6 pixels
    assert float((centroid - 11.5).abs().max()) <= 6.0 + 1e-4


def test_affine_moves_the_frames_of_a_clip_together():
    torch.manual_seed(1)
    clips = _square(3).unsqueeze(1).repeat(1, 4, 1, 1, 1)  # [3 clips, 4 frames, 1, 24, 24]
    out = augmentation_policy("affine")(clips)
    assert out.shape == clips.shape
    assert torch.allclose(out[:, 1:], out[:, :1].expand_as(out[:, 1:]))
    assert not torch.allclose(out[0], out[1], atol=1e-3)


def test_policies_joined_by_plus_apply_in_turn():
    x = torch.rand(5, 1, 16, 16, generator=torch.Generator().manual_seed(0))
    torch.manual_seed(3)
    chained = augmentation_policy("affine+random_erasing", p=1.0)(x)
    torch.manual_seed(3)
    by_hand = augmentation_policy("random_erasing", p=1.0)(augmentation_policy("affine")(x))
    assert torch.equal(chained, by_hand)
    with pytest.raises(ValueError, match="unknown augmentation policy 'afine'"):
        augmentation_policy("afine+random_erasing")


def test_train_command_applies_and_records_the_batch_policy(tmp_path, monkeypatch, capsys):
    calls = []
    fit = ferlib.fit
    monkeypatch.setattr(ferlib.engine.train, "fit", lambda *a, **kw: calls.append(kw) or fit(*a, **kw))
    out = tmp_path / "run"
    assert main(["train", "--dataset", "test-blobs", "--model", "cnn_small", "--profile", "smoke", "--epochs", "1",
                 "--batch-size", "16", "--augment", "flip", "--crop", "0.75", "--batch-augment", "affine",
                 "--out", str(out), "--results", str(tmp_path / "r.sqlite"), "--no-progress", "--device", "cpu"]) == 0
    assert calls[-1]["augment"] == "affine"
    config = json.loads((out / "metrics.json").read_text())["config"]
    assert config["batch_augment"] == "affine"
    assert ferlib.read_checkpoint(out / "best.ckpt")["train_config"]["augment"] == "affine"
    assert augmentation_label(config) == "flip, 0.75 crops, affine"
    capsys.readouterr()
    assert main(["train", "--dataset", "test-blobs", "--model", "cnn_small", "--profile", "smoke", "--epochs", "1",
                 "--batch-augment", "rotate", "--out", str(tmp_path / "bad"), "--results", str(tmp_path / "r.sqlite"),
                 "--no-progress", "--device", "cpu"]) == 2
    assert "unknown augmentation policy 'rotate'" in capsys.readouterr().err
    assert not (tmp_path / "bad" / "last.ckpt").exists()


def test_augmentation_label_without_crop_or_batch_policy():
    assert augmentation_label({"augment": "strong"}) == "strong"
    assert augmentation_label({}) == "none"


def test_one_registry_holds_the_presets_and_the_batch_policies():
    from ferlib.data import augment, transforms

    assert set(augment.REGISTRY) == set(augment.AUGMENTATIONS) | set(augment.POLICIES)
    assert {entry.kind for entry in augment.REGISTRY.values()} == set(augment.KINDS)
    assert augment.AUGMENTATIONS == ("none", "flip", "flip_shift", "strong")
    assert augment.POLICIES == ("trivialaugment", "randaugment", "random_erasing", "occlusion", "affine")
    assert transforms.train_augmentation is augment.train_augmentation  # re-exported for older imports


@pytest.mark.parametrize(
    "call, words",
    [
        (lambda: augmentation_policy("flip"), ["'flip' is a per-sample preset", "--augment", "trivialaugment"]),
        (lambda: train_augmentation("affine"), ["'affine' is a batch policy", "--batch-augment", "flip_shift"]),
        (lambda: train_augmentation("flp"), ["unknown augmentation 'flp'", "did you mean 'flip'?"]),
        (lambda: augmentation_policy("randaugmnt"), ["unknown augmentation policy", "did you mean 'randaugment'?"]),
    ],
)
def test_a_name_of_the_other_kind_or_a_typo_is_a_config_error(call, words):
    with pytest.raises(ConfigError) as error:
        call()
    for word in words:
        assert word in str(error.value)


def test_robustness_reexports_the_moved_names():
    import ferlib.robustness as robustness
    from ferlib.data import corruptions
    from ferlib.engine import attacks

    assert robustness.corrupt is corruptions.corrupt and robustness.pgd is attacks.pgd
    assert robustness.augmentation_policy is augmentation_policy
