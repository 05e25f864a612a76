"""The options several commands share, each added by one function (``add_*``)."""

from __future__ import annotations

import argparse
import logging
import re

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


def add_shifts_option(p: argparse.ArgumentParser, help: str, *, spaced: bool = False) -> None:
    """Add ``--shifts S[,S...]`` and let negative lists such as ``-1,0,1`` through.

    ``spaced`` also accepts ``--shifts -1 0 1`` (``score`` always did).
    """
    extra = {"nargs": "+", "default": ["0"]} if spaced else {"default": "0"}
    p.add_argument("--shifts", metavar="S[,S...]", help=help + SHIFTS_HELP, **extra)
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


def parse_shifts(text: str | list[str]) -> tuple[int, ...]:
    """``'-1,0,1'`` (or ``['-1', '0', '1']``) -> ``(-1, 0, 1)``; one-line error otherwise."""
    if not isinstance(text, str):
        text = ",".join(text)
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
def add_genomic_inputs(p: argparse.ArgumentParser, sequences_help: str, *, chromosomes: bool):
    """``--weights``, ``--fasta`` and the one-of group ``--region``/``--bed``[/``--chromosomes``]
    /``--sequences`` of ``predict`` and ``embed``; returns the group (to add more sources)."""
    add_weights_option(p)
    p.add_argument("--fasta", metavar="FASTA", help="indexed genome FASTA (plain or bgzip)")
    src = p.add_mutually_exclusive_group(required=True)
    src.add_argument("--region", action="append", metavar="CHR:START-END",
                     help="region, 1-based inclusive as samtools (commas allowed); repeat for more")
    src.add_argument("--bed", metavar="BED", help="BED file of regions (0-based, half-open)")
    if chromosomes:
        src.add_argument("--chromosomes", metavar="CHR[,CHR...]",
                         help="whole chromosomes, comma-separated")
    src.add_argument("--sequences", metavar="FASTA", help=sequences_help)
    return src  # fmt: skip


def add_weights_option(p: argparse.ArgumentParser) -> None:
    """Add the required ``--weights DIR|NAME``."""
    p.add_argument("--weights", required=True, metavar="DIR|NAME", help="checkpoint or hub name")


def parse_shard(text: str | None) -> tuple[int, int] | None:
    """``--shard '2/4'`` -> ``(1, 4)`` (0-based shard, count); None stays None."""
    if text is None:
        return None
    match = re.fullmatch(r"\s*(\d+)\s*/\s*(\d+)\s*", text)
    if not match or not 1 <= int(match.group(1)) <= int(match.group(2)):
        raise ValueError(f"--shard takes I/N with 1 <= I <= N, e.g. 1/4; got {text!r}")
    return int(match.group(1)) - 1, int(match.group(2))
