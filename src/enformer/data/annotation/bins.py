"""Output bins of genomic positions, intervals, exons and TSSs.

The rule is documented in :mod:`enformer.data.annotation`.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import numpy as np

if TYPE_CHECKING:
    from .genes import Gene

__all__ = ["OutputBins", "center_bins", "tss_bin", "tss_bins"]


# ------------------------------------------------------------------------------------------
# Output bins
# ------------------------------------------------------------------------------------------


def center_bins(bin_index: int, n_bins: int, width: int) -> np.ndarray:
    """The ``width`` bins centred on ``bin_index``, clipped to ``[0, n_bins)``.

    Parameters
    ----------
    bin_index : int
        Centre bin (e.g. the bin holding the variant's first REF base, or a TSS).
    n_bins : int
        Number of output bins.
    width : int
        Number of bins (>= 1): bins ``bin_index - width // 2`` to
        ``bin_index - width // 2 + width - 1``, so ``width=3`` gives ``b-1, b, b+1`` and
        ``width=4`` gives ``b-2 .. b+1``.

    Returns
    -------
    numpy.ndarray
        int64 sorted bin indices inside the output (may be shorter than ``width`` at an edge,
        empty when the centre lies far outside).
    """
    if int(width) < 1:
        raise ValueError(f"width must be >= 1 bin, got {width}")
    lo = int(bin_index) - int(width) // 2
    return np.arange(max(lo, 0), min(lo + int(width), int(n_bins)), dtype=np.int64)


def tss_bin(tss: int, output_start: int, bin_size: int) -> int:
    """Output bin holding genomic position ``tss``.

    Parameters
    ----------
    tss : int
        0-based genomic position of the TSS base.
    output_start : int
        0-based genomic position of the first base of output bin 0: the window's start plus
        the crop offset (``window_start + geometry.offset``).
    bin_size : int
        Base pairs per bin.

    Returns
    -------
    int
        ``(tss - output_start) // bin_size``; outside ``[0, n_bins)`` when the TSS is not
        covered by the output.
    """
    return (int(tss) - int(output_start)) // int(bin_size)


@dataclass(frozen=True)
class OutputBins:
    """Where a window's output bins lie on the genome.

    Bin ``i`` covers ``[start + i * bin_size, start + (i + 1) * bin_size)``; with ``reverse``
    (the output of the reverse-complemented window) the order is flipped: bin ``i`` is forward
    bin ``n_bins - 1 - i``. Build it from plain ints or with :meth:`of` from a geometry.

    Attributes
    ----------
    start : int
        0-based genomic position of the first base of (forward) output bin 0: window start
        plus the crop offset.
    bin_size : int
        Base pairs per bin.
    n_bins : int
        Number of output bins.
    reverse : bool
        Whether the output runs 3'->5' along the genome's + strand.
    """

    start: int
    bin_size: int
    n_bins: int
    reverse: bool = False

    @classmethod
    def of(cls, geometry: Any, window_start: int = 0, *, reverse: bool = False) -> OutputBins:
        """From a geometry and the genomic start of the model input.

        Parameters
        ----------
        geometry : object
            Anything with ``offset``, ``bin_size`` and ``n_bins`` (e.g.
            :class:`enformer.model.geometry.OutputGeometry`).
        window_start : int, optional
            0-based genomic position of input index 0.
        reverse : bool, optional
            See the class.

        Returns
        -------
        OutputBins
            With ``start = window_start + geometry.offset``.
        """
        return cls(
            int(window_start) + int(geometry.offset), int(geometry.bin_size),
            int(geometry.n_bins), reverse,
        )  # fmt: skip

    @property
    def end(self) -> int:
        """0-based genomic end (exclusive) of the last output bin."""
        return self.start + self.n_bins * self.bin_size

    def covers(self, position: int) -> bool:
        """Whether the output covers the genomic ``position``."""
        return self.start <= int(position) < self.end

    def _oriented(self, forward: np.ndarray) -> np.ndarray:
        return np.sort(self.n_bins - 1 - forward) if self.reverse else forward

    def bin_of(self, position: int) -> int:
        """Output bin of a genomic position (outside ``[0, n_bins)`` when not covered)."""
        b = tss_bin(position, self.start, self.bin_size)
        return self.n_bins - 1 - b if self.reverse else b

    def tss_bins(self, tss: int | Iterable[int], width: int = 3) -> np.ndarray:
        """The TSS bins: the :func:`center_bins` around each covered TSS's bin, united.

        Parameters
        ----------
        tss : int or iterable of int
            0-based genomic TSS positions; those outside the output are ignored.
        width : int, optional
            Bins per TSS (default 3: ``b-1, b, b+1``).

        Returns
        -------
        numpy.ndarray
            int64 sorted distinct bins; empty if no TSS is covered.
        """
        if int(width) < 1:
            raise ValueError(f"width must be >= 1 bin, got {width}")
        sites = [int(tss)] if isinstance(tss, int | np.integer) else [int(t) for t in tss]
        parts = [center_bins(self.bin_of(p), self.n_bins, width) for p in sites if self.covers(p)]
        return np.unique(np.concatenate(parts)) if parts else np.zeros(0, dtype=np.int64)

    def interval_bins(self, start: int, end: int) -> np.ndarray:
        """Bins overlapping the genomic interval ``[start, end)`` (int64, sorted)."""
        lo = max(tss_bin(start, self.start, self.bin_size), 0)
        hi = min(-(-(int(end) - self.start) // self.bin_size), self.n_bins)
        return self._oriented(np.arange(lo, max(hi, lo), dtype=np.int64))

    def exon_bins(self, gene: Gene) -> np.ndarray:
        """Bins overlapping any exon of ``gene`` (int64, sorted, distinct)."""
        parts = [self.interval_bins(s, e) for s, e in gene.exons]
        return np.unique(np.concatenate(parts)) if parts else np.zeros(0, dtype=np.int64)


def tss_bins(tss: int, output_start: int, n_bins: int, bin_size: int, width: int = 3) -> np.ndarray:
    """The ``width`` output bins centred on a TSS's bin (:meth:`OutputBins.tss_bins`).

    Parameters
    ----------
    tss : int
        0-based genomic position of the TSS.
    output_start : int
        0-based genomic position of output bin 0 (window start + crop offset).
    n_bins : int
        Number of output bins.
    bin_size : int
        Base pairs per bin.
    width : int, optional
        Bins around the TSS bin (default 3: ``b-1, b, b+1``).

    Returns
    -------
    numpy.ndarray
        int64 bins inside the output; empty if the TSS's bin is outside it.
    """
    return OutputBins(int(output_start), int(bin_size), int(n_bins)).tss_bins(tss, width)
