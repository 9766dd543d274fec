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


def plot_map_grid(images, maps=None, column_labels=None, row_labels=None, title=None, alpha: float = 0.45):
    """Grey images in a grid, each optionally overlaid with a map in [0, 1] (Grad-CAM, attention).

    ``images`` is ``[R, K, H, W]`` (R rows of K images); ``maps`` is ``None`` or a list of R
    entries, each ``[K, H, W]`` or ``None`` (no overlay on that row). Returns the ``[R, K]`` Axes.
    """
    images = np.asarray(images, dtype=float)
    rows, columns = images.shape[:2]
    maps = [None] * rows if maps is None else list(maps)
    if len(maps) != rows:
        raise ValueError(f"need one map entry per row: {rows} rows, {len(maps)} entries")
    fig, axes = plt.subplots(rows, columns, figsize=(1.55 * columns, 1.6 * rows + 0.5), squeeze=False)
    for r in range(rows):
        for k in range(columns):
            ax = axes[r, k]
            ax.imshow(images[r, k], cmap="gray", vmin=0, vmax=1)
            if maps[r] is not None:
                ax.imshow(np.asarray(maps[r][k], dtype=float), cmap="jet", alpha=alpha, vmin=0, vmax=1)
            ax.set_xticks([])
            ax.set_yticks([])
            if r == 0 and column_labels is not None:
                ax.set_title(column_labels[k], fontsize=9)
        if row_labels is not None:
            axes[r, 0].set_ylabel(row_labels[r], fontsize=9)
    if title:
        fig.suptitle(title)
    plt.tight_layout()
    return axes


def plot_accuracy_vs_cost(summary, cost: str = "flops", metric: str = "accuracy", ax=None, title=None):
    """Scatter of ``metric`` against ``cost`` (log scale), one labelled point per row of ``summary``.

    ``summary`` is a table with ``model``, ``cost`` and ``metric`` columns, e.g. from
    :func:`ferlib.experiments.compare.summarize_runs`; FLOPs are shown in millions.
    """
    if ax is None:
        _, ax = plt.subplots(figsize=(6.5, 4))
    scale, unit = (1e6, "MFLOPs per image") if cost == "flops" else (1.0, cost.replace("_", " "))
    for _, row in summary.iterrows():
        x, y = row[cost] / scale, row[metric]
        ax.scatter(x, y, s=40)
        ax.annotate(row["model"], (x, y), fontsize=8, xytext=(4, 3), textcoords="offset points")
    ax.set_xscale("log")
    ax.set_xlabel(f"{unit} (log scale)")
    ax.set_ylabel(f"test {metric.replace('_', ' ')} (mean over seeds)")
    ax.set_title(title or f"{metric.replace('_', ' ').capitalize()} against cost")
    ax.grid(alpha=0.3)
    return ax


def plot_mean_curves(curves, by: str, metric: str = "val_accuracy", chance: float | None = None, ax=None, title=None):
    """Per-epoch ``metric`` averaged over runs (e.g. seeds), one line per value of ``by``.

    ``curves`` is a long table with ``epoch``, ``by`` and ``metric`` columns, e.g. the
    concatenated ``History.to_frame()`` of several runs with a ``variant`` column added.
    """
    if ax is None:
        _, ax = plt.subplots(figsize=(6.5, 3.8))
    for key, group in curves.groupby(by, sort=False):
        mean = group.groupby("epoch")[metric].mean()
        ax.plot(mean.index, mean.values, marker="o", label=str(key))
    if chance is not None:
        ax.axhline(chance, color="gray", linestyle="--", label="chance")
    ax.set_xlabel("epoch")
    ax.set_ylabel(f"{metric.replace('_', ' ')} (mean over runs)")
    ax.set_title(title or f"{metric.replace('_', ' ')} per epoch")
    ax.legend()
    ax.grid(alpha=0.3)
    return ax


def plot_accuracy_panels(summary, metric: str = "accuracy"):
    """A benchmark report's figure (:mod:`ferlib.experiments.report`), one panel per (dataset, task):
    each model's mean ``metric`` with its 95% interval."""
    from matplotlib.figure import Figure

    groups = list(summary.groupby(["dataset", "task", "profile"], sort=False, dropna=False))
    figure = Figure(figsize=(6.5, 0.5 + sum(1.2 + 0.3 * len(g) for _, g in groups)), layout="constrained")
    axes = figure.subplots(len(groups), 1, squeeze=False)[:, 0]
    for ax, ((dataset, task, profile), group) in zip(axes, groups, strict=True):
        y = list(range(len(group)))
        means = group[metric].to_numpy(dtype=float)
        low = group.get(f"{metric}_low")
        if low is not None and low.notna().any():
            errors = [means - group[f"{metric}_low"].to_numpy(float), group[f"{metric}_high"].to_numpy(float) - means]
            errors = [[0.0 if e != e else e for e in side] for side in errors]
        else:
            errors = None
        ax.errorbar(means, y, xerr=errors, fmt="o", capsize=3)
        ax.set_yticks(y, list(group["model"]))
        ax.invert_yaxis()
        ax.set_title(f"{dataset} / {task} ({profile})", fontsize=10)
        ax.set_xlabel(f"{metric.replace('_', ' ')} (mean over seeds, 95% interval)")
        ax.grid(alpha=0.3, axis="x")
    return figure


def plot_accuracy_vs_cost_panels(summary, cost: str, metric: str = "accuracy"):
    """A benchmark report's figure, one panel per (dataset, task): mean ``metric`` against ``cost``
    (``flops`` or ``latency_ms``)."""
    from matplotlib.figure import Figure

    groups = [(k, g.dropna(subset=[cost])) for k, g in summary.groupby(["dataset", "task", "profile"], sort=False)]
    groups = [(k, g) for k, g in groups if len(g)]
    figure = Figure(figsize=(6.5, 4 * max(1, len(groups))), layout="constrained")
    axes = figure.subplots(max(1, len(groups)), 1, squeeze=False)[:, 0]
    for ax, ((dataset, task, profile), group) in zip(axes, groups, strict=False):
        plot_accuracy_vs_cost(group, cost=cost, metric=metric, ax=ax, title=f"{dataset} / {task} ({profile})")
    return figure
