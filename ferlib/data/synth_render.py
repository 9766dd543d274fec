"""The SynthFER renderer: batched, vectorised drawing of parametric faces.

Every face lives in a *canonical* frame (x to the subject's left in the image, y down, the face
half-width about 1). A pixel is mapped back into that frame through the head pose (roll, then a
2-D approximation of yaw and pitch in which each part shifts by its depth), and each part is an
analytic shape (ellipses, lid and lip curves, brow strokes) evaluated on a batched pixel grid.

Speed comes from three choices. Large smooth shapes (background, hair, face, neck, occluders) are
drawn once at the output size with analytic anti-aliasing (coverage from a signed distance).
Small detailed parts (eyes, lids, brows, wrinkles, nose, lips) are drawn in per-face patches
at ``supersample`` times the output resolution, area-downsampled, and composited into the
image; a patch is a few hundred pixels, so detail is cheap. And a batch is drawn in groups of
about a megabyte per layer (:func:`group_size`), which keeps the allocator from fetching fresh pages
from the kernel for every temporary; grouping never changes a pixel (see :func:`render`).

Everything here is deterministic: random fields are passed in by the caller.
"""

from __future__ import annotations

import math

import numpy as np
import torch
import torch.nn.functional as F

# Action units, in the order of the intensity arrays everywhere in SynthFER.
AU_NAMES: tuple[str, ...] = (
    "AU1", "AU2", "AU4", "AU5", "AU6", "AU7", "AU9", "AU10", "AU12",
    "AU15", "AU16", "AU17", "AU20", "AU23", "AU24", "AU25", "AU26", "AU45",
)  # fmt: skip
AU_INDEX = {name: i for i, name in enumerate(AU_NAMES)}

# The fixed landmark set returned in meta["landmarks"]: (x, y) in output pixels, image left first.
LANDMARK_NAMES: tuple[str, ...] = (
    "brow_left_outer", "brow_left_mid", "brow_left_inner",
    "brow_right_inner", "brow_right_mid", "brow_right_outer",
    "eye_left_outer", "eye_left_top", "eye_left_inner", "eye_left_bottom",
    "eye_right_inner", "eye_right_top", "eye_right_outer", "eye_right_bottom",
    "nose_bridge", "nose_tip", "nostril_left", "nostril_right",
    "mouth_left", "lip_upper_top", "lip_upper_inner", "lip_lower_inner", "lip_lower_bottom", "mouth_right",
    "chin", "jaw_left", "jaw_right",
)  # fmt: skip

# Skin albedo levels (sRGB-ish, light to dark); grayscale images use their luminance. Shading and
# texture always modulate them, so no tone is ever a flat fill.
SKIN_TONES_RGB = np.array(
    [
        [0.95, 0.83, 0.75], [0.89, 0.73, 0.61], [0.78, 0.60, 0.46],
        [0.64, 0.46, 0.33], [0.48, 0.33, 0.23], [0.34, 0.23, 0.16],
    ],
    dtype=np.float32,
)  # fmt: skip
LUMA = np.array([0.299, 0.587, 0.114], dtype=np.float32)

# Depth of each part, used for the 2-D yaw/pitch approximation (parts nearer the camera shift more).
DEPTH = {"face": 0.0, "brow": 0.32, "eye": 0.25, "forehead": 0.3, "nose": 0.62, "mouth": 0.42, "chin": 0.3}


def _above(d: torch.Tensor, level: float = 0.0) -> torch.Tensor:
    """``(d > level).float()``, the same 0/1 values about ten times faster (no bool tensor)."""
    return torch.gt(d, level, out=torch.empty_like(d))


def _below(d: torch.Tensor, level: float = 0.0) -> torch.Tensor:
    """``(d < level).float()``, as :func:`_above`."""
    return torch.lt(d, level, out=torch.empty_like(d))


def _cov(d: torch.Tensor, pixel: float | torch.Tensor) -> torch.Tensor:
    """Coverage of a pixel of size ``pixel`` by the region where the signed distance ``d`` > 0."""
    return d.div_(pixel).add_(0.5).clamp_(0.0, 1.0)  # in place: callers pass a fresh temporary


class Canvas:
    """Batched images being drawn: albedo per channel, foreground coverage and a skin mask."""

    def __init__(self, n: int, size: int, channels: int):
        self.n, self.size, self.channels = n, size, channels
        self.color = torch.zeros(channels, n, size, size)
        self.fg = torch.zeros(n, size, size)
        self.skin = torch.zeros(n, size, size)

    def over(self, alpha: torch.Tensor, color: torch.Tensor, fg: bool = True, skin: float | None = None):
        """Composite a layer; ``fg``/``skin`` also update the foreground and skin masks."""
        """Composite a layer of coverage ``alpha`` [N,H,W] and colour ``color`` [C,N,1,1] or [C,N,H,W]."""
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


def face_geometry(ID: dict, aus: torch.Tensor) -> dict:
    """Canonical positions of parts from identity parameters ``ID`` and AU intensities [N, A, 2]."""
    g = {}
    a = {name: aus[:, i, :] for i, name in enumerate(AU_NAMES)}  # [N,2] (image left, image right)
    col = {k: v.view(-1, 1) for k, v in ID.items() if v.dim() == 1}
    # Brows: inner / mid / outer heights (negative is up), per side.
    base = col["eye_y"] - col["brow_gap"]
    g["brow_inner_y"] = base + col["brow_tilt"] - 0.2 * a["AU1"] + 0.12 * a["AU4"] + 0.04 * a["AU9"]
    g["brow_mid_y"] = base - 0.035 - 0.09 * a["AU1"] - 0.14 * a["AU2"] + 0.1 * a["AU4"] + 0.03 * a["AU9"]
    g["brow_outer_y"] = base + 0.01 - 0.2 * a["AU2"] + 0.05 * a["AU4"] + 0.03 * a["AU9"]
    g["brow_inner_x"] = col["eye_dx"] - 0.9 * col["eye_w"] - 0.07 * a["AU4"]
    g["brow_outer_x"] = col["eye_dx"] + 1.25 * col["eye_w"]
    # Eyes: opening above and below the eye line.
    closing = (1 - a["AU45"]).clamp(0, 1)
    g["eye_up"] = (
        col["eye_h"]
        * (1 + 1.1 * a["AU5"] - 0.5 * a["AU7"] - 0.2 * a["AU4"] - 0.2 * a["AU6"] - 0.2 * a["AU9"]).clamp(
            0.05, 2.5
        )
        * closing
    )
    g["eye_lo"] = (
        col["eye_h"]
        * 0.75
        * (1 + 0.2 * a["AU5"] - 0.5 * a["AU6"] - 0.45 * a["AU7"] - 0.2 * a["AU9"]).clamp(0.05, 2)
        * closing
    )
    g["eye_y"] = col["eye_y"] + 0.35 * col["eye_h"] * a["AU45"] - 0.015 * a["AU6"]
    # Mouth: corner positions (relative to the mouth centre), lips and opening.
    g["corner_dx"] = (
        0.09 * a["AU12"]
        + 0.12 * a["AU20"]
        - 0.05 * a["AU23"]
        - 0.02 * a["AU24"]
        + 0.02 * a["AU10"]
        - 0.01 * a["AU15"]
    )
    g["corner_dy"] = (
        col["mouth_curve"]
        - 0.15 * a["AU12"]
        + 0.12 * a["AU15"]
        + 0.03 * a["AU20"]
        + 0.02 * a["AU17"]
        - 0.02 * a["AU10"]
        + 0.02 * a["AU16"]
    )
    lip = col["lip_th"] * (
        1 - 0.35 * a["AU23"] - 0.55 * a["AU24"] - 0.15 * a["AU20"] - 0.1 * a["AU12"]
    ).clamp(0.25, 1)
    g["lip_up"] = lip.mean(1, keepdim=True)
    g["lip_lo"] = 1.25 * g["lip_up"] + 0.01 * a["AU17"].mean(1, keepdim=True)
    mean = {k: v.mean(1, keepdim=True) for k, v in a.items()}
    g["open"] = 0.06 * mean["AU25"] + 0.2 * mean["AU26"] + 0.03 * mean["AU16"]
    g["teeth_up"] = (
        0.07 * mean["AU10"] + 0.02 * mean["AU12"] + 0.03 * mean["AU9"]
    )  # upper lip lifts off the teeth
    g["mouth_y"] = (
        col["mouth_y"] - 0.04 * mean["AU10"] - 0.03 * mean["AU17"] + 0.05 * mean["AU26"] - 0.02 * mean["AU9"]
    )
    g["mouth_w"] = col["mouth_w"]
    g["chin_y"] = col["face_h"] + 0.12 * mean["AU26"] + 0.04 * mean["AU25"] - 0.02 * mean["AU17"]
    g["nostril_lift"] = 0.04 * mean["AU9"] + 0.015 * mean["AU10"]
    g["fold"] = (
        0.06 + 0.25 * a["AU12"] + 0.3 * a["AU10"] + 0.3 * a["AU9"] + 0.1 * a["AU6"] + 0.2 * col["age"]
    ).clamp(0, 0.7)
    n = aus.shape[0]
    g = {k: v.expand(n, 2) for k, v in g.items()}  # every entry per side: [N, 2]
    g["au"] = a
    return g


def landmarks(ID: dict, g: dict, P: dict) -> torch.Tensor:
    """The :data:`LANDMARK_NAMES` points, [N, K, 2] in output pixels."""
    col = {k: v.view(-1, 1) for k, v in ID.items() if v.dim() == 1}
    pts = []  # (x, y, depth) columns in canonical units

    def add(x, y, z):
        pts.append((x.view(-1), y.view(-1), z))

    for side, sgn in ((0, -1), (1, 1)):
        bx = [g["brow_outer_x"], (g["brow_outer_x"] + g["brow_inner_x"]) / 2, g["brow_inner_x"]]
        by = [g["brow_outer_y"], g["brow_mid_y"], g["brow_inner_y"]]
        order = range(3) if side == 0 else range(2, -1, -1)
        for k in order:
            add(sgn * bx[k][:, side], by[k][:, side], DEPTH["brow"])
    for side, sgn in ((0, -1), (1, 1)):
        ex, ew, ey = col["eye_dx"][:, 0], col["eye_w"][:, 0], g["eye_y"][:, side]
        outer = (sgn * (ex + ew), ey - col["eye_tilt"][:, 0])
        inner = (sgn * (ex - ew), ey)
        top = (sgn * ex, ey - g["eye_up"][:, side])
        bottom = (sgn * ex, ey + g["eye_lo"][:, side])
        for p in (outer, top, inner, bottom) if side == 0 else (inner, top, outer, bottom):
            add(p[0], p[1], DEPTH["eye"])
    tip_y = col["eye_y"][:, 0] + col["nose_len"][:, 0]
    add(torch.zeros_like(tip_y), col["eye_y"][:, 0], DEPTH["nose"] * 0.6)
    add(torch.zeros_like(tip_y), tip_y, DEPTH["nose"])
    nost_y = tip_y + 0.03 - g["nostril_lift"][:, 0]
    add(-0.55 * col["nose_w"][:, 0], nost_y, DEPTH["nose"] * 0.8)
    add(0.55 * col["nose_w"][:, 0], nost_y, DEPTH["nose"] * 0.8)
    my, mw = g["mouth_y"][:, 0], g["mouth_w"][:, 0]
    half_open = g["open"][:, 0] / 2
    add(-(mw + g["corner_dx"][:, 0]), my + g["corner_dy"][:, 0], DEPTH["mouth"])
    add(torch.zeros_like(my), my - half_open * 0.4 - g["lip_up"][:, 0] - g["teeth_up"][:, 0], DEPTH["mouth"])
    add(torch.zeros_like(my), my - half_open * 0.4 - g["teeth_up"][:, 0], DEPTH["mouth"])
    add(torch.zeros_like(my), my + half_open * 1.6, DEPTH["mouth"])
    add(torch.zeros_like(my), my + half_open * 1.6 + g["lip_lo"][:, 0], DEPTH["mouth"])
    add(mw + g["corner_dx"][:, 1], my + g["corner_dy"][:, 1], DEPTH["mouth"])
    add(torch.zeros_like(my), g["chin_y"][:, 0], DEPTH["chin"])
    jaw_y = 0.55 * col["face_h"][:, 0]
    jaw_x = col["face_w"][:, 0] * (1 - (0.55**2) * (0.55 - 0.35 * col["jaw"][:, 0])) ** 0.5
    add(-jaw_x, jaw_y, 0.0)
    add(jaw_x, jaw_y, 0.0)
    x = torch.stack([p[0] for p in pts], 1)
    y = torch.stack([p[1] for p in pts], 1)
    z = torch.tensor([p[2] for p in pts]).view(1, -1)
    px, py = project(x, y, P, z)
    return torch.stack([px, py], -1)


# Faces drawn at once: at most 1.25 MiB per full-size float32 layer (128 faces at 48x48), in
# multiples of 32. A whole chunk at once (512 frames of 16-frame clips) makes every temporary
# layer several MiB, which glibc's allocator maps fresh from the kernel and returns on free:
# page faults then cost about a third of the rendering time. Smaller groups reuse the memory;
# each group costs the per-operation overhead once more, so they are not made smaller still.
_GROUP_BYTES = 5 << 18  # 1.25 MiB
_GROUP_MULTIPLE = 32


def group_size(size: int) -> int:
    """How many faces of ``size`` x ``size`` pixels :func:`render` draws at once."""
    per_face = size * size * 4
    return max(_GROUP_MULTIPLE, _GROUP_BYTES // per_face // _GROUP_MULTIPLE * _GROUP_MULTIPLE)


def batch_bounds(ID: dict, P: dict, channels: int) -> dict:
    """What every group of a batch shares: the extremes over the whole batch that size the
    detail patches (pose, eye and mouth width) and the brightest skin (eye whites)."""
    return {
        "scale": float(P["scale"].max()),
        "roll": float(P["sin_roll"].abs().max()),
        "cos_yaw": float(P["cos_yaw"].min()),
        "cos_pitch": float(P["cos_pitch"].min()),
        "eye_w": float(ID["eye_w"].max()),
        "mouth_w": float(ID["mouth_w"].max()),
        "skin": _col(ID["skin_rgb"], channels).amax(),
    }


def render(
    ID: dict, aus: torch.Tensor, P: dict, N: dict, fields: dict, size: int, channels: int, supersample=2
) -> tuple[torch.Tensor, torch.Tensor]:
    """Draw N faces. Returns images [N, C, size, size] in [0, 1] (before sensor effects) and landmarks.

    ``ID``: identity tensors [N]; ``aus``: [N, A, 2] intensities (image left, image right);
    ``P``: pose/framing tensors [N]; ``N``: lighting and occluder tensors [N]; ``fields``: random
    fields (skin texture [N, size, size], hair strand phases ...). Every tensor is batch-first.

    The faces are drawn in groups of :func:`group_size`; a face's pixels do not depend on the
    grouping (the patch sizes come from :func:`batch_bounds` of the whole batch, and groups
    are multiples of 32 faces, so vectorised loops split the data the same way).
    """
    n = aus.shape[0]
    bounds = batch_bounds(ID, P, channels)
    group = group_size(size)
    if n <= group:
        return _render_group(ID, aus, P, N, fields, size, channels, supersample, bounds)
    images, marks = [], []
    for start in range(0, n, group):
        part = slice(start, start + group)
        image, mark = _render_group(
            {k: v[part] for k, v in ID.items()},
            aus[part],
            {k: v[part] for k, v in P.items()},
            {k: v[part] for k, v in N.items()},
            {k: v[part] for k, v in fields.items()},
            size,
            channels,
            supersample,
            bounds,
        )
        images.append(image)
        marks.append(mark)
    return torch.cat(images), torch.cat(marks)


def _render_group(
    ID: dict, aus: torch.Tensor, P: dict, N: dict, fields: dict, size: int, channels: int, supersample, bounds
) -> tuple[torch.Tensor, torch.Tensor]:
    n = aus.shape[0]
    P4 = {k: v.view(-1, 1, 1) for k, v in P.items()}
    I3 = {k: v.view(-1, 1, 1) for k, v in ID.items() if v.dim() == 1}
    g = face_geometry(ID, aus)
    canvas = Canvas(n, size, channels)
    grid = (torch.arange(size, dtype=torch.float32) + 0.5).view(1, 1, -1)
    px, py = grid, grid.view(1, -1, 1)
    pixel = (1.0 / P["scale"]).view(-1, 1, 1)
    skin = _col(ID["skin_rgb"], channels)
    hair = _col(ID["hair_rgb"], channels)

    # Background: a soft gradient plus clutter (drawn by the caller into fields["background"]).
    # The full-resolution layers below are written with in-place operations: at this size
    # allocating temporaries costs more than the arithmetic.
    canvas.color.copy_(fields["background"].permute(1, 0, 2, 3))
    x, y = _pose_coords(px, py, P4, 0.0)
    x2 = x * x
    # Clothing and shoulders.
    canvas.over(_cov((x2 * -0.12).add_(y).sub_(1.5), pixel), _col(ID["cloth_rgb"], channels), fg=False)
    # Long hair behind the head, drawn only for the identities that have it.
    sel = (ID["hair_long"] > 0.5).nonzero().view(-1)
    if sel.numel():
        xs2, ys = x2[sel], y[sel] - 0.35
        fw, fh = I3["face_w"][sel], I3["face_h"][sel]
        r2 = (xs2 / (fw * 1.3) ** 2).addcmul_(ys, ys / (fh * 1.5) ** 2)
        back = _cov(r2.neg_().add_(1).mul_(0.6 * fw), pixel[sel])
        col = canvas.color[:, sel]
        col.addcmul_(back, hair[:, sel] * 0.8 - col)
        canvas.color[:, sel] = col
    # Neck.
    neck = x.abs().neg_().add_(0.48 * I3["face_w"])
    neck = _cov(torch.minimum(neck, y - 0.4, out=neck), pixel)
    canvas.over(neck, skin * 0.82, fg=False)
    # Face: an ellipse whose lower half tapers toward the chin by the jaw shape. Ellipses use the
    # cheap distance estimate (1 - r^2) * radius / 2, exact at the boundary.
    face_h_lo = g["chin_y"][:, 0].reshape(-1, 1, 1)
    taper = (y / face_h_lo).clamp_(0, 1).square_().mul_(0.55 - 0.35 * I3["jaw"]).neg_().add_(1)
    upper = 1 / I3["face_h"] ** 2
    inv_fh2 = _above(y).mul_(1 / face_h_lo**2 - upper).add_(upper)
    r2 = (x2 / I3["face_w"] ** 2).div_(taper).addcmul_(y * y, inv_fh2)
    face = _cov(r2.neg_().add_(1).mul_(0.5 * I3["face_w"]), pixel)
    canvas.over(face, skin, fg=False)
    # Hair on top: inside a larger ellipse, above the hairline or beside the face.
    hy = y + 0.08
    hr2 = (x2 / (I3["face_w"] * (1.1 + 0.08 * I3["hair_volume"])) ** 2).addcmul_(
        hy, hy / (I3["face_h"] * (1.04 + 0.06 * I3["hair_volume"])) ** 2
    )
    hair_a = _cov(hr2.neg_().add_(1).mul_(0.55 * I3["face_w"]), pixel)
    above = _cov((x2 * 0.3).add_(I3["hairline"]).sub_(y), pixel)
    beside = _cov((y - I3["hair_side"]).neg_(), pixel).mul_(face.neg().add_(1))
    hair_a.mul_(torch.maximum(above, beside, out=above)).mul_(I3["hair_amount"])
    phase = (x * I3["strand_freq"]).add_(fields["strand_phase"].view(-1, 1, 1))
    strands = phase.sub_(phase.floor()).mul_(0.1).add_(0.95)  # a cheap saw-tooth of strands
    canvas.over(hair_a, hair * strands, fg=False)
    head = torch.maximum(face, hair_a)
    canvas.fg = torch.maximum(head, neck, out=head)
    skin_mask = torch.maximum(face, neck)
    canvas.skin = skin_mask.mul_(hair_a.neg_().add_(1))

    # Detailed parts in supersampled patches.
    _draw_eye_regions(canvas, ID, I3, g, P4, skin, hair, size, channels, supersample, bounds)
    _draw_forehead(canvas, ID, I3, g, P4, skin, size, channels, supersample, bounds)
    _draw_lower_face(canvas, ID, I3, g, P4, skin, size, channels, supersample, bounds)

    # Occluders (objects in front of the face, lit like it).
    _draw_occluders(canvas, x, y, ID, I3, g, N, pixel, channels)

    # Lighting: Lambert plus a little specular sheen on an ellipsoidal head; flat-ish on the background.
    nx = (x / (I3["face_w"] * 1.15)).clamp_(-1, 1)
    ny = (y - 0.1).div_(I3["face_h"] * 1.25).clamp_(-1, 1)
    nz = (nx * nx).addcmul_(ny, ny).neg_().add_(1).clamp_min_(0.02).sqrt_()
    L = {k: N[k].view(-1, 1, 1) for k in ("light_x", "light_y", "light_z", "ambient", "gain", "specular")}
    dot = (
        nx.mul_(L["light_x"])
        .addcmul_(ny, L["light_y"].expand_as(ny))
        .addcmul_(nz, L["light_z"].expand_as(nz))
    )
    dot.clamp_min_(0)
    spec = (
        nz.mul_(0.5).add_(dot, alpha=0.5).square_().square_().square_().mul_(L["specular"]).mul_(canvas.skin)
    )
    ambient = L["ambient"]
    shade_bg = ambient + (1 - ambient) * 0.6
    shade = dot.mul_(1 - ambient).add_(ambient - shade_bg).mul_(canvas.fg).add_(shade_bg)
    texture = (fields["texture"] * (0.03 + 0.05 * I3["age"])).mul_(canvas.skin).add_(1)
    img = canvas.color.mul_(shade.mul_(texture)).add_(spec).mul_(L["gain"]).clamp_(0, 1)
    gamma = N["gamma"]
    sel = ((gamma - 1).abs() > 1e-4).nonzero().view(-1)
    if sel.numel():
        img.index_copy_(1, sel, img.index_select(1, sel).clamp_min_(1e-6).pow_(gamma[sel].view(1, -1, 1, 1)))
    return img.permute(1, 0, 2, 3).contiguous(), landmarks(ID, g, P)


def _line(d: torch.Tensor, width, pixel):
    """Coverage of a stroke of ``width`` around the curve where ``d`` = 0."""
    return d.abs().sub_(width * 0.5).div_(pixel).neg_().add_(0.5).clamp_(0.0, 1.0)


def _draw_eye_regions(canvas, ID, I3, g, P4, skin, hair, size, channels, ss, bounds):
    dark = torch.full_like(skin, 0.1)
    for side, sgn in ((0, -1.0), (1, 1.0)):
        # Eye, lids, crease, crow's feet and infraorbital furrow: supersampled.
        patch = Patch(
            canvas,
            P4,
            sgn * (ID["eye_dx"] + 0.2 * ID["eye_w"]),
            ID["eye_y"] - 0.02,
            DEPTH["eye"],
            1.55 * bounds["eye_w"],
            0.21,
            ss,
            bounds,
        )
        x, y = patch.coords(DEPTH["eye"])
        xs = sgn * x  # mirrored: larger xs is outward on both sides
        pix = patch.pixel
        a6 = _side(g["au"], "AU6", side)
        ex = xs - I3["eye_dx"]
        eyc0 = g["eye_y"][:, side].reshape(-1, 1, 1)
        ey = y - eyc0
        cf = ex - 1.3 * I3["eye_w"]
        bump = (1 - (cf * cf + ey * ey) / 0.012).clamp_(0, 1)
        wave = ey * 14.0 + cf * 5.0  # stripes fanning out of the corner (triangle wave)
        wave = (wave - wave.floor() - 0.5).abs_().mul_(2)
        crow = (0.5 * a6 + 0.35 * I3["age"]) * bump * wave * _above(cf)
        patch.over(crow.clamp_(0, 0.8), skin * 0.55)
        t = ex / I3["eye_w"]
        s = (1 - t * t).clamp_min_(0)
        low = g["eye_lo"][:, side].reshape(-1, 1, 1)
        furrow_d = y - (eyc0 + low + 0.045 + 0.03 * I3["age"]) - 0.02 * t * t
        furrow = (
            _line(furrow_d, 0.02, pix)
            * s
            * (0.15 + 0.4 * a6 + 0.3 * _side(g["au"], "AU7", side) + 0.25 * I3["age"])
        )
        patch.over(furrow.clamp_(0, 0.8), skin * 0.7)
        # Eye: almond between the lids, iris and pupil clipped by the lids.
        up = g["eye_up"][:, side].reshape(-1, 1, 1)
        eyc = eyc0 - I3["eye_tilt"] * (t + 1) * 0.5
        s8 = s.sqrt()
        y_up = eyc - up * s8
        y_lo = eyc + low * s
        inside_x = _cov((1 - t.abs()) * I3["eye_w"], pix)
        open_a = _cov(y - y_up, pix) * _cov(y_lo - y, pix) * inside_x
        patch.over(open_a, 0.6 + 0.3 * skin / bounds["skin"])
        gx = xs - (I3["eye_dx"] + sgn * I3["gaze_x"])
        gy = y - (eyc0 + 0.15 * I3["eye_h"])
        dist = torch.sqrt(gx * gx + gy * gy)
        r_iris = 1.25 * I3["eye_h"]
        patch.over(_cov(r_iris - dist, pix) * open_a, _col(ID["iris_rgb"], channels))
        patch.over(_cov(0.45 * r_iris - dist, pix) * open_a, dark * 0.5)
        # Lashes / upper lid margin, and the lid crease above.
        lash = _line(y - y_up + 0.008, 0.022 + 0.01 * I3["feminine"], pix) * _cov(
            (1.08 - t.abs()) * I3["eye_w"], pix
        )
        patch.over(lash, dark)
        crease = _line(y - (y_up - 0.05 - 0.35 * I3["eye_h"] * s), 0.014, pix) * s
        patch.over(crease * 0.45, skin * 0.55)
        patch.over(_line(y - y_lo, 0.01, pix) * s * 0.35, skin * 0.5)
        patch.composite(canvas)
        # Brow: a tapered stroke from inner to outer end along a quadratic curve (output resolution).
        x_in = g["brow_inner_x"][:, side].reshape(-1, 1, 1)
        x_out = g["brow_outer_x"][:, side].reshape(-1, 1, 1)
        patch = Patch(
            canvas,
            P4,
            sgn * (ID["eye_dx"] + 0.17 * ID["eye_w"]),
            ID["eye_y"] - ID["brow_gap"] - 0.02,
            DEPTH["brow"],
            1.1 * bounds["eye_w"] + 0.06,
            0.18,
            1,
            bounds,
        )
        x, y = patch.coords(DEPTH["brow"])
        xs = sgn * x
        pix = patch.pixel
        length = x_out - x_in
        tb = (xs - x_in) / length
        yi, ym, yo = (g[k][:, side].reshape(-1, 1, 1) for k in ("brow_inner_y", "brow_mid_y", "brow_outer_y"))
        tc = tb.clamp(0, 1)
        yb = (1 - tc).square() * yi + 2 * tc * (1 - tc) * (2 * ym - 0.5 * (yi + yo)) + tc * tc * yo
        th = I3["brow_th"] * (1.15 - 0.55 * tc)
        ends = _cov(tb * length, pix) * _cov((1 - tb) * length, pix)
        brow = _line(y - yb, th, pix) * ends * I3["brow_density"]
        patch.over(brow, hair * 0.9 + skin * 0.1)
        patch.composite(canvas)


def _draw_forehead(canvas, ID, I3, g, P4, skin, size, channels, ss, bounds):
    cy = ID["eye_y"] - ID["brow_gap"] - 0.2
    patch = Patch(canvas, P4, torch.zeros_like(cy), cy, DEPTH["forehead"], 0.34, 0.42, 1, bounds)
    x, y = patch.coords(DEPTH["forehead"])
    pix = patch.pixel
    a = g["au"]
    raise_ = torch.maximum(a["AU1"].amax(1), a["AU2"].amax(1)).view(-1, 1, 1)
    brow_top = (g["brow_mid_y"].mean(1)).view(-1, 1, 1)
    fade = (1 - (x / 0.34) ** 2).clamp_min(0)
    strength = (0.45 * raise_ + 0.3 * I3["age"]) * fade
    for k in range(3):
        wave = 0.012 * torch.sin(x * 9 + k)
        line = _line(y - (brow_top - 0.1 - 0.075 * k) - wave, 0.016, pix)
        patch.over((line * strength).clamp(0, 0.8), skin * 0.62)
    # Glabellar furrows (AU4) and nose-bridge wrinkles (AU9).
    au4 = a["AU4"].mean(1).view(-1, 1, 1)
    inner_y = g["brow_inner_y"].mean(1).view(-1, 1, 1)
    span = _cov(y - (inner_y - 0.1), pix) * _cov(inner_y + 0.06 - y, pix)
    for sgn in (-1.0, 1.0):
        patch.over(
            (_line(x - sgn * 0.055, 0.016, pix) * span * (0.55 * au4 + 0.12 * I3["age"])).clamp(0, 0.8),
            skin * 0.6,
        )
    au9 = a["AU9"].mean(1).view(-1, 1, 1)
    bridge = _cov(0.09 - x.abs(), pix) * (0.6 * au9)
    ey = I3["eye_y"]
    for k in range(2):
        patch.over(
            (_line(y - (ey - 0.02 + 0.05 * k) - 0.15 * x * x, 0.014, pix) * bridge).clamp(0, 0.8), skin * 0.6
        )
    patch.composite(canvas)


def _draw_lower_face(canvas, ID, I3, g, P4, skin, size, channels, ss, bounds):
    mouth_y = g["mouth_y"][:, 0]
    cy = 0.5 * (ID["eye_y"] + ID["nose_len"] + mouth_y) + 0.05
    patch = Patch(canvas, P4, torch.zeros_like(cy), cy, DEPTH["mouth"], 0.6, 0.42, 1, bounds)
    pix = patch.pixel
    # Nose and folds share one grid; the nose sits nearer the camera, so it is offset by its extra
    # depth (the same 2-D yaw/pitch approximation as everywhere).
    xm, ym_ = patch.coords(DEPTH["mouth"])
    dz = DEPTH["nose"] - DEPTH["mouth"]
    x = xm - P4["sin_yaw"] * dz / P4["cos_yaw"]
    y = ym_ - P4["sin_pitch"] * dz / P4["cos_pitch"]
    tip_y = I3["eye_y"] + I3["nose_len"]
    nw = I3["nose_w"]
    lift = g["nostril_lift"][:, 0].reshape(-1, 1, 1)
    bridge = _cov(y - (I3["eye_y"] + 0.05), pix).mul_(_cov(tip_y - 0.02 - y, pix))
    patch.over(_line(x - 0.45 * nw, 0.05, pix).mul_(bridge).mul_(0.18), skin * 0.7)
    patch.over(_line(x + 0.45 * nw, 0.05, pix).mul_(bridge).mul_(0.12), skin * 0.7)

    def ellipse(cx, cy, rx, ry, radius):  # coverage, from the distance estimate (1 - r^2) * radius / 2
        dx, dy = (x - cx) / rx, (y - cy) / ry
        return _cov((dx * dx).addcmul_(dy, dy).neg_().add_(1).mul_(0.5 * radius), pix)

    patch.over(ellipse(0.0, tip_y - 0.02, 0.55 * nw, 0.06, 0.06).mul_(0.25), skin * 1.15)
    for sgn in (-1.0, 1.0):
        patch.over(
            ellipse(sgn * 0.5 * nw, tip_y + 0.035 - lift, 0.055 + 0.15 * nw, 0.028, 0.028).mul_(0.85),
            skin * 0.3,
        )
        dx, dy = (x - sgn * 0.85 * nw) / 0.05, (y - tip_y - 0.01 + lift) / 0.06
        ala = (dx * dx).addcmul_(dy, dy).sub_(1).mul_(0.025)  # ~ distance to the wing's outline
        patch.over(_line(ala, 0.015, pix).mul_(0.35), skin * 0.6)
    # Nasolabial folds from the nose wing to beside the mouth corner.
    x, y = xm, ym_
    my = g["mouth_y"][:, 0].reshape(-1, 1, 1)

    def per_side(key, left):
        a, b = g[key][:, 0].reshape(-1, 1, 1), g[key][:, 1].reshape(-1, 1, 1)
        return left * (a - b) + b

    left = _below(x)
    cdx, cdy, fold = per_side("corner_dx", left), per_side("corner_dy", left), per_side("fold", left)
    hw = I3["mouth_w"] + cdx
    fx0, fy0 = 1.0 * nw + 0.02, tip_y - 0.02
    fx1, fy1 = hw + 0.07, my + cdy + 0.06
    u = (y - fy0) / (fy1 - fy0)
    xf = fx0 + (fx1 - fx0) * u + 0.04 * u * (1 - u)
    nl = _line(x.abs() - xf, 0.025, pix) * _cov(u * 0.2, pix) * _cov((1 - u) * 0.2, pix) * fold
    patch.over(nl.clamp(0, 0.8), skin * 0.6)
    patch.composite(canvas)
    # Mouth, lips, teeth and chin: supersampled.
    patch = Patch(
        canvas,
        P4,
        torch.zeros_like(cy),
        mouth_y + 0.1,
        DEPTH["mouth"],
        bounds["mouth_w"] + 0.14,
        0.28,
        max(1, ss - 1),
        bounds,
    )
    pix = patch.pixel
    x, y = patch.coords(DEPTH["mouth"])
    left = _below(x)
    cdx, cdy = per_side("corner_dx", left), per_side("corner_dy", left)
    hw = I3["mouth_w"] + cdx
    t = x / hw
    s = (1 - t * t).clamp_min(0)
    inside = _cov((1 - t.abs()) * hw, pix)
    ym = my + cdy * (1 - s)
    opening = g["open"][:, 0].reshape(-1, 1, 1)
    y_ui = ym - (0.3 * opening + g["teeth_up"][:, 0].reshape(-1, 1, 1)) * s
    y_li = ym + 0.7 * opening * s
    lip_up, lip_lo = g["lip_up"][:, 0].reshape(-1, 1, 1), g["lip_lo"][:, 0].reshape(-1, 1, 1)
    sq = torch.sqrt(s)
    y_uo = y_ui - lip_up * sq + 0.35 * lip_up * (1 - t * t / 0.04).clamp_(0, 1).square_()
    y_lo = y_li + lip_lo * sq
    lip_rgb = _col(ID["lip_rgb"], channels)
    patch.over(_cov(y - y_uo, pix) * _cov(y_ui - y, pix) * inside, lip_rgb)
    patch.over(_cov(y - y_li, pix) * _cov(y_lo - y, pix) * inside, lip_rgb * 1.05)
    cavity = _cov(y - y_ui, pix) * _cov(y_li - y, pix) * inside
    patch.over(cavity, torch.full_like(skin, 0.08))
    teeth = cavity * _cov(y_ui + 0.045 - y, pix) * _cov((0.8 - t.abs()) * hw, pix)
    patch.over(teeth, torch.full_like(skin, 0.8))
    lower_teeth = cavity * _cov(y - (y_li - 0.02 - 0.3 * g["au"]["AU16"].mean(1).view(-1, 1, 1) * 0.1), pix)
    patch.over(
        lower_teeth * 0.7 * g["au"]["AU16"].mean(1).view(-1, 1, 1).clamp(0, 1), torch.full_like(skin, 0.75)
    )
    seam = _line(y - ym, 0.018, pix) * _cov((1.06 - t.abs()) * hw, pix) * (1 - cavity)
    patch.over(seam * 0.9, lip_rgb * 0.25)
    # Chin boss (AU17) and the chin's lower contour shading.
    chin_y = g["chin_y"][:, 0].reshape(-1, 1, 1)
    au17 = g["au"]["AU17"].mean(1).view(-1, 1, 1)
    dimple = (
        _line(y - (y_lo + 0.09) - 0.8 * x * x, 0.02, pix) * _cov(0.16 - x.abs(), pix) * (0.1 + 0.5 * au17)
    )
    patch.over(dimple.clamp(0, 0.8), skin * 0.6)
    shadow = (1 - ((y - chin_y + 0.05) / 0.08) ** 2).clamp_(0, 1).square_() * _cov(0.3 - x.abs(), pix) * 0.25
    patch.over(shadow, skin * 0.65)
    patch.composite(canvas)


OCCLUDERS = ("none", "sunglasses", "mask", "hand", "patch")


def _draw_occluders(canvas, x, y, ID, I3, g, N, pixel, channels):
    kind = N["occluder"].long()
    sev = N["occlusion"].view(-1, 1, 1)
    for code, name in enumerate(OCCLUDERS):
        if code == 0:
            continue
        sel = (kind == code).nonzero().view(-1)
        if sel.numel() == 0:
            continue
        xs, ys, pix, sv = x[sel], y[sel], pixel[sel], sev[sel]
        ox = N["occ_x"][sel].view(-1, 1, 1)
        oy = N["occ_y"][sel].view(-1, 1, 1)
        shade = N["occ_shade"][sel].view(-1, 1, 1)
        ey = I3["eye_y"][sel]
        if name == "sunglasses":
            dx = I3["eye_dx"][sel]
            a = 0.0
            for sgn in (-1.0, 1.0):
                d = torch.sqrt(
                    ((xs - sgn * dx) / (0.24 + 0.01 * sv)) ** 2 + ((ys - ey) / (0.15 + 0.01 * sv)) ** 2
                )
                a = a + _cov((1 - d) * 0.15, pix)
            a = a + _line(ys - ey + 0.06, 0.03, pix) * _cov(dx - xs.abs(), pix)
            alpha = a.clamp(0, 1) * (0.75 + 0.05 * sv).clamp(0, 1)
        elif name == "mask":
            top = ey + 0.42 - 0.04 * sv  # higher with severity
            d = torch.minimum(
                torch.minimum(ys - top - 0.05 * xs * xs, 1.02 + 0.05 * sv - xs.abs()),
                I3["face_h"][sel] + 0.15 - ys,
            )
            alpha = _cov(d, pix)
            shade = shade * (1 - 0.06 * torch.sin(ys * 40).clamp_min(0))
        elif name == "hand":
            size = 0.35 + 0.06 * sv
            d = torch.sqrt(((xs - ox) / size) ** 2 + ((ys - oy) / (size * 1.2)) ** 2)
            alpha = _cov((1 - d) * size, pix)
            for k in range(4):
                fx = ox - 0.75 * size + 0.5 * size * k
                d_f = torch.minimum(
                    0.09 * size * 2.2 - (xs - fx).abs(),
                    torch.minimum(ys - oy + 0.1, oy - size * 2.1 - ys + 2.5 * size),
                )
                alpha = torch.maximum(alpha, _cov(d_f, pix))
        else:  # patch
            half = 0.15 + 0.08 * sv
            d = torch.minimum(half - (xs - ox).abs(), half - (ys - oy).abs())
            alpha = _cov(d, pix)
        rgb = N["occ_rgb"][sel] if name != "hand" else ID["skin_rgb"][sel] * 0.95
        color = _col(rgb, channels) * shade
        c = canvas.color[:, sel]
        canvas.color[:, sel] = c * (1 - alpha) + color * alpha
        canvas.fg[sel] = canvas.fg[sel] * (1 - alpha) + alpha
        canvas.skin[sel] = canvas.skin[sel] * (1 - alpha) + alpha * (1.0 if name == "hand" else 0.0)
