"""Recorded runs on real data: the small JSON files in ``book/results/`` that the book tables.

A record is made from the output folder of ``ferlib train`` (its ``metrics.json`` and
``history.csv``) by :func:`fer2013_record`, so every number in it comes from the run; only the
hardware description and a one-line note are written by hand. From the command line::

    python -m ferlib.results runs/fer2013-cpu book/results/fer2013_vgg_fer_36ep_cpu.json \\
        --hardware "this project's 2-core CPU machine" --note "the 60-minute CPU recipe"

:func:`recorded_runs` reads them back, best first, for the chapters on real data,
:func:`seed_groups` gathers the runs of one recipe recorded with several seeds, and
:func:`augmentation_label` names each run's augmentation in their tables.
"""

from __future__ import annotations

import argparse
import datetime
import json
import re
import shlex
from pathlib import Path

from ferlib.errors import FerlibError

#: FER2013's official evaluation splits (the ``usage`` of their images) and their record keys.
FER2013_SPLITS = {"PublicTest": "public_test", "PrivateTest": "private_test"}


def _reported_split(run: dict, metrics_file: Path) -> str:
    """Which official FER2013 split the run reported on, from the ``usage`` of the images it
    evaluated (``splits.report`` in ``metrics.json``): the loader's split names alone do not
    say, since a copy without PrivateTest reports PublicTest as ``test``."""
    report = (run.get("splits") or {}).get("report") or {}
    usage = report.get("usage")
    if not usage:
        raise FerlibError(f"{metrics_file} does not say which images the run reported on (no splits.report.usage; "
                          "it predates ferlib's split provenance): train again to record it")
    if set(usage) - set(FER2013_SPLITS) or len(usage) != 1:
        counts = ", ".join(f"{count} {name}" for name, count in sorted(usage.items()))
        raise FerlibError(f"{metrics_file}: the reported split holds {counts} images, not one of FER2013 PublicTest "
                          "or PrivateTest: a record reports an official test split")
    return next(iter(usage))


def _selection(config: dict, run: dict, reported: str) -> str:
    """The split the checkpoint was selected on, in words (``splits.selection`` was a bare size,
    without its protocol, in the first runs that recorded splits)."""
    splits = run.get("splits") or {}
    selection = splits.get("selection") or {}
    selection = {"n": selection} if isinstance(selection, int) else selection
    size = f" ({selection['n']:,} images)" if "n" in selection else ""
    if config.get("val_split") == "holdout":
        return f"a stratified {config.get('holdout_fraction', 0.1):.0%} hold-out of the train split{size}"
    if selection.get("protocol"):
        return f"the loader's 'val' split{size}, {selection['protocol'].split(': ', 1)[-1]}"
    if "has no test split" in ((splits.get("report") or {}).get("protocol") or ""):
        return f"the loader's 'val' split{size}, a stratified hold-out of Training (the copy has no PrivateTest)"
    standard = ", PublicTest (the standard protocol)" if reported == "PrivateTest" else ""
    return f"the loader's 'val' split{size}{standard}"


def _anonymise_command(command: str | None, config: dict) -> str | None:
    """The run's command with its data folder replaced by ``DATA_DIR`` and local-only flags
    (``--results``, ``--no-progress``, ``--force``) dropped, so that it can be pasted elsewhere."""
    if not command:
        return None
    words, out = iter(shlex.split(command)), []
    for word in words:
        if word == "--results":
            next(words, None)  # and its value
        elif word not in ("--no-progress", "--force"):
            out.append(word)
    text = shlex.join(out)
    data_dir = config.get("data_dir")
    if data_dir:
        text = text.replace(shlex.quote(str(data_dir)), "DATA_DIR")
    return text


def fer2013_record(run_dir: str | Path, *, hardware: str, note: str, wall_time_s: float | None = None,
                   date: str | None = None) -> dict:
    """The ``book/results/`` record of one ``ferlib train --dataset fer2013`` run.

    ``wall_time_s`` defaults to the time ``ferlib train`` measured itself; pass the time of the
    whole process when you measured it outside. The reported split is named from the usage
    of the images the run evaluated (see :func:`_reported_split`), so a record can only say
    PublicTest or PrivateTest when the run reported exactly that.
    """
    run_dir = Path(run_dir)
    metrics_file, history_file = run_dir / "metrics.json", run_dir / "history.csv"
    for required in (metrics_file, history_file):
        if not required.is_file():
            raise FerlibError(f"{required} not found: {run_dir} is not the output folder of a finished `ferlib train`")
    import pandas as pd

    run = json.loads(metrics_file.read_text())
    config, metrics = dict(run["config"]), run["metrics"]
    if config.get("dataset") != "fer2013":
        raise FerlibError(f"{metrics_file}: the run is on {config.get('dataset')!r}, not fer2013")
    split = config.get("report_split")
    reported = _reported_split(run, metrics_file)
    key = FER2013_SPLITS[reported]
    selected = config.get("val_split") != "none"
    if selected:
        protocol = f"checkpoint selected on {_selection(config, run, reported)}"
    else:
        train_n = ((run.get("splits") or {}).get("train") or {}).get("n")
        protocol = ("no checkpoint selection: trained on the whole official train split"
                    f"{f' ({train_n:,} images)' if train_n else ''} and the last epoch reported")
    protocol += f"; reported on {reported} (the loader's {split!r} split)"
    crop, tta = config.get("crop"), config.get("tta")
    if crop is not None:
        protocol += f"; trained on random crops of {crop:g} of the side, " + (
            "selected on centre crops, " if selected else "") + (
            "reported on ten crops (five crops and their mirrors)" if tta else "evaluated on centre crops"
        )
    elif tta:
        protocol += "; horizontal-flip test-time augmentation"
    command = _anonymise_command(run.get("command"), config)
    config["data_dir"] = "DATA_DIR"
    return {
        "dataset": "FER2013",
        "protocol": protocol,
        "reported_split": f"FER2013 {reported}",
        f"{key}_accuracy": metrics[f"{split}_accuracy"],
        f"{key}_accuracy_ci95": [metrics[f"{split}_accuracy_ci_low"], metrics[f"{split}_accuracy_ci_high"]],
        f"{key}_balanced_accuracy": metrics[f"{split}_balanced_accuracy"],
        f"{key}_macro_f1": metrics[f"{split}_macro_f1"],
        "hardware": hardware,
        "wall_time_s": round(float(wall_time_s if wall_time_s is not None else run["wall_time_s"]), 1),
        "note": note,
        "command": command,
        "date": date or datetime.date.today().isoformat(),
        "config": config,
        "metrics": metrics,
        "cost": run.get("cost", {}),
        "splits": run.get("splits", {}),
        "environment": run.get("environment", {}),
        "history": pd.read_csv(history_file).to_dict(orient="records"),
    }


def augmentation_label(config: dict) -> str:
    """A run's training augmentation in a few words, for tables and legends: the per-image
    preset, the crop fraction and the batch policy (``"flip, 0.8333 crops, affine+random_erasing"``)."""
    parts = [config.get("augment") or "none"]
    if config.get("crop"):
        parts.append(f"{config['crop']:g} crops")
    if config.get("batch_augment"):
        parts.append(config["batch_augment"])
    return ", ".join(parts)


def recorded_runs(pattern: str = "fer2013_*.json", results_dir: str | Path | None = None,
                  metric: str = "public_test_accuracy") -> list[dict]:
    """The records matching ``pattern`` that carry ``metric``, best first, each with its file's
    name under ``"record"`` (``"fer2013_vgg_fer_512_crop_50ep_cpu"``), which tells runs apart.

    Without ``results_dir`` it looks for ``results/`` then ``book/results/`` under the current
    folder (a chapter runs in ``book/``, a script at the repository root) and returns ``[]`` when
    neither exists, as in a notebook opened alone in Colab.
    """
    if results_dir is None:
        results_dir = next((path for path in (Path("results"), Path("book/results")) if path.is_dir()), None)
        if results_dir is None:
            return []
    results_dir = Path(results_dir)
    if not results_dir.is_dir():
        raise FerlibError(f"results folder {results_dir} not found")
    runs = []
    for file in sorted(results_dir.glob(pattern)):
        try:
            record = json.loads(file.read_text())
        except json.JSONDecodeError as error:
            raise FerlibError(f"{file} is not valid JSON ({error})") from error
        if metric in record:
            runs.append({**record, "record": file.stem})
    return sorted(runs, key=lambda record: -record[metric])


def seed_groups(runs: list[dict], metric: str = "public_test_accuracy") -> list[list[dict]]:
    """The runs of one recipe recorded with more than one seed: groups of records whose configs
    are equal but for ``seed``. Each group is best first, and the groups are ordered by their
    best run, so the first group holds the best run if that run's recipe has several seeds.

    A chapter states a recipe's spread (and mean) over seeds from these, rather than its best run
    alone: the best of several seeds is an optimistic estimate of what the recipe gives.
    """
    groups: dict[str, list[dict]] = {}
    for run in sorted(runs, key=lambda record: -record[metric]):
        recipe = json.dumps({key: value for key, value in run["config"].items() if key != "seed"}, sort_keys=True)
        groups.setdefault(recipe, []).append(run)
    return [group for group in groups.values() if len(group) > 1]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m ferlib.results",
                                     description="Write the book/results/ record of a `ferlib train` FER2013 run.")
    parser.add_argument("run_dir", help="the --out folder of `ferlib train`")
    parser.add_argument("out", help="the JSON file to write, e.g. book/results/fer2013_vgg_fer_36ep_cpu.json")
    parser.add_argument("--hardware", required=True, help="the machine, in words (CPU or GPU model, cores)")
    parser.add_argument("--note", required=True, help="one line on what the run is")
    parser.add_argument("--wall-time-s", type=float, default=None,
                        help="the whole process's wall time, when measured outside (default: the run's own)")
    parser.add_argument("--date", default=None, help="ISO date of the run (default: today)")
    args = parser.parse_args(argv)
    out = Path(args.out)
    if not re.fullmatch(r"fer2013_[\w.-]+\.json", out.name):
        parser.error(f"{out.name}: the chapters read files named fer2013_<run>.json")
    record = fer2013_record(args.run_dir, hardware=args.hardware, note=args.note, wall_time_s=args.wall_time_s,
                            date=args.date)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(record, indent=1) + "\n")
    key = FER2013_SPLITS[record["reported_split"].removeprefix("FER2013 ")]
    print(f"wrote {out}: {record['reported_split']} accuracy {record[f'{key}_accuracy']:.4f}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
