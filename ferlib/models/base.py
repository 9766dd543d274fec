"""What every ferlib model shares: input validation with a message a newcomer can act on."""

from __future__ import annotations

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
