"""The synthetic construct of ``enformer demo``: sequence, elements, genes and example SNVs.

A seeded random background (41% GC, like the human genome) carries two genes with
CpG-island-like promoters (one on each strand), an enhancer and two CTCF sites, made of
textbook transcription-factor consensus sites written for this package (see :data:`MOTIFS`).
:func:`write_construct` writes it as an indexed FASTA, a GTF of its genes and a BED of its
elements; :func:`demo_variants` places a few SNVs that break motifs (and one control far from
every element) and :func:`write_vcf` writes them. Tests reuse the construct as a small genome.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from ..data.sequence import COMPLEMENT

__all__ = [
    "DEMO_VARIANTS",
    "MOTIFS",
    "TRANSVERSION",
    "Construct",
    "DemoVariant",
    "Element",
    "ExampleVariant",
    "build_construct",
    "construct_length",
    "demo_variants",
    "model_window",
    "write_construct",
    "write_vcf",
]

# (IUPAC-free; one representative string each). Keys are the names used in the BED/plots.
MOTIFS: dict[str, str] = {
    "TATA": "TATAAAAG",  # TATA box (TBP), ~30 bp upstream of the TSS
    "INR": "TCAGTTCT",  # initiator, A of CAGT at the TSS
    "CCAAT": "AGCCAATCAG",  # CCAAT box (NF-Y)
    "GC": "GGGGCGGGGC",  # GC box (SP1/KLF)
    "NRF1": "GCGCATGCGC",  # NRF1 palindrome
    "ETS": "ACCGGAAGTG",  # ETS (GABPA/ELK) GGAA core
    "CREB": "TGACGTCA",  # cAMP response element
    "YY1": "AAGATGGCGGC",  # YY1
    "AP1": "TGAGTCA",  # AP-1 (FOS/JUN) TRE
    "GATA": "AGATAAGG",  # GATA
    "CEBP": "ATTGCGCAAT",  # C/EBP palindrome
    "CTCF": "CCGCGAGGGGGCGCTG",  # CTCF core (CCCTC-binding factor), forward orientation
}

def _rc(seq: str) -> str:
    return seq.translate(COMPLEMENT)[::-1]


@dataclass(frozen=True)
class Element:
    """A feature of the construct (0-based, half-open), e.g. a motif, promoter or exon."""

    name: str
    kind: str
    start: int
    end: int
    strand: str = "+"


@dataclass
class Construct:
    """A synthetic DNA sequence with its annotated elements and genes."""

    name: str
    sequence: str
    elements: list[Element] = field(default_factory=list)
    # gene name -> (strand, tss, exons as 0-based half-open spans in genomic order)
    genes: dict[str, tuple[str, int, list[tuple[int, int]]]] = field(default_factory=dict)

    def find(self, name: str) -> Element:
        """The first element called ``name``."""
        for element in self.elements:
            if element.name == name:
                return element
        raise KeyError(name)


def _background(rng: np.random.Generator, n: int, gc: float) -> str:
    p = [(1 - gc) / 2, gc / 2, gc / 2, (1 - gc) / 2]
    return "".join(np.array(list("ACGT"))[rng.choice(4, size=n, p=p)])


class _Builder:
    """Writes motifs and elements into a mutable background sequence, recording them."""

    def __init__(self, name: str, length: int, rng: np.random.Generator) -> None:
        self.name = name
        self.rng = rng
        self.seq = list(_background(rng, length, gc=0.41))
        self.elements: list[Element] = []
        self.genes: dict[str, tuple[str, int, list[tuple[int, int]]]] = {}

    def write(self, start: int, text: str) -> None:
        self.seq[start : start + len(text)] = list(text)

    def motif(self, name: str, start: int, strand: str = "+", label: str | None = None) -> int:
        text = MOTIFS[name] if strand == "+" else _rc(MOTIFS[name])
        self.write(start, text)
        self.elements.append(Element(label or name, "motif", start, start + len(text), strand))
        return start + len(text)

    def gc_island(self, start: int, end: int) -> None:
        self.write(start, _background(self.rng, end - start, gc=0.68))

    def promoter(self, gene: str, tss: int, strand: str) -> None:
        """A CpG-island promoter of ``gene`` whose TSS is base ``tss``, on ``strand``."""
        sign = 1 if strand == "+" else -1
        lo, hi = (tss - 700, tss + 300) if strand == "+" else (tss - 300, tss + 701)
        self.gc_island(lo, hi)
        # upstream sites at these distances from the TSS (bp upstream, strand-aware)
        layout = [
            (560, "GC"), (500, "NRF1"), (440, "ETS"), (380, "GC"), (320, "CCAAT"),
            (260, "CREB"), (200, "GC"), (150, "YY1"), (100, "ETS"), (70, "CCAAT"),
        ]  # fmt: skip
        for distance, name in layout:
            m = MOTIFS[name]
            pos = tss - distance if sign > 0 else tss + distance - len(m) + 1
            self.motif(name, pos, strand, label=f"{gene}_{name}_{distance}")
        tata = MOTIFS["TATA"]
        pos = tss - 31 if sign > 0 else tss + 31 - len(tata) + 1
        self.motif("TATA", pos, strand, label=f"{gene}_TATA")
        inr = MOTIFS["INR"]  # the A of "CAGT" (offset 2) is the TSS
        pos = tss - 2 if sign > 0 else tss + 2 - len(inr) + 1
        self.motif("INR", pos, strand, label=f"{gene}_INR")
        self.elements.append(Element(f"{gene}_promoter", "promoter", lo, hi, strand))

    def gene(self, gene: str, tss: int, strand: str, exon_specs: Sequence[tuple[int, int]]) -> None:
        """Promoter plus exons at (offset from TSS along the gene, length) with splice sites."""
        self.promoter(gene, tss, strand)
        exons = []
        for k, (offset, size) in enumerate(exon_specs):
            if strand == "+":
                s, e = tss + offset, tss + offset + size
            else:
                s, e = tss - offset - size + 1, tss - offset + 1
            exons.append((s, e))
            last = k == len(exon_specs) - 1
            # donor GT after the exon, acceptor AG before it (in transcript orientation)
            if strand == "+":
                if k:
                    self.write(s - 2, "AG")
                if not last:
                    self.write(e, "GTAAGT")
                else:
                    self.write(e - 30, "AATAAA")
            else:
                if k:
                    self.write(e, "CT")
                if not last:
                    self.write(s - 6, "ACTTAC")
                else:
                    self.write(s + 24, "TTTATT")
        exons.sort()
        self.genes[gene] = (strand, tss, exons)
        for i, (s, e) in enumerate(exons):
            self.elements.append(Element(f"{gene}_exon{i + 1}", "exon", s, e, strand))

    def enhancer(self, name: str, start: int) -> None:
        sites = ["AP1", "ETS", "GATA", "CEBP", "AP1", "GC", "ETS", "GATA", "CEBP", "AP1"]
        pos = start
        for i, site in enumerate(sites):
            strand = "+" if i % 2 == 0 else "-"
            pos = self.motif(site, pos, strand, label=f"{name}_{site}_{i + 1}") + 12
        self.elements.append(Element(name, "enhancer", start, pos, "."))

    def build(self) -> Construct:
        self.elements.sort(key=lambda e: (e.start, e.end))
        return Construct(self.name, "".join(self.seq), self.elements, self.genes)


def build_construct(length: int = 196_608, *, seed: int = 0, name: str = "demo") -> Construct:
    """The demo's synthetic construct: elements laid out around the centre of ``length`` bp.

    Every element lies within 30 kb of the centre, so it is inside the output span of both
    the mini model (65,536 bp) and the official model (114,688 bp) when the model's input
    window is centred on the construct. Give ``length`` = the model's input length + 65,536
    so that the windows of variant scoring, which are centred on each variant, stay inside
    the construct too (:func:`construct_length`).

    Parameters
    ----------
    length : int, optional
        Length in bp; at least 65,536.
    seed : int, optional
        Seed of the random background.
    name : str, optional
        Sequence (chromosome) name.

    Returns
    -------
    Construct
        The sequence, its elements and its genes (``DEMO1`` on +, ``DEMO2`` on -).
    """
    if length < 65_536:
        raise ValueError(f"the demo construct needs at least 65,536 bp, got {length}")
    c = length // 2
    b = _Builder(name, length, np.random.default_rng(seed))
    b.motif("CTCF", c - 29_536, "+", label="CTCF_left")
    b.enhancer("enhancer", c - 21_536)
    b.gene("DEMO1", c - 13_536, "+", [(0, 420), (3_900, 160), (8_200, 210), (12_600, 900)])
    b.gene("DEMO2", c + 18_464, "-", [(0, 380), (2_800, 140), (7_100, 190), (11_000, 800)])
    b.motif("CTCF", c + 28_464, "-", label="CTCF_right")
    return b.build()


def construct_length(sequence_length: int) -> int:
    """Construct length for a model of this input length: room for variant-centred windows."""
    return int(sequence_length) + 65_536


def model_window(construct: Construct, sequence_length: int) -> tuple[int, str]:
    """``(start, sequence)`` of the model input window centred on the construct."""
    start = len(construct.sequence) // 2 - sequence_length // 2
    return start, construct.sequence[start : start + sequence_length]


# ------------------------------------------------------------------------------ files


def write_construct(construct: Construct, out_dir: str | os.PathLike[str]) -> dict[str, Path]:
    """Write the construct as FASTA (+ ``.fai``), GTF and BED into ``out_dir``.

    Returns
    -------
    dict
        ``{"fasta": ..., "gtf": ..., "bed": ...}``.
    """
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    seq = construct.sequence
    fasta = out / "construct.fa"
    lines = [f">{construct.name}"] + [seq[i : i + 60] for i in range(0, len(seq), 60)]
    fasta.write_text("\n".join(lines) + "\n")
    # the .fai by hand (plain FASTA, 60-bp lines), so no indexer is needed
    offset = len(construct.name) + 2
    (out / "construct.fa.fai").write_text(f"{construct.name}\t{len(seq)}\t{offset}\t60\t61\n")

    gtf_lines = []
    src = "enformer_demo"
    for gene, (strand, _tss, exons) in construct.genes.items():
        lo, hi = exons[0][0], exons[-1][1]
        attrs = f'gene_id "{gene}"; gene_name "{gene}"; gene_type "synthetic";'
        tattrs = attrs + f' transcript_id "{gene}.1";'
        chrom = construct.name
        gtf_lines.append(f"{chrom}\t{src}\tgene\t{lo + 1}\t{hi}\t.\t{strand}\t.\t{attrs}")
        gtf_lines.append(f"{chrom}\t{src}\ttranscript\t{lo + 1}\t{hi}\t.\t{strand}\t.\t{tattrs}")
        order = exons if strand == "+" else exons[::-1]
        for n, (s, e) in enumerate(order, 1):
            gtf_lines.append(
                f"{chrom}\t{src}\texon\t{s + 1}\t{e}\t.\t{strand}\t.\t{tattrs} exon_number {n};"
            )
    gtf = out / "construct.gtf"
    gtf.write_text("\n".join(gtf_lines) + "\n")

    bed = out / "construct.bed"
    bed.write_text(
        "".join(
            f"{construct.name}\t{e.start}\t{e.end}\t{e.name}\t0\t{e.strand}\n"
            for e in construct.elements
        )
    )
    return {"fasta": fasta, "gtf": gtf, "bed": bed}


@dataclass(frozen=True)
class ExampleVariant:
    """An SNV or other variant the demo scores (1-based ``pos``, as in a VCF).

    Attributes
    ----------
    chrom, pos, ref, alt : str, int, str, str
        Where it is and its alleles.
    id : str
        Identifier (VCF ID column).
    note : str
        What the variant hits (empty for a user's variant).
    """

    chrom: str
    pos: int
    ref: str
    alt: str
    id: str
    note: str = ""


@dataclass(frozen=True)
class DemoVariant:
    """A demo SNV: it hits base ``offset`` of element ``element`` (0-based, forward strand)."""

    id: str
    element: str
    offset: int
    note: str


# Variants that break a motif, and one control far from every element.
DEMO_VARIANTS: tuple[DemoVariant, ...] = (
    DemoVariant("DEMO1_TATA", "DEMO1_TATA", 3, "TATA box of DEMO1 (+ strand)"),
    DemoVariant("DEMO1_GC", "DEMO1_GC_200", 5, "GC box (SP1) in the DEMO1 promoter"),
    DemoVariant("DEMO2_INR", "DEMO2_INR", 5, "initiator at the DEMO2 TSS (- strand)"),
    DemoVariant("enhancer_ETS", "enhancer_ETS_2", 4, "ETS site in the enhancer"),
    DemoVariant("control", "", 0, "background sequence, kilobases from any element"),
)
# The ALT of every example SNV: the transversion of its REF base.
TRANSVERSION = {"A": "C", "C": "A", "G": "T", "T": "G"}


def demo_variants(construct: Construct) -> list[ExampleVariant]:
    """The demo variants placed on ``construct``, in :data:`DEMO_VARIANTS` order.

    Each ALT is the transversion of the construct's base (A<->C, G<->T).
    """
    out = []
    for v in DEMO_VARIANTS:
        if v.element:
            pos0 = construct.find(v.element).start + v.offset
        else:  # midway between the end of DEMO1 and the end of DEMO2
            pos0 = (construct.genes["DEMO1"][2][-1][1] + construct.genes["DEMO2"][2][0][0]) // 2
        ref = construct.sequence[pos0]
        alt = TRANSVERSION[ref]
        out.append(
            ExampleVariant(construct.name, pos0 + 1, ref, alt, f"{v.id}_{ref}>{alt}", v.note)
        )
    return out


def write_vcf(chrom: str, length: int, variants: Sequence[ExampleVariant], path: Path) -> Path:
    """A VCFv4.2 of ``variants`` on one contig ``chrom`` of ``length`` bp; return ``path``."""
    lines = [
        "##fileformat=VCFv4.2",
        f"##contig=<ID={chrom},length={length}>",
        '##INFO=<ID=NOTE,Number=1,Type=String,Description="What the variant hits">',
        "#CHROM\tPOS\tID\tREF\tALT\tQUAL\tFILTER\tINFO",
    ]
    for v in variants:
        note = v.note.replace(" ", "_").replace(";", ",").replace("=", "-")
        info = f"NOTE={note}" if note else "."
        lines.append(f"{v.chrom}\t{v.pos}\t{v.id}\t{v.ref}\t{v.alt}\t.\tPASS\t{info}")
    path.write_text("\n".join(lines) + "\n")
    return path
