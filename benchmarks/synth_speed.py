"""How fast SynthFER generates data on one CPU core.

    python benchmarks/synth_speed.py [--faces 4096] [--clips 512] [--image-size 48]

Generation goes through the public constructor with ``cache=False`` (sampling, rendering,
sensor effects, uint8 quantisation). Targets: >= 2,000 static 48x48 faces/s and >= 200
16-frame clips/s. Wall-clock rates suffer when other processes share the core, so the CPU time
of this process is reported too. To check that a speed-up changed no output byte, compare
``benchmarks/synth_fingerprint.py`` before and after.
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _hardware import hardware_line  # noqa: E402

from ferlib.data.synth import SynthFER  # noqa: E402


def measure(label: str, count: int, unit: str, **kwargs) -> tuple[float, float]:
    SynthFER(size=min(count, 64), cache=False, seed=99, **kwargs)  # warm-up: allocator, banks
    wall, cpu = time.perf_counter(), time.process_time()
    SynthFER(size=count, cache=False, seed=0, **kwargs)
    wall, cpu = time.perf_counter() - wall, time.process_time() - cpu
    print(
        f"{label:<30s} {count / wall:7.0f} {unit}/s wall {count / cpu:7.0f} {unit}/s cpu"
        f" ({count} in {wall:.2f} s)"
    )
    return count / wall, count / cpu


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--faces", type=int, default=4096)
    parser.add_argument("--clips", type=int, default=512)
    parser.add_argument("--image-size", type=int, default=48)
    args = parser.parse_args()
    torch.set_num_threads(1)
    size = args.image_size
    print(hardware_line())
    print(f"SynthFER generation speed, one core (torch threads = {torch.get_num_threads()}), {size}x{size}")
    static = measure("static, preset=default", args.faces, "faces", image_size=size)
    measure("static, preset=wild", args.faces, "faces", image_size=size, preset="wild")
    clips = measure("video-basic, 16 frames", args.clips, "clips", image_size=size, task="video-basic")
    measure("smile-dynamics, 16 frames", args.clips, "clips", image_size=size, task="smile-dynamics")
    ok = max(static) >= 2000 and max(clips) >= 200
    print("targets (2000 faces/s, 200 clips/s):", "met" if ok else "NOT met")


if __name__ == "__main__":
    main()
