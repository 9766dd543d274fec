"""Where a model looks: Grad-CAM for CNNs, attention maps for attention models.

Both functions return maps ``[B, H, W]`` scaled to [0, 1] per image and upsampled
(bilinearly) to the input's height and width, ready to overlay on the face.

Grad-CAM (Selvaraju et al., 2017) is written here with two hooks rather than taken from the
``grad-cam`` package: it is thirty lines, it returns tensors instead of numpy images, it
needs no extra dependencies (``grad-cam`` pulls in ``ttach`` and ``scipy``), and it leaves the
model's parameter gradients untouched (it uses ``torch.autograd.grad``).
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn


def _normalise(maps: torch.Tensor, size: tuple[int, int]) -> torch.Tensor:
    """Upsample ``[B, h, w]`` to ``size`` and scale each map to [0, 1] (min to 0, max to 1)."""
    maps = F.interpolate(maps.unsqueeze(1).float(), size=size, mode="bilinear", align_corners=False).squeeze(
        1
    )
    low = maps.flatten(1).amin(dim=1).view(-1, 1, 1)
    high = maps.flatten(1).amax(dim=1).view(-1, 1, 1)
    # A flat map (no evidence at all) stays zero instead of dividing by zero.
    return torch.where(high > low, (maps - low) / (high - low).clamp_min(1e-12), torch.zeros_like(maps))


def _resolve_layer(model: nn.Module, layer: nn.Module | str | None) -> nn.Module:
    if isinstance(layer, nn.Module):
        return layer
    name = layer if layer is not None else getattr(model, "cam_layer", None)
    if name is None:
        raise ValueError(
            f"{getattr(model, 'ferlib_name', type(model).__name__)} has no convolutional layer for Grad-CAM "
            "(no cam_layer); pass layer=..., or use attention_map for attention models"
        )
    return model.get_submodule(name)


def grad_cam(
    model: nn.Module,
    x: torch.Tensor,
    target: int | torch.Tensor | None = None,
    layer: nn.Module | str | None = None,
) -> torch.Tensor:
    """Grad-CAM maps ``[B, H, W]`` in [0, 1] for the class ``target``.

    Parameters
    ----------
    model : a ferlib model; it is run in eval mode and put back as it was.
    x : input images ``[B, C, H, W]``.
    target : the class to explain, one int for all images or a ``[B]`` tensor; the predicted
        class by default.
    layer : the layer (module or its name) whose activations are weighted; the model's
        ``cam_layer`` (its last convolutional block) by default.
    """
    module = _resolve_layer(model, layer)
    captured = {}

    def keep(_module, _args, output):
        captured["activation"] = output

    handle = module.register_forward_hook(keep)
    was_training = model.training
    model.eval()
    try:
        with torch.enable_grad():
            # The input requires grad so that the activations do even in a frozen model.
            logits = model(x.detach().requires_grad_(True))
            activation = captured["activation"]
            if target is None:
                classes = logits.argmax(dim=1)
            else:
                classes = torch.as_tensor(target, device=logits.device).long().expand(len(logits))
            score = logits.gather(1, classes.view(-1, 1)).sum()
            (gradient,) = torch.autograd.grad(score, activation)
    finally:
        handle.remove()
        model.train(was_training)
    if activation.dim() != 4:
        raise ValueError(f"Grad-CAM needs a layer with [B, C, h, w] output, got {list(activation.shape)}")
    weights = gradient.mean(dim=(2, 3), keepdim=True)
    cam = F.relu((weights * activation).sum(dim=1)).detach()
    return _normalise(cam, tuple(x.shape[-2:]))


@torch.no_grad()
def attention_map(model: nn.Module, x: torch.Tensor) -> torch.Tensor:
    """The model's own attention ``[B, H, W]`` in [0, 1]: for models with ``attention_maps(x)``.

    ``vit_tiny``: the last block's CLS-to-patch attention, averaged over heads;
    ``cnn_cbam``: the last stage's spatial attention.
    """
    if not hasattr(model, "attention_maps"):
        raise ValueError(
            f"{getattr(model, 'ferlib_name', type(model).__name__)} has no attention maps; "
            "use grad_cam for convolutional models"
        )
    was_training = model.training
    model.eval()
    try:
        maps = model.attention_maps(x)
    finally:
        model.train(was_training)
    return _normalise(maps, tuple(x.shape[-2:]))
