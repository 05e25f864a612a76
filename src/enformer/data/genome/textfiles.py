"""Plain or gzip-compressed text files, read line by line with clear errors."""

from __future__ import annotations

import gzip
import io
import zlib
from collections.abc import Iterator
from pathlib import Path
from typing import IO

__all__ = ["numbered_lines", "open_text", "parse_start_end"]


def _is_gzip(path: Path) -> bool:
    with open(path, "rb") as fh:
        return fh.read(2) == b"\x1f\x8b"


def open_text(path: Path, what: str = "file") -> IO[str]:
    """Open a plain or gzip-compressed text file for reading (UTF-8).

    ``what`` names the kind of file in the errors (e.g. ``'variant file'``).
    """
    if not path.exists():
        raise FileNotFoundError(f"{what} not found: {path}")
    if path.is_dir():
        raise IsADirectoryError(f"expected a {what} but got a directory: {path}")
    if _is_gzip(path):
        return io.TextIOWrapper(gzip.open(path, "rb"), encoding="utf-8")
    return open(path, encoding="utf-8")  # noqa: SIM115 - returned to the caller's `with`


def numbered_lines(path: Path, what: str = "file") -> Iterator[tuple[int, str]]:
    """Yield ``(line_number, line)`` without the line ending; wrap decoding errors.

    ``what`` names the kind of file in the errors, as for :func:`open_text`.
    """
    try:
        with open_text(path, what) as fh:
            for number, line in enumerate(fh, start=1):
                yield number, line.rstrip("\r\n")
    except UnicodeDecodeError as err:
        raise ValueError(f"{path} is not a text file (cannot decode as UTF-8): {err}") from err
    except (EOFError, gzip.BadGzipFile, zlib.error) as err:
        raise ValueError(f"{path} is a corrupt or truncated gzip file: {err}") from err


def parse_start_end(start: str, end: str, where: str) -> tuple[int, int]:
    """The integer start and end columns of a line of ``where``; a one-line error otherwise."""
    try:
        return int(start), int(end)
    except ValueError:
        raise ValueError(
            f"{where}: start and end must be integers, got {start!r} and {end!r}"
        ) from None
