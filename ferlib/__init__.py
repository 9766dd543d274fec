"""ferlib: the library behind FER Book, deep learning for facial expression recognition.

The public API: ``EMOTIONS``, ``load_dataset``, ``create_model``, ``list_models``, ``fit``,
``evaluate``, ``load_checkpoint`` and friends. See the README and the book for a tour, and
ARCHITECTURE.md for how the package is laid out.

The names are imported on first use (PEP 562), so ``import ferlib`` loads neither PyTorch's
training code nor OpenCV nor the real-data loaders until they are needed.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING

from ferlib._version import __version__

# public name -> the module that defines it
_API = {
    "EMOTIONS": "ferlib.data.labels",
    "NUM_CLASSES": "ferlib.data.labels",
    "collate_samples": "ferlib.data.loader",
    "list_datasets": "ferlib.data.registry",
    "load_dataset": "ferlib.data.registry",
    "load_split": "ferlib.data.real",
    "load_splits": "ferlib.data.real",
    "CheckpointError": "ferlib.errors",
    "ConfigError": "ferlib.errors",
    "DataError": "ferlib.errors",
    "FerlibError": "ferlib.errors",
    "create_model": "ferlib.models.registry",
    "list_models": "ferlib.models.registry",
    "load_checkpoint": "ferlib.models.checkpoint",
    "read_checkpoint": "ferlib.models.checkpoint",
    "save_checkpoint": "ferlib.models.checkpoint",
    "EvaluationResult": "ferlib.engine.evaluate",
    "evaluate": "ferlib.engine.evaluate",
    "predict_proba": "ferlib.engine.evaluate",
    "History": "ferlib.engine.train",
    "fit": "ferlib.engine.train",
    "get_profile": "ferlib.config",
    "environment_info": "ferlib.runtime",
    "resolve_device": "ferlib.runtime",
    "seed_everything": "ferlib.runtime",
}

__all__ = sorted(_API)


# subpackages and modules reachable as attributes (``ferlib.data``, ``ferlib.fairness``, ...), imported on first use
_SUBMODULES = (
    "book", "cli", "config", "data", "deploy", "efficiency", "engine", "errors", "experiments", "explain",
    "fairness", "models", "robustness", "runtime", "sequences", "stats", "viz",
)  # fmt: skip


def __getattr__(name: str):
    if name in _SUBMODULES:
        return importlib.import_module(f"ferlib.{name}")  # the import binds it in this module
    module = _API.get(name)
    if module is None:
        raise AttributeError(f"module 'ferlib' has no attribute {name!r}")
    value = getattr(importlib.import_module(module), name)
    globals()[name] = value  # later look-ups skip this function
    return value


def __dir__() -> list[str]:
    return sorted({*globals(), *_API, *_SUBMODULES})


if TYPE_CHECKING:  # for type checkers and IDEs: the same names, imported eagerly
    from ferlib.config import get_profile
    from ferlib.data.labels import EMOTIONS, NUM_CLASSES
    from ferlib.data.loader import collate_samples
    from ferlib.data.real import load_split, load_splits
    from ferlib.data.registry import list_datasets, load_dataset
    from ferlib.engine.evaluate import EvaluationResult, evaluate, predict_proba
    from ferlib.engine.train import History, fit
    from ferlib.errors import CheckpointError, ConfigError, DataError, FerlibError
    from ferlib.models.checkpoint import load_checkpoint, read_checkpoint, save_checkpoint
    from ferlib.models.registry import create_model, list_models
    from ferlib.runtime import environment_info, resolve_device, seed_everything
