"""``enformer demo``: predict, score variants and draw, offline, with the bundled mini model."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import Any

from . import options as opt

HELP = "run the package end to end offline (bundled mini model, synthetic construct)"
DESCRIPTION = """\
Run the package's main job end to end with nothing to download: build a synthetic DNA
construct (two genes with CpG-island promoters, an enhancer, CTCF sites; seeded random
background), predict tracks over it with the bundled "mini" model, write them as BigWig,
score five variants (four break motifs, one control) into a table, draw the tracks and the
strongest variant's effect as PNG, and print what to run next with the official weights.

The mini model is a 2.0 M-parameter demonstration model trained on 45 hg38 windows (see its
model card: `python -c "import enformer.weights as w; print(w.model_card())"`). Use the
official weights for science; --weights runs the demo with any model.

With --fasta and --region the same report is made for a region of your own genome (the
model window centred on it), scoring the variants of --vcf (default: example SNVs at the
region's centre and 1 kb either side) and drawing the genes of --gtf.

  enformer demo                      # writes ./enformer-demo/
  enformer demo --out /tmp/demo --json
  enformer demo --fasta hg38.fa --region chr11:5,225,000-5,230,000 --vcf my.vcf --gtf genes.gtf"""


def add_parser(sub: argparse._SubParsersAction) -> argparse.ArgumentParser:
    """Register ``demo``."""
    p = opt.add_command(sub, "demo", HELP, DESCRIPTION, raw=True)
    p.add_argument("--out", default="enformer-demo", metavar="DIR",
                   help="output folder (default: enformer-demo)")
    p.add_argument("--weights", default="mini", metavar="DIR|NAME",
                   help="model to run (default: the bundled 'mini' model)")
    opt.add_tracks_option(p, "tracks to write and draw (default: a CAGE pair, a DNase track, "
                          "an RNA pair)")
    p.add_argument("--seed", type=int, default=0, help="seed of the construct's background")
    own = p.add_argument_group(
        "your own genome instead of the construct (needs an indexed FASTA; nothing is downloaded)"
    )
    own.add_argument("--fasta", metavar="FASTA", help="indexed genome FASTA (plain or bgzip)")
    opt.add_window_region_option(own)
    own.add_argument("--vcf", metavar="VCF", help="variants to score (default: example SNVs at "
                     "the region centre and 1 kb either side)")
    own.add_argument("--gtf", metavar="GTF", help="genes to draw under the tracks")
    opt.add_chrom_alias_option(own)
    own.add_argument("--on-ref-mismatch", choices=["fail", "skip", "flip"], default="fail",
                     help="when a --vcf REF differs from the genome: stop (default), skip it, "
                     "or swap alleles")
    return p  # fmt: skip


def run(args: argparse.Namespace) -> dict[str, Any]:
    """Run the demo; return its summary."""
    from ..demo import run_demo

    def say(line: str) -> None:
        if not args.quiet and not args.json:
            print(line, file=sys.stderr, flush=True)

    passed = ("weights", "tracks", "seed", "fasta", "region", "vcf", "gtf", "on_ref_mismatch")
    summary = run_demo(
        args.out, **{name: getattr(args, name) for name in passed},
        chrom_aliases=args.chrom_alias, progress=False, log=say,
    )  # fmt: skip
    summary["_text"] = _text(summary)
    return summary


def _text(s: dict[str, Any]) -> str:
    f = s["files"]
    lines = [
        "",
        f"done in {s['seconds']['total']:.1f} s. Files in {Path(f['summary']).parent}/:",
        f"  tracks.png     predicted tracks ({f['tracks_png']})",
        f"  variant.png    effect of the strongest variant, {s['strongest_variant']}"
        if f.get("variant_png")
        else "  (no variant could be scored, so no variant.png)",
        f"  scores.tsv     SAD and logSED of {len(s['variants'])} variants per track",
        f"  predictions/   {len(f['bigwigs'])} BigWig files (open in IGV with "
        f"{Path(f['fasta']).name}" + (", its GTF and BED)" if f.get("bed") else ")"),
        "  summary.json   everything above, machine-readable",
        "",
        "variant                  max |SAD|   what it hits",
    ]
    for v in sorted(s["variants"], key=lambda v: -v["max_abs_SAD"])[:10]:
        lines.append(f"  {v['id']:<22} {v['max_abs_SAD']:>9.4f}   {v['note']}")
    if s.get("model_description"):
        lines += ["", f"model: {s['model_description']}"]
    lines += ["", "Next, with the official Enformer weights (1 GB download, once):"]
    lines += [f"  {cmd}" for cmd in s["next_steps"]]
    return "\n".join(lines)
