"""``ferlib book cache``: chapters executed side by side into jupyter-book's cache, which the build then uses."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import nbformat
import pytest
from jupyter_cache import get_cache

from ferlib.book.cache import fill_cache
from ferlib.cli import main
from ferlib.errors import FerlibError
from tests.conftest import write_notebook


@pytest.fixture
def tiny_book(tmp_path) -> Path:
    """alpha writes a file that reader's `evidence.load` needs; beta prints its thread count; verdict is forced."""
    repo = tmp_path / "repo"
    (repo / "book").mkdir(parents=True)
    chapters = ("01_alpha", "02_beta", "03_reader", "04_verdict")
    (repo / "_toc.yml").write_text(
        "format: jb-book\nroot: book/intro\nchapters:\n" + "".join(f"  - file: book/{c}\n" for c in chapters)
    )
    (repo / "_config.yml").write_text("title: Tiny\nexecute:\n  execute_notebooks: cache\n  timeout: 120\n")
    (repo / "book" / "intro.md").write_text("# Intro\n")
    write_notebook(repo / "book" / "01_alpha.ipynb",
                   "import time\ntime.sleep(2)\nopen('alpha.txt', 'w').write('written by alpha')",
                   "import uuid\nprint('token', uuid.uuid4().hex)")
    write_notebook(repo / "book" / "02_beta.ipynb", "import os\nprint('threads', os.environ.get('OMP_NUM_THREADS'))")
    write_notebook(repo / "book" / "03_reader.ipynb",
                   "from types import SimpleNamespace\n"
                   "evidence = SimpleNamespace(load=lambda name: open(name).read())\n"
                   "print(evidence.load('alpha.txt'))")
    write_notebook(repo / "book" / "04_verdict.ipynb", "print('verdict')", mode="force")
    return repo


def _cached(repo: Path, name: str):
    """The cached notebook myst-nb would use for chapter ``name``, or None."""
    cache = get_cache(str(repo / "_build" / ".jupyter_cache"))
    try:
        record = cache.match_cache_notebook(nbformat.read(repo / "book" / f"{name}.ipynb", as_version=4))
    except KeyError:
        return None
    return cache.get_cache_bundle(record.pk).nb


def _text(notebook) -> str:
    return "".join(o.get("text", "") for cell in notebook.cells for o in cell.get("outputs", []))


def test_chapters_run_in_parallel_in_order_and_are_cached(tiny_book):
    log = []
    done = fill_cache(tiny_book, jobs=2, threads=1, log=log.append)
    assert set(done) == {"01_alpha", "02_beta", "03_reader"}
    # the reader ran after alpha (it read alpha's file); the forced verdict is left to the build
    assert "written by alpha" in _text(_cached(tiny_book, "03_reader"))
    assert "threads 1" in _text(_cached(tiny_book, "02_beta"))
    assert _cached(tiny_book, "04_verdict") is None
    assert any("04_verdict: left to the build" in line for line in log)
    # a second call finds everything cached and executes nothing
    log.clear()
    assert fill_cache(tiny_book, jobs=2, log=log.append) == {}
    assert sum("already cached" in line for line in log) == 3


def test_a_changed_chapter_is_executed_again(tiny_book):
    fill_cache(tiny_book, chapters=["02_beta"], threads=1, log=lambda _: None)
    write_notebook(tiny_book / "book" / "02_beta.ipynb", "print('changed')")
    assert fill_cache(tiny_book, chapters=["02_beta"], log=lambda _: None).keys() == {"02_beta"}
    assert "changed" in _text(_cached(tiny_book, "02_beta"))


def test_a_failing_chapter_is_named_and_the_others_are_cached(tiny_book):
    write_notebook(tiny_book / "book" / "01_alpha.ipynb", "raise RuntimeError('alpha broke')")
    log = []
    with pytest.raises(FerlibError, match=r"2 chapter\(s\) failed: 01_alpha, 03_reader"):
        fill_cache(tiny_book, jobs=2, log=log.append)
    assert any("alpha broke" in line for line in log)
    assert _cached(tiny_book, "02_beta") is not None  # kept
    assert _cached(tiny_book, "01_alpha") is None and _cached(tiny_book, "03_reader") is None


def test_a_cell_timeout_is_named_as_the_cause(tiny_book):
    (tiny_book / "_config.yml").write_text("title: Tiny\nexecute:\n  execute_notebooks: cache\n  timeout: 2\n")
    write_notebook(tiny_book / "book" / "02_beta.ipynb", "import time\ntime.sleep(60)")
    log = []
    with pytest.raises(FerlibError, match=r"1 chapter\(s\) failed: 02_beta"):
        fill_cache(tiny_book, chapters=["02_beta"], log=log.append)
    failure = next(line for line in log if line.startswith("02_beta: FAILED"))
    assert "CellTimeoutError" in failure.splitlines()[0] and "2 seconds" in failure.splitlines()[0]


@pytest.mark.parametrize(
    "config, options, message",
    [
        ("execute:\n  execute_notebooks: force\n", [], "sets execute_notebooks: force"),
        ("author: nobody\n", [], "does not set execute_notebooks"),
        ("execute:\n  execute_notebooks: cache\n", ["--threads", "0"], "--threads must be at least 1"),
        ("execute:\n  execute_notebooks: cache\n", ["--jobs", "0"], "--jobs must be at least 1"),
        ("execute:\n  execute_notebooks: cache\n", ["--chapters", "99_nope"], "unknown chapter 99_nope"),
    ],
)
def test_bad_settings_are_one_line_errors(tiny_book, capsys, config, options, message):
    (tiny_book / "_config.yml").write_text("title: Tiny\n" + config)
    assert main(["book", "cache", "--repo", str(tiny_book), *options]) != 0
    assert message in capsys.readouterr().err


@pytest.mark.slow
def test_the_build_uses_the_cached_outputs(tiny_book):
    fill_cache(tiny_book, jobs=2, log=lambda _: None)
    token = next(line for line in _text(_cached(tiny_book, "01_alpha")).splitlines() if line.startswith("token"))
    build = Path(sys.executable).parent / "jupyter-book"
    done = subprocess.run([str(build), "build", str(tiny_book)], capture_output=True, text=True)
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    assert token in (tiny_book / "_build" / "html" / "book" / "01_alpha.html").read_text()
