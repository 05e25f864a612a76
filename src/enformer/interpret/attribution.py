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

import logging
import os
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal, get_args

import numpy as np
import torch
import torch.nn.functional as F

from ..data.sequence import one_hot, reverse_complement
from ..inference.engine import check_shifts
from ..io.progress import progress_bar
from ..model.geometry import OutputGeometry, output_geometry
from ..runtime import parse_device
from .files import write_arrays, write_bigwig
from .state import model_state
from .target import Target, gene_target, tss_bins

if TYPE_CHECKING:
    from ..model.enformer import Enformer

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
METHODS: tuple[str, ...] = get_args(Method)
"""Names accepted by :func:`contribution_scores` ``method=``."""

# Checkpointing is switched on by default when length x channels reaches this (the
# official model at 196,608 bp is ~3e8; the tiny test model ~1e5).
_AUTO_CHECKPOINT = 2**25


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
        head_layer = model.heads[head]  # Enformer: Linear + softplus; Borzoi: the Linear
        linear = getattr(head_layer, "linear", head_layer)
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
    sums = torch.zeros(2, n_seq, dtype=torch.float64)  # f(x) and f(baseline), per sequence
    per_copy = n_seq * (steps if method == "integrated_gradients" else 1)
    bar = progress_bar(len(copies) * per_copy, f"attribution ({method})", progress, unit="input")
    try:
        with model_state(model, device=dev, checkpointing=checkpointing):
            for copy in copies:
                copy_bins = [geometry.n_bins - 1 - b for b in bins] if copy.flip else bins
                copy_tracks = [int(perm[t]) for t in tracks] if copy.flip else tracks
                readout = _Readout(model, target.head, copy_bins, copy_tracks, target.reduce)
                xc = copy.forward(xt)
                bc = None if baseline_t is None else copy.forward(baseline_t)
                contrib = _explain(readout, xc, bc, method, steps, batch_size, sums, bar)
                back, covered = copy.back(contrib)
                total += back
                cover += covered
    finally:
        bar.close()
    scores = (total / cover.clamp(min=1)[None, :, None]).float().cpu().numpy()
    values, base_values = sums / len(copies)
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


def _explain(
    readout: _Readout,
    xc: torch.Tensor,
    bc: torch.Tensor | None,
    method: str,
    steps: int,
    batch_size: int,
    sums: torch.Tensor,
    bar: Any,
) -> torch.Tensor:
    """Contributions ``(B, L, 4)`` for one copy ``xc`` (its baseline ``bc``), in its own frame.

    Adds the copy's target values to ``sums[0]`` (and, for integrated gradients, the
    baseline's to ``sums[1]``).
    """
    if method == "integrated_gradients":
        assert bc is not None
        contrib = torch.empty_like(xc)
        for i in range(xc.shape[0]):
            mean_grad, v, v0 = _integrated(readout, xc[i], bc[i], steps, batch_size)
            contrib[i] = (xc[i] - bc[i]) * mean_grad
            sums[0, i] += v
            sums[1, i] += v0
            bar.update(steps)
        return contrib
    grads = torch.empty_like(xc)
    for lo in range(0, xc.shape[0], batch_size):
        g, v = _grad(readout, xc[lo : lo + batch_size])
        grads[lo : lo + batch_size] = g
        sums[0, lo : lo + batch_size] += v.double().cpu()
        bar.update(len(v))
    return grads * xc if method == "grad_x_input" else grads


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
    return write_arrays(path, arrays, meta, what="attribution")
