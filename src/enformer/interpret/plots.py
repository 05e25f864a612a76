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
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

if TYPE_CHECKING:
    from matplotlib.axes import Axes
    from matplotlib.figure import Figure

    from .annotation import Gene
    from .attention import AttentionMaps
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
    "plot_tracks",
    "plot_variant",
    "save_figure",
]

logger = logging.getLogger(__name__)

_BASES = "ACGT"
_TRACK_COLORS = ("#1f77b4", "#2ca02c", "#9467bd", "#8c564b", "#17becf", "#bcbd22")
_LOGO_MAX = 2000


# --------------------------------------------------------------------------------------
# Helpers
# --------------------------------------------------------------------------------------


def _new_figure(width: float, height: float) -> Figure:
    try:
        from matplotlib.figure import Figure
    except ImportError as err:  # pragma: no cover - depends on the environment
        raise ImportError("plots need matplotlib: pip install 'enformer[plot]'") from err
    return Figure(figsize=(width, height), layout="constrained")


def _title(fig: Figure, title: str | None, description: str | None) -> None:
    import textwrap

    # wrap to the figure's width (about 11 characters per inch at this font size)
    width = max(40, int(fig.get_figwidth() * 11))
    lines = textwrap.wrap(title, width) if title else []
    if description:
        lines += textwrap.wrap(f"model: {description}", width)
    if lines:
        fig.suptitle("\n".join(lines), fontsize=11)


def save_figure(fig: Figure, path: str | os.PathLike[str], *, dpi: int = 150) -> Path:
    """Save a figure atomically; the format comes from the suffix (``.png``, ``.svg``, ``.pdf``).

    Parameters
    ----------
    fig : matplotlib.figure.Figure
        The figure.
    path : str or os.PathLike
        Output file.
    dpi : int, optional
        Resolution of raster formats.

    Returns
    -------
    pathlib.Path
        The file written.
    """
    path = Path(path)
    fmt = path.suffix.lstrip(".").lower()
    if fmt not in ("png", "svg", "pdf"):
        raise ValueError(f"unknown figure format {path.suffix!r}; use .png, .svg or .pdf")
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.tmp-{os.getpid()}")
    try:
        fig.savefig(tmp, format=fmt, dpi=dpi)
        os.replace(tmp, path)
    finally:
        tmp.unlink(missing_ok=True)
    return path


def _finish(fig: Figure, path: str | os.PathLike[str] | None) -> Figure:
    if path is not None:
        save_figure(fig, path)
    return fig


def _genomic_axis(ax: Axes, chrom: str | None, *, bases: bool = False) -> None:
    """Comma-separated coordinates; ``bases``: ticks sit on base centres (1-based numbers)."""
    from matplotlib.ticker import FuncFormatter, MaxNLocator

    ax.xaxis.set_major_locator(MaxNLocator(nbins=6, integer=bases))
    ax.xaxis.set_major_formatter(FuncFormatter(lambda v, _: f"{int(round(v)):,}"))
    unit = "position, 1-based" if bases else "bp"
    ax.set_xlabel(f"{chrom} ({unit})" if chrom else f"input {unit}")


def _genes_in(
    genes: Sequence[Gene] | None,
    gtf: str | os.PathLike[str] | None,
    chrom: str | None,
    start: int,
    end: int,
) -> list[Gene] | None:
    """Genes overlapping the region, from a list or a GTF; ``None`` when neither is given."""
    if genes is None and gtf is None:
        return None
    if chrom is None:
        raise ValueError("gene annotation needs the chromosome of the region")
    if genes is None:
        from .annotation import read_gtf

        genes = read_gtf(gtf, chrom=chrom, start=start, end=end)  # type: ignore[arg-type]
    return [g for g in genes if g.overlaps(chrom, start, end)]


def _pack_rows(genes: Sequence[Gene], start: int, end: int, max_rows: int) -> list[int]:
    """Row per gene so that genes (with room for their labels) do not overlap."""
    span = max(end - start, 1)
    char = span / 110.0  # approximate width of one label character in bp
    rows_end: list[float] = []
    out = []
    for g in genes:
        lo, hi = max(g.start, start), min(g.end, end)
        mid = (lo + hi) / 2
        half = max((hi - lo) / 2, len(g.name) * char / 2 + char)
        a, b = mid - half, mid + half
        for r, last in enumerate(rows_end):
            if a > last:
                rows_end[r] = b
                out.append(r)
                break
        else:
            if len(rows_end) < max_rows:
                rows_end.append(b)
                out.append(len(rows_end) - 1)
            else:
                r = int(np.argmin(rows_end))
                rows_end[r] = max(rows_end[r], b)
                out.append(r)
    return out


def _gene_rows(genes: Sequence[Gene] | None, start: int, end: int, max_rows: int = 4) -> int:
    if not genes:
        return 1
    return max(_pack_rows(sorted(genes, key=lambda g: g.start), start, end, max_rows)) + 1


def _gene_panel(genes: Sequence[Gene] | None, start: int, end: int) -> list[float]:
    """Height ratio of the gene axis under a plot (``[]`` without gene annotation)."""
    return [] if genes is None else [0.35 + 0.45 * _gene_rows(genes, start, end)]


def draw_genes(
    ax: Axes,
    genes: Sequence[Gene],
    chrom: str,
    start: int,
    end: int,
    *,
    max_rows: int = 4,
    color: str = "#303030",
) -> None:
    """Draw gene models on an axis: exon boxes, intron lines, strand arrows and names.

    Parameters
    ----------
    ax : matplotlib.axes.Axes
        Target axis; its x axis is genomic coordinates.
    genes : sequence of Gene
        Genes to draw (those not overlapping ``[start, end)`` on ``chrom`` are skipped).
    chrom : str
        Chromosome of the region.
    start, end : int
        Region, 0-based half-open.
    max_rows : int, optional
        Overlapping genes are stacked in at most this many rows.
    color : str, optional
        Colour of the gene models.
    """
    from matplotlib.patches import Rectangle

    shown = sorted((g for g in genes if g.overlaps(chrom, start, end)), key=lambda g: g.start)
    ax.set_xlim(start, end)
    ax.set_yticks([])
    for side in ("left", "right", "top"):
        ax.spines[side].set_visible(False)
    if not shown:
        ax.set_ylim(-1, 1)
        ax.text(
            0.5, 0.5, "no annotated genes in this region", transform=ax.transAxes,
            ha="center", va="center", fontsize=8, color="0.4",
        )  # fmt: skip
        return
    rows = _pack_rows(shown, start, end, max_rows)
    span = end - start
    for g, r in zip(shown, rows, strict=True):
        y = -float(r)
        lo, hi = max(g.start, start), min(g.end, end)
        ax.plot([lo, hi], [y, y], color=color, lw=1.0, solid_capstyle="butt", zorder=1)
        for s, e in g.exons:
            if e <= start or s >= end:
                continue
            s, e = max(s, start), min(e, end)
            ax.add_patch(
                Rectangle((s, y - 0.22), max(e - s, span / 2000), 0.44, color=color, lw=0, zorder=2)
            )
        if g.strand in "+-":
            marker = ">" if g.strand == "+" else "<"
            n = max(1, int((hi - lo) / span * 25))
            xs = np.linspace(lo, hi, n + 2)[1:-1]
            ax.plot(
                xs, np.full_like(xs, y), ls="none", marker=marker, ms=3.5, color=color, zorder=3
            )
            if start <= g.tss < end:  # a bent arrow at the TSS
                d = span * 0.02 * (1 if g.strand == "+" else -1)
                ax.annotate(
                    "", xy=(g.tss + d, y + 0.42), xytext=(g.tss, y + 0.42),
                    arrowprops={"arrowstyle": "-|>", "color": color, "lw": 1, "shrinkA": 0,
                                "shrinkB": 0, "mutation_scale": 7},
                )  # fmt: skip
                ax.plot([g.tss, g.tss], [y, y + 0.42], color=color, lw=1)
        label = f"{g.name} ({g.strand})" if g.strand in "+-" else g.name
        ax.text(
            (lo + hi) / 2, y - 0.3, label, ha="center", va="top", fontsize=7,
            style="italic", clip_on=True,
        )  # fmt: skip
    n_rows = max(rows) + 1
    ax.set_ylim(-n_rows + 0.1, 0.75)


def _step(ax: Axes, x0: float, step: float, values: np.ndarray, color: str, **kw: Any) -> None:
    edges = x0 + step * np.arange(len(values) + 1)
    ax.fill_between(edges, np.append(values, values[-1]), step="post", color=color, lw=0, **kw)


def _label(ax: Axes, text: str) -> None:
    ax.text(
        0.005, 0.96, textwrap.shorten(text, 90), transform=ax.transAxes, ha="left", va="top",
        fontsize=8, bbox={"facecolor": "white", "alpha": 0.75, "lw": 0, "pad": 1.5},
    )  # fmt: skip


# --------------------------------------------------------------------------------------
# Tracks
# --------------------------------------------------------------------------------------


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
        Genes to draw (e.g. from :func:`~.annotation.read_gtf`).
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
    path : str or os.PathLike, optional
        Save the figure here.

    Returns
    -------
    matplotlib.figure.Figure
        The figure.
    """
    values = np.asarray(values, dtype=np.float64)
    if values.ndim == 1:
        values = values[:, None]
    n_bins, n_tracks = values.shape
    end = start + n_bins * bin_size
    labels = list(labels) if labels is not None else [f"track {i}" for i in range(n_tracks)]
    if len(labels) != n_tracks:
        raise ValueError(f"{len(labels)} labels for {n_tracks} tracks")
    shown = _genes_in(genes, gtf, chrom, start, end)
    heights = [track_height] * n_tracks + _gene_panel(shown, start, end)
    fig = _new_figure(width, sum(heights) + 0.9)
    axes = fig.subplots(len(heights), 1, sharex=True, height_ratios=heights, squeeze=False)[:, 0]
    for i in range(n_tracks):
        ax = axes[i]
        _step(ax, start, bin_size, values[:, i], _TRACK_COLORS[i % len(_TRACK_COLORS)])
        top = float(np.nanmax(values[:, i])) if n_bins else 1.0
        ax.set_ylim(min(0.0, float(np.nanmin(values[:, i]))), top * 1.15 if top > 0 else 1.0)
        _label(ax, labels[i])
        ax.tick_params(axis="y", labelsize=7)
        for s, e in highlight:
            ax.axvspan(s, e, color="orange", alpha=0.25, lw=0)
        ax.spines["top"].set_visible(False)
        ax.spines["right"].set_visible(False)
    if shown is not None:
        draw_genes(axes[-1], shown, chrom or "", start, end)
    axes[-1].set_xlim(start, end)
    _genomic_axis(axes[-1], chrom)
    _title(fig, title, description)
    return _finish(fig, path)


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
) -> Figure:
    """Reference and alternative predictions of a variant, and their difference, per track.

    Each track gets two rows: the reference (grey area) with the alternative (coloured line)
    over it, and ``alt - ref`` (red up, blue down).

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
    path : str or os.PathLike, optional
        Save the figure here.

    Returns
    -------
    matplotlib.figure.Figure
        The figure.
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
    shown = _genes_in(genes, gtf, chrom, start, end)
    heights = [1.0, 0.7] * n_tracks + _gene_panel(shown, start, end)
    fig = _new_figure(width, sum(heights) + 1.0)
    axes = fig.subplots(len(heights), 1, sharex=True, height_ratios=heights, squeeze=False)[:, 0]
    edges = start + bin_size * np.arange(n_bins + 1)
    for i in range(n_tracks):
        ax, axd = axes[2 * i], axes[2 * i + 1]
        color = _TRACK_COLORS[i % len(_TRACK_COLORS)]
        _step(ax, start, bin_size, ref[:, i], "0.7", label="ref")
        ax.step(edges, np.append(alt[:, i], alt[-1, i]), where="post", color=color, lw=1.0,
                label="alt")  # fmt: skip
        top = float(max(ref[:, i].max(), alt[:, i].max()))
        ax.set_ylim(0, top * 1.4 if top > 0 else 1.0)
        _label(ax, labels[i])
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
            a.spines["top"].set_visible(False)
            a.spines["right"].set_visible(False)
    if shown is not None:
        draw_genes(axes[-1], shown, chrom or "", start, end)
    if position is not None:
        for a in axes:
            a.axvline(position + 0.5, color="k", ls="--", lw=0.7, alpha=0.7)
    axes[-1].set_xlim(start, end)
    _genomic_axis(axes[-1], chrom)
    _title(fig, title or (f"variant {variant}" if variant else "variant effect"), description)
    return _finish(fig, path)


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
        fig = _new_figure(width or min(max(6.0, 0.12 * len(part) + 1.5), 24.0), 2.6)
        ax = fig.subplots()
    else:
        fig = ax.figure  # type: ignore[assignment]
    logomaker.Logo(frame, ax=ax, color_scheme="classic", flip_below=False)
    ax.axhline(0, color="0.3", lw=0.5)
    ax.set_xlim(frame.index[0] - 0.5, frame.index[-1] + 0.5)
    ax.set_ylabel(ylabel, fontsize=8)
    ax.spines["top"].set_visible(False)
    ax.spines["right"].set_visible(False)
    _genomic_axis(ax, chrom, bases=True)
    if own:
        _title(fig, title, description)
    return _finish(fig, path)  # type: ignore[arg-type]


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
    path : str or os.PathLike, optional
        Save the figure here.

    Returns
    -------
    matplotlib.figure.Figure
        The figure.
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
    shown = _genes_in(genes, gtf, a.chrom, x0, x0 + length)
    heights = [1.6] + _gene_panel(shown, x0, x0 + length) + [1.9]
    fig = _new_figure(width, sum(heights) + 1.2)
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
    ax.legend(loc="lower right", bbox_to_anchor=(1.0, 1.0), fontsize=7, frameon=False, ncol=2)
    ax.spines["top"].set_visible(False)
    ax.spines["right"].set_visible(False)
    _genomic_axis(ax, a.chrom)
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
    _title(fig, title or default, description if description is not None else a.description)
    return _finish(fig, path)


# --------------------------------------------------------------------------------------
# ISM
# --------------------------------------------------------------------------------------


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
    path : str or os.PathLike, optional
        Save the figure here.

    Returns
    -------
    matplotlib.figure.Figure
        The figure.
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
    fig = _new_figure(width or min(max(7.0, 0.11 * n + 2.0), 26.0), sum(heights) + 1.3)
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
    _genomic_axis(hax, ism.chrom, bases=True)
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
    _title(fig, title or default, description if description is not None else ism.description)
    return _finish(fig, path)


def _track_name(ism: ISM, i: int) -> str:
    name = f"track {ism.tracks[i]}"
    if ism.track_ids and ism.track_ids[i] != str(ism.tracks[i]):
        name += f" {ism.track_ids[i]}"
    if ism.track_labels and ism.track_labels[i]:
        name += f" ({textwrap.shorten(ism.track_labels[i], 40)})"
    return name


# --------------------------------------------------------------------------------------
# Attention
# --------------------------------------------------------------------------------------


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
    path : str or os.PathLike, optional
        Save the figure here.

    Returns
    -------
    matplotlib.figure.Figure
        The figure.
    """
    from matplotlib.colors import LogNorm, Normalize

    w = maps.map(layer, head)
    lo, hi = bins if bins is not None else (0, maps.n_bins)
    w = w[lo:hi, lo:hi]
    fig = _new_figure(size + 1.0, size)
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
    _title(fig, title or f"attention, {what}", description or maps.description)
    return _finish(fig, path)


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
        Captured weights.
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
    path : str or os.PathLike, optional
        Save the figure here.

    Returns
    -------
    matplotlib.figure.Figure
        The figure.
    """
    profile = maps.from_bin(query, layer, head)
    t = maps.n_bins
    genomic = input_start is not None
    x0 = (input_start + maps.input_offset) if genomic else 0  # type: ignore[operator]
    step = maps.bin_size if genomic else 1
    lo, hi = x0, x0 + t * step
    shown = _genes_in(genes, gtf, chrom, lo, hi) if genomic else None
    heights = [2.2] + _gene_panel(shown, lo, hi)
    fig = _new_figure(width, sum(heights) + 1.0)
    axes = fig.subplots(len(heights), 1, sharex=True, height_ratios=heights, squeeze=False)[:, 0]
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
    ax.legend(loc="lower right", bbox_to_anchor=(1.0, 1.0), fontsize=7, frameon=False, ncol=2)
    ax.spines["top"].set_visible(False)
    ax.spines["right"].set_visible(False)
    if shown is not None:
        draw_genes(axes[-1], shown, chrom or "", lo, hi)
    axes[-1].set_xlim(lo, hi)
    if genomic:
        _genomic_axis(axes[-1], chrom)
    else:
        axes[-1].set_xlabel(f"key bin ({maps.bin_size} bp)")
    what = _which(maps, layer, head)
    default = f"attention from {query_label} bin {query} to every bin, {what}"
    _title(fig, title or default, description or maps.description)
    return _finish(fig, path)
