"""``enformer info``: the model's configuration, size, heads and tracks."""

from __future__ import annotations

import argparse
from typing import Any

import torch

from ..model import Enformer, EnformerConfig
from . import options as opt

HELP = "show a model's configuration, parameter count, heads and tracks"
DESCRIPTION = """\
Show a model's configuration, parameter count, heads and output geometry. Without --weights,
describes a preset (the published model by default). With --search or --tracks, lists matching
tracks from the Basenji2 track sheets (targets_human.txt / targets_mouse.txt)."""


def add_parser(sub: argparse._SubParsersAction) -> argparse.ArgumentParser:
    """Register ``info``."""
    p = opt.add_command(sub, "info", HELP, DESCRIPTION)
    p.add_argument("--weights", metavar="DIR|NAME", help="checkpoint directory, file or hub "
                   "name (e.g. EleutherAI/enformer-official-rough)")
    p.add_argument("--preset", default="official", choices=["official", "tiny"],
                   help="configuration to describe when no --weights are given (default: "
                   "official)")  # fmt: skip
    opt.add_head_option(p, "head whose tracks to list (default: every head)")
    opt.add_targets_option(p, metavar="PATH")
    p.add_argument(
        "--search",
        metavar="TEXT",
        help="list tracks whose description matches TEXT (e.g. K562, 'assay:CAGE')",
    )
    opt.add_tracks_option(
        p, "list tracks by selection: indices '0,5,10-20', identifiers, 'assay:DNASE', 'all'"
    )
    p.add_argument("--limit", type=int, default=20, help="tracks to show per head (default 20)")
    opt.add_no_download_option(
        p, "never download track sheets; only use local files and the cache"
    )
    return p


def run(args: argparse.Namespace) -> dict[str, Any]:
    """Describe the model (and tracks, when asked)."""
    from ..inference.reports import model_summary, render_model_summary, track_entry
    from ..inference.selection import resolve_heads, select_tracks, track_sheet_for

    if args.weights:
        from ..weights import load_pretrained

        model = load_pretrained(args.weights)
        cfg = model.config
        source = args.weights
    else:
        cfg = EnformerConfig.preset(args.preset)
        with torch.device("meta"):
            model = Enformer(cfg)
        source = f"preset:{args.preset} (architecture only, no weights)"

    summary = model_summary(model, source)

    want_tracks = bool(args.search or args.tracks or args.targets)
    tracks: dict[str, Any] = {}
    notes: list[str] = []
    heads = resolve_heads(args.head, cfg)
    errors: list[str] = []
    spec = args.tracks or (args.search and f"search:{args.search}")
    for head in heads:
        sheet = track_sheet_for(
            args.weights, head, args.targets, n_tracks=cfg.heads[head],
            download=want_tracks and not args.no_download, required=bool(spec),
        )  # fmt: skip
        if sheet is None:
            notes.append(
                f"no track sheet found for head {head!r}; pass --targets targets_{head}.txt "
                "or --search TEXT to download it"
            )
            continue
        entry: dict[str, Any] = {"sheet": str(sheet.path), "assays": sheet.assay_counts()}
        if spec:
            try:
                chosen = select_tracks(cfg, spec, head=head, sheet=sheet).indices
            except ValueError as err:
                if len(heads) == 1:
                    raise
                chosen = []  # another head may match; an empty list here is an answer
                errors.append(str(err))
            entry["matches"] = len(chosen)
            entry["tracks"] = [track_entry(sheet[i]) for i in chosen[: args.limit]]
        tracks[head] = entry
    if errors and len(errors) == len(heads):
        raise ValueError("; ".join(f"{h}: {e}" for h, e in zip(heads, errors, strict=True)))
    if tracks:
        summary["tracks"] = tracks
    if notes:
        summary["notes"] = notes
    summary["_text"] = render_model_summary(summary)
    return summary
