"""Benchmark grids: a YAML spec -> an ordered list of run configs -> the results store.

A grid is ``datasets x tasks x models x seeds x profiles``; ``ferlib bench GRID.yaml`` runs its
configs in a stable order and stores each record as it completes, skipping configs already
stored (keyed by the config's hash), so a killed grid restarts where it stopped and
``--shard i/n`` splits it among independent jobs whose stores ``ferlib bench merge`` joins.

Spec keys (only ``models`` is required)::

    datasets: [synthfer]            # names, or {name: fer2013, data_dir: data/fer2013}
    tasks: [static, video-basic]    # SynthFER tasks (a real dataset runs the static task only)
    models: ["*"]                   # names, globs (cnn_*), kinds (static, video); "*" = every
                                    # model whose kind fits each task (static task: static models)
    seeds: [0, 1, 2]                # default: the profile's seeds
    profile: quick                  # or a list of profiles
    fit: {epochs: 2, lr: 0.001}     # ferlib.experiments.run.FIT_DEFAULTS keys
    model_options: {vit_tiny: {depth: 2}}
    data_options: {image_size: 32}  # dataset keywords (image_size, frames, preset, ...)
    sizes: {train: 32, val: 16, test: 16}  # sample counts overriding the profile's
    latency_runs: 20                # batch-1 CPU forward passes timed per run (0: skip cost)
"""

from __future__ import annotations

import fnmatch
from collections.abc import Callable, Iterable
from pathlib import Path

from ferlib.errors import ConfigError, GridError
from ferlib.experiments.run import FIT_DEFAULTS, SIZE_KEYS

GRID_KEYS = (
    "datasets",
    "tasks",
    "models",
    "seeds",
    "profile",
    "fit",
    "model_options",
    "data_options",
    "sizes",
    "latency_runs",
)
KINDS = ("static", "video")


def _task_kind(task: str) -> str:
    return "static" if task == "static" else "video"


def _as_list(spec: dict, key: str, default) -> list:
    value = spec.get(key, default)
    if value is None:
        value = default
    values = list(value) if isinstance(value, (list, tuple)) else [value]
    if not values:
        raise GridError(f"grid key {key!r} is empty")
    return values


def _mapping(spec: dict, key: str) -> dict:
    value = spec.get(key) or {}
    if not isinstance(value, dict):
        raise GridError(f"grid key {key!r} must be a mapping, got {value!r}")
    return dict(value)


def load_grid(path: str | Path) -> dict:
    """Read a grid spec from YAML; a missing file or malformed YAML raises a one-line error."""
    import yaml

    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"no grid file at {path}")
    try:
        spec = yaml.safe_load(path.read_text())
    except yaml.YAMLError as error:
        where = getattr(error, "problem_mark", None)
        line = f" at line {where.line + 1}" if where is not None else ""
        raise GridError(f"{path} is not valid YAML{line}: {getattr(error, 'problem', None) or error}") from None
    if not isinstance(spec, dict):
        raise GridError(f"{path} must hold a YAML mapping with keys {', '.join(GRID_KEYS)}")
    return spec


def _datasets(spec: dict) -> list[tuple[str, str | None]]:
    from ferlib.data.registry import list_datasets

    known = list_datasets()
    out = []
    for entry in _as_list(spec, "datasets", ["synthfer"]):
        if isinstance(entry, dict):
            extra = set(entry) - {"name", "data_dir"}
            if "name" not in entry or extra:
                raise GridError(f"datasets entry {entry!r} must be a name or a mapping with 'name' and 'data_dir'")
            name, data_dir = entry["name"], entry.get("data_dir")
        else:
            name, data_dir = entry, None
        if not isinstance(name, str) or name.lower() not in known:
            raise GridError(f"unknown dataset {name!r} in datasets: expected one of {', '.join(known)}")
        out.append((name, None if data_dir is None else str(data_dir)))
    return out


def _models_for_task(entries: list, task: str, registry: dict[str, str]) -> tuple[list[str], set]:
    """Model names of ``entries`` for ``task`` (in entry order, then sorted), and the entries used."""
    kind = _task_kind(task)
    names, used = [], set()
    for entry in entries:
        if entry in KINDS:
            matched = sorted(name for name, k in registry.items() if k == entry and k == kind)
        elif any(char in entry for char in "*?["):
            matched = sorted(name for name, k in registry.items() if fnmatch.fnmatch(name, entry) and k == kind)
        else:
            if registry[entry] != kind:
                raise GridError(
                    f"model {entry!r} is a {registry[entry]} model and does not fit task {task!r} "
                    f"(it needs a {kind} model)"
                )
            matched = [entry]
        if matched:
            used.add(entry)
        names += [name for name in matched if name not in names]
    return names, used


def expand_grid(spec: dict, *, notes: list[str] | None = None) -> list[dict]:
    """The run configs of a grid spec, in a stable order (datasets, tasks, models, seeds, profiles).

    Raises :class:`GridError` (one line naming the key and value) for an unknown key, dataset,
    task, model, profile or fit option, a model entry that matches no model fitting its tasks,
    or a model named explicitly whose kind does not fit a task. ``notes`` collects tasks that
    get no model (e.g. a video task while no video model is registered).
    """
    from ferlib.config import PROFILES, get_profile
    from ferlib.data.synth import TASKS
    from ferlib.models.registry import check_option_names, list_models, model_entry

    if not isinstance(spec, dict):
        raise GridError(f"a grid spec must be a mapping with keys {', '.join(GRID_KEYS)}")
    unknown = [key for key in spec if key not in GRID_KEYS]
    if unknown:
        raise GridError(f"unknown grid key {unknown[0]!r}: expected one of {', '.join(GRID_KEYS)}")
    if "models" not in spec:
        raise GridError("the grid has no 'models' key (names, globs, 'static', 'video' or '*')")
    datasets = _datasets(spec)
    tasks = _as_list(spec, "tasks", ["static"])
    for task in tasks:
        if task not in TASKS:
            raise GridError(f"unknown task {task!r} in tasks: expected one of {', '.join(TASKS)}")
    profiles = _as_list(spec, "profile", ["quick"])
    for profile in profiles:
        if profile not in PROFILES:
            raise GridError(f"unknown profile {profile!r}: expected one of {', '.join(PROFILES)}")
    registry = {name: model_entry(name).kind for name in list_models()}
    entries = _as_list(spec, "models", None)
    for entry in entries:
        if not isinstance(entry, str):
            raise GridError(f"models entry {entry!r} must be a model name, a glob, 'static', 'video' or '*'")
        if entry not in KINDS and not any(c in entry for c in "*?[") and entry not in registry:
            raise GridError(f"unknown model {entry!r} in models: expected one of {', '.join(registry)}")
    seeds = spec.get("seeds")
    if seeds is not None:
        seeds = _as_list(spec, "seeds", None)
        for seed in seeds:
            if not isinstance(seed, int) or isinstance(seed, bool) or seed < 0:
                raise GridError(f"seeds must be non-negative integers, got {seed!r}")
    fit = _mapping(spec, "fit")
    for key in fit:
        if key not in FIT_DEFAULTS:
            raise GridError(f"unknown fit option {key!r}: expected one of {', '.join(FIT_DEFAULTS)}")
    model_options = _mapping(spec, "model_options")
    for name, options in model_options.items():
        if name not in registry:
            raise GridError(f"unknown model {name!r} in model_options: expected one of {', '.join(registry)}")
        if not isinstance(options, dict):
            raise GridError(f"model_options of {name!r} must be a mapping, got {options!r}")
        try:
            check_option_names(name, options)
        except ConfigError as error:
            raise GridError(f"model_options of {name!r}: {error}") from None
    data_options = _mapping(spec, "data_options")
    sizes = _mapping(spec, "sizes")
    for key, value in sizes.items():
        if key not in SIZE_KEYS:
            raise GridError(f"unknown sizes key {key!r}: expected one of {', '.join(SIZE_KEYS)}")
        if not isinstance(value, int) or isinstance(value, bool) or value < 1:
            raise GridError(f"sizes.{key} must be a positive integer, got {value!r}")
    latency_runs = spec.get("latency_runs", 20)
    if not isinstance(latency_runs, int) or isinstance(latency_runs, bool) or latency_runs < 0:
        raise GridError(f"latency_runs must be a non-negative integer, got {latency_runs!r}")

    configs, used = [], set()
    for dataset, data_dir in datasets:
        dataset_tasks = tasks if dataset.lower() == "synthfer" else [t for t in tasks if t == "static"]
        for task in dataset_tasks:
            names, task_used = _models_for_task(entries, task, registry)
            used |= task_used
            if not names and notes is not None:
                notes.append(f"task {task!r} of {dataset} has no {_task_kind(task)} model among {entries}")
            for name in names:
                for profile in profiles:
                    for seed in seeds if seeds is not None else get_profile(profile).seeds:
                        configs.append(
                            {
                                "command": "bench",
                                "dataset": dataset,
                                "data_dir": data_dir,
                                "task": task,
                                "model": name,
                                "model_options": dict(model_options.get(name, {})),
                                "profile": profile,
                                "image_size": None,
                                "data_options": data_options,
                                "sizes": sizes,
                                **FIT_DEFAULTS,
                                **fit,
                                "latency_runs": latency_runs,
                                "seed": int(seed),
                            }
                        )
    unused = [entry for entry in entries if entry not in used]
    if unused:
        raise GridError(f"models entry {unused[0]!r} matches no registered model that fits tasks {tasks}")
    return configs


def parse_shard(text: str) -> tuple[int, int]:
    """``"2/4"`` -> ``(2, 4)``: shard numbers are 1-based, ``1 <= i <= n``."""
    index, sep, count = str(text).partition("/")
    try:
        i, n = int(index), int(count)
    except ValueError:
        i = n = 0
    if not sep or n < 1:
        raise ValueError(f"--shard expects I/N with 1 <= I <= N (1-based), got {text!r}")
    if not 1 <= i <= n:
        hint = " (shards are 1-based: for a 0-based Slurm array use $((SLURM_ARRAY_TASK_ID + 1)))" if i == 0 else ""
        raise ValueError(f"--shard {text}: I must be between 1 and {n}{hint}")
    return i, n


def shard(configs: list, i: int, n: int) -> list[tuple[int, dict]]:
    """``(index, config)`` of the configs in shard ``i`` of ``n`` (1-based): index mod n == i - 1."""
    return [(index, config) for index, config in enumerate(configs) if index % n == i - 1]


def describe(config: dict) -> str:
    return f"{config['model']} {config['task']} seed {config['seed']}"


def run_grid(
    configs: Iterable[tuple[int, dict]] | list[dict],
    store,
    *,
    runner: Callable[[dict], dict] | None = None,
    device: str = "auto",
    force: bool = False,
    total: int | None = None,
    log: Callable[[str], None] = print,
) -> dict[str, int]:
    """Run each config not in ``store`` (all of them with ``force``), storing each record as it completes.

    ``runner(config)`` returns ``{"metrics", "cost", "device"}`` (default: :func:`run_experiment`
    with the config's ``latency_runs``). Progress lines read ``[k/N] model task seed S: done``
    (or ``skipped``). Returns counts of ``done`` and ``skipped`` runs.
    """
    items = [item if isinstance(item, tuple) else (k, item) for k, item in enumerate(configs)]
    total = total if total is not None else len(items)

    def default_runner(config: dict) -> dict:
        from ferlib.experiments import run as experiment

        run = {k: v for k, v in config.items() if k != "latency_runs"}
        return experiment.run_experiment(run, device=device, latency_runs=config.get("latency_runs", 20))

    runner = runner or default_runner
    counts = {"done": 0, "skipped": 0}
    for index, config in items:
        prefix = f"[{index + 1}/{total}] {describe(config)}"
        if not force and store.has(config):
            counts["skipped"] += 1
            log(f"{prefix}: skipped (stored)")
            continue
        result = runner(config)
        store.add(
            config, result["metrics"], cost=result.get("cost"), name="bench", device=result.get("device"), force=True
        )
        counts["done"] += 1
        accuracy = next((v for k, v in result["metrics"].items() if k.endswith("_accuracy")), None)
        log(f"{prefix}: done" + (f" (accuracy {accuracy:.4f})" if isinstance(accuracy, float) else ""))
    return counts
