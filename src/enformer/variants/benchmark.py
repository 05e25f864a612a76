"""The eQTL benchmark: do predicted effects separate causal variants from matched negatives?

The task on which the field compares sequence models (Enformer reached AUROC 0.77 in an
independent benchmark; AlphaGenome reports 0.80): score fine-mapped eQTLs (positives) and
negatives matched to them, rank all by the size of the predicted effect, and report the area
under the ROC curve and the average precision; where the eQTL's effect direction is known,
also how often the predicted sign agrees.

:func:`auroc` and :func:`average_precision` are the metrics as pure functions;
:func:`run_eqtl_benchmark` reads the variants, draws negatives (random SNVs of the same real
sequence near each positive, seeded) unless given, scores everything with
:func:`~enformer.variants.score.score_variants` and writes ``scores.tsv``, ``metrics.json``
(the command draws ``roc.png`` with :func:`enformer.interpret.plots.plot_roc`).
"""

from __future__ import annotations

import json
import os
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from ..data.genome import Genome
from ..io.jobs import write_bytes_atomic, write_json_atomic
from .background import draw_random_snvs

__all__ = ["auroc", "average_precision", "roc_curve", "run_eqtl_benchmark"]


def auroc(scores: Sequence[float], labels: Sequence[int]) -> float:
    """Area under the ROC curve: the probability that a random positive scores above a random
    negative (ties count one half), from the ranks (Mann-Whitney U)."""
    s, y = np.asarray(scores, dtype=np.float64), np.asarray(labels).astype(bool)
    n_pos, n_neg = int(y.sum()), int((~y).sum())
    if n_pos == 0 or n_neg == 0:
        return float("nan")
    _, tie, counts = np.unique(s, return_inverse=True, return_counts=True)
    ends = np.cumsum(counts)
    ranks = ((ends - counts + 1 + ends) / 2)[tie]  # 1-based ranks, ties share their mean
    return float((ranks[y].sum() - n_pos * (n_pos + 1) / 2) / (n_pos * n_neg))


def _thresholds(scores: np.ndarray, labels: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """True and false positives at every distinct threshold, highest first."""
    order = np.argsort(-scores, kind="mergesort")
    s, y = scores[order], labels[order]
    last = np.r_[np.flatnonzero(np.diff(s)), len(s) - 1]  # last index of each distinct score
    tp = np.cumsum(y)[last]
    return tp, (last + 1) - tp


def average_precision(scores: Sequence[float], labels: Sequence[int]) -> float:
    """Average precision: ``sum_k (R_k - R_{k-1}) P_k`` over the distinct thresholds, highest
    first (the step-wise area under the precision-recall curve)."""
    s, y = np.asarray(scores, dtype=np.float64), np.asarray(labels).astype(np.int64)
    if y.sum() == 0:
        return float("nan")
    tp, fp = _thresholds(s, y)
    precision, recall = tp / (tp + fp), tp / y.sum()
    return float(np.sum(np.diff(np.r_[0.0, recall]) * precision))


def roc_curve(scores: Sequence[float], labels: Sequence[int]) -> tuple[np.ndarray, np.ndarray]:
    """False- and true-positive rates at every distinct threshold, from (0, 0) to (1, 1)."""
    s, y = np.asarray(scores, dtype=np.float64), np.asarray(labels).astype(np.int64)
    tp, fp = _thresholds(s, y)
    return np.r_[0.0, fp / max((1 - y).sum(), 1)], np.r_[0.0, tp / max(y.sum(), 1)]


def _info(path: str | os.PathLike[str], fields: Sequence[str]) -> dict[tuple, dict[str, Any]]:
    """INFO values of the named fields per ``(chrom, pos, ref, alt)``."""
    from cyvcf2 import VCF

    out: dict[tuple, dict[str, Any]] = {}
    vcf = VCF(str(path))
    try:
        for rec in vcf:
            values = {f: rec.INFO.get(f) for f in fields if f}
            for alt in rec.ALT:
                out[(rec.CHROM, rec.POS, rec.REF, alt)] = values
    finally:
        vcf.close()
    return out


def _per_variant(table: Any, stat: str, genes: dict[tuple, str | None]) -> Any:
    """One row per variant: the row (gene x track) with the largest ``|stat|``, or, when the
    variant names a gene, that gene's largest."""
    keys = list(zip(table["chrom"], table["pos"], table["ref"], table["alt"], strict=True))
    table = table.assign(key=keys, size=table[stat].abs())
    if "gene_name" in table:
        wanted = table["key"].map(genes)
        named = wanted.notna() & (wanted != "")
        table = table[~named | (table["gene_name"] == wanted) | (table["gene_id"] == wanted)]
    best = table.dropna(subset=["size"]).sort_values("size", ascending=False)
    return best.drop_duplicates("key").set_index("key")


def run_eqtl_benchmark(
    model: Any,
    genome: Genome | str | os.PathLike[str],
    positives: str | os.PathLike[str],
    out_dir: str | os.PathLike[str],
    *,
    negatives: str | os.PathLike[str] | None = None,
    draw_negatives: int = 5,
    distance: int = 10_000,
    seed: int = 0,
    stat: str = "logSED",
    label_field: str | None = None,
    sign_field: str | None = None,
    gene_field: str | None = None,
    **score_args: Any,
) -> tuple[dict[str, Any], Any]:
    """Score labelled variants; write ``scores.tsv`` and ``metrics.json``.

    Parameters
    ----------
    model, genome
        As for :func:`~enformer.variants.score.score_variants`.
    positives
        VCF of the eQTLs; every record is a positive, unless ``label_field`` names an INFO
        field holding 1 / 0 (then that file holds both classes).
    out_dir
        Output folder.
    negatives
        VCF of negatives (label 0). Default: ``draw_negatives`` random SNVs within
        ``distance`` bp of each positive, from the same real sequence (REF from the genome,
        positions with A/C/G/T only, never a positive's position), seeded by ``seed``.
    stat
        The statistic ranked (default ``logSED``); a variant's score is its largest ``|stat|``
        over the scored tracks (and genes, or the gene named in ``gene_field``).
    sign_field
        INFO field with the eQTL's effect (slope / beta): the report gives how often the
        predicted sign agrees, over positives that have one.
    **score_args
        To :func:`~enformer.variants.score.score_variants` (``tracks``, ``track_sheet``,
        ``genes_gtf``, ``gene_score``, ``center_bins``, ``head``, ``rc``, ...).

    Returns
    -------
    tuple
        The metrics (``auroc``, ``auprc``, ``n_positive``, ``n_negative``,
        ``sign_agreement``, the files written) and the per-variant table (``label``,
        ``score`` = the ranked ``|stat|``, ``signed``, ``gene``, ``track``); the ROC figure
        is :func:`enformer.interpret.plots.plot_roc` of it.
    """
    import pandas as pd

    from .io import iter_records
    from .records import Variant
    from .score import score_variants

    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    records = [r for r in iter_records(positives) if isinstance(r, Variant)]
    if not records:
        raise ValueError(f"{positives} holds no variants to benchmark")
    info = _info(positives, [label_field, sign_field, gene_field])
    label = {(r.chrom, r.pos, r.ref, r.alt): 1 for r in records}
    if label_field:
        label = {k: int(bool(info.get(k, {}).get(label_field))) for k in label}
    own = not isinstance(genome, Genome)
    genome_obj = Genome(genome) if own else genome
    try:
        if negatives is not None:
            extra = [r for r in iter_records(negatives) if isinstance(r, Variant)]
            drawn = [f"{r.chrom}:{r.pos}:{r.ref}>{r.alt}" for r in extra]
        else:
            drawn = draw_random_snvs([r for r in records if label[(r.chrom, r.pos, r.ref, r.alt)]],
                                     genome_obj, draw_negatives, distance=distance, seed=seed)  # fmt: skip
        variants = [f"{r.chrom}:{r.pos}:{r.ref}>{r.alt}" for r in records]
        for text in drawn:
            c, p, change = text.split(":")
            key = (c, int(p), *change.split(">"))
            if key not in label:
                label[key] = 0
                variants.append(text)
        table = score_variants(model, variants, genome_obj, stats=stat, **score_args)
    finally:
        if own:
            genome_obj.close()
    genes = {k: (v.get(gene_field) if gene_field else None) for k, v in info.items()}
    best = _per_variant(table, stat, genes)
    rows = []
    for key, y in label.items():
        hit = best.loc[[key]].iloc[0] if key in best.index else None
        rows.append({"chrom": key[0], "pos": key[1], "ref": key[2], "alt": key[3], "label": y,
                     "score": np.nan if hit is None else float(hit["size"]),
                     "signed": np.nan if hit is None else float(hit[stat]),
                     "gene": "" if hit is None or "gene_name" not in hit else hit["gene_name"],
                     "track": -1 if hit is None else int(hit["track"]),
                     "eqtl_sign": (info.get(key, {}) or {}).get(sign_field) if sign_field else None})  # fmt: skip
    frame = pd.DataFrame(rows)
    scored = frame.dropna(subset=["score"])
    metrics = _metrics(scored, stat)
    write_bytes_atomic(out / "scores.tsv", frame.to_csv(sep="\t", index=False).encode())
    files = [str(out / "scores.tsv"), str(out / "metrics.json")]
    result = {**metrics, "unscored": int(len(frame) - len(scored)), "files": files,
              "negatives": str(negatives) if negatives else
              f"{draw_negatives} random SNVs within {distance} bp of each positive (seed {seed})"}  # fmt: skip
    write_json_atomic(out / "metrics.json", result)
    return result, frame


def _metrics(scored: Any, stat: str) -> dict[str, Any]:
    y, s = scored["label"].to_numpy(), scored["score"].to_numpy()
    signs = scored[(scored["label"] == 1) & scored["eqtl_sign"].notna()]
    agree = None
    if len(signs):
        agree = float((np.sign(signs["signed"]) == np.sign(signs["eqtl_sign"].astype(float))).mean())
    return {
        "statistic": f"|{stat}|, largest over the scored tracks (and genes)",
        "auroc": auroc(s, y), "auprc": average_precision(s, y),
        "n_positive": int(y.sum()), "n_negative": int((1 - y).sum()),
        "sign_agreement": agree, "n_with_sign": int(len(signs)),
    }  # fmt: skip
