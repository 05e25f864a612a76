"""Enformer's training augmentation (shifts and reverse complements), and worker seeding."""

from __future__ import annotations

import logging
import random
from collections.abc import Sequence

import numpy as np
import torch
from torch.utils.data import Dataset

from ..tracks import TrackSheet
from .common import Sample, check_index

__all__ = [
    "AugmentedDataset",
    "augment",
    "make_generator",
    "reverse_complement_sample",
    "shift_sequence",
    "worker_init_fn",
]

logger = logging.getLogger(__name__)


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
        index = check_index(index, len(self))
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
