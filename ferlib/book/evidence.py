"""The numbers chapters measure, kept so that the verdict chapter can weigh the survey's claims.

A chapter ends with ``record("05_rnns", profile=profile, dataset=dataset, decay=..., runs=frame)``,
which writes ``<evidence dir>/<profile>-<dataset>/05_rnns.json``. The verdict chapter calls
``load("05_rnns", profile=..., dataset=...)``, so every number the verdict shows comes from a run
of this book's code, never from a stored table. When that record is missing (the chapter was never
executed with these parameters here) ``load`` says so and how to make it; it executes the chapter
with papermill first only when asked (``run_missing=True``), since that can take many minutes.
:func:`missing` lists the chapters without evidence, so a reader can see the cost before asking.

The evidence directory is ``$FERLIB_EVIDENCE_DIR`` when set (``ferlib book run`` sets it), else
``_build/evidence`` beside the book's ``_toc.yml`` (so it lives and dies with the build cache),
else ``~/.cache/ferlib/evidence``.

The statistics the verdict uses are here too: ``difference`` (mean difference of two sets of
per-seed results with a pooled, or Welch, Student-t interval), ``seed_noise`` and ``judge``.
"""

from __future__ import annotations

import json
import os
import tempfile
import time
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd

from ferlib.errors import FerlibError

# the verdict's statistics, computed in ferlib.stats; chapters read them from here too
from ferlib.stats import (  # noqa: F401
    Difference,
    difference,
    judge,
    mean_interval,
    paired_difference,
    proportion_difference,
    seed_noise,
)

_FRAME = "__dataframe__"


def find_book_root(start: str | Path | None = None) -> Path | None:
    """The nearest folder at or above ``start`` (default: the working directory) holding ``_toc.yml``."""
    folder = Path(start or Path.cwd()).resolve()
    for candidate in (folder, *folder.parents):
        if (candidate / "_toc.yml").is_file():
            return candidate
    return None


def evidence_dir() -> Path:
    """Where evidence is kept (see the module docstring)."""
    if os.environ.get("FERLIB_EVIDENCE_DIR"):
        return Path(os.environ["FERLIB_EVIDENCE_DIR"])
    root = find_book_root()
    if root is not None:
        return root / "_build" / "evidence"
    return Path.home() / ".cache" / "ferlib" / "evidence"


def _slug(text: str) -> str:
    return "".join(c if c.isalnum() or c in "-_." else "_" for c in str(text))


def evidence_path(chapter: str, *, profile: str, dataset: str) -> Path:
    """The file that holds ``chapter``'s evidence for one profile and dataset."""
    return evidence_dir() / f"{_slug(profile)}-{_slug(dataset)}" / f"{_slug(chapter)}.json"


def _encode(value):
    if isinstance(value, pd.Series):
        value = value.to_frame()
    if isinstance(value, pd.DataFrame):
        frame = value.reset_index() if not isinstance(value.index, pd.RangeIndex) else value
        return {_FRAME: {"columns": [str(c) for c in frame.columns],
                         "data": [[_encode(v) for v in row] for row in frame.itertuples(index=False)]}}
    if isinstance(value, Mapping):
        return {str(k): _encode(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_encode(v) for v in value]
    if isinstance(value, np.ndarray):
        return [_encode(v) for v in value.tolist()]
    if isinstance(value, (np.bool_, bool)):
        return bool(value)
    if isinstance(value, (np.integer, int)):
        return int(value)
    if isinstance(value, (np.floating, float)):
        return float(value)
    if value is None or isinstance(value, str):
        return value
    if isinstance(value, Path):
        return str(value)
    raise TypeError(f"cannot record a value of type {type(value).__name__}: use numbers, strings, lists, "
                    "dicts or pandas DataFrames")


def _decode(value):
    if isinstance(value, dict):
        if set(value) == {_FRAME}:
            return pd.DataFrame(value[_FRAME]["data"], columns=value[_FRAME]["columns"])
        return {k: _decode(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_decode(v) for v in value]
    return value


def record(chapter: str, *, profile: str, dataset: str, **values) -> Path:
    """Write ``values`` (numbers, strings, lists, dicts, DataFrames) as ``chapter``'s evidence.

    The file also keeps when and where the numbers were measured (ferlib version, git commit,
    device, thread count). It is replaced atomically: a reader never sees half a file.
    """
    from ferlib.runtime import environment_info

    path = evidence_path(chapter, profile=profile, dataset=dataset)
    path.parent.mkdir(parents=True, exist_ok=True)
    document = {
        "chapter": chapter,
        "profile": profile,
        "dataset": dataset,
        "recorded_at": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
        "environment": environment_info(),
        "values": _encode(values),
    }
    with tempfile.NamedTemporaryFile("w", dir=path.parent, suffix=".partial", delete=False) as handle:
        json.dump(document, handle, indent=1)
    os.chmod(handle.name, 0o644)
    os.replace(handle.name, path)
    return path


@dataclass(frozen=True)
class Evidence(Mapping):
    """One chapter's recorded values (``evidence["runs"]`` is a DataFrame again) and their provenance."""

    chapter: str
    profile: str
    dataset: str
    recorded_at: str
    environment: dict
    data: dict
    path: Path

    def __getitem__(self, key):
        try:
            return self.data[key]
        except KeyError:
            raise KeyError(f"{self.chapter} recorded no {key!r}; it recorded: {', '.join(self.data)}") from None

    def __iter__(self):
        return iter(self.data)

    def __len__(self) -> int:
        return len(self.data)

    @property
    def hardware(self) -> str:
        env = self.environment
        return f"{env.get('device_name', env.get('device', '?'))}, torch {env.get('torch', '?')}"


def read(path: str | Path) -> Evidence:
    """Read one evidence file; a corrupt or foreign file raises ``FerlibError`` naming it."""
    path = Path(path)
    try:
        document = json.loads(path.read_text())
        return Evidence(document["chapter"], document["profile"], document["dataset"], document["recorded_at"],
                        document.get("environment", {}), _decode(document["values"]), path)
    except (OSError, ValueError, KeyError, TypeError) as error:
        raise FerlibError(f"{path} is not a readable ferlib evidence file ({error}); delete it and rebuild") from error


def execute_chapter(chapter: str, *, profile: str, dataset: str, book_dir: str | Path | None = None,
                    **parameters) -> Path:
    """Execute ``book/<chapter>.ipynb`` with papermill (it records its own evidence); return the output path."""
    import papermill

    root = find_book_root()
    book_dir = Path(book_dir) if book_dir is not None else (root / "book" if root else None)
    if book_dir is None:  # e.g. one chapter opened alone in Colab
        raise FerlibError(
            f"no evidence for chapter {chapter!r} ({profile} profile, {dataset}) and the book's chapters are not "
            f"here (no _toc.yml at or above {Path.cwd()}): clone the book's repository and run this chapter from "
            "its book/ folder, or `ferlib book run` there"
        )
    notebook = book_dir / f"{chapter}.ipynb"
    if not notebook.is_file():
        raise FerlibError(
            f"no evidence for chapter {chapter!r} ({profile} profile, {dataset}) and its notebook is not found "
            f"(looked in {book_dir}); execute the chapter first, e.g. with `ferlib book run --chapters {chapter}`"
        )
    out = Path(tempfile.mkdtemp(prefix="ferlib-evidence-")) / f"{chapter}.ipynb"
    from ferlib.runtime import environment_variables

    # the chapter records its evidence where load() will look
    with environment_variables({"FERLIB_EVIDENCE_DIR": str(evidence_dir())}):
        papermill.execute_notebook(str(notebook), str(out), kernel_name="python3", cwd=str(notebook.parent),
                                   parameters={"profile": profile, "dataset": dataset, **parameters},
                                   progress_bar=False)
    return out


def missing(chapters, *, profile: str, dataset: str | Mapping[str, str]) -> list[str]:
    """The ``chapters`` that have no evidence for this profile and dataset (``dataset`` may map a
    chapter to its own dataset, for chapters that always run on SynthFER)."""
    def dataset_of(chapter):
        return dataset.get(chapter, "synthfer") if isinstance(dataset, Mapping) else dataset

    return [c for c in chapters if not evidence_path(c, profile=profile, dataset=dataset_of(c)).is_file()]


def load(chapter: str, *, profile: str, dataset: str, run_missing: bool = False, **parameters) -> Evidence:
    """``chapter``'s evidence for this profile and dataset.

    A chapter without evidence is executed first (with papermill and ``parameters``) only with
    ``run_missing=True``; otherwise a :class:`FerlibError` names it and says how to make it.
    """
    path = evidence_path(chapter, profile=profile, dataset=dataset)
    if not path.is_file():
        if not run_missing:
            raise FerlibError(
                f"no evidence for chapter {chapter!r} ({profile} profile, {dataset}) in {path.parent}: execute the "
                f"chapter first (`ferlib book run --chapters {chapter}`), or pass run_missing=True to execute it here"
            )
        execute_chapter(chapter, profile=profile, dataset=dataset, **parameters)
        if not path.is_file():
            raise FerlibError(f"chapter {chapter!r} ran but recorded no evidence at {path}")
    return read(path)
