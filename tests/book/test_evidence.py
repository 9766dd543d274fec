"""Evidence records: what chapters write and the verdict reads, and the statistics it uses."""

from __future__ import annotations

import json
import math

import nbformat
import numpy as np
import pandas as pd
import pytest

from ferlib.book import evidence
from ferlib.errors import FerlibError


@pytest.fixture
def store(tmp_path, monkeypatch):
    monkeypatch.setenv("FERLIB_EVIDENCE_DIR", str(tmp_path / "evidence"))
    return tmp_path / "evidence"


def test_record_and_load_round_trip(store):
    runs = pd.DataFrame({"model": ["a", "b"], "seed": [0, 0], "accuracy": [0.5, np.float32(0.75)]})
    indexed = runs.set_index("model")
    path = evidence.record("05_rnns", profile="quick", dataset="synthfer", runs=runs, indexed=indexed,
                           decay={"RNN": 1e-14, "LSTM": np.float64(4e-13)}, n=np.int64(3), missing=float("nan"),
                           lengths=(20, 60), flag=np.bool_(True))
    assert path == store / "quick-synthfer" / "05_rnns.json"
    loaded = evidence.load("05_rnns", profile="quick", dataset="synthfer", run_missing=False)
    pd.testing.assert_frame_equal(loaded["runs"], runs.astype({"accuracy": float}))
    assert list(loaded["indexed"].columns) == ["model", "seed", "accuracy"]  # the index becomes a column
    assert loaded["decay"] == {"RNN": 1e-14, "LSTM": 4e-13}
    assert loaded["n"] == 3 and loaded["lengths"] == [20, 60] and loaded["flag"] is True
    assert math.isnan(loaded["missing"])
    assert loaded.environment["torch"] and loaded.recorded_at
    assert set(loaded) == {"runs", "indexed", "decay", "n", "missing", "lengths", "flag"}
    with pytest.raises(KeyError, match="recorded no 'nope'"):
        loaded["nope"]


def test_profiles_and_datasets_are_kept_apart(store):
    evidence.record("x", profile="smoke", dataset="synthfer", value=1)
    evidence.record("x", profile="quick", dataset="synthfer", value=2)
    assert evidence.load("x", profile="smoke", dataset="synthfer", run_missing=False)["value"] == 1
    assert evidence.load("x", profile="quick", dataset="synthfer", run_missing=False)["value"] == 2
    with pytest.raises(FerlibError, match="no evidence for chapter 'x' \\(quick profile, fer2013\\)"):
        evidence.load("x", profile="quick", dataset="fer2013", run_missing=False)


def test_unrecordable_and_corrupt_values_are_named(store):
    with pytest.raises(TypeError, match="cannot record a value of type object"):
        evidence.record("x", profile="quick", dataset="synthfer", thing=object())
    path = evidence.evidence_path("y", profile="quick", dataset="synthfer")
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("{not json")
    with pytest.raises(FerlibError, match="y.json is not a readable ferlib evidence file"):
        evidence.load("y", profile="quick", dataset="synthfer")


def test_default_directory_is_beside_the_book(tmp_path, monkeypatch):
    monkeypatch.delenv("FERLIB_EVIDENCE_DIR", raising=False)
    (tmp_path / "_toc.yml").write_text("root: intro\n")
    (tmp_path / "book").mkdir()
    monkeypatch.chdir(tmp_path / "book")
    assert evidence.evidence_dir() == tmp_path / "_build" / "evidence"


@pytest.mark.slow
def test_missing_evidence_executes_the_chapter(tmp_path, store):
    book = tmp_path / "book"
    book.mkdir()
    notebook = nbformat.v4.new_notebook(metadata={"kernelspec": {"name": "python3", "language": "python",
                                                                  "display_name": "Python 3"}})
    parameters = nbformat.v4.new_code_cell('profile = "quick"\ndataset = "synthfer"')
    parameters.metadata["tags"] = ["parameters"]
    notebook.cells = [parameters, nbformat.v4.new_code_cell(
        "from ferlib.book import evidence\n"
        "evidence.record('99_toy', profile=profile, dataset=dataset, answer=6 * 7)"
    )]
    nbformat.write(notebook, book / "99_toy.ipynb")
    with pytest.raises(FerlibError, match="no evidence for chapter '99_toy'.*ferlib book run --chapters 99_toy"):
        evidence.load("99_toy", profile="smoke", dataset="toy", book_dir=book)  # never executes unless asked
    assert evidence.missing(["99_toy"], profile="smoke", dataset="toy") == ["99_toy"]
    loaded = evidence.load("99_toy", profile="smoke", dataset="toy", book_dir=book, run_missing=True)
    assert evidence.missing(["99_toy"], profile="smoke", dataset={"99_toy": "toy"}) == []
    assert loaded["answer"] == 42 and loaded.profile == "smoke"
    assert json.loads(loaded.path.read_text())["dataset"] == "toy"


def test_missing_notebook_says_how_to_make_the_evidence(store, tmp_path):
    with pytest.raises(FerlibError, match="ferlib book run --chapters 42_none"):
        evidence.load("42_none", profile="quick", dataset="synthfer", book_dir=tmp_path, run_missing=True)


def test_difference_and_judge():
    welch = evidence.difference([0.80, 0.82, 0.84], [0.70, 0.71, 0.72])
    assert welch.low > 0 and evidence.judge(welch) == "supported"
    assert evidence.judge(evidence.difference([0.70, 0.71, 0.72], [0.80, 0.82, 0.84])) == "contradicted"
    overlap = evidence.difference([0.70, 0.80], [0.72, 0.78])
    assert overlap.low < 0 < overlap.high and evidence.judge(overlap) == "inconclusive"
    single = evidence.difference([0.9], [0.7])
    assert math.isnan(single.low) and evidence.judge(single) == "inconclusive" and "no interval" in str(single)
    pooled = evidence.difference([0.9], [0.7], noise=(0.01, 10))
    assert pooled.low > 0 and pooled.method.startswith("t with")
    # the pooled spread is used even where Welch could be: two seeds a side give Welch 1-2 df
    tight = evidence.difference([0.60, 0.64], [0.50, 0.52], noise=(0.02, 20))
    loose = evidence.difference([0.60, 0.64], [0.50, 0.52])
    assert tight.method.startswith("t with") and tight.high - tight.low < (loose.high - loose.low) / 2
    assert evidence.judge(pooled, margin=0.25) == "inconclusive"
    with pytest.raises(ValueError, match="at least one value"):
        evidence.difference([], [0.5])


def test_seed_noise_ignores_single_runs():
    runs = pd.DataFrame({"model": ["a", "a", "a", "b"], "accuracy": [0.5, 0.6, 0.7, 0.1]})
    sd, dof = evidence.seed_noise(runs)
    assert dof == 2 and sd == pytest.approx(0.1)
    assert evidence.seed_noise(runs[runs.model == "b"]) == (pytest.approx(float("nan"), nan_ok=True), 0)


def test_a_chapter_opened_alone_says_where_the_book_is(store, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)  # no _toc.yml here or above: one notebook downloaded alone, as in Colab
    with pytest.raises(FerlibError, match="no _toc.yml at or above .*clone the book's repository"):
        evidence.load("03_static_cnns", profile="quick", dataset="synthfer", run_missing=True)
    with pytest.raises(FerlibError, match="ferlib book run --chapters 03_static_cnns.*run_missing=True"):
        evidence.load("03_static_cnns", profile="quick", dataset="synthfer")
