"""Un-squashed predictions before the statistics (restore_coverage, score --untransform): the
inverse of the data pipeline's transforms, and Borzoi's gene-level exon scores computed as
borzoi_sed.py computes them."""

from __future__ import annotations

import numpy as np
import pytest

from enformer.data.datasets.bigwig import restore_coverage, summarize_coverage

# Four tracks: RNA-seq (sum_sqrt, scaled, a soft clip the test data exceed), CAGE (sum with a
# soft clip), ChIP (mean, scaled), one with no sheet values.
SHEET = {
    "sum_stat": ["sum_sqrt", "sum", "mean", None],
    "scale": [0.3, 1.0, 2.0, None],
    "clip_soft": [12.0, 40.0, None, None],
}


@pytest.mark.parametrize("transform", ["basenji", "baskerville"])
@pytest.mark.parametrize("unscale", [False, True])
def test_restore_inverts_summarize(transform, unscale):
    """summarize_coverage then restore_coverage gives back each bin's statistic, times the
    track's scale unless ``unscale`` (baskerville's default: the scale is kept)."""
    rng = np.random.default_rng(0)
    coverage = rng.gamma(0.6, 4.0, size=(4, 64 * 32))  # per base, per track
    coverage[0, :320] *= 3000  # bins far above the soft clips
    coverage[1, :320] *= 30
    squashed = np.stack([
        summarize_coverage(coverage[t], 32, sum_stat=SHEET["sum_stat"][t],
                           scale=SHEET["scale"][t], clip_soft=SHEET["clip_soft"][t],
                           transform=transform)
        for t in range(4)
    ], axis=-1)  # (bins, tracks)  # fmt: skip
    assert (squashed[:, 0] > 12).any() and (squashed[:, 1] > 40).any()  # clips were used
    restored = restore_coverage(squashed, transform=transform, unscale=unscale, **SHEET)
    bins = coverage.reshape(4, 64, 32)
    stat = np.stack([bins[0].sum(1), bins[1].sum(1), bins[2].mean(1), bins[3].sum(1)], -1)
    scale = np.array([0.3, 1.0, 2.0, 1.0])
    want = stat if unscale else stat * scale
    np.testing.assert_allclose(restored, want, rtol=2e-5, atol=1e-4)


def test_restore_refuses_mismatched_sheets():
    with pytest.raises(ValueError, match="3 tracks but 4 sum_stat"):
        restore_coverage(np.zeros((5, 3)), **SHEET)
    with pytest.raises(ValueError, match="transform must be"):
        restore_coverage(np.zeros((5, 4)), transform="hound", **SHEET)


def _sheet_text(n: int) -> str:
    """A Basenji/Borzoi targets sheet for the tiny Borzoi's ``n`` human tracks: stranded
    RNA-seq pairs (sum_sqrt, scale 0.3, a soft clip low enough for the tiny model's values),
    then unstranded CAGE."""
    rows = ["\tidentifier\tfile\tclip\tclip_soft\tscale\tsum_stat\tstrand_pair\tdescription"]
    for i in range(n):
        if i < n // 2:
            strand, pair = ("+", i + 1) if i % 2 == 0 else ("-", i - 1)
            rows.append(f"{i}\tRNA{i // 2}{strand}\tr{i}.w5\t768\t0.5\t0.3\tsum_sqrt\t{pair}\t"
                        f"RNA:sample {i // 2}")  # fmt: skip
        else:
            rows.append(f"{i}\tCAGE{i}\tc{i}.w5\t768\t384\t1.0\tsum\t{i}\tCAGE:sample {i}")
    return "\n".join(rows) + "\n"


def _untransform_preds1(preds, sum_stat, scale, clip_soft):
    """baskerville's untransform_preds1 (unscale False), written out for the test."""
    p = preds / scale
    p = np.where(p > clip_soft, clip_soft + (p - clip_soft) ** 2, p)
    sqrt = np.array(["_sqrt" in s for s in sum_stat])
    p[:, sqrt] = p[:, sqrt] ** (4 / 3)
    return p * scale


@pytest.mark.filterwarnings("ignore::enformer.data.genome.reference.GenomeWarning")
def test_borzoi_exon_scores_as_borzoi_sed(tmp_path, calico_folder, shared_data):
    """A tiny Borzoi scores a SNV in SAMD11 (+ strand) over the gene's exon bins: with the
    default untransform (basenji, as ``borzoi_sed.py -u``) REF and ALT are the exon-bin sums of
    the un-squashed predictions of the two windows, logSED = log2(A + 1) - log2(R + 1), the
    - strand RNA tracks are NaN; ``untransform='none'`` sums the raw predictions."""
    from enformer import predict
    from enformer.data.genome import Genome
    from enformer.data.tracks import TrackSheet
    from enformer.model.borzoi import Borzoi
    from enformer.model.geometry import output_geometry
    from enformer.variants import score_variants

    from .test_gene_scores import GENE, _bins, _gtf_gene

    model = Borzoi.from_pretrained(str(calico_folder))
    n = model.config.heads["human"]
    (tmp_path / "targets.txt").write_text(_sheet_text(n))
    sheet = TrackSheet.read(tmp_path / "targets.txt")
    gtf = shared_data / "annotations" / "gencode_hg38_subset.gtf"
    pos = 930_001
    with Genome(shared_data / "genome" / "hg38_subset.fa.gz") as genome:
        ref = genome.fetch("chr1", pos - 1, pos)
        alt = {"A": "C", "C": "G", "G": "T", "T": "A"}[ref]
        kw = dict(stats=("REF", "ALT", "logSED"), track_sheet=sheet, genes_gtf=gtf,
                  gene_score="exons", progress=False)  # fmt: skip
        table = score_variants(model, [f"chr1:{pos}:{ref}>{alt}"], genome, **kw)
        raw = score_variants(model, [f"chr1:{pos}:{ref}>{alt}"], genome, untransform="none", **kw)
        length = model.config.sequence_length
        start = pos - 1 - length // 2
        window = genome.fetch("chr1", start, start + length)
    mid = length // 2
    alt_window = window[:mid] + alt + window[mid + 1 :]
    r_pred, a_pred = (predict(model, w, progress=False).values["human"][0]
                      for w in (window, alt_window))  # fmt: skip
    assert table.attrs["metadata"]["untransform"]["transform"] == "basenji"
    geometry = output_geometry(model.config)
    (strand, _, _), exons = _gtf_gene(gtf, GENE)
    out0 = start + geometry.offset
    bins = sorted(set().union(*(_bins(s, e, out0, geometry.bin_size, geometry.n_bins)
                                for s, e in exons)))  # fmt: skip
    assert strand == "+" and len(bins) > 5
    tracks = list(sheet)
    args = ([t.sum_stat for t in tracks], np.array([t.scale for t in tracks]),
            np.array([t.clip_soft for t in tracks]))  # fmt: skip
    r_sum = _untransform_preds1(r_pred.astype(np.float64), *args)[bins].sum(0)
    a_sum = _untransform_preds1(a_pred.astype(np.float64), *args)[bins].sum(0)
    assert (r_pred[bins, : n // 2] > 0.5 * 0.3).any()  # the soft clip is undone somewhere
    rows = table[table["gene_name"] == GENE].sort_values("track")
    minus = np.array([t.strand == "-" for t in tracks])
    got = {c: rows[c].to_numpy() for c in ("REF", "ALT", "logSED")}
    assert np.isnan(got["REF"][minus]).all() and not np.isnan(got["REF"][~minus]).any()
    np.testing.assert_allclose(got["REF"][~minus], r_sum[~minus], rtol=1e-4)
    np.testing.assert_allclose(got["ALT"][~minus], a_sum[~minus], rtol=1e-4)
    want_log = np.log2(a_sum + 1) - np.log2(r_sum + 1)
    np.testing.assert_allclose(got["logSED"][~minus], want_log[~minus], rtol=1e-3, atol=1e-6)
    raw_rows = raw[raw["gene_name"] == GENE].sort_values("track")
    np.testing.assert_allclose(raw_rows["REF"].to_numpy()[~minus],
                               r_pred[bins].sum(0)[~minus], rtol=1e-4)  # fmt: skip
    assert raw.attrs["metadata"]["untransform"] is None
    # The untransform changes the RNA tracks' sums (sqrt squashing undone), not CAGE's
    rna = ~minus & (np.arange(n) < n // 2)
    assert (got["REF"][rna] > 1.01 * raw_rows["REF"].to_numpy()[rna]).all()
    cage = np.arange(n) >= n // 2
    np.testing.assert_allclose(got["REF"][cage], raw_rows["REF"].to_numpy()[cage], rtol=1e-5)


@pytest.mark.filterwarnings("ignore::enformer.data.genome.reference.GenomeWarning")
def test_borzoi_exon_scores_of_a_vcf_from_the_command_line(tmp_path, calico_folder, shared_data):
    """``enformer score --gene-score exons`` on the shared GTEx VCF with a tiny Borzoi: genes
    whose TSS lies outside the output window but whose exons reach into it get rows too (their
    name read from the GTF), and exact reuse gives the numbers of full forwards."""
    import pandas as pd

    from enformer.cli.main import main

    n = 24
    (tmp_path / "targets.txt").write_text(_sheet_text(n))
    common = ["score", "--weights", str(calico_folder),
              "--fasta", str(shared_data / "genome" / "hg38_subset.fa.gz"),
              "--vcf", str(shared_data / "variants" / "gtex_eqtl_chr1.vcf"),
              "--targets", str(tmp_path / "targets.txt"),
              "--genes", str(shared_data / "annotations" / "gencode_hg38_subset.gtf"),
              "--gene-score", "exons", "--stats", "logSED", "-q"]  # fmt: skip
    assert main([*common, "--out", str(tmp_path / "reuse.tsv")]) == 0
    assert main([*common, "--no-reuse", "--out", str(tmp_path / "naive.tsv")]) == 0
    reuse, naive = (pd.read_csv(tmp_path / f, sep="\t") for f in ("reuse.tsv", "naive.tsv"))
    genes = reuse.drop_duplicates(["id", "gene_id"])
    half_span = 2016 * 32 // 2  # the tiny Borzoi's output bins x 32 bp, halved
    outside = genes[genes["tss_distance"].abs() > half_span]
    assert len(outside) > 0 and outside["gene_name"].notna().all()
    assert (reuse["gene_region"] == "exons").all() and len(reuse) == len(genes) * n
    np.testing.assert_allclose(reuse["logSED"], naive["logSED"], rtol=0, atol=1e-5)


@pytest.mark.filterwarnings("ignore::enformer.data.genome.reference.GenomeWarning")
def test_borzoi_without_a_sheet_says_its_scores_stay_squashed(calico_folder, shared_data, caplog):
    """Without a track sheet nothing can be un-squashed: a Borzoi run says so (once, naming
    the fix) and records no untransform; --untransform none is the quiet way to ask for that."""
    from enformer.data.genome import Genome
    from enformer.model.borzoi import Borzoi
    from enformer.variants import score_variants

    model = Borzoi.from_pretrained(str(calico_folder))
    with Genome(shared_data / "genome" / "hg38_subset.fa.gz") as genome:
        ref = genome.fetch("chr1", 930_000, 930_001)
        variant = [f"chr1:930001:{ref}>{'C' if ref != 'C' else 'G'}"]
        with caplog.at_level("WARNING", logger="enformer.variants.plan"):
            table = score_variants(model, variant, genome, progress=False)
        assert "pass its targets_human.txt" in caplog.text
        assert table.attrs["metadata"]["untransform"] is None
        caplog.clear()
        with caplog.at_level("WARNING", logger="enformer.variants.plan"):
            quiet = score_variants(model, variant, genome, untransform="none", progress=False)
        assert caplog.text == ""
    np.testing.assert_array_equal(quiet["SAD"], table["SAD"])
