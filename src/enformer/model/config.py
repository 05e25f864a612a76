"""The one typed configuration of an Enformer model.

A checkpoint stores this as ``config.json`` beside its weights, so it rebuilds
itself. Two presets exist: ``"official"`` (the published model, Avsec et al.
2021) and ``"tiny"`` (a few hundred thousand parameters, for tests).
"""

from __future__ import annotations

import dataclasses
import json
from dataclasses import dataclass, field
from typing import Any

import numpy as np

__all__ = ["EnformerConfig", "exponential_linspace_int"]


def exponential_linspace_int(start: int, end: int, num: int, divisible_by: int = 1) -> list[int]:
    """Integers spaced exponentially from ``start`` to ``end``, rounded to ``divisible_by``.

    Rounding is numpy's round-half-to-even, as in DeepMind's code: for the official
    model this gives ``[768, 896, 1024, 1152, 1280, 1536]``.
    """

    def _round(x: float) -> int:
        return int(np.round(x / divisible_by) * divisible_by)

    base = np.exp(np.log(end / start) / (num - 1))
    return [_round(start * base**i) for i in range(num)]


@dataclass(frozen=True)
class EnformerConfig:
    """Hyper-parameters of an Enformer model.

    Every field has the meaning of DeepMind's ``Enformer`` constructor argument of
    the same idea; defaults are the published model.
    """

    # Width C of the transformer; the stem has C/2 channels, the embedding 2C.
    channels: int = 1536
    # Number of transformer blocks.
    num_transformer_layers: int = 11
    # Attention heads per block; the value size per head is channels // num_heads.
    num_heads: int = 8
    # Query/key size per head.
    key_size: int = 64
    # Width of the relative positional features (6 families x basis functions).
    num_relative_position_features: int | None = None
    # Halvings of the sequence (stem pool + one per conv-tower block): bin size = 2**num_pooling.
    num_pooling: int = 7
    # Width of the stem convolution.
    stem_kernel_size: int = 15
    # Width of the conv-tower convolutions.
    tower_kernel_size: int = 5
    # Conv-tower filters; ``None`` = exponential_linspace_int(C/2, C, num_pooling-1, 128).
    tower_filters: tuple[int, ...] | None = None
    # Bins kept after the central crop; ``None`` keeps every bin.
    target_length: int | None = 896
    # Input length the model was trained on (bp). Inputs of exactly twice this length
    # (393,216 bp, the TF-Hub interface) are centre-cropped to it before the stem.
    sequence_length: int = 196_608
    # Output heads: name -> number of tracks (softplus outputs).
    heads: dict[str, int] = field(default_factory=lambda: {"human": 5313, "mouse": 1643})
    # Dropout on the transformer's residual branches and inside its MLP.
    dropout_rate: float = 0.4
    # Dropout on the attention weights.
    attention_dropout_rate: float = 0.05
    # Dropout on the relative positional features.
    positional_dropout_rate: float = 0.01
    # Dropout in the final pointwise block.
    final_dropout_rate: float = 0.05
    # BatchNorm epsilon (Sonnet's default).
    batch_norm_eps: float = 1e-5
    # BatchNorm moving-average momentum (Sonnet decay 0.9 -> torch momentum 0.1).
    batch_norm_momentum: float = 0.1
    # LayerNorm epsilon.
    layer_norm_eps: float = 1e-5
    # Free-text note carried into every output the model touches (e.g. "mini model").
    description: str = ""

    def __post_init__(self) -> None:
        # Normalise mutable containers so the frozen dataclass stays hashable-ish and JSON-able.
        object.__setattr__(self, "heads", dict(self.heads))
        if self.tower_filters is not None:
            object.__setattr__(self, "tower_filters", tuple(int(f) for f in self.tower_filters))
        self._check_values()
        if self.channels % self.num_heads:
            raise ValueError(
                f"channels ({self.channels}) must be divisible by num_heads ({self.num_heads})"
            )
        if self.channels % 2:
            raise ValueError(f"channels must be even, got {self.channels}")
        if self.num_pooling < 1:
            raise ValueError(f"num_pooling must be >= 1, got {self.num_pooling}")
        if self.tower_filters is not None and len(self.tower_filters) != self.num_pooling - 1:
            raise ValueError(
                f"tower_filters has {len(self.tower_filters)} entries; "
                f"num_pooling={self.num_pooling} needs {self.num_pooling - 1}"
            )
        if self.relative_position_features % 6:
            raise ValueError(
                "num_relative_position_features must be divisible by 6 "
                "(3 feature families x symmetric/antisymmetric), "
                f"got {self.relative_position_features} (channels // num_heads by default); "
                "set num_relative_position_features explicitly"
            )
        filters = self.filters
        if any(f < 1 for f in filters) or (filters and filters[-1] != self.channels):
            raise ValueError(
                f"conv-tower filters {filters} do not work: each must be positive and the last "
                f"must equal channels={self.channels} (the default rounds to multiples of 128, "
                "which suits channels >= 256); set tower_filters explicitly"
            )

    def _check_values(self) -> None:
        """Each field on its own: types and ranges, with a message naming the field."""
        positive = {
            "channels": self.channels,
            "num_heads": self.num_heads,
            "key_size": self.key_size,
            "num_pooling": self.num_pooling,
            "stem_kernel_size": self.stem_kernel_size,
            "tower_kernel_size": self.tower_kernel_size,
            "sequence_length": self.sequence_length,
            "target_length": self.target_length,
            "num_relative_position_features": self.num_relative_position_features,
        }
        fields = {**positive, "num_transformer_layers": self.num_transformer_layers}
        for name, value in fields.items():
            if value is None and name in ("target_length", "num_relative_position_features"):
                continue
            least = 0 if name == "num_transformer_layers" else 1
            if isinstance(value, bool) or not isinstance(value, int | np.integer) or value < least:
                raise ValueError(
                    f"EnformerConfig.{name} must be an integer >= {least}, got {value!r}"
                )
        if not self.heads:
            raise ValueError("EnformerConfig.heads is empty; give e.g. {'human': 5313}")
        for head, tracks in self.heads.items():
            if not isinstance(head, str) or not head:
                raise ValueError(f"EnformerConfig.heads: head names must be strings, got {head!r}")
            if isinstance(tracks, bool) or not isinstance(tracks, int | np.integer) or tracks < 1:
                raise ValueError(
                    f"EnformerConfig.heads[{head!r}] must be a number of tracks >= 1, "
                    f"got {tracks!r}"
                )
        rates = ("dropout_rate", "attention_dropout_rate", "positional_dropout_rate")
        for name in (*rates, "final_dropout_rate"):
            value = getattr(self, name)
            if not isinstance(value, int | float) or not 0 <= value < 1:
                raise ValueError(f"EnformerConfig.{name} must lie in [0, 1), got {value!r}")
        for name in ("batch_norm_eps", "layer_norm_eps"):
            value = getattr(self, name)
            if not isinstance(value, int | float) or not value > 0:
                raise ValueError(f"EnformerConfig.{name} must be > 0, got {value!r}")
        if not isinstance(self.batch_norm_momentum, int | float) or not (
            0 <= self.batch_norm_momentum <= 1
        ):
            raise ValueError(
                f"EnformerConfig.batch_norm_momentum must lie in [0, 1], "
                f"got {self.batch_norm_momentum!r}"
            )
        if self.sequence_length % 2**self.num_pooling:
            raise ValueError(
                f"EnformerConfig.sequence_length ({self.sequence_length}) must be a multiple of "
                f"the bin size 2**num_pooling = {2**self.num_pooling}"
            )

    # ----------------------------------------------------------------- derived
    @property
    def value_size(self) -> int:
        """Value size per attention head (``channels // num_heads``)."""
        return self.channels // self.num_heads

    @property
    def relative_position_features(self) -> int:
        """Width of the relative positional features (default ``channels // num_heads``)."""
        if self.num_relative_position_features is None:
            return self.channels // self.num_heads
        return self.num_relative_position_features

    @property
    def filters(self) -> tuple[int, ...]:
        """Output channels of each conv-tower block."""
        if self.tower_filters is not None:
            return self.tower_filters
        return tuple(
            exponential_linspace_int(
                self.channels // 2, self.channels, self.num_pooling - 1, divisible_by=128
            )
        )

    @property
    def bin_size(self) -> int:
        """Base pairs per output bin (``2 ** num_pooling``, 128 for the published model)."""
        return 2**self.num_pooling

    @property
    def embedding_dim(self) -> int:
        """Width of the per-bin trunk embedding (2C)."""
        return 2 * self.channels

    @property
    def target_bp(self) -> int | None:
        """Base pairs covered by the cropped output, or ``None`` when nothing is cropped."""
        return None if self.target_length is None else self.target_length * self.bin_size

    def output_bins(self, length: int) -> int:
        """Number of output bins for an input of ``length`` bp (after the crop)."""
        if length == 2 * self.sequence_length:
            length = self.sequence_length
        bins = length // self.bin_size
        if self.target_length is None:
            return bins
        trim = (bins - self.target_length) // 2
        return bins - 2 * trim if trim > 0 else bins

    # --------------------------------------------------------------- presets
    @classmethod
    def preset(cls, name: str, **overrides: Any) -> EnformerConfig:
        """A named preset (``"official"`` or ``"tiny"``), with optional field overrides."""
        if name not in _PRESETS:
            raise ValueError(f"unknown preset {name!r}; choose one of {sorted(_PRESETS)}")
        return dataclasses.replace(_PRESETS[name], **overrides)

    @classmethod
    def official(cls, **overrides: Any) -> EnformerConfig:
        """The published model (251,221,292 parameters)."""
        return cls.preset("official", **overrides)

    @classmethod
    def tiny(cls, **overrides: Any) -> EnformerConfig:
        """A small model for tests: 2,048 bp in, 16 bins out, milliseconds on a CPU."""
        return cls.preset("tiny", **overrides)

    # ----------------------------------------------------------- (de)serialise
    def to_dict(self) -> dict[str, Any]:
        """JSON-ready dictionary of every field."""
        d = dataclasses.asdict(self)
        if d["tower_filters"] is not None:
            d["tower_filters"] = list(d["tower_filters"])
        return d

    def to_json(self) -> str:
        """JSON text of :meth:`to_dict`."""
        return json.dumps({"model_type": "enformer", **self.to_dict()}, indent=2, sort_keys=True)

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> EnformerConfig:
        """Rebuild from :meth:`to_dict` output; unknown keys are an error naming them."""
        d = {k: v for k, v in d.items() if k != "model_type"}
        names = {f.name for f in dataclasses.fields(cls)}
        unknown = sorted(set(d) - names)
        if unknown:
            raise ValueError(f"unknown EnformerConfig field(s): {', '.join(unknown)}")
        return cls(**d)


_PRESETS: dict[str, EnformerConfig] = {
    "official": EnformerConfig(),
    "tiny": EnformerConfig(
        channels=48,
        num_transformer_layers=2,
        num_heads=2,
        key_size=8,
        num_relative_position_features=12,
        num_pooling=4,
        tower_filters=(32, 40, 48),
        target_length=64,
        sequence_length=2048,
        heads={"human": 10, "mouse": 6},
    ),
}
