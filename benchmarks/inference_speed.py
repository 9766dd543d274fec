"""Inference speed of every static model on the CPU: throughput at batch 64 and 256, latency at batch 1.

Run: ``python benchmarks/inference_speed.py [--size 48] [--threads 2] [--runs 30] [--models cnn_small,...]``

Throughput is the median over ``--batch-runs`` timed batches (images/s); latency the median and
95th percentile of ``--runs`` batch-1 forward passes, in eval mode without gradients, after
warm-up (:mod:`ferlib.efficiency`). Targets from issue #8 (reported, not asserted):
cnn_small >= 1,000 faces/s at batch 256 and <= 2 ms median latency at batch 1.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _hardware import hardware_line  # noqa: E402

from ferlib.efficiency import latency, throughput  # noqa: E402
from ferlib.models import create_model, list_models  # noqa: E402


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--size", type=int, default=48)
    parser.add_argument("--channels", type=int, default=1)
    parser.add_argument("--threads", type=int, default=None, help="torch threads (default: torch's)")
    parser.add_argument("--runs", type=int, default=30)
    parser.add_argument("--batch-runs", type=int, default=3)
    parser.add_argument("--models", default=None, help="comma-separated names (default: every static model)")
    args = parser.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    names = args.models.split(",") if args.models else list_models(kind="static")
    shape = (args.channels, args.size, args.size)
    print(hardware_line())
    print(f"input {list(shape)}; latency over {args.runs} runs; throughput median of {args.batch_runs} batches")
    print(f"{'model':<14} {'img/s @64':>10} {'img/s @256':>11} {'median ms':>10} {'p95 ms':>8}")
    for name in names:
        torch.manual_seed(0)
        model = create_model(name, in_channels=args.channels).eval()
        lat = latency(model, shape, runs=args.runs, warmup=5)
        t64 = throughput(model, shape, 64, runs=args.batch_runs)
        t256 = throughput(model, shape, 256, runs=args.batch_runs)
        print(f"{name:<14} {t64:>10.0f} {t256:>11.0f} {lat['median_ms']:>10.2f} {lat['p95_ms']:>8.2f}", flush=True)


if __name__ == "__main__":
    main()
