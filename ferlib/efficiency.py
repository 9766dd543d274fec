"""What a model costs: parameters, FLOPs, latency, throughput, memory and training time.

FLOPs are counted with :class:`torch.utils.flop_counter.FlopCounterMode`, which counts a
multiply-add as **2 FLOPs** (a ``Linear(in, out)`` costs ``2 * in * out`` per sample). Papers
often quote multiply-accumulates (MACs, "FLOPs" in many tables): divide by 2 to compare.
Only matrix products and convolutions are counted, not activations, normalisation or
additions. The fused LSTM/GRU kernels are invisible to the counter on some backends; their
matrix products are then added analytically, so recurrent models are counted too.

Timing functions run the model in eval mode without gradients on its own device (CUDA is
synchronised around each timed call) and put it back as it was. :func:`profile_model`
gathers every measure for one registered model, static (``[C, H, W]``) or video
(``[T, C, H, W]``), in one dict.

A faster copy of a model for CPU inference (batch norm folded, channels-last weights) is
deployment, not measurement: :func:`ferlib.deploy.optimize.optimize_for_inference`.
"""

from __future__ import annotations

import statistics
import time
from collections.abc import Sequence

import numpy as np
import torch
from torch import nn
from torch.utils.flop_counter import FlopCounterMode

_GATES = {nn.LSTM: 4, nn.GRU: 3, nn.RNN: 1}


def count_parameters(model: nn.Module, trainable_only: bool = False) -> int:
    """The number of parameters of ``model`` (only those with ``requires_grad`` if ``trainable_only``).

    Examples
    --------
    >>> count_parameters(nn.Linear(10, 5))
    55
    """
    return sum(p.numel() for p in model.parameters() if p.requires_grad or not trainable_only)


def _recurrent_flops(module: nn.RNNBase, steps: int, batch: int) -> int:
    """Matrix-product FLOPs of one pass of an LSTM/GRU/RNN over ``steps`` time steps."""
    gates = next(count for kind, count in _GATES.items() if isinstance(module, kind))
    directions = 2 if module.bidirectional else 1
    hidden = module.hidden_size
    output = module.proj_size or hidden
    flops = 0
    for layer in range(module.num_layers):
        inputs = module.input_size if layer == 0 else output * directions
        per_step = 2 * gates * hidden * (inputs + output)
        if module.proj_size:
            per_step += 2 * hidden * module.proj_size
        flops += directions * steps * per_step
    return batch * flops


def count_flops(model: nn.Module, input_shape: Sequence[int]) -> int:
    """FLOPs of one forward pass of ``model`` on one sample (batch 1), multiply-add = 2.

    Parameters
    ----------
    model : any module; it is run in eval mode without gradients, then put back.
    input_shape : the shape of one sample, without the batch dimension, e.g. ``(1, 48, 48)``.

    Examples
    --------
    >>> count_flops(nn.Linear(10, 5), (10,))
    100
    """
    parameter = next(model.parameters(), None)
    x = torch.zeros(1, *input_shape, device=parameter.device if parameter is not None else None)
    extra = 0
    counter = FlopCounterMode(display=False)

    def before(module, args):
        module._ferlib_flops_before = counter.get_total_flops()

    def after(module, args, output):
        nonlocal extra
        if counter.get_total_flops() == module._ferlib_flops_before:  # the fused kernel was not counted
            sequence = args[0]
            if isinstance(sequence, nn.utils.rnn.PackedSequence):
                steps, batch = len(sequence.batch_sizes), int(sequence.batch_sizes[0])
            else:
                steps_axis = 1 if module.batch_first else 0
                steps = sequence.shape[steps_axis] if sequence.dim() == 3 else sequence.shape[0]
                batch = sequence.shape[1 - steps_axis] if sequence.dim() == 3 else 1
            extra += _recurrent_flops(module, steps, batch)
        del module._ferlib_flops_before

    handles = []
    for module in model.modules():
        if isinstance(module, nn.RNNBase):
            handles += [module.register_forward_pre_hook(before), module.register_forward_hook(after)]
    was_training = model.training
    model.eval()
    try:
        with torch.no_grad(), counter:
            model(x)
    finally:
        model.train(was_training)
        for handle in handles:
            handle.remove()
    return int(counter.get_total_flops() + extra)


def model_device(model: nn.Module) -> torch.device:
    """The device of ``model``'s first parameter (the CPU for a model without parameters)."""
    parameter = next(model.parameters(), None)
    return parameter.device if parameter is not None else torch.device("cpu")


def _sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def _timed_runs(model: nn.Module, x: torch.Tensor, runs: int, warmup: int) -> list[float]:
    """Wall times in milliseconds of ``runs`` forward passes on ``x`` (after ``warmup`` passes)."""
    if runs < 1 or warmup < 0:
        raise ValueError(f"need runs >= 1 and warmup >= 0, got runs={runs}, warmup={warmup}")
    device = x.device
    was_training = model.training
    model.eval()
    times = []
    try:
        with torch.inference_mode():
            for _ in range(warmup):
                model(x)
            for _ in range(runs):
                _sync(device)
                start = time.perf_counter()
                model(x)
                _sync(device)
                times.append((time.perf_counter() - start) * 1000.0)
    finally:
        model.train(was_training)
    return times


def latency(
    model: nn.Module,
    input_shape: Sequence[int],
    runs: int = 30,
    warmup: int = 5,
    device: str | torch.device | None = None,
) -> dict[str, float]:
    """Latency of one forward pass at batch 1: ``{"median_ms", "p95_ms", "mean_ms"}``.

    ``input_shape`` is one sample without the batch axis; ``device=None`` keeps the model where
    it is (otherwise the model is moved there).

    Examples
    --------
    >>> stats = latency(nn.Linear(10, 5), (10,), runs=5, warmup=1)
    >>> sorted(stats)
    ['mean_ms', 'median_ms', 'p95_ms']
    """
    if device is not None:
        model = model.to(device)
    x = torch.zeros(1, *input_shape, device=model_device(model))
    times = _timed_runs(model, x, runs, warmup)
    return {
        "median_ms": float(statistics.median(times)),
        "p95_ms": float(np.percentile(times, 95)),
        "mean_ms": float(np.mean(times)),
    }


def latency_ms(model: nn.Module, input_shape: Sequence[int], runs: int = 20, warmup: int = 3) -> float:
    """Median wall time in milliseconds of one forward pass at batch 1 (``input_shape`` without batch).

    The model runs in eval mode on its own device, without gradients, and is put back as it was.
    """
    return latency(model, input_shape, runs=runs, warmup=warmup)["median_ms"]


class _ImageOnly(nn.Module):
    """A landmark-reading video model called with clips only: it gets neutral (all-zero)
    landmarks of the right shape, so that its FLOPs and latency can be measured like any model's."""

    def __init__(self, model: nn.Module):
        super().__init__()
        self.model = model

    def forward(self, x):
        landmarks = x.new_zeros(x.shape[0], x.shape[1], self.model.num_landmarks, 2)
        return self.model(x, landmarks=landmarks)


def model_cost(model: nn.Module, input_shape: Sequence[int], latency_runs: int = 20) -> dict:
    """``parameters``, ``flops`` and median batch-1 ``latency_ms`` of ``model`` on inputs of
    ``input_shape`` (one sample), on the model's device: what every comparison and run record keeps.
    A model that reads landmarks besides the clip is measured with neutral landmarks."""
    timed = _ImageOnly(model) if getattr(model, "uses_landmarks", False) else model
    return {
        "parameters": count_parameters(model),
        "flops": count_flops(timed, input_shape),
        "latency_ms": latency_ms(timed, input_shape, runs=latency_runs),
    }


def throughput(
    model: nn.Module,
    input_shape: Sequence[int],
    batch_size: int = 64,
    runs: int = 5,
    warmup: int = 1,
    device: str | torch.device | None = None,
) -> float:
    """Samples per second of inference at ``batch_size`` (median over ``runs`` batches).

    Examples
    --------
    >>> throughput(nn.Linear(10, 5), (10,), batch_size=8, runs=2) > 0
    True
    """
    if device is not None:
        model = model.to(device)
    x = torch.zeros(batch_size, *input_shape, device=model_device(model))
    times = _timed_runs(model, x, runs, warmup)
    return float(batch_size / (statistics.median(times) / 1000.0))


def current_rss_bytes() -> int | None:
    """The process's resident set size now, in bytes (``/proc/self/statm``, else psutil), or None."""
    try:
        import os

        with open("/proc/self/statm") as statm:
            return int(statm.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")
    except (OSError, ValueError, AttributeError):
        pass
    try:
        import psutil

        return int(psutil.Process().memory_info().rss)
    except ImportError:
        return None


class RSSSampler:
    """Context manager: samples the process's RSS every ``interval`` s in a thread; ``peak_delta``
    is the highest RSS seen minus the RSS on entry (bytes; None where RSS cannot be read)."""

    def __init__(self, interval: float = 0.001):
        import threading

        self.interval = interval
        self.start = self.peak = None
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._watch, daemon=True)

    def _watch(self) -> None:
        while not self._stop.is_set():
            value = current_rss_bytes()
            if value is not None:
                self.peak = max(self.peak or 0, value)
            self._stop.wait(self.interval)

    def __enter__(self) -> RSSSampler:
        self.start = self.peak = current_rss_bytes()
        self._thread.start()
        return self

    def __exit__(self, *exc) -> None:
        self._stop.set()
        self._thread.join()
        value = current_rss_bytes()
        if value is not None:
            self.peak = max(self.peak or 0, value)

    @property
    def peak_delta(self) -> int | None:
        return None if self.start is None else max(0, self.peak - self.start)


class _LiveTensorBytes:
    """Tracks the bytes of tensor storage created inside the block and still alive: ``peak``.

    A ``TorchDispatchMode`` sees every tensor an operator returns; a new storage is counted
    until its tensor is garbage-collected (a view of it that outlives it is not followed,
    so the figure can be slightly low)."""

    def __init__(self):
        from torch.utils._python_dispatch import TorchDispatchMode
        from torch.utils._pytree import tree_flatten

        tracker = self
        self.current = self.peak = 0
        self._alive: dict[int, int] = {}

        def release(pointer: int) -> None:
            tracker.current -= tracker._alive.pop(pointer, 0)

        class Mode(TorchDispatchMode):
            def __torch_dispatch__(self, func, types, args=(), kwargs=None):
                import weakref

                out = func(*args, **(kwargs or {}))
                for tensor in tree_flatten(out)[0]:
                    if not isinstance(tensor, torch.Tensor) or tensor.device.type != "cpu":
                        continue
                    storage = tensor.untyped_storage()
                    pointer = storage.data_ptr()
                    if pointer and pointer not in tracker._alive:
                        tracker._alive[pointer] = storage.nbytes()
                        tracker.current += storage.nbytes()
                        tracker.peak = max(tracker.peak, tracker.current)
                        weakref.finalize(tensor, release, pointer)
                return out

        self._mode = Mode()

    def __enter__(self):
        self._mode.__enter__()
        return self

    def __exit__(self, *exc):
        return self._mode.__exit__(*exc)


def peak_memory(model: nn.Module, input_shape: Sequence[int], batch_size: int = 1, train: bool = False) -> dict:
    """Peak extra memory of one forward pass (``train=True``: forward + backward) at ``batch_size``.

    What it measures depends on the device:

    * CUDA: ``torch.cuda.max_memory_allocated`` during the pass minus what was allocated before
      (so the weights are not counted), in bytes: ``{"peak_bytes", "method": "cuda_max_allocated"}``.
    * CPU: the largest total size of tensors created during the pass and alive at the same time
      (activations, outputs, gradients; not the weights, not the input), tracked operator by
      operator with a ``TorchDispatchMode``: ``peak_bytes``, ``"method": "cpu_live_tensors"``.
      PyTorch's CPU allocator keeps no statistics, so this counts what the tensors hold, not
      what the allocator asked the system for. ``rss_delta_bytes`` adds the rise of the
      process's resident set size during the pass (sampled every millisecond,
      :class:`RSSSampler`): the memory the process really took, but coarse, because memory
      freed by an earlier pass is reused without a rise (often 0 for small models).
    """
    device = model_device(model)
    x = torch.zeros(batch_size, *input_shape, device=device)
    was_training = model.training
    model.train(train)

    def run():
        if train:
            model.zero_grad(set_to_none=True)
            model(x).float().sum().backward()
            model.zero_grad(set_to_none=True)
        else:
            with torch.inference_mode():
                model(x)

    try:
        if device.type == "cuda":
            torch.cuda.synchronize(device)
            torch.cuda.reset_peak_memory_stats(device)
            before = torch.cuda.memory_allocated(device)
            run()
            torch.cuda.synchronize(device)
            return {"peak_bytes": int(torch.cuda.max_memory_allocated(device) - before), "method": "cuda_max_allocated"}
        with RSSSampler() as sampler:
            run()
        with _LiveTensorBytes() as live:
            run()
        return {"peak_bytes": int(live.peak), "rss_delta_bytes": sampler.peak_delta, "method": "cpu_live_tensors"}
    finally:
        model.train(was_training)


def train_time_per_epoch(
    model: nn.Module,
    input_shape: Sequence[int],
    samples: int = 512,
    batch_size: int = 64,
    num_classes: int | None = None,
    steps: int | None = None,
) -> float:
    """Seconds one training epoch of ``samples`` takes (AdamW, cross-entropy, random data).

    Times ``steps`` optimisation steps (default: all ``ceil(samples / batch_size)``) after one
    warm-up step and scales to the epoch. The weights change: pass a copy to keep a model.
    """
    import copy
    import math

    device = model_device(model)
    num_classes = num_classes or getattr(model, "num_classes", None) or 7
    total_steps = math.ceil(samples / batch_size)
    steps = min(steps or total_steps, total_steps)
    work = copy.deepcopy(model).train()
    optim = torch.optim.AdamW(work.parameters(), lr=1e-3)
    loss_fn = nn.CrossEntropyLoss()
    x = torch.rand(batch_size, *input_shape, device=device)
    y = torch.randint(0, num_classes, (batch_size,), device=device)

    def step():
        optim.zero_grad(set_to_none=True)
        loss_fn(work(x), y).backward()
        optim.step()

    step()
    _sync(device)
    start = time.perf_counter()
    for _ in range(steps):
        step()
    _sync(device)
    return float((time.perf_counter() - start) * total_steps / steps)


def default_input_shape(model_or_kind, image_size: int = 48, channels: int = 1, frames: int = 16) -> tuple:
    """``(C, H, W)`` for a static model, ``(T, C, H, W)`` for a video one (a model or a kind name)."""
    kind = model_or_kind if isinstance(model_or_kind, str) else getattr(model_or_kind, "ferlib_kind", "static")
    return (frames, channels, image_size, image_size) if kind == "video" else (channels, image_size, image_size)


def profile_model(
    name_or_model: str | nn.Module,
    input_shape: Sequence[int] | None = None,
    *,
    image_size: int = 48,
    channels: int = 1,
    frames: int = 16,
    runs: int = 30,
    warmup: int = 5,
    batch_sizes: Sequence[int] = (64, 256),
    throughput_runs: int = 3,
    train_samples: int = 256,
    train_batch_size: int = 64,
    train_steps: int | None = 2,
    device: str | torch.device = "cpu",
    model_kwargs: dict | None = None,
) -> dict:
    """Every cost of one model in one dict.

    ``name_or_model`` is a registered name (built with ``model_kwargs``) or a model. The input
    shape defaults to ``(channels, image_size, image_size)`` for a static model and
    ``(frames, channels, image_size, image_size)`` for a video one (``ferlib_kind``).

    Returns ``name``, ``kind``, ``input_shape``, ``parameters``, ``flops``, ``latency_median_ms``,
    ``latency_p95_ms`` (batch 1), ``throughput_<B>`` (samples/s at each of ``batch_sizes``; clips/s
    for video models), ``peak_memory_bytes`` (inference at batch 1, see :func:`peak_memory`),
    ``train_time_per_epoch_s`` (``train_samples`` samples; ``None`` when ``train_samples=0``),
    ``device`` and ``torch_threads``.
    """
    if isinstance(name_or_model, str):
        from ferlib.models.registry import create_model

        options = {"in_channels": channels, **(model_kwargs or {})}
        model = create_model(name_or_model, **options)
    else:
        model = name_or_model
    model = model.to(device)
    kind = getattr(model, "ferlib_kind", None) or getattr(model, "kind", "static")
    if input_shape is None:
        input_shape = default_input_shape(kind, image_size, getattr(model, "in_channels", channels), frames)
    input_shape = tuple(int(v) for v in input_shape)
    lat = latency(model, input_shape, runs=runs, warmup=warmup)
    record = {
        "name": getattr(model, "ferlib_name", type(model).__name__),
        "kind": kind,
        "input_shape": list(input_shape),
        "parameters": count_parameters(model),
        "flops": count_flops(model, input_shape),
        "latency_median_ms": lat["median_ms"],
        "latency_p95_ms": lat["p95_ms"],
    }
    for batch in batch_sizes:
        record[f"throughput_{batch}"] = throughput(model, input_shape, batch, runs=throughput_runs)
    record["peak_memory_bytes"] = peak_memory(model, input_shape)["peak_bytes"]
    record["train_time_per_epoch_s"] = (
        train_time_per_epoch(model, input_shape, train_samples, train_batch_size, steps=train_steps)
        if train_samples
        else None
    )
    record["device"] = str(torch.device(device))
    record["torch_threads"] = torch.get_num_threads()
    return record
