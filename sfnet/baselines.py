"""Reference predictors to judge an SFNet against: the mean and photometric fits.

Wu & Boada (2019, MNRAS 484, 4683) compared their CNN (0.085 dex) with a random
forest on SDSS photometry (0.130 dex); sfnet's demo reports the analogous
numbers on the mock:

- `mean_baseline_rmse`: predict the training mean (RMSE ~ the target's spread);
- `photometric_baseline` with ``model="gbm"`` (the default): gradient-boosted
  trees (scikit-learn's `~sklearn.ensemble.HistGradientBoostingRegressor`) on
  the catalog photometry every SDSS galaxy has -- u - g, g - r, r - i, i - z
  model colours, Petrosian r magnitude, R50 and R90, concentration R90/R50 and
  redshift (`GBM_FEATURES`) -- tuned on the training sample only; the honest
  catalog-level competitor of an image-based network;
- `photometric_baseline` with ``model="linear"``: least squares on g - r and
  r - i measured from the cutouts in a circular aperture, the Petrosian r
  magnitude and the log Petrosian R90 radius (`PHOTOMETRIC_FEATURES`).

They work on real data (a `~sfnet.datasets.GalaxySample` of SDSS JPEGs with
its catalog) as well as on the mock.
"""

import numpy as np

from ._utils import as_float64
from .targets import get_target

__all__ = ["photometric_features", "catalog_photometry", "photometric_baseline",
           "mean_baseline_rmse", "PHOTOMETRIC_FEATURES", "GBM_FEATURES", "GBM_GRID"]

#: Names of the columns of `photometric_features`, in order.
PHOTOMETRIC_FEATURES = ("g_r", "r_i", "petroMag_r", "log_petroR90_r")
#: Names of the columns of `catalog_photometry` (the gradient-boosting features), in order.
GBM_FEATURES = ("u_g", "g_r", "r_i", "i_z", "petroMag_r", "petroR50_r", "petroR90_r",
                "concentration_r", "z")
#: Catalog columns `catalog_photometry` reads.
_GBM_COLUMNS = ("modelMag_u", "modelMag_g", "modelMag_r", "modelMag_i", "modelMag_z",
                "petroMag_r", "petroR50_r", "petroR90_r", "z")
#: The hyper-parameter grid searched by ``photometric_baseline(model="gbm")``: the
#: three settings that matter most for boosted trees on ~10 features.
GBM_GRID = {"learning_rate": (0.03, 0.1), "max_leaf_nodes": (5, 11, 31),
            "l2_regularization": (0.0, 1.0)}
_MODELS = ("gbm", "linear")

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


def _check_samples(train, valid):
    for name, s in (("train", train), ("valid", valid)):
        if not hasattr(s, "catalog"):
            raise TypeError(f"{name} must be a GalaxySample, got {type(s).__name__}")


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
    _check_samples(train, valid)
    _, y_train = _target_rows(train, t)
    _, y_valid = _target_rows(valid, t)
    if len(y_train) == 0 or len(y_valid) == 0:
        raise ValueError(f"no rows pass the cuts of target {t.name!r} in "
                         f"{'train' if len(y_train) == 0 else 'valid'}")
    rmse = np.sqrt(np.mean((y_valid - y_train.mean(axis=0)) ** 2, axis=0))
    return float(rmse[0]) if rmse.size == 1 else rmse


def catalog_photometry(catalog):
    """The gradient-boosting features: SDSS catalog photometry and redshift.

    Parameters
    ----------
    catalog : `~astropy.table.Table`
        Needs ``modelMag_u, modelMag_g, modelMag_r, modelMag_i, modelMag_z``
        (mag), ``petroMag_r`` (mag), ``petroR50_r``, ``petroR90_r`` (arcsec)
        and ``z``.

    Returns
    -------
    ndarray, shape (N, 9)
        Columns `GBM_FEATURES`: the four model colours ``u - g``, ``g - r``,
        ``r - i``, ``i - z``; ``petroMag_r``; ``petroR50_r`` and ``petroR90_r``
        (arcsec); the concentration ``petroR90_r / petroR50_r``; and ``z``.
        Missing values (non-finite, or SDSS's -9999) are NaN, which the
        gradient-boosted trees handle natively.

    Examples
    --------
    >>> from sfnet.datasets import make_mock_galaxies
    >>> from sfnet.baselines import catalog_photometry
    >>> s = make_mock_galaxies(5, image_size=16, seed=0, progress=False)
    >>> catalog_photometry(s.catalog).shape
    (5, 9)
    """
    names = getattr(catalog, "colnames", None)
    if names is None:
        raise TypeError(f"catalog must be an astropy Table, got {type(catalog).__name__}")
    missing = [c for c in _GBM_COLUMNS if c not in names]
    if missing:
        raise ValueError(f"catalog needs column(s) {missing} for the gradient-boosting "
                         "photometric baseline")
    v = {}
    for c in _GBM_COLUMNS:
        x = _plain(catalog[c])
        v[c] = np.where(np.isfinite(x) & (x > -999), x, np.nan)
    mag = [v[f"modelMag_{b}"] for b in "ugriz"]
    with np.errstate(divide="ignore", invalid="ignore"):
        conc = np.where(v["petroR50_r"] > 0, v["petroR90_r"] / v["petroR50_r"], np.nan)
    return np.column_stack([mag[0] - mag[1], mag[1] - mag[2], mag[2] - mag[3],
                            mag[3] - mag[4], v["petroMag_r"], v["petroR50_r"],
                            v["petroR90_r"], conc, v["z"]])


def _gbm(params, seed):
    from sklearn.ensemble import HistGradientBoostingRegressor

    return HistGradientBoostingRegressor(
        loss="squared_error", max_iter=2000, min_samples_leaf=20, early_stopping=True,
        validation_fraction=0.15, n_iter_no_change=40, random_state=seed, **params)


def _tune_gbm(x, y, seed, n_folds=3):
    """Grid search of `GBM_GRID` by ``n_folds``-fold cross-validation on (x, y) only."""
    from itertools import product

    from sklearn.model_selection import KFold

    keys = tuple(GBM_GRID)
    folds = list(KFold(n_folds, shuffle=True, random_state=seed).split(x))
    best, best_rmse = None, np.inf
    for values in product(*(GBM_GRID[k] for k in keys)):
        params = dict(zip(keys, values))
        sq = 0.0
        for fit_rows, test_rows in folds:
            reg = _gbm(params, seed).fit(x[fit_rows], y[fit_rows])
            sq += np.sum((reg.predict(x[test_rows]) - y[test_rows]) ** 2)
        rmse = np.sqrt(sq / len(y))
        if rmse < best_rmse:
            best, best_rmse = params, rmse
    return best, float(best_rmse)


def _gbm_baseline(train, valid, t, seed):
    _check_samples(train, valid)
    rows_tr, y_tr = _target_rows(train, t)
    rows_va, y_va = _target_rows(valid, t)
    x_tr = catalog_photometry(train.catalog)[rows_tr]
    x_va = catalog_photometry(valid.catalog)[rows_va]
    if len(rows_tr) < 10:
        raise ValueError(f"train has only {len(rows_tr)} rows passing the cuts of target "
                         f"{t.name!r}; the gradient-boosting baseline needs at least 10")
    if len(rows_va) == 0:
        raise ValueError(f"no rows of valid pass the cuts of target {t.name!r}")
    from threadpoolctl import threadpool_limits

    pred = np.empty_like(y_va)
    params, cv_rmse, n_iter = [], [], []
    # one thread: these fits are small, and OpenMP threads only wait on each
    # other (or on a training run sharing the CPU)
    with threadpool_limits(limits=1, user_api="openmp"):
        for j in range(y_tr.shape[1]):
            best, rmse = _tune_gbm(x_tr, y_tr[:, j], seed)
            reg = _gbm(best, seed).fit(x_tr, y_tr[:, j])
            pred[:, j] = reg.predict(x_va)
            params.append(best)
            cv_rmse.append(rmse)
            n_iter.append(int(reg.n_iter_))
    single = y_tr.shape[1] == 1
    return _result(
        "gbm", pred, y_tr.mean(axis=0), y_va, rows_va, t, GBM_FEATURES, len(rows_tr),
        params=params[0] if single else params,
        cv_rmse=cv_rmse[0] if single else np.array(cv_rmse),
        n_iter=n_iter[0] if single else n_iter)


def _result(model, pred, train_mean, y_va, rows_va, target, features, n_train, **extra):
    """The dict the baselines return; one target's entries as scalars/1-D arrays."""
    rmse = np.sqrt(np.mean((pred - y_va) ** 2, axis=0))
    mean_rmse = np.sqrt(np.mean((y_va - train_mean) ** 2, axis=0))
    single = pred.shape[1] == 1
    return {
        "model": model,
        "rmse": float(rmse[0]) if single else rmse,
        "mean_rmse": float(mean_rmse[0]) if single else mean_rmse,
        "predictions": pred[:, 0] if single else pred,
        "truth": y_va[:, 0] if single else y_va,
        "index": rows_va,
        **extra,
        "feature_names": features,
        "target_names": tuple(target.columns),
        "n_train": n_train,
        "n_valid": len(rows_va),
    }


def photometric_baseline(train, valid, target="metallicity", *, model="gbm", random_state=0):
    """Predict the target from integrated photometry; score it on ``valid``.

    Both samples are restricted to the target's quality cuts first; nothing
    about ``valid`` is used for fitting or tuning.

    ``model="gbm"`` (default)
        Gradient-boosted trees (`~sklearn.ensemble.HistGradientBoostingRegressor`,
        squared error, at least 20 galaxies per leaf, early stopping on a random
        15 % of the fitting rows) on `catalog_photometry` -- the photometry every
        SDSS galaxy has: four model colours, Petrosian r magnitude, R50, R90,
        concentration and redshift.  The learning rate, the number of leaves and
        the L2 penalty are chosen from `GBM_GRID` (12 settings) by 3-fold
        cross-validation on ``train``; the best setting is then refit on all of
        ``train``.  One model per target column.  This is what a careful
        astronomer would do with the catalog in an afternoon (cf. the random
        forest of Wu & Boada 2019).
    ``model="linear"``
        Least squares ``y = c0 + sum_j c_j x_j`` on the four
        `photometric_features` (aperture colours measured on the cutouts,
        Petrosian r magnitude, log R90).

    Parameters
    ----------
    train, valid : `~sfnet.datasets.GalaxySample`
        Fitting and evaluation samples (may be the same for an in-sample fit).
    target : str or list of str, optional
        A named target (``"metallicity"``, ``"bpt_lines"``) or catalog columns.
    model : {"gbm", "linear"}, optional
        The regression model (above).
    random_state : int, optional
        Seed of the cross-validation folds and the early-stopping split (``"gbm"``).

    Returns
    -------
    dict
        ``model``; ``rmse`` (float, or an array with one value per target
        column) and ``mean_rmse`` (the same for the train-mean predictor) on
        ``valid``; ``predictions`` and ``truth`` (``(n_valid,)`` or
        ``(n_valid, n_targets)``); ``index``, the rows of ``valid`` they belong
        to; ``feature_names``, ``target_names``, ``n_train``, ``n_valid``.
        ``"gbm"`` adds ``params`` (the chosen hyper-parameters), ``cv_rmse``
        (their cross-validated RMSE on ``train``) and ``n_iter`` (boosting
        iterations after early stopping); ``"linear"`` adds ``coefficients``
        (``(n_features,)`` or ``(n_targets, n_features)``) and ``intercept``.

    Examples
    --------
    >>> from sfnet.datasets import make_mock_galaxies
    >>> from sfnet.baselines import photometric_baseline
    >>> s = make_mock_galaxies(300, image_size=16, seed=0, progress=False)
    >>> res = photometric_baseline(s, s, model="linear")   # in-sample, for illustration
    >>> res["feature_names"]
    ('g_r', 'r_i', 'petroMag_r', 'log_petroR90_r')
    >>> bool(res["rmse"] < res["mean_rmse"])
    True
    """
    if model not in _MODELS:
        raise ValueError(f"model must be one of {_MODELS}, got {model!r}")
    t = get_target(target)
    if model == "gbm":
        if isinstance(random_state, bool) or not isinstance(random_state, (int, np.integer)):
            raise TypeError(f"random_state must be an integer, got {random_state!r}")
        return _gbm_baseline(train, valid, t, int(random_state))
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
    single = y_tr.shape[1] == 1
    return _result("linear", pred, y_tr.mean(axis=0), y_va, rows_va, t, PHOTOMETRIC_FEATURES,
                   int(ok.sum()), coefficients=coef[1:, 0] if single else coef[1:].T,
                   intercept=float(coef[0, 0]) if single else coef[0])
