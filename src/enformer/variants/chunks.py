"""Score one chunk of input records: windows, predictions, statistics per scoring unit.

A :class:`ScoreChunk` holds the scores of one chunk of input records (variants and skipped
alleles, in input order); :meth:`ScoreChunk.to_arrays` / :meth:`ScoreChunk.from_arrays` turn
it into the flat arrays a :class:`~enformer.io.jobdir.JobDir` saves as one unit.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch

from ..data.genome import Genome
from ..io.jobs import sequence_digest
from .background import quantile_names
from .plan import ScorePlan
from .predictors import PredictAlleles
from .records import Record, SkippedVariant, Variant
from ..data.annotation import OutputBins, center_bins
from .scores import compute_scores
from .sequences import AlleleWindows, Placement, make_allele_windows

__all__ = [
    "GENE_FIELDS",
    "NO_TSS_REASON",
    "SKIP_FIELDS",
    "VARIANT_FIELDS",
    "ScoreChunk",
    "chunk_windows",
    "empty_chunk",
    "score_chunk",
    "skipped_arrays",
    "str_array",
    "windows_digest",
]

_PREDICTION_BUDGET = 512 * 1024 * 1024  # bytes of float32 predictions held per predictor call

VARIANT_FIELDS = (
    "id",
    "chrom",
    "pos",
    "ref",
    "alt",
    "flipped",
    "line",
    "alt_index",
    "window_start",
    "offset",
)
GENE_FIELDS = ("gene_id", "gene_name", "gene_strand", "tss_distance", "gene_region")
SKIP_FIELDS = ("line", "chrom", "pos", "id", "ref", "alt", "alt_index", "reason")


@dataclass
class ScoreChunk:
    """Scores of one chunk of input records.

    Attributes
    ----------
    variants : dict of str to numpy.ndarray
        Per scored variant: ``id`` (ID, else ``chrom:pos:ref>alt``), ``chrom`` (as in the
        input), ``pos`` (1-based), ``ref``, ``alt``, ``flipped``, ``line`` (-1 if none),
        ``alt_index``, ``window_start`` (0-based genomic start of the window) and ``offset``
        (input index of the first REF base).
    units : dict of str to numpy.ndarray
        Per scored unit (a variant, or a variant x gene pair): ``si`` (row of ``variants``) and,
        with genes, ``gene_id``, ``gene_name``, ``gene_strand``, ``tss_distance`` and
        ``gene_region`` (``tss``, ``exons`` or ``body``).
    scores : dict of str to numpy.ndarray
        float32 ``(units, tracks)`` per statistic.
    skipped : dict of str to numpy.ndarray
        Per skipped record: ``line, chrom, pos, id, ref, alt, alt_index, reason``.
    n_records : int
        Input records (variants and skipped alleles) the chunk covers.
    """

    variants: dict[str, np.ndarray]
    units: dict[str, np.ndarray]
    scores: dict[str, np.ndarray]
    skipped: dict[str, np.ndarray]
    n_records: int

    @property
    def n_variants(self) -> int:
        """Number of scored variants."""
        return len(self.variants["pos"])

    @property
    def n_units(self) -> int:
        """Number of scored units (variants, or variant x gene pairs)."""
        return len(self.units["si"])

    def to_arrays(self) -> dict[str, np.ndarray]:
        """Flat arrays (``n_records`` and ``<group>__<name>`` members) for a job unit."""
        arrays: dict[str, np.ndarray] = {"n_records": np.array(self.n_records)}
        for prefix, group in (("v", self.variants), ("u", self.units), ("x", self.skipped)):
            for key, value in group.items():
                arrays[f"{prefix}__{key}"] = value
        for key, value in self.scores.items():
            arrays[f"s__{key}"] = value
        return arrays

    @classmethod
    def from_arrays(cls, arrays: dict[str, np.ndarray]) -> ScoreChunk:
        """The chunk :meth:`to_arrays` flattened."""
        groups: dict[str, dict[str, np.ndarray]] = {"v": {}, "u": {}, "x": {}, "s": {}}
        for key, value in arrays.items():
            if key == "n_records":
                continue
            prefix, _, name = key.partition("__")
            groups[prefix][name] = value
        n_records = int(arrays["n_records"])
        return cls(groups["v"], groups["u"], groups["s"], groups["x"], n_records)


def str_array(values: Iterable[Any]) -> np.ndarray:
    """``values`` as a numpy unicode array (each through ``str``)."""
    return np.array([str(v) for v in values], dtype=np.str_)


def skipped_arrays(skipped: Sequence[SkippedVariant]) -> dict[str, np.ndarray]:
    """The columns :data:`SKIP_FIELDS` of skipped records."""
    return {
        "line": np.array([-1 if s.line is None else s.line for s in skipped], dtype=np.int64),
        "chrom": str_array(s.chrom for s in skipped),
        "pos": np.array([s.pos for s in skipped], dtype=np.int64),
        "id": str_array(s.id or "" for s in skipped),
        "ref": str_array(s.ref for s in skipped),
        "alt": str_array(s.alt for s in skipped),
        "alt_index": np.array([s.alt_index for s in skipped], dtype=np.int64),
        "reason": str_array(s.reason for s in skipped),
    }


def _prediction_batches(windows: AlleleWindows, size: int) -> list[np.ndarray]:
    """Alt rows grouped so that rows sharing a reference window travel together."""
    order = np.argsort(windows.ref_index, kind="stable")
    batches: list[np.ndarray] = []
    current: list[int] = []
    for j in order.tolist():
        if len(current) >= size and windows.ref_index[j] != windows.ref_index[current[-1]]:
            batches.append(np.array(current))
            current = []
        elif len(current) >= 2 * size:  # a very large group: split it (ref predicted again)
            batches.append(np.array(current))
            current = []
        current.append(j)
    if current:
        batches.append(np.array(current))
    return batches


GeneUnit = tuple[str, str, str, int, str]  # gene_id, name, strand, TSS distance, region


def _window_genes(plan: ScorePlan, p: Placement) -> tuple[OutputBins, dict, dict]:
    """The output bins of a placement, its genes with a TSS there (``GeneBins``) and, when
    exons or bodies are scored, its genes overlapping it (``Gene``), by gene id."""
    geometry = plan.geometry
    out = OutputBins.of(geometry, p.start)
    with_tss = {g.gene_id: g for g in plan.tss.genes_in_window(
        p.chrom, out.start, out.n_bins, out.bin_size, width=plan.tss_width)}  # fmt: skip
    overlapping = {}
    if plan.annotation is not None:
        overlapping = {g.gene_id: g for g in plan.annotation.genes_in(p.chrom, out.start, out.end)}
    return out, with_tss, overlapping


def _gene_units(
    plan: ScorePlan, p: Placement, ref_pred: np.ndarray, alt_pred: np.ndarray
) -> list[tuple[dict[str, np.ndarray], GeneUnit]]:
    """One unit per gene in the window and region of ``plan.gene_score`` that has bins there."""
    out, with_tss, overlapping = _window_genes(plan, p)
    units = []
    for gid in [*with_tss, *(g for g in overlapping if g not in with_tss)]:
        tss_gene, gene = with_tss.get(gid), overlapping.get(gid)
        name = tss_gene.gene_name if tss_gene is not None else gene.name
        strand = tss_gene.strand if tss_gene is not None else gene.strand
        sites = tss_gene.tss if tss_gene is not None else (gene.tss,)
        sign = 1 if strand == "+" else -1
        distance = min((sign * (p.variant.pos0 - t) for t in sites), key=abs)
        bins = {
            "tss": tss_gene.bins if tss_gene is not None else None,
            "exons": out.exon_bins(gene) if gene is not None else None,
            "body": out.interval_bins(gene.start, gene.end) if gene is not None else None,
        }
        other = None
        if plan.track_strands is not None:
            other = np.array([s not in (".", strand) for s in plan.track_strands])
        for region in plan.gene_score:
            if bins[region] is None or bins[region].size == 0:
                continue
            values = compute_scores(ref_pred, alt_pred, plan.base_stats, bins=bins[region])
            if other is not None and other.any():
                values = {k: np.where(other, np.float32(np.nan), v) for k, v in values.items()}
            units.append((values, (gid, name, strand, distance, region)))
    return units


def _score_units(
    plan: ScorePlan, p: Placement, ref_pred: np.ndarray, alt_pred: np.ndarray
) -> list[tuple[dict[str, np.ndarray], GeneUnit | None]]:
    """Statistics of one variant over its scoring window(s): one unit, or one per gene."""
    geometry = plan.geometry
    if plan.tss is not None:
        return list(_gene_units(plan, p, ref_pred, alt_pred))
    if plan.center_bins is not None:
        variant_bin = (p.offset - geometry.offset) // geometry.bin_size
        bins = center_bins(variant_bin, geometry.n_bins, plan.center_bins)
        if bins.size == 0:
            raise ValueError(f"{p.variant.where}: the variant lies outside the model's output bins")
        return [(compute_scores(ref_pred, alt_pred, plan.base_stats, bins=bins), None)]
    return [(compute_scores(ref_pred, alt_pred, plan.base_stats), None)]


def chunk_windows(records: Sequence[Record], genome: Genome, plan: ScorePlan) -> AlleleWindows:
    """The reference and alternative windows of a chunk's variants."""
    return make_allele_windows(
        [r for r in records if isinstance(r, Variant)],
        genome,
        plan.geometry.input_length,
        margin=plan.margin,
        on_ref_mismatch=plan.on_ref_mismatch,  # type: ignore[arg-type]
        group_span=plan.group_span,
    )


def windows_digest(windows: AlleleWindows) -> str:
    """Digest of everything a chunk read from the genome: its windows and REF-check skips.

    Parameters
    ----------
    windows : AlleleWindows
        The chunk's windows.

    Returns
    -------
    str
        :func:`~enformer.io.jobs.sequence_digest` of the one-hot reference and alternative
        windows, their pairing and the skip reasons.
    """
    reasons = "\n".join(f"{s.line}:{s.alt_index}:{s.reason}" for s in windows.skipped)
    return sequence_digest(windows.ref, windows.alt, windows.ref_index, reasons)


def score_chunk(
    model: torch.nn.Module,
    records: Sequence[Record],
    genome: Genome,
    plan: ScorePlan,
    predictor: PredictAlleles,
    bar: Any,
    windows: AlleleWindows | None = None,
) -> ScoreChunk:
    """Score one chunk of records: windows (unless given), predictions, statistics.

    Alternatives sharing a reference window are predicted together (``ref_index``); ``bar``
    advances by the variants predicted.
    """
    if windows is None:
        windows = chunk_windows(records, genome, plan)
    n_tracks = len(plan.tracks)
    per_pred = max(1, plan.geometry.n_bins * n_tracks * 4)
    size = max(plan.batch_size, min(64, _PREDICTION_BUDGET // per_pred))
    unit_scores: list[list[dict[str, np.ndarray]]] = [[] for _ in windows.placements]
    unit_genes: list[list[GeneUnit]] = [[] for _ in windows.placements]
    keep, no_gene = _with_genes(plan, windows.placements)
    for batch in _prediction_batches(windows, size):
        batch = batch[keep[batch]]
        if batch.size == 0:
            continue
        refs, local = np.unique(windows.ref_index[batch], return_inverse=True)
        preds = predictor(
            model,
            torch.from_numpy(windows.ref[refs]),
            torch.from_numpy(windows.alt[batch]),
            ref_index=local.astype(np.int64),
            head=plan.head,
            tracks=plan.tracks,
            strand_pairs=plan.strand_pairs,
            rc=plan.rc,
            shifts=plan.shifts,
            batch_size=plan.batch_size,
            device=plan.device,
        )
        bar.update(len(batch))
        refs_pred, alts_pred = plan.restore(preds.ref), plan.restore(preds.alt)  # each once
        for k, j in enumerate(batch.tolist()):
            ref_pred, alt_pred = refs_pred[local[k]], alts_pred[k]
            for values, gene in _score_units(plan, windows.placements[j], ref_pred, alt_pred):
                unit_scores[j].append(values)
                if gene is not None:
                    unit_genes[j].append(gene)
    placements = [p for j, p in enumerate(windows.placements) if keep[j]]
    unit_scores = [u for j, u in enumerate(unit_scores) if keep[j]]
    unit_genes = [g for j, g in enumerate(unit_genes) if keep[j]]
    vars_ = {
        "id": str_array(p.variant.name for p in placements),
        "chrom": str_array(p.variant.chrom for p in placements),
        "pos": np.array([p.variant.pos for p in placements], dtype=np.int64),
        "ref": str_array(p.variant.ref for p in placements),
        "alt": str_array(p.variant.alt for p in placements),
        "flipped": np.array([p.flipped for p in placements], dtype=np.bool_),
        "line": np.array([p.variant.line or -1 for p in placements], dtype=np.int64),
        "alt_index": np.array([p.variant.alt_index for p in placements], dtype=np.int64),
        "window_start": np.array([p.start for p in placements], dtype=np.int64),
        "offset": np.array([p.offset for p in placements], dtype=np.int64),
    }
    si = np.array([j for j, units in enumerate(unit_scores) for _ in units], dtype=np.int64)
    units: dict[str, np.ndarray] = {"si": si}
    if plan.tss is not None:
        flat = [g for genes in unit_genes for g in genes]
        units["gene_id"] = str_array(g[0] for g in flat)
        units["gene_name"] = str_array(g[1] for g in flat)
        units["gene_strand"] = str_array(g[2] for g in flat)
        units["tss_distance"] = np.array([g[3] for g in flat], dtype=np.int64)
        units["gene_region"] = str_array(g[4] for g in flat)
    scores = {
        s: (
            np.stack([u[s] for units_ in unit_scores for u in units_]).astype(np.float32)
            if len(si)
            else np.zeros((0, n_tracks), dtype=np.float32)
        )
        for s in plan.base_stats
    }
    if plan.background is not None:
        for s in plan.base_stats:
            names = quantile_names(s)
            q = plan.background.quantiles(s, scores[s], regions=units.get("gene_region"))
            scores.update(zip(names, q, strict=True))
    skipped = [r for r in records if isinstance(r, SkippedVariant)]
    skipped_all = _merge_skips(records, skipped, [*windows.skipped, *no_gene])
    return ScoreChunk(vars_, units, scores, skipped_arrays(skipped_all), len(records))


NO_TSS_REASON = "no TSS of the GTF's genes in the output window"


def _with_genes(plan: ScorePlan, placements: Sequence[Placement]) -> tuple[np.ndarray, list]:
    """In gene mode, which placements have a TSS in their output span; the rest, skipped.

    A variant with no gene to read out has no gene-level score: it is reported in the
    skipped table (reason :data:`NO_TSS_REASON`) and counted, not predicted and not dropped.
    """
    keep = np.ones(len(placements), dtype=bool)
    skipped: list[SkippedVariant] = []
    if plan.tss is None:
        return keep, skipped
    for j, p in enumerate(placements):
        _, with_tss, overlapping = _window_genes(plan, p)
        if not with_tss and not overlapping:
            keep[j] = False
            v = p.variant
            skipped.append(
                SkippedVariant(
                    v.chrom, v.pos, v.ref, v.alt, v.id, v.line, NO_TSS_REASON, v.source,
                    v.alt_index,
                )
            )  # fmt: skip
    return keep, skipped


def _merge_skips(
    records: Sequence[Record], from_reader: list[SkippedVariant], from_ref: list[SkippedVariant]
) -> list[SkippedVariant]:
    """Skipped records of both sources, in input order."""
    if not from_ref:
        return from_reader
    later: dict[tuple[Any, ...], list[SkippedVariant]] = {}
    for s in from_ref:
        later.setdefault((s.line, s.alt_index, s.chrom, s.pos, s.ref, s.alt), []).append(s)
    out: list[SkippedVariant] = []
    for r in records:
        if isinstance(r, SkippedVariant):
            out.append(r)
            continue
        waiting = later.get((r.line, r.alt_index, r.chrom, r.pos, r.ref, r.alt))
        if waiting:
            out.append(waiting.pop(0))
    return out


def empty_chunk(plan: ScorePlan) -> ScoreChunk:
    """A chunk with no rows and every column of ``plan``'s outputs (for empty inputs)."""
    variants = {k: np.zeros(0, dtype=np.str_) for k in VARIANT_FIELDS}
    for k in ("pos", "line", "alt_index", "window_start", "offset"):
        variants[k] = np.zeros(0, dtype=np.int64)
    variants["flipped"] = np.zeros(0, dtype=np.bool_)
    units: dict[str, np.ndarray] = {"si": np.zeros(0, dtype=np.int64)}
    if plan.tss is not None:
        units.update({k: np.zeros(0, dtype=np.str_) for k in GENE_FIELDS})
        units["tss_distance"] = np.zeros(0, dtype=np.int64)
    scores = {s: np.zeros((0, len(plan.tracks)), dtype=np.float32) for s in plan.stats}
    return ScoreChunk(variants, units, scores, skipped_arrays([]), 0)
