"""The SDSS-like mock: catalog conventions, physics, determinism, arguments."""

import numpy as np
import pytest
from astropy import units as u

from sfnet import catalog as schema
from sfnet.baselines import catalog_photometry, photometric_features
from sfnet.datasets import (MOCK_LATENTS, GalaxySample, make_mock_galaxies,
                            make_mock_interventions)
from sfnet.datasets.mock import _build_catalog, _draw_sample, oracle_rmse
from sfnet.targets import get_target

N = 2500
MISSING = -9999


@pytest.fixture(scope="module")
def sample():
    return make_mock_galaxies(N, image_size=32, seed=7, progress=False)


def col(sample, name):
    return np.asarray(sample.catalog[name], dtype=float)


def tremonti04(x):
    return -1.492 + 1.847 * x - 0.08026 * x ** 2


def k03(x):
    return 0.61 / (x - 0.05) + 1.3


def k01(x):
    return 0.61 / (x - 0.47) + 1.19


# ---------------------------------------------------------------- catalog
def test_images_and_catalog_follow_the_real_query(sample):
    assert isinstance(sample, GalaxySample)
    assert sample.images.shape == (N, 32, 32, 3) and sample.images.dtype == np.uint8
    cat = sample.catalog
    for name in ("objID", "specObjID", "ra", "dec", "z", "petroMag_r", "petroR90_r",
                 "lgm_tot_p50", "sfr_tot_p50", "oh_p50", "bptclass", "h_alpha_flux",
                 "h_alpha_flux_err", "h_beta_flux", "h_beta_flux_err", "oiii_5007_flux",
                 "oiii_5007_flux_err", "nii_6584_flux", "nii_6584_flux_err"):
        assert name in cat.colnames
    for name in ("objID", "specObjID"):
        ids = np.asarray(cat[name])
        assert ids.dtype == np.int64
        assert len(np.unique(ids)) == N
    assert all(len(str(v)) == 18 for v in cat["objID"][:50])
    assert cat["ra"].unit == u.deg and cat["petroR90_r"].unit == u.arcsec
    assert u.Unit(cat["h_alpha_flux"].unit) == u.Unit("1e-17 erg / (s cm2)")
    assert set(np.unique(cat["bptclass"])) <= {-1, 1, 2, 3, 4, 5}
    assert cat.meta["image_size"] == 32
    assert cat.meta["seed"] == 7


def test_catalog_columns_take_names_units_and_descriptions_from_the_schema(sample):
    cat = sample.catalog
    photometry = [f"modelMag_{b}" for b in "ugriz"] + ["petroMag_r", "petroR50_r", "petroR90_r"]
    real = [c for c in cat.colnames if not c.startswith("mock_")]
    assert set(photometry) <= set(real)
    for name in real:
        col = schema.COLUMNS[name]
        assert cat[name].description == col.description, name
        if col.unit is None:
            assert cat[name].unit is None, name
        else:
            assert u.Unit(cat[name].unit) == u.Unit(col.unit), name


def test_catalog_photometry_matches_the_images(sample):
    """modelMag colours are those of the rendered light; u and z follow the same SED."""
    mag = {b: col(sample, f"modelMag_{b}") for b in "ugriz"}
    aperture = photometric_features(sample)
    bright = mag["r"] < 17.0
    assert np.corrcoef((mag["g"] - mag["r"])[bright], aperture[bright, 0])[0, 1] > 0.85
    assert np.corrcoef((mag["r"] - mag["i"])[bright], aperture[bright, 1])[0, 1] > 0.5
    # SDSS galaxy locus: u - g and i - z rise with g - r; quenched galaxies are red in u - r
    assert np.corrcoef(mag["u"] - mag["g"], mag["g"] - mag["r"])[0, 1] > 0.7
    assert np.corrcoef(mag["i"] - mag["z"], mag["g"] - mag["r"])[0, 1] > 0.5
    q = np.asarray(sample.catalog["mock_quenched"], dtype=bool)
    u_r = mag["u"] - mag["r"]
    assert np.median(u_r[q]) > 2.2 > np.median(u_r[~q])        # Strateva et al. 2001
    # Petrosian magnitudes miss a little light, more for bulges (de Vaucouleurs)
    lost = col(sample, "petroMag_r") - mag["r"]
    assert 0.0 < np.median(lost) < 0.15
    bt = col(sample, "mock_bt")
    assert np.median(lost[bt > 0.6]) > np.median(lost[bt < 0.2]) + 0.05
    r50, r90 = col(sample, "petroR50_r"), col(sample, "petroR90_r")
    conc = r90 / r50
    assert np.all(r50 > 0) and np.all(conc > 1.5) and np.all(conc < 4.0)
    assert np.median(conc[bt > 0.6]) > np.median(conc[bt < 0.2]) + 0.4


def test_sdss_main_sample_selection(sample):
    r = col(sample, "petroMag_r")
    z = col(sample, "z")
    assert np.all((r > 14.5) & (r < 17.77))
    assert np.all((z >= 0.02) & (z <= 0.2))
    assert 0.06 < np.median(z) < 0.13                  # SDSS main sample: ~0.1
    assert np.all(col(sample, "petroR90_r") > 0)
    ra, dec = col(sample, "ra"), col(sample, "dec")
    assert np.all((ra > 100) & (ra < 270) & (dec > -5) & (dec < 70))


def test_missing_values_like_mpajhu(sample):
    mass, sfr, oh = col(sample, "lgm_tot_p50"), col(sample, "sfr_tot_p50"), col(sample, "oh_p50")
    failed = mass == MISSING
    assert 0 < failed.sum() < 0.02 * N
    assert np.all(sfr[failed] == MISSING)
    assert np.all((oh == MISSING) | ((oh > 7.5) & (oh < 9.6)))
    kept = sample.select("metallicity")
    assert not np.any(np.isin(kept.catalog["objID"], sample.catalog["objID"][failed]))


def test_cut_counts_are_sensible(sample):
    n_met = len(sample.select("metallicity"))
    n_bpt = len(sample.select("bpt_lines"))
    assert 0.15 * N < n_met < 0.45 * N
    assert 0.25 * N < n_bpt < 0.65 * N


# ---------------------------------------------------------------- physics
def test_mass_metallicity_relation_follows_tremonti04(sample):
    sf = sample.select("metallicity")
    m, oh = col(sf, "lgm_tot_p50"), col(sf, "oh_p50")
    edges = np.arange(9.0, 10.81, 0.3)
    centre = 0.5 * (edges[1:] + edges[:-1])
    med = np.array([np.median(oh[(m >= a) & (m < b)]) for a, b in zip(edges[:-1], edges[1:])])
    assert np.max(np.abs(med - tremonti04(centre))) < 0.06
    slope, norm = np.polyfit(centre - 10.0, med, 1)
    t_slope, t_norm = np.polyfit(centre - 10.0, tremonti04(centre), 1)
    assert abs(slope - t_slope) < 0.07
    assert abs(norm - t_norm) < 0.04
    # the paper's metallicity sample has sigma = 0.207 dex
    assert 0.17 < oh.std() < 0.23


def test_quenched_fraction_rises_with_mass(sample):
    m = col(sample, "mock_logm")
    q = np.asarray(sample.catalog["mock_quenched"], dtype=bool)
    frac = [q[(m >= a) & (m < b)].mean() for a, b in ((9.3, 10.0), (10.0, 10.5),
                                                     (10.5, 11.0), (11.0, 12.0))]
    assert np.all(np.diff(frac) > 0)
    assert frac[0] < 0.3 and frac[-1] > 0.6


def test_quenched_galaxies_have_no_metallicity(sample):
    q = np.asarray(sample.catalog["mock_quenched"], dtype=bool)
    oh = col(sample, "oh_p50")
    assert q.sum() > 0.2 * N
    assert np.all(oh[q] == MISSING)
    cls = np.asarray(sample.catalog["bptclass"])
    assert np.all((oh > 0) == (cls == 1))


def test_bpt_classes_on_the_right_side_of_the_demarcations(sample):
    cat = sample.catalog
    f = {k: col(sample, f"{k}_flux") for k in ("nii_6584", "h_alpha", "oiii_5007", "h_beta")}
    e = {k: col(sample, f"{k}_flux_err") for k in f}
    strong = np.all([f[k] / e[k] > 3 for k in f], axis=0)
    cls = np.asarray(cat["bptclass"])
    assert np.array_equal(strong, np.isin(cls, (1, 3, 4)))
    x = np.log10(f["nii_6584"][strong] / f["h_alpha"][strong])
    y = np.log10(f["oiii_5007"][strong] / f["h_beta"][strong])
    c = cls[strong]
    sf, comp, agn = c == 1, c == 3, c == 4
    assert sf.sum() > 100 and comp.sum() > 10 and agn.sum() > 10
    assert np.all((x[sf] < 0.05) & (y[sf] < k03(x[sf])))
    assert np.all((x[comp] < 0.47) & (y[comp] < k01(x[comp])))
    assert np.all((x[comp] >= 0.05) | (y[comp] >= k03(x[comp])))
    assert np.all((x[agn] >= 0.47) | (y[agn] >= k01(x[agn])))
    # AGN prefer massive, bulge-dominated hosts
    host_m = col(sample, "mock_logm")
    is_agn = np.asarray(cat["mock_agn"], dtype=bool)
    assert np.median(host_m[is_agn]) > np.median(host_m[~is_agn]) + 0.2
    bt = col(sample, "mock_bt")
    assert np.median(bt[is_agn]) > np.median(bt[~is_agn])


def test_emission_lines_are_sdss_like(sample):
    sf = sample.select("metallicity").catalog
    decrement = np.asarray(sf["h_alpha_flux"]) / np.asarray(sf["h_beta_flux"])
    assert 3.3 < np.median(decrement) < 5.5          # case B 2.86 plus dust
    ha = np.asarray(sf["h_alpha_flux"])
    assert 30 < np.median(ha) < 1000                  # 1e-17 erg/s/cm2 in a 3" fibre
    # low-S/N classes follow the MPA-JHU rule on [NII]/Halpha
    cat = sample.catalog
    cls = np.asarray(cat["bptclass"])
    n2 = np.log10(np.abs(col(sample, "nii_6584_flux") / col(sample, "h_alpha_flux")))
    assert np.all(n2[cls == 2] < -0.4)
    assert np.all(n2[cls == 5] >= -0.4)


def test_quenched_galaxies_are_redder_in_the_images(sample):
    g_r = photometric_features(sample)[:, 0]
    q = np.asarray(sample.catalog["mock_quenched"], dtype=bool)
    assert np.median(g_r[q]) > np.median(g_r[~q]) + 0.15


def test_inclined_disks_are_redder(sample):
    """Dust reddening rises with inclination: edge-on star-forming disks are redder."""
    sf = sample.select("metallicity")
    g_r = photometric_features(sf)[:, 0]
    q = col(sf, "mock_axis_ratio")
    assert np.median(g_r[q < 0.35]) > np.median(g_r[q > 0.7]) + 0.015
    ebv = col(sf, "mock_ebv")
    assert np.median(ebv[q < 0.35]) > 1.3 * np.median(ebv[q > 0.7])


def test_mass_and_sfr_are_measured_with_mpajhu_like_errors(sample):
    """lgm_tot_p50 / sfr_tot_p50 scatter about the truth; p16/p84 bracket ~68% of it."""
    cat = sample.catalog
    ok = col(sample, "lgm_tot_p50") != MISSING
    quenched = np.asarray(cat["mock_quenched"], dtype=bool)
    for name, truth, lo, hi in (("lgm_tot", "mock_logm", 0.07, 0.11),
                                ("sfr_tot", "mock_logsfr", 0.22, 0.36)):
        p16, p50, p84 = (col(sample, f"{name}_{p}") for p in ("p16", "p50", "p84"))
        assert np.all((p16 == MISSING) == ~ok) and np.all((p84 == MISSING) == ~ok)
        assert np.all((p16[ok] < p50[ok]) & (p50[ok] < p84[ok]))
        err = (p50 - col(sample, truth))[ok]
        sf = ~quenched[ok]
        assert lo < err[sf].std() < hi, name
        assert abs(err.mean()) < 0.03
        inside = (p16[ok] <= col(sample, truth)[ok]) & (col(sample, truth)[ok] <= p84[ok])
        assert 0.64 < inside.mean() < 0.72, name
    # SFRs of passive galaxies (from D4000 in MPA-JHU) are much less certain
    err = (col(sample, "sfr_tot_p50") - col(sample, "mock_logsfr"))[ok]
    assert err[quenched[ok]].std() > 2 * err[~quenched[ok]].std()
    oh, p16 = col(sample, "oh_p50"), col(sample, "oh_p16")
    assert np.all((oh == MISSING) == (p16 == MISSING))


# ------------------------------------------------------------- the oracle
def test_oracle_rmse_is_the_rms_of_the_hidden_term(sample):
    kept = sample.select("metallicity")
    hidden = col(kept, "mock_oh_hidden")
    assert sample.catalog.meta["oracle_rmse"] == pytest.approx(np.sqrt(np.mean(hidden ** 2)),
                                                               rel=1e-9)
    assert sample.catalog.meta["oracle_rmse"] == pytest.approx(
        oracle_rmse(sample.catalog["mock_oh_hidden"],
                    get_target("metallicity").mask(sample.catalog)))
    assert 0.065 < sample.catalog.meta["oracle_rmse"] < 0.095
    # the truth differs from oh_p50 by its measurement error, a part of the hidden term:
    # oh_p16/p84 give its width and bracket the truth for ~68% of the galaxies
    resid = col(kept, "oh_p50") - col(kept, "mock_oh_true")
    half = (col(kept, "oh_p84") - col(kept, "oh_p16")) / 2
    assert 0.02 < resid.std() < 0.06
    assert resid.std() == pytest.approx(np.sqrt(np.mean(half ** 2)), rel=0.1)
    assert resid.std() < hidden.std()
    inside = (col(kept, "oh_p16") <= col(kept, "mock_oh_true")) & (
        col(kept, "mock_oh_true") <= col(kept, "oh_p84"))
    assert 0.63 < inside.mean() < 0.73
    assert np.isnan(oracle_rmse([0.1], [False]))


def test_hidden_term_is_not_in_the_images(sample):
    kept = sample.select("metallicity")
    feats = photometric_features(kept)
    hidden = col(kept, "mock_oh_hidden")
    for j in range(feats.shape[1]):
        assert abs(np.corrcoef(feats[:, j], hidden)[0, 1]) < 0.15


@pytest.fixture(scope="module")
def big_catalog():
    """Catalog only (no images) of 12000 mock galaxies: enough to see a 2% R^2."""
    p, _ = _draw_sample(21, 12000, 0.08, 1.4)
    return _build_catalog(p, 21)


def _visible(cat):
    """Every latent the images show plus the catalog photometry."""
    names = ["mock_logm", "mock_logsfr", "mock_oh_visible", "mock_colour_gradient",
             "mock_inclination", "mock_axis_ratio", "mock_bt", "mock_clump_fraction",
             "mock_ebv", "mock_re_disk", "mock_re_bulge", "mock_disk_g_r", "mock_disk_r_i",
             "mock_bulge_g_r", "mock_psf_fwhm"]
    lat = np.column_stack([np.asarray(cat[c], dtype=float) for c in names])
    return np.column_stack([lat, catalog_photometry(cat)])


def test_floor_is_strict_hidden_term_unpredictable_from_visible_quantities(big_catalog):
    """No gradient-boosting fit on visible latents + photometry explains the hidden term."""
    from sklearn.ensemble import HistGradientBoostingRegressor

    keep = get_target("metallicity").mask(big_catalog)
    x = _visible(big_catalog)[keep]
    h = np.asarray(big_catalog["mock_oh_hidden"])[keep]
    oh = np.asarray(big_catalog["oh_p50"])[keep]
    n = len(h)
    assert n > 3000
    fit, test = np.arange(n) % 3 != 0, np.arange(n) % 3 == 0

    def held_out_r2(y):
        reg = HistGradientBoostingRegressor(max_iter=300, learning_rate=0.05,
                                            early_stopping=True, random_state=0)
        reg.fit(x[fit], y[fit])
        return 1 - np.mean((reg.predict(x[test]) - y[test]) ** 2) / np.var(y[test])

    assert held_out_r2(h) < 0.02
    # the same fit does explain the rest of the metallicity (so it could have found it)
    assert held_out_r2(oh - h) > 0.9


def test_hidden_term_does_not_depend_on_mass_or_selection(big_catalog):
    keep = get_target("metallicity").mask(big_catalog)
    h = np.asarray(big_catalog["mock_oh_hidden"])
    m = np.asarray(big_catalog["mock_logm"])
    for sel in (keep, ~keep):
        for lo, hi in ((8.0, 9.5), (9.5, 10.0), (10.0, 10.5), (10.5, 12.5)):
            b = sel & (m >= lo) & (m < hi)
            if b.sum() < 30:
                continue
            assert abs(h[b].mean()) < 4 * h[b].std() / np.sqrt(b.sum()), (lo, hi)
    # same spread in and out of the metallicity sample
    assert h[keep].std() == pytest.approx(h[~keep].std(), rel=0.08)
    assert h.std() == pytest.approx(0.08, rel=0.05)


def test_images_show_the_colour_gradient(sample):
    """The visible metallicity offset is written in the disks' colour gradients."""
    sf = sample.select("metallicity")
    img = sf.images.astype(float)
    yy, xx = np.indices(img.shape[1:3]) - (img.shape[1] - 1) / 2
    rr = np.hypot(yy, xx)
    grad = col(sf, "mock_colour_gradient")

    def colour(mask):       # blue (g) over red (i) channel in a region
        return np.log((img[:, mask, 2].sum(1) + 1) / (img[:, mask, 0].sum(1) + 1))

    outer_minus_inner = colour((rr > 2.5) & (rr < 6)) - colour(rr < 2)
    assert np.corrcoef(outer_minus_inner, grad)[0, 1] > 0.2
    assert np.corrcoef(col(sf, "mock_oh_visible"), grad)[0, 1] > 0.8


# ------------------------------------------------------------ determinism
def test_same_seed_same_sample_different_seed_differs():
    a = make_mock_galaxies(70, image_size=32, seed=3, progress=False)
    b = make_mock_galaxies(70, image_size=32, seed=3, progress=False)
    c = make_mock_galaxies(70, image_size=32, seed=4, progress=False)
    assert np.array_equal(a.images, b.images)
    for name in a.catalog.colnames:
        assert np.array_equal(a.catalog[name], b.catalog[name], equal_nan=True), name
    assert not np.array_equal(a.images, c.images)
    assert not np.array_equal(a.catalog["objID"], c.catalog["objID"])
    assert not np.allclose(a.catalog["z"], c.catalog["z"])


def test_smaller_sample_is_a_prefix_and_catalog_ignores_image_size():
    big = make_mock_galaxies(100, image_size=32, seed=5, progress=False)
    small = make_mock_galaxies(40, image_size=32, seed=5, progress=False)
    other = make_mock_galaxies(40, image_size=16, seed=5, progress=False)
    assert np.array_equal(small.images, big.images[:40])
    for name in ("objID", "z", "oh_p50", "petroMag_r", "h_alpha_flux"):
        assert np.array_equal(small.catalog[name], big.catalog[name][:40])
        assert np.array_equal(small.catalog[name], other.catalog[name])


def test_seed_none_is_recorded_and_reproducible():
    a = make_mock_galaxies(8, image_size=16, progress=False)
    seed = a.catalog.meta["seed"]
    b = make_mock_galaxies(8, image_size=16, seed=seed, progress=False)
    assert np.array_equal(a.images, b.images)


# ------------------------------------------------------------- arguments
def test_pixel_scale_default_keeps_the_papers_field_of_view():
    s = make_mock_galaxies(5, image_size=20, seed=1, progress=False)
    assert s.catalog.meta["pixel_scale"] == pytest.approx(160 * 0.262 / 20)
    t = make_mock_galaxies(5, image_size=20, pixel_scale=0.01 * u.arcmin, seed=1,
                           progress=False)
    assert t.catalog.meta["pixel_scale"] == pytest.approx(0.6)
    assert not np.array_equal(s.images, t.images)


def test_pixels_finer_than_sdss_have_correlated_noise():
    """Below SDSS's 0.396" pixels the noise is correlated, as in resampled SDSS cutouts."""
    fine = make_mock_galaxies(20, image_size=64, pixel_scale=0.2, seed=2, progress=False)
    coarse = make_mock_galaxies(20, image_size=64, pixel_scale=0.6, seed=2, progress=False)

    def border_corr(images):
        sky = images[:, :6, :, 1].astype(float)          # green channel, bottom rows
        sky = sky - sky.mean(axis=2, keepdims=True)
        return np.mean(sky[:, :, 1:] * sky[:, :, :-1]) / np.mean(sky * sky)

    assert border_corr(fine.images) > border_corr(coarse.images) + 0.2
    centre = fine.images[:, 28:36, 28:36].mean()
    assert centre > fine.images[:, :4].mean() + 30       # a galaxy on a darker sky


def test_progress_bar(capsys):
    make_mock_galaxies(1000, image_size=16, seed=1, progress=True)
    assert "mock galaxies" in capsys.readouterr().err
    make_mock_galaxies(1000, image_size=16, seed=1, progress=False)
    assert "mock galaxies" not in capsys.readouterr().err


@pytest.mark.parametrize("kwargs, exc, name", [
    ({"n": 0}, ValueError, "n"),
    ({"n": 2.5}, TypeError, "n"),
    ({"n": "10"}, TypeError, "n"),
    ({"n": True}, TypeError, "n"),
    ({"image_size": 8}, ValueError, "image_size"),
    ({"image_size": 32.0}, TypeError, "image_size"),
    ({"pixel_scale": -0.3}, ValueError, "pixel_scale"),
    ({"pixel_scale": 1 * u.m}, ValueError, "pixel_scale"),
    ({"pixel_scale": "big"}, TypeError, "pixel_scale"),
    ({"seed": -1}, ValueError, "seed"),
    ({"seed": 1.5}, TypeError, "seed"),
    ({"progress": "yes"}, TypeError, "progress"),
    ({"metallicity_scatter": -0.1}, ValueError, "metallicity_scatter"),
    ({"psf_fwhm": 0}, ValueError, "psf_fwhm"),
])
def test_bad_arguments_are_named(kwargs, exc, name):
    args = {"n": 5, "image_size": 16, "seed": 0, "progress": False}
    args.update(kwargs)
    with pytest.raises(exc, match=name):
        make_mock_galaxies(**args)


# ---------------------------------------------------------- interventions
@pytest.fixture(scope="module")
def original():
    return make_mock_galaxies(70, image_size=32, seed=3, progress=False)


#: The mock_* columns each intervention may change (the latent and what follows from it).
_FOLLOWS = {
    "colour_gradient": set(),
    "inclination": {"mock_axis_ratio", "mock_ebv", "mock_disk_g_r", "mock_disk_r_i",
                    "mock_bulge_g_r"},
    "bt": set(),
    "clump_fraction": set(),
    "ebv": {"mock_disk_g_r", "mock_disk_r_i", "mock_bulge_g_r"},
    "re_disk": set(),
    "psf_fwhm": set(),
    "neighbour": set(),
    "star": set(),
    "oh_visible": {"mock_oh_true", "mock_colour_gradient", "mock_disk_g_r", "mock_disk_r_i"},
}
_OTHER_VALUE = {"colour_gradient": 0.35, "inclination": 80.0, "bt": 0.9, "clump_fraction": 0.3,
                "ebv": 0.5, "re_disk": 5.0, "psf_fwhm": 2.5, "neighbour": 1, "star": 1,
                "oh_visible": 0.3}


def test_mock_latents_are_the_settable_columns(original):
    assert set(MOCK_LATENTS) == set(_FOLLOWS)
    for latent in MOCK_LATENTS:
        assert f"mock_{latent}" in original.catalog.colnames


@pytest.mark.parametrize("latent", sorted(_FOLLOWS))
def test_intervention_changes_only_the_latent_and_what_follows(original, latent):
    """Same galaxies; its own value reproduces the original; only its columns change."""
    own = original.catalog[f"mock_{latent}"][0]
    same, moved = make_mock_interventions(70, latent, [own, _OTHER_VALUE[latent]],
                                          seed=3, image_size=32)
    # galaxy 0 set to its own value is the original image (psf: also in the second block)
    assert np.array_equal(same.images[0], original.images[0])
    for s, value in ((same, own), (moved, _OTHER_VALUE[latent])):
        cat = s.catalog
        assert cat.meta["intervention_latent"] == latent
        assert np.all(np.asarray(cat[f"mock_{latent}"], dtype=float) == float(value))
        for name in cat.colnames:
            if name == f"mock_{latent}" or name in _FOLLOWS[latent]:
                continue
            if name.startswith("mock_"):     # re-derived fluxes: equal to rounding
                assert np.allclose(np.asarray(cat[name], dtype=float), col(original, name),
                                   rtol=1e-12, atol=0, equal_nan=True), name
            else:                               # the measured catalog is the original's
                assert np.array_equal(cat[name], original.catalog[name], equal_nan=True), name
    changed = {name for name in moved.catalog.colnames if name.startswith("mock_")
               and not np.allclose(np.asarray(moved.catalog[name], dtype=float),
                                   col(original, name), equal_nan=True)}
    assert f"mock_{latent}" in changed
    assert changed <= _FOLLOWS[latent] | {f"mock_{latent}"}
    assert not np.array_equal(moved.images, same.images)


def test_intervention_keeps_the_noise(original):
    """Where the galaxy has no light, two intervened images are identical pixel by pixel."""
    flat, tilted = make_mock_interventions(70, "inclination", [0.0, 90.0], seed=3,
                                           image_size=32)
    # small galaxies without a neighbour or star: no light of theirs in the corners
    alone = ~np.asarray(original.catalog["mock_neighbour"] | original.catalog["mock_star"]) & (
        col(original, "mock_re_disk") < 3)
    assert alone.sum() > 10
    yy, xx = np.indices((32, 32)) - 15.5
    corner = np.hypot(yy, xx) > 15          # the corners, > 10 disk radii from the target
    a, b = flat.images[alone][:, corner], tilted.images[alone][:, corner]
    assert np.mean(a == b) > 0.98
    # with other noise (same galaxies, another seed's noise) the corners differ
    other = make_mock_galaxies(70, image_size=32, seed=4, progress=False)
    assert np.mean(a == other.images[alone][:, corner]) < 0.8


def test_interventions_act_in_the_expected_direction():
    clear, dusty = make_mock_interventions(40, "ebv", [0.0, 0.6], seed=1, image_size=32)
    inner = (np.hypot(*(np.indices((32, 32)) - 15.5)) < 4)

    def red_over_blue(s):
        img = s.images[:, inner].astype(float)
        return np.log((img[..., 0].sum(1) + 1) / (img[..., 2].sum(1) + 1))

    assert np.mean(red_over_blue(dusty) > red_over_blue(clear)) > 0.9
    no, yes = make_mock_interventions(40, "star", [False, True], seed=1, image_size=32)
    assert np.all(np.any(no.images != yes.images, axis=(1, 2, 3)))
    face, edge = make_mock_interventions(10, "inclination", [0.0, 90.0], seed=1, image_size=32)
    assert np.all(edge.catalog["mock_axis_ratio"] < 0.3)
    assert np.all(face.catalog["mock_axis_ratio"] > 0.99)


def test_quenched_disks_ignore_the_visible_metallicity():
    low, high = make_mock_interventions(70, "oh_visible", [-0.2, 0.2], seed=3, image_size=32)
    q = np.asarray(low.catalog["mock_quenched"], dtype=bool)
    assert 0 < q.sum() < len(q)
    assert np.array_equal(low.images[q], high.images[q])
    assert not np.array_equal(low.images[~q], high.images[~q])


@pytest.mark.parametrize("latent, values, exc, name", [
    ("mass", [1.0], ValueError, "latent"),
    (3, [1.0], TypeError, "latent"),
    ("inclination", [100.0], ValueError, "values"),
    ("inclination", [], ValueError, "values"),
    ("inclination", "0", TypeError, "values"),
    ("inclination", [np.nan], ValueError, "values"),
    ("star", [0.5], ValueError, "values"),
    ("re_disk", [0.0], ValueError, "values"),
])
def test_intervention_arguments_are_named(latent, values, exc, name):
    with pytest.raises(exc, match=name):
        make_mock_interventions(2, latent, values, image_size=16)


# ------------------------------------------------------------------ bands and fluxes
def test_flux_images_are_the_composite_before_the_stretch():
    from sfnet.datasets import _render

    rgb = make_mock_galaxies(24, image_size=32, seed=11, progress=False)
    flux = make_mock_galaxies(24, image_size=32, seed=11, progress=False, image_format="flux")
    assert flux.images.dtype == np.float32 and flux.image_shape == (32, 32, 3)
    assert flux.catalog.meta["image_format"] == "flux" and "bands" not in rgb.catalog.meta
    np.testing.assert_array_equal(np.asarray(flux.catalog["oh_p50"]),
                                  np.asarray(rgb.catalog["oh_p50"]))
    # the same noise and fluxes: the Lupton composite of the fluxes is the RGB image
    native = flux.images / np.float32((rgb.catalog.meta["pixel_scale"] / _render.SDSS_PIXEL) ** 2)
    grid = type("G", (), {"b": 24, "s": 32})
    again = _render._lupton_composite(np.moveaxis(native, -1, 1), grid)
    assert np.abs(again.astype(int) - rgb.images.astype(int)).max() <= 1


@pytest.mark.parametrize("bands", ["ugriz", "grz", "r"])
def test_flux_bands_follow_the_catalog_photometry(bands):
    s = make_mock_galaxies(60, image_size=48, seed=4, progress=False, bands=bands,
                           image_format="flux")
    assert s.image_shape == (48, 48, len(bands))
    for k, band in enumerate(bands):
        total = s.images[..., k].sum(axis=(1, 2))
        model = 10 ** (-0.4 * (np.asarray(s.catalog[f"modelMag_{band}"]) - 22.5))
        bright = total > 0
        r = np.corrcoef(np.log10(total[bright]), np.log10(model[bright]))[0, 1]
        assert r > 0.8, (band, r)
        # the cutout holds most of the model flux, in nanomaggies
        assert 0.3 < np.median(total[bright] / model[bright]) < 1.5


def test_grz_composite_and_bad_band_arguments():
    grz = make_mock_galaxies(8, image_size=32, seed=2, progress=False, bands="grz")
    gri = make_mock_galaxies(8, image_size=32, seed=2, progress=False)
    assert grz.images.dtype == np.uint8 and not np.array_equal(grz.images, gri.images)
    for kwargs, exc in (({"bands": "ugriz"}, ValueError), ({"bands": "irg"}, ValueError),
                        ({"bands": "gry"}, ValueError), ({"bands": 3}, TypeError),
                        ({"image_format": "jpeg"}, ValueError)):
        with pytest.raises(exc, match="bands|image_format"):
            make_mock_galaxies(4, image_size=16, seed=0, progress=False, **kwargs)
