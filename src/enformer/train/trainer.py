"""A whole training run: :class:`Trainer`, and :func:`fit`, which builds one and runs it.

:func:`fit` runs a :class:`~enformer.train.config.TrainConfig`: DDP with synchronised BatchNorm
when launched by ``torchrun``, bf16 autocast on CUDA (float32 on CPU), activation checkpointing,
periodic evaluation with early stopping on the validation mean r, CSV / JSON lines logs, atomic
self-describing checkpoints, and **exact resume**. A :class:`Trainer` holds the run's parts
(model, optimiser, schedule, loaders, progress, logs); its methods are the steps of the run:
:meth:`~Trainer.step` (one update), :meth:`~Trainer.validate`, :meth:`~Trainer.checkpoint`,
:meth:`~Trainer.export_best` and :meth:`~Trainer.finish`, driven by :meth:`~Trainer.run`.

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
  from ``(seed, epoch)``: :func:`~enformer.train.data.epoch_batches`);
* model, optimiser and scheduler states are saved together, and evaluation consumes no random
  numbers.

Data sets with random augmentation resume exactly when their draws depend only on their seed,
the epoch (``set_epoch`` is called when they define it) and the example index.
"""

from __future__ import annotations

import logging
import math
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch
from torch import nn
from torch.utils.data import DataLoader, Dataset

from ..io.jobs import write_bytes_atomic
from . import distributed as dist
from .checkpoint import (
    CHECKPOINT_NAME,
    TrainState,
    capture_rng_state,
    find_resume_checkpoint,
    load_checkpoint,
    restore_rng_state,
    save_checkpoint,
    seed_everything,
    warn_config_changes,
    writer_versions,
)
from .config import TrainConfig, config_to_dict, dump_config
from .data import epoch_batches, make_eval_loader, make_train_loader
from .distributed import DistEnv
from .evaluation import EvalResult, evaluate
from .finetune import export_model, freeze_batchnorm, frozen_batchnorm_names
from .losses import get_loss
from .optim import build_optimizer, build_scheduler
from .runlog import RunLogger, write_json
from .step import Batch, StepResult, train_step

__all__ = ["FitResult", "Trainer", "fit"]

log = logging.getLogger(__name__)

Callback = Callable[[dict[str, Any]], None]


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
    history
        Every evaluation record of this call, in order.
    """

    state: TrainState
    losses: list[float]
    last_eval: dict[str, Any] | None
    run_dir: Path
    resumed_from: int | None
    finished: bool
    history: list[dict[str, Any]] = field(default_factory=list)


# ================================================================== trainer


class Trainer:
    """One training run of a :class:`~enformer.train.config.TrainConfig`.

    Building a Trainer prepares the run: it writes ``run_dir/config.yaml``, moves the model to
    the run's device (synchronising its BatchNorms under DDP), resumes from the checkpoint
    ``config.resume`` names (or seeds the RNGs for a fresh start), builds the optimiser, the
    schedule, the loaders and the loss, and opens the logs. :meth:`run` then trains; it closes
    the logs when it returns (call :meth:`close` when driving :meth:`step` yourself).

    Parameters
    ----------
    model, train_loader, config, env, valid_loader, track_sheet, track_sheet_path, callbacks
        As for :func:`fit`.

    Attributes
    ----------
    config, env, run_dir
        The run's configuration, process environment and folder.
    net
        The model being trained (never the DDP wrapper).
    ddp
        What the updates run through: ``net`` wrapped in DDP when distributed, else ``net``.
    optimizer, scheduler
        The optimiser and its learning-rate schedule.
    loader, valid_loader
        Training and validation loaders (``valid_loader`` may be ``None``).
    state
        Progress of the run (saved in every checkpoint).
    resumed_from
        Step the run resumed from (``None`` for a fresh start).
    losses
        Training loss of every update made by this Trainer, in order.
    history
        Every evaluation record of this Trainer (``"kind": "eval"``), in order.
    last_eval
        Summary of the last evaluation (``None`` before the first).
    """

    def __init__(
        self,
        model: nn.Module,
        train_loader: DataLoader | Dataset,
        *,
        config: TrainConfig,
        env: DistEnv | None = None,
        valid_loader: DataLoader | Dataset | None = None,
        track_sheet: Any | None = None,
        track_sheet_path: str | Path | None = None,
        callbacks: Sequence[Callback] = (),
    ) -> None:
        self.config = config
        self.env = env or dist.current_env(config.device)
        self.device = self.env.device
        self.run_dir = Path(config.run_dir)
        self.track_sheet = track_sheet
        self.track_sheet_path = track_sheet_path
        self.callbacks = callbacks
        self._config_dict = config_to_dict(config)
        resume_path = find_resume_checkpoint(config.resume, self.run_dir)
        self._write_config()
        self._sheet_text = None
        if track_sheet_path is not None:
            self._sheet_text = Path(track_sheet_path).read_text(encoding="utf-8")

        self.net = self._prepare_model(model)
        ckpt = None if resume_path is None else load_checkpoint(resume_path, map_location="cpu")
        self.state = self._resume_model(ckpt, resume_path)
        self.ddp = dist.wrap_ddp(self.net, self.env)
        self.optimizer, self.scheduler = self._build_optimizer()
        if ckpt is not None:
            self._resume_training(ckpt)
        self.resumed_from = self.state.step if ckpt is not None else None

        self.loader = self._train_loader(train_loader)
        self.valid_loader = self._valid_loader(valid_loader)
        self.loss_fn = get_loss(config.loss, total_weight=config.total_weight)
        self.logger = RunLogger(
            self.run_dir,
            enabled=self.env.is_main,
            resume_step=self.resumed_from,
            tensorboard=config.tensorboard,
        )
        self.losses: list[float] = []
        self.history: list[dict[str, Any]] = []
        self.last_eval: dict[str, Any] | None = None
        self._t0 = time.perf_counter()

    # ------------------------------------------------------------- setup / resume

    def _write_config(self) -> None:
        if not self.env.is_main:
            return
        write_bytes_atomic(self.run_dir / "config.yaml", dump_config(self.config).encode("utf-8"))

    def _prepare_model(self, model: nn.Module) -> nn.Module:
        """``model`` on the run's device, checkpointing as configured, BatchNorms synchronised."""
        config = self.config
        net = dist.unwrap(model).to(self.device)
        if config.head not in net.heads:
            raise KeyError(f"head {config.head!r} not in the model's heads {sorted(net.heads)}")
        if config.model.gradient_checkpointing:
            net.set_gradient_checkpointing(True)
        if self.env.distributed and config.sync_batchnorm:
            frozen = frozen_batchnorm_names(net)
            net = dist.convert_sync_batchnorm(net, self.device)
            for name in frozen:
                freeze_batchnorm(net.get_submodule(name))
        return net

    def _resume_model(self, ckpt: dict[str, Any] | None, path: Path | None) -> TrainState:
        """Load the checkpoint's weights and return its progress; seed the RNGs on a fresh start."""
        if ckpt is None:
            seed_everything(self.config.seed + self.env.rank)
            return TrainState()
        self.net.load_state_dict(ckpt["model"])
        state = TrainState(**ckpt["progress"])
        warn_config_changes(ckpt.get("train_config", {}), self._config_dict)
        log.info("resuming from %s at step %d", path, state.step)
        return state

    def _build_optimizer(
        self,
    ) -> tuple[torch.optim.Optimizer, torch.optim.lr_scheduler.LRScheduler]:
        config = self.config
        optimizer = build_optimizer(
            self.net,
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
        return optimizer, scheduler

    def _resume_training(self, ckpt: dict[str, Any]) -> None:
        """Restore the optimiser, the schedule and this rank's RNG states from ``ckpt``."""
        env = self.env
        self.optimizer.load_state_dict(ckpt["optimizer"])
        self.scheduler.load_state_dict(ckpt["scheduler"])
        rng = ckpt.get("rng") or []
        if len(rng) == env.world_size:
            restore_rng_state(rng[env.rank])
            return
        log.warning(
            "checkpoint holds RNG states of %d processes, this run has %d: dropout will not "
            "repeat exactly (the data order and seeded augmentation still do)",
            len(rng),
            env.world_size,
        )
        seed_everything(self.config.seed + env.rank + self.state.step)

    def _train_loader(self, data: DataLoader | Dataset) -> DataLoader:
        micro = self.config.micro_batch_size(self.env.world_size)  # checks the batch divides
        if isinstance(data, DataLoader):
            return data
        return make_train_loader(
            data,
            batch_size=micro,
            seed=self.config.seed,
            rank=self.env.rank,
            world_size=self.env.world_size,
            num_workers=self.config.data.num_workers,
        )

    def _valid_loader(self, data: DataLoader | Dataset | None) -> DataLoader | None:
        if data is None or isinstance(data, DataLoader):
            return data
        return make_eval_loader(
            data,
            batch_size=self.config.eval_batch_size,
            rank=self.env.rank,
            world_size=self.env.world_size,
            num_workers=self.config.data.num_workers,
        )

    # ---------------------------------------------------------------- the run

    @property
    def done(self) -> bool:
        """Whether the run has reached its end: its steps, its epochs or early stopping."""
        state, config = self.state, self.config
        if state.step >= config.steps or state.stopped_early:
            return True
        return config.max_epochs is not None and state.epoch >= config.max_epochs

    def run(self, stop_at_step: int | None = None) -> FitResult:
        """Train until :attr:`done` or ``stop_at_step``; export and summarise a finished run.

        Parameters
        ----------
        stop_at_step
            Stop after this update, writing a checkpoint, as if the job had been killed.

        Returns
        -------
        FitResult
            Final state, the losses of this run, the last evaluation and the run folder.
        """
        finished = False
        was_training = self.net.training
        self.ddp.train()
        self._t0 = time.perf_counter()
        try:
            while not self.done:
                if self._run_epoch(stop_at_step):
                    break
            else:
                finished = True
                self.finish()
        finally:
            self.close()
            self.net.train(was_training)
        return FitResult(
            state=self.state,
            losses=self.losses,
            last_eval=self.last_eval,
            run_dir=self.run_dir,
            resumed_from=self.resumed_from,
            finished=finished,
            history=self.history,
        )

    def _run_epoch(self, stop_at_step: int | None) -> bool:
        """Train through the rest of the current epoch; return whether ``stop_at_step`` hit."""
        state, config = self.state, self.config
        batches = epoch_batches(
            self.loader, epoch=state.epoch, start_batch=state.batch_in_epoch, seed=config.seed
        )
        pending: list[Batch] = []
        steps_before, started_at = state.step, state.batch_in_epoch
        for batch in batches:
            pending.append(batch)
            state.batch_in_epoch += 1
            if len(pending) < config.accumulation_steps:
                continue
            self.step(pending)
            pending = []
            end = state.step >= config.steps
            if self._evaluation_due(end) and self.validate():
                state.stopped_early = True
                log.info(
                    "early stopping at step %d (best %s at step %s)",
                    state.step,
                    state.best_metric,
                    state.best_step,
                )
            if stop_at_step is not None and state.step >= stop_at_step and not end:
                self.checkpoint()
                return True
            if end or state.stopped_early or state.step % config.checkpoint_every == 0:
                self.checkpoint()
            if end or state.stopped_early:
                return False
        if state.step == steps_before and started_at == 0:
            raise ValueError(
                f"the training loader yields fewer than accumulation_steps="
                f"{config.accumulation_steps} batches per epoch: no update possible"
            )
        state.epoch += 1
        state.batch_in_epoch = 0
        return False

    def _evaluation_due(self, end: bool) -> bool:
        every = self.config.eval_every
        due = bool(every and self.state.step % every == 0) or end
        return self.valid_loader is not None and due

    # ------------------------------------------------------------ the steps

    def step(self, micro_batches: Sequence[Batch]) -> StepResult:
        """One optimiser update from ``micro_batches``: advance the step, log, call back."""
        config, state = self.config, self.state
        result = train_step(
            self.ddp,
            micro_batches,
            self.optimizer,
            head=config.head,
            loss_fn=self.loss_fn,
            device=self.device,
            scheduler=self.scheduler,
            clip_norm=config.optim.clip_norm,
            amp=config.amp,
        )
        state.step += 1
        self.losses.append(result.loss)
        record = {
            "step": state.step,
            "epoch": state.epoch,
            "loss": result.loss,
            "lr": result.lr,
            "grad_norm": result.grad_norm,
            "seconds": round(time.perf_counter() - self._t0, 3),
        }
        for cb in self.callbacks:
            cb({"kind": "train", **record})
        if state.step % config.log_every == 0 or state.step == config.steps:
            self.logger.train(record)
            log.info(
                "step %d: loss %.5f, lr %.3g, |g| %.3g",
                state.step,
                result.loss,
                result.lr,
                result.grad_norm,
            )
        return result

    def validate(self) -> bool:
        """Evaluate on the validation data, log, keep the best; return whether to stop early.

        Raises
        ------
        RuntimeError
            If the run has no validation data.
        """
        config, state = self.config, self.state
        if self.valid_loader is None:
            raise RuntimeError("the run has no validation data to evaluate on")
        result = evaluate(
            self.net,
            self.valid_loader,
            head=config.head,
            device=self.device,
            amp=config.amp,
            loss_fn=self.loss_fn,
            track_sheet=self.track_sheet,
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
            self.export_best(result)
        else:
            state.evals_since_best += 1
        record = {"step": state.step, "epoch": state.epoch, **summary, "best": improved}
        self.logger.eval(record)
        self.history.append({"kind": "eval", **record})
        for cb in self.callbacks:
            cb({"kind": "eval", **record})
        self.last_eval = summary
        log.info(
            "step %d: valid loss %.4f, mean r %.4f%s",
            state.step,
            summary["loss"],
            metric,
            " (best)" if improved else "",
        )
        patience = config.early_stopping_patience
        return patience is not None and state.evals_since_best >= patience

    def export_best(self, result: EvalResult) -> None:
        """Save the model to ``run_dir/best`` with ``result``'s per-track report (rank 0)."""
        if not self.env.is_main:
            return
        best = self.run_dir / "best"
        export_model(self.net, best, track_sheet_text=self._sheet_text, head=self.config.head)
        report = {
            "step": self.state.step,
            **result.summary(),
            "per_track": result.per_track(self.track_sheet),
        }
        write_json(best / "metrics.json", report)

    def checkpoint(self) -> None:
        """Write ``run_dir/checkpoint.pt`` with every rank's RNG states (collective call)."""
        rng = dist.all_gather_object(capture_rng_state())
        if self.env.is_main:
            save_checkpoint(
                self.run_dir / CHECKPOINT_NAME,
                {
                    "model": self.net.state_dict(),
                    "model_config": self.net.config.to_dict(),
                    "optimizer": self.optimizer.state_dict(),
                    "scheduler": self.scheduler.state_dict(),
                    "progress": self.state.to_dict(),
                    "rng": rng,
                    "train_config": self._config_dict,
                    "track_sheet": {
                        "path": str(self.track_sheet_path) if self.track_sheet_path else None,
                        "text": self._sheet_text,
                    },
                    "world_size": self.env.world_size,
                    "versions": writer_versions(),
                },
            )
        dist.barrier()

    def finish(self) -> None:
        """Export the model to ``run_dir/final`` and write ``summary.json`` (collective call)."""
        if self.env.is_main:
            export_model(
                self.net,
                self.run_dir / "final",
                track_sheet_text=self._sheet_text,
                head=self.config.head,
            )
            summary = {
                "progress": self.state.to_dict(),
                "last_eval": self.last_eval,
                "resumed_from": self.resumed_from,
                "config": self._config_dict,
            }
            write_json(self.run_dir / "summary.json", summary)
        dist.barrier()

    def close(self) -> None:
        """Close the logs (TensorBoard)."""
        self.logger.close()


def fit(
    model: nn.Module,
    train_loader: DataLoader | Dataset,
    *,
    config: TrainConfig,
    valid_loader: DataLoader | Dataset | None = None,
    track_sheet: Any | None = None,
    track_sheet_path: str | Path | None = None,
    callbacks: Sequence[Callback] = (),
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
    trainer = Trainer(
        model,
        train_loader,
        config=config,
        env=env,
        valid_loader=valid_loader,
        track_sheet=track_sheet,
        track_sheet_path=track_sheet_path,
        callbacks=callbacks,
    )
    return trainer.run(stop_at_step)
