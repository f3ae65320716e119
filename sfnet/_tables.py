"""Prediction tables: `SparseFeatureNet.predict_table` and the file writer of ``sfnet predict``.

The table has one row per galaxy and, in this order,

``objID`` (or the sample's own ID column)
    The galaxy's identifier, when ``X`` has a catalog with its ID column:
    ``X.id_column`` for a `~sfnet.GalaxySample` that has one, else
    ``objID`` (the 64-bit SDSS identifier).  Integer IDs are exact
    ``int64``, never through float; string IDs (a DESI ``TARGETID`` kept as
    text, a name) are kept as strings.
``coord``
    An ICRS `~astropy.coordinates.SkyCoord`, when the catalog has ``ra`` and
    ``dec``.
``{target}_pred``
    One column per predicted quantity, a `~astropy.units.Quantity` in the
    target's unit (``dex`` for 12+log(O/H), ``dex(1e-17 erg / (s cm2))`` for
    the log line fluxes; the units of `sfnet.targets` and `sfnet.catalog`).
``{target}_std``
    The predicted 1-sigma uncertainty, only with ``return_std=True``, in the
    unit of a difference of the target (``dex`` for logarithmic targets).
``feature_1 .. feature_k``, ``activation_1 .. activation_k``
    The galaxy's active features (indices into the network's pooled features),
    by decreasing activation, and their post-top-k activations.  A galaxy
    with fewer than ``k`` positive features has ``feature_i = -1`` and
    ``activation_i = 0`` in the unused slots.
``{target}_contribution_1 .. {target}_contribution_k``
    ``head_weights[target, feature_i] * activation_i``: what each feature adds
    to the prediction (0 in unused slots), in the difference unit of the
    target.  The prediction is the head bias plus the sum of the
    contributions, so ``{target}_pred - sum_i {target}_contribution_i`` is the
    same for every galaxy; it is ``table.meta["head_bias"][target]``.

``ood_score``, ``ood_flag``
    Only for a model with out-of-distribution statistics (fitted by
    `SparseFeatureNet.fit`): how unlike the training galaxies the galaxy is
    (`SparseFeatureNet.ood_score`, higher: less alike) and whether it exceeds
    the threshold ``table.meta["ood_threshold"]`` (the 99th percentile of the
    fit's held-out galaxies' scores).  Models without the statistics (the
    paper's seed checkpoints, older saves) give tables without these columns.
With ``return_std=True`` some models add columns after the ``_std`` ones
(`add_total_std`, `add_bpt_columns`):

``{target}_std_total``
    A model trained with ``label_error``: the model's error and the galaxy's
    label error (from its catalog) in quadrature; NaN where the catalog has no
    valid label error.
``log_nii_ha_pred``, ``log_nii_ha_std``, ``log_oiii_hb_pred``, ``log_oiii_hb_std``
    A ``"bpt_lines"`` model: the two BPT line ratios and their 1σ errors,
    propagated from the predicted 4×4 covariance (`sfnet.interpret.line_ratio_errors`).
``p_star_forming``, ``p_composite``, ``p_agn``
    A ``"bpt_lines"`` model: the probability of each BPT class under that
    covariance (`sfnet.interpret.bpt_probabilities`, 2000 draws, seed 0).

Flat columns rather than ``(N, k)`` columns keep CSV files readable by any
program.
"""

import warnings
from pathlib import Path

import numpy as np

__all__ = ["prediction_table", "table_format", "write_prediction_table", "id_column_of",
           "id_values", "add_total_std", "add_bpt_columns"]

#: Output formats of `write_prediction_table`, by file extension.
TABLE_FORMATS = {".ecsv": "ascii.ecsv", ".csv": "ascii.csv", ".fits": "fits", ".fit": "fits"}


def _unit(name, unit_text):
    """The astropy unit of target ``name``: the model's, else the catalog schema's."""
    import astropy.units as u

    from .catalog import column_unit

    text = unit_text or column_unit(name) or ""
    return u.Unit(text)


def _difference_unit(unit):
    """The unit of a difference of two values in ``unit`` (``dex`` for ``dex(X)``)."""
    import astropy.units as u

    return unit.function_unit if isinstance(unit, u.FunctionUnitBase) else unit


def id_column_of(X):
    """The name of the ID column of ``X``: ``X.id_column`` if it has one, else ``"objID"``."""
    name = getattr(X, "id_column", None)
    return name if isinstance(name, str) and name else "objID"


def id_values(column):
    """The IDs of catalog column ``column``: exact int64 for integers, else strings."""
    values = np.asarray(getattr(column, "value", column))
    if np.issubdtype(values.dtype, np.integer) or values.dtype == np.bool_:
        return values.astype(np.int64)
    if values.dtype.kind in "US":
        return values
    return np.asarray([str(v) for v in values])


def prediction_table(X, pred, std, indices, values, *, names, units, head_weights, head_bias,
                     ood=None):
    """Predictions, positions and active features of ``X`` as a `~astropy.table.QTable`.

    The table of `SparseFeatureNet.predict_table`, which computes the inputs in
    one pass over the images; see the module docstring for the columns.

    Parameters
    ----------
    X : GalaxySample or array
        The galaxies (the ID column and ``coord`` come from a sample's catalog).
    pred : ndarray
        Predictions ``(N, T)`` in the targets' units.
    std : ndarray or None
        Their 1-sigma uncertainties ``(N, T)``, or None for no ``_std`` columns.
    indices, values : ndarray
        The active features ``(N, k)`` as ``activations(X, sparse=True)`` gives them.
    names, units : list of str
        The targets' names and unit strings (empty: the catalog schema's unit).
    head_weights, head_bias : ndarray
        The linear head in the targets' units, ``(T, n_features)`` and ``(T,)``.
    ood : tuple, optional
        ``(scores (N,), threshold)`` of the out-of-distribution score; None for
        no ``ood_score``/``ood_flag`` columns.
    """
    from astropy.table import QTable

    from . import __version__

    idx, vals, weights, bias = indices, values, head_weights, head_bias
    units = [_unit(name, text) for name, text in zip(names, units)]

    table = QTable()
    catalog = getattr(X, "catalog", None)
    if catalog is not None:
        id_col = id_column_of(X)
        if id_col in catalog.colnames:
            table[id_col] = id_values(catalog[id_col])
            table[id_col].info.description = (
                "SDSS photometric object identifier" if id_col == "objID"
                else "galaxy identifier")
        if "ra" in catalog.colnames and "dec" in catalog.colnames:
            table["coord"] = X.coords
            table["coord"].info.description = "ICRS position"
    for j, (name, unit) in enumerate(zip(names, units)):
        table[f"{name}_pred"] = pred[:, j] << unit
        table[f"{name}_pred"].info.description = f"SFNet prediction of {name}"
        if std is not None:
            table[f"{name}_std"] = std[:, j] << _difference_unit(unit)
            table[f"{name}_std"].info.description = f"1-sigma uncertainty of {name}_pred"
    k = idx.shape[1]
    for i in range(k):
        table[f"feature_{i + 1}"] = idx[:, i]
        table[f"feature_{i + 1}"].info.description = (
            f"index of the active feature ranked {i + 1} by activation (-1: none)")
    for i in range(k):
        table[f"activation_{i + 1}"] = vals[:, i]
        table[f"activation_{i + 1}"].info.description = f"activation of feature_{i + 1}"
    safe = np.where(idx >= 0, idx, 0)
    for j, (name, unit) in enumerate(zip(names, units)):
        contrib = np.where(idx >= 0, weights[j][safe] * vals, 0.0)
        for i in range(k):
            col = f"{name}_contribution_{i + 1}"
            table[col] = contrib[:, i] << _difference_unit(unit)
            table[col].info.description = f"head weight x activation of feature_{i + 1}"
    if ood is not None:
        scores, threshold = np.asarray(ood[0], dtype=np.float64), float(ood[1])
        table["ood_score"] = scores
        table["ood_score"].info.description = (
            "Mahalanobis distance of the pooled features from the training galaxies'")
        table["ood_flag"] = scores > threshold
        table["ood_flag"].info.description = "ood_score above meta['ood_threshold']"
        table.meta["ood_threshold"] = threshold
    table.meta.update({
        "sfnet_version": __version__,
        "k": int(k),
        "targets": list(names),
        "head_bias": {name: float(b) for name, b in zip(names, bias)},
    })
    return table


def add_total_std(table, names, units, total):
    """Add ``{target}_std_total`` columns (``total`` ``(N, T)``) after each ``{target}_std``."""
    for j, (name, unit_text) in enumerate(zip(names, units)):
        unit = _difference_unit(_unit(name, unit_text))
        col = f"{name}_std_total"
        table.add_column(total[:, j] << unit, name=col,
                         index=table.colnames.index(f"{name}_std") + 1)
        table[col].info.description = (f"1-sigma error of {name}: model and label errors "
                                       "in quadrature")
    return table


def add_bpt_columns(table, mean, cov, *, n_samples=2000, seed=0):
    """Add the BPT line ratios, their errors and the class probabilities of a
    ``"bpt_lines"`` prediction ``mean`` ``(N, 4)`` with covariance ``cov`` ``(N, 4, 4)``;
    they go before the active-feature columns."""
    import astropy.units as u

    from .interpret.bpt import bpt_probabilities, line_ratio_errors

    x, y, sx, sy = line_ratio_errors(mean, cov)
    probs = bpt_probabilities(mean, cov, n_samples=n_samples, seed=seed)
    at = table.colnames.index("feature_1") if "feature_1" in table.colnames else None
    columns = [
        ("log_nii_ha_pred", x << u.dex, "predicted log([NII]6584/Halpha)"),
        ("log_nii_ha_std", sx << u.dex, "1-sigma error of log_nii_ha_pred (from the covariance)"),
        ("log_oiii_hb_pred", y << u.dex, "predicted log([OIII]5007/Hbeta)"),
        ("log_oiii_hb_std", sy << u.dex, "1-sigma error of log_oiii_hb_pred (from the covariance)"),
        ("p_star_forming", probs[:, 0], "probability of the star-forming BPT class"),
        ("p_composite", probs[:, 1], "probability of the composite BPT class"),
        ("p_agn", probs[:, 2], "probability of the AGN BPT class"),
    ]
    for name, values, text in columns:
        if at is None:
            table[name] = values
        else:
            table.add_column(values, name=name, index=at)
            at += 1
        table[name].info.description = text
    return table


def table_format(path, argument="output"):
    """The astropy format name for ``path``'s extension (`TABLE_FORMATS`).

    Raises
    ------
    ValueError
        For any other extension; the message names ``argument`` and ``path``.
    """
    ext = Path(path).suffix.lower()
    if ext not in TABLE_FORMATS:
        raise ValueError(f"{argument} {str(path)!r}: unknown table format {ext or '(none)'!r}; "
                         "use .ecsv, .fits or .csv")
    return TABLE_FORMATS[ext]


def _plain_columns(table):
    """A copy of ``table`` for FITS and CSV: ``coord`` becomes ``ra`` and ``dec`` (deg)."""
    import astropy.units as u
    from astropy.coordinates import SkyCoord

    out = table.copy(copy_data=False)
    for name in list(out.colnames):
        if isinstance(out[name], SkyCoord):
            icrs = out[name].icrs
            pos = out.colnames.index(name)
            out.remove_column(name)
            out.add_column(icrs.dec.to(u.deg), index=pos, name="dec")
            out.add_column(icrs.ra.to(u.deg), index=pos, name="ra")
            out["ra"].info.description = "ICRS right ascension"
            out["dec"].info.description = "ICRS declination"
    # FITS headers hold no nested dictionaries: flatten them into keys.
    for key, value in list(out.meta.items()):
        if isinstance(value, dict):
            del out.meta[key]
            out.meta.update({f"{key}_{sub}": v for sub, v in value.items()})
    return out


def write_prediction_table(table, path, *, argument="output"):
    """Write a `prediction_table` atomically; the format follows ``path``'s extension.

    ECSV keeps everything (units, the ``coord`` SkyCoord, 64-bit objIDs, the
    metadata).  FITS and CSV get ``ra`` and ``dec`` columns in degrees instead
    of ``coord``; CSV keeps no units or metadata.

    Raises
    ------
    ValueError
        If the extension is not one of `TABLE_FORMATS` (checked before anything
        is written; the message names ``argument``).
    """
    from astropy.io.fits.verify import VerifyWarning

    from ._io import atomic_path

    fmt = table_format(path, argument)
    path = Path(path)
    out = table if fmt == "ascii.ecsv" else _plain_columns(table)
    with atomic_path(path, suffix=path.suffix) as tmp, warnings.catch_warnings():
        # Units such as dex(...) have no FITS spelling (astropy keeps them in the
        # table metadata instead and says so); long metadata keys become
        # HIERARCH cards.  Both are expected.
        warnings.filterwarnings("ignore", message=".*could not be saved in native FITS format")
        warnings.filterwarnings("ignore", message=".*a HIERARCH card will be created",
                                category=VerifyWarning)
        out.write(tmp, format=fmt, overwrite=True)
    return path
