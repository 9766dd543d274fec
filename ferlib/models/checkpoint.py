"""Checkpoints that rebuild their model: ``save_checkpoint``, ``read_checkpoint``, ``load_checkpoint``.

A checkpoint is a plain dict of tensors and Python literals, loaded with
``torch.load(..., weights_only=True)`` so that opening a file never runs code from it. It
carries the registry name and keyword arguments of the model (``create_model`` records them).
"""

from __future__ import annotations

import os
import pickle
import zipfile
from pathlib import Path

import torch
from torch import nn

from ferlib._version import __version__
from ferlib.errors import CheckpointError

FORMAT = "ferlib-checkpoint"
FORMAT_VERSION = 1


def save_checkpoint(path: str | Path, model: nn.Module, **extra) -> Path:
    """Write ``model`` (and any training state in ``extra``) to ``path`` atomically."""
    path = Path(path)
    state = {
        "format": FORMAT,
        "format_version": FORMAT_VERSION,
        "ferlib_version": __version__,
        "model_name": getattr(model, "ferlib_name", None),
        "model_config": dict(getattr(model, "ferlib_config", {}) or {}),
        "state_dict": model.state_dict(),
        **{key: value for key, value in extra.items() if value is not None},
    }
    path.parent.mkdir(parents=True, exist_ok=True)
    partial = path.with_name(path.name + ".partial")
    torch.save(state, partial)
    os.replace(partial, path)  # a run killed while writing never leaves a truncated checkpoint
    return path


def read_checkpoint(path: str | Path, map_location: str | torch.device = "cpu") -> dict:
    """The checkpoint's dict; a missing, corrupt or foreign file raises :class:`CheckpointError`."""
    path = Path(path)
    if not path.is_file():
        raise CheckpointError(f"checkpoint not found: {path}")
    try:
        state = torch.load(path, map_location=map_location, weights_only=True)
    except (pickle.UnpicklingError, zipfile.BadZipFile, RuntimeError, EOFError, ValueError) as error:
        raise CheckpointError(
            f"{path} is not a readable checkpoint: corrupt, truncated or not written by torch.save"
            f" ({type(error).__name__})"
        ) from None
    if not isinstance(state, dict) or state.get("format") != FORMAT:
        raise CheckpointError(
            f"{path} is not a ferlib checkpoint (no '{FORMAT}' marker); "
            "it may be a bare state_dict: build the model with create_model and call load_state_dict"
        )
    return state


def load_checkpoint(path: str | Path, device: str | torch.device = "cpu") -> nn.Module:
    """Rebuild the model saved in ``path`` and load its weights; returns it in eval mode.

    Examples
    --------
    >>> import tempfile, pathlib
    >>> from ferlib import create_model, load_checkpoint, save_checkpoint
    >>> path = pathlib.Path(tempfile.mkdtemp()) / "model.ckpt"
    >>> _ = save_checkpoint(path, create_model("cnn_small"))
    >>> load_checkpoint(path).ferlib_name
    'cnn_small'
    """
    from ferlib.models.registry import create_model, current_option_names

    state = read_checkpoint(path)
    name = state.get("model_name")
    if not name:
        raise CheckpointError(f"{path} does not name its model (it was saved from a model not built by create_model)")
    try:
        model = create_model(name, **current_option_names(name, state.get("model_config", {}), warn=False))
    except (ValueError, TypeError) as error:  # TypeError: an option the model no longer takes
        raise CheckpointError(f"{path}: cannot rebuild model {name!r}: {error}") from error
    try:
        model.load_state_dict(state["state_dict"])
    except RuntimeError as error:
        raise CheckpointError(f"{path}: weights do not fit model {name!r}: {str(error).splitlines()[0]}") from error
    return model.to(device).eval()
