"""Exact reuse of the convolutional stages between a reference and its variants.

The stem and conv tower are local: an output row of the tower (one 128-bp bin) sees
about 650 bp of input. A variant therefore changes only a few rows of every conv
stage, and those rows can be recomputed from the reference's activations while the
rest are copied. The transformer is global and runs in full for every allele.

The arithmetic of a recomputed row is exactly that of a full forward with
:mod:`enformer.model.fast` (same kernels, same window of inputs), so results equal a
full forward of the alternative sequence up to float32 rounding of the GEMM blocking.

Indels shift the sequence downstream of the change. Activations are then reusable
only upstream of it (the stages' pooling makes them equivariant only to shifts by a
multiple of 2**stages bp), so the changed span runs to the end of the window and
roughly the downstream half of the conv work is redone; the code handles this
generally by comparing the alternative input with the reference.

Borzoi and Flashzoi (``config.family == "borzoi"``) have their own local stages and U-Net
skips; the three functions below hand such models to :mod:`enformer.model.borzoi_reuse`,
so callers (variant scoring, ISM) use one interface for every family.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch

from . import borzoi_reuse, fast

__all__ = [
    "ConvActivations",
    "changed_span",
    "conv_activations",
    "conv_tower_for",
    "forward_from_tower",
]


@dataclass
class ConvActivations:
    """Every conv stage's output for one reference sequence (batch of one).

    ``stages[0]`` is the one-hot input ``(L, 4)``; ``stages[1]`` the stem output
    ``(L/2, C/2)``; ``stages[s+1]`` the output of conv-tower block ``s``. The last entry
    is the transformer input ``(T, C)``.
    """

    stages: list[torch.Tensor]

    @property
    def tower(self) -> torch.Tensor:
        """The conv tower's output (the transformer input), ``(T, C)``."""
        return self.stages[-1]

    @property
    def nbytes(self) -> int:
        """Memory held by the cached activations."""
        return sum(t.numel() * t.element_size() for t in self.stages)


def _is_borzoi(model) -> bool:
    return getattr(model.config, "family", "enformer") == "borzoi"


def _check_eval(model) -> None:
    if model.training:
        raise RuntimeError("reuse needs the model in eval mode (BatchNorm moving averages)")


@torch.no_grad()
def conv_activations(model, x: torch.Tensor) -> ConvActivations:
    """Run the conv stages on one-hot ``x`` ``(L, 4)`` keeping every stage's output."""
    if _is_borzoi(model):
        return borzoi_reuse.conv_activations(model, x)
    _check_eval(model)
    if x.dim() != 2 or x.shape[1] != 4:
        raise ValueError(f"expected one sequence (L, 4), got {tuple(x.shape)}")
    x = model._prepare(x[None])[0].contiguous()
    trunk = model.trunk
    stages = [x]
    h = fast.stem_forward(trunk.stem, x[None])[0]
    stages.append(h)
    for block in trunk.conv_tower:
        h = fast.tower_block_forward(block, h[None])[0]
        stages.append(h)
    return ConvActivations(stages)


def changed_span(ref: torch.Tensor, alt: torch.Tensor) -> tuple[int, int] | None:
    """First and one-past-last row where two ``(L, 4)`` inputs differ (``None`` if equal)."""
    diff = (ref != alt).any(dim=-1).nonzero()
    if diff.numel() == 0:
        return None
    return int(diff[0]), int(diff[-1]) + 1


def _even_span(c0: int, c1: int, half: int, length: int) -> tuple[int, int]:
    """Conv output rows touched by input rows ``[c0, c1)``, widened to even bounds."""
    r0 = max(c0 - half, 0)
    r1 = min(c1 + half, length)
    r0 -= r0 % 2
    r1 += r1 % 2
    return r0, min(r1, length)


@torch.no_grad()
def conv_tower_for(
    model, ref: ConvActivations, alt: torch.Tensor, span: tuple[int, int] | None = None
) -> torch.Tensor:
    """The conv tower's output ``(T, C)`` for ``alt`` ``(L, 4)``, recomputing only changed rows.

    ``span`` is the ``[start, end)`` of input rows where ``alt`` differs from the
    reference; it is computed when not given. Returns a new tensor (the reference's
    activations are not modified).
    """
    if _is_borzoi(model):
        x_ref = ref.stages[0]
        if span is None and alt.shape == x_ref.shape:
            span = changed_span(x_ref, alt.to(x_ref))
        return borzoi_reuse.conv_tower_for(model, ref, alt, span)
    _check_eval(model)
    x_ref = ref.stages[0]
    alt = alt.to(device=x_ref.device, dtype=x_ref.dtype)
    if alt.shape != x_ref.shape:
        raise ValueError(f"alt has shape {tuple(alt.shape)}, the reference {tuple(x_ref.shape)}")
    if span is None:
        span = changed_span(x_ref, alt)
    if span is None:
        return ref.tower.clone()
    trunk = model.trunk
    blocks = [trunk.stem, *trunk.conv_tower]
    c0, c1 = span
    patch = alt[c0:c1]  # changed input rows of the current stage
    for s, block in enumerate(blocks):
        inp = ref.stages[s]
        length = inp.shape[0]
        conv = block.conv1_d if s == 0 else block.conv_block.conv1_d
        half = conv.kernel_size[0] // 2
        r0, r1 = _even_span(c0, c1, half, length)
        lo, hi = max(r0 - half, 0), min(r1 + half, length)
        x = inp[lo:hi].clone()  # the stage input this patch needs, reference values ...
        x[c0 - lo : c1 - lo] = patch  # ... with the changed rows of the alternative
        out = inp.new_empty(((r1 - r0) // 2, ref.stages[s + 1].shape[1]))
        if s == 0:
            fast.stem_rows(block, x, r0, r1, out, x_offset=lo, length=length)
        else:
            fast.block_rows(block, x, r0, r1, out, x_offset=lo, length=length)
        c0, c1, patch = r0 // 2, r1 // 2, out
    tower = ref.tower.clone()
    tower[c0:c1] = patch
    return tower


def forward_from_tower(
    model,
    tower: torch.Tensor,
    *,
    heads: list[str] | None = None,
    tracks: dict[str, torch.Tensor] | None = None,
) -> dict[str, torch.Tensor]:
    """Transformer, crop, final pointwise and heads on tower outputs ``(B, T, C)``.

    ``tracks`` maps a head to the track indices to compute (the head's linear layer is
    evaluated for those columns only).
    """
    if _is_borzoi(model):
        return borzoi_reuse.forward_from_tower(model, tower, heads=heads, tracks=tracks)
    trunk = model.trunk
    emb = trunk.finish(trunk.attend(tower, crop=True))  # (B, bins, 2C)
    out = {}
    for name in heads or list(model.heads):
        head = model.heads[name]
        idx = None if tracks is None else tracks.get(name)
        if idx is None:
            out[name] = head(emb)
        else:
            w = head.linear.weight[idx]  # (n, 2C)
            b = head.linear.bias[idx]
            out[name] = torch.nn.functional.softplus(torch.nn.functional.linear(emb, w, b))
    return out
