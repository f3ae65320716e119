"""The out-of-distribution score (`sfnet._ood`, `SparseFeatureNet.ood_score`).

One small model (600 mock galaxies, about 160 passing the cuts, at 32 px, 3
epochs) is fitted once for the module; held-out mock galaxies of another seed
are the in-distribution set.
"""

import numpy as np
import pytest
import torch
from astropy.visualization import make_lupton_rgb
from sklearn.metrics import roc_auc_score

from sfnet import SparseFeatureNet
from sfnet._ood import OODStatistics, fit_ood
from sfnet.datasets import make_mock_galaxies
from sfnet.datasets._render import (LUPTON_Q, LUPTON_SCALES, LUPTON_STRETCH, SDSS_PIXEL,
                                    SKY_SIGMA)

SIZE = 32
N_OUT = 100
FOV = 160 * 0.262  # the mock's default field of view (arcsec)


@pytest.fixture(scope="module")
def fitted():
    train = make_mock_galaxies(600, image_size=SIZE, seed=11, progress=False)
    model = SparseFeatureNet(k=2, epochs=3, batch_size=32, random_state=0, progress=False,
                             device="cpu", precision="fp32").fit(train.select("metallicity"))
    return model


@pytest.fixture(scope="module")
def heldout():
    return make_mock_galaxies(N_OUT, image_size=SIZE, seed=12, progress=False)


def _composite(bands):
    """Lupton composite (as the mock renders) of g, r, i planes ``(n, 3, s, s)``."""
    si, sr, sg = LUPTON_SCALES
    n, _, s, _ = bands.shape
    tall = lambda a: a.reshape(n * s, s)    # noqa: E731
    with np.errstate(divide="ignore", invalid="ignore"):
        rgb = make_lupton_rgb(tall(bands[:, 2] * si), tall(bands[:, 1] * sr),
                              tall(bands[:, 0] * sg), stretch=LUPTON_STRETCH, Q=LUPTON_Q)
    return rgb.reshape(n, s, s, 3)


def _sky(n, rng):
    """Sky noise of the mock's depth per pixel (nanomaggies): a cutout at an empty position."""
    scale = FOV / SIZE
    return (rng.standard_normal((n, 3, SIZE, SIZE)) * (SKY_SIGMA * SDSS_PIXEL / scale)
            [None, :, None, None]).astype(np.float32)


def _stars(n, rng):
    """A point source (Gaussian PSF of FWHM 1.4") of r = 15-17.5 at the centre, on sky."""
    scale = FOV / SIZE
    sigma = 1.4 / 2.355 / scale
    grid = np.mgrid[:SIZE, :SIZE][:, None] - (SIZE - 1) / 2
    yy, xx = grid + rng.uniform(-0.5, 0.5, (2, n, 1, 1))
    psf = np.exp(-0.5 * (xx ** 2 + yy ** 2) / sigma ** 2)
    psf /= psf.sum(axis=(1, 2), keepdims=True)
    flux_r = 10 ** (-0.4 * (rng.uniform(15, 17.5, n) - 22.5))
    colour = rng.uniform(0.3, 1.2, n)                     # g - r
    fluxes = np.stack([flux_r * 10 ** (-0.4 * colour), flux_r,
                       flux_r * 10 ** (0.4 * (0.45 * colour - 0.1))], axis=1)
    return _composite(_sky(n, rng) + fluxes[:, :, None, None] * psf[:, None])


def _outliers(heldout, zoomed):
    """Image sets the model never saw the like of, as many as ``heldout`` each
    (``zoomed``: the same galaxies rendered at half the pixel scale)."""
    from scipy import ndimage

    rng = np.random.default_rng(5)
    n = len(heldout)
    rotated = ndimage.rotate(heldout.images, 45, axes=(1, 2), reshape=False, order=1,
                             mode="reflect")
    return {
        "noise": rng.integers(0, 256, (n, SIZE, SIZE, 3), dtype=np.uint8),
        "empty_sky": _composite(_sky(n, rng)),
        "stars": _stars(n, rng),
        "pixel_scale_x2": zoomed.images,
        "rotated_45": np.clip(rotated, 0, 255).astype(np.uint8),
    }


@pytest.fixture(scope="module")
def aucs(fitted, heldout):
    inside = fitted.ood_score(heldout)
    out = {}
    zoomed = make_mock_galaxies(N_OUT, image_size=SIZE, pixel_scale=FOV / SIZE / 2, seed=12,
                                progress=False)
    for name, images in _outliers(heldout, zoomed).items():
        scores = fitted.ood_score(images)
        truth = np.r_[np.zeros(len(inside)), np.ones(len(scores))]
        out[name] = roc_auc_score(truth, np.r_[inside, scores])
    print("\nOOD AUC vs held-out galaxies:", {k: round(v, 3) for k, v in out.items()},
          f"(fit cost {fitted.ood_.seconds:.2f} s)")
    return out


@pytest.mark.parametrize("kind", ["noise", "empty_sky"])
def test_noise_and_empty_sky_rank_above_heldout_galaxies(aucs, kind):
    # about 160 training galaxies, 3 epochs, 32 px; with half of them the empty-sky AUC
    # was 0.85 (too few galaxies for a 512-d covariance)
    assert aucs[kind] >= 0.95


def test_stars_are_more_unusual_than_galaxies(aucs):
    # reported in docs/uncertainty.rst; asserted only to be better than chance
    assert aucs["stars"] > 0.6


def test_statistics_are_fitted_on_training_and_held_out_galaxies(fitted, heldout):
    stats = fitted.ood_
    assert stats.source == "validation"
    assert stats.n_fit == fitted.n_train_ and stats.n_threshold == fitted.n_valid_
    assert stats.mean.shape == (fitted.n_features,)
    assert 0 < stats.shrinkage <= 1 and stats.seconds > 0
    # the threshold is the 99th percentile of held-out scores: few new galaxies pass it
    assert np.mean(fitted.ood_score(heldout) > stats.threshold) < 0.1


def test_score_is_the_mahalanobis_distance_of_the_pooled_features(fitted, heldout):
    sub = heldout[:20]
    f = fitted.pooled_features(sub).astype(np.float64)
    stats = fitted.ood_
    prec = stats.whitener.astype(np.float64) @ stats.whitener.T.astype(np.float64)
    d = f - stats.mean
    expected = np.sqrt(np.einsum("ij,jk,ik->i", d, prec, d))
    np.testing.assert_allclose(fitted.ood_score(sub), expected, rtol=1e-3)


def test_predict_table_has_ood_columns(fitted, heldout):
    sub = heldout[:30]
    table = fitted.predict_table(sub)
    score = fitted.ood_score(sub)
    np.testing.assert_allclose(table["ood_score"], score, rtol=1e-5)
    assert table.meta["ood_threshold"] == fitted.ood_.threshold
    np.testing.assert_array_equal(table["ood_flag"], score > fitted.ood_.threshold)
    # the other columns are what they were without the score
    np.testing.assert_allclose(table["oh_p50_pred"].value, fitted.predict(sub), rtol=1e-6)
    idx, _ = fitted.activations(sub, sparse=True)
    np.testing.assert_array_equal(table["feature_1"], idx[:, 0])


def test_save_load_round_trip_keeps_the_scores(fitted, heldout, tmp_path):
    fitted.save(tmp_path / "m")
    loaded = SparseFeatureNet.load(tmp_path / "m", device="cpu", precision="fp32")
    assert loaded.ood_.to_json() == fitted.ood_.to_json()
    np.testing.assert_array_equal(loaded.ood_score(heldout[:20]), fitted.ood_score(heldout[:20]))
    weights = torch.load(tmp_path / "m" / "weights.pt", weights_only=True)
    assert weights["ood.whitener"].shape == (fitted.n_features, fitted.n_features)


def test_model_without_statistics_raises_and_table_lacks_columns(fitted, heldout):
    import dataclasses

    bare = SparseFeatureNet(k=2, device="cpu", precision="fp32")
    state = dataclasses.replace(fitted._fitted_state(), ood=None)
    bare._set_fitted(fitted.network_, state, fitted.device_, fitted.autocast_dtype_)
    with pytest.raises(ValueError, match="out-of-distribution statistics"):
        bare.ood_score(heldout[:4])
    assert "ood_score" not in bare.predict_table(heldout[:4]).colnames


def test_fit_ood_threshold_and_shrinkage():
    rng = np.random.default_rng(0)
    train = rng.normal(size=(300, 40))
    held = rng.normal(size=(1000, 40))
    stats = fit_ood(train, held, percentile=90)
    assert stats.source == "validation" and stats.n_threshold == 1000
    assert np.mean(stats.score(held) > stats.threshold) == pytest.approx(0.1, abs=0.002)
    # far points score far higher than the held-out ones
    assert stats.score(held[:5] + 10).min() > stats.score(held).max()
    no_held = fit_ood(train)
    assert no_held.source == "training" and no_held.n_threshold == 300
    with pytest.raises(ValueError, match="train_features"):
        fit_ood(train[:1])
    with pytest.raises(ValueError, match="whitener"):
        OODStatistics(mean=np.zeros(3), whitener=np.eye(2), threshold=1.0)


def test_plot_ood_draws_histogram_and_most_unusual(fitted, heldout):
    from sfnet.interpret import plot_ood

    scores = fitted.ood_score(heldout[:12])
    fig = plot_ood(scores, fitted.ood_.threshold, sample=heldout[:12], n=4)
    titles = [a.get_title() for a in fig.axes if a.get_title()]
    top = np.sort(scores)[::-1][:4]
    assert titles == [f"{k + 1}: {s:.3g}" for k, s in enumerate(top)]
    assert len(plot_ood(scores, fitted.ood_.threshold).axes) == 1
    with pytest.raises(ValueError, match="sample"):
        plot_ood(scores, 1.0, sample=heldout[:3])


def test_report_shows_the_ood_section(fitted, heldout, tmp_path):
    from sfnet.interpret import write_report

    sub = heldout[:40]
    path = write_report(fitted, sub, tmp_path / "r", n_stability=0, n_localization=0,
                        max_features=1, n_examples=4)
    html = path.read_text()
    assert "Is this galaxy like the training set?" in html
    assert (tmp_path / "r" / "figures" / "ood.png").is_file()
    top = int(np.argmax(fitted.ood_score(sub)))
    assert f"<td>1</td><td>{sub.catalog['objID'][top]}</td>" in html


def test_without_validation_one_pass_gives_calibration_and_statistics(monkeypatch):
    """validation_fraction=0: the calibration's outputs and the statistics' features come
    from one pass over the training galaxies, equal to what separate passes give."""
    import sfnet.estimator as est

    monkeypatch.setattr(est, "MAX_FIT", 30)  # fewer than the training galaxies: a subset
    train = make_mock_galaxies(200, image_size=16, seed=13, progress=False)
    passes = []
    real_run = SparseFeatureNet._run

    def counting(self, X, fn, batch_size=None, out=None):
        passes.append(len(X))
        return real_run(self, X, fn, batch_size, out)

    monkeypatch.setattr(SparseFeatureNet, "_run", counting)
    model = SparseFeatureNet(k=2, epochs=1, batch_size=16, random_state=0, progress=False,
                             device="cpu", precision="fp32", validation_fraction=0.0).fit(
        train.select("metallicity"))
    assert len(passes) == 1 and passes[0] == model.n_train_
    stats = model.ood_
    assert stats.source == "training" and stats.n_fit == 30 == stats.n_threshold
    # the same numbers as the separate passes: features of the drawn galaxies ...
    sample = train.select("metallicity")
    rows = model._ood_positions(np.arange(model.n_train_))
    again = fit_ood(model.pooled_features(sample[rows]), None)
    np.testing.assert_allclose(stats.mean, again.mean, rtol=1e-5, atol=1e-6)
    assert stats.threshold == pytest.approx(again.threshold, rel=1e-4)
    # ... and the calibration from the heads' outputs on all training galaxies
    z, sigma = model._mean_and_sigma(sample)
    y = np.asarray(sample.catalog["oh_p50"], dtype=np.float64)[:, None]
    from sfnet.interpret.calibration import fit_std_scale
    scale = fit_std_scale((y - model.y_mean_) / model.y_std_ - z, sigma)
    np.testing.assert_allclose(model.uncertainty_["scale"], scale, rtol=1e-4)
    assert model.uncertainty_["n"] == model.n_train_
