"""Do the features mean what they seem to?  Features against the mock's known latents.

sfnet's mock renders every galaxy from known latent properties (the ``mock_*``
catalog columns: colour gradient, inclination, bulge fraction, dust, ...), so
on the mock an interpretation such as "feature 81 tracks the colour gradient"
can be *tested*.  Two complementary tests live here:

* `latent_recovery` -- correlational.  For every feature that fires, the
  latent it tracks best (Spearman rank correlation and mutual information,
  computed on the galaxies where the feature is active), and DCI-style summary
  scores (disentanglement, completeness, informativeness; Eastwood & Williams
  2018) from regressors that predict each latent from the activations.  It
  works on any sample with ``mock_*`` columns (or any numeric columns named in
  ``latents=``), and on precomputed activations.
* `intervention_response` -- causal.  The same galaxies rendered with one
  latent set to several values and everything else (noise included) held fixed
  (`sfnet.datasets.make_mock_interventions`, or your own counterfactual images
  of real galaxies); per feature, the change of its activation and of its
  contribution to the prediction per unit change of the latent, with bootstrap
  intervals over galaxies.

In the mock, as in the real Universe, many latents are correlated in the
population (massive galaxies are redder, dustier, more bulge-dominated), so a
feature can correlate with a latent it does not respond to.  Only an
intervention breaks those correlations; see :ref:`interpreting-ground-truth`.

References
----------
Eastwood, C. & Williams, C. K. I. 2018, "A framework for the quantitative
evaluation of disentangled representations", ICLR (DCI).
Kraskov, A., Stögbauer, H. & Grassberger, P. 2004, Phys. Rev. E 69, 066138
(the k-nearest-neighbour mutual information estimator, as implemented by
`sklearn.feature_selection.mutual_info_regression`).
"""

import numpy as np

from .._validation import check_choice, check_float, check_int
from ._core import (as_activations, check_features, check_length, frequency_order,
                    get_catalog, head_of, spearman)

__all__ = ["latent_recovery", "intervention_response", "LATENT_PREFIX"]

#: Prefix of the catalog columns that hold the mock's true (latent) properties.
LATENT_PREFIX = "mock_"

#: A latent's features "carry" it when they hold at least this share of its importance.
_CARRIER_SHARE = 0.1


# --------------------------------------------------------------------------- latents

def _latent_name(column):
    return column[len(LATENT_PREFIX):] if column.startswith(LATENT_PREFIX) else column


def _numeric_column(catalog, column):
    """Float64 values of a 1-d numeric (or boolean) column, NaN where masked; None otherwise."""
    col = catalog[column]
    data = np.ma.asarray(getattr(col, "value", col))
    if data.ndim != 1 or not (np.issubdtype(data.dtype, np.number)
                              or np.issubdtype(data.dtype, np.bool_)):
        return None
    return np.ma.filled(data.astype(np.float64), np.nan)


def _latents(sample, latents):
    """``(names, columns, Z (N, L), binary (L,))`` of the latents to score."""
    catalog = get_catalog(sample)
    if latents is None:
        columns = [c for c in catalog.colnames if c.startswith(LATENT_PREFIX)]
        if not columns:
            raise ValueError(
                f"sample has no {LATENT_PREFIX}* columns (the true properties of sfnet's mock "
                f"galaxies); its columns are {list(catalog.colnames)[:12]}...; pass latents= "
                "to name the numeric catalog columns to use")
        explicit = False
    else:
        if isinstance(latents, str):
            latents = [latents]
        columns = []
        for name in latents:
            if not isinstance(name, str):
                raise TypeError(f"latents must be column names, got {name!r}")
            if name in catalog.colnames:
                columns.append(name)
            elif LATENT_PREFIX + name in catalog.colnames:
                columns.append(LATENT_PREFIX + name)
            else:
                raise ValueError(f"latents: the sample's catalog has no column {name!r} "
                                 f"(nor {LATENT_PREFIX + name!r})")
        if not columns:
            raise ValueError("latents must name at least one column")
        explicit = True
    kept, values = [], []
    for column in dict.fromkeys(columns):
        z = _numeric_column(catalog, column)
        if z is None:
            if explicit:
                raise ValueError(f"latents: column {column!r} is not numeric")
            continue
        if np.unique(z[np.isfinite(z)]).size < 2:  # constant: nothing to track
            continue
        kept.append(column)
        values.append(z)
    if not kept:
        raise ValueError(f"none of the latent columns {columns} varies over the sample")
    Z = np.column_stack(values)
    binary = np.array([np.unique(z[np.isfinite(z)]).size <= 2 for z in Z.T])
    return [_latent_name(c) for c in kept], kept, Z, binary


# --------------------------------------------------------------------------- scores

def _active_scores(acts, live, Z, binary, min_active, seed):
    """Spearman ρ and mutual information (nats) of each live feature with each latent,
    on the galaxies where the feature is active; NaN below ``min_active`` galaxies."""
    from sklearn.feature_selection import mutual_info_regression

    rho = np.full((len(live), Z.shape[1]), np.nan)
    mi = np.full_like(rho, np.nan)
    for r, j in enumerate(live):
        on = acts[:, j] > 0
        a = acts[on, j].astype(np.float64)
        z_on = Z[on]
        finite = np.isfinite(z_on)
        if a.size == 0 or a.max() == a.min():  # a constant activation carries no ranking
            continue
        for i in range(Z.shape[1]):
            ok = finite[:, i]
            if ok.sum() < min_active or np.unique(z_on[ok, i]).size < 2:
                continue
            rho[r, i] = spearman(a[ok], z_on[ok, i])
            mi[r, i] = max(0.0, float(mutual_info_regression(
                z_on[ok, i][:, None], a[ok], discrete_features=bool(binary[i]),
                n_neighbors=3, random_state=seed)[0]))
    return rho, mi


def _regressor(kind, seed):
    if kind == "gbm":
        from sklearn.ensemble import GradientBoostingRegressor

        return GradientBoostingRegressor(n_estimators=200, max_depth=3, learning_rate=0.1,
                                         subsample=0.8, n_iter_no_change=10,
                                         validation_fraction=0.2, random_state=seed)
    from sklearn.linear_model import LassoCV

    return LassoCV(cv=3, random_state=seed)


def _importance(acts, live, Z, regressor, test_fraction, seed):
    """Importance matrix R (live features x latents) and held-out R² per latent.

    Column ``i`` is the regressor's importances normalised to sum 1, times
    ``max(R²_i, 0)``: a latent the code cannot predict carries no importance.
    """
    from sklearn.metrics import r2_score

    X = acts[:, live].astype(np.float64)
    rng = np.random.default_rng(seed)
    order = rng.permutation(len(X))
    n_test = int(round(test_fraction * len(X)))
    test, train = order[:n_test], order[n_test:]
    R = np.zeros((len(live), Z.shape[1]))
    r2 = np.full(Z.shape[1], np.nan)
    for i, z in enumerate(Z.T):
        tr, te = train[np.isfinite(z[train])], test[np.isfinite(z[test])]
        if len(tr) < 10 or len(te) < 5 or np.std(z[tr]) == 0:
            continue
        y = (z - z[tr].mean()) / z[tr].std()
        xtr, xte = X[tr], X[te]
        if regressor == "lasso":  # standardised inputs, so |coef| compare across features
            mu, sd = xtr.mean(axis=0), xtr.std(axis=0)
            sd[sd == 0] = 1.0
            xtr, xte = (xtr - mu) / sd, (xte - mu) / sd
        model = _regressor(regressor, seed).fit(xtr, y[tr])
        imp = model.feature_importances_ if regressor == "gbm" else np.abs(model.coef_)
        r2[i] = r2_score(y[te], model.predict(xte))
        if imp.sum() > 0:  # normalised, then scaled by what the code predicts of the latent
            R[:, i] = imp / imp.sum() * max(r2[i], 0.0)
    return R, r2


def _one_minus_entropy(p, base):
    """``1 - H(p) / log(base)`` of each row of non-negative weights ``p`` (NaN for zero rows)."""
    p = np.asarray(p, dtype=np.float64)
    total = p.sum(axis=-1, keepdims=True)
    with np.errstate(invalid="ignore", divide="ignore"):
        q = np.where(total > 0, p / total, 0.0)
        h = -np.sum(np.where(q > 0, q * np.log(q), 0.0), axis=-1)
    out = 1.0 - h / np.log(base) if base > 1 else np.ones_like(h)
    return np.where(total[..., 0] > 0, out, np.nan)


def _dci_scores(R, r2):
    """Per-feature disentanglement, per-latent completeness and the summary scores."""
    n_feat, n_lat = R.shape
    d_feature = _one_minus_entropy(R, n_lat)
    c_latent = _one_minus_entropy(R.T, n_feat)
    total = R.sum()
    share = R.sum(axis=1) / total if total > 0 else np.full(n_feat, np.nan)
    used = np.isfinite(d_feature)
    summary = {
        "disentanglement": float(np.sum(share[used] * d_feature[used])) if used.any()
        else float("nan"),
        "completeness": float(np.nanmean(c_latent)) if np.isfinite(c_latent).any()
        else float("nan"),
        "informativeness": float(np.nanmean(np.maximum(r2, 0.0))) if np.isfinite(r2).any()
        else float("nan"),
    }
    return d_feature, c_latent, share, summary


def _best(scores, names, rank=0):
    """Name and value of the ``rank``-th largest |score| of each row ("" and NaN if none)."""
    mag = np.where(np.isfinite(scores), np.abs(scores), -1.0)
    order = np.argsort(-mag, axis=1, kind="stable")
    idx = order[:, rank] if scores.shape[1] > rank else np.zeros(len(scores), dtype=int)
    ok = (scores.shape[1] > rank) & (mag[np.arange(len(scores)), idx] >= 0)
    label = [names[i] if good else "" for i, good in zip(idx, ok)]
    value = np.where(ok, scores[np.arange(len(scores)), idx], np.nan)
    return label, value, idx


def _floats(a):
    """Nested lists of Python floats (None for NaN), for a Table's meta."""
    a = np.asarray(a, dtype=np.float64)
    if a.ndim == 0:
        return None if not np.isfinite(a) else float(a)
    return [_floats(x) for x in a]


def latent_recovery(model, sample, *, activations=None, latents=None, regressor="gbm",
                    features=None, test_fraction=0.3, min_active=10, seed=0,
                    batch_size=None):
    """Which known latent each feature tracks, and DCI-style scores of the whole code.

    Parameters
    ----------
    model : SparseFeatureNet or None
        A fitted model (anything with ``activations(X)``); may be None when
        ``activations`` is given.
    sample : GalaxySample or `~astropy.table.Table`
        Galaxies whose catalog holds the latents: by default every numeric
        ``mock_*`` column (the true properties of sfnet's mock galaxies) that
        varies over the sample.  Score galaxies the model was not trained on.
    activations : array-like, shape (N, n_features), optional
        Precomputed post-top-k activations of ``sample`` (or any non-negative
        code, e.g. planted features in a test); then ``model`` is not run.
    latents : str or list of str, optional
        Catalog columns to score against, with or without the ``mock_`` prefix
        (e.g. ``["inclination", "bt"]``); any numeric column works, so on real
        data a measured property can stand in for a latent.
    regressor : {"gbm", "lasso"}
        The per-latent regressor that gives the importance matrix:
        scikit-learn's ``GradientBoostingRegressor`` (trees of depth 3, at most
        200, early stopping on 20 % of the training galaxies; importance =
        impurity-based ``feature_importances_``) or ``LassoCV`` on
        standardised activations (importance = ``|coef|``).
    test_fraction : float
        Fraction of the galaxies held out to measure informativeness.
    features : array-like of int, optional
        Score only these features (those of them that fire), e.g. the most
        used features of a dense model; the regressors then see only these
        features too, so the DCI scores describe that part of the code.
        Default: every feature that fires on ``sample``.
    min_active : int
        Correlations of a feature are computed only when it is active on at
        least this many galaxies with a finite latent value (NaN otherwise).
    seed : int
        Seed of the train/test split, the regressors and the mutual-information
        estimator.
    batch_size : int, optional
        Inference batch size when the model is run.

    Returns
    -------
    table : `~astropy.table.Table`
        One row per feature that fires on ``sample``, most frequent first:

        ``feature``, ``n_active``, ``fraction_active``
            the feature and how often it fires;
        ``latent``, ``spearman``, ``mutual_info``
            the latent with the largest absolute Spearman ρ between the activation and
            the latent **over the galaxies where the feature is active**, that ρ
            (signed) and their mutual information (nats, k-nearest-neighbour
            estimate of Kraskov et al. 2004 with k = 3);
        ``runner_up``, ``runner_up_spearman``
            the second-best latent by absolute ρ (how specific the first one is);
        ``latent_mi``, ``mutual_info_max``
            the latent with the largest mutual information on the same
            galaxies (catches non-monotone relations) and that information;
        ``latent_importance``, ``importance``, ``disentanglement``
            the latent whose regressor relies most on the feature, the
            feature's share of all importance, and its disentanglement score
            (below).

        ``meta`` holds the summary scores ``disentanglement``,
        ``completeness`` and ``informativeness``; ``latents`` (names, without
        the ``mock_`` prefix) and ``latent_columns``; ``per_latent``, a dict
        giving for every latent its ``completeness``, ``informativeness``,
        ``features`` that carry it (those holding at least 10 % of its
        importance, largest share first) with their ``shares``, and the
        ``best_feature`` by absolute ρ with that ``best_spearman``; the full
        matrices ``spearman``, ``mutual_info`` and ``importance`` (rows in the
        order of ``meta["features"]``, columns in the order of ``latents``;
        None where undefined); and the parameters.

    Notes
    -----
    **Why on the active galaxies.**  A top-k feature is zero on most galaxies;
    a correlation over all of them mostly measures *whether* it fires, and
    penalises a feature that tracks a latent perfectly on the galaxies it
    describes.  ``spearman`` and ``mutual_info`` therefore use only the
    galaxies where the feature is active; *whether* it fires enters the DCI
    scores, whose regressors see every galaxy (zeros included).

    **DCI** (Eastwood & Williams 2018).  For each latent ``i`` a regressor
    predicts the standardised latent from the activations of all features
    that fire, trained on ``1 - test_fraction`` of the galaxies; its
    importances, normalised to sum 1 and multiplied by ``max(R²_i, 0)`` (its
    R² on the held-out galaxies), form column ``i`` of the importance matrix
    ``R[j, i] >= 0``.  That factor is our one departure from Eastwood &
    Williams: gradient-boosting importances sum to 1 even for a latent the
    code cannot predict at all (the position angle, say), and without it
    that noise would weigh as much as a well-predicted latent.

    * disentanglement of feature ``j``: ``D_j = 1 - H(P[j, :]) / log L`` with
      ``P[j, i] = R[j, i] / sum_i R[j, i]`` over the ``L`` latents (1: the
      feature matters for one latent only; 0: for all alike); the summary
      ``disentanglement = sum_j w_j D_j`` weighs features by their share of
      the importance, ``w_j = sum_i R[j, i] / sum R`` (column
      ``importance``);
    * completeness of latent ``i``: ``C_i = 1 - H(Q[:, i]) / log F`` with
      ``Q[j, i] = R[j, i] / sum_j R[j, i]`` over the ``F`` features scored (1:
      one feature carries it); ``completeness`` is the mean over the latents
      the code predicts at all (``R²_i > 0``; the others carry no importance
      and have a NaN completeness);
    * ``informativeness``: the mean over latents of the held-out R², each
      clipped at 0 (1: the latents are fully readable from the code; 0: not
      at all; an overfitted regressor's negative R² on a latent the code does
      not hold counts as 0, the unclipped values are in ``per_latent``).

    ``H`` is the Shannon entropy; dividing by ``log L`` (``log F``) puts it
    on [0, 1].

    All of this is correlational: latents that are correlated in the
    population (on the mock: mass, disk colour, dust and the visible
    metallicity term) share credit, whatever the network actually responds
    to.  Use `intervention_response` to test a causal claim.

    Examples
    --------
    >>> import numpy as np
    >>> from astropy.table import Table
    >>> from sfnet.interpret import latent_recovery
    >>> rng = np.random.default_rng(0)
    >>> cat = Table({"mock_size": rng.uniform(1, 5, 300), "mock_tilt": rng.uniform(0, 90, 300)})
    >>> acts = np.zeros((300, 4))
    >>> on = rng.random(300) < 0.5
    >>> acts[on, 2] = np.log(cat["mock_size"][on])      # feature 2 tracks the size
    >>> acts[~on, 0] = rng.random((~on).sum())           # feature 0 is noise
    >>> t = latent_recovery(None, cat, activations=acts, regressor="lasso")
    >>> row = t[t["feature"] == 2][0]
    >>> str(row["latent"]), round(float(row["spearman"]), 3)
    ('size', 1.0)
    >>> t.meta["per_latent"]["size"]["features"][0]    # the feature that carries it most
    2
    """
    from astropy.table import Table

    check_choice(regressor, "regressor", ("gbm", "lasso"))
    test_fraction = check_float(test_fraction, "test_fraction", minimum=0.0, maximum=0.9,
                                strict_min=True)
    min_active = check_int(min_active, "min_active", minimum=3)
    seed = check_int(seed, "seed", minimum=0)
    names, columns, Z, binary = _latents(sample, latents)
    if activations is None:
        if model is None or not hasattr(model, "activations"):
            raise TypeError("model must be a fitted SparseFeatureNet (or pass activations=), "
                            f"got {type(model).__name__}")
        activations = model.activations(sample, batch_size=batch_size)
    acts = as_activations(activations)
    check_length(len(acts), len(Z), "sample")
    if np.any(acts < 0):
        raise ValueError("activations must be non-negative (post-ReLU, post-top-k)")
    order, n_active = frequency_order(acts)
    live = order[n_active[order] > 0]
    if features is not None:
        live = live[np.isin(live, check_features(features, acts.shape[1]))]
    if live.size == 0:
        raise ValueError("no feature fires on sample: nothing to score" if features is None
                         else f"none of features {features!r} fires on sample")

    rho, mi = _active_scores(acts, live, Z, binary, min_active, seed)
    R, r2 = _importance(acts, live, Z, regressor, test_fraction, seed)
    d_feature, c_latent, share, summary = _dci_scores(R, r2)

    latent, best_rho, best_i = _best(rho, names)
    runner, runner_rho, _ = _best(rho, names, rank=1)
    latent_mi, mi_max, _ = _best(mi, names)
    best_mi = np.where(np.isfinite(best_rho), mi[np.arange(len(live)), best_i], np.nan)
    imp_latent = [names[i] if R[r].sum() > 0 else "" for r, i in enumerate(R.argmax(axis=1))]

    table = Table()
    table["feature"] = live.astype(np.int64)
    table["n_active"] = n_active[live].astype(np.int64)
    table["fraction_active"] = n_active[live] / len(acts)
    table["latent"] = np.array(latent, dtype=str)
    table["spearman"] = best_rho
    table["mutual_info"] = best_mi
    table["runner_up"] = np.array(runner, dtype=str)
    table["runner_up_spearman"] = runner_rho
    table["latent_mi"] = np.array(latent_mi, dtype=str)
    table["mutual_info_max"] = mi_max
    table["latent_importance"] = np.array(imp_latent, dtype=str)
    table["importance"] = share
    table["disentanglement"] = d_feature
    for col, text in [
        ("spearman", "Spearman rho with `latent` on the galaxies where the feature is active"),
        ("mutual_info", "mutual information with `latent` (nats) where the feature is active"),
        ("mutual_info_max", "largest mutual information with any latent (nats), where active"),
        ("importance", "feature's share of the total DCI importance"),
        ("disentanglement", "1 - normalised entropy of the feature's importance over latents"),
    ]:
        table[col].description = text

    per_latent = {}
    for i, name in enumerate(names):
        col = R[:, i]
        shares = col / col.sum() if col.sum() > 0 else np.zeros_like(col)
        top = np.argsort(-shares, kind="stable")
        top = top[shares[top] >= _CARRIER_SHARE]
        mag = np.where(np.isfinite(rho[:, i]), np.abs(rho[:, i]), -1.0)
        b = int(np.argmax(mag))
        per_latent[name] = {
            "column": columns[i],
            "completeness": _floats(c_latent[i]),
            "informativeness": _floats(r2[i]),
            "features": [int(live[t]) for t in top],
            "shares": [float(shares[t]) for t in top],
            "best_feature": int(live[b]) if mag[b] >= 0 else None,
            "best_spearman": _floats(rho[b, i]) if mag[b] >= 0 else None,
        }
    table.meta.update(summary)
    table.meta.update({
        "latents": names, "latent_columns": columns, "per_latent": per_latent,
        "features": [int(j) for j in live],
        "spearman": _floats(rho), "mutual_info": _floats(mi), "importance": _floats(R),
        "n_galaxies": len(acts), "regressor": regressor, "test_fraction": test_fraction,
        "importance_weighting": "normalised importances x max(held-out R2, 0) per latent",
        "min_active": min_active, "seed": seed,
        "reference": "DCI: Eastwood & Williams 2018, ICLR; MI: Kraskov et al. 2004",
    })
    return table


# --------------------------------------------------------------------------- interventions

def _default_values(latent, seed, n_reference=1000):
    """Quantiles 10, 30, 50, 70, 90 % of ``latent`` in a reference mock (unique, sorted)."""
    from .. import datasets

    ref = datasets.make_mock_galaxies(n_reference, image_size=16, seed=seed, progress=False)
    column = LATENT_PREFIX + latent
    if column not in ref.catalog.colnames:
        raise ValueError(f"values: the reference mock has no column {column!r}; "
                         "pass values= explicitly")
    z = _numeric_column(ref.catalog, column)
    z = z[np.isfinite(z)]
    distinct = np.unique(z)
    if distinct.size <= 2:  # an on/off latent (neighbour, star)
        values = distinct
    else:
        values = np.unique(np.quantile(z, [0.1, 0.3, 0.5, 0.7, 0.9]))
    if values.size < 2:
        raise ValueError(f"values: {latent!r} does not vary in the reference mock; "
                         "pass values= explicitly")
    return values


def _image_size(model):
    shape = getattr(model, "input_shape_", None)
    if shape is None:
        raise TypeError("model must be a fitted SparseFeatureNet (it has no input_shape_); "
                        "pass samples= with your own counterfactual images")
    if len(shape) < 2 or shape[0] != shape[1]:
        raise ValueError(f"the model takes {shape} images; mock interventions are square")
    return int(shape[0])


def _mock_samples(model, latent, values, n, seed):
    from .. import datasets

    if not hasattr(datasets, "make_mock_interventions"):
        raise ValueError("samples: this sfnet cannot render mock interventions "
                         "(no sfnet.datasets.make_mock_interventions); pass samples=")
    known = tuple(getattr(datasets, "MOCK_LATENTS", ()))
    if latent not in known:
        raise ValueError(f"latent must be one of sfnet.datasets.MOCK_LATENTS {known}, "
                         f"got {latent!r}")
    image_size = _image_size(model)
    if values is None:
        values = _default_values(latent, seed)
    values = _check_values(values)
    samples = list(datasets.make_mock_interventions(n, latent, values, seed=seed,
                                                    image_size=image_size))
    if len(samples) != len(values):
        raise RuntimeError(f"make_mock_interventions returned {len(samples)} samples for "
                           f"{len(values)} values")
    return samples, values


def _check_values(values):
    try:
        values = np.asarray(values, dtype=np.float64)
    except (TypeError, ValueError):
        raise TypeError(f"values must be numbers, got {values!r}") from None
    if values.ndim != 1 or values.size < 2 or not np.all(np.isfinite(values)):
        raise ValueError(f"values must be at least 2 finite numbers, got {values!r}")
    if np.ptp(values) == 0:
        raise ValueError(f"values must not all be equal, got {values!r}")
    return values


def _values_from_samples(samples, latent):
    column = LATENT_PREFIX + latent
    values = []
    for s in samples:
        catalog = getattr(s, "catalog", None)
        if catalog is None or column not in catalog.colnames:
            raise ValueError(f"values: give the latent value of each sample (sample catalogs "
                             f"have no {column!r} column to read it from)")
        z = np.unique(_numeric_column(catalog, column))
        if z.size != 1:
            raise ValueError(f"values: {column!r} is not constant within a sample; give values=")
        values.append(z[0])
    return values


def _slopes(values, stack):
    """Per-galaxy least-squares slope over the values: ``(K, N, M) -> (N, M)``."""
    dv = values - values.mean()
    return np.tensordot(dv, stack - stack.mean(axis=0), axes=(0, 0)) / np.sum(dv * dv)


def _interval(boot, confidence):
    lo, hi = np.quantile(boot, [(1 - confidence) / 2, (1 + confidence) / 2], axis=0)
    return lo, hi


def intervention_response(model, latent, values=None, *, n=200, seed=0, samples=None,
                          n_boot=1000, confidence=0.95, batch_size=None):
    """How each feature and the prediction respond when one latent is changed.

    The same galaxies are seen at several values of one latent, everything
    else (the other latents, the noise) held fixed: a do-operation on the
    images.  For every feature the per-galaxy least-squares slope of its
    activation against the value is averaged over galaxies (this equals the
    slope of the mean activation against the value); the intervals come from
    a bootstrap over galaxies.

    Parameters
    ----------
    model : SparseFeatureNet
        A fitted model (anything with ``activations(X)`` and ``predict(X)``;
        ``head_weights`` adds the contribution columns).
    latent : str
        The latent to intervene on, a name of `sfnet.datasets.MOCK_LATENTS`
        (e.g. ``"inclination"``; a ``mock_`` prefix is accepted).  With
        ``samples`` any label works.
    values : array-like, optional
        Values of the latent (at least 2, in the units of its ``mock_*``
        column).  Default: the 10, 30, 50, 70 and 90 % quantiles of the latent
        in a reference mock of 1000 galaxies (``seed``), or both values of an
        on/off latent; with ``samples``: read from each sample's
        ``mock_<latent>`` column.
    n : int
        Number of mock galaxies rendered per value (ignored with ``samples``).
    seed : int
        Seed of the mock galaxies and of the bootstrap.
    samples : list of GalaxySample or image arrays, optional
        Your own counterfactual images instead of the mock: one sample per
        value, the same galaxies in the same order in each (e.g. real
        galaxies with a synthetic bar painted in at several strengths).
        Otherwise they are rendered by `sfnet.datasets.make_mock_interventions`
        at the model's input size.
    n_boot : int
        Bootstrap resamples of the galaxies.
    confidence : float
        Probability content of the intervals (percentile bootstrap).
    batch_size : int, optional
        Inference batch size.

    Returns
    -------
    table : `~astropy.table.Table`
        One row per feature that fires at any value, most often active first:
        ``feature``; ``fraction_active`` (over all galaxies and values);
        ``mean_activation`` (one entry per value: the mean activation over
        galaxies, zeros included); ``activation_slope`` with
        ``activation_slope_lo`` / ``_hi`` (change of the activation per unit
        of the latent); ``on_fraction_slope`` with ``_lo`` / ``_hi`` (change of
        the fraction of galaxies where the feature is active, per unit); and,
        when the model has a linear head, ``contribution_slope`` with ``_lo`` /
        ``_hi`` (``w_j x`` the activation slope: the change of the prediction
        carried by this feature, in the target's units per unit of the latent;
        for several targets one set of columns per target,
        ``contribution_slope_<target>``).  ``meta`` holds ``latent``,
        ``values``, ``n_galaxies``, ``n_boot``, ``confidence``, ``seed`` and
        ``prediction_slope``: per target, the slope of the mean prediction
        with its interval (``slope``, ``lo``, ``hi``) and the mean prediction
        at each value (``mean``).

    Notes
    -----
    An intervention answers "what does the network do if only this changes?";
    it does not say whether the latent matters for the target in real
    galaxies.  The mock renderer re-derives what the image shows from the
    latent (setting the inclination also changes the disk's axis ratio and
    dust reddening) but no measured catalog column (photometry, lines, the
    target), so the response is to the images alone.  The slope
    is the average linear trend over the values; a feature that switches on
    in the middle of the range has a slope with an interval that excludes 0
    but a non-linear ``mean_activation``.

    Examples
    --------
    >>> import numpy as np
    >>> from sfnet.interpret import intervention_response
    >>> class Brightness:                       # one feature: the mean pixel value
    ...     n_features = 1
    ...     head_weights, head_bias = np.array([[2.0]]), np.array([0.0])
    ...     def activations(self, X, batch_size=None):
    ...         return np.asarray(X, float).mean(axis=(1, 2, 3))[:, None]
    ...     def predict(self, X, batch_size=None):
    ...         return 2.0 * self.activations(X)[:, 0]
    >>> base = np.random.default_rng(0).uniform(10, 20, (50, 8, 8, 3))
    >>> t = intervention_response(Brightness(), "brightness", [0, 1, 2],
    ...                           samples=[base + 3 * v for v in (0, 1, 2)])
    >>> round(float(t["activation_slope"][0]), 6), round(float(t["contribution_slope"][0]), 6)
    (3.0, 6.0)
    """
    from astropy.table import Table

    if not isinstance(latent, str):
        raise TypeError(f"latent must be a latent name, got {latent!r}")
    latent = _latent_name(latent)
    n = check_int(n, "n", minimum=2)
    seed = check_int(seed, "seed", minimum=0)
    n_boot = check_int(n_boot, "n_boot", minimum=10)
    confidence = check_float(confidence, "confidence", minimum=0.0, maximum=1.0,
                             strict_min=True)
    if not (hasattr(model, "activations") and hasattr(model, "predict")):
        raise TypeError("model must be a fitted SparseFeatureNet (with activations and "
                        f"predict), got {type(model).__name__}")
    if samples is None:
        samples, values = _mock_samples(model, latent, values, n, seed)
    else:
        samples = list(samples)
        values = _check_values(_values_from_samples(samples, latent) if values is None
                               else values)
        if len(samples) != len(values):
            raise ValueError(f"samples has {len(samples)} entries but values has "
                             f"{len(values)}; give one sample per value")

    acts, preds = [], []
    for s in samples:
        a = as_activations(model.activations(s, batch_size=batch_size), name="activations")
        p = np.asarray(model.predict(s, batch_size=batch_size), dtype=np.float64)
        acts.append(a.astype(np.float64))
        preds.append(p.reshape(len(p), -1))
    n_gal = len(acts[0])
    if any(len(a) != n_gal for a in acts) or n_gal < 2:
        raise ValueError("samples must hold the same galaxies (at least 2) for every value, "
                         f"got {[len(a) for a in acts]} galaxies")
    A, P = np.stack(acts), np.stack(preds)  # (K, N, F), (K, N, T)
    fired = np.flatnonzero((A > 0).any(axis=(0, 1)))
    fired = fired[np.lexsort((fired, -(A[:, :, fired] > 0).sum(axis=(0, 1))))]
    A = A[:, :, fired]
    on = (A > 0).astype(np.float64)

    rng = np.random.default_rng(seed)
    weights = rng.multinomial(n_gal, np.full(n_gal, 1.0 / n_gal), size=n_boot) / n_gal
    s_act, s_on, s_pred = _slopes(values, A), _slopes(values, on), _slopes(values, P)
    b_act, b_on, b_pred = weights @ s_act, weights @ s_on, weights @ s_pred

    table = Table()
    table["feature"] = fired.astype(np.int64)
    table["fraction_active"] = on.mean(axis=(0, 1))
    table["mean_activation"] = A.mean(axis=1).T
    table["activation_slope"] = s_act.mean(axis=0)
    table["activation_slope_lo"], table["activation_slope_hi"] = _interval(b_act, confidence)
    table["on_fraction_slope"] = s_on.mean(axis=0)
    table["on_fraction_slope_lo"], table["on_fraction_slope_hi"] = _interval(b_on, confidence)
    targets = list(getattr(model, "target_names", None) or [])
    if len(targets) != P.shape[2]:
        targets = ["y"] if P.shape[2] == 1 else [f"y{t}" for t in range(P.shape[2])]
    if hasattr(model, "head_weights"):
        w, _, targets = head_of(model)
        if w.shape[0] != P.shape[2]:
            raise ValueError(f"model has {w.shape[0]} head targets but predict returns "
                             f"{P.shape[2]} columns")
        for t, name in enumerate(targets):
            col = "contribution_slope" if len(targets) == 1 else f"contribution_slope_{name}"
            wt = w[t, fired]
            table[col] = wt * table["activation_slope"]
            table[col + "_lo"], table[col + "_hi"] = _interval(b_act * wt, confidence)
            table[col].description = (f"change of the prediction of {name} carried by the "
                                      f"feature per unit of {latent}")
    table["activation_slope"].description = f"change of the activation per unit of {latent}"
    table["on_fraction_slope"].description = (f"change of the fraction of galaxies where the "
                                              f"feature is active per unit of {latent}")
    table["mean_activation"].description = "mean activation over galaxies at each value"
    lo, hi = _interval(b_pred, confidence)
    table.meta.update({
        "latent": latent, "values": [float(v) for v in values], "n_galaxies": n_gal,
        "n_boot": n_boot, "confidence": confidence, "seed": seed,
        "prediction_slope": {
            name: {"slope": float(s_pred[:, t].mean()), "lo": float(lo[t]), "hi": float(hi[t]),
                   "mean": [float(m) for m in P[:, :, t].mean(axis=1)]}
            for t, name in enumerate(targets)},
    })
    return table
