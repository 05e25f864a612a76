"""Reference and alternative one-hot windows around variants.

Placement convention
--------------------
A variant's window of ``L`` bp (the model's input length) starts at ``pos0 - L // 2``, where
``pos0 = pos - 1`` is the 0-based position of the variant's first REF base. **The first REF
base therefore sits at 0-based input index** ``L // 2`` (98,304 for 196,608 bp). This is the
placement of DeepMind's Enformer variant notebook (``kipoiseq.Interval(chrom, pos0,
pos0).resize(L)``) and of :meth:`enformer.data.genome.Genome.window`; Basenji and gReLU put
the variant one base earlier, at ``L // 2 - 1``. With the published geometry (output bins of
128 bp starting at input index 40,960) the variant's base is the first base of output bin 448
of 896. The convention is named :data:`PLACEMENT` in every output's metadata.

Indel anchoring
---------------
The window is anchored at its **start**: the alternative window is the reference window with
the REF bases at ``pos0`` replaced by the ALT bases, then cut or filled **at the end** so it
keeps ``L`` bp:

* deletion (ALT shorter by ``d``): the end is filled with the ``d`` genome bases that follow the
  reference window;
* insertion (ALT longer by ``d``): the last ``d`` bases are dropped.

Everything upstream of the variant is identical in both windows: input positions
``< offset + len(shared prefix)`` (VCF's anchor base is such a prefix). Output bins that end at
or before the variant's first changed base compare the same genome bases in REF and ALT;
bins downstream of the variant compare windows whose genome coordinates differ by
``len(ALT) - len(REF)`` bp (the ALT window sees genome bases ``d`` bp further on for a deletion,
``d`` bp further back for an insertion). SNVs and MNVs leave every other base aligned.

REF check
---------
REF must equal the genome at ``[pos0, pos0 + len(REF))``. The ``on_ref_mismatch`` policy says
what to do otherwise: ``'fail'`` raises :class:`RefMismatchError` naming the file and line;
``'skip'`` reports the variant as skipped (with the genome's bases); ``'flip'`` handles a genome
that carries ALT: the genome window becomes the ALT window, the REF window is made by writing
REF into it (anchored as above), and the variant is marked ``flipped`` — scores keep the
input's orientation (ALT relative to REF). Under ``'flip'`` a REF that matches neither allele
is skipped.

Windows that run off a chromosome end are padded with ``N`` (all-zero rows) and a
:class:`~enformer.data.genome.GenomeWarning` names the variants.
"""

from __future__ import annotations

import dataclasses
import logging
import warnings
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Literal

import numpy as np

from ..data.genome import Genome, GenomeWarning
from ..data.sequence import one_hot
from .records import SkippedVariant, Variant, abbreviate

__all__ = [
    "INDEL_ANCHORING",
    "PLACEMENT",
    "PLACEMENT_DESCRIPTION",
    "AlleleSequences",
    "AlleleWindows",
    "Placement",
    "RefMismatchError",
    "allele_sequences",
    "group_variants",
    "make_allele_windows",
    "variant_window_start",
]

logger = logging.getLogger(__name__)

PLACEMENT = "L//2"
"""Name of the placement convention: the variant's first REF base at 0-based index ``L // 2``."""

PLACEMENT_DESCRIPTION = (
    "variant's first REF base at 0-based input index L//2 (window = genome[pos0 - L//2, "
    "pos0 - L//2 + L), pos0 = POS - 1); DeepMind's Enformer notebook convention "
    "(basenji/gReLU use L//2 - 1)"
)
"""Human-readable statement of :data:`PLACEMENT` for output metadata."""

INDEL_ANCHORING = (
    "window anchored at its start: ALT window = REF window with REF replaced by ALT at the "
    "variant, then cut (insertion) or filled with the following genome bases (deletion) at "
    "the end to keep L bp; bins upstream of the variant align exactly, bins downstream are "
    "offset by len(ALT) - len(REF) bp"
)
"""Human-readable statement of the indel rule for output metadata."""

RefPolicy = Literal["fail", "skip", "flip"]
_POLICIES = ("fail", "skip", "flip")


class RefMismatchError(ValueError):
    """A variant's REF allele does not match the genome.

    Parameters
    ----------
    message : str
        Full message, naming the file and line.
    reason : str, optional
        Short reason recorded for skipped variants.
    """

    def __init__(self, message: str, *, reason: str | None = None) -> None:
        super().__init__(message)
        self.reason = reason or message


def variant_window_start(pos0: int, length: int) -> int:
    """0-based genomic start of the ``length``-bp window of a variant at ``pos0``.

    Parameters
    ----------
    pos0 : int
        0-based position of the variant's first REF base.
    length : int
        Window length (the model's input length).

    Returns
    -------
    int
        ``pos0 - length // 2`` (see :data:`PLACEMENT`); may be negative near a chromosome start.
    """
    return int(pos0) - int(length) // 2


@dataclass(frozen=True)
class Placement:
    """Where a variant sits in its windows.

    Attributes
    ----------
    variant : Variant
        The variant as read.
    chrom : str
        The genome's name of the chromosome.
    start : int
        0-based genomic position of input index 0 of the reference window (``L`` bp; any
        shift margin lies before it).
    offset : int
        0-based input index of the variant's first REF base (``L // 2`` for a variant-centred
        window; elsewhere in a shared group window).
    flipped : bool
        The genome carries ALT; the REF window was built by editing (``on_ref_mismatch='flip'``).
    ref_row : int
        Row of the reference window in :attr:`AlleleWindows.ref`.
    padded : int
        Number of ``N`` bases padded into this variant's windows at chromosome ends.
    group : int
        Index of the group (shared reference window) the variant belongs to.
    """

    variant: Variant
    chrom: str
    start: int
    offset: int
    flipped: bool = False
    ref_row: int = 0
    padded: int = 0
    group: int = 0


@dataclass(frozen=True)
class AlleleSequences:
    """The two windows of one variant, as strings.

    Attributes
    ----------
    ref : str
        Reference window, ``length + 2 * margin`` bases.
    alt : str
        Alternative window, same length.
    placement : Placement
        Where the variant sits.
    """

    ref: str
    alt: str
    placement: Placement


@dataclass
class AlleleWindows:
    """One-hot windows of a batch of variants.

    Attributes
    ----------
    ref : numpy.ndarray
        uint8 ``(G, length + 2 * margin, 4)``: the distinct reference windows.
    alt : numpy.ndarray
        uint8 ``(V, length + 2 * margin, 4)``: one alternative window per placed variant.
    ref_index : numpy.ndarray
        int64 ``(V,)``: row of ``ref`` that ``alt[i]`` is compared with.
    placements : list of Placement
        Per alternative window, in input order.
    skipped : list of SkippedVariant
        Variants not placed (REF mismatch under ``'skip'``/``'flip'``), in input order.
    length : int
        Model input length ``L``.
    margin : int
        Extra bases on each side of every window (for shifted copies); input index ``i`` of the
        model's window is row ``margin + i``.
    """

    ref: np.ndarray
    alt: np.ndarray
    ref_index: np.ndarray
    placements: list[Placement]
    skipped: list[SkippedVariant]
    length: int
    margin: int

    def __len__(self) -> int:
        return len(self.placements)


# ------------------------------------------------------------------------------------------
# Groups
# ------------------------------------------------------------------------------------------


def group_variants(variants: Sequence[Variant], max_span: int | None) -> list[list[int]]:
    """Group nearby variants so that they share one reference window.

    Variants are sorted by chromosome and position (stably); consecutive ones on the same
    chromosome join a group while the group's span, from the first REF base of its leftmost
    variant to the end of the REF allele reaching furthest right, stays within ``max_span``
    bp (basenji's SNP clustering, greedy from the left). The group's window is centred on
    the midpoint ``(min pos0 + max pos0) // 2`` with the :data:`PLACEMENT` rule, so a group of
    one variant gets exactly the variant-centred window.

    Parameters
    ----------
    variants : sequence of Variant
        The variants.
    max_span : int or None
        Largest span (bp) of a group. ``None`` groups only variants at the same position
        (e.g. the ALTs of one multi-allelic record), whose centred windows are identical.

    Returns
    -------
    list of list of int
        Indices into ``variants``; every index appears in exactly one group. Groups are in
        genomic order, indices within a group in input order.
    """
    if max_span is not None and int(max_span) < 0:
        raise ValueError(f"max_span must be >= 0 or None, got {max_span}")
    order = sorted(range(len(variants)), key=lambda i: (variants[i].chrom, variants[i].pos0))
    groups: list[list[int]] = []
    current: list[int] = []
    first_pos = end = 0
    for i in order:
        v = variants[i]
        if current:
            head = variants[current[0]]
            if max_span is None:
                joins = v.chrom == head.chrom and v.pos0 == head.pos0
            else:
                joins = v.chrom == head.chrom and max(end, v.end0) - first_pos <= int(max_span)
            if joins:
                current.append(i)
                end = max(end, v.end0)
                continue
            groups.append(sorted(current))
        current, first_pos, end = [i], v.pos0, v.end0
    if current:
        groups.append(sorted(current))
    return groups


def _group_start(variants: Sequence[Variant], length: int) -> int:
    lo = min(v.pos0 for v in variants)
    hi = max(v.pos0 for v in variants)
    return variant_window_start((lo + hi) // 2, length)


# ------------------------------------------------------------------------------------------
# Building windows
# ------------------------------------------------------------------------------------------


def _resolve(variant: Variant, genome: Genome) -> tuple[str, int]:
    """The genome's chromosome name and length; errors name the variant's line."""
    try:
        chrom = genome.resolve_chrom(variant.chrom)
    except ValueError as err:
        raise ValueError(f"{variant.where}: {err}") from None
    size = genome.chrom_sizes[chrom]
    if variant.end0 > size:
        raise ValueError(
            f"{variant.where}: variant {variant.label} ends at {variant.end0:,}, beyond the end of "
            f"{chrom} ({size:,} bp) in {genome.path.name}; is the input on the same assembly?"
        )
    return chrom, size


def _fetch_padded(genome: Genome, chrom: str, size: int, start: int, end: int) -> tuple[str, int]:
    """Sequence of ``[start, end)`` with N outside the chromosome; also the number of N added."""
    lo, hi = max(start, 0), min(end, size)
    seq = genome.fetch(chrom, lo, hi) if hi > lo else ""
    left, right = lo - start, end - hi
    if left or right:
        seq = "N" * left + seq + "N" * right
    return seq, left + right


def _edit(seq: str, offset: int, old_len: int, new: str, length: int) -> str:
    """Replace ``old_len`` bases at ``offset`` by ``new`` and keep the first ``length`` bases."""
    return (seq[:offset] + new + seq[offset + old_len :])[:length]


def _place(
    variant: Variant,
    seq: str,
    o: int,
    length: int,
    policy: str,
    genome_name: str,
) -> tuple[str | None, str, bool]:
    """Return ``(ref_seq or None for the genome window, alt_seq, flipped)`` for one variant.

    ``seq`` is the genome from the window's first (margin) base on, long enough for any edit;
    ``o`` the variant's index in it; ``length`` the window length including margins.
    """
    ref, alt = variant.ref, variant.alt
    observed = seq[o : o + len(ref)]
    if observed == ref:
        return None, _edit(seq, o, len(ref), alt, length), False
    if policy == "flip" and seq[o : o + len(alt)] == alt:
        return _edit(seq, o, len(alt), ref, length), seq[:length], True
    neither = " nor ALT" if policy == "flip" else ""
    reason = (
        f"REF mismatch: the genome ({genome_name}) has {abbreviate(observed)} at "
        f"{variant.chrom}:{variant.pos:,}, not REF {abbreviate(ref)}{neither}"
    )
    message = f"{variant.where}: variant {variant.label}: {reason}"
    if policy == "fail":
        message += "; use on_ref_mismatch='skip' or 'flip' (--on-ref-mismatch) to go on"
    raise RefMismatchError(message, reason=reason)


def allele_sequences(
    variant: Variant,
    genome: Genome,
    length: int,
    *,
    margin: int = 0,
    start: int | None = None,
    on_ref_mismatch: RefPolicy = "fail",
) -> AlleleSequences:
    """Reference and alternative window strings of one variant.

    Parameters
    ----------
    variant : Variant
        The variant.
    genome : Genome
        Reference genome; the chromosome is resolved with :meth:`Genome.resolve_chrom`.
    length : int
        Window length ``L`` (the model's input length).
    margin : int, optional
        Extra bases on each side (for shifted copies); the strings have ``L + 2 * margin``
        bases.
    start : int, optional
        0-based genomic start of the window (without margin); default the variant-centred
        :func:`variant_window_start`. The variant's REF must lie inside the window.
    on_ref_mismatch : {'fail', 'skip', 'flip'}, optional
        See the module docstring; here ``'skip'`` raises too (the caller skips).

    Returns
    -------
    AlleleSequences
        Upper-case strings (``N`` outside the chromosome) and the placement.

    Raises
    ------
    RefMismatchError
        If REF does not match the genome (and, under ``'flip'``, ALT does not either).
    ValueError
        If the chromosome is unknown or the variant lies beyond its end (the message names the
        variant's file and line), or the variant is not inside the window.
    """
    policy = "fail" if on_ref_mismatch == "skip" else on_ref_mismatch
    refs, results = _build_group([variant], genome, length, margin, start, policy, 0)
    result = results[0]
    if isinstance(result, SkippedVariant):  # 'flip' and neither allele matches
        raise RefMismatchError(f"{variant.where}: variant {variant.label}: {result.reason}")
    alt_seq, placement = result
    return AlleleSequences(refs[placement.ref_row], alt_seq, placement)


def _build_group(
    variants: Sequence[Variant],
    genome: Genome,
    length: int,
    margin: int,
    start: int | None,
    policy: str,
    group: int,
) -> tuple[list[str], list[tuple[str, Placement] | SkippedVariant]]:
    """Windows of one group: distinct ref strings and, per variant, (alt, placement) or a skip."""
    if policy not in _POLICIES:
        raise ValueError(f"on_ref_mismatch must be one of {_POLICIES}, got {policy!r}")
    chrom, size = _resolve(variants[0], genome)
    for v in variants[1:]:
        if _resolve(v, genome)[0] != chrom:
            raise ValueError("a group of variants must lie on one chromosome")
    if start is None:
        start = _group_start(variants, length)
    full = length + 2 * margin
    extra = max(abs(len(v.ref) - len(v.alt)) for v in variants)
    first = start - margin
    for v in variants:
        if not (start <= v.pos0 and v.end0 <= start + length):
            raise ValueError(
                f"{v.where}: variant {v.label} does not lie inside its window "
                f"{chrom}:{start + 1:,}-{start + length:,}"
            )
    seq, padded = _fetch_padded(genome, chrom, size, first, first + full + extra)
    if padded and genome.warn_padding:
        names = ", ".join(v.spec for v in variants[:3]) + (" ..." if len(variants) > 3 else "")
        warnings.warn(
            f"the window of {names} ({chrom}:{first:,}-{first + full:,}, 0-based) runs off the "
            f"chromosome end ({chrom} has {size:,} bp); padded with {padded} N",
            GenomeWarning,
            stacklevel=3,
        )
    genome_window = seq[:full]
    refs: list[str] = []
    genome_row: int | None = None
    results: list[tuple[str, Placement] | SkippedVariant] = []
    for v in variants:
        offset = v.pos0 - start
        try:
            ref_seq, alt_seq, flipped = _place(
                v, seq, offset + margin, full, policy, genome.path.name
            )
        except RefMismatchError as err:
            if policy == "fail":
                raise
            results.append(SkippedVariant.from_variant(v, err.reason))
            continue
        if ref_seq is None:
            if genome_row is None:
                genome_row = len(refs)
                refs.append(genome_window)
            row = genome_row
        else:
            row = len(refs)
            refs.append(ref_seq)
        results.append((alt_seq, Placement(v, chrom, start, offset, flipped, row, padded, group)))
    return refs, results


def make_allele_windows(
    variants: Sequence[Variant],
    genome: Genome,
    length: int,
    *,
    margin: int = 0,
    on_ref_mismatch: RefPolicy = "fail",
    group_span: int | None = None,
) -> AlleleWindows:
    """One-hot reference and alternative windows for a batch of variants.

    Parameters
    ----------
    variants : sequence of Variant
        The variants (a chunk of a stream).
    genome : Genome
        Reference genome.
    length : int
        Model input length ``L``.
    margin : int, optional
        Extra genome bases on each side of every window, for shifted copies
        (``max(|shifts|)``).
    on_ref_mismatch : {'fail', 'skip', 'flip'}, optional
        REF check policy (see the module docstring).
    group_span : int, optional
        Share one reference window among variants within this many bp
        (:func:`group_variants`); each variant's ``offset`` in :class:`Placement` says where it
        sits. ``None`` (default) gives every variant its centred window; variants at the same
        position still share the (identical) reference window. Must be below ``L // 2``.

    Returns
    -------
    AlleleWindows
        Windows, the ``ref_index`` pairing, placements in input order and skipped variants.

    Raises
    ------
    RefMismatchError
        Under ``'fail'``, for the first variant whose REF does not match the genome.
    ValueError
        For an unknown chromosome or a position beyond its end, naming the file and line.
    """
    length, margin = int(length), int(margin)
    if margin < 0:
        raise ValueError(f"margin must be >= 0, got {margin}")
    if group_span is not None and not 0 <= int(group_span) < length // 2:
        raise ValueError(
            f"group_span must lie in [0, {length // 2}) bp for {length}-bp windows, "
            f"got {group_span}"
        )
    ref_rows: list[str] = []
    alt_rows: list[tuple[int, str, Placement]] = []
    skipped: list[tuple[int, SkippedVariant]] = []
    for g, members in enumerate(group_variants(variants, group_span)):
        group = [variants[i] for i in members]
        refs, results = _build_group(group, genome, length, margin, None, on_ref_mismatch, g)
        base = len(ref_rows)
        ref_rows.extend(refs)
        for i, result in zip(members, results, strict=True):
            if isinstance(result, SkippedVariant):
                skipped.append((i, result))
                continue
            alt_seq, p = result
            p = dataclasses.replace(p, ref_row=base + p.ref_row)
            alt_rows.append((i, alt_seq, p))
    alt_rows.sort(key=lambda r: r[0])
    skipped.sort(key=lambda r: r[0])
    full = length + 2 * margin
    ref = _encode(ref_rows, full)
    alt = _encode([s for _, s, _ in alt_rows], full)
    placements = [p for _, _, p in alt_rows]
    return AlleleWindows(
        ref=ref,
        alt=alt,
        ref_index=np.array([p.ref_row for p in placements], dtype=np.int64),
        placements=placements,
        skipped=[s for _, s in skipped],
        length=length,
        margin=margin,
    )


def _encode(seqs: list[str], length: int) -> np.ndarray:
    if not seqs:
        return np.zeros((0, length, 4), dtype=np.uint8)
    return one_hot(seqs, dtype=np.uint8, ambiguous="n").reshape(len(seqs), length, 4)
