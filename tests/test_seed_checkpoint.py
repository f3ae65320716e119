"""Loading the paper's released whole-module checkpoints, safely."""

import pickle
import sys
import types

import numpy as np
import pytest
import torch
import torchvision
from torch import nn

from sfnet import SparseFeatureNet


def _make_class(module_name, class_name):
    def __init__(self, n_out, k):
        nn.Module.__init__(self)
        self.resnet = torchvision.models.resnet18()
        self.resnet.fc = nn.Linear(512, n_out)
        self.k = k

    def forward(self, x):  # the paper's forward: pooled -> relu -> top-k -> fc
        r = self.resnet
        x = r.maxpool(r.relu(r.bn1(r.conv1(x))))
        x = r.avgpool(r.layer4(r.layer3(r.layer2(r.layer1(x))))).flatten(1)
        x = torch.relu(x)
        v, i = x.topk(self.k, dim=1)
        return r.fc(torch.zeros_like(x).scatter(1, i, v))

    cls = type(class_name, (nn.Module,), {"__init__": __init__, "forward": forward})
    cls.__module__ = module_name
    cls.__qualname__ = class_name
    return cls


def _write_seed_file(path, module_name, class_name, n_out, k, monkeypatch):
    """Pickle a whole ResNetTopK module the way the paper's code did."""
    cls = _make_class(module_name, class_name)
    if module_name == "__main__":
        monkeypatch.setattr(sys.modules["__main__"], class_name, cls, raising=False)
    else:
        mod = types.ModuleType(module_name)
        setattr(mod, class_name, cls)
        monkeypatch.setitem(sys.modules, module_name, mod)
    torch.manual_seed(0)
    obj = cls(n_out, k).eval()
    torch.save(obj, path)
    # the class is gone when sfnet loads the file, as for any user
    if module_name == "__main__":
        monkeypatch.delattr(sys.modules["__main__"], class_name)
    else:
        monkeypatch.delitem(sys.modules, module_name)
    return obj


#: Statistics as the paper's fastai pipeline reports them (0-1 scale), and on sfnet's 0-255.
PIPE_MEAN, PIPE_STD = (0.062, 0.057, 0.075), (0.109, 0.102, 0.120)
MEAN, STD = [255 * v for v in PIPE_MEAN], [255 * v for v in PIPE_STD]


def _pipeline_predictions(original, images, crop=144, size=160):
    """What the paper's pipeline computes: PIL crop, PIL bilinear resize, /255, Normalize."""
    from PIL import Image

    h = images.shape[1]
    top = (h - crop) // 2
    seen = np.stack([np.asarray(Image.fromarray(img).crop((top, top, top + crop, top + crop))
                                .resize((size, size), Image.BILINEAR)) for img in images])
    x = torch.from_numpy(seen).permute(0, 3, 1, 2).float() / 255
    x = (x - torch.tensor(PIPE_MEAN).view(1, 3, 1, 1)) / torch.tensor(PIPE_STD).view(1, 3, 1, 1)
    with torch.no_grad():
        return original(x).numpy()


@pytest.mark.parametrize("module_name, class_name, n_out, k, target", [
    ("model", "ResNet18TopK", 1, 4, "metallicity"),
    ("__main__", "ResNetTopK", 4, 2, "bpt_lines"),
])
def test_reproduces_the_paper_pipeline_for_both_class_styles(tmp_path, monkeypatch, module_name,
                                                             class_name, n_out, k, target):
    path = tmp_path / f"resnet18-topk_{k}-{target}.pth"
    original = _write_seed_file(path, module_name, class_name, n_out, k, monkeypatch)
    model = SparseFeatureNet.from_seed_checkpoint(path, precision="fp32", mean=MEAN, std=STD)
    assert model.k == k and model.network_.k == k and model.target_.name == target
    assert model.preprocessor_.order == "crop-resize"
    images = np.random.default_rng(0).integers(0, 60, (3, 160, 160, 3), dtype=np.uint8)
    pred = model.predict(images).reshape(3, -1)
    expected = _pipeline_predictions(original, images)
    np.testing.assert_allclose(pred, expected, rtol=0, atol=1e-5)
    # the other order sees other pixels: a measurable difference, not a rounding one
    other = SparseFeatureNet.from_seed_checkpoint(path, precision="fp32", mean=MEAN, std=STD,
                                                  preprocessing="resize-crop")
    assert np.abs(other.predict(images).reshape(3, -1) - expected).max() > 1e-4
    # save/load keeps the predictions exactly, and the paper's order
    model.save(tmp_path / "saved")
    again = SparseFeatureNet.load(tmp_path / "saved", precision="fp32")
    assert again.preprocessor_.order == "crop-resize" and again.preprocessing == "crop-resize"
    np.testing.assert_array_equal(again.predict(images), model.predict(images))


def test_refuses_to_guess_the_normalisation(tmp_path, monkeypatch):
    path = tmp_path / "resnet18-topk_4-metallicity.pth"
    _write_seed_file(path, "model", "ResNet18TopK", 1, 4, monkeypatch)
    with pytest.raises(ValueError, match="does not store the normalisation") as err:
        SparseFeatureNet.from_seed_checkpoint(path)
    assert "stats_from" in str(err.value) and "64 training images" in str(err.value)
    with pytest.raises(ValueError, match="together"):
        SparseFeatureNet.from_seed_checkpoint(path, mean=MEAN)
    with pytest.raises(ValueError, match="0-255 scale"):
        SparseFeatureNet.from_seed_checkpoint(path, mean=PIPE_MEAN, std=PIPE_STD)
    with pytest.raises(ValueError, match="std must be 3"):
        SparseFeatureNet.from_seed_checkpoint(path, mean=MEAN, std=[1.0, 2.0])
    with pytest.raises(ValueError, match="not both"):
        SparseFeatureNet.from_seed_checkpoint(path, mean=MEAN, std=STD,
                                              stats_from=np.zeros((2, 160, 160, 3), np.uint8))
    with pytest.raises(ValueError, match="preprocessing"):
        SparseFeatureNet.from_seed_checkpoint(path, mean=MEAN, std=STD, preprocessing="crop")


def test_malicious_pickle_is_refused_and_runs_nothing(tmp_path):
    marker = tmp_path / "pwned"

    class Evil:
        def __reduce__(self):
            return (exec, (f"open({str(marker)!r}, 'w').write('x')",))

    path = tmp_path / "resnet18-topk_2-metallicity.pth"
    torch.save({"resnet": Evil(), "k": 2}, path)
    with pytest.raises(pickle.UnpicklingError):
        SparseFeatureNet.from_seed_checkpoint(path, mean=MEAN, std=STD)
    assert not marker.exists()


def test_unrelated_file_is_rejected(tmp_path):
    path = tmp_path / "weights.pth"
    torch.save({"w": torch.zeros(3)}, path)
    with pytest.raises(ValueError, match="ResNetTopK"):
        SparseFeatureNet.from_seed_checkpoint(path, mean=MEAN, std=STD)
    with pytest.raises(FileNotFoundError):
        SparseFeatureNet.from_seed_checkpoint(tmp_path / "missing.pth", mean=MEAN, std=STD)


def test_normalisation_statistics_from_data(tmp_path, monkeypatch):
    from PIL import Image

    path = tmp_path / "resnet18-topk_4-metallicity.pth"
    _write_seed_file(path, "model", "ResNet18TopK", 1, 4, monkeypatch)
    images = np.random.default_rng(1).integers(0, 120, (6, 160, 160, 3), dtype=np.uint8)
    model = SparseFeatureNet.from_seed_checkpoint(path, stats_from=images)
    # the statistics of the images as the network sees them: crop 144, resized to 160
    seen = np.stack([np.asarray(Image.fromarray(img).crop((8, 8, 152, 152))
                                .resize((160, 160), Image.BILINEAR)) for img in images])
    seen = seen.astype(np.float64)
    np.testing.assert_allclose(model.preprocessor_.mean, seen.mean(axis=(0, 1, 2)), rtol=1e-6)
    np.testing.assert_allclose(model.preprocessor_.std, seen.std(axis=(0, 1, 2)), rtol=1e-5)


def test_computes_in_fp32_unless_asked(tmp_path, monkeypatch):
    import inspect

    path = tmp_path / "resnet18-topk_4-metallicity.pth"
    _write_seed_file(path, "model", "ResNet18TopK", 1, 4, monkeypatch)
    signature = inspect.signature(SparseFeatureNet.from_seed_checkpoint)
    assert signature.parameters["precision"].default == "fp32"
    model = SparseFeatureNet.from_seed_checkpoint(path, mean=MEAN, std=STD, device="cpu")
    assert model.precision == "fp32" and model.autocast_dtype_ is None
    fast = SparseFeatureNet.from_seed_checkpoint(path, mean=MEAN, std=STD, device="cpu",
                                                 precision="bf16")
    assert fast.precision == "bf16" and fast.autocast_dtype_ is torch.bfloat16
