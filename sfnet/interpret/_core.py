"""Private helpers shared by the `sfnet.interpret` modules.

* input coercion: activations (dense, torch or the sparse pair), catalogs and
  images of a sample, the weights and bias of a model's linear head;
* argument checks whose messages name the offending argument;
* the catalog glue: `property_values` of a GalaxySample or Table (the schema,
  the properties and the missing-value codes themselves live in `sfnet.catalog`);
* the correlation coefficients and the frequency order of features.
"""

import numpy as np

from .. import catalog as _catalog
from .._utils import as_float64

__all__ = []


# --------------------------------------------------------------------------- coercion

plain = as_float64


def get_catalog(sample, name="sample"):
    """The catalog of a GalaxySample, or the Table itself."""
    from astropy.table import Table

    if isinstance(sample, Table):
        return sample
    cat = getattr(sample, "catalog", None)
    if cat is None:
        raise TypeError(
            f"{name} must be a GalaxySample or an astropy Table, got {type(sample).__name__}")
    return cat


def get_images(sample, name="sample"):
    """The image array of a GalaxySample (or an image array itself); not copied."""
    images = getattr(sample, "images", sample)
    shape = getattr(images, "shape", None)
    if shape is None or len(shape) != 4 or not 1 <= shape[-1] <= 64:
        raise ValueError(
            f"{name} must be a GalaxySample or an (N, H, W, C) image array (1 <= C <= 64 "
            f"bands), got shape {shape}")
    return images


def take_images(sample, index, name="sample"):
    """``images[index]`` in their own dtype, reading only those rows (memmap friendly)."""
    index = np.asarray(index, dtype=np.int64)
    if hasattr(sample, "read_images"):  # GalaxySample: reads only these rows
        return np.asarray(sample.read_images(index))
    images = get_images(sample, name)
    if index.size == 0:
        return np.zeros((0,) + tuple(images.shape[1:]), dtype=images.dtype)
    order = np.argsort(index, kind="stable")
    got = np.asarray(images[index[order]])
    out = np.empty_like(got)
    out[order] = got
    return out


def as_activations(activations, n_features=None, name="activations"):
    """Dense float ``(N, n_features)`` activations (float32 input stays float32).

    Accepts a dense array-like (numpy, torch tensor, anything ``np.asarray`` takes)
    or the sparse pair ``(indices, values)`` of ``model.activations(X, sparse=True)``
    (then ``n_features`` is needed).
    """
    if isinstance(activations, tuple) and len(activations) == 2:
        idx, val = (_to_numpy(a) for a in activations)
        idx = np.asarray(idx)
        val = np.asarray(val, dtype=np.float64)
        if idx.shape != val.shape or idx.ndim != 2:
            raise ValueError(
                f"{name}: sparse (indices, values) must have equal 2-d shapes, got "
                f"{idx.shape} and {val.shape}")
        if n_features is None:
            raise ValueError(f"{name}: sparse (indices, values) needs n_features")
        idx = idx.astype(np.int64)
        used = idx >= 0  # inactive slots hold index -1 (and value 0)
        if np.any(idx[used] >= n_features) or np.any(val[~used] != 0):
            raise ValueError(f"{name}: feature indices outside [0, {n_features}) "
                             "(or a value in a slot with index -1)")
        dense = np.zeros((idx.shape[0], int(n_features)), dtype=np.float64)
        rows = np.broadcast_to(np.arange(idx.shape[0])[:, None], idx.shape)
        dense[rows[used], idx[used]] = val[used]
        return dense
    arr = np.asarray(_to_numpy(activations))
    if arr.dtype not in (np.float32, np.float64):  # keep float32: 250k x 512 is 0.5 GB
        arr = arr.astype(np.float64)
    if arr.ndim != 2:
        raise ValueError(f"{name} must be 2-d (n_galaxies, n_features), got shape {arr.shape}")
    if n_features is not None and arr.shape[1] != n_features:
        raise ValueError(
            f"{name} has {arr.shape[1]} features but the model has {n_features}")
    if not np.all(np.isfinite(arr)):
        raise ValueError(f"{name} contains NaN or inf")
    return arr


def _to_numpy(x):
    if hasattr(x, "detach"):  # torch tensor
        return x.detach().cpu().numpy()
    return x


def check_length(n, other, what, name="activations"):
    """Raise if ``other`` rows (int) differ from ``n``."""
    if n != other:
        raise ValueError(f"{name} has {n} rows but {what} has {other}")


def check_feature(feature, n_features, name="feature"):
    """Validate a feature index (int-like, 0 <= feature < n_features) and return it."""
    if isinstance(feature, (bool, np.bool_)) or not isinstance(feature, (int, np.integer)):
        raise TypeError(f"{name} must be an integer feature index, got {feature!r}")
    feature = int(feature)
    if not 0 <= feature < n_features:
        raise ValueError(f"{name}={feature} is out of range [0, {n_features})")
    return feature


def check_features(features, n_features, name="features"):
    """Validate a sequence of feature indices; return an int64 array."""
    arr = np.atleast_1d(np.asarray(features))
    if arr.ndim != 1 or (arr.size and not np.issubdtype(arr.dtype, np.integer)):
        raise TypeError(f"{name} must be a sequence of integer feature indices")
    arr = arr.astype(np.int64)
    bad = arr[(arr < 0) | (arr >= n_features)]
    if bad.size:
        raise ValueError(f"{name} has index {int(bad[0])} out of range [0, {n_features})")
    return arr


def head_of(model_or_weights, bias=None, target_names=None, name="model"):
    """``(weights (T, F), bias (T,), target_names)`` from a model or arrays.

    ``model_or_weights`` is a fitted model (``head_weights``/``head_bias``), a
    ``(weights, bias)`` pair or a weights array (then ``bias`` defaults to 0).
    """
    if hasattr(model_or_weights, "head_weights"):
        w = model_or_weights.head_weights
        b = model_or_weights.head_bias if bias is None else bias
        if target_names is None:
            target_names = getattr(model_or_weights, "target_names", None)
    elif isinstance(model_or_weights, tuple) and len(model_or_weights) == 2:
        w, b = model_or_weights
    else:
        w, b = model_or_weights, bias
    w = np.asarray(_to_numpy(w), dtype=np.float64)
    if w.ndim == 1:
        w = w[None, :]
    if w.ndim != 2:
        raise ValueError(f"{name}: head weights must be (n_targets, n_features), got {w.shape}")
    b = np.zeros(w.shape[0]) if b is None else np.atleast_1d(
        np.asarray(_to_numpy(b), dtype=np.float64))
    if b.shape != (w.shape[0],):
        raise ValueError(f"{name}: head bias has shape {b.shape}, expected ({w.shape[0]},)")
    if target_names is None:
        target_names = ["y"] if w.shape[0] == 1 else [f"y{i}" for i in range(w.shape[0])]
    target_names = [str(t) for t in target_names]
    if len(target_names) != w.shape[0]:
        raise ValueError(f"{name}: {len(target_names)} target names for {w.shape[0]} targets")
    return w, b, target_names


# --------------------------------------------------------------------------- properties

def property_values(sample, name, min_snr=None):
    """Values of a physical property or catalog column, NaN where missing or undefined.

    Parameters
    ----------
    sample : GalaxySample or `~astropy.table.Table`
        Source of the catalog.
    name : str
        A key of `sfnet.catalog.PROPERTIES` (``"metallicity"``, ``"mass"``,
        ``"sfr"``, ``"ssfr"``, ``"log_nii_ha"``, ``"log_oiii_hb"``, ``"z"``) or any
        numeric catalog column.
    min_snr : float, optional
        For the line ratios, also require flux / error above this on both lines.

    Returns
    -------
    values : ndarray
        float64, NaN where the catalog marks the value missing (MPA-JHU -9999,
        see `sfnet.catalog.valid_values`), for non-positive line fluxes and for
        non-finite entries.  This is `sfnet.catalog.property_values` on the
        sample's catalog.
    """
    return _catalog.property_values(get_catalog(sample), name, min_snr=min_snr)


def property_columns(name):
    """The catalog columns a property (or a plain column name) needs."""
    prop = _catalog.PROPERTIES.get(name)
    return prop.columns if prop is not None else (name,)


def has_columns(sample, columns):
    """Whether the sample's catalog holds all ``columns``."""
    cat = get_catalog(sample)
    return all(c in cat.colnames for c in columns)


# --------------------------------------------------------------------------- statistics

def pearson(x, y):
    """Pearson r of two 1-d arrays (NaN if either is constant or n < 3)."""
    x = np.asarray(x, dtype=np.float64)
    y = np.asarray(y, dtype=np.float64)
    if x.size < 3:
        return np.nan
    dx = x - x.mean()
    dy = y - y.mean()
    sx = np.sqrt(np.sum(dx * dx))
    sy = np.sqrt(np.sum(dy * dy))
    if sx == 0 or sy == 0 or not np.isfinite(sx * sy):
        return np.nan
    return float(np.clip(np.sum(dx * dy) / (sx * sy), -1.0, 1.0))


def spearman(x, y):
    """Spearman rank correlation (average ranks for ties; NaN if constant)."""
    from scipy.stats import rankdata

    x = np.asarray(x, dtype=np.float64)
    y = np.asarray(y, dtype=np.float64)
    if x.size < 3:
        return np.nan
    return pearson(rankdata(x), rankdata(y))


def frequency_order(acts):
    """Feature indices sorted by how many galaxies activate them (desc; ties by index)."""
    n_active = np.count_nonzero(acts != 0, axis=0)
    return np.lexsort((np.arange(acts.shape[1]), -n_active)), n_active
