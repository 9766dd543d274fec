"""Checkpoints written by ferlib 0.1.0, before the package was restructured, still load and predict the same.

``tests/fixtures/checkpoints_0.1.0/`` holds tiny models trained one epoch by ferlib at commit 6c2f32a,
with the logits that version computed for two inputs.
"""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

import ferlib

FIXTURES = Path(__file__).resolve().parent.parent / "fixtures" / "checkpoints_0.1.0"
NAMES = sorted(path.stem for path in FIXTURES.glob("*.ckpt"))


def test_the_fixtures_are_there():
    assert {"cnn_small", "vgg_fer", "vit_tiny", "gru_rows", "cnn_lstm", "r3d_small"} <= set(NAMES)


@pytest.mark.filterwarnings("error::DeprecationWarning")  # an old checkpoint loads without a warning
@pytest.mark.parametrize("name", NAMES)
def test_a_checkpoint_of_ferlib_0_1_0_loads_and_gives_the_same_logits(name):
    model = ferlib.load_checkpoint(FIXTURES / f"{name}.ckpt")
    expected = torch.load(FIXTURES / f"{name}.expected.pt", weights_only=True)
    assert model.ferlib_name == name
    with torch.no_grad():
        logits = model(expected["input"])
    torch.testing.assert_close(logits, expected["logits"], rtol=1e-5, atol=1e-6)


def test_a_renamed_option_still_builds_under_its_old_name():
    with pytest.warns(DeprecationWarning, match="'img_size' is now called 'image_size'"):
        model = ferlib.create_model("vit_tiny", img_size=32, patch_size=8, dim=16, depth=1, heads=2)
    assert model.ferlib_config["image_size"] == 32 and "img_size" not in model.ferlib_config
    with pytest.warns(DeprecationWarning):  # inside a video model's encoder options too
        video = ferlib.create_model("cnn_lstm", encoder="vit_tiny", encoder_kwargs={"img_size": 48, "dim": 16})
    assert video(torch.zeros(1, 2, 1, 48, 48)).shape == (1, 7)
