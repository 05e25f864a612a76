"""Gene annotation: one GTF/GFF3 reader, interval queries, and the output bins of genes.

One module to users (``enformer.data.annotation``), in three files: :mod:`.genes` (records,
reader, TSS tables), :mod:`.bins` (positions and intervals to output bins) and :mod:`.index`
(interval queries and the per-window TSS index of variant scoring).

The file is read once into :class:`Gene` objects (with their :class:`Transcript` and exons);
:class:`Annotation` answers interval queries (genes, exons, TSSs overlapping a window) and
:class:`OutputBins` maps genomic positions and intervals to a window's output bins.

Coordinates
-----------
GTF and GFF3 are 1-based with inclusive ends. Everything here is **0-based and half-open**,
like :class:`enformer.data.genome.Interval`: a line ``chr1 ... 11869 14409`` becomes
``start=11868, end=14409``. A TSS is the 0-based position of a feature's 5' base: ``start``
on the ``+`` strand, ``end - 1`` on the ``-`` strand.

Output bins
-----------
Output bin ``i`` of a window covers the genomic bases ``[s + i * bin_size, s + (i + 1) *
bin_size)`` with ``s = window_start + offset``: ``offset`` is the model's crop (40,960 bp for
the published model, whose 896 bins start 320 bins of 128 bp into the 196,608-bp input), taken
from the geometry (:class:`enformer.model.geometry.OutputGeometry` or anything with ``offset``,
``bin_size`` and ``n_bins``). **The TSS bins** of a gene are, for each TSS inside the output,
the ``width`` bins ``b - width // 2 .. b - width // 2 + width - 1`` around the bin ``b``
holding it (``width=3``: ``b-1, b, b+1``; an even width takes the extra bin on the lower-index
side), clipped to ``[0, n_bins)``; a TSS outside the output contributes none. The same rule
picks the bins around a variant (:func:`center_bins`).
"""

from .bins import OutputBins, center_bins, tss_bin, tss_bins
from .genes import TSS, Gene, Transcript, find_gene, read_gtf, read_gtf_tss, tss_table
from .index import Annotation, GeneBins, TSSIndex, chrom_aliases

__all__ = [
    "TSS",
    "Annotation",
    "Gene",
    "GeneBins",
    "OutputBins",
    "TSSIndex",
    "Transcript",
    "center_bins",
    "chrom_aliases",
    "find_gene",
    "read_gtf",
    "read_gtf_tss",
    "tss_bin",
    "tss_bins",
    "tss_table",
]
