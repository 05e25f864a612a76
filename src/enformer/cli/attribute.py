"""``enformer attribute``: contribution scores of a target for a region or a variant.

Writes the per-position contributions as BigWig (genomic coordinates of the model's input
window), the per-base scores as HDF5 or NPZ, a figure, and the resolved settings as
``enformer_attribute.json``.
"""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import Any

from . import options as opt

SETTINGS_NAME = "enformer_attribute.json"

HELP = "contribution scores (gradient x input, saliency, integrated gradients)"
DESCRIPTION = """\
Explain a target -- chosen tracks summed over output bins (a gene's TSS bins from a GTF, or
explicit bins) -- with per-base contribution scores for the model's input window around a
region or a variant. Writes BigWig (per-position sums, genomic coordinates), HDF5/NPZ (per-base
scores) and a figure."""


def add_parser(sub: argparse._SubParsersAction) -> argparse.ArgumentParser:
    """Register ``attribute``."""
    p = opt.add_command(sub, "attribute", HELP, DESCRIPTION)
    opt.add_interpret_arguments(p)
    src = p.add_mutually_exclusive_group(required=True)
    opt.add_window_region_option(src)
    src.add_argument(
        "--variant",
        metavar="CHR:POS:REF>ALT",
        help="variant (1-based); scores are computed for the REF and the ALT window",
    )
    p.add_argument(
        "--method",
        default="grad_x_input",
        choices=["grad_x_input", "saliency", "integrated_gradients"],
        help="attribution method (default grad_x_input)",
    )
    p.add_argument("--steps", type=int, default=32, help="integrated-gradients steps (default 32)")
    opt.add_rc_option(
        p, "average with the reverse-complement copy (strand pairs swapped with a sheet)"
    )
    opt.add_shifts_option(p, "shifts in bp averaged over, e.g. -1,0,1 (default 0),")
    opt.add_array_format_option(p)
    p.add_argument(
        "--on-ref-mismatch",
        default="fail",
        choices=["fail", "flip"],
        help="--variant whose REF differs from the genome: fail (default), or flip when the "
        "genome carries ALT",
    )
    return p


def _sequences(args: argparse.Namespace, genome, length: int):
    """``(chrom, start, {name: sequence}, variant)`` of the region or the variant."""
    from ..data.genome import parse_region
    from ..interpret.readout import input_window
    from ..variants.records import parse_variant
    from ..variants.sequences import RefMismatchError, allele_sequences

    if not args.variant:
        window, seq = input_window(genome, parse_region(args.region), length)
        return window.chrom, window.start, {"ref": seq}, None
    variant = parse_variant(args.variant)
    try:
        alleles = allele_sequences(variant, genome, length, on_ref_mismatch=args.on_ref_mismatch)
    except RefMismatchError as err:
        # The library suggests 'skip', which means nothing for a single variant.
        fix = "check the variant's assembly" + (
            "" if args.on_ref_mismatch == "flip" else ", or pass --on-ref-mismatch flip to "
            "score it when the genome carries ALT"
        )
        raise ValueError(f"variant {variant.label}: {err.reason}; {fix}") from None
    place = alleles.placement
    return place.chrom, place.start, {"ref": alleles.ref, "alt": alleles.alt}, variant


def run(args: argparse.Namespace) -> dict[str, Any]:
    """Compute contribution scores and write the files; return the summary."""
    import numpy as np
    import torch

    from ..data.genome import Genome, parse_region
    from ..data.sequence import one_hot
    from ..interpret.attribution import Target, contribution_scores
    from ..interpret.outputs import VariantMark, write_attribution_outputs
    from ..interpret.readout import mostly_n_warnings
    from ..variants.records import parse_variant

    opt.check_positive(steps=args.steps)
    options = opt.predict_options(args)
    if args.gene and not args.gtf:
        raise ValueError("--gene needs --gtf (the annotation to find the gene's TSS in)")
    with Genome(args.fasta) as genome:
        # Parse the inputs before the (slow) weights load.
        where = parse_variant(args.variant) if args.variant else parse_region(args.region)
        genome.resolve_chrom(where.chrom)
        model = opt.load_model(args)
        cfg, length = model.config, model.config.sequence_length
        sel = opt.select_from_args(args, cfg)
        chrom, start, seqs, variant = _sequences(args, genome, length)
        warned = mostly_n_warnings(seqs["ref"], f"{chrom}:{start + 1:,}-{start + length:,}")
        read_out = opt.read_out_from_args(args, cfg, chrom, start)
        target = Target(sel.head, tracks=sel.indices, bins=read_out.bins, reduce="sum")
        chrom_sizes = genome.chrom_sizes
    x = torch.from_numpy(np.stack([one_hot(s, ambiguous="n") for s in seqs.values()]))
    attr = contribution_scores(
        model, x, target, method=args.method, steps=args.steps, rc=options.rc,
        shifts=options.shifts, strand_pairs=sel.strand_pairs if options.rc else None,
        batch_size=options.batch_size, device=options.device, progress=not args.quiet,
    )  # fmt: skip
    items = [attr[i] for i in range(len(seqs))]
    for a, name in zip(items, seqs, strict=True):
        a.chrom, a.start, a.name = chrom, start, name
    settings = {
        "command": "enformer attribute", "weights": args.weights, "fasta": args.fasta,
        "region": args.region, "variant": args.variant,
        "window": {"chrom": chrom, "start": start, "end": start + length},
        "head": sel.head, "tracks": sel.indices, "track_identifiers": sel.names,
        "track_sheet": sel.sheet_path, "target": target.describe(),
        "target_bins_from": read_out.how, "method": args.method,
        "steps": args.steps if args.method == "integrated_gradients" else None,
        "rc": options.rc, "shifts": list(options.shifts), "model_description": cfg.description,
    }  # fmt: skip
    labels = [
        f"{i} {ident} {lab}".strip() if ident != str(i) else f"track {i} {lab}".strip()
        for i, ident, lab in zip(sel.indices, sel.names, sel.descriptions, strict=True)
    ]
    files = write_attribution_outputs(
        items, args.out, chrom_sizes=chrom_sizes, array_format=args.format, settings=settings,
        plot=None if args.plot == "none" else args.plot, target=target, model=model, x=x,
        labels=labels, gtf=args.gtf,
        variant=None if variant is None else VariantMark(variant.pos0, variant.spec),
    )  # fmt: skip
    summary: dict[str, Any] = {
        "out": str(Path(args.out)), "model_description": cfg.description or None,
        "window": f"{chrom}:{start + 1:,}-{start + length:,}", "target": target.describe(),
        "target_bins_from": read_out.how, "method": args.method,
        "target_value": {a.name: float(a.target_value) for a in items}, "files": files,
        "settings": str(opt.write_settings(args.out, SETTINGS_NAME, settings, files)),
    }  # fmt: skip
    return opt.finish_summary(summary, warned, _render)


def _render(s: dict[str, Any]) -> str:
    lines = [f"model: {s['model_description']}"] if s.get("model_description") else []
    lines.append(f"{s['method']} of {s['target']} ({s['target_bins_from']})")
    lines.append(f"window {s['window']}")
    lines += [f"  f({name}) = {v:.6g}" for name, v in s["target_value"].items()]
    return "\n".join(lines + opt.render_files(s))
