"""BPT demarcation curves, classification and line ratios (sfnet.interpret.bpt)."""

import numpy as np
import pytest
from astropy.table import Table

from sfnet.interpret import BPT_CLASSES, bpt_class, kauffmann03, kewley01, line_ratios


def test_kauffmann03_known_values():
    # 0.61 / (x - 0.05) + 1.30
    assert kauffmann03(-0.56) == pytest.approx(0.30)
    assert kauffmann03(0.0) == pytest.approx(1.30 - 0.61 / 0.05)
    assert kauffmann03(-1.0) == pytest.approx(0.61 / -1.05 + 1.30)
    assert isinstance(kauffmann03(-0.5), float)


def test_kewley01_known_values():
    # 0.61 / (x - 0.47) + 1.19
    assert kewley01(-0.14) == pytest.approx(0.19)
    assert kewley01(0.0) == pytest.approx(0.61 / -0.47 + 1.19)
    assert kewley01(0.3) == pytest.approx(0.61 / -0.17 + 1.19)


def test_curves_nan_beyond_asymptote_and_arrays():
    x = np.array([-1.0, 0.0499, 0.05, 0.2, 0.4699, 0.47, 1.0, np.nan])
    k03 = kauffmann03(x)
    k01 = kewley01(x)
    assert k03.shape == x.shape
    assert np.all(np.isfinite(k03[:2]))
    assert np.all(np.isnan(k03[2:]))
    assert np.all(np.isfinite(k01[:5]))
    assert np.all(np.isnan(k01[5:]))
    assert np.isnan(kauffmann03(0.05)) and np.isnan(kewley01(0.6))
    # Kewley lies above Kauffmann over the usual range of [NII]/Ha
    xs = np.linspace(-1.2, 0.04, 50)
    assert np.all(kewley01(xs) > kauffmann03(xs))


def test_bpt_class_known_points():
    x = [-0.6, -0.2, 0.2, 0.6, -0.3, 0.0, 0.3, 0.46]
    y = [-0.5, 0.0, 0.8, -0.5, 1.2, -1.0, -3.0, -70.0]
    got = bpt_class(x, y).tolist()
    assert got == ["star-forming",   # below K03
                   "composite",      # between K03 and K01
                   "AGN",            # above K01
                   "AGN",            # x >= 0.47
                   "AGN",            # far above both
                   "composite",      # K03(0) = -10.9 < -1 < K01(0) = -0.11
                   "composite",      # x beyond K03's asymptote, below K01(0.3) = -2.4
                   "composite"]      # just left of K01's asymptote, below K01 = -59.8
    assert set(got) <= set(BPT_CLASSES)


def test_bpt_class_boundaries_and_missing():
    x = np.array([-0.56, -0.14, 0.05, 0.47, np.nan, -0.3])
    y = np.array([kauffmann03(-0.56), kewley01(-0.14), -5.0, -5.0, 0.0, np.nan])
    got = bpt_class(x, y)
    assert got[0] == "composite"      # on K03 is not below it
    assert got[1] == "composite"      # on K01 is not above it
    assert got[2] == "composite"      # x = 0.05: no longer star-forming
    assert got[3] == "AGN"            # x = 0.47: AGN
    assert got[4] == got[5] == "unclassified"
    # low-metallicity HII regions where K03 lies above K01 stay star-forming
    assert bpt_class(-1.6, 0.9) == "star-forming"
    # broadcasting and shape
    assert bpt_class(np.full((2, 3), -1.0), -1.0).shape == (2, 3)


def _line_catalog():
    t = Table()
    t["nii_6584_flux"] = [10.0, 50.0, -1.0, 30.0]
    t["h_alpha_flux"] = [100.0, 100.0, 100.0, 100.0]
    t["oiii_5007_flux"] = [5.0, 80.0, 10.0, 30.0]
    t["h_beta_flux"] = [35.0, 20.0, 35.0, 0.0]
    for c in ("nii_6584_flux", "h_alpha_flux", "oiii_5007_flux", "h_beta_flux"):
        t[c + "_err"] = np.abs(t[c]) / 10
    t["oiii_5007_flux_err"][1] = 40.0  # S/N = 2 for galaxy 1
    return t


def test_line_ratios_from_fluxes():
    t = _line_catalog()
    x, y = line_ratios(t)
    assert x[0] == pytest.approx(-1.0)
    assert y[0] == pytest.approx(np.log10(5 / 35))
    assert x[1] == pytest.approx(np.log10(0.5))
    assert np.isnan(x[2]) and np.isfinite(y[2])    # negative [NII] flux
    assert np.isnan(y[3]) and np.isfinite(x[3])    # zero H-beta
    x, y = line_ratios(t, min_snr=3)
    assert np.isfinite(x[0]) and np.isnan(x[1]) and np.isnan(y[1])
    assert bpt_class(*line_ratios(t))[:2].tolist() == ["star-forming", "AGN"]


def test_line_ratios_from_log_columns_and_predictions():
    t = Table({"log_N2": [1.0], "log_Ha": [2.0], "log_O3": [0.5], "log_Hb": [1.0]})
    x, y = line_ratios(t)
    assert (x[0], y[0]) == pytest.approx((-1.0, -0.5))
    pred = np.array([[1.0, 2.0, 0.5, 1.0], [2.3, 2.0, 1.8, 1.0]])
    x, y = line_ratios(pred)
    np.testing.assert_allclose(x, [-1.0, 0.3])
    np.testing.assert_allclose(y, [-0.5, 0.8])
    assert bpt_class(x, y).tolist() == ["star-forming", "AGN"]
    # another column order
    x2, y2 = line_ratios(pred[:, [1, 0, 3, 2]], order=("log_Ha", "log_N2", "log_Hb", "log_O3"))
    np.testing.assert_allclose(x2, x)
    np.testing.assert_allclose(y2, y)


def test_line_ratios_errors_name_the_problem():
    with pytest.raises(ValueError, match="nii_6584_flux"):
        line_ratios(Table({"h_alpha_flux": [1.0]}))
    with pytest.raises(ValueError, match="shape"):
        line_ratios(np.zeros((3, 3)))
    with pytest.raises(ValueError, match="order"):
        line_ratios(np.zeros((3, 4)), order=("a", "b", "c", "d"))


def test_bpt_class_agrees_with_mock_bptclass():
    """The mock assigns MPA-JHU ``bptclass`` codes (Brinchmann+04) from its noisy lines;
    `bpt_class` on `line_ratios(..., min_snr=3)` must give the same classes."""
    from sfnet.datasets import make_mock_galaxies

    sample = make_mock_galaxies(200, image_size=32, seed=3)
    x, y = line_ratios(sample, min_snr=3)
    got = bpt_class(x, y)
    code = np.asarray(sample.catalog["bptclass"])
    for value, name in ((1, "star-forming"), (3, "composite"), (4, "AGN")):
        rows = code == value
        assert np.all(got[rows] == name), (value, np.unique(got[rows]))
    assert np.all(got[np.isin(code, (-1, 2, 5))] == "unclassified")
    assert np.count_nonzero(np.isin(code, (1, 3, 4))) > 20


# ----------------------------------------------------------------------------- probabilities
def _random_covariances(rng, n):
    a = rng.normal(0.0, 0.15, (n, 4, 4))
    return a @ a.transpose(0, 2, 1) + np.eye(4) * 0.002


def _brute_force_classes(draws):
    """Classify (..., 4) log fluxes with the two curves written out here, independently
    of sfnet: star-forming below Kauffmann+03 (x < 0.05), AGN above Kewley+01 or x >= 0.47."""
    x = draws[..., 0] - draws[..., 1]
    y = draws[..., 2] - draws[..., 3]
    with np.errstate(divide="ignore", invalid="ignore"):
        k03 = np.where(x < 0.05, 0.61 / (x - 0.05) + 1.30, np.nan)
        k01 = np.where(x < 0.47, 0.61 / (x - 0.47) + 1.19, np.nan)
        sf = (x < 0.05) & (y < k03)
        agn = ~sf & ((x >= 0.47) | (y > k01))
    return np.stack([sf, ~sf & ~agn, agn], axis=-1)


def test_bpt_probabilities_match_brute_force_monte_carlo():
    from sfnet.interpret import bpt_probabilities

    rng = np.random.default_rng(11)
    n = 12
    # galaxies near the curves, where the probabilities are neither 0 nor 1
    ratios = np.column_stack([rng.uniform(-0.6, 0.2, n), rng.uniform(-0.4, 0.6, n)])
    ha, hb = rng.uniform(1.5, 2.5, n), rng.uniform(1.0, 1.5, n)
    mean = np.column_stack([ratios[:, 0] + ha, ha, ratios[:, 1] + hb, hb])
    cov = _random_covariances(rng, n)
    p = bpt_probabilities(mean, cov, n_samples=20000, seed=1)
    assert p.shape == (n, 3)
    np.testing.assert_allclose(p.sum(axis=1), 1.0)
    # independent: Cholesky draws from another generator, 200000 per galaxy
    ref_rng = np.random.default_rng(99)
    ref = np.empty_like(p)
    for i in range(n):
        draws = ref_rng.multivariate_normal(mean[i], cov[i], size=200000, method="cholesky")
        ref[i] = _brute_force_classes(draws).mean(axis=0)
    # Monte-Carlo error of p with 20000 draws is at most 0.0035; 5 sigma
    np.testing.assert_allclose(p, ref, atol=0.018)
    assert ((ref > 0.05) & (ref < 0.95)).any()  # the test is not trivially all 0/1
    # the same seed gives the same probabilities
    np.testing.assert_array_equal(p, bpt_probabilities(mean, cov, n_samples=20000, seed=1))


def test_bpt_probabilities_bad_input_and_nan_rows():
    from sfnet.interpret import bpt_probabilities

    mean = np.array([[1.2, 1.8, 0.9, 1.3], [np.nan, 1.8, 0.9, 1.3]])
    cov = np.repeat(np.eye(4)[None] * 1e-4, 2, axis=0)
    p = bpt_probabilities(mean, cov, n_samples=100)
    np.testing.assert_array_equal(p[0], [1.0, 0.0, 0.0])
    assert np.isnan(p[1]).all()
    with pytest.raises(ValueError, match="mean"):
        bpt_probabilities(mean[:, :3], cov)
    with pytest.raises(ValueError, match="cov"):
        bpt_probabilities(mean, cov[:1])
    with pytest.raises(ValueError, match="n_samples"):
        bpt_probabilities(mean, cov, n_samples=0)


def test_line_ratio_errors_propagate_the_covariance():
    from sfnet.interpret import line_ratio_errors

    rng = np.random.default_rng(5)
    mean = rng.normal(1.5, 0.3, (6, 4))
    cov = _random_covariances(rng, 6)
    x, y, sx, sy = line_ratio_errors(mean, cov)
    np.testing.assert_allclose(x, mean[:, 0] - mean[:, 1])
    np.testing.assert_allclose(y, mean[:, 2] - mean[:, 3])
    np.testing.assert_allclose(sx ** 2, cov[:, 0, 0] + cov[:, 1, 1] - 2 * cov[:, 0, 1])
    np.testing.assert_allclose(sy ** 2, cov[:, 2, 2] + cov[:, 3, 3] - 2 * cov[:, 2, 3])
    # correlated fluxes: the ratio's error is not the independent sum
    assert not np.allclose(sx ** 2, cov[:, 0, 0] + cov[:, 1, 1])


def test_plot_bpt_probability():
    from sfnet.interpret import bpt_probabilities, line_ratio_errors, plot_bpt_probability

    rng = np.random.default_rng(2)
    mean = np.column_stack([rng.normal(1.5, 0.3, 30), rng.normal(1.9, 0.2, 30),
                            rng.normal(1.0, 0.4, 30), rng.normal(1.3, 0.2, 30)])
    cov = _random_covariances(rng, 30)
    p = bpt_probabilities(mean, cov, n_samples=200)
    _, _, sx, sy = line_ratio_errors(mean, cov)
    fig = plot_bpt_probability(mean, p, errors=(sx, sy))
    colours = fig.axes[0].collections[-1].get_array()
    np.testing.assert_allclose(np.sort(np.asarray(colours)), np.sort(p[:, 2]))
    assert fig.axes[1].get_ylabel() == "P(AGN)"
    with pytest.raises(ValueError, match="probabilities"):
        plot_bpt_probability(mean, p[:5])
