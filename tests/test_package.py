"""The package's shape: a light ``import ferlib``, the lazy public API, and one error for unknown names."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest

import ferlib
from ferlib.errors import ConfigError

HEAVY = ("cv2", "onnx", "onnxruntime", "ferlib.data.real", "ferlib.data.synth", "ferlib.engine.train")


def _modules_after(code: str) -> set[str]:
    script = f"import json, sys\n{code}\nprint(json.dumps(sorted(sys.modules)))"
    out = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, check=True).stdout
    return set(json.loads(out.splitlines()[-1]))


def test_import_ferlib_loads_no_heavy_module():
    loaded = _modules_after("import ferlib")
    assert not [name for name in HEAVY if name in loaded]
    assert "torch" not in loaded  # the public API is imported on first use


def test_public_names_load_on_first_use_without_the_real_loaders():
    loaded = _modules_after("import ferlib\nferlib.create_model\nferlib.fit\nferlib.evaluate")
    assert {"ferlib.engine.train", "ferlib.engine.evaluate", "ferlib.models.registry"} <= loaded
    assert not {"cv2", "onnx", "ferlib.data.real"} & loaded


def test_public_api_is_unchanged():
    expected = {
        "EMOTIONS", "NUM_CLASSES", "CheckpointError", "ConfigError", "DataError", "EvaluationResult",
        "FerlibError", "History", "collate_samples", "create_model", "environment_info", "evaluate", "fit",
        "get_profile", "list_datasets", "list_models", "load_checkpoint", "load_dataset", "load_split",
        "load_splits", "predict_proba", "read_checkpoint", "resolve_device", "save_checkpoint", "seed_everything",
    }  # fmt: skip
    assert set(ferlib.__all__) == expected
    for name in expected:
        assert getattr(ferlib, name) is not None
    assert callable(ferlib.fit) and callable(ferlib.evaluate)  # the functions, not their modules
    with pytest.raises(AttributeError, match="no attribute 'fitt'"):
        ferlib.fitt  # noqa: B018
    assert ferlib.__version__[0].isdigit()


@pytest.mark.parametrize(
    ("call", "kind", "closest"),
    [
        (lambda: ferlib.create_model("cnn_smal"), "model", "cnn_small"),
        (lambda: ferlib.load_dataset("fer213"), "dataset", "fer2013"),
        (lambda: ferlib.get_profile("quik"), "profile", "quick"),
        (lambda: ferlib.list_models(kind="vidoe"), "model kind", "video"),
        (lambda: _corrupt("gausian_noise"), "corruption", "gaussian_noise"),
        (lambda: _augmentation_policy("afine"), "augmentation policy", "affine"),
        (lambda: _train_augmentation("flip_shfit"), "augmentation", "flip_shift"),
        (lambda: ferlib.load_dataset("synthfer", split="tset", size=4), "split", "test"),
        (lambda: ferlib.load_split("fer2013", "vall", "/nonexistent"), "split", "val"),
    ],
)
def test_unknown_names_raise_config_error_with_the_closest_name(call, kind, closest):
    with pytest.raises(ConfigError, match=rf"unknown {kind} '.*': expected one of .*; did you mean '{closest}'\?"):
        call()


def _corrupt(name):
    import torch

    from ferlib.data.corruptions import corrupt

    return corrupt(torch.zeros(1, 1, 8, 8), name, 1)


def _augmentation_policy(name):
    from ferlib.data.augment import augmentation_policy

    return augmentation_policy(name)


def _train_augmentation(name):
    from ferlib.data.augment import train_augmentation

    return train_augmentation(name)


def test_config_error_without_a_close_name_lists_the_valid_ones():
    error = ConfigError.unknown("profile", "zzzz", ["smoke", "quick", "full"])
    assert str(error) == "unknown profile 'zzzz': expected one of smoke, quick, full"
    assert isinstance(error, ValueError)  # callers that caught ValueError still do
