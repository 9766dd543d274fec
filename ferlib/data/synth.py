"""SynthFER: procedural faces and face videos, the embedded default data of FER Book.

SynthFER is *synthetic*. It draws grayscale (or RGB) faces from a parametric geometric model:
identities differ by more than a dozen continuous parameters, expressions are sums of FACS
action units (AUs) with intensities, the seven classes are *distributions* over AU sets, and
demographic attributes, nuisances (light, pose, occlusion, noise, blur, JPEG, clutter) and, for
clips, per-AU temporal curves are sampled per sample and recorded in ``meta``. It exists so every
chapter runs anywhere, offline, in seconds, with known ground truth; it is not a stand-in for
people's faces, and every result on it should be confirmed on real data
(``load_dataset("fer2013", root=...)`` and friends).

Examples
--------
>>> from ferlib.data.synth import SynthFER
>>> data = SynthFER(split="train", size=16, cache=False)
>>> x, y, meta = data[0]
>>> tuple(x.shape), data.num_classes, sorted(meta["group"])
((1, 48, 48), 7, ['age', 'gender', 'skin_tone'])
"""

from __future__ import annotations

import csv
import hashlib
import json
import math
import os
import tempfile
from collections.abc import Callable, Sequence
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from torch.utils.data import Dataset

from ferlib.data.labels import EMOTION_TO_ID, EMOTIONS
from ferlib.data.registry import register_dataset
from ferlib.data.synth_render import (
    AU_INDEX,
    AU_NAMES,
    LANDMARK_NAMES,
    LUMA,
    OCCLUDERS,
    SKIN_TONES_RGB,
    render,
)
from ferlib.data.synth_video import TASK_DOCS, head_motion, sample_video_aus

__all__ = [
    "AGE_GROUPS",
    "AU_NAMES",
    "CLASS_VARIANTS",
    "GENDER_PRESENTATIONS",
    "KNOB_DOCS",
    "LANDMARK_NAMES",
    "NUISANCES",
    "OCCLUDERS",
    "PRESETS",
    "SKIN_TONE_LEVELS",
    "SMILE_CLASSES",
    "SynthFER",
    "TASKS",
    "TASK_DOCS",
    "FrameDataset",
    "class_prototype",
    "export_synthfer",
    "render_faces",
    "synth_faces",
]

VERSION = 2  # bump when generation changes, so old caches are not reused
TASKS = ("static", "video-basic", "video-subtle", "smile-dynamics")
SPLITS = ("train", "val", "test")
SMILE_CLASSES = ("posed", "spontaneous")
SKIN_TONE_LEVELS = len(SKIN_TONES_RGB)
AGE_GROUPS = ("young", "adult", "older")
GENDER_PRESENTATIONS = ("feminine", "masculine", "androgynous")
NUISANCES = ("illumination", "pose", "occlusion", "noise", "blur", "jpeg", "clutter")
MAX_SEVERITY = 5.0

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

# Presets: expression intensity range, AU drop probability, spurious-AU probability, and for each
# nuisance (probability it is applied, maximum severity on the 0-5 scale).
PRESETS: dict[str, dict] = {
    "easy": {
        "intensity": (0.6, 1.0),
        "au_dropout": 0.05,
        "spurious": 0.05,
        "nuisance": {name: (0.0, 0.0) for name in NUISANCES},
    },
    "default": {
        "intensity": (0.4, 1.0),
        "au_dropout": 0.1,
        "spurious": 0.15,
        "nuisance": {
            "illumination": (0.7, 2.0),
            "pose": (0.7, 2.0),
            "occlusion": (0.15, 2.0),
            "noise": (0.5, 1.5),
            "blur": (0.3, 1.5),
            "jpeg": (0.3, 2.0),
            "clutter": (0.5, 2.0),
        },
    },
    "wild": {
        "intensity": (0.15, 1.0),
        "au_dropout": 0.2,
        "spurious": 0.35,
        "nuisance": {
            "illumination": (0.9, 4.0),
            "pose": (0.9, 4.0),
            "occlusion": (0.4, 4.0),
            "noise": (0.7, 3.5),
            "blur": (0.5, 3.0),
            "jpeg": (0.6, 4.0),
            "clutter": (0.8, 4.0),
        },
    },
}

KNOB_DOCS: dict[str, str] = {
    "split": "'train', 'val' or 'test'; splits have disjoint identities",
    "size": "number of samples (images or clips), >= 1",
    "task": "'static', 'video-basic', 'video-subtle' or 'smile-dynamics'",
    "seed": "integer; the same seed and knobs give the same bytes",
    "preset": "'easy', 'default' or 'wild': intensity range and nuisance severities",
    "image_size": "output height and width in pixels, 16-256 (default 48)",
    "rgb": "False: 1 grayscale channel; True: 3 colour channels",
    "frames": "frames per clip for video tasks, 2-64 (default 16)",
    "subjects": "identities in the split (default: one per 20 samples, at least 4)",
    "intensity": "(low, high) or a number in [0, 1]: the expression's overall intensity",
    "au_dropout": "probability in [0, 0.9] that each AU of a class variant is dropped",
    "spurious": "probability in [0, 1] of one extra, weak, unrelated AU",
    "illumination, pose, occlusion, noise, blur, jpeg, clutter": (
        "None (use the preset), a severity in [0, 5] for every sample, or a (low, high) range"
    ),
    "occluders": "which occluders occlusion draws from: sunglasses, mask, hand, patch",
    "group_weights": "dict attribute -> weights: skin_tone (6), age (3), gender (3); default equal",
    "bias_group": "(attribute, value) the three bias knobs act on; default ('gender', 'masculine')",
    "display_rules": "0-1: lower intensity of angry/disgust/happy/surprise in bias_group (Safdar 2009)",
    "label_noise": "0-1: probability that a bias_group label is swapped for a confusable class "
    "(Nagata & Okajima 2024)",
    "resting_face": "0-1: resting face structure in bias_group that resembles anger (Adams et al. 2022)",
    "match_amplitude": "smile-dynamics: posed and spontaneous apexes share one amplitude distribution",
    "distractors": "0-1: rate of blinks and talking in clips (default 1)",
    "head_motion": "0-2: amount of per-frame head motion in clips (default 1)",
    "supersample": "1-4: eyes are drawn at this multiple of the output resolution and area-downsampled, "
    "the mouth at one less; everything else uses analytic anti-aliasing "
    "(default 2 for images, 1 for clips)",
    "transform": "callable applied to the image/clip tensor in __getitem__",
    "cache / cache_dir": "cache generated sets on disk (default ~/.cache/ferlib/synthfer or $FERLIB_CACHE)",
}

_SPLIT_CODE = {"train": 1, "val": 2, "test": 3}
_TASK_CODE = {t: i + 1 for i, t in enumerate(TASKS)}
_SUBJECT_OFFSET = {"train": 0, "val": 100_000, "test": 200_000}
_STATIC_CHUNK = 256
_VIDEO_CHUNK = 32


def _choice_error(name: str, value, allowed) -> ValueError:
    return ValueError(f"{name}={value!r} is not allowed: expected one of {', '.join(map(repr, allowed))}")


def _range(name: str, value, low: float, high: float) -> tuple[float, float] | None:
    """Validate a knob that is None, a number or a (low, high) pair within [low, high]."""
    if value is None:
        return None
    if isinstance(value, (int, float)) and not isinstance(value, bool):
        pair = (float(value), float(value))
    elif isinstance(value, Sequence) and len(value) == 2:
        pair = (float(value[0]), float(value[1]))
    else:
        raise ValueError(
            f"{name}={value!r} is not allowed: expected a number or a (low, high) pair in [{low}, {high}]"
        )
    if not (low <= pair[0] <= pair[1] <= high):
        raise ValueError(
            f"{name}={value!r} is out of range: expected values with {low} <= low <= high <= {high}"
        )
    return pair


def _number(name: str, value, low: float, high: float) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not (low <= value <= high):
        raise ValueError(f"{name}={value!r} is out of range: expected a number in [{low}, {high}]")
    return float(value)


def _integer(name: str, value, low: int, high: int) -> int:
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or not (low <= value <= high):
        raise ValueError(f"{name}={value!r} is out of range: expected an integer in [{low}, {high}]")
    return int(value)


def _config(
    split,
    size,
    task,
    seed,
    preset,
    image_size,
    rgb,
    frames,
    subjects,
    intensity,
    au_dropout,
    spurious,
    occluders,
    group_weights,
    bias_group,
    display_rules,
    label_noise,
    resting_face,
    match_amplitude,
    distractors,
    head_motion_amount,
    supersample,
    nuisance,
) -> dict:
    """Validate every knob at the boundary; return the canonical config (the cache key)."""
    if split not in SPLITS:
        raise _choice_error("split", split, SPLITS)
    if task not in TASKS:
        raise _choice_error("task", task, TASKS)
    if preset not in PRESETS:
        raise _choice_error("preset", preset, tuple(PRESETS))
    size = _integer("size", size, 1, 10_000_000)
    seed = _integer("seed", seed, 0, 2**63 - 1)
    image_size = _integer("image_size", image_size, 16, 256)
    frames = _integer("frames", frames, 2, 64)
    if supersample is None:
        supersample = 2 if task == "static" else 1
    supersample = _integer("supersample", supersample, 1, 4)
    if subjects is None:
        subjects = max(4, math.ceil(size / 20))
    subjects = _integer("subjects", subjects, 1, 99_999)
    base = PRESETS[preset]
    intensity = _range("intensity", intensity, 0.0, 1.0) or base["intensity"]
    au_dropout = base["au_dropout"] if au_dropout is None else _number("au_dropout", au_dropout, 0.0, 0.9)
    spurious = base["spurious"] if spurious is None else _number("spurious", spurious, 0.0, 1.0)
    severities = {}
    for name in NUISANCES:
        given = _range(name, nuisance.get(name), 0.0, MAX_SEVERITY)
        if given is None:
            prob, high = base["nuisance"][name]
            severities[name] = [prob, 0.0, high]
        else:
            severities[name] = [1.0, given[0], given[1]]
    occluders = tuple(occluders)
    for name in occluders:
        if name not in OCCLUDERS[1:]:
            raise _choice_error("occluders", name, OCCLUDERS[1:])
    if not occluders:
        raise ValueError("occluders=() is not allowed: name at least one of " + ", ".join(OCCLUDERS[1:]))
    weights = {"skin_tone": [1.0] * SKIN_TONE_LEVELS, "age": [1.0] * 3, "gender": [1.0] * 3}
    for key, value in (group_weights or {}).items():
        if key not in weights:
            raise _choice_error("group_weights", key, tuple(weights))
        value = [float(v) for v in value]
        if len(value) != len(weights[key]) or min(value) < 0 or sum(value) <= 0:
            raise ValueError(
                f"group_weights[{key!r}]={value!r} is not allowed: expected {len(weights[key])} "
                "non-negative weights with a positive sum"
            )
        weights[key] = value
    attr, val = bias_group
    allowed = {"skin_tone": tuple(range(SKIN_TONE_LEVELS)), "age": AGE_GROUPS, "gender": GENDER_PRESENTATIONS}
    if attr not in allowed:
        raise _choice_error("bias_group attribute", attr, tuple(allowed))
    if val not in allowed[attr]:
        raise _choice_error(f"bias_group value for {attr}", val, allowed[attr])
    return {
        "version": VERSION,
        "split": split,
        "size": size,
        "task": task,
        "seed": seed,
        "preset": preset,
        "image_size": image_size,
        "rgb": bool(rgb),
        "frames": frames if task != "static" else 1,
        "subjects": subjects,
        "intensity": list(intensity),
        "au_dropout": au_dropout,
        "spurious": spurious,
        "severities": severities,
        "occluders": list(occluders),
        "group_weights": weights,
        "bias_group": [attr, val],
        "display_rules": _number("display_rules", display_rules, 0, 1),
        "label_noise": _number("label_noise", label_noise, 0, 1),
        "resting_face": _number("resting_face", resting_face, 0, 1),
        "match_amplitude": bool(match_amplitude),
        "distractors": _number("distractors", distractors, 0, 1),
        "head_motion": _number("head_motion", head_motion_amount, 0, 2),
        "supersample": supersample,
    }


# ---------------------------------------------------------------------------------------------
# Sampling (numpy, seeded per chunk so any chunk can be regenerated alone)


def _identities(cfg: dict) -> dict[str, np.ndarray]:
    """Identity parameters of every subject of the split; each subject has its own seed."""
    n = cfg["subjects"]
    split = cfg["split"]
    rows = []
    w = cfg["group_weights"]
    for i in range(n):
        rng = np.random.default_rng(np.random.SeedSequence([cfg["seed"], _SPLIT_CODE[split], 77, i]))
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
    strength = cfg["resting_face"]
    if strength > 0:
        member = _group_member(ident, cfg["bias_group"])
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


def _sample_expressions(rng, cfg: dict, labels: np.ndarray, member: np.ndarray):
    """AU intensities [B, A] for class ids ``labels``, plus intensity and variant index."""
    b = len(labels)
    aus = np.zeros((b, len(AU_NAMES)), dtype=np.float64)
    lo, hi = cfg["intensity"]
    intensity = rng.uniform(lo, hi, b)
    if cfg["display_rules"] > 0:
        damp = np.isin(labels, [EMOTION_TO_ID[e] for e in DISPLAY_RULE_EMOTIONS]) * member
        intensity = intensity * (1 - 0.6 * cfg["display_rules"] * damp)
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
            if j > 0 and drop_u[i, j] < cfg["au_dropout"]:
                continue
            aus[i, AU_INDEX[f"AU{au}"]] = min(1.0, intensity[i] * per_au[i, j])
        if spurious_u[i] < cfg["spurious"]:
            a = spurious_au[i]
            aus[i, a] = max(aus[i, a], spurious_v[i])
    return aus, intensity, variant


def _sample_nuisance(rng, cfg: dict, b: int) -> dict[str, np.ndarray]:
    """Per-sample nuisance severities (0-5) and the concrete values they produce."""
    sev = {}
    for name in NUISANCES:
        prob, low, high = cfg["severities"][name]
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
    occ_names = cfg["occluders"]
    kinds = np.array([OCCLUDERS.index(n) for n in occ_names])
    out["occluder"] = np.where(s["occlusion"] > 0, kinds[(u[:, 8] * len(kinds)).astype(int)], 0)
    out["occ_x"] = (2 * u[:, 9] - 1) * 0.55
    out["occ_y"] = 0.1 + (2 * u[:, 10] - 1) * 0.55
    out["occ_shade"] = 0.8 + 0.2 * u[:, 11]
    out["noise_sigma"] = 0.015 * s["noise"]
    out["blur_sigma"] = 0.4 * s["blur"] * cfg["image_size"] / 48
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


def _jpeg_quant_table(quality: torch.Tensor) -> torch.Tensor:
    base = torch.tensor(
        [
            16,
            11,
            10,
            16,
            24,
            40,
            51,
            61,
            12,
            12,
            14,
            19,
            26,
            58,
            60,
            55,
            14,
            13,
            16,
            24,
            40,
            57,
            69,
            56,
            14,
            17,
            22,
            29,
            51,
            87,
            80,
            62,
            18,
            22,
            37,
            56,
            68,
            109,
            103,
            77,
            24,
            35,
            55,
            64,
            81,
            104,
            113,
            92,
            49,
            64,
            78,
            87,
            103,
            121,
            120,
            101,
            72,
            92,
            95,
            98,
            112,
            100,
            103,
            99,
        ],
        dtype=torch.float32,
    ).view(8, 8)
    q = quality.clamp(1, 100)
    scale = torch.where(q < 50, 5000 / q, 200 - 2 * q)
    return torch.floor((base * scale.view(-1, 1, 1) + 50) / 100).clamp_min(1)


def _dct_matrix() -> torch.Tensor:
    k = torch.arange(8, dtype=torch.float64)
    m = torch.cos((2 * k.view(1, -1) + 1) * k.view(-1, 1) * math.pi / 16) * math.sqrt(2 / 8)
    m[0] /= math.sqrt(2)
    return m.float()


def _jpeg(img: torch.Tensor, quality: torch.Tensor) -> torch.Tensor:
    """Baseline JPEG's lossy step (8x8 DCT, quantisation with the standard table), vectorised."""
    n, c, h, w = img.shape
    ph, pw = (-h) % 8, (-w) % 8
    x = F.pad(img, (0, pw, 0, ph), mode="replicate") * 255 - 128
    hh, ww = x.shape[2] // 8, x.shape[3] // 8
    blocks = x.view(n, c, hh, 8, ww, 8).permute(0, 1, 2, 4, 3, 5)
    d = _dct_matrix()
    coef = d @ blocks @ d.t()
    table = _jpeg_quant_table(quality).view(n, 1, 1, 1, 8, 8)
    coef = torch.round(coef / table) * table
    out = (d.t() @ coef @ d).permute(0, 1, 2, 4, 3, 5).reshape(n, c, hh * 8, ww * 8)
    return ((out + 128) / 255)[:, :, :h, :w].clamp(0, 1)


def _blur(img: torch.Tensor, sigma: torch.Tensor) -> torch.Tensor:
    n, c, h, w = img.shape
    radius = max(1, int(math.ceil(3 * float(sigma.max()))))
    t = torch.arange(-radius, radius + 1, dtype=torch.float32)
    k = torch.exp(-(t.view(1, -1) ** 2) / (2 * sigma.view(-1, 1).clamp_min(1e-3) ** 2))
    k = (k / k.sum(1, keepdim=True)).repeat_interleave(c, 0)
    x = F.pad(img.reshape(1, n * c, h, w), (radius, radius, radius, radius), mode="replicate")
    x = F.conv2d(x, k.view(n * c, 1, 1, -1), groups=n * c)
    x = F.conv2d(x, k.view(n * c, 1, -1, 1), groups=n * c)
    return x.view(n, c, h, w)


def _sensor(img: torch.Tensor, nz: dict, rng, per: int) -> torch.Tensor:
    """Blur, sensor noise and JPEG; ``nz`` values are per sample, repeated ``per`` times (frames)."""
    rep = lambda k: torch.from_numpy(np.repeat(nz[k], per).astype(np.float32))  # noqa: E731
    sigma = rep("blur_sigma")
    sel = (sigma > 0.05).nonzero().view(-1)
    if sel.numel():
        img[sel] = _blur(img[sel], sigma[sel])
    noise_sigma = rep("noise_sigma")
    pick = torch.from_numpy(rng.integers(0, _BANK_SIZE, len(noise_sigma)))
    sign = torch.from_numpy(rng.choice(np.array([-1.0, 1.0], dtype=np.float32), len(noise_sigma)))
    sel = (noise_sigma > 0).nonzero().view(-1)
    if sel.numel():
        field = _noise_bank("sensor", tuple(img.shape[1:]))[pick[sel]] * (sign[sel] * noise_sigma[sel]).view(
            -1, 1, 1, 1
        )
        # Shot-noise-like: stronger in brighter pixels, plus a floor.
        img[sel] = (img[sel] + field * (0.5 + 0.7 * img[sel].sqrt())).clamp_(0, 1)
    quality = rep("jpeg_quality")
    sel = (quality < 99.5).nonzero().view(-1)
    if sel.numel():
        img[sel] = _jpeg(img[sel], quality[sel])
    return img


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


# ---------------------------------------------------------------------------------------------
# Generating a whole set


def _chunk_rng(cfg: dict, chunk: int) -> np.random.Generator:
    return np.random.default_rng(
        np.random.SeedSequence([cfg["seed"], _SPLIT_CODE[cfg["split"]], _TASK_CODE[cfg["task"]], 3, chunk])
    )


def _generate_chunk(cfg: dict, ident: dict, chunk: int, start: int, count: int) -> dict[str, np.ndarray]:
    rng = _chunk_rng(cfg, chunk)
    task = cfg["task"]
    num_classes = 2 if task == "smile-dynamics" else len(EMOTIONS)
    # Balanced labels: sample i has class (i * 7919 + seed) mod K before a per-set shuffle.
    labels = (np.arange(start, start + count) * 5 + cfg["seed"]) % num_classes
    subject_idx = rng.integers(0, cfg["subjects"], count)
    who = {k: v[subject_idx] for k, v in ident.items()}
    member = _group_member(who, cfg["bias_group"])
    if task == "smile-dynamics":
        aus = np.zeros((count, len(AU_NAMES)))
        intensity, variant = np.zeros(count), np.zeros(count, dtype=np.int64)
    else:
        aus, intensity, variant = _sample_expressions(rng, cfg, labels, member)
        if task == "video-subtle":
            scale = rng.uniform(0.12, 0.35, count) / np.maximum(intensity, 1e-3)
            aus = np.clip(aus * np.minimum(scale, 1.0)[:, None], 0, 1)
            intensity = intensity * np.minimum(scale, 1.0)
    nz = _sample_nuisance(rng, cfg, count)
    frame = _framing(rng, count, cfg["image_size"])
    out: dict[str, np.ndarray] = {}
    if task == "static":
        asym = 1 + rng.uniform(-0.1, 0.1, (count, len(AU_NAMES)))
        blink = rng.random(count) < 0.03
        aus[blink, AU_INDEX["AU45"]] = rng.uniform(0.6, 1.0, int(blink.sum()))
        aus_lr = np.clip(np.stack([aus * asym, aus * (2 - asym)], -1), 0, 1).astype(np.float32)
        pose = {"roll": nz["roll"], "yaw": nz["yaw"], "pitch": nz["pitch"], **frame}
        imgs, marks = render_faces(
            who,
            aus_lr,
            pose,
            nz,
            rng,
            image_size=cfg["image_size"],
            rgb=cfg["rgb"],
            supersample=cfg["supersample"],
        )
        out["aus"] = aus_lr.mean(-1)
    else:
        frames = cfg["frames"]
        aus_t, info = sample_video_aus(
            rng, task, labels, aus, frames, cfg["match_amplitude"], cfg["distractors"]
        )
        motion = head_motion(rng, count, frames, cfg["head_motion"])
        pose = {k: (nz[k][:, None] + motion[k]).reshape(-1) for k in ("roll", "yaw", "pitch")}
        pose["dx"] = (frame["dx"][:, None] + motion["dx"] * 0.3).reshape(-1)
        pose["dy"] = (frame["dy"][:, None] + motion["dy"] * 0.3).reshape(-1)
        pose["zoom"] = np.repeat(frame["zoom"], frames)
        imgs, marks = render_faces(
            who,
            aus_t.reshape(count * frames, len(AU_NAMES), 2),
            pose,
            nz,
            rng,
            image_size=cfg["image_size"],
            rgb=cfg["rgb"],
            supersample=cfg["supersample"],
            per=frames,
        )
        imgs = imgs.view(count, frames, *imgs.shape[1:])
        marks = marks.view(count, frames, *marks.shape[1:])
        out["aus"] = aus_t.mean(-1)
        for k, v in info.items():
            out[f"video_{k}"] = np.asarray(v, dtype=np.float32)
        if task == "smile-dynamics":
            intensity = info["peak"]
    true_labels = labels.copy()
    if cfg["label_noise"] > 0 and task != "smile-dynamics":
        flip = (rng.random(count) < cfg["label_noise"]) & (member > 0)
        swapped = np.array([EMOTION_TO_ID[CONFUSABLE[EMOTIONS[k]]] for k in labels])
        labels = np.where(flip, swapped, labels)
    out.update(
        images=imgs.numpy(),
        landmarks=marks.numpy().astype(np.float32),
        labels=labels.astype(np.int64),
        true_labels=true_labels.astype(np.int64),
        intensity=intensity.astype(np.float32),
        variant=variant,
        subject=who["subject"],
        skin_tone=who["skin_tone"],
        age_group=who["age_group"],
        gender=who["gender"],
    )
    for k, v in nz.items():
        if k != "occ_rgb" and not k.startswith(("light_", "occ_")):
            out[f"nz_{k}"] = np.asarray(v, dtype=np.float32)
    out["nz_occluder"] = nz["occluder"].astype(np.int64)
    return out


def _generate(cfg: dict) -> dict[str, np.ndarray]:
    ident = _identities(cfg)
    chunk = _STATIC_CHUNK if cfg["task"] == "static" else _VIDEO_CHUNK
    parts = []
    threads = torch.get_num_threads()
    torch.set_num_threads(1)  # same bytes whatever the machine's thread count
    try:
        with torch.no_grad():
            for c, start in enumerate(range(0, cfg["size"], chunk)):
                parts.append(_generate_chunk(cfg, ident, c, start, min(chunk, cfg["size"] - start)))
    finally:
        torch.set_num_threads(threads)
    arrays = {k: np.concatenate([p[k] for p in parts]) for k in parts[0]}
    # Shuffle order so classes are not interleaved in a fixed pattern.
    order = np.random.default_rng(
        np.random.SeedSequence([cfg["seed"], _SPLIT_CODE[cfg["split"]], 5])
    ).permutation(cfg["size"])
    return {k: v[order] for k, v in arrays.items()}


def default_cache_dir() -> Path:
    return Path(os.environ.get("FERLIB_CACHE") or Path.home() / ".cache" / "ferlib") / "synthfer"


def _load_or_generate(cfg: dict, cache: bool, cache_dir) -> dict[str, np.ndarray]:
    if not cache:
        return _generate(cfg)
    key = hashlib.sha1(json.dumps(cfg, sort_keys=True).encode()).hexdigest()[:20]
    folder = Path(cache_dir) if cache_dir is not None else default_cache_dir()
    path = folder / f"synthfer-{cfg['task']}-{cfg['split']}-{key}.npz"
    if path.exists():
        try:
            with np.load(path) as data:
                return {k: data[k] for k in data.files}
        except (OSError, ValueError, EOFError):
            pass  # a broken cache file is regenerated
    arrays = _generate(cfg)
    try:
        folder.mkdir(parents=True, exist_ok=True)
        with tempfile.NamedTemporaryFile(dir=folder, suffix=".npz", delete=False) as handle:
            np.savez(handle, **arrays)
        os.replace(handle.name, path)  # atomic: concurrent processes never see a half file
    except OSError:
        pass  # caching is an optimisation; a read-only disk is fine
    return arrays


@register_dataset("synthfer")
class SynthFER(Dataset):
    """Procedural faces (``task="static"``) or face clips (video tasks) with known ground truth.

    Parameters
    ----------
    split : ``"train"``, ``"val"`` or ``"test"`` (disjoint identities).
    size : number of samples. task, preset, seed, image_size: see :data:`KNOB_DOCS`, which
        documents every keyword; nuisance knobs (``illumination=2``, ``pose=(0, 3)``...) override
        the preset's severities.
    transform : applied to the image ``[C, H, W]`` or clip ``[T, C, H, W]`` float tensor.
    cache, cache_dir : reuse generated sets from disk (keyed by the whole config).

    Samples are ``(x, y, meta)``: ``x`` float32 in [0, 1]; ``y`` the class id; ``meta`` holds
    ``subject``, ``group`` (skin_tone 0-5, age, gender), ``landmarks`` (see
    :data:`LANDMARK_NAMES`), ``aus`` (name -> intensity, or per-frame arrays for clips),
    ``intensity``, ``true_label`` and ``nuisance`` (severities and values).
    """

    def __init__(
        self,
        split: str = "train",
        size: int = 1000,
        task: str = "static",
        seed: int = 0,
        preset: str = "default",
        image_size: int = 48,
        *,
        rgb: bool = False,
        frames: int = 16,
        subjects: int | None = None,
        intensity=None,
        au_dropout: float | None = None,
        spurious: float | None = None,
        illumination=None,
        pose=None,
        occlusion=None,
        noise=None,
        blur=None,
        jpeg=None,
        clutter=None,
        occluders: Sequence[str] = ("sunglasses", "mask", "hand", "patch"),
        group_weights: dict | None = None,
        bias_group: tuple = ("gender", "masculine"),
        display_rules: float = 0.0,
        label_noise: float = 0.0,
        resting_face: float = 0.0,
        match_amplitude: bool = True,
        distractors: float = 1.0,
        head_motion: float = 1.0,
        supersample: int | None = None,
        transform: Callable | None = None,
        cache: bool = True,
        cache_dir: str | os.PathLike | None = None,
        root: str | None = None,
    ):
        nuisance = {
            "illumination": illumination,
            "pose": pose,
            "occlusion": occlusion,
            "noise": noise,
            "blur": blur,
            "jpeg": jpeg,
            "clutter": clutter,
        }
        self.config = _config(
            split,
            size,
            task,
            seed,
            preset,
            image_size,
            rgb,
            frames,
            subjects,
            intensity,
            au_dropout,
            spurious,
            occluders,
            group_weights,
            bias_group,
            display_rules,
            label_noise,
            resting_face,
            match_amplitude,
            distractors,
            head_motion,
            supersample,
            nuisance,
        )
        self.split, self.task, self.transform = split, task, transform
        self.class_names = SMILE_CLASSES if task == "smile-dynamics" else EMOTIONS
        self.num_classes = len(self.class_names)
        self._data = _load_or_generate(self.config, cache, cache_dir)
        self.labels = torch.from_numpy(self._data["labels"])
        self.subjects = torch.from_numpy(self._data["subject"])

    def __len__(self) -> int:
        return len(self.labels)

    @property
    def is_video(self) -> bool:
        return self.task != "static"

    def image_array(self, index: int) -> np.ndarray:
        """The stored uint8 image [C, H, W] or clip [T, C, H, W]."""
        return self._data["images"][index]

    def group_frame(self):
        """A pandas DataFrame, one row per sample: label, subject, group, intensity, nuisances."""
        import pandas as pd

        d = self._data
        frame = pd.DataFrame(
            {
                "label": d["labels"],
                "true_label": d["true_labels"],
                "subject": d["subject"],
                "skin_tone": d["skin_tone"],
                "age": [AGE_GROUPS[i] for i in d["age_group"]],
                "gender": [GENDER_PRESENTATIONS[i] for i in d["gender"]],
                "intensity": d["intensity"],
            }
        )
        frame["class"] = [self.class_names[i] for i in d["labels"]]
        for k in sorted(d):
            if k.startswith("nz_"):
                frame[k[3:]] = d[k] if k != "nz_occluder" else [OCCLUDERS[i] for i in d[k]]
        return frame

    def meta(self, index: int) -> dict:
        d = self._data
        aus = d["aus"][index]
        meta = {
            "subject": int(d["subject"][index]),
            "group": {
                "skin_tone": int(d["skin_tone"][index]),
                "age": AGE_GROUPS[d["age_group"][index]],
                "gender": GENDER_PRESENTATIONS[d["gender"][index]],
            },
            "landmarks": d["landmarks"][index],
            "aus": {name: (float(aus[i]) if aus.ndim == 1 else aus[:, i]) for i, name in enumerate(AU_NAMES)},
            "intensity": float(d["intensity"][index]),
            "true_label": int(d["true_labels"][index]),
            "variant": int(d["variant"][index]),
            "nuisance": {
                k[3:]: (OCCLUDERS[int(d[k][index])] if k == "nz_occluder" else float(d[k][index]))
                for k in d
                if k.startswith("nz_")
            },
        }
        if self.is_video:
            meta["video"] = {k[6:]: float(d[k][index]) for k in d if k.startswith("video_")}
        return meta

    def __getitem__(self, index: int):
        if index < 0:
            index += len(self)
        if not 0 <= index < len(self):
            raise IndexError(f"index {index} out of range for a SynthFER set of {len(self)} samples")
        x = torch.from_numpy(self._data["images"][index].astype(np.float32) / 255.0)
        if self.transform is not None:
            x = self.transform(x)
        return x, int(self._data["labels"][index]), self.meta(index)

    def __repr__(self) -> str:
        c = self.config
        return (
            f"SynthFER(split={c['split']!r}, size={c['size']}, task={c['task']!r}, preset={c['preset']!r}, "
            f"image_size={c['image_size']}, seed={c['seed']})"
        )


class FrameDataset(Dataset):
    """One frame per clip of a video :class:`SynthFER` set, as static ``(image, label, meta)`` samples.

    ``which="apex"`` takes each clip's frame of highest expression intensity (for smile-dynamics,
    the AU12 peak: what a still photograph of the smile would catch); an integer takes that frame.
    """

    def __init__(self, clips: SynthFER, which: str | int = "apex"):
        if not clips.is_video:
            raise ValueError(
                "FrameDataset needs a video task: task='video-basic', 'video-subtle' or 'smile-dynamics'"
            )
        frames = clips.config["frames"]
        if which == "apex":
            aus = clips._data["aus"]  # [N, T, A]
            signal = aus[:, :, AU_INDEX["AU12"]] if clips.task == "smile-dynamics" else aus[:, :, :-1].sum(-1)
            self.index = signal.argmax(1)
        elif isinstance(which, int) and -frames <= which < frames:
            self.index = np.full(len(clips), which % frames)
        else:
            raise ValueError(
                f"which={which!r} is not allowed: expected 'apex' or a frame index in [0, {frames})"
            )
        self.clips = clips
        self.labels, self.num_classes, self.class_names = clips.labels, clips.num_classes, clips.class_names

    def __len__(self) -> int:
        return len(self.clips)

    def __getitem__(self, index: int):
        t = int(self.index[index])
        x = torch.from_numpy(self.clips._data["images"][index, t].astype(np.float32) / 255.0)
        meta = self.clips.meta(index)
        meta["frame"] = t
        return x, int(self.labels[index]), meta


def class_prototype(name: str, intensity: float = 0.9, variant: int = 0) -> dict[str, float]:
    """The AU intensities of one documented variant of a class, e.g. ``{"AU6": 0.9, "AU12": 0.9}``."""
    if name not in CLASS_VARIANTS:
        raise _choice_error("name", name, tuple(CLASS_VARIANTS))
    variants = CLASS_VARIANTS[name]
    return {f"AU{au}": float(intensity) for au in variants[variant % len(variants)]}


def synth_faces(
    expressions: Sequence[dict[str, float]],
    subjects: Sequence[int] = (0,),
    *,
    seed: int = 0,
    split: str = "train",
    image_size: int = 48,
    rgb: bool = False,
    group_weights: dict | None = None,
    supersample: int = 2,
) -> np.ndarray:
    """Render chosen AU intensities (``{"AU12": 1.0}``...) on chosen identities, frontal, evenly lit.

    Returns uint8 images ``[len(subjects), len(expressions), C, H, W]``: for figures that show
    each AU alone or each class on several people.
    """
    cfg = _config(
        split,
        1,
        "static",
        seed,
        "easy",
        image_size,
        rgb,
        16,
        max(subjects) + 1,
        None,
        None,
        None,
        ("patch",),
        group_weights,
        ("gender", "masculine"),
        0.0,
        0.0,
        0.0,
        True,
        1.0,
        1.0,
        supersample,
        {},
    )
    ident = _identities(cfg)
    k = len(expressions)
    aus = np.zeros((k, len(AU_NAMES), 2), dtype=np.float32)
    for j, expression in enumerate(expressions):
        for name, value in expression.items():
            if name not in AU_INDEX:
                raise _choice_error("AU name", name, AU_NAMES)
            aus[j, AU_INDEX[name]] = _number(name, value, 0.0, 1.0)
    out = []
    for subject in subjects:
        rng = np.random.default_rng(np.random.SeedSequence([seed, 11, subject]))
        who = {key: np.repeat(v[subject : subject + 1], k, 0) for key, v in ident.items()}
        nz = _sample_nuisance(rng, cfg, k)
        zeros = np.zeros(k)
        pose = {"roll": zeros, "yaw": zeros, "pitch": zeros, "dx": zeros, "dy": zeros, "zoom": np.ones(k)}
        with torch.no_grad():
            images, _ = render_faces(
                who, aus, pose, nz, rng, image_size=image_size, rgb=rgb, supersample=supersample
            )
        out.append(images.numpy())
    return np.stack(out)


def export_synthfer(
    out_dir: str | os.PathLike,
    *,
    task: str = "static",
    split: str = "train",
    size: int = 1000,
    seed: int = 0,
    preset: str = "default",
    image_size: int = 48,
    **knobs,
) -> Path:
    """Write a SynthFER set as PNG class folders plus ``metadata.csv``; returns ``out_dir``.

    Static: ``out_dir/<split>/<class>/<id>.png``; video: ``out_dir/<split>/<class>/<clip_id>/<frame>.png``,
    the layout ferlib's ImageFolder and VideoFolder readers read (class folders are EMOTIONS
    names, or ``posed``/``spontaneous`` for smile-dynamics). ``out_dir/<split>/metadata.csv`` has one
    row per image or clip: path, label, class, subject, group attributes, intensity and nuisances.
    """
    from PIL import Image

    data = SynthFER(
        split=split, size=size, task=task, seed=seed, preset=preset, image_size=image_size, **knobs
    )
    root = Path(out_dir)
    base = root / split
    frame = data.group_frame()
    paths = []
    for i in range(len(data)):
        cls = data.class_names[int(data.labels[i])]
        arr = data.image_array(i)
        if data.is_video:
            folder = base / cls / f"{i:06d}"
            folder.mkdir(parents=True, exist_ok=True)
            for t, img in enumerate(arr):
                _save_png(Image, img, folder / f"{t:03d}.png")
            paths.append(folder.relative_to(base).as_posix())
        else:
            (base / cls).mkdir(parents=True, exist_ok=True)
            _save_png(Image, arr, base / cls / f"{i:06d}.png")
            paths.append(f"{cls}/{i:06d}.png")
    frame.insert(0, "path", paths)
    with open(base / "metadata.csv", "w", newline="") as handle:
        writer = csv.writer(handle)
        writer.writerow(frame.columns)
        writer.writerows(frame.itertuples(index=False))
    return root


def _save_png(image_module, arr: np.ndarray, path: Path) -> None:
    img = arr[0] if arr.shape[0] == 1 else np.transpose(arr, (1, 2, 0))
    image_module.fromarray(np.ascontiguousarray(img)).save(path)


LUMINANCE = LUMA  # re-exported for chapters that convert RGB tones to gray
