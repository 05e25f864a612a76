"""Gene annotation: one GTF/GFF3 reader, interval queries, and the output bins of genes.

The file is read once into :class:`Gene` objects (with their :class:`Transcript` and exons);
:class:`Annotation` answers interval queries (genes, exons, TSSs overlapping a window) and
:class:`OutputBins` maps genomic positions and intervals to a window's output bins.

Coordinates
-----------
GTF and GFF3 are 1-based with inclusive ends. Everything here is **0-based and half-open**,
like :class:`enformer.data.genome.Interval`: a line ``chr1 ... 11869 14409`` becomes
``start=11868, end=14409``. A TSS is the 0-based position of a feature's 5' base: ``start``
on the ``+`` strand, ``end - 1`` on the ``-`` strand.

Output bins
-----------
Output bin ``i`` of a window covers the genomic bases ``[s + i * bin_size, s + (i + 1) *
bin_size)`` with ``s = window_start + offset``: ``offset`` is the model's crop (40,960 bp for
the published model, whose 896 bins start 320 bins of 128 bp into the 196,608-bp input), taken
from the geometry (:class:`enformer.model.geometry.OutputGeometry` or anything with ``offset``,
``bin_size`` and ``n_bins``). **The TSS bins** of a gene are, for each TSS inside the output,
the ``width`` bins ``b - width // 2 .. b - width // 2 + width - 1`` around the bin ``b``
holding it (``width=3``: ``b-1, b, b+1``; an even width takes the extra bin on the lower-index
side), clipped to ``[0, n_bins)``; a TSS outside the output contributes none. The same rule
picks the bins around a variant (:func:`center_bins`).
"""

from __future__ import annotations

import difflib
import logging
import os
import re
from bisect import bisect_left, bisect_right
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

import numpy as np

from .genome import numbered_lines

__all__ = [
    "TSS",
    "Annotation",
    "Gene",
    "GeneBins",
    "OutputBins",
    "TSSIndex",
    "Transcript",
    "center_bins",
    "find_gene",
    "read_gtf",
    "read_gtf_tss",
    "tss_bin",
    "tss_bins",
    "tss_table",
]

logger = logging.getLogger(__name__)


# ------------------------------------------------------------------------------------------
# Records
# ------------------------------------------------------------------------------------------


def _five_prime(start: int, end: int, strand: str) -> int:
    return end - 1 if strand == "-" else start


@dataclass(frozen=True)
class Transcript:
    """One transcript of a gene (0-based, half-open coordinates).

    Attributes
    ----------
    transcript_id : str
        The GTF ``transcript_id`` (GFF3: ``ID``).
    chrom : str
        Chromosome.
    start, end : int
        Span of the transcript.
    strand : str
        ``'+'``, ``'-'`` or ``'.'``.
    exons : tuple of (int, int)
        Exon intervals, sorted by start.
    """

    transcript_id: str
    chrom: str
    start: int
    end: int
    strand: str
    exons: tuple[tuple[int, int], ...] = ()

    @property
    def tss(self) -> int:
        """0-based position of the transcription start site (the 5' base)."""
        return _five_prime(self.start, self.end, self.strand)


@dataclass(frozen=True)
class Gene:
    """A gene with its transcripts (0-based, half-open coordinates).

    Attributes
    ----------
    gene_id : str
        The GTF ``gene_id`` (GFF3: ``gene_id`` or ``ID``).
    name : str
        ``gene_name`` (GFF3: ``Name``); the ``gene_id`` when the file has no name.
    chrom : str
        Chromosome.
    start, end : int
        Span of the gene.
    strand : str
        ``'+'``, ``'-'`` or ``'.'``.
    gene_type : str or None
        ``gene_type`` (or ``gene_biotype``/``biotype``) when given.
    transcripts : tuple of Transcript
        The gene's transcripts, in file order.
    """

    gene_id: str
    name: str
    chrom: str
    start: int
    end: int
    strand: str
    gene_type: str | None = None
    transcripts: tuple[Transcript, ...] = field(default=())

    @property
    def tss(self) -> int:
        """0-based position of the gene's TSS (its 5' end: ``start`` on +, ``end - 1`` on -)."""
        return _five_prime(self.start, self.end, self.strand)

    @property
    def transcript_tss(self) -> list[int]:
        """Distinct 0-based TSSs of the gene's transcripts, sorted (the gene TSS if none)."""
        sites = sorted({t.tss for t in self.transcripts})
        return sites or [self.tss]

    @property
    def exons(self) -> list[tuple[int, int]]:
        """Union of the exons of all transcripts, merged and sorted."""
        spans = sorted(e for t in self.transcripts for e in t.exons)
        merged: list[tuple[int, int]] = []
        for s, e in spans:
            if merged and s <= merged[-1][1]:
                merged[-1] = (merged[-1][0], max(merged[-1][1], e))
            else:
                merged.append((s, e))
        return merged

    def overlaps(self, chrom: str, start: int, end: int) -> bool:
        """Whether the gene overlaps ``[start, end)`` on ``chrom``."""
        return self.chrom == chrom and self.start < end and self.end > start


@dataclass(frozen=True)
class TSS:
    """A transcription start site (0-based ``position`` of the 5' base).

    Attributes
    ----------
    gene_id, gene_name : str
        The gene.
    chrom : str
        Chromosome.
    position : int
        0-based position.
    strand : str
        The gene's strand.
    transcript_id : str
        The transcript (empty for a gene's own 5' end).
    gene_type : str
        Gene type (empty when unknown).
    """

    gene_id: str
    gene_name: str
    chrom: str
    position: int
    strand: str
    transcript_id: str = ""
    gene_type: str = ""


# ------------------------------------------------------------------------------------------
# Reading
# ------------------------------------------------------------------------------------------

_GTF_ATTRIBUTE = re.compile(r'([^\s;]+)\s+(?:"((?:[^"\\]|\\.)*)"|([^;]*?))\s*(?:;|$)')
_GFF3_START = re.compile(r'^\s*[^\s=;"]+=')
_NOT_TRANSCRIPTS = {"exon", "CDS", "five_prime_UTR", "three_prime_UTR", "UTR", "start_codon",
                    "stop_codon", "gene", "Selenocysteine"}  # fmt: skip


def _attributes(text: str) -> dict[str, str]:
    """Attribute column of GTF (``key "value";``) or GFF3 (``key=value;``); first value wins."""
    out: dict[str, str] = {}
    if _GFF3_START.match(text):
        from urllib.parse import unquote

        for item in text.strip().split(";"):
            key, sep, value = item.partition("=")
            if sep and key.strip():
                out.setdefault(key.strip(), unquote(value.strip()))
        return out
    for match in _GTF_ATTRIBUTE.finditer(text):
        value = match.group(2) if match.group(2) is not None else match.group(3)
        out.setdefault(match.group(1), value.strip())
    return out


@dataclass
class _Row:
    """One gene, transcript or exon line, normalised from GTF or GFF3."""

    kind: str
    chrom: str
    start: int
    end: int
    strand: str
    gene_id: str
    transcript_ids: list[str]
    attrs: dict[str, str]


def _parent_gene(parents: list[str], gene_of: dict[str, str]) -> str | None:
    return next((gene_of[p] for p in parents if p in gene_of), None)


def _rows(path: Path, chrom: str | None) -> Iterator[_Row]:
    """The gene, transcript and exon lines of a GTF/GFF3 file, with their links resolved."""
    gene_of: dict[str, str] = {}  # GFF3 ID -> gene_id (genes and transcripts)
    tx_of: dict[str, str] = {}  # GFF3 transcript ID -> transcript_id
    for number, line in numbered_lines(path):
        if not line.strip() or line.startswith("#"):
            continue
        fields = line.split("\t")
        where = f"{path}, line {number}"
        if len(fields) < 9:
            raise ValueError(f"{where}: expected 9 tab-separated GTF columns, got {len(fields)}")
        try:
            start, end = int(fields[3]), int(fields[4])
        except ValueError:
            raise ValueError(
                f"{where}: start and end must be integers, got {fields[3]!r} and {fields[4]!r}"
            ) from None
        if start < 1 or end < start:
            raise ValueError(f"{where}: need 1 <= start <= end, got {start}, {end}")
        attrs = _attributes(fields[8])
        feature, own_id = fields[2], attrs.get("ID")
        parents = [p for p in attrs.get("Parent", "").split(",") if p]
        if feature == "gene":
            kind, gene_id, tids = "gene", attrs.get("gene_id", own_id), []
        elif feature == "exon":
            kind = "exon"
            own = attrs.get("transcript_id")
            tids = [own] if own else [tx_of.get(p, p) for p in parents]
            gene_id = attrs.get("gene_id") or _parent_gene(parents, gene_of)
        elif feature == "transcript" or (
            feature not in _NOT_TRANSCRIPTS and any(p in gene_of for p in parents)
        ):
            kind = "transcript"
            gene_id = attrs.get("gene_id") or _parent_gene(parents, gene_of)
            tids = [attrs.get("transcript_id", own_id or "")]
            if own_id and tids[0]:
                tx_of[own_id] = tids[0]
        else:
            continue
        if not gene_id:
            raise ValueError(f"{where}: {feature} line without a gene_id (or a known Parent)")
        if own_id:
            gene_of[own_id] = gene_id
        if chrom is not None and fields[0] != chrom:
            continue
        strand = fields[6] if fields[6] in ("+", "-") else "."
        yield _Row(kind, fields[0], start - 1, end, strand, gene_id, [t for t in tids if t], attrs)


def _collect(rows: Iterable[_Row]) -> tuple[dict[str, dict], dict[str, int]]:
    """Gene dicts (with transcript dicts) by gene_id, and the chromosome order of the file."""
    genes: dict[str, dict] = {}
    transcripts: dict[str, dict] = {}
    chrom_order: dict[str, int] = {}
    for r in rows:
        chrom_order.setdefault(r.chrom, len(chrom_order))
        a = r.attrs
        g = genes.setdefault(r.gene_id, {
            "chrom": r.chrom, "start": r.start, "end": r.end, "strand": r.strand,
            "name": a.get("gene_name") or a.get("Name") or r.gene_id,
            "type": a.get("gene_type", a.get("gene_biotype", a.get("biotype"))),
            "transcripts": [], "has_line": False,
        })  # fmt: skip
        if r.kind == "gene":
            g.update(start=r.start, end=r.end, strand=r.strand, has_line=True)
            continue
        if not g["has_line"]:
            g["start"], g["end"] = min(g["start"], r.start), max(g["end"], r.end)
        for tid in r.transcript_ids:
            t = transcripts.get(tid)
            if t is None:
                t = {"id": tid, "start": r.start, "end": r.end, "strand": r.strand, "exons": [],
                     "line": False}  # fmt: skip
                transcripts[tid] = t
                g["transcripts"].append(t)
            if r.kind == "transcript":
                t.update(start=r.start, end=r.end, line=True)
            else:
                t["exons"].append((r.start, r.end))
                if not t["line"]:
                    t["start"], t["end"] = min(t["start"], r.start), max(t["end"], r.end)
    return genes, chrom_order


def _read_genes(
    path: str | os.PathLike[str], chrom: str | None, start: int | None, end: int | None,
    gene_types: Iterable[str] | None,
) -> tuple[list[Gene], bool]:
    """The genes of a file (see :func:`read_gtf`) and whether it has any ``gene`` line."""
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"GTF file not found: {path}")
    lo = -1 if start is None else int(start)
    hi = float("inf") if end is None else int(end)
    types = None if gene_types is None else set(gene_types)
    genes, chrom_order = _collect(_rows(path, chrom))
    out: list[Gene] = []
    for gene_id, g in genes.items():
        if not (g["start"] < hi and g["end"] > lo):
            continue
        if types is not None and g["type"] not in types:
            continue
        tx = tuple(
            Transcript(
                t["id"], g["chrom"], t["start"], t["end"], t["strand"], tuple(sorted(t["exons"]))
            )
            for t in g["transcripts"]
        )
        out.append(
            Gene(gene_id, g["name"], g["chrom"], g["start"], g["end"], g["strand"], g["type"], tx)
        )
    out.sort(key=lambda gene: (chrom_order[gene.chrom], gene.start, gene.end))
    logger.debug("read %d gene(s) from %s", len(out), path)
    return out, any(g["has_line"] for g in genes.values())


def read_gtf(
    path: str | os.PathLike[str],
    *,
    chrom: str | None = None,
    start: int | None = None,
    end: int | None = None,
    gene_types: Iterable[str] | None = None,
) -> list[Gene]:
    """Read the genes of a GTF or GFF3 file (plain or gzip-compressed), optionally in a region.

    Parameters
    ----------
    path : str or os.PathLike
        GTF or GFF3 file. ``gene``, ``transcript`` and ``exon`` lines are used (GFF3: any
        feature whose ``Parent`` is a gene counts as a transcript); files without ``gene``
        (or ``transcript``) lines work too, the spans then come from the exons.
    chrom : str, optional
        Keep only genes on this chromosome.
    start, end : int, optional
        With ``chrom``: keep only genes overlapping ``[start, end)`` (0-based).
    gene_types : iterable of str, optional
        Keep only genes of these types (e.g. ``{"protein_coding"}``).

    Returns
    -------
    list of Gene
        Sorted by chromosome (file order) and start; coordinates 0-based, half-open.

    Raises
    ------
    FileNotFoundError
        If the file does not exist.
    ValueError
        On a malformed line (the message names the file and line).
    """
    return _read_genes(path, chrom, start, end, gene_types)[0]


def find_gene(genes: Iterable[Gene], name: str) -> Gene:
    """Find a gene by name or ID (an Ensembl version suffix is ignored).

    Parameters
    ----------
    genes : iterable of Gene
        Genes, e.g. from :func:`read_gtf`.
    name : str
        ``gene_name`` (exact, then case-insensitive) or ``gene_id`` with or without version.

    Returns
    -------
    Gene
        The match.

    Raises
    ------
    KeyError
        If no gene matches (similar names are suggested) or a name is ambiguous.
    """
    genes = list(genes)
    for key in (
        lambda g: g.name == name,
        lambda g: g.gene_id == name or g.gene_id.split(".")[0] == name.split(".")[0],
        lambda g: g.name.lower() == name.lower(),
    ):
        hits = [g for g in genes if key(g)]
        if len(hits) == 1:
            return hits[0]
        if len(hits) > 1:
            where = ", ".join(f"{g.gene_id} {g.chrom}:{g.start + 1}-{g.end}" for g in hits[:5])
            raise KeyError(f"gene name {name!r} is ambiguous ({where}); give a gene_id")
    close = difflib.get_close_matches(name, [g.name for g in genes], n=5)
    hint = f"; did you mean {', '.join(close)}?" if close else ""
    raise KeyError(f"gene {name!r} not found in the annotation ({len(genes)} genes){hint}")


def _tss_records(gene: Gene, per: Literal["gene", "transcript"]) -> list[TSS]:
    if gene.strand not in ("+", "-"):
        raise ValueError(
            f"gene {gene.gene_id} ({gene.chrom}:{gene.start + 1}-{gene.end}) has strand "
            f"{gene.strand!r}; a TSS needs '+' or '-'"
        )
    base = (gene.gene_id, gene.name, gene.chrom)
    kind = gene.gene_type or ""
    if per == "gene":
        return [TSS(*base, gene.tss, gene.strand, "", kind)]
    return [TSS(*base, t.tss, gene.strand, t.transcript_id, kind) for t in gene.transcripts]


def tss_table(
    genes: Iterable[Gene], *, feature: Literal["auto", "gene", "transcript"] = "auto"
) -> Any:
    """TSSs of genes as a table (one per gene, or one per transcript).

    Parameters
    ----------
    genes : iterable of Gene
        E.g. from :func:`read_gtf`.
    feature : {'auto', 'gene', 'transcript'}, optional
        One TSS per gene (its 5' end) or per transcript. ``'auto'``: per gene.

    Returns
    -------
    pandas.DataFrame
        Columns ``gene_id, gene_name, chrom, tss, strand, transcript_id, gene_type``
        (``transcript_id`` empty for gene TSSs; ``tss`` int64, 0-based).

    Raises
    ------
    ValueError
        If a gene has no strand, or ``feature`` is unknown.
    """
    import pandas as pd

    if feature not in ("auto", "gene", "transcript"):
        raise ValueError(f"feature must be 'auto', 'gene' or 'transcript', got {feature!r}")
    per: Literal["gene", "transcript"] = "transcript" if feature == "transcript" else "gene"
    rows = [
        (s.gene_id, s.gene_name, s.chrom, s.position, s.strand, s.transcript_id, s.gene_type)
        for g in genes
        for s in _tss_records(g, per)
    ]
    columns = ["gene_id", "gene_name", "chrom", "tss", "strand", "transcript_id", "gene_type"]
    table = pd.DataFrame(rows, columns=columns)
    table["tss"] = table["tss"].astype(np.int64)
    return table


def read_gtf_tss(
    path: str | os.PathLike[str],
    *,
    feature: Literal["auto", "gene", "transcript"] = "auto",
    gene_types: Sequence[str] | None = None,
) -> Any:
    """Read transcription start sites from a GTF/GFF3 file (plain or gzip).

    Parameters
    ----------
    path : str or os.PathLike
        Annotation file (read with :func:`read_gtf`).
    feature : {'auto', 'gene', 'transcript'}, optional
        One TSS per gene (its 5' end) or one per transcript (several per gene). ``'auto'``:
        per gene when the file has ``gene`` lines, else per transcript.
    gene_types : sequence of str, optional
        Keep only these ``gene_type`` values, e.g. ``['protein_coding']``.

    Returns
    -------
    pandas.DataFrame
        See :func:`tss_table`; genes in file order (by chromosome, then start).

    Raises
    ------
    FileNotFoundError
        If the file does not exist.
    ValueError
        On a malformed line (naming file and line), or if no TSS is found.
    """
    if feature not in ("auto", "gene", "transcript"):
        raise ValueError(f"feature must be 'auto', 'gene' or 'transcript', got {feature!r}")
    genes, has_gene_lines = _read_genes(path, None, None, None, gene_types)
    if feature == "auto":
        feature = "gene" if has_gene_lines else "transcript"
    table = tss_table(genes, feature=feature)
    if table.empty:
        raise ValueError(f"{path}: no genes with a TSS found")
    logger.info("read %d TSSs from %s", len(table), path)
    return table


# ------------------------------------------------------------------------------------------
# Interval queries
# ------------------------------------------------------------------------------------------


def _chrom_aliases(chrom: str) -> list[str]:
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
        for name in _chrom_aliases(chrom):
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
        chrom : str
            Chromosome.
        start, end : int
            0-based, half-open window.

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
        chrom : str
            Chromosome.
        start, end : int
            0-based, half-open window.
        per : {'gene', 'transcript'}, optional
            One TSS per gene or per transcript.

        Returns
        -------
        list of TSS
            Sorted by position.
        """
        sites = [
            s for g in self.genes_in(chrom, start, end) for s in _tss_records(g, per)
            if start <= s.position < end
        ]  # fmt: skip
        return sorted(sites, key=lambda s: s.position)


# ------------------------------------------------------------------------------------------
# Output bins
# ------------------------------------------------------------------------------------------


def center_bins(bin_index: int, n_bins: int, width: int) -> np.ndarray:
    """The ``width`` bins centred on ``bin_index``, clipped to ``[0, n_bins)``.

    Parameters
    ----------
    bin_index : int
        Centre bin (e.g. the bin holding the variant's first REF base, or a TSS).
    n_bins : int
        Number of output bins.
    width : int
        Number of bins (>= 1): bins ``bin_index - width // 2`` to
        ``bin_index - width // 2 + width - 1``, so ``width=3`` gives ``b-1, b, b+1`` and
        ``width=4`` gives ``b-2 .. b+1``.

    Returns
    -------
    numpy.ndarray
        int64 sorted bin indices inside the output (may be shorter than ``width`` at an edge,
        empty when the centre lies far outside).
    """
    if int(width) < 1:
        raise ValueError(f"width must be >= 1 bin, got {width}")
    lo = int(bin_index) - int(width) // 2
    return np.arange(max(lo, 0), min(lo + int(width), int(n_bins)), dtype=np.int64)


def tss_bin(tss: int, output_start: int, bin_size: int) -> int:
    """Output bin holding genomic position ``tss``.

    Parameters
    ----------
    tss : int
        0-based genomic position of the TSS base.
    output_start : int
        0-based genomic position of the first base of output bin 0: the window's start plus
        the crop offset (``window_start + geometry.offset``).
    bin_size : int
        Base pairs per bin.

    Returns
    -------
    int
        ``(tss - output_start) // bin_size``; outside ``[0, n_bins)`` when the TSS is not
        covered by the output.
    """
    return (int(tss) - int(output_start)) // int(bin_size)


@dataclass(frozen=True)
class OutputBins:
    """Where a window's output bins lie on the genome.

    Bin ``i`` covers ``[start + i * bin_size, start + (i + 1) * bin_size)``; with ``reverse``
    (the output of the reverse-complemented window) the order is flipped: bin ``i`` is forward
    bin ``n_bins - 1 - i``. Build it from plain ints or with :meth:`of` from a geometry.

    Attributes
    ----------
    start : int
        0-based genomic position of the first base of (forward) output bin 0: window start
        plus the crop offset.
    bin_size : int
        Base pairs per bin.
    n_bins : int
        Number of output bins.
    reverse : bool
        Whether the output runs 3'->5' along the genome's + strand.
    """

    start: int
    bin_size: int
    n_bins: int
    reverse: bool = False

    @classmethod
    def of(cls, geometry: Any, window_start: int = 0, *, reverse: bool = False) -> OutputBins:
        """From a geometry and the genomic start of the model input.

        Parameters
        ----------
        geometry : object
            Anything with ``offset``, ``bin_size`` and ``n_bins`` (e.g.
            :class:`enformer.model.geometry.OutputGeometry`).
        window_start : int, optional
            0-based genomic position of input index 0.
        reverse : bool, optional
            See the class.

        Returns
        -------
        OutputBins
            With ``start = window_start + geometry.offset``.
        """
        return cls(
            int(window_start) + int(geometry.offset), int(geometry.bin_size),
            int(geometry.n_bins), reverse,
        )  # fmt: skip

    @property
    def end(self) -> int:
        """0-based genomic end (exclusive) of the last output bin."""
        return self.start + self.n_bins * self.bin_size

    def covers(self, position: int) -> bool:
        """Whether the output covers the genomic ``position``."""
        return self.start <= int(position) < self.end

    def _oriented(self, forward: np.ndarray) -> np.ndarray:
        return np.sort(self.n_bins - 1 - forward) if self.reverse else forward

    def bin_of(self, position: int) -> int:
        """Output bin of a genomic position (outside ``[0, n_bins)`` when not covered)."""
        b = tss_bin(position, self.start, self.bin_size)
        return self.n_bins - 1 - b if self.reverse else b

    def tss_bins(self, tss: int | Iterable[int], width: int = 3) -> np.ndarray:
        """The TSS bins: the :func:`center_bins` around each covered TSS's bin, united.

        Parameters
        ----------
        tss : int or iterable of int
            0-based genomic TSS positions; those outside the output are ignored.
        width : int, optional
            Bins per TSS (default 3: ``b-1, b, b+1``).

        Returns
        -------
        numpy.ndarray
            int64 sorted distinct bins; empty if no TSS is covered.
        """
        if int(width) < 1:
            raise ValueError(f"width must be >= 1 bin, got {width}")
        sites = [int(tss)] if isinstance(tss, int | np.integer) else [int(t) for t in tss]
        parts = [center_bins(self.bin_of(p), self.n_bins, width) for p in sites if self.covers(p)]
        return np.unique(np.concatenate(parts)) if parts else np.zeros(0, dtype=np.int64)

    def interval_bins(self, start: int, end: int) -> np.ndarray:
        """Bins overlapping the genomic interval ``[start, end)`` (int64, sorted)."""
        lo = max(tss_bin(start, self.start, self.bin_size), 0)
        hi = min(-(-(int(end) - self.start) // self.bin_size), self.n_bins)
        return self._oriented(np.arange(lo, max(hi, lo), dtype=np.int64))

    def exon_bins(self, gene: Gene) -> np.ndarray:
        """Bins overlapping any exon of ``gene`` (int64, sorted, distinct)."""
        parts = [self.interval_bins(s, e) for s, e in gene.exons]
        return np.unique(np.concatenate(parts)) if parts else np.zeros(0, dtype=np.int64)


def tss_bins(tss: int, output_start: int, n_bins: int, bin_size: int, width: int = 3) -> np.ndarray:
    """The ``width`` output bins centred on a TSS's bin (:meth:`OutputBins.tss_bins`).

    Parameters
    ----------
    tss : int
        0-based genomic position of the TSS.
    output_start : int
        0-based genomic position of output bin 0 (window start + crop offset).
    n_bins : int
        Number of output bins.
    bin_size : int
        Base pairs per bin.
    width : int, optional
        Bins around the TSS bin (default 3: ``b-1, b, b+1``).

    Returns
    -------
    numpy.ndarray
        int64 bins inside the output; empty if the TSS's bin is outside it.
    """
    return OutputBins(int(output_start), int(bin_size), int(n_bins)).tss_bins(tss, width)


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
        output_start : int
            0-based genomic position of output bin 0 (window start + crop offset).
        n_bins : int
            Number of output bins.
        bin_size : int
            Base pairs per bin.
        width : int, optional
            Bins around each TSS bin (:meth:`OutputBins.tss_bins`; default 3).

        Returns
        -------
        list of GeneBins
            One per gene, in order of first TSS position; a gene with several TSSs in the span
            reads the union of their bins.
        """
        names = [c for c in _chrom_aliases(chrom) if c in self._by_chrom]
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
