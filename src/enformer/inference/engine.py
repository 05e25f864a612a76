"""Running a model on one-hot batches: test-time augmentation and on-device track selection.

:class:`Engine` is the loop every prediction path shares (:func:`~enformer.inference.predict`,
the tilers and writers, variant scoring). It validates its inputs (:func:`check_onehot`,
:func:`check_shifts`) and averages the augmentation copies described below.

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
from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np
import torch

from ..model.borzoi import Borzoi
from ..model.config import EnformerConfig
from ..model.enformer import Enformer
from ..runtime import parse_device
from .selection import HeadSelection

__all__ = ["EMBEDDING", "MOSTLY_N", "Engine", "check_onehot", "check_shifts", "max_shift"]

# An input window with more than this share of N is reported: its predictions reflect
# (almost) no sequence, e.g. a window inside an assembly gap.
MOSTLY_N = 0.5

EMBEDDING = "embedding"
"""Key of :meth:`Engine.run`'s result in embedding mode: the trunk output ``model.embed``."""


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
    embedding : bool, optional
        Run the trunk only (``model.embed``) and return its ``(n, bins, features)`` output
        under the key :data:`EMBEDDING` instead of head outputs; ``heads`` and ``tracks``
        are then ignored (pass ``()`` and ``{}``). Reverse-complement copies have their bin
        axis flipped back; features are not permuted.
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
        embedding: bool = False,
    ) -> None:
        if int(batch_size) < 1:
            raise ValueError(f"batch_size must be >= 1, got {batch_size}")
        self.model = model
        self.config: EnformerConfig = model.config
        self.embedding = bool(embedding)
        self.heads = [EMBEDDING] if self.embedding else list(heads)
        self.rc = bool(rc)
        self.shifts = check_shifts(shifts, self.config.bin_size)
        self.margin = max(abs(s) for s in self.shifts)
        self.batch_size = int(batch_size)
        self.device = _as_device(device, model)
        self.dtype = dtype
        chosen = () if self.embedding else self.heads
        self._tracks = {h: [int(i) for i in tracks[h]] for h in chosen}
        self._pairs = {h: (strand_pairs or {}).get(h) for h in chosen}
        self._index: dict[str, torch.Tensor] = {}
        self._rc_index: dict[str, torch.Tensor] = {}
        self._saved: tuple[bool, torch.device | None] | None = None
        # Share of N (all-zero rows) in each input of the last run() chunk, and running
        # counts of inputs seen and of those more than MOSTLY_N N, for the callers' reports.
        self.last_n_fraction = np.zeros(0, dtype=np.float32)
        self.inputs_seen = 0
        self.mostly_n = 0

    @classmethod
    def for_selection(
        cls, model: torch.nn.Module, selection: HeadSelection, **options: Any
    ) -> Engine:
        """An engine for the heads, tracks and strand pairs of a resolved request.

        Parameters
        ----------
        model : torch.nn.Module
            As for :class:`Engine`.
        selection : HeadSelection
            From :func:`~enformer.inference.selection.resolve_selection`.
        **options
            The other keywords of :class:`Engine` (``rc``, ``shifts``, ``batch_size``,
            ``device``, ``dtype``).

        Returns
        -------
        Engine
            Not yet entered.
        """
        heads, tracks, _, pairs = selection
        return cls(model, heads=heads, tracks=tracks, strand_pairs=pairs, **options)

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
            for head in self._tracks:
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
                out = self._forward(torch.stack(batch))  # {head: (b, bins, T)}
                for flip in _flips(self.rc):
                    rows = [r for r, job in enumerate(part) if job[2] == flip]
                    if not rows:
                        continue
                    rows_t = torch.tensor(rows, device=self.device)
                    inputs_t = torch.tensor([part[r][0] for r in rows], device=self.device)
                    for head in self.heads:
                        y = out[head].index_select(0, rows_t)  # (r, bins, T)
                        y = self._oriented(head, y, flip).float()  # (r, bins, k)
                        if head not in sums:
                            sums[head] = torch.zeros(
                                (n, *y.shape[1:]), dtype=torch.float32, device=self.device
                            )
                        sums[head].index_add_(0, inputs_t, y)
        return {
            head: (total / self.copies).cpu().numpy().astype(np.float32, copy=False)
            for head, total in sums.items()
        }

    def _forward(self, x: torch.Tensor) -> dict[str, torch.Tensor]:
        """Head outputs, or in embedding mode the trunk output under :data:`EMBEDDING`."""
        if self.embedding:
            return {EMBEDDING: self.model.embed(x)}  # (b, bins, F)
        if isinstance(self.model, (Enformer, Borzoi)):
            return self.model(x, heads=self.heads)  # only the heads asked for
        return self.model(x)

    def _oriented(self, head: str, y: torch.Tensor, flip: bool) -> torch.Tensor:
        """Chosen tracks of one head's ``(r, bins, T)`` output, in forward-strand order."""
        if self.embedding:
            return torch.flip(y, dims=(1,)) if flip else y
        if flip:  # back to forward-strand tracks and bins
            return torch.flip(y.index_select(2, self._rc_index[head]), dims=(1,))
        return y.index_select(2, self._index[head])


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
