"""Every resolved setting of a scoring run: validation, track selection and metadata.

:func:`make_plan` checks the arguments of :func:`~enformer.variants.score.score_variants`
once, resolves the head's tracks (indices, or names with a track sheet) and strand pairs, and
gathers the metadata written beside every output (formulas, placement convention, model).
"""

from __future__ import annotations

import logging
import os
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch

from ..data.annotation import Annotation, TSSIndex
from ..data.datasets.bigwig import restore_coverage
from ..data.genome import Genome
from ..inference.engine import check_shifts
from ..inference.selection import select_tracks
from ..io.jobs import model_fingerprint
from ..model.config import EnformerConfig
from ..model.geometry import OutputGeometry, output_geometry
from ..runtime import parse_device
from ..version import __version__
from .background import Background, quantile_names
from .scores import SCORE_FORMULAS, resolve_stats
from .sequences import INDEL_ANCHORING, PLACEMENT, PLACEMENT_DESCRIPTION

__all__ = ["GENE_REGIONS", "ScorePlan", "make_plan", "vcf_track_columns"]

# What --gene-score can read out per gene: its TSS bins, the bins of its exons (collapsed
# over transcripts), or every bin from its start to its end.
GENE_REGIONS = ("tss", "exons", "body")

logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class ScorePlan:
    """Every resolved setting of a scoring run (see :func:`make_plan`).

    Attributes
    ----------
    stats : list of str
        Output columns, in order: the statistics, then with a background each one's
        ``_quantile`` and ``_signed_quantile`` (:mod:`enformer.variants.background`).
    head, tracks, identifiers, descriptions
        The head and its scored tracks (indices; identifiers and descriptions when a track
        sheet is known).
    strand_pairs : numpy.ndarray or None
        Strand-pair permutation of the head's tracks for reverse-complement copies.
    rc, shifts
        Copies averaged before scoring.
    geometry : OutputGeometry
        Model input and output bins.
    center_bins, tss, tss_width
        The scoring window: centre bins, or genes' TSS bins.
    untransform
        ``restore_coverage`` arguments (transform and the scored tracks' ``sum_stat``,
        ``scale``, ``clip_soft``) applied to every prediction before the statistics, or
        ``None``.
    gene_score, annotation, track_strands
        In gene mode, the regions read out per gene (:data:`GENE_REGIONS`), the genes with
        their exons (for ``exons`` / ``body``), and each scored track's strand (``+``, ``-``,
        ``.``; ``None`` without a track sheet): a gene reads its own strand's and unstranded
        tracks, the others are NaN.
    on_ref_mismatch, group_span
        Window building (:func:`~enformer.variants.sequences.make_allele_windows`).
    batch_size, device
        How the predictor runs.
    metadata : dict
        Formulas and settings written beside every output.
    """

    stats: list[str]
    head: str
    tracks: list[int]
    identifiers: list[str] | None
    descriptions: list[str] | None
    strand_pairs: np.ndarray | None
    rc: bool
    shifts: tuple[int, ...]
    geometry: OutputGeometry
    center_bins: int | None
    tss: TSSIndex | None
    tss_width: int
    on_ref_mismatch: str
    group_span: int | None
    batch_size: int
    device: torch.device
    metadata: dict[str, Any]
    gene_score: tuple[str, ...] = ("tss",)
    annotation: Annotation | None = None
    track_strands: list[str] | None = None
    computed_stats: list[str] | None = None
    background: Background | None = None
    untransform: dict[str, Any] | None = None

    def restore(self, pred: np.ndarray) -> np.ndarray:
        """Predictions ``(..., bins, tracks)`` of the scored tracks as float32 in the units the
        statistics read: unchanged, or un-squashed by
        :func:`~enformer.data.datasets.bigwig.restore_coverage` with ``untransform``'s
        transform and the tracks' sheet values."""
        pred = np.asarray(pred, dtype=np.float32)
        if self.untransform is None:
            return pred
        return restore_coverage(pred, **self.untransform)

    @property
    def base_stats(self) -> list[str]:
        """The statistics computed from the predictions (``stats`` without the quantile
        columns a background adds)."""
        return self.computed_stats if self.computed_stats is not None else self.stats

    @property
    def margin(self) -> int:
        """Extra genome bases read on each side of a window (the largest shift)."""
        return max(abs(s) for s in self.shifts)

    @property
    def window_mode(self) -> str:
        """``'genes'``, ``'center'`` or ``'all'``."""
        return "genes" if self.tss is not None else "center" if self.center_bins else "all"

    @property
    def track_labels(self) -> list[str]:
        """Column labels of the tracks: identifiers, else ``t<index>``."""
        if self.identifiers is not None:
            return list(self.identifiers)
        return [f"t{i}" for i in self.tracks]


def _check_options(
    geometry: OutputGeometry,
    on_ref_mismatch: str,
    center_bins: int | None,
    genes_gtf: Any,
    tss_width: int,
    group_span: int | None,
) -> None:
    """Refuse scoring-window and window-building options that cannot work."""
    if on_ref_mismatch not in ("fail", "skip", "flip"):
        raise ValueError(
            f"on_ref_mismatch must be 'fail', 'skip' or 'flip', got {on_ref_mismatch!r}"
        )
    if center_bins is not None and genes_gtf is not None:
        raise ValueError("choose either center_bins or genes_gtf as the scoring window, not both")
    if center_bins is not None and not 1 <= int(center_bins) <= geometry.n_bins:
        raise ValueError(f"center_bins must lie in 1..{geometry.n_bins}, got {center_bins}")
    if int(tss_width) < 1:
        raise ValueError(f"tss_width must be >= 1 bin, got {tss_width}")
    if group_span is not None and not 0 <= int(group_span) <= geometry.output_span // 2:
        raise ValueError(
            f"group_span must lie in 0..{geometry.output_span // 2} bp (half the output span) so "
            f"that every grouped variant stays inside the output; got {group_span}"
        )


def make_plan(
    model: torch.nn.Module,
    genome: Genome,
    *,
    stats: str | Sequence[str],
    tracks: Any,
    track_sheet: Any,
    head: str,
    rc: bool,
    shifts: Sequence[int],
    genes_gtf: str | os.PathLike[str] | TSSIndex | None,
    center_bins: int | None,
    tss_width: int,
    gene_score: Sequence[str] = ("tss",),
    background: Background | str | os.PathLike[str] | None = None,
    untransform: str = "auto",
    on_ref_mismatch: str,
    group_span: int | None,
    batch_size: int,
    device: str | torch.device | None,
) -> ScorePlan:
    """Check the arguments of a scoring run once and resolve them into a :class:`ScorePlan`.

    Parameters are those of :func:`~enformer.variants.score.score_variants` (``genome`` is
    recorded in the metadata). Raises ``ValueError`` for an unknown head, statistic or track,
    and for options that cannot work together.
    """
    config = model.config
    if head not in config.heads:
        raise ValueError(f"the model has no head {head!r}; it has {', '.join(config.heads)}")
    names = resolve_stats(stats)
    selection = select_tracks(config, tracks, head=head, sheet=track_sheet)
    sheet, pairs = selection.sheet, selection.strand_pairs
    if rc and pairs is None:
        logger.info(
            "reverse-complement averaging without a track sheet: no strand-paired tracks are "
            "swapped (pass track_sheet/--targets for stranded tracks)"
        )
    shift_tuple = check_shifts(shifts, config.bin_size)
    geometry = output_geometry(config, config.sequence_length)
    _check_options(geometry, on_ref_mismatch, center_bins, genes_gtf, tss_width, group_span)
    if int(batch_size) < 1:
        raise ValueError(f"batch_size must be >= 1, got {batch_size}")
    regions = _gene_regions(gene_score, genes_gtf)
    tss: TSSIndex | None = None
    annotation: Annotation | None = None
    genes_label: str | None = None
    if isinstance(genes_gtf, TSSIndex):
        tss, genes_label = genes_gtf, "<TSSIndex>"
    elif genes_gtf is not None:
        tss, genes_label = TSSIndex.from_gtf(genes_gtf), str(Path(genes_gtf))
        if set(regions) - {"tss"}:
            annotation = Annotation.read(genes_gtf)
    run_device = _run_device(model, device)
    chosen = selection.indices
    descriptions = selection.descriptions if sheet is not None else None
    window = _window_metadata(geometry, center_bins, tss, genes_label, tss_width, regions,
                              stranded=sheet is not None)  # fmt: skip
    metadata = {
        "enformer_version": __version__,
        "stats": names,
        "score_formulas": {s: SCORE_FORMULAS[s] for s in names},
        "R_A": (
            "R, A = ref and alt predictions (bins, tracks), averaged over the reverse-complement "
            "and shift copies before scoring"
        ),
        "window": window,
        "placement": PLACEMENT,
        "placement_description": PLACEMENT_DESCRIPTION,
        "indel_anchoring": INDEL_ANCHORING,
        "on_ref_mismatch": on_ref_mismatch,
        "group_span": None if group_span is None else int(group_span),
        "head": head,
        "tracks": chosen,
        "track_identifiers": selection.identifiers,
        "track_sheet": str(sheet.path) if sheet is not None and sheet.path else None,
        "rc": bool(rc),
        "strand_pairs_swapped": bool(rc and pairs is not None),
        "shifts": list(shift_tuple),
        "model": {
            "description": config.description,
            "config": config.to_dict(),
            "fingerprint": model_fingerprint(model),
        },
        "geometry": {
            "input_length": geometry.input_length,
            "bin_size": geometry.bin_size,
            "n_bins": geometry.n_bins,
            "output_offset": geometry.offset,
        },
        "genome": str(genome.path),
        "dtype": "float32",
    }
    restore = _untransform(untransform, config, sheet, chosen)
    metadata["untransform"] = None if restore is None else {
        "transform": restore["transform"], "formula": UNTRANSFORM_FORMULAS[restore["transform"]]}
    output_stats, background = _with_background(names, metadata, background)
    return ScorePlan(
        stats=output_stats,
        computed_stats=names,
        background=background,
        head=head,
        tracks=chosen,
        identifiers=selection.identifiers,
        descriptions=descriptions,
        strand_pairs=pairs,
        rc=bool(rc),
        shifts=shift_tuple,
        geometry=geometry,
        center_bins=None if center_bins is None else int(center_bins),
        tss=tss,
        tss_width=int(tss_width),
        on_ref_mismatch=on_ref_mismatch,
        group_span=None if group_span is None else int(group_span),
        batch_size=int(batch_size),
        device=run_device,
        metadata=metadata,
        gene_score=regions,
        annotation=annotation,
        track_strands=None if sheet is None else [sheet[i].strand for i in chosen],
        untransform=restore,
    )


UNTRANSFORMS = ("auto", "none", "basenji", "baskerville")
UNTRANSFORM_FORMULAS = {
    "basenji": "R, A un-squashed per track before the statistics: x / scale, above clip_soft "
               "c + (x - c)^2, sum_sqrt tracks to the 4/3 power, times scale (baskerville's "
               "untransform_preds1, Borzoi's borzoi_sed.py -u)",
    "baskerville": "R, A un-squashed per track before the statistics: above clip_soft "
                   "c - 1 + (x - c + 1)^2, *_sqrt tracks (x + 1)^2 - 1 (baskerville's "
                   "untransform_preds)",
}  # fmt: skip


def _untransform(
    name: str, config: Any, sheet: Any, chosen: list[int]
) -> dict[str, Any] | None:
    """``restore_coverage`` arguments for the scored tracks, or ``None`` (no untransform).

    ``auto``: ``basenji`` for a Borzoi-family model with a track sheet (the released Borzoi
    and Flashzoi models were trained on Basenji-transformed coverage, and Borzoi's scripts
    untransform their predictions so before summing them), else none.
    """
    if name not in UNTRANSFORMS:
        raise ValueError(f"untransform must be one of {', '.join(UNTRANSFORMS)}; got {name!r}")
    if name == "auto":
        borzoi = getattr(config, "family", "enformer") == "borzoi"
        if borzoi and sheet is None:
            logger.warning(
                "no track sheet for this Borzoi model: scores are computed on its squashed "
                "outputs (RNA-seq to the power 3/4, soft-clipped, scaled), not on coverage as "
                "Borzoi's scripts report them; pass its targets_human.txt (--targets / "
                "track_sheet) to un-squash, or --untransform none to silence this"
            )
        name = "basenji" if borzoi and sheet is not None else "none"
    if name == "none":
        return None
    if sheet is None:
        raise ValueError(f"untransform {name!r} needs the head's track sheet (its sum_stat, "
                         "scale and clip_soft columns): pass track_sheet / --targets")  # fmt: skip
    tracks = [sheet[i] for i in chosen]
    return {"transform": name, "sum_stat": [t.sum_stat for t in tracks],
            "scale": [t.scale for t in tracks],
            "clip_soft": [t.clip_soft for t in tracks]}  # fmt: skip


def _run_device(model: torch.nn.Module, device: str | torch.device | None) -> torch.device:
    """``device``, or by default the model's (CPU for a model without parameters)."""
    if device is not None:
        return parse_device(device)
    try:
        return next(model.parameters()).device
    except StopIteration:
        return torch.device("cpu")


def _with_background(
    names: list[str], metadata: dict[str, Any], background: Any
) -> tuple[list[str], Background | None]:
    """The output columns (quantiles added with a background), the checked background, and
    its formulas and provenance recorded in ``metadata``."""
    if background is None:
        return names, None
    if not isinstance(background, Background):
        background = Background.load(background)
    background.check_matches(metadata)
    for s in names:
        quantile, signed = quantile_names(s)
        metadata["score_formulas"][quantile] = (
            f"fraction of the background's |{s}| on the track that are <= |{s}|")
        metadata["score_formulas"][signed] = f"sign({s}) * {quantile}"
    metadata["background"] = {k: v for k, v in background.metadata.items() if k != "settings"}
    return names + [q for s in names for q in quantile_names(s)], background


def _window_metadata(
    geometry: OutputGeometry, center_bins: int | None, tss: TSSIndex | None,
    genes_label: str | None, tss_width: int, regions: tuple[str, ...], *, stranded: bool,
) -> dict[str, Any]:  # fmt: skip
    """The ``window`` entry of the metadata: which bins each statistic reads."""
    if center_bins is not None:
        return {"mode": "center", "center_bins": int(center_bins)}
    if tss is None:
        return {"mode": "all", "bins": geometry.n_bins}
    return {"mode": "genes", "genes_gtf": genes_label, "tss_width_bins": int(tss_width),
            "gene_score": list(regions), "gene_regions": {
                "tss": "the tss_width bins around the bin of each TSS of the gene",
                "exons": "every bin overlapping an exon of any transcript of the gene",
                "body": "every bin from the gene's start to its end"},
            "strand_matched": (
                "a gene reads the tracks of its own strand and unstranded tracks; tracks of "
                "the other strand are NaN" if stranded else
                "no track sheet: every track is read for every gene")}  # fmt: skip


def _gene_regions(gene_score: Sequence[str] | str, genes_gtf: Any) -> tuple[str, ...]:
    """The checked ``gene_score`` regions, in :data:`GENE_REGIONS` order."""
    wanted = [gene_score] if isinstance(gene_score, str) else list(gene_score)
    wanted = [w.strip() for item in wanted for w in item.split(",") if w.strip()]
    unknown = sorted(set(wanted) - set(GENE_REGIONS))
    if unknown or not wanted:
        raise ValueError(f"gene_score must name some of {', '.join(GENE_REGIONS)}; got "
                         f"{', '.join(unknown) or 'nothing'}")  # fmt: skip
    if set(wanted) != {"tss"} and (genes_gtf is None or isinstance(genes_gtf, TSSIndex)):
        raise ValueError("gene_score exons/body needs genes_gtf, a GTF/GFF file (--genes)")
    return tuple(r for r in GENE_REGIONS if r in wanted)


def vcf_track_columns(
    plan: ScorePlan, vcf_tracks: Any, track_sheet: Any, config: EnformerConfig
) -> list[int]:
    """Columns (positions in plan.tracks) annotated in VCF output."""
    every = isinstance(vcf_tracks, str) and vcf_tracks.strip().lower() in ("all", "*")
    if vcf_tracks is None or every:
        return list(range(len(plan.tracks)))
    wanted = select_tracks(config, vcf_tracks, head=plan.head, sheet=track_sheet).indices
    position = {t: k for k, t in enumerate(plan.tracks)}
    missing = [t for t in wanted if t not in position]
    if missing:
        raise ValueError(f"vcf_tracks {missing[:5]} are not among the scored tracks")
    return [position[t] for t in wanted]
