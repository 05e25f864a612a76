"""Pure-torch Enformer: config, layers, attention and the model."""

from .attention import MultiheadAttention, relative_positional_features, relative_shift
from .config import EnformerConfig, exponential_linspace_int
from .enformer import Enformer
from .layers import crop_to_target, gelu

__all__ = [
    "Enformer",
    "EnformerConfig",
    "MultiheadAttention",
    "crop_to_target",
    "exponential_linspace_int",
    "gelu",
    "relative_positional_features",
    "relative_shift",
]
