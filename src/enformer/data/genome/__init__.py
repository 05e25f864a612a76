"""Reference-genome access: intervals, regions, BED files and an indexed FASTA reader.

Coordinates are 0-based and half-open (as in BED files and Python slices), except in the
human-facing text of :func:`parse_region` and :meth:`Interval.to_ucsc`, which are 1-based and
inclusive (samtools/UCSC). The centre of an interval is ``(start + end) // 2``; a window of
width ``w`` centred on ``c`` is ``[c - w // 2, c - w // 2 + w)`` (see :mod:`.regions`).

The package's parts, by job:

* :mod:`.regions` -- :class:`Interval`, :func:`parse_region`, :func:`read_bed`;
* :mod:`.fasta` -- FASTA files: :func:`chrom_sizes`, :func:`read_fasta_sequences` and the
  indexed (plain or bgzip) reader behind :class:`Genome`;
* :mod:`.names` -- chromosome-name aliasing (``chr1``/``1``, ``chrM``/``MT``);
* :mod:`.reference` -- :class:`Genome`, :class:`Window`, :class:`GenomeWarning`.

Reading FASTA files needs the optional dependencies ``pysam`` (preferred; it reads bgzip-
compressed FASTA) or ``pyfaidx``: ``pip install 'enformer[genome]'``. They are imported only when
a :class:`Genome` is opened.
"""

from .fasta import chrom_sizes, read_fasta_sequences
from .reference import Genome, GenomeWarning, Window
from .regions import Interval, parse_region, read_bed
from .textfiles import numbered_lines, parse_start_end

__all__ = [
    "Genome",
    "GenomeWarning",
    "Interval",
    "Window",
    "chrom_sizes",
    "numbered_lines",
    "parse_region",
    "parse_start_end",
    "read_bed",
    "read_fasta_sequences",
]
