"""The process environment: the devices this process may use, and where ``torchrun`` placed it.

This module imports only the standard library and torch, nothing of enformer.

``torchrun --nproc_per_node=N ...`` (or ``python -m torch.distributed.run``) starts ``N``
processes with ``WORLD_SIZE``, ``RANK`` and ``LOCAL_RANK`` set. Inference
(:mod:`enformer.inference.distributed`) and training (:mod:`enformer.train.distributed`) both
read them here, so a malformed value gets the same one-line error everywhere.

Every entry point that takes a device (the CLI's ``--device``, ``predict(device=...)``,
``score_variants(device=...)``, training) goes through :func:`parse_device`, so an unknown
name or a device this machine cannot use fails at once with one clear sentence instead of a
traceback from deep inside ``model.to``.
"""

from __future__ import annotations

import datetime
import logging
import os
from dataclasses import dataclass
from typing import NamedTuple

import torch

__all__ = [
    "ProcessEnv",
    "TorchrunEnv",
    "env_int",
    "join_process_group",
    "parse_device",
    "torchrun_env",
]

logger = logging.getLogger(__name__)


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


@dataclass
class ProcessEnv:
    """Where this process stands among the processes of one run.

    Inference (:class:`enformer.inference.distributed.DistributedContext`) and training
    (:class:`enformer.train.distributed.DistEnv`) extend it.

    Attributes
    ----------
    rank
        Global 0-based rank (0 in a single-process run).
    world_size
        Number of processes.
    local_rank
        Rank on this machine (selects the GPU).
    initialised_here
        Whether :func:`join_process_group` created the process group (and :meth:`close`
        ends it).
    """

    rank: int = 0
    world_size: int = 1
    local_rank: int = 0
    initialised_here: bool = False

    @property
    def is_main(self) -> bool:
        """Whether this is rank 0 (the process that writes logs, checkpoints and outputs)."""
        return self.rank == 0

    @property
    def distributed(self) -> bool:
        """Whether more than one process takes part."""
        return self.world_size > 1

    def close(self) -> None:
        """Leave the process group if :func:`join_process_group` created it here."""
        if self.initialised_here:
            import torch.distributed as dist

            if dist.is_initialized():
                dist.destroy_process_group()
            self.initialised_here = False


def join_process_group(
    backend: str, timeout: datetime.timedelta, *, cuda_device: int | torch.device | None = None
) -> ProcessEnv:
    """Join the process group ``torchrun``'s environment describes, unless already joined.

    Parameters
    ----------
    backend
        ``'nccl'`` or ``'gloo'``.
    timeout
        Collective timeout.
    cuda_device
        CUDA device to make current before joining (when this call joins).

    Returns
    -------
    ProcessEnv
        A single-process environment when ``WORLD_SIZE`` is unset or 1.

    Raises
    ------
    ValueError
        If ``RANK`` is outside ``0..WORLD_SIZE-1`` or a variable is not an integer.
    RuntimeError
        If several processes are asked for but torch has no ``torch.distributed``.
    """
    world, rank, local = torchrun_env()
    if world <= 1:
        return ProcessEnv()
    if not 0 <= rank < world:
        raise ValueError(f"RANK={rank} is outside 0..{world - 1} (WORLD_SIZE={world})")
    import torch.distributed as dist

    if not dist.is_available():
        raise RuntimeError("WORLD_SIZE > 1 but this torch build has no torch.distributed")
    here = False
    if not dist.is_initialized():
        if cuda_device is not None:
            torch.cuda.set_device(cuda_device)
        dist.init_process_group(backend=backend, rank=rank, world_size=world, timeout=timeout)
        here = True
        logger.info("rank %d of %d joined the %s process group", rank, world, backend)
    return ProcessEnv(dist.get_rank(), dist.get_world_size(), local, here)


# Device types users may name; anything else is refused before torch sees it.
_KNOWN = ("cpu", "cuda", "mps", "xpu")


def parse_device(device: str | torch.device | None, *, auto_index: int = 0) -> torch.device | None:
    """Check that ``device`` names a device this PyTorch build can use here.

    Parameters
    ----------
    device : str or torch.device, optional
        ``None`` (left to the caller: usually the model's device), ``"auto"`` (CUDA when a GPU
        is visible, else the CPU), or a torch device such as ``"cpu"``, ``"cuda"``,
        ``"cuda:1"``, ``"mps"``.
    auto_index : int
        GPU index ``"auto"`` picks (e.g. the local rank of a multi-process run).

    Returns
    -------
    torch.device or None
        The device; ``None`` when ``device`` is ``None``.

    Raises
    ------
    ValueError
        The name is not a device, or the device is not available: the message says why and
        suggests ``cpu``.
    """
    if device is None:
        return None
    if isinstance(device, str) and device.strip().lower() == "auto":
        if torch.cuda.is_available():
            return torch.device("cuda", auto_index % torch.cuda.device_count())
        return torch.device("cpu")
    try:
        dev = torch.device(device.strip() if isinstance(device, str) else device)
    except (RuntimeError, TypeError, ValueError):
        dev = None
    if dev is None or dev.type not in _KNOWN:
        shown = str(device)[:40]
        raise ValueError(
            f"unknown device {shown!r}; use cpu, cuda, cuda:N (a GPU index), mps or auto"
        )
    if dev.type == "cuda":
        _check_cuda(dev)
    elif dev.type == "mps" and not torch.backends.mps.is_available():
        raise ValueError("MPS (Apple GPU) requested but it is not available here; use cpu")
    elif dev.type == "xpu" and not (hasattr(torch, "xpu") and torch.xpu.is_available()):
        raise ValueError("XPU requested but this PyTorch build has no usable XPU; use cpu")
    return dev


def _check_cuda(dev: torch.device) -> None:
    if not torch.backends.cuda.is_built():
        raise ValueError(
            f"{dev} requested but this PyTorch build has no CUDA support; use cpu, or install "
            "a CUDA build of PyTorch"
        )
    if not torch.cuda.is_available():
        visible = os.environ.get("CUDA_VISIBLE_DEVICES")
        hint = f" (CUDA_VISIBLE_DEVICES={visible!r})" if visible is not None else ""
        raise ValueError(f"{dev} requested but no GPU is visible{hint}; use cpu")
    count = torch.cuda.device_count()
    if dev.index is not None and dev.index >= count:
        raise ValueError(
            f"{dev} requested but only {count} GPU(s) are visible (cuda:0..cuda:{count - 1})"
        )
