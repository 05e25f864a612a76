"""Predict reference and alternative windows: the naive predictor and the exact-reuse one.

Both have one signature (:data:`PredictAlleles`) and give the same numbers to float32 rounding:

* :func:`predict_alleles` runs full forward passes of every window (the reference
  implementation the fast one is checked against).
* :func:`predict_alleles_reuse` runs the conv stages once per reference window and copy
  (shift, strand); each alternative derived from it (``ref_index``) recomputes only the conv
  rows its changed bases reach (:mod:`enformer.model.reuse`), then the transformer and the
  head run for all alleles in batches, for the requested tracks only. The saving is largest
  when many alleles share a window (variant grouping): the conv stages are about 70 % of a
  forward pass at the official size.

The scorer picks one with :func:`resolve_predictor`: ``'reuse'`` (the default), ``'naive'``
or any callable with the same signature.
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable, Iterator, Sequence
from typing import NamedTuple

import numpy as np
import torch

from ..inference.engine import Engine
from ..model.config import EnformerConfig
from ..model.geometry import output_geometry
from ..model.reuse import conv_activations, conv_tower_for, forward_from_tower
from ..runtime import parse_device

__all__ = [
    "PREDICTORS",
    "AllelePredictions",
    "PredictAlleles",
    "model_on",
    "predict_alleles",
    "predict_alleles_reuse",
    "resolve_predictor",
]

class AllelePredictions(NamedTuple):
    """Predictions of reference and alternative windows.

    Attributes
    ----------
    ref : numpy.ndarray
        float32 ``(G, bins, tracks)``, one per reference window.
    alt : numpy.ndarray
        float32 ``(V, bins, tracks)``, one per alternative window.
    """

    ref: np.ndarray
    alt: np.ndarray


PredictAlleles = Callable[..., AllelePredictions]


def _checked_inputs(
    config: EnformerConfig,
    head: str,
    tracks: Sequence[int] | None,
    ref_onehot: np.ndarray | torch.Tensor,
    alt_onehot: np.ndarray | torch.Tensor,
) -> tuple[list[int], torch.Tensor, torch.Tensor]:
    """The head's chosen tracks and the windows as tensors; a clear error for bad ones."""
    if head not in config.heads:
        raise ValueError(f"the model has no head {head!r}; it has {', '.join(config.heads)}")
    chosen = list(range(config.heads[head])) if tracks is None else [int(t) for t in tracks]
    ref = torch.as_tensor(ref_onehot)
    alt = torch.as_tensor(alt_onehot)
    if ref.dim() != 3 or alt.dim() != 3 or ref.shape[1:] != alt.shape[1:] or ref.shape[-1] != 4:
        raise ValueError(
            "ref_onehot and alt_onehot must be (n, length, 4) with equal lengths, got "
            f"{tuple(ref.shape)} and {tuple(alt.shape)}"
        )
    return chosen, ref, alt


def _no_predictions(config: EnformerConfig, length: int, n: int, chosen: list[int]) -> np.ndarray:
    """Zero float32 ``(n, bins, tracks)``: what an allele set without references predicts."""
    bins = output_geometry(config, length).n_bins
    return np.zeros((n, bins, len(chosen)), dtype=np.float32)


def predict_alleles(
    model: torch.nn.Module,
    ref_onehot: np.ndarray | torch.Tensor,
    alt_onehot: np.ndarray | torch.Tensor,
    *,
    ref_index: np.ndarray | None = None,
    head: str = "human",
    tracks: Sequence[int] | None = None,
    strand_pairs: np.ndarray | None = None,
    rc: bool = False,
    shifts: Sequence[int] = (0,),
    batch_size: int = 1,
    device: str | torch.device | None = None,
) -> AllelePredictions:
    """Predict reference and alternative windows, averaged over shift and strand copies.

    This naive implementation runs full forward passes of every window. It is the reference
    the faster exact-reuse implementations are checked against; they keep this signature.

    Parameters
    ----------
    model : torch.nn.Module
        An :class:`~enformer.model.Enformer`; its device and train/eval mode are restored.
    ref_onehot : numpy.ndarray or torch.Tensor
        ``(G, L + 2 * m, 4)`` one-hot reference windows, ``m = max(|shifts|)`` extra genome
        bases on each side (the copy shifted by ``s`` reads rows ``m + s .. m + s + L``).
    alt_onehot : numpy.ndarray or torch.Tensor
        ``(V, L + 2 * m, 4)`` alternative windows.
    ref_index : numpy.ndarray, optional
        ``(V,)`` row of ``ref_onehot`` each alternative derives from. Unused here; a reuse
        implementation uses it to find shared computation.
    head : str, optional
        Head to read.
    tracks : sequence of int, optional
        Output tracks to keep, in this order (default: all of the head).
    strand_pairs : numpy.ndarray, optional
        Strand-pair permutation of **all** of the head's tracks, used for reverse-complement
        copies (identity if ``None``).
    rc : bool, optional
        Average in reverse-complement copies (bins flipped back, strand pairs swapped).
    shifts : sequence of int, optional
        Shifts (bp) whose copies are averaged.
    batch_size : int, optional
        Sequences per forward pass (copies count).
    device : str or torch.device, optional
        Device to run on (default: the model's).

    Returns
    -------
    AllelePredictions
        float32 ``ref`` ``(G, bins, k)`` and ``alt`` ``(V, bins, k)``.
    """
    del ref_index  # only a hint for reuse implementations
    config = model.config
    chosen, ref, alt = _checked_inputs(config, head, tracks, ref_onehot, alt_onehot)
    engine = Engine(
        model,
        heads=[head],
        tracks={head: chosen},
        strand_pairs={head: strand_pairs},
        rc=rc,
        shifts=shifts,
        batch_size=batch_size,
        device=device,
    )
    outputs: list[np.ndarray] = []
    with engine:
        for x in (ref, alt):
            parts = [
                engine.run(x[lo : lo + engine.chunk_size])[head]
                for lo in range(0, x.shape[0], engine.chunk_size)
            ]
            if parts:
                outputs.append(np.concatenate(parts))
            else:
                outputs.append(_no_predictions(config, x.shape[1] - 2 * engine.margin, 0, chosen))
    return AllelePredictions(outputs[0], outputs[1])


# The full-forward implementation; the default scorer uses the exact-reuse one instead


@contextlib.contextmanager
def model_on(model: torch.nn.Module, device: torch.device) -> Iterator[None]:
    """Move the model to ``device`` in eval mode for the block; restore it afterwards."""
    training = model.training
    try:
        original = next(model.parameters()).device
    except StopIteration:
        original = device
    try:
        if original != device:
            model.to(device)
        model.eval()
        yield
    finally:
        if original != device:
            model.to(original)
        model.train(training)


def predict_alleles_reuse(
    model: torch.nn.Module,
    ref_onehot: np.ndarray | torch.Tensor,
    alt_onehot: np.ndarray | torch.Tensor,
    *,
    ref_index: np.ndarray | None = None,
    head: str = "human",
    tracks: Sequence[int] | None = None,
    strand_pairs: np.ndarray | None = None,
    rc: bool = False,
    shifts: Sequence[int] = (0,),
    batch_size: int = 1,
    device: str | torch.device | None = None,
) -> AllelePredictions:
    """Predict reference and alternative windows, reusing the reference's conv activations.

    Parameters and returns are those of :func:`predict_alleles`;
    ``ref_index`` (``(V,)``, the reference row of each alternative) is required unless
    there is one alternative per reference.

    Every family reuses: Enformer its stem and conv tower, Borzoi and Flashzoi their local
    stages and U-Net skip projections (:mod:`enformer.model.reuse`).
    """
    config = model.config
    chosen, ref, alt = _checked_inputs(config, head, tracks, ref_onehot, alt_onehot)
    if ref_index is None:
        if ref.shape[0] != alt.shape[0]:
            raise ValueError(
                "ref_index is needed when references and alternatives differ in number"
            )
        ref_index = np.arange(alt.shape[0])
    ref_index = np.asarray(ref_index, dtype=np.int64)
    shifts = [int(s) for s in shifts]
    margin = max(abs(s) for s in shifts)
    length = ref.shape[1] - 2 * margin
    flips = (False, True) if rc else (False,)
    copies = len(shifts) * len(flips)
    dev = parse_device(device) if device is not None else next(model.parameters()).device
    idx = torch.as_tensor(chosen, dtype=torch.long)
    rc_idx = idx if strand_pairs is None else torch.as_tensor(np.asarray(strand_pairs))[idx]
    step = max(1, int(batch_size))

    ref_sum: torch.Tensor | None = None
    alt_sum: torch.Tensor | None = None
    with model_on(model, dev), torch.inference_mode():
        idx_d, rc_idx_d = idx.to(dev), rc_idx.long().to(dev)
        for g in range(ref.shape[0]):
            alts = np.nonzero(ref_index == g)[0]
            for s in shifts:
                for flip in flips:
                    cols = rc_idx_d if flip else idx_d

                    def window(x: torch.Tensor, s: int = s, flip: bool = flip) -> torch.Tensor:
                        w = x[margin + s : margin + s + length].to(dev, torch.float32)
                        return torch.flip(w, dims=(0, 1)) if flip else w

                    acts = conv_activations(model, window(ref[g]))
                    towers = [acts.tower] + [
                        conv_tower_for(model, acts, window(alt[v])) for v in alts
                    ]
                    del acts
                    outs = []
                    for lo in range(0, len(towers), step):
                        batch = torch.stack(towers[lo : lo + step])  # (b, T, C)
                        y = forward_from_tower(model, batch, heads=[head], tracks={head: cols})
                        outs.append(y[head])
                    y = torch.cat(outs).float()  # (1 + n_alt, bins, k)
                    if flip:
                        y = torch.flip(y, dims=(1,))
                    if ref_sum is None:
                        ref_sum = y.new_zeros((ref.shape[0], *y.shape[1:]))
                        alt_sum = y.new_zeros((alt.shape[0], *y.shape[1:]))
                    ref_sum[g] += y[0]
                    if len(alts):
                        alt_sum[torch.as_tensor(alts, device=dev)] += y[1:]
    if ref_sum is None:  # no references at all
        return AllelePredictions(
            _no_predictions(config, length, 0, chosen),
            _no_predictions(config, length, alt.shape[0], chosen),
        )
    return AllelePredictions(
        (ref_sum / copies).cpu().numpy().astype(np.float32),
        (alt_sum / copies).cpu().numpy().astype(np.float32),
    )


PREDICTORS: dict[str, PredictAlleles] = {"reuse": predict_alleles_reuse, "naive": predict_alleles}
"""Predictors by name: ``'reuse'`` (exact conv-tower reuse, the default) and ``'naive'``."""


def resolve_predictor(predictor: str | PredictAlleles | None) -> PredictAlleles:
    """The predictor to run: a name of :data:`PREDICTORS`, a callable, or ``None`` (reuse).

    Parameters
    ----------
    predictor : str, callable or None
        ``'reuse'``, ``'naive'``, a function with the signature of :func:`predict_alleles`,
        or ``None`` for ``'reuse'``.

    Returns
    -------
    callable
        The predictor.

    Raises
    ------
    ValueError
        For an unknown name.
    """
    if predictor is None:
        return predict_alleles_reuse
    if callable(predictor):
        return predictor
    if predictor not in PREDICTORS:
        raise ValueError(
            f"unknown predictor {predictor!r}; choose {', '.join(map(repr, PREDICTORS))} or "
            "pass a function with the signature of predict_alleles"
        )
    return PREDICTORS[predictor]
