"""Gene-level variant effects (--gene-score tss,exons,body): the bins of each region equal an
independent computation from the GTF, tracks of the other strand are NaN, and the CLI writes
one row per region."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from enformer import Enformer, predict
from enformer.data.genome import Genome
from enformer.inference import track_sheet_for
from enformer.model.geometry import output_geometry
from enformer.variants import score_variants

GENE = "SAMD11"  # chr1:923,924-944,575 (+), inside the shared real chr1 block


def _gtf_gene(gtf, name):
    """Strand, start, end (0-based half-open) and exons of a gene, straight from the file."""
    exons, gene = [], None
    with open(gtf) as handle:
        lines = handle.read().splitlines()
    for line in lines:
        f = line.split("\t")
        if len(f) < 9 or f'gene_name "{name}"' not in f[8]:
            continue
        if f[2] == "gene":
            gene = (f[6], int(f[3]) - 1, int(f[4]))
        elif f[2] == "exon":
            exons.append((int(f[3]) - 1, int(f[4])))
    return gene, exons


def _bins(start, end, out_start, size, n):
    """Output bins overlapping the genomic [start, end)."""
    lo, hi = max((start - out_start) // size, 0), min(-(-(end - out_start) // size), n)
    return set(range(lo, hi))


@pytest.fixture(scope="module")
def scored(shared_data):
    mini = Enformer.from_pretrained("mini")
    fasta = shared_data / "genome" / "hg38_subset.fa.gz"
    gtf = shared_data / "annotations" / "gencode_hg38_subset.gtf"
    with Genome(fasta) as genome:
        pos = 930_001  # 1-based, inside SAMD11
        ref = genome.fetch("chr1", pos - 1, pos)
        alt = {"A": "C", "C": "G", "G": "T", "T": "A"}[ref]
        table = score_variants(
            mini, [f"chr1:{pos}:{ref}>{alt}"], genome, stats=("REF", "ALT", "logSED"),
            tracks=[0, 1, 24], genes_gtf=gtf, gene_score=("tss", "exons", "body"),
            track_sheet=track_sheet_for("mini", "human", None, n_tracks=74), progress=False,
        )  # fmt: skip
        length = mini.config.sequence_length
        start = pos - 1 - length // 2  # the variant's first REF base at input index L/2
        window = genome.fetch("chr1", start, start + length)
    pred = predict(mini, window, tracks=[0, 1, 24], progress=False).values["human"][0]
    return table, pred, start, mini, gtf


def test_exon_and_body_bins_equal_an_independent_computation(scored):
    table, pred, start, mini, gtf = scored
    geometry = output_geometry(mini.config)
    out_start, size, n = start + geometry.offset, geometry.bin_size, geometry.n_bins
    (strand, g0, g1), exons = _gtf_gene(gtf, GENE)
    assert strand == "+" and len(exons) > 10
    want = {
        "exons": sorted(set().union(*(_bins(s, e, out_start, size, n) for s, e in exons))),
        "body": sorted(_bins(g0, g1, out_start, size, n)),
    }
    rows = table[table["gene_name"] == GENE]
    assert set(rows["gene_region"]) == {"tss", "exons", "body"}
    for region, bins in want.items():
        r = rows[(rows["gene_region"] == region) & (rows["track"] == 0)].iloc[0]
        assert r["REF"] == pytest.approx(pred[bins, 0].sum(), rel=1e-5)  # REF = sum_b R
    # The gene body holds every exon bin, and more: REF sums differ accordingly.
    assert set(want["exons"]) <= set(want["body"]) and len(want["body"]) > len(want["exons"])


def test_tracks_of_the_other_strand_are_nan(scored):
    table = scored[0]
    plus = table[(table["gene_name"] == GENE)]
    # Track 0 is CAGE +, 1 CAGE -, 24 DNase (unstranded): a + gene reads 0 and 24.
    assert plus[plus["track"] == 1]["logSED"].isna().all()
    assert plus[plus["track"].isin([0, 24])]["logSED"].notna().all()
    minus = table[table["gene_strand"] == "-"]
    assert len(minus) and minus[minus["track"] == 0]["logSED"].isna().all()
    assert minus[minus["track"] == 1]["logSED"].notna().all()


def test_log_sed_is_the_log_ratio_of_the_sums(scored):
    table = scored[0].dropna()
    np.testing.assert_allclose(table["logSED"], np.log2(table["ALT"] + 1) - np.log2(table["REF"] + 1),
                               rtol=1e-4, atol=1e-6)  # fmt: skip


def test_cli_gene_score_option(tmp_path, capsys, shared_data):
    from enformer.cli.main import main

    fasta = shared_data / "genome" / "hg38_subset.fa.gz"
    gtf = shared_data / "annotations" / "gencode_hg38_subset.gtf"
    out = tmp_path / "s.tsv"
    with Genome(fasta) as genome:
        ref = genome.fetch("chr1", 930000, 930001)
    alt = "C" if ref == "A" else "A"
    assert main(["score", "--weights", "mini", "--fasta", str(fasta), "--variant",
                 f"chr1:930001:{ref}>{alt}",
                 "--genes", str(gtf), "--gene-score", "exons,body", "--tracks", "0",
                 "--out", str(out), "-q"]) == 0  # fmt: skip
    table = pd.read_csv(out, sep="\t", comment="#")
    assert set(table["gene_region"]) == {"exons", "body"}
    assert main(["score", "--weights", "mini", "--fasta", str(fasta), "--variant",
                 "chr1:930001:G>A", "--gene-score", "exons", "--out", str(tmp_path / "x.tsv"),
                 "-q"]) == 2  # fmt: skip
    assert "needs genes_gtf" in capsys.readouterr().err


def test_variant_figure_draws_each_genes_effect_at_its_tss():
    from enformer.interpret.plots import plot_variant

    rng = np.random.default_rng(0)
    ref = rng.random((100, 2))
    effects = [("GENEA", 1_000_300, 0.25), ("GENEB", 1_009_000, -0.5), ("FAR", 5_000_000, 9.0)]
    fig = plot_variant(ref, ref * 1.1, chrom="chr1", start=1_000_000, bin_size=128,
                       gene_effects=effects, effect_label="logSED")  # fmt: skip
    row = [ax for ax in fig.axes if ax.get_ylabel() == "logSED"][0]
    bars = sorted((p.get_x() + p.get_width() / 2, p.get_height()) for p in row.patches)
    assert [round(x) for x, _ in bars] == [1_000_300, 1_009_000]  # FAR is outside the window
    assert [h for _, h in bars] == [0.25, -0.5]
    assert {t.get_text() for t in row.texts} == {"GENEA", "GENEB"}


def test_score_plot_option_writes_a_figure_per_variant(tmp_path, shared_data):
    from enformer.cli.main import main

    fasta = shared_data / "genome" / "hg38_subset.fa.gz"
    gtf = shared_data / "annotations" / "gencode_hg38_subset.gtf"
    with Genome(fasta) as genome:
        ref = genome.fetch("chr1", 930000, 930001)
    alt = "C" if ref != "C" else "G"
    assert main(["score", "--weights", "mini", "--fasta", str(fasta), "--variant",
                 f"chr1:930001:{ref}>{alt}", "--genes", str(gtf), "--tracks", "0,24",
                 "--stats", "logSED", "--out", str(tmp_path / "s.tsv"),
                 "--plot", str(tmp_path / "plots"), "-q"]) == 0  # fmt: skip
    files = list((tmp_path / "plots").glob("*.png"))
    assert [f.name for f in files] == [f"chr1_930001_{ref}_{alt}.png"]
    assert files[0].read_bytes()[:8] == b"\x89PNG\r\n\x1a\n" and files[0].stat().st_size > 20_000
