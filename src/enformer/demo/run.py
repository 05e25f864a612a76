"""``run_demo``: the demo's steps, each window predicted once.

1. load the model and choose the tracks (:func:`demo_tracks`);
2. the input: the synthetic construct or a region of the user's genome (:mod:`.inputs`);
3. predict the model window into BigWig files through
   :func:`~enformer.inference.writers.predict_to_files`; the plot reads the values back from
   those files, so the window runs through the model once;
4. score the variants in memory with :func:`~enformer.variants.score_variants` (the code of
   ``enformer score``) and write ``scores.tsv`` from its frame; the predictions of every
   variant's windows are kept, so the strongest variant's picture needs no second pass;
5. draw and summarise (:mod:`.report`).
"""

from __future__ import annotations

import os
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from ..io.jobs import sequence_digest
from .inputs import DemoInput, construct_input, genome_input
from .report import draw, next_steps, summarise_scores, write_score_files, write_summary

__all__ = ["MINI_DEMO_TRACKS", "AlleleCapture", "DemoModel", "demo_tracks", "run_demo"]

# Tracks shown by default: identifiers in the mini model's sheet (stranded CAGE pair,
# DNase, stranded RNA pair). Other models show their first five tracks unless told.
MINI_DEMO_TRACKS = ("CNhs10752+", "CNhs10752-", "ENCFF890OGQ", "ENCFF520NFI+", "ENCFF520NFI-")


@dataclass
class DemoModel:
    """The model the demo runs, with its head, track sheet and chosen tracks."""

    model: Any
    weights: str
    head: str
    description: str
    sheet: Any  # TrackSheet or None
    selected: list[int]
    labels: list[str]


def demo_tracks(config: Any, head: str, sheet: Any, tracks: Any) -> tuple[list[int], list[str]]:
    """The demo's track selection: indices and plot labels.

    ``tracks`` None: :data:`MINI_DEMO_TRACKS` when ``sheet`` has them all, else the first
    five tracks. Otherwise any selection :func:`enformer.inference.select_tracks` accepts.
    """
    from ..inference.selection import select_tracks

    if tracks is None:
        if sheet is not None and all(t in sheet.identifiers for t in MINI_DEMO_TRACKS):
            tracks = list(MINI_DEMO_TRACKS)
        else:
            tracks = list(range(min(5, config.heads[head])))
    selection = select_tracks(config, tracks, head=head, sheet=sheet)
    if sheet is not None:
        pairs = zip(selection.identifiers, selection.descriptions, strict=True)
        labels = [f"{ident} {description}" for ident, description in pairs]
    else:
        labels = [f"track {i}" for i in selection.indices]
    return list(selection.indices), labels


def load_model(weights: str, tracks: Any, progress: bool) -> DemoModel:
    """Load ``weights``, find its track sheet (if bundled or cached) and select ``tracks``."""
    from ..inference.selection import default_head, track_sheet_for
    from ..weights import load_pretrained

    model = load_pretrained(weights, progress=progress)
    cfg = model.config
    head = default_head(cfg)
    sheet = track_sheet_for(weights, head, n_tracks=cfg.heads[head])
    description = cfg.description or f"weights: {weights}"
    selected, labels = demo_tracks(cfg, head, sheet, tracks)
    return DemoModel(model, weights, head, description, sheet, selected, labels)


class AlleleCapture:
    """A ``predictor`` for :func:`~enformer.variants.score_variants` that keeps what it predicts.

    It predicts with :func:`~enformer.variants.predictors.predict_alleles_reuse` (the scorer's
    default) and keeps, per alternative window (by digest), the reference and alternative
    predictions, so that a variant's picture reuses the scoring pass.
    """

    def __init__(self) -> None:
        self.pairs: dict[str, tuple[np.ndarray, np.ndarray]] = {}

    def __call__(self, model: Any, ref_onehot: Any, alt_onehot: Any, **kwargs: Any) -> Any:
        """Predict as the scorer's default predictor does, keeping each allele pair."""
        from ..variants.predictors import predict_alleles_reuse

        preds = predict_alleles_reuse(model, ref_onehot, alt_onehot, **kwargs)
        ref_index = kwargs.get("ref_index")
        if ref_index is None:
            ref_index = np.arange(len(preds.alt))
        for k in range(len(preds.alt)):
            key = sequence_digest(np.asarray(alt_onehot[k]))
            self.pairs[key] = (preds.ref[int(ref_index[k])], preds.alt[k])
        return preds

    def alleles(
        self, dm: DemoModel, genome: Any, variant: dict[str, Any], on_ref_mismatch: str
    ) -> tuple[np.ndarray, np.ndarray, int] | None:
        """``(ref, alt, window_start)`` of a scored ``variant``; None if it cannot be placed."""
        from ..variants import Variant, make_allele_windows

        v = Variant(str(variant["chrom"]), int(variant["pos"]), variant["ref"], variant["alt"])
        windows = make_allele_windows(
            [v],
            genome,
            dm.model.config.sequence_length,
            on_ref_mismatch=on_ref_mismatch,  # type: ignore[arg-type]
        )
        if len(windows.placements) != 1:
            return None
        key = sequence_digest(windows.alt[0])
        if key not in self.pairs:  # not met while scoring (not expected): predict it now
            self(dm.model, windows.ref, windows.alt, ref_index=windows.ref_index,
                 head=dm.head, tracks=dm.selected)  # fmt: skip
        ref, alt = self.pairs[key]
        return ref, alt, windows.placements[0].start


def _check_options(fasta: Any, region: Any, vcf: Any, gtf: Any) -> None:
    if (fasta is None) != (region is None):
        raise ValueError("give --fasta and --region together (or neither, for the construct)")
    if fasta is None and (vcf is not None or gtf is not None):
        raise ValueError("--vcf and --gtf go with --fasta/--region (the construct has its own)")
    for label, path in (("genome FASTA", fasta), ("variant file", vcf), ("GTF", gtf)):
        if path is not None and not Path(path).is_file():
            raise FileNotFoundError(f"{label} not found: {path}")


@dataclass
class WindowPrediction:
    """The model window's predictions: where they lie, their files and their values."""

    span: Any  # Interval of the output bins
    bigwigs: list[str]
    settings_path: str | None
    values: np.ndarray  # (bins, tracks) float32, in the order of DemoModel.selected
    seconds: float


def predict_window(
    dm: DemoModel, inp: DemoInput, genome: Any, out: Path, progress: bool
) -> WindowPrediction:
    """Predict the input's model window into BigWigs under ``out/predictions``, once."""
    from ..data.genome import Interval
    from ..inference.writers import predict_to_files
    from ..model.geometry import output_geometry

    t = time.perf_counter()
    geom = output_geometry(dm.model.config)
    first = inp.window_start + geom.offset
    span = Interval(inp.chrom, first, first + geom.n_bins * geom.bin_size)
    written = predict_to_files(
        dm.model,
        out / "predictions",
        genome=genome,
        regions=[span],
        format="bigwig",
        head=dm.head,
        tracks=dm.selected,
        track_sheet=dm.sheet,
        progress=progress,
        settings={"demo": True, "weights": dm.weights},
        overwrite=True,  # the demo's own folder: a new demo replaces the previous one
    )
    seconds = time.perf_counter() - t
    files = [f for f in written.files if f.format == "bigwig"]
    by_track = {f.track_index: f.path for f in files}
    values = _read_bins([by_track[i] for i in dm.selected], span, geom.n_bins)
    return WindowPrediction(span, [f.path for f in files], written.settings_path, values, seconds)


def _read_bins(paths: list[str], span: Any, n_bins: int) -> np.ndarray:
    """``(n_bins, len(paths))`` float32: each BigWig's bin values over ``span``, as written."""
    import pyBigWig

    columns = []
    for path in paths:
        with pyBigWig.open(str(path)) as bw:
            entries = bw.intervals(span.chrom, span.start, span.end) or ()
        column = np.array([value for _, _, value in entries], dtype=np.float32)
        if column.shape != (n_bins,):
            raise RuntimeError(f"{path} holds {column.size} bins of {span}, expected {n_bins}")
        columns.append(column)
    return np.stack(columns, axis=1)


def score(
    dm: DemoModel, inp: DemoInput, genome: Any, out: Path, on_ref_mismatch: str, progress: bool
) -> tuple[Any, AlleleCapture, float]:
    """Score the input's variants (SAD, logSED) in memory and write the scores files."""
    from ..variants import score_variants

    t = time.perf_counter()
    capture = AlleleCapture()
    frame = score_variants(
        dm.model,
        inp.vcf,
        genome,
        stats=("SAD", "logSED"),
        tracks=dm.selected,
        track_sheet=dm.sheet,
        head=dm.head,
        progress=progress,
        on_ref_mismatch=on_ref_mismatch,  # type: ignore[arg-type]
        predictor=capture,
    )
    seconds = time.perf_counter() - t
    write_score_files(frame, out, variants_file=inp.vcf, weights=dm.weights, seconds=seconds)
    return frame, capture, seconds


def run_demo(
    out_dir: str | os.PathLike[str] = "enformer-demo",
    *,
    weights: str = "mini",
    tracks: Any = None,
    seed: int = 0,
    fasta: str | os.PathLike[str] | None = None,
    region: str | None = None,
    vcf: str | os.PathLike[str] | None = None,
    gtf: str | os.PathLike[str] | None = None,
    chrom_aliases: bool = False,
    on_ref_mismatch: str = "fail",
    progress: bool = False,
    log: Any = None,
) -> dict[str, Any]:
    """Run the demo into ``out_dir``; return its summary (also written as ``summary.json``).

    By default the input is the synthetic construct. With ``fasta`` and ``region`` the same
    report is made for a region of the user's genome instead: the model window is centred on
    the region, the variants come from ``vcf`` (default: example transversions at the region's
    centre and 1 kb either side) and the genes drawn from ``gtf``.

    Parameters
    ----------
    out_dir : str or os.PathLike
        Output folder (created; files in it are overwritten).
    weights : str, optional
        Model to run: ``"mini"`` (bundled, the default) or anything
        :func:`~enformer.weights.load_pretrained` reads.
    tracks : object, optional
        Tracks to write and draw (a :meth:`TrackSheet.select` spec); default a CAGE pair, a
        DNase track and an RNA pair for the mini model, else the first five tracks.
    seed : int, optional
        Seed of the construct's background sequence.
    fasta, region : optional
        An indexed genome FASTA and a region (``chr:start-end``, 1-based inclusive) to use
        instead of the construct; both or neither.
    vcf, gtf : optional
        With ``fasta``: variants to score (VCF or TSV) and genes to draw.
    chrom_aliases : bool, optional
        With ``fasta``: map ``1`` <-> ``chr1`` style names (see :class:`Genome`).
    on_ref_mismatch : {'fail', 'skip', 'flip'}, optional
        With ``vcf``: what to do when a REF allele differs from the genome.
    progress : bool, optional
        Show progress bars.
    log : callable, optional
        Called with one line of text per step (e.g. ``print``).

    Returns
    -------
    dict
        Paths of every file, the model's description, the variant scores and timings.
    """
    from ..data.genome import Genome
    from ..model.geometry import output_geometry

    t0 = time.perf_counter()
    say = log or (lambda _line: None)
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    _check_options(fasta, region, vcf, gtf)
    dm = load_model(weights, tracks, progress)
    cfg = dm.model.config
    say(f"model    {weights}: {dm.description}")
    if fasta is None:
        inp = construct_input(cfg.sequence_length, out, seed)
    else:
        inp = genome_input(cfg.sequence_length, out, fasta, region, vcf, gtf, chrom_aliases)
    say(f"input    {inp.text}")

    geom = output_geometry(cfg)
    with Genome(inp.fasta, chrom_aliases=inp.chrom_aliases) as genome:
        pred = predict_window(dm, inp, genome, out, progress)
        say(f"predict  {len(dm.selected)} tracks x {geom.n_bins} bins of {geom.bin_size} bp -> "
            f"{len(pred.bigwigs)} BigWig files in {out / 'predictions'}")  # fmt: skip
        frame, capture, t_score = score(dm, inp, genome, out, on_ref_mismatch, progress)
        per_variant = summarise_scores(frame, inp.variants)
        n = f"{len(per_variant)} variants x {len(dm.selected)} tracks"
        say(f"score    {n} (SAD, logSED) -> {out / 'scores.tsv'}")

        t = time.perf_counter()
        scored = [v for v in per_variant if np.isfinite(v["max_abs_SAD"])]
        top = max(scored, key=lambda v: v["max_abs_SAD"]) if scored else None
        alleles = None
        if top is not None:  # the strongest variant on its own scoring window
            found = capture.alleles(dm, genome, top, on_ref_mismatch)
            if found is not None:
                alleles = (found[0], found[1], found[2] + geom.offset)
    pictures = draw(
        out,
        values=pred.values,
        span_start=pred.span.start,
        bin_size=geom.bin_size,
        inp=inp,
        labels=dm.labels,
        weights=weights,
        description=dm.description,
        top=top,
        alleles=alleles,
    )
    t_plot = time.perf_counter() - t
    say(f"plot     {pictures.tracks}" + (f", {pictures.variant}" if pictures.variant else ""))
    seconds = {"predict": pred.seconds, "score": t_score, "plot": t_plot}
    seconds["total"] = time.perf_counter() - t0
    summary = _summary(dm, inp, pred, per_variant, top, pictures, out, seconds)
    write_summary(out, summary)
    return summary


def _summary(
    dm: DemoModel,
    inp: DemoInput,
    pred: WindowPrediction,
    per_variant: list[dict[str, Any]],
    top: dict[str, Any] | None,
    pictures: Any,
    out: Path,
    seconds: dict[str, float],
) -> dict[str, Any]:
    """The demo's summary (the ``--json`` schema)."""
    sheet = dm.sheet
    span = pred.span
    return {
        "weights": dm.weights,
        "model_description": dm.model.config.description,
        "head": dm.head,
        "tracks": [
            {
                "index": i,
                "identifier": sheet[i].identifier if sheet is not None else None,
                "label": label,
            }  # fmt: skip
            for i, label in zip(dm.selected, dm.labels, strict=True)
        ],
        "input": inp.info,
        "output_span": {"chrom": span.chrom, "start": span.start, "end": span.end},
        "files": {
            "fasta": str(inp.fasta),
            "gtf": str(inp.gtf) if inp.gtf else None,
            "bed": str(inp.bed) if inp.bed else None,
            "vcf": str(inp.vcf),
            "bigwigs": pred.bigwigs,
            "prediction_settings": pred.settings_path,
            "scores": str(out / "scores.tsv"),
            "tracks_png": str(pictures.tracks),
            "variant_png": str(pictures.variant) if pictures.variant else None,
        },
        "variants": per_variant,
        "strongest_variant": top["id"] if top else None,
        "seconds": {k: round(v, 2) for k, v in seconds.items()},
        "next_steps": next_steps(),
    }
