"""``enformer ism``: in-silico saturation mutagenesis of a window of a region.

Every base of ``--window`` is mutated to the three others inside the model's input window
around ``--region``; the read-out (chosen tracks, summed or averaged over the target bins) is
written in basenji's ``scores.h5`` layout with genomic coordinates, with a heatmap figure and
the resolved settings (``enformer_ism.json``).
"""

from __future__ import annotations

import argparse
import logging
from pathlib import Path
from typing import Any

from .attribute import (
    add_common_arguments,
    input_window,
    load_model,
    n_warnings,
    resolve_head_tracks,
    target_bins,
    write_settings,
)

log = logging.getLogger(__name__)

SETTINGS_NAME = "enformer_ism.json"
_MAX_WINDOW = 100_000


def add_parser(sub: argparse._SubParsersAction) -> argparse.ArgumentParser:
    """Register ``ism``."""
    p = sub.add_parser(
        "ism",
        help="in-silico saturation mutagenesis of a window (every position x 3 alternatives)",
        description=(
            "Mutate every base of --window to each other base, within the model's input window "
            "centred on --region, and record the read-out of the chosen tracks over the target "
            "bins (a gene's TSS bins, explicit bins, or every bin). The conv tower of the "
            "reference is computed once and patched per mutant (exact; --naive runs full "
            "forward passes instead). Writes HDF5/NPZ in basenji's scores.h5 layout and a "
            "heatmap."
        ),
    )
    add_common_arguments(p)
    p.add_argument(
        "--region",
        required=True,
        metavar="CHR:START-END",
        help="region (1-based inclusive); the model's input window is centred on it",
    )
    p.add_argument(
        "--window",
        required=True,
        metavar="CHR:START-END",
        help="the bases to mutate (1-based inclusive), inside the input window",
    )
    p.add_argument(
        "--reduce",
        default="sum",
        choices=["sum", "mean"],
        help="how the target bins are combined (default sum)",
    )
    p.add_argument(
        "--naive",
        action="store_true",
        help="full forward pass per mutant (slower; for comparison with the exact reuse)",
    )
    p.add_argument(
        "--format", default="h5", choices=["h5", "npz"], help="array file format (default h5)"
    )
    return p


def run(args: argparse.Namespace) -> dict[str, Any]:
    """Run the mutagenesis and write the files; return the summary."""
    import numpy as np

    from ..data.genome import Genome, parse_region
    from ..data.sequence import one_hot
    from ..interpret.ism import saturation_mutagenesis, write_ism

    if args.batch_size is not None and args.batch_size < 1:
        raise ValueError(f"--batch-size must be >= 1, got {args.batch_size}")
    if args.gene and not args.gtf:
        raise ValueError("--gene needs --gtf (the annotation to find the gene's TSS in)")
    out = Path(args.out)
    with Genome(args.fasta) as genome:
        region = parse_region(args.region)
        mutate = parse_region(args.window)
        chrom = genome.resolve_chrom(region.chrom)
        if genome.resolve_chrom(mutate.chrom) != chrom:
            raise ValueError(f"--window is on {mutate.chrom}, --region on {region.chrom}")
        if mutate.length > _MAX_WINDOW:
            raise ValueError(
                f"--window spans {mutate.length:,} bp ({3 * mutate.length:,} mutants); "
                f"mutate at most {_MAX_WINDOW:,} bp per run"
            )
        model, weights_dir = load_model(args)
        cfg = model.config
        length = cfg.sequence_length
        window, seq = input_window(genome, region, length)
        warned = n_warnings(seq, window.to_ucsc())
        if not (window.start <= mutate.start and mutate.end <= window.end):
            raise ValueError(
                f"--window {mutate.to_ucsc()} is not inside the model's input window "
                f"{window.to_ucsc()} (centred on --region)"
            )
        sel = resolve_head_tracks(args, model, weights_dir)
        read_out = target_bins(args, model, chrom, window.start)

    x = one_hot(seq, ambiguous="n")
    result = saturation_mutagenesis(
        model,
        x,
        start=mutate.start - window.start,
        end=mutate.end - window.start,
        head=sel["head"],
        tracks=sel["tracks"],
        bins=read_out["bins"],
        reduce=args.reduce,
        batch_size=args.batch_size or 8,
        exact_reuse=not args.naive,
        progress=not args.quiet,
        device=args.device,
        track_ids=sel["ids"],
        track_labels=sel["labels"],
        chrom=chrom,
        input_start=window.start,
    )
    settings = {
        "command": "enformer ism",
        "weights": args.weights,
        "fasta": args.fasta,
        "region": args.region,
        "input_window": {"chrom": chrom, "start": window.start, "end": window.end},
        "mutated": {"chrom": chrom, "start": mutate.start, "end": mutate.end},
        "head": sel["head"],
        "tracks": sel["tracks"],
        "track_identifiers": sel["ids"],
        "track_sheet": sel["sheet"],
        "bins": read_out["bins"],
        "bins_from": read_out["how"],
        "reduce": args.reduce,
        "method": result.method,
        "model_description": cfg.description,
    }
    result.settings.update({"bins_from": read_out["how"], "command": "enformer ism"})
    out.mkdir(parents=True, exist_ok=True)
    files: list[dict[str, Any]] = []
    path = write_ism(result, out / f"ism.{args.format}")
    files.append({"path": str(path), "kind": args.format, "shape": list(result.scores.shape)})
    if args.plot != "none":
        from ..interpret import plots

        fig_path = out / f"ism.{args.plot}"
        plots.plot_ism(result, path=fig_path)
        files.append({"path": str(fig_path), "kind": args.plot, "figure": "ism heatmap"})
    settings_path = write_settings(out, SETTINGS_NAME, settings, files)
    eff = result.effects
    flat = int(np.argmax(np.abs(eff).max(axis=-1)))
    p, b = divmod(flat, 4)
    summary: dict[str, Any] = {
        "out": str(out),
        "model_description": cfg.description or None,
        "input_window": window.to_ucsc(),
        "mutated": mutate.to_ucsc(),
        "mutants": int(3 * result.n_positions),
        "read_out": f"{args.reduce} of {sel['head']} tracks {sel['tracks']} over "
        f"{len(read_out['bins'])} bin(s) ({read_out['how']})",
        "method": result.method,
        "reference": [float(v) for v in result.reference],
        "largest_effect": {
            "position": f"{chrom}:{mutate.start + p + 1:,}",
            "ref": result.sequence[p],
            "alt": "ACGT"[b],
            "effects": [float(v) for v in eff[p, b]],
        },
        "files": files,
        "settings": str(settings_path),
    }
    if warned:
        summary["warnings"] = warned
    summary["_text"] = _render(summary)
    return summary


def _render(s: dict[str, Any]) -> str:
    lines = []
    if s.get("model_description"):
        lines.append(f"model: {s['model_description']}")
    lines += [
        f"ISM of {s['mutated']} ({s['mutants']:,} mutants, {s['method']}) in {s['input_window']}",
        f"read-out: {s['read_out']}",
        f"reference: {', '.join(f'{v:.6g}' for v in s['reference'])}",
    ]
    le = s["largest_effect"]
    lines.append(
        f"largest effect: {le['position']} {le['ref']}>{le['alt']} "
        f"({', '.join(f'{v:+.4g}' for v in le['effects'])})"
    )
    lines.append(f"wrote {len(s['files'])} file(s) to {s['out']}:")
    lines += [f"  {f['path']}" for f in s["files"]]
    lines.extend(f"warning: {w}" for w in s.get("warnings", []))
    lines.append(f"settings: {s['settings']}")
    return "\n".join(lines)
