"""Write scored chunks as Parquet, TSV, HDF5 (basenji's ``sad.h5`` layout) or annotated VCF.

:func:`write_outputs` streams the chunks of a finished run, in input order, into the output
(a temporary name, moved into place when complete), ``<stem>.skipped.tsv`` (the skipped
records with their reason) and the counts; :func:`tidy_frame` and :func:`wide_frame` make the
tables :func:`~enformer.variants.score.score_variants` returns.
"""

from __future__ import annotations

import gzip
import io
import json
import os
from collections.abc import Callable, Iterable, Iterator
from pathlib import Path
from typing import IO, Any

import numpy as np

from ..data.genome import numbered_lines
from ..io.jobs import atomic_path, write_bytes_atomic
from ..version import __version__
from .chunks import GENE_FIELDS, SKIP_FIELDS, ScoreChunk, empty_chunk, str_array
from .io import detect_format
from .plan import ScorePlan

__all__ = [
    "OUTPUT_FORMATS",
    "ChunkSource",
    "output_format",
    "output_stem",
    "skipped_frame",
    "tidy_frame",
    "wide_frame",
    "write_outputs",
    "write_settings",
]

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

_FLOAT_FORMAT = "%.9g"  # round-trips float32 exactly

ChunkSource = Callable[[], Iterable[ScoreChunk]]
"""Gives the chunks of a run in input order, afresh at every call."""


# ------------------------------------------------------------------------------------------
# Tables
# ------------------------------------------------------------------------------------------


def _unit_columns(chunk: ScoreChunk, plan: ScorePlan) -> dict[str, np.ndarray]:
    si = chunk.units["si"]
    cols: dict[str, np.ndarray] = {
        name: chunk.variants[name][si] for name in ("id", "chrom", "pos", "ref", "alt", "flipped")
    }
    if plan.group_span is not None:
        cols["window_start"] = chunk.variants["window_start"][si]
        cols["offset"] = chunk.variants["offset"][si]
    if plan.tss is not None:
        for name in GENE_FIELDS:
            cols[name] = chunk.units[name]
    return cols


def tidy_frame(chunk: ScoreChunk, plan: ScorePlan) -> Any:
    """One row per unit x track."""
    import pandas as pd

    n_tracks = len(plan.tracks)
    cols = {k: np.repeat(v, n_tracks) for k, v in _unit_columns(chunk, plan).items()}
    cols["track"] = np.tile(np.asarray(plan.tracks, dtype=np.int64), chunk.n_units)
    if plan.identifiers is not None:
        cols["identifier"] = np.tile(str_array(plan.identifiers), chunk.n_units)
    if plan.descriptions is not None:
        cols["description"] = np.tile(str_array(plan.descriptions), chunk.n_units)
    for s in plan.stats:
        cols[s] = chunk.scores[s].reshape(-1).astype(np.float32)
    return pd.DataFrame(cols)


def wide_frame(chunk: ScoreChunk, plan: ScorePlan) -> Any:
    """One row per unit; a column per statistic and track (``{stat}_{identifier}``)."""
    import pandas as pd

    cols: dict[str, np.ndarray] = dict(_unit_columns(chunk, plan))
    labels = plan.track_labels
    for s in plan.stats:
        values = chunk.scores[s].astype(np.float32)
        for k, label in enumerate(labels):
            cols[f"{s}_{label}"] = values[:, k]
    return pd.DataFrame(cols)


def skipped_frame(chunks: Iterable[ScoreChunk]) -> Any:
    """The skipped records of ``chunks`` as one table (columns :data:`SKIP_FIELDS`)."""
    import pandas as pd

    frames = [pd.DataFrame({k: c.skipped[k] for k in SKIP_FIELDS}) for c in chunks]
    frames = [f for f in frames if len(f)]
    if not frames:
        return pd.DataFrame({k: pd.Series(dtype=object) for k in SKIP_FIELDS})
    return pd.concat(frames, ignore_index=True)


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


def output_stem(path: Path) -> Path:
    """``path`` without its output suffix (``scores.tsv.gz`` -> ``scores``)."""
    name = path.name
    for suffix in sorted(OUTPUT_FORMATS, key=len, reverse=True):
        if name.lower().endswith(suffix):
            return path.with_name(name[: -len(suffix)])
    return path


# ------------------------------------------------------------------------------------------
# Assembling outputs
# ------------------------------------------------------------------------------------------


def write_settings(path: Path, metadata: dict[str, Any], summary: dict[str, Any]) -> None:
    """Write ``<stem>.settings.json`` (metadata and summary), once every output is in place."""
    text = json.dumps({"metadata": metadata, "summary": summary}, indent=2, default=str)
    write_bytes_atomic(path, text.encode())


def write_outputs(
    chunks: ChunkSource,
    plan: ScorePlan,
    metadata: dict[str, Any],
    out: Path,
    fmt: str,
    wide: bool,
    vcf_columns: list[int],
    source: Any,
    contigs: dict[str, int],
) -> dict[str, Any]:
    """Write ``out`` (format ``fmt``) and ``<stem>.skipped.tsv`` from the chunks of a run.

    ``<stem>.settings.json`` is removed first (the caller writes it again once every output is
    complete). Returns the summary: paths, counts, skip reasons, stats and tracks.
    """
    stem = output_stem(out)
    skipped_path = stem.with_name(stem.name + ".skipped.tsv")
    settings_path = stem.with_name(stem.name + ".settings.json")
    # The settings file returns only once every output is complete and in place.
    settings_path.unlink(missing_ok=True)
    counts = {"variants_scored": 0, "variants_skipped": 0, "rows": 0}
    with atomic_path(out) as tmp:
        if fmt in ("parquet", "tsv"):
            compressed = out.name.lower().endswith((".gz", ".bgz"))
            _write_table(chunks, plan, metadata, tmp, fmt, wide, counts, compressed)
        elif fmt == "h5":
            _write_h5(chunks, plan, metadata, tmp, counts)
        else:
            _write_vcf(chunks, plan, metadata, tmp, out, vcf_columns, source, counts, contigs)
        skipped = skipped_frame(chunks())
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
    chunks: ChunkSource,
    plan: ScorePlan,
    metadata: dict[str, Any],
    tmp: Path,
    fmt: str,
    wide: bool,
    counts: dict[str, int],
    compressed: bool,
) -> None:
    make = wide_frame if wide else tidy_frame
    writer: Any = None
    handle: IO[str] | None = None
    schema = None
    try:
        for chunk in chunks():
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
            empty = make(empty_chunk(plan), plan)
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


def _write_h5(
    chunks: ChunkSource,
    plan: ScorePlan,
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
                "gene_region": grow("gene_region", text),
            }
        stat_sets = {s: grow(s, np.float32, n_tracks) for s in plan.stats}
        for s, ds in stat_sets.items():
            ds.attrs["formula"] = plan.metadata["score_formulas"][s]
        n_var = n_unit = 0
        for chunk in chunks():
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


def _vcf_info_header(plan: ScorePlan, columns: list[int]) -> list[str]:
    lines = [f"##enformer_settings={json.dumps(_compact_meta(plan), default=str)}"]
    for s in plan.stats:
        for k in columns:
            track = plan.tracks[k]
            label = plan.identifiers[k] if plan.identifiers is not None else f"track {track}"
            desc = f" {plan.descriptions[k]}" if plan.descriptions is not None else ""
            text = (
                f"Enformer {s} for head {plan.head} track {track} ({label}{desc}): "
                + (plan.metadata["score_formulas"][s])
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


def _compact_meta(plan: ScorePlan) -> dict[str, Any]:
    meta = dict(plan.metadata)
    meta["model"] = {k: v for k, v in meta["model"].items() if k != "config"}
    return meta


def _vcf_results(
    chunks: ChunkSource, plan: ScorePlan, columns: list[int], counts: dict[str, int]
) -> Iterator[tuple[int, int, dict[str, str], ScoreChunk, int]]:
    """(line, alt_index, info key -> value text, chunk, row) per scored variant, in order."""
    for chunk in chunks():
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
    chunks: ChunkSource,
    plan: ScorePlan,
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
    results = _vcf_results(chunks, plan, columns, counts)
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
    pending = next(results, None)
    wrote_header = False
    for number, line in numbered_lines(path):
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
