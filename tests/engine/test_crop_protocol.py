"""The crop protocol: train on random crops, select on centre crops, report on ten crops, and
every later use of the checkpoint (``ferlib evaluate``, ``ferlib predict``) crops the same way."""

from __future__ import annotations

import json

import pytest
import torch
from torch.utils.data import TensorDataset

import ferlib
import ferlib.engine.evaluate
from ferlib.cli import main
from ferlib.data.transforms import center_crop, crop_size, five_crops, random_crops
from ferlib.deploy.predictor import load_predictor
from ferlib.engine.evaluate import predict_proba
from tests.book.test_results import fake_run
from tests.conftest import BlobFaces


def _recorded_shapes(model) -> list[tuple[bool, tuple[int, ...]]]:
    """(training mode, input shape) of every forward pass of ``model``, as it happens."""
    shapes: list[tuple[bool, tuple[int, ...]]] = []
    model.register_forward_pre_hook(lambda module, args: shapes.append((module.training, tuple(args[0].shape))))
    return shapes


def test_crop_size_rounds_the_fraction_and_names_a_bad_one():
    assert crop_size(0.8333, (1, 48, 48)) == (40, 40)
    assert crop_size(1.0, (3, 10, 20)) == (10, 20)
    for bad in (0, 1.5, -0.2, True, "0.8"):
        with pytest.raises(ValueError, match="crop must be a fraction"):
            crop_size(bad, (1, 48, 48))


def test_random_crops_are_windows_chosen_per_sample():
    image = torch.arange(10 * 10, dtype=torch.float32).reshape(1, 10, 10)
    batch = image.expand(64, 1, 10, 10).clone()
    crops = random_crops(batch, (6, 6), generator=torch.Generator().manual_seed(0))
    assert crops.shape == (64, 1, 6, 6)
    corners = set()
    for crop in crops:
        top, left = divmod(int(crop[0, 0, 0]), 10)
        assert torch.equal(crop, image[:, top : top + 6, left : left + 6])
        corners.add((top, left))
    assert len(corners) > 5  # each sample draws its own window (25 are possible)
    clip = torch.rand(8, 3, 1, 10, 10)  # [B, T, C, H, W]: the frames of a clip share their window
    cropped = random_crops(clip, (6, 6))
    for sample, out in zip(clip, cropped, strict=True):
        top, left = next(
            (row, col) for row in range(5) for col in range(5)
            if torch.equal(sample[0, :, row : row + 6, col : col + 6], out[0])
        )
        assert torch.equal(out, sample[..., top : top + 6, left : left + 6])
    with pytest.raises(ValueError, match="does not fit"):
        random_crops(batch, (12, 6))


def test_centre_and_five_crops():
    x = torch.arange(36, dtype=torch.float32).reshape(1, 1, 6, 6)
    assert torch.equal(center_crop(x, (4, 4)), x[..., 1:5, 1:5])
    crops = five_crops(x, (4, 4))
    expected = [x[..., :4, :4], x[..., :4, 2:], x[..., 2:, :4], x[..., 2:, 2:], x[..., 1:5, 1:5]]
    assert all(torch.equal(a, b) for a, b in zip(crops, expected, strict=True))


def test_fit_trains_on_random_crops_and_validates_on_centre_crops(tmp_path):
    ferlib.seed_everything(0)
    model = ferlib.create_model("cnn_small", num_classes=4, in_channels=1, width=8)
    shapes = _recorded_shapes(model)
    history = ferlib.fit(
        model, BlobFaces(), BlobFaces(n=48, seed=1), epochs=2, batch_size=32, device="cpu", progress=False,
        crop=0.75, checkpoint_dir=tmp_path,
    )
    assert {shape[-2:] for training, shape in shapes if training} == {(12, 12)}  # 0.75 of 16
    assert {shape[-2:] for training, shape in shapes if not training} == {(12, 12)}
    assert len(history.epochs) == 2 and "val_accuracy" in history.epochs[-1]
    config = ferlib.read_checkpoint(tmp_path / "best.ckpt")["train_config"]
    assert config["crop"] == 0.75 and config["input_shape"] == [1, 16, 16]  # the uncropped input
    with pytest.raises(ValueError, match="crop must be a fraction"):
        ferlib.fit(model, BlobFaces(), epochs=1, device="cpu", progress=False, crop=1.2)


def test_predict_proba_averages_the_crops_and_their_mirrors():
    torch.manual_seed(0)
    model = ferlib.create_model("cnn_small", num_classes=4, in_channels=1, width=8).eval()
    x = torch.rand(5, 1, 16, 16)
    data = TensorDataset(x, torch.zeros(5, dtype=torch.long))

    def softmax(view):
        with torch.no_grad():
            return torch.softmax(model(view), dim=1)

    views = list(five_crops(x, (12, 12)))
    ten = sum(softmax(view) + softmax(torch.flip(view, dims=(-1,))) for view in views) / 10
    probs, _, _ = predict_proba(model, data, device="cpu", crop=0.75, tta_flip=True, tta_crops=True)
    torch.testing.assert_close(torch.from_numpy(probs), ten)
    centre, _, _ = predict_proba(model, data, device="cpu", crop=0.75)
    torch.testing.assert_close(torch.from_numpy(centre), softmax(center_crop(x, (12, 12))))
    whole, _, _ = predict_proba(model, data, device="cpu")
    assert not torch.allclose(torch.from_numpy(whole), torch.from_numpy(centre))
    with pytest.raises(ValueError, match="tta_crops needs crop"):
        predict_proba(model, data, device="cpu", tta_crops=True)


def test_train_and_evaluate_commands_use_the_checkpoints_crop(tmp_path, capsys, monkeypatch):
    out = tmp_path / "run"
    args = ["train", "--dataset", "test-blobs", "--model", "cnn_small", "--profile", "smoke", "--epochs", "2",
            "--batch-size", "16", "--crop", "0.75", "--tta", "--out", str(out), "--results",
            str(tmp_path / "r.sqlite"), "--no-progress", "--device", "cpu"]
    assert main(args) == 0
    run = json.loads((out / "metrics.json").read_text())
    assert run["config"]["crop"] == 0.75 and run["config"]["tta"] is True
    capsys.readouterr()

    calls = []
    evaluate = ferlib.evaluate
    monkeypatch.setattr(ferlib.engine.evaluate, "evaluate", lambda *a, **kw: calls.append(kw) or evaluate(*a, **kw))
    assert main(["evaluate", str(out / "best.ckpt"), "--dataset", "test-blobs", "--profile", "smoke", "--tta",
                 "--json", "--device", "cpu"]) == 0
    assert calls[-1]["crop"] == 0.75 and calls[-1]["tta_crops"] is True
    # the command reproduces the report of the run, which chose the same checkpoint
    assert json.loads(capsys.readouterr().out)["accuracy"] == run["metrics"]["test_accuracy"]


def test_predictor_classifies_the_centre_crop(tmp_path):
    path = tmp_path / "best.ckpt"
    model = ferlib.create_model("cnn_small", width=8)
    ferlib.save_checkpoint(path, model, train_config={"input_shape": [1, 48, 48], "crop": 0.8333})
    predictor = load_predictor(path, optimize=False)
    assert predictor.image_size == (48, 48) and predictor.crop_fraction == 0.8333
    shapes = _recorded_shapes(predictor.model)
    probs = predictor.classify(torch.rand(2, 1, 48, 48))
    assert probs.shape == (2, 7) and shapes[-1][1] == (2, 1, 40, 40)
    optimized = load_predictor(path)  # the faster copy is checked on inputs of the cropped size
    assert optimized.classify(torch.rand(2, 1, 48, 48)).shape == (2, 7)


def test_export_takes_the_centre_crop(tmp_path, capsys):
    pytest.importorskip("onnxruntime")
    path, out = tmp_path / "best.ckpt", tmp_path / "model.onnx"
    ferlib.save_checkpoint(path, ferlib.create_model("cnn_small", width=8),
                           train_config={"input_shape": [1, 48, 48], "crop": 0.8333})
    assert main(["export", str(path), "--onnx", str(out), "--check"]) == 0
    stdout = capsys.readouterr().out
    assert "input [batch, 1, 40, 40]; trained on crops: give it the centre 40x40 of 48x48 faces" in stdout
    assert "parity" in stdout


def test_a_record_says_how_the_run_cropped(tmp_path):
    from ferlib.book import results

    folder = fake_run(tmp_path / "run")
    run = json.loads((folder / "metrics.json").read_text())
    run["config"]["crop"] = 0.8333
    (folder / "metrics.json").write_text(json.dumps(run))
    record = results.fer2013_record(folder, hardware="cpu", note="crop")
    assert record["protocol"].endswith(
        "trained on random crops of 0.8333 of the side, selected on centre crops, reported on ten crops "
        "(five crops and their mirrors)"
    )
