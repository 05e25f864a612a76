"""Shared fixtures: the ../shared reference folder, tiny models, random one-hot DNA."""

from __future__ import annotations

import json
import logging
import os
import shutil
from pathlib import Path

import numpy as np
import pytest
import torch

from enformer import Enformer, EnformerConfig

REPO = Path(__file__).resolve().parents[1]

# Tiny models run fastest on one thread, and a second OpenMP thread stalls badly whenever
# the machine is shared; ENFORMER_TEST_THREADS overrides (e.g. 2, to check that no test
# depends on the order of float operations).
TEST_THREADS = int(os.environ.get("ENFORMER_TEST_THREADS", "1"))
torch.set_num_threads(TEST_THREADS)


@pytest.fixture(autouse=True)
def _isolated_global_state():
    """Every test starts with TEST_THREADS threads, and a global torch generator that no
    earlier test (in whatever order they run) has drawn from; both, and the level of the
    package's logger, are restored afterwards.

    Tests that need random numbers still seed their own generators explicitly.
    """
    threads, rng = torch.get_num_threads(), torch.get_rng_state()
    log_level = logging.getLogger("enformer").level  # the CLI sets it from -v / -q
    torch.set_num_threads(TEST_THREADS)
    torch.manual_seed(0)
    yield
    torch.set_num_threads(threads)
    torch.set_rng_state(rng)
    logging.getLogger("enformer").setLevel(log_level)


def shared_root() -> Path:
    """The shared reference folder: $ENFORMER_SHARED, else ../shared beside the checkout."""
    env = os.environ.get("ENFORMER_SHARED")
    return Path(env) if env else REPO.parent / "shared"


def _shared_required() -> bool:
    return os.environ.get("ENFORMER_REQUIRE_SHARED", "") not in ("", "0") or os.environ.get(
        "CI", ""
    ).lower() in ("1", "true", "yes")


@pytest.fixture(scope="session")
def shared() -> Path:
    """Path of the shared folder; skips (or fails under CI) when it is missing."""
    root = shared_root()
    if not (root / "vectors").is_dir() or not (root / "data").is_dir():
        msg = f"shared reference folder not found at {root} (set ENFORMER_SHARED to its location)"
        if _shared_required():
            pytest.fail(msg + "; CI/ENFORMER_REQUIRE_SHARED demands it", pytrace=False)
        pytest.skip(msg)
    return root


@pytest.fixture(scope="session")
def shared_data(shared: Path) -> Path:
    return shared / "data"


@pytest.fixture(scope="session")
def vectors(shared: Path) -> Path:
    return shared / "vectors" / "public"


@pytest.fixture(scope="session")
def borzoi_dir(shared: Path) -> Path:
    """Calico's Borzoi vectors: a tiny model's Keras weights, inputs and outputs."""
    return shared / "vectors" / "borzoi"


@pytest.fixture(scope="session")
def calico_folder(tmp_path_factory, borzoi_dir) -> Path:
    """The tiny Borzoi of the vectors as a Calico release folder (params.json + model*_best.h5)."""
    folder = tmp_path_factory.mktemp("borzoi_calico")
    meta = json.loads((borzoi_dir / "meta.json").read_text())
    (folder / "params.json").write_text(json.dumps({"model": meta["params_model"]}))
    shutil.copy(borzoi_dir / "weights_human.h5", folder / "model0_best.h5")
    shutil.copy(borzoi_dir / "weights_mouse.h5", folder / "model1_best.h5")
    return folder


@pytest.fixture
def tiny_config() -> EnformerConfig:
    return EnformerConfig.tiny()


@pytest.fixture
def tiny_model(tiny_config) -> Enformer:
    torch.manual_seed(0)
    model = Enformer(tiny_config).eval()
    randomize_batch_norm(model, seed=0)
    return model


def randomize_batch_norm(model: torch.nn.Module, seed: int = 0) -> None:
    """Give every BatchNorm non-trivial statistics and affine parameters."""
    g = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for m in model.modules():
            if isinstance(m, torch.nn.modules.batchnorm._BatchNorm):
                n = m.num_features
                m.running_mean.copy_(torch.randn(n, generator=g) * 0.1)
                m.running_var.copy_(torch.rand(n, generator=g) + 0.5)
                m.weight.copy_(torch.rand(n, generator=g) + 0.5)
                m.bias.copy_(torch.randn(n, generator=g) * 0.1)


def random_onehot(batch: int, length: int, seed: int = 0, n_frac: float = 0.0) -> torch.Tensor:
    """Random one-hot DNA ``(batch, length, 4)`` float32; ``n_frac`` of rows are N (zeros)."""
    rng = np.random.default_rng(seed)
    idx = rng.integers(0, 4, size=(batch, length))
    x = np.eye(4, dtype=np.float32)[idx]
    if n_frac:
        x[rng.random((batch, length)) < n_frac] = 0
    return torch.from_numpy(x)
