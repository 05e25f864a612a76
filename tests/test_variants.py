"""Variant input, allele windows (placement, indels, REF policies) and scoring with a model."""

from __future__ import annotations

import gzip
from pathlib import Path

import numpy as np
import pytest
import torch

from enformer import Enformer, EnformerConfig
from enformer.data.genome import Genome, GenomeWarning
from enformer.data.sequence import decode, one_hot, random_sequence
from enformer.variants import io as vio
from enformer.variants.io import read_tsv, read_vcf
from enformer.variants.predictors import AllelePredictions, predict_alleles
from enformer.variants.records import SkippedVariant, Variant, chunked, parse_variant
from enformer.variants.score import score_variants
from enformer.variants.sequences import (
    PLACEMENT,
    RefMismatchError,
    allele_sequences,
    group_variants,
    make_allele_windows,
    variant_window_start,
)

from .conftest import randomize_batch_norm

L = 2048  # EnformerConfig.tiny() input length
CHROM_T = random_sequence(8000, seed=11)
CHROM_S = random_sequence(300, seed=12)


@pytest.fixture(scope="module")
def genome(tmp_path_factory) -> Genome:
    path = tmp_path_factory.mktemp("genome") / "toy.fa"
    with open(path, "w") as fh:
        for name, seq in (("chrT", CHROM_T), ("chrS", CHROM_S)):
            fh.write(f">{name}\n")
            for i in range(0, len(seq), 60):
                fh.write(seq[i : i + 60] + "\n")
    g = Genome(path)
    yield g
    g.close()


@pytest.fixture(scope="module")
def micro_model() -> Enformer:
    """A tiny model on 512-bp inputs (32 bins of 16 bp, 16 kept): fast forwards."""
    torch.manual_seed(0)
    model = Enformer(EnformerConfig.tiny(sequence_length=512, target_length=16)).eval()
    randomize_batch_norm(model, seed=1)
    return model


def base(pos1: int) -> str:
    """Genome base of chrT at 1-based position ``pos1``."""
    return CHROM_T[pos1 - 1]


def other(b: str) -> str:
    return {"A": "C", "C": "G", "G": "T", "T": "A"}[b]


def write(path: Path, text: str) -> Path:
    path.write_text(text)
    return path


VCF_HEADER = "##fileformat=VCFv4.2\n#CHROM\tPOS\tID\tREF\tALT\tQUAL\tFILTER\tINFO\n"


# ------------------------------------------------------------------------------- input


def test_parse_variant_forms():
    v = parse_variant("chr1:14,677:g>a")
    assert (v.chrom, v.pos, v.ref, v.alt, v.pos0, v.line) == ("chr1", 14677, "G", "A", 14676, None)
    assert parse_variant("chr1:14677:G:A") == v
    assert parse_variant("chr1:100:AT>A").kind == "deletion"
    assert parse_variant("chr1:100:A>AT").kind == "insertion"
    assert parse_variant("chr1:100:AT>GC").kind == "MNV"
    assert parse_variant("HLA-A*01:01:01:01:5:A>G").chrom == "HLA-A*01:01:01:01"
    assert v.spec == "chr1:14677:G>A" and v.name == v.spec
    for bad in ("chr1:0:A>G", "chr1:x:A>G", "chr1:5:A", "chr1:5:A><DEL>", "chr1:5:Q>A"):
        with pytest.raises(ValueError, match="variant"):
            parse_variant(bad)


def test_read_vcf_split_skip_and_lines(tmp_path: Path):
    text = (
        VCF_HEADER
        + "chrT\t10\trs1\tA\tG,T\t.\t.\t.\n"
        + "\n"
        + "chrT\t20\t.\tC\t<DEL>\t.\t.\t.\n"
        + "chrT\t30\trs3\tac\tA,*,.\t.\t.\t.\n"
        + "chrT\t40\trs4\tG\tG]chr2:5]\t.\t.\t.\n"
    )
    path = write(tmp_path / "in.vcf", text)
    skipped: list[SkippedVariant] = []
    variants = list(read_vcf(path, on_skip=skipped.append))
    assert [(v.pos, v.ref, v.alt, v.id, v.line, v.alt_index) for v in variants] == [
        (10, "A", "G", "rs1", 3, 0),
        (10, "A", "T", "rs1", 3, 1),
        (30, "AC", "A", "rs3", 6, 0),
    ]
    assert [(s.line, s.alt, s.alt_index) for s in skipped] == [
        (5, "<DEL>", 0),
        (6, "*", 1),
        (6, ".", 2),
        (7, "G]chr2:5]", 0),
    ]
    assert "symbolic" in skipped[0].reason and "spanning" in skipped[1].reason
    assert "breakend" in skipped[3].reason
    assert variants[0].where == f"{path}, line 3"
    # gzip gives the same, and so does cyvcf2 (no blank lines there)
    gz = tmp_path / "in.vcf.gz"
    with gzip.open(gz, "wt") as fh:
        fh.write(text)
    assert list(read_vcf(gz, on_skip=lambda s: None)) == [
        Variant(v.chrom, v.pos, v.ref, v.alt, v.id, v.line, v.alt_index, str(gz)) for v in variants
    ]


def test_read_vcf_default_logs_skips(tmp_path: Path, caplog):
    path = write(tmp_path / "in.vcf", VCF_HEADER + "chrT\t20\t.\tC\t<DEL>\t.\t.\t.\n")
    with caplog.at_level("WARNING"):
        assert list(read_vcf(path)) == []
    assert "line 3" in caplog.text and "symbolic" in caplog.text


@pytest.mark.parametrize(
    ("line", "match"),
    [
        ("chrT\tabc\t.\tA\tG", "line 4: position must be a positive integer, got 'abc'"),
        ("chrT\t0\t.\tA\tG", "line 4: position is 1-based"),
        ("chrT\t5\t.\tA", "line 4: a VCF record needs at least 5"),
        ("chrT\t5\t.\tAXZ\tG", "line 4: REF allele 'AXZ'"),
        ("chrT\t5\t.\t.\tG", "line 4: REF allele is missing"),
    ],
)
def test_malformed_vcf_line_names_file_and_line(tmp_path: Path, line: str, match: str):
    path = write(tmp_path / "bad.vcf", VCF_HEADER + "chrT\t1\t.\tA\tG\n" + line + "\n")
    with pytest.raises(ValueError, match="bad.vcf, " + match):
        list(read_vcf(path))


def test_missing_or_unreadable_variant_files_are_named(tmp_path: Path):
    missing = tmp_path / "nope.vcf"
    for read in (read_vcf, read_tsv):
        with pytest.raises(FileNotFoundError, match=rf"^variant file not found: {missing}$"):
            list(read(missing))
    with pytest.raises(IsADirectoryError, match=r"^expected a variant file but got a directory"):
        list(read_tsv(tmp_path))
    bad = tmp_path / "v.tsv.gz"
    bad.write_bytes(gzip.compress(b"chr1\t10\tA\tC\n")[:-12])  # cut inside the gzip stream
    with pytest.raises(ValueError, match=r"v\.tsv\.gz is a corrupt or truncated gzip file"):
        list(read_tsv(bad))


def test_cyvcf2_backend_matches_text(shared_data: Path):
    path = shared_data / "variants" / "gtex_eqtl_chr1.vcf"
    text = list(read_vcf(path))
    assert len(text) == 8
    assert list(read_vcf(path, backend="cyvcf2")) == text
    assert all(v.id == f"{v.chrom}_{v.pos}_{v.ref}_{v.alt}_b38" for v in text)


def test_read_tsv_with_and_without_header(tmp_path: Path):
    plain = write(tmp_path / "a.tsv", "chrT\t10\tA\tG\tv1\nchrT\t11\tC\tT,A\n")
    got = list(read_tsv(plain))
    assert [(v.pos, v.alt, v.id, v.line) for v in got] == [
        (10, "G", "v1", 1),
        (11, "T", None, 2),
        (11, "A", None, 2),
    ]
    headed = write(tmp_path / "b.tsv", "# note\nid\tchrom\tpos\tref\talt\nv1\tchrT\t10\ta\tg\n")
    (v,) = list(read_tsv(headed))
    assert (v.id, v.chrom, v.pos, v.ref, v.alt, v.line) == ("v1", "chrT", 10, "A", "G", 3)
    hashed = write(tmp_path / "c.tsv", "#chrom\tpos\tref\talt\nchrT\t10\tA\tG\n")
    assert [v.pos for v in read_tsv(hashed)] == [10]
    bad = write(tmp_path / "d.tsv", "chrT\t10\tA\tG\nchrT\t10\n")
    with pytest.raises(ValueError, match="d.tsv, line 2: expected at least 4 columns"):
        list(read_tsv(bad))
    with pytest.raises(ValueError, match="e.tsv, line 1: header lacks column"):
        list(read_tsv(write(tmp_path / "e.tsv", "chrom\tpos\tref\n")))


def test_iter_records_and_chunked(tmp_path: Path):
    recs = list(vio.iter_records(["chrT:5:A>G", Variant("chrT", 6, "c", "t")]))
    assert [r.alt for r in recs] == ["G", "T"]
    assert [r.alt for r in vio.iter_records("chrT:5:A>G")] == ["G"]
    with pytest.raises(FileNotFoundError):
        list(vio.iter_records(tmp_path / "missing.vcf"))
    with pytest.raises(ValueError, match="suffix"):
        vio.detect_format("variants.bed")
    assert [len(c) for c in chunked(range(7), 3)] == [3, 3, 1]


# --------------------------------------------------------------------------- windows


def test_placement_snv(genome: Genome):
    pos = 3001
    v = Variant("chrT", pos, base(pos), other(base(pos)))
    seqs = allele_sequences(v, genome, L)
    start = variant_window_start(pos - 1, L)
    assert start == pos - 1 - L // 2 == seqs.placement.start
    assert seqs.ref == CHROM_T[start : start + L]
    # the documented convention: the variant's base at 0-based index L // 2
    assert PLACEMENT == "L//2" and seqs.placement.offset == L // 2
    assert seqs.ref[L // 2] == v.ref and seqs.alt[L // 2] == v.alt
    diff = [i for i in range(L) if seqs.ref[i] != seqs.alt[i]]
    assert diff == [L // 2]
    # in the tiny model's output (64 bins of 16 bp from input index 512) that is bin 32
    assert (L // 2 - 512) // 16 == 32
    # same through the batched one-hot path
    w = make_allele_windows([v], genome, L)
    assert w.ref.shape == (1, L, 4) and w.alt.shape == (1, L, 4) and w.ref.dtype == np.uint8
    assert decode(w.ref[0]) == seqs.ref and decode(w.alt[0]) == seqs.alt
    assert genome.window("chrT", pos - 1, L).sequence == seqs.ref  # same rule as Genome.window


def test_deletion_anchoring(genome: Genome):
    pos = 3001
    ref = CHROM_T[pos - 1 : pos + 2]  # anchor base + 2 deleted bases
    v = Variant("chrT", pos, ref, ref[0])
    seqs = allele_sequences(v, genome, L)
    start, o = seqs.placement.start, L // 2
    assert len(seqs.alt) == L
    # upstream context (through the anchor base) identical
    assert seqs.alt[: o + 1] == seqs.ref[: o + 1]
    # downstream: the genome after the deleted bases, filled at the end with following bases
    assert seqs.alt[o + 1 :] == CHROM_T[pos + 2 : pos + 2 + L - o - 1]
    assert seqs.alt[-2:] == CHROM_T[start + L : start + L + 2]


def test_insertion_anchoring(genome: Genome):
    pos = 3001
    v = Variant("chrT", pos, base(pos), base(pos) + "TTT")
    seqs = allele_sequences(v, genome, L)
    o = L // 2
    assert seqs.alt[: o + 1] == seqs.ref[: o + 1]
    assert seqs.alt[o + 1 : o + 4] == "TTT"
    assert seqs.alt[o + 4 :] == seqs.ref[o + 1 : L - 3]  # the last 3 bases are cut
    assert len(seqs.alt) == L


def test_margin_windows_contain_the_plain_ones(genome: Genome):
    ref = CHROM_T[2999:3002]
    vs = [Variant("chrT", 3000, ref, ref[0]), Variant("chrT", 4000, base(4000), "A")]
    plain = make_allele_windows(vs, genome, L)
    wide = make_allele_windows(vs, genome, L, margin=3)
    assert wide.ref.shape == (2, L + 6, 4)
    np.testing.assert_array_equal(wide.ref[:, 3:-3], plain.ref)
    np.testing.assert_array_equal(wide.alt[:, 3:-3], plain.alt)
    start = plain.placements[0].start
    assert decode(wide.ref[0])[:3] == CHROM_T[start - 3 : start]


def test_ref_mismatch_policies(genome: Genome, tmp_path: Path):
    pos = 2500
    wrong = other(base(pos))
    text = VCF_HEADER + f"chrT\t3000\tok\t{base(3000)}\tA\n" + f"chrT\t{pos}\tbad\t{wrong}\tG\n"
    path = write(tmp_path / "mm.vcf", text)
    variants = list(read_vcf(path))
    with pytest.raises(
        RefMismatchError, match=r"mm.vcf, line 4: .*REF mismatch.*--on-ref-mismatch"
    ):
        make_allele_windows(variants, genome, L)
    w = make_allele_windows(variants, genome, L, on_ref_mismatch="skip")
    assert [p.variant.id for p in w.placements] == ["ok"]
    (s,) = w.skipped
    assert (s.id, s.line) == ("bad", 4)
    assert s.reason.startswith("REF mismatch") and repr(base(pos)) in s.reason
    # flip: the genome carries ALT
    flip = Variant("chrT", pos, wrong, base(pos), "flip")
    w = make_allele_windows([flip], genome, L, on_ref_mismatch="flip")
    (p,) = w.placements
    assert p.flipped
    assert decode(w.alt[0]) == CHROM_T[p.start : p.start + L]  # the genome is the ALT window
    assert decode(w.ref[0])[L // 2] == wrong
    # flip with neither allele in the genome: skipped with the reason
    neither = Variant("chrT", pos, wrong, other(wrong))  # other(wrong) != the genome's base
    w = make_allele_windows([neither], genome, L, on_ref_mismatch="flip")
    assert not w.placements and "nor ALT" in w.skipped[0].reason


def test_unknown_contig_and_name_style(genome: Genome, tmp_path: Path):
    path = write(tmp_path / "c.vcf", VCF_HEADER + "chrT\t5\t.\tA\tG\nchrZ\t5\t.\tA\tG\n")
    variants = list(read_vcf(path))
    with pytest.raises(ValueError, match=r"c.vcf, line 4: chromosome 'chrZ' is not in toy.fa"):
        make_allele_windows(variants[1:], genome, L)
    with pytest.raises(ValueError, match=r"chromosome 'T' .* it has 'chrT'"):
        make_allele_windows([Variant("T", 5, base(5), "A")], genome, L)
    with pytest.raises(ValueError, match="beyond the end of chrS"):
        make_allele_windows([Variant("chrS", 300, "AA", "A")], genome, L)


def test_contig_end_padding_warns(genome: Genome):
    v = Variant("chrS", 10, CHROM_S[9], other(CHROM_S[9]))
    with pytest.warns(GenomeWarning, match=r"chrS:10:.*runs off the chromosome end"):
        w = make_allele_windows([v], genome, L)
    (p,) = w.placements
    assert p.padded == L - 300
    ref = decode(w.ref[0])
    start = 9 - L // 2
    assert ref == "N" * -start + CHROM_S + "N" * (L - 300 + start)
    assert ref[L // 2] == v.ref and decode(w.alt[0])[L // 2] == v.alt


def test_group_variants_share_a_reference(genome: Genome):
    positions = [3001, 3011, 3101, 6000]
    vs = [Variant("chrT", p, base(p), other(base(p)), f"v{p}") for p in positions]
    groups = group_variants(vs, 200)
    assert groups == [[0, 1, 2], [3]]
    w = make_allele_windows(vs, genome, L, group_span=200)
    assert w.ref.shape[0] == 2 and w.alt.shape[0] == 4
    np.testing.assert_array_equal(w.ref_index, [0, 0, 0, 1])
    start = variant_window_start((3000 + 3100) // 2, L)
    for p, pos in zip(w.placements[:3], positions[:3], strict=True):
        assert p.start == start and p.offset == pos - 1 - start and p.group == 0
    for j, p in enumerate(w.placements):
        changed = np.flatnonzero((w.ref[w.ref_index[j]] != w.alt[j]).any(axis=1))
        assert changed.tolist() == [p.offset]
    assert w.placements[3].offset == L // 2  # a group of one keeps the centred window
    # without a span only same-position variants (multi-allelic ALTs) share
    assert group_variants(vs, None) == [[0], [1], [2], [3]]
    multi = [Variant("chrT", 3001, base(3001), a) for a in "ACGT" if a != base(3001)]
    w = make_allele_windows(multi, genome, L)
    assert w.ref.shape[0] == 1 and w.ref_index.tolist() == [0, 0, 0]
    with pytest.raises(ValueError, match="group_span"):
        make_allele_windows(vs, genome, L, group_span=L)


def test_real_vcf_ref_matches_hg38(shared_data: Path):
    with Genome(shared_data / "genome" / "hg38_subset.fa.gz") as hg38:
        variants = list(read_vcf(shared_data / "variants" / "gtex_eqtl_chr1.vcf"))
        w = make_allele_windows(variants, hg38, L)
    assert len(w.placements) == 8 and not w.skipped
    for j, p in enumerate(w.placements):
        assert decode(w.ref[j])[L // 2] == p.variant.ref
        assert decode(w.alt[j])[L // 2] == p.variant.alt


# ------------------------------------------------------------------------- scoring


def _fake_predictor(n_bins: int, n_tracks: int):
    """alt - ref = bin index + 1 in every track (ref = 1)."""

    def predictor(model, ref, alt, *, ref_index, tracks, **kwargs):
        ramp = np.arange(1, n_bins + 1, dtype=np.float32)[:, None]
        k = len(tracks)
        refs = np.ones((ref.shape[0], n_bins, k), dtype=np.float32)
        alts = np.ones((alt.shape[0], n_bins, k), dtype=np.float32) + ramp
        return AllelePredictions(refs, alts)

    return predictor


def test_alt_equal_ref_scores_zero_through_the_model(micro_model, genome: Genome):
    v = Variant("chrT", 3001, base(3001), base(3001))
    df = score_variants(
        micro_model, [v], genome, stats="SAD,SAR,logSED,D1,D2,SAX,JS", progress=False
    )
    assert len(df) == 10  # 10 human tracks
    for s in ("SAD", "SAR", "logSED", "D1", "D2", "SAX", "JS"):
        assert (df[s] == 0).all(), s
        assert df[s].dtype == np.float32


def test_flip_keeps_the_input_orientation(micro_model, genome: Genome):
    pos = 4001
    g, o = base(pos), other(base(pos))
    normal = score_variants(
        micro_model, [Variant("chrT", pos, g, o)], genome, stats="SAD,D1", progress=False
    )
    flipped = score_variants(
        micro_model,
        [Variant("chrT", pos, o, g)],
        genome,
        stats="SAD,D1",
        on_ref_mismatch="flip",
        progress=False,
    )
    assert flipped["flipped"].all() and not normal["flipped"].any()
    np.testing.assert_allclose(flipped["SAD"], -normal["SAD"], rtol=1e-5, atol=1e-7)
    np.testing.assert_allclose(flipped["D1"], normal["D1"], rtol=1e-5, atol=1e-7)
    assert np.abs(normal["SAD"]).max() > 0


def test_predict_alleles_averages_rc_and_shifts(micro_model, genome: Genome):
    v = Variant("chrT", 3001, base(3001), other(base(3001)))
    length = micro_model.config.sequence_length
    pairs = np.array([1, 0, 2, 3, 4, 5, 6, 7, 9, 8])  # two stranded pairs
    tracks = [0, 1, 8, 3]
    w = make_allele_windows([v], genome, length, margin=1)
    got = predict_alleles(
        micro_model,
        w.ref,
        w.alt,
        tracks=tracks,
        strand_pairs=pairs,
        rc=True,
        shifts=(-1, 0, 1),
        batch_size=4,
    )
    start = w.placements[0].start

    def forward(seq: str) -> np.ndarray:
        x = torch.from_numpy(one_hot(seq))[None]
        with torch.no_grad():
            fwd = micro_model(x)["human"][0].numpy()
            rev = micro_model(torch.flip(x, dims=(1, 2)))["human"][0].numpy()
        rev = rev[::-1][:, pairs]  # bins back to forward order, strands swapped
        return (fwd[:, tracks] + rev[:, tracks]) / 2

    seq = CHROM_T[start - 1 : start + length + 1]
    alt_seq = decode(w.alt[0])
    want_ref = np.mean([forward(seq[1 + s : 1 + s + length]) for s in (-1, 0, 1)], axis=0)
    want_alt = np.mean([forward(alt_seq[1 + s : 1 + s + length]) for s in (-1, 0, 1)], axis=0)
    np.testing.assert_allclose(got.ref[0], want_ref, rtol=1e-4, atol=1e-6)
    np.testing.assert_allclose(got.alt[0], want_alt, rtol=1e-4, atol=1e-6)
    assert got.ref.dtype == np.float32 and got.ref.shape == (1, 16, 4)


def test_multiallelic_and_batch_size_give_the_same_numbers(
    micro_model, genome: Genome, tmp_path: Path
):
    b = base(3001)
    alts = [a for a in "ACGT" if a != b]
    vcf = write(tmp_path / "m.vcf", VCF_HEADER + f"chrT\t3001\tm\t{b}\t{','.join(alts)}\n")
    together = score_variants(micro_model, vcf, genome, stats="SAD", batch_size=3, progress=False)
    assert together["alt"].tolist() == [a for a in alts for _ in range(10)]
    alone = [
        score_variants(
            micro_model, [Variant("chrT", 3001, b, a)], genome, stats="SAD", progress=False
        )
        for a in alts
    ]
    np.testing.assert_allclose(
        together["SAD"].to_numpy(),
        np.concatenate([a["SAD"].to_numpy() for a in alone]),
        rtol=1e-4,
        atol=2e-6,  # float32 rounding of sums ~50 differs with the batch composition
    )


def test_predictor_hook_center_bins_and_genes(
    micro_model, genome: Genome, tmp_path: Path, monkeypatch
):
    n_bins = 16  # micro model: 512 bp, offset 128, 16-bp bins
    pos = 4001
    v = Variant("chrT", pos, base(pos), other(base(pos)), "v")
    fake = _fake_predictor(n_bins, 10)
    df = score_variants(
        micro_model, [v], genome, stats="SAD,REF", tracks=[2, 5], predictor=fake, progress=False
    )
    assert df["track"].tolist() == [2, 5]
    np.testing.assert_allclose(df["SAD"], sum(range(1, 17)))
    np.testing.assert_allclose(df["REF"], 16)
    # the variant sits at input 256 -> bin (256 - 128) // 16 = 8; 3 centre bins: 7, 8, 9
    df = score_variants(
        micro_model,
        [v],
        genome,
        stats="SAD",
        tracks=[0],
        center_bins=3,
        predictor=fake,
        progress=False,
    )
    np.testing.assert_allclose(df["SAD"], 8 + 9 + 10)
    # genes: window start = 4000 - 256 = 3744; output starts 128 later at 3872
    out_start = 3744 + 128
    tss_plus = out_start + 3 * 16 + 5  # bin 3 -> bins 2, 3, 4 -> ramp 3 + 4 + 5
    tss_minus = out_start + 12 * 16  # bin 12 -> ramp 12 + 13 + 14
    gtf = write(
        tmp_path / "g.gtf",
        f'chrT\tt\tgene\t{tss_plus + 1}\t{tss_plus + 500}\t.\t+\t.\tgene_id "P"; gene_name "p";\n'
        f'chrT\tt\tgene\t{tss_minus - 900}\t{tss_minus + 1}\t.\t-\t.\tgene_id "M";\n'
        f'chrT\tt\tgene\t{out_start + 2000}\t{out_start + 2100}\t.\t+\t.\tgene_id "FAR";\n',
    )
    df = score_variants(
        micro_model,
        [v],
        genome,
        stats="SAD",
        tracks=[0],
        genes_gtf=gtf,
        predictor=fake,
        progress=False,
    )
    assert df["gene_id"].tolist() == ["P", "M"]
    np.testing.assert_allclose(df["SAD"], [3 + 4 + 5, 12 + 13 + 14])
    # tss_distance: variant minus TSS along the gene's strand
    assert df["tss_distance"].tolist() == [(pos - 1) - tss_plus, tss_minus - (pos - 1)]
    # the predictor is chosen explicitly: by name or as a function
    calls = []

    def spy(*args, **kwargs):
        calls.append(1)
        return fake(*args, **kwargs)

    score_variants(micro_model, [v], genome, progress=False, predictor=spy)
    assert calls == [1]
    with pytest.raises(ValueError, match="unknown predictor 'fast'"):
        score_variants(micro_model, [v], genome, progress=False, predictor="fast")


def test_model_state_is_restored(micro_model, genome: Genome):
    micro_model.train()
    try:
        score_variants(
            micro_model,
            ["chrT:3001:" + base(3001) + ">" + other(base(3001))],
            genome,
            progress=False,
        )
        assert micro_model.training
    finally:
        micro_model.eval()


def test_skipped_variants_are_reported(micro_model, genome: Genome, tmp_path: Path):
    text = (
        VCF_HEADER
        + f"chrT\t3001\tx\t{base(3001)}\t<DEL>\n"
        + f"chrT\t3002\ty\t{other(base(3002))}\tA\n"
    )
    df = score_variants(
        micro_model, write(tmp_path / "s.vcf", text), genome, on_ref_mismatch="skip", progress=False
    )
    assert len(df) == 0
    skipped = df.attrs["skipped"]
    assert skipped["id"].tolist() == ["x", "y"]
    assert skipped["line"].tolist() == [3, 4]
    assert "symbolic" in skipped["reason"][0] and skipped["reason"][1].startswith("REF mismatch")
    meta = df.attrs["metadata"]
    assert meta["placement"] == "L//2" and "SAD" in meta["score_formulas"]


def test_group_span_through_the_scorer(micro_model, genome: Genome):
    seen: list[tuple[int, int, list[int]]] = []
    fake = _fake_predictor(16, 10)

    def spy(model, ref, alt, *, ref_index, **kwargs):
        seen.append((ref.shape[0], alt.shape[0], ref_index.tolist()))
        return fake(model, ref, alt, ref_index=ref_index, **kwargs)

    vs = [Variant("chrT", p, base(p), other(base(p)), f"v{p}") for p in (4001, 4021, 4061)]
    df = score_variants(micro_model, vs, genome, tracks=[0], group_span=100, predictor=spy,
                        progress=False)  # fmt: skip
    assert seen == [(1, 3, [0, 0, 0])]  # one shared reference window for the three
    length = micro_model.config.sequence_length
    start = (4000 + 4060) // 2 - length // 2
    assert df["window_start"].tolist() == [start] * 3
    assert df["offset"].tolist() == [4000 - start, 4020 - start, 4060 - start]
    assert df.attrs["metadata"]["group_span"] == 100


def test_indels_score_end_to_end(micro_model, genome: Genome):
    pos = 4001
    deletion = Variant("chrT", pos, CHROM_T[pos - 1 : pos + 3], base(pos), "del")
    insertion = Variant("chrT", pos, base(pos), base(pos) + "GATTACA", "ins")
    df = score_variants(micro_model, [deletion, insertion], genome, stats="SAD,D2",
                        progress=False)  # fmt: skip
    assert df["id"].unique().tolist() == ["del", "ins"]
    assert np.isfinite(df[["SAD", "D2"]].to_numpy()).all() and (df["D2"] > 0).all()


@pytest.mark.parametrize("name", ["naive", "reuse"])
def test_predictors_share_their_input_checks(name):
    from enformer.variants.predictors import PREDICTORS

    run = PREDICTORS[name]
    model = Enformer(EnformerConfig.tiny()).eval()
    n, bins = model.config.sequence_length, model.config.target_length
    ref = np.zeros((0, n, 4), np.float32)
    with pytest.raises(ValueError, match=r"^the model has no head 'fish'; it has human"):
        run(model, ref, ref, head="fish")
    with pytest.raises(ValueError, match=r"^ref_onehot and alt_onehot must be \(n, length, 4\)"):
        run(model, ref, np.zeros((1, n + 128, 4), np.float32), ref_index=np.zeros(1, int))
    out = run(model, ref, ref, tracks=[3, 1])
    assert out.ref.shape == out.alt.shape == (0, bins, 2)
    assert out.ref.dtype == out.alt.dtype == np.float32
