"""The SynthFER renderer: batched, vectorised drawing of parametric faces.

:func:`render_faces` takes the sampled parameters (numpy arrays per face or per clip), draws the
random fields from the caller's generator (:mod:`~ferlib.data.synth.fields`), draws the faces
with :func:`render` and applies the camera's degradations (:mod:`~ferlib.data.synth.degrade`).
:func:`render` itself is deterministic: every random field is passed in.

Speed comes from three choices. Large smooth shapes (background, hair, face, neck, occluders) are
drawn once at the output size with analytic anti-aliasing (coverage from a signed distance).
Small detailed parts (eyes, lids, brows, wrinkles, nose, lips) are drawn in per-face patches
at ``supersample`` times the output resolution, area-downsampled, and composited into the
image (:mod:`~ferlib.data.synth.parts`); a patch is a few hundred pixels, so detail is cheap. And
a batch is drawn in groups of about a megabyte per layer (:func:`group_size`), which keeps the
allocator from fetching fresh pages from the kernel for every temporary; grouping never changes
a pixel (see :func:`render`).
"""

from __future__ import annotations

import numpy as np
import torch

from ferlib.data.synth.canvas import LUMA, Canvas, _above, _col, _cov, _pose_coords
from ferlib.data.synth.degrade import _sensor
from ferlib.data.synth.face import face_geometry, landmarks
from ferlib.data.synth.fields import _background, _texture
from ferlib.data.synth.parts import _draw_eye_regions, _draw_forehead, _draw_lower_face, _draw_occluders

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


def render_faces(
    ident: dict,
    aus_lr: np.ndarray,
    pose: dict,
    nz: dict,
    rng,
    *,
    image_size: int = 48,
    rgb: bool = False,
    supersample: int = 2,
    per: int = 1,
) -> tuple[torch.Tensor, torch.Tensor]:
    """Render a batch: identity/nuisance arrays per face (or per clip, repeated ``per`` times).

    ``aus_lr`` [N, A, 2] and ``pose`` (roll/yaw/pitch in degrees, dx/dy, zoom) are per rendered
    frame. Returns uint8 images [N, C, H, W] and landmarks [N, K, 2] in pixels.
    """
    size = image_size
    channels = 3 if rgb else 1
    n = aus_lr.shape[0]

    def t(v):
        return torch.from_numpy(np.repeat(np.asarray(v, dtype=np.float32), per, axis=0))

    ID = {k: t(v) for k, v in ident.items() if k not in ("subject", "skin_tone", "age_group", "gender")}
    rad = {k: np.deg2rad(pose[k]).astype(np.float32) for k in ("roll", "yaw", "pitch")}
    scale = size * 0.38 * np.asarray(pose["zoom"], dtype=np.float32)
    P = {
        "cx": torch.from_numpy((size / 2 + pose["dx"] * size).astype(np.float32)),
        "cy": torch.from_numpy((size * 0.43 + pose["dy"] * size).astype(np.float32)),
        "scale": torch.from_numpy(scale.astype(np.float32)),
        "cos_roll": torch.from_numpy(np.cos(rad["roll"])),
        "sin_roll": torch.from_numpy(np.sin(rad["roll"])),
        "cos_yaw": torch.from_numpy(np.cos(rad["yaw"])),
        "sin_yaw": torch.from_numpy(np.sin(rad["yaw"])),
        "cos_pitch": torch.from_numpy(np.cos(rad["pitch"])),
        "sin_pitch": torch.from_numpy(np.sin(rad["pitch"])),
    }
    N = {
        k: t(nz[k])
        for k in (
            "light_x",
            "light_y",
            "light_z",
            "ambient",
            "gain",
            "specular",
            "gamma",
            "occluder",
            "occlusion_severity",
            "occ_x",
            "occ_y",
            "occ_shade",
            "occ_rgb",
        )
    }
    N["occlusion"] = N.pop("occlusion_severity")
    # Auto-exposure, as cameras meter on the face: darker skin gets a partial gain (never a full
    # normalisation, so tones stay distinct).
    luma = torch.from_numpy(np.repeat(np.asarray(ident["skin_rgb"], dtype=np.float32) @ LUMA, per))
    N["gain"] = N["gain"] * (0.62 / luma).pow(0.45).clamp(1.0, 1.6)
    b = n // per
    fields = {
        "background": _background(rng, b, size, channels, nz["clutter_shapes"], nz["clutter_severity"]),
        "texture": _texture(rng, b, size),
        "strand_phase": torch.from_numpy(rng.uniform(0, 6.283, b).astype(np.float32)),
    }
    if per > 1:
        fields = {k: v.repeat_interleave(per, 0) for k, v in fields.items()}
    img, marks = render(ID, torch.from_numpy(aus_lr), P, N, fields, size, channels, supersample)
    img = _sensor(img, nz, rng, per)
    return (img * 255).round_().to(torch.uint8), marks
