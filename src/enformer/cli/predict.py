"""``enformer predict``: tracks for regions, BED files, whole chromosomes or sequences."""

from __future__ import annotations

import argparse
import logging
import re
from pathlib import Path
from typing import Any

import torch

from ..data.tracks import is_index_spec, parse_index_spec
from .options import add_attention_option, apply_attention_option

log = logging.getLogger(__name__)

_DTYPES = {"float32": torch.float32, "bfloat16": torch.bfloat16, "float16": torch.float16}


def add_parser(sub: argparse._SubParsersAction) -> argparse.ArgumentParser:
    """Register ``predict``."""
    p = sub.add_parser(
        "predict",
        help="predict tracks for regions, a BED file, whole chromosomes or sequences",
        description=(
            "Predict tracks and write them as one BigWig per track (genomic inputs) or as "
            "HDF5/NPZ arrays with coordinates. Long regions and whole chromosomes are tiled so "
            "that output bins abut exactly; chromosome ends are padded with N. A killed run "
            "resumes where it stopped when the same command is run again (finished tiles are "
            "checked against the genome's bases and recomputed if the FASTA changed). One run "
            "at a time per --out: a second run into a folder that a live run is writing is "
            "refused (exit 2). A folder holding the finished outputs of a run with other "
            "settings is refused unless --overwrite is given, which removes them first. Launch "
            "with `torchrun --nproc_per_node=N -m enformer predict ...` to share the work among "
            "processes."
        ),
    )
    p.add_argument("--weights", required=True, metavar="DIR|NAME", help="checkpoint or hub name")
    p.add_argument("--fasta", metavar="FASTA", help="indexed genome FASTA (plain or bgzip)")
    src = p.add_mutually_exclusive_group(required=True)
    src.add_argument(
        "--region",
        action="append",
        metavar="CHR:START-END",
        help="region, 1-based inclusive as samtools (commas allowed); repeat for more",
    )
    src.add_argument("--bed", metavar="BED", help="BED file of regions (0-based, half-open)")
    src.add_argument(
        "--chromosomes", metavar="CHR[,CHR...]", help="whole chromosomes, comma-separated"
    )
    src.add_argument(
        "--sequences",
        metavar="FASTA",
        help="FASTA of sequences of the model's input length (no genomic coordinates: "
        "h5/npz output only)",
    )
    p.add_argument(
        "--tracks",
        metavar="SELECTION",
        help="tracks to write: indices '0,5,10-20', 'all', or with a track sheet identifiers, "
        "'assay:CAGE', 'search:K562' (default 'all' for h5/npz; required for bigwig)",
    )
    p.add_argument("--head", help="model head (default: 'human' if present, else the first)")
    p.add_argument(
        "--targets", metavar="SHEET", help="track sheet file, or folder holding targets_{head}.txt"
    )
    p.add_argument("--out", required=True, metavar="DIR", help="output directory")
    p.add_argument(
        "--overwrite",
        action="store_true",
        help="replace the outputs of an earlier run with other settings found in --out (the "
        "files its enformer_predict.json lists are removed); without it such a folder is refused",
    )
    p.add_argument(
        "--format",
        choices=["bigwig", "h5", "npz"],
        help="output format (default: bigwig for genomic inputs, h5 for --sequences)",
    )
    p.add_argument(
        "--rc",
        action="store_true",
        help="average in reverse-complement predictions (strand-paired tracks swapped)",
    )
    p.add_argument(
        "--shifts",
        default="0",
        metavar="S[,S...]",
        help="shifts in bp whose predictions are averaged, e.g. -1,0,1 (default 0),"
        " each at most half an output bin (|S| <= 64 bp for 128-bp bins;"
        " Enformer was trained with up to 3)",
    )
    p.add_argument("--batch-size", type=int, default=1, help="sequences per forward pass")
    p.add_argument("--device", help="torch device, e.g. cpu, cuda, cuda:1 (default: cpu)")
    p.add_argument(
        "--dtype",
        choices=sorted(_DTYPES),
        help="autocast dtype (e.g. bfloat16 on a GPU; default: float32); outputs are "
        "float32 either way",
    )
    add_attention_option(p)
    p.add_argument(
        "--align",
        choices=["start", "grid"],
        default="start",
        help="first bin of a region at its start, or on the genome-wide bin grid (default: start)",
    )
    p.add_argument(
        "--chrom-alias",
        action="store_true",
        help="map chromosome names that differ only by a 'chr' prefix (chr1/1, chrM/MT)",
    )
    p.add_argument("--no-download", action="store_true", help="never download track sheets")
    # Let "--shifts -1,0,1" through: argparse would take "-1,0,1" for an option.
    if hasattr(p, "_negative_number_matcher"):
        p._negative_number_matcher = re.compile(r"^-\d+(,\s*-?\d+)*$|^-\d*\.\d+$")
    return p


def _parse_shifts(text: str) -> tuple[int, ...]:
    try:
        shifts = tuple(int(s) for s in text.replace(" ", "").split(",") if s)
    except ValueError:
        raise ValueError(
            f"--shifts must be comma-separated integers, e.g. -1,0,1; got {text!r}"
        ) from None
    if not shifts:
        raise ValueError("--shifts is empty; give e.g. 0 or -1,0,1")
    return shifts


def _find_sheet(head: str, args: argparse.Namespace, weights_dir: Path | None, needed: bool):
    from ..data.tracks import TrackSheet, TrackSheetNotFound, find_track_sheet

    try:
        path = find_track_sheet(
            head,
            path=args.targets,
            weights_dir=weights_dir,
            download=needed and not args.no_download,
        )
    except TrackSheetNotFound:
        if needed or args.targets:
            raise
        return None
    return TrackSheet.read(path, head=head)


def run(args: argparse.Namespace) -> dict[str, Any]:
    """Predict and write the files; return the summary."""
    from ..data.genome import Genome, parse_region, read_bed, read_fasta_sequences
    from ..inference.tiling import whole_chromosomes
    from ..inference.writers import predict_to_files
    from ..weights import load_pretrained
    from ..weights import weights_dir as local_weights_dir

    shifts = _parse_shifts(args.shifts)
    if args.batch_size < 1:
        raise ValueError(f"--batch-size must be >= 1, got {args.batch_size}")
    fmt = args.format or ("h5" if args.sequences else "bigwig")
    if args.sequences and fmt == "bigwig":
        raise ValueError(
            "--sequences have no genomic coordinates, so they cannot be written as BigWig; "
            "use --format h5 or --format npz"
        )
    if not args.sequences and not args.fasta:
        raise ValueError("--fasta is required with --region, --bed and --chromosomes")
    if fmt == "bigwig" and not args.tracks:
        raise ValueError(
            "choose tracks with --tracks (e.g. '0,5', 'assay:CAGE'); BigWig output writes one "
            "file per track, and '--tracks all' writes one for every track of the head"
        )

    # Read the inputs first: bad regions and files fail before the weights load.
    regions = None
    sequences = None
    genome = None
    try:
        if args.sequences:
            sequences = read_fasta_sequences(args.sequences)
        else:
            genome = Genome(args.fasta, chrom_aliases=args.chrom_alias)
            if args.region:
                regions = [parse_region(text) for text in args.region]
            elif args.bed:
                regions = read_bed(args.bed)
                if not regions:
                    raise ValueError(f"{args.bed} holds no regions")
            else:
                names = [c.strip() for c in args.chromosomes.split(",") if c.strip()]
                if not names:
                    raise ValueError("--chromosomes is empty; give e.g. chr1,chr2")
                regions = whole_chromosomes(genome, names)
            for region in regions:
                genome.resolve_chrom(region.chrom)

        model = load_pretrained(args.weights)
        apply_attention_option(model, args)
        cfg = model.config
        head = args.head or ("human" if "human" in cfg.heads else next(iter(cfg.heads)))
        if head not in cfg.heads:
            raise ValueError(f"the model has no head {head!r}; it has {', '.join(cfg.heads)}")
        spec = args.tracks or "all"
        needs_names = not is_index_spec(spec)
        weights_dir = local_weights_dir(args.weights)
        sheet = _find_sheet(head, args, weights_dir, needed=needs_names)
        if sheet is not None:
            tracks: Any = spec
        else:
            every = spec.strip().lower() in ("all", "*")
            tracks = None if every else parse_index_spec(spec, cfg.heads[head], "track")
            if args.rc:
                log.warning(
                    "no track sheet for head %r: reverse-complement predictions are averaged "
                    "without swapping strand-paired tracks (pass --targets to swap them)",
                    head,
                )

        settings = {
            "command": "enformer predict",
            "weights": args.weights,
            "fasta": args.fasta,
            "inputs": {
                "region": args.region,
                "bed": args.bed,
                "chromosomes": args.chromosomes,
                "sequences": args.sequences,
            },
            "track_selection": spec,
            "track_sheet": str(sheet.path) if sheet is not None and sheet.path else None,
            "device": args.device,
            "attention": args.attention,
        }
        result = predict_to_files(
            model,
            args.out,
            genome=genome,
            regions=regions,
            sequences=sequences,
            format=fmt,
            head=head,
            tracks=tracks,
            track_sheet=sheet,
            rc=args.rc,
            shifts=shifts,
            batch_size=args.batch_size,
            device=args.device,
            dtype=_DTYPES[args.dtype] if args.dtype else None,
            align=args.align,
            progress=not args.quiet,
            settings=settings,
            overwrite=args.overwrite,
        )
    finally:
        if genome is not None:
            genome.close()
    summary: dict[str, Any] = {
        "out": result.out_dir,
        "format": fmt,
        "head": head,
        "files": [f.to_dict() for f in result.files],
        "settings": result.settings_path,
        "units": result.units,
        "computed": result.computed,
        "reused": result.reused,
        "mostly_n_windows": result.mostly_n,
        "model_description": cfg.description or None,
    }
    if result.mostly_n:
        summary["warnings"] = [
            f"{result.mostly_n} of {result.computed} predicted window(s) are more than half N: "
            "their predictions reflect little or no DNA sequence (an assembly gap?)"
        ]
    if result.world_size > 1:
        summary["rank"] = result.rank
        summary["world_size"] = result.world_size
    summary["_text"] = _render(summary, result.rank)
    return summary


def _render(s: dict[str, Any], rank: int) -> str:
    if rank != 0:
        return f"rank {rank}: predicted {s['computed']} unit(s); rank 0 writes the files"
    lines = [
        f"wrote {len(s['files'])} file(s) to {s['out']} ({s['units']} unit(s): "
        f"{s['computed']} predicted, {s['reused']} reused from an interrupted run)"
    ]
    for f in s["files"]:
        if f["format"] == "bigwig":
            ident = f" {f['track_identifier']}" if f.get("track_identifier") else ""
            lines.append(f"  {f['path']}  [{f['head']} track {f['track_index']}{ident}]")
        else:
            n = sum(len(v) for v in f.get("tracks", {}).values())
            lines.append(f"  {f['path']}  [{n} track(s), {len(f.get('regions', []))} region(s)]")
    lines.extend(f"warning: {w}" for w in s.get("warnings", []))
    lines.append(f"settings: {s['settings']}")
    if s.get("model_description"):
        lines.append(f"model: {s['model_description']}")
    return "\n".join(lines)
