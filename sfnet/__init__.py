"""sfnet: interpretable Sparse Feature Networks for galaxy images.

A Sparse Feature Network (Wu 2025, ApJ 980, 183) is a convolutional network whose
pooled features pass through ReLU and a top-k constraint before one linear layer,
so every prediction is a bias plus at most k terms that can be studied as physics.
"""

try:
    from ._version import version as __version__
except ImportError:  # pragma: no cover - not installed
    __version__ = "0.1.dev0"

from .config import conf
from .datasets import GalaxySample
from .estimator import PAPER_RECIPE, SparseFeatureNet
from .ensemble import SparseFeatureEnsemble

__all__ = ["__version__", "conf", "GalaxySample", "SparseFeatureNet", "SparseFeatureEnsemble",
           "PAPER_RECIPE"]
