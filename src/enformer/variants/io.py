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

import logging
import os
import zlib
from collections.abc import Iterable, Iterator
from pathlib import Path
from typing import Literal

from ..data.genome.textfiles import numbered_lines, open_text
from .records import (
    Record,
    SkipCallback,
    SkippedVariant,
    Variant,
    check_ref,
    only_variants,
    parse_pos,
    parse_variant,
    split_alts,
)

__all__ = [
    "detect_format",
    "iter_records",
    "read_tsv",
    "read_variants",
    "read_vcf",
]

logger = logging.getLogger(__name__)

_WHAT = "variant file"  # how the errors name the files read here
_VCF_SUFFIXES = (".vcf", ".vcf.gz", ".vcf.bgz")
_TSV_SUFFIXES = (".tsv", ".tsv.gz", ".txt", ".txt.gz")
_CHROM_NAMES = ("chrom", "chr", "chromosome", "#chrom", "#chr", "seqname", "contig")
_POS_NAMES = ("pos", "position", "start", "bp", "pos1")
_ID_NAMES = ("id", "name", "variant_id", "snp", "rsid", "variant")


# ------------------------------------------------------------------------------------------
# VCF
# ------------------------------------------------------------------------------------------


def _vcf_text_records(path: Path) -> Iterator[Record]:
    source = str(path)
    seen_header = False
    seen_meta = False
    records = 0
    for number, line in numbered_lines(path, _WHAT):
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
        pos = parse_pos(fields[1], where)
        vid = fields[2].strip()
        ref = check_ref(fields[3], where)
        yield from split_alts(
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
        raise FileNotFoundError(f"{_WHAT} not found: {path}")
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
            ref = check_ref(rec.REF or "", where)
            alts = list(rec.ALT) or ["."]
            yield from split_alts(
                rec.CHROM, int(rec.POS), ref, alts, rec.ID or None, number, source
            )
    finally:
        reader.close()


def _text_header_lines(path: Path) -> int | None:
    """Number of lines before the first record of a text VCF; ``None`` if it is not text."""
    count = 0
    try:
        with open_text(path, _WHAT) as fh:
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
    return only_variants(_vcf_records(Path(path), backend), on_skip)


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
    for number, line in numbered_lines(path, _WHAT):
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
        pos = parse_pos(fields[cols["pos"]], where)
        ref = check_ref(fields[cols["ref"]], where)
        vid = fields[cols["id"]].strip() if "id" in cols and cols["id"] < len(fields) else ""
        yield from split_alts(
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
    return only_variants(_tsv_records(Path(path)), on_skip)


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
    return only_variants(iter_records(source, fmt=fmt), on_skip)
