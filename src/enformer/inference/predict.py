"""Predict tracks for sequences, one-hot arrays and genome intervals.

:func:`predict` is the one entry point: it encodes the inputs, batches them, runs the model
under :func:`torch.inference_mode` with optional test-time augmentation, keeps only the
requested heads and tracks (selected on the model's device, before anything reaches host
memory) and returns a :class:`Prediction` whose bins carry genomic coordinates.

Geometry
--------
For an input of ``L`` bp the model yields ``bins = config.output_bins(L)`` bins of
``bin_size = config.bin_size`` bp, centred: bin ``i`` covers input positions
``[offset + i * bin_size, offset + (i + 1) * bin_size)`` with
``offset = (L // bin_size - bins) // 2 * bin_size`` (40,960 for the published model's
196,608-bp input). An input of exactly ``2 * config.sequence_length`` bp is first
centre-cropped by the model, which adds ``(L - sequence_length) // 2`` to the offset.
:func:`enformer.model.geometry.output_geometry` computes this from the model's
configuration; nothing here hard-codes the published numbers.

Test-time augmentation (shifts and reverse complement) is described in
:mod:`enformer.inference.engine`.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import torch

from ..data.genome import Genome, Interval, parse_region
from ..data.sequence import one_hot
from ..io.progress import progress_bar
from ..model.config import EnformerConfig
from ..model.geometry import output_geometry
from .engine import MOSTLY_N, Engine
from .selection import resolve_selection

__all__ = ["Prediction", "predict", "warn_mostly_n"]

logger = logging.getLogger(__name__)


# --------------------------------------------------------------------------------------
# Result
# --------------------------------------------------------------------------------------


@dataclass
class Prediction:
    """Predicted tracks of a batch of inputs, with the coordinates of their bins.

    Attributes
    ----------
    values : dict of str to numpy.ndarray
        Per head, float32 ``(N, bins, n_tracks)``: the selected tracks of every input,
        averaged over the augmentation copies.
    tracks : dict of str to list of int
        Per head, the output track index of each column of ``values[head]``.
    intervals : list of Interval or None
        Per input, the genomic span of its output bins (``None`` for arrays and strings):
        bin ``i`` covers ``[interval.start + i * bin_size, interval.start + (i + 1) *
        bin_size)``. Starts may be negative or ends past the chromosome end where the input
        window ran off the chromosome (those bins saw ``N``).
    bin_size : int
        Base pairs per bin.
    offset : int
        Input position of bin 0's first base (see :func:`output_geometry`).
    input_length : int
        Input length in bp.
    description : str
        The model's ``config.description``.
    rc : bool
        Whether reverse-complement copies were averaged in.
    shifts : tuple of int
        The shifts (bp) whose copies were averaged.
    names : list of str or None
        Per input, a name: the interval's name or region text, the FASTA record name, or
        ``None``.
    track_identifiers : dict of str to list of str
        Per head, identifiers of the selected tracks when a track sheet was given.
    n_fraction : numpy.ndarray
        Per input, the share of its (unshifted) input window that is ``N``. Inputs with more
        than half ``N`` are also logged as a warning: their predictions reflect no sequence.
    """

    values: dict[str, np.ndarray]
    tracks: dict[str, list[int]]
    intervals: list[Interval | None]
    bin_size: int
    offset: int
    input_length: int
    description: str = ""
    rc: bool = False
    shifts: tuple[int, ...] = (0,)
    names: list[str | None] = field(default_factory=list)
    track_identifiers: dict[str, list[str]] = field(default_factory=dict)
    n_fraction: np.ndarray = field(default_factory=lambda: np.zeros(0, dtype=np.float32))

    def __len__(self) -> int:
        return len(self.intervals)

    @property
    def n_bins(self) -> int:
        """Number of output bins per input."""
        for array in self.values.values():
            return int(array.shape[1])
        return 0

    def bin_coordinates(self, n: int) -> tuple[np.ndarray, np.ndarray]:
        """Return the start and end of every output bin of input ``n``.

        Parameters
        ----------
        n : int
            Input index.

        Returns
        -------
        starts, ends : numpy.ndarray
            int64 ``(bins,)`` arrays. Genomic 0-based half-open coordinates on
            ``intervals[n].chrom`` for genome inputs; positions within the input sequence
            (``offset + i * bin_size``) for arrays and strings.
        """
        interval = self.intervals[n]
        base = interval.start if interval is not None else self.offset
        starts = base + np.arange(self.n_bins, dtype=np.int64) * self.bin_size
        return starts, starts + self.bin_size

    @property
    def metadata(self) -> dict[str, Any]:
        """JSON-ready description of how the values were made."""
        return {
            "description": self.description,
            "rc": self.rc,
            "shifts": list(self.shifts),
            "bin_size": self.bin_size,
            "input_length": self.input_length,
            "output_offset": self.offset,
            "tracks": {head: list(idx) for head, idx in self.tracks.items()},
        }


# --------------------------------------------------------------------------------------
# Inputs
# --------------------------------------------------------------------------------------


class _Inputs:
    """Normalised inputs: ``n`` sequences of one length, produced chunk by chunk."""

    def __init__(
        self,
        n: int,
        length: int,
        make: Callable[[int, int, int], torch.Tensor],
        intervals: list[Interval | None],
        names: list[str | None],
    ) -> None:
        self.n, self.length, self._make = n, length, make
        self.windows, self.names = intervals, names

    def extended(self, lo: int, hi: int, margin: int) -> torch.Tensor:
        """One-hot ``(hi - lo, length + 2 * margin, 4)`` of inputs ``lo:hi``."""
        return self._make(lo, hi, margin)


def _pad_length(x: torch.Tensor, margin: int) -> torch.Tensor:
    """Add ``margin`` N rows (zeros) at both ends of the length axis of ``(n, L, 4)``."""
    if margin == 0:
        return x
    return torch.nn.functional.pad(x, (0, 0, margin, margin))


def _is_region_text(item: object) -> bool:
    return isinstance(item, str) and ":" in item


def _normalise_inputs(inputs: Any, genome: Genome | None, config: EnformerConfig) -> _Inputs:
    """Turn any accepted input into an :class:`_Inputs`."""
    if isinstance(inputs, np.ndarray | torch.Tensor):
        x = torch.as_tensor(inputs)
        if x.dim() == 2:
            x = x[None]
        if x.dim() != 3 or x.shape[-1] != 4:
            raise ValueError(
                f"one-hot inputs must have shape (L, 4) or (N, L, 4) in A,C,G,T order, got "
                f"{tuple(x.shape)}"
            )
        if not (x.is_floating_point() or x.dtype in (torch.bool, torch.uint8)):
            raise TypeError(f"one-hot inputs must be float, bool or uint8, not {x.dtype}")

        def make_array(lo: int, hi: int, margin: int) -> torch.Tensor:
            return _pad_length(x[lo:hi].to(torch.float32), margin)

        n = x.shape[0]
        return _Inputs(n, x.shape[1], make_array, [None] * n, [None] * n)

    items: list[Any]
    if isinstance(inputs, str | Interval):
        items = [inputs]
    elif isinstance(inputs, Sequence):
        items = list(inputs)
    else:
        raise TypeError(
            "inputs must be one-hot arrays, DNA strings, Intervals or region strings, not "
            f"{type(inputs).__name__}"
        )
    if not items:
        raise ValueError("no inputs given")
    genomic = [isinstance(i, Interval) or _is_region_text(i) for i in items]
    if any(genomic) and not all(genomic):
        raise ValueError(
            "inputs mix DNA strings with intervals/regions; predict them in separate calls"
        )
    if all(genomic):
        return _genome_inputs(items, genome, config)
    for i, item in enumerate(items):
        if not isinstance(item, str):
            raise TypeError(
                f"input {i} is a {type(item).__name__}; expected a DNA string like the others"
            )
    lengths = {len(s) for s in items}
    if len(lengths) > 1:
        raise ValueError(
            f"DNA strings must all have the same length, got lengths {sorted(lengths)[:5]}"
        )

    def make_strings(lo: int, hi: int, margin: int) -> torch.Tensor:
        return _pad_length(torch.from_numpy(one_hot(items[lo:hi]).reshape(hi - lo, -1, 4)), margin)

    n = len(items)
    return _Inputs(n, lengths.pop(), make_strings, [None] * n, [None] * n)


def _genome_inputs(items: list[Any], genome: Genome | None, config: EnformerConfig) -> _Inputs:
    if genome is None:
        raise ValueError(
            "intervals and region strings need a genome: pass genome=Genome('genome.fa')"
        )
    length = config.sequence_length
    windows: list[Interval] = []
    names: list[str | None] = []
    for item in items:
        interval = parse_region(item) if isinstance(item, str) else item
        chrom = genome.resolve_chrom(interval.chrom)
        size = genome.chrom_sizes[chrom]
        if not 0 <= interval.center < size:
            raise ValueError(
                f"{interval} is centred at {interval.center + 1:,} (1-based), outside {chrom} "
                f"(length {size:,}) in {genome.path.name}; is the input on the same assembly?"
            )
        window = interval.resize(length)
        windows.append(Interval(chrom, window.start, window.end, interval.name, interval.strand))
        names.append(interval.name or (item if isinstance(item, str) else str(interval)))

    def make_windows(lo: int, hi: int, margin: int) -> torch.Tensor:
        seqs = [genome.fetch(w.chrom, w.start - margin, w.end + margin) for w in windows[lo:hi]]
        return torch.from_numpy(one_hot(seqs).reshape(hi - lo, -1, 4))

    return _Inputs(len(windows), length, make_windows, list(windows), names)


# --------------------------------------------------------------------------------------
# predict
# --------------------------------------------------------------------------------------


def predict(
    model: torch.nn.Module,
    inputs: Any,
    *,
    genome: Genome | None = None,
    batch_size: int = 1,
    device: str | torch.device | None = None,
    dtype: torch.dtype | None = None,
    rc: bool = False,
    shifts: Sequence[int] = (0,),
    head: str | Sequence[str] | None = None,
    tracks: Any = None,
    track_sheet: Any = None,
    strand_pairs: Any = None,
    progress: bool = True,
) -> Prediction:
    """Predict tracks for sequences, one-hot arrays or genome intervals.

    Parameters
    ----------
    model : torch.nn.Module
        An :class:`~enformer.model.Enformer`. It is left as found: its device and
        train/eval mode are restored afterwards, also when an error occurs.
    inputs : array, str, Interval or sequence of them
        One of

        * one-hot DNA, numpy or torch, ``(L, 4)`` or ``(N, L, 4)`` in A, C, G, T order;
        * a DNA string or a list of strings of equal length (encoded with
          :func:`~enformer.data.sequence.one_hot`; ``N`` becomes zeros);
        * an :class:`~enformer.data.genome.Interval`, a region string such as
          ``'chr1:1,000,001-1,000,100'`` (1-based inclusive), or a list of them, with
          ``genome``. Each is predicted on the window of ``model.config.sequence_length``
          bp centred on it (``Interval.resize``); windows running off a chromosome end are
          padded with ``N`` and the genome warns (:class:`~enformer.data.genome.GenomeWarning`).
          The interval's strand is ignored: outputs are always in forward-strand order.

        Array and string lengths must suit the model (a multiple of the bin size, long
        enough for the crop).
    genome : Genome, optional
        Reference genome for interval inputs.
    batch_size : int, optional
        Sequences per forward pass, augmentation copies included (default 1). Results do not
        depend on it beyond floating-point rounding.
    device : str or torch.device, optional
        Device to run on (default: where the model is). The model is moved there for the call
        and moved back afterwards.
    dtype : torch.dtype, optional
        Run under :func:`torch.autocast` with this dtype, e.g. ``torch.bfloat16`` on CUDA.
        ``None`` (the default) keeps the model's own precision (float32 on CPU). Outputs are
        always returned as float32: each batch's selected tracks are cast on the device
        before the copies are averaged. On the CPU autocast skips the tiled float32 conv
        kernels, and bf16 is much slower than float32 there without bf16 instructions;
        expect ~1 % relative error per value (bf16 keeps 8 significant bits).
    rc : bool, optional
        Also predict the reverse complement of every copy; its output bins are flipped back
        and stranded tracks swapped with their partners before averaging.
    shifts : sequence of int, optional
        Shifts in bp (e.g. ``(-1, 0, 1)``); every shifted copy is predicted and averaged. A
        copy shifted by ``s`` sees ``original[i + s]`` at position ``i``: the genome window
        moved ``s`` bp to the right, or for arrays and strings the sequence moved left with
        ``N`` filling the gap. Default ``(0,)``: no shift.
    head : str or sequence of str, optional
        Head(s) to return (default: every head of the model).
    tracks : object, optional
        Tracks to keep, selected on the device before outputs are copied to the host:
        ``None`` (every track), integer indices (list, array, slice, boolean mask) or, with
        ``track_sheet``, anything :meth:`~enformer.data.tracks.TrackSheet.select` accepts
        (``'assay:CAGE'``, identifiers, ``'0,5,10-20'``). A mapping head -> selection gives
        each head its own selection.
    track_sheet : TrackSheet or mapping of str to TrackSheet, optional
        Track sheet(s) to resolve ``tracks`` and supply identifiers and strand pairs.
    strand_pairs : array or mapping of str to array, optional
        Strand-pair permutation for ``rc`` (``perm[i]`` = partner of track ``i``). Default:
        the sheet's :meth:`~enformer.data.tracks.TrackSheet.strand_pair_permutation` when a
        sheet is given, else the identity (no swap).
    progress : bool, optional
        Show a progress bar (tqdm when installed, log lines otherwise).

    Returns
    -------
    Prediction
        ``values[head]`` float32 ``(N, bins, n_tracks)`` with bin coordinates in
        ``intervals`` (genomic inputs) and the settings used.

    Raises
    ------
    ValueError
        For bad shapes or lengths, unknown heads or tracks, region text that does not parse,
        or chromosomes missing from the genome (the message names the problem).
    """
    config: EnformerConfig = model.config
    selection = resolve_selection(config, head, tracks, track_sheet, strand_pairs)
    heads, indices, identifiers, _ = selection
    data = _normalise_inputs(inputs, genome, config)
    geometry = output_geometry(config, data.length)
    engine = Engine.for_selection(
        model, selection, rc=rc, shifts=shifts, batch_size=batch_size, device=device, dtype=dtype
    )
    values = {
        h: np.empty((data.n, geometry.n_bins, len(indices[h])), dtype=np.float32) for h in heads
    }
    n_fraction = np.zeros(data.n, dtype=np.float32)
    bar = progress_bar(data.n, "predict", progress and data.n > 1)
    try:
        with engine:
            for lo, hi in _chunks(data.n, engine.chunk_size):
                out = engine.run(data.extended(lo, hi, engine.margin))
                for h in heads:
                    values[h][lo:hi] = out[h]
                n_fraction[lo:hi] = engine.last_n_fraction
                bar.update(hi - lo)
    finally:
        bar.close()
    warn_mostly_n(n_fraction, data.names)
    intervals: list[Interval | None] = []
    for window in data.windows:
        if window is None:
            intervals.append(None)
            continue
        start = window.start + geometry.offset
        intervals.append(
            Interval(window.chrom, start, start + geometry.output_span, window.name, window.strand)
        )
    return Prediction(
        values=values,
        tracks=indices,
        intervals=intervals,
        bin_size=geometry.bin_size,
        offset=geometry.offset,
        input_length=geometry.input_length,
        description=config.description,
        rc=engine.rc,
        shifts=engine.shifts,
        names=data.names,
        track_identifiers=identifiers,
        n_fraction=n_fraction,
    )


def warn_mostly_n(n_fraction: np.ndarray, names: Sequence[str | None] | None = None) -> int:
    """Log one warning for the inputs whose window is more than :data:`MOSTLY_N` ``N``.

    Parameters
    ----------
    n_fraction : numpy.ndarray
        Per input, the share of ``N`` in its window.
    names : sequence of str or None, optional
        Per input, a name for the message (the first few are listed).

    Returns
    -------
    int
        The number of such inputs.
    """
    frac = np.asarray(n_fraction, dtype=np.float64)
    which = np.flatnonzero(frac > MOSTLY_N)
    if which.size:
        labels = [
            f"{(names[i] if names is not None and names[i] else f'input {i}')} "
            f"({100 * frac[i]:.0f}% N)"
            for i in which[:3]
        ]
        more = f" and {which.size - 3} more" if which.size > 3 else ""
        logger.warning(
            "%d of %d input window(s) are more than %d%% N: %s%s; their predictions reflect "
            "little or no DNA sequence (an assembly gap or a masked region?)",
            which.size,
            frac.size,
            int(100 * MOSTLY_N),
            ", ".join(labels),
            more,
        )
    return int(which.size)


def _chunks(n: int, size: int) -> Iterator[tuple[int, int]]:
    for lo in range(0, n, size):
        yield lo, min(n, lo + size)
