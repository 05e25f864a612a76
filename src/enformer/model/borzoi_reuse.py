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

from collections.abc import Callable
from dataclasses import dataclass

import torch
import torch.nn.functional as F

__all__ = ["BorzoiActivations", "conv_activations", "conv_tower_for", "forward_from_tower"]


@dataclass
class BorzoiActivations:
    """The local stages of one reference sequence (batch of one, channels first).

    ``stages[0]`` is the one-hot input ``(4, L)``, ``stages[1]`` the pooled ``conv_dna``
    output, ``stages[i + 2]`` the pooled output of tower block ``i`` (the last one is the
    transformer's input, ``(C, T)``); ``projected[j]`` is U-Net block ``j``'s projected skip
    ``(2**(j+1) T, C)``.
    """

    stages: list[torch.Tensor]
    projected: list[torch.Tensor]

    @property
    def tower(self) -> torch.Tensor:
        """The packed state that :func:`forward_from_tower` reads: ``(T + 2T + 4T.., C)``."""
        return torch.cat([self.stages[-1].T, *self.projected])

    @property
    def nbytes(self) -> int:
        """Memory held by the cached activations."""
        return sum(t.numel() * t.element_size() for t in [*self.stages, *self.projected])


def _skip_block(model, j: int) -> int:
    """The tower block whose pre-pool output U-Net block ``j`` reads."""
    return len(model.tower) - 1 - j


@torch.no_grad()
def conv_activations(model, x: torch.Tensor) -> BorzoiActivations:
    """Run the local stages on one-hot ``x`` ``(L, 4)``, keeping what reuse needs."""
    if model.training:
        raise RuntimeError("reuse needs the model in eval mode (BatchNorm moving averages)")
    if x.dim() != 2 or x.shape[1] != 4:
        raise ValueError(f"expected one sequence (L, 4), got {tuple(x.shape)}")
    x = model._prepare(x[None])  # (1, 4, L), checked
    y = F.max_pool1d(model.conv_dna(F.pad(x, _pads(model.conv_dna))), 2)
    stages, skips = [x[0], y[0]], []
    for block in model.tower:
        z = block(y)
        skips.append(z)
        y = F.max_pool1d(z, 2)
        stages.append(y[0])
    projected = [
        unet.project_skip(skips[_skip_block(model, j)])[0] for j, unet in enumerate(model.unet)
    ]
    return BorzoiActivations(stages, projected)


def _pads(conv) -> tuple[int, int]:
    """Keras ``same`` padding of a conv: ``(k - 1) // 2`` left, ``k // 2`` right."""
    k = conv.kernel_size[0]
    return (k - 1) // 2, k // 2


def _rows(
    conv, pre: Callable[[torch.Tensor], torch.Tensor], inp: torch.Tensor, r0: int, r1: int,
    patch: torch.Tensor, c0: int,
) -> torch.Tensor:  # fmt: skip
    """Rows ``[r0, r1)`` of ``conv(same_pad(pre(inp')))`` where ``inp'`` is ``inp`` ``(C, n)``
    with columns ``c0 ..`` replaced by ``patch``."""
    left, right = _pads(conv)
    n = inp.shape[1]
    lo, hi = max(r0 - left, 0), min(r1 + right, n)
    x = inp[:, lo:hi].clone()
    a, b = max(c0, lo), min(c0 + patch.shape[1], hi)
    if b > a:
        x[:, a - lo : b - lo] = patch[:, a - c0 : b - c0]
    z = F.pad(pre(x[None]), (lo - (r0 - left), (r1 + right) - hi))
    return conv(z)[0]


def _reached(c0: int, c1: int, conv, n: int) -> tuple[int, int]:
    """Output rows of a ``same`` conv that read input rows ``[c0, c1)``, widened to even
    bounds so that the following max pool of 2 sees whole pairs."""
    left, right = _pads(conv)
    r0, r1 = max(c0 - right, 0), min(c1 + left, n)
    return r0 - r0 % 2, min(r1 + r1 % 2, n)


@torch.no_grad()
def conv_tower_for(
    model, ref: BorzoiActivations, alt: torch.Tensor, span: tuple[int, int] | None
) -> torch.Tensor:
    """The packed state (see :attr:`BorzoiActivations.tower`) of ``alt`` ``(L, 4)``,
    recomputing only the rows that its changed input rows ``span`` reach (``None``: equal to
    the reference; :func:`enformer.model.reuse.conv_tower_for` finds the span)."""
    x_ref = ref.stages[0]
    alt = alt.to(device=x_ref.device, dtype=x_ref.dtype).T  # (4, L)
    if alt.shape != x_ref.shape:
        raise ValueError(f"alt has shape {tuple(alt.T.shape)}, the reference {tuple(x_ref.T.shape)}")
    if span is None:
        return ref.tower.clone()
    c0, c1 = span
    patch = alt[:, c0:c1]
    convs = [(model.conv_dna, lambda z: z)] + [(b.conv, _pre(b)) for b in model.tower]
    skip_of = {_skip_block(model, j): j for j in range(len(model.unet))}
    projected = [p.clone() for p in ref.projected]
    for s, (conv, pre) in enumerate(convs):
        inp = ref.stages[s]
        r0, r1 = _reached(c0, c1, conv, inp.shape[1])
        rows = _rows(conv, pre, inp, r0, r1, patch, c0)
        j = skip_of.get(s - 1)
        if j is not None:  # tower block s - 1 feeds U-Net block j
            projected[j][r0:r1] = model.unet[j].project_skip(rows[None])[0]
        c0, c1, patch = r0 // 2, r1 // 2, F.max_pool1d(rows[None], 2)[0]
    tower = ref.stages[-1].clone()
    tower[:, c0:c1] = patch
    return torch.cat([tower.T, *projected])


def _pre(block) -> Callable[[torch.Tensor], torch.Tensor]:
    """A ``conv_nac`` block's BatchNorm and GELU, applied before its conv."""
    return lambda z: F.gelu(block.norm(z), approximate="tanh")


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
    emb = model.decode(tower.transpose(1, 2), projected)
    out = {}
    for name in heads or list(model.heads):
        head = model.heads[name]
        idx = None if tracks is None else tracks.get(name)
        w, b = (head.weight, head.bias) if idx is None else (head.weight[idx], head.bias[idx])
        out[name] = F.softplus(F.linear(emb, w, b))
    return out
