"""Interpreting Sparse Feature Networks: feature statistics, BPT diagnostics, figures, report.

A fitted SFNet predicts ``bias + sum_j w_j a_j`` from at most k active features
per galaxy.  This subpackage turns those features into astrophysics:

* `sfnet.interpret.stats` -- how often each feature fires (`feature_stats`,
  `dead_features`, `active_features`), per-galaxy `contributions`, correlations
  with physical properties (`feature_correlations`) and between features
  (`feature_correlation_matrix`, optionally L2-normalised per galaxy as in the
  paper) and `ablation`;
* `sfnet.interpret.bpt` -- the `kauffmann03` and `kewley01` demarcation curves,
  `bpt_class` and `line_ratios` (from measured fluxes or predicted log fluxes);
* `sfnet.interpret.latents` -- features against the mock's known latents:
  `latent_recovery` (the latent each feature tracks where it is active, and
  DCI-style disentanglement, completeness and informativeness) and
  `intervention_response` (how features and predictions respond when one
  latent is changed and everything else held fixed);
* `sfnet.interpret.universality` -- `match_features`, whether two fits (other
  seeds, other k) find the same features;
* `sfnet.interpret.maps` -- `localization_maps`, where in a galaxy a feature fires;
* `sfnet.interpret.stability` -- `activation_stability` and `feature_stability`
  of the explanations under rotations, flips and noise;
* `sfnet.interpret.calibration` -- `coverage` of the predicted error bars;
* `sfnet.interpret.plots` -- every figure (``plot_*``), each returning a Figure:
  a figure lives in ``plots``, never beside its analysis, and the analysis
  modules above never import matplotlib;
* `sfnet.interpret.report` -- `write_report`, a static HTML report rendered
  from the jinja2 templates in ``templates/``.

Private helpers: ``_core`` (input coercion and checks, `property_values` of a
sample, correlation coefficients), ``plots._plotting`` (figure style and
drawing helpers) and ``_report_sections`` (the report's sections).  Column names,
property labels and missing-value codes come from `sfnet.catalog`;
`PROPERTIES`, `Property` and `property_values` are re-exported here for
convenience.

Everything accepts precomputed activations (``model.activations(sample)``), so a
large sample is run through the network once.

Examples
--------
>>> import numpy as np
>>> from sfnet import interpret
>>> interpret.bpt_class([-0.5, 0.3], [-0.3, 0.9]).tolist()
['star-forming', 'AGN']
"""

from .bpt import *  # noqa: F401,F403
from .stats import *  # noqa: F401,F403
from .maps import *  # noqa: F401,F403
from .plots import *  # noqa: F401,F403
from .report import *  # noqa: F401,F403
from .stability import *  # noqa: F401,F403
from .calibration import *  # noqa: F401,F403
from .latents import *  # noqa: F401,F403
from .universality import *  # noqa: F401,F403
from . import bpt, stats, maps, plots, report, stability, calibration, latents, universality

__all__ = bpt.__all__ + stats.__all__ + maps.__all__ + plots.__all__ + report.__all__ \
    + stability.__all__ + calibration.__all__ + latents.__all__ + universality.__all__
