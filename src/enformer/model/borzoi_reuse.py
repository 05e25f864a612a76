"""Exact reuse for Borzoi and Flashzoi: the local stages and the U-Net's skip projections.

Borzoi's ``conv_dna`` and ``res_tower`` are local, as Enformer's conv tower is; so is the skip
path of each U-Net block (BatchNorm, GELU and a Dense applied row by row to a tower block's
output before its pool). A variant changes only the rows its bases reach in each of these,
and those rows are recomputed from the reference's activations while the rest are copied.
The transformer, the deep path of the U-Net (it reads the transformer's output, which every
change alters), the crop, the final conv and the heads run in full for every allele.

The per-allele state is one tensor ``(7T, C)`` for the released layout (two U-Net blocks):
the tower output ``(T, C)`` then each block's projected skip (``(2T, C)``, ``(4T, C)``), so
that callers batch alleles with :func:`torch.stack` as they do Enformer's tower outputs.
:mod:`enformer.model.reuse` dispatches here for models whose ``config.family`` is ``borzoi``.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import nn

from . import fast

__all__ = ["BorzoiActivations", "conv_activations", "conv_tower_for", "forward_from_tower"]


@dataclass
class BorzoiActivations:
    """The local stages of one reference sequence (batch of one, channels last).

    ``stages[0]`` is the one-hot input ``(L, 4)``, ``stages[1]`` the pooled ``conv_dna``
    output, ``stages[i + 2]`` the pooled output of tower block ``i`` (the last one is the
    transformer's input, ``(T, C)``); ``projected[j]`` is U-Net block ``j``'s projected skip
    ``(2**(j+1) T, C)``.
    """

    stages: list[torch.Tensor]
    projected: list[torch.Tensor]

    @property
    def tower(self) -> torch.Tensor:
        """The packed state that :func:`forward_from_tower` reads: ``(T + 2T + 4T.., C)``."""
        return torch.cat([self.stages[-1], *self.projected])

    @property
    def nbytes(self) -> int:
        """Memory held by the cached activations."""
        return sum(t.numel() * t.element_size() for t in [*self.stages, *self.projected])


def _skip_block(model, j: int) -> int:
    """The tower block whose pre-pool output U-Net block ``j`` reads."""
    return len(model.tower) - 1 - j


def _stages(model) -> list[tuple[nn.BatchNorm1d | None, nn.Conv1d]]:
    """(BatchNorm or None, conv) of every local stage, in order."""
    return [(None, model.conv_dna)] + [(b.norm, b.conv) for b in model.tower]


@torch.no_grad()
def conv_activations(model, x: torch.Tensor) -> BorzoiActivations:
    """Run the local stages on one-hot ``x`` ``(L, 4)``, keeping what reuse needs.

    The stages run through the tiled kernels of :mod:`enformer.model.fast`, as a full forward
    on the CPU does, so that recomputed rows (:func:`conv_tower_for`) match it.
    """
    if model.training:
        raise RuntimeError("reuse needs the model in eval mode (BatchNorm moving averages)")
    if x.dim() != 2 or x.shape[1] != 4:
        raise ValueError(f"expected one sequence (L, 4), got {tuple(x.shape)}")
    h = model._prepare(x[None]).transpose(1, 2).contiguous()  # (1, L, 4), checked
    kept = {_skip_block(model, j): j for j in range(len(model.unet))}
    stages, projected = [h[0]], [None] * len(model.unet)
    for s, (norm, conv) in enumerate(_stages(model)):
        h, full = fast.borzoi_stage_forward(norm, conv, h, keep=(s - 1) in kept)
        stages.append(h[0])
        if full is not None:
            j = kept[s - 1]
            projected[j] = model.unet[j].project_skip(full.transpose(1, 2))[0]
    return BorzoiActivations(stages, projected)


@torch.no_grad()
def conv_tower_for(
    model, ref: BorzoiActivations, alt: torch.Tensor, span: tuple[int, int] | None
) -> torch.Tensor:
    """The packed state (see :attr:`BorzoiActivations.tower`) of ``alt`` ``(L, 4)``,
    recomputing only the rows that its changed input rows ``span`` reach (``None``: equal to
    the reference; :func:`enformer.model.reuse.conv_tower_for` finds the span)."""
    x_ref = ref.stages[0]
    alt = alt.to(device=x_ref.device, dtype=x_ref.dtype)
    if alt.shape != x_ref.shape:
        raise ValueError(f"alt has shape {tuple(alt.shape)}, the reference {tuple(x_ref.shape)}")
    if span is None:
        return ref.tower.clone()
    c0, c1 = span
    patch = alt[c0:c1]
    skip_of = {_skip_block(model, j): j for j in range(len(model.unet))}
    projected = [p.clone() for p in ref.projected]
    for s, (norm, conv) in enumerate(_stages(model)):
        inp = ref.stages[s]
        n, half = inp.shape[0], conv.kernel_size[0] // 2
        r0, r1 = max(c0 - half, 0), min(c1 + half, n)  # output rows the change reaches ...
        r0, r1 = r0 - r0 % 2, min(r1 + r1 % 2, n)  # ... in whole pairs for the max pool
        lo, hi = max(r0 - half, 0), min(r1 + half, n)
        x = inp[lo:hi].clone()  # the stage input these rows read, reference values ...
        x[c0 - lo : c1 - lo] = patch  # ... with the changed rows of the alternative
        rows = inp.new_empty((r1 - r0, conv.out_channels))
        fast.nac_rows(norm, conv, x, r0, r1, rows, x_offset=lo, length=n)
        j = skip_of.get(s - 1)
        if j is not None:  # tower block s - 1 feeds U-Net block j
            projected[j][r0:r1] = model.unet[j].project_skip(rows.T[None])[0]
        c0, c1, patch = r0 // 2, r1 // 2, torch.maximum(rows[0::2], rows[1::2])
    tower = ref.stages[-1].clone()
    tower[c0:c1] = patch
    return torch.cat([tower, *projected])


def forward_from_tower(
    model,
    packed: torch.Tensor,
    *,
    heads: list[str] | None = None,
    tracks: dict[str, torch.Tensor] | None = None,
) -> dict[str, torch.Tensor]:
    """Transformer, U-Net, crop, final conv and heads on packed states ``(B, 7T, C)``.

    ``tracks`` maps a head to the track indices to compute.
    """
    n = len(model.unet)
    t = packed.shape[1] // (2 ** (n + 1) - 1)
    sizes = [t * 2**j for j in range(n + 1)]
    tower, *projected = packed.split(sizes, dim=1)
    return model.outputs(tower.transpose(1, 2), projected, heads or None, tracks)
