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


@pytest.mark.parametrize("module_name, class_name, n_out, k, target", [
    ("model", "ResNet18TopK", 1, 4, "metallicity"),
    ("__main__", "ResNetTopK", 4, 2, "bpt_lines"),
])
def test_loads_both_class_styles(tmp_path, monkeypatch, module_name, class_name, n_out, k, target):
    path = tmp_path / f"resnet18-topk_{k}-{target}.pth"
    original = _write_seed_file(path, module_name, class_name, n_out, k, monkeypatch)
    model = SparseFeatureNet.from_seed_checkpoint(path, precision="fp32")
    assert model.k == k and model.network_.k == k and model.target_.name == target
    images = np.random.default_rng(0).integers(0, 255, (3, 160, 160, 3), dtype=np.uint8)
    pred = model.predict(images).reshape(3, -1)
    # the same numbers as the original module on identically preprocessed input
    x = torch.from_numpy(model.input_images(images)).permute(0, 3, 1, 2).float()
    mean = torch.tensor(model.preprocessor_.mean).view(1, 3, 1, 1)
    std = torch.tensor(model.preprocessor_.std).view(1, 3, 1, 1)
    with torch.no_grad():
        expected = original((x - mean) / std).numpy()
    np.testing.assert_allclose(pred, expected, rtol=1e-4, atol=1e-4)


def test_malicious_pickle_is_refused_and_runs_nothing(tmp_path):
    marker = tmp_path / "pwned"

    class Evil:
        def __reduce__(self):
            return (exec, (f"open({str(marker)!r}, 'w').write('x')",))

    path = tmp_path / "resnet18-topk_2-metallicity.pth"
    torch.save({"resnet": Evil(), "k": 2}, path)
    with pytest.raises(pickle.UnpicklingError):
        SparseFeatureNet.from_seed_checkpoint(path)
    assert not marker.exists()


def test_unrelated_file_is_rejected(tmp_path):
    path = tmp_path / "weights.pth"
    torch.save({"w": torch.zeros(3)}, path)
    with pytest.raises(ValueError, match="ResNetTopK"):
        SparseFeatureNet.from_seed_checkpoint(path)
    with pytest.raises(FileNotFoundError):
        SparseFeatureNet.from_seed_checkpoint(tmp_path / "missing.pth")


def test_normalisation_statistics_from_data(tmp_path, monkeypatch):
    path = tmp_path / "resnet18-topk_4-metallicity.pth"
    _write_seed_file(path, "model", "ResNet18TopK", 1, 4, monkeypatch)
    images = np.random.default_rng(1).integers(0, 120, (6, 160, 160, 3), dtype=np.uint8)
    default = SparseFeatureNet.from_seed_checkpoint(path)
    assert default.preprocessor_.mean[0] == pytest.approx(0.485 * 255)
    model = SparseFeatureNet.from_seed_checkpoint(path, stats_from=images)
    cropped = images[:, 8:152, 8:152].astype(np.float64)
    np.testing.assert_allclose(model.preprocessor_.mean, cropped.mean(axis=(0, 1, 2)), rtol=1e-6)
    np.testing.assert_allclose(model.preprocessor_.std, cropped.std(axis=(0, 1, 2)), rtol=1e-5)
