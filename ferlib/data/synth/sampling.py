"""What each SynthFER sample shows, drawn with numpy: identities, expressions and nuisances.

Identities have one seed each (a subject looks the same in every chunk); everything else is
drawn from the generator of the chunk being made, in a fixed order, so any chunk can be
regenerated alone. Expressions are sums of action units: each class is a list of documented AU
variants (:data:`CLASS_VARIANTS`), and a sample draws one, drops some of its AUs and may add a
weak unrelated one.
"""

from __future__ import annotations

import numpy as np

from ferlib.data.labels import EMOTION_TO_ID, EMOTIONS
from ferlib.data.synth.config import (
    _SPLIT_CODE,
    _SUBJECT_OFFSET,
    AGE_GROUPS,
    GENDER_PRESENTATIONS,
    NUISANCES,
    SynthConfig,
)
from ferlib.data.synth.face import AU_INDEX, AU_NAMES, OCCLUDERS, SKIN_TONES_RGB
from ferlib.errors import ConfigError

# Each class is a list of AU variants (first AU = the one never dropped). Sources: EMFACS and
# FACS prototypes (Ekman & Friesen 1978; Ekman, Friesen & Hager 2002), which disagree; we sample.
CLASS_VARIANTS: dict[str, list[tuple[int, ...]]] = {
    "angry": [(4, 5, 7, 23), (4, 5, 7, 24), (4, 7, 17, 23), (4, 5, 17, 24), (4, 5, 7, 10, 23, 25)],
    "disgust": [(9, 15, 16), (10, 17, 4), (9, 10, 17), (9, 15, 17), (10, 15, 25)],
    "fear": [(20, 1, 2, 4, 5, 25), (20, 1, 2, 4, 5, 7, 26), (20, 1, 2, 4, 5, 26), (1, 2, 5, 20, 25)],
    "happy": [(12, 6), (12,), (12, 6, 25), (12, 6, 26)],
    "sad": [(15, 1, 4), (15, 1, 4, 17), (15, 1, 4, 6), (1, 15, 17)],
    "surprise": [(2, 1, 5, 26), (2, 1, 5, 25), (26, 1, 2), (26, 5)],
    "neutral": [()],
}
# Display rules (Safdar et al. 2009): the emotions a group displays with lower intensity.
DISPLAY_RULE_EMOTIONS = ("angry", "disgust", "happy", "surprise")
# Group label noise (Nagata & Okajima 2024): the class an annotator confuses each class with.
CONFUSABLE = {
    "angry": "disgust",
    "disgust": "angry",
    "fear": "surprise",
    "happy": "neutral",
    "sad": "neutral",
    "surprise": "fear",
    "neutral": "sad",
}


def class_prototype(name: str, intensity: float = 0.9, variant: int = 0) -> dict[str, float]:
    """The AU intensities of one documented variant of a class, e.g. ``{"AU6": 0.9, "AU12": 0.9}``."""
    if name not in CLASS_VARIANTS:
        raise ConfigError.unknown("class", name, CLASS_VARIANTS)
    variants = CLASS_VARIANTS[name]
    return {f"AU{au}": float(intensity) for au in variants[variant % len(variants)]}


def _identities(cfg: SynthConfig) -> dict[str, np.ndarray]:
    """Identity parameters of every subject of the split; each subject has its own seed."""
    n = cfg.subjects
    split = cfg.split
    rows = []
    w = cfg.group_weights
    for i in range(n):
        rng = np.random.default_rng(np.random.SeedSequence([cfg.seed, _SPLIT_CODE[split], 77, i]))
        u = rng.random(40)
        tone = int(np.searchsorted(np.cumsum(w["skin_tone"]) / sum(w["skin_tone"]), u[0], side="right"))
        age = int(np.searchsorted(np.cumsum(w["age"]) / sum(w["age"]), u[1], side="right"))
        gender = int(np.searchsorted(np.cumsum(w["gender"]) / sum(w["gender"]), u[2], side="right"))
        masc = {0: 0.0, 1: 1.0, 2: 0.5}[gender]
        age_v = (0.05 + 0.15 * u[3], 0.25 + 0.25 * u[3], 0.6 + 0.4 * u[3])[age]
        lerp = lambda a, b, t: a + (b - a) * t  # noqa: E731
        r = {
            "subject": _SUBJECT_OFFSET[split] + i,
            "skin_tone": tone,
            "age_group": age,
            "gender": gender,
            "age": age_v,
            "feminine": 1 - masc,
            "face_w": lerp(0.86, 1.0, u[4]) + 0.06 * masc,
            "face_h": lerp(1.15, 1.35, u[5]) + 0.05 * masc + 0.04 * (age == 2),
            "jaw": np.clip(lerp(0.0, 0.6, u[6]) + 0.4 * masc, 0, 1),
            "eye_dx": lerp(0.36, 0.46, u[7]),
            "eye_y": lerp(-0.22, -0.08, u[8]),
            "eye_w": lerp(0.15, 0.21, u[9]),
            "eye_h": lerp(0.055, 0.085, u[10]) * (1.1 - 0.15 * age_v),
            "eye_tilt": lerp(-0.02, 0.04, u[11]),
            "brow_gap": lerp(0.18, 0.27, u[12]) - 0.03 * masc,
            "brow_th": lerp(0.03, 0.05, u[13]) + 0.03 * masc,
            "brow_tilt": lerp(-0.04, 0.04, u[14]),
            "brow_density": lerp(0.75, 1.0, u[15]) * (1 - 0.25 * (age == 2)),
            "nose_len": lerp(0.3, 0.44, u[16]),
            "nose_w": lerp(0.12, 0.19, u[17]) + 0.02 * masc,
            "mouth_y": lerp(0.48, 0.6, u[18]),
            "mouth_w": lerp(0.24, 0.34, u[19]),
            "lip_th": lerp(0.035, 0.07, u[20]) * (1.15 - 0.25 * masc) * (1 - 0.2 * (age == 2)),
            "mouth_curve": lerp(-0.025, 0.025, u[21]),
            "gaze_x": lerp(-0.03, 0.03, u[22]),
            "hair_long": float(u[23] < 0.85 * (1 - masc) + 0.05),
            "hair_volume": u[24],
            "hairline": lerp(-1.02, -0.86, u[25]) - 0.25 * masc * (age == 2) * (u[26] < 0.6),
            "hair_side": lerp(0.0, 0.25, u[27]) + 1.5 * (u[23] < 0.85 * (1 - masc) + 0.05),
            "hair_amount": 1.0 - 0.7 * masc * (age == 2) * (u[28] < 0.25),
            "strand_freq": lerp(30, 60, u[29]),
        }
        gray_hair = age_v > 0.55 and u[30] < age_v
        base = np.array([0.1, 0.07, 0.05]) + lerp(0, 0.35, u[31] ** 3) * np.array([1.0, 0.8, 0.5])
        r["hair_rgb"] = lerp(0.55, 0.8, u[32]) * np.ones(3) if gray_hair else base
        r["iris_rgb"] = np.array([0.25, 0.16, 0.1]) if u[33] < 0.7 else np.array([0.25, 0.35, 0.45])
        r["cloth_rgb"] = np.array([u[34], u[35], u[36]]) * 0.8 + 0.1
        skin = SKIN_TONES_RGB[tone] * lerp(0.96, 1.04, u[37])
        r["skin_rgb"] = skin
        r["lip_rgb"] = skin * np.array([0.72, 0.5, 0.5])
        rows.append(r)
    ident = {k: np.array([row[k] for row in rows], dtype=np.float32) for k in rows[0]}
    for k in ("subject", "skin_tone", "age_group", "gender"):
        ident[k] = ident[k].astype(np.int64)
    # Resting-face structure (Adams et al. 2022): in bias_group, lower brows and down-turned corners.
    strength = cfg.resting_face
    if strength > 0:
        member = _group_member(ident, cfg.bias_group)
        ident["brow_gap"] -= 0.05 * strength * member
        ident["brow_tilt"] += 0.04 * strength * member
        ident["mouth_curve"] += 0.025 * strength * member
        ident["lip_th"] *= 1 - 0.25 * strength * member
    return ident


def _group_member(ident: dict, bias_group) -> np.ndarray:
    attr, val = bias_group
    if attr == "skin_tone":
        return (ident["skin_tone"] == val).astype(np.float32)
    names = AGE_GROUPS if attr == "age" else GENDER_PRESENTATIONS
    return (ident["age_group" if attr == "age" else "gender"] == names.index(val)).astype(np.float32)


def _sample_expressions(rng, cfg: SynthConfig, labels: np.ndarray, member: np.ndarray):
    """AU intensities [B, A] for class ids ``labels``, plus intensity and variant index."""
    b = len(labels)
    aus = np.zeros((b, len(AU_NAMES)), dtype=np.float64)
    lo, hi = cfg.intensity
    intensity = rng.uniform(lo, hi, b)
    if cfg.display_rules > 0:
        damp = np.isin(labels, [EMOTION_TO_ID[e] for e in DISPLAY_RULE_EMOTIONS]) * member
        intensity = intensity * (1 - 0.6 * cfg.display_rules * damp)
    variant_u = rng.random(b)
    drop_u = rng.random((b, 8))
    per_au = rng.uniform(0.7, 1.15, (b, 8))
    spurious_u = rng.random(b)
    spurious_au = rng.integers(0, len(AU_NAMES) - 1, b)
    spurious_v = rng.uniform(0.05, 0.3, b)
    variant = np.zeros(b, dtype=np.int64)
    for i in range(b):
        variants = CLASS_VARIANTS[EMOTIONS[labels[i]]] if labels[i] < len(EMOTIONS) else [()]
        k = int(variant_u[i] * len(variants))
        variant[i] = k
        for j, au in enumerate(variants[k]):
            if j > 0 and drop_u[i, j] < cfg.au_dropout:
                continue
            aus[i, AU_INDEX[f"AU{au}"]] = min(1.0, intensity[i] * per_au[i, j])
        if spurious_u[i] < cfg.spurious:
            a = spurious_au[i]
            aus[i, a] = max(aus[i, a], spurious_v[i])
    return aus, intensity, variant


def _sample_nuisance(rng, cfg: SynthConfig, b: int) -> dict[str, np.ndarray]:
    """Per-sample nuisance severities (0-5) and the concrete values they produce."""
    sev = {}
    for name in NUISANCES:
        prob, low, high = cfg.severities[name]
        on = rng.random(b) < prob
        sev[name] = np.where(on, rng.uniform(low, high, b), 0.0)
    s = sev
    u = rng.random((b, 16))
    out = {f"{name}_severity": s[name] for name in NUISANCES}
    az = (2 * u[:, 0] - 1) * np.minimum(80, 18 * s["illumination"]) * np.pi / 180
    el = (2 * u[:, 1] - 1) * np.minimum(50, 8 * s["illumination"]) * np.pi / 180 - 0.25
    out["light_azimuth"] = az * 180 / np.pi
    out["light_x"] = np.sin(az) * np.cos(el)
    out["light_y"] = -np.sin(el) * 0.8
    out["light_z"] = np.cos(az) * np.cos(el)
    out["ambient"] = np.clip(0.55 - 0.07 * s["illumination"], 0.15, 1)
    out["gain"] = np.exp(-0.3 * s["illumination"] * (0.3 + 0.7 * u[:, 2])) * 1.05
    out["gamma"] = np.exp((2 * u[:, 3] - 1) * 0.12 * s["illumination"])
    out["specular"] = 0.06 + 0.06 * u[:, 4]
    out["roll"] = (2 * u[:, 5] - 1) * 5.0 * s["pose"]
    out["yaw"] = (2 * u[:, 6] - 1) * 8.0 * s["pose"]
    out["pitch"] = (2 * u[:, 7] - 1) * 5.0 * s["pose"]
    occ_names = cfg.occluders
    kinds = np.array([OCCLUDERS.index(n) for n in occ_names])
    out["occluder"] = np.where(s["occlusion"] > 0, kinds[(u[:, 8] * len(kinds)).astype(int)], 0)
    out["occ_x"] = (2 * u[:, 9] - 1) * 0.55
    out["occ_y"] = 0.1 + (2 * u[:, 10] - 1) * 0.55
    out["occ_shade"] = 0.8 + 0.2 * u[:, 11]
    out["noise_sigma"] = 0.015 * s["noise"]
    out["blur_sigma"] = 0.4 * s["blur"] * cfg.image_size / 48
    out["jpeg_quality"] = np.round(100 - 18 * s["jpeg"])
    out["clutter_shapes"] = np.ceil(1.2 * s["clutter"] - 1e-9)
    occ_rgb = rng.random((b, 3)) * 0.7 + 0.1
    occ_rgb[out["occluder"] == OCCLUDERS.index("sunglasses")] = 0.08
    mask = out["occluder"] == OCCLUDERS.index("mask")
    occ_rgb[mask] = np.array([0.75, 0.85, 0.92]) * (0.9 + 0.1 * u[mask, 12:13])
    out["occ_rgb"] = occ_rgb
    return out


def _framing(rng, b: int, size: int) -> dict[str, np.ndarray]:
    u = rng.random((b, 3))
    return {"dx": (2 * u[:, 0] - 1) * 0.025, "dy": (2 * u[:, 1] - 1) * 0.025, "zoom": 0.95 + 0.1 * u[:, 2]}
