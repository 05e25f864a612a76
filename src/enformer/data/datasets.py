"""PyTorch datasets for training: Basenji TFRecords, BigWig tracks, in-memory arrays.

Every dataset yields dictionaries ``{"sequence": float32 (L, 4), "target": float32 (bins,
tracks), "index": int}`` of torch tensors, which :func:`torch.utils.data.default_collate` stacks
into ``(B, L, 4)`` and ``(B, bins, tracks)`` batches.

* :class:`TFRecordDataset` reads one split of a Basenji/Borzoi data folder (``tfrecords/``,
  ``sequences.bed``, ``statistics.json``, ``targets.txt``) into memory, optionally
  re-extracting each record's window at a longer length from the genome (Enformer trains on
  196,608 bp around Basenji's 131,072-bp records) and pooling target bins (32 bp -> 128 bp).
* :class:`BigWigDataset` computes targets from BigWig coverage listed in a Basenji targets
  sheet, bin by bin, as Basenji's data pipeline does (:func:`summarize_coverage`).
* :class:`ArrayDataset` wraps arrays already in memory.
* :class:`AugmentedDataset` adds Enformer's training augmentation (shifts of up to +/-3 bp and
  reverse complements with strand-pair swapping), reproducible from ``(seed, epoch, index)``;
  :func:`augment` applies one given augmentation.

This module never imports ``enformer.model``.
"""

from __future__ import annotations

import bisect
import logging
import os
import random
from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import Any, Literal

import numpy as np
import torch
from torch.utils.data import Dataset

from .genome import Genome, Interval, read_bed
from .sequence import one_hot
from .tfrecord import TFRecordStatistics, read_statistics, read_tfrecords, tfrecord_files
from .tracks import Track, TrackSheet

__all__ = [
    "ArrayDataset",
    "AugmentedDataset",
    "BigWigDataset",
    "TFRecordDataset",
    "augment",
    "make_generator",
    "pool_bins",
    "reverse_complement_sample",
    "shift_sequence",
    "summarize_coverage",
    "worker_init_fn",
]

logger = logging.getLogger(__name__)

Sample = dict[str, Any]
PoolStat = Literal["auto", "sum", "mean", "max"]
Transform = Literal["basenji", "baskerville"]

# Base codes: 0-3 = A, C, G, T; 4 = N (and any other IUPAC code).
_CODE_TABLE = bytes(
    {ord("A"): 0, ord("C"): 1, ord("G"): 2, ord("T"): 3, ord("a"): 0, ord("c"): 1, ord("g"): 2,
     ord("t"): 3}.get(i, 4)
    for i in range(256)
)  # fmt: skip
_CODE_TO_ONEHOT = np.vstack([np.eye(4, dtype=np.float32), np.zeros((1, 4), np.float32)])


def _codes(sequence: str) -> np.ndarray:
    """Base codes (uint8, 0-3 ACGT, 4 N) of a DNA string."""
    return np.frombuffer(sequence.encode("ascii").translate(_CODE_TABLE), dtype=np.uint8)


def _codes_from_onehot(onehot: np.ndarray) -> np.ndarray:
    codes = np.argmax(onehot, axis=-1).astype(np.uint8)
    codes[~np.asarray(onehot).astype(bool).any(axis=-1)] = 4
    return codes


def _onehot_tensor(codes: np.ndarray) -> torch.Tensor:
    return torch.from_numpy(_CODE_TO_ONEHOT[codes])  # (L, 4) float32


def _open_genome(genome: str | os.PathLike[str] | Genome) -> tuple[Genome, bool]:
    """Return ``(genome, opened_here)``."""
    if isinstance(genome, Genome):
        return genome, False
    return Genome(genome, warn_padding=False), True


def _fetch_codes(genome: Genome, sizes: dict[str, int], window: Interval) -> tuple[np.ndarray, int]:
    """Codes of ``window``, N-padded past the chromosome ends; also the number of padded bases.

    Clipping to the chromosome here (rather than in :meth:`Genome.fetch`) keeps the per-window
    padding warnings out of data loading; callers log one summary instead.
    """
    chrom = genome.resolve_chrom(window.chrom)
    length = sizes[chrom]
    lo, hi = max(window.start, 0), min(window.end, length)
    out = np.full(len(window), 4, dtype=np.uint8)
    if hi > lo:
        out[lo - window.start : hi - window.start] = _codes(genome.fetch(chrom, lo, hi))
    return out, len(window) - max(hi - lo, 0)


def _track_pool_stat(track: Track) -> str:
    stat = (track.sum_stat or "sum").lower()
    if stat == "max":
        return "max"
    if stat.startswith(("mean", "avg")) or stat in ("median", "peak"):
        return "mean"
    return "sum"


def pool_bins(target: np.ndarray, pool: int, stats: str | Sequence[str] = "sum") -> np.ndarray:
    """Combine each run of ``pool`` adjacent bins of a ``(bins, tracks)`` array.

    Parameters
    ----------
    target : numpy.ndarray
        ``(..., bins, tracks)`` values; ``bins`` must be a multiple of ``pool``.
    pool : int
        Bins per output bin.
    stats : str or sequence of str, optional
        ``'sum'``, ``'mean'`` or ``'max'``, for all tracks or one per track.

    Returns
    -------
    numpy.ndarray
        float32 ``(..., bins // pool, tracks)``; sums are accumulated in float64.
    """
    arr = np.asarray(target)
    bins, tracks = arr.shape[-2], arr.shape[-1]
    if pool < 1 or bins % pool:
        raise ValueError(f"cannot pool {bins} bins by {pool}: it must divide the bin count")
    if pool == 1:
        return arr.astype(np.float32)
    grouped = arr.reshape(*arr.shape[:-2], bins // pool, pool, tracks).astype(np.float64)
    per_track = [stats] * tracks if isinstance(stats, str) else list(stats)
    if len(per_track) != tracks:
        raise ValueError(f"got {len(per_track)} pooling statistics for {tracks} tracks")
    out = np.empty((*arr.shape[:-2], bins // pool, tracks), dtype=np.float64)
    for stat in set(per_track):
        cols = [i for i, s in enumerate(per_track) if s == stat]
        block = grouped[..., cols]
        if stat == "sum":
            out[..., cols] = block.sum(axis=-2)
        elif stat == "mean":
            out[..., cols] = block.mean(axis=-2)
        elif stat == "max":
            out[..., cols] = block.max(axis=-2)
        else:
            raise ValueError(f"pooling statistic must be 'sum', 'mean' or 'max', not {stat!r}")
    return out.astype(np.float32)


# ----------------------------------------------------------------------------------------------
# Basenji TFRecords
# ----------------------------------------------------------------------------------------------


class TFRecordDataset(Dataset):
    """One split of a Basenji/Borzoi TFRecord data folder, held in memory.

    The folder holds ``tfrecords/{split}-{k}.tfr`` (read in numeric order of ``k``),
    ``statistics.json``, ``sequences.bed`` (the target interval of every record, with the split
    in column 4, in record order) and ``targets.txt`` (the track sheet). Records of either
    layout (one-hot or base indices, see :mod:`enformer.data.tfrecord`) are accepted.

    Items are ``{"sequence": float32 (sequence_length, 4), "target": float32 (target_length,
    num_targets), "index": int}`` (the record's position in the split).

    Everything is decoded once, at construction, and kept in memory: sequences as one byte per
    base, targets as float32. That suits small sets such as the 65-record ``basenji_tiny_hg38``;
    the full Basenji/Enformer sets (tens of thousands of records with thousands of tracks) do
    not fit in memory this way.

    Parameters
    ----------
    data_dir : str or os.PathLike
        The data folder.
    split : str
        ``'train'``, ``'valid'`` or ``'test'`` (any prefix of the TFRecord file names).
    genome : str, os.PathLike or Genome, optional
        Reference FASTA, needed to re-extract windows longer than the records.
    sequence_length : int, optional
        Input length to produce. By default the records' own length. A longer length is read
        from ``genome`` around each record's window ``[bed_start - crop_bp, bed_end +
        crop_bp)``, extended equally on both sides (:meth:`Interval.resize`: the centre stays
        put) and N-padded past chromosome ends; Enformer trains on 196,608 bp. A shorter length
        crops the record about its centre.
    pool : int, optional
        Number of adjacent target bins to combine (4 turns Basenji's 32-bp bins into
        Enformer's 128-bp bins); the target's bins must be a multiple of it.
    pool_stat : {'auto', 'sum', 'mean', 'max'}, optional
        How bins are combined. ``'auto'`` (the default) follows each track's ``sum_stat`` in
        ``targets.txt``: tracks summarised by a mean (``mean``, ``avg``, ``mean_sqrt``,
        ``median``, ``peak``) are averaged, ``max`` tracks take the maximum, and tracks
        summarised by a sum (``sum``, ``sum_sqrt``, ``sum_exp75``; also a missing sum_stat,
        Basenji's default) are summed. See the Notes.
    record_center : bool, optional
        When re-extracting a longer window, keep the record's own bases in the centre and take
        only the flanks from the genome (default True). Records can differ from a plain
        reference (the Basenji windows carry some ALT alleles), and their targets were made
        with the record's bases. False reads the whole window from the genome.
    verify : bool, optional
        Check the TFRecord CRC-32C checksums.

    Attributes
    ----------
    statistics : TFRecordStatistics
        The folder's ``statistics.json``.
    track_sheet : TrackSheet or None
        The folder's ``targets.txt``, if present.
    intervals : list of Interval or None
        Each record's target interval (from ``sequences.bed``), if present.
    windows : list of Interval or None
        Each item's input window after re-extraction or cropping.
    sequence_length, target_length, num_targets, bin_size : int
        Shapes of the items: ``sequence`` is ``(sequence_length, 4)`` and ``target``
        ``(target_length, num_targets)`` with bins of ``bin_size`` bp.
    strand_pairs : numpy.ndarray or None
        Track permutation swapping strand pairs (from ``targets.txt``), for augmentation.
    pool_stats : list of str or None
        The statistic each track was pooled with (None without pooling).

    Notes
    -----
    **Pooling.** The stored values are already per-bin summaries: a ``sum`` track's 32-bp bin
    holds the (scaled, clipped) sum of the coverage over its 32 bases, a ``mean`` track's the
    mean. Pooling by the same statistic keeps that meaning at 128 bp: the sum of four 32-bp sums
    is the 128-bp sum and the mean of four 32-bp means is the 128-bp mean, exactly so where no
    clipping was applied. ``sum_sqrt`` tracks are stored after a concave transform of the sum
    (``sum**0.75`` in Basenji, ``sqrt(1 + sum) - 1`` in Baskerville); they are summed too, so
    they keep growing with the bin width like counts (the Poisson loss expects that), but the
    result is not the value Basenji would compute for a 128-bp bin (undoing the transform would
    need to know which one made the files, and clipped bins cannot be undone). Pooled values
    are not re-clipped.

    Raises
    ------
    FileNotFoundError
        If the folder, its statistics or the split's TFRecord files are missing.
    ValueError
        If the records disagree with ``statistics.json`` or ``sequences.bed``, a re-extraction
        is asked without a genome, or ``pool`` does not divide the bins.
    """

    def __init__(
        self,
        data_dir: str | os.PathLike[str],
        split: str,
        *,
        genome: str | os.PathLike[str] | Genome | None = None,
        sequence_length: int | None = None,
        pool: int = 1,
        pool_stat: PoolStat = "auto",
        record_center: bool = True,
        verify: bool = True,
    ) -> None:
        self.data_dir = Path(data_dir)
        self.split = split
        if not self.data_dir.is_dir():
            raise FileNotFoundError(f"data folder not found: {self.data_dir}")
        self.statistics: TFRecordStatistics = read_statistics(self.data_dir / "statistics.json")
        pattern = self.data_dir / "tfrecords" / f"{split}-*.tfr"
        try:
            self.files = tfrecord_files(pattern)
        except FileNotFoundError:
            raise FileNotFoundError(
                f"no TFRecord files for split {split!r}: nothing matches {pattern}"
            ) from None
        sheet_path = self.data_dir / "targets.txt"
        self.track_sheet: TrackSheet | None = (
            TrackSheet.read(sheet_path) if sheet_path.is_file() else None
        )

        codes_list: list[np.ndarray] = []
        targets: list[np.ndarray] = []
        for record in read_tfrecords(self.files, statistics=self.statistics, verify=verify):
            codes_list.append(_codes_from_onehot(record["sequence"]))
            targets.append(record["target"])
        if not codes_list:
            raise ValueError(f"split {split!r} of {self.data_dir} has no records")
        record_length = len(codes_list[0])
        expected = self.statistics.counts.get(split)
        if expected is not None and expected != len(codes_list):
            logger.warning(
                "%s: statistics.json lists %d %s records but the files hold %d",
                self.data_dir, expected, split, len(codes_list),
            )  # fmt: skip

        self.intervals = self._read_intervals(len(codes_list))
        target = np.stack(targets)  # (N, bins, tracks)
        stats = self.statistics
        pool_width = stats.pool_width or 1
        if stats.crop_bp is not None:
            crop_bp = stats.crop_bp
        else:
            crop_bp = (record_length - target.shape[1] * pool_width) // 2
        windows = None
        if self.intervals is not None:
            windows = [
                Interval(iv.chrom, iv.start - crop_bp, iv.end + crop_bp, iv.name)
                for iv in self.intervals
            ]
            bad = [w for w in windows if len(w) != record_length]
            if bad:
                raise ValueError(
                    f"{self.data_dir / 'sequences.bed'}: interval {bad[0]} plus {crop_bp} bp "
                    f"crop on each side spans {len(bad[0]):,} bp, but the records hold "
                    f"{record_length:,} bp"
                )

        length = record_length if sequence_length is None else int(sequence_length)
        if length <= 0:
            raise ValueError(f"sequence_length must be positive, got {sequence_length}")
        codes = np.stack(codes_list)  # (N, L)
        if length != record_length:
            codes, windows = self._resize(
                codes, windows, length, genome=genome, record_center=record_center
            )
        self._codes = codes
        self.windows = windows

        self.pool_stats: list[str] | None = None
        if pool != 1:
            self.pool_stats = self._pool_stats(pool_stat, target.shape[-1])
            target = pool_bins(target, int(pool), self.pool_stats)
        self._targets = np.ascontiguousarray(target, dtype=np.float32)
        self.sequence_length = length
        self.target_length = self._targets.shape[1]
        self.num_targets = self._targets.shape[2]
        self.bin_size = pool_width * int(pool)
        self.strand_pairs = (
            self.track_sheet.strand_pair_permutation() if self.track_sheet is not None else None
        )
        if self.track_sheet is not None and len(self.track_sheet) != self.num_targets:
            raise ValueError(
                f"{sheet_path} lists {len(self.track_sheet)} tracks but the records hold "
                f"{self.num_targets}"
            )
        logger.info(
            "%s split %r: %d records, sequence %d bp, target %d x %d (%d-bp bins)",
            self.data_dir, split, len(self), length, self.target_length, self.num_targets,
            self.bin_size,
        )  # fmt: skip

    def _read_intervals(self, n_records: int) -> list[Interval] | None:
        bed = self.data_dir / "sequences.bed"
        if not bed.is_file():
            logger.info("%s has no sequences.bed; record coordinates are unknown", self.data_dir)
            return None
        intervals = [iv for iv in read_bed(bed) if iv.name == self.split]
        if len(intervals) != n_records:
            raise ValueError(
                f"{bed} lists {len(intervals)} {self.split!r} intervals but the TFRecords hold "
                f"{n_records} records"
            )
        return intervals

    def _resize(
        self,
        codes: np.ndarray,
        windows: list[Interval] | None,
        length: int,
        *,
        genome: str | os.PathLike[str] | Genome | None,
        record_center: bool,
    ) -> tuple[np.ndarray, list[Interval] | None]:
        record_length = codes.shape[1]
        if length < record_length:
            offset = record_length // 2 - length // 2  # as Interval.resize: centre stays put
            cropped = None if windows is None else [w.resize(length) for w in windows]
            return np.ascontiguousarray(codes[:, offset : offset + length]), cropped
        if windows is None:
            raise ValueError(
                f"re-extracting {length:,}-bp windows needs the records' coordinates, but "
                f"{self.data_dir} has no sequences.bed"
            )
        if genome is None:
            raise ValueError(
                f"sequence_length {length:,} is longer than the records ({record_length:,} bp): "
                "pass genome= (the FASTA the records were cut from) to re-extract the windows"
            )
        fasta, opened = _open_genome(genome)
        try:
            sizes = fasta.chrom_sizes
            out = np.empty((len(codes), length), dtype=np.uint8)
            new_windows = []
            padded = mismatched = 0
            for i, window in enumerate(windows):
                wide = window.resize(length)
                seq, n_pad = _fetch_codes(fasta, sizes, wide)
                offset = window.start - wide.start
                centre = seq[offset : offset + record_length]
                both = (centre < 4) & (codes[i] < 4)
                if both.any() and np.mean(centre[both] != codes[i][both]) > 0.05:
                    mismatched += 1
                if record_center:
                    seq[offset : offset + record_length] = codes[i]
                out[i] = seq
                padded += n_pad > 0
                new_windows.append(wide)
        finally:
            if opened:
                fasta.close()
        if mismatched:
            logger.warning(
                "%d of %d records differ from %s in more than 5%% of their bases: is it the "
                "genome (and assembly) the records were made from?",
                mismatched, len(codes), fasta.path.name,
            )  # fmt: skip
        if padded:
            logger.warning(
                "%d of %d re-extracted %d-bp windows run off a chromosome end and are padded "
                "with N", padded, len(codes), length,
            )  # fmt: skip
        return out, new_windows

    def _pool_stats(self, pool_stat: str, n_tracks: int) -> list[str]:
        if pool_stat != "auto":
            if pool_stat not in ("sum", "mean", "max"):
                raise ValueError(
                    f"pool_stat must be 'auto', 'sum', 'mean' or 'max', not {pool_stat!r}"
                )
            return [pool_stat] * n_tracks
        if self.track_sheet is None:
            raise ValueError(
                f"pool_stat='auto' follows each track's sum_stat in targets.txt, but "
                f"{self.data_dir} has none; pass pool_stat='sum' or 'mean'"
            )
        return [_track_pool_stat(t) for t in self.track_sheet]

    def __len__(self) -> int:
        return len(self._codes)

    def __getitem__(self, index: int) -> Sample:
        index = _check_index(index, len(self))
        return {
            "sequence": _onehot_tensor(self._codes[index]),
            "target": torch.from_numpy(self._targets[index].copy()),
            "index": index,
        }

    def __repr__(self) -> str:
        return (
            f"TFRecordDataset({str(self.data_dir)!r}, {self.split!r}, n={len(self)}, "
            f"sequence_length={self.sequence_length}, target=({self.target_length}, "
            f"{self.num_targets}), bin_size={self.bin_size})"
        )


def _check_index(index: int, n: int) -> int:
    index = int(index)
    if index < 0:
        index += n
    if not 0 <= index < n:
        raise IndexError(f"index {index} is out of range for a dataset of {n} items")
    return index


# ----------------------------------------------------------------------------------------------
# BigWig targets
# ----------------------------------------------------------------------------------------------


def summarize_coverage(
    coverage: np.ndarray,
    bin_size: int,
    *,
    sum_stat: str | None = "sum",
    scale: float | None = 1.0,
    clip: float | None = None,
    clip_soft: float | None = None,
    transform: Transform = "basenji",
) -> np.ndarray:
    """Turn per-base coverage into per-bin targets, as Basenji's data pipeline does.

    Parameters
    ----------
    coverage : numpy.ndarray
        Per-base values ``(L,)``; ``L`` must be a multiple of ``bin_size``. NaN should be
        replaced beforehand.
    bin_size : int
        Bases per bin.
    sum_stat : str or None, optional
        Per-bin statistic: ``'sum'`` (default; also None), ``'mean'``/``'avg'``, ``'max'``,
        ``'median'``, ``'sum_sqrt'``, ``'mean_sqrt'``/``'avg_sqrt'``, ``'sum_exp75'``.
    scale : float or None, optional
        Multiplier (None means 1).
    clip : float or None, optional
        Hard clip: values are limited to ``[-clip, clip]``.
    clip_soft : float or None, optional
        Soft clip threshold: the excess above it is square-rooted.
    transform : {'basenji', 'baskerville'}, optional
        Which pipeline to reproduce:

        * ``'basenji'`` (``basenji_data_read.py``, the Basenji2/Enformer and Borzoi-manuscript
          data): statistic per bin; ``sum_sqrt`` is ``sum ** 0.75`` (despite its name);
          soft clip ``x -> clip_soft + sqrt(x - clip_soft)`` above ``clip_soft``; hard clip;
          then times ``scale``.
        * ``'baskerville'`` (``hound_data_read.py``): coverage times ``scale`` first; statistic
          per bin; ``sum_sqrt``/``mean_sqrt`` are ``sqrt(1 + x) - 1`` and ``sum_exp75`` is
          ``(1 + x) ** 0.75 - 1``; soft clip ``x -> clip_soft - 1 + sqrt(x - clip_soft + 1)``;
          hard clip.

    Returns
    -------
    numpy.ndarray
        float32 ``(L // bin_size,)`` targets; statistics are computed in float64.

    Raises
    ------
    ValueError
        For an unknown statistic or transform, or a length that is not a multiple of the bin
        size.
    """
    values = np.asarray(coverage, dtype=np.float64)
    if values.ndim != 1 or bin_size < 1 or len(values) % bin_size:
        raise ValueError(
            f"coverage of shape {values.shape} cannot be cut into bins of {bin_size} bp"
        )
    if transform not in ("basenji", "baskerville"):
        raise ValueError(f"transform must be 'basenji' or 'baskerville', not {transform!r}")
    factor = 1.0 if scale is None else float(scale)
    stat = (sum_stat or "sum").lower()
    if transform == "baskerville":
        values = values * factor
    bins = values.reshape(-1, bin_size)
    if stat in ("sum", "sum_sqrt", "sum_exp75"):
        out = bins.sum(axis=1)
    elif stat in ("mean", "avg", "mean_sqrt", "avg_sqrt"):
        out = bins.mean(axis=1)
    elif stat == "max":
        out = bins.max(axis=1)
    elif stat == "median":
        out = np.median(bins, axis=1)
    else:
        raise ValueError(
            f"unknown sum_stat {sum_stat!r}; expected sum, mean, avg, max, median, sum_sqrt, "
            "mean_sqrt or sum_exp75"
        )
    if transform == "basenji":
        if stat == "sum_sqrt":
            out = np.maximum(out, 0.0) ** 0.75
        elif stat in ("mean_sqrt", "avg_sqrt", "sum_exp75"):
            raise ValueError(f"sum_stat {sum_stat!r} exists only with transform='baskerville'")
        if clip_soft is not None:
            over = out > clip_soft
            out[over] = clip_soft + np.sqrt(out[over] - clip_soft)
        if clip is not None:
            out = np.clip(out, -clip, clip)
        out = out * factor
    else:
        if stat in ("sum_sqrt", "mean_sqrt", "avg_sqrt"):
            out = np.sqrt(1.0 + np.maximum(out, 0.0)) - 1.0
        elif stat == "sum_exp75":
            out = (1.0 + np.maximum(out, 0.0)) ** 0.75 - 1.0
        if clip_soft is not None:
            over = out > clip_soft
            out[over] = clip_soft - 1.0 + np.sqrt(out[over] - clip_soft + 1.0)
        if clip is not None:
            out = np.clip(out, -clip, clip)
    return out.astype(np.float32)


class _Blacklist:
    """Sorted, merged intervals per chromosome with fast overlap queries."""

    def __init__(self, intervals: Iterable[Interval]) -> None:
        by_chrom: dict[str, list[tuple[int, int]]] = {}
        for iv in intervals:
            by_chrom.setdefault(iv.chrom, []).append((iv.start, iv.end))
        self._starts: dict[str, list[int]] = {}
        self._ends: dict[str, list[int]] = {}
        for chrom, spans in by_chrom.items():
            merged: list[list[int]] = []
            for start, end in sorted(spans):
                if merged and start <= merged[-1][1]:
                    merged[-1][1] = max(merged[-1][1], end)
                else:
                    merged.append([start, end])
            self._starts[chrom] = [s for s, _ in merged]
            self._ends[chrom] = [e for _, e in merged]

    def overlap(self, chrom: str, start: int, end: int) -> int:
        """Number of bases of ``[start, end)`` covered by the blacklist."""
        starts, ends = self._starts.get(chrom), self._ends.get(chrom)
        if not starts or ends is None:
            return 0
        i = bisect.bisect_right(ends, start)
        total = 0
        while i < len(starts) and starts[i] < end:
            total += min(ends[i], end) - max(starts[i], start)
            i += 1
        return total


def _resolve_track_file(track: Track, sheet_dir: Path | None, tracks_dir: Path | None) -> Path:
    if not track.file:
        raise ValueError(f"track {track.index} ({track.identifier}) has no file in the sheet")
    written = Path(track.file).expanduser()
    candidates: list[Path] = []
    if written.is_absolute():
        candidates.append(written)
    for folder in (tracks_dir, sheet_dir):
        if folder is None:
            continue
        if not written.is_absolute():
            candidates.append(folder / written)
        candidates.append(folder / written.name)
    if not candidates:
        candidates.append(written)
    for candidate in candidates:
        if candidate.is_file():
            return candidate
    tried = "\n".join(f"  - {c}" for c in dict.fromkeys(candidates))
    raise FileNotFoundError(
        f"BigWig file of track {track.index} ({track.identifier}) not found: {track.file!r}. "
        f"Looked at:\n{tried}\nPass tracks_dir= (the folder holding the files) or fix the "
        "sheet's 'file' column"
    )


class BigWigDataset(Dataset):
    """Sequences from a FASTA and targets from BigWig tracks, for BED intervals.

    Each interval is resized about its centre to ``sequence_length`` (the input window; see
    :meth:`Interval.resize`) and N-padded past chromosome ends. The targets cover the central
    ``target_length * bin_size`` bases of the window (``crop_bp`` bases are left on each side),
    computed per track from the BigWig named in the sheet's ``file`` column with
    :func:`summarize_coverage` (the sheet's ``sum_stat``, ``scale``, ``clip_soft`` and
    ``clip``). Bases without data (NaN) count as ``nan_value``.

    Targets are read lazily in :meth:`__getitem__`; BigWig handles are opened per process,
    so the dataset works in DataLoader workers.

    Parameters
    ----------
    intervals : str, os.PathLike or sequence of Interval
        A BED file or intervals.
    fasta : str, os.PathLike or Genome
        Reference genome.
    targets_sheet : str, os.PathLike or TrackSheet
        Basenji-style targets sheet: ``identifier, file, clip, clip_soft, scale, sum_stat,
        strand_pair, description`` (see :mod:`enformer.data.tracks`). Row ``i`` is target
        track ``i``.
    sequence_length : int
        Input window length in bp.
    bin_size : int
        Target bin width in bp.
    target_length : int, optional
        Number of target bins. By default all bins left after ``crop_bp``.
    crop_bp : int, optional
        Bases on each side of the window without targets. By default what is left around
        ``target_length`` bins (0 when neither is given). Give at most one of the two unless
        they agree.
    tracks_dir : str or os.PathLike, optional
        Folder of the BigWig files. A ``file`` entry is resolved, in order, as written (if
        absolute), relative to ``tracks_dir``, by its base name in ``tracks_dir``, relative to
        the sheet's folder, and by its base name there.
    blacklist : str, os.PathLike or sequence of Interval, optional
        Regions (e.g. the ENCODE blacklist) to avoid: intervals whose target region overlaps
        them (see ``blacklist_region``) by more than ``blacklist_max_fraction`` are dropped.
    blacklist_max_fraction : float, optional
        Largest tolerated blacklisted fraction of the region (default 0: any overlap drops the
        interval).
    blacklist_region : {'target', 'window'}, optional
        Which region must avoid the blacklist: the target region (the default; blacklisted
        regions make artefactual coverage, while their sequence is harmless input) or the
        whole input window.
    max_n_fraction : float or None, optional
        Drop intervals whose input window is more than this fraction N (including padding past
        chromosome ends); None keeps all. The default, 0.5, drops windows that are mostly
        unknown sequence. Checking reads every window once at construction.
    transform : {'basenji', 'baskerville'}, optional
        Which pipeline's per-bin transform to reproduce (see :func:`summarize_coverage`).
    nan_value : float, optional
        Value of bases without data (default 0; Basenji uses a low percentile of the window).
    missing_chrom : {'error', 'zero'}, optional
        What to do when a BigWig lacks an interval's chromosome: raise (the default; usually a
        naming mismatch such as ``chr1`` against ``1``) or use ``nan_value`` throughout, as
        Basenji does, with a warning.

    Attributes
    ----------
    intervals : list of Interval
        The kept intervals, as given.
    windows : list of Interval
        Their input windows.
    kept : list of int
        Position of each kept interval in the input.
    track_sheet : TrackSheet
        The sheet.
    files : list of pathlib.Path
        Resolved BigWig path of every track.
    strand_pairs : numpy.ndarray
        The sheet's strand-pair permutation, for augmentation.
    target_length, num_targets : int
        Target shape ``(target_length, num_targets)``.

    Raises
    ------
    FileNotFoundError
        If the BED, FASTA, sheet or a BigWig file is missing.
    ValueError
        On inconsistent lengths, unknown chromosomes (the message names the file and the
        chromosome), intervals entirely outside their chromosome, or an empty result after
        filtering.
    """

    def __init__(
        self,
        intervals: str | os.PathLike[str] | Sequence[Interval],
        fasta: str | os.PathLike[str] | Genome,
        targets_sheet: str | os.PathLike[str] | TrackSheet,
        *,
        sequence_length: int,
        bin_size: int,
        target_length: int | None = None,
        crop_bp: int | None = None,
        tracks_dir: str | os.PathLike[str] | None = None,
        blacklist: str | os.PathLike[str] | Sequence[Interval] | None = None,
        blacklist_max_fraction: float = 0.0,
        blacklist_region: Literal["target", "window"] = "target",
        max_n_fraction: float | None = 0.5,
        transform: Transform = "basenji",
        nan_value: float = 0.0,
        missing_chrom: Literal["error", "zero"] = "error",
    ) -> None:
        if sequence_length <= 0 or bin_size <= 0:
            raise ValueError("sequence_length and bin_size must be positive")
        if transform not in ("basenji", "baskerville"):
            raise ValueError(f"transform must be 'basenji' or 'baskerville', not {transform!r}")
        if blacklist_region not in ("target", "window"):
            raise ValueError(
                f"blacklist_region must be 'target' or 'window', not {blacklist_region!r}"
            )
        if missing_chrom not in ("error", "zero"):
            raise ValueError(f"missing_chrom must be 'error' or 'zero', not {missing_chrom!r}")
        self.sequence_length = int(sequence_length)
        self.bin_size = int(bin_size)
        self.target_length, self.crop_bp = self._target_geometry(target_length, crop_bp)
        self.transform = transform
        self.nan_value = float(nan_value)
        self.missing_chrom = missing_chrom

        if isinstance(targets_sheet, TrackSheet):
            self.track_sheet = targets_sheet
        else:
            self.track_sheet = TrackSheet.read(targets_sheet)
        sheet_dir = self.track_sheet.path.parent if self.track_sheet.path is not None else None
        folder = Path(tracks_dir) if tracks_dir is not None else None
        self.files = [_resolve_track_file(t, sheet_dir, folder) for t in self.track_sheet]
        for track in self.track_sheet:  # fail now, not in a worker, on a bad sum_stat
            summarize_coverage(
                np.zeros(self.bin_size), self.bin_size, sum_stat=track.sum_stat,
                transform=transform,
            )  # fmt: skip
        self.num_targets = len(self.track_sheet)
        self.strand_pairs = self.track_sheet.strand_pair_permutation()

        given = read_bed(intervals) if isinstance(intervals, str | os.PathLike) else list(intervals)
        if not given:
            raise ValueError("no intervals given")
        black = None
        if blacklist is not None:
            black = _Blacklist(
                read_bed(blacklist) if isinstance(blacklist, str | os.PathLike) else blacklist
            )

        self._genome_arg = fasta
        genome, opened = _open_genome(fasta)
        self._genome: Genome | None = genome
        self._genome_opened = opened
        self._pid = os.getpid()
        self._handles: list[Any] | None = None
        self._bw_chroms: list[dict[str, int]] = self._check_bigwigs(given)

        sizes = genome.chrom_sizes
        kept: list[int] = []
        windows: list[Interval] = []
        dropped_black = dropped_n = padded = 0
        for i, iv in enumerate(given):
            chrom = genome.resolve_chrom(iv.chrom)
            window = iv.resize(self.sequence_length)
            if window.end <= 0 or window.start >= sizes[chrom]:
                raise ValueError(
                    f"interval {iv} lies outside {chrom} (length {sizes[chrom]:,}) in "
                    f"{genome.path.name}; is it the same assembly?"
                )
            if black is not None:
                if blacklist_region == "target":
                    b_start = window.start + self.crop_bp
                    b_end = b_start + self.target_length * self.bin_size
                else:
                    b_start, b_end = window.start, window.end
                covered = black.overlap(iv.chrom, b_start, b_end)
                if covered > 0 and covered > blacklist_max_fraction * (b_end - b_start):
                    dropped_black += 1
                    continue
            n_pad = max(0, -window.start) + max(0, window.end - sizes[chrom])
            if max_n_fraction is not None:
                seq_codes, n_pad = _fetch_codes(genome, sizes, window)
                if np.count_nonzero(seq_codes == 4) > max_n_fraction * len(window):
                    dropped_n += 1
                    continue
            padded += n_pad > 0
            kept.append(i)
            windows.append(window)
        if dropped_black or dropped_n:
            logger.info(
                "BigWigDataset: kept %d of %d intervals (%d overlap the blacklist, %d are more "
                "than %s N)", len(kept), len(given), dropped_black, dropped_n, max_n_fraction,
            )  # fmt: skip
        if padded:
            logger.warning(
                "%d of %d windows run off a chromosome end and are padded with N",
                padded, len(kept),
            )  # fmt: skip
        if not kept:
            raise ValueError(
                f"no interval is left after filtering ({dropped_black} overlap the blacklist, "
                f"{dropped_n} have more than {max_n_fraction} N)"
            )
        self.kept = kept
        self.intervals = [given[i] for i in kept]
        self.windows = windows
        self._sizes = sizes

    def _target_geometry(self, target_length: int | None, crop_bp: int | None) -> tuple[int, int]:
        length, size = self.sequence_length, self.bin_size
        if target_length is None:
            crop = 0 if crop_bp is None else int(crop_bp)
            span = length - 2 * crop
            if crop < 0 or span <= 0 or span % size:
                raise ValueError(
                    f"sequence_length {length} minus 2 x crop_bp {crop} must be a positive "
                    f"multiple of bin_size {size}"
                )
            return span // size, crop
        target_length = int(target_length)
        excess = length - target_length * size
        if target_length <= 0 or excess < 0 or excess % 2:
            raise ValueError(
                f"{target_length} bins of {size} bp do not fit centred in {length} bp "
                "(the difference must be even and non-negative)"
            )
        if crop_bp is not None and int(crop_bp) != excess // 2:
            raise ValueError(
                f"crop_bp {crop_bp} disagrees with target_length {target_length}: "
                f"{target_length} bins of {size} bp in {length} bp leave {excess // 2} per side"
            )
        return target_length, excess // 2

    def _open_bigwigs(self) -> list[Any]:
        try:
            import pyBigWig
        except ImportError as err:  # pragma: no cover - depends on the environment
            raise ImportError(
                "BigWigDataset needs pyBigWig: pip install 'enformer[tracks]'"
            ) from err
        handles: list[Any] = []
        for path in self.files:
            try:
                handle = pyBigWig.open(str(path))
            except RuntimeError:
                handle = None
            if handle is None or not handle.isBigWig():
                for other in handles:
                    other.close()
                raise ValueError(f"{path} is not a readable BigWig file (corrupt or truncated?)")
            handles.append(handle)
        return handles

    def _check_bigwigs(self, intervals: Sequence[Interval]) -> list[dict[str, int]]:
        handles = self._open_bigwigs()
        try:
            chroms = [dict(h.chroms()) for h in handles]
        finally:
            for handle in handles:
                handle.close()
        needed = list(dict.fromkeys(iv.chrom for iv in intervals))
        for path, names in zip(self.files, chroms, strict=True):
            missing = [c for c in needed if c not in names]
            if not missing:
                continue
            sample = ", ".join(list(names)[:6]) + (", ..." if len(names) > 6 else "")
            hint = ""
            first = missing[0]
            alt = first[3:] if first.startswith("chr") else "chr" + first
            if alt in names:
                hint = f" (it has {alt!r}: rename the intervals' chromosomes or the file's)"
            message = (
                f"BigWig {path} has no chromosome {first!r}{hint}; "
                f"{len(missing)} interval chromosome(s) missing. It has: {sample}"
            )
            if self.missing_chrom == "error":
                raise ValueError(message + "; pass missing_chrom='zero' to read them as no data")
            logger.warning("%s; reading them as no data", message)
        return chroms

    def _state(self) -> tuple[Genome, list[Any]]:
        if self._handles is None or os.getpid() != self._pid:
            self._handles = self._open_bigwigs()
            self._pid = os.getpid()
        if self._genome is None:
            self._genome, self._genome_opened = _open_genome(self._genome_arg)
        return self._genome, self._handles

    def __getstate__(self) -> dict[str, Any]:
        state = self.__dict__.copy()
        state["_handles"] = None
        if self._genome_opened:
            state["_genome"] = None
        return state

    def __len__(self) -> int:
        return len(self.windows)

    def _coverage(self, handle: Any, chroms: dict[str, int], chrom: str, start: int, end: int):
        out = np.full(end - start, self.nan_value, dtype=np.float64)
        length = chroms.get(chrom)
        if length is None:
            return out
        lo, hi = max(start, 0), min(end, length)
        if hi > lo:
            values = np.asarray(handle.values(chrom, lo, hi, numpy=True), dtype=np.float64)
            values[np.isnan(values)] = self.nan_value
            out[lo - start : hi - start] = values
        return out

    def __getitem__(self, index: int) -> Sample:
        index = _check_index(index, len(self))
        genome, handles = self._state()
        window = self.windows[index]
        codes, _ = _fetch_codes(genome, self._sizes, window)
        start = window.start + self.crop_bp
        end = start + self.target_length * self.bin_size
        target = np.empty((self.target_length, self.num_targets), dtype=np.float32)
        for j, track in enumerate(self.track_sheet):
            cov = self._coverage(handles[j], self._bw_chroms[j], window.chrom, start, end)
            target[:, j] = summarize_coverage(
                cov,
                self.bin_size,
                sum_stat=track.sum_stat,
                scale=track.scale,
                clip=track.clip,
                clip_soft=track.clip_soft,
                transform=self.transform,
            )
        return {
            "sequence": _onehot_tensor(codes),
            "target": torch.from_numpy(target),
            "index": index,
        }

    def close(self) -> None:
        """Close the BigWig handles and the genome if this dataset opened it."""
        if self._handles is not None:
            for handle in self._handles:
                handle.close()
            self._handles = None
        if self._genome is not None and self._genome_opened:
            self._genome.close()
            self._genome = None

    def __repr__(self) -> str:
        return (
            f"BigWigDataset(n={len(self)}, sequence_length={self.sequence_length}, "
            f"target=({self.target_length}, {self.num_targets}), bin_size={self.bin_size})"
        )


# ----------------------------------------------------------------------------------------------
# Arrays
# ----------------------------------------------------------------------------------------------


class ArrayDataset(Dataset):
    """Sequences (and targets) already in memory.

    Parameters
    ----------
    sequences : array, tensor or sequence of str
        ``(N, L, 4)`` one-hot DNA (A, C, G, T; N all zeros), or ``N`` strings of equal length
        (encoded with :func:`enformer.data.sequence.one_hot`; IUPAC codes other than ACGT
        become N).
    targets : array or tensor, optional
        ``(N, bins, tracks)`` values. Without them items have no ``target``.

    Raises
    ------
    ValueError
        If the shapes are wrong or the counts differ.
    """

    def __init__(
        self,
        sequences: np.ndarray | torch.Tensor | Sequence[str],
        targets: np.ndarray | torch.Tensor | None = None,
    ) -> None:
        if isinstance(sequences, np.ndarray | torch.Tensor):
            seqs = torch.as_tensor(np.asarray(sequences) if isinstance(sequences, np.ndarray)
                                   else sequences)  # fmt: skip
        else:
            seqs = torch.from_numpy(one_hot(list(sequences), dtype=np.uint8, ambiguous="n"))
        if seqs.ndim != 3 or seqs.shape[-1] != 4:
            raise ValueError(f"sequences must be (N, L, 4) one-hot, got {tuple(seqs.shape)}")
        self._sequences = seqs
        self._targets: torch.Tensor | None = None
        if targets is not None:
            tgt = torch.as_tensor(targets)
            if tgt.ndim != 3:
                raise ValueError(f"targets must be (N, bins, tracks), got {tuple(tgt.shape)}")
            if len(tgt) != len(seqs):
                raise ValueError(f"{len(seqs)} sequences but {len(tgt)} targets")
            self._targets = tgt

    def __len__(self) -> int:
        return len(self._sequences)

    def __getitem__(self, index: int) -> Sample:
        index = _check_index(index, len(self))
        item: Sample = {"sequence": self._sequences[index].to(torch.float32), "index": index}
        if self._targets is not None:
            item["target"] = self._targets[index].to(torch.float32)
        return item


# ----------------------------------------------------------------------------------------------
# Augmentation
# ----------------------------------------------------------------------------------------------


def shift_sequence(x: torch.Tensor, shift: int, pad_value: float = 0.0) -> torch.Tensor:
    """Shift one-hot DNA along its length axis, filling the vacated bases.

    Parameters
    ----------
    x : torch.Tensor
        ``(..., L, 4)`` one-hot DNA.
    shift : int
        Positive values move the sequence right (towards higher positions): ``out[i] =
        x[i - shift]``; the first ``shift`` bases become padding. Negative values move it left.
    pad_value : float, optional
        Fill value: 0 gives N (all zeros, as Baskerville pads); Basenji pads with 0.25.

    Returns
    -------
    torch.Tensor
        A new tensor of the same shape.
    """
    shift = int(shift)
    length = x.shape[-2]
    out = torch.full_like(x, pad_value)
    if abs(shift) >= length:
        return out
    if shift > 0:
        out[..., shift:, :] = x[..., : length - shift, :]
    elif shift < 0:
        out[..., : length + shift, :] = x[..., -shift:, :]
    else:
        out.copy_(x)
    return out


def _as_permutation(
    strand_pairs: np.ndarray | TrackSheet | Sequence[int] | torch.Tensor,
) -> torch.Tensor:
    if isinstance(strand_pairs, TrackSheet):
        perm = strand_pairs.strand_pair_permutation()
    else:
        perm = np.asarray(strand_pairs.cpu() if isinstance(strand_pairs, torch.Tensor)
                          else strand_pairs, dtype=np.int64)  # fmt: skip
    n = len(perm)
    if perm.ndim != 1 or not np.array_equal(np.sort(perm), np.arange(n)):
        raise ValueError("strand_pairs must be a permutation of the track indices")
    if not np.array_equal(perm[perm], np.arange(n)):
        raise ValueError("strand_pairs must pair tracks: applying it twice must give identity")
    return torch.from_numpy(perm)


def reverse_complement_sample(
    sample: Sample, strand_pairs: np.ndarray | TrackSheet | Sequence[int] | None = None
) -> Sample:
    """Reverse-complement a sample: sequence, and targets to match.

    Parameters
    ----------
    sample : dict
        With ``sequence`` ``(..., L, 4)`` and optionally ``target`` ``(..., bins, tracks)``.
    strand_pairs : array, TrackSheet or sequence of int, optional
        Track permutation pairing the two strands of stranded tracks
        (:meth:`TrackSheet.strand_pair_permutation`); None leaves the track order alone.

    Returns
    -------
    dict
        A new dict: the sequence reversed and complemented, the target's bin axis reversed and
        its strand-paired tracks swapped; other entries are kept.
    """
    out = dict(sample)
    out["sequence"] = torch.flip(torch.as_tensor(sample["sequence"]), dims=(-2, -1))
    if "target" in sample:
        target = torch.flip(torch.as_tensor(sample["target"]), dims=(-2,))
        if strand_pairs is not None:
            perm = _as_permutation(strand_pairs)
            if len(perm) != target.shape[-1]:
                raise ValueError(
                    f"strand_pairs has {len(perm)} tracks, the target {target.shape[-1]}"
                )
            target = target[..., perm.to(target.device)]
        out["target"] = target
    return out


def augment(
    sample: Sample,
    shift: int = 0,
    rc: bool = False,
    strand_pairs: np.ndarray | TrackSheet | Sequence[int] | None = None,
    *,
    pad_value: float = 0.0,
) -> Sample:
    """Apply one Enformer training augmentation to a sample: shift, then reverse complement.

    Parameters
    ----------
    sample : dict
        With ``sequence`` ``(..., L, 4)`` and optionally ``target`` ``(..., bins, tracks)``.
    shift : int, optional
        Bases to shift the sequence by (:func:`shift_sequence`; Enformer draws from -3..3). The
        targets are not moved: a shift smaller than a bin leaves them in place, as in Basenji.
    rc : bool, optional
        Reverse-complement afterwards (:func:`reverse_complement_sample`).
    strand_pairs : array, TrackSheet or sequence of int, optional
        Strand-pair permutation of the tracks, used when ``rc``.
    pad_value : float, optional
        Fill of the shifted-in bases (0 = N).

    Returns
    -------
    dict
        A new dict; the input is not modified.
    """
    out = dict(sample)
    if shift:
        out["sequence"] = shift_sequence(torch.as_tensor(sample["sequence"]), shift, pad_value)
    if rc:
        out = reverse_complement_sample(out, strand_pairs)
    return out


class AugmentedDataset(Dataset):
    """Wrap a dataset with random shifts and reverse complements, reproducibly.

    The augmentation of item ``index`` in epoch ``epoch`` is drawn from
    ``numpy.random.default_rng([seed, epoch, index])``, so it depends on nothing else: not on
    the number of DataLoader workers, nor on the order items are requested. Call
    :meth:`set_epoch` at the start of each epoch. The epoch lives in shared memory, so the
    change reaches persistent DataLoader workers too.

    Items gain two entries: ``shift`` (int) and ``rc`` (bool).

    Parameters
    ----------
    dataset : Dataset
        Yields dicts with ``sequence`` and ``target``.
    max_shift : int, optional
        Shifts are drawn uniformly from ``-max_shift..max_shift`` (Enformer: 3).
    rc : bool, optional
        Reverse-complement half of the items (at random).
    strand_pairs : array, TrackSheet or sequence of int, optional
        Strand-pair permutation of the tracks. By default the wrapped dataset's
        ``strand_pairs`` attribute; without either, tracks are not swapped (a warning is
        logged).
    seed : int, optional
        Base seed.
    pad_value : float, optional
        Fill of shifted-in bases (0 = N, as Baskerville; Basenji used 0.25).
    """

    def __init__(
        self,
        dataset: Dataset,
        max_shift: int = 3,
        rc: bool = True,
        strand_pairs: np.ndarray | TrackSheet | Sequence[int] | None = None,
        seed: int = 0,
        *,
        pad_value: float = 0.0,
    ) -> None:
        if max_shift < 0:
            raise ValueError(f"max_shift must be >= 0, got {max_shift}")
        self.dataset = dataset
        self.max_shift = int(max_shift)
        self.rc = bool(rc)
        self.seed = int(seed)
        self.pad_value = float(pad_value)
        if strand_pairs is None:
            strand_pairs = getattr(dataset, "strand_pairs", None)
            if strand_pairs is None and self.rc:
                logger.warning(
                    "AugmentedDataset: no strand pairs known; reverse complements keep the "
                    "track order (wrong for stranded tracks such as CAGE)"
                )
        self.strand_pairs = None if strand_pairs is None else _as_permutation(strand_pairs)
        self._epoch = torch.zeros((), dtype=torch.int64).share_memory_()

    @property
    def epoch(self) -> int:
        """The current epoch."""
        return int(self._epoch.item())

    def set_epoch(self, epoch: int) -> None:
        """Set the epoch whose augmentations are drawn.

        Parameters
        ----------
        epoch : int
            Non-negative epoch number.
        """
        if epoch < 0:
            raise ValueError(f"epoch must be >= 0, got {epoch}")
        self._epoch.fill_(int(epoch))

    def draw(self, index: int, epoch: int | None = None) -> tuple[int, bool]:
        """Return the ``(shift, rc)`` used for ``index`` in ``epoch`` (default: current).

        Parameters
        ----------
        index : int
            Item index.
        epoch : int, optional
            Epoch; the current one by default.

        Returns
        -------
        tuple of (int, bool)
            The shift and whether the item is reverse-complemented.
        """
        epoch = self.epoch if epoch is None else int(epoch)
        rng = np.random.default_rng([self.seed, epoch, int(index)])
        shift = int(rng.integers(-self.max_shift, self.max_shift + 1))
        rc = bool(rng.integers(0, 2)) if self.rc else False
        return shift, rc

    def __len__(self) -> int:
        return len(self.dataset)  # type: ignore[arg-type]

    def __getitem__(self, index: int) -> Sample:
        index = _check_index(index, len(self))
        shift, rc = self.draw(index)
        sample = augment(
            self.dataset[index], shift, rc, self.strand_pairs, pad_value=self.pad_value
        )
        sample["shift"] = shift
        sample["rc"] = rc
        return sample


def worker_init_fn(worker_id: int) -> None:
    """Seed ``random`` and ``numpy`` in a DataLoader worker from torch's per-worker seed.

    PyTorch seeds each worker's torch generator with ``base_seed + worker_id`` (the base seed
    comes from the DataLoader's ``generator``), but not Python's or numpy's global generators;
    this does, so code using them is reproducible too.

    Parameters
    ----------
    worker_id : int
        Passed by the DataLoader.
    """
    seed = torch.initial_seed() % 2**32
    random.seed(seed)
    np.random.seed(seed)
    logger.debug("worker %d seeded with %d", worker_id, seed)


def make_generator(seed: int) -> torch.Generator:
    """Return a seeded ``torch.Generator`` for a DataLoader's shuffling and worker seeds.

    Use with :func:`worker_init_fn`: ``DataLoader(ds, shuffle=True, num_workers=2,
    generator=make_generator(0), worker_init_fn=worker_init_fn)`` gives the same batches on
    every run.

    Parameters
    ----------
    seed : int
        The seed.

    Returns
    -------
    torch.Generator
        A CPU generator.
    """
    generator = torch.Generator()
    generator.manual_seed(int(seed))
    return generator
