"""Reference predictors to judge an SFNet against: the mean and a photometric fit.

Wu & Boada (2019) compared their CNN (0.085 dex) with a random forest on SDSS
photometry (0.130 dex); sfnet's demo reports the analogous numbers on the mock:

- `mean_baseline_rmse`: predict the training mean (RMSE ~ the target's spread);
- `photometric_baseline`: least squares on integrated photometry -- g - r and
  r - i colours measured from the cutouts in a circular aperture, the
  Petrosian r magnitude and the log Petrosian R90 radius -- the information a
  catalog-level method has, without morphology.

Both work on real data (a `~sfnet.datasets.GalaxySample` of SDSS JPEGs) as well
as on the mock.
"""

import numpy as np

from ._utils import as_float64

from .targets import get_target

__all__ = ["photometric_features", "photometric_baseline", "mean_baseline_rmse",
           "PHOTOMETRIC_FEATURES"]

#: Names of the columns of `photometric_features`, in order.
PHOTOMETRIC_FEATURES = ("g_r", "r_i", "petroMag_r", "log_petroR90_r")

#: Field of view (arcsec) of the paper's cutouts (160 px x 0.262"), used for
#: the pixel scale when the catalog's meta does not give ``pixel_scale``.
_FIELD_OF_VIEW = 160 * 0.262
_BORDER = 3
_BATCH = 1024


_plain = as_float64


def _pixel_scale(sample, width):
    scale = sample.catalog.meta.get("pixel_scale") if hasattr(sample.catalog, "meta") else None
    if scale is None:
        return _FIELD_OF_VIEW / width
    return float(getattr(scale, "value", scale))


def _image_hw(sample):
    shape = getattr(sample, "image_shape", None)      # GalaxySample: (H, W, 3)
    if shape is None:
        shape = np.shape(sample.images)[1:]
    return shape[0], shape[1]


def _check_sample(sample, name):
    if not (hasattr(sample, "images") and hasattr(sample, "catalog")):
        raise TypeError(f"{name} must be a GalaxySample, got {type(sample).__name__}")
    if not hasattr(sample, "image_shape"):
        shape = np.shape(sample.images)
        if len(shape) != 4 or shape[-1] != 3:
            raise ValueError(f"{name}.images must have shape (N, H, W, 3), got {shape}")
        if shape[0] != len(sample.catalog):
            raise ValueError(f"{name} has {shape[0]} images but {len(sample.catalog)} "
                             "catalog rows")
    for col in ("petroMag_r", "petroR90_r"):
        if col not in sample.catalog.colnames:
            raise ValueError(f"{name}.catalog needs column {col!r} for the photometric baseline")


def _aperture_colours(images, radius_px):
    """Aperture g - r and r - i of RGB (i, r, g) composites, shape (B, 2)."""
    img = np.asarray(images, dtype=np.float32)
    b, h, w, _ = img.shape
    border = np.concatenate([img[:, :_BORDER].reshape(b, -1, 3),
                             img[:, -_BORDER:].reshape(b, -1, 3),
                             img[:, :, :_BORDER].reshape(b, -1, 3),
                             img[:, :, -_BORDER:].reshape(b, -1, 3)], axis=1)
    img -= np.median(border, axis=1)[:, None, None, :]
    yy = np.arange(h, dtype=np.float32)[:, None] - (h - 1) / 2.0
    xx = np.arange(w, dtype=np.float32)[None, :] - (w - 1) / 2.0
    inside = (yy * yy + xx * xx)[None] <= (radius_px * radius_px)[:, None, None]
    flux = np.einsum("bhwc,bhw->bc", img, inside.astype(np.float32))
    flux = np.maximum(flux, 1e-3)        # an empty aperture gives finite colours
    red, green, blue = flux[:, 0], flux[:, 1], flux[:, 2]
    return np.column_stack([-2.5 * np.log10(blue / green), -2.5 * np.log10(green / red)])


def _features(sample, rows):
    images = None if hasattr(sample, "read_images") else sample.images
    height, width = _image_hw(sample)
    scale = _pixel_scale(sample, width)
    mag = _plain(sample.catalog["petroMag_r"])[rows]
    r90 = _plain(sample.catalog["petroR90_r"])[rows]
    radius = np.clip(np.nan_to_num(r90, nan=0.0) / scale, 2.0, 0.45 * min(width, height))
    out = np.empty((len(rows), len(PHOTOMETRIC_FEATURES)))
    for start in range(0, len(rows), _BATCH):
        sl = slice(start, start + _BATCH)
        batch = (sample.read_images(rows[sl]) if hasattr(sample, "read_images")
                 else np.asarray(images[rows[sl]]))
        out[sl, :2] = _aperture_colours(batch, radius[sl])
    out[:, 2] = mag
    with np.errstate(divide="ignore", invalid="ignore"):
        out[:, 3] = np.log10(np.where(r90 > 0, r90, np.nan))
    return out


def photometric_features(sample):
    """Integrated photometry: aperture colours from the cutout, catalog magnitude and size.

    Parameters
    ----------
    sample : `~sfnet.datasets.GalaxySample`
        Images are SDSS-style ``(N, H, W, 3)`` composites with i, r, g in the
        red, green and blue channels; the catalog needs ``petroMag_r`` and
        ``petroR90_r`` (arcsec).

    Returns
    -------
    ndarray, shape (N, 4)
        Columns `PHOTOMETRIC_FEATURES`: ``g_r`` and ``r_i``, colours measured in
        a circular aperture of radius ``petroR90_r`` (at least 2 px, at most 45%
        of the cutout) around the cutout centre, after subtracting the median of
        a 3-pixel border, as ``-2.5 log10`` of channel-sum ratios (instrumental:
        equal to g - r and r - i up to constant offsets, since the Lupton
        composite preserves colour ratios); ``petroMag_r`` from the catalog; and
        ``log_petroR90_r``, log10 of the catalog's Petrosian R90 in arcsec (the
        size is taken from the catalog, not measured on the image).  The pixel
        scale comes from ``catalog.meta["pixel_scale"]`` (arcsec) or else is
        the paper's 41.92" field of view divided by the image width.

    Examples
    --------
    >>> from sfnet.datasets import make_mock_galaxies
    >>> from sfnet.baselines import photometric_features
    >>> sample = make_mock_galaxies(5, image_size=32, seed=0, progress=False)
    >>> photometric_features(sample).shape
    (5, 4)
    """
    _check_sample(sample, "sample")
    return _features(sample, np.arange(len(sample.catalog)))


def _target_rows(sample, target):
    y = target.truth(sample.catalog)
    rows = np.flatnonzero(np.all(np.isfinite(y), axis=1))
    return rows, y[rows]


def mean_baseline_rmse(train, valid, target="metallicity"):
    """RMSE on ``valid`` of always predicting the mean target of ``train``.

    Both samples are first restricted to the target's quality cuts.

    Returns
    -------
    float or ndarray
        A float for a single-column target, else one value per column.

    Examples
    --------
    >>> from sfnet.datasets import make_mock_galaxies
    >>> from sfnet.baselines import mean_baseline_rmse
    >>> s = make_mock_galaxies(200, image_size=16, seed=0, progress=False)
    >>> rmse = mean_baseline_rmse(s, s)
    >>> 0.05 < rmse < 0.5
    True
    """
    t = get_target(target)
    for name, s in (("train", train), ("valid", valid)):
        if not hasattr(s, "catalog"):
            raise TypeError(f"{name} must be a GalaxySample, got {type(s).__name__}")
    _, y_train = _target_rows(train, t)
    _, y_valid = _target_rows(valid, t)
    if len(y_train) == 0 or len(y_valid) == 0:
        raise ValueError(f"no rows pass the cuts of target {t.name!r} in "
                         f"{'train' if len(y_train) == 0 else 'valid'}")
    rmse = np.sqrt(np.mean((y_valid - y_train.mean(axis=0)) ** 2, axis=0))
    return float(rmse[0]) if rmse.size == 1 else rmse


def photometric_baseline(train, valid, target="metallicity"):
    """Least-squares linear fit of the target on integrated photometry.

    Fits ``y = c0 + sum_j c_j x_j`` with the four `photometric_features` on the
    rows of ``train`` that pass the target's quality cuts, and evaluates it on
    those of ``valid``.

    Parameters
    ----------
    train, valid : `~sfnet.datasets.GalaxySample`
        Fitting and evaluation samples (may be the same for an in-sample fit).
    target : str or list of str, optional
        A named target (``"metallicity"``, ``"bpt_lines"``) or catalog columns.

    Returns
    -------
    dict
        ``rmse`` (float, or an array with one value per target column) and
        ``mean_rmse`` (the same for the train-mean predictor) on ``valid``;
        ``predictions`` and ``truth`` (``(n_valid,)`` or ``(n_valid, n_targets)``);
        ``index``, the rows of ``valid`` they belong to; ``coefficients``
        (``(n_features,)`` or ``(n_targets, n_features)``) and ``intercept``;
        ``feature_names``, ``target_names``, ``n_train``, ``n_valid``.

    Examples
    --------
    >>> from sfnet.datasets import make_mock_galaxies
    >>> from sfnet.baselines import photometric_baseline
    >>> s = make_mock_galaxies(300, image_size=16, seed=0, progress=False)
    >>> res = photometric_baseline(s, s)      # in-sample, for illustration
    >>> res["feature_names"]
    ('g_r', 'r_i', 'petroMag_r', 'log_petroR90_r')
    >>> bool(res["rmse"] < res["mean_rmse"])
    True
    """
    t = get_target(target)
    _check_sample(train, "train")
    _check_sample(valid, "valid")
    rows_tr, y_tr = _target_rows(train, t)
    rows_va, y_va = _target_rows(valid, t)
    x_tr = _features(train, rows_tr)
    x_va = _features(valid, rows_va)
    ok = np.all(np.isfinite(x_tr), axis=1)
    n_feat = x_tr.shape[1]
    if ok.sum() <= n_feat + 1:
        raise ValueError(f"train has only {int(ok.sum())} usable rows for target {t.name!r}; "
                         f"the fit needs more than {n_feat + 1}")
    if len(rows_va) == 0:
        raise ValueError(f"no rows of valid pass the cuts of target {t.name!r}")
    design = np.column_stack([np.ones(ok.sum()), x_tr[ok]])
    coef, *_ = np.linalg.lstsq(design, y_tr[ok], rcond=None)
    # rows with a missing feature get the train mean (no silent drop)
    pred = np.where(np.all(np.isfinite(x_va), axis=1)[:, None],
                    np.column_stack([np.ones(len(x_va)), np.nan_to_num(x_va)]) @ coef,
                    y_tr[ok].mean(axis=0))
    rmse = np.sqrt(np.mean((pred - y_va) ** 2, axis=0))
    mean_rmse = np.sqrt(np.mean((y_va - y_tr.mean(axis=0)) ** 2, axis=0))
    single = y_tr.shape[1] == 1
    return {
        "rmse": float(rmse[0]) if single else rmse,
        "mean_rmse": float(mean_rmse[0]) if single else mean_rmse,
        "predictions": pred[:, 0] if single else pred,
        "truth": y_va[:, 0] if single else y_va,
        "index": rows_va,
        "coefficients": coef[1:, 0] if single else coef[1:].T,
        "intercept": float(coef[0, 0]) if single else coef[0],
        "feature_names": PHOTOMETRIC_FEATURES,
        "target_names": tuple(t.columns),
        "n_train": int(ok.sum()),
        "n_valid": len(rows_va),
    }
