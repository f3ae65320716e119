"""Tests of sfnet.datasets.colour: flux images to 8-bit RGB."""

import numpy as np
import pytest
from astropy.visualization import make_lupton_rgb

from sfnet.datasets import make_mock_galaxies, to_rgb


@pytest.fixture(scope="module")
def flux():
    return make_mock_galaxies(6, image_size=24, seed=3, progress=False, bands="ugriz",
                              image_format="flux")


def test_lupton_uses_i_r_g_of_ugriz_as_red_green_blue(flux):
    rgb = to_rgb(flux, bands="gri", band_names="ugriz", beta=0.3, Q=6)
    assert rgb.shape == (6, 24, 24, 3) and rgb.dtype == np.uint8
    img = flux.images[2].astype(np.float64)
    expected = make_lupton_rgb(img[..., 3], img[..., 2], img[..., 1], minimum=0,
                               stretch=0.3, Q=6)
    np.testing.assert_array_equal(rgb[2], expected)
    # the default choice for five bands is the same (i, r, g) -> (R, G, B)
    np.testing.assert_array_equal(to_rgb(flux.images, beta=0.3, Q=6), rgb)
    np.testing.assert_array_equal(to_rgb(flux.images, bands=(3, 2, 1), beta=0.3, Q=6), rgb)
    # grz: z -> red
    grz = to_rgb(flux.images, bands="grz", band_names="ugriz")
    z, r, g = flux.images[0].astype(np.float64)[..., [4, 2, 1]].transpose(2, 0, 1)
    np.testing.assert_array_equal(grz[0], make_lupton_rgb(z, r, g, minimum=0, stretch=0.5, Q=8))


def test_asinh_is_a_fixed_mapping_and_grey_for_one_band(flux):
    one = flux.images[..., 2:3]
    grey = to_rgb(one, stretch="asinh", vmin=0.0, vmax=1.0, a=0.1)
    assert np.all(grey[..., 0] == grey[..., 1]) and np.all(grey[..., 1] == grey[..., 2])
    x = one[..., 0].astype(np.float64)
    expected = np.arcsinh(np.clip(x, 0, 1) / 0.1) / np.arcsinh(1 / 0.1)
    assert np.abs(grey[..., 0].astype(float) - expected * 255).max() <= 1.0
    # the same limits for every galaxy: one galaxy alone maps the same way
    np.testing.assert_array_equal(to_rgb(one[:1], stretch="asinh", vmin=0.0, vmax=1.0),
                                  grey[:1])
    # default limits: percentiles of the whole set, so pixels span 0..255
    auto = to_rgb(flux.images[..., 1:4], stretch="asinh")
    assert auto.min() == 0 and auto.max() == 255


def test_bad_arguments(flux):
    with pytest.raises(ValueError, match="stretch"):
        to_rgb(flux.images, stretch="log")
    with pytest.raises(ValueError, match="bands"):
        to_rgb(flux.images[..., :2])
    with pytest.raises(ValueError, match="band_names"):
        to_rgb(flux.images, bands="gri")
    with pytest.raises(ValueError, match="bands"):
        to_rgb(flux.images, bands=(0, 1, 9))
    with pytest.raises(ValueError, match="bands"):
        to_rgb(flux.images, bands="gry", band_names="ugriz")
    with pytest.raises(ValueError, match=r"\(N, H, W, C\)"):
        to_rgb(flux.images[0])
    with pytest.raises(TypeError):
        to_rgb(flux.images, stretch="asinh", Q=3)
