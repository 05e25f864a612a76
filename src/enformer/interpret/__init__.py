"""Interpretation: contribution scores, in-silico mutagenesis, attention maps and plots.

* :func:`contribution_scores` -- gradient x input, saliency, integrated gradients for a
  :class:`Target` (tracks x bins; :func:`gene_target` aims at a gene's TSS from a GTF).
* :func:`saturation_mutagenesis` -- every position of a window x 3 alternatives, with exact
  reuse of the conv tower; :func:`write_ism` writes basenji's ``scores.h5`` layout.
* :func:`capture_attention` -- softmax attention weights per layer and head.
* :mod:`enformer.interpret.plots` -- figures (needs matplotlib/logomaker; imported on use).

Genes and their TSS/exon bins come from :mod:`enformer.data.annotation`.
"""

from .attention import AttentionMaps, capture_attention
from .attribution import (
    METHODS,
    Attribution,
    Target,
    contribution_scores,
    gene_target,
    tss_bins,
    write_attributions,
    write_bigwig,
)
from .ism import ISM, read_ism, saturation_mutagenesis, write_ism
from .motifs import Motif, plant_motif, read_meme

__all__ = [
    "ISM",
    "METHODS",
    "AttentionMaps",
    "Attribution",
    "Motif",
    "Target",
    "capture_attention",
    "contribution_scores",
    "gene_target",
    "plant_motif",
    "read_ism",
    "read_meme",
    "saturation_mutagenesis",
    "tss_bins",
    "write_attributions",
    "write_bigwig",
    "write_ism",
]
