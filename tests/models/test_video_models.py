"""Video models (ferlib.models.video, ferlib.models.temporal): training, padding masks, checkpoints, costs."""

from __future__ import annotations

import inspect

import pytest
import torch
from torch.utils.data import Dataset

from ferlib import create_model, evaluate, fit, list_models, load_checkpoint, save_checkpoint
from ferlib.data.loader import collate_samples
from ferlib.efficiency import count_flops
from ferlib.models.base import forward_kwargs

VIDEO_MODELS = list_models(kind="video")
EXPECTED = {
    "frame_cnn",
    "lstm",
    "gru",
    "cnn_lstm",
    "cnn_gru",
    "cnn_bilstm",
    "cnn_lstm_attn",
    "cnn_transformer",
    "r3d_small",
}
# Small encoders keep the tests fast; the defaults are exercised in the padding and shape tests.
SMALL = {"encoder_kwargs": {"width": 8}}


def small_kwargs(name: str) -> dict:
    return SMALL if name.startswith("cnn_") or name == "frame_cnn" else {}


class Clips(Dataset):
    """Random clips ``[T_i, 1, 24, 24]`` whose length cycles through ``lengths``; 7 classes."""

    def __init__(self, n: int = 8, lengths=(4,), size: int = 24, seed: int = 0, with_meta: bool = True):
        generator = torch.Generator().manual_seed(seed)
        self.clips = [torch.rand(lengths[i % len(lengths)], 1, size, size, generator=generator) for i in range(n)]
        self.labels = [i % 7 for i in range(n)]
        self.with_meta = with_meta
        self.num_classes = 7

    def __len__(self) -> int:
        return len(self.clips)

    def __getitem__(self, index: int):
        if self.with_meta:
            return self.clips[index], self.labels[index], {"subject": index}
        return self.clips[index], self.labels[index]


def test_zoo_is_registered():
    assert EXPECTED <= set(VIDEO_MODELS)


@pytest.mark.parametrize("name", VIDEO_MODELS)
def test_fit_fixed_and_variable_length(name):
    torch.manual_seed(0)
    model = create_model(name, num_classes=7, in_channels=1, **small_kwargs(name))
    fixed = fit(model, Clips(8, (5,)), Clips(4, (5,), seed=1), epochs=1, batch_size=4, progress=False, device="cpu")
    variable = fit(
        model, Clips(8, (4, 6, 5)), Clips(4, (6, 4), seed=1), epochs=1, batch_size=4, progress=False, device="cpu"
    )
    for history in (fixed, variable):
        assert torch.isfinite(torch.tensor(history.last["train_loss"]))
        assert 0.0 <= history.last["val_accuracy"] <= 1.0


@pytest.mark.parametrize("name", VIDEO_MODELS)
def test_padding_does_not_change_logits(name):
    torch.manual_seed(0)
    model = create_model(name, num_classes=7, in_channels=1).eval()
    assert "lengths" in inspect.signature(model.forward).parameters
    clips = [torch.rand(t, 1, 32, 32) for t in (6, 3, 1)]
    batch, _, metas = collate_samples([(clip, 0, {}) for clip in clips])
    assert batch.shape == (3, 6, 1, 32, 32)
    with torch.no_grad():
        padded = model(batch, **forward_kwargs(model, batch, metas))
        for i, clip in enumerate(clips):
            torch.testing.assert_close(padded[i], model(clip[None])[0], atol=1e-5, rtol=1e-4)


def test_attention_weights_sum_to_one_and_skip_padding():
    model = create_model("cnn_lstm_attn", **SMALL).eval()
    x = torch.rand(3, 5, 1, 24, 24)
    lengths = torch.tensor([5, 2, 3])
    with torch.no_grad():
        logits, weights = model(x, lengths=lengths, return_attention=True)
    assert logits.shape == (3, 7) and weights.shape == (3, 5)
    torch.testing.assert_close(weights.sum(1), torch.ones(3))
    assert (weights[1, 2:] == 0).all() and (weights[2, 3:] == 0).all()
    assert (weights[0] > 0).all()
    with pytest.raises(ValueError, match="pool='attention'"):
        create_model("cnn_lstm", **SMALL)(x, return_attention=True)


def test_collate_pads_clips_and_records_lengths():
    clips = [torch.ones(t, 1, 4, 4) for t in (2, 4)]
    x, y, metas = collate_samples([(clips[0], 1), (clips[1], 2)])  # (x, y) samples: metas appear
    assert x.shape == (2, 4, 1, 4, 4) and y.tolist() == [1, 2]
    assert [m["num_frames"] for m in metas] == [2, 4]
    assert x[0, 2:].abs().sum() == 0 and x[0, :2].min() == 1
    # Equal lengths without meta stay (x, y); with meta, the copy carries num_frames.
    assert len(collate_samples([(clips[1], 0), (clips[1], 1)])) == 2
    meta = {"subject": 3}
    _, _, metas = collate_samples([(clips[0], 0, meta), (clips[0], 0, meta)])
    assert metas[0] == {"subject": 3, "num_frames": 2} and meta == {"subject": 3}
    with pytest.raises(ValueError, match="different shapes"):
        collate_samples([(torch.zeros(2, 1, 4, 4), 0), (torch.zeros(2, 1, 5, 4), 0)])
    # Static images: no meta is added and the model gets no extra arguments.
    x, _, metas = collate_samples([(torch.zeros(1, 4, 4), 0, {"a": 1})] * 2)
    assert metas == [{"a": 1}] * 2
    assert forward_kwargs(create_model("cnn_small"), x, metas) == {}


def test_wrong_inputs_raise_clear_errors():
    model = create_model("cnn_lstm", **SMALL)
    with pytest.raises(ValueError, match=r"\[B, T, C, H, W\]"):
        model(torch.zeros(2, 1, 24, 24))
    with pytest.raises(ValueError, match=r"\[B, T, C, H, W\]"):
        model(torch.zeros(2, 4, 3, 24, 24))  # wrong channel count
    with pytest.raises(ValueError, match=r"lengths must be in \[1, 4\]"):
        model(torch.zeros(2, 4, 1, 24, 24), lengths=torch.tensor([4, 5]))
    with pytest.raises(ValueError, match="lengths must have shape"):
        model(torch.zeros(2, 4, 1, 24, 24), lengths=torch.tensor([4]))
    with pytest.raises(ValueError, match="unknown encoder 'nope'.*cnn_small"):
        create_model("cnn_lstm", encoder="nope")
    with pytest.raises(ValueError, match="encoder_kwargs may not set num_classes"):
        create_model("cnn_gru", encoder_kwargs={"num_classes": 3})


def test_encoder_checkpoint_and_round_trip(tmp_path):
    torch.manual_seed(1)
    static = create_model("cnn_small", num_classes=7, width=8)
    with torch.no_grad():
        for parameter in static.parameters():
            parameter.add_(torch.randn_like(parameter))  # not the initialisation a fresh model gets
    static_path = save_checkpoint(tmp_path / "static.ckpt", static)

    # encoder_kwargs default to the checkpoint's own options (width=8 here).
    video = create_model("cnn_lstm", encoder_checkpoint=str(static_path))
    assert video.ferlib_config["encoder_kwargs"] == {"width": 8}
    expected = {k: v for k, v in static.state_dict().items() if not k.startswith("head.")}
    got = video.encoder.state_dict()
    assert set(got) == set(expected)
    for key, value in expected.items():
        torch.testing.assert_close(got[key], value)
    assert video.ferlib_config["encoder_checkpoint"] is None

    # frame_cnn keeps the static head: on a clip of one repeated image it is the static model.
    frames = create_model("frame_cnn", encoder_kwargs={"width": 8}, encoder_checkpoint=str(static_path)).eval()
    image = torch.rand(2, 1, 24, 24)
    with torch.no_grad():
        torch.testing.assert_close(frames(image[:, None].expand(-1, 3, -1, -1, -1)), static.eval()(image))

    video_path = save_checkpoint(tmp_path / "video.ckpt", video)
    static_path.unlink()  # a rebuild must not need the encoder's source file
    restored = load_checkpoint(video_path)
    x, lengths = torch.rand(2, 4, 1, 24, 24), torch.tensor([4, 2])
    with torch.no_grad():
        torch.testing.assert_close(restored(x, lengths=lengths), video.eval()(x, lengths=lengths))


def test_evaluate_on_variable_length_clips():
    torch.manual_seed(0)
    model = create_model("cnn_gru", **SMALL).eval()
    data = Clips(7, (3, 5, 4), with_meta=False)
    result = evaluate(model, data, device="cpu", n_bootstrap=0, batch_size=4)
    assert result.n == 7
    with torch.no_grad():
        one_by_one = torch.stack([torch.softmax(model(data[i][0][None]), 1)[0] for i in range(7)])
    torch.testing.assert_close(torch.as_tensor(result.probs), one_by_one, atol=1e-5, rtol=1e-4)
    assert [m["num_frames"] for m in result.meta] == [3, 5, 4, 3, 5, 4, 3]


@pytest.mark.parametrize("name", VIDEO_MODELS)
def test_count_flops_positive(name):
    model = create_model(name, **small_kwargs(name))
    flops = count_flops(model, (4, 1, 24, 24))
    assert flops > 0
    # Longer clips cost more: the counter sees the whole clip, recurrent kernels included.
    assert count_flops(model, (8, 1, 24, 24)) > flops


def test_landmark_features_on_synthfer():
    from ferlib import load_dataset

    data = load_dataset("synthfer", split="train", size=8, task="video-basic", frames=4, image_size=24, cache=False)
    model = create_model("gru", features="landmarks")
    history = fit(model, data, epochs=1, batch_size=4, progress=False, device="cpu")
    assert torch.isfinite(torch.tensor(history.last["train_loss"]))
    x, y, metas = collate_samples([data[0], data[1]])
    kwargs = forward_kwargs(model, x, metas)
    assert kwargs["landmarks"].shape == (2, 4, 27, 2)
    assert 0.0 <= float(kwargs["landmarks"].min()) and float(kwargs["landmarks"].max()) <= 1.0
    with pytest.raises(ValueError, match="needs landmarks"):
        model(x)


def test_compare_models_reads_channels_of_clips():
    from ferlib.experiments.compare import compare_models

    data = Clips(4, (4,))
    records, _ = compare_models(
        ["r3d_small"], data, data, data, fit_kwargs={"epochs": 1, "batch_size": 4}, device="cpu", latency_runs=1
    )
    assert records[0]["flops"] > 0 and records[0]["latency_ms"] > 0
