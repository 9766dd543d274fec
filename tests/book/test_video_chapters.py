"""The sequence chapters run unchanged on a real clip folder (``videofolder``), not only on SynthFER."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from ferlib.data.synth import export_synthfer

BOOK = Path(__file__).resolve().parents[2] / "book"


@pytest.fixture(scope="module")
def clip_folder(tmp_path_factory) -> Path:
    root = tmp_path_factory.mktemp("clips")
    for split, size in (("train", 56), ("test", 28)):
        export_synthfer(root, task="video-basic", split=split, size=size, frames=6, image_size=24, cache=False)
    return root


@pytest.mark.slow
@pytest.mark.parametrize("chapter", ["05_rnns", "06_video_models"])
def test_chapter_runs_on_a_video_folder(chapter, clip_folder, tmp_path):
    out = tmp_path / f"{chapter}.ipynb"
    env = {**os.environ, "FERLIB_PROFILE": "smoke", "FERLIB_DATASET": "videofolder",
           "FERLIB_DATA_DIR": str(clip_folder), "FERLIB_CACHE": str(tmp_path / "cache")}
    command = [sys.executable, "-m", "papermill", "-k", "python3", "--cwd", str(BOOK),
               str(BOOK / f"{chapter}.ipynb"), str(out)]
    run = subprocess.run(command, env=env, capture_output=True, text=True, timeout=600)
    assert run.returncode == 0, run.stderr[-3000:]
    executed = json.loads(out.read_text())
    errors = [o for c in executed["cells"] for o in c.get("outputs", []) if o.get("output_type") == "error"]
    assert not errors
    text = "".join("".join(o.get("text", "")) for c in executed["cells"] for o in c.get("outputs", []))
    # The chapter read the folder's 28 test clips (SynthFER's smoke split has 32).
    marker = "/ 28 clips of shape" if chapter == "05_rnns" else "videofolder"
    assert marker in text
