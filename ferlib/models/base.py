"""What every ferlib model shares: input validation with a message a newcomer can act on."""

from __future__ import annotations

import inspect
from collections.abc import Callable, Mapping

import torch
from torch import nn


class FERModel(nn.Module):
    """Base class: ``forward`` takes ``[B, C, H, W]`` (static) or ``[B, T, C, H, W]`` (video).

    Subclasses set ``kind`` and ``in_channels`` and call :meth:`check_input` first in
    ``forward``; a wrong shape raises a one-line ``ValueError`` naming the expected layout.
    """

    kind: str = "static"

    def __init__(self, in_channels: int, num_classes: int):
        super().__init__()
        self.in_channels = in_channels
        self.num_classes = num_classes

    def check_input(self, x: torch.Tensor) -> None:
        dims = 4 if self.kind == "static" else 5
        layout = "[B, C, H, W] (static images)" if dims == 4 else "[B, T, C, H, W] (video clips)"
        channel_axis = 1 if dims == 4 else 2
        if x.dim() != dims or x.shape[channel_axis] != self.in_channels:
            name = getattr(self, "ferlib_name", type(self).__name__)
            raise ValueError(f"{name} expects input of shape {layout} with C={self.in_channels}, got {list(x.shape)}")


def _unwrap(model: nn.Module) -> nn.Module:
    """The model inside a DistributedDataParallel (``.module``) or ``torch.compile`` (``._orig_mod``) wrapper."""
    for attribute in ("module", "_orig_mod"):
        while isinstance(getattr(model, attribute, None), nn.Module):
            model = getattr(model, attribute)
    return model


def _forward_parameters(model: nn.Module) -> frozenset[str]:
    import inspect

    try:
        return frozenset(inspect.signature(model.forward).parameters)
    except (TypeError, ValueError):
        return frozenset()


def forward_kwargs(model: nn.Module, x: torch.Tensor, metas) -> dict:
    """Extra keyword arguments for ``model(x, **kwargs)`` taken from a batch's metadata list.

    - ``lengths`` (LongTensor ``[B]``): the true frame count of each clip of a zero-padded video
      batch, from ``meta["num_frames"]`` (set by :func:`ferlib.data.loader.collate_samples`);
      given when ``model.forward`` accepts ``lengths``.
    - ``landmarks`` (``[B, T, K, 2]``, ``(x / W, y / H)`` in [0, 1], zero-padded in time): from
      per-frame ``meta["landmarks"]`` in pixels; given only to models with ``uses_landmarks = True``.

    Returns ``{}`` when there are no metas or the model takes neither, so static models are
    called exactly as before.
    """
    if not metas:
        return {}
    base = _unwrap(model)
    parameters = _forward_parameters(base)
    kwargs: dict = {}
    if "lengths" in parameters and all(isinstance(m, Mapping) and "num_frames" in m for m in metas):
        kwargs["lengths"] = torch.tensor([int(m["num_frames"]) for m in metas], dtype=torch.long, device=x.device)
    if (
        getattr(base, "uses_landmarks", False)
        and "landmarks" in parameters
        and all(isinstance(m, Mapping) and m.get("landmarks") is not None for m in metas)
    ):
        marks = [torch.as_tensor(m["landmarks"], dtype=torch.float32) for m in metas]
        steps = x.shape[1] if x.dim() == 5 else max(len(mark) for mark in marks)
        out = torch.zeros(len(marks), steps, *marks[0].shape[1:])
        for i, mark in enumerate(marks):
            out[i, : len(mark)] = mark[:steps]
        scale = torch.tensor([x.shape[-1], x.shape[-2]], dtype=torch.float32)
        kwargs["landmarks"] = (out / scale).to(x.device)
    return kwargs


def preset(cls: type, **fixed) -> Callable[..., nn.Module]:
    """A builder of ``cls`` with the options ``fixed`` set (e.g. ``cell="gru"``). Its signature is
    the class's less those, so ``help()`` and :func:`ferlib.create_model`'s option check see the
    options a user may pass."""

    def build(**options) -> nn.Module:
        return cls(**fixed, **options)

    signature = inspect.signature(cls)
    build.__signature__ = signature.replace(
        parameters=[p for p in signature.parameters.values() if p.name not in fixed]
    )
    build.__doc__ = f":class:`{cls.__name__}` with {', '.join(f'{k}={v!r}' for k, v in fixed.items())}."
    build.__name__ = build.__qualname__ = f"{cls.__name__}_preset"
    return build

