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


def test_label_errors_recover_the_model_noise(tmp_path):
    """The model's part is the error about the *true* value: the planted model noise
    plus the network's own mean error, not the label noise."""
    images, y, sigma_label = _task(400, seed=0)
    # 240 steps: the variance head (10x the learning rate) must travel from its
    # initial sigma (the targets' std) to the model's part, 1/3 of it
    # keep_epoch="last": all 80 held-out galaxies calibrate (the scale's scatter under
    # label errors this large is ~0.5 in ln for 40 of them)
    params = dict(FAST, learning_rate=3e-3, batch_size=16, keep_epoch="last")
    with_labels = SparseFeatureNet(k=2, epochs=12, label_error=sigma_label, **params).fit(
        images, y)
    plain = SparseFeatureNet(k=2, epochs=12, **params).fit(images, y)
    test, _, _ = _task(200, seed=1)
    mean, std = with_labels.predict(test, return_std=True)
    _, std_plain = plain.predict(test, return_std=True)
    # the truth is 8.5: the model's error about it, and the planted model noise
    model_part = np.hypot(SIGMA_MODEL, np.sqrt(np.mean((mean - 8.5) ** 2)))
    assert np.median(std) == pytest.approx(model_part, rel=0.35), (np.median(std), model_part)
    # without label errors the error bar absorbs them: about sqrt(0.13**2 + 0.5**2 / 3)
    assert np.median(std_plain) > 1.8 * np.median(std)
    # the head itself learned it (before the calibration factor)
    raw = with_labels._mean_and_sigma(test)[1][:, 0] * with_labels.y_std_[0]
    assert np.median(raw) == pytest.approx(model_part, rel=0.5), (np.median(raw), model_part)
    print(f"model part {model_part:.4f}: head {np.median(raw):.4f}, calibrated "
          f"{np.median(std):.4f}; without label errors {np.median(std_plain):.4f}")
    assert with_labels.label_error_["spec"] == "array"
    with_labels.save(tmp_path / "m")
    loaded = SparseFeatureNet.load(tmp_path / "m", device="cpu", precision="fp32")
    assert loaded.label_error_ == with_labels.label_error_ and loaded.label_error is None
    np.testing.assert_allclose(loaded.predict(test, return_std=True)[1], std, rtol=1e-6)


def test_label_error_calibration_is_a_likelihood_fit():
    """Where label errors dominate, the likelihood's factor is unbiased and steady
    over repeated draws of 64 galaxies (ln-scatter measured 0.3-0.4)."""
    from sfnet.interpret.calibration import ONE_SIGMA

    rng = np.random.default_rng(7)
    logs = []
    for _ in range(200):
        sm, sl = np.full(64, 0.1), rng.uniform(0.0, 0.5, 64)
        resid = rng.normal(0.0, np.hypot(1.3 * sm, sl))
        logs.append(np.log(fit_std_scale_with_labels(resid, sm, sl)[0] / 1.3))
    assert abs(np.median(logs)) < 0.1 and np.std(logs) < 0.5
    # the interval it gives covers as it should
    sm, sl = np.full(20000, 0.1), rng.uniform(0.0, 0.5, 20000)
    resid = rng.normal(0.0, np.hypot(1.3 * sm, sl))
    scale = fit_std_scale_with_labels(resid, sm, sl)[0]
    assert scale == pytest.approx(1.3, rel=0.05)
    np.testing.assert_allclose(coverage(resid, 0.0, np.hypot(scale * sm, sl)),
                               [ONE_SIGMA, 0.95], atol=0.01)


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
