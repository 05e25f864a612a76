"""Assemble a prediction job's finished units into BigWig, HDF5 or NPZ files.

Every file is written to a temporary name beside its final one and moved into place when
complete (:func:`~enformer.io.jobs.atomic_path`). The units come from anything with a
``load(unit)`` method returning the unit's arrays per head (a
:class:`~enformer.io.jobdir.JobDir`).

Layouts
-------
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
import re
import zipfile
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from dataclasses import asdict, dataclass, field
from functools import partial
from pathlib import Path
from typing import Any, NamedTuple, Protocol

import numpy as np

from ..io.jobs import atomic_path
from ..io.progress import progress_bar
from ..model.geometry import OutputGeometry
from .tiling import Tile, TilePlan

__all__ = [
    "ArrayLayout",
    "OutputFile",
    "Units",
    "assemble_regions",
    "assemble_sequences",
    "bigwig_name",
    "planned_names",
]

# BigWig files open at once while assembling (one per track); more tracks take more passes.
_BIGWIG_GROUP = 128


class Units(Protocol):
    """Where finished units are read from."""

    def load(self, unit: int) -> dict[str, np.ndarray]:
        """One unit's arrays, per head."""


class ArrayLayout(NamedTuple):
    """Geometry and columns of the output arrays.

    Attributes
    ----------
    geometry : OutputGeometry
        Bins of one model output.
    indices : dict of str to list of int
        Per head, the output tracks written.
    identifiers : dict of str to list of str
        Per head, their identifiers (heads with a track sheet only).
    """

    geometry: OutputGeometry
    indices: dict[str, list[int]]
    identifiers: dict[str, list[str]]


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
    store: Units,
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


class _Member(NamedTuple):
    """A large array of an HDF5/NPZ output, written from consecutive row blocks."""

    name: str
    dtype: Any
    shape: tuple[int, ...]
    blocks: Callable[[], Iterable[np.ndarray]]


class _H5Writer:
    """Write an HDF5 output: attributes, small tables, and large arrays row block by block."""

    def __init__(self, path: Path) -> None:
        import h5py

        self._file = h5py.File(path, "w")
        self.chrom_kind = "S"  # h5py stores fixed-width byte strings

    def header(
        self, layout: str, bin_size: int, settings: Mapping[str, Any], tables: Mapping[str, Any]
    ) -> None:
        """Write the layout, bin size, settings and small tables."""
        f = self._file
        f.attrs["layout"] = layout
        f.attrs["bin_size"] = bin_size
        f["settings"] = json.dumps(settings, default=str)
        for key, arr in tables.items():
            f[key] = _h5_strings(arr.tolist()) if arr.dtype.kind == "U" else arr

    @contextlib.contextmanager
    def stream(self, name: str, dtype: Any, shape: tuple[int, ...]) -> Iterator[Any]:
        """Yield a ``write(block)`` function filling the dataset's rows in order."""
        ds = self._file.create_dataset(name, shape=shape, dtype=dtype)
        row = 0

        def write(block: np.ndarray) -> None:
            nonlocal row
            ds[row : row + len(block)] = block
            row += len(block)

        yield write
        if row != shape[0]:
            raise RuntimeError(f"HDF5 dataset {name}: wrote {row} rows, expected {shape[0]}")

    def close(self) -> None:
        """Close the file."""
        self._file.close()


class _NpzStream:
    """Write an ``.npz`` (a zip of ``.npy`` members) member by member, streaming data."""

    chrom_kind = "U"

    def __init__(self, path: Path) -> None:
        self._zip = zipfile.ZipFile(path, "w", compression=zipfile.ZIP_STORED, allowZip64=True)

    def add(self, name: str, array: np.ndarray) -> None:
        """Add a whole (small) array."""
        with self._zip.open(f"{name}.npy", "w", force_zip64=True) as fh:
            np.lib.format.write_array(fh, np.asarray(array), allow_pickle=False)

    def header(
        self, layout: str, bin_size: int, settings: Mapping[str, Any], tables: Mapping[str, Any]
    ) -> None:
        """Write the layout, bin size, settings and small tables."""
        self.add("layout", np.array(layout))
        self.add("bin_size", np.array(bin_size, dtype=np.int64))
        self.add("settings", np.array(json.dumps(settings, default=str)))
        for key, arr in tables.items():
            self.add(key, arr)

    @contextlib.contextmanager
    def stream(self, name: str, dtype: Any, shape: tuple[int, ...]) -> Iterator[Any]:
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


def _write_array_file(
    final: Path,
    fmt: str,
    layout: str,
    bin_size: int,
    settings: Mapping[str, Any],
    tables: Mapping[str, Any],
    members: Callable[[str], Iterable[_Member]],
) -> None:
    """Write one HDF5 or NPZ output atomically: header and small tables, then each member.

    ``members`` gets the string kind the format stores chromosome names in (``'S'``/``'U'``).
    """
    with atomic_path(final) as tmp:
        writer = _H5Writer(tmp) if fmt == "h5" else _NpzStream(tmp)
        try:
            writer.header(layout, bin_size, settings, tables)
            for member in members(writer.chrom_kind):
                with writer.stream(member.name, member.dtype, member.shape) as write:
                    for block in member.blocks():
                        write(block)
        finally:
            writer.close()


def planned_names(fmt: str, layout: ArrayLayout) -> list[str]:
    """Names (in the output directory) of the files a job in format ``fmt`` writes."""
    if fmt != "bigwig":
        return [f"predictions.{fmt}"]
    ids = layout.identifiers
    return [
        bigwig_name(h, i, ids[h][k] if h in ids else None)
        for h, idx in layout.indices.items()
        for k, i in enumerate(idx)
    ]


def assemble_regions(
    out: Path,
    fmt: str,
    store: Units,
    plan: TilePlan,
    sizes: Mapping[str, int],
    layout: ArrayLayout,
    settings: Mapping[str, Any],
    progress: bool,
) -> list[OutputFile]:
    """Write the tiles of genomic regions as BigWig files or one HDF5/NPZ file.

    Parameters
    ----------
    out : pathlib.Path
        Output directory.
    fmt : {'bigwig', 'h5', 'npz'}
        Format.
    store : Units
        The finished tiles (unit ``i`` is tile ``i`` of ``plan``).
    plan : TilePlan
        The tiles.
    sizes : mapping of str to int
        Chromosome lengths, in FASTA order (the BigWig header).
    layout : ArrayLayout
        Tracks and their identifiers.
    settings : mapping
        Resolved settings stored in array files.
    progress : bool
        Show progress bars.

    Returns
    -------
    list of OutputFile
        The files written.
    """
    _, tracks, identifiers = layout
    if fmt == "bigwig":
        return _assemble_bigwig(out, store, plan, sizes, tracks, identifiers, progress)
    final = out / f"predictions.{fmt}"
    total = plan.total_bins
    bar = progress_bar(len(plan) * len(tracks), fmt, progress, unit="tile")

    def values(head: str) -> Iterator[np.ndarray]:
        for tile in plan:
            yield store.load(tile.index)[head]
            bar.update()

    def column(name: str, chrom_dtype: np.dtype) -> Iterator[np.ndarray]:
        for tile in plan:
            yield _bin_columns(tile, plan, sizes, chrom_dtype)[name]

    def members(chrom_kind: str) -> Iterator[_Member]:
        width = max(len(c.encode() if chrom_kind == "S" else c) for c in sizes)
        chrom_dtype = np.dtype(f"{'S' if chrom_kind == 'S' else '<U'}{width}")
        for head, idx in tracks.items():
            yield _Member(f"{head}/values", np.float32, (total, len(idx)), partial(values, head))
        for name, dtype in _bin_dtypes(chrom_dtype).items():
            yield _Member(name, dtype, (total,), partial(column, name, chrom_dtype))

    tables = {**_region_tables(plan), **_track_tables(tracks, identifiers)}
    try:
        _write_array_file(final, fmt, "regions", plan.geometry.bin_size, settings, tables, members)
    finally:
        bar.close()
    labels = [r.label() for r in plan.regions]
    return [_array_file_entry(final, fmt, tracks, identifiers, labels)]


def assemble_sequences(
    out: Path,
    fmt: str,
    store: Units,
    names: list[str],
    layout: ArrayLayout,
    settings: Mapping[str, Any],
) -> list[OutputFile]:
    """Write the predictions of named sequences (unit ``i`` is sequence ``i``) to one file.

    Parameters
    ----------
    out : pathlib.Path
        Output directory.
    fmt : {'h5', 'npz'}
        Format.
    store : Units
        The finished sequences.
    names : list of str
        Sequence names.
    layout : ArrayLayout
        Geometry, tracks and their identifiers.
    settings : mapping
        Resolved settings stored in the file.

    Returns
    -------
    list of OutputFile
        The file written.
    """
    geometry, tracks, identifiers = layout
    final = out / f"predictions.{fmt}"
    n, bins = len(names), geometry.n_bins
    starts = geometry.offset + np.arange(bins, dtype=np.int64) * geometry.bin_size
    small = {
        "names": np.array(names, dtype=str),
        "bins/start": starts,
        "bins/end": starts + geometry.bin_size,
        **_track_tables(tracks, identifiers),
    }

    def members(chrom_kind: str) -> Iterator[_Member]:
        del chrom_kind  # sequences have no chromosomes
        for head, idx in tracks.items():
            yield _Member(
                f"{head}/values",
                np.float32,
                (n, bins, len(idx)),
                lambda h=head: (store.load(i)[h][None] for i in range(n)),
            )

    _write_array_file(final, fmt, "sequences", geometry.bin_size, settings, small, members)
    return [_array_file_entry(final, fmt, tracks, identifiers, names)]
