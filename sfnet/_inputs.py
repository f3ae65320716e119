"""Input coercion for `sfnet.SparseFeatureNet`: images, targets and their checks.

Private module.  It turns what a user passes to ``fit``/``predict``/``evaluate``
(a `~sfnet.GalaxySample`, an image array, targets as an array, Quantity,
Column or Table) into arrays the training and inference code reads, and
raises `ValueError`/`TypeError` naming the argument when that is impossible.
"""

import warnings
from collections import namedtuple

import numpy as np
import torch

from ._imagedata import ImageSource
from .exceptions import DataDroppedWarning

__all__ = ["TrainingData", "is_sample", "image_store", "check_images", "target_array",
           "target_rows", "training_data", "inference_source", "scoring_truth",
           "channel_axis_is_last", "n_channels", "MAX_CHANNELS", "catalog_units"]

#: What `fit` trains on: ``images`` (the whole array or memmap, channels last or
#: not), the ``rows`` of it in use, their targets ``values`` ``(N, T)`` and the
#: targets' ``names`` and ``units`` (None when unknown).
TrainingData = namedtuple("TrainingData",
                          "images channels_last rows values names units")


def is_sample(X):
    """Whether ``X`` looks like a `~sfnet.GalaxySample` (has images and a catalog)."""
    return hasattr(X, "images") and hasattr(X, "catalog")


def image_store(X):
    """(array, rows, channels_last) for a GalaxySample or an image array.

    A lazy subset of a memory-mapped sample is returned as the whole memmap
    plus the rows in use, so nothing is read before a batch needs it.
    """
    if is_sample(X):
        if hasattr(X, "image_store"):
            array, rows = X.image_store()
        else:
            array, rows = X.images, None
        array, channels_last = check_images(array, "X.images")
    else:
        array, channels_last = check_images(X, "X")
        rows = None
    if rows is None:
        rows = np.arange(len(array), dtype=np.int64)
    if len(rows) == 0:
        raise ValueError("X is empty (0 images)")
    return array, np.asarray(rows, dtype=np.int64), channels_last


def target_rows(target, catalog, purpose):
    """Rows passing ``target``'s quality cuts and their target values.

    Rows that fail are reported in one `DataDroppedWarning` (attributed to the
    caller of the estimator method, two calls up); none passing is an error.
    """
    catalog = target.prepare(catalog)
    keep = target.mask(catalog)
    if not keep.any():
        raise ValueError(f"no galaxy in X passes the quality cuts of target {target.name!r}")
    if not keep.all():
        warnings.warn(
            f"{int((~keep).sum())} of {len(keep)} galaxies fail the quality cuts of target "
            f"{target.name!r} and are not {purpose} (use sample.select({target.name!r}) to "
            "drop them explicitly)", DataDroppedWarning, stacklevel=4)
    rows = np.flatnonzero(keep)
    return rows, target.values(catalog[rows])


def check_images(images, name="X"):
    """Validate an image array; return (array, channels_last)."""
    if isinstance(images, torch.Tensor):
        images = images.detach().cpu().numpy()
    if not hasattr(images, "shape") or not hasattr(images, "dtype"):
        images = np.asarray(images)
    if images.dtype == object or not (np.issubdtype(images.dtype, np.integer)
                                      or np.issubdtype(images.dtype, np.floating)):
        raise TypeError(f"{name} must be a numeric image array, got dtype {images.dtype}")
    if images.ndim != 4:
        raise ValueError(f"{name} must have 4 dimensions (N, H, W, C) or (N, C, H, W), "
                         f"got shape {images.shape}")
    if images.shape[0] == 0:
        raise ValueError(f"{name} is empty (0 images)")
    channels_last = channel_axis_is_last(images.shape, name)
    if np.issubdtype(images.dtype, np.integer) and images.dtype != np.uint8:
        raise TypeError(f"{name}: integer images must be uint8 (0-255), got {images.dtype}")
    return images, channels_last


#: Most bands an image may have: more than this on both candidate axes is
#: taken as a shape error, not as a band axis.
MAX_CHANNELS = 64


def channel_axis_is_last(shape, name="X"):
    """Whether images of ``shape`` ``(N, ., ., .)`` are channels last.

    3 on the last axis means channels last and 3 on axis 1 channels first (as
    before, so RGB arrays read as they always did); otherwise the band axis is
    the shorter of axis 1 and the last axis (images have more pixels on a side
    than bands), and it must hold at most `MAX_CHANNELS` bands.
    """
    first, last = int(shape[1]), int(shape[-1])
    if min(first, last) < 1:
        raise ValueError(f"{name} has no bands: shape {tuple(shape)}")
    if last == 3:
        return True
    if first == 3:
        return False
    if last <= MAX_CHANNELS and last < first:
        return True
    if first <= MAX_CHANNELS and first < last:
        return False
    raise ValueError(f"{name}: cannot tell the band axis of shape {tuple(shape)}; give images "
                     f"as (N, H, W, C) or (N, C, H, W) with 1 <= C <= {MAX_CHANNELS} bands "
                     "and more pixels on a side than bands")


def n_channels(images, channels_last):
    """The number of bands of a checked image array."""
    return int(images.shape[-1] if channels_last else images.shape[1])


def _table_columns(y):
    """(float64 array (N, T), names, units) of an astropy Table; masked -> NaN."""
    names = list(y.colnames)
    units = [str(y[c].unit) if getattr(y[c], "unit", None) else "" for c in names]
    cols = []
    for c in names:
        v = getattr(y[c], "value", y[c])
        cols.append(np.ma.filled(np.ma.asarray(v, dtype=np.float64), np.nan))
    arr = np.stack(cols, axis=1) if cols else np.empty((len(y), 0))
    return arr, names, units


def _plain_values(y, name):
    """(float64 array, names, units) of an array, Quantity, Column or tensor."""
    names = units = None
    unit = getattr(y, "unit", None)
    if unit is not None:
        units = [str(unit)]
    if isinstance(getattr(y, "name", None), str) and y.name:
        names = [y.name]
    v = getattr(y, "value", y)
    if isinstance(v, torch.Tensor):
        v = v.detach().cpu().numpy()
    if np.ma.isMaskedArray(v):
        v = np.ma.filled(v.astype(np.float64), np.nan)
    try:
        arr = np.asarray(v, dtype=np.float64)
    except (TypeError, ValueError) as exc:
        raise TypeError(f"{name} must be numeric, got {type(y).__name__}") from exc
    return arr, names, units


def target_array(y, n, name="y"):
    """y -> (float64 array (N, T), column names or None, units or None)."""
    from astropy.table import Table

    if isinstance(y, Table):
        arr, names, units = _table_columns(y)
    else:
        arr, names, units = _plain_values(y, name)
    if arr.ndim == 1:
        arr = arr[:, None]
    if arr.ndim != 2 or arr.shape[1] == 0:
        raise ValueError(f"{name} must have shape (N,) or (N, n_targets), got {arr.shape}")
    if len(arr) != n:
        raise ValueError(f"{name} has {len(arr)} rows but X has {n} images")
    bad = ~np.isfinite(arr)
    if bad.any():
        rows = np.flatnonzero(bad.any(axis=1))[:5].tolist()
        raise ValueError(f"{name} contains {int(bad.sum())} NaN/inf value(s) (rows {rows}...)")
    if units is not None and len(units) != arr.shape[1]:
        units = units * arr.shape[1] if len(units) == 1 else None
    return arr, names, units


def catalog_units(target, catalog):
    """The units of ``target``'s columns: the target's own, else the catalog column's."""
    units = []
    for col, unit in zip(target.columns, target.units):
        if not unit and col in catalog.colnames and getattr(catalog[col], "unit", None):
            unit = catalog[col].unit.to_string()
        units.append(unit)
    return units


def training_data(X, y, target):
    """The `TrainingData` of ``fit(X, y)`` for the resolved `~sfnet.targets.Target`.

    With a sample and no ``y`` the targets come from its catalog (rows failing
    the target's cuts are left out with a warning); otherwise from ``y``, named
    by its columns, else by ``target`` when the counts agree, else ``target_i``.
    """
    images, store_rows, channels_last = image_store(X)
    if is_sample(X):
        if y is None:
            rows, values = target_rows(target, X.catalog, "used for training")
            return TrainingData(images, channels_last, store_rows[rows], values,
                                list(target.columns), catalog_units(target, X.catalog))
    elif y is None:
        raise ValueError("y is required when X is an image array "
                         "(pass a GalaxySample to take targets from its catalog)")
    values, names, units = target_array(y, len(store_rows))
    if names is None or len(names) != values.shape[1]:
        names = (list(target.columns) if len(target.columns) == values.shape[1]
                 else [f"target_{i}" for i in range(values.shape[1])])
        if units is None and len(target.columns) == values.shape[1]:
            units = list(target.units)
    return TrainingData(images, channels_last, store_rows, values, names, units)


def inference_source(X, *, input_kind, input_shape, preprocessor):
    """An ``sfnet._imagedata.ImageSource`` over X for a model fitted on ``input_kind``
    (``"uint8"`` or ``"float"``) images of ``input_shape``."""
    images, rows, channels_last = image_store(X)
    kind = "uint8" if images.dtype == np.uint8 else "float"
    if kind != input_kind:
        raise TypeError(f"X holds {kind} images but the model was trained on "
                        f"{input_kind} images")
    bands = n_channels(images, channels_last)
    if bands != preprocessor.n_channels:
        raise ValueError(f"X has {bands}-band images but the model was trained on "
                         f"{preprocessor.n_channels} bands")
    shape = images.shape[1:3] if channels_last else images.shape[2:4]
    if preprocessor.image_size is None and preprocessor.crop_size is None and \
            tuple(shape) != tuple(input_shape):
        raise ValueError(f"X has {shape[0]}x{shape[1]} images but the model was trained on "
                         f"{input_shape[0]}x{input_shape[1]}; set image_size")
    return ImageSource(images, rows, channels_last=channels_last)


def scoring_truth(X, y, target):
    """(truth (N, T), rows of X to score): with a sample and no ``y``, the target's cuts apply."""
    if y is None:
        if not is_sample(X):
            raise ValueError("y is required when X is an image array")
        rows, values = target_rows(target, X.catalog, "scored")
        return values, rows
    truth = target_array(y, len(X))[0]
    return truth, np.arange(len(truth))
