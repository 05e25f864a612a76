"""What the demo runs on: the synthetic construct, or a region of the user's genome.

:func:`construct_input` builds the construct and writes its files; :func:`genome_input`
centres the model window on a region of an indexed FASTA, with the user's VCF or example
SNVs at the region's centre and 1 kb either side. Both return a :class:`DemoInput`.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from .construct import (
    TRANSVERSION,
    ExampleVariant,
    build_construct,
    construct_length,
    demo_variants,
    model_window,
    write_construct,
    write_vcf,
)

__all__ = ["DemoInput", "construct_input", "genome_input", "nearest_real_base"]


@dataclass
class DemoInput:
    """What the demo runs on: a FASTA, the model window in it, variants and annotation."""

    fasta: Path
    chrom: str
    window_start: int
    window: str
    vcf: Path
    variants: list[ExampleVariant] | None  # None: the scores table's, in its order
    gtf: Path | None = None
    bed: Path | None = None
    highlight: list[tuple[int, int]] = field(default_factory=list)
    title: str = ""
    text: str = ""
    info: dict[str, Any] = field(default_factory=dict)
    chrom_aliases: bool = False


def construct_input(sequence_length: int, out: Path, seed: int) -> DemoInput:
    """The construct for a model of ``sequence_length`` bp, its files written into ``out``."""
    construct = build_construct(construct_length(sequence_length), seed=seed)
    window_start, window = model_window(construct, sequence_length)
    files = write_construct(construct, out)
    variants = demo_variants(construct)
    vcf = write_vcf(construct.name, len(construct.sequence), variants, out / "variants.vcf")
    highlight = [
        (e.start, e.end)
        for e in construct.elements
        if e.kind == "enhancer" or e.name.startswith("CTCF")
    ]
    return DemoInput(
        fasta=files["fasta"],
        chrom=construct.name,
        window_start=window_start,
        window=window,
        vcf=vcf,
        variants=variants,
        gtf=files["gtf"],
        bed=files["bed"],
        highlight=highlight,
        title="the synthetic construct",
        text=(
            f"synthetic construct '{construct.name}', {len(construct.sequence):,} bp: genes "
            f"DEMO1 (+) and DEMO2 (-), an enhancer, 2 CTCF sites ({files['fasta'].name})"
        ),
        info={
            "kind": "synthetic construct",
            "name": construct.name,
            "length": len(construct.sequence),
            "seed": seed,
            "elements": len(construct.elements),
        },
    )


def genome_input(
    sequence_length: int,
    out: Path,
    fasta: str | os.PathLike[str],
    region: str,
    vcf: str | os.PathLike[str] | None,
    gtf: str | os.PathLike[str] | None,
    chrom_aliases: bool = False,
) -> DemoInput:
    """The model window centred on ``region`` of ``fasta``; example SNVs when ``vcf`` is None."""
    from ..data.genome import Genome, parse_region

    interval = parse_region(region)
    if gtf is not None and not Path(gtf).is_file():
        raise FileNotFoundError(f"GTF not found: {gtf}")
    with Genome(fasta, warn_padding=False, chrom_aliases=chrom_aliases) as genome:
        chrom = genome.resolve_chrom(interval.chrom)
        centre = (interval.start + interval.end) // 2
        win = genome.window(chrom, centre, sequence_length)
        _check_not_mostly_n(win.sequence, interval.to_ucsc(), Path(fasta).name)
        variants: list[ExampleVariant] | None = None
        if vcf is None:
            variants = _example_snvs(genome, chrom, centre, interval.to_ucsc())
            size = genome.chrom_sizes[chrom]
            vcf_path = write_vcf(chrom, size, variants, out / "variants.vcf")
        else:
            vcf_path = Path(vcf)
            if not vcf_path.is_file():
                raise FileNotFoundError(f"variant file not found: {vcf_path}")
    return DemoInput(
        fasta=Path(fasta),
        chrom=chrom,
        window_start=win.interval.start,
        window=win.sequence,
        vcf=vcf_path,
        variants=variants,
        gtf=Path(gtf) if gtf else None,
        highlight=[(interval.start, interval.end)],
        title=interval.to_ucsc(),
        text=f"{interval.to_ucsc()} of {Path(fasta).name} (model window centred on it)",
        info={"kind": "genome region", "fasta": str(fasta), "region": interval.to_ucsc()},
        chrom_aliases=chrom_aliases,
    )


def _example_snvs(genome: Any, chrom: str, centre: int, region: str) -> list[ExampleVariant]:
    """Transversions at the region's centre and 1 kb either side (nearest real base)."""
    variants = []
    for name, offset in (("centre", 0), ("minus_1kb", -1000), ("plus_1kb", 1000)):
        pos0 = nearest_real_base(genome, chrom, centre + offset, region)
        ref = genome.fetch(chrom, pos0, pos0 + 1)
        alt = TRANSVERSION[ref]
        note = f"example SNV, {pos0 - centre:+d} bp from the region centre"
        variants.append(ExampleVariant(chrom, pos0 + 1, ref, alt, f"{name}_{ref}>{alt}", note))
    return variants


# How far from its intended place an example SNV may move to find a base that is not N.
_SNV_SEARCH = 100


def nearest_real_base(genome: Any, chrom: str, pos0: int, region: str) -> int:
    """0-based position of the A/C/G/T base nearest ``pos0`` within :data:`_SNV_SEARCH` bp.

    Parameters
    ----------
    genome : Genome
        The genome (anything with ``fetch(chrom, start, end)``).
    chrom : str
        Chromosome.
    pos0 : int
        Wanted 0-based position.
    region : str
        The user's region, for the message.

    Returns
    -------
    int
        ``pos0`` itself when it is a base; else the nearest base (upstream on a tie).

    Raises
    ------
    ValueError
        Only ``N`` within :data:`_SNV_SEARCH` bp.
    """
    lo = max(0, pos0 - _SNV_SEARCH)
    seq = genome.fetch(chrom, lo, pos0 + _SNV_SEARCH + 1)
    codes = np.frombuffer(seq.upper().encode("ascii"), dtype=np.uint8)
    real = np.flatnonzero(np.isin(codes, np.frombuffer(b"ACGT", dtype=np.uint8)))
    if real.size == 0:
        raise ValueError(
            f"{chrom}:{pos0 + 1:,} (an example SNV's place near --region {region}) has only N "
            f"within {_SNV_SEARCH} bp: pick a region with real sequence, or pass --vcf"
        )
    # Nearest first; at equal distance the upstream base wins.
    best = real[np.argmin(np.abs(real + lo - pos0) * 2 + (real + lo > pos0))]
    return int(best + lo)


def _check_not_mostly_n(window: str, region: str, fasta_name: str) -> None:
    """Refuse a model window that is more than half N: the demo would show nothing."""
    n = window.upper().count("N")
    if n > 0.5 * len(window):
        raise ValueError(
            f"--region {region} lies in a model window that is {100 * n / len(window):.0f}% N "
            f"in {fasta_name}: the demo needs real sequence; pick a region away from assembly "
            "gaps (or use the synthetic construct: omit --fasta)"
        )
