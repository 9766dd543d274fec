"""The version of ferlib, from the installed metadata: ``pyproject.toml`` is the one place it is written."""

import re
from importlib.metadata import PackageNotFoundError, version
from pathlib import Path


def _from_pyproject() -> str:
    """The version in the source tree's ``pyproject.toml``, for a checkout on ``sys.path`` that is not installed."""
    try:
        text = (Path(__file__).resolve().parents[1] / "pyproject.toml").read_text(encoding="utf-8")
    except OSError:
        return "0.0.0+unknown"
    match = re.search(r'^version\s*=\s*"([^"]+)"', text, re.MULTILINE)
    return match.group(1) if match else "0.0.0+unknown"


try:
    __version__ = version("ferlib")
except PackageNotFoundError:
    __version__ = _from_pyproject()
