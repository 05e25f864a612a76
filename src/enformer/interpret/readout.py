"""Where an interpretation looks: the input window around a region, and the read-out bins.

Shared by ``enformer attribute`` and ``enformer ism``: :func:`input_window` centres the
model's input on a region, :func:`mostly_n_warnings` reports a window the model cannot read
(mostly ``N``), and :func:`read_out_bins` picks the output bins a target sums over (a
gene's TSS bins, explicit bins, or every bin).
"""

from __future__ import annotations

import logging
import os
from dataclasses import dataclass

from ..data.annotation import find_gene, read_gtf
from ..data.genome import Genome, Interval
from ..data.tracks import parse_index_spec
from ..inference.engine import MOSTLY_N
from ..model.config import EnformerConfig
from ..model.geometry import output_geometry
from .target import tss_bins

__all__ = ["ReadOut", "input_window", "mostly_n_warnings", "read_out_bins"]

logger = logging.getLogger(__name__)


def input_window(genome: Genome, region: Interval, length: int) -> tuple[Interval, str]:
    """The ``length``-bp window centred on ``region`` and its bases (``N`` off the ends).

    A region longer than the window is logged: only its centre is seen.
    """
    chrom = genome.resolve_chrom(region.chrom)
    window = Interval(chrom, region.start, region.end).resize(length)
    if region.length > length:
        logger.warning(
            "region %s is longer than the model's input (%d bp); using the centred %d bp",
            region.to_ucsc(),
            length,
            length,
        )
    return window, genome.fetch(chrom, window.start, window.end)


def mostly_n_warnings(seq: str, where: str) -> list[str]:
    """A warning (logged, and returned for a summary) when ``seq`` is mostly ``N``."""
    frac = (seq.count("N") + seq.count("n")) / max(1, len(seq))
    if frac <= MOSTLY_N:
        return []
    message = (
        f"the input window {where} is {100 * frac:.0f}% N: the model sees little or no DNA "
        "sequence there (an assembly gap?), so its outputs mean little"
    )
    logger.warning("%s", message)
    return [message]


@dataclass(frozen=True)
class ReadOut:
    """Output bins of a target and how they were chosen.

    Attributes
    ----------
    bins : list of int
        Output bin indices.
    how : str
        ``'TSS of GENE (...)'``, ``'--bins'`` or ``'every output bin'``.
    gene : str or None
        The gene, when chosen by gene.
    tss : int or None
        Its TSS (0-based), when chosen by gene.
    """

    bins: list[int]
    how: str
    gene: str | None = None
    tss: int | None = None


def read_out_bins(
    config: EnformerConfig,
    chrom: str,
    window_start: int,
    *,
    gene: str | None = None,
    gtf: str | os.PathLike[str] | None = None,
    bins: str | None = None,
    tss_width: int = 3,
) -> ReadOut:
    """The output bins to read out: a gene's TSS bins, explicit bins, or every bin.

    Parameters
    ----------
    config : EnformerConfig
        The model's configuration (its output geometry).
    chrom, window_start : str, int
        Where the model's input window lies.
    gene : str, optional
        Read out at this gene's TSS bins (needs ``gtf``).
    gtf : path-like, optional
        Gene annotation.
    bins : str, optional
        Explicit bins, 0-based, ranges inclusive (``'447-449'``, ``'10,12'``).
    tss_width : int, optional
        Bins around the TSS for ``gene``.

    Returns
    -------
    ReadOut
        The bins and how they were chosen.
    """
    geometry = output_geometry(config)
    if gene:
        if not gtf:
            raise ValueError("--gene needs --gtf (the annotation to find the gene's TSS in)")
        found = find_gene(read_gtf(gtf), gene)
        if found.chrom != chrom:
            raise ValueError(f"gene {found.name} is on {found.chrom}, the window on {chrom}")
        chosen = tss_bins(found.tss, window_start=window_start, geometry=geometry, width=tss_width)
        how = f"TSS of {found.name} ({found.chrom}:{found.tss + 1:,}, {found.strand} strand)"
        return ReadOut(chosen, how, found.name, found.tss)
    if bins:
        return ReadOut(parse_index_spec(bins, geometry.n_bins, "bin"), "--bins")
    return ReadOut(list(range(geometry.n_bins)), "every output bin")
