"""Write trunk embeddings to HDF5, NPZ or Parquet, resumably (``enformer embed``).

:func:`embed_to_files` embeds a list of :class:`~enformer.inference.embed.EmbedInput` windows
and writes **one table** ``OUT/embeddings.<h5|npz|parquet>``, one row per chosen bin (or per
pooled window, or per gene with ``pool='tss'``):

========== ======= =====================================================================
column     type    meaning
========== ======= =====================================================================
name       str     region (``chr:start-end`` as given), FASTA record or variant id
allele     str     ``ref`` / ``alt`` for variant windows, empty otherwise
chrom      str     chromosome (empty for FASTA sequences)
start, end int64   0-based half-open span of the bin(s) the row describes: genomic, or
                   positions in the sequence for FASTA inputs (crop offset included)
bin        int64   output bin index; -1 for a pooled row
gene       str     gene name for ``pool='tss'`` rows, empty otherwise
embedding  float32 ``(rows, features)``: HDF5 dataset / NPZ array ``embedding``; in
                   Parquet a fixed-size list column
========== ======= =====================================================================

``OUT/enformer_embed.json`` lists the file and the resolved settings; it is written last.

Resuming: ``OUT/.work`` is a :class:`~enformer.io.jobdir.JobDir` holding one ``.npz`` per
finished window (with the digest of the bases it read) and the settings' digest (model weights,
inputs, bins, pooling, genes, reverse complement, dtype); the same command run again after a
crash embeds only the missing windows, and again any finished window whose bases changed (a
replaced FASTA). Batch size and device may change between runs. One run at a time per
``OUT``.
"""

from __future__ import annotations

import json
import logging
import os
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch

from ..io.jobdir import JobDir
from ..io.jobs import (
    atomic_path,
    model_fingerprint,
    sequence_digest,
    settings_digest,
    write_json_atomic,
)
from ..model.geometry import output_geometry
from .embed import BinSpec, EmbedInput, Pool, embed_bins, embed_windows
from .engine import MOSTLY_N, Engine

__all__ = ["EMBED_FORMATS", "EmbeddingFiles", "embed_to_files", "read_embeddings"]

logger = logging.getLogger(__name__)

EMBED_FORMATS: tuple[str, ...] = ("h5", "npz", "parquet")
"""Output formats of :func:`embed_to_files`."""

SETTINGS_NAME = "enformer_embed.json"
WORK_NAME = ".work"
COLUMNS = ("name", "allele", "chrom", "start", "end", "bin", "gene")
GROUP_ROWS = 8192  # rows assembled at a time (8,192 x 3,072 float32 = 100 MB)


@dataclass
class EmbeddingFiles:
    """What :func:`embed_to_files` did.

    Attributes
    ----------
    out_dir : str
        Output directory.
    files : list of str
        The table written (one path).
    settings_path : str
        ``enformer_embed.json``.
    rows : int
        Rows of the table.
    features : int
        Length of each embedding vector.
    units, computed, reused : int
        Windows in the job; embedded by this run; found finished from an earlier run.
    """

    out_dir: str
    files: list[str]
    settings_path: str
    rows: int
    features: int
    units: int
    computed: int
    reused: int

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready dict."""
        return asdict(self)


def _check(inputs: Sequence[EmbedInput], format: str, pool: Any, genes: Any) -> None:
    if format not in EMBED_FORMATS:
        raise ValueError(f"format must be one of {', '.join(EMBED_FORMATS)}; got {format!r}")
    if pool not in (None, "mean", "tss"):
        raise ValueError(f"pool must be 'mean' or 'tss', got {pool!r}")
    if not inputs:
        raise ValueError("no inputs to embed")
    if pool == "tss" and genes is None:
        raise ValueError("TSS pooling needs gene annotation: pass --genes GTF (genes=TSSIndex)")
    if pool == "tss" and not all(i.chrom for i in inputs):
        raise ValueError("TSS pooling needs genomic coordinates; FASTA sequences have none")


def _claim(store: JobDir, out: Path, overwrite: bool) -> set[int]:
    """Take the lock; refuse (or with ``overwrite`` replace) a finished run's other outputs."""
    store.lock.acquire()
    listing = out / SETTINGS_NAME
    if listing.exists():
        try:
            earlier = json.loads(listing.read_text(encoding="utf-8"))
            same = earlier["settings"]["settings_hash"] == store.hash
            files = [Path(str(f)).name for f in earlier.get("files", [])]
        except (OSError, ValueError, KeyError, TypeError):
            same, files = False, []
        if not same and not overwrite:
            store.release(discard=True)
            raise ValueError(
                f"{out} holds embeddings of an earlier run with other settings ({SETTINGS_NAME}); "
                "choose another --out, or pass --overwrite (overwrite=True) to replace them"
            )
        for name in files:
            (out / name).unlink(missing_ok=True)
        listing.unlink()
    return store.claim()


def _fresh(store: JobDir, inputs: Sequence[EmbedInput], done: set[int]) -> set[int]:
    """Of the finished windows, those whose bases are still what they were embedded from."""
    stale = store.stale(sorted(done), lambda u: sequence_digest(inputs[u].fetch()))
    if stale:
        logger.warning(
            "%d finished window(s) in %s were embedded from other bases than the inputs now "
            "hold (was the FASTA replaced?); embedding them again", len(stale), store.unit_dir,
        )  # fmt: skip
        store.discard(stale)
    return done - set(stale)


def _groups(store: JobDir, n_units: int) -> Iterator[dict[str, np.ndarray]]:
    """The units' rows in input order, in groups of about :data:`GROUP_ROWS` rows."""
    pending: list[dict[str, np.ndarray]] = []
    rows = 0
    for unit in range(n_units):
        pending.append(store.load(unit))
        rows += len(pending[-1]["bin"])
        if rows >= GROUP_ROWS or unit == n_units - 1:
            yield {k: np.concatenate([p[k] for p in pending]) for k in (*COLUMNS, "embedding")}
            pending, rows = [], 0


def _h5_append(f: Any, group: Mapping[str, np.ndarray]) -> None:
    """Append a group of rows to the HDF5 file's resizable datasets (created on first use)."""
    import h5py

    for key in (*COLUMNS, "embedding"):
        col = group[key]
        if key not in f:
            text = col.dtype.kind == "U"  # variable-length UTF-8 strings
            width = col.shape[1:]
            chunk_rows = max(1, min(GROUP_ROWS, 2**20 // int(np.prod(width, dtype=np.int64))))
            f.create_dataset(key, shape=(0, *width), maxshape=(None, *width),
                             dtype=h5py.string_dtype() if text else col.dtype,
                             chunks=(chunk_rows, *width))  # fmt: skip
        ds = f[key]
        start = ds.shape[0]
        ds.resize(start + len(col), axis=0)
        ds[start:] = col.astype(object) if col.dtype.kind == "U" else col


def _arrow_table(group: Mapping[str, np.ndarray], meta: str) -> Any:
    import pyarrow as pa

    emb = group["embedding"]
    flat = pa.array(emb.reshape(-1), type=pa.float32())
    cols = {k: pa.array(group[k].tolist(), type=pa.string() if group[k].dtype.kind == "U"
                        else pa.int64()) for k in COLUMNS}  # fmt: skip
    cols["embedding"] = pa.FixedSizeListArray.from_arrays(flat, emb.shape[1])
    return pa.table(cols).replace_schema_metadata({"enformer": meta})


def _write_table(path: Path, fmt: str, store: JobDir, n_units: int, meta: str) -> tuple[int, int]:
    """Write the units' rows atomically as one table in ``fmt``; return (rows, features).

    HDF5 and Parquet are written group by group, so memory stays bounded; NPZ holds the
    whole table in memory once. ``meta`` is the settings JSON text.
    """
    rows, features = 0, 0
    with atomic_path(path) as tmp:
        if fmt == "npz":
            parts = list(_groups(store, n_units))
            table = {k: np.concatenate([p[k] for p in parts]) for k in (*COLUMNS, "embedding")}
            with open(tmp, "wb") as fh:
                np.savez(fh, **table, settings=np.array(meta))
            rows, features = table["embedding"].shape
            return int(rows), int(features)
        if fmt == "h5":
            import h5py

            with h5py.File(tmp, "w") as f:
                for group in _groups(store, n_units):
                    _h5_append(f, group)
                    rows, features = rows + len(group["bin"]), group["embedding"].shape[1]
                f.attrs["settings"] = meta
            return rows, features
        import pyarrow.parquet as pq

        writer = None
        try:
            for group in _groups(store, n_units):
                arrow = _arrow_table(group, meta)
                writer = writer or pq.ParquetWriter(tmp, arrow.schema)
                writer.write_table(arrow)
                rows, features = rows + len(group["bin"]), group["embedding"].shape[1]
        finally:
            if writer is not None:
                writer.close()
    return rows, features


def read_embeddings(path: str | os.PathLike[str]) -> dict[str, np.ndarray]:
    """Read a table :func:`embed_to_files` wrote (any format) into arrays by column."""
    path = Path(path)
    if path.suffix == ".npz":
        with np.load(path, allow_pickle=False) as data:
            return {k: data[k] for k in (*COLUMNS, "embedding")}
    if path.suffix == ".h5":
        import h5py

        with h5py.File(path, "r") as f:
            out = {k: f[k][()] for k in (*COLUMNS, "embedding")}
        return {k: v.astype(str) if v.dtype.kind in "OS" else v for k, v in out.items()}
    import pyarrow.parquet as pq

    t = pq.read_table(path)
    out = {k: np.asarray(t[k].to_pylist()) for k in COLUMNS}
    out["embedding"] = np.asarray(t["embedding"].to_pylist(), dtype=np.float32)
    return out


def embed_to_files(
    model: torch.nn.Module,
    out_dir: str | os.PathLike[str],
    inputs: Sequence[EmbedInput],
    *,
    bins: BinSpec = "all",
    pool: Pool | None = None,
    genes: Any = None,
    format: str = "h5",
    rc: bool = False,
    batch_size: int = 1,
    device: str | torch.device | None = None,
    dtype: torch.dtype | None = None,
    input_length: int | None = None,
    identity: Mapping[str, Any] | None = None,
    settings: Mapping[str, Any] | None = None,
    progress: bool = True,
    overwrite: bool = False,
) -> EmbeddingFiles:
    """Embed windows and write one table of rows (see the module docstring), resumably.

    Windows finished by an earlier run with the same settings (``OUT/.work``) are reused.

    Parameters
    ----------
    model : torch.nn.Module
        The model; left on its device and in its mode.
    out_dir : str or os.PathLike
        Output directory (created if missing).
    inputs : sequence of EmbedInput
        The windows, in output order.
    bins, pool : see :mod:`enformer.inference.embed`
        Bins to keep and how to pool them.
    genes : TSSIndex, optional
        Gene TSSs for ``pool='tss'``.
    format : {'h5', 'npz', 'parquet'}, optional
        Table format.
    rc, batch_size, device, dtype
        As for :func:`~enformer.inference.embed.embed`.
    input_length : int, optional
        Length of every window (default the model's input length).
    identity : mapping, optional
        JSON-ready facts that determine the windows' bases beyond their names (genome
        fingerprint, annotation file); part of the resume digest.
    settings : mapping, optional
        Extra settings recorded in ``enformer_embed.json`` (not part of the digest).
    progress : bool, optional
        Show a progress bar.
    overwrite : bool, optional
        Replace the outputs of an earlier finished run with other settings.

    Returns
    -------
    EmbeddingFiles
        What was written, computed and reused.
    """
    _check(inputs, format, pool, genes)
    out = Path(out_dir)
    geometry = output_geometry(model.config, input_length)
    chosen = embed_bins(bins, geometry.n_bins)
    engine = Engine(model, heads=(), tracks={}, rc=rc, batch_size=batch_size, device=device,
                    dtype=dtype, embedding=True)  # fmt: skip
    job = {
        "model": model_fingerprint(model), "inputs": settings_digest([i.key() for i in inputs]),
        "input_length": geometry.input_length, "bins": chosen.tolist(), "pool": pool,
        "rc": engine.rc, "dtype": str(dtype) if dtype is not None else None,
        "identity": dict(identity or {}),
    }  # fmt: skip
    store = JobDir(out / WORK_NAME, job, what=f"output directory {out}")
    done = _claim(store, out, overwrite)
    ok = False
    try:
        done = _fresh(store, inputs, done)
        todo = [u for u in range(len(inputs)) if u not in done]

        def save(unit: int, rows: dict[str, np.ndarray], onehot: np.ndarray) -> None:
            store.save(unit, rows, digest=sequence_digest(onehot))

        with engine:
            embed_windows(engine, inputs, todo, save, geometry=geometry, chosen=chosen,
                          pool=pool, genes=genes, progress=progress)  # fmt: skip
        if engine.mostly_n:
            logger.warning(
                "%d of %d embedded window(s) are more than %d%% N: their embeddings reflect "
                "little or no DNA sequence", engine.mostly_n, engine.inputs_seen,
                int(100 * MOSTLY_N),
            )  # fmt: skip
        resolved = {**dict(settings or {}), **job, "format": format, "settings_hash": store.hash,
                    "geometry": asdict(geometry), "columns": [*COLUMNS, "embedding"]}  # fmt: skip
        path = out / f"embeddings.{format}"
        rows, features = _write_table(
            path, format, store, len(inputs), json.dumps(resolved, sort_keys=True)
        )
        settings_path = out / SETTINGS_NAME
        write_json_atomic(settings_path, {"settings": resolved, "files": [str(path)]})
        store.remove()
        ok = True
    finally:  # a run that failed before finishing a window leaves nothing behind
        store.release(discard=not ok and not store.done())
    logger.info("wrote %d embedding row(s) to %s", rows, path)
    return EmbeddingFiles(str(out), [str(path)], str(settings_path), rows, features,
                          len(inputs), len(todo), len(done))  # fmt: skip
