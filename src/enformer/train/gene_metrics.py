"""The paper's gene-level accuracy: correlation across genes of CAGE at the TSS.

Avsec et al. (2021) report, besides the per-track correlation over bins, how well a CAGE
track's predicted expression ranks **genes**: for every gene with a TSS in an evaluated
window, the predicted and the measured CAGE are summed over the bins around its TSS(s) (over
every window that holds one), ``log2(x + 1)``-transformed, and correlated across genes per
track; the mean over CAGE tracks is the reported number (Enformer 0.85, Basenji2 0.81 on the
Basenji2 human test set). The computation here follows Basenji's ``basenji_test_genes.py``.

:func:`across_gene_pearson` is the pure formula; :class:`GeneExpression` accumulates the sums
batch by batch during :func:`enformer.train.evaluate`.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np
import torch

from ..data.annotation import TSSIndex

__all__ = ["DEFINITION", "GeneExpression", "across_gene_pearson"]

DEFINITION = (
    "per CAGE track: Pearson r across genes of log2(x + 1), x = prediction (or target) summed "
    "over the tss_width bins around each TSS of the gene in every evaluated window; mean over "
    "the tracks (as Basenji's basenji_test_genes.py; Enformer paper 0.85, Basenji2 0.81)"
)


def across_gene_pearson(pred: np.ndarray, target: np.ndarray) -> np.ndarray:
    """Per-track Pearson r across genes of ``log2(x + 1)``.

    Parameters
    ----------
    pred, target
        ``(genes, tracks)`` expression summed at each gene's TSS bins.

    Returns
    -------
    numpy.ndarray
        ``(tracks,)`` float64; NaN where either side is constant across genes.
    """
    x = np.log2(np.asarray(pred, dtype=np.float64) + 1)
    y = np.log2(np.asarray(target, dtype=np.float64) + 1)
    x, y = x - x.mean(0), y - y.mean(0)
    den = np.sqrt((x * x).sum(0) * (y * y).sum(0))
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.where(den > 0, (x * y).sum(0) / np.where(den > 0, den, 1), np.nan)


class GeneExpression:
    """Sums of predicted and measured expression at each gene's TSS bins, over a split.

    Parameters
    ----------
    tss
        The genes' TSSs (:meth:`TSSIndex.from_gtf`).
    intervals
        Each item's target interval (genomic coordinates of its target bins), by the item's
        ``index``: a data set's ``intervals``.
    tracks
        Track indices read (the CAGE tracks).
    width
        Bins around each TSS's bin (default 3).
    """

    def __init__(
        self, tss: TSSIndex, intervals: Sequence[Any], tracks: Sequence[int], width: int = 3
    ) -> None:
        if not tracks:
            raise ValueError("the across-gene metric needs at least one (CAGE) track")
        self.tss, self.intervals, self.width = tss, list(intervals), int(width)
        self.tracks = [int(t) for t in tracks]
        self.sums: dict[str, list[np.ndarray]] = {}
        self.names: dict[str, str] = {}

    def update(self, pred: torch.Tensor, target: torch.Tensor, index: Any) -> None:
        """Add a batch: ``pred`` / ``target`` ``(B, bins, tracks)`` aligned to the targets,
        ``index`` the items' positions in the data set."""
        cols = torch.as_tensor(self.tracks, device=pred.device)
        p = pred.index_select(-1, cols).double().cpu().numpy()
        t = target.index_select(-1, cols.to(target.device)).double().cpu().numpy()
        n_bins = p.shape[1]
        for b, i in enumerate(torch.as_tensor(index).tolist()):
            iv = self.intervals[i]
            size = (iv.end - iv.start) // n_bins
            for gene in self.tss.genes_in_window(iv.chrom, iv.start, n_bins, size,
                                                 width=self.width):  # fmt: skip
                acc = self.sums.setdefault(gene.gene_id, [np.zeros(len(cols)), np.zeros(len(cols))])
                acc[0] += p[b, gene.bins].sum(0)
                acc[1] += t[b, gene.bins].sum(0)
                self.names[gene.gene_id] = gene.gene_name

    def compute(self) -> dict[str, Any]:
        """The metric: per-track r across genes, their mean, and the counts."""
        genes = sorted(self.sums)
        if len(genes) < 3:
            return {"definition": DEFINITION, "genes": len(genes), "tracks": self.tracks,
                    "mean_r": float("nan"), "per_track_r": [float("nan")] * len(self.tracks)}
        pred = np.stack([self.sums[g][0] for g in genes])
        target = np.stack([self.sums[g][1] for g in genes])
        r = across_gene_pearson(pred, target)
        return {
            "definition": DEFINITION,
            "genes": len(genes),
            "tracks": self.tracks,
            "tss_width_bins": self.width,
            "mean_r": float(np.nanmean(r)) if np.isfinite(r).any() else float("nan"),
            "per_track_r": [float(v) for v in r],
        }
