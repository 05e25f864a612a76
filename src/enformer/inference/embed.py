"""Trunk embeddings: the per-bin vectors the heads read, at chosen bins or pooled.

The embedding of a window is ``model.embed(x)``: ``(bins, 2 * channels)`` per input (3,072
features in each of 896 bins of 128 bp for the published model), the output of the final
pointwise block, before the heads' linear layer and softplus.

:func:`embed` returns arrays for one-hot inputs or DNA strings. :func:`embed_to_files` runs a
resumable job over :class:`EmbedInput` windows (genomic regions, FASTA sequences, or the REF
and ALT windows of variants, which :mod:`enformer.variants.embed` builds) and writes one table
of rows to HDF5, NPZ or Parquet.

Bins and pooling
----------------
``bins`` picks output bins: ``'all'``, ``'center'`` (bin ``n_bins // 2``, the bin that holds a
variant's first REF base and a centred region's middle base), ``'i:j'`` (bins ``i`` to
``j - 1``, Python slice rules) or a list of indices. ``pool='mean'`` averages the chosen bins
into one vector per window; ``pool='tss'`` (files only) gives one row per gene with a TSS in
the output, the mean over its TSS bins
(:meth:`enformer.data.annotation.TSSIndex.genes_in_window`: the 3 bins around each TSS).

Reverse complement
------------------
With ``rc=True`` each window is also embedded on its reverse complement; that embedding's bin
axis is flipped back to forward order and the two are averaged. The features themselves are
not strand-aware (no track pairs to swap), so the RC embedding describes the same bins from
the other strand; averaging makes the result identical for a window and its reverse
complement (up to the bin flip).
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any, Literal

import numpy as np
import torch

from ..data.genome import Genome, Interval
from ..data.sequence import ALPHABET, IUPAC_AMBIGUOUS, one_hot
from ..io.progress import progress_bar
from ..model.geometry import OutputGeometry, output_geometry
from .engine import EMBEDDING, Engine

__all__ = [
    "BinSpec",
    "EmbedInput",
    "Pool",
    "embed",
    "embed_bins",
    "embed_windows",
    "region_inputs",
    "sequence_inputs",
]

Pool = Literal["mean", "tss"]
BinSpec = str | Sequence[int]

logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class EmbedInput:
    """One window to embed.

    Attributes
    ----------
    name : str
        Region text, FASTA record name or variant identifier.
    fetch : callable
        Returns the window's one-hot DNA, uint8 ``(L, 4)``; called when it is embedded.
    chrom : str
        Chromosome (``''`` for sequences without coordinates).
    start : int
        0-based genomic position of input index 0 (0 for sequences: coordinates are then
        positions in the sequence).
    allele : str
        ``'ref'`` or ``'alt'`` for variant windows, ``''`` otherwise.
    """

    name: str
    fetch: Callable[[], np.ndarray]
    chrom: str = ""
    start: int = 0
    allele: str = ""

    def key(self) -> list[Any]:
        """What identifies the window in a job's settings."""
        return [self.name, self.chrom, int(self.start), self.allele]


def embed_bins(spec: BinSpec, n_bins: int) -> np.ndarray:
    """The output bins a ``--bins`` value names.

    Parameters
    ----------
    spec : str or sequence of int
        ``'all'``, ``'center'`` (bin ``n_bins // 2``), ``'i:j'`` (Python slice, negative
        indices count from the end) or explicit bin indices.
    n_bins : int
        Bins of the model's output.

    Returns
    -------
    numpy.ndarray
        int64 bin indices (at least one).

    Raises
    ------
    ValueError
        For an unknown word, a malformed or empty slice, or an index outside ``[0, n_bins)``.
    """
    if isinstance(spec, str):
        text = spec.strip().lower()
        if text == "all":
            return np.arange(n_bins, dtype=np.int64)
        if text == "center":
            return np.array([n_bins // 2], dtype=np.int64)
        lo, sep, hi = text.partition(":")
        try:
            if not sep:
                raise ValueError
            chosen = np.arange(n_bins)[slice(int(lo) if lo else None, int(hi) if hi else None)]
        except ValueError:
            raise ValueError(
                f"bins {spec!r} not understood; use 'all', 'center' or a slice 'i:j' of the "
                f"{n_bins} output bins (e.g. '0:10')"
            ) from None
    else:
        chosen = np.asarray([int(b) for b in spec], dtype=np.int64)
        bad = chosen[(chosen < 0) | (chosen >= n_bins)]
        if bad.size:
            raise ValueError(
                f"bin {int(bad[0])} is outside the {n_bins} output bins (0..{n_bins - 1})"
            )
    if chosen.size == 0:
        raise ValueError(f"bins {spec!r} selects none of the {n_bins} output bins")
    return chosen.astype(np.int64)


def _as_onehot(x: Any) -> torch.Tensor:
    """``(N, L, 4)`` tensor from a tensor, an array, a DNA string or a list of strings."""
    if isinstance(x, str):
        x = [x]
    if isinstance(x, list | tuple) and x and isinstance(x[0], str):
        lengths = {len(s) for s in x}
        if len(lengths) > 1:
            raise ValueError(f"sequences must all have one length, got {sorted(lengths)[:5]}")
        return torch.from_numpy(one_hot(list(x), ambiguous="n").reshape(len(x), -1, 4))
    t = torch.as_tensor(np.asarray(x) if not isinstance(x, torch.Tensor) else x)
    return t.unsqueeze(0) if t.dim() == 2 else t


def embed(
    model: torch.nn.Module,
    x: Any,
    *,
    bins: BinSpec = "all",
    pool: Literal["mean"] | None = None,
    rc: bool = False,
    batch_size: int = 1,
    device: str | torch.device | None = None,
    dtype: torch.dtype | None = None,
    progress: bool = False,
) -> np.ndarray:
    """Trunk embeddings of one-hot inputs or DNA strings, at chosen bins or mean-pooled.

    Parameters
    ----------
    model : torch.nn.Module
        An :class:`~enformer.model.Enformer`; left on its device and in its mode.
    x : array-like, torch.Tensor, str or list of str
        One-hot ``(N, L, 4)`` or ``(L, 4)`` in A, C, G, T order, or DNA of length ``L``.
    bins : str or sequence of int, optional
        Output bins (:func:`embed_bins`; default ``'all'``).
    pool : {'mean'}, optional
        Average the chosen bins into one vector per input.
    rc : bool, optional
        Average with the reverse complement's embedding, bin axis flipped back (see the
        module docstring).
    batch_size, device, dtype, progress
        As for :func:`~enformer.inference.predict`.

    Returns
    -------
    numpy.ndarray
        float32 ``(N, n_chosen_bins, features)``, or ``(N, features)`` with ``pool='mean'``.
    """
    if pool not in (None, "mean"):
        raise ValueError(
            f"pool must be None or 'mean' here, got {pool!r}; TSS pooling needs coordinates "
            "(enformer.inference.embed_to_files with genes=)"
        )
    onehot = _as_onehot(x)
    geometry = output_geometry(model.config, int(onehot.shape[1]))
    chosen = torch.as_tensor(embed_bins(bins, geometry.n_bins))
    engine = Engine(model, heads=(), tracks={}, rc=rc, batch_size=batch_size, device=device,
                    dtype=dtype, embedding=True)  # fmt: skip
    parts = []
    bar = progress_bar(int(onehot.shape[0]), "embed", progress)
    with engine, bar:
        for lo in range(0, int(onehot.shape[0]), engine.chunk_size):
            chunk = onehot[lo : lo + engine.chunk_size]
            e = torch.from_numpy(engine.run(chunk)[EMBEDDING])[:, chosen]  # (n, k, F)
            parts.append((e.mean(1) if pool == "mean" else e).numpy())
            bar.update(int(chunk.shape[0]))
    return np.concatenate(parts).astype(np.float32, copy=False)


# ------------------------------------------------------------------------------------------
# Rows of a job: one table for every input and pooling
# ------------------------------------------------------------------------------------------


def _span(item: EmbedInput, geo: OutputGeometry, first: Any, last: Any) -> tuple[Any, Any]:
    """0-based start of bin(s) ``first`` and end of bin(s) ``last`` of one window."""
    origin = int(item.start) + geo.offset
    return origin + np.asarray(first) * geo.bin_size, origin + (np.asarray(last) + 1) * geo.bin_size


def _unit_rows(
    item: EmbedInput,
    emb: np.ndarray,
    geo: OutputGeometry,
    chosen: np.ndarray,
    pool: Pool | None,
    genes: Any,
) -> dict[str, np.ndarray]:
    """The rows one window contributes: chosen bins, their mean, or one per gene's TSS bins.

    ``emb`` is the window's ``(bins, F)`` embedding; ``genes`` a TSSIndex for ``pool='tss'``.
    """
    gene_names: list[str] = []
    if pool is None:
        vectors, bins = emb[chosen], chosen
        start, end = _span(item, geo, chosen, chosen)
    elif pool == "mean":
        vectors, bins = emb[chosen].mean(0, keepdims=True), np.array([-1])
        start, end = _span(item, geo, chosen.min(keepdims=True), chosen.max(keepdims=True))
    else:
        found = genes.genes_in_window(item.chrom, int(item.start) + geo.offset, geo.n_bins,
                                      geo.bin_size)  # fmt: skip
        found = [g for g in found if g.bins.size]
        vectors = np.stack([emb[g.bins].mean(0) for g in found]) if found else emb[:0]
        bins = np.full(len(found), -1)
        start, end = _span(item, geo, [int(g.bins[0]) for g in found],
                           [int(g.bins[-1]) for g in found])  # fmt: skip
        gene_names = [g.gene_name or g.gene_id for g in found]
    n = len(vectors)
    return {
        "name": np.array([item.name] * n, dtype=str),
        "allele": np.array([item.allele] * n, dtype=str),
        "chrom": np.array([item.chrom] * n, dtype=str),
        "start": np.asarray(start, dtype=np.int64).reshape(n),
        "end": np.asarray(end, dtype=np.int64).reshape(n),
        "bin": np.asarray(bins, dtype=np.int64),
        "gene": np.array(gene_names or [""] * n, dtype=str),
        "embedding": np.asarray(vectors, dtype=np.float32),
    }


def region_inputs(genome: Genome, regions: Sequence[Interval], length: int) -> list[EmbedInput]:
    """One window of ``length`` bp centred on each region (off-chromosome bases are ``N``).

    A region longer than the output span is embedded at its centre only (use ``enformer
    predict`` to tile long regions); its name is ``chrom:start-end`` (1-based, as samtools).

    Raises
    ------
    ValueError
        For an unknown chromosome or a region centred outside its chromosome.
    """
    chroms = [genome.resolve_chrom(r.chrom) for r in regions]
    outside = [r for r, c in zip(regions, chroms, strict=True) if r.center >= genome.chrom_sizes[c]]
    if outside:
        raise ValueError(
            f"region {outside[0].to_ucsc()} is centred outside {outside[0].chrom} in "
            f"{genome.path.name}; is the input on the same assembly?"
        )
    return [
        EmbedInput(r.name or r.to_ucsc(), _genome_fetcher(genome, c, r.center, length), chrom=c,
                   start=r.center - length // 2)
        for r, c in zip(regions, chroms, strict=True)
    ]  # fmt: skip


def _genome_fetcher(genome: Genome, chrom: str, center: int, length: int) -> Callable[[], Any]:
    """The one-hot window of ``length`` bp centred on ``center`` (:meth:`Genome.window`)."""
    window = genome.window
    return lambda: one_hot(window(chrom, center, length).sequence, dtype=np.uint8, ambiguous="n")


def sequence_inputs(records: Sequence[tuple[str, str]], length: int) -> list[EmbedInput]:
    """One input per FASTA record: ``length`` bp of A, C, G, T, N (IUPAC codes read as N).

    Raises
    ------
    ValueError
        Naming the first record of another length or holding other letters.
    """
    out = []
    for name, seq in records:
        seq = str(seq).upper()
        if len(seq) != length:
            raise ValueError(
                f"sequence {name!r} is {len(seq):,} bp but the model takes {length:,} bp; "
                "cut or pad every FASTA record to the model's input length"
            )
        odd = sorted(set(seq) - set(ALPHABET + "N" + IUPAC_AMBIGUOUS))
        if odd:
            raise ValueError(
                f"sequence {name!r} holds {', '.join(map(repr, odd[:5]))}, not DNA (A, C, G, T, "
                "N or IUPAC codes); check that the FASTA holds nucleotide sequences"
            )
        out.append(EmbedInput(str(name), _sequence_fetcher(seq)))
    return out


def _sequence_fetcher(seq: str) -> Callable[[], np.ndarray]:
    return lambda: one_hot(seq, dtype=np.uint8, ambiguous="n")


def embed_windows(
    engine: Engine,
    items: Sequence[EmbedInput],
    units: Sequence[int],
    save: Callable[[int, dict[str, np.ndarray], np.ndarray], None],
    *,
    geometry: OutputGeometry,
    chosen: np.ndarray,
    pool: Pool | None = None,
    genes: Any = None,
    progress: bool = False,
) -> None:
    """Embed ``items[u]`` for each ``u`` in ``units``; call ``save(u, rows, onehot)``.

    ``engine`` must be in embedding mode and entered; ``genes`` is a
    :class:`~enformer.data.annotation.TSSIndex` for ``pool='tss'``. ``onehot`` is the window
    the rows were computed from (for a digest of what was read).
    """
    bar = progress_bar(len(units), "embed", progress, unit="window")
    with bar:
        for lo in range(0, len(units), engine.chunk_size):
            part = list(units[lo : lo + engine.chunk_size])
            windows = [items[u].fetch() for u in part]
            emb = engine.run(torch.from_numpy(np.stack(windows)))[EMBEDDING]  # (n, bins, F)
            for j, u in enumerate(part):
                save(u, _unit_rows(items[u], emb[j], geometry, chosen, pool, genes), windows[j])
            bar.update(len(part))
