"""One table that maps every tensor of our model to DeepMind's and enformer-pytorch's names.

Each :class:`Entry` names our parameter, the TF variable(s) it comes from (in
``{v.name: v.numpy()}`` form, DESIGN.md §2), the enformer-pytorch / Hugging Face key,
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


def _bn_block(ours: str, tf: str, hf: str) -> list[Entry]:
    """A conv block: BatchNorm (scale, offset, EMA mean/var) + Conv1d (w, b)."""
    bn = f"{tf}/cross_replica_batch_norm"
    ema = f"{tf}/exponential_moving_average"
    return [
        Entry(f"{ours}.batch_norm.weight", (f"{bn}/scale:0",), f"{hf}.0.weight", "vector"),
        Entry(f"{ours}.batch_norm.bias", (f"{bn}/offset:0",), f"{hf}.0.bias", "vector"),
        # The two EMAs share a name in some exports: the first is the mean, the second
        # (marked '#1') the variance. Other exports name them moving_mean / moving_variance.
        Entry(
            f"{ours}.batch_norm.running_mean",
            (f"{ema}/average:0", f"{tf}/moving_mean/average:0"),
            f"{hf}.0.running_mean",
            "bn_stat",
        ),
        Entry(
            f"{ours}.batch_norm.running_var",
            (f"{ema}/average:0#1", f"{tf}/moving_variance/average:0"),
            f"{hf}.0.running_var",
            "bn_stat",
        ),
        Entry(f"{ours}.conv1_d.weight", (f"{tf}/conv1_d/w:0",), f"{hf}.2.weight", "conv"),
        Entry(f"{ours}.conv1_d.bias", (f"{tf}/conv1_d/b:0",), f"{hf}.2.bias", "vector"),
    ]


def parameter_table(config: EnformerConfig) -> list[Entry]:
    """Every parameter and buffer of ``Enformer(config)`` that carries trained values."""
    t: list[Entry] = []
    trunk = "enformer/trunk"
    # --- stem
    t += [
        Entry("trunk.stem.conv1_d.weight", (f"{trunk}/stem/conv1_d/w:0",), "stem.0.weight", "conv"),
        Entry("trunk.stem.conv1_d.bias", (f"{trunk}/stem/conv1_d/b:0",), "stem.0.bias", "vector"),
    ]
    t += _bn_block(
        "trunk.stem.pointwise_conv_block", f"{trunk}/stem/pointwise_conv_block", "stem.1.fn"
    )
    t.append(
        Entry(
            "trunk.stem.softmax_pooling.linear.weight",
            (f"{trunk}/stem/softmax_pooling/linear/w:0",),
            "stem.2.to_attn_logits.weight",
            "dense",
        )
    )
    # --- conv tower
    for i in range(len(config.filters)):
        tf = f"{trunk}/conv_tower/conv_tower_block_{i}"
        ours = f"trunk.conv_tower.{i}"
        t += _bn_block(f"{ours}.conv_block", f"{tf}/conv_block", f"conv_tower.{i}.0")
        t += _bn_block(
            f"{ours}.pointwise_conv_block", f"{tf}/pointwise_conv_block", f"conv_tower.{i}.1.fn"
        )
        t.append(
            Entry(
                f"{ours}.softmax_pooling.linear.weight",
                (f"{tf}/softmax_pooling/linear/w:0",),
                f"conv_tower.{i}.2.to_attn_logits.weight",
                "dense",
            )
        )
    # --- transformer
    for j in range(config.num_transformer_layers):
        tf = f"{trunk}/transformer/transformer_block_{j}"
        ours = f"trunk.transformer.{j}"
        hf = f"transformer.{j}"
        att = f"{tf}/mha/attention_{j}"
        t += [
            Entry(
                f"{ours}.mha.layer_norm.weight",
                (f"{tf}/mha/layer_norm/scale:0",),
                f"{hf}.0.fn.0.weight",
                "vector",
            ),
            Entry(
                f"{ours}.mha.layer_norm.bias",
                (f"{tf}/mha/layer_norm/offset:0",),
                f"{hf}.0.fn.0.bias",
                "vector",
            ),
            Entry(
                f"{ours}.mha.attention.q_layer.weight",
                (f"{att}/q_layer/w:0",),
                f"{hf}.0.fn.1.to_q.weight",
                "dense",
            ),
            Entry(
                f"{ours}.mha.attention.k_layer.weight",
                (f"{att}/k_layer/w:0",),
                f"{hf}.0.fn.1.to_k.weight",
                "dense",
            ),
            Entry(
                f"{ours}.mha.attention.v_layer.weight",
                (f"{att}/v_layer/w:0",),
                f"{hf}.0.fn.1.to_v.weight",
                "dense",
            ),
            Entry(
                f"{ours}.mha.attention.r_k_layer.weight",
                (f"{att}/r_k_layer/w:0",),
                f"{hf}.0.fn.1.to_rel_k.weight",
                "dense",
            ),
            Entry(
                f"{ours}.mha.attention.embedding_layer.weight",
                (f"{att}/embedding_layer/w:0",),
                f"{hf}.0.fn.1.to_out.weight",
                "dense",
            ),
            Entry(
                f"{ours}.mha.attention.embedding_layer.bias",
                (f"{att}/embedding_layer/b:0",),
                f"{hf}.0.fn.1.to_out.bias",
                "vector",
            ),
            Entry(
                f"{ours}.mha.attention.r_w_bias",
                (f"{att}/r_w_bias:0",),
                f"{hf}.0.fn.1.rel_content_bias",
                "rel_bias",
            ),
            Entry(
                f"{ours}.mha.attention.r_r_bias",
                (f"{att}/r_r_bias:0",),
                f"{hf}.0.fn.1.rel_pos_bias",
                "rel_bias",
            ),
            Entry(
                f"{ours}.mlp.layer_norm.weight",
                (f"{tf}/mlp/layer_norm/scale:0",),
                f"{hf}.1.fn.0.weight",
                "vector",
            ),
            Entry(
                f"{ours}.mlp.layer_norm.bias",
                (f"{tf}/mlp/layer_norm/offset:0",),
                f"{hf}.1.fn.0.bias",
                "vector",
            ),
            # The two MLP linears share the name 'linear' in some exports ('#1' marks the
            # second); others call the second 'linear_1'. Shapes tell them apart.
            Entry(
                f"{ours}.mlp.linear1.weight",
                (f"{tf}/mlp/linear/w:0",),
                f"{hf}.1.fn.1.weight",
                "dense",
            ),
            Entry(
                f"{ours}.mlp.linear1.bias", (f"{tf}/mlp/linear/b:0",), f"{hf}.1.fn.1.bias", "vector"
            ),
            Entry(
                f"{ours}.mlp.linear2.weight",
                (f"{tf}/mlp/linear/w:0#1", f"{tf}/mlp/linear_1/w:0"),
                f"{hf}.1.fn.4.weight",
                "dense",
            ),
            Entry(
                f"{ours}.mlp.linear2.bias",
                (f"{tf}/mlp/linear/b:0#1", f"{tf}/mlp/linear_1/b:0"),
                f"{hf}.1.fn.4.bias",
                "vector",
            ),
        ]
    # --- final pointwise and heads
    t += _bn_block(
        "trunk.final_pointwise.conv_block",
        f"{trunk}/final_pointwise/conv_block",
        "final_pointwise.1",
    )
    for name in config.heads:
        t += [
            Entry(
                f"heads.{name}.linear.weight",
                (f"enformer/heads/head_{name}/linear/w:0",),
                f"_heads.{name}.0.weight",
                "dense",
            ),
            Entry(
                f"heads.{name}.linear.bias",
                (f"enformer/heads/head_{name}/linear/b:0",),
                f"_heads.{name}.0.bias",
                "vector",
            ),
        ]
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
