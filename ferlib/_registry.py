"""Name lookup shared by every registry (models, datasets, profiles, corruptions, augmentations).

A name that is not registered raises :class:`ferlib.errors.ConfigError` naming the value, the
closest valid name and every valid one.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import TypeVar

from ferlib.errors import ConfigError

T = TypeVar("T")


def lookup(registry: Mapping[str, T], name: str, kind: str) -> T:
    """``registry[name]``, or a :class:`ConfigError` that says what ``kind`` of name was unknown.

    >>> lookup({"quick": 1, "smoke": 0}, "quik", "profile")
    Traceback (most recent call last):
    ...
    ferlib.errors.ConfigError: unknown profile 'quik': expected one of quick, smoke; did you mean 'quick'?
    """
    try:
        return registry[name]
    except (KeyError, TypeError):
        raise ConfigError.unknown(kind, name, registry) from None
