"""Vectorised rendering of mock galaxy cutouts (private).

A block of galaxies is rendered at once with numpy broadcasting: Sersic
bulge (n = 4) and exponential disk (n = 1, larger in g and smaller in i by the
galaxy's colour gradient, ``gradient`` of
`~sfnet.datasets._mockphysics.draw_candidates`) sampled on the pixel grid,
star-forming clumps and stars
splatted as points, all convolved with a Gaussian PSF in Fourier space; then
sky noise of SDSS depth and the Lupton et al. (2004) asinh colour composite of
SDSS JPEGs (`astropy.visualization.make_lupton_rgb`, i, r, g -> R, G, B).
Any of the SDSS bands u, g, r, i, z can be rendered (the mock's SEDs give
every component's ugriz fluxes), and the fluxes can be returned as they are
(``image_format="flux"``) instead of the composite.

Image values are kept in nanomaggies per native SDSS pixel (0.396 arcsec), i.e.
surface brightness, so the composite looks the same at every pixel scale.
The pixel noise is drawn on the cutout grid alone, independent of every
galaxy property, so an intervened block (`~sfnet.datasets.make_mock_interventions`)
carries the same noise as the original.
"""

from types import SimpleNamespace

import numpy as np

from ._mockphysics import ARM_SHARE, sersic_b

#: Native SDSS pixel (arcsec).
SDSS_PIXEL = 0.396
#: Sky noise per native SDSS pixel in g, r, i (nanomaggies): SDSS single-epoch depth
#: (5 sigma point sources at r ~ 22.5).
SKY_SIGMA = np.array([0.018, 0.027, 0.040])
#: Relative seeing in g, r, i (the PSF is slightly broader in bluer bands).
SEEING_BAND = np.array([1.05, 1.0, 0.96])
#: Per band: sky noise (nanomaggies per native pixel; u and z scaled from the
#: 5-sigma depths of `_mockphysics.DEPTH_5SIGMA` relative to g and i), relative
#: seeing, and the disk's colour gradient coefficient (scale length
#: ``theta_d * (1 + gradient * coefficient)``).
BAND_SKY = {"u": 0.022, "g": 0.018, "r": 0.027, "i": 0.040, "z": 0.083}
BAND_SEEING = {"u": 1.10, "g": 1.05, "r": 1.0, "i": 0.96, "z": 0.94}
BAND_GRADIENT = {"u": 1.5, "g": 1.0, "r": 0.0, "i": -0.5, "z": -0.8}
#: The bands the renderer knows, blue to red.
RENDER_BANDS = "ugriz"
#: Lupton composite: band weights (i, r, g) and asinh parameters, tuned so the
#: images resemble SDSS DR colour cutouts.
LUPTON_SCALES = (1.0, 1.3, 2.6)
LUPTON_STRETCH = 0.3
LUPTON_Q = 6.0
#: Intrinsic size of star-forming clumps (kpc, Gaussian sigma).
CLUMP_SIGMA_KPC = 0.25

_B1 = np.float32(sersic_b(1.0))
_B4 = np.float32(sersic_b(4.0))
_TWO_PI2 = np.float32(2 * np.pi ** 2)


def _plane(x, y, cx, cy, pa, q):
    """Coordinates (u, v) in the plane of a disk (arcsec), each of shape (B, P, P).

    ``u`` runs along the major axis (position angle ``pa`` from the x axis) and
    ``v`` along the minor axis, de-projected by the axis ratio ``q``.
    """
    dx = x[None, None, :] - cx[:, None, None]
    dy = y[None, :, None] - cy[:, None, None]
    c = np.cos(pa).astype(np.float32)[:, None, None]
    s = np.sin(pa).astype(np.float32)[:, None, None]
    return dx * c + dy * s, (dy * c - dx * s) / q.astype(np.float32)[:, None, None]


def _radius(x, y, cx, cy, pa, q, soft):
    """Elliptical radius (arcsec) on the grid for each galaxy, shape (B, P, P)."""
    u, v = _plane(x, y, cx, cy, pa, q)
    return np.sqrt(u * u + v * v + np.float32(soft * soft))


def _normalise(img):
    tot = img.sum(axis=(-2, -1), keepdims=True)
    return img / np.maximum(tot, 1e-30)


def _splat(plane, px, py, w):
    """Add point sources (pixel coordinates px, py, weights w, shape (B, K)) bilinearly."""
    if not plane.flags.c_contiguous:
        # reshape(-1) of a strided view is a copy: the points would be lost
        raise ValueError("plane: must be C-contiguous")
    b, p = plane.shape[0], plane.shape[-1]
    x0, y0 = np.floor(px), np.floor(py)
    fx, fy = px - x0, py - y0
    bi = np.broadcast_to(np.arange(b)[:, None], px.shape)
    flat = plane.reshape(-1)
    for ox, oy, ww in ((0, 0, (1 - fx) * (1 - fy)), (1, 0, fx * (1 - fy)),
                       (0, 1, (1 - fx) * fy), (1, 1, fx * fy)):
        xi, yi = x0.astype(np.int64) + ox, y0.astype(np.int64) + oy
        ok = (xi >= 0) & (xi < p) & (yi >= 0) & (yi < p) & (w != 0)
        np.add.at(flat, (bi[ok] * p + yi[ok]) * p + xi[ok], (w * ww)[ok])


def render_block(p, idx, image_size, pixel_scale, rng, *, pad_fwhm=0.0, bands="gri",
                 image_format="rgb"):
    """Render galaxies ``idx`` of the population dict ``p`` as uint8 RGB cutouts (or fluxes).

    Parameters
    ----------
    p : dict of ndarray
        Output of `~sfnet.datasets._mockphysics.draw_candidates` restricted to
        the selected galaxies.
    idx : ndarray of int
        Galaxies to render.
    image_size : int
        Cutout side in pixels.
    pixel_scale : float
        Arcsec per pixel.
    rng : numpy.random.Generator
        Source of the pixel noise.  The noise is drawn on the cutout's own grid
        (``len(idx)`` x 3 x ``image_size`` x ``image_size`` numbers, whatever
        the galaxies), so the same ``rng`` state gives the same noise whatever
        the galaxies' properties.
    pad_fwhm : float, optional
        The FFT grid is padded for at least this PSF FWHM (arcsec), besides the
        block's largest; lets an intervened block use the grid of the original.
    bands : str, optional
        Letters of `RENDER_BANDS`, the channels in this order.
    image_format : {"rgb", "flux"}, optional
        ``"rgb"``: the Lupton composite of the three bands, reddest -> R.
        ``"flux"``: the sky-subtracted fluxes with noise, float32 nanomaggies
        per cutout pixel, one channel per band.

    Returns
    -------
    ndarray, shape (len(idx), image_size, image_size, 3) uint8, or (..., len(bands)) float32
    """
    g = {k: v[idx] for k, v in p.items() if isinstance(v, np.ndarray)}
    grid = _padded_grid(g, len(idx), image_size, pixel_scale, pad_fwhm, bands)
    bands = np.zeros((grid.b, len(grid.bands), grid.n, grid.n), dtype=np.float32)
    u, v, r_d = _add_disk(bands, g, grid)
    _add_arms(bands, g, u, v, r_d, grid.bands)
    del r_d, u, v
    _add_bulge(bands, g, grid)
    _add_neighbour(bands, g, grid)
    _add_stars(bands, g, grid)
    clumps = _clump_plane(g, grid)
    fb = _convolve_psf(bands, clumps, g, grid)
    img = _add_sky(fb, grid, rng)
    if image_format == "flux":
        per_pixel = np.float32((grid.pixel_scale / SDSS_PIXEL) ** 2)
        return np.ascontiguousarray(np.moveaxis(img * per_pixel, 1, -1), dtype=np.float32)
    return _lupton_composite(img, grid)


def _padded_grid(g, b, s, pixel_scale, pad_fwhm=0.0, bands="gri"):
    """The pixel grid of a block: ``s`` pixels padded against the wrap-around of the FFT."""
    sigma_px = g["fwhm"] / 2.3548 / pixel_scale                   # PSF sigma (px)
    pad_sigma = max(sigma_px.max(), pad_fwhm / 2.3548 / pixel_scale)
    pad = int(np.ceil(4 * pad_sigma * max(BAND_SEEING[band] for band in bands))) + 2
    n = s + 2 * pad
    return SimpleNamespace(
        b=b, s=s, n=n, pad=pad, pixel_scale=pixel_scale, sigma_px=sigma_px, bands=bands,
        coord=((np.arange(n) - (n - 1) / 2.0) * pixel_scale).astype(np.float32),
        soft=0.5 * pixel_scale, fov=s * pixel_scale,
        # sub-pixel centring of the target as in SDSS cutouts centred on (ra, dec)
        cx=np.zeros(b, dtype=np.float32), cy=np.zeros(b, dtype=np.float32))


def _to_px(a, grid):
    """Pixel coordinate on the padded grid of a position in arcsec from the centre."""
    return a / grid.pixel_scale + (grid.n - 1) / 2.0


def _add_disk(bands, g, grid):
    """Exponential disk with a band-dependent scale length (colour gradient).

    Returns the disk-plane coordinates ``u``, ``v`` and the radius, for the arms.
    """
    u, v = _plane(grid.coord, grid.coord, grid.cx, grid.cy, g["pa"], g["q_disk"])
    r_d = np.sqrt(u * u + v * v + np.float32(grid.soft * grid.soft))
    coef = np.array([BAND_GRADIENT[b] for b in grid.bands])
    band_scale = 1.0 + g["gradient"][None, :] * coef[:, None]
    for k, band in enumerate(grid.bands):
        re = (g["theta_d"] * band_scale[k]).astype(np.float32)[:, None, None]
        prof = _normalise(np.exp(-_B1 * r_d / re))
        bands[:, k] += prof * g[f"flux_disk_{band}"].astype(np.float32)[:, None, None]
    return u, v, r_d


def _add_arms(bands, g, u, v, r_d, g_bands="gri"):
    """Two blue logarithmic spiral arms (young stars) in the disk plane."""
    sf = np.flatnonzero(g["clump_frac"] > 1e-3)
    if not sf.size:
        return
    re = g["theta_d"][sf].astype(np.float32)[:, None, None]
    rr = r_d[sf] / re
    psi = 2.0 * (np.arctan2(v[sf], u[sf]) - np.log(rr) / np.tan(
        g["arm_pitch"][sf]).astype(np.float32)[:, None, None]
        - g["arm_phase"][sf].astype(np.float32)[:, None, None])
    wave = 0.5 + 0.5 * np.cos(psi)
    arm = np.exp(-_B1 * rr) * (wave * wave * wave) * (1 - np.exp(-6.25 * rr * rr))
    arm = _normalise(arm)
    for k, band in enumerate(g_bands):
        f = (ARM_SHARE * g[f"flux_clump_{band}"][sf]).astype(np.float32)
        bands[sf, k] += arm * f[:, None, None]


def _add_bulge(bands, g, grid):
    """De Vaucouleurs bulge."""
    r_b = _radius(grid.coord, grid.coord, grid.cx, grid.cy, g["pa_bulge"], g["q_bulge"],
                  grid.soft)
    re = g["theta_b"].astype(np.float32)[:, None, None]
    prof = _normalise(np.exp(-_B4 * np.sqrt(np.sqrt(r_b / re))))
    for k, band in enumerate(grid.bands):
        bands[:, k] += prof * g[f"flux_bulge_{band}"].astype(np.float32)[:, None, None]


def _add_neighbour(bands, g, grid):
    """A Sersic neighbouring galaxy in the cutouts that have one."""
    nb = np.flatnonzero(g["has_nb"])
    if not nb.size:
        return
    pos = g["nb_pos"][nb] * grid.fov
    r_n = _radius(grid.coord, grid.coord, pos[:, 0].astype(np.float32),
                  pos[:, 1].astype(np.float32), g["nb_pa"][nb], g["nb_q"][nb], grid.soft)
    nser = g["nb_n"][nb][:, None, None]
    bn = sersic_b(nser).astype(np.float32)
    rel = r_n / g["nb_re"][nb].astype(np.float32)[:, None, None]
    prof = _normalise(np.exp(-bn * rel ** (1.0 / nser).astype(np.float32)))
    fr = 10 ** (-0.4 * (g["nb_r"][nb] - 22.5))
    gr = g["nb_gr"][nb]
    ri = 0.1 + 0.4 * gr
    for k, f in enumerate(_point_fluxes(fr, gr, ri, grid.bands)):
        bands[nb, k] += (prof * f[:, None, None]).astype(np.float32)


def _add_stars(bands, g, grid):
    """Stars (point sources) in the cutouts that have one."""
    st = g["has_star"]
    if not st.any():
        return
    fr = np.where(st, 10 ** (-0.4 * (g["st_r"] - 22.5)), 0.0)
    gr = g["st_gr"]
    ri = np.clip(0.45 * gr - 0.1, -0.1, 1.5)
    spx = _to_px(g["st_pos"][:, :1] * grid.fov, grid)
    spy = _to_px(g["st_pos"][:, 1:] * grid.fov, grid)
    for k, f in enumerate(_point_fluxes(fr, gr, ri, grid.bands)):
        plane = np.zeros(bands.shape[:1] + bands.shape[2:], dtype=np.float32)
        _splat(plane, spx, spy, f[:, None].astype(np.float32))
        bands[:, k] += plane


def _clump_plane(g, grid):
    """Star-forming clumps as points in the disk plane, of unit total weight (one colour)."""
    clumps = np.zeros((grid.b, grid.n, grid.n), dtype=np.float32)
    rad = g["clump_r"] * g["theta_d"][:, None]
    xd = rad * np.cos(g["clump_phi"])
    yd = rad * np.sin(g["clump_phi"]) * g["q_disk"][:, None]
    c, sn = np.cos(g["pa"])[:, None], np.sin(g["pa"])[:, None]
    _splat(clumps, _to_px(xd * c - yd * sn, grid), _to_px(xd * sn + yd * c, grid),
           g["clump_w"].astype(np.float32))
    return clumps


def _convolve_psf(bands, clumps, g, grid):
    """Fourier transforms of the bands, clumps added and all convolved with the PSF.

    The clumps get their intrinsic size (`CLUMP_SIGMA_KPC`) and colour first.
    Returns the transforms.
    """
    from scipy import fft

    clump_flux = (1 - ARM_SHARE) * np.stack([g[f"flux_clump_{band}"] for band in grid.bands],
                                            axis=1)
    kpc_to_arcsec = g["theta_d"] / g["re_disk"]
    clump_sigma_px = CLUMP_SIGMA_KPC * kpc_to_arcsec / grid.pixel_scale
    n = grid.n
    ky = np.fft.fftfreq(n).astype(np.float32)[:, None]
    kx = np.fft.rfftfreq(n).astype(np.float32)[None, :]
    k2 = (ky * ky + kx * kx)[None]
    fb = fft.rfft2(bands, axes=(-2, -1))
    fc = fft.rfft2(clumps, axes=(-2, -1))
    fc *= np.exp(-_TWO_PI2 * (clump_sigma_px.astype(np.float32) ** 2)[:, None, None] * k2)
    for k, band in enumerate(grid.bands):
        sig2 = ((grid.sigma_px * BAND_SEEING[band]) ** 2).astype(np.float32)[:, None, None]
        fb[:, k] += fc * clump_flux[:, k].astype(np.float32)[:, None, None]
        fb[:, k] *= np.exp(-_TWO_PI2 * sig2 * k2)
    return fb


def _add_sky(fb, grid, rng):
    """Back to pixels, cropped to the cutout, with sky noise at SDSS depth.

    The noise is in nanomaggies per native pixel; coarser pixels average native
    ones, finer pixels (resampled SDSS images) carry correlated noise of the
    native level: white noise on the cutout grid (plus a margin that depends on
    the pixel scale only) smoothed by a Gaussian of 0.5 native pixels.
    """
    from scipy import fft

    b, s, n, pad, pixel_scale = grid.b, grid.s, grid.n, grid.pad, grid.pixel_scale
    to_native = np.float32((SDSS_PIXEL / pixel_scale) ** 2)
    img = fft.irfft2(fb, s=(n, n), axes=(-2, -1))[:, :, pad:pad + s, pad:pad + s]
    img *= to_native
    sky_sigma = np.array([BAND_SKY[band] for band in grid.bands])
    nb = len(grid.bands)
    sky = sky_sigma.astype(np.float32)[None, :, None, None]
    if pixel_scale < SDSS_PIXEL:
        sig_k = 0.5 * SDSS_PIXEL / pixel_scale
        margin = int(np.ceil(4 * sig_k)) + 1
        m = s + 2 * margin
        white = rng.standard_normal((b, nb, m, m), dtype=np.float32)
        k2 = (np.fft.fftfreq(m).astype(np.float32)[:, None] ** 2
              + np.fft.rfftfreq(m).astype(np.float32)[None, :] ** 2)
        kern = np.exp(-_TWO_PI2 * np.float32(sig_k ** 2) * k2) * np.float32(
            np.sqrt(4 * np.pi) * sig_k)
        noise = fft.irfft2(fft.rfft2(white, axes=(-2, -1)) * kern, s=(m, m), axes=(-2, -1))
        img += noise[:, :, margin:margin + s, margin:margin + s] * sky
    else:
        noise = rng.standard_normal((b, nb, s, s), dtype=np.float32)
        noise *= (sky_sigma * SDSS_PIXEL / pixel_scale).astype(np.float32)[None, :, None, None]
        img += noise
    return img


def _point_fluxes(fr, gr, ri, bands):
    """Fluxes of a neighbour or star in ``bands`` from its r flux and g-r, r-i colours.

    u and z follow typical colours: u - g = 1 + g - r, i - z = 0.1 + (r - i) / 2.
    """
    mag_minus_r = {"u": gr + 1.0 + gr, "g": gr, "r": None, "i": -ri,
                   "z": -ri - (0.1 + 0.5 * ri)}
    out = []
    for band in bands:
        if band == "r":
            out.append(fr)
        elif band == "g":
            out.append(fr * 10 ** (-0.4 * gr))
        elif band == "i":
            out.append(fr * 10 ** (0.4 * ri))
        else:
            out.append(fr * 10 ** (-0.4 * mag_minus_r[band]))
    return out


def _lupton_composite(img, grid):
    """Lupton et al. (2004) composite, i r g -> R G B, as uint8 of shape (B, s, s, 3).

    Other three bands map the same way, reddest -> R (``grz``: z, r, g)."""
    from astropy.visualization import make_lupton_rgb

    b, s = grid.b, grid.s
    si, sr, sg = LUPTON_SCALES
    tall = lambda a: a.reshape(b * s, s)    # noqa: E731  (the mapping is pixelwise)
    with np.errstate(divide="ignore", invalid="ignore"):   # 0/0 where the intensity is 0
        rgb = make_lupton_rgb(tall(img[:, 2] * si), tall(img[:, 1] * sr),
                              tall(img[:, 0] * sg), stretch=LUPTON_STRETCH, Q=LUPTON_Q)
    return rgb.reshape(b, s, s, 3)
