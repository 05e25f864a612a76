"""Write predictions to BigWig, HDF5 or NPZ files, atomically and resumably.

:func:`predict_to_files` runs a whole job: it plans tiles over genomic regions (or takes a list
of sequences), predicts them in batches, and writes the results.

* **Resumable.** ``OUT/.work`` is a :class:`~enformer.io.jobdir.JobDir`: every finished unit
  (a tile, or one input sequence) is one file ``chunks/<unit>.npz``, written atomically, and
  ``manifest.json`` holds the hash of everything that determines the units (model weights,
  genome names and lengths, regions and tiling, heads, tracks, strand pairs, reverse
  complement, shifts, dtype). A rerun with the same hash skips the finished units; another
  hash starts over. Batch size, device, format and the number of processes may change
  between a crash and the restart. Each tile stores the digest of the bases it read; on
  resume a tile whose bases now differ (a FASTA replaced at the same path) is recomputed,
  with a warning. Under ``torchrun`` unit ``u`` goes to rank ``u % world_size``.
* **One run per output.** Rank 0 claims ``OUT/.work/lock`` for all ranks before anything in
  ``OUT`` is touched; a second live run is refused with
  :class:`~enformer.io.jobs.JobLockedError` (exit status 2) and touches nothing; after the
  holder died the next run resumes. A run that fails on its inputs leaves nothing behind.
* **Earlier outputs.** Finished outputs of a run with other settings or format (listed in
  ``enformer_predict.json``) are refused unless ``overwrite=True`` (``--overwrite``), which
  removes them. The listing is withdrawn at the start and written again last, when every
  file is in place (assembled under temporary names, then :func:`os.replace`), so it always
  describes complete files. The work directory is removed after success. The layouts are
  described in :mod:`enformer.inference.outputs`.
"""

from __future__ import annotations

import json
import logging
import os
from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any, Literal, NamedTuple, get_args

import numpy as np
import torch

from ..data.genome import Genome, Interval
from ..data.sequence import one_hot
from ..io.jobdir import JobDir, shard_units
from ..io.jobs import (
    JobLockedError,
    genome_fingerprint,
    model_fingerprint,
    sequence_digest,
    settings_digest,
    write_json_atomic,
)
from ..io.progress import progress_bar
from ..model.geometry import OutputGeometry, output_geometry
from .distributed import DistributedContext
from .outputs import ArrayLayout, OutputFile, assemble_regions, assemble_sequences, planned_names
from .engine import MOSTLY_N, Engine
from .selection import resolve_selection
from .tiling import Align, Tile, TilePlan, plan_tiles, predict_tiles, tile_sequence

__all__ = [
    "FORMATS",
    "OutputFile",
    "PredictionFiles",
    "predict_to_files",
]

logger = logging.getLogger(__name__)

Format = Literal["bigwig", "h5", "npz"]
FORMATS: tuple[str, ...] = get_args(Format)
"""Output formats understood by :func:`predict_to_files`."""

SETTINGS_NAME = "enformer_predict.json"
WORK_NAME = ".work"
_CHUNK_VERSION = 2  # 2: every genomic chunk carries the digest of the sequence it read


@dataclass
class PredictionFiles:
    """What :func:`predict_to_files` did.

    Attributes
    ----------
    out_dir : str
        Output directory.
    files : list of OutputFile
        Files written (empty on ranks other than 0).
    settings_path : str or None
        The settings JSON written beside the outputs (rank 0).
    units : int
        Units of work (tiles or sequences) in the job.
    computed : int
        Units this process predicted.
    reused : int
        Units found finished from an earlier run.
    rank : int
        This process's rank.
    world_size : int
        Number of processes.
    mostly_n : int
        Units this process predicted whose input window was more than half ``N`` (logged as
        a warning: their predictions reflect little or no sequence).
    """

    out_dir: str
    files: list[OutputFile]
    settings_path: str | None
    units: int
    computed: int
    reused: int
    rank: int = 0
    world_size: int = 1
    mostly_n: int = 0

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready dict."""
        d = asdict(self)
        d["files"] = [f.to_dict() for f in self.files]
        return d


# --------------------------------------------------------------------------------------
# The job
# --------------------------------------------------------------------------------------


def _previous_outputs(out: Path, settings_hash: str, fmt: str, overwrite: bool) -> None:
    """Deal with the finished outputs of an earlier run in ``out`` (called under the lock).

    The same settings: the earlier listing is withdrawn (this run writes the same files
    again). Other settings: refused unless ``overwrite``; then the files the earlier run
    listed are removed, with a warning. Either way ``enformer_predict.json`` is written again
    only once every file of this run is in place.
    """
    listing = out / SETTINGS_NAME
    if not listing.exists():
        return
    try:
        earlier = json.loads(listing.read_text(encoding="utf-8"))
        files = [Path(str(f["path"])).name for f in earlier.get("files", [])]
        same = (
            earlier["settings"].get("settings_hash") == settings_hash
            and earlier["settings"].get("format") == fmt
        )
    except (OSError, ValueError, KeyError, TypeError, AttributeError):
        files, same = [], False
    if not same:
        if not overwrite:
            raise ValueError(
                f"{out} holds the outputs of an earlier run with other settings ({len(files)} "
                f"file(s) listed in {SETTINGS_NAME}); choose another --out, or pass --overwrite "
                "(overwrite=True) to replace them"
            )
        gone = [name for name in files if (out / name).is_file()]
        logger.warning(
            "--overwrite: removing %d file(s) of an earlier run with other settings from %s",
            len(gone),
            out,
        )
        for name in gone:
            (out / name).unlink()
    listing.unlink()


def _claim(store: JobDir, out: Path, fmt: str, overwrite: bool, n_units: int) -> None:
    """Take the run lock on ``OUT/.work``, then settle earlier outputs and units (rank 0)."""
    store.lock.acquire()
    _previous_outputs(out, store.hash, fmt, overwrite)
    store.claim(units=n_units)
    names = (store.previous or {}).get("outputs") or []
    gone = [Path(str(n)).name for n in names if (out / Path(str(n)).name).is_file()]
    if gone:  # files of an unfinished run with other settings: no finished run owns them
        logger.warning("removing %d output file(s) of that unfinished run from %s", len(gone), out)
    for name in gone:
        (out / name).unlink()


def _verify_tiles(store: JobDir, plan: TilePlan, genome: Genome, margin: int) -> None:
    """Discard finished tiles whose stored sequence digest differs from the genome's bases."""
    finished = [u for u in sorted(store.done()) if u < len(plan)]
    stale = store.stale(
        finished, lambda u: sequence_digest(tile_sequence(genome, plan.tile(u), margin))
    )
    if stale:
        logger.warning(
            "%d finished tile(s) in %s were computed from other genome bases than %s now "
            "holds (was the FASTA replaced?); computing them again",
            len(stale),
            store.unit_dir,
            genome.path,
        )
        store.discard(stale)


def _agree(dist: DistributedContext, settings_hash: str, error: Exception | None) -> None:
    """Raise on every rank if rank 0 could not claim the directory or the settings differ."""
    main_hash, kind, message = dist.broadcast(
        (settings_hash, type(error).__name__ if error else None, str(error) if error else None)
    )
    if error is not None:
        raise error
    if message is not None:
        raise (JobLockedError if kind == "JobLockedError" else ValueError)(message)
    if main_hash != settings_hash:
        raise ValueError(
            f"rank {dist.rank} computed other settings than rank 0 (different weights, genome "
            "or arguments per process?)"
        )


class _Work(NamedTuple):
    """The units of a job: tiles of genomic regions, or whole sequences."""

    plan: TilePlan | None
    seq_list: list[tuple[str, str]]
    geometry: OutputGeometry
    n_units: int
    settings: dict[str, Any]


def _check_request(
    regions: Any, sequences: Any, format: str, genome: Genome | None, out: Path
) -> None:
    """Refuse inconsistent arguments before anything is computed."""
    if (regions is None) == (sequences is None):
        raise ValueError("give exactly one of regions= or sequences=")
    if format not in FORMATS:
        raise ValueError(f"format must be one of {', '.join(FORMATS)}; got {format!r}")
    if sequences is not None and format == "bigwig":
        raise ValueError(
            "sequences have no genomic coordinates, so they cannot be written as BigWig; "
            "use format 'h5' or 'npz'"
        )
    if regions is not None and genome is None:
        raise ValueError("genomic regions need a genome")
    if out.exists() and not out.is_dir():
        raise NotADirectoryError(f"output path {out} exists and is not a directory")


def _plan_work(
    config: Any,
    genome: Genome | None,
    regions: Sequence[Interval] | None,
    sequences: Sequence[tuple[str, str]] | None,
    format: str,
    align: Align,
) -> _Work:
    """Tile the regions (or take the sequences); the settings that identify the units."""
    if regions is not None:
        assert genome is not None
        resolved = [
            Interval(genome.resolve_chrom(r.chrom), r.start, r.end, r.name, r.strand)
            for r in regions
        ]
        if not resolved:
            raise ValueError("no regions to predict")
        geometry = output_geometry(config)
        plan = plan_tiles(
            resolved,
            geometry,
            chrom_sizes=genome.chrom_sizes,
            align=align,
            merge=format == "bigwig",
        )
        genome_id = {
            "path": str(Path(genome.path).resolve()),
            "chromosomes": genome_fingerprint(genome),
        }
        settings = {"kind": "regions", "plan": plan.to_dict(), "genome": genome_id}
        return _Work(plan, [], geometry, len(plan), settings)
    assert sequences is not None
    seq_list = [(str(name), str(seq).upper()) for name, seq in sequences]
    if not seq_list:
        raise ValueError("no sequences to predict")
    lengths = {len(s) for _, s in seq_list}
    if len(lengths) > 1:
        raise ValueError(
            f"all sequences must have the same length (the model's input length, "
            f"{config.sequence_length} bp); got lengths {sorted(lengths)[:5]}"
        )
    geometry = output_geometry(config, lengths.pop())
    settings = {
        "kind": "sequences",
        "input_length": geometry.input_length,
        "sequences": settings_digest(seq_list),
    }
    return _Work(None, seq_list, geometry, len(seq_list), settings)


def _engine_settings(
    model: torch.nn.Module, engine: Engine, indices: Any, pairs: Any, dtype: Any
) -> dict[str, Any]:
    """What of the model and the engine determines the units' values."""
    return {
        "model": model_fingerprint(model),
        "tracks": indices,
        "strand_pairs": {
            h: None if p is None else settings_digest(p.tolist()) for h, p in pairs.items()
        },
        "rc": engine.rc,
        "shifts": list(engine.shifts),
        "dtype": str(dtype) if dtype is not None else None,
        "chunk_version": _CHUNK_VERSION,
    }


def _predict_units(
    engine: Engine,
    store: JobDir,
    mine: list[int],
    work: _Work,
    genome: Genome | None,
    show: bool,
) -> None:
    """Predict this rank's units into the job directory."""
    with engine:
        if work.plan is not None:
            assert genome is not None
            digests: dict[int, str] = {}

            def save(tile: Tile, arrays: dict[str, np.ndarray]) -> None:
                store.save(tile.index, arrays, digest=digests.pop(tile.index))

            plan = work.plan
            tiles = (plan.tile(u) for u in mine)
            predict_tiles(
                engine, genome, tiles, save, total=len(mine), progress=show, digests=digests
            )
            return
        bar = progress_bar(len(mine), "sequences", show)
        try:
            for lo in range(0, len(mine), engine.chunk_size):
                part = mine[lo : lo + engine.chunk_size]
                x = one_hot([work.seq_list[u][1] for u in part], ambiguous="n")
                x_t = torch.from_numpy(x.reshape(len(part), -1, 4))
                if engine.margin:
                    x_t = torch.nn.functional.pad(x_t, (0, 0, engine.margin, engine.margin))
                result = engine.run(x_t)
                for j, u in enumerate(part):
                    store.save(u, {h: v[j] for h, v in result.items()})
                bar.update(len(part))
        finally:
            bar.close()


def _run_units(
    dist: DistributedContext,
    store: JobDir,
    engine: Engine,
    work: _Work,
    genome: Genome | None,
    fmt: str,
    overwrite: bool,
    progress: bool,
) -> tuple[set[int], list[int]]:
    """Claim the job (rank 0), then predict this rank's unfinished units; (done, mine)."""
    error: Exception | None = None
    if dist.is_main:
        try:
            _claim(store, Path(store.path).parent, fmt, overwrite, work.n_units)
            if work.plan is not None:
                assert genome is not None
                _verify_tiles(store, work.plan, genome, engine.margin)
        except Exception as err:  # noqa: BLE001 - every rank must hear of it
            error = err
    _agree(dist, store.hash, error)
    dist.barrier()
    done = store.done()
    dist.barrier()  # nobody writes a unit before every rank has listed the finished ones
    remaining = [u for u in range(work.n_units) if u not in done]
    mine = shard_units(remaining, (dist.rank, dist.world_size))
    logger.info(
        "rank %d/%d: %d of %d unit(s) to predict (%d finished earlier)",
        dist.rank,
        dist.world_size,
        len(mine),
        work.n_units,
        len(done),
    )
    _predict_units(engine, store, mine, work, genome, progress and dist.is_main)
    dist.barrier()
    return done, mine


def predict_to_files(
    model: torch.nn.Module,
    out_dir: str | os.PathLike[str],
    *,
    genome: Genome | None = None,
    regions: Sequence[Interval] | None = None,
    sequences: Sequence[tuple[str, str]] | None = None,
    format: Format = "bigwig",
    head: str | Sequence[str] | None = None,
    tracks: Any = None,
    track_sheet: Any = None,
    strand_pairs: Any = None,
    rc: bool = False,
    shifts: Sequence[int] = (0,),
    batch_size: int = 1,
    device: str | torch.device | None = None,
    dtype: torch.dtype | None = None,
    align: Align = "start",
    progress: bool = True,
    settings: Mapping[str, Any] | None = None,
    distributed: DistributedContext | None = None,
    overwrite: bool = False,
) -> PredictionFiles:
    """Predict genomic regions or sequences and write the results to files.

    Parameters
    ----------
    model : torch.nn.Module
        The model; left on its device and in its train/eval mode afterwards.
    out_dir : str or os.PathLike
        Output directory (created if missing). Its ``.work`` subdirectory (a
        :class:`~enformer.io.jobdir.JobDir`) holds the finished units of an unfinished run.
    genome : Genome, optional
        Reference genome; needed for ``regions``. Its chromosome sizes (FASTA order) form the
        BigWig header.
    regions : sequence of Interval, optional
        Genomic regions (0-based, half-open) to tile (see :mod:`enformer.inference.tiling`);
        whole chromosomes are regions ``[0, length)``. Chromosome names are resolved with
        :meth:`Genome.resolve_chrom`.
    sequences : sequence of (str, str), optional
        ``(name, DNA)`` pairs, all of one length that the model accepts (normally
        ``config.sequence_length``). They have no genomic coordinates: only ``'h5'`` and
        ``'npz'`` are possible.
    format : {'bigwig', 'h5', 'npz'}, optional
        Output format (see the module docstring).
    head : str or sequence of str, optional
        Head(s) to predict; default every head.
    tracks, track_sheet, strand_pairs, rc, shifts, batch_size, device, dtype
        As for :func:`~enformer.inference.predict.predict`.
    align : {'start', 'grid'}, optional
        Where the first bin of each region starts (see
        :func:`~enformer.inference.tiling.plan_tiles`).
    progress : bool, optional
        Show progress bars (rank 0 only).
    settings : mapping, optional
        Extra settings to record in the settings JSON (e.g. the command line's arguments).
    distributed : DistributedContext, optional
        Process group membership; default :meth:`DistributedContext.from_env`, so a run
        under ``torchrun`` shards the units over the processes (unit ``u`` goes to rank
        ``u % world_size``, :func:`~enformer.io.jobdir.shard_units`).
    overwrite : bool, optional
        Replace the outputs of an earlier finished run with other settings found in
        ``out_dir`` (the files its ``enformer_predict.json`` lists are removed). Without it
        such a directory is refused.

    Returns
    -------
    PredictionFiles
        The files written and what was computed or reused.

    Raises
    ------
    ValueError
        On bad input: neither or both of ``regions``/``sequences``, an unknown format, BigWig
        for sequences, unknown chromosomes or tracks, regions outside their chromosome; and
        when ``out_dir`` holds the outputs of a run with other settings (see ``overwrite``).
    JobLockedError
        When another live run is writing into ``out_dir`` (nothing of it is touched).
    """
    out = Path(out_dir)
    _check_request(regions, sequences, format, genome, out)
    config = model.config
    selection = resolve_selection(config, head, tracks, track_sheet, strand_pairs)
    heads, indices, identifiers, pairs = selection
    work = _plan_work(config, genome, regions, sequences, format, align)
    owns_group = distributed is None
    dist = distributed if distributed is not None else DistributedContext.from_env(device)
    try:
        dev = dist.device(device)
        engine = Engine.for_selection(
            model, selection, rc=rc, shifts=shifts, batch_size=batch_size, device=dev, dtype=dtype
        )
        job_settings = {**work.settings, **_engine_settings(model, engine, indices, pairs, dtype)}
        store = JobDir(out / WORK_NAME, job_settings, what=f"output directory {out}")
        ok = False
        try:
            done, mine = _run_units(dist, store, engine, work, genome, format, overwrite, progress)
            ok = True
        finally:  # a run that failed on its inputs (or before finishing a unit) leaves nothing
            if not ok:
                store.release(discard=not store.done())
        _warn_mostly_n(engine)
        result = PredictionFiles(
            out_dir=str(out),
            files=[],
            settings_path=None,
            units=work.n_units,
            computed=len(mine),
            reused=len(done),
            rank=dist.rank,
            world_size=dist.world_size,
            mostly_n=engine.mostly_n,
        )
        if not dist.is_main:
            return result
        layout = ArrayLayout(work.geometry, indices, identifiers)
        resolved = {**(dict(settings) if settings else {}), "format": format, "heads": heads}
        resolved.update(_resolved_settings(layout, engine, pairs, dtype, dist, model, store))
        if work.plan is not None:
            resolved["align"] = align
        try:
            return _finish(result, store, work, genome, layout, progress, resolved)
        finally:
            store.release()
    finally:
        if owns_group:
            dist.close()


def _warn_mostly_n(engine: Engine) -> None:
    if engine.mostly_n:
        logger.warning(
            "%d of %d predicted window(s) are more than %d%% N: their predictions reflect "
            "little or no DNA sequence (an assembly gap or a masked region?)",
            engine.mostly_n,
            engine.inputs_seen,
            int(100 * MOSTLY_N),
        )


def _resolved_settings(
    layout: ArrayLayout,
    engine: Engine,
    pairs: Any,
    dtype: Any,
    dist: Any,
    model: Any,
    store: JobDir,
) -> dict[str, Any]:
    """The settings written beside the outputs, after the caller's, the format and the heads."""
    return {
        "tracks": layout.indices,
        "track_identifiers": layout.identifiers,
        "rc": engine.rc,
        "shifts": list(engine.shifts),
        "strand_pairs_swapped": {h: p is not None for h, p in pairs.items()},
        "dtype": str(dtype) if dtype is not None else None,
        "batch_size": engine.batch_size,
        "world_size": dist.world_size,
        "model_description": model.config.description,
        "model_fingerprint": store.settings["model"],
        "geometry": asdict(layout.geometry),
        "settings_hash": store.hash,
    }


def _finish(
    result: PredictionFiles,
    store: JobDir,
    work: _Work,
    genome: Genome | None,
    layout: ArrayLayout,
    progress: bool,
    resolved: dict[str, Any],
) -> PredictionFiles:
    """Assemble the outputs from the units, write the settings last, remove the work (rank 0)."""
    out = Path(result.out_dir)
    fmt = resolved["format"]
    # Should the run die while assembling, a later run with other settings removes these
    # files: without enformer_predict.json they belong to no finished run.
    store.record(outputs=planned_names(fmt, layout))
    if work.plan is not None:
        assert genome is not None
        resolved["genome"] = str(genome.path)
        resolved["regions"] = work.plan.to_dict()["regions"]
        sizes = genome.chrom_sizes
        files = assemble_regions(out, fmt, store, work.plan, sizes, layout, resolved, progress)
    else:
        names = [name for name, _ in work.seq_list]
        resolved["sequences"] = names
        files = assemble_sequences(out, fmt, store, names, layout, resolved)
    settings_path = out / SETTINGS_NAME
    write_json_atomic(
        settings_path,
        {"settings": resolved, "files": [f.to_dict() for f in files]},
    )
    store.remove()  # the lock file goes with it; the lock is still held until released
    result.files = files
    result.settings_path = str(settings_path)
    logger.info("wrote %d file(s) to %s", len(files), out)
    return result
