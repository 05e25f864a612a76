"""One optimiser update: forward, backward (with gradient accumulation), clip, step.

* :func:`forward_backward` accumulates the gradient of the mean loss over micro-batches (DDP
  synchronises only on the last one);
* :func:`train_step` makes one optimiser update from them, with global-norm clipping and a
  scheduler step;
* :func:`autocast`, :func:`align_bins`, :func:`to_device` and :func:`head_output` are the small
  pieces :mod:`~enformer.train.evaluation` shares.
"""

from __future__ import annotations

import contextlib
import logging
import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

import torch
from torch import nn

from .distributed import unwrap
from .optim import clip_grad_norm

__all__ = [
    "Batch",
    "LossFn",
    "StepResult",
    "align_bins",
    "autocast",
    "forward_backward",
    "head_output",
    "to_device",
    "train_step",
]

log = logging.getLogger(__name__)

Batch = dict[str, Any]
LossFn = Callable[[torch.Tensor, torch.Tensor], torch.Tensor]


def autocast(device: torch.device, enabled: bool = True) -> contextlib.AbstractContextManager:
    """bf16 autocast on CUDA when ``enabled``; a no-op elsewhere (float32 on CPU)."""
    if enabled and device.type == "cuda":
        return torch.autocast(device_type="cuda", dtype=torch.bfloat16)
    return contextlib.nullcontext()


def align_bins(pred: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    """Centre-crop ``pred`` ``(B, bins, tracks)`` to the bins of ``target``.

    Targets of Basenji records cover the central part of the input (e.g. 512 bins of 128 bp
    for a 131,072-bp input), while the model may keep more bins; both are centred, so the
    central bins of the prediction are the ones the targets describe.

    Raises
    ------
    ValueError
        If the track counts differ, the prediction is shorter, or the excess is odd.
    """
    if pred.shape[-1] != target.shape[-1]:
        raise ValueError(
            f"the head predicts {pred.shape[-1]} tracks but the targets have {target.shape[-1]}"
        )
    extra = pred.shape[1] - target.shape[1]
    if extra == 0:
        return pred
    if extra < 0 or extra % 2:
        raise ValueError(
            f"the model predicts {pred.shape[1]} bins but the targets have {target.shape[1]}; "
            "set the model's target_length or the data's sequence_length/pool so they match"
        )
    return pred[:, extra // 2 : pred.shape[1] - extra // 2]


def to_device(batch: Batch, device: torch.device) -> tuple[torch.Tensor, torch.Tensor]:
    """The batch's ``sequence`` and ``target`` tensors on ``device``."""
    seq = batch["sequence"].to(device, non_blocking=True)
    target = batch["target"].to(device, non_blocking=True)
    return seq, target


def head_output(model: nn.Module, seq: torch.Tensor, head: str) -> torch.Tensor:
    """The output of ``head`` for ``seq``; a ``KeyError`` names the model's heads if absent."""
    out = model(seq)
    if head not in out:
        raise KeyError(f"the model has no head {head!r}; its heads are {sorted(out)}")
    return out[head]


def forward_backward(
    model: nn.Module,
    micro_batches: Sequence[Batch],
    *,
    head: str,
    loss_fn: LossFn,
    device: torch.device,
    amp: bool = True,
) -> float:
    """Accumulate the gradients of the mean loss over ``micro_batches``.

    Each micro-batch's loss is divided by their number before ``backward``, so the gradient is
    that of the mean; under DDP, gradient synchronisation happens only on the last one.

    Parameters
    ----------
    model
        The model (or its DDP wrapper), in training mode.
    micro_batches
        Sample-dict batches of equal size.
    head
        Head whose output is compared with ``batch["target"]``.
    loss_fn
        ``loss(pred, target) -> scalar``.
    device
        Where to compute.
    amp
        bf16 autocast on CUDA.

    Returns
    -------
    float
        The mean loss over the micro-batches (this process only).
    """
    n = len(micro_batches)
    if n == 0:
        raise ValueError("forward_backward needs at least one micro-batch")
    total = 0.0
    is_ddp = isinstance(model, nn.parallel.DistributedDataParallel)
    trunk = getattr(unwrap(model), "trunk", None)
    recomputes = bool(getattr(trunk, "gradient_checkpointing", False))
    for i, batch in enumerate(micro_batches):
        seq, target = to_device(batch, device)
        sync = contextlib.nullcontext() if (not is_ddp or i == n - 1) else model.no_sync()
        with sync:
            with autocast(device, amp):
                pred = head_output(model, seq, head)
            loss = loss_fn(align_bins(pred, target).float(), target.float())
            # Activation checkpointing re-runs the blocks' forward in backward, and a
            # BatchNorm in training mode would update its running statistics a second time:
            # keep the values of the real forward pass.
            stats = _batchnorm_buffers(model) if recomputes else None
            (loss / n).backward()
            if stats is not None:
                with torch.no_grad():
                    for buffer, value in stats:
                        buffer.copy_(value)
        total += float(loss.detach())
    return total / n


def _batchnorm_buffers(model: nn.Module) -> list[tuple[torch.Tensor, torch.Tensor]]:
    """(buffer, copy) of every BatchNorm statistic of ``model``."""
    out = []
    for module in model.modules():
        if isinstance(module, nn.modules.batchnorm._BatchNorm):
            for name in ("running_mean", "running_var", "num_batches_tracked"):
                buffer = getattr(module, name, None)
                if buffer is not None:
                    out.append((buffer, buffer.detach().clone()))
    return out


@dataclass(frozen=True)
class StepResult:
    """Outcome of one optimiser update.

    Attributes
    ----------
    loss
        Mean training loss over the update's micro-batches (averaged over processes).
    grad_norm
        Global gradient norm before clipping.
    lr
        Largest learning rate of the parameter groups for this update (the base rate, unless
        the trunk's rate is scaled above it).
    skipped
        Whether the update was skipped because the gradients were not finite.
    """

    loss: float
    grad_norm: float
    lr: float
    skipped: bool = False


def _mean_over_processes(value: float, device: torch.device) -> float:
    import torch.distributed as dist

    if not (dist.is_available() and dist.is_initialized()) or dist.get_world_size() == 1:
        return value
    dev = device if dist.get_backend() == "nccl" else torch.device("cpu")
    t = torch.tensor([value], dtype=torch.float64, device=dev)
    dist.all_reduce(t)
    return float(t.item()) / dist.get_world_size()


def train_step(
    model: nn.Module,
    micro_batches: Sequence[Batch] | Batch,
    optimizer: torch.optim.Optimizer,
    *,
    head: str,
    loss_fn: LossFn,
    device: torch.device | str | None = None,
    scheduler: torch.optim.lr_scheduler.LRScheduler | None = None,
    clip_norm: float | None = None,
    amp: bool = True,
) -> StepResult:
    """One optimiser update: zero grads, accumulate, clip, step, advance the schedule.

    Parameters
    ----------
    model
        The model (or its DDP wrapper), in training mode.
    micro_batches
        One batch or a list of micro-batches accumulated into this update.
    optimizer
        The optimiser.
    head
        Head trained.
    loss_fn
        ``loss(pred, target) -> scalar``.
    device
        Compute device (default: the model's).
    scheduler
        Stepped once after the update.
    clip_norm
        Global-norm clip; ``None`` or 0 disables clipping.
    amp
        bf16 autocast on CUDA.

    Returns
    -------
    StepResult
        Loss, gradient norm and learning rate of the update. A non-finite gradient norm skips
        the optimiser step (the schedule still advances) and is reported as ``skipped``.
    """
    if isinstance(micro_batches, dict):
        micro_batches = [micro_batches]
    if device is None:
        device = next(model.parameters()).device
    device = torch.device(device)
    optimizer.zero_grad(set_to_none=True)
    loss = forward_backward(
        model, micro_batches, head=head, loss_fn=loss_fn, device=device, amp=amp
    )
    params = [p for group in optimizer.param_groups for p in group["params"]]
    grad_norm = clip_grad_norm(params, clip_norm)
    lr = max(float(group["lr"]) for group in optimizer.param_groups)
    skipped = not math.isfinite(grad_norm)
    if skipped:
        log.warning("non-finite gradient norm (%s): update skipped", grad_norm)
        optimizer.zero_grad(set_to_none=True)
    else:
        optimizer.step()
    if scheduler is not None:
        scheduler.step()
    return StepResult(
        loss=_mean_over_processes(loss, device), grad_norm=grad_norm, lr=lr, skipped=skipped
    )
