"""The same ``fit`` under torchrun: two CPU processes (gloo), DDP through Accelerate."""

import json
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

pytest.importorskip("accelerate")

SCRIPT = textwrap.dedent(
    """
    import json, os, sys
    sys.path.insert(0, {root!r})
    from tests.conftest import register_test_datasets
    register_test_datasets()
    from ferlib.cli import main
    code = main(["train", "--dataset", "test-blobs", "--profile", "smoke", "--epochs", "2", "--batch-size", "16",
                 "--device", "cpu", "--no-progress", "--out", {out!r}, "--results", {results!r}])
    from accelerate import PartialState
    state = PartialState()
    with open(os.path.join({out!r}, f"rank{{state.process_index}}.json"), "w") as f:
        json.dump({{"world": state.num_processes, "code": code}}, f)
    """
)


@pytest.mark.slow
def test_fit_under_torchrun_with_two_cpu_processes(tmp_path):
    out = tmp_path / "run"
    out.mkdir()
    script = tmp_path / "train_ddp.py"
    root = str(Path(__file__).resolve().parents[2])
    script.write_text(SCRIPT.format(root=root, out=str(out), results=str(tmp_path / "r.sqlite")))
    command = [
        sys.executable,
        "-m",
        "torch.distributed.run",
        "--nproc_per_node",
        "2",
        "--master_port",
        "29517",
        str(script),
    ]
    result = subprocess.run(
        command, capture_output=True, text=True, timeout=300, env={**__import__("os").environ, "OMP_NUM_THREADS": "1"}
    )
    assert result.returncode == 0, result.stderr[-3000:]
    ranks = [json.loads((out / f"rank{i}.json").read_text()) for i in (0, 1)]
    assert all(r["world"] == 2 and r["code"] == 0 for r in ranks)
    metrics = json.loads((out / "metrics.json").read_text())
    assert len(metrics) and (out / "best.ckpt").exists()
