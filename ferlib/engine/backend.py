"""Where training runs: one process or many (Hugging Face Accelerate), and in which precision.

:class:`Backend` is what ``fit`` and ``evaluate``'s callers ask about the process: its device,
autocast, gradient scaling, whether it is the main process of a ``torchrun`` job.
"""

from __future__ import annotations

import os
import warnings
from contextlib import nullcontext
from pathlib import Path

import torch
from torch import nn


def cpu_has_native_bf16(cpuinfo: str | Path = "/proc/cpuinfo") -> bool | None:
    """Whether this CPU has bfloat16 instructions (AVX512-BF16 or AMX); ``None`` where unknown.

    Read from ``cpuinfo`` (Linux's ``/proc/cpuinfo``), so known on Linux only. PyTorch's own check
    (``torch.ops.mkldnn._is_mkldnn_bf16_supported``) also accepts CPUs that only emulate bf16.
    """
    try:
        with open(cpuinfo, encoding="utf-8") as f:
            flags = next((line.split(":", 1)[1].split() for line in f if line.startswith("flags")), None)
    except OSError:
        return None
    return None if flags is None else ("avx512_bf16" in flags or "amx_bf16" in flags)


class Backend:
    """The few places where one process and many (Accelerate) differ, and mixed precision."""

    def __init__(self, device: torch.device, mixed_precision: str):
        self.accelerator = None
        amp_dtype = None
        if mixed_precision not in ("auto", "no", "bf16", "fp16"):
            raise ValueError(f"mixed_precision must be 'auto', 'no', 'bf16' or 'fp16', got {mixed_precision!r}")
        if int(os.environ.get("WORLD_SIZE", "1")) > 1:
            from accelerate import Accelerator

            self.accelerator = Accelerator(cpu=device.type == "cpu")
            device = self.accelerator.device
        if device.type == "cuda" and mixed_precision != "no":
            bf16 = torch.cuda.is_bf16_supported()
            amp_dtype = torch.float16 if mixed_precision == "fp16" or not bf16 else torch.bfloat16
        elif device.type == "cpu" and mixed_precision == "bf16":  # asked for: CPUs with AVX512-BF16 or AMX gain
            amp_dtype = torch.bfloat16
            if cpu_has_native_bf16() is False:
                warnings.warn(
                    "mixed_precision='bf16' on a CPU without AVX512-BF16 or AMX: bfloat16 is emulated there and "
                    "usually slower than float32 (2.6x slower for vgg_fer on a 2-core Xeon); consider "
                    "mixed_precision='no'",
                    RuntimeWarning,
                    stacklevel=3,
                )
        self.device = device
        self.amp_dtype = amp_dtype
        self.scaler = torch.amp.GradScaler("cuda") if amp_dtype == torch.float16 else None

    @property
    def is_main(self) -> bool:
        return self.accelerator is None or self.accelerator.is_main_process

    @property
    def world_size(self) -> int:
        return 1 if self.accelerator is None else self.accelerator.num_processes

    def autocast(self):
        if self.amp_dtype is None:
            return nullcontext()
        return torch.autocast(device_type=self.device.type, dtype=self.amp_dtype)

    def prepare(self, *objects):
        if self.accelerator is None:
            return objects
        return self.accelerator.prepare(*objects)

    def backward(self, loss: torch.Tensor) -> None:
        if self.accelerator is not None:
            self.accelerator.backward(loss)
        elif self.scaler is not None:
            self.scaler.scale(loss).backward()
        else:
            loss.backward()

    def clip(self, model: nn.Module, optimizer, max_norm: float) -> None:
        if self.accelerator is not None:
            self.accelerator.clip_grad_norm_(model.parameters(), max_norm)
            return
        if self.scaler is not None:
            self.scaler.unscale_(optimizer)
        nn.utils.clip_grad_norm_(model.parameters(), max_norm)

    def step(self, optimizer) -> None:
        if self.scaler is not None:
            self.scaler.step(optimizer)
            self.scaler.update()
        else:
            optimizer.step()

    def reduce_sum(self, tensor: torch.Tensor) -> torch.Tensor:
        if self.accelerator is None:
            return tensor
        return self.accelerator.reduce(tensor, reduction="sum")

    def gather(self, tensor: torch.Tensor) -> torch.Tensor:
        if self.accelerator is None:
            return tensor
        return self.accelerator.gather_for_metrics(tensor)

    def unwrap(self, model: nn.Module) -> nn.Module:
        return model if self.accelerator is None else self.accelerator.unwrap_model(model)

    def wait(self) -> None:
        if self.accelerator is not None:
            self.accelerator.wait_for_everyone()


def is_main_process(device: torch.device) -> bool:
    """Whether this process reports results: always, except the non-main ranks under ``torchrun``."""
    return Backend(device, "no").is_main
