"""Training: losses, streaming Pearson r, schedule, clipping, config, sampler, fit, resume, CLI."""

from __future__ import annotations

import csv
import dataclasses
import json
import math

import numpy as np
import pytest
import torch
import torch.nn.functional as F
import yaml
from torch.utils.data import Dataset

from enformer import Enformer, EnformerConfig
from enformer.cli.main import main
from enformer.train import (
    PearsonR,
    TrainConfig,
    Trainer,
    build_optimizer,
    build_scheduler,
    evaluate,
    fit,
    load_config,
    make_eval_loader,
    poisson_loss,
    poisson_multinomial_loss,
)
from enformer.train.checkpoint import load_checkpoint
from enformer.train.data import EpochBatchSampler
from enformer.train.losses import poisson_loss_floor
from enformer.train.metrics import per_assay_means
from enformer.train.optim import clip_grad_norm, lr_factor
from enformer.train.config import DataConfig, config_to_dict, dump_config
from enformer.train.data import epoch_batches
from enformer.train.step import align_bins

# Tests run the tiny architecture on 512-bp inputs (32 bins of 16 bp, nothing cropped): the
# model accepts any length, and this keeps a training step at a few milliseconds.
LENGTH = 512
BINS = 32
TRACKS = 3


def tiny_config(dropout: bool = False, **overrides) -> EnformerConfig:
    rates = (
        {}
        if dropout
        else {
            "dropout_rate": 0.0,
            "attention_dropout_rate": 0.0,
            "positional_dropout_rate": 0.0,
            "final_dropout_rate": 0.0,
        }
    )
    kwargs = {"target_length": None, "heads": {"human": TRACKS}, **rates, **overrides}
    return EnformerConfig.tiny(**kwargs)


def toy_arrays(n: int, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """Random DNA and learnable targets: per-bin G+C count, A count, and a shifted copy."""
    rng = np.random.default_rng(seed)
    idx = rng.integers(0, 4, size=(n, LENGTH))
    seqs = np.eye(4, dtype=np.float32)[idx]
    per_bin = idx.reshape(n, BINS, LENGTH // BINS)
    gc = ((per_bin == 1) | (per_bin == 2)).sum(-1).astype(np.float32)
    a = (per_bin == 0).sum(-1).astype(np.float32)
    targets = np.stack([gc, 0.5 * a, np.roll(gc, 2, axis=1) * 0.25], axis=-1)
    return seqs, targets


class ToyData(Dataset):
    """Samples in the package's dict format."""

    def __init__(self, n: int, seed: int = 0) -> None:
        self.seqs, self.targets = toy_arrays(n, seed)

    def __len__(self) -> int:
        return len(self.seqs)

    def __getitem__(self, i: int) -> dict:
        return {
            "sequence": torch.from_numpy(self.seqs[i]),
            "target": torch.from_numpy(self.targets[i]),
            "index": i,
        }


def quick_config(tmp_path, **overrides) -> TrainConfig:
    base = {
        "run_dir": str(tmp_path / "run"),
        "steps": 6,
        "batch_size": 2,
        "eval_every": 0,
        "log_every": 1,
        "checkpoint_every": 1000,
        "tensorboard": False,
        "data": {"kind": "npz"},
        "optim": {"lr": 2e-3, "warmup_steps": 2, "clip_norm": 1.0},
    }
    for key, value in overrides.items():
        if isinstance(value, dict) and isinstance(base.get(key), dict):
            base[key] = {**base[key], **value}
        else:
            base[key] = value
    from enformer.train.config import config_from_dict

    return config_from_dict(base)


# ===================================================================== losses


def test_poisson_loss_matches_formula_and_torch():
    g = torch.Generator().manual_seed(0)
    pred = torch.rand(2, 5, 3, generator=g) * 4
    target = torch.poisson(torch.rand(2, 5, 3, generator=g) * 3, generator=g)
    expected = (pred - target * torch.log(pred + 1e-7)).mean()
    assert torch.allclose(poisson_loss(pred, target), expected, atol=0, rtol=1e-6)
    ref = F.poisson_nll_loss(pred, target, log_input=False, eps=1e-7)
    assert torch.allclose(poisson_loss(pred, target), ref, rtol=1e-6)
    # The floor is the loss at pred == target and bounds the loss from below.
    assert torch.allclose(poisson_loss(target, target), poisson_loss_floor(target))
    assert poisson_loss(pred, target) > poisson_loss_floor(target)


def test_poisson_multinomial_loss_by_hand():
    pred = np.array([[[1.0, 2.0], [3.0, 0.5]]])  # (B=1, bins=2, tracks=2)
    target = np.array([[[0.0, 1.0], [2.0, 1.0]]])
    w, eps = 0.2, 1e-7
    p, y = pred + eps, target + eps
    expected = []
    for t in range(2):
        sp, sy = p[0, :, t].sum(), y[0, :, t].sum()
        multinomial = -(y[0, :, t] * np.log(p[0, :, t] / sp)).sum()
        total = sp - sy * np.log(sp)
        expected.append((multinomial + w * total) / 2)
    got = poisson_multinomial_loss(torch.tensor(pred), torch.tensor(target), total_weight=w)
    assert got.item() == pytest.approx(float(np.mean(expected)), rel=1e-6)
    # The multinomial term ignores the scale of the profile: with total_weight=0 scaling the
    # prediction changes nothing.
    a = poisson_multinomial_loss(torch.tensor(pred), torch.tensor(target), total_weight=0.0)
    b = poisson_multinomial_loss(torch.tensor(pred) * 7, torch.tensor(target), total_weight=0.0)
    assert a.item() == pytest.approx(b.item(), rel=1e-6)


# ==================================================================== metrics


def test_pearson_streaming_equals_corrcoef_and_merges():
    rng = np.random.default_rng(1)
    batches = []
    for size in (3, 1, 4, 2):
        y = rng.gamma(1.0, 2.0, size=(size, 7, 4))
        x = y * rng.uniform(0.5, 1.5, size=(1, 1, 4)) + rng.normal(0, 1, size=y.shape)
        batches.append((x.astype(np.float32), y.astype(np.float32)))
    whole = PearsonR(4)
    first, second = PearsonR(4), PearsonR(4)
    for i, (x, y) in enumerate(batches):
        whole.update(torch.from_numpy(x), torch.from_numpy(y))
        (first if i < 2 else second).update(x, y)
    xs = np.concatenate([b[0] for b in batches]).reshape(-1, 4).astype(np.float64)
    ys = np.concatenate([b[1] for b in batches]).reshape(-1, 4).astype(np.float64)
    expected_r = np.array([np.corrcoef(xs[:, t], ys[:, t])[0, 1] for t in range(4)])
    ss_res = ((ys - xs) ** 2).sum(0)
    ss_tot = ((ys - ys.mean(0)) ** 2).sum(0)
    got = whole.compute()
    np.testing.assert_allclose(got.pearson_r, expected_r, rtol=1e-10, atol=1e-12)
    np.testing.assert_allclose(got.r2, 1 - ss_res / ss_tot, rtol=1e-9)
    assert got.mean_r == pytest.approx(expected_r.mean(), rel=1e-10)
    merged = first.merge(second).compute()
    np.testing.assert_allclose(merged.pearson_r, got.pearson_r, rtol=1e-12)
    np.testing.assert_array_equal(merged.count, got.count)
    restored = PearsonR(4)
    restored.load_state_dict(whole.state_dict())
    np.testing.assert_array_equal(restored.compute().pearson_r, got.pearson_r)


def test_pearson_constant_track_is_nan_and_left_out_of_means():
    metric = PearsonR(2)
    x = torch.tensor([[1.0, 2.0], [2.0, 2.0], [3.0, 2.0]])
    metric.update(x, torch.tensor([[1.0, 0.0], [2.5, 1.0], [2.9, 3.0]]))
    result = metric.compute()
    assert math.isnan(result.pearson_r[1]) and result.undefined == 1
    assert result.mean_r == pytest.approx(result.pearson_r[0])
    means = per_assay_means([0.5, 0.7, float("nan"), 0.1], ["CAGE", "DNASE", "DNASE", "CAGE"])
    assert means == pytest.approx({"CAGE": 0.3, "DNASE": 0.7})


# ================================================================ optimisation


def test_lr_schedule_values():
    kw = {"warmup_steps": 4, "total_steps": 10}
    assert [lr_factor(s, **kw) for s in range(4)] == [0.25, 0.5, 0.75, 1.0]
    assert lr_factor(4, **kw) == 1.0 and lr_factor(1000, **kw) == 1.0
    cos = {**kw, "schedule": "cosine", "min_lr_ratio": 0.1}
    assert lr_factor(4, **cos) == pytest.approx(1.0)
    assert lr_factor(7, **cos) == pytest.approx(0.1 + 0.9 * 0.5)  # halfway: p = 3/6
    assert lr_factor(10, **cos) == pytest.approx(0.1)
    assert lr_factor(50, **cos) == pytest.approx(0.1)
    assert lr_factor(0, warmup_steps=0) == 1.0
    # The scheduler applies f(s) to update s, and its state survives a save/load.
    param = torch.nn.Parameter(torch.zeros(2))
    opt = build_optimizer([param], lr=1.0)
    sched = build_scheduler(opt, warmup_steps=4, total_steps=10, schedule="cosine")
    seen = []
    for _ in range(6):
        seen.append(opt.param_groups[0]["lr"])
        opt.step()
        sched.step()
    assert seen == pytest.approx([lr_factor(s, **kw, schedule="cosine") for s in range(6)])
    opt2 = build_optimizer([param], lr=1.0)
    sched2 = build_scheduler(opt2, warmup_steps=4, total_steps=10, schedule="cosine")
    sched2.load_state_dict(sched.state_dict())
    opt2.load_state_dict(opt.state_dict())
    assert opt2.param_groups[0]["lr"] == pytest.approx(lr_factor(6, **kw, schedule="cosine"))


def test_clip_grad_norm():
    a, b = torch.nn.Parameter(torch.zeros(1)), torch.nn.Parameter(torch.zeros(1))
    a.grad, b.grad = torch.tensor([3.0]), torch.tensor([4.0])
    assert clip_grad_norm([a, b], None) == pytest.approx(5.0)
    assert a.grad.item() == 3.0  # measured only
    assert clip_grad_norm([a, b], 1.0) == pytest.approx(5.0)
    assert float(torch.sqrt(a.grad**2 + b.grad**2)) == pytest.approx(1.0, rel=1e-5)
    assert a.grad.item() == pytest.approx(0.6, rel=1e-5)
    assert clip_grad_norm([a, b], 10.0) == pytest.approx(1.0, rel=1e-5)  # below: untouched


def test_optimizer_groups_decay_and_trunk_scale():
    model = Enformer(tiny_config())
    opt = build_optimizer(model, name="adamw", lr=1e-3, weight_decay=0.1, trunk_lr_scale=0.1)
    assert isinstance(opt, torch.optim.AdamW)
    ids = {id(p): g for g in opt.param_groups for p in g["params"]}
    head_w = model.heads["human"].linear.weight
    assert ids[id(head_w)]["lr"] == pytest.approx(1e-3) and ids[id(head_w)]["weight_decay"] == 0.1
    bias = model.heads["human"].linear.bias
    assert ids[id(bias)]["weight_decay"] == 0.0
    conv = model.trunk.stem.conv1_d.weight
    assert ids[id(conv)]["lr"] == pytest.approx(1e-4)
    assert len(ids) == sum(1 for _ in model.parameters())


# ===================================================================== config


def test_config_yaml_overrides_and_round_trip(tmp_path):
    path = tmp_path / "run.yaml"
    path.write_text(
        "steps: 100\nmodel:\n  preset: tiny\n  config: {heads: {human: 3}}\n"
        "optim:\n  lr: 5e-4\n  betas: [0.8, 0.9]\n",
        encoding="utf-8",
    )
    cfg = load_config(path, ["optim.lr=1e-3", "data.kind=npz", "finetune.heads=[k562:12]"])
    assert cfg.steps == 100 and cfg.model.preset == "tiny"
    assert cfg.optim.lr == 1e-3 and isinstance(cfg.optim.lr, float)
    assert cfg.optim.betas == (0.8, 0.9)
    assert cfg.data.kind == "npz" and cfg.finetune.heads == ("k562:12",)
    assert load_config(path).optim.lr == 5e-4  # "5e-4" is a string in YAML 1.1; converted
    again = tmp_path / "again.yaml"
    again.write_text(dump_config(cfg), encoding="utf-8")
    assert load_config(again) == cfg
    with pytest.raises(ValueError, match="optim.lr.*did you mean|did you mean optim.lr"):
        load_config(path, ["optim.lrr=1"])
    with pytest.raises(ValueError, match="steps"):
        load_config(path, ["steps=many"])
    with pytest.raises(ValueError, match="data.kind"):
        load_config(path, ["data.kind=csv"])


# ==================================================================== sampler


def test_sampler_order_is_function_of_seed_and_epoch_and_shards_global_batches():
    s = EpochBatchSampler(10, 2, seed=3)
    s.set_epoch(0)
    epoch0 = list(s)
    assert len(epoch0) == 5 and sorted(i for b in epoch0 for i in b) == list(range(10))
    s.set_epoch(1)
    assert list(s) != epoch0
    s.set_epoch(0)
    assert list(s) == epoch0  # same (seed, epoch), same order
    s.set_start(3)
    assert list(s) == epoch0[3:]
    # Two ranks with 1 example each see the halves of the single-process batches of 2.
    single = EpochBatchSampler(11, 2, seed=5)
    ranks = [EpochBatchSampler(11, 1, seed=5, rank=r, world_size=2) for r in range(2)]
    for e in range(2):
        for sampler in (single, *ranks):
            sampler.set_epoch(e)
        joined = [a + b for a, b in zip(*ranks, strict=True)]
        assert joined == list(single)


def test_align_bins_centre_crops():
    pred = torch.arange(10.0).reshape(1, 10, 1)
    assert align_bins(pred, torch.zeros(1, 6, 1)).flatten().tolist() == [2, 3, 4, 5, 6, 7]
    with pytest.raises(ValueError, match="bins"):
        align_bins(pred, torch.zeros(1, 7, 1))
    with pytest.raises(ValueError, match="tracks"):
        align_bins(pred, torch.zeros(1, 10, 2))


# ========================================================================= fit


def test_tiny_model_overfits_tiny_set(tmp_path):
    """Fixed seed: the excess Poisson loss (loss - its floor) falls at least 20x in 40 updates.

    Wide margins: over initialisation seeds 0-5 and one or two threads it fell 276-601x, and
    the fitted model's mean Pearson r was 0.84-0.93 (asserted: > 0.5).
    """
    torch.manual_seed(0)
    model = Enformer(tiny_config())
    data = ToyData(4)
    optim = {"lr": 3e-3, "warmup_steps": 3}
    cfg = quick_config(tmp_path, steps=40, batch_size=4, seed=0, log_every=10, optim=optim)
    floor = float(poisson_loss_floor(torch.from_numpy(data.targets)))
    result = fit(model, data, config=cfg)
    excess = np.array(result.losses) - floor
    assert len(excess) == 40 and excess.min() > -1e-4
    assert excess[0] / np.mean(excess[-3:]) >= 20.0, (excess[0], excess[-3:])
    # evaluate() agrees with a PearsonR fed by hand, and leaves the model's mode alone.
    model.eval()
    loader = make_eval_loader(data, batch_size=3)
    res = evaluate(model, loader, head="human", assays=["A", "B", "A"])
    assert not model.training
    metric = PearsonR(TRACKS)
    with torch.no_grad():
        pred = model(torch.from_numpy(data.seqs))["human"]
    metric.update(pred, torch.from_numpy(data.targets))
    np.testing.assert_allclose(res.metrics.pearson_r, metric.compute().pearson_r, rtol=1e-5)
    assert res.mean_r > 0.5 and set(res.by_assay) == {"A", "B"}
    assert res.loss == pytest.approx(float(poisson_loss(pred, torch.from_numpy(data.targets))))


def test_resume_is_exact(tmp_path):
    """2k updates straight == k updates, 'kill', resume k more: same losses bit for bit.

    Dropout is on (so the RNG state must be restored), updates accumulate 2 micro-batches,
    and the interruption falls in the middle of an epoch.
    """
    k = 3
    data = ToyData(8, seed=1)

    def run(name: str, stop: int | None) -> tuple[list[float], dict]:
        torch.manual_seed(123)  # the initialisation differs from fit's seed on purpose
        model = Enformer(tiny_config(dropout=True))
        cfg = quick_config(
            tmp_path,
            run_dir=str(tmp_path / name),
            steps=2 * k,
            batch_size=4,
            accumulation_steps=2,
            optim={"schedule": "cosine"},
        )
        result = fit(model, data, config=cfg, stop_at_step=stop)
        return result.losses, {n: p.detach().clone() for n, p in model.state_dict().items()}

    straight, final_a = run("a", None)
    first, _ = run("b", k)
    ckpt = load_checkpoint(tmp_path / "b")
    assert ckpt["progress"]["step"] == k
    assert ckpt["progress"]["epoch"] == 1 and ckpt["progress"]["batch_in_epoch"] == 2
    second, final_b = run("b", None)
    assert len(straight) == 2 * k and len(first) == k and len(second) == k
    assert first + second == straight  # bit for bit
    for name, value in final_a.items():
        assert torch.equal(value, final_b[name]), name
    # The logs read as one uninterrupted run.
    with open(tmp_path / "b" / "train_log.csv", newline="") as f:
        rows = list(csv.DictReader(f))
    assert [int(r["step"]) for r in rows] == list(range(1, 2 * k + 1))
    assert [float(r["loss"]) for r in rows] == pytest.approx(straight, rel=1e-12)
    # The checkpoint describes itself.
    ckpt = load_checkpoint(tmp_path / "b" / "checkpoint.pt")
    assert ckpt["progress"]["step"] == 2 * k
    rebuilt = Enformer(EnformerConfig.from_dict(ckpt["model_config"]))
    rebuilt.load_state_dict(ckpt["model"])
    assert ckpt["train_config"]["accumulation_steps"] == 2
    assert set(ckpt) >= {"optimizer", "scheduler", "rng", "track_sheet", "versions"}


# ========================================================================= CLI


SHEET = (
    "\tidentifier\tfile\tclip\tclip_soft\tscale\tsum_stat\tstrand_pair\tdescription\n"
    "0\tT0\tt0.bw\t384\t32\t1\tsum\t0\tCAGE:toy one\n"
    "1\tT1\tt1.bw\t384\t32\t1\tsum\t1\tDNASE:toy two\n"
    "2\tT2\tt2.bw\t384\t32\t1\tsum\t2\tCAGE:toy three\n"
)


def test_trainer_steps_by_hand_make_the_run_fit_makes(tmp_path):
    """Trainer.step / validate / checkpoint, called by hand, repeat what fit does."""
    data, valid = ToyData(8, seed=1), ToyData(4, seed=2)

    def config(name: str) -> TrainConfig:
        return quick_config(tmp_path, run_dir=str(tmp_path / name), steps=2, batch_size=4)

    def model() -> Enformer:
        torch.manual_seed(0)
        return Enformer(tiny_config())

    expected = fit(model(), data, config=config("fit"), valid_loader=valid)
    by_hand = Trainer(model(), data, config=config("hand"), valid_loader=valid)
    for batch in epoch_batches(by_hand.loader, epoch=0, start_batch=0, seed=0):
        by_hand.step([batch])
    assert by_hand.validate() is False  # no patience set: never stops early
    by_hand.checkpoint()
    by_hand.close()
    assert len(expected.losses) == 2 and by_hand.losses == expected.losses
    assert by_hand.last_eval["mean_r"] == expected.last_eval["mean_r"]
    best = json.loads((tmp_path / "hand" / "best" / "metrics.json").read_text())
    assert best["step"] == 2 and best["mean_r"] == pytest.approx(expected.last_eval["mean_r"])
    assert load_checkpoint(tmp_path / "hand")["progress"]["step"] == 2


def test_trainer_validate_needs_validation_data(tmp_path):
    trainer = Trainer(Enformer(tiny_config()), ToyData(8), config=quick_config(tmp_path))
    with pytest.raises(RuntimeError, match="no validation data"):
        trainer.validate()
    trainer.close()


def test_cli_train_and_evaluate_end_to_end(tmp_path, capsys):
    seqs, targets = toy_arrays(6, seed=2)
    npz = tmp_path / "toy.npz"
    idx = seqs.argmax(-1).astype(np.uint8)  # base indices also work
    np.savez(npz, sequences=idx, targets=targets, split=np.array(["train"] * 4 + ["valid"] * 2))
    sheet = tmp_path / "targets.txt"
    sheet.write_text(SHEET, encoding="utf-8")
    run_dir = tmp_path / "run"
    cfg = {
        "run_dir": str(run_dir),
        "steps": 3,
        "batch_size": 2,
        "eval_every": 2,
        "log_every": 1,
        "tensorboard": False,
        "model": {"preset": "tiny", "config": {"heads": {"human": TRACKS}, "target_length": None}},
        "data": {"kind": "npz", "path": str(npz), "targets": str(sheet), "max_shift": 0},
        "optim": {"warmup_steps": 1},
    }
    path = tmp_path / "run.yaml"
    path.write_text(yaml.safe_dump(cfg), encoding="utf-8")
    assert main(["train", str(path), "optim.lr=1e-3", "seed=7", "--json"]) == 0
    summary = json.loads(capsys.readouterr().out)
    assert summary["ok"] and summary["steps"] == 3 and summary["finished"]
    resolved = yaml.safe_load((run_dir / "config.yaml").read_text())
    assert resolved["optim"]["lr"] == 1e-3 and resolved["seed"] == 7
    assert resolved["optim"]["clip_norm"] == 0.2  # defaults are written out too
    with open(run_dir / "train_log.csv", newline="") as f:
        rows = list(csv.DictReader(f))
    assert [int(r["step"]) for r in rows] == [1, 2, 3]
    assert all(math.isfinite(float(r["loss"])) for r in rows)
    records = [json.loads(line) for line in (run_dir / "log.jsonl").read_text().splitlines()]
    evals = [r for r in records if r["kind"] == "eval"]
    assert [r["step"] for r in evals] == [2, 3]
    assert set(evals[0]["by_assay"]) == {"CAGE", "DNASE"}
    ckpt = load_checkpoint(run_dir)
    assert ckpt["track_sheet"]["text"] == SHEET
    assert ckpt["train_config"] == config_to_dict(load_config(run_dir / "config.yaml"))
    for sub in ("best", "final"):
        assert (run_dir / sub / "model.safetensors").is_file()
        assert (run_dir / sub / "targets_human.txt").read_text() == SHEET

    # Evaluate the exported weights: the report matches the last validation record.
    out = tmp_path / "eval.json"
    argv = [
        "evaluate",
        "--weights",
        str(run_dir / "final"),
        "--data",
        str(npz),
        "--split",
        "valid",
        "--out",
        str(out),
        "--json",
    ]
    assert main(argv) == 0
    report = json.loads(capsys.readouterr().out)
    assert report["sequences"] == 2 and report["tracks"] == TRACKS
    assert report["mean_r"] == pytest.approx(evals[-1]["mean_r"], rel=1e-5)
    assert [t["assay"] for t in report["per_track"]] == ["CAGE", "DNASE", "CAGE"]
    assert set(report["by_assay"]) == {"CAGE", "DNASE"}
    assert json.loads(out.read_text())["per_track"][1]["identifier"] == "T1"
    assert main(argv[:-3]) == 0  # text output
    text = capsys.readouterr().out
    assert "mean Pearson r" in text and "DNASE" in text and "T2" in text
    # A second run in the same folder resumes: nothing left to do.
    assert main(["train", str(path), "optim.lr=1e-3", "seed=7", "--json"]) == 0
    again = json.loads(capsys.readouterr().out)
    assert again["resumed_from"] == 3 and again["steps"] == 3


def test_cli_train_reports_bad_config(tmp_path, capsys):
    path = tmp_path / "run.yaml"
    path.write_text("steps: 1\n", encoding="utf-8")
    assert main(["train", str(path), "optim.lrate=1"]) == 2
    assert "optim.lr" in capsys.readouterr().err
    assert main(["train", str(path), "steps=5", "--print-config", "--json"]) == 0
    assert json.loads(capsys.readouterr().out)["config"]["steps"] == 5
    cfg = DataConfig()
    assert cfg.kind == "tfrecord"


def test_activation_checkpointing_matches_plain_backward():
    """Same loss, gradients and BatchNorm statistics with and without checkpointing (the
    recomputed forward must not update the running statistics a second time)."""
    from enformer.train import get_loss
    from enformer.train.step import forward_backward

    data = ToyData(2)
    batch = {k: torch.as_tensor(v) for k, v in (("sequence", data.seqs), ("target", data.targets))}
    results = []
    for checkpointing in (False, True):
        torch.manual_seed(0)
        model = Enformer(tiny_config(dropout=True)).train()
        model.set_gradient_checkpointing(checkpointing)
        torch.manual_seed(1)
        loss = forward_backward(
            model, [batch], head="human", loss_fn=get_loss("poisson"), device=torch.device("cpu")
        )
        grads = {n: p.grad.clone() for n, p in model.named_parameters() if p.grad is not None}
        buffers = {n: b.clone() for n, b in model.named_buffers()}
        results.append((loss, grads, buffers))
    (loss_a, grads_a, buf_a), (loss_b, grads_b, buf_b) = results
    assert loss_a == loss_b
    assert int(buf_b["trunk.stem.pointwise_conv_block.batch_norm.num_batches_tracked"]) == 1
    for name in buf_a:
        torch.testing.assert_close(buf_b[name], buf_a[name], rtol=0, atol=0, msg=name)
    for name in grads_a:
        torch.testing.assert_close(grads_b[name], grads_a[name], rtol=1e-5, atol=1e-7, msg=name)


def test_early_stopping_and_multinomial_loss(tmp_path):
    """No evaluation can beat the first by min_delta=10: patience 1 stops at the second."""
    torch.manual_seed(0)
    model = Enformer(tiny_config())
    data = ToyData(4)
    cfg = quick_config(
        tmp_path,
        steps=20,
        batch_size=2,
        eval_every=2,
        early_stopping_patience=1,
        early_stopping_min_delta=10.0,
        loss="poisson_multinomial",
    )
    result = fit(model, data, config=cfg, valid_loader=data)
    assert result.finished and result.state.stopped_early
    assert result.state.step == 4 and result.state.best_step == 2
    assert all(math.isfinite(x) for x in result.losses)
    evals = [h for h in result.history if h["kind"] == "eval"]
    assert [e["step"] for e in evals] == [2, 4] and evals[0]["best"] and not evals[1]["best"]
    assert (tmp_path / "run" / "best" / "metrics.json").is_file()
    # A stopped run stays stopped; resume=never refuses to overwrite it.
    again = fit(Enformer(tiny_config()), data, config=cfg, valid_loader=data)
    assert again.resumed_from == 4 and again.losses == []
    never = dataclasses.replace(cfg, resume="never")
    with pytest.raises(FileExistsError, match="resume=never"):
        fit(Enformer(tiny_config()), data, config=never)


def test_relative_position_biases_are_never_decayed():
    from enformer import Enformer, EnformerConfig
    from enformer.train.optim import parameter_groups

    model = Enformer(EnformerConfig.tiny())
    names = {id(p): n for n, p in model.named_parameters()}
    decayed = {
        names[id(p)]
        for group in parameter_groups(model, weight_decay=0.1)
        if group["weight_decay"] > 0
        for p in group["params"]
    }
    assert not any(n.endswith(("r_w_bias", "r_r_bias")) for n in decayed)
    assert any(n.endswith("q_layer.weight") for n in decayed)
