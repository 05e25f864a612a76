"""In-silico saturation mutagenesis (ISM) over a window of the input.

Every position of a user window is set to each of the three other bases and the model is run
on every such sequence. The read-out per mutant is the prediction of the chosen tracks,
reduced (summed or averaged) over the chosen output bins.

Exact reuse
-----------
The stem and conv tower are local, so a single-base change alters only a few rows of each
conv stage. With ``exact_reuse=True`` (the default) the conv activations of the reference
are computed once (:func:`enformer.model.reuse.conv_activations`), each mutant's tower output
is patched from them (:func:`~enformer.model.reuse.conv_tower_for`), and only the transformer
and heads run per mutant, in batches (:func:`~enformer.model.reuse.forward_from_tower`). The
results equal full forward passes up to float32 rounding (``exact_reuse=False`` runs those
full passes, for comparison). At the published size this skips about three quarters of the
work per mutant.

Output
------
:class:`ISM` holds ``scores`` ``(positions, 4, tracks)``: the read-out with base ``b`` at each
position. The reference base's row is the reference prediction itself, so ``effects =
scores - reference`` is exactly 0 there. :meth:`ISM.to_h5` writes basenji's ``scores.h5``
layout (``seqs``, per-statistic arrays ``(sequences, positions, 4, tracks)``, ``chrom``,
``start``, ``end``, ``target_ids``, ``target_labels``).
"""

from __future__ import annotations

import logging
import os
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal

import numpy as np
import torch

from ..data.sequence import decode, one_hot
from ..io.jobdir import JobDir
from ..io.jobs import model_fingerprint, sequence_digest
from ..io.progress import progress_bar
from ..model.geometry import OutputGeometry, output_geometry
from ..runtime import parse_device
from ..model.reuse import conv_activations, conv_tower_for, forward_from_tower
from .files import read_arrays, write_arrays
from .state import model_state

if TYPE_CHECKING:
    from ..model.enformer import Enformer

__all__ = ["ISM", "ism_job", "read_ism", "saturation_mutagenesis", "write_ism"]

logger = logging.getLogger(__name__)

_BASES = "ACGT"


@dataclass
class ISM:
    """Saturation mutagenesis of one window.

    Attributes
    ----------
    scores : numpy.ndarray
        float32 ``(positions, 4, tracks)``: the read-out with each base (A, C, G, T) at each
        position of the window; the reference base's row equals :attr:`reference`.
    reference : numpy.ndarray
        float32 ``(tracks,)``: the read-out of the unmutated sequence.
    seq : numpy.ndarray
        float32 ``(positions, 4)``: one-hot reference bases of the window (N = zeros).
    start, end : int
        The window in input coordinates (0-based, half-open).
    head : str
        Output head.
    tracks : list of int
        Track indices of the head (the last axis of :attr:`scores`).
    bins : list of int
        Output bins the read-out covers.
    reduce : str
        ``'sum'`` or ``'mean'`` over :attr:`bins`.
    method : str
        ``'exact_reuse'`` or ``'naive'``.
    description : str
        The model's ``config.description``.
    track_ids, track_labels : list of str or None
        Identifiers and descriptions of the tracks, when a track sheet was given.
    chrom : str or None
        Chromosome, when the input is a genome window.
    input_start : int or None
        0-based genomic position of input index 0, when known.
    """

    scores: np.ndarray
    reference: np.ndarray
    seq: np.ndarray
    start: int
    end: int
    head: str
    tracks: list[int]
    bins: list[int]
    reduce: str
    method: str
    description: str = ""
    track_ids: list[str] | None = None
    track_labels: list[str] | None = None
    chrom: str | None = None
    input_start: int | None = None
    settings: dict[str, Any] = field(default_factory=dict)

    @property
    def effects(self) -> np.ndarray:
        """``scores - reference``, ``(positions, 4, tracks)``; 0 at the reference bases."""
        return self.scores - self.reference[None, None, :]

    def largest_effect(self) -> tuple[int, int, np.ndarray]:
        """The mutation with the largest absolute effect on any track.

        Returns
        -------
        position, base, effects
            Position in the window, base index (A, C, G, T) and its effect on every track.
        """
        eff = self.effects
        position, base = divmod(int(np.argmax(np.abs(eff).max(axis=-1))), 4)
        return position, base, eff[position, base]

    @property
    def n_positions(self) -> int:
        """Number of mutated positions."""
        return int(self.scores.shape[0])

    @property
    def genomic_start(self) -> int | None:
        """0-based genomic position of the window's first base, when known."""
        return None if self.input_start is None else self.input_start + self.start

    @property
    def sequence(self) -> str:
        """Reference bases of the window."""
        return str(decode(self.seq))

    def metadata(self) -> dict[str, Any]:
        """Settings of the computation, JSON-ready."""
        return {
            "head": self.head,
            "tracks": list(self.tracks),
            "bins": list(self.bins),
            "reduce": self.reduce,
            "method": self.method,
            "input_start": self.input_start,
            "model_description": self.description,
            "scores": "read-out with base b at each position; reference base row = reference",
            "ism": "scores - reference (alt - ref); 0 at the reference base",
            **self.settings,
        }

    def to_h5(self, path: str | os.PathLike[str]) -> Path:
        """Write this result with :func:`write_ism` (HDF5)."""
        return write_ism(self, path)

    def to_npz(self, path: str | os.PathLike[str]) -> Path:
        """Write this result with :func:`write_ism` (NPZ)."""
        return write_ism(self, path)


def _reduce(y: torch.Tensor, bins: torch.Tensor, reduce: str) -> torch.Tensor:
    """``(B, bins, tracks)`` -> ``(B, tracks)`` over the chosen bins."""
    y = y.index_select(1, bins)
    return y.sum(1) if reduce == "sum" else y.mean(1)


def _model_input(
    model: Enformer, x: torch.Tensor | np.ndarray | str, start: int, end: int
) -> tuple[torch.Tensor, int, OutputGeometry]:
    """The one sequence as the model sees it ``(L, 4)``, the bases cropped off its start, and
    the output geometry of the input's length.

    An input of twice the model's length is centre-cropped by the model; the window must
    lie in the part it sees.
    """
    config = model.config
    if isinstance(x, str):
        x = one_hot(x, ambiguous="n")
    xt = torch.as_tensor(np.asarray(x) if not isinstance(x, torch.Tensor) else x)
    if xt.dim() == 3 and xt.shape[0] == 1:
        xt = xt[0]
    if xt.dim() != 2 or xt.shape[1] != 4:
        raise ValueError(f"expected one sequence, one-hot (L, 4); got {tuple(xt.shape)}")
    length = xt.shape[0]
    if not 0 <= start < end <= length:
        raise ValueError(f"window [{start}, {end}) must be non-empty and inside [0, {length})")
    geometry = output_geometry(config, length)
    if length != 2 * config.sequence_length:
        return xt, 0, geometry
    crop = (length - config.sequence_length) // 2
    if start < crop or end > crop + config.sequence_length:
        raise ValueError(
            f"the model sees only input positions [{crop}, {crop + config.sequence_length}) "
            f"of a {length}-bp input; the window [{start}, {end}) lies outside"
        )
    return xt[crop : crop + config.sequence_length], crop, geometry


def _selection(
    tracks: Sequence[int] | None, bins: Sequence[int] | slice | None, n_tracks: int, n_bins: int
) -> tuple[list[int], list[int]]:
    """Checked track and bin index lists (default: all of each)."""
    track_list = list(range(n_tracks)) if tracks is None else [int(t) for t in tracks]
    bad = [t for t in track_list if not 0 <= t < n_tracks]
    if bad or not track_list:
        raise ValueError(
            f"track index {bad[0] if bad else '(none)'} out of range 0..{n_tracks - 1}"
        )
    if bins is None:
        bin_list = list(range(n_bins))
    elif isinstance(bins, slice):
        bin_list = list(range(n_bins))[bins]
    else:
        bin_list = [int(b) for b in bins]
    if not bin_list or any(not 0 <= b < n_bins for b in bin_list):
        raise ValueError(f"bins must be a non-empty selection of 0..{n_bins - 1}")
    return track_list, bin_list


class _Readout:
    """The reduced read-out of the reference and of batches of single-base mutants.

    With ``exact_reuse`` the reference's conv activations are kept and each mutant's tower
    output is patched from them; otherwise every sequence runs the full model.
    """

    def __init__(
        self,
        model: Enformer,
        head: str,
        tracks: list[int],
        bins: list[int],
        reduce: str,
        exact_reuse: bool,
    ) -> None:
        dev = model.device
        self.model, self.head, self.reduce, self.exact_reuse = model, head, reduce, exact_reuse
        self.tracks = torch.tensor(tracks, dtype=torch.long, device=dev)
        self.bins = torch.tensor(bins, dtype=torch.long, device=dev)
        self.acts: Any = None

    def _reduced(self, y: torch.Tensor) -> np.ndarray:
        return _reduce(y, self.bins, self.reduce).float().cpu().numpy()  # (B, tracks)

    def reference(self, xt: torch.Tensor) -> np.ndarray:
        """Read-out of the reference ``(tracks,)``; keeps its conv activations for reuse."""
        model, sel = self.model, {self.head: self.tracks}
        if self.exact_reuse:
            self.acts = conv_activations(model, xt)
            y = forward_from_tower(model, self.acts.tower[None], heads=[self.head], tracks=sel)
        else:
            y = {self.head: model(xt[None])[self.head].index_select(-1, self.tracks)}
        return self._reduced(y[self.head])[0]

    def mutants(self, xt: torch.Tensor, chunk: list[tuple[int, int]]) -> np.ndarray:
        """Read-outs ``(k, tracks)`` of ``xt`` with base ``b`` at position ``p``, per pair."""
        eye = torch.eye(4, dtype=xt.dtype, device=xt.device)
        alts = []
        for p, b in chunk:
            alt = xt.clone()
            alt[p] = eye[b]
            alts.append(alt)
        if not self.exact_reuse:
            y = self.model(torch.stack(alts))[self.head].index_select(-1, self.tracks)
            return self._reduced(y)
        towers = torch.stack(
            [
                conv_tower_for(self.model, self.acts, alt, span=(p, p + 1))
                for alt, (p, _) in zip(alts, chunk, strict=True)
            ]
        )  # (k, T, C)
        sel = {self.head: self.tracks}
        y = forward_from_tower(self.model, towers, heads=[self.head], tracks=sel)
        return self._reduced(y[self.head])


def saturation_mutagenesis(
    model: Enformer,
    x: torch.Tensor | np.ndarray | str,
    *,
    start: int,
    end: int,
    head: str = "human",
    tracks: Sequence[int] | None = None,
    bins: Sequence[int] | slice | None = None,
    reduce: Literal["sum", "mean"] = "sum",
    batch_size: int = 8,
    exact_reuse: bool = True,
    progress: bool = False,
    device: str | torch.device | None = None,
    track_ids: Sequence[str] | None = None,
    track_labels: Sequence[str] | None = None,
    chrom: str | None = None,
    input_start: int | None = None,
    work: JobDir | None = None,
) -> ISM:
    """Mutate every position of ``[start, end)`` to each other base and record the read-out.

    Parameters
    ----------
    model : Enformer
        The model; its device and train/eval mode are restored afterwards.
    x : torch.Tensor, numpy.ndarray or str
        One reference sequence, one-hot ``(L, 4)`` or a DNA string.
    start, end : int
        Window to mutate, input coordinates (0-based, half-open).
    head : str, optional
        Output head.
    tracks : sequence of int, optional
        Tracks to record (default every track of the head).
    bins : sequence of int or slice, optional
        Output bins to reduce over (default every bin).
    reduce : {'sum', 'mean'}, optional
        Reduction over ``bins``.
    batch_size : int, optional
        Mutants per transformer (or full-model) batch.
    exact_reuse : bool, optional
        Reuse the reference's conv activations (see the module docstring); ``False`` runs
        a full forward per mutant.
    progress : bool, optional
        Show a progress bar.
    device : str or torch.device, optional
        Where to compute (default the model's device).
    track_ids, track_labels : sequence of str, optional
        Identifiers / descriptions of ``tracks`` for the output file.
    chrom : str, optional
        Chromosome of the input window.
    input_start : int, optional
        0-based genomic position of input index 0.
    work : JobDir, optional
        A claimed job folder (:func:`ism_job`): the window is scored in units of the job's
        ``unit_positions`` setting (default 64 positions, 192 mutants), each saved there
        when done; units an earlier run finished are read back instead of computed (batches
        never span two units).

    Returns
    -------
    ISM
        ``scores`` ``(end - start, 4, tracks)``.

    Raises
    ------
    ValueError
        If the window is empty or outside the input, the head is unknown, or an index is
        out of range.
    """
    config = model.config
    if head not in config.heads:
        raise ValueError(f"the model has no head {head!r}; it has {', '.join(config.heads)}")
    if reduce not in ("sum", "mean"):
        raise ValueError(f"reduce must be 'sum' or 'mean', got {reduce!r}")
    if batch_size < 1:
        raise ValueError(f"batch_size must be >= 1, got {batch_size}")
    xt, crop, geometry = _model_input(model, x, start, end)
    track_list, bin_list = _selection(tracks, bins, config.heads[head], geometry.n_bins)

    dev = parse_device(device) if device is not None else model.device
    xt = xt.to(device=dev, dtype=model.dtype)
    window = xt[start - crop : end - crop].float().cpu().numpy()
    ref_base = window.argmax(axis=1)
    is_n = ~window.any(axis=1)
    n_pos = end - start
    step = int(work.settings.get("unit_positions", 64)) if work is not None else max(n_pos, 1)
    if step < 1:
        raise ValueError(f"unit_positions must be >= 1, got {step}")
    units = [(p0, min(p0 + step, n_pos)) for p0 in range(0, n_pos, step)]
    done = work.done() if work is not None else set()
    scores = np.zeros((n_pos, 4, len(track_list)), dtype=np.float32)
    n_mutants = sum(4 if is_n[p] else 3 for p in range(n_pos))
    bar = progress_bar(n_mutants, "ISM", progress, unit="mutant")
    try:
        with model_state(model, device=dev, freeze=False), torch.inference_mode():
            readout = _Readout(model, head, track_list, bin_list, reduce, exact_reuse)
            reference = readout.reference(xt)
            for u, (p0, p1) in enumerate(units):
                mutants = [(p, b) for p in range(p0, p1) for b in range(4)
                           if is_n[p] or b != ref_base[p]]  # fmt: skip
                if u in done:
                    scores[p0:p1] = work.load(u)["scores"]
                else:
                    for lo in range(0, len(mutants), batch_size):
                        batch = mutants[lo : lo + batch_size]
                        values = readout.mutants(xt, [(start - crop + p, b) for p, b in batch])
                        for (p, b), v in zip(batch, values, strict=True):
                            scores[p, b] = v
                    if work is not None:
                        work.save(u, {"scores": scores[p0:p1]})
                bar.update(len(mutants))
    finally:
        bar.close()
    for p in range(n_pos):
        if not is_n[p]:
            scores[p, ref_base[p]] = reference
    logger.info(
        "ISM of %d positions x 3 alternatives (%d mutants, %s)",
        n_pos,
        n_mutants,
        "exact reuse" if exact_reuse else "naive",
    )
    return ISM(
        scores=scores,
        reference=reference,
        seq=window,
        start=int(start),
        end=int(end),
        head=head,
        tracks=track_list,
        bins=bin_list,
        reduce=reduce,
        method="exact_reuse" if exact_reuse else "naive",
        description=config.description,
        track_ids=None if track_ids is None else list(track_ids),
        track_labels=None if track_labels is None else list(track_labels),
        chrom=chrom,
        input_start=input_start,
        settings={
            "bin_size": geometry.bin_size,
            "output_offset": geometry.offset,
            "batch_size": batch_size,
        },
    )


@contextmanager
def ism_job(
    out_dir: str | os.PathLike[str], model: torch.nn.Module, x: np.ndarray, **settings: Any
) -> Iterator[JobDir]:
    """The resumable job folder ``OUT/.work`` of one ISM run, claimed for the ``with`` block.

    Its settings are the model's fingerprint, the digest of the input ``x`` (one-hot) and
    ``settings`` (JSON-ready: window, tracks, bins, reduce, method, batch size, and
    ``unit_positions``, the positions per saved unit, default 64): a run
    with the same ones resumes the finished units; other ones start over. On a normal exit
    the folder is removed; after an error or interrupt the finished units stay for the next
    run. A second live run into the same folder is refused (:class:`~enformer.io.jobs.JobLock`).
    """
    out = Path(out_dir)
    job = {"model": model_fingerprint(model), "input": sequence_digest(np.asarray(x)), **settings}
    store = JobDir(out / ".work", job, what=f"output directory {out}")
    done = store.claim()
    if done:
        logger.info("resuming: %d finished unit(s) in %s", len(done), store.path)
    ok = False
    try:
        yield store
        store.remove()
        ok = True
    finally:
        store.release(discard=not ok and not store.done())


# --------------------------------------------------------------------------------------
# Files
# --------------------------------------------------------------------------------------


def _arrays(items: list[ISM]) -> dict[str, np.ndarray]:
    first = items[0]
    for it in items[1:]:
        if it.scores.shape != first.scores.shape or it.tracks != first.tracks:
            raise ValueError("ISM results written together need the same window length and tracks")
    n_tracks = len(first.tracks)
    ids = first.track_ids or [str(t) for t in first.tracks]
    labels = first.track_labels or [""] * n_tracks
    chroms, starts = [], []
    for it in items:
        g = it.genomic_start
        chroms.append(it.chrom or "")
        starts.append(it.start if g is None else g)
    starts_a = np.array(starts, dtype=np.int64)
    return {
        "seqs": np.stack([it.seq for it in items]).astype(bool),  # (N, P, 4)
        "ism": np.stack([it.effects for it in items]).astype(np.float32),  # (N, P, 4, T)
        "scores": np.stack([it.scores for it in items]).astype(np.float32),
        "ref": np.stack([it.reference for it in items]).astype(np.float32),  # (N, T)
        "chrom": np.array(chroms, dtype="S"),
        "start": starts_a,
        "end": starts_a + first.n_positions,
        "input_start": np.array(
            [-1 if it.input_start is None else it.input_start for it in items], dtype=np.int64
        ),
        "window_input_start": np.array([it.start for it in items], dtype=np.int64),
        "track_index": np.array(first.tracks, dtype=np.int64),
        "target_ids": np.array(ids, dtype="S"),
        "target_labels": np.array(labels, dtype="S"),
        "bins": np.array(first.bins, dtype=np.int64),
    }


def write_ism(items: ISM | Sequence[ISM], path: str | os.PathLike[str]) -> Path:
    """Write ISM results in a basenji ``scores.h5``-like layout (HDF5 or NPZ), atomically.

    Layout (``N`` windows of ``P`` positions, ``T`` tracks)::

        seqs           bool (N, P, 4)        one-hot reference bases of each window
        ism            float32 (N, P, 4, T)  alt - ref read-out (0 at reference bases)
        scores         float32 (N, P, 4, T)  read-out with each base (ref row = ref)
        ref            float32 (N, T)        read-out of the reference sequence
        chrom          str (N,)              chromosome ('' for plain sequences)
        start, end     int64 (N,)            mutated window, 0-based half-open (genomic when
                                             known, else input coordinates)
        input_start    int64 (N,)            genomic position of input index 0 (-1 unknown)
        window_input_start  int64 (N,)       window start in input coordinates
        track_index    int64 (T,)            head's track indices
        target_ids     str (T,)              track identifiers (indices when unknown)
        target_labels  str (T,)              track descriptions ('' when unknown)
        bins           int64 (nb,)           output bins reduced over

    The file's attributes (NPZ: a ``metadata`` JSON string) hold :meth:`ISM.metadata`.

    Parameters
    ----------
    items : ISM or sequence of ISM
        Results with equal window length and tracks.
    path : str or os.PathLike
        ``.h5``/``.hdf5`` or ``.npz``.

    Returns
    -------
    pathlib.Path
        The file written.
    """
    items = [items] if isinstance(items, ISM) else list(items)
    if not items:
        raise ValueError("nothing to write")
    arrays = _arrays(items)
    meta = items[0].metadata()
    return write_arrays(path, arrays, meta, what="ISM")


def read_ism(path: str | os.PathLike[str]) -> list[ISM]:
    """Read a file written by :func:`write_ism`.

    Parameters
    ----------
    path : str or os.PathLike
        ``.h5``/``.hdf5`` or ``.npz``.

    Returns
    -------
    list of ISM
        One per window.
    """
    arrays, meta = read_arrays(path)
    ids = [s.decode() for s in arrays["target_ids"]]
    labels = [s.decode() for s in arrays["target_labels"]]
    out = []
    known = {
        "head", "tracks", "bins", "reduce", "method", "input_start", "model_description",
        "scores", "ism",
    }  # fmt: skip
    for i in range(arrays["seqs"].shape[0]):
        chrom = arrays["chrom"][i].decode() or None
        input_start = int(arrays["input_start"][i])
        out.append(
            ISM(
                scores=arrays["scores"][i],
                reference=arrays["ref"][i],
                seq=arrays["seqs"][i].astype(np.float32),
                start=int(arrays["window_input_start"][i]),
                end=int(arrays["window_input_start"][i]) + arrays["seqs"].shape[1],
                head=str(meta["head"]),
                tracks=[int(t) for t in arrays["track_index"]],
                bins=[int(b) for b in arrays["bins"]],
                reduce=str(meta["reduce"]),
                method=str(meta["method"]),
                description=str(meta.get("model_description", "")),
                track_ids=ids,
                track_labels=labels,
                chrom=chrom,
                input_start=None if input_start < 0 else input_start,
                settings={k: v for k, v in meta.items() if k not in known},
            )
        )
    return out
