"""Fine-tuning: new heads, frozen trunk / BatchNorm, last-N layers, LoRA, save/load, CLI."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch
import yaml

from enformer import Enformer, EnformerConfig
from enformer.cli.main import main
from enformer.train import (
    FinetuneConfig,
    LoRALinear,
    add_heads,
    apply_lora,
    build_optimizer,
    freeze_batchnorm,
    freeze_trunk,
    get_loss,
    merge_lora,
    prepare_finetune,
    train_last_layers,
    train_step,
    unfreeze_batchnorm,
)
from enformer.train.finetune import parse_head_spec
from enformer.weights import load_pretrained, save_pretrained

LENGTH = 512  # 32 bins of 16 bp with the tiny architecture (nothing cropped)
BINS = 32


def base_model(seed: int = 0) -> Enformer:
    torch.manual_seed(seed)
    cfg = EnformerConfig.tiny(
        target_length=None,
        dropout_rate=0.0,
        attention_dropout_rate=0.0,
        positional_dropout_rate=0.0,
        final_dropout_rate=0.0,
    )
    return Enformer(cfg)


def batch(n_tracks: int, seed: int = 0, size: int = 2) -> dict:
    g = torch.Generator().manual_seed(seed)
    idx = torch.randint(0, 4, (size, LENGTH), generator=g)
    seq = torch.nn.functional.one_hot(idx, 4).float()
    target = torch.rand(size, BINS, n_tracks, generator=g) * 3
    return {"sequence": seq, "target": target, "index": torch.arange(size)}


def run_steps(model: Enformer, head: str, n_tracks: int, steps: int = 3, lr: float = 1e-2):
    opt = build_optimizer(model, lr=lr)
    model.train()
    loss_fn = get_loss("poisson")
    for s in range(steps):
        train_step(model, batch(n_tracks, seed=s), opt, head=head, loss_fn=loss_fn, clip_norm=1.0)


def snapshot(model: torch.nn.Module, buffers: bool = True) -> dict[str, torch.Tensor]:
    """Parameters (and, with ``buffers``, BatchNorm statistics) by name."""
    items = model.state_dict().items() if buffers else model.named_parameters()
    return {k: v.detach().clone() for k, v in items}


def changed(before: dict, model: torch.nn.Module) -> set[str]:
    after = model.state_dict()
    return {k for k, v in before.items() if k in after and not torch.equal(v, after[k])}


def test_parse_head_spec():
    assert parse_head_spec("k562:12") == ("k562", 12)
    assert parse_head_spec(" my_head : 3 ") == ("my_head", 3)
    for bad in ("k562", "k562:0", ":3", "k-562:3", "k562:x"):
        with pytest.raises(ValueError, match="NAME:N_TRACKS"):
            parse_head_spec(bad)


def test_add_heads_updates_config_and_keeps_old_outputs():
    model = base_model().eval()
    x = batch(1)["sequence"]
    with torch.no_grad():
        before = model(x)
    add_heads(model, ["k562:5"], seed=1)
    assert model.config.heads == {"human": 10, "mouse": 6, "k562": 5}
    with torch.no_grad():
        after = model(x)
    assert after["k562"].shape == (2, BINS, 5)
    assert torch.equal(after["human"], before["human"])
    add_heads(model, [("hepg2", 2)], keep_existing=False)
    assert model.config.heads == {"hepg2": 2} and list(model.heads) == ["hepg2"]
    assert model.trunk.config is model.config


def test_frozen_trunk_and_batchnorm_unchanged_after_steps():
    model = base_model()
    add_heads(model, ["k562:4"], keep_existing=False, seed=0)
    freeze_trunk(model)
    freeze_batchnorm(model)
    before = snapshot(model)
    run_steps(model, "k562", 4)
    moved = changed(before, model)
    assert moved == {"heads.k562.linear.weight", "heads.k562.linear.bias"}
    # model.train() does not bring the BatchNorms back into training mode.
    model.train()
    bns = [m for m in model.modules() if isinstance(m, torch.nn.BatchNorm1d)]
    model(batch(4)["sequence"])
    assert not any(m.training for m in bns)
    unfreeze_batchnorm(model)
    model.train()
    assert all(m.training for m in bns)


def test_train_last_layers_changes_only_those():
    model = base_model()
    train_last_layers(model, 1)
    # Parameters only: BatchNorm statistics still follow the batches (freeze_batchnorm stops it).
    before = snapshot(model, buffers=False)
    run_steps(model, "human", 10)
    moved = changed(before, model)
    prefixes = ("trunk.transformer.1.", "trunk.final_pointwise.", "heads.")
    assert moved and all(k.startswith(prefixes) for k in moved), sorted(moved)
    assert any(k.startswith("trunk.transformer.1.") for k in moved)
    assert not any(k.startswith("trunk.transformer.0.") for k in moved)
    assert not any(k.startswith(("trunk.stem.", "trunk.conv_tower.")) for k in moved)
    assert not any(k.startswith("heads.mouse") for k in moved)  # no gradient reaches it
    with pytest.raises(ValueError, match="between 0 and 2"):
        train_last_layers(model, 3)


def test_lora_starts_equal_trains_adapters_and_merges(tmp_path):
    model = base_model().eval()
    x = batch(1, seed=5)["sequence"]
    with torch.no_grad():
        reference = model(x)["human"]
    apply_lora(model, rank=2, alpha=4.0)
    lora = [m for m in model.modules() if isinstance(m, LoRALinear)]
    assert len(lora) == 2 * 6  # 2 blocks x (q, k, v, embedding, linear1, linear2)
    with torch.no_grad():
        assert torch.equal(model(x)["human"], reference)  # B = 0: exactly the base model
    freeze_trunk(model)
    before = snapshot(model, buffers=False)
    run_steps(model, "human", 10)
    moved = changed(before, model)
    assert any(k.endswith("lora_B") for k in moved)
    assert all(k.endswith(("lora_A", "lora_B")) or k.startswith("heads.human") for k in moved)
    model.eval()
    with torch.no_grad():
        adapted = model(x)["human"]
    assert not torch.allclose(adapted, reference)
    merge_lora(model)
    assert not any(isinstance(m, LoRALinear) for m in model.modules())
    assert not any("lora" in k for k in model.state_dict())
    with torch.no_grad():
        merged = model(x)["human"]
    torch.testing.assert_close(merged, adapted, rtol=1e-5, atol=1e-5)
    save_pretrained(model, tmp_path / "merged")
    loaded = load_pretrained(tmp_path / "merged", progress=False)
    with torch.no_grad():
        assert torch.equal(loaded(x)["human"], merged)


def test_finetuned_model_saves_and_loads(tmp_path):
    model = base_model()
    summary = prepare_finetune(
        model,
        FinetuneConfig(heads=("k562:3",), freeze_trunk=True, freeze_batchnorm=True, lora_rank=2),
        seed=0,
    )
    assert summary.heads == {"k562": 3} and summary.lora_linears == 12
    assert summary.trainable < summary.total
    run_steps(model, "k562", 3)
    merge_lora(model)
    model.eval()
    x = batch(3, seed=9)["sequence"]
    with torch.no_grad():
        expected = model(x)
    save_pretrained(model, tmp_path / "ft")
    loaded = load_pretrained(tmp_path / "ft", progress=False)
    assert loaded.config.heads == {"k562": 3}
    with torch.no_grad():
        got = loaded(x)
    assert set(got) == {"k562"} and torch.equal(got["k562"], expected["k562"])


def test_cli_finetune_end_to_end(tmp_path, capsys):
    pretrained = tmp_path / "pretrained"
    save_pretrained(base_model(), pretrained)
    rng = np.random.default_rng(0)
    seqs = rng.integers(0, 4, size=(4, LENGTH)).astype(np.uint8)
    targets = rng.gamma(1.0, 1.0, size=(4, BINS, 2)).astype(np.float32)
    npz = tmp_path / "k562.npz"
    np.savez(
        npz,
        train_sequences=seqs,
        train_targets=targets,
        valid_sequences=seqs[:2],
        valid_targets=targets[:2],
    )
    run_dir = tmp_path / "ft_run"
    cfg = {
        "run_dir": str(run_dir),
        "steps": 2,
        "batch_size": 2,
        "eval_every": 0,
        "tensorboard": False,
        "data": {"kind": "npz", "path": str(npz), "max_shift": 1, "reverse_complement": True},
        "optim": {"warmup_steps": 0, "lr": 1e-3},
    }
    path = tmp_path / "ft.yaml"
    path.write_text(yaml.safe_dump(cfg), encoding="utf-8")
    argv = ["finetune", str(path), "--weights", str(pretrained), "--heads", "k562:2"]
    argv += ["--freeze-trunk", "--freeze-batchnorm", "--lora-rank", "2", "--json"]
    assert main(argv) == 0
    summary = json.loads(capsys.readouterr().out)
    assert summary["steps"] == 2 and summary["finetune"]["heads"] == {"k562": 2}
    assert summary["finetune"]["lora_linears"] == 12
    resolved = yaml.safe_load((run_dir / "config.yaml").read_text())
    assert resolved["head"] == "k562" and resolved["finetune"]["lora_rank"] == 2
    final = load_pretrained(run_dir / "final", progress=False)
    assert final.config.heads == {"k562": 2}
    trained = final.trunk.transformer[0].mha.attention.q_layer.weight
    base = load_pretrained(pretrained, progress=False).trunk.transformer[0].mha.attention.q_layer
    assert not torch.equal(trained, base.weight)  # the merged LoRA update
    # Without weights there is nothing to fine-tune.
    assert main(["finetune", str(path), "--heads", "k562:2"]) == 2
    assert "pretrained weights" in capsys.readouterr().err
