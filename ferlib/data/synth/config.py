"""SynthFER's knobs: names, presets and documentation, and :class:`SynthConfig`, which checks them.

Every knob is checked once, at the boundary, by :meth:`SynthConfig.build`; what it returns holds
the resolved values (the preset filled in, defaults chosen) that sampling, rendering and the
cache read. :meth:`SynthConfig.as_dict` is the canonical JSON form, hashed into the cache key.
"""

from __future__ import annotations

import hashlib
import inspect
import json
import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, fields
from types import MappingProxyType

import numpy as np

from ferlib.data.synth.face import OCCLUDERS, SKIN_TONES_RGB
from ferlib.errors import ConfigError

VERSION = 2  # bump when generation changes, so old caches are not reused
TASKS = ("static", "video-basic", "video-subtle", "smile-dynamics")
SPLITS = ("train", "val", "test")
SMILE_CLASSES = ("posed", "spontaneous")
SKIN_TONE_LEVELS = len(SKIN_TONES_RGB)
AGE_GROUPS = ("young", "adult", "older")
GENDER_PRESENTATIONS = ("feminine", "masculine", "androgynous")
NUISANCES = ("illumination", "pose", "occlusion", "noise", "blur", "jpeg", "clutter")
MAX_SEVERITY = 5.0

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


# A knob given as one value for every sample or a (low, high) range to draw from; None: the preset's.
Level = float | tuple[float, float] | None


def _range(name: str, value: Level, low: float, high: float) -> tuple[float, float] | None:
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


def _plain(value):
    """Tuples and mappings as the lists and dicts of JSON (the form hashed into the cache key)."""
    if isinstance(value, Mapping):
        return {key: _plain(item) for key, item in value.items()}
    if isinstance(value, tuple):
        return [_plain(item) for item in value]
    return value


@dataclass(frozen=True)
class SynthConfig:
    """Every SynthFER knob, checked and resolved: build one with :meth:`build`.

    The fields are what generation reads. Knobs left at ``None`` are filled in: ``intensity``,
    ``au_dropout`` and ``spurious`` from the preset, ``subjects`` from ``size`` (one per 20
    samples, at least 4) and ``supersample`` from ``task`` (2 for images, 1 for clips);
    ``frames`` is 1 for static images; ``severities`` gives each nuisance its
    ``(probability, low, high)`` severity range. The mappings are read-only too.

    >>> cfg = SynthConfig.build("train", 40, "static", 0, "easy", 48)
    >>> cfg.subjects, cfg.intensity, cfg.severities["pose"]
    (4, (0.6, 1.0), (0.0, 0.0, 0.0))
    """

    split: str
    size: int
    task: str
    seed: int
    preset: str
    image_size: int
    rgb: bool
    frames: int
    subjects: int
    intensity: tuple[float, float]
    au_dropout: float
    spurious: float
    severities: Mapping[str, tuple[float, float, float]]
    occluders: tuple[str, ...]
    group_weights: Mapping[str, tuple[float, ...]]
    bias_group: tuple[str, str | int]
    display_rules: float
    label_noise: float
    resting_face: float
    match_amplitude: bool
    distractors: float
    head_motion: float
    supersample: int

    @classmethod
    def knob_names(cls) -> tuple[str, ...]:
        """The keyword-only options of :meth:`build` (what ``SynthFER(**knobs)`` accepts)."""
        parameters = inspect.signature(cls.build).parameters.values()
        return tuple(p.name for p in parameters if p.kind is inspect.Parameter.KEYWORD_ONLY)

    @classmethod
    def build(
        cls,
        split: str,
        size: int,
        task: str,
        seed: int,
        preset: str,
        image_size: int,
        *,
        rgb: bool = False,
        frames: int = 16,
        subjects: int | None = None,
        intensity: Level = None,
        au_dropout: float | None = None,
        spurious: float | None = None,
        illumination: Level = None,
        pose: Level = None,
        occlusion: Level = None,
        noise: Level = None,
        blur: Level = None,
        jpeg: Level = None,
        clutter: Level = None,
        occluders: Sequence[str] = ("sunglasses", "mask", "hand", "patch"),
        group_weights: Mapping[str, Sequence[float]] | None = None,
        bias_group: tuple = ("gender", "masculine"),
        display_rules: float = 0.0,
        label_noise: float = 0.0,
        resting_face: float = 0.0,
        match_amplitude: bool = True,
        distractors: float = 1.0,
        head_motion: float = 1.0,
        supersample: int | None = None,
    ) -> SynthConfig:
        """Check every knob (:data:`KNOB_DOCS`) and resolve the defaults. The six main ones have
        their defaults in :class:`~ferlib.data.synth.SynthFER`'s signature, which passes its other
        keywords on here.

        An unknown name (split, task, preset, occluder, group attribute or value) raises
        :class:`~ferlib.errors.ConfigError`, a value out of range ``ValueError``; both name the knob.
        """
        if split not in SPLITS:
            raise ConfigError.unknown("split", split, SPLITS)
        if task not in TASKS:
            raise ConfigError.unknown("task", task, TASKS)
        if preset not in PRESETS:
            raise ConfigError.unknown("preset", preset, PRESETS)
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
        nuisance = dict(zip(NUISANCES, (illumination, pose, occlusion, noise, blur, jpeg, clutter), strict=True))
        severities = {}
        for name in NUISANCES:
            given = _range(name, nuisance.get(name), 0.0, MAX_SEVERITY)
            if given is None:
                prob, high = base["nuisance"][name]
                severities[name] = (prob, 0.0, high)
            else:
                severities[name] = (1.0, given[0], given[1])
        occluders = tuple(occluders)
        for name in occluders:
            if name not in OCCLUDERS[1:]:
                raise ConfigError.unknown("occluders entry", name, OCCLUDERS[1:])
        if not occluders:
            raise ValueError("occluders=() is not allowed: name at least one of " + ", ".join(OCCLUDERS[1:]))
        weights = {"skin_tone": [1.0] * SKIN_TONE_LEVELS, "age": [1.0] * 3, "gender": [1.0] * 3}
        for key, value in (group_weights or {}).items():
            if key not in weights:
                raise ConfigError.unknown("group_weights attribute", key, weights)
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
            raise ConfigError.unknown("bias_group attribute", attr, allowed)
        if val not in allowed[attr]:
            raise ConfigError.unknown(f"bias_group value for {attr}", val, map(str, allowed[attr]))
        return cls(
            split=split,
            size=size,
            task=task,
            seed=seed,
            preset=preset,
            image_size=image_size,
            rgb=bool(rgb),
            frames=frames if task != "static" else 1,
            subjects=subjects,
            intensity=tuple(intensity),
            au_dropout=au_dropout,
            spurious=spurious,
            severities=MappingProxyType(severities),
            occluders=occluders,
            group_weights=MappingProxyType({key: tuple(value) for key, value in weights.items()}),
            bias_group=(attr, val),
            display_rules=_number("display_rules", display_rules, 0, 1),
            label_noise=_number("label_noise", label_noise, 0, 1),
            resting_face=_number("resting_face", resting_face, 0, 1),
            match_amplitude=bool(match_amplitude),
            distractors=_number("distractors", distractors, 0, 1),
            head_motion=_number("head_motion", head_motion, 0, 2),
            supersample=supersample,
        )

    def as_dict(self) -> dict:
        """The canonical JSON-able form, with the generator's :data:`VERSION`: ``SynthFER.config``."""
        return {"version": VERSION, **{field.name: _plain(getattr(self, field.name)) for field in fields(self)}}

    def cache_key(self) -> str:
        """20 hex digits that change with any knob or :data:`VERSION`: the cache file's key."""
        return hashlib.sha1(json.dumps(self.as_dict(), sort_keys=True).encode()).hexdigest()[:20]

    def __hash__(self) -> int:  # the mapping fields are not hashable themselves
        return hash(self.cache_key())
