"""Deterministic data order and the data sets of a run.

Exact resume needs the order of the examples to be a function of ``(seed, epoch)`` only:
:class:`EpochBatchSampler` draws the permutation of epoch ``e`` from
``numpy.random.default_rng([seed, e])``, cuts it into global batches of
``world_size × batch_size`` examples and hands rank ``r`` the ``r``-th contiguous slice of each.
The union of the ranks' batches is therefore the batch a single process would draw with the
global batch size, and resuming at batch ``k`` of an epoch (:meth:`EpochBatchSampler.set_start`)
skips exactly the batches already consumed, without loading them.

A sample is a dict ``{"sequence": float32 (L, 4), "target": float32 (bins, tracks),
"index": int}``. Data sets come from :mod:`enformer.data.datasets`. For
augmentation to resume exactly as well, a data set's random choices should depend only on its
seed, the epoch (it may define ``set_epoch(epoch)``, which the training loop calls) and the
example index, never on a stream of draws.
"""

from __future__ import annotations

import logging
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch.utils.data import DataLoader, Dataset, Sampler

from ..data.datasets import (
    ArrayDataset,
    AugmentedDataset,
    BigWigDataset,
    TFRecordDataset,
    worker_init_fn,
)
from ..data.genome import read_bed
from .config import DataConfig

__all__ = [
    "EpochBatchSampler",
    "ShardSampler",
    "build_dataset",
    "epoch_batches",
    "load_npz_split",
    "make_eval_loader",
    "make_train_loader",
    "resolve_track_sheet_path",
]

log = logging.getLogger(__name__)


class EpochBatchSampler(Sampler[list[int]]):
    """Batches whose order is a pure function of ``(seed, epoch)``, sharded over ranks.

    Parameters
    ----------
    num_samples
        Size of the data set.
    batch_size
        Examples per batch on this rank.
    shuffle
        Permute each epoch (else the natural order).
    seed
        Seed of the permutations.
    drop_last
        Drop the last, incomplete global batch (required with more than one rank).
    rank, world_size
        This process's rank and the number of processes.
    """

    def __init__(
        self,
        num_samples: int,
        batch_size: int,
        *,
        shuffle: bool = True,
        seed: int = 0,
        drop_last: bool = True,
        rank: int = 0,
        world_size: int = 1,
    ) -> None:
        if batch_size < 1:
            raise ValueError(f"batch_size must be >= 1, got {batch_size}")
        if world_size > 1 and not drop_last:
            raise ValueError("more than one rank needs drop_last=True (equal batches everywhere)")
        if not 0 <= rank < world_size:
            raise ValueError(f"rank {rank} outside 0..{world_size - 1}")
        self.num_samples = int(num_samples)
        self.batch_size = int(batch_size)
        self.shuffle = shuffle
        self.seed = int(seed)
        self.drop_last = drop_last
        self.rank = rank
        self.world_size = world_size
        self.epoch = 0
        self.start = 0
        if len(self) == 0:
            raise ValueError(
                f"{num_samples} examples make no full batch of {batch_size * world_size} "
                f"({batch_size} per rank × {world_size} ranks)"
            )

    @property
    def global_batch_size(self) -> int:
        """Examples per batch over all ranks."""
        return self.batch_size * self.world_size

    def set_epoch(self, epoch: int) -> None:
        """Select the epoch (and start again from its first batch)."""
        self.epoch = int(epoch)
        self.start = 0

    def set_start(self, batch: int) -> None:
        """Skip the first ``batch`` batches of the current epoch (for resuming)."""
        if not 0 <= batch <= len(self):
            raise ValueError(f"start batch {batch} outside 0..{len(self)}")
        self.start = int(batch)

    def order(self, epoch: int) -> np.ndarray:
        """Global order of the examples in ``epoch``, ``(num_samples,)`` int64."""
        if not self.shuffle:
            return np.arange(self.num_samples, dtype=np.int64)
        rng = np.random.default_rng([self.seed, int(epoch)])
        return rng.permutation(self.num_samples).astype(np.int64)

    def __len__(self) -> int:
        full = self.num_samples // self.global_batch_size
        if self.drop_last or self.num_samples % self.global_batch_size == 0:
            return full
        return full + 1

    def __iter__(self) -> Iterator[list[int]]:
        order = self.order(self.epoch)
        g, b = self.global_batch_size, self.batch_size
        for k in range(self.start, len(self)):
            chunk = order[k * g : (k + 1) * g]
            yield chunk[self.rank * b : (self.rank + 1) * b].tolist()


class ShardSampler(Sampler[int]):
    """Rank ``r``'s contiguous share of ``range(num_samples)``, without padding or repeats.

    Evaluation sums are additive, so the shards need not be of equal size.
    """

    def __init__(self, num_samples: int, *, rank: int = 0, world_size: int = 1) -> None:
        per = -(-num_samples // world_size)
        self.indices = list(range(rank * per, min(num_samples, (rank + 1) * per)))

    def __len__(self) -> int:
        return len(self.indices)

    def __iter__(self) -> Iterator[int]:
        return iter(self.indices)


def make_train_loader(
    dataset: Dataset,
    *,
    batch_size: int,
    seed: int = 0,
    rank: int = 0,
    world_size: int = 1,
    num_workers: int = 0,
    shuffle: bool = True,
    drop_last: bool = True,
) -> DataLoader:
    """A DataLoader over ``dataset`` driven by an :class:`EpochBatchSampler`.

    Parameters
    ----------
    dataset
        Map-style data set of sample dicts.
    batch_size
        Examples per batch on this rank.
    seed
        Seed of the order (and of the workers' RNGs, reseeded per epoch by the loop).
    rank, world_size
        Process rank and count.
    num_workers
        Loader worker processes.
    shuffle, drop_last
        As for :class:`EpochBatchSampler`.

    Returns
    -------
    DataLoader
        The loader; ``loader.batch_sampler`` is the :class:`EpochBatchSampler`.
    """
    sampler = EpochBatchSampler(
        len(dataset),  # type: ignore[arg-type]
        batch_size,
        shuffle=shuffle,
        seed=seed,
        drop_last=drop_last,
        rank=rank,
        world_size=world_size,
    )
    return DataLoader(
        dataset,
        batch_sampler=sampler,
        num_workers=num_workers,
        worker_init_fn=worker_init_fn if num_workers else None,
        generator=torch.Generator().manual_seed(seed),
        persistent_workers=False,
    )


def make_eval_loader(
    dataset: Dataset,
    *,
    batch_size: int,
    rank: int = 0,
    world_size: int = 1,
    num_workers: int = 0,
) -> DataLoader:
    """A DataLoader over rank ``rank``'s contiguous shard of ``dataset``, in order."""
    sampler = ShardSampler(len(dataset), rank=rank, world_size=world_size)  # type: ignore[arg-type]
    return DataLoader(
        dataset,
        batch_size=batch_size,
        sampler=sampler,
        num_workers=num_workers,
        generator=torch.Generator().manual_seed(0),
    )


def _epoch_seed(seed: int, epoch: int) -> int:
    return int(np.random.SeedSequence([seed, epoch, 7]).generate_state(1)[0])


def epoch_batches(
    loader: DataLoader, *, epoch: int, start_batch: int, seed: int
) -> Iterator[dict[str, Any]]:
    """The loader's batches of ``epoch`` from ``start_batch`` on, leaving global RNGs untouched.

    Calls ``set_epoch(epoch)`` on the sampler and the data set where they define it, skips the
    batches already consumed (through the sampler's ``set_start`` when it has one, else by
    reading them) and reseeds the loader's own generator from ``(seed, epoch)``; creating the
    iterator happens inside :func:`torch.random.fork_rng`, so the global RNG streams (dropout)
    continue as if no loader had been made.
    """
    sampler = loader.batch_sampler if loader.batch_sampler is not None else loader.sampler
    for obj in (sampler, getattr(loader, "sampler", None), loader.dataset):
        if obj is not None and hasattr(obj, "set_epoch"):
            obj.set_epoch(epoch)
    skip = start_batch
    if start_batch and hasattr(sampler, "set_start"):
        sampler.set_start(start_batch)
        skip = 0
    elif start_batch:
        log.warning(
            "the loader's sampler cannot skip batches: re-reading %d batches to resume "
            "(exact only if its order depends on the epoch alone)",
            start_batch,
        )
    if loader.generator is not None:
        loader.generator.manual_seed(_epoch_seed(seed, epoch))
    with torch.random.fork_rng(devices=[]):
        it = iter(loader)
    for _ in range(skip):
        next(it, None)
    return it


# ================================================================== datasets


def _onehot_indices(indices: np.ndarray) -> np.ndarray:
    """Base indices ``(N, L)`` (0-3 = A, C, G, T; else N) -> one-hot uint8 ``(N, L, 4)``."""
    table = np.concatenate([np.eye(4, dtype=np.uint8), np.zeros((252, 4), dtype=np.uint8)])
    return table[np.asarray(indices).astype(np.uint8)]


def load_npz_split(path: str | Path, split: str) -> tuple[np.ndarray, np.ndarray]:
    """Sequences and targets of ``split`` from an ``.npz`` file.

    The file holds either ``{split}_sequences`` and ``{split}_targets``, or ``sequences`` and
    ``targets`` with an optional ``split`` array of split names per example (without it every
    example belongs to every split). Sequences are one-hot ``(N, L, 4)`` or base indices
    ``(N, L)`` (0-3 = A, C, G, T; 4 = N); targets are ``(N, bins, tracks)``.

    Returns
    -------
    tuple of numpy.ndarray
        ``(sequences, targets)``.
    """
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"npz data file not found: {path}")
    with np.load(path, allow_pickle=False) as npz:
        keys = set(npz.files)
        if f"{split}_sequences" in keys and f"{split}_targets" in keys:
            return npz[f"{split}_sequences"], npz[f"{split}_targets"]
        if "sequences" in keys and "targets" in keys:
            seqs, targets = npz["sequences"], npz["targets"]
            if "split" in keys:
                mask = np.asarray(npz["split"]).astype(str) == split
                return seqs[mask], targets[mask]
            return seqs, targets
    raise ValueError(
        f"{path} has neither {split}_sequences/{split}_targets nor sequences/targets "
        f"(keys: {sorted(keys)})"
    )


def _bigwig_dataset(
    data: DataConfig,
    split: str,
    length: int | None,
    bin_size: int | None,
    target_length: int | None,
) -> Dataset:
    """A BigWigDataset over the BED intervals whose name (column 4) is ``split``."""
    if not data.genome or not data.targets:
        raise ValueError("data.kind=bigwig needs data.genome (FASTA) and data.targets (sheet)")
    if length is None or bin_size is None:
        raise ValueError("data.kind=bigwig needs the input length and the model's bin size")
    intervals = read_bed(data.path)
    if any(iv.name not in (None, ".") for iv in intervals):
        chosen = [iv for iv in intervals if iv.name == split]
    else:  # no split column: every interval is training data
        chosen = intervals if split == data.train_split else []
    if not chosen:
        raise ValueError(f"no intervals of split {split!r} in {data.path} (BED column 4)")
    return BigWigDataset(
        chosen,
        data.genome,
        data.targets,
        sequence_length=length,
        bin_size=bin_size,
        target_length=target_length,
        tracks_dir=data.tracks_dir,
        blacklist=data.blacklist,
    )


def resolve_track_sheet_path(data: DataConfig) -> Path | None:
    """The track sheet of a run: ``data.targets``, else ``<data.path>/targets.txt`` if present."""
    if data.targets:
        path = Path(data.targets)
        if not path.is_file():
            raise FileNotFoundError(f"track sheet not found: {path}")
        return path
    if data.path:
        candidate = Path(data.path) / "targets.txt"
        if candidate.is_file():
            return candidate
    return None


def build_dataset(
    data: DataConfig,
    split: str,
    *,
    train: bool = False,
    sequence_length: int | None = None,
    seed: int = 0,
    strand_pairs: np.ndarray | None = None,
    bin_size: int | None = None,
    target_length: int | None = None,
) -> Dataset:
    """The data set of one split, augmented when ``train`` asks for it.

    Parameters
    ----------
    data
        The data section of the run's configuration.
    split
        Split name.
    train
        Apply the configured shift / reverse-complement augmentation.
    sequence_length
        Input length for the model (``data.sequence_length`` wins when set).
    seed
        Augmentation seed.
    strand_pairs
        Track permutation swapping strands (from the track sheet), for reverse complements;
        default: the data set's own ``strand_pairs``, if it has them.
    bin_size, target_length
        Target geometry of ``bigwig`` data: the model's bin size and number of output bins.

    Returns
    -------
    torch.utils.data.Dataset
        Map-style data set of sample dicts.
    """
    length = data.sequence_length or sequence_length
    if data.kind == "npz":
        seqs, targets = load_npz_split(data.path, split)
        if seqs.ndim == 2:  # base indices -> one-hot (N, L, 4)
            seqs = _onehot_indices(seqs)
        if data.pool > 1:
            n, bins, tracks = targets.shape
            if bins % data.pool:
                raise ValueError(f"{bins} target bins do not divide into pools of {data.pool}")
            targets = targets.reshape(n, bins // data.pool, data.pool, tracks).sum(axis=2)
        ds = ArrayDataset(seqs, targets)
    elif data.kind == "tfrecord":
        ds = TFRecordDataset(
            data.path, split, genome=data.genome, sequence_length=length, pool=data.pool
        )
    elif data.kind == "bigwig":
        ds = _bigwig_dataset(data, split, length, bin_size, target_length)
    else:  # pragma: no cover - TrainConfig validates kind
        raise ValueError(f"unknown data kind {data.kind!r}")
    if len(ds) == 0:  # type: ignore[arg-type]
        raise ValueError(f"split {split!r} of {data.path} has no examples")
    if train and (data.max_shift or data.reverse_complement):
        ds = AugmentedDataset(
            ds,
            max_shift=data.max_shift,
            rc=data.reverse_complement,
            strand_pairs=strand_pairs,
            seed=seed,
        )
    return ds
