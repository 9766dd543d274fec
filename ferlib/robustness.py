"""Robustness of expression classifiers: accuracy under corruptions and attacks, occlusion maps.

This module measures; it never trains. The pieces it measures with live by layer:

- the corruption suite (:func:`corrupt`, :func:`list_corruptions`, :data:`CORRUPTIONS`,
  :data:`FAMILIES`, :data:`FACE_BOX`) in :mod:`ferlib.data.corruptions`;
- the attacks (:func:`fgsm`, :func:`pgd`, :func:`run_attack`, :data:`ATTACKS`) in
  :mod:`ferlib.engine.attacks`, with ``adversarial_batch``, what ``fit(adversarial="fgsm" | "pgd")``
  trains on;
- the training-batch augmentations (:func:`augmentation_policy`, :data:`POLICIES`), which
  ``ferlib.fit`` accepts as ``augment=``, in :mod:`ferlib.data.augment`.

They are re-exported here, so ``from ferlib.robustness import corrupt, pgd`` keeps working.

Corruptions
    :func:`evaluate_robustness` gives the accuracy under every corruption and severity (1 to 5,
    after ImageNet-C, Hendrycks & Dietterich 2019); :func:`corruption_error` and :func:`mce`
    compare it with a reference model's.

Adversarial examples
    :func:`adversarial_accuracy` gives the accuracy under FGSM (Goodfellow et al. 2015) or PGD
    (Madry et al. 2018) at each ``eps`` in [0, 1] pixel units; the book quotes it in 1/255 steps
    of an 8-bit image (``eps=8/255`` is "8/255").

Occlusion maps
    :func:`occlusion_sensitivity` (Zeiler & Fergus 2014) and its per-class mean
    :func:`class_sensitivity`.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import torch
from torch import nn

from ferlib.data.augment import POLICIES, augmentation_policy
from ferlib.data.corruptions import (
    CORRUPTIONS,
    FACE_BOX,
    FAMILIES,
    check_corruption,
    check_severity,
    corrupt,
    list_corruptions,
)
from ferlib.data.loader import make_loader
from ferlib.engine.attacks import ATTACKS, EvalMode, check_eps, fgsm, pgd, run_attack
from ferlib.errors import ConfigError

__all__ = [
    "ATTACKS",
    "CORRUPTIONS",
    "FACE_BOX",
    "FAMILIES",
    "POLICIES",
    "adversarial_accuracy",
    "augmentation_policy",
    "class_sensitivity",
    "corrupt",
    "corruption_error",
    "evaluate_robustness",
    "fgsm",
    "list_corruptions",
    "mce",
    "occlusion_sensitivity",
    "pgd",
    "run_attack",
]


def _batch_landmarks(batch) -> np.ndarray | None:
    if len(batch) < 3 or batch[2] is None:
        return None
    metas = batch[2]
    if not all(isinstance(m, dict) and "landmarks" in m for m in metas):
        return None
    return np.stack([np.asarray(m["landmarks"], dtype=np.float32) for m in metas])


def evaluate_robustness(
    model: nn.Module,
    data,
    corruptions: Sequence[str] | None = None,
    severities: Sequence[int] = (1, 2, 3, 4, 5),
    *,
    batch_size: int = 256,
    device: str | torch.device = "auto",
    seed: int = 0,
    use_landmarks: bool = True,
):
    """Accuracy of ``model`` on ``data`` under every corruption and severity, as a tidy DataFrame.

    Columns ``corruption``, ``family``, ``severity``, ``accuracy``, ``n``; the first row is the
    clean accuracy (``corruption="clean"``, ``severity=0``). ``corruptions`` defaults to all of
    :func:`list_corruptions`. Occluders are placed from ``meta["landmarks"]`` when the samples
    carry them and ``use_landmarks`` is true. Each batch gets its own seed, ``seed + batch index``.
    """
    import pandas as pd

    from ferlib.runtime import resolve_device

    names = list(CORRUPTIONS) if corruptions is None else list(corruptions)
    for name in names:
        check_corruption(name)
    severities = [check_severity(s) for s in severities]
    device = resolve_device(device)
    correct: dict[tuple[str, int], int] = {("clean", 0): 0}
    total = 0
    with EvalMode(model), torch.no_grad():
        model.to(device)
        for index, batch in enumerate(make_loader(data, batch_size)):
            x, y = batch[0].to(device), torch.as_tensor(batch[1]).to(device)
            landmarks = _batch_landmarks(batch) if use_landmarks else None
            total += len(y)
            correct[("clean", 0)] += int((model(x).argmax(1) == y).sum())
            for name in names:
                for s in severities:
                    xc = corrupt(x, name, s, seed=seed + index, landmarks=landmarks)
                    key = (name, s)
                    correct[key] = correct.get(key, 0) + int((model(xc).argmax(1) == y).sum())
    if total == 0:
        raise ValueError("the dataset is empty: nothing to evaluate")
    rows = [
        {
            "corruption": name,
            "family": CORRUPTIONS.get(name, "clean"),
            "severity": s,
            "accuracy": count / total,
            "n": total,
        }
        for (name, s), count in correct.items()
    ]
    return pd.DataFrame(rows)


def corruption_error(results, reference_results):
    """Corruption errors after Hendrycks & Dietterich (2019), one row per corruption.

    ``ce`` is ``sum_s err(c, s) / sum_s err_ref(c, s)`` over the severities both tables share;
    ``relative_ce`` is ``sum_s (err(c, s) - err_clean) / sum_s (err_ref(c, s) - err_ref_clean)``
    (the drop from clean accuracy, relative to the reference's), when both tables hold a clean row.
    Both tables are :func:`evaluate_robustness` outputs; the reference is e.g. a baseline CNN.
    """
    import pandas as pd

    a = results[results.corruption != "clean"]
    b = reference_results[reference_results.corruption != "clean"]
    merged = a.merge(b, on=["corruption", "severity"], suffixes=("", "_ref"))
    if merged.empty:
        raise ValueError("the two result tables share no (corruption, severity) rows")

    def clean_error(frame):
        row = frame[frame.corruption == "clean"]
        return float(1 - row.accuracy.iloc[0]) if len(row) else float("nan")

    clean, clean_ref = clean_error(results), clean_error(reference_results)
    rows = []
    for name, group in merged.groupby("corruption", sort=False):
        err, err_ref = 1 - group.accuracy, 1 - group.accuracy_ref
        denominator = float(err_ref.sum())
        relative_den = float((err_ref - clean_ref).sum())
        rows.append(
            {
                "corruption": name,
                "family": CORRUPTIONS.get(name, ""),
                "ce": float(err.sum()) / denominator if denominator > 0 else float("nan"),
                "relative_ce": float((err - clean).sum()) / relative_den if relative_den > 0 else float("nan"),
            }
        )
    return pd.DataFrame(rows)


def mce(results, reference_results) -> float:
    """Mean corruption error: the mean over corruptions of :func:`corruption_error`'s ``ce``
    (1 for the reference itself; below 1 is more robust than the reference)."""
    return float(corruption_error(results, reference_results).ce.mean())


def adversarial_accuracy(
    model: nn.Module,
    data,
    eps_list: Sequence[float],
    attack: str = "pgd",
    *,
    steps: int = 10,
    alpha: float | None = None,
    batch_size: int = 256,
    device: str | torch.device = "auto",
    seed: int = 0,
):
    """Accuracy under an L-infinity ``attack`` (``"pgd"`` or ``"fgsm"``) at each ``eps`` (in [0, 1]).

    Returns a DataFrame with ``attack``, ``eps``, ``eps_255`` (``eps * 255``), ``accuracy`` and ``n``.
    """
    import pandas as pd

    from ferlib.runtime import resolve_device

    if attack not in ATTACKS:
        raise ConfigError.unknown("attack", attack, ATTACKS)
    eps_list = [check_eps(e) for e in eps_list]
    device = resolve_device(device)
    model.to(device)
    correct = [0] * len(eps_list)
    total = 0
    for index, batch in enumerate(make_loader(data, batch_size)):
        x, y = batch[0].to(device), torch.as_tensor(batch[1]).to(device)
        total += len(y)
        for k, eps in enumerate(eps_list):
            adv = run_attack(model, x, y, attack, eps, steps=steps, alpha=alpha, seed=seed + index)
            with EvalMode(model), torch.no_grad():
                correct[k] += int((model(adv).argmax(1) == y).sum())
    if total == 0:
        raise ValueError("the dataset is empty: nothing to evaluate")
    return pd.DataFrame(
        [
            {"attack": attack, "eps": eps, "eps_255": round(eps * 255, 6), "accuracy": c / total, "n": total}
            for eps, c in zip(eps_list, correct, strict=True)
        ]
    )


@torch.no_grad()
def occlusion_sensitivity(
    model: nn.Module,
    images: torch.Tensor,
    labels,
    patch: int = 8,
    stride: int = 4,
    *,
    fill: float = 0.5,
    batch_size: int = 256,
    device: str | torch.device = "auto",
) -> np.ndarray:
    """Occlusion maps (Zeiler & Fergus 2014): the drop in the true-class probability when a grey
    ``patch`` x ``patch`` square (value ``fill``) covers each position, slid with ``stride``.

    Returns ``[N, H, W]``: each pixel holds the mean drop over the patch positions covering it
    (positive: hiding it hurts the true class; negative: hiding it helps).
    """
    from ferlib.runtime import resolve_device

    if patch < 1 or stride < 1:
        raise ValueError(f"patch and stride must be >= 1, got {patch} and {stride}")
    device = resolve_device(device)
    images = images.to(device).float()
    if images.dim() == 3:
        images = images.unsqueeze(0)
    labels = torch.as_tensor(np.asarray(labels), device=device).long().reshape(-1)
    n, c, h, w = images.shape
    if patch > min(h, w):
        raise ValueError(f"patch {patch} is larger than the image ({h}x{w})")
    ys = list(range(0, h - patch + 1, stride))
    xs = list(range(0, w - patch + 1, stride))
    if ys[-1] != h - patch:
        ys.append(h - patch)
    if xs[-1] != w - patch:
        xs.append(w - patch)
    positions = [(py, px) for py in ys for px in xs]
    drop = torch.zeros(n, h, w, device=device)
    cover = torch.zeros(h, w, device=device)
    rows = torch.arange(n, device=device)
    with EvalMode(model):
        model.to(device)
        clean = torch.softmax(model(images).float(), 1)[rows, labels]
        per_chunk = max(1, batch_size // max(n, 1))
        for start in range(0, len(positions), per_chunk):
            chunk = positions[start : start + per_chunk]
            batch = images.repeat(len(chunk), 1, 1, 1)
            for k, (py, px) in enumerate(chunk):
                batch[k * n : (k + 1) * n, :, py : py + patch, px : px + patch] = fill
            probs = torch.softmax(model(batch).float(), 1)
            probs = probs[torch.arange(len(batch), device=device), labels.repeat(len(chunk))]
            for k, (py, px) in enumerate(chunk):
                drop[:, py : py + patch, px : px + patch] += (clean - probs[k * n : (k + 1) * n]).view(n, 1, 1)
                cover[py : py + patch, px : px + patch] += 1
    return (drop / cover.clamp_min(1)).cpu().numpy()


def class_sensitivity(maps, labels, num_classes: int | None = None) -> np.ndarray:
    """Per-class mean of :func:`occlusion_sensitivity` maps: ``[K, H, W]`` (NaN for absent classes)."""
    maps = np.asarray(maps, dtype=np.float64)
    labels = np.asarray(labels).reshape(-1)
    k = int(labels.max()) + 1 if num_classes is None else num_classes
    out = np.full((k, *maps.shape[1:]), np.nan)
    for cls in range(k):
        if (labels == cls).any():
            out[cls] = maps[labels == cls].mean(0)
    return out
