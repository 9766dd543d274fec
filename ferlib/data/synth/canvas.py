"""SynthFER's drawing primitives: the canonical frame, coverage of analytic shapes, canvases and patches.

Every face lives in a *canonical* frame (x to the subject's left in the image, y down, the face
half-width about 1). A pixel is mapped back into that frame through the head pose (roll, then a
2-D approximation of yaw and pitch in which each part shifts by its depth), and each part is an
analytic shape (ellipses, lid and lip curves, brow strokes) evaluated on a batched pixel grid:
its coverage of a pixel comes from a signed distance (:func:`_cov`, :func:`_line`). Large shapes
are drawn on the full-size :class:`Canvas`; small detailed parts in a supersampled per-face
:class:`Patch` that is area-downsampled back into the canvas.
"""

from __future__ import annotations

import math

import numpy as np
import torch
import torch.nn.functional as F

# Luminance weights of sRGB channels: grayscale images draw every colour at its luminance.
LUMA = np.array([0.299, 0.587, 0.114], dtype=np.float32)


def _above(d: torch.Tensor, level: float = 0.0) -> torch.Tensor:
    """``(d > level).float()``, the same 0/1 values about ten times faster (no bool tensor)."""
    return torch.gt(d, level, out=torch.empty_like(d))


def _below(d: torch.Tensor, level: float = 0.0) -> torch.Tensor:
    """``(d < level).float()``, as :func:`_above`."""
    return torch.lt(d, level, out=torch.empty_like(d))


def _cov(d: torch.Tensor, pixel: float | torch.Tensor) -> torch.Tensor:
    """Coverage of a pixel of size ``pixel`` by the region where the signed distance ``d`` > 0."""
    return d.div_(pixel).add_(0.5).clamp_(0.0, 1.0)  # in place: callers pass a fresh temporary


def _line(d: torch.Tensor, width, pixel):
    """Coverage of a stroke of ``width`` around the curve where ``d`` = 0."""
    return d.abs().sub_(width * 0.5).div_(pixel).neg_().add_(0.5).clamp_(0.0, 1.0)


class Canvas:
    """Batched images being drawn: albedo per channel, foreground coverage and a skin mask."""

    def __init__(self, n: int, size: int, channels: int):
        self.n, self.size, self.channels = n, size, channels
        self.color = torch.zeros(channels, n, size, size)
        self.fg = torch.zeros(n, size, size)
        self.skin = torch.zeros(n, size, size)

    def over(self, alpha: torch.Tensor, color: torch.Tensor, fg: bool = True, skin: float | None = None):
        """Composite a layer of coverage ``alpha`` [N,H,W] and colour ``color`` [C,N,1,1] or [C,N,H,W];
        ``fg``/``skin`` also update the foreground and skin masks."""
        self.color.addcmul_(alpha, color - self.color)
        if fg:
            self.fg.addcmul_(alpha, 1 - self.fg)
        if skin is not None:
            self.skin.addcmul_(alpha, skin - self.skin)


def _pose_coords(px, py, P, z: float):
    """Map output-pixel coordinates into the canonical frame of a part at depth ``z``."""
    qx = (px - P["cx"]) / P["scale"]
    qy = (py - P["cy"]) / P["scale"]
    rx = P["cos_roll"] * qx + P["sin_roll"] * qy
    ry = P["cos_roll"] * qy - P["sin_roll"] * qx
    # In place: the same operations in the same order (so the same bits), two full-size
    # temporaries fewer.
    return rx.sub_(P["sin_yaw"] * z).div_(P["cos_yaw"]), ry.sub_(P["sin_pitch"] * z).div_(P["cos_pitch"])


def project(x: torch.Tensor, y: torch.Tensor, P, z: float | torch.Tensor):
    """Canonical points [N,K] of depth ``z`` to output pixels (the inverse of :func:`_pose_coords`)."""
    v = {
        k: t.view(-1, 1)
        for k, t in P.items()
        if k in ("cx", "cy", "scale", "cos_roll", "sin_roll", "cos_yaw", "sin_yaw", "cos_pitch", "sin_pitch")
    }
    rx = x * v["cos_yaw"] + v["sin_yaw"] * z
    ry = y * v["cos_pitch"] + v["sin_pitch"] * z
    qx = v["cos_roll"] * rx - v["sin_roll"] * ry
    qy = v["sin_roll"] * rx + v["cos_roll"] * ry
    return v["cx"] + v["scale"] * qx, v["cy"] + v["scale"] * qy


class Patch:
    """A per-face window at ``ss`` x resolution around a canonical point, drawn then composited."""

    def __init__(
        self, canvas: Canvas, P, center_x, center_y, z: float, half_w: float, half_h: float, ss: int, bounds: dict
    ):
        n, size, channels = canvas.n, canvas.size, canvas.channels
        ex, ey = project(center_x.view(-1, 1), center_y.view(-1, 1), P, z)
        scale = bounds["scale"]
        # Bounding box of the rotated canonical rectangle, in output pixels (max over the whole
        # batch, see batch_bounds, so that a face's patch does not depend on its group).
        roll = bounds["roll"]
        cr = math.sqrt(max(0.0, 1 - roll * roll))
        w = int(math.ceil(2 * scale * (half_w * cr + half_h * roll) / bounds["cos_yaw"])) + 2
        h = int(math.ceil(2 * scale * (half_h * cr + half_w * roll) / bounds["cos_pitch"])) + 2
        w, h = min(w, size), min(h, size)
        ox = torch.clamp(torch.round(ex.view(-1) - w / 2), 0, size - w).long()
        oy = torch.clamp(torch.round(ey.view(-1) - h / 2), 0, size - h).long()
        self.ox, self.oy, self.w, self.h, self.ss, self.size = ox, oy, w, h, ss, size
        sub = (torch.arange(w * ss, dtype=torch.float32) + 0.5) / ss
        subv = (torch.arange(h * ss, dtype=torch.float32) + 0.5) / ss
        self.px = ox.view(-1, 1, 1).float() + sub.view(1, 1, -1)
        self.py = oy.view(-1, 1, 1).float() + subv.view(1, -1, 1)
        self.P = P
        self.pixel = (1.0 / (P["scale"] * ss)).view(-1, 1, 1)  # canonical size of one render pixel
        # Draw straight onto a copy of the canvas under the patch (nearest-upsampled), then average back.
        rows = oy.view(-1, 1, 1) + torch.arange(h).view(1, -1, 1)
        cols = ox.view(-1, 1, 1) + torch.arange(w).view(1, 1, -1)
        self.idx = (torch.arange(n).view(-1, 1, 1) * size * size + rows * size + cols).reshape(-1)
        self.flat = canvas.color.view(channels, -1)
        # index_select / index_copy_ move the same values as flat[:, idx] (and its assignment),
        # several times faster than advanced indexing.
        color = self.flat.index_select(1, self.idx).view(channels, n, h, w)
        if ss > 1:
            color = color.repeat_interleave(ss, 2).repeat_interleave(ss, 3)
        self.color = color

    def coords(self, z: float):
        return _pose_coords(self.px, self.py, self.P, z)

    def over(self, alpha: torch.Tensor, color: torch.Tensor):
        self.color.addcmul_(alpha, color - self.color)

    def composite(self, canvas: Canvas | None = None):
        color = F.avg_pool2d(self.color, self.ss) if self.ss > 1 else self.color
        self.flat.index_copy_(1, self.idx, color.reshape(self.flat.shape[0], -1))


def _col(rgb: torch.Tensor, channels: int) -> torch.Tensor:
    """[N,3] colours to [C,N,1,1] (luminance when grayscale)."""
    if channels == 1:
        rgb = rgb @ torch.from_numpy(LUMA).view(3, 1)
    return rgb.t().reshape(channels, -1, 1, 1)


def _side(a: dict, name: str, side: int) -> torch.Tensor:
    return a[name][:, side].view(-1, 1, 1)
