"""Image geometry: the paper's crop -> PIL-exact resize order, and the default order."""

import numpy as np
import pytest
import torch
from PIL import Image

from sfnet import SparseFeatureNet
from sfnet.preprocessing import apply_geometry, output_shape, resize_like_pil


def _pil_crop_resize(img, crop, size):
    """The paper pipeline's geometry, done independently with PIL on one HWC image."""
    h, w = img.shape[:2]
    top, left = (h - crop) // 2, (w - crop) // 2
    im = Image.fromarray(img).crop((left, top, left + crop, top + crop))
    return np.asarray(im.resize((size, size), Image.BILINEAR))


@pytest.mark.parametrize("raw, crop, size", [(160, 144, 160), (64, 56, 64), (64, 60, 48),
                                             (63, 50, 71)])
def test_crop_then_resize_is_bit_exact_with_pil(raw, crop, size):
    rng = np.random.default_rng(raw + crop + size)
    images = rng.integers(0, 256, (5, raw, raw, 3), dtype=np.uint8)
    x = torch.from_numpy(images).permute(0, 3, 1, 2)
    out = apply_geometry(x, size, crop, "crop-resize")
    assert out.dtype == torch.uint8 and tuple(out.shape) == (5, 3, size, size)
    expected = np.stack([_pil_crop_resize(img, crop, size) for img in images])
    np.testing.assert_array_equal(out.permute(0, 2, 3, 1).numpy(), expected)
    assert output_shape((raw, raw), size, crop, "crop-resize") == (size, size)


def test_torchvision_uint8_upsampling_agrees_with_pil():
    # the paper's case (upsampling the crop) is also bit-exact in torchvision's uint8 kernel
    from torchvision.transforms.v2 import functional as TF

    images = np.random.default_rng(3).integers(0, 256, (4, 144, 144, 3), dtype=np.uint8)
    x = torch.from_numpy(images).permute(0, 3, 1, 2)
    tv = TF.resize(x, [160, 160], antialias=True)
    np.testing.assert_array_equal(tv.numpy(), resize_like_pil(x, 160).numpy())


def test_default_order_resizes_then_crops():
    x = torch.arange(2 * 3 * 64 * 64, dtype=torch.float32).reshape(2, 3, 64, 64) % 251
    out = apply_geometry(x, 32, 24, "resize-crop")
    assert tuple(out.shape) == (2, 3, 24, 24)
    assert output_shape((64, 64), 32, 24, "resize-crop") == (24, 24)
    # without a resize both orders are the same centre crop
    np.testing.assert_array_equal(apply_geometry(x, None, 40, "crop-resize"),
                                  apply_geometry(x, None, 40, "resize-crop"))
    with pytest.raises(ValueError, match="preprocessing"):
        apply_geometry(x, 32, 24, "crop-then-resize")
    with pytest.raises(ValueError, match="crop_size=80"):
        apply_geometry(x, None, 80, "crop-resize")


def test_estimator_order_is_validated_used_and_saved(tmp_path):
    rng = np.random.default_rng(0)
    images = rng.integers(0, 256, (24, 40, 40, 3), dtype=np.uint8)
    y = images.mean(axis=(1, 2, 3)) / 255
    with pytest.raises(ValueError, match="preprocessing"):
        SparseFeatureNet(preprocessing="crop-first").validate_params()
    # in the default order the crop is cut from the resized image: it cannot be larger
    with pytest.raises(ValueError, match="crop_size=36 exceeds image_size=32"):
        SparseFeatureNet(image_size=32, crop_size=36).validate_params()
    model = SparseFeatureNet(k=2, image_size=32, crop_size=36, preprocessing="crop-resize",
                             epochs=1, batch_size=8, progress=False, random_state=0,
                             precision="fp32").fit(images, y)
    seen = model.input_images(images[:3])
    expected = np.stack([_pil_crop_resize(img, 36, 32) for img in images[:3]])
    np.testing.assert_array_equal(seen, expected)
    model.save(tmp_path / "m")
    again = SparseFeatureNet.load(tmp_path / "m", precision="fp32")
    assert again.preprocessing == "crop-resize" and again.preprocessor_.order == "crop-resize"
    np.testing.assert_array_equal(again.predict(images), model.predict(images))
