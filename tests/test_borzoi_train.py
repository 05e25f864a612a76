"""Fine-tuning and evaluating Borzoi / Flashzoi: heads, freezing, LoRA, the two commands."""

from __future__ import annotations

import json
from dataclasses import replace

import numpy as np
import pytest
import torch
import yaml

from enformer.cli.main import main
from enformer.model.borzoi import Borzoi, BorzoiConfig
from enformer.train import add_heads, apply_lora, freeze_trunk, merge_lora, train_last_layers
from enformer.weights import load_pretrained, save_pretrained

LENGTH = 4096


def _tiny(attention: str) -> Borzoi:
    torch.manual_seed(2)
    config = replace(BorzoiConfig.preset("tiny"), sequence_length=LENGTH, attention=attention,
                     kv_heads=1, rotary_dim=8)  # fmt: skip
    return Borzoi(config).eval()


def _x(n: int = 2) -> torch.Tensor:
    g = torch.Generator().manual_seed(1)
    return torch.nn.functional.one_hot(torch.randint(0, 4, (n, LENGTH), generator=g), 4).float()


def _trainable(model: torch.nn.Module) -> set[str]:
    return {n for n, p in model.named_parameters() if p.requires_grad}


@pytest.mark.parametrize("attention", ["relative", "rotary"])
def test_heads_freezing_and_lora(attention):
    model = _tiny(attention)
    with torch.no_grad():
        before = model(_x())["human"]
    add_heads(model, ["k562:3"], seed=0)
    assert model.config.heads == {"human": 24, "mouse": 12, "k562": 3}
    with torch.no_grad():
        out = model(_x())
    assert out["k562"].shape == (2, model.config.output_bins(LENGTH), 3)
    torch.testing.assert_close(out["human"], before, rtol=0, atol=0)  # old heads untouched
    freeze_trunk(model)
    assert _trainable(model) == {f"heads.{h}.{w}" for h in ("human", "mouse", "k562")
                                 for w in ("weight", "bias")}  # fmt: skip
    train_last_layers(model, 1)
    last = len(model.transformer) - 1
    trainable = _trainable(model)
    assert any(n.startswith(f"transformer.{last}.") for n in trainable)
    assert not any(n.startswith("transformer.0.") or n.startswith("tower.") for n in trainable)
    assert any(n.startswith("final.") for n in trainable)
    apply_lora(model, rank=2)
    linears = sum(1 for m in model.modules() if type(m).__name__ == "LoRALinear")
    # Borzoi: q, k, v, out, dense1, dense2; Flashzoi's one Wqkv stands for q, k and v.
    assert linears == len(model.transformer) * (6 if attention == "relative" else 4)
    with torch.no_grad():
        torch.testing.assert_close(model(_x())["human"], before)  # adapters start at zero
        for m in model.modules():
            if type(m).__name__ == "LoRALinear":
                m.lora_B.normal_(0, 0.1)
        adapted = model(_x())["human"]
        merge_lora(model)
        torch.testing.assert_close(model(_x())["human"], adapted, rtol=1e-4, atol=1e-5)
    assert not torch.equal(adapted, before)


def test_finetune_then_evaluate_commands(tmp_path, capsys):
    model = _tiny("rotary")
    save_pretrained(model, tmp_path / "pre")
    bins = model.config.output_bins(LENGTH)
    rng = np.random.default_rng(0)
    seqs = rng.integers(0, 4, size=(4, LENGTH)).astype(np.uint8)
    targets = rng.gamma(1.0, 1.0, size=(4, bins, 2)).astype(np.float32)
    npz = tmp_path / "d.npz"
    np.savez(npz, train_sequences=seqs, train_targets=targets, valid_sequences=seqs[:2],
             valid_targets=targets[:2])  # fmt: skip
    cfg = {"run_dir": str(tmp_path / "run"), "steps": 2, "batch_size": 2, "eval_every": 0,
           "tensorboard": False, "optim": {"warmup_steps": 0, "lr": 1e-3},
           "data": {"kind": "npz", "path": str(npz), "max_shift": 1, "reverse_complement": True}}
    (tmp_path / "ft.yaml").write_text(yaml.safe_dump(cfg))
    assert main(["finetune", str(tmp_path / "ft.yaml"), "--weights", str(tmp_path / "pre"),
                 "--heads", "k562:2", "--lora-rank", "2", "--json"]) == 0  # fmt: skip
    summary = json.loads(capsys.readouterr().out)
    assert summary["finetune"]["lora_linears"] == 4 * len(model.transformer)
    final = load_pretrained(tmp_path / "run" / "final")
    assert isinstance(final, Borzoi) and final.config.heads == {"k562": 2}
    assert not torch.equal(final.transformer[0].attention.Wqkv.weight,
                           model.transformer[0].attention.Wqkv.weight)  # fmt: skip
    assert main(["evaluate", "--weights", str(tmp_path / "run" / "final"), "--data", str(npz),
                 "--split", "valid", "--head", "k562", "--json"]) == 0  # fmt: skip
    report = json.loads(capsys.readouterr().out)
    with torch.no_grad():
        x = torch.nn.functional.one_hot(torch.from_numpy(seqs[:2]).long(), 4).float()
        pred = final(x)["k562"].numpy()
    want = [np.corrcoef(pred[..., t].ravel(), targets[:2, ..., t].ravel())[0, 1] for t in (0, 1)]
    got = [row["pearson_r"] for row in report["per_track"]]
    np.testing.assert_allclose(got, want, rtol=1e-4, atol=1e-6)


@pytest.mark.filterwarnings("ignore::enformer.data.genome.reference.GenomeWarning")
def test_finetune_and_evaluate_on_the_shared_bigwigs(tmp_path, capsys, calico_folder,
                                                     shared_data):
    """Calico's tiny Borzoi gets a new head for the six shared 32-bp BigWigs, is fine-tuned on
    the real training windows (BED + FASTA + BigWig) and evaluated on the validation windows
    from the command line (--tracks-dir); the reported r equals one computed by hand from the
    model's predictions and the dataset's targets."""
    import csv

    from enformer.data.datasets.bigwig import BigWigDataset
    from enformer.data.genome import read_bed

    from .test_datasets import _identity_sheet

    with (shared_data / "tracks" / "tracks.tsv").open(newline="") as handle:
        rows = list(csv.DictReader(handle, delimiter="\t"))
    sheet = _identity_sheet(rows, tmp_path / "targets.txt")
    bed = shared_data / "basenji_tiny_hg38" / "sequences.bed"
    fasta = shared_data / "genome" / "hg38_subset.fa.gz"
    cfg = {"run_dir": str(tmp_path / "run"), "steps": 2, "batch_size": 1, "eval_every": 0,
           "tensorboard": False, "optim": {"warmup_steps": 0, "lr": 1e-3},
           "data": {"kind": "bigwig", "path": str(bed), "genome": str(fasta),
                    "targets": str(sheet), "tracks_dir": str(shared_data / "tracks"),
                    "max_shift": 0, "reverse_complement": False}}  # fmt: skip
    (tmp_path / "ft.yaml").write_text(yaml.safe_dump(cfg))
    assert main(["finetune", str(tmp_path / "ft.yaml"), "--weights", str(calico_folder),
                 "--heads", "bw:6", "-q"]) == 0  # fmt: skip
    capsys.readouterr()
    assert main(["evaluate", "--weights", str(tmp_path / "run" / "final"), "--data", str(bed),
                 "--kind", "bigwig", "--genome", str(fasta), "--targets", str(sheet),
                 "--tracks-dir", str(shared_data / "tracks"), "--split", "valid",
                 "--head", "bw", "--json"]) == 0  # fmt: skip
    report = json.loads(capsys.readouterr().out)
    model = load_pretrained(tmp_path / "run" / "final")
    valid = [iv for iv in read_bed(bed) if iv.name == "valid"]
    ds = BigWigDataset(valid, fasta, sheet, sequence_length=65_536, bin_size=32,
                       target_length=2016, tracks_dir=shared_data / "tracks")  # fmt: skip
    items = [ds[i] for i in range(len(ds))]
    with torch.no_grad():
        pred = np.concatenate([model(it["sequence"][None].float())["bw"][0].numpy()
                               for it in items])  # fmt: skip
    target = np.concatenate([it["target"].numpy() for it in items])
    want = [np.corrcoef(pred[:, t], target[:, t])[0, 1] for t in range(6)]
    assert report["sequences"] == len(items) == 10
    np.testing.assert_allclose([r["pearson_r"] for r in report["per_track"]], want,
                               rtol=1e-4, atol=1e-5)  # fmt: skip
