"""The typed configuration of a training or fine-tuning run.

:class:`TrainConfig` is a frozen dataclass with four nested sections (``model``, ``data``,
``optim``, ``finetune``); every field carries a comment saying what it does. A run is described
by a YAML file whose keys mirror the fields, plus ``key=value`` overrides on the command line
with dotted keys for the sections::

    enformer train run.yaml steps=2000 optim.lr=1e-4 data.kind=npz data.path=arrays.npz

Values of overrides are parsed as YAML (``1e-4``, ``true``, ``[1, 2]``, ``{human: 74}``) and
then converted to the field's type, so ``optim.lr=5e-4`` is a float even though plain YAML
1.1 would read it as a string. Unknown keys are an error that names them. The resolved
configuration is written as ``config.yaml`` beside every run and stored inside every
checkpoint.
"""

from __future__ import annotations

import dataclasses
import difflib
import types
import typing
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Union

__all__ = [
    "DataConfig",
    "FinetuneConfig",
    "ModelSpec",
    "OptimConfig",
    "TrainConfig",
    "apply_overrides",
    "config_from_dict",
    "config_to_dict",
    "dump_config",
    "load_config",
]


@dataclass(frozen=True)
class ModelSpec:
    """Which model to train."""

    # EnformerConfig preset to build from scratch ("official" or "tiny"); ignored when
    # `weights` is given (the architecture then comes with the weights).
    preset: str = "official"
    # EnformerConfig field overrides on top of the preset or the weights' config,
    # e.g. {heads: {human: 74}, target_length: 512}.
    config: dict[str, Any] = field(default_factory=dict)
    # Start from these weights (anything enformer.weights.load_pretrained reads); None trains
    # from a random initialisation.
    weights: str | None = None
    # Recompute conv-tower and transformer activations in the backward pass to save memory.
    gradient_checkpointing: bool = False


@dataclass(frozen=True)
class DataConfig:
    """Where the examples come from and how they are augmented."""

    # "tfrecord" (Basenji/Enformer records), "bigwig" (BED + FASTA + BigWig tracks) or "npz"
    # (in-memory arrays).
    kind: str = "tfrecord"
    # tfrecord: data directory (statistics.json, tfrecords/, targets.txt); npz: the .npz file
    # (keys {split}_sequences and {split}_targets, or sequences + targets [+ split]);
    # bigwig: the BED file of intervals (4th column = split).
    path: str = ""
    # Genome FASTA: extends tfrecord windows to the model's input length; needed by bigwig.
    genome: str | None = None
    # bigwig: folder of the BigWig files named in the sheet's `file` column (default: as
    # written, or beside the sheet).
    tracks_dir: str | None = None
    # bigwig: BED of regions to avoid (e.g. the ENCODE blacklist); intervals whose target
    # region overlaps it are dropped.
    blacklist: str | None = None
    # Track sheet (Basenji targets.txt); default <path>/targets.txt for tfrecord. Stored in
    # every checkpoint and copied beside exported weights; its assays group the metrics.
    targets: str | None = None
    # Split names.
    train_split: str = "train"
    valid_split: str = "valid"
    test_split: str = "test"
    # Input length in bp given to the model; None = the records' length (tfrecord) or the
    # model's sequence_length (bigwig).
    sequence_length: int | None = None
    # Pool this many target bins into one (e.g. 4 turns 32-bp Basenji targets into 128-bp
    # bins): tfrecord pools by each track's sum_stat, npz sums; bigwig ignores it (its targets
    # are computed at the model's bin size).
    pool: int = 1
    # Random shift of the input by up to this many bp (training only).
    max_shift: int = 3
    # Random reverse complement (training only): targets reversed, strand pairs swapped.
    reverse_complement: bool = True
    # DataLoader worker processes (0 = load in the main process).
    num_workers: int = 0


@dataclass(frozen=True)
class OptimConfig:
    """Optimiser, schedule and clipping (defaults: the paper's recipe, Avsec et al. 2021)."""

    # "adam" or "adamw".
    name: str = "adam"
    # Peak learning rate.
    lr: float = 5e-4
    # Weight decay of matrices and kernels (L2 for adam, decoupled for adamw).
    weight_decay: float = 0.0
    # Adam's moment decay rates.
    betas: tuple[float, float] = (0.9, 0.999)
    # Adam's denominator epsilon.
    eps: float = 1e-8
    # Linear warm-up length in optimiser updates.
    warmup_steps: int = 5000
    # After the warm-up: "constant" or "cosine" (decaying to min_lr_ratio · lr at `steps`).
    schedule: str = "constant"
    # Floor of the cosine decay as a fraction of lr.
    min_lr_ratio: float = 0.0
    # Clip the gradients' global L2 norm to this value; None or 0 disables clipping.
    clip_norm: float | None = 0.2
    # Learning-rate multiplier of the trunk relative to the heads (fine-tuning often uses < 1).
    trunk_lr_scale: float = 1.0


@dataclass(frozen=True)
class FinetuneConfig:
    """How a pretrained model is adapted (see :mod:`enformer.train.finetune`)."""

    # New heads as "name:n_tracks" (e.g. ["k562:12"]); the head named by TrainConfig.head is
    # the one trained.
    heads: tuple[str, ...] = ()
    # Keep the pretrained heads next to the new ones.
    keep_heads: bool = False
    # Freeze every trunk parameter (only heads and LoRA adapters train).
    freeze_trunk: bool = False
    # Keep every BatchNorm in eval mode while training (statistics stay as loaded).
    freeze_batchnorm: bool = False
    # Train only the last N transformer blocks (and the final pointwise block) of the trunk.
    train_last_layers: int | None = None
    # LoRA rank on attention q/k/v/output and MLP linears; 0 disables LoRA.
    lora_rank: int = 0
    # LoRA scale numerator: the update is (alpha / rank) · B A.
    lora_alpha: float = 16.0
    # Dropout on the LoRA branch's input.
    lora_dropout: float = 0.0
    # Linears that get adapters: any of q, k, v, embedding, linear1, linear2.
    lora_targets: tuple[str, ...] = ("q", "k", "v", "embedding", "linear1", "linear2")
    # Fold the adapters into the weights before exporting (so exports load like any model).
    merge_lora: bool = True


@dataclass(frozen=True)
class TrainConfig:
    """Everything a training run needs; a run is reproducible from this and the data."""

    # Output folder: config.yaml, checkpoint.pt, logs, best/ and final/ weights.
    run_dir: str = "runs/enformer"
    # Seed of the model initialisation, data order, augmentation and dropout.
    seed: int = 0
    # Total optimiser updates.
    steps: int = 150_000
    # Stop after this many passes over the training data even if `steps` is not reached.
    max_epochs: int | None = None
    # Sequences per optimiser update over all processes and accumulation steps.
    batch_size: int = 64
    # Micro-batches accumulated per update (batch_size must divide by world size × this).
    accumulation_steps: int = 1
    # Head trained and evaluated.
    head: str = "human"
    # "poisson" (Enformer) or "poisson_multinomial" (Borzoi).
    loss: str = "poisson"
    # Weight of the total-count term of "poisson_multinomial".
    total_weight: float = 0.2
    # bf16 autocast on CUDA (always float32 on CPU, where bf16 is slow).
    amp: bool = True
    # "auto" (CUDA if available, else CPU), "cpu", "cuda" or "cuda:N".
    device: str = "auto"
    # Use BatchNorm statistics synchronised across processes under DDP (as in the paper).
    sync_batchnorm: bool = True
    # Evaluate on the validation split every this many updates (0: only at the end).
    eval_every: int = 1000
    # Sequences per evaluation batch (per process).
    eval_batch_size: int = 8
    # Evaluate on at most this many validation batches (per process); None = all.
    max_eval_batches: int | None = None
    # Stop when the validation mean Pearson r has not improved for this many evaluations.
    early_stopping_patience: int | None = None
    # Smallest increase of the validation mean r that counts as an improvement.
    early_stopping_min_delta: float = 0.0
    # Write checkpoint.pt every this many updates (and at the end and when stopping).
    checkpoint_every: int = 1000
    # Log the training loss every this many updates.
    log_every: int = 10
    # Also log to TensorBoard (when the tensorboard package is installed).
    tensorboard: bool = True
    # "auto": continue from run_dir/checkpoint.pt when it exists; "never": start afresh
    # (refusing to overwrite an existing checkpoint); or the path of a checkpoint to resume.
    resume: str = "auto"
    # The model to train.
    model: ModelSpec = field(default_factory=ModelSpec)
    # The data.
    data: DataConfig = field(default_factory=DataConfig)
    # Optimiser and schedule.
    optim: OptimConfig = field(default_factory=OptimConfig)
    # Fine-tuning options (all off: plain training).
    finetune: FinetuneConfig = field(default_factory=FinetuneConfig)

    def __post_init__(self) -> None:
        if self.steps < 1:
            raise ValueError(f"steps must be >= 1, got {self.steps}")
        if self.batch_size < 1 or self.accumulation_steps < 1:
            raise ValueError("batch_size and accumulation_steps must be >= 1")
        if self.eval_batch_size < 1:
            raise ValueError(f"eval_batch_size must be >= 1, got {self.eval_batch_size}")
        if self.batch_size % self.accumulation_steps:
            raise ValueError(
                f"batch_size {self.batch_size} is not divisible by accumulation_steps "
                f"{self.accumulation_steps}"
            )
        if self.loss not in ("poisson", "poisson_multinomial"):
            raise ValueError(f"loss must be 'poisson' or 'poisson_multinomial', got {self.loss!r}")
        if self.data.kind not in ("tfrecord", "bigwig", "npz"):
            raise ValueError(f"data.kind must be tfrecord, bigwig or npz, got {self.data.kind!r}")
        if self.optim.schedule not in ("constant", "cosine"):
            raise ValueError(
                f"optim.schedule must be 'constant' or 'cosine', got {self.optim.schedule!r}"
            )
        if self.optim.warmup_steps < 0:
            raise ValueError("optim.warmup_steps must be >= 0")

    def micro_batch_size(self, world_size: int = 1) -> int:
        """Sequences per forward pass on one process.

        Parameters
        ----------
        world_size
            Number of processes.

        Returns
        -------
        int
            ``batch_size / (world_size · accumulation_steps)``.
        """
        per = world_size * self.accumulation_steps
        if self.batch_size % per:
            raise ValueError(
                f"batch_size {self.batch_size} is not divisible by world size {world_size} × "
                f"accumulation_steps {self.accumulation_steps}"
            )
        return self.batch_size // per


# ============================================================== (de)serialise


def config_to_dict(config: Any) -> dict[str, Any]:
    """Plain (YAML/JSON-ready) nested dict of a config dataclass; tuples become lists."""

    def plain(value: Any) -> Any:
        if dataclasses.is_dataclass(value) and not isinstance(value, type):
            return {f.name: plain(getattr(value, f.name)) for f in dataclasses.fields(value)}
        if isinstance(value, (list, tuple)):
            return [plain(v) for v in value]
        if isinstance(value, Mapping):
            return {str(k): plain(v) for k, v in value.items()}
        return value

    return plain(config)


def config_from_dict(data: Mapping[str, Any], cls: type = TrainConfig) -> Any:
    """Build ``cls`` (a config dataclass) from a nested dict, converting value types.

    Parameters
    ----------
    data
        Nested mapping of field values; missing fields keep their defaults.
    cls
        Dataclass to build.

    Returns
    -------
    object
        An instance of ``cls``.

    Raises
    ------
    ValueError
        For an unknown key (with close matches suggested) or a value of the wrong type.
    """
    return _build(cls, data, prefix="")


def apply_overrides(data: Mapping[str, Any], overrides: Sequence[str]) -> dict[str, Any]:
    """Apply ``key=value`` strings (dotted keys for sections) to a nested dict.

    Parameters
    ----------
    data
        Nested configuration dict (left unchanged).
    overrides
        Items such as ``"optim.lr=1e-4"`` or ``"finetune.heads=[k562:12]"``; the value is
        parsed as YAML.

    Returns
    -------
    dict
        A new nested dict.
    """
    import copy

    import yaml

    out = copy.deepcopy(dict(data))
    for item in overrides:
        key, sep, raw = item.partition("=")
        key = key.strip()
        if not sep or not key:
            raise ValueError(f"override {item!r} is not of the form key=value")
        try:
            value = yaml.safe_load(raw) if raw.strip() else None
        except yaml.YAMLError:
            value = raw
        node = out
        parts = key.split(".")
        for part in parts[:-1]:
            child = node.get(part)
            if child is None:
                child = {}
                node[part] = child
            if not isinstance(child, dict):
                raise ValueError(f"override {item!r}: {part!r} is not a section")
            node = child
        node[parts[-1]] = value
    return out


def load_config(path: str | Path | None = None, overrides: Sequence[str] = ()) -> TrainConfig:
    """Read a YAML run description and apply ``key=value`` overrides.

    Parameters
    ----------
    path
        YAML file (``None``: start from the defaults).
    overrides
        ``key=value`` strings, dotted keys for sections, applied in order.

    Returns
    -------
    TrainConfig
        The resolved configuration.
    """
    import yaml

    data: dict[str, Any] = {}
    if path is not None:
        path = Path(path)
        if not path.is_file():
            raise FileNotFoundError(f"config file not found: {path}")
        loaded = yaml.safe_load(path.read_text(encoding="utf-8"))
        if loaded is None:
            loaded = {}
        if not isinstance(loaded, dict):
            raise ValueError(f"{path}: expected a mapping at the top level, got {type(loaded)}")
        data = loaded
    data = apply_overrides(data, overrides)
    return config_from_dict(data)


def dump_config(config: Any) -> str:
    """YAML text of a config (loads back with :func:`load_config` to an equal config)."""
    import yaml

    return yaml.safe_dump(config_to_dict(config), sort_keys=False, default_flow_style=None)


# ------------------------------------------------------------ type conversion


def _build(cls: type, data: Mapping[str, Any], prefix: str) -> Any:
    if not isinstance(data, Mapping):
        raise ValueError(f"{prefix or 'config'}: expected a mapping, got {data!r}")
    hints = typing.get_type_hints(cls)
    fields = {f.name: f for f in dataclasses.fields(cls)}
    unknown = [k for k in data if k not in fields]
    if unknown:
        key = unknown[0]
        close = difflib.get_close_matches(str(key), list(fields), n=3)
        hint = f"; did you mean {', '.join(prefix + c for c in close)}?" if close else ""
        raise ValueError(f"unknown config key {prefix}{key}{hint}")
    kwargs = {}
    for name, value in data.items():
        kwargs[name] = _convert(hints[name], value, f"{prefix}{name}")
    return cls(**kwargs)


def _convert(tp: Any, value: Any, where: str) -> Any:
    origin = typing.get_origin(tp)
    args = typing.get_args(tp)
    if dataclasses.is_dataclass(tp):
        if value is None:
            return tp()
        return _build(tp, value, prefix=f"{where}.")
    if origin in (Union, types.UnionType):
        if value is None and type(None) in args:
            return None
        errors = []
        for arg in args:
            if arg is type(None):
                continue
            try:
                return _convert(arg, value, where)
            except ValueError as err:
                errors.append(str(err))
        raise ValueError(errors[0] if errors else f"{where}: bad value {value!r}")
    if tp is Any:
        return value
    if tp is bool:
        if isinstance(value, bool):
            return value
        if isinstance(value, str) and value.lower() in ("true", "false", "yes", "no", "1", "0"):
            return value.lower() in ("true", "yes", "1")
        raise ValueError(f"{where}: expected true/false, got {value!r}")
    if tp is int:
        if isinstance(value, bool):
            raise ValueError(f"{where}: expected an integer, got {value!r}")
        if isinstance(value, int):
            return value
        if isinstance(value, float) and value.is_integer():
            return int(value)
        if isinstance(value, str):
            try:
                number = float(value)
            except ValueError:
                pass
            else:
                if number.is_integer():
                    return int(number)
        raise ValueError(f"{where}: expected an integer, got {value!r}")
    if tp is float:
        if isinstance(value, bool):
            raise ValueError(f"{where}: expected a number, got {value!r}")
        if isinstance(value, (int, float)):
            return float(value)
        if isinstance(value, str):
            try:
                return float(value)
            except ValueError:
                pass
        raise ValueError(f"{where}: expected a number, got {value!r}")
    if tp is str:
        if isinstance(value, (str, int, float)) and not isinstance(value, bool):
            return str(value)
        raise ValueError(f"{where}: expected a string, got {value!r}")
    if origin is tuple:
        if isinstance(value, str):
            value = [v.strip() for v in value.split(",") if v.strip()]
        if not isinstance(value, (list, tuple)):
            raise ValueError(f"{where}: expected a list, got {value!r}")
        if len(args) == 2 and args[1] is Ellipsis:
            return tuple(_convert(args[0], v, f"{where}[{i}]") for i, v in enumerate(value))
        if len(args) != len(value):
            raise ValueError(f"{where}: expected {len(args)} values, got {value!r}")
        return tuple(
            _convert(a, v, f"{where}[{i}]")
            for i, (a, v) in enumerate(zip(args, value, strict=True))
        )
    if origin is dict:
        if not isinstance(value, Mapping):
            raise ValueError(f"{where}: expected a mapping, got {value!r}")
        return dict(value)
    return value
