"""predict(X, return_std=True): calibration tools, the variance head, persistence."""

import numpy as np
import pytest

from _synthetic import blobs
from sfnet import SparseFeatureNet
from sfnet.interpret import (ONE_SIGMA, coverage, coverage_by, coverage_table, fit_std_scale,
                             plot_calibration, plot_coverage_by, wilson_interval)

FAST = {"epochs": 3, "batch_size": 32, "progress": False, "random_state": 0,
        "precision": "fp32", "device": "cpu"}


# ----------------------------------------------------------------------------- numpy tools
def test_coverage_of_gaussian_errors():
    rng = np.random.default_rng(1)
    sigma = rng.uniform(0.5, 3.0, 40000)
    truth = rng.normal(0.0, sigma)
    cov = coverage(truth, 0.0, sigma)
    assert ONE_SIGMA == pytest.approx(0.6827, abs=1e-4)
    np.testing.assert_allclose(cov, [0.6827, 0.95], atol=0.01)
    # half the true sigma covers much less
    assert coverage(truth, 0.0, sigma / 2, nominal=ONE_SIGMA)[0] < 0.45


def test_coverage_multi_target_nan_and_bad_input():
    truth = np.array([[0.0, 0.0], [1.0, 0.5], [3.0, np.nan]])
    cov = coverage(truth, 0.0, 1.0, nominal=[ONE_SIGMA, 0.95, 0.999])
    assert cov.shape == (3, 2)
    np.testing.assert_allclose(cov[:, 0], [2 / 3, 2 / 3, 1.0])
    np.testing.assert_allclose(cov[:, 1], [1.0, 1.0, 1.0])  # NaN row left out
    with pytest.raises(ValueError, match="nominal"):
        coverage(truth, 0.0, 1.0, nominal=1.5)
    with pytest.raises(ValueError, match="same shape"):
        coverage(np.zeros(3), np.zeros(4), 1.0)
    with pytest.raises(ValueError, match="std must be non-negative"):
        coverage(np.zeros(3), 0.0, -1.0)


def test_fit_std_scale_calibrates_by_construction():
    rng = np.random.default_rng(2)
    sigma = rng.uniform(0.1, 1.0, (20000, 2))
    resid = rng.normal(0.0, sigma)
    raw = sigma / np.array([3.0, 0.5])  # the head is off by a different factor per target
    scale = fit_std_scale(resid, raw)
    np.testing.assert_allclose(scale, [3.0, 0.5], rtol=0.03)
    np.testing.assert_allclose(coverage(resid, 0.0, raw * scale), [[0.6827] * 2, [0.95] * 2],
                               atol=0.01)
    with pytest.raises(ValueError, match="same shape"):
        fit_std_scale(resid, raw[:10])
    assert fit_std_scale(np.array([0.3]), np.array([1.0])).tolist() == [1.0]  # too few


def test_fit_std_scale_heavy_tails_err_on_both_sides():
    rng = np.random.default_rng(3)
    resid = rng.standard_t(5, 50000)
    cov = coverage(resid, 0.0, fit_std_scale(resid, np.ones_like(resid)))
    assert cov[0] > ONE_SIGMA and cov[1] < 0.95  # a compromise between the two levels
    assert abs(cov[0] - ONE_SIGMA) < 0.05 and abs(cov[1] - 0.95) < 0.05


def test_coverage_table_and_plot():
    rng = np.random.default_rng(4)
    truth = rng.normal(0, 1, (500, 2))
    table = coverage_table(truth, 0.0, 1.0, names=["a", "b"])
    assert table.colnames == ["nominal", "z", "coverage_a", "coverage_b"]
    assert np.all(np.diff(table["nominal"]) > 0)
    row = np.argmin(np.abs(table["nominal"] - 0.95))
    assert table["z"][row] == pytest.approx(1.96, abs=0.01)
    fig = plot_calibration(truth[:, 0], 0.0, 1.0, title="test")
    assert len(fig.axes) == 2
    fig = plot_calibration(truth, 0.0, np.ones((500, 2)), names=["a", "b"])
    assert len(fig.axes[0].get_lines()) >= 3
    with pytest.raises(ValueError, match="names"):
        coverage_table(truth, 0.0, 1.0, names=["a"])


def test_wilson_interval_known_values():
    lo, hi = wilson_interval(5, 10, 0.95)
    assert lo == pytest.approx(0.2366, abs=1e-4) and hi == pytest.approx(0.7634, abs=1e-4)
    lo, hi = wilson_interval([0, 10], [10, 10], 0.95)
    assert lo[0] == pytest.approx(0, abs=1e-12) and hi[0] == pytest.approx(0.2775, abs=1e-4)
    assert hi[1] == pytest.approx(1, abs=1e-12) and lo[1] == pytest.approx(0.7225, abs=1e-4)


def test_coverage_by_finds_a_planted_miscalibrated_subgroup():
    """sigma underestimated x2 in one mass bin: that bin, and only that one, is flagged."""
    # (a fixed draw: a calibrated bin falls outside its 95 % interval 1 time in 20)
    rng = np.random.default_rng(0)
    n = 5000
    mass = rng.uniform(9, 12, n)
    std = rng.uniform(0.1, 0.3, n)
    bad = (mass >= 10.8) & (mass < 11.4)  # the 4th of 5 bins
    truth = 1.0 + rng.normal(0, 1, n) * np.where(bad, 2 * std, std)
    # an int: bins of equal counts
    equal = coverage_by(truth, 1.0, std, by=mass, bins=5)
    assert len(equal) == 5 and sum(equal["n"]) == n and np.ptp(equal["n"]) <= 1
    np.testing.assert_allclose(equal["bin_lo"][1:], equal["bin_hi"][:-1])
    table = coverage_by(truth, 1.0, std, by=mass, bins=[9, 9.6, 10.2, 10.8, 11.4, 12])
    assert len(table) == 5 and table.meta["interval"] == "wilson"
    assert sum(table["n"]) == n
    assert np.all((table["bin_center"] > table["bin_lo"]) & (table["bin_center"] < table["bin_hi"]))
    flagged = (table["coverage_68_hi"] < ONE_SIGMA) | (table["coverage_68_lo"] > ONE_SIGMA)
    assert list(flagged) == [False, False, False, True, False]
    worst = table[3]
    assert worst["coverage_68"] < 0.45 and worst["coverage_95"] < 0.75
    assert worst["coverage_95_hi"] < 0.95
    assert worst["std_scale"] == pytest.approx(2.0, rel=0.1)
    others = table[[0, 1, 2, 4]]
    np.testing.assert_allclose(others["std_scale"], 1.0, atol=0.1)
    assert np.all((others["coverage_95_lo"] <= 0.95) & (others["coverage_95_hi"] >= 0.95))
    # explicit edges; galaxies outside them are left out; the last edge is included
    t2 = coverage_by(truth, 1.0, std, by=mass, bins=[10.8, 11.4, 12.0])
    assert list(t2["n"]) == [int(bad.sum()), int((mass >= 11.4).sum())]
    assert t2["coverage_68"][0] == pytest.approx(worst["coverage_68"])
    fig = plot_coverage_by(table=table, label="log M*")
    assert len(fig.axes) == 2
    with pytest.raises(ValueError, match="by"):
        coverage_by(truth, 1.0, std, by=mass[:10])
    with pytest.raises(ValueError, match="bins"):
        coverage_by(truth, 1.0, std, by=mass, bins=[12, 9])
    with pytest.raises(ValueError, match="one target"):
        coverage_by(np.c_[truth, truth], 1.0, 1.0, by=mass)


# ----------------------------------------------------------------------------- the estimator
def test_coverage_on_a_mock_of_another_seed():
    """Train on a mock of seed 0; the error bars hold on galaxies of a mock of seed 1."""
    from sfnet.datasets import make_mock_galaxies

    train = make_mock_galaxies(1200, image_size=32, seed=0, progress=False).select("metallicity")
    test = make_mock_galaxies(1200, image_size=32, seed=1, progress=False).select("metallicity")
    model = SparseFeatureNet(k=4, validation_fraction=0.3, **{**FAST, "epochs": 4}).fit(train)
    u = model.uncertainty_
    # calibrated on the half of the held-out galaxies that did not select the epoch
    assert u["source"] == "validation" and u["calibrated_on"] == "validation-B"
    assert u["n"] + u["n_epoch_selection"] == model.n_valid_
    # on the calibration galaxies, close to nominal by construction
    assert abs(u["coverage_68"][0] - ONE_SIGMA) < 0.1 and abs(u["coverage_95"][0] - 0.95) < 0.06
    mean, std = model.predict(test, return_std=True)
    assert mean.shape == std.shape == (len(test),)
    np.testing.assert_allclose(mean, model.predict(test), rtol=0, atol=1e-9)
    assert np.all(std > 0) and np.all(np.isfinite(std))
    truth = np.asarray(test.catalog["oh_p50"], dtype=float)
    cov68, cov95 = coverage(truth, mean, std)
    assert abs(cov68 - ONE_SIGMA) < 0.15, cov68
    assert abs(cov95 - 0.95) < 0.08, cov95


def _noisy_large_blobs(n, seed):
    """Blobs whose target (the radius) is measured with noise growing with the radius."""
    images, r = blobs(n, 32, seed=seed)
    sd = 0.05 + 0.3 * (r - 2)
    return images, r + np.random.default_rng(seed + 100).normal(0, sd), r


def test_variance_head_learns_which_galaxies_are_noisy():
    """The head sees the k active features, which encode the radius, hence the noise."""
    images, y, _ = _noisy_large_blobs(320, seed=0)
    model = SparseFeatureNet(k=4, **{**FAST, "epochs": 6}).fit(images, y)
    test, y_test, r = _noisy_large_blobs(200, seed=1)
    mean, std = model.predict(test, return_std=True)
    large, small = r > 6.5, r < 4
    err = np.abs(mean - y_test)
    assert np.sqrt(np.mean(err[large] ** 2)) > 1.3 * np.sqrt(np.mean(err[small] ** 2))
    # a constant (homoscedastic) error bar would give a ratio of 1
    assert np.median(std[large]) > 1.25 * np.median(std[small])


def test_multi_target_std_save_load_and_recalibration(tmp_path):
    images, r = blobs(96, 32, seed=0)
    y = np.stack([r, 2 * r + 1], axis=1)
    model = SparseFeatureNet(k=2, **FAST).fit(images, y)
    mean, std = model.predict(images[:10], return_std=True)
    assert mean.shape == std.shape == (10, 2)
    assert len(model.uncertainty_["scale"]) == 2

    model.save(tmp_path / "m")
    loaded = SparseFeatureNet.load(tmp_path / "m", device="cpu", precision="fp32")
    assert loaded.uncertainty_ == model.uncertainty_
    mean2, std2 = loaded.predict(images[:10], return_std=True)
    np.testing.assert_allclose(mean2, mean, rtol=1e-6)
    np.testing.assert_allclose(std2, std, rtol=1e-6)

    # Recalibrating on other galaxies changes only the factor, and is persisted too.
    other, r2 = blobs(40, 32, seed=5)
    loaded.calibrate_uncertainty(other, np.stack([r2, 2 * r2 + 1], axis=1))
    assert loaded.uncertainty_["source"] == "calibrate" and loaded.uncertainty_["n"] == 40
    mean3, std3 = loaded.predict(images[:10], return_std=True)
    np.testing.assert_allclose(mean3, mean, rtol=1e-6)
    ratio = std3 / std
    np.testing.assert_allclose(ratio, np.broadcast_to(ratio[:1], ratio.shape), rtol=1e-5)
    loaded.save(tmp_path / "m2")
    again = SparseFeatureNet.load(tmp_path / "m2", device="cpu", precision="fp32")
    np.testing.assert_allclose(again.predict(images[:10], return_std=True)[1], std3, rtol=1e-6)
    with pytest.raises(ValueError, match="columns"):
        loaded.calibrate_uncertainty(other, r2)


def test_without_validation_calibrates_on_training_data():
    images, r = blobs(64, 32, seed=0)
    model = SparseFeatureNet(k=2, validation_fraction=0.0, **FAST).fit(images, r)
    assert model.uncertainty_["source"] == "training" and model.uncertainty_["n"] == 64


def test_seed_checkpoints_have_no_std(tmp_path, monkeypatch):
    from test_seed_checkpoint import _write_seed_file

    path = tmp_path / "resnet18-topk_2-metallicity.pth"
    _write_seed_file(path, "model", "ResNet18TopK", 1, 2, monkeypatch)
    model = SparseFeatureNet.from_seed_checkpoint(path, mean=(20, 20, 20), std=(30, 30, 30),
                                                 device="cpu", precision="fp32")
    images = np.zeros((2, 160, 160, 3), dtype=np.uint8)
    assert model.predict(images).shape == (2,)
    with pytest.raises(ValueError, match="return_std=True needs a model with a variance head"):
        model.predict(images, return_std=True)
    with pytest.raises(ValueError, match="variance head"):
        model.calibrate_uncertainty(images, np.zeros(2))


def _held_out_rows(model, n):
    from sfnet.datasets._split import split_positions

    return set(split_positions(n, model.validation_fraction, model.seed_, min_valid=1)[1])


def test_fit_calibrates_on_the_half_that_did_not_select_the_epoch():
    images, r = blobs(120, 32, seed=0)
    params = dict(k=2, validation_fraction=0.4, **{**FAST, "epochs": 1})
    model = SparseFeatureNet(**params).fit(images, r)
    u = model.uncertainty_
    held_out = _held_out_rows(model, len(r))
    half_b = set(u["rows"])
    assert u["calibrated_on"] == "validation-B" and u["source"] == "validation"
    assert half_b < held_out and u["n"] == len(half_b) == model.n_valid_ // 2
    assert u["n_epoch_selection"] == model.n_valid_ - u["n"]
    half_a = sorted(held_out - half_b)
    # targets of half A (epoch selection only) do not move the calibration ...
    r_a = r.copy()
    r_a[half_a] += np.random.default_rng(1).normal(0, 3, len(half_a))
    same = SparseFeatureNet(**params).fit(images, r_a)
    assert same.uncertainty_["rows"] == u["rows"]
    np.testing.assert_allclose(same.uncertainty_["scale"], u["scale"], rtol=1e-12)
    # ... those of half B do
    r_b = r.copy()
    r_b[sorted(half_b)] += np.random.default_rng(1).normal(0, 3, len(half_b))
    other = SparseFeatureNet(**params).fit(images, r_b)
    assert abs(other.uncertainty_["scale"][0] - u["scale"][0]) > 0.1 * u["scale"][0]


def test_fit_calibrates_from_the_kept_epochs_validation_pass():
    """The factor fitted from the outputs collected during training equals the one of a
    separate pass of the final model over the same galaxies."""
    images, r = blobs(120, 32, seed=2)
    for keep in ("best", "last"):
        model = SparseFeatureNet(k=2, validation_fraction=0.4, keep_epoch=keep,
                                 **FAST).fit(images, r)
        u = dict(model.uncertainty_)
        rows = u["rows"]
        if keep == "last":  # nothing selected: all held-out galaxies calibrate
            assert u["calibrated_on"] == "validation" and u["n"] == model.n_valid_
        model.calibrate_uncertainty(images[rows], r[rows])
        np.testing.assert_allclose(model.uncertainty_["scale"], u["scale"], rtol=1e-5)


def test_keep_epoch_last_takes_no_snapshot(monkeypatch):
    import sfnet.training

    copies = []
    real = sfnet.training._state_copy

    def counting(network):
        copies.append(1)
        return real(network)

    monkeypatch.setattr(sfnet.training, "_state_copy", counting)
    images, r = blobs(64, 32, seed=0)
    last = SparseFeatureNet(k=2, keep_epoch="last", **FAST).fit(images, r)
    assert copies == [] and last.best_epoch_ == 3
    SparseFeatureNet(k=2, validation_fraction=0.0, **FAST).fit(images, r)
    assert copies == []  # no validation: the last epoch is kept, nothing to snapshot
    best = SparseFeatureNet(k=2, keep_epoch="best", **FAST).fit(images, r)
    assert 1 <= len(copies) <= 3
    # the kept weights are those of the last epoch: the same as the "best" run's when
    # its best epoch is the last one, and resuming is not involved
    if best.best_epoch_ == 3:
        np.testing.assert_allclose(best.predict(images), last.predict(images), rtol=1e-5)


# ----------------------------------------------------------------------------- joint covariance
def _correlated_targets(n, seed):
    """Four targets sharing most of their (image-independent) noise: correlation 0.9."""
    rng = np.random.default_rng(seed)
    images = rng.integers(0, 255, (n, 16, 16, 3), dtype=np.uint8)
    shared = rng.normal(0.0, 0.3, n)
    y = np.array([1.2, 1.8, 0.9, 1.3]) + shared[:, None] + rng.normal(0.0, 0.1, (n, 4))
    return images, y


def test_return_cov_learns_correlations_and_is_positive_definite(tmp_path):
    images, y = _correlated_targets(320, seed=0)
    # ~190 steps: the correlation head (10x the learning rate) has to travel from 0; and
    # the last epoch, as on these random images the validation RMSE is lowest after the
    # first (keep_epoch="best" would keep a barely trained head: measured median 0.07)
    model = SparseFeatureNet(k=2, target="bpt_lines", learning_rate=3e-3,
                             **{**FAST, "epochs": 12, "batch_size": 16,
                                "keep_epoch": "last"}).fit(images, y)
    assert model.network_.has_correlation_head
    mean, cov = model.predict(images[:50], return_cov=True)
    assert mean.shape == (50, 4) and cov.shape == (50, 4, 4)
    np.testing.assert_allclose(cov, cov.transpose(0, 2, 1), atol=1e-12)
    assert np.linalg.eigvalsh(cov).min() > 0
    # the diagonal is the calibrated std of predict(return_std=True)
    mean2, std = model.predict(images[:50], return_std=True)
    np.testing.assert_allclose(mean, mean2, rtol=1e-9)
    np.testing.assert_allclose(np.sqrt(np.einsum("nii->ni", cov)), std, rtol=1e-6)
    corr = cov / (std[:, :, None] * std[:, None, :])
    iu = np.triu_indices(4, 1)
    off = corr[:, iu[0], iu[1]]
    # the labels' correlation is 0.9; the residuals' (what the head should learn) is a
    # little lower, as the network's own errors add to it: measure it on new galaxies
    test, y_test = _correlated_targets(300, seed=1)
    resid = y_test - model.predict(test)
    empirical = np.median(np.corrcoef(resid.T)[iu])
    # measured: 0.70 learned for an empirical 0.88 (0.81 with 400 galaxies)
    assert np.median(off) > 0.5 and empirical - np.median(off) < 0.25, (np.median(off),
                                                                         empirical)
    # the table's line-ratio errors are the propagation of the covariance
    table = model.predict_table(images[:50], return_std=True)
    sx = np.sqrt(cov[:, 0, 0] + cov[:, 1, 1] - 2 * cov[:, 0, 1])
    np.testing.assert_allclose(table["log_nii_ha_std"].value, sx, rtol=1e-6)
    np.testing.assert_allclose(table["log_nii_ha_pred"].value, mean[:, 0] - mean[:, 1])
    probs = np.column_stack([table[c] for c in ("p_star_forming", "p_composite", "p_agn")])
    np.testing.assert_allclose(probs.sum(axis=1), 1.0)
    # correlated errors cancel in the ratio: sqrt(1 - rho) of the independent value
    assert np.median(sx) < 0.8 * np.median(np.hypot(std[:, 0], std[:, 1]))
    model.save(tmp_path / "m")
    loaded = SparseFeatureNet.load(tmp_path / "m", device="cpu", precision="fp32")
    np.testing.assert_allclose(loaded.predict(images[:50], return_cov=True)[1], cov, rtol=1e-6)


def test_return_cov_needs_two_targets():
    images, r = blobs(64, 16, seed=0)
    model = SparseFeatureNet(k=2, **{**FAST, "epochs": 1}).fit(images, r)
    assert not model.network_.has_correlation_head
    with pytest.raises(ValueError, match="correlation head"):
        model.predict(images, return_cov=True)


def test_fit_correlation_weight_finds_which_correlations_describe_the_residuals():
    from sfnet.interpret import fit_correlation_weight

    rng = np.random.default_rng(3)
    n, rho = 2000, 0.8
    # the residuals share one correlation, the predicted matrices say "none"
    common = np.array([[1.0, rho], [rho, 1.0]])
    e = rng.multivariate_normal([0, 0], common, n)
    weight, held = fit_correlation_weight(e, np.repeat(np.eye(2)[None], n, axis=0))
    assert weight > 0.95 and held[0, 1] == pytest.approx(rho, abs=0.03)
    # per-galaxy correlations of opposite signs, predicted right: no blending
    sign = np.where(np.arange(n) < n // 2, 1.0, -1.0)
    corr = np.array([[[1.0, s * rho], [s * rho, 1.0]] for s in sign])
    e = np.array([rng.multivariate_normal([0, 0], c) for c in corr])
    weight, held = fit_correlation_weight(e, corr)
    assert weight < 0.05 and abs(held[0, 1]) < 0.1
    with pytest.raises(ValueError, match="too few"):
        fit_correlation_weight(e[:2], corr[:2])


def test_correlations_are_calibrated_on_held_out_galaxies(tmp_path):
    """A short fit's correlation head under-learns (measured: median 0.72 for residuals
    correlated at 0.86); the calibration on the held-out half moves the predicted
    correlations to the residuals' (0.89)."""
    images, y = _correlated_targets(320, seed=0)
    model = SparseFeatureNet(k=2, target="bpt_lines", learning_rate=3e-3,
                             **{**FAST, "epochs": 4, "batch_size": 16}).fit(images, y)
    calibrated = model.uncertainty_["correlation"]
    assert 0.0 <= calibrated["weight"] <= 1.0
    test, y_test = _correlated_targets(300, seed=1)
    mean, cov = model.predict(test, return_cov=True)
    std = np.sqrt(np.einsum("nii->ni", cov))
    iu = np.triu_indices(4, 1)
    predicted = np.median((cov / (std[:, :, None] * std[:, None, :]))[:, iu[0], iu[1]])
    empirical = np.median(np.corrcoef((y_test - mean).T)[iu])
    assert predicted == pytest.approx(empirical, abs=0.1), (predicted, empirical,
                                                            model.best_epoch_, calibrated)
    assert np.linalg.eigvalsh(cov).min() > 0
    model.save(tmp_path / "m")
    loaded = SparseFeatureNet.load(tmp_path / "m", device="cpu", precision="fp32")
    assert loaded.uncertainty_["correlation"] == calibrated
    np.testing.assert_allclose(loaded.predict(test, return_cov=True)[1], cov, rtol=1e-6)
