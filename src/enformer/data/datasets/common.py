"""What the data sets share: the sample type, base codes, genome windows, bin pooling."""

from __future__ import annotations

import os
from collections.abc import Sequence
from typing import Any, Literal

import numpy as np
import torch

from ..genome import Genome, Interval
from ..tracks import Track

__all__ = [
    "PoolStat",
    "Sample",
    "Transform",
    "check_index",
    "codes_onehot",
    "fetch_codes",
    "onehot_codes",
    "open_genome",
    "pool_bins",
    "sequence_codes",
    "track_pool_stat",
]

Sample = dict[str, Any]
PoolStat = Literal["auto", "sum", "mean", "max"]
Transform = Literal["basenji", "baskerville"]

# Base codes: 0-3 = A, C, G, T; 4 = N (and any other IUPAC code).
_CODE_TABLE = bytes(
    {ord("A"): 0, ord("C"): 1, ord("G"): 2, ord("T"): 3, ord("a"): 0, ord("c"): 1, ord("g"): 2,
     ord("t"): 3}.get(i, 4)
    for i in range(256)
)  # fmt: skip
_CODE_TO_ONEHOT = np.vstack([np.eye(4, dtype=np.float32), np.zeros((1, 4), np.float32)])


def sequence_codes(sequence: str) -> np.ndarray:
    """Base codes (uint8, 0-3 ACGT, 4 N) of a DNA string."""
    return np.frombuffer(sequence.encode("ascii").translate(_CODE_TABLE), dtype=np.uint8)


def onehot_codes(onehot: np.ndarray) -> np.ndarray:
    """Base codes (uint8, 0-3 ACGT, 4 N) of a ``(..., L, 4)`` one-hot array (all-zero rows: N)."""
    codes = np.argmax(onehot, axis=-1).astype(np.uint8)
    codes[~np.asarray(onehot).astype(bool).any(axis=-1)] = 4
    return codes


def codes_onehot(codes: np.ndarray) -> torch.Tensor:
    """Float32 one-hot tensor ``(L, 4)`` of base codes (code 4, N, is all zeros)."""
    return torch.from_numpy(_CODE_TO_ONEHOT[codes])  # (L, 4) float32


def open_genome(genome: str | os.PathLike[str] | Genome) -> tuple[Genome, bool]:
    """Return ``(genome, opened_here)``."""
    if isinstance(genome, Genome):
        return genome, False
    return Genome(genome, warn_padding=False), True


def fetch_codes(genome: Genome, sizes: dict[str, int], window: Interval) -> tuple[np.ndarray, int]:
    """Codes of ``window``, N-padded past the chromosome ends; also the number of padded bases.

    Clipping to the chromosome here (rather than in :meth:`Genome.fetch`) keeps the per-window
    padding warnings out of data loading; callers log one summary instead.
    """
    chrom = genome.resolve_chrom(window.chrom)
    length = sizes[chrom]
    lo, hi = max(window.start, 0), min(window.end, length)
    out = np.full(len(window), 4, dtype=np.uint8)
    if hi > lo:
        out[lo - window.start : hi - window.start] = sequence_codes(genome.fetch(chrom, lo, hi))
    return out, len(window) - max(hi - lo, 0)


def track_pool_stat(track: Track) -> str:
    """How to pool a track's bins ('sum', 'mean' or 'max'), from its sheet's ``sum_stat``."""
    stat = (track.sum_stat or "sum").lower()
    if stat == "max":
        return "max"
    if stat.startswith(("mean", "avg")) or stat in ("median", "peak"):
        return "mean"
    return "sum"


def pool_bins(target: np.ndarray, pool: int, stats: str | Sequence[str] = "sum") -> np.ndarray:
    """Combine each run of ``pool`` adjacent bins of a ``(bins, tracks)`` array.

    Parameters
    ----------
    target : numpy.ndarray
        ``(..., bins, tracks)`` values; ``bins`` must be a multiple of ``pool``.
    pool : int
        Bins per output bin.
    stats : str or sequence of str, optional
        ``'sum'``, ``'mean'`` or ``'max'``, for all tracks or one per track.

    Returns
    -------
    numpy.ndarray
        float32 ``(..., bins // pool, tracks)``; sums are accumulated in float64.
    """
    arr = np.asarray(target)
    bins, tracks = arr.shape[-2], arr.shape[-1]
    if pool < 1 or bins % pool:
        raise ValueError(f"cannot pool {bins} bins by {pool}: it must divide the bin count")
    if pool == 1:
        return arr.astype(np.float32)
    grouped = arr.reshape(*arr.shape[:-2], bins // pool, pool, tracks).astype(np.float64)
    per_track = [stats] * tracks if isinstance(stats, str) else list(stats)
    if len(per_track) != tracks:
        raise ValueError(f"got {len(per_track)} pooling statistics for {tracks} tracks")
    out = np.empty((*arr.shape[:-2], bins // pool, tracks), dtype=np.float64)
    for stat in set(per_track):
        cols = [i for i, s in enumerate(per_track) if s == stat]
        block = grouped[..., cols]
        if stat == "sum":
            out[..., cols] = block.sum(axis=-2)
        elif stat == "mean":
            out[..., cols] = block.mean(axis=-2)
        elif stat == "max":
            out[..., cols] = block.max(axis=-2)
        else:
            raise ValueError(f"pooling statistic must be 'sum', 'mean' or 'max', not {stat!r}")
    return out.astype(np.float32)


def check_index(index: int, n: int) -> int:
    """``index`` as a non-negative position in ``range(n)`` (negative counts from the end)."""
    index = int(index)
    if index < 0:
        index += n
    if not 0 <= index < n:
        raise IndexError(f"index {index} is out of range for a dataset of {n} items")
    return index
