"""FASTA files: chromosome sizes, small sequence files, and indexed (bgzip) random access.

Random access needs the optional dependencies ``pysam`` (preferred; it reads bgzip-compressed
FASTA) or ``pyfaidx``: ``pip install 'enformer[genome]'``. They are imported only when a file
is opened.
"""

from __future__ import annotations

import gzip
import logging
import os
import zlib
from pathlib import Path
from typing import Literal, Protocol

from .textfiles import numbered_lines

__all__ = ["FastaReader", "chrom_sizes", "open_fasta", "read_fasta_sequences"]

logger = logging.getLogger(__name__)

_INSTALL_HINT = "pip install 'enformer[genome]'"
# IUPAC nucleotide codes (plus U) accepted in user FASTA files.
_IUPAC = frozenset("ACGTUNRYSWKMBDHV")
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


class FastaReader(Protocol):
    """What :func:`open_fasta` returns: sizes, and 0-based half-open fetches within them."""

    sizes: dict[str, int]

    def fetch(self, chrom: str, start: int, end: int) -> str:
        """Sequence of ``[start, end)`` on ``chrom``, within the chromosome."""
        ...

    def close(self) -> None:
        """Release the file handle."""
        ...


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


def open_fasta(path: Path, backend: str = "auto") -> FastaReader:
    """Open an indexed FASTA file (plain or bgzip), building a missing index beside it.

    Parameters
    ----------
    path : Path
        The FASTA file.
    backend : {'auto', 'pysam', 'pyfaidx'}, optional
        Reader; ``'auto'`` uses pysam when installed, else pyfaidx.

    Returns
    -------
    FastaReader
        A reader with ``sizes`` (chromosome lengths in file order), ``fetch`` and ``close``.

    Raises
    ------
    FileNotFoundError, IsADirectoryError, ValueError, ImportError
        As described for :class:`~enformer.data.genome.Genome`.
    """
    if not path.exists():
        raise FileNotFoundError(f"genome FASTA not found: {path}")
    if path.is_dir():
        raise IsADirectoryError(f"expected a FASTA file but got a directory: {path}")
    reader_cls = _pick_backend(backend)
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
    missing = [p.name for p in [fai] + ([gzi] if compression == "bgzf" else []) if not p.exists()]
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
