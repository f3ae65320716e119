"""Turn multi-band flux images into 8-bit colour images for display or for an RGB model.

`to_rgb` maps float images ``(N, H, W, C)`` -- e.g. FITS cutouts in
nanomaggies, or `~sfnet.datasets.make_mock_galaxies` with
``image_format="flux"`` -- to ``uint8`` ``(N, H, W, 3)`` images with
`astropy.visualization`: the Lupton et al. (2004) asinh colour composite
(`~astropy.visualization.make_lupton_rgb`, as SDSS's own colour images) or an
asinh stretch of each band between two fixed limits
(`~astropy.visualization.AsinhStretch` after a
`~astropy.visualization.ManualInterval`).  The same mapping is applied to every
galaxy (no per-cutout normalisation), so brightness and colour stay comparable
between galaxies, as in the paper's Legacy Survey JPEGs.

Which three channels become red, green and blue is chosen by ``bands``; by
default the channels are taken to be ordered from blue to red (``"gri"``,
``"grz"``, ``"ugriz"``), so the reddest of the three goes to red.
"""

import numpy as np

__all__ = ["to_rgb", "STRETCHES"]

#: The stretches `to_rgb` offers.
STRETCHES = ("lupton", "asinh")


def to_rgb(images, stretch="lupton", bands=None, *, band_names=None, **kwargs):
    """Map flux images to 8-bit RGB images with a fixed, astropy-made stretch.

    Parameters
    ----------
    images : array-like, shape (N, H, W, C), or `~sfnet.GalaxySample`
        Float (fluxes) or uint8 images, channels last, C >= 1 (a sample's
        images are read whole).
    stretch : {"lupton", "asinh"}
        ``"lupton"``: `~astropy.visualization.make_lupton_rgb` on the three
        chosen bands (keywords ``minimum`` (default 0), ``beta`` (default 0.5;
        astropy's ``stretch``, the linear range, in the units of the images)
        and ``Q`` (default 8); the defaults suit nanomaggies).
        ``"asinh"``: each chosen band through
        ``AsinhStretch(a)`` after ``ManualInterval(vmin, vmax)`` (keywords
        ``a`` (default 0.1), ``vmin`` and ``vmax``; by default the 0.5th and
        99.5th percentiles of all chosen bands of all images, computed once).
    bands : str or sequence of 3 int, optional
        The channels shown as (red, green, blue), as channel indices; or, with
        ``band_names``, a string of three band letters written blue to red as
        astronomers do (``"gri"``: red = i, green = r, blue = g).  Default: for
        C = 1 the one channel in all three (a grey image); for C = 3 channels
        (2, 1, 0); for C = 5 (``ugriz``) channels (3, 2, 1), i.e. i, r, g; for
        C = 4 channels (2, 1, 0) (``griz`` -> i, r, g); other C need ``bands``.
    band_names : str, optional
        One letter per channel, e.g. ``"ugriz"``, to name ``bands`` by letter.
    **kwargs
        The stretch's parameters, listed above.

    Returns
    -------
    numpy.ndarray, shape (N, H, W, 3), dtype uint8

    Raises
    ------
    ValueError
        Unknown stretch or keyword, bad shape, bands that do not exist, or a
        channel count without a default choice.

    Examples
    --------
    >>> import numpy as np
    >>> from sfnet.datasets import to_rgb
    >>> flux = np.random.default_rng(0).lognormal(size=(2, 8, 8, 5)).astype(np.float32)
    >>> rgb = to_rgb(flux, bands="gri", band_names="ugriz")
    >>> rgb.shape, rgb.dtype
    ((2, 8, 8, 3), dtype('uint8'))
    >>> grey = to_rgb(flux[..., :1], stretch="asinh")
    >>> bool((grey[..., 0] == grey[..., 2]).all())
    True
    """
    if hasattr(images, "read_images") and hasattr(images, "catalog"):
        images = images.read_images()
    images = np.asarray(images)
    if images.ndim != 4 or images.shape[-1] < 1:
        raise ValueError(f"images must have shape (N, H, W, C), got shape {images.shape}")
    if stretch not in STRETCHES:
        raise ValueError(f"stretch must be one of {STRETCHES}, got {stretch!r}")
    chans = _channels(images.shape[-1], bands, band_names)
    data = images[..., list(chans)].astype(np.float64)
    if stretch == "lupton":
        return _lupton(data, **kwargs)
    return _asinh(data, **kwargs)


def _channels(c, bands, band_names):
    """The (red, green, blue) channel indices."""
    if bands is None:
        defaults = {1: (0, 0, 0), 3: (2, 1, 0), 4: (2, 1, 0), 5: (3, 2, 1)}
        if c not in defaults:
            raise ValueError(f"images have {c} channels; pass bands= (three channel indices "
                             "as red, green, blue)")
        return defaults[c]
    if isinstance(bands, str):
        if band_names is None:
            raise ValueError("bands given as letters need band_names (e.g. 'ugriz')")
        if not isinstance(band_names, str) or len(band_names) != c:
            raise ValueError(f"band_names must have one letter per channel ({c}), got "
                             f"{band_names!r}")
        if len(bands) != 3 or any(b not in band_names for b in bands):
            raise ValueError(f"bands must be three letters of band_names={band_names!r} "
                             f"(blue to red), got {bands!r}")
        blue, green, red = (band_names.index(b) for b in bands)
        return red, green, blue
    try:
        chans = tuple(int(b) for b in bands)
    except (TypeError, ValueError):
        raise ValueError(f"bands must be three channel indices or band letters, got "
                         f"{bands!r}") from None
    if len(chans) != 3 or any(not 0 <= b < c for b in chans):
        raise ValueError(f"bands must be three channel indices in [0, {c}), got {bands!r}")
    return chans


def _lupton(data, minimum=0.0, beta=0.5, Q=8.0):
    from astropy.visualization import make_lupton_rgb

    out = np.empty(data.shape[:3] + (3,), dtype=np.uint8)
    for i in range(data.shape[0]):
        out[i] = make_lupton_rgb(data[i, ..., 0], data[i, ..., 1], data[i, ..., 2],
                                 minimum=minimum, stretch=beta, Q=Q)
    return out


def _asinh(data, a=0.1, vmin=None, vmax=None):
    from astropy.visualization import AsinhStretch, ManualInterval

    finite = data[np.isfinite(data)]
    if vmin is None:
        vmin = float(np.percentile(finite, 0.5)) if finite.size else 0.0
    if vmax is None:
        vmax = float(np.percentile(finite, 99.5)) if finite.size else 1.0
    if not vmax > vmin:
        raise ValueError(f"vmax must be larger than vmin, got vmin={vmin}, vmax={vmax}")
    scaled = (AsinhStretch(a=a) + ManualInterval(vmin, vmax))(data, clip=True)
    return np.round(np.nan_to_num(scaled, nan=0.0) * 255).astype(np.uint8)
