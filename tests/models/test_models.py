"""The static model zoo: shapes, training, transfer learning, ensembles and cost counting."""

from __future__ import annotations

import math

import pytest
import torch
import torch.nn.functional as F
import torchvision
from torch import nn
from torch.utils.data import TensorDataset

from ferlib.efficiency import count_flops, count_parameters
from ferlib.errors import CheckpointError
from ferlib.models import create_model, list_models
from ferlib.models.cnn import multitask_loss
from ferlib.models.ensemble import Ensemble, ensemble_from_checkpoints
from ferlib.models.pretrained import freeze_backbone, load_pretrained

STATIC = list_models(kind="static")
MINE = (
    "cnn_small",
    "vgg_fer",
    "resnet18_fer",
    "cnn_cbam",
    "cnn_multitask",
    "vit_tiny",
    "lstm_rows",
    "gru_rows",
)


def test_all_models_registered():
    assert set(MINE) <= set(STATIC)


@pytest.mark.parametrize("name", STATIC)
def test_output_shapes_and_bad_input(name):
    torch.manual_seed(0)
    grey = create_model(name).eval()
    with torch.no_grad():
        assert grey(torch.randn(2, 1, 48, 48)).shape == (2, 7)
        colour = create_model(name, num_classes=5, in_channels=3).eval()
        assert colour(torch.randn(2, 3, 64, 64)).shape == (2, 5)
    with pytest.raises(ValueError, match="expects input"):
        grey(torch.randn(2, 3, 48, 48))
    with pytest.raises(ValueError, match="expects input"):
        grey(torch.randn(1, 48, 48))


@pytest.mark.parametrize("name", STATIC)
def test_trains_one_epoch(name):
    """One epoch on 64 samples runs, changes the weights, and keeps the loss finite."""
    torch.manual_seed(0)
    x = torch.randn(64, 1, 48, 48)
    y = torch.arange(64) % 7
    model = create_model(name)
    before = [p.detach().clone() for p in model.parameters()]
    optimiser = torch.optim.AdamW(model.parameters(), lr=1e-3)
    model.train()
    for batch in range(2):
        xb, yb = x[32 * batch : 32 * (batch + 1)], y[32 * batch : 32 * (batch + 1)]
        if hasattr(model, "aux_loss"):  # multi-task: the landmark head trains too
            logits, aux = model(xb, return_aux=True)
            loss = F.cross_entropy(logits, yb) + model.aux_loss(aux, [{"landmarks": torch.rand(5, 2)}] * 32)
        else:
            loss = F.cross_entropy(model(xb), yb)
        optimiser.zero_grad()
        loss.backward()
        optimiser.step()
        assert math.isfinite(loss.item())
    changed = sum(not torch.equal(a, b) for a, b in zip(before, model.parameters(), strict=True))
    assert changed == len(before)


def test_trains_with_fit():
    fit = pytest.importorskip("ferlib.engine.train").fit
    torch.manual_seed(0)
    data = TensorDataset(torch.randn(64, 1, 48, 48), torch.arange(64) % 7)
    history = fit(create_model("vit_tiny"), data, epochs=1, batch_size=32, lr=1e-3, seed=0, progress=False)
    assert len(history.epochs) == 1


def test_non_square_and_odd_sizes():
    with torch.no_grad():
        for name in ("vit_tiny", "lstm_rows", "resnet18_fer", "cnn_cbam"):
            model = create_model(name, in_channels=3).eval()
            assert model(torch.randn(1, 3, 50, 37)).shape == (1, 7)


def test_multitask_aux_outputs_and_loss():
    torch.manual_seed(0)
    model = create_model("cnn_multitask", num_landmarks=4)
    x = torch.randn(3, 1, 48, 48)
    assert model(x).shape == (3, 7)
    logits, aux = model(x, return_aux=True)
    assert logits.shape == (3, 7) and aux["landmarks"].shape == (3, 4, 2)
    assert aux["landmarks"].min() >= 0 and aux["landmarks"].max() <= 1
    target = torch.rand(3, 4, 2)
    # A sample without landmarks is left out of the loss.
    metas = [{"landmarks": target[0]}, {"subject": 1}, {"landmarks": target[2].numpy()}]
    loss = model.aux_loss(aux, metas)
    expected = F.mse_loss(aux["landmarks"][[0, 2]], target[[0, 2]])
    assert torch.allclose(loss, expected)
    # Pixel targets with image_size give the same loss as normalised ones.
    pixels = target * torch.tensor([48.0, 48.0])
    assert torch.allclose(
        model.aux_loss(aux, {"landmarks": pixels}, image_size=(48, 48)), F.mse_loss(aux["landmarks"], target)
    )
    assert model.aux_loss(aux, [{}, {}, {}]).item() == 0.0
    total = multitask_loss((logits, aux), torch.tensor([0, 1, 2]), target, weight=0.5)
    assert torch.allclose(
        total, F.cross_entropy(logits, torch.tensor([0, 1, 2])) + 0.5 * F.mse_loss(aux["landmarks"], target)
    )
    total.backward()
    assert model.landmark_head[-1].weight.grad is not None


def test_attention_outputs():
    x = torch.randn(2, 1, 48, 48)
    vit = create_model("vit_tiny").eval()
    maps = vit.attention_maps(x)
    assert maps.shape == (2, 12, 12)
    assert torch.all(maps.sum(dim=(1, 2)) <= 1 + 1e-5)
    cbam = create_model("cnn_cbam").eval()
    _, aux = cbam(x, return_aux=True)
    assert [m.shape for m in aux["spatial_attention"]] == [(2, 48, 48), (2, 24, 24), (2, 12, 12)]
    assert cbam.attention_maps(x).shape == (2, 12, 12)


# --- transfer learning ------------------------------------------------------------------------


def _ferlib_checkpoint(path, model):
    torch.save(
        {
            "model_name": model.ferlib_name,
            "model_config": model.ferlib_config,
            "state_dict": model.state_dict(),
        },
        path,
    )


def test_pretrained_round_trip_from_ferlib_checkpoint(tmp_path):
    torch.manual_seed(0)
    source = create_model("cnn_small", num_classes=7)
    path = tmp_path / "source.pt"
    _ferlib_checkpoint(path, source)
    same = create_model("cnn_small", num_classes=7, pretrained=path)
    for key, value in source.state_dict().items():
        assert torch.equal(same.state_dict()[key], value), key
    assert same.ferlib_config["pretrained"] is None  # a rebuilt checkpoint does not read the file again
    # Another number of classes: the backbone loads, the head is skipped.
    other = create_model("cnn_small", num_classes=3, pretrained=path)
    assert torch.equal(other.features[0][0].weight, source.features[0][0].weight)
    assert other.head[1].weight.shape == (3, 128)
    report = other.ferlib_pretrained_report
    assert set(report.skipped) == {"head.1.weight", "head.1.bias"}


def test_pretrained_from_torchvision_resnet18(tmp_path):
    torch.manual_seed(0)
    imagenet = torchvision.models.resnet18(weights=None)  # stands in for the ImageNet file
    path = tmp_path / "resnet18-imagenet.pth"
    torch.save(imagenet.state_dict(), path)
    model = create_model("resnet18_fer", num_classes=7, in_channels=1, pretrained=path)
    assert torch.equal(model.layer3[1].conv2.weight, imagenet.layer3[1].conv2.weight)
    assert torch.equal(model.bn1.running_var, imagenet.bn1.running_var)
    report = model.ferlib_pretrained_report
    assert "conv1.weight" in report.skipped and "fc.weight" in report.skipped  # 7x7 stem, 1000 classes
    # A stem of the same kernel size but other channels is adapted: RGB summed to grey.
    stem = torchvision.models.resnet18(weights=None)
    stem.conv1 = nn.Conv2d(3, 64, 3, padding=1, bias=False)
    torch.save(stem.state_dict(), path)
    model = create_model("resnet18_fer", in_channels=1, pretrained=path)
    assert torch.allclose(model.conv1.weight, stem.conv1.weight.sum(dim=1, keepdim=True))
    assert model.ferlib_pretrained_report.adapted == ["conv1.weight"]


def test_pretrained_errors(tmp_path):
    missing = tmp_path / "nope.pt"
    with pytest.raises(FileNotFoundError, match="nope.pt"):
        create_model("cnn_small", pretrained=missing)
    junk = tmp_path / "junk.pt"
    junk.write_text("not a checkpoint")
    with pytest.raises(ValueError, match="junk.pt"):
        create_model("cnn_small", pretrained=junk)
    wrong = tmp_path / "list.pt"
    torch.save([1, 2, 3], wrong)
    with pytest.raises(ValueError, match="neither"):
        create_model("cnn_small", pretrained=wrong)
    other_model = tmp_path / "vgg.pt"
    _ferlib_checkpoint(other_model, create_model("vgg_fer"))
    with pytest.raises(CheckpointError, match="vgg_fer"):
        create_model("cnn_small", pretrained=other_model)
    wider = tmp_path / "wide.pt"
    torch.save(create_model("cnn_small", width=8).state_dict(), wider)
    with pytest.raises(CheckpointError, match="backbone"):
        create_model("cnn_small", pretrained=wider)
    with pytest.raises(ValueError, match="freeze"):
        create_model("cnn_small", freeze="everything")


@pytest.mark.parametrize("name", ["cnn_small", "resnet18_fer", "vit_tiny", "lstm_rows"])
def test_freeze_leaves_only_the_head_trainable(name):
    model = create_model(name, freeze="backbone")
    head = model.get_submodule(model.head_name)
    trainable = {id(p) for p in model.parameters() if p.requires_grad}
    assert trainable == {id(p) for p in head.parameters()}
    assert count_parameters(model, trainable_only=True) == count_parameters(head)
    assert model.ferlib_config["freeze"] == "backbone"
    # The same function serves models built without create_model's freeze argument.
    probe = freeze_backbone(create_model(name))
    assert count_parameters(probe, trainable_only=True) == count_parameters(head)


def test_load_pretrained_non_strict_skips_mismatches(tmp_path):
    path = tmp_path / "wide.pt"
    torch.save(create_model("cnn_small", width=8).state_dict(), path)
    model = create_model("cnn_small")
    initial = model.features[0][0].weight.detach().clone()
    report = load_pretrained(model, path, strict_backbone=False)
    assert "features.0.0.weight" in report.skipped
    assert all(key.endswith("num_batches_tracked") or key == "head.1.bias" for key in report.loaded)
    assert torch.equal(model.features[0][0].weight, initial)


# --- ensembles --------------------------------------------------------------------------------


class _Fixed(nn.Module):
    """A 'model' that returns fixed logits, to check the averaging by hand."""

    kind, in_channels, num_classes = "static", 1, 3

    def __init__(self, logits):
        super().__init__()
        self.logits = torch.tensor(logits)

    def forward(self, x):
        return self.logits.expand(len(x), -1)


def test_ensemble_averages_probabilities():
    a, b = [2.0, 0.0, 0.0], [0.0, 0.0, 3.0]
    x = torch.zeros(2, 1, 8, 8)
    out = Ensemble([_Fixed(a), _Fixed(b)])(x)
    pa, pb = torch.softmax(torch.tensor(a), 0), torch.softmax(torch.tensor(b), 0)
    expected = (pa + pb) / 2
    assert out.shape == (2, 3)
    assert torch.allclose(out.exp()[0], expected)
    assert torch.allclose(torch.softmax(out, dim=1)[0], expected)  # the logits are valid logits
    weighted = Ensemble([_Fixed(a), _Fixed(b)], weights=[3, 1])(x)
    assert torch.allclose(weighted.exp()[0], 0.75 * pa + 0.25 * pb)
    with pytest.raises(ValueError, match="num_classes"):
        Ensemble([create_model("cnn_small", num_classes=3), create_model("cnn_small", num_classes=4)])


def test_ensemble_from_checkpoints(tmp_path):
    save_checkpoint = pytest.importorskip("ferlib.models.checkpoint").save_checkpoint
    torch.manual_seed(0)
    members = [create_model("cnn_small", width=8).eval(), create_model("vit_tiny", depth=1, dim=32).eval()]
    paths = [save_checkpoint(tmp_path / f"m{i}.ckpt", m) for i, m in enumerate(members)]
    ensemble = ensemble_from_checkpoints(paths)
    x = torch.randn(4, 1, 48, 48)
    with torch.no_grad():
        expected = torch.stack([torch.softmax(m(x), dim=1) for m in members]).mean(0)
        assert torch.allclose(ensemble(x).exp(), expected, atol=1e-6)
    with pytest.raises(ValueError, match="expects input"):
        ensemble(torch.randn(4, 3, 48, 48))


# --- cost -------------------------------------------------------------------------------------


def test_flops_of_a_linear_layer_count_multiply_add_as_two():
    assert count_flops(nn.Linear(10, 5), (10,)) == 2 * 10 * 5
    assert count_parameters(nn.Linear(10, 5)) == 55


def test_flops_of_recurrent_and_conv_models():
    conv = nn.Conv2d(1, 4, 3, padding=1, bias=False)
    assert count_flops(conv, (1, 8, 8)) == 2 * 4 * 9 * 64
    lstm = create_model("lstm_rows", num_layers=1, hidden_size=16)
    # 48 steps, 4 gates, (input 48 + hidden 16) -> 16, plus the head 16 -> 7.
    assert count_flops(lstm, (1, 48, 48)) == 48 * 2 * 4 * 16 * (48 + 16) + 2 * 16 * 7
    for name in MINE:
        assert count_flops(create_model(name), (1, 48, 48)) > 0
