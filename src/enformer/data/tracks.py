"""Track sheets: what each output track of a head measures, and how to pick tracks.

Two tab-separated layouts are read, both by the standard library's :mod:`csv` module (pandas
is not needed):

* Basenji2/Enformer ``targets_human.txt`` / ``targets_mouse.txt``: columns ``index, genome,
  identifier, file, clip, scale, sum_stat, description``. The ``index`` column of the mouse
  sheet continues from 5313, so it is ignored: **the 0-based row position in the file is the
  output track index**.
* Basenji/Borzoi ``targets.txt``: an unnamed pandas index column followed by ``identifier,
  file, clip, clip_soft, scale, sum_stat, strand_pair, description``.

The assay is the description's prefix before the first ``':'``, upper-cased (``CAGE``,
``DNASE``, ``ATAC``, ``CHIP``, ``RNA``, ...). A track whose ``strand_pair`` is another track
is stranded; its strand comes from a ``+``/``-`` suffix of the identifier (Basenji's own
convention), else of the file name, else of the description, else the lower index of the
pair is taken as ``+``.

:func:`find_track_sheet` locates the sheet of the official model's heads, downloading it from
the Basenji repository into a cache when allowed.
"""

from __future__ import annotations

import csv
import dataclasses
import difflib
import io
import logging
import os
import re
from collections import Counter
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, overload

import numpy as np

from ..io.cache import DownloadError, default_cache_dir, offline_switch, resolve_cache_dir
from ..io.cache import download as fetch_url

__all__ = [
    "DEFAULT_URL",
    "OFFICIAL_TRACK_COUNTS",
    "Track",
    "TrackSheet",
    "TrackSheetNotFound",
    "default_cache_dir",
    "find_track_sheet",
    "load_track_sheet",
]

logger = logging.getLogger(__name__)

DEFAULT_URL = (
    "https://raw.githubusercontent.com/calico/basenji/master/manuscripts/cross2020/"
    "targets_{head}.txt"
)
"""Where :func:`find_track_sheet` downloads ``targets_{head}.txt`` from by default."""

OFFICIAL_TRACK_COUNTS = {"human": 5313, "mouse": 1643}
"""Number of output tracks of the official Enformer heads."""

_MAX_DOWNLOAD_BYTES = 64 * 1024 * 1024
_HEAD_RE = re.compile(r"^[A-Za-z0-9_.-]+$")
_STRANDS = ("+", "-", ".")
_FLOAT_COLUMNS = ("clip", "clip_soft", "scale")
_SEARCH_KEYS = ("assay", "search", "desc", "id", "strand")


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
        if self.strand not in _STRANDS:
            raise ValueError(f"strand must be one of {_STRANDS}, got {self.strand!r}")
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


class TrackSheet:
    """The ordered tracks of one model head.

    Parameters
    ----------
    tracks
        Tracks whose ``index`` fields are ``0, 1, ..., n-1`` in order.
    head
        Name of the head (``'human'``, ``'mouse'``, ...), if known.
    path
        File the sheet was read from, if any.

    Raises
    ------
    ValueError
        If the indices are not ``0..n-1`` or the strand pairs are not a valid involution.
    """

    def __init__(
        self, tracks: Iterable[Track], *, head: str | None = None, path: str | Path | None = None
    ) -> None:
        self._tracks: tuple[Track, ...] = tuple(tracks)
        self.head = head
        self.path = Path(path) if path is not None else None
        n = len(self._tracks)
        for i, track in enumerate(self._tracks):
            if track.index != i:
                raise ValueError(f"track at position {i} has index {track.index}; expected {i}")
            if not 0 <= track.strand_pair < n:
                raise ValueError(
                    f"track {i} ({track.identifier}) has strand_pair {track.strand_pair}, "
                    f"outside 0..{n - 1}"
                )
        for track in self._tracks:
            partner = self._tracks[track.strand_pair]
            if partner.strand_pair != track.index:
                raise ValueError(
                    f"strand pairs are not symmetric: track {track.index} pairs with "
                    f"{partner.index}, which pairs with {partner.strand_pair}"
                )
        self._by_identifier: dict[str, list[int]] = {}
        self._by_identifier_lower: dict[str, list[int]] = {}
        for track in self._tracks:
            self._by_identifier.setdefault(track.identifier, []).append(track.index)
            self._by_identifier_lower.setdefault(track.identifier.lower(), []).append(track.index)

    # ------------------------------------------------------------------ reading
    @classmethod
    def read(cls, path: str | os.PathLike[str], head: str | None = None) -> TrackSheet:
        """Read a Basenji2/Enformer or Basenji/Borzoi target sheet.

        Parameters
        ----------
        path
            Tab-separated sheet (see the module docstring for the two layouts).
        head
            Head name to record; by default taken from a ``targets_{head}.txt`` file name.

        Returns
        -------
        TrackSheet
            The tracks in file order; row ``i`` (0-based, header excluded) is track ``i``.

        Raises
        ------
        FileNotFoundError
            If ``path`` does not exist.
        ValueError
            If the file is empty, truncated or malformed, naming the file and the line.
        """
        path = Path(path)
        data = path.read_bytes()
        if head is None:
            match = re.fullmatch(r"targets_(.+)\.txt", path.name)
            head = match.group(1) if match else None
        return cls.from_text(data, source=str(path), head=head, path=path)

    @classmethod
    def from_text(
        cls,
        text: str | bytes,
        *,
        source: str = "<string>",
        head: str | None = None,
        path: str | Path | None = None,
    ) -> TrackSheet:
        """Parse a sheet held in memory; :meth:`read` does this for files.

        Parameters
        ----------
        text
            The sheet's content (bytes are decoded as UTF-8).
        source
            Name used in error messages (a path or URL).
        head
            Head name to record.
        path
            File to record as the sheet's origin.

        Returns
        -------
        TrackSheet
            The parsed tracks.

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
        tracks = _parse_rows(text, source)
        try:
            return cls(tracks, head=head, path=path)
        except ValueError as err:
            raise ValueError(f"{source}: {err}") from None

    # ---------------------------------------------------------------- container
    def __len__(self) -> int:
        return len(self._tracks)

    def __iter__(self) -> Iterator[Track]:
        return iter(self._tracks)

    @overload
    def __getitem__(self, key: int | str) -> Track: ...

    @overload
    def __getitem__(self, key: slice) -> list[Track]: ...

    def __getitem__(self, key: int | str | slice) -> Track | list[Track]:
        """Track by position (``sheet[3]``), identifier (``sheet['ENCFF833POA']``) or slice."""
        if isinstance(key, str):
            hits = self._by_identifier.get(key)
            if not hits:
                raise KeyError(self._unknown_identifier_message(key))
            return self._tracks[hits[0]]
        if isinstance(key, slice):
            return list(self._tracks[key])
        return self._tracks[key]

    def __repr__(self) -> str:
        where = f", path={str(self.path)!r}" if self.path is not None else ""
        return f"TrackSheet(head={self.head!r}, n_tracks={len(self)}{where})"

    @property
    def tracks(self) -> tuple[Track, ...]:
        """All tracks in output order."""
        return self._tracks

    @property
    def identifiers(self) -> list[str]:
        """Identifier of every track, in output order."""
        return [t.identifier for t in self._tracks]

    @property
    def descriptions(self) -> list[str]:
        """Description of every track, in output order."""
        return [t.description for t in self._tracks]

    def assay_counts(self) -> dict[str, int]:
        """Return the number of tracks per assay, most frequent first."""
        return dict(Counter(t.assay for t in self._tracks).most_common())

    def to_records(self) -> list[dict[str, Any]]:
        """Return one plain ``dict`` per track (the :class:`Track` fields), in output order."""
        return [dataclasses.asdict(t) for t in self._tracks]

    def to_dataframe(self) -> Any:
        """Return the sheet as a ``pandas.DataFrame`` (needs the optional pandas).

        Returns
        -------
        pandas.DataFrame
            One row per track, indexed by track index.
        """
        try:
            import pandas as pd
        except ImportError as err:  # pragma: no cover - depends on the environment
            raise ImportError(
                "TrackSheet.to_dataframe needs pandas: pip install 'enformer[variants]'"
            ) from err
        return pd.DataFrame.from_records(self.to_records(), index="index")

    def strand_pair_permutation(self) -> np.ndarray:
        """Return the track permutation that swaps the two strands of every stranded pair.

        Returns
        -------
        numpy.ndarray
            int64 array ``perm`` with ``perm[i]`` the index of track ``i``'s strand partner
            (``i`` itself for unstranded tracks). ``perm[perm] == arange(n)``. After
            reverse-complementing an input, ``y_rc[..., perm]`` puts the tracks back in
            forward-strand order.
        """
        return np.array([t.strand_pair for t in self._tracks], dtype=np.int64)

    # ---------------------------------------------------------------- selection
    def select(self, spec: Any) -> list[int]:
        """Pick tracks; return their 0-based indices.

        Parameters
        ----------
        spec
            One of:

            * an ``int`` (a track index) or a sequence/array of ints; a boolean array of
              length ``len(self)`` selects where it is true; a ``slice`` works as for lists;
            * a string of comma-separated terms, each of which is

              - ``all`` or ``*``: every track;
              - ``12``: track 12; ``10-20``: tracks 10 to 20, **both inclusive**;
              - ``assay:CAGE``: tracks of that assay (case-insensitive);
              - ``search:K562`` (or ``desc:K562``): tracks whose description contains the
                text, case-insensitively;
              - ``id:ENCFF833POA``: the track with that identifier;
              - ``strand:+`` / ``strand:-`` / ``strand:.``: tracks on that strand;
              - any other text, e.g. ``ENCFF833POA`` or ``K562``: the track with that
                identifier (exact, then case-insensitive) if there is one, else the tracks
                whose description contains the text, case-insensitively;
              - ``ASSAY:text`` where ``ASSAY`` is an assay of this sheet, e.g.
                ``CAGE:K562`` or ``CHIP:CTCF``: tracks of that assay whose description,
                after the assay prefix, contains the text (case-insensitive);

              commas always separate terms, so pass a list to search for text containing
              a comma, e.g. ``["search:CD4+ T Cells,"]``;
            * a list mixing ints and such strings.

            Indices are output positions (row positions in the sheet), not the sheet's
            ``index`` column, which continues from 5313 in the mouse sheet.

        Returns
        -------
        list of int
            Indices in the order the terms were given (ascending within one term), each
            listed once.

        Raises
        ------
        ValueError
            If an index is out of range, a range is reversed, or a term matches no track
            (an unknown identifier lists the closest identifiers).
        TypeError
            If ``spec`` has an unsupported type.

        Examples
        --------
        ``sheet.select("0,5,10-12")`` gives ``[0, 5, 10, 11, 12]``;
        ``sheet.select("assay:CAGE,search:K562")`` gives every CAGE track, then every
        other track whose description mentions K562.
        """
        out: dict[int, None] = {}
        for index in self._select(spec):
            out.setdefault(index, None)
        return list(out)

    def _select(self, spec: Any) -> list[int]:
        n = len(self)
        if isinstance(spec, bool | bytes | bytearray):
            raise TypeError(f"cannot select tracks with a {type(spec).__name__}")
        if isinstance(spec, int | np.integer):
            return [self._check_index(int(spec))]
        if isinstance(spec, str):
            terms = [t.strip() for t in spec.split(",")]
            terms = [t for t in terms if t]
            if not terms:
                raise ValueError("empty track selection; use 'all' for every track")
            return [i for term in terms for i in self._select_term(term)]
        if isinstance(spec, slice):
            return list(range(n))[spec]
        if isinstance(spec, np.ndarray):
            if spec.dtype == np.bool_:
                if spec.shape != (n,):
                    raise ValueError(
                        f"a boolean track mask must have shape ({n},), got {spec.shape}"
                    )
                return [int(i) for i in np.flatnonzero(spec)]
            if spec.dtype.kind in "iu":
                return [self._check_index(int(i)) for i in spec.ravel()]
            spec = spec.tolist()
        if isinstance(spec, Sequence | set | frozenset):
            result: list[int] = []
            for item in spec:
                if isinstance(item, str):
                    result.extend(self._select_term(item.strip()))
                else:
                    result.extend(self._select(item))
            return result
        raise TypeError(
            f"cannot select tracks with a {type(spec).__name__}; use an int, a list of ints or "
            "a string such as '0,5,10-20', 'assay:CAGE' or 'search:K562'"
        )

    def _check_index(self, index: int) -> int:
        if not 0 <= index < len(self):
            extra = ""
            if self.head == "mouse" and index >= OFFICIAL_TRACK_COUNTS["human"]:
                extra = (
                    " (indices are row positions; the mouse sheet's 'index' column starts at "
                    f"5313, so subtract {OFFICIAL_TRACK_COUNTS['human']})"
                )
            raise ValueError(f"track index {index} is out of range 0..{len(self) - 1}{extra}")
        return index

    def _select_term(self, term: str) -> list[int]:
        if not term:
            raise ValueError("empty track selection term")
        lowered = term.lower()
        if lowered in ("all", "*"):
            return list(range(len(self)))
        if re.fullmatch(r"\d+", term):
            return [self._check_index(int(term))]
        match = re.fullmatch(r"(\d+)\s*-\s*(\d+)", term)
        if match:
            start, stop = int(match.group(1)), int(match.group(2))
            if start > stop:
                raise ValueError(f"track range {term!r} is reversed; write {stop}-{start}")
            self._check_index(start)
            self._check_index(stop)
            return list(range(start, stop + 1))
        key, sep, value = term.partition(":")
        key = key.strip().lower()
        if sep and key in _SEARCH_KEYS:
            return self._select_keyed(key, value.strip(), term)
        exact = self._by_identifier.get(term) or self._by_identifier_lower.get(lowered)
        if exact:
            return list(exact)
        if sep and key.upper() in self.assay_counts():
            # "CAGE:K562": tracks of that assay whose label mentions the rest.
            rest = value.strip().lower()
            hits = [
                t.index for t in self._tracks if t.assay == key.upper() and rest in t.label.lower()
            ]
        else:
            hits = [t.index for t in self._tracks if lowered in t.description.lower()]
        if hits:
            return hits
        raise ValueError(
            f"{term!r} is neither a track identifier nor text found in any description"
            f"{self._suggestions(term)}"
        )

    def _select_keyed(self, key: str, value: str, term: str) -> list[int]:
        if not value:
            raise ValueError(f"track selection {term!r} has nothing after the ':'")
        if key == "assay":
            hits = [t.index for t in self._tracks if t.assay == value.upper()]
            if not hits:
                raise ValueError(
                    f"no track has assay {value!r}; assays in this sheet: "
                    f"{', '.join(self.assay_counts())}"
                )
            return hits
        if key in ("search", "desc"):
            needle = value.lower()
            hits = [t.index for t in self._tracks if needle in t.description.lower()]
            if not hits:
                raise ValueError(f"no track description contains {value!r}")
            return hits
        if key == "strand":
            if value not in _STRANDS:
                raise ValueError(f"strand must be one of {_STRANDS}, got {value!r}")
            return [t.index for t in self._tracks if t.strand == value]
        # key == "id"
        hits = self._by_identifier.get(value) or self._by_identifier_lower.get(value.lower())
        if not hits:
            raise ValueError(self._unknown_identifier_message(value))
        return list(hits)

    def _suggestions(self, term: str) -> str:
        close = difflib.get_close_matches(term, self.identifiers, n=5, cutoff=0.6)
        if not close:
            lowered = {i.lower(): i for i in self.identifiers}
            close = [lowered[c] for c in difflib.get_close_matches(term.lower(), lowered, n=5)]
        return f"; did you mean {', '.join(close)}?" if close else ""

    def _unknown_identifier_message(self, identifier: str) -> str:
        return f"no track has identifier {identifier!r}{self._suggestions(identifier)}"


# -------------------------------------------------------------------------- parsing
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
        if strand_text and strand_text not in _STRANDS:
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


# -------------------------------------------------------------------------- locating
class TrackSheetNotFound(FileNotFoundError):
    """A head's track sheet could not be found locally nor downloaded."""


def find_track_sheet(
    head: str,
    *,
    path: str | os.PathLike[str] | None = None,
    weights_dir: str | os.PathLike[str] | None = None,
    cache_dir: str | os.PathLike[str] | None = None,
    download: bool = True,
    url: str | None = None,
    timeout: float = 60.0,
) -> Path:
    """Locate ``targets_{head}.txt``, downloading it into the cache if needed.

    Looks, in order, at

    1. ``path`` (a file, or a folder holding ``targets_{head}.txt``); if given, it must exist;
    2. ``targets_{head}.txt`` in ``weights_dir`` (or beside it, if it is a file);
    3. ``targets_{head}.txt`` in the cache (``cache_dir``, else :func:`default_cache_dir`);
    4. ``url`` (default :data:`DEFAULT_URL`, the Basenji repository), unless ``download`` is
       false or the environment sets ``ENFORMER_OFFLINE=1`` or ``HF_HUB_OFFLINE=1``. The
       content is checked to be a
       valid sheet (with the official track count for ``human``/``mouse`` from the default
       URL) and then moved into the cache atomically.

    Parameters
    ----------
    head
        Head name, e.g. ``'human'`` or ``'mouse'``.
    path
        A sheet the user supplied.
    weights_dir
        Folder (or file) of the model weights.
    cache_dir
        Cache folder to use instead of the default.
    download
        Allow downloading.
    url
        Download address; ``{head}`` in it is replaced by ``head``.
    timeout
        Seconds to wait for the server.

    Returns
    -------
    pathlib.Path
        Path of an existing sheet.

    Raises
    ------
    TrackSheetNotFound
        If the sheet is found nowhere and cannot be downloaded; the message lists where it
        looked and how to provide the file.
    ValueError
        If ``head`` is not a plain name.
    """
    if not _HEAD_RE.fullmatch(head):
        raise ValueError(f"head must be a plain name such as 'human', got {head!r}")
    name = f"targets_{head}.txt"
    if path is not None:
        given = Path(path).expanduser()
        candidate = given / name if given.is_dir() else given
        if candidate.is_file():
            return candidate
        raise TrackSheetNotFound(f"track sheet {str(candidate)!r} (for head {head!r}) not found")

    looked: list[str] = []
    if weights_dir is not None:
        folder = Path(weights_dir).expanduser()
        if folder.is_file():
            folder = folder.parent
        candidate = folder / name
        if candidate.is_file():
            return candidate
        looked.append(f"{candidate} (beside the weights): missing")

    cached = resolve_cache_dir(cache_dir) / name
    if cached.is_file():
        return cached
    looked.append(f"{cached} (cache): missing")

    address = (url or DEFAULT_URL).replace("{head}", head)
    if not download:
        looked.append(f"{address}: not downloaded (download=False)")
    elif (switch := offline_switch()) is not None:
        looked.append(f"{address}: not downloaded ({switch} is set; unset it to download)")
    else:
        expected = OFFICIAL_TRACK_COUNTS.get(head) if url is None else None
        try:
            _download_sheet(address, cached, head=head, expected=expected, timeout=timeout)
            return cached
        except DownloadError as err:
            looked.append(f"{address}: download failed: {err.reason}")

    where = "\n".join(f"  - {item}" for item in looked)
    raise TrackSheetNotFound(
        f"track sheet {name} for head {head!r} not found. Looked at:\n{where}\n"
        f"Provide it by passing path=..., by putting {name} beside the weights, or by saving "
        f"it as {cached} (set ENFORMER_CACHE to change the cache folder); it can be fetched "
        f"from {address}"
    )


def _download_sheet(
    url: str, dest: Path, *, head: str, expected: int | None, timeout: float
) -> None:
    """Fetch ``url`` into ``dest`` through the cache's atomic download, checking it is a sheet."""

    def check(part: Path) -> None:
        try:
            sheet = TrackSheet.from_text(part.read_bytes(), source=url, head=head)
        except ValueError as err:
            raise ValueError(f"downloaded content is not a valid track sheet ({err})") from err
        if expected is not None and len(sheet) != expected:
            raise ValueError(
                f"downloaded sheet has {len(sheet)} tracks; the official {head} head has {expected}"
            )

    logger.info("downloading track sheet for head %r from %s", head, url)
    fetch_url(url, dest, timeout=timeout, max_bytes=_MAX_DOWNLOAD_BYTES, check=check)
    logger.info("saved track sheet for head %r to %s", head, dest)


def load_track_sheet(
    head: str,
    *,
    path: str | os.PathLike[str] | None = None,
    weights_dir: str | os.PathLike[str] | None = None,
    cache_dir: str | os.PathLike[str] | None = None,
    download: bool = True,
    url: str | None = None,
    timeout: float = 60.0,
) -> TrackSheet:
    """Locate a head's sheet with :func:`find_track_sheet` and read it.

    Parameters
    ----------
    head
        Head name, e.g. ``'human'``.
    path, weights_dir, cache_dir, download, url, timeout
        As for :func:`find_track_sheet`.

    Returns
    -------
    TrackSheet
        The head's tracks.
    """
    found = find_track_sheet(
        head,
        path=path,
        weights_dir=weights_dir,
        cache_dir=cache_dir,
        download=download,
        url=url,
        timeout=timeout,
    )
    return TrackSheet.read(found, head=head)


# ---------------------------------------------------------------------- index-only specs
_INDEX_SPEC = re.compile(r"^\s*(all|\*|\d+(\s*-\s*\d+)?(\s*,\s*\d+(\s*-\s*\d+)?)*)\s*$", re.I)


def is_index_spec(spec: str) -> bool:
    """Whether ``spec`` selects by position only (``'all'``, ``'5'``, ``'0,3,10-20'``)."""
    return bool(_INDEX_SPEC.match(spec))


def parse_index_spec(spec: str, n: int, what: str = "track") -> list[int]:
    """Parse an index-only selection without a track sheet.

    Parameters
    ----------
    spec
        ``'all'``/``'*'``, or comma-separated indices and inclusive ranges, e.g. ``'0,5,10-12'``.
    n
        Number of items (indices must lie in ``0 .. n-1``).
    what
        Name of the items in error messages (``'track'``, ``'bin'``).

    Returns
    -------
    list of int
        The indices in the given order, each once (``'all'`` gives ``0 .. n-1``).

    Raises
    ------
    ValueError
        If the text is not such a selection, a range is reversed or an index is out of range.
    """
    if not is_index_spec(spec):
        raise ValueError(f"cannot parse {what} {spec!r}; expected e.g. '5', '10-20' or '1,5,7-9'")
    if spec.strip().lower() in ("all", "*"):
        return list(range(n))
    out: dict[int, None] = {}
    for term in spec.split(","):
        lo_text, _, hi_text = term.strip().partition("-")
        lo = int(lo_text)
        hi = int(hi_text) if hi_text.strip() else lo
        if hi < lo:
            raise ValueError(f"{what} range {term.strip()!r} is reversed")
        for i in range(lo, hi + 1):
            if not 0 <= i < n:
                raise ValueError(f"{what} index {i} is out of range (0..{n - 1})")
            out.setdefault(i, None)
    return list(out)
