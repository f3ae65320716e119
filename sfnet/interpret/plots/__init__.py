"""Every figure of `sfnet.interpret`: the public ``plot_*`` functions.

Where a figure lives: **in this subpackage, never beside its analysis.**  The
analysis modules (`~sfnet.interpret.stats`, `~sfnet.interpret.bpt`,
`~sfnet.interpret.calibration`, `~sfnet.interpret.maps`,
`~sfnet.interpret.stability`) return numbers and tables and never import
matplotlib; a figure imports the analysis it draws, never the reverse, and the
report imports both.  The figures are grouped by what they show:

* `sfnet.interpret.plots.features` -- one feature at a time: its top
  galaxies, its activation against a property, feature-feature and
  feature-property correlations, activation density, localisation maps;
* `sfnet.interpret.plots.bpt` -- the BPT diagram, optionally coloured by a
  feature;
* `sfnet.interpret.plots.performance` -- how well the model does:
  predictions against truth, the training history, ablation, the calibration
  of the error bars and the accuracy-sparsity curve of a k sweep.

All are re-exported here and in `sfnet.interpret`.

Every function returns a `matplotlib.figure.Figure`; those drawing a single
panel accept ``ax`` to draw into an existing figure.  Figures are built with
`matplotlib.figure.Figure` (not `pyplot`), so nothing accumulates in pyplot's
figure registry when hundreds are made for a report; in a notebook they display
as usual, and ``fig.savefig(...)`` writes them.  matplotlib and cmasher are
imported inside the functions, so ``import sfnet`` stays fast.

Colour maps are from cmasher (perceptually uniform, tested for colour-vision
deficiency): ``cmr.ember`` for activations, ``cmr.fusion_r`` (blue-white-orange)
for correlations and light greys / ``cmr.arctic_r`` for number densities.
Sizes suit a journal column (3.5 in) or page (7.2 in) at 9 pt.  The style and
the drawing helpers the figures share live in the private ``_plotting`` module
of this subpackage.
"""

from .bpt import *  # noqa: F401,F403
from .features import *  # noqa: F401,F403
from .performance import *  # noqa: F401,F403
from . import bpt, features, performance

__all__ = features.__all__ + bpt.__all__ + performance.__all__
