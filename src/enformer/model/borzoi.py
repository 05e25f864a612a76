"""Borzoi (Linder et al., Nature Genetics 2025) in PyTorch, faithful to Calico's baskerville.

The network is built, as baskerville's ``seqnn.SeqNN`` builds it, from the ``model`` section
of Borzoi's ``params.json`` (:meth:`BorzoiConfig.from_params`). Its parts, in order
(baskerville ``blocks.py`` / ``layers.py`` at calico/baskerville@544073b):

* ``conv_dna``: Conv1d(4 -> F, 15, bias), no norm, linear, max pool 2.
* ``res_tower``: ``repeat`` x ``conv_nac`` (BatchNorm -> GELU -> Conv1d(k 5, bias)); widths grow
  geometrically from ``filters_init`` to ``filters_end``, each rounded to ``divisible_by``;
  with ``num_convs`` 1 there is no residual add. Each block's output *before* its max pool is
  kept for the U-Net.
* ``transformer_tower``: ``repeat`` x [LayerNorm -> attention -> add; LayerNorm -> Dense(2C)
  -> ReLU -> Dense(C) -> add]. The attention is Enformer's relative-position attention with
  *central-mask* positional features only, computed for the actual number of bins.
* 2 x ``unet_conv``: BatchNorm + GELU on the deep input and on the tower representation of twice
  its length, a Dense of each to the deep width, nearest-neighbour upsampling x2 of the deep
  path, add, then a separable conv (depthwise k 3, pointwise with bias).
* ``Cropping1D`` (16 bins per side in the released prediction parameters), ``conv_nac``
  (BatchNorm -> GELU -> Conv1d(k 1)), the trunk's final GELU, and one Dense + softplus per head.

**Flashzoi** (Hingerl, Karollus & Gagneur 2024) is the same network with the attention replaced
by :class:`RotaryAttention` (``BorzoiConfig(attention="rotary")``, preset ``flashzoi``); its
weights come as borzoi-pytorch folders (:mod:`enformer.weights.borzoi`).

Keras defaults that matter for parity: BatchNorm and LayerNorm epsilon 1e-3; ``gelu`` is the tanh
approximation (``layers.activate`` calls ``tf.keras.activations.gelu(approximate=True)``);
``same`` padding of a k-wide conv pads ``(k - 1) // 2`` on the left. Inputs are one-hot
``(B, L, 4)`` in A, C, G, T order with ``L`` a multiple of 128; outputs ``(B, bins, tracks)`` at
32 bp, ``bins = L / 32 - 2 * crop``.
"""

from __future__ import annotations

import functools
import math
from dataclasses import asdict, dataclass, field, replace
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from . import fast
from .attention import blocked_relative_attention, fused_relative_attention
from .layers import head_names

__all__ = [
    "Borzoi",
    "BorzoiConfig",
    "RotaryAttention",
    "central_mask_classes",
    "central_mask_features",
    "res_tower_widths",
    "rotary_tables",
]

# Keras' default epsilons (BatchNormalization and LayerNormalization).
BN_EPS = 1e-3
LN_EPS = 1e-3


def res_tower_widths(filters_init: int, filters_end: int, repeat: int, divisible_by: int):
    """The conv widths of baskerville's ``res_tower``: geometric, rounded to ``divisible_by``."""
    mult = math.exp(math.log(filters_end / filters_init) / (repeat - 1))
    widths, current = [], float(filters_init)
    for _ in range(repeat):
        widths.append(int(np.round(current / divisible_by) * divisible_by))
        current *= mult
    return widths


@dataclass(frozen=True)
class BorzoiConfig:
    """Hyper-parameters of a Borzoi network (the ``model`` section of ``params.json``)."""

    sequence_length: int = 524_288
    dna_filters: int = 512  # conv_dna
    dna_kernel: int = 15
    tower_filters_init: int = 608  # res_tower
    tower_filters_end: int = 1536
    tower_divisible_by: int = 32
    tower_kernel: int = 5
    tower_repeat: int = 6
    key_size: int = 64  # transformer_tower
    attention_heads: int = 8
    position_features: int = 32
    transformer_repeat: int = 8
    dense_expansion: float = 2.0
    attention: str = "relative"  # "relative" (Borzoi) or "rotary" (Flashzoi)
    kv_heads: int = 4  # rotary only: key/value heads (grouped-query attention)
    rotary_dim: int = 128  # rotary only: leading features of each head that are rotated
    rotary_base: float = 20_000.0
    unet_kernel: int = 3  # each unet_conv
    unet_repeat: int = 2
    crop: int = 16  # Cropping1D, bins per side
    final_filters: int = 1920  # conv_nac
    heads: dict[str, int] = field(default_factory=lambda: {"human": 7611, "mouse": 2608})
    description: str = ""

    family = "borzoi"
    bin_size = 32
    target_length = None
    crops_double_input = False

    @property
    def tower_widths(self) -> list[int]:
        """Conv width of each ``res_tower`` block."""
        return res_tower_widths(self.tower_filters_init, self.tower_filters_end,
                                self.tower_repeat, self.tower_divisible_by)  # fmt: skip

    @property
    def channels(self) -> int:
        """Width at the transformer (the last tower block's)."""
        return self.tower_widths[-1]

    @property
    def embedding_size(self) -> int:
        """Features per output bin before the heads (``final_filters``)."""
        return self.final_filters

    def output_bins(self, length: int) -> int:
        """Output bins for an input of ``length`` bp."""
        return length // self.bin_size - 2 * self.crop

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready fields."""
        return {"family": self.family, **asdict(self)}

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> BorzoiConfig:
        """Inverse of :meth:`to_dict`."""
        return cls(**{k: v for k, v in data.items() if k != "family"})

    @classmethod
    def from_params(cls, params: dict[str, Any], **overrides: Any) -> BorzoiConfig:
        """Read Calico's ``params.json`` (the whole file or its ``model`` section).

        Only the block layout of the released Borzoi models is understood (conv_dna,
        res_tower, transformer_tower, unet_conv blocks, Cropping1D, conv_nac, ``final``
        heads); anything else is refused with the block's name.
        """
        model = params.get("model", params)
        blocks = {b["name"]: b for b in model["trunk"]}
        known = {"conv_dna", "res_tower", "transformer_tower", "unet_conv", "Cropping1D",
                 "conv_nac"}  # fmt: skip
        unknown = [b["name"] for b in model["trunk"] if b["name"] not in known]
        if unknown or model.get("activation", "gelu") != "gelu":
            raise ValueError(f"not a Borzoi layout this package reads: blocks {unknown}")
        dna, tower, tr = blocks["conv_dna"], blocks["res_tower"], blocks["transformer_tower"]
        if tower.get("num_convs", 1) != 1:
            raise ValueError("res_tower with num_convs > 1 is not supported")
        heads = {k[len("head_"):]: v["units"] for k, v in sorted(model.items())
                 if k.startswith("head_")}  # fmt: skip
        fields = dict(
            sequence_length=model.get("seq_length", 524_288),
            dna_filters=dna["filters"], dna_kernel=dna.get("kernel_size", 15),
            tower_filters_init=tower["filters_init"], tower_filters_end=tower["filters_end"],
            tower_divisible_by=tower.get("divisible_by", 1),
            tower_kernel=tower.get("kernel_size", 1), tower_repeat=tower["repeat"],
            key_size=tr["key_size"], attention_heads=tr["heads"],
            position_features=tr["num_position_features"], transformer_repeat=tr["repeat"],
            dense_expansion=tr.get("dense_expansion", 2.0),
            unet_kernel=blocks["unet_conv"].get("kernel_size", 1),
            unet_repeat=sum(b["name"] == "unet_conv" for b in model["trunk"]),
            crop=blocks.get("Cropping1D", {}).get("cropping", 0),
            final_filters=blocks["conv_nac"]["filters"], heads=heads,
        )  # fmt: skip
        return replace(cls(**fields), **overrides)

    @classmethod
    def preset(cls, name: str) -> BorzoiConfig:
        """``official`` (Borzoi's released prediction parameters), ``flashzoi`` (the same with
        Flashzoi's rotary attention) or ``tiny`` (the test vectors')."""
        if name == "official":
            return cls()
        if name == "tiny":
            return cls(sequence_length=65_536, dna_filters=48, tower_filters_init=56,
                       tower_filters_end=96, tower_divisible_by=8, key_size=16,
                       attention_heads=2, transformer_repeat=2, final_filters=80,
                       heads={"human": 24, "mouse": 12})  # fmt: skip
        if name == "flashzoi":
            return cls(attention="rotary", description="Flashzoi (rotary attention)")
        raise ValueError(f"unknown Borzoi preset {name!r}; use 'official', 'flashzoi' or 'tiny'")


def _gelu(x: torch.Tensor) -> torch.Tensor:
    return F.gelu(x, approximate="tanh")


def _same_conv(conv: nn.Conv1d, x: torch.Tensor) -> torch.Tensor:
    """Keras ``padding='same'``: ``(k - 1) // 2`` zeros on the left, the rest on the right."""
    k = conv.kernel_size[0]
    return conv(F.pad(x, ((k - 1) // 2, k // 2)))


class ConvNAC(nn.Module):
    """baskerville ``conv_nac``: BatchNorm -> GELU -> Conv1d (channels-first inside)."""

    def __init__(self, c_in: int, c_out: int, kernel: int) -> None:
        super().__init__()
        self.norm = nn.BatchNorm1d(c_in, eps=BN_EPS, momentum=0.1)
        self.conv = nn.Conv1d(c_in, c_out, kernel)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """``(B, C_in, L) -> (B, C_out, L)``."""
        return _same_conv(self.conv, _gelu(self.norm(x)))


def central_mask_features(n_bins: int, features: int) -> torch.Tensor:
    """Positional features ``(2T - 1, features)`` for relative distances ``-T+1 .. T-1``.

    ``features / 2`` central-mask basis functions, 1 where ``r**k - 1 > |d|`` (k = 1..F/2,
    ``r = exp(log(T + 1) / (F/2))``, in float32 as TensorFlow computes them), then the same
    times ``sign(d)``.
    """
    half = features // 2
    rate = np.float32(np.exp(np.log(n_bins + 1) / half))
    widths = torch.pow(torch.tensor(rate), torch.arange(1, half + 1, dtype=torch.float32)) - 1
    d = torch.arange(-n_bins + 1, n_bins, dtype=torch.float32)
    mask = (widths[None, :] > d.abs()[:, None]).float()
    return torch.cat([mask, torch.sign(d)[:, None] * mask], dim=-1)


@functools.lru_cache(maxsize=8)
def central_mask_classes(n_bins: int, features: int) -> tuple[torch.Tensor, torch.Tensor]:
    """The distinct rows of :func:`central_mask_features` ``(C, features)`` (``C`` about
    ``features + 1``) and, for each relative distance, its row among them ``(2T - 1,)``.

    Made outside inference mode (cached tensors must serve forwards that record autograd).
    """
    with torch.inference_mode(False):
        table = central_mask_features(n_bins, features)
        distinct, index = torch.unique(table, dim=0, return_inverse=True)
    return distinct, index


def _fused(implementation: str, x: torch.Tensor) -> bool:
    """Whether an attention with this ``implementation`` runs PyTorch's fused kernel on ``x``."""
    return implementation == "fused" or (implementation == "auto" and x.device.type == "cuda")


class BorzoiAttention(nn.Module):
    """baskerville ``layers.MultiheadAttention`` as Borzoi uses it (central-mask features)."""

    def __init__(self, channels: int, heads: int, key_size: int, position_features: int):
        super().__init__()
        self.heads, self.key_size, self.position_features = heads, key_size, position_features
        self.r_w_bias = nn.Parameter(torch.zeros(1, heads, 1, key_size))
        self.r_r_bias = nn.Parameter(torch.zeros(1, heads, 1, key_size))
        self.q = nn.Linear(channels, heads * key_size, bias=False)
        self.k = nn.Linear(channels, heads * key_size, bias=False)
        self.v = nn.Linear(channels, channels, bias=False)
        self.out = nn.Linear(channels, channels)
        self.r_k = nn.Linear(position_features, heads * key_size, bias=False)
        self.implementation = "auto"

    def _split(self, x: torch.Tensor) -> torch.Tensor:
        b, t, _ = x.shape
        return x.reshape(b, t, self.heads, -1).transpose(1, 2)  # (B, H, T, C/H)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """``(B, T, C) -> (B, T, C)``."""
        t = x.shape[1]
        q = self._split(self.q(x)) * self.key_size**-0.5
        k, v = self._split(self.k(x)), self._split(self.v(x))
        # The features are steps of the distance: project only their distinct rows
        # (index: distance row -> distinct row; model/attention.py gathers the logits).
        distinct, index = central_mask_classes(t, self.position_features)
        r_k = self.r_k(distinct.to(x)).reshape(-1, self.heads, self.key_size).transpose(0, 1)
        # (H, C, K)
        qw, qr = q + self.r_w_bias, q + self.r_r_bias
        # Enformer's kernels (model/attention.py): the same logits, in query blocks with
        # only the relative positions each block needs, or fused with them as a mask.
        attend = fused_relative_attention if _fused(self.implementation, x) else (
            blocked_relative_attention)  # fmt: skip
        out = attend(qw, qr, k, v, r_k, index=index.to(x.device))  # (B, H, T, V)
        return self.out(out.transpose(1, 2).reshape(x.shape))


def rotary_tables(n: int, dim: int, base: float) -> tuple[torch.Tensor, torch.Tensor]:
    """``cos``, ``sin`` ``(n, dim)`` of positions ``0..n-1`` (float32, as flash-attn makes them)."""
    inv_freq = 1.0 / (base ** (torch.arange(0, dim, 2, dtype=torch.float32) / dim))
    freqs = torch.outer(torch.arange(n, dtype=torch.float32), inv_freq)
    return freqs.cos().repeat(1, 2), freqs.sin().repeat(1, 2)


def apply_rotary(x: torch.Tensor, cos: torch.Tensor, sin: torch.Tensor) -> torch.Tensor:
    """Rotate the first ``cos.shape[-1]`` features of ``x`` ``(B, H, T, D)``, GPT-NeoX style
    (halves, not interleaved pairs); the rest pass unchanged."""
    r = cos.shape[-1]
    a, rest = x[..., :r], x[..., r:]
    a1, a2 = a.chunk(2, dim=-1)
    return torch.cat([a * cos + torch.cat([-a2, a1], dim=-1) * sin, rest], dim=-1)


class RotaryAttention(nn.Module):
    """Flashzoi's attention (flash-attn ``MHA`` as borzoi-pytorch configures it): one ``Wqkv``
    projection with bias to ``heads`` queries and ``kv_heads`` keys and values (grouped: query
    head ``i`` reads key/value head ``i // (heads / kv_heads)``), rotary positions on the first
    ``rotary_dim`` features of queries and keys, softmax scale ``head_dim ** -0.5``.

    ``implementation``: ``"blocked"`` computes the softmax explicitly (exact, any device),
    ``"fused"`` calls :func:`torch.nn.functional.scaled_dot_product_attention` (FlashAttention
    kernels on a GPU), ``"auto"`` = fused on CUDA, blocked elsewhere.
    """

    def __init__(self, channels: int, heads: int, kv_heads: int, rotary_dim: int, base: float):
        super().__init__()
        self.heads, self.kv_heads, self.head_dim = heads, kv_heads, channels // heads
        self.rotary_dim, self.base = rotary_dim, base
        self.Wqkv = nn.Linear(channels, (heads + 2 * kv_heads) * self.head_dim)
        self.out_proj = nn.Linear(channels, channels)
        self.implementation = "auto"

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """``(B, T, C) -> (B, T, C)``."""
        b, t, c = x.shape
        d, h, g = self.head_dim, self.heads, self.kv_heads
        q, k, v = self.Wqkv(x).split([h * d, g * d, g * d], dim=-1)
        q, k, v = (y.reshape(b, t, -1, d).transpose(1, 2) for y in (q, k, v))
        cos, sin = (y.to(x) for y in rotary_tables(t, self.rotary_dim, self.base))
        q, k = apply_rotary(q, cos, sin), apply_rotary(k, cos, sin)
        k, v = (y.repeat_interleave(h // g, dim=1) for y in (k, v))
        if _fused(self.implementation, x):
            out = F.scaled_dot_product_attention(q, k, v)
        else:
            out = torch.softmax((q * d**-0.5) @ k.transpose(-1, -2), dim=-1) @ v
        return self.out_proj(out.transpose(1, 2).reshape(b, t, c))


class TransformerBlock(nn.Module):
    """baskerville ``transformer`` + ``transformer_dense`` (ReLU feed-forward)."""

    def __init__(self, cfg: BorzoiConfig) -> None:
        super().__init__()
        c = cfg.channels
        self.norm1 = nn.LayerNorm(c, eps=LN_EPS)
        if cfg.attention == "rotary":
            self.attention: nn.Module = RotaryAttention(
                c, cfg.attention_heads, cfg.kv_heads, cfg.rotary_dim, cfg.rotary_base
            )
        else:
            self.attention = BorzoiAttention(c, cfg.attention_heads, cfg.key_size,
                                             cfg.position_features)  # fmt: skip
        self.norm2 = nn.LayerNorm(c, eps=LN_EPS)
        self.dense1 = nn.Linear(c, int(cfg.dense_expansion * c))
        self.dense2 = nn.Linear(int(cfg.dense_expansion * c), c)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """``(B, T, C) -> (B, T, C)``."""
        x = x + self.attention(self.norm1(x))
        return x + self.dense2(torch.relu(self.dense1(self.norm2(x))))


class UNetBlock(nn.Module):
    """baskerville ``unet_conv`` with ``upsample_conv``: deep (x2) + skip, separable conv."""

    def __init__(self, c_deep: int, c_skip: int, kernel: int) -> None:
        super().__init__()
        self.norm_deep = nn.BatchNorm1d(c_deep, eps=BN_EPS, momentum=0.1)
        self.norm_skip = nn.BatchNorm1d(c_skip, eps=BN_EPS, momentum=0.1)
        self.dense_deep = nn.Linear(c_deep, c_deep)
        self.dense_skip = nn.Linear(c_skip, c_deep)
        self.depthwise = nn.Conv1d(c_deep, c_deep, kernel, groups=c_deep, bias=False)
        self.pointwise = nn.Conv1d(c_deep, c_deep, 1)

    def project_skip(self, skip: torch.Tensor) -> torch.Tensor:
        """The skip path, pointwise per row: ``(B, C_skip, n) -> (B, n, C)``."""
        return self.dense_skip(_gelu(self.norm_skip(skip)).transpose(1, 2))

    def merge(self, deep: torch.Tensor, projected: torch.Tensor) -> torch.Tensor:
        """Deep path ``(B, C, T)`` upsampled, plus the projected skip ``(B, 2T, C)``, then the
        separable conv: ``(B, C, 2T)``."""
        a = self.dense_deep(_gelu(self.norm_deep(deep)).transpose(1, 2))
        x = (a.repeat_interleave(2, dim=1) + projected).transpose(1, 2)
        return self.pointwise(_same_conv(self.depthwise, x))

    def forward(self, deep: torch.Tensor, skip: torch.Tensor) -> torch.Tensor:
        """``(B, C, T)``, ``(B, C_skip, 2T)`` -> ``(B, C, 2T)``."""
        return self.merge(deep, self.project_skip(skip))


class Borzoi(nn.Module):
    """The Borzoi network; ``forward`` maps one-hot ``(B, L, 4)`` to ``{head: (B, bins, n)}``."""

    def __init__(self, config: BorzoiConfig | None = None) -> None:
        super().__init__()
        cfg = self.config = config or BorzoiConfig()
        widths = cfg.tower_widths
        self.conv_dna = nn.Conv1d(4, cfg.dna_filters, cfg.dna_kernel)
        self.tower = nn.ModuleList(
            ConvNAC(c_in, c_out, cfg.tower_kernel)
            for c_in, c_out in zip([cfg.dna_filters, *widths[:-1]], widths, strict=True)
        )
        self.transformer = nn.ModuleList(
            TransformerBlock(cfg) for _ in range(cfg.transformer_repeat)
        )
        # The i-th U-Net block takes the tower representation i+1 blocks from the end.
        self.unet = nn.ModuleList(
            UNetBlock(cfg.channels, widths[-1 - i], cfg.unet_kernel) for i in range(cfg.unet_repeat)
        )
        self.final = ConvNAC(cfg.channels, cfg.final_filters, 1)
        self.heads = nn.ModuleDict({h: nn.Linear(cfg.final_filters, n) for h, n in cfg.heads.items()})

    @classmethod
    def from_pretrained(cls, path_or_name: str, **kwargs: Any) -> Borzoi:
        """Load a Calico release folder, a borzoi-pytorch / Hugging Face folder or hub name
        (``johahi/borzoi-replicate-0``, ``johahi/flashzoi-replicate-0``), or our checkpoint.

        See :func:`enformer.weights.load_pretrained` for the options.
        """
        from ..weights import load_pretrained  # lazy: model/ depends only on torch

        model = load_pretrained(path_or_name, **kwargs)
        if not isinstance(model, cls):
            raise TypeError(f"{path_or_name} holds a {type(model).__name__}, not a Borzoi model")
        return model

    def save_pretrained(self, directory: str) -> None:
        """Write ``model.safetensors`` and ``config.json`` (``family: borzoi``) to ``directory``."""
        from ..weights import save_pretrained

        save_pretrained(self, directory)

    @property
    def device(self) -> torch.device:
        """Device of the parameters."""
        return self.conv_dna.weight.device

    @property
    def dtype(self) -> torch.dtype:
        """Floating dtype of the parameters."""
        return self.conv_dna.weight.dtype

    def num_parameters(self, trainable_only: bool = True) -> int:
        """Number of (trainable) parameters."""
        return sum(p.numel() for p in self.parameters() if p.requires_grad or not trainable_only)

    @property
    def attention_implementation(self) -> str:
        """The attention path requested of every transformer block."""
        names = {block.attention.implementation for block in self.transformer}
        return names.pop() if len(names) == 1 else "mixed" if names else "auto"

    def set_attention_implementation(self, implementation: str = "auto") -> Borzoi:
        """``"blocked"`` (explicit softmax, exact on any device), ``"fused"``
        (:func:`torch.nn.functional.scaled_dot_product_attention`; Borzoi's relative logits go
        in as an additive mask) or ``"auto"`` (fused on CUDA, blocked elsewhere)."""
        if implementation not in ("auto", "fused", "blocked"):
            raise ValueError(f"attention implementation must be auto, fused or blocked, got "
                             f"{implementation!r}")  # fmt: skip
        for block in self.transformer:
            block.attention.implementation = implementation
        return self

    def _prepare(self, x: torch.Tensor) -> torch.Tensor:
        if not isinstance(x, torch.Tensor) or x.dim() != 3 or x.shape[-1] != 4:
            shape = tuple(x.shape) if isinstance(x, torch.Tensor) else type(x).__name__
            raise ValueError(f"expected one-hot DNA of shape (batch, length, 4), got {shape}")
        unit = 2 ** (1 + self.config.tower_repeat)
        if x.shape[1] % unit or self.config.output_bins(x.shape[1]) < 1:
            raise ValueError(
                f"sequence length {x.shape[1]} bp is not a positive multiple of {unit} bp long "
                f"enough for the crop; Borzoi was trained on {self.config.sequence_length} bp"
            )
        return x.to(self.dtype).transpose(1, 2)  # (B, 4, L)

    def _fast(self, x: torch.Tensor) -> bool:
        """Whether the tiled CPU kernels of :mod:`enformer.model.fast` serve this call: eval
        mode, no autograd, no autocast, a CPU tensor."""
        return (not self.training and not torch.is_grad_enabled() and x.device.type == "cpu"
                and not torch.is_autocast_enabled("cpu"))  # fmt: skip

    def convolve(self, x: torch.Tensor) -> tuple[torch.Tensor, list[torch.Tensor | None]]:
        """The local stages on ``(B, 4, L)``: the tower's pooled output ``(B, C, T)`` and, per
        tower block, its output before the pool where a U-Net block reads it (else ``None``).

        On the CPU in eval mode without autograd or autocast this runs the tiled kernels of
        :mod:`enformer.model.fast`; otherwise the ``nn.Conv1d`` modules.
        """
        first_kept = len(self.tower) - len(self.unet)
        if self._fast(x):
            h, _ = fast.borzoi_stage_forward(None, self.conv_dna, x.transpose(1, 2).contiguous())
            skips: list[torch.Tensor | None] = []
            for i, block in enumerate(self.tower):
                h, full = fast.borzoi_stage_forward(block.norm, block.conv, h,
                                                    keep=i >= first_kept)  # fmt: skip
                skips.append(None if full is None else full.transpose(1, 2))
            return h.transpose(1, 2), skips
        y = F.max_pool1d(_same_conv(self.conv_dna, x), 2)
        skips = []
        for i, block in enumerate(self.tower):
            y = block(y)
            skips.append(y if i >= first_kept else None)
            y = F.max_pool1d(y, 2)
        return y, skips

    def upsample(self, y: torch.Tensor, projected: list[torch.Tensor]) -> torch.Tensor:
        """Transformer, U-Net and crop on the tower output ``(B, C, T)``, given each U-Net
        block's projected skip (:meth:`UNetBlock.project_skip`): ``(B, C, bins)``."""
        y = y.transpose(1, 2)
        for block in self.transformer:
            y = block(y)
        y = y.transpose(1, 2)
        for block, skip in zip(self.unet, projected, strict=True):
            y = block.merge(y, skip)
        c = self.config.crop
        return y[..., c:-c] if c else y

    def decode(self, y: torch.Tensor, projected: list[torch.Tensor]) -> torch.Tensor:
        """:meth:`upsample`, then the final conv and GELU: the embedding ``(B, bins, F)``."""
        return _gelu(self.final(self.upsample(y, projected))).transpose(1, 2)

    def outputs(
        self,
        y: torch.Tensor,
        projected: list[torch.Tensor],
        heads: str | list[str] | None = None,
        tracks: dict[str, torch.Tensor] | None = None,
    ) -> dict[str, torch.Tensor]:
        """Head outputs ``{head: (B, bins, tracks)}`` from the tower output and projected skips
        (as :meth:`decode` takes them); ``heads``: names (default all), ``tracks``: head ->
        indices of the tracks to compute (default all).

        On the CPU in eval mode without autograd the final conv and the heads run in row
        tiles (:func:`enformer.model.fast.borzoi_output`).
        """
        names = head_names(self.heads, heads)
        if y.shape[0] > 1 and self._fast(y):
            # One sequence at a time: at Borzoi's lengths a batch adds nothing to the GEMMs'
            # efficiency, while the attention's and U-Net's working set outgrows the caches
            # (batch 2 took 1.6x as long per sequence at the official size on 2 cores).
            parts = [self.outputs(y[i : i + 1], [p[i : i + 1] for p in projected], names, tracks)
                     for i in range(y.shape[0])]  # fmt: skip
            return {h: torch.cat([part[h] for part in parts]) for h in names}
        z = self.upsample(y, projected)  # (B, C, bins)
        tracks = tracks or {}
        plain = all(type(self.heads[h]) is nn.Linear for h in names)
        if plain and self._fast(z):
            pairs = []
            for name in names:
                w, b, idx = self.heads[name].weight, self.heads[name].bias, tracks.get(name)
                pairs.append((w, b) if idx is None else (w[idx], b[idx]))
            z = z.transpose(1, 2).contiguous()  # (B, bins, C)
            outs = fast.borzoi_output(self.final.norm, self.final.conv, pairs, z)
            return dict(zip(names, outs, strict=True))
        emb = _gelu(self.final(z)).transpose(1, 2)
        out = {}
        for name in names:
            head, idx = self.heads[name], tracks.get(name)
            y_head = head(emb) if idx is None else F.linear(emb, head.weight[idx], head.bias[idx])
            out[name] = F.softplus(y_head)
        return out

    def embed(self, x: torch.Tensor) -> torch.Tensor:
        """Trunk output ``(B, bins, final_filters)`` (after the crop and the final GELU)."""
        y, skips = self.convolve(self._prepare(x))
        projected = [block.project_skip(skips[-1 - i]) for i, block in enumerate(self.unet)]
        return self.decode(y, projected)

    def heads_forward(
        self, embedding: torch.Tensor, heads: str | list[str] | None = None
    ) -> dict[str, torch.Tensor]:
        """The heads (Dense + softplus; ``heads``: names, default all) on an embedding
        ``(B, bins, final_filters)``."""
        names = head_names(self.heads, heads)
        return {name: F.softplus(self.heads[name](embedding)) for name in names}

    def forward(
        self, x: torch.Tensor, heads: str | list[str] | None = None
    ) -> dict[str, torch.Tensor]:
        """One-hot ``x`` ``(B, L, 4)`` -> ``{head: (B, bins, tracks)}``; ``heads``: the names of
        the heads to compute (default all; borzoi-pytorch computes the human head only)."""
        y, skips = self.convolve(self._prepare(x))
        projected = [block.project_skip(skips[-1 - i]) for i, block in enumerate(self.unet)]
        return self.outputs(y, projected, heads)
