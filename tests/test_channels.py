"""Images with any number of bands (C >= 1), uint8 or float, and any ID column (issue 20).

C-band samples are built here from the mock's RGB images turned into float
"fluxes" (the data side -- FITS folders, multi-band mocks -- has its own tests).
"""

import warnings

import numpy as np
import pytest
import torch

from sfnet import GalaxySample, SparseFeatureNet, interpret
from sfnet._tables import write_prediction_table
from sfnet.datasets import make_mock_galaxies
from sfnet.nn import BACKBONES, adapt_first_conv, build_backbone, register_backbone
from sfnet.preprocessing import Preprocessor, robust_stats

TINY = dict(k=2, epochs=1, batch_size=8, progress=False, random_state=0)


@pytest.fixture(scope="module")
def mock():
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return make_mock_galaxies(120, image_size=32, seed=5, progress=False).select(
            "metallicity")


def bands_from_rgb(rgb, n_bands, seed=0):
    """Float "flux" bands (bluest first) from uint8 RGB: sky noise and heavy tails."""
    x = rgb.astype(np.float32)[..., ::-1] / 255.0  # b, g, r
    if n_bands == 1:
        x = x.mean(axis=-1, keepdims=True)
    elif n_bands == 5:
        x = np.concatenate([0.6 * x[..., :1], x, 0.8 * x[..., 2:]], axis=-1)
    x = 50.0 * x ** 2  # bright cores, long tail
    return x + np.random.default_rng(seed).normal(0, 0.02, x.shape).astype(np.float32)


def sample_of(images, catalog, id_column="objID"):
    """A GalaxySample of any images and ID column.

    Uses the public constructor when it takes C-band float images and
    ``id_column`` (the data side of issue 20), else the unchecked parts.
    """
    try:
        return GalaxySample(images, catalog, id_column=id_column)
    except (TypeError, ValueError):
        sample = GalaxySample._from_parts(images, None, catalog)
        sample.id_column = id_column
        return sample


def string_ids(n):
    return np.array([f"LS-{i:05d}-x" for i in range(n)])


@pytest.fixture(scope="module", params=[1, 3, 5])
def fitted(request, mock):
    n_bands = request.param
    cat = mock.catalog.copy()
    cat["name"] = string_ids(len(cat))
    sample = sample_of(bands_from_rgb(mock.images, n_bands), cat, "name")
    return n_bands, SparseFeatureNet(**TINY).fit(sample), sample


# ---------------------------------------------------------------- end to end, C = 1, 3, 5

def test_fit_predict_table_with_string_ids(fitted, tmp_path):
    n_bands, model, sample = fitted
    assert model.network_.in_channels == n_bands
    assert model.preprocessor_.n_channels == n_bands
    assert model.preprocessor_.stretch == "asinh" and model.input_kind_ == "float"
    table = model.predict_table(sample)
    assert table.colnames[:3] == ["name", "coord", "oh_p50_pred"]
    assert list(table["name"]) == list(sample.catalog["name"])  # strings, same order
    np.testing.assert_allclose(table["oh_p50_pred"].value, model.predict(sample), rtol=1e-6)
    for ext in (".ecsv", ".csv", ".fits"):
        from astropy.table import Table

        back = Table.read(write_prediction_table(table, tmp_path / f"t{ext}"))
        assert [str(v) for v in back["name"]] == list(sample.catalog["name"])


def test_activations_maps_and_input_images(fitted):
    n_bands, model, sample = fitted
    a = model.activations(sample)
    assert a.shape == (len(sample), 512) and ((a != 0).sum(axis=1) <= 2).all()
    recon = a @ model.head_weights.T + model.head_bias
    np.testing.assert_allclose(model.predict(sample), recon[:, 0], rtol=1e-5, atol=1e-5)
    shown = model.input_images(sample)
    assert shown.shape[-1] == n_bands and shown.dtype == np.float32
    maps = interpret.localization_maps(model, sample.images[:2], int(np.argmax(a.sum(0))))
    assert np.isfinite(maps).all()


def test_wrong_number_of_bands_is_refused(fitted):
    n_bands, model, sample = fitted
    other = np.zeros((4, 32, 32, n_bands + 1), np.float32)
    with pytest.raises(ValueError, match=f"{n_bands + 1}-band images but the model was "
                                         f"trained on {n_bands} bands"):
        model.predict(other)


def test_save_load_round_trips_bands_and_stretch(fitted, tmp_path):
    n_bands, model, sample = fitted
    back = SparseFeatureNet.load(model.save(tmp_path / "m"))
    assert back.preprocessor_ == model.preprocessor_
    assert back.network_.in_channels == n_bands
    np.testing.assert_array_equal(back.predict(sample), model.predict(sample))


def test_report_and_figures(fitted, tmp_path):
    n_bands, model, sample = fitted
    acts = model.activations(sample)
    path = interpret.write_report(model, sample, tmp_path / "r", activations=acts,
                                  max_features=1, n_examples=3, n_localization=2,
                                  n_stability=10, dpi=30)
    html = path.read_text()
    assert "<img" in html and (tmp_path / "r" / "features.csv").is_file()
    feature = int(np.argmax((acts > 0).sum(0)))
    fig = interpret.plot_max_activating(sample, acts, feature, n=3)
    assert len(fig.axes) >= 3


# ---------------------------------------------------------------- display

@pytest.mark.parametrize("n_bands", [1, 2, 3, 5])
def test_display_image_of_float_bands(n_bands):
    from sfnet.interpret.plots._plotting import display_image

    rng = np.random.default_rng(0)
    img = rng.normal(0, 1, (16, 16, n_bands))
    img[8, 8] = 1000.0  # a bright core must not flatten the rest
    out = display_image(img)
    assert out.shape == (16, 16, 3) and np.isfinite(out).all()
    assert 0 <= out.min() and out.max() <= 1 or out.dtype == np.uint8
    if n_bands < 3:  # grey
        np.testing.assert_array_equal(out[..., 0], out[..., 1])


def test_display_image_keeps_uint8_rgb():
    from sfnet.interpret.plots._plotting import display_bands, display_image

    img = np.arange(4 * 4 * 3, dtype=np.uint8).reshape(4, 4, 3)
    assert display_image(img) is img
    five = np.arange(5.0)[None, None, :] * np.ones((2, 2, 1))
    np.testing.assert_array_equal(display_bands(five)[0, 0], [3.0, 2.0, 1.0])  # i, r, g


# ---------------------------------------------------------------- normalisation

def test_uint8_statistics_are_mean_and_std_unchanged(mock):
    from sfnet._imagedata import ImageSource

    prep = Preprocessor().fit_stats(ImageSource(mock.images))
    x = mock.images.reshape(-1, 3).astype(np.float64)
    np.testing.assert_allclose(prep.mean, x.mean(0), rtol=1e-10)
    np.testing.assert_allclose(prep.std, x.std(0), rtol=1e-10)
    assert prep.stretch is None
    t = torch.from_numpy(mock.images[:2]).permute(0, 3, 1, 2)
    expected = (t.double() - torch.tensor(prep.mean).view(1, 3, 1, 1)) / torch.tensor(
        prep.std).view(1, 3, 1, 1)
    torch.testing.assert_close(prep.normalize(t).double(), expected, rtol=1e-6, atol=1e-5)


def test_float_statistics_are_robust_median_and_mad():
    from sfnet._imagedata import ImageSource

    rng = np.random.default_rng(1)
    sky = rng.normal(3.0, 0.5, (64, 16, 16, 2)).astype(np.float32)
    images = sky.copy()
    images[:, 6:10, 6:10] += 1e4  # bright cores: 6 % of the pixels, 20000 sky sigmas
    images[..., 1] *= 10.0
    prep = Preprocessor().fit_stats(ImageSource(images))
    assert prep.stretch == "asinh"
    # the tail moves neither the centre nor the scale much (mean/std would be ~600/2400)
    np.testing.assert_allclose(prep.mean, [3.0, 30.0], rtol=0.05)
    # the stored scale is SOFTENING (5) sky sigmas
    assert 2.5 < prep.std[0] < 3.25 and 25.0 < prep.std[1] < 32.5
    x = prep.normalize(torch.from_numpy(images[:1]).permute(0, 3, 1, 2))
    sky_part = x[0, 0, :4, :4]
    assert sky_part.abs().max() < 1  # sky: within +-5 sigma / 5, nearly linear
    assert 8 < float(x[0, 0, 8, 8]) < 10  # asinh(2e4 / 5) ~ 9.0, not 2e4


def test_float_flux_mock_sky_noise_stays_small_after_normalisation():
    # Softening at 1 sky sigma let the sky noise fill -1..1 (std ~1) and a
    # float-flux mock model learned a constant; at 5 sigma the sky is quiet
    # and the galaxies stand out, as in the uint8 composites.
    from sfnet._imagedata import ImageSource

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        sample = make_mock_galaxies(64, image_size=32, seed=0, bands="gri",
                                    image_format="flux", progress=False)
    prep = Preprocessor().fit_stats(ImageSource(np.asarray(sample.images)))
    x = prep.normalize(torch.from_numpy(np.asarray(sample.images)).permute(0, 3, 1, 2))
    assert torch.isfinite(x).all()
    corners = torch.cat([x[:, :, :4, :4], x[:, :, -4:, -4:]]).flatten(2)
    assert float(corners.std()) < 0.35  # sky pixels
    centre = x[:, :, 14:18, 14:18].flatten(2).mean(-1)
    assert float(centre.median()) > 4 * float(corners.std())  # galaxies stand out


def test_robust_stats_fallbacks():
    flat = np.zeros((100, 2))
    flat[:30, 1] = 1.0  # MAD 0, but a 16-84 percentile range
    med, scale = robust_stats(flat)
    assert med.tolist() == [0.0, 0.0] and scale[0] == 1.0 and scale[1] == pytest.approx(0.5)


# ---------------------------------------------------------------- the first convolution

def test_adapt_first_conv_rule_on_a_fake_state_dict():
    gen = torch.Generator().manual_seed(0)
    state = {"conv1.weight": torch.randn(64, 3, 7, 7, generator=gen)}
    w = state["conv1.weight"]
    assert adapt_first_conv(w, 3) is w
    for c in (1, 2, 4, 5):
        new = adapt_first_conv(w, c)
        assert new.shape == (64, c, 7, 7)
        for j in range(c):  # each band's filter: the RGB mean, scaled by 3 / C
            torch.testing.assert_close(new[:, j], w.mean(dim=1) * 3 / c)
        # the same signal in every band gives the pretrained response to grey
        x = torch.randn(1, 1, 16, 16, generator=gen)
        out_new = torch.nn.functional.conv2d(x.expand(1, c, -1, -1), new)
        out_rgb = torch.nn.functional.conv2d(x.expand(1, 3, -1, -1), w)
        torch.testing.assert_close(out_new, out_rgb, rtol=1e-4, atol=1e-4)
    with pytest.raises(ValueError, match="in_channels"):
        adapt_first_conv(w, 0)
    with pytest.raises(ValueError, match="weight"):
        adapt_first_conv(w[:, :2], 5)


def test_imagenet_backbone_gets_the_adapted_conv(monkeypatch):
    """``weights="imagenet"`` with C != 3 adapts the loaded RGB filters (no download)."""
    import torchvision

    def build(weights=None):
        net = torchvision.models.resnet18()
        if weights is not None:  # stand-in for the pretrained weights
            with torch.no_grad():
                net.conv1.weight.copy_(torch.arange(64 * 3 * 49.0).view(64, 3, 7, 7))
        return net

    monkeypatch.setattr(torchvision.models, "get_weight", lambda name: "fake-weights")
    register_backbone("fake18", build, 512, imagenet_weights="Fake.IMAGENET")
    try:
        net, _ = build_backbone("fake18", "imagenet", in_channels=5)
        rgb = build("x").conv1.weight
        torch.testing.assert_close(net.conv1.weight.detach(),
                                   adapt_first_conv(rgb.detach(), 5))
        random, _ = build_backbone("fake18", None, in_channels=1)
        assert random.conv1.in_channels == 1
    finally:
        BACKBONES.pop("fake18")


# ---------------------------------------------------------------- targets

def test_misspelt_named_target_is_caught_by_validate_params():
    with pytest.raises(ValueError, match="did you mean 'metallicity'"):
        SparseFeatureNet(target="metalicity").validate_params()
    with pytest.raises(ValueError, match="did you mean 'bpt_lines'"):
        SparseFeatureNet(target="bpt_line").validate_params()
    # schema columns and explicit lists are never taken for misspellings
    SparseFeatureNet(target="petroMag_r").validate_params()
    SparseFeatureNet(target=["metalicity"]).validate_params()


def test_misspelt_column_is_caught_at_fit_with_suggestions(mock):
    with pytest.raises(ValueError, match=r"'petroMag_R' -> did you mean 'petroMag_r'"):
        SparseFeatureNet(target="petroMag_R", **{k: v for k, v in TINY.items()
                                                 if k != "k"}).fit(mock)


def test_column_target_takes_the_catalog_unit(mock):
    model = SparseFeatureNet(target="petroR50_r", **TINY).fit(mock)
    assert model.target_units_ == ["arcsec"]
    # uint8 RGB keeps the linear mean/std normalisation and 3 input bands
    assert model.preprocessor_.stretch is None and model.input_kind_ == "uint8"
    assert model.network_.in_channels == 3
    assert model.predict_table(mock)["petroR50_r_pred"].unit == "arcsec"


def test_contributions_keep_the_id_column_name_and_strings():
    from astropy.table import Column

    acts = np.array([[0.0, 2.0], [1.0, 0.0]])
    ids = Column(["gal-a", "gal-b"], name="TARGETID")
    t = interpret.contributions((np.array([[1.0, 3.0]]), np.array([0.5])), acts, ids=ids)
    assert t.colnames[0] == "TARGETID" and t["TARGETID"].tolist() == ["gal-a", "gal-b"]
