"""Experiments from configs: one run, multi-seed comparisons, grids, the results store, reports."""
