"""Weights in, weights out: save and load checkpoints, convert them.

:func:`save_pretrained` writes our checkpoint format (``model.safetensors`` +
``config.json``, see :mod:`enformer.weights.formats`); :func:`load_pretrained` reads it,
everything else users already hold (:func:`~enformer.weights.formats.read_weights`), a
model shipped inside the package, or a hub name such as
``EleutherAI/enformer-official-rough``, downloaded once into the local cache
(:mod:`enformer.weights.hub`) and read from there afterwards.
"""

from __future__ import annotations

import dataclasses
import json
import logging
import os
import shutil
import uuid
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import torch

from ..model.borzoi import BorzoiConfig
from ..model.config import EnformerConfig
from ..model.enformer import Enformer
from .bundled import BUNDLED_MODELS, bundled_path, is_bundled
from .convert import WeightsError, expected_shapes, fill_untrained_buffers, report_mismatch
from .formats import (
    CONFIG_NAME,
    WEIGHTS_NAME,
    WeightsNotFound,
    WeightsSource,
    config_json,
    read_weights,
)
from .hub import hub_download, is_hub_name

__all__ = ["convert_weights", "load_pretrained", "save_pretrained"]

log = logging.getLogger(__name__)


# ====================================================================== save


def save_pretrained(model: Enformer, directory: str | os.PathLike[str]) -> Path:
    """Write ``model.safetensors`` and ``config.json`` into ``directory``.

    Both files are written into a temporary directory beside ``directory`` and moved
    into place with :func:`os.replace`, so an interrupted save never leaves a
    half-written file under a final name. Other files already in ``directory`` are kept.

    Parameters
    ----------
    model
        The model to save; its ``config`` is stored as ``config.json`` (and in the
        safetensors metadata) and every tensor of its ``state_dict()`` (BatchNorm
        statistics included, in the model's dtype) in ``model.safetensors``.
    directory
        Target directory; created (with its parents) when missing.

    Returns
    -------
    Path
        The checkpoint directory.
    """
    from safetensors.torch import save_file

    config = getattr(model, "config", None)
    if not isinstance(config, (EnformerConfig, BorzoiConfig)):
        raise TypeError(
            f"save_pretrained needs an Enformer or Borzoi model, got {type(model).__name__}"
        )
    directory = Path(directory).expanduser().absolute()
    if directory.exists() and not directory.is_dir():
        raise NotADirectoryError(f"cannot save a checkpoint into {directory}: it is a file")
    state = {k: _plain(v) for k, v in model.state_dict().items()}
    meta = config_json(config)
    text = json.dumps(meta, indent=2, sort_keys=True) + "\n"
    directory.parent.mkdir(parents=True, exist_ok=True)
    tmp = directory.parent / f".{directory.name}.tmp-{os.getpid()}-{uuid.uuid4().hex[:8]}"
    tmp.mkdir()
    try:
        save_file(
            state,
            str(tmp / WEIGHTS_NAME),
            metadata={"format": "pt", "enformer_config": json.dumps(meta, sort_keys=True)},
        )
        (tmp / CONFIG_NAME).write_text(text, encoding="utf-8")
        for name in (WEIGHTS_NAME, CONFIG_NAME):
            _fsync(tmp / name)
        if directory.is_dir():
            # Weights first, config last: a crash in between leaves a config that the
            # weights check against loudly, never silently.
            for name in (WEIGHTS_NAME, CONFIG_NAME):
                os.replace(tmp / name, directory / name)
        else:
            os.replace(tmp, directory)
    finally:
        if tmp.exists():
            shutil.rmtree(tmp, ignore_errors=True)
    log.info("saved %s (%d tensors) to %s", type(model).__name__, len(state), directory)
    return directory

def _plain(t: torch.Tensor) -> torch.Tensor:
    """Return a detached, contiguous CPU tensor owning its storage (safetensors needs that)."""
    t = t.detach().to("cpu").contiguous()
    if t.untyped_storage().nbytes() != t.numel() * t.element_size():
        t = t.clone()
    return t


def _fsync(path: Path) -> None:
    with open(path, "rb") as f:
        os.fsync(f.fileno())

# ====================================================================== load
def load_pretrained(
    path_or_name: str | os.PathLike[str],
    *,
    config: EnformerConfig | Mapping[str, Any] | None = None,
    device: str | torch.device = "cpu",
    dtype: torch.dtype | str | None = None,
    cache_dir: str | os.PathLike[str] | None = None,
    revision: str = "main",
    strict: bool = True,
    progress: bool = True,
) -> Enformer:
    """Load an Enformer from our checkpoint, enformer-pytorch / TF weights, or the hub.

    A Calico Borzoi release folder (``params.json`` + ``model0_best.h5`` / ``model1_best.h5``)
    or a borzoi-pytorch / Hugging Face Borzoi folder (``config.json`` with ``model_type``
    borzoi) gives a :class:`~enformer.model.borzoi.Borzoi` instead
    (:mod:`enformer.weights.borzoi`).

    Parameters
    ----------
    path_or_name
        One of: a directory written by :func:`save_pretrained`; an enformer-pytorch /
        Hugging Face directory (``config.json`` + ``model.safetensors`` or
        ``pytorch_model.bin``); a ``.npz`` of TF variables; a single ``.safetensors`` /
        ``.bin`` / ``.pt`` file with a ``config.json`` beside it; or a hub name
        ``owner/name`` (anything of that shape that is not an existing path), e.g.
        ``"EleutherAI/enformer-official-rough"``; or the name of a model shipped inside
        the package (``"mini"``, a small demo model; see :mod:`enformer.weights.bundled`).
    config
        ``None``: the architecture stored with the weights. An :class:`EnformerConfig`:
        build this model instead (also the only way to read a bare weights file with no
        ``config.json``). A mapping: field overrides on top of the stored config, e.g.
        ``{"target_length": 1024}``.
    device
        Device of the returned model.
    dtype
        Floating dtype of the returned model (``torch.bfloat16`` or ``"bfloat16"``, ...);
        ``None`` gives float32.
    cache_dir
        Where hub downloads live; default ``$ENFORMER_CACHE`` or ``~/.cache/enformer``.
    revision
        Hub branch, tag or commit.
    strict
        If true, every tensor of the model must be present with the right shape and no
        tensor may be left over (a :class:`WeightsError` names the offenders). If false,
        missing tensors keep their initial values and extra or mis-shaped ones are
        skipped, with a warning; useful to put a trained trunk under new heads.
    progress
        Show a download progress bar (when ``tqdm`` is installed and stderr is a terminal).

    Returns
    -------
    Enformer
        The model, in eval mode.

    Raises
    ------
    WeightsNotFound
        Nothing found at the path, or the hub could not be reached and nothing is cached.
    WeightsError
        A file is corrupt or truncated, or its tensors do not fit the model.

    Notes
    -----
    enformer-pytorch's ``use_tf_gamma`` switch is ignored: our model computes the gamma
    positional features the way the trained TF model does, for any input length.
    """
    from . import borzoi as bz

    local: Path | None = None  # resolved once: a hub name is not looked up twice
    if config is None or isinstance(config, Mapping):
        local = _resolve(path_or_name, cache_dir=cache_dir, revision=revision, progress=progress)
        if bz.borzoi_folder_kind(local) is not None:
            borzoi = bz.load_borzoi_any(local)[0]
            if config:  # field overrides, e.g. {"crop": 5120}
                borzoi = _borzoi_with_overrides(borzoi, config)
            borzoi = borzoi.to(device)
            return borzoi.to(_as_dtype(dtype)) if dtype is not None else borzoi
    model, _ = _load(
        path_or_name if local is None else local,
        config=config,
        device=device,
        dtype=dtype,
        cache_dir=cache_dir,
        revision=revision,
        strict=strict,
        progress=progress,
    )
    return model


def _load(
    path_or_name: str | os.PathLike[str],
    *,
    config: EnformerConfig | Mapping[str, Any] | None,
    device: str | torch.device,
    dtype: torch.dtype | str | None,
    cache_dir: str | os.PathLike[str] | None,
    revision: str,
    strict: bool,
    progress: bool,
) -> tuple[Enformer, WeightsSource]:
    if config is not None and not isinstance(config, (EnformerConfig, Mapping)):
        raise TypeError(
            f"config must be an EnformerConfig or a mapping of overrides, got "
            f"{type(config).__name__}"
        )
    user_config = config if isinstance(config, EnformerConfig) else None
    path = _resolve(path_or_name, cache_dir=cache_dir, revision=revision, progress=progress)
    source = read_weights(path, user_config)
    if user_config is not None:
        target = user_config
    elif config:
        target = _with_overrides(source.config, config)
    else:
        target = source.config
    model = _build(target, source.state, strict=strict, source=str(source.path), device=device)
    if dtype is not None:
        model = model.to(dtype=_as_dtype(dtype))
    model.eval()
    log.info("loaded %s weights from %s", source.kind, source.path)
    return model, source


def _with_overrides(config: EnformerConfig, overrides: Mapping[str, Any]) -> EnformerConfig:
    names = {f.name for f in dataclasses.fields(EnformerConfig)}
    unknown = sorted(set(overrides) - names)
    if unknown:
        raise ValueError(f"unknown EnformerConfig field(s) in the overrides: {', '.join(unknown)}")
    return dataclasses.replace(config, **dict(overrides))


def _as_dtype(dtype: torch.dtype | str) -> torch.dtype:
    if isinstance(dtype, torch.dtype):
        return dtype
    value = getattr(torch, str(dtype).removeprefix("torch."), None)
    if not isinstance(value, torch.dtype) or not value.is_floating_point:
        raise ValueError(f"dtype must be a floating torch dtype such as 'bfloat16', got {dtype!r}")
    return value


def _resolve(
    path_or_name: str | os.PathLike[str],
    *,
    cache_dir: str | os.PathLike[str] | None,
    revision: str,
    progress: bool,
) -> Path:
    """Return a local path for ``path_or_name``: the path itself, or the hub cache directory."""
    text = os.fspath(path_or_name)
    path = Path(text).expanduser()
    if path.exists():
        return path
    if isinstance(path_or_name, str) and is_bundled(text):
        return bundled_path(text)
    if isinstance(path_or_name, str) and is_hub_name(text):
        try:
            return hub_download(text, revision=revision, cache_dir=cache_dir, progress=progress)
        except WeightsNotFound as err:
            raise WeightsNotFound(
                f"{text} is not an existing file or directory, so it was looked up as a hub "
                f"name: {err}"
            ) from None
    raise WeightsNotFound(
        f"no such file or directory: {text} (expected a checkpoint directory, a .npz / "
        ".safetensors / .bin file, a hub name like EleutherAI/enformer-official-rough, or a "
        f"bundled model: {', '.join(sorted(BUNDLED_MODELS))})"
    )

def _build(
    config: EnformerConfig,
    state: Mapping[str, torch.Tensor],
    *,
    strict: bool,
    source: str,
    device: str | torch.device,
) -> Enformer:
    """``Enformer(config)`` holding ``state``, checking names and shapes first."""
    shapes = expected_shapes(config)
    state = dict(state)
    fill_untrained_buffers(state, shapes)
    missing = [k for k in shapes if k not in state]
    extra = sorted(k for k in state if k not in shapes)
    bad = [
        f"{k} {tuple(state[k].shape)} needs {shapes[k]}"
        for k in shapes
        if k in state and tuple(state[k].shape) != shapes[k]
    ]
    if strict:
        report_mismatch(source, missing, extra, bad)
    elif missing or extra or bad:
        log.warning(
            "loading %s non-strictly: %d tensors missing (left at their initial values), "
            "%d unexpected and %d mis-shaped (skipped)",
            source,
            len(missing),
            len(extra),
            len(bad),
        )
        state = {k: v for k, v in state.items() if k in shapes and tuple(v.shape) == shapes[k]}
    if not missing and not bad:
        # Every tensor is loaded: skip the random initialisation (seconds at full size).
        with torch.device("meta"):
            model = Enformer(config)
        model = model.to_empty(device=device)
        model.load_state_dict(state, strict=True)
    else:
        model = Enformer(config).to(device)
        model.load_state_dict(state, strict=False)
    return model

def convert_weights(
    src: str | os.PathLike[str],
    out: str | os.PathLike[str],
    *,
    config_overrides: Mapping[str, Any] | None = None,
    overwrite: bool = False,
    progress: bool = True,
) -> dict[str, Any]:
    """Convert weights from any supported source into our checkpoint format.

    Parameters
    ----------
    src
        A ``.npz`` of TF variables, a TF-Hub SavedModel directory (needs TensorFlow), an
        enformer-pytorch / Hugging Face directory, one of our checkpoints, a single
        weights file with ``config.json`` beside it, or a hub name.
    out
        Output directory (written by :func:`save_pretrained`).
    config_overrides
        EnformerConfig fields to change on top of the inferred config (e.g.
        ``{"target_length": 896, "description": "..."}``).
    overwrite
        Allow writing into a non-empty ``out``.
    progress
        Show a progress bar for hub downloads.

    Returns
    -------
    dict
        Summary: ``source``, ``source_kind``, ``output``, ``parameters``, ``heads``,
        ``channels``, ``num_transformer_layers``, ``files``.
    """
    out_path = Path(out).expanduser()
    if out_path.exists():
        if not out_path.is_dir():
            raise FileExistsError(f"{out_path} exists and is a file; choose a directory")
        if any(out_path.iterdir()) and not overwrite:
            raise FileExistsError(
                f"{out_path} is not empty; choose another directory or pass overwrite=True "
                "(--overwrite)"
            )
    from . import borzoi as bz

    local = _resolve(src, cache_dir=None, revision="main", progress=progress)
    model: Enformer | Any
    if bz.borzoi_folder_kind(local) is not None:
        model, kind = bz.load_borzoi_any(local)
        if config_overrides:
            model = _borzoi_with_overrides(model, config_overrides)
        layers = model.config.transformer_repeat
    else:
        model, source = _load(
            src,
            config=dict(config_overrides) if config_overrides else None,
            device="cpu",
            dtype=None,
            cache_dir=None,
            revision="main",
            strict=True,
            progress=progress,
        )
        kind, layers = source.kind, model.config.num_transformer_layers
    written = save_pretrained(model, out_path)
    if not Path(os.fspath(src)).expanduser().exists():
        kind = f"hub:{kind}"
    return {
        "source": os.fspath(src),
        "source_kind": kind,
        "family": getattr(model.config, "family", "enformer"),
        "output": str(written),
        "parameters": model.num_parameters(),
        "heads": dict(model.config.heads),
        "channels": model.config.channels,
        "num_transformer_layers": layers,
        "files": [str(written / WEIGHTS_NAME), str(written / CONFIG_NAME)],
    }


def _borzoi_with_overrides(model: Any, overrides: Mapping[str, Any]) -> Any:
    """The same weights under a configuration with some fields changed (e.g. ``crop``,
    ``description``); fields that change a tensor's shape are refused by the strict load."""
    names = {f.name for f in dataclasses.fields(BorzoiConfig)}
    unknown = sorted(set(overrides) - names)
    if unknown:
        raise ValueError(f"unknown BorzoiConfig field(s) in the overrides: {', '.join(unknown)}")
    config = dataclasses.replace(model.config, **dict(overrides))
    rebuilt = type(model)(config)
    try:
        rebuilt.load_state_dict(model.state_dict())
    except RuntimeError as err:
        raise WeightsError(f"the overrides change the shapes of the weights: {err}") from None
    return rebuilt.eval()
