"""Annotation records (:class:`Gene`, :class:`Transcript`, :class:`TSS`) and the GTF/GFF3 reader.

Coordinates are 0-based and half-open (see :mod:`enformer.data.annotation`).
"""

from __future__ import annotations

import difflib
import logging
import os
import re
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

import numpy as np

from ..genome import numbered_lines, parse_start_end

__all__ = ["TSS", "Gene", "Transcript", "find_gene", "read_gtf", "read_gtf_tss", "tss_table"]

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
_GENES = {"gene", "pseudogene"}  # and GFF3's '*_gene' types (Ensembl's ncRNA_gene)
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
        start, end = parse_start_end(fields[3], fields[4], where)
        if start < 1 or end < start:
            raise ValueError(f"{where}: need 1 <= start <= end, got {start}, {end}")
        attrs = _attributes(fields[8])
        feature, own_id = fields[2], attrs.get("ID")
        parents = [p for p in attrs.get("Parent", "").split(",") if p]
        if feature in _GENES or feature.endswith("_gene"):
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
        GTF or GFF3 file. ``gene``, ``transcript`` and ``exon`` lines are used (GFF3: gene
        types also ``pseudogene`` and ``*_gene``, and any feature whose ``Parent`` is an
        earlier gene counts as a transcript); files without ``gene`` (or ``transcript``)
        lines work too, the spans then come from the exons.
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


def tss_records(gene: Gene, per: Literal["gene", "transcript"]) -> list[TSS]:
    """The TSS of a gene (``per="gene"``) or of each of its transcripts; needs a strand."""
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
        for s in tss_records(g, per)
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
