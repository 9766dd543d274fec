"""Throughput of ``ferlib.fit`` against a plain hand-written PyTorch loop (same model, data, optimiser).

Prints samples/s of each and the ratio fit / plain (the Foundation target: at least 0.95).
Runs alternate between the two loops and the median of several repeats is reported, since
shared machines are noisy.

    python benchmarks/fit_throughput.py [--model cnn_small] [--samples 4096] [--repeats 5] [--device cpu]
"""

from __future__ import annotations

import argparse
import platform
import statistics
import time

import torch
from torch import nn
from torch.utils.data import DataLoader, TensorDataset

import ferlib


def plain_loop(model: nn.Module, data: TensorDataset, epochs: int, batch_size: int, device: torch.device) -> float:
    """The loop a reader would write by hand: AdamW, per-step cosine schedule, cross-entropy."""
    loader = DataLoader(data, batch_size=batch_size, shuffle=True)
    optimizer = torch.optim.AdamW(model.parameters(), lr=1e-3, weight_decay=1e-4)
    scheduler = torch.optim.lr_scheduler.CosineAnnealingLR(optimizer, T_max=epochs * len(loader))
    criterion = nn.CrossEntropyLoss()
    model.to(device).train()
    seen, start = 0, time.perf_counter()
    for _ in range(epochs):
        for x, y in loader:
            x, y = x.to(device), y.to(device)
            loss = criterion(model(x), y)
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            optimizer.step()
            scheduler.step()
            seen += len(y)
    if device.type == "cuda":
        torch.cuda.synchronize()
    return seen / (time.perf_counter() - start)


def fit_loop(model: nn.Module, data: TensorDataset, epochs: int, batch_size: int, device: torch.device) -> float:
    start = time.perf_counter()
    ferlib.fit(
        model, data, epochs=epochs, batch_size=batch_size, lr=1e-3, device=device, progress=False, mixed_precision="no"
    )
    if device.type == "cuda":
        torch.cuda.synchronize()
    return epochs * len(data) / (time.perf_counter() - start)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", default="cnn_small")
    parser.add_argument("--samples", type=int, default=4096)
    parser.add_argument("--epochs", type=int, default=2)
    parser.add_argument("--batch-size", type=int, default=64)
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--device", default="auto")
    args = parser.parse_args()

    device = ferlib.resolve_device(args.device)
    generator = torch.Generator().manual_seed(0)
    data = TensorDataset(
        torch.rand(args.samples, 1, 48, 48, generator=generator),
        torch.randint(0, 7, (args.samples,), generator=generator),
    )
    print(
        f"hardware: {platform.processor() or platform.machine()}, {torch.get_num_threads()} torch threads, "
        f"device {ferlib.runtime.device_name(device)}; torch {torch.__version__}"
    )
    print(f"model {args.model}, {args.samples} samples 1x48x48, batch {args.batch_size}, {args.epochs} epochs/run")
    # Warm-up both paths once (allocator, kernels).
    plain_loop(ferlib.create_model(args.model), data, 1, args.batch_size, device)
    fit_loop(ferlib.create_model(args.model), data, 1, args.batch_size, device)
    plain, fitted = [], []
    for _ in range(args.repeats):
        torch.manual_seed(0)
        plain.append(plain_loop(ferlib.create_model(args.model), data, args.epochs, args.batch_size, device))
        torch.manual_seed(0)
        fitted.append(fit_loop(ferlib.create_model(args.model), data, args.epochs, args.batch_size, device))
    ratios = [f / p for f, p in zip(fitted, plain, strict=True)]
    for label, values in (("plain loop", plain), ("ferlib.fit", fitted)):
        runs = ", ".join(f"{v:.0f}" for v in values)
        print(f"{label} : median {statistics.median(values):8.1f} samples/s  (runs: {runs})")
    print(
        f"ratio fit/plain: median {statistics.median(ratios):.3f} (per pair: {', '.join(f'{r:.3f}' for r in ratios)})"
    )


if __name__ == "__main__":
    main()
