"""torchrun's process environment (enformer.runtime), read alike by inference and training."""

from __future__ import annotations

import datetime

import pytest

from enformer.inference.distributed import DistributedContext
from enformer.runtime import TorchrunEnv, env_int, torchrun_env
from enformer.train.distributed import init_distributed

_VARS = ("WORLD_SIZE", "RANK", "LOCAL_RANK")


@pytest.fixture
def clean_env(monkeypatch: pytest.MonkeyPatch) -> pytest.MonkeyPatch:
    for name in _VARS:
        monkeypatch.delenv(name, raising=False)
    return monkeypatch


def test_single_process_when_nothing_is_set(clean_env):
    assert torchrun_env() == TorchrunEnv(world_size=1, rank=0, local_rank=0)


def test_local_rank_defaults_to_rank(clean_env):
    clean_env.setenv("WORLD_SIZE", "4")
    clean_env.setenv("RANK", " 3 ")
    assert torchrun_env() == TorchrunEnv(world_size=4, rank=3, local_rank=3)
    clean_env.setenv("LOCAL_RANK", "1")
    assert torchrun_env() == TorchrunEnv(world_size=4, rank=3, local_rank=1)


def test_blank_is_unset_and_junk_is_named(clean_env):
    clean_env.setenv("RANK", "  ")
    assert env_int("RANK", 5) == 5
    clean_env.setenv("RANK", "two")
    with pytest.raises(ValueError, match=r"^environment variable RANK='two' is not an integer$"):
        env_int("RANK", 0)


@pytest.mark.parametrize("join", [DistributedContext.from_env, init_distributed])
def test_inference_and_training_share_the_reader(clean_env, join):
    clean_env.setenv("WORLD_SIZE", "2x")
    with pytest.raises(ValueError, match=r"WORLD_SIZE='2x' is not an integer"):
        join()


def test_one_process_environment_object(clean_env):
    from enformer.runtime import ProcessEnv, join_process_group
    from enformer.train.distributed import DistEnv

    alone = join_process_group("gloo", datetime.timedelta(seconds=1))
    assert alone == ProcessEnv() and alone.is_main and not alone.distributed
    alone.close()  # nothing was joined: a no-op
    ctx, env = DistributedContext.from_env(), init_distributed("cpu")
    assert isinstance(ctx, ProcessEnv) and isinstance(env, ProcessEnv)
    assert (ctx.rank, ctx.world_size, ctx.initialised_here) == (0, 1, False)
    assert isinstance(env, DistEnv) and str(env.device) == "cpu" and not env.distributed
    assert ctx.shard(list(range(5))) == [0, 1, 2, 3, 4]


@pytest.mark.parametrize("join", [DistributedContext.from_env, init_distributed])
def test_rank_outside_the_world_is_named_before_joining(clean_env, join):
    clean_env.setenv("WORLD_SIZE", "2")
    clean_env.setenv("RANK", "5")
    with pytest.raises(ValueError, match=r"^RANK=5 is outside 0\.\.1 \(WORLD_SIZE=2\)$"):
        join()
