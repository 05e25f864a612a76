"""Arrays already in memory as a data set."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import torch
from torch.utils.data import Dataset

from ..sequence import one_hot
from .common import Sample, check_index

__all__ = ["ArrayDataset"]


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
        index = check_index(index, len(self))
        item: Sample = {"sequence": self._sequences[index].to(torch.float32), "index": index}
        if self._targets is not None:
            item["target"] = self._targets[index].to(torch.float32)
        return item
