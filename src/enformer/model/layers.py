"""Convolutional building blocks of Enformer's stem and conv tower.

Everything here works channels-first, ``(B, C, L)``: the model transposes once at
the conv boundary. Names follow DeepMind's checkpoint paths (``conv_block``,
``pointwise_conv_block``, ``softmax_pooling``, ``batch_norm``, ``conv1_d``).
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import nn

__all__ = [
    "ConvBlock", "ConvTowerBlock", "SoftmaxPooling1D", "Stem", "crop_to_target", "gelu",
    "head_names",
]  # fmt: skip


def head_names(heads: nn.ModuleDict, chosen: str | Sequence[str] | None) -> list[str]:
    """The names of ``chosen`` heads (one name, several, or ``None`` for all) of a model's
    ``heads``, refusing a name the model lacks."""
    if chosen is None:
        return list(heads)
    names = [chosen] if isinstance(chosen, str) else list(chosen)
    unknown = [h for h in names if h not in heads]
    if unknown:
        raise ValueError(f"unknown head(s) {unknown}; this model has {list(heads)}")
    return names


def gelu(x: torch.Tensor) -> torch.Tensor:
    """Enformer's GELU approximation, ``sigmoid(1.702 x) * x`` (not erf, not tanh)."""
    return torch.sigmoid(1.702 * x) * x


class ConvBlock(nn.Module):
    """BatchNorm -> GELU -> Conv1d (same padding, with bias)."""

    def __init__(
        self,
        in_channels: int,
        out_channels: int,
        kernel_size: int,
        *,
        eps: float = 1e-5,
        momentum: float = 0.1,
    ) -> None:
        super().__init__()
        if kernel_size % 2 != 1:
            raise ValueError(f"kernel_size must be odd for 'same' padding, got {kernel_size}")
        self.batch_norm = nn.BatchNorm1d(in_channels, eps=eps, momentum=momentum)
        self.conv1_d = nn.Conv1d(in_channels, out_channels, kernel_size, padding=kernel_size // 2)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """``(B, C_in, L) -> (B, C_out, L)``."""
        return self.conv1_d(gelu(self.batch_norm(x)))


class SoftmaxPooling1D(nn.Module):
    """Attention pooling by 2, per channel: softmax over each pair of positions.

    DeepMind's form is ``sum_p x_p softmax_p(x_p W)`` over the pair ``p in {0, 1}``
    with bias-free ``W`` (initialised ``2 I``). For two positions the softmax weight
    of the first is ``sigmoid((x0 - x1) W)``, so the output equals
    ``x1 + (x0 - x1) * sigmoid((x0 - x1) W)``: one matrix product instead of two.
    """

    def __init__(self, channels: int, pool_size: int = 2) -> None:
        super().__init__()
        if pool_size != 2:
            raise ValueError("only pool_size=2 is implemented (Enformer's value)")
        self.linear = nn.Linear(channels, channels, bias=False)
        with torch.no_grad():
            self.linear.weight.copy_(2.0 * torch.eye(channels))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """``(B, C, L) -> (B, C, L/2)``."""
        if x.shape[-1] % 2:
            raise ValueError(f"pooling needs an even length, got {x.shape[-1]}")
        x0 = x[..., 0::2]  # (B, C, L/2)
        x1 = x[..., 1::2]  # (B, C, L/2)
        diff = x0 - x1
        logits = torch.matmul(self.linear.weight, diff)  # (C, C) @ (B, C, L/2) -> (B, C, L/2)
        return torch.addcmul(x1, diff, torch.sigmoid(logits))


class _ResidualPool(nn.Module):
    """The shape of the stem and of each tower block: a first layer, a residual pointwise
    ConvBlock, then softmax pooling; subclasses name the first layer as the weights do."""

    pointwise_conv_block: ConvBlock
    softmax_pooling: SoftmaxPooling1D

    def first(self, x: torch.Tensor) -> torch.Tensor:
        raise NotImplementedError

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """``(B, C_in, L) -> (B, C_out, L/2)``."""
        x = self.first(x)
        x = x + self.pointwise_conv_block(x)
        return self.softmax_pooling(x)


class Stem(_ResidualPool):
    """Conv1d(4 -> C/2, 15) -> Residual(ConvBlock(C/2, 1)) -> pool."""

    def __init__(self, out_channels: int, kernel_size: int, *, eps: float, momentum: float) -> None:
        super().__init__()
        self.conv1_d = nn.Conv1d(4, out_channels, kernel_size, padding=kernel_size // 2)
        self.pointwise_conv_block = ConvBlock(
            out_channels, out_channels, 1, eps=eps, momentum=momentum
        )
        self.softmax_pooling = SoftmaxPooling1D(out_channels)

    def first(self, x: torch.Tensor) -> torch.Tensor:
        """The stem's convolution, ``(B, 4, L) -> (B, C/2, L)``."""
        return self.conv1_d(x)


class ConvTowerBlock(_ResidualPool):
    """ConvBlock(f, 5) -> Residual(ConvBlock(f, 1)) -> pool."""

    def __init__(
        self, in_channels: int, out_channels: int, kernel_size: int, *, eps: float, momentum: float
    ) -> None:
        super().__init__()
        self.conv_block = ConvBlock(
            in_channels, out_channels, kernel_size, eps=eps, momentum=momentum
        )
        self.pointwise_conv_block = ConvBlock(
            out_channels, out_channels, 1, eps=eps, momentum=momentum
        )
        self.softmax_pooling = SoftmaxPooling1D(out_channels)

    def first(self, x: torch.Tensor) -> torch.Tensor:
        """The block's width-changing ConvBlock, ``(B, C_in, L) -> (B, C_out, L)``."""
        return self.conv_block(x)


def crop_to_target(x: torch.Tensor, target_length: int | None, dim: int = 1) -> torch.Tensor:
    """Centre crop along ``dim`` as DeepMind's ``TargetLengthCrop1D``.

    ``trim = (n - target_length) // 2`` bins are removed from *each* side; ``trim == 0``
    returns ``x`` unchanged. With an odd excess the result therefore keeps one bin more
    than ``target_length`` (exactly what the reference code does).
    """
    if target_length is None:
        return x
    n = x.shape[dim]
    trim = (n - target_length) // 2
    if trim < 0:
        raise ValueError(
            f"input gives {n} bins, fewer than the {target_length} the crop keeps; "
            "use a longer sequence"
        )
    if trim == 0:
        return x
    return x.narrow(dim, trim, n - 2 * trim)
