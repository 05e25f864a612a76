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

__all__ = [
    "bn_affine",
    "block_rows",
    "conv_matrix",
    "stem_forward",
    "stem_rows",
    "tower_block_forward",
]

# Rows per tile of the conv stages (output rows before pooling); even, so pools align.
TILE_ROWS = 2048


def bn_affine(bn: torch.nn.BatchNorm1d) -> tuple[torch.Tensor, torch.Tensor]:
    """Eval-mode BatchNorm as ``x * scale + shift`` (moving averages, eps)."""
    scale = bn.weight * torch.rsqrt(bn.running_var + bn.eps)
    shift = bn.bias - bn.running_mean * scale
    return scale, shift


def conv_matrix(conv: torch.nn.Conv1d) -> torch.Tensor:
    """Conv1d weight ``(out, in, k)`` as a ``(k*in, out)`` matrix for rows ``x[r:r+k].flatten()``.

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
    """``(rows, k*C)`` view, row ``r`` = ``a[r:r+k].flatten()``; ``a`` is ``(rows+k-1, C)``."""
    c = a.shape[1]
    return a.as_strided((rows, k * c), (c, 1), a.storage_offset())


def _pointwise_residual_and_pool(y: torch.Tensor, block, out: torch.Tensor) -> None:
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


def stem_rows(
    stem,
    x: torch.Tensor,
    r0: int,
    r1: int,
    out: torch.Tensor,
    *,
    x_offset: int = 0,
    length: int | None = None,
) -> None:
    """Stem conv rows ``[r0, r1)`` (even bounds), pooled into ``out`` ``((r1-r0)/2, C)``.

    ``x`` holds one-hot rows ``[x_offset, x_offset + len(x))`` of a sequence of ``length``
    rows; rows outside the sequence are N (zeros), as the convolution's zero padding.
    """
    length = x.shape[0] + x_offset if length is None else length
    conv = stem.conv1_d
    k = conv.kernel_size[0]
    half = k // 2
    lo, hi = max(r0 - half, 0), min(r1 + half, length)
    rows = r1 - r0
    if lo - x_offset < 0 or hi - x_offset > x.shape[0]:
        raise ValueError("stem_rows: x does not cover the rows the convolution needs")
    window = x.new_zeros((rows + k - 1, x.shape[1]))
    top = lo - (r0 - half)
    window[top : top + hi - lo] = x[lo - x_offset : hi - x_offset]
    y = torch.addmm(conv.bias, _windows(window, k, rows), conv_matrix(conv))  # (R, C)
    _pointwise_residual_and_pool(y, stem, out)


def block_rows(
    block,
    x: torch.Tensor,
    r0: int,
    r1: int,
    out: torch.Tensor,
    *,
    x_offset: int = 0,
    length: int | None = None,
    act: torch.Tensor | None = None,
    tmp: torch.Tensor | None = None,
) -> None:
    """Conv-tower block rows ``[r0, r1)`` (even bounds), pooled into ``out`` ``((r1-r0)/2, C_out)``.

    ``x`` holds input rows ``[x_offset, x_offset + len(x))`` of a sequence of ``length`` rows.
    ``act``/``tmp`` are optional scratch buffers of at least ``(r1-r0+k-1, C_in)``.
    """
    length = x.shape[0] + x_offset if length is None else length
    cb = block.conv_block
    conv = cb.conv1_d
    k = conv.kernel_size[0]
    half = k // 2
    rows = r1 - r0
    lo, hi = max(r0 - half, 0), min(r1 + half, length)
    if lo - x_offset < 0 or hi - x_offset > x.shape[0]:
        raise ValueError("block_rows: x does not cover the rows the convolution needs")
    if act is None:
        act = x.new_empty((rows + k - 1, x.shape[1]))
        tmp = torch.empty_like(act)
    a = act[: rows + k - 1]
    # Rows outside the sequence are the conv's zero padding of the *activated* input.
    top = lo - (r0 - half)
    bottom = (r1 + half) - hi
    if top:
        a[:top].zero_()
    if bottom:
        a[rows + k - 1 - bottom :].zero_()
    body = a[top : top + hi - lo]
    scale, shift = bn_affine(cb.batch_norm)
    torch.addcmul(shift, x[lo - x_offset : hi - x_offset], scale, out=body)
    _gelu_(body, tmp[: hi - lo])
    y = torch.addmm(conv.bias, _windows(a, k, rows), conv_matrix(conv))  # (R, C_out)
    _pointwise_residual_and_pool(y, block, out)


def stem_forward(stem, x: torch.Tensor, tile_rows: int = TILE_ROWS) -> torch.Tensor:
    """Stem on one-hot ``x`` ``(B, L, 4)`` channels-last -> ``(B, L/2, C/2)``."""
    b, length, _ = x.shape
    out = x.new_empty((b, length // 2, stem.conv1_d.out_channels))
    for i in range(b):
        for r0 in range(0, length, tile_rows):
            r1 = min(r0 + tile_rows, length)
            stem_rows(stem, x[i], r0, r1, out[i, r0 // 2 : r1 // 2])
    return out


def tower_block_forward(block, x: torch.Tensor, tile_rows: int = TILE_ROWS) -> torch.Tensor:
    """Conv-tower block on ``x`` ``(B, L, C_in)`` channels-last -> ``(B, L/2, C_out)``."""
    b, length, c_in = x.shape
    k = block.conv_block.conv1_d.kernel_size[0]
    out = x.new_empty((b, length // 2, block.conv_block.conv1_d.out_channels))
    act = x.new_empty((min(tile_rows, length) + k - 1, c_in))
    tmp = torch.empty_like(act)
    for i in range(b):
        for r0 in range(0, length, tile_rows):
            r1 = min(r0 + tile_rows, length)
            block_rows(block, x[i], r0, r1, out[i, r0 // 2 : r1 // 2], act=act, tmp=tmp)
    return out
