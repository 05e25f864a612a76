"""Figure building blocks shared by :mod:`enformer.interpret.plots`.

Figures are built without ``pyplot`` (no GUI backend, nothing global changes); matplotlib
is imported when a figure is made. The pieces: a figure, a column of panels sharing a
genomic x axis, gene models under them, titles that name the model, and atomic saving.
"""

from __future__ import annotations

import os
import textwrap
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any, TypeVar

import numpy as np

if TYPE_CHECKING:
    from matplotlib.axes import Axes
    from matplotlib.figure import Figure

    from ..data.annotation import Gene

__all__ = [
    "add_title",
    "figure_doc",
    "corner_label",
    "draw_genes",
    "finish",
    "gene_panel",
    "genes_in",
    "genomic_axis",
    "legend_above",
    "new_figure",
    "plain_axes",
    "region_axis",
    "save_figure",
    "stacked_axes",
    "step_area",
]

_FIGURE_DOC = """
    path : str or os.PathLike, optional
        Save the figure here (PNG, SVG or PDF by the suffix; see :func:`save_figure`).

    Returns
    -------
    matplotlib.figure.Figure
        The figure.
"""

F = TypeVar("F", bound=Callable[..., Any])


def figure_doc(func: F) -> F:
    """Finish a plot function's docstring with the ``path`` parameter and Returns section.

    Every plot takes ``path=`` and returns its figure; the words for both live here once.
    """
    func.__doc__ = (func.__doc__ or "").rstrip() + _FIGURE_DOC
    return func


def new_figure(width: float, height: float) -> Figure:
    """A constrained-layout figure of ``width`` x ``height`` inches (matplotlib needed)."""
    try:
        from matplotlib.figure import Figure
    except ImportError as err:  # pragma: no cover - depends on the environment
        raise ImportError("plots need matplotlib: pip install 'enformer[plot]'") from err
    return Figure(figsize=(width, height), layout="constrained")


def add_title(fig: Figure, title: str | None, description: str | None) -> None:
    """Title the figure, with ``model: <description>`` on its own line(s) when given."""
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
    from ..io.jobs import atomic_path

    with atomic_path(path) as tmp:
        fig.savefig(tmp, format=fmt, dpi=dpi)
    return path


def finish(fig: Figure, path: str | os.PathLike[str] | None) -> Figure:
    """Save ``fig`` to ``path`` when one is given; return it."""
    if path is not None:
        save_figure(fig, path)
    return fig


def genomic_axis(ax: Axes, chrom: str | None, *, bases: bool = False) -> None:
    """Comma-separated coordinates; ``bases``: ticks sit on base centres (1-based numbers)."""
    from matplotlib.ticker import FuncFormatter, MaxNLocator

    ax.xaxis.set_major_locator(MaxNLocator(nbins=6, integer=bases))
    ax.xaxis.set_major_formatter(FuncFormatter(lambda v, _: f"{int(round(v)):,}"))
    unit = "position, 1-based" if bases else "bp"
    ax.set_xlabel(f"{chrom} ({unit})" if chrom else f"input {unit}")


def genes_in(
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
        from ..data.annotation import read_gtf

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


def gene_panel(genes: Sequence[Gene] | None, start: int, end: int) -> list[float]:
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


def step_area(ax: Axes, x0: float, step: float, values: np.ndarray, color: str, **kw: Any) -> None:
    """Fill under a per-bin step line: bin ``i`` spans ``[x0 + i * step, x0 + (i + 1) * step)``."""
    edges = x0 + step * np.arange(len(values) + 1)
    ax.fill_between(edges, np.append(values, values[-1]), step="post", color=color, lw=0, **kw)


def corner_label(ax: Axes, text: str) -> None:
    """A short label in the top-left corner of a panel, on a translucent box."""
    ax.text(
        0.005, 0.96, textwrap.shorten(text, 90), transform=ax.transAxes, ha="left", va="top",
        fontsize=8, bbox={"facecolor": "white", "alpha": 0.75, "lw": 0, "pad": 1.5},
    )  # fmt: skip


def stacked_axes(
    width: float, heights: Sequence[float], extra: float
) -> tuple[Figure, np.ndarray]:
    """A figure with one column of panels sharing x, ``heights`` tall (+ ``extra`` inches)."""
    fig = new_figure(width, sum(heights) + extra)
    axes = fig.subplots(len(heights), 1, sharex=True, height_ratios=heights, squeeze=False)[:, 0]
    return fig, axes


def plain_axes(*axes: Axes) -> None:
    """Hide the top and right spines of each axis."""
    for ax in axes:
        ax.spines["top"].set_visible(False)
        ax.spines["right"].set_visible(False)


def legend_above(ax: Axes) -> None:
    """A small frameless legend just above the panel's right end."""
    ax.legend(loc="lower right", bbox_to_anchor=(1.0, 1.0), fontsize=7, frameon=False, ncol=2)


def region_axis(ax: Axes, chrom: str | None, start: float, end: float) -> None:
    """Show ``[start, end)`` on the bottom panel with genomic coordinates."""
    ax.set_xlim(start, end)
    genomic_axis(ax, chrom)
