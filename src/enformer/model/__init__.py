"""Pure-torch models: Enformer (config, layers, attention) and Borzoi / Flashzoi (:mod:`.borzoi`)."""

from .attention import MultiheadAttention, relative_positional_features, relative_shift
from .borzoi import Borzoi, BorzoiConfig
from .config import EnformerConfig, exponential_linspace_int
from .enformer import Enformer
from .geometry import OutputGeometry, output_geometry
from .layers import crop_to_target, gelu

__all__ = [
    "Borzoi",
    "BorzoiConfig",
    "Enformer",
    "EnformerConfig",
    "MultiheadAttention",
    "OutputGeometry",
    "crop_to_target",
    "exponential_linspace_int",
    "gelu",
    "output_geometry",
    "relative_positional_features",
    "relative_shift",
]
