"""``enformer ism``: in-silico saturation mutagenesis of a window of a region.

Every base of ``--window`` is mutated to the three others inside the model's input window
around ``--region``; the read-out (chosen tracks, summed or averaged over the target bins) is
written in basenji's ``scores.h5`` layout with genomic coordinates, with a heatmap figure and
the resolved settings (``enformer_ism.json``).
"""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import Any

from . import options as opt

SETTINGS_NAME = "enformer_ism.json"
_MAX_WINDOW = 100_000

HELP = "in-silico saturation mutagenesis of a window (every position x 3 alternatives)"
DESCRIPTION = """\
Mutate every base of --window to each other base, within the model's input window centred on
--region, and record the read-out of the chosen tracks over the target bins (a gene's TSS bins,
explicit bins, or every bin). The conv tower of the reference is computed once and patched per
mutant (exact; --naive runs full forward passes instead). Writes HDF5/NPZ in basenji's
scores.h5 layout and a heatmap. Finished units of --chunk-positions positions are kept in
OUT/.work: a killed run resumes where it stopped when the same command is run again (other
settings start over); one run at a time per --out."""


def add_parser(sub: argparse._SubParsersAction) -> argparse.ArgumentParser:
    """Register ``ism``."""
    p = opt.add_command(sub, "ism", HELP, DESCRIPTION)
    opt.add_interpret_arguments(p)
    opt.add_window_region_option(p, required=True)
    p.add_argument("--window", required=True, metavar="CHR:START-END",
                   help="the bases to mutate (1-based inclusive), inside the input window")
    p.add_argument("--reduce", default="sum", choices=["sum", "mean"],
                   help="how the target bins are combined (default sum)")
    p.add_argument("--naive", action="store_true", help="full forward pass per mutant (slower; "
                   "for comparison with the exact reuse)")
    p.add_argument("--chunk-positions", type=int, default=64, metavar="N",
                   help="positions per resumable unit: a killed run resumes from the last "
                   "finished unit when run again with the same settings (default 64)")
    opt.add_array_format_option(p)
    return p  # fmt: skip


def _regions(args: argparse.Namespace, genome):
    """``(region, mutated)`` intervals, checked against each other and the size limit."""
    from ..data.genome import parse_region

    region, mutate = parse_region(args.region), parse_region(args.window)
    if genome.resolve_chrom(mutate.chrom) != genome.resolve_chrom(region.chrom):
        raise ValueError(f"--window is on {mutate.chrom}, --region on {region.chrom}")
    if mutate.length > _MAX_WINDOW:
        raise ValueError(
            f"--window spans {mutate.length:,} bp ({3 * mutate.length:,} mutants); "
            f"mutate at most {_MAX_WINDOW:,} bp per run"
        )
    return region, mutate


def run(args: argparse.Namespace) -> dict[str, Any]:
    """Run the mutagenesis and write the files; return the summary."""
    from ..data.genome import Genome
    from ..data.sequence import one_hot
    from ..interpret.ism import ism_job, saturation_mutagenesis, write_ism
    from ..interpret.readout import input_window, mostly_n_warnings

    opt.check_positive(batch_size=args.batch_size, chunk_positions=args.chunk_positions)
    if args.gene and not args.gtf:
        raise ValueError("--gene needs --gtf (the annotation to find the gene's TSS in)")
    out = Path(args.out)
    with Genome(args.fasta) as genome:
        region, mutate = _regions(args, genome)
        model = opt.load_model(args)
        cfg = model.config
        window, seq = input_window(genome, region, cfg.sequence_length)
        warned = mostly_n_warnings(seq, window.to_ucsc())
        if not (window.start <= mutate.start and mutate.end <= window.end):
            raise ValueError(
                f"--window {mutate.to_ucsc()} is not inside the model's input window "
                f"{window.to_ucsc()} (centred on --region)"
            )
        sel = opt.select_from_args(args, cfg)
        read_out = opt.read_out_from_args(args, cfg, window.chrom, window.start)
    chrom = window.chrom
    x, lo, hi = one_hot(seq, ambiguous="n"), mutate.start - window.start, mutate.end - window.start
    batch, method = args.batch_size or 8, "naive" if args.naive else "exact_reuse"
    with ism_job(out, model, x, start=lo, end=hi, head=sel.head, tracks=sel.indices,
                 bins=read_out.bins, reduce=args.reduce, method=method, batch_size=batch,
                 unit_positions=args.chunk_positions) as work:  # fmt: skip
        result = saturation_mutagenesis(
            model, x, start=lo, end=hi, head=sel.head, tracks=sel.indices, bins=read_out.bins,
            reduce=args.reduce, batch_size=batch, exact_reuse=not args.naive,
            progress=not args.quiet, device=args.device, track_ids=sel.names,
            track_labels=sel.descriptions, chrom=chrom, input_start=window.start, work=work,
        )  # fmt: skip
    settings = {
        "command": "enformer ism", "weights": args.weights, "fasta": args.fasta,
        "region": args.region,
        "input_window": {"chrom": chrom, "start": window.start, "end": window.end},
        "mutated": {"chrom": chrom, "start": mutate.start, "end": mutate.end},
        "head": sel.head, "tracks": sel.indices, "track_identifiers": sel.names,
        "track_sheet": sel.sheet_path, "bins": read_out.bins, "bins_from": read_out.how,
        "reduce": args.reduce, "method": result.method, "model_description": cfg.description,
    }  # fmt: skip
    result.settings.update({"bins_from": read_out.how, "command": "enformer ism"})
    out.mkdir(parents=True, exist_ok=True)
    path = write_ism(result, out / f"ism.{args.format}")
    files = [{"path": str(path), "kind": args.format, "shape": list(result.scores.shape)}]
    if args.plot != "none":
        from ..interpret import plots

        fig_path = out / f"ism.{args.plot}"
        plots.plot_ism(result, path=fig_path)
        files.append({"path": str(fig_path), "kind": args.plot, "figure": "ism heatmap"})
    p, b, effects = result.largest_effect()
    summary: dict[str, Any] = {
        "out": str(out), "model_description": cfg.description or None,
        "input_window": window.to_ucsc(), "mutated": mutate.to_ucsc(),
        "mutants": int(3 * result.n_positions),
        "read_out": f"{args.reduce} of {sel.head} tracks {sel.indices} over "
        f"{len(read_out.bins)} bin(s) ({read_out.how})",
        "method": result.method, "reference": [float(v) for v in result.reference],
        "largest_effect": {
            "position": f"{chrom}:{mutate.start + p + 1:,}", "ref": result.sequence[p],
            "alt": "ACGT"[b], "effects": [float(v) for v in effects],
        },
        "files": files,
        "settings": str(opt.write_settings(out, SETTINGS_NAME, settings, files)),
    }  # fmt: skip
    return opt.finish_summary(summary, warned, _render)


def _render(s: dict[str, Any]) -> str:
    le = s["largest_effect"]
    lines = [f"model: {s['model_description']}"] if s.get("model_description") else []
    lines += [
        f"ISM of {s['mutated']} ({s['mutants']:,} mutants, {s['method']}) in {s['input_window']}",
        f"read-out: {s['read_out']}",
        f"reference: {', '.join(f'{v:.6g}' for v in s['reference'])}",
        f"largest effect: {le['position']} {le['ref']}>{le['alt']} "
        f"({', '.join(f'{v:+.4g}' for v in le['effects'])})",
    ]
    return "\n".join(lines + opt.render_files(s))
