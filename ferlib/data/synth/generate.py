"""Generating SynthFER sets: chunk by chunk, sampling then rendering, and faces chosen by hand.

A set is made in chunks (:data:`_STATIC_CHUNK` images or :data:`_VIDEO_CHUNK` clips), each with
its own generator seeded by the config and the chunk's index, then shuffled once with a
generator of its own; :func:`synth_faces` renders chosen expressions on chosen identities for
figures. Every draw happens in a fixed order: changing the order changes every later sample.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import torch

from ferlib.data.labels import EMOTION_TO_ID, EMOTIONS
from ferlib.data.synth.config import _SPLIT_CODE, _TASK_CODE, SynthConfig, _number
from ferlib.data.synth.face import AU_INDEX, AU_NAMES
from ferlib.data.synth.render import render_faces
from ferlib.data.synth.sampling import (
    CONFUSABLE,
    _framing,
    _group_member,
    _identities,
    _sample_expressions,
    _sample_nuisance,
)
from ferlib.data.synth.video import head_motion, sample_video_aus
from ferlib.errors import ConfigError

_STATIC_CHUNK = 256
_VIDEO_CHUNK = 32


def _chunk_rng(cfg: SynthConfig, chunk: int) -> np.random.Generator:
    return np.random.default_rng(
        np.random.SeedSequence([cfg.seed, _SPLIT_CODE[cfg.split], _TASK_CODE[cfg.task], 3, chunk])
    )


def _generate_chunk(cfg: SynthConfig, ident: dict, chunk: int, start: int, count: int) -> dict[str, np.ndarray]:
    rng = _chunk_rng(cfg, chunk)
    task = cfg.task
    num_classes = 2 if task == "smile-dynamics" else len(EMOTIONS)
    # Balanced labels: sample i has class (i * 7919 + seed) mod K before a per-set shuffle.
    labels = (np.arange(start, start + count) * 5 + cfg.seed) % num_classes
    subject_idx = rng.integers(0, cfg.subjects, count)
    who = {k: v[subject_idx] for k, v in ident.items()}
    member = _group_member(who, cfg.bias_group)
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
    frame = _framing(rng, count, cfg.image_size)
    out: dict[str, np.ndarray] = {}
    frames = cfg.frames  # 1 for static images
    if task == "static":
        asym = 1 + rng.uniform(-0.1, 0.1, (count, len(AU_NAMES)))
        blink = rng.random(count) < 0.03
        aus[blink, AU_INDEX["AU45"]] = rng.uniform(0.6, 1.0, int(blink.sum()))
        aus_lr = np.clip(np.stack([aus * asym, aus * (2 - asym)], -1), 0, 1).astype(np.float32)
        pose = {"roll": nz["roll"], "yaw": nz["yaw"], "pitch": nz["pitch"], **frame}
        out["aus"] = aus_lr.mean(-1)
    else:
        aus_t, info = sample_video_aus(
            rng, task, labels, aus, frames, cfg.match_amplitude, cfg.distractors
        )
        motion = head_motion(rng, count, frames, cfg.head_motion)
        pose = {k: (nz[k][:, None] + motion[k]).reshape(-1) for k in ("roll", "yaw", "pitch")}
        pose["dx"] = (frame["dx"][:, None] + motion["dx"] * 0.3).reshape(-1)
        pose["dy"] = (frame["dy"][:, None] + motion["dy"] * 0.3).reshape(-1)
        pose["zoom"] = np.repeat(frame["zoom"], frames)
        aus_lr = aus_t.reshape(count * frames, len(AU_NAMES), 2)
        out["aus"] = aus_t.mean(-1)
        for k, v in info.items():
            out[f"video_{k}"] = np.asarray(v, dtype=np.float32)
        if task == "smile-dynamics":
            intensity = info["peak"]
    # Per-clip values (identity, nuisances, background, skin texture) are repeated over its frames.
    imgs, marks = render_faces(
        who,
        aus_lr,
        pose,
        nz,
        rng,
        image_size=cfg.image_size,
        rgb=cfg.rgb,
        supersample=cfg.supersample,
        per=frames,
    )
    if task != "static":
        imgs = imgs.view(count, frames, *imgs.shape[1:])
        marks = marks.view(count, frames, *marks.shape[1:])
    true_labels = labels.copy()
    if cfg.label_noise > 0 and task != "smile-dynamics":
        flip = (rng.random(count) < cfg.label_noise) & (member > 0)
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


def _generate(cfg: SynthConfig) -> dict[str, np.ndarray]:
    ident = _identities(cfg)
    chunk = _STATIC_CHUNK if cfg.task == "static" else _VIDEO_CHUNK
    parts = []
    threads = torch.get_num_threads()
    torch.set_num_threads(1)  # same bytes whatever the machine's thread count
    try:
        with torch.no_grad():
            for c, start in enumerate(range(0, cfg.size, chunk)):
                parts.append(_generate_chunk(cfg, ident, c, start, min(chunk, cfg.size - start)))
    finally:
        torch.set_num_threads(threads)
    arrays = {k: np.concatenate([p[k] for p in parts]) for k in parts[0]}
    # Shuffle order so classes are not interleaved in a fixed pattern.
    order = np.random.default_rng(
        np.random.SeedSequence([cfg.seed, _SPLIT_CODE[cfg.split], 5])
    ).permutation(cfg.size)
    return {k: v[order] for k, v in arrays.items()}


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
    cfg = SynthConfig.build(
        split,
        1,
        "static",
        seed,
        "easy",
        image_size,
        rgb=rgb,
        subjects=max(subjects) + 1,
        occluders=("patch",),
        group_weights=group_weights,
        supersample=supersample,
    )
    ident = _identities(cfg)
    k = len(expressions)
    aus = np.zeros((k, len(AU_NAMES), 2), dtype=np.float32)
    for j, expression in enumerate(expressions):
        for name, value in expression.items():
            if name not in AU_INDEX:
                raise ConfigError.unknown("AU name", name, AU_NAMES)
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
