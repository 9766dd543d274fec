"""Parameters, FLOPs and CPU latency of every registered static model.

Run: ``python benchmarks/model_cost.py [--size 48] [--channels 1] [--runs 30] [--threads 2]``

Latency is the median wall time of a forward pass at batch 1 in eval mode without
gradients, after warm-up runs, with ``torch.set_num_threads(threads)``. FLOPs are counted by
:func:`ferlib.efficiency.count_flops` (a multiply-add is 2 FLOPs).
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _hardware import hardware_line  # noqa: E402

from ferlib.efficiency import count_flops, count_parameters, latency_ms  # noqa: E402
from ferlib.models import create_model, list_models  # noqa: E402


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--size", type=int, default=48, help="input height and width (pixels)")
    parser.add_argument("--channels", type=int, default=1)
    parser.add_argument("--runs", type=int, default=30)
    parser.add_argument("--warmup", type=int, default=5)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--models", default="*", help="glob of model names")
    args = parser.parse_args()

    torch.set_num_threads(args.threads)
    torch.manual_seed(0)
    print(f"# hardware: {hardware_line()}; input 1x{args.channels}x{args.size}x{args.size}")
    print(f"| {'model':<14} | {'params':>11} | {'MFLOPs':>9} | {'latency ms':>10} |")
    print(f"|{'-' * 16}|{'-' * 12}:|{'-' * 10}:|{'-' * 11}:|")
    shape = (args.channels, args.size, args.size)
    for name in list_models(args.models, kind="static"):
        model = create_model(name, in_channels=args.channels).eval()
        flops = count_flops(model, shape)
        latency = latency_ms(model, shape, runs=args.runs, warmup=args.warmup)
        print(f"| {name:<14} | {count_parameters(model):>11,} | {flops / 1e6:>9.1f} | {latency:>10.2f} |")


if __name__ == "__main__":
    main()
