"""Write predictions to BigWig, HDF5 or NPZ files, atomically and resumably.

:func:`predict_to_files` runs a whole job: it plans tiles over genomic regions (or takes a list
of sequences), predicts them in batches, and writes the results.

Resumable work
--------------
Every finished unit of work (a tile, or one input sequence) is saved as its own chunk file
``OUT/.work/chunks/<unit>.npz``, written to a temporary name and moved into place with
:func:`os.replace`, so a chunk is either complete or absent. ``OUT/.work/manifest.json`` holds a
hash of everything that determines the chunks' contents (model weights, genome, regions and
tiling, heads, tracks, strand pairs, reverse complement, shifts, dtype). A rerun with the same
hash skips the units whose chunks exist; a run with a different hash discards the stale chunks
first. Batch size, device, output format and the number of processes do not enter the hash, so
they may change between a crash and the restart.

The genome enters the hash by path and chromosome names and lengths; its bases are checked per
tile: each tile's chunk stores :func:`~enformer.io.jobs.sequence_digest` of the sequence it
read, and on resume every finished tile is read again from the current FASTA and recomputed
(with a warning naming how many) if its bases differ, e.g. after the FASTA was replaced.

One run per output
------------------
A run claims ``OUT/.work/lock`` (:class:`~enformer.io.jobs.JobLock`) before it touches
anything in ``OUT`` and holds it until it ends; rank 0 of a ``torchrun`` job claims it for all
ranks. A second run into the same ``OUT`` while the first is alive is refused with
:class:`~enformer.io.jobs.JobLockedError` (``enformer predict`` exits with status 2) and
touches nothing; once the holder has died, however, the next run resumes. A run that fails on
its inputs, before any unit is finished, removes the directories it created.

Earlier outputs
---------------
If ``OUT`` holds the finished outputs of an earlier run (``enformer_predict.json``) with other
settings (or another format), the run is refused unless ``overwrite=True``
(``--overwrite``), which removes the files the earlier listing names before starting. With
the same settings the files are simply written again. In both cases the earlier listing is
withdrawn at the start and ``enformer_predict.json`` reappears only when every file of the
new run is in place, so a listing always describes complete files.

Final files
-----------
Outputs are assembled from the chunks into temporary names in ``OUT`` and moved into place with
:func:`os.replace`: no partial or corrupt file ever sits under a final name. The resolved
settings and the list of files are written last, as ``OUT/enformer_predict.json``. The work
directory is removed after success.

* ``bigwig``: one file per head and selected track, ``<head>_track<index>[_<identifier>].bw``,
  with every chromosome of the genome in the header (FASTA order) and one fixed-step entry
  per bin (``bin_size`` span and step); a bin reaching past the chromosome end is clipped to
  it. Regions are sorted and overlapping ones merged (BigWig entries may not overlap).
* ``h5`` / ``npz``: one file ``predictions.h5`` / ``predictions.npz`` (an NPZ is streamed
  member by member, so memory stays bounded). Genomic regions are stored flat, one row per
  bin over all regions in order::

      <head>/values          float32 (total_bins, n_tracks)
      <head>/track_index     int64 (n_tracks,)
      <head>/track_identifier  str (n_tracks,)       when a track sheet is known
      bins/chrom             str (total_bins,)
      bins/start, bins/end   int64 (total_bins,)     0-based half-open, ends clipped to the
                                                     chromosome
      bins/region            int64 (total_bins,)     row of regions/*
      regions/chrom, regions/start, regions/end, regions/name   the regions as requested
                                                     (ends clipped to the chromosome)
      regions/bin_start      int64                   genomic start of each region's bin 0
      regions/first_row, regions/n_bins  int64       where each region's bins are in values
      settings               str                     the resolved settings as JSON

  Sequences (no genomic coordinates) are stored as ``<head>/values`` float32 ``(N, bins,
  n_tracks)``, ``names`` str ``(N,)`` and ``bins/start``, ``bins/end`` int64 ``(bins,)``:
  positions within the input sequences.
"""

from __future__ import annotations

import contextlib
import json
import logging
import os
import re
import shutil
import zipfile
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Literal, NamedTuple

import numpy as np
import torch

from ..data.genome import Genome, Interval
from ..data.sequence import one_hot
from ..io.jobs import (
    JobLock,
    JobLockedError,
    atomic_path,
    genome_fingerprint,
    model_fingerprint,
    sequence_digest,
    settings_digest,
    write_json_atomic,
)
from .distributed import DistributedContext
from .predict import (
    MOSTLY_N,
    Engine,
    OutputGeometry,
    resolve_heads,
    output_geometry,
    progress_bar,
    resolve_strand_pairs,
    resolve_tracks,
)
from .tiling import Align, Tile, TilePlan, plan_tiles, predict_tiles, tile_sequence

__all__ = [
    "FORMATS",
    "ChunkStore",
    "OutputFile",
    "PredictionFiles",
    "atomic_path",
    "model_fingerprint",
    "predict_to_files",
]

logger = logging.getLogger(__name__)

Format = Literal["bigwig", "h5", "npz"]
FORMATS: tuple[str, ...] = ("bigwig", "h5", "npz")
"""Output formats understood by :func:`predict_to_files`."""

SETTINGS_NAME = "enformer_predict.json"
WORK_NAME = ".work"
_CHUNK_VERSION = 2  # 2: every genomic chunk carries the digest of the sequence it read
INPUT_DIGEST_KEY = "__input_digest__"
"""Member of a chunk file holding :func:`~enformer.io.jobs.sequence_digest` of its input."""
# BigWig files open at once while assembling (one per track); more tracks take more passes.
_BIGWIG_GROUP = 128


# --------------------------------------------------------------------------------------
# Chunk store
# --------------------------------------------------------------------------------------


class ChunkStore:
    """Finished units of work, one ``.npz`` file each, under ``OUT/.work``.

    Parameters
    ----------
    work_dir : pathlib.Path
        The work directory (``OUT/.work``).
    settings_hash : str
        Hash of everything that determines the chunks' contents.
    """

    def __init__(self, work_dir: Path, settings_hash: str) -> None:
        self.work_dir = Path(work_dir)
        self.chunk_dir = self.work_dir / "chunks"
        self.manifest = self.work_dir / "manifest.json"
        self.settings_hash = settings_hash

    def prepare(self, summary: Mapping[str, Any] | None = None) -> int:
        """Validate or reset the work directory (call on one process only).

        Chunks made with other settings, or without a readable manifest, are discarded.

        Parameters
        ----------
        summary : mapping, optional
            Extra information recorded in the manifest.

        Returns
        -------
        int
            Number of chunks kept from an earlier run.
        """
        stale = False
        if self.manifest.exists() or self.chunk_dir.exists():
            try:
                found = json.loads(self.manifest.read_text(encoding="utf-8"))
                stale = found.get("settings_hash") != self.settings_hash
            except (OSError, ValueError):
                stale = True
            if stale:
                logger.warning(
                    "%s holds %d chunk(s) of a run with other settings; discarding them",
                    self.work_dir,
                    len(self._names()),
                )
                self._remove_unfinished_outputs()
                shutil.rmtree(self.chunk_dir, ignore_errors=True)
                self.manifest.unlink(missing_ok=True)
        self.chunk_dir.mkdir(parents=True, exist_ok=True)
        if stale or not self.manifest.exists():
            write_json_atomic(
                self.manifest,
                {
                    "settings_hash": self.settings_hash,
                    "chunk_version": _CHUNK_VERSION,
                    **(dict(summary) if summary else {}),
                },
            )
        kept = len(self.done())
        if kept:
            logger.info("resuming: %d finished unit(s) found in %s", kept, self.chunk_dir)
        return kept

    def record_outputs(self, names: Sequence[str]) -> None:
        """Note in the manifest the files about to be assembled (names in ``OUT``).

        Should the run die while assembling, a later run with other settings removes them:
        without ``enformer_predict.json`` they belong to no finished run.
        """
        found = json.loads(self.manifest.read_text(encoding="utf-8"))
        write_json_atomic(self.manifest, {**found, "outputs": list(names)})

    def _remove_unfinished_outputs(self) -> None:
        try:
            names = json.loads(self.manifest.read_text(encoding="utf-8")).get("outputs", [])
        except (OSError, ValueError, AttributeError):
            return
        out = self.work_dir.parent
        gone = [Path(str(n)).name for n in names if (out / Path(str(n)).name).is_file()]
        if gone:
            logger.warning(
                "removing %d output file(s) of that unfinished run from %s", len(gone), out
            )
        for name in gone:
            (out / name).unlink()

    def _names(self) -> list[str]:
        if not self.chunk_dir.is_dir():
            return []
        return [p.name for p in self.chunk_dir.iterdir()]

    def path(self, unit: int) -> Path:
        """Chunk file of unit ``unit``."""
        return self.chunk_dir / f"{unit:09d}.npz"

    def done(self) -> set[int]:
        """Units whose chunk file exists."""
        out = set()
        for name in self._names():
            match = re.fullmatch(r"(\d{9})\.npz", name)
            if match:
                out.add(int(match.group(1)))
        return out

    def save(self, unit: int, arrays: Mapping[str, np.ndarray]) -> None:
        """Write one unit's arrays atomically.

        Parameters
        ----------
        unit : int
            Unit index.
        arrays : mapping of str to numpy.ndarray
            Per head, the unit's values.
        """
        with atomic_path(self.path(unit)) as tmp, open(tmp, "wb") as fh:
            np.savez(fh, **{k: np.ascontiguousarray(v) for k, v in arrays.items()})

    def load(self, unit: int) -> dict[str, np.ndarray]:
        """Read one unit's arrays.

        Parameters
        ----------
        unit : int
            Unit index.

        Returns
        -------
        dict of str to numpy.ndarray
            Per head, the values.
        """
        path = self.path(unit)
        try:
            with np.load(path) as data:
                return {k: data[k] for k in data.files}
        except FileNotFoundError:
            raise FileNotFoundError(
                f"chunk {path.name} is missing from {self.chunk_dir}: a process of this run "
                "did not finish its share; run the same command again to resume"
            ) from None
        except (OSError, ValueError, zipfile.BadZipFile) as err:
            raise ValueError(
                f"chunk {path} is unreadable ({err}); delete it and run again to redo it"
            ) from err

    def input_digest(self, unit: int) -> str | None:
        """The input digest stored with a unit's chunk (``None`` if absent or unreadable)."""
        try:
            with np.load(self.path(unit)) as data:
                if INPUT_DIGEST_KEY not in data.files:
                    return None
                return str(data[INPUT_DIGEST_KEY].reshape(-1)[0])
        except (OSError, ValueError, zipfile.BadZipFile):
            return None

    def discard(self, units: Sequence[int]) -> None:
        """Delete the chunks of ``units`` (they will be computed again)."""
        for unit in units:
            self.path(unit).unlink(missing_ok=True)

    def remove(self) -> None:
        """Delete the work directory."""
        shutil.rmtree(self.work_dir, ignore_errors=True)


# --------------------------------------------------------------------------------------
# Results
# --------------------------------------------------------------------------------------


@dataclass
class OutputFile:
    """One file written by :func:`predict_to_files`.

    Attributes
    ----------
    path : str
        Path of the file.
    format : str
        ``'bigwig'``, ``'h5'`` or ``'npz'``.
    head : str or None
        Head of a BigWig file (``None`` for array files, which hold every head).
    track_index : int or None
        Output track of a BigWig file.
    track_identifier : str or None
        Its identifier, when a track sheet is known.
    tracks : dict of str to list of dict
        For array files: per head, ``{'index', 'identifier'}`` of every column.
    regions : list of str
        Regions covered (``chrom:start-end``, 1-based inclusive), or sequence names.
    """

    path: str
    format: str
    head: str | None = None
    track_index: int | None = None
    track_identifier: str | None = None
    tracks: dict[str, list[dict[str, Any]]] = field(default_factory=dict)
    regions: list[str] = field(default_factory=list)

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready dict, without empty fields."""
        return {k: v for k, v in asdict(self).items() if v not in (None, {}, [])}


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
# Assembly
# --------------------------------------------------------------------------------------


def _safe(text: str) -> str:
    return re.sub(r"[^A-Za-z0-9._+-]+", "_", text).strip("._") or "track"


def bigwig_name(head: str, index: int, identifier: str | None) -> str:
    """File name of a track's BigWig: ``<head>_track<index>[_<identifier>].bw``.

    Parameters
    ----------
    head : str
        Head name.
    index : int
        Output track index.
    identifier : str or None
        Track identifier (runs of characters outside ``A-Za-z0-9._+-`` become ``_``).

    Returns
    -------
    str
        The file name.
    """
    suffix = f"_{_safe(identifier)}" if identifier else ""
    return f"{_safe(head)}_track{index}{suffix}.bw"


def _tile_rows(plan: TilePlan) -> list[int]:
    """Row in the flat bin table where each region's bins begin."""
    rows, first = [], 0
    for region in plan.regions:
        rows.append(first)
        first += region.n_bins
    return rows


def _bin_coords(
    tile: Tile, plan: TilePlan, sizes: Mapping[str, int]
) -> tuple[np.ndarray, np.ndarray]:
    b = plan.geometry.bin_size
    starts = tile.out_start + np.arange(tile.n_keep, dtype=np.int64) * b
    ends = np.minimum(starts + b, sizes[tile.chrom])
    return starts, ends


def _assemble_bigwig(
    out_dir: Path,
    store: ChunkStore,
    plan: TilePlan,
    sizes: Mapping[str, int],
    tracks: Mapping[str, list[int]],
    identifiers: Mapping[str, list[str]],
    progress: bool,
) -> list[OutputFile]:
    try:
        import pyBigWig
    except ImportError as err:  # pragma: no cover - depends on the environment
        raise ImportError("BigWig output needs pyBigWig: pip install 'enformer[tracks]'") from err
    b = plan.geometry.bin_size
    header = [(c, int(n)) for c, n in sizes.items()]
    labels = [r.label() for r in plan.regions]
    files: list[OutputFile] = []
    jobs = [(h, col) for h in tracks for col in range(len(tracks[h]))]
    bar = progress_bar(len(jobs), "bigwig", progress, unit="file")
    try:
        for lo in range(0, len(jobs), _BIGWIG_GROUP):
            group = jobs[lo : lo + _BIGWIG_GROUP]
            with contextlib.ExitStack() as stack:
                handles = []
                for head, col in group:
                    ident = identifiers.get(head, [None] * len(tracks[head]))[col]
                    final = out_dir / bigwig_name(head, tracks[head][col], ident)
                    tmp = stack.enter_context(atomic_path(final))
                    bw = pyBigWig.open(str(tmp), "w")
                    if bw is None:  # pragma: no cover - pyBigWig reports failure this way
                        raise OSError(f"cannot create BigWig file {tmp}")
                    bw.addHeader(header)
                    handles.append((head, col, bw))
                    files.append(
                        OutputFile(
                            path=str(final),
                            format="bigwig",
                            head=head,
                            track_index=tracks[head][col],
                            track_identifier=ident,
                            regions=labels,
                        )
                    )
                try:
                    for tile in plan:
                        chunk = store.load(tile.index)
                        starts, ends = _bin_coords(tile, plan, sizes)
                        full = int(np.sum(ends - starts == b))
                        for head, col, bw in handles:
                            values = chunk[head][:, col]
                            if full:
                                bw.addEntries(
                                    tile.chrom,
                                    int(starts[0]),
                                    values=values[:full].astype(np.float64),
                                    span=b,
                                    step=b,
                                )
                            if full < tile.n_keep:  # the bin that reaches past the chromosome
                                bw.addEntries(
                                    [tile.chrom],
                                    [int(starts[full])],
                                    ends=[int(ends[full])],
                                    values=[float(values[full])],
                                )
                finally:
                    for _, _, bw in handles:
                        bw.close()
            bar.update(len(group))
    finally:
        bar.close()
    return files


def _region_tables(plan: TilePlan) -> dict[str, np.ndarray]:
    rows = _tile_rows(plan)
    regions = plan.regions
    return {
        "regions/chrom": np.array([r.chrom for r in regions], dtype=str),
        "regions/start": np.array([r.requested.start for r in regions], dtype=np.int64),
        "regions/end": np.array([r.end for r in regions], dtype=np.int64),
        "regions/name": np.array([r.name or "" for r in regions], dtype=str),
        "regions/bin_start": np.array([r.start for r in regions], dtype=np.int64),
        "regions/first_row": np.array(rows, dtype=np.int64),
        "regions/n_bins": np.array([r.n_bins for r in regions], dtype=np.int64),
    }


def _track_tables(
    tracks: Mapping[str, list[int]], identifiers: Mapping[str, list[str]]
) -> dict[str, np.ndarray]:
    out: dict[str, np.ndarray] = {}
    for head, idx in tracks.items():
        out[f"{head}/track_index"] = np.array(idx, dtype=np.int64)
        if head in identifiers:
            out[f"{head}/track_identifier"] = np.array(identifiers[head], dtype=str)
    return out


def _array_file_entry(
    path: Path,
    fmt: str,
    tracks: Mapping[str, list[int]],
    identifiers: Mapping[str, list[str]],
    regions: list[str],
) -> OutputFile:
    listing = {
        head: [
            {"index": i, **({"identifier": identifiers[head][k]} if head in identifiers else {})}
            for k, i in enumerate(idx)
        ]
        for head, idx in tracks.items()
    }
    return OutputFile(path=str(path), format=fmt, tracks=listing, regions=regions)


def _h5_strings(values: Sequence[str]) -> np.ndarray:
    encoded = [v.encode("utf-8") for v in values]
    width = max([len(v) for v in encoded] + [1])
    return np.array(encoded, dtype=f"S{width}")


def _h5_header(
    f: Any, layout: str, bin_size: int, settings: Mapping[str, Any], tables: Mapping[str, Any]
) -> None:
    """Write the layout, bin size, settings and small tables of an HDF5 output."""
    f.attrs["layout"] = layout
    f.attrs["bin_size"] = bin_size
    f["settings"] = json.dumps(settings, default=str)
    for key, arr in tables.items():
        f[key] = _h5_strings(arr.tolist()) if arr.dtype.kind == "U" else arr


def _bin_dtypes(chrom_dtype: np.dtype) -> dict[str, np.dtype]:
    """Names and dtypes of the ``bins/*`` tables of a regions output, in order."""
    int64 = np.dtype(np.int64)
    return {"bins/chrom": chrom_dtype, "bins/start": int64, "bins/end": int64, "bins/region": int64}


def _bin_columns(
    tile: Tile, plan: TilePlan, sizes: Mapping[str, int], chrom_dtype: np.dtype
) -> dict[str, np.ndarray]:
    """A tile's rows of the ``bins/*`` tables (chromosome names as bytes for an ``S`` dtype)."""
    starts, ends = _bin_coords(tile, plan, sizes)
    chrom = tile.chrom.encode() if chrom_dtype.kind == "S" else tile.chrom
    return {
        "bins/chrom": np.full(tile.n_keep, chrom, dtype=chrom_dtype),
        "bins/start": starts,
        "bins/end": ends,
        "bins/region": np.full(tile.n_keep, tile.region, dtype=np.int64),
    }


def _assemble_h5_regions(
    final: Path,
    store: ChunkStore,
    plan: TilePlan,
    sizes: Mapping[str, int],
    tracks: Mapping[str, list[int]],
    identifiers: Mapping[str, list[str]],
    settings: Mapping[str, Any],
    progress: bool,
) -> None:
    import h5py

    total = plan.total_bins
    rows = _tile_rows(plan)
    chrom_dtype = np.dtype(f"S{max(len(c.encode()) for c in sizes)}")
    with atomic_path(final) as tmp, h5py.File(tmp, "w") as f:
        tables = {**_region_tables(plan), **_track_tables(tracks, identifiers)}
        _h5_header(f, "regions", plan.geometry.bin_size, settings, tables)
        values = {
            h: f.create_dataset(f"{h}/values", shape=(total, len(idx)), dtype="float32")
            for h, idx in tracks.items()
        }
        bins = {
            name: f.create_dataset(name, shape=(total,), dtype=dtype)
            for name, dtype in _bin_dtypes(chrom_dtype).items()
        }
        bar = progress_bar(len(plan), "h5", progress, unit="tile")
        try:
            for tile in plan:
                chunk = store.load(tile.index)
                lo = rows[tile.region] + tile.bin_offset
                hi = lo + tile.n_keep
                for h, ds in values.items():
                    ds[lo:hi] = chunk[h]
                for name, column in _bin_columns(tile, plan, sizes, chrom_dtype).items():
                    bins[name][lo:hi] = column
                bar.update()
        finally:
            bar.close()


class _NpzStream:
    """Write an ``.npz`` (a zip of ``.npy`` members) member by member, streaming data."""

    def __init__(self, path: Path) -> None:
        self._zip = zipfile.ZipFile(path, "w", compression=zipfile.ZIP_STORED, allowZip64=True)

    def add(self, name: str, array: np.ndarray) -> None:
        """Add a whole (small) array."""
        with self._zip.open(f"{name}.npy", "w", force_zip64=True) as fh:
            np.lib.format.write_array(fh, np.asarray(array), allow_pickle=False)

    @contextlib.contextmanager
    def stream(self, name: str, dtype: np.dtype, shape: tuple[int, ...]) -> Iterator[Any]:
        """Yield a ``write(block)`` function; blocks are C-ordered rows of ``shape``."""
        dtype = np.dtype(dtype)
        expected = int(np.prod(shape)) * dtype.itemsize
        written = 0
        with self._zip.open(f"{name}.npy", "w", force_zip64=True) as fh:
            header = {
                "descr": np.lib.format.dtype_to_descr(dtype),
                "fortran_order": False,
                "shape": tuple(int(s) for s in shape),
            }
            np.lib.format.write_array_header_2_0(fh, header)

            def write(block: np.ndarray) -> None:
                nonlocal written
                data = np.ascontiguousarray(block, dtype=dtype).tobytes()
                written += len(data)
                fh.write(data)

            yield write
        if written != expected:
            raise RuntimeError(f"npz member {name}: wrote {written} bytes, expected {expected}")

    def close(self) -> None:
        """Finish the zip file."""
        self._zip.close()


def _npz_header(
    z: _NpzStream,
    layout: str,
    bin_size: int,
    settings: Mapping[str, Any],
    tables: Mapping[str, Any],
) -> None:
    """Write the layout, bin size, settings and small tables of an NPZ output."""
    z.add("layout", np.array(layout))
    z.add("bin_size", np.array(bin_size, dtype=np.int64))
    z.add("settings", np.array(json.dumps(settings, default=str)))
    for key, arr in tables.items():
        z.add(key, arr)


def _assemble_npz_regions(
    final: Path,
    store: ChunkStore,
    plan: TilePlan,
    sizes: Mapping[str, int],
    tracks: Mapping[str, list[int]],
    identifiers: Mapping[str, list[str]],
    settings: Mapping[str, Any],
    progress: bool,
) -> None:
    total = plan.total_bins
    chrom_dtype = np.dtype(f"<U{max(len(c) for c in sizes)}")
    with atomic_path(final) as tmp:
        z = _NpzStream(tmp)
        try:
            tables = {**_region_tables(plan), **_track_tables(tracks, identifiers)}
            _npz_header(z, "regions", plan.geometry.bin_size, settings, tables)
            bar = progress_bar(len(plan) * len(tracks), "npz", progress, unit="tile")
            try:
                for head, idx in tracks.items():
                    with z.stream(f"{head}/values", np.float32, (total, len(idx))) as write:
                        for tile in plan:
                            write(store.load(tile.index)[head])
                            bar.update()
            finally:
                bar.close()
            for name, dtype in _bin_dtypes(chrom_dtype).items():
                with z.stream(name, dtype, (total,)) as write:
                    for tile in plan:
                        write(_bin_columns(tile, plan, sizes, chrom_dtype)[name])
        finally:
            z.close()


def _assemble_sequences(
    final: Path,
    fmt: str,
    store: ChunkStore,
    names: list[str],
    geometry: OutputGeometry,
    tracks: Mapping[str, list[int]],
    identifiers: Mapping[str, list[str]],
    settings: Mapping[str, Any],
) -> None:
    n, bins = len(names), geometry.n_bins
    starts = geometry.offset + np.arange(bins, dtype=np.int64) * geometry.bin_size
    small = {
        "names": np.array(names, dtype=str),
        "bins/start": starts,
        "bins/end": starts + geometry.bin_size,
        **_track_tables(tracks, identifiers),
    }
    with atomic_path(final) as tmp:
        if fmt == "h5":
            import h5py

            with h5py.File(tmp, "w") as f:
                _h5_header(f, "sequences", geometry.bin_size, settings, small)
                for head, idx in tracks.items():
                    ds = f.create_dataset(f"{head}/values", shape=(n, bins, len(idx)), dtype="f4")
                    for i in range(n):
                        ds[i] = store.load(i)[head]
        else:
            z = _NpzStream(tmp)
            try:
                _npz_header(z, "sequences", geometry.bin_size, settings, small)
                for head, idx in tracks.items():
                    with z.stream(f"{head}/values", np.float32, (n, bins, len(idx))) as write:
                        for i in range(n):
                            write(store.load(i)[head])
            finally:
                z.close()


# --------------------------------------------------------------------------------------
# The job
# --------------------------------------------------------------------------------------


class _Arrays(NamedTuple):
    """Geometry and columns of the output arrays."""

    geometry: OutputGeometry
    indices: dict[str, list[int]]
    identifiers: dict[str, list[str]]


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


def _claim(
    lock: JobLock, store: ChunkStore, out: Path, fmt: str, overwrite: bool, n_units: int
) -> None:
    """Take the run lock on ``OUT/.work``, then settle earlier outputs and chunks (rank 0)."""
    lock.acquire()
    _previous_outputs(out, store.settings_hash, fmt, overwrite)
    store.prepare({"units": n_units})


def _verify_tiles(store: ChunkStore, plan: TilePlan, genome: Genome, margin: int) -> None:
    """Discard finished tiles whose stored sequence digest differs from the genome's bases."""
    stale = [
        u
        for u in sorted(store.done())
        if u < len(plan)
        and store.input_digest(u) != sequence_digest(tile_sequence(genome, plan.tile(u), margin))
    ]
    if stale:
        logger.warning(
            "%d finished tile(s) in %s were computed from other genome bases than %s now "
            "holds (was the FASTA replaced?); computing them again",
            len(stale),
            store.chunk_dir,
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


def _predict_units(
    engine: Engine,
    store: ChunkStore,
    mine: list[int],
    plan: TilePlan | None,
    genome: Genome | None,
    seq_list: list[tuple[str, str]],
    show: bool,
) -> None:
    """Predict this rank's units into the chunk store."""
    with engine:
        if plan is not None:
            assert genome is not None
            digests: dict[int, str] = {}

            def save(tile: Tile, arrays: dict[str, np.ndarray]) -> None:
                digest = np.array(digests.pop(tile.index))
                store.save(tile.index, {**arrays, INPUT_DIGEST_KEY: digest})

            predict_tiles(
                engine,
                genome,
                (plan.tile(u) for u in mine),
                save,
                total=len(mine),
                progress=show,
                digests=digests,
            )
            return
        bar = progress_bar(len(mine), "sequences", show)
        try:
            for lo in range(0, len(mine), engine.chunk_size):
                part = mine[lo : lo + engine.chunk_size]
                x = one_hot([seq_list[u][1] for u in part], ambiguous="n")
                x_t = torch.from_numpy(x.reshape(len(part), -1, 4))
                if engine.margin:
                    x_t = torch.nn.functional.pad(x_t, (0, 0, engine.margin, engine.margin))
                result = engine.run(x_t)
                for j, u in enumerate(part):
                    store.save(u, {h: v[j] for h, v in result.items()})
                bar.update(len(part))
        finally:
            bar.close()


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
        Output directory (created if missing). Its ``.work`` subdirectory holds the chunks of
        an unfinished run.
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
        under ``torchrun`` shards the units over the processes.
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
    out = Path(out_dir)
    if out.exists() and not out.is_dir():
        raise NotADirectoryError(f"output path {out} exists and is not a directory")

    config = model.config
    heads = resolve_heads(head, config)
    indices, identifiers = resolve_tracks(config, heads, tracks, track_sheet)
    pairs = resolve_strand_pairs(config, heads, strand_pairs, track_sheet)

    # ---- plan the units of work ---------------------------------------------------------
    plan: TilePlan | None = None
    seq_list: list[tuple[str, str]] = []
    if regions is not None:
        assert genome is not None
        sizes = genome.chrom_sizes
        resolved = [
            Interval(genome.resolve_chrom(r.chrom), r.start, r.end, r.name, r.strand)
            for r in regions
        ]
        if not resolved:
            raise ValueError("no regions to predict")
        geometry = output_geometry(config)
        plan = plan_tiles(
            resolved, geometry, chrom_sizes=sizes, align=align, merge=format == "bigwig"
        )
        n_units = len(plan)
        work: dict[str, Any] = {
            "kind": "regions",
            "plan": plan.to_dict(),
            "genome": {
                "path": str(Path(genome.path).resolve()),
                "chromosomes": genome_fingerprint(genome),
            },
        }
    else:
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
        n_units = len(seq_list)
        work = {
            "kind": "sequences",
            "input_length": geometry.input_length,
            "sequences": settings_digest(seq_list),
        }

    owns_group = distributed is None
    dist = distributed if distributed is not None else DistributedContext.from_env(device)
    try:
        run_device = dist.device(device)
        engine = Engine(
            model,
            heads=heads,
            tracks=indices,
            strand_pairs=pairs,
            rc=rc,
            shifts=shifts,
            batch_size=batch_size,
            device=run_device,
            dtype=dtype,
        )
        work.update(
            {
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
        )
        settings_hash = settings_digest(work)
        store = ChunkStore(out / WORK_NAME, settings_hash)
        lock = JobLock(out / WORK_NAME, what=f"output directory {out}")
        ok = False
        try:
            # ---- claim and agree on the work directory (rank 0 claims; the others follow)
            error: Exception | None = None
            if dist.is_main:
                try:
                    _claim(lock, store, out, format, overwrite, n_units)
                    if plan is not None:
                        assert genome is not None
                        _verify_tiles(store, plan, genome, engine.margin)
                except Exception as err:  # noqa: BLE001 - every rank must hear of it
                    error = err
            _agree(dist, settings_hash, error)
            dist.barrier()
            done = store.done()
            dist.barrier()  # nobody writes a chunk before every rank has listed the finished ones
            remaining = [u for u in range(n_units) if u not in done]
            mine = dist.shard(remaining)
            logger.info(
                "rank %d/%d: %d of %d unit(s) to predict (%d finished earlier)",
                dist.rank,
                dist.world_size,
                len(mine),
                n_units,
                len(done),
            )
            _predict_units(engine, store, mine, plan, genome, seq_list, progress and dist.is_main)
            dist.barrier()
            ok = True
        finally:
            if not ok:
                # A run that failed on its inputs (or before finishing any unit) leaves nothing.
                failed_early = not store.done()
                lock.release(discard=failed_early)
        if engine.mostly_n:
            logger.warning(
                "%d of %d predicted window(s) are more than %d%% N: their predictions reflect "
                "little or no DNA sequence (an assembly gap or a masked region?)",
                engine.mostly_n,
                engine.inputs_seen,
                int(100 * MOSTLY_N),
            )

        result = PredictionFiles(
            out_dir=str(out),
            files=[],
            settings_path=None,
            units=n_units,
            computed=len(mine),
            reused=len(done),
            rank=dist.rank,
            world_size=dist.world_size,
            mostly_n=engine.mostly_n,
        )
        if not dist.is_main:
            return result
        resolved_settings: dict[str, Any] = {
            **(dict(settings) if settings else {}),
            "format": format,
            "heads": heads,
            "tracks": indices,
            "track_identifiers": identifiers,
            "rc": engine.rc,
            "shifts": list(engine.shifts),
            "strand_pairs_swapped": {h: p is not None for h, p in pairs.items()},
            "dtype": str(dtype) if dtype is not None else None,
            "batch_size": engine.batch_size,
            "world_size": dist.world_size,
            "model_description": config.description,
            "model_fingerprint": work["model"],
            "geometry": asdict(geometry),
            "settings_hash": settings_hash,
        }
        if plan is not None:
            resolved_settings["align"] = align
        arrays = _Arrays(geometry, indices, identifiers)
        try:
            return _finish(
                result, out, store, plan, genome, seq_list, arrays, progress, resolved_settings
            )
        finally:
            lock.release()
    finally:
        if owns_group:
            dist.close()


def _finish(
    result: PredictionFiles,
    out: Path,
    store: ChunkStore,
    plan: TilePlan | None,
    genome: Genome | None,
    seq_list: list[tuple[str, str]],
    arrays: _Arrays,
    progress: bool,
    resolved_settings: dict[str, Any],
) -> PredictionFiles:
    """Assemble the outputs from the chunks, write the settings last, remove the work (rank 0)."""
    geometry, indices, identifiers = arrays
    format = resolved_settings["format"]
    if format == "bigwig":
        store.record_outputs(
            [
                bigwig_name(h, i, identifiers[h][k] if h in identifiers else None)
                for h, idx in indices.items()
                for k, i in enumerate(idx)
            ]
        )
    else:
        store.record_outputs([f"predictions.{format}"])
    # ---- assemble (rank 0) ------------------------------------------------------------
    if plan is not None:
        assert genome is not None
        sizes = genome.chrom_sizes
        resolved_settings["genome"] = str(genome.path)
        resolved_settings["regions"] = plan.to_dict()["regions"]
        labels = [r.label() for r in plan.regions]
        if format == "bigwig":
            files = _assemble_bigwig(out, store, plan, sizes, indices, identifiers, progress)
        else:
            final = out / f"predictions.{format}"
            assemble = _assemble_h5_regions if format == "h5" else _assemble_npz_regions
            assemble(
                final, store, plan, sizes, indices, identifiers, resolved_settings, progress
            )
            files = [_array_file_entry(final, format, indices, identifiers, labels)]
    else:
        names = [name for name, _ in seq_list]
        resolved_settings["sequences"] = names
        final = out / f"predictions.{format}"
        _assemble_sequences(
            final, format, store, names, geometry, indices, identifiers, resolved_settings
        )
        files = [_array_file_entry(final, format, indices, identifiers, names)]
    settings_path = out / SETTINGS_NAME
    write_json_atomic(
        settings_path,
        {"settings": resolved_settings, "files": [f.to_dict() for f in files]},
    )
    store.remove()  # the lock file goes with it; the lock is still held until released
    result.files = files
    result.settings_path = str(settings_path)
    logger.info("wrote %d file(s) to %s", len(files), out)
    return result
