"""Variant input: VCF / VCF.gz / BCF, TSV and ``chr:pos:ref>alt`` strings.

Every reader is a streaming iterator: a file is read line by line, so memory stays flat however
large the file is, and :func:`chunked` groups the stream into lists for batch work.

Conventions
-----------
* Positions are **1-based**, as in VCF (``Variant.pos``); ``Variant.pos0`` is the 0-based
  position of the first REF base.
* Alleles are upper-cased. REF must consist of ``A, C, G, T, N``; a REF with anything else is a
  malformed record.
* A record with several ALT alleles is split into one :class:`Variant` per ALT
  (``alt_index`` keeps the ALT's 0-based position in the record, so outputs can be joined back
  to the record).
* ALT alleles that cannot be scored are skipped with a reason, never silently: symbolic alleles
  (``<DEL>``, ``<*>``, ``<NON_REF>``), the spanning deletion ``*``, a missing ALT ``.``,
  breakends (``G]chr2:100]``) and alleles with characters other than ``A, C, G, T, N``. They
  are reported as :class:`SkippedVariant` through the ``on_skip`` callback (default: a log
  message) or, from :func:`iter_records`, inline with the variants.
* A malformed line (too few columns, a position that is not a positive integer, an empty or
  invalid REF) raises :class:`ValueError` naming the file and the 1-based line number.

VCF files are parsed as text by default: this gives exact line numbers in every message and
tolerates blank lines (cyvcf2/htslib crash on a blank data line and report errors without a
line number). BCF needs ``backend="cyvcf2"`` (chosen automatically for ``.bcf`` files).
"""

from __future__ import annotations

import gzip
import io
import logging
import os
import re
import zlib
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import IO, Literal, TypeVar

__all__ = [
    "SkippedVariant",
    "Variant",
    "chunked",
    "abbreviate",
    "detect_format",
    "iter_records",
    "parse_variant",
    "read_tsv",
    "read_variants",
    "read_vcf",
]

logger = logging.getLogger(__name__)

T = TypeVar("T")

_BASES = frozenset("ACGTN")
_VCF_SUFFIXES = (".vcf", ".vcf.gz", ".vcf.bgz")
_TSV_SUFFIXES = (".tsv", ".tsv.gz", ".txt", ".txt.gz")
_CHROM_NAMES = ("chrom", "chr", "chromosome", "#chrom", "#chr", "seqname", "contig")
_POS_NAMES = ("pos", "position", "start", "bp", "pos1")
_ID_NAMES = ("id", "name", "variant_id", "snp", "rsid", "variant")
_STRING_EXAMPLE = "'chr1:12345:A>G' or 'chr1:12345:A:G' (1-based position)"


def abbreviate(text: str, limit: int = 40) -> str:
    """``repr(text)`` for a message, with the middle of a long text left out.

    Error messages quote what the user gave; a 140-kb allele must not become a 140-kb line.

    Parameters
    ----------
    text : str
        The text to quote.
    limit : int, optional
        Characters of ``text`` kept at most (split between its start and end).

    Returns
    -------
    str
        E.g. ``'ACGTACGT...(139,984 more)...TTGA'``.
    """
    text = str(text)
    if len(text) <= limit:
        return repr(text)
    keep = max(2, limit // 2)
    return repr(f"{text[:keep]}...({len(text) - 2 * keep:,} more)...{text[-keep:]}")


@dataclass(frozen=True)
class Variant:
    """One biallelic variant.

    Attributes
    ----------
    chrom : str
        Chromosome as written in the input (resolved against the genome later).
    pos : int
        1-based position of the first REF base.
    ref : str
        Reference allele, upper case (``A, C, G, T, N``).
    alt : str
        Alternative allele, upper case (``A, C, G, T, N``); may equal ``ref``.
    id : str or None
        Identifier (VCF ID column, TSV ``id``); ``None`` when missing (``.``).
    line : int or None
        1-based line of the input file the variant came from (``None`` for strings and
        variants built in code).
    alt_index : int
        0-based index of this ALT among the record's ALT alleles (0 for biallelic records).
    source : str or None
        File the variant came from, for messages.
    """

    chrom: str
    pos: int
    ref: str
    alt: str
    id: str | None = None
    line: int | None = None
    alt_index: int = 0
    source: str | None = None

    def __post_init__(self) -> None:
        if not isinstance(self.chrom, str) or not self.chrom:
            raise ValueError(f"variant chrom must be a non-empty string, got {self.chrom!r}")
        if isinstance(self.pos, bool) or not hasattr(self.pos, "__index__"):
            raise TypeError(f"variant pos must be an integer, got {self.pos!r}")
        object.__setattr__(self, "pos", int(self.pos))
        if self.pos < 1:
            raise ValueError(f"variant pos is 1-based and must be >= 1, got {self.pos}")
        object.__setattr__(self, "ref", str(self.ref).upper())
        object.__setattr__(self, "alt", str(self.alt).upper())
        for which, allele in (("ref", self.ref), ("alt", self.alt)):
            if not allele or not set(allele) <= _BASES:
                raise ValueError(
                    f"variant {which} allele must be a non-empty string of A, C, G, T, N; "
                    f"got {abbreviate(allele)}"
                )

    @property
    def pos0(self) -> int:
        """0-based position of the first REF base (``pos - 1``)."""
        return self.pos - 1

    @property
    def end0(self) -> int:
        """0-based exclusive end of the REF allele on the genome (``pos0 + len(ref)``)."""
        return self.pos0 + len(self.ref)

    @property
    def name(self) -> str:
        """``id`` if set, else ``chrom:pos:ref>alt``."""
        return self.id if self.id else self.spec

    @property
    def spec(self) -> str:
        """The variant as ``chrom:pos:ref>alt`` text (accepted by :func:`parse_variant`)."""
        return f"{self.chrom}:{self.pos}:{self.ref}>{self.alt}"

    @property
    def label(self) -> str:
        """:attr:`spec` for messages: long alleles are abbreviated (see :func:`abbreviate`)."""
        ref, alt = (
            a if len(a) <= 20 else abbreviate(a, 20).strip("'") for a in (self.ref, self.alt)
        )
        return f"{self.chrom}:{self.pos}:{ref}>{alt}"

    @property
    def kind(self) -> str:
        """``'SNV'``, ``'MNV'``, ``'insertion'``, ``'deletion'`` or ``'complex'``.

        Insertions and deletions are recognised after removing the alleles' shared prefix
        (VCF's anchor base): ``A>AT`` is an insertion, ``AT>A`` a deletion, ``AT>GCC`` complex.
        """
        if len(self.ref) == len(self.alt):
            return "SNV" if len(self.ref) == 1 else "MNV"
        short, long_ = sorted((self.ref, self.alt), key=len)
        if long_.startswith(short) or long_.endswith(short):
            return "insertion" if len(self.alt) > len(self.ref) else "deletion"
        return "complex"

    @property
    def where(self) -> str:
        """Where the variant came from, e.g. ``'in.vcf, line 12'`` (for messages)."""
        if self.source is not None and self.line is not None:
            return f"{self.source}, line {self.line}"
        if self.line is not None:
            return f"line {self.line}"
        return self.label


@dataclass(frozen=True)
class SkippedVariant:
    """A variant (or ALT allele) that was not scored, and why.

    Attributes
    ----------
    chrom, pos, ref, alt, id
        As read (``pos`` 1-based; alleles as written, upper-cased).
    line : int or None
        1-based line of the input file.
    reason : str
        Why it was skipped, e.g. ``'symbolic ALT allele <DEL>'`` or ``'REF mismatch ...'``.
    source : str or None
        Input file.
    alt_index : int
        0-based index of the ALT among the record's ALT alleles.
    """

    chrom: str
    pos: int
    ref: str
    alt: str
    id: str | None
    line: int | None
    reason: str
    source: str | None = None
    alt_index: int = 0

    @classmethod
    def from_variant(cls, variant: Variant, reason: str) -> SkippedVariant:
        """Build a skip record for a parsed :class:`Variant`.

        Parameters
        ----------
        variant : Variant
            The variant.
        reason : str
            Why it is skipped.

        Returns
        -------
        SkippedVariant
            With the variant's fields and the reason.
        """
        return cls(
            variant.chrom,
            variant.pos,
            variant.ref,
            variant.alt,
            variant.id,
            variant.line,
            reason,
            variant.source,
            variant.alt_index,
        )


Record = Variant | SkippedVariant
SkipCallback = Callable[[SkippedVariant], None]


# ------------------------------------------------------------------------------------------
# Helpers
# ------------------------------------------------------------------------------------------


def chunked(items: Iterable[T], size: int) -> Iterator[list[T]]:
    """Group an iterable into lists of ``size`` items (the last may be shorter).

    Parameters
    ----------
    items : iterable
        Any iterable, consumed lazily.
    size : int
        Items per chunk (>= 1).

    Yields
    ------
    list
        Consecutive items; memory holds one chunk at a time.
    """
    if int(size) < 1:
        raise ValueError(f"chunk size must be >= 1, got {size}")
    chunk: list[T] = []
    for item in items:
        chunk.append(item)
        if len(chunk) == size:
            yield chunk
            chunk = []
    if chunk:
        yield chunk


def _log_skip(skipped: SkippedVariant) -> None:
    where = f"{skipped.source}, line {skipped.line}" if skipped.line is not None else "input"
    logger.warning(
        "%s: skipped %s:%s %s>%s: %s",
        where,
        skipped.chrom,
        skipped.pos,
        skipped.ref,
        skipped.alt,
        skipped.reason,
    )


def _only_variants(records: Iterator[Record], on_skip: SkipCallback | None) -> Iterator[Variant]:
    report = on_skip if on_skip is not None else _log_skip
    for record in records:
        if isinstance(record, SkippedVariant):
            report(record)
        else:
            yield record


def _alt_problem(alt: str) -> str | None:
    """Why an ALT allele cannot be scored, or ``None`` if it can."""
    if alt in ("", "."):
        return "no ALT allele ('.')"
    if alt == "*":
        return "spanning deletion ALT '*' (allele described by another record)"
    if alt.startswith("<") and alt.endswith(">"):
        return f"symbolic ALT allele {alt}"
    if "[" in alt or "]" in alt:
        return f"breakend ALT allele {alt}"
    bad = set(alt.upper()) - _BASES
    if bad:
        shown = "".join(sorted(bad))
        return f"ALT allele {abbreviate(alt)} has characters other than A, C, G, T, N ({shown})"
    return None


def _parse_pos(text: str, where: str) -> int:
    cleaned = text.strip().replace(",", "")
    if not cleaned.isdigit():
        raise ValueError(f"{where}: position must be a positive integer, got {abbreviate(text)}")
    pos = int(cleaned)
    if pos < 1:
        raise ValueError(f"{where}: position is 1-based and must be >= 1, got {pos}")
    return pos


def _check_ref(ref: str, where: str) -> str:
    ref = ref.strip().upper()
    if not ref or ref == ".":
        raise ValueError(f"{where}: REF allele is missing")
    bad = set(ref) - _BASES
    if bad:
        raise ValueError(
            f"{where}: REF allele {abbreviate(ref)} has characters other than A, C, G, T, N "
            f"({''.join(sorted(bad))})"
        )
    return ref


def _split_alts(
    chrom: str,
    pos: int,
    ref: str,
    alts: Sequence[str],
    vid: str | None,
    line: int | None,
    source: str | None,
) -> Iterator[Record]:
    """One record per ALT: a Variant, or a SkippedVariant with the reason."""
    for k, alt in enumerate(alts):
        alt = alt.strip()
        problem = _alt_problem(alt)
        if problem is not None:
            yield SkippedVariant(chrom, pos, ref, alt, vid, line, problem, source, k)
        else:
            yield Variant(chrom, pos, ref, alt.upper(), vid, line, k, source)


def _open_text(path: Path) -> IO[str]:
    if not path.exists():
        raise FileNotFoundError(f"variant file not found: {path}")
    if path.is_dir():
        raise IsADirectoryError(f"expected a variant file but got a directory: {path}")
    with open(path, "rb") as fh:
        magic = fh.read(2)
    if magic == b"\x1f\x8b":
        return io.TextIOWrapper(gzip.open(path, "rb"), encoding="utf-8")
    return open(path, encoding="utf-8")  # noqa: SIM115 - the caller closes it


def numbered_lines(path: Path) -> Iterator[tuple[int, str]]:
    """Yield ``(line_number, line)`` of a plain or gzip text file, without line endings.

    Raises
    ------
    ValueError
        For a file that is not UTF-8 text or a corrupt gzip file.
    """
    try:
        with _open_text(path) as fh:
            for number, line in enumerate(fh, start=1):
                yield number, line.rstrip("\r\n")
    except UnicodeDecodeError as err:
        raise ValueError(f"{path} is not a text file (cannot decode as UTF-8): {err}") from err
    except (EOFError, gzip.BadGzipFile, zlib.error) as err:
        raise ValueError(f"{path} is a corrupt or truncated gzip file: {err}") from err


# ------------------------------------------------------------------------------------------
# Strings
# ------------------------------------------------------------------------------------------

_ALLELES_RE = re.compile(r"^([A-Za-z]+)>([A-Za-z.*<>,\[\]:0-9_]+)$")


def parse_variant(text: str, *, variant_id: str | None = None) -> Variant:
    """Parse ``chr:pos:ref>alt`` (or ``chr:pos:ref:alt``) into a :class:`Variant`.

    Parameters
    ----------
    text : str
        E.g. ``'chr1:14677:G>A'`` or ``'chr1:14677:G:A'``; 1-based position (thousands
        separators allowed). Chromosome names may themselves contain ``':'``.
    variant_id : str, optional
        Identifier to attach.

    Returns
    -------
    Variant
        With ``line=None``.

    Raises
    ------
    ValueError
        If the text does not have this form, the position is not a positive integer, an
        allele has characters other than ``A, C, G, T, N``, or ALT lists several alleles.
    """
    if not isinstance(text, str):
        raise TypeError(f"variant text must be a string, got {type(text).__name__}")
    raw = text.strip()
    head, sep, alleles = raw.rpartition(":")
    match = _ALLELES_RE.match(alleles) if sep else None
    if match is not None:
        ref, alt = match.group(1), match.group(2)
        chrom, sep2, pos_text = head.rpartition(":")
    else:
        parts = raw.rsplit(":", 3)
        if len(parts) != 4:
            raise ValueError(f"cannot parse variant {abbreviate(text)}; expected {_STRING_EXAMPLE}")
        chrom, pos_text, ref, alt = parts
        sep2 = ":"
    if not sep2 or not chrom.strip():
        raise ValueError(f"cannot parse variant {abbreviate(text)}; expected {_STRING_EXAMPLE}")
    where = f"variant {abbreviate(text)}"
    pos = _parse_pos(pos_text, where)
    ref = _check_ref(ref, where)
    if "," in alt:
        raise ValueError(f"{where}: give one ALT allele per variant string, got {abbreviate(alt)}")
    problem = _alt_problem(alt.strip())
    if problem is not None:
        raise ValueError(f"{where}: {problem}")
    return Variant(chrom.strip(), pos, ref, alt.strip().upper(), variant_id)


# ------------------------------------------------------------------------------------------
# VCF
# ------------------------------------------------------------------------------------------


def _vcf_text_records(path: Path) -> Iterator[Record]:
    source = str(path)
    seen_header = False
    seen_meta = False
    records = 0
    for number, line in numbered_lines(path):
        if not line.strip():
            continue
        if line.startswith("##"):
            if seen_header:
                raise ValueError(f"{source}, line {number}: '##' meta line after the #CHROM line")
            seen_meta = True
            continue
        if line.startswith("#"):
            seen_header = True
            continue
        records += 1
        where = f"{source}, line {number}"
        fields = line.split("\t", 8)
        if len(fields) < 5:
            raise ValueError(
                f"{where}: a VCF record needs at least 5 tab-separated columns "
                f"(CHROM POS ID REF ALT), got {len(fields)}: {line[:80]!r}"
            )
        chrom = fields[0].strip()
        if not chrom:
            raise ValueError(f"{where}: empty CHROM")
        pos = _parse_pos(fields[1], where)
        vid = fields[2].strip()
        ref = _check_ref(fields[3], where)
        yield from _split_alts(
            chrom,
            pos,
            ref,
            fields[4].split(","),
            None if vid in ("", ".") else vid,
            number,
            source,
        )
    if records == 0:
        _no_records(path, seen_header or seen_meta)


def _no_records(path: Path, has_header: bool) -> None:
    """An empty file is refused (htslib refuses it too); a header alone is only warned about."""
    if not has_header:
        raise ValueError(
            f"{path} is empty: not a VCF (a VCF has at least a '#CHROM POS ID REF ALT' header "
            "line); was it truncated or never written?"
        )
    logger.warning("%s has a header but no variant records: nothing to score", path)


def _vcf_cyvcf2_records(path: Path) -> Iterator[Record]:
    try:
        import cyvcf2
    except ImportError as err:  # pragma: no cover - depends on the environment
        raise ImportError(
            f"reading {path.name} needs cyvcf2: pip install 'enformer[variants]'"
        ) from err
    if not path.exists():
        raise FileNotFoundError(f"variant file not found: {path}")
    source = str(path)
    header_lines = _text_header_lines(path)  # None for BCF: records are numbered instead
    reader = cyvcf2.VCF(source)
    count = 0
    try:
        records = iter(reader)
        while True:
            try:
                rec = next(records)
            except StopIteration:
                break
            except Exception as err:  # cyvcf2 raises a bare Exception on parse errors
                raise ValueError(
                    f"{source}, record {count + 1}: htslib could not parse it ({err})"
                ) from err
            count += 1
            number = None if header_lines is None else header_lines + count
            where = f"{source}, " + (f"record {count}" if number is None else f"line {number}")
            ref = _check_ref(rec.REF or "", where)
            alts = list(rec.ALT) or ["."]
            yield from _split_alts(
                rec.CHROM, int(rec.POS), ref, alts, rec.ID or None, number, source
            )
    finally:
        reader.close()


def _text_header_lines(path: Path) -> int | None:
    """Number of lines before the first record of a text VCF; ``None`` if it is not text."""
    count = 0
    try:
        with _open_text(path) as fh:
            for line in fh:
                if line.startswith("#"):
                    count += 1
                else:
                    return count
    except (UnicodeDecodeError, OSError, EOFError, zlib.error):
        return None
    return count


def read_vcf(
    path: str | os.PathLike[str],
    *,
    on_skip: SkipCallback | None = None,
    backend: Literal["auto", "text", "cyvcf2"] = "auto",
) -> Iterator[Variant]:
    """Stream the variants of a VCF, VCF.gz (bgzip or gzip) or BCF file.

    Parameters
    ----------
    path : str or os.PathLike
        The file. Only the CHROM, POS, ID, REF and ALT columns are read; the header may be
        absent.
    on_skip : callable, optional
        Called with a :class:`SkippedVariant` for every ALT allele that cannot be scored
        (symbolic, ``*``, ``.``, breakend, non-ACGTN). Default: log a warning.
    backend : {'auto', 'text', 'cyvcf2'}, optional
        ``'text'`` parses the file line by line (exact line numbers; the default for VCF);
        ``'cyvcf2'`` uses htslib through cyvcf2 (needed for BCF; ``'auto'`` picks it for
        ``.bcf`` files). With cyvcf2 the line numbers assume no blank lines.

    Yields
    ------
    Variant
        One per scorable ALT allele, multi-allelic records split, in file order.

    Raises
    ------
    FileNotFoundError
        If the file does not exist.
    ValueError
        On a malformed record, naming the file and line.
    """
    return _only_variants(_vcf_records(Path(path), backend), on_skip)


def _vcf_records(path: Path, backend: str = "auto") -> Iterator[Record]:
    if backend not in ("auto", "text", "cyvcf2"):
        raise ValueError(f"backend must be 'auto', 'text' or 'cyvcf2', got {backend!r}")
    if backend == "cyvcf2" or (backend == "auto" and path.name.lower().endswith(".bcf")):
        return _vcf_cyvcf2_records(path)
    return _vcf_text_records(path)


# ------------------------------------------------------------------------------------------
# TSV
# ------------------------------------------------------------------------------------------


def _tsv_columns(fields: list[str], where: str) -> dict[str, int] | None:
    """Column positions from a header row, or ``None`` if the row is data."""
    lowered = [f.strip().lower() for f in fields]
    if len(fields) >= 2 and _parse_int_or_none(fields[1]) is not None:
        return None
    if not any(name in _CHROM_NAMES for name in lowered):
        shown = "\t".join(fields)[:80]
        raise ValueError(
            f"{where}: expected a header 'chrom pos ref alt [id]' or a data row with an integer "
            f"position in column 2, got {shown!r}"
        )
    columns: dict[str, int] = {}
    for i, name in enumerate(lowered):
        key = (
            "chrom"
            if name in _CHROM_NAMES
            else "pos"
            if name in _POS_NAMES
            else "ref"
            if name in ("ref", "ref_allele", "reference")
            else "alt"
            if name in ("alt", "alt_allele", "alternate", "alts")
            else "id"
            if name in _ID_NAMES
            else None
        )
        if key is not None and key not in columns:
            columns[key] = i
    missing = [k for k in ("chrom", "pos", "ref", "alt") if k not in columns]
    if missing:
        raise ValueError(f"{where}: header lacks column(s) {', '.join(missing)}")
    return columns


def _parse_int_or_none(text: str) -> int | None:
    cleaned = text.strip().replace(",", "")
    return int(cleaned) if cleaned.isdigit() else None


def _tsv_records(path: Path) -> Iterator[Record]:
    source = str(path)
    columns: dict[str, int] | None = None
    first = True
    for number, line in numbered_lines(path):
        if not line.strip():
            continue
        where = f"{source}, line {number}"
        fields = line.split("\t") if "\t" in line else line.split()
        if line.startswith("#"):
            if first and any(f.strip().lower() in _CHROM_NAMES for f in fields):
                columns = _tsv_columns(fields, where)
                first = False
            continue
        if first:
            first = False
            columns = _tsv_columns(fields, where)
            if columns is not None:
                continue
        cols = columns or {"chrom": 0, "pos": 1, "ref": 2, "alt": 3, "id": 4}
        needed = max(cols[k] for k in ("chrom", "pos", "ref", "alt")) + 1
        if len(fields) < needed:
            raise ValueError(
                f"{where}: expected at least {needed} columns (chrom, pos, ref, alt[, id]), "
                f"got {len(fields)}: {line[:80]!r}"
            )
        chrom = fields[cols["chrom"]].strip()
        if not chrom:
            raise ValueError(f"{where}: empty chrom")
        pos = _parse_pos(fields[cols["pos"]], where)
        ref = _check_ref(fields[cols["ref"]], where)
        vid = fields[cols["id"]].strip() if "id" in cols and cols["id"] < len(fields) else ""
        yield from _split_alts(
            chrom,
            pos,
            ref,
            fields[cols["alt"]].split(","),
            None if vid in ("", ".") else vid,
            number,
            source,
        )
    if first:
        raise ValueError(
            f"{path} is empty: no header and no variants (expected columns chrom, pos, ref, "
            "alt[, id]); was it truncated or never written?"
        )


def read_tsv(
    path: str | os.PathLike[str], *, on_skip: SkipCallback | None = None
) -> Iterator[Variant]:
    """Stream variants from a tab-separated file with columns ``chrom pos ref alt [id]``.

    Parameters
    ----------
    path : str or os.PathLike
        Plain or gzip-compressed. The header is optional: when the first row's second column
        is not an integer it is read as a header and the columns may come in any order
        (``chrom``/``chr``/``#chrom``, ``pos``/``position``, ``ref``, ``alt``,
        ``id``/``name``/``variant_id``). Without a header the first 4 (or 5) columns are
        ``chrom pos ref alt [id]``. Lines starting with ``#`` are comments; files without
        tabs are split on whitespace. Positions are 1-based. Several comma-separated ALT
        alleles are split.
    on_skip : callable, optional
        Called with each :class:`SkippedVariant` (default: log a warning).

    Yields
    ------
    Variant
        In file order.

    Raises
    ------
    FileNotFoundError
        If the file does not exist.
    ValueError
        On a malformed line, naming the file and line.
    """
    return _only_variants(_tsv_records(Path(path)), on_skip)


# ------------------------------------------------------------------------------------------
# Any source
# ------------------------------------------------------------------------------------------


def detect_format(path: str | os.PathLike[str]) -> Literal["vcf", "tsv"]:
    """Tell a VCF from a TSV by the file name (``.vcf``, ``.vcf.gz``, ``.bcf`` -> VCF).

    Parameters
    ----------
    path : str or os.PathLike
        The file name.

    Returns
    -------
    {'vcf', 'tsv'}
        The format.

    Raises
    ------
    ValueError
        If the suffix is neither.
    """
    name = Path(path).name.lower()
    if name.endswith((*_VCF_SUFFIXES, ".bcf")):
        return "vcf"
    if name.endswith(_TSV_SUFFIXES):
        return "tsv"
    raise ValueError(
        f"cannot tell the format of {Path(path).name} from its suffix; name it .vcf, .vcf.gz, "
        ".bcf, .tsv or .tsv.gz, or pass the format explicitly"
    )


def _looks_like_variant(text: str) -> bool:
    try:
        parse_variant(text)
    except (ValueError, TypeError):
        return False
    return True


def iter_records(
    source: str | os.PathLike[str] | Iterable[Variant | str],
    *,
    fmt: Literal["vcf", "tsv"] | None = None,
) -> Iterator[Record]:
    """Stream variants **and** skipped alleles, in input order.

    Parameters
    ----------
    source : path or iterable
        A VCF/TSV path (format from ``fmt`` or the suffix), one ``chr:pos:ref>alt`` string
        (when no such file exists), or an iterable of :class:`Variant` objects and such
        strings.
    fmt : {'vcf', 'tsv'}, optional
        Format of a path.

    Yields
    ------
    Variant or SkippedVariant
        Every ALT allele of the input, in order.
    """
    if isinstance(source, str) and not os.path.exists(source) and _looks_like_variant(source):
        yield parse_variant(source)
        return
    if isinstance(source, str | os.PathLike):
        path = Path(source)
        kind = fmt or detect_format(path)
        if kind == "vcf":
            yield from _vcf_records(path)
        elif kind == "tsv":
            yield from _tsv_records(path)
        else:
            raise ValueError(f"fmt must be 'vcf' or 'tsv', got {fmt!r}")
        return
    for item in source:
        if isinstance(item, Variant | SkippedVariant):
            yield item
        elif isinstance(item, str):
            yield parse_variant(item)
        else:
            raise TypeError(
                f"variants must be Variant objects or 'chr:pos:ref>alt' strings, got "
                f"{type(item).__name__}"
            )


def read_variants(
    source: str | os.PathLike[str] | Iterable[Variant | str],
    *,
    fmt: Literal["vcf", "tsv"] | None = None,
    on_skip: SkipCallback | None = None,
) -> Iterator[Variant]:
    """Stream variants from a VCF/TSV path or an iterable of variants and strings.

    Parameters
    ----------
    source : path or iterable
        See :func:`iter_records`.
    fmt : {'vcf', 'tsv'}, optional
        Format of a path (default: from its suffix).
    on_skip : callable, optional
        Called with each :class:`SkippedVariant` (default: log a warning).

    Yields
    ------
    Variant
        In input order.
    """
    return _only_variants(iter_records(source, fmt=fmt), on_skip)
