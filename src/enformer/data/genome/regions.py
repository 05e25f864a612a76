"""Genome coordinates: intervals, region strings and BED files.

Coordinates are 0-based and half-open everywhere in this package (as in BED files and Python
slices), except in the human-facing text of :func:`parse_region` and :meth:`Interval.to_ucsc`,
which use the samtools/UCSC convention: 1-based and inclusive (``chr1:1,001-2,000`` is the
0-based interval ``[1000, 2000)``).

Centring convention
-------------------
The centre of an interval is ``(start + end) // 2``. For an odd length this is the middle base;
for an even length it is the right-hand one of the two middle bases. A window of width ``w``
centred on position ``c`` is ``[c - w // 2, c - w // 2 + w)``, so the centre base sits at
index ``w // 2`` of the window's sequence (98,304 for Enformer's 196,608-bp input; DeepMind's
variant notebook places a SNP at the same index, ``L / 2``).
"""

from __future__ import annotations

import os
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from .textfiles import numbered_lines, parse_start_end

__all__ = ["Interval", "as_int", "parse_region", "read_bed"]

_STRANDS = ("+", "-", ".")
_REGION_EXAMPLE = "'chr1:1,001-2,000' (1-based, inclusive) or 'chr1:1,500' (one base)"


@dataclass(frozen=True)
class Interval:
    """A genomic interval, 0-based and half-open: bases ``start, ..., end - 1``.

    Parameters
    ----------
    chrom : str
        Chromosome (sequence) name.
    start : int
        0-based first base. May be negative for windows that run off a chromosome start.
    end : int
        0-based end, exclusive; ``end >= start``.
    name : str or None, optional
        Free-text name (BED column 4).
    strand : {'.', '+', '-'}, optional
        Strand; ``'.'`` (the default) means unstranded.

    Notes
    -----
    ``len(interval)`` is ``end - start`` (so a zero-length interval is falsy). The centre is
    ``(start + end) // 2``: the middle base for odd lengths, the right-hand middle base for even
    lengths.
    """

    chrom: str
    start: int
    end: int
    name: str | None = None
    strand: str = "."

    def __post_init__(self) -> None:
        if not isinstance(self.chrom, str) or not self.chrom:
            raise ValueError(f"Interval chrom must be a non-empty string, got {self.chrom!r}")
        try:
            start, end = as_int(self.start), as_int(self.end)
        except TypeError as err:
            raise TypeError(
                f"Interval start and end must be integers, got {self.start!r}, {self.end!r}"
            ) from err
        object.__setattr__(self, "start", start)
        object.__setattr__(self, "end", end)
        if end < start:
            raise ValueError(f"Interval end ({end}) is before its start ({start}) on {self.chrom}")
        if self.strand not in _STRANDS:
            raise ValueError(f"Interval strand must be one of '+', '-', '.'; got {self.strand!r}")

    def __len__(self) -> int:
        return self.end - self.start

    @property
    def length(self) -> int:
        """Number of bases, ``end - start``."""
        return self.end - self.start

    @property
    def center(self) -> int:
        """0-based centre position ``(start + end) // 2``.

        For an odd length this is the middle base; for an even length it is the right-hand one of
        the two middle bases (index ``length // 2`` of the interval's sequence).
        """
        return (self.start + self.end) // 2

    def resize(self, width: int) -> Interval:
        """Return the interval of ``width`` bases centred on this one's :attr:`center`.

        The new start is ``center - width // 2`` and the new end ``start + width``, so the centre
        base lands at index ``width // 2`` of the new interval. Resizing an interval of the same
        parity (both lengths even or both odd) keeps it symmetric; otherwise the extra base goes
        to the right for an odd ``width`` around an even-length interval and to the left for an
        even ``width`` around an odd-length one. Name and strand are kept.

        Parameters
        ----------
        width : int
            New length in bases (> 0).

        Returns
        -------
        Interval
            The resized interval; its start may be negative near a chromosome start.
        """
        width = as_int(width)
        if width <= 0:
            raise ValueError(f"width must be positive, got {width}")
        start = self.center - width // 2
        return Interval(self.chrom, start, start + width, self.name, self.strand)

    def to_ucsc(self) -> str:
        """Format as ``chrom:start-end``, 1-based inclusive with thousands separators.

        Returns
        -------
        str
            E.g. ``'chr1:1,001-2,000'`` for ``Interval('chr1', 1000, 2000)``.
        """
        return f"{self.chrom}:{self.start + 1:,}-{self.end:,}"

    def __str__(self) -> str:
        return self.to_ucsc()


def as_int(value: Any) -> int:
    """Convert integral values (int, numpy integers) to int; reject floats, bools and strings."""
    if isinstance(value, bool) or not hasattr(value, "__index__"):
        raise TypeError(f"expected an integer, got {value!r}")
    return int(value.__index__())


_REGION_RE = re.compile(r"^([\d,]+)(?:-([\d,]+))?$")


def parse_region(text: str) -> Interval:
    """Parse a samtools/UCSC region string into a 0-based :class:`Interval`.

    Parameters
    ----------
    text : str
        ``chrom:start-end`` with 1-based inclusive positions (commas allowed, e.g.
        ``'chr1:1,001-2,000'``), or ``chrom:pos`` for a single base. Surrounding whitespace is
        ignored. A bare chromosome name is rejected: coordinates are required.

    Returns
    -------
    Interval
        ``'chr1:1,001-2,000'`` gives ``Interval('chr1', 1000, 2000)``; ``'chr1:1,500'`` gives
        ``Interval('chr1', 1499, 1500)``.

    Raises
    ------
    ValueError
        If the text is malformed, a position is not positive, or start > end. The message names
        the text and shows the expected form.
    """
    if not isinstance(text, str):
        raise TypeError(f"region must be a string, got {type(text).__name__}")
    raw = text.strip()
    chrom, sep, coords = raw.rpartition(":")
    if not sep:
        raise ValueError(
            f"region {text!r} has no coordinates; expected {_REGION_EXAMPLE}. Whole chromosomes "
            "are not accepted here: give 'chrom:1-<length>'."
        )
    match = _REGION_RE.match(coords.strip())
    if not chrom.strip() or match is None:
        raise ValueError(f"cannot parse region {text!r}; expected {_REGION_EXAMPLE}")
    first = match.group(1).replace(",", "")
    last = match.group(2).replace(",", "") if match.group(2) is not None else first
    if not first or not last:
        raise ValueError(f"cannot parse region {text!r}; expected {_REGION_EXAMPLE}")
    start1, end1 = int(first), int(last)
    if start1 < 1:
        raise ValueError(
            f"region {text!r} starts at {start1}, but positions are 1-based and must be >= 1; "
            f"expected {_REGION_EXAMPLE}"
        )
    if start1 > end1:
        raise ValueError(
            f"region {text!r} has start {start1:,} after end {end1:,}; expected {_REGION_EXAMPLE}"
        )
    return Interval(chrom.strip(), start1 - 1, end1)


def read_bed(path: str | os.PathLike[str]) -> list[Interval]:
    """Read intervals from a BED file (0-based, half-open), plain or gzip-compressed.

    Parameters
    ----------
    path : str or os.PathLike
        BED file with at least 3 tab-separated columns ``chrom, start, end``; column 4 is the
        name (``'.'`` means none) and column 6 the strand, when present. Empty lines and lines
        starting with ``track``, ``browser`` or ``#`` are skipped. Files with no tab are split on
        whitespace.

    Returns
    -------
    list of Interval
        In file order.

    Raises
    ------
    FileNotFoundError
        If the file does not exist.
    ValueError
        On a malformed line; the message names the file and the line number.
    """
    path = Path(path)
    intervals: list[Interval] = []
    for number, line in numbered_lines(path):
        if not line.strip() or line.startswith(("track", "browser", "#")):
            continue
        fields = line.split("\t")
        if len(fields) < 3:
            fields = line.split()
        where = f"{path}, line {number}"
        if len(fields) < 3:
            raise ValueError(
                f"{where}: expected at least 3 columns (chrom, start, end), got {len(fields)}: "
                f"{line!r}"
            )
        chrom = fields[0].strip()
        start, end = parse_start_end(fields[1], fields[2], where)
        if start < 0 or end < start:
            raise ValueError(
                f"{where}: need 0 <= start <= end (BED is 0-based, half-open), "
                f"got start={start}, end={end}"
            )
        name = fields[3].strip() if len(fields) > 3 else None
        if name in ("", "."):
            name = None
        strand = fields[5].strip() if len(fields) > 5 else "."
        if strand not in _STRANDS:
            raise ValueError(f"{where}: strand (column 6) must be '+', '-' or '.', got {strand!r}")
        if not chrom:
            raise ValueError(f"{where}: empty chromosome name")
        intervals.append(Interval(chrom, start, end, name, strand))
    return intervals
