"""``enformer attribute``: contribution scores of a target for a region or a variant.

Writes the per-position contributions as BigWig (genomic coordinates of the model's input
window), the per-base scores as HDF5 or NPZ, a figure, and the resolved settings as
``enformer_attribute.json``.
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import re
from pathlib import Path
from typing import Any

from ..data.tracks import is_index_spec, parse_index_spec
from .options import add_attention_option, apply_attention_option

log = logging.getLogger(__name__)

SETTINGS_NAME = "enformer_attribute.json"


def add_parser(sub: argparse._SubParsersAction) -> argparse.ArgumentParser:
    """Register ``attribute``."""
    p = sub.add_parser(
        "attribute",
        help="contribution scores (gradient x input, saliency, integrated gradients)",
        description=(
            "Explain a target -- chosen tracks summed over output bins (a gene's TSS bins from "
            "a GTF, or explicit bins) -- with per-base contribution scores for the model's "
            "input window around a region or a variant. Writes BigWig (per-position sums, "
            "genomic coordinates), HDF5/NPZ (per-base scores) and a figure."
        ),
    )
    add_common_arguments(p)
    src = p.add_mutually_exclusive_group(required=True)
    src.add_argument(
        "--region",
        metavar="CHR:START-END",
        help="region (1-based inclusive); the model's input window is centred on it",
    )
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
    p.add_argument(
        "--rc",
        action="store_true",
        help="average with the reverse-complement copy (strand pairs swapped with a sheet)",
    )
    p.add_argument(
        "--shifts",
        default="0",
        metavar="S[,S...]",
        help="shifts in bp averaged over, e.g. -1,0,1 (default 0),"
        " each at most half an output bin (|S| <= 64 bp for 128-bp bins;"
        " Enformer was trained with up to 3)",
    )
    p.add_argument(
        "--format",
        default="h5",
        choices=["h5", "npz"],
        help="array file format (default h5)",
    )
    p.add_argument(
        "--on-ref-mismatch",
        default="fail",
        choices=["fail", "flip"],
        help="--variant whose REF differs from the genome: fail (default), or flip when the "
        "genome carries ALT",
    )
    if hasattr(p, "_negative_number_matcher"):
        p._negative_number_matcher = re.compile(r"^-\d+(,\s*-?\d+)*$|^-\d*\.\d+$")
    return p


def add_common_arguments(p: argparse.ArgumentParser) -> None:
    """Options shared by ``attribute`` and ``ism``."""
    p.add_argument("--weights", required=True, metavar="DIR|NAME", help="checkpoint or hub name")
    p.add_argument("--fasta", required=True, metavar="FASTA", help="indexed genome FASTA")
    p.add_argument("--head", help="model head (default: 'human' if present, else the first)")
    p.add_argument(
        "--tracks",
        required=True,
        metavar="SELECTION",
        help="tracks of the target: indices '0,5,10-20', or with a track sheet identifiers, "
        "'assay:CAGE', 'search:K562' (several tracks are summed)",
    )
    p.add_argument(
        "--targets", metavar="SHEET", help="track sheet file, or folder holding targets_{head}.txt"
    )
    where = p.add_mutually_exclusive_group()
    where.add_argument("--gene", metavar="NAME", help="read out at this gene's TSS bins (--gtf)")
    where.add_argument(
        "--bins",
        metavar="A-B",
        help="output bins to read out, 0-based, ranges inclusive: '447-449' or '10,12' "
        "(default: every output bin)",
    )
    p.add_argument("--gtf", metavar="GTF", help="gene annotation (for --gene and the figure)")
    p.add_argument(
        "--tss-width", type=int, default=3, help="bins around the TSS for --gene (default 3)"
    )
    p.add_argument("--out", required=True, metavar="DIR", help="output directory")
    p.add_argument(
        "--plot",
        default="png",
        choices=["png", "svg", "none"],
        help="figure format, or none (default png)",
    )
    p.add_argument("--batch-size", type=int, default=None, help="inputs per forward pass")
    p.add_argument("--device", help="torch device, e.g. cpu, cuda (default: cpu)")
    add_attention_option(p)
    p.add_argument("--no-download", action="store_true", help="never download track sheets")


# --------------------------------------------------------------------------------------
# Shared helpers
# --------------------------------------------------------------------------------------


def load_model(args: argparse.Namespace):
    """Load the weights; returns ``(model, weights_dir)``."""
    from ..weights import load_pretrained, weights_dir

    model = load_pretrained(args.weights, progress=not args.quiet)
    apply_attention_option(model, args)
    if model.config.description:
        log.info("model: %s", model.config.description)
    return model, weights_dir(args.weights)


def resolve_head_tracks(args: argparse.Namespace, model, weights_dir: Path | None) -> dict:
    """Head, track indices, identifiers, labels and strand pairs from ``--head/--tracks``."""
    from ..data.tracks import TrackSheet, TrackSheetNotFound, find_track_sheet

    cfg = model.config
    head = args.head or ("human" if "human" in cfg.heads else next(iter(cfg.heads)))
    if head not in cfg.heads:
        raise ValueError(f"the model has no head {head!r}; it has {', '.join(cfg.heads)}")
    n = cfg.heads[head]
    index_only = is_index_spec(args.tracks)
    sheet = None
    try:
        path = find_track_sheet(
            head,
            path=args.targets,
            weights_dir=weights_dir,
            download=not index_only and not args.no_download,
        )
        sheet = TrackSheet.read(path, head=head)
    except TrackSheetNotFound:
        if args.targets or not index_only:
            raise
    if sheet is not None and len(sheet) != n:
        if args.targets or not index_only:
            raise ValueError(
                f"track sheet {sheet.path} has {len(sheet)} tracks but head {head!r} outputs {n}; "
                "pass the sheet that belongs to these weights"
            )
        sheet = None
    if sheet is not None:
        tracks = list(sheet.select(args.tracks))
        ids = [sheet[i].identifier for i in tracks]
        labels = [sheet[i].description for i in tracks]
        pairs = sheet.strand_pair_permutation()
    else:
        tracks = parse_index_spec(args.tracks, n, "track")
        ids, labels, pairs = [str(i) for i in tracks], [""] * len(tracks), None
    if not tracks:
        raise ValueError("the track selection is empty")
    return {
        "head": head,
        "tracks": tracks,
        "ids": ids,
        "labels": labels,
        "strand_pairs": pairs,
        "sheet": None if sheet is None else str(sheet.path),
    }


def target_bins(args: argparse.Namespace, model, chrom: str, window_start: int) -> dict:
    """Output bins of the read-out (``--gene`` / ``--bins`` / all) and how they were chosen."""
    from ..model.geometry import output_geometry
    from ..interpret.annotation import find_gene, read_gtf
    from ..interpret.attribution import tss_bins

    geometry = output_geometry(model.config)
    if args.gene:
        if not args.gtf:
            raise ValueError("--gene needs --gtf (the annotation to find the gene's TSS in)")
        gene = find_gene(read_gtf(args.gtf), args.gene)
        if gene.chrom != chrom:
            raise ValueError(f"gene {gene.name} is on {gene.chrom}, the window on {chrom}")
        bins = tss_bins(
            gene.tss, window_start=window_start, geometry=geometry, width=args.tss_width
        )
        how = f"TSS of {gene.name} ({gene.chrom}:{gene.tss + 1:,}, {gene.strand} strand)"
        return {"bins": bins, "how": how, "gene": gene.name, "tss": gene.tss}
    if args.bins:
        bins = parse_index_spec(args.bins, geometry.n_bins, "bin")
        return {"bins": bins, "how": "--bins", "gene": None, "tss": None}
    return {
        "bins": list(range(geometry.n_bins)),
        "how": "every output bin",
        "gene": None,
        "tss": None,
    }


def input_window(genome, region, length: int):
    """The model's input window centred on ``region`` (an Interval); returns ``(interval, seq)``."""
    from ..data.genome import Interval

    chrom = genome.resolve_chrom(region.chrom)
    window = Interval(chrom, region.start, region.end).resize(length)
    if region.length > length:
        log.warning(
            "region %s is longer than the model's input (%d bp); using the centred %d bp",
            region.to_ucsc(),
            length,
            length,
        )
    return window, genome.fetch(chrom, window.start, window.end)


def n_warnings(seq: str, where: str) -> list[str]:
    """A warning (logged, and returned for the summary) when ``seq`` is mostly ``N``."""
    from ..inference.predict import MOSTLY_N

    frac = (seq.count("N") + seq.count("n")) / max(1, len(seq))
    if frac <= MOSTLY_N:
        return []
    message = (
        f"the input window {where} is {100 * frac:.0f}% N: the model sees little or no DNA "
        "sequence there (an assembly gap?), so its outputs mean little"
    )
    log.warning("%s", message)
    return [message]


def write_settings(out: Path, name: str, settings: dict, files: list[dict]) -> Path:
    """Write ``{"settings": ..., "files": ...}`` as JSON beside the outputs, atomically."""
    path = out / name
    tmp = path.with_name(f".{path.name}.tmp-{os.getpid()}")
    tmp.write_text(
        json.dumps({"settings": settings, "files": files}, indent=2, default=str) + "\n",
        encoding="utf-8",
    )
    os.replace(tmp, path)
    return path


def _parse_shifts(text: str) -> tuple[int, ...]:
    try:
        shifts = tuple(int(s) for s in text.replace(" ", "").split(",") if s)
    except ValueError:
        raise ValueError(f"--shifts must be comma-separated integers; got {text!r}") from None
    return shifts or (0,)


# --------------------------------------------------------------------------------------
# run
# --------------------------------------------------------------------------------------


def run(args: argparse.Namespace) -> dict[str, Any]:
    """Compute contribution scores and write the files; return the summary."""
    import numpy as np
    import torch

    from ..data.genome import Genome, parse_region
    from ..data.sequence import one_hot
    from ..interpret.attribution import (
        Target,
        contribution_scores,
        write_attributions,
        write_bigwig,
    )

    if args.steps < 1:
        raise ValueError(f"--steps must be >= 1, got {args.steps}")
    if args.batch_size is not None and args.batch_size < 1:
        raise ValueError(f"--batch-size must be >= 1, got {args.batch_size}")
    if args.gene and not args.gtf:
        raise ValueError("--gene needs --gtf (the annotation to find the gene's TSS in)")
    shifts = _parse_shifts(args.shifts)
    out = Path(args.out)
    with Genome(args.fasta) as genome:
        # Parse the inputs before the (slow) weights load.
        variant = None
        region = None
        if args.variant:
            from ..variants.records import parse_variant

            variant = parse_variant(args.variant)
            genome.resolve_chrom(variant.chrom)
        else:
            region = parse_region(args.region)
            genome.resolve_chrom(region.chrom)
        model, weights_dir = load_model(args)
        cfg = model.config
        length = cfg.sequence_length
        sel = resolve_head_tracks(args, model, weights_dir)
        if variant is not None:
            from ..variants.sequences import RefMismatchError, allele_sequences

            try:
                alleles = allele_sequences(
                    variant, genome, length, on_ref_mismatch=args.on_ref_mismatch
                )
            except RefMismatchError as err:
                # The library suggests 'skip', which means nothing for a single variant.
                fix = (
                    "check the variant's assembly"
                    if args.on_ref_mismatch == "flip"
                    else "check the variant's assembly, or pass --on-ref-mismatch flip to "
                    "score it when the genome carries ALT"
                )
                raise ValueError(f"variant {variant.label}: {err.reason}; {fix}") from None
            chrom, start = alleles.placement.chrom, alleles.placement.start
            seqs = {"ref": alleles.ref, "alt": alleles.alt}
        else:
            assert region is not None
            window, seq = input_window(genome, region, length)
            chrom, start = window.chrom, window.start
            seqs = {"ref": seq}
        warned = n_warnings(seqs["ref"], f"{chrom}:{start + 1:,}-{start + length:,}")
        read_out = target_bins(args, model, chrom, start)
        target = Target(sel["head"], tracks=sel["tracks"], bins=read_out["bins"], reduce="sum")
        chrom_sizes = genome.chrom_sizes

    x = torch.from_numpy(np.stack([one_hot(s, ambiguous="n") for s in seqs.values()]))
    attr = contribution_scores(
        model,
        x,
        target,
        method=args.method,
        steps=args.steps,
        rc=args.rc,
        shifts=shifts,
        strand_pairs=sel["strand_pairs"] if args.rc else None,
        batch_size=args.batch_size,
        device=args.device,
        progress=not args.quiet,
    )
    names = list(seqs)
    items = []
    for i, name in enumerate(names):
        a = attr[i]
        a.chrom, a.start, a.name = chrom, start, name
        items.append(a)

    out.mkdir(parents=True, exist_ok=True)
    files: list[dict[str, Any]] = []
    settings = {
        "command": "enformer attribute",
        "weights": args.weights,
        "fasta": args.fasta,
        "region": args.region,
        "variant": args.variant,
        "window": {"chrom": chrom, "start": start, "end": start + length},
        "head": sel["head"],
        "tracks": sel["tracks"],
        "track_identifiers": sel["ids"],
        "track_sheet": sel["sheet"],
        "target": target.describe(),
        "target_bins_from": read_out["how"],
        "method": args.method,
        "steps": args.steps if args.method == "integrated_gradients" else None,
        "rc": args.rc,
        "shifts": list(shifts),
        "model_description": cfg.description,
    }
    for a in items:
        suffix = "" if len(items) == 1 else f"_{a.name}"
        bw = write_bigwig(
            out / f"contributions{suffix}.bw", chrom, start, a.per_position, chrom_sizes
        )
        files.append(
            {"path": str(bw), "kind": "bigwig", "allele": a.name, "values": "per-position sum"}
        )
    arr = write_attributions(items, out / f"contributions.{args.format}", settings=settings)
    files.append({"path": str(arr), "kind": args.format, "sequences": names})
    if args.plot != "none":
        files += _figures(args, items, variant, model, x, sel, target, chrom, start, out)
    settings_path = write_settings(out, SETTINGS_NAME, settings, files)
    summary: dict[str, Any] = {
        "out": str(out),
        "model_description": cfg.description or None,
        "window": f"{chrom}:{start + 1:,}-{start + length:,}",
        "target": target.describe(),
        "target_bins_from": read_out["how"],
        "method": args.method,
        "target_value": {a.name: float(a.target_value) for a in items},
        "files": files,
        "settings": str(settings_path),
    }
    if warned:
        summary["warnings"] = warned
    summary["_text"] = _render(summary)
    return summary


def _figures(args, items, variant, model, x, sel, target, chrom, start, out) -> list[dict]:
    """The attribution figure(s) and, for a variant, ref/alt/difference predictions."""
    import torch

    from ..model.geometry import output_geometry
    from ..interpret import plots

    files = []
    fmt = args.plot
    labels = [
        f"{i} {ident} {lab}".strip() if ident != str(i) else f"track {i} {lab}".strip()
        for i, ident, lab in zip(sel["tracks"], sel["ids"], sel["labels"], strict=True)
    ]
    zoom = None
    if variant is not None:
        zoom = (variant.pos0 - 40, variant.pos0 + 40)
    for a in items:
        suffix = "" if len(items) == 1 else f"_{a.name}"
        path = out / f"attribution{suffix}.{fmt}"
        title = f"{a.method}: {target.describe()}"
        if variant is not None:
            title += f"\n{a.name.upper()} allele of {variant.spec}"
        marks = [variant.pos0] if variant is not None else []
        plots.plot_attribution(a, zoom=zoom, marks=marks, gtf=args.gtf, title=title, path=path)
        files.append({"path": str(path), "kind": fmt, "figure": "attribution", "allele": a.name})
    if variant is not None:
        geometry = output_geometry(model.config)
        idx = torch.tensor(sel["tracks"])
        was = model.training
        model.eval()
        try:
            with torch.inference_mode():
                y = model(x.to(model.device))[sel["head"]].index_select(-1, idx.to(model.device))
        finally:
            model.train(was)
        y = y.float().cpu().numpy()
        path = out / f"variant.{fmt}"
        bin0 = start + geometry.offset
        plots.plot_variant(
            y[0],
            y[1],
            chrom=chrom,
            start=bin0,
            bin_size=geometry.bin_size,
            position=variant.pos0,
            variant=variant.spec,
            labels=labels,
            gtf=args.gtf,
            description=model.config.description,
            path=path,
        )
        files.append({"path": str(path), "kind": fmt, "figure": "variant"})
    return files


def _render(s: dict[str, Any]) -> str:
    lines = []
    if s.get("model_description"):
        lines.append(f"model: {s['model_description']}")
    lines.append(f"{s['method']} of {s['target']} ({s['target_bins_from']})")
    lines.append(f"window {s['window']}")
    for name, v in s["target_value"].items():
        lines.append(f"  f({name}) = {v:.6g}")
    lines.append(f"wrote {len(s['files'])} file(s) to {s['out']}:")
    lines += [f"  {f['path']}" for f in s["files"]]
    lines.extend(f"warning: {w}" for w in s.get("warnings", []))
    lines.append(f"settings: {s['settings']}")
    return "\n".join(lines)
