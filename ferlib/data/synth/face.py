"""The parametric face SynthFER draws: its vocabulary and where each part sits.

The vocabulary: action units (:data:`AU_NAMES`), landmarks (:data:`LANDMARK_NAMES`), skin tones,
occluders and the depth of each part. The geometry: :func:`face_geometry` turns identity
parameters and AU intensities into canonical part positions, and :func:`landmarks` projects the
landmark points into the image through the head pose.
"""

from __future__ import annotations

import numpy as np
import torch

from ferlib.data.synth.canvas import project

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

# Depth of each part, used for the 2-D yaw/pitch approximation (parts nearer the camera shift more).
DEPTH = {"face": 0.0, "brow": 0.32, "eye": 0.25, "forehead": 0.3, "nose": 0.62, "mouth": 0.42, "chin": 0.3}

# Objects drawn in front of the face; a sample's stored occluder code indexes this tuple (0: none).
OCCLUDERS = ("none", "sunglasses", "mask", "hand", "patch")


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
