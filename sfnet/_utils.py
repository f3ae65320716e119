"""Private helpers shared across sfnet's layers (no imports from sfnet)."""

import numpy as np

__all__ = ["as_float64", "kauffmann03_curve", "kewley01_curve", "regression_metrics"]


def as_float64(col):
    """A column, Quantity, masked column or list as a float64 ndarray (masked -> NaN)."""
    data = getattr(col, "value", col)
    if np.ma.isMaskedArray(data):
        data = np.ma.filled(np.ma.asarray(data).astype(np.float64), np.nan)
    try:
        return np.asarray(data, dtype=np.float64)
    except (TypeError, ValueError) as exc:
        raise TypeError(f"column {getattr(col, 'name', '')!r} is not numeric") from exc


def _hyperbola(x, x0, a, b):
    x = np.asarray(x, dtype=np.float64)
    with np.errstate(divide="ignore", invalid="ignore"):
        return np.where(x < x0, a / (x - x0) + b, np.nan)


def kauffmann03_curve(x):
    """Kauffmann et al. (2003): ``0.61 / (x - 0.05) + 1.30`` for x < 0.05, NaN elsewhere."""
    return _hyperbola(x, 0.05, 0.61, 1.30)


def kewley01_curve(x):
    """Kewley et al. (2001): ``0.61 / (x - 0.47) + 1.19`` for x < 0.47, NaN elsewhere."""
    return _hyperbola(x, 0.47, 0.61, 1.19)


def regression_metrics(y_true, y_pred):
    """RMSE, NMAD, bias (mean of pred − true), R² and n over the finite pairs.

    NMAD is `astropy.stats.mad_std` of the residuals: the median absolute
    deviation scaled by 1/Φ⁻¹(3/4) ≈ 1.4826, the standard deviation for
    Gaussian residuals and robust against outliers.
    """
    from astropy.stats import mad_std

    t = np.asarray(y_true, dtype=np.float64).ravel()
    p = np.asarray(y_pred, dtype=np.float64).ravel()
    ok = np.isfinite(t) & np.isfinite(p)
    n = int(ok.sum())
    if n == 0:
        return {"rmse": np.nan, "nmad": np.nan, "bias": np.nan, "r2": np.nan, "n": 0}
    d = p[ok] - t[ok]
    rmse = float(np.sqrt(np.mean(d * d)))
    nmad = float(mad_std(d))
    var = float(np.sum((t[ok] - t[ok].mean()) ** 2))
    r2 = float(1.0 - np.sum(d * d) / var) if var > 0 else np.nan
    return {"rmse": rmse, "nmad": nmad, "bias": float(np.mean(d)), "r2": r2, "n": n}
