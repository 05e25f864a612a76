"""Calibrated scores: quantiles against a background, random SNVs, exact reuse, checks, CLI."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from enformer import Enformer
from enformer.data.genome import Genome
from enformer.variants import parse_variant
from enformer.variants.background import Background, draw_random_snvs, make_background

pytestmark = pytest.mark.filterwarnings("ignore::enformer.data.genome.reference.GenomeWarning")


def test_quantiles_equal_numpy_on_the_background():
    rng = np.random.default_rng(0)
    bg = Background({"SAD": rng.normal(size=(200, 3)).astype(np.float32)})
    bg.values["SAD"][5, 1] = np.nan  # left out of track 1's background
    x = rng.normal(size=(17, 3)).astype(np.float32)
    x[3, 2] = np.nan
    q, signed = bg.quantiles("SAD", x)
    for t in range(3):
        ref = np.abs(bg.values["SAD"][:, t].astype(np.float64))
        ref = ref[np.isfinite(ref)]
        want = np.array([(ref <= abs(v)).mean() if np.isfinite(v) else np.nan for v in x[:, t]])
        np.testing.assert_allclose(q[:, t], want, rtol=1e-6)
        np.testing.assert_allclose(signed[:, t], np.sign(x[:, t]) * want, rtol=1e-6)
    assert np.isnan(q[3, 2]) and np.nanmax(q) <= 1 and np.nanmin(q) >= 0


def test_random_snvs_are_seeded_real_and_near(shared_data):
    with Genome(shared_data / "genome" / "hg38_subset.fa.gz") as genome:
        centres = [parse_variant("chr1:100000:A>G"), parse_variant("chr1:200000:C>T")]
        a = draw_random_snvs(centres, genome, 5, distance=1000, seed=3)
        assert a == draw_random_snvs(centres, genome, 5, distance=1000, seed=3)
        assert a != draw_random_snvs(centres, genome, 5, distance=1000, seed=4)
        assert len(a) == 10
        for text, centre in zip(a, [centres[0]] * 5 + [centres[1]] * 5, strict=True):
            v = parse_variant(text)
            assert 0 < abs(v.pos - centre.pos) <= 1000
            assert genome.fetch("chr1", v.pos0, v.pos0 + 1) == v.ref != v.alt


@pytest.fixture(scope="module")
def mini():
    return Enformer.from_pretrained("mini")


def test_background_uses_exact_reuse_equal_to_naive(mini, shared_data):
    fasta = shared_data / "genome" / "hg38_subset.fa.gz"
    kw = dict(random_snvs=3, seed=1, stats="SAD,logSED", tracks=[0, 24], progress=False)
    with Genome(fasta) as genome:
        ref = genome.fetch("chr1", 149999, 150000)
    variants = [f"chr1:150000:{ref}>{'A' if ref != 'A' else 'C'}"]
    reuse = make_background(mini, variants, fasta, **kw)
    naive = make_background(mini, variants, fasta, predictor="naive", **kw)
    assert reuse.metadata["n"] == 3 and reuse.values["SAD"].shape == (3, 2)
    np.testing.assert_allclose(reuse.values["logSED"], naive.values["logSED"], rtol=0, atol=1e-5)
    scale = np.abs(naive.values["SAD"]).max()
    np.testing.assert_allclose(reuse.values["SAD"], naive.values["SAD"], rtol=1e-5,
                               atol=1e-5 * max(scale, 1))  # fmt: skip
    assert "3 random SNVs" in reuse.metadata["source"] and reuse.metadata["seed"] == 1


def test_mismatched_backgrounds_are_refused(mini, shared_data, tmp_path):
    from enformer.variants import score_variants

    fasta = shared_data / "genome" / "hg38_subset.fa.gz"
    with Genome(fasta) as genome:
        ref = genome.fetch("chr1", 149999, 150000)
    variant = f"chr1:150000:{ref}>{'A' if ref != 'A' else 'C'}"
    bg = make_background(mini, [variant], fasta, stats="SAD", tracks=[0], progress=False)
    path = bg.save(tmp_path / "bg.npz")
    table = score_variants(mini, [variant], fasta, stats="SAD", tracks=[0], background=path,
                           progress=False)  # fmt: skip
    assert table["SAD_quantile"].iloc[0] == 1.0  # the variant is its own background
    with pytest.raises(ValueError, match="other tracks"):
        score_variants(mini, [variant], fasta, stats="SAD", tracks=[1], background=path,
                       progress=False)  # fmt: skip
    with pytest.raises(ValueError, match="no logSED scores"):
        score_variants(mini, [variant], fasta, stats="logSED", tracks=[0], background=path,
                       progress=False)  # fmt: skip
    with pytest.raises(ValueError, match="not a background file"):
        Background.load(shared_data / "variants" / "gtex_eqtl_chr1.vcf")


def test_cli_make_background_then_quantiles(tmp_path, capsys, shared_data):
    from enformer.cli.main import main

    common = ["--weights", "mini", "--fasta", str(shared_data / "genome" / "hg38_subset.fa.gz"),
              "--vcf", str(shared_data / "variants" / "gtex_eqtl_chr1.vcf"), "--tracks", "0",
              "--stats", "logSED", "-q"]  # fmt: skip
    assert main(["score", *common, "--out", str(tmp_path / "bg.npz"), "--make-background",
                 "--random-snvs", "2"]) == 0  # fmt: skip
    assert main(["score", *common, "--out", str(tmp_path / "s.tsv"),
                 "--background", str(tmp_path / "bg.npz")]) == 0  # fmt: skip
    table = pd.read_csv(tmp_path / "s.tsv", sep="\t", comment="#")
    bg = np.abs(Background.load(tmp_path / "bg.npz").values["logSED"][:, 0])
    assert len(bg) == 16
    want = [(bg <= abs(x)).mean() for x in table["logSED"]]
    np.testing.assert_allclose(table["logSED_quantile"], want, rtol=1e-5)
    np.testing.assert_allclose(table["logSED_signed_quantile"],
                               np.sign(table["logSED"]) * want, rtol=1e-5)  # fmt: skip
    assert main(["score", *common, "--out", str(tmp_path / "x.tsv"), "--make-background"]) == 2
    assert ".npz" in capsys.readouterr().err


def test_per_region_quantiles_unit():
    """A row of region r is compared with the background values of r when present, else with
    the pooled values."""
    rng = np.random.default_rng(1)
    tss = rng.normal(scale=1.0, size=(50, 2)).astype(np.float32)
    body = rng.normal(scale=100.0, size=(40, 2)).astype(np.float32)
    bg = Background({"SAD": np.concatenate([tss, body]), "SAD@tss": tss, "SAD@body": body})
    x = rng.normal(scale=5.0, size=(6, 2)).astype(np.float32)
    regions = np.array(["tss", "body", "tss", "exons", "body", "tss"])
    q, signed = bg.quantiles("SAD", x, regions=regions)
    for i, r in enumerate(regions):
        ref = {"tss": tss, "body": body}.get(r, bg.values["SAD"])
        want = (np.abs(ref) <= np.abs(x[i])).mean(axis=0)
        np.testing.assert_allclose(q[i], want, rtol=1e-6)
        np.testing.assert_allclose(signed[i], np.sign(x[i]) * want, rtol=1e-6)


def test_gene_mode_background_is_kept_per_region(mini, shared_data, tmp_path):
    """In gene mode the background holds each region's values on its own, and a scored
    row's quantile equals numpy on its own region's background (NaN tracks stay NaN)."""
    from enformer.inference.selection import track_sheet_for
    from enformer.variants import score_variants

    fasta = shared_data / "genome" / "hg38_subset.fa.gz"
    gtf = shared_data / "annotations" / "gencode_hg38_subset.gtf"
    with Genome(fasta) as genome:
        ref = genome.fetch("chr1", 930_000, 930_001).upper()
    variant = f"chr1:930001:{ref}>{'A' if ref != 'A' else 'C'}"
    kw = dict(stats="logSED", tracks=[0, 1, 24], genes_gtf=gtf, gene_score="tss,exons",
              track_sheet=track_sheet_for("mini", "human", None, n_tracks=74), progress=False)
    bg = make_background(mini, [variant], fasta, random_snvs=8, seed=0, **kw)
    assert bg.metadata["gene_regions"] == ["exons", "tss"]
    n_pooled = len(bg.values["logSED"])
    assert len(bg.values["logSED@tss"]) + len(bg.values["logSED@exons"]) == n_pooled
    bg.save(tmp_path / "bg.npz")
    assert sorted(Background.load(tmp_path / "bg.npz").values) == sorted(bg.values)
    scored = score_variants(mini, [variant], fasta, background=tmp_path / "bg.npz", **kw)
    assert set(scored["gene_region"]) == {"tss", "exons"}
    tracks = [0, 1, 24]
    for _, row in scored.iterrows():
        if np.isnan(row["logSED"]):
            assert np.isnan(row["logSED_quantile"])
            continue
        ref = np.abs(bg.values[f"logSED@{row['gene_region']}"][:, tracks.index(row["track"])])
        ref = ref[np.isfinite(ref)]
        assert row["logSED_quantile"] == pytest.approx((ref <= abs(row["logSED"])).mean(),
                                                       abs=1e-6)  # fmt: skip
    assert scored["logSED"].isna().any() and scored["logSED_quantile"].notna().any()
