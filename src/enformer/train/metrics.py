"""Streaming per-track Pearson correlation, the evaluation metric of Enformer.

Definition (the one of DeepMind's training notebook and Basenji's
``PearsonR``): for each track, the Pearson r between predictions and targets over **all bins
of all sequences of a split pooled together** (not a mean of per-sequence correlations), on
the raw values (no log transform). The model's score is the mean of the per-track r over
tracks; per-assay scores are means over the tracks of each assay.

:class:`PearsonR` keeps, per track and in float64, the count ``n`` and the sums ``Σx``,
``Σy``, ``Σx²``, ``Σy²``, ``Σxy`` (x = prediction, y = target). These are additive, so states
built on different batches or different processes merge exactly by addition
(:meth:`PearsonR.merge`, :meth:`PearsonR.all_reduce`). From them::

    r   = (n Σxy - Σx Σy) / sqrt((n Σx² - (Σx)²) (n Σy² - (Σy)²))
    R²  = 1 - Σ(y - x)² / Σ(y - ȳ)²,   Σ(y - x)² = Σy² - 2 Σxy + Σx²

A track whose predictions or targets are constant over the split has no correlation: its r
is NaN and it is left out of the means (:func:`nan_mean`), with its count reported.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

import numpy as np
import torch

__all__ = ["PearsonR", "TrackMetrics", "nan_mean", "per_assay_means"]

# Order of the sums in the state vector (row of the ``(6, tracks)`` state).
_N, _SX, _SY, _SXX, _SYY, _SXY = range(6)


class PearsonR:
    """Per-track Pearson r (and R²) accumulated over batches.

    Parameters
    ----------
    num_tracks
        Number of tracks (last axis of predictions and targets).

    Examples
    --------
    >>> metric = PearsonR(num_tracks=3)
    >>> for pred, target in batches:  # doctest: +SKIP
    ...     metric.update(pred, target)
    >>> metric.compute().mean_r  # doctest: +SKIP
    """

    def __init__(self, num_tracks: int) -> None:
        if num_tracks < 1:
            raise ValueError(f"num_tracks must be >= 1, got {num_tracks}")
        self.num_tracks = int(num_tracks)
        self.state = torch.zeros(6, self.num_tracks, dtype=torch.float64)

    def reset(self) -> None:
        """Forget everything accumulated so far."""
        self.state.zero_()

    @torch.no_grad()
    def update(self, pred: torch.Tensor | np.ndarray, target: torch.Tensor | np.ndarray) -> None:
        """Add a batch: ``pred`` and ``target`` of shape ``(..., tracks)``, any leading axes.

        Parameters
        ----------
        pred
            Predictions; every leading axis (batch, bins) is pooled.
        target
            Targets of the same shape.
        """
        x = torch.as_tensor(pred).detach().to(device="cpu", dtype=torch.float64)
        y = torch.as_tensor(target).detach().to(device="cpu", dtype=torch.float64)
        if x.shape != y.shape:
            raise ValueError(
                f"prediction {tuple(x.shape)} and target {tuple(y.shape)} differ in shape"
            )
        if x.shape[-1] != self.num_tracks:
            raise ValueError(f"expected {self.num_tracks} tracks, got {x.shape[-1]}")
        x = x.reshape(-1, self.num_tracks)  # (N, tracks)
        y = y.reshape(-1, self.num_tracks)  # (N, tracks)
        self.state[_N] += x.shape[0]
        self.state[_SX] += x.sum(0)
        self.state[_SY] += y.sum(0)
        self.state[_SXX] += (x * x).sum(0)
        self.state[_SYY] += (y * y).sum(0)
        self.state[_SXY] += (x * y).sum(0)

    def merge(self, other: PearsonR) -> PearsonR:
        """Add another state (e.g. from another process or shard) into this one; returns self."""
        if other.num_tracks != self.num_tracks:
            raise ValueError(
                f"cannot merge states of {other.num_tracks} and {self.num_tracks} tracks"
            )
        self.state += other.state
        return self

    def all_reduce(self, group: object | None = None) -> PearsonR:
        """Sum the state over every process of ``torch.distributed`` (a no-op when not running).

        Each process must call this with states of the same number of tracks. The reduction is
        done on the CPU for gloo and on the current CUDA device for NCCL.

        Returns
        -------
        PearsonR
            ``self``, now holding the sums over all processes.
        """
        import torch.distributed as dist

        if not (dist.is_available() and dist.is_initialized()) or dist.get_world_size() == 1:
            return self
        device = "cpu"
        if dist.get_backend(group) == "nccl":
            device = f"cuda:{torch.cuda.current_device()}"
        buffer = self.state.to(device)
        dist.all_reduce(buffer, op=dist.ReduceOp.SUM, group=group)
        self.state.copy_(buffer.cpu())
        return self

    def state_dict(self) -> dict[str, torch.Tensor]:
        """The sums, for saving or sending."""
        return {"state": self.state.clone()}

    def load_state_dict(self, state: Mapping[str, torch.Tensor]) -> None:
        """Restore sums saved by :meth:`state_dict`."""
        tensor = torch.as_tensor(state["state"], dtype=torch.float64)
        if tensor.shape != self.state.shape:
            raise ValueError(
                f"state of shape {tuple(tensor.shape)}; need {tuple(self.state.shape)}"
            )
        self.state.copy_(tensor)

    def compute(self) -> TrackMetrics:
        """Per-track r and R² from the sums so far.

        Returns
        -------
        TrackMetrics
            NaN for tracks with constant predictions or targets (or no data).
        """
        s = self.state.numpy()
        n, sx, sy, sxx, syy, sxy = s
        with np.errstate(divide="ignore", invalid="ignore"):
            cov = n * sxy - sx * sy
            var_x = n * sxx - sx * sx
            var_y = n * syy - sy * sy
            denom = np.sqrt(var_x * var_y)
            r = np.where((var_x > 0) & (var_y > 0), cov / denom, np.nan)
            ss_res = syy - 2 * sxy + sxx
            ss_tot = syy - sy * sy / n
            r2 = np.where(ss_tot > 0, 1.0 - ss_res / ss_tot, np.nan)
        return TrackMetrics(pearson_r=r.astype(np.float64), r2=r2.astype(np.float64), count=n)


@dataclass(frozen=True)
class TrackMetrics:
    """Per-track metrics of a split.

    Attributes
    ----------
    pearson_r
        Per-track Pearson r over all bins of all sequences, ``(tracks,)``; NaN where undefined.
    r2
        Per-track coefficient of determination ``1 - SS_res / SS_tot``, ``(tracks,)``.
    count
        Number of (bin, sequence) values per track, ``(tracks,)``.
    """

    pearson_r: np.ndarray
    r2: np.ndarray
    count: np.ndarray

    @property
    def mean_r(self) -> float:
        """Mean Pearson r over the tracks where it is defined (NaN if none is)."""
        return nan_mean(self.pearson_r)

    @property
    def mean_r2(self) -> float:
        """Mean R² over the tracks where it is defined."""
        return nan_mean(self.r2)

    @property
    def undefined(self) -> int:
        """Number of tracks whose r is undefined (constant predictions or targets)."""
        return int(np.isnan(self.pearson_r).sum())

    def by_assay(self, assays: Sequence[str]) -> dict[str, float]:
        """Mean Pearson r per assay; see :func:`per_assay_means`."""
        return per_assay_means(self.pearson_r, assays)


def nan_mean(values: np.ndarray | Sequence[float]) -> float:
    """Mean of the finite entries of ``values``; NaN when there are none."""
    arr = np.asarray(values, dtype=np.float64)
    finite = arr[np.isfinite(arr)]
    return float(finite.mean()) if finite.size else math.nan


def per_assay_means(
    values: np.ndarray | Sequence[float], assays: Sequence[str]
) -> dict[str, float]:
    """Mean of a per-track quantity within each assay.

    Parameters
    ----------
    values
        One value per track, e.g. :attr:`TrackMetrics.pearson_r`.
    assays
        Assay of each track (e.g. ``[t.assay for t in sheet]``: ``"CAGE"``, ``"DNASE"``, ...).

    Returns
    -------
    dict of str to float
        Assay -> mean over its tracks (NaN entries left out), in order of first appearance.
    """
    arr = np.asarray(values, dtype=np.float64)
    if len(assays) != arr.shape[0]:
        raise ValueError(f"{len(assays)} assay labels for {arr.shape[0]} tracks")
    groups: dict[str, list[int]] = {}
    for i, assay in enumerate(assays):
        groups.setdefault(str(assay), []).append(i)
    return {assay: nan_mean(arr[idx]) for assay, idx in groups.items()}
