"""``enformer score``: variant-effect scores from a VCF, a TSV or variant strings."""

from __future__ import annotations

import argparse
import re
from typing import Any

from .options import add_attention_option, apply_attention_option

HELP = "score variants (VCF/TSV/strings) -> Parquet, TSV, HDF5 (sad.h5) or annotated VCF"

DESCRIPTION = """\
Score genetic variants with an Enformer model. Each variant's reference and alternative
windows (the variant's first REF base at input index L/2, DeepMind's convention) are predicted,
averaged over the requested reverse-complement and shift copies, and compared with the chosen
statistics over all output bins, the --center-bins around the variant, or the TSS bins of each
gene of --genes.

Statistics (R, A = ref, alt predictions; sums over bins):
  SAD = sum A - sum R                    SAR = sum[log2(A+1) - log2(R+1)]
  logSED (SADR) = log2(sum A + 1) - log2(sum R + 1)
  D1 = sum |A - R|    D2 = sqrt(sum (A - R)^2)    SAX = (A - R) at the bin of max |A - R|
  JS = symmetric KL of bin profiles (pseudocount: 25th percentile of R)
  REF = sum R    ALT = sum A

The output format follows --out's suffix: .parquet, .tsv[.gz] (tidy: one row per variant x
track; --wide for a column per track), .h5 (basenji's sad.h5 layout) or .vcf[.gz] (the input
VCF with INFO fields ENFORMER_<STAT>_T<track>). Skipped variants go to <out>.skipped.tsv and
the resolved settings and formulas to <out>.settings.json (written last: it is present only
beside complete outputs). An interrupted run restarts where it left off when run again with the
same settings; finished chunks are checked against the genome's bases and recomputed if the
FASTA changed. One run at a time per --out: a second run while the first is alive is refused
(exit 2) and touches nothing; --shard runs of one job may run side by side."""

# Lets "--shifts -1,0,1" through: argparse would otherwise take "-1,0,1" for an option.
_NEGATIVE_NUMBERS = re.compile(r"^-\d+$|^-\d*\.\d+$|^-\d+(,-?\d+)+$")


_SELECTION = (
    "tracks: indices '0,5,10-20', or with a sheet identifiers, 'assay:CAGE', ... (default all)"
)
_GENES = (
    "score the TSS bins of each gene of this GTF in the output window (one row per variant x "
    "gene); a variant with no TSS in its output window is listed in the .skipped table with "
    "that reason (not predicted)"
)
_SHIFTS = (
    "shifts in bp to average, e.g. --shifts -1,0,1 (default 0), each at most half an output bin "
    "(|S| <= 64 bp for 128-bp bins; Enformer was trained with up to 3)"
)
_MISMATCH = (
    "REF differs from the genome: stop, skip and report, or flip when the genome carries ALT "
    "(default fail)"
)
_NO_REUSE = (
    "run full forwards of every allele instead of reusing the reference's conv activations "
    "(same numbers, slower; for checking)"
)
_SHARD = (
    "compute only shard I of N (1-based) into --work-dir and write no output; run once per "
    "process/device with the same settings, then once without --shard to assemble"
)
_CHR = "map chromosome names that differ only by 'chr' (1 <-> chr1, MT <-> chrM)"
_FLAG = {"action": "store_true"}
# (group, flags, options), in --help order; group: None (parser), "source" or "window"
_OPTIONS: list[tuple[str | None, str, dict[str, Any]]] = [
    (None, "--weights", {"required": True, "metavar": "DIR|NAME",
                         "help": "checkpoint directory, file or hub name"}),
    (None, "--fasta", {"required": True, "metavar": "FASTA", "help": "indexed genome FASTA"}),
    ("source", "--vcf", {"metavar": "VCF", "help": "variants: VCF, VCF.gz or BCF"}),
    ("source", "--tsv", {"metavar": "TSV", "help": "variants: TSV with chrom pos ref alt [id]"}),
    ("source", "--variant", {"action": "append", "metavar": "CHR:POS:REF>ALT",
                             "help": "a variant, 1-based (repeatable), e.g. chr1:14677:G>A"}),
    (None, "--out", {"required": True, "metavar": "FILE",
                     "help": "output file (format by suffix)"}),
    (None, "--stats", {"default": "SAD",
                       "help": "comma-separated statistics (default SAD), e.g. SAD,logSED"}),
    (None, "--tracks", {"default": None, "metavar": "SEL", "help": _SELECTION}),
    (None, "--targets", {"metavar": "SHEET", "help": "track sheet (targets_human.txt) for "
                         "names, identifiers and strand pairs"}),
    (None, "--head", {"default": "human", "help": "output head (default human)"}),
    ("window", "--genes", {"metavar": "GTF", "help": _GENES}),
    ("window", "--center-bins", {"type": int, "metavar": "W",
                                 "help": "score only W bins around the variant"}),
    (None, "--tss-width", {"type": int, "default": 3, "metavar": "W",
                           "help": "bins around each TSS (default 3)"}),
    (None, "--rc", {**_FLAG, "help": "average forward and reverse complement"}),
    (None, "--shifts", {"nargs": "+", "default": ["0"], "metavar": "S", "help": _SHIFTS}),
    (None, "--on-ref-mismatch", {"choices": ["fail", "skip", "flip"], "default": "fail",
                                 "help": _MISMATCH}),
    (None, "--group-span", {"type": int, "metavar": "BP", "help": "variants within BP share "
                            "one reference window (placement recorded per variant)"}),
    (None, "--wide", {**_FLAG, "help": "one column per statistic and track"}),
    (None, "--vcf-tracks", {"metavar": "SEL",
                            "help": "VCF output: tracks to annotate (default all scored)"}),
    (None, "--batch-size", {"type": int, "default": 1, "metavar": "N",
                            "help": "sequences per forward"}),
    (None, "--device", {"default": None, "help": "device, e.g. cpu or cuda:0"}),
    (None, "--attention", {}),  # cli/options.py
    (None, "--no-reuse", {**_FLAG, "help": _NO_REUSE}),
    (None, "--chunk-size", {"type": int, "default": 64, "metavar": "N",
                            "help": "variants per resumable chunk"}),
    (None, "--work-dir", {"metavar": "DIR",
                          "help": "resume directory (default <out>.enformer-work)"}),
    (None, "--no-resume", {**_FLAG, "help": "ignore finished chunks; start over"}),
    (None, "--keep-work", {**_FLAG, "help": "keep the work directory afterwards"}),
    (None, "--shard", {"metavar": "I/N", "help": _SHARD}),
    (None, "--chrom-alias", {**_FLAG, "help": _CHR}),
]  # fmt: skip


def add_parser(subparsers: Any) -> argparse.ArgumentParser:
    """Register ``score`` on the top-level subparsers."""
    p = subparsers.add_parser(
        "score",
        help=HELP,
        description=DESCRIPTION,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    if hasattr(p, "_negative_number_matcher"):
        p._negative_number_matcher = _NEGATIVE_NUMBERS
    groups = {
        "source": p.add_mutually_exclusive_group(required=True),
        "window": p.add_mutually_exclusive_group(),
    }
    for group, flag, options in _OPTIONS:
        if flag == "--attention":
            add_attention_option(p)
        else:
            (groups[group] if group else p).add_argument(flag, **options)
    return p


def _parse_shifts(values: list[str]) -> tuple[int, ...]:
    out: list[int] = []
    for value in values:
        for piece in value.replace(" ", ",").split(","):
            if not piece:
                continue
            try:
                out.append(int(piece))
            except ValueError:
                raise ValueError(f"--shifts takes integers (bp), got {piece!r}") from None
    return tuple(out) or (0,)


def _parse_shard(text: str | None) -> tuple[int, int] | None:
    if text is None:
        return None
    match = re.fullmatch(r"\s*(\d+)\s*/\s*(\d+)\s*", text)
    if not match or not 1 <= int(match.group(1)) <= int(match.group(2)):
        raise ValueError(f"--shard takes I/N with 1 <= I <= N, e.g. 1/4; got {text!r}")
    return int(match.group(1)) - 1, int(match.group(2))


# Arguments handed to write_scores under their own names.
_PASSED = (
    "stats", "tracks", "head", "center_bins", "tss_width", "on_ref_mismatch", "group_span",
    "batch_size", "device", "wide", "vcf_tracks", "chunk_size", "work_dir", "keep_work", "rc",
)  # fmt: skip


def run(args: argparse.Namespace) -> dict[str, Any]:
    """Score the variants; return the summary."""
    from ..data.genome import Genome
    from ..variants.score import write_scores
    from ..inference.selection import track_sheet_for
    from ..weights import load_pretrained

    shifts = _parse_shifts(args.shifts)
    shard = _parse_shard(args.shard)
    model = load_pretrained(args.weights, device=args.device or "cpu", progress=not args.quiet)
    apply_attention_option(model, args)
    sheet = track_sheet_for(
        args.weights, args.head, args.targets, n_tracks=model.config.heads.get(args.head)
    )
    variants: Any = args.vcf or args.tsv or list(args.variant)
    genome = Genome(args.fasta, chrom_aliases=args.chrom_alias)
    try:
        summary = write_scores(
            model,
            variants,
            genome,
            args.out,
            **{name: getattr(args, name) for name in _PASSED},
            track_sheet=sheet,
            shifts=shifts,
            genes_gtf=args.genes,
            progress=not args.quiet,
            resume=not args.no_resume,
            model_name=str(args.weights),
            shard=shard,
            predictor="naive" if args.no_reuse else "reuse",
        )
    finally:
        genome.close()
    if shard is not None:
        summary["_text"] = (
            f"shard {shard[0] + 1}/{shard[1]}: computed {summary['chunks_computed']} of "
            f"{summary['chunks']} chunk(s) into {summary['work_dir']}; "
            + (
                "all chunks done: run again without --shard to write the outputs"
                if summary["complete"]
                else f"{summary['chunks_missing']} chunk(s) still missing (other shards)"
            )
        )
        return summary
    summary["model_description"] = model.config.description or None
    summary["_text"] = _render(summary)
    return summary


def _render(s: dict[str, Any]) -> str:
    lines = [
        f"wrote        {s['out']} ({s['format']})",
        f"variants     {s['variants_scored']:,} scored, {s['variants_skipped']:,} skipped "
        f"({s['skipped']})",
        f"rows         {s['rows']:,} ({s['tracks']} track(s) of head {s['head']}; "
        f"stats {', '.join(s['stats'])})",
        f"settings     {s['settings']}",
        f"time         {s['seconds']:.1f} s"
        + (f" ({s['variants_per_second']} variants/s)" if s.get("variants_per_second") else ""),
    ]
    if s.get("resumed_chunks"):
        lines.append(f"resumed      {s['resumed_chunks']} finished chunk(s)")
    if s.get("skip_reasons"):
        reasons = ", ".join(f"{k}: {v}" for k, v in s["skip_reasons"].items())
        lines.append(f"skipped by   {reasons}")
    if s.get("model_description"):
        lines.append(f"model        {s['model_description']}")
    return "\n".join(lines)
