"""Evaluation: the loss and per-track Pearson r of a model over a split.

:func:`evaluate` streams a loader through the model and returns an :class:`EvalResult`; under
DDP the sums of every process are all-reduced, so every process gets the metrics of the whole
split (:mod:`enformer.train.metrics`).
"""

from __future__ import annotations

import logging
import math
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from typing import Any

import torch
from torch import nn
from torch.utils.data import DataLoader

from .distributed import unwrap
from .gene_metrics import GeneExpression
from .losses import get_loss
from .metrics import PearsonR, TrackMetrics, per_assay_means
from .step import Batch, LossFn, align_bins, autocast, head_output, to_device

__all__ = ["EvalResult", "describe_report", "evaluate"]

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class EvalResult:
    """Loss and per-track metrics of one pass over a split.

    Attributes
    ----------
    loss
        Mean loss over the sequences (over all processes).
    metrics
        Per-track Pearson r and R² over all bins of all sequences.
    by_assay
        Mean r per assay (empty without assay labels).
    sequences
        Number of sequences seen (over all processes).
    head
        Head evaluated.
    """

    loss: float
    metrics: TrackMetrics
    by_assay: dict[str, float]
    sequences: int
    head: str
    genes: dict[str, Any] | None = None

    @property
    def mean_r(self) -> float:
        """Mean per-track Pearson r (tracks with undefined r left out)."""
        return self.metrics.mean_r

    def summary(self) -> dict[str, Any]:
        """Scalar summary: loss, mean r, mean R², per-assay r, counts."""
        return {
            "loss": self.loss,
            "mean_r": self.mean_r,
            "mean_r2": self.metrics.mean_r2,
            "by_assay": dict(self.by_assay),
            "sequences": self.sequences,
            "tracks": int(self.metrics.pearson_r.shape[0]),
            "undefined_tracks": self.metrics.undefined,
            **({"genes": self.genes} if self.genes is not None else {}),
        }

    def per_track(self, track_sheet: Any | None = None) -> list[dict[str, Any]]:
        """One record per track: index, r, R² (and identifier / assay / description)."""
        rows = []
        for i, (r, r2) in enumerate(zip(self.metrics.pearson_r, self.metrics.r2, strict=True)):
            row: dict[str, Any] = {"index": i, "pearson_r": float(r), "r2": float(r2)}
            if track_sheet is not None and i < len(track_sheet):
                t = track_sheet[i]
                row.update(identifier=t.identifier, assay=t.assay, description=t.description)
            rows.append(row)
        return rows


def _assays_of(track_sheet: Any | None, assays: Sequence[str] | None) -> list[str] | None:
    if assays is not None:
        return list(assays)
    if track_sheet is not None:
        return [t.assay for t in track_sheet]
    return None


@torch.no_grad()
def evaluate(
    model: nn.Module,
    loader: DataLoader | Iterator[Batch],
    *,
    head: str,
    device: torch.device | str | None = None,
    amp: bool = True,
    loss_fn: LossFn | None = None,
    track_sheet: Any | None = None,
    assays: Sequence[str] | None = None,
    max_batches: int | None = None,
    genes: GeneExpression | None = None,
) -> EvalResult:
    """Loss and streaming per-track Pearson r of ``model`` over ``loader``.

    The model runs in eval mode (its mode is restored afterwards). When a process group is
    running, every process must call this on its own shard; the sums are all-reduced, so every
    process returns the metrics of the whole split.

    Parameters
    ----------
    model
        The model (a DDP wrapper is unwrapped).
    loader
        Batches of sample dicts.
    head
        Head to evaluate.
    device
        Compute device (default: the model's).
    amp
        bf16 autocast on CUDA.
    loss_fn
        Loss reported alongside (default: Poisson).
    track_sheet
        :class:`~enformer.data.tracks.TrackSheet` of the head, for per-assay means.
    assays
        Assay label per track (instead of a sheet).
    max_batches
        Stop after this many batches (per process).
    genes
        Also the across-gene correlation of CAGE at the TSS (:mod:`.gene_metrics`); batches
        must carry each item's ``index``. Computed on this process's items only.

    Returns
    -------
    EvalResult
        Loss, per-track metrics and per-assay means.
    """
    net = unwrap(model)
    if device is None:
        device = next(net.parameters()).device
    device = torch.device(device)
    loss_fn = loss_fn or get_loss("poisson")
    was_training = net.training
    net.eval()
    metric: PearsonR | None = None
    loss_sum = torch.zeros(2, dtype=torch.float64)  # (sum of batch losses × size, sequences)
    try:
        for i, batch in enumerate(loader):
            if max_batches is not None and i >= max_batches:
                break
            seq, target = to_device(batch, device)
            with autocast(device, amp):
                pred = head_output(net, seq, head)
            pred = align_bins(pred, target).float()
            if metric is None:
                metric = PearsonR(pred.shape[-1])
            metric.update(pred, target)
            if genes is not None:
                genes.update(pred, target.float(), batch["index"])
            loss_sum[0] += float(loss_fn(pred, target.float())) * seq.shape[0]
            loss_sum[1] += seq.shape[0]
    finally:
        net.train(was_training)
    metric, loss_sum = _reduce_eval(metric, loss_sum, net, head)
    if metric is None:
        raise ValueError("the evaluation loader yielded no batches")
    metrics = metric.compute()
    labels = _assays_of(track_sheet, assays)
    if labels is not None and len(labels) != metrics.pearson_r.shape[0]:
        log.warning(
            "track sheet has %d tracks but the head has %d: no per-assay means",
            len(labels),
            metrics.pearson_r.shape[0],
        )
        labels = None
    by_assay = per_assay_means(metrics.pearson_r, labels) if labels is not None else {}
    n = int(loss_sum[1])
    return EvalResult(
        loss=float(loss_sum[0] / max(n, 1)),
        metrics=metrics,
        by_assay=by_assay,
        sequences=n,
        head=head,
        genes=genes.compute() if genes is not None else None,
    )


def _reduce_eval(
    metric: PearsonR | None, loss_sum: torch.Tensor, net: nn.Module, head: str
) -> tuple[PearsonR | None, torch.Tensor]:
    import torch.distributed as dist

    if not (dist.is_available() and dist.is_initialized()) or dist.get_world_size() == 1:
        return metric, loss_sum
    if metric is None:  # an empty shard still takes part in the reduction
        metric = PearsonR(int(net.config.heads[head]))
    metric.all_reduce()
    buffer = loss_sum.clone()
    if dist.get_backend() == "nccl":
        buffer = buffer.cuda()
    dist.all_reduce(buffer)
    return metric, buffer.cpu()


def _fmt(value: float) -> str:
    return "nan" if value is None or not math.isfinite(value) else f"{value:.4f}"


def describe_report(report: dict[str, Any]) -> str:
    """The text table of an evaluation report: the totals, per assay, then per track.

    ``report`` holds :meth:`EvalResult.summary`'s keys, ``per_track`` (from
    :meth:`EvalResult.per_track`), ``split``, ``data`` and ``head``.
    """
    lines = [
        f"{report['split']} split of {report['data']}: {report['sequences']} sequences, "
        f"{report['tracks']} tracks of head {report['head']!r}",
        f"loss {_fmt(report['loss'])}  mean Pearson r {_fmt(report['mean_r'])}  "
        f"mean R2 {_fmt(report['mean_r2'])}",
    ]
    if report.get("genes"):
        g = report["genes"]
        lines.append(f"across {g['genes']} genes (CAGE at the TSS, {len(g['tracks'])} tracks): "
                     f"mean r {_fmt(g['mean_r'])}")  # fmt: skip
    if report["by_assay"]:
        lines.append("")
        lines.append("assay      tracks  mean r")
        counts: dict[str, int] = {}
        for row in report["per_track"]:
            counts[row.get("assay", "")] = counts.get(row.get("assay", ""), 0) + 1
        for assay, value in report["by_assay"].items():
            lines.append(f"{assay:<10} {counts.get(assay, 0):>6}  {_fmt(value)}")
    lines.append("")
    lines.append("track  r       R2       identifier  description")
    for row in report["per_track"]:
        lines.append(
            f"{row['index']:>5}  {_fmt(row['pearson_r']):<7} {_fmt(row['r2']):<8} "
            f"{row.get('identifier', ''):<11} {row.get('description', '')}"
        )
    return "\n".join(lines)
