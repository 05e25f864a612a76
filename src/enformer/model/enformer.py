"""The Enformer model: conv stem and tower, relative-position transformer, heads.

Public layout: one-hot DNA ``(B, L, 4)`` (A, C, G, T; N = all zeros) in, a dict of
``(B, bins, tracks)`` softplus outputs out. Module names mirror DeepMind's checkpoint
paths, so weight conversion is a short table (see :mod:`enformer.weights`).
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator, Sequence
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn
from torch.utils.checkpoint import checkpoint

from . import fast
from .attention import MultiheadAttention
from .config import EnformerConfig
from .init import init_deepmind_
from .layers import ConvBlock, ConvTowerBlock, Stem, crop_to_target, gelu, head_names

__all__ = ["Enformer", "Trunk", "TransformerBlock", "FinalPointwise", "Head"]


@contextlib.contextmanager
def _batch_norm_stats_frozen(module: nn.Module) -> Iterator[None]:
    """Keep BatchNorm running statistics unchanged (for checkpoint recomputation).

    Activation checkpointing runs a block's forward a second time during backward; without
    this the moving averages would be updated twice per step.
    """
    saved = []
    for m in module.modules():
        if isinstance(m, nn.modules.batchnorm._BatchNorm):
            tracked = None if m.num_batches_tracked is None else m.num_batches_tracked.clone()
            saved.append((m, m.momentum, tracked))
            m.momentum = 0.0  # running = running * (1 - 0) + batch * 0
    try:
        yield
    finally:
        for m, momentum, tracked in saved:
            m.momentum = momentum
            if tracked is not None:
                m.num_batches_tracked.copy_(tracked)


class MHABlock(nn.Module):
    """Pre-LayerNorm attention branch: ``Dropout(MHA(LN(x)))``."""

    def __init__(self, config: EnformerConfig) -> None:
        super().__init__()
        self.layer_norm = nn.LayerNorm(config.channels, eps=config.layer_norm_eps)
        self.attention = MultiheadAttention(
            channels=config.channels,
            num_heads=config.num_heads,
            key_size=config.key_size,
            value_size=config.value_size,
            num_relative_position_features=config.relative_position_features,
            attention_dropout_rate=config.attention_dropout_rate,
            positional_dropout_rate=config.positional_dropout_rate,
        )
        self.dropout = nn.Dropout(config.dropout_rate)

    def forward(self, x: torch.Tensor, query_rows: tuple[int, int] | None = None) -> torch.Tensor:
        """``(B, T, C) -> (B, n, C)`` for the query rows (the branch only, no residual)."""
        return self.dropout(self.attention(self.layer_norm(x), query_rows=query_rows))


class MLPBlock(nn.Module):
    """Pre-LayerNorm MLP branch: ``Dropout(Linear(C)(ReLU(Dropout(Linear(2C)(LN(x))))))``."""

    def __init__(self, config: EnformerConfig) -> None:
        super().__init__()
        c = config.channels
        self.layer_norm = nn.LayerNorm(c, eps=config.layer_norm_eps)
        self.linear1 = nn.Linear(c, 2 * c)
        self.linear2 = nn.Linear(2 * c, c)
        self.dropout = nn.Dropout(config.dropout_rate)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """``(B, T, C) -> (B, T, C)`` (the branch only, without the residual)."""
        x = self.linear1(self.layer_norm(x))
        x = F.relu(self.dropout(x))
        return self.dropout(self.linear2(x))


class TransformerBlock(nn.Module):
    """``x + MHA branch``, then ``x + MLP branch``."""

    def __init__(self, config: EnformerConfig) -> None:
        super().__init__()
        self.mha = MHABlock(config)
        self.mlp = MLPBlock(config)

    def forward(self, x: torch.Tensor, rows: tuple[int, int] | None = None) -> torch.Tensor:
        """``(B, T, C) -> (B, T, C)``; with ``rows=(start, end)`` only those output rows."""
        if rows is None:
            x = x + self.mha(x)
        else:
            x = x[:, rows[0] : rows[1]] + self.mha(x, query_rows=rows)
        return x + self.mlp(x)


class FinalPointwise(nn.Module):
    """ConvBlock(C -> 2C, 1) -> Dropout -> GELU, per bin."""

    def __init__(self, config: EnformerConfig) -> None:
        super().__init__()
        self.conv_block = ConvBlock(
            config.channels,
            config.embedding_dim,
            1,
            eps=config.batch_norm_eps,
            momentum=config.batch_norm_momentum,
        )
        self.dropout = nn.Dropout(config.final_dropout_rate)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """``(B, T, C) -> (B, T, 2C)``."""
        x = self.conv_block(x.transpose(1, 2)).transpose(1, 2)  # (B, T, 2C)
        return gelu(self.dropout(x))


class Trunk(nn.Module):
    """Everything before the heads: stem, conv tower, transformer, crop, final pointwise."""

    def __init__(self, config: EnformerConfig) -> None:
        super().__init__()
        self.config = config
        eps, momentum = config.batch_norm_eps, config.batch_norm_momentum
        self.stem = Stem(config.channels // 2, config.stem_kernel_size, eps=eps, momentum=momentum)
        tower = []
        in_channels = config.channels // 2
        for filters in config.filters:
            tower.append(
                ConvTowerBlock(
                    in_channels, filters, config.tower_kernel_size, eps=eps, momentum=momentum
                )
            )
            in_channels = filters
        self.conv_tower = nn.ModuleList(tower)
        if in_channels != config.channels:
            raise ValueError(
                f"the last conv-tower block has {in_channels} filters; the transformer needs "
                f"channels={config.channels}"
            )
        self.transformer = nn.ModuleList(
            TransformerBlock(config) for _ in range(config.num_transformer_layers)
        )
        self.final_pointwise = FinalPointwise(config)
        # Activation checkpointing of each tower/transformer block whenever gradients are
        # computed (training, or gradients of an eval-mode model for attribution).
        self.gradient_checkpointing = False

    def _run(self, block: nn.Module, x: torch.Tensor, *args: Any) -> torch.Tensor:
        if self.gradient_checkpointing and torch.is_grad_enabled():
            return checkpoint(
                block,
                x,
                *args,
                use_reentrant=False,
                context_fn=lambda: (contextlib.nullcontext(), _batch_norm_stats_frozen(block)),
            )
        return block(x, *args)

    def conv(self, x: torch.Tensor) -> torch.Tensor:
        """Stem and conv tower: one-hot ``(B, L, 4)`` -> ``(B, L/2**P, C)``, channels-last.

        On the CPU in eval mode without autograd or autocast this runs the tiled kernels
        of :mod:`enformer.model.fast`; otherwise the ``nn.Conv1d`` modules (cuDNN on GPUs).
        """
        if (
            not self.training
            and not torch.is_grad_enabled()
            and x.device.type == "cpu"
            and not torch.is_autocast_enabled("cpu")
        ):
            h = fast.stem_forward(self.stem, x.contiguous())
            for block in self.conv_tower:
                h = fast.tower_block_forward(block, h)
            return h
        h = self._run(self.stem, x.transpose(1, 2))  # (B, C/2, L/2)
        for block in self.conv_tower:
            h = self._run(block, h)
        return h.transpose(1, 2)  # (B, T, C)

    def attend(self, x: torch.Tensor, crop: bool = False) -> torch.Tensor:
        """Transformer over bins: ``(B, T, C) -> (B, T, C)``.

        With ``crop=True`` the last block computes only the rows the crop keeps (its
        queries; keys and values still come from every bin), giving ``(B, T', C)``.
        """
        rows = None
        if crop and self.config.target_length is not None:
            t = x.shape[1]
            trim = (t - self.config.target_length) // 2
            if trim > 0:
                rows = (trim, t - trim)
        last = len(self.transformer) - 1
        for j, block in enumerate(self.transformer):
            if j == last and rows is not None:
                x = self._run(block, x, rows)
            else:
                x = self._run(block, x)
        if rows is not None and not len(self.transformer):
            x = x[:, rows[0] : rows[1]]
        return x

    def finish(self, x: torch.Tensor) -> torch.Tensor:
        """Crop to the target bins and apply the final pointwise block: ``-> (B, T', 2C)``."""
        x = crop_to_target(x, self.config.target_length, dim=1)
        return self.final_pointwise(x)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """One-hot ``(B, L, 4)`` -> embedding ``(B, bins, 2C)``."""
        x = self.conv(x)  # (B, T, C)
        x = self.attend(x, crop=True)  # (B, T', C): the last block computes kept rows only
        return self.finish(x)


class Head(nn.Module):
    """Linear(2C -> tracks) + softplus."""

    def __init__(self, in_features: int, num_tracks: int) -> None:
        super().__init__()
        self.linear = nn.Linear(in_features, num_tracks)
        init_deepmind_(self)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """``(B, T, 2C) -> (B, T, tracks)``."""
        return F.softplus(self.linear(x))


class Enformer(nn.Module):
    """Enformer (Avsec et al., 2021) in PyTorch.

    Parameters
    ----------
    config
        The model's hyper-parameters; ``EnformerConfig.official()`` is the published model.

    Notes
    -----
    Any input length that is a multiple of ``config.bin_size`` (128) and gives at least
    ``config.target_length`` bins works: the relative positional features are computed for
    the actual number of bins (and cached per length). An input of exactly
    ``2 * config.sequence_length`` bp (393,216 bp, the TF-Hub interface) is centre-cropped
    to ``config.sequence_length`` (196,608 bp) first, as the TF-Hub model does.
    """

    def __init__(self, config: EnformerConfig | None = None) -> None:
        super().__init__()
        self.config = config if config is not None else EnformerConfig.official()
        self.trunk = Trunk(self.config)
        self.heads = nn.ModuleDict(
            {name: Head(self.config.embedding_dim, n) for name, n in self.config.heads.items()}
        )
        init_deepmind_(self)

    # ------------------------------------------------------------------ input
    def _prepare(self, x: torch.Tensor) -> torch.Tensor:
        """Check ``(B, L, 4)``, crop 393,216 bp inputs and cast to the model's dtype."""
        if not isinstance(x, torch.Tensor):
            raise TypeError(
                f"expected a torch.Tensor of shape (batch, length, 4), got {type(x).__name__}; "
                "use enformer.predict() for strings, arrays or intervals"
            )
        if x.dim() == 2:
            raise ValueError(
                f"expected a batch (batch, length, 4), got shape {tuple(x.shape)}; "
                "add a batch dimension with x[None]"
            )
        if x.dim() != 3 or x.shape[-1] != 4:
            raise ValueError(
                f"expected one-hot DNA of shape (batch, length, 4) in A,C,G,T order, "
                f"got shape {tuple(x.shape)}"
            )
        length = x.shape[1]
        cfg = self.config
        if length == 2 * cfg.sequence_length:
            start = (length - cfg.sequence_length) // 2
            x = x[:, start : start + cfg.sequence_length]
            length = cfg.sequence_length
        if length % cfg.bin_size:
            raise ValueError(
                f"sequence length {length} is not a multiple of the bin size {cfg.bin_size} bp; "
                f"use e.g. {cfg.sequence_length} bp"
            )
        if cfg.target_length is not None and length // cfg.bin_size < cfg.target_length:
            raise ValueError(
                f"sequence length {length} bp gives {length // cfg.bin_size} bins, fewer than the "
                f"{cfg.target_length} output bins; use at least {cfg.target_length * cfg.bin_size} "
                f"bp ({cfg.sequence_length} bp is what the model was trained on)"
            )
        dtype = self.trunk.stem.conv1_d.weight.dtype
        if x.dtype != dtype:
            x = x.to(dtype)
        return x

    # ---------------------------------------------------------------- forward
    def embed(self, x: torch.Tensor) -> torch.Tensor:
        """Trunk embedding ``(B, bins, 2C)`` of one-hot ``x`` ``(B, L, 4)``."""
        return self.trunk(self._prepare(x))

    def heads_forward(
        self, embedding: torch.Tensor, heads: str | Sequence[str] | None = None
    ) -> dict[str, torch.Tensor]:
        """Apply the heads (``heads``: names, default all) to an embedding ``(B, bins, 2C)``."""
        return {name: self.heads[name](embedding) for name in head_names(self.heads, heads)}

    def forward(
        self, x: torch.Tensor, heads: str | Sequence[str] | None = None
    ) -> dict[str, torch.Tensor]:
        """One-hot ``x`` ``(B, L, 4)`` -> ``{head: (B, bins, tracks)}`` for the named ``heads``
        (default all)."""
        return self.heads_forward(self.embed(x), heads)

    # ------------------------------------------------------------- utilities
    @property
    def device(self) -> torch.device:
        """Device of the model's parameters."""
        return self.trunk.stem.conv1_d.weight.device

    @property
    def dtype(self) -> torch.dtype:
        """Floating dtype of the model's parameters."""
        return self.trunk.stem.conv1_d.weight.dtype

    def num_parameters(self, trainable_only: bool = True) -> int:
        """Number of (trainable) parameters."""
        return sum(p.numel() for p in self.parameters() if p.requires_grad or not trainable_only)

    def set_gradient_checkpointing(self, enabled: bool = True) -> Enformer:
        """Recompute tower/transformer activations in backward to save memory."""
        self.trunk.gradient_checkpointing = enabled
        return self

    @property
    def attention_implementation(self) -> str:
        """The attention path requested of every transformer block (see below)."""
        names = {block.mha.attention.implementation for block in self.trunk.transformer}
        return names.pop() if len(names) == 1 else "mixed" if names else "auto"

    def set_attention_implementation(self, implementation: str = "auto") -> Enformer:
        """Choose how every transformer block computes attention.

        ``"fused"`` runs :func:`torch.nn.functional.scaled_dot_product_attention` with the
        relative logits as an additive mask (on any device); ``"blocked"`` an explicit softmax
        over query blocks; ``"auto"`` (the default) fused on CUDA, blocked elsewhere. Both give
        the same numbers up to float rounding; a set attention hook always takes the blocked
        path. Like gradient checkpointing this is a run-time choice, not a hyper-parameter:
        it is not part of :class:`EnformerConfig` and not saved with the weights.
        """
        for block in self.trunk.transformer:
            block.mha.attention.implementation = implementation
        return self

    # ------------------------------------------------------- weights in / out
    @classmethod
    def from_pretrained(cls, path_or_name: str, **kwargs: Any) -> Enformer:
        """Load weights: our directory, an enformer-pytorch / Hugging Face directory, or a hub name.

        See :func:`enformer.weights.load_pretrained` for the options.
        """
        from ..weights import load_pretrained  # lazy: model/ depends only on torch

        return load_pretrained(path_or_name, **kwargs)

    def save_pretrained(self, directory: str) -> None:
        """Write ``model.safetensors`` and ``config.json`` to ``directory``."""
        from ..weights import save_pretrained

        save_pretrained(self, directory)
