import pytest
import torch
from torch.utils.data import DataLoader, TensorDataset

import ferlib
from ferlib.engine.train import class_weights_for
from tests.conftest import BlobFaces


def _model(seed: int = 0, num_classes: int = 4):
    ferlib.seed_everything(seed)
    return ferlib.create_model("cnn_small", num_classes=num_classes, in_channels=1, width=8)


def _fit(model, data, **kw):
    defaults = {"epochs": 2, "batch_size": 16, "lr": 3e-3, "device": "cpu", "progress": False, "seed": 0}
    return ferlib.fit(model, data, **{**defaults, **kw})


def test_fit_learns_and_records_history(blobs):
    model = _model()
    history = _fit(model, blobs, val_data=BlobFaces(n=48, seed=1), epochs=6)
    frame = history.to_frame()
    assert list(frame["epoch"]) == [1, 2, 3, 4, 5, 6]
    for column in ("train_loss", "train_accuracy", "val_loss", "val_accuracy", "epoch_time_s", "samples_per_s"):
        assert column in frame
    assert frame["train_loss"].iloc[-1] < frame["train_loss"].iloc[0]
    assert history.best_metric > 0.5  # chance is 0.25
    assert history.best_epoch is not None


def test_same_seed_gives_identical_numbers(blobs):
    first = _fit(_model(), blobs, val_data=blobs, epochs=2)
    second = _fit(_model(), blobs, val_data=blobs, epochs=2)
    keys = ("train_loss", "train_accuracy", "val_loss", "val_accuracy")
    assert [[r[k] for k in keys] for r in first.epochs] == [[r[k] for k in keys] for r in second.epochs]
    different = _fit(_model(), blobs, val_data=blobs, epochs=2, seed=1)
    assert [r["train_loss"] for r in different.epochs] != [r["train_loss"] for r in first.epochs]


class _Stop(Exception):
    pass


def _stop_after(epoch: int):
    def callback(record):
        if record["epoch"] == epoch:
            raise _Stop

    return callback


def test_resume_after_interruption_matches_uninterrupted_run(blobs, tmp_path):
    settings = {"epochs": 4, "val_data": blobs, "restore_best": False, "schedule": "onecycle"}
    full = _model()
    _fit(full, blobs, checkpoint_dir=tmp_path / "full", **settings)

    interrupted = _model()
    with pytest.raises(_Stop):
        _fit(interrupted, blobs, checkpoint_dir=tmp_path / "cut", callbacks=[_stop_after(2)], **settings)
    resumed = _model(seed=123)  # different initial weights: everything must come from the checkpoint
    history = _fit(resumed, blobs, checkpoint_dir=tmp_path / "cut", resume=True, **settings)

    assert [r["epoch"] for r in history.epochs] == [1, 2, 3, 4]
    for name, tensor in full.state_dict().items():
        assert torch.equal(tensor, resumed.state_dict()[name]), name


def test_best_checkpoint_is_restored_and_loadable(blobs, tmp_path):
    model = _model()
    history = _fit(model, blobs, val_data=blobs, epochs=3, checkpoint_dir=tmp_path)
    assert (tmp_path / "best.ckpt").exists() and (tmp_path / "last.ckpt").exists()
    rebuilt = ferlib.load_checkpoint(tmp_path / "best.ckpt")
    assert rebuilt.ferlib_name == "cnn_small"
    x = blobs.images[:8]
    model.eval()
    assert torch.allclose(rebuilt(x), model(x), atol=1e-6)
    assert history.best_epoch in (1, 2, 3)


def test_early_stopping_stops(blobs):
    history = _fit(_model(), blobs, val_data=blobs, epochs=20, lr=0.0, early_stopping=2, schedule="constant")
    assert history.stopped_early
    assert len(history.epochs) == 3  # the first epoch sets the best; two stale epochs stop


def test_options_sgd_smoothing_weights_clipping(blobs):
    history = _fit(
        _model(),
        blobs,
        optimizer="sgd",
        lr=0.05,
        label_smoothing=0.1,
        class_weights="balanced",
        grad_clip=1.0,
        schedule="constant",
    )
    assert len(history.epochs) == 2


def test_accepts_plain_pairs_and_loaders(blobs):
    pairs = TensorDataset(blobs.images, blobs.labels)
    assert len(_fit(_model(), pairs, epochs=1).epochs) == 1
    loader = DataLoader(pairs, batch_size=32, shuffle=True)
    assert len(_fit(_model(), loader, epochs=1).epochs) == 1


def test_balanced_class_weights():
    data = TensorDataset(torch.zeros(4, 1, 8, 8), torch.tensor([0, 0, 0, 1]))
    weights = class_weights_for(data, 3)
    assert torch.allclose(weights, torch.tensor([4 / 6, 4 / 2, 0.0]))


def test_bad_arguments_name_the_problem(blobs):
    with pytest.raises(ValueError, match="unknown optimizer 'adam'"):
        _fit(_model(), blobs, optimizer="adam")
    with pytest.raises(ValueError, match="unknown schedule"):
        _fit(_model(), blobs, schedule="linear")
    with pytest.raises(ValueError, match="epochs"):
        _fit(_model(), blobs, epochs=0)


def test_wrong_input_shape_is_one_clear_line():
    model = _model()
    with pytest.raises(ValueError, match=r"cnn_small expects input of shape \[B, C, H, W\].*got \[2, 16, 16\]"):
        model(torch.zeros(2, 16, 16))
    with pytest.raises(ValueError, match="C=1"):
        model(torch.zeros(2, 3, 16, 16))


class _LandmarkBlobs(BlobFaces):
    """BlobFaces whose meta also holds 5 landmarks in pixels (the texture's centre, repeated)."""

    def __getitem__(self, index: int):
        image, label, meta = super().__getitem__(index)
        return image, label, {**meta, "landmarks": torch.full((5, 2), 8.0)}


def test_multitask_model_trains_its_landmark_head():
    data = _LandmarkBlobs()
    ferlib.seed_everything(0)
    model = ferlib.create_model("cnn_multitask", num_classes=4, num_landmarks=5)
    before = model(data.images[:4], return_aux=True)[1]["landmarks"].detach()
    _fit(model, data, epochs=3, lr=3e-3)
    model.eval()
    after = model(data.images[:4], return_aux=True)[1]["landmarks"].detach()
    # Targets are the image centre, 8 px of 16, i.e. 0.5 in normalised coordinates.
    assert (after - 0.5).abs().mean() < (before - 0.5).abs().mean()


@pytest.mark.filterwarnings("ignore:mixed_precision=.bf16. on a CPU without:RuntimeWarning")
def test_bf16_and_channels_last_on_the_cpu_only_when_asked(blobs):
    from ferlib.engine.backend import Backend

    cpu = torch.device("cpu")
    assert Backend(cpu, "auto").amp_dtype is None and Backend(cpu, "no").amp_dtype is None
    assert Backend(cpu, "bf16").amp_dtype == torch.bfloat16
    seen = []
    model = ferlib.create_model("cnn_small", num_classes=4, in_channels=1, width=8)
    model.register_forward_hook(lambda module, inputs, output: seen.append(output.dtype))
    history = ferlib.fit(model, blobs, epochs=1, batch_size=32, mixed_precision="bf16", channels_last=True,
                         progress=False)
    assert any(p.dim() == 4 and p.is_contiguous(memory_format=torch.channels_last) and not p.is_contiguous()
               for p in model.parameters())
    assert torch.bfloat16 in seen and history.last["train_loss"] == history.last["train_loss"]  # ran, no NaN
    assert next(model.parameters()).dtype == torch.float32  # weights stay float32


def test_bf16_on_a_cpu_without_bf16_instructions_warns(monkeypatch):
    import warnings

    import ferlib.engine.backend as backend_module

    cpu = torch.device("cpu")
    monkeypatch.setattr(backend_module, "cpu_has_native_bf16", lambda: False)
    with pytest.warns(RuntimeWarning, match="AVX512-BF16"):
        assert backend_module.Backend(cpu, "bf16").amp_dtype == torch.bfloat16
    for native in (True, None):  # has them, or cannot tell: no warning
        monkeypatch.setattr(backend_module, "cpu_has_native_bf16", lambda native=native: native)
        with warnings.catch_warnings():
            warnings.simplefilter("error")
            backend_module.Backend(cpu, "bf16")


def test_cpu_bf16_detection_reads_the_cpu_flags(tmp_path):
    from ferlib.engine.backend import cpu_has_native_bf16

    info = tmp_path / "cpuinfo"
    for flags, expected in (("fpu avx512f avx512_bf16", True), ("fpu avx512f amx_bf16", True),
                            ("fpu avx512f avx512_vnni", False)):
        info.write_text(f"processor\t: 0\nflags\t\t: {flags}\n")
        assert cpu_has_native_bf16(info) is expected
    assert cpu_has_native_bf16(tmp_path / "missing") is None
