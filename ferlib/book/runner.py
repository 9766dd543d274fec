"""Executing the book: the chapters of ``_toc.yml``, their parameters, ``ferlib book run`` and the site build.

:func:`run_book` executes each chapter of ``_toc.yml`` in order with papermill into ``OUT/book/`` (a copy
of ``book/``, which is also the chapters' working folder), records its parameters and hardware in the
notebook, and builds ``OUT/_build/html`` from the executed notebooks without executing them again. A
failing chapter stops the run; the chapters before it stay, and ``resume=True`` continues from it.
"""

from __future__ import annotations

import ast
import copy
import hashlib
import shutil
import subprocess
import sys
import time
from datetime import datetime, timezone
from pathlib import Path

from ferlib.errors import FerlibError

# The names of every chapter's `parameters` cell (a chapter may declare fewer).
PARAMETERS = ("profile", "dataset", "data_dir", "device", "seed")
# Chapters read these at run time; the verdict chapter reads the earlier chapters' numbers there.
EVIDENCE_VARIABLE = "FERLIB_EVIDENCE_DIR"


def find_repo(explicit: str | None = None) -> Path:
    """The folder holding ``_toc.yml``: ``explicit``, else the current folder, else ferlib's checkout."""
    candidates = [Path(explicit)] if explicit else [Path.cwd(), Path(__file__).resolve().parents[2]]
    for folder in candidates:
        if (folder / "_toc.yml").is_file():
            return folder.resolve()
    where = explicit or "the current folder or ferlib's checkout"
    raise FerlibError(f"no _toc.yml in {where}: run from the book's repository or pass --repo")


def toc_files(repo: Path) -> list[tuple[str, Path]]:
    """Every ``file`` of ``_toc.yml`` in reading order, as ``(toc entry, source path)``."""
    import yaml

    toc = yaml.safe_load((repo / "_toc.yml").read_text())
    entries: list[str] = []

    def walk(node) -> None:
        if isinstance(node, dict):
            for key in ("root", "file"):
                if isinstance(node.get(key), str):
                    entries.append(node[key])
            for value in node.values():
                if isinstance(value, list | dict):
                    walk(value)
        elif isinstance(node, list):
            for item in node:
                walk(item)

    walk(toc)
    files = []
    for entry in entries:
        path = repo / entry
        if not path.suffix:
            path = next((p for p in (path.with_suffix(".ipynb"), path.with_suffix(".md")) if p.exists()), path)
        if not path.exists():
            raise FerlibError(f"_toc.yml names {entry}, but {path} does not exist")
        files.append((entry, path))
    return files


def chapter_sources(repo: Path) -> dict[str, Path]:
    """The notebook chapters of ``_toc.yml`` in order: ``{"01_first_model": book/01_first_model.ipynb, ...}``."""
    return {path.stem: path for _, path in toc_files(repo) if path.suffix == ".ipynb"}


def select_chapters(available: dict[str, Path], names: list[str] | None) -> list[str]:
    """``names`` checked against the chapters and put in TOC order (all chapters when None)."""
    if names is None:
        return list(available)
    wanted = {Path(name.strip()).stem for name in names}
    unknown = sorted(wanted - set(available))
    if unknown:
        raise FerlibError(f"unknown chapter {', '.join(unknown)}: expected one of {', '.join(available)}")
    return [name for name in available if name in wanted]


def check_run_options(profile: str, dataset: str, data_dir: str | None) -> str | None:
    """Validate the profile and the data; return ``data_dir`` as an absolute path (chapters run elsewhere)."""
    from ferlib.config import get_profile
    from ferlib.data.registry import list_datasets

    try:
        get_profile(profile)
    except ValueError as error:
        raise FerlibError(str(error)) from None
    known = list_datasets()
    if dataset.lower() not in known:
        raise FerlibError(f"unknown dataset {dataset!r}: expected one of {', '.join(known)}")
    if data_dir is not None:
        folder = Path(data_dir).expanduser().resolve()
        if not folder.is_dir():
            raise FerlibError(f"--data-dir {data_dir} is not a folder")
        return str(folder)
    if not dataset.lower().startswith("synth"):
        raise FerlibError(
            f"dataset {dataset!r} needs --data-dir: a local copy in its official layout (nothing is downloaded)"
        )
    return None


def chapter_parameters(source: Path, requested: dict) -> tuple[dict, dict]:
    """What to inject into ``source``'s ``parameters`` cell, and the values the chapter will run with.

    A parameter whose default reads the environment is injected; one set to a plain literal is
    the chapter's own choice (chapter 8's ``device = "cpu"``) and is kept.
    """
    import papermill

    declared = papermill.inspect_notebook(str(source))
    inject, effective = {}, {}
    for name, value in requested.items():
        if name not in declared:
            continue
        default = declared[name]["default"]
        try:
            effective[name] = ast.literal_eval(default)
        except (ValueError, SyntaxError):
            inject[name] = effective[name] = value
    return inject, effective


def hardware(device: str) -> dict:
    """What ``ferlib info --json`` reports for ``device``, less the commit (recorded on its own)."""
    from ferlib.runtime import environment_info

    try:
        info = environment_info(device)
    except ValueError as error:
        raise FerlibError(str(error)) from None
    info.pop("git_commit", None)
    return info


def describe_hardware(info: dict) -> str:
    """``"NVIDIA H100 80GB HBM3 (cuda), 16 CPU cores, torch 2.14.1"``."""
    device = info["device_name"] if info["device"] == "cpu" else f"{info['device_name']} ({info['device']})"
    cores = "" if info["device"] == "cpu" else f", {info['cpu_count']} CPU cores"
    return f"{device}{cores}, torch {info['torch']}"


def _sha256(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def _recorded(notebook: Path) -> dict | None:
    """The ``ferlib`` metadata of an executed notebook, or None."""
    import nbformat

    if not notebook.exists():
        return None
    try:
        return nbformat.read(notebook, as_version=4).metadata.get("ferlib")
    except Exception:  # unreadable: execute it again
        return None


def _record(notebook: Path, destination: Path, metadata: dict) -> None:
    """Write ``notebook`` to ``destination`` with ``metadata`` and a line saying how it ran, after its parameters."""
    import nbformat

    nb = nbformat.read(notebook, as_version=4)
    nb.metadata["ferlib"] = metadata
    # Executed already: the build must not run it again, even where the chapter asks myst-nb to.
    nb.metadata.setdefault("mystnb", {})["execution_mode"] = "off"
    shown = ", ".join(f"{k}={v}" for k, v in metadata["parameters"].items() if k != "data_dir")
    text = (
        f"Executed by `ferlib book run` on {describe_hardware(metadata['hardware'])} "
        f"with {shown}, in {metadata['wall_time_s']:.0f} s."
    )
    cell = nbformat.v4.new_markdown_cell(text, metadata={"tags": ["ferlib-run"]})
    tags = [cell.get("metadata", {}).get("tags", []) for cell in nb.cells]
    after = next((i for i, t in enumerate(tags) if "injected-parameters" in t), None)
    if after is None:
        after = next((i for i, t in enumerate(tags) if "parameters" in t), 0)
    nb.cells.insert(after + 1, cell)
    nbformat.write(nb, destination)


def _copy_book_folder(repo: Path, destination: Path) -> None:
    """Copy ``book/`` without its notebooks (those come executed) or build leftovers."""
    ignore = shutil.ignore_patterns("*.ipynb", "_build", ".ipynb_checkpoints", "__pycache__", ".jupyter_cache")
    shutil.copytree(repo / "book", destination, ignore=ignore, dirs_exist_ok=True)


def run_book(
    repo: str | Path,
    out: str | Path,
    chapters: list[str] | None = None,
    profile: str = "quick",
    dataset: str = "synthfer",
    data_dir: str | None = None,
    device: str = "auto",
    seed: int = 0,
    resume: bool = False,
    build: bool = True,
    log=print,
) -> list[Path]:
    """Execute ``chapters`` (default all) in TOC order into ``out/book``, then build the site.

    Returns the executed notebooks. A failing chapter raises :class:`FerlibError` naming the
    chapter and its partial notebook; the notebooks executed before it stay in ``out/book``.
    """
    import papermill
    from papermill.exceptions import PapermillExecutionError

    from ferlib.runtime import environment_variables, git_commit

    repo = Path(repo).resolve()
    sources = chapter_sources(repo)
    selected = select_chapters(sources, chapters)
    data_dir = check_run_options(profile, dataset, data_dir)
    requested = {"profile": profile, "dataset": dataset, "data_dir": data_dir, "device": device, "seed": seed}
    machines = {device: hardware(device)}  # also checks the device before anything runs
    out = Path(out).resolve()
    book = out / "book"
    evidence = out / "evidence"
    book.mkdir(parents=True, exist_ok=True)
    evidence.mkdir(parents=True, exist_ok=True)
    _copy_book_folder(repo, book)
    commit = git_commit(repo)
    environment = {
        EVIDENCE_VARIABLE: str(evidence),
        "FERLIB_PROFILE": profile,
        "FERLIB_DATASET": dataset,
        "FERLIB_DATA_DIR": data_dir,
        "FERLIB_DEVICE": device,
        "FERLIB_SEED": str(seed),
    }
    executed = []
    for number, name in enumerate(selected, 1):
        source, target = sources[name], book / f"{name}.ipynb"
        partial = book / f"{name}.partial.ipynb"
        inject, effective = chapter_parameters(source, requested)
        digest = _sha256(source)
        previous = _recorded(target)
        prefix = f"[{number}/{len(selected)}] {name}"
        if resume and previous and previous.get("parameters") == effective and previous.get("source_sha256") == digest:
            log(f"{prefix}: skipped, already executed with these parameters ({previous['wall_time_s']:.0f} s)")
            executed.append(target)
            continue
        chapter_device = str(effective.get("device", device))
        if chapter_device not in machines:
            machines[chapter_device] = hardware(chapter_device)
        started = datetime.now(timezone.utc)
        clock = time.perf_counter()
        try:
            with environment_variables(environment):
                papermill.execute_notebook(
                    str(source),
                    str(partial),
                    parameters=inject,
                    kernel_name="python3",
                    progress_bar=False,
                    cwd=str(book),
                )
        except PapermillExecutionError as error:
            where = f"cell {error.exec_count}" if error.exec_count else f"cell index {error.cell_index}"
            detail = (str(error.evalue).strip().splitlines() or [""])[0]
            raise FerlibError(
                f"chapter {name} failed in {where} with {error.ename}: {detail} "
                f"after {time.perf_counter() - clock:.0f} s; partial output: {partial}; "
                f"{len(executed)} chapter(s) before it are kept in {book}; rerun with --resume to continue"
            ) from None
        except Exception as error:  # the kernel died, did not start, or timed out
            message = str(error).strip().splitlines()[0] if str(error).strip() else type(error).__name__
            raise FerlibError(
                f"chapter {name} failed ({type(error).__name__}: {message}); partial output: {partial}; "
                f"{len(executed)} chapter(s) before it are kept in {book}; rerun with --resume to continue"
            ) from None
        wall = time.perf_counter() - clock
        metadata = {
            "parameters": effective,
            "hardware": machines[chapter_device],
            "started": started.isoformat(timespec="seconds"),
            "wall_time_s": round(wall, 1),
            "git_commit": commit,
            "source_sha256": digest,
        }
        _record(partial, target, metadata)
        partial.unlink()
        log(f"{prefix}: {wall:.1f} s -> {target}")
        executed.append(target)
    if build:
        build_site(repo, out, sources, log=log)
    return executed


def _keep_executed(node, keep):
    """A copy of a TOC (sub)tree without the notebook entries that ``keep(entry)`` rejects."""
    if isinstance(node, list):
        kept = []
        for item in node:
            if isinstance(item, dict) and isinstance(item.get("file"), str) and not keep(item["file"]):
                kept.extend(_keep_executed(item.get("sections", []), keep))  # promote its sections
                continue
            kept.append(_keep_executed(item, keep))
        return kept
    if isinstance(node, dict):
        return {key: _keep_executed(value, keep) for key, value in node.items()}
    return node


def build_site(repo: Path, out: Path, sources: dict[str, Path] | None = None, log=print) -> Path:
    """Build ``out/_build/html`` from the executed notebooks in ``out/book`` (none is executed again).

    The site's TOC is the repository's, less the chapters that have no executed notebook.
    """
    import yaml

    repo, out = Path(repo), Path(out)
    sources = chapter_sources(repo) if sources is None else sources
    present = {name for name in sources if _recorded(out / "book" / f"{name}.ipynb") is not None}
    missing = [name for name in sources if name not in present]

    def keep(entry: str) -> bool:
        stem = Path(entry).stem
        return stem not in sources or stem in present

    toc = yaml.safe_load((repo / "_toc.yml").read_text())
    if isinstance(toc.get("root"), str) and not keep(toc["root"]):
        raise FerlibError(f"the book's root {toc['root']} has not been executed into {out / 'book'}")
    (out / "_toc.yml").write_text(yaml.safe_dump(_keep_executed(copy.deepcopy(toc), keep), sort_keys=False))
    config = yaml.safe_load((repo / "_config.yml").read_text())
    config.setdefault("execute", {})["execute_notebooks"] = "off"
    (out / "_config.yml").write_text(yaml.safe_dump(config, sort_keys=False))
    if missing:
        log(f"building without the chapters not executed into {out / 'book'}: {', '.join(missing)}")
    executable = Path(sys.executable).parent / "jupyter-book"
    command = [str(executable)] if executable.exists() else [shutil.which("jupyter-book") or "jupyter-book"]
    clock = time.perf_counter()
    log_path = out / "build.log"
    with open(log_path, "w") as build_log:
        done = subprocess.run([*command, "build", str(out)], stdout=build_log, stderr=subprocess.STDOUT, cwd=out)
    text = log_path.read_text(errors="replace")
    warnings = sum("WARNING" in line for line in text.splitlines())
    site = out / "_build" / "html"
    if done.returncode != 0 or not (site / "index.html").exists():
        last = next((line for line in reversed(text.splitlines()) if line.strip()), "no output")
        raise FerlibError(f"jupyter-book build failed (exit {done.returncode}): {last.strip()}; see {log_path}")
    log(f"built {site / 'index.html'} in {time.perf_counter() - clock:.0f} s ({warnings} warnings, see {log_path})")
    return site
