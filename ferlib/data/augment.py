"""Train-time augmentation: one registry of named augmentations, per-sample presets and batch policies.

Every augmentation ferlib knows by name is an :class:`Augmentation` in :data:`REGISTRY`, of one
of two kinds:

- ``"sample"``, a *per-sample preset*: a dataset transform applied to each image ``[C, H, W]``
  (or clip ``[T, C, H, W]``, the same random transform on every frame) as it is loaded, built
  by :func:`train_augmentation` (``ferlib train --augment``, ``load_splits(train_transform=...)``).
  Names in :data:`AUGMENTATIONS`: ``none``, ``flip``, ``flip_shift``, ``strong``.
- ``"batch"``, a *batch policy*: a callable ``x -> x`` on a whole training batch, on the device,
  after the crop, built by :func:`augmentation_policy` (``ferlib.fit(augment=...)``, ``ferlib
  train --batch-augment``); policies joined by ``+`` apply in turn. Names in :data:`POLICIES`:
  ``trivialaugment``, ``randaugment``, ``random_erasing``, ``occlusion``, ``affine``.

Images are float tensors in [0, 1]. An unknown name raises :class:`ferlib.errors.ConfigError`
with the closest valid name; a name of the other kind says where it belongs.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass
from types import MappingProxyType

import torch
from torchvision.transforms import v2

from ferlib.data.corruptions import MAX_SEVERITY, affine_warp, corrupt, list_corruptions
from ferlib.errors import ConfigError

__all__ = [
    "AUGMENTATIONS",
    "KINDS",
    "POLICIES",
    "REGISTRY",
    "Augmentation",
    "augmentation_policy",
    "list_augmentations",
    "train_augmentation",
]

Transform = Callable[[torch.Tensor], torch.Tensor]

# kind -> what it is, where it goes (for the messages of a name used in the wrong place)
KINDS: dict[str, str] = {
    "sample": "a per-sample preset (train_augmentation, --augment)",
    "batch": "a batch policy (augmentation_policy, fit(augment=...), --batch-augment)",
}


@dataclass(frozen=True)
class Augmentation:
    """A named augmentation: its ``kind`` (``"sample"`` or ``"batch"``, see :data:`KINDS`), a
    ``build`` function taking the kind's options (``shift=`` for presets, ``p=`` for policies) and
    returning the transform, and a one-line ``summary``."""

    name: str
    kind: str
    build: Callable[..., Transform]
    summary: str


_REGISTRY: dict[str, Augmentation] = {}
REGISTRY = MappingProxyType(_REGISTRY)  # name -> Augmentation, read-only, in registration order


def _register(name: str, kind: str, summary: str) -> Callable[[Callable[..., Transform]], Callable[..., Transform]]:
    def add(build: Callable[..., Transform]) -> Callable[..., Transform]:
        _REGISTRY[name] = Augmentation(name, kind, build, summary)
        return build

    return add


def list_augmentations(kind: str | None = None) -> list[str]:
    """The augmentation names, all or those of one ``kind`` (``"sample"`` or ``"batch"``), in
    registration order.

    >>> list_augmentations("sample")
    ['none', 'flip', 'flip_shift', 'strong']
    """
    if kind is None:
        return list(_REGISTRY)
    if kind not in KINDS:
        raise ConfigError.unknown("augmentation kind", kind, KINDS)
    return [name for name, entry in _REGISTRY.items() if entry.kind == kind]


def _entry(name: object, kind: str, label: str) -> Augmentation:
    """The registry entry of ``name`` if it is of ``kind``, else a :class:`ConfigError` (``label``
    names the kind of name in the message)."""
    entry = _REGISTRY.get(name) if isinstance(name, str) else None
    if entry is None:
        raise ConfigError.unknown(label, name, list_augmentations(kind))
    if entry.kind != kind:
        raise ConfigError(
            f"augmentation {name!r} is {KINDS[entry.kind]}, not {KINDS[kind]}: "
            f"expected one of {', '.join(list_augmentations(kind))}"
        )
    return entry


# --------------------------------------------------------------------------- per-sample presets


@_register("none", "sample", "identity")
def _none(*, shift: float) -> Transform:
    return v2.Identity()


@_register("flip", "sample", "random horizontal flip")
def _flip(*, shift: float) -> Transform:
    return v2.RandomHorizontalFlip()


@_register("flip_shift", "sample", "flip + random shift")
def _flip_shift(*, shift: float) -> Transform:
    return v2.Compose([v2.RandomHorizontalFlip(), v2.RandomAffine(degrees=0.0, translate=(shift, shift))])


@_register("strong", "sample", "flip, rotation, shift, scale, brightness/contrast jitter, random erasing")
def _strong(*, shift: float) -> Transform:
    return v2.Compose(
        [
            v2.RandomHorizontalFlip(),
            v2.RandomAffine(degrees=15.0, translate=(shift, shift), scale=(0.9, 1.1)),
            v2.ColorJitter(brightness=0.2, contrast=0.2),
            v2.RandomErasing(p=0.5, scale=(0.02, 0.15), value=0.0),
        ]
    )


def train_augmentation(name: str = "flip_shift", *, shift: float = 0.1) -> Transform:
    """A named train-time augmentation preset (kind ``"sample"``) for float tensors in [0, 1].

    - ``"none"``: identity.
    - ``"flip"``: random horizontal flip (expressions are nearly mirror-symmetric).
    - ``"flip_shift"``: flip + random shift of up to ``shift`` of the side.
    - ``"strong"``: flip + rotation (15 degrees), shift, scale (0.9-1.1), brightness/contrast
      jitter and random erasing (a crude occlusion).

    Examples
    --------
    >>> import torch
    >>> augment = train_augmentation("strong")
    >>> tuple(augment(torch.rand(1, 48, 48)).shape)
    (1, 48, 48)
    """
    return _entry(name, "sample", "augmentation").build(shift=shift)


# --------------------------------------------------------------------------- batch policies


def _per_sample(transform: Callable, as_uint8: bool) -> Callable[[torch.Tensor], torch.Tensor]:
    """Apply a torchvision transform to each sample of a batch (one random op per sample).

    torchvision's auto-augment transforms draw one operation per call, so called on a batch
    they would give every image the same op; here each sample (or each clip) draws its own.
    """

    def apply(x: torch.Tensor) -> torch.Tensor:
        dtype = x.dtype
        source = (x.detach() * 255).round().clamp(0, 255).to(torch.uint8).cpu() if as_uint8 else x.detach().cpu()
        out = torch.stack([transform(sample) for sample in source])
        out = out.float() / 255.0 if as_uint8 else out
        return out.to(x.device, dtype)

    return apply


def _occlusion_augment(p: float, severities: tuple[int, int]) -> Callable[[torch.Tensor], torch.Tensor]:
    """SynthFER-style occluders from :func:`corrupt`, one random kind and severity per sample."""
    kinds = list_corruptions("occlusion")

    def apply(x: torch.Tensor) -> torch.Tensor:
        n = x.shape[0]
        draw = torch.rand(n)
        kind = torch.randint(len(kinds), (n,))
        level = torch.randint(severities[0], severities[1] + 1, (n,))
        seed = int(torch.randint(2**31 - 1, ()))
        out = x.clone()
        for k, name in enumerate(kinds):
            for s in range(severities[0], severities[1] + 1):
                chosen = ((draw < p) & (kind == k) & (level == s)).nonzero().flatten()
                if len(chosen):
                    index = chosen.to(x.device)
                    out[index] = corrupt(x[index], name, s, seed=seed + 31 * k + s)
        return out

    return apply


def _affine_augment(
    degrees: float = 10.0, scale: tuple[float, float] = (0.9, 1.1), translate: float = 0.05
) -> Callable[[torch.Tensor], torch.Tensor]:
    """Random rotation, scale and shift of every sample of a batch in one ``grid_sample`` call.

    The batched counterpart of torchvision's ``RandomAffine`` (same zero fill outside the
    image): one draw per sample (per clip for ``[B, T, C, H, W]``), on the batch's device, with
    no loop over the samples, so it costs next to nothing beside a training step.
    """

    def apply(x: torch.Tensor) -> torch.Tensor:
        clip = x.dim() == 5
        n = x.shape[0]
        frames = x.flatten(0, 1) if clip else x
        draw = torch.rand(n, 4)  # from torch's global generator, which fit seeds every epoch
        angle = (draw[:, 0] * 2 - 1) * math.radians(degrees)
        factor = scale[0] + draw[:, 1] * (scale[1] - scale[0])
        shift = (draw[:, 2:] * 2 - 1) * translate * 2  # affine_grid's coordinates span [-1, 1]
        cos, sin = torch.cos(angle) / factor, torch.sin(angle) / factor  # output -> input: inverse scale
        theta = torch.stack(
            [torch.stack([cos, -sin, shift[:, 0]], 1), torch.stack([sin, cos, shift[:, 1]], 1)], 1
        )
        if clip:
            theta = theta.repeat_interleave(x.shape[1], 0)
        out = affine_warp(frames.float(), theta.to(frames.device, torch.float32), padding="zeros").to(x.dtype)
        return out.unflatten(0, x.shape[:2]) if clip else out

    return apply


@_register("trivialaugment", "batch", "TrivialAugmentWide, one random op and strength per sample")
def _trivialaugment(*, p: float) -> Transform:
    return _per_sample(v2.TrivialAugmentWide(), as_uint8=True)


@_register("randaugment", "batch", "RandAugment, two ops at magnitude 9 per sample")
def _randaugment(*, p: float) -> Transform:
    return _per_sample(v2.RandAugment(num_ops=2, magnitude=9), as_uint8=True)


@_register("random_erasing", "batch", "RandomErasing with probability p per sample")
def _random_erasing(*, p: float) -> Transform:
    return _per_sample(v2.RandomErasing(p=p, value=0.5), as_uint8=False)


@_register("occlusion", "batch", "a FER occluder of ferlib.data.corruptions with probability p per sample")
def _occlusion(*, p: float) -> Transform:
    return _occlusion_augment(p, (1, MAX_SEVERITY))


@_register("affine", "batch", "random rotation, scale and shift, batched")
def _affine(*, p: float) -> Transform:
    return _affine_augment()


AUGMENTATIONS: tuple[str, ...] = tuple(list_augmentations("sample"))
POLICIES: tuple[str, ...] = tuple(list_augmentations("batch"))


def augmentation_policy(name: str | None, *, p: float = 0.5) -> Transform | None:
    """A training-batch augmentation ``x -> x`` (float in [0, 1], on any device) by name (kind ``"batch"``).

    ``"trivialaugment"``: TrivialAugmentWide (Müller & Hutter 2021), one random op and strength
    per sample. ``"randaugment"``: RandAugment (Cubuk et al. 2020), two ops at magnitude 9 per
    sample. ``"random_erasing"``: RandomErasing (Zhong et al. 2020) with probability ``p`` per
    sample. ``"occlusion"``: with probability ``p`` per sample, one of the FER occluders of
    :func:`ferlib.data.corruptions.corrupt` at a random severity 1-5. ``"affine"``: a random
    rotation (up to 10 degrees), scale (0.9-1.1) and shift (up to 5% of the side) of every sample,
    batched in one ``grid_sample`` call. Names joined by ``+`` apply in turn
    (``"affine+random_erasing"``). ``None`` returns ``None`` (no augmentation).
    Randomness comes from torch's global generator, which :func:`ferlib.fit` seeds every epoch.
    The torchvision policies loop over the samples on the CPU (a few ms per batch of 32x32 faces).
    """
    if name is None:
        return None
    if isinstance(name, str) and "+" in name:
        return v2.Compose([augmentation_policy(part, p=p) for part in name.split("+")])
    return _entry(name, "batch", "augmentation policy").build(p=p)
