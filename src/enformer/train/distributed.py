"""Data-parallel training with PyTorch DDP, launched by ``torchrun``.

``torchrun --nproc_per_node=N -m enformer train run.yaml`` starts ``N`` processes with
``RANK``, ``WORLD_SIZE`` and ``LOCAL_RANK`` set; :func:`init_distributed` joins them into a
process group (NCCL on CUDA, gloo on CPU), :func:`convert_sync_batchnorm` makes every
BatchNorm use statistics of the *global* batch (as Sonnet's CrossReplicaBatchNorm did for the
paper), and :func:`wrap_ddp` averages the gradients.

Synchronised BatchNorm on CPU
-----------------------------
``torch.nn.SyncBatchNorm`` refuses CPU tensors in its forward (torch 2.x raises
``ValueError: SyncBatchNorm expected input tensor to be on GPU``), so on CPU the BatchNorms
are replaced by :class:`CrossReplicaBatchNorm1d`. In training mode it all-reduces, per
channel, the element count, the sum and the sum of squares of the input minus a shift shared by
all ranks (the running mean, which is identical everywhere; the shift keeps the one-pass
variance accurate), and normalises with the global mean and (biased) variance. The all-reduce
is differentiable (its backward all-reduces the incoming gradient), so the gradient is that of
BatchNorm over the combined batch. Running statistics are updated with the global mean and the
unbiased global variance, as ``nn.SyncBatchNorm`` does. The module subclasses
``nn.BatchNorm1d`` and keeps its parameter and buffer names, so state dicts are unchanged.
"""

from __future__ import annotations

import dataclasses
import datetime
import logging
from dataclasses import dataclass

import torch
import torch.distributed as dist
from torch import nn

from ..runtime import ProcessEnv, env_int, join_process_group, parse_device, torchrun_env

__all__ = [
    "CrossReplicaBatchNorm1d",
    "DistEnv",
    "all_gather_object",
    "barrier",
    "cleanup_distributed",
    "convert_sync_batchnorm",
    "init_distributed",
    "unwrap",
    "wrap_ddp",
]

log = logging.getLogger(__name__)


@dataclass
class DistEnv(ProcessEnv):
    """Where this process stands, and the device it trains on.

    The fields ``rank``, ``world_size``, ``local_rank``, ``initialised_here``, the properties
    ``is_main`` and ``distributed`` and :meth:`close` are those of
    :class:`~enformer.runtime.ProcessEnv`.

    Attributes
    ----------
    device
        Device this process computes on.
    """

    device: torch.device = torch.device("cpu")


def resolve_device(device: str | torch.device = "auto", local_rank: int = 0) -> torch.device:
    """``"auto"`` -> ``cuda:LOCAL_RANK`` when CUDA is available, else ``cpu``."""
    if isinstance(device, torch.device):
        return device
    dev = parse_device(device, auto_index=local_rank)
    if dev is None:
        raise ValueError("device must be 'auto' or a torch device such as 'cpu' or 'cuda'")
    if dev.type == "cuda" and dev.index is None:
        dev = torch.device("cuda", local_rank % max(1, torch.cuda.device_count()))
    return dev


def init_distributed(
    device: str | torch.device = "auto", *, timeout_minutes: float = 30.0
) -> DistEnv:
    """Join the process group described by ``torchrun``'s environment variables.

    Parameters
    ----------
    device
        ``"auto"``, ``"cpu"``, ``"cuda"``...; the backend is NCCL on CUDA and gloo otherwise.
    timeout_minutes
        Collective timeout.

    Returns
    -------
    DistEnv
        A single-process environment when ``WORLD_SIZE`` is unset or 1.
    """
    placement = torchrun_env()
    dev = resolve_device(device, placement.local_rank)
    backend = "nccl" if dev.type == "cuda" else "gloo"
    if dev.type == "cuda" and placement.world_size > 1:
        torch.cuda.set_device(dev)
    env = join_process_group(backend, datetime.timedelta(minutes=timeout_minutes))
    return DistEnv(**dataclasses.asdict(env), device=dev)


def cleanup_distributed(env: DistEnv) -> None:
    """Destroy the process group if :func:`init_distributed` created it (``env.close()``)."""
    env.close()


def current_env(device: str | torch.device = "auto") -> DistEnv:
    """The environment of an already-initialised process group (or a single process)."""
    if dist.is_available() and dist.is_initialized() and dist.get_world_size() > 1:
        local = env_int("LOCAL_RANK", dist.get_rank())
        return DistEnv(
            rank=dist.get_rank(),
            world_size=dist.get_world_size(),
            local_rank=local,
            device=resolve_device(device, local),
        )
    return DistEnv(device=resolve_device(device))


def barrier() -> None:
    """Wait for every process (no-op in a single process)."""
    if dist.is_available() and dist.is_initialized() and dist.get_world_size() > 1:
        dist.barrier()


def all_gather_object(obj: object) -> list[object]:
    """Every process's ``obj``, by rank (``[obj]`` in a single process)."""
    if dist.is_available() and dist.is_initialized() and dist.get_world_size() > 1:
        out: list[object] = [None] * dist.get_world_size()
        dist.all_gather_object(out, obj)
        return out
    return [obj]


def unwrap(model: nn.Module) -> nn.Module:
    """The model inside a DDP wrapper (or the model itself)."""
    return model.module if isinstance(model, nn.parallel.DistributedDataParallel) else model


# ================================================================= sync BN


class _AllReduceSum(torch.autograd.Function):
    """Differentiable sum over processes: forward and backward are both all-reduces."""

    @staticmethod
    def forward(ctx: object, tensor: torch.Tensor, group: object) -> torch.Tensor:
        ctx.group = group  # type: ignore[attr-defined]
        out = tensor.clone()
        dist.all_reduce(out, op=dist.ReduceOp.SUM, group=group)
        return out

    @staticmethod
    def backward(ctx: object, grad: torch.Tensor) -> tuple[torch.Tensor, None]:
        grad = grad.clone()
        dist.all_reduce(grad, op=dist.ReduceOp.SUM, group=ctx.group)  # type: ignore[attr-defined]
        return grad, None


class CrossReplicaBatchNorm1d(nn.BatchNorm1d):
    """BatchNorm over the batch of every process, for CPU (gloo) runs.

    Behaves as ``nn.BatchNorm1d`` in eval mode and when no process group (or a group of one)
    is running. See the module docstring for the computation.

    Parameters
    ----------
    num_features, eps, momentum, affine, track_running_stats
        As for ``nn.BatchNorm1d``.
    process_group
        Group to synchronise over (default: the whole world).
    """

    def __init__(
        self,
        num_features: int,
        eps: float = 1e-5,
        momentum: float | None = 0.1,
        affine: bool = True,
        track_running_stats: bool = True,
        process_group: object | None = None,
    ) -> None:
        super().__init__(num_features, eps, momentum, affine, track_running_stats)
        self.process_group = process_group

    def _synced(self) -> bool:
        return (
            self.training
            and dist.is_available()
            and dist.is_initialized()
            and dist.get_world_size(self.process_group) > 1
        )

    def forward(self, input: torch.Tensor) -> torch.Tensor:
        """``(B, C)`` or ``(B, C, L)`` -> same shape, normalised over every process's batch."""
        if not self._synced():
            return super().forward(input)
        self._check_input_dim(input)
        channels = input.shape[1]
        dims = [0] + list(range(2, input.dim()))
        view = [1, channels] + [1] * (input.dim() - 2)
        if self.running_mean is not None:
            shift = self.running_mean.detach().to(input.dtype)
        else:
            shift = torch.zeros(channels, dtype=input.dtype, device=input.device)
        centred = input - shift.view(view)
        count = torch.full((1,), input.numel() // channels, dtype=input.dtype, device=input.device)
        stats = torch.cat([centred.sum(dims), (centred * centred).sum(dims), count])  # (2C+1,)
        stats = _AllReduceSum.apply(stats, self.process_group)
        total = stats[-1]
        mean_c = stats[:channels] / total  # mean of (x - shift)
        var = (stats[channels : 2 * channels] / total - mean_c * mean_c).clamp_min(0.0)
        mean = mean_c + shift
        if self.track_running_stats and self.running_mean is not None:
            with torch.no_grad():
                self.num_batches_tracked.add_(1)
                if self.momentum is None:
                    factor = 1.0 / float(self.num_batches_tracked)
                else:
                    factor = self.momentum
                n = float(total)
                unbiased = var.detach() * (n / max(n - 1.0, 1.0))
                self.running_mean.mul_(1 - factor).add_(mean.detach(), alpha=factor)
                self.running_var.mul_(1 - factor).add_(unbiased, alpha=factor)
        out = (input - mean.view(view)) * torch.rsqrt(var + self.eps).view(view)
        if self.affine:
            out = out * self.weight.view(view) + self.bias.view(view)
        return out


def _convert_cpu(module: nn.Module, process_group: object | None) -> nn.Module:
    out = module
    if isinstance(module, nn.modules.batchnorm._BatchNorm) and not isinstance(
        module, CrossReplicaBatchNorm1d
    ):
        if not isinstance(module, nn.BatchNorm1d):
            raise TypeError(f"only BatchNorm1d can be synchronised on CPU, got {type(module)}")
        out = CrossReplicaBatchNorm1d(
            module.num_features,
            module.eps,
            module.momentum,
            module.affine,
            module.track_running_stats,
            process_group,
        )
        with torch.no_grad():
            if module.affine:
                out.weight = module.weight
                out.bias = module.bias
            if module.track_running_stats:
                out.running_mean = module.running_mean
                out.running_var = module.running_var
                out.num_batches_tracked = module.num_batches_tracked
        out.train(module.training)
    for name, child in module.named_children():
        out.add_module(name, _convert_cpu(child, process_group))
    return out


def convert_sync_batchnorm(
    model: nn.Module, device: torch.device | str | None = None, process_group: object | None = None
) -> nn.Module:
    """Replace every BatchNorm by one that normalises over all processes' batches.

    Parameters
    ----------
    model
        The model (modified in place where possible; use the returned module).
    device
        Device of the run: CUDA uses ``nn.SyncBatchNorm``, anything else
        :class:`CrossReplicaBatchNorm1d`. Default: the device of the model's parameters.
    process_group
        Group to synchronise over (default: the world).

    Returns
    -------
    nn.Module
        The converted model; parameter and buffer names are unchanged.
    """
    if device is None:
        param = next(model.parameters(), None)
        device = param.device if param is not None else torch.device("cpu")
    if torch.device(device).type == "cuda":
        return nn.SyncBatchNorm.convert_sync_batchnorm(model, process_group)
    return _convert_cpu(model, process_group)


def wrap_ddp(
    model: nn.Module, env: DistEnv, *, find_unused_parameters: bool | None = None
) -> nn.Module:
    """Wrap ``model`` in DistributedDataParallel (returned unchanged in a single process).

    Parameters
    ----------
    model
        The model, already on ``env.device``.
    env
        The process environment.
    find_unused_parameters
        Passed to DDP; default true when the model has more than one head (the heads not
        trained receive no gradient).

    Returns
    -------
    nn.Module
        The DDP-wrapped model.
    """
    if not env.distributed:
        return model
    if find_unused_parameters is None:
        heads = getattr(model, "heads", None)
        find_unused_parameters = heads is not None and len(heads) > 1
    ids = [env.device.index] if env.device.type == "cuda" else None
    return nn.parallel.DistributedDataParallel(
        model,
        device_ids=ids,
        output_device=ids[0] if ids else None,
        find_unused_parameters=find_unused_parameters,
    )
