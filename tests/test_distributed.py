"""DDP on CPU: 2 gloo processes under torchrun give the gradients, BatchNorm statistics and
training losses of one process on the combined batch."""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
import textwrap
from pathlib import Path

import numpy as np
import pytest
import torch

from enformer import Enformer, EnformerConfig
from enformer.train import TrainConfig, fit, get_loss
from enformer.train.distributed import CrossReplicaBatchNorm1d, convert_sync_batchnorm
from enformer.train.config import config_from_dict
from enformer.train.step import forward_backward

LENGTH = 512  # 32 bins of 16 bp with the tiny architecture
BINS = 32
TRACKS = 3
GLOBAL_BATCH = 4
STEPS = 3


def model_config() -> EnformerConfig:
    return EnformerConfig.tiny(
        target_length=None,
        heads={"human": TRACKS},
        dropout_rate=0.0,
        attention_dropout_rate=0.0,
        positional_dropout_rate=0.0,
        final_dropout_rate=0.0,
    )


def make_batch(n: int, seed: int) -> dict:
    g = torch.Generator().manual_seed(seed)
    idx = torch.randint(0, 4, (n, LENGTH), generator=g)
    return {
        "sequence": torch.nn.functional.one_hot(idx, 4).float(),
        "target": torch.rand(n, BINS, TRACKS, generator=g) * 4,
        "index": torch.arange(n),
    }


def train_config(run_dir: Path) -> TrainConfig:
    return config_from_dict(
        {
            "run_dir": str(run_dir),
            "seed": 0,
            "steps": STEPS,
            "batch_size": GLOBAL_BATCH,
            "eval_every": 2,
            "eval_batch_size": 2,
            "log_every": 1,
            "tensorboard": False,
            "data": {"kind": "npz"},
            # Adam divides each gradient by its own running scale, so a coordinate whose gradient
            # is ~1e-9 moves by ±lr whatever its sign: float-level differences of summation
            # order (two ranks vs one) become lr-sized. A large eps makes the update a smooth
            # function of the gradient, so the trajectories can be compared closely.
            "optim": {"lr": 1e-3, "eps": 1e-3, "warmup_steps": 1, "clip_norm": 0.5},
        }
    )


class Pairs(torch.utils.data.Dataset):
    """Eight fixed examples (two epochs of batch 4 with three updates)."""

    def __init__(self, n: int = 8) -> None:
        self.data = make_batch(n, seed=42)

    def __len__(self) -> int:
        return len(self.data["sequence"])

    def __getitem__(self, i: int) -> dict:
        return {"sequence": self.data["sequence"][i], "target": self.data["target"][i], "index": i}


# The worker script run by torchrun: rank r takes its half of the global batch.
WORKER = textwrap.dedent(
    """
    import json, sys, torch
    import torch.distributed as dist
    sys.path.insert(0, {tests!r})
    from test_distributed import GLOBAL_BATCH, Pairs, make_batch, model_config, train_config
    from enformer import Enformer
    from enformer.train import fit, get_loss
    from enformer.train.distributed import convert_sync_batchnorm, init_distributed, wrap_ddp
    from enformer.train.step import forward_backward

    out = sys.argv[1]
    env = init_distributed("cpu")
    rank, world = env.rank, env.world_size
    # 1. One forward/backward on half the batch each.
    torch.manual_seed(0)
    model = convert_sync_batchnorm(Enformer(model_config()).train(), "cpu")
    ddp = wrap_ddp(model, env)
    full = make_batch(GLOBAL_BATCH, seed=1)
    half = GLOBAL_BATCH // world
    part = {{k: v[rank * half:(rank + 1) * half] for k, v in full.items()}}
    loss = forward_backward(ddp, [part], head="human", loss_fn=get_loss("poisson"),
                            device=env.device)
    grads = {{n: p.grad.tolist() for n, p in model.named_parameters() if p.grad is not None}}
    stats = {{n: b.tolist() for n, b in model.named_buffers() if "running" in n}}
    # 2. A whole run of fit() (sampler sharding, sync BN, eval all-reduce, checkpoint).
    torch.manual_seed(0)
    net = Enformer(model_config())
    result = fit(net, Pairs(), config=train_config(out + "/run"), valid_loader=Pairs(4), env=env)
    params = {{n: p.tolist() for n, p in net.named_parameters()}}
    with open(f"{{out}}/rank{{rank}}.json", "w") as f:
        json.dump({{"loss": loss, "grads": grads, "stats": stats, "fit_losses": result.losses,
                   "last_eval": result.last_eval, "params": params}}, f)
    dist.barrier()
    dist.destroy_process_group()
    """
)


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def test_cross_replica_batchnorm_is_plain_batchnorm_without_a_group():
    torch.manual_seed(0)
    plain = torch.nn.BatchNorm1d(5)
    with torch.no_grad():
        plain.weight.uniform_(0.5, 1.5)
        plain.bias.uniform_(-0.5, 0.5)
    wrapped = torch.nn.Sequential(plain)
    before = {k: v.clone() for k, v in wrapped.state_dict().items()}
    converted = convert_sync_batchnorm(wrapped, "cpu")
    assert isinstance(converted[0], CrossReplicaBatchNorm1d)
    assert converted[0].weight is plain.weight  # parameters are shared, not copied
    assert set(converted.state_dict()) == set(before)
    x = torch.randn(4, 5, 7)
    reference = torch.nn.Sequential(torch.nn.BatchNorm1d(5))
    reference.load_state_dict(before)
    torch.testing.assert_close(converted(x), reference(x))
    torch.testing.assert_close(converted[0].running_var, reference[0].running_var)


def test_ddp_two_processes_match_one_process(tmp_path):
    script = tmp_path / "worker.py"
    tests_dir = str(Path(__file__).resolve().parent)
    script.write_text(WORKER.format(tests=tests_dir), encoding="utf-8")
    cmd = [
        sys.executable,
        "-m",
        "torch.distributed.run",
        "--nproc_per_node=2",
        "--nnodes=1",
        "--master_addr=127.0.0.1",
        f"--master_port={_free_port()}",
        str(script),
        str(tmp_path),
    ]
    env = {**os.environ, "OMP_NUM_THREADS": "1", "PYTHONWARNINGS": "ignore"}
    proc = subprocess.run(cmd, capture_output=True, text=True, timeout=240, env=env)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    ranks = [json.loads((tmp_path / f"rank{r}.json").read_text()) for r in range(2)]

    # One process, combined batch.
    torch.manual_seed(0)
    model = Enformer(model_config()).train()
    full = make_batch(GLOBAL_BATCH, seed=1)
    loss = forward_backward(model, [full], head="human", loss_fn=get_loss("poisson"),
                            device=torch.device("cpu"))  # fmt: skip
    assert np.mean([r["loss"] for r in ranks]) == pytest.approx(loss, rel=1e-5)
    grads = {n: p.grad for n, p in model.named_parameters() if p.grad is not None}
    assert set(ranks[0]["grads"]) == set(grads)
    for name, grad in grads.items():
        for r in ranks:  # DDP averages: every rank holds the full-batch gradient
            torch.testing.assert_close(
                torch.tensor(r["grads"][name]), grad, rtol=1e-4, atol=1e-6, msg=name
            )
    stats = {n: b for n, b in model.named_buffers() if "running" in n}
    for name, value in stats.items():
        for r in ranks:  # synchronised BatchNorm: statistics of the combined batch
            torch.testing.assert_close(
                torch.tensor(r["stats"][name]), value, rtol=1e-4, atol=1e-6, msg=name
            )

    # fit() in one process with the same global batch follows the same trajectory.
    torch.manual_seed(0)
    net = Enformer(model_config())
    result = fit(net, Pairs(), config=train_config(tmp_path / "single"), valid_loader=Pairs(4))
    assert len(result.losses) == STEPS
    for r in ranks:
        np.testing.assert_allclose(r["fit_losses"], result.losses, rtol=1e-4)
        assert r["last_eval"]["mean_r"] == pytest.approx(result.last_eval["mean_r"], abs=1e-5)
        assert r["last_eval"]["loss"] == pytest.approx(result.last_eval["loss"], rel=1e-5)
        assert r["last_eval"]["sequences"] == 4
        for name, p in net.named_parameters():
            torch.testing.assert_close(
                torch.tensor(r["params"][name]), p.detach(), rtol=1e-3, atol=1e-5, msg=name
            )
    assert (tmp_path / "run" / "checkpoint.pt").is_file()
    assert (tmp_path / "run" / "final" / "model.safetensors").is_file()
