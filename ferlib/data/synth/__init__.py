"""SynthFER: procedural faces and face videos, the embedded default data of FER Book.

SynthFER is *synthetic*. It draws grayscale (or RGB) faces from a parametric geometric model:
identities differ by more than a dozen continuous parameters, expressions are sums of FACS
action units (AUs) with intensities, the seven classes are *distributions* over AU sets, and
demographic attributes, nuisances (light, pose, occlusion, noise, blur, JPEG, clutter) and, for
clips, per-AU temporal curves are sampled per sample and recorded in ``meta``. It exists so every
chapter runs anywhere, offline, in seconds, with known ground truth; it is not a stand-in for
people's faces, and every result on it should be confirmed on real data
(``load_dataset("fer2013", root=...)`` and friends).

The package, from the bottom up: :mod:`.canvas` (drawing primitives), :mod:`.face` (the face's
vocabulary and geometry), :mod:`.parts` and :mod:`.fields` (detailed parts, random fields),
:mod:`.degrade` (blur, noise, JPEG), :mod:`.render` (a batch of faces from sampled parameters),
:mod:`.config` (knobs, presets, :class:`SynthConfig`), :mod:`.sampling` (identities,
expressions, nuisances), :mod:`.video` (temporal curves, head motion), :mod:`.generate` (whole
sets, :func:`synth_faces`), :mod:`.dataset` (:class:`SynthFER`, :class:`FrameDataset`, the cache)
and :mod:`.export` (PNG class folders). This module only re-exports the public names; importing
it registers the ``"synthfer"`` dataset.

Examples
--------
>>> from ferlib.data.synth import SynthFER
>>> data = SynthFER(split="train", size=16, cache=False)
>>> x, y, meta = data[0]
>>> tuple(x.shape), data.num_classes, sorted(meta["group"])
((1, 48, 48), 7, ['age', 'gender', 'skin_tone'])
"""

from ferlib.data.synth.canvas import LUMA as LUMINANCE  # for chapters that convert RGB tones to gray
from ferlib.data.synth.config import (
    AGE_GROUPS,
    GENDER_PRESENTATIONS,
    KNOB_DOCS,
    NUISANCES,
    PRESETS,
    SKIN_TONE_LEVELS,
    SMILE_CLASSES,
    SPLITS,
    TASKS,
    SynthConfig,
)
from ferlib.data.synth.dataset import FrameDataset, SynthFER
from ferlib.data.synth.export import export_synthfer
from ferlib.data.synth.face import AU_NAMES, LANDMARK_NAMES, OCCLUDERS, SKIN_TONES_RGB
from ferlib.data.synth.generate import synth_faces
from ferlib.data.synth.render import render_faces
from ferlib.data.synth.sampling import CLASS_VARIANTS, class_prototype
from ferlib.data.synth.video import TASK_DOCS

__all__ = [
    "AGE_GROUPS",
    "AU_NAMES",
    "CLASS_VARIANTS",
    "GENDER_PRESENTATIONS",
    "KNOB_DOCS",
    "LANDMARK_NAMES",
    "LUMINANCE",
    "NUISANCES",
    "OCCLUDERS",
    "PRESETS",
    "SKIN_TONES_RGB",
    "SKIN_TONE_LEVELS",
    "SMILE_CLASSES",
    "SPLITS",
    "SynthConfig",
    "SynthFER",
    "TASKS",
    "TASK_DOCS",
    "FrameDataset",
    "class_prototype",
    "export_synthfer",
    "render_faces",
    "synth_faces",
]
