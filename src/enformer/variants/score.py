"""Score variants with a model: windows -> predictions -> statistics -> outputs.

:func:`score_variants` returns a tidy :class:`pandas.DataFrame` (one row per variant x track,
or variant x gene x track with ``genes_gtf``); :func:`write_scores` streams a VCF/TSV of any
size into Parquet, TSV, HDF5 (basenji's ``sad.h5`` layout) or an annotated VCF, resumably.

How a variant is scored
-----------------------
1. Its reference and alternative windows are built by :mod:`enformer.variants.sequences`
   (placement :data:`~enformer.variants.sequences.PLACEMENT`, indel anchoring, REF check).
2. Both are predicted by :func:`predict_alleles` (or the ``predictor`` given): every requested
   copy (shifts, reverse complement) is predicted and the copies are averaged per bin, the
   reverse-complement copies after flipping their bins back and swapping strand-paired tracks.
   Averaging happens **before** any statistic is computed.
3. The statistics of :mod:`enformer.variants.scores` are computed over the scoring window:
   all output bins, ``center_bins`` bins around the variant's bin, or the bins around the TSSs
   of each gene whose TSS lies in the output (``genes_gtf``).

Models run in one function with the signature of :func:`predict_alleles` (full forwards of
every window, the reference implementation). By default the scorer uses
:func:`enformer.variants.reuse.predict_alleles_reuse`, which gives the same numbers while
reusing the reference's conv-tower activations for its alternatives. Another implementation
can be passed as ``predictor=`` (``predictor=predict_alleles`` for the naive one) or
installed by assigning ``enformer.variants.score.predict_alleles``; the scorer looks the
module attribute up at call time.

Resuming
--------
:func:`write_scores` reads the input in chunks of ``chunk_size`` records (variants and skipped
alleles, in input order). Each finished chunk is written atomically (temporary file, then
:func:`os.replace`) to a work directory together with a hash of every setting that affects the
numbers (the input file enters by the digest of its bytes, the genome by its chromosome names
and lengths). Each chunk also stores :func:`windows_digest` of the genome windows it was
computed from; on resume the windows are built again from the current genome and a chunk whose
bases differ (a FASTA replaced at the same path) is computed again, with a warning. A killed
run started again with the same settings skips the finished chunks and goes on; the final
files are assembled from the chunks in order, written to temporary names and moved into place
with :func:`os.replace`, so no row is lost or duplicated. ``<stem>.settings.json`` is removed
before and written after the outputs, so it only ever describes complete files.

One run per output
------------------
The work directory is claimed with a :class:`~enformer.io.jobs.JobLock` before anything in it is
touched and held for the run's lifetime; a second run into the same output (work directory)
while the first is alive is refused with :class:`~enformer.io.jobs.JobLockedError`, and a
run that fails on its inputs removes the directories it created. The operating system frees
the lock of a killed process, so the next run resumes. A run given its own ``work_dir`` also
locks ``.<out name>.lock`` beside the output (removed afterwards), so that runs with different
work directories cannot write one output at once either.

Several processes or devices
----------------------------
The same chunk files let ``n`` processes share one input: process ``k`` of ``n`` (``shard=(k,
n)``, e.g. one per GPU with its own ``device``) computes the chunks ``i`` with ``i % n == k``
into a common ``work_dir``; a final run without ``shard`` finds every chunk done and only
assembles the outputs. Shards hold the lock shared (they run side by side), each shard's own
lock exclusively (the same shard cannot run twice); the final run is refused while a shard is
alive, and a shard is refused while a plain run is.
"""

from __future__ import annotations

import contextlib
import gzip
import io
import json
import logging
import os
import re
import time
import zipfile
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import IO, Any, Literal, NamedTuple

import numpy as np
import torch

from ..version import __version__
from ..data.annotation import TSSIndex, center_bins
from ..data.genome import Genome
from ..data.tracks import TrackSheet
from ..runtime import parse_device
from ..inference.predict import (
    Engine,
    OutputGeometry,
    check_shifts,
    output_geometry,
    progress_bar,
    resolve_strand_pairs,
    resolve_tracks,
)
from ..io.jobs import (
    JobLock,
    atomic_path,
    file_fingerprint,
    genome_fingerprint,
    model_fingerprint,
    sequence_digest,
    settings_digest,
    write_bytes_atomic,
)
from .io import Record, SkippedVariant, Variant, chunked, detect_format, iter_records
from .scores import SCORE_FORMULAS, compute_scores, resolve_stats
from .sequences import (
    INDEL_ANCHORING,
    PLACEMENT,
    PLACEMENT_DESCRIPTION,
    AlleleWindows,
    Placement,
    make_allele_windows,
)

__all__ = [
    "AllelePredictions",
    "DEFAULT_CHUNK_SIZE",
    "OUTPUT_FORMATS",
    "ScoreChunk",
    "output_format",
    "predict_alleles",
    "score_variants",
    "windows_digest",
    "write_scores",
]

logger = logging.getLogger(__name__)

DEFAULT_CHUNK_SIZE = 64
"""Records per resumable chunk of :func:`write_scores`."""

OUTPUT_FORMATS = {
    ".parquet": "parquet",
    ".pq": "parquet",
    ".tsv": "tsv",
    ".tsv.gz": "tsv",
    ".h5": "h5",
    ".hdf5": "h5",
    ".vcf": "vcf",
    ".vcf.gz": "vcf",
    ".vcf.bgz": "vcf",
}
"""Output suffix -> format."""

_PREDICTION_BUDGET = 512 * 1024 * 1024  # bytes of float32 predictions held per predictor call
_WORK_SUFFIX = ".enformer-work"
_FLOAT_FORMAT = "%.9g"  # round-trips float32 exactly


# ------------------------------------------------------------------------------------------
# Predicting ref and alt
# ------------------------------------------------------------------------------------------


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
    if head not in config.heads:
        raise ValueError(f"the model has no head {head!r}; it has {', '.join(config.heads)}")
    chosen = list(range(config.heads[head])) if tracks is None else [int(t) for t in tracks]
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
    ref = torch.as_tensor(ref_onehot)
    alt = torch.as_tensor(alt_onehot)
    if ref.dim() != 3 or alt.dim() != 3 or ref.shape[1:] != alt.shape[1:] or ref.shape[-1] != 4:
        raise ValueError(
            "ref_onehot and alt_onehot must be (n, length, 4) with equal lengths, got "
            f"{tuple(ref.shape)} and {tuple(alt.shape)}"
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
                length = x.shape[1] - 2 * engine.margin
                bins = output_geometry(config, length).n_bins
                outputs.append(np.zeros((0, bins, len(chosen)), dtype=np.float32))
    return AllelePredictions(outputs[0], outputs[1])


# The full-forward implementation; the default scorer uses the exact-reuse one instead
# (enformer.variants.reuse), which gives the same numbers faster.
_NAIVE_PREDICT_ALLELES = predict_alleles


@contextlib.contextmanager
def _model_on(model: torch.nn.Module, device: torch.device) -> Iterator[None]:
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


# ------------------------------------------------------------------------------------------
# The plan: every resolved setting
# ------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class _Plan:
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

    @property
    def margin(self) -> int:
        return max(abs(s) for s in self.shifts)

    @property
    def window_mode(self) -> str:
        return "genes" if self.tss is not None else "center" if self.center_bins else "all"

    @property
    def track_labels(self) -> list[str]:
        if self.identifiers is not None:
            return list(self.identifiers)
        return [f"t{i}" for i in self.tracks]


def _load_sheet(track_sheet: TrackSheet | str | os.PathLike[str] | None, head: str) -> Any:
    if track_sheet is None or isinstance(track_sheet, TrackSheet):
        return track_sheet
    return TrackSheet.read(track_sheet, head=head)


def _index_selection(spec: str) -> Any:
    """``'0,5,10-12'`` -> ``[0, 5, 10, 11, 12]`` (ranges inclusive); other text unchanged."""
    if spec.strip().lower() in ("all", "*"):
        return None
    if not re.fullmatch(r"\s*\d+(\s*-\s*\d+)?(\s*,\s*\d+(\s*-\s*\d+)?)*\s*", spec):
        return spec
    out: list[int] = []
    for term in spec.split(","):
        lo, _, hi = term.partition("-")
        start, stop = int(lo), int(hi) if hi.strip() else int(lo)
        if stop < start:
            raise ValueError(f"track range {term.strip()!r} is reversed")
        out.extend(range(start, stop + 1))
    return out


def _make_plan(
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
    on_ref_mismatch: str,
    group_span: int | None,
    batch_size: int,
    device: str | torch.device | None,
) -> _Plan:
    config = model.config
    if head not in config.heads:
        raise ValueError(f"the model has no head {head!r}; it has {', '.join(config.heads)}")
    names = resolve_stats(stats)
    sheet = _load_sheet(track_sheet, head)
    if sheet is None and isinstance(tracks, str):
        tracks = _index_selection(tracks)
    indices, identifiers = resolve_tracks(config, [head], tracks, sheet)
    pairs = resolve_strand_pairs(config, [head], None, sheet)[head]
    if rc and pairs is None:
        logger.info(
            "reverse-complement averaging without a track sheet: no strand-paired tracks are "
            "swapped (pass track_sheet/--targets for stranded tracks)"
        )
    shift_tuple = check_shifts(shifts, config.bin_size)
    geometry = output_geometry(config, config.sequence_length)
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
    if int(batch_size) < 1:
        raise ValueError(f"batch_size must be >= 1, got {batch_size}")
    tss: TSSIndex | None = None
    genes_label: str | None = None
    if isinstance(genes_gtf, TSSIndex):
        tss, genes_label = genes_gtf, "<TSSIndex>"
    elif genes_gtf is not None:
        tss, genes_label = TSSIndex.from_gtf(genes_gtf), str(Path(genes_gtf))
    if device is None:
        try:
            run_device = next(model.parameters()).device
        except StopIteration:
            run_device = torch.device("cpu")
    else:
        run_device = parse_device(device)
    chosen = indices[head]
    descriptions = [sheet[i].description for i in chosen] if sheet is not None else None
    window: dict[str, Any] = {"mode": "all", "bins": geometry.n_bins}
    if center_bins is not None:
        window = {"mode": "center", "center_bins": int(center_bins)}
    elif tss is not None:
        window = {"mode": "genes", "genes_gtf": genes_label, "tss_width_bins": int(tss_width)}
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
        "track_identifiers": identifiers.get(head),
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
    return _Plan(
        stats=names,
        head=head,
        tracks=chosen,
        identifiers=identifiers.get(head),
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
    )


# ------------------------------------------------------------------------------------------
# Scoring one chunk
# ------------------------------------------------------------------------------------------

_VARIANT_FIELDS = (
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
_GENE_FIELDS = ("gene_id", "gene_name", "gene_strand", "tss_distance")
_SKIP_FIELDS = ("line", "chrom", "pos", "id", "ref", "alt", "alt_index", "reason")


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
        with genes, ``gene_id``, ``gene_name``, ``gene_strand``, ``tss_distance``.
    scores : dict of str to numpy.ndarray
        float32 ``(units, tracks)`` per statistic.
    skipped : dict of str to numpy.ndarray
        Per skipped record: ``line, chrom, pos, id, ref, alt, alt_index, reason``.
    n_records : int
        Input records (variants and skipped alleles) the chunk covers.
    input_digest : str
        :func:`~enformer.io.jobs.sequence_digest` of the windows the chunk was computed from
        (see :func:`windows_digest`); empty if unknown.
    """

    variants: dict[str, np.ndarray]
    units: dict[str, np.ndarray]
    scores: dict[str, np.ndarray]
    skipped: dict[str, np.ndarray]
    n_records: int
    input_digest: str = ""

    @property
    def n_variants(self) -> int:
        """Number of scored variants."""
        return len(self.variants["pos"])

    @property
    def n_units(self) -> int:
        """Number of scored units (variants, or variant x gene pairs)."""
        return len(self.units["si"])

    def save(self, path: Path) -> None:
        """Write atomically to ``path`` (``.npz``; temporary file, fsync, rename)."""
        arrays: dict[str, np.ndarray] = {
            "n_records": np.array(self.n_records),
            "input_digest": np.array(self.input_digest),
        }
        for prefix, group in (("v", self.variants), ("u", self.units), ("x", self.skipped)):
            for key, value in group.items():
                arrays[f"{prefix}__{key}"] = value
        for key, value in self.scores.items():
            arrays[f"s__{key}"] = value
        with atomic_path(path) as tmp, open(tmp, "wb") as fh:
            np.savez(fh, **arrays)

    @classmethod
    def load(cls, path: Path) -> ScoreChunk:
        """Read a chunk written by :meth:`save`."""
        with np.load(path, allow_pickle=False) as data:
            groups: dict[str, dict[str, np.ndarray]] = {"v": {}, "u": {}, "x": {}, "s": {}}
            for key in data.files:
                if key in ("n_records", "input_digest"):
                    continue
                prefix, _, name = key.partition("__")
                groups[prefix][name] = data[key]
            n_records = int(data["n_records"])
            digest = str(data["input_digest"]) if "input_digest" in data.files else ""
        return cls(groups["v"], groups["u"], groups["s"], groups["x"], n_records, digest)

    @staticmethod
    def stored_digest(path: Path) -> str | None:
        """The ``input_digest`` stored in a chunk file (``None`` if absent or unreadable)."""
        try:
            with np.load(path, allow_pickle=False) as data:
                return str(data["input_digest"]) if "input_digest" in data.files else None
        except (OSError, ValueError, zipfile.BadZipFile):
            return None


def _str_array(values: Iterable[Any]) -> np.ndarray:
    return np.array([str(v) for v in values], dtype=np.str_)


def _skipped_arrays(skipped: Sequence[SkippedVariant]) -> dict[str, np.ndarray]:
    return {
        "line": np.array([-1 if s.line is None else s.line for s in skipped], dtype=np.int64),
        "chrom": _str_array(s.chrom for s in skipped),
        "pos": np.array([s.pos for s in skipped], dtype=np.int64),
        "id": _str_array(s.id or "" for s in skipped),
        "ref": _str_array(s.ref for s in skipped),
        "alt": _str_array(s.alt for s in skipped),
        "alt_index": np.array([s.alt_index for s in skipped], dtype=np.int64),
        "reason": _str_array(s.reason for s in skipped),
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


def _score_units(
    plan: _Plan, p: Placement, ref_pred: np.ndarray, alt_pred: np.ndarray
) -> list[tuple[dict[str, np.ndarray], tuple[str, str, str, int] | None]]:
    """Statistics of one variant over its scoring window(s): one unit, or one per gene."""
    geometry = plan.geometry
    if plan.tss is not None:
        units: list[tuple[dict[str, np.ndarray], tuple[str, str, str, int] | None]] = []
        output_start = p.start + geometry.offset  # genomic start of output bin 0
        for gene in plan.tss.genes_in_window(
            p.chrom, output_start, geometry.n_bins, geometry.bin_size, width=plan.tss_width
        ):
            sign = 1 if gene.strand == "+" else -1
            distance = min((sign * (p.variant.pos0 - t) for t in gene.tss), key=abs)
            units.append(
                (
                    compute_scores(ref_pred, alt_pred, plan.stats, bins=gene.bins),
                    (gene.gene_id, gene.gene_name, gene.strand, distance),
                )
            )
        return units
    if plan.center_bins is not None:
        variant_bin = (p.offset - geometry.offset) // geometry.bin_size
        bins = center_bins(variant_bin, geometry.n_bins, plan.center_bins)
        if bins.size == 0:
            raise ValueError(f"{p.variant.where}: the variant lies outside the model's output bins")
        return [(compute_scores(ref_pred, alt_pred, plan.stats, bins=bins), None)]
    return [(compute_scores(ref_pred, alt_pred, plan.stats), None)]


def _chunk_windows(records: Sequence[Record], genome: Genome, plan: _Plan) -> AlleleWindows:
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


def _score_chunk(
    model: torch.nn.Module,
    records: Sequence[Record],
    genome: Genome,
    plan: _Plan,
    predictor: PredictAlleles,
    bar: Any,
    windows: AlleleWindows | None = None,
) -> ScoreChunk:
    if windows is None:
        windows = _chunk_windows(records, genome, plan)
    n_tracks = len(plan.tracks)
    per_pred = max(1, plan.geometry.n_bins * n_tracks * 4)
    size = max(plan.batch_size, min(64, _PREDICTION_BUDGET // per_pred))
    unit_scores: list[list[dict[str, np.ndarray]]] = [[] for _ in windows.placements]
    unit_genes: list[list[tuple[str, str, str, int]]] = [[] for _ in windows.placements]
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
        for k, j in enumerate(batch.tolist()):
            ref_pred = np.asarray(preds.ref[local[k]], dtype=np.float32)
            alt_pred = np.asarray(preds.alt[k], dtype=np.float32)
            for values, gene in _score_units(plan, windows.placements[j], ref_pred, alt_pred):
                unit_scores[j].append(values)
                if gene is not None:
                    unit_genes[j].append(gene)
    placements = [p for j, p in enumerate(windows.placements) if keep[j]]
    unit_scores = [u for j, u in enumerate(unit_scores) if keep[j]]
    unit_genes = [g for j, g in enumerate(unit_genes) if keep[j]]
    vars_ = {
        "id": _str_array(p.variant.name for p in placements),
        "chrom": _str_array(p.variant.chrom for p in placements),
        "pos": np.array([p.variant.pos for p in placements], dtype=np.int64),
        "ref": _str_array(p.variant.ref for p in placements),
        "alt": _str_array(p.variant.alt for p in placements),
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
        units["gene_id"] = _str_array(g[0] for g in flat)
        units["gene_name"] = _str_array(g[1] for g in flat)
        units["gene_strand"] = _str_array(g[2] for g in flat)
        units["tss_distance"] = np.array([g[3] for g in flat], dtype=np.int64)
    scores = {
        s: (
            np.stack([u[s] for units_ in unit_scores for u in units_]).astype(np.float32)
            if len(si)
            else np.zeros((0, n_tracks), dtype=np.float32)
        )
        for s in plan.stats
    }
    skipped = [r for r in records if isinstance(r, SkippedVariant)]
    skipped_all = _merge_skips(records, skipped, [*windows.skipped, *no_gene])
    return ScoreChunk(vars_, units, scores, _skipped_arrays(skipped_all), len(records))


NO_TSS_REASON = "no TSS of the GTF's genes in the output window"


def _with_genes(plan: _Plan, placements: Sequence[Placement]) -> tuple[np.ndarray, list]:
    """In gene mode, which placements have a TSS in their output span; the rest, skipped.

    A variant with no gene to read out has no gene-level score: it is reported in the
    skipped table (reason :data:`NO_TSS_REASON`) and counted, not predicted and not dropped.
    """
    keep = np.ones(len(placements), dtype=bool)
    skipped: list[SkippedVariant] = []
    if plan.tss is None:
        return keep, skipped
    geometry = plan.geometry
    for j, p in enumerate(placements):
        genes = plan.tss.genes_in_window(
            p.chrom,
            p.start + geometry.offset,
            geometry.n_bins,
            geometry.bin_size,
            width=plan.tss_width,
        )
        if not genes:
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


# ------------------------------------------------------------------------------------------
# Tables
# ------------------------------------------------------------------------------------------


def _unit_columns(chunk: ScoreChunk, plan: _Plan) -> dict[str, np.ndarray]:
    si = chunk.units["si"]
    cols: dict[str, np.ndarray] = {
        name: chunk.variants[name][si] for name in ("id", "chrom", "pos", "ref", "alt", "flipped")
    }
    if plan.group_span is not None:
        cols["window_start"] = chunk.variants["window_start"][si]
        cols["offset"] = chunk.variants["offset"][si]
    if plan.tss is not None:
        for name in _GENE_FIELDS:
            cols[name] = chunk.units[name]
    return cols


def _tidy_frame(chunk: ScoreChunk, plan: _Plan) -> Any:
    """One row per unit x track."""
    import pandas as pd

    n_tracks = len(plan.tracks)
    cols = {k: np.repeat(v, n_tracks) for k, v in _unit_columns(chunk, plan).items()}
    cols["track"] = np.tile(np.asarray(plan.tracks, dtype=np.int64), chunk.n_units)
    if plan.identifiers is not None:
        cols["identifier"] = np.tile(_str_array(plan.identifiers), chunk.n_units)
    if plan.descriptions is not None:
        cols["description"] = np.tile(_str_array(plan.descriptions), chunk.n_units)
    for s in plan.stats:
        cols[s] = chunk.scores[s].reshape(-1).astype(np.float32)
    return pd.DataFrame(cols)


def _wide_frame(chunk: ScoreChunk, plan: _Plan) -> Any:
    """One row per unit; a column per statistic and track (``{stat}_{identifier}``)."""
    import pandas as pd

    cols: dict[str, np.ndarray] = dict(_unit_columns(chunk, plan))
    labels = plan.track_labels
    for s in plan.stats:
        values = chunk.scores[s].astype(np.float32)
        for k, label in enumerate(labels):
            cols[f"{s}_{label}"] = values[:, k]
    return pd.DataFrame(cols)


def _skipped_frame(chunks: Iterable[ScoreChunk]) -> Any:
    import pandas as pd

    frames = [pd.DataFrame({k: c.skipped[k] for k in _SKIP_FIELDS}) for c in chunks]
    frames = [f for f in frames if len(f)]
    if not frames:
        return pd.DataFrame({k: pd.Series(dtype=object) for k in _SKIP_FIELDS})
    return pd.concat(frames, ignore_index=True)


# ------------------------------------------------------------------------------------------
# score_variants
# ------------------------------------------------------------------------------------------


def _open_genome(genome: Genome | str | os.PathLike[str]) -> tuple[Genome, bool]:
    if isinstance(genome, Genome):
        return genome, False
    return Genome(genome), True


def _resolve_predictor(predictor: PredictAlleles | None) -> PredictAlleles:
    """The given predictor; else an installed replacement; else the exact-reuse one."""
    if predictor is not None:
        return predictor
    import sys

    current = sys.modules[__name__].predict_alleles
    if current is not _NAIVE_PREDICT_ALLELES:
        return current
    from .reuse import predict_alleles_reuse

    return predict_alleles_reuse


def _iter_chunks(
    model: torch.nn.Module,
    records: Iterator[Record],
    genome: Genome,
    plan: _Plan,
    predictor: PredictAlleles,
    chunk_size: int,
    bar: Any,
) -> Iterator[ScoreChunk]:
    with _model_on(model, plan.device):
        for block in chunked(records, chunk_size):
            chunk = _score_chunk(model, block, genome, plan, predictor, bar)
            bar.update(len(block) - chunk.n_variants)  # skipped records
            yield chunk


def score_variants(
    model: torch.nn.Module,
    variants: str | os.PathLike[str] | Iterable[Variant | str],
    genome: Genome | str | os.PathLike[str],
    *,
    stats: str | Sequence[str] = ("SAD",),
    tracks: Any = None,
    track_sheet: TrackSheet | str | os.PathLike[str] | None = None,
    head: str = "human",
    rc: bool = False,
    shifts: Sequence[int] = (0,),
    genes_gtf: str | os.PathLike[str] | TSSIndex | None = None,
    center_bins: int | None = None,
    tss_width: int = 3,
    on_ref_mismatch: Literal["fail", "skip", "flip"] = "fail",
    group_span: int | None = None,
    batch_size: int = 1,
    device: str | torch.device | None = None,
    progress: bool = True,
    predictor: PredictAlleles | None = None,
) -> Any:
    """Score variants; return a tidy table.

    Parameters
    ----------
    model : torch.nn.Module
        An :class:`~enformer.model.Enformer`; left on its device and in its mode afterwards.
    variants : path or iterable
        A VCF/VCF.gz/BCF or TSV file (``chrom pos ref alt [id]``), or an iterable of
        :class:`~enformer.variants.io.Variant` objects and ``'chr:pos:ref>alt'`` strings.
        Multi-allelic records are split; unscorable ALTs are skipped (see below).
    genome : Genome or path
        Reference FASTA (indexed). REF alleles are checked against it.
    stats : str or sequence of str, optional
        Statistics (:data:`~enformer.variants.scores.SCORE_FORMULAS`), e.g. ``'SAD,logSED'``.
    tracks : object, optional
        Tracks to score: ``None`` (all), indices, or with ``track_sheet`` anything
        :meth:`~enformer.data.tracks.TrackSheet.select` accepts (``'assay:CAGE'``).
    track_sheet : TrackSheet or path, optional
        The head's track sheet: names for ``tracks``, identifier and description columns, and
        the strand pairs swapped for reverse-complement copies.
    head : str, optional
        Output head (default ``'human'``).
    rc : bool, optional
        Average predictions of the forward and reverse-complement windows before scoring.
    shifts : sequence of int, optional
        Average predictions of windows shifted by these many bp (e.g. ``(-1, 0, 1)``); shifted
        windows read real genome bases.
    genes_gtf : path or TSSIndex, optional
        Score each gene whose TSS lies in the variant's output span, over the ``tss_width``
        bins around its TSS(s); one row per variant x gene x track. A variant with no TSS in
        its output span is not predicted: it goes to the skipped table with the reason
        ``"no TSS of the GTF's genes in the output window"``, so every input is accounted for.
    center_bins : int, optional
        Score only the ``center_bins`` bins centred on the variant's bin.
    tss_width : int, optional
        Bins around each TSS (default 3).
    on_ref_mismatch : {'fail', 'skip', 'flip'}, optional
        What to do when REF does not match the genome (see :mod:`enformer.variants.sequences`).
    group_span : int, optional
        Let variants within this many bp share one reference window (placement recorded in
        the ``window_start`` and ``offset`` columns).
    batch_size : int, optional
        Sequences per forward pass.
    device : str or torch.device, optional
        Device to run on (default: the model's).
    progress : bool, optional
        Show a progress bar.
    predictor : callable, optional
        Replacement for :func:`predict_alleles` (same signature).

    Returns
    -------
    pandas.DataFrame
        One row per variant x track (x gene): ``id, chrom, pos, ref, alt, flipped``
        [``window_start, offset``] [``gene_id, gene_name, gene_strand, tss_distance``]
        ``track`` [``identifier, description``] and one float32 column per statistic, in input
        order. ``df.attrs['skipped']`` holds the skipped variants (with ``reason``) and
        ``df.attrs['metadata']`` the formulas and settings.

    Raises
    ------
    ValueError
        For malformed input lines, unknown chromosomes or, under ``'fail'``, REF mismatches
        (naming file and line), and for invalid settings.
    """
    import pandas as pd

    genome_obj, opened = _open_genome(genome)
    try:
        plan = _make_plan(
            model,
            genome_obj,
            stats=stats,
            tracks=tracks,
            track_sheet=track_sheet,
            head=head,
            rc=rc,
            shifts=shifts,
            genes_gtf=genes_gtf,
            center_bins=center_bins,
            tss_width=tss_width,
            on_ref_mismatch=on_ref_mismatch,
            group_span=group_span,
            batch_size=batch_size,
            device=device,
        )
        total = _count_records(variants) if progress else None
        bar = progress_bar(total, "score", progress, unit="variant")
        try:
            chunks = list(
                _iter_chunks(
                    model,
                    iter_records(variants),
                    genome_obj,
                    plan,
                    _resolve_predictor(predictor),
                    DEFAULT_CHUNK_SIZE,
                    bar,
                )
            )
        finally:
            bar.close()
    finally:
        if opened:
            genome_obj.close()
    frames = [_tidy_frame(c, plan) for c in chunks if c.n_units]
    if frames:
        table = pd.concat(frames, ignore_index=True)
    else:
        table = _tidy_frame(_empty_chunk(plan), plan)
    table.attrs["skipped"] = _skipped_frame(chunks)
    table.attrs["metadata"] = plan.metadata
    return table


# ------------------------------------------------------------------------------------------
# write_scores: resumable, streaming, any format
# ------------------------------------------------------------------------------------------


def output_format(path: str | os.PathLike[str]) -> str:
    """Output format from a file name: ``parquet``, ``tsv``, ``h5`` or ``vcf``.

    Parameters
    ----------
    path : str or os.PathLike
        Output file name.

    Returns
    -------
    str
        The format.

    Raises
    ------
    ValueError
        For an unknown suffix.
    """
    name = Path(path).name.lower()
    for suffix in sorted(OUTPUT_FORMATS, key=len, reverse=True):
        if name.endswith(suffix):
            return OUTPUT_FORMATS[suffix]
    raise ValueError(
        f"cannot tell the output format of {Path(path).name}; use one of "
        f"{', '.join(OUTPUT_FORMATS)}"
    )


def _stem(path: Path) -> Path:
    name = path.name
    for suffix in sorted(OUTPUT_FORMATS, key=len, reverse=True):
        if name.lower().endswith(suffix):
            return path.with_name(name[: -len(suffix)])
    return path


def _input_identity(source: Any) -> Any:
    """A file input by content (size and digest of its bytes); ``None`` for other inputs."""
    if isinstance(source, str | os.PathLike):
        return file_fingerprint(source)
    return None


def _count_records(source: Any) -> int | None:
    """Number of ALT alleles of a file (for the progress bar); ``None`` if unknown."""
    if not isinstance(source, str | os.PathLike):
        return len(source) if isinstance(source, Sequence) else None
    try:
        return sum(1 for _ in iter_records(source))
    except (ValueError, OSError):
        return None


class _WorkDir:
    """Chunk files and the settings hash of one resumable run, under its :class:`JobLock`.

    The lock must be held; a shard holds it shared and never deletes chunks (only a run that
    holds it exclusively discards the chunks of a run with other settings or torn files).
    """

    def __init__(
        self, lock: JobLock, settings: dict[str, Any], resume: bool, sharded: bool = False
    ) -> None:
        self.lock = lock
        self.path = lock.directory
        self.sharded = sharded
        self.hash = settings_digest(settings)
        marker = self.path / "settings.json"
        with lock.setup():
            previous = None
            if marker.exists():
                try:
                    previous = json.loads(marker.read_text()).get("hash")
                except (OSError, ValueError):
                    previous = None
            if previous == self.hash and resume:
                return
            if sharded and previous is not None:
                raise ValueError(
                    f"work directory {self.path} holds chunks of a run with other settings (or "
                    "resume is off); a shard never deletes them: give every shard the same "
                    "settings, or remove the directory"
                )
            if previous is not None and previous != self.hash:
                logger.warning(
                    "work directory %s holds chunks of a run with other settings; starting over",
                    self.path,
                )
            for f in self.path.glob("chunk_*"):
                f.unlink()
            write_bytes_atomic(
                marker,
                json.dumps(
                    {"hash": self.hash, "settings": settings}, indent=2, default=str
                ).encode(),
            )

    def chunk_path(self, k: int) -> Path:
        return self.path / f"chunk_{k:07d}.npz"

    def finished(self) -> set[int]:
        """Indices of the chunks already written (a sole owner removes torn temporary files)."""
        done: set[int] = set()
        for f in self.path.glob("chunk_*"):
            if f.name.endswith(".npz"):
                done.add(int(f.name[6:-4]))
            elif not self.sharded:
                f.unlink(missing_ok=True)
        if not self.sharded:
            for f in self.path.glob(".chunk_*.tmp-*"):
                f.unlink(missing_ok=True)
        return done

    def chunks(self, n: int) -> Iterator[ScoreChunk]:
        for k in range(n):
            yield ScoreChunk.load(self.chunk_path(k))


def write_scores(
    model: torch.nn.Module,
    variants: str | os.PathLike[str] | Iterable[Variant | str],
    genome: Genome | str | os.PathLike[str],
    out: str | os.PathLike[str],
    *,
    stats: str | Sequence[str] = ("SAD",),
    tracks: Any = None,
    track_sheet: TrackSheet | str | os.PathLike[str] | None = None,
    head: str = "human",
    rc: bool = False,
    shifts: Sequence[int] = (0,),
    genes_gtf: str | os.PathLike[str] | None = None,
    center_bins: int | None = None,
    tss_width: int = 3,
    on_ref_mismatch: Literal["fail", "skip", "flip"] = "fail",
    group_span: int | None = None,
    batch_size: int = 1,
    device: str | torch.device | None = None,
    progress: bool = True,
    predictor: PredictAlleles | None = None,
    wide: bool = False,
    vcf_tracks: Any = None,
    chunk_size: int = DEFAULT_CHUNK_SIZE,
    work_dir: str | os.PathLike[str] | None = None,
    resume: bool = True,
    keep_work: bool = False,
    model_name: str | None = None,
    shard: tuple[int, int] | None = None,
) -> dict[str, Any]:
    """Score variants into a file, streaming and resumably.

    Writes ``out`` (format from its suffix: ``.parquet``, ``.tsv[.gz]``, ``.h5``,
    ``.vcf[.gz]``), ``<stem>.skipped.tsv`` (skipped variants with the reason) and
    ``<stem>.settings.json`` (formulas, placement convention, model and every setting).

    Parameters
    ----------
    model, variants, genome, stats, tracks, track_sheet, head, rc, shifts, genes_gtf,
    center_bins, tss_width, on_ref_mismatch, group_span, batch_size, device, progress, predictor
        As for :func:`score_variants`.
    out : str or os.PathLike
        Output file.
    wide : bool, optional
        Parquet/TSV: one row per variant (x gene), a column ``{stat}_{identifier}`` per
        statistic and track, instead of one row per track.
    vcf_tracks : object, optional
        VCF output: the tracks to annotate (a selection like ``tracks``, among the scored
        ones; default all scored tracks). Each statistic and track becomes an INFO field
        ``ENFORMER_{stat}_T{track}`` (``Number=A``: one value per ALT allele, ``.`` for a
        skipped ALT; 6 significant digits, the exact float32 values are in the other
        formats). A VCF input is copied with the fields added; other inputs give a new VCF.
    chunk_size : int, optional
        Input records per resumable chunk.
    work_dir : str or os.PathLike, optional
        Where finished chunks are kept (default ``<out>.enformer-work``). Removed after
        success unless ``keep_work``.
    resume : bool, optional
        Reuse finished chunks of an interrupted run with the same settings (default True).
    keep_work : bool, optional
        Keep the work directory after success.
    model_name : str, optional
        Where the weights came from, recorded in the metadata.
    shard : (int, int), optional
        ``(k, n)``: compute only the chunks ``i`` with ``i % n == k`` (0-based ``k``) into the
        work directory and write no output, so that ``n`` processes, e.g. one per GPU, share
        the work. Give every shard the same settings and ``work_dir``; afterwards a run
        without ``shard`` assembles the outputs (computing any chunk still missing).

    Returns
    -------
    dict
        Summary: output paths, counts (variants scored and skipped, rows), resumed chunks,
        seconds and variants per second. For a shard: the chunks it computed and whether
        every chunk of the input is now present.

    Raises
    ------
    ValueError
        As for :func:`score_variants`; also for VCF output with ``genes_gtf``.
    """
    t0 = time.perf_counter()
    out = Path(out)
    fmt = output_format(out)
    if fmt == "vcf" and genes_gtf is not None:
        raise ValueError(
            "VCF output holds one value per variant and track; gene scores (genes_gtf / --genes) "
            "need a .parquet, .tsv or .h5 output"
        )
    if wide and fmt not in ("parquet", "tsv"):
        raise ValueError(f"wide output is for .parquet and .tsv files, not {fmt}")
    if int(chunk_size) < 1:
        raise ValueError(f"chunk_size must be >= 1, got {chunk_size}")
    if shard is not None:
        shard = (int(shard[0]), int(shard[1]))
        if not 0 <= shard[0] < shard[1]:
            raise ValueError(f"shard must be (k, n) with 0 <= k < n, got {shard}")
    if not isinstance(variants, str | os.PathLike) and not isinstance(variants, Sequence):
        variants = list(variants)
    genome_obj, opened = _open_genome(genome)
    try:
        plan = _make_plan(
            model,
            genome_obj,
            stats=stats,
            tracks=tracks,
            track_sheet=track_sheet,
            head=head,
            rc=rc,
            shifts=shifts,
            genes_gtf=genes_gtf,
            center_bins=center_bins,
            tss_width=tss_width,
            on_ref_mismatch=on_ref_mismatch,
            group_span=group_span,
            batch_size=batch_size,
            device=device,
        )
        vcf_columns = _vcf_track_columns(plan, vcf_tracks, track_sheet) if fmt == "vcf" else []
        contigs = genome_obj.chrom_sizes
        metadata = dict(plan.metadata)
        metadata["input"] = (
            str(Path(variants)) if isinstance(variants, str | os.PathLike) else "<iterable>"
        )
        metadata["model"] = dict(metadata["model"], weights=model_name)
        settings = {
            "metadata": metadata,
            "input": _input_identity(variants)
            or sequence_digest(
                "\n".join(v if isinstance(v, str) else repr(v) for v in variants)
            ),
            "genome": genome_fingerprint(genome_obj),
            "chunk_size": int(chunk_size),
        }
        default_work = out.with_name(out.name + _WORK_SUFFIX)
        lock = JobLock(work_dir or default_work, shard=shard, what=f"--out {out}").acquire()
        out_lock: JobLock | None = None
        try:
            if shard is None and Path(work_dir or default_work) != default_work:
                # Runs with their own work directories must still not write one --out at once.
                out_lock = JobLock(
                    out.parent, what=f"--out {out}", name=f".{out.name}.lock", transient=True
                ).acquire()
            work = _WorkDir(lock, settings, resume, sharded=shard is not None)
            n_chunks, computed, reused = _compute_chunks(
                model, variants, genome_obj, plan, work, predictor, int(chunk_size), shard, progress
            )
        except BaseException as err:
            # A run that failed on its inputs, or before finishing a chunk, leaves nothing.
            bad_input = isinstance(err, ValueError | LookupError)
            discard = bad_input or not any(lock.directory.glob("chunk_*.npz"))
            if out_lock is not None:
                out_lock.release(discard=discard)
            lock.release(discard=discard)
            raise
    finally:
        if opened:
            genome_obj.close()

    try:
        if shard is not None:
            present = work.finished()
            return {
                "shard": f"{shard[0]}/{shard[1]}",
                "work_dir": str(work.path),
                "chunks": n_chunks,
                "chunks_computed": computed,
                "chunks_missing": n_chunks - len(present & set(range(n_chunks))),
                "complete": set(range(n_chunks)) <= present,
                "seconds": round(time.perf_counter() - t0, 3),
            }
        summary = _assemble(
            work, n_chunks, plan, metadata, out, fmt, wide, vcf_columns, variants, contigs
        )
        seconds = time.perf_counter() - t0
        summary.update(
            {
                "resumed_chunks": len(reused),
                "seconds": round(seconds, 3),
                # a rate only means something when this run computed every chunk itself
                "variants_per_second": round(summary["variants_scored"] / seconds, 3)
                if seconds > 0 and not reused
                else None,
            }
        )
        write_bytes_atomic(
            Path(summary["settings"]),
            json.dumps({"metadata": metadata, "summary": summary}, indent=2, default=str).encode(),
        )
        if not keep_work:
            lock.remove_directory()
        return summary
    finally:
        lock.release()
        if out_lock is not None:
            out_lock.release()


def _compute_chunks(
    model: torch.nn.Module,
    variants: Any,
    genome: Genome,
    plan: _Plan,
    work: _WorkDir,
    predictor: PredictAlleles | None,
    chunk_size: int,
    shard: tuple[int, int] | None,
    progress: bool,
) -> tuple[int, int, set[int]]:
    """Score the chunks not finished yet; return (chunks, computed, reused).

    A finished chunk is reused only if the windows it was computed from are the ones the
    current genome gives (:func:`windows_digest`); otherwise it is computed again.
    """
    done = work.finished()
    if done:
        logger.info("resuming: %d finished chunk(s) in %s", len(done), work.path)
    total = _count_records(variants) if progress else None
    bar = progress_bar(total, "score", progress, unit="variant")
    run = _resolve_predictor(predictor)
    n_chunks = computed = 0
    reused: set[int] = set()
    stale = 0
    try:
        with _model_on(model, plan.device):
            for i, block in enumerate(chunked(iter_records(variants), chunk_size)):
                n_chunks = i + 1
                if shard is not None and i % shard[1] != shard[0]:
                    bar.update(len(block))
                    continue
                windows = _chunk_windows(block, genome, plan)
                digest = windows_digest(windows)
                if i in done:
                    if ScoreChunk.stored_digest(work.chunk_path(i)) == digest:
                        reused.add(i)
                        bar.update(len(block))
                        continue
                    stale += 1
                chunk = _score_chunk(model, block, genome, plan, run, bar, windows)
                chunk.input_digest = digest
                bar.update(len(block) - chunk.n_variants)
                chunk.save(work.chunk_path(i))
                computed += 1
    finally:
        bar.close()
    if stale:
        logger.warning(
            "%d finished chunk(s) in %s were computed from other genome bases than %s now holds "
            "(was the FASTA replaced?); they were computed again",
            stale,
            work.path,
            genome.path,
        )
    return n_chunks, computed, reused


def _vcf_track_columns(plan: _Plan, vcf_tracks: Any, track_sheet: Any) -> list[int]:
    """Columns (positions in plan.tracks) annotated in VCF output."""
    if vcf_tracks is None:
        return list(range(len(plan.tracks)))
    sheet = _load_sheet(track_sheet, plan.head)
    if sheet is not None:
        wanted = sheet.select(vcf_tracks)
    elif isinstance(vcf_tracks, str):
        selection = _index_selection(vcf_tracks)
        if isinstance(selection, str):
            raise ValueError(
                f"vcf_tracks {vcf_tracks!r} needs a track sheet; without one give indices"
            )
        wanted = list(plan.tracks) if selection is None else selection
    else:
        wanted = [int(t) for t in np.atleast_1d(np.asarray(vcf_tracks)).tolist()]
    position = {t: k for k, t in enumerate(plan.tracks)}
    missing = [t for t in wanted if t not in position]
    if missing:
        raise ValueError(f"vcf_tracks {missing[:5]} are not among the scored tracks")
    return [position[t] for t in wanted]


# ------------------------------------------------------------------------------------------
# Assembling outputs
# ------------------------------------------------------------------------------------------


def _assemble(
    work: _WorkDir,
    n_chunks: int,
    plan: _Plan,
    metadata: dict[str, Any],
    out: Path,
    fmt: str,
    wide: bool,
    vcf_columns: list[int],
    source: Any,
    contigs: dict[str, int],
) -> dict[str, Any]:
    stem = _stem(out)
    skipped_path = stem.with_name(stem.name + ".skipped.tsv")
    settings_path = stem.with_name(stem.name + ".settings.json")
    # The settings file returns only once every output is complete and in place.
    settings_path.unlink(missing_ok=True)
    counts = {"variants_scored": 0, "variants_skipped": 0, "rows": 0}
    with atomic_path(out) as tmp:
        if fmt in ("parquet", "tsv"):
            compressed = out.name.lower().endswith((".gz", ".bgz"))
            _write_table(work, n_chunks, plan, metadata, tmp, fmt, wide, counts, compressed)
        elif fmt == "h5":
            _write_h5(work, n_chunks, plan, metadata, tmp, counts)
        else:
            _write_vcf(
                work, n_chunks, plan, metadata, tmp, out, vcf_columns, source, counts, contigs
            )
        skipped = _skipped_frame(work.chunks(n_chunks))
        counts["variants_skipped"] = len(skipped)
        buffer = io.StringIO()
        skipped.to_csv(buffer, sep="\t", index=False)
        write_bytes_atomic(skipped_path, buffer.getvalue().encode())
    reasons: dict[str, int] = {}
    for reason in skipped["reason"].astype(str):
        key = reason.split(":")[0]
        reasons[key] = reasons.get(key, 0) + 1
    return {
        "out": str(out),
        "format": fmt + (" (wide)" if wide else ""),
        **counts,
        "skip_reasons": reasons,
        "stats": plan.stats,
        "tracks": len(plan.tracks),
        "head": plan.head,
        "skipped": str(skipped_path),
        "settings": str(settings_path),
    }


def _arrow_schema(frame: Any, metadata: dict[str, Any]) -> Any:
    import pyarrow as pa

    fields = []
    for name, dtype in frame.dtypes.items():
        if dtype == np.float32:
            kind = pa.float32()
        elif dtype == np.int64:
            kind = pa.int64()
        elif dtype == np.bool_:
            kind = pa.bool_()
        else:
            kind = pa.string()
        fields.append(pa.field(name, kind))
    return pa.schema(fields, metadata={"enformer": json.dumps(metadata, default=str)})


def _write_table(
    work: _WorkDir,
    n_chunks: int,
    plan: _Plan,
    metadata: dict[str, Any],
    tmp: Path,
    fmt: str,
    wide: bool,
    counts: dict[str, int],
    compressed: bool,
) -> None:
    make = _wide_frame if wide else _tidy_frame
    writer: Any = None
    handle: IO[str] | None = None
    schema = None
    try:
        for chunk in work.chunks(n_chunks):
            counts["variants_scored"] += chunk.n_variants
            frame = make(chunk, plan)
            if schema is None:
                schema = _arrow_schema(frame, metadata)
            counts["rows"] += len(frame)
            if fmt == "parquet":
                import pyarrow as pa
                import pyarrow.parquet as pq

                if writer is None:
                    writer = pq.ParquetWriter(str(tmp), schema)
                if len(frame):
                    writer.write_table(pa.Table.from_pandas(frame, schema, preserve_index=False))
            else:
                if handle is None:
                    handle = _open_text_out(tmp, compressed)
                    frame.iloc[:0].to_csv(handle, sep="\t", index=False)
                frame.to_csv(
                    handle, sep="\t", index=False, header=False, float_format=_FLOAT_FORMAT
                )
        if schema is None:  # no chunk at all: write an empty table with the right columns
            empty = make(_empty_chunk(plan), plan)
            schema = _arrow_schema(empty, metadata)
            if fmt == "parquet":
                import pyarrow.parquet as pq

                writer = pq.ParquetWriter(str(tmp), schema)
            else:
                handle = _open_text_out(tmp, compressed)
                empty.to_csv(handle, sep="\t", index=False)
    finally:
        if writer is not None:
            writer.close()
        if handle is not None:
            handle.close()


def _open_text_out(path: Path, compressed: bool) -> IO[str]:
    if compressed:
        return io.TextIOWrapper(gzip.open(path, "wb"), encoding="utf-8", newline="")
    return open(path, "w", encoding="utf-8", newline="")  # noqa: SIM115 - closed by the caller


def _empty_chunk(plan: _Plan) -> ScoreChunk:
    variants = {k: np.zeros(0, dtype=np.str_) for k in _VARIANT_FIELDS}
    for k in ("pos", "line", "alt_index", "window_start", "offset"):
        variants[k] = np.zeros(0, dtype=np.int64)
    variants["flipped"] = np.zeros(0, dtype=np.bool_)
    units: dict[str, np.ndarray] = {"si": np.zeros(0, dtype=np.int64)}
    if plan.tss is not None:
        units.update({k: np.zeros(0, dtype=np.str_) for k in _GENE_FIELDS})
        units["tss_distance"] = np.zeros(0, dtype=np.int64)
    scores = {s: np.zeros((0, len(plan.tracks)), dtype=np.float32) for s in plan.stats}
    return ScoreChunk(variants, units, scores, _skipped_arrays([]), 0)


def _write_h5(
    work: _WorkDir,
    n_chunks: int,
    plan: _Plan,
    metadata: dict[str, Any],
    tmp: Path,
    counts: dict[str, int],
) -> None:
    import h5py

    text = h5py.string_dtype("utf-8")
    n_tracks = len(plan.tracks)
    with h5py.File(tmp, "w") as h5:
        h5.attrs["enformer"] = json.dumps(metadata, default=str)
        h5.attrs["layout"] = "basenji sad.h5 (one row per variant; with genes, per variant x gene)"
        ids = plan.identifiers if plan.identifiers is not None else [str(t) for t in plan.tracks]
        labels = plan.descriptions if plan.descriptions is not None else [""] * n_tracks
        h5.create_dataset("target_ids", data=np.array(ids, dtype=object), dtype=text)
        h5.create_dataset("target_labels", data=np.array(labels, dtype=object), dtype=text)
        h5.create_dataset("target_index", data=np.asarray(plan.tracks, dtype=np.int64))

        def grow(name: str, dtype: Any, width: int | None = None) -> Any:
            shape = (0,) if width is None else (0, width)
            maxshape = (None,) if width is None else (None, width)
            chunks = (
                (1024,) if width is None else (max(1, min(1024, 2**20 // max(width, 1))), width)
            )
            return h5.create_dataset(
                name, shape=shape, maxshape=maxshape, dtype=dtype, chunks=chunks
            )

        variant_sets = {
            "snp": grow("snp", text),
            "chr": grow("chr", text),
            "pos": grow("pos", np.int64),
            "ref_allele": grow("ref_allele", text),
            "alt_allele": grow("alt_allele", text),
            "flipped": grow("flipped", np.bool_),
        }
        gene_mode = plan.tss is not None
        unit_sets: dict[str, Any] = {}
        if gene_mode:
            unit_sets = {
                "si": grow("si", np.int64),
                "gene_id": grow("gene_id", text),
                "gene_name": grow("gene_name", text),
                "gene_strand": grow("gene_strand", text),
                "tss_distance": grow("tss_distance", np.int64),
            }
        stat_sets = {s: grow(s, np.float32, n_tracks) for s in plan.stats}
        for s, ds in stat_sets.items():
            ds.attrs["formula"] = SCORE_FORMULAS[s]
        n_var = n_unit = 0
        for chunk in work.chunks(n_chunks):
            v, u = chunk.n_variants, chunk.n_units
            source_of = {
                "snp": "id",
                "chr": "chrom",
                "pos": "pos",
                "ref_allele": "ref",
                "alt_allele": "alt",
                "flipped": "flipped",
            }
            for name, ds in variant_sets.items():
                ds.resize((n_var + v,))
                values = chunk.variants[source_of[name]]
                ds[n_var : n_var + v] = (
                    values.astype(object) if values.dtype.kind == "U" else values
                )
            for name, ds in unit_sets.items():
                ds.resize((n_unit + u,))
                values = chunk.units[name] + n_var if name == "si" else chunk.units[name]
                ds[n_unit : n_unit + u] = (
                    values.astype(object) if values.dtype.kind == "U" else values
                )
            rows = u if gene_mode else v
            start = n_unit if gene_mode else n_var
            for s, ds in stat_sets.items():
                ds.resize((start + rows, n_tracks))
                ds[start : start + rows] = chunk.scores[s].astype(np.float32)
            n_var += v
            n_unit += u
        counts["variants_scored"] = n_var
        counts["rows"] = n_unit if gene_mode else n_var


def _format_value(x: float) -> str:
    if not np.isfinite(x):
        return "nan" if np.isnan(x) else ("inf" if x > 0 else "-inf")
    return f"{float(x):.6g}"


def _vcf_info_header(plan: _Plan, columns: list[int]) -> list[str]:
    lines = [f"##enformer_settings={json.dumps(_compact_meta(plan), default=str)}"]
    for s in plan.stats:
        for k in columns:
            track = plan.tracks[k]
            label = plan.identifiers[k] if plan.identifiers is not None else f"track {track}"
            desc = f" {plan.descriptions[k]}" if plan.descriptions is not None else ""
            text = (
                f"Enformer {s} for head {plan.head} track {track} ({label}{desc}): "
                + (SCORE_FORMULAS[s])
            )
            text = text.replace('"', "'")
            lines.append(
                f'##INFO=<ID=ENFORMER_{s}_T{track},Number=A,Type=Float,Description="{text}">'
            )
    if plan.on_ref_mismatch == "flip":
        lines.append(
            '##INFO=<ID=ENFORMER_FLIPPED,Number=A,Type=Integer,Description="1 if the genome '
            "carries ALT and the REF window was built by editing (scores keep the ALT vs REF "
            'orientation)">'
        )
    return lines


def _compact_meta(plan: _Plan) -> dict[str, Any]:
    meta = dict(plan.metadata)
    meta["model"] = {k: v for k, v in meta["model"].items() if k != "config"}
    return meta


def _vcf_results(
    work: _WorkDir, n_chunks: int, plan: _Plan, columns: list[int], counts: dict[str, int]
) -> Iterator[tuple[int, int, dict[str, str], ScoreChunk, int]]:
    """(line, alt_index, info key -> value text, chunk, row) per scored variant, in order."""
    for chunk in work.chunks(n_chunks):
        counts["variants_scored"] += chunk.n_variants
        counts["rows"] += chunk.n_variants
        for row in range(chunk.n_variants):
            values: dict[str, str] = {}
            for s in plan.stats:
                for k in columns:
                    key = f"ENFORMER_{s}_T{plan.tracks[k]}"
                    values[key] = _format_value(chunk.scores[s][row, k])
            if plan.on_ref_mismatch == "flip":
                values["ENFORMER_FLIPPED"] = "1" if chunk.variants["flipped"][row] else "0"
            yield (
                int(chunk.variants["line"][row]),
                int(chunk.variants["alt_index"][row]),
                values,
                chunk,
                row,
            )


def _vcf_writer(path: Path, compressed: bool) -> IO[bytes]:
    if compressed:
        try:
            import pysam

            return pysam.BGZFile(str(path), "wb")  # bgzip: indexable with tabix
        except ImportError:  # pragma: no cover - depends on the environment
            return gzip.open(path, "wb")
    return open(path, "wb")  # noqa: SIM115 - closed by the caller


def _write_vcf(
    work: _WorkDir,
    n_chunks: int,
    plan: _Plan,
    metadata: dict[str, Any],
    tmp: Path,
    out: Path,
    columns: list[int],
    source: Any,
    counts: dict[str, int],
    contigs: dict[str, int],
) -> None:
    compressed = out.name.lower().endswith((".gz", ".bgz"))
    copy = (
        isinstance(source, str | os.PathLike)
        and detect_format(source) == "vcf"
        and not str(source).lower().endswith(".bcf")
    )
    keys = [f"ENFORMER_{s}_T{plan.tracks[k]}" for s in plan.stats for k in columns]
    if plan.on_ref_mismatch == "flip":
        keys.append("ENFORMER_FLIPPED")
    header = _vcf_info_header(plan, columns)
    results = _vcf_results(work, n_chunks, plan, columns, counts)
    with _vcf_writer(tmp, compressed) as fh:
        if copy:
            _copy_vcf(Path(source), fh, header, keys, results)
        else:
            _fresh_vcf(fh, header, results, metadata, contigs)


def _copy_vcf(
    path: Path,
    fh: IO[bytes],
    header: list[str],
    keys: list[str],
    results: Iterator[tuple[int, int, dict[str, str], ScoreChunk, int]],
) -> None:
    from .io import _numbered_lines

    pending = next(results, None)
    wrote_header = False
    for number, line in _numbered_lines(path):
        if line.startswith(("##INFO=<ID=ENFORMER_", "##enformer_settings=")):
            continue  # annotations of an earlier run are replaced
        if line.startswith("##") or not line.strip():
            fh.write((line + "\n").encode())
            continue
        if line.startswith("#"):
            fh.write(("\n".join(header) + "\n" + line + "\n").encode())
            wrote_header = True
            continue
        if not wrote_header:
            fh.write(("\n".join(header) + "\n").encode())
            wrote_header = True
        fields = line.split("\t")
        n_alts = len(fields[4].split(",")) if len(fields) > 4 else 1
        per_alt: dict[int, dict[str, str]] = {}
        while pending is not None and pending[0] == number:
            per_alt[pending[1]] = pending[2]
            pending = next(results, None)
        if per_alt:
            info = [
                f"{key}=" + ",".join(per_alt.get(a, {}).get(key, ".") for a in range(n_alts))
                for key in keys
            ]
            while len(fields) < 8:
                fields.append(".")
            kept = [
                kv
                for kv in fields[7].split(";")
                if kv not in ("", ".") and not kv.startswith("ENFORMER_")
            ]
            fields[7] = ";".join(kept + info)
        fh.write(("\t".join(fields) + "\n").encode())
    if pending is not None:
        raise ValueError(
            f"{path} changed while scoring: line {pending[0]} of the results is not in the file"
        )


def _fresh_vcf(
    fh: IO[bytes],
    header: list[str],
    results: Iterator[tuple[int, int, dict[str, str], ScoreChunk, int]],
    metadata: dict[str, Any],
    contigs: dict[str, int],
) -> None:
    lines = [
        "##fileformat=VCFv4.2",
        f"##source=enformer {__version__}",
        f"##reference={metadata.get('genome')}",
        *(f"##contig=<ID={name},length={size}>" for name, size in contigs.items()),
        *header,
        "#CHROM\tPOS\tID\tREF\tALT\tQUAL\tFILTER\tINFO",
    ]
    fh.write(("\n".join(lines) + "\n").encode())
    for _, _, values, chunk, row in results:
        v = chunk.variants
        info = ";".join(f"{k}={x}" for k, x in values.items()) or "."
        fields = [
            str(v["chrom"][row]),
            str(int(v["pos"][row])),
            str(v["id"][row]),
            str(v["ref"][row]),
            str(v["alt"][row]),
            ".",
            ".",
            info,
        ]
        fh.write(("\t".join(fields) + "\n").encode())
