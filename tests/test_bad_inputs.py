"""A tester's catalogue of bad inputs, one table row each (issue 12).

Every command-line row runs the real command in-process and states the exit status and a
phrase of the message: a bad input is one line ``enformer CMD: error: ...`` with status 2
(never a traceback), and an input that is odd but usable is processed with a warning or a
documented recovery (status 0), checked on what was written. The API rows do the same for
the Python functions behind the commands.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pytest
import torch

from enformer import Enformer, EnformerConfig
from enformer.cli.main import main, one_line
from enformer.data.genome import Genome
from enformer.demo import nearest_real_base
from enformer.runtime import parse_device
from enformer.inference.predict import predict
from enformer.interpret.attribution import contribution_scores
from enformer.variants.score import score_variants
from enformer.weights import load_pretrained, save_pretrained

from .conftest import randomize_batch_norm, random_onehot

pytestmark = pytest.mark.shared

ALL_N = "chr5:50,000,001-50,001,000"  # the subset genome is N here
REAL = "chr2:500,001-501,000"  # real hg38 sequence
NO_TSS = "no TSS of the GTF's genes in the output window"


_PICKLE_RAN: list[bool] = []


def _pickled_function() -> None:
    _PICKLE_RAN.append(True)


class _Payload:
    """Pickled code: loading it must never call :func:`_pickled_function`."""

    def __reduce__(self):
        return (_pickled_function, ())


@pytest.fixture(scope="module")
def env(shared_data: Path, tmp_path_factory) -> dict[str, str]:
    """Paths the rows refer to as {name}: tiny weights, real data, crafted bad files."""
    root = tmp_path_factory.mktemp("bad")
    torch.manual_seed(0)
    model = Enformer(EnformerConfig.tiny()).eval()  # 2,048 bp in, 64 bins of 16 bp
    randomize_batch_norm(model, seed=1)
    save_pretrained(model, root / "tiny")
    # What `convert --set target_length=-5` used to write.
    save_pretrained(model, root / "negative")
    config = json.loads((root / "negative" / "config.json").read_text())
    (root / "negative" / "config.json").write_text(json.dumps({**config, "target_length": -5}))
    fasta = shared_data / "genome" / "hg38_subset.fa.gz"
    # A checkpoint that pickles code, with pickle protocol 4 (torch says "Unsupported operand").
    torch.save({"stem.0.weight": torch.zeros(2), "x": _Payload()}, root / "evil.pt",
               pickle_protocol=4)  # fmt: skip
    (root / "empty.vcf").write_bytes(b"")
    header = "##fileformat=VCFv4.2\n#CHROM\tPOS\tID\tREF\tALT\tQUAL\tFILTER\tINFO\n"
    (root / "header.vcf").write_text(header)
    # One variant on OR4F5's TSS (chr1:65,419, 1-based) and one 50 kb from any TSS.
    with Genome(fasta) as g:
        at_tss, far = g.fetch("chr1", 65_418, 65_419), g.fetch("chr1", 14_676, 14_677)
    alt = {"A": "C", "C": "G", "G": "T", "T": "A"}
    (root / "genes.vcf").write_text(
        header + f"chr1\t14677\tfar\t{far}\t{alt[far]}\t.\t.\t.\n"
        f"chr1\t65419\ttss\t{at_tss}\t{alt[at_tss]}\t.\t.\t.\n"
    )
    return {
        "tiny": str(root / "tiny"),
        "negative": str(root / "negative"),
        "fasta": str(fasta),
        "gtf": str(shared_data / "annotations" / "gencode_hg38_subset.gtf"),
        "data": str(shared_data / "basenji_tiny_hg38"),
        "sheet5313": str(shared_data / "targets" / "targets_human.txt"),
        "evil": str(root / "evil.pt"),
        "empty_vcf": str(root / "empty.vcf"),
        "header_vcf": str(root / "header.vcf"),
        "genes_vcf": str(root / "genes.vcf"),
        "huge_variant": "chr1:100000:" + "A" * 140_000 + ">T",
    }


# ------------------------------------------------------------------------------ checks


def _warned_mostly_n(tmp: Path, out: str, err: str) -> None:
    summary = json.loads(out)
    assert any("N" in w and "little or no" in w for w in summary["warnings"]), summary


def _not_warned(tmp: Path, out: str, err: str) -> None:
    summary = json.loads(out)
    assert "warnings" not in summary and summary.get("mostly_n_windows", 0) == 0, summary


def _every_variant_accounted_for(tmp: Path, out: str, err: str) -> None:
    summary = json.loads(out)
    assert summary["variants_scored"] == 1 and summary["variants_skipped"] == 1, summary
    skipped = pd.read_csv(tmp / "g.skipped.tsv", sep="\t")
    assert list(skipped["id"]) == ["far"] and list(skipped["reason"]) == [NO_TSS]
    scores = pd.read_csv(tmp / "g.tsv", sep="\t", comment="#")
    assert set(scores["id"]) == {"tss"} and "OR4F5" in set(scores["gene_name"])


def _empty_outputs(tmp: Path, out: str, err: str) -> None:
    summary = json.loads(out)
    assert summary["variants_scored"] == 0 and summary["rows"] == 0
    assert (tmp / "h.tsv").is_file()


def _no_skip_suggested(tmp: Path, out: str, err: str) -> None:
    assert "skip" not in err


def _nothing_written(tmp: Path, out: str, err: str) -> None:
    assert not (tmp / "c" / "config.json").exists()
    assert _PICKLE_RAN == []


@dataclass(frozen=True)
class Row:
    """One catalogue entry: arguments ({name} from env, {tmp} the test's folder), status,
    a phrase of the error line (status 2) or of stdout+stderr (status 0), extra checks."""

    entry: str
    argv: tuple[str, ...]
    code: int
    phrase: str
    check: Callable[[Path, str, str], None] | None = None


def _predict(*extra: str, weights: str = "{tiny}") -> tuple[str, ...]:
    return ("predict", "--weights", weights, "--fasta", "{fasta}", "--tracks", "0",
            "--format", "h5", "--out", "{tmp}/p", *extra)  # fmt: skip


def _score(*extra: str) -> tuple[str, ...]:
    return ("score", "--weights", "{tiny}", "--fasta", "{fasta}", *extra)


def _attribute(*extra: str) -> tuple[str, ...]:
    return ("attribute", "--weights", "{tiny}", "--fasta", "{fasta}", "--tracks", "0",
            "--plot", "none", "--out", "{tmp}/a", *extra)  # fmt: skip


def _ism(*extra: str) -> tuple[str, ...]:
    return ("ism", "--weights", "{tiny}", "--fasta", "{fasta}", "--tracks", "0", "--plot",
            "none", "--region", REAL, "--window", "chr2:500,401-500,410", "--out", "{tmp}/i",
            *extra)  # fmt: skip


def _evaluate(*extra: str) -> tuple[str, ...]:
    return ("evaluate", "--weights", "{tiny}", "--data", "{data}", "--max-batches", "1", *extra)


SHIFT = "shift 1000000 bp is too large: shifts may be at most ±8 bp"
DEVICE = "--device: unknown device 'tpu9'; use cpu"

ROWS = [
    # 2. score --genes: variants without a TSS in their output window
    Row("2 score --genes, variant far from every TSS: skipped with a reason, counted",
        _score("--vcf", "{genes_vcf}", "--genes", "{gtf}", "--out", "{tmp}/g.tsv", "--json"),
        0, "", _every_variant_accounted_for),
    # 3. shifts bounded to half a bin in every command taking --shifts
    Row("3 predict --shifts 1000000", _predict("--region", REAL, "--shifts", "1000000"), 2,
        SHIFT),
    Row("3 score --shifts 1000000",
        _score("--variant", "chr1:14677:G>A", "--out", "{tmp}/s.tsv", "--shifts", "1000000"),
        2, SHIFT),
    Row("3 attribute --shifts 1000000", _attribute("--region", REAL, "--shifts", "1000000"),
        2, SHIFT),
    Row("3 predict --shifts -9,0 (one past half a 16-bp bin)",
        _predict("--region", REAL, "--shifts", "-9,0"), 2, "shift -9 bp is too large"),
    # 4. demo in an all-N region
    Row("4 demo --region in N", ("demo", "--fasta", "{fasta}", "--region", ALL_N, "--out",
                                 "{tmp}/d"), 2, "is 100% N in hg38_subset.fa.gz"),
    # 6. all-N windows are reported; a real window is not
    Row("6 predict an all-N region: warning in the summary",
        _predict("--region", ALL_N, "--json"), 0, "", _warned_mostly_n),
    Row("6 predict a real region: no N warning", _predict("--region", REAL, "--json"), 0, "",
        _not_warned),
    Row("6 attribute an all-N region: warning in the summary",
        _attribute("--region", "chr5:50,000,001-50,000,100", "--json"), 0, "",
        _warned_mostly_n),
    # 7. wrong-size sheet, invalid config values, empty VCF
    Row("7 evaluate --weights mini --targets with 5,313 tracks for its 74-track head",
        ("evaluate", "--weights", "mini", "--data", "{data}", "--max-batches", "1", "--pool",
         "4", "--targets", "{sheet5313}"), 2,
        "has 5313 tracks but head 'human' outputs 74; pass the sheet"),
    Row("7 convert --set target_length=-5",
        ("convert", "{tiny}", "{tmp}/c", "--set", "target_length=-5"), 2,
        "EnformerConfig.target_length must be an integer >= 1, got -5", _nothing_written),
    Row("7 convert --set heads={\"human\": 0}",
        ("convert", "{tiny}", "{tmp}/c", "--set", 'heads={{"human": 0}}'), 2,
        "EnformerConfig.heads['human'] must be a number of tracks >= 1", _nothing_written),
    Row("7 score a 0-byte VCF",
        _score("--vcf", "{empty_vcf}", "--out", "{tmp}/e.tsv"), 2, "is empty: not a VCF"),
    Row("7 score a VCF with a header and no records: empty outputs",
        _score("--vcf", "{header_vcf}", "--out", "{tmp}/h.tsv", "--json"), 0, "",
        _empty_outputs),
    # 8. devices: one check for every command
    Row("8 predict --device tpu9", _predict("--region", REAL, "--device", "tpu9"), 2, DEVICE),
    Row("8 score --device tpu9",
        _score("--variant", "chr1:14677:G>A", "--out", "{tmp}/s.tsv", "--device", "tpu9"), 2,
        DEVICE),
    Row("8 ism --device tpu9", _ism("--device", "tpu9"), 2, DEVICE),
    Row("8 attribute --device tpu9", _attribute("--region", REAL, "--device", "tpu9"), 2,
        DEVICE),
    Row("8 evaluate --device tpu9", _evaluate("--device", "tpu9"), 2, DEVICE),
    Row("8 predict --device cuda:99", _predict("--region", REAL, "--device", "cuda:99"), 2,
        "--device: cuda:99 requested but"),
    # 9. messages
    Row("9 score --variant with a 140-kb REF: a short line",
        _score("--variant", "{huge_variant}", "--out", "{tmp}/v.tsv"), 2, "(139,980 more)"),
    Row("9 weights that pickle code",
        ("predict", "--weights", "{evil}", "--fasta", "{fasta}", "--region", REAL, "--tracks",
         "0", "--out", "{tmp}/p"), 2,
        "contains pickled code (tests.test_bad_inputs._pickled_function)",
        _nothing_written),  # fmt: skip
    Row("9 attribute --variant with a REF mismatch suggests an option it has",
        _attribute("--variant", "chr1:14677:A>G"), 2, "pass --on-ref-mismatch flip",
        _no_skip_suggested),
    Row("9 evaluate --batch-size -2", _evaluate("--batch-size", "-2"), 2,
        "--batch-size must be a positive integer, got -2"),
    Row("9 predict with a checkpoint saying target_length=-5 (was '__len__() should return "
        ">= 0')", _predict("--region", REAL, weights="{negative}"), 2,
        "EnformerConfig.target_length must be an integer >= 1, got -5"),
]  # fmt: skip


@pytest.mark.parametrize("row", ROWS, ids=[r.entry for r in ROWS])
def test_catalogue_row(row: Row, env, tmp_path, capsys):
    argv = [a.format(**env, tmp=tmp_path) for a in row.argv]
    code = main([*argv, "-q"])
    out, err = capsys.readouterr()
    assert code == row.code, (out, err)
    assert "Traceback" not in err
    if row.code == 2:
        lines = [line for line in err.splitlines() if line.strip()]
        assert len(lines) == 1, err
        assert lines[0].startswith(f"enformer {argv[0]}: error: "), lines[0]
        assert row.phrase in lines[0], lines[0]
        assert len(lines[0]) < 500
    else:
        assert row.phrase in out + err
    if row.check is not None:
        row.check(tmp_path, out, err)


def test_header_only_vcf_warns(env, tmp_path, caplog):
    with caplog.at_level(logging.WARNING, logger="enformer"):
        code = main(["score", "-q", "--weights", env["tiny"], "--fasta", env["fasta"],
                     "--vcf", env["header_vcf"], "--out", str(tmp_path / "h.tsv")])  # fmt: skip
    assert code == 0
    assert "has a header but no variant records" in caplog.text


# ------------------------------------------------------------------------------ API rows


@pytest.fixture(scope="module")
def tiny(env) -> Enformer:
    return load_pretrained(env["tiny"])


def _onehot(tweak: Callable[[torch.Tensor], None] | None = None, width: int = 4) -> torch.Tensor:
    x = random_onehot(1, 2048, seed=3)
    if width != 4:
        x = torch.zeros(1, 2048, width)
    if tweak is not None:
        tweak(x)
    return x


def _set(index: tuple, value: float) -> Callable[[torch.Tensor], None]:
    def tweak(x: torch.Tensor) -> None:
        x[index] = value

    return tweak


API_ROWS = [
    ("6 predict: NaN in the one-hot", lambda m: predict(m, _onehot(_set((0, 5, 0), np.nan)),
                                                        progress=False), "NaN or infinite"),
    ("6 predict: inf in the one-hot", lambda m: predict(m, _onehot(_set((0, 7, 2), np.inf)),
                                                        progress=False), "(first at (0, 7))"),
    ("6 predict: a value of 2", lambda m: predict(m, _onehot(_set((0, 9, 1), 2.0)),
                                                  progress=False), "must lie in 0..1"),
    ("6 predict: a row holding two bases",
     lambda m: predict(m, _onehot(lambda x: x[0, 11].fill_(1.0)), progress=False),
     "the row at (0, 11) sums to 4"),
    ("6 predict: last dimension 5", lambda m: predict(m, _onehot(width=5), progress=False),
     "(N, L, 4)"),
    ("3 predict: shift past half a bin", lambda m: predict(m, _onehot(), shifts=(0, 9),
                                                           progress=False), "at most ±8 bp"),
    ("3 contribution_scores: shift past half a bin",
     lambda m: contribution_scores(m, _onehot(), [0], shifts=(100,)), "at most ±8 bp"),
    ("7 EnformerConfig(target_length=-5)", lambda m: EnformerConfig.tiny(target_length=-5),
     "target_length must be an integer >= 1"),
    ("7 EnformerConfig(heads={'human': 0})", lambda m: EnformerConfig.tiny(heads={"human": 0}),
     "heads['human'] must be a number of tracks >= 1"),
    ("7 EnformerConfig(sequence_length not a multiple of the bin)",
     lambda m: EnformerConfig.tiny(sequence_length=2056), "multiple of the bin size"),
    ("7 EnformerConfig(dropout_rate=1.5)", lambda m: EnformerConfig.tiny(dropout_rate=1.5),
     "dropout_rate must lie in [0, 1)"),
    ("8 parse_device('tpu9')", lambda m: parse_device("tpu9"), "unknown device 'tpu9'"),
    ("8 predict(device='tpu9')", lambda m: predict(m, _onehot(), device="tpu9", progress=False),
     "unknown device 'tpu9'"),
]  # fmt: skip


@pytest.mark.parametrize(("entry", "call", "phrase"), API_ROWS, ids=[r[0] for r in API_ROWS])
def test_api_row(entry, call, phrase, tiny):
    with pytest.raises(ValueError) as info:
        call(tiny)
    assert phrase in str(info.value)


def test_api_valid_inputs_still_pass(tiny):
    """The checks refuse only what is wrong: soft encodings, N rows, bool and ±8 bp pass."""
    x = _onehot()
    as_bool = predict(tiny, x.bool(), progress=False).values["human"]
    np.testing.assert_array_equal(as_bool, predict(tiny, x, progress=False).values["human"])
    x[0, :10] = 0.25  # soft N
    x[0, 10:20] = 0.0  # hard N
    soft = predict(tiny, x, shifts=(-8, 0, 8), progress=False).values["human"]
    assert np.isfinite(soft).all() and soft.shape == as_bool.shape
    assert parse_device("cpu") == torch.device("cpu") and parse_device(None) is None


def test_mostly_n_input_is_reported(tiny, caplog):
    x = torch.cat([random_onehot(1, 2048, seed=1), torch.zeros(1, 2048, 4)])
    x[0, :900] = 0  # 44% N: not reported
    with caplog.at_level(logging.WARNING, logger="enformer"):
        p = predict(tiny, x, progress=False)
    np.testing.assert_allclose(p.n_fraction, [900 / 2048, 1.0])
    assert "1 of 2 input window(s) are more than 50% N: input 1 (100% N)" in caplog.text


def test_score_variants_shift_bound(tiny, env):
    with pytest.raises(ValueError, match="at most ±8 bp"):
        score_variants(tiny, ["chr1:14677:G>A"], env["fasta"], shifts=(1_000_000,))


class _FakeGenome:
    def __init__(self, seq: str) -> None:
        self.seq = seq

    def fetch(self, chrom: str, start: int, end: int) -> str:
        return self.seq[max(0, start) : end]


def test_demo_example_snv_moves_to_the_nearest_base_or_refuses():
    seq = "A" * 1000 + "N" * 31 + "C" * 1000 + "N" * 500  # bases at 0-999 and 1031-2030
    g = _FakeGenome(seq)
    assert nearest_real_base(g, "c", 500, "r") == 500  # a base: stays
    assert nearest_real_base(g, "c", 1010, "r") == 999  # 11 bp upstream beats 21 downstream
    assert nearest_real_base(g, "c", 1025, "r") == 1031  # 6 bp downstream beats 26 upstream
    assert nearest_real_base(g, "c", 1015, "r") == 999  # 16 bp either way: upstream wins
    with pytest.raises(ValueError, match="only N within 100 bp"):
        nearest_real_base(g, "c", 2300, "r")


# ------------------------------------------------------------------------------ the CLI itself


def test_long_messages_are_cut_to_one_short_line():
    text = "bad allele " + "A" * 140_000 + "\nsecond line"
    line = one_line(text)
    assert "\n" not in line and len(line) < 450 and "characters cut" in line
    assert line.startswith("bad allele AAA") and line.endswith("second line")


def test_unexpected_errors_keep_their_traceback(env, monkeypatch, capsys):
    """A bug is not dressed up as bad input: no status 2, the exception propagates."""
    import enformer.cli.info as info

    def broken(args):
        raise RuntimeError("a bug")

    monkeypatch.setattr(info, "run", broken)
    for quiet in ([], ["-q"]):
        with pytest.raises(RuntimeError, match="a bug"):
            main(["info", "--weights", env["tiny"], *quiet])
    assert "error:" not in capsys.readouterr().err
