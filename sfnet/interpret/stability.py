"""Do the explanations survive a rotation?  Stability of the active feature sets.

An SFNet explains each prediction by the (at most k) features active for the
galaxy.  A galaxy rotated by 90° or flipped is the same galaxy, and one more or
less count of pixel noise does not change it either, so a trustworthy
explanation should not change under those transforms.  `activation_stability`
measures, galaxy by galaxy, whether the active set stays the same under the 8
dihedral transforms of the image and under ±1 DN of pixel noise;
`feature_stability` summarises it feature by feature (how often a feature
stays on when its galaxy is transformed).  A model fitted with
``symmetry="d4"`` is invariant to the dihedral transforms by construction.

Both run the network on 9 versions of every image (8 dihedral, 1 noisy).
"""

import numpy as np

from .._inputs import image_store
from .._tables import id_column_of, id_values

__all__ = ["activation_stability", "dihedral_images", "feature_stability"]


def dihedral_images(images, channels_last=True):
    """The 8 dihedral transforms of square images, as a list of arrays.

    Parameters
    ----------
    images : ndarray
        ``(N, H, W, C)`` (``channels_last``) or ``(N, C, H, W)``, with ``H == W``.
    channels_last : bool

    Returns
    -------
    list of ndarray
        Identity, horizontal flip, vertical flip, 180° rotation, then the same
        four of the transpose (the 90° rotations and the diagonal flips): the
        order of `sfnet.nn.dihedral_transforms`.
    """
    images = np.asarray(images)
    if images.ndim != 4:
        raise ValueError(f"images must be 4-D (N, H, W, C) or (N, C, H, W), got {images.shape}")
    h, w = (1, 2) if channels_last else (2, 3)
    if images.shape[h] != images.shape[w]:
        raise ValueError(f"dihedral transforms need square images, got "
                         f"{images.shape[h]}x{images.shape[w]}")
    t = np.swapaxes(images, h, w)
    out = [images, np.flip(images, w), np.flip(images, h), np.flip(images, (h, w)),
           t, np.flip(t, w), np.flip(t, h), np.flip(t, (h, w))]
    return [np.ascontiguousarray(a) for a in out]


def _noisy(images, noise_dn, rng):
    """``images`` plus ±``noise_dn`` (random sign per pixel and channel); uint8 clipped."""
    sign = rng.integers(0, 2, size=images.shape, dtype=np.int8) * 2 - 1
    if images.dtype == np.uint8:
        noisy = images.astype(np.int16) + sign.astype(np.int16) * int(noise_dn)
        return np.clip(noisy, 0, 255).astype(np.uint8)
    return (images + sign * noise_dn).astype(images.dtype)


def _active(model, images, batch_size):
    """Boolean ``(N, n_features)`` active sets of ``images``."""
    idx, vals = model.activations(images, sparse=True, batch_size=batch_size)
    mask = np.zeros((len(idx), model.n_features), dtype=bool)
    rows = np.repeat(np.arange(len(idx)), idx.shape[1])
    keep = (idx.ravel() >= 0) & (vals.ravel() > 0)
    mask[rows[keep], idx.ravel()[keep]] = True
    return mask


def _jaccard(a, b):
    """Row-wise Jaccard similarity of boolean sets (1 when both are empty)."""
    inter = (a & b).sum(axis=1)
    union = (a | b).sum(axis=1)
    return np.where(union > 0, inter / np.maximum(union, 1), 1.0)


def _check_args(noise_dn, seed, chunk_size):
    if isinstance(noise_dn, bool) or not isinstance(noise_dn, (int, float, np.integer,
                                                                np.floating)):
        raise TypeError(f"noise_dn must be a number, got {noise_dn!r}")
    if not noise_dn > 0 or not np.isfinite(noise_dn):
        raise ValueError(f"noise_dn must be a positive number, got {noise_dn!r}")
    if seed is not None and (isinstance(seed, bool) or not isinstance(seed, (int, np.integer))):
        raise TypeError(f"seed must be an integer or None, got {seed!r}")
    if isinstance(chunk_size, bool) or not isinstance(chunk_size, (int, np.integer)) or \
            chunk_size < 1:
        raise ValueError(f"chunk_size must be a positive integer, got {chunk_size!r}")


def _stability(model, X, noise_dn, seed, batch_size, chunk_size):
    """Per-galaxy columns and per-feature counts of the active-set stability."""
    _check_args(noise_dn, seed, chunk_size)
    if not hasattr(model, "activations"):
        raise TypeError(f"model must be a fitted SparseFeatureNet, got {type(model).__name__}")
    images, rows, channels_last = image_store(X)
    rng = np.random.default_rng(seed)
    n_features = model.n_features
    cols = {name: [] for name in ("n_active", "same_set_dihedral", "jaccard_dihedral",
                                  "same_set_noise", "jaccard_noise")}
    on = np.zeros(n_features, dtype=np.int64)
    stay_d4 = np.zeros(n_features, dtype=np.int64)
    stay_noise = np.zeros(n_features, dtype=np.int64)
    for start in range(0, len(rows), chunk_size):
        batch = np.asarray(images[rows[start:start + chunk_size]])
        versions = dihedral_images(batch, channels_last)
        masks = [_active(model, v, batch_size) for v in versions]
        noisy = _active(model, _noisy(batch, noise_dn, rng), batch_size)
        m0 = masks[0]
        same = np.ones(len(m0), dtype=bool)
        jac = np.zeros(len(m0))
        for m in masks[1:]:
            same &= (m == m0).all(axis=1)
            jac += _jaccard(m0, m)
            stay_d4 += (m0 & m).sum(axis=0)
        cols["n_active"].append(m0.sum(axis=1))
        cols["same_set_dihedral"].append(same)
        cols["jaccard_dihedral"].append(jac / (len(masks) - 1))
        cols["same_set_noise"].append((noisy == m0).all(axis=1))
        cols["jaccard_noise"].append(_jaccard(m0, noisy))
        on += m0.sum(axis=0)
        stay_noise += (m0 & noisy).sum(axis=0)
    cols = {k: np.concatenate(v) for k, v in cols.items()}
    return cols, {"on": on, "stay_d4": stay_d4, "stay_noise": stay_noise}


def _meta(noise_dn, seed):
    return {"noise_dn": noise_dn, "seed": seed,
            "transforms": "8 dihedral (rotations by 90 deg, flips); noise: +-noise_dn per "
                          "pixel and channel, random sign, uint8 clipped to 0-255"}


def activation_stability(model, X, *, noise_dn=1, seed=0, batch_size=None, chunk_size=512):
    """Whether each galaxy's active feature set survives rotations, flips and pixel noise.

    Parameters
    ----------
    model : SparseFeatureNet
        A fitted model.
    X : GalaxySample or array
        Galaxies (square images, as the model takes them).
    noise_dn : float
        Noise amplitude: every pixel and channel gets ``+noise_dn`` or
        ``-noise_dn`` (random sign), uint8 images are clipped to 0–255.
    seed : int, optional
        Seed of the noise.
    batch_size : int, optional
        Inference batch size.
    chunk_size : int
        Galaxies transformed at a time (memory: 9 copies of a chunk).

    Returns
    -------
    astropy.table.Table
        One row per galaxy: the ID column (``sample.id_column``, default
        ``objID``, for a sample with one), ``n_active``
        (features active on the original image), ``same_set_dihedral``
        (bool: the active set is identical for all 8 dihedral transforms),
        ``jaccard_dihedral`` (mean Jaccard similarity of the active sets of the
        7 other transforms with the original's; 1 when both are empty),
        ``same_set_noise`` and ``jaccard_noise`` (the same against one noisy
        copy).  ``meta`` records ``noise_dn`` and ``seed``.

    Notes
    -----
    The transforms are applied to the input images, before the model's resize
    and crop: a centre crop of an odd margin is itself not symmetric, so even
    a ``symmetry="d4"`` model is exactly invariant only when no such crop is
    applied.
    """
    cols, _ = _stability(model, X, noise_dn, seed, batch_size, chunk_size)
    return _galaxy_table(cols, X, noise_dn, seed)


def _galaxy_table(cols, X, noise_dn, seed):
    """The table of `activation_stability` from the per-galaxy columns of `_stability`."""
    from astropy.table import Table

    table = Table(meta=_meta(noise_dn, seed))
    catalog = getattr(X, "catalog", None)
    n = len(cols["n_active"])
    id_col = id_column_of(X)
    if catalog is not None and id_col in catalog.colnames and len(catalog) == n:
        table[id_col] = id_values(catalog[id_col])
    for name, values in cols.items():
        table[name] = values
    table["n_active"].description = "features active on the original image"
    table["same_set_dihedral"].description = "same active set for all 8 dihedral transforms"
    table["jaccard_dihedral"].description = "mean Jaccard similarity over the 7 other transforms"
    table["same_set_noise"].description = f"same active set with +-{noise_dn} DN pixel noise"
    table["jaccard_noise"].description = f"Jaccard similarity with +-{noise_dn} DN pixel noise"
    return table


def feature_stability(model, X, *, noise_dn=1, seed=0, batch_size=None, chunk_size=512,
                      include_inactive=False):
    """How often each feature stays on when its galaxy is rotated, flipped or made noisy.

    Parameters
    ----------
    model, X, noise_dn, seed, batch_size, chunk_size
        As in `activation_stability`.
    include_inactive : bool
        Also list features never active on the original images (with NaN rates).

    Returns
    -------
    astropy.table.Table
        One row per feature, most often active first: ``feature``,
        ``n_active`` (galaxies where it is active on the original image),
        ``stay_dihedral`` (fraction of those galaxies × 7 other dihedral
        transforms where it is still active) and ``stay_noise`` (fraction of
        those galaxies where it is still active with pixel noise).
    """
    _, counts = _stability(model, X, noise_dn, seed, batch_size, chunk_size)
    return _feature_table(counts, noise_dn, seed, include_inactive)


def _feature_table(counts, noise_dn, seed, include_inactive=False):
    """The table of `feature_stability` from the per-feature counts of `_stability`."""
    from astropy.table import Table

    on = counts["on"]
    features = np.arange(len(on)) if include_inactive else np.flatnonzero(on > 0)
    with np.errstate(invalid="ignore", divide="ignore"):
        stay_d4 = counts["stay_d4"][features] / (7.0 * on[features])
        stay_noise = counts["stay_noise"][features] / on[features].astype(float)
    table = Table({"feature": features, "n_active": on[features],
                   "stay_dihedral": np.where(on[features] > 0, stay_d4, np.nan),
                   "stay_noise": np.where(on[features] > 0, stay_noise, np.nan)},
                  meta=_meta(noise_dn, seed))
    order = np.lexsort((table["feature"], -table["n_active"]))
    return table[order]


def stability_tables(model, X, *, noise_dn=1, seed=0, batch_size=None, chunk_size=512):
    """`activation_stability` and `feature_stability` from one set of passes (9 per galaxy).

    Returns
    -------
    per_galaxy, per_feature : astropy.table.Table
        Exactly what the two functions return for the same arguments.
    """
    cols, counts = _stability(model, X, noise_dn, seed, batch_size, chunk_size)
    return _galaxy_table(cols, X, noise_dn, seed), _feature_table(counts, noise_dn, seed)
