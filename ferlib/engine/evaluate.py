"""``evaluate``: a model's predictions on a dataset (with test-time augmentation) and their metrics.

The metrics themselves, with their bootstrap intervals, are computed in :mod:`ferlib.engine.metrics`.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
import torch
from torch import nn

from ferlib.data.labels import EMOTIONS
from ferlib.data.loader import make_loader
from ferlib.data.transforms import center_crop, crop_size, five_crops
from ferlib.engine.metrics import (
    METRICS,
    bootstrap_intervals,
    confusion_matrix,
    expected_calibration_error,
    metrics_from_confusion,
    per_class_scores,
)
from ferlib.models.base import forward_kwargs
from ferlib.runtime import resolve_device


@dataclass
class EvaluationResult:
    """Predictions and metrics of one model on one dataset; ``summary()`` and ``to_records()`` are tidy."""

    y_true: np.ndarray
    y_pred: np.ndarray
    probs: np.ndarray
    class_names: tuple[str, ...]
    confusion: np.ndarray
    accuracy: float
    balanced_accuracy: float
    macro_f1: float
    ece: float
    intervals: dict[str, tuple[float, float]] = field(default_factory=dict)
    meta: list | None = None

    @property
    def n(self) -> int:
        return len(self.y_true)

    def summary(self) -> dict:
        """One flat dict: ``accuracy``, ``accuracy_ci_low``, ``accuracy_ci_high``, ..., ``ece``, ``n``."""
        out: dict = {"n": self.n}
        for name in METRICS:
            out[name] = getattr(self, name)
            if name in self.intervals:
                out[f"{name}_ci_low"], out[f"{name}_ci_high"] = self.intervals[name]
        out["ece"] = self.ece
        return out

    def to_records(self) -> list[dict]:
        """One record per metric (``metric``, ``value``, ``ci_low``, ``ci_high``): ``pd.DataFrame(r.to_records())``."""
        records = []
        for name in (*METRICS, "ece"):
            low, high = self.intervals.get(name, (float("nan"), float("nan")))
            records.append({"metric": name, "value": getattr(self, name), "ci_low": low, "ci_high": high})
        return records

    def per_class(self):
        """Precision, recall, F1 and support per class, as a pandas DataFrame."""
        import pandas as pd

        scores = per_class_scores(self.confusion)
        return pd.DataFrame({"class": list(self.class_names), **scores}).astype({"support": int})


def _views(x: torch.Tensor, crop: float | None, tta_flip: bool, tta_crops: bool) -> list[torch.Tensor]:
    """The inputs whose probabilities are averaged: the image (or its centre ``crop``), the five
    crops with ``tta_crops``, and the mirror of each with ``tta_flip``."""
    if crop is None:
        if tta_crops:
            raise ValueError("tta_crops needs crop (the fraction of the side the model was trained on)")
        views = [x]
    else:
        size = crop_size(crop, x.shape)
        views = list(five_crops(x, size)) if tta_crops else [center_crop(x, size)]
    return views + [torch.flip(view, dims=(-1,)) for view in views] if tta_flip else views


@torch.no_grad()
def predict_proba(
    model: nn.Module,
    data,
    *,
    batch_size: int = 256,
    device: str | torch.device = "auto",
    tta_flip: bool = False,
    crop: float | None = None,
    tta_crops: bool = False,
) -> tuple[np.ndarray, np.ndarray, list | None]:
    """Class probabilities ``[N, K]``, the labels ``[N]`` and the samples' metadata (or None).

    ``tta_flip`` averages the probabilities of each input and its horizontal mirror. A model
    trained on crops (``crop``, the fraction of the side: see :func:`ferlib.fit`) sees the centre
    crop, or with ``tta_crops`` the average over the four corner crops and the centre crop (ten
    crops with ``tta_flip``, the protocol of Khaireddin and Chen 2021).
    """
    device = resolve_device(device)
    model = model.to(device).eval()
    probabilities, labels, metas = [], [], []
    for batch in make_loader(data, batch_size):
        x = batch[0].to(device)
        kwargs = forward_kwargs(model, x, batch[2] if len(batch) == 3 else None)  # e.g. video clip lengths
        views = _views(x, crop, tta_flip, tta_crops)
        probs = sum(torch.softmax(model(view, **kwargs).float(), dim=1) for view in views) / len(views)
        probabilities.append(probs.cpu())
        labels.append(torch.as_tensor(batch[1]))
        if len(batch) == 3:
            metas.extend(batch[2])
    if not probabilities:
        raise ValueError("the dataset is empty: nothing to evaluate")
    return torch.cat(probabilities).numpy(), torch.cat(labels).numpy(), metas or None


def evaluate(
    model: nn.Module,
    data,
    *,
    batch_size: int = 256,
    device: str | torch.device = "auto",
    tta_flip: bool = False,
    crop: float | None = None,
    tta_crops: bool = False,
    n_bootstrap: int = 1000,
    seed: int = 0,
    class_names: tuple[str, ...] | None = None,
) -> EvaluationResult:
    """Evaluate ``model`` on ``data`` (a dataset or loader of ``(x, y[, meta])``).

    Returns an :class:`EvaluationResult` with accuracy (WAR), balanced accuracy (UAR), macro-F1,
    per-class precision/recall, the confusion matrix, expected calibration error and
    bootstrap 95% intervals (``n_bootstrap=0`` skips them).
    ``tta_flip``, ``crop`` and ``tta_crops`` are :func:`predict_proba`'s: pass the ``crop`` a
    model was trained with (its checkpoint's ``train_config["crop"]``).

    Examples
    --------
    >>> import torch
    >>> from torch.utils.data import TensorDataset
    >>> from ferlib import create_model, evaluate
    >>> data = TensorDataset(torch.rand(16, 1, 48, 48), torch.randint(0, 7, (16,)))
    >>> result = evaluate(create_model("cnn_small"), data, device="cpu", n_bootstrap=100)
    >>> sorted(result.summary())[:3]
    ['accuracy', 'accuracy_ci_high', 'accuracy_ci_low']
    """
    probs, y_true, meta = predict_proba(
        model, data, batch_size=batch_size, device=device, tta_flip=tta_flip, crop=crop, tta_crops=tta_crops
    )
    num_classes = probs.shape[1]
    if y_true.max() >= num_classes or y_true.min() < 0:
        raise ValueError(f"labels range over [{y_true.min()}, {y_true.max()}] but the model has {num_classes} classes")
    if class_names is None:
        class_names = getattr(data, "class_names", None) or (
            EMOTIONS if num_classes == len(EMOTIONS) else tuple(str(i) for i in range(num_classes))
        )
    y_pred = probs.argmax(1)
    confusion = confusion_matrix(y_true, y_pred, num_classes)
    metrics = metrics_from_confusion(confusion)
    intervals = bootstrap_intervals(y_true, y_pred, num_classes, n_bootstrap, seed=seed) if n_bootstrap > 0 else {}
    return EvaluationResult(
        y_true=y_true,
        y_pred=y_pred,
        probs=probs,
        class_names=tuple(class_names),
        confusion=confusion,
        accuracy=metrics["accuracy"],
        balanced_accuracy=metrics["balanced_accuracy"],
        macro_f1=metrics["macro_f1"],
        ece=expected_calibration_error(probs, y_true),
        intervals=intervals,
        meta=meta,
    )
