"""enformer: a faithful, fast PyTorch Enformer.

Predict genomic tracks from DNA, score variants, interpret and fine-tune, with
DeepMind's trained weights giving DeepMind's numbers.
"""

from .inference import Prediction, embed, predict
from .model import Enformer, EnformerConfig
from .version import __version__

__all__ = ["Enformer", "EnformerConfig", "Prediction", "__version__", "embed", "predict"]
