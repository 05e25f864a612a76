"""Options of the interpretation commands (``attribute``, ``ism``)."""

from __future__ import annotations

import argparse

from .common import (
    add_attention_option,
    add_batch_size_option,
    add_device_option,
    add_head_option,
    add_no_download_option,
    add_targets_option,
    add_tracks_option,
    add_weights_option,
)


def add_interpret_arguments(p: argparse.ArgumentParser) -> None:
    """Options shared by ``attribute`` and ``ism``: model, genome, target, outputs."""
    add_weights_option(p)
    p.add_argument("--fasta", required=True, metavar="FASTA", help="indexed genome FASTA")
    add_head_option(p)
    add_tracks_option(
        p,
        "tracks of the target: indices '0,5,10-20', or with a track sheet identifiers, "
        "'assay:CAGE', 'search:K562' (several tracks are summed)",
        required=True,
    )
    add_targets_option(p)
    where = p.add_mutually_exclusive_group()
    where.add_argument("--gene", metavar="NAME", help="read out at this gene's TSS bins (--gtf)")
    where.add_argument(
        "--bins",
        metavar="A-B",
        help="output bins to read out, 0-based, ranges inclusive: '447-449' or '10,12' "
        "(default: every output bin)",
    )
    p.add_argument("--gtf", metavar="GTF", help="gene annotation (for --gene and the figure)")
    p.add_argument(
        "--tss-width", type=int, default=3, help="bins around the TSS for --gene (default 3)"
    )
    p.add_argument("--out", required=True, metavar="DIR", help="output directory")
    p.add_argument(
        "--plot",
        default="png",
        choices=["png", "svg", "none"],
        help="figure format, or none (default png)",
    )
    add_batch_size_option(p, None, "inputs per forward pass")
    add_device_option(p, "torch device, e.g. cpu, cuda (default: cpu)")
    add_attention_option(p)
    add_no_download_option(p, "never download track sheets")


def add_window_region_option(p, *, required: bool = False) -> None:
    """Add ``--region`` (``attribute``, ``ism``): the input window is centred on it.

    ``p`` is a parser or a mutually exclusive group.
    """
    p.add_argument(
        "--region",
        required=required,
        metavar="CHR:START-END",
        help="region (1-based inclusive); the model's input window is centred on it",
    )


def add_array_format_option(p: argparse.ArgumentParser) -> None:
    """Add ``--format {h5,npz}`` for the array files of ``attribute`` and ``ism``."""
    p.add_argument(
        "--format", default="h5", choices=["h5", "npz"], help="array file format (default h5)"
    )


def read_out_from_args(args: argparse.Namespace, config, chrom: str, window_start: int):
    """``--gene/--gtf/--bins/--tss-width`` as a ``ReadOut`` for the window."""
    from ...interpret.readout import read_out_bins

    return read_out_bins(
        config,
        chrom,
        window_start,
        gene=args.gene,
        gtf=args.gtf,
        bins=args.bins,
        tss_width=args.tss_width,
    )
