"""Mean and photometric baselines on the mock."""

import numpy as np
import pytest

import sfnet.baselines
from sfnet.baselines import (GBM_FEATURES, GBM_GRID, PHOTOMETRIC_FEATURES, catalog_photometry,
                             mean_baseline_rmse, photometric_baseline, photometric_features)
from sfnet.datasets import GalaxySample, make_mock_galaxies

#: One setting instead of the grid, for the tests that do not check the tuning.
SMALL_GRID = {"learning_rate": (0.1,), "max_leaf_nodes": (11,), "l2_regularization": (0.0,)}


@pytest.fixture(scope="module")
def sample():
    return make_mock_galaxies(4000, image_size=32, seed=11, progress=False)


@pytest.fixture(scope="module")
def split(sample):
    return sample.select("metallicity").split(0.3, seed=0)


def _latent(sample):
    """Image parameters of the mock galaxies (what a CNN could read off the image)."""
    cat = sample.catalog
    cols = [np.asarray(cat[k], dtype=float) for k in (
        "mock_disk_g_r", "mock_disk_r_i", "mock_bulge_g_r", "mock_bt", "mock_axis_ratio",
        "mock_clump_fraction", "petroMag_r")]
    cols.append(np.log10(np.asarray(cat["petroR90_r"], dtype=float)))
    return np.column_stack(cols)


def _quadratic(x):
    n, k = x.shape
    terms = [np.ones(n)] + [x[:, i] for i in range(k)]
    terms += [x[:, i] * x[:, j] for i in range(k) for j in range(i, k)]
    return np.column_stack(terms)


def test_features_shape_names_and_colours(sample):
    feats = photometric_features(sample)
    assert feats.shape == (len(sample), 4)
    assert PHOTOMETRIC_FEATURES == ("g_r", "r_i", "petroMag_r", "log_petroR90_r")
    assert np.all(np.isfinite(feats))
    assert np.array_equal(feats[:, 2], np.asarray(sample.catalog["petroMag_r"]))
    # the aperture colours track the true colours of the galaxies
    disk = np.asarray(sample.catalog["mock_disk_g_r"])
    assert np.corrcoef(feats[:, 0], disk)[0, 1] > 0.6


def test_features_do_not_need_mock_meta(sample):
    """Real samples have no pixel_scale in their meta: the paper's field of view is assumed."""
    sub = sample[:50]
    plain = GalaxySample(sub.images, sub.catalog.copy())
    plain.catalog.meta.clear()
    assert np.allclose(photometric_features(plain), photometric_features(sub))


def test_photometric_baseline_between_mean_and_image_parameters(sample, split):
    train, valid = split
    res = photometric_baseline(train, valid, model="linear")
    mean = mean_baseline_rmse(train, valid)
    assert res["mean_rmse"] == pytest.approx(mean)
    assert res["rmse"] < 0.85 * mean                  # photometry knows something ...
    # ... but clearly less than the galaxies' image parameters
    xt, xv = _latent(train), _latent(valid)
    mu, sd = xt.mean(0), xt.std(0)
    yt = np.asarray(train.catalog["oh_p50"])
    yv = np.asarray(valid.catalog["oh_p50"])
    coef, *_ = np.linalg.lstsq(_quadratic((xt - mu) / sd), yt, rcond=None)
    latent_rmse = np.sqrt(np.mean((_quadratic((xv - mu) / sd) @ coef - yv) ** 2))
    assert latent_rmse < 0.8 * res["rmse"]
    oracle = sample.catalog.meta["oracle_rmse"]
    assert res["rmse"] > 1.4 * oracle
    assert latent_rmse > 0.9 * oracle


def test_baseline_result_is_consistent(split):
    train, valid = split
    res = photometric_baseline(train, valid, model="linear")
    assert res["model"] == "linear"
    assert res["n_valid"] == len(valid) == len(res["predictions"]) == len(res["truth"])
    assert res["n_train"] == len(train)
    assert np.array_equal(res["index"], np.arange(len(valid)))
    assert np.allclose(res["truth"], np.asarray(valid.catalog["oh_p50"]))
    assert res["rmse"] == pytest.approx(np.sqrt(np.mean((res["predictions"] - res["truth"]) ** 2)))
    assert res["coefficients"].shape == (4,)
    assert res["feature_names"] == PHOTOMETRIC_FEATURES
    assert res["target_names"] == ("oh_p50",)
    feats = photometric_features(valid)
    assert np.allclose(res["intercept"] + feats @ res["coefficients"], res["predictions"])


def test_baseline_applies_the_target_cuts(sample, split):
    """Unselected samples give the same fit: the cuts are applied inside."""
    train, valid = split
    full_train, full_valid = sample.split(0.3, seed=0)
    res = photometric_baseline(full_train, full_valid, model="linear")
    sel = full_valid.catalog["oh_p50"] > 0
    assert res["n_valid"] < len(full_valid)
    assert np.all(np.asarray(full_valid.catalog["oh_p50"])[res["index"]] > 0)
    assert res["n_valid"] <= int(np.sum(sel))


def test_multi_target_baseline(sample):
    train, valid = sample.split(0.3, seed=1)
    res = photometric_baseline(train, valid, target="bpt_lines", model="linear")
    assert res["rmse"].shape == (4,)
    assert res["coefficients"].shape == (4, 4)
    assert res["predictions"].shape == (res["n_valid"], 4)
    assert res["target_names"] == ("log_N2", "log_Ha", "log_O3", "log_Hb")
    assert np.all(res["rmse"] < res["mean_rmse"])
    assert mean_baseline_rmse(train, valid, target="bpt_lines").shape == (4,)


def test_bad_inputs(sample):
    with pytest.raises(TypeError, match="train"):
        photometric_baseline(np.zeros((3, 8, 8, 3)), sample, model="linear")
    with pytest.raises(TypeError, match="train"):
        photometric_baseline(np.zeros((3, 8, 8, 3)), sample)
    with pytest.raises(ValueError, match="model"):
        photometric_baseline(sample, sample, model="forest")
    with pytest.raises(TypeError, match="random_state"):
        photometric_baseline(sample, sample, random_state=0.5)
    cat = sample.catalog.copy()
    del cat["modelMag_u"]
    with pytest.raises(ValueError, match="modelMag_u"):
        photometric_baseline(GalaxySample(sample.images, cat), sample)
    with pytest.raises(ValueError, match="at least 10"):
        photometric_baseline(sample[:20], sample)
    with pytest.raises(TypeError, match="valid"):
        mean_baseline_rmse(sample, "valid")
    sub = sample[:30]
    cat = sub.catalog.copy()
    del cat["petroR90_r"]
    with pytest.raises(ValueError, match="petroR90_r"):
        photometric_features(GalaxySample(sub.images, cat))
    quenched = sample[np.asarray(sample.catalog["mock_quenched"], dtype=bool)]
    with pytest.raises(ValueError, match="metallicity"):
        photometric_baseline(sample, quenched, model="linear")
    with pytest.raises(ValueError, match="metallicity"):
        photometric_baseline(sample, quenched)
    with pytest.raises(ValueError, match="train"):
        mean_baseline_rmse(quenched, sample)


# ------------------------------------------------------------ gradient boosting
def test_catalog_photometry_columns(sample):
    x = catalog_photometry(sample.catalog)
    cat = sample.catalog
    assert x.shape == (len(sample), len(GBM_FEATURES)) == (len(sample), 9)
    assert np.allclose(x[:, 0], np.asarray(cat["modelMag_u"]) - np.asarray(cat["modelMag_g"]))
    assert np.allclose(x[:, 3], np.asarray(cat["modelMag_i"]) - np.asarray(cat["modelMag_z"]))
    assert np.allclose(x[:, 7], np.asarray(cat["petroR90_r"]) / np.asarray(cat["petroR50_r"]))
    assert np.array_equal(x[:, 8], np.asarray(cat["z"]))
    bad = cat[:3].copy()
    bad["modelMag_u"][0] = -9999.0                      # SDSS's missing value
    assert np.isnan(catalog_photometry(bad)[0, 0])
    with pytest.raises(TypeError, match="catalog"):
        catalog_photometry(np.zeros((3, 9)))


def test_gbm_baseline_is_tuned_and_beats_the_linear_fit(split):
    train, valid = split
    res = photometric_baseline(train, valid)
    linear = photometric_baseline(train, valid, model="linear")
    assert res["model"] == "gbm"
    assert res["feature_names"] == GBM_FEATURES
    assert res["rmse"] < linear["rmse"]
    assert res["rmse"] < 0.85 * res["mean_rmse"]
    assert res["rmse"] == pytest.approx(np.sqrt(np.mean((res["predictions"] - res["truth"]) ** 2)))
    assert set(res["params"]) == set(GBM_GRID)
    assert all(res["params"][k] in GBM_GRID[k] for k in GBM_GRID)
    assert 0 < res["cv_rmse"] < res["mean_rmse"] and res["n_iter"] >= 1
    assert res["n_train"] == len(train) and res["n_valid"] == len(valid)


def test_gbm_baseline_never_looks_at_valid(split, monkeypatch):
    """Tuning and fitting use train only: valid's truth does not change the predictions."""
    monkeypatch.setattr(sfnet.baselines, "GBM_GRID", SMALL_GRID)
    train, valid = split
    res = photometric_baseline(train, valid, random_state=3)
    cat = valid.catalog.copy()
    cat["oh_p50"] = np.asarray(cat["oh_p50"]) + np.random.default_rng(0).normal(0, 0.3, len(cat))
    other = photometric_baseline(train, GalaxySample(valid.images, cat), random_state=3)
    assert np.array_equal(res["predictions"], other["predictions"])
    assert other["rmse"] > res["rmse"]
    again = photometric_baseline(train, valid, random_state=3)
    assert np.array_equal(res["predictions"], again["predictions"])


def test_gbm_multi_target(sample, monkeypatch):
    monkeypatch.setattr(sfnet.baselines, "GBM_GRID", SMALL_GRID)
    train, valid = sample.split(0.3, seed=1)
    res = photometric_baseline(train, valid, target="bpt_lines")
    assert res["rmse"].shape == (4,) and res["cv_rmse"].shape == (4,)
    assert res["predictions"].shape == (res["n_valid"], 4)
    assert len(res["params"]) == 4
    assert np.all(res["rmse"] < res["mean_rmse"])
