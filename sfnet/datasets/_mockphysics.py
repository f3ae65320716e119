"""Physical relations and the galaxy population behind the SDSS-like mock (private).

Every relation is a small vectorised function citing its source; `draw_population`
combines them into a flux-limited sample of SDSS main-sample-like galaxies with
MPA-JHU-style catalog quantities and the latent parameters the renderer needs.

References
----------
- Baldry et al. 2012, MNRAS 421, 621 -- z < 0.06 stellar mass function.
- Bell et al. 2003, ApJS 149, 289 -- colour-based r-band mass-to-light ratio.
- Brinchmann et al. 2004, MNRAS 351, 1151 -- MPA-JHU BPT classes.
- Calzetti et al. 2000, ApJ 533, 682 -- attenuation curve, stellar/nebular E(B-V).
- Garn & Best 2010, MNRAS 409, 421 -- Halpha attenuation rising with stellar mass.
- Hubble 1926, ApJ 64, 321 -- axis ratio of an inclined oblate disk.
- Kauffmann et al. 2003, MNRAS 346, 1055 -- SF/AGN demarcation; AGN in massive bulges.
- Kennicutt 1998, ARA&A 36, 189 -- SFR from Halpha.
- Kewley et al. 2001, ApJ 556, 121 -- maximum-starburst line.
- Kewley & Ellison 2008, ApJ 681, 1183 -- conversions between metallicity scales.
- Mannucci et al. 2010, MNRAS 408, 2115 -- fundamental metallicity relation.
- Peng et al. 2010, ApJ 721, 193 -- mass quenching.
- Pettini & Pagel 2004, MNRAS 348, L59 -- N2 calibration.
- Shen et al. 2003, MNRAS 343, 978 -- size-mass relations of SDSS galaxies.
- Speagle et al. 2014, ApJS 214, 15 -- star-forming main sequence.
- Strauss et al. 2002, AJ 124, 1810 -- SDSS main-sample selection.
- Tremonti et al. 2004, ApJ 613, 898 -- mass-metallicity relation.
- Cid Fernandes et al. 2011, MNRAS 413, 1687 -- retired galaxies' LINER-like emission.
"""

from functools import lru_cache
from types import SimpleNamespace

import numpy as np

from .._utils import kauffmann03_curve, kewley01_curve
from ..catalog import BPT_LINES

# --------------------------------------------------------------------------
# Constants
# --------------------------------------------------------------------------

#: SDSS main galaxy sample: r_petro < 17.77, r_petro > 14.5 (fibre saturation and
#: cross-talk) and mu_50 < 24.5 mag arcsec^-2 (Strauss et al. 2002).
R_LIMIT = 17.77
R_BRIGHT = 14.5
SB_LIMIT = 24.5
#: Redshift range of the mock (SDSS main sample).
Z_MIN, Z_MAX = 0.02, 0.2
#: Absolute r magnitude of the Sun (AB; Willmer 2018, ApJS 236, 47).
MSUN_R = 4.65
#: Calzetti et al. (2000) k(lambda) = A_lambda / E(B-V)_star at the g, r, i effective
#: wavelengths (0.477, 0.623, 0.762 um) and at Halpha / Hbeta / [OIII] 5007.
K_G, K_R, K_I = 4.68, 3.52, 2.74
#: The same at the u and z effective wavelengths (0.355, 0.913 um).
K_U, K_Z = 6.09, 2.14
#: SDSS bands of the catalog photometry (the images have g, r, i only).
BANDS = "ugriz"
#: 5-sigma point-source depths of single SDSS imaging (AB mag; Abazajian et al. 2004, AJ
#: 128, 502: u 22.0, g 22.2, r 22.2, i 21.3, z 20.5); extended galaxies are measured
#: about 1.5 mag shallower.
DEPTH_5SIGMA = {"u": 22.0, "g": 22.2, "r": 22.2, "i": 21.3, "z": 20.5}
#: Standard deviation of the image-visible metallicity offset (dex), see `draw_candidates`.
VISIBLE_SCATTER = 0.11
#: Colour gradient of disks: the g-band scale length is ``1 + gamma`` times the
#: r-band one (the i band ``1 - gamma / 2``), ``gamma = GRADIENT_MEAN +
#: GRADIENT_PER_DEX * oh_visible``.  The mean 0.06 is de Jong's (1996, A&A 313,
#: 377) typical disk; the slope is the mock's calibration choice (see docs/mock.rst).
GRADIENT_MEAN = 0.06
GRADIENT_PER_DEX = 1.5
K_HA, K_HB, K_O3 = 3.33, 4.60, 4.46
#: Calzetti et al. (2000): E(B-V)_star = 0.44 E(B-V)_gas.
STAR_TO_GAS_EBV = 0.44
#: Case-B Balmer decrement (T = 1e4 K) and the usual AGN value.
HA_HB_SF, HA_HB_AGN = 2.86, 3.1
#: SDSS spectroscopic fibre radius (arcsec).
FIBRE_RADIUS = 1.5
#: Missing value of the MPA-JHU catalogs.
MISSING = -9999.0
_ARCSEC_PER_RAD = 206264.806
_CM_PER_MPC = 3.0856775814913673e24

# --------------------------------------------------------------------------
# Published relations
# --------------------------------------------------------------------------


def tremonti04(logm):
    """Tremonti et al. (2004) mass-metallicity relation, 12 + log(O/H).

    ``12 + log(O/H) = -1.492 + 1.847 x - 0.08026 x**2`` with ``x = log M*``; the
    fit is valid for 8.5 < x < 11.5 and reaches its maximum (9.13) at x = 11.5,
    so ``x`` is clipped there (the relation saturates rather than turning over).
    """
    x = np.minimum(logm, 11.5)
    return -1.492 + 1.847 * x - 0.08026 * x * x


def speagle14_main_sequence(logm, age_gyr):
    """Star-forming main sequence of Speagle et al. (2014), log SFR [Msun/yr].

    ``log SFR = (0.84 - 0.026 t) log M* - (6.51 - 0.11 t)`` with ``t`` the age of
    the Universe in Gyr (their "best fit", Kroupa IMF).
    """
    return (0.84 - 0.026 * age_gyr) * logm - (6.51 - 0.11 * age_gyr)


def quenched_fraction(logm, m_quench=10.95, floor=0.1):
    """Fraction of quenched galaxies at a given stellar mass.

    Peng et al. (2010) mass quenching, ``f = 1 - exp(-M/M*)`` with
    ``log M* = m_quench``, plus a mass-independent ``floor`` standing for
    environment quenching.
    """
    return 1.0 - (1.0 - floor) * np.exp(-(10.0 ** (logm - m_quench)))


def baldry12_smf(logm):
    """Double-Schechter stellar mass function of Baldry et al. (2012), per dex.

    ``log M* = 10.66``, ``phi1 = 3.96e-3``, ``alpha1 = -0.35``,
    ``phi2 = 0.79e-3``, ``alpha2 = -1.47`` (Mpc^-3 dex^-1, h = 0.7).
    """
    mu = 10.0 ** (logm - 10.66)
    return np.log(10.0) * np.exp(-mu) * (3.96e-3 * mu ** (1 - 0.35) + 0.79e-3 * mu ** (1 - 1.47))


def shen03_size_late(logm):
    """Shen et al. (2003) late-type r-band half-light radius (kpc) and ln scatter.

    ``R = 0.1 kpc M^0.14 (1 + M/M0)^0.25`` with ``M0 = 3.98e10`` Msun;
    ``sigma_lnR = 0.34 + 0.13 / (1 + (M/M0)^2)``.
    """
    m = 10.0 ** (logm - np.log10(3.98e10))
    r = 0.1 * 10.0 ** (0.14 * logm) * (1.0 + m) ** (0.39 - 0.14)
    return r, 0.34 + (0.47 - 0.34) / (1.0 + m * m)


def shen03_size_early(logm):
    """Shen et al. (2003) early-type half-light radius (kpc) and ln scatter.

    ``log R = 0.56 log M - 5.54`` (their b = 0.56, c = 3.47e-6 with h = 0.7); scatter
    ``sigma_lnR`` ~ 0.3.
    """
    return 10.0 ** (0.56 * logm - 5.54), np.full(np.shape(logm), 0.3)


def bell03_log_ml_r(g_r):
    """Bell et al. (2003) log(M/L_r) from rest-frame g - r, Kroupa IMF.

    ``log M/L_r = -0.306 + 1.097 (g - r)`` for their "diet Salpeter" IMF, minus
    0.15 dex for a Kroupa IMF as used by MPA-JHU.
    """
    return -0.306 + 1.097 * g_r - 0.15


def kennicutt98_halpha_luminosity(log_sfr):
    """Halpha luminosity (erg/s) of a Kroupa-IMF SFR (Msun/yr), Kennicutt (1998).

    ``SFR = 7.9e-42 L(Halpha)`` for a Salpeter IMF; a Kroupa SFR is 1.5 times smaller.
    """
    return 1.5 * 10.0 ** log_sfr / 7.9e-42


def t04_to_pp04(oh_t04):
    """Approximate conversion of a Tremonti+04 (MPA-JHU) abundance to the PP04 N2 scale.

    Kewley & Ellison (2008) show the Tremonti et al. scale lies 0.2 dex (low
    mass) to 0.4 dex (high mass) above Pettini & Pagel's N2 scale; a linear map
    through (8.6, 8.4) and (9.1, 8.7) reproduces that.
    """
    return 8.4 + 0.6 * (oh_t04 - 8.6)


def pp04_n2(oh_pp04):
    """log([NII]6584/Halpha) from 12 + log(O/H) by inverting Pettini & Pagel (2004).

    ``12 + log(O/H) = 8.90 + 0.57 N2``.
    """
    return (oh_pp04 - 8.90) / 0.57


kauffmann03 = kauffmann03_curve
kewley01 = kewley01_curve


def sf_sequence_o3hb(x):
    """Ridge of the SDSS star-forming sequence in the BPT diagram (log [OIII]/Hbeta).

    ``0.55 / x + 0.8`` for x = log [NII]/Halpha (clipped at -0.22): a curve of the
    Kauffmann et al. (2003) form through the ridge of the SDSS star-forming
    galaxies, (-1.5, 0.45), (-1.0, 0.25), (-0.6, -0.1), (-0.4, -0.55),
    (-0.3, -1.0), i.e. 0.3-0.6 dex below the Kauffmann et al. demarcation.
    """
    return 0.55 / np.minimum(x, -0.22) + 0.8


def sersic_b(n):
    """``b_n`` of a Sersic profile (Ciotti & Bertin 1999 expansion), so R_e holds half the light."""
    n = np.asarray(n, dtype=float)
    return 2.0 * n - 1.0 / 3.0 + 4.0 / (405.0 * n) + 46.0 / (25515.0 * n * n)


def bpt_class_mpajhu(nii, nii_err, ha, ha_err, oiii, oiii_err, hb, hb_err):
    """MPA-JHU ``bptclass`` codes from line fluxes (Brinchmann et al. 2004).

    1 star-forming (S/N > 3 in all four lines, below Kauffmann+03); 3 composite
    (between Kauffmann+03 and Kewley+01); 4 AGN (above Kewley+01); for the rest,
    with S/N > 2 in Halpha and [NII]: 2 low-S/N star-forming if
    log [NII]/Halpha < -0.4, else 5 low-S/N LINER; -1 unclassifiable otherwise.
    """
    with np.errstate(divide="ignore", invalid="ignore"):
        sn = [f / e for f, e in ((nii, nii_err), (ha, ha_err), (oiii, oiii_err), (hb, hb_err))]
        strong = np.all([s > 3 for s in sn], axis=0)
        weak = (sn[0] > 2) & (sn[1] > 2)
        x = np.log10(np.where((nii > 0) & (ha > 0), nii / ha, np.nan))
        y = np.log10(np.where((oiii > 0) & (hb > 0), oiii / hb, np.nan))
        below_k03 = (x < 0.05) & (y < kauffmann03(x))
        below_k01 = (x < 0.47) & (y < kewley01(x))
    cls = np.full(np.shape(ha), -1, dtype=np.int32)
    cls[weak & (x < -0.4)] = 2
    cls[weak & ~(x < -0.4)] = 5
    cls[strong] = 4
    cls[strong & below_k01] = 3
    cls[strong & below_k03] = 1
    return cls


def photometric_error(mag, band):
    """1-sigma error (mag) of an SDSS magnitude of a galaxy in ``band``.

    ``hypot(0.01, 0.217 * 10**(0.4 (mag - m5)))``: 0.01 mag calibration floor
    (Padmanabhan et al. 2008, ApJ 674, 1217) plus sky noise, with ``m5`` the
    5-sigma depth `DEPTH_5SIGMA` made 1.5 mag shallower for extended sources.
    At r = 17.7 this is 0.017 mag; in u, a star-forming galaxy of u ~ 19.5 has 0.09.
    Capped at 0.36 mag (a 3-sigma detection), the largest error SDSS quotes for
    a detected galaxy.
    """
    m5 = DEPTH_5SIGMA[band] - 1.5
    err = np.hypot(0.01, 0.2171 * 10.0 ** (0.4 * (np.minimum(np.asarray(mag), 40.0) - m5)))
    return np.minimum(err, 0.36)


def _sersic_enclosed(radius, re, n):
    """Fraction of a Sersic profile's light inside ``radius`` (circular)."""
    from scipy.special import gammainc

    return gammainc(2.0 * n, sersic_b(n) * (radius / re) ** (1.0 / n))


def _sersic_intensity(radius, re, n):
    """Surface brightness of a unit-flux Sersic profile at ``radius``."""
    from scipy.special import gamma

    b = sersic_b(n)
    return (b ** (2 * n) / (2 * np.pi * n * re * re * gamma(2 * n))
            * np.exp(-b * (radius / re) ** (1.0 / n)))


def petrosian_quantities(bt, re_bulge, re_disk, eta=0.2, n_petro=2.0):
    """SDSS Petrosian flux fraction, R50 and R90 of a de Vaucouleurs + exponential galaxy.

    The Petrosian radius ``R_P`` is where the local surface brightness is
    ``eta`` times the mean inside; the Petrosian flux is the light inside
    ``n_petro * R_P`` and R50/R90 the radii holding 50/90 % of it (Blanton et
    al. 2001, AJ 121, 2358; Strauss et al. 2002).  A pure exponential gives a
    concentration R90/R50 of 2.3 and 99 % of its light, a pure de Vaucouleurs 3.4
    and 82 %.  Radii are circularised (``R_e sqrt(q)``), without seeing.

    Parameters
    ----------
    bt : ndarray
        Bulge-to-total light ratio (r band).
    re_bulge, re_disk : ndarray
        Circularised half-light radii of the bulge and disk (any angular unit).

    Returns
    -------
    frac, r50, r90 : ndarray
        Petrosian flux / total flux, and the two radii in the unit of the inputs.
    """
    bt = np.asarray(bt, dtype=float)[:, None]
    rb = np.asarray(re_bulge, dtype=float)[:, None]
    rd = np.asarray(re_disk, dtype=float)[:, None]
    scale = np.maximum(rb, rd)
    grid = np.geomspace(1e-3, 20.0, 400)[None, :] * scale
    enclosed = bt * _sersic_enclosed(grid, rb, 4.0) + (1 - bt) * _sersic_enclosed(grid, rd, 1.0)
    local = bt * _sersic_intensity(grid, rb, 4.0) + (1 - bt) * _sersic_intensity(grid, rd, 1.0)
    ratio = local * np.pi * grid * grid / np.maximum(enclosed, 1e-300)
    rows = np.arange(len(grid))
    # the ratio falls monotonically outwards: first grid point below eta
    i = np.argmax(ratio < eta, axis=1)
    i = np.clip(i, 1, grid.shape[1] - 1)
    lo, hi = ratio[rows, i - 1], ratio[rows, i]
    t = np.clip((lo - eta) / np.maximum(lo - hi, 1e-300), 0, 1)
    r_petro = np.exp(np.log(grid[rows, i - 1]) + t * np.log(grid[rows, i] / grid[rows, i - 1]))
    ap = n_petro * r_petro
    frac = (bt[:, 0] * _sersic_enclosed(ap, rb[:, 0], 4.0)
            + (1 - bt[:, 0]) * _sersic_enclosed(ap, rd[:, 0], 1.0))

    def radius_at(level):
        target = (level * frac)[:, None]
        j = np.clip(np.argmax(enclosed >= target, axis=1), 1, grid.shape[1] - 1)
        e0, e1 = enclosed[rows, j - 1], enclosed[rows, j]
        w = np.clip((target[:, 0] - e0) / np.maximum(e1 - e0, 1e-300), 0, 1)
        return np.exp(np.log(grid[rows, j - 1]) + w * np.log(grid[rows, j] / grid[rows, j - 1]))

    return frac, radius_at(0.5), radius_at(0.9)


# --------------------------------------------------------------------------
# Cosmology grid (Planck 2018), computed once
# --------------------------------------------------------------------------


@lru_cache(maxsize=1)
def _cosmology_grid():
    from astropy.cosmology import Planck18

    z = np.linspace(0.0, Z_MAX + 0.01, 2001)
    z[0] = 1e-6
    d_l = Planck18.luminosity_distance(z).to_value("Mpc")
    d_a = Planck18.angular_diameter_distance(z).to_value("Mpc")
    dvdz = Planck18.differential_comoving_volume(z).value
    age = Planck18.age(z).to_value("Gyr")
    inside = (z >= Z_MIN) & (z <= Z_MAX)
    zc = z[inside]
    cdf = np.concatenate([[0.0], np.cumsum(0.5 * (dvdz[inside][1:] + dvdz[inside][:-1])
                                            * np.diff(zc))])
    cdf /= cdf[-1]
    return {"z": z, "d_l": d_l, "d_a": d_a, "age": age, "z_cdf": zc, "cdf": cdf}


@lru_cache(maxsize=1)
def _smf_grid(lo=8.3, hi=12.0):
    m = np.linspace(lo, hi, 3001)
    pdf = baldry12_smf(m)
    cdf = np.concatenate([[0.0], np.cumsum(0.5 * (pdf[1:] + pdf[:-1]) * np.diff(m))])
    return m, cdf / cdf[-1]


def _sigmoid(x):
    return 1.0 / (1.0 + np.exp(-x))


# --------------------------------------------------------------------------
# The population
# --------------------------------------------------------------------------

#: Rest-frame g - r, r - i, u - g and i - z of the young stars (clumps and arms).
CLUMP_COLOURS = (0.05, -0.02, 0.45, 0.05)
#: Number of star-forming clump slots per galaxy.
N_CLUMPS = 12
#: Share of the young light in spiral arms (the rest is in knots).
ARM_SHARE = 0.6


def draw_candidates(rng, m, *, oh_scatter=0.08, psf_fwhm=1.4, visible_scatter=VISIBLE_SCATTER):
    """Draw ``m`` candidate galaxies (before the flux limit) with all their properties.

    Returns a dict of arrays of length ``m`` (``(m, N_CLUMPS)`` for the clump
    slots).  Everything random about a galaxy, apart from the pixel noise of its
    image, is drawn here, so the catalog does not depend on the image size.

    The metallicity has three parts: ``oh_model``, set by what the images show
    (mass, SFR, size, and ``oh_visible``, an offset at fixed mass, SFR and size of
    standard deviation ``visible_scatter`` that is written into the disk's colour
    gradient and stellar colour); and ``oh_hidden`` (standard deviation
    ``oh_scatter``), drawn last and added to ``oh_true`` only, so it affects
    nothing else -- not the images, the photometry, the emission lines nor which
    galaxies are selected.  The emission lines and the dust follow ``oh_smooth =
    oh_model - oh_visible``, the mass-SFR-size part.

    Each stage below draws from ``rng`` in turn and adds its arrays to ``c``; the
    order of the stages is the order of the random draws, so it must not change
    (see ``MOCK_VERSION`` in ``sfnet.datasets.mock``).
    """
    c = SimpleNamespace(m=m)
    c.size_dev = rng.normal(0.0, 1.0, m)            # size offset at fixed mass, in sigma
    _draw_redshift(rng, c)
    _draw_star_formation(rng, c)
    _draw_metallicity(rng, c, visible_scatter)
    _draw_structure(rng, c)
    _draw_young_stars(rng, c)
    _draw_stellar_colours(rng, c)
    _draw_dust(rng, c)
    _component_fluxes(c)
    # model magnitudes: the total light with the photometric errors of SDSS imaging
    c.model_mag = {b: c.total_mag[b] + rng.normal(0, 1, m) * photometric_error(c.total_mag[b], b)
                   for b in BANDS}
    _draw_petrosian(rng, c, psf_fwhm)
    _draw_emission_lines(rng, c)
    _draw_field(rng, c)
    # --- the hidden metallicity term: drawn last, added to the metallicity only
    c.oh_hidden = rng.normal(0.0, oh_scatter, m)
    c.oh_true = c.oh_model + c.oh_hidden
    return _candidate_dict(c)


#: The arrays of `draw_candidates` besides the line fluxes, fluxes and magnitudes.
_CANDIDATE_KEYS = (
    "z", "d_l", "dlog_r", "d_a", "logm", "logsfr", "quenched",
    "d_ms", "oh_model", "oh_hidden", "oh_true", "bt",
    "re_disk", "re_bulge", "cos_i", "q_disk", "q_bulge", "pa",
    "pa_bulge", "clump_frac", "arm_pitch", "arm_phase",
    "clump_w", "clump_r", "clump_phi", "gr_bulge",
    "gr_disk", "ri_disk", "ug_disk", "iz_disk", "ri_bulge", "ug_bulge", "iz_bulge",
    "noise_gr_disk", "noise_ri_disk", "noise_ug_disk", "noise_iz_disk", "log_ssfr",
    "ebv_bulge",
    "ebv_disk", "ebv_face", "theta_d", "theta_b",
    "fwhm", "petro_mag", "petro_r50", "petro_r90", "mu50",
    "r_total", "oh_visible", "oh_smooth", "gradient",
    "agn", "seyfert", "bpt", "fib_frac",
    "has_nb", "nb_pos", "nb_r", "nb_gr", "nb_re", "nb_n",
    "nb_q", "nb_pa", "has_star", "st_pos", "st_r", "st_gr",
)


def _candidate_dict(c):
    """The output of `draw_candidates` from its stages' arrays, with the selection flag."""
    p = dict(c.lines)
    p.update((key, getattr(c, key)) for key in _CANDIDATE_KEYS)
    for key, val in c.mags.items():
        p[f"flux_{key}"] = val
    for band in BANDS:
        p[f"model_mag_{band}"] = c.model_mag[band]
    p["selected"] = (c.petro_mag < R_LIMIT) & (c.petro_mag > R_BRIGHT) & (c.mu50 < SB_LIMIT)
    return p


def _draw_redshift(rng, c):
    """Redshift uniform in comoving volume; Planck18 distances and age."""
    g = _cosmology_grid()
    c.z = np.interp(rng.random(c.m), g["cdf"], g["z_cdf"])
    c.d_l = np.interp(c.z, g["z"], g["d_l"])
    c.d_a = np.interp(c.z, g["z"], g["d_a"])
    c.age = np.interp(c.z, g["z"], g["age"])


def _draw_star_formation(rng, c):
    """Stellar mass (Baldry+12), quenching (Peng+10) and SFR (Speagle+14 or quenched)."""
    m = c.m
    mgrid, mcdf = _smf_grid()
    c.logm = np.interp(rng.random(m), mcdf, mgrid)
    c.quenched = rng.random(m) < quenched_fraction(c.logm)
    ms = speagle14_main_sequence(c.logm, c.age)
    d_ms = rng.normal(0.0, 0.3, m)
    log_ssfr_q = rng.normal(-12.0, 0.35, m)
    c.logsfr = np.where(c.quenched, c.logm + log_ssfr_q, ms + d_ms)
    c.d_ms = c.logsfr - ms
    c.log_ssfr = c.logsfr - c.logm


def _draw_metallicity(rng, c, visible_scatter):
    """Gas-phase metallicity: Tremonti+04 of the Mannucci+10 FMR mass, and the visible offset."""
    # mu = log M - 0.32 log SFR, taken relative to the main sequence so that
    # galaxies on the sequence follow Tremonti+04 exactly.
    # Ellison et al. (2008): at fixed mass, compact galaxies are more metal rich;
    # written as a shift of mu by -1.5 x the size offset (dex) from the size-mass
    # relation, ~0.15 dex in O/H between the smallest and largest size quartiles
    # at 1e10 Msun (somewhat stronger than their ~0.1 dex, so that morphology
    # carries more of the metallicity).
    c.r_late, s_late = shen03_size_late(c.logm)
    c.r_early, s_early = shen03_size_early(c.logm)
    c.dlog_r = c.size_dev * np.where(c.quenched, s_early, s_late) / np.log(10.0)
    mu = c.logm - 0.32 * np.where(c.quenched, 0.0, c.d_ms) - 1.5 * c.dlog_r
    # An offset at fixed mass, SFR and size that the images show: metal-rich disks
    # have steeper colour gradients and redder stellar populations, which the
    # integrated colours confuse with dust, inclination, bulge light and redshift.
    # (Lines and dust follow the smooth part only, so the selection does not
    # depend on the offset.)
    c.oh_visible = rng.normal(0.0, visible_scatter, c.m)
    c.oh_smooth = tremonti04(mu)
    c.oh_model = c.oh_smooth + c.oh_visible


def _draw_structure(rng, c):
    """Morphology: bulge-to-total ratio, sizes, axis ratios and position angles."""
    m, quenched, logm = c.m, c.quenched, c.logm
    bt_mean = np.where(quenched, np.clip(0.6 + 0.2 * (logm - 10.5), 0.3, 0.9),
                       np.clip(0.1 + 0.2 * (logm - 9.5), 0.04, 0.5))
    kappa = np.where(quenched, 8.0, 3.0)
    c.bt = np.clip(rng.beta(bt_mean * kappa, (1 - bt_mean) * kappa), 1e-3, 0.999)
    r50 = np.where(quenched, c.r_early, c.r_late) * 10.0 ** c.dlog_r
    # R_e,bulge / R_e,disk, varying from galaxy to galaxy (Gadotti 2009, MNRAS 393, 1531)
    f_bulge = np.where(quenched, 0.6, 0.25) * rng.lognormal(0.0, 0.25, m)
    c.re_disk = r50 / (1.0 - c.bt + c.bt * f_bulge)
    c.re_bulge = f_bulge * c.re_disk
    c.cos_i = rng.random(m)
    c.q_disk = disk_axis_ratio(c.cos_i, quenched)
    c.q_bulge = np.where(quenched, np.clip(rng.normal(0.75, 0.15, m), 0.35, 1.0),
                         rng.uniform(0.6, 1.0, m))
    c.pa = rng.uniform(0.0, np.pi, m)
    c.pa_bulge = c.pa + rng.normal(0.0, 0.15, m)


def _draw_young_stars(rng, c):
    """Spiral arms and star-forming knots: light fraction, knot weights and positions."""
    # young stars: fraction of the disk r light rising with sSFR, shared between
    # two logarithmic spiral arms (ARM_SHARE) and star-forming knots along them
    m = c.m
    c.clump_frac = np.minimum(0.3 * _sigmoid((c.log_ssfr + 10.3) / 0.25)
                              * rng.lognormal(0.0, 0.3, m), 0.5)
    n_clumps = np.clip(np.round(3 + 9 * _sigmoid((c.log_ssfr + 10.3) / 0.3)), 0, N_CLUMPS)
    w = rng.lognormal(0.0, 0.5, (m, N_CLUMPS)) * (np.arange(N_CLUMPS) < n_clumps[:, None])
    c.clump_w = w / np.maximum(w.sum(1, keepdims=True), 1e-30)
    c.arm_pitch = np.radians(rng.uniform(12.0, 30.0, m))
    c.arm_phase = rng.uniform(0, 2 * np.pi, m)
    # knot positions in the disk plane: exponential radial distribution (in R_e),
    # azimuth on one of the two arms
    c.clump_r = rng.gamma(2.0, 1.0 / 1.678, (m, N_CLUMPS)) + 0.15
    c.clump_phi = (np.log(c.clump_r) / np.tan(c.arm_pitch)[:, None] + c.arm_phase[:, None]
                   + np.pi * rng.integers(0, 2, (m, N_CLUMPS))
                   + rng.normal(0, 0.25, (m, N_CLUMPS)))


def _draw_stellar_colours(rng, c):
    """Rest-frame, dust-free colours of the bulge, disk and clumps, and the colour gradient.

    The random parts of the disk colours are kept (``noise_*_disk``) so that
    `disk_colours` can re-derive them under an intervention (`intervene`).
    """
    m = c.m
    c.gr_bulge = 0.72 + 0.04 * (c.logm - 10.5) + rng.normal(0, 0.04, m)
    c.ri_bulge = 0.37 + 0.35 * (c.gr_bulge - 0.72)
    c.noise_gr_disk = rng.normal(0, 0.015, m)
    c.gradient = colour_gradient(c.oh_visible, c.quenched)
    c.noise_ri_disk = rng.normal(0, 0.01, m)
    c.gr_clump, c.ri_clump, c.ug_clump, c.iz_clump = CLUMP_COLOURS
    # u - g and i - z of the same populations, following g - r along the galaxy
    # locus: red populations (g - r ~ 0.75) have u - r ~ 2.5, blue ones (g - r ~
    # 0.4) u - r ~ 1.5, the two peaks of Strateva et al. (2001); the young
    # clumps are bluer still.
    c.ug_bulge = 0.35 + 1.85 * c.gr_bulge + rng.normal(0, 0.04, m)
    c.noise_ug_disk = rng.normal(0, 0.04, m)
    c.iz_bulge = 0.10 + 0.35 * c.gr_bulge + rng.normal(0, 0.02, m)
    c.noise_iz_disk = rng.normal(0, 0.02, m)
    c.gr_disk, c.ri_disk, c.ug_disk, c.iz_disk = disk_colours(
        c.oh_model, c.log_ssfr, c.quenched, c.logm, c.noise_gr_disk, c.noise_ri_disk,
        c.noise_ug_disk, c.noise_iz_disk)


def colour_gradient(oh_visible, quenched):
    """The disk colour gradient ``gamma`` of `GRADIENT_MEAN` and `GRADIENT_PER_DEX`.

    A steeper gradient (smaller in r and i than in g: redder centre, bluer
    outskirts) in metal-rich star-forming disks; quenched disks have the mean.
    Only where the light of each band lies changes, not the disk's total colour.
    """
    return np.clip(GRADIENT_MEAN + GRADIENT_PER_DEX * np.where(quenched, 0.0, oh_visible),
                   -0.1, 0.4)


def disk_colours(oh_model, log_ssfr, quenched, logm, noise_gr, noise_ri, noise_ug, noise_iz):
    """Rest-frame dust-free g - r, r - i, u - g, i - z of the disk.

    Set by age (sSFR) and stellar metallicity: young stars share the gas
    metallicity ``oh_model`` (mass, SFR, size and the visible offset), quenched
    disks have the Tremonti et al. (2004) value of their mass.
    """
    z_stars = np.where(quenched, tremonti04(logm), oh_model)
    gr = 0.78 - 0.48 * _sigmoid((log_ssfr + 11.0) / 0.45) + 0.20 * (z_stars - 8.9) + noise_gr
    return (gr, 0.12 + 0.36 * gr + noise_ri, 0.35 + 1.85 * gr + noise_ug,
            0.10 + 0.35 * gr + noise_iz)


def _draw_dust(rng, c):
    """Stellar E(B-V) of the disk (face-on and inclined) and of the bulge.

    E(B-V) rises with metallicity (dust-to-gas ~ Z), star formation (gas
    content) and inclination.  1.5 dex per dex of O/H reproduces the rise of
    A_Halpha with mass of Garn & Best (2010).
    """
    m = c.m
    c.ebv_face = np.where(c.quenched, 0.02 * rng.random(m),
                          0.06 * 10 ** (1.5 * (c.oh_smooth - 8.9) + 0.4 * c.d_ms
                                        + rng.normal(0, 0.04, m)))
    c.ebv_disk = inclined_ebv(c.ebv_face, c.q_disk)
    c.ebv_bulge = 0.5 * c.ebv_disk


def disk_axis_ratio(cos_i, quenched):
    """Projected axis ratio of a disk 0.15 thick (0.25 if quenched), Hubble (1926)."""
    q0 = np.where(quenched, 0.25, 0.15)
    return np.sqrt(cos_i ** 2 * (1 - q0 ** 2) + q0 ** 2)


def inclined_ebv(ebv_face, q_disk):
    """Stellar E(B-V) of a disk of face-on ``ebv_face`` seen at axis ratio ``q_disk``."""
    incl_factor = 1.0 + 3.0 * np.log10(1.0 / q_disk)
    return ebv_face * incl_factor


def _kcorr(z, gr):
    """Approximate k-corrections K_r, K_(u-g), K_(g-r), K_(r-i), K_(i-z).

    Of SDSS galaxies at z < 0.2 (cf. Blanton & Roweis 2007).
    """
    c = np.maximum(gr - 0.3, 0.0)
    return (z * (0.25 + 1.0 * c), z * (0.5 + 2.0 * c), z * (0.3 + 2.0 * c), z * 0.3,
            z * 0.2)


def _component_fluxes(c):
    """Observed ugriz fluxes (nanomaggies) of the bulge, disk and clumps, and their totals.

    The r luminosity follows from the Bell+03 M/L of the integrated dust-free colour.
    """
    l_b = c.bt
    l_d = (1 - c.bt) * (1 - c.clump_frac)
    l_c = (1 - c.bt) * c.clump_frac
    g_int = (l_b * 10 ** (-0.4 * c.gr_bulge) + l_d * 10 ** (-0.4 * c.gr_disk)
             + l_c * 10 ** (-0.4 * c.gr_clump))
    gr_int = -2.5 * np.log10(g_int)
    log_lr = c.logm - bell03_log_ml_r(gr_int)
    abs_r = MSUN_R - 2.5 * log_lr
    dm = 5.0 * np.log10(c.d_l * 1e5)
    mags = {}
    for name, frac, ug, gr, ri, iz, ebv in (
            ("bulge", l_b, c.ug_bulge, c.gr_bulge, c.ri_bulge, c.iz_bulge, c.ebv_bulge),
            ("disk", l_d, c.ug_disk, c.gr_disk, c.ri_disk, c.iz_disk, c.ebv_disk),
            ("clump", l_c, c.ug_clump, c.gr_clump, c.ri_clump, c.iz_clump, c.ebv_disk)):
        kr, kug, kgr, kri, kiz = _kcorr(c.z, gr)
        with np.errstate(divide="ignore"):
            r = abs_r - 2.5 * np.log10(frac) + dm + kr + K_R * ebv
        gmag = r + gr + kgr + (K_G - K_R) * ebv
        umag = gmag + ug + kug + (K_U - K_G) * ebv
        imag = r - ri - kri - (K_R - K_I) * ebv
        zmag = imag - iz - kiz - (K_I - K_Z) * ebv
        for band, mag in zip(BANDS, (umag, gmag, r, imag, zmag)):
            mags[f"{name}_{band}"] = 10.0 ** (-0.4 * (mag - 22.5))   # nanomaggies
    c.mags = mags
    c.flux = {b: mags[f"bulge_{b}"] + mags[f"disk_{b}"] + mags[f"clump_{b}"] for b in BANDS}
    c.total_mag = {b: 22.5 - 2.5 * np.log10(c.flux[b]) for b in BANDS}
    c.r_total = c.total_mag["r"]


def _draw_petrosian(rng, c, psf_fwhm):
    """Angular sizes, seeing, Petrosian magnitude and radii, and surface brightness."""
    m = c.m
    kpc_to_arcsec = _ARCSEC_PER_RAD / (c.d_a * 1e3)
    c.theta_d = c.re_disk * kpc_to_arcsec
    c.theta_b = c.re_bulge * kpc_to_arcsec
    c.fwhm = np.clip(psf_fwhm * 10 ** rng.normal(0, 0.05, m), 0.7 * psf_fwhm, 1.5 * psf_fwhm)
    # (computed only where the galaxy can pass r < 17.77: the Petrosian flux is
    # never more than the total)
    bright = c.r_total < R_LIMIT + 0.2
    petro_frac, r50, r90 = np.ones(m), np.ones(m), np.ones(m)
    petro_frac[bright], r50[bright], r90[bright] = petrosian_quantities(
        (c.mags["bulge_r"] / c.flux["r"])[bright], (c.theta_b * np.sqrt(c.q_bulge))[bright],
        (c.theta_d * np.sqrt(c.q_disk))[bright])
    # the seeing adds its own half-light (0.5 FWHM) and 90% (0.91 FWHM) radii in quadrature
    c.petro_r50 = np.hypot(r50, 0.5 * c.fwhm) * 10 ** rng.normal(0, 0.01, m)
    c.petro_r90 = np.hypot(r90, 0.91 * c.fwhm) * 10 ** rng.normal(0, 0.01, m)
    c.petro_mag = (c.r_total - 2.5 * np.log10(petro_frac)
                   + rng.normal(0, 1, m) * photometric_error(c.r_total, "r"))
    theta50_obs = c.petro_r50
    c.mu50 = c.petro_mag + 2.5 * np.log10(2 * np.pi * theta50_obs ** 2)


def _draw_emission_lines(rng, c):
    """Fibre emission lines of star formation, AGN and old stars; observed fluxes; BPT class."""
    # fibre light fraction of an exponential disk seen through the seeing
    h = np.hypot(c.theta_d * np.sqrt(c.q_disk), 0.6 * c.fwhm) / 1.678
    x = FIBRE_RADIUS / h
    c.fib_frac = 1.0 - (1.0 + x) * np.exp(-x)
    c.four_pi_dl2 = 4 * np.pi * (c.d_l * _CM_PER_MPC) ** 2 * 1e-17
    _draw_sf_lines(rng, c)
    _draw_agn_lines(rng, c)
    ebv_gas = c.ebv_disk / STAR_TO_GAS_EBV
    att = {k: 10 ** (-0.4 * kk * ebv_gas) for k, kk in (("ha", K_HA), ("hb", K_HB),
                                                         ("o3", K_O3))}
    ha_sf, ha_agn = c.ha_sf, c.ha_agn
    hb_sf, hb_agn = ha_sf / HA_HB_SF, ha_agn / HA_HB_AGN
    true = {  # keys of sfnet.catalog.BPT_LINES, which spells the column names
        "ha": (ha_sf + ha_agn) * att["ha"],
        "nii": (ha_sf * 10 ** c.n2_sf + ha_agn * 10 ** c.n2_agn) * att["ha"],
        "hb": (hb_sf + hb_agn) * att["hb"],
        "oiii": (hb_sf * 10 ** c.o3_sf + hb_agn * 10 ** c.o3_agn) * att["o3"],
    }
    # errors: sky + continuum noise of the fibre spectrum (1e-17 erg/s/cm2)
    fib_cont = c.flux["r"] * np.clip(c.fib_frac, 0.05, 1.0)
    noise_scale = np.sqrt(1.0 + fib_cont / 20.0) * 10 ** rng.normal(0, 0.05, c.m)
    p = c.lines = {}
    for key, s0 in (("ha", 2.0), ("nii", 2.0), ("hb", 1.7), ("oiii", 1.7)):
        err = s0 * noise_scale
        p[BPT_LINES[key].flux] = true[key] + rng.normal(0, 1, c.m) * err
        p[BPT_LINES[key].error] = err
    c.bpt = bpt_class_mpajhu(*(p[col] for line in BPT_LINES.values()  # nii, ha, oiii, hb
                               for col in (line.flux, line.error)))


def _draw_sf_lines(rng, c):
    """Fibre Halpha of star formation (Kennicutt 1998) and its BPT line ratios."""
    m = c.m
    c.ha_sf = np.where(c.quenched, 0.0,
                       c.fib_frac * kennicutt98_halpha_luminosity(c.logsfr) / c.four_pi_dl2)
    # [NII]/Halpha follows the mass-SFR-size part of the metallicity, so which
    # galaxies are classified star-forming (and get an oh_p50) does not depend on
    # the two offsets at fixed mass, SFR and size (visible and hidden)
    n2_sf = pp04_n2(t04_to_pp04(c.oh_smooth)) + rng.normal(0, 0.04, m)
    c.n2_sf = np.minimum(n2_sf, -0.25)
    c.o3_sf = sf_sequence_o3hb(c.n2_sf) + rng.normal(0, 0.1, m)


def _draw_agn_lines(rng, c):
    """Halpha and BPT line ratios of AGN (Kauffmann+03) and of retired galaxies (LIERs)."""
    m, quenched = c.m, c.quenched
    # AGN: more likely in massive, bulge-dominated hosts (Kauffmann+03)
    p_agn = 0.85 * _sigmoid((c.logm - 10.5) / 0.25) * (0.4 + 0.6 * c.bt)
    c.agn = agn = rng.random(m) < p_agn
    c.seyfert = seyfert = agn & (rng.random(m) < np.where(quenched, 0.2, 0.5))
    n2_agn = np.where(seyfert, rng.normal(-0.05, 0.15, m), rng.normal(0.12, 0.12, m))
    o3_agn = np.where(seyfert, rng.normal(0.75, 0.2, m), rng.normal(0.0, 0.15, m))
    # AGN Halpha relative to the fibre SF Halpha (SF hosts) or absolute (passive hosts)
    l_agn = np.where(quenched, 10 ** rng.normal(39.8, 0.4, m),
                     10 ** rng.normal(-0.3, 0.7, m) * c.ha_sf * c.four_pi_dl2)
    # retired galaxies: weak LINER-like emission of old stars, L ~ M* (Cid Fernandes+11)
    l_lier = np.where(quenched, 10 ** (39.2 + 0.8 * (c.logm - 11.0) + rng.normal(0, 0.3, m)),
                      0.0)
    c.ha_agn = (np.where(agn, l_agn, 0.0) + l_lier) / c.four_pi_dl2
    c.n2_agn = np.where(agn, n2_agn, rng.normal(0.1, 0.1, m))
    c.o3_agn = np.where(agn, o3_agn, rng.normal(-0.05, 0.15, m))


def _draw_field(rng, c):
    """Neighbouring galaxies and stars in the cutout (positions in units of the field)."""
    m = c.m
    c.has_nb = rng.random(m) < 0.3
    c.nb_pos = _off_centre(rng, m, 0.12)
    c.nb_r = rng.uniform(17.0, 21.5, m)
    c.nb_gr = rng.uniform(0.3, 1.3, m)
    c.nb_re = 10 ** rng.uniform(-0.3, 0.4, m)
    c.nb_n = np.where(rng.random(m) < 0.5, 1.0, 4.0)
    c.nb_q = rng.uniform(0.3, 1.0, m)
    c.nb_pa = rng.uniform(0, np.pi, m)
    c.has_star = rng.random(m) < 0.25
    c.st_pos = _off_centre(rng, m, 0.1)
    c.st_r = rng.uniform(15.0, 21.5, m)
    c.st_gr = rng.uniform(0.3, 1.4, m)


def _off_centre(rng, m, r_min):
    """Positions in the field (units of the field of view, -0.45..0.45) avoiding the centre."""
    pos = rng.uniform(-0.45, 0.45, (m, 2))
    close = np.hypot(pos[:, 0], pos[:, 1]) < r_min
    pos[close] *= r_min / np.maximum(np.hypot(pos[close, 0], pos[close, 1]), 1e-3)[:, None]
    return pos


# --------------------------------------------------------------------------
# Interventions: one latent set, the image quantities downstream re-derived
# --------------------------------------------------------------------------

#: The latents `intervene` can set, by their ``mock_*`` column name without the prefix,
#: with the population keys the renderer reads that each one re-derives.
INTERVENTIONS = {
    "colour_gradient": ("gradient",),
    "inclination": ("cos_i", "q_disk", "ebv_disk", "ebv_bulge", "fluxes"),
    "bt": ("bt", "fluxes"),
    "clump_fraction": ("clump_frac", "fluxes"),
    "ebv": ("ebv_disk", "ebv_bulge", "fluxes"),
    "re_disk": ("theta_d", "re_disk"),
    "psf_fwhm": ("fwhm",),
    "neighbour": ("has_nb",),
    "star": ("has_star",),
    "oh_visible": ("oh_visible", "oh_model", "oh_true", "gradient", "gr_disk", "ri_disk",
                   "ug_disk", "iz_disk", "fluxes"),
}

#: Allowed range of each latent's value: (low, high, low inclusive, high inclusive).
INTERVENTION_RANGE = {
    "colour_gradient": (-0.9, 1.9, True, True),
    "inclination": (0.0, 90.0, True, True),
    "bt": (0.0, 1.0, True, True),
    "clump_fraction": (0.0, 1.0, True, False),
    "ebv": (0.0, 2.0, True, True),
    "re_disk": (0.0, np.inf, False, False),
    "psf_fwhm": (0.0, 10.0, False, True),
    "neighbour": (0.0, 1.0, True, True),
    "star": (0.0, 1.0, True, True),
    "oh_visible": (-1.0, 1.0, True, True),
}


def intervene(p, latent, value):
    """A copy of the population ``p`` with ``latent`` set to ``value`` for every galaxy.

    A do-operation on the images: the quantities the renderer reads that follow
    from the latent in the generator (`INTERVENTIONS`) are re-derived with the
    same relations and the galaxy's own random draws; everything else -- other
    latents, the catalog photometry, emission lines and ``bptclass`` -- is kept.
    The bulge and disk sizes are held fixed when ``bt`` is set (they are
    latents of their own).
    """
    q = dict(p)
    n = len(p["z"])
    v = np.full(n, float(value))
    if latent == "colour_gradient":
        q["gradient"] = v
    elif latent == "inclination":
        q["cos_i"] = np.cos(np.radians(v))
        q["q_disk"] = disk_axis_ratio(q["cos_i"], p["quenched"])
        q["ebv_disk"] = inclined_ebv(p["ebv_face"], q["q_disk"])
        q["ebv_bulge"] = 0.5 * q["ebv_disk"]
    elif latent == "bt":
        q["bt"] = v
    elif latent == "clump_fraction":
        q["clump_frac"] = v
    elif latent == "ebv":
        q["ebv_disk"] = v
        q["ebv_bulge"] = 0.5 * v
    elif latent == "re_disk":
        q["theta_d"] = v
        q["re_disk"] = v * (p["d_a"] * 1e3 / _ARCSEC_PER_RAD)
    elif latent == "psf_fwhm":
        q["fwhm"] = v
    elif latent == "neighbour":
        q["has_nb"] = v.astype(bool)
    elif latent == "star":
        q["has_star"] = v.astype(bool)
    elif latent == "oh_visible":
        q["oh_visible"] = v
        q["oh_model"] = p["oh_smooth"] + v
        q["oh_true"] = q["oh_model"] + p["oh_hidden"]
        q["gradient"] = colour_gradient(v, p["quenched"])
        q["gr_disk"], q["ri_disk"], q["ug_disk"], q["iz_disk"] = disk_colours(
            q["oh_model"], p["log_ssfr"], p["quenched"], p["logm"], p["noise_gr_disk"],
            p["noise_ri_disk"], p["noise_ug_disk"], p["noise_iz_disk"])
    else:
        raise ValueError(f"latent: unknown {latent!r}; one of {', '.join(INTERVENTIONS)}")
    if "fluxes" in INTERVENTIONS[latent]:
        c = SimpleNamespace(**q)
        c.gr_clump, c.ri_clump, c.ug_clump, c.iz_clump = CLUMP_COLOURS
        _component_fluxes(c)
        q.update((f"flux_{key}", val) for key, val in c.mags.items())
    return q
