"""Weights in, weights out: save and load checkpoints, download them, convert them.

Our checkpoint format is a directory holding ``model.safetensors`` (every tensor of
``Enformer.state_dict()``, BatchNorm statistics included) and ``config.json`` (the
model's :class:`~enformer.model.config.EnformerConfig` plus ``"format": "enformer"``
and ``"format_version"``), so a checkpoint rebuilds itself.

:func:`load_pretrained` also reads what users already hold (DESIGN.md §2):

* an enformer-pytorch / Hugging Face directory (``config.json`` with ``dim``/``depth``
  and ``model.safetensors`` or ``pytorch_model.bin``, with or without the duplicate
  ``_trunk.*`` keys);
* a ``.npz`` of TF variables (``{v.name: v.numpy()}`` of the TF-Hub model);
* a single ``.safetensors`` / ``.bin`` / ``.pt`` file with a ``config.json`` beside it;
* a hub name such as ``EleutherAI/enformer-official-rough``, downloaded once into a
  local cache and read from there afterwards.

PyTorch files are always read with ``torch.load(..., weights_only=True)``: no pickled
code is ever run.
"""

from __future__ import annotations

import dataclasses
import http.client
import json
import logging
import os
import pickletools
import re
import shutil
import tempfile
import urllib.error
import urllib.parse
import urllib.request
import uuid
import zipfile
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import numpy as np
import torch

from ..model.config import EnformerConfig
from ..model.enformer import Enformer
from .bundled import BUNDLED_MODELS, bundled_path, is_bundled
from .convert import (
    WeightsError,
    _report,
    config_from_hf,
    config_from_tf_variables,
    expected_shapes,
    state_dict_from_hf,
    state_dict_from_tf,
)
from .quantize import QUANTIZATION, dequantize_int8

__all__ = [
    "CONFIG_NAME",
    "FORMAT_VERSION",
    "WEIGHTS_NAME",
    "WeightsNotFound",
    "convert_weights",
    "default_cache_dir",
    "hub_download",
    "load_pretrained",
    "read_tf_savedmodel",
    "save_pretrained",
]

log = logging.getLogger(__name__)

CONFIG_NAME = "config.json"
WEIGHTS_NAME = "model.safetensors"
PYTORCH_WEIGHTS_NAME = "pytorch_model.bin"
FORMAT = "enformer"
FORMAT_VERSION = 1
DEFAULT_ENDPOINT = "https://huggingface.co"
# Weight files tried, in order, in a directory and on the hub.
WEIGHTS_CANDIDATES = (WEIGHTS_NAME, PYTORCH_WEIGHTS_NAME)

_TORCH_SUFFIXES = (".bin", ".pt", ".pth")
_CHUNK = 1 << 20  # download chunk (bytes)
_TIMEOUT = 60.0  # seconds without data before a download gives up
_HUB_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.-]*/[A-Za-z0-9][A-Za-z0-9_.-]*")
_TRUE = ("1", "true", "yes", "on")

# Three lines that turn a TF-Hub SavedModel into the .npz we read without TensorFlow.
NPZ_EXPORT_SNIPPET = """\
import numpy as np, tensorflow as tf
vs = tf.saved_model.load("SAVED_MODEL_DIR").model.variables; names = [v.name for v in vs]
np.savez("enformer_tf.npz", **{n + (f"#{names[:i].count(n)}" if n in names[:i] else ""): v.numpy() for i, (n, v) in enumerate(zip(names, vs))})"""  # noqa: E501


class WeightsNotFound(FileNotFoundError):
    """No weights where they were looked for; the message says what was tried and what to do."""


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
    if not isinstance(config, EnformerConfig):
        raise TypeError(
            f"save_pretrained needs an Enformer model with an EnformerConfig, got "
            f"{type(model).__name__}"
        )
    directory = Path(directory).expanduser().absolute()
    if directory.exists() and not directory.is_dir():
        raise NotADirectoryError(f"cannot save a checkpoint into {directory}: it is a file")
    state = {k: _plain(v) for k, v in model.state_dict().items()}
    meta = _config_json(config)
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


def _config_json(config: EnformerConfig) -> dict[str, Any]:
    meta = json.loads(config.to_json())
    meta["format"] = FORMAT
    meta["format_version"] = FORMAT_VERSION
    return meta


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


@dataclasses.dataclass
class _Source:
    """Weights read from disk, already in our naming."""

    kind: str  # "enformer" | "enformer-pytorch" | "tf-variables" | "tf-savedmodel"
    config: EnformerConfig  # the architecture the file describes
    state: dict[str, torch.Tensor]
    path: Path


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
    model, _ = _load(
        path_or_name,
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
) -> tuple[Enformer, _Source]:
    if config is not None and not isinstance(config, (EnformerConfig, Mapping)):
        raise TypeError(
            f"config must be an EnformerConfig or a mapping of overrides, got "
            f"{type(config).__name__}"
        )
    user_config = config if isinstance(config, EnformerConfig) else None
    path = _resolve(path_or_name, cache_dir=cache_dir, revision=revision, progress=progress)
    source = _read_source(path, user_config)
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
    if isinstance(path_or_name, str) and _HUB_NAME.fullmatch(text) and ".." not in text:
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


def _read_source(path: Path, user_config: EnformerConfig | None) -> _Source:
    """Read weights at ``path`` (file or directory) into our naming."""
    if path.is_dir():
        if (path / "saved_model.pb").is_file():
            variables = read_tf_savedmodel(path)
            cfg = config_from_tf_variables(variables)
            state = state_dict_from_tf(variables, cfg, source=str(path))
            return _Source("tf-savedmodel", cfg, state, path)
        weights = next((path / n for n in WEIGHTS_CANDIDATES if (path / n).is_file()), None)
        if weights is None:
            present = ", ".join(sorted(p.name for p in path.iterdir())[:10]) or "nothing"
            raise WeightsNotFound(
                f"{path} holds no weights: looked for {' or '.join(WEIGHTS_CANDIDATES)} "
                f"(found {present})"
            )
        return _read_weights_file(weights, path / CONFIG_NAME, user_config)
    suffix = path.suffix.lower()
    if suffix == ".npz":
        variables = _read_npz(path)
        cfg = config_from_tf_variables(variables)
        state = state_dict_from_tf(variables, cfg, source=str(path))
        return _Source("tf-variables", cfg, state, path)
    if suffix == ".safetensors" or suffix in _TORCH_SUFFIXES:
        return _read_weights_file(path, path.parent / CONFIG_NAME, user_config)
    if path.name == CONFIG_NAME:
        return _read_source(path.parent, user_config)
    raise WeightsError(
        f"{path}: unknown weights file type {suffix or '(no suffix)'!r}; expected a directory, "
        "a .npz of TF variables, or a .safetensors / .bin / .pt file"
    )


def _read_weights_file(
    weights: Path, config_path: Path, user_config: EnformerConfig | None
) -> _Source:
    """Read a safetensors or torch file, in our layout or enformer-pytorch's."""
    if weights.suffix.lower() == ".safetensors":
        tensors, metadata = _read_safetensors(weights)
    else:
        tensors, metadata = _read_torch(weights), {}
    tensors = _unwrap_prefix(tensors)
    layout = _layout(tensors, weights)
    if config_path.is_file():
        cfg = _config_from_json(_read_json(config_path), config_path)
    elif "enformer_config" in metadata:
        cfg = _config_from_json(
            _parse_json(metadata["enformer_config"], f"{weights} (metadata)"), weights
        )
    elif user_config is not None:
        cfg = user_config
    else:
        raise WeightsNotFound(
            f"no {CONFIG_NAME} beside {weights}: put the checkpoint's {CONFIG_NAME} next to "
            "it, or pass config=EnformerConfig(...)"
        )
    if layout == "enformer-pytorch":
        state = state_dict_from_hf(tensors, cfg, source=str(weights))
    else:
        state = dict(tensors)
    return _Source(layout, cfg, state, weights)


def _unwrap_prefix(tensors: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """Drop a ``module.`` / ``model.`` prefix shared by every key (DDP, Lightning)."""
    for prefix in ("module.", "model."):
        if tensors and all(k.startswith(prefix) for k in tensors):
            tensors = {k[len(prefix) :]: v for k, v in tensors.items()}
    return tensors


def _layout(tensors: Mapping[str, torch.Tensor], path: Path) -> str:
    keys = list(tensors)
    if any(k.startswith(("trunk.", "heads.")) for k in keys):
        return "enformer"
    if any(k.startswith(("stem.", "_trunk.", "_heads.", "conv_tower.")) for k in keys):
        return "enformer-pytorch"
    shown = ", ".join(keys[:5]) or "no tensors"
    raise WeightsError(
        f"{path}: the tensor names ({shown}) are neither this package's (trunk.*, heads.*) "
        "nor enformer-pytorch's (stem.*, conv_tower.*, _heads.*)"
    )


def _read_json(path: Path) -> Any:
    try:
        text = path.read_text(encoding="utf-8")
    except UnicodeDecodeError as err:
        raise WeightsError(f"{path}: not a text JSON file ({err.reason})") from None
    return _parse_json(text, str(path))


def _parse_json(text: str, where: str) -> Any:
    try:
        return json.loads(text)
    except json.JSONDecodeError as err:
        raise WeightsError(
            f"{where}: invalid JSON at line {err.lineno} column {err.colno}: {err.msg}"
        ) from None


def _config_from_json(data: Any, path: Path) -> EnformerConfig:
    """Our config from our ``config.json`` or from enformer-pytorch's."""
    if not isinstance(data, dict):
        raise WeightsError(f"{path}: expected a JSON object, got {type(data).__name__}")
    try:
        if data.get("format") == FORMAT or "channels" in data:
            version = data.get("format_version", FORMAT_VERSION)
            if not isinstance(version, int) or version > FORMAT_VERSION:
                raise WeightsError(
                    f"{path}: format_version {version!r} was written by a newer enformer "
                    f"(this one reads up to {FORMAT_VERSION}); upgrade the package"
                )
            fields = {k: v for k, v in data.items() if k not in ("format", "format_version")}
            return EnformerConfig.from_dict(fields)
        if "dim" in data or "depth" in data:
            return config_from_hf(data)
    except WeightsError:
        raise
    except (TypeError, ValueError) as err:
        raise WeightsError(f"{path}: not a valid Enformer config: {err}") from None
    raise WeightsError(
        f"{path}: not an Enformer config (neither this package's 'channels' nor "
        "enformer-pytorch's 'dim'/'depth' field)"
    )


def _read_safetensors(path: Path) -> tuple[dict[str, torch.Tensor], dict[str, str]]:
    from safetensors import safe_open

    try:
        with safe_open(str(path), framework="pt", device="cpu") as f:
            metadata = dict(f.metadata() or {})
            tensors = {k: f.get_tensor(k) for k in f.keys()}  # noqa: SIM118
    except Exception as err:  # the Rust reader raises its own exception type
        raise WeightsError(
            f"{path}: not a readable safetensors file (truncated or corrupt?): {err}"
        ) from None
    kind = metadata.get("quantization")
    if kind == QUANTIZATION:
        try:
            tensors = dequantize_int8(tensors)
        except ValueError as err:
            raise WeightsError(f"{path}: {err} (corrupt quantised checkpoint?)") from None
    elif kind is not None:
        raise WeightsError(
            f"{path}: unknown quantization {kind!r}; this version reads {QUANTIZATION!r}"
        )
    return tensors, metadata


def _read_torch(path: Path) -> dict[str, torch.Tensor]:
    """``torch.load(weights_only=True)``: tensors only, never pickled code."""
    try:
        obj = torch.load(str(path), map_location="cpu", weights_only=True)
    except Exception as err:
        text = str(err)
        pickled = re.search(r"GLOBAL\s+([\w.]+)", text)
        protocol, code = _scan_pickle(path)
        code = [pickled.group(1)] if pickled else code
        if code:
            raise WeightsError(
                f"{path} contains pickled code ({', '.join(code[:3])}), which enformer refuses "
                "to run (torch.load(weights_only=True)). If you trust the file, convert it in "
                "the environment that made it: sd = torch.load(PATH, weights_only=False); "
                "torch.save({k: v for k, v in sd.items() if torch.is_tensor(v)}, 'weights.pt') "
                "(or save it as safetensors)"
            ) from None
        if "Unsupported operand" in text and protocol is not None and protocol >= 3:
            raise WeightsError(
                f"{path}: written with a pickle protocol that torch's safe loader cannot read "
                "(a raw pickle.dump, or protocol >= 4?); re-save the state_dict with "
                "torch.save(state_dict, 'weights.pt') or as safetensors"
            ) from None
        # torch wraps the unpickler's complaint in a long paragraph; keep the complaint.
        detail = text.partition("WeightsUnpickler error:")[2].strip().splitlines()
        reason = detail[0].strip() if detail else (text.strip().splitlines() or [""])[0]
        raise WeightsError(
            f"{path}: not a readable PyTorch checkpoint (truncated or corrupt?): "
            f"{type(err).__name__}: {reason or 'no details'}"
        ) from None
    if isinstance(obj, Mapping) and "state_dict" in obj and isinstance(obj["state_dict"], Mapping):
        obj = obj["state_dict"]
    if not isinstance(obj, Mapping) or not all(
        isinstance(k, str) and isinstance(v, torch.Tensor) for k, v in obj.items()
    ):
        raise WeightsError(f"{path}: expected a mapping of names to tensors (a state_dict)")
    return dict(obj)


# Globals a tensor checkpoint may name: torch's own rebuild functions and storages.
_SAFE_GLOBALS = ("torch.", "collections.OrderedDict", "_codecs.encode", "numpy.")
_PICKLE_SCAN_LIMIT = 64 << 20


def _scan_pickle(path: Path) -> tuple[int | None, list[str]]:
    """A pickle's protocol and the functions/classes it imports, read statically (nothing runs).

    Only names outside torch's own tensor-rebuilding machinery are listed: those are the
    pickled code that ``weights_only=True`` refuses. The protocol is ``None`` when the data
    does not start like a pickle.
    """
    try:
        if zipfile.is_zipfile(path):
            with zipfile.ZipFile(path) as zf:
                name = next((n for n in zf.namelist() if n.endswith("data.pkl")), None)
                if name is None:
                    return None, []
                data = zf.read(name)[:_PICKLE_SCAN_LIMIT]
        else:
            with open(path, "rb") as fh:
                data = fh.read(_PICKLE_SCAN_LIMIT)
    except (OSError, zipfile.BadZipFile):
        return None, []
    protocol = data[1] if len(data) > 1 and data[0] == 0x80 else None
    found: list[str] = []
    strings: list[str] = []
    try:
        for opcode, arg, _ in pickletools.genops(data):
            if opcode.name in ("GLOBAL", "INST"):
                found.append(str(arg).replace(" ", "."))
            elif opcode.name == "STACK_GLOBAL" and len(strings) >= 2:
                found.append(f"{strings[-2]}.{strings[-1]}")
            elif isinstance(arg, str):
                strings.append(arg)
    except Exception:  # a truncated or legacy multi-pickle file: keep what was read
        pass
    unsafe = [g for g in dict.fromkeys(found) if not g.startswith(_SAFE_GLOBALS)]
    return protocol, unsafe


def _read_npz(path: Path) -> dict[str, np.ndarray]:
    with open(path, "rb") as f:
        magic = f.read(4)
    if magic != b"PK\x03\x04":
        raise WeightsError(
            f"{path}: not a .npz archive of TF variables (no zip signature; truncated or corrupt?)"
        )
    try:
        # Open the file ourselves: np.load leaks its own handle when the archive is bad.
        with open(path, "rb") as fh, np.load(fh, allow_pickle=False) as archive:
            return {k: archive[k] for k in archive.files}
    except Exception as err:
        raise WeightsError(
            f"{path}: not a readable .npz of TF variables (truncated or corrupt?): "
            f"{type(err).__name__}: {err}"
        ) from None


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
    for key, shape in shapes.items():  # BatchNorm counters carry no trained value
        if key.endswith("num_batches_tracked") and key not in state:
            state[key] = torch.zeros(shape, dtype=torch.long)
    missing = [k for k in shapes if k not in state]
    extra = sorted(k for k in state if k not in shapes)
    bad = [
        f"{k} {tuple(state[k].shape)} needs {shapes[k]}"
        for k in shapes
        if k in state and tuple(state[k].shape) != shapes[k]
    ]
    if strict:
        _report(source, missing, extra, bad)
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


# ======================================================================= hub


def default_cache_dir() -> Path:
    """``$ENFORMER_CACHE``, else ``~/.cache/enformer``."""
    env = os.environ.get("ENFORMER_CACHE")
    return Path(env).expanduser() if env else Path.home() / ".cache" / "enformer"


def _hub_endpoint() -> str:
    endpoint = (
        os.environ.get("ENFORMER_HUB_ENDPOINT") or os.environ.get("HF_ENDPOINT") or DEFAULT_ENDPOINT
    )
    return endpoint.rstrip("/")


def _offline_reason() -> str | None:
    for var in ("ENFORMER_OFFLINE", "HF_HUB_OFFLINE"):
        if os.environ.get(var, "").strip().lower() in _TRUE:
            return f"offline mode is on ({var}={os.environ[var]})"
    return None


def _cached_weights(directory: Path) -> Path | None:
    if not (directory / CONFIG_NAME).is_file():
        return None
    return next((directory / n for n in WEIGHTS_CANDIDATES if (directory / n).is_file()), None)


def hub_download(
    name: str,
    *,
    revision: str = "main",
    cache_dir: str | os.PathLike[str] | None = None,
    progress: bool = True,
) -> Path:
    """Fetch ``config.json`` and the weights of hub model ``name`` into the cache.

    Files come from ``{endpoint}/{name}/resolve/{revision}/{file}``, where the endpoint is
    ``$ENFORMER_HUB_ENDPOINT``, else ``$HF_ENDPOINT``, else ``https://huggingface.co``;
    the weights file is ``model.safetensors`` or, failing that, ``pytorch_model.bin``.
    A complete cached copy is used without touching the network. Each file is streamed
    to a ``.part`` file and renamed only when complete.

    Parameters
    ----------
    name
        ``owner/name``, e.g. ``"EleutherAI/enformer-official-rough"``.
    revision
        Branch, tag or commit.
    cache_dir
        Cache root; default :func:`default_cache_dir`. Files land in
        ``{cache_dir}/hub/{owner}--{name}/{revision}/``.
    progress
        Show a progress bar (when ``tqdm`` is installed and stderr is a terminal).

    Returns
    -------
    Path
        The local directory holding ``config.json`` and the weights.

    Raises
    ------
    WeightsNotFound
        Offline (no network, ``ENFORMER_OFFLINE=1`` or ``HF_HUB_OFFLINE=1``) with nothing
        cached, or the hub has no such model.
    WeightsError
        A download was cut short (nothing is left under the final name).
    """
    owner, _, repo = name.partition("/")
    root = Path(cache_dir).expanduser() if cache_dir is not None else default_cache_dir()
    local = root / "hub" / f"{owner}--{repo}" / _safe_revision(revision)
    if _cached_weights(local) is not None:
        log.debug("using cached %s at %s", name, local)
        return local
    endpoint = _hub_endpoint()
    base = f"{endpoint}/{owner}/{repo}/resolve/{urllib.parse.quote(revision, safe='')}"

    def fail(reason: str) -> WeightsNotFound:
        return WeightsNotFound(
            f"could not get weights for {name!r} (revision {revision!r}): {reason}. "
            f"Tried {base}/{CONFIG_NAME} and {' / '.join(WEIGHTS_CANDIDATES)}; nothing usable "
            f"is cached in {local}. To use the model offline, download its directory "
            f"({CONFIG_NAME} + weights) on a machine with network access, copy it here and "
            "pass its path, or set ENFORMER_HUB_ENDPOINT / HF_ENDPOINT to a reachable mirror"
        )

    offline = _offline_reason()
    if offline:
        raise fail(offline)
    try:
        try:
            _download(f"{base}/{CONFIG_NAME}", local / CONFIG_NAME, progress=progress)
        except urllib.error.HTTPError as err:
            err.close()
            if err.code == 404:
                raise fail(f"no such model or revision at {endpoint} (HTTP 404)") from None
            if err.code in (401, 403):
                raise fail(
                    f"access denied (HTTP {err.code}): the model may be private or gated"
                ) from None
            raise fail(f"HTTP {err.code} {err.reason}") from None
        for filename in WEIGHTS_CANDIDATES:
            try:
                _download(f"{base}/{filename}", local / filename, progress=progress)
                break
            except urllib.error.HTTPError as err:
                err.close()
                if err.code != 404:
                    raise fail(f"HTTP {err.code} {err.reason} for {filename}") from None
                log.debug("%s has no %s", name, filename)
        else:
            raise fail(f"the model has neither {' nor '.join(WEIGHTS_CANDIDATES)}")
    except urllib.error.URLError as err:
        raise fail(f"network unavailable ({err.reason})") from None
    except (TimeoutError, ConnectionError) as err:
        raise fail(f"network unavailable ({type(err).__name__}: {err})") from None
    return local


def _safe_revision(revision: str) -> str:
    safe = re.sub(r"[^A-Za-z0-9_.-]", "--", revision)
    if not safe or set(safe) <= {"."}:
        raise ValueError(f"invalid revision {revision!r}")
    return safe


def _download(url: str, dest: Path, *, progress: bool) -> None:
    """Stream ``url`` to ``dest`` through a ``.part`` file; check its length."""
    from .. import __version__

    dest.parent.mkdir(parents=True, exist_ok=True)
    request = urllib.request.Request(url, headers={"User-Agent": f"enformer/{__version__}"})
    log.info("downloading %s", url)
    fd, part_name = tempfile.mkstemp(prefix=f"{dest.name}.", suffix=".part", dir=dest.parent)
    part = Path(part_name)
    try:
        with os.fdopen(fd, "wb") as out, urllib.request.urlopen(request, timeout=_TIMEOUT) as resp:
            length = resp.headers.get("Content-Length")
            total = int(length) if length and length.isdigit() else None
            received = 0
            with _progress_bar(total, dest.name, progress) as bar:
                while True:
                    try:
                        chunk = resp.read(_CHUNK)
                    except http.client.IncompleteRead as err:
                        raise WeightsError(
                            f"download of {url} was cut short after "
                            f"{received + len(err.partial):,} bytes; nothing was saved, "
                            "run again to retry"
                        ) from None
                    if not chunk:
                        break
                    out.write(chunk)
                    received += len(chunk)
                    bar.update(len(chunk))
            out.flush()
            os.fsync(out.fileno())
        if total is not None and received != total:
            raise WeightsError(
                f"download of {url} was cut short: got {received:,} of {total:,} bytes; "
                "nothing was saved, run again to retry"
            )
        os.replace(part, dest)
    finally:
        if part.exists():
            part.unlink()


class _NoBar:
    def __enter__(self) -> _NoBar:
        return self

    def __exit__(self, *exc: object) -> None:
        return None

    def update(self, n: int) -> None:
        return None


def _progress_bar(total: int | None, desc: str, enabled: bool) -> Any:
    if enabled:
        try:
            from tqdm import tqdm
        except ImportError:
            return _NoBar()
        return tqdm(
            total=total,
            desc=desc,
            unit="B",
            unit_scale=True,
            unit_divisor=1024,
            disable=None,  # off when stderr is not a terminal
            leave=False,
        )
    return _NoBar()


# =================================================================== convert


def read_tf_savedmodel(directory: str | os.PathLike[str]) -> dict[str, np.ndarray]:
    """``{v.name: v.numpy()}`` of a TF-Hub Enformer SavedModel (needs TensorFlow).

    Variables are taken in the model's order; a name seen before gets ``#1`` (``#2``, ...)
    appended, as the shared reference vectors do (the BatchNorm variance EMA and the
    second MLP linear share their names with the mean EMA and the first linear).

    Parameters
    ----------
    directory
        The SavedModel directory (holding ``saved_model.pb``).

    Returns
    -------
    dict
        Variable name -> array, ready for :func:`~enformer.weights.state_dict_from_tf`.
    """
    try:
        import tensorflow as tf
    except ImportError:
        raise ImportError(
            f"{directory} is a TensorFlow SavedModel and reading it needs TensorFlow, which is "
            "not installed here. In an environment with TensorFlow, export its variables with\n"
            + NPZ_EXPORT_SNIPPET.replace("SAVED_MODEL_DIR", str(directory))
            + "\nthen run: enformer convert enformer_tf.npz OUT"
        ) from None
    loaded = tf.saved_model.load(str(directory))
    variables = None
    for obj in (getattr(loaded, "model", None), loaded):
        for attr in ("variables", "all_variables", "trainable_variables"):
            found = getattr(obj, attr, None) if obj is not None else None
            if found:
                variables = list(found)
                break
        if variables:
            break
    if not variables:
        raise WeightsError(f"{directory}: the SavedModel exposes no variables to read")
    out: dict[str, np.ndarray] = {}
    seen: dict[str, int] = {}
    for v in variables:
        count = seen.get(v.name, 0)
        seen[v.name] = count + 1
        out[v.name if count == 0 else f"{v.name}#{count}"] = np.asarray(v.numpy())
    return out


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
    written = save_pretrained(model, out_path)
    kind = source.kind
    if not Path(os.fspath(src)).expanduser().exists():
        kind = f"hub:{kind}"
    return {
        "source": os.fspath(src),
        "source_kind": kind,
        "output": str(written),
        "parameters": model.num_parameters(),
        "heads": dict(model.config.heads),
        "channels": model.config.channels,
        "num_transformer_layers": model.config.num_transformer_layers,
        "files": [str(written / WEIGHTS_NAME), str(written / CONFIG_NAME)],
    }
