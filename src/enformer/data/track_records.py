"""The rows of a track sheet: :class:`Track` and the parser of both sheet layouts.

:class:`~enformer.data.tracks.TrackSheet` (the module users import) reads sheets through
:func:`parse_sheet_text`; see :mod:`enformer.data.tracks` for the two layouts and how the
assay and strand of a track are derived.
"""

from __future__ import annotations

import csv
import io
import logging
import re
from dataclasses import dataclass
from typing import Any

__all__ = ["OFFICIAL_TRACK_COUNTS", "STRANDS", "Track", "assay_of", "parse_sheet_text"]

logger = logging.getLogger(__name__)

OFFICIAL_TRACK_COUNTS = {"human": 5313, "mouse": 1643}
"""Number of output tracks of the official Enformer heads."""

STRANDS = ("+", "-", ".")
"""The strand values of a track: ``'+'``, ``'-'``, or ``'.'`` for unstranded."""

_FLOAT_COLUMNS = ("clip", "clip_soft", "scale")


@dataclass(frozen=True)
class Track:
    """One output track of a head.

    Attributes
    ----------
    index
        0-based output track index (the row position in the sheet).
    identifier
        Experiment identifier, e.g. ``'ENCFF833POA'`` or ``'CNhs10752+'``.
    description
        Full description as written in the sheet, e.g. ``'CAGE:CD4+ T Cells,'``.
    assay
        Upper-cased description prefix before the first ``':'`` (``'UNKNOWN'`` without one).
    strand
        ``'+'`` or ``'-'`` for stranded tracks, ``'.'`` otherwise.
    strand_pair
        Index of the track holding the other strand; ``index`` itself when unstranded.
    clip
        Hard clip applied to the targets, if the sheet says.
    clip_soft
        Soft clip threshold, if the sheet says.
    scale
        Scale factor applied to the targets, if the sheet says.
    sum_stat
        Per-bin pooling statistic (``'sum'``, ``'mean'``, ``'sum_sqrt'``, ...), if given.
    file
        Path of the coverage file the targets were made from, if given.
    """

    index: int
    identifier: str
    description: str
    assay: str
    strand: str = "."
    strand_pair: int = -1
    clip: float | None = None
    clip_soft: float | None = None
    scale: float | None = None
    sum_stat: str | None = None
    file: str | None = None

    def __post_init__(self) -> None:
        if self.strand not in STRANDS:
            raise ValueError(f"strand must be one of {STRANDS}, got {self.strand!r}")
        if self.strand_pair == -1:
            object.__setattr__(self, "strand_pair", self.index)

    @property
    def stranded(self) -> bool:
        """Whether another track holds the opposite strand."""
        return self.strand_pair != self.index

    @property
    def label(self) -> str:
        """Description without its assay prefix, e.g. ``'CD4+ T Cells,'``."""
        _, sep, rest = self.description.partition(":")
        return rest if sep else self.description


def assay_of(description: str) -> str:
    """Return the upper-cased prefix of ``description`` before ``':'`` (or ``'UNKNOWN'``).

    Parameters
    ----------
    description
        A track description such as ``'CHIP:CTCF:MCF-7'``.

    Returns
    -------
    str
        The assay, e.g. ``'CHIP'``.
    """
    prefix, sep, _ = description.partition(":")
    prefix = prefix.strip().upper()
    return prefix if sep and prefix else "UNKNOWN"


def _strand_hint(identifier: str, file: str | None, description: str) -> str | None:
    """``'+'``/``'-'`` read from an identifier, file name or description suffix, else None."""
    if identifier.endswith(("+", "-")):
        return identifier[-1]
    if file:
        stem = re.split(r"[\\/]", file)[-1].split(".")[0]
        if stem.endswith(("+", "-")):
            return stem[-1]
    match = re.search(r"\(([+-])\)\s*$|\b(plus|minus)[ _-]strand\b", description, re.IGNORECASE)
    if match:
        if match.group(1):
            return match.group(1)
        return "+" if match.group(2).lower() == "plus" else "-"
    return None


def parse_sheet_text(text: str | bytes, source: str) -> list[Track]:
    """Parse a sheet's content (bytes are decoded as UTF-8) into its tracks, in file order.

    Raises
    ------
    ValueError
        If the content is not a valid sheet, naming ``source`` and the line.
    """
    if isinstance(text, bytes):
        try:
            text = text.decode("utf-8-sig")
        except UnicodeDecodeError as err:
            raise ValueError(f"{source}: not UTF-8 text ({err})") from None
    elif text.startswith("\ufeff"):
        text = text[1:]
    return _parse_rows(text, source)


def _parse_float(value: str, column: str, source: str, line: int) -> float | None:
    value = value.strip()
    if not value:
        return None
    try:
        return float(value)
    except ValueError:
        raise ValueError(
            f"{source}, line {line}: column {column!r} should be a number, got {value!r}"
        ) from None


def _parse_rows(text: str, source: str) -> list[Track]:
    """Parse a sheet's text into tracks, with errors naming ``source`` and the line."""
    reader = csv.reader(io.StringIO(text, newline=""), delimiter="\t", strict=True)
    try:
        rows = [(reader.line_num, row) for row in reader]
    except csv.Error as err:
        raise ValueError(f"{source}, line {reader.line_num}: cannot parse ({err})") from None
    rows = [(line, row) for line, row in rows if any(field.strip() for field in row)]
    if not rows:
        raise ValueError(f"{source}: empty track sheet (no header line)")
    header_line, header = rows[0]
    columns = [c.strip().lower() for c in header]
    if len(columns) < 2:
        raise ValueError(
            f"{source}, line {header_line}: header has {len(columns)} column(s); a track sheet "
            "is tab-separated with at least 'identifier' and 'description' columns"
        )
    missing = [c for c in ("identifier", "description") if c not in columns]
    if missing:
        raise ValueError(
            f"{source}, line {header_line}: header lacks column(s) {', '.join(missing)} "
            f"(found: {', '.join(c or '<unnamed>' for c in columns)}); expected a Basenji "
            "targets sheet"
        )
    data = rows[1:]
    if not data:
        raise ValueError(f"{source}: track sheet has a header but no tracks")
    # pandas writes its index under an empty name; some writers omit the name entirely, so a
    # first data row one field longer than the header also means an index column.
    if len(data[0][1]) == len(columns) + 1 and columns[0] != "":
        columns = ["", *columns]
    width = len(columns)
    col = {name: i for i, name in enumerate(columns) if name}

    def get(row: list[str], name: str) -> str | None:
        i = col.get(name)
        return None if i is None else row[i]

    parsed: list[dict[str, Any]] = []
    for position, (line, row) in enumerate(data):
        if len(row) != width:
            raise ValueError(
                f"{source}, line {line}: expected {width} tab-separated fields, found "
                f"{len(row)} (truncated or malformed row)"
            )
        identifier = row[col["identifier"]].strip()
        if not identifier:
            raise ValueError(f"{source}, line {line}: empty identifier")
        description = row[col["description"]].strip()
        record: dict[str, Any] = {
            "line": line,
            "index": position,
            "identifier": identifier,
            "description": description,
            "file": (get(row, "file") or "").strip() or None,
            "sum_stat": (get(row, "sum_stat") or "").strip() or None,
        }
        for name in _FLOAT_COLUMNS:
            value = get(row, name)
            record[name] = None if value is None else _parse_float(value, name, source, line)
        pair_text = (get(row, "strand_pair") or "").strip()
        if pair_text:
            try:
                pair = int(float(pair_text))
            except ValueError:
                raise ValueError(
                    f"{source}, line {line}: column 'strand_pair' should be a track index, "
                    f"got {pair_text!r}"
                ) from None
        else:
            pair = position
        record["strand_pair"] = pair
        assay_text = (get(row, "assay") or "").strip()
        record["assay"] = assay_text.upper() if assay_text else assay_of(description)
        strand_text = (get(row, "strand") or "").strip()
        if strand_text and strand_text not in STRANDS:
            raise ValueError(
                f"{source}, line {line}: column 'strand' should be '+', '-' or '.', "
                f"got {strand_text!r}"
            )
        record["strand"] = strand_text or None
        parsed.append(record)

    n = len(parsed)
    for record in parsed:
        pair = record["strand_pair"]
        if not 0 <= pair < n:
            raise ValueError(
                f"{source}, line {record['line']}: strand_pair {pair} is outside 0..{n - 1} "
                "(truncated sheet?)"
            )
        if parsed[pair]["strand_pair"] != record["index"]:
            raise ValueError(
                f"{source}, line {record['line']}: track {record['index']} pairs with {pair}, "
                f"but track {pair} pairs with {parsed[pair]['strand_pair']}"
            )
    _assign_strands(parsed, source)
    return [Track(**{k: v for k, v in record.items() if k != "line"}) for record in parsed]


def _assign_strands(records: list[dict[str, Any]], source: str) -> None:
    """Fill each record's ``strand`` in place, giving the two tracks of a pair opposite signs."""
    for record in records:
        i, j = record["index"], record["strand_pair"]
        if i == j:
            if record["strand"] in (None, "."):
                record["strand"] = "."
            continue
        if i > j:
            continue  # the pair is settled when its lower index is visited
        other = records[j]
        mine = record["strand"] or _strand_hint(
            record["identifier"], record["file"], record["description"]
        )
        theirs = other["strand"] or _strand_hint(
            other["identifier"], other["file"], other["description"]
        )
        signs = ("+", "-")
        if mine in signs and theirs not in signs:
            theirs = "-" if mine == "+" else "+"
        elif theirs in signs and mine not in signs:
            mine = "-" if theirs == "+" else "+"
        elif mine not in signs or mine == theirs:
            if mine is None and theirs is None:
                logger.debug("%s: no strand hint for pair %d/%d; taking %d as '+'", source, i, j, i)
            else:
                logger.warning(
                    "%s: strand-paired tracks %d (%s) and %d (%s) have strands %r and %r; "
                    "taking %d as '+' and %d as '-'",
                    source, i, record["identifier"], j, other["identifier"], mine, theirs, i, j,
                )  # fmt: skip
            mine, theirs = "+", "-"
        record["strand"], other["strand"] = mine, theirs
