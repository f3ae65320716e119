"""Galaxy samples: the container, the embedded mock, the Zenodo-layout loader and SDSS retrieval."""

from .sample import *  # noqa: F401,F403
from .folder import *  # noqa: F401,F403
from .mock import *  # noqa: F401,F403
from .sdss import *  # noqa: F401,F403
from . import sample, folder, mock, sdss

__all__ = sample.__all__ + folder.__all__ + mock.__all__ + sdss.__all__
