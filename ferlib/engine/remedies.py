"""The remedies ``fit`` applies to training batches, as small objects it receives.

``fit``'s string options build them (``augment="affine"``, ``adversarial="pgd"``,
``group_balance="sample"``, ``class_balance=True``); a caller may also pass its own callable as
``augment``. The group losses are in :mod:`ferlib.engine.losses`. The engine reads groups and
augmentations from :mod:`ferlib.data` and attacks from :mod:`ferlib.engine.attacks`; it imports
no analysis module.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass

import numpy as np
import torch
from torch import nn

from ferlib.data.augment import augmentation_policy
from ferlib.data.groups import dataset_groups, group_sample_weights
from ferlib.data.splits import dataset_labels
from ferlib.engine.attacks import ATTACKS, adversarial_batch
from ferlib.errors import ConfigError

BatchTransform = Callable[[torch.Tensor], torch.Tensor]


def batch_augmentation(augment: str | BatchTransform | None) -> BatchTransform | None:
    """The batch transform of ``fit(augment=...)``: a policy name of
    :func:`ferlib.data.augment.augmentation_policy` (several joined by ``+``), a callable, or ``None``."""
    if augment is None:
        return None
    if isinstance(augment, str):
        return augmentation_policy(augment)
    if not callable(augment):
        raise TypeError(f"augment must be None, a policy name or a callable, got {type(augment).__name__}")
    return augment


@dataclass(frozen=True)
class Adversary:
    """Adversarial training: replaces each batch by its L-infinity adversarial version of radius ``eps``
    (``kind`` ``"fgsm"`` from a random start, or ``"pgd"`` with ``steps`` steps), crafted with the model
    in eval mode. The random start is drawn from the global RNG, which ``fit`` seeds every epoch."""

    kind: str
    eps: float = 8 / 255
    steps: int = 5

    def __post_init__(self):
        if self.kind not in ATTACKS:
            raise ConfigError.unknown("adversarial training", self.kind, ATTACKS)
        if not 0.0 < self.eps <= 1.0:
            raise ValueError(f"adversarial_eps must be in (0, 1] (pixel units: 8/255 = 0.031), got {self.eps}")

    @classmethod
    def from_options(cls, kind: str | None, eps: float, steps: int) -> Adversary | None:
        """From ``fit``'s ``adversarial``, ``adversarial_eps``, ``adversarial_steps``; ``None``: clean batches."""
        return None if kind is None else cls(kind, eps, steps)

    def __call__(self, model: nn.Module, x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        start = int(torch.randint(2**31 - 1, ()))  # the random start, from the epoch's seeded RNG
        return adversarial_batch(model, x, y, self.kind, self.eps, steps=self.steps, seed=start)

    def config(self) -> dict:
        """What a checkpoint's run config records."""
        return {"adversarial": self.kind, "adversarial_eps": self.eps, "adversarial_steps": self.steps}


def balanced_sample_weights(
    train_data, group_attribute: str | Sequence[str] | None, class_balance: bool
) -> np.ndarray:
    """Per-sample weights for a sampler that makes the groups of ``group_attribute`` (if given) and/or
    the classes (``class_balance``) equally likely: :func:`ferlib.data.groups.group_sample_weights`."""
    groups = dataset_groups(train_data, group_attribute) if group_attribute is not None else None
    return group_sample_weights(groups, dataset_labels(train_data) if class_balance else None)
