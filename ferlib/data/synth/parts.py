"""The detailed parts of a SynthFER face, drawn onto a :class:`~ferlib.data.synth.canvas.Canvas`.

Eyes, lids, brows and wrinkles, the forehead, the nose, folds, mouth, lips, teeth and chin are
drawn in per-face patches (supersampled where detail needs it) and composited into the image;
occluders are drawn at the output resolution over the whole face. Each function draws in place.
"""

from __future__ import annotations

import torch

from ferlib.data.synth.canvas import Patch, _above, _below, _col, _cov, _line, _side
from ferlib.data.synth.face import DEPTH, OCCLUDERS


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
