"""Variant effects: read variants, build allele windows, predict, score and write outputs.

* :mod:`.records` -- :class:`Variant`, :class:`SkippedVariant`, ``chr:pos:ref>alt`` strings.
* :mod:`.io` -- VCF/TSV readers (streaming, multi-allelic split).
* :mod:`.sequences` -- reference/alternative one-hot windows (placement, indels, REF check).
* :mod:`.scores` -- the statistics (SAD, SAR, logSED, ...) as pure array functions (the TSS
  bins come from :mod:`enformer.data.annotation`).
* :mod:`.predictors` -- :func:`predict_alleles` (full forwards) and :func:`predict_alleles_reuse`
  (exact conv-tower reuse), chosen by ``predictor='naive'|'reuse'``.
* :mod:`.plan` -- validated settings and output metadata of a scoring run.
* :mod:`.chunks` -- scoring one chunk of records.
* :mod:`.outputs` -- Parquet, TSV, HDF5 (``sad.h5``) and VCF writers.
* :mod:`.score` -- :func:`score_variants` / :func:`write_scores` (resumable file outputs).
"""

from .io import iter_records, read_tsv, read_variants, read_vcf
from .predictors import AllelePredictions, predict_alleles, predict_alleles_reuse
from .records import SkippedVariant, Variant, chunked, parse_variant
from .score import score_variants, write_scores
from .scores import SCORE_FORMULAS, compute_scores
from .sequences import (
    PLACEMENT,
    AlleleWindows,
    Placement,
    RefMismatchError,
    allele_sequences,
    group_variants,
    make_allele_windows,
)

__all__ = [
    "PLACEMENT",
    "SCORE_FORMULAS",
    "AlleleWindows",
    "AllelePredictions",
    "Placement",
    "RefMismatchError",
    "SkippedVariant",
    "Variant",
    "allele_sequences",
    "chunked",
    "compute_scores",
    "group_variants",
    "iter_records",
    "make_allele_windows",
    "parse_variant",
    "predict_alleles",
    "predict_alleles_reuse",
    "read_tsv",
    "read_variants",
    "read_vcf",
    "score_variants",
    "write_scores",
]
