"""Tile long regions and whole chromosomes so that output bins abut exactly.

A model with input length ``L`` yields ``B`` bins of ``b`` bp starting ``offset`` bp into its
input (:class:`~enformer.inference.predict.OutputGeometry`; for the published model ``L =
196,608``, ``B = 896``, ``b = 128``, ``offset = 40,960``). A region is covered by tiles whose
**output** spans follow each other without gap or overlap: tile ``k`` of a region predicts
bins starting at ``first + k * step`` with ``step = B * b`` (114,688 bp), from the input window
``[first + k * step - offset, first + k * step - offset + L)``. The windows themselves overlap
(each sees ``offset`` bp of context on either side).

Alignment of the first bin (``align``):

* ``"start"`` (default): bin 0 starts exactly at the region's start;
* ``"grid"``: bin 0 starts at the region start rounded down to a multiple of ``b``, so bins
  lie on the genome-wide grid ``[k * b, (k + 1) * b)`` whatever the region (whole chromosomes
  are the same either way).

A region of ``n`` bp past its first bin start gets ``ceil(n / b)`` bins; the last tile's
surplus bins past the region end are dropped (its last kept bin may reach past the region
end, and past the chromosome end, which writers clip). Windows that run off a chromosome end
read ``N`` there. Region ends past the chromosome end are clipped to it.

Tiles are produced lazily and predicted chunk by chunk, each tile's arrays handed to a
callback, so memory does not grow with the length of the region or chromosome.
"""

from __future__ import annotations

import bisect
import logging
import math
import os
import warnings
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Literal

import numpy as np
import torch

from ..data.genome import Genome, GenomeWarning, Interval
from ..data.sequence import one_hot
from ..io.jobs import sequence_digest
from ..model.geometry import OutputGeometry
from ..io.progress import progress_bar
from .engine import Engine

__all__ = [
    "Tile",
    "TilePlan",
    "TiledRegion",
    "plan_tiles",
    "predict_tiles",
    "read_regions",
    "tile_sequence",
    "whole_chromosomes",
]

logger = logging.getLogger(__name__)

Align = Literal["start", "grid"]


@dataclass(frozen=True)
class TiledRegion:
    """A region as tiled: where its bins start and how many it has.

    Attributes
    ----------
    chrom : str
        Chromosome (the genome's spelling).
    start : int
        Genomic start of the region's first bin (after alignment).
    end : int
        End of the requested region (clipped to the chromosome).
    n_bins : int
        Bins covering ``[start, end)``: ``ceil((end - start) / bin_size)``.
    first_tile : int
        Index in the plan of the region's first tile.
    n_tiles : int
        Number of tiles.
    name : str or None
        The region's name (BED column 4), if any.
    requested : Interval
        The region as given.
    """

    chrom: str
    start: int
    end: int
    n_bins: int
    first_tile: int
    n_tiles: int
    name: str | None
    requested: Interval

    def bins_end(self, bin_size: int) -> int:
        """End of the last bin, ``start + n_bins * bin_size`` (may pass ``end``)."""
        return self.start + self.n_bins * bin_size

    def label(self) -> str:
        """The requested region as ``chrom:start-end`` text (1-based inclusive)."""
        return self.requested.to_ucsc()


@dataclass(frozen=True)
class Tile:
    """One model input window of a tiling.

    Attributes
    ----------
    index : int
        Position in the plan (0-based, over all regions).
    region : int
        Index of its region in :attr:`TilePlan.regions`.
    chrom : str
        Chromosome.
    window_start : int
        0-based start of the input window (may be negative near a chromosome start).
    window_end : int
        End of the input window (may pass the chromosome end).
    out_start : int
        Genomic start of output bin 0.
    n_keep : int
        Bins kept: the first ``n_keep`` bins; the rest lie past the region end.
    bin_offset : int
        Index of bin 0 among its region's bins.
    """

    index: int
    region: int
    chrom: str
    window_start: int
    window_end: int
    out_start: int
    n_keep: int
    bin_offset: int

    @property
    def window(self) -> Interval:
        """The input window as an Interval."""
        return Interval(self.chrom, self.window_start, self.window_end)


class TilePlan:
    """Tiles covering a list of regions; see the module docstring for the layout.

    Parameters
    ----------
    regions : list of TiledRegion
        Regions with consecutive tile ranges.
    geometry : OutputGeometry
        The model's geometry.
    align : {'start', 'grid'}
        How region starts were aligned.
    """

    def __init__(
        self, regions: Sequence[TiledRegion], geometry: OutputGeometry, align: Align
    ) -> None:
        self.regions = list(regions)
        self.geometry = geometry
        self.align = align
        self._firsts = [r.first_tile for r in self.regions]
        self._n = sum(r.n_tiles for r in self.regions)

    @property
    def step(self) -> int:
        """Genomic distance between consecutive tiles' first bins (``n_bins * bin_size``)."""
        return self.geometry.output_span

    @property
    def total_bins(self) -> int:
        """Bins over all regions."""
        return sum(r.n_bins for r in self.regions)

    def __len__(self) -> int:
        return self._n

    def __iter__(self) -> Iterator[Tile]:
        for i in range(self._n):
            yield self.tile(i)

    def tile(self, index: int) -> Tile:
        """Return tile ``index`` (computed, not stored).

        Parameters
        ----------
        index : int
            0-based tile index.

        Returns
        -------
        Tile
            The tile.
        """
        if not 0 <= index < self._n:
            raise IndexError(f"tile {index} out of range (plan has {self._n})")
        r = bisect.bisect_right(self._firsts, index) - 1
        region = self.regions[r]
        k = index - region.first_tile
        g = self.geometry
        out_start = region.start + k * self.step
        bin_offset = k * g.n_bins
        window_start = out_start - g.offset
        return Tile(
            index=index,
            region=r,
            chrom=region.chrom,
            window_start=window_start,
            window_end=window_start + g.input_length,
            out_start=out_start,
            n_keep=min(g.n_bins, region.n_bins - bin_offset),
            bin_offset=bin_offset,
        )

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready description (geometry, alignment and every tiled region)."""
        g = self.geometry
        return {
            "input_length": g.input_length,
            "bin_size": g.bin_size,
            "bins_per_tile": g.n_bins,
            "output_offset": g.offset,
            "step": self.step,
            "align": self.align,
            "regions": [
                {
                    "chrom": r.chrom,
                    "start": r.start,
                    "end": r.end,
                    "n_bins": r.n_bins,
                    "n_tiles": r.n_tiles,
                    "name": r.name,
                    "requested": r.label(),
                }
                for r in self.regions
            ],
        }


def whole_chromosomes(genome: Genome, names: Iterable[str] | None = None) -> list[Interval]:
    """Intervals spanning whole chromosomes.

    Parameters
    ----------
    genome : Genome
        The genome.
    names : iterable of str, optional
        Chromosome names (resolved with :meth:`Genome.resolve_chrom`); default every one.

    Returns
    -------
    list of Interval
        ``[0, length)`` of each chromosome, named after it.
    """
    sizes = genome.chrom_sizes
    chosen = list(sizes) if names is None else [genome.resolve_chrom(n) for n in names]
    return [Interval(c, 0, sizes[c], name=c) for c in chosen]


def read_regions(
    genome: Genome,
    *,
    regions: Sequence[str] | None = None,
    bed: str | os.PathLike[str] | None = None,
    chromosomes: str | None = None,
) -> list[Interval]:
    """Regions to predict from region texts, a BED file or comma-separated chromosomes.

    Exactly one source is used (the first given); every chromosome is checked against
    ``genome``, so a bad input fails here, before a model loads.
    """
    from ..data.genome import parse_region, read_bed

    if regions:
        out = [parse_region(text) for text in regions]
    elif bed is not None:
        out = read_bed(bed)
        if not out:
            raise ValueError(f"{bed} holds no regions")
    else:
        names = [c.strip() for c in (chromosomes or "").split(",") if c.strip()]
        if not names:
            raise ValueError("--chromosomes is empty; give e.g. chr1,chr2")
        out = whole_chromosomes(genome, names)
    for region in out:
        genome.resolve_chrom(region.chrom)
    return out


def plan_tiles(
    regions: Sequence[Interval],
    geometry: OutputGeometry,
    *,
    chrom_sizes: Mapping[str, int],
    align: Align = "start",
    merge: bool = False,
) -> TilePlan:
    """Plan tiles whose output bins abut exactly over each region.

    Parameters
    ----------
    regions : sequence of Interval
        Regions to cover, chromosome names as in ``chrom_sizes`` (0-based, half-open).
    geometry : OutputGeometry
        The model's geometry (:func:`~enformer.inference.predict.output_geometry`).
    chrom_sizes : mapping of str to int
        Chromosome lengths, in the genome's order.
    align : {'start', 'grid'}, optional
        Where the first bin of a region starts: at the region start (``'start'``, the
        default) or at the region start rounded down to a multiple of the bin size
        (``'grid'``).
    merge : bool, optional
        Sort regions by chromosome (genome order) and start, and merge those whose bins
        would overlap into one region spanning both (needed for BigWig files, whose entries
        may not overlap). Default False: regions are tiled as given, in order.

    Returns
    -------
    TilePlan
        The tiles, computed lazily.

    Raises
    ------
    ValueError
        If a chromosome is unknown, a region is empty or starts past its chromosome end, or
        ``align`` is not recognised.
    """
    if align not in ("start", "grid"):
        raise ValueError(f"align must be 'start' or 'grid', got {align!r}")
    b = geometry.bin_size
    spans: list[tuple[str, int, int, str | None, Interval]] = []
    for region in regions:
        if region.chrom not in chrom_sizes:
            raise ValueError(f"chromosome {region.chrom!r} of region {region} is not in the genome")
        size = chrom_sizes[region.chrom]
        if len(region) == 0:
            raise ValueError(f"region {region} is empty")
        if region.start < 0 or region.start >= size:
            raise ValueError(
                f"region {region} starts outside {region.chrom} (length {size:,}); is it on the "
                "same assembly?"
            )
        end = region.end
        if end > size:
            logger.warning(
                "region %s ends past %s (length %s); clipped to the chromosome end",
                region,
                region.chrom,
                f"{size:,}",
            )
            end = size
        start = region.start if align == "start" else region.start // b * b
        spans.append((region.chrom, start, end, region.name, region))
    if merge:
        spans = _merge(spans, list(chrom_sizes), b)
    tiled: list[TiledRegion] = []
    first = 0
    for chrom, start, end, name, requested in spans:
        n_bins = math.ceil((end - start) / b)
        n_tiles = math.ceil(n_bins / geometry.n_bins)
        tiled.append(TiledRegion(chrom, start, end, n_bins, first, n_tiles, name, requested))
        first += n_tiles
    return TilePlan(tiled, geometry, align)


def _merge(
    spans: list[tuple[str, int, int, str | None, Interval]], order: list[str], b: int
) -> list[tuple[str, int, int, str | None, Interval]]:
    rank = {c: i for i, c in enumerate(order)}
    spans = sorted(spans, key=lambda s: (rank[s[0]], s[1], s[2]))
    merged: list[tuple[str, int, int, str | None, Interval]] = []
    for span in spans:
        if merged:
            chrom, start, end, name, req = merged[-1]
            bins_end = start + math.ceil((end - start) / b) * b
            if span[0] == chrom and span[1] < bins_end:
                new_end = max(end, span[2])
                if new_end != end or span[1] != start:
                    logger.info("merging overlapping regions %s and %s", req, span[4])
                merged[-1] = (
                    chrom,
                    start,
                    new_end,
                    name if name == span[3] else None,
                    Interval(chrom, min(req.start, span[4].start), max(req.end, span[4].end)),
                )
                continue
        merged.append(span)
    return merged


def predict_tiles(
    engine: Engine,
    genome: Genome,
    tiles: Iterable[Tile],
    writer: Callable[[Tile, dict[str, np.ndarray]], None],
    *,
    total: int | None = None,
    progress: bool = True,
    digests: dict[int, str] | None = None,
) -> int:
    """Predict tiles chunk by chunk and hand each tile's kept bins to ``writer``.

    Parameters
    ----------
    engine : Engine
        A prepared engine (entered: ``with engine:``) for the model whose geometry made the
        tiles.
    genome : Genome
        Reference genome. N-padding of windows that run off a chromosome end is expected
        here; it is logged at INFO level instead of warned.
    tiles : iterable of Tile
        Tiles to predict (any order; consumed lazily).
    writer : callable
        Called as ``writer(tile, {head: float32 (n_keep, n_tracks)})`` once per tile, in the
        order of ``tiles``.
    total : int, optional
        Number of tiles, for the progress bar.
    progress : bool, optional
        Show a progress bar.
    digests : dict, optional
        If given, ``digests[tile.index]`` is set to the
        :func:`~enformer.io.jobs.sequence_digest` of the sequence read for each tile before
        ``writer`` is called for it (resumable jobs store it to detect a replaced genome).

    Returns
    -------
    int
        Number of tiles predicted.
    """
    margin = engine.margin
    bar = progress_bar(total, "tiles", progress, unit="tile")
    done = 0
    try:
        batch: list[Tile] = []
        for tile in tiles:
            batch.append(tile)
            if len(batch) == engine.chunk_size:
                done += _run_chunk(engine, genome, batch, margin, writer, digests)
                bar.update(len(batch))
                batch = []
        if batch:
            done += _run_chunk(engine, genome, batch, margin, writer, digests)
            bar.update(len(batch))
    finally:
        bar.close()
    return done


def _fetch_padded(genome: Genome, chrom: str, start: int, end: int) -> str:
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always", GenomeWarning)
        seq = genome.fetch(chrom, start, end)
    for w in caught:
        if issubclass(w.category, GenomeWarning):
            logger.info("%s", w.message)
        else:  # pragma: no cover - pass other warnings on
            warnings.warn_explicit(w.message, w.category, w.filename, w.lineno)
    return seq


def tile_sequence(genome: Genome, tile: Tile, margin: int = 0) -> str:
    """The bases a tile's window reads, ``margin`` extra on each side, N-padded past the ends.

    Parameters
    ----------
    genome : Genome
        Reference genome.
    tile : Tile
        The tile.
    margin : int, optional
        Extra bases on each side (``max(|shifts|)``).

    Returns
    -------
    str
        The sequence fed to the model (before one-hot encoding).
    """
    return _fetch_padded(genome, tile.chrom, tile.window_start - margin, tile.window_end + margin)


def _run_chunk(
    engine: Engine,
    genome: Genome,
    tiles: list[Tile],
    margin: int,
    writer: Callable[[Tile, dict[str, np.ndarray]], None],
    digests: dict[int, str] | None = None,
) -> int:
    seqs = [tile_sequence(genome, t, margin) for t in tiles]
    if digests is not None:
        for t, seq in zip(tiles, seqs, strict=True):
            digests[t.index] = sequence_digest(seq)
    x = torch.from_numpy(one_hot(seqs).reshape(len(tiles), -1, 4))
    out = engine.run(x)
    for j, tile in enumerate(tiles):
        writer(tile, {head: values[j, : tile.n_keep] for head, values in out.items()})
    return len(tiles)
