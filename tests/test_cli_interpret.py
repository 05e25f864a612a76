"""`enformer attribute` and `enformer ism` run in a temporary directory; outputs are checked."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch

from enformer import Enformer, EnformerConfig
from enformer.cli.main import main
from enformer.data.sequence import one_hot
from enformer.interpret import (
    Target,
    contribution_scores,
    gene_target,
    saturation_mutagenesis,
)

from .conftest import randomize_batch_norm

pytest.importorskip("h5py")
pytest.importorskip("pyBigWig")
pytest.importorskip("matplotlib")
pytestmark = pytest.mark.shared

DESCRIPTION = "mini model: random weights for the CLI tests"
OR4F5_TSS = 65_418  # 0-based, + strand
SHEET = [
    ("ENCFF000AAA", "", ".", "DNASE:test cells"),
    ("CNhs00001+", "2", "+", "CAGE:liver, plus"),
    ("CNhs00001-", "1", "-", "CAGE:liver, minus"),
    ("CNhs00002+", "4", "+", "CAGE:K562, plus"),
    ("CNhs00002-", "3", "-", "CAGE:K562, minus"),
    *[(f"ENCFF00{i}CHP", "", ".", f"CHIP:CTCF sample {i}") for i in range(5)],
]


@pytest.fixture(scope="module")
def weights(tmp_path_factory) -> Path:
    torch.manual_seed(0)
    model = Enformer(EnformerConfig.tiny(description=DESCRIPTION)).eval()
    randomize_batch_norm(model, seed=3)
    out = tmp_path_factory.mktemp("weights")
    model.save_pretrained(str(out))
    lines = ["index\tgenome\tidentifier\tfile\tclip\tscale\tsum_stat\tstrand_pair\tdescription"]
    for i, (ident, pair, _, desc) in enumerate(SHEET):
        lines.append(f"{i}\t0\t{ident}\tx.w5\t384\t1\tsum\t{pair or i}\t{desc}")
    (out / "targets_human.txt").write_text("\n".join(lines) + "\n")
    return out


@pytest.fixture(scope="module")
def model(weights) -> Enformer:
    from enformer.weights import load_pretrained

    return load_pretrained(str(weights))


@pytest.fixture(scope="module")
def paths(shared_data) -> dict[str, str]:
    return {
        "fasta": str(shared_data / "genome" / "hg38_subset.fa.gz"),
        "gtf": str(shared_data / "annotations" / "gencode_hg38_subset.gtf"),
    }


def run_cli(capsys, *argv: str) -> tuple[int, dict]:
    code = main([*argv, "--json", "-q"])
    out = capsys.readouterr().out
    return code, json.loads(out)


def _genome_onehot(fasta: str, start: int, length: int = 2048) -> np.ndarray:
    from enformer.data.genome import Genome

    with Genome(fasta) as g:
        return one_hot(g.fetch("chr1", start, start + length))


def _check_png(path: str) -> None:
    from matplotlib.image import imread

    assert Path(path).stat().st_size > 15_000
    assert imread(path)[..., :3].std() > 0.05


def test_attribute_region_gene(tmp_path, capsys, weights, model, paths):
    import h5py
    import pyBigWig

    out = tmp_path / "attr"
    code, s = run_cli(
        capsys, "attribute", "--weights", str(weights), "--fasta", paths["fasta"],
        "--region", "chr1:65,419-65,419", "--tracks", "assay:CAGE", "--gene", "OR4F5",
        "--gtf", paths["gtf"], "--rc", "--out", str(out),
    )  # fmt: skip
    assert code == 0 and s["ok"] and s["command"] == "attribute"
    assert s["model_description"] == DESCRIPTION
    start = OR4F5_TSS - 1024  # the input window is centred on the region
    assert s["window"] == f"chr1:{start + 1:,}-{start + 2048:,}"
    assert s["target"] == "sum of human tracks [1-4] at bins [31-33]"
    assert "OR4F5" in s["target_bins_from"]
    kinds = {f["kind"]: f["path"] for f in s["files"]}
    assert set(kinds) == {"bigwig", "h5", "png"}
    for f in s["files"]:
        assert Path(f["path"]).is_file()
    settings = json.loads(Path(s["settings"]).read_text())
    assert settings["settings"]["model_description"] == DESCRIPTION
    assert settings["settings"]["track_identifiers"][0] == "CNhs00001+"
    assert [f["path"] for f in settings["files"]] == [f["path"] for f in s["files"]]

    # The same computation through the library (strand pairs from the sheet).
    x = _genome_onehot(paths["fasta"], start)
    target = gene_target(model, "OR4F5", gtf=paths["gtf"], window_start=start, tracks=[1, 2, 3, 4])
    perm = np.array([0, 2, 1, 4, 3, 5, 6, 7, 8, 9])
    expected = contribution_scores(model, x, target, rc=True, strand_pairs=perm)
    assert s["target_value"]["ref"] == pytest.approx(float(expected.target_value), rel=1e-6)
    with h5py.File(kinds["h5"]) as h5:
        np.testing.assert_allclose(h5["scores"][0], expected.scores, rtol=1e-5, atol=1e-10)
        np.testing.assert_array_equal(h5["seqs"][0], x.astype(bool))
        assert h5["chrom"][0] == b"chr1"
        assert (h5["start"][0], h5["end"][0]) == (start, start + 2048)
        assert h5["names"][0] == b"ref"
        per_pos = h5["per_position"][0]
    bw = pyBigWig.open(kinds["bigwig"])
    try:
        assert bw.chroms("chr1") == 248_956_422 and len(bw.chroms()) == 21
        values = np.array(bw.values("chr1", start, start + 2048))
        np.testing.assert_allclose(values, per_pos, rtol=1e-6, atol=1e-12)
        assert np.isnan(bw.values("chr1", start - 10, start)).all()  # nothing outside
    finally:
        bw.close()
    _check_png(kinds["png"])


def test_attribute_variant_integrated_gradients(tmp_path, capsys, weights, model, paths):
    import pyBigWig

    out = tmp_path / "var"
    code, s = run_cli(
        capsys, "attribute", "--weights", str(weights), "--fasta", paths["fasta"],
        "--variant", "chr1:65500:T>G", "--tracks", "0,3", "--bins", "30-33",
        "--method", "integrated_gradients", "--steps", "4", "--format", "npz",
        "--plot", "svg", "--gtf", paths["gtf"], "--out", str(out),
    )  # fmt: skip
    assert code == 0
    start = 65_499 - 1024  # the variant's base at input index L // 2
    assert s["window"] == f"chr1:{start + 1:,}-{start + 2048:,}"
    files = {Path(f["path"]).name: f for f in s["files"]}
    assert set(files) == {
        "contributions_ref.bw", "contributions_alt.bw", "contributions.npz",
        "attribution_ref.svg", "attribution_alt.svg", "variant.svg",
    }  # fmt: skip
    with np.load(out / "contributions.npz") as f:
        assert [n.decode() for n in f["names"]] == ["ref", "alt"]
        seqs = f["seqs"]
        assert seqs[0, 1024, 3] and seqs[1, 1024, 2]  # T>G at input index 1024
        assert (seqs[0] != seqs[1]).any(-1).sum() == 1
        scores, per_pos = f["scores"], f["per_position"]
        assert json.loads(str(f["metadata"]))["method"] == "integrated_gradients"
    x = torch.from_numpy(seqs.astype(np.float32))
    target = Target("human", tracks=[0, 3], bins=[30, 31, 32, 33])
    expected = contribution_scores(model, x, target, method="integrated_gradients", steps=4)
    np.testing.assert_allclose(scores, expected.scores, rtol=1e-5, atol=1e-10)
    assert s["target_value"]["alt"] == pytest.approx(float(expected.target_value[1]), rel=1e-6)
    for i, allele in enumerate(["ref", "alt"]):
        bw = pyBigWig.open(str(out / f"contributions_{allele}.bw"))
        try:
            got = np.array(bw.values("chr1", start, start + 2048))
        finally:
            bw.close()
        np.testing.assert_allclose(got, per_pos[i], rtol=1e-6, atol=1e-12)
    assert "<svg" in (out / "variant.svg").read_text()[:2000]


def test_ism_command(tmp_path, capsys, weights, model, paths):
    import h5py

    out = tmp_path / "ism"
    code, s = run_cli(
        capsys, "ism", "--weights", str(weights), "--fasta", paths["fasta"],
        "--region", "chr1:65,419-65,419", "--window", "chr1:65,401-65,430",
        "--tracks", "CAGE:liver", "--gene", "OR4F5", "--gtf", paths["gtf"], "--out", str(out),
    )  # fmt: skip
    assert code == 0 and s["method"] == "exact_reuse" and s["mutants"] == 90
    assert s["model_description"] == DESCRIPTION
    files = {Path(f["path"]).name for f in s["files"]}
    assert files == {"ism.h5", "ism.png"}
    _check_png(str(out / "ism.png"))
    start = OR4F5_TSS - 1024
    x = _genome_onehot(paths["fasta"], start)
    expected = saturation_mutagenesis(
        model, x, start=65_400 - start, end=65_430 - start, tracks=[1, 2], bins=[31, 32, 33]
    )
    with h5py.File(out / "ism.h5") as h5:
        assert h5["ism"].shape == (1, 30, 4, 2) and h5["seqs"].shape == (1, 30, 4)
        np.testing.assert_allclose(h5["scores"][0], expected.scores, rtol=1e-6)
        np.testing.assert_allclose(h5["ref"][0], expected.reference, rtol=1e-6)
        np.testing.assert_array_equal(h5["seqs"][0], x[65_400 - start : 65_430 - start] > 0)
        assert h5["chrom"][0] == b"chr1"
        assert (h5["start"][0], h5["end"][0]) == (65_400, 65_430)
        assert h5["input_start"][0] == start
        assert [t.decode() for t in h5["target_ids"]] == ["CNhs00001+", "CNhs00001-"]
        assert [t.decode() for t in h5["target_labels"]][0] == "CAGE:liver, plus"
        ism = h5["ism"][0]
        ref_base = h5["seqs"][0].argmax(-1)
        assert np.all(ism[np.arange(30), ref_base] == 0)
        assert h5.attrs["model_description"] == DESCRIPTION
    settings = json.loads((out / "enformer_ism.json").read_text())["settings"]
    assert settings["mutated"] == {"chrom": "chr1", "start": 65_400, "end": 65_430}
    # --naive gives the same numbers; the text summary names the model.
    code = main(
        ["ism", "--weights", str(weights), "--fasta", paths["fasta"], "--region",
         "chr1:65,419-65,419", "--window", "chr1:65,401-65,403", "--tracks", "1,2", "--bins",
         "31-33", "--naive", "--format", "npz", "--plot", "none", "--out", str(tmp_path / "n")]
    )  # fmt: skip
    text = capsys.readouterr().out
    assert code == 0 and DESCRIPTION in text and "naive" in text
    with np.load(tmp_path / "n" / "ism.npz") as f:
        np.testing.assert_allclose(f["scores"][0], expected.scores[:3], rtol=1e-5, atol=1e-7)


def test_ism_resumes_after_interrupt(tmp_path, capsys, weights, model, paths, monkeypatch):
    """A killed ISM run keeps its finished units; the rerun computes only the rest and writes
    the same numbers as an uninterrupted run; other settings start over."""
    from enformer.io.jobdir import JobDir

    base = ["ism", "--weights", str(weights), "--fasta", paths["fasta"], "--region",
            "chr1:65,419-65,419", "--window", "chr1:65,401-65,430", "--tracks", "1,2",
            "--bins", "31-33", "--chunk-positions", "8", "--batch-size", "5", "--plot", "none",
            "--format", "npz", "-q"]  # fmt: skip
    saves: list[int] = []
    real_save = JobDir.save

    def counting_save(self, unit, arrays, **kw):
        if stop_after is not None and len(saves) == stop_after:
            raise KeyboardInterrupt
        saves.append(unit)
        return real_save(self, unit, arrays, **kw)

    monkeypatch.setattr(JobDir, "save", counting_save)
    stop_after = None
    assert main([*base, "--out", str(tmp_path / "whole")]) == 0
    assert saves == [0, 1, 2, 3] and not (tmp_path / "whole" / ".work").exists()
    with np.load(tmp_path / "whole" / "ism.npz") as f:
        whole = f["scores"][0]
    saves.clear()
    stop_after = 2  # killed while scoring the third unit
    assert main([*base, "--out", str(tmp_path / "cut")]) == 130
    assert len(list((tmp_path / "cut" / ".work" / "chunks").glob("*.npz"))) == 2
    saves.clear()
    stop_after = None
    assert main([*base, "--out", str(tmp_path / "cut")]) == 0
    assert saves == [2, 3]  # units 0 and 1 were read back
    with np.load(tmp_path / "cut" / "ism.npz") as f:
        np.testing.assert_array_equal(f["scores"][0], whole)
    assert not (tmp_path / "cut" / ".work").exists()
    # Interrupted again, then rerun with another read-out: everything is recomputed.
    saves.clear()
    stop_after = 1
    assert main([*base, "--out", str(tmp_path / "cut")]) == 130
    saves.clear()
    stop_after = None
    assert main([*base, "--reduce", "mean", "--out", str(tmp_path / "cut")]) == 0
    assert saves == [0, 1, 2, 3]
    start = OR4F5_TSS - 1024
    expected = saturation_mutagenesis(
        model, _genome_onehot(paths["fasta"], start), start=65_400 - start, end=65_430 - start,
        tracks=[1, 2], bins=[31, 32, 33], reduce="mean",
    )  # fmt: skip
    with np.load(tmp_path / "cut" / "ism.npz") as f:
        np.testing.assert_allclose(f["scores"][0], expected.scores, rtol=1e-5, atol=1e-7)
    capsys.readouterr()


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["ism", "--window", "chr1:60,001-60,010"], "not inside"),
        (["ism", "--window", "chr1:65,401-65,410", "--gene", "OR4F5"], "--gtf"),
        (["attribute", "--bins", "70-80"], "out of range"),
        (["attribute", "--tracks", "12"], "out of range"),
    ],
)
def test_bad_input_exits_2_with_one_line(capsys, weights, paths, args, message):
    base = ["--weights", str(weights), "--fasta", paths["fasta"], "--region", "chr1:65,419-65,419",
            "--out", "unused"]  # fmt: skip
    argv = [args[0], *base, *args[1:]]
    if "--tracks" not in argv:
        argv += ["--tracks", "0"]
    code = main(argv)
    err = capsys.readouterr().err.strip().splitlines()
    assert code == 2
    assert len(err) == 1 and message in err[0] and err[0].startswith(f"enformer {args[0]}: error")
    assert not Path("unused").exists()
