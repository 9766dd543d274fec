"""How long ``import ferlib`` takes, and what it loads.

    python benchmarks/import_time.py [--runs 7]

Each run is a fresh interpreter (``python -c``), timed from inside it, so Python's own start-up
is not counted. Target: ``import ferlib`` under 1.5 s on a 2-core CPU, without OpenCV, ONNX or
the real-data loaders. For comparison the script also times the first use of ``ferlib.fit``
(which imports PyTorch and the training engine) and of ``torch`` alone, in the same run, so the
figures can be read as ratios on a noisy machine.
"""

from __future__ import annotations

import argparse
import json
import statistics
import subprocess
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _hardware import hardware_line  # noqa: E402

CASES = {
    "import ferlib": "import ferlib",
    "import ferlib; ferlib.fit": "import ferlib\nferlib.fit",
    "import torch": "import torch",
}
WATCH = ("cv2", "onnx", "onnxruntime", "torch", "ferlib.data.real", "ferlib.engine.train")


def one_run(code: str) -> tuple[float, list[str]]:
    script = (
        "import json, sys, time\nstart = time.perf_counter()\n"
        f"{code}\n"
        "print(json.dumps([time.perf_counter() - start, sorted(sys.modules)]))"
    )
    out = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, check=True).stdout
    seconds, modules = json.loads(out.splitlines()[-1])
    return seconds, [name for name in WATCH if name in modules]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=7)
    args = parser.parse_args()
    print(hardware_line())
    for label, code in CASES.items():
        times, loaded = [], []
        for _ in range(args.runs):
            seconds, loaded = one_run(code)
            times.append(seconds)
        print(
            f"{label:28s} median {statistics.median(times):6.3f} s (min {min(times):.3f}, max {max(times):.3f}, "
            f"{args.runs} runs); loads: {', '.join(loaded) or 'none of ' + ', '.join(WATCH)}"
        )


if __name__ == "__main__":
    main()
