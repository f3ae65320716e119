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
offset at fixed mass, SFR and size that the images show -- metal-rich disks
have steeper colour gradients (redder centres, bluer outskirts) and redder
stellar populations -- but integrated photometry barely does; and ``h``
(``metallicity_scatter``, 0.08 dex, ``mock_oh_hidden``) the hidden term.
``h`` is drawn last and added to ``oh_p50`` only: it is independent of the
images, the photometry, the emission lines and of which galaxies are selected,
so ``catalog.meta["oracle_rmse"]`` -- its root mean square over the galaxies
passing the ``"metallicity"`` cuts (`oracle_rmse`) -- is a strict floor: no
image- or photometry-based method can do better.  The emission lines (hence
the selection) and the dust follow ``T04(mu)`` only.  With these choices
the metallicity sample has sigma(12 + log O/H) ~ 0.21 dex, like the paper's
0.207 (see ``docs/mock.rst`` for the calibration and what it means).

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
with sSFR; dust (Calzetti et al. 2000) rising with metallicity (hence with mass,
as Garn & Best 2010), star formation and inclination; colour gradients (red
bulge, disks larger in g by a metallicity-dependent amount); stellar
populations whose colours follow age (sSFR)
and metallicity, with Bell et al. (2003) mass-to-light ratios and simple
k-corrections; Gaussian PSF (``psf_fwhm``, 5% scatter per galaxy); sky noise
of SDSS depth; the Lupton et al. (2004) composite of SDSS colour JPEGs
(`astropy.visualization.make_lupton_rgb` on i, r, g); a neighbouring galaxy in
30% and a star in 25% of the cutouts.  The metallicity is thus written in the
disk colour, its gradient and dust, which integrated colours mix with
inclination, bulge light, clumps and redshift: a CNN can disentangle them,
fits on integrated photometry cannot (`sfnet.baselines`).

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
(-9999 otherwise, as MPA-JHU).  0.4% of galaxies have failed SED fits
(``lgm_tot_p50 = sfr_tot_p50 = -9999``).
"""


import numpy as np
from astropy import units as u
from astropy.table import Column, Table

from .._validation import check_bool, check_float, check_int
from ..catalog import COLUMNS
from . import _mockphysics as _phys
from ._render import render_block

__all__ = ["make_mock_galaxies", "oracle_rmse"]

#: Version of the generator; bump when the output for a given seed changes.
MOCK_VERSION = "2"
#: Field of view of the paper's cutouts: 160 px x 0.262 arcsec.
FIELD_OF_VIEW = 160 * 0.262
_BATCH = 16384      # candidates per draw (fixed: the sample does not depend on n)
_BLOCK = 64         # galaxies per rendering block (fixed: noise does not depend on n)


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


def _build_catalog(p, seed):
    """The catalog of the drawn galaxies ``p``: the real query's columns, then ``mock_*`` ones.

    Identifiers and sky positions are drawn from their own stream of ``seed``.
    """
    t = Table()
    for name, data in _query_columns(p, seed).items():
        # names, units and descriptions of the real query: the one schema, sfnet.catalog
        schema = COLUMNS[name]
        t[name] = Column(data, unit=schema.unit, description=schema.description)
    for name, data, unit, desc in _latent_columns(p):
        t[name] = Column(data, unit=unit, description=desc)
    return t


def _query_columns(p, seed):
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
    oh = np.where(p["bpt"] == 1, p["oh_true"], miss)
    values = {
        "objID": objid, "specObjID": specobjid, "ra": ra, "dec": dec, "z": p["z"],
        "petroMag_r": p["petro_mag"], "petroR50_r": p["petro_r50"],
        "petroR90_r": p["petro_r90"],
        **{f"modelMag_{b}": p[f"model_mag_{b}"] for b in _phys.BANDS},
        "lgm_tot_p50": np.where(sed_fail, miss, p["logm"]),
        "sfr_tot_p50": np.where(sed_fail, miss, p["logsfr"]),
        "oh_p50": oh,
        "bptclass": p["bpt"].astype(np.int32),
    }
    for line in ("h_alpha", "h_beta", "oiii_5007", "nii_6584"):
        values[f"{line}_flux"] = p[f"{line}_flux"]
        values[f"{line}_flux_err"] = p[f"{line}_flux_err"]
    return values


def _latent_columns(p):
    """The ``mock_*`` columns: (name, values, unit, description) of the true properties."""

    def mag(f):
        return -2.5 * np.log10(f)

    return [
        ("mock_logm", p["logm"], "dex(solMass)", "true log stellar mass"),
        ("mock_logsfr", p["logsfr"], "dex(solMass / yr)", "true log SFR"),
        ("mock_oh_true", np.where(p["quenched"], np.nan, p["oh_true"]), "dex",
         "true 12 + log(O/H) (NaN for quenched galaxies)"),
        ("mock_oh_hidden", p["oh_hidden"], "dex",
         "hidden metallicity term: independent of the images, photometry and selection"),
        ("mock_oh_visible", p["oh_visible"], "dex",
         ("metallicity offset at fixed mass, SFR and size written into the disk's colour "
          "gradient and dust")),
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
                       metallicity_scatter=0.08, psf_fwhm=1.4 * u.arcsec):
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

    Returns
    -------
    GalaxySample
        ``images`` of shape ``(n, image_size, image_size, 3)`` uint8 and a catalog
        with the real query's columns (``objID``, ``specObjID``, ``ra``, ``dec``,
        ``z``, ``petroMag_r``, ``petroR50_r``, ``petroR90_r``, ``modelMag_u`` to
        ``modelMag_z``, ``lgm_tot_p50``, ``sfr_tot_p50``, ``oh_p50``,
        ``bptclass``, the four BPT line fluxes and errors; names, units and
        descriptions from `sfnet.catalog`) plus latent ``mock_*`` columns.
        ``catalog.meta`` holds ``oracle_rmse`` (the RMS of the hidden term over
        the ``"metallicity"`` sample: the best RMSE any predictor of ``oh_p50``
        from images or photometry can reach), ``seed``, ``generator``, ``mock_version``,
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

    from tqdm.auto import tqdm

    from ..targets import get_target
    from .sample import GalaxySample

    p, n_candidates = _draw_sample(seed, n, metallicity_scatter, psf_fwhm)
    catalog = _build_catalog(p, seed)

    images = np.empty((n, image_size, image_size, 3), dtype=np.uint8)
    with tqdm(total=n, desc="mock galaxies", unit="gal",
              disable=not progress or n < 1000) as bar:
        for block, start in enumerate(range(0, n, _BLOCK)):
            idx = np.arange(start, min(start + _BLOCK, n))
            rng = np.random.default_rng(np.random.SeedSequence(seed, spawn_key=(2, block)))
            images[idx] = render_block(p, idx, image_size, pixel_scale, rng)
            bar.update(len(idx))

    hidden = np.asarray(catalog["mock_oh_hidden"])
    oracle = oracle_rmse(hidden, get_target("metallicity").mask(catalog))
    from .. import __version__

    catalog.meta.update({
        "oracle_rmse": oracle,
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
    })
    return GalaxySample(images, catalog)
