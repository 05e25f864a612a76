"""DeepMind's initialisation of a freshly built Enformer (Sonnet 2 defaults, as trained).

Loading weights overwrites all of this; it matters only for training from scratch and for
new heads. The rules follow DeepMind's ``enformer.py`` / ``attention_module.py`` and Sonnet's
defaults:

* every convolution and linear layer (stem, conv tower, MLP, final pointwise, heads):
  weights from a normal of standard deviation ``1/sqrt(fan_in)`` truncated at two standard
  deviations (``snt.initializers.TruncatedNormal``), biases zero;
* attention ``q``/``k``/``v`` and relative-key ``r_k`` projections:
  ``VarianceScaling(scale=2.0)``, a truncated normal of standard deviation
  ``sqrt(2/fan_in) / 0.8796`` (the divisor makes up for the truncation);
* the relative-position biases ``r_w_bias`` and ``r_r_bias`` (shape ``(1, H, 1, K)``): the
  same initialiser, whose fan-in for that shape is ``H``;
* the attention output projection (``embedding_layer``): zeros (``zero_initialize=True``),
  so every attention branch starts as the identity of its residual block;
* softmax pooling: ``2·I`` (set by :class:`~enformer.model.layers.SoftmaxPooling1D`);
  BatchNorm and LayerNorm: scale one, offset zero.

PyTorch's defaults differ (uniform ``±1/sqrt(fan_in)`` weights and biases, zero
relative-position biases, a random output projection).
"""

from __future__ import annotations

import math

import torch
from torch import nn

from .attention import MultiheadAttention
from .layers import SoftmaxPooling1D

__all__ = ["init_deepmind_", "truncated_normal_"]

# Standard deviation of a unit normal truncated to [-2, 2] (Sonnet's VarianceScaling divisor).
_TRUNCATED_STD = 0.87962566103423978


def truncated_normal_(tensor: torch.Tensor, std: float) -> torch.Tensor:
    """Fill ``tensor`` from N(0, std²) truncated to ``[-2 std, 2 std]`` (TensorFlow's rule)."""
    return nn.init.trunc_normal_(tensor, mean=0.0, std=std, a=-2.0 * std, b=2.0 * std)


def _fan_in(weight: torch.Tensor) -> int:
    # Linear (out, in) and Conv1d (out, in, k): everything but the first axis
    return math.prod(weight.shape[1:])


def _variance_scaling_(tensor: torch.Tensor, fan_in: int, scale: float = 2.0) -> None:
    truncated_normal_(tensor, math.sqrt(scale / fan_in) / _TRUNCATED_STD)


@torch.no_grad()
def init_deepmind_(module: nn.Module) -> nn.Module:
    """Initialise every layer of ``module`` in place as DeepMind's Enformer does; returns it."""
    attention_linears: set[int] = set()
    for m in module.modules():
        if isinstance(m, MultiheadAttention):
            for linear in (m.q_layer, m.k_layer, m.v_layer, m.r_k_layer):
                _variance_scaling_(linear.weight, _fan_in(linear.weight))
                attention_linears.add(id(linear))
            heads = m.r_w_bias.shape[1]
            _variance_scaling_(m.r_w_bias, heads)
            _variance_scaling_(m.r_r_bias, heads)
            nn.init.zeros_(m.embedding_layer.weight)
            nn.init.zeros_(m.embedding_layer.bias)
            attention_linears.add(id(m.embedding_layer))
    pooling = {id(m.linear) for m in module.modules() if isinstance(m, SoftmaxPooling1D)}
    for m in module.modules():
        if id(m) in attention_linears or id(m) in pooling:
            continue
        if isinstance(m, (nn.Linear, nn.Conv1d)):
            truncated_normal_(m.weight, 1.0 / math.sqrt(_fan_in(m.weight)))
            if m.bias is not None:
                nn.init.zeros_(m.bias)
        elif isinstance(m, (nn.modules.batchnorm._BatchNorm, nn.LayerNorm)):
            if m.weight is not None:
                nn.init.ones_(m.weight)
                nn.init.zeros_(m.bias)
    return module
