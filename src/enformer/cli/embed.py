"""``enformer embed``: trunk embeddings of regions, sequences or variants' REF/ALT windows."""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import Any

from . import options as opt

HELP = "write the trunk embedding (the per-bin vectors the heads read) of regions or variants"
DESCRIPTION = """\
Embed genomic regions (each as one model window centred on it), FASTA sequences of the
model's input length, or the REF and ALT windows of variants (built as `enformer score`
builds them) and write the trunk embedding (2 x channels features per bin: 3,072 for the
published model) at chosen bins or pooled, as one table with coordinates: HDF5, NPZ or
Parquet. A killed run resumes when the same command is run again."""


def add_parser(sub: argparse._SubParsersAction) -> argparse.ArgumentParser:
    """Register ``embed``."""
    p = opt.add_command(sub, "embed", HELP, DESCRIPTION)
    src = opt.add_genomic_inputs(
        p, "FASTA of sequences of the model's input length", chromosomes=False
    )
    src.add_argument("--vcf", metavar="VCF", help="variants (VCF/TSV): REF and ALT windows")
    p.add_argument("--on-ref-mismatch", choices=["fail", "skip", "flip"], default="fail",
                   help="a variant whose REF differs from the genome (default: fail)")  # fmt: skip
    p.add_argument("--bins", default="all", metavar="all|center|I:J",
                   help="output bins to keep: all, center (bin n_bins//2, where a variant "
                   "sits) or a slice I:J (default all)")  # fmt: skip
    p.add_argument(
        "--pool",
        choices=["mean", "tss"],
        help="mean: average the chosen bins; tss: one row per gene with a TSS in "
        "the window, the mean over its TSS bins (needs --genes; ignores --bins)",
    )
    p.add_argument("--genes", metavar="GTF", help="gene annotation for --pool tss")
    p.add_argument("--out", required=True, metavar="DIR", help="output directory")
    p.add_argument("--format", choices=["h5", "npz", "parquet"], default="h5",
                   help="table format (default h5)")  # fmt: skip
    p.add_argument("--overwrite", action="store_true",
                   help="replace an earlier run's embeddings (other settings)")  # fmt: skip
    opt.add_rc_option(p, "average with the reverse complement's embedding (bins flipped back)")
    opt.add_batch_size_option(p, 1, "windows per forward pass")
    opt.add_device_option(p)
    opt.add_dtype_option(p)
    opt.add_attention_option(p)
    opt.add_chrom_alias_option(p)
    return p


def _inputs(args: argparse.Namespace, genome: Any, length: int) -> list[Any]:
    """The windows to embed, read and checked before the weights load."""
    from ..data.genome import read_fasta_sequences
    from ..inference.embed import region_inputs, sequence_inputs
    from ..inference.tiling import read_regions
    from ..variants import read_variants
    from ..variants.embed import variant_embed_inputs

    if args.sequences:
        return sequence_inputs(read_fasta_sequences(args.sequences), length)
    if args.vcf:
        inputs, _ = variant_embed_inputs(read_variants(args.vcf), genome, length,
                                         on_ref_mismatch=args.on_ref_mismatch)  # fmt: skip
        if not inputs:
            raise ValueError(f"{args.vcf}: no variant could be placed on the genome")
        return inputs
    return region_inputs(genome, read_regions(genome, regions=args.region, bed=args.bed), length)


def run(args: argparse.Namespace) -> dict[str, Any]:
    """Embed and write the table; return the summary."""
    from ..data.annotation import TSSIndex
    from ..data.genome import Genome
    from ..inference.embed import embed_bins
    from ..inference.embed_files import embed_to_files
    from ..io.jobs import genome_fingerprint
    from ..model.geometry import output_geometry

    options = opt.predict_options(args)
    if not args.sequences and not args.fasta:
        raise ValueError("--fasta is required with --region, --bed and --vcf")
    if (args.pool == "tss") != bool(args.genes):
        raise ValueError("--pool tss and --genes GTF go together; give both or neither")
    genome = Genome(args.fasta, chrom_aliases=args.chrom_alias) if args.fasta else None
    try:
        model = opt.load_model(args)
        length = model.config.sequence_length
        embed_bins(args.bins, output_geometry(model.config).n_bins)  # a bad --bins fails here
        inputs = _inputs(args, genome, length)
        genes = TSSIndex.from_gtf(args.genes) if args.genes else None
        identity = {
            "genome": genome_fingerprint(genome) if genome else None,
            "genes": str(Path(args.genes).resolve()) if args.genes else None,
        }
        sources = {"region": args.region, "bed": args.bed, "sequences": args.sequences,
                   "vcf": args.vcf}  # fmt: skip
        settings = {"command": "enformer embed", "weights": args.weights, "fasta": args.fasta,
                    "inputs": sources, "genes": args.genes, "device": args.device}  # fmt: skip
        result = embed_to_files(
            model, args.out, inputs, bins=args.bins, pool=args.pool, genes=genes,
            format=args.format, rc=options.rc, batch_size=options.batch_size,
            device=options.device, dtype=options.torch_dtype, identity=identity,
            settings=settings, overwrite=args.overwrite, progress=not args.quiet,
        )  # fmt: skip
    finally:
        if genome is not None:
            genome.close()
    summary = {"command": "embed", **result.to_dict()}
    summary["_text"] = (
        f"embedded {result.units} window(s) ({result.computed} computed, {result.reused} "
        f"reused): {result.rows} row(s) of {result.features} features\n"
        + "\n".join(f"  {f}" for f in [*result.files, result.settings_path])
    )
    return summary
