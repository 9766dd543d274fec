"""Inference speed of every static model on the CPU: throughput at batch 64 and 256, latency at batch 1.

Run: ``python benchmarks/inference_speed.py [--size 48] [--threads 2] [--runs 30] [--models cnn_small,...]
[--variants plain,optimized,jit] [--repeat 3]``

Throughput is the median over ``--batch-runs`` timed batches (images/s); latency the median and
95th percentile of ``--runs`` batch-1 forward passes, in eval mode without gradients, after
warm-up (:mod:`ferlib.efficiency`). Each model is timed as built (``plain``) and as
:func:`ferlib.deploy.optimize.optimize_for_inference` returns it: ``optimized`` (eager PyTorch,
batch norm folded, channels-last convolutions; what ``ferlib predict`` uses on the CPU) and,
when asked for, ``jit`` (TorchScript trace + freeze + optimize_for_inference; deprecated by
torch). ``--repeat`` times the variants of a model in turn that many times (reversing the
order every other round) and prints the median of the rounds, so that a busy machine affects
them alike. Targets from issue #8 (reported, not asserted): cnn_small >= 1,000 faces/s at batch
256 and <= 2 ms median latency at batch 1.
"""

from __future__ import annotations

import argparse
import statistics
import sys
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _hardware import hardware_line  # noqa: E402

from ferlib.deploy.optimize import optimize_for_inference  # noqa: E402
from ferlib.efficiency import latency, throughput  # noqa: E402
from ferlib.models import create_model, list_models  # noqa: E402

VARIANTS = ("plain", "optimized", "jit")


def variants_of(model: torch.nn.Module, shape, wanted) -> dict[str, torch.nn.Module]:
    built = {}
    for variant in wanted:
        try:
            if variant == "plain":
                built[variant] = model
            else:
                method = "eager" if variant == "optimized" else "jit"
                built[variant] = optimize_for_inference(model, torch.rand(4, *shape), method=method)
        except ValueError as error:  # the check refused it: report, time the others
            print(f"  ({getattr(model, 'ferlib_name', '?')} {variant}: {error})")
    return built


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--size", type=int, default=48)
    parser.add_argument("--channels", type=int, default=1)
    parser.add_argument("--threads", type=int, default=None, help="torch threads (default: torch's)")
    parser.add_argument("--runs", type=int, default=30)
    parser.add_argument("--batch-runs", type=int, default=3)
    parser.add_argument("--models", default=None, help="comma-separated names (default: every static model)")
    parser.add_argument("--variants", default="plain,optimized", help=f"comma-separated, of {', '.join(VARIANTS)}")
    parser.add_argument("--repeat", type=int, default=1, help="rounds of timing, interleaved; medians printed")
    args = parser.parse_args()
    wanted = args.variants.split(",")
    if set(wanted) - set(VARIANTS):
        parser.error(f"--variants: expected names from {', '.join(VARIANTS)}, got {args.variants}")
    if args.threads:
        torch.set_num_threads(args.threads)
    names = args.models.split(",") if args.models else list_models(kind="static")
    shape = (args.channels, args.size, args.size)
    print(hardware_line())
    print(
        f"input {list(shape)}; latency over {args.runs} runs; throughput median of {args.batch_runs} batches; "
        f"median of {args.repeat} interleaved round(s)"
    )
    print(f"{'model':<14} {'variant':<10} {'img/s @64':>10} {'img/s @256':>11} {'median ms':>10} {'p95 ms':>8}")
    for name in names:
        torch.manual_seed(0)
        model = create_model(name, in_channels=args.channels).eval()
        built = variants_of(model, shape, wanted)
        rounds: dict[str, list[tuple[float, float, float, float]]] = {variant: [] for variant in built}
        for index in range(args.repeat):
            for variant in list(built) if index % 2 == 0 else list(built)[::-1]:
                timed = built[variant]
                lat = latency(timed, shape, runs=args.runs, warmup=5)
                t64 = throughput(timed, shape, 64, runs=args.batch_runs)
                t256 = throughput(timed, shape, 256, runs=args.batch_runs)
                rounds[variant].append((t64, t256, lat["median_ms"], lat["p95_ms"]))
        for variant, values in rounds.items():
            t64, t256, median, p95 = (statistics.median(column) for column in zip(*values, strict=True))
            print(f"{name:<14} {variant:<10} {t64:>10.0f} {t256:>11.0f} {median:>10.2f} {p95:>8.2f}", flush=True)


if __name__ == "__main__":
    main()
