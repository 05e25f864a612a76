"""Targets computed from BigWig coverage listed in a Basenji targets sheet, bin by bin."""

from __future__ import annotations

import bisect
import logging
import os
from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import Any, Literal

import numpy as np
import torch
from torch.utils.data import Dataset

from ..genome import Genome, Interval, read_bed
from ..tracks import Track, TrackSheet
from .common import Sample, Transform, check_index, codes_onehot, fetch_codes, open_genome

__all__ = ["BigWigDataset", "restore_coverage", "summarize_coverage"]

logger = logging.getLogger(__name__)


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


def restore_coverage(
    values: np.ndarray,
    *,
    sum_stat: Sequence[str | None],
    scale: Sequence[float | None],
    clip_soft: Sequence[float | None],
    transform: Transform = "basenji",
    unscale: bool = False,
) -> np.ndarray:
    """Undo :func:`summarize_coverage`'s squashing of predictions ``(..., tracks)``, per track,
    as baskerville's ``untransform_preds1`` (``'basenji'``) and ``untransform_preds``
    (``'baskerville'``) do before Borzoi's scripts sum a gene's exon bins.

    * ``'basenji'``: divide by ``scale``; above ``clip_soft``, ``c + (x - c) ** 2``; for
      ``sum_sqrt`` tracks the 4/3 power (undoing ``sum ** 0.75``); times ``scale`` again unless
      ``unscale``. So by default the values are the summed coverage times ``scale``, the
      units of Borzoi's published scores.
    * ``'baskerville'``: above ``clip_soft``, ``c - 1 + (x - c + 1) ** 2``; for ``*_sqrt`` tracks
      ``(x + 1) ** 2 - 1`` and for ``sum_exp75`` ``(x + 1) ** (4/3) - 1``; divided by ``scale``
      if ``unscale``.

    A hard clip cannot be undone. ``None`` entries mean: no soft clip, scale 1, ``sum``.
    Returns float32 values of the shape of ``values`` (computed in float32).
    """
    x = np.array(values, dtype=np.float32)  # a copy, worked on in place
    n = x.shape[-1]
    if not len(sum_stat) == len(scale) == len(clip_soft) == n:
        raise ValueError(f"restore_coverage: {n} tracks but {len(sum_stat)} sum_stat, "
                         f"{len(scale)} scale and {len(clip_soft)} clip_soft values")  # fmt: skip
    if transform not in ("basenji", "baskerville"):
        raise ValueError(f"transform must be 'basenji' or 'baskerville', not {transform!r}")
    factor = np.array([1.0 if s is None else s for s in scale], dtype=np.float32)
    soft = np.array([np.inf if c is None else c for c in clip_soft], dtype=np.float32)
    stats = [(s or "sum").lower() for s in sum_stat]
    if transform == "basenji":
        x /= factor
    over = x > soft  # the soft clip's inverse: c + (x - c)^2, shifted by 1 in baskerville's
    c = np.broadcast_to(soft, x.shape)[over] - (0.0 if transform == "basenji" else 1.0)
    x[over] = c + (x[over] - c) ** 2
    if transform == "basenji":
        sqrt = np.array([s == "sum_sqrt" for s in stats])
        x[..., sqrt] = np.maximum(x[..., sqrt], 0.0) ** (4.0 / 3.0)
        if not unscale:
            x *= factor
        return x
    sqrt = np.array([s in ("sum_sqrt", "mean_sqrt", "avg_sqrt") for s in stats])
    exp75 = np.array([s == "sum_exp75" for s in stats])
    x[..., sqrt] = (np.maximum(x[..., sqrt], -1.0) + 1.0) ** 2 - 1.0
    x[..., exp75] = (np.maximum(x[..., exp75], -1.0) + 1.0) ** (4.0 / 3.0) - 1.0
    if unscale:
        x /= factor
    return x


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
        f"Looked at:\n{tried}\nPass tracks_dir= / --tracks-dir (the folder of the files) or "
        "fix the sheet's 'file' column"
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
        genome, opened = open_genome(fasta)
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
                seq_codes, n_pad = fetch_codes(genome, sizes, window)
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
            self._genome, self._genome_opened = open_genome(self._genome_arg)
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
        index = check_index(index, len(self))
        genome, handles = self._state()
        window = self.windows[index]
        codes, _ = fetch_codes(genome, self._sizes, window)
        start = window.start + self.crop_bp
        end = start + self.target_length * self.bin_size
        target = np.empty((self.target_length, self.num_targets), dtype=np.float32)
        for j, track in enumerate(self.track_sheet):
            cov = self._coverage(handles[j], self._bw_chroms[j], window.chrom, start, end)
            target[:, j] = summarize_coverage(
                cov, self.bin_size, sum_stat=track.sum_stat, scale=track.scale, clip=track.clip,
                clip_soft=track.clip_soft, transform=self.transform,
            )  # fmt: skip
        return {
            "sequence": codes_onehot(codes),
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
