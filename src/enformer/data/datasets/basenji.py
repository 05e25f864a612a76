"""Basenji/Borzoi TFRecord splits as a data set, optionally re-extracted at a longer length."""

from __future__ import annotations

import logging
import os
from pathlib import Path

import numpy as np
import torch
from torch.utils.data import Dataset

from ..genome import Genome, Interval, read_bed
from ..tfrecord import TFRecordStatistics, read_statistics, read_tfrecords, tfrecord_files
from ..tracks import TrackSheet
from .common import (
    PoolStat,
    Sample,
    check_index,
    codes_onehot,
    fetch_codes,
    onehot_codes,
    open_genome,
    pool_bins,
    track_pool_stat,
)

__all__ = ["TFRecordDataset"]

logger = logging.getLogger(__name__)


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
            codes_list.append(onehot_codes(record["sequence"]))
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
        self.sequence_codes = codes
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
        fasta, opened = open_genome(genome)
        try:
            sizes = fasta.chrom_sizes
            out = np.empty((len(codes), length), dtype=np.uint8)
            new_windows = []
            padded = mismatched = 0
            for i, window in enumerate(windows):
                wide = window.resize(length)
                seq, n_pad = fetch_codes(fasta, sizes, wide)
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
        return [track_pool_stat(t) for t in self.track_sheet]

    def __len__(self) -> int:
        return len(self.sequence_codes)

    def __getitem__(self, index: int) -> Sample:
        index = check_index(index, len(self))
        return {
            "sequence": codes_onehot(self.sequence_codes[index]),
            "target": torch.from_numpy(self._targets[index].copy()),
            "index": index,
        }

    def __repr__(self) -> str:
        return (
            f"TFRecordDataset({str(self.data_dir)!r}, {self.split!r}, n={len(self)}, "
            f"sequence_length={self.sequence_length}, target=({self.target_length}, "
            f"{self.num_targets}), bin_size={self.bin_size})"
        )
