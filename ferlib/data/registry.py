"""One door to every dataset: ``load_dataset(name, split, root=None, **options)``."""

from __future__ import annotations

import importlib
from collections.abc import Callable

from torch.utils.data import Dataset

from ferlib._registry import lookup

_DATASETS: dict[str, Callable[..., Dataset]] = {}
# Modules whose import registers datasets; imported lazily so `import ferlib` stays light.
_PROVIDERS = ("ferlib.data.synth", "ferlib.data.real")


def register_dataset(name: str) -> Callable[[Callable[..., Dataset]], Callable[..., Dataset]]:
    """Decorator: register a dataset class or factory under ``name`` (lower case)."""

    def decorate(factory: Callable[..., Dataset]) -> Callable[..., Dataset]:
        key = name.lower()
        if key in _DATASETS and _DATASETS[key] is not factory:
            raise ValueError(f"dataset name {key!r} is already registered")
        _DATASETS[key] = factory
        return factory

    return decorate


def _import_providers() -> None:
    for module in _PROVIDERS:
        try:
            importlib.import_module(module)
        except ModuleNotFoundError as error:
            # Only tolerate the provider module itself being absent, never its broken imports.
            if error.name != module:
                raise


def list_datasets() -> list[str]:
    """Names accepted by :func:`load_dataset`."""
    _import_providers()
    return sorted(_DATASETS)


def load_dataset(name: str, split: str = "train", root: str | None = None, **options) -> Dataset:
    """Build the dataset registered as ``name``.

    Parameters
    ----------
    name : a registered name, e.g. ``"synthfer"`` or ``"fer2013"`` (see :func:`list_datasets`).
    split : ``"train"``, ``"val"``, ``"test"`` or ``"all"`` where the dataset has it.
    root : folder of a real dataset in its official layout; unused by SynthFER.
    options : passed on to the dataset's constructor.

    Examples
    --------
    >>> from ferlib import load_dataset
    >>> data = load_dataset("synthfer", split="train", size=8)
    >>> image, label, meta = data[0]
    >>> tuple(image.shape)
    (1, 48, 48)
    """
    _import_providers()
    factory = lookup(dict(sorted(_DATASETS.items())), name.lower(), "dataset")
    if root is not None:
        options["root"] = root
    return factory(split=split, **options)
