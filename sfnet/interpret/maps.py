"""Where in a galaxy a feature fires: localisation maps.

A pooled SFNet feature is the spatial mean of one channel of the backbone's last
convolutional block (``layer4`` of a ResNet).  That channel map, upsampled onto
the image the network sees, shows where the feature's evidence comes from.

Why channel maps and not gradients: the top-k layer passes gradients only to
the k selected features.  For a galaxy in which a feature is *not* among its
top k, the gradient of any output with respect to that feature is exactly
zero, so gradient-based saliency (Grad-CAM, integrated gradients, ...) gives a
blank map, even though the feature's pre-top-k value may be large.  The channel
map is defined for every galaxy and averages to the pooled, pre-top-k feature,
so it shows what the feature responds to whether or not it was selected.
"""

import numpy as np

from ._core import check_feature, get_images

__all__ = ["localization_maps"]


def localization_maps(model, images, feature, *, size=None):
    """A feature's layer4 channel map, upsampled to image size.

    Parameters
    ----------
    model : SparseFeatureNet
        A fitted model (uses ``model.feature_maps`` and ``model.input_images``).
    images : GalaxySample or array-like, shape (N, H, W, 3)
        The galaxies.
    feature : int
        Feature index, ``0 <= feature < model.n_features``.
    size : int or (int, int), optional
        Output size (default: the size of ``model.input_images(images)``, i.e.
        the resized/cropped grid the network sees; use that grid, not the
        original cutout, to overlay the maps).

    Returns
    -------
    maps : ndarray, shape (N, H, W), float32
        The channel map, bilinearly upsampled (half-pixel centres, edges
        clamped).  When the image size is an integer multiple of the map size,
        ``maps.mean(axis=(1, 2))`` equals ``model.pooled_features(images)[:,
        feature]`` (the pre-top-k feature) to float32 precision; otherwise it
        agrees to within the interpolation error.  Values are in the units of
        the activations (non-negative after ReLU); they are not normalised.

    Notes
    -----
    Gradients through the top-k layer are zero for features that were not
    selected, so gradient saliency maps would be blank for exactly the galaxies
    where a feature narrowly lost out; the channel map does not have that
    problem (see the module docstring).

    Examples
    --------
    >>> from sfnet.interpret import localization_maps
    >>> maps = localization_maps(model, sample[:8], 12)           # doctest: +SKIP
    >>> maps.shape == (8,) + model.input_images(sample[:1]).shape[1:3]  # doctest: +SKIP
    True
    """
    import torch
    import torch.nn.functional as F

    n_features = getattr(model, "n_features", None)
    if n_features is None or not hasattr(model, "feature_maps"):
        raise TypeError("model must be a fitted SparseFeatureNet (with feature_maps)")
    feature = check_feature(feature, int(n_features))
    if not hasattr(images, "catalog"):
        get_images(images, "images")
    n = len(images)
    if size is None:
        if n == 0:
            return np.zeros((0, 0, 0), dtype=np.float32)
        shown = np.asarray(model.input_images(images[:1]))
        size = tuple(shown.shape[1:3])
    elif np.isscalar(size):
        size = (int(size), int(size))
    else:
        size = tuple(int(s) for s in size)
    if len(size) != 2 or min(size) < 1:
        raise ValueError(f"size must be a positive int or (height, width), got {size!r}")
    if n == 0:
        return np.zeros((0,) + size, dtype=np.float32)
    fmap = np.asarray(model.feature_maps(images, [feature]), dtype=np.float32)
    if fmap.ndim != 4 or fmap.shape[:2] != (n, 1):
        raise ValueError(f"model.feature_maps returned shape {fmap.shape}, expected "
                         f"({n}, 1, h, w)")
    with torch.no_grad():
        up = F.interpolate(torch.from_numpy(fmap), size=size, mode="bilinear",
                           align_corners=False)
    return up[:, 0].numpy().astype(np.float32)
