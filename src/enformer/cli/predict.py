"""``enformer predict``: tracks for regions, BED files, whole chromosomes or sequences."""

from __future__ import annotations

import argparse
import logging
from typing import Any

from . import options as opt

log = logging.getLogger(__name__)

HELP = "predict tracks for regions, a BED file, whole chromosomes or sequences"
DESCRIPTION = """\
Predict tracks and write them as one BigWig per track (genomic inputs) or as HDF5/NPZ arrays
with coordinates. Long regions and whole chromosomes are tiled so that output bins abut
exactly; chromosome ends are padded with N. A killed run resumes where it stopped when the same
command is run again (finished tiles are checked against the genome's bases and recomputed if
the FASTA changed). One run at a time per --out: a second run into a folder that a live run is
writing is refused (exit 2). A folder holding the finished outputs of a run with other settings
is refused unless --overwrite is given, which removes them first. Launch with `torchrun
--nproc_per_node=N -m enformer predict ...` to share the work among processes."""


def add_parser(sub: argparse._SubParsersAction) -> argparse.ArgumentParser:
    """Register ``predict``."""
    p = opt.add_command(sub, "predict", HELP, DESCRIPTION)
    opt.add_genomic_inputs(
        p, "FASTA of sequences of the model's input length (no genomic coordinates: h5/npz "
        "output only)", chromosomes=True,
    )  # fmt: skip
    opt.add_tracks_option(
        p,
        "tracks to write: indices '0,5,10-20', 'all', or with a track sheet identifiers, "
        "'assay:CAGE', 'search:K562' (default 'all' for h5/npz; required for bigwig)",
    )
    opt.add_head_option(p)
    opt.add_targets_option(p)
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
    opt.add_rc_option(
        p, "average in reverse-complement predictions (strand-paired tracks swapped)"
    )
    opt.add_shifts_option(
        p, "shifts in bp whose predictions are averaged, e.g. -1,0,1 (default 0),"
    )
    opt.add_batch_size_option(p, 1, "sequences per forward pass")
    opt.add_device_option(p)
    opt.add_dtype_option(p)
    opt.add_attention_option(p)
    p.add_argument(
        "--align",
        choices=["start", "grid"],
        default="start",
        help="first bin of a region at its start, or on the genome-wide bin grid (default: start)",
    )
    opt.add_chrom_alias_option(p)
    opt.add_no_download_option(p, "never download track sheets")
    return p


def _check(args: argparse.Namespace, fmt: str) -> None:
    """Refuse option combinations that cannot work, before anything loads."""
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


def run(args: argparse.Namespace) -> dict[str, Any]:
    """Predict and write the files; return the summary."""
    from ..data.genome import Genome, read_fasta_sequences
    from ..inference.reports import predict_summary, render_predict_summary
    from ..inference.tiling import read_regions
    from ..inference.writers import predict_to_files

    options = opt.predict_options(args, tracks=args.tracks or "all")
    fmt = args.format or ("h5" if args.sequences else "bigwig")
    _check(args, fmt)
    # Read the inputs first: bad regions and files fail before the weights load.
    genome = regions = sequences = None
    try:
        if args.sequences:
            sequences = read_fasta_sequences(args.sequences)
        else:
            genome = Genome(args.fasta, chrom_aliases=args.chrom_alias)
            regions = read_regions(
                genome, regions=args.region, bed=args.bed, chromosomes=args.chromosomes
            )
        model = opt.load_model(args)
        sel = opt.select_from_args(args, model.config, options.tracks)
        if sel.sheet is None and options.rc:
            log.warning(
                "no track sheet for head %r: reverse-complement predictions are averaged "
                "without swapping strand-paired tracks (pass --targets to swap them)",
                sel.head,
            )
        settings = {
            "command": "enformer predict", "weights": args.weights, "fasta": args.fasta,
            "inputs": {"region": args.region, "bed": args.bed, "chromosomes": args.chromosomes,
                       "sequences": args.sequences},
            "track_selection": options.tracks, "track_sheet": sel.sheet_path,
            "device": args.device, "attention": args.attention,
        }  # fmt: skip
        result = predict_to_files(
            model, args.out, genome=genome, regions=regions, sequences=sequences, format=fmt,
            head=sel.head, tracks=sel.indices, track_sheet=sel.sheet, rc=options.rc,
            shifts=options.shifts, batch_size=options.batch_size, device=options.device,
            dtype=options.torch_dtype, align=args.align, progress=not args.quiet,
            settings=settings, overwrite=args.overwrite,
        )  # fmt: skip
    finally:
        if genome is not None:
            genome.close()
    summary = predict_summary(result, fmt, sel.head, model.config.description)
    summary["_text"] = render_predict_summary(summary, result.rank)
    return summary
