"""Attention figures: a layer's (or the mean) attention map, and one bin's attention profile.

Re-exported by :mod:`enformer.interpret.plots`, where the other figures live; built from the
same blocks (:mod:`enformer.interpret.figure`).
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

import numpy as np

from .figure import (
    add_title,
    draw_genes,
    figure_doc,
    finish,
    gene_panel,
    genes_in,
    legend_above,
    new_figure,
    plain_axes,
    region_axis,
    stacked_axes,
)

if TYPE_CHECKING:
    from matplotlib.figure import Figure

    from ..data.annotation import Gene
    from .attention import AttentionMaps

__all__ = ["plot_attention", "plot_attention_profile"]


@figure_doc
def plot_attention(
    maps: AttentionMaps,
    *,
    layer: int | Sequence[int] | None = None,
    head: int | Sequence[int] | None = None,
    log: bool = True,
    bins: tuple[int, int] | None = None,
    query: int | None = None,
    title: str | None = None,
    description: str | None = None,
    size: float = 6.5,
    path: str | os.PathLike[str] | None = None,
) -> Figure:
    """Attention map (query bins x key bins), logarithmic colour scale by default.

    Parameters
    ----------
    maps : AttentionMaps
        Captured weights.
    layer, head : int or sequence of int, optional
        What to average (default all captured).
    log : bool, optional
        Logarithmic colour scale (attention spans orders of magnitude).
    bins : (int, int), optional
        ``[lo, hi)`` bin range to show (default all).
    query : int, optional
        A query bin to mark (e.g. the TSS bin).
    title : str, optional
        Title.
    description : str, optional
        Model description (default the maps').
    size : float, optional
        Figure size in inches.
    """
    from matplotlib.colors import LogNorm, Normalize

    w = maps.map(layer, head)
    lo, hi = bins if bins is not None else (0, maps.n_bins)
    w = w[lo:hi, lo:hi]
    fig = new_figure(size + 1.0, size)
    ax = fig.subplots()
    positive = w[w > 0]
    if log and positive.size:
        vmin = max(float(positive.min()), float(w.max()) * 1e-6)
        norm: Normalize = LogNorm(vmin=vmin, vmax=float(w.max()))
        w = np.clip(w, vmin, None)
    else:
        norm = Normalize(vmin=0.0, vmax=float(w.max()) or 1.0)
    img = ax.imshow(
        w, cmap="viridis", norm=norm, origin="upper", interpolation="nearest",
        extent=(lo - 0.5, hi - 0.5, hi - 0.5, lo - 0.5),
    )  # fmt: skip
    out_lo, out_hi = maps.crop, maps.n_bins - maps.crop
    if maps.crop > 0:
        for v in (out_lo - 0.5, out_hi - 0.5):
            if lo <= v <= hi:
                ax.axvline(v, color="w", ls="--", lw=0.8)
                ax.axhline(v, color="w", ls="--", lw=0.8)
    if query is not None:
        ax.axhline(query, color="r", lw=0.8)
    ax.set_xlabel(f"key bin ({maps.bin_size} bp; output bins {out_lo}-{out_hi - 1} dashed)")
    ax.set_ylabel("query bin")
    cbar = fig.colorbar(img, ax=ax, shrink=0.85)
    cbar.set_label("attention weight" + (" (log scale)" if log else ""))
    what = _which(maps, layer, head)
    add_title(fig, title or f"attention, {what}", description or maps.description)
    return finish(fig, path)


def _which(maps: AttentionMaps, layer: Any, head: Any) -> str:
    lay = "mean over layers" if layer is None and len(maps.layers) > 1 else f"layer {layer}"
    if layer is None and len(maps.layers) == 1:
        lay = f"layer {maps.layers[0]}"
    if maps.heads is None:
        hd = "mean over heads"
    elif head is None:
        hd = "mean over heads" if len(maps.heads) > 1 else f"head {maps.heads[0]}"
    else:
        hd = f"head {head}"
    return f"{lay}, {hd}"


@figure_doc
def plot_attention_profile(
    maps: AttentionMaps,
    query: int,
    *,
    layer: int | Sequence[int] | None = None,
    head: int | Sequence[int] | None = None,
    chrom: str | None = None,
    input_start: int | None = None,
    genes: Sequence[Gene] | None = None,
    gtf: str | os.PathLike[str] | None = None,
    query_label: str = "query",
    log: bool = True,
    title: str | None = None,
    description: str | None = None,
    width: float = 10.0,
    path: str | os.PathLike[str] | None = None,
) -> Figure:
    """Attention from one bin (e.g. a TSS) to every other bin, with genes underneath.

    Parameters
    ----------
    maps : AttentionMaps
        Weights from :func:`~enformer.interpret.capture_attention`.
    query : int
        Attention bin of the query (:meth:`AttentionMaps.bin_of`).
    layer, head : int or sequence of int, optional
        What to average (default all captured).
    chrom : str, optional
        Chromosome.
    input_start : int, optional
        0-based genomic position of input index 0; with it the x axis is genomic.
    genes, gtf : optional
        Gene annotation (needs ``chrom`` and ``input_start``).
    query_label : str, optional
        Name of the query on the plot (e.g. ``'TSS'``).
    log : bool, optional
        Logarithmic y axis.
    title : str, optional
        Title.
    description : str, optional
        Model description (default the maps').
    width : float, optional
        Figure width in inches.
    """
    profile = maps.from_bin(query, layer, head)
    t = maps.n_bins
    genomic = input_start is not None
    x0 = (input_start + maps.input_offset) if genomic else 0  # type: ignore[operator]
    step = maps.bin_size if genomic else 1
    lo, hi = x0, x0 + t * step
    shown = genes_in(genes, gtf, chrom, lo, hi) if genomic else None
    fig, axes = stacked_axes(width, [2.2] + gene_panel(shown, lo, hi), 1.0)
    ax = axes[0]
    edges = x0 + step * np.arange(t + 1)
    ax.step(edges, np.append(profile, profile[-1]), where="post", color="#1f77b4", lw=0.9)
    if log:
        ax.set_yscale("log")
    q = x0 + step * (query + 0.5)
    ax.axvline(q, color="r", lw=0.8, label=f"{query_label} (bin {query})")
    if maps.crop > 0:
        ax.axvspan(x0, x0 + step * maps.crop, color="0.85", lw=0, label="cropped (not output)")
        ax.axvspan(x0 + step * (t - maps.crop), hi, color="0.85", lw=0)
    ax.set_ylabel("attention weight", fontsize=8)
    legend_above(ax)
    plain_axes(ax)
    if shown is not None:
        draw_genes(axes[-1], shown, chrom or "", lo, hi)
    if genomic:
        region_axis(axes[-1], chrom, lo, hi)
    else:
        axes[-1].set_xlim(lo, hi)
        axes[-1].set_xlabel(f"key bin ({maps.bin_size} bp)")
    what = _which(maps, layer, head)
    default = f"attention from {query_label} bin {query} to every bin, {what}"
    add_title(fig, title or default, description or maps.description)
    return finish(fig, path)
