"""``ferlib book run`` and ``ferlib book cache``: the parser and the command; the work is in :mod:`ferlib.book`."""

from __future__ import annotations

from pathlib import Path

from ferlib.book.runner import find_repo, run_book
from ferlib.cli._common import add_command


def add_book_parser(commands) -> None:
    """Add ``book`` (with ``run`` and ``cache``) to the ``ferlib`` subcommands."""
    book = add_command(
        commands,
        "book",
        "Execute the book's chapters with chosen parameters and build the site from them.",
        """
        ferlib book run --profile full --dataset fer2013 --data-dir ~/data/fer2013 --out build/full
        ferlib book run --profile smoke --chapters 01_first_model,03_static_cnns --out /tmp/book --no-build
        ferlib book run --profile full --dataset fer2013 --data-dir ~/data/fer2013 --out build/full --resume
        """,
    )
    sub = book.add_subparsers(dest="book_command", metavar="SUBCOMMAND", parser_class=type(book), required=True)
    run = add_command(
        sub,
        "run",
        "Execute the chapters of _toc.yml in order into OUT/book with papermill, then build OUT/_build/html.",
        """
        ferlib book run --profile full --dataset fer2013 --data-dir ~/data/fer2013 --device cuda --out build/full
        ferlib book run --profile smoke --chapters 01_first_model --out /tmp/book
        """,
    )
    run.add_argument("--out", required=True, help="output folder: book/ (executed chapters), evidence/, _build/html")
    run.add_argument("--profile", default="quick", help="smoke, quick (default) or full")
    run.add_argument("--dataset", default="synthfer", help="dataset name (default synthfer)")
    run.add_argument("--data-dir", default=None, help="root folder of a real dataset in its official layout")
    run.add_argument("--device", default="auto", help="auto (default), cpu, cuda, cuda:N or mps")
    run.add_argument("--seed", type=int, default=0)
    run.add_argument("--resume", action="store_true", help="skip chapters already executed with these parameters")
    run.add_argument("--no-build", action="store_true", help="execute the chapters only; do not build the site")
    cache = add_command(
        sub,
        "cache",
        "Execute the chapters missing from jupyter-book's execution cache, several at a time, and cache them: "
        "the `jupyter-book build .` that follows executes none of them again.",
        """
        FERLIB_PROFILE=quick ferlib book cache --jobs 2 && FERLIB_PROFILE=quick jupyter-book build .
        ferlib book cache --jobs 4 --threads 2 --chapters 03_static_cnns,07_robustness
        """,
    )
    cache.add_argument("--jobs", type=int, default=2, help="chapters executed at once (default 2)")
    cache.add_argument(
        "--threads", type=int, default=None, help="threads per chapter's kernel (default: the cores shared among jobs)"
    )
    for command in (run, cache):
        command.add_argument(
            "--chapters", default=None, help="comma-separated names, e.g. 01_first_model,03_static_cnns (default: all)"
        )
        command.add_argument(
            "--repo", default=None, help="the book's repository (default: here, else ferlib's checkout)"
        )


def cmd_book(args) -> int:
    """``ferlib book run`` and ``ferlib book cache``."""
    repo = find_repo(args.repo)
    names = None if args.chapters is None else [n for n in args.chapters.split(",") if n.strip()]
    if args.book_command == "cache":
        from ferlib.book.cache import fill_cache

        fill_cache(repo, chapters=names, jobs=args.jobs, threads=args.threads)
        return 0
    try:
        run_book(
            repo,
            args.out,
            chapters=names,
            profile=args.profile,
            dataset=args.dataset,
            data_dir=args.data_dir,
            device=args.device,
            seed=args.seed,
            resume=args.resume,
            build=not args.no_build,
        )
    except KeyboardInterrupt:
        print(f"\nferlib book: interrupted; executed chapters are in {Path(args.out) / 'book'} (--resume continues)")
        return 130
    return 0


