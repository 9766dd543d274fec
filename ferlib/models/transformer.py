"""A small Vision Transformer (Dosovitskiy et al., 2021) for 48x48 faces.

``vit_tiny`` cuts the image into ``patch_size`` x ``patch_size`` patches (4 by default: a
12x12 grid at 48x48), embeds them linearly, prepends a learned CLS token, adds a learned
position embedding and runs ``depth`` pre-norm transformer blocks; the CLS token's final state
feeds the linear head.

Other input sizes work: the image is zero-padded on the right and bottom to a multiple of the
patch size, and the position embedding (learned for ``image_size``) is resized bicubically to
the new grid. :meth:`VisionTransformer.attention_maps` gives the last block's attention from
the CLS token to every patch, for plotting.

Attention is written out (not ``F.scaled_dot_product_attention``) so that its weights can be
returned and so that :func:`ferlib.efficiency.count_flops` counts it: FlopCounterMode does not
count the fused CPU attention kernel.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import nn

from ferlib.models.base import FERModel
from ferlib.models.registry import register_model


class Attention(nn.Module):
    """Multi-head self-attention that can return its weights."""

    def __init__(self, dim: int, heads: int, dropout: float = 0.0):
        super().__init__()
        if dim % heads:
            raise ValueError(f"dim ({dim}) must be divisible by heads ({heads})")
        self.heads = heads
        self.scale = (dim // heads) ** -0.5
        self.qkv = nn.Linear(dim, 3 * dim)
        self.proj = nn.Linear(dim, dim)
        self.dropout = nn.Dropout(dropout)

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Output ``[B, N, D]`` and attention weights ``[B, heads, N, N]``."""
        batch, tokens, dim = x.shape
        qkv = self.qkv(x).view(batch, tokens, 3, self.heads, dim // self.heads).permute(2, 0, 3, 1, 4)
        q, k, v = qkv.unbind(0)
        weights = torch.softmax((q * self.scale) @ k.transpose(-2, -1), dim=-1)
        out = (self.dropout(weights) @ v).transpose(1, 2).reshape(batch, tokens, dim)
        return self.proj(out), weights


class Block(nn.Module):
    """Pre-norm transformer block: attention and an MLP, each with a residual connection."""

    def __init__(self, dim: int, heads: int, mlp_ratio: float = 2.0, dropout: float = 0.0):
        super().__init__()
        self.norm1 = nn.LayerNorm(dim)
        self.attn = Attention(dim, heads, dropout)
        self.norm2 = nn.LayerNorm(dim)
        hidden = int(dim * mlp_ratio)
        self.mlp = nn.Sequential(
            nn.Linear(dim, hidden),
            nn.GELU(),
            nn.Dropout(dropout),
            nn.Linear(hidden, dim),
            nn.Dropout(dropout),
        )

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        attended, weights = self.attn(self.norm1(x))
        x = x + attended
        return x + self.mlp(self.norm2(x)), weights


@register_model(
    "vit_tiny",
    kind="static",
    description="Tiny Vision Transformer: 4x4 patches, dim 128, depth 4, 4 heads, CLS token.",
)
class VisionTransformer(FERModel):
    """ViT with a CLS token and a learned, resizable position embedding (``vit_tiny``)."""

    head_name = "head"

    def __init__(
        self,
        in_channels: int = 1,
        num_classes: int = 7,
        image_size: int = 48,
        patch_size: int = 4,
        dim: int = 128,
        depth: int = 4,
        heads: int = 4,
        mlp_ratio: float = 2.0,
        dropout: float = 0.1,
    ):
        super().__init__(in_channels, num_classes)
        self.patch_size = patch_size
        self.grid = math.ceil(image_size / patch_size)
        self.patch_embed = nn.Conv2d(in_channels, dim, kernel_size=patch_size, stride=patch_size)
        self.cls_token = nn.Parameter(torch.zeros(1, 1, dim))
        self.pos_embed = nn.Parameter(torch.zeros(1, 1 + self.grid * self.grid, dim))
        nn.init.trunc_normal_(self.pos_embed, std=0.02)
        nn.init.trunc_normal_(self.cls_token, std=0.02)
        self.dropout = nn.Dropout(dropout)
        self.blocks = nn.ModuleList(Block(dim, heads, mlp_ratio, dropout) for _ in range(depth))
        self.norm = nn.LayerNorm(dim)
        self.head = nn.Linear(dim, num_classes)

    def _position_embedding(self, grid_h: int, grid_w: int) -> torch.Tensor:
        if (grid_h, grid_w) == (self.grid, self.grid):
            return self.pos_embed
        cls_pos, patch_pos = self.pos_embed[:, :1], self.pos_embed[:, 1:]
        dim = patch_pos.shape[-1]
        patch_pos = patch_pos.reshape(1, self.grid, self.grid, dim).permute(0, 3, 1, 2)
        patch_pos = F.interpolate(patch_pos, size=(grid_h, grid_w), mode="bicubic", align_corners=False)
        return torch.cat([cls_pos, patch_pos.permute(0, 2, 3, 1).reshape(1, grid_h * grid_w, dim)], dim=1)

    def _tokens(self, x: torch.Tensor) -> tuple[torch.Tensor, tuple[int, int]]:
        height, width = x.shape[-2:]
        pad_h, pad_w = -height % self.patch_size, -width % self.patch_size
        if pad_h or pad_w:
            x = F.pad(x, (0, pad_w, 0, pad_h))
        patches = self.patch_embed(x)
        grid = patches.shape[-2:]
        tokens = patches.flatten(2).transpose(1, 2)
        tokens = torch.cat([self.cls_token.expand(len(tokens), -1, -1), tokens], dim=1)
        return self.dropout(tokens + self._position_embedding(*grid)), (grid[0], grid[1])

    def forward(self, x: torch.Tensor, return_aux: bool = False):
        self.check_input(x)
        tokens, grid = self._tokens(x)
        for block in self.blocks:
            tokens, weights = block(tokens)
        logits = self.head(self.norm(tokens[:, 0]))
        if return_aux:
            return logits, {"attention": weights, "grid": grid}
        return logits

    def attention_maps(self, x: torch.Tensor) -> torch.Tensor:
        """The last block's CLS-to-patch attention, averaged over heads: ``[B, grid_h, grid_w]``.

        Each map sums to at most 1 (the CLS token's attention to itself is left out).
        """
        _, aux = self.forward(x, return_aux=True)
        grid_h, grid_w = aux["grid"]
        cls_attention = aux["attention"][:, :, 0, 1:].mean(dim=1)
        return cls_attention.reshape(-1, grid_h, grid_w)
