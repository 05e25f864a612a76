"""Entry point of the ``enformer`` command.

Every subcommand lives in its own module with ``add_parser(subparsers)`` and
``run(args) -> dict``; the dict is the command's summary, printed as text or, with
``--json``, as one JSON object. Expected failures (bad input, missing files) exit
with status 2 and one line naming the problem; nothing prints a traceback unless
``-vv`` is given.
"""

from __future__ import annotations

import argparse
import importlib
import json
import logging
import sys
from collections.abc import Sequence
from typing import Any

from ..version import __version__

# Subcommand name -> module under enformer.cli (imported lazily to keep start-up fast).
COMMANDS = {
    "demo": "demo",
    "info": "info",
    "convert": "convert",
    "predict": "predict",
    "score": "score",
    "train": "train",
    "evaluate": "evaluate",
    "finetune": "finetune",
    "attribute": "attribute",
    "ism": "ism",
}

log = logging.getLogger("enformer")


class CLIError(Exception):
    """An expected failure: its message is printed as one line and the exit status is 2."""


def build_parser() -> argparse.ArgumentParser:
    """The top-level parser with every subcommand registered."""
    parser = argparse.ArgumentParser(
        prog="enformer",
        description="Enformer in PyTorch: predict tracks, score variants, interpret, train.",
    )
    parser.add_argument("--version", action="version", version=f"enformer {__version__}")
    _add_global_options(parser)
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    for module in COMMANDS.values():
        mod = importlib.import_module(f"enformer.cli.{module}")
        p = mod.add_parser(sub)
        _add_global_options(p, suppress=True)
        p.set_defaults(_module=mod)
    return parser


def _add_global_options(parser: argparse.ArgumentParser, suppress: bool = False) -> None:
    """--json, -v and --quiet, accepted before or after the subcommand."""
    default = argparse.SUPPRESS if suppress else None
    parser.add_argument(
        "--json",
        action="store_true",
        default=default if suppress else False,
        help="print a machine-readable JSON summary on stdout",
    )
    parser.add_argument(
        "-v",
        "--verbose",
        action="count",
        default=default if suppress else 0,
        help="more logging (-vv also shows tracebacks)",
    )
    parser.add_argument(
        "-q",
        "--quiet",
        action="store_true",
        default=default if suppress else False,
        help="no progress bars or log messages below warnings",
    )


def _configure_logging(verbose: int, quiet: bool) -> None:
    level = logging.WARNING if quiet else (logging.INFO if verbose <= 1 else logging.DEBUG)
    if not quiet and verbose == 0:
        level = logging.WARNING
    logging.basicConfig(
        level=level, format="%(levelname)s %(name)s: %(message)s", stream=sys.stderr
    )
    logging.getLogger("enformer").setLevel(level)
    logging.captureWarnings(True)


def _print_summary(summary: dict[str, Any], as_json: bool) -> None:
    if as_json:
        public = {k: v for k, v in summary.items() if not k.startswith("_")}
        print(json.dumps(public, indent=2, default=str))
        return
    text = summary.get("_text")
    if text:
        print(text)
        return
    for key, value in summary.items():
        if key.startswith("_"):
            continue
        print(f"{key}: {value}")


def main(argv: Sequence[str] | None = None) -> int:
    """Run the command line; returns the exit status."""
    parser = build_parser()
    args = parser.parse_args(argv)
    if args.command is None:
        parser.print_help(sys.stderr)
        return 2
    _configure_logging(args.verbose, args.quiet)
    try:
        summary = args._module.run(args)
    except KeyboardInterrupt:
        print("enformer: interrupted", file=sys.stderr)
        return 130
    except (CLIError, ValueError, FileNotFoundError, ImportError, OSError, KeyError) as err:
        if args.verbose >= 2:
            raise
        message = err.args[0] if isinstance(err, KeyError) and err.args else str(err)
        print(f"enformer {args.command}: error: {message}", file=sys.stderr)
        if args.json:
            print(json.dumps({"ok": False, "command": args.command, "error": str(message)}))
        return 2
    summary = {"ok": True, "command": args.command, **(summary or {})}
    _print_summary(summary, args.json)
    return 0


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
