"""``enformer score``'s calibration options: making a background and scoring against one."""

from __future__ import annotations

import argparse
from typing import Any

__all__ = ["add_background_arguments", "make_background_from_args"]


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
