"""Eager PyTorch vs ONNX Runtime (float) vs ONNX Runtime int8, on the CPU.

Run: ``python benchmarks/onnx_vs_eager.py [--models cnn_small,gru_rows] [--threads 2] [--train-size 600]``

Each model is trained for one epoch on SynthFER (so that int8 accuracy means something), exported
with :func:`ferlib.deploy.export.export_onnx`, quantised with static int8 (QDQ, calibrated on 256 training
images) and dynamic int8 (MatMul/Gemm only), and timed with the same number of threads:
median latency at batch 1 and throughput at batch 64. Accuracy is on a SynthFER test set.
Target from issue #8 (reported, not asserted): ONNX Runtime at least as fast as eager.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _hardware import hardware_line  # noqa: E402

import ferlib  # noqa: E402
from ferlib.data.synth import SynthFER  # noqa: E402
from ferlib.deploy.export import OnnxModel, compare_quantized, export_onnx, quantize_onnx  # noqa: E402
from ferlib.efficiency import latency, throughput  # noqa: E402


def ort_speed(session: OnnxModel, shape, runs: int) -> tuple[float, float]:
    one = np.zeros((1, *shape), np.float32)
    batch = np.zeros((64, *shape), np.float32)
    for _ in range(5):
        session(one)
    times = []
    for _ in range(runs):
        start = time.perf_counter()
        session(one)
        times.append((time.perf_counter() - start) * 1000)
    session(batch)
    batch_times = []
    for _ in range(5):
        start = time.perf_counter()
        session(batch)
        batch_times.append(time.perf_counter() - start)
    return statistics.median(times), 64 / statistics.median(batch_times)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--models", default="cnn_small,gru_rows")
    parser.add_argument("--threads", type=int, default=None)
    parser.add_argument("--runs", type=int, default=50)
    parser.add_argument("--train-size", type=int, default=600)
    parser.add_argument("--test-size", type=int, default=300)
    args = parser.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    print(hardware_line())
    train = SynthFER("train", size=args.train_size)
    test = SynthFER("test", size=args.test_size)
    shape = tuple(train[0][0].shape)
    print(f"{'model':<10} {'runtime':<14} {'median ms':>9} {'img/s @64':>10} {'accuracy':>9} {'MB':>6}")
    with tempfile.TemporaryDirectory() as tmp:
        for name in args.models.split(","):
            torch.manual_seed(0)
            model = ferlib.create_model(name)
            ferlib.fit(model, train, None, epochs=1, progress=False, device="cpu")
            model.eval()
            path = export_onnx(model, Path(tmp) / f"{name}.onnx", shape)
            static = quantize_onnx(path, Path(tmp) / f"{name}.int8.onnx", calibration=train)
            dynamic = quantize_onnx(path, Path(tmp) / f"{name}.dyn.onnx")
            eager_acc = ferlib.evaluate(model, test, device="cpu", n_bootstrap=0).accuracy
            lat = latency(model, shape, runs=args.runs)["median_ms"]
            tput = throughput(model, shape, 64, runs=5)
            size = sum(p.numel() * p.element_size() for p in model.parameters()) / 1e6
            print(f"{name:<10} {'eager':<14} {lat:>9.2f} {tput:>10.0f} {eager_acc:>9.3f} {size:>6.2f}")
            for label, file in (("ort float", path), ("ort int8", static), ("ort int8 dyn", dynamic)):
                session = OnnxModel(file)
                median, speed = ort_speed(session, shape, args.runs)
                accuracy = compare_quantized(path, file, test, runs=1)["accuracy_int8"]
                mb = file.stat().st_size / 1e6
                print(f"{name:<10} {label:<14} {median:>9.2f} {speed:>10.0f} {accuracy:>9.3f} {mb:>6.2f}", flush=True)


if __name__ == "__main__":
    main()
