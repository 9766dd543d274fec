"""Training losses beyond plain cross-entropy: the group remedies ``fit`` receives as objects.

:class:`GroupDRO` is group distributionally robust optimisation; :class:`GroupLoss` wraps
per-sample cross-entropy with inverse-frequency group weights (``"reweight"``) or GroupDRO
(``"dro"``), reading each sample's group from its ``meta`` (:mod:`ferlib.data.groups`).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

import numpy as np
import torch
from torch import nn

from ferlib.data.groups import as_groups, dataset_groups, group_key

GROUP_BALANCE = (None, "reweight", "sample", "dro")


class GroupDRO:
    """Group distributionally robust optimisation (Sagawa et al. 2020, Algorithm 1).

    Keeps a distribution ``q`` over groups; each step multiplies ``q_g`` by ``exp(step * loss_g)``
    for the mean loss of every group present in the batch, renormalises, and returns the robust
    loss ``sum_g q_g loss_g``, so training concentrates on the group whose loss is highest.
    """

    def __init__(self, num_groups: int, step: float = 0.01, device: torch.device | str = "cpu"):
        if num_groups < 1 or step < 0:
            raise ValueError(f"GroupDRO needs num_groups >= 1 and step >= 0, got {num_groups} and {step}")
        self.step = step
        self.q = torch.full((num_groups,), 1.0 / num_groups, device=device)

    def loss(self, losses: torch.Tensor, group_ids: torch.Tensor, reduce=None) -> torch.Tensor:
        """Robust loss from per-sample ``losses`` and their ``group_ids``; ``reduce`` (e.g. an all-reduce
        sum across processes) makes every process update ``q`` alike."""
        num_groups = len(self.q)
        one_hot = torch.nn.functional.one_hot(group_ids, num_groups).to(losses.dtype)
        sums, counts = one_hot.T @ losses, one_hot.sum(0)
        group_loss = sums / counts.clamp(min=1)
        with torch.no_grad():
            totals = torch.stack([sums.detach().float(), counts.float()])
            if reduce is not None:
                totals = reduce(totals)
            mean = totals[0] / totals[1].clamp(min=1)
            self.q = self.q * torch.exp(self.step * mean * (totals[1] > 0))
            self.q = self.q / self.q.sum()
        return (self.q.to(group_loss.dtype) * group_loss).sum()


class GroupLoss:
    """Cross-entropy over the groups of ``attribute``: ``"reweight"`` weighs each sample's loss by
    ``n / (G * n_g)`` (inverse group frequency), ``"dro"`` is :class:`GroupDRO` with step ``dro_step``.

    Built from the training data (its groups fix the group order); called with a batch's logits,
    labels and metadata. ``record()`` is what an epoch's history keeps (GroupDRO's weights), and
    ``restore(record)`` resumes from it.
    """

    def __init__(
        self,
        train_data,
        attribute: str | Sequence[str],
        mode: str,
        *,
        weight: torch.Tensor | None = None,
        label_smoothing: float = 0.0,
        dro_step: float = 0.01,
        device: torch.device | str = "cpu",
        reduce: Callable[[torch.Tensor], torch.Tensor] | None = None,
    ):
        if mode not in ("reweight", "dro"):
            raise ValueError(f"GroupLoss mode must be 'reweight' or 'dro', got {mode!r}")
        self.attribute, self.mode, self.device, self.reduce = attribute, mode, torch.device(device), reduce
        keys = [str(key) for key in as_groups(dataset_groups(train_data, attribute))[0]]
        self.index = {key: i for i, key in enumerate(sorted(set(keys)))}
        self.per_sample = nn.CrossEntropyLoss(weight=weight, label_smoothing=label_smoothing, reduction="none")
        self.dro = None
        if mode == "reweight":
            counts = np.bincount([self.index[key] for key in keys], minlength=len(self.index))
            self.group_weight = torch.tensor(counts.sum() / (len(counts) * counts), dtype=torch.float32, device=device)
        else:
            self.dro = GroupDRO(len(self.index), dro_step, device=device)

    def __call__(self, logits: torch.Tensor, y: torch.Tensor, metas) -> torch.Tensor:
        if metas is None:
            raise ValueError(f"group_balance={self.mode!r} needs samples (x, y, meta['group'])")
        ids = torch.tensor([self.index[group_key(m, self.attribute)] for m in metas], device=self.device)
        losses = self.per_sample(logits, y)
        if self.dro is None:
            return (losses * self.group_weight[ids]).mean()
        return self.dro.loss(losses, ids, reduce=self.reduce)

    def record(self) -> dict:
        if self.dro is None:
            return {}
        return {"group_weights": {key: float(w) for key, w in zip(self.index, self.dro.q.tolist(), strict=True)}}

    def restore(self, record: dict) -> None:
        if self.dro is not None and "group_weights" in record:
            saved = record["group_weights"]
            self.dro.q = torch.tensor([saved[key] for key in self.index], dtype=torch.float32, device=self.device)
