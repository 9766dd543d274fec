"""The corruption suite: images made harder in ways a camera, a face or a hand make them.

:func:`corrupt` applies one of :func:`list_corruptions` at a severity from 0 (the input,
unchanged) to 5, after the protocol of ImageNet-C (Hendrycks & Dietterich 2019): lighting
(``brightness``, ``low_light``, ``contrast``), noise (``gaussian_noise``, ``shot_noise``),
blur (``gaussian_blur``, ``motion_blur``), digital (``jpeg``, ``pixelate``), geometry
(``rotation``, ``pose``) and FER occlusions (``occlusion_eyes``, a sunglasses band;
``occlusion_lower_face``, a surgical mask; ``occlusion_mouth``; ``occlusion_patch``, a grey
square at a random place on the face; ``occlusion_hand``, a skin-toned ellipse over the mouth
or a cheek). Inputs are float images in [0, 1], ``[B, C, H, W]`` or clips ``[B, T, C, H, W]``,
and so are the outputs. Random draws (noise fields, angles, positions, colours) depend only
on ``seed``, never on the severity, so that a higher severity is the same corruption made
stronger: for every corruption the mean absolute difference from the clean image grows with
the severity (for ``brightness`` the mean itself does; for ``pixelate``, whose grids nest, the
root-mean-square difference), which the tests check.

Occluders are placed from facial landmarks when they are given (``landmarks=[B, 27, 2]`` in
pixels, in the order of :data:`ferlib.data.synth.LANDMARK_NAMES`, as SynthFER's
``meta["landmarks"]``); otherwise from the proportions of a centred, aligned face crop
(:data:`FACE_BOX`: eyes at 37% of the height, nose tip at 50%, mouth at 64%, the face
between 14% and 86% of the width), which SynthFER's faces and the aligned crops of FER2013,
RAF-DB or AffectNet follow closely.

:mod:`ferlib.robustness` measures models under these corruptions; :mod:`ferlib.data.augment`
trains on the occluders.
"""

from __future__ import annotations

import math

import numpy as np
import torch
import torch.nn.functional as F

from ferlib._registry import lookup
from ferlib.errors import ConfigError

__all__ = [
    "CORRUPTIONS",
    "FACE_BOX",
    "FAMILIES",
    "MAX_SEVERITY",
    "affine_warp",
    "check_corruption",
    "check_severity",
    "corrupt",
    "list_corruptions",
]


MAX_SEVERITY = 5

# Corruption -> family (the order is the order of list_corruptions()).
CORRUPTIONS: dict[str, str] = {
    "brightness": "lighting",
    "low_light": "lighting",
    "contrast": "lighting",
    "gaussian_noise": "noise",
    "shot_noise": "noise",
    "gaussian_blur": "blur",
    "motion_blur": "blur",
    "jpeg": "digital",
    "pixelate": "digital",
    "rotation": "geometry",
    "pose": "geometry",
    "occlusion_eyes": "occlusion",
    "occlusion_lower_face": "occlusion",
    "occlusion_mouth": "occlusion",
    "occlusion_patch": "occlusion",
    "occlusion_hand": "occlusion",
}
FAMILIES: tuple[str, ...] = tuple(dict.fromkeys(CORRUPTIONS.values()))

# Fractions of the image height (y) and width (x) of a centred, aligned face crop; measured on
# SynthFER's faces (landmark means), close to the alignment templates of aligned FER datasets.
FACE_BOX: dict[str, float] = {
    "eyes_y": 0.365,
    "eyes_left_x": 0.28,
    "eyes_right_x": 0.73,
    "brows_y": 0.28,
    "nose_y": 0.50,
    "mouth_y": 0.64,
    "mouth_left_x": 0.38,
    "mouth_right_x": 0.62,
    "chin_y": 0.935,
    "jaw_left_x": 0.14,
    "jaw_right_x": 0.86,
    "centre_x": 0.50,
}

# Severity tables: entry s-1 is severity s.
_BRIGHTNESS = (0.08, 0.16, 0.24, 0.32, 0.42)  # added to every pixel
_LOW_LIGHT = ((1.2, 0.9), (1.5, 0.8), (1.8, 0.68), (2.2, 0.56), (2.7, 0.45))  # (gamma, gain)
_CONTRAST = (0.65, 0.5, 0.36, 0.24, 0.14)  # fraction of the contrast kept
_GAUSSIAN_NOISE = (0.04, 0.07, 0.10, 0.14, 0.19)  # sigma
_SHOT_NOISE = (120.0, 60.0, 30.0, 15.0, 8.0)  # photons at full scale
_BLUR_SIGMA = (0.5, 0.75, 1.0, 1.35, 1.75)  # pixels at 32x32, scaled with the image
_MOTION_LENGTH = (0.08, 0.13, 0.18, 0.24, 0.30)  # fraction of the width
_JPEG_QUALITY = (70, 40, 22, 12, 6)
# pixelate: nested block grids of 2, 4 and 8 pixels at 32x32 (scaled, powers of two), and the
# severity's weight between two neighbouring grids
_PIXELATE = ((0, 0.0), (0, 0.5), (1, 0.0), (1, 0.5), (2, 0.0))
_ROTATION = (6.0, 12.0, 18.0, 25.0, 32.0)  # degrees, random sign
_POSE = (10.0, 18.0, 27.0, 36.0, 45.0)  # simulated yaw in degrees, random side
_EYES_BAND = (0.07, 0.10, 0.13, 0.16, 0.20)  # half-height of the sunglasses band
_LOWER_FACE = (0.12, 0.07, 0.02, -0.03, -0.08)  # mask top edge above the mouth (- is higher)
_MOUTH = (0.10, 0.14, 0.18, 0.22, 0.27)  # half-width of the mouth cover
_PATCH = (0.14, 0.20, 0.26, 0.32, 0.38)  # side of the square
_HAND = (0.12, 0.16, 0.20, 0.24, 0.29)  # vertical radius of the ellipse


def list_corruptions(family: str | None = None) -> list[str]:
    """The corruption names, all or those of one ``family`` (see :data:`FAMILIES`).

    >>> list_corruptions("lighting")
    ['brightness', 'low_light', 'contrast']
    """
    if family is None:
        return list(CORRUPTIONS)
    if family not in FAMILIES:
        raise ConfigError.unknown("corruption family", family, FAMILIES)
    return [name for name, fam in CORRUPTIONS.items() if fam == family]


def check_corruption(name: str) -> str:
    """``name`` if it is a corruption, else a :class:`~ferlib.errors.ConfigError` suggesting the closest."""
    lookup(CORRUPTIONS, name, "corruption")
    return name


def check_severity(severity) -> int:
    """``severity`` as an int, or a ``ValueError`` unless it is an integer in 0..:data:`MAX_SEVERITY`."""
    if isinstance(severity, bool) or not float(severity).is_integer() or not 0 <= severity <= MAX_SEVERITY:
        raise ValueError(f"severity must be an integer in 0..{MAX_SEVERITY}, got {severity!r}")
    return int(severity)


# --------------------------------------------------------------------------- geometry helpers


def _face_points(landmarks, n: int, h: int, w: int, device) -> dict[str, torch.Tensor]:
    """Per-image anchor points in pixels (each a tensor [n]) from landmarks or :data:`FACE_BOX`."""
    if landmarks is None:
        one = torch.ones(n, device=device)
        box = {**FACE_BOX, "mouth_x": FACE_BOX["centre_x"]}
        return {key: one * fraction * (h if key.endswith("_y") else w) for key, fraction in box.items()}
    lm = torch.as_tensor(np.asarray(landmarks), dtype=torch.float32, device=device).reshape(n, -1, 2)
    if lm.shape[1] != 27:
        raise ValueError(f"landmarks must be [B, 27, 2] in LANDMARK_NAMES order, got {list(lm.shape)}")
    x, y = lm[..., 0], lm[..., 1]
    eyes = slice(6, 14)
    return {
        "eyes_y": y[:, eyes].mean(1),
        "eyes_left_x": x[:, 6],
        "eyes_right_x": x[:, 12],
        "nose_y": y[:, 15],
        "mouth_y": y[:, 18:24].mean(1),
        "mouth_x": x[:, 18:24].mean(1),
        "mouth_left_x": x[:, 18],
        "mouth_right_x": x[:, 23],
        "chin_y": y[:, 24],
        "jaw_left_x": x[:, 25],
        "jaw_right_x": x[:, 26],
        "centre_x": x[:, 14],
        "brows_y": y[:, 0:6].mean(1),
    }


def _grid(n: int, h: int, w: int, device) -> tuple[torch.Tensor, torch.Tensor]:
    """Pixel-centre coordinates ``[n, 1, H, W]`` (x, y)."""
    ys = torch.arange(h, device=device, dtype=torch.float32) + 0.5
    xs = torch.arange(w, device=device, dtype=torch.float32) + 0.5
    gy, gx = torch.meshgrid(ys, xs, indexing="ij")
    return gx.expand(n, 1, h, w), gy.expand(n, 1, h, w)


def _soft_box(gx, gy, x0, x1, y0, y1) -> torch.Tensor:
    """Anti-aliased coverage in [0, 1] of the boxes [x0, x1] x [y0, y1] (tensors [n])."""

    def edge(g, low, high):
        low, high = low.view(-1, 1, 1, 1), high.view(-1, 1, 1, 1)
        return (torch.clamp(g + 0.5 - low, 0, 1)) * torch.clamp(high - (g - 0.5), 0, 1)

    return torch.clamp(edge(gx, x0, x1), 0, 1) * torch.clamp(edge(gy, y0, y1), 0, 1)


def _soft_ellipse(gx, gy, cx, cy, rx, ry) -> torch.Tensor:
    """Anti-aliased coverage of ellipses (tensors [n]); grows pixel-wise with the radii."""
    cx, cy, rx, ry = (t.view(-1, 1, 1, 1) for t in (cx, cy, rx, ry))
    r = torch.sqrt(((gx - cx) / rx) ** 2 + ((gy - cy) / ry) ** 2)
    # distance to the boundary in pixels, approximately, along the smaller radius
    return torch.clamp((1 - r) * torch.minimum(rx, ry) + 0.5, 0, 1)


def _luma(rgb: torch.Tensor, channels: int) -> torch.Tensor:
    """Colours [n, 3] as [n, C, 1, 1] for a C-channel image (grey uses their luminance)."""
    if channels == 3:
        return rgb.view(-1, 3, 1, 1)
    grey = (rgb * torch.tensor([0.299, 0.587, 0.114], device=rgb.device)).sum(1)
    return grey.view(-1, 1, 1, 1).expand(-1, channels, 1, 1)


def _blend(x: torch.Tensor, alpha: torch.Tensor, fill: torch.Tensor) -> torch.Tensor:
    return x * (1 - alpha) + fill * alpha


def affine_warp(x: torch.Tensor, theta: torch.Tensor, padding: str = "border") -> torch.Tensor:
    """Warp ``x`` [n, C, H, W] by per-image affine maps ``theta`` [n, 2, 3] (normalised output ->
    input coordinates), bilinear, with the border pixels repeated outside the image (or zeros,
    ``padding="zeros"``)."""
    grid = F.affine_grid(theta, list(x.shape), align_corners=False)
    return F.grid_sample(x, grid, mode="bilinear", padding_mode=padding, align_corners=False)


# --------------------------------------------------------------------------- the corruptions


def _apply(name: str, x: torch.Tensor, s: int, u: torch.Tensor, gen: torch.Generator, points) -> torch.Tensor:
    """Corruption ``name`` at severity ``s`` (1..5) of float32 images ``x`` [n, C, H, W];
    ``u`` [n, 8] are per-image uniforms, ``gen`` draws the noise fields."""
    import torchvision.transforms.v2.functional as TF

    n, c, h, w = x.shape
    scale = min(h, w) / 32.0
    i = s - 1
    if name == "brightness":
        return torch.clamp(x + _BRIGHTNESS[i], 0, 1)
    if name == "low_light":
        gamma, gain = _LOW_LIGHT[i]
        return torch.clamp(TF.adjust_gamma(x, gamma, gain), 0, 1)
    if name == "contrast":
        # torchvision's adjust_contrast blends with the mean grey level of each image
        return torch.clamp(TF.adjust_contrast(x, _CONTRAST[i]), 0, 1) if c in (1, 3) else x
    if name == "gaussian_noise":
        noise = torch.randn(x.shape, generator=gen)
        return torch.clamp(x + _GAUSSIAN_NOISE[i] * noise.to(x.device), 0, 1)
    if name == "shot_noise":
        # Poisson noise in its Gaussian approximation: variance x / photons, one normal field
        # for every severity (so that the noise grows monotonically with it).
        noise = torch.randn(x.shape, generator=gen).to(x.device)
        return torch.clamp(x + torch.sqrt(x.clamp_min(0) / _SHOT_NOISE[i]) * noise, 0, 1)
    if name == "gaussian_blur":
        sigma = _BLUR_SIGMA[i] * scale
        k = 2 * math.ceil(3 * sigma) + 1
        return TF.gaussian_blur(x, [k, k], [sigma, sigma])
    if name == "motion_blur":
        return _motion_blur(x, max(_MOTION_LENGTH[i] * w, 1.5), u[:, 0] * math.pi)
    if name == "jpeg":
        as_bytes = (x * 255).round().clamp(0, 255).to(torch.uint8)
        return TF.jpeg(as_bytes.cpu(), _JPEG_QUALITY[i]).to(x.device, torch.float32) / 255.0
    if name == "pixelate":
        # Blocks of k x k pixels replaced by their mean (the last row and column of blocks may be
        # partial). The grids nest (k = b, 2b, 4b), so each coarser image is an average of the finer
        # one, and odd severities blend two neighbouring grids: the RMS distance from the clean
        # image then grows with the severity by construction (nested projections).
        base = 2 ** max(1, round(math.log2(max(2.0 * scale, 1.0))))
        level, weight = _PIXELATE[i]

        def blocks(k: int) -> torch.Tensor:
            means = F.avg_pool2d(x, k, stride=k, ceil_mode=True, count_include_pad=False)
            return means.repeat_interleave(k, -2).repeat_interleave(k, -1)[..., :h, :w]

        fine = blocks(base * 2**level)
        return fine if weight == 0 else (1 - weight) * fine + weight * blocks(base * 2 ** (level + 1))
    if name == "rotation":
        angle = torch.deg2rad(_ROTATION[i] * torch.where(u[:, 0] < 0.5, -1.0, 1.0)).to(x.device)
        cos, sin = torch.cos(angle), torch.sin(angle)
        zero = torch.zeros_like(cos)
        theta = torch.stack([torch.stack([cos, -sin, zero], 1), torch.stack([sin, cos, zero], 1)], 1)
        return affine_warp(x, theta)
    if name == "pose":
        # An out-of-plane turn (yaw) by an affine approximation: the face is compressed towards
        # the side it turns to (cos yaw), sheared a little and tilted a little (roll).
        side = torch.where(u[:, 0] < 0.5, -1.0, 1.0).to(x.device)
        yaw = math.radians(_POSE[i])
        squeeze = math.cos(yaw)
        roll = math.radians(_POSE[i] / 5) * side
        shift = side * (1 - squeeze) * 0.6
        zero = torch.zeros_like(side)
        cos, sin = torch.cos(roll), torch.sin(roll)
        theta = torch.stack(
            [
                torch.stack([cos / squeeze, -sin + 0.15 * math.sin(yaw) * side, shift], 1),
                torch.stack([sin, cos, zero], 1),
            ],
            1,
        )
        return affine_warp(x, theta)
    gx, gy = _grid(n, h, w, x.device)
    p = points
    if name == "occlusion_eyes":
        half = _EYES_BAND[i] * h
        width = p["eyes_right_x"] - p["eyes_left_x"]
        x0, x1 = p["eyes_left_x"] - 0.25 * width, p["eyes_right_x"] + 0.25 * width
        alpha = _soft_box(gx, gy, x0, x1, p["eyes_y"] - half, p["eyes_y"] + half)
        fill = _luma(torch.full((n, 3), 0.08, device=x.device), c)
        return _blend(x, alpha, fill)
    if name == "occlusion_lower_face":
        top = torch.minimum(p["mouth_y"] + _LOWER_FACE[i] * h, p["chin_y"])
        alpha = _soft_box(gx, gy, p["jaw_left_x"], p["jaw_right_x"], top, p["chin_y"] + 0.1 * h)
        blue = torch.tensor([0.75, 0.85, 0.92], device=x.device) * (0.9 + 0.1 * u[:, 1:2].to(x.device))
        return _blend(x, alpha, _luma(blue, c))
    if name == "occlusion_mouth":
        half_w = _MOUTH[i] * w
        half_h = 0.55 * _MOUTH[i] * h
        cx, cy = p["mouth_x"], p["mouth_y"]
        alpha = _soft_box(gx, gy, cx - half_w, cx + half_w, cy - half_h, cy + half_h)
        grey = (0.2 + 0.6 * u[:, 1:2].to(x.device)).expand(n, 3)
        return _blend(x, alpha, _luma(grey, c))
    if name == "occlusion_patch":
        side = _PATCH[i] * min(h, w)
        # centre anywhere on the face, between the brows and the chin
        cx = p["jaw_left_x"] + u[:, 2].to(x.device) * (p["jaw_right_x"] - p["jaw_left_x"])
        cy = p["brows_y"] + u[:, 3].to(x.device) * (p["chin_y"] - p["brows_y"])
        alpha = _soft_box(gx, gy, cx - side / 2, cx + side / 2, cy - side / 2, cy + side / 2)
        grey = u[:, 1:2].to(x.device).expand(n, 3)
        return _blend(x, alpha, _luma(grey, c))
    if name == "occlusion_hand":
        ry = _HAND[i] * h
        rx = 0.75 * ry
        # over the mouth, or a cheek, as a hand raised to the face
        where = (u[:, 2] * 3).floor().to(x.device)  # 0 left cheek, 1 mouth, 2 right cheek
        cx = torch.where(
            where == 1,
            p["mouth_x"],
            torch.where(
                where == 0, (p["jaw_left_x"] + p["mouth_left_x"]) / 2, (p["jaw_right_x"] + p["mouth_right_x"]) / 2
            ),
        )
        cy = torch.where(where == 1, p["mouth_y"], (p["nose_y"] + p["mouth_y"]) / 2)
        alpha = _soft_ellipse(gx, gy, cx, cy + 0.3 * ry, rx * torch.ones_like(cx), ry * torch.ones_like(cx))
        from ferlib.data.synth import SKIN_TONES_RGB  # lazily: the synth package is heavier than this one

        tones = torch.as_tensor(SKIN_TONES_RGB, device=x.device)
        tone = tones[(u[:, 4] * len(tones)).long().clamp(max=len(tones) - 1).to(x.device)]
        # a little shading across the hand, fixed per pixel (so coverage alone grows with severity)
        shade = 0.85 + 0.15 * torch.clamp((gy - cy.view(-1, 1, 1, 1)) / (2 * ry) + 0.5, 0, 1)
        return _blend(x, alpha, _luma(tone, c) * shade)
    raise AssertionError(name)  # pragma: no cover - names are checked before


def _motion_blur(x: torch.Tensor, length: float, angle: torch.Tensor) -> torch.Tensor:
    """Average along a line of ``length`` pixels at per-image ``angle`` (radians)."""
    n, c, h, w = x.shape
    half = int(math.ceil(length / 2))
    k = 2 * half + 1
    offsets = torch.linspace(-length / 2, length / 2, 4 * k)
    coords = torch.arange(k, dtype=torch.float32) - half
    dx = torch.cos(angle.cpu())[:, None] * offsets[None]  # [n, S]
    dy = torch.sin(angle.cpu())[:, None] * offsets[None]
    # bilinear splat of the sample points onto the kernel grid
    wx = torch.clamp(1 - (dx[:, :, None] - coords[None, None]).abs(), min=0)  # [n, S, k]
    wy = torch.clamp(1 - (dy[:, :, None] - coords[None, None]).abs(), min=0)
    kernel = torch.einsum("nsi,nsj->nij", wy, wx)
    kernel = kernel / kernel.sum((1, 2), keepdim=True)
    weight = kernel.to(x.device).repeat_interleave(c, 0).unsqueeze(1)  # [n*C, 1, k, k]
    padded = F.pad(x.reshape(1, n * c, h, w), (half, half, half, half), mode="replicate")
    return F.conv2d(padded, weight, groups=n * c).reshape(n, c, h, w)


def corrupt(
    x: torch.Tensor,
    name: str,
    severity: int,
    seed: int = 0,
    *,
    landmarks=None,
    per_frame: bool = False,
) -> torch.Tensor:
    """Corruption ``name`` of :func:`list_corruptions` at ``severity`` 0 (none) to 5.

    Parameters
    ----------
    x : float images in [0, 1], ``[B, C, H, W]``, ``[C, H, W]`` or clips ``[B, T, C, H, W]``.
    seed : fixes every random draw (noise, angles, occluder places and colours); the draws do
        not depend on ``severity``.
    landmarks : optional ``[B, 27, 2]`` (or ``[B, T, 27, 2]`` for clips) landmark pixels in
        :data:`ferlib.data.synth.LANDMARK_NAMES` order, to place occluders; without them the
        :data:`FACE_BOX` proportions of a centred face are used.
    per_frame : for clips, ``False`` (default) keeps one corruption through each clip (the
        same angle, occluder and colour in every frame; noise fields are still fresh per frame,
        as a camera's); ``True`` draws them anew for every frame.

    Returns a tensor of the same shape and dtype, in [0, 1]; ``severity=0`` returns a copy of ``x``.

    >>> import torch
    >>> x = torch.full((2, 1, 32, 32), 0.5)
    >>> corrupt(x, "brightness", 3).mean().item() > 0.5
    True
    """
    check_corruption(name)
    severity = check_severity(severity)
    if not torch.is_tensor(x) or not x.is_floating_point():
        raise TypeError(f"corrupt expects a float tensor in [0, 1], got {getattr(x, 'dtype', type(x))}")
    if x.dim() not in (3, 4, 5):
        raise ValueError(f"expected [C, H, W], [B, C, H, W] or [B, T, C, H, W], got shape {list(x.shape)}")
    if severity == 0:
        return x.clone()
    shape, dtype = x.shape, x.dtype
    if x.dim() == 3:
        x = x.unsqueeze(0)
        landmarks = None if landmarks is None else np.asarray(landmarks)[None]
    b = x.shape[0]
    frames = x.shape[1] if x.dim() == 5 else 1
    flat = x.reshape(b * frames, *x.shape[-3:]).float()
    gen = torch.Generator().manual_seed(int(seed) % (2**63))
    units = b * frames if per_frame else b
    u = torch.rand(units, 8, generator=gen)
    if not per_frame:
        u = u.repeat_interleave(frames, 0)
    if landmarks is not None:
        lm = np.asarray(landmarks, dtype=np.float32)
        if lm.ndim == 3 and frames > 1:  # one set per clip
            lm = np.repeat(lm, frames, axis=0)
        landmarks = lm.reshape(b * frames, -1, 2)
    points = None
    if name.startswith("occlusion_"):
        points = _face_points(landmarks, b * frames, flat.shape[-2], flat.shape[-1], flat.device)
    out = _apply(name, flat, severity, u, gen, points)
    return out.clamp(0, 1).reshape(shape).to(dtype)
