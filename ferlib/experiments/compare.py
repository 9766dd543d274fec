"""Compare models over seeds: train each, measure accuracy and cost, summarise with t intervals.

A chapter calls :func:`compare_models` once and gets one tidy record per (model, seed), then
:func:`summarize_runs` turns them into one row per model (mean and 95% interval over seeds).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence

from torch import nn

from ferlib.stats import mean_interval


def compare_models(
    names: Sequence[str],
    train,
    val,
    test,
    *,
    seeds: Mapping[str, Sequence[int]] | Sequence[int] = (0,),
    model_kwargs: Mapping[str, dict] | None = None,
    fit_kwargs: dict | None = None,
    device: str = "auto",
    latency_runs: int = 20,
    on_run: Callable[[dict], None] | None = None,
) -> tuple[list[dict], dict[tuple[str, int], nn.Module]]:
    """Train every model in ``names`` for each of its seeds; measure accuracy, macro-F1 and cost.

    Parameters
    ----------
    names : registered model names.
    train, val, test : datasets of ``(image, label[, meta])``; the input shape is read from ``train[0]``.
    seeds : the seeds of every model, or a mapping ``name -> seeds`` (cheap models may get more).
    model_kwargs : extra :func:`ferlib.create_model` arguments per name.
    fit_kwargs : arguments of :func:`ferlib.fit` shared by every run (``epochs``, ``lr``, ...).
    latency_runs : batch-1 forward passes timed per model (CPU latency if ``device`` is the CPU).
    on_run : called with each record as it is made (e.g. to print progress).

    Returns
    -------
    ``(records, models)``: one record per run (``model``, ``seed``, ``accuracy``, ``macro_f1``,
    ``balanced_accuracy``, ``train_time_s``, ``parameters``, ``flops``, ``latency_ms``) and the
    trained models keyed by ``(name, seed)``.
    """
    from ferlib.efficiency import model_cost
    from ferlib.engine.evaluate import evaluate
    from ferlib.engine.train import fit
    from ferlib.models.registry import create_model
    from ferlib.runtime import seed_everything

    model_kwargs = dict(model_kwargs or {})
    fit_kwargs = {"progress": False, **(fit_kwargs or {})}
    input_shape = tuple(train[0][0].shape)
    num_classes = getattr(train, "num_classes", None) or 7
    records, models = [], {}
    for name in names:
        name_seeds = seeds[name] if isinstance(seeds, Mapping) else seeds
        cost = None
        for seed in name_seeds:
            seed_everything(seed)
            options = model_kwargs.get(name, {})
            # [C, H, W] images or [T, C, H, W] clips: the channels are third from the end.
            model = create_model(name, num_classes=num_classes, in_channels=input_shape[-3], **options)
            history = fit(model, train, val, seed=seed, device=device, **fit_kwargs)
            result = evaluate(model, test, device=device, n_bootstrap=0)
            if cost is None:
                cost = model_cost(model.to("cpu"), input_shape, latency_runs)
            record = {
                "model": name,
                "seed": seed,
                "accuracy": result.accuracy,
                "macro_f1": result.macro_f1,
                "balanced_accuracy": result.balanced_accuracy,
                "train_time_s": history.train_time_s,
                **cost,
            }
            records.append(record)
            models[(name, seed)] = model.to("cpu").eval()
            if on_run is not None:
                on_run(record)
    return records, models


def summarize_runs(
    records,
    by: str = "model",
    metrics: Sequence[str] = ("accuracy", "macro_f1", "train_time_s"),
    constants: Sequence[str] = ("parameters", "flops", "latency_ms"),
    confidence: float = 0.95,
):
    """One row per ``by`` value: ``n`` runs, each metric's mean, ``_low`` and ``_high`` (t interval
    over the runs, NaN for a single run), and the ``constants`` (same for every run of a model)."""
    import pandas as pd

    frame = pd.DataFrame(list(records)) if not isinstance(records, pd.DataFrame) else records
    rows = []
    for key, group in frame.groupby(by, sort=False):
        row = {by: key, "n": len(group)}
        for metric in metrics:
            mean, low, high = mean_interval(group[metric], confidence)
            row[metric], row[f"{metric}_low"], row[f"{metric}_high"] = mean, low, high
        for column in constants:
            if column in group:
                row[column] = group[column].iloc[0]
        rows.append(row)
    return pd.DataFrame(rows)
