"""Vectorised rendering of mock galaxy cutouts (private).

A block of galaxies is rendered at once with numpy broadcasting: Sersic
bulge (n = 4) and exponential disk (n = 1, larger in g and smaller in i by the
galaxy's colour gradient, ``gradient`` of
`~sfnet.datasets._mockphysics.draw_candidates`) sampled on the pixel grid,
star-forming clumps and stars
splatted as points, all convolved with a Gaussian PSF in Fourier space; then
sky noise of SDSS depth and the Lupton et al. (2004) asinh colour composite of
SDSS JPEGs (`astropy.visualization.make_lupton_rgb`, i, r, g -> R, G, B).

Image values are kept in nanomaggies per native SDSS pixel (0.396 arcsec), i.e.
surface brightness, so the composite looks the same at every pixel scale.
"""

import numpy as np

from ._mockphysics import ARM_SHARE, sersic_b

#: Native SDSS pixel (arcsec).
SDSS_PIXEL = 0.396
#: Sky noise per native SDSS pixel in g, r, i (nanomaggies): SDSS single-epoch depth
#: (5 sigma point sources at r ~ 22.5).
SKY_SIGMA = np.array([0.018, 0.027, 0.040])
#: Relative seeing in g, r, i (the PSF is slightly broader in bluer bands).
SEEING_BAND = np.array([1.05, 1.0, 0.96])
#: Lupton composite: band weights (i, r, g) and asinh parameters, tuned so the
#: images resemble SDSS DR colour cutouts.
LUPTON_SCALES = (1.0, 1.3, 2.6)
LUPTON_STRETCH = 0.3
LUPTON_Q = 6.0
#: Intrinsic size of star-forming clumps (kpc, Gaussian sigma).
CLUMP_SIGMA_KPC = 0.25

_B1 = np.float32(sersic_b(1.0))
_B4 = np.float32(sersic_b(4.0))


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


def render_block(p, idx, image_size, pixel_scale, rng):
    """Render galaxies ``idx`` of the population dict ``p`` as uint8 RGB cutouts.

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
        Source of the pixel noise.

    Returns
    -------
    ndarray, shape (len(idx), image_size, image_size, 3), uint8
    """
    from astropy.visualization import make_lupton_rgb

    g = {k: v[idx] for k, v in p.items() if isinstance(v, np.ndarray)}
    b = len(idx)
    s = image_size
    sigma_px = g["fwhm"] / 2.3548 / pixel_scale                   # PSF sigma (px)
    pad = int(np.ceil(4 * sigma_px.max() * SEEING_BAND.max())) + 2
    n = s + 2 * pad
    coord = ((np.arange(n) - (n - 1) / 2.0) * pixel_scale).astype(np.float32)
    soft = 0.5 * pixel_scale
    # sub-pixel centring of the target as in SDSS cutouts centred on (ra, dec)
    cx = np.zeros(b, dtype=np.float32)
    cy = np.zeros(b, dtype=np.float32)

    bands = np.zeros((b, 3, n, n), dtype=np.float32)
    # --- disk: exponential, band-dependent scale length (colour gradient) ------
    u, v = _plane(coord, coord, cx, cy, g["pa"], g["q_disk"])
    r_d = np.sqrt(u * u + v * v + np.float32(soft * soft))
    band_scale = 1.0 + g["gradient"][None, :] * np.array([1.0, 0.0, -0.5])[:, None]
    for k, band in enumerate("gri"):
        re = (g["theta_d"] * band_scale[k]).astype(np.float32)[:, None, None]
        prof = _normalise(np.exp(-_B1 * r_d / re))
        bands[:, k] += prof * g[f"flux_disk_{band}"].astype(np.float32)[:, None, None]
    # --- two blue logarithmic spiral arms (young stars) --------------------------
    sf = np.flatnonzero(g["clump_frac"] > 1e-3)
    if sf.size:
        re = g["theta_d"][sf].astype(np.float32)[:, None, None]
        rr = r_d[sf] / re
        psi = 2.0 * (np.arctan2(v[sf], u[sf]) - np.log(rr) / np.tan(
            g["arm_pitch"][sf]).astype(np.float32)[:, None, None]
            - g["arm_phase"][sf].astype(np.float32)[:, None, None])
        wave = 0.5 + 0.5 * np.cos(psi)
        arm = np.exp(-_B1 * rr) * (wave * wave * wave) * (1 - np.exp(-6.25 * rr * rr))
        arm = _normalise(arm)
        for k, band in enumerate("gri"):
            f = (ARM_SHARE * g[f"flux_clump_{band}"][sf]).astype(np.float32)
            bands[sf, k] += arm * f[:, None, None]
        del rr, psi, arm
    del r_d, u, v
    # --- bulge: de Vaucouleurs --------------------------------------------------
    r_b = _radius(coord, coord, cx, cy, g["pa_bulge"], g["q_bulge"], soft)
    re = g["theta_b"].astype(np.float32)[:, None, None]
    prof = _normalise(np.exp(-_B4 * np.sqrt(np.sqrt(r_b / re))))
    for k, band in enumerate("gri"):
        bands[:, k] += prof * g[f"flux_bulge_{band}"].astype(np.float32)[:, None, None]
    del r_b, prof
    fov = s * pixel_scale
    # --- neighbouring galaxy ------------------------------------------------------
    nb = np.flatnonzero(g["has_nb"])
    if nb.size:
        pos = g["nb_pos"][nb] * fov
        r_n = _radius(coord, coord, pos[:, 0].astype(np.float32), pos[:, 1].astype(np.float32),
                      g["nb_pa"][nb], g["nb_q"][nb], soft)
        nser = g["nb_n"][nb][:, None, None]
        bn = sersic_b(nser).astype(np.float32)
        rel = r_n / g["nb_re"][nb].astype(np.float32)[:, None, None]
        prof = _normalise(np.exp(-bn * rel ** (1.0 / nser).astype(np.float32)))
        fr = 10 ** (-0.4 * (g["nb_r"][nb] - 22.5))
        gr = g["nb_gr"][nb]
        ri = 0.1 + 0.4 * gr
        for k, f in enumerate((fr * 10 ** (-0.4 * gr), fr, fr * 10 ** (0.4 * ri))):
            bands[nb, k] += (prof * f[:, None, None]).astype(np.float32)
        del r_n, prof
    # --- stars (point sources) ----------------------------------------------------
    to_px = lambda a: a / pixel_scale + (n - 1) / 2.0   # noqa: E731
    st = g["has_star"]
    if st.any():
        fr = np.where(st, 10 ** (-0.4 * (g["st_r"] - 22.5)), 0.0)
        gr = g["st_gr"]
        ri = np.clip(0.45 * gr - 0.1, -0.1, 1.5)
        spx = to_px(g["st_pos"][:, :1] * fov)
        spy = to_px(g["st_pos"][:, 1:] * fov)
        for k, f in enumerate((fr * 10 ** (-0.4 * gr), fr, fr * 10 ** (0.4 * ri))):
            _splat(bands[:, k], spx, spy, f[:, None].astype(np.float32))
    # --- star-forming clumps (points in the disk plane, common colour) -----------
    clumps = np.zeros((b, n, n), dtype=np.float32)
    rad = g["clump_r"] * g["theta_d"][:, None]
    xd = rad * np.cos(g["clump_phi"])
    yd = rad * np.sin(g["clump_phi"]) * g["q_disk"][:, None]
    c, sn = np.cos(g["pa"])[:, None], np.sin(g["pa"])[:, None]
    _splat(clumps, to_px(xd * c - yd * sn), to_px(xd * sn + yd * c),
           g["clump_w"].astype(np.float32))
    clump_flux = (1 - ARM_SHARE) * np.stack([g[f"flux_clump_{band}"] for band in "gri"], axis=1)
    kpc_to_arcsec = g["theta_d"] / g["re_disk"]
    clump_sigma_px = CLUMP_SIGMA_KPC * kpc_to_arcsec / pixel_scale

    # --- PSF convolution in Fourier space -----------------------------------------
    from scipy import fft

    ky = np.fft.fftfreq(n).astype(np.float32)[:, None]
    kx = np.fft.rfftfreq(n).astype(np.float32)[None, :]
    k2 = (ky * ky + kx * kx)[None]
    fb = fft.rfft2(bands, axes=(-2, -1))
    fc = fft.rfft2(clumps, axes=(-2, -1))
    two_pi2 = np.float32(2 * np.pi ** 2)
    t_clump = np.exp(-two_pi2 * (clump_sigma_px.astype(np.float32) ** 2)[:, None, None] * k2)
    fc *= t_clump
    for k in range(3):
        sig2 = ((sigma_px * SEEING_BAND[k]) ** 2).astype(np.float32)[:, None, None]
        fb[:, k] += fc * clump_flux[:, k].astype(np.float32)[:, None, None]
        fb[:, k] *= np.exp(-two_pi2 * sig2 * k2)
    del fc, t_clump
    # --- sky noise at SDSS depth ----------------------------------------------------
    # in nanomaggies per native pixel; coarser pixels average native ones, finer
    # pixels (resampled SDSS images) carry correlated noise of the native level
    to_native = np.float32((SDSS_PIXEL / pixel_scale) ** 2)
    if pixel_scale < SDSS_PIXEL:
        sig_k = 0.5 * SDSS_PIXEL / pixel_scale
        white = rng.standard_normal((b, 3, n, n), dtype=np.float32)
        kern = np.exp(-two_pi2 * np.float32(sig_k ** 2) * k2) * np.float32(
            np.sqrt(4 * np.pi) * sig_k)
        noise_f = fft.rfft2(white, axes=(-2, -1)) * kern[:, None]
        fb += noise_f * (SKY_SIGMA.astype(np.float32)[None, :, None, None] / to_native)
        img = fft.irfft2(fb, s=(n, n), axes=(-2, -1))[:, :, pad:pad + s, pad:pad + s]
        img *= to_native
    else:
        img = fft.irfft2(fb, s=(n, n), axes=(-2, -1))[:, :, pad:pad + s, pad:pad + s]
        img *= to_native
        noise = rng.standard_normal((b, 3, s, s), dtype=np.float32)
        noise *= (SKY_SIGMA * SDSS_PIXEL / pixel_scale).astype(np.float32)[None, :, None, None]
        img += noise
    # --- Lupton et al. (2004) composite, i r g -> R G B -------------------------------
    si, sr, sg = LUPTON_SCALES
    tall = lambda a: a.reshape(b * s, s)    # noqa: E731  (the mapping is pixelwise)
    with np.errstate(divide="ignore", invalid="ignore"):   # 0/0 where the intensity is 0
        rgb = make_lupton_rgb(tall(img[:, 2] * si), tall(img[:, 1] * sr),
                              tall(img[:, 0] * sg), stretch=LUPTON_STRETCH, Q=LUPTON_Q)
    return rgb.reshape(b, s, s, 3)
