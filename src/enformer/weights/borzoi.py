"""Borzoi weights in: Calico's Keras checkpoints (``.h5``), their variables (``.npz``), folders.

Keras numbers its layers as it creates them (``conv1d_7``, ``dense_8``,
``batch_normalization_10``), so the names say little; what is fixed is the *order* in which
baskerville's ``SeqNN`` creates the variables. :func:`keras_layout` lists, in that order, each
variable's layer kind, variable name, shape and the parameter of :class:`~enformer.model.borzoi.Borzoi`
it fills (with the transpose that takes Keras' layout to PyTorch's). A checkpoint is read in
its own model order (an ``.h5`` file's ``layer_names`` and ``weight_names`` attributes, an
``.npz`` file's key order) and matched entry by entry: the kind, the variable name and the
shape must agree, and the first disagreement is reported by name.

A Calico release folder holds ``params.json`` (its ``model`` section builds the network) and
one checkpoint per head: ``model0_best.h5`` (human) and ``model1_best.h5`` (mouse), which share
the trunk. borzoi-pytorch / Hugging Face folders (``johahi/borzoi-replicate-*``,
``johahi/flashzoi-replicate-*``) and our own checkpoints (``config.json`` with ``family:
borzoi`` + ``model.safetensors``, written by :func:`enformer.weights.save_pretrained`) load
too; :func:`borzoi_folder_kind` tells them apart and :func:`load_borzoi_any` reads any of them.
"""

from __future__ import annotations

import json
import os
import re
from dataclasses import replace
from pathlib import Path
from typing import Any

import numpy as np
import torch

from ..model.borzoi import Borzoi, BorzoiConfig
from .convert import WeightsError, report_mismatch

__all__ = [
    "borzoi_folder_kind",
    "borzoi_pytorch_names",
    "config_from_borzoi_pytorch",
    "from_borzoi_pytorch",
    "is_borzoi_folder",
    "is_borzoi_pytorch_folder",
    "keras_layout",
    "load_borzoi",
    "load_borzoi_any",
    "load_borzoi_folder",
    "load_borzoi_pytorch_folder",
    "read_keras_h5",
    "read_keras_npz",
    "to_borzoi_pytorch",
]

# Keras layout -> PyTorch layout of each kind of tensor.
_CONV = (2, 1, 0)  # Conv1D kernel (k, in, out) -> (out, in, k)
_DENSE = (1, 0)  # Dense kernel (in, out) -> (out, in)
_DEPTHWISE = (1, 2, 0)  # (k, C, 1) -> (C, 1, k)
_POINTWISE = (2, 1, 0)  # (1, in, out) -> (out, in, 1)

_HEAD_FILES = {"human": "model0_best.h5", "mouse": "model1_best.h5"}


def _bn(prefix: str) -> list[tuple[str, str, str, Any]]:
    return [("batch_normalization", v, f"{prefix}.{p}", None) for v, p in
            (("gamma", "weight"), ("beta", "bias"), ("moving_mean", "running_mean"),
             ("moving_variance", "running_var"))]  # fmt: skip


def _dense(kind: str, prefix: str) -> list[tuple[str, str, str, Any]]:
    return [(kind, "kernel", f"{prefix}.weight", _DENSE), (kind, "bias", f"{prefix}.bias", None)]


def keras_layout(config: BorzoiConfig, heads: list[str] | None = None):
    """``[(kind, variable, our parameter, permutation)]`` in Keras' creation order.

    Calico's Keras checkpoints are Borzoi's (relative-position attention); Flashzoi has none.

    ``heads``: which heads' ``final`` Dense layers follow the trunk (default all, in the
    configuration's order — both for ``variables.npz``; one for a per-head ``.h5``).
    """
    if config.attention != "relative":
        raise ValueError("Keras checkpoints hold Borzoi (relative attention), not Flashzoi")
    out = [("conv1d", "kernel", "conv_dna.weight", _CONV), ("conv1d", "bias", "conv_dna.bias", None)]
    for i in range(config.tower_repeat):
        out += _bn(f"tower.{i}.norm")
        out += [("conv1d", "kernel", f"tower.{i}.conv.weight", _CONV),
                ("conv1d", "bias", f"tower.{i}.conv.bias", None)]  # fmt: skip
    for i in range(config.transformer_repeat):
        t, a = f"transformer.{i}", f"transformer.{i}.attention"
        out += [("layer_normalization", "gamma", f"{t}.norm1.weight", None),
                ("layer_normalization", "beta", f"{t}.norm1.bias", None),
                ("multihead_attention", "r_w_bias", f"{a}.r_w_bias", None),
                ("multihead_attention", "r_r_bias", f"{a}.r_r_bias", None),
                ("multihead_attention", "q_layer/kernel", f"{a}.q.weight", _DENSE),
                ("multihead_attention", "k_layer/kernel", f"{a}.k.weight", _DENSE),
                ("multihead_attention", "v_layer/kernel", f"{a}.v.weight", _DENSE),
                ("multihead_attention", "embedding_layer/kernel", f"{a}.out.weight", _DENSE),
                ("multihead_attention", "embedding_layer/bias", f"{a}.out.bias", None),
                ("multihead_attention", "r_k_layer/kernel", f"{a}.r_k.weight", _DENSE),
                ("layer_normalization", "gamma", f"{t}.norm2.weight", None),
                ("layer_normalization", "beta", f"{t}.norm2.bias", None)]  # fmt: skip
        out += _dense("dense", f"{t}.dense1") + _dense("dense", f"{t}.dense2")
    for i in range(config.unet_repeat):
        u = f"unet.{i}"
        out += _bn(f"{u}.norm_deep") + _bn(f"{u}.norm_skip")
        out += _dense("dense", f"{u}.dense_deep") + _dense("dense", f"{u}.dense_skip")
        out += [("separable_conv1d", "depthwise_kernel", f"{u}.depthwise.weight", _DEPTHWISE),
                ("separable_conv1d", "pointwise_kernel", f"{u}.pointwise.weight", _POINTWISE),
                ("separable_conv1d", "bias", f"{u}.pointwise.bias", None)]  # fmt: skip
    out += _bn("final.norm")
    out += [("conv1d", "kernel", "final.conv.weight", _CONV),
            ("conv1d", "bias", "final.conv.bias", None)]  # fmt: skip
    for head in config.heads if heads is None else heads:
        out += _dense("dense", f"heads.{head}")
    return out


def _kind_and_variable(name: str) -> tuple[str, str]:
    """``'multihead_attention_1/r_k_layer/kernel:0'`` -> ``('multihead_attention', 'r_k_layer/kernel')``."""
    layer, _, variable = name.partition("/")
    return re.sub(r"_\d+$", "", layer), variable.removesuffix(":0")


def read_keras_h5(path: str | os.PathLike[str]) -> list[tuple[str, np.ndarray]]:
    """The variables of a Keras ``save_weights`` file, in model order (needs h5py)."""
    try:
        import h5py
    except ImportError:  # pragma: no cover - h5py is in the [all] extra
        raise ImportError("reading Keras .h5 checkpoints needs h5py: pip install h5py") from None

    def text(x: Any) -> str:
        return x.decode() if isinstance(x, bytes) else str(x)

    out = []
    try:
        with h5py.File(path, "r") as f:
            for layer in map(text, f.attrs["layer_names"]):
                group = f[layer]
                for weight in map(text, group.attrs.get("weight_names", [])):
                    out.append((weight, np.asarray(group[weight])))
    except (OSError, KeyError) as err:
        raise ValueError(f"{path} is not a readable Keras weights file ({err})") from None
    return out


def read_keras_npz(path: str | os.PathLike[str]) -> list[tuple[str, np.ndarray]]:
    """``{name: array}`` of Keras variables saved with ``np.savez``, in file (model) order."""
    with np.load(path, allow_pickle=False) as data:
        return [(name, data[name]) for name in data.files]


def _fill(model: Borzoi, variables: list[tuple[str, np.ndarray]], layout, source: str) -> None:
    """Copy ``variables`` into ``model`` entry by entry; refuse any mismatch by name."""
    params = {**dict(model.named_parameters()), **dict(model.named_buffers())}
    if len(variables) != len(layout):
        raise ValueError(
            f"{source} holds {len(variables)} variables; a Borzoi of this configuration has "
            f"{len(layout)} (is params.json the one these weights were trained with?)"
        )
    with torch.no_grad():
        for (name, array), (kind, variable, target, perm) in zip(variables, layout, strict=True):
            got = _kind_and_variable(name)
            value = array.transpose(perm) if perm else array
            dest = params[target]
            if got != (kind, variable) or tuple(value.shape) != tuple(dest.shape):
                raise ValueError(
                    f"{source}: variable {name} {tuple(array.shape)} does not fit {target} "
                    f"(expected a {kind}/{variable} of PyTorch shape {tuple(dest.shape)})"
                )
            dest.copy_(torch.from_numpy(np.ascontiguousarray(value)))


def load_borzoi(
    config: BorzoiConfig,
    *,
    h5: dict[str, str | os.PathLike[str]] | None = None,
    npz: str | os.PathLike[str] | None = None,
) -> Borzoi:
    """A :class:`Borzoi` with weights from per-head ``.h5`` files or one ``variables.npz``.

    ``h5`` maps head names to Keras checkpoints; the trunk is read from the first, and each
    file's head from its own. Heads of ``config`` without a file are refused.
    """
    model = Borzoi(config).eval()
    if npz is not None:
        _fill(model, read_keras_npz(npz), keras_layout(config), str(npz))
        return model
    missing = [h for h in config.heads if h not in (h5 or {})]
    if missing:
        raise ValueError(f"no checkpoint for head(s) {missing}; give one .h5 file per head")
    first = True
    for head, path in h5.items():
        variables = read_keras_h5(path)
        layout = keras_layout(config, [head])
        if not first:  # the trunk came from the first file: take only this file's head
            variables, layout = variables[-2:], layout[-2:]
        _fill(model, variables, layout, str(path))
        first = False
    return model


def is_borzoi_folder(path: str | os.PathLike[str]) -> bool:
    """A Calico release folder: ``params.json`` with a ``model`` section and ``model*_best.h5``."""
    p = Path(path)
    return p.is_dir() and (p / "params.json").is_file() and any(p.glob("model*_best.h5"))


def load_borzoi_folder(path: str | os.PathLike[str]) -> Borzoi:
    """Load a Calico release folder (``params.json``, ``model0_best.h5``, ``model1_best.h5``)."""
    p = Path(path)
    config = BorzoiConfig.from_params(json.loads((p / "params.json").read_text()))
    files = {h: p / name for h, name in _HEAD_FILES.items() if (p / name).is_file()}
    if not files:
        raise ValueError(f"{p} has no model0_best.h5 / model1_best.h5 checkpoint")
    heads = {h: n for h, n in config.heads.items() if h in files}
    return load_borzoi(replace(config, heads=heads), h5=files)



# --------------------------------------------------------------------------------------
# borzoi-pytorch / Hugging Face layout (johahi/borzoi-replicate-*)
# --------------------------------------------------------------------------------------

_BN_KEYS = ("weight", "bias", "running_mean", "running_var", "num_batches_tracked")


def borzoi_pytorch_names(config: BorzoiConfig) -> dict[str, str]:
    """Our parameter name -> borzoi-pytorch's, for the released layout (6 tower blocks, 2 U-Net
    blocks); borzoi-pytorch keeps the last tower block in ``unet1`` and the U-Net's skip
    projections as ``horizontal_conv*``."""
    if config.tower_repeat != 6 or config.unet_repeat != 2:
        raise ValueError("borzoi-pytorch's layout has 6 tower and 2 U-Net blocks")
    names: dict[str, str] = {"conv_dna.weight": "conv_dna.conv_layer.weight",
                             "conv_dna.bias": "conv_dna.conv_layer.bias"}  # fmt: skip

    def block(ours: str, theirs: str, conv: str = "conv") -> None:
        names.update({f"{ours}.norm.{k}": f"{theirs}.norm.{k}" for k in _BN_KEYS})
        names.update({f"{ours}.{conv}.{k}": f"{theirs}.conv_layer.{k}" for k in ("weight", "bias")})

    for i in range(5):
        block(f"tower.{i}", f"res_tower.{2 * i}")
    block("tower.5", "unet1.1")
    for i in range(config.transformer_repeat):
        ours, theirs = f"transformer.{i}", f"transformer.{i}"
        pairs = {"norm1": "0.fn.0", "attention.q": "0.fn.1.to_q", "attention.k": "0.fn.1.to_k",
                 "attention.v": "0.fn.1.to_v", "attention.out": "0.fn.1.to_out",
                 "attention.r_k": "0.fn.1.to_rel_k", "norm2": "1.fn.0", "dense1": "1.fn.1",
                 "dense2": "1.fn.4"}  # fmt: skip
        for a, b in pairs.items():
            for k in ("weight", "bias"):
                names[f"{ours}.{a}.{k}"] = f"{theirs}.{b}.{k}"
        names[f"{ours}.attention.r_w_bias"] = f"{theirs}.0.fn.1.rel_content_bias"
        names[f"{ours}.attention.r_r_bias"] = f"{theirs}.0.fn.1.rel_pos_bias"
        for a in ("Wqkv", "out_proj"):  # Flashzoi's attention (flash-attn MHA)
            for k in ("weight", "bias"):
                names[f"{ours}.attention.{a}.{k}"] = f"{theirs}.0.fn.1.mha.{a}.{k}"
    for i, (up, skip, sep) in enumerate((("upsampling_unet1.0", "horizontal_conv1", "separable1"),
                                         ("upsampling_unet0.0", "horizontal_conv0", "separable0"))):
        for part, theirs in (("deep", up), ("skip", skip)):
            names.update({f"unet.{i}.norm_{part}.{k}": f"{theirs}.norm.{k}" for k in _BN_KEYS})
            names.update({f"unet.{i}.dense_{part}.{k}": f"{theirs}.conv_layer.{k}"
                          for k in ("weight", "bias")})  # fmt: skip
        names[f"unet.{i}.depthwise.weight"] = f"{sep}.conv_layer.0.weight"
        names[f"unet.{i}.pointwise.weight"] = f"{sep}.conv_layer.1.weight"
        names[f"unet.{i}.pointwise.bias"] = f"{sep}.conv_layer.1.bias"
    block("final", "final_joined_convs.0")
    for head in config.heads:
        for k in ("weight", "bias"):
            names[f"heads.{head}.{k}"] = f"{head}_head.{k}"
    return names


def from_borzoi_pytorch(state: dict[str, torch.Tensor], config: BorzoiConfig) -> Borzoi:
    """A :class:`Borzoi` from a borzoi-pytorch state dict (its 1x1 convs become our Linears).

    Every tensor of ours must be present with a fitting shape; tensors left over (other than
    borzoi-pytorch's non-persistent buffers) are refused by name.
    """
    model = Borzoi(config).eval()
    ours = model.state_dict()
    names = {k: v for k, v in borzoi_pytorch_names(config).items() if k in ours}
    missing = [theirs for theirs in names.values() if theirs not in state]
    extra = sorted(set(state) - set(names.values()))
    if missing or extra:
        raise ValueError(f"not a borzoi-pytorch Borzoi state dict of this configuration: missing "
                         f"{missing[:5]}, unexpected {extra[:5]}")  # fmt: skip
    loaded = {}
    for mine, target in ours.items():
        value = state[names[mine]]
        if value.shape != target.shape and value.numel() == target.numel():
            value = value.reshape(target.shape)  # Conv1d(k=1) (out, in, 1) <-> Linear (out, in)
        if value.shape != target.shape:
            raise ValueError(f"{names[mine]} has shape {tuple(value.shape)}; {mine} needs "
                             f"{tuple(target.shape)}")  # fmt: skip
        loaded[mine] = value
    model.load_state_dict(loaded)
    return model


def to_borzoi_pytorch(model: Borzoi) -> dict[str, torch.Tensor]:
    """Our weights under borzoi-pytorch's names and shapes (1x1 convs as Conv1d weights)."""
    names = borzoi_pytorch_names(model.config)
    out = {}
    for mine, value in model.state_dict().items():
        theirs = names[mine]
        conv_1x1 = theirs.endswith("conv_layer.weight") or theirs.endswith("_head.weight")
        out[theirs] = value.unsqueeze(-1) if conv_1x1 and value.dim() == 2 else value
    return out


def _config_object(path: str | os.PathLike[str]) -> dict[str, Any] | None:
    """The JSON object in ``path/config.json``, or ``None`` (absent, unreadable, not an object)."""
    config = Path(path) / "config.json"
    if not config.is_file():
        return None
    try:
        found = json.loads(config.read_text())
    except (OSError, ValueError):
        return None
    return found if isinstance(found, dict) else None


def is_borzoi_pytorch_folder(path: str | os.PathLike[str]) -> bool:
    """A borzoi-pytorch / Hugging Face folder: ``config.json`` with ``model_type`` borzoi."""
    return (_config_object(path) or {}).get("model_type") == "borzoi"


def borzoi_folder_kind(path: str | os.PathLike[str]) -> str | None:
    """``"calico"``, ``"borzoi-pytorch"`` or ``"enformer"`` (our checkpoint) for a folder of
    Borzoi weights; ``None`` for anything else (an Enformer checkpoint, a file, nothing)."""
    if not Path(path).is_dir():
        return None
    if is_borzoi_folder(path):
        return "calico"
    config = _config_object(path) or {}
    if config.get("model_type") == "borzoi":
        return "borzoi-pytorch"
    return "enformer" if config.get("family") == "borzoi" else None


def load_saved_borzoi(path: str | os.PathLike[str]) -> Borzoi:
    """One of our Borzoi checkpoints (``config.json`` + ``model.safetensors``), every tensor
    checked by name and shape."""
    from safetensors.torch import load_file

    p = Path(path)
    meta = {k: v for k, v in (_config_object(p) or {}).items()
            if k not in ("format", "format_version")}  # fmt: skip
    try:
        config = BorzoiConfig.from_dict(meta)
    except TypeError as err:
        raise WeightsError(f"{p / 'config.json'} is not a Borzoi configuration this version "
                           f"reads ({err}); upgrade the package") from None  # fmt: skip
    if not (p / "model.safetensors").is_file():
        raise WeightsError(f"{p} has a Borzoi config.json but no model.safetensors")
    state = load_file(str(p / "model.safetensors"))
    model = Borzoi(config)
    shapes = {k: tuple(v.shape) for k, v in model.state_dict().items()}
    report_mismatch(str(p), [k for k in shapes if k not in state],
                    sorted(k for k in state if k not in shapes),
                    [f"{k} {tuple(state[k].shape)} needs {shapes[k]}" for k in shapes
                     if k in state and tuple(state[k].shape) != shapes[k]])  # fmt: skip
    model.load_state_dict(state)
    return model.eval()


def load_borzoi_any(path: str | os.PathLike[str]) -> tuple[Borzoi, str]:
    """A Borzoi or Flashzoi model from any folder :func:`borzoi_folder_kind` recognises, and
    the kind it was."""
    kind = borzoi_folder_kind(path)
    loaders = {"calico": load_borzoi_folder, "borzoi-pytorch": load_borzoi_pytorch_folder,
               "enformer": load_saved_borzoi}  # fmt: skip
    if kind is None:
        raise ValueError(f"{path} is not a folder of Borzoi weights")
    return loaders[kind](path).eval(), kind


def config_from_borzoi_pytorch(hf: dict[str, Any]) -> BorzoiConfig:
    """Our configuration of a borzoi-pytorch ``config.json`` (the released architecture;
    ``flashed: true`` is Flashzoi, with rotary attention).

    borzoi-pytorch returns the central ``bins_to_return`` bins (6,144 by default, the
    training crop) when ``return_center_bins_only``, else 16,352 (the prediction crop).
    """
    official = BorzoiConfig.preset("flashzoi" if hf.get("flashed") else "official")
    shape = (hf.get("dim", 1536), hf.get("depth", 8), hf.get("heads", 8), hf.get("attn_dim_key", 64))
    if shape != (official.channels, official.transformer_repeat, official.attention_heads,
                 official.key_size):  # fmt: skip
        raise ValueError(f"borzoi-pytorch config with dim/depth/heads/key {shape} is not the "
                         "released Borzoi architecture")  # fmt: skip
    bins = hf.get("bins_to_return", 6144) if hf.get("return_center_bins_only", True) else 16352
    heads = {h: n for h, n in official.heads.items()
             if hf.get(f"enable_{h}_head", h == "human")}  # fmt: skip
    return replace(official, crop=(16384 - bins) // 2, heads=heads)


def load_borzoi_pytorch_folder(path: str | os.PathLike[str]) -> Borzoi:
    """Load a borzoi-pytorch / Hugging Face folder (``model.safetensors`` or ``pytorch_model.bin``)."""
    p = Path(path)
    config = config_from_borzoi_pytorch(json.loads((p / "config.json").read_text()))
    if (p / "model.safetensors").is_file():
        from safetensors.torch import load_file

        state = load_file(str(p / "model.safetensors"))
    elif (p / "pytorch_model.bin").is_file():
        state = torch.load(p / "pytorch_model.bin", map_location="cpu", weights_only=True)
    else:
        raise ValueError(f"{p} has no model.safetensors or pytorch_model.bin")
    return from_borzoi_pytorch(state, config)
