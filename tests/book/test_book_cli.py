"""``ferlib book run``: argument errors, execution order, recorded metadata, failures, --resume, the build."""

from __future__ import annotations

import json
from pathlib import Path

import nbformat
import pytest

from ferlib.book.runner import chapter_sources, select_chapters
from ferlib.cli import main
from ferlib.errors import FerlibError
from tests.conftest import write_notebook

REPO = Path(__file__).resolve().parents[2]

PARAMETERS_CELL = """import os

profile = os.environ.get("FERLIB_PROFILE", "quick")
device = os.environ.get("FERLIB_DEVICE", "auto")
seed = int(os.environ.get("FERLIB_SEED", "0"))"""


@pytest.fixture
def tiny_book(tmp_path) -> Path:
    """A book of two tiny chapters: alpha reads a file beside it and writes evidence; beta pins its device."""
    repo = tmp_path / "repo"
    (repo / "book").mkdir(parents=True)
    (repo / "_toc.yml").write_text(
        "format: jb-book\nroot: book/intro\nchapters:\n  - file: book/01_alpha\n  - file: book/02_beta\n"
        "  - file: book/notes\n"
    )
    (repo / "_config.yml").write_text("title: Tiny\nexecute:\n  execute_notebooks: force\n")
    (repo / "book" / "intro.md").write_text("# Intro\n")
    (repo / "book" / "notes.md").write_text("# Notes\n")
    (repo / "book" / "words.txt").write_text("relative paths work\n")
    write_notebook(
        repo / "book" / "01_alpha.ipynb",
        "print(open('words.txt').read())",
        "import json, pathlib\n"
        "evidence = pathlib.Path(os.environ['FERLIB_EVIDENCE_DIR'])\n"
        "(evidence / 'alpha.json').write_text(json.dumps({'profile': profile, 'seed': seed}))",
        parameters=PARAMETERS_CELL,
        mode="force",  # as the verdict chapter asks of jupyter-book
    )
    write_notebook(
        repo / "book" / "02_beta.ipynb",
        "assert seed != 13, 'unlucky seed'",
        parameters='import os\n\nprofile = os.environ.get("FERLIB_PROFILE", "quick")\ndevice = "cpu"  # pinned\n'
        'seed = int(os.environ.get("FERLIB_SEED", "0"))',
        mode="force",
    )
    return repo


def _run(repo: Path, out: Path, *options: str) -> int:
    return main(["book", "run", "--repo", str(repo), "--out", str(out), "--profile", "smoke", *options])


def test_chapters_are_the_toc_notebooks_in_order(tiny_book):
    sources = chapter_sources(tiny_book)
    assert list(sources) == ["01_alpha", "02_beta"]
    assert select_chapters(sources, ["02_beta", "01_alpha.ipynb"]) == ["01_alpha", "02_beta"]
    with pytest.raises(FerlibError, match="expected one of 01_alpha, 02_beta"):
        select_chapters(sources, ["03_gamma"])


@pytest.mark.parametrize(
    "options, message",
    [
        (["--chapters", "01_first_model,99_nope"], "unknown chapter 99_nope: expected one of 01_first_model, "),
        (["--profile", "huge"], "unknown profile 'huge': expected one of smoke, quick, full"),
        (["--dataset", "fer2013"], "dataset 'fer2013' needs --data-dir"),
        (["--dataset", "fer2013", "--data-dir", "/no/such/folder"], "--data-dir /no/such/folder is not a folder"),
        (["--dataset", "nope"], "unknown dataset 'nope'"),
    ],
)
def test_argument_errors_are_one_line(tmp_path, capsys, options, message):
    assert main(["book", "run", "--repo", str(REPO), "--out", str(tmp_path / "out"), *options]) == 2
    error = capsys.readouterr().err
    assert error.startswith("ferlib book: error: ") and message in error
    assert error.count("\n") == 1
    assert not (tmp_path / "out").exists()  # nothing started


def test_unavailable_device_is_an_error(tmp_path, capsys):
    assert main(["book", "run", "--repo", str(REPO), "--out", str(tmp_path / "out"), "--device", "tpu"]) == 2
    assert "ferlib book: error: unknown device 'tpu'" in capsys.readouterr().err


def test_help_has_examples(capsys):
    with pytest.raises(SystemExit):
        main(["book", "run", "--help"])
    assert "examples:\n  ferlib book run --profile full" in capsys.readouterr().out


def test_no_toc_is_an_error(tmp_path, capsys):
    assert main(["book", "run", "--repo", str(tmp_path), "--out", str(tmp_path / "out")]) == 2
    assert "no _toc.yml in" in capsys.readouterr().err


@pytest.mark.slow
def test_run_records_parameters_and_resume_skips(tiny_book, tmp_path, capsys):
    out = tmp_path / "out"
    assert _run(tiny_book, out, "--chapters", "02_beta,01_alpha", "--seed", "3", "--no-build") == 0
    lines = capsys.readouterr().out.splitlines()
    assert [line.split(":")[0] for line in lines] == ["[1/2] 01_alpha", "[2/2] 02_beta"]  # TOC order
    alpha = nbformat.read(out / "book" / "01_alpha.ipynb", as_version=4)
    record = alpha.metadata["ferlib"]
    assert record["parameters"] == {"profile": "smoke", "device": "auto", "seed": 3}
    assert {"device_name", "cpu_count", "torch"} <= set(record["hardware"])
    assert record["wall_time_s"] > 0 and record["started"]
    assert alpha.metadata["mystnb"]["execution_mode"] == "off"  # the build must not execute it again
    tags = [cell.metadata.get("tags", []) for cell in alpha.cells]
    assert tags[2] == ["injected-parameters"] and tags[3] == ["ferlib-run"]
    assert alpha.cells[3].source.startswith("Executed by `ferlib book run` on ")
    assert "profile=smoke" in alpha.cells[3].source
    assert "relative paths work" in alpha.cells[4].outputs[0]["text"]
    assert json.loads((out / "evidence" / "alpha.json").read_text()) == {"profile": "smoke", "seed": 3}
    beta = nbformat.read(out / "book" / "02_beta.ipynb", as_version=4)
    assert beta.metadata["ferlib"]["parameters"]["device"] == "cpu"  # the chapter's own choice is kept
    assert (out / "book" / "words.txt").exists() and (out / "book" / "notes.md").exists()

    stamp = (out / "book" / "01_alpha.ipynb").stat().st_mtime_ns
    assert _run(tiny_book, out, "--seed", "3", "--no-build", "--resume") == 0
    lines = capsys.readouterr().out.splitlines()
    assert all("skipped, already executed with these parameters" in line for line in lines) and len(lines) == 2
    assert (out / "book" / "01_alpha.ipynb").stat().st_mtime_ns == stamp

    assert _run(tiny_book, out, "--seed", "4", "--no-build", "--resume", "--chapters", "01_alpha") == 0
    assert "skipped" not in capsys.readouterr().out  # other parameters: executed again
    assert nbformat.read(out / "book" / "01_alpha.ipynb", as_version=4).metadata["ferlib"]["parameters"]["seed"] == 4


@pytest.mark.slow
def test_a_failing_chapter_stops_the_run_and_keeps_the_others(tiny_book, tmp_path, capsys):
    out = tmp_path / "out"
    assert _run(tiny_book, out, "--seed", "13") == 2
    captured = capsys.readouterr()
    partial = out / "book" / "02_beta.partial.ipynb"
    assert "ferlib book: error: chapter 02_beta failed in cell" in captured.err
    assert "AssertionError: unlucky seed" in captured.err and str(partial) in captured.err
    assert partial.exists() and not (out / "book" / "02_beta.ipynb").exists()
    assert "ferlib" in nbformat.read(out / "book" / "01_alpha.ipynb", as_version=4).metadata
    assert not (out / "_build").exists()  # no build after a failure


@pytest.mark.slow
def test_first_chapter_smoke_run_builds_the_site(tmp_path, capsys):
    from ferlib.book.sitecheck import check_static

    out = tmp_path / "out"
    options = ["--profile", "smoke", "--chapters", "01_first_model", "--device", "cpu"]
    assert main(["book", "run", "--repo", str(REPO), "--out", str(out), *options]) == 0
    printed = capsys.readouterr().out
    assert "[1/1] 01_first_model: " in printed and "built " in printed
    chapter = nbformat.read(out / "book" / "01_first_model.ipynb", as_version=4)
    record = chapter.metadata["ferlib"]
    assert record["parameters"] == {
        "profile": "smoke",
        "dataset": "synthfer",
        "data_dir": None,
        "device": "cpu",
        "seed": 0,
    }
    assert record["hardware"]["device"] == "cpu" and record["git_commit"]
    assert any(output for cell in chapter.cells if cell.cell_type == "code" for output in cell.outputs)
    toc = (out / "_toc.yml").read_text()
    assert "book/01_first_model" in toc and "03_static_cnns" not in toc
    assert 'execute_notebooks: "off"' in (out / "_config.yml").read_text().replace("'", '"')
    page = (out / "_build" / "html" / "book" / "01_first_model.html").read_text()
    assert "Executed by" in page and "profile=smoke" in page
    report = check_static(out / "_build" / "html")
    assert report.ok, report.problems


def test_find_repo_falls_back_to_ferlibs_checkout(tmp_path, monkeypatch):
    from ferlib.book.runner import find_repo

    monkeypatch.chdir(tmp_path)  # no _toc.yml here
    assert find_repo() == REPO
    with pytest.raises(FerlibError, match="no _toc.yml in"):
        find_repo(str(tmp_path))
