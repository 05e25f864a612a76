"""Sharding work across processes launched with ``torchrun``.

``torchrun --nproc_per_node=N -m enformer predict ...`` (or ``python -m torch.distributed.run``)
starts ``N`` processes with ``RANK``, ``WORLD_SIZE`` and ``LOCAL_RANK`` set. Each process
predicts its share of the tiles and writes its own chunk files; after a barrier, rank 0
assembles the outputs. Only barriers and a small object broadcast go through
:mod:`torch.distributed` (gloo on CPU, NCCL when running on CUDA); predictions travel through
the chunk files.
"""

from __future__ import annotations

import dataclasses
import datetime
import logging
from dataclasses import dataclass
from typing import Any

import torch

from ..runtime import ProcessEnv, join_process_group, parse_device, torchrun_env

__all__ = ["DistributedContext"]

logger = logging.getLogger(__name__)

# Ranks wait at barriers while others finish their share (or rank 0 assembles the outputs).
_BARRIER_TIMEOUT = datetime.timedelta(hours=12)


@dataclass
class DistributedContext(ProcessEnv):
    """Where the current process stands among the processes of one prediction run.

    The fields and :meth:`close` are those of :class:`~enformer.runtime.ProcessEnv`; this
    adds the device choice, barriers, a broadcast and the sharding of work items.
    """

    @classmethod
    def from_env(cls, device: str | torch.device | None = None) -> DistributedContext:
        """Read ``RANK``/``WORLD_SIZE``/``LOCAL_RANK`` and join the process group if needed.

        Parameters
        ----------
        device : str or torch.device, optional
            Device the run will use; NCCL is chosen when it is CUDA (or when it is unset and
            CUDA is available), gloo otherwise.

        Returns
        -------
        DistributedContext
            A single-process context when ``WORLD_SIZE`` is unset or 1.
        """
        placement = torchrun_env()
        if placement.world_size <= 1:
            return cls()
        on_cuda = torch.cuda.is_available() and (
            device is None or torch.device(device).type == "cuda"
        )
        cuda = placement.local_rank if on_cuda else None
        env = join_process_group("nccl" if on_cuda else "gloo", _BARRIER_TIMEOUT, cuda_device=cuda)
        return cls(**dataclasses.asdict(env))

    def device(self, requested: str | torch.device | None) -> torch.device | None:
        """The device this rank should use.

        Parameters
        ----------
        requested : str or torch.device, optional
            What the user asked for.

        Returns
        -------
        torch.device or None
            ``cuda:LOCAL_RANK`` when several processes run and CUDA is asked for (or nothing
            is asked and CUDA is available); otherwise ``requested``.
        """
        if not self.distributed:
            return parse_device(requested)
        if requested is None:
            if torch.cuda.is_available():
                return torch.device("cuda", self.local_rank)
            return None
        dev = parse_device(requested)
        if dev.type == "cuda" and dev.index is None:
            return torch.device("cuda", self.local_rank)
        return dev

    def barrier(self) -> None:
        """Wait for every process (no-op with one process)."""
        if not self.distributed:
            return
        import torch.distributed as dist

        if dist.get_backend() == "nccl":
            dist.barrier(device_ids=[self.local_rank])
        else:
            dist.barrier()

    def broadcast(self, obj: Any) -> Any:
        """Return rank 0's ``obj`` on every rank (a picklable object).

        Parameters
        ----------
        obj : object
            This rank's value.

        Returns
        -------
        object
            Rank 0's value.
        """
        if not self.distributed:
            return obj
        import torch.distributed as dist

        box = [obj]
        dist.broadcast_object_list(box, src=0)
        return box[0]

    def shard(self, items: list[Any]) -> list[Any]:
        """Return the share of ``items`` for this rank (``items[rank::world_size]``).

        Parameters
        ----------
        items : list
            Work items, in the same order on every rank.

        Returns
        -------
        list
            The items this rank handles.
        """
        return items[self.rank :: self.world_size]
