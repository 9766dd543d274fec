"""Exceptions that ferlib raises for bad input, so callers can catch them in one place."""


class FerlibError(Exception):
    """Base class: a problem with what the user gave ferlib (data, names, files)."""


class CheckpointError(FerlibError, ValueError):
    """A file that is missing, corrupt or not a ferlib checkpoint."""


class DataError(FerlibError, ValueError):
    """A dataset that is missing, malformed or inconsistent with its documented layout."""
