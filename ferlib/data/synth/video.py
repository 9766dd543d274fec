"""SynthFER's temporal model: per-AU intensity curves, head motion, blinks and talking.

Each active action unit follows its own curve: a smooth onset, an apex plateau with jitter, a
smooth offset, a peak amplitude, a left-right asymmetry and a lag against the other AUs. The
three temporal tasks differ only in how these curve parameters are drawn (see :data:`TASK_DOCS`).
"""

from __future__ import annotations

import numpy as np

from ferlib.data.synth.face import AU_INDEX, AU_NAMES

TASK_DOCS = {
    "video-basic": (
        "The seven classes as short clips; every AU of the expression rises, holds and falls on its "
        "own schedule and the apex falls anywhere in the clip, as in posed-expression video "
        "databases that are not trimmed to onset-apex (CK+ starts at neutral, MMI and AFEW do not)."
    ),
    "video-subtle": (
        "Low-intensity expressions (peak 0.12-0.35) that start from the person's own neutral face "
        "and build up; identities' resting faces differ by as much as the expression, so one frame "
        "is ambiguous and the change over time carries the signal, as with subtle and "
        "spontaneous expressions in the wild."
    ),
    "smile-dynamics": (
        "Posed (label 0) versus spontaneous (label 1) smiles, AU12 with AU6. Posed smiles have "
        "faster onset and offset, shorter phases and larger amplitude; spontaneous smiles have "
        "longer phases, more apex jitter and AU6/AU12 peaks that coincide (Cohn & Schmidt 2004; "
        "Schmidt et al. 2006; Frank & Ekman 1993; Guo et al. 2018). Left-right asymmetry is drawn "
        "from the same distribution for both (Schmidt et al. 2006 found it no greater in posed "
        "smiles). With match_amplitude both apexes share one amplitude distribution, so only the "
        "dynamics separate the classes."
    ),
}


def smoothstep(u: np.ndarray) -> np.ndarray:
    u = np.clip(u, 0.0, 1.0)
    return u * u * (3 - 2 * u)


def au_curve(t: np.ndarray, start, onset, apex, offset, peak, jitter, noise) -> np.ndarray:
    """Intensity at frames ``t`` [T] for curves with parameters [...] (broadcast), shape [..., T]."""
    t = t.reshape((1,) * np.ndim(start) + (-1,))
    e = lambda v: np.asarray(v)[..., None]  # noqa: E731
    rise = smoothstep((t - e(start)) / np.maximum(e(onset), 0.5))
    fall = 1 - smoothstep((t - e(start) - e(onset) - e(apex)) / np.maximum(e(offset), 0.5))
    shape = np.minimum(rise, fall)
    in_apex = (t >= e(start) + e(onset)) & (t <= e(start) + e(onset) + e(apex))
    shape = shape + in_apex * e(jitter) * noise
    return np.clip(e(peak) * shape, 0.0, 1.0)


def sample_video_aus(
    rng: np.random.Generator,
    task: str,
    labels: np.ndarray,
    static_aus: np.ndarray,
    frames: int,
    match_amplitude: bool,
    distractors: float,
) -> tuple[np.ndarray, dict]:
    """Per-frame AU intensities [B, T, A, 2] (image left/right) and per-clip timing values.

    ``static_aus`` [B, A] is each clip's apex pattern (which AUs and how strongly) from the
    static sampler; ``labels`` are the class ids (for smile-dynamics, 0 posed / 1 spontaneous).
    """
    b, a = static_aus.shape
    t = np.arange(frames, dtype=np.float64)
    info: dict[str, np.ndarray] = {}
    if task == "smile-dynamics":
        spont = labels == 1
        onset = np.where(spont, rng.uniform(3.5, 6.0, b), rng.uniform(1.2, 2.8, b))
        apex = np.where(spont, rng.uniform(3.0, 5.5, b), rng.uniform(0.8, 2.5, b))
        offset = np.where(spont, rng.uniform(3.5, 6.0, b), rng.uniform(1.2, 2.8, b))
        if match_amplitude:
            peak = rng.uniform(0.45, 1.0, b)
        else:
            peak = np.where(spont, rng.uniform(0.35, 0.75, b), rng.uniform(0.7, 1.0, b))
        jitter = np.where(spont, rng.uniform(0.06, 0.14, b), rng.uniform(0.0, 0.03, b))
        # AU6 peaks with AU12 in spontaneous smiles; in posed ones it leads or lags by 1-3 frames.
        lag6 = np.where(spont, rng.normal(0, 0.3, b), rng.choice([-1, 1], b) * rng.uniform(1.0, 3.0, b))
        total = onset + apex + offset
        start = rng.uniform(0.5, np.maximum(1.0, frames - total * 0.85))
        starts = np.stack([start, start + lag6], 1)  # AU12, AU6
        peaks = np.stack([peak, peak * rng.uniform(0.6, 1.0, b)], 1)
        ids = [AU_INDEX["AU12"], AU_INDEX["AU6"]]
        cur = np.zeros((b, frames, a))
        noise = rng.normal(0, 1, (b, 2, frames))
        curves = au_curve(
            t, starts, onset[:, None], apex[:, None], offset[:, None], peaks, jitter[:, None], noise
        )
        cur[:, :, ids] = curves.transpose(0, 2, 1)
        # Lips part in some smiles of both kinds (not a cue).
        parted = rng.random(b) < 0.35
        cur[:, :, AU_INDEX["AU25"]] = parted[:, None] * 0.6 * cur[:, :, AU_INDEX["AU12"]]
        info.update(
            onset=onset, apex=apex, offset=offset, peak=peak, jitter=jitter, lag_au6=lag6, start=start
        )
    else:
        subtle = task == "video-subtle"
        onset = rng.uniform(2.0, 6.0, (b, a)) if not subtle else rng.uniform(4.0, 8.0, (b, a))
        apex = rng.uniform(2.0, 6.0, (b, a)) if not subtle else np.full((b, a), float(frames))
        offset = rng.uniform(2.0, 6.0, (b, a))
        lags = rng.normal(0.0, 0.8, (b, a))
        # AU6 typically trails AU12 slightly in expressions of happiness.
        lags[:, AU_INDEX["AU6"]] += 0.7
        if subtle:
            base = rng.uniform(1.0, frames / 3.0, b)
        else:
            apex_frame = rng.uniform(1.0, frames - 2.0, b)  # where the apex begins
            base = apex_frame - onset.mean(1)
        start = base[:, None] + lags
        jitter = rng.uniform(0.0, 0.08, (b, a))
        noise = rng.normal(0, 1, (b, a, frames))
        curves = au_curve(t, start, onset, apex, offset, static_aus, jitter, noise)  # [B, A, T]
        cur = curves.transpose(0, 2, 1).copy()
        info.update(start=base)
    # Left-right asymmetry: the same distribution for every task and class.
    asym = rng.uniform(-1, 1, (b, 1, a)) * rng.uniform(0.0, 0.2, (b, 1, 1))
    out = np.stack([cur * (1 + asym), cur * (1 - asym)], -1)
    info["asymmetry"] = asym[:, 0, :].mean(1)
    # Distractors: blinks and talking mouth movement.
    blink = np.zeros((b, frames))
    for _ in range(2):
        on = rng.random(b) < 0.45 * distractors
        when = rng.uniform(-1, frames, b)
        blink += on[:, None] * np.clip(1 - np.abs(t[None] - when[:, None]) / 1.3, 0, 1)
    blink = np.clip(blink, 0, 1)
    out[:, :, AU_INDEX["AU45"], :] = np.maximum(out[:, :, AU_INDEX["AU45"], :], blink[..., None])
    talking = rng.random(b) < 0.3 * distractors
    freq = rng.uniform(0.5, 1.3, b)
    phase = rng.uniform(0, 2 * np.pi, b)
    talk = talking[:, None] * np.clip(np.sin(freq[:, None] * t[None] + phase[:, None]), 0, None)
    for name, gain in (("AU25", 0.5), ("AU26", 0.35)):
        k = AU_INDEX[name]
        out[:, :, k, :] = np.maximum(out[:, :, k, :], (gain * talk)[..., None])
    info["blinks"] = (blink.max(1) > 0).astype(np.float32)
    info["talking"] = talking.astype(np.float32)
    return np.clip(out, 0, 1).astype(np.float32), info


def head_motion(rng: np.random.Generator, b: int, frames: int, amount: float) -> dict[str, np.ndarray]:
    """Smooth per-frame head motion: roll/yaw/pitch in degrees and translation in face units."""
    t = np.arange(frames)[None]
    out = {}
    for name, amp in (("roll", 3.0), ("yaw", 5.0), ("pitch", 3.0), ("dx", 0.04), ("dy", 0.03)):
        f = rng.uniform(0.05, 0.25, (b, 1))
        ph = rng.uniform(0, 2 * np.pi, (b, 1))
        a = rng.uniform(0, amp, (b, 1)) * amount
        out[name] = (a * (np.sin(2 * np.pi * f * t + ph) - np.sin(ph))).astype(np.float32)
    return out


__all__ = ["AU_NAMES", "TASK_DOCS", "au_curve", "head_motion", "sample_video_aus"]
