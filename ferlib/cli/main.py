"""The ``ferlib`` command: ``info``, ``train``, ``evaluate``, ``runs``, ``models``, ``synth``; ``bench``,
``predict``, ``export`` and ``book`` come from their own modules.

An error from bad input ends as ``ferlib COMMAND: error: ...`` with the error's whole message (a
layout it expected, the fix) and no traceback (``ferlib --debug ...`` shows it), and exit code 2.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from pathlib import Path

from ferlib.cli._common import Parser, add_command, add_data_arguments, format_examples, positive_int
from ferlib.errors import FerlibError
from ferlib.experiments.run import VAL_SPLITS


def build_parser() -> argparse.ArgumentParser:
    parser = Parser(
        prog="ferlib",
        description="FER Book's library: train, evaluate and compare facial expression recognition models.",
        epilog=format_examples(
            """
            ferlib info
            ferlib train --dataset synthfer --model cnn_small --profile quick --out runs/demo
            ferlib evaluate runs/demo/best.ckpt --dataset synthfer --split test
            ferlib runs
            """
        ),
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("--debug", action="store_true", help="on an error, show the traceback instead of the message")
    commands = parser.add_subparsers(dest="command", metavar="COMMAND", parser_class=Parser)

    def command(name: str, help_text: str, examples: str) -> argparse.ArgumentParser:
        return add_command(commands, name, help_text, examples)

    info = command("info", "Print versions, the device and thread counts.", "ferlib info\nferlib info --json")
    info.add_argument("--json", action="store_true", help="print JSON instead of lines")

    train = command(
        "train",
        "Train a model and write its checkpoints, history and test metrics.",
        """
        ferlib train --dataset synthfer --model cnn_small --profile quick --out runs/demo
        ferlib train --dataset fer2013 --data-dir data/fer2013 --model vgg_fer --profile full \\
            --epochs 30 --schedule onecycle --augment flip_shift --tta --out runs/fer2013
        ferlib train --dataset ckplus --data-dir data/CK+ --folds 10 --fold 1 --out runs/ckplus/fold1
        torchrun --nproc_per_node 2 -m ferlib train --model cnn_small --device cpu --out runs/ddp
        """,
    )
    add_data_arguments(train)
    train.add_argument("--model", default="cnn_small", help="registered model name (see 'ferlib models')")
    train.add_argument(
        "--model-option",
        action="append",
        default=[],
        metavar="KEY=VALUE",
        help="keyword argument of the model, repeatable (e.g. --model-option widths=[64,128,256,512])",
    )
    train.add_argument("--out", default="runs/latest", help="output folder (default runs/latest)")
    train.add_argument("--epochs", type=int, default=None, help="default: the profile's")
    train.add_argument("--batch-size", type=int, default=64)
    train.add_argument("--lr", type=float, default=1e-3)
    train.add_argument("--weight-decay", type=float, default=1e-4)
    train.add_argument("--optimizer", default="adamw", choices=("adamw", "sgd"))
    train.add_argument("--schedule", default="cosine", choices=("cosine", "onecycle", "constant"))
    train.add_argument("--label-smoothing", type=float, default=0.0)
    train.add_argument("--class-weights", default=None, choices=("balanced",))
    train.add_argument("--grad-clip", type=float, default=None)
    train.add_argument("--augment", default="none", help="train-time augmentation preset (default none)")
    train.add_argument(
        "--batch-augment",
        default=None,
        metavar="POLICY",
        help="augmentation of each training batch, after --augment and --crop: a batch policy of ferlib.data.augment "
        "(trivialaugment, randaugment, random_erasing, occlusion, affine) or names joined by '+'",
    )
    train.add_argument("--early-stopping", type=int, default=None, help="patience in epochs")
    train.add_argument(
        "--val-split",
        default="val",
        choices=VAL_SPLITS,
        help="select checkpoints on the dataset's val split, or on a stratified holdout of train; none: train on "
        "the whole official train split and report the last epoch (no selection)",
    )
    train.add_argument("--holdout-fraction", type=float, default=0.1)
    train.add_argument(
        "--report-split",
        default="test",
        help="split whose metrics are reported (default test); one the loader carves out of train is refused",
    )
    train.add_argument(
        "--tta", action="store_true", help="horizontal-flip test-time augmentation (with --crop: ten crops)"
    )
    train.add_argument(
        "--crop",
        type=float,
        default=None,
        metavar="FRACTION",
        help="train on random crops of FRACTION of the image side (0.8333: 40x40 of 48x48) and evaluate on the "
        "centre crop",
    )
    train.add_argument(
        "--mixed-precision",
        default="auto",
        choices=("auto", "no", "bf16", "fp16"),
        help="auto (default): bf16/fp16 on CUDA, none on CPU; bf16 also on the CPU",
    )
    train.add_argument("--channels-last", action="store_true", help="channels-last memory layout (faster convolutions)")
    train.add_argument(
        "--folds", type=int, default=None, metavar="K", help="subject-independent K-fold cross-validation (with --fold)"
    )
    train.add_argument(
        "--fold", type=int, default=None, metavar="I", help="test on fold I (1..K), select on a subject hold-out"
    )
    train.add_argument("--num-workers", type=int, default=0)
    train.add_argument("--seed", type=int, default=0)
    train.add_argument("--results", default="results/ferlib.sqlite", help="results database")
    train.add_argument(
        "--resume", action="store_true", help="continue from OUT/last.ckpt (a run of the same configuration)"
    )
    train.add_argument(
        "--force",
        action="store_true",
        help="train even if this config is stored; move aside a run of another configuration in OUT",
    )
    train.add_argument("--no-progress", action="store_true")

    evaluate = command(
        "evaluate",
        "Evaluate a checkpoint on a dataset split and print its metrics with 95% intervals.",
        """
        ferlib evaluate runs/demo/best.ckpt --dataset synthfer --split test
        ferlib evaluate runs/fer2013/best.ckpt --dataset fer2013 --data-dir data/fer2013 --split val --tta --json
        """,
    )
    evaluate.add_argument("checkpoint")
    add_data_arguments(evaluate)
    evaluate.add_argument("--split", default="test")
    evaluate.add_argument(
        "--tta",
        action="store_true",
        help="horizontal-flip test-time augmentation (ten crops for a model trained with --crop)",
    )
    evaluate.add_argument("--json", action="store_true", help="print the summary as JSON")

    runs = command(
        "runs",
        "List the runs stored in the results database.",
        "ferlib runs\nferlib runs --results results/ferlib.sqlite --format csv > runs.csv",
    )
    runs.add_argument("--results", default="results/ferlib.sqlite")
    runs.add_argument("--format", default="table", choices=("table", "csv", "json"))

    models = command("models", "List the registered models.", "ferlib models\nferlib models --kind video")
    models.add_argument("--kind", default=None, choices=("static", "video"))

    synth = command(
        "synth",
        "Write a SynthFER set as PNG class folders (or frame folders) plus a metadata CSV.",
        """
        ferlib synth --out data/synthfer --size 700
        ferlib synth --out data/synth-video --task video-basic --size 70 --split test
        """,
    )
    synth.add_argument("--out", required=True, help="output folder")
    synth.add_argument("--task", default="static")
    synth.add_argument("--split", default="train")
    synth.add_argument("--size", type=int, default=700)
    synth.add_argument("--seed", type=int, default=0)
    synth.add_argument("--preset", default="default")
    synth.add_argument("--image-size", type=positive_int, default=48)

    from ferlib.cli.bench import add_bench_parser

    add_bench_parser(commands)  # bench run|merge|report

    from ferlib.cli.deploy import add_deploy_parsers

    add_deploy_parsers(commands)  # predict, export

    from ferlib.cli.book import add_book_parser

    add_book_parser(commands)  # book run
    return parser


def _model_options(pairs: list[str]) -> dict:
    """``["width=64", "dropout=0.3"]`` -> ``{"width": 64, "dropout": 0.3}`` (values read as YAML)."""
    import yaml

    options = {}
    for pair in pairs:
        key, sep, value = pair.partition("=")
        if not sep or not key.strip():
            raise ValueError(f"--model-option expects KEY=VALUE, got {pair!r}")
        try:
            options[key.strip()] = yaml.safe_load(value)
        except yaml.YAMLError as error:
            raise ValueError(f"--model-option {pair!r}: the value is not valid YAML") from error
    return options


def _dataset_options(args) -> dict:
    return {"image_size": args.image_size} if args.image_size else {}


def _cmd_info(args) -> int:
    from ferlib.runtime import environment_info

    info = environment_info("auto")
    if args.json:
        print(json.dumps(info, indent=2))
    else:
        for key, value in info.items():
            print(f"{key:>15}: {value}")
    return 0


def _cmd_train(args) -> int:
    from ferlib.config import get_profile
    from ferlib.experiments.folders import claim_run_folder
    from ferlib.experiments.store import ResultsStore
    from ferlib.models.registry import check_option_names

    started = time.perf_counter()
    profile = get_profile(args.profile)
    check_option_names(args.model, _model_options(args.model_option))  # before any data loads
    epochs = args.epochs or profile.epochs
    out = Path(args.out)
    config = {
        "command": "train",
        "dataset": args.dataset,
        "data_dir": args.data_dir,
        "task": args.task,
        "model": args.model,
        "model_options": _model_options(args.model_option),
        "profile": args.profile,
        "epochs": epochs,
        "batch_size": args.batch_size,
        "lr": args.lr,
        "weight_decay": args.weight_decay,
        "optimizer": args.optimizer,
        "schedule": args.schedule,
        "label_smoothing": args.label_smoothing,
        "class_weights": args.class_weights,
        "grad_clip": args.grad_clip,
        "augment": args.augment,
        "val_split": args.val_split,
        "holdout_fraction": args.holdout_fraction,
        "report_split": args.report_split,
        "tta": args.tta,
        "image_size": args.image_size,
        "seed": args.seed,
    }
    if args.folds is not None or args.fold is not None:  # only then, so stored configs keep their identity
        config.update(folds=args.folds, fold=args.fold)
    if args.mixed_precision != "auto":
        config["mixed_precision"] = args.mixed_precision
    if args.channels_last:
        config["channels_last"] = True
    if args.crop is not None:
        config["crop"] = args.crop
    if args.batch_augment is not None:
        config["batch_augment"] = args.batch_augment
    if os.environ.get("RANK", "0") == "0":  # under torchrun, the main process claims the folder
        moved = claim_run_folder(out, config, force=args.force)
        if moved is not None:
            print(f"moved the run of another configuration that was in {out} to {moved}")
    store = ResultsStore(args.results)
    stored = store.get(config)
    if stored is not None and not args.force and (out / "best.ckpt").exists():
        print(f"already stored as run {stored['id']} with {out}/best.ckpt; use --force to train again")
        return 0

    from ferlib.experiments.run import run_experiment

    run = run_experiment(
        {**config, "early_stopping": args.early_stopping},
        device=args.device,
        checkpoint_dir=out,
        resume=args.resume,
        num_workers=args.num_workers,
        progress=not args.no_progress,
    )
    if not run["is_main"]:  # another process of a torchrun/accelerate group
        return 0
    result, history, metrics, cost = run["result"], run["history"], run["metrics"], run["cost"]
    environment = run["environment"]
    history.to_frame().to_csv(out / "history.csv", index=False)
    report_json = {
        "command": "ferlib " + " ".join(sys.argv[1:]) if sys.argv and "ferlib" in sys.argv[0] else None,
        "wall_time_s": time.perf_counter() - started,
        "config": config,
        "metrics": metrics,
        "splits": run["splits"],
        "cost": cost,
        "environment": environment,
    }
    (out / "metrics.json").write_text(json.dumps(report_json, indent=2, default=str) + "\n")
    store.add(config, metrics, cost=cost, name="train", device=environment["device_name"], force=True)
    print(
        f"{args.model} on {args.dataset} {args.report_split}: accuracy {result.accuracy:.4f} "
        f"(95% CI {result.intervals['accuracy'][0]:.4f}-{result.intervals['accuracy'][1]:.4f}), "
        f"macro-F1 {result.macro_f1:.4f}; wrote {out}/best.ckpt, last.ckpt, history.csv, metrics.json"
    )
    return 0


def _cmd_evaluate(args) -> int:
    from ferlib.data.subsets import load_profile_split
    from ferlib.engine.evaluate import evaluate
    from ferlib.models.checkpoint import load_checkpoint, read_checkpoint

    model = load_checkpoint(args.checkpoint, device="cpu")
    crop = (read_checkpoint(args.checkpoint).get("train_config") or {}).get("crop")
    data = load_profile_split(
        args.dataset, args.split, args.profile, args.data_dir, task=args.task, **_dataset_options(args)
    )
    tta_crops = bool(args.tta and crop)
    result = evaluate(model, data, device=args.device, tta_flip=args.tta, crop=crop, tta_crops=tta_crops)
    if args.json:
        print(json.dumps(result.summary(), indent=2))
    else:
        for record in result.to_records():
            interval = f"95% CI {record['ci_low']:.4f}-{record['ci_high']:.4f}"
            print(f"{record['metric']:>18}: {record['value']:.4f}  ({interval})")
        print(f"{'n':>18}: {result.n}")
    return 0


def _cmd_runs(args) -> int:
    from ferlib.experiments.store import ResultsStore

    if not Path(args.results).exists():
        raise FerlibError(f"no results database at {args.results} (runs are stored there by 'ferlib train')")
    frame = ResultsStore(args.results).to_frame()
    if frame.empty:
        print("no runs stored")
        return 0
    if args.format == "json":
        print(frame.to_json(orient="records", indent=2))
    elif args.format == "csv":
        print(frame.to_csv(index=False), end="")
    else:
        columns = ["id", "name", "created"] + [c for c in frame.columns if c.startswith(("config.model", "metrics."))]
        print(frame[columns].to_string(index=False))
    return 0


def _cmd_models(args) -> int:
    from ferlib.models.registry import list_models, model_entry

    for name in list_models(kind=args.kind):
        entry = model_entry(name)
        print(f"{name:<18} {entry.kind:<7} {entry.description}")
    return 0


def _cmd_synth(args) -> int:
    from ferlib.data.synth import export_synthfer

    path = export_synthfer(
        args.out,
        task=args.task,
        split=args.split,
        size=args.size,
        seed=args.seed,
        preset=args.preset,
        image_size=args.image_size,
    )
    print(f"wrote {path}")
    return 0


def _cmd_bench(args) -> int:
    from ferlib.cli.bench import cmd_bench

    return cmd_bench(args)


def _cmd_predict(args) -> int:
    from ferlib.cli.deploy import cmd_predict

    return cmd_predict(args)


def _cmd_export(args) -> int:
    from ferlib.cli.deploy import cmd_export

    return cmd_export(args)


def _cmd_book(args) -> int:
    from ferlib.cli.book import cmd_book

    return cmd_book(args)


_COMMANDS = {
    "info": _cmd_info,
    "train": _cmd_train,
    "evaluate": _cmd_evaluate,
    "runs": _cmd_runs,
    "models": _cmd_models,
    "synth": _cmd_synth,
    "bench": _cmd_bench,
    "predict": _cmd_predict,
    "export": _cmd_export,
    "book": _cmd_book,
}


def main(argv: list[str] | None = None) -> int:
    from ferlib.cli.bench import with_default_subcommand

    parser = build_parser()
    args = parser.parse_args(with_default_subcommand(list(sys.argv[1:] if argv is None else argv)))
    if args.command is None:
        parser.print_help()
        return 0
    try:
        return _COMMANDS[args.command](args)
    except (FerlibError, ValueError, FileNotFoundError, NotADirectoryError) as error:
        if args.debug:
            raise
        # the whole message: a ferlib error's later lines say what was expected and how to fix it
        message = str(error).strip() or type(error).__name__
        print(f"ferlib {args.command}: error: {message}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print(f"ferlib {args.command}: interrupted; finished epochs are in the checkpoint folder", file=sys.stderr)
        return 130
