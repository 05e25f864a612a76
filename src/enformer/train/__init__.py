"""Training and fine-tuning: losses, metrics, optimiser, loop, DDP, LoRA.

Importable functions (a whole run is a :class:`Trainer`, whose methods are its steps):

* :mod:`~enformer.train.losses` — :func:`poisson_loss`, :func:`poisson_multinomial_loss`;
* :mod:`~enformer.train.metrics` — streaming per-track :class:`PearsonR`;
* :mod:`~enformer.train.optim` — :func:`build_optimizer`, :func:`build_scheduler`,
  :func:`clip_grad_norm`;
* :mod:`~enformer.train.step` — :func:`train_step` (one update, gradient accumulation);
* :mod:`~enformer.train.evaluation` — :func:`evaluate` (loss and per-track r of a split);
* :mod:`~enformer.train.trainer` — :func:`fit`, a whole run, through a :class:`Trainer`;
* :mod:`~enformer.train.distributed` — DDP under ``torchrun`` with synchronised BatchNorm;
* :mod:`~enformer.train.finetune` — new heads, freezing, LoRA;
* :mod:`~enformer.train.config` — :class:`TrainConfig` and its YAML loading;
* :mod:`~enformer.train.run` — a whole run from a configuration (what the CLI calls).
"""

from .checkpoint import (
    TrainState,
    capture_rng_state,
    load_checkpoint,
    restore_rng_state,
    save_checkpoint,
)
from .config import (
    DataConfig,
    FinetuneConfig,
    ModelSpec,
    OptimConfig,
    TrainConfig,
    dump_config,
    load_config,
)
from .data import EpochBatchSampler, build_dataset, make_eval_loader, make_train_loader
from .distributed import (
    CrossReplicaBatchNorm1d,
    DistEnv,
    convert_sync_batchnorm,
    init_distributed,
    wrap_ddp,
)
from .evaluation import EvalResult, evaluate
from .finetune import (
    LoRALinear,
    add_heads,
    apply_lora,
    export_model,
    freeze_batchnorm,
    freeze_trunk,
    merge_lora,
    parse_head_spec,
    prepare_finetune,
    train_last_layers,
    unfreeze_batchnorm,
)
from .losses import get_loss, poisson_loss, poisson_loss_floor, poisson_multinomial_loss
from .metrics import PearsonR, TrackMetrics, per_assay_means
from .optim import build_optimizer, build_scheduler, clip_grad_norm, lr_factor
from .run import build_data, build_model, run_training
from .step import StepResult, forward_backward, train_step
from .trainer import FitResult, Trainer, fit

__all__ = [
    "CrossReplicaBatchNorm1d",
    "DataConfig",
    "DistEnv",
    "EpochBatchSampler",
    "EvalResult",
    "FinetuneConfig",
    "FitResult",
    "LoRALinear",
    "ModelSpec",
    "OptimConfig",
    "PearsonR",
    "StepResult",
    "TrackMetrics",
    "TrainConfig",
    "TrainState",
    "Trainer",
    "add_heads",
    "apply_lora",
    "build_data",
    "build_dataset",
    "build_model",
    "build_optimizer",
    "build_scheduler",
    "capture_rng_state",
    "clip_grad_norm",
    "convert_sync_batchnorm",
    "dump_config",
    "evaluate",
    "export_model",
    "fit",
    "forward_backward",
    "freeze_batchnorm",
    "freeze_trunk",
    "get_loss",
    "init_distributed",
    "load_checkpoint",
    "load_config",
    "lr_factor",
    "make_eval_loader",
    "make_train_loader",
    "merge_lora",
    "parse_head_spec",
    "per_assay_means",
    "poisson_loss",
    "poisson_loss_floor",
    "poisson_multinomial_loss",
    "prepare_finetune",
    "restore_rng_state",
    "run_training",
    "save_checkpoint",
    "train_last_layers",
    "train_step",
    "unfreeze_batchnorm",
    "wrap_ddp",
]
