"""Inference kernels for the convolutional stages: channels-last, tiled, fused.

In eval mode without autograd, the stem and each conv-tower block run here instead
of through ``nn.Conv1d``/``nn.BatchNorm1d``. The arithmetic is the same (BatchNorm
with moving averages as an affine map, GELU, convolutions as matrix products, the
two-position softmax pool as a sigmoid); only the order of float operations differs.
Working on row tiles of a ``(L, C)`` channels-last activation keeps the
intermediates in cache and avoids allocating (and page-faulting) full-length
temporaries for every elementwise step; a width-``k`` convolution is one GEMM over
the ``(rows, k*C_in)`` window matrix.

Threads work on whole tiles, each tile single-threaded, rather than splitting every
operation of a tile across threads. A tile is about a dozen operations of a few
hundred microseconds; as OpenMP parallel regions each would end in a barrier, and
when another process takes a core, every barrier waits for the descheduled thread
(libgomp's waiting threads spin meanwhile). Measured on two shared cores with one
competing process, the per-operation split made the conv stages 3.7x slower than on
a quiet machine, whole tiles 1.7x (``benchmarks/results/forward_under_load.md``).

Borzoi's local stages (``conv_dna``, then ``conv_nac`` blocks: BatchNorm, tanh-GELU, a
``same`` conv, each followed by a max pool of 2) run on the same tiles
(:func:`borzoi_stage_forward`, :func:`nac_rows`).
"""

from __future__ import annotations

import os
import threading
from concurrent.futures import ThreadPoolExecutor

import torch

from . import winograd

__all__ = [
    "bn_affine",
    "block_rows",
    "borzoi_output",
    "borzoi_stage_forward",
    "conv_matrix",
    "conv_rows",
    "default_workers",
    "nac_rows",
    "stem_forward",
    "stem_rows",
    "tower_block_forward",
]

# Rows per tile of the conv stages (output rows before pooling); even, so pools align.
TILE_ROWS = 2048
# With several threads, a stage is cut into about this many tiles per thread ...
TILES_PER_WORKER = 4
# ... but tiles are not made smaller than this for it.
MIN_SPLIT_ROWS = 256


def bn_affine(bn: torch.nn.BatchNorm1d) -> tuple[torch.Tensor, torch.Tensor]:
    """Eval-mode BatchNorm as ``x * scale + shift`` (moving averages, eps)."""
    scale = bn.weight * torch.rsqrt(bn.running_var + bn.eps)
    shift = bn.bias - bn.running_mean * scale
    return scale, shift


def conv_matrix(conv: torch.nn.Conv1d) -> torch.Tensor:
    """Conv1d weight ``(out, in, k)`` as a ``(k*in, out)`` matrix for rows ``x[r:r+k].flatten()``.

    Cached on the module until the weight changes (in place or replaced).
    """
    out_ch, in_ch, k = conv.weight.shape
    return _weight_cache(conv, "_enformer_matrix",
                         lambda w: w.permute(2, 1, 0).reshape(k * in_ch, out_ch).contiguous())


def _weight_cache(conv: torch.nn.Conv1d, attr: str, build) -> torch.Tensor:
    """``build(weight)`` (detached), kept on ``conv`` as ``attr`` until the weight changes."""
    w = conv.weight
    key = (w.data_ptr(), w._version, w.dtype, w.device)
    cached = getattr(conv, attr, None)
    if cached is not None and cached[0] == key:
        return cached[1]
    value = build(w.detach())
    setattr(conv, attr, (key, value))
    return value


def _winograd_kernel(conv: torch.nn.Conv1d) -> torch.Tensor | None:
    """The conv's Winograd kernel transform (cached), or ``None`` for a width without tiles."""
    k = conv.kernel_size[0]
    if not winograd.supported(k) or conv.groups != 1:
        return None
    m = winograd.TILE[k]
    return _weight_cache(conv, "_enformer_winograd", lambda w: winograd.kernel_transform(w, m))


def conv_rows(
    conv: torch.nn.Conv1d, a: torch.Tensor, rows: int, y: torch.Tensor, scratch: dict | None = None
) -> None:
    """``y`` ``(rows, C_out)`` = the width-``k`` conv (with bias) of the padded rows ``a``
    ``(rows + k - 1, C_in)``: Winograd tiles (:mod:`.winograd`) where the width has them, a
    direct GEMM over the window matrix for the rest."""
    k = conv.kernel_size[0]
    done = 0
    u = _winograd_kernel(conv)
    if u is not None and rows >= winograd.TILE[k]:
        m = winograd.TILE[k]
        blocks = (rows // m) * (m + k - 1)
        v_buf = _buffer(scratch, "winograd_v", blocks, a.shape[1], a)
        m_buf = _buffer(scratch, "winograd_m", blocks, conv.out_channels, a)
        done = winograd.correlate(a, rows, u, conv.bias, y, m, v_buf, m_buf)
    if done < rows:
        torch.addmm(conv.bias, _windows(a[done:], k, rows - done), conv_matrix(conv),
                     out=y[done:])  # fmt: skip


def _gelu_(x: torch.Tensor, tmp: torch.Tensor) -> torch.Tensor:
    """In-place ``x <- sigmoid(1.702 x) * x`` using ``tmp`` (same shape) as scratch."""
    torch.mul(x, 1.702, out=tmp)
    tmp.sigmoid_()
    return x.mul_(tmp)


def _windows(a: torch.Tensor, k: int, rows: int) -> torch.Tensor:
    """``(rows, k*C)`` view, row ``r`` = ``a[r:r+k].flatten()``; ``a`` is ``(rows+k-1, C)``."""
    c = a.shape[1]
    return a.as_strided((rows, k * c), (c, 1), a.storage_offset())


def _buffer(scratch: dict | None, name: str, rows: int, cols: int, like: torch.Tensor):
    """A ``(rows, cols)`` buffer: a fresh tensor, or ``scratch[name]`` (grown as needed)."""
    if scratch is None:
        return like.new_empty((rows, cols))
    buf = scratch.get(name)
    if buf is None or buf.shape[0] < rows or buf.shape[1] != cols or buf.dtype != like.dtype:
        buf = scratch[name] = like.new_empty((rows, cols))
    return buf[:rows]


def _pointwise_residual_and_pool(
    y: torch.Tensor, block, out: torch.Tensor, scratch: dict | None = None
) -> None:
    """``z = y + ConvBlock_1x1(y)``, then softmax-pool pairs of rows of ``z`` into ``out``.

    ``y``: ``(R, C)`` conv output (modified in place); ``out``: ``(R/2, C)``; ``scratch``
    an optional dict of reusable buffers.
    """
    rows, c = y.shape
    pw = block.pointwise_conv_block
    scale, shift = bn_affine(pw.batch_norm)
    g = torch.addcmul(shift, y, scale, out=_buffer(scratch, "g", rows, c, y))  # (R, C) BN
    _gelu_(g, _buffer(scratch, "g_tmp", rows, c, y))
    w1 = conv_matrix(pw.conv1_d)  # (C, C)
    y.add_(pw.conv1_d.bias)
    y.addmm_(g, w1)  # z = y + b + gelu(bn(y)) @ W
    z0, z1 = y[0::2], y[1::2]  # (R/2, C) strided views
    diff = torch.sub(z0, z1, out=_buffer(scratch, "diff", rows // 2, c, y))
    logits = _buffer(scratch, "logits", rows // 2, c, y)
    torch.mm(diff, block.softmax_pooling.linear.weight.t(), out=logits)  # (R/2, C)
    logits.sigmoid_()
    torch.addcmul(z1, diff, logits, out=out)


def _input_span(
    x: torch.Tensor, r0: int, r1: int, k: int, x_offset: int, length: int | None, caller: str
) -> tuple[int, int, int]:
    """Input rows ``[lo, hi)`` a ``k``-wide conv needs for output rows ``[r0, r1)``.

    Clipped to the sequence (``length`` rows; default: ``x`` ends it); ``top`` is how many
    rows of zero padding precede ``lo`` in the conv's window. ``x`` holds rows
    ``[x_offset, x_offset + len(x))`` and must cover ``[lo, hi)``.
    """
    length = x.shape[0] + x_offset if length is None else length
    half = k // 2
    lo, hi = max(r0 - half, 0), min(r1 + half, length)
    if lo - x_offset < 0 or hi - x_offset > x.shape[0]:
        raise ValueError(f"{caller}: x does not cover the rows the convolution needs")
    return lo, hi, lo - (r0 - half)


def _activation_window(
    x: torch.Tensor, r0: int, r1: int, k: int, x_offset: int, length: int | None,
    scratch: dict | None, caller: str,
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:  # fmt: skip
    """The ``(r1 - r0 + k - 1, C)`` buffer a ``k``-wide conv of output rows ``[r0, r1)``
    reads, its rows outside the sequence zeroed (the conv's padding of the *activated*
    input); also the buffer's rows inside the sequence and the input rows they come from."""
    rows = r1 - r0
    lo, hi, top = _input_span(x, r0, r1, k, x_offset, length, caller)
    a = _buffer(scratch, "act", rows + k - 1, x.shape[1], x)
    bottom = (r1 + k // 2) - hi
    if top:
        a[:top].zero_()
    if bottom:
        a[rows + k - 1 - bottom :].zero_()
    return a, a[top : top + hi - lo], x[lo - x_offset : hi - x_offset]


def stem_rows(
    stem,
    x: torch.Tensor,
    r0: int,
    r1: int,
    out: torch.Tensor,
    *,
    x_offset: int = 0,
    length: int | None = None,
    scratch: dict | None = None,
) -> None:
    """Stem conv rows ``[r0, r1)`` (even bounds), pooled into ``out`` ``((r1-r0)/2, C)``.

    ``x`` holds one-hot rows ``[x_offset, x_offset + len(x))`` of a sequence of ``length``
    rows; rows outside the sequence are N (zeros), as the convolution's zero padding.
    ``scratch``: an optional dict of buffers reused from one call to the next.
    """
    conv = stem.conv1_d
    k = conv.kernel_size[0]
    rows = r1 - r0
    lo, hi, top = _input_span(x, r0, r1, k, x_offset, length, "stem_rows")
    window = _buffer(scratch, "window", rows + k - 1, x.shape[1], x).zero_()
    window[top : top + hi - lo] = x[lo - x_offset : hi - x_offset]
    y = _buffer(scratch, "y", rows, conv.out_channels, x)
    torch.addmm(conv.bias, _windows(window, k, rows), conv_matrix(conv), out=y)  # (R, C)
    _pointwise_residual_and_pool(y, stem, out, scratch)


def block_rows(
    block,
    x: torch.Tensor,
    r0: int,
    r1: int,
    out: torch.Tensor,
    *,
    x_offset: int = 0,
    length: int | None = None,
    scratch: dict | None = None,
) -> None:
    """Conv-tower block rows ``[r0, r1)`` (even bounds), pooled into ``out`` ``((r1-r0)/2, C_out)``.

    ``x`` holds input rows ``[x_offset, x_offset + len(x))`` of a sequence of ``length`` rows.
    ``scratch``: an optional dict of buffers reused from one call to the next.
    """
    cb = block.conv_block
    conv = cb.conv1_d
    k = conv.kernel_size[0]
    rows = r1 - r0
    a, body, src = _activation_window(x, r0, r1, k, x_offset, length, scratch, "block_rows")
    scale, shift = bn_affine(cb.batch_norm)
    torch.addcmul(shift, src, scale, out=body)
    _gelu_(body, _buffer(scratch, "act_tmp", body.shape[0], x.shape[1], x))
    y = _buffer(scratch, "y", rows, conv.out_channels, x)
    torch.addmm(conv.bias, _windows(a, k, rows), conv_matrix(conv), out=y)  # (R, C_out)
    _pointwise_residual_and_pool(y, block, out, scratch)


def _plan_tiles(
    batch: int, length: int, tile_rows: int, workers: int
) -> list[tuple[int, int, int]]:
    """``(item, r0, r1)`` row tiles with even bounds, enough of them to keep ``workers`` busy.

    With several workers the tiles are made smaller (down to ``MIN_SPLIT_ROWS``) until
    there are about ``TILES_PER_WORKER`` per worker, so that a worker whose core is taken
    by another process delays the stage by at most about one tile.
    """
    rows = tile_rows
    if workers > 1:
        per_item = -(-workers * TILES_PER_WORKER // batch)  # tiles wanted per sequence
        even = 2 * -(-length // (2 * per_item))
        rows = min(tile_rows, max(even, MIN_SPLIT_ROWS))
    return [(i, r0, min(r0 + rows, length)) for i in range(batch) for r0 in range(0, length, rows)]


def default_workers() -> int:
    """Threads that take tiles: ``torch.get_num_threads()`` under OpenMP, else 1.

    A tile's operations then run with one intra-op thread each; that is set per thread
    only with ATen's OpenMP backend (the native backend fixes its pool size once).
    """
    global _OPENMP
    if _OPENMP is None:
        _OPENMP = "parallel backend: OpenMP" in torch.__config__.parallel_info()
    return torch.get_num_threads() if _OPENMP else 1


_OPENMP: bool | None = None
_POOL: tuple[int, int, ThreadPoolExecutor] | None = None  # (pid, threads, pool)
_POOL_LOCK = threading.Lock()


def _pool(workers: int) -> ThreadPoolExecutor:
    """Process-wide pool of at least ``workers`` threads (made anew in a forked child)."""
    global _POOL
    with _POOL_LOCK:
        if _POOL is None or _POOL[0] != os.getpid() or _POOL[1] < workers:
            pool = ThreadPoolExecutor(workers, thread_name_prefix="enformer-tile")
            _POOL = (os.getpid(), workers, pool)
        return _POOL[2]


def _run_tiles(work, tiles: list[tuple[int, int, int]], workers: int) -> None:
    """Call ``work(tile, scratch)`` for every tile on ``workers`` threads.

    Each thread takes whole tiles from a shared queue and runs the tile's operations
    single-threaded (one intra-op thread), so a stage has no barrier per operation, only
    one at its end; ``scratch`` is a dict private to the thread, for reusable buffers.
    The caller's grad and inference modes apply in every thread.
    """
    workers = min(workers, len(tiles))
    if workers <= 1:
        scratch: dict = {}
        for tile in tiles:
            work(tile, scratch)
        return
    queue = iter(tiles)
    lock = threading.Lock()
    failed = threading.Event()
    grad, inference = torch.is_grad_enabled(), torch.is_inference_mode_enabled()

    def loop() -> None:
        torch.set_num_threads(1)
        scratch: dict = {}
        with torch.inference_mode(inference), torch.set_grad_enabled(grad):
            while not failed.is_set():
                with lock:
                    tile = next(queue, None)
                if tile is None:
                    return
                try:
                    work(tile, scratch)
                except BaseException:
                    failed.set()
                    raise

    saved = torch.get_num_threads()
    futures = [_pool(workers - 1).submit(loop) for _ in range(workers - 1)]
    try:
        loop()
    finally:
        for f in futures:
            f.exception()  # wait for every helper before the caller's setting comes back
        torch.set_num_threads(saved)
    for f in futures:
        f.result()  # re-raise a helper's error


def stem_forward(
    stem, x: torch.Tensor, tile_rows: int = TILE_ROWS, workers: int | None = None
) -> torch.Tensor:
    """Stem on one-hot ``x`` ``(B, L, 4)`` channels-last -> ``(B, L/2, C/2)``.

    ``workers`` threads (default: :func:`default_workers`) take whole tiles.
    """
    b, length, _ = x.shape
    workers = default_workers() if workers is None else workers
    out = x.new_empty((b, length // 2, stem.conv1_d.out_channels))
    _prepare(stem.conv1_d, stem)

    def work(tile, scratch):
        i, r0, r1 = tile
        stem_rows(stem, x[i], r0, r1, out[i, r0 // 2 : r1 // 2], scratch=scratch)

    _run_tiles(work, _plan_tiles(b, length, tile_rows, workers), workers)
    return out


def tower_block_forward(
    block, x: torch.Tensor, tile_rows: int = TILE_ROWS, workers: int | None = None
) -> torch.Tensor:
    """Conv-tower block on ``x`` ``(B, L, C_in)`` channels-last -> ``(B, L/2, C_out)``.

    ``workers`` threads (default: :func:`default_workers`) take whole tiles.
    """
    b, length, _ = x.shape
    conv = block.conv_block.conv1_d
    workers = default_workers() if workers is None else workers
    out = x.new_empty((b, length // 2, conv.out_channels))
    _prepare(conv, block)

    def work(tile, scratch):
        i, r0, r1 = tile
        block_rows(block, x[i], r0, r1, out[i, r0 // 2 : r1 // 2], scratch=scratch)

    _run_tiles(work, _plan_tiles(b, length, tile_rows, workers), workers)
    return out


def _prepare(conv: torch.nn.Conv1d, block) -> None:
    """Build the cached weight matrices once, in the calling thread, before tiles run."""
    conv_matrix(conv)
    conv_matrix(block.pointwise_conv_block.conv1_d)


# ------------------------------------------------------------------------------ Borzoi


def nac_rows(
    norm: torch.nn.BatchNorm1d | None,
    conv: torch.nn.Conv1d,
    x: torch.Tensor,
    r0: int,
    r1: int,
    y: torch.Tensor,
    *,
    x_offset: int = 0,
    length: int | None = None,
    scratch: dict | None = None,
) -> None:
    """Rows ``[r0, r1)`` of Borzoi's ``conv_nac`` (BatchNorm, tanh-GELU, ``same`` conv of odd
    width) on channels-last ``x``, into ``y`` ``(r1 - r0, C_out)``; ``norm=None`` is the bare
    conv of ``conv_dna``. ``x`` holds rows ``[x_offset, x_offset + len(x))`` of a sequence of
    ``length`` rows; the conv's zero padding applies to the activated input, as in Keras.
    """
    k = conv.kernel_size[0]
    if k % 2 == 0:
        raise ValueError("nac_rows needs an odd kernel width")
    rows = r1 - r0
    a, body, src = _activation_window(x, r0, r1, k, x_offset, length, scratch, "nac_rows")
    if norm is None:
        body.copy_(src)
    else:
        scale, shift = bn_affine(norm)
        torch.addcmul(shift, src, scale, out=body)
        torch.ops.aten.gelu_(body, approximate="tanh")
    conv_rows(conv, a, rows, y, scratch)


def borzoi_stage_forward(
    norm: torch.nn.BatchNorm1d | None,
    conv: torch.nn.Conv1d,
    x: torch.Tensor,
    *,
    keep: bool = False,
    tile_rows: int = TILE_ROWS,
    workers: int | None = None,
) -> tuple[torch.Tensor, torch.Tensor | None]:
    """One Borzoi local stage on channels-last ``x`` ``(B, L, C_in)``: :func:`nac_rows`, then
    a max pool of 2 -> ``(B, L/2, C_out)``; with ``keep`` also the output before the pool
    ``(B, L, C_out)`` (the U-Net's skips), else ``None``.
    """
    b, length, _ = x.shape
    workers = default_workers() if workers is None else workers
    c_out = conv.out_channels
    pooled = x.new_empty((b, length // 2, c_out))
    full = x.new_empty((b, length, c_out)) if keep else None
    _winograd_kernel(conv)  # the cached weights, built once in this thread
    conv_matrix(conv)

    def work(tile, scratch):
        i, r0, r1 = tile
        y = full[i, r0:r1] if full is not None else _buffer(scratch, "y", r1 - r0, c_out, x)
        nac_rows(norm, conv, x[i], r0, r1, y, scratch=scratch)
        torch.maximum(y[0::2], y[1::2], out=pooled[i, r0 // 2 : r1 // 2])

    _run_tiles(work, _plan_tiles(b, length, tile_rows, workers), workers)
    return pooled, full


def borzoi_output(
    norm: torch.nn.BatchNorm1d,
    conv: torch.nn.Conv1d,
    heads: list[tuple[torch.Tensor, torch.Tensor]],
    y: torch.Tensor,
    *,
    tile_rows: int = TILE_ROWS,
    workers: int | None = None,
) -> list[torch.Tensor]:
    """Borzoi's last steps on the cropped U-Net output, channels-last ``y`` ``(B, n, C)``:
    ``conv_nac`` of width 1 (``norm``, tanh-GELU, ``conv``), the trunk's final GELU, then per
    head ``(weight (tracks, F), bias)`` a Dense and softplus -> ``[(B, n, tracks)]``.

    Row tiles go through all of it at once, so the embedding and the pre-softplus outputs
    never exist at full length.
    """
    b, n, c = y.shape
    if conv.kernel_size[0] != 1:
        raise ValueError("borzoi_output needs the final conv_nac of width 1")
    workers = default_workers() if workers is None else workers
    scale, shift = bn_affine(norm)
    w = conv_matrix(conv)  # (C, F)
    outs = [y.new_empty((b, n, weight.shape[0])) for weight, _ in heads]

    def work(tile, scratch):
        i, r0, r1 = tile
        a = torch.addcmul(shift, y[i, r0:r1], scale, out=_buffer(scratch, "act", r1 - r0, c, y))
        torch.ops.aten.gelu_(a, approximate="tanh")
        e = _buffer(scratch, "emb", r1 - r0, w.shape[1], y)
        torch.ops.aten.gelu_(torch.addmm(conv.bias, a, w, out=e), approximate="tanh")
        for (weight, bias), out in zip(heads, outs, strict=True):
            o = torch.addmm(bias, e, weight.t(), out=out[i, r0:r1])
            torch.ops.aten.softplus.out(o, 1, 20, out=o)

    _run_tiles(work, _plan_tiles(b, n, tile_rows, workers), workers)
    return outs
