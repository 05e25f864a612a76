"""Long jobs are safe: one run per output, resume trusts only what it can check, nothing that
looks complete unless it is (``enformer predict`` and ``enformer score``)."""

from __future__ import annotations

import contextlib
import io
import json
import logging
import os
import subprocess
import sys
from collections.abc import Iterator
from contextlib import redirect_stderr, redirect_stdout
from pathlib import Path

import numpy as np
import pytest
import torch

import enformer
from enformer import Enformer, EnformerConfig
from enformer.cli.main import main
from enformer.data.genome import Genome
from enformer.inference import outputs as prediction_outputs
from enformer.model.geometry import output_geometry
from enformer.inference.tiling import plan_tiles, tile_sequence, whole_chromosomes
from enformer.io.jobdir import JobDir, shard_units
from enformer.io.jobs import (
    JobLock,
    JobLockedError,
    atomic_path,
    model_fingerprint,
    write_bytes_atomic,
)
from enformer.variants import outputs as score_outputs
from enformer.variants import score as score_module
from enformer.variants.score import write_scores
from enformer.weights import load_pretrained, save_pretrained

from .conftest import randomize_batch_norm

SRC = Path(enformer.__file__).resolve().parents[1]
CHROMS = {"chrA": 2_600, "chrB": 1_900}
# Variants 1-based, far enough apart that each window (512 bp) holds one of them.
POSITIONS = [("chrA", 300), ("chrA", 900), ("chrA", 1_500), ("chrA", 2_100), ("chrB", 300),
             ("chrB", 800), ("chrB", 1_300), ("chrB", 1_600)]  # fmt: skip

class Killed(Exception):
    """Stands for a kill: nothing in the CLI catches it."""


_HOLD = """
import sys, time
from enformer.io.jobs import JobLock
shard = tuple(int(x) for x in sys.argv[2].split("/")) if len(sys.argv) > 2 else None
JobLock(sys.argv[1], shard=shard).acquire()
print("held", flush=True)
time.sleep(600)
"""


# ------------------------------------------------------------------------------ fixtures


@pytest.fixture(scope="module")
def weights(tmp_path_factory) -> Path:
    """A tiny model on 512-bp inputs (16 output bins of 16 bp)."""
    torch.manual_seed(0)
    model = Enformer(EnformerConfig.tiny(sequence_length=512, target_length=16)).eval()
    randomize_batch_norm(model, seed=3)
    path = tmp_path_factory.mktemp("weights") / "tiny"
    save_pretrained(model, path)
    return path


def _bases(seed: int) -> dict[str, str]:
    rng = np.random.default_rng(seed)
    return {c: "".join(rng.choice(list("ACGT"), n)) for c, n in CHROMS.items()}


def write_fasta(path: Path, seqs: dict[str, str]) -> Path:
    """A plain FASTA with 60-base lines (its .fai is the same for equal lengths)."""
    text = "".join(
        f">{name}\n" + "".join(seq[i : i + 60] + "\n" for i in range(0, len(seq), 60))
        for name, seq in seqs.items()
    )
    write_bytes_atomic(path, text.encode())
    return path


@pytest.fixture
def genome_seqs() -> dict[str, str]:
    return _bases(7)


@pytest.fixture
def fasta(tmp_path, genome_seqs) -> Path:
    return write_fasta(tmp_path / "genome" / "mini.fa", genome_seqs)


def write_vcf(path: Path, seqs: dict[str, str], bad_line: int | None = None) -> Path:
    lines = ["##fileformat=VCFv4.2", "#CHROM\tPOS\tID\tREF\tALT\tQUAL\tFILTER\tINFO"]
    for k, (chrom, pos) in enumerate(POSITIONS):
        ref = seqs[chrom][pos - 1]
        alt = "A" if ref != "A" else "C"
        lines.append(f"{chrom}\t{pos}\tv{k}\t{ref}\t{alt}\t.\t.\t.")
        if bad_line is not None and k == bad_line:
            lines.append(f"{chrom}\tnot_a_number\tbad\tA\tC\t.\t.\t.")
    path.write_text("\n".join(lines) + "\n")
    return path


@pytest.fixture
def vcf(tmp_path, genome_seqs) -> Path:
    return write_vcf(tmp_path / "variants.vcf", genome_seqs)


def cli(*argv: object) -> tuple[int, str]:
    """Run the CLI quietly; return the exit status and the last line of stderr."""
    err = io.StringIO()
    with redirect_stderr(err), redirect_stdout(io.StringIO()):
        code = main(["--quiet", *[str(a) for a in argv]])
    lines = err.getvalue().strip().splitlines()
    return code, lines[-1] if lines else ""


def predict_argv(weights: Path, fasta: Path, out: Path, tracks: str = "2,7") -> list[object]:
    return ["predict", "--weights", weights, "--fasta", fasta, "--chromosomes", "chrA,chrB",
            "--tracks", tracks, "--batch-size", "1", "--out", out]  # fmt: skip


def score_argv(weights: Path, fasta: Path, vcf: Path, out: Path, tracks: str) -> list[object]:
    return ["score", "--weights", weights, "--fasta", fasta, "--vcf", vcf, "--tracks", tracks,
            "--stats", "SAD,logSED", "--chunk-size", "2", "--out", out]  # fmt: skip


@contextlib.contextmanager
def holder(directory: Path, shard: str | None = None) -> Iterator[subprocess.Popen]:
    """Another process that holds the run lock of ``directory`` until it is killed (-9)."""
    path = os.pathsep.join([str(SRC), os.environ.get("PYTHONPATH", "")])
    env = {**os.environ, "PYTHONPATH": path}
    args = [sys.executable, "-c", _HOLD, str(directory), *([shard] if shard else [])]
    proc = subprocess.Popen(args, stdout=subprocess.PIPE, text=True, env=env)
    try:
        assert proc.stdout is not None and proc.stdout.readline().strip() == "held"
        yield proc
    finally:
        proc.kill()  # SIGKILL: the operating system releases the lock
        proc.wait()
        if proc.stdout is not None:
            proc.stdout.close()


def kill_after(monkeypatch, cls: type, n: int) -> None:
    """Make ``cls.save`` raise (like a kill) once ``n`` chunks are saved."""
    original = cls.save
    count = {"n": 0}

    def dying(self, *args, **kwargs):
        if count["n"] == n:
            raise Killed
        count["n"] += 1
        return original(self, *args, **kwargs)

    monkeypatch.setattr(cls, "save", dying)


def snapshot(directory: Path) -> dict[str, bytes]:
    return {
        str(p.relative_to(directory)): p.read_bytes()
        for p in sorted(directory.rglob("*"))
        if p.is_file() and p.name != "lock"
    }


# ------------------------------------------------------------------------------ the lock


def test_lock_exclusive_shared_and_released_by_the_os(tmp_path):
    work = tmp_path / "job"
    with holder(work) as proc:
        with pytest.raises(JobLockedError) as info:
            JobLock(work).acquire()
        message = str(info.value)
        assert f"pid {proc.pid} on " in message and "started 20" in message
        assert "wait for it to finish, or choose another output" in message
        with pytest.raises(JobLockedError):
            JobLock(work, shard=(0, 2)).acquire()  # a shard may not join a plain run
    # killed with -9: the next run gets the lock at once
    with JobLock(work) as lock:
        assert lock.held and json.loads(lock.path.read_text())["pid"] == os.getpid()

    with holder(work, "0/3"):
        with JobLock(work, shard=(1, 3)) as other:  # shards of one run cooperate
            assert other.held
        with pytest.raises(JobLockedError, match="shard 1/3"):
            JobLock(work, shard=(0, 3)).acquire()  # the same shard twice
        with pytest.raises(JobLockedError, match=r"in use by shard 1/3 of a run \(pid"):
            JobLock(work).acquire()  # a plain run while a shard is alive
    assert JobLock(work).acquire().held


def test_lock_of_a_failed_start_removes_only_what_it_created(tmp_path):
    (tmp_path / "existing").mkdir()
    lock = JobLock(tmp_path / "existing" / "new" / "job").acquire()
    assert lock.created == tmp_path / "existing" / "new"
    lock.release(discard=True)
    assert sorted(p.name for p in tmp_path.rglob("*")) == ["existing"]


def test_atomic_path_leaves_the_old_file_when_the_writer_fails(tmp_path):
    final = tmp_path / "out.tsv"
    final.write_text("old complete\n")
    with pytest.raises(RuntimeError), atomic_path(final) as tmp:
        tmp.write_text("half of the new")
        raise RuntimeError("killed")
    assert final.read_text() == "old complete\n" and sorted(tmp_path.iterdir()) == [final]


def test_model_fingerprint_is_content_exact(weights):
    a, b = load_pretrained(weights), load_pretrained(weights)
    assert model_fingerprint(a) == model_fingerprint(b)
    name = next(k for k, t in a.state_dict().items() if t.is_floating_point() and t.numel() > 1)
    with torch.no_grad():
        w = b.state_dict()[name].view(-1)
        w[0] = torch.nextafter(w[0], torch.tensor(float("inf")))  # one ulp
        # a swap keeps every sum and sum of squares (the old score fingerprint missed it)
        c = load_pretrained(weights)
        v = c.state_dict()[name].view(-1)
        v[0], v[1] = v[1].clone(), v[0].clone()
        assert v[0] != v[1]
    assert model_fingerprint(b) != model_fingerprint(a)
    assert model_fingerprint(c) != model_fingerprint(a)


# ------------------------------------------------------------------------------ predict


def test_predict_second_run_refused_then_resumes_after_holder_dies(
    weights, fasta, tmp_path, monkeypatch
):
    whole = tmp_path / "whole"
    assert cli(*predict_argv(weights, fasta, whole))[0] == 0

    out = tmp_path / "out"
    kill_after(monkeypatch, JobDir, 5)
    with pytest.raises(Killed):
        cli(*predict_argv(weights, fasta, out))
    monkeypatch.undo()
    before = snapshot(out)
    assert len([k for k in before if k.startswith(".work/chunks/")]) == 5

    with holder(out / ".work") as proc:
        # run B, other settings (track 3 instead of 7): refused, A's chunks untouched
        code, line = cli(*predict_argv(weights, fasta, out, tracks="2,3"))
        assert code == 2
        assert line.startswith("enformer predict: error: output directory")
        assert f"pid {proc.pid} on " in line and "wait for it to finish" in line
        assert snapshot(out) == before
        # the same settings: refused too (this used to die on a vanished temporary file)
        assert cli(*predict_argv(weights, fasta, out))[0] == 2
        assert snapshot(out) == before

    code, _ = cli(*predict_argv(weights, fasta, out))
    assert code == 0
    listing = json.loads((out / "enformer_predict.json").read_text())
    names = sorted(Path(f["path"]).name for f in listing["files"])
    assert names == ["human_track2.bw", "human_track7.bw"]
    assert sorted(p.name for p in out.iterdir()) == ["enformer_predict.json", *names]
    for name in names:
        assert (out / name).read_bytes() == (whole / name).read_bytes()
    # one fingerprint for both engines: exact bytes of the weights
    assert listing["settings"]["model_fingerprint"] == model_fingerprint(load_pretrained(weights))


def test_predict_torchrun_job_refused_on_every_rank(weights, fasta, tmp_path):
    out = tmp_path / "out"
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    env["PYTHONPATH"] = os.pathsep.join([str(SRC), env.get("PYTHONPATH", "")])
    env.pop("WORLD_SIZE", None)
    cmd = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node=2",
           "-m", "enformer", "--quiet", *map(str, predict_argv(weights, fasta, out))]  # fmt: skip
    with holder(out / ".work") as proc:
        run = subprocess.run(cmd, capture_output=True, text=True, timeout=180, env=env)
        assert run.returncode != 0
        refused = [line for line in run.stderr.splitlines() if "is in use by another run" in line]
        # Every rank hears of the refusal; torchrun may stop the second rank before it prints
        # its line (it ends a job's other workers once one exits non-zero), so at least one.
        assert 1 <= len(refused) <= 2 and all(f"pid {proc.pid} " in line for line in refused)
        assert sorted(p.name for p in (out / ".work").iterdir()) == ["lock"]
    # the holder is gone: the same job runs (rank 0 claims the folder for both ranks)
    run = subprocess.run(cmd, capture_output=True, text=True, timeout=180, env=env)
    assert run.returncode == 0, run.stderr[-2000:]
    assert sorted(p.name for p in out.iterdir()) == [
        "enformer_predict.json",
        "human_track2.bw",
        "human_track7.bw",
    ]


def test_predict_replaced_genome_recomputes_affected_tiles(
    weights, fasta, genome_seqs, tmp_path, monkeypatch, caplog
):
    out = tmp_path / "out"
    argv = predict_argv(weights, fasta, out)
    kill_after(monkeypatch, JobDir, 9)
    with pytest.raises(Killed):
        cli(*argv)
    monkeypatch.undo()

    # A new FASTA at the same path, same names, lengths and layout (so the same .fai): three
    # bases of chrA changed, inside the windows of some finished tiles only.
    new = dict(genome_seqs)
    seq = list(new["chrA"])
    for p in (700, 701, 702):
        seq[p] = "A" if seq[p] != "A" else "G"
    new["chrA"] = "".join(seq)
    with Genome(fasta) as g:
        geometry = output_geometry(load_pretrained(weights).config)
        regions = whole_chromosomes(g, ["chrA", "chrB"])
        plan = plan_tiles(regions, geometry, chrom_sizes=g.chrom_sizes)
        old = {t.index: tile_sequence(g, t) for t in plan}
    write_fasta(fasta, new)
    done = JobDir(out / ".work", {}).done()
    with Genome(fasta) as g:
        changed = {t.index for t in plan if tile_sequence(g, t) != old[t.index]}
    stale = changed & done
    assert len(done) == 9 and 0 < len(stale) < len(done)  # some finished tiles, not all

    with caplog.at_level(logging.WARNING, logger="enformer"):
        code, _ = cli(*argv, "--json")
    assert code == 0
    assert f"{len(stale)} finished tile(s)" in caplog.text and "other genome bases" in caplog.text

    fresh = tmp_path / "fresh"
    assert cli(*predict_argv(weights, fasta, fresh))[0] == 0
    for name in ("human_track2.bw", "human_track7.bw"):
        assert (out / name).read_bytes() == (fresh / name).read_bytes()


def test_predict_refuses_a_folder_of_another_runs_outputs_unless_overwrite(
    weights, fasta, tmp_path, caplog
):
    out = tmp_path / "out"
    assert cli(*predict_argv(weights, fasta, out, tracks="2,7"))[0] == 0
    before = snapshot(out)

    code, line = cli(*predict_argv(weights, fasta, out, tracks="4"))
    assert code == 2 and "earlier run with other settings" in line and "--overwrite" in line
    assert snapshot(out) == before and not (out / ".work").exists()  # nothing touched

    # the same settings again: allowed, same files
    assert cli(*predict_argv(weights, fasta, out, tracks="2,7"))[0] == 0
    assert snapshot(out) == before

    with caplog.at_level(logging.WARNING, logger="enformer"):
        assert cli(*predict_argv(weights, fasta, out, tracks="4"), "--overwrite")[0] == 0
    assert "removing 2 file(s) of an earlier run" in caplog.text
    assert sorted(p.name for p in out.iterdir()) == ["enformer_predict.json", "human_track4.bw"]
    listing = json.loads((out / "enformer_predict.json").read_text())
    assert [f["track_index"] for f in listing["files"]] == [4]


def test_predict_removes_outputs_of_an_unfinished_run_with_other_settings(
    weights, fasta, tmp_path, monkeypatch, caplog
):
    out = tmp_path / "out"
    monkeypatch.setattr(prediction_outputs, "_BIGWIG_GROUP", 1)  # one BigWig finished at a time
    original = JobDir.load
    seen: set[int] = set()

    def dying_load(self, unit):
        if unit in seen:  # the second file's pass: die with the first file in place
            raise Killed
        seen.add(unit)
        return original(self, unit)

    monkeypatch.setattr(JobDir, "load", dying_load)
    with pytest.raises(Killed):
        cli(*predict_argv(weights, fasta, out, tracks="2,7"))
    monkeypatch.undo()
    assert sorted(p.name for p in out.iterdir()) == [".work", "human_track2.bw"]  # unlisted

    with caplog.at_level(logging.WARNING, logger="enformer"):
        assert cli(*predict_argv(weights, fasta, out, tracks="4"))[0] == 0
    assert "removing 1 output file(s) of that unfinished run" in caplog.text
    assert sorted(p.name for p in out.iterdir()) == ["enformer_predict.json", "human_track4.bw"]


def test_predict_bad_input_after_claim_leaves_no_new_folder(weights, fasta, tmp_path):
    # A folder holding another run's (unreadable) listing is refused after the claim: the
    # work directory the failed run created is removed again.
    out = tmp_path / "out"
    out.mkdir()
    (out / "enformer_predict.json").write_text("{not json")
    code, line = cli(*predict_argv(weights, fasta, out))
    assert code == 2 and "other settings" in line
    assert sorted(p.name for p in out.iterdir()) == ["enformer_predict.json"]

    fresh = tmp_path / "never" / "out"
    code, line = cli(*predict_argv(weights, fasta, fresh, tracks="99"))
    assert code == 2 and "out of range" in line
    assert not (tmp_path / "never").exists()


# ------------------------------------------------------------------------------ score


def test_score_second_run_refused_then_resumes_byte_identical(
    weights, fasta, vcf, tmp_path, monkeypatch
):
    clean = tmp_path / "clean" / "scores.tsv"
    assert cli(*score_argv(weights, fasta, vcf, clean, "0,1,4"))[0] == 0

    out = tmp_path / "run" / "scores.tsv"
    work = out.with_name("scores.tsv.enformer-work")
    kill_after(monkeypatch, JobDir, 2)
    with pytest.raises(Killed):
        cli(*score_argv(weights, fasta, vcf, out, "0,1,4"))
    monkeypatch.undo()
    before = snapshot(work)
    assert sorted(k for k in before if k.startswith("chunk_")) == [
        "chunk_0000000.npz",
        "chunk_0000001.npz",
    ]
    with holder(work) as proc:
        code, line = cli(*score_argv(weights, fasta, vcf, out, "0,1,5"))
        assert code == 2 and line.startswith(f"enformer score: error: --out {out} is in use")
        assert f"pid {proc.pid} on " in line
        assert snapshot(work) == before and not out.exists()
    code, _ = cli(*score_argv(weights, fasta, vcf, out, "0,1,4"))
    assert code == 0
    assert out.read_bytes() == clean.read_bytes()
    settings = json.loads(out.with_name("scores.settings.json").read_text())
    assert settings["summary"]["resumed_chunks"] == 2 and not work.exists()
    fingerprint = model_fingerprint(load_pretrained(weights))
    assert settings["metadata"]["model"]["fingerprint"] == fingerprint


def test_score_runs_with_their_own_work_dirs_still_exclude_each_other(
    weights, fasta, vcf, tmp_path
):
    out = tmp_path / "scores.tsv"
    argv = [*score_argv(weights, fasta, vcf, out, "0"), "--work-dir", tmp_path / "w2"]
    with JobLock(tmp_path, name=".scores.tsv.lock", transient=True):  # a run using work dir w1
        code, line = cli(*argv)
        assert code == 2 and f"--out {out} is in use by another run (pid {os.getpid()}" in line
        assert sorted(p.name for p in tmp_path.iterdir()) == [".scores.tsv.lock", "genome",
                                                              "variants.vcf"]  # fmt: skip
    assert cli(*argv)[0] == 0
    assert sorted(p.name for p in tmp_path.iterdir()) == [
        "genome",
        "scores.settings.json",
        "scores.skipped.tsv",
        "scores.tsv",
        "variants.vcf",
    ]


def test_score_shards_cooperate_and_plain_runs_wait(weights, fasta, vcf, tmp_path):
    model = load_pretrained(weights)
    options = dict(stats="SAD", tracks=[0, 3], chunk_size=2, progress=False)
    clean = tmp_path / "clean.tsv"
    write_scores(model, vcf, fasta, clean, **options)

    out = tmp_path / "sharded.tsv"
    work = tmp_path / "sharded.tsv.enformer-work"
    with holder(work, "0/2"):  # shard 1 of 2 is alive elsewhere
        summary = write_scores(model, vcf, fasta, out, shard=(1, 2), **options)
        assert summary["chunks_computed"] == 2 and not summary["complete"]
        with pytest.raises(JobLockedError, match="shard 1/2"):
            write_scores(model, vcf, fasta, out, shard=(0, 2), **options)
        with pytest.raises(JobLockedError, match="in use by shard 1/2"):
            write_scores(model, vcf, fasta, out, **options)
        with pytest.raises(ValueError, match="other settings"):  # a shard of another job
            write_scores(model, vcf, fasta, out, shard=(1, 2), **{**options, "tracks": [1]})
        assert not out.exists()
    summary = write_scores(model, vcf, fasta, out, shard=(0, 2), **options)
    assert summary["complete"]
    summary = write_scores(model, vcf, fasta, out, **options)
    assert summary["resumed_chunks"] == 4
    assert out.read_bytes() == clean.read_bytes()


def test_score_replaced_genome_recomputes_affected_chunks(
    weights, fasta, vcf, genome_seqs, tmp_path, monkeypatch, caplog
):
    out = tmp_path / "scores.tsv"
    argv = score_argv(weights, fasta, vcf, out, "0-9")
    kill_after(monkeypatch, JobDir, 3)
    with pytest.raises(Killed):
        cli(*argv)
    monkeypatch.undo()
    # chrA:1,600 lies in the window of v2 (chrA:1,500; chunk 1) and of no other variant.
    new = dict(genome_seqs)
    seq = list(new["chrA"])
    seq[1_599] = "A" if seq[1_599] != "A" else "T"
    new["chrA"] = "".join(seq)
    write_fasta(fasta, new)
    calls: list[int] = []
    original = score_module.score_chunk

    def counting(*args, **kwargs):
        calls.append(1)
        return original(*args, **kwargs)

    monkeypatch.setattr(score_module, "score_chunk", counting)
    with caplog.at_level(logging.WARNING, logger="enformer"):
        assert cli(*argv)[0] == 0
    assert len(calls) == 2  # chunk 1 again and chunk 3 (never finished)
    assert "1 finished chunk(s)" in caplog.text and "other genome bases" in caplog.text
    monkeypatch.undo()
    fresh = tmp_path / "fresh.tsv"
    assert cli(*score_argv(weights, fasta, vcf, fresh, "0-9"))[0] == 0
    assert out.read_bytes() == fresh.read_bytes()


def test_score_changed_vcf_with_same_size_is_not_reused(
    weights, fasta, vcf, genome_seqs, tmp_path, monkeypatch, caplog
):
    out = tmp_path / "scores.tsv"
    argv = score_argv(weights, fasta, vcf, out, "0")
    kill_after(monkeypatch, JobDir, 2)
    with pytest.raises(Killed):
        cli(*argv)
    monkeypatch.undo()
    text = vcf.read_text()
    stat = vcf.stat()
    vcf.write_text(text.replace("\tv0\t", "\tw0\t"))  # same size, other content
    os.utime(vcf, ns=(stat.st_atime_ns, stat.st_mtime_ns))  # and the same time stamp
    with caplog.at_level(logging.WARNING, logger="enformer"):
        assert cli(*argv)[0] == 0
    assert "other settings" in caplog.text
    assert "w0" in out.read_text()


def test_score_bad_input_leaves_nothing(weights, fasta, genome_seqs, tmp_path):
    bad = write_vcf(tmp_path / "bad.vcf", genome_seqs, bad_line=5)  # in the 4th chunk
    out = tmp_path / "new" / "scores.tsv"
    code, line = cli(*score_argv(weights, fasta, bad, out, "0"))
    assert code == 2 and "bad.vcf" in line
    assert not (tmp_path / "new").exists()


def test_score_interrupted_assembly_keeps_no_partial_or_stale_file(
    weights, fasta, vcf, tmp_path, monkeypatch
):
    out = tmp_path / "scores.tsv"
    assert cli(*score_argv(weights, fasta, vcf, out, "0"))[0] == 0
    old = out.read_bytes()

    def dying(*args, **kwargs):
        raise Killed

    monkeypatch.setattr(score_outputs, "skipped_frame", dying)  # after the table is written
    with pytest.raises(Killed):
        cli(*score_argv(weights, fasta, vcf, out, "0,1"))
    monkeypatch.undo()
    assert out.read_bytes() == old  # the earlier complete file, not a torn new one
    assert not out.with_name("scores.settings.json").exists()  # no longer claims to describe it
    assert not [p for p in tmp_path.iterdir() if ".tmp" in p.name]
    assert cli(*score_argv(weights, fasta, vcf, out, "0,1"))[0] == 0
    settings = json.loads(out.with_name("scores.settings.json").read_text())
    assert settings["metadata"]["tracks"] == [0, 1]


# ------------------------------------------------------------------------------ the job directory


def test_job_dir_resumes_starts_over_and_verifies_digests(tmp_path, caplog):
    work = tmp_path / "job"
    job = JobDir(work, {"a": 1}, unit_name="chunk_{:03d}.npz")
    assert job.claim() == set()
    job.save(0, {"x": np.arange(3)}, digest="d0")
    job.save(2, {"x": np.ones((2, 2)), "n": np.array(5)})
    (work / "chunk_001.npz.tmp").write_bytes(b"torn")  # a killed write
    job.release()

    again = JobDir(work, {"a": 1}, unit_name="chunk_{:03d}.npz")
    assert again.claim() == {0, 2}
    assert not (work / "chunk_001.npz.tmp").exists()  # the sole owner swept it
    np.testing.assert_array_equal(again.load(0)["x"], np.arange(3))
    assert again.load(2)["n"].shape == () and int(again.load(2)["n"]) == 5  # 0-d stays 0-d
    assert set(again.load(0)) == {"x"}  # the digest is not part of the arrays
    assert (again.input_digest(0), again.input_digest(2)) == ("d0", None)
    assert again.stale([0, 2], {0: "d0", 2: None}.get) == []
    assert again.stale([0], {0: "other"}.get) == [0]
    again.release()

    # a shard of a job with other settings is refused and deletes nothing
    shard = JobDir(work, {"a": 2}, shard=(0, 2), unit_name="chunk_{:03d}.npz")
    with pytest.raises(ValueError, match="other settings"):
        shard.claim()
    shard.release()
    assert JobDir(work, {"a": 1}, unit_name="chunk_{:03d}.npz").done() == {0, 2}

    other = JobDir(work, {"a": 2}, unit_name="chunk_{:03d}.npz")
    with caplog.at_level(logging.WARNING, logger="enformer"):
        assert other.claim() == set()
    assert "other settings; starting over" in caplog.text
    assert other.done() == set() and other.previous["settings"] == {"a": 1}
    other.remove()
    other.release()
    assert not work.exists()


def test_shard_units_one_rule():
    assert shard_units(range(7), None) == list(range(7))
    assert shard_units(range(7), (1, 3)) == [1, 4]
    assert shard_units([0, 2, 3, 5, 6], (0, 2)) == [0, 2, 6]  # by index, not by position
    parts = [shard_units(range(10), (k, 4)) for k in range(4)]
    assert sorted(u for p in parts for u in p) == list(range(10))
