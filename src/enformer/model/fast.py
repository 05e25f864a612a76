"""Inference kernels for the convolutional stages: channels-last, tiled, fused.

In eval mode without autograd, the stem and each conv-tower block run here instead
of through ``nn.Conv1d``/``nn.BatchNorm1d``. The arithmetic is the same (BatchNorm
with moving averages as an affine map, GELU, convolutions as matrix products, the
two-position softmax pool as a sigmoid); only the order of float operations differs.
Working on row tiles of a ``(L, C)`` channels-last activation keeps the
intermediates in cache and avoids allocating (and page-faulting) full-length
temporaries for every elementwise step; a width-``k`` convolution is one GEMM over
the ``(rows, k*C_in)`` window matrix.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F

__all__ = ["stem_forward", "tower_block_forward", "bn_affine", "conv_matrix"]

# Rows per tile of the conv stages (output rows before pooling); even, so pools align.
TILE_ROWS = 2048


def bn_affine(bn: torch.nn.BatchNorm1d) -> tuple[torch.Tensor, torch.Tensor]:
    """Eval-mode BatchNorm as ``x * scale + shift`` (moving averages, eps)."""
    scale = bn.weight * torch.rsqrt(bn.running_var + bn.eps)
    shift = bn.bias - bn.running_mean * scale
    return scale, shift


def conv_matrix(conv: torch.nn.Conv1d) -> torch.Tensor:
    """Conv1d weight ``(out, in, k)`` as a ``(k*in, out)`` matrix for window rows ``x[r:r+k].flatten()``.

    Cached on the module until the weight changes (in place or replaced).
    """
    w = conv.weight
    key = (w.data_ptr(), w._version, w.dtype, w.device)
    cached = getattr(conv, "_enformer_matrix", None)
    if cached is not None and cached[0] == key:
        return cached[1]
    out_ch, in_ch, k = w.shape
    mat = w.detach().permute(2, 1, 0).reshape(k * in_ch, out_ch).contiguous()  # (k*in, out)
    conv._enformer_matrix = (key, mat)
    return mat


def _gelu_(x: torch.Tensor, tmp: torch.Tensor) -> torch.Tensor:
    """In-place ``x <- sigmoid(1.702 x) * x`` using ``tmp`` (same shape) as scratch."""
    torch.mul(x, 1.702, out=tmp)
    tmp.sigmoid_()
    return x.mul_(tmp)


def _windows(a: torch.Tensor, k: int, rows: int) -> torch.Tensor:
    """``(rows, k*C)`` view whose row ``r`` is ``a[r:r+k].flatten()`` (``a`` is ``(rows+k-1, C)``)."""
    c = a.shape[1]
    return a.as_strided((rows, k * c), (c, 1), a.storage_offset())


def _pointwise_residual_and_pool(
    y: torch.Tensor, block, out: torch.Tensor
) -> None:
    """``z = y + ConvBlock_1x1(y)``, then softmax-pool pairs of rows of ``z`` into ``out``.

    ``y``: ``(R, C)`` conv output (modified in place); ``out``: ``(R/2, C)``.
    """
    pw = block.pointwise_conv_block
    scale, shift = bn_affine(pw.batch_norm)
    g = torch.addcmul(shift, y, scale)  # (R, C) BN
    _gelu_(g, torch.empty_like(g))
    w1 = conv_matrix(pw.conv1_d)  # (C, C)
    y.add_(pw.conv1_d.bias)
    y.addmm_(g, w1)  # z = y + b + gelu(bn(y)) @ W
    z0, z1 = y[0::2], y[1::2]  # (R/2, C) strided views
    diff = torch.sub(z0, z1)
    logits = torch.mm(diff, block.softmax_pooling.linear.weight.t())  # (R/2, C)
    logits.sigmoid_()
    torch.addcmul(z1, diff, logits, out=out)


def stem_forward(stem, x: torch.Tensor, tile_rows: int = TILE_ROWS) -> torch.Tensor:
    """Stem on one-hot ``x`` ``(B, L, 4)`` channels-last -> ``(B, L/2, C/2)``."""
    b, length, _ = x.shape
    conv = stem.conv1_d
    k = conv.kernel_size[0]
    half = k // 2
    c = conv.out_channels
    w = conv_matrix(conv)  # (k*4, C)
    out = x.new_empty((b, length // 2, c))
    padded = F.pad(x, (0, 0, half, half))  # (B, L+k-1, 4): zero rows = N beyond the ends
    for i in range(b):
        for r0 in range(0, length, tile_rows):
            r1 = min(r0 + tile_rows, length)
            rows = r1 - r0
            win = _windows(padded[i, r0 : r1 + k - 1], k, rows)  # (R, k*4)
            y = torch.addmm(conv.bias, win, w)  # (R, C)
            _pointwise_residual_and_pool(y, stem, out[i, r0 // 2 : r1 // 2])
    return out


def tower_block_forward(block, x: torch.Tensor, tile_rows: int = TILE_ROWS) -> torch.Tensor:
    """Conv-tower block on ``x`` ``(B, L, C_in)`` channels-last -> ``(B, L/2, C_out)``."""
    b, length, c_in = x.shape
    cb = block.conv_block
    conv = cb.conv1_d
    k = conv.kernel_size[0]
    half = k // 2
    c_out = conv.out_channels
    w = conv_matrix(conv)  # (k*C_in, C_out)
    scale, shift = bn_affine(cb.batch_norm)
    out = x.new_empty((b, length // 2, c_out))
    act = x.new_empty((tile_rows + k - 1, c_in))
    tmp = torch.empty_like(act)
    for i in range(b):
        for r0 in range(0, length, tile_rows):
            r1 = min(r0 + tile_rows, length)
            rows = r1 - r0
            # Input rows [r0-half, r1+half) activated; rows outside the sequence are the
            # conv's zero padding of the *activated* input.
            lo, hi = max(r0 - half, 0), min(r1 + half, length)
            a = act[: rows + k - 1]
            top = lo - (r0 - half)
            bottom = (r1 + half) - hi
            if top:
                a[:top].zero_()
            if bottom:
                a[rows + k - 1 - bottom :].zero_()
            body = a[top : top + hi - lo]
            torch.addcmul(shift, x[i, lo:hi], scale, out=body)
            _gelu_(body, tmp[: hi - lo])
            y = torch.addmm(conv.bias, _windows(a, k, rows), w)  # (R, C_out)
            _pointwise_residual_and_pool(y, block, out[i, r0 // 2 : r1 // 2])
    return out
