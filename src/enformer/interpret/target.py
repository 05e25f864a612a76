"""What an attribution explains: a :class:`Target` (tracks x bins of one head, reduced).

:func:`tss_bins` finds the output bins around transcription start sites and
:func:`gene_target` builds a target at a gene's TSS from a GTF (CAGE at the
three bins around a TSS is the usual expression read-out; the model's crop offset is
applied); genes, TSSs and the bin rule come from :mod:`enformer.data.annotation`.
:func:`~enformer.interpret.contribution_scores` explains one.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Literal

import numpy as np

from ..data.annotation import Gene, OutputBins, find_gene, read_gtf
from ..model.geometry import OutputGeometry, output_geometry

if TYPE_CHECKING:
    from ..model.enformer import Enformer

__all__ = ["Target", "gene_target", "tss_bins"]


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
    """The TSS bins of a window's output, as a target's bin list.

    The bins are :meth:`enformer.data.annotation.OutputBins.tss_bins` (which documents the
    rule): output bin ``i`` covers genomic ``[window_start + offset + i * bin_size, ... +
    bin_size)``, ``offset`` being the crop (40,960 bp for the published model), and each TSS
    inside the output contributes the ``width`` bins around its bin. Unlike that function,
    this one refuses a window whose output holds none of the TSSs.

    Parameters
    ----------
    tss : int or sequence of int
        0-based genomic TSS positions.
    window_start : int
        0-based genomic position of input index 0.
    geometry : OutputGeometry
        Output placement (:func:`enformer.model.geometry.output_geometry`).
    width : int, optional
        Bins per TSS, centred on the TSS's bin (3: the bin and one either side). Even widths
        take the extra bin on the left (lower index).

    Returns
    -------
    list of int
        Sorted distinct bins inside the output.

    Raises
    ------
    ValueError
        If no TSS lies inside the output span.
    """
    sites = [int(tss)] if isinstance(tss, int | np.integer) else [int(t) for t in tss]
    out = OutputBins.of(geometry, window_start)
    bins = out.tss_bins(sites, width)
    if not bins.size:
        raise ValueError(
            f"no TSS ({', '.join(str(p) for p in sites[:5])}) lies in the output span "
            f"[{out.start:,}, {out.end:,}) of this window; centre the window on the gene"
        )
    return bins.tolist()


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
        Gene name or ID (looked up in ``gtf``), or a :class:`~enformer.data.annotation.Gene`.
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
    if isinstance(gene, str):
        if gtf is None:
            raise ValueError("a gene name needs gtf= (the annotation to look it up in)")
        gene = find_gene(read_gtf(gtf), gene)
    geometry = output_geometry(model.config, length)
    sites: list[int] = [gene.tss] if use == "gene" else gene.transcript_tss
    if use == "transcripts":
        out = OutputBins.of(geometry, window_start)
        sites = [s for s in sites if out.covers(s)] or [gene.tss]
    bins = tss_bins(sites, window_start=window_start, geometry=geometry, width=width)
    return Target(head, tracks=tracks, bins=bins, reduce=reduce)
