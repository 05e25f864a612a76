"""Attention maps: the transformer's softmax weights, per layer and head.

:func:`capture_attention` runs the model once with a hook on the chosen layers'
:class:`~enformer.model.attention.MultiheadAttention` modules (``attention_hook``; unused it
costs nothing) and returns :class:`AttentionMaps`. Hooks set before the call are put back
afterwards, even on error.

Bins
----
The transformer sees **every** bin of the input, ``T = L / bin_size`` (1,536 for the published
model), before the crop to the output bins. Row ``i`` of a map is how bin ``i`` (the query)
distributes its attention over all bins (the keys); rows sum to 1. Output bin ``j`` of the
model's predictions is attention bin ``j + crop`` (320 for the published model);
:meth:`AttentionMaps.output_bin` converts, and :meth:`AttentionMaps.bin_of` maps an input
position (e.g. a TSS) to its attention bin.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING

import numpy as np
import torch

from ..data.sequence import one_hot
from .state import model_state

if TYPE_CHECKING:
    from ..model.enformer import Enformer

__all__ = ["AttentionMaps", "capture_attention"]

logger = logging.getLogger(__name__)


@dataclass
class AttentionMaps:
    """Softmax attention weights of one sequence.

    Attributes
    ----------
    weights : numpy.ndarray
        float32 ``(layers, heads, T, T)``; ``weights[l, h, i, j]`` is the weight query bin ``i``
        gives key bin ``j`` in layer ``layers[l]``, head ``heads[h]``. With
        ``average_heads=True`` the head axis has length 1 (the mean over heads).
    layers : list of int
        Transformer layers captured (0-based).
    heads : list of int or None
        Heads captured; ``None`` when the maps are the mean over all heads.
    bin_size : int
        Base pairs per bin.
    crop : int
        Bins cropped on each side before the output: output bin ``j`` is bin ``j + crop``.
    input_offset : int
        Input position of bin 0 (non-zero only for inputs the model centre-crops).
    description : str
        The model's ``config.description``.
    """

    weights: np.ndarray
    layers: list[int]
    heads: list[int] | None
    bin_size: int
    crop: int
    input_offset: int = 0
    description: str = ""

    @property
    def n_bins(self) -> int:
        """Number of bins ``T``."""
        return int(self.weights.shape[-1])

    def _select(self, layer: int | Sequence[int] | None, head: int | Sequence[int] | None):
        w = self.weights
        if layer is not None:
            wanted = [layer] if isinstance(layer, int) else list(layer)
            missing = [v for v in wanted if v not in self.layers]
            if missing:
                raise ValueError(f"layer {missing[0]} was not captured (have {self.layers})")
            w = w[[self.layers.index(v) for v in wanted]]
        if head is not None:
            if self.heads is None:
                raise ValueError("these maps are averaged over heads; capture per head to select")
            wanted = [head] if isinstance(head, int) else list(head)
            missing = [v for v in wanted if v not in self.heads]
            if missing:
                raise ValueError(f"head {missing[0]} was not captured (have {self.heads})")
            w = w[:, [self.heads.index(v) for v in wanted]]
        return w

    def map(
        self, layer: int | Sequence[int] | None = None, head: int | Sequence[int] | None = None
    ) -> np.ndarray:
        """Mean ``(T, T)`` map over the chosen layers and heads (default: all captured).

        Parameters
        ----------
        layer : int or sequence of int, optional
            Layers to average.
        head : int or sequence of int, optional
            Heads to average.

        Returns
        -------
        numpy.ndarray
            ``(T, T)``; rows sum to 1.
        """
        return self._select(layer, head).mean(axis=(0, 1))

    def from_bin(
        self,
        query: int,
        layer: int | Sequence[int] | None = None,
        head: int | Sequence[int] | None = None,
    ) -> np.ndarray:
        """Attention from one query bin to every bin, averaged over layers and heads.

        Parameters
        ----------
        query : int
            Attention bin of the query (see :meth:`output_bin`, :meth:`bin_of`).
        layer, head : int or sequence of int, optional
            What to average over (default: everything captured).

        Returns
        -------
        numpy.ndarray
            ``(T,)``, sums to 1.
        """
        if not 0 <= query < self.n_bins:
            raise ValueError(f"query bin {query} is outside 0..{self.n_bins - 1}")
        return self._select(layer, head)[..., query, :].mean(axis=(0, 1))

    def to_bin(
        self,
        key: int,
        layer: int | Sequence[int] | None = None,
        head: int | Sequence[int] | None = None,
    ) -> np.ndarray:
        """Attention every query bin gives the key bin ``key``: ``(T,)``, averaged over
        ``layer`` and ``head`` as in :meth:`from_bin` (each query's row sums to 1, this
        column need not)."""
        if not 0 <= key < self.n_bins:
            raise ValueError(f"key bin {key} is outside 0..{self.n_bins - 1}")
        return self._select(layer, head)[..., :, key].mean(axis=(0, 1))

    def output_bin(self, j: int) -> int:
        """Attention bin of output bin ``j``."""
        return int(j) + self.crop

    def bin_of(self, position: int) -> int:
        """Attention bin holding input position ``position`` (0-based)."""
        b = (int(position) - self.input_offset) // self.bin_size
        if not 0 <= b < self.n_bins:
            raise ValueError(f"input position {position} is not covered by the attention bins")
        return b

    def distance_profile(
        self, layer: int | Sequence[int] | None = None, head: int | Sequence[int] | None = None
    ) -> tuple[np.ndarray, np.ndarray]:
        """Mean attention by relative distance (key minus query, in bins).

        Returns
        -------
        distances : numpy.ndarray
            ``(2T - 1,)`` int, ``-(T-1) .. T-1``.
        mean : numpy.ndarray
            ``(2T - 1,)`` mean weight at each distance over all queries.
        """
        w = self.map(layer, head)
        t = self.n_bins
        d = np.arange(-(t - 1), t)
        out = np.array([np.diagonal(w, offset=k).mean() for k in d], dtype=np.float64)
        return d, out


def capture_attention(
    model: Enformer,
    x: torch.Tensor | np.ndarray | str,
    *,
    layers: Sequence[int] | None = None,
    heads: Sequence[int] | None = None,
    average_heads: bool = False,
    device: str | torch.device | None = None,
) -> AttentionMaps:
    """Capture the softmax attention weights of one sequence.

    Parameters
    ----------
    model : Enformer
        The model; run in eval mode (restored afterwards, as are its device and any hooks
        set on its attention modules).
    x : torch.Tensor, numpy.ndarray or str
        One-hot ``(L, 4)`` or ``(1, L, 4)``, or a DNA string.
    layers : sequence of int, optional
        Transformer layers to capture (default all). Layers after the last one chosen are
        not run.
    heads : sequence of int, optional
        Heads to keep (default all).
    average_heads : bool, optional
        Keep only the mean over the chosen heads (saves memory: the published model's
        11 layers x 8 heads x 1,536^2 maps take 830 MB in float32).
    device : str or torch.device, optional
        Where to compute.

    Returns
    -------
    AttentionMaps
        ``(layers, heads, T, T)`` weights.

    Raises
    ------
    ValueError
        On a bad shape or an out-of-range layer or head.
    """
    config = model.config
    n_layers, n_heads = config.num_transformer_layers, config.num_heads
    layer_list = list(range(n_layers)) if layers is None else [int(v) for v in layers]
    head_list = list(range(n_heads)) if heads is None else [int(v) for v in heads]
    if not layer_list or any(not 0 <= v < n_layers for v in layer_list):
        raise ValueError(f"layers must be a non-empty selection of 0..{n_layers - 1}")
    if not head_list or any(not 0 <= v < n_heads for v in head_list):
        raise ValueError(f"heads must be a non-empty selection of 0..{n_heads - 1}")
    if isinstance(x, str):
        x = one_hot(x, ambiguous="n")
    xt = torch.as_tensor(np.asarray(x) if not isinstance(x, torch.Tensor) else x)
    if xt.dim() == 2:
        xt = xt[None]
    if xt.dim() != 3 or xt.shape[0] != 1 or xt.shape[-1] != 4:
        raise ValueError(f"expected one sequence (L, 4) or (1, L, 4), got {tuple(xt.shape)}")
    length = xt.shape[1]

    captured: dict[int, torch.Tensor] = {}
    head_idx = torch.tensor(head_list, dtype=torch.long)

    def make_hook(j: int):
        def hook(module: torch.nn.Module, weights: torch.Tensor) -> None:
            w = weights[0].index_select(0, head_idx.to(weights.device))  # (H', T, T)
            if average_heads:
                w = w.mean(0, keepdim=True)
            captured[j] = w.float().cpu()

        return hook

    blocks = model.trunk.transformer
    modules = {j: blocks[j].mha.attention for j in layer_list}
    saved = {j: m.attention_hook for j, m in modules.items()}
    dev = torch.device(device) if device is not None else model.device
    try:
        for j, m in modules.items():
            m.attention_hook = make_hook(j)
        with model_state(model, device=dev, freeze=False), torch.inference_mode():
            h = model.trunk.conv(model._prepare(xt.to(dev)))  # (1, T, C)
            for j in range(max(layer_list) + 1):
                h = blocks[j](h)
    finally:
        for j, m in modules.items():
            m.attention_hook = saved[j]
    weights = torch.stack([captured[j] for j in layer_list]).numpy()  # (layers, H', T, T)
    t = weights.shape[-1]
    out_bins = config.output_bins(length)
    effective = config.sequence_length if length == 2 * config.sequence_length else length
    return AttentionMaps(
        weights=weights,
        layers=layer_list,
        heads=None if average_heads else head_list,
        bin_size=config.bin_size,
        crop=(t - out_bins) // 2,
        input_offset=(length - effective) // 2,
        description=config.description,
    )
