"""``enformer score``: variant-effect scores from a VCF, a TSV or variant strings."""

from __future__ import annotations

import argparse
from typing import Any

from . import options as opt

HELP = "score variants (VCF/TSV/strings) -> Parquet, TSV, HDF5 (sad.h5) or annotated VCF"

DESCRIPTION = """\
Score genetic variants with a model (Enformer, Borzoi, Flashzoi). Each variant's reference and
alternative windows (the variant's first REF base at input index L/2, DeepMind's convention)
are predicted, averaged over the reverse-complement and shift copies, and compared over all
output bins, the --center-bins around the variant, or each gene of --genes (its TSS, exon or
body bins: --gene-score). What each statistic means: docs/variant-scores.md.

Statistics (R, A = ref, alt predictions; sums over bins):
  SAD = sum A - sum R                    SAR = sum[log2(A+1) - log2(R+1)]
  logSED (SADR) = log2(sum A + 1) - log2(sum R + 1)
  D1 = sum |A - R|    D2 = sqrt(sum (A - R)^2)    SAX = (A - R) at the bin of max |A - R|
  JS = symmetric KL of bin profiles (pseudocount: 25th percentile of R)
  REF = sum R    ALT = sum A

--out's suffix picks the format: .parquet, .tsv[.gz] (one row per variant x track; --wide for a
column per track), .h5 (basenji's sad.h5) or .vcf[.gz] (INFO fields ENFORMER_<STAT>_T<track>).
Skipped variants go to <out>.skipped.tsv, the settings and formulas to <out>.settings.json
(written last). A killed run resumes when run again; one run at a time per --out."""

_GENES = (
    "score each gene of this GTF in the output window (one row per variant x gene x region, "
    "see --gene-score); a variant with no gene there is listed in the .skipped table"
)
_SHARD = (
    "compute only shard I of N (1-based) into --work-dir and write no output; run once per "
    "process/device with the same settings, then once without --shard to assemble"
)


def add_parser(sub: argparse._SubParsersAction) -> argparse.ArgumentParser:
    """Register ``score``."""
    p = opt.add_command(sub, "score", HELP, DESCRIPTION, raw=True)
    p.add_argument("--weights", required=True, metavar="DIR|NAME",
                   help="checkpoint directory, file or hub name")
    p.add_argument("--fasta", required=True, metavar="FASTA", help="indexed genome FASTA")
    source = p.add_mutually_exclusive_group(required=True)
    source.add_argument("--vcf", metavar="VCF", help="variants: VCF, VCF.gz or BCF")
    source.add_argument("--tsv", metavar="TSV", help="variants: TSV with chrom pos ref alt [id]")
    source.add_argument("--variant", action="append", metavar="CHR:POS:REF>ALT",
                        help="a variant, 1-based (repeatable), e.g. chr1:14677:G>A")
    p.add_argument("--out", required=True, metavar="FILE", help="output file (format by suffix)")
    p.add_argument("--stats", default="SAD",
                   help="comma-separated statistics (default SAD), e.g. SAD,logSED")
    opt.add_tracks_option(p, "tracks: indices '0,5,10-20', or with a sheet identifiers, "
                          "'assay:CAGE', ... (default all)")
    opt.add_targets_option(p, "track sheet (targets_human.txt) for names, identifiers and "
                           "strand pairs")
    p.add_argument("--head", default="human", help="output head (default human)")
    window = p.add_mutually_exclusive_group()
    window.add_argument("--genes", metavar="GTF", help=_GENES)
    window.add_argument("--center-bins", type=int, metavar="W",
                        help="score only W bins around the variant")
    p.add_argument("--tss-width", type=int, default=3, metavar="W",
                   help="bins around each TSS (default 3)")
    p.add_argument("--gene-score", default="tss", metavar="R[,R]",
                   help="with --genes: what to read out per gene, any of tss (its TSS bins), "
                   "exons (bins of its exons, for RNA-seq) and body (start to end); one row "
                   "per region (column gene_region). Tracks of the other strand are NaN")
    p.add_argument("--untransform", choices=["auto", "none", "basenji", "baskerville"],
                   default="auto", help="un-squash predictions per track (sheet's sum_stat, "
                   "scale, clip_soft) before the statistics, as Borzoi's scripts do: basenji "
                   "for the released Borzoi/Flashzoi (borzoi_sed.py -u), baskerville for hound-"
                   "trained models; auto (default): basenji for Borzoi models with a track "
                   "sheet, none for Enformer")
    opt.add_rc_option(p, "average forward and reverse complement")
    opt.add_shifts_option(p, "shifts in bp to average, e.g. --shifts -1,0,1 (default 0),",
                          spaced=True)
    p.add_argument("--on-ref-mismatch", choices=["fail", "skip", "flip"], default="fail",
                   help="REF differs from the genome: stop, skip and report, or flip when the "
                   "genome carries ALT (default fail)")
    p.add_argument("--group-span", type=int, metavar="BP", help="variants within BP share one "
                   "reference window (placement recorded per variant)")
    p.add_argument("--wide", action="store_true", help="one column per statistic and track")
    p.add_argument("--vcf-tracks", metavar="SEL",
                   help="VCF output: tracks to annotate (default all scored)")
    opt.add_batch_size_option(p, 1, "sequences per forward")
    opt.add_device_option(p, "device, e.g. cpu or cuda:0")
    opt.add_attention_option(p)
    p.add_argument("--no-reuse", action="store_true",
                   help="run full forwards of every allele instead of reusing the reference's "
                   "conv activations (same numbers, slower; for checking)")
    p.add_argument("--chunk-size", type=int, default=64, metavar="N",
                   help="variants per resumable chunk")
    p.add_argument("--work-dir", metavar="DIR",
                   help="resume directory (default <out>.enformer-work)")
    p.add_argument("--no-resume", action="store_true", help="ignore finished chunks; start over")
    p.add_argument("--keep-work", action="store_true",
                   help="keep the work directory afterwards")
    p.add_argument("--shard", metavar="I/N", help=_SHARD)
    opt.add_background_arguments(p)
    opt.add_plot_arguments(p)
    opt.add_chrom_alias_option(p)
    return p  # fmt: skip


# Arguments handed to score_variants / make_background, and those only write_scores takes.
_SCORING = ("stats", "tracks", "head", "center_bins", "tss_width", "gene_score",
            "on_ref_mismatch", "group_span", "batch_size", "device", "rc",
            "untransform")  # fmt: skip
_FILES = ("wide", "vcf_tracks", "chunk_size", "work_dir", "keep_work")


def run(args: argparse.Namespace) -> dict[str, Any]:
    """Score the variants; return the summary."""
    from ..data.genome import Genome
    from ..inference.selection import track_sheet_for
    from ..variants.score import write_scores
    from ..weights import load_pretrained

    shifts = opt.parse_shifts(args.shifts)
    shard = opt.parse_shard(args.shard)
    model = load_pretrained(args.weights, device=args.device or "cpu", progress=not args.quiet)
    opt.apply_attention_option(model, args)
    n_tracks = model.config.heads.get(args.head)
    sheet = track_sheet_for(args.weights, args.head, args.targets, n_tracks=n_tracks)
    genome = Genome(args.fasta, chrom_aliases=args.chrom_alias)
    plan_args = {name: getattr(args, name) for name in _SCORING}
    plan_args.update(track_sheet=sheet, shifts=shifts, genes_gtf=args.genes,
                     progress=not args.quiet, predictor="naive" if args.no_reuse else "reuse")
    try:
        if args.make_background:
            return opt.make_background_from_args(args, model, genome, plan_args)
        summary = write_scores(
            model, args.vcf or args.tsv or list(args.variant), genome, args.out,
            **plan_args, **{name: getattr(args, name) for name in _FILES},
            background=args.background, resume=not args.no_resume,
            model_name=str(args.weights), shard=shard,
        )  # fmt: skip
        if args.plot and shard is None:
            summary["plots"] = opt.plot_variants_from_args(args, model, genome, sheet)
    finally:
        genome.close()
    if shard is not None:
        done = summary["complete"]
        summary["_text"] = (
            f"shard {shard[0] + 1}/{shard[1]}: computed {summary['chunks_computed']} of "
            f"{summary['chunks']} chunk(s) into {summary['work_dir']}; "
            + ("all chunks done: run again without --shard to write the outputs" if done
               else f"{summary['chunks_missing']} chunk(s) still missing (other shards)")
        )  # fmt: skip
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
