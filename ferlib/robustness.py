"""Robustness of expression classifiers: corruptions, adversarial examples, occlusion maps, remedies.

Corruptions
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

Face geometry
    Occluders are placed from facial landmarks when they are given (``landmarks=[B, 27, 2]`` in
    pixels, in the order of :data:`ferlib.data.synth.LANDMARK_NAMES`, as SynthFER's
    ``meta["landmarks"]``); otherwise from the proportions of a centred, aligned face crop
    (:data:`FACE_BOX`: eyes at 37% of the height, nose tip at 50%, mouth at 64%, the face
    between 14% and 86% of the width), which SynthFER's faces and the aligned crops of FER2013,
    RAF-DB or AffectNet follow closely.

Adversarial examples
    :func:`fgsm` (Goodfellow et al. 2015) and :func:`pgd` (Madry et al. 2018) are L-infinity
    attacks with ``eps`` in [0, 1] pixel units; the book quotes it in 1/255 steps of an 8-bit
    image (``eps=8/255`` is "8/255"). Both clamp to [0, 1] and put the model in eval mode,
    restoring its mode afterwards.

Remedies
    :func:`augmentation_policy` builds the training-time augmentations ``ferlib.fit`` accepts as
    ``augment=``; ``fit(adversarial="fgsm" | "pgd")`` trains on adversarial batches.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

__all__ = [
    "ATTACKS",
    "CORRUPTIONS",
    "FACE_BOX",
    "FAMILIES",
    "POLICIES",
    "adversarial_accuracy",
    "augmentation_policy",
    "class_sensitivity",
    "corrupt",
    "corruption_error",
    "evaluate_robustness",
    "fgsm",
    "list_corruptions",
    "mce",
    "occlusion_sensitivity",
    "pgd",
    "run_attack",
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
ATTACKS = ("fgsm", "pgd")
POLICIES = ("trivialaugment", "randaugment", "random_erasing", "occlusion", "affine")

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
        raise ValueError(f"unknown corruption family {family!r}: expected one of {', '.join(FAMILIES)}")
    return [name for name, fam in CORRUPTIONS.items() if fam == family]


def _check_name(name: str) -> None:
    if name not in CORRUPTIONS:
        raise ValueError(f"unknown corruption {name!r}: expected one of {', '.join(CORRUPTIONS)}")


def _check_severity(severity) -> int:
    if isinstance(severity, bool) or not float(severity).is_integer() or not 0 <= severity <= MAX_SEVERITY:
        raise ValueError(f"severity must be an integer in 0..{MAX_SEVERITY}, got {severity!r}")
    return int(severity)


# --------------------------------------------------------------------------- geometry helpers


def _face_points(landmarks, n: int, h: int, w: int, device) -> dict[str, torch.Tensor]:
    """Per-image anchor points in pixels (each a tensor [n]) from landmarks or :data:`FACE_BOX`."""
    if landmarks is None:
        one = torch.ones(n, device=device)
        b = FACE_BOX
        return {
            "eyes_y": one * b["eyes_y"] * h,
            "eyes_left_x": one * b["eyes_left_x"] * w,
            "eyes_right_x": one * b["eyes_right_x"] * w,
            "nose_y": one * b["nose_y"] * h,
            "mouth_y": one * b["mouth_y"] * h,
            "mouth_x": one * b["centre_x"] * w,
            "mouth_left_x": one * b["mouth_left_x"] * w,
            "mouth_right_x": one * b["mouth_right_x"] * w,
            "chin_y": one * b["chin_y"] * h,
            "jaw_left_x": one * b["jaw_left_x"] * w,
            "jaw_right_x": one * b["jaw_right_x"] * w,
            "centre_x": one * b["centre_x"] * w,
            "brows_y": one * b["brows_y"] * h,
        }
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


def _affine(x: torch.Tensor, theta: torch.Tensor, padding: str = "border") -> torch.Tensor:
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
        return _affine(x, theta)
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
        return _affine(x, theta)
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
        from ferlib.data.synth_render import SKIN_TONES_RGB

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
    _check_name(name)
    severity = _check_severity(severity)
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


# --------------------------------------------------------------------------- adversarial examples


def _loss_gradient(model: nn.Module, x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
    with torch.enable_grad():
        x = x.detach().requires_grad_(True)
        loss = F.cross_entropy(model(x).float(), y)
        (grad,) = torch.autograd.grad(loss, x)
    return grad


class _EvalMode:
    """Put a model in eval mode for the duration of a ``with`` block, then restore it."""

    def __init__(self, model: nn.Module):
        self.model, self.was_training = model, model.training

    def __enter__(self):
        self.model.eval()

    def __exit__(self, *exc):
        self.model.train(self.was_training)


def _check_eps(eps: float) -> float:
    eps = float(eps)
    if not 0.0 <= eps <= 1.0:
        raise ValueError(f"eps must be in [0, 1] (pixel units: 8/255 is 0.031), got {eps}")
    return eps


def fgsm(
    model: nn.Module,
    x: torch.Tensor,
    y: torch.Tensor,
    eps: float,
    *,
    random_start: bool = False,
    alpha: float | None = None,
    seed: int = 0,
) -> torch.Tensor:
    """Fast gradient sign method (Goodfellow et al. 2015): ``x + eps * sign(grad_x loss)``, in [0, 1].

    ``random_start=True`` is the "fast" variant of Wong et al. (2020): start from a uniform point
    of the eps-ball and step ``alpha`` (default ``1.25 * eps``), then project back onto the ball.
    ``eps`` is in [0, 1] pixel units (the book quotes it in 1/255). ``eps=0`` returns ``x``.
    """
    eps = _check_eps(eps)
    if eps == 0:
        return x.clone()
    with _EvalMode(model):
        start = x
        if random_start:
            gen = torch.Generator().manual_seed(int(seed))
            noise = (torch.rand(x.shape, generator=gen) * 2 - 1).to(x.device, x.dtype)
            start = torch.clamp(x + eps * noise, 0, 1)
        step = eps if not random_start else (1.25 * eps if alpha is None else alpha)
        grad = _loss_gradient(model, start, y)
        adv = start + step * grad.sign()
        adv = torch.min(torch.max(adv, x - eps), x + eps)
    return adv.clamp(0, 1).detach()


def pgd(
    model: nn.Module,
    x: torch.Tensor,
    y: torch.Tensor,
    eps: float,
    steps: int = 10,
    alpha: float | None = None,
    seed: int = 0,
) -> torch.Tensor:
    """Projected gradient descent (Madry et al. 2018), L-infinity, from a random start in the ball.

    Each of ``steps`` steps moves ``alpha`` (default ``2.5 * eps / steps``) along the sign of the
    loss gradient and projects onto the eps-ball around ``x`` and onto [0, 1]. ``eps=0`` returns ``x``.
    """
    eps = _check_eps(eps)
    if steps < 1:
        raise ValueError(f"steps must be >= 1, got {steps}")
    if eps == 0:
        return x.clone()
    alpha = 2.5 * eps / steps if alpha is None else float(alpha)
    gen = torch.Generator().manual_seed(int(seed))
    noise = (torch.rand(x.shape, generator=gen) * 2 - 1).to(x.device, x.dtype)
    adv = torch.clamp(x + eps * noise, 0, 1)
    with _EvalMode(model):
        for _ in range(steps):
            grad = _loss_gradient(model, adv, y)
            adv = adv.detach() + alpha * grad.sign()
            adv = torch.min(torch.max(adv, x - eps), x + eps).clamp(0, 1)
    return adv.detach()


def run_attack(model, x, y, name: str, eps: float, *, steps: int = 10, alpha=None, seed: int = 0) -> torch.Tensor:
    """Dispatch to :func:`fgsm` or :func:`pgd` by ``name``."""
    if name == "fgsm":
        return fgsm(model, x, y, eps, seed=seed)
    if name == "pgd":
        return pgd(model, x, y, eps, steps=steps, alpha=alpha, seed=seed)
    raise ValueError(f"unknown attack {name!r}: expected one of {', '.join(ATTACKS)}")


# --------------------------------------------------------------------------- evaluation


def _batches(data, batch_size: int):
    from torch.utils.data import DataLoader

    from ferlib.data.collate import collate_samples

    if isinstance(data, DataLoader):
        return data
    return DataLoader(data, batch_size=batch_size, shuffle=False, collate_fn=collate_samples)


def _batch_landmarks(batch) -> np.ndarray | None:
    if len(batch) < 3 or batch[2] is None:
        return None
    metas = batch[2]
    if not all(isinstance(m, dict) and "landmarks" in m for m in metas):
        return None
    return np.stack([np.asarray(m["landmarks"], dtype=np.float32) for m in metas])


def evaluate_robustness(
    model: nn.Module,
    data,
    corruptions: Sequence[str] | None = None,
    severities: Sequence[int] = (1, 2, 3, 4, 5),
    *,
    batch_size: int = 256,
    device: str | torch.device = "auto",
    seed: int = 0,
    use_landmarks: bool = True,
):
    """Accuracy of ``model`` on ``data`` under every corruption and severity, as a tidy DataFrame.

    Columns ``corruption``, ``family``, ``severity``, ``accuracy``, ``n``; the first row is the
    clean accuracy (``corruption="clean"``, ``severity=0``). ``corruptions`` defaults to all of
    :func:`list_corruptions`. Occluders are placed from ``meta["landmarks"]`` when the samples
    carry them and ``use_landmarks`` is true. Each batch gets its own seed, ``seed + batch index``.
    """
    import pandas as pd

    from ferlib.runtime import resolve_device

    names = list(CORRUPTIONS) if corruptions is None else list(corruptions)
    for name in names:
        _check_name(name)
    severities = [_check_severity(s) for s in severities]
    device = resolve_device(device)
    correct: dict[tuple[str, int], int] = {("clean", 0): 0}
    total = 0
    with _EvalMode(model), torch.no_grad():
        model.to(device)
        for index, batch in enumerate(_batches(data, batch_size)):
            x, y = batch[0].to(device), torch.as_tensor(batch[1]).to(device)
            landmarks = _batch_landmarks(batch) if use_landmarks else None
            total += len(y)
            correct[("clean", 0)] += int((model(x).argmax(1) == y).sum())
            for name in names:
                for s in severities:
                    xc = corrupt(x, name, s, seed=seed + index, landmarks=landmarks)
                    key = (name, s)
                    correct[key] = correct.get(key, 0) + int((model(xc).argmax(1) == y).sum())
    if total == 0:
        raise ValueError("the dataset is empty: nothing to evaluate")
    rows = [
        {
            "corruption": name,
            "family": CORRUPTIONS.get(name, "clean"),
            "severity": s,
            "accuracy": count / total,
            "n": total,
        }
        for (name, s), count in correct.items()
    ]
    return pd.DataFrame(rows)


def corruption_error(results, reference_results):
    """Corruption errors after Hendrycks & Dietterich (2019), one row per corruption.

    ``ce`` is ``sum_s err(c, s) / sum_s err_ref(c, s)`` over the severities both tables share;
    ``relative_ce`` is ``sum_s (err(c, s) - err_clean) / sum_s (err_ref(c, s) - err_ref_clean)``
    (the drop from clean accuracy, relative to the reference's), when both tables hold a clean row.
    Both tables are :func:`evaluate_robustness` outputs; the reference is e.g. a baseline CNN.
    """
    import pandas as pd

    a = results[results.corruption != "clean"]
    b = reference_results[reference_results.corruption != "clean"]
    merged = a.merge(b, on=["corruption", "severity"], suffixes=("", "_ref"))
    if merged.empty:
        raise ValueError("the two result tables share no (corruption, severity) rows")

    def clean_error(frame):
        row = frame[frame.corruption == "clean"]
        return float(1 - row.accuracy.iloc[0]) if len(row) else float("nan")

    clean, clean_ref = clean_error(results), clean_error(reference_results)
    rows = []
    for name, group in merged.groupby("corruption", sort=False):
        err, err_ref = 1 - group.accuracy, 1 - group.accuracy_ref
        denominator = float(err_ref.sum())
        relative_den = float((err_ref - clean_ref).sum())
        rows.append(
            {
                "corruption": name,
                "family": CORRUPTIONS.get(name, ""),
                "ce": float(err.sum()) / denominator if denominator > 0 else float("nan"),
                "relative_ce": float((err - clean).sum()) / relative_den if relative_den > 0 else float("nan"),
            }
        )
    return pd.DataFrame(rows)


def mce(results, reference_results) -> float:
    """Mean corruption error: the mean over corruptions of :func:`corruption_error`'s ``ce``
    (1 for the reference itself; below 1 is more robust than the reference)."""
    return float(corruption_error(results, reference_results).ce.mean())


def adversarial_accuracy(
    model: nn.Module,
    data,
    eps_list: Sequence[float],
    attack: str = "pgd",
    *,
    steps: int = 10,
    alpha: float | None = None,
    batch_size: int = 256,
    device: str | torch.device = "auto",
    seed: int = 0,
):
    """Accuracy under an L-infinity ``attack`` (``"pgd"`` or ``"fgsm"``) at each ``eps`` (in [0, 1]).

    Returns a DataFrame with ``attack``, ``eps``, ``eps_255`` (``eps * 255``), ``accuracy`` and ``n``.
    """
    import pandas as pd

    from ferlib.runtime import resolve_device

    if attack not in ATTACKS:
        raise ValueError(f"unknown attack {attack!r}: expected one of {', '.join(ATTACKS)}")
    eps_list = [_check_eps(e) for e in eps_list]
    device = resolve_device(device)
    model.to(device)
    correct = [0] * len(eps_list)
    total = 0
    for index, batch in enumerate(_batches(data, batch_size)):
        x, y = batch[0].to(device), torch.as_tensor(batch[1]).to(device)
        total += len(y)
        for k, eps in enumerate(eps_list):
            adv = run_attack(model, x, y, attack, eps, steps=steps, alpha=alpha, seed=seed + index)
            with _EvalMode(model), torch.no_grad():
                correct[k] += int((model(adv).argmax(1) == y).sum())
    if total == 0:
        raise ValueError("the dataset is empty: nothing to evaluate")
    return pd.DataFrame(
        [
            {"attack": attack, "eps": eps, "eps_255": round(eps * 255, 6), "accuracy": c / total, "n": total}
            for eps, c in zip(eps_list, correct, strict=True)
        ]
    )


@torch.no_grad()
def occlusion_sensitivity(
    model: nn.Module,
    images: torch.Tensor,
    labels,
    patch: int = 8,
    stride: int = 4,
    *,
    fill: float = 0.5,
    batch_size: int = 256,
    device: str | torch.device = "auto",
) -> np.ndarray:
    """Occlusion maps (Zeiler & Fergus 2014): the drop in the true-class probability when a grey
    ``patch`` x ``patch`` square (value ``fill``) covers each position, slid with ``stride``.

    Returns ``[N, H, W]``: each pixel holds the mean drop over the patch positions covering it
    (positive: hiding it hurts the true class; negative: hiding it helps).
    """
    from ferlib.runtime import resolve_device

    if patch < 1 or stride < 1:
        raise ValueError(f"patch and stride must be >= 1, got {patch} and {stride}")
    device = resolve_device(device)
    images = images.to(device).float()
    if images.dim() == 3:
        images = images.unsqueeze(0)
    labels = torch.as_tensor(np.asarray(labels), device=device).long().reshape(-1)
    n, c, h, w = images.shape
    if patch > min(h, w):
        raise ValueError(f"patch {patch} is larger than the image ({h}x{w})")
    ys = list(range(0, h - patch + 1, stride))
    xs = list(range(0, w - patch + 1, stride))
    if ys[-1] != h - patch:
        ys.append(h - patch)
    if xs[-1] != w - patch:
        xs.append(w - patch)
    positions = [(py, px) for py in ys for px in xs]
    drop = torch.zeros(n, h, w, device=device)
    cover = torch.zeros(h, w, device=device)
    rows = torch.arange(n, device=device)
    with _EvalMode(model):
        model.to(device)
        clean = torch.softmax(model(images).float(), 1)[rows, labels]
        per_chunk = max(1, batch_size // max(n, 1))
        for start in range(0, len(positions), per_chunk):
            chunk = positions[start : start + per_chunk]
            batch = images.repeat(len(chunk), 1, 1, 1)
            for k, (py, px) in enumerate(chunk):
                batch[k * n : (k + 1) * n, :, py : py + patch, px : px + patch] = fill
            probs = torch.softmax(model(batch).float(), 1)
            probs = probs[torch.arange(len(batch), device=device), labels.repeat(len(chunk))]
            for k, (py, px) in enumerate(chunk):
                drop[:, py : py + patch, px : px + patch] += (clean - probs[k * n : (k + 1) * n]).view(n, 1, 1)
                cover[py : py + patch, px : px + patch] += 1
    return (drop / cover.clamp_min(1)).cpu().numpy()


def class_sensitivity(maps, labels, num_classes: int | None = None) -> np.ndarray:
    """Per-class mean of :func:`occlusion_sensitivity` maps: ``[K, H, W]`` (NaN for absent classes)."""
    maps = np.asarray(maps, dtype=np.float64)
    labels = np.asarray(labels).reshape(-1)
    k = int(labels.max()) + 1 if num_classes is None else num_classes
    out = np.full((k, *maps.shape[1:]), np.nan)
    for cls in range(k):
        if (labels == cls).any():
            out[cls] = maps[labels == cls].mean(0)
    return out


# --------------------------------------------------------------------------- remedies


def _per_sample(transform: Callable, as_uint8: bool) -> Callable[[torch.Tensor], torch.Tensor]:
    """Apply a torchvision transform to each sample of a batch (one random op per sample).

    torchvision's auto-augment transforms draw one operation per call, so called on a batch
    they would give every image the same op; here each sample (or each clip) draws its own.
    """

    def apply(x: torch.Tensor) -> torch.Tensor:
        dtype = x.dtype
        source = (x.detach() * 255).round().clamp(0, 255).to(torch.uint8).cpu() if as_uint8 else x.detach().cpu()
        out = torch.stack([transform(sample) for sample in source])
        out = out.float() / 255.0 if as_uint8 else out
        return out.to(x.device, dtype)

    return apply


def _occlusion_augment(p: float, severities: tuple[int, int]) -> Callable[[torch.Tensor], torch.Tensor]:
    """SynthFER-style occluders from :func:`corrupt`, one random kind and severity per sample."""
    kinds = list_corruptions("occlusion")

    def apply(x: torch.Tensor) -> torch.Tensor:
        n = x.shape[0]
        draw = torch.rand(n)
        kind = torch.randint(len(kinds), (n,))
        level = torch.randint(severities[0], severities[1] + 1, (n,))
        seed = int(torch.randint(2**31 - 1, ()))
        out = x.clone()
        for k, name in enumerate(kinds):
            for s in range(severities[0], severities[1] + 1):
                chosen = ((draw < p) & (kind == k) & (level == s)).nonzero().flatten()
                if len(chosen):
                    index = chosen.to(x.device)
                    out[index] = corrupt(x[index], name, s, seed=seed + 31 * k + s)
        return out

    return apply


def _affine_augment(
    degrees: float = 10.0, scale: tuple[float, float] = (0.9, 1.1), translate: float = 0.05
) -> Callable[[torch.Tensor], torch.Tensor]:
    """Random rotation, scale and shift of every sample of a batch in one ``grid_sample`` call.

    The batched counterpart of torchvision's ``RandomAffine`` (same zero fill outside the
    image): one draw per sample (per clip for ``[B, T, C, H, W]``), on the batch's device, with
    no loop over the samples, so it costs next to nothing beside a training step.
    """

    def apply(x: torch.Tensor) -> torch.Tensor:
        clip = x.dim() == 5
        n = x.shape[0]
        frames = x.flatten(0, 1) if clip else x
        draw = torch.rand(n, 4)  # from torch's global generator, which fit seeds every epoch
        angle = (draw[:, 0] * 2 - 1) * math.radians(degrees)
        factor = scale[0] + draw[:, 1] * (scale[1] - scale[0])
        shift = (draw[:, 2:] * 2 - 1) * translate * 2  # affine_grid's coordinates span [-1, 1]
        cos, sin = torch.cos(angle) / factor, torch.sin(angle) / factor  # output -> input: inverse scale
        theta = torch.stack(
            [torch.stack([cos, -sin, shift[:, 0]], 1), torch.stack([sin, cos, shift[:, 1]], 1)], 1
        )
        if clip:
            theta = theta.repeat_interleave(x.shape[1], 0)
        out = _affine(frames.float(), theta.to(frames.device, torch.float32), padding="zeros").to(x.dtype)
        return out.unflatten(0, x.shape[:2]) if clip else out

    return apply


def augmentation_policy(name: str | None, *, p: float = 0.5) -> Callable[[torch.Tensor], torch.Tensor] | None:
    """A training-batch augmentation ``x -> x`` (float in [0, 1], on any device) by name.

    ``"trivialaugment"``: TrivialAugmentWide (Müller & Hutter 2021), one random op and strength
    per sample. ``"randaugment"``: RandAugment (Cubuk et al. 2020), two ops at magnitude 9 per
    sample. ``"random_erasing"``: RandomErasing (Zhong et al. 2020) with probability ``p`` per
    sample. ``"occlusion"``: with probability ``p`` per sample, one of the FER occluders of
    :func:`corrupt` at a random severity 1-5. ``"affine"``: a random rotation (up to 10 degrees),
    scale (0.9-1.1) and shift (up to 5% of the side) of every sample, batched in one
    ``grid_sample`` call. Names joined by ``+`` apply in turn (``"affine+random_erasing"``).
    ``None`` returns ``None`` (no augmentation).
    Randomness comes from torch's global generator, which :func:`ferlib.fit` seeds every epoch.
    The torchvision policies loop over the samples on the CPU (a few ms per batch of 32x32 faces).
    """
    if name is None:
        return None
    from torchvision.transforms import v2

    if "+" in name:
        return v2.Compose([augmentation_policy(part, p=p) for part in name.split("+")])
    if name == "trivialaugment":
        return _per_sample(v2.TrivialAugmentWide(), as_uint8=True)
    if name == "randaugment":
        return _per_sample(v2.RandAugment(num_ops=2, magnitude=9), as_uint8=True)
    if name == "random_erasing":
        return _per_sample(v2.RandomErasing(p=p, value=0.5), as_uint8=False)
    if name == "occlusion":
        return _occlusion_augment(p, (1, MAX_SEVERITY))
    if name == "affine":
        return _affine_augment()
    raise ValueError(
        f"unknown augmentation policy {name!r}: expected one of {', '.join(POLICIES)}, names joined by '+', or None"
    )


def adversarial_batch(
    model: nn.Module, x: torch.Tensor, y: torch.Tensor, kind: str, eps: float, *, steps: int = 5, seed: int = 0
) -> torch.Tensor:
    """The adversarial training batch of ``fit(adversarial=kind)``: ``"fgsm"`` is FGSM from a random
    start with step ``1.25 * eps`` (Wong et al. 2020), ``"pgd"`` is PGD with ``steps`` steps
    (Madry et al. 2018)."""
    if kind == "fgsm":
        return fgsm(model, x, y, eps, random_start=True, seed=seed)
    if kind == "pgd":
        return pgd(model, x, y, eps, steps=steps, seed=seed)
    raise ValueError(f"unknown adversarial training {kind!r}: expected one of {', '.join(ATTACKS)} or None")
