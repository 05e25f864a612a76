"""The package's main job end to end, offline: ``enformer demo``.

The demo needs nothing but the package. It

1. builds a **synthetic construct** of the model's input length: a seeded random background
   (41% GC, like the human genome) carrying two genes with CpG-island-like promoters (one on
   each strand), an enhancer, and two CTCF sites. The elements are made of textbook
   transcription-factor consensus sites written for this package (TATA box, initiator, CCAAT
   box, GC box, NRF1, ETS, CREB, YY1, AP-1, GATA, C/EBP, CTCF); see :data:`MOTIFS`;
2. writes it as an indexed FASTA, a GTF of its genes, a BED of its elements and a VCF of
   a few variants that break motifs (and one control far from any element);
3. predicts tracks over the construct with the bundled ``mini`` model (or any weights) and
   writes them as BigWig files;
4. scores the variants (SAD, logSED) into a table, through the same code as
   ``enformer score``;
5. draws the predicted tracks and the strongest variant's effect (PNG), titled with the
   model's description;
6. writes ``summary.json`` and prints where everything is and what to run next with the
   official weights.

With ``fasta`` and ``region`` (``enformer demo --fasta hg38.fa --region chr:start-end``) steps
3-6 run on a region of the user's genome instead of the construct, with the user's variants
(``vcf``) and genes (``gtf``) when given.

With the mini model on 2 CPU cores the whole demo takes about 10-20 seconds. The mini model
is a demonstration model (see :func:`enformer.weights.model_card`); its predictions on a
synthetic construct show the package working, not biology.
"""

from __future__ import annotations

import json
import os
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

__all__ = [
    "MOTIFS",
    "Construct",
    "Element",
    "build_construct",
    "nearest_real_base",
    "run_demo",
    "write_construct",
]

# Consensus sites written for this package from the well-known consensus of each factor
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

_COMPLEMENT = str.maketrans("ACGTN", "TGCAN")


def _rc(seq: str) -> str:
    return seq.translate(_COMPLEMENT)[::-1]


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
_TRANSVERSION = {"A": "C", "C": "A", "G": "T", "T": "G"}


def demo_variants(construct: Construct) -> list[dict[str, Any]]:
    """The demo variants placed on ``construct``: chrom, 1-based pos, ref, alt, id, note.

    Each ALT is the transversion of the construct's base (A<->C, G<->T).
    """
    out = []
    for v in DEMO_VARIANTS:
        if v.element:
            pos0 = construct.find(v.element).start + v.offset
        else:  # midway between the end of DEMO1 and the end of DEMO2
            pos0 = (construct.genes["DEMO1"][2][-1][1] + construct.genes["DEMO2"][2][0][0]) // 2
        ref = construct.sequence[pos0]
        alt = _TRANSVERSION[ref]
        out.append(
            {
                "chrom": construct.name,
                "pos": pos0 + 1,
                "ref": ref,
                "alt": alt,
                "id": f"{v.id}_{ref}>{alt}",
                "note": v.note,
            }  # fmt: skip
        )
    return out


def write_vcf(chrom: str, length: int, variants: list[dict[str, Any]], path: Path) -> Path:
    """A VCFv4.2 of ``variants`` (dicts with chrom, pos, id, ref, alt, optional note)."""
    lines = [
        "##fileformat=VCFv4.2",
        f"##contig=<ID={chrom},length={length}>",
        '##INFO=<ID=NOTE,Number=1,Type=String,Description="What the variant hits">',
        "#CHROM\tPOS\tID\tREF\tALT\tQUAL\tFILTER\tINFO",
    ]
    for v in variants:
        note = v.get("note", "").replace(" ", "_").replace(";", ",").replace("=", "-")
        info = f"NOTE={note}" if note else "."
        lines.append(
            f"{v['chrom']}\t{v['pos']}\t{v['id']}\t{v['ref']}\t{v['alt']}\t.\tPASS\t{info}"
        )
    path.write_text("\n".join(lines) + "\n")
    return path


# ----------------------------------------------------------------------------- inputs


@dataclass
class _DemoInput:
    """What the demo runs on: a FASTA, the model window in it, variants and annotation."""

    fasta: Path
    chrom: str
    window_start: int
    window: str
    vcf: Path
    variants: list[dict[str, Any]] | None  # None: read back from the scores table
    gtf: Path | None = None
    bed: Path | None = None
    highlight: list[tuple[int, int]] = field(default_factory=list)
    title: str = ""
    text: str = ""
    info: dict[str, Any] = field(default_factory=dict)
    chrom_aliases: bool = False


def _construct_input(sequence_length: int, out: Path, seed: int) -> _DemoInput:
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
    return _DemoInput(
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


def _genome_input(
    sequence_length: int,
    out: Path,
    fasta: str | os.PathLike[str],
    region: str,
    vcf: str | os.PathLike[str] | None,
    gtf: str | os.PathLike[str] | None,
    chrom_aliases: bool = False,
) -> _DemoInput:
    from .data.genome import Genome, parse_region

    interval = parse_region(region)
    if gtf is not None and not Path(gtf).is_file():
        raise FileNotFoundError(f"GTF not found: {gtf}")
    with Genome(fasta, warn_padding=False, chrom_aliases=chrom_aliases) as genome:
        chrom = genome.resolve_chrom(interval.chrom)
        centre = (interval.start + interval.end) // 2
        win = genome.window(chrom, centre, sequence_length)
        _check_not_mostly_n(win.sequence, interval.to_ucsc(), Path(fasta).name)
        variants: list[dict[str, Any]] | None = None
        if vcf is None:  # example transversions at the centre and 1 kb either side
            variants = []
            for name, offset in (("centre", 0), ("minus_1kb", -1000), ("plus_1kb", 1000)):
                pos0 = nearest_real_base(genome, chrom, centre + offset, interval.to_ucsc())
                ref = genome.fetch(chrom, pos0, pos0 + 1)
                alt = _TRANSVERSION[ref]
                variants.append(
                    {
                        "chrom": chrom,
                        "pos": pos0 + 1,
                        "ref": ref,
                        "alt": alt,
                        "id": f"{name}_{ref}>{alt}",
                        "note": f"example SNV, {pos0 - centre:+d} bp from the region centre",
                    }  # fmt: skip
                )
            size = genome.chrom_sizes[chrom]
            vcf_path = write_vcf(chrom, size, variants, out / "variants.vcf")
        else:
            vcf_path = Path(vcf)
            if not vcf_path.is_file():
                raise FileNotFoundError(f"variant file not found: {vcf_path}")
    return _DemoInput(
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


def _allele_pair(inp: _DemoInput, variant: dict[str, Any], length: int) -> tuple[str, str, int]:
    """REF and ALT windows of ``length`` bp with the variant's first base at ``length // 2``."""
    from .data.genome import Genome

    pos0 = int(variant["pos"]) - 1
    start = pos0 - length // 2
    ref, alt = str(variant["ref"]), str(variant["alt"])
    extra = max(0, len(ref) - len(alt))
    with Genome(inp.fasta, warn_padding=False, chrom_aliases=inp.chrom_aliases) as genome:
        seq = genome.fetch(inp.chrom, start, start + length + extra)
    k = length // 2
    return seq[:length], (seq[:k] + alt + seq[k + len(ref) :])[:length], start


# ------------------------------------------------------------------------------- run

# Tracks shown by default: identifiers in the mini model's sheet (stranded CAGE pair,
# DNase, stranded RNA pair). Other models show their first five tracks unless told.
MINI_DEMO_TRACKS = ("CNhs10752+", "CNhs10752-", "ENCFF890OGQ", "ENCFF520NFI+", "ENCFF520NFI-")


def run_demo(
    out_dir: str | os.PathLike[str] = "enformer-demo",
    *,
    weights: str = "mini",
    tracks: Any = None,
    seed: int = 0,
    fasta: str | os.PathLike[str] | None = None,
    region: str | None = None,
    vcf: str | os.PathLike[str] | None = None,
    gtf: str | os.PathLike[str] | None = None,
    chrom_aliases: bool = False,
    on_ref_mismatch: str = "fail",
    progress: bool = False,
    log: Any = None,
) -> dict[str, Any]:
    """Run the demo into ``out_dir``; return its summary (also written as ``summary.json``).

    By default the input is the synthetic construct. With ``fasta`` and ``region`` the same
    report is made for a region of the user's genome instead: the model window is centred on
    the region, the variants come from ``vcf`` (default: example transversions at the region's
    centre and 1 kb either side) and the genes drawn from ``gtf``.

    Parameters
    ----------
    out_dir : str or os.PathLike
        Output folder (created; files in it are overwritten).
    weights : str, optional
        Model to run: ``"mini"`` (bundled, the default) or anything
        :func:`~enformer.weights.load_pretrained` reads.
    tracks : object, optional
        Tracks to write and draw (a :meth:`TrackSheet.select` spec); default a CAGE pair, a
        DNase track and an RNA pair for the mini model, else the first five tracks.
    seed : int, optional
        Seed of the construct's background sequence.
    fasta, region : optional
        An indexed genome FASTA and a region (``chr:start-end``, 1-based inclusive) to use
        instead of the construct; both or neither.
    vcf, gtf : optional
        With ``fasta``: variants to score (VCF or TSV) and genes to draw.
    chrom_aliases : bool, optional
        With ``fasta``: map ``1`` <-> ``chr1`` style names (see :class:`Genome`).
    on_ref_mismatch : {'fail', 'skip', 'flip'}, optional
        With ``vcf``: what to do when a REF allele differs from the genome.
    progress : bool, optional
        Show progress bars.
    log : callable, optional
        Called with one line of text per step (e.g. ``print``).

    Returns
    -------
    dict
        Paths of every file, the model's description, the variant scores and timings.
    """
    t0 = time.perf_counter()
    say = log or (lambda _line: None)
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)

    from .data.genome import Genome, Interval
    from .data.tracks import TrackSheet, TrackSheetNotFound, find_track_sheet, parse_index_spec
    from .inference.predict import predict
    from .model.geometry import output_geometry
    from .inference.writers import predict_to_files
    from .interpret.plots import plot_tracks, plot_variant
    from .variants.score import write_scores
    from .weights import load_pretrained, weights_dir

    if (fasta is None) != (region is None):
        raise ValueError("give --fasta and --region together (or neither, for the construct)")
    if fasta is None and (vcf is not None or gtf is not None):
        raise ValueError("--vcf and --gtf go with --fasta/--region (the construct has its own)")
    for label, path in (("genome FASTA", fasta), ("variant file", vcf), ("GTF", gtf)):
        if path is not None and not Path(path).is_file():
            raise FileNotFoundError(f"{label} not found: {path}")
    model = load_pretrained(weights, progress=progress)
    cfg = model.config
    head = "human" if "human" in cfg.heads else next(iter(cfg.heads))
    description = cfg.description or f"weights: {weights}"
    say(f"model    {weights}: {description}")
    try:
        sheet = TrackSheet.read(
            find_track_sheet(head, weights_dir=weights_dir(weights), download=False), head=head
        )
    except TrackSheetNotFound:
        sheet = None
    if sheet is not None and len(sheet) != cfg.heads[head]:
        sheet = None
    if tracks is None:
        if sheet is not None and all(t in sheet.identifiers for t in MINI_DEMO_TRACKS):
            tracks = list(MINI_DEMO_TRACKS)
        else:
            tracks = list(range(min(5, cfg.heads[head])))
    if sheet is not None:
        selected = sheet.select(tracks)
    elif isinstance(tracks, str):
        selected = parse_index_spec(tracks, cfg.heads[head])
    else:
        selected = [int(t) for t in tracks]
    labels = (
        [f"{sheet[i].identifier} {sheet[i].description}" for i in selected]
        if sheet is not None
        else [f"track {i}" for i in selected]
    )

    # 1-2. the input and its files
    if fasta is None:
        inp = _construct_input(cfg.sequence_length, out, seed)
    else:
        inp = _genome_input(cfg.sequence_length, out, fasta, region, vcf, gtf, chrom_aliases)
    window_start, window = inp.window_start, inp.window
    say(f"input    {inp.text}")

    # 3. predictions -> BigWig
    geom = output_geometry(cfg)
    first = window_start + geom.offset
    span = Interval(inp.chrom, first, first + geom.n_bins * geom.bin_size)
    t = time.perf_counter()
    pred = predict(model, window, head=head, tracks=selected, progress=False)
    values = pred.values[head][0]
    scores_path = out / "scores.tsv"
    with Genome(inp.fasta, chrom_aliases=inp.chrom_aliases) as genome:
        written = predict_to_files(
            model,
            out / "predictions",
            genome=genome,
            regions=[span],
            format="bigwig",
            head=head,
            tracks=selected,
            track_sheet=sheet,
            progress=progress,
            settings={"demo": True, "weights": weights},
            overwrite=True,  # the demo's own folder: a new demo replaces the previous one
        )
        t_predict = time.perf_counter() - t
        bigwigs = [f.path for f in written.files if f.format == "bigwig"]
        say(f"predict  {len(selected)} tracks x {geom.n_bins} bins of {geom.bin_size} bp -> "
            f"{len(bigwigs)} BigWig files in {out / 'predictions'}")  # fmt: skip

        # 4. variant scores (the same code as `enformer score`)
        t = time.perf_counter()
        write_scores(
            model,
            inp.vcf,
            genome,
            scores_path,
            stats=("SAD", "logSED"),
            tracks=selected,
            track_sheet=sheet,
            head=head,
            progress=progress,
            resume=False,
            on_ref_mismatch=on_ref_mismatch,
            model_name=weights,
        )
    t_score = time.perf_counter() - t
    table = _read_scores(scores_path)
    per_variant = _summarise_scores(table, inp.variants)
    n = f"{len(per_variant)} variants x {len(selected)} tracks"
    say(f"score    {n} (SAD, logSED) -> {scores_path}")

    # 5. pictures
    t = time.perf_counter()
    tracks_png = out / "tracks.png"
    plot_tracks(
        values,
        chrom=inp.chrom,
        start=span.start,
        bin_size=geom.bin_size,
        labels=labels,
        gtf=inp.gtf,
        highlight=inp.highlight,
        title=f"enformer demo: predicted tracks over {inp.title} ({weights})",
        description=description,
        path=tracks_png,
    )
    scored = [v for v in per_variant if np.isfinite(v["max_abs_SAD"])]
    top = max(scored, key=lambda v: v["max_abs_SAD"]) if scored else None
    variant_png: Path | None = None
    if top is not None:
        # the strongest variant on its own scoring window (centred on it, as in score)
        variant_png = out / "variant.png"
        ref_seq, alt_seq, var_start = _allele_pair(inp, top, cfg.sequence_length)
        both = predict(model, [ref_seq, alt_seq], head=head, tracks=selected, progress=False)
        note = f" ({top['note']})" if top.get("note") else ""
        plot_variant(
            both.values[head][0],
            both.values[head][1],
            chrom=inp.chrom,
            start=var_start + geom.offset,
            bin_size=geom.bin_size,
            position=top["pos"] - 1,
            variant=f"{top['id']}{note}",
            labels=labels,
            gtf=inp.gtf,
            description=description,
            path=variant_png,
        )
    t_plot = time.perf_counter() - t
    say(f"plot     {tracks_png}" + (f", {variant_png}" if variant_png else ""))

    summary: dict[str, Any] = {
        "weights": weights,
        "model_description": cfg.description,
        "head": head,
        "tracks": [
            {
                "index": i,
                "identifier": sheet[i].identifier if sheet is not None else None,
                "label": label,
            }  # fmt: skip
            for i, label in zip(selected, labels, strict=True)
        ],
        "input": inp.info,
        "output_span": {"chrom": span.chrom, "start": span.start, "end": span.end},
        "files": {
            "fasta": str(inp.fasta),
            "gtf": str(inp.gtf) if inp.gtf else None,
            "bed": str(inp.bed) if inp.bed else None,
            "vcf": str(inp.vcf),
            "bigwigs": bigwigs,
            "prediction_settings": written.settings_path,
            "scores": str(scores_path),
            "tracks_png": str(tracks_png),
            "variant_png": str(variant_png) if variant_png else None,
        },
        "variants": per_variant,
        "strongest_variant": top["id"] if top else None,
        "seconds": {
            "predict": round(t_predict, 2),
            "score": round(t_score, 2),
            "plot": round(t_plot, 2),
            "total": round(time.perf_counter() - t0, 2),
        },
        "next_steps": next_steps(),
    }
    _write_json(out / "summary.json", summary)
    summary["files"]["summary"] = str(out / "summary.json")
    return summary


def _read_scores(path: Path) -> list[dict[str, str]]:
    import csv

    with open(path, newline="") as fh:
        rows = [line for line in fh if not line.startswith("#")]
    return list(csv.DictReader(rows, delimiter="\t"))


def _summarise_scores(
    table: list[dict[str, str]], variants: list[dict[str, Any]] | None
) -> list[dict[str, Any]]:
    """Per variant: its SAD and logSED over the tracks and the largest |SAD|."""

    def key(v: dict[str, Any]) -> tuple[str, int, str, str]:
        return (str(v["chrom"]), int(v["pos"]), str(v["ref"]), str(v["alt"]))

    if variants is None:  # a user's file: the variants are the table's, in its order
        seen: dict[tuple[str, int, str, str], dict[str, Any]] = {}
        for row in table:
            seen.setdefault(key(row), {"chrom": row["chrom"], "pos": int(row["pos"]),
                                       "ref": row["ref"], "alt": row["alt"],
                                       "id": row.get("id", ""), "note": ""})  # fmt: skip
        variants = list(seen.values())
    out = []
    for v in variants:
        rows = [r for r in table if key(r) == key(v)]
        sad = [float(r["SAD"]) for r in rows]
        logsed = [float(r["logSED"]) for r in rows]
        out.append(
            {
                **v,
                "max_abs_SAD": float(np.max(np.abs(sad))) if sad else float("nan"),
                "SAD": sad,
                "logSED": logsed,
            }
        )
    return out


def _write_json(path: Path, data: Any) -> None:
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_text(json.dumps(data, indent=2) + "\n")
    os.replace(tmp, path)


def next_steps() -> list[str]:
    """What to run after the demo, with the official weights (the lines the CLI prints)."""
    w = "EleutherAI/enformer-official-rough"
    region = "chr11:5,225,000-5,230,000"  # HBB, the beta-globin gene
    return [
        f"enformer info --weights {w} --search K562",
        f"enformer predict --weights {w} --fasta hg38.fa --region {region} "
        "--tracks CNhs11250,ENCFF413AHU --out preds/",
        f"enformer score --weights {w} --fasta hg38.fa --vcf my_variants.vcf "
        "--stats SAD,logSED --tracks CNhs11250 --out scores.parquet",
    ]
