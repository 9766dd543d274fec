"""Grad-CAM and attention maps: shapes, range, and that they point where the evidence is."""

from __future__ import annotations

import pytest
import torch
from torch import nn

from ferlib.explain import attention_map, grad_cam
from ferlib.models import create_model

CNNS = ["cnn_small", "vgg_fer", "resnet18_fer", "cnn_cbam", "cnn_multitask"]


@pytest.mark.parametrize("name", CNNS)
@pytest.mark.parametrize("shape", [(1, 48, 48), (3, 64, 64)])
def test_grad_cam_shape_and_range(name, shape):
    torch.manual_seed(0)
    model = create_model(name, in_channels=shape[0]).train()
    maps = grad_cam(model, torch.randn(2, *shape))
    assert maps.shape == (2, *shape[1:])
    assert maps.min() >= 0 and maps.max() <= 1
    assert model.training  # the mode is put back
    assert all(p.grad is None for p in model.parameters())  # parameter gradients untouched


def test_grad_cam_target_and_layer_arguments():
    torch.manual_seed(0)
    model = create_model("cnn_small").eval()
    x = torch.randn(3, 1, 48, 48)
    by_name = grad_cam(model, x, target=2, layer="features.1")
    by_module = grad_cam(model, x, target=torch.tensor([2, 2, 2]), layer=model.features[1])
    assert torch.allclose(by_name, by_module)
    assert by_name.shape == (3, 48, 48)


def test_grad_cam_works_on_a_frozen_model():
    model = create_model("cnn_small", freeze="backbone")
    for parameter in model.parameters():
        parameter.requires_grad_(False)
    assert grad_cam(model, torch.randn(1, 1, 48, 48)).shape == (1, 48, 48)


def test_grad_cam_finds_the_evidence():
    """A 1x1-conv 'model' scoring mean brightness on a face bright only in its top-left quarter."""

    class Brightness(nn.Module):
        cam_layer = "conv"

        def __init__(self):
            super().__init__()
            self.conv = nn.Conv2d(1, 1, 1, bias=False)
            nn.init.ones_(self.conv.weight)

        def forward(self, x):
            score = self.conv(x).mean((1, 2, 3))
            return torch.stack([score, -score], dim=1)

    x = torch.zeros(1, 1, 16, 16)
    x[..., :8, :8] = 1
    maps = grad_cam(Brightness(), x, target=0)
    assert maps[0, :7, :7].min() > 0.9 and maps[0, 9:, 9:].max() < 0.1


def test_grad_cam_needs_a_layer():
    with pytest.raises(ValueError, match="cam_layer"):
        grad_cam(create_model("lstm_rows"), torch.randn(1, 1, 48, 48))


@pytest.mark.parametrize("name", ["vit_tiny", "cnn_cbam"])
def test_attention_map(name):
    model = create_model(name, in_channels=3).eval()
    maps = attention_map(model, torch.randn(2, 3, 64, 64))
    assert maps.shape == (2, 64, 64)
    assert maps.min() >= 0 and maps.max() <= 1


def test_attention_map_needs_attention():
    with pytest.raises(ValueError, match="grad_cam"):
        attention_map(create_model("cnn_small"), torch.randn(1, 1, 48, 48))
