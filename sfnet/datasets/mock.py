"""An SDSS-like mock of main-sample galaxies: colour cutouts plus an MPA-JHU-style catalog.

`make_mock_galaxies` is the embedded default data of sfnet (no network needed).
The catalog has the column names, units and missing-value conventions of the
real SkyServer/MPA-JHU query (see `~sfnet.datasets.fetch_sdss_sample`), so
every downstream code path is the real one, plus ``mock_*`` columns with the
latent truth.

How the mock is built
---------------------
*Population* (`sfnet.datasets._mockphysics`): redshifts uniform in comoving
volume for 0.02 < z < 0.2 with Planck18 distances; stellar masses from the
Baldry et al. (2012) mass function; a quenched population whose fraction rises
with mass (Peng et al. 2010); star-forming galaxies on the Speagle et al.
(2014) main sequence (0.3 dex scatter).  Galaxies are drawn until ``n`` pass
the SDSS main-sample selection (Strauss et al. 2002): 14.5 < petroMag_r <
17.77 and mu_50 < 24.5 mag/arcsec^2.

*Metallicity*: ``12 + log(O/H) = T04(mu) + v + h`` with ``T04`` the Tremonti
et al. (2004) relation, ``mu = log M* - 0.32 (log SFR - log SFR_MS) - 1.5
dlogR`` the Mannucci et al. (2010) fundamental-metallicity mass (taken
relative to the main sequence) with a compactness term (``dlogR``, the offset
from the size-mass relation in dex; Ellison et al. 2008: smaller galaxies are
more metal rich at fixed mass); ``v`` (0.11 dex, ``mock_oh_visible``) an
offset at fixed mass, SFR and size that the images show better than the
catalog -- metal-rich star-forming disks have steeper colour gradients (redder
centres, bluer outskirts: only the pixels show them) and redder stellar
populations (which redden the integrated colours and, through the
colour-based mass-to-light ratio at fixed mass, make the galaxy fainter: the
photometry sees that, mixed with dust, inclination, bulge light and
redshift); and ``h`` (``metallicity_scatter``, 0.08 dex, ``mock_oh_hidden``)
the hidden term: intrinsic scatter plus the measurement error of ``oh_p50``.
``h`` is drawn last and added to ``oh_p50`` only: it is independent of the
images, the photometry, the emission lines and of which galaxies are selected,
so ``catalog.meta["oracle_rmse"]`` -- its root mean square over the galaxies
passing the ``"metallicity"`` cuts (`oracle_rmse`) -- is a strict floor: no
image- or photometry-based method can do better on average (it is a lower
bound, not a reachable RMSE).  The emission lines (hence the selection) and
the dust follow ``T04(mu)`` only -- unlike real MPA-JHU, whose ``oh_p50`` is
fitted from the lines; see ``docs/mock.rst`` for what that means on the BPT
diagram.  With these choices the metallicity sample has sigma(12 + log O/H)
~ 0.21 dex, like the paper's 0.207 (see ``docs/mock.rst`` for the
calibration and what it means).

*Measured quantities* (``_measurements``): ``lgm_tot_p50`` and ``sfr_tot_p50``
are the truth (``mock_logm``, ``mock_logsfr``) plus MPA-JHU-like Gaussian
errors in dex (~0.09 in mass; ~0.3 in SFR on the main sequence, up to 0.75
for passive galaxies), whose widths give ``*_p16`` / ``*_p84``; ``oh_p16`` /
``oh_p84`` give the width of the measurement error of ``oh_p50``, which is
part of ``h`` (the truth ``mock_oh_true`` is ``oh_p50`` minus that error).

*Photometry*: ugriz ``modelMag`` (the total light of the bulge, disk and
clumps, whose u - g and i - z follow their g - r along the galaxy locus of
Strateva et al. 2001, with SDSS photometric errors), ``petroMag_r``,
``petroR50_r`` and ``petroR90_r`` from the Petrosian quantities of the
bulge + disk profile (Blanton et al. 2001) with the seeing added in
quadrature -- the catalog photometry of the rendered galaxy, with the names,
units and descriptions of `sfnet.catalog`.

*Images* (`sfnet.datasets._render`): de Vaucouleurs bulge plus exponential
disk with inclination (Hubble 1926 axis ratio, intrinsic thickness 0.15) and
position angle; sizes from the Shen et al. (2003) size-mass relations; B/T
rising with mass and quenching; star-forming clumps whose light fraction rises
with sSFR; dust (Calzetti et al. 2000) rising with the mass-SFR-size part of the
metallicity (hence with mass, as Garn & Best 2010), star formation and
inclination; colour gradients (red bulge, disks larger in g by a
metallicity-dependent amount); stellar populations whose colours follow age
(sSFR) and metallicity, with Bell et al. (2003) mass-to-light ratios and simple
k-corrections; Gaussian PSF (``psf_fwhm``, 5% scatter per galaxy); sky noise
of SDSS depth; the Lupton et al. (2004) composite of SDSS colour JPEGs
(`astropy.visualization.make_lupton_rgb` on i, r, g); a neighbouring galaxy in
30% and a star in 25% of the cutouts.  The visible metallicity offset is thus
written in the disk colour, which integrated colours mix with dust,
inclination, bulge light, clumps and redshift, and in its gradient, which
they do not see at all: a CNN can disentangle them, fits on integrated
photometry cannot (`sfnet.baselines`).

*Interventions* (`make_mock_interventions`): the same galaxies and noise with
one latent of `MOCK_LATENTS` set, the image quantities that follow from it
re-derived and the measured catalog kept.

*Emission lines* (fibre fluxes, 1e-17 erg/s/cm^2): Halpha from the SFR
(Kennicutt 1998, Kroupa IMF) times the light fraction inside the 3" fibre,
attenuated by nebular dust (Calzetti E(B-V)_gas = E(B-V)_star / 0.44; Balmer
decrement from the intrinsic 2.86); [NII]/Halpha from the metallicity
(Pettini & Pagel 2004 N2, after converting the Tremonti scale with Kewley &
Ellison 2008); [OIII]/Hbeta along the star-forming sequence below Kauffmann et
al. (2003).  AGN, more likely in massive bulge-dominated hosts, add Seyfert- or
LINER-like lines (above Kewley et al. 2001 alone, composites when mixed with
star formation); quenched galaxies have weak LINER-like emission (retired
galaxies, Cid Fernandes et al. 2011).  Errors follow sky plus continuum noise;
``bptclass`` is assigned from the noisy lines with the MPA-JHU rules
(Brinchmann et al. 2004) and ``oh_p50`` is given only for ``bptclass == 1``
(-9999 otherwise, as MPA-JHU, also in ``oh_p16`` / ``oh_p84``).  0.4% of
galaxies have failed SED fits (-9999 in ``lgm_tot_*`` and ``sfr_tot_*``).
"""


import numpy as np
from astropy import units as u
from astropy.table import Column, Table

from .._validation import check_bool, check_float, check_int
from ..catalog import COLUMNS
from . import _mockphysics as _phys
from ._render import RENDER_BANDS, render_block

__all__ = ["MOCK_LATENTS", "make_mock_galaxies", "make_mock_interventions", "oracle_rmse"]

#: Version of the generator; bump when the output for a given seed changes.
MOCK_VERSION = "3"
#: Field of view of the paper's cutouts: 160 px x 0.262 arcsec.
FIELD_OF_VIEW = 160 * 0.262
_BATCH = 16384      # candidates per draw (fixed: the sample does not depend on n)
_BLOCK = 64         # galaxies per rendering block (fixed: noise does not depend on n)
#: The latents `make_mock_interventions` can set: ``mock_*`` column names without the prefix.
MOCK_LATENTS = tuple(_phys.INTERVENTIONS)


def _sdss_ids(ints):
    """DR7-style 18-digit objIDs and specObjIDs, unique, in row order.

    ``ints`` holds one row of random integers per galaxy (see `_build_catalog`).
    objID packs (skyVersion=1, rerun, run, camcol, field, obj) and specObjID
    packs (plate, fiberID, mjd - 50000, run2d) as SkyServer does.
    """
    run, camcol, field, obj, plate, fiber = ints.T
    rerun = np.where(run > 4000, 41, 40)
    objid = ((1 << 59) | (rerun << 48) | (run << 32) | (camcol << 29)
             | (field << 16) | obj).astype(np.int64)
    mjd = 51578 + (plate - 266) * 3085 // 2709
    run2d = 26

    def _spec(fib):
        return ((plate << 50) | (fib << 38) | ((mjd - 50000) << 24) | (run2d << 10)).astype(
            np.int64)

    spec = _spec(fiber)
    # resolve the rare collisions in order (earlier rows keep their IDs)
    for ids, bump in ((objid, 1), (spec, 1 << 38)):
        seen = set()
        for i, v in enumerate(ids.tolist()):
            while v in seen:
                v += bump
            seen.add(v)
            ids[i] = v
    return objid, spec


def _footprint(u_ra, u_dec):
    """(ra, dec) uniform on the sky within the SDSS Legacy northern cap."""
    ra = 115.0 + 140.0 * u_ra
    s0, s1 = np.sin(np.radians(-3.0)), np.sin(np.radians(66.0))
    dec = np.degrees(np.arcsin(s0 + (s1 - s0) * u_dec))
    return ra, dec


def _draw_sample(seed, n, oh_scatter, psf_fwhm):
    """Draw candidate batches until ``n`` pass the selection; return the first ``n``."""
    parts, got, batch = [], 0, 0
    while got < n:
        rng = np.random.default_rng(np.random.SeedSequence(seed, spawn_key=(0, batch)))
        cand = _phys.draw_candidates(rng, _BATCH, oh_scatter=oh_scatter, psf_fwhm=psf_fwhm)
        sel = cand.pop("selected")
        parts.append({k: v[sel] for k, v in cand.items()})
        got += int(sel.sum())
        batch += 1
        if batch > 10000:  # pragma: no cover - would need an absurd n
            raise RuntimeError("the mock's selection accepts too few candidates")
    p = {k: np.concatenate([q[k] for q in parts])[:n] for k in parts[0]}
    return p, batch * _BATCH


def _build_catalog(p, seed, oh_scatter=0.08):
    """The catalog of the drawn galaxies ``p``: the real query's columns, then ``mock_*`` ones.

    Identifiers and sky positions are drawn from their own stream of ``seed``,
    the measurement errors (`_measurements`) from another.
    """
    meas = _measurements(p, seed, oh_scatter)
    t = Table()
    for name, data in _query_columns(p, seed, meas).items():
        # names, units and descriptions of the real query: the one schema, sfnet.catalog
        schema = COLUMNS[name]
        t[name] = Column(data, unit=schema.unit, description=schema.description)
    for name, data, unit, desc in _latent_columns(p, meas):
        t[name] = Column(data, unit=unit, description=desc)
    return t


def _measurements(p, seed, oh_scatter):
    """MPA-JHU-like measured mass, SFR and metallicity errors of the galaxies ``p``.

    From their own stream of ``seed``, one row of draws per galaxy (so a sample
    stays a prefix of a larger one) and independent of everything else.

    * mass: Gaussian error in dex of width ``sigma_m`` ~ 0.09 dex (lognormal
      per galaxy, 0.1 dex scatter), about the half-width of MPA-JHU's
      ``lgm_tot_p84 - lgm_tot_p16``;
    * SFR: width ``0.25 + 0.5 / (1 + exp((log sSFR + 10.8) / 0.3))`` dex,
      ~0.3 on the main sequence rising to 0.75 for passive galaxies (log sSFR
      < -11: their SFR comes from D4000 in MPA-JHU), also lognormal per galaxy;
    * metallicity: width ``hypot(0.03, 0.3 / (S/N of Hbeta))``, at most 0.75
      times ``oh_scatter``.  The measurement error ``e`` is the part of the
      hidden term ``h`` that is noise: ``oh_p50 = oh_model + h`` is unchanged
      and the truth is ``oh_model + h - e``; ``e`` is drawn given ``h`` so
      that ``h - e`` and ``e`` are independent Gaussians.  The floor
      (`oracle_rmse`) stays the RMS of ``h``.
    """
    rng = np.random.default_rng(np.random.SeedSequence(seed, spawn_key=(3,)))
    n = len(p["z"])
    d = rng.standard_normal((n, 5))
    sig_m = 0.09 * 10 ** (0.1 * d[:, 0])
    log_ssfr = p["logsfr"] - p["logm"]
    sig_sfr = (0.25 + 0.5 / (1 + np.exp((log_ssfr + 10.8) / 0.3))) * 10 ** (0.1 * d[:, 2])
    with np.errstate(divide="ignore", invalid="ignore"):
        sn_hb = np.maximum(p["h_beta_flux"] / p["h_beta_flux_err"], 1.0)
    sig_oh = np.minimum(np.hypot(0.03, 0.3 / sn_hb), 0.75 * oh_scatter)
    if oh_scatter > 0:
        f = (sig_oh / oh_scatter) ** 2
        e = f * p["oh_hidden"] + sig_oh * np.sqrt(1 - f) * d[:, 4]
    else:
        e = np.zeros(n)
    return {"logm": p["logm"] + sig_m * d[:, 1], "sig_m": sig_m,
            "logsfr": p["logsfr"] + sig_sfr * d[:, 3], "sig_sfr": sig_sfr,
            "oh_err": e, "sig_oh": sig_oh}


def _query_columns(p, seed, meas):
    """Values of the real query's columns (schema in ``sfnet.catalog``), by column name."""
    # one row of random numbers per galaxy, so a sample is a prefix of a larger one
    rng = np.random.default_rng(np.random.SeedSequence(seed, spawn_key=(1,)))
    n = len(p["z"])
    ints = rng.integers([94, 1, 11, 1, 266, 1], [8163, 7, 900, 1000, 2975, 641], size=(n, 6))
    uni = rng.random((n, 3))
    objid, specobjid = _sdss_ids(ints)
    ra, dec = _footprint(uni[:, 0], uni[:, 1])
    sed_fail = uni[:, 2] < 0.004
    miss = _phys.MISSING
    has_oh = p["bpt"] == 1
    values = {
        "objID": objid, "specObjID": specobjid, "ra": ra, "dec": dec, "z": p["z"],
        "petroMag_r": p["petro_mag"], "petroR50_r": p["petro_r50"],
        "petroR90_r": p["petro_r90"],
        **{f"modelMag_{b}": p[f"model_mag_{b}"] for b in _phys.BANDS},
        "lgm_tot_p50": np.where(sed_fail, miss, meas["logm"]),
        "sfr_tot_p50": np.where(sed_fail, miss, meas["logsfr"]),
        "oh_p50": np.where(has_oh, p["oh_true"], miss),
        "bptclass": p["bpt"].astype(np.int32),
    }
    for line in ("h_alpha", "h_beta", "oiii_5007", "nii_6584"):
        values[f"{line}_flux"] = p[f"{line}_flux"]
        values[f"{line}_flux_err"] = p[f"{line}_flux_err"]
    for sign, pct in ((-1, "p16"), (1, "p84")):
        values[f"lgm_tot_{pct}"] = np.where(sed_fail, miss, meas["logm"] + sign * meas["sig_m"])
        values[f"sfr_tot_{pct}"] = np.where(sed_fail, miss,
                                            meas["logsfr"] + sign * meas["sig_sfr"])
        values[f"oh_{pct}"] = np.where(has_oh, p["oh_true"] + sign * meas["sig_oh"], miss)
    return values


def _latent_columns(p, meas):
    """The ``mock_*`` columns: (name, values, unit, description) of the true properties."""

    def mag(f):
        return -2.5 * np.log10(f)

    return [
        ("mock_logm", p["logm"], "dex(solMass)", "true log stellar mass"),
        ("mock_logsfr", p["logsfr"], "dex(solMass / yr)", "true log SFR"),
        ("mock_oh_true", np.where(p["quenched"], np.nan, p["oh_true"] - meas["oh_err"]), "dex",
         "true 12 + log(O/H) (NaN for quenched galaxies); oh_p50 adds the measurement error"),
        ("mock_oh_hidden", p["oh_hidden"], "dex",
         ("hidden metallicity term (intrinsic scatter plus the measurement error of oh_p50): "
          "independent of the images, photometry and selection")),
        ("mock_oh_visible", p["oh_visible"], "dex",
         ("metallicity offset at fixed mass, SFR and size written into the disk's colour "
          "gradient and stellar colour")),
        ("mock_colour_gradient", p["gradient"], None,
         "disk g-band scale length / r-band scale length - 1"),
        ("mock_quenched", p["quenched"], None, "quenched (passive) galaxy"),
        ("mock_agn", p["agn"], None, "hosts an AGN"),
        ("mock_inclination", np.degrees(np.arccos(p["cos_i"])), "deg", "disk inclination"),
        ("mock_axis_ratio", p["q_disk"], None, "projected disk axis ratio b/a"),
        ("mock_position_angle", np.degrees(p["pa"]), "deg",
         "disk major axis angle, counter-clockwise from the image x axis"),
        ("mock_bt", p["bt"], None, "bulge-to-total r-band light ratio"),
        ("mock_clump_fraction", p["clump_frac"], None,
         "fraction of the disk r light in star-forming clumps"),
        ("mock_ebv", p["ebv_disk"], "mag", "stellar E(B-V) of the disk (with inclination)"),
        ("mock_re_disk", p["theta_d"], "arcsec", "disk half-light radius (major axis, r)"),
        ("mock_re_bulge", p["theta_b"], "arcsec", "bulge half-light radius (major axis)"),
        ("mock_disk_g_r", mag(p["flux_disk_g"]) - mag(p["flux_disk_r"]), "mag",
         "observed g - r of the smooth disk"),
        ("mock_disk_r_i", mag(p["flux_disk_r"]) - mag(p["flux_disk_i"]), "mag",
         "observed r - i of the smooth disk"),
        ("mock_bulge_g_r", mag(p["flux_bulge_g"]) - mag(p["flux_bulge_r"]), "mag",
         "observed g - r of the bulge"),
        ("mock_psf_fwhm", p["fwhm"], "arcsec", "PSF FWHM of the cutout"),
        ("mock_neighbour", p["has_nb"], None, "a neighbouring galaxy is in the cutout"),
        ("mock_star", p["has_star"], None, "a star is in the cutout"),
    ]


def oracle_rmse(hidden, mask=None):
    """The floor: root mean square of the hidden metallicity term over ``mask``.

    This is the RMSE of a predictor that knows everything but the hidden term
    (``mock_oh_hidden``), which is independent of the images, the photometry
    and of which galaxies pass the cuts.  It is the one definition of
    ``oracle_rmse`` in sfnet (the mock's ``catalog.meta`` and ``sfnet demo``).

    Parameters
    ----------
    hidden : array-like
        ``mock_oh_hidden`` values (dex).
    mask : array-like of bool, optional
        The galaxies to average over (e.g. those passing the target's cuts).

    Returns
    -------
    float
        NaN when no galaxy is selected.

    Examples
    --------
    >>> from sfnet.datasets.mock import oracle_rmse
    >>> oracle_rmse([0.1, -0.1, 0.3], [True, True, False])
    0.1
    """
    hidden = np.asarray(hidden, dtype=float)
    if mask is not None:
        hidden = hidden[np.asarray(mask, dtype=bool)]
    return float(np.sqrt(np.mean(hidden ** 2))) if hidden.size else float("nan")


def make_mock_galaxies(n, *, image_size=64, pixel_scale=None, seed=None, progress=True,
                       metallicity_scatter=0.08, psf_fwhm=1.4 * u.arcsec, bands="gri",
                       image_format="rgb"):
    """Generate an SDSS-like mock sample: colour cutouts and an MPA-JHU-style catalog.

    Parameters
    ----------
    n : int
        Number of galaxies (all pass the SDSS main-sample selection).
    image_size : int, optional
        Cutout side in pixels (>= 16).
    pixel_scale : float or `~astropy.units.Quantity`, optional
        Arcsec per pixel.  Default: the paper's field of view, 160 x 0.262" =
        41.92", whatever ``image_size`` (0.655"/px at 64 px).
    seed : int, optional
        Seed; the same seed gives identical catalog and images.  With ``None``
        a fresh seed is drawn and recorded in ``catalog.meta["seed"]``.  The
        catalog does not depend on ``image_size`` or ``pixel_scale``, and the
        first ``m`` galaxies of a sample of ``n > m`` are the sample of ``m``.
    progress : bool, optional
        Show a progress bar while rendering (only for ``n >= 1000``).
    metallicity_scatter : float, optional
        Standard deviation (dex) of the hidden metallicity term (default 0.08).
    psf_fwhm : float or `~astropy.units.Quantity`, optional
        Median PSF FWHM (arcsec).
    bands : str, optional
        The SDSS bands to render, letters of ``"ugriz"`` from blue to red
        (default ``"gri"``; e.g. ``"ugriz"`` or ``"grz"``).  Every component
        (disk, bulge, arms, clumps, neighbours, stars) has fluxes in all five
        bands from the mock's SEDs (the same that give ``modelMag_u`` to
        ``modelMag_z``); the sky noise and the seeing depend on the band.
    image_format : {"rgb", "flux"}, optional
        ``"rgb"`` (default): the 8-bit Lupton colour composite of three bands
        (reddest -> red), like SDSS JPEGs.  ``"flux"``: float32 images, one
        channel per band in the order of ``bands``: sky-subtracted fluxes with
        sky noise, in nanomaggies per cutout pixel, no composite (like FITS
        cutouts).  The defaults give exactly the images they always gave; the
        catalog never depends on these two parameters.

    Returns
    -------
    GalaxySample
        ``images`` of shape ``(n, image_size, image_size, 3)`` uint8 (or
        ``(..., len(bands))`` float32 with ``image_format="flux"``) and a catalog
        with the real query's columns (``objID``, ``specObjID``, ``ra``, ``dec``,
        ``z``, ``petroMag_r``, ``petroR50_r``, ``petroR90_r``, ``modelMag_u`` to
        ``modelMag_z``, ``lgm_tot_p50``, ``sfr_tot_p50``, ``oh_p50`` (measured;
        with ``lgm_tot_p16/p84``, ``sfr_tot_p16/p84``, ``oh_p16/p84``),
        ``bptclass``, the four BPT line fluxes and errors; names, units and
        descriptions from `sfnet.catalog`) plus latent ``mock_*`` columns (the
        truth).  ``catalog.meta`` holds ``oracle_rmse`` (the RMS of the hidden
        term over the ``"metallicity"`` sample: a lower bound on the RMSE of any
        predictor of ``oh_p50`` from images or photometry, not one it can
        reach), ``seed``, ``generator``, ``mock_version``,
        ``image_size``, ``pixel_scale`` (arcsec), ``psf_fwhm``,
        ``metallicity_scatter``, ``n_candidates`` and ``cosmology``.

    Examples
    --------
    >>> from sfnet.datasets import make_mock_galaxies
    >>> sample = make_mock_galaxies(20, image_size=32, seed=1, progress=False)
    >>> sample.images.shape, sample.images.dtype
    ((20, 32, 32, 3), dtype('uint8'))
    >>> bool((sample.catalog["petroMag_r"] < 17.77).all())
    True
    """
    n = check_int(n, "n", 1)
    image_size = check_int(image_size, "image_size", 16)
    if pixel_scale is None:
        pixel_scale = FIELD_OF_VIEW / image_size
    pixel_scale = check_float(pixel_scale, "pixel_scale", u.arcsec, 0, strict_min=True)
    psf_fwhm = check_float(psf_fwhm, "psf_fwhm", u.arcsec, 0, strict_min=True)
    metallicity_scatter = check_float(metallicity_scatter, "metallicity_scatter", minimum=0)
    if seed is None:
        seed = int(np.random.SeedSequence().entropy)
    else:
        seed = check_int(seed, "seed", 0)
    progress = check_bool(progress, "progress")
    bands, image_format = _check_bands(bands, image_format)

    from .sample import GalaxySample

    p, n_candidates = _draw_sample(seed, n, metallicity_scatter, psf_fwhm)
    catalog = _build_catalog(p, seed, metallicity_scatter)
    images = _render_images(p, p, seed, image_size, pixel_scale, progress, bands=bands,
                            image_format=image_format)
    catalog.meta.update(_catalog_meta(catalog, seed, image_size, pixel_scale, psf_fwhm,
                                      metallicity_scatter, n_candidates))
    if (bands, image_format) != ("gri", "rgb"):
        catalog.meta.update(bands=bands, image_format=image_format)
    return GalaxySample(images, catalog)


def _check_bands(bands, image_format):
    """``(bands, image_format)`` checked: letters of ugriz, blue to red; rgb needs three."""
    if image_format not in ("rgb", "flux"):
        raise ValueError(f"image_format must be 'rgb' or 'flux', got {image_format!r}")
    if not isinstance(bands, str) or not bands:
        raise TypeError(f"bands must be a string of SDSS band letters such as 'gri', "
                        f"got {bands!r}")
    order = [RENDER_BANDS.find(b) for b in bands]
    if min(order) < 0 or len(set(bands)) != len(bands) or order != sorted(order):
        raise ValueError(f"bands must be distinct letters of {RENDER_BANDS!r} from blue to "
                         f"red, got {bands!r}")
    if image_format == "rgb" and len(bands) != 3:
        raise ValueError(f"image_format='rgb' makes a colour composite of three bands; "
                         f"bands={bands!r} has {len(bands)} (use image_format='flux')")
    return bands, image_format


def _render_images(p, original, seed, image_size, pixel_scale, progress=False, *,
                   bands="gri", image_format="rgb"):
    """Render the galaxies ``p`` in blocks of `_BLOCK`, the noise of block ``b`` from ``(2, b)``.

    ``original`` is the population before any intervention: the FFT grid of
    each block is padded for at least its PSF, so an intervened block that
    reproduces the original renders on the same grid.
    """
    from tqdm.auto import tqdm

    n = len(p["z"])
    if image_format == "flux":
        images = np.empty((n, image_size, image_size, len(bands)), dtype=np.float32)
    else:
        images = np.empty((n, image_size, image_size, 3), dtype=np.uint8)
    with tqdm(total=n, desc="mock galaxies", unit="gal",
              disable=not progress or n < 1000) as bar:
        for block, start in enumerate(range(0, n, _BLOCK)):
            idx = np.arange(start, min(start + _BLOCK, n))
            rng = np.random.default_rng(np.random.SeedSequence(seed, spawn_key=(2, block)))
            images[idx] = render_block(p, idx, image_size, pixel_scale, rng,
                                       pad_fwhm=float(original["fwhm"][idx].max()),
                                       bands=bands, image_format=image_format)
            bar.update(len(idx))
    return images


def _catalog_meta(catalog, seed, image_size, pixel_scale, psf_fwhm, metallicity_scatter,
                  n_candidates):
    """``catalog.meta`` of a mock sample: the floor, the generator and its arguments."""
    from .. import __version__
    from ..targets import get_target

    hidden = np.asarray(catalog["mock_oh_hidden"])
    return {
        "oracle_rmse": oracle_rmse(hidden, get_target("metallicity").mask(catalog)),
        "generator": "sfnet.datasets.make_mock_galaxies",
        "mock_version": MOCK_VERSION,
        "sfnet_version": __version__,
        "seed": seed,
        "image_size": image_size,
        "pixel_scale": pixel_scale,
        "psf_fwhm": psf_fwhm,
        "metallicity_scatter": metallicity_scatter,
        "n_candidates": n_candidates,
        "cosmology": "Planck18",
        "selection": "14.5 < petroMag_r < 17.77, mu50_r < 24.5, 0.02 < z < 0.2",
    }


def make_mock_interventions(n, latent, values, *, seed=0, image_size=64):
    """The same mock galaxies rendered with one latent set to each of ``values``.

    A do-operation on the images: galaxy ``i`` of every returned sample is
    galaxy ``i`` of ``make_mock_galaxies(n, seed=seed, image_size=image_size)``
    -- same ``objID``, same random draws, same pixel noise -- with the latent
    ``mock_<latent>`` set to the value for every galaxy and everything else held
    fixed.  What the renderer derives from the latent is re-derived with the
    generator's own relations and the galaxy's own random draws:

    =============== =========================================================
    latent          re-derived for the image
    =============== =========================================================
    colour_gradient the disk's g/i scale lengths (only where each band's light is)
    inclination     axis ratio (Hubble 1926) and the disk's inclined E(B-V),
                    hence the dust-reddened fluxes of disk, bulge and clumps
    bt              light fractions of bulge / disk / clumps and the luminosity
                    (the mass-to-light ratio follows the integrated colour);
                    the bulge and disk sizes are held fixed
    clump_fraction  light fractions of disk and clumps/arms and the luminosity
    ebv             disk E(B-V) (bulge: half of it) and the fluxes
    re_disk         the disk half-light radius (arcsec; the clumps' positions scale)
    psf_fwhm        the PSF FWHM (arcsec)
    neighbour       a neighbouring galaxy present (1) or not (0)
    star            a star present (1) or not (0)
    oh_visible      the true metallicity, the disk's stellar colours and, for
                    star-forming disks, the colour gradient; through the
                    mass-to-light ratio of the redder or bluer disk, the
                    luminosity (the stellar mass is held)
    =============== =========================================================

    Not re-derived: every measured catalog column -- photometry (``modelMag_*``,
    ``petro*``), emission lines, ``bptclass``, ``oh_p50``, ``lgm_tot_*``,
    ``sfr_tot_*`` -- keeps the original galaxy's value, so targets, cuts and
    baselines see the same galaxies; the ``mock_*`` columns describe the
    rendered galaxy (``mock_<latent>`` is the value; ``mock_axis_ratio``,
    ``mock_ebv``, ``mock_disk_g_r``, ``mock_colour_gradient``, ``mock_oh_true``
    ... follow it where the table says so).  Quenched galaxies' disks do not
    depend on ``oh_visible`` (their stars do not share the gas metallicity), so
    setting it leaves their images unchanged.

    Parameters
    ----------
    n : int
        Number of galaxies.
    latent : str
        One of `MOCK_LATENTS`.
    values : array-like of float
        The values to set, in the latent's ``mock_*`` unit (degrees, arcsec,
        mag, dex; 0/1 or bool for ``neighbour`` and ``star``).
    seed : int, optional
        Seed of the galaxies, as in `make_mock_galaxies`.
    image_size : int, optional
        Cutout side in pixels (>= 16), the paper's field of view.

    Returns
    -------
    list of GalaxySample
        One per value, in order; ``catalog.meta`` adds ``intervention_latent``
        and ``intervention_value``.

    Examples
    --------
    >>> from sfnet.datasets import make_mock_interventions
    >>> face_on, edge_on = make_mock_interventions(4, "inclination", [0, 85], image_size=32)
    >>> face_on.catalog["mock_inclination"].tolist(), float(edge_on.catalog["mock_inclination"][0])
    ([0.0, 0.0, 0.0, 0.0], 85.0)
    >>> bool((face_on.catalog["objID"] == edge_on.catalog["objID"]).all())
    True
    """
    n = check_int(n, "n", 1)
    image_size = check_int(image_size, "image_size", 16)
    seed = check_int(seed, "seed", 0)
    if not isinstance(latent, str):
        raise TypeError(f"latent: expected a str, got {type(latent).__name__}")
    if latent not in MOCK_LATENTS:
        raise ValueError(f"latent: unknown {latent!r}; one of {', '.join(MOCK_LATENTS)}")
    values = _check_values(values, latent)

    from .sample import GalaxySample

    psf_fwhm, scatter = 1.4, 0.08
    pixel_scale = FIELD_OF_VIEW / image_size
    p, n_candidates = _draw_sample(seed, n, scatter, psf_fwhm)
    catalog = _build_catalog(p, seed, scatter)
    catalog.meta.update(_catalog_meta(catalog, seed, image_size, pixel_scale, psf_fwhm,
                                      scatter, n_candidates))
    meas = _measurements(p, seed, scatter)
    column = f"mock_{latent}"
    out = []
    for value in values:
        q = _phys.intervene(p, latent, value)
        cat = catalog.copy()
        for name, data, _, _ in _latent_columns(q, meas):
            cat[name][:] = data
        cat[column][:] = bool(value) if cat[column].dtype == bool else value
        cat.meta.update({"generator": "sfnet.datasets.make_mock_interventions",
                         "intervention_latent": latent, "intervention_value": value})
        out.append(GalaxySample(_render_images(q, p, seed, image_size, pixel_scale), cat))
    return out


def _check_values(values, latent):
    """``values`` as a list of floats inside the latent's range (`INTERVENTION_RANGE`)."""
    if isinstance(values, (str, bytes)):
        raise TypeError("values: expected numbers, got a string")
    try:
        arr = np.asarray(values, dtype=float)
    except (TypeError, ValueError):
        raise TypeError("values: expected numbers") from None
    if arr.ndim == 0:
        arr = arr[None]
    if arr.ndim != 1 or arr.size == 0:
        raise ValueError("values: expected a non-empty 1-D sequence of numbers")
    lo, hi, lo_in, hi_in = _phys.INTERVENTION_RANGE[latent]
    ok = np.isfinite(arr) & ((arr >= lo) if lo_in else (arr > lo)) & (
        (arr <= hi) if hi_in else (arr < hi))
    if latent in ("neighbour", "star"):
        ok &= np.isin(arr, (0.0, 1.0))
    if not ok.all():
        bad = arr[~ok][0]
        raise ValueError(f"values: {bad} is outside the range of {latent!r} "
                         f"({'[' if lo_in else '('}{lo}, {hi}{']' if hi_in else ')'})")
    return arr.tolist()
