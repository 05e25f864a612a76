"""Gene annotation from a GTF file: genes, transcripts, exons and TSSs.

A small, dependency-free GTF reader for what interpretation needs: the genes of a region
(to draw them under tracks) and a gene's transcription start sites (to aim a contribution
score or an ISM read-out at the TSS bins).

Coordinates
-----------
GTF is 1-based with inclusive ends. Everything returned here is **0-based and half-open**,
like :class:`enformer.data.genome.Interval`: a GTF line ``chr1 ... 11869 14409`` becomes
``start=11868, end=14409``. A TSS is a 0-based base position: ``start`` of a ``+`` strand
feature, ``end - 1`` of a ``-`` strand one.
"""

from __future__ import annotations

import gzip
import logging
import os
import re
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from pathlib import Path

__all__ = ["Gene", "Transcript", "find_gene", "read_gtf"]

logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class Transcript:
    """One transcript of a gene (0-based, half-open coordinates).

    Attributes
    ----------
    transcript_id : str
        The GTF ``transcript_id``.
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
        """0-based position of the transcription start site."""
        return self.end - 1 if self.strand == "-" else self.start


@dataclass(frozen=True)
class Gene:
    """A gene with its transcripts (0-based, half-open coordinates).

    Attributes
    ----------
    gene_id : str
        The GTF ``gene_id``.
    name : str
        ``gene_name`` (the ``gene_id`` when the GTF has no name).
    chrom : str
        Chromosome.
    start, end : int
        Span of the gene.
    strand : str
        ``'+'``, ``'-'`` or ``'.'``.
    gene_type : str or None
        ``gene_type`` (or ``gene_biotype``) when given.
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
        return self.end - 1 if self.strand == "-" else self.start

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


_ATTRIBUTE = re.compile(r'([^\s;]+)\s+(?:"((?:[^"\\]|\\.)*)"|([^;]*?))\s*(?:;|$)')


def _attributes(text: str) -> dict[str, str]:
    """Parse a GTF attribute column (``key "value"; key value;``); first value per key wins."""
    out: dict[str, str] = {}
    for match in _ATTRIBUTE.finditer(text):
        value = match.group(2) if match.group(2) is not None else match.group(3)
        out.setdefault(match.group(1), value.strip())
    return out


def _lines(path: Path) -> Iterator[tuple[int, str]]:
    with open(path, "rb") as fh:
        gz = fh.read(2) == b"\x1f\x8b"
    opener = gzip.open if gz else open
    with opener(path, "rt", encoding="utf-8") as fh:  # type: ignore[operator]
        yield from enumerate(fh, start=1)


def read_gtf(
    path: str | os.PathLike[str],
    *,
    chrom: str | None = None,
    start: int | None = None,
    end: int | None = None,
    gene_types: Iterable[str] | None = None,
) -> list[Gene]:
    """Read the genes of a GTF file (plain or gzip-compressed), optionally within a region.

    Parameters
    ----------
    path : str or os.PathLike
        GTF file. ``gene``, ``transcript`` and ``exon`` lines are used; files without
        ``gene`` (or ``transcript``) lines work too, the spans then come from the exons.
    chrom : str, optional
        Keep only genes on this chromosome.
    start, end : int, optional
        With ``chrom``: keep only genes overlapping ``[start, end)`` (0-based).
    gene_types : iterable of str, optional
        Keep only genes of these types (e.g. ``{"protein_coding"}``).

    Returns
    -------
    list of Gene
        Sorted by chromosome (file order) and start.

    Raises
    ------
    FileNotFoundError
        If the file does not exist.
    ValueError
        On a malformed line (the message names the file and line).
    """
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"GTF file not found: {path}")
    lo = -1 if start is None else int(start)
    hi = float("inf") if end is None else int(end)
    types = None if gene_types is None else set(gene_types)
    genes: dict[str, dict] = {}
    transcripts: dict[str, dict] = {}
    chrom_order: dict[str, int] = {}
    for number, line in _lines(path):
        if not line.strip() or line.startswith("#"):
            continue
        fields = line.rstrip("\r\n").split("\t")
        if len(fields) < 9:
            raise ValueError(
                f"{path}, line {number}: expected 9 tab-separated GTF columns, got {len(fields)}"
            )
        seqname, feature = fields[0], fields[2]
        if feature not in ("gene", "transcript", "exon"):
            continue
        if chrom is not None and seqname != chrom:
            continue
        try:
            s, e = int(fields[3]) - 1, int(fields[4])
        except ValueError:
            raise ValueError(
                f"{path}, line {number}: start and end must be integers, got "
                f"{fields[3]!r} and {fields[4]!r}"
            ) from None
        attrs = _attributes(fields[8])
        gene_id = attrs.get("gene_id")
        if gene_id is None:
            raise ValueError(f"{path}, line {number}: {feature} line without a gene_id")
        chrom_order.setdefault(seqname, len(chrom_order))
        strand = fields[6] if fields[6] in ("+", "-") else "."
        g = genes.setdefault(
            gene_id,
            {
                "chrom": seqname,
                "start": s,
                "end": e,
                "strand": strand,
                "name": attrs.get("gene_name", gene_id),
                "type": attrs.get("gene_type", attrs.get("gene_biotype")),
                "transcripts": [],
                "has_line": False,
            },
        )
        if feature == "gene":
            g.update(start=s, end=e, strand=strand, has_line=True)
            continue
        if not g["has_line"]:
            g["start"], g["end"] = min(g["start"], s), max(g["end"], e)
        tid = attrs.get("transcript_id")
        if tid is None:
            continue
        t = transcripts.get(tid)
        if t is None:
            t = {"id": tid, "start": s, "end": e, "strand": strand, "exons": [], "line": False}
            transcripts[tid] = t
            g["transcripts"].append(t)
        if feature == "transcript":
            t.update(start=s, end=e, line=True)
        else:
            t["exons"].append((s, e))
            if not t["line"]:
                t["start"], t["end"] = min(t["start"], s), max(t["end"], e)
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
    return out


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
    import difflib

    close = difflib.get_close_matches(name, [g.name for g in genes], n=5)
    hint = f"; did you mean {', '.join(close)}?" if close else ""
    raise KeyError(f"gene {name!r} not found in the annotation ({len(genes)} genes){hint}")
