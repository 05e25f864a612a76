"""``enformer predict``: files, their contents, resuming, errors and two processes."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import h5py
import numpy as np
import pyBigWig
import pytest
import torch

from enformer import Enformer, EnformerConfig
from enformer.cli.main import main
from enformer.data.genome import Genome
from enformer.data.sequence import one_hot, random_sequence
from enformer.inference import predict
from enformer.io.jobdir import JobDir
from enformer.weights import load_pretrained, save_pretrained

from .conftest import randomize_batch_norm

# Tiny human head: 0<->5 and 1<->2 strand-paired.
PAIRS = [5, 2, 1, 3, 4, 0, 6, 7, 8, 9]
IDS = ["CNhs1+", "CNhs2+", "CNhs2-", "ENCFF003", "ENCFF004", "CNhs1-", "E6", "E7", "E8", "E9"]
DESC = [
    "CAGE:a",
    "CAGE:b",
    "CAGE:b",
    "DNASE:c",
    "DNASE:d",
    "CAGE:a",
    "CHIP:e",
    "CHIP:f",
    "ATAC:g",
    "DNASE:h",
]


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


@pytest.fixture(scope="module")
def sheet_path(tmp_path_factory) -> Path:
    path = tmp_path_factory.mktemp("sheet") / "targets_human.txt"
    rows = ["\tidentifier\tfile\tclip\tclip_soft\tscale\tsum_stat\tstrand_pair\tdescription"]
    rows += [f"{i}\t{IDS[i]}\tf.bw\t384\t64\t1.0\tsum\t{PAIRS[i]}\t{DESC[i]}" for i in range(10)]
    path.write_text("\n".join(rows) + "\n")
    return path


@pytest.fixture(scope="module")
def mini_fasta(tmp_path_factory, genome) -> Path:
    """Two short chromosomes of real sequence, chrB first; lengths not multiples of a bin."""
    path = tmp_path_factory.mktemp("mini") / "mini.fa"
    seqs = {
        "chrB": genome.fetch("chr2", 200_000, 201_000),
        "chrA": genome.fetch("chr1", 100_000, 103_500),
    }
    with open(path, "w") as fh:
        for name, seq in seqs.items():
            fh.write(f">{name}\n")
            fh.writelines(seq[i : i + 60] + "\n" for i in range(0, len(seq), 60))
    return path


def run_cli(argv: list[str], capsys) -> tuple[int, dict | None, str]:
    code = main(["--json", "--quiet", *argv])
    captured = capsys.readouterr()
    out = captured.out.strip()
    return code, (json.loads(out) if out else None), captured.err


def forward_batch(model, x: np.ndarray) -> np.ndarray:
    with torch.no_grad():
        return model(torch.from_numpy(x))["human"].numpy()


def direct(model, genome, chrom, start, end) -> np.ndarray:
    with torch.no_grad():
        x = torch.from_numpy(one_hot(genome.fetch(chrom, start, end)))[None]
        return model(x)["human"][0].numpy()


# ------------------------------------------------------------------------------ BigWig


def test_bigwig_values_at_real_coordinates_and_tile_boundaries(
    weights, model, fasta, genome, tmp_path, capsys
):
    out = tmp_path / "out"
    code, summary, err = run_cli(
        [
            "predict",
            "--weights",
            str(weights),
            "--fasta",
            str(fasta),
            "--region",
            "chr1:200,001-203,500",
            "--tracks",
            "0,3",
            "--out",
            str(out),
            "--batch-size",
            "3",
        ],
        capsys,
    )
    assert code == 0, err
    assert summary["units"] == 4 and summary["computed"] == 4
    files = summary["files"]
    assert [(f["head"], f["track_index"]) for f in files] == [("human", 0), ("human", 3)]
    assert all(f["regions"] == ["chr1:200,001-203,500"] for f in files)
    assert sorted(p.name for p in out.iterdir()) == [
        "enformer_predict.json",
        "human_track0.bw",
        "human_track3.bw",
    ]  # no work directory, no temporary files left

    # What the model says for each tile window: tile k covers bins from 200,000 + 1,024 k.
    tiles = [
        direct(model, genome, "chr1", 200_000 + 1024 * k - 512, 200_000 + 1024 * k + 1536)
        for k in range(4)
    ]
    want = np.concatenate(tiles)[: int(np.ceil(3500 / 16))]  # (219, 10)
    for f in files:
        with pyBigWig.open(f["path"]) as bw:
            assert list(bw.chroms().items()) == list(genome.chrom_sizes.items())
            entries = bw.intervals("chr1")
            starts = np.array([e[0] for e in entries])
            ends = np.array([e[1] for e in entries])
            values = np.array([e[2] for e in entries], dtype=np.float32)
            assert np.array_equal(starts, 200_000 + 16 * np.arange(219))
            assert np.array_equal(ends, starts + 16)
            np.testing.assert_allclose(values, want[:, f["track_index"]], rtol=1e-5, atol=1e-6)
            # Around the first tile boundary (201,024), base by base.
            per_base = np.array(bw.values("chr1", 201_000, 201_050), dtype=np.float32)
            expect = np.repeat(want[62:66, f["track_index"]], 16)[8 : 8 + 50]
            np.testing.assert_allclose(per_base, expect, rtol=1e-5, atol=1e-6)
            assert bw.intervals("chr2") is None
    settings = json.loads((out / "enformer_predict.json").read_text())
    assert settings["settings"]["geometry"] == {
        "input_length": 2048,
        "bin_size": 16,
        "n_bins": 64,
        "offset": 512,
    }
    assert settings["files"] == files


def test_whole_chromosomes_with_rc_and_a_track_sheet(
    weights, model, mini_fasta, sheet_path, tmp_path, capsys
):
    out = tmp_path / "out"
    code, summary, err = run_cli(
        [
            "predict",
            "--weights",
            str(weights),
            "--fasta",
            str(mini_fasta),
            "--chromosomes",
            "chrA,chrB",
            "--tracks",
            "CNhs1-,assay:DNASE",
            "--targets",
            str(sheet_path),
            "--rc",
            "--shifts",
            "-1,0,1",
            "--out",
            str(out),
        ],
        capsys,
    )
    assert code == 0, err
    files = summary["files"]
    assert [(f["track_index"], f["track_identifier"]) for f in files] == [
        (5, "CNhs1-"),
        (3, "ENCFF003"),
        (4, "ENCFF004"),
        (9, "E9"),
    ]
    assert Path(files[0]["path"]).name == "human_track5_CNhs1-.bw"
    # The manual average of 3 shifts x (forward, reverse complement with strands swapped).
    mini = Genome(mini_fasta, warn_padding=False)
    want = {}
    for chrom, size in (("chrA", 3500), ("chrB", 1000)):
        tiles = []
        for k in range(int(np.ceil(size / 1024))):
            ws = 1024 * k - 512  # tile k's window; its bins start at 1,024 k
            x = np.stack([one_hot(mini.fetch(chrom, ws + s, ws + s + 2048)) for s in (-1, 0, 1)])
            fwd = forward_batch(model, x)
            rev = forward_batch(model, np.ascontiguousarray(x[:, ::-1, ::-1]))[:, ::-1][..., PAIRS]
            tiles.append((fwd.sum(0) + rev.sum(0)) / 6)
        want[chrom] = np.concatenate(tiles)[: int(np.ceil(size / 16))]
    for f in files:
        with pyBigWig.open(f["path"]) as bw:
            assert list(bw.chroms().items()) == [("chrB", 1000), ("chrA", 3500)]  # FASTA order
            for chrom, size in (("chrA", 3500), ("chrB", 1000)):
                entries = bw.intervals(chrom)
                assert entries[0][0] == 0 and entries[-1][1] == size  # last bin clipped
                assert entries[-1][1] - entries[-1][0] == size % 16 or size % 16 == 0
                got = np.array([e[2] for e in entries], dtype=np.float32)
                np.testing.assert_allclose(
                    got, want[chrom][:, f["track_index"]], rtol=1e-5, atol=1e-6
                )
    mini.close()


# ------------------------------------------------------------------------------ arrays


def test_h5_and_npz_hold_values_and_coordinates(
    weights, model, fasta, genome, sheet_path, tmp_path, capsys
):
    bed = tmp_path / "r.bed"
    bed.write_text("chr2\t300000\t301500\tfirst\nchr1\t150007\t150100\tsecond\n")
    results = {}
    for fmt in ("h5", "npz"):
        out = tmp_path / fmt
        code, summary, err = run_cli(
            [
                "predict",
                "--weights",
                str(weights),
                "--fasta",
                str(fasta),
                "--bed",
                str(bed),
                "--tracks",
                "1,8",
                "--targets",
                str(sheet_path),
                "--format",
                fmt,
                "--out",
                str(out),
            ],
            capsys,
        )
        assert code == 0, err
        (entry,) = summary["files"]
        assert entry["format"] == fmt and Path(entry["path"]).exists()
        assert entry["tracks"] == {
            "human": [{"index": 1, "identifier": "CNhs2+"}, {"index": 8, "identifier": "E8"}]
        }
        assert entry["regions"] == ["chr2:300,001-301,500", "chr1:150,008-150,100"]
        if fmt == "h5":
            with h5py.File(entry["path"]) as f:
                results[fmt] = {
                    "values": f["human/values"][:],
                    "chrom": [c.decode() for c in f["bins/chrom"][:]],
                    "start": f["bins/start"][:],
                    "end": f["bins/end"][:],
                    "ids": [c.decode() for c in f["human/track_identifier"][:]],
                    "index": f["human/track_index"][:],
                    "first_row": f["regions/first_row"][:],
                }
        else:
            with np.load(entry["path"]) as f:
                results[fmt] = {
                    "values": f["human/values"],
                    "chrom": f["bins/chrom"].tolist(),
                    "start": f["bins/start"],
                    "end": f["bins/end"],
                    "ids": f["human/track_identifier"].tolist(),
                    "index": f["human/track_index"],
                    "first_row": f["regions/first_row"],
                }
    h5, npz = results["h5"], results["npz"]
    for key in h5:
        if isinstance(h5[key], np.ndarray):
            np.testing.assert_array_equal(h5[key], npz[key])
        else:
            assert h5[key] == npz[key]
    n1 = int(np.ceil(1500 / 16))
    n2 = int(np.ceil(93 / 16))
    assert h5["values"].shape == (n1 + n2, 2) and list(h5["first_row"]) == [0, n1]
    assert h5["chrom"] == ["chr2"] * n1 + ["chr1"] * n2
    assert np.array_equal(h5["start"][:n1], 300_000 + 16 * np.arange(n1))
    assert np.array_equal(h5["start"][n1:], 150_007 + 16 * np.arange(n2))  # start-aligned
    assert np.array_equal(h5["end"], h5["start"] + 16)
    assert h5["ids"] == ["CNhs2+", "E8"] and list(h5["index"]) == [1, 8]
    first = np.concatenate(
        [
            direct(model, genome, "chr2", 300_000 + 1024 * k - 512, 300_000 + 1024 * k + 1536)
            for k in range(2)
        ]
    )[:n1]
    second = direct(model, genome, "chr1", 150_007 - 512, 150_007 + 1536)[:n2]
    want = np.concatenate([first, second])[:, [1, 8]]
    np.testing.assert_allclose(h5["values"], want, rtol=1e-5, atol=1e-6)


def test_sequences_write_arrays_only(weights, model, tmp_path, capsys):
    seqs = {f"s{i}": random_sequence(2048, seed=i) for i in range(3)}
    fa = tmp_path / "seqs.fa"
    fa.write_text("".join(f">{k} some description\n{v}\n" for k, v in seqs.items()))
    out = tmp_path / "out"
    code, summary, err = run_cli(
        [
            "predict",
            "--weights",
            str(weights),
            "--sequences",
            str(fa),
            "--out",
            str(out),
            "--rc",
            "--batch-size",
            "4",
        ],
        capsys,
    )
    assert code == 0, err
    (entry,) = summary["files"]
    assert entry["format"] == "h5" and entry["regions"] == ["s0", "s1", "s2"]
    with h5py.File(entry["path"]) as f:
        values = f["human/values"][:]
        assert [n.decode() for n in f["names"][:]] == ["s0", "s1", "s2"]
        assert f["bins/start"][0] == 512 and f.attrs["layout"] == "sequences"
    want = predict(model, list(seqs.values()), head="human", rc=True, progress=False)
    np.testing.assert_allclose(values, want.values["human"], rtol=1e-5, atol=1e-6)

    code, summary, err = run_cli(
        [
            "predict",
            "--weights",
            str(weights),
            "--sequences",
            str(fa),
            "--out",
            str(out),
            "--format",
            "bigwig",
            "--tracks",
            "0",
        ],
        capsys,
    )
    assert code == 2 and "no genomic coordinates" in err and "h5" in err


# ------------------------------------------------------------------------------ resuming


def _bigwig_entries(out: Path) -> dict[str, list]:
    result = {}
    for path in sorted(out.glob("*.bw")):
        with pyBigWig.open(str(path)) as bw:
            result[path.name] = [bw.intervals(c) for c in bw.chroms()]
    return result


def test_interrupted_run_resumes_to_the_same_files(weights, fasta, tmp_path, capsys, monkeypatch):
    argv = [
        "predict",
        "--weights",
        str(weights),
        "--fasta",
        str(fasta),
        "--region",
        "chr2:400,001-406,000",
        "--region",
        "chr1:600,001-601,000",
        "--tracks",
        "2,7",
        "--shifts",
        "0,1",
        "--batch-size",
        "4",
    ]
    whole = tmp_path / "whole"
    code, reference, err = run_cli([*argv, "--out", str(whole)], capsys)
    assert code == 0, err
    assert reference["units"] == 7

    # Kill the run after 4 tiles.
    out = tmp_path / "resumed"
    saved = {"n": 0}
    original = JobDir.save

    def dying_save(self, unit, arrays, **kwargs):
        if saved["n"] == 4:
            raise RuntimeError("killed")
        saved["n"] += 1
        original(self, unit, arrays, **kwargs)

    monkeypatch.setattr(JobDir, "save", dying_save)
    with pytest.raises(RuntimeError, match="killed"):
        main(["--quiet", *argv, "--out", str(out)])
    monkeypatch.setattr(JobDir, "save", original)
    capsys.readouterr()
    assert not list(out.glob("*.bw")) and not (out / "enformer_predict.json").exists()
    chunks = sorted(p.name for p in (out / ".work" / "chunks").iterdir())
    assert len(chunks) == 4 and all(not c.startswith(".") for c in chunks)

    # Restart: the same command finishes the job from the 4 saved tiles.
    code, summary, err = run_cli([*argv, "--out", str(out)], capsys)
    assert code == 0, err
    assert (summary["reused"], summary["computed"]) == (4, 3)
    assert not (out / ".work").exists()
    assert _bigwig_entries(out) == _bigwig_entries(whole)
    for name in ("human_track2.bw", "human_track7.bw"):
        assert (out / name).read_bytes() == (whole / name).read_bytes()


def test_changed_settings_discard_stale_chunks(
    weights, fasta, tmp_path, capsys, monkeypatch, caplog
):
    out = tmp_path / "out"
    argv = [
        "predict",
        "--weights",
        str(weights),
        "--fasta",
        str(fasta),
        "--region",
        "chr2:400,001-404,000",
        "--tracks",
        "2",
        "--out",
        str(out),
    ]

    original = JobDir.save

    def save_then_die(self, unit, arrays, **kwargs):
        original(self, unit, arrays, **kwargs)
        raise RuntimeError("killed")

    monkeypatch.setattr(JobDir, "save", save_then_die)
    with pytest.raises(RuntimeError):
        main(["--quiet", *argv])
    monkeypatch.setattr(JobDir, "save", original)
    assert len(list((out / ".work" / "chunks").iterdir())) == 1
    code, summary, err = run_cli([*argv, "--rc"], capsys)
    assert code == 0, err
    assert (summary["reused"], summary["computed"]) == (0, 4)
    assert "other settings" in caplog.text


def test_failed_assembly_leaves_no_partial_file(weights, fasta, tmp_path, capsys, monkeypatch):
    out = tmp_path / "out"
    argv = [
        "predict",
        "--weights",
        str(weights),
        "--fasta",
        str(fasta),
        "--region",
        "chr2:400,001-404,000",
        "--tracks",
        "2,3",
        "--format",
        "npz",
        "--out",
        str(out),
    ]
    # Leftovers without a manifest (a crash before it was written) are discarded.
    work = out / ".work" / "chunks"
    work.mkdir(parents=True)
    (work / ".000000001.abc.tmp").write_bytes(b"half a chunk")
    loads = {"n": 0}
    original = JobDir.load

    def dying_load(self, unit):
        loads["n"] += 1
        if loads["n"] == 3:
            raise RuntimeError("disk full")
        return original(self, unit)

    monkeypatch.setattr(JobDir, "load", dying_load)
    with pytest.raises(RuntimeError, match="disk full"):
        main(["--quiet", *argv])
    monkeypatch.setattr(JobDir, "load", original)
    assert sorted(p.name for p in out.iterdir()) == [".work"]  # no final, no temporary file
    code, summary, err = run_cli(argv, capsys)
    assert code == 0, err
    assert (summary["reused"], summary["computed"]) == (4, 0)
    with np.load(out / "predictions.npz") as f:
        assert f["human/values"].shape == (250, 2)
    assert sorted(p.name for p in out.iterdir()) == ["enformer_predict.json", "predictions.npz"]


# ------------------------------------------------------------------------------ errors


@pytest.mark.parametrize(
    ("extra", "message"),
    [
        (["--region", "chr1:200-100"], "after end"),
        (["--region", "chr1"], "no coordinates"),
        (["--region", "chrUn_nope:1-100"], "not in hg38_subset"),
        (["--region", "1:200,001-201,000"], "UCSC-style"),
        (["--region", "chr1:300,000,000-300,000,100"], "outside chr1"),
        (["--chromosomes", "chr1,chr99"], "'chr99' is not in"),
        (["--region", "chr1:200,001-201,000", "--tracks", "10"], "out of range"),
        (["--region", "chr1:200,001-201,000", "--tracks", "id:NOPE", "--targets", "SHEET"], "NOPE"),
        (["--region", "chr1:200,001-201,000", "--head", "fly"], "no head 'fly'"),
        (["--region", "chr1:200,001-201,000", "--shifts", "a,b"], "--shifts"),
        (["--bed", "MISSING.bed"], "not found"),
    ],
)
def test_bad_input_exits_2_with_one_clear_line(
    weights, fasta, sheet_path, tmp_path, capsys, extra, message
):
    extra = [str(sheet_path) if e == "SHEET" else e for e in extra]
    extra = [str(tmp_path / e) if e.endswith(".bed") else e for e in extra]
    if "--tracks" not in extra:
        extra += ["--tracks", "0"]
    code = main(
        [
            "predict",
            "--weights",
            str(weights),
            "--fasta",
            str(fasta),
            "--out",
            str(tmp_path / "out"),
            *extra,
        ]
    )
    err = capsys.readouterr().err.strip().splitlines()
    assert code == 2
    assert err[-1].startswith("enformer predict: error:") and message in err[-1], err
    assert not (tmp_path / "out").exists() or not list((tmp_path / "out").glob("*.bw"))


def test_unreadable_fasta_exits_2(weights, tmp_path, capsys):
    bad = tmp_path / "bad.fa"
    bad.write_bytes(b"\x00\x01 not a fasta at all")
    for path, message in ((bad, "does not look like a FASTA"), (tmp_path / "no.fa", "not found")):
        code = main(
            [
                "predict",
                "--weights",
                str(weights),
                "--fasta",
                str(path),
                "--region",
                "chr1:1-100",
                "--tracks",
                "0",
                "--out",
                str(tmp_path / "o"),
            ]
        )
        assert code == 2
        assert message in capsys.readouterr().err


# ------------------------------------------------------------------------------ processes


def test_two_processes_write_the_same_files_as_one(weights, fasta, tmp_path, capsys):
    common = [
        "predict",
        "--weights",
        str(weights),
        "--fasta",
        str(fasta),
        "--region",
        "chr2:700,001-705,000",
        "--region",
        "chr1:800,001-802,000",
        "--tracks",
        "all",
        "--format",
        "h5",
        "--quiet",
    ]
    one = tmp_path / "one"
    assert main([*common, "--out", str(one)]) == 0
    capsys.readouterr()

    two = tmp_path / "two"
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    env.pop("WORLD_SIZE", None)
    cmd = [
        sys.executable,
        "-m",
        "torch.distributed.run",
        "--standalone",
        "--nproc_per_node=2",
        "-m",
        "enformer",
        *common,
        "--out",
        str(two),
        "--json",
    ]
    proc = subprocess.run(cmd, capture_output=True, text=True, timeout=180, env=env)
    assert proc.returncode == 0, proc.stderr[-3000:]
    settings = json.loads((two / "enformer_predict.json").read_text())["settings"]
    assert settings["world_size"] == 2
    assert not (two / ".work").exists()
    with h5py.File(one / "predictions.h5") as a, h5py.File(two / "predictions.h5") as b:
        for key in ("bins/start", "bins/end", "bins/chrom", "regions/first_row"):
            np.testing.assert_array_equal(a[key][:], b[key][:])
        np.testing.assert_allclose(b["human/values"][:], a["human/values"][:], rtol=1e-5, atol=1e-6)
        assert "mouse" not in b and b["human/values"].shape == (313 + 125, 10)
    # Each rank reports its share: 7 tiles in all.
    reports = [json.loads(chunk) for chunk in _json_objects(proc.stdout)]
    assert sorted(r.get("rank", 0) for r in reports) == [0, 1]
    assert sum(r["computed"] for r in reports) == 7


def _json_objects(text: str) -> list[str]:
    """Split concatenated pretty-printed JSON objects (one per process)."""
    objects, depth, start = [], 0, None
    for i, ch in enumerate(text):
        if ch == "{":
            if depth == 0:
                start = i
            depth += 1
        elif ch == "}":
            depth -= 1
            if depth == 0 and start is not None:
                objects.append(text[start : i + 1])
    return objects


def test_chrom_alias_maps_ensembl_names(weights, fasta, tmp_path, capsys):
    out = tmp_path / "out"
    argv = [
        "predict",
        "--weights",
        str(weights),
        "--fasta",
        str(fasta),
        "--region",
        "1:200,001-200,500",
        "--tracks",
        "0",
        "--out",
        str(out),
        "--chrom-alias",
    ]
    code, summary, err = run_cli(argv, capsys)
    assert code == 0, err
    assert summary["files"][0]["regions"] == ["chr1:200,001-200,500"]
    with pyBigWig.open(summary["files"][0]["path"]) as bw:
        assert bw.intervals("chr1")[0][0] == 200_000
