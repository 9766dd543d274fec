"""Benchmark reports from the results store: tidy CSV, Markdown tables and the standard plots.

:func:`write_report` reads every run of a :class:`ferlib.experiments.store.ResultsStore` and writes

* ``runs.csv``: one row per run (dataset, task, model, seed, profile, the stored metrics, cost);
* ``summary.csv`` and ``summary.md``: one row per (dataset, task, profile, model) with the mean
  and 95% t interval over seeds of accuracy, macro-F1 and training time, plus the model's cost
  (parameters, FLOPs, and the median over seeds of the batch-1 CPU latency);
* ``accuracy.png`` (accuracy per model per task with intervals) and, when cost was measured,
  ``accuracy_vs_flops.png`` and ``accuracy_vs_latency.png``.
"""

from __future__ import annotations

import math
from pathlib import Path

ID_COLUMNS = ("dataset", "task", "model", "seed", "profile", "report_split", "epochs")
GROUP_COLUMNS = ("dataset", "task", "profile", "report_split")
COST_COLUMNS = ("train_time_s", "samples_per_s", "parameters", "flops", "latency_ms")
SUMMARY_METRICS = ("accuracy", "macro_f1", "balanced_accuracy", "train_time_s")
SUMMARY_CONSTANTS = ("parameters", "flops", "latency_ms")


def runs_frame(records: list[dict]):
    """One tidy row per record: identity columns, the stored metrics, the cost, then provenance.

    ``accuracy``, ``macro_f1`` and ``balanced_accuracy`` repeat the report split's metrics (stored
    as ``test_accuracy``, ...) so that runs reported on different splits share columns.
    """
    import pandas as pd

    rows = []
    for record in records:
        config = record["config"]
        split = config.get("report_split", "test")
        row = {"run_id": record.get("id"), "config_hash": record.get("config_hash")}
        row.update({key: config.get(key) for key in ID_COLUMNS})
        row["report_split"] = split
        metrics = record.get("metrics") or {}
        for name in ("accuracy", "macro_f1", "balanced_accuracy"):
            row[name] = metrics.get(f"{split}_{name}", metrics.get(name))
        row.update({key: value for key, value in metrics.items() if key not in row})
        cost = record.get("cost") or {}
        row.update({key: cost.get(key) for key in COST_COLUMNS})
        row.update({key: value for key, value in cost.items() if key not in row})
        row.update(
            device=record.get("device"),
            created=record.get("created"),
            git_commit=record.get("git_commit"),
            ferlib_version=(record.get("versions") or {}).get("ferlib"),
        )
        rows.append(row)
    frame = pd.DataFrame(rows)
    if frame.empty:
        return pd.DataFrame(columns=["run_id", "config_hash", *ID_COLUMNS, "accuracy", "macro_f1", *COST_COLUMNS])
    return frame.sort_values([c for c in ("dataset", "task", "profile", "model", "seed")], kind="stable").reset_index(
        drop=True
    )


def summary_frame(runs):
    """Mean and 95% interval over seeds per (dataset, task, profile, report split, model)."""
    import pandas as pd

    from ferlib.experiments.compare import summarize_runs

    metrics = [m for m in SUMMARY_METRICS if m in runs and runs[m].notna().any()]
    constants = [c for c in SUMMARY_CONSTANTS if c in runs and runs[c].notna().any()]
    parts = []
    keys = list(GROUP_COLUMNS)
    for group_key, group in runs.groupby(keys, sort=False, dropna=False):
        if "latency_ms" in constants:  # timed once per run: the median over seeds damps a noisy first run
            group = group.assign(latency_ms=group.groupby("model")["latency_ms"].transform("median"))
        summary = summarize_runs(group, by="model", metrics=metrics, constants=constants)
        for column, value in zip(reversed(keys), reversed(group_key), strict=True):
            summary.insert(0, column, value)
        parts.append(summary)
    if not parts:
        return pd.DataFrame(columns=[*keys, "model", "n", *metrics, *constants])
    return pd.concat(parts, ignore_index=True)


def _fmt(value, digits: int = 4) -> str:
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return "-"
    return f"{value:.{digits}f}"


def _interval(row, metric: str, digits: int = 4) -> str:
    low, high = row.get(f"{metric}_low"), row.get(f"{metric}_high")
    text = _fmt(row.get(metric), digits)
    if low is None or (isinstance(low, float) and math.isnan(low)):
        return text
    return f"{text} [{_fmt(low, digits)}, {_fmt(high, digits)}]"


def summary_markdown(summary) -> str:
    """Markdown tables, one per (dataset, task, profile): mean [95% interval] over seeds."""
    lines = ["# Benchmark summary", "", "Mean over seeds with the 95% t interval in brackets (none for one seed).", ""]
    for group_key, group in summary.groupby(list(GROUP_COLUMNS), sort=False, dropna=False):
        dataset, task, profile, split = group_key
        lines += [f"## {dataset} / {task} (profile {profile}, {split} split)", ""]
        header = ["model", "seeds", "accuracy", "macro-F1", "train s"]
        extra = [
            (c, label) for c, label in (("parameters", "params"), ("flops", "MFLOPs"), ("latency_ms", "latency ms"))
        ]
        extra = [(c, label) for c, label in extra if c in group]
        lines.append("| " + " | ".join(header + [label for _, label in extra]) + " |")
        lines.append("|" + "---|" * (len(header) + len(extra)))
        for _, row in group.iterrows():
            cells = [str(row["model"]), str(int(row["n"]))]
            cells += [_interval(row, m) if m in group else "-" for m in ("accuracy", "macro_f1")]
            cells.append(_interval(row, "train_time_s", 1) if "train_time_s" in group else "-")
            for column, _ in extra:
                value = row[column]
                if column == "parameters":
                    cells.append("-" if value is None or value != value else f"{int(value):,}")
                elif column == "flops":
                    cells.append(_fmt(value / 1e6 if value == value else value, 2))
                else:
                    cells.append(_fmt(value, 2))
            lines.append("| " + " | ".join(cells) + " |")
        lines.append("")
    return "\n".join(lines)


def write_report(store, out: str | Path) -> list[Path]:
    """Write runs.csv, summary.csv, summary.md and the plots of ``store`` (a store or its path) to ``out``."""
    from ferlib.experiments.store import ResultsStore

    store = store if isinstance(store, ResultsStore) else ResultsStore(store)
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    runs = runs_frame(store.records())
    if runs.empty:
        raise ValueError(f"no runs stored in {store.path}")
    summary = summary_frame(runs)
    paths = [out / "runs.csv", out / "summary.csv", out / "summary.md"]
    runs.to_csv(paths[0], index=False)
    summary.to_csv(paths[1], index=False)
    paths[2].write_text(summary_markdown(summary) + "\n")
    from ferlib.viz import plot_accuracy_panels, plot_accuracy_vs_cost_panels

    figures = {"accuracy.png": plot_accuracy_panels(summary)}
    for cost, filename in (("flops", "accuracy_vs_flops.png"), ("latency_ms", "accuracy_vs_latency.png")):
        if cost in summary and summary[cost].notna().any():
            figures[filename] = plot_accuracy_vs_cost_panels(summary, cost)
    for filename, figure in figures.items():
        figure.savefig(out / filename, dpi=120)
        paths.append(out / filename)
    return paths
