"""Interval queries over genes (:class:`Annotation`) and the TSS index of variant scoring."""

from __future__ import annotations

import os
from bisect import bisect_left, bisect_right
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any, Literal

import numpy as np

from .bins import OutputBins
from .genes import TSS, Gene, find_gene, read_gtf, read_gtf_tss, tss_records

__all__ = ["Annotation", "GeneBins", "TSSIndex", "chrom_aliases"]


# ------------------------------------------------------------------------------------------
# Interval queries
# ------------------------------------------------------------------------------------------


def chrom_aliases(chrom: str) -> list[str]:
    """``chrom`` and its spelling with(out) the ``chr`` prefix (``chrM`` <-> ``MT``)."""
    alias = {"chrM": "MT", "MT": "chrM"}.get(chrom)
    other = chrom[3:] if chrom.startswith("chr") else "chr" + chrom
    return [chrom, other] + ([alias] if alias else [])


class Annotation:
    """Genes of an annotation, indexed for interval queries (0-based, half-open).

    Parameters
    ----------
    genes : iterable of Gene
        E.g. from :func:`read_gtf`; :meth:`read` reads a file.

    Notes
    -----
    Chromosome names are matched with or without the ``chr`` prefix.
    """

    def __init__(self, genes: Iterable[Gene]) -> None:
        self.genes = list(genes)
        self._by_chrom: dict[str, list[Gene]] = {}
        for g in sorted(self.genes, key=lambda g: (g.start, g.end)):
            self._by_chrom.setdefault(g.chrom, []).append(g)
        self._starts = {c: [g.start for g in gs] for c, gs in self._by_chrom.items()}
        self._longest = {c: max(g.end - g.start for g in gs) for c, gs in self._by_chrom.items()}

    @classmethod
    def read(cls, path: str | os.PathLike[str], **kwargs: Any) -> Annotation:
        """Read a GTF/GFF3 file (``kwargs`` go to :func:`read_gtf`).

        Parameters
        ----------
        path : str or os.PathLike
            Annotation file.
        **kwargs
            ``chrom``, ``start``, ``end``, ``gene_types``.

        Returns
        -------
        Annotation
            The indexed genes.
        """
        return cls(read_gtf(path, **kwargs))

    def __len__(self) -> int:
        return len(self.genes)

    def find(self, name: str) -> Gene:
        """The gene of this name or ID (see :func:`find_gene`)."""
        return find_gene(self.genes, name)

    def genes_in(self, chrom: str, start: int, end: int) -> list[Gene]:
        """Genes overlapping ``[start, end)`` on ``chrom``, sorted by start.

        Parameters
        ----------
        chrom : str
            Chromosome.
        start, end : int
            0-based, half-open window.

        Returns
        -------
        list of Gene
            The overlapping genes.
        """
        for name in chrom_aliases(chrom):
            if name in self._by_chrom:
                genes, starts = self._by_chrom[name], self._starts[name]
                lo = bisect_left(starts, int(start) - self._longest[name])
                hi = bisect_right(starts, int(end) - 1)
                return [g for g in genes[lo:hi] if g.end > start and g.start < end]
        return []

    def exons_in(self, chrom: str, start: int, end: int) -> list[tuple[Gene, int, int]]:
        """Merged exons of each gene that overlap ``[start, end)`` (not clipped to it).

        Parameters
        ----------
        chrom, start, end : str, int, int
            The window, as in :meth:`genes_in`.

        Returns
        -------
        list of (Gene, int, int)
            ``(gene, exon_start, exon_end)``, by gene then exon start.
        """
        return [
            (g, s, e) for g in self.genes_in(chrom, start, end) for s, e in g.exons
            if e > start and s < end
        ]  # fmt: skip

    def tss_in(
        self, chrom: str, start: int, end: int, *, per: Literal["gene", "transcript"] = "gene"
    ) -> list[TSS]:
        """TSSs inside ``[start, end)``: genes' 5' ends, or every transcript's.

        Parameters
        ----------
        chrom, start, end : str, int, int
            The window, as in :meth:`genes_in`.
        per : {'gene', 'transcript'}, optional
            One TSS per gene or per transcript.

        Returns
        -------
        list of TSS
            Sorted by position.
        """
        sites = [
            s for g in self.genes_in(chrom, start, end) for s in tss_records(g, per)
            if start <= s.position < end
        ]  # fmt: skip
        return sorted(sites, key=lambda s: s.position)


# ------------------------------------------------------------------------------------------
# TSSs by window (variant scoring)
# ------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class GeneBins:
    """A gene whose TSS lies in a window's output, and the bins to read.

    Attributes
    ----------
    gene_id : str
        Gene identifier.
    gene_name : str
        Gene name.
    strand : str
        ``'+'`` or ``'-'``.
    tss : tuple of int
        0-based TSS positions of the gene inside the output span.
    bins : numpy.ndarray
        int64 sorted union of the ``width`` bins around each of those TSSs.
    """

    gene_id: str
    gene_name: str
    strand: str
    tss: tuple[int, ...]
    bins: np.ndarray


class TSSIndex:
    """TSS positions per chromosome, for finding the genes in a window's output.

    Parameters
    ----------
    table : pandas.DataFrame
        From :func:`read_gtf_tss` (columns ``gene_id, gene_name, chrom, tss, strand``).
    """

    def __init__(self, table: Any) -> None:
        self.table = table
        self._by_chrom: dict[str, tuple[np.ndarray, np.ndarray]] = {}
        tss = table["tss"].to_numpy(dtype=np.int64)
        chroms = table["chrom"].to_numpy()
        for chrom in dict.fromkeys(chroms.tolist()):
            rows = np.flatnonzero(chroms == chrom)
            order = np.argsort(tss[rows], kind="stable")
            self._by_chrom[chrom] = (tss[rows][order], rows[order])
        self._ids = table["gene_id"].to_numpy()
        self._names = table["gene_name"].to_numpy()
        self._strands = table["strand"].to_numpy()

    @classmethod
    def from_gtf(cls, path: str | os.PathLike[str], **kwargs: Any) -> TSSIndex:
        """Build from a GTF file (``kwargs`` go to :func:`read_gtf_tss`).

        Parameters
        ----------
        path : str or os.PathLike
            GTF file.
        **kwargs
            ``feature``, ``gene_types``.

        Returns
        -------
        TSSIndex
            The index.
        """
        return cls(read_gtf_tss(path, **kwargs))

    def __len__(self) -> int:
        return len(self.table)

    def genes_in_window(
        self, chrom: str, output_start: int, n_bins: int, bin_size: int, *, width: int = 3
    ) -> list[GeneBins]:
        """Genes with a TSS inside an output span, and the bins around their TSSs.

        Parameters
        ----------
        chrom : str
            Chromosome (``chr`` prefix differences are bridged).
        output_start, n_bins, bin_size : int
            The output's placement, as :class:`~.bins.OutputBins` ``(start, bin_size,
            n_bins)``: bin 0 starts at ``output_start`` (window start + crop offset).
        width : int, optional
            Bins around each TSS bin (:meth:`OutputBins.tss_bins`; default 3).

        Returns
        -------
        list of GeneBins
            One per gene, in order of first TSS position; a gene with several TSSs in the span
            reads the union of their bins.
        """
        names = [c for c in chrom_aliases(chrom) if c in self._by_chrom]
        found = self._by_chrom[names[0]] if names else None
        if found is None:
            return []
        out = OutputBins(int(output_start), int(bin_size), int(n_bins))
        positions, rows = found
        lo, hi = np.searchsorted(positions, [out.start, out.end], side="left")
        genes: dict[str, tuple[str, str, list[int]]] = {}
        for pos, row in zip(positions[lo:hi].tolist(), rows[lo:hi].tolist(), strict=True):
            gid = str(self._ids[row])
            entry = genes.setdefault(gid, (str(self._names[row]), str(self._strands[row]), []))
            if pos not in entry[2]:
                entry[2].append(pos)
        return [
            GeneBins(gid, name, strand, tuple(tss), out.tss_bins(tss, width))
            for gid, (name, strand, tss) in genes.items()
        ]
