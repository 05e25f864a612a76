"""``enformer embed`` and :func:`enformer.inference.embed`: values equal ``model.embed``."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch

from enformer import Enformer, EnformerConfig
from enformer.cli.main import main
from enformer.data.annotation import TSSIndex
from enformer.data.genome import Genome
from enformer.data.sequence import one_hot, random_sequence
from enformer.inference import EmbedInput, embed, embed_to_files, read_embeddings
from enformer.model.geometry import output_geometry
from enformer.variants import Variant, make_allele_windows
from enformer.weights import load_pretrained, save_pretrained

from .conftest import random_onehot, randomize_batch_norm

ATOL = 1e-6
GENES_NEAR_12K = {"DDX11L2", "DDX11L1"}  # TSSs at 11,868 and 12,009 (0-based), chr1


@pytest.fixture(scope="module")
def weights(tmp_path_factory) -> Path:
    torch.manual_seed(0)
    model = Enformer(EnformerConfig.tiny()).eval()
    randomize_batch_norm(model, seed=0)
    path = tmp_path_factory.mktemp("weights") / "tiny"
    save_pretrained(model, path)
    return path


@pytest.fixture(scope="module")
def model(weights) -> Enformer:
    return load_pretrained(weights).eval()


@pytest.fixture(scope="module")
def fasta(shared_data) -> Path:
    return shared_data / "genome" / "hg38_subset.fa.gz"


@pytest.fixture(scope="module")
def genome(fasta):
    g = Genome(fasta)
    yield g
    g.close()


def run_cli(argv: list[str], capsys) -> tuple[int, dict | None, str]:
    code = main(["--json", "--quiet", *argv])
    captured = capsys.readouterr()
    out = captured.out.strip()
    return code, (json.loads(out) if out else None), captured.err


def model_embed(model: Enformer, seqs: list[str] | np.ndarray) -> np.ndarray:
    """Reference: ``model.embed`` on float32 one-hot, no batching, no engine."""
    x = one_hot(seqs, ambiguous="n") if isinstance(seqs, list) else seqs.astype(np.float32)
    with torch.no_grad():
        return model.embed(torch.from_numpy(np.asarray(x, dtype=np.float32))).numpy()


def window_start(genome: Genome, text_start: int, text_end: int, length: int) -> int:
    """0-based start of the window embed centres on the 1-based region text_start-text_end."""
    return (text_start - 1 + text_end) // 2 - length // 2


# ---- Python function ------------------------------------------------------------------------


def test_embed_function_bins_pool_and_batching_equal_model_embed(model):
    x = random_onehot(3, model.config.sequence_length, seed=1)
    expected = model_embed(model, x.numpy())  # (3, 64, 96)
    got = embed(model, x, batch_size=2)
    assert got.shape == expected.shape == (3, 64, 2 * model.config.channels)
    np.testing.assert_allclose(got, expected, atol=ATOL, rtol=0)
    np.testing.assert_allclose(embed(model, x, bins="10:13"), expected[:, 10:13], atol=ATOL, rtol=0)
    np.testing.assert_allclose(
        embed(model, x, bins="center"), expected[:, 32:33], atol=ATOL, rtol=0
    )
    pooled = embed(model, x, pool="mean", batch_size=3)
    np.testing.assert_allclose(pooled, expected.mean(1), atol=ATOL, rtol=0)
    assert model.training is False


def test_embed_rc_is_the_mean_with_the_flipped_reverse_complement(model):
    x = random_onehot(2, model.config.sequence_length, seed=2)
    fwd = model_embed(model, x.numpy())
    rev = model_embed(model, torch.flip(x, dims=(1, 2)).numpy())[:, ::-1]  # bins back in order
    got = embed(model, x, rc=True, batch_size=4)
    np.testing.assert_allclose(got, (fwd + rev) / 2, atol=ATOL, rtol=0)
    assert np.abs(fwd - rev).max() > 1e-3  # the test can tell RC averaging from none
    # invariance: the RC-averaged embedding of the reverse complement is the same, bins flipped
    again = embed(model, torch.flip(x, dims=(1, 2)), rc=True, batch_size=4)
    np.testing.assert_allclose(again[:, ::-1], got, atol=1e-5, rtol=0)


def test_embed_refuses_bad_bins_and_pool(model):
    x = random_onehot(1, model.config.sequence_length)
    for bins, match in [("middle", "not understood"), ("70:80", "selects none"), ([64], "outside")]:
        with pytest.raises(ValueError, match=match):
            embed(model, x, bins=bins)
    with pytest.raises(ValueError, match="TSS pooling needs coordinates"):
        embed(model, x, pool="tss")


# ---- command line: regions, sequences, pooling ---------------------------------------------


def test_cli_region_equals_model_embed_with_coordinates(
    model, weights, fasta, genome, tmp_path, capsys
):
    L = model.config.sequence_length
    geo = output_geometry(model.config)
    out = tmp_path / "r"
    argv = ["embed", "--weights", str(weights), "--fasta", str(fasta), "--region",
            "chr1:1,900,001-1,901,000", "--bins", "5:9", "--format", "npz",
            "--out", str(out)]  # fmt: skip
    code, summary, err = run_cli(argv, capsys)
    assert code == 0, err
    assert summary["files"] == [str(out / "embeddings.npz")] and summary["rows"] == 4
    table = read_embeddings(out / "embeddings.npz")
    start = window_start(genome, 1_900_001, 1_901_000, L)
    expected = model_embed(model, [genome.fetch("chr1", start, start + L)])[0, 5:9]
    np.testing.assert_allclose(table["embedding"], expected, atol=ATOL, rtol=0)
    assert table["bin"].tolist() == [5, 6, 7, 8]
    assert table["start"].tolist() == [start + geo.offset + b * geo.bin_size for b in range(5, 9)]
    assert (table["end"] - table["start"]).tolist() == [geo.bin_size] * 4
    assert set(table["chrom"]) == {"chr1"} and set(table["name"]) == {"chr1:1,900,001-1,901,000"}
    listing = json.loads((out / "enformer_embed.json").read_text())
    assert listing["files"] == summary["files"] and listing["settings"]["bins"] == [5, 6, 7, 8]
    assert not (out / ".work").exists()


@pytest.mark.parametrize("fmt", ["h5", "parquet"])
def test_cli_fasta_sequences_equal_model_embed(model, weights, tmp_path, capsys, fmt):
    L = model.config.sequence_length
    seqs = [random_sequence(L, seed=s) for s in (3, 4, 5)]
    path = tmp_path / "seqs.fa"
    path.write_text("".join(f">s{i}\n{s}\n" for i, s in enumerate(seqs)))
    out = tmp_path / fmt
    argv = ["embed", "--weights", str(weights), "--sequences", str(path), "--format", fmt,
            "--batch-size", "2", "--out", str(out)]  # fmt: skip
    code, summary, err = run_cli(argv, capsys)
    assert code == 0, err
    table = read_embeddings(out / f"embeddings.{fmt}")
    expected = model_embed(model, seqs)  # (3, 64, F)
    np.testing.assert_allclose(table["embedding"], expected.reshape(-1, expected.shape[2]),
                               atol=ATOL, rtol=0)  # fmt: skip
    assert table["name"].tolist() == [f"s{i}" for i in range(3) for _ in range(64)]
    assert table["bin"].tolist() == list(range(64)) * 3
    assert set(table["chrom"]) == {""} and table["start"][0] == output_geometry(model.config).offset


def test_formats_hold_the_same_table_when_written_in_several_groups(model, tmp_path, monkeypatch):
    from enformer.inference import embed_files

    monkeypatch.setattr(embed_files, "GROUP_ROWS", 50)  # 3 windows x 64 bins: 4 groups
    L = model.config.sequence_length
    seqs = [random_sequence(L, seed=s) for s in (6, 7, 8)]
    inputs = [
        EmbedInput(f"s{i}", lambda s=s: one_hot(s, dtype=np.uint8)) for i, s in enumerate(seqs)
    ]
    tables = []
    for fmt in ("npz", "h5", "parquet"):
        result = embed_to_files(model, tmp_path / fmt, inputs, format=fmt, progress=False)
        assert (result.rows, result.features) == (3 * 64, 2 * model.config.channels)
        tables.append(read_embeddings(result.files[0]))
    expected = model_embed(model, seqs).reshape(3 * 64, -1)
    for table in tables:
        np.testing.assert_allclose(table["embedding"], expected, atol=ATOL, rtol=0)
        for key in ("name", "start", "end", "bin"):
            assert table[key].tolist() == tables[0][key].tolist(), key


def test_cli_rc_averages_with_the_flipped_reverse_complement(model, weights, tmp_path, capsys):
    L = model.config.sequence_length
    seq = random_sequence(L, seed=11)
    path = tmp_path / "one.fa"
    path.write_text(f">one\n{seq}\n")
    out = tmp_path / "rc"
    argv = ["embed", "--weights", str(weights), "--sequences", str(path), "--rc",
            "--bins", "0:3", "--format", "npz", "--out", str(out)]  # fmt: skip
    code, _, err = run_cli(argv, capsys)
    assert code == 0, err
    fwd = model_embed(model, [seq])[0]
    rev = model_embed(model, one_hot([seq])[:, ::-1, ::-1].copy())[0, ::-1]
    table = read_embeddings(out / "embeddings.npz")
    np.testing.assert_allclose(table["embedding"], ((fwd + rev) / 2)[0:3], atol=ATOL, rtol=0)
    assert json.loads((out / "enformer_embed.json").read_text())["settings"]["rc"] is True


def test_cli_pool_mean_equals_mean_of_model_embed(model, weights, fasta, genome, tmp_path, capsys):
    L = model.config.sequence_length
    out = tmp_path / "m"
    argv = ["embed", "--weights", str(weights), "--fasta", str(fasta), "--region",
            "chr1:13,700,001-13,700,200", "--region", "chr2:170,710,001-170,712,000",
            "--pool", "mean", "--out", str(out)]  # fmt: skip
    code, summary, err = run_cli(argv, capsys)
    assert code == 0, err
    table = read_embeddings(out / "embeddings.h5")
    starts = [window_start(genome, 13_700_001, 13_700_200, L),
              window_start(genome, 170_710_001, 170_712_000, L)]  # fmt: skip
    seqs = [genome.fetch(c, s, s + L) for c, s in zip(["chr1", "chr2"], starts, strict=True)]
    expected = model_embed(model, seqs).mean(1)
    np.testing.assert_allclose(table["embedding"], expected, atol=ATOL, rtol=0)
    assert table["bin"].tolist() == [-1, -1] and table["chrom"].tolist() == ["chr1", "chr2"]


def test_cli_tss_pool_equals_mean_over_annotation_bins(model, weights, fasta, genome, shared_data,
                                                        tmp_path, capsys):  # fmt: skip
    L = model.config.sequence_length
    geo = output_geometry(model.config)
    gtf = shared_data / "annotations" / "gencode_hg38_subset.gtf"
    out = tmp_path / "t"
    argv = ["embed", "--weights", str(weights), "--fasta", str(fasta), "--region",
            "chr1:11,500-12,500", "--pool", "tss", "--genes", str(gtf), "--format", "parquet",
            "--out", str(out)]  # fmt: skip
    code, summary, err = run_cli(argv, capsys)
    assert code == 0, err
    table = read_embeddings(out / "embeddings.parquet")
    start = window_start(genome, 11_500, 12_500, L)
    emb = model_embed(model, [genome.fetch("chr1", start, start + L)])[0]
    found = TSSIndex.from_gtf(gtf).genes_in_window("chr1", start + geo.offset, geo.n_bins,
                                                   geo.bin_size)  # fmt: skip
    assert {g.gene_name for g in found} == GENES_NEAR_12K == set(table["gene"])
    for g in found:
        row = table["gene"].tolist().index(g.gene_name)
        assert len(g.bins) >= 3 and np.diff(g.bins).min() == 1
        np.testing.assert_allclose(table["embedding"][row], emb[g.bins].mean(0), atol=ATOL, rtol=0)
        assert table["start"][row] == start + geo.offset + g.bins[0] * geo.bin_size
    # the two genes' bins differ, so their rows do too
    assert np.abs(table["embedding"][0] - table["embedding"][1]).max() > 1e-4


def test_cli_variants_ref_alt_equal_model_embed_of_score_windows(model, weights, fasta, genome,
                                                                  tmp_path, capsys):  # fmt: skip
    L = model.config.sequence_length
    vcf = tmp_path / "v.vcf"
    rows = ["chr1\t14677\trsA\tG\tA", "chr1\t54490\trsB\tG\tA", "chr1\t63671\t.\tG\tGTT"]
    vcf.write_text("##fileformat=VCFv4.2\n#CHROM\tPOS\tID\tREF\tALT\tQUAL\tFILTER\tINFO\n"
                   + "".join(f"{r}\t.\t.\t.\n" for r in rows))  # fmt: skip
    out = tmp_path / "v"
    argv = ["embed", "--weights", str(weights), "--fasta", str(fasta), "--vcf", str(vcf),
            "--bins", "center", "--format", "npz", "--out", str(out)]  # fmt: skip
    code, summary, err = run_cli(argv, capsys)
    assert code == 0, err
    table = read_embeddings(out / "embeddings.npz")
    assert table["name"].tolist() == ["rsA", "rsA", "rsB", "rsB"] + ["chr1:63671:G>GTT"] * 2
    assert table["allele"].tolist() == ["ref", "alt"] * 3
    variants = [Variant("chr1", 14677, "G", "A"), Variant("chr1", 54490, "G", "A"),
                Variant("chr1", 63671, "G", "GTT")]  # fmt: skip
    w = make_allele_windows(variants, genome, L)
    ref = model_embed(model, w.ref[w.ref_index])[:, 32]
    alt = model_embed(model, w.alt)[:, 32]
    np.testing.assert_allclose(table["embedding"][0::2], ref, atol=ATOL, rtol=0)
    np.testing.assert_allclose(table["embedding"][1::2], alt, atol=ATOL, rtol=0)
    assert np.abs(ref - alt).max() > 1e-5  # the variant changes the centre bin's embedding
    assert table["start"][0] == w.placements[0].start + 512 + 32 * 16


# ---- resuming and bad input ------------------------------------------------------------------


def test_resume_after_interruption_gives_the_same_file(model, tmp_path):
    L = model.config.sequence_length
    seqs = [random_sequence(L, seed=s) for s in range(5)]
    calls = {"n": 0}

    def dying(seq):
        def fetch():
            calls["n"] += 1
            if calls["n"] == 4:
                raise RuntimeError("killed")
            return one_hot(seq, dtype=np.uint8)

        return fetch

    inputs = [EmbedInput(f"s{i}", dying(s)) for i, s in enumerate(seqs)]
    out = tmp_path / "resumed"
    with pytest.raises(RuntimeError, match="killed"):
        embed_to_files(model, out, inputs, format="npz", batch_size=1, progress=False)
    assert len(list((out / ".work" / "chunks").glob("*.npz"))) == 3
    assert not (out / "embeddings.npz").exists()
    again = embed_to_files(model, out, inputs, format="npz", batch_size=2, progress=False)
    assert (again.reused, again.computed) == (3, 2)
    whole = embed_to_files(model, tmp_path / "whole", inputs, format="npz", progress=False)
    a, b = read_embeddings(out / "embeddings.npz"), read_embeddings(whole.files[0])
    for key in a:
        assert np.array_equal(a[key], b[key]), key
    assert a["embedding"].shape == (5 * 64, 2 * model.config.channels)


def test_resume_recomputes_windows_whose_bases_changed(model, tmp_path, caplog):
    L = model.config.sequence_length
    seqs = [random_sequence(L, seed=s) for s in range(3)]
    inputs = [EmbedInput(f"s{i}", lambda i=i: one_hot(seqs[i], dtype=np.uint8)) for i in range(3)]
    out = tmp_path / "changed"
    with pytest.raises(RuntimeError, match="killed"):
        dying = [
            *inputs[:2],
            EmbedInput("s2", lambda: (_ for _ in ()).throw(RuntimeError("killed"))),
        ]
        embed_to_files(model, out, dying, format="npz", progress=False)
    seqs[0] = random_sequence(L, seed=99)  # the FASTA changed under the same name
    again = embed_to_files(model, out, inputs, format="npz", progress=False)
    assert (again.reused, again.computed) == (1, 2)
    assert "other bases" in caplog.text
    table = read_embeddings(again.files[0])
    np.testing.assert_allclose(table["embedding"], model_embed(model, seqs).reshape(-1, 96),
                               atol=ATOL, rtol=0)  # fmt: skip


def _sequences_file(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "bad.fa"
    path.write_text(text)
    return path


@pytest.mark.parametrize(
    ("case", "needle"),
    [
        ("short", "is 100 bp but the model takes 2,048 bp"),
        ("letters", "bad.fa"),
        ("contig", "chrNope"),
        ("off_chromosome", "centred outside chr1"),
        ("vcf_contig", "chrNope"),
        ("ref_mismatch", "v.vcf"),
        ("bins", "'middle' not understood"),
    ],
)
def test_bad_input_exits_2_with_one_line(weights, fasta, tmp_path, capsys, case, needle):
    base = ["--quiet", "embed", "--weights", str(weights), "--out", str(tmp_path / "o")]
    if case == "short":
        argv = [*base, "--sequences", str(_sequences_file(tmp_path, ">a\n" + "A" * 100 + "\n"))]
    elif case == "letters":
        argv = [*base, "--sequences", str(_sequences_file(tmp_path, ">a\n" + "AJ" * 1024 + "\n"))]
    elif case == "contig":
        argv = [*base, "--fasta", str(fasta), "--region", "chrNope:1-100"]
    elif case == "off_chromosome":
        argv = [*base, "--fasta", str(fasta), "--region", "chr1:300,000,001-300,000,100"]
    elif case in ("vcf_contig", "ref_mismatch"):
        row = "chrNope\t100\t.\tA\tG" if case == "vcf_contig" else "chr1\t14677\t.\tT\tA"
        vcf = tmp_path / "v.vcf"
        vcf.write_text(f"##fileformat=VCFv4.2\n#CHROM\tPOS\tID\tREF\tALT\n{row}\n")
        argv = [*base, "--fasta", str(fasta), "--vcf", str(vcf)]
    else:
        region = "chr1:1,000,001-1,000,100"
        argv = [*base, "--fasta", str(fasta), "--region", region, "--bins", "middle"]
    assert main(argv) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and needle in err[0], err
    assert "Traceback" not in err[0]
    assert not (tmp_path / "o").exists()
