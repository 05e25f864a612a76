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

:func:`find_track_sheet` (in :mod:`.track_files`) locates the sheet of the official model's
heads, downloading it from the Basenji repository into a cache when allowed; the rows are
parsed by :mod:`.track_records`. Both are importable from here.
"""

from __future__ import annotations

import dataclasses
import difflib
import os
import re
from collections import Counter
from collections.abc import Iterable, Iterator, Sequence
from pathlib import Path
from typing import Any, overload

import numpy as np

from ..io.cache import default_cache_dir
from .track_files import DEFAULT_URL, TrackSheetNotFound, find_track_sheet
from .track_records import OFFICIAL_TRACK_COUNTS, STRANDS, Track, assay_of, parse_sheet_text

__all__ = [
    "DEFAULT_URL",
    "OFFICIAL_TRACK_COUNTS",
    "Track",
    "TrackSheet",
    "TrackSheetNotFound",
    "assay_of",
    "default_cache_dir",
    "find_track_sheet",
    "is_index_spec",
    "parse_index_spec",
]

_SEARCH_KEYS = ("assay", "search", "desc", "id", "strand")


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
        tracks = parse_sheet_text(text, source)
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
            if value not in STRANDS:
                raise ValueError(f"strand must be one of {STRANDS}, got {value!r}")
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
