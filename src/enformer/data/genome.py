"""Reference-genome access: intervals, regions, BED files and an indexed FASTA reader.

Coordinates are 0-based and half-open everywhere in this module (as in BED files and Python
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

Reading FASTA files needs the optional dependencies ``pysam`` (preferred; it reads bgzip-
compressed FASTA) or ``pyfaidx``: ``pip install 'enformer[genome]'``. They are imported only when
a :class:`Genome` is opened.
"""

from __future__ import annotations

import difflib
import gzip
import io
import logging
import os
import re
import warnings
import zlib
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import IO, Any, Literal, NamedTuple

from .sequence import COMPLEMENT

__all__ = [
    "Genome",
    "GenomeWarning",
    "Interval",
    "Window",
    "chrom_sizes",
    "numbered_lines",
    "parse_region",
    "read_bed",
    "read_fasta_sequences",
]

logger = logging.getLogger(__name__)

_INSTALL_HINT = "pip install 'enformer[genome]'"
_STRANDS = ("+", "-", ".")
# IUPAC nucleotide codes (plus U) accepted in user FASTA files.
_IUPAC = frozenset("ACGTUNRYSWKMBDHV")
_REGION_EXAMPLE = "'chr1:1,001-2,000' (1-based, inclusive) or 'chr1:1,500' (one base)"


class GenomeWarning(UserWarning):
    """Warning about genome access, e.g. a window that ran off a chromosome end.

    Silence it with ``warnings.filterwarnings("ignore", category=GenomeWarning)`` or, for the
    padding warning of one genome, ``Genome(path, warn_padding=False)``.
    """


# --------------------------------------------------------------------------------------------
# Intervals and regions
# --------------------------------------------------------------------------------------------


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
            start, end = _as_int(self.start), _as_int(self.end)
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
        width = _as_int(width)
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


def _as_int(value: Any) -> int:
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


# --------------------------------------------------------------------------------------------
# Text files: BED, chrom sizes, user FASTA
# --------------------------------------------------------------------------------------------


def _is_gzip(path: Path) -> bool:
    with open(path, "rb") as fh:
        return fh.read(2) == b"\x1f\x8b"


def _open_text(path: Path) -> IO[str]:
    """Open a plain or gzip-compressed text file for reading (UTF-8)."""
    if not path.exists():
        raise FileNotFoundError(f"file not found: {path}")
    if path.is_dir():
        raise IsADirectoryError(f"expected a file but got a directory: {path}")
    if _is_gzip(path):
        return io.TextIOWrapper(gzip.open(path, "rb"), encoding="utf-8")
    return open(path, encoding="utf-8")  # noqa: SIM115 - returned to the caller's `with`


def numbered_lines(path: Path) -> Iterator[tuple[int, str]]:
    """Yield ``(line_number, line)`` without the line ending; wrap decoding errors."""
    try:
        with _open_text(path) as fh:
            for number, line in enumerate(fh, start=1):
                yield number, line.rstrip("\r\n")
    except UnicodeDecodeError as err:
        raise ValueError(f"{path} is not a text file (cannot decode as UTF-8): {err}") from err
    except (EOFError, gzip.BadGzipFile, zlib.error) as err:
        raise ValueError(f"{path} is a corrupt or truncated gzip file: {err}") from err


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
        try:
            start, end = int(fields[1]), int(fields[2])
        except ValueError:
            raise ValueError(
                f"{where}: start and end must be integers, got {fields[1]!r} and {fields[2]!r}"
            ) from None
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


_FASTA_SUFFIXES = (".fa", ".fasta", ".fna", ".fa.gz", ".fasta.gz", ".fna.gz", ".fa.bgz")


def chrom_sizes(path: str | os.PathLike[str]) -> dict[str, int]:
    """Read chromosome lengths from a ``.fai`` index or a ``.chrom.sizes`` file.

    Parameters
    ----------
    path : str or os.PathLike
        A samtools ``.fai`` index or a UCSC ``.chrom.sizes`` file (``name<TAB>length`` per line;
        further columns are ignored). A FASTA path is also accepted when its ``.fai`` lies beside
        it. Empty lines and ``#`` comments are skipped.

    Returns
    -------
    dict of str to int
        Lengths in file order.

    Raises
    ------
    FileNotFoundError
        If the file does not exist.
    ValueError
        On a malformed line or a repeated name (message names file and line).
    """
    path = Path(path)
    if path.name.endswith(_FASTA_SUFFIXES):
        fai = path.with_name(path.name + ".fai")
        if not fai.exists():
            raise FileNotFoundError(
                f"{path} is a FASTA file and has no index {fai.name} beside it; "
                "build one with `samtools faidx` or open it with Genome(path)"
            )
        path = fai
    sizes: dict[str, int] = {}
    for number, line in numbered_lines(path):
        if not line.strip() or line.startswith("#"):
            continue
        fields = line.split("\t") if "\t" in line else line.split()
        where = f"{path}, line {number}"
        if len(fields) < 2:
            raise ValueError(f"{where}: expected 'name<TAB>length', got {line!r}")
        name = fields[0].strip()
        try:
            length = int(fields[1])
        except ValueError:
            raise ValueError(f"{where}: length must be an integer, got {fields[1]!r}") from None
        if length < 0:
            raise ValueError(f"{where}: negative length {length}")
        if name in sizes:
            raise ValueError(f"{where}: chromosome {name!r} is listed twice")
        sizes[name] = length
    if not sizes:
        raise ValueError(f"{path} lists no chromosomes")
    return sizes


def read_fasta_sequences(path: str | os.PathLike[str]) -> list[tuple[str, str]]:
    """Read all records of a (small) FASTA file of sequences, plain or gzip-compressed.

    Parameters
    ----------
    path : str or os.PathLike
        FASTA file. Each record is a ``>name [description]`` line followed by sequence lines.
        Blank lines and ``;`` comment lines are skipped.

    Returns
    -------
    list of (str, str)
        ``(name, sequence)`` pairs in file order; ``name`` is the header's first word and the
        sequence is upper-case with line breaks removed.

    Raises
    ------
    FileNotFoundError
        If the file does not exist.
    ValueError
        If the file is empty, has text before the first header, a record without a name or
        sequence, or characters that are not IUPAC nucleotide codes (message names file, line).
    """
    path = Path(path)
    records: list[tuple[str, str]] = []
    name: str | None = None
    header_line = 0
    chunks: list[str] = []

    def finish() -> None:
        if name is None:
            return
        if not chunks:
            raise ValueError(f"{path}, line {header_line}: record {name!r} has no sequence")
        records.append((name, "".join(chunks)))

    for number, line in numbered_lines(path):
        if line.startswith(">"):
            finish()
            words = line[1:].split()
            if not words:
                raise ValueError(f"{path}, line {number}: header line '>' has no sequence name")
            name, header_line, chunks = words[0], number, []
            continue
        text = "".join(line.split()).upper()
        if not text or line.startswith(";"):
            continue
        if name is None:
            raise ValueError(
                f"{path}, line {number}: text before the first '>' header; "
                "a FASTA file must start with a line like '>name'"
            )
        bad = set(text) - _IUPAC
        if bad:
            shown = ", ".join(repr(c) for c in sorted(bad)[:5])
            raise ValueError(
                f"{path}, line {number}: record {name!r} has characters that are not nucleotide "
                f"codes (A, C, G, T, N or IUPAC ambiguity codes): {shown}"
            )
        chunks.append(text)
    finish()
    if not records:
        raise ValueError(f"{path} contains no FASTA records (expected lines like '>name')")
    return records


# --------------------------------------------------------------------------------------------
# Indexed FASTA
# --------------------------------------------------------------------------------------------


class Window(NamedTuple):
    """A centred genome window: its interval and its sequence (upper-case, N-padded)."""

    interval: Interval
    sequence: str


def _compression(path: Path) -> Literal["plain", "bgzf", "gzip"]:
    """Tell plain text from BGZF (bgzip) and from ordinary gzip by the first block's header."""
    with open(path, "rb") as fh:
        head = fh.read(18)
    if head[:2] != b"\x1f\x8b":
        return "plain"
    # BGZF: gzip member with FEXTRA (flag 4) holding a 'BC' subfield.
    if len(head) >= 14 and head[3] & 4 and head[12:14] == b"BC":
        return "bgzf"
    return "gzip"


def _first_byte(path: Path, compression: str) -> bytes:
    """First non-whitespace byte of the (decompressed) file, or b'' if it is empty."""
    opener = gzip.open if compression != "plain" else open
    try:
        with opener(path, "rb") as fh:
            return fh.read(4096).lstrip()[:1]
    except (OSError, EOFError, zlib.error) as err:
        raise ValueError(f"{path} is a corrupt or truncated compressed file: {err}") from err


def _alias_candidates(name: str) -> list[str]:
    """Other spellings of a chromosome name: with/without 'chr', chrM/MT."""
    out: list[str] = []
    if name.lower().startswith("chr"):
        bare = name[3:]
        out.append(bare)
        if bare.upper() == "M":
            out.append("MT")
    else:
        out.append("chr" + name)
        if name.upper() == "MT":
            out.append("chrM")
        if name.upper() == "M":
            out.append("chrM")
    return out


class _PysamBackend:
    def __init__(self, path: Path) -> None:
        try:
            import pysam
        except ImportError as err:  # pragma: no cover - depends on the environment
            raise ImportError(f"reading FASTA with pysam needs pysam: {_INSTALL_HINT}") from err
        self._fa = pysam.FastaFile(str(path))
        self.sizes = dict(zip(self._fa.references, self._fa.lengths, strict=True))

    def fetch(self, chrom: str, start: int, end: int) -> str:
        return self._fa.fetch(reference=chrom, start=start, end=end)

    def close(self) -> None:
        self._fa.close()


class _PyfaidxBackend:
    def __init__(self, path: Path) -> None:
        try:
            import pyfaidx
        except ImportError as err:  # pragma: no cover - depends on the environment
            raise ImportError(f"reading FASTA with pyfaidx needs pyfaidx: {_INSTALL_HINT}") from err
        self._fa = pyfaidx.Fasta(str(path), as_raw=True, sequence_always_upper=True)
        self.sizes = {name: len(record) for name, record in self._fa.records.items()}

    def fetch(self, chrom: str, start: int, end: int) -> str:
        return self._fa[chrom][start:end]

    def close(self) -> None:
        self._fa.close()


def _pick_backend(backend: str) -> type[_PysamBackend] | type[_PyfaidxBackend]:
    if backend not in ("auto", "pysam", "pyfaidx"):
        raise ValueError(f"backend must be 'auto', 'pysam' or 'pyfaidx', got {backend!r}")
    if backend in ("auto", "pysam"):
        try:
            import pysam  # noqa: F401
        except ImportError as err:
            if backend == "pysam":
                raise ImportError(f"Genome(backend='pysam') needs pysam: {_INSTALL_HINT}") from err
        else:
            return _PysamBackend
    try:
        import pyfaidx  # noqa: F401
    except ImportError as err:
        raise ImportError(
            f"reading a genome FASTA needs pysam (preferred) or pyfaidx: {_INSTALL_HINT}"
        ) from err
    return _PyfaidxBackend


class Genome:
    """An indexed reference genome (plain or bgzip-compressed FASTA).

    Parameters
    ----------
    fasta_path : str or os.PathLike
        FASTA file, plain or bgzip-compressed, with its ``.fai`` index (and ``.gzi`` for bgzip).
        A missing index is built beside the file (this takes a few seconds per gigabase).
    chrom_aliases : bool, optional
        If True, chromosome names that differ from the FASTA's only by a ``chr`` prefix (and
        ``chrM``/``MT``) are mapped automatically. If False (the default) such names raise a
        ValueError explaining the mismatch.
    warn_padding : bool, optional
        Emit a :class:`GenomeWarning` when a fetched window runs off a chromosome end and is
        padded with N (default True).
    backend : {'auto', 'pysam', 'pyfaidx'}, optional
        Reader; ``'auto'`` uses pysam when installed, else pyfaidx (which needs biopython for
        bgzip files).

    Raises
    ------
    FileNotFoundError
        If the FASTA file does not exist.
    ValueError
        If the file is not a FASTA file, is gzip- rather than bgzip-compressed, is corrupt, or
        cannot be indexed.
    ImportError
        If neither pysam nor pyfaidx is installed.

    Notes
    -----
    A Genome may be pickled (it reopens the file on unpickling) and reopens its handle in a
    forked child process, so it can be used in DataLoader workers. Use it as a context manager
    or call :meth:`close`.
    """

    def __init__(
        self,
        fasta_path: str | os.PathLike[str],
        *,
        chrom_aliases: bool = False,
        warn_padding: bool = True,
        backend: Literal["auto", "pysam", "pyfaidx"] = "auto",
    ) -> None:
        self.path = Path(fasta_path)
        self.chrom_aliases = bool(chrom_aliases)
        self.warn_padding = bool(warn_padding)
        self.backend = backend
        self._closed = False
        self._reader: _PysamBackend | _PyfaidxBackend | None = None
        self._pid = os.getpid()
        self._reader = self._open()
        self._sizes: dict[str, int] = dict(self._reader.sizes)
        self._lower_names = {name.lower(): name for name in self._sizes}

    # ---- opening ------------------------------------------------------------------------

    def _open(self) -> _PysamBackend | _PyfaidxBackend:
        path = self.path
        if not path.exists():
            raise FileNotFoundError(f"genome FASTA not found: {path}")
        if path.is_dir():
            raise IsADirectoryError(f"expected a FASTA file but got a directory: {path}")
        reader_cls = _pick_backend(self.backend)
        compression = _compression(path)
        if compression == "gzip":
            raise ValueError(
                f"{path} is compressed with plain gzip, not bgzip, so it cannot be indexed for "
                f"random access; recompress it with bgzip (`gunzip {path.name} && bgzip "
                f"{path.name.removesuffix('.gz')}`) or leave it uncompressed"
            )
        if _first_byte(path, compression) != b">":
            raise ValueError(
                f"{path} does not look like a FASTA file: it should start with a '>name' line"
            )
        fai = path.with_name(path.name + ".fai")
        gzi = path.with_name(path.name + ".gzi")
        missing = [
            p.name for p in [fai] + ([gzi] if compression == "bgzf" else []) if not p.exists()
        ]
        if missing:
            logger.info("indexing %s (missing %s); this may take a while", path, ", ".join(missing))
        try:
            return reader_cls(path)
        except ImportError as err:
            if reader_cls is _PyfaidxBackend and compression == "bgzf":
                raise ImportError(
                    f"pyfaidx reads bgzip-compressed FASTA ({path.name}) only with biopython "
                    f"installed; install pysam ({_INSTALL_HINT}) or biopython ({err})"
                ) from err
            raise
        except Exception as err:
            detail = (
                f"could not build the missing index ({', '.join(missing)}): the directory may "
                "be read-only, or the FASTA truncated, corrupt or malformed (e.g. lines of unequal "
                "length within a record). Index it with `samtools faidx` where you can write"
                if missing
                else "the file may be corrupt or truncated, or its index stale (delete the "
                ".fai/.gzi files to have them rebuilt, or run `samtools faidx`)"
            )
            raise ValueError(f"cannot open genome FASTA {path}: {detail} ({err})") from err

    def _handle(self) -> _PysamBackend | _PyfaidxBackend:
        if self._closed or self._reader is None:
            raise ValueError(f"Genome {self.path.name} is closed")
        if os.getpid() != self._pid:  # forked child: never share a file handle with the parent
            self._reader = self._open()
            self._pid = os.getpid()
        return self._reader

    # ---- names and sizes ----------------------------------------------------------------

    @property
    def chrom_sizes(self) -> dict[str, int]:
        """Chromosome lengths in FASTA order (a copy)."""
        return dict(self._sizes)

    def __contains__(self, chrom: object) -> bool:
        """Whether ``chrom`` names a sequence (also via aliases when ``chrom_aliases`` is on)."""
        if not isinstance(chrom, str):
            return False
        if chrom in self._sizes:
            return True
        return self.chrom_aliases and self._alias(chrom) is not None

    def __iter__(self) -> Iterator[str]:
        return iter(self._sizes)

    def __len__(self) -> int:
        return len(self._sizes)

    def _alias(self, name: str) -> str | None:
        for candidate in _alias_candidates(name):
            if candidate in self._sizes:
                return candidate
        return None

    def resolve_chrom(self, name: str) -> str:
        """Return the FASTA's name for chromosome ``name``.

        Parameters
        ----------
        name : str
            Chromosome name as given by the user or an input file.

        Returns
        -------
        str
            ``name`` itself if the FASTA has it; with ``chrom_aliases=True``, the FASTA's
            spelling when the two differ only by a ``chr`` prefix (``1``/``chr1``,
            ``MT``/``chrM``).

        Raises
        ------
        ValueError
            If the chromosome is not in the genome. When only the naming style differs, the
            message says so and how to fix it; otherwise it lists some available names.
        """
        if name in self._sizes:
            return name
        alias = self._alias(name)
        if alias is not None:
            if self.chrom_aliases:
                return alias
            if alias.startswith("chr"):
                styles = "your input uses Ensembl-style names, the genome UCSC-style"
                fix = "add 'chr'"
            else:
                styles = "your input uses UCSC-style names, the genome Ensembl-style"
                fix = "remove 'chr'"
            raise ValueError(
                f"chromosome {name!r} is not in {self.path.name}; it has {alias!r} — {styles}; "
                f"rename (e.g. {fix}) or pass --chrom-alias / chrom_aliases=True"
            )
        close = difflib.get_close_matches(name, list(self._sizes), n=3, cutoff=0.75)
        folded = self._lower_names.get(name.lower())
        if folded is not None and folded not in close:
            close.insert(0, folded)
        hint = f"; did you mean {', '.join(repr(c) for c in close)}?" if close else "."
        names = list(self._sizes)
        shown = ", ".join(names[:8]) + (f", ... ({len(names)} in all)" if len(names) > 8 else "")
        raise ValueError(
            f"chromosome {name!r} is not in {self.path.name}{hint} It has: {shown}. "
            "Check that your input and the genome are the same assembly."
        )

    # ---- sequence -----------------------------------------------------------------------

    def fetch(self, chrom: str, start: int, end: int) -> str:
        """Return the upper-case sequence of ``[start, end)`` on ``chrom`` (0-based).

        Positions outside ``[0, chromosome length)`` are filled with ``N`` and, unless
        ``warn_padding`` is off, one :class:`GenomeWarning` says the window ran off the
        chromosome end.

        Parameters
        ----------
        chrom : str
            Chromosome name (resolved with :meth:`resolve_chrom`).
        start : int
            0-based start; may be negative.
        end : int
            0-based exclusive end, ``end >= start``.

        Returns
        -------
        str
            Exactly ``end - start`` characters.

        Raises
        ------
        ValueError
            If the chromosome is unknown, ``end < start``, the range does not overlap the
            chromosome at all (usually a different assembly), or the file cannot be read.
        """
        name = self.resolve_chrom(chrom)
        start, end = _as_int(start), _as_int(end)
        if end < start:
            raise ValueError(f"end ({end}) is before start ({start}) for {name}")
        length = self._sizes[name]
        if end == start:
            return ""
        if end <= 0 or start >= length:
            raise ValueError(
                f"{name}:{start}-{end} (0-based) lies entirely outside {name}, which has "
                f"{length:,} bases in {self.path.name}; is the input on the same assembly?"
            )
        lo, hi = max(start, 0), min(end, length)
        reader = self._handle()
        try:
            seq = reader.fetch(name, lo, hi)
        except (ValueError, OSError) as err:
            raise ValueError(
                f"failed to read {name}:{lo}-{hi} from {self.path}: the file may be corrupt or "
                f"its index stale (rebuild it with `samtools faidx`) ({err})"
            ) from err
        if len(seq) != hi - lo:
            raise ValueError(
                f"read {len(seq)} bases instead of {hi - lo} for {name}:{lo}-{hi} from "
                f"{self.path}: the index does not match the file (rebuild it with "
                "`samtools faidx`)"
            )
        seq = seq.upper()
        left, right = lo - start, end - hi
        if left or right:
            if self.warn_padding:
                warnings.warn(
                    f"window {name}:{start}-{end} (0-based) runs off the chromosome end "
                    f"({name} spans 0-{length:,}); padded with {left} N on the left and "
                    f"{right} N on the right",
                    GenomeWarning,
                    stacklevel=2,
                )
            seq = "N" * left + seq + "N" * right
        return seq

    def fetch_interval(self, interval: Interval, *, stranded: bool = False) -> str:
        """Return the sequence of an :class:`Interval` (see :meth:`fetch`).

        Parameters
        ----------
        interval : Interval
            The interval; its start may be negative.
        stranded : bool, optional
            If True and ``interval.strand == '-'``, return the reverse complement.

        Returns
        -------
        str
            Upper-case sequence, N-padded outside the chromosome.
        """
        seq = self.fetch(interval.chrom, interval.start, interval.end)
        if stranded and interval.strand == "-":
            seq = seq.translate(COMPLEMENT)[::-1]
        return seq

    def window(self, chrom: str, center: int, width: int) -> Window:
        """Return the ``width``-bp window centred on 0-based position ``center``.

        The window is ``[center - width // 2, center - width // 2 + width)``, so the base at
        ``center`` is at index ``width // 2`` of the sequence (98,304 for 196,608 bp).

        Parameters
        ----------
        chrom : str
            Chromosome name (resolved with :meth:`resolve_chrom`).
        center : int
            0-based position of the centre base; must lie on the chromosome.
        width : int
            Window length (> 0).

        Returns
        -------
        Window
            ``(interval, sequence)``; the interval uses the FASTA's chromosome name and may
            extend past the chromosome ends, where the sequence is N-padded.
        """
        name = self.resolve_chrom(chrom)
        center, width = _as_int(center), _as_int(width)
        if width <= 0:
            raise ValueError(f"width must be positive, got {width}")
        length = self._sizes[name]
        if not 0 <= center < length:
            raise ValueError(
                f"centre {center:,} (0-based) is outside {name} (length {length:,}) in "
                f"{self.path.name}; is the input on the same assembly?"
            )
        start = center - width // 2
        interval = Interval(name, start, start + width)
        return Window(interval, self.fetch(name, interval.start, interval.end))

    # ---- lifetime -----------------------------------------------------------------------

    def close(self) -> None:
        """Close the file handle (idempotent)."""
        if self._reader is not None and not self._closed:
            self._reader.close()
        self._reader = None
        self._closed = True

    def __enter__(self) -> Genome:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()

    def __getstate__(self) -> dict[str, Any]:
        return {
            "path": self.path,
            "chrom_aliases": self.chrom_aliases,
            "warn_padding": self.warn_padding,
            "backend": self.backend,
            "closed": self._closed,
        }

    def __setstate__(self, state: dict[str, Any]) -> None:
        self.__init__(  # type: ignore[misc]
            state["path"],
            chrom_aliases=state["chrom_aliases"],
            warn_padding=state["warn_padding"],
            backend=state["backend"],
        )
        if state["closed"]:
            self.close()

    def __repr__(self) -> str:
        state = "closed" if self._closed else f"{len(self._sizes)} sequences"
        return f"Genome({str(self.path)!r}, {state})"
