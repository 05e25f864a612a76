"""The demo's outputs besides the BigWigs: the scores files, the pictures and ``summary.json``.

The scores come in as the in-memory frame of :func:`enformer.variants.score_variants`;
:func:`write_score_files` writes it as ``scores.tsv`` (with ``scores.skipped.tsv`` and
``scores.settings.json``) in the layout of :func:`enformer.variants.write_scores`, and
:func:`summarise_scores` gives each variant's SAD and logSED as ``summary.json`` lists them.
"""

from __future__ import annotations

import io
import json
from collections.abc import Sequence
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import numpy as np

from ..io.jobs import write_bytes_atomic, write_json_atomic
from .construct import ExampleVariant

__all__ = [
    "TABLE_FLOAT_FORMAT",
    "Pictures",
    "draw",
    "next_steps",
    "summarise_scores",
    "write_score_files",
    "write_summary",
]

# How scores.tsv writes floats: the format of `enformer score`'s TSV (float32 round-trips).
TABLE_FLOAT_FORMAT = "%.9g"


def write_score_files(
    frame: Any, out: Path, *, variants_file: Path, weights: str, seconds: float
) -> Path:
    """Write ``frame`` as ``out/scores.tsv`` plus its skipped table and settings; return the TSV.

    The files are those ``enformer score --out scores.tsv`` writes for the same variants:
    the table (``%.9g`` floats), ``scores.skipped.tsv`` and ``scores.settings.json`` with the
    scoring metadata and a summary of the run.
    """
    path = out / "scores.tsv"
    skipped_path = out / "scores.skipped.tsv"
    settings_path = out / "scores.settings.json"
    metadata = dict(frame.attrs["metadata"])
    metadata["input"] = str(variants_file)
    metadata["model"] = dict(metadata["model"], weights=weights)
    skipped = frame.attrs["skipped"]
    settings_path.unlink(missing_ok=True)  # back only once the table is complete
    write_bytes_atomic(path, _tsv_bytes(frame, TABLE_FLOAT_FORMAT))
    write_bytes_atomic(skipped_path, _tsv_bytes(skipped))
    reasons: dict[str, int] = {}
    for reason in skipped["reason"].astype(str):
        key = reason.split(":")[0]
        reasons[key] = reasons.get(key, 0) + 1
    n_tracks = max(1, len(metadata["tracks"]))
    scored = len(frame) // n_tracks  # one row per variant and track
    summary = {
        "out": str(path),
        "format": "tsv",
        "variants_scored": scored,
        "variants_skipped": len(skipped),
        "rows": len(frame),
        "skip_reasons": reasons,
        "stats": list(metadata["stats"]),
        "tracks": len(metadata["tracks"]),
        "head": metadata["head"],
        "skipped": str(skipped_path),
        "settings": str(settings_path),
        "resumed_chunks": 0,
        "seconds": round(seconds, 3),
        "variants_per_second": round(scored / seconds, 3) if seconds > 0 else None,
    }
    text = json.dumps({"metadata": metadata, "summary": summary}, indent=2, default=str)
    write_bytes_atomic(settings_path, text.encode())
    return path


def _tsv_bytes(frame: Any, float_format: str | None = None) -> bytes:
    buffer = io.StringIO()
    frame.to_csv(buffer, sep="\t", index=False, float_format=float_format)
    return buffer.getvalue().encode("utf-8")


def _as_written(value: Any) -> float:
    """A score as ``scores.tsv`` writes it, so that summary.json shows the table's numbers."""
    return float(TABLE_FLOAT_FORMAT % float(value))


def summarise_scores(frame: Any, variants: Sequence[ExampleVariant] | None) -> list[dict[str, Any]]:
    """Per variant: its fields, SAD and logSED over the tracks and the largest |SAD|.

    ``variants`` None takes the frame's variants, in their order (a user's file).
    """
    keys = list(
        zip(
            frame["chrom"].astype(str).tolist(),
            frame["pos"].astype(int).tolist(),
            frame["ref"].astype(str).tolist(),
            frame["alt"].astype(str).tolist(),
            strict=True,
        )
    )
    if variants is None:
        seen: dict[tuple[str, int, str, str], ExampleVariant] = {}
        for key, vid in zip(keys, frame["id"].astype(str).tolist(), strict=True):
            seen.setdefault(key, ExampleVariant(*key, id=vid))
        variants = list(seen.values())
    sad_all = frame["SAD"].to_numpy()
    logsed_all = frame["logSED"].to_numpy()
    out = []
    for v in variants:
        rows = [i for i, key in enumerate(keys) if key == (v.chrom, v.pos, v.ref, v.alt)]
        sad = [_as_written(sad_all[i]) for i in rows]
        logsed = [_as_written(logsed_all[i]) for i in rows]
        out.append(
            {
                **asdict(v),
                "max_abs_SAD": float(np.max(np.abs(sad))) if sad else float("nan"),
                "SAD": sad,
                "logSED": logsed,
            }
        )
    return out


@dataclass(frozen=True)
class Pictures:
    """The demo's PNGs: the tracks, and the strongest variant's effect (None if none)."""

    tracks: Path
    variant: Path | None


def draw(
    out: Path,
    *,
    values: np.ndarray,
    span_start: int,
    bin_size: int,
    inp: Any,
    labels: list[str],
    weights: str,
    description: str,
    top: dict[str, Any] | None,
    alleles: tuple[np.ndarray, np.ndarray, int] | None,
) -> Pictures:
    """Draw ``tracks.png`` (the window's predictions) and ``variant.png`` (``top``'s effect).

    ``alleles`` is ``(ref, alt, output_start)``: the predictions of ``top``'s scoring windows
    and the genomic start of their first output bin.
    """
    from ..interpret.plots import plot_tracks, plot_variant

    tracks_png = out / "tracks.png"
    plot_tracks(
        values,
        chrom=inp.chrom,
        start=span_start,
        bin_size=bin_size,
        labels=labels,
        gtf=inp.gtf,
        highlight=inp.highlight,
        title=f"enformer demo: predicted tracks over {inp.title} ({weights})",
        description=description,
        path=tracks_png,
    )
    if top is None or alleles is None:
        return Pictures(tracks_png, None)
    variant_png = out / "variant.png"
    ref, alt, output_start = alleles
    note = f" ({top['note']})" if top.get("note") else ""
    plot_variant(
        ref,
        alt,
        chrom=inp.chrom,
        start=output_start,
        bin_size=bin_size,
        position=top["pos"] - 1,
        variant=f"{top['id']}{note}",
        labels=labels,
        gtf=inp.gtf,
        description=description,
        path=variant_png,
    )
    return Pictures(tracks_png, variant_png)


def write_summary(out: Path, summary: dict[str, Any]) -> None:
    """Write ``summary.json`` and add its own path to ``summary['files']``."""
    write_json_atomic(out / "summary.json", summary)
    summary["files"]["summary"] = str(out / "summary.json")


def next_steps() -> list[str]:
    """What to run after the demo, with the official weights (the lines the CLI prints)."""
    w = "EleutherAI/enformer-official-rough"
    region = "chr11:5,225,000-5,230,000"  # HBB, the beta-globin gene
    return [
        f"enformer info --weights {w} --search K562",
        f"enformer predict --weights {w} --fasta hg38.fa --region {region} "
        "--tracks CNhs11250,ENCFF413AHU --out preds/",
        f"enformer score --weights {w} --fasta hg38.fa --vcf my_variants.vcf "
        "--stats SAD,logSED --tracks CNhs11250 --out scores.parquet",
    ]
