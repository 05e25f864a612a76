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

Models run in one function of :mod:`enformer.variants.predictors`, chosen explicitly by the
``predictor`` argument: ``'reuse'`` (the default,
:func:`~enformer.variants.predictors.predict_alleles_reuse`, which reuses the reference's
conv-tower activations for its alternatives), ``'naive'`` (full forwards of every window,
:func:`~enformer.variants.predictors.predict_alleles`, the reference implementation; the same
numbers to float32 rounding) or any function with their signature.

Modules: :mod:`.plan` (settings), :mod:`.chunks` (scoring a chunk), :mod:`.outputs` (files);
this module runs the job.

Resuming
--------
:func:`write_scores` reads the input in chunks of ``chunk_size`` records (variants and skipped
alleles, in input order). Each finished chunk is written atomically (temporary file, then
:func:`os.replace`) to a work directory together with a hash of every setting that affects the
numbers (the input file enters by the digest of its bytes, the genome by its chromosome names
and lengths), as units of a :class:`~enformer.io.jobdir.JobDir`. Each chunk also stores
:func:`~enformer.variants.chunks.windows_digest` of the genome windows it was
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
(:func:`~enformer.io.jobdir.shard_units`, the rule ``enformer predict`` uses for torchrun ranks)
into a common ``work_dir``; a final run without ``shard`` finds every chunk done and only
assembles the outputs. Shards hold the lock shared (they run side by side), each shard's own
lock exclusively (the same shard cannot run twice); the final run is refused while a shard is
alive, and a shard is refused while a plain run is.
"""

from __future__ import annotations

import logging
import os
import time
from collections.abc import Iterable, Iterator, Sequence
from pathlib import Path
from typing import Any, Literal

import torch

from ..data.annotation import TSSIndex
from ..data.genome import Genome
from ..data.tracks import TrackSheet
from ..io.progress import progress_bar
from ..io.jobdir import JobDir, shard_units
from ..io.jobs import JobLock, file_fingerprint, genome_fingerprint, sequence_digest
from .background import Background
from .chunks import ScoreChunk, chunk_windows, empty_chunk, score_chunk, windows_digest
from .io import iter_records
from .outputs import output_format, skipped_frame, tidy_frame, write_outputs, write_settings
from .plan import ScorePlan, make_plan, vcf_track_columns
from .predictors import PredictAlleles, model_on, resolve_predictor
from .records import Record, Variant, chunked

__all__ = ["DEFAULT_CHUNK_SIZE", "score_variants", "write_scores"]

logger = logging.getLogger(__name__)

DEFAULT_CHUNK_SIZE = 64
"""Records per resumable chunk of :func:`write_scores`."""

_WORK_SUFFIX = ".enformer-work"
_UNIT_NAME = "chunk_{:07d}.npz"  # a chunk's file in the work directory
# The arguments of score_variants / write_scores that make_plan resolves.
_PLAN_ARGS = (
    "stats", "tracks", "track_sheet", "head", "rc", "shifts", "genes_gtf", "center_bins",
    "tss_width", "gene_score", "on_ref_mismatch", "group_span", "batch_size", "device",
    "background", "untransform",
)  # fmt: skip


def _open_genome(genome: Genome | str | os.PathLike[str]) -> tuple[Genome, bool]:
    if isinstance(genome, Genome):
        return genome, False
    return Genome(genome), True


def _iter_chunks(
    model: torch.nn.Module,
    records: Iterator[Record],
    genome: Genome,
    plan: ScorePlan,
    predictor: PredictAlleles,
    chunk_size: int,
    bar: Any,
) -> Iterator[ScoreChunk]:
    with model_on(model, plan.device):
        for block in chunked(records, chunk_size):
            chunk = score_chunk(model, block, genome, plan, predictor, bar)
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
    gene_score: str | Sequence[str] = ("tss",),
    background: Background | str | os.PathLike[str] | None = None,
    untransform: str = "auto",
    on_ref_mismatch: Literal["fail", "skip", "flip"] = "fail",
    group_span: int | None = None,
    batch_size: int = 1,
    device: str | torch.device | None = None,
    progress: bool = True,
    predictor: str | PredictAlleles | None = "reuse",
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
    gene_score : str or sequence of str, optional
        With ``genes_gtf``: which bins of each gene to read out, any of ``tss`` (the TSS
        bins; the default), ``exons`` (bins overlapping any exon of the gene, as Borzoi
        reads RNA-seq coverage) and ``body`` (gene start to end); one row per variant x
        gene x region x track (column ``gene_region``), for genes whose TSS (``tss``) or
        span (``exons``, ``body``) meets the output. With a track sheet, a gene reads the
        tracks of its own strand and unstranded ones; the other strand's tracks are NaN.
    background : Background or path, optional
        Background scores (:func:`~enformer.variants.background.make_background`, or a file
        of ``enformer score --make-background``): adds ``<stat>_quantile`` (fraction of the
        background's absolute values at most the score's, per track) and
        ``<stat>_signed_quantile`` columns. Its settings and model must match this run's.
    untransform : {'auto', 'none', 'basenji', 'baskerville'}, optional
        Un-squash the predictions per track before the statistics, as Borzoi's scripts do
        (:func:`~enformer.data.datasets.bigwig.restore_coverage`, from the track sheet's
        ``sum_stat``, ``scale`` and ``clip_soft``): ``'basenji'`` for models trained on
        Basenji-transformed coverage (the released Borzoi and Flashzoi; ``borzoi_sed.py -u``),
        ``'baskerville'`` for models trained with baskerville's ``hound`` transforms.
        ``'auto'`` (default): ``'basenji'`` for a Borzoi-family model with a track sheet, else
        ``'none'`` (Enformer's scores are read on its outputs, as DeepMind's).
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
    predictor : {'reuse', 'naive'} or callable, optional
        How alleles are predicted (:func:`~enformer.variants.predictors.resolve_predictor`):
        ``'reuse'`` (default) reuses the reference's conv-tower activations exactly,
        ``'naive'`` runs full forwards; or a function with the signature of
        :func:`~enformer.variants.predictors.predict_alleles`.

    Returns
    -------
    pandas.DataFrame
        One row per variant x track (x gene): ``id, chrom, pos, ref, alt, flipped``
        [``window_start, offset``] [``gene_id, gene_name, gene_strand, tss_distance, gene_region``]
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

    plan_args = {k: v for k, v in locals().items() if k in _PLAN_ARGS}
    genome_obj, opened = _open_genome(genome)
    try:
        plan = make_plan(model, genome_obj, **plan_args)
        total = _count_records(variants) if progress else None
        bar = progress_bar(total, "score", progress, unit="variant")
        try:
            chunks = list(
                _iter_chunks(
                    model,
                    iter_records(variants),
                    genome_obj,
                    plan,
                    resolve_predictor(predictor),
                    DEFAULT_CHUNK_SIZE,
                    bar,
                )
            )
        finally:
            bar.close()
    finally:
        if opened:
            genome_obj.close()
    frames = [tidy_frame(c, plan) for c in chunks if c.n_units]
    if frames:
        table = pd.concat(frames, ignore_index=True)
    else:
        table = tidy_frame(empty_chunk(plan), plan)
    table.attrs["skipped"] = skipped_frame(chunks)
    table.attrs["metadata"] = plan.metadata
    return table


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
    gene_score: str | Sequence[str] = ("tss",),
    background: Background | str | os.PathLike[str] | None = None,
    untransform: str = "auto",
    on_ref_mismatch: Literal["fail", "skip", "flip"] = "fail",
    group_span: int | None = None,
    batch_size: int = 1,
    device: str | torch.device | None = None,
    progress: bool = True,
    predictor: str | PredictAlleles | None = "reuse",
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
    center_bins, tss_width, gene_score, background, untransform, on_ref_mismatch, group_span,
    batch_size, device, progress, predictor
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
    plan_args = {k: v for k, v in locals().items() if k in _PLAN_ARGS}
    out = Path(out)
    fmt = output_format(out)
    shard = _check_request(fmt, genes_gtf, wide, chunk_size, shard)
    if not isinstance(variants, str | os.PathLike) and not isinstance(variants, Sequence):
        variants = list(variants)
    genome_obj, opened = _open_genome(genome)
    try:
        plan = make_plan(model, genome_obj, **plan_args)
        vcf_columns = vcf_track_columns(plan, vcf_tracks, track_sheet, model.config) if fmt == "vcf" else []
        contigs = genome_obj.chrom_sizes
        metadata, settings = _job_settings(plan, variants, genome_obj, model_name, chunk_size)
        default_work = out.with_name(out.name + _WORK_SUFFIX)
        job = JobDir(
            work_dir or default_work, settings, shard=shard, what=f"--out {out}",
            unit_name=_UNIT_NAME,
        )  # fmt: skip
        job.lock.acquire()
        out_lock: JobLock | None = None
        try:
            if shard is None and job.path != default_work:
                # Runs with their own work directories must still not write one --out at once.
                out_lock = JobLock(
                    out.parent, what=f"--out {out}", name=f".{out.name}.lock", transient=True
                ).acquire()
            done = job.claim(resume=resume)
            run = resolve_predictor(predictor)
            counts = _compute_chunks(
                model, variants, genome_obj, plan, job, done, run, int(chunk_size), progress
            )
        except BaseException as err:
            # A run that failed on its inputs, or before finishing a chunk, leaves nothing.
            discard = isinstance(err, ValueError | LookupError) or not job.done()
            if out_lock is not None:
                out_lock.release(discard=discard)
            job.release(discard=discard)
            raise
    finally:
        if opened:
            genome_obj.close()
    try:
        n_chunks, computed, reused = counts
        if shard is not None:
            return _shard_summary(job, shard, n_chunks, computed, t0)

        def chunks() -> Iterator[ScoreChunk]:
            return (ScoreChunk.from_arrays(job.load(k)) for k in range(n_chunks))

        summary = write_outputs(
            chunks, plan, metadata, out, fmt, wide, vcf_columns, variants, contigs
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
        write_settings(Path(summary["settings"]), metadata, summary)
        if not keep_work:
            job.remove()
        return summary
    finally:
        job.release()
        if out_lock is not None:
            out_lock.release()


def _check_request(
    fmt: str, genes_gtf: Any, wide: bool, chunk_size: int, shard: tuple[int, int] | None
) -> tuple[int, int] | None:
    """Refuse output settings that do not fit together; the shard as ints."""
    if fmt == "vcf" and genes_gtf is not None:
        raise ValueError(
            "VCF output holds one value per variant and track; gene scores (genes_gtf / --genes) "
            "need a .parquet, .tsv or .h5 output"
        )
    if wide and fmt not in ("parquet", "tsv"):
        raise ValueError(f"wide output is for .parquet and .tsv files, not {fmt}")
    if int(chunk_size) < 1:
        raise ValueError(f"chunk_size must be >= 1, got {chunk_size}")
    if shard is None:
        return None
    k, n = int(shard[0]), int(shard[1])
    if not 0 <= k < n:
        raise ValueError(f"shard must be (k, n) with 0 <= k < n, got {shard}")
    return k, n


def _job_settings(
    plan: ScorePlan, variants: Any, genome: Genome, model_name: str | None, chunk_size: int
) -> tuple[dict[str, Any], dict[str, Any]]:
    """The metadata written beside the outputs, and every setting that identifies the chunks."""
    metadata = dict(plan.metadata)
    metadata["input"] = (
        str(Path(variants)) if isinstance(variants, str | os.PathLike) else "<iterable>"
    )
    metadata["model"] = dict(metadata["model"], weights=model_name)
    settings = {
        "metadata": metadata,
        "input": _input_identity(variants)
        or sequence_digest("\n".join(v if isinstance(v, str) else repr(v) for v in variants)),
        "genome": genome_fingerprint(genome),
        "chunk_size": int(chunk_size),
    }
    return metadata, settings


def _shard_summary(
    job: JobDir, shard: tuple[int, int], n_chunks: int, computed: int, t0: float
) -> dict[str, Any]:
    present = job.done()
    return {
        "shard": f"{shard[0]}/{shard[1]}",
        "work_dir": str(job.path),
        "chunks": n_chunks,
        "chunks_computed": computed,
        "chunks_missing": n_chunks - len(present & set(range(n_chunks))),
        "complete": set(range(n_chunks)) <= present,
        "seconds": round(time.perf_counter() - t0, 3),
    }


def _compute_chunks(
    model: torch.nn.Module,
    variants: Any,
    genome: Genome,
    plan: ScorePlan,
    job: JobDir,
    done: set[int],
    predictor: PredictAlleles,
    chunk_size: int,
    progress: bool,
) -> tuple[int, int, set[int]]:
    """Score the chunks not finished yet (this shard's only); return (chunks, computed, reused).

    A finished chunk is reused only if the windows it was computed from are the ones the
    current genome gives (:func:`~enformer.variants.chunks.windows_digest`); otherwise it is
    computed again.
    """
    if done:
        logger.info("resuming: %d finished chunk(s) in %s", len(done), job.path)
    total = _count_records(variants) if progress else None
    bar = progress_bar(total, "score", progress, unit="variant")
    n_chunks = computed = stale = 0
    reused: set[int] = set()
    try:
        with model_on(model, plan.device):
            for i, block in enumerate(chunked(iter_records(variants), chunk_size)):
                n_chunks = i + 1
                if not shard_units([i], job.shard):
                    bar.update(len(block))
                    continue
                windows = chunk_windows(block, genome, plan)
                digest = windows_digest(windows)
                if i in done:
                    if job.input_digest(i) == digest:
                        reused.add(i)
                        bar.update(len(block))
                        continue
                    stale += 1
                chunk = score_chunk(model, block, genome, plan, predictor, bar, windows)
                bar.update(len(block) - chunk.n_variants)
                job.save(i, chunk.to_arrays(), digest=digest)
                computed += 1
    finally:
        bar.close()
    if stale:
        logger.warning(
            "%d finished chunk(s) in %s were computed from other genome bases than %s now holds "
            "(was the FASTA replaced?); they were computed again",
            stale,
            job.path,
            genome.path,
        )
    return n_chunks, computed, reused
