"""Plots for the book: learning curves, confusion matrices. Each returns its matplotlib Axes."""

from __future__ import annotations

import matplotlib.pyplot as plt
import numpy as np


def plot_history(history, metrics=("loss", "accuracy"), axes=None, title: str | None = None):
    """Learning curves (train and validation) of a :class:`ferlib.History`, one panel per metric."""
    frame = history.to_frame() if hasattr(history, "to_frame") else history
    if axes is None:
        _, axes = plt.subplots(1, len(metrics), figsize=(4.5 * len(metrics), 3.4), squeeze=False)
        axes = axes[0]
    for ax, metric in zip(axes, metrics, strict=True):
        for split, style in (("train", "-o"), ("val", "--s")):
            column = f"{split}_{metric}"
            if column in frame:
                ax.plot(frame["epoch"], frame[column], style, label=split, markersize=4)
        ax.set_xlabel("epoch")
        ax.set_ylabel(metric.replace("_", " "))
        ax.set_title(f"{metric.replace('_', ' ')} per epoch" if title is None else f"{title}: {metric}")
        ax.legend()
        ax.grid(alpha=0.3)
    plt.tight_layout()
    return axes


def plot_confusion_matrix(result, normalize: bool = True, ax=None, title: str = "Confusion matrix"):
    """Heatmap of an :class:`ferlib.EvaluationResult`'s confusion matrix (rows: true class)."""
    import seaborn as sns

    confusion = np.asarray(result.confusion, dtype=float)
    if normalize:
        confusion = confusion / np.maximum(confusion.sum(1, keepdims=True), 1)
    if ax is None:
        _, ax = plt.subplots(figsize=(5.2, 4.4))
    sns.heatmap(
        confusion,
        annot=True,
        fmt=".2f" if normalize else "d",
        cmap="Blues",
        xticklabels=result.class_names,
        yticklabels=result.class_names,
        vmin=0,
        vmax=1 if normalize else None,
        cbar_kws={"label": "fraction of true class" if normalize else "count"},
        ax=ax,
    )
    ax.set_xlabel("predicted class")
    ax.set_ylabel("true class")
    ax.set_title(title)
    return ax
