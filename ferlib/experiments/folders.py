"""A run folder belongs to one configuration.

``ferlib train --out DIR`` writes ``DIR/config.json`` before it trains. Training (or resuming)
into a folder that holds a run of another configuration is refused with the keys that differ;
with ``--force`` the old run is moved aside (``DIR.replaced-<time>``), never overwritten.
"""

from __future__ import annotations

import json
import shutil
import time
from pathlib import Path

from ferlib.errors import ConfigError

CONFIG_FILE = "config.json"
_RUN_FILES = ("config.json", "last.ckpt", "best.ckpt", "metrics.json")


def folder_config(folder: str | Path) -> dict | None:
    """The configuration of the run in ``folder``: its ``config.json``, else (a folder written before
    config.json existed) the ``config`` of its ``metrics.json``; ``None`` when neither says."""
    folder = Path(folder)
    for name, key in ((CONFIG_FILE, None), ("metrics.json", "config")):
        path = folder / name
        if path.is_file():
            try:
                document = json.loads(path.read_text())
            except ValueError as error:
                message = f"{path} is not readable JSON ({error}); move the folder aside or pass --force"
                raise ConfigError(message) from None
            return document if key is None else document.get(key)
    return None


def differences(old: dict, new: dict) -> list[str]:
    """``key: old -> new`` for every key whose value differs (JSON-normalised, so tuples equal lists)."""
    old, new = json.loads(json.dumps(old, default=str)), json.loads(json.dumps(new, default=str))
    keys = sorted(set(old) | set(new))
    return [f"{key}: {old.get(key)!r} -> {new.get(key)!r}" for key in keys if old.get(key) != new.get(key)]


def claim_run_folder(folder: str | Path, config: dict, *, force: bool = False) -> Path | None:
    """Make ``folder`` the home of a run of ``config`` and write its ``config.json``.

    A folder holding a run of another configuration raises :class:`ConfigError` naming the keys
    that differ, unless ``force``, which moves it aside; returns where it went (else ``None``).
    A folder with checkpoints but no record of its configuration is treated as another one.
    """
    folder = Path(folder)
    moved = None
    holds_run = any((folder / name).exists() for name in _RUN_FILES)
    if holds_run:
        old = folder_config(folder)
        changed = differences(old, config) if old is not None else ["(the folder's configuration is not recorded)"]
        if changed:
            if not force:
                raise ConfigError(
                    f"{folder} holds a run of another configuration ({'; '.join(changed)}): train into another "
                    "--out, or pass --force to move that run aside"
                )
            moved = folder.with_name(f"{folder.name}.replaced-{time.strftime('%Y%m%d-%H%M%S')}")
            shutil.move(str(folder), str(moved))
    folder.mkdir(parents=True, exist_ok=True)
    (folder / CONFIG_FILE).write_text(json.dumps(config, indent=2, sort_keys=True, default=str) + "\n")
    return moved
