"""Options that several commands share, each defined once, and the glue that reads them.

Each ``add_*`` function adds one option; commands whose help text says something of their
own pass it as ``help=``. :func:`predict_options` turns the parsed prediction options into
one :class:`~enformer.inference.options.PredictOptions`, and :func:`select_from_args` the
``--head/--tracks/--targets`` triple into a
:class:`~enformer.inference.selection.TrackSelection`.
"""

from __future__ import annotations

import argparse
import logging
import re
from pathlib import Path
from typing import Any

log = logging.getLogger(__name__)

# The values of Enformer.set_attention_implementation (kept here so that building the
# parser does not import the model).
ATTENTION_CHOICES = ("auto", "fused", "blocked")
DTYPE_CHOICES = ("bfloat16", "float16", "float32")
HEAD_HELP = "model head (default: 'human' if present, else the first)"
TARGETS_HELP = "track sheet file, or folder holding targets_{head}.txt"
SHIFTS_HELP = (
    " each at most half an output bin (|S| <= 64 bp for 128-bp bins;"
    " Enformer was trained with up to 3)"
)


def add_command(
    sub: argparse._SubParsersAction, name: str, help: str, description: str, *, raw: bool = False
) -> argparse.ArgumentParser:
    """Register the subcommand ``name``; ``raw`` keeps the description's own line breaks."""
    extra = {"formatter_class": argparse.RawDescriptionHelpFormatter} if raw else {}
    return sub.add_parser(name, help=help, description=description, **extra)


def add_attention_option(p: argparse.ArgumentParser) -> None:
    """Add ``--attention {auto,fused,blocked}``."""
    p.add_argument(
        "--attention",
        choices=ATTENTION_CHOICES,
        default="auto",
        help="attention kernels: fused (scaled_dot_product_attention), blocked (explicit "
        "softmax in query blocks) or auto = fused on CUDA, blocked elsewhere; the same "
        "numbers up to float rounding (default auto)",
    )


def apply_attention_option(model, args: argparse.Namespace) -> None:
    """Set the model's attention implementation from ``--attention``."""
    model.set_attention_implementation(args.attention)
    log.debug("attention implementation: %s", args.attention)


def add_head_option(p: argparse.ArgumentParser, help: str = HEAD_HELP) -> None:
    """Add ``--head``."""
    p.add_argument("--head", help=help)


def add_tracks_option(p: argparse.ArgumentParser, help: str, *, required: bool = False) -> None:
    """Add ``--tracks SELECTION`` (the syntax of :mod:`enformer.inference.selection`)."""
    p.add_argument("--tracks", required=required, metavar="SELECTION", help=help)


def add_targets_option(
    p: argparse.ArgumentParser, help: str = TARGETS_HELP, metavar: str = "SHEET"
) -> None:
    """Add ``--targets`` (a track sheet, or a folder holding ``targets_{head}.txt``)."""
    p.add_argument("--targets", metavar=metavar, help=help)


def add_rc_option(p: argparse.ArgumentParser, help: str) -> None:
    """Add ``--rc``."""
    p.add_argument("--rc", action="store_true", help=help)


def add_shifts_option(p: argparse.ArgumentParser, help: str) -> None:
    """Add ``--shifts S[,S...]`` and let negative lists such as ``-1,0,1`` through."""
    p.add_argument("--shifts", default="0", metavar="S[,S...]", help=help + SHIFTS_HELP)
    # argparse would take "-1,0,1" for an option.
    if hasattr(p, "_negative_number_matcher"):
        p._negative_number_matcher = re.compile(r"^-\d+(,\s*-?\d+)*$|^-\d*\.\d+$")


def add_batch_size_option(p: argparse.ArgumentParser, default: int | None, help: str) -> None:
    """Add ``--batch-size``."""
    p.add_argument("--batch-size", type=int, default=default, help=help)


def add_device_option(
    p: argparse.ArgumentParser,
    help: str = "torch device, e.g. cpu, cuda, cuda:1 (default: cpu)",
    default: str | None = None,
) -> None:
    """Add ``--device`` (checked by :mod:`enformer.cli.main` before anything loads)."""
    p.add_argument("--device", default=default, help=help)


def add_dtype_option(p: argparse.ArgumentParser) -> None:
    """Add ``--dtype``."""
    p.add_argument(
        "--dtype",
        choices=DTYPE_CHOICES,
        help="autocast dtype (e.g. bfloat16 on a GPU; default: float32); outputs are "
        "float32 either way",
    )


def add_no_download_option(p: argparse.ArgumentParser, help: str) -> None:
    """Add ``--no-download``."""
    p.add_argument("--no-download", action="store_true", help=help)


def add_chrom_alias_option(
    p: argparse.ArgumentParser,
    help: str = "map chromosome names that differ only by a 'chr' prefix (chr1/1, chrM/MT)",
) -> None:
    """Add ``--chrom-alias`` (match ``chr1``/``1`` between the inputs and the FASTA)."""
    p.add_argument("--chrom-alias", action="store_true", help=help)


def parse_shifts(text: str) -> tuple[int, ...]:
    """``'-1,0,1'`` -> ``(-1, 0, 1)``; a one-line error for anything else."""
    try:
        shifts = tuple(int(s) for s in text.replace(" ", "").split(",") if s)
    except ValueError:
        raise ValueError(
            f"--shifts must be comma-separated integers, e.g. -1,0,1; got {text!r}"
        ) from None
    if not shifts:
        raise ValueError("--shifts is empty; give e.g. 0 or -1,0,1")
    return shifts


def check_positive(**values: int | None) -> None:
    """Refuse a numeric option below 1 (``batch_size=0`` -> ``--batch-size must be >= 1``)."""
    for name, value in values.items():
        if value is not None and value < 1:
            raise ValueError(f"--{name.replace('_', '-')} must be >= 1, got {value}")


def predict_options(args: argparse.Namespace, **overrides: Any):
    """The prediction options of ``args`` (those it has) as one ``PredictOptions``."""
    from ..inference.options import PredictOptions

    fields = {
        "head": getattr(args, "head", None),
        "tracks": getattr(args, "tracks", None),
        "targets": getattr(args, "targets", None),
        "rc": getattr(args, "rc", False),
        "shifts": parse_shifts(getattr(args, "shifts", "0")),
        "batch_size": getattr(args, "batch_size", None),
        "device": getattr(args, "device", None),
        "dtype": getattr(args, "dtype", None),
        "attention": getattr(args, "attention", "auto"),
    }
    fields.update(overrides)
    check_positive(batch_size=fields["batch_size"])
    return PredictOptions(**fields)


def load_model(args: argparse.Namespace):
    """Load ``--weights`` (with ``--attention``); log its description; return the model."""
    from ..weights import load_pretrained

    model = load_pretrained(args.weights, progress=not args.quiet)
    apply_attention_option(model, args)
    if model.config.description:
        log.info("model: %s", model.config.description)
    return model


def select_from_args(args: argparse.Namespace, config, spec: str | None = None):
    """``--head``, ``--tracks`` (or ``spec``) and ``--targets`` as a ``TrackSelection``."""
    from ..inference.selection import select_for_weights

    return select_for_weights(
        args.weights,
        config,
        spec if spec is not None else args.tracks,
        head=args.head,
        targets=args.targets,
        download=not getattr(args, "no_download", False),
    )


def write_settings(out: Path, name: str, settings: dict, files: list[dict]) -> Path:
    """Write ``{"settings": ..., "files": ...}`` as JSON beside the outputs, atomically."""
    from ..io.jobs import write_json_atomic

    path = Path(out) / name
    write_json_atomic(path, {"settings": settings, "files": files})
    return path


def finish_summary(summary: dict[str, Any], warnings: list[str], render) -> dict[str, Any]:
    """Add the warnings (if any) and the text rendering (``render(summary)``) to a summary."""
    if warnings:
        summary["warnings"] = warnings
    summary["_text"] = render(summary)
    return summary


def render_files(summary: dict[str, Any]) -> list[str]:
    """The closing lines of a summary: files written, warnings, settings file."""
    lines = [f"wrote {len(summary['files'])} file(s) to {summary['out']}:"]
    lines += [f"  {f['path']}" for f in summary["files"]]
    lines.extend(f"warning: {w}" for w in summary.get("warnings", []))
    lines.append(f"settings: {summary['settings']}")
    return lines


def add_weights_option(p: argparse.ArgumentParser) -> None:
    """Add the required ``--weights DIR|NAME``."""
    p.add_argument("--weights", required=True, metavar="DIR|NAME", help="checkpoint or hub name")


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
    from ..interpret.readout import read_out_bins

    return read_out_bins(
        config,
        chrom,
        window_start,
        gene=args.gene,
        gtf=args.gtf,
        bins=args.bins,
        tss_width=args.tss_width,
    )


def add_run_arguments(p: argparse.ArgumentParser) -> None:
    """CONFIG, overrides and the options shared by ``train`` and ``finetune``."""
    p.add_argument("config", metavar="CONFIG.yaml", help="YAML run description")
    p.add_argument(
        "overrides",
        nargs="*",
        metavar="KEY=VALUE",
        help="configuration overrides, e.g. steps=1000 optim.lr=1e-4 data.kind=npz (write "
        "them right after CONFIG.yaml, before any --option)",
    )
    p.add_argument(
        "--print-config",
        action="store_true",
        help="print the resolved configuration as YAML and exit without training",
    )
    p.add_argument(
        "--stop-at-step",
        type=int,
        default=None,
        metavar="N",
        help="stop after update N with a checkpoint (resume later by running again)",
    )


def resolve_run_config(args: argparse.Namespace, extra: list[str] | None = None) -> Any:
    """The TrainConfig of CONFIG + overrides (+ ``extra`` overrides, applied last)."""
    from ..train.config import load_config

    return load_config(args.config, [*args.overrides, *(extra or [])])


def execute_run(config: Any, args: argparse.Namespace) -> dict[str, Any]:
    """Run (or just print) a resolved configuration; the command's summary."""
    from ..train.config import config_to_dict, dump_config
    from ..train.run import describe_run, run_training

    if args.print_config:
        return {"config": config_to_dict(config), "_text": dump_config(config).rstrip()}
    summary = run_training(config, stop_at_step=args.stop_at_step)
    if summary.get("rank", 0) == 0:
        summary["_text"] = describe_run(summary)
    else:  # rank 0 reports for the run
        summary["_text"] = f"rank {summary['rank']}/{summary['world_size']} done"
    return summary
