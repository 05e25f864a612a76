"""Variant records: :class:`Variant`, :class:`SkippedVariant`, strings and parsing helpers.

The conventions (1-based positions, upper-cased alleles, one :class:`Variant` per ALT, skipped
ALTs reported with a reason) are described in :mod:`enformer.variants.io`, whose file readers
build these records with the helpers here.
"""

from __future__ import annotations

import logging
import re
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass
from typing import TypeVar

__all__ = [
    "Record",
    "SkipCallback",
    "SkippedVariant",
    "Variant",
    "abbreviate",
    "check_ref",
    "chunked",
    "only_variants",
    "parse_pos",
    "parse_variant",
    "split_alts",
]

logger = logging.getLogger(__name__)

T = TypeVar("T")

_BASES = frozenset("ACGTN")
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


def only_variants(records: Iterator[Record], on_skip: SkipCallback | None) -> Iterator[Variant]:
    """The variants of ``records``; each skipped record goes to ``on_skip`` (default: logged)."""
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


def parse_pos(text: str, where: str) -> int:
    """A 1-based position (commas allowed); ``ValueError`` naming ``where`` otherwise."""
    cleaned = text.strip().replace(",", "")
    if not cleaned.isdigit():
        raise ValueError(f"{where}: position must be a positive integer, got {abbreviate(text)}")
    pos = int(cleaned)
    if pos < 1:
        raise ValueError(f"{where}: position is 1-based and must be >= 1, got {pos}")
    return pos


def check_ref(ref: str, where: str) -> str:
    """REF upper-cased; ``ValueError`` naming ``where`` for an empty or invalid one."""
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


def split_alts(
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
    pos = parse_pos(pos_text, where)
    ref = check_ref(ref, where)
    if "," in alt:
        raise ValueError(f"{where}: give one ALT allele per variant string, got {abbreviate(alt)}")
    problem = _alt_problem(alt.strip())
    if problem is not None:
        raise ValueError(f"{where}: {problem}")
    return Variant(chrom.strip(), pos, ref, alt.strip().upper(), variant_id)
