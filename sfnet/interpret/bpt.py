"""BPT diagnostics: demarcation curves, classification and line ratios.

The [N II]/Hα vs [O III]/Hβ diagram of Baldwin, Phillips & Terlevich (1981)
separates galaxies whose lines are excited by young stars from those ionised
by an active nucleus.  Two curves are standard for SDSS:

* Kauffmann et al. (2003, MNRAS 346, 1055), eq. 1, the empirical upper edge of
  the star-forming sequence:
  ``log([OIII]/Hβ) = 0.61 / (log([NII]/Hα) - 0.05) + 1.30``;
* Kewley et al. (2001, ApJ 556, 121), the theoretical maximum-starburst line:
  ``log([OIII]/Hβ) = 0.61 / (log([NII]/Hα) - 0.47) + 1.19``.

Galaxies below the first are star-forming, above the second AGN, and between
the two "composite" (Brinchmann et al. 2004 use the same division for the
MPA-JHU ``bptclass``).

With a predicted covariance of the four log fluxes
(``SparseFeatureNet.predict(X, return_cov=True)`` of a ``"bpt_lines"`` model),
`line_ratio_errors` propagates it to the two ratios and `bpt_probabilities`
turns it into the probability of each class, by sampling.

The line-flux and log-flux column names come from `sfnet.catalog.BPT_LINES`.
"""

import numpy as np

from .._utils import kauffmann03_curve, kewley01_curve
from ..catalog import BPT_LINES
from ._core import get_catalog, has_columns, plain, property_values

__all__ = ["kauffmann03", "kewley01", "bpt_class", "line_ratios", "BPT_CLASSES",
           "bpt_probabilities", "line_ratio_errors"]

#: The class names returned by `bpt_class`, in order of increasing hardness.
BPT_CLASSES = ("star-forming", "composite", "AGN")

_UNCLASSIFIED = "unclassified"

#: The flux columns and the ``"bpt_lines"`` target's log columns, in the order
#: [N II], Hα, [O III], Hβ (from `sfnet.catalog.BPT_LINES`).
LINE_FLUX_COLUMNS = tuple(line.flux for line in BPT_LINES.values())
_LOG_COLUMNS = tuple(line.log_column for line in BPT_LINES.values())
LINE_ERROR_COLUMNS = tuple(line.error for line in BPT_LINES.values())


def has_line_fluxes(source):
    """Whether the catalog of ``source`` has the four BPT line fluxes."""
    return has_columns(source, LINE_FLUX_COLUMNS)


def has_line_errors(source):
    """Whether the catalog of ``source`` has the errors of the four BPT line fluxes."""
    return has_columns(source, LINE_ERROR_COLUMNS)


def _curve(curve, log_nii_ha):
    y = curve(plain(log_nii_ha))
    return y if y.ndim else float(y)


def kauffmann03(log_nii_ha):
    """Kauffmann et al. (2003) upper edge of star-forming galaxies on the BPT diagram.

    ``log([OIII]/Hβ) = 0.61 / (log([NII]/Hα) - 0.05) + 1.30``

    Parameters
    ----------
    log_nii_ha : float or array-like
        log10([N II] λ6584 / Hα).

    Returns
    -------
    log_oiii_hb : float or ndarray
        The curve; NaN where ``log_nii_ha >= 0.05`` (beyond its asymptote, where the
        curve is undefined) or where the input is NaN.

    Examples
    --------
    >>> from sfnet.interpret import kauffmann03
    >>> round(kauffmann03(-0.56), 3)
    0.3
    >>> kauffmann03(0.1)
    nan
    """
    return _curve(kauffmann03_curve, log_nii_ha)


def kewley01(log_nii_ha):
    """Kewley et al. (2001) maximum-starburst line on the BPT diagram.

    ``log([OIII]/Hβ) = 0.61 / (log([NII]/Hα) - 0.47) + 1.19``

    Parameters
    ----------
    log_nii_ha : float or array-like
        log10([N II] λ6584 / Hα).

    Returns
    -------
    log_oiii_hb : float or ndarray
        The curve; NaN where ``log_nii_ha >= 0.47`` or where the input is NaN.

    Examples
    --------
    >>> from sfnet.interpret import kewley01
    >>> round(kewley01(-0.14), 3)
    0.19
    """
    return _curve(kewley01_curve, log_nii_ha)


def bpt_class(log_nii_ha, log_oiii_hb):
    """Classify galaxies on the BPT diagram.

    * ``"star-forming"``: below the Kauffmann et al. (2003) curve and
      ``log([NII]/Hα) < 0.05``;
    * ``"AGN"``: otherwise, above the Kewley et al. (2001) curve or
      ``log([NII]/Hα) >= 0.47``;
    * ``"composite"``: the rest, between the two curves.

    At very low [N II]/Hα (below about −1.28) the Kauffmann curve lies above
    the Kewley curve; points between them there are called star-forming (the
    star-forming test is applied first), as metal-poor H II regions are.

    Parameters
    ----------
    log_nii_ha, log_oiii_hb : float or array-like
        log10([N II] λ6584 / Hα) and log10([O III] λ5007 / Hβ); broadcast together.

    Returns
    -------
    classes : ndarray of str
        ``"star-forming"``, ``"composite"`` or ``"AGN"`` per galaxy;
        ``"unclassified"`` where either ratio is NaN (e.g. a missing line).

    Examples
    --------
    >>> from sfnet.interpret import bpt_class
    >>> bpt_class([-0.6, -0.2, 0.2, 0.6], [-0.5, 0.0, 0.8, -0.5]).tolist()
    ['star-forming', 'composite', 'AGN', 'AGN']
    """
    x, y = np.broadcast_arrays(np.asarray(plain(log_nii_ha), dtype=np.float64),
                               np.asarray(plain(log_oiii_hb), dtype=np.float64))
    k03 = np.asarray(kauffmann03(x))
    k01 = np.asarray(kewley01(x))
    valid = np.isfinite(x) & np.isfinite(y)
    with np.errstate(invalid="ignore"):
        sf = valid & (x < 0.05) & (y < k03)
        agn = valid & ~sf & ((x >= 0.47) | (y > k01))
    out = np.full(x.shape, "composite", dtype="<U12")
    out[sf] = "star-forming"
    out[agn] = "AGN"
    out[~valid] = _UNCLASSIFIED
    return out


def line_ratios(source, *, min_snr=None, order=_LOG_COLUMNS):
    """BPT line ratios from measured fluxes or (predicted) log fluxes.

    Parameters
    ----------
    source : GalaxySample, `~astropy.table.Table` or array-like of shape (N, 4)
        A sample or catalog with the MPA-JHU flux columns (``nii_6584_flux``,
        ``h_alpha_flux``, ``oiii_5007_flux``, ``h_beta_flux``; or, failing those,
        the ``log_N2, log_Ha, log_O3, log_Hb`` columns of the ``"bpt_lines"``
        target), or an array of log fluxes such as ``model.predict(X)`` of a
        model trained on ``"bpt_lines"``.
    min_snr : float, optional
        With fluxes from a catalog: also require flux / error above this for all
        four lines (the usual BPT cut is 3).  Rows failing it get NaN.
    order : sequence of 4 str
        Column order of an array ``source`` (default: the ``"bpt_lines"`` target
        order ``log_N2, log_Ha, log_O3, log_Hb``).

    Returns
    -------
    log_nii_ha, log_oiii_hb : ndarray
        float64, NaN where a flux is missing or non-positive.

    Examples
    --------
    >>> import numpy as np
    >>> from sfnet.interpret import line_ratios, bpt_class
    >>> pred = np.array([[1.2, 1.8, 0.9, 1.3]])   # log N2, Ha, O3, Hb
    >>> x, y = line_ratios(pred)
    >>> bpt_class(x, y).tolist()
    ['star-forming']
    """
    want = _LOG_COLUMNS
    if hasattr(source, "catalog") or hasattr(source, "colnames"):
        cat = get_catalog(source, "source")
        flux_cols = LINE_FLUX_COLUMNS
        if has_columns(cat, flux_cols):
            x = property_values(cat, "log_nii_ha", min_snr)
            y = property_values(cat, "log_oiii_hb", min_snr)
            if min_snr is not None:
                ok = np.isfinite(x) & np.isfinite(y)
                x = np.where(ok, x, np.nan)
                y = np.where(ok, y, np.nan)
            return x, y
        if has_columns(cat, want):
            logs = np.column_stack([plain(cat[c]) for c in want])
        else:
            missing = [c for c in flux_cols if c not in cat.colnames]
            raise ValueError(
                f"source catalog lacks the BPT line column(s) {missing} "
                f"(or the log columns {list(want)})")
    else:
        arr = np.asarray(plain(source), dtype=np.float64)
        if arr.ndim != 2 or arr.shape[1] != 4:
            raise ValueError(
                f"source must be a sample, a catalog or an (N, 4) array of log fluxes; "
                f"got shape {arr.shape}")
        order = tuple(order)
        if sorted(order) != sorted(want):
            raise ValueError(f"order must be a permutation of {list(want)}, got {list(order)}")
        logs = arr[:, [order.index(c) for c in want]]
    x = logs[:, 0] - logs[:, 1]
    y = logs[:, 2] - logs[:, 3]
    return np.where(np.isfinite(x), x, np.nan), np.where(np.isfinite(y), y, np.nan)


#: The two line ratios as contrasts of the ``"bpt_lines"`` outputs
#: (log_N2, log_Ha, log_O3, log_Hb): log([NII]/Hα) and log([OIII]/Hβ).
_RATIO_CONTRASTS = np.array([[1.0, -1.0, 0.0, 0.0], [0.0, 0.0, 1.0, -1.0]])


def _check_mean_cov(mean, cov):
    mean = np.asarray(plain(mean), dtype=np.float64)
    cov = np.asarray(cov, dtype=np.float64)
    if mean.ndim != 2 or mean.shape[1] != 4:
        raise ValueError(f"mean must be (N, 4) log fluxes (log_N2, log_Ha, log_O3, log_Hb), "
                         f"got shape {mean.shape}")
    if cov.shape != (len(mean), 4, 4):
        raise ValueError(f"cov must have shape ({len(mean)}, 4, 4), got {cov.shape}")
    return mean, cov


def line_ratio_errors(mean, cov):
    """The two BPT line ratios and their 1σ errors, propagated from the covariance.

    Parameters
    ----------
    mean : array-like, shape (N, 4)
        Log fluxes in the ``"bpt_lines"`` order (log_N2, log_Ha, log_O3, log_Hb).
    cov : array-like, shape (N, 4, 4)
        Their covariance (``predict(X, return_cov=True)``).

    Returns
    -------
    log_nii_ha, log_oiii_hb, std_nii_ha, std_oiii_hb : ndarray
        The ratios ``log_N2 - log_Ha`` and ``log_O3 - log_Hb`` and
        ``sqrt(c^T cov c)`` for their contrasts ``c``.

    Examples
    --------
    >>> import numpy as np
    >>> from sfnet.interpret import line_ratio_errors
    >>> cov = np.diag([0.01, 0.01, 0.04, 0.04])[None]
    >>> x, y, sx, sy = line_ratio_errors([[1.2, 1.8, 0.9, 1.3]], cov)
    >>> round(float(sx[0]), 4), round(float(sy[0]), 4)
    (0.1414, 0.2828)
    """
    mean, cov = _check_mean_cov(mean, cov)
    ratios = mean @ _RATIO_CONTRASTS.T
    var = np.einsum("ri,nij,rj->nr", _RATIO_CONTRASTS, cov, _RATIO_CONTRASTS)
    std = np.sqrt(np.clip(var, 0, None))
    return ratios[:, 0], ratios[:, 1], std[:, 0], std[:, 1]


def bpt_probabilities(mean, cov, *, n_samples=2000, seed=0, chunk=256):
    """P(star-forming), P(composite), P(AGN) of each galaxy, by Monte-Carlo sampling.

    Draws ``n_samples`` log-flux vectors from the Gaussian ``N(mean, cov)`` of
    each galaxy, classifies each draw with `bpt_class` (its two line ratios
    against the Kauffmann et al. 2003 and Kewley et al. 2001 curves) and
    returns the fraction of draws in each class.

    Parameters
    ----------
    mean : array-like, shape (N, 4)
        Log fluxes in the ``"bpt_lines"`` order (log_N2, log_Ha, log_O3, log_Hb).
    cov : array-like, shape (N, 4, 4)
        Their covariance (symmetric positive semi-definite), e.g. from
        ``SparseFeatureNet.predict(X, return_cov=True)``.
    n_samples : int
        Draws per galaxy; a probability ``p`` has a Monte-Carlo error of
        ``sqrt(p (1 - p) / n_samples)`` (at most 0.011 for 2000).
    seed : int
        Seed of the draws (the same seed gives the same probabilities).
    chunk : int
        Galaxies sampled at a time (memory ``chunk * n_samples * 4`` floats).

    Returns
    -------
    ndarray, shape (N, 3)
        Columns in the order of `BPT_CLASSES`; each row sums to 1 (rows with a
        non-finite mean or covariance are NaN).

    Examples
    --------
    >>> import numpy as np
    >>> from sfnet.interpret import bpt_probabilities
    >>> mean = np.array([[1.2, 1.8, 0.9, 1.3]])        # well inside star-forming
    >>> p = bpt_probabilities(mean, np.eye(4)[None] * 1e-4)
    >>> p.round(2).tolist()
    [[1.0, 0.0, 0.0]]
    """
    mean, cov = _check_mean_cov(mean, cov)
    if isinstance(n_samples, bool) or not isinstance(n_samples, (int, np.integer)) \
            or n_samples < 1:
        raise ValueError(f"n_samples must be a positive integer, got {n_samples!r}")
    if isinstance(chunk, bool) or not isinstance(chunk, (int, np.integer)) or chunk < 1:
        raise ValueError(f"chunk must be a positive integer, got {chunk!r}")
    rng = np.random.default_rng(seed)
    out = np.full((len(mean), 3), np.nan)
    ok = np.isfinite(mean).all(axis=1) & np.isfinite(cov).all(axis=(1, 2))
    # a matrix square root valid for semi-definite covariances too
    sym = 0.5 * (cov + cov.transpose(0, 2, 1))
    for start in range(0, len(mean), chunk):
        sl = slice(start, start + chunk)
        good = ok[sl]
        m, c = mean[sl][good], sym[sl][good]
        if not len(m):
            continue
        w, v = np.linalg.eigh(c)
        root = v * np.sqrt(np.clip(w, 0, None))[:, None, :]
        draws = m[:, None, :] + rng.standard_normal((len(m), n_samples, 4)) @ \
            root.transpose(0, 2, 1)
        ratios = draws @ _RATIO_CONTRASTS.T
        classes = bpt_class(ratios[..., 0], ratios[..., 1])
        probs = np.stack([(classes == name).mean(axis=1) for name in BPT_CLASSES], axis=1)
        rows = np.flatnonzero(good) + start
        out[rows] = probs
    return out
