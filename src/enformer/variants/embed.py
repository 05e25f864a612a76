"""REF and ALT windows of variants as embedding inputs (``enformer embed --vcf``).

The windows are built exactly as ``enformer score`` builds them
(:func:`~enformer.variants.sequences.make_allele_windows`: the variant's first REF base at
input index ``L // 2``, indels anchored at the window start, REF checked against the genome),
one variant-centred window per allele. Each variant gives two
:class:`~enformer.inference.embed.EmbedInput` rows, ``ref`` then ``alt``, named by the
variant's id (or ``chrom:pos:ref>alt``); their coordinates are the REF window's.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable

import numpy as np

from ..data.genome import Genome
from ..inference.embed import EmbedInput
from .records import SkippedVariant, Variant
from .sequences import AlleleWindows, RefPolicy, make_allele_windows

__all__ = ["variant_embed_inputs"]

logger = logging.getLogger(__name__)


class _Windows:
    """Builds one variant's windows on demand, keeping the last variant's (REF then ALT)."""

    def __init__(self, genome: Genome, length: int, policy: RefPolicy) -> None:
        self.genome, self.length, self.policy = genome, length, policy
        self._last: tuple[Variant, AlleleWindows] | None = None

    def of(self, variant: Variant) -> AlleleWindows:
        if self._last is None or self._last[0] is not variant:
            built = make_allele_windows([variant], self.genome, self.length,
                                        on_ref_mismatch=self.policy)  # fmt: skip
            self._last = (variant, built)
        return self._last[1]

    def allele(self, variant: Variant, allele: str) -> np.ndarray:
        w = self.of(variant)
        return w.ref[int(w.ref_index[0])] if allele == "ref" else w.alt[0]


def variant_embed_inputs(
    variants: Iterable[Variant],
    genome: Genome,
    length: int,
    *,
    on_ref_mismatch: RefPolicy = "fail",
) -> tuple[list[EmbedInput], list[SkippedVariant]]:
    """Two embedding inputs per variant (REF, ALT), and the variants skipped.

    Every variant is placed once here (so an unknown chromosome or a REF mismatch under
    ``'fail'`` raises before anything is embedded); the one-hot windows are built again
    when each input is fetched, so memory does not grow with the number of variants.

    Parameters
    ----------
    variants : iterable of Variant
        E.g. from :func:`~enformer.variants.read_variants`.
    genome : Genome
        Reference genome.
    length : int
        Model input length ``L``.
    on_ref_mismatch : {'fail', 'skip', 'flip'}, optional
        REF check policy (:mod:`enformer.variants.sequences`).

    Returns
    -------
    (list of EmbedInput, list of SkippedVariant)
        Inputs in variant order, REF before ALT; the variants not placed.
    """
    windows = _Windows(genome, int(length), on_ref_mismatch)
    inputs: list[EmbedInput] = []
    skipped: list[SkippedVariant] = []
    for v in variants:
        placed = windows.of(v)
        if not placed.placements:
            skipped.extend(placed.skipped)
            continue
        p = placed.placements[0]
        for allele in ("ref", "alt"):
            fetch = _fetcher(windows, v, allele)
            inputs.append(EmbedInput(v.name, fetch, chrom=p.chrom, start=p.start, allele=allele))
    if skipped:
        logger.warning("%d variant(s) skipped (REF does not match the genome)", len(skipped))
    return inputs, skipped


def _fetcher(windows: _Windows, variant: Variant, allele: str):
    return lambda: windows.allele(variant, allele)
