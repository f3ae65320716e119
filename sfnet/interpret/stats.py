"""Statistics of the sparse features of a fitted SFNet.

Everything here works on the post-top-k activations, a dense ``(N, n_features)``
array with at most k non-zeros per row (``model.activations(X)``), so a large
run is computed once and reused.  Because the head is linear, every prediction
decomposes exactly as ``bias + sum_j w_j a_j`` over the galaxy's active
features; `contributions` and `ablation` use that decomposition directly and
never run the network again.
"""

from typing import NamedTuple

import numpy as np

from .._utils import regression_metrics
from .._validation import check_choice
from ..catalog import DEFAULT_PROPERTIES, PROPERTIES, Property
from ._core import (as_activations, check_features, check_length, frequency_order,
                    get_catalog, has_columns, head_of, pearson, plain, property_columns,
                    property_values, spearman)

__all__ = ["feature_stats", "dead_features", "active_features", "contributions",
           "feature_correlations", "feature_correlation_matrix", "ablation",
           "AblationResult", "property_values", "PROPERTIES", "Property"]


def feature_stats(activations, *, n_features=None, include_dead=True):
    """How often, and how strongly, each feature fires.

    Parameters
    ----------
    activations : array-like, shape (N, n_features), or (indices, values)
        Post-top-k activations (``model.activations(X)``); the sparse pair of
        ``model.activations(X, sparse=True)`` also works when ``n_features`` is given.
    n_features : int, optional
        Number of features (needed only for the sparse pair).
    include_dead : bool, optional
        Keep rows for features that never fire (default True).

    Returns
    -------
    stats : `~astropy.table.Table`
        One row per feature, sorted by ``n_active`` (descending; ties by index):
        ``feature``, ``n_active`` (galaxies where it is non-zero),
        ``fraction_active``, ``mean_activation`` (mean over the galaxies where it
        is active; NaN for dead features) and ``max_activation``.  ``meta`` holds
        ``n_galaxies``, ``n_features``, ``n_active_features``, ``n_dead``,
        ``max_active_per_galaxy`` and ``mean_active_per_galaxy``.

    Examples
    --------
    >>> import numpy as np
    >>> from sfnet.interpret import feature_stats
    >>> acts = np.array([[0., 2., 0.], [0., 4., 1.], [0., 0., 3.], [0., 6., 0.]])
    >>> t = feature_stats(acts)
    >>> t["feature"].tolist(), t["n_active"].tolist(), t.meta["n_dead"]
    ([1, 2, 0], [3, 2, 0], 1)
    >>> float(t["mean_activation"][0])
    4.0
    """
    from astropy.table import Table

    acts = as_activations(activations, n_features)
    n_gal, n_feat = acts.shape
    order, n_active = frequency_order(acts)
    active = acts != 0
    total = acts.sum(axis=0, dtype=np.float64)
    with np.errstate(invalid="ignore", divide="ignore"):
        mean = np.where(n_active > 0, total / np.maximum(n_active, 1), np.nan)
    mx = acts.max(axis=0) if n_gal else np.zeros(n_feat)
    per_gal = active.sum(axis=1)
    if not include_dead:
        order = order[n_active[order] > 0]
    table = Table(
        [order.astype(np.int64), n_active[order].astype(np.int64),
         n_active[order] / max(n_gal, 1), mean[order], mx[order]],
        names=["feature", "n_active", "fraction_active", "mean_activation",
               "max_activation"])
    table["fraction_active"].description = "fraction of galaxies where the feature is non-zero"
    table["mean_activation"].description = "mean activation over the galaxies where it is active"
    table.meta.update(
        n_galaxies=int(n_gal), n_features=int(n_feat),
        n_active_features=int(np.count_nonzero(n_active)),
        n_dead=int(n_feat - np.count_nonzero(n_active)),
        max_active_per_galaxy=int(per_gal.max()) if n_gal else 0,
        mean_active_per_galaxy=float(per_gal.mean()) if n_gal else 0.0)
    return table


def dead_features(activations, *, n_features=None):
    """Indices of features that are zero for every galaxy.

    Examples
    --------
    >>> import numpy as np
    >>> from sfnet.interpret import dead_features
    >>> dead_features(np.array([[0., 1., 0.], [0., 2., 5.]])).tolist()
    [0]
    """
    acts = as_activations(activations, n_features)
    return np.flatnonzero(~np.any(acts != 0, axis=0)).astype(np.int64)


def active_features(activations, *, n_features=None, min_active=1):
    """Indices of features active in at least ``min_active`` galaxies, most frequent first.

    Examples
    --------
    >>> import numpy as np
    >>> from sfnet.interpret import active_features
    >>> active_features(np.array([[0., 1., 0.], [0., 2., 5.], [0., 3., 0.]])).tolist()
    [1, 2]
    """
    acts = as_activations(activations, n_features)
    order, n_active = frequency_order(acts)
    return order[n_active[order] >= max(int(min_active), 1)].astype(np.int64)


def contributions(model_or_weights, activations, *, bias=None, ids=None):
    """Decompose each prediction into its ≤k feature terms ``w_j a_j`` plus the bias.

    Parameters
    ----------
    model_or_weights : SparseFeatureNet, (weights, bias) or array
        A fitted model (its ``head_weights`` ``(T, n_features)``, ``head_bias`` and
        ``target_names`` are used), a ``(weights, bias)`` pair or a weights array.
    activations : array-like, shape (N, n_features), or (indices, values)
        Post-top-k activations of the same model.
    bias : array-like, optional
        Bias per target (overrides the model's; default 0 for a bare weights array).
    ids : array-like, optional
        Galaxy identifiers (e.g. ``sample.catalog[sample.id_column]``), stored
        under the column's own name (a catalog column's ``name``; else ``objID``);
        integers or strings.

    Returns
    -------
    table : `~astropy.table.Table`
        One row per galaxy, in input order, with ``n_active`` and, for its active
        features sorted by activation (descending; padded with feature ``-1`` and
        activation 0 up to the largest number active in any galaxy): ``feature``,
        ``activation`` and, per target ``t``, ``contribution_t`` (``w_tj a_j``),
        ``bias_t`` and ``prediction_t``.  By construction
        ``bias_t + contribution_t.sum(axis=1) == prediction_t``, which equals
        ``model.predict`` up to float32 round-off.  ``meta`` holds
        ``target_names`` and ``bias``.

    Examples
    --------
    >>> import numpy as np
    >>> from sfnet.interpret import contributions
    >>> w = np.array([[0.5, -1.0, 2.0]])
    >>> acts = np.array([[1.0, 0.0, 0.5], [0.0, 2.0, 0.0]])
    >>> t = contributions((w, [8.0]), acts)
    >>> t["feature"].tolist(), t["contribution_y"].tolist(), t["prediction_y"].tolist()
    ([[0, 2], [1, -1]], [[0.5, 1.0], [-2.0, 0.0]], [9.5, 6.0])
    """
    from astropy.table import Table

    w, b, names = head_of(model_or_weights, bias)
    acts = as_activations(activations, w.shape[1])
    n = acts.shape[0]
    nz = acts != 0
    n_active = nz.sum(axis=1)
    m = max(int(n_active.max()) if n else 0, 1)
    # order by activation, inactive last; take the first m
    key = np.where(nz, -acts, np.inf)
    top = np.argsort(key, axis=1, kind="stable")[:, :m]
    act = np.take_along_axis(acts, top, axis=1)
    keep = np.take_along_axis(nz, top, axis=1)
    feat = np.where(keep, top, -1).astype(np.int64)
    act = np.where(keep, act, 0.0)
    table = Table()
    if ids is not None:
        id_name = getattr(ids, "name", None)
        id_name = id_name if isinstance(id_name, str) and id_name else "objID"
        ids = np.asarray(getattr(ids, "value", ids))
        check_length(n, len(ids), "ids")
        table[id_name] = ids
    table["n_active"] = n_active.astype(np.int64)
    table["feature"] = feat
    table["activation"] = act
    for t, name in enumerate(names):
        contrib = np.where(keep, w[t, top] * act, 0.0)
        table[f"contribution_{name}"] = contrib
        table[f"bias_{name}"] = np.full(n, b[t])
        table[f"prediction_{name}"] = b[t] + contrib.sum(axis=1)
    table.meta["target_names"] = list(names)
    table.meta["bias"] = [float(v) for v in b]
    return table


def _property_columns(sample, columns):
    """Resolve the properties to correlate with; defaults are skipped if absent."""
    cat = get_catalog(sample)
    if columns is None:
        keep = [c for c in DEFAULT_PROPERTIES if has_columns(cat, PROPERTIES[c].columns)]
        return keep, [c for c in DEFAULT_PROPERTIES if c not in keep]
    if isinstance(columns, str):
        columns = [columns]
    columns = list(columns)
    for c in columns:
        if not isinstance(c, str):
            raise TypeError(f"columns must be property or column names, got {c!r}")
        missing = [x for x in property_columns(c) if x not in cat.colnames]
        if missing:
            raise ValueError(
                f"columns: property {c!r} needs catalog column(s) {missing}, which the "
                f"catalog lacks")
    return columns, []


def feature_correlations(sample, activations, features=None, columns=None, *,
                         model=None, min_snr=None, min_active=1):
    """Pearson and Spearman correlation of each feature's activation with galaxy properties.

    Parameters
    ----------
    sample : GalaxySample or `~astropy.table.Table`
        The galaxies (MPA-JHU catalog columns), row-aligned with ``activations``.
    activations : array-like, shape (N, n_features)
        Post-top-k activations.
    features : sequence of int, optional
        Features to report (default: all active ones, most frequent first).
    columns : sequence of str, optional
        Properties: keys of `PROPERTIES` (``"metallicity"``, ``"mass"``, ``"sfr"``,
        ``"ssfr"``, ``"log_nii_ha"``, ``"log_oiii_hb"``, ``"z"``) or catalog column
        names.  Default: all of those whose catalog columns exist (the others are
        listed in ``meta["skipped"]``); a requested column that is missing raises
        `ValueError`.
    model : SparseFeatureNet or weights array, optional
        Adds the head weight of each feature, ``weight_<target>``.
    min_snr : float, optional
        For the line ratios, only use lines detected above this S/N.
    min_active : int, optional
        With the default ``features``, the minimum number of active galaxies.

    Returns
    -------
    table : `~astropy.table.Table`
        One row per feature: ``feature``, ``n_active``, ``fraction_active``,
        ``weight_<target>`` (if ``model``), and per property ``p``:
        ``pearson_<p>`` and ``spearman_<p>``.  The correlation uses every galaxy
        where ``p`` is valid (MPA-JHU -9999 and non-positive fluxes excluded),
        inactive ones counting as activation 0; NaN when the activation is
        constant there.  ``meta["n_valid"]`` gives the number of galaxies per
        property, ``meta["columns"]`` the properties.
    """
    from astropy.table import Table

    cat = get_catalog(sample)
    acts = as_activations(activations, getattr(model, "n_features", None))
    check_length(acts.shape[0], len(cat), "the sample's catalog")
    order, n_active = frequency_order(acts)
    if features is None:
        features = order[n_active[order] >= max(int(min_active), 1)]
    features = check_features(features, acts.shape[1])
    columns, skipped = _property_columns(cat, columns)

    table = Table()
    table["feature"] = features
    table["n_active"] = n_active[features].astype(np.int64)
    table["fraction_active"] = n_active[features] / max(acts.shape[0], 1)
    if model is not None:
        w, _, names = head_of(model)
        if w.shape[1] != acts.shape[1]:
            raise ValueError(f"model has {w.shape[1]} features but activations have "
                             f"{acts.shape[1]}")
        for t, name in enumerate(names):
            table[f"weight_{name}"] = w[t, features]
    n_valid = {col: _add_correlations(table, acts, features, col,
                                      property_values(cat, col, min_snr=min_snr))
               for col in columns}
    table.meta.update(columns=list(columns), n_valid=n_valid, skipped=skipped,
                      n_galaxies=int(acts.shape[0]))
    return table


def _add_correlations(table, acts, features, col, values):
    """Add ``pearson_<col>`` and ``spearman_<col>`` over the valid rows; their number."""
    ok = np.isfinite(values)
    pr = np.full(len(features), np.nan)
    sr = np.full(len(features), np.nan)
    for i, f in enumerate(features):
        a = acts[ok, f]
        pr[i] = pearson(a, values[ok])
        sr[i] = spearman(a, values[ok])
    table[f"pearson_{col}"] = pr
    table[f"spearman_{col}"] = sr
    return int(ok.sum())


def feature_correlation_matrix(activations, features=None, *, method="pearson",
                               normalize=None, n_features=None):
    """Correlation matrix between the activations of features across galaxies.

    Parameters
    ----------
    activations : array-like, shape (N, n_features), or (indices, values)
        Post-top-k activations (zeros included: two features that never fire
        together are anti-correlated).
    features : sequence of int, optional
        Features (default: all active features, most frequent first).
    method : {"pearson", "spearman"}
        Correlation coefficient.
    normalize : {None, "l2"}, optional
        ``None`` (default): correlate the activations as they are.  ``"l2"``:
        first divide each galaxy's whole activation vector (all features, not
        only ``features``) by its Euclidean norm, so that every galaxy has unit
        length and only the *relative* strengths of its active features count --
        the choice of Wu (2025).  A galaxy with no active feature (an all-zero
        vector) has no direction; it stays all zero and still enters the
        correlation as a row of zeros.
    n_features : int, optional
        Number of features (needed only for the sparse pair).

    Returns
    -------
    matrix : ndarray, shape (M, M)
        Correlation coefficients; NaN rows/columns for constant features.
    features : ndarray of int
        The features, in matrix order.

    Examples
    --------
    >>> import numpy as np
    >>> from sfnet.interpret import feature_correlation_matrix
    >>> acts = np.array([[1., 0.], [2., 0.], [0., 3.], [0., 1.]])
    >>> m, f = feature_correlation_matrix(acts)
    >>> f.tolist(), bool(m[0, 1] < 0), float(m[0, 0])
    ([0, 1], True, 1.0)

    With ``normalize="l2"`` the rows become unit vectors before correlating:

    >>> acts = np.array([[3., 4.], [1., 0.], [0., 2.]])
    >>> m, _ = feature_correlation_matrix(acts, normalize="l2")
    >>> round(float(m[0, 1]), 3)   # the columns [0.6, 1, 0] and [0.8, 0, 1]
    -0.901
    """
    check_choice(method, "method", ("pearson", "spearman"))
    check_choice(normalize, "normalize", (None, "l2"))
    acts = as_activations(activations, n_features)
    if features is None:
        order, n_active = frequency_order(acts)
        features = order[n_active[order] > 0]
    features = check_features(features, acts.shape[1])
    sub = (_l2_normalized(acts) if normalize == "l2" else acts)[:, features]
    return _correlation_matrix(sub, method), features


def _l2_normalized(acts):
    """Each row divided by its Euclidean norm (float64); all-zero rows stay zero."""
    acts = np.asarray(acts, dtype=np.float64)
    norm = np.sqrt(np.sum(acts * acts, axis=1, keepdims=True))
    return acts / np.where(norm > 0, norm, 1.0)


def _correlation_matrix(sub, method):
    """Pearson or Spearman matrix of the columns of ``sub``; NaN for constant columns."""
    if method == "spearman" and sub.size:
        from scipy.stats import rankdata
        sub = rankdata(sub, axis=0)
    sub = sub - sub.mean(axis=0)
    norm = np.sqrt(np.sum(sub * sub, axis=0))
    const = norm == 0
    z = sub / np.where(const, 1.0, norm)
    mat = np.clip(z.T @ z, -1.0, 1.0)
    mat[const, :] = np.nan
    mat[:, const] = np.nan
    np.fill_diagonal(mat, np.where(const, np.nan, 1.0))
    return mat


class AblationResult(NamedTuple):
    """Result of `ablation`.

    Attributes
    ----------
    full_rmse : dict
        RMSE of the unablated predictions per target (plus ``"mean"`` over targets).
    top_n : `~astropy.table.Table`
        RMSE when only the N most frequent features are kept.
    per_feature : `~astropy.table.Table`
        RMSE and ΔRMSE when each active feature alone is zeroed.
    """

    full_rmse: dict
    top_n: object
    per_feature: object


def _target_values(model, X, y, n):
    """Ground truth (n, T) with NaN where unusable."""
    if y is None:
        target = getattr(model, "target_", None)
        cat = getattr(X, "catalog", None)
        if target is None or cat is None:
            raise ValueError("y is needed unless X is a GalaxySample and model a fitted "
                             "SparseFeatureNet (with target_)")
        y = target.truth(cat)
    elif hasattr(y, "colnames"):
        y = np.column_stack([plain(y[c]) for c in y.colnames])
    else:
        y = plain(y)
    y = np.asarray(y, dtype=np.float64)
    if y.ndim == 1:
        y = y[:, None]
    check_length(n, y.shape[0], "y")
    return y


def _rmse_per_target(pred, y):
    return np.array([regression_metrics(y[:, t], pred[:, t])["rmse"] for t in range(y.shape[1])])


def ablation(model, X, y=None, top_n=(1, 2, 5, 10, 20, 50, 100), *, activations=None):
    """Prediction error when features are removed from the head.

    Two experiments, both computed from the activations and the linear head
    (``bias + sum_j w_j a_j`` with ablated ``a_j`` set to 0) without running the
    network again.  The other selected features keep their values: this measures
    what each feature contributes to the fitted predictions, not what a
    retrained or re-selected network would do.

    * keep only the N most frequently active features (the others are zeroed);
    * zero one feature at a time (ΔRMSE = RMSE without it − full RMSE).

    Parameters
    ----------
    model : SparseFeatureNet or (weights, bias)
        A fitted model, or its head.
    X : GalaxySample or image array, optional
        The galaxies (not needed when ``activations`` and ``y`` are given).
    y : array-like, shape (N,) or (N, T), optional
        Ground truth; default: the model's target read from ``X.catalog``
        (rows failing the target's quality cuts are ignored).  NaN rows are ignored.
    top_n : sequence of int
        Numbers of most frequent features to keep.  Values above the number of
        active features are dropped; a final row keeps all active features and
        reproduces the full RMSE.
    activations : array-like, optional
        Precomputed ``model.activations(X)``.

    Returns
    -------
    AblationResult
        ``full_rmse`` (dict per target and ``"mean"``); ``top_n`` Table with
        ``n_kept``, ``rmse`` (mean over targets), ``rmse_<target>`` per target,
        ``n_galaxies_changed``; ``per_feature`` Table with ``feature``,
        ``n_active``, ``rmse``, ``delta_rmse`` and per target
        ``delta_rmse_<target>``, most frequent first.
    """
    w, b, names = head_of(model)
    if activations is None:
        if X is None:
            raise ValueError("X is needed when activations are not given")
        activations = model.activations(X)
    acts = as_activations(activations, w.shape[1])
    n = acts.shape[0]
    if X is not None:
        check_length(n, len(X), "X")
    y = _target_values(model, X, y, n)
    if y.shape[1] != w.shape[0]:
        raise ValueError(f"y has {y.shape[1]} target column(s) but the model predicts "
                         f"{w.shape[0]}")
    order, n_active = frequency_order(acts)
    alive = order[n_active[order] > 0]
    pred = acts @ w.T + b
    full = _rmse_per_target(pred, y)
    full_rmse = {name: float(v) for name, v in zip(names, full)}
    full_rmse["mean"] = float(np.mean(full))
    top = _keep_most_frequent(acts, w, pred, y, alive, top_n, names)
    per_feature = _zero_each(acts, w, pred, y, alive, n_active, full, names)
    top.meta["full_rmse"] = full_rmse
    per_feature.meta["full_rmse"] = full_rmse
    return AblationResult(full_rmse, top, per_feature)


def _keep_most_frequent(acts, w, pred, y, alive, top_n, names):
    """RMSE table when only the N most frequent features keep their terms."""
    from astropy.table import Table

    ns = sorted({int(v) for v in np.atleast_1d(top_n) if 0 <= int(v) < len(alive)})
    ns.append(len(alive))
    rows = []
    for m in ns:
        dropped = alive[m:]
        p = pred - acts[:, dropped] @ w[:, dropped].T
        r = _rmse_per_target(p, y)
        changed = int(np.count_nonzero(np.any(acts[:, dropped] != 0, axis=1)))
        rows.append((m, float(np.mean(r)), *r, changed))
    return Table(rows=rows if rows else None,
                 names=["n_kept", "rmse", *[f"rmse_{t}" for t in names],
                        "n_galaxies_changed"],
                 dtype=[np.int64, np.float64, *[np.float64] * len(names), np.int64])


def _zero_each(acts, w, pred, y, alive, n_active, full, names):
    """RMSE and ΔRMSE table when each active feature alone loses its term."""
    from astropy.table import Table

    full_mean = float(np.mean(full))
    per = []
    for f in alive:
        p = pred - np.outer(acts[:, f], w[:, f])
        r = _rmse_per_target(p, y)
        per.append((int(f), int(n_active[f]), float(np.mean(r)),
                    float(np.mean(r) - full_mean), *(r - full)))
    return Table(rows=per if per else None,
                 names=["feature", "n_active", "rmse", "delta_rmse",
                        *[f"delta_rmse_{t}" for t in names]],
                 dtype=[np.int64, np.int64, np.float64, np.float64,
                        *[np.float64] * len(names)])
