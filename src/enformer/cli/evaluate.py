"""``enformer evaluate``: per-track and per-assay Pearson r of a model on a data split."""

from __future__ import annotations

import argparse
import os
from pathlib import Path
from typing import Any

from . import options as opt

HELP = "per-track and per-assay Pearson r of a model on a data split"

DESCRIPTION = """\
Evaluate a model on one split of a data set: the Poisson loss and, per track, the Pearson r
between predictions and targets over all bins of all sequences of the split pooled together
(DeepMind's and Basenji's definition), then its mean over tracks and over the tracks of each
assay (from the track sheet's descriptions: CAGE, DNASE, CHIP, ...).

  enformer evaluate --weights run/best --data data/basenji_tiny_hg38 --split test --pool 4

DIR is a Basenji/Enformer TFRecord folder (statistics.json, tfrecords/, targets.txt) or an
.npz file of arrays (see enformer.train.data.load_npz_split). Predictions with more bins than
the targets are centre-cropped to them."""


def add_parser(sub: Any) -> argparse.ArgumentParser:
    """Register ``evaluate``."""
    p = opt.add_command(sub, "evaluate", HELP, DESCRIPTION, raw=True)
    p.add_argument("--weights", required=True, metavar="DIR|NAME", help="model weights")
    p.add_argument("--data", required=True, metavar="DIR|NPZ", help="TFRecord folder or .npz")
    p.add_argument("--split", default="test", help="split to evaluate (default: test)")
    p.add_argument(
        "--kind",
        choices=["auto", "tfrecord", "npz", "bigwig"],
        default="auto",
        help="data kind (default: npz for .npz files, else tfrecord)",
    )
    opt.add_targets_option(
        p,
        "track sheet (default: DIR/targets.txt, else targets_{head}.txt beside the weights)",
        metavar="PATH",
    )
    opt.add_head_option(p, "head to evaluate (default: 'human' if present, else the first)")
    p.add_argument("--pool", type=int, default=1, help="pool this many target bins into one")
    p.add_argument("--genome", metavar="FASTA", help="genome to extend TFRecord windows (and "
                   "the sequences of BigWig data)")
    p.add_argument("--tracks-dir", metavar="DIR", help="BigWig data: the folder holding the "
                   "sheet's files (default: as the sheet names them, or beside the sheet)")
    p.add_argument(
        "--sequence-length", type=int, metavar="BP", help="model input length (default: records')"
    )
    opt.add_batch_size_option(p, 2, "sequences per forward pass")
    p.add_argument("--max-batches", type=int, metavar="N", help="evaluate only N batches")
    opt.add_device_option(p, "cpu, cuda, cuda:1 (default: auto)", default="auto")
    p.add_argument("--no-amp", action="store_true", help="float32 on CUDA too (no bf16)")
    p.add_argument("--out", metavar="JSON", help="also write the full report to this file")
    p.add_argument("--genes", metavar="GTF", help="also the paper's gene-level metric: Pearson "
                   "r across genes of log2(1 + CAGE summed at each gene's TSS bins), per track, "
                   "and its mean (needs the windows' coordinates: TFRecords with sequences.bed, "
                   "or BigWig data)")
    p.add_argument("--gene-tracks", default="assay:CAGE", metavar="SELECTION",
                   help="tracks of the gene-level metric (default 'assay:CAGE', from the sheet)")
    p.add_argument("--tss-width", type=int, default=3, metavar="W",
                   help="bins around each TSS for --genes (default 3)")
    return p


def _check_numbers(args: argparse.Namespace) -> None:
    """Refuse impossible numeric options before anything loads."""
    for flag, value in (
        ("--batch-size", args.batch_size),
        ("--pool", args.pool),
        ("--max-batches", args.max_batches),
        ("--sequence-length", args.sequence_length),
    ):
        if value is not None and value < 1:
            raise ValueError(f"{flag} must be a positive integer, got {value}")


def run(args: argparse.Namespace) -> dict[str, Any]:
    """Load the model and data, evaluate, and return the report."""
    from ..inference.selection import default_head, resolve_heads, track_sheet_for
    from ..io.jobs import write_json_atomic
    from ..train.config import DataConfig
    from ..train.data import build_dataset, make_eval_loader
    from ..train.distributed import resolve_device
    from ..train.evaluation import describe_report, evaluate
    from ..weights import load_pretrained

    _check_numbers(args)
    device = resolve_device(args.device)
    model = load_pretrained(args.weights, device=device, progress=not args.quiet)
    head = resolve_heads(args.head or default_head(model.config), model.config)[0]
    data_sheet = Path(args.data) / "targets.txt"
    sheet = track_sheet_for(
        args.weights, head, args.targets, also=[data_sheet], n_tracks=model.config.heads[head]
    )
    kind = args.kind
    if kind == "auto":
        kind = "npz" if str(args.data).endswith(".npz") else "tfrecord"
    data = DataConfig(
        kind=kind,
        path=str(args.data),
        genome=args.genome,
        targets=args.targets if args.targets and os.path.isfile(args.targets) else None,
        tracks_dir=args.tracks_dir,
        sequence_length=args.sequence_length,
        pool=args.pool,
        max_shift=0,
        reverse_complement=False,
    )
    length = args.sequence_length
    if length is None and kind == "bigwig":
        length = model.config.sequence_length
    dataset = build_dataset(
        data,
        args.split,
        sequence_length=length,
        bin_size=model.config.bin_size,
        target_length=model.config.output_bins(length) if length else None,
    )
    loader = make_eval_loader(dataset, batch_size=args.batch_size)
    genes = _gene_metric(args, model.config, head, sheet, dataset)
    result = evaluate(
        model,
        loader,
        head=head,
        device=device,
        amp=not args.no_amp,
        track_sheet=sheet,
        max_batches=args.max_batches,
        genes=genes,
    )
    summary = result.summary()
    per_track = result.per_track(sheet)
    report: dict[str, Any] = {
        "weights": str(args.weights),
        "data": str(args.data),
        "split": args.split,
        "head": head,
        "metric": "per-track Pearson r over all bins of all sequences of the split, "
        "mean over tracks (NaN tracks left out)",
        **summary,
        "per_track": per_track,
        "settings": {
            "kind": kind,
            "pool": args.pool,
            "sequence_length": args.sequence_length,
            "batch_size": args.batch_size,
            "max_batches": args.max_batches,
            "track_sheet": str(sheet.path) if sheet is not None and sheet.path else None,
        },
    }
    if args.out:
        out = Path(args.out)
        out.parent.mkdir(parents=True, exist_ok=True)
        write_json_atomic(out, report)
        report["out"] = str(out)
    report["_text"] = describe_report(report)
    return report


def _gene_metric(args: argparse.Namespace, config: Any, head: str, sheet: Any, dataset: Any):
    """The across-gene accumulator of --genes, or None."""
    if not args.genes:
        return None
    from ..data.annotation import TSSIndex
    from ..inference.selection import select_tracks
    from ..train.gene_metrics import GeneExpression

    intervals = getattr(dataset, "intervals", None)
    if not intervals:
        raise ValueError("--genes needs the windows' genome coordinates: TFRecord data with a "
                         "sequences.bed, or BigWig data (an .npz has none)")  # fmt: skip
    tracks = select_tracks(config, args.gene_tracks, head=head, sheet=sheet).indices
    return GeneExpression(TSSIndex.from_gtf(args.genes), intervals, tracks, args.tss_width)
