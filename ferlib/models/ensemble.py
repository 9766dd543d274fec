"""Ensembles of trained models: average the class probabilities of K members.

An :class:`Ensemble` is an ordinary ferlib model: ``forward`` returns ``log`` of the
(weighted) mean of the members' softmax probabilities, ``[B, num_classes]``. These are
valid logits: ``softmax`` of them gives back the averaged probabilities, so ``argmax``,
accuracy and cross-entropy (the negative log of the averaged probability of the true class)
mean what they should, and ``fit``, ``evaluate`` and the robustness code need no special case.

Ensembles are not registered for :func:`~ferlib.models.create_model`: they are built from
trained members, with :class:`Ensemble` or :func:`ensemble_from_checkpoints`.
"""

from __future__ import annotations

import math
import os
from collections.abc import Sequence

import torch
from torch import nn

from ferlib.models.base import FERModel
from ferlib.models.checkpoint import load_checkpoint


class Ensemble(FERModel):
    """Average of the softmax probabilities of ``models`` (optionally weighted).

    Parameters
    ----------
    models : trained ferlib models with the same ``num_classes``, ``in_channels`` and kind.
    weights : one non-negative weight per member (normalised to sum 1); equal by default.

    Examples
    --------
    >>> import torch
    >>> from ferlib.models import create_model
    >>> ensemble = Ensemble([create_model("cnn_small"), create_model("cnn_small")]).eval()
    >>> probabilities = ensemble(torch.zeros(2, 1, 48, 48)).exp()
    >>> torch.allclose(probabilities.sum(dim=1), torch.ones(2))
    True
    """

    head_name = None  # no single head to probe: freeze or retrain the members instead

    def __init__(self, models: Sequence[nn.Module], weights: Sequence[float] | None = None):
        models = list(models)
        if not models:
            raise ValueError("an ensemble needs at least one model")
        first = models[0]
        for attribute in ("num_classes", "in_channels", "kind"):
            values = {getattr(model, attribute, None) for model in models}
            if len(values) > 1:
                raise ValueError(f"ensemble members disagree on {attribute}: {sorted(map(str, values))}")
        super().__init__(first.in_channels, first.num_classes)
        self.kind = first.kind
        self.members = nn.ModuleList(models)
        if weights is None:
            weights = [1.0] * len(models)
        if len(weights) != len(models) or any(w < 0 for w in weights) or sum(weights) <= 0:
            raise ValueError(
                f"need {len(models)} non-negative weights with a positive sum, got {list(weights)}"
            )
        total = float(sum(weights))
        self.register_buffer(
            "log_weights", torch.tensor([math.log(w / total) if w > 0 else -math.inf for w in weights])
        )

    def member_probabilities(self, x: torch.Tensor) -> torch.Tensor:
        """Each member's softmax probabilities: ``[K, B, num_classes]``."""
        self.check_input(x)
        return torch.stack([torch.softmax(model(x), dim=-1) for model in self.members])

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        self.check_input(x)
        log_probabilities = torch.stack([torch.log_softmax(model(x), dim=-1) for model in self.members])
        # log(sum_k w_k p_k), computed in log space so that tiny probabilities do not underflow.
        log_weights = self.log_weights.to(log_probabilities).view(-1, 1, 1)
        return torch.logsumexp(log_probabilities + log_weights, dim=0)


def ensemble_from_checkpoints(
    paths: Sequence[str | os.PathLike],
    weights: Sequence[float] | None = None,
    device: str | torch.device = "cpu",
) -> Ensemble:
    """An :class:`Ensemble` (in eval mode) of the models in ferlib checkpoint files.

    Each member is rebuilt with :func:`ferlib.models.checkpoint.load_checkpoint`.
    """
    return (
        Ensemble([load_checkpoint(path, device=device) for path in paths], weights=weights).to(device).eval()
    )
