"""``ferlib bench``: run a benchmark grid into the results store, merge stores, write reports.

``ferlib bench GRID.yaml`` is short for ``ferlib bench run GRID.yaml``. The parser and the
commands live here; :mod:`ferlib.cli` registers them.
"""

from __future__ import annotations

import sys
import time
import warnings

from ferlib.cli._common import Parser, add_command
from ferlib.experiments.store import DEFAULT_PATH

_SUBCOMMANDS = ("run", "merge", "report")


def with_default_subcommand(argv: list[str]) -> list[str]:
    """``ferlib bench GRID.yaml ...`` means ``ferlib bench run GRID.yaml ...``: insert ``run`` after ``bench``
    (the command is the first argument that is not an option of ``ferlib`` itself, such as ``--debug``)."""
    at = next((i for i, arg in enumerate(argv) if not arg.startswith("-")), None)
    if at is None or argv[at] != "bench":
        return argv
    rest = argv[at + 1 :]
    if rest and rest[0] in (*_SUBCOMMANDS, "-h", "--help"):
        return argv
    return [*argv[: at + 1], "run", *rest]


def add_bench_parser(commands) -> None:
    """Add ``bench`` (with ``run``, ``merge`` and ``report``) to the ``ferlib`` subcommands."""
    bench = add_command(
        commands,
        "bench",
        "Run a benchmark grid (YAML) into the results database; merge stores; write reports.",
        """
            ferlib bench benchmarks/grids/default.yaml
            ferlib bench benchmarks/grids/default.yaml --shard 2/4 --store results/shard2.sqlite
            ferlib bench merge results/all.sqlite results/shard*.sqlite
            ferlib bench report --store results/all.sqlite --out results/report
            """,
        description="Run a benchmark grid (datasets x tasks x models x seeds x profile) into the results "
        "database, skipping stored runs; 'ferlib bench GRID.yaml' is short for 'ferlib bench run GRID.yaml'.",
    )
    sub = bench.add_subparsers(dest="bench_command", metavar="SUBCOMMAND", parser_class=Parser)
    run = add_command(
        sub,
        "run",
        "Run a grid's configs not yet stored (the default subcommand).",
        """
            ferlib bench benchmarks/grids/smoke.yaml --dry-run
            ferlib bench benchmarks/grids/default.yaml --store results/ferlib.sqlite
            # Slurm: sbatch --array=1-8 ... with
            ferlib bench benchmarks/grids/default.yaml --shard $SLURM_ARRAY_TASK_ID/8 \\
                --store results/shard-$SLURM_ARRAY_TASK_ID.sqlite
            """,
        description="Run every config of a grid spec in a stable order, skipping configs already in the store; "
        "each record is stored as its run completes, so a killed grid restarts where it stopped.",
    )
    run.add_argument("grid", metavar="GRID.yaml", help="grid spec (see benchmarks/grids/default.yaml)")
    run.add_argument("--store", default=str(DEFAULT_PATH), help=f"results database (default {DEFAULT_PATH})")
    run.add_argument(
        "--shard",
        default=None,
        metavar="I/N",
        help="run only shard I of N, 1-based (1 <= I <= N): the configs whose 0-based index mod N == I-1; "
        "for a 0-based array (--array=0-7) pass $((SLURM_ARRAY_TASK_ID + 1))/8",
    )
    run.add_argument("--force", action="store_true", help="run stored configs again (replacing their records)")
    run.add_argument("--dry-run", action="store_true", help="list the configs and whether each is stored; run none")
    run.add_argument("--device", default="auto", help="auto (default), cpu, cuda, cuda:N or mps")

    merge = add_command(
        sub,
        "merge",
        "Merge results databases (one record per config; the first of conflicting records is kept).",
        "ferlib bench merge results/all.sqlite results/shard-1.sqlite results/shard-2.sqlite",
        description="Copy the records of IN stores into OUT, one per config hash; when two records of one config "
        "have different metrics the first is kept and a warning names both files.",
    )
    merge.add_argument("out", metavar="OUT.sqlite")
    merge.add_argument("inputs", metavar="IN.sqlite", nargs="+")

    report = add_command(
        sub,
        "report",
        "Write runs.csv, summary.csv, summary.md and the standard plots of a results database.",
        "ferlib bench report --store results/ferlib.sqlite --out results/report",
        description="Write tidy runs.csv (one row per run), summary.csv and summary.md (mean and 95%% interval over "
        "seeds per dataset/task/model) and the plots accuracy.png, accuracy_vs_flops.png, accuracy_vs_latency.png.",
    )
    report.add_argument("--store", default=str(DEFAULT_PATH), help=f"results database (default {DEFAULT_PATH})")
    report.add_argument("--out", default="results/report", help="output folder (default results/report)")


def cmd_bench(args) -> int:
    return {"run": _run, "merge": _merge, "report": _report}[args.bench_command](args)


def _run(args) -> int:
    from ferlib.experiments.grid import describe, expand_grid, load_grid, parse_shard, run_grid, shard
    from ferlib.experiments.store import ResultsStore, config_hash

    notes: list[str] = []
    configs = expand_grid(load_grid(args.grid), notes=notes)
    i, n = parse_shard(args.shard) if args.shard else (1, 1)
    selected = shard(configs, i, n)
    for note in notes:
        print(f"note: {note}")
    where = f"shard {i}/{n}: {len(selected)} of {len(configs)}" if n > 1 else f"{len(configs)}"
    store = ResultsStore(args.store)
    if args.dry_run:
        stored = store.hashes()
        count = sum(config_hash(config) in stored for _, config in selected)
        print(f"{args.grid}: {where} configs, {count} stored in {args.store}")
        for index, config in selected:
            state = "stored" if config_hash(config) in stored else "to run"
            print(f"[{index + 1}/{len(configs)}] {config['dataset']} {describe(config)} ({config['profile']}): {state}")
        return 0
    print(f"{args.grid}: {where} configs into {args.store}")
    started = time.perf_counter()
    counts = {"done": 0, "skipped": 0}
    try:
        counts = run_grid(
            selected,
            store,
            device=args.device,
            force=args.force,
            total=len(configs),
            log=lambda line: print(line, flush=True),
        )
    except KeyboardInterrupt:
        print(
            f"ferlib bench: interrupted; finished runs are stored in {args.store}: run the same command to resume",
            file=sys.stderr,
        )
        return 130
    minutes = (time.perf_counter() - started) / 60
    print(f"{counts['done']} run, {counts['skipped']} skipped (stored) in {minutes:.1f} min; results in {args.store}")
    return 0


def _merge(args) -> int:
    from ferlib.experiments.store import merge_stores

    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        counts = merge_stores(args.out, args.inputs)
    for warning in caught:
        print(f"ferlib bench merge: warning: {warning.message}", file=sys.stderr)
    print(
        f"merged {len(args.inputs)} stores into {args.out}: {counts['added']} records added, "
        f"{counts['duplicates']} already there ({counts['conflicts']} with different metrics, kept the first)"
    )
    return 0


def _report(args) -> int:
    from pathlib import Path

    import matplotlib

    matplotlib.use("Agg")
    from ferlib.experiments.report import write_report

    if not Path(args.store).is_file():
        raise FileNotFoundError(f"no results database at {args.store} (runs are stored there by 'ferlib bench')")
    paths = write_report(args.store, args.out)
    print(f"wrote {', '.join(str(path) for path in paths)}")
    return 0
