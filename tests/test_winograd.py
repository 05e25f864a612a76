"""Winograd F(4, 5) convolutions (model/winograd.py) as the conv stages run them (conv_rows)."""

from __future__ import annotations

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from enformer.model import fast, winograd


def test_transforms_are_the_identity_they_claim():
    """A^T[(G w) * (B^T d)] is the correlation of d and w, for any d, w (float64)."""
    at, g, bt = winograd.transforms(4, 5)
    assert at.shape == (4, 8) and g.shape == (8, 5) and bt.shape == (8, 8)
    rng = np.random.default_rng(0)
    for _ in range(20):
        d, w = rng.normal(size=8), rng.normal(size=5)
        expected = [d[s : s + 5] @ w for s in range(4)]
        np.testing.assert_allclose(at @ ((g @ w) * (bt @ d)), expected, rtol=0, atol=1e-12)


def test_no_points_for_a_larger_tile():
    with pytest.raises(ValueError, match="no Winograd points"):
        winograd.transforms(6, 5)


def _activated_rows(rows: int, c_in: int, seed: int = 0) -> torch.Tensor:
    g = torch.Generator().manual_seed(seed)
    return F.gelu(torch.randn(rows + 4, c_in, generator=g), approximate="tanh")


@pytest.mark.parametrize("rows", [64, 50, 3])  # whole tiles; 2 rows left over; no whole tile
def test_conv_rows_equals_a_float64_convolution(rows):
    """Winograd rows (and the direct GEMM for the rows left over) against float64: within
    1e-5 of the output scale (float32 rounding only), as close as the direct GEMM's order
    of magnitude."""
    torch.manual_seed(1)
    conv = torch.nn.Conv1d(96, 128, 5)
    a = _activated_rows(rows, 96)
    y = torch.empty(rows, 128)
    with torch.no_grad():
        fast.conv_rows(conv, a, rows, y, scratch={})
        ref = F.conv1d(a.double().T[None], conv.weight.double(), conv.bias.double())[0].T
        direct = torch.addmm(conv.bias, a.as_strided((rows, 480), (96, 1)), fast.conv_matrix(conv))
    scale = ref.abs().max()
    err = float((y.double() - ref).abs().max() / scale)
    assert err < 1e-5
    direct_err = float((direct.double() - ref).abs().max() / scale)
    assert err < 20 * max(direct_err, 1e-7)


def test_kernel_transform_follows_weight_changes():
    """The cached kernel transform is rebuilt when the weight changes in place."""
    conv = torch.nn.Conv1d(8, 8, 5)
    a = _activated_rows(16, 8)
    y = torch.empty(16, 8)
    with torch.no_grad():
        fast.conv_rows(conv, a, 16, y)
        conv.weight.mul_(2.0)
        conv.bias.zero_()
        fast.conv_rows(conv, a, 16, y)
        ref = F.conv1d(a.T[None], conv.weight)[0].T
    torch.testing.assert_close(y, ref, rtol=1e-5, atol=1e-5)


def test_other_widths_stay_direct():
    """Widths without a tile (the stem's 15, 1x1) use the direct GEMM, bitwise."""
    assert not winograd.supported(15) and not winograd.supported(1)
    conv = torch.nn.Conv1d(4, 16, 15)
    a = torch.randn(32 + 14, 4)
    y = torch.empty(32, 16)
    with torch.no_grad():
        fast.conv_rows(conv, a, 32, y)
        direct = torch.addmm(conv.bias, a.as_strided((32, 60), (4, 1)), fast.conv_matrix(conv))
    assert torch.equal(y, direct)
