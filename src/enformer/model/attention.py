"""Multi-head attention with Transformer-XL relative positions, as in Enformer.

The relative positional features are a fixed function of the number of bins ``T``
(Avsec et al. 2021, Methods; DeepMind's ``enformer.py``, whose trained model divides each
gamma basis function by its own maximum); they are evaluated in float64 once per length and cached.

Two code paths compute the same attention (equal to float32 rounding):

* ``"fused"``: :func:`torch.nn.functional.scaled_dot_product_attention` with the shifted
  relative logits as an additive mask. On CUDA that is the memory-efficient kernel (flash
  kernels take no additive mask); on the CPU PyTorch's flash kernel when the key and value
  sizes are equal and no gradient is needed, its reference ("math") code otherwise.
* ``"blocked"``: explicit softmax over query blocks of 256 rows, so the relative-logit
  buffer holds ``256 x (T + 255)`` values instead of ``T x (2T - 1)``; the only path that
  can hand the softmax weights to an ``attention_hook``.

``MultiheadAttention.implementation`` chooses: ``"auto"`` (fused on CUDA, blocked
elsewhere), ``"fused"`` or ``"blocked"``; a set ``attention_hook`` always forces the blocked
path. The path taken is logged once per process and setting (logger ``enformer.model.attention``,
INFO).
"""

from __future__ import annotations

import functools
import logging
import math
from collections.abc import Callable

import torch
import torch.nn.functional as F
from torch import nn

__all__ = [
    "ATTENTION_IMPLEMENTATIONS",
    "MultiheadAttention",
    "blocked_relative_attention",
    "fused_relative_attention",
    "query_block",
    "relative_bias",
    "relative_logits",
    "relative_positional_features",
    "relative_shift",
]

logger = logging.getLogger(__name__)

# Values of MultiheadAttention.implementation.
ATTENTION_IMPLEMENTATIONS = ("auto", "fused", "blocked")

# Queries per block (bounds the relative-logit buffer to block x (T+block-1)): 256 for
# Enformer's 1,536 bins; longer inputs take smaller blocks, so that a block's logits stay
# about this many values per head (at Borzoi's 4,096 bins, 128-query blocks ran the
# attention core 1.4x faster than 256-query blocks on a 2-core CPU).
_QUERY_BLOCK = 256
_BLOCK_VALUES = 256 * 1536


def query_block(length: int) -> int:
    """Queries per block of :func:`blocked_relative_attention` for ``length`` keys: the power
    of two nearest ``256 * 1536 / length``, between 32 and 512 (256 for 1,536 keys)."""
    power = round(math.log2(_BLOCK_VALUES / max(length, 1)))
    return 1 << min(9, max(5, power))

# Row length of the fused path's mask buffer is rounded up to this many elements, so every
# stride but the last is a multiple of 16 elements (>= 16 bytes for any float dtype).
_MASK_ALIGN = 16

# (path, implementation, device type, hooked) settings already logged.
_LOGGED: set[tuple[str, str, str, bool]] = set()


def _log_path(path: str, implementation: str, device_type: str, hooked: bool) -> None:
    """Log the attention path once per process and setting."""
    if torch.compiler.is_compiling():
        return
    key = (path, implementation, device_type, hooked)
    if key in _LOGGED:
        return
    _LOGGED.add(key)
    if path == "fused":
        how = "fused (scaled_dot_product_attention)"
    elif hooked:
        how = "blocked (explicit softmax, all query rows at once: an attention hook is set)"
    else:
        how = "blocked (explicit softmax, query blocks of 256 x 1,536 / bins)"
    logger.info("attention: %s on %s; implementation %r", how, device_type, implementation)


def _exponential(distance: torch.Tensor, n: int, length: int) -> torch.Tensor:
    """exp(-ln2 / half_life * |d|), half-lives 2**linspace(3, log2(T), n). ``(2T-1, n)``."""
    max_range = math.log(length) / math.log(2.0)
    half_life = torch.pow(2.0, torch.linspace(3.0, max_range, n, dtype=torch.float64))
    return torch.exp(-math.log(2.0) / half_life[None, :] * distance.abs()[:, None])


def _central_mask(distance: torch.Tensor, n: int) -> torch.Tensor:
    """1[|d| < 2**k - 1], k = 1..n. ``(2T-1, n)``."""
    widths = torch.pow(2.0, torch.arange(1, n + 1, dtype=torch.float64)) - 1
    return (widths[None, :] > distance.abs()[:, None]).to(torch.float64)


def _gamma(distance: torch.Tensor, n: int, length: int) -> torch.Tensor:
    """Gamma pdfs over |d|, each basis function divided by its own maximum. ``(2T-1, n)``."""
    stddev = length / (2 * n)
    mean = torch.linspace(length / n, length, n, dtype=torch.float64)
    concentration = (mean / stddev) ** 2
    rate = mean / stddev**2
    x = distance.abs()[:, None]
    log_unnormalised = torch.xlogy(concentration - 1.0, x) - rate * x
    log_normalisation = torch.lgamma(concentration) - concentration * torch.log(rate)
    prob = torch.exp(log_unnormalised - log_normalisation) + 1e-8
    # Normalise over distances, separately per basis function (axis 0 here): every
    # column peaks at exactly 1, as in the trained model's code.
    return prob / prob.amax(dim=0, keepdim=True)


@functools.lru_cache(maxsize=32)
def _cached_features(length: int, num_features: int) -> torch.Tensor:
    return relative_positional_features(length, num_features)


def relative_positional_features(length: int, num_features: int) -> torch.Tensor:
    """Relative positional features for ``length`` bins, float64 ``(2*length - 1, num_features)``.

    Row ``m`` is relative distance ``d = m - (length - 1)`` (key minus query). Columns:
    ``[exp, central_mask, gamma, sign(d)*exp, sign(d)*central_mask, sign(d)*gamma]``,
    ``num_features // 6`` basis functions each; ``sign(0) = 0``.
    """
    if num_features % 6:
        raise ValueError(f"num_features must be divisible by 6, got {num_features}")
    n = num_features // 6
    distance = torch.arange(-length + 1, length, dtype=torch.float64)
    symmetric = torch.cat(
        [
            _exponential(distance, n, length),
            _central_mask(distance, n),
            _gamma(distance, n, length),
        ],
        dim=-1,
    )
    return torch.cat([symmetric, torch.sign(distance)[:, None] * symmetric], dim=-1)


def relative_shift(x: torch.Tensor) -> torch.Tensor:
    """Turn logits over relative distances into logits over key positions.

    ``x`` is ``(..., T, 2T-1)`` with column ``m`` = distance ``m - (T-1)``; the result is
    ``(..., T, T)`` with ``out[i, j] = x[i, j - i + T - 1]``. Done with a strided view
    (no pad-and-reshape copy): element ``(i, j)`` sits at ``T-1 + i*(2T-2) + j``.
    """
    t = x.shape[-2]
    if x.shape[-1] != 2 * t - 1:
        raise ValueError(f"relative_shift expects (..., T, 2T-1), got {tuple(x.shape)}")
    x = x.contiguous()
    lead = x.shape[:-2]
    flat = x.reshape(-1, t, 2 * t - 1)  # (N, T, 2T-1)
    n = flat.shape[0]
    out = flat.as_strided(
        size=(n, t, t),
        stride=(t * (2 * t - 1), 2 * t - 2, 1),
        storage_offset=flat.storage_offset() + t - 1,
    )
    return out.reshape(*lead, t, t)


def relative_logits(
    q: torch.Tensor, r_k: torch.Tensor, first: int, length: int, index: torch.Tensor | None = None
) -> torch.Tensor:
    """Shifted relative logits for the queries ``first .. first+n`` of ``length`` bins.

    ``q`` is ``(B, H, n, K)`` (scaled, ``r_r_bias`` added) and ``r_k`` ``(H, 2T-1, K)``.
    Query ``i`` and key ``j`` need distance ``j - i``, row ``j - i + T - 1`` of ``r_k``; a
    block of ``n`` queries needs only the ``T + n - 1`` rows starting at
    ``T - first - n``. Returns a ``(B, H, n, T)`` strided view with
    ``out[a, j] = (q[a] . r_k[j - (first + a) + T - 1])``.

    With ``index`` ``(2T-1,)``, ``r_k`` holds only the distinct rows ``(H, C, K)`` and distance
    row ``d`` is ``r_k[:, index[d]]`` (features that are steps of the distance, as Borzoi's
    central masks, take few values): the queries meet the ``C`` rows once and the products
    are gathered, instead of ``T + n - 1`` dot products per query.
    """
    n = q.shape[-2]
    lo = length - first - n
    width = length + n - 1
    if index is None:
        window = r_k[:, lo : lo + width]  # (H, T+n-1, K)
        rel = torch.matmul(q, window.transpose(-1, -2))  # (B, H, n, T+n-1)
    else:
        per_class = torch.matmul(q, r_k.transpose(-1, -2))  # (B, H, n, C)
        per_class = per_class.reshape(-1, per_class.shape[-1])
        rows = index[lo : lo + width].expand(per_class.shape[0], width)
        rel = torch.gather(per_class, 1, rows).view(*q.shape[:-1], width)  # (B, H, n, T+n-1)
    # Row a, column j lives at a*(T+n-1) + (n-1-a) + j: stride T+n-2 along a.
    lead = rel.shape[:-2]
    flat = rel.reshape(-1, n, width)
    out = flat.as_strided(
        size=(flat.shape[0], n, length),
        stride=(n * width, width - 1, 1),
        storage_offset=flat.storage_offset() + n - 1,
    )
    return out.reshape(*lead, n, length)


def relative_bias(
    q: torch.Tensor, r_k: torch.Tensor, first: int, length: int, index: torch.Tensor | None = None
) -> torch.Tensor:
    """Relative logits of every query as an additive attention mask, ``(B, H, n, T)``
    (``index``: as for :func:`relative_logits`).

    The fused kernels need a mask with unit stride along keys and, for the CUDA
    memory-efficient kernel, every other stride a multiple of 16 bytes; the view of
    :func:`relative_logits` has row stride ``T+n-2`` (PyTorch would pad a copy of it, or
    fall back to the unfused kernel). So the mask is written query block by query block
    into a buffer whose rows are padded to a multiple of 16 elements, and a ``[..., :T]``
    view is returned: peak memory is the mask (``n x T`` per head, as any fused call
    needs) plus one block's ``block x (T+block-1)`` logits, never the ``n x (T+n-1)`` of
    all queries at once.
    """
    b, h, n, _ = q.shape
    padded = -(-length // _MASK_ALIGN) * _MASK_ALIGN
    mask = None
    for a0 in range(0, n, _QUERY_BLOCK):
        a1 = min(a0 + _QUERY_BLOCK, n)
        rel = relative_logits(q[:, :, a0:a1], r_k, first + a0, length, index)  # (B, H, nb, T)
        if mask is None:
            mask = rel.new_empty((b, h, n, padded))  # (B, H, n, T padded)
        mask[:, :, a0:a1, :length].copy_(rel)  # autograd records the copy (CopySlices)
    return mask[..., :length]  # (B, H, n, T)


def fused_relative_attention(
    q_w: torch.Tensor, q_r: torch.Tensor, keys: torch.Tensor, values: torch.Tensor,
    r_k: torch.Tensor, first: int = 0, dropout: float = 0.0, *, index: torch.Tensor | None = None,
) -> torch.Tensor:  # fmt: skip
    """Relative attention by :func:`torch.nn.functional.scaled_dot_product_attention`.

    ``q_w`` / ``q_r``: scaled queries plus ``r_w_bias`` / ``r_r_bias`` ``(B, H, n, K)`` (rows
    ``first ..`` of the sequence); ``keys`` ``(B, H, T, K)``; ``values`` ``(B, H, T, V)``;
    ``r_k`` ``(H, 2T-1, K)`` (or its distinct rows with ``index``, see
    :func:`relative_logits`). Returns ``(B, H, n, V)``.
    """
    mask = relative_bias(q_r, r_k, first, keys.shape[-2], index)  # (B, H, n, T)
    return F.scaled_dot_product_attention(
        q_w, keys, values, attn_mask=mask, dropout_p=dropout, scale=1.0
    )  # (B, H, n, V)


def blocked_relative_attention(
    q_w: torch.Tensor, q_r: torch.Tensor, keys: torch.Tensor, values: torch.Tensor,
    r_k: torch.Tensor, first: int = 0, dropout: float = 0.0, *, block: int | None = None,
    hook: Callable[[torch.Tensor], None] | None = None, index: torch.Tensor | None = None,
) -> torch.Tensor:  # fmt: skip
    """The same attention as :func:`fused_relative_attention` with an explicit softmax over
    query blocks of ``block`` rows (default :func:`query_block`), so the relative logits hold
    ``block x (T+block-1)`` values, not ``T x (2T-1)``; ``hook`` receives each block's
    softmax weights."""
    n, t = q_w.shape[-2], keys.shape[-2]
    block = min(n, query_block(t) if block is None else block)
    training = dropout > 0
    outs = []
    for a0 in range(0, n, block):
        a1 = min(a0 + block, n)
        rel = relative_logits(q_r[:, :, a0:a1], r_k, first + a0, t, index)  # (B, H, nb, T)
        logits = torch.matmul(q_w[:, :, a0:a1], keys.transpose(-1, -2))  # (B, H, nb, T)
        logits = logits.add_(rel) if not logits.requires_grad else logits + rel
        weights = torch.softmax(logits, dim=-1)  # (B, H, nb, T)
        if hook is not None:
            hook(weights)
        if training:
            weights = F.dropout(weights, dropout, True)
        outs.append(torch.matmul(weights, values))  # (B, H, nb, V)
    return outs[0] if len(outs) == 1 else torch.cat(outs, dim=2)


class MultiheadAttention(nn.Module):
    """Enformer's MHA: bias-free q/k/v and relative-key projections, biased output.

    ``logits = (q/sqrt(K) + r_w_bias) kᵀ + shift((q/sqrt(K) + r_r_bias) r_kᵀ)``.
    Parameter names follow DeepMind's checkpoint (``q_layer``, ``k_layer``, ...).
    """

    def __init__(
        self,
        channels: int,
        num_heads: int,
        key_size: int,
        value_size: int,
        num_relative_position_features: int,
        attention_dropout_rate: float = 0.0,
        positional_dropout_rate: float = 0.0,
    ) -> None:
        super().__init__()
        self.num_heads = num_heads
        self.key_size = key_size
        self.value_size = value_size
        self.num_relative_position_features = num_relative_position_features
        self.attention_dropout_rate = attention_dropout_rate
        self.q_layer = nn.Linear(channels, num_heads * key_size, bias=False)
        self.k_layer = nn.Linear(channels, num_heads * key_size, bias=False)
        self.v_layer = nn.Linear(channels, num_heads * value_size, bias=False)
        self.r_k_layer = nn.Linear(num_relative_position_features, num_heads * key_size, bias=False)
        self.embedding_layer = nn.Linear(num_heads * value_size, channels)
        self.r_w_bias = nn.Parameter(torch.zeros(1, num_heads, 1, key_size))
        self.r_r_bias = nn.Parameter(torch.zeros(1, num_heads, 1, key_size))
        self.positional_dropout = nn.Dropout(positional_dropout_rate)
        # (length, device, dtype) -> features; the float64 table is shared across layers.
        self._features_cast: dict[tuple[int, torch.device, torch.dtype], torch.Tensor] = {}
        # Eval-mode cache of the projected positional features (see relative_keys).
        self._r_k_cache = None
        # Set by enformer.interpret to capture softmax weights; None costs nothing.
        self.attention_hook = None
        self._implementation = "auto"

    @property
    def implementation(self) -> str:
        """Requested attention path: ``"auto"``, ``"fused"`` or ``"blocked"`` (module docstring)."""
        return self._implementation

    @implementation.setter
    def implementation(self, value: str) -> None:
        if value not in ATTENTION_IMPLEMENTATIONS:
            raise ValueError(
                f"attention implementation must be one of "
                f"{', '.join(repr(v) for v in ATTENTION_IMPLEMENTATIONS)}; got {value!r}"
            )
        self._implementation = value

    def attention_path(self, device: torch.device | str) -> str:
        """The path :meth:`forward` takes for inputs on ``device``: ``"fused"`` or ``"blocked"``.

        A set ``attention_hook`` forces ``"blocked"`` (the hook needs the softmax weights,
        which the fused kernels never form); otherwise ``"auto"`` means fused on CUDA only.
        """
        if self.attention_hook is not None:
            return "blocked"
        if self._implementation == "auto":
            return "fused" if torch.device(device).type == "cuda" else "blocked"
        return self._implementation

    def positional_features(self, length: int, device: torch.device, dtype: torch.dtype):
        """Cached relative positional features for ``length`` bins, ``(2T-1, F)``.

        Made outside inference mode even when first asked for inside it: an inference
        tensor in the cache would break every later forward that records autograd.
        """
        key = (length, device, dtype)
        cached = self._features_cast.get(key)
        if cached is None:
            with torch.inference_mode(False):
                table = _cached_features(length, self.num_relative_position_features)
                cached = table.to(device=device, dtype=dtype, copy=True)
            self._features_cast[key] = cached
        return cached

    def relative_keys(self, length: int, device: torch.device, dtype: torch.dtype):
        """Projected positional features ``r_k`` for ``length`` bins, ``(H, 2T-1, K)``.

        Without autograd and in eval mode the projection is cached per length until the
        weights change. The key holds the autocast state: under autocast the projection's
        dtype is the autocast dtype, not ``dtype``, and must not be served to a run without.
        """
        cacheable = not self.training and not torch.is_grad_enabled()
        features = self.positional_features(length, device, dtype)  # (2T-1, F)
        w = self.r_k_layer.weight
        autocast = torch.is_autocast_enabled(device.type) and torch.get_autocast_dtype(
            device.type
        )
        key = (length, device, dtype, autocast, w.data_ptr(), w._version, features.data_ptr())
        if cacheable and self._r_k_cache is not None and self._r_k_cache[0] == key:
            return self._r_k_cache[1]
        features = self.positional_dropout(features)
        r_k = self.r_k_layer(features)  # (2T-1, H*K)
        r_k = r_k.view(2 * length - 1, self.num_heads, self.key_size).transpose(0, 1)
        # (H, 2T-1, K)
        if cacheable:
            self._r_k_cache = (key, r_k.contiguous())
            return self._r_k_cache[1]
        return r_k

    relative_logits = staticmethod(relative_logits)

    @staticmethod
    def relative_bias(q: torch.Tensor, r_k: torch.Tensor, first: int, length: int) -> torch.Tensor:
        """:func:`relative_bias` (kept as a method for callers of earlier versions)."""
        return relative_bias(q, r_k, first, length)

    def _attend_fused(self, q_w, q_r, keys, values, r_k, first, dropout):
        """Softmax attention by scaled_dot_product_attention: ``(B, H, n, V)``."""
        return fused_relative_attention(q_w, q_r, keys, values, r_k, first, dropout)

    def _attend_blocked(self, q_w, q_r, keys, values, r_k, first, dropout):
        """Explicit softmax attention over query blocks: ``(B, H, n, V)``; with an
        ``attention_hook``, all query rows in one block (the hook sees whole maps)."""
        hook = self.attention_hook
        return blocked_relative_attention(
            q_w, q_r, keys, values, r_k, first, dropout if self.training else 0.0,
            block=q_w.shape[-2] if hook is not None else None,
            hook=None if hook is None else (lambda w: hook(self, w)),
        )  # fmt: skip

    def forward(self, x: torch.Tensor, query_rows: tuple[int, int] | None = None) -> torch.Tensor:
        """Attend over ``x`` ``(B, T, C)``; returns ``(B, n, C)`` for the query rows.

        ``query_rows = (start, end)`` computes outputs for those rows only (keys and values
        still come from every row); by default every row is a query. The path (fused or
        blocked) follows :meth:`attention_path`.
        """
        b, t, _ = x.shape
        h, k, v = self.num_heads, self.key_size, self.value_size
        q0, q1 = (0, t) if query_rows is None else query_rows
        n = q1 - q0
        q = self.q_layer(x[:, q0:q1]).view(b, n, h, k).transpose(1, 2)  # (B, H, n, K)
        keys = self.k_layer(x).view(b, t, h, k).transpose(1, 2)  # (B, H, T, K)
        values = self.v_layer(x).view(b, t, h, v).transpose(1, 2)  # (B, H, T, V)
        q = q * (k**-0.5)  # scaled before the learned biases are added
        r_k = self.relative_keys(t, x.device, x.dtype)  # (H, 2T-1, K)
        q_r = q + self.r_r_bias
        q_w = q + self.r_w_bias
        dropout = self.attention_dropout_rate if self.training else 0.0
        path = self.attention_path(x.device)
        _log_path(path, self._implementation, x.device.type, self.attention_hook is not None)
        attend = self._attend_fused if path == "fused" else self._attend_blocked
        out = attend(q_w, q_r, keys, values, r_k, q0, dropout)  # (B, H, n, V)
        out = out.transpose(1, 2).reshape(b, n, h * v)  # (B, n, H*V)
        return self.embedding_layer(out)
