"""Variant statistics on hand-made arrays, and the bins they read (TSS mapping, centre masks)."""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import pytest

from enformer import EnformerConfig
from enformer.data.annotation import TSSIndex, center_bins, read_gtf_tss, tss_bin, tss_bins
from enformer.model.geometry import output_geometry
from enformer.variants import scores as S
from enformer.variants.scores import (
    SCORE_FORMULAS,
    SCORE_FUNCTIONS,
    SIGNED_SCORES,
    compute_scores,
    resolve_stats,
)

# Two bins x two tracks.
R = np.array([[1.0, 0.0], [3.0, 2.0]], dtype=np.float32)
A = np.array([[2.0, 0.0], [1.0, 6.0]], dtype=np.float32)


def test_known_values():
    log2 = math.log2
    expected = {
        "SAD": [(2 + 1) - (1 + 3), (0 + 6) - (0 + 2)],
        "SAR": [
            (log2(3) - log2(2)) + (log2(2) - log2(4)),
            (log2(1) - log2(1)) + (log2(7) - log2(3)),
        ],
        "logSED": [log2(3 + 1) - log2(4 + 1), log2(6 + 1) - log2(2 + 1)],
        "SADR": [log2(3 + 1) - log2(4 + 1), log2(6 + 1) - log2(2 + 1)],
        "D1": [1 + 2, 0 + 4],
        "D2": [math.sqrt(1 + 4), 4.0],
        "SAX": [-2.0, 4.0],  # diffs [1, -2] and [0, 4]
        "REF": [4.0, 2.0],
        "ALT": [3.0, 6.0],
    }
    for name, want in expected.items():
        got = SCORE_FUNCTIONS[name](R, A)
        assert got.shape == (2,)
        np.testing.assert_allclose(got, want, rtol=1e-6, err_msg=name)


def test_js_known_value():
    # pseudocount 0: track 0 profiles p = [1/4, 3/4], q = [2/3, 1/3];
    # JS = 1/2 sum (p - q)(ln p - ln q) = 5/24 ln 6. Track 1: p = q = [0, 1] -> 0.
    got = S.js(R, A, pseudocount=0.0)
    np.testing.assert_allclose(got, [5 / 24 * math.log(6), 0.0], rtol=1e-6)
    # default pseudocount: 25th percentile of R over the bins, per track (1.5 and 0.5 here)
    np.testing.assert_allclose(S.js(R, A), S.js(R, A, pseudocount=np.array([1.5, 0.5])))
    p = np.array([2.5, 4.5]) / 7
    q = np.array([3.5, 2.5]) / 6
    np.testing.assert_allclose(S.js(R, A)[0], 0.5 * np.sum((p - q) * np.log(p / q)), rtol=1e-6)


def test_formulas_cover_every_statistic():
    assert set(SCORE_FORMULAS) == set(SCORE_FUNCTIONS)
    for name, func in SCORE_FUNCTIONS.items():
        assert SCORE_FORMULAS[name].startswith(name)
        assert func.__doc__ and "``" in func.__doc__  # formula in the docstring


def _random(seed: int, shape=(3, 8, 5)) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    return rng.gamma(2.0, 1.0, shape).astype(np.float32), rng.gamma(2.0, 1.0, shape).astype(
        np.float32
    )


def test_swap_negates_signed_and_keeps_unsigned():
    ref, alt = _random(1)
    for name in ("SAD", "SAR", "logSED", "SADR", "SAX"):
        assert name in SIGNED_SCORES
        fwd, back = SCORE_FUNCTIONS[name](ref, alt), SCORE_FUNCTIONS[name](alt, ref)
        np.testing.assert_allclose(back, -fwd, rtol=1e-5, atol=1e-6, err_msg=name)
        assert np.abs(fwd).max() > 0
    for name in ("D1", "D2"):
        np.testing.assert_allclose(
            SCORE_FUNCTIONS[name](alt, ref), SCORE_FUNCTIONS[name](ref, alt), rtol=1e-6
        )
    # JS is symmetric in its profiles for a fixed pseudocount ...
    c = np.full(ref.shape[-1], 0.3)
    np.testing.assert_allclose(S.js(alt, ref, c), S.js(ref, alt, c), rtol=1e-5)
    # ... and with the default one when both alleles share their 25th percentile
    perm = alt[:, ::-1, :] * 0 + ref[:, np.random.default_rng(2).permutation(8), :]
    np.testing.assert_allclose(S.js(perm, ref), S.js(ref, perm), rtol=1e-5)
    assert S.js(ref, perm).min() > 0
    np.testing.assert_array_equal(S.ref_sum(alt, ref), S.alt_sum(ref, alt))


def test_alt_equal_ref_scores_zero():
    ref, _ = _random(3)
    for name, func in SCORE_FUNCTIONS.items():
        got = func(ref, ref.copy())
        if name in ("REF", "ALT"):
            np.testing.assert_allclose(got, ref.sum(axis=-2), rtol=1e-6)
        else:
            np.testing.assert_array_equal(got, np.zeros_like(got), err_msg=name)


def test_shapes_and_dtypes():
    ref, alt = _random(4, shape=(2, 3, 6, 4))
    for name, func in SCORE_FUNCTIONS.items():
        out = func(ref, alt)
        assert out.shape == (2, 3, 4), name
        assert out.dtype == np.float32, name
        assert func(ref.astype(np.float64), alt).dtype == np.float64
    with pytest.raises(ValueError, match="same shape"):
        S.sad(ref, alt[..., :2])
    with pytest.raises(ValueError, match="bins, tracks"):
        S.sad(np.ones(3), np.ones(3))


def test_compute_scores_bins_and_names():
    ref, alt = _random(5, shape=(6, 3))
    out = compute_scores(ref, alt, "sad,d2", bins=[1, 2])
    assert list(out) == ["SAD", "D2"]
    np.testing.assert_allclose(out["SAD"], alt[1:3].sum(0) - ref[1:3].sum(0), rtol=1e-6)
    mask = np.zeros(6, dtype=bool)
    mask[[1, 2]] = True
    np.testing.assert_allclose(compute_scores(ref, alt, ["SAD"], bins=mask)["SAD"], out["SAD"])
    np.testing.assert_allclose(
        compute_scores(ref, alt, ["SAD"], bins=slice(1, 3))["SAD"], out["SAD"]
    )
    with pytest.raises(ValueError, match="empty"):
        compute_scores(ref, alt, ["SAD"], bins=[])
    assert resolve_stats("SAD, logsed,SADR,sad") == ["SAD", "logSED", "SADR"]
    with pytest.raises(ValueError, match="unknown variant statistic 'SED'.*SAD"):
        resolve_stats(["SED"])
    with pytest.raises(ValueError, match="no variant statistic"):
        resolve_stats("")


# ------------------------------------------------------------------------------ bins


def test_center_bins():
    np.testing.assert_array_equal(center_bins(10, 64, 3), [9, 10, 11])
    np.testing.assert_array_equal(center_bins(10, 64, 1), [10])
    np.testing.assert_array_equal(center_bins(10, 64, 4), [8, 9, 10, 11])
    np.testing.assert_array_equal(center_bins(0, 64, 3), [0, 1])
    np.testing.assert_array_equal(center_bins(63, 64, 5), [61, 62, 63])
    with pytest.raises(ValueError):
        center_bins(3, 10, 0)


def test_tss_bin_uses_the_crop_offset():
    cfg = EnformerConfig.tiny()  # 2,048 bp in, 16-bp bins, 128 bins cropped to 64
    geo = output_geometry(cfg)
    assert (geo.offset, geo.n_bins, geo.bin_size) == (512, 64, 16)
    window_start = 10_000
    output_start = window_start + geo.offset  # bin 0 starts 32 bins into the input
    tss = output_start + 5 * 16 + 3
    assert tss_bin(tss, output_start, 16) == 5
    assert tss_bin(tss, window_start, 16) == 37  # the mistake of forgetting the crop
    np.testing.assert_array_equal(tss_bins(tss, output_start, 64, 16), [4, 5, 6])
    np.testing.assert_array_equal(tss_bins(tss, output_start, 64, 16, width=1), [5])
    # just outside the output span on either side
    assert tss_bins(output_start - 1, output_start, 64, 16).size == 0
    assert tss_bins(output_start + 64 * 16, output_start, 64, 16).size == 0
    np.testing.assert_array_equal(tss_bins(output_start, output_start, 64, 16), [0, 1])


def test_tss_bin_published_geometry():
    geo = output_geometry(EnformerConfig.official())
    assert (geo.offset, geo.n_bins, geo.bin_size) == (40_960, 896, 128)
    window_start = 1_000_000
    centre = window_start + 196_608 // 2  # a variant's base under the L//2 placement
    assert tss_bin(centre, window_start + geo.offset, 128) == 448
    # 41 kb away is where the read-out lands without the 320-bin crop offset
    assert tss_bin(centre, window_start, 128) - 448 == 320


GTF_ROWS = [
    (
        "chrT",
        "gene",
        1001,
        2000,
        "+",
        'gene_id "G1"; gene_name "PLUS"; gene_type "protein_coding";',
    ),
    ("chrT", "transcript", 1001, 2000, "+", 'gene_id "G1"; transcript_id "T1"; gene_name "PLUS";'),
    ("chrT", "transcript", 1101, 2000, "+", 'gene_id "G1"; transcript_id "T2"; gene_name "PLUS";'),
    ("chrT", "exon", 1001, 1100, "+", 'gene_id "G1"; transcript_id "T1";'),
    ("chrT", "gene", 1500, 2500, "-", 'gene_id "G2"; gene_name "MINUS"; gene_type "lncRNA";'),
    ("chrT", "transcript", 1500, 2500, "-", 'gene_id "G2"; transcript_id "T3"; gene_name "MINUS";'),
    ("chrU", "gene", 5, 50, "-", 'gene_id "G3";'),
]
GTF = "##description: test\n" + "".join(
    f"{c}\tt\t{kind}\t{a}\t{b}\t.\t{strand}\t.\t{attrs}\n"
    for c, kind, a, b, strand, attrs in GTF_ROWS
)


def test_read_gtf_tss(tmp_path: Path):
    path = tmp_path / "genes.gtf"
    path.write_text(GTF)
    genes = read_gtf_tss(path)
    assert list(genes.columns[:5]) == ["gene_id", "gene_name", "chrom", "tss", "strand"]
    assert genes["gene_id"].tolist() == ["G1", "G2", "G3"]
    # 0-based TSS: GTF start - 1 on '+', GTF end - 1 on '-'
    assert genes["tss"].tolist() == [1000, 2499, 49]
    assert genes["gene_name"].tolist() == ["PLUS", "MINUS", "G3"]
    tx = read_gtf_tss(path, feature="transcript")
    assert tx["transcript_id"].tolist() == ["T1", "T2", "T3"]
    assert tx["tss"].tolist() == [1000, 1100, 2499]
    coding = read_gtf_tss(path, gene_types=["protein_coding"])
    assert coding["gene_id"].tolist() == ["G1"]
    (tmp_path / "bad.gtf").write_text("chrT\tt\tgene\t10\n")
    with pytest.raises(ValueError, match=r"bad.gtf, line 1"):
        read_gtf_tss(tmp_path / "bad.gtf")


def test_tss_index_genes_in_window(tmp_path: Path):
    path = tmp_path / "genes.gtf"
    path.write_text(GTF)
    index = TSSIndex(read_gtf_tss(path, feature="transcript"))
    # output span [992, 992 + 64 * 16 = 2016): G1's TSSs 1000 (bin 0) and 1100 (bin 6) inside
    genes = index.genes_in_window("chrT", 992, 64, 16, width=3)
    assert [g.gene_id for g in genes] == ["G1"]
    g1 = genes[0]
    assert g1.tss == (1000, 1100) and g1.strand == "+"
    np.testing.assert_array_equal(g1.bins, [0, 1, 5, 6, 7])
    # shifted window catches G2's minus-strand TSS at 2499 (its GTF end)
    genes = index.genes_in_window("chrT", 2000, 64, 16, width=1)
    assert [(g.gene_id, g.strand, g.bins.tolist()) for g in genes] == [("G2", "-", [31])]
    # 'T' finds 'chrT'; an unknown chromosome has no genes
    assert [g.gene_id for g in index.genes_in_window("T", 992, 64, 16)] == ["G1"]
    assert index.genes_in_window("chr9", 0, 64, 16) == []


def test_shared_gtf(shared_data: Path):
    genes = read_gtf_tss(shared_data / "annotations" / "gencode_hg38_subset.gtf")
    assert len(genes) == 377
    assert set(genes["strand"]) == {"+", "-"}
    assert genes["gene_id"].is_unique


def test_statistics_share_checks_and_documented_parameters():
    import inspect

    for name, func in S.SCORE_FUNCTIONS.items():
        assert list(inspect.signature(func).parameters)[:2] == ["ref", "alt"], name
        doc = inspect.getdoc(func)
        assert "Parameters\n----------\nref, alt : numpy.ndarray" in doc, name
        assert "Returns\n-------\nnumpy.ndarray" in doc, name
        with pytest.raises(ValueError, match=r"^ref and alt must have the same shape"):
            func(np.zeros((3, 2)), np.zeros((4, 2)))
        with pytest.raises(ValueError, match=r"^predictions must have shape \(\.\.\., bins"):
            func(np.zeros(3), np.zeros(3))
        # integer predictions are scored in floating point (float64 for int64 inputs)
        assert func(R.astype(np.int64), A.astype(np.int64)).dtype == np.float64, name
