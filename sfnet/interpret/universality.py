"""Would another training run find the same features?  Matching features across fits.

Two SFNets trained with different seeds (or different k, or two members of an
ensemble) number their features arbitrarily.  `match_features` pairs the
features of two fits one to one by how similarly they fire on the same
galaxies -- the Pearson correlation of their activations, zeros included --
with the Hungarian algorithm (`scipy.optimize.linear_sum_assignment`), and
reports the fraction of the first fit's activation mass whose feature has a
partner above a threshold: a seed-reproducibility score in the spirit of the
feature-universality studies of sparse autoencoders.

Examples
--------
>>> import numpy as np
>>> from sfnet.interpret import match_features
>>> rng = np.random.default_rng(0)
>>> acts = rng.exponential(1.0, (500, 3)) * (rng.random((500, 3)) < 0.4)
>>> t = match_features(acts, acts[:, [2, 0, 1]])
>>> sorted(zip(t["feature_a"].tolist(), t["feature_b"].tolist()))
[(0, 1), (1, 2), (2, 0)]
>>> t.meta["matched_fraction"], bool(t["correlation"].min() > 0.999)
(1.0, True)
"""

import numpy as np

from .._validation import check_float
from ._core import as_activations, check_length

__all__ = ["match_features"]


def _activations_of(model, sample, name, batch_size):
    """Dense activations of a model on sample, or the array itself."""
    if hasattr(model, "activations"):
        if sample is None:
            raise ValueError(f"sample is needed to run {name} (or pass activations arrays)")
        return as_activations(model.activations(sample, batch_size=batch_size), name=name)
    return as_activations(model, name=name)


def _correlation(a, b):
    """Pearson correlation of every column of ``a`` with every column of ``b`` (0 if constant)."""
    a = a - a.mean(axis=0)
    b = b - b.mean(axis=0)
    na, nb = np.sqrt((a * a).sum(axis=0)), np.sqrt((b * b).sum(axis=0))
    with np.errstate(invalid="ignore", divide="ignore"):
        c = (a.T @ b) / np.outer(na, nb)
    return np.clip(np.nan_to_num(c, nan=0.0, posinf=0.0, neginf=0.0), -1.0, 1.0)


def match_features(model_a, model_b, sample=None, *, threshold=0.5, batch_size=None):
    """Pair the features of two fits by activation correlation (Hungarian matching).

    Parameters
    ----------
    model_a, model_b : SparseFeatureNet or array-like
        Two fitted models (anything with ``activations(X)``), or their
        activations on the same galaxies, shape ``(N, n_features)`` (the
        numbers of features may differ).
    sample : GalaxySample or array, optional
        The galaxies both models are run on (needed for models, ignored for
        arrays).  Use galaxies neither model was trained on.
    threshold : float
        A pair counts as matched when its correlation is at least this.
    batch_size : int, optional
        Inference batch size.

    Returns
    -------
    table : `~astropy.table.Table`
        One row per feature of ``model_a`` that fires on the sample, largest
        activation mass first: ``feature_a``, ``feature_b`` (its partner, -1
        when ``model_b`` has fewer features that fire and none is left),
        ``correlation`` (Pearson r of the two activations over all galaxies,
        zeros included; NaN without a partner), ``matched`` (``correlation >=
        threshold``) and ``mass_a`` (the feature's share of ``model_a``'s total
        activation, summed over galaxies).  ``meta`` holds
        ``matched_fraction`` (the summed ``mass_a`` of matched features: 1 when
        every feature that carries activation has a partner above the
        threshold), ``matched_fraction_b`` (the same share of ``model_b``'s
        activation mass, over the same pairs), ``n_matched``, ``n_features_a``
        and ``n_features_b`` (features that fire), ``unmatched_b`` (features of
        ``model_b`` without a partner), ``threshold`` and ``n_galaxies``.

    Notes
    -----
    Only features that fire on the sample take part.  The assignment
    maximises the summed (signed) correlation, each feature used at most once;
    activations are non-negative, so anti-correlated features are not the
    same feature.  Correlation measures *where* two features fire and how
    strongly, not what they mean: two matched features can still respond to
    different latents that are correlated in the sample (see
    `latent_recovery`).  A dense model (``k`` = number of features) has many
    weakly active features, so its score is dominated by how its largest
    features match.
    """
    from astropy.table import Table
    from scipy.optimize import linear_sum_assignment

    threshold = check_float(threshold, "threshold", minimum=-1.0, maximum=1.0)
    acts_a = _activations_of(model_a, sample, "model_a", batch_size)
    acts_b = _activations_of(model_b, sample, "model_b", batch_size)
    check_length(len(acts_a), len(acts_b), "model_b's activations", name="model_a's activations")
    if len(acts_a) < 3:
        raise ValueError(f"need at least 3 galaxies to correlate activations, got {len(acts_a)}")
    for name, acts in (("model_a", acts_a), ("model_b", acts_b)):
        if np.any(acts < 0):
            raise ValueError(f"{name}: activations must be non-negative (post-ReLU)")
    live_a = np.flatnonzero((acts_a != 0).any(axis=0))
    live_b = np.flatnonzero((acts_b != 0).any(axis=0))
    if live_a.size == 0 or live_b.size == 0:
        raise ValueError("no feature fires on the sample in "
                         + ("model_a" if live_a.size == 0 else "model_b"))
    a = acts_a[:, live_a].astype(np.float64)
    b = acts_b[:, live_b].astype(np.float64)
    corr = _correlation(a, b)
    rows, cols = linear_sum_assignment(corr, maximize=True)

    partner = np.full(live_a.size, -1, dtype=np.int64)
    r = np.full(live_a.size, np.nan)
    partner[rows] = live_b[cols]
    r[rows] = corr[rows, cols]
    mass_a = a.sum(axis=0) / a.sum()
    matched = np.isfinite(r) & (np.nan_to_num(r, nan=-np.inf) >= threshold)
    b_matched = np.zeros(live_b.size, dtype=bool)
    b_matched[cols[matched[rows]]] = True
    order = np.lexsort((live_a, -mass_a))

    table = Table()
    table["feature_a"] = live_a[order].astype(np.int64)
    table["feature_b"] = partner[order]
    table["correlation"] = r[order]
    table["matched"] = matched[order]
    table["mass_a"] = mass_a[order]
    table["correlation"].description = ("Pearson r of the two features' activations over the "
                                        "galaxies, zeros included")
    table["mass_a"].description = "share of model_a's total activation carried by the feature"
    used_b = np.zeros(live_b.size, dtype=bool)
    used_b[cols] = True
    table.meta.update({
        "matched_fraction": float(a[:, matched].sum() / a.sum()),
        "matched_fraction_b": float(b[:, b_matched].sum() / b.sum()),
        "n_matched": int(matched.sum()),
        "n_features_a": int(live_a.size), "n_features_b": int(live_b.size),
        "unmatched_b": [int(j) for j in live_b[~used_b]],
        "threshold": threshold, "n_galaxies": int(len(a)),
    })
    return table
