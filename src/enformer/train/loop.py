"""The training loop as functions: one step, one evaluation, a whole run.

* :func:`train_step` makes one optimiser update from one or more micro-batches (gradient
  accumulation), with global-norm clipping and a scheduler step.
* :func:`evaluate` streams a loader through the model and returns the loss and the per-track
  Pearson r (:mod:`enformer.train.metrics`), merged over processes under DDP.
* :func:`fit` runs a whole :class:`~enformer.train.config.TrainConfig`: DDP with synchronised
  BatchNorm when launched by ``torchrun``, bf16 autocast on CUDA (float32 on CPU), activation
  checkpointing, periodic evaluation with early stopping on the validation mean r, CSV / JSON
  lines logs, atomic self-describing checkpoints, and **exact resume**.

Exact resume
------------
A run interrupted after update ``k`` and resumed from its checkpoint makes the same updates,
with the same losses, as one that was never interrupted. This holds because

* the data order is a function of ``(seed, epoch)`` (:class:`~enformer.train.data.
  EpochBatchSampler`) and the checkpoint records how many batches of the epoch were consumed,
  which the sampler skips on resume without loading them;
* the torch, CUDA, numpy and Python RNG states of every rank are saved and restored (dropout
  draws from torch's global generator), and creating a DataLoader iterator never touches them
  (it is done inside :func:`torch.random.fork_rng`, with the loader's own generator reseeded
  from ``(seed, epoch)``);
* model, optimiser and scheduler states are saved together, and evaluation consumes no random
  numbers.

Data sets with random augmentation resume exactly when their draws depend only on their seed,
the epoch (``set_epoch`` is called when they define it) and the example index.
"""

from __future__ import annotations

import contextlib
import copy
import dataclasses
import json
import logging
import math
import time
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn
from torch.utils.data import DataLoader, Dataset

from .checkpoint import (
    CHECKPOINT_NAME,
    capture_rng_state,
    load_checkpoint,
    restore_rng_state,
    save_checkpoint,
    seed_everything,
)
from .config import TrainConfig, config_from_dict, config_to_dict, dump_config
from .data import make_train_loader
from .distributed import (
    DistEnv,
    all_gather_object,
    barrier,
    convert_sync_batchnorm,
    current_env,
    unwrap,
    wrap_ddp,
)
from .finetune import freeze_batchnorm, frozen_batchnorm_names, has_lora, merge_lora
from .losses import get_loss
from .metrics import PearsonR, TrackMetrics, per_assay_means
from .optim import build_optimizer, build_scheduler, clip_grad_norm
from .runlog import RunLogger

__all__ = [
    "EvalResult",
    "FitResult",
    "StepResult",
    "TrainState",
    "align_bins",
    "autocast",
    "evaluate",
    "export_model",
    "fit",
    "forward_backward",
    "train_step",
]

log = logging.getLogger(__name__)

Batch = dict[str, Any]
LossFn = Callable[[torch.Tensor, torch.Tensor], torch.Tensor]


# ==================================================================== pieces


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


def _to_device(batch: Batch, device: torch.device) -> tuple[torch.Tensor, torch.Tensor]:
    seq = batch["sequence"].to(device, non_blocking=True)
    target = batch["target"].to(device, non_blocking=True)
    return seq, target


def _head_output(model: nn.Module, seq: torch.Tensor, head: str) -> torch.Tensor:
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
        seq, target = _to_device(batch, device)
        sync = contextlib.nullcontext() if (not is_ddp or i == n - 1) else model.no_sync()
        with sync:
            with autocast(device, amp):
                pred = _head_output(model, seq, head)
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


# ================================================================ evaluation


@dataclass(frozen=True)
class EvalResult:
    """Loss and per-track metrics of one pass over a split.

    Attributes
    ----------
    loss
        Mean loss over the sequences (over all processes).
    metrics
        Per-track Pearson r and R² over all bins of all sequences.
    by_assay
        Mean r per assay (empty without assay labels).
    sequences
        Number of sequences seen (over all processes).
    head
        Head evaluated.
    """

    loss: float
    metrics: TrackMetrics
    by_assay: dict[str, float]
    sequences: int
    head: str

    @property
    def mean_r(self) -> float:
        """Mean per-track Pearson r (tracks with undefined r left out)."""
        return self.metrics.mean_r

    def summary(self) -> dict[str, Any]:
        """Scalar summary: loss, mean r, mean R², per-assay r, counts."""
        return {
            "loss": self.loss,
            "mean_r": self.mean_r,
            "mean_r2": self.metrics.mean_r2,
            "by_assay": dict(self.by_assay),
            "sequences": self.sequences,
            "tracks": int(self.metrics.pearson_r.shape[0]),
            "undefined_tracks": self.metrics.undefined,
        }

    def per_track(self, track_sheet: Any | None = None) -> list[dict[str, Any]]:
        """One record per track: index, r, R² (and identifier / assay / description)."""
        rows = []
        for i, (r, r2) in enumerate(zip(self.metrics.pearson_r, self.metrics.r2, strict=True)):
            row: dict[str, Any] = {"index": i, "pearson_r": float(r), "r2": float(r2)}
            if track_sheet is not None and i < len(track_sheet):
                t = track_sheet[i]
                row.update(identifier=t.identifier, assay=t.assay, description=t.description)
            rows.append(row)
        return rows


def _assays_of(track_sheet: Any | None, assays: Sequence[str] | None) -> list[str] | None:
    if assays is not None:
        return list(assays)
    if track_sheet is not None:
        return [t.assay for t in track_sheet]
    return None


@torch.no_grad()
def evaluate(
    model: nn.Module,
    loader: DataLoader | Iterator[Batch],
    *,
    head: str,
    device: torch.device | str | None = None,
    amp: bool = True,
    loss_fn: LossFn | None = None,
    track_sheet: Any | None = None,
    assays: Sequence[str] | None = None,
    max_batches: int | None = None,
) -> EvalResult:
    """Loss and streaming per-track Pearson r of ``model`` over ``loader``.

    The model runs in eval mode (its mode is restored afterwards). When a process group is
    running, every process must call this on its own shard; the sums are all-reduced, so every
    process returns the metrics of the whole split.

    Parameters
    ----------
    model
        The model (a DDP wrapper is unwrapped).
    loader
        Batches of sample dicts.
    head
        Head to evaluate.
    device
        Compute device (default: the model's).
    amp
        bf16 autocast on CUDA.
    loss_fn
        Loss reported alongside (default: Poisson).
    track_sheet
        :class:`~enformer.data.tracks.TrackSheet` of the head, for per-assay means.
    assays
        Assay label per track (instead of a sheet).
    max_batches
        Stop after this many batches (per process).

    Returns
    -------
    EvalResult
        Loss, per-track metrics and per-assay means.
    """
    net = unwrap(model)
    if device is None:
        device = next(net.parameters()).device
    device = torch.device(device)
    loss_fn = loss_fn or get_loss("poisson")
    was_training = net.training
    net.eval()
    metric: PearsonR | None = None
    loss_sum = torch.zeros(2, dtype=torch.float64)  # (sum of batch losses × size, sequences)
    try:
        for i, batch in enumerate(loader):
            if max_batches is not None and i >= max_batches:
                break
            seq, target = _to_device(batch, device)
            with autocast(device, amp):
                pred = _head_output(net, seq, head)
            pred = align_bins(pred, target).float()
            if metric is None:
                metric = PearsonR(pred.shape[-1])
            metric.update(pred, target)
            loss_sum[0] += float(loss_fn(pred, target.float())) * seq.shape[0]
            loss_sum[1] += seq.shape[0]
    finally:
        net.train(was_training)
    metric, loss_sum = _reduce_eval(metric, loss_sum, net, head)
    if metric is None:
        raise ValueError("the evaluation loader yielded no batches")
    metrics = metric.compute()
    labels = _assays_of(track_sheet, assays)
    if labels is not None and len(labels) != metrics.pearson_r.shape[0]:
        log.warning(
            "track sheet has %d tracks but the head has %d: no per-assay means",
            len(labels),
            metrics.pearson_r.shape[0],
        )
        labels = None
    by_assay = per_assay_means(metrics.pearson_r, labels) if labels is not None else {}
    n = int(loss_sum[1])
    return EvalResult(
        loss=float(loss_sum[0] / max(n, 1)),
        metrics=metrics,
        by_assay=by_assay,
        sequences=n,
        head=head,
    )


def _reduce_eval(
    metric: PearsonR | None, loss_sum: torch.Tensor, net: nn.Module, head: str
) -> tuple[PearsonR | None, torch.Tensor]:
    import torch.distributed as dist

    if not (dist.is_available() and dist.is_initialized()) or dist.get_world_size() == 1:
        return metric, loss_sum
    if metric is None:  # an empty shard still takes part in the reduction
        metric = PearsonR(int(net.config.heads[head]))
    metric.all_reduce()
    buffer = loss_sum.clone()
    if dist.get_backend() == "nccl":
        buffer = buffer.cuda()
    dist.all_reduce(buffer)
    return metric, buffer.cpu()


# ======================================================================= fit


@dataclass
class TrainState:
    """Progress of a run (saved in every checkpoint).

    Attributes
    ----------
    step
        Optimiser updates made.
    epoch
        Current epoch (0-based).
    batch_in_epoch
        Loader batches (micro-batches) of the current epoch consumed so far.
    best_metric
        Best validation mean r so far.
    best_step
        Step of ``best_metric``.
    evals_since_best
        Evaluations since the best one (for early stopping).
    stopped_early
        Whether early stopping ended the run.
    """

    step: int = 0
    epoch: int = 0
    batch_in_epoch: int = 0
    best_metric: float | None = None
    best_step: int | None = None
    evals_since_best: int = 0
    stopped_early: bool = False

    def to_dict(self) -> dict[str, Any]:
        """Plain dict (for the checkpoint)."""
        return dataclasses.asdict(self)


@dataclass(frozen=True)
class FitResult:
    """Outcome of :func:`fit`.

    Attributes
    ----------
    state
        Final progress.
    losses
        Training loss of every update made by *this* call, in order.
    last_eval
        Summary of the last evaluation (``None`` without validation data).
    run_dir
        The run folder.
    resumed_from
        Step the run resumed from (``None`` for a fresh start).
    finished
        Whether the run reached its end (steps, epochs or early stopping) rather than
        ``stop_at_step``.
    """

    state: TrainState
    losses: list[float]
    last_eval: dict[str, Any] | None
    run_dir: Path
    resumed_from: int | None
    finished: bool
    history: list[dict[str, Any]] = field(default_factory=list)


def export_model(
    model: nn.Module,
    directory: str | Path,
    *,
    track_sheet_text: str | None = None,
    head: str | None = None,
) -> Path:
    """Save ``model`` with :func:`enformer.weights.save_pretrained`, LoRA adapters merged.

    The model itself is left untouched (a merged copy is saved). The head's track sheet, when
    given, is written beside the weights as ``targets_{head}.txt``, where
    :func:`enformer.data.tracks.find_track_sheet` looks for it.

    Returns
    -------
    Path
        The directory.
    """
    from ..weights import save_pretrained

    net = unwrap(model)
    if has_lora(net):
        net = merge_lora(copy.deepcopy(net))
    out = save_pretrained(net, directory)
    if track_sheet_text is not None and head is not None:
        path = Path(directory) / f"targets_{head}.txt"
        tmp = path.with_suffix(".txt.tmp")
        tmp.write_text(track_sheet_text, encoding="utf-8")
        tmp.replace(path)
    return out


def _resolve_resume(config: TrainConfig, run_dir: Path) -> Path | None:
    existing = run_dir / CHECKPOINT_NAME
    if config.resume == "auto":
        return existing if existing.is_file() else None
    if config.resume == "never":
        if existing.is_file():
            raise FileExistsError(
                f"{existing} exists and resume=never: choose another run_dir or resume=auto"
            )
        return None
    path = Path(config.resume)
    if path.is_dir():
        path = path / CHECKPOINT_NAME
    if not path.is_file():
        raise FileNotFoundError(f"checkpoint to resume not found: {path}")
    return path


_TRAJECTORY_KEYS = ("seed", "batch_size", "accumulation_steps", "head", "loss", "model", "data")


def _warn_config_changes(saved: dict[str, Any], current: dict[str, Any]) -> None:
    changed = [k for k in _TRAJECTORY_KEYS if saved.get(k) != current.get(k)]
    if saved.get("optim") != current.get("optim"):
        changed.append("optim")
    if changed:
        log.warning(
            "resuming with a configuration that differs from the checkpoint's in %s: the run "
            "will not be an exact continuation",
            ", ".join(changed),
        )


def _epoch_seed(seed: int, epoch: int) -> int:
    return int(np.random.SeedSequence([seed, epoch, 7]).generate_state(1)[0])


def _epoch_iterator(
    loader: DataLoader, *, epoch: int, start_batch: int, seed: int
) -> Iterator[Batch]:
    """The loader's batches of ``epoch`` from ``start_batch`` on, leaving global RNGs untouched."""
    sampler = loader.batch_sampler if loader.batch_sampler is not None else loader.sampler
    for obj in (sampler, getattr(loader, "sampler", None), loader.dataset):
        if obj is not None and hasattr(obj, "set_epoch"):
            obj.set_epoch(epoch)
    skip = start_batch
    if start_batch and hasattr(sampler, "set_start"):
        sampler.set_start(start_batch)
        skip = 0
    elif start_batch:
        log.warning(
            "the loader's sampler cannot skip batches: re-reading %d batches to resume "
            "(exact only if its order depends on the epoch alone)",
            start_batch,
        )
    if loader.generator is not None:
        loader.generator.manual_seed(_epoch_seed(seed, epoch))
    with torch.random.fork_rng(devices=[]):
        it = iter(loader)
    for _ in range(skip):
        next(it, None)
    return it


def fit(
    model: nn.Module,
    train_loader: DataLoader | Dataset,
    *,
    config: TrainConfig,
    valid_loader: DataLoader | Dataset | None = None,
    track_sheet: Any | None = None,
    track_sheet_path: str | Path | None = None,
    callbacks: Sequence[Callable[[dict[str, Any]], None]] = (),
    stop_at_step: int | None = None,
    env: DistEnv | None = None,
) -> FitResult:
    """Train ``model`` as ``config`` says, resuming from ``run_dir/checkpoint.pt`` if present.

    Parameters
    ----------
    model
        An :class:`~enformer.model.Enformer` (prepared for fine-tuning if wanted). It is
        trained in place: it is moved to the run's device and, under DDP, its BatchNorms are
        replaced by synchronised ones (same parameter names; plain BatchNorm outside DDP).
    train_loader
        A data set of sample dicts (batched by an
        :class:`~enformer.train.data.EpochBatchSampler`, sharded over processes) or a ready
        DataLoader (whose sampler should have ``set_epoch``/``set_start`` for exact resume).
    config
        The run's configuration.
    valid_loader
        Validation data set or loader (sharded over processes when a data set).
    track_sheet
        The trained head's :class:`~enformer.data.tracks.TrackSheet` (per-assay metrics).
    track_sheet_path
        The sheet's file; its path and contents go into every checkpoint and beside exports.
    callbacks
        Called with every training record (each update) and evaluation record.
    stop_at_step
        Stop after this update, writing a checkpoint, as if the job had been killed (for time-
        limited jobs and tests); ``config.steps`` still defines the schedule.
    env
        Process environment (default: read from ``torch.distributed``).

    Returns
    -------
    FitResult
        Final state, the losses of this call, the last evaluation and the run folder.
    """
    env = env or current_env(config.device)
    device = env.device
    run_dir = Path(config.run_dir)
    cfg_dict = config_to_dict(config)
    resume_path = _resolve_resume(config, run_dir)
    if env.is_main:
        run_dir.mkdir(parents=True, exist_ok=True)
        tmp = run_dir / ".config.yaml.tmp"
        tmp.write_text(dump_config(config), encoding="utf-8")
        tmp.replace(run_dir / "config.yaml")
    sheet_text = None
    if track_sheet_path is not None:
        sheet_text = Path(track_sheet_path).read_text(encoding="utf-8")

    net = unwrap(model).to(device)
    if config.head not in net.heads:
        raise KeyError(f"head {config.head!r} not in the model's heads {sorted(net.heads)}")
    if config.model.gradient_checkpointing:
        net.set_gradient_checkpointing(True)
    if env.distributed and config.sync_batchnorm:
        frozen = frozen_batchnorm_names(net)
        net = convert_sync_batchnorm(net, device)
        if frozen:
            for name in frozen:
                freeze_batchnorm(net.get_submodule(name))

    state = TrainState()
    ckpt = None
    if resume_path is not None:
        ckpt = load_checkpoint(resume_path, map_location="cpu")
        net.load_state_dict(ckpt["model"])
        state = TrainState(**ckpt["progress"])
        _warn_config_changes(ckpt.get("train_config", {}), cfg_dict)
        log.info("resuming from %s at step %d", resume_path, state.step)
    else:
        seed_everything(config.seed + env.rank)

    ddp = wrap_ddp(net, env)
    optimizer = build_optimizer(
        net,
        name=config.optim.name,
        lr=config.optim.lr,
        weight_decay=config.optim.weight_decay,
        betas=config.optim.betas,
        eps=config.optim.eps,
        trunk_lr_scale=config.optim.trunk_lr_scale,
    )
    scheduler = build_scheduler(
        optimizer,
        warmup_steps=config.optim.warmup_steps,
        total_steps=config.steps,
        schedule=config.optim.schedule,
        min_lr_ratio=config.optim.min_lr_ratio,
    )
    if ckpt is not None:
        optimizer.load_state_dict(ckpt["optimizer"])
        scheduler.load_state_dict(ckpt["scheduler"])
        rng = ckpt.get("rng") or []
        if len(rng) == env.world_size:
            restore_rng_state(rng[env.rank])
        else:
            log.warning(
                "checkpoint holds RNG states of %d processes, this run has %d: dropout will not "
                "repeat exactly (the data order and seeded augmentation still do)",
                len(rng),
                env.world_size,
            )
            seed_everything(config.seed + env.rank + state.step)

    micro = config.micro_batch_size(env.world_size)
    if isinstance(train_loader, DataLoader):
        loader = train_loader
    else:
        loader = make_train_loader(
            train_loader,
            batch_size=micro,
            seed=config.seed,
            rank=env.rank,
            world_size=env.world_size,
            num_workers=config.data.num_workers,
        )
    valid_loader = _eval_loader(valid_loader, config, env)
    loss_fn = get_loss(config.loss, total_weight=config.total_weight)
    logger = RunLogger(
        run_dir,
        enabled=env.is_main,
        resume_step=state.step if ckpt is not None else None,
        tensorboard=config.tensorboard,
    )

    def checkpoint() -> None:
        rng = all_gather_object(capture_rng_state())
        if env.is_main:
            save_checkpoint(
                run_dir / CHECKPOINT_NAME,
                {
                    "model": net.state_dict(),
                    "model_config": net.config.to_dict(),
                    "optimizer": optimizer.state_dict(),
                    "scheduler": scheduler.state_dict(),
                    "progress": state.to_dict(),
                    "rng": rng,
                    "train_config": cfg_dict,
                    "track_sheet": {
                        "path": str(track_sheet_path) if track_sheet_path else None,
                        "text": sheet_text,
                    },
                    "world_size": env.world_size,
                    "versions": _versions(),
                },
            )
        barrier()

    last_eval: dict[str, Any] | None = None
    history: list[dict[str, Any]] = []

    def run_eval() -> bool:
        """Evaluate, log, track the best; return whether early stopping fires."""
        nonlocal last_eval
        assert valid_loader is not None
        result = evaluate(
            net,
            valid_loader,
            head=config.head,
            device=device,
            amp=config.amp,
            loss_fn=loss_fn,
            track_sheet=track_sheet,
            max_batches=config.max_eval_batches,
        )
        summary = result.summary()
        metric = summary["mean_r"]
        improved = math.isfinite(metric) and (
            state.best_metric is None
            or metric > state.best_metric + config.early_stopping_min_delta
        )
        if improved:
            state.best_metric, state.best_step, state.evals_since_best = metric, state.step, 0
            if env.is_main:
                export_model(net, run_dir / "best", track_sheet_text=sheet_text, head=config.head)
                report = _eval_report(result, state, track_sheet)
                _write_json(run_dir / "best" / "metrics.json", report)
        else:
            state.evals_since_best += 1
        record = {"step": state.step, "epoch": state.epoch, **summary, "best": improved}
        logger.eval(record)
        history.append({"kind": "eval", **record})
        for cb in callbacks:
            cb({"kind": "eval", **record})
        last_eval = summary
        log.info(
            "step %d: valid loss %.4f, mean r %.4f%s",
            state.step,
            summary["loss"],
            metric,
            " (best)" if improved else "",
        )
        patience = config.early_stopping_patience
        return patience is not None and state.evals_since_best >= patience

    resumed_from = state.step if ckpt is not None else None
    losses: list[float] = []
    finished = False
    stopped = False
    was_training = net.training
    ddp.train()
    t0 = time.perf_counter()
    try:
        while not stopped:
            if state.step >= config.steps or state.stopped_early:
                finished = True
                break
            if config.max_epochs is not None and state.epoch >= config.max_epochs:
                finished = True
                break
            batches = _epoch_iterator(
                loader, epoch=state.epoch, start_batch=state.batch_in_epoch, seed=config.seed
            )
            pending: list[Batch] = []
            steps_before, started_at = state.step, state.batch_in_epoch
            for batch in batches:
                pending.append(batch)
                state.batch_in_epoch += 1
                if len(pending) < config.accumulation_steps:
                    continue
                result = train_step(
                    ddp,
                    pending,
                    optimizer,
                    head=config.head,
                    loss_fn=loss_fn,
                    device=device,
                    scheduler=scheduler,
                    clip_norm=config.optim.clip_norm,
                    amp=config.amp,
                )
                pending = []
                state.step += 1
                losses.append(result.loss)
                record = {
                    "step": state.step,
                    "epoch": state.epoch,
                    "loss": result.loss,
                    "lr": result.lr,
                    "grad_norm": result.grad_norm,
                    "seconds": round(time.perf_counter() - t0, 3),
                }
                for cb in callbacks:
                    cb({"kind": "train", **record})
                if state.step % config.log_every == 0 or state.step == config.steps:
                    logger.train(record)
                    log.info(
                        "step %d: loss %.5f, lr %.3g, |g| %.3g",
                        state.step,
                        result.loss,
                        result.lr,
                        result.grad_norm,
                    )
                end = state.step >= config.steps
                if valid_loader is not None and (
                    (config.eval_every and state.step % config.eval_every == 0) or end
                ):
                    if run_eval():
                        state.stopped_early = True
                        log.info(
                            "early stopping at step %d (best %s at step %s)",
                            state.step,
                            state.best_metric,
                            state.best_step,
                        )
                if stop_at_step is not None and state.step >= stop_at_step and not end:
                    checkpoint()
                    stopped = True
                    break
                if end or state.stopped_early or state.step % config.checkpoint_every == 0:
                    checkpoint()
                if end or state.stopped_early:
                    break
            else:
                if state.step == steps_before and started_at == 0:
                    raise ValueError(
                        f"the training loader yields fewer than accumulation_steps="
                        f"{config.accumulation_steps} batches per epoch: no update possible"
                    )
                state.epoch += 1
                state.batch_in_epoch = 0
                continue
        if finished:
            if env.is_main:
                export_model(net, run_dir / "final", track_sheet_text=sheet_text, head=config.head)
                _write_json(
                    run_dir / "summary.json",
                    {
                        "progress": state.to_dict(),
                        "last_eval": last_eval,
                        "resumed_from": resumed_from,
                        "config": cfg_dict,
                    },
                )
            barrier()
    finally:
        logger.close()
        net.train(was_training)
    return FitResult(
        state=state,
        losses=losses,
        last_eval=last_eval,
        run_dir=run_dir,
        resumed_from=resumed_from,
        finished=finished,
        history=history,
    )


def _eval_loader(
    data: DataLoader | Dataset | None, config: TrainConfig, env: DistEnv
) -> DataLoader | None:
    from .data import make_eval_loader

    if data is None or isinstance(data, DataLoader):
        return data
    return make_eval_loader(
        data,
        batch_size=config.eval_batch_size,
        rank=env.rank,
        world_size=env.world_size,
        num_workers=config.data.num_workers,
    )


def _eval_report(result: EvalResult, state: TrainState, track_sheet: Any | None) -> dict:
    return {"step": state.step, **result.summary(), "per_track": result.per_track(track_sheet)}


def _write_json(path: Path, data: Any) -> None:
    from .runlog import _json_safe

    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.tmp")
    tmp.write_text(json.dumps(_json_safe(data), indent=2, default=str) + "\n", encoding="utf-8")
    tmp.replace(path)


def _versions() -> dict[str, str]:
    from ..version import __version__

    return {"torch": str(torch.__version__), "enformer": str(__version__)}


def config_of_checkpoint(path: str | Path) -> TrainConfig:
    """The :class:`~enformer.train.config.TrainConfig` stored in a checkpoint."""
    return config_from_dict(load_checkpoint(path)["train_config"])
