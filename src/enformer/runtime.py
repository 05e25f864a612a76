"""The process environment: the rank, world size and local rank ``torchrun`` gives this process.

This module imports only the standard library (and may import torch, nothing of enformer).

``torchrun --nproc_per_node=N ...`` (or ``python -m torch.distributed.run``) starts ``N``
processes with ``WORLD_SIZE``, ``RANK`` and ``LOCAL_RANK`` set. Inference
(:mod:`enformer.inference.distributed`) and training (:mod:`enformer.train.distributed`) both
read them here, so a malformed value gets the same one-line error everywhere.
"""

from __future__ import annotations

import os
from typing import NamedTuple

__all__ = ["TorchrunEnv", "env_int", "torchrun_env"]


class TorchrunEnv(NamedTuple):
    """Where ``torchrun`` placed this process (a single process when nothing is set).

    Attributes
    ----------
    world_size
        Number of processes (``WORLD_SIZE``, default 1).
    rank
        Global 0-based rank (``RANK``, default 0).
    local_rank
        Rank on this machine (``LOCAL_RANK``, default ``rank``); selects the GPU.
    """

    world_size: int
    rank: int
    local_rank: int


def env_int(name: str, default: int) -> int:
    """The integer value of environment variable ``name``, or ``default`` when unset or blank.

    Raises
    ------
    ValueError
        If the variable is set to something that is not an integer.
    """
    value = os.environ.get(name, "").strip()
    if not value:
        return default
    try:
        return int(value)
    except ValueError:
        raise ValueError(f"environment variable {name}={value!r} is not an integer") from None


def torchrun_env() -> TorchrunEnv:
    """``WORLD_SIZE``, ``RANK`` and ``LOCAL_RANK`` (default ``RANK``) as set by ``torchrun``."""
    world = env_int("WORLD_SIZE", 1)
    rank = env_int("RANK", 0)
    return TorchrunEnv(world_size=world, rank=rank, local_rank=env_int("LOCAL_RANK", rank))
