"""The ``ferlib`` command line: one module per command group, shared helpers in ``_common``."""

from ferlib.cli.main import main

__all__ = ["main"]
