"""What every ``ferlib`` command module shares: the parser class, examples in ``--help``, data options."""

from __future__ import annotations

import argparse
import textwrap


class Parser(argparse.ArgumentParser):
    """argparse, but a usage error is one line that names the problem and where to look."""

    def error(self, message: str):
        self.exit(2, f"{self.prog}: error: {message} (see '{self.prog} --help')\n")


def format_examples(text: str) -> str:
    return "examples:\n" + textwrap.indent(textwrap.dedent(text).strip(), "  ")


def positive_int(text: str) -> int:
    """An argparse type: a whole number of at least 1 (a size, a count)."""
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a whole number, got {text!r}") from None
    if value < 1:
        raise argparse.ArgumentTypeError(f"must be at least 1, got {value}")
    return value


def add_data_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--dataset", default="synthfer", help="dataset name (default: synthfer)")
    parser.add_argument("--data-dir", default=None, help="root folder of a real dataset in its official layout")
    parser.add_argument("--task", default="static", help="SynthFER task: static, video-basic, video-subtle, ...")
    parser.add_argument("--profile", default="quick", help="smoke, quick (default) or full: sets data sizes/epochs")
    parser.add_argument(
        "--image-size", type=positive_int, default=None, help="resize images to this size (default 48)"
    )
    parser.add_argument("--device", default="auto", help="auto (default), cpu, cuda, cuda:N or mps")


def add_command(
    commands, name: str, help_text: str, examples: str, description: str | None = None
) -> argparse.ArgumentParser:
    """Add subcommand ``name`` to the ``commands`` subparsers, its ``--help`` ending in ``examples``.

    ``help_text`` is the line in the parent's command list; ``description`` (default: the same)
    opens the command's own ``--help``.
    """
    return commands.add_parser(
        name,
        help=help_text.replace("%", "%%"),
        description=help_text if description is None else description,
        epilog=format_examples(examples),
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
