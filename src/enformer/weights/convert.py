"""Convert TF (Sonnet/TF-Hub) and enformer-pytorch weights into our state_dict.

Both converters walk :func:`~enformer.weights.mapping.parameter_table`, check the
shape of every tensor, and fail with one message naming every missing, extra or
mis-shaped tensor.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Mapping
from typing import Any

import numpy as np
import torch

from ..model.config import EnformerConfig
from ..model.enformer import Enformer
from .mapping import Entry, parameter_table, tf_to_torch_layout

__all__ = [
    "WeightsError",
    "config_from_hf",
    "config_from_tf_variables",
    "expected_shapes",
    "fill_untrained_buffers",
    "report_mismatch",
    "state_dict_from_hf",
    "state_dict_from_tf",
]

# TF variables that are training state, not weights: safe to ignore.
_TF_IGNORED = re.compile(
    r"/(counter|hidden)(:0)?(#\d+)?$|/(moving_mean|moving_variance)/(counter|hidden):0$"
)

# enformer-pytorch's _trunk Sequential indices -> its top-level module names.
_HF_TRUNK = {"1": "stem", "2": "conv_tower", "4": "transformer", "6": "final_pointwise"}


class WeightsError(ValueError):
    """Weights that do not fit the model: names every offending tensor."""


def expected_shapes(config: EnformerConfig) -> dict[str, tuple[int, ...]]:
    """Shapes of every tensor in ``Enformer(config).state_dict()``, without allocating it."""
    with torch.device("meta"):
        model = Enformer(config)
    return {k: tuple(v.shape) for k, v in model.state_dict().items()}


def report_mismatch(
    source: str,
    missing: list[str],
    extra: list[str],
    shapes: list[str],
) -> None:
    """Raise one :class:`WeightsError` naming every missing, extra and mis-shaped tensor, if any."""
    if not (missing or extra or shapes):
        return
    lines = [f"weights from {source} do not fit the model:"]
    if missing:
        lines.append(
            f"  missing ({len(missing)}): "
            + ", ".join(missing[:12])
            + (" ..." if len(missing) > 12 else "")
        )
    if extra:
        lines.append(
            f"  unexpected ({len(extra)}): "
            + ", ".join(extra[:12])
            + (" ..." if len(extra) > 12 else "")
        )
    for s in shapes[:12]:
        lines.append(f"  wrong shape: {s}")
    lines.append(
        "  check that the file is a complete Enformer checkpoint and that the config "
        "(channels, layers, heads) matches it"
    )
    raise WeightsError("\n".join(lines))


# ------------------------------------------------------------------------ TF


def _normalise_tf_names(variables: Mapping[str, Any]) -> dict[str, np.ndarray]:
    """Strip module prefixes some exports add (e.g. ``module/``), keep arrays as numpy."""
    out: dict[str, np.ndarray] = {}
    for name, value in variables.items():
        key = name
        idx = key.find("enformer/")
        if idx > 0:
            key = key[idx:]
        if key in out:
            raise WeightsError(
                f"two TF variables map to {key!r}; mark the second occurrence of a duplicated "
                "name with '#1' (e.g. the EMA variance), as shared/vectors does"
            )
        out[key] = np.asarray(value)
    return out


def config_from_tf_variables(variables: Mapping[str, Any], **overrides: Any) -> EnformerConfig:
    """Infer the architecture from TF variable names and shapes."""
    v = _normalise_tf_names(variables)
    try:
        stem_w = v["enformer/trunk/stem/conv1_d/w:0"]
        final_w = v["enformer/trunk/final_pointwise/conv_block/conv1_d/w:0"]
    except KeyError as err:
        raise WeightsError(
            f"not an Enformer TF variable set: {err.args[0]} is missing "
            "(expected names like enformer/trunk/stem/conv1_d/w:0)"
        ) from None
    channels = int(final_w.shape[1])
    tower = sorted({int(m.group(1)) for k in v if (m := re.search(r"conv_tower_block_(\d+)/", k))})
    filters = tuple(
        int(v[f"enformer/trunk/conv_tower/conv_tower_block_{i}/conv_block/conv1_d/w:0"].shape[2])
        for i in tower
    )
    blocks = sorted(
        {int(m.group(1)) for k in v if (m := re.search(r"transformer_block_(\d+)/", k))}
    )
    r_w = v["enformer/trunk/transformer/transformer_block_0/mha/attention_0/r_w_bias:0"]
    r_k = v["enformer/trunk/transformer/transformer_block_0/mha/attention_0/r_k_layer/w:0"]
    heads = {}
    for k, a in v.items():
        m = re.fullmatch(r"enformer/heads/head_(\w+)/linear/b:0", k)
        if m:
            heads[m.group(1)] = int(a.shape[0])
    kwargs: dict[str, Any] = dict(
        channels=channels,
        num_transformer_layers=len(blocks),
        num_heads=int(r_w.shape[1]),
        key_size=int(r_w.shape[3]),
        num_relative_position_features=int(r_k.shape[0]),
        num_pooling=len(filters) + 1,
        stem_kernel_size=int(stem_w.shape[0]),
        tower_filters=filters,
        heads={name: heads[name] for name in sorted(heads, key=lambda n: (n != "human", n))},
    )
    if filters:
        kwargs["tower_kernel_size"] = int(
            v["enformer/trunk/conv_tower/conv_tower_block_0/conv_block/conv1_d/w:0"].shape[0]
        )
    kwargs.update(overrides)
    cfg = EnformerConfig(**kwargs)
    if cfg.filters == EnformerConfig(**{**kwargs, "tower_filters": None}).filters:
        cfg = EnformerConfig(**{**kwargs, "tower_filters": None})
    return cfg


# (source name, tensor in our layout or None when the source lacks it, source shape)
_Found = tuple[str, torch.Tensor | None, tuple[int, ...]]


def _walk_table(
    config: EnformerConfig, lookup: Callable[[Entry], _Found | None]
) -> tuple[dict[str, tuple[int, ...]], dict[str, torch.Tensor], set[str], list[str], list[str]]:
    """Fill our state_dict entry by entry from ``lookup``, checking every shape.

    ``lookup`` returns ``None`` for an entry the source layout does not have at all.
    Returns the expected shapes, the state, the source names used, and the missing and
    mis-shaped tensors (for :func:`report_mismatch`).
    """
    shapes = expected_shapes(config)
    state: dict[str, torch.Tensor] = {}
    used: set[str] = set()
    missing: list[str] = []
    bad: list[str] = []
    for entry in parameter_table(config):
        found = lookup(entry)
        if found is None:
            continue
        name, tensor, source_shape = found
        if tensor is None:
            missing.append(name)
            continue
        used.add(name)
        want = shapes[entry.ours]
        if tuple(tensor.shape) != want:
            bad.append(f"{name} {source_shape} -> {entry.ours} needs {want}")
            continue
        state[entry.ours] = tensor
    return shapes, state, used, missing, bad


def state_dict_from_tf(
    variables: Mapping[str, Any], config: EnformerConfig, *, source: str = "TF variables"
) -> dict[str, torch.Tensor]:
    """Map ``{tf_variable_name: array}`` onto our state_dict, checking every shape."""
    v = _normalise_tf_names(variables)

    def lookup(entry: Entry) -> _Found:
        name = next((n for n in entry.tf if n in v), None)
        if name is None:
            return entry.tf[0], None, ()
        return name, tf_to_torch_layout(v[name], entry.kind), tuple(v[name].shape)

    shapes, state, used, missing, bad = _walk_table(config, lookup)
    extra = sorted(k for k in v if k not in used and not _TF_IGNORED.search(k))
    report_mismatch(source, missing, extra, bad)
    fill_untrained_buffers(state, shapes)
    return state


def fill_untrained_buffers(
    state: dict[str, torch.Tensor], shapes: dict[str, tuple[int, ...]]
) -> None:
    """BatchNorm ``num_batches_tracked`` counters carry no trained value: set them to 0."""
    for key, shape in shapes.items():
        if key.endswith("num_batches_tracked") and key not in state:
            state[key] = torch.zeros(shape, dtype=torch.long)


# ------------------------------------------------------------------------ HF


def config_from_hf(hf_config: Mapping[str, Any], **overrides: Any) -> EnformerConfig:
    """Our config from an enformer-pytorch / Hugging Face ``config.json``."""
    dim = int(hf_config.get("dim", 1536))
    heads = int(hf_config.get("heads", 8))
    num_downsamples = int(hf_config.get("num_downsamples", 7))
    divisible_by = int(hf_config.get("dim_divisible_by", 128))
    kwargs: dict[str, Any] = dict(
        channels=dim,
        num_transformer_layers=int(hf_config.get("depth", 11)),
        num_heads=heads,
        key_size=int(hf_config.get("attn_dim_key", 64)),
        num_pooling=num_downsamples,
        target_length=hf_config.get("target_length", 896),
        heads=dict(hf_config.get("output_heads", {"human": 5313, "mouse": 1643})),
        dropout_rate=float(hf_config.get("dropout_rate", 0.4)),
        attention_dropout_rate=float(hf_config.get("attn_dropout", 0.05)),
        positional_dropout_rate=float(hf_config.get("pos_dropout", 0.01)),
    )
    if divisible_by != 128:
        from ..model.config import exponential_linspace_int

        kwargs["tower_filters"] = tuple(
            exponential_linspace_int(dim // 2, dim, num_downsamples - 1, divisible_by)
        )
    if kwargs["target_length"] is not None and int(kwargs["target_length"]) < 0:
        kwargs["target_length"] = None
    kwargs.update(overrides)
    return EnformerConfig(**kwargs)


def _strip_hf_aliases(sd: Mapping[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """Drop the duplicate ``_trunk.*`` keys of enformer-pytorch (kept if nothing else is there)."""
    out = {k: v for k, v in sd.items() if not k.startswith("_trunk.")}
    for k, v in sd.items():
        if not k.startswith("_trunk."):
            continue
        _, idx, rest = k.split(".", 2)
        top = _HF_TRUNK.get(idx)
        if top is None:
            out[k] = v  # reported as unexpected below
            continue
        canonical = f"{top}.{rest}"
        if canonical in out:
            if out[canonical].shape == v.shape and not torch.equal(out[canonical], v):
                raise WeightsError(f"{k} and its alias {canonical} hold different values")
        else:
            out[canonical] = v
    return out


def state_dict_from_hf(
    sd: Mapping[str, torch.Tensor], config: EnformerConfig, *, source: str = "enformer-pytorch"
) -> dict[str, torch.Tensor]:
    """Map an enformer-pytorch state_dict (with or without ``_trunk.*``) onto ours."""
    src = _strip_hf_aliases(sd)

    def lookup(entry: Entry) -> _Found | None:
        key = entry.hf
        if key is None:
            return None
        if key not in src:
            return key, None, ()
        tensor = src[key].detach().to(torch.float32)
        if entry.kind == "dense" and tensor.dim() == 4:  # Conv2d 1x1 pooling logits
            tensor = tensor[:, :, 0, 0]
        return key, tensor.contiguous(), tuple(src[key].shape)

    shapes, state, used, missing, bad = _walk_table(config, lookup)
    for key in src:
        if key.endswith("num_batches_tracked"):
            ours = _hf_bn_counter_to_ours(key, config)
            if ours is not None:
                used.add(key)
                state[ours] = src[key].to(torch.long).reshape(())
    extra = sorted(k for k in src if k not in used)
    report_mismatch(source, missing, extra, bad)
    fill_untrained_buffers(state, shapes)
    return state


def _hf_bn_counter_to_ours(key: str, config: EnformerConfig) -> str | None:
    prefix = key[: -len(".0.num_batches_tracked")]
    for entry in parameter_table(config):
        if entry.hf == f"{prefix}.0.running_mean":
            return entry.ours.replace("running_mean", "num_batches_tracked")
    return None
