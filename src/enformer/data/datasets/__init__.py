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

The parts, by job: :mod:`.basenji` (TFRecords), :mod:`.bigwig`, :mod:`.arrays`,
:mod:`.augment` (augmentation and worker seeding), :mod:`.common` (what they share). This
package never imports ``enformer.model``.
"""

from .arrays import ArrayDataset
from .augment import (
    AugmentedDataset,
    augment,
    make_generator,
    reverse_complement_sample,
    shift_sequence,
    worker_init_fn,
)
from .basenji import TFRecordDataset
from .bigwig import BigWigDataset, summarize_coverage
from .common import pool_bins

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
