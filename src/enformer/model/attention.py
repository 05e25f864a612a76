"""Multi-head attention with Transformer-XL relative positions, as in Enformer.

The relative positional features are a fixed function of the number of bins ``T``
(DESIGN.md §1); they are evaluated in float64 once per length and cached.
"""

from __future__ import annotations

import functools
import math

import torch
import torch.nn.functional as F
from torch import nn

__all__ = ["MultiheadAttention", "relative_positional_features", "relative_shift"]


def _exponential(distance: torch.Tensor, n: int, length: int) -> torch.Tensor:
    """exp(-ln2 / half_life * |d|), half-lives 2**linspace(3, log2(T), n). ``(2T-1, n)``."""
    max_range = math.log(length) / math.log(2.0)
    half_life = torch.pow(2.0, torch.linspace(3.0, max_range, n, dtype=torch.float64))
    return torch.exp(-math.log(2.0) / half_life[None, :] * distance.abs()[:, None])


def _central_mask(distance: torch.Tensor, n: int) -> torch.Tensor:
    """1[|d| < 2**k - 1], k = 1..n. ``(2T-1, n)``."""
    widths = torch.pow(2.0, torch.arange(1, n + 1, dtype=torch.float64)) - 1
    return (widths[None, :] > distance.abs()[:, None]).to(torch.float64)


def _gamma(distance: torch.Tensor, n: int, length: int) -> torch.Tensor:
    """Gamma pdfs over |d|, each basis function divided by its own maximum. ``(2T-1, n)``."""
    stddev = length / (2 * n)
    mean = torch.linspace(length / n, length, n, dtype=torch.float64)
    concentration = (mean / stddev) ** 2
    rate = mean / stddev**2
    x = distance.abs()[:, None]
    log_unnormalised = torch.xlogy(concentration - 1.0, x) - rate * x
    log_normalisation = torch.lgamma(concentration) - concentration * torch.log(rate)
    prob = torch.exp(log_unnormalised - log_normalisation) + 1e-8
    # Normalise over distances, separately per basis function (axis 0 here): every
    # column peaks at exactly 1, as in the trained model's code.
    return prob / prob.amax(dim=0, keepdim=True)


@functools.lru_cache(maxsize=32)
def _cached_features(length: int, num_features: int) -> torch.Tensor:
    return relative_positional_features(length, num_features)


def relative_positional_features(length: int, num_features: int) -> torch.Tensor:
    """Relative positional features for ``length`` bins, float64 ``(2*length - 1, num_features)``.

    Row ``m`` is relative distance ``d = m - (length - 1)`` (key minus query). Columns:
    ``[exp, central_mask, gamma, sign(d)*exp, sign(d)*central_mask, sign(d)*gamma]``,
    ``num_features // 6`` basis functions each; ``sign(0) = 0``.
    """
    if num_features % 6:
        raise ValueError(f"num_features must be divisible by 6, got {num_features}")
    n = num_features // 6
    distance = torch.arange(-length + 1, length, dtype=torch.float64)
    symmetric = torch.cat(
        [
            _exponential(distance, n, length),
            _central_mask(distance, n),
            _gamma(distance, n, length),
        ],
        dim=-1,
    )
    return torch.cat([symmetric, torch.sign(distance)[:, None] * symmetric], dim=-1)


def relative_shift(x: torch.Tensor) -> torch.Tensor:
    """Turn logits over relative distances into logits over key positions.

    ``x`` is ``(..., T, 2T-1)`` with column ``m`` = distance ``m - (T-1)``; the result is
    ``(..., T, T)`` with ``out[i, j] = x[i, j - i + T - 1]``. Done with a strided view
    (no pad-and-reshape copy): element ``(i, j)`` sits at ``T-1 + i*(2T-2) + j``.
    """
    t = x.shape[-2]
    if x.shape[-1] != 2 * t - 1:
        raise ValueError(f"relative_shift expects (..., T, 2T-1), got {tuple(x.shape)}")
    x = x.contiguous()
    lead = x.shape[:-2]
    flat = x.reshape(-1, t, 2 * t - 1)  # (N, T, 2T-1)
    n = flat.shape[0]
    out = flat.as_strided(
        size=(n, t, t),
        stride=(t * (2 * t - 1), 2 * t - 2, 1),
        storage_offset=flat.storage_offset() + t - 1,
    )
    return out.reshape(*lead, t, t)


class MultiheadAttention(nn.Module):
    """Enformer's MHA: bias-free q/k/v and relative-key projections, biased output.

    ``logits = (q/sqrt(K) + r_w_bias) kᵀ + shift((q/sqrt(K) + r_r_bias) r_kᵀ)``.
    Parameter names follow DeepMind's checkpoint (``q_layer``, ``k_layer``, ...).
    """

    def __init__(
        self,
        channels: int,
        num_heads: int,
        key_size: int,
        value_size: int,
        num_relative_position_features: int,
        attention_dropout_rate: float = 0.0,
        positional_dropout_rate: float = 0.0,
    ) -> None:
        super().__init__()
        self.num_heads = num_heads
        self.key_size = key_size
        self.value_size = value_size
        self.num_relative_position_features = num_relative_position_features
        self.attention_dropout_rate = attention_dropout_rate
        self.q_layer = nn.Linear(channels, num_heads * key_size, bias=False)
        self.k_layer = nn.Linear(channels, num_heads * key_size, bias=False)
        self.v_layer = nn.Linear(channels, num_heads * value_size, bias=False)
        self.r_k_layer = nn.Linear(num_relative_position_features, num_heads * key_size, bias=False)
        self.embedding_layer = nn.Linear(num_heads * value_size, channels)
        self.r_w_bias = nn.Parameter(torch.zeros(1, num_heads, 1, key_size))
        self.r_r_bias = nn.Parameter(torch.zeros(1, num_heads, 1, key_size))
        self.positional_dropout = nn.Dropout(positional_dropout_rate)
        # (length, device, dtype) -> features; the float64 table is shared across layers.
        self._features_cast: dict[tuple[int, torch.device, torch.dtype], torch.Tensor] = {}
        # Set by enformer.interpret to capture softmax weights; None costs nothing.
        self.attention_hook = None

    def positional_features(self, length: int, device: torch.device, dtype: torch.dtype):
        """Cached relative positional features for ``length`` bins, ``(2T-1, F)``."""
        key = (length, device, dtype)
        cached = self._features_cast.get(key)
        if cached is None:
            table = _cached_features(length, self.num_relative_position_features)
            cached = table.to(device=device, dtype=dtype)
            self._features_cast[key] = cached
        return cached

    def relative_logits_bias(self, q: torch.Tensor, length: int) -> torch.Tensor:
        """``shift((q + r_r_bias) r_kᵀ)`` for scaled ``q`` ``(B, H, T, K)``; ``(B, H, T, T)``."""
        features = self.positional_features(length, q.device, q.dtype)  # (2T-1, F)
        features = self.positional_dropout(features)
        r_k = self.r_k_layer(features)  # (2T-1, H*K)
        r_k = r_k.view(2 * length - 1, self.num_heads, self.key_size).transpose(
            0, 1
        )  # (H, 2T-1, K)
        rel = torch.matmul(q + self.r_r_bias, r_k.transpose(-1, -2))  # (B, H, T, 2T-1)
        return relative_shift(rel)  # (B, H, T, T)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Attend over ``x`` ``(B, T, C)``; returns ``(B, T, C)``."""
        b, t, _ = x.shape
        h, k, v = self.num_heads, self.key_size, self.value_size
        q = self.q_layer(x).view(b, t, h, k).transpose(1, 2)  # (B, H, T, K)
        keys = self.k_layer(x).view(b, t, h, k).transpose(1, 2)  # (B, H, T, K)
        values = self.v_layer(x).view(b, t, h, v).transpose(1, 2)  # (B, H, T, V)
        q = q * (k**-0.5)  # scaled before the learned biases are added
        bias = self.relative_logits_bias(q, t)  # (B, H, T, T) strided view
        dropout = self.attention_dropout_rate if self.training else 0.0
        if self.attention_hook is None and x.device.type == "cuda":
            # Fused attention kernels with the relative logits as an additive bias.
            out = F.scaled_dot_product_attention(
                q + self.r_w_bias, keys, values, attn_mask=bias, dropout_p=dropout, scale=1.0
            )  # (B, H, T, V)
        else:
            # logits = shifted relative logits + content logits, in one buffer.
            logits = torch.matmul(q + self.r_w_bias, keys.transpose(-1, -2))  # (B, H, T, T)
            logits = logits.add_(bias) if not logits.requires_grad else logits + bias
            weights = torch.softmax(logits, dim=-1)  # (B, H, T, T)
            if self.attention_hook is not None:
                self.attention_hook(self, weights)
            if dropout:
                weights = F.dropout(weights, dropout, self.training)
            out = torch.matmul(weights, values)  # (B, H, T, V)
        out = out.transpose(1, 2).reshape(b, t, h * v)  # (B, T, H*V)
        return self.embedding_layer(out)
