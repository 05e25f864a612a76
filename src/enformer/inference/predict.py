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

Test-time augmentation
----------------------
Every input is predicted as ``len(shifts) * (2 if rc else 1)`` copies whose outputs are
averaged bin by bin:

* **shift** ``s`` (bp): the copy sees the sequence moved ``s`` bases to the right along the
  genome, i.e. ``copy[i] = original[i + s]``. For genome intervals the shifted window
  ``[start + s, end + s)`` is read from the genome; for arrays and strings the bases that
  come into view are ``N`` (all zeros). The copy's bins are averaged with the unshifted bins
  of the same index (no re-alignment), as in Enformer/Basenji training augmentation. So
  ``|s|`` may be at most half a bin (:func:`max_shift`: 64 bp for the published model,
  which was trained with shifts of up to 3 bp): a larger shift would average a bin with its
  neighbour's signal, and a shift of a window or more would report one place's prediction
  under another's coordinates. :func:`check_shifts` refuses anything beyond.
* **reverse complement** (``rc=True``): each shifted copy is also predicted on its reverse
  complement; the output's bin axis is flipped back and stranded tracks are swapped with
  their partner (``strand_pairs``, e.g. :meth:`TrackSheet.strand_pair_permutation`), so
  every copy is in forward-strand order before averaging.
"""

from __future__ import annotations

import contextlib
import logging
import math
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import torch

from ..data.genome import Genome, Interval, parse_region
from ..data.sequence import one_hot
from ..model.config import EnformerConfig
from ..model.geometry import OutputGeometry, output_geometry
from ..runtime import parse_device

__all__ = [
    "Prediction",
    "check_onehot",
    "check_shifts",
    "max_shift",
    "predict",
    "progress_bar",
    "warn_mostly_n",
]

logger = logging.getLogger(__name__)

# An input window with more than this share of N is reported: its predictions reflect
# (almost) no sequence, e.g. a window inside an assembly gap.
MOSTLY_N = 0.5


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
# Progress
# --------------------------------------------------------------------------------------


class _LogProgress:
    """Fallback progress reporter: an INFO log line about every 10 %."""

    def __init__(self, total: int | None, desc: str) -> None:
        self.total, self.desc, self.n, self._next = total, desc, 0, 0.1

    def update(self, k: int = 1) -> None:
        self.n += k
        if self.total and self.n / self.total >= self._next:
            logger.info("%s: %d/%d", self.desc, self.n, self.total)
            self._next = math.floor(self.n / self.total * 10 + 1) / 10

    def close(self) -> None:
        """Nothing to release."""


class _NoProgress:
    def update(self, k: int = 1) -> None:
        """Ignore."""

    def close(self) -> None:
        """Ignore."""


def progress_bar(total: int | None, desc: str, enabled: bool, unit: str = "seq") -> Any:
    """Return a tqdm bar when enabled and installed, else a logging or silent stand-in.

    Parameters
    ----------
    total : int or None
        Number of steps.
    desc : str
        Label.
    enabled : bool
        Show progress at all.
    unit : str, optional
        Unit name shown by tqdm.

    Returns
    -------
    object
        Something with ``update(k)`` and ``close()``.
    """
    if not enabled:
        return _NoProgress()
    try:
        from tqdm.auto import tqdm
    except ImportError:
        return _LogProgress(total, desc)
    return tqdm(total=total, desc=desc, unit=unit, leave=False, dynamic_ncols=True)


# --------------------------------------------------------------------------------------
# The engine: model state, augmentation copies, batching, track selection
# --------------------------------------------------------------------------------------


def _as_device(device: str | torch.device | None, model: torch.nn.Module) -> torch.device:
    if device is None:
        try:
            return next(model.parameters()).device
        except StopIteration:
            return torch.device("cpu")
    return parse_device(device)


class Engine:
    """Runs a model on one-hot batches with augmentation and on-device track selection.

    Use as a context manager: entering moves the model to ``device`` and puts it in eval
    mode; leaving restores its original device and train/eval mode, also after an error.

    Parameters
    ----------
    model : torch.nn.Module
        An :class:`~enformer.model.Enformer` (anything with ``config`` and
        ``forward(x) -> {head: (B, bins, tracks)}``).
    heads : sequence of str
        Heads to keep.
    tracks : mapping of str to sequence of int
        Per head, the output tracks to keep (in this order).
    strand_pairs : mapping of str to array, optional
        Per head, the strand-pair permutation used for reverse-complement copies; identity
        where missing.
    rc : bool
        Average in reverse-complement copies.
    shifts : sequence of int
        Shifts (bp) whose copies are averaged; see the module docstring.
    batch_size : int
        Sequences per forward pass (augmentation copies count).
    device : str or torch.device, optional
        Device to run on; default the model's.
    dtype : torch.dtype, optional
        Autocast dtype (e.g. ``torch.bfloat16`` on CUDA); ``None`` runs in the model's dtype.
    """

    def __init__(
        self,
        model: torch.nn.Module,
        *,
        heads: Sequence[str],
        tracks: Mapping[str, Sequence[int]],
        strand_pairs: Mapping[str, np.ndarray | None] | None = None,
        rc: bool = False,
        shifts: Sequence[int] = (0,),
        batch_size: int = 1,
        device: str | torch.device | None = None,
        dtype: torch.dtype | None = None,
    ) -> None:
        if int(batch_size) < 1:
            raise ValueError(f"batch_size must be >= 1, got {batch_size}")
        self.model = model
        self.config: EnformerConfig = model.config
        self.heads = list(heads)
        self.rc = bool(rc)
        self.shifts = check_shifts(shifts, self.config.bin_size)
        self.margin = max(abs(s) for s in self.shifts)
        self.batch_size = int(batch_size)
        self.device = _as_device(device, model)
        self.dtype = dtype
        self._tracks = {h: [int(i) for i in tracks[h]] for h in self.heads}
        self._pairs = {h: (strand_pairs or {}).get(h) for h in self.heads}
        self._index: dict[str, torch.Tensor] = {}
        self._rc_index: dict[str, torch.Tensor] = {}
        self._saved: tuple[bool, torch.device | None] | None = None
        # Share of N (all-zero rows) in each input of the last run() chunk, and running
        # counts of inputs seen and of those more than MOSTLY_N N, for the callers' reports.
        self.last_n_fraction = np.zeros(0, dtype=np.float32)
        self.inputs_seen = 0
        self.mostly_n = 0

    @property
    def copies(self) -> int:
        """Number of augmentation copies per input."""
        return len(self.shifts) * (2 if self.rc else 1)

    @property
    def chunk_size(self) -> int:
        """Inputs to hand to :meth:`run` at a time so a forward pass holds ``batch_size``."""
        return max(1, self.batch_size // self.copies)

    # ---- model state ------------------------------------------------------------------

    def __enter__(self) -> Engine:
        model = self.model
        original = _as_device(None, model)
        self._saved = (model.training, original)
        try:
            if original != self.device:
                model.to(self.device)
            model.eval()
            for head in self.heads:
                idx = torch.as_tensor(self._tracks[head], dtype=torch.long)
                pairs = self._pairs[head]
                rc_idx = idx if pairs is None else torch.as_tensor(np.asarray(pairs))[idx]
                self._index[head] = idx.to(self.device)
                self._rc_index[head] = rc_idx.to(self.device, torch.long)
        except BaseException:
            self._restore()
            raise
        return self

    def __exit__(self, *exc_info: object) -> None:
        self._restore()

    def _restore(self) -> None:
        if self._saved is None:
            return
        training, original = self._saved
        self._saved = None
        if original is not None and _as_device(None, self.model) != original:
            self.model.to(original)
        self.model.train(training)

    def _autocast(self) -> contextlib.AbstractContextManager[Any]:
        if self.dtype is None or self.dtype == torch.float32:
            return contextlib.nullcontext()
        return torch.autocast(self.device.type, dtype=self.dtype)

    # ---- running ------------------------------------------------------------------------

    def run(self, extended: torch.Tensor) -> dict[str, np.ndarray]:
        """Predict a chunk of inputs.

        Parameters
        ----------
        extended : torch.Tensor
            ``(n, L + 2 * margin, 4)`` one-hot inputs with ``margin = max(|shifts|)`` extra
            bases of context on each side (``N`` where there is none); ``L`` is the model
            input length.

        Returns
        -------
        dict of str to numpy.ndarray
            Per head, float32 ``(n, bins, n_tracks)``, averaged over the copies.
        """
        if self._saved is None:
            raise RuntimeError("Engine.run must be called inside `with engine:`")
        n = extended.shape[0]
        m = self.margin
        length = extended.shape[1] - 2 * m
        check_onehot(extended)
        n_rows = (extended[:, m : m + length] != 0).sum(-1) == 0  # (n, L): True where N
        self.last_n_fraction = n_rows.float().mean(1).cpu().numpy().astype(np.float32)
        self.inputs_seen += n
        self.mostly_n += int((self.last_n_fraction > MOSTLY_N).sum())
        jobs = [(j, s, flip) for j in range(n) for s in self.shifts for flip in _flips(self.rc)]
        x_all = extended.to(self.device, torch.float32, non_blocking=True)
        sums: dict[str, torch.Tensor] = {}
        with torch.inference_mode(), self._autocast():
            for lo in range(0, len(jobs), self.batch_size):
                part = jobs[lo : lo + self.batch_size]
                batch = []
                for j, s, flip in part:
                    x = x_all[j, m + s : m + s + length]  # (L, 4)
                    batch.append(torch.flip(x, dims=(0, 1)) if flip else x)
                out = self.model(torch.stack(batch))  # {head: (b, bins, T)}
                for flip in _flips(self.rc):
                    rows = [r for r, job in enumerate(part) if job[2] == flip]
                    if not rows:
                        continue
                    rows_t = torch.tensor(rows, device=self.device)
                    inputs_t = torch.tensor([part[r][0] for r in rows], device=self.device)
                    for head in self.heads:
                        y = out[head].index_select(0, rows_t)  # (r, bins, T)
                        if flip:  # back to forward-strand tracks and bins
                            y = torch.flip(y.index_select(2, self._rc_index[head]), dims=(1,))
                        else:
                            y = y.index_select(2, self._index[head])
                        y = y.float()  # (r, bins, k)
                        if head not in sums:
                            sums[head] = torch.zeros(
                                (n, *y.shape[1:]), dtype=torch.float32, device=self.device
                            )
                        sums[head].index_add_(0, inputs_t, y)
        return {
            head: (total / self.copies).cpu().numpy().astype(np.float32, copy=False)
            for head, total in sums.items()
        }


def check_onehot(x: torch.Tensor) -> None:
    """Refuse one-hot input a model cannot meaningfully read, with one vectorised pass.

    Accepted: values in [0, 1] whose rows sum to at most 1 (exact one-hot, ``N`` as a row of
    zeros, or soft encodings such as 0.25 per base). Refused with a ``ValueError`` naming the
    first offending position: NaN or infinite values, values below 0 or above 1, rows
    summing to more than 1 (several bases at one position, counts, channels mixed up), and
    a last dimension other than 4.

    Parameters
    ----------
    x : torch.Tensor
        ``(..., L, 4)`` one-hot DNA (bool, uint8 or floating point).
    """
    if x.dim() < 2 or x.shape[-1] != 4:
        raise ValueError(
            f"one-hot DNA must have shape (..., L, 4) with A, C, G, T columns, got "
            f"{tuple(x.shape)}; transpose channels-first (B, 4, L) arrays"
        )
    if x.dtype == torch.bool:
        xf = x.to(torch.uint8)
    else:
        xf = x
    if xf.is_floating_point():
        bad = ~torch.isfinite(xf)
        if bool(bad.any()):
            where = _first_index(bad.any(-1))
            raise ValueError(
                f"one-hot DNA holds NaN or infinite values (first at {where}); encode "
                "sequences with enformer.data.sequence.one_hot (N = a row of zeros)"
            )
    bad = (xf < 0) | (xf > 1)
    if bool(bad.any()):
        where = _first_index(bad.any(-1))
        raise ValueError(
            f"one-hot DNA values must lie in 0..1 (found {xf[where].tolist()} at {where}); "
            "encode sequences with enformer.data.sequence.one_hot"
        )
    sums = xf.sum(-1, dtype=torch.float32)
    over = sums > 1 + 1e-3
    if bool(over.any()):
        where = _first_index(over)
        raise ValueError(
            f"one-hot DNA rows may hold at most one base, but the row at {where} sums to "
            f"{float(sums[where]):g}; pass (N, L, 4) one-hot arrays in A, C, G, T order"
        )


def _first_index(mask: torch.Tensor) -> tuple[int, ...]:
    flat = int(torch.argmax(mask.reshape(-1).to(torch.uint8)))
    return tuple(int(i) for i in np.unravel_index(flat, tuple(mask.shape)))


def _flips(rc: bool) -> tuple[bool, ...]:
    return (False, True) if rc else (False,)


def max_shift(bin_size: int) -> int:
    """Largest ``|shift|`` (bp) allowed for a model with ``bin_size``-bp bins: half a bin.

    Shifted copies are averaged with the unshifted bins of the same index, so a shift of
    more than half a bin would mix each bin with its neighbour's signal (and a shift of a
    window or more would put one place's prediction under another's coordinates). Enformer
    itself was trained with shifts of at most 3 bp.
    """
    return max(0, int(bin_size) // 2)


def check_shifts(shifts: Sequence[int] | int, bin_size: int) -> tuple[int, ...]:
    """Validate test-time shifts: distinct integers with ``|s| <= max_shift(bin_size)``.

    Parameters
    ----------
    shifts : int or sequence of int
        Shifts in bp.
    bin_size : int
        The model's output bin size (``config.bin_size``).

    Returns
    -------
    tuple of int
        The shifts.

    Raises
    ------
    TypeError
        A shift is not an integer.
    ValueError
        No shift, a repeated shift, or one beyond half a bin.
    """
    if isinstance(shifts, int | np.integer):
        shifts = (int(shifts),)
    out = []
    for s in shifts:
        if isinstance(s, bool) or not isinstance(s, int | np.integer):
            raise TypeError(f"shifts must be integers (bp), got {s!r}")
        out.append(int(s))
    if not out:
        raise ValueError("shifts must hold at least one shift, e.g. (0,)")
    if len(set(out)) != len(out):
        raise ValueError(f"shifts must not repeat, got {tuple(out)}")
    limit = max_shift(bin_size)
    beyond = [s for s in out if abs(s) > limit]
    if beyond:
        raise ValueError(
            f"shift {beyond[0]} bp is too large: shifts may be at most ±{limit} bp (half of "
            f"this model's {bin_size}-bp bins), because shifted copies are averaged with the "
            "unshifted bins; use small shifts such as -1,0,1"
        )
    return tuple(out)


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
# Heads, tracks and strand pairs
# --------------------------------------------------------------------------------------


def _resolve_heads(head: str | Sequence[str] | None, config: EnformerConfig) -> list[str]:
    available = list(config.heads)
    if head is None:
        return available
    wanted = [head] if isinstance(head, str) else list(head)
    for h in wanted:
        if h not in config.heads:
            raise ValueError(f"the model has no head {h!r}; it has {', '.join(available)}")
    if len(set(wanted)) != len(wanted):
        raise ValueError(f"head names repeat: {wanted}")
    return wanted


def _per_head(value: Any, heads: list[str]) -> dict[str, Any]:
    """Broadcast a value to every head unless it is already a mapping by head."""
    if isinstance(value, Mapping):
        unknown = set(value) - set(heads)
        if unknown:
            raise ValueError(f"per-head mapping names heads not predicted: {sorted(unknown)}")
        return {h: value.get(h) for h in heads}
    return dict.fromkeys(heads, value)


def resolve_tracks(
    config: EnformerConfig,
    heads: list[str],
    tracks: Any,
    track_sheet: Any = None,
) -> tuple[dict[str, list[int]], dict[str, list[str]]]:
    """Resolve a track selection to indices per head.

    Parameters
    ----------
    config : EnformerConfig
        The model's configuration (for the number of tracks per head).
    heads : list of str
        Heads being predicted.
    tracks : object
        ``None`` (every track), indices (int, sequence, array, slice), anything
        :meth:`TrackSheet.select` accepts when a sheet is given, or a mapping head -> such.
    track_sheet : TrackSheet or mapping of str to TrackSheet, optional
        Sheets used to resolve names and to report identifiers.

    Returns
    -------
    indices : dict of str to list of int
        Selected track indices per head.
    identifiers : dict of str to list of str
        Identifiers of the selected tracks, for heads with a sheet.

    Raises
    ------
    ValueError
        If an index is out of range, a name is unknown, or a sheet does not fit its head.
    """
    selections = _per_head(tracks, heads)
    sheets = _per_head(track_sheet, heads)
    indices: dict[str, list[int]] = {}
    identifiers: dict[str, list[str]] = {}
    for head in heads:
        n = config.heads[head]
        sheet, spec = sheets[head], selections[head]
        if sheet is not None and len(sheet) != n:
            raise ValueError(
                f"track sheet {getattr(sheet, 'path', None) or ''} has {len(sheet)} tracks but "
                f"head {head!r} outputs {n}; pass the sheet that belongs to these weights"
            )
        if spec is None:
            chosen = list(range(n))
        elif sheet is not None:
            chosen = list(sheet.select(spec))
        else:
            chosen = _plain_indices(spec, n, head)
        if not chosen:
            raise ValueError(f"the track selection for head {head!r} is empty")
        indices[head] = chosen
        if sheet is not None:
            identifiers[head] = [sheet[i].identifier for i in chosen]
    return indices, identifiers


def _plain_indices(spec: Any, n: int, head: str) -> list[int]:
    if isinstance(spec, slice):
        return list(range(n))[spec]
    if isinstance(spec, str):
        raise ValueError(
            f"track selection {spec!r} for head {head!r} needs a track sheet (track_sheet=); "
            "without one, give integer indices"
        )
    arr = np.asarray(spec)
    if arr.dtype == np.bool_:
        if arr.shape != (n,):
            raise ValueError(f"a boolean track mask for head {head!r} must have shape ({n},)")
        return [int(i) for i in np.flatnonzero(arr)]
    if arr.dtype.kind not in "iu":
        raise TypeError(f"track indices must be integers, got {spec!r}")
    out = [int(i) for i in arr.ravel()]
    bad = [i for i in out if not 0 <= i < n]
    if bad:
        raise ValueError(f"track index {bad[0]} is out of range for head {head!r} (0..{n - 1})")
    return out


def resolve_strand_pairs(
    config: EnformerConfig,
    heads: list[str],
    strand_pairs: Any,
    track_sheet: Any = None,
) -> dict[str, np.ndarray | None]:
    """Strand-pair permutation per head (``None`` = identity).

    Parameters
    ----------
    config : EnformerConfig
        The model's configuration.
    heads : list of str
        Heads being predicted.
    strand_pairs : array or mapping of str to array, optional
        Explicit permutations; when missing for a head, the head's sheet's
        :meth:`~enformer.data.tracks.TrackSheet.strand_pair_permutation` is used.
    track_sheet : TrackSheet or mapping of str to TrackSheet, optional
        Sheets.

    Returns
    -------
    dict of str to numpy.ndarray or None
        int64 permutation per head, or ``None`` for the identity.

    Raises
    ------
    ValueError
        If a permutation has the wrong length or is not a permutation.
    """
    pairs = _per_head(strand_pairs, heads)
    sheets = _per_head(track_sheet, heads)
    out: dict[str, np.ndarray | None] = {}
    for head in heads:
        perm = pairs[head]
        if perm is None and sheets[head] is not None:
            perm = sheets[head].strand_pair_permutation()
        if perm is None:
            out[head] = None
            continue
        perm = np.asarray(perm, dtype=np.int64)
        n = config.heads[head]
        if perm.shape != (n,) or not np.array_equal(np.sort(perm), np.arange(n)):
            raise ValueError(
                f"strand_pairs for head {head!r} must be a permutation of 0..{n - 1} "
                f"(shape ({n},)), got shape {perm.shape}"
            )
        out[head] = perm
    return out


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
    heads = _resolve_heads(head, config)
    indices, identifiers = resolve_tracks(config, heads, tracks, track_sheet)
    pairs = resolve_strand_pairs(config, heads, strand_pairs, track_sheet)
    data = _normalise_inputs(inputs, genome, config)
    geometry = output_geometry(config, data.length)
    engine = Engine(
        model,
        heads=heads,
        tracks=indices,
        strand_pairs=pairs,
        rc=rc,
        shifts=shifts,
        batch_size=batch_size,
        device=device,
        dtype=dtype,
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
