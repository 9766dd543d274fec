"""Video models that mix frames without a recurrence: a temporal transformer over per-frame
CNN features (``cnn_transformer``) and a small 3D CNN (``r3d_small``).

Both follow the conventions of :mod:`ferlib.models.video`: clips ``[B, T, C, H, W]`` in,
logits out, ``lengths`` for zero-padded clips (the transformer masks padded frames out of its
attention and pooling, the 3D CNN zeroes them after every block), and a plain path without a
data-dependent branch when ``lengths`` is ``None`` (the one ONNX export traces).
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import torch
import torch.nn.functional as F
from torch import nn

from ferlib.errors import ConfigError
from ferlib.models.registry import register_model
from ferlib.models.video import EncodedVideoModel, VideoModel, encode_frames

# --------------------------------------------------------------------------------------------
# CNN + temporal transformer


class MaskedBlock(nn.Module):
    """Pre-norm transformer block whose attention ignores padded keys.

    Attention is written out (not ``nn.MultiheadAttention``'s fused path) so that
    :func:`ferlib.efficiency.count_flops` counts it.
    """

    def __init__(self, dim: int, heads: int, mlp_ratio: float = 2.0, dropout: float = 0.1):
        super().__init__()
        if dim % heads:
            raise ValueError(f"dim ({dim}) must be divisible by heads ({heads})")
        self.heads = heads
        self.norm1 = nn.LayerNorm(dim)
        self.qkv = nn.Linear(dim, 3 * dim)
        self.proj = nn.Linear(dim, dim)
        self.norm2 = nn.LayerNorm(dim)
        hidden = int(dim * mlp_ratio)
        self.mlp = nn.Sequential(nn.Linear(dim, hidden), nn.GELU(), nn.Dropout(dropout), nn.Linear(hidden, dim))
        self.dropout = nn.Dropout(dropout)

    def forward(self, x: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        """``x`` ``[B, N, D]``, ``mask`` ``[B, N]`` (True = a real token)."""
        batch, tokens, dim = x.shape
        qkv = self.qkv(self.norm1(x)).view(batch, tokens, 3, self.heads, dim // self.heads).permute(2, 0, 3, 1, 4)
        q, k, v = qkv.unbind(0)
        scores = (q @ k.transpose(-2, -1)) / math.sqrt(dim // self.heads)
        scores = scores.masked_fill(~mask[:, None, None, :], float("-inf"))
        weights = self.dropout(torch.softmax(scores, dim=-1))
        x = x + self.dropout(self.proj((weights @ v).transpose(1, 2).reshape(batch, tokens, dim)))
        return x + self.dropout(self.mlp(self.norm2(x)))


@register_model(
    "cnn_transformer",
    kind="video",
    description="Per-frame CNN encoder + small temporal transformer (CLS token, padding mask).",
)
class CNNTransformer(EncodedVideoModel):
    """Per-frame CNN features, projected to ``dim``, plus a learned position embedding, through
    ``depth`` masked transformer blocks; the CLS token (``pool="cls"``) or the mean of the
    valid frames (``pool="mean"``) feeds the head. Clips may have up to ``max_frames`` frames."""

    def __init__(
        self,
        in_channels=1,
        num_classes=7,
        encoder="cnn_small",
        encoder_kwargs=None,
        encoder_checkpoint=None,
        dim=64,
        depth=2,
        heads=4,
        mlp_ratio=2.0,
        max_frames=64,
        pool="cls",
        dropout=0.1,
    ):
        super().__init__(in_channels, num_classes)
        if pool not in ("cls", "mean"):
            raise ConfigError.unknown("pool", pool, ("cls", "mean"))
        size = self._build_encoder(encoder, encoder_kwargs, encoder_checkpoint)
        self.pool, self.max_frames = pool, max_frames
        self.proj = nn.Linear(size, dim)
        self.cls_token = nn.Parameter(torch.zeros(1, 1, dim))
        self.pos_embed = nn.Parameter(torch.zeros(1, max_frames + 1, dim))
        nn.init.trunc_normal_(self.pos_embed, std=0.02)
        nn.init.trunc_normal_(self.cls_token, std=0.02)
        self.blocks = nn.ModuleList(MaskedBlock(dim, heads, mlp_ratio, dropout) for _ in range(depth))
        self.norm = nn.LayerNorm(dim)
        self.head = nn.Sequential(nn.Dropout(dropout), nn.Linear(dim, num_classes))

    def forward(self, x: torch.Tensor, lengths: torch.Tensor | None = None) -> torch.Tensor:
        full = lengths is None
        lengths, mask = self.prepare(x, lengths)
        batch, steps = x.shape[:2]
        if steps > self.max_frames:
            raise ValueError(f"clips have {steps} frames but the model was built for max_frames={self.max_frames}")
        tokens = self.proj(encode_frames(self.encoder, x, None if full else mask)) + self.pos_embed[:, 1 : steps + 1]
        tokens = torch.cat([(self.cls_token + self.pos_embed[:, :1]).expand(batch, -1, -1), tokens], dim=1)
        token_mask = torch.cat([mask.new_ones(batch, 1), mask], dim=1)
        for block in self.blocks:
            tokens = block(tokens, token_mask)
        tokens = self.norm(tokens)
        if self.pool == "cls":
            pooled = tokens[:, 0]
        else:
            pooled = (tokens[:, 1:] * mask[..., None]).sum(1) / lengths[:, None].to(tokens.dtype)
        return self.head(pooled)


# --------------------------------------------------------------------------------------------
# r3d_small


def _conv3d_block(in_channels: int, out_channels: int) -> nn.Sequential:
    return nn.Sequential(
        nn.Conv3d(in_channels, out_channels, 3, padding=1, bias=False),
        nn.BatchNorm3d(out_channels),
        nn.ReLU(inplace=True),
    )


@register_model(
    "r3d_small",
    kind="video",
    description="Small 3D CNN (three Conv3d stages, global pooling): the video baseline.",
)
class R3DSmall(VideoModel):
    """A small 3D CNN: one 3x3x3 conv block per stage; max-pooling halves the frame size after
    the first stage and time and frame size after the others; global average pooling over the
    valid time steps and the frame feeds the head.

    Padding: padded time steps are zeroed after every block (and at the input), so that they
    look exactly like the convolution's own zero padding and a padded clip gives the same
    logits as the unpadded one (in eval mode; in training, batch norm statistics see them).
    """

    def __init__(self, in_channels=1, num_classes=7, widths: Sequence[int] = (16, 32, 64), dropout=0.3):
        super().__init__(in_channels, num_classes)
        widths = tuple(widths)
        if not widths:
            raise ValueError("widths must name at least one stage")
        channels = (in_channels, *widths)
        self.stages = nn.ModuleList(_conv3d_block(a, b) for a, b in zip(channels[:-1], channels[1:], strict=True))
        self.head = nn.Sequential(nn.Dropout(dropout), nn.Linear(widths[-1], num_classes))

    def forward(self, x: torch.Tensor, lengths: torch.Tensor | None = None) -> torch.Tensor:
        lengths, mask = self.prepare(x, lengths)
        x = x.transpose(1, 2) * mask[:, None, :, None, None]  # [B, C, T, H, W]
        for index, stage in enumerate(self.stages):
            if index == 1:
                x = F.max_pool3d(x, (1, 2, 2), ceil_mode=True)
            elif index > 1:
                # ceil_mode: an odd last step is pooled alone; its padded partner is 0 (post-ReLU
                # values are >= 0), so the max is the same with or without padding.
                x = F.max_pool3d(x, 2, ceil_mode=True)
                lengths = torch.div(lengths + 1, 2, rounding_mode="floor")
                mask = torch.arange(x.shape[2], device=x.device)[None, :] < lengths[:, None]
            x = stage(x) * mask[:, None, :, None, None]
        pooled = x.mean(dim=(3, 4)).sum(2) / lengths[:, None].to(x.dtype)
        return self.head(pooled)
