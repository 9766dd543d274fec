"""Plot helpers used by the chapters (ferlib.viz): they draw what they are given and check their input."""

from __future__ import annotations

import matplotlib.pyplot as plt
import numpy as np
import pandas as pd
import pytest

from ferlib.viz import plot_accuracy_vs_cost, plot_map_grid, plot_mean_curves


def test_map_grid_overlays_only_the_rows_with_maps():
    images = np.random.default_rng(0).random((2, 3, 8, 8))
    axes = plot_map_grid(images, [None, np.ones((3, 8, 8))], column_labels=["a", "b", "c"], row_labels=["x", "y"])
    assert axes.shape == (2, 3)
    assert len(axes[0, 0].images) == 1 and len(axes[1, 2].images) == 2
    assert axes[0, 1].get_title() == "b" and axes[1, 0].get_ylabel() == "y"
    with pytest.raises(ValueError):
        plot_map_grid(images, [None])
    plt.close("all")


def test_accuracy_vs_cost_labels_every_model_on_a_log_axis():
    summary = pd.DataFrame({"model": ["a", "b"], "flops": [2e6, 4e8], "accuracy": [0.5, 0.7]})
    ax = plot_accuracy_vs_cost(summary)
    assert ax.get_xscale() == "log"
    assert [text.get_text() for text in ax.texts] == ["a", "b"]
    assert "MFLOPs" in ax.get_xlabel()
    plt.close("all")


def test_mean_curves_average_over_runs():
    curves = pd.DataFrame({"epoch": [1, 2, 1, 2], "variant": ["v"] * 4, "val_accuracy": [0.2, 0.4, 0.4, 0.6]})
    ax = plot_mean_curves(curves, by="variant", chance=1 / 7)
    (line, _chance) = ax.get_lines()
    assert np.allclose(line.get_ydata(), [0.3, 0.5])
    assert [text.get_text() for text in ax.get_legend().get_texts()] == ["v", "chance"]
    plt.close("all")
