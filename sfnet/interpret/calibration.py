"""Are the error bars right?  Coverage of predicted uncertainties.

``SparseFeatureNet.predict(X, return_std=True)`` returns a mean and a 1σ
standard deviation per galaxy and target.  If the uncertainties are
calibrated, the truth lies within ``z_p × std`` of the mean for a fraction
``p`` of galaxies, where ``z_p`` is the two-sided Gaussian quantile (1 for
68.27 %, 1.96 for 95 %).  `coverage` measures that fraction, `coverage_table`
does it for a range of nominal levels, `fit_std_scale` finds the factor that
calibrates raw standard deviations on held-out galaxies (used by `fit`), and
`coverage_by` checks the coverage within bins of another quantity (stellar
mass, redshift, magnitude, S/N, the predicted σ itself) -- calibrated on
average is not calibrated everywhere.  Their figures,
`~sfnet.interpret.plot_calibration` (the coverage curve and the histogram of
``(truth - mean) / std``) and `~sfnet.interpret.plot_coverage_by`, are in
`sfnet.interpret.plots`.

Examples
--------
>>> import numpy as np
>>> from sfnet.interpret import coverage
>>> rng = np.random.default_rng(0)
>>> truth = rng.normal(0, 2, 20000)
>>> [round(float(c), 2) for c in coverage(truth, 0.0, 2.0)]
[0.68, 0.95]
"""

from statistics import NormalDist

import numpy as np

__all__ = ["ONE_SIGMA", "coverage", "coverage_table", "coverage_by", "fit_std_scale",
           "fit_correlation_weight", "wilson_interval"]

#: Probability that a Gaussian variable lies within 1σ of its mean (0.6827).
ONE_SIGMA = 2 * NormalDist().cdf(1.0) - 1


def _z(nominal):
    """Two-sided Gaussian quantile ``z`` with ``P(|Z| <= z) = nominal``."""
    p = np.atleast_1d(np.asarray(nominal, dtype=np.float64))
    if p.ndim != 1 or not np.all((p > 0) & (p < 1)):
        raise ValueError(f"nominal must be probabilities in (0, 1), got {nominal!r}")
    return p, np.array([NormalDist().inv_cdf(0.5 + q / 2) for q in p])


def _arrays(truth, mean, std):
    truth, mean, std = (np.asarray(a, dtype=np.float64) for a in (truth, mean, std))
    try:
        truth, mean, std = np.broadcast_arrays(truth, mean, std)
    except ValueError:
        raise ValueError(f"truth {truth.shape}, mean {mean.shape} and std {std.shape} "
                         "must have the same shape") from None
    if truth.ndim not in (1, 2) or len(truth) == 0:
        raise ValueError(f"truth must be (N,) or (N, n_targets) with N >= 1, got {truth.shape}")
    if np.any(std[np.isfinite(std)] < 0):
        raise ValueError("std must be non-negative")
    return truth, mean, std


def coverage(truth, mean, std, nominal=(ONE_SIGMA, 0.95)):
    """Fraction of galaxies whose truth lies within the interval of each nominal level.

    Parameters
    ----------
    truth, mean, std : array-like
        ``(N,)`` or ``(N, n_targets)`` (or broadcastable to it), in the same
        units.  Rows with a non-finite value are left out.
    nominal : float or sequence of float
        Nominal coverage probabilities; the interval of level ``p`` is
        ``mean ± z_p std`` (``z`` = 1 for `ONE_SIGMA`, 1.96 for 0.95).

    Returns
    -------
    ndarray
        ``(len(nominal),)`` for 1-D input, ``(len(nominal), n_targets)`` otherwise.
    """
    truth, mean, std = _arrays(truth, mean, std)
    _, z = _z(nominal)
    ok = np.isfinite(truth) & np.isfinite(mean) & np.isfinite(std)
    ratio = np.where(ok, np.abs(truth - mean) / np.where(std > 0, std, np.inf), np.nan)
    ratio = np.where(ok & (std == 0) & (truth == mean), 0.0, ratio)
    n = ok.sum(axis=0)
    inside = (ratio[None] <= z.reshape((-1,) + (1,) * truth.ndim)) & ok[None]
    with np.errstate(invalid="ignore", divide="ignore"):
        return inside.sum(axis=1) / n


def coverage_table(truth, mean, std, nominal=None, *, names=None):
    """Observed against nominal coverage, as an `~astropy.table.Table`.

    Parameters
    ----------
    truth, mean, std : array-like
        As in `coverage`.
    nominal : sequence of float, optional
        Levels (default 0.05, 0.10, ..., 0.95, `ONE_SIGMA`, 0.99, sorted).
    names : list of str, optional
        Target names for the columns (default ``target_0``...).

    Returns
    -------
    astropy.table.Table
        ``nominal``, ``z`` (interval half-width in σ) and one ``coverage_{name}``
        column per target.
    """
    from astropy.table import Table

    if nominal is None:
        nominal = np.sort(np.r_[np.arange(1, 20) / 20, ONE_SIGMA, 0.99])
    p, z = _z(nominal)
    cov = coverage(truth, mean, std, p)
    cov = cov[:, None] if cov.ndim == 1 else cov
    names = names or [f"target_{j}" for j in range(cov.shape[1])]
    if len(names) != cov.shape[1]:
        raise ValueError(f"names has {len(names)} entries for {cov.shape[1]} targets")
    table = Table({"nominal": p, "z": z})
    for j, name in enumerate(names):
        table[f"coverage_{name}"] = cov[:, j]
    return table


def fit_std_scale(residuals, std):
    """Per-target factor ``s`` such that ``s × std`` is a calibrated 1σ.

    With ``z = |residual| / std``, ``s68`` is the 68.27 % quantile of ``z``
    (it makes the 1σ interval cover 68.27 %) and ``s95`` the 95 % quantile
    divided by 1.96 (it makes the 1.96σ interval cover 95 %).  For Gaussian
    residuals they agree; with heavier tails ``s95 > s68``.  The factor is
    their geometric mean, which errs on both levels by about the same ratio.

    Parameters
    ----------
    residuals, std : array-like
        ``(N,)`` or ``(N, n_targets)``: held-out ``truth - mean`` and the raw
        standard deviations, in the same units.

    Returns
    -------
    ndarray
        ``(n_targets,)`` (``(1,)`` for 1-D input); 1 where it cannot be fitted
        (fewer than 2 finite values, or all residuals zero).
    """
    r = np.asarray(residuals, dtype=np.float64)
    s = np.asarray(std, dtype=np.float64)
    if r.shape != s.shape:
        raise ValueError(f"residuals {r.shape} and std {s.shape} must have the same shape")
    if r.ndim == 1:
        r, s = r[:, None], s[:, None]
    scale = np.ones(r.shape[1])
    for j in range(r.shape[1]):
        ok = np.isfinite(r[:, j]) & np.isfinite(s[:, j]) & (s[:, j] > 0)
        if ok.sum() < 2:
            continue
        z = np.abs(r[ok, j]) / s[ok, j]
        s68 = np.quantile(z, ONE_SIGMA)
        s95 = np.quantile(z, 0.95) / NormalDist().inv_cdf(0.975)
        if s68 > 0 and s95 > 0:
            scale[j] = np.sqrt(s68 * s95)
        elif np.mean(z ** 2) > 0:
            scale[j] = np.sqrt(np.mean(z ** 2))
    return scale


def wilson_interval(k, n, level=ONE_SIGMA):
    """Wilson score interval of a binomial proportion ``k / n``.

    Parameters
    ----------
    k, n : array-like of int
        Successes and trials (``n = 0`` gives NaN).
    level : float
        Two-sided confidence level (default 68.27 %, a "1σ" interval).

    Returns
    -------
    lower, upper : ndarray
    """
    k = np.asarray(k, dtype=np.float64)
    n = np.asarray(n, dtype=np.float64)
    (_,), (z,) = _z(level)
    with np.errstate(invalid="ignore", divide="ignore"):
        p = k / n
        denom = 1 + z * z / n
        centre = (p + z * z / (2 * n)) / denom
        half = z * np.sqrt(p * (1 - p) / n + z * z / (4 * n * n)) / denom
    return np.clip(centre - half, 0, 1), np.clip(centre + half, 0, 1)


def coverage_by(truth, mean, std, *, by, bins=5, level=0.95):
    """Coverage of the error bars within bins of another quantity.

    A calibration that is right on average can still be wrong for a
    subgroup (massive galaxies, high redshift, faint or low-S/N objects, the
    galaxies with the largest predicted σ).  This splits the galaxies by
    ``by`` and measures, per bin, the 68.27 % and 95 % coverage (as
    `coverage`), their binomial (Wilson score) intervals, and the factor the
    error bars of that bin would need.

    Parameters
    ----------
    truth, mean, std : array-like
        ``(N,)``, in the same units (one target; pass a column of a
        multi-target prediction).  Rows with a non-finite value (or a
        non-finite ``by``) are left out.
    by : array-like
        ``(N,)`` values to bin on.
    bins : int or array-like
        An int: that many bins holding about the same number of galaxies
        (quantiles of ``by``); an array: the bin edges (galaxies outside them
        are left out; the last bin includes its right edge).
    level : float
        Confidence level of the intervals (default 0.95).

    Returns
    -------
    astropy.table.Table
        One row per bin: ``bin_lo``, ``bin_hi``, ``bin_center`` (median of
        ``by`` in the bin), ``n``, ``coverage_68`` with ``coverage_68_lo``/
        ``coverage_68_hi``, ``coverage_95`` with ``coverage_95_lo``/
        ``coverage_95_hi`` (Wilson score intervals at ``level``), and
        ``std_scale``, the factor ``s`` such that ``|truth - mean| <= s std``
        holds for 68.27 % of the bin (the 68.27th percentile of
        ``|truth - mean| / std``; 1 for calibrated error bars).  The table's
        ``meta`` records the ``interval`` method and ``level``.

    Examples
    --------
    >>> import numpy as np
    >>> from sfnet.interpret import coverage_by
    >>> rng = np.random.default_rng(0)
    >>> mass = rng.uniform(9, 12, 6000)
    >>> std = np.where(mass > 11, 0.5, 1.0)      # underestimated x2 above 10^11
    >>> truth = rng.normal(0, 1.0, 6000)
    >>> t = coverage_by(truth, 0.0, std, by=mass, bins=[9, 10, 11, 12])
    >>> [round(float(c), 2) for c in t["coverage_68"]]
    [0.68, 0.69, 0.36]
    >>> [round(float(s), 1) for s in t["std_scale"]]
    [1.0, 1.0, 2.0]
    """
    from astropy.table import Table

    truth, mean, std = _arrays(truth, mean, std)
    if truth.ndim != 1:
        raise ValueError(f"truth must be one target (N,), got {truth.shape}")
    by = np.asarray(by, dtype=np.float64)
    if by.shape != truth.shape:
        raise ValueError(f"by must have shape {truth.shape}, got {by.shape}")
    ok = np.isfinite(truth) & np.isfinite(mean) & np.isfinite(std) & np.isfinite(by)
    if not ok.any():
        raise ValueError("no galaxy has finite truth, mean, std and by")
    if isinstance(bins, (int, np.integer)) and not isinstance(bins, bool):
        if bins < 1:
            raise ValueError(f"bins must be a positive integer or bin edges, got {bins}")
        edges = np.unique(np.quantile(by[ok], np.linspace(0, 1, int(bins) + 1)))
        if len(edges) == 1:
            edges = np.array([edges[0], edges[0]])
    else:
        edges = np.asarray(bins, dtype=np.float64)
        if edges.ndim != 1 or len(edges) < 2 or np.any(np.diff(edges) < 0) \
                or not np.all(np.isfinite(edges)):
            raise ValueError("bins must be a positive integer or increasing finite bin edges")
    which = np.searchsorted(edges, by, side="right") - 1
    which[by == edges[-1]] = len(edges) - 2  # the last bin includes its right edge
    rows = []
    for b in range(len(edges) - 1):
        sel = ok & (which == b)
        n = int(sel.sum())
        if n:
            cov68, cov95 = coverage(truth[sel], mean[sel], std[sel])
            z = np.abs(truth[sel] - mean[sel]) / np.where(std[sel] > 0, std[sel], np.inf)
            z = np.where((std[sel] == 0) & (truth[sel] == mean[sel]), 0.0, z)
            scale = float(np.quantile(z, ONE_SIGMA))
            centre = float(np.median(by[sel]))
        else:
            cov68 = cov95 = scale = centre = np.nan
        lo68, hi68 = wilson_interval(np.round(cov68 * n), n, level)
        lo95, hi95 = wilson_interval(np.round(cov95 * n), n, level)
        rows.append((edges[b], edges[b + 1], centre, n, cov68, lo68, hi68,
                     cov95, lo95, hi95, scale))
    names = ("bin_lo", "bin_hi", "bin_center", "n", "coverage_68", "coverage_68_lo",
             "coverage_68_hi", "coverage_95", "coverage_95_lo", "coverage_95_hi",
             "std_scale")
    table = Table(rows=rows, names=names,
                  dtype=[float, float, float, int] + [float] * 7)
    table.meta.update({"interval": "wilson", "level": float(level)})
    return table


def fit_correlation_weight(residuals, corr):
    """Calibrate predicted correlation matrices on held-out residuals.

    The calibrated correlation of galaxy ``i`` is ``(1 - w) corr[i] + w
    R_held``, where ``R_held`` is the correlation matrix of the held-out
    residuals (each divided by its calibrated standard deviation) and ``w`` in
    [0, 1] maximises their Gaussian likelihood.  A convex combination of
    correlation matrices is one, so the result stays positive-definite.
    ``w`` near 0: the per-galaxy correlations describe the residuals better
    than one matrix for all; near 1: they do not (e.g. a correlation head that
    is barely trained).

    Parameters
    ----------
    residuals : array, shape (N, T)
        Held-out ``truth - mean`` divided by the calibrated standard deviations.
    corr : array, shape (N, T, T)
        The predicted correlation matrices of the same galaxies.

    Returns
    -------
    weight : float
    held_out : ndarray, shape (T, T)
        ``R_held``.
    """
    from scipy.optimize import minimize_scalar

    e = np.asarray(residuals, dtype=np.float64)
    c = np.asarray(corr, dtype=np.float64)
    ok = np.all(np.isfinite(e), axis=1) & np.all(np.isfinite(c), axis=(1, 2))
    e, c = e[ok], c[ok]
    if e.ndim != 2 or c.shape != (len(e), e.shape[1], e.shape[1]):
        raise ValueError(f"residuals (N, T) and corr (N, T, T) expected, got {e.shape} and "
                         f"{c.shape}")
    if len(e) <= e.shape[1]:
        raise ValueError(f"{len(e)} galaxies with finite values: too few to calibrate "
                         f"{e.shape[1]}x{e.shape[1]} correlations")
    held = np.corrcoef(e.T)

    def nll(w):
        m = (1 - w) * c + w * held
        sign, logdet = np.linalg.slogdet(m)
        if np.any(sign <= 0):
            return np.inf
        quad = np.einsum("ni,ni->n", e, np.linalg.solve(m, e[:, :, None])[:, :, 0])
        return float(np.sum(logdet + quad))

    best = minimize_scalar(nll, bounds=(0.0, 1.0), method="bounded", options={"xatol": 1e-4})
    weight = float(best.x)
    # the bounded search never evaluates the ends themselves
    for end in (0.0, 1.0):
        if nll(end) <= nll(weight):
            weight = end
    return weight, held
