"""The SynthFER datasets: :class:`SynthFER` (images or clips) and :class:`FrameDataset` (one frame
per clip), and the disk cache of generated sets, keyed by the whole checked config.
"""

from __future__ import annotations

import os
import tempfile
from collections.abc import Callable
from pathlib import Path

import numpy as np
import torch
from torch.utils.data import Dataset

from ferlib.data.labels import EMOTIONS
from ferlib.data.registry import register_dataset
from ferlib.data.synth.config import AGE_GROUPS, GENDER_PRESENTATIONS, SMILE_CLASSES, SynthConfig
from ferlib.data.synth.face import AU_INDEX, AU_NAMES, OCCLUDERS
from ferlib.data.synth.generate import _generate
from ferlib.errors import ConfigError


def default_cache_dir() -> Path:
    """Where generated sets are cached: ``$FERLIB_CACHE/synthfer``, else ``~/.cache/ferlib/synthfer``."""
    return Path(os.environ.get("FERLIB_CACHE") or Path.home() / ".cache" / "ferlib") / "synthfer"


def _load_or_generate(cfg: SynthConfig, cache: bool, cache_dir) -> dict[str, np.ndarray]:
    """The set's arrays: from the cache file named by the config's key, else generated (and cached)."""
    if not cache:
        return _generate(cfg)
    key = cfg.cache_key()
    folder = Path(cache_dir) if cache_dir is not None else default_cache_dir()
    path = folder / f"synthfer-{cfg.task}-{cfg.split}-{key}.npz"
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
        documents every keyword.
    transform : applied to the image ``[C, H, W]`` or clip ``[T, C, H, W]`` float tensor.
    cache, cache_dir : reuse generated sets from disk (keyed by the whole config).
    knobs : every other keyword of :meth:`SynthConfig.build <ferlib.data.synth.config.SynthConfig.build>`
        (``rgb``, ``frames``, ``subjects``, the expression and bias knobs...); nuisance knobs
        (``illumination=2``, ``pose=(0, 3)``...) override the preset's severities.

    Samples are ``(x, y, meta)``: ``x`` float32 in [0, 1]; ``y`` the class id; ``meta`` holds
    ``subject``, ``group`` (skin_tone 0-5, age, gender), ``landmarks`` (see
    :data:`LANDMARK_NAMES`), ``aus`` (name -> intensity, or per-frame arrays for clips),
    ``intensity``, ``true_label`` and ``nuisance`` (severities and values).

    ``settings`` is the checked :class:`~ferlib.data.synth.config.SynthConfig`; ``config`` its
    JSON form (:meth:`~ferlib.data.synth.config.SynthConfig.as_dict`), from which the cache key is made.
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
        transform: Callable | None = None,
        cache: bool = True,
        cache_dir: str | os.PathLike | None = None,
        root: str | None = None,
        **knobs,
    ):
        unknown = sorted(set(knobs) - set(SynthConfig.knob_names()))
        if unknown:
            raise ConfigError.unknown("SynthFER option", unknown[0], SynthConfig.knob_names())
        self.settings = SynthConfig.build(split, size, task, seed, preset, image_size, **knobs)
        self.config = self.settings.as_dict()  # JSON-able, as before SynthConfig: chapters read it
        self.split, self.task, self.transform = split, task, transform
        self.class_names = SMILE_CLASSES if task == "smile-dynamics" else EMOTIONS
        self.num_classes = len(self.class_names)
        self._data = _load_or_generate(self.settings, cache, cache_dir)
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
        c = self.settings
        return (
            f"SynthFER(split={c.split!r}, size={c.size}, task={c.task!r}, preset={c.preset!r}, "
            f"image_size={c.image_size}, seed={c.seed})"
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
        frames = clips.settings.frames
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
