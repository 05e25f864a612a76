"""enformer: a faithful, fast PyTorch Enformer.

Predict genomic tracks from DNA, score variants, interpret and fine-tune, with
DeepMind's trained weights giving DeepMind's numbers.
"""

from importlib.metadata import PackageNotFoundError, version

from .inference import Prediction, predict
from .model import Enformer, EnformerConfig

try:
    __version__ = version("enformer")
except PackageNotFoundError:  # pragma: no cover - running from a source tree
    __version__ = "0.0.0+unknown"

__all__ = ["Enformer", "EnformerConfig", "Prediction", "__version__", "predict"]
