"""Are the error bars right?  Coverage of predicted uncertainties.

``SparseFeatureNet.predict(X, return_std=True)`` returns a mean and a 1σ
standard deviation per galaxy and target.  If the uncertainties are
calibrated, the truth lies within ``z_p × std`` of the mean for a fraction
``p`` of galaxies, where ``z_p`` is the two-sided Gaussian quantile (1 for
68.27 %, 1.96 for 95 %).  `coverage` measures that fraction, `coverage_table`
does it for a range of nominal levels, `fit_std_scale` finds the factor that
calibrates raw standard deviations on held-out galaxies (used by `fit`); its
figure, `~sfnet.interpret.plot_calibration` (the coverage curve and the
histogram of ``(truth - mean) / std``), is in `sfnet.interpret.plots`.

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

__all__ = ["ONE_SIGMA", "coverage", "coverage_table", "fit_std_scale"]

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
