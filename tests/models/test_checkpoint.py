import pytest
import torch

import ferlib
from ferlib import CheckpointError


def test_round_trip(tmp_path):
    model = ferlib.create_model("cnn_small", num_classes=5, width=8)
    path = ferlib.save_checkpoint(tmp_path / "m.ckpt", model)
    rebuilt = ferlib.load_checkpoint(path)
    assert rebuilt.ferlib_config["num_classes"] == 5
    for name, tensor in model.state_dict().items():
        assert torch.equal(tensor, rebuilt.state_dict()[name])
    assert not list(tmp_path.glob("*.partial"))


def test_missing_corrupt_and_foreign_files(tmp_path):
    with pytest.raises(CheckpointError, match="checkpoint not found"):
        ferlib.load_checkpoint(tmp_path / "nope.ckpt")
    corrupt = tmp_path / "corrupt.ckpt"
    corrupt.write_bytes(b"not a checkpoint at all")
    with pytest.raises(CheckpointError, match="corrupt, truncated"):
        ferlib.load_checkpoint(corrupt)
    truncated = tmp_path / "truncated.ckpt"
    good = ferlib.save_checkpoint(tmp_path / "good.ckpt", ferlib.create_model("cnn_small", width=8))
    truncated.write_bytes(good.read_bytes()[:500])
    with pytest.raises(CheckpointError, match="corrupt, truncated"):
        ferlib.load_checkpoint(truncated)
    foreign = tmp_path / "foreign.ckpt"
    torch.save(ferlib.create_model("cnn_small").state_dict(), foreign)
    with pytest.raises(CheckpointError, match="not a ferlib checkpoint"):
        ferlib.load_checkpoint(foreign)


def test_checkpoint_with_code_is_refused(tmp_path):
    class Payload:
        def __reduce__(self):
            return (print, ("this must never run",))

    path = tmp_path / "evil.ckpt"
    torch.save({"format": "ferlib-checkpoint", "payload": Payload()}, path)
    with pytest.raises(CheckpointError, match="corrupt, truncated"):
        ferlib.read_checkpoint(path)


def test_weights_that_do_not_fit(tmp_path):
    path = ferlib.save_checkpoint(tmp_path / "m.ckpt", ferlib.create_model("cnn_small", width=8))
    state = torch.load(path, weights_only=True)
    state["model_config"]["width"] = 16
    torch.save(state, path)
    with pytest.raises(CheckpointError, match="weights do not fit model 'cnn_small'"):
        ferlib.load_checkpoint(path)
