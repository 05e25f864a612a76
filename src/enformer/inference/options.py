"""How to predict, as one small object: :class:`PredictOptions`."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import torch

__all__ = ["DTYPES", "PredictOptions"]

DTYPES = {"float32": torch.float32, "bfloat16": torch.bfloat16, "float16": torch.float16}
"""Autocast dtypes by name."""


@dataclass(frozen=True)
class PredictOptions:
    """What to predict and how, as given on a command line or by a caller.

    Attributes
    ----------
    head : str or None
        Head (``None``: ``'human'`` if present, else the first).
    tracks : object
        Track selection (:mod:`enformer.inference.selection`); ``None`` = every track.
    targets : str or None
        Track sheet file, or folder holding ``targets_{head}.txt``.
    rc : bool
        Average in reverse-complement copies.
    shifts : tuple of int
        Shifts (bp) whose copies are averaged.
    batch_size : int or None
        Sequences per forward pass (``None``: the command's default).
    device : str or None
        Torch device (``None``: where the model is).
    dtype : str or None
        Autocast dtype name (``'bfloat16'``...); ``None`` keeps the model's precision.
    attention : str
        Attention implementation (``'auto'``, ``'fused'``, ``'blocked'``).
    """

    head: str | None = None
    tracks: Any = None
    targets: str | None = None
    rc: bool = False
    shifts: tuple[int, ...] = (0,)
    batch_size: int | None = None
    device: str | None = None
    dtype: str | None = None
    attention: str = "auto"

    @property
    def torch_dtype(self) -> torch.dtype | None:
        """The autocast dtype as a ``torch.dtype`` (``None`` when not set)."""
        if self.dtype is None:
            return None
        if self.dtype not in DTYPES:
            raise ValueError(f"dtype must be one of {', '.join(DTYPES)}, got {self.dtype!r}")
        return DTYPES[self.dtype]
