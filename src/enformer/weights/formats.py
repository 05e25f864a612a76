"""Reading weights from disk: every format :func:`~enformer.weights.load_pretrained` accepts.

Our checkpoint format is a directory holding ``model.safetensors`` (every tensor of
``Enformer.state_dict()``, BatchNorm statistics included) and ``config.json`` (the
model's :class:`~enformer.model.config.EnformerConfig` plus ``"format": "enformer"``
and ``"format_version"``), so a checkpoint rebuilds itself. Besides it, this module reads
what users already hold:

* an enformer-pytorch / Hugging Face directory (``config.json`` with ``dim``/``depth``
  and ``model.safetensors`` or ``pytorch_model.bin``, with or without the duplicate
  ``_trunk.*`` keys);
* a ``.npz`` of TF variables (``{v.name: v.numpy()}`` of the TF-Hub model), or a TF-Hub
  SavedModel directory when TensorFlow is installed;
* a single ``.safetensors`` / ``.bin`` / ``.pt`` file with a ``config.json`` beside it.

PyTorch files are always read with ``torch.load(..., weights_only=True)``: no pickled
code is ever run.
"""

from __future__ import annotations

import dataclasses
import json
import os
import pickletools
import re
import zipfile
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import numpy as np
import torch

from ..model.borzoi import BorzoiConfig
from ..model.config import EnformerConfig
from . import convert
from .convert import WeightsError
from .quantize import QUANTIZATION, dequantize_int8

__all__ = [
    "CONFIG_NAME",
    "FORMAT",
    "FORMAT_VERSION",
    "NPZ_EXPORT_SNIPPET",
    "PYTORCH_WEIGHTS_NAME",
    "WEIGHTS_CANDIDATES",
    "WEIGHTS_NAME",
    "WeightsNotFound",
    "WeightsSource",
    "config_json",
    "read_tf_savedmodel",
    "read_weights",
]

CONFIG_NAME = "config.json"
WEIGHTS_NAME = "model.safetensors"
PYTORCH_WEIGHTS_NAME = "pytorch_model.bin"
FORMAT = "enformer"
FORMAT_VERSION = 1
# Weight files tried, in order, in a directory and on the hub.
WEIGHTS_CANDIDATES = (WEIGHTS_NAME, PYTORCH_WEIGHTS_NAME)

_TORCH_SUFFIXES = (".bin", ".pt", ".pth")

# Three lines that turn a TF-Hub SavedModel into the .npz we read without TensorFlow.
NPZ_EXPORT_SNIPPET = """\
import numpy as np, tensorflow as tf
vs = tf.saved_model.load("SAVED_MODEL_DIR").model.variables; names = [v.name for v in vs]
np.savez("enformer_tf.npz", **{n + (f"#{names[:i].count(n)}" if n in names[:i] else ""): v.numpy() for i, (n, v) in enumerate(zip(names, vs))})"""  # noqa: E501


class WeightsNotFound(FileNotFoundError):
    """No weights where they were looked for; the message says what was tried and what to do."""


def config_json(config: EnformerConfig | BorzoiConfig) -> dict[str, Any]:
    """The ``config.json`` content of a checkpoint of a model built from ``config`` (a Borzoi
    configuration carries ``family: borzoi``)."""
    meta = config.to_dict() if isinstance(config, BorzoiConfig) else json.loads(config.to_json())
    meta["format"] = FORMAT
    meta["format_version"] = FORMAT_VERSION
    return meta


@dataclasses.dataclass
class WeightsSource:
    """Weights read from disk, already in our naming."""

    kind: str  # "enformer" | "enformer-pytorch" | "tf-variables" | "tf-savedmodel"
    config: EnformerConfig  # the architecture the file describes
    state: dict[str, torch.Tensor]
    path: Path


def read_weights(path: Path, user_config: EnformerConfig | None) -> WeightsSource:
    """Read the weights at ``path`` (a file or a directory) into our naming.

    Parameters
    ----------
    path
        A checkpoint directory (ours, enformer-pytorch's or a TF SavedModel), a ``.npz`` of
        TF variables, or a single weights file (a ``config.json`` beside it, or in it).
    user_config
        The architecture to assume when the weights come with no config.

    Returns
    -------
    WeightsSource
        The format found, the config it describes, and the tensors in our naming.
    """
    if path.is_dir():
        if (path / "saved_model.pb").is_file():
            return _from_tf("tf-savedmodel", read_tf_savedmodel(path), path)
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
        return _from_tf("tf-variables", _read_npz(path), path)
    if suffix == ".safetensors" or suffix in _TORCH_SUFFIXES:
        return _read_weights_file(path, path.parent / CONFIG_NAME, user_config)
    if path.name == CONFIG_NAME:
        return read_weights(path.parent, user_config)
    raise WeightsError(
        f"{path}: unknown weights file type {suffix or '(no suffix)'!r}; expected a directory, "
        "a .npz of TF variables, or a .safetensors / .bin / .pt file"
    )


def _from_tf(kind: str, variables: dict[str, np.ndarray], path: Path) -> WeightsSource:
    """TF variables into our naming, with the architecture they describe."""
    cfg = convert.config_from_tf_variables(variables)
    state = convert.state_dict_from_tf(variables, cfg, source=str(path))
    return WeightsSource(kind, cfg, state, path)


def _read_weights_file(
    weights: Path, config_path: Path, user_config: EnformerConfig | None
) -> WeightsSource:
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
        state = convert.state_dict_from_hf(tensors, cfg, source=str(weights))
    else:
        state = dict(tensors)
    return WeightsSource(layout, cfg, state, weights)


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
            return convert.config_from_hf(data)
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
