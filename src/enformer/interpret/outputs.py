"""The files of an attribution run: BigWig per sequence, the arrays, and the figures.

:func:`write_attribution_outputs` writes what ``enformer attribute`` leaves in its output
folder and returns one JSON-ready entry per file.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import torch

from ..inference.predict import predict
from ..model.geometry import output_geometry
from .attribution import Attribution, Target, write_attributions
from .files import write_bigwig

__all__ = ["VariantMark", "write_attribution_outputs"]


class VariantMark:
    """A variant to mark on attribution figures: its 0-based position and its text."""

    def __init__(self, pos0: int, spec: str) -> None:
        self.pos0, self.spec = pos0, spec


def write_attribution_outputs(
    items: Sequence[Attribution],
    out: str | os.PathLike[str],
    *,
    chrom_sizes: dict[str, int],
    array_format: str,
    settings: dict[str, Any],
    plot: str | None = None,
    target: Target | None = None,
    model: torch.nn.Module | None = None,
    x: torch.Tensor | None = None,
    labels: Sequence[str] = (),
    variant: VariantMark | None = None,
    gtf: str | os.PathLike[str] | None = None,
) -> list[dict[str, Any]]:
    """Write BigWig (per-position sums), the arrays and, with ``plot``, the figures.

    Parameters
    ----------
    items : sequence of Attribution
        One per sequence, with ``chrom``, ``start`` and ``name`` set.
    out : path-like
        Output folder (created).
    chrom_sizes : dict of str to int
        The genome's chromosome sizes (for BigWig headers).
    array_format : str
        ``'h5'`` or ``'npz'``.
    settings : dict
        Stored with the arrays.
    plot : str, optional
        Figure format (``'png'``, ``'svg'``); ``None`` draws none.
    target : Target, optional
        The explained target (figure titles; the variant figure's tracks).
    model, x : optional
        With ``variant``: the model and the ``(2, L, 4)`` ref/alt inputs whose predictions
        are drawn side by side.
    labels : sequence of str, optional
        Track labels for the variant figure.
    variant : VariantMark, optional
        A variant: marked on the figures, zoomed on, and its predictions drawn.
    gtf : path-like, optional
        Gene annotation drawn under the figures.

    Returns
    -------
    list of dict
        One entry per file: ``path``, ``kind`` and what it holds.
    """
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    files: list[dict[str, Any]] = []
    for a in items:
        suffix = "" if len(items) == 1 else f"_{a.name}"
        bw = write_bigwig(
            out / f"contributions{suffix}.bw", a.chrom, a.start, a.per_position, chrom_sizes
        )
        files.append(
            {"path": str(bw), "kind": "bigwig", "allele": a.name, "values": "per-position sum"}
        )
    arr = write_attributions(items, out / f"contributions.{array_format}", settings=settings)
    files.append({"path": str(arr), "kind": array_format, "sequences": [a.name for a in items]})
    if plot is not None:
        files += _attribution_figures(items, out, plot, target, variant, gtf)
        if variant is not None and model is not None and x is not None and target is not None:
            files.append(_variant_figure(model, x, target, items[0], out, plot, labels, variant, gtf))
    return files


def _attribution_figures(items, out, fmt, target, variant, gtf) -> list[dict[str, Any]]:
    from . import plots

    files = []
    zoom = None if variant is None else (variant.pos0 - 40, variant.pos0 + 40)
    for a in items:
        suffix = "" if len(items) == 1 else f"_{a.name}"
        path = out / f"attribution{suffix}.{fmt}"
        title = f"{a.method}: {target.describe()}" if target is not None else a.method
        if variant is not None:
            title += f"\n{a.name.upper()} allele of {variant.spec}"
        marks = [variant.pos0] if variant is not None else []
        plots.plot_attribution(a, zoom=zoom, marks=marks, gtf=gtf, title=title, path=path)
        files.append({"path": str(path), "kind": fmt, "figure": "attribution", "allele": a.name})
    return files


def _variant_figure(model, x, target, first, out, fmt, labels, variant, gtf) -> dict[str, Any]:
    """Predicted tracks of the REF and ALT inputs, side by side."""
    from . import plots

    geometry = output_geometry(model.config)
    pred = predict(
        model, x, head=target.head, tracks=list(target.tracks), batch_size=len(x), progress=False
    )
    y = pred.values[target.head]  # (2, bins, k)
    path = out / f"variant.{fmt}"
    plots.plot_variant(
        np.asarray(y[0]),
        np.asarray(y[1]),
        chrom=first.chrom,
        start=first.start + geometry.offset,
        bin_size=geometry.bin_size,
        position=variant.pos0,
        variant=variant.spec,
        labels=list(labels),
        gtf=gtf,
        description=model.config.description,
        path=path,
    )
    return {"path": str(path), "kind": fmt, "figure": "variant"}
