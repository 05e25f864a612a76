"""``enformer score`` end to end: real GTEx VCF on hg38, every output format, resuming."""

from __future__ import annotations

import gzip
import json
from pathlib import Path

import h5py
import numpy as np
import pandas as pd
import pyarrow.parquet as pq
import pytest
import torch

from enformer import Enformer, EnformerConfig
from enformer.cli.main import main
from enformer.data.genome import Genome
from enformer.data.sequence import random_sequence
from enformer.variants.predictors import predict_alleles
from enformer.variants.score import score_variants, write_scores
from enformer.weights import save_pretrained

from .conftest import randomize_batch_norm

STATS = ["SAD", "SAR", "logSED"]
TRACKS = [0, 1, 2, 3]
SHEET_ROWS = [
    ("CNhs00001+", "CAGE:cell A", 1),
    ("CNhs00001-", "CAGE:cell A", 0),
    ("ENCFF00002", "DNASE:cell B", 2),
    ("ENCFF00003", "CHIP:CTCF:cell C", 3),
] + [(f"ENCFF1000{i}", f"DNASE:cell {i}", i) for i in range(4, 10)]


@pytest.fixture(scope="module")
def weights(tmp_path_factory) -> Path:
    """A tiny model on 512-bp inputs (16 output bins of 16 bp), saved like real weights."""
    torch.manual_seed(0)
    model = Enformer(EnformerConfig.tiny(sequence_length=512, target_length=16)).eval()
    randomize_batch_norm(model, seed=2)
    directory = tmp_path_factory.mktemp("weights") / "micro"
    save_pretrained(model, directory)
    return directory


@pytest.fixture(scope="module")
def sheet(tmp_path_factory) -> Path:
    path = tmp_path_factory.mktemp("sheet") / "targets_human.txt"
    lines = ["\tidentifier\tfile\tclip\tclip_soft\tscale\tsum_stat\tstrand_pair\tdescription"]
    for i, (ident, desc, pair) in enumerate(SHEET_ROWS):
        lines.append(f"{i}\t{ident}\tf{i}.w5\t384\t64\t1.0\tsum\t{pair}\t{desc}")
    path.write_text("\n".join(lines) + "\n")
    return path


@pytest.fixture(scope="module")
def hg38(shared_data: Path) -> Path:
    return shared_data / "genome" / "hg38_subset.fa.gz"


@pytest.fixture(scope="module")
def eqtl(shared_data: Path) -> Path:
    return shared_data / "variants" / "gtex_eqtl_chr1.vcf"


def run_score(*args: str | Path) -> int:
    return main(["score", "-q", *[str(a) for a in args]])


@pytest.fixture(scope="module")
def reference(weights, sheet, hg38, eqtl, tmp_path_factory) -> tuple[Path, pd.DataFrame]:
    """The real VCF scored once to Parquet through the CLI."""
    out = tmp_path_factory.mktemp("ref") / "scores.parquet"
    code = run_score(
        "--weights", weights, "--fasta", hg38, "--vcf", eqtl, "--targets", sheet,
        "--stats", ",".join(STATS), "--tracks", "0-3", "--batch-size", "8", "--out", out,
    )  # fmt: skip
    assert code == 0
    return out, pd.read_parquet(out)


def test_parquet_contents(reference, weights, sheet, hg38, eqtl):
    out, table = reference
    ids = [line.split("\t")[2] for line in eqtl.read_text().splitlines() if line[0] != "#"]
    assert len(table) == 8 * len(TRACKS)
    assert table["id"].tolist() == [i for i in ids for _ in TRACKS]
    assert table["track"].tolist() == TRACKS * 8
    assert table["identifier"].tolist()[:4] == [
        "CNhs00001+",
        "CNhs00001-",
        "ENCFF00002",
        "ENCFF00003",
    ]
    assert (table["chrom"] == "chr1").all() and not table["flipped"].any()
    assert table["pos"].iloc[0] == 14677 and table["ref"].iloc[0] == "G"
    for s in STATS:
        assert table[s].dtype == np.float32
        assert np.isfinite(table[s]).all() and np.abs(table[s]).max() > 0
    assert not table.duplicated(["id", "track"]).any()
    meta = json.loads(pq.read_schema(out).metadata[b"enformer"])
    assert meta["placement"] == "L//2"
    assert meta["score_formulas"]["SAR"] == "SAR = sum_b [log2(A + 1) - log2(R + 1)]"
    assert meta["rc"] is False and meta["shifts"] == [0]
    assert meta["tracks"] == TRACKS and meta["model"]["weights"] == str(weights)
    settings = json.loads(out.with_name("scores.settings.json").read_text())
    assert settings["summary"]["variants_scored"] == 8
    assert settings["metadata"]["indel_anchoring"].startswith("window anchored at its start")
    skipped = pd.read_csv(out.with_name("scores.skipped.tsv"), sep="\t")
    assert len(skipped) == 0 and "reason" in skipped.columns
    assert not out.with_name(out.name + ".enformer-work").exists()
    # the library call gives the same numbers
    from enformer.weights import load_pretrained

    df = score_variants(
        load_pretrained(weights), eqtl, hg38, stats=STATS, tracks=TRACKS,
        track_sheet=sheet, batch_size=8, progress=False,
    )  # fmt: skip
    for s in STATS:
        np.testing.assert_array_equal(df[s].to_numpy(), table[s].to_numpy())


def test_tsv_h5_and_vcf_outputs(reference, weights, sheet, hg38, eqtl, tmp_path):
    _, table = reference
    common = ["--weights", weights, "--fasta", hg38, "--vcf", eqtl, "--targets", sheet,
              "--stats", ",".join(STATS), "--tracks", "0-3", "--batch-size", "8"]  # fmt: skip
    for name in ("s.tsv", "s.h5", "s.vcf", "w.tsv.gz", "s.vcf.gz"):
        extra = ["--wide"] if name.startswith("w") else []
        extra += ["--vcf-tracks", "CNhs00001+,ENCFF00003"] if name == "s.vcf.gz" else []
        assert run_score(*common, *extra, "--out", tmp_path / name) == 0, name

    tsv = pd.read_csv(tmp_path / "s.tsv", sep="\t")
    assert tsv.columns.tolist()[:7] == ["id", "chrom", "pos", "ref", "alt", "flipped", "track"]
    for s in STATS:  # written with 9 significant digits: float32 round-trips exactly
        np.testing.assert_array_equal(tsv[s].to_numpy(np.float32), table[s].to_numpy())

    wide = pd.read_csv(tmp_path / "w.tsv.gz", sep="\t")
    assert len(wide) == 8
    np.testing.assert_array_equal(
        wide["SAD_ENCFF00003"].to_numpy(np.float32), table["SAD"].to_numpy()[3::4]
    )

    with h5py.File(tmp_path / "s.h5") as h5:
        for key in ("snp", "chr", "pos", "ref_allele", "alt_allele", "target_ids", "target_labels"):
            assert key in h5, key
        assert h5["snp"].asstr()[0] == "chr1_14677_G_A_b38"
        assert h5["chr"].asstr()[:].tolist() == ["chr1"] * 8
        assert h5["pos"][0] == 14677 and h5["ref_allele"].asstr()[0] == "G"
        assert h5["target_ids"].asstr()[:].tolist() == [r[0] for r in SHEET_ROWS[:4]]
        assert h5["target_labels"].asstr()[2] == "DNASE:cell B"
        for s in STATS:
            assert h5[s].shape == (8, 4) and h5[s].dtype == np.float32
            np.testing.assert_array_equal(h5[s][:].reshape(-1), table[s].to_numpy())
            assert h5[s].attrs["formula"].startswith(s)
        assert json.loads(h5.attrs["enformer"])["placement"] == "L//2"

    vcf = (tmp_path / "s.vcf").read_text().splitlines()
    header = [line for line in vcf if line.startswith("##INFO=<ID=ENFORMER_")]
    assert len(header) == len(STATS) * 4
    assert any("ENFORMER_SAD_T0," in h and "SAD = sum_b A - sum_b R" in h for h in header)
    assert any(line.startswith("##enformer_settings=") for line in vcf)
    records = [line.split("\t") for line in vcf if not line.startswith("#")]
    assert [r[2] for r in records] == table["id"].tolist()[::4]  # the input's records, in order
    info = dict(kv.split("=") for kv in records[1][7].split(";"))
    for s in STATS:
        for k in TRACKS:
            assert float(info[f"ENFORMER_{s}_T{k}"]) == pytest.approx(
                float(table[s].iloc[4 + k]), rel=1e-5, abs=1e-12
            )

    import pysam  # bgzip output, readable by htslib

    with pysam.VariantFile(str(tmp_path / "s.vcf.gz")) as vf:
        assert sorted(k for k in vf.header.info if k.startswith("ENFORMER")) == sorted(
            f"ENFORMER_{s}_T{k}" for s in STATS for k in (0, 3)
        )
        recs = list(vf)
    assert len(recs) == 8
    assert recs[0].info["ENFORMER_SAD_T3"][0] == pytest.approx(
        float(table["SAD"].iloc[3]), rel=1e-5
    )


def test_vcf_copy_multiallelic_and_skips(weights, tmp_path):
    seq = random_sequence(3000, seed=5)
    fasta = tmp_path / "toy.fa"
    fasta.write_text(">chrT\n" + "\n".join(seq[i : i + 60] for i in range(0, 3000, 60)) + "\n")
    b = seq[1499]
    alts = [a for a in "ACGT" if a != b]
    wrong = alts[0]
    vcf = tmp_path / "in.vcf"
    vcf.write_text(
        "##fileformat=VCFv4.2\n##contig=<ID=chrT,length=3000>\n"
        "#CHROM\tPOS\tID\tREF\tALT\tQUAL\tFILTER\tINFO\n"
        f"chrT\t1500\tm\t{b}\t{alts[1]},<DEL>,{alts[2]}\t50\tPASS\tDP=3\n"
        f"chrT\t1600\tbad\t{'A' if seq[1599] != 'A' else 'C'}\t{wrong}\t.\t.\t.\n"
        f"chrT\t1700\td\t{seq[1699:1702]}\t{seq[1699]}\t.\t.\t.\n"
    )
    out = tmp_path / "o.vcf"
    code = run_score("--weights", weights, "--fasta", fasta, "--vcf", vcf, "--tracks", "0,1",
                     "--on-ref-mismatch", "skip", "--out", out)  # fmt: skip
    assert code == 0
    lines = out.read_text().splitlines()
    records = [line.split("\t") for line in lines if not line.startswith("#")]
    assert [r[2] for r in records] == ["m", "bad", "d"]
    assert records[0][7].startswith("DP=3;ENFORMER_SAD_T0=")
    info = dict(kv.split("=") for kv in records[0][7].split(";"))
    values = info["ENFORMER_SAD_T1"].split(",")
    assert len(values) == 3 and values[1] == "." and values[0] != "."  # Number=A, <DEL> missing
    assert records[1][7] == "."  # skipped: untouched
    assert "ENFORMER_SAD_T0" in records[2][7]
    skipped = pd.read_csv(tmp_path / "o.skipped.tsv", sep="\t")
    assert skipped["id"].tolist() == ["m", "bad"]
    assert skipped["line"].tolist() == [4, 5]
    assert "symbolic" in skipped["reason"][0] and skipped["reason"][1].startswith("REF mismatch")
    # annotating the annotated file replaces the earlier fields instead of repeating them
    again = tmp_path / "again.vcf"
    code = run_score("--weights", weights, "--fasta", fasta, "--vcf", out, "--tracks", "0,1",
                     "--on-ref-mismatch", "skip", "--out", again)  # fmt: skip
    assert code == 0
    assert again.read_text() == out.read_text()


def test_variant_strings_json_and_errors(weights, sheet, hg38, tmp_path, capsys):
    out = tmp_path / "v.parquet"
    code = main(["score", "--json", "--weights", str(weights), "--fasta", str(hg38),
                 "--variant", "chr1:14677:G>A", "--variant", "chr1:54490:G:A", "--rc",
                 "--targets", str(sheet), "--batch-size", "6",
                 "--shifts", "-1,0,1", "--center-bins", "3", "--out", str(out)])  # fmt: skip
    assert code == 0
    summary = json.loads(capsys.readouterr().out)
    assert summary["ok"] and summary["variants_scored"] == 2 and summary["rows"] == 20
    meta = json.loads(pq.read_schema(out).metadata[b"enformer"])
    assert meta["shifts"] == [-1, 0, 1] and meta["window"] == {"mode": "center", "center_bins": 3}
    assert meta["rc"] is True and meta["strand_pairs_swapped"] is True
    assert pd.read_parquet(out)["id"].tolist()[::10] == ["chr1:14677:G>A", "chr1:54490:G>A"]

    tsv = tmp_path / "bad.tsv"
    tsv.write_text("chrom\tpos\tref\talt\nchr1\t14677\tG\tA\nchr1\t54490\tT\tA\n")
    code = run_score("--weights", weights, "--fasta", hg38, "--tsv", tsv, "--out",
                     tmp_path / "b.parquet")  # fmt: skip
    assert code == 2
    err = capsys.readouterr().err
    assert "bad.tsv, line 3" in err and "REF mismatch" in err and "not REF 'T'" in err
    assert not (tmp_path / "b.parquet").exists()

    tsv.write_text("chr1\t14677\tG\tA\nchrZ\t5\tA\tG\n")
    assert run_score("--weights", weights, "--fasta", hg38, "--tsv", tsv, "--out",
                     tmp_path / "c.parquet") == 2  # fmt: skip
    assert (
        "bad.tsv, line 2: chromosome 'chrZ' is not in hg38_subset.fa.gz" in capsys.readouterr().err
    )


class _Interrupt(Exception):
    pass


def test_resume_after_interruption(weights, hg38, eqtl, tmp_path, caplog):
    from enformer.weights import load_pretrained

    model = load_pretrained(weights)
    genome = Genome(hg38)
    options = dict(stats=STATS, tracks=TRACKS, chunk_size=2, batch_size=4, progress=False)
    calls: list[int] = []

    def counting(*args, **kwargs):
        calls.append(1)
        return predict_alleles(*args, **kwargs)

    def dying(*args, **kwargs):
        if len(calls) == 2:
            raise _Interrupt
        return counting(*args, **kwargs)

    clean = tmp_path / "clean.parquet"
    write_scores(model, eqtl, genome, clean, predictor=counting, **options)
    assert len(calls) == 4  # 8 variants in chunks of 2, one predictor call per chunk

    out = tmp_path / "resumed.parquet"
    calls.clear()
    with pytest.raises(_Interrupt):
        write_scores(model, eqtl, genome, out, predictor=dying, **options)
    work = tmp_path / "resumed.parquet.enformer-work"
    assert sorted(p.name for p in work.glob("chunk_*")) == [
        "chunk_0000000.npz",
        "chunk_0000001.npz",
    ]
    assert not out.exists()
    (work / "chunk_0000002.npz.tmp").write_bytes(b"torn write")  # killed mid-write

    calls.clear()
    summary = write_scores(model, eqtl, genome, out, predictor=counting, **options)
    assert len(calls) == 2 and summary["resumed_chunks"] == 2
    a, b = pd.read_parquet(clean), pd.read_parquet(out)
    pd.testing.assert_frame_equal(a, b)
    assert len(b) == 32 and not b.duplicated(["id", "track"]).any()
    assert not work.exists()

    # other settings: the stale chunks are not reused
    calls.clear()
    with pytest.raises(_Interrupt):
        write_scores(model, eqtl, genome, out, predictor=dying, **options)
    calls.clear()
    with caplog.at_level("WARNING"):
        write_scores(model, eqtl, genome, out, predictor=counting, **{**options, "stats": ["SAD"]})
    assert len(calls) == 4 and "other settings" in caplog.text
    assert pd.read_parquet(out).columns.tolist()[-1] == "SAD"
    genome.close()


def test_gene_output_needs_a_table_format(weights, hg38, eqtl, shared_data, tmp_path):
    gtf = shared_data / "annotations" / "gencode_hg38_subset.gtf"
    assert run_score("--weights", weights, "--fasta", hg38, "--vcf", eqtl, "--genes", gtf,
                     "--out", tmp_path / "g.vcf") == 2  # fmt: skip
    out = tmp_path / "g.h5"
    assert run_score("--weights", weights, "--fasta", hg38, "--vcf", eqtl, "--genes", gtf,
                     "--tss-width", "1", "--out", out) == 0  # fmt: skip
    with h5py.File(out) as h5:
        n = h5["SAD"].shape[0]
        assert h5["si"].shape == (n,) and h5["gene_id"].shape == (n,)
        scored = h5["snp"].shape[0]
    # Variants with no TSS in their output window are listed as skipped, never dropped.
    skipped = pd.read_csv(tmp_path / "g.skipped.tsv", sep="\t")
    assert scored + len(skipped) == 8
    assert set(skipped["reason"]) <= {"no TSS of the GTF's genes in the output window"}


def test_gzip_tsv_input(weights, hg38, tmp_path):
    path = tmp_path / "v.tsv.gz"
    with gzip.open(path, "wt") as fh:
        fh.write("chr1\t14677\tG\tA\tfirst\n")
    out = tmp_path / "v.tsv"
    assert run_score("--weights", weights, "--fasta", hg38, "--tsv", path, "--tracks", "7",
                     "--out", out) == 0  # fmt: skip
    table = pd.read_csv(out, sep="\t")
    assert table["id"].tolist() == ["first"] and table["track"].tolist() == [7]


def test_shards_then_assemble(weights, hg38, eqtl, tmp_path, capsys):
    from enformer.weights import load_pretrained

    model = load_pretrained(weights)
    calls: list[int] = []

    def counting(*args, **kwargs):
        calls.append(1)
        return predict_alleles(*args, **kwargs)

    options = dict(stats=["SAD"], tracks=[0, 1], chunk_size=2, predictor=counting, progress=False)
    work = tmp_path / "shared-work"
    out = tmp_path / "sharded.parquet"
    with Genome(hg38) as genome:
        first = write_scores(model, eqtl, genome, out, work_dir=work, shard=(0, 2), **options)
        assert first["chunks_computed"] == 2 and not first["complete"] and not out.exists()
        second = write_scores(model, eqtl, genome, out, work_dir=work, shard=(1, 2), **options)
        assert second["complete"] and second["chunks_missing"] == 0
        assert len(calls) == 4
        summary = write_scores(model, eqtl, genome, out, work_dir=work, **options)
        assert len(calls) == 4 and summary["resumed_chunks"] == 4
        clean = tmp_path / "clean.parquet"
        write_scores(model, eqtl, genome, clean, **options)
    pd.testing.assert_frame_equal(pd.read_parquet(out), pd.read_parquet(clean))
    # a shard with other settings refuses to touch the work directory
    with Genome(hg38) as genome:
        write_scores(model, eqtl, genome, out, work_dir=work, shard=(0, 2), **options)
        with pytest.raises(ValueError, match="other settings"):
            write_scores(model, eqtl, genome, out, work_dir=work, shard=(1, 2),
                         **{**options, "stats": ["D1"]})  # fmt: skip
    # the command line takes 1-based I/N
    code = main(["score", "-q", "--weights", str(weights), "--fasta", str(hg38), "--vcf",
                 str(eqtl), "--shard", "3/2", "--out", str(tmp_path / "x.parquet")])  # fmt: skip
    assert code == 2 and "--shard takes I/N" in capsys.readouterr().err
