"""Every exception ferlib raises for bad input, so callers can catch them in one place.

All derive from :class:`FerlibError`; the command line prints their whole message, without a
traceback. Each also derives from the built-in error a caller would otherwise expect
(``ValueError``), so ``except ValueError`` written before these classes existed still works.
"""

from __future__ import annotations

import difflib
from collections.abc import Iterable, Sequence


class FerlibError(Exception):
    """Base class: a problem with what the user gave ferlib (data, names, files)."""


class ConfigError(FerlibError, ValueError):
    """A name or option that ferlib does not know (a model, dataset, profile, corruption, ...).

    :meth:`unknown` builds the message: the kind of name, the value, the valid ones and the
    closest of them.
    """

    @classmethod
    def unknown(cls, kind: str, value: object, valid: Iterable[str]) -> ConfigError:
        """``unknown model 'cnn_smal': expected one of cnn_small, vgg_fer; did you mean 'cnn_small'?``"""
        choices = list(valid)
        hint = suggestion(str(value), choices)
        did_you_mean = f"; did you mean {hint!r}?" if hint else ""
        return cls(f"unknown {kind} {value!r}: expected one of {', '.join(choices)}{did_you_mean}")


def suggestion(value: str, valid: Iterable[str]) -> str | None:
    """The valid name closest to ``value`` (difflib's ratio of at least 0.5), or ``None``.

    >>> suggestion("cnn_smal", ["cnn_small", "vgg_fer"])
    'cnn_small'
    """
    by_lower = {name.lower(): name for name in valid}
    match = difflib.get_close_matches(value.lower(), list(by_lower), n=1, cutoff=0.5)
    return by_lower[match[0]] if match else None


class CheckpointError(FerlibError, ValueError):
    """A file that is missing, corrupt or not a ferlib checkpoint."""


class DataError(FerlibError, ValueError):
    """A dataset that is missing, malformed or inconsistent with its documented layout."""


class MissingSplitError(DataError):
    """The layout on disk has no such split (``available`` lists those it has)."""

    def __init__(self, message: str, available: Sequence[str] = ()) -> None:
        super().__init__(message)
        self.available = tuple(available)


class NoFaceError(DataError):
    """No face was found in an image (the message names the file when there is one)."""


class GridError(FerlibError, ValueError):
    """A bad benchmark grid spec; the message is one line naming the key and value."""
