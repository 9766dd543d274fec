"""Transforms on float image tensors ``[C, H, W]`` (or clips ``[T, C, H, W]``) in [0, 1].

- :class:`Equalize` and :class:`CLAHE`: contrast enhancement (Pitaloka et al. 2017) as
  dataset transforms, e.g. ``load_dataset("fer2013", root=..., transform=CLAHE())``.
- :func:`train_augmentation` and :data:`AUGMENTATIONS`, the named per-sample presets of
  train-time augmentation, live in :mod:`ferlib.data.augment` (with the batch policies) and
  are re-exported here.
- :func:`crop_size`, :func:`random_crops`, :func:`center_crop` and :func:`five_crops`: the
  crop protocol of the FER literature (train on random crops, e.g. 40x40 of 48x48 images;
  evaluate on the centre crop, or average ten crops: five crops and their mirrors), on batches.
"""

from __future__ import annotations

import numpy as np
import torch
from torchvision.transforms import v2

from ferlib.data.augment import AUGMENTATIONS, train_augmentation

__all__ = [
    "AUGMENTATIONS",
    "CLAHE",
    "Equalize",
    "Normalize",
    "center_crop",
    "crop_size",
    "five_crops",
    "random_crops",
    "train_augmentation",
]


class _PerImage(torch.nn.Module):
    """Apply a uint8 numpy function to every image of a float tensor ``[..., C, H, W]``."""

    def _apply(self, image: np.ndarray) -> np.ndarray:  # pragma: no cover - overridden
        raise NotImplementedError

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if not isinstance(x, torch.Tensor) or x.ndim < 3:
            raise ValueError(
                f"{type(self).__name__} expects a float tensor [..., C, H, W], got {type(x).__name__}"
            )
        flat = x.detach().reshape(-1, *x.shape[-3:]).cpu()
        channels = flat.shape[1]
        if channels not in (1, 3):
            raise ValueError(f"{type(self).__name__} expects 1 or 3 channels, got {channels}")
        out = torch.empty_like(flat, dtype=torch.float32)
        for i, image in enumerate(flat):
            array = (image.clamp(0, 1) * 255.0).round().to(torch.uint8).permute(1, 2, 0).numpy()
            result = self._apply(array[:, :, 0] if channels == 1 else array)
            result = torch.from_numpy(np.ascontiguousarray(result))
            out[i] = (result.unsqueeze(0) if result.ndim == 2 else result.permute(2, 0, 1)).float() / 255.0
        return out.reshape(x.shape).to(x.device)


class Equalize(_PerImage):
    """Global histogram equalisation (on luminance for RGB)."""

    def _apply(self, image: np.ndarray) -> np.ndarray:
        from ferlib.data.faces import equalize_histogram  # OpenCV, imported when first used

        return equalize_histogram(image)


class CLAHE(_PerImage):
    """Contrast-limited adaptive histogram equalisation with OpenCV's ``createCLAHE``."""

    def __init__(self, clip_limit: float = 2.0, tile_grid_size: int = 8) -> None:
        super().__init__()
        self.clip_limit = clip_limit
        self.tile_grid_size = tile_grid_size

    def extra_repr(self) -> str:
        return f"clip_limit={self.clip_limit}, tile_grid_size={self.tile_grid_size}"

    def _apply(self, image: np.ndarray) -> np.ndarray:
        from ferlib.data.faces import apply_clahe  # OpenCV, imported when first used

        return apply_clahe(image, self.clip_limit, self.tile_grid_size)


class Normalize(torch.nn.Module):
    """``(x - mean) / std`` per channel; a scalar mean/std applies to every channel."""

    def __init__(self, mean: float | tuple[float, ...] = 0.5, std: float | tuple[float, ...] = 0.5) -> None:
        super().__init__()
        self.mean = torch.as_tensor(mean, dtype=torch.float32).reshape(-1, 1, 1)
        self.std = torch.as_tensor(std, dtype=torch.float32).reshape(-1, 1, 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return (x - self.mean.to(x.device)) / self.std.to(x.device)


def crop_size(fraction: float, shape: tuple[int, ...] | torch.Size) -> tuple[int, int]:
    """The ``(height, width)`` of a crop of ``fraction`` of each side of images of ``shape`` (``[..., H, W]``).

    >>> crop_size(0.8333, (1, 48, 48))
    (40, 40)
    """
    if isinstance(fraction, bool) or not isinstance(fraction, (int, float)) or not 0.0 < fraction <= 1.0:
        raise ValueError(f"crop must be a fraction of the image side in (0, 1], got {fraction!r}")
    height, width = int(shape[-2]), int(shape[-1])
    return max(1, round(fraction * height)), max(1, round(fraction * width))


def random_crops(x: torch.Tensor, size: tuple[int, int], generator: torch.Generator | None = None) -> torch.Tensor:
    """An independent random ``size`` crop of each sample of a batch ``[B, ..., H, W]`` (the frames
    of a clip share theirs), on ``x``'s device; offsets come from ``generator`` (default: torch's)."""
    height, width = size
    rows, cols = x.shape[-2] - height, x.shape[-1] - width
    if rows < 0 or cols < 0:
        raise ValueError(f"a {height}x{width} crop does not fit images of {x.shape[-2]}x{x.shape[-1]}")
    batch = x.shape[0]
    top = torch.randint(rows + 1, (batch,), generator=generator).to(x.device)
    left = torch.randint(cols + 1, (batch,), generator=generator).to(x.device)
    row_index = top[:, None] + torch.arange(height, device=x.device)  # [B, h]
    col_index = left[:, None] + torch.arange(width, device=x.device)  # [B, w]
    flat = x.reshape(batch, -1, *x.shape[-2:])  # [B, C', H, W]
    picked = flat[
        torch.arange(batch, device=x.device)[:, None, None, None],
        torch.arange(flat.shape[1], device=x.device)[None, :, None, None],
        row_index[:, None, :, None],
        col_index[:, None, None, :],
    ]
    return picked.reshape(*x.shape[:-2], height, width)


def center_crop(x: torch.Tensor, size: tuple[int, int]) -> torch.Tensor:
    """The centre ``size`` crop of images ``[..., H, W]`` (torchvision's ``center_crop``)."""
    return v2.functional.center_crop(x, list(size))


def five_crops(x: torch.Tensor, size: tuple[int, int]) -> tuple[torch.Tensor, ...]:
    """The four corner crops and the centre crop of images ``[..., H, W]`` (torchvision's ``five_crop``)."""
    return tuple(v2.functional.five_crop(x, list(size)))
