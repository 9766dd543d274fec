"""``ferlib book cache``: execute chapters side by side into jupyter-book's execution cache.

``jupyter-book build .`` (``execute_notebooks: cache``) executes the chapters it has no cached
outputs for one after another, each in a kernel that uses every core. The book's models are
small, and PyTorch spreads such work over threads poorly, so on a multi-core machine several
chapters, each in a kernel limited to fewer threads, finish sooner than the same chapters in a
row. ``ferlib book cache --jobs 2`` does that and stores each executed notebook in the cache
(``_build/.jupyter_cache`` unless ``_config.yml`` names another) under the hash myst-nb looks up:
the build that follows uses those outputs and executes only what is not there.

Chapters run in the book's own way: in their folder, with the current environment (so
``FERLIB_PROFILE`` and the other ``FERLIB_*`` variables apply) and the cell timeout of
``_config.yml``. A chapter that reads other chapters' evidence (``evidence.load``) waits until
those without it have run; one whose notebook sets its own myst-nb execution mode (the verdict
chapter forces a fresh run) is left to the build. A failing chapter does not stop the others:
every chapter that succeeded is cached, and the failures are reported together at the end.
"""

from __future__ import annotations

import os
import time
from concurrent.futures import ProcessPoolExecutor, as_completed
from pathlib import Path

from ferlib.errors import FerlibError

# Thread-count variables a kernel's numerical libraries read when they start.
THREAD_VARIABLES = ("OMP_NUM_THREADS", "MKL_NUM_THREADS", "OPENBLAS_NUM_THREADS")


def execution_settings(repo: Path) -> dict:
    """The ``execute`` section of ``_config.yml`` that matters here, with jupyter-book's defaults."""
    import yaml

    path = repo / "_config.yml"
    config = (yaml.safe_load(path.read_text()) or {}) if path.is_file() else {}
    execute = config.get("execute") or {}
    mode = execute.get("execute_notebooks")
    if mode != "cache":
        where = f"sets execute_notebooks: {mode}" if mode is not None else "does not set execute_notebooks"
        raise FerlibError(
            f"{path} {where}; `ferlib book cache` fills the execution cache, which the build only reads "
            "with `execute_notebooks: cache` under `execute:`"
        )
    if execute.get("run_in_temp"):
        raise FerlibError("_config.yml sets execute.run_in_temp, which `ferlib book cache` does not support")
    cache = execute.get("cache") or ""
    return {
        "cache": Path(cache) if cache else repo / "_build" / ".jupyter_cache",
        "timeout": execute.get("timeout", 30),
        "allow_errors": bool(execute.get("allow_errors", False)),
    }


def reads_evidence(notebook) -> bool:
    """Whether a chapter's code loads other chapters' evidence (it must run after them)."""
    return any(cell.cell_type == "code" and "evidence.load(" in cell.source for cell in notebook.cells)


def left_to_build(notebook) -> bool:
    """Whether the notebook sets its own myst-nb execution mode (other than ``cache``)."""
    mode = notebook.metadata.get("mystnb", {}).get("execution_mode")
    return mode is not None and mode != "cache"


def _execute(source: str, timeout: int, allow_errors: bool, threads: int) -> tuple[float, str, str]:
    """Worker: execute ``source`` in its folder; ``(seconds, executed notebook as JSON, error text)``."""
    import nbformat
    from jupyter_cache.executors.utils import single_nb_execution

    from ferlib.runtime import environment_variables

    notebook = nbformat.read(source, as_version=4)
    with environment_variables(dict.fromkeys(THREAD_VARIABLES, str(threads))):  # the kernel inherits them
        result = single_nb_execution(notebook, cwd=str(Path(source).parent), timeout=timeout,
                                     allow_errors=allow_errors, meta_override=True)
    if result.err is not None:
        # The cause first (a cell timeout, say), then the traceback's tail with the failing cell.
        first_line = str(result.err).strip().partition("\n")[0]
        cause = f"{type(result.err).__name__}: {first_line}"
        return result.time, "", f"{cause}\n{(result.exc_string or '').strip()[-2000:]}".strip()
    return result.time, nbformat.writes(result.nb), ""


def fill_cache(
    repo: str | Path,
    chapters: list[str] | None = None,
    jobs: int = 2,
    threads: int | None = None,
    log=print,
) -> dict[str, float]:
    """Execute the chapters (default all) missing from the execution cache, ``jobs`` at a time.

    Each kernel gets ``threads`` threads (default: the machine's cores shared among the jobs).
    Returns ``{chapter: seconds}`` for the chapters executed and cached. Raises
    :class:`FerlibError` naming every chapter that failed, after caching the others.
    """
    import nbformat
    from jupyter_cache import get_cache
    from jupyter_cache.base import CacheBundleIn

    from ferlib.book.runner import chapter_sources, select_chapters

    if jobs < 1:
        raise FerlibError(f"--jobs must be at least 1, not {jobs}")
    if threads is not None and threads < 1:
        raise FerlibError(f"--threads must be at least 1, not {threads}")
    repo = Path(repo).resolve()
    settings = execution_settings(repo)
    threads = threads or max(1, (os.cpu_count() or 1) // jobs)
    sources = chapter_sources(repo)
    selected = select_chapters(sources, chapters)
    cache = get_cache(str(settings["cache"]))

    first, last = [], []
    for name in selected:
        notebook = nbformat.read(sources[name], as_version=4)
        if left_to_build(notebook):
            log(f"{name}: left to the build (its notebook sets its own execution mode)")
            continue
        try:
            cache.match_cache_notebook(notebook)
            log(f"{name}: already cached")
            continue
        except KeyError:
            pass
        (last if reads_evidence(notebook) else first).append(name)

    log(f"executing {len(first) + len(last)} chapter(s), {jobs} at a time, {threads} thread(s) each")
    done: dict[str, float] = {}
    failed: dict[str, str] = {}
    clock = time.perf_counter()
    with ProcessPoolExecutor(max_workers=jobs) as pool:
        for stage in (first, last):
            if failed and stage:  # only the second stage can meet earlier failures
                log(f"not executing {', '.join(stage)}: they read the evidence of chapters that failed")
                failed.update(dict.fromkeys(stage, "not executed: an earlier chapter failed"))
                break
            futures = {
                pool.submit(_execute, str(sources[name]), settings["timeout"], settings["allow_errors"], threads): name
                for name in stage
            }
            for future in as_completed(futures):
                name = futures[future]
                try:
                    seconds, executed, error = future.result()
                except Exception as exc:  # the worker itself died
                    seconds, executed, error = 0.0, "", f"{type(exc).__name__}: {exc}"
                if error:
                    failed[name] = error
                    log(f"{name}: FAILED after {seconds:.0f} s: {error}")
                    continue
                bundle = CacheBundleIn(nbformat.reads(executed, as_version=4), str(sources[name]),
                                       data={"execution_seconds": seconds})
                cache.cache_notebook_bundle(bundle, check_validity=False, overwrite=True)
                done[name] = seconds
                log(f"{name}: executed in {seconds:.0f} s and cached")
    log(f"{len(done)} chapter(s) cached in {time.perf_counter() - clock:.0f} s (wall)")
    if failed:
        raise FerlibError(f"{len(failed)} chapter(s) failed: {', '.join(failed)} (the others are cached)")
    return done
