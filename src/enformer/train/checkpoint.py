"""Self-describing training checkpoints, written atomically, and RNG state capture.

``checkpoint.pt`` is one ``torch.save`` dictionary holding everything a run needs to continue
exactly where it stopped, and to describe itself without the YAML that started it:

=================  ==========================================================================
key                content
=================  ==========================================================================
``format``         ``"enformer-train-checkpoint"`` (and ``format_version``)
``model``          the model's ``state_dict()`` (LoRA adapters included, if any)
``model_config``   :meth:`EnformerConfig.to_dict` of the model
``optimizer``      the optimiser's ``state_dict()``
``scheduler``      the LR scheduler's ``state_dict()``
``progress``       step, epoch, batches consumed in the epoch, best validation r and its step,
                   evaluations since the best
``rng``            per-rank torch / CUDA / numpy / Python RNG states
``train_config``   the resolved :class:`~enformer.train.config.TrainConfig` as a nested dict
``track_sheet``    ``{"path": ..., "text": ...}``: the sheet's location and full contents
``versions``       torch and enformer versions that wrote it
=================  ==========================================================================

Only tensors and plain Python values are stored, so the file loads with
``torch.load(..., weights_only=True)``: no pickled code runs on load. Writes go to a
temporary file in the same folder, are flushed to disk, and are moved into place with
:func:`os.replace`, so a crash never leaves a half-written ``checkpoint.pt``.
"""

from __future__ import annotations

import dataclasses
import logging
import os
import random
from pathlib import Path
from typing import Any

import numpy as np
import torch

from ..io.jobs import atomic_path
from .config import TrainConfig, config_from_dict

__all__ = [
    "CHECKPOINT_NAME",
    "FORMAT",
    "TrainState",
    "capture_rng_state",
    "config_of_checkpoint",
    "find_resume_checkpoint",
    "load_checkpoint",
    "restore_rng_state",
    "save_checkpoint",
    "seed_everything",
    "warn_config_changes",
    "writer_versions",
]

log = logging.getLogger(__name__)

CHECKPOINT_NAME = "checkpoint.pt"
FORMAT = "enformer-train-checkpoint"
FORMAT_VERSION = 1


def seed_everything(seed: int) -> None:
    """Seed Python's, numpy's and torch's (CPU and CUDA) global generators."""
    random.seed(seed)
    np.random.seed(seed % 2**32)
    torch.manual_seed(seed)


def capture_rng_state() -> dict[str, Any]:
    """The global RNG states of this process, as tensors and plain values."""
    np_state = np.random.get_state()
    py_version, py_state, py_gauss = random.getstate()
    state: dict[str, Any] = {
        "torch": torch.get_rng_state(),
        "numpy": {
            "bit_generator": str(np_state[0]),
            "keys": torch.from_numpy(np.asarray(np_state[1], dtype=np.int64)),
            "pos": int(np_state[2]),
            "has_gauss": int(np_state[3]),
            "cached_gaussian": float(np_state[4]),
        },
        "python": {"version": int(py_version), "state": list(py_state), "gauss": py_gauss},
        "cuda": [],
    }
    if torch.cuda.is_available() and torch.cuda.is_initialized():
        state["cuda"] = [s.cpu() for s in torch.cuda.get_rng_state_all()]
    return state


def restore_rng_state(state: dict[str, Any]) -> None:
    """Restore states captured by :func:`capture_rng_state`."""
    torch.set_rng_state(state["torch"].cpu())
    np_state = state["numpy"]
    np.random.set_state(
        (
            np_state["bit_generator"],
            np_state["keys"].numpy().astype(np.uint32),
            int(np_state["pos"]),
            int(np_state["has_gauss"]),
            float(np_state["cached_gaussian"]),
        )
    )
    py = state["python"]
    random.setstate((int(py["version"]), tuple(int(v) for v in py["state"]), py["gauss"]))
    cuda = state.get("cuda") or []
    if cuda and torch.cuda.is_available():
        if len(cuda) == torch.cuda.device_count():
            torch.cuda.set_rng_state_all(cuda)


def save_checkpoint(path: str | os.PathLike[str], payload: dict[str, Any]) -> Path:
    """Write ``payload`` to ``path`` atomically (:func:`enformer.io.jobs.atomic_path`).

    Parameters
    ----------
    path
        Destination file (its folder is created).
    payload
        The checkpoint dictionary (see the module docstring); ``format`` and
        ``format_version`` are added.

    Returns
    -------
    Path
        The checkpoint path.
    """
    path = Path(path)
    data = {"format": FORMAT, "format_version": FORMAT_VERSION, **payload}
    with atomic_path(path) as tmp, open(tmp, "wb") as f:
        torch.save(data, f)
    return path


def writer_versions() -> dict[str, str]:
    """The torch and enformer versions, recorded in a checkpoint as ``versions``."""
    from ..version import __version__

    return {"torch": str(torch.__version__), "enformer": str(__version__)}


def load_checkpoint(
    path: str | os.PathLike[str], map_location: str | torch.device = "cpu"
) -> dict[str, Any]:
    """Read a checkpoint written by :func:`save_checkpoint` (``weights_only=True``).

    Parameters
    ----------
    path
        The ``checkpoint.pt`` file, or a run folder holding one.
    map_location
        Where tensors are loaded.

    Returns
    -------
    dict
        The checkpoint dictionary.
    """
    path = Path(path)
    if path.is_dir():
        path = path / CHECKPOINT_NAME
    if not path.is_file():
        raise FileNotFoundError(f"checkpoint not found: {path}")
    data = torch.load(path, map_location=map_location, weights_only=True)
    if not isinstance(data, dict) or data.get("format") != FORMAT:
        raise ValueError(f"{path} is not an enformer training checkpoint")
    if int(data.get("format_version", 0)) > FORMAT_VERSION:
        raise ValueError(
            f"{path} has checkpoint format version {data['format_version']}; this enformer "
            f"reads up to {FORMAT_VERSION}"
        )
    return data


def config_of_checkpoint(path: str | Path) -> TrainConfig:
    """The :class:`~enformer.train.config.TrainConfig` stored in a checkpoint."""
    return config_from_dict(load_checkpoint(path)["train_config"])


# ==================================================================== resume


@dataclasses.dataclass
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


def find_resume_checkpoint(resume: str, run_dir: str | os.PathLike[str]) -> Path | None:
    """The checkpoint a run resumes from, as its ``resume`` setting says (``None``: start afresh).

    Parameters
    ----------
    resume
        ``"auto"`` (``run_dir/checkpoint.pt`` when it exists), ``"never"`` (refuse an existing
        one) or the path of a checkpoint or of a run folder holding one.
    run_dir
        The run folder.

    Raises
    ------
    FileExistsError
        If ``resume`` is ``"never"`` and the run folder has a checkpoint.
    FileNotFoundError
        If the checkpoint ``resume`` names does not exist.
    """
    existing = Path(run_dir) / CHECKPOINT_NAME
    if resume == "auto":
        return existing if existing.is_file() else None
    if resume == "never":
        if existing.is_file():
            raise FileExistsError(
                f"{existing} exists and resume=never: choose another run_dir or resume=auto"
            )
        return None
    path = Path(resume)
    if path.is_dir():
        path = path / CHECKPOINT_NAME
    if not path.is_file():
        raise FileNotFoundError(f"checkpoint to resume not found: {path}")
    return path


_TRAJECTORY_KEYS = ("seed", "batch_size", "accumulation_steps", "head", "loss", "model", "data")


def warn_config_changes(saved: dict[str, Any], current: dict[str, Any]) -> None:
    """Warn when a resumed run's configuration changes what its updates would be."""
    changed = [k for k in _TRAJECTORY_KEYS if saved.get(k) != current.get(k)]
    if saved.get("optim") != current.get("optim"):
        changed.append("optim")
    if changed:
        log.warning(
            "resuming with a configuration that differs from the checkpoint's in %s: the run "
            "will not be an exact continuation",
            ", ".join(changed),
        )
