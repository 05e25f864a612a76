"""``enformer benchmark eqtl``: how well predicted effects separate eQTLs from negatives."""

from __future__ import annotations

import argparse
from typing import Any

from . import options as opt

HELP = "benchmarks of predicted variant effects (eqtl: AUROC/AUPRC on labelled variants)"

DESCRIPTION = """\
enformer benchmark eqtl: score fine-mapped eQTLs (positives) and matched negatives, rank all
by the size of the predicted effect (the largest |--stat| over the scored tracks and genes)
and report AUROC, AUPRC and, with --sign-field, how often the predicted sign matches the
eQTL's. Negatives are --negatives, or --draw-negatives random SNVs within --distance bp of each
positive from the same real sequence (seeded). Writes OUT/scores.tsv, OUT/metrics.json and
OUT/roc.png. The field compares models on this task (Enformer AUROC 0.77 in an independent
benchmark, AlphaGenome 0.80); see docs/benchmarks.md."""


def add_parser(subparsers: Any) -> argparse.ArgumentParser:
    """Register ``benchmark``."""
    p = opt.add_command(subparsers, "benchmark", HELP, DESCRIPTION, raw=True)
    p.add_argument("task", choices=["eqtl"], help="the benchmark to run")
    opt.add_weights_option(p)
    p.add_argument("--fasta", required=True, help="indexed genome FASTA")
    p.add_argument("--vcf", required=True, help="the eQTLs (positives), VCF")
    p.add_argument("--negatives", metavar="VCF", help="negatives (default: drawn)")
    p.add_argument("--draw-negatives", type=int, default=5, metavar="K",
                   help="random SNVs drawn per positive when no --negatives (default 5)")
    p.add_argument("--distance", type=int, default=10_000, metavar="BP",
                   help="drawn negatives lie within BP of their positive (default 10,000)")
    p.add_argument("--seed", type=int, default=0, help="seed of the drawn negatives")
    p.add_argument("--stat", default="logSED", help="statistic ranked (default logSED)")
    p.add_argument("--label-field", metavar="INFO", help="INFO field with 1/0 labels "
                   "(then --vcf holds both classes)")
    p.add_argument("--sign-field", metavar="INFO", help="INFO field with the eQTL's effect")
    p.add_argument("--gene-field", metavar="INFO", help="INFO field naming the eGene")
    opt.add_tracks_option(p, "tracks scored (default all)")
    opt.add_targets_option(p, "track sheet for --tracks by name and strands")
    opt.add_head_option(p)
    p.add_argument("--genes", metavar="GTF", help="score per gene (see enformer score)")
    p.add_argument("--gene-score", default="tss", help="with --genes: tss, exons and/or body")
    p.add_argument("--out", required=True, metavar="DIR", help="output folder")
    opt.add_batch_size_option(p, 1, "sequences per forward pass")
    opt.add_device_option(p, "torch device (default cpu)")
    opt.add_chrom_alias_option(p)
    return p  # fmt: skip


def run(args: argparse.Namespace) -> dict[str, Any]:
    """Run the benchmark; return its metrics."""
    from ..data.genome import Genome
    from ..inference.selection import default_head, track_sheet_for
    from ..interpret.plots import plot_roc
    from ..variants.benchmark import roc_curve, run_eqtl_benchmark
    from ..weights import load_pretrained

    opt.check_positive(draw_negatives=args.draw_negatives, distance=args.distance)
    model = load_pretrained(args.weights, device=args.device or "cpu", progress=not args.quiet)
    head = args.head or default_head(model.config)
    sheet = track_sheet_for(args.weights, head, args.targets, n_tracks=model.config.heads[head])
    with Genome(args.fasta, chrom_aliases=args.chrom_alias) as genome:
        result, table = run_eqtl_benchmark(
            model, genome, args.vcf, args.out, negatives=args.negatives,
            draw_negatives=args.draw_negatives, distance=args.distance, seed=args.seed,
            stat=args.stat, label_field=args.label_field, sign_field=args.sign_field,
            gene_field=args.gene_field, tracks=args.tracks, track_sheet=sheet, head=head,
            genes_gtf=args.genes, gene_score=args.gene_score, batch_size=args.batch_size,
            device=args.device, progress=not args.quiet,
        )  # fmt: skip
    scored = table.dropna(subset=["score"])
    fpr, tpr = roc_curve(scored["score"], scored["label"])
    roc = f"{args.out}/roc.png"
    plot_roc(fpr, tpr, label=f"AUROC {result['auroc']:.3f}, AUPRC {result['auprc']:.3f}",
             title=f"{result['n_positive']} eQTLs vs {result['n_negative']} negatives",
             description=model.config.description or None, path=roc)  # fmt: skip
    result["files"].append(roc)
    sign = result["sign_agreement"]
    result["_text"] = "\n".join([
        f"eQTL benchmark: {result['n_positive']} positives, {result['n_negative']} negatives "
        f"({result['negatives']})",
        f"AUROC {result['auroc']:.4f}  AUPRC {result['auprc']:.4f}" + (
            f"  sign agreement {sign:.3f} ({result['n_with_sign']} eQTLs)" if sign is not None
            else ""),
        *(f"wrote {f}" for f in result["files"]),
    ])  # fmt: skip
    return result
