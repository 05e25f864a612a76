"""``enformer score``'s calibration options: making a background and scoring against one."""

from __future__ import annotations

import argparse
from typing import Any

__all__ = [
    "add_background_arguments",
    "add_plot_arguments",
    "make_background_from_args",
    "plot_variants_from_args",
]


def add_background_arguments(p: argparse.ArgumentParser) -> None:
    """``--background``, ``--make-background``, ``--random-snvs``, ``--seed``."""
    g = p.add_argument_group("calibration (quantiles against a background)")
    g.add_argument("--background", metavar="NPZ", help="add <stat>_quantile and "
                   "<stat>_signed_quantile columns against this background (made with "
                   "--make-background and the same model, tracks, statistics and window)")
    g.add_argument("--make-background", action="store_true", help="write a background to "
                   "--out (.npz) instead of scores: the given variants themselves (e.g. "
                   "common variants), or --random-snvs near each of them")
    g.add_argument("--random-snvs", type=int, metavar="N", help="with --make-background: N "
                   "random SNVs within a quarter of the output span of each variant, sharing "
                   "its reference window (exact reuse)")
    g.add_argument("--seed", type=int, default=0, help="seed of --random-snvs (default 0)")


def make_background_from_args(args: argparse.Namespace, model: Any, genome: Any,
                              score_args: dict[str, Any]) -> dict[str, Any]:  # fmt: skip
    """Score and save the background that --make-background asks for; the summary."""
    from pathlib import Path

    from ...variants.background import make_background

    if not str(args.out).endswith(".npz"):
        raise ValueError(f"--make-background writes an .npz file; got --out {args.out}")
    if args.random_snvs is not None and args.random_snvs < 1:
        raise ValueError(f"--random-snvs must be >= 1, got {args.random_snvs}")
    background = make_background(model, args.vcf or args.tsv or list(args.variant), genome,
                                 random_snvs=args.random_snvs, seed=args.seed,
                                 **score_args)  # fmt: skip
    path = background.save(Path(args.out))
    meta = background.metadata
    return {"background": str(path), "variants": meta["n"], "source": meta["source"],
            "stats": list(background.values),
            "_text": f"wrote {path}: background of {meta['n']:,} variants ({meta['source']})"}


def add_plot_arguments(p: argparse.ArgumentParser) -> None:
    """``--plot DIR`` and ``--plot-max N``."""
    p.add_argument("--plot", metavar="DIR", help="also draw, per variant, REF and ALT tracks, "
                   "their difference, the genes and (with --genes) each gene's effect as a "
                   "bar, as DIR/<variant>.png (predicts the variant again; .tsv/.parquet out)")
    p.add_argument("--plot-max", type=int, default=20, metavar="N",
                   help="draw at most N variants, largest effect first (default 20)")


def plot_variants_from_args(args: argparse.Namespace, model: Any, genome: Any,
                            sheet: Any) -> list[str]:  # fmt: skip
    """Draw the --plot figures from the scores just written; the files."""
    from pathlib import Path

    import pandas as pd

    from ...interpret.plots import plot_variant
    from ...model.geometry import output_geometry
    from ...variants import make_allele_windows, parse_variant, predict_alleles
    from ...variants.scores import resolve_stats

    out = str(args.out)
    if out.endswith(".parquet"):
        table = pd.read_parquet(out)
    elif ".tsv" in out:
        table = pd.read_csv(out, sep="\t", comment="#")
    else:
        raise ValueError("--plot reads the scores back: use a .tsv or .parquet --out")
    stats = resolve_stats(args.stats)
    stat = "logSED" if "logSED" in stats else stats[0]
    table["size"] = table[stat].abs()
    order = table.groupby("id")["size"].max().sort_values(ascending=False).index
    tracks = sorted(set(table["track"]))[:4]
    geometry = output_geometry(model.config)
    folder = Path(args.plot)
    folder.mkdir(parents=True, exist_ok=True)
    files = []
    for name in order[: max(args.plot_max, 0)]:
        rows = table[table["id"] == name]
        first = rows.iloc[0]
        v = parse_variant(f"{first['chrom']}:{first['pos']}:{first['ref']}>{first['alt']}")
        windows = make_allele_windows([v], genome, geometry.input_length,
                                      on_ref_mismatch="flip")  # fmt: skip
        preds = predict_alleles(model, windows.ref, windows.alt, head=args.head, tracks=tracks,
                                ref_index=windows.ref_index)  # fmt: skip
        start = windows.placements[0].start + geometry.offset
        effects = None
        if "gene_name" in rows:
            genes = rows[rows["gene_region"] == rows["gene_region"].iloc[0]]
            per_gene = genes.groupby(["gene_name", "gene_strand"])[stat].mean()
            tss = {g: first["pos"] - 1 - d * (1 if s == "+" else -1) for g, s, d in zip(
                genes["gene_name"], genes["gene_strand"], genes["tss_distance"], strict=True)}
            effects = [(g, tss[g], float(val)) for (g, _), val in per_gene.items()]
        labels = [sheet[t].identifier if sheet is not None else f"track {t}" for t in tracks]
        safe = "".join(c if c.isalnum() or c in "._-" else "_" for c in str(name))
        path = folder / f"{safe}.png"
        plot_variant(preds.ref[0], preds.alt[0], chrom=v.chrom, start=start,
                     bin_size=geometry.bin_size, position=v.pos0, variant=str(name),
                     labels=labels, gtf=args.genes, gene_effects=effects,
                     effect_label=f"{stat} (mean over tracks)",
                     description=model.config.description or None, path=path)  # fmt: skip
        files.append(str(path))
    return files
