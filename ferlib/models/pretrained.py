"""Transfer learning from local weight files: load, adapt, freeze. Nothing is downloaded.

Two kinds of file are understood, both read with ``torch.load(..., weights_only=True)``:

- a **ferlib checkpoint**: a dict with ``"model_name"``, ``"model_config"`` and
  ``"state_dict"`` (other keys, such as an optimiser state, are ignored);
- a **plain state dict** (parameter name -> tensor), such as torchvision's ImageNet
  ResNet-18 (``resnet18-f37072fd.pth``), which :class:`~ferlib.models.cnn.ResNet18FER`
  loads by name because it keeps torchvision's module names.

Every model names its classifier with ``head_name`` (``"head"`` or ``"fc"``) and may name its
first conv with ``stem_name``. Loading then follows these rules:

- head tensors whose shape differs (another number of classes) are skipped, and the head
  keeps its fresh initialisation;
- a stem conv with another number of input channels is adapted (RGB -> grey sums the
  channels, so a grey image replicated to RGB gives the same response; other counts repeat
  the mean), and one with another kernel size (ImageNet's 7x7 vs the 3x3 small-input stem) is
  skipped;
- any other mismatch (a missing, unexpected or differently shaped backbone tensor) raises a
  :class:`~ferlib.errors.CheckpointError` when ``strict_backbone`` is true, and is skipped
  otherwise.

:func:`freeze_backbone` then turns a fine-tuning setup into a linear probe.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path

import torch
from torch import nn

from ferlib.errors import CheckpointError, ConfigError

FREEZE_MODES = ("none", "backbone")


@dataclass
class LoadReport:
    """What :func:`load_pretrained` did, tensor by tensor."""

    source: str
    loaded: list[str] = field(default_factory=list)
    adapted: list[str] = field(default_factory=list)
    skipped: dict[str, str] = field(default_factory=dict)  # name -> reason
    missing: list[str] = field(default_factory=list)  # in the model, not in the file

    def __str__(self) -> str:
        return (
            f"{self.source}: {len(self.loaded)} tensors loaded, {len(self.adapted)} adapted, "
            f"{len(self.skipped)} skipped, {len(self.missing)} left at initialisation"
        )


def read_weights(path: str | os.PathLike) -> tuple[dict[str, torch.Tensor], str | None]:
    """The state dict in ``path`` and the model name if the file is a ferlib checkpoint.

    Raises ``FileNotFoundError`` for a missing file and :class:`CheckpointError` (a
    ``ValueError``) for a file that is neither a ferlib checkpoint nor a state dict.
    """
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"pretrained weights file not found: {path}")
    try:
        content = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as error:  # torch raises several types for non-PyTorch or unsafe files
        raise CheckpointError(
            f"{path} is not a PyTorch weights file readable with weights_only=True: {error}"
        ) from None
    if isinstance(content, dict) and "state_dict" in content:
        state_dict, model_name = content["state_dict"], content.get("model_name")
    else:
        state_dict, model_name = content, None
    if (
        not isinstance(state_dict, dict)
        or not state_dict
        or not all(
            isinstance(key, str) and isinstance(value, torch.Tensor) for key, value in state_dict.items()
        )
    ):
        raise CheckpointError(
            f"{path} is neither a ferlib checkpoint (a dict with 'model_name', 'model_config', "
            f"'state_dict') nor a state dict of named tensors"
        )
    # Checkpoints saved from DistributedDataParallel or torch.compile prefix every name.
    for prefix in ("module.", "_orig_mod."):
        if all(key.startswith(prefix) for key in state_dict):
            state_dict = {key[len(prefix) :]: value for key, value in state_dict.items()}
    return state_dict, model_name


def _belongs_to(name: str, module_name: str | None) -> bool:
    return bool(module_name) and (name == module_name or name.startswith(module_name + "."))


def _adapt_input_channels(weight: torch.Tensor, in_channels: int) -> torch.Tensor:
    """Adapt a conv weight ``[O, C, k, k]`` to ``in_channels`` input channels."""
    if in_channels == 1:
        return weight.sum(dim=1, keepdim=True)
    mean = weight.mean(dim=1, keepdim=True)
    return mean.repeat(1, in_channels, 1, 1) * (weight.shape[1] / in_channels)


def load_pretrained(model: nn.Module, path: str | os.PathLike, strict_backbone: bool = True) -> LoadReport:
    """Load the weights in ``path`` into ``model`` following the rules in the module docstring.

    Parameters
    ----------
    model : a ferlib model (its ``head_name`` and optional ``stem_name`` are used).
    path : a local ferlib checkpoint or state dict file.
    strict_backbone : raise if a backbone tensor is missing, unexpected or of another shape.

    Returns
    -------
    A :class:`LoadReport`; it is also stored as ``model.ferlib_pretrained_report``.
    """
    state_dict, model_name = read_weights(path)
    own_name = getattr(model, "ferlib_name", None)
    if model_name is not None and own_name is not None and model_name != own_name:
        raise CheckpointError(
            f"{path} holds a {model_name!r} checkpoint, which does not fit a {own_name!r} model"
        )
    head = getattr(model, "head_name", None)
    stem = getattr(model, "stem_name", None)
    target = model.state_dict()
    report = LoadReport(source=str(path))
    problems = []
    to_load = {}
    for name, value in state_dict.items():
        if name not in target:
            if _belongs_to(name, head):
                report.skipped[name] = "head tensor the model does not have"
            else:
                report.skipped[name] = "not in the model"
                problems.append(f"unexpected tensor {name}")
            continue
        expected = target[name].shape
        if value.shape == expected:
            to_load[name] = value
            report.loaded.append(name)
        elif _belongs_to(name, head):
            report.skipped[name] = f"head shape {list(value.shape)} != {list(expected)} (other classes)"
        elif _belongs_to(name, stem) and value.dim() == 4:
            if value.shape[2:] != expected[2:]:
                report.skipped[name] = f"stem kernel {list(value.shape[2:])} != {list(expected[2:])}"
            elif value.shape[0] == expected[0]:
                to_load[name] = _adapt_input_channels(value, expected[1])
                report.adapted.append(name)
            else:
                report.skipped[name] = f"stem shape {list(value.shape)} != {list(expected)}"
        else:
            report.skipped[name] = f"shape {list(value.shape)} != {list(expected)}"
            problems.append(f"{name} has shape {list(value.shape)}, the model expects {list(expected)}")
    for name in target:
        if name not in state_dict:
            report.missing.append(name)
            if not (_belongs_to(name, head) or _belongs_to(name, stem)):
                problems.append(f"missing tensor {name}")
    if strict_backbone and problems:
        shown = "; ".join(problems[:5]) + (f"; ... ({len(problems)} in all)" if len(problems) > 5 else "")
        raise CheckpointError(
            f"{path} does not fit {own_name or type(model).__name__}'s backbone: {shown} "
            "(pass strict_backbone=False to skip what does not fit)"
        )
    model.load_state_dict(to_load, strict=False)
    model.ferlib_pretrained_report = report
    return report


def freeze_backbone(model: nn.Module) -> nn.Module:
    """Leave only the head (``model.head_name``) trainable: a linear probe.

    Batch-norm layers in the frozen backbone still normalise with batch statistics and update
    their running averages in ``train()`` mode; call ``.eval()`` on them for a strict probe.
    """
    head = getattr(model, "head_name", None)
    if not head:
        raise ValueError(
            f"{type(model).__name__} names no head (head_name), so its backbone cannot be frozen"
        )
    model.get_submodule(head)  # fails with a clear AttributeError if the name is wrong
    for name, parameter in model.named_parameters():
        parameter.requires_grad_(_belongs_to(name, head))
    return model


def apply_freeze(model: nn.Module, freeze: str) -> nn.Module:
    """``freeze="none"`` trains everything (fine-tuning); ``"backbone"`` only the head."""
    if freeze not in FREEZE_MODES:
        raise ConfigError.unknown("freeze mode", freeze, FREEZE_MODES)
    return freeze_backbone(model) if freeze == "backbone" else model
