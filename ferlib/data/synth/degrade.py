"""Camera degradations applied to rendered SynthFER faces: blur, sensor noise and JPEG.

JPEG is modelled by its lossy step alone, in floating point and vectorised over the batch: an
8x8 DCT of each channel, quantisation with the standard luminance table scaled by each sample's
quality, and the inverse DCT. There is no colour conversion, chroma subsampling or integer
rounding between stages, so it is not byte-identical to a real encoder (PIL/libjpeg) and is kept
as written: SynthFER's bytes, and the book's numbers, depend on it.
"""

from __future__ import annotations

import math

import numpy as np
import torch
import torch.nn.functional as F

from ferlib.data.synth.fields import _BANK_SIZE, _noise_bank


def _jpeg_quant_table(quality: torch.Tensor) -> torch.Tensor:
    # The standard luminance table (ITU-T T.81 Annex K, table K.1), scaled by quality with the IJG
    # formula, in floating point (libjpeg divides 5000 by the quality in integers below 50).
    base = torch.tensor(
        [
             16,  11,  10,  16,  24,  40,  51,  61,
             12,  12,  14,  19,  26,  58,  60,  55,
             14,  13,  16,  24,  40,  57,  69,  56,
             14,  17,  22,  29,  51,  87,  80,  62,
             18,  22,  37,  56,  68, 109, 103,  77,
             24,  35,  55,  64,  81, 104, 113,  92,
             49,  64,  78,  87, 103, 121, 120, 101,
             72,  92,  95,  98, 112, 100, 103,  99,
        ],
        dtype=torch.float32,
    ).view(8, 8)  # fmt: skip
    q = quality.clamp(1, 100)
    scale = torch.where(q < 50, 5000 / q, 200 - 2 * q)
    return torch.floor((base * scale.view(-1, 1, 1) + 50) / 100).clamp_min(1)


def _dct_matrix() -> torch.Tensor:
    k = torch.arange(8, dtype=torch.float64)
    m = torch.cos((2 * k.view(1, -1) + 1) * k.view(-1, 1) * math.pi / 16) * math.sqrt(2 / 8)
    m[0] /= math.sqrt(2)
    return m.float()


def _jpeg(img: torch.Tensor, quality: torch.Tensor) -> torch.Tensor:
    """Baseline JPEG's lossy step (8x8 DCT, quantisation with the standard table), vectorised."""
    n, c, h, w = img.shape
    ph, pw = (-h) % 8, (-w) % 8
    x = F.pad(img, (0, pw, 0, ph), mode="replicate") * 255 - 128
    hh, ww = x.shape[2] // 8, x.shape[3] // 8
    blocks = x.view(n, c, hh, 8, ww, 8).permute(0, 1, 2, 4, 3, 5)
    d = _dct_matrix()
    coef = d @ blocks @ d.t()
    table = _jpeg_quant_table(quality).view(n, 1, 1, 1, 8, 8)
    coef = torch.round(coef / table) * table
    out = (d.t() @ coef @ d).permute(0, 1, 2, 4, 3, 5).reshape(n, c, hh * 8, ww * 8)
    return ((out + 128) / 255)[:, :, :h, :w].clamp(0, 1)


def _blur(img: torch.Tensor, sigma: torch.Tensor) -> torch.Tensor:
    n, c, h, w = img.shape
    radius = max(1, int(math.ceil(3 * float(sigma.max()))))
    t = torch.arange(-radius, radius + 1, dtype=torch.float32)
    k = torch.exp(-(t.view(1, -1) ** 2) / (2 * sigma.view(-1, 1).clamp_min(1e-3) ** 2))
    k = (k / k.sum(1, keepdim=True)).repeat_interleave(c, 0)
    x = F.pad(img.reshape(1, n * c, h, w), (radius, radius, radius, radius), mode="replicate")
    x = F.conv2d(x, k.view(n * c, 1, 1, -1), groups=n * c)
    x = F.conv2d(x, k.view(n * c, 1, -1, 1), groups=n * c)
    return x.view(n, c, h, w)


def _sensor(img: torch.Tensor, nz: dict, rng, per: int) -> torch.Tensor:
    """Blur, sensor noise and JPEG; ``nz`` values are per sample, repeated ``per`` times (frames)."""
    rep = lambda k: torch.from_numpy(np.repeat(nz[k], per).astype(np.float32))  # noqa: E731
    sigma = rep("blur_sigma")
    sel = (sigma > 0.05).nonzero().view(-1)
    if sel.numel():
        img[sel] = _blur(img[sel], sigma[sel])
    noise_sigma = rep("noise_sigma")
    pick = torch.from_numpy(rng.integers(0, _BANK_SIZE, len(noise_sigma)))
    sign = torch.from_numpy(rng.choice(np.array([-1.0, 1.0], dtype=np.float32), len(noise_sigma)))
    sel = (noise_sigma > 0).nonzero().view(-1)
    if sel.numel():
        field = _noise_bank("sensor", tuple(img.shape[1:]))[pick[sel]] * (sign[sel] * noise_sigma[sel]).view(
            -1, 1, 1, 1
        )
        # Shot-noise-like: stronger in brighter pixels, plus a floor.
        img[sel] = (img[sel] + field * (0.5 + 0.7 * img[sel].sqrt())).clamp_(0, 1)
    quality = rep("jpeg_quality")
    sel = (quality < 99.5).nonzero().view(-1)
    if sel.numel():
        img[sel] = _jpeg(img[sel], quality[sel])
    return img
