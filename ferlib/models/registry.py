"""One door to every model: ``create_model(name, **kw)`` and ``list_models(kind=...)``.

Each model file registers its variants with :func:`register_model`; a model never reads
global configuration. ``create_model`` records the name and keyword arguments on the model
(``model.ferlib_name``, ``model.ferlib_config``) so that a checkpoint can rebuild it.
"""

from __future__ import annotations

import fnmatch
import importlib
import inspect
import warnings
from collections.abc import Callable
from dataclasses import dataclass

from torch import nn

from ferlib._registry import lookup
from ferlib.errors import ConfigError, FerlibError

KINDS = ("static", "video")
# Modules whose import registers models; a missing module is tolerated (not yet written).
_FAMILIES = (
    "ferlib.models.cnn",
    "ferlib.models.rnn",
    "ferlib.models.video",
    "ferlib.models.temporal",
    "ferlib.models.transformer",
    "ferlib.models.ensemble",
)


@dataclass(frozen=True)
class ModelEntry:
    name: str
    kind: str
    builder: Callable[..., nn.Module]
    description: str


_MODELS: dict[str, ModelEntry] = {}
# Options renamed since ferlib 0.1.0: model name -> {old name: new name}. create_model still takes
# the old names (with a DeprecationWarning), so checkpoints and configs written before still build.
RENAMED_OPTIONS = {"vit_tiny": {"img_size": "image_size"}}


def register_model(name: str, kind: str, description: str = ""):
    """Decorator: register ``builder(num_classes=..., in_channels=..., **kw)`` as ``name``."""
    if kind not in KINDS:
        raise ConfigError.unknown("model kind", kind, KINDS)

    def decorate(builder: Callable[..., nn.Module]) -> Callable[..., nn.Module]:
        if name in _MODELS and _MODELS[name].builder is not builder:
            raise ValueError(f"model name {name!r} is already registered")
        doc = description or (builder.__doc__ or "").strip().splitlines()[0:1]
        text = doc if isinstance(doc, str) else (doc[0] if doc else "")
        _MODELS[name] = ModelEntry(name, kind, builder, text)
        return builder

    return decorate


def _import_families() -> None:
    for module in _FAMILIES:
        try:
            importlib.import_module(module)
        except ModuleNotFoundError as error:
            if error.name != module:
                raise


def list_models(pattern: str = "*", kind: str | None = None) -> list[str]:
    """Registered model names matching a glob ``pattern``, optionally of one ``kind``."""
    _import_families()
    if kind is not None and kind not in KINDS:
        raise ConfigError.unknown("model kind", kind, KINDS)
    return sorted(
        name
        for name, entry in _MODELS.items()
        if fnmatch.fnmatch(name, pattern) and (kind is None or entry.kind == kind)
    )


def model_entry(name: str) -> ModelEntry:
    """The registry entry of ``name``; an unknown name raises :class:`~ferlib.errors.ConfigError`."""
    _import_families()
    return lookup(dict(sorted(_MODELS.items())), name, "model")


def option_names(name: str) -> list[str] | None:
    """The keyword options model ``name`` takes besides ``num_classes`` and ``in_channels`` (``None``
    when its builder accepts any)."""
    return _option_names(model_entry(name).builder)


def _option_names(builder) -> list[str] | None:
    try:
        parameters = inspect.signature(builder).parameters.values()
    except (TypeError, ValueError):
        return None
    if any(p.kind is inspect.Parameter.VAR_KEYWORD for p in parameters):
        return None
    keyword = (inspect.Parameter.POSITIONAL_OR_KEYWORD, inspect.Parameter.KEYWORD_ONLY)
    return [p.name for p in parameters if p.kind in keyword and p.name not in ("num_classes", "in_channels")]


def check_option_names(name: str, options: dict) -> None:
    """Raise :class:`ConfigError` (with the closest valid name) for an option model ``name`` does
    not take; e.g. a grid's ``model_options`` or ``--model-option``, checked before any data loads."""
    _check_option_names(name, model_entry(name).builder, options)


def _check_option_names(name: str, builder, options: dict) -> None:
    valid = _option_names(builder)
    special = ("pretrained", "freeze")  # create_model's own
    unknown = [key for key in options if valid is not None and key not in valid and key not in special]
    if unknown:
        raise ConfigError.unknown(f"{name} option", unknown[0], valid)


def current_option_names(name: str, options: dict, *, warn: bool = True) -> dict:
    """``options`` of model ``name`` under today's names (:data:`RENAMED_OPTIONS`); ``warn`` says so
    with a DeprecationWarning (a checkpoint's stored options are renamed without one)."""
    renamed = RENAMED_OPTIONS.get(name, {})
    for old in sorted(renamed.keys() & options.keys()) if warn else ():
        warnings.warn(f"{name}: option {old!r} is now called {renamed[old]!r}", DeprecationWarning, stacklevel=3)
    return {renamed.get(key, key): value for key, value in options.items()}


def create_model(name: str, num_classes: int = 7, in_channels: int = 1, **kwargs) -> nn.Module:
    """Build the registered model ``name``.

    ``pretrained=PATH`` loads weights from a local file (a ferlib checkpoint or a state dict,
    see :func:`ferlib.models.pretrained.load_pretrained`); ``freeze="backbone"`` then leaves
    only the classifier head trainable (a linear probe), ``freeze="none"`` (the default)
    fine-tunes everything.

    Examples
    --------
    >>> import torch
    >>> from ferlib import create_model
    >>> model = create_model("cnn_small", num_classes=7, in_channels=1)
    >>> model(torch.zeros(2, 1, 48, 48)).shape
    torch.Size([2, 7])
    """
    entry = model_entry(name)
    kwargs = current_option_names(name, kwargs)
    if num_classes < 1 or in_channels < 1:
        raise ValueError(f"num_classes and in_channels must be >= 1, got {num_classes}, {in_channels}")
    pretrained = kwargs.pop("pretrained", None)
    freeze = kwargs.pop("freeze", "none")
    _check_option_names(name, entry.builder, kwargs)
    try:
        model = entry.builder(num_classes=num_classes, in_channels=in_channels, **kwargs)
    except FerlibError:
        raise
    except (TypeError, ValueError, RuntimeError) as error:  # a value the model cannot take: widths="abc", -1
        shown = ", ".join(f"{key}={value!r}" for key, value in kwargs.items())
        raise ConfigError(f"cannot build model {name!r} with {shown or 'its defaults'}: {error}") from error
    model.ferlib_name = name
    model.ferlib_kind = entry.kind
    model.ferlib_config = {"num_classes": num_classes, "in_channels": in_channels, **kwargs}
    # A builder may record some options differently, e.g. a weights file it has already read
    # (``encoder_checkpoint`` of the video models) as None, so that a rebuild does not read it.
    model.ferlib_config.update(getattr(model, "config_overrides", {}))
    if pretrained is not None or freeze != "none":
        from ferlib.models.pretrained import apply_freeze, load_pretrained

        if pretrained is not None:
            load_pretrained(model, pretrained)
        apply_freeze(model, freeze)
        # The checkpoint of a fine-tuned model holds the weights already: rebuilding it must
        # not read the original file again (which may no longer exist).
        model.ferlib_config.update(pretrained=None, freeze=freeze)
    return model
