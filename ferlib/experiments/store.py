"""The results store: one record per run in an embedded SQLite database.

A run is keyed by the hash of its config (canonical JSON), so a grid that is interrupted and
started again skips every run already stored. Records keep the config, metrics, cost figures,
seed, device, library versions and git commit.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import sqlite3
import time
import warnings
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path

DEFAULT_PATH = Path("results") / "ferlib.sqlite"

_SCHEMA = """
CREATE TABLE IF NOT EXISTS runs (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    config_hash TEXT NOT NULL UNIQUE,
    name TEXT,
    created TEXT NOT NULL,
    config TEXT NOT NULL,
    metrics TEXT NOT NULL,
    cost TEXT NOT NULL,
    seed INTEGER,
    device TEXT,
    versions TEXT NOT NULL,
    git_commit TEXT
)
"""


def config_hash(config: dict) -> str:
    """SHA-256 of the config as canonical JSON (sorted keys); equal configs, equal hashes."""
    try:
        text = json.dumps(config, sort_keys=True, separators=(",", ":"), default=str)
    except (TypeError, ValueError) as error:
        raise ValueError(f"a run config must be JSON-serialisable: {error}") from error
    return hashlib.sha256(text.encode()).hexdigest()


class ResultsStore:
    """Run records in SQLite at ``path`` (default ``results/ferlib.sqlite``).

    Examples
    --------
    >>> import tempfile, pathlib
    >>> store = ResultsStore(pathlib.Path(tempfile.mkdtemp()) / "runs.sqlite")
    >>> record = store.run({"model": "cnn_small", "seed": 0}, lambda config: {"metrics": {"accuracy": 0.5}})
    >>> store.has({"model": "cnn_small", "seed": 0}), len(store.records())
    (True, 1)
    """

    def __init__(self, path: str | Path = DEFAULT_PATH):
        self.path = Path(path)
        self.path.parent.mkdir(parents=True, exist_ok=True)
        try:
            with self._connect() as connection:
                connection.execute(_SCHEMA)
        except sqlite3.DatabaseError as error:
            raise ValueError(f"{self.path} is not a ferlib results database: {error}") from error

    @contextlib.contextmanager
    def _connect(self) -> Iterator[sqlite3.Connection]:
        """A connection whose statements form one transaction: committed on success, rolled back
        on an exception (a killed process leaves the last committed state), then closed."""
        connection = sqlite3.connect(self.path, timeout=60)
        connection.row_factory = sqlite3.Row
        try:
            with connection:
                yield connection
        finally:
            connection.close()

    def has(self, config: dict) -> bool:
        return self.get(config) is not None

    def get(self, config: dict) -> dict | None:
        """The stored record of ``config``, or None."""
        with self._connect() as connection:
            row = connection.execute("SELECT * FROM runs WHERE config_hash = ?", (config_hash(config),)).fetchone()
        return _row_to_record(row) if row is not None else None

    def add(
        self,
        config: dict,
        metrics: dict,
        *,
        cost: dict | None = None,
        name: str | None = None,
        device: str | None = None,
        force: bool = False,
    ) -> dict:
        """Store a run; an existing record of the same config is kept unless ``force``."""
        from ferlib.runtime import environment_info

        info = environment_info("cpu")
        versions = {key: info.get(key) for key in ("ferlib", "torch", "torchvision", "numpy", "python")}
        values = (
            config_hash(config),
            name or config.get("name"),
            time.strftime("%Y-%m-%dT%H:%M:%S"),
            json.dumps(config, sort_keys=True, default=str),
            json.dumps(metrics, default=float),
            json.dumps(cost or {}, default=float),
            config.get("seed"),
            device,
            json.dumps(versions),
            info.get("git_commit"),
        )
        verb = "INSERT OR REPLACE" if force else "INSERT OR IGNORE"
        with self._connect() as connection:
            connection.execute(
                f"{verb} INTO runs (config_hash, name, created, config, metrics, cost, seed, device, versions,"
                " git_commit) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
                values,
            )
        return self.get(config)

    def run(self, config: dict, fn: Callable[[dict], dict], *, force: bool = False, name: str | None = None) -> dict:
        """Return the stored record of ``config``, or call ``fn(config)`` and store what it returns.

        ``fn`` returns ``{"metrics": {...}, "cost": {...}, "device": "..."}`` (cost and device optional).
        """
        if not force:
            stored = self.get(config)
            if stored is not None:
                return stored
        result = fn(config)
        if "metrics" not in result:
            raise ValueError("the run function must return a dict with a 'metrics' entry")
        return self.add(
            config, result["metrics"], cost=result.get("cost"), name=name, device=result.get("device"), force=True
        )

    def hashes(self) -> set[str]:
        """The config hashes of every stored run."""
        with self._connect() as connection:
            return {row[0] for row in connection.execute("SELECT config_hash FROM runs")}

    def get_hash(self, digest: str) -> dict | None:
        """The stored record whose config hash is ``digest``, or None."""
        with self._connect() as connection:
            row = connection.execute("SELECT * FROM runs WHERE config_hash = ?", (digest,)).fetchone()
        return _row_to_record(row) if row is not None else None

    def add_record(self, record: dict) -> bool:
        """Insert a record of another store as it is (creation time, versions, commit); False if
        its config hash is stored already (the stored record is kept)."""
        values = [record["config_hash"], record.get("name"), record["created"]]
        values += [json.dumps(record[key], sort_keys=key == "config", default=float) for key in _JSON_COLUMNS]
        values += [record.get("seed"), record.get("device"), record.get("git_commit")]
        with self._connect() as connection:
            cursor = connection.execute(
                "INSERT OR IGNORE INTO runs (config_hash, name, created, config, metrics, cost, versions, seed,"
                " device, git_commit) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
                values,
            )
            return cursor.rowcount == 1

    def records(self, name: str | None = None) -> list[dict]:
        """All records (optionally of one ``name``), oldest first."""
        query, args = "SELECT * FROM runs", ()
        if name is not None:
            query, args = query + " WHERE name = ?", (name,)
        with self._connect() as connection:
            rows = connection.execute(query + " ORDER BY id", args).fetchall()
        return [_row_to_record(row) for row in rows]

    def to_frame(self, name: str | None = None):
        """Records as a flat DataFrame: ``config.*``, ``metrics.*`` and ``cost.*`` columns."""
        import pandas as pd

        return pd.json_normalize(self.records(name), sep=".")


_JSON_COLUMNS = ("config", "metrics", "cost", "versions")


def merge_stores(out: str | Path, inputs: Sequence[str | Path]) -> dict[str, int]:
    """Copy the records of ``inputs`` (in order) into the store at ``out``, one per config hash.

    A hash already in ``out`` (or in an earlier input) keeps its first record; when the later
    record's metrics differ, a ``UserWarning`` names the hash and both files (cost figures such as
    timings always differ between two runs of one config and are not a conflict). Returns counts
    of ``added``, ``duplicates`` and ``conflicts``.
    """
    out = Path(out)
    for path in inputs:
        if not Path(path).is_file():
            raise FileNotFoundError(f"no results database at {path}")
        if Path(path).resolve() == out.resolve():
            raise ValueError(f"cannot merge {path} into itself")
    target = ResultsStore(out)
    origin = dict.fromkeys(target.hashes(), str(out))
    counts = {"added": 0, "duplicates": 0, "conflicts": 0}
    for path in inputs:
        for record in ResultsStore(path).records():
            digest = record["config_hash"]
            if target.add_record(record):
                counts["added"] += 1
                origin[digest] = str(path)
                continue
            counts["duplicates"] += 1
            kept = target.get_hash(digest)
            if kept is not None and _canonical(kept["metrics"]) != _canonical(record["metrics"]):
                counts["conflicts"] += 1
                config = record["config"]
                warnings.warn(
                    f"conflicting records for config {digest[:12]} ({config.get('model')} {config.get('task')} "
                    f"seed {config.get('seed')}): kept the one from {origin.get(digest, out)}, ignored {path}",
                    stacklevel=2,
                )
    return counts


def _canonical(value) -> str:
    return json.dumps(value, sort_keys=True, default=str)  # NaN == NaN here, unlike in a dict compare


def _row_to_record(row: sqlite3.Row) -> dict:
    record = dict(row)
    for key in _JSON_COLUMNS:
        record[key] = json.loads(record[key])
    return record
