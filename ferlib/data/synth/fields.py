"""Random fields behind and on a SynthFER face: backgrounds with clutter, skin texture, noise banks.

The renderer is deterministic; these fields carry its randomness, drawn from the caller's
generator in a fixed order (:func:`~ferlib.data.synth.render.render_faces`). Per-pixel noise
comes from a fixed bank of fields, the same in every process, from which each face picks one.
"""

from __future__ import annotations

import numpy as np
import torch
import torch.nn.functional as F


def _background(
    rng, b: int, size: int, channels: int, shapes: np.ndarray, clutter: np.ndarray
) -> torch.Tensor:
    """Backgrounds [B, C, H, W]: a soft gradient plus up to 6 clutter rectangles."""
    u = rng.random((b, 3))
    base = 0.25 + 0.5 * u[:, 0]
    tint = rng.uniform(0.85, 1.15, (b, 3))
    grid = (np.arange(size, dtype=np.float32) + 0.5) / size
    k = 6
    rect = rng.random((b, k, 6)).astype(np.float32)
    img = (
        base[:, None, None]
        + (u[:, 1] - 0.5)[:, None, None] * 0.3 * (grid[None, :, None] - 0.5)
        + (u[:, 2] - 0.5)[:, None, None] * 0.3 * (grid[None, None, :] - 0.5)
    )
    img = torch.from_numpy(img.astype(np.float32))
    g = torch.from_numpy(grid)
    active = torch.from_numpy((np.arange(k)[None] < shapes[:, None]).astype(np.float32))
    amp = torch.from_numpy((0.12 * clutter).astype(np.float32)).view(-1, 1, 1)
    r = torch.from_numpy(rect)
    for j in range(int(shapes.max()) if len(shapes) else 0):
        cx, cy, w, h, val = (
            r[:, j, 0],
            r[:, j, 1],
            0.05 + 0.3 * r[:, j, 2],
            0.05 + 0.3 * r[:, j, 3],
            r[:, j, 4],
        )
        inside = ((w.view(-1, 1, 1) - (g.view(1, 1, -1) - cx.view(-1, 1, 1)).abs()) * size + 0.5).clamp(
            0, 1
        ) * ((h.view(-1, 1, 1) - (g.view(1, -1, 1) - cy.view(-1, 1, 1)).abs()) * size + 0.5).clamp(0, 1)
        alpha = inside * active[:, j].view(-1, 1, 1) * amp.clamp(max=0.9) * 1.6
        img = img * (1 - alpha) + (0.1 + 0.8 * val.view(-1, 1, 1)) * alpha
    tint_t = torch.from_numpy(tint.astype(np.float32))
    if channels == 1:
        return img.unsqueeze(1)
    return img.unsqueeze(1) * tint_t.view(b, 3, 1, 1)


_BANK_SIZE = 512
_banks: dict[tuple, torch.Tensor] = {}


def _noise_bank(kind: str, shape: tuple[int, ...]) -> torch.Tensor:
    """A fixed bank of random fields (same in every process): drawing fresh normals per pixel
    would cost more than rendering the face."""
    key = (kind, shape)
    if key not in _banks:
        rng = np.random.default_rng(np.random.SeedSequence([2024, len(kind), *shape]))
        _banks[key] = torch.from_numpy(rng.standard_normal((_BANK_SIZE, *shape), dtype=np.float32))
    return _banks[key]


def _texture(rng, b: int, size: int) -> torch.Tensor:
    """Skin texture: smooth blotches plus fine pores, unit-ish variance [B, H, W]."""
    low = torch.from_numpy(rng.standard_normal((b, 1, size // 6 + 2, size // 6 + 2), dtype=np.float32))
    low = F.interpolate(low, size=(size, size), mode="bilinear", align_corners=False)[:, 0]
    fine = _noise_bank("pores", (size, size))[torch.from_numpy(rng.integers(0, _BANK_SIZE, b))]
    return low * 0.8 + fine * 0.15
