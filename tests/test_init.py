"""Fresh models start from DeepMind's initialisation (Sonnet defaults), not PyTorch's."""

from __future__ import annotations

import math

import pytest
import torch
from torch import nn

from enformer import Enformer, EnformerConfig
from enformer.model.attention import MultiheadAttention
from enformer.model.enformer import Head
from enformer.model.layers import SoftmaxPooling1D


@pytest.fixture(scope="module")
def model() -> Enformer:
    torch.manual_seed(0)
    cfg = EnformerConfig.tiny(
        channels=256, num_heads=8, key_size=64, num_relative_position_features=192,
        tower_filters=(128, 192, 256),
    )  # fmt: skip
    return Enformer(cfg)


def _std(t: torch.Tensor) -> float:
    return float(t.detach().double().std())


def test_attention_output_projection_starts_at_zero_so_blocks_are_identities(model):
    for m in model.modules():
        if isinstance(m, MultiheadAttention):
            assert not m.embedding_layer.weight.any() and not m.embedding_layer.bias.any()
    x = torch.randn(2, 16, 256, generator=torch.Generator().manual_seed(0))
    block = model.trunk.transformer[0]
    block.eval()
    with torch.no_grad():
        assert torch.equal(block.mha(x), torch.zeros_like(x))


def test_attention_projections_use_variance_scaling_2(model):
    mha = next(m for m in model.modules() if isinstance(m, MultiheadAttention))
    for linear in (mha.q_layer, mha.k_layer, mha.v_layer, mha.r_k_layer):
        fan_in = linear.weight.shape[1]
        expected = math.sqrt(2.0 / fan_in)  # after truncation, by construction
        assert _std(linear.weight) == pytest.approx(expected, rel=0.05)
        assert float(linear.weight.detach().abs().max()) <= 2 * expected / 0.8796 + 1e-6
    # (1, H, 1, K) biases: fan-in H
    for bias in (mha.r_w_bias, mha.r_r_bias):
        assert _std(bias) == pytest.approx(math.sqrt(2.0 / 8), rel=0.1)
        assert bias.abs().sum() > 0


def test_other_layers_use_truncated_normal_one_over_sqrt_fan_in_and_zero_bias(model):
    checked = 0
    pooling = {id(m.linear) for m in model.modules() if isinstance(m, SoftmaxPooling1D)}
    attention = {
        id(lin)
        for m in model.modules()
        if isinstance(m, MultiheadAttention)
        for lin in (m.q_layer, m.k_layer, m.v_layer, m.r_k_layer, m.embedding_layer)
    }
    for m in model.modules():
        if not isinstance(m, (nn.Linear, nn.Conv1d)) or id(m) in pooling | attention:
            continue
        fan_in = math.prod(m.weight.shape[1:])
        s = 1.0 / math.sqrt(fan_in)
        assert float(m.weight.detach().abs().max()) <= 2 * s + 1e-6
        if m.weight.numel() >= 4000:
            assert _std(m.weight) == pytest.approx(0.8796 * s, rel=0.08)
        assert m.bias is None or not m.bias.any()
        checked += 1
    assert checked > 10
    for m in model.modules():
        if isinstance(m, SoftmaxPooling1D):
            assert torch.equal(m.linear.weight, 2 * torch.eye(m.linear.weight.shape[0]))


def test_new_heads_get_the_same_rule():
    torch.manual_seed(0)
    head = Head(3072, 50)
    assert not head.linear.bias.any()
    assert float(head.linear.weight.detach().abs().max()) <= 2 / math.sqrt(3072) + 1e-6
    assert _std(head.linear.weight) == pytest.approx(0.8796 / math.sqrt(3072), rel=0.05)
