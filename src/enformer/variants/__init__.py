"""Variant effects: read variants, build allele windows, predict, score and write outputs.

* :mod:`.io` -- :class:`Variant`, VCF/TSV/string readers (streaming, multi-allelic split).
* :mod:`.sequences` -- reference/alternative one-hot windows (placement, indels, REF check).
* :mod:`.scores` -- the statistics (SAD, SAR, logSED, ...) as pure array functions (the TSS
  bins come from :mod:`enformer.data.annotation`).
* :mod:`.score` -- :func:`score_variants` / :func:`write_scores` (resumable file outputs).
"""

from .io import (
    SkippedVariant,
    Variant,
    chunked,
    iter_records,
    parse_variant,
    read_tsv,
    read_variants,
    read_vcf,
)
from .score import (
    AllelePredictions,
    predict_alleles,
    score_variants,
    write_scores,
)
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
    "read_tsv",
    "read_variants",
    "read_vcf",
    "score_variants",
    "write_scores",
]
