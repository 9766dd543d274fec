"""Adversarial examples: L-infinity attacks on a model's loss, and the batches of adversarial training.

:func:`fgsm` (Goodfellow et al. 2015) and :func:`pgd` (Madry et al. 2018) are L-infinity
attacks with ``eps`` in [0, 1] pixel units; the book quotes it in 1/255 steps of an 8-bit
image (``eps=8/255`` is "8/255"). Both clamp to [0, 1] and put the model in eval mode,
restoring its mode afterwards. :func:`adversarial_batch` is the batch ``ferlib.fit(adversarial=...)``
trains on; :func:`ferlib.robustness.adversarial_accuracy` measures a model under :func:`run_attack`.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from ferlib.errors import ConfigError

__all__ = ["ATTACKS", "EvalMode", "adversarial_batch", "check_eps", "fgsm", "pgd", "run_attack"]

ATTACKS = ("fgsm", "pgd")


def _loss_gradient(model: nn.Module, x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
    with torch.enable_grad():
        x = x.detach().requires_grad_(True)
        loss = F.cross_entropy(model(x).float(), y)
        (grad,) = torch.autograd.grad(loss, x)
    return grad


class EvalMode:
    """Put a model in eval mode for the duration of a ``with`` block, then restore it."""

    def __init__(self, model: nn.Module):
        self.model, self.was_training = model, model.training

    def __enter__(self):
        self.model.eval()

    def __exit__(self, *exc):
        self.model.train(self.was_training)


def check_eps(eps: float) -> float:
    """``eps`` as a float, or a ``ValueError`` unless it is in [0, 1] (pixel units)."""
    eps = float(eps)
    if not 0.0 <= eps <= 1.0:
        raise ValueError(f"eps must be in [0, 1] (pixel units: 8/255 is 0.031), got {eps}")
    return eps


def fgsm(
    model: nn.Module,
    x: torch.Tensor,
    y: torch.Tensor,
    eps: float,
    *,
    random_start: bool = False,
    alpha: float | None = None,
    seed: int = 0,
) -> torch.Tensor:
    """Fast gradient sign method (Goodfellow et al. 2015): ``x + eps * sign(grad_x loss)``, in [0, 1].

    ``random_start=True`` is the "fast" variant of Wong et al. (2020): start from a uniform point
    of the eps-ball and step ``alpha`` (default ``1.25 * eps``), then project back onto the ball.
    ``eps`` is in [0, 1] pixel units (the book quotes it in 1/255). ``eps=0`` returns ``x``.
    """
    eps = check_eps(eps)
    if eps == 0:
        return x.clone()
    with EvalMode(model):
        start = x
        if random_start:
            gen = torch.Generator().manual_seed(int(seed))
            noise = (torch.rand(x.shape, generator=gen) * 2 - 1).to(x.device, x.dtype)
            start = torch.clamp(x + eps * noise, 0, 1)
        step = eps if not random_start else (1.25 * eps if alpha is None else alpha)
        grad = _loss_gradient(model, start, y)
        adv = start + step * grad.sign()
        adv = torch.min(torch.max(adv, x - eps), x + eps)
    return adv.clamp(0, 1).detach()


def pgd(
    model: nn.Module,
    x: torch.Tensor,
    y: torch.Tensor,
    eps: float,
    steps: int = 10,
    alpha: float | None = None,
    seed: int = 0,
) -> torch.Tensor:
    """Projected gradient descent (Madry et al. 2018), L-infinity, from a random start in the ball.

    Each of ``steps`` steps moves ``alpha`` (default ``2.5 * eps / steps``) along the sign of the
    loss gradient and projects onto the eps-ball around ``x`` and onto [0, 1]. ``eps=0`` returns ``x``.
    """
    eps = check_eps(eps)
    if steps < 1:
        raise ValueError(f"steps must be >= 1, got {steps}")
    if eps == 0:
        return x.clone()
    alpha = 2.5 * eps / steps if alpha is None else float(alpha)
    gen = torch.Generator().manual_seed(int(seed))
    noise = (torch.rand(x.shape, generator=gen) * 2 - 1).to(x.device, x.dtype)
    adv = torch.clamp(x + eps * noise, 0, 1)
    with EvalMode(model):
        for _ in range(steps):
            grad = _loss_gradient(model, adv, y)
            adv = adv.detach() + alpha * grad.sign()
            adv = torch.min(torch.max(adv, x - eps), x + eps).clamp(0, 1)
    return adv.detach()


def run_attack(model, x, y, name: str, eps: float, *, steps: int = 10, alpha=None, seed: int = 0) -> torch.Tensor:
    """Dispatch to :func:`fgsm` or :func:`pgd` by ``name``."""
    if name == "fgsm":
        return fgsm(model, x, y, eps, seed=seed)
    if name == "pgd":
        return pgd(model, x, y, eps, steps=steps, alpha=alpha, seed=seed)
    raise ConfigError.unknown("attack", name, ATTACKS)


def adversarial_batch(
    model: nn.Module, x: torch.Tensor, y: torch.Tensor, kind: str, eps: float, *, steps: int = 5, seed: int = 0
) -> torch.Tensor:
    """The adversarial training batch of ``fit(adversarial=kind)``: ``"fgsm"`` is FGSM from a random
    start with step ``1.25 * eps`` (Wong et al. 2020), ``"pgd"`` is PGD with ``steps`` steps
    (Madry et al. 2018)."""
    if kind == "fgsm":
        return fgsm(model, x, y, eps, random_start=True, seed=seed)
    if kind == "pgd":
        return pgd(model, x, y, eps, steps=steps, seed=seed)
    raise ConfigError.unknown("adversarial training", kind, ATTACKS)
