"""Network building blocks: the top-k sparsity layer and the Sparse Feature Network.

A Sparse Feature Network (Wu 2025, ApJ 980, 183) is a convolutional trunk whose
globally average-pooled features pass through ReLU and a *top-k* constraint
(only the k largest of the pooled features survive for each image) before one
linear layer.  Every prediction is therefore ``bias + sum of at most k terms``.
"""

import numbers

import torch
from torch import nn
from torch.nn import functional as F

__all__ = ["TopK", "SparseFeatureNetwork", "BACKBONES", "register_backbone",
           "build_backbone"]


class TopK(nn.Module):
    """ReLU followed by keeping the ``k`` largest values of each row.

    All other entries are set to zero.  Rows with fewer than ``k`` positive
    values keep only their positive values (the rest are zero after the ReLU
    anyway); ties at the k-th value are broken by `torch.topk`.  Gradients flow
    only through the kept values.

    Parameters
    ----------
    k : int
        Number of features kept per row (``k >= 1``).

    Examples
    --------
    >>> import torch
    >>> from sfnet.nn import TopK
    >>> TopK(2)(torch.tensor([[3.0, -1.0, 2.0, 5.0]]))
    tensor([[3., 0., 0., 5.]])
    """

    def __init__(self, k):
        super().__init__()
        if isinstance(k, bool) or not isinstance(k, numbers.Integral) or k < 1:
            raise ValueError(f"k must be a positive integer, got {k!r}")
        self.k = int(k)

    def forward(self, x):
        x = F.relu(x)
        if self.k >= x.shape[-1]:
            return x
        values, indices = torch.topk(x, self.k, dim=-1, sorted=False)
        return torch.zeros_like(x).scatter(-1, indices, values)

    def extra_repr(self):
        return f"k={self.k}"


def _torchvision_resnet(name):
    def build(weights=None):
        import torchvision

        return torchvision.models.get_model(name, weights=weights)
    return build


#: Registered backbones: name -> (builder(weights) -> torchvision ResNet, n_features,
#: torchvision weights enum name for ``weights="imagenet"``).
BACKBONES = {
    "resnet18": (_torchvision_resnet("resnet18"), 512, "ResNet18_Weights.IMAGENET1K_V1"),
    "resnet34": (_torchvision_resnet("resnet34"), 512, "ResNet34_Weights.IMAGENET1K_V1"),
    "resnet50": (_torchvision_resnet("resnet50"), 2048, "ResNet50_Weights.IMAGENET1K_V2"),
}


def register_backbone(name, builder, n_features, imagenet_weights=None):
    """Register a ResNet-like backbone.

    Parameters
    ----------
    name : str
        Name used as ``SparseFeatureNet(backbone=name)``.
    builder : callable
        ``builder(weights)`` returns a module with torchvision ResNet attributes
        (``conv1, bn1, relu, maxpool, layer1`` … ``layer4``).
    n_features : int
        Number of channels of ``layer4``.
    imagenet_weights : str, optional
        torchvision weights name used for ``weights="imagenet"``.
    """
    if not isinstance(name, str) or not name:
        raise TypeError(f"backbone name must be a non-empty string, got {name!r}")
    BACKBONES[name] = (builder, int(n_features), imagenet_weights)


def build_backbone(name, weights=None):
    """Build a registered backbone, optionally with ImageNet weights.

    Parameters
    ----------
    name : str
        A key of `BACKBONES`.
    weights : {None, "imagenet"}
        ``None`` initialises randomly; ``"imagenet"`` loads torchvision's
        ImageNet weights from the torch hub cache, downloading them only if
        they are not cached.

    Returns
    -------
    module : torch.nn.Module
        The ResNet with its ``fc`` layer replaced by `torch.nn.Identity`.
    n_features : int
    """
    if name not in BACKBONES:
        raise ValueError(f"unknown backbone {name!r}; choose from {sorted(BACKBONES)}")
    builder, n_features, wname = BACKBONES[name]
    if weights is None:
        net = builder(None)
    elif weights == "imagenet":
        if wname is None:
            raise ValueError(f"backbone {name!r} has no ImageNet weights registered")
        import torchvision

        try:
            net = builder(torchvision.models.get_weight(wname))
        except (OSError, RuntimeError) as exc:  # URLError is an OSError
            raise RuntimeError(
                f"ImageNet weights {wname} for {name!r} are not in the torch hub cache "
                f"({torch.hub.get_dir()}) and could not be downloaded ({exc}). "
                "Use weights=None to train from scratch, or download them once on a "
                "machine with network access and copy the hub cache.") from exc
    else:
        raise ValueError(f"weights must be None or 'imagenet', got {weights!r}")
    net.fc = nn.Identity()
    return net, n_features


class SparseFeatureNetwork(nn.Module):
    """ResNet trunk -> global average pool -> `TopK` -> linear head.

    Parameters
    ----------
    k : int
        Features kept per image.
    n_targets : int
        Outputs of the linear head.
    backbone : str
        A key of `BACKBONES` (``"resnet18"`` is the paper's).
    weights : {None, "imagenet"}
        Trunk initialisation (see `build_backbone`).

    Notes
    -----
    The trunk runs under whatever autocast context the caller sets; the
    pooled features, the top-k and the head are always evaluated in float32,
    so ``forward(x) == topk_features(x) @ head.weight.T + head.bias`` to
    float32 rounding whatever the precision of the trunk.
    """

    def __init__(self, k, n_targets=1, backbone="resnet18", weights=None):
        super().__init__()
        self.resnet, self.n_features = build_backbone(backbone, weights)
        if k > self.n_features:
            raise ValueError(f"k={k} exceeds the {self.n_features} features of {backbone}")
        self.backbone = backbone
        self.topk = TopK(k)
        self.head = nn.Linear(self.n_features, n_targets)

    @property
    def k(self):
        return self.topk.k

    def feature_maps(self, x):
        """The ``layer4`` feature maps ``(N, n_features, h, w)`` (non-negative)."""
        r = self.resnet
        x = r.maxpool(r.relu(r.bn1(r.conv1(x))))
        return r.layer4(r.layer3(r.layer2(r.layer1(x))))

    def pooled_features(self, x):
        """Globally averaged ``layer4`` features, float32 ``(N, n_features)``."""
        return self.feature_maps(x).float().mean(dim=(2, 3))

    def sparse_features(self, x):
        """Post-top-k features ``(N, n_features)`` with at most k non-zeros per row."""
        return self.topk(self.pooled_features(x))

    def predict_from_sparse(self, a):
        """Apply the linear head in float32 (outside any autocast)."""
        with torch.autocast(device_type=a.device.type, enabled=False):
            return self.head(a.float())

    def forward(self, x):
        return self.predict_from_sparse(self.sparse_features(x))
