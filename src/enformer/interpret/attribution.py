"""Contribution scores: gradient x input, saliency and integrated gradients.

The quantity explained is a **target**: a scalar per sequence made from the model's output
for one head, a set of tracks and a set of output bins, summed (or averaged) over both --
e.g. a cell type's CAGE at the three bins around a gene's TSS, as in the Enformer paper.
:class:`Target` names it; :func:`gene_target` builds one from a GTF.

Methods
-------
``grad_x_input``
    ``x * df/dx``: for one-hot input the gradient at the observed base; the other three
    columns are zero.
``saliency``
    ``df/dx`` itself, for all four bases ("hypothetical" contributions).
``integrated_gradients``
    ``(x - x0) * mean_k df/dx(x0 + a_k (x - x0))`` over ``steps`` points ``a_k = (k + 1/2) /
    steps`` (midpoint rule) from a baseline ``x0`` (default all-``N``, i.e. zeros). Sums to
    about ``f(x) - f(x0)`` (completeness); :attr:`Attribution.baseline_value` records ``f(x0)``.

``per_position`` is the sum over the four bases of the per-base scores.

Averaging over copies
---------------------
``rc=True`` and ``shifts`` explain the same target on reverse-complemented and shifted copies
of the input (the copies :func:`enformer.inference.predict` averages). Every copy's target is
the *same genomic quantity*: on the reverse complement the bins are mirrored
(``bin -> n_bins - 1 - bin``) and stranded tracks swapped with their partner
(``strand_pairs``). A shift ``s`` presents ``copy[i] = x[i + s]`` (N where that runs off the
input) and keeps bin indices, as in prediction. Each copy's scores are mapped back to the
forward strand and to the original positions (``copy[i]`` -> position ``i + s``; the
reverse complement flips positions and the A/C/G/T axis) and averaged over the copies that
cover each position.

Memory
------
Backpropagating through the official model at 196,608 bp holds every activation of the conv
tower: about 10 GB (3.3 GB measured at 65,536 bp, on the CPU). ``checkpointing=True`` (the
default for long inputs) recomputes each stem, conv-tower and transformer block during the
backward pass instead, keeping only the blocks' inputs, which halves the peak (1.5 GB at
65,536 bp, so about 4.5 GB at full length). Inputs go through the model in chunks of
``batch_size``. Gradients are taken with respect to the
input only (parameters are frozen for the call), so nothing accumulates in ``.grad``.
"""

from __future__ import annotations

import contextlib
import json
import logging
import os
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal

import numpy as np
import torch
import torch.nn.functional as F

from ..data.sequence import one_hot, reverse_complement
from ..runtime import parse_device
from ..inference.predict import check_shifts, progress_bar
from ..model.geometry import OutputGeometry, output_geometry

if TYPE_CHECKING:
    from ..model.enformer import Enformer
    from .annotation import Gene

__all__ = [
    "METHODS",
    "Attribution",
    "Target",
    "contribution_scores",
    "gene_target",
    "model_state",
    "tss_bins",
    "write_attributions",
    "write_bigwig",
]

logger = logging.getLogger(__name__)

Method = Literal["grad_x_input", "saliency", "integrated_gradients"]
METHODS: tuple[str, ...] = ("grad_x_input", "saliency", "integrated_gradients")
"""Names accepted by :func:`contribution_scores` ``method=``."""

# Checkpointing is switched on by default when length x channels reaches this (the
# official model at 196,608 bp is ~3e8; the tiny test model ~1e5).
_AUTO_CHECKPOINT = 2**25


# --------------------------------------------------------------------------------------
# Target
# --------------------------------------------------------------------------------------


def _as_index_list(spec: Sequence[int] | slice | int | None, n: int, what: str) -> list[int]:
    if spec is None:
        return list(range(n))
    if isinstance(spec, slice):
        out = list(range(n))[spec]
    elif isinstance(spec, int | np.integer):
        out = [int(spec)]
    else:
        out = [int(i) for i in np.asarray(spec).ravel()]
    if not out:
        raise ValueError(f"the target's {what} selection is empty")
    bad = [i for i in out if not 0 <= i < n]
    if bad:
        raise ValueError(f"target {what} index {bad[0]} is out of range (0..{n - 1})")
    return out


@dataclass(frozen=True)
class Target:
    """A scalar read-out of the model: tracks x bins of one head, summed or averaged.

    Parameters
    ----------
    head : str
        Output head, e.g. ``'human'``.
    tracks : sequence of int, slice or None
        Track indices of the head; ``None`` = every track.
    bins : sequence of int, slice or None
        Output bin indices (0-based, after the model's crop); ``None`` = every bin. Use
        :func:`tss_bins` / :func:`gene_target` to aim at a gene's TSS.
    reduce : {'sum', 'mean'}
        How the selected values are combined.

    Examples
    --------
    >>> Target("human", tracks=[4828], bins=[447, 448, 449])  # CAGE at the centre bins
    Target(head='human', tracks=(4828,), bins=(447, 448, 449), reduce='sum')
    """

    head: str = "human"
    tracks: Sequence[int] | slice | None = None
    bins: Sequence[int] | slice | None = None
    reduce: Literal["sum", "mean"] = "sum"

    def __post_init__(self) -> None:
        if self.reduce not in ("sum", "mean"):
            raise ValueError(f"reduce must be 'sum' or 'mean', got {self.reduce!r}")
        for name in ("tracks", "bins"):
            value = getattr(self, name)
            if value is not None and not isinstance(value, slice):
                if isinstance(value, int | np.integer):
                    value = (int(value),)
                object.__setattr__(self, name, tuple(int(i) for i in np.asarray(value).ravel()))

    def resolve(self, n_bins: int, n_tracks: int) -> tuple[list[int], list[int]]:
        """Bin and track indices for an output of ``n_bins`` bins and ``n_tracks`` tracks.

        Parameters
        ----------
        n_bins : int
            Output bins of the model for the input length.
        n_tracks : int
            Tracks of the head.

        Returns
        -------
        bins, tracks : list of int
            The selected indices.

        Raises
        ------
        ValueError
            If an index is out of range or a selection is empty.
        """
        return (
            _as_index_list(self.bins, n_bins, "bin"),
            _as_index_list(self.tracks, n_tracks, "track"),
        )

    def describe(self) -> str:
        """Short human-readable statement, e.g. ``'sum of human tracks [3] at bins 31-33'``."""

        def fmt(v: Any) -> str:
            if v is None:
                return "all"
            if isinstance(v, slice):
                return f"{v.start or 0}:{'' if v.stop is None else v.stop}"
            if len(v) > 2 and list(v) == list(range(v[0], v[0] + len(v))):
                return f"{v[0]}-{v[-1]}"
            return ",".join(str(i) for i in v)

        return (
            f"{self.reduce} of {self.head} tracks [{fmt(self.tracks)}] at bins [{fmt(self.bins)}]"
        )

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready description."""

        def plain(v: Any) -> Any:
            if isinstance(v, slice):
                return {"slice": [v.start, v.stop, v.step]}
            return None if v is None else list(v)

        return {
            "head": self.head,
            "tracks": plain(self.tracks),
            "bins": plain(self.bins),
            "reduce": self.reduce,
        }


def tss_bins(
    tss: int | Sequence[int],
    *,
    window_start: int,
    geometry: OutputGeometry,
    width: int = 3,
) -> list[int]:
    """Output bins around transcription start sites.

    The model's output bin ``i`` covers input positions ``[offset + i * bin_size, offset +
    (i + 1) * bin_size)``, where ``offset`` is the crop (40,960 bp for the published model):
    a TSS at genomic position ``p`` of a window starting at ``window_start`` lies in bin
    ``(p - window_start - offset) // bin_size``.

    Parameters
    ----------
    tss : int or sequence of int
        0-based genomic TSS positions.
    window_start : int
        0-based genomic position of input index 0.
    geometry : OutputGeometry
        Output placement (:func:`enformer.inference.predict.output_geometry`).
    width : int, optional
        Bins per TSS, centred on the TSS's bin (3: the bin and one either side). Even widths
        take the extra bin on the right.

    Returns
    -------
    list of int
        Sorted distinct bins inside the output.

    Raises
    ------
    ValueError
        If no TSS lies inside the output span.
    """
    if width < 1:
        raise ValueError(f"width must be >= 1, got {width}")
    sites = [int(tss)] if isinstance(tss, int | np.integer) else [int(t) for t in tss]
    out: set[int] = set()
    inside = 0
    for p in sites:
        rel = p - window_start - geometry.offset
        if not 0 <= rel < geometry.output_span:
            continue
        inside += 1
        b = rel // geometry.bin_size
        lo = b - (width - 1) // 2
        out.update(i for i in range(lo, lo + width) if 0 <= i < geometry.n_bins)
    if not inside:
        span_lo = window_start + geometry.offset
        raise ValueError(
            f"no TSS ({', '.join(str(p) for p in sites[:5])}) lies in the output span "
            f"[{span_lo:,}, {span_lo + geometry.output_span:,}) of this window; centre the "
            "window on the gene"
        )
    return sorted(out)


def gene_target(
    model: Enformer,
    gene: str | Gene,
    *,
    window_start: int,
    head: str = "human",
    tracks: Sequence[int] | slice | None = None,
    gtf: str | os.PathLike[str] | None = None,
    length: int | None = None,
    width: int = 3,
    use: Literal["gene", "transcripts"] = "gene",
    reduce: Literal["sum", "mean"] = "sum",
) -> Target:
    """A :class:`Target` at a gene's TSS bins, located from a GTF.

    Parameters
    ----------
    model : Enformer
        The model (its configuration gives the output geometry).
    gene : str or Gene
        Gene name or ID (looked up in ``gtf``), or a :class:`~.annotation.Gene`.
    window_start : int
        0-based genomic position of the model input's first base.
    head : str, optional
        Output head.
    tracks : sequence of int, slice or None, optional
        Tracks to sum (e.g. the CAGE tracks of a cell type).
    gtf : str or os.PathLike, optional
        Annotation, needed when ``gene`` is a name.
    length : int, optional
        Input length (default the model's ``sequence_length``).
    width : int, optional
        Bins per TSS (see :func:`tss_bins`).
    use : {'gene', 'transcripts'}, optional
        The gene's 5' end only, or every distinct transcript TSS in the output span.
    reduce : {'sum', 'mean'}, optional
        How tracks and bins are combined.

    Returns
    -------
    Target
        With the TSS bins.
    """
    from .annotation import find_gene, read_gtf

    if isinstance(gene, str):
        if gtf is None:
            raise ValueError("a gene name needs gtf= (the annotation to look it up in)")
        gene = find_gene(read_gtf(gtf), gene)
    geometry = output_geometry(model.config, length)
    sites: list[int] = [gene.tss] if use == "gene" else gene.transcript_tss
    if use == "transcripts":
        lo = window_start + geometry.offset
        sites = [s for s in sites if lo <= s < lo + geometry.output_span] or [gene.tss]
    bins = tss_bins(sites, window_start=window_start, geometry=geometry, width=width)
    return Target(head, tracks=tracks, bins=bins, reduce=reduce)


# --------------------------------------------------------------------------------------
# Result
# --------------------------------------------------------------------------------------


@dataclass
class Attribution:
    """Contribution scores of one or more sequences.

    Attributes
    ----------
    scores : numpy.ndarray
        float32 per-base scores, ``(L, 4)`` for one sequence or ``(B, L, 4)``, on the
        forward strand, in A, C, G, T order.
    x : numpy.ndarray
        float32 one-hot input, same shape.
    method : str
        One of :data:`METHODS`.
    target : Target
        What was explained.
    target_value : numpy.ndarray
        ``f(x)``, the target on the input (mean over copies), ``()`` or ``(B,)``.
    baseline_value : numpy.ndarray or None
        ``f(x0)`` for integrated gradients (mean over copies), else ``None``.
    rc : bool
        Whether reverse-complement copies were averaged in.
    shifts : tuple of int
        Shifts averaged over.
    steps : int or None
        Integration steps (integrated gradients only).
    description : str
        The model's ``config.description`` (e.g. "mini model"), carried into outputs.
    chrom : str or None
        Chromosome of the input window, when known.
    start : int or None
        0-based genomic position of input index 0, when known.
    name : str or None
        Label of the sequence (e.g. ``'ref'``/``'alt'`` or a region).
    """

    scores: np.ndarray
    x: np.ndarray
    method: str
    target: Target
    target_value: np.ndarray
    baseline_value: np.ndarray | None = None
    rc: bool = False
    shifts: tuple[int, ...] = (0,)
    steps: int | None = None
    description: str = ""
    chrom: str | None = None
    start: int | None = None
    name: str | None = None
    settings: dict[str, Any] = field(default_factory=dict)

    @property
    def per_position(self) -> np.ndarray:
        """Scores summed over the four bases, ``(L,)`` or ``(B, L)``."""
        return self.scores.sum(axis=-1)

    @property
    def length(self) -> int:
        """Input length in bp."""
        return int(self.scores.shape[-2])

    def __getitem__(self, i: int) -> Attribution:
        """The ``i``-th sequence of a batched result."""
        if self.scores.ndim != 3:
            raise TypeError("indexing needs a batched Attribution (B, L, 4)")
        return Attribution(
            scores=self.scores[i],
            x=self.x[i],
            method=self.method,
            target=self.target,
            target_value=np.asarray(self.target_value[i]),
            baseline_value=None if self.baseline_value is None else self.baseline_value[i],
            rc=self.rc,
            shifts=self.shifts,
            steps=self.steps,
            description=self.description,
            chrom=self.chrom,
            start=self.start,
            name=self.name,
            settings=dict(self.settings),
        )

    def metadata(self) -> dict[str, Any]:
        """Settings of the computation, JSON-ready."""
        return {
            "method": self.method,
            "target": self.target.to_dict(),
            "target_description": self.target.describe(),
            "rc": self.rc,
            "shifts": list(self.shifts),
            "steps": self.steps,
            "per_position": "sum over A,C,G,T of the per-base scores",
            "coordinates": "forward strand; input index 0 = genomic start (0-based)",
            "model_description": self.description,
            **self.settings,
        }


# --------------------------------------------------------------------------------------
# Model state
# --------------------------------------------------------------------------------------


@contextlib.contextmanager
def model_state(
    model: Enformer,
    *,
    device: torch.device | None = None,
    checkpointing: bool = False,
    freeze: bool = True,
) -> Iterator[Enformer]:
    """Put a model in eval mode (optionally checkpointed, frozen, moved); restore it after.

    Parameters
    ----------
    model : Enformer
        The model; its training flags, device, parameters' ``requires_grad`` and gradient
        checkpointing setting are restored on exit, even after an error.
    device : torch.device, optional
        Device to run on (the model's own by default).
    checkpointing : bool, optional
        Recompute each conv-tower and transformer block in the backward pass, keeping only
        the blocks' inputs (:meth:`~enformer.model.Enformer.set_gradient_checkpointing`).
    freeze : bool, optional
        Set ``requires_grad=False`` on every parameter for the duration.

    Yields
    ------
    Enformer
        The same model object.

    Notes
    -----
    With ``checkpointing`` the trunk recomputes each block's activations in the backward
    pass; every module stays in eval mode (BatchNorm moving averages, no dropout).
    """
    was_training = model.training
    modes = [(m, m.training) for m in model.modules()]
    old_device = model.device
    flags = [(p, p.requires_grad) for p in model.parameters()]
    trunk = model.trunk
    old_ckpt = trunk.gradient_checkpointing
    try:
        if device is not None and parse_device(device) != old_device:
            model.to(device)
        model.eval()
        if freeze:
            for p, _ in flags:
                p.requires_grad_(False)
        if checkpointing:
            model.set_gradient_checkpointing(True)
        yield model
    finally:
        model.set_gradient_checkpointing(old_ckpt)
        for p, flag in flags:
            p.requires_grad_(flag)
        model.train(was_training)
        for m, mode in modes:  # also mixed states, e.g. frozen BatchNorms in training
            m.training = mode
        if model.device != old_device:
            model.to(old_device)


# --------------------------------------------------------------------------------------
# Copies: shift and reverse complement
# --------------------------------------------------------------------------------------


def _shift(x: torch.Tensor, s: int) -> torch.Tensor:
    """``copy[:, i] = x[:, i + s]``; zeros (N) where that runs off the input. ``(B, L, 4)``."""
    if s == 0:
        return x
    out = torch.zeros_like(x)
    if abs(s) >= x.shape[1]:
        return out
    if s > 0:
        out[:, :-s] = x[:, s:]
    else:
        out[:, -s:] = x[:, :s]
    return out


def _unshift(c: torch.Tensor, s: int) -> tuple[torch.Tensor, torch.Tensor]:
    """Map copy positions back to original ones; returns values and a coverage mask ``(L,)``."""
    length = c.shape[1]
    cover = torch.zeros(length, dtype=c.dtype, device=c.device)
    if s == 0:
        return c, cover + 1
    out = torch.zeros_like(c)
    if abs(s) >= length:
        return out, cover
    if s > 0:
        out[:, s:] = c[:, :-s]
        cover[s:] = 1
    else:
        out[:, : length + s] = c[:, -s:]
        cover[: length + s] = 1
    return out, cover


@dataclass(frozen=True)
class _Copy:
    shift: int
    flip: bool

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        y = _shift(x, self.shift)
        return reverse_complement(y) if self.flip else y

    def back(self, c: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        if self.flip:
            c = torch.flip(c, dims=(1, 2))
        return _unshift(c, self.shift)


# --------------------------------------------------------------------------------------
# Gradients
# --------------------------------------------------------------------------------------


class _Readout:
    """Evaluates one copy's target from a batch of inputs, with gradients."""

    def __init__(self, model: Enformer, head: str, bins: list[int], tracks: list[int], reduce: str):
        linear = model.heads[head].linear
        self.model = model
        self.bins = torch.tensor(bins, dtype=torch.long, device=model.device)
        idx = torch.tensor(tracks, dtype=torch.long, device=model.device)
        self.weight = linear.weight[idx]  # (n, 2C)
        self.bias = linear.bias[idx]  # (n,)
        self.reduce = reduce

    def __call__(self, x: torch.Tensor) -> torch.Tensor:
        emb = self.model.embed(x)  # (B, bins, 2C)
        emb = emb.index_select(1, self.bins)  # (B, nb, 2C)
        y = F.softplus(F.linear(emb, self.weight, self.bias))  # (B, nb, nt)
        y = y.flatten(1)
        return y.sum(1) if self.reduce == "sum" else y.mean(1)  # (B,)


def _grad(readout: _Readout, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Gradient of the read-out with respect to ``x`` ``(B, L, 4)``; also the values ``(B,)``."""
    x = x.detach().requires_grad_(True)
    with torch.enable_grad():
        value = readout(x)
        (g,) = torch.autograd.grad(value.sum(), x)
    return g, value.detach()


def _as_input(x: Any, dtype: torch.dtype, device: torch.device) -> tuple[torch.Tensor, bool]:
    """Tensor ``(B, L, 4)`` on the device, and whether the input was one sequence."""
    if isinstance(x, str):
        x = one_hot(x, ambiguous="n")
    elif isinstance(x, list | tuple) and x and isinstance(x[0], str):
        x = one_hot(list(x), ambiguous="n")
    t = torch.as_tensor(np.asarray(x) if not isinstance(x, torch.Tensor) else x)
    single = t.dim() == 2
    if single:
        t = t[None]
    if t.dim() != 3 or t.shape[-1] != 4:
        raise ValueError(f"expected one-hot DNA (L, 4) or (B, L, 4), got {tuple(t.shape)}")
    return t.to(device=device, dtype=dtype), single


def _baseline_tensor(baseline: Any, x: torch.Tensor) -> torch.Tensor:
    if baseline is None or (isinstance(baseline, str) and baseline == "zeros"):
        return torch.zeros_like(x)
    if isinstance(baseline, str):
        if baseline == "uniform":
            return torch.full_like(x, 0.25)
        raise ValueError(f"baseline must be 'zeros', 'uniform' or an array, got {baseline!r}")
    b = torch.as_tensor(
        np.asarray(baseline) if not isinstance(baseline, torch.Tensor) else baseline
    )
    b = b.to(device=x.device, dtype=x.dtype)
    if b.dim() == 2:
        b = b[None].expand_as(x)
    if b.shape != x.shape:
        raise ValueError(f"baseline has shape {tuple(b.shape)}, the input {tuple(x.shape)}")
    return b


def contribution_scores(
    model: Enformer,
    x: torch.Tensor | np.ndarray | str,
    target: Target | int | Sequence[int],
    *,
    method: Method = "grad_x_input",
    steps: int = 32,
    baseline: torch.Tensor | np.ndarray | str | None = None,
    rc: bool = False,
    shifts: Sequence[int] = (0,),
    strand_pairs: Sequence[int] | np.ndarray | None = None,
    head: str | None = None,
    batch_size: int | None = None,
    checkpointing: bool | None = None,
    device: str | torch.device | None = None,
    progress: bool = False,
) -> Attribution:
    """Per-base contribution scores of a target for one or more sequences.

    Parameters
    ----------
    model : Enformer
        The model. Its device, train/eval mode, parameters' ``requires_grad`` and gradient
        checkpointing setting are left as found.
    x : torch.Tensor, numpy.ndarray or str
        One-hot DNA ``(L, 4)`` or ``(B, L, 4)`` (A, C, G, T; N = zeros), or a DNA string.
    target : Target, int or sequence of int
        What to explain. An int or list of ints means those tracks of ``head``, summed over
        every output bin.
    method : {'grad_x_input', 'saliency', 'integrated_gradients'}, optional
        See the module docstring.
    steps : int, optional
        Integration points for integrated gradients.
    baseline : array, 'zeros', 'uniform' or None, optional
        Integrated-gradients baseline ``(L, 4)`` or ``(B, L, 4)`` on the forward strand;
        ``None``/``'zeros'`` is all-N, ``'uniform'`` is 0.25 everywhere.
    rc : bool, optional
        Average in the reverse-complement copy (bins mirrored, strand pairs swapped).
    shifts : sequence of int, optional
        Shifts (bp) averaged over, e.g. ``(-1, 0, 1)``.
    strand_pairs : sequence of int, optional
        Strand-pair permutation of the head's tracks (``TrackSheet.strand_pair_permutation``)
        used for the reverse-complement copy; default: no stranded tracks.
    head : str, optional
        Head for an int/list ``target`` (default ``'human'`` if present, else the first).
    batch_size : int, optional
        Inputs per forward/backward pass (default 1 with checkpointing, else 16).
    checkpointing : bool, optional
        Activation checkpointing; ``None`` switches it on when ``length x channels >=
        2**25`` (the official model at full length).
    device : str or torch.device, optional
        Where to compute (default the model's device); the model is moved back afterwards.
    progress : bool, optional
        Show a progress bar.

    Returns
    -------
    Attribution
        Scores ``(L, 4)`` (or ``(B, L, 4)``) and ``per_position`` sums.

    Raises
    ------
    ValueError
        On an unknown method or head, an out-of-range track or bin, a bad shape, or
        ``steps < 1``.
    """
    if method not in METHODS:
        raise ValueError(f"method must be one of {', '.join(METHODS)}; got {method!r}")
    if method == "integrated_gradients" and steps < 1:
        raise ValueError(f"steps must be >= 1, got {steps}")
    config = model.config
    if not isinstance(target, Target):
        name = head or ("human" if "human" in config.heads else next(iter(config.heads)))
        target = Target(name, tracks=target)
    if target.head not in config.heads:
        raise ValueError(f"the model has no head {target.head!r}; it has {', '.join(config.heads)}")
    shifts = check_shifts(tuple(shifts) or (0,), model.config.bin_size)
    dev = parse_device(device) if device is not None else model.device
    xt, single = _as_input(x, model.dtype, dev)
    n_seq, length = xt.shape[0], xt.shape[1]
    geometry = output_geometry(config, length)
    n_tracks = config.heads[target.head]
    bins, tracks = target.resolve(geometry.n_bins, n_tracks)
    perm = np.arange(n_tracks) if strand_pairs is None else np.asarray(strand_pairs, dtype=int)
    if perm.shape != (n_tracks,):
        raise ValueError(f"strand_pairs must have {n_tracks} entries, got shape {perm.shape}")
    if checkpointing is None:
        checkpointing = length * config.channels >= _AUTO_CHECKPOINT
    if batch_size is None:
        batch_size = 1 if checkpointing else 16
    copies = [_Copy(s, f) for s in shifts for f in ((False, True) if rc else (False,))]
    baseline_t = _baseline_tensor(baseline, xt) if method == "integrated_gradients" else None

    total = torch.zeros_like(xt)  # (B, L, 4) forward-strand sums
    cover = torch.zeros(length, dtype=xt.dtype, device=dev)
    values = torch.zeros(n_seq, dtype=torch.float64)
    base_values = torch.zeros(n_seq, dtype=torch.float64)
    per_copy = n_seq * (steps if method == "integrated_gradients" else 1)
    bar = progress_bar(len(copies) * per_copy, f"attribution ({method})", progress, unit="input")
    try:
        with model_state(model, device=dev, checkpointing=checkpointing):
            for copy in copies:
                copy_bins = [geometry.n_bins - 1 - b for b in bins] if copy.flip else bins
                copy_tracks = [int(perm[t]) for t in tracks] if copy.flip else tracks
                readout = _Readout(model, target.head, copy_bins, copy_tracks, target.reduce)
                xc = copy.forward(xt)
                if method == "integrated_gradients":
                    assert baseline_t is not None
                    bc = copy.forward(baseline_t)
                    contrib = torch.empty_like(xc)
                    for i in range(n_seq):
                        mean_grad, v, v0 = _integrated(readout, xc[i], bc[i], steps, batch_size)
                        contrib[i] = (xc[i] - bc[i]) * mean_grad
                        values[i] += v
                        base_values[i] += v0
                        bar.update(steps)
                else:
                    grads = torch.empty_like(xc)
                    for lo in range(0, n_seq, batch_size):
                        g, v = _grad(readout, xc[lo : lo + batch_size])
                        grads[lo : lo + batch_size] = g
                        values[lo : lo + batch_size] += v.double().cpu()
                        bar.update(len(v))
                    contrib = grads * xc if method == "grad_x_input" else grads
                back, covered = copy.back(contrib)
                total += back
                cover += covered
    finally:
        bar.close()
    scores = (total / cover.clamp(min=1)[None, :, None]).float().cpu().numpy()
    values /= len(copies)
    base_values /= len(copies)
    x_np = xt.float().cpu().numpy()
    result = Attribution(
        scores=scores[0] if single else scores,
        x=x_np[0] if single else x_np,
        method=method,
        target=Target(target.head, tracks=tracks, bins=bins, reduce=target.reduce),
        target_value=(values.numpy()[0] if single else values.numpy()).astype(np.float32),
        baseline_value=(
            None
            if method != "integrated_gradients"
            else (base_values.numpy()[0] if single else base_values.numpy()).astype(np.float32)
        ),
        rc=rc,
        shifts=shifts,
        steps=steps if method == "integrated_gradients" else None,
        description=config.description,
        settings={
            "checkpointing": bool(checkpointing),
            "baseline": None
            if method != "integrated_gradients"
            else (
                baseline if isinstance(baseline, str) else "zeros" if baseline is None else "array"
            ),
            "strand_pairs": strand_pairs is not None,
            "bin_size": geometry.bin_size,
            "output_offset": geometry.offset,
            "n_bins": geometry.n_bins,
        },
    )
    logger.info(
        "%s attribution of %s: target value %s",
        method,
        target.describe(),
        np.array2string(np.atleast_1d(result.target_value), precision=4),
    )
    return result


def _integrated(
    readout: _Readout, x: torch.Tensor, base: torch.Tensor, steps: int, batch_size: int
) -> tuple[torch.Tensor, float, float]:
    """Mean gradient over the straight path from ``base`` to ``x`` (midpoint rule)."""
    alphas = (torch.arange(steps, dtype=x.dtype, device=x.device) + 0.5) / steps
    acc = torch.zeros_like(x)
    for lo in range(0, steps, batch_size):
        a = alphas[lo : lo + batch_size, None, None]
        path = base[None] + a * (x - base)[None]  # (k, L, 4)
        g, _ = _grad(readout, path)
        acc += g.sum(0)
    with torch.no_grad():
        ends = readout(torch.stack([x, base]))
    return acc / steps, float(ends[0]), float(ends[1])


# --------------------------------------------------------------------------------------
# Writers
# --------------------------------------------------------------------------------------


def _atomic(path: Path) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    return path.with_name(f".{path.name}.tmp-{os.getpid()}")


def write_attributions(
    attributions: Attribution | Sequence[Attribution],
    path: str | os.PathLike[str],
    *,
    settings: dict[str, Any] | None = None,
) -> Path:
    """Write attributions to HDF5 (``.h5``) or NPZ (``.npz``), atomically.

    Layout (``N`` sequences of ``L`` bp)::

        names         str (N,)            sequence labels ('ref', 'alt', a region, ...)
        seqs          bool (N, L, 4)       one-hot inputs
        scores        float32 (N, L, 4)    per-base scores, forward strand
        per_position  float32 (N, L)       scores summed over bases
        target_value  float32 (N,)         f(x)
        chrom         str (N,)             window chromosome ('' when unknown)
        start, end    int64 (N,)           window, 0-based half-open (-1 when unknown)

    HDF5 attributes (NPZ: a ``metadata`` JSON string) hold the method, target and
    settings (:meth:`Attribution.metadata`), plus ``settings``.

    Parameters
    ----------
    attributions : Attribution or sequence of Attribution
        Unbatched results of equal length.
    path : str or os.PathLike
        Output file; the suffix picks the format.
    settings : dict, optional
        Extra settings recorded in the metadata.

    Returns
    -------
    pathlib.Path
        The file written.
    """
    items = [attributions] if isinstance(attributions, Attribution) else list(attributions)
    flat: list[Attribution] = []
    for a in items:
        flat.extend([a[i] for i in range(a.scores.shape[0])] if a.scores.ndim == 3 else [a])
    if not flat:
        raise ValueError("nothing to write")
    path = Path(path)
    arrays = {
        "names": np.array([a.name or f"seq{i}" for i, a in enumerate(flat)], dtype="S"),
        "seqs": np.stack([a.x for a in flat]).astype(bool),
        "scores": np.stack([a.scores for a in flat]).astype(np.float32),
        "per_position": np.stack([a.per_position for a in flat]).astype(np.float32),
        "target_value": np.array([float(a.target_value) for a in flat], dtype=np.float32),
        "chrom": np.array([a.chrom or "" for a in flat], dtype="S"),
        "start": np.array([-1 if a.start is None else a.start for a in flat], dtype=np.int64),
        "end": np.array(
            [-1 if a.start is None else a.start + a.length for a in flat], dtype=np.int64
        ),
    }
    meta = {**flat[0].metadata(), "settings": settings or {}}
    tmp = _atomic(path)
    try:
        if path.suffix in (".h5", ".hdf5"):
            import h5py

            with h5py.File(tmp, "w") as h5:
                for key, value in arrays.items():
                    h5.create_dataset(key, data=value)
                for key, value in meta.items():
                    h5.attrs[key] = json.dumps(value) if not isinstance(value, str) else value
        elif path.suffix == ".npz":
            with open(tmp, "wb") as fh:
                np.savez_compressed(fh, metadata=np.array(json.dumps(meta, default=str)), **arrays)
        else:
            raise ValueError(f"unknown attribution file type {path.suffix!r}; use .h5 or .npz")
        os.replace(tmp, path)
    finally:
        tmp.unlink(missing_ok=True)
    return path


def write_bigwig(
    path: str | os.PathLike[str],
    chrom: str,
    start: int,
    values: np.ndarray,
    chrom_sizes: dict[str, int],
) -> Path:
    """Write per-base values of a window as a BigWig file (atomically).

    Parameters
    ----------
    path : str or os.PathLike
        Output ``.bw`` file.
    chrom : str
        Chromosome of the window.
    start : int
        0-based genomic position of ``values[0]``; bases outside the chromosome are dropped.
    values : numpy.ndarray
        ``(L,)`` per-base values.
    chrom_sizes : dict of str to int
        Chromosome lengths for the header (in the genome's order).

    Returns
    -------
    pathlib.Path
        The file written.
    """
    import pyBigWig

    if chrom not in chrom_sizes:
        raise ValueError(f"chromosome {chrom!r} is not in the genome's chromosome sizes")
    values = np.asarray(values, dtype=np.float64)
    lo = max(0, -start)
    hi = min(len(values), chrom_sizes[chrom] - start)
    path = Path(path)
    tmp = _atomic(path)
    try:
        bw = pyBigWig.open(str(tmp), "w")
        try:
            bw.addHeader(list(chrom_sizes.items()), maxZooms=10)
            if hi > lo:
                bw.addEntries(chrom, start + lo, values=values[lo:hi], span=1, step=1)
        finally:
            bw.close()
        os.replace(tmp, path)
    finally:
        tmp.unlink(missing_ok=True)
    return path
