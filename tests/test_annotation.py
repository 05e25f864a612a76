"""enformer.data.annotation on the shared GENCODE subset: reader, queries and output bins.

Every bin set here is checked against an independent computation straight from the GTF text
(1-based inclusive columns, each base mapped to its bin one by one).
"""

from __future__ import annotations

import gzip
from pathlib import Path

import numpy as np
import pytest

from enformer import EnformerConfig
from enformer.data.annotation import (
    Annotation,
    OutputBins,
    TSSIndex,
    read_gtf,
    read_gtf_tss,
)
from enformer.interpret import tss_bins as target_tss_bins
from enformer.model.geometry import output_geometry

pytestmark = pytest.mark.shared

# (geometry, window start): the published model over chr1 from 0 (output 40,960-155,648, with
# OR4F5 on + and several - strand lncRNAs, one running past the output's end), and the tiny
# model around WASH7P's 5' end (- strand, TSS 29,569) and MIR1302-2HG's (+, TSS 29,553).
CASES = {
    "official": (EnformerConfig.official(), 0),
    "tiny": (EnformerConfig.tiny(), 29_569 - 512 - 500),
}


@pytest.fixture(scope="module")
def gtf(shared_data: Path) -> Path:
    return shared_data / "annotations" / "gencode_hg38_subset.gtf"


def _plain_gtf(path: Path) -> dict[str, dict]:
    """gene_id -> strand, 1-based gene span, exon lines and transcript starts, from the text."""
    genes: dict[str, dict] = {}
    for line in path.read_text().splitlines():
        if line.startswith("#"):
            continue
        chrom, _, kind, a, b, _, strand, _, attrs = line.split("\t")
        gid = attrs.split('gene_id "')[1].split('"')[0]
        g = genes.setdefault(gid, {"chrom": chrom, "exons": [], "tx": []})
        if kind == "gene":
            g.update(strand=strand, start=int(a), end=int(b))
        elif kind == "exon":
            g["exons"].append((int(a), int(b)))
        elif kind == "transcript":
            g["tx"].append(int(a) - 1 if strand == "+" else int(b) - 1)
    return genes


def _base_bins(first: int, last: int, out0: int, bin_size: int, n: int) -> set[int]:
    """Bins of the 1-based inclusive bases first..last, one base at a time."""
    bins = {(p - 1 - out0) // bin_size for p in range(first, last + 1)}
    return {b for b in bins if 0 <= b < n}


def _expected_tss_bins(sites: list[int], out0: int, bin_size: int, n: int, width: int) -> set[int]:
    out: set[int] = set()
    for p in sites:
        if out0 <= p < out0 + n * bin_size:
            b = (p - out0) // bin_size
            out |= {i for i in range(b - width // 2, b - width // 2 + width) if 0 <= i < n}
    return out


@pytest.mark.parametrize("case", sorted(CASES))
def test_exon_and_tss_bins_match_the_gtf(gtf: Path, case: str):
    config, window_start = CASES[case]
    geo = output_geometry(config)
    out = OutputBins.of(geo, window_start)
    out0, bs, n = window_start + geo.offset, geo.bin_size, geo.n_bins
    assert (out.start, out.end) == (out0, out0 + n * bs)
    plain = _plain_gtf(gtf)
    annotation = Annotation.read(gtf)
    shown = annotation.genes_in("chr1", out0, out0 + n * bs)
    expected_ids = {
        gid for gid, g in plain.items()
        if g["chrom"] == "chr1" and g["start"] - 1 < out0 + n * bs and g["end"] > out0
    }  # fmt: skip
    assert {g.gene_id for g in shown} == expected_ids
    assert {"+", "-"} <= {g.strand for g in shown}
    index = TSSIndex(read_gtf_tss(gtf, feature="gene"))
    by_window = {gb.gene_id: gb for gb in index.genes_in_window("chr1", out0, n, bs, width=3)}
    for gene in shown:
        p = plain[gene.gene_id]
        exons = set().union(*(_base_bins(a, b, out0, bs, n) for a, b in p["exons"]))
        assert set(out.exon_bins(gene).tolist()) == exons, gene.name
        tss = p["start"] - 1 if p["strand"] == "+" else p["end"] - 1
        assert gene.tss == tss
        for width in (1, 3, 4, 5):
            want = _expected_tss_bins([tss], out0, bs, n, width)
            assert set(out.tss_bins(gene.tss, width).tolist()) == want, (gene.name, width)
        want = _expected_tss_bins([tss], out0, bs, n, 3)
        if want:
            assert set(by_window[gene.gene_id].bins.tolist()) == want
            assert target_tss_bins(tss, window_start=window_start, geometry=geo) == sorted(want)
        else:
            assert gene.gene_id not in by_window
        per_tx = _expected_tss_bins(p["tx"], out0, bs, n, 3)
        assert set(out.tss_bins(gene.transcript_tss).tolist()) == per_tx
        # the output of the reverse-complemented window reads the same bases right to left
        flipped = OutputBins.of(geo, window_start, reverse=True).exon_bins(gene)
        assert flipped.tolist() == sorted(n - 1 - b for b in exons)


def test_pinned_bins_and_the_crop_offset(gtf: Path):
    annotation = Annotation.read(gtf)
    official = output_geometry(EnformerConfig.official())
    out = OutputBins.of(official, 0)
    or4f5 = annotation.find("OR4F5")  # + strand, TSS 65,418: (65,418 - 40,960) // 128 = 191
    assert out.tss_bins(or4f5.tss).tolist() == [190, 191, 192]
    # without the crop offset the TSS would land 320 bins later
    assert OutputBins(0, 128, 896).tss_bins(or4f5.tss).tolist() == [510, 511, 512]
    # a - strand gene running past the output's end (155,648): its TSS (5' end, the GTF end)
    # is outside; its last exon inside ends at 149,707 and the next starts at 155,766
    long = annotation.find("ENSG00000241860")
    assert long.strand == "-" and long.tss == 173_861 and not out.covers(long.tss)
    assert out.tss_bins(long.tss).size == 0
    assert out.exon_bins(long).max() == (149_707 - 1 - 40_960) // 128 == 849
    # an exon straddling the output's start is clipped to bin 0
    shifted = OutputBins.of(official, 90_000 - 40_960)
    first = annotation.find("ENSG00000238009")  # - strand; first exon 89,294-91,629
    assert shifted.exon_bins(first)[:14].tolist() == list(range(13)) + [(92_090 - 90_000) // 128]
    assert shifted.tss_bins(first.tss).tolist() == [340, 341, 342]  # (133,722 - 90,000) // 128
    tiny = OutputBins.of(output_geometry(EnformerConfig.tiny()), CASES["tiny"][1])
    wash = annotation.find("WASH7P")  # - strand: TSS = GTF end - 1 = 29,569
    assert (wash.strand, wash.tss, tiny.start) == ("-", 29_569, 29_069)
    assert tiny.tss_bins(wash.tss).tolist() == [30, 31, 32]  # (29,569 - 29,069) // 16 = 31
    assert tiny.tss_bins(wash.tss, 4).tolist() == [29, 30, 31, 32]  # even: extra bin on the left
    tiny_geometry = output_geometry(EnformerConfig.tiny())
    got = target_tss_bins(wash.tss, window_start=CASES["tiny"][1], geometry=tiny_geometry, width=4)
    assert got == [29, 30, 31, 32]


def test_interval_queries_equal_a_scan(gtf: Path):
    genes = read_gtf(gtf)
    annotation = Annotation(genes)
    rng = np.random.default_rng(0)
    for _ in range(40):
        chrom = str(rng.choice(["chr1", "chr2"]))
        start = int(rng.integers(0, 2_300_000))
        end = start + int(rng.integers(1, 200_000))
        scan = [g for g in genes if g.overlaps(chrom, start, end)]
        assert sorted(g.gene_id for g in annotation.genes_in(chrom, start, end)) == sorted(
            g.gene_id for g in scan
        )
        exons = {(g.gene_id, s, e) for g in scan for s, e in g.exons if s < end and e > start}
        assert {(g.gene_id, s, e) for g, s, e in annotation.exons_in(chrom, start, end)} == exons
        sites = {
            (g.gene_id, t.transcript_id, t.tss)
            for g in scan for t in g.transcripts if start <= t.tss < end
        }  # fmt: skip
        got = annotation.tss_in(chrom, start, end, per="transcript")
        assert {(s.gene_id, s.transcript_id, s.position) for s in got} == sites
    # chromosome names match with or without the 'chr' prefix
    assert annotation.genes_in("1", 60_000, 70_000) == annotation.genes_in("chr1", 60_000, 70_000)
    assert annotation.genes_in("chrY", 0, 10**9) == []


def test_gff3_and_gzip_read_the_same_genes(gtf: Path, tmp_path: Path):
    """The GTF rewritten as gzip-compressed GFF3 (ID/Parent links, mRNA features) reads alike."""
    lines = ["##gff-version 3"]
    for line in gtf.read_text().splitlines():
        if line.startswith("#"):
            continue
        f = line.split("\t")
        attrs = dict(
            (kv.strip().split(" ", 1)[0], kv.strip().split(" ", 1)[1].strip('"'))
            for kv in f[8].split(";") if kv.strip()
        )  # fmt: skip
        if f[2] == "gene":
            col = f"ID={attrs['gene_id']};Name={attrs['gene_name']};gene_type={attrs['gene_type']}"
        elif f[2] == "transcript":
            f[2], col = "mRNA", f"ID={attrs['transcript_id']};Parent={attrs['gene_id']}"
        else:
            col = f"ID=exon{len(lines)};Parent={attrs['transcript_id']}"
        lines.append("\t".join(f[:8] + [col]))
    path = tmp_path / "genes.gff3.gz"
    with gzip.open(path, "wt") as fh:
        fh.write("\n".join(lines) + "\n")
    assert read_gtf(path) == read_gtf(gtf)


def test_bad_annotation_lines_name_the_line(tmp_path: Path):
    path = tmp_path / "bad.gtf"
    path.write_text('chr1\tx\tgene\t10\t5\t.\t+\t.\tgene_id "G";\n')
    with pytest.raises(ValueError, match=r"bad.gtf, line 1: need 1 <= start <= end"):
        read_gtf(path)
    path.write_text('chr1\tx\texon\t10\t20\t.\t+\t.\ttranscript_id "T";\n')
    with pytest.raises(ValueError, match=r"line 1: exon line without a gene_id"):
        read_gtf(path)
    path.write_text('chr1\tx\tgene\t10\t20\t.\t.\t.\tgene_id "G";\n')
    assert read_gtf(path)[0].strand == "."
    with pytest.raises(ValueError, match=r"gene G .* has strand '\.'"):
        read_gtf_tss(path)


def test_ensembl_style_gff3(tmp_path: Path):
    """Prefixed IDs (gene:/transcript:), an ncRNA_gene, and CDS lines that are not transcripts."""
    rows = [
        ("ncRNA_gene", 101, 200, "-", "ID=gene:G1;Name=RNA1;biotype=lncRNA;gene_id=G1"),
        ("lnc_RNA", 101, 200, "-", "ID=transcript:T1;Parent=gene:G1;transcript_id=T1"),
        ("exon", 101, 120, "-", "Parent=transcript:T1;Name=E1"),
        ("exon", 181, 200, "-", "Parent=transcript:T1;Name=E2"),
        ("gene", 301, 400, "+", "ID=gene:G2;Name=PC%3B1;biotype=protein_coding"),
        ("mRNA", 311, 400, "+", "ID=transcript:T2;Parent=gene:G2"),
        ("exon", 311, 350, "+", "Parent=transcript:T2"),
        ("CDS", 321, 350, "+", "ID=CDS:P2;Parent=transcript:T2"),
    ]
    path = tmp_path / "e.gff3"
    path.write_text("##gff-version 3\n" + "".join(
        f"1\tens\t{kind}\t{a}\t{b}\t.\t{strand}\t.\t{attrs}\n" for kind, a, b, strand, attrs in rows
    ))  # fmt: skip
    g1, g2 = read_gtf(path)
    assert (g1.gene_id, g1.name, g1.gene_type) == ("G1", "RNA1", "lncRNA")
    assert (g1.strand, g1.tss) == ("-", 199)
    assert [t.transcript_id for t in g1.transcripts] == ["T1"]
    assert g1.exons == [(100, 120), (180, 200)]
    assert (g2.gene_id, g2.name, g2.gene_type) == ("gene:G2", "PC;1", "protein_coding")
    assert (g2.transcript_tss, g2.exons) == ([310], [(310, 350)])
