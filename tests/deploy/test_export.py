"""ONNX export parity, ONNX Runtime inference, int8 quantisation and the efficiency profile."""

from __future__ import annotations

import numpy as np
import pytest
import torch

import ferlib
from ferlib.data.synth import SynthFER
from ferlib.efficiency import latency, peak_memory, profile_model, throughput, train_time_per_epoch

pytest.importorskip("onnxruntime")

from ferlib.deploy.export import OnnxModel, compare_quantized, export_onnx, onnx_parity, quantize_onnx  # noqa: E402

SHAPE = (1, 48, 48)


@pytest.fixture(scope="module")
def synth():
    return SynthFER("val", size=64, seed=3)


@pytest.fixture(scope="module")
def trained_cnn(synth):
    torch.manual_seed(0)
    model = ferlib.create_model("cnn_small", width=8)
    ferlib.fit(model, SynthFER("train", size=64), None, epochs=1, batch_size=32, progress=False, device="cpu")
    return model.eval()


@pytest.mark.parametrize("name", ["cnn_small", "gru_rows"])
def test_onnx_parity_on_random_and_synthfer_inputs(tmp_path, synth, name, trained_cnn):
    torch.manual_seed(0)
    model = trained_cnn if name == "cnn_small" else ferlib.create_model(name, hidden_size=32, num_layers=1).eval()
    path = export_onnx(model, tmp_path / f"{name}.onnx", SHAPE)
    assert path.is_file() and not list(tmp_path.glob("*.partial"))
    random_inputs = torch.rand(7, *SHAPE, generator=torch.Generator().manual_seed(1))
    assert onnx_parity(model, path, random_inputs) <= 1e-4
    assert onnx_parity(model, path, synth) <= 1e-4
    # The batch axis is dynamic and the session gives logits and probabilities.
    session = OnnxModel(path)
    assert session.input_shape == SHAPE
    logits = session(random_inputs[:3])
    assert logits.shape == (3, 7)
    probs = session.predict_proba(random_inputs[:3])
    np.testing.assert_allclose(probs.sum(axis=1), 1.0, atol=1e-5)
    with torch.no_grad():
        expected = torch.softmax(model(random_inputs[:3]), dim=1).numpy()
    np.testing.assert_allclose(probs, expected, atol=1e-5)


def test_int8_quantized_model_runs_and_reports_accuracy(tmp_path, synth, trained_cnn):
    path = export_onnx(trained_cnn, tmp_path / "cnn.onnx", SHAPE)
    static = quantize_onnx(path, tmp_path / "cnn.int8.onnx", calibration=synth)
    dynamic = quantize_onnx(path, tmp_path / "cnn.dyn.onnx")
    for quantized in (static, dynamic):
        stats = compare_quantized(path, quantized, synth, batch_size=32, runs=1)
        assert stats["n"] == len(synth)
        assert 0.0 <= stats["accuracy_int8"] <= 1.0
        assert stats["accuracy_drop"] == pytest.approx(stats["accuracy_float"] - stats["accuracy_int8"])
        assert stats["agreement"] >= 0.5  # int8 follows the float model on most inputs
        assert stats["throughput_int8"] > 0 and stats["speedup"] > 0
    # Static quantisation stores the convolution weights as int8: the file shrinks.
    assert static.stat().st_size < 0.75 * path.stat().st_size


def test_export_errors_are_ferlib_errors(tmp_path):
    with pytest.raises(ferlib.FerlibError, match="not found"):
        OnnxModel(tmp_path / "missing.onnx")
    broken = tmp_path / "broken.onnx"
    broken.write_bytes(b"not an onnx file")
    with pytest.raises(ferlib.FerlibError, match="not a readable ONNX model"):
        OnnxModel(broken)


def test_latency_throughput_memory_and_training_time():
    model = ferlib.create_model("cnn_small", width=8)
    stats = latency(model, SHAPE, runs=3, warmup=1)
    assert 0 < stats["median_ms"] <= stats["p95_ms"] * 1.0001
    assert throughput(model, SHAPE, batch_size=8, runs=2) > 0
    memory = peak_memory(model, SHAPE, batch_size=16)
    assert memory["method"] == "cpu_live_tensors"
    # The first conv block's output alone (8 channels, 48x48, float32, batch 16) is alive at once.
    assert memory["peak_bytes"] >= 16 * 8 * 48 * 48 * 4
    assert memory["peak_bytes"] > peak_memory(model, SHAPE, batch_size=1)["peak_bytes"]
    assert train_time_per_epoch(model, SHAPE, samples=32, batch_size=16) > 0
    with pytest.raises(ValueError, match="runs >= 1"):
        latency(model, SHAPE, runs=0)


def test_compare_keeps_latency_ms_importable():
    from ferlib.efficiency import latency_ms

    assert latency_ms(ferlib.create_model("cnn_small", width=8), SHAPE, runs=2, warmup=0) > 0


@pytest.mark.parametrize("kind", ["static", "video"])
def test_profile_model_is_generic_over_kinds(kind):
    names = ferlib.list_models(kind=kind)
    if not names:
        pytest.skip(f"no {kind} model registered")
    name = "cnn_small" if kind == "static" else names[0]
    record = profile_model(
        name,
        image_size=32,
        frames=4,
        runs=2,
        warmup=1,
        batch_sizes=(4,),
        throughput_runs=1,
        train_samples=8,
        train_batch_size=4,
        train_steps=1,
    )
    assert record["kind"] == kind and record["name"] == name
    assert len(record["input_shape"]) == (3 if kind == "static" else 4)
    assert record["parameters"] > 0 and record["flops"] > 0
    assert record["latency_median_ms"] > 0 and record["throughput_4"] > 0 and record["train_time_per_epoch_s"] > 0


VIDEO_SHAPE = (4, 1, 20, 20)  # 20 is no multiple of the lstm/gru pooling grid (12): the general case


def _small_video_model(name: str):
    options = {"encoder_kwargs": {"width": 8}} if name.startswith("cnn_") or name == "frame_cnn" else {}
    if name in ("lstm", "gru"):
        options = {"hidden_size": 16}
    return ferlib.create_model(name, **options).eval()


@pytest.fixture(scope="module")
def synth_clips():
    return SynthFER("val", size=6, task="video-basic", frames=VIDEO_SHAPE[0], image_size=VIDEO_SHAPE[-1], seed=2)


@pytest.mark.parametrize("name", ferlib.list_models(kind="video"))
def test_every_video_model_exports_with_parity(tmp_path, name, synth_clips):
    import onnx

    torch.manual_seed(0)
    model = _small_video_model(name)
    path = export_onnx(model, tmp_path / f"{name}.onnx", VIDEO_SHAPE)
    # The fast TorchScript exporter suffices: full-length clips take no packed-sequence path.
    exporter = {p.key: p.value for p in onnx.load(str(path)).metadata_props}["ferlib_exporter"]
    assert exporter == "torchscript"
    random_clips = torch.rand(5, *VIDEO_SHAPE, generator=torch.Generator().manual_seed(1))
    assert onnx_parity(model, path, random_clips) <= 1e-4
    assert onnx_parity(model, path, synth_clips) <= 1e-4
    assert OnnxModel(path).input_shape == VIDEO_SHAPE
    # Export left the eager model as it was: padding still changes nothing.
    clip = random_clips[0, :2]
    padded = torch.cat([clip, torch.zeros_like(clip)])[None]
    with torch.no_grad():
        torch.testing.assert_close(model(padded, lengths=torch.tensor([2])), model(clip[None]), atol=1e-5, rtol=1e-4)


def _with_batch_statistics(model):
    """Random running statistics, so that folding batch norm has something to fold."""
    torch.manual_seed(1)
    with torch.no_grad():
        for module in model.modules():
            if isinstance(module, torch.nn.modules.batchnorm._BatchNorm):
                module.running_mean.uniform_(-0.5, 0.5)
                module.running_var.uniform_(0.5, 2.0)
                module.weight.uniform_(0.5, 1.5)
                module.bias.uniform_(-0.2, 0.2)
    return model.eval()


def test_optimize_for_inference_folds_batch_norm_and_keeps_predictions(synth):
    from ferlib.deploy.optimize import optimize_for_inference

    model = _with_batch_statistics(ferlib.create_model("cnn_small", width=8))
    before = {k: v.clone() for k, v in model.state_dict().items()}
    fast = optimize_for_inference(model)
    # A copy: the model keeps its batch norms and weights (export and training use it).
    assert all(torch.equal(before[k], v) for k, v in model.state_dict().items())
    assert any(isinstance(m, torch.nn.BatchNorm2d) for m in model.modules())
    assert not any(isinstance(m, torch.nn.BatchNorm2d) for m in fast.modules())
    convs = [m for m in fast.modules() if isinstance(m, torch.nn.Conv2d)]
    assert convs and all(c.weight.is_contiguous(memory_format=torch.channels_last) for c in convs)
    assert type(fast) is type(model) and fast.ferlib_name == "cnn_small" and not fast.training
    images = torch.stack([synth[i][0] for i in range(len(synth))])
    with torch.inference_mode():
        for x in (images, images[:1], torch.rand(5, 1, 64, 64)):  # any batch and image size
            expected, got = model(x), fast(x)
            assert float((expected - got).abs().max()) <= 1e-4
            assert torch.equal(expected.argmax(1), got.argmax(1))
    with pytest.raises(ValueError, match=r"\[B, C, H, W\]"):
        fast(torch.zeros(2, 3, 48, 48))  # the input check is still there


def test_optimize_for_inference_jit_and_its_check():
    from ferlib.deploy.optimize import TracedModel, fold_batch_norm, optimize_for_inference

    model = _with_batch_statistics(ferlib.create_model("cnn_small", width=8))
    traced = optimize_for_inference(model, torch.rand(4, 1, 48, 48), method="jit")
    assert isinstance(traced, TracedModel) and traced.ferlib_name == "cnn_small"
    x = torch.rand(9, 1, 48, 48)
    with torch.inference_mode():
        assert float((traced(x) - model(x)).abs().max()) <= 1e-4
    assert latency(traced, SHAPE, runs=2, warmup=1)["median_ms"] > 0  # the timing helpers take it
    # vit_tiny's traced class token keeps the traced batch size: the check refuses it.
    with pytest.raises(ValueError, match="fails on a batch"):
        optimize_for_inference(ferlib.create_model("vit_tiny"), torch.rand(2, 1, 48, 48), method="jit")
    with pytest.raises(ValueError, match="unknown method"):
        optimize_for_inference(model, method="compile")
    # Pairs outside an nn.Sequential are not folded: the ResNet stem keeps its batch norm.
    resnet = _with_batch_statistics(ferlib.create_model("resnet18_fer"))
    folded = fold_batch_norm(resnet)
    assert folded == 3 and isinstance(resnet.bn1, torch.nn.BatchNorm2d)  # the three downsample pairs


@pytest.mark.parametrize("name", ["r3d_small", "cnn_gru"])
def test_optimize_for_inference_on_video_models(name):
    from ferlib.deploy.optimize import optimize_for_inference

    options = {"encoder_kwargs": {"width": 8}} if name.startswith("cnn_") else {}
    model = _with_batch_statistics(ferlib.create_model(name, **options))
    fast = optimize_for_inference(model)
    assert not any(isinstance(m, torch.nn.modules.batchnorm._BatchNorm) for m in fast.modules())
    clips, lengths = torch.rand(3, 5, 1, 32, 32), torch.tensor([5, 2, 4])
    with torch.inference_mode():
        assert float((fast(clips, lengths=lengths) - model(clips, lengths=lengths)).abs().max()) <= 1e-4
