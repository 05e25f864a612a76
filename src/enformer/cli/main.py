"""Entry point of the ``enformer`` command.

Every subcommand lives in its own module with ``add_parser(subparsers)`` and
``run(args) -> dict``; the dict is the command's summary, printed as text or, with
``--json``, as one JSON object. Expected failures (bad input, missing files) exit
with status 2 and one line naming the problem (at most ~400 characters: echoed input is
cut); nothing prints a traceback for them unless ``-vv`` is given. Any other exception is a
bug and propagates with its traceback, also under ``-q`` (which only silences progress and
logging).
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

# Subcommands, each a module under enformer.cli of the same name (imported lazily to keep
# start-up fast); adding a command is adding its name here.
COMMANDS = (
    "demo", "info", "convert", "predict", "embed", "score", "train", "evaluate", "finetune",
    "attribute", "ism", "benchmark",
)  # fmt: skip

log = logging.getLogger("enformer")

# Longest error line printed; longer messages lose their middle (see one_line).
MAX_MESSAGE = 400


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
    for module in COMMANDS:
        mod = importlib.import_module(f"enformer.cli.{module}")
        p = mod.add_parser(sub)
        _add_global_options(p, suppress=True)
        p.set_defaults(_module=mod)
    return parser


# Options every command accepts, before or after the subcommand: flag(s), argparse options.
_GLOBAL = (
    (("--json",), {"action": "store_true", "default": False,
                   "help": "print a machine-readable JSON summary on stdout"}),
    (("-v", "--verbose"), {"action": "count", "default": 0,
                           "help": "more logging (-vv also shows tracebacks)"}),
    (("-q", "--quiet"), {"action": "store_true", "default": False,
                         "help": "no progress bars or log messages below warnings"}),
)  # fmt: skip


def _add_global_options(parser: argparse.ArgumentParser, suppress: bool = False) -> None:
    """--json, -v and --quiet; ``suppress``: on a subcommand, keep the top level's value."""
    for flags, options in _GLOBAL:
        extra = {"default": argparse.SUPPRESS} if suppress else {}
        parser.add_argument(*flags, **{**options, **extra})


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
        _check_device_option(args)
        summary = args._module.run(args)
    except KeyboardInterrupt:
        print("enformer: interrupted", file=sys.stderr)
        return 130
    except (CLIError, ValueError, FileNotFoundError, ImportError, OSError, KeyError) as err:
        if args.verbose >= 2:
            raise
        message = err.args[0] if isinstance(err, KeyError) and err.args else str(err)
        message = one_line(str(message))
        print(f"enformer {args.command}: error: {message}", file=sys.stderr)
        if args.json:
            print(json.dumps({"ok": False, "command": args.command, "error": message}))
        return 2
    summary = {"ok": True, "command": args.command, **(summary or {})}
    _print_summary(summary, args.json)
    return 0


def _check_device_option(args: argparse.Namespace) -> None:
    """Every command's ``--device`` is checked here, before anything loads."""
    from ..runtime import parse_device

    device = getattr(args, "device", None)
    if device is not None:
        try:
            parse_device(device)
        except ValueError as err:
            raise CLIError(f"--device: {err}") from None


def one_line(message: str, limit: int = MAX_MESSAGE) -> str:
    """``message`` on one line and at most about ``limit`` characters.

    Error messages echo what the user gave (a variant, a sequence, a list of names); a
    140-kb allele must not become a 140-kb line, so the middle of a long message is cut
    and the number of characters left out is said.
    """
    text = " ".join(part.strip() for part in message.strip().splitlines() if part.strip())
    if len(text) <= limit:
        return text
    head, tail = (2 * limit) // 3, limit // 4
    return f"{text[:head]} [... {len(text) - head - tail:,} characters cut ...] {text[-tail:]}"


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
