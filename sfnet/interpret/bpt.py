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

The line-flux and log-flux column names come from `sfnet.catalog.BPT_LINES`.
"""

import numpy as np

from .._utils import kauffmann03_curve, kewley01_curve
from ..catalog import BPT_LINES
from ._core import get_catalog, has_columns, plain, property_values

__all__ = ["kauffmann03", "kewley01", "bpt_class", "line_ratios", "BPT_CLASSES"]

#: The class names returned by `bpt_class`, in order of increasing hardness.
BPT_CLASSES = ("star-forming", "composite", "AGN")

_UNCLASSIFIED = "unclassified"

#: The flux columns and the ``"bpt_lines"`` target's log columns, in the order
#: [N II], Hα, [O III], Hβ (from `sfnet.catalog.BPT_LINES`).
_FLUX_COLUMNS = tuple(line.flux for line in BPT_LINES.values())
_LOG_COLUMNS = tuple(line.log_column for line in BPT_LINES.values())
_ERROR_COLUMNS = tuple(line.error for line in BPT_LINES.values())


def _has_line_fluxes(source):
    """Whether the catalog of ``source`` has the four BPT line fluxes."""
    return has_columns(source, _FLUX_COLUMNS)


def _has_line_errors(source):
    """Whether the catalog of ``source`` has the errors of the four BPT line fluxes."""
    return has_columns(source, _ERROR_COLUMNS)


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
        flux_cols = _FLUX_COLUMNS
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
