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


# ----------------------------------------------------------------------------- symmetry="d4"
def test_dihedral_transforms_are_the_eight_distinct_group_elements():
    from sfnet.nn import dihedral_transforms

    x = torch.arange(2 * 3 * 4 * 4, dtype=torch.float32).view(2, 3, 4, 4)
    out = dihedral_transforms(x)
    assert out.shape == (16, 3, 4, 4)
    views = out.view(8, 2, 3, 4, 4)
    assert torch.equal(views[0], x)
    assert torch.equal(views[4], x.transpose(-1, -2))
    assert torch.equal(views[3], torch.rot90(x, 2, dims=(-2, -1)))
    flat = {tuple(v[0, 0].flatten().tolist()) for v in views}
    assert len(flat) == 8  # all different
    # the set of transforms of a transformed image is the same set
    rotated = dihedral_transforms(torch.rot90(x, 1, dims=(-2, -1))).view(8, 2, 3, 4, 4)
    assert {tuple(v[0, 0].flatten().tolist()) for v in rotated} == flat
    with pytest.raises(ValueError, match="square"):
        dihedral_transforms(torch.zeros(1, 3, 4, 5))


def test_bad_symmetry_is_rejected():
    with pytest.raises(ValueError, match="symmetry must be one of"):
        SparseFeatureNetwork(k=2, symmetry="c4")


@pytest.mark.parametrize("train_mode", [False, True])
def test_d4_network_is_invariant_to_rotations_and_flips(train_mode):
    torch.manual_seed(0)
    net = SparseFeatureNetwork(k=3, n_targets=2, symmetry="d4")
    net.train(train_mode)
    x = torch.randn(3, 3, 32, 32)
    transforms = [lambda t: t, lambda t: t.flip(-1), lambda t: t.flip(-2),
                  lambda t: torch.rot90(t, 1, dims=(-2, -1)),
                  lambda t: torch.rot90(t, 2, dims=(-2, -1)),
                  lambda t: torch.rot90(t, 3, dims=(-2, -1)),
                  lambda t: t.transpose(-1, -2), lambda t: torch.rot90(t, 1, (-2, -1)).flip(-1)]
    with torch.no_grad():
        ref_a = net.sparse_features(x)
        ref = net(x)
        for g in transforms:
            xg = g(x).contiguous()
            a = net.sparse_features(xg)
            assert torch.equal(a != 0, ref_a != 0)  # the same active features
            torch.testing.assert_close(a, ref_a, rtol=1e-5, atol=1e-6)
            torch.testing.assert_close(net(xg), ref, rtol=1e-5, atol=1e-6)
    # the default network is not invariant (so the test above can fail)
    torch.manual_seed(0)
    plain = SparseFeatureNetwork(k=3, n_targets=2).eval()
    with torch.no_grad():
        assert not torch.allclose(plain(x), plain(x.flip(-1)), atol=1e-6)


def test_variance_head_sees_detached_features():
    torch.manual_seed(0)
    net = SparseFeatureNetwork(k=3, n_targets=2, variance_head=True).eval()
    assert net.has_variance_head and not SparseFeatureNetwork(k=3).has_variance_head
    x = torch.randn(2, 3, 32, 32)
    mean, logvar = net(x, return_logvar=True)
    assert mean.shape == logvar.shape == (2, 2)
    assert torch.equal(logvar, torch.zeros(2, 2))  # zero initialisation: unit variance
    torch.testing.assert_close(mean, net(x))
    # The variance loss gives no gradient to the trunk or the mean head.
    logvar.sum().backward()
    assert all(p.grad is None for name, p in net.named_parameters()
               if not name.startswith("logvar_head"))
    assert net.logvar_head.weight.grad is not None
    with pytest.raises(ValueError, match="no variance head"):
        SparseFeatureNetwork(k=3)(x, return_logvar=True)
