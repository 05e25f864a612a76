"""Winograd's minimal filtering F(m, k) for the width-``k`` convolutions of the conv stages.

Done directly, ``m`` output rows of a width-``k`` convolution cost ``m * k`` products per
pair of (input, output) channels. Winograd's algorithm (Toom-Cook; Lavin & Gray, CVPR 2016)
costs ``n = m + k - 1``: a tile of ``n`` input rows and the kernel are both mapped to ``n``
evaluation points of the polynomial product (input transform ``B^T``, kernel transform ``G``),
multiplied pointwise (``n`` GEMMs over the channels, the only part that scales with them), and
interpolated back to ``m`` rows (output transform ``A^T``). F(4, 5) does 8 products for 20:
2.5x fewer FLOPs in Borzoi's conv tower, whose k = 5 convolutions are half of its forward.

The transforms are exact rationals (points 0, +-1, +-2, +-1/2 and infinity); only float32
rounding differs from the direct sum: on activated tower inputs the outputs differ from a
float64 convolution by about 1e-6 of their scale (the direct GEMM: about 3e-7),
well inside Borzoi's parity tolerance (1e-3) and the benchmark's 1e-5 (``tests/test_winograd.py``
checks both against float64).
"""

from __future__ import annotations

from functools import lru_cache

import numpy as np
import torch

__all__ = ["TILE", "correlate", "kernel_transform", "supported", "transforms"]

# Output rows per Winograd tile, by kernel width: F(4, 5).
TILE = {5: 4}
# Finite evaluation points for n = m + k - 1 = 8 (the eighth is the point at infinity).
_POINTS = (0.0, 1.0, -1.0, 2.0, -2.0, 0.5, -0.5)


def supported(k: int) -> bool:
    """Whether a width-``k`` convolution has a Winograd tile here."""
    return k in TILE


@lru_cache(maxsize=None)
def transforms(m: int, k: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """``A^T`` ``(m, n)``, ``G`` ``(n, k)``, ``B^T`` ``(n, n)`` in float64 with
    ``y[s] = sum_i A^T[s, i] (G w)[i] (B^T d)[i] = sum_j d[s + j] w[j]`` for ``s < m``.

    ``A^T`` and ``G`` are Vandermonde rows of the points (the last row: the point at infinity,
    the leading coefficient); ``B^T`` solves the identity above, checked to 1e-12.
    """
    n = m + k - 1
    points = _POINTS[: n - 1]
    if len(points) != n - 1:
        raise ValueError(f"no Winograd points for F({m}, {k})")
    at, g = np.zeros((m, n)), np.zeros((n, k))
    for i, p in enumerate(points):
        at[:, i] = [p**s for s in range(m)]
        g[i] = [p**j for j in range(k)]
        g[i] /= np.prod([p - q for q in points if q != p])
    at[m - 1, n - 1] = g[n - 1, k - 1] = 1.0
    # sum_i A^T[s, i] G[i, j] B^T[i, c] = [c == s + j]: linear in B^T, one equation per (s, j, c).
    coef = np.einsum("si,ij->sji", at, g)  # (m, k, n)
    system = np.zeros((m, k, n, n, n))
    for c in range(n):
        system[:, :, c, :, c] = coef
    target = np.zeros((m, k, n))
    for s in range(m):
        for j in range(k):
            target[s, j, s + j] = 1.0
    a = system.reshape(m * k * n, n * n)
    bt = np.linalg.lstsq(a, target.ravel(), rcond=None)[0]
    if np.abs(a @ bt - target.ravel()).max() > 1e-12:
        raise ArithmeticError(f"Winograd F({m}, {k}) transforms do not solve the identity")
    bt = bt.reshape(n, n)
    bt[np.abs(bt) < 1e-12] = 0.0
    return at, g, bt


@lru_cache(maxsize=None)
def _tensors(m: int, k: int, dtype: torch.dtype) -> tuple[torch.Tensor, torch.Tensor]:
    """``A^T`` and ``B^T`` as CPU tensors of ``dtype``."""
    at, _, bt = transforms(m, k)
    return torch.from_numpy(at).to(dtype), torch.from_numpy(bt).to(dtype)


def kernel_transform(weight: torch.Tensor, m: int) -> torch.Tensor:
    """Conv1d weight ``(out, in, k)`` -> ``U`` ``(n, in, out)``, ``U[i] = sum_j G[i, j] W_j``
    (computed in float64, stored in the weight's dtype)."""
    out_ch, in_ch, k = weight.shape
    g = torch.from_numpy(transforms(m, k)[1]).to(weight.device)
    u = torch.einsum("ij,ocj->ico", g, weight.detach().double())
    return u.to(weight.dtype).contiguous()


def correlate(
    a: torch.Tensor,
    rows: int,
    u: torch.Tensor,
    bias: torch.Tensor | None,
    out: torch.Tensor,
    m: int,
    v_buf: torch.Tensor,
    m_buf: torch.Tensor,
) -> int:
    """``out[r] = bias + sum_j a[r + j] @ W_j`` for the first ``(rows // m) * m`` rows.

    ``a``: ``(rows + k - 1, C_in)`` contiguous rows (the conv's padded input); ``u`` from
    :func:`kernel_transform`; ``out``: ``(rows, C_out)`` contiguous; ``v_buf`` and ``m_buf``
    scratch of at least ``n * (rows // m) * C_in`` and ``n * (rows // m) * C_out`` elements.
    Returns the number of rows written (the rest is the caller's, e.g. a direct GEMM).
    """
    n, c_in, c_out = u.shape
    tiles = rows // m
    if tiles == 0:
        return 0
    at, bt = _tensors(m, n - m + 1, a.dtype)
    # Tile t reads rows [m t, m t + n): an overlapping (tiles, n, C_in) view of a.
    d = a.as_strided((tiles, n, c_in), (m * c_in, c_in, 1), a.storage_offset())
    v = v_buf.view(-1)[: tiles * n * c_in].view(tiles, n, c_in)
    torch.matmul(bt, d, out=v)  # B^T d per tile
    prod = m_buf.view(-1)[: n * tiles * c_out].view(n, tiles, c_out)
    torch.bmm(v.transpose(0, 1), u, out=prod)  # n GEMMs (tiles, C_in) @ (C_in, C_out)
    y = out[: tiles * m].view(tiles, m, c_out)
    torch.matmul(at, prod.transpose(0, 1), out=y)  # A^T per tile
    if bias is not None:
        y.add_(bias)
    return tiles * m
