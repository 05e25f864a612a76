"""One table that maps every tensor of our model to DeepMind's and enformer-pytorch's names.

Each :class:`Entry` names our parameter, the TF variable(s) it comes from (in
``{v.name: v.numpy()}`` form of the TF-Hub model), the enformer-pytorch / Hugging Face key,
and how the array is laid out in TF (``kind``). Converters walk this table, check
every shape, and report missing, extra or mis-shaped tensors by name.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch

from ..model.config import EnformerConfig

__all__ = ["Entry", "parameter_table", "tf_to_torch_layout"]


@dataclass(frozen=True)
class Entry:
    """One tensor of our model and where it lives in the other layouts."""

    ours: str  # key in our state_dict
    tf: tuple[str, ...]  # accepted TF variable names, in order of preference
    hf: str | None  # enformer-pytorch / Hugging Face key (None: not present there)
    kind: str  # "conv" | "dense" | "vector" | "bn_stat" | "rel_bias"


# A row: (our name, TF names (in order of preference), enformer-pytorch name, kind), each
# relative to its block's prefix; "{j}" in a TF name is the block's index.
_Row = tuple[str, tuple[str, ...], str, str]

# A conv block: BatchNorm (scale, offset, EMA mean/var) + Conv1d (w, b). The two EMAs share
# a name in some exports: the first is the mean, the second (marked '#1') the variance.
# Other exports name them moving_mean / moving_variance.
_CONV_BLOCK: tuple[_Row, ...] = (
    ("batch_norm.weight", ("cross_replica_batch_norm/scale:0",), "0.weight", "vector"),
    ("batch_norm.bias", ("cross_replica_batch_norm/offset:0",), "0.bias", "vector"),
    ("batch_norm.running_mean",
     ("exponential_moving_average/average:0", "moving_mean/average:0"), "0.running_mean",
     "bn_stat"),
    ("batch_norm.running_var",
     ("exponential_moving_average/average:0#1", "moving_variance/average:0"), "0.running_var",
     "bn_stat"),
    ("conv1_d.weight", ("conv1_d/w:0",), "2.weight", "conv"),
    ("conv1_d.bias", ("conv1_d/b:0",), "2.bias", "vector"),
)  # fmt: skip

_POOL: tuple[_Row, ...] = (
    ("softmax_pooling.linear.weight", ("softmax_pooling/linear/w:0",), "to_attn_logits.weight",
     "dense"),
)  # fmt: skip

_STEM_CONV: tuple[_Row, ...] = (
    ("conv1_d.weight", ("conv1_d/w:0",), "0.weight", "conv"),
    ("conv1_d.bias", ("conv1_d/b:0",), "0.bias", "vector"),
)

# One transformer block. The two MLP linears share the name 'linear' in some exports ('#1'
# marks the second); others call the second 'linear_1'. Shapes tell them apart.
_TRANSFORMER_BLOCK: tuple[_Row, ...] = (
    ("mha.layer_norm.weight", ("mha/layer_norm/scale:0",), "0.fn.0.weight", "vector"),
    ("mha.layer_norm.bias", ("mha/layer_norm/offset:0",), "0.fn.0.bias", "vector"),
    ("mha.attention.q_layer.weight", ("mha/attention_{j}/q_layer/w:0",), "0.fn.1.to_q.weight",
     "dense"),
    ("mha.attention.k_layer.weight", ("mha/attention_{j}/k_layer/w:0",), "0.fn.1.to_k.weight",
     "dense"),
    ("mha.attention.v_layer.weight", ("mha/attention_{j}/v_layer/w:0",), "0.fn.1.to_v.weight",
     "dense"),
    ("mha.attention.r_k_layer.weight", ("mha/attention_{j}/r_k_layer/w:0",),
     "0.fn.1.to_rel_k.weight", "dense"),
    ("mha.attention.embedding_layer.weight", ("mha/attention_{j}/embedding_layer/w:0",),
     "0.fn.1.to_out.weight", "dense"),
    ("mha.attention.embedding_layer.bias", ("mha/attention_{j}/embedding_layer/b:0",),
     "0.fn.1.to_out.bias", "vector"),
    ("mha.attention.r_w_bias", ("mha/attention_{j}/r_w_bias:0",), "0.fn.1.rel_content_bias",
     "rel_bias"),
    ("mha.attention.r_r_bias", ("mha/attention_{j}/r_r_bias:0",), "0.fn.1.rel_pos_bias",
     "rel_bias"),
    ("mlp.layer_norm.weight", ("mlp/layer_norm/scale:0",), "1.fn.0.weight", "vector"),
    ("mlp.layer_norm.bias", ("mlp/layer_norm/offset:0",), "1.fn.0.bias", "vector"),
    ("mlp.linear1.weight", ("mlp/linear/w:0",), "1.fn.1.weight", "dense"),
    ("mlp.linear1.bias", ("mlp/linear/b:0",), "1.fn.1.bias", "vector"),
    ("mlp.linear2.weight", ("mlp/linear/w:0#1", "mlp/linear_1/w:0"), "1.fn.4.weight", "dense"),
    ("mlp.linear2.bias", ("mlp/linear/b:0#1", "mlp/linear_1/b:0"), "1.fn.4.bias", "vector"),
)  # fmt: skip

_HEAD: tuple[_Row, ...] = (
    ("linear.weight", ("linear/w:0",), "0.weight", "dense"),
    ("linear.bias", ("linear/b:0",), "0.bias", "vector"),
)


def _entries(rows: tuple[_Row, ...], ours: str, tf: str, hf: str, j: int = 0) -> list[Entry]:
    """The rows of a block whose prefixes are ``ours``, ``tf`` and ``hf``."""
    return [
        Entry(
            f"{ours}.{mine}",
            tuple(f"{tf}/{name.format(j=j)}" for name in tf_names),
            f"{hf}.{theirs}",
            kind,
        )
        for mine, tf_names, theirs, kind in rows
    ]


def parameter_table(config: EnformerConfig) -> list[Entry]:
    """Every parameter and buffer of ``Enformer(config)`` that carries trained values."""
    trunk = "enformer/trunk"
    t = _entries(_STEM_CONV, "trunk.stem", f"{trunk}/stem", "stem")
    t += _entries(
        _CONV_BLOCK,
        "trunk.stem.pointwise_conv_block",
        f"{trunk}/stem/pointwise_conv_block",
        "stem.1.fn",
    )
    t += _entries(_POOL, "trunk.stem", f"{trunk}/stem", "stem.2")
    for i in range(len(config.filters)):
        ours, hf = f"trunk.conv_tower.{i}", f"conv_tower.{i}"
        tf = f"{trunk}/conv_tower/conv_tower_block_{i}"
        t += _entries(_CONV_BLOCK, f"{ours}.conv_block", f"{tf}/conv_block", f"{hf}.0")
        t += _entries(
            _CONV_BLOCK, f"{ours}.pointwise_conv_block", f"{tf}/pointwise_conv_block", f"{hf}.1.fn"
        )
        t += _entries(_POOL, ours, tf, f"{hf}.2")
    for j in range(config.num_transformer_layers):
        t += _entries(
            _TRANSFORMER_BLOCK,
            f"trunk.transformer.{j}",
            f"{trunk}/transformer/transformer_block_{j}",
            f"transformer.{j}",
            j,
        )
    t += _entries(
        _CONV_BLOCK,
        "trunk.final_pointwise.conv_block",
        f"{trunk}/final_pointwise/conv_block",
        "final_pointwise.1",
    )
    for name in config.heads:
        t += _entries(_HEAD, f"heads.{name}", f"enformer/heads/head_{name}", f"_heads.{name}")
    return t


def tf_to_torch_layout(array: np.ndarray, kind: str) -> torch.Tensor:
    """Re-lay a TF array into our layout.

    Conv ``(w, in, out) -> (out, in, w)``, dense ``(in, out) -> (out, in)``,
    BN statistics ``(1, 1, C) -> (C,)``.
    """
    a = np.asarray(array)
    if kind == "conv":
        a = a.transpose(2, 1, 0)
    elif kind == "dense":
        a = a.T
    elif kind == "bn_stat":
        a = a.reshape(-1)
    return torch.from_numpy(np.ascontiguousarray(a, dtype=np.float32))
