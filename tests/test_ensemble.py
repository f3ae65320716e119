"""SparseFeatureEnsemble (sfnet.ensemble): members, total/epistemic std, persistence, CLI."""

import numpy as np
import pytest
from sklearn.base import clone

from sfnet import SparseFeatureEnsemble, SparseFeatureNet

FAST = {"k": 2, "batch_size": 32, "progress": False, "random_state": 0, "precision": "fp32",
        "device": "cpu", "validation_fraction": 0.0}


def _brightness(values, seed):
    """16 px images whose brightness is ``values`` (0-1) plus pixel noise."""
    rng = np.random.default_rng(seed)
    img = values[:, None, None, None] * 200 + 20 + rng.normal(0, 6, (len(values), 16, 16, 3))
    return np.clip(img, 0, 255).astype(np.uint8)


def test_epistemic_std_grows_away_from_the_training_data(tmp_path):
    rng = np.random.default_rng(0)
    y = rng.uniform(0.3, 0.6, 192)  # trained on brightness in [0.3, 0.6] only
    ens = SparseFeatureEnsemble(3, epochs=4, learning_rate=1e-2, **FAST).fit(
        _brightness(y, 1), y)
    assert [m.seed_ for m in ens.members_] == [0, 1, 2]
    assert len(ens.member_seconds_) == 3
    inside = np.linspace(0.35, 0.55, 40)
    outside = np.r_[np.linspace(0.0, 0.1, 20), np.linspace(0.85, 1.0, 20)]
    _, _, epi_in = ens.predict_components(_brightness(inside, 2))
    mean_out, alea_out, epi_out = ens.predict_components(_brightness(outside, 3))
    assert np.median(epi_out) > 1.5 * np.median(epi_in), (np.median(epi_out),
                                                           np.median(epi_in))
    # the total is the quadrature sum; the mean is the members' mean
    images = _brightness(outside, 3)
    mean, std = ens.predict(images, return_std=True)
    np.testing.assert_allclose(std, np.hypot(alea_out, epi_out))
    members = np.stack([m.predict(images) for m in ens.members_])
    np.testing.assert_allclose(mean, members.mean(axis=0))
    np.testing.assert_allclose(epi_out, members.std(axis=0))
    # one directory, a sub-directory per member, no pickle
    ens.save(tmp_path / "ens")
    assert sorted(p.name for p in (tmp_path / "ens").iterdir()) == [
        "member_0", "member_1", "member_2", "sfnet-ensemble.json"]
    loaded = SparseFeatureEnsemble.load(tmp_path / "ens", device="cpu", precision="fp32")
    assert loaded.n_members == 3 and loaded.seed_ == 0
    np.testing.assert_allclose(loaded.predict(images, return_std=True)[1], std, rtol=1e-6)
    table = loaded.predict_table(images, return_std=True)
    np.testing.assert_allclose(table["oh_p50_pred"].value, mean, rtol=1e-6)


def test_calibrate_uncertainty_fits_the_total(tmp_path):
    """Members calibrated alone plus the epistemic spread over-cover; one factor for the
    total, fitted on galaxies no member trained on, covers new galaxies as it should."""
    from sfnet.interpret import coverage

    rng = np.random.default_rng(5)

    def task(n, seed):
        truth = rng.uniform(0.3, 0.6, n)
        return _brightness(truth, seed), truth + rng.normal(0.0, 0.05, n)

    ens = SparseFeatureEnsemble(3, epochs=4, learning_rate=1e-2,
                                **{**FAST, "validation_fraction": 0.2}).fit(*task(192, 6))
    assert ens.std_scale_ is None
    calib, test = task(300, 7), task(600, 8)
    ens.calibrate_uncertainty(*calib)
    assert ens.calibration_["n"] == 300 and ens.std_scale_.shape == (1,)
    mean, std = ens.predict(test[0], return_std=True)
    mean_c, alea, epi = ens.predict_components(test[0])
    np.testing.assert_allclose(std, np.hypot(alea, epi))  # both parts scaled alike
    cov68, cov95 = coverage(test[1], mean, std)
    assert 0.6 < cov68 < 0.77 and 0.9 < cov95 < 0.99, (cov68, cov95)
    ens.save(tmp_path / "ens")
    loaded = SparseFeatureEnsemble.load(tmp_path / "ens", device="cpu", precision="fp32")
    np.testing.assert_allclose(loaded.std_scale_, ens.std_scale_)
    np.testing.assert_allclose(loaded.predict(test[0], return_std=True)[1], std, rtol=1e-6)


def test_predict_table_columns_and_member_explanation():
    rng = np.random.default_rng(1)
    y = rng.uniform(0.2, 0.8, 64)
    images = _brightness(y, 4)
    ens = SparseFeatureEnsemble(2, epochs=1, target="brightness", **FAST).fit(images, y)
    table = ens.predict_table(images, return_std=True)
    names = [c for c in table.colnames if c.startswith("brightness_")][:6]
    assert names == ["brightness_pred", "brightness_pred_member0", "brightness_std",
                     "brightness_std_aleatoric", "brightness_std_epistemic",
                     "brightness_contribution_1"]
    mean, alea, epi = ens.predict_components(images)
    np.testing.assert_allclose(table["brightness_pred"], mean, rtol=1e-6)
    np.testing.assert_allclose(table["brightness_std_epistemic"], epi, rtol=1e-6)
    # the feature columns explain member 0's prediction exactly
    explained = table.meta["head_bias"]["brightness"] + table["brightness_contribution_1"] \
        + table["brightness_contribution_2"]
    np.testing.assert_allclose(explained, table["brightness_pred_member0"], atol=1e-4)
    np.testing.assert_allclose(table["brightness_pred_member0"], ens.members_[0].predict(images),
                               rtol=1e-6)
    assert table.meta["n_members"] == 2 and table.meta["explained_member"] == 0


def test_scikit_learn_parameters():
    ens = SparseFeatureEnsemble(4, k=3, epochs=2)
    params = ens.get_params()
    assert params["n_members"] == 4 and params["k"] == 3 and params["epochs"] == 2
    assert params["target"] == SparseFeatureNet().target  # the members' defaults
    twin = clone(ens)
    assert twin.get_params() == params
    assert ens.set_params(n_members=2).n_members == 2
    with pytest.raises(ValueError, match="invalid parameter"):
        ens.set_params(nope=1)
    with pytest.raises(TypeError, match="unknown parameter"):
        SparseFeatureEnsemble(3, nope=1)
    with pytest.raises(ValueError, match="n_members"):
        SparseFeatureEnsemble(0).validate_params()
    with pytest.raises(ValueError, match="epochs"):
        SparseFeatureEnsemble(2, epochs=0).validate_params()


def test_cli_train_members(tmp_path):
    from sfnet.cli import main
    from sfnet.datasets import make_mock_galaxies

    make_mock_galaxies(80, image_size=16, seed=7, progress=False).save(tmp_path / "data")
    rc = main(["train", str(tmp_path / "data"), "-o", str(tmp_path / "ens"), "--members", "2",
               "--k", "2", "--epochs", "1", "--batch-size", "16", "--device", "cpu",
               "--seed", "0", "--no-progress"])
    assert rc == 0
    loaded = SparseFeatureEnsemble.load(tmp_path / "ens", device="cpu")
    assert loaded.n_members == 2 and [m.seed_ for m in loaded.members_] == [0, 1]
    # calibrated on the galaxies the CLI held out, which no member trained on
    assert loaded.calibration_["n"] > 0 and loaded.std_scale_.shape == (1,)
