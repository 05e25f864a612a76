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

from .config import (
    DataConfig,
    FinetuneConfig,
    ModelSpec,
    OptimConfig,
    TrainConfig,
    dump_config,
    load_config,
)
from .data import build_dataset, make_eval_loader, make_train_loader
from .evaluation import EvalResult, evaluate
from .finetune import (
    LoRALinear,
    add_heads,
    apply_lora,
    export_model,
    freeze_batchnorm,
    freeze_trunk,
    merge_lora,
    prepare_finetune,
    train_last_layers,
    unfreeze_batchnorm,
)
from .losses import get_loss, poisson_loss, poisson_multinomial_loss
from .metrics import PearsonR
from .optim import build_optimizer, build_scheduler
from .run import run_training
from .step import train_step
from .trainer import FitResult, Trainer, fit

__all__ = [
    "DataConfig",
    "EvalResult",
    "FinetuneConfig",
    "FitResult",
    "LoRALinear",
    "ModelSpec",
    "OptimConfig",
    "PearsonR",
    "TrainConfig",
    "Trainer",
    "add_heads",
    "apply_lora",
    "build_dataset",
    "build_optimizer",
    "build_scheduler",
    "dump_config",
    "evaluate",
    "export_model",
    "fit",
    "freeze_batchnorm",
    "freeze_trunk",
    "get_loss",
    "load_config",
    "make_eval_loader",
    "make_train_loader",
    "merge_lora",
    "poisson_loss",
    "poisson_multinomial_loss",
    "prepare_finetune",
    "run_training",
    "train_last_layers",
    "train_step",
    "unfreeze_batchnorm",
]
