import pytest
import torch

from sfnet.nn import BACKBONES, SparseFeatureNetwork, TopK, build_backbone


def test_topk_keeps_k_largest_after_relu():
    x = torch.tensor([[3.0, -1.0, 2.0, 5.0, 0.5], [-1.0, -2.0, -3.0, -4.0, -5.0]])
    out = TopK(2)(x)
    assert torch.equal(out[0], torch.tensor([3.0, 0.0, 0.0, 5.0, 0.0]))
    assert torch.equal(out[1], torch.zeros(5))  # no positive value survives the ReLU


def test_topk_fewer_positive_than_k_and_ties():
    x = torch.tensor([[1.0, -1.0, -2.0, 0.0], [2.0, 2.0, 2.0, 1.0]])
    out = TopK(3)(x)
    assert torch.equal(out[0], torch.tensor([1.0, 0.0, 0.0, 0.0]))
    # three tied maxima: all kept, the smaller value dropped
    assert torch.equal(out[1], torch.tensor([2.0, 2.0, 2.0, 0.0]))
    assert int((TopK(2)(x) != 0).sum(dim=1).max()) <= 2


def test_topk_k_at_least_width_is_relu():
    x = torch.randn(4, 6)
    assert torch.equal(TopK(6)(x), torch.relu(x))
    assert torch.equal(TopK(10)(x), torch.relu(x))


def test_topk_gradient_only_through_kept_values():
    x = torch.tensor([[3.0, -1.0, 2.0, 5.0, 4.0]], requires_grad=True)
    TopK(2)(x).sum().backward()
    assert torch.equal(x.grad, torch.tensor([[0.0, 0.0, 0.0, 1.0, 1.0]]))


@pytest.mark.parametrize("k", [0, -1, 1.5, True, "2"])
def test_topk_rejects_bad_k(k):
    with pytest.raises(ValueError, match="k must be"):
        TopK(k)


def test_network_consistency_and_sparsity():
    torch.manual_seed(0)
    net = SparseFeatureNetwork(k=3, n_targets=2).eval()
    x = torch.randn(4, 3, 32, 32)
    with torch.no_grad():
        maps = net.feature_maps(x)
        pooled = net.pooled_features(x)
        a = net.sparse_features(x)
        out = net(x)
    assert maps.shape[:2] == (4, 512) and (maps >= 0).all()
    torch.testing.assert_close(maps.mean(dim=(2, 3)), pooled)
    assert ((a != 0).sum(dim=1) <= 3).all()
    torch.testing.assert_close(out, a @ net.head.weight.T + net.head.bias)


def test_backbone_registry():
    assert {"resnet18", "resnet34", "resnet50"} <= set(BACKBONES)
    net, n = build_backbone("resnet50")
    assert n == 2048 and isinstance(net.fc, torch.nn.Identity)
    with pytest.raises(ValueError, match="unknown backbone 'vgg'"):
        build_backbone("vgg")
    with pytest.raises(ValueError, match="k=600 exceeds"):
        SparseFeatureNetwork(k=600)


def test_imagenet_weights_unavailable_is_a_clear_error(tmp_path, monkeypatch):
    import torchvision

    def offline(*args, **kwargs):
        raise OSError("network unreachable")

    monkeypatch.setattr(torch.hub, "load_state_dict_from_url", offline)
    monkeypatch.setattr(torchvision.models._api, "load_state_dict_from_url", offline,
                        raising=False)
    with pytest.raises(RuntimeError, match="ImageNet weights .* weights=None"):
        build_backbone("resnet18", weights="imagenet")
