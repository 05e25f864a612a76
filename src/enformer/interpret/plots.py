"""Plots: tracks with gene annotation, variants, contribution logos, ISM and attention maps.

Every function returns a :class:`matplotlib.figure.Figure` built without ``pyplot`` (so no
GUI backend is ever touched and nothing global changes) and, with ``path=``, saves it (PNG,
SVG or PDF by the suffix). matplotlib and logomaker are imported when a plot is made, so the
rest of the package does not need them (``pip install 'enformer[plot]'``).

Titles carry the model's ``config.description`` when it is set (e.g. a "mini model"), so a
figure always says what made it.
"""

from __future__ import annotations

import logging
import os
import textwrap
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

import numpy as np

from .attention_plots import plot_attention, plot_attention_profile
from .figure import (
    add_title,
    figure_doc,
    corner_label,
    draw_genes,
    finish,
    gene_panel,
    genes_in,
    genomic_axis,
    legend_above,
    new_figure,
    plain_axes,
    region_axis,
    save_figure,
    stacked_axes,
    step_area,
)

if TYPE_CHECKING:
    from matplotlib.axes import Axes
    from matplotlib.figure import Figure

    from ..data.annotation import Gene
    from .attribution import Attribution
    from .ism import ISM

__all__ = [
    "draw_genes",
    "peak_window",
    "plot_attention",
    "plot_attention_profile",
    "plot_attribution",
    "plot_ism",
    "plot_logo",
    "plot_roc",
    "plot_tracks",
    "plot_variant",
    "save_figure",
]

logger = logging.getLogger(__name__)

_BASES = "ACGT"
_TRACK_COLORS = ("#1f77b4", "#2ca02c", "#9467bd", "#8c564b", "#17becf", "#bcbd22")
_LOGO_MAX = 2000


# --------------------------------------------------------------------------------------
# Tracks
# --------------------------------------------------------------------------------------


@figure_doc
def plot_tracks(
    values: np.ndarray,
    *,
    chrom: str | None = None,
    start: int = 0,
    bin_size: int = 128,
    labels: Sequence[str] | None = None,
    genes: Sequence[Gene] | None = None,
    gtf: str | os.PathLike[str] | None = None,
    highlight: Sequence[tuple[int, int]] = (),
    title: str | None = None,
    description: str | None = None,
    track_height: float = 1.0,
    width: float = 10.0,
    path: str | os.PathLike[str] | None = None,
) -> Figure:
    """Predicted (or measured) tracks over a region, one row per track, genes underneath.

    Parameters
    ----------
    values : numpy.ndarray
        ``(bins, tracks)`` (or ``(bins,)``) values.
    chrom : str, optional
        Chromosome (needed for gene annotation).
    start : int, optional
        0-based genomic start of bin 0 (e.g. window start + output offset).
    bin_size : int, optional
        Base pairs per bin.
    labels : sequence of str, optional
        One label per track (identifier and description).
    genes : sequence of Gene, optional
        Genes to draw (e.g. from :func:`enformer.data.annotation.read_gtf`).
    gtf : str or os.PathLike, optional
        GTF to read the region's genes from (instead of ``genes``).
    highlight : sequence of (int, int), optional
        Genomic spans to shade (e.g. the target bins).
    title : str, optional
        Figure title.
    description : str, optional
        The model's description, appended to the title.
    track_height : float, optional
        Inches per track row.
    width : float, optional
        Figure width in inches.
    """
    values = np.asarray(values, dtype=np.float64)
    if values.ndim == 1:
        values = values[:, None]
    n_bins, n_tracks = values.shape
    end = start + n_bins * bin_size
    labels = list(labels) if labels is not None else [f"track {i}" for i in range(n_tracks)]
    if len(labels) != n_tracks:
        raise ValueError(f"{len(labels)} labels for {n_tracks} tracks")
    shown = genes_in(genes, gtf, chrom, start, end)
    fig, axes = stacked_axes(width, [track_height] * n_tracks + gene_panel(shown, start, end), 0.9)
    for i in range(n_tracks):
        ax = axes[i]
        step_area(ax, start, bin_size, values[:, i], _TRACK_COLORS[i % len(_TRACK_COLORS)])
        top = float(np.nanmax(values[:, i])) if n_bins else 1.0
        ax.set_ylim(min(0.0, float(np.nanmin(values[:, i]))), top * 1.15 if top > 0 else 1.0)
        corner_label(ax, labels[i])
        ax.tick_params(axis="y", labelsize=7)
        for s, e in highlight:
            ax.axvspan(s, e, color="orange", alpha=0.25, lw=0)
        plain_axes(ax)
    if shown is not None:
        draw_genes(axes[-1], shown, chrom or "", start, end)
    region_axis(axes[-1], chrom, start, end)
    add_title(fig, title, description)
    return finish(fig, path)


@figure_doc
def plot_variant(
    ref: np.ndarray,
    alt: np.ndarray,
    *,
    chrom: str | None = None,
    start: int = 0,
    bin_size: int = 128,
    position: int | None = None,
    variant: str | None = None,
    labels: Sequence[str] | None = None,
    genes: Sequence[Gene] | None = None,
    gtf: str | os.PathLike[str] | None = None,
    title: str | None = None,
    description: str | None = None,
    width: float = 10.0,
    path: str | os.PathLike[str] | None = None,
    gene_effects: Sequence[tuple[str, int, float]] | None = None,
    effect_label: str = "effect",
) -> Figure:
    """Reference and alternative predictions of a variant, and their difference, per track.

    Each track gets two rows: the reference (grey area) with the alternative (coloured line)
    over it, and ``alt - ref`` (red up, blue down). With ``gene_effects`` (``(gene name, TSS
    position, value)``, e.g. each gene's logSED from ``enformer score --genes``) a last row
    draws each gene's effect as a bar at its TSS, named: the plot to send a collaborator.

    Parameters
    ----------
    ref, alt : numpy.ndarray
        ``(bins, tracks)`` (or ``(bins,)``) predictions.
    chrom : str, optional
        Chromosome.
    start : int, optional
        0-based genomic start of bin 0.
    bin_size : int, optional
        Base pairs per bin.
    position : int, optional
        0-based genomic position of the variant (a dashed line).
    variant : str, optional
        Variant label, e.g. ``'chr1:14677:G>A'``.
    labels : sequence of str, optional
        Track labels.
    genes, gtf : optional
        Gene annotation (see :func:`plot_tracks`).
    title : str, optional
        Title (default names the variant).
    description : str, optional
        The model's description.
    width : float, optional
        Figure width in inches.
    gene_effects : sequence of (str, int, float), optional
        Per gene: name, 0-based TSS position and effect (genes outside the window are left
        out).
    effect_label : str, optional
        Y label of the gene-effect row, e.g. ``'logSED (CAGE)'``.
    """
    ref = np.asarray(ref, dtype=np.float64)
    alt = np.asarray(alt, dtype=np.float64)
    if ref.ndim == 1:
        ref, alt = ref[:, None], alt[:, None]
    if ref.shape != alt.shape:
        raise ValueError(f"ref {ref.shape} and alt {alt.shape} differ in shape")
    n_bins, n_tracks = ref.shape
    end = start + n_bins * bin_size
    labels = list(labels) if labels is not None else [f"track {i}" for i in range(n_tracks)]
    shown = genes_in(genes, gtf, chrom, start, end)
    effects = [(g, int(t), float(v)) for g, t, v in gene_effects or () if start <= t < end]
    heights = [1.0, 0.7] * n_tracks + ([1.0] if effects else []) + gene_panel(shown, start, end)
    fig, axes = stacked_axes(width, heights, 1.0)
    if effects:
        _gene_effect_row(axes[2 * n_tracks], effects, end - start, effect_label)
    edges = start + bin_size * np.arange(n_bins + 1)
    for i in range(n_tracks):
        ax, axd = axes[2 * i], axes[2 * i + 1]
        color = _TRACK_COLORS[i % len(_TRACK_COLORS)]
        step_area(ax, start, bin_size, ref[:, i], "0.7", label="ref")
        ax.step(edges, np.append(alt[:, i], alt[-1, i]), where="post", color=color, lw=1.0,
                label="alt")  # fmt: skip
        top = float(max(ref[:, i].max(), alt[:, i].max()))
        ax.set_ylim(0, top * 1.4 if top > 0 else 1.0)
        corner_label(ax, labels[i])
        ax.legend(loc="upper right", fontsize=7, frameon=False, ncol=2)
        diff = alt[:, i] - ref[:, i]
        centres = start + bin_size * (np.arange(n_bins) + 0.5)
        axd.bar(centres, diff, width=bin_size, color=np.where(diff >= 0, "#d62728", "#1f77b4"),
                lw=0)  # fmt: skip
        axd.axhline(0, color="0.3", lw=0.5)
        m = float(np.abs(diff).max())
        axd.set_ylim(-m * 1.15 if m > 0 else -1, m * 1.15 if m > 0 else 1)
        axd.set_ylabel("alt − ref", fontsize=7)
        axd.ticklabel_format(axis="y", style="sci", scilimits=(-2, 3), useMathText=True)
        axd.yaxis.get_offset_text().set_fontsize(7)
        for a in (ax, axd):
            a.tick_params(axis="y", labelsize=7)
            plain_axes(a)
    if shown is not None:
        draw_genes(axes[-1], shown, chrom or "", start, end)
    if position is not None:
        for a in axes:
            a.axvline(position + 0.5, color="k", ls="--", lw=0.7, alpha=0.7)
    region_axis(axes[-1], chrom, start, end)
    add_title(fig, title or (f"variant {variant}" if variant else "variant effect"), description)
    return finish(fig, path)


def _gene_effect_row(ax: Any, effects: list[tuple[str, int, float]], span: int, label: str):
    """Each gene's effect as a bar at its TSS, with the gene's name."""
    values = np.array([v for _, _, v in effects])
    m = float(np.nanmax(np.abs(values))) if np.isfinite(values).any() else 1.0
    ax.bar([t for _, t, _ in effects], values, width=span * 0.012,
           color=["#d62728" if v >= 0 else "#1f77b4" for v in values], lw=0)  # fmt: skip
    for name, t, v in effects:
        ax.annotate(name, (t, v), xytext=(0, 2 if v >= 0 else -2), textcoords="offset points",
                    ha="center", va="bottom" if v >= 0 else "top", fontsize=6)  # fmt: skip
    ax.axhline(0, color="0.3", lw=0.5)
    ax.set_ylim(-m * 1.5 if m > 0 else -1, m * 1.5 if m > 0 else 1)
    ax.set_ylabel(label, fontsize=7)
    ax.tick_params(axis="y", labelsize=7)
    plain_axes(ax)


# --------------------------------------------------------------------------------------
# Contribution scores
# --------------------------------------------------------------------------------------


def peak_window(per_position: np.ndarray, width: int) -> tuple[int, int]:
    """Index window of ``width`` with the largest summed ``|per_position|``.

    Parameters
    ----------
    per_position : numpy.ndarray
        ``(L,)`` values.
    width : int
        Window width.

    Returns
    -------
    (int, int)
        ``[lo, hi)`` input indices.
    """
    v = np.abs(np.asarray(per_position, dtype=np.float64))
    width = min(int(width), len(v))
    sums = np.convolve(v, np.ones(width), mode="valid")
    lo = int(np.argmax(sums))
    return lo, lo + width


def plot_logo(
    scores: np.ndarray,
    *,
    start: int = 0,
    window: tuple[int, int] | None = None,
    ax: Axes | None = None,
    chrom: str | None = None,
    title: str | None = None,
    description: str | None = None,
    ylabel: str = "contribution",
    width: float | None = None,
    path: str | os.PathLike[str] | None = None,
) -> Figure:
    """Sequence logo of per-base scores (logomaker), letters scaled by their score.

    Parameters
    ----------
    scores : numpy.ndarray
        ``(L, 4)`` per-base scores (A, C, G, T); for gradient x input only the observed base
        is non-zero, so the logo spells the sequence.
    start : int, optional
        Coordinate of ``scores[0]`` (genomic, 0-based; shown 1-based).
    window : (int, int), optional
        ``[lo, hi)`` in the same coordinates to zoom into (default everything).
    ax : matplotlib.axes.Axes, optional
        Draw into this axis instead of a new figure.
    chrom : str, optional
        Chromosome, for the axis label.
    title : str, optional
        Title.
    description : str, optional
        The model's description.
    ylabel : str, optional
        Y-axis label.
    width : float, optional
        Figure width in inches (default grows with the window).
    path : str or os.PathLike, optional
        Save the figure here.

    Returns
    -------
    matplotlib.figure.Figure
        The figure (of ``ax`` when given).
    """
    try:
        import logomaker
        import pandas as pd
    except ImportError as err:  # pragma: no cover - depends on the environment
        raise ImportError("logos need logomaker and pandas: pip install 'enformer[plot]'") from err
    scores = np.asarray(scores, dtype=np.float64)
    if scores.ndim != 2 or scores.shape[1] != 4:
        raise ValueError(f"expected per-base scores (L, 4), got {scores.shape}")
    lo, hi = window if window is not None else (start, start + len(scores))
    i0, i1 = max(lo - start, 0), min(hi - start, len(scores))
    if i1 <= i0:
        raise ValueError(f"window [{lo}, {hi}) does not overlap the scores")
    if i1 - i0 > _LOGO_MAX:
        raise ValueError(f"a logo of {i1 - i0} bp is unreadable; zoom to <= {_LOGO_MAX} bp")
    part = scores[i0:i1]
    # 1-based genomic positions on the axis, like genome browsers.
    frame = pd.DataFrame(part, columns=list(_BASES), index=np.arange(i0, i1) + start + 1)
    own = ax is None
    if own:
        fig = new_figure(width or min(max(6.0, 0.12 * len(part) + 1.5), 24.0), 2.6)
        ax = fig.subplots()
    else:
        fig = ax.figure  # type: ignore[assignment]
    logomaker.Logo(frame, ax=ax, color_scheme="classic", flip_below=False)
    ax.axhline(0, color="0.3", lw=0.5)
    ax.set_xlim(frame.index[0] - 0.5, frame.index[-1] + 0.5)
    ax.set_ylabel(ylabel, fontsize=8)
    plain_axes(ax)
    genomic_axis(ax, chrom, bases=True)
    if own:
        add_title(fig, title, description)
    return finish(fig, path)  # type: ignore[arg-type]


@figure_doc
def plot_attribution(
    attribution: Attribution,
    *,
    zoom: tuple[int, int] | None = None,
    zoom_width: int = 80,
    marks: Sequence[int] = (),
    genes: Sequence[Gene] | None = None,
    gtf: str | os.PathLike[str] | None = None,
    title: str | None = None,
    description: str | None = None,
    width: float = 12.0,
    path: str | os.PathLike[str] | None = None,
) -> Figure:
    """Contribution scores: whole-window overview, gene annotation and a zoomed logo.

    Parameters
    ----------
    attribution : Attribution
        One sequence's result; its ``chrom``/``start`` give genomic coordinates when set.
    zoom : (int, int), optional
        Genomic (or input) span of the logo; default the ``zoom_width`` window with the largest
        absolute contributions.
    zoom_width : int, optional
        Width of the default zoom.
    marks : sequence of int, optional
        Positions (same coordinates as ``zoom``, 0-based) to mark, e.g. a variant.
    genes, gtf : optional
        Gene annotation under the overview.
    title : str, optional
        Title (default names the method and target).
    description : str, optional
        Model description (default the attribution's).
    width : float, optional
        Figure width in inches.
    """
    a = attribution
    if a.scores.ndim != 2:
        raise ValueError("plot one sequence: index a batched Attribution first (attr[i])")
    x0 = a.start if a.start is not None else 0
    length = a.length
    per_pos = a.per_position
    if zoom is None:
        lo, hi = peak_window(per_pos, zoom_width)
        zoom = (x0 + lo, x0 + hi)
    shown = genes_in(genes, gtf, a.chrom, x0, x0 + length)
    heights = [1.6] + gene_panel(shown, x0, x0 + length) + [1.9]
    fig = new_figure(width, sum(heights) + 1.2)
    grid = fig.add_gridspec(len(heights), 1, height_ratios=heights)
    ax = fig.add_subplot(grid[0])
    pos = x0 + np.arange(length)
    ax.fill_between(pos, per_pos, step="mid", color="#444444", lw=0)
    ax.axhline(0, color="0.5", lw=0.5)
    ax.set_xlim(x0, x0 + length)
    ax.set_ylabel(f"{a.method}\n(sum over bases)", fontsize=8)
    off, bsz = a.settings.get("output_offset"), a.settings.get("bin_size")
    if off is not None and bsz is not None and a.target.bins is not None:
        bins = list(a.target.bins)  # type: ignore[arg-type]
        ax.axvspan(
            x0 + off + bsz * min(bins), x0 + off + bsz * (max(bins) + 1), color="orange",
            alpha=0.35, lw=0, label="target bins",
        )  # fmt: skip
    ax.axvspan(zoom[0], zoom[1], color="#1f77b4", alpha=0.2, lw=0, label="logo below")
    legend_above(ax)
    plain_axes(ax)
    genomic_axis(ax, a.chrom)
    if shown is not None:
        gax = fig.add_subplot(grid[1], sharex=ax)
        draw_genes(gax, shown, a.chrom or "", x0, x0 + length)
        gax.tick_params(labelbottom=False)
        ax.set_xlabel("")
    lax = fig.add_subplot(grid[-1])
    plot_logo(a.scores, start=x0, window=zoom, ax=lax, chrom=a.chrom, ylabel="contribution")
    for m in marks:
        ax.axvline(m + 0.5, color="r", ls="--", lw=0.7)
        if zoom[0] <= m < zoom[1]:
            lax.axvline(m + 1, color="r", ls="--", lw=0.7, zorder=0)  # logo: 1-based centres
    tv = float(np.atleast_1d(a.target_value)[0])
    default = f"{a.method}: {a.target.describe()} (f(x) = {tv:.4g})"
    add_title(fig, title or default, description if description is not None else a.description)
    return finish(fig, path)


# --------------------------------------------------------------------------------------
# ISM
# --------------------------------------------------------------------------------------


@figure_doc
def plot_ism(
    ism: ISM,
    *,
    track: int | None = None,
    logo: bool = True,
    title: str | None = None,
    description: str | None = None,
    cmap: str = "RdBu_r",
    width: float | None = None,
    path: str | os.PathLike[str] | None = None,
) -> Figure:
    """ISM heatmap (bases x positions) with a logo of each position's importance.

    The heatmap shows ``alt - ref`` for every base at every position (0 at the reference
    base, marked with a dot); the colour scale is symmetric around 0. The logo above draws
    the reference base with height ``-mean(alt - ref)`` over the three alternatives: tall
    letters are positions whose mutation lowers the read-out.

    Parameters
    ----------
    ism : ISM
        The result.
    track : int, optional
        Position in ``ism.tracks`` to show (default the mean over the recorded tracks).
    logo : bool, optional
        Draw the importance logo.
    title : str, optional
        Title.
    description : str, optional
        Model description (default the ISM's).
    cmap : str, optional
        Diverging colour map.
    width : float, optional
        Figure width in inches (default grows with the window).
    """
    from matplotlib.colors import TwoSlopeNorm

    eff = ism.effects  # (P, 4, T)
    if track is None:
        values = eff.mean(axis=-1)
        which = "mean over tracks" if eff.shape[-1] > 1 else _track_name(ism, 0)
    else:
        values = eff[..., track]
        which = _track_name(ism, track)
    n = values.shape[0]
    x0 = ism.genomic_start if ism.genomic_start is not None else ism.start
    heights = ([1.2] if logo else []) + [1.4]
    fig = new_figure(width or min(max(7.0, 0.11 * n + 2.0), 26.0), sum(heights) + 1.3)
    grid = fig.add_gridspec(len(heights), 2, height_ratios=heights, width_ratios=[50, 1])
    hax = fig.add_subplot(grid[-1, 0])
    vmax = float(np.abs(values).max()) or 1.0
    img = hax.imshow(
        values.T, aspect="auto", cmap=cmap, norm=TwoSlopeNorm(0.0, -vmax, vmax),
        extent=(x0 + 0.5, x0 + n + 0.5, 3.5, -0.5), interpolation="nearest",
    )  # fmt: skip
    ref = ism.seq.argmax(axis=1)
    known = ism.seq.any(axis=1)
    pos = x0 + 1 + np.arange(n)
    hax.plot(pos[known], ref[known], ls="none", marker="o", ms=2.0, color="k")
    hax.set_yticks(range(4), list(_BASES))
    hax.set_ylabel("base", fontsize=8)
    genomic_axis(hax, ism.chrom, bases=True)
    cax = fig.add_subplot(grid[-1, 1])
    cbar = fig.colorbar(img, cax=cax)
    cbar.set_label("alt − ref", fontsize=8)
    cbar.ax.tick_params(labelsize=7)
    if logo:
        lax = fig.add_subplot(grid[0, 0], sharex=hax)
        importance = np.zeros((n, 4))
        importance[np.arange(n), ref] = -values.sum(axis=1) / 3.0  # ref row is 0
        importance[~known] = 0
        plot_logo(importance, start=x0, ax=lax, ylabel="−mean(alt − ref)")
        lax.set_xlabel("")
        lax.tick_params(labelbottom=False)
        lax.set_xlim(x0 + 0.5, x0 + n + 0.5)
    hax.set_xlim(x0 + 0.5, x0 + n + 0.5)
    bins = f"bins {ism.bins[0]}-{ism.bins[-1]}" if len(ism.bins) > 1 else f"bin {ism.bins[0]}"
    default = f"ISM ({ism.head} {which}, {ism.reduce} over output {bins})"
    add_title(fig, title or default, description if description is not None else ism.description)
    return finish(fig, path)


def _track_name(ism: ISM, i: int) -> str:
    name = f"track {ism.tracks[i]}"
    if ism.track_ids and ism.track_ids[i] != str(ism.tracks[i]):
        name += f" {ism.track_ids[i]}"
    if ism.track_labels and ism.track_labels[i]:
        name += f" ({textwrap.shorten(ism.track_labels[i], 40)})"
    return name


def plot_roc(
    fpr: np.ndarray,
    tpr: np.ndarray,
    *,
    label: str,
    title: str | None = None,
    description: str | None = None,
    path: str | os.PathLike[str] | None = None,
) -> Figure:
    """A ROC curve (e.g. of ``enformer benchmark eqtl``) with the chance diagonal.

    ``fpr``, ``tpr``: false- and true-positive rates at each threshold, from (0, 0) to (1, 1)
    (:func:`enformer.variants.benchmark.roc_curve`); ``label`` names the curve (its AUROC).
    """
    fig = new_figure(5.0, 4.8)
    ax = fig.subplots()
    ax.plot(fpr, tpr, lw=2, label=label)
    ax.plot([0, 1], [0, 1], ls=":", color="grey", label="chance")
    ax.set_xlim(0, 1)
    ax.set_ylim(0, 1.01)
    ax.set_xlabel("false-positive rate")
    ax.set_ylabel("true-positive rate")
    ax.legend(loc="lower right", fontsize=8)
    add_title(fig, title, description)
    return finish(fig, path)
