"""Variant-effect statistics as pure array functions, and the bins they read.

Every statistic takes the reference and alternative predictions ``ref``, ``alt`` of shape
``(..., bins, tracks)`` (after averaging the reverse-complement/shift copies) and returns
``(..., tracks)``; ``R`` and ``A`` below are those arrays and sums run over the bin axis. The
formulas are in :data:`SCORE_FORMULAS`, which every output's metadata carries.

======== ==================================================================== ======
name     formula                                                              signed
======== ==================================================================== ======
SAD      ``ΣA − ΣR``                                                          yes
SAR      ``Σ[log2(A+1) − log2(R+1)]`` (log, then sum)                         yes
logSED   ``log2(ΣA+1) − log2(ΣR+1)`` (sum, then log); alias ``SADR``          yes
D1       ``Σ|A−R|``                                                           no
D2       ``sqrt(Σ(A−R)²)``                                                    no
SAX      ``(A−R)[b*]``, ``b* = argmax_b |A−R|`` (first on ties)               yes
JS       ``½ Σ[p ln(p/q) + q ln(q/p)]``, ``p = (R+c)/Σ(R+c)``,                no
         ``q = (A+c)/Σ(A+c)``, ``c`` = 25th percentile of R over the bins
REF      ``ΣR``                                                               –
ALT      ``ΣA``                                                               –
======== ==================================================================== ======

Signed statistics change sign when REF and ALT are swapped; unsigned ones do not (JS exactly so
for a fixed pseudocount ``c``: with the default ``c`` taken from R, a swap takes it from the
other allele). All are 0 when ``alt == ref``. Computations run in float64 and return the
inputs' floating dtype (float32 for float32 predictions).

Bins
----
Which bins enter the sums is chosen before scoring: all bins, :func:`center_bins` (``w`` bins
around the variant's bin) or :func:`tss_bins` (``w`` bins around a gene's transcription start
site; CAGE at the 3 bins around a TSS is the usual expression read-out). A TSS maps to a bin
through genomic coordinates: ``bin = (tss − output_start) // bin_size`` where ``output_start``
is the genomic position of output bin 0, **the window's start plus the crop offset** (40,960 bp
for the published model: its 896 bins start 320 bins of 128 bp into the 196,608-bp input).
"""

from __future__ import annotations

import logging
import os
import re
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

import numpy as np

__all__ = [
    "SCORE_ALIASES",
    "SCORE_FORMULAS",
    "SCORE_FUNCTIONS",
    "SIGNED_SCORES",
    "GeneBins",
    "TSSIndex",
    "alt_sum",
    "center_bins",
    "compute_scores",
    "d1",
    "d2",
    "js",
    "log_sed",
    "read_gtf_tss",
    "ref_sum",
    "resolve_stats",
    "sad",
    "sar",
    "sax",
    "tss_bin",
    "tss_bins",
]

logger = logging.getLogger(__name__)

SCORE_FORMULAS: dict[str, str] = {
    "SAD": "SAD = sum_b A - sum_b R",
    "SAR": "SAR = sum_b [log2(A + 1) - log2(R + 1)]",
    "logSED": "logSED = log2(sum_b A + 1) - log2(sum_b R + 1)",
    "SADR": "SADR = logSED = log2(sum_b A + 1) - log2(sum_b R + 1)",
    "D1": "D1 = sum_b |A - R|",
    "D2": "D2 = sqrt(sum_b (A - R)^2)",
    "SAX": "SAX = (A - R)[b*] with b* = argmax_b |A - R| (first bin on ties)",
    "JS": (
        "JS = 1/2 sum_b [p ln(p/q) + q ln(q/p)], p = (R + c) / sum_b (R + c), "
        "q = (A + c) / sum_b (A + c), c = 25th percentile of R over the bins (per track)"
    ),
    "REF": "REF = sum_b R",
    "ALT": "ALT = sum_b A",
}
"""Formula of every statistic, by name. ``R``/``A``: ref/alt predictions ``(bins, tracks)``
averaged over the requested reverse-complement and shift copies; ``sum_b`` sums over the bins
of the scoring window; results are per track."""

SCORE_ALIASES: dict[str, str] = {"SADR": "logSED"}
"""Alternative names of statistics."""

SIGNED_SCORES = frozenset({"SAD", "SAR", "logSED", "SADR", "SAX"})
"""Statistics that change sign when REF and ALT are swapped."""


# ------------------------------------------------------------------------------------------
# Statistics
# ------------------------------------------------------------------------------------------


def _pair(ref: Any, alt: Any) -> tuple[np.ndarray, np.ndarray, np.dtype]:
    r, a = np.asarray(ref), np.asarray(alt)
    if r.shape != a.shape:
        raise ValueError(f"ref and alt must have the same shape, got {r.shape} and {a.shape}")
    if r.ndim < 2:
        raise ValueError(f"predictions must have shape (..., bins, tracks), got {r.shape}")
    dtype = np.result_type(r.dtype, a.dtype, np.float32)
    if not np.issubdtype(dtype, np.floating):
        dtype = np.dtype(np.float64)
    return r.astype(np.float64, copy=False), a.astype(np.float64, copy=False), dtype


def sad(ref: np.ndarray, alt: np.ndarray) -> np.ndarray:
    """SAD, the sum of alt minus the sum of ref: ``ΣA − ΣR``.

    Parameters
    ----------
    ref, alt : numpy.ndarray
        Predictions ``(..., bins, tracks)``.

    Returns
    -------
    numpy.ndarray
        ``(..., tracks)``.
    """
    r, a, dtype = _pair(ref, alt)
    return (a.sum(axis=-2) - r.sum(axis=-2)).astype(dtype)


def sar(ref: np.ndarray, alt: np.ndarray) -> np.ndarray:
    """SAR, the summed log ratio: ``Σ[log2(A+1) − log2(R+1)]`` (log, then sum).

    Parameters
    ----------
    ref, alt : numpy.ndarray
        Predictions ``(..., bins, tracks)``, non-negative.

    Returns
    -------
    numpy.ndarray
        ``(..., tracks)``.
    """
    r, a, dtype = _pair(ref, alt)
    return (np.log2(a + 1) - np.log2(r + 1)).sum(axis=-2).astype(dtype)


def log_sed(ref: np.ndarray, alt: np.ndarray) -> np.ndarray:
    """LogSED (alias SADR), the log ratio of sums: ``log2(ΣA+1) − log2(ΣR+1)`` (sum, then log).

    Parameters
    ----------
    ref, alt : numpy.ndarray
        Predictions ``(..., bins, tracks)``, non-negative.

    Returns
    -------
    numpy.ndarray
        ``(..., tracks)``.
    """
    r, a, dtype = _pair(ref, alt)
    return (np.log2(a.sum(axis=-2) + 1) - np.log2(r.sum(axis=-2) + 1)).astype(dtype)


def d1(ref: np.ndarray, alt: np.ndarray) -> np.ndarray:
    """D1, the L1 distance: ``Σ|A−R|``.

    Parameters
    ----------
    ref, alt : numpy.ndarray
        Predictions ``(..., bins, tracks)``.

    Returns
    -------
    numpy.ndarray
        ``(..., tracks)``.
    """
    r, a, dtype = _pair(ref, alt)
    return np.abs(a - r).sum(axis=-2).astype(dtype)


def d2(ref: np.ndarray, alt: np.ndarray) -> np.ndarray:
    """D2, the L2 distance: ``sqrt(Σ(A−R)²)``.

    Parameters
    ----------
    ref, alt : numpy.ndarray
        Predictions ``(..., bins, tracks)``.

    Returns
    -------
    numpy.ndarray
        ``(..., tracks)``.
    """
    r, a, dtype = _pair(ref, alt)
    return np.sqrt(np.square(a - r).sum(axis=-2)).astype(dtype)


def sax(ref: np.ndarray, alt: np.ndarray) -> np.ndarray:
    """SAX, the signed difference at the bin of largest change: ``(A−R)[argmax_b |A−R|]``.

    Parameters
    ----------
    ref, alt : numpy.ndarray
        Predictions ``(..., bins, tracks)``.

    Returns
    -------
    numpy.ndarray
        ``(..., tracks)``; on ties the first such bin counts.
    """
    r, a, dtype = _pair(ref, alt)
    diff = a - r
    b = np.argmax(np.abs(diff), axis=-2)  # (..., tracks)
    return np.take_along_axis(diff, b[..., None, :], axis=-2)[..., 0, :].astype(dtype)


def js(
    ref: np.ndarray, alt: np.ndarray, pseudocount: float | np.ndarray | None = None
) -> np.ndarray:
    """JS, the symmetric Kullback-Leibler divergence of the two bin profiles.

    ``JS = ½ Σ[p ln(p/q) + q ln(q/p)] = ½ Σ (p − q)(ln p − ln q)`` with
    ``p = (R+c)/Σ(R+c)`` and ``q = (A+c)/Σ(A+c)`` normalised over the bins of each track.

    Parameters
    ----------
    ref, alt : numpy.ndarray
        Predictions ``(..., bins, tracks)``, non-negative.
    pseudocount : float or numpy.ndarray, optional
        ``c``, broadcastable to ``(..., 1, tracks)``. Default: the 25th percentile of ``ref``
        over the bins, per track (basenji's choice).

    Returns
    -------
    numpy.ndarray
        ``(..., tracks)``, >= 0; 0 when the profiles are equal. Terms with ``p = q = 0`` count
        0.
    """
    r, a, dtype = _pair(ref, alt)
    if pseudocount is None:
        c = np.percentile(r, 25, axis=-2, keepdims=True)
    else:
        c = np.asarray(pseudocount, dtype=np.float64)
        if c.ndim >= 1 and c.shape[-1:] == r.shape[-1:] and c.ndim < r.ndim:
            c = np.expand_dims(c, axis=-2)
    p = r + c
    q = a + c
    with np.errstate(divide="ignore", invalid="ignore"):
        p = p / p.sum(axis=-2, keepdims=True)
        q = q / q.sum(axis=-2, keepdims=True)
        terms = (p - q) * (np.log(p) - np.log(q))
    terms = np.where(p == q, 0.0, terms)
    return (0.5 * terms.sum(axis=-2)).astype(dtype)


def ref_sum(ref: np.ndarray, alt: np.ndarray) -> np.ndarray:
    """REF, the summed reference prediction: ``ΣR``.

    Parameters
    ----------
    ref, alt : numpy.ndarray
        Predictions ``(..., bins, tracks)`` (``alt`` only sets the shape check).

    Returns
    -------
    numpy.ndarray
        ``(..., tracks)``.
    """
    r, _, dtype = _pair(ref, alt)
    return r.sum(axis=-2).astype(dtype)


def alt_sum(ref: np.ndarray, alt: np.ndarray) -> np.ndarray:
    """ALT, the summed alternative prediction: ``ΣA``.

    Parameters
    ----------
    ref, alt : numpy.ndarray
        Predictions ``(..., bins, tracks)`` (``ref`` only sets the shape check).

    Returns
    -------
    numpy.ndarray
        ``(..., tracks)``.
    """
    _, a, dtype = _pair(ref, alt)
    return a.sum(axis=-2).astype(dtype)


SCORE_FUNCTIONS: dict[str, Callable[[np.ndarray, np.ndarray], np.ndarray]] = {
    "SAD": sad,
    "SAR": sar,
    "logSED": log_sed,
    "SADR": log_sed,
    "D1": d1,
    "D2": d2,
    "SAX": sax,
    "JS": js,
    "REF": ref_sum,
    "ALT": alt_sum,
}
"""The function of every statistic, by name (see :data:`SCORE_FORMULAS`)."""

_BY_LOWER = {name.lower(): name for name in SCORE_FUNCTIONS}


def resolve_stats(stats: str | Iterable[str]) -> list[str]:
    """Normalise statistic names (case-insensitive; comma-separated text accepted).

    Parameters
    ----------
    stats : str or iterable of str
        E.g. ``'SAD,logSED'`` or ``['sad', 'D2']``.

    Returns
    -------
    list of str
        Canonical spellings (``'SADR'`` stays ``'SADR'``), each once, in the given order.

    Raises
    ------
    ValueError
        If a name is unknown (the message lists the known ones) or none is given.
    """
    items = stats.split(",") if isinstance(stats, str) else list(stats)
    out: list[str] = []
    for item in items:
        name = str(item).strip()
        if not name:
            continue
        canonical = _BY_LOWER.get(name.lower())
        if canonical is None:
            raise ValueError(
                f"unknown variant statistic {name!r}; choose from {', '.join(SCORE_FUNCTIONS)}"
            )
        if canonical not in out:
            out.append(canonical)
    if not out:
        raise ValueError("no variant statistic given; e.g. 'SAD'")
    return out


def compute_scores(
    ref: np.ndarray,
    alt: np.ndarray,
    stats: Sequence[str] = ("SAD",),
    *,
    bins: np.ndarray | Sequence[int] | slice | None = None,
) -> dict[str, np.ndarray]:
    """Compute several statistics over the chosen bins.

    Parameters
    ----------
    ref, alt : numpy.ndarray
        Predictions ``(..., bins, tracks)``.
    stats : sequence of str, optional
        Statistic names (see :func:`resolve_stats`).
    bins : array, sequence of int, slice or None, optional
        Bins entering the sums: integer indices, a boolean mask over the bin axis, a slice,
        or ``None`` for all bins.

    Returns
    -------
    dict of str to numpy.ndarray
        ``(..., tracks)`` per statistic, in the order asked.

    Raises
    ------
    ValueError
        For unknown statistics, mismatched shapes or an empty bin selection.
    """
    names = resolve_stats(stats)
    r, a = np.asarray(ref), np.asarray(alt)
    if bins is not None:
        index = bins if isinstance(bins, slice) else np.asarray(bins)
        if not isinstance(index, slice):
            index = np.flatnonzero(index) if index.dtype == np.bool_ else index.astype(np.int64)
        r, a = r[..., index, :], a[..., index, :]
        if r.shape[-2] == 0:
            raise ValueError("the bin selection is empty")
    return {name: SCORE_FUNCTIONS[name](r, a) for name in names}


# ------------------------------------------------------------------------------------------
# Bins
# ------------------------------------------------------------------------------------------


def center_bins(bin_index: int, n_bins: int, width: int) -> np.ndarray:
    """The ``width`` bins centred on ``bin_index``, clipped to ``[0, n_bins)``.

    Parameters
    ----------
    bin_index : int
        Centre bin (e.g. the bin holding the variant's first REF base).
    n_bins : int
        Number of output bins.
    width : int
        Number of bins (>= 1): bins ``bin_index - width // 2`` to
        ``bin_index - width // 2 + width - 1``, so ``width=3`` gives ``b-1, b, b+1``.

    Returns
    -------
    numpy.ndarray
        int64 sorted bin indices inside the output (may be shorter than ``width`` at an edge,
        empty when the centre lies far outside).
    """
    if int(width) < 1:
        raise ValueError(f"width must be >= 1 bin, got {width}")
    lo = int(bin_index) - int(width) // 2
    return np.arange(max(lo, 0), min(lo + int(width), int(n_bins)), dtype=np.int64)


def tss_bin(tss: int, output_start: int, bin_size: int) -> int:
    """Output bin holding genomic position ``tss``.

    Parameters
    ----------
    tss : int
        0-based genomic position of the TSS base.
    output_start : int
        0-based genomic position of the first base of output bin 0: the window's start plus
        the crop offset (``window_start + (L // bin_size - n_bins) // 2 * bin_size``).
    bin_size : int
        Base pairs per bin.

    Returns
    -------
    int
        ``(tss - output_start) // bin_size``; outside ``[0, n_bins)`` when the TSS is not
        covered by the output.
    """
    return (int(tss) - int(output_start)) // int(bin_size)


def tss_bins(tss: int, output_start: int, n_bins: int, bin_size: int, width: int = 3) -> np.ndarray:
    """The ``width`` output bins centred on a TSS's bin (see :func:`tss_bin`).

    Parameters
    ----------
    tss : int
        0-based genomic position of the TSS.
    output_start : int
        0-based genomic position of output bin 0 (window start + crop offset).
    n_bins : int
        Number of output bins.
    bin_size : int
        Base pairs per bin.
    width : int, optional
        Bins around the TSS bin (default 3: ``b-1, b, b+1``).

    Returns
    -------
    numpy.ndarray
        int64 bins inside the output; empty if the TSS's bin is outside it.
    """
    b = tss_bin(tss, output_start, bin_size)
    if not 0 <= b < int(n_bins):
        return np.zeros(0, dtype=np.int64)
    return center_bins(b, n_bins, width)


# ------------------------------------------------------------------------------------------
# Genes
# ------------------------------------------------------------------------------------------

_ATTR_RE = re.compile(r'\s*([A-Za-z_][\w.]*)\s+(?:"([^"]*)"|([^;\s]+))\s*;?')


def _gtf_attributes(text: str) -> dict[str, str]:
    out: dict[str, str] = {}
    for match in _ATTR_RE.finditer(text):
        key = match.group(1)
        if key not in out:
            out[key] = match.group(2) if match.group(2) is not None else match.group(3)
    return out


def read_gtf_tss(
    path: str | os.PathLike[str],
    *,
    feature: Literal["auto", "gene", "transcript"] = "auto",
    gene_types: Sequence[str] | None = None,
) -> Any:
    """Read transcription start sites from a GTF file (plain or gzip).

    The TSS is strand-aware: the first base of the feature on ``+`` (GTF start) and its last
    base on ``-`` (GTF end). GTF is 1-based and end-inclusive; the returned ``tss`` is the
    0-based position of that base (GTF start − 1 on ``+``, GTF end − 1 on ``-``).

    Parameters
    ----------
    path : str or os.PathLike
        GTF file.
    feature : {'auto', 'gene', 'transcript'}, optional
        Read ``gene`` lines (one TSS per gene) or ``transcript`` lines (one per transcript,
        several per gene). ``'auto'`` uses gene lines when the file has any, else transcripts.
    gene_types : sequence of str, optional
        Keep only these ``gene_type`` (or ``gene_biotype``) values, e.g. ``['protein_coding']``.

    Returns
    -------
    pandas.DataFrame
        Columns ``gene_id, gene_name, chrom, tss, strand, transcript_id, gene_type`` in file
        order (``gene_name`` falls back to ``gene_id``; ``transcript_id`` is empty for gene
        lines).

    Raises
    ------
    FileNotFoundError
        If the file does not exist.
    ValueError
        On a malformed line (naming file and line), or if no TSS is found.
    """
    import pandas as pd

    from .records import numbered_lines

    path = Path(path)
    if feature not in ("auto", "gene", "transcript"):
        raise ValueError(f"feature must be 'auto', 'gene' or 'transcript', got {feature!r}")
    rows: dict[str, list[dict[str, Any]]] = {"gene": [], "transcript": []}
    wanted = set(gene_types) if gene_types is not None else None
    for number, line in numbered_lines(path):
        if not line or line.startswith("#"):
            continue
        fields = line.split("\t")
        where = f"{path}, line {number}"
        if len(fields) < 9:
            raise ValueError(
                f"{where}: a GTF line needs 9 tab-separated columns, got {len(fields)}"
            )
        kind = fields[2]
        if kind not in rows or (feature != "auto" and kind != feature):
            continue
        try:
            start, end = int(fields[3]), int(fields[4])
        except ValueError:
            raise ValueError(
                f"{where}: start and end must be integers, got {fields[3]!r}, {fields[4]!r}"
            ) from None
        strand = fields[6]
        if strand not in ("+", "-"):
            raise ValueError(f"{where}: a {kind} needs strand '+' or '-', got {strand!r}")
        if start < 1 or end < start:
            raise ValueError(f"{where}: need 1 <= start <= end, got {start}, {end}")
        attrs = _gtf_attributes(fields[8])
        gene_id = attrs.get("gene_id")
        if not gene_id:
            raise ValueError(f"{where}: no gene_id attribute")
        gene_type = attrs.get("gene_type", attrs.get("gene_biotype", ""))
        if wanted is not None and gene_type not in wanted:
            continue
        rows[kind].append(
            {
                "gene_id": gene_id,
                "gene_name": attrs.get("gene_name") or gene_id,
                "chrom": fields[0],
                "tss": start - 1 if strand == "+" else end - 1,
                "strand": strand,
                "transcript_id": attrs.get("transcript_id", "") if kind == "transcript" else "",
                "gene_type": gene_type,
            }
        )
    kind = feature if feature != "auto" else ("gene" if rows["gene"] else "transcript")
    table = pd.DataFrame(
        rows[kind],
        columns=["gene_id", "gene_name", "chrom", "tss", "strand", "transcript_id", "gene_type"],
    )
    if table.empty:
        raise ValueError(f"{path}: no {kind} lines with a TSS found")
    table["tss"] = table["tss"].astype(np.int64)
    logger.info("read %d %s TSSs from %s", len(table), kind, path)
    return table


@dataclass(frozen=True)
class GeneBins:
    """A gene whose TSS lies in a window's output, and the bins to read.

    Attributes
    ----------
    gene_id : str
        Gene identifier.
    gene_name : str
        Gene name.
    strand : str
        ``'+'`` or ``'-'``.
    tss : tuple of int
        0-based TSS positions of the gene inside the output span.
    bins : numpy.ndarray
        int64 sorted union of the ``width`` bins around each of those TSSs.
    """

    gene_id: str
    gene_name: str
    strand: str
    tss: tuple[int, ...]
    bins: np.ndarray


class TSSIndex:
    """TSS positions per chromosome, for finding the genes in a window's output.

    Parameters
    ----------
    table : pandas.DataFrame
        From :func:`read_gtf_tss` (columns ``gene_id, gene_name, chrom, tss, strand``).
    """

    def __init__(self, table: Any) -> None:
        self.table = table
        self._by_chrom: dict[str, tuple[np.ndarray, np.ndarray]] = {}
        tss = table["tss"].to_numpy(dtype=np.int64)
        chroms = table["chrom"].to_numpy()
        for chrom in dict.fromkeys(chroms.tolist()):
            rows = np.flatnonzero(chroms == chrom)
            order = np.argsort(tss[rows], kind="stable")
            self._by_chrom[chrom] = (tss[rows][order], rows[order])
        self._ids = table["gene_id"].to_numpy()
        self._names = table["gene_name"].to_numpy()
        self._strands = table["strand"].to_numpy()

    @classmethod
    def from_gtf(cls, path: str | os.PathLike[str], **kwargs: Any) -> TSSIndex:
        """Build from a GTF file (``kwargs`` go to :func:`read_gtf_tss`).

        Parameters
        ----------
        path : str or os.PathLike
            GTF file.
        **kwargs
            ``feature``, ``gene_types``.

        Returns
        -------
        TSSIndex
            The index.
        """
        return cls(read_gtf_tss(path, **kwargs))

    def __len__(self) -> int:
        return len(self.table)

    def _lookup(self, chrom: str) -> tuple[np.ndarray, np.ndarray] | None:
        for name in (chrom, chrom[3:] if chrom.startswith("chr") else "chr" + chrom):
            if name in self._by_chrom:
                return self._by_chrom[name]
        if chrom in ("chrM", "MT"):
            return self._by_chrom.get("MT" if chrom == "chrM" else "chrM")
        return None

    def genes_in_window(
        self, chrom: str, output_start: int, n_bins: int, bin_size: int, *, width: int = 3
    ) -> list[GeneBins]:
        """Genes with a TSS inside an output span, and the bins around their TSSs.

        Parameters
        ----------
        chrom : str
            Chromosome (``chr`` prefix differences are bridged).
        output_start : int
            0-based genomic position of output bin 0 (window start + crop offset).
        n_bins : int
            Number of output bins.
        bin_size : int
            Base pairs per bin.
        width : int, optional
            Bins around each TSS bin (:func:`tss_bins`; default 3).

        Returns
        -------
        list of GeneBins
            One per gene, in order of first TSS position; a gene with several TSSs in the span
            reads the union of their bins.
        """
        found = self._lookup(chrom)
        if found is None:
            return []
        positions, rows = found
        end = int(output_start) + int(n_bins) * int(bin_size)
        lo, hi = np.searchsorted(positions, [int(output_start), end], side="left")
        genes: dict[str, tuple[str, str, list[int], list[np.ndarray]]] = {}
        for pos, row in zip(positions[lo:hi].tolist(), rows[lo:hi].tolist(), strict=True):
            bins = tss_bins(pos, output_start, n_bins, bin_size, width)
            gid = str(self._ids[row])
            entry = genes.setdefault(gid, (str(self._names[row]), str(self._strands[row]), [], []))
            if pos not in entry[2]:
                entry[2].append(pos)
                entry[3].append(bins)
        return [
            GeneBins(gid, name, strand, tuple(tss), np.unique(np.concatenate(bins)))
            for gid, (name, strand, tss, bins) in genes.items()
        ]
