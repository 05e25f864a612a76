"""A whole run from a :class:`~enformer.train.config.TrainConfig`: what the CLI calls.

:func:`build_model` makes the model (a preset from scratch, or pretrained weights, then the
fine-tuning options), :func:`build_data` the data sets and track sheet, and
:func:`run_training` joins the ``torchrun`` process group if there is one, calls
:func:`~enformer.train.trainer.fit` and returns a JSON-ready summary.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
from torch.utils.data import Dataset

from ..model import Enformer, EnformerConfig
from .checkpoint import seed_everything
from .config import TrainConfig
from .data import build_dataset, resolve_track_sheet_path
from .distributed import cleanup_distributed, init_distributed
from .finetune import FinetuneSummary, prepare_finetune
from .trainer import fit

__all__ = [
    "RunData",
    "build_data",
    "build_model",
    "describe_run",
    "finetune_requested",
    "run_training",
]

log = logging.getLogger(__name__)


def finetune_requested(config: TrainConfig) -> bool:
    """Whether any fine-tuning option of ``config`` is set."""
    ft = config.finetune
    return bool(
        ft.heads
        or ft.freeze_trunk
        or ft.freeze_batchnorm
        or ft.train_last_layers is not None
        or ft.lora_rank
    )


def build_model(config: TrainConfig) -> tuple[Enformer, FinetuneSummary | None]:
    """The model a run trains, seeded by ``config.seed``.

    Parameters
    ----------
    config
        The run's configuration: ``model.weights`` (pretrained, with ``model.config`` as field
        overrides) or ``model.preset`` + ``model.config`` (from scratch), then ``finetune``.

    Returns
    -------
    tuple
        The model (float32, CPU, train mode) and the fine-tuning summary (``None`` if no
        fine-tuning option is set).
    """
    seed_everything(config.seed)
    spec = config.model
    if spec.weights:
        from ..weights import load_pretrained

        model = load_pretrained(spec.weights, config=dict(spec.config) or None, progress=False)
    else:
        model = Enformer(EnformerConfig.preset(spec.preset, **spec.config))
    summary = None
    if finetune_requested(config):
        summary = prepare_finetune(model, config.finetune, seed=config.seed)
    model.train()
    return model, summary


@dataclass
class RunData:
    """Data sets and track sheet of a run.

    Attributes
    ----------
    train
        Training data set (augmented as configured).
    valid
        Validation data set, or ``None`` when the split is empty or absent.
    track_sheet
        The sheet (:class:`~enformer.data.tracks.TrackSheet`) or ``None``.
    track_sheet_path
        Its file.
    """

    train: Dataset
    valid: Dataset | None
    track_sheet: Any | None
    track_sheet_path: Path | None


def build_data(config: TrainConfig, model: Enformer) -> RunData:
    """Data sets of the run's train and validation splits and its track sheet."""
    from ..data.tracks import TrackSheet

    sheet_path = resolve_track_sheet_path(config.data)
    sheet = TrackSheet.read(sheet_path, head=config.head) if sheet_path is not None else None
    n_tracks = model.config.heads.get(config.head)
    strand_pairs: np.ndarray | None = None
    if sheet is not None:
        if n_tracks is not None and len(sheet) != n_tracks:
            log.warning(
                "track sheet %s has %d tracks, head %r has %d: ignoring the sheet",
                sheet_path,
                len(sheet),
                config.head,
                n_tracks,
            )
            sheet = None
        else:
            strand_pairs = sheet.strand_pair_permutation()
    length = config.data.sequence_length
    if length is None and config.data.kind == "bigwig":
        length = model.config.sequence_length
    geometry = {
        "bin_size": model.config.bin_size,
        "target_length": model.config.output_bins(length) if length else None,
    }
    train = build_dataset(
        config.data,
        config.data.train_split,
        train=True,
        sequence_length=length,
        seed=config.seed,
        strand_pairs=strand_pairs,
        **geometry,
    )
    try:
        valid = build_dataset(
            config.data, config.data.valid_split, sequence_length=length, **geometry
        )
    except ValueError as err:
        log.warning("no validation data (%s): training without evaluation", err)
        valid = None
    return RunData(train, valid, sheet, sheet_path)


def run_training(config: TrainConfig, *, stop_at_step: int | None = None) -> dict[str, Any]:
    """Train (or fine-tune) as ``config`` says, on one process or under ``torchrun``.

    Parameters
    ----------
    config
        The resolved configuration.
    stop_at_step
        Stop (with a checkpoint) after this update, as if the job had been killed.

    Returns
    -------
    dict
        JSON-ready summary: run folder, steps, epochs, best validation r, last evaluation,
        files written.
    """
    env = init_distributed(config.device)
    try:
        model, ft = build_model(config)
        data = build_data(config, model)
        result = fit(
            model,
            data.train,
            config=config,
            valid_loader=data.valid,
            track_sheet=data.track_sheet,
            track_sheet_path=data.track_sheet_path,
            stop_at_step=stop_at_step,
            env=env,
        )
    finally:
        cleanup_distributed(env)
    run_dir = result.run_dir
    files = [
        str(run_dir / name)
        for name in ("config.yaml", "checkpoint.pt", "train_log.csv", "eval_log.csv", "log.jsonl")
        if (run_dir / name).exists()
    ]
    for sub in ("best", "final"):
        if (run_dir / sub).is_dir():
            files.append(str(run_dir / sub))
    summary: dict[str, Any] = {
        "run_dir": str(run_dir),
        "steps": result.state.step,
        "epochs": result.state.epoch,
        "finished": result.finished,
        "resumed_from": result.resumed_from,
        "stopped_early": result.state.stopped_early,
        "best_valid_mean_r": result.state.best_metric,
        "best_step": result.state.best_step,
        "last_train_loss": result.losses[-1] if result.losses else None,
        "last_eval": result.last_eval,
        "rank": env.rank,
        "world_size": env.world_size,
        "device": str(env.device),
        "files": files,
    }
    if ft is not None:
        summary["finetune"] = {
            "heads": ft.heads,
            "trainable_parameters": ft.trainable,
            "total_parameters": ft.total,
            "lora_linears": ft.lora_linears,
            "frozen_batchnorm": ft.frozen_batchnorm,
        }
    return summary


def describe_run(summary: dict[str, Any]) -> str:
    """The text report of a :func:`run_training` summary (rank 0's)."""
    state = "finished" if summary["finished"] else "stopped (resume by running again)"
    lines = [f"{state} at update {summary['steps']} (epoch {summary['epochs']}) in "
             f"{summary['run_dir']}"]  # fmt: skip
    if summary.get("resumed_from") is not None:
        lines.append(f"resumed from update {summary['resumed_from']}")
    if summary.get("last_train_loss") is not None:
        lines.append(f"last training loss {summary['last_train_loss']:.5f}")
    last = summary.get("last_eval")
    if last:
        lines.append(f"validation: loss {last['loss']:.5f}, mean Pearson r {last['mean_r']:.4f}")
        for assay, value in last.get("by_assay", {}).items():
            lines.append(f"  {assay:<10} r {value:.4f}")
    if summary.get("best_valid_mean_r") is not None:
        lines.append(
            f"best validation mean r {summary['best_valid_mean_r']:.4f} at update "
            f"{summary['best_step']}" + (" (stopped early)" if summary["stopped_early"] else "")
        )
    lines.append("wrote: " + ", ".join(summary["files"]))
    return "\n".join(lines)
