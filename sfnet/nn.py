"""Network building blocks: the top-k sparsity layer and the Sparse Feature Network.

A Sparse Feature Network (Wu 2025, ApJ 980, 183) is a convolutional trunk whose
globally average-pooled features pass through ReLU and a *top-k* constraint
(only the k largest of the pooled features survive for each image) before one
linear layer.  Every prediction is therefore ``bias + sum of at most k terms``.

Two options extend the paper's network without changing that form:

* a *variance head*, a second linear layer on the same (detached) post-top-k
  features that predicts the log-variance of the residual, so the uncertainty
  is also ``bias + sum of at most k terms`` (`SparseFeatureNetwork.logvar_from_sparse`);
* ``symmetry="d4"``: the pooled features are averaged over the 8 dihedral
  transforms (90° rotations and flips) of the input before ReLU and top-k, so
  activations and predictions do not change when the image is rotated or
  flipped;
* a *correlation head* (``correlation_head=True``, for several targets): a
  linear layer on the same detached features that gives the correlations
  between the targets' residuals, so the variance and correlation heads
  together predict a full covariance matrix
  (`SparseFeatureNetwork.correlation_from_sparse`).
"""

import numbers

import torch
from torch import nn
from torch.nn import functional as F

__all__ = ["TopK", "SparseFeatureNetwork", "BACKBONES", "register_backbone",
           "build_backbone", "adapt_first_conv", "dihedral_transforms", "SYMMETRIES",
           "correlation_matrix"]

#: Values of ``symmetry`` accepted by `SparseFeatureNetwork`.
SYMMETRIES = (None, "d4")

#: Log-variances (of standardised targets) predicted by the variance head are
#: clamped to this range, so a wild feature cannot overflow ``exp``.
LOGVAR_RANGE = (-20.0, 20.0)


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


def adapt_first_conv(weight, in_channels):
    """ImageNet's RGB first-convolution weight adapted to ``in_channels`` input bands.

    The rule: every new channel's filter is the mean of the three RGB filters,
    scaled by ``3 / in_channels``::

        W_new[:, c] = (3 / C) * mean(W[:, 0:3], axis=1)   for c = 0 .. C-1

    Why: the mean keeps what the three pretrained colour filters share (the
    edge, blob and texture detectors ImageNet training made; their colour
    contrasts have no counterpart in other bands), it gives no band a
    privileged filter, and the scale factor keeps the activations' scale: an
    input whose ``C`` normalised bands all carry the same signal ``x`` gives
    ``sum_c W_new[:, c] * x = 3 * mean(W) * x = sum_rgb W * x``, exactly what
    the pretrained convolution gives a grey RGB image, so the batch norm that
    follows sees the statistics it was trained on.  ``C = 3`` returns the
    weight unchanged (no averaging).

    Parameters
    ----------
    weight : torch.Tensor
        ``(out_channels, 3, kh, kw)``, e.g. ``state_dict["conv1.weight"]``.
    in_channels : int
        The number of input bands ``C >= 1``.

    Returns
    -------
    torch.Tensor
        ``(out_channels, in_channels, kh, kw)``, same dtype and device.

    Examples
    --------
    >>> import torch
    >>> from sfnet.nn import adapt_first_conv
    >>> w = torch.randn(64, 3, 7, 7)
    >>> adapt_first_conv(w, 5).shape
    torch.Size([64, 5, 7, 7])
    >>> torch.allclose(adapt_first_conv(w, 5).sum(1), w.sum(1), atol=1e-5)
    True
    """
    if isinstance(in_channels, bool) or not isinstance(in_channels, numbers.Integral) or \
            in_channels < 1:
        raise ValueError(f"in_channels must be a positive integer, got {in_channels!r}")
    if not isinstance(weight, torch.Tensor) or weight.dim() != 4 or weight.shape[1] != 3:
        raise ValueError("weight must be a (out_channels, 3, kh, kw) tensor, got "
                         f"{getattr(weight, 'shape', type(weight).__name__)}")
    if in_channels == 3:
        return weight
    mean = weight.mean(dim=1, keepdim=True) * (3.0 / in_channels)
    return mean.expand(-1, int(in_channels), -1, -1).contiguous()


def _set_in_channels(net, in_channels, pretrained):
    """Give ``net.conv1`` ``in_channels`` inputs (`adapt_first_conv` for pretrained weights)."""
    old = net.conv1
    if in_channels == old.in_channels:
        return net
    new = nn.Conv2d(in_channels, old.out_channels, old.kernel_size, old.stride, old.padding,
                    old.dilation, old.groups, old.bias is not None)
    if pretrained:
        with torch.no_grad():
            new.weight.copy_(adapt_first_conv(old.weight.detach(), in_channels))
            if old.bias is not None:
                new.bias.copy_(old.bias.detach())
    net.conv1 = new
    return net


def build_backbone(name, weights=None, in_channels=3):
    """Build a registered backbone, optionally with ImageNet weights.

    Parameters
    ----------
    name : str
        A key of `BACKBONES`.
    weights : {None, "imagenet"}
        ``None`` initialises randomly; ``"imagenet"`` loads torchvision's
        ImageNet weights from the torch hub cache, downloading them only if
        they are not cached.
    in_channels : int
        Input bands (default 3).  For ``C != 3`` the first convolution gets
        ``C`` inputs: random for ``weights=None``, and from the ImageNet RGB
        filters by `adapt_first_conv` for ``weights="imagenet"``.

    Returns
    -------
    module : torch.nn.Module
        The ResNet with its ``fc`` layer replaced by `torch.nn.Identity`.
    n_features : int
    """
    if name not in BACKBONES:
        raise ValueError(f"unknown backbone {name!r}; choose from {sorted(BACKBONES)}")
    builder, n_features, wname = BACKBONES[name]
    if isinstance(in_channels, bool) or not isinstance(in_channels, numbers.Integral) or \
            in_channels < 1:
        raise ValueError(f"in_channels must be a positive integer, got {in_channels!r}")
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
    return _set_in_channels(net, in_channels, weights is not None), n_features


def dihedral_transforms(x):
    """The 8 dihedral transforms of square images ``x`` (``(..., H, W)``), stacked.

    Returns a tensor ``(8 * N, ...)``: the identity, the horizontal flip, the
    vertical flip, the 180° rotation, then the same four of the transpose
    (which give the 90° rotations and the two diagonal flips).  Transform ``g``
    of image ``i`` is row ``g * N + i``.  Transforming an input by any of the 8
    permutes this set, so a symmetric function of the 8 rows is invariant.
    """
    if x.shape[-1] != x.shape[-2]:
        raise ValueError(f"dihedral transforms need square images, got "
                         f"{x.shape[-2]}x{x.shape[-1]}")
    t = x.transpose(-1, -2)
    return torch.cat([x, x.flip(-1), x.flip(-2), x.flip(-2, -1),
                      t, t.flip(-1), t.flip(-2), t.flip(-2, -1)])


def correlation_matrix(offdiag, n_targets):
    """Correlation matrices ``(N, T, T)`` from ``(N, T(T-1)/2)`` unconstrained values.

    The values fill the strict lower triangle (row by row) of a matrix ``M``
    with unit diagonal; the rows of ``M`` are normalised to unit length, so
    ``R = M M^T`` is symmetric positive-definite with unit diagonal.  Zeros give
    the identity.
    """
    n = offdiag.shape[0]
    m = torch.eye(n_targets, dtype=offdiag.dtype, device=offdiag.device).repeat(n, 1, 1)
    rows, cols = torch.tril_indices(n_targets, n_targets, offset=-1, device=offdiag.device)
    m[:, rows, cols] = offdiag
    m = m / m.norm(dim=2, keepdim=True)
    return m @ m.transpose(1, 2)


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
    symmetry : {None, "d4"}
        ``"d4"``: average the pooled features over the 8 dihedral transforms
        of the input (`dihedral_transforms`) before ReLU and top-k, so the
        active features and the prediction are invariant to 90° rotations
        and flips (8 times the trunk's cost).  The 8 values are summed in
        sorted order, so the average is bitwise the same for every transform.
    variance_head : bool
        Add ``logvar_head``, a linear layer from the post-top-k features to
        the log-variance of each target (initialised to 0, i.e. unit variance
        of the standardised targets).  It sees the features detached, so
        training it never changes the features or the mean head.
    in_channels : int
        Bands of the input images (default 3; see `build_backbone`).
    correlation_head : bool
        Add ``corr_head``, a linear layer from the post-top-k features to the
        ``T(T-1)/2`` values that `correlation_matrix` turns into the
        correlations of the ``T`` targets' residuals (initialised to 0: no
        correlation).  Needs ``variance_head`` and at least two targets; it
        also sees the features detached.

    Notes
    -----
    The trunk runs under whatever autocast context the caller sets; the
    pooled features, the top-k and the head are always evaluated in float32,
    so ``forward(x) == topk_features(x) @ head.weight.T + head.bias`` to
    float32 rounding whatever the precision of the trunk.
    """

    def __init__(self, k, n_targets=1, backbone="resnet18", weights=None, *, symmetry=None,
                 variance_head=False, in_channels=3, correlation_head=False):
        super().__init__()
        if symmetry not in SYMMETRIES:
            raise ValueError(f"symmetry must be one of {SYMMETRIES}, got {symmetry!r}")
        self.resnet, self.n_features = build_backbone(backbone, weights, in_channels)
        if k > self.n_features:
            raise ValueError(f"k={k} exceeds the {self.n_features} features of {backbone}")
        self.backbone = backbone
        self.symmetry = symmetry
        self.topk = TopK(k)
        self.head = nn.Linear(self.n_features, n_targets)
        self.logvar_head = None
        if variance_head:  # zero init: draws no random numbers, so the rest is unchanged
            self.logvar_head = nn.Linear(self.n_features, n_targets)
            nn.init.zeros_(self.logvar_head.weight)
            nn.init.zeros_(self.logvar_head.bias)
        self.corr_head = None
        if correlation_head:
            if not variance_head or n_targets < 2:
                raise ValueError("correlation_head needs variance_head=True and at least "
                                 f"two targets (got {n_targets})")
            self.corr_head = nn.Linear(self.n_features, n_targets * (n_targets - 1) // 2)
            nn.init.zeros_(self.corr_head.weight)
            nn.init.zeros_(self.corr_head.bias)

    @property
    def has_correlation_head(self):
        """Whether the network predicts correlations (`correlation_from_sparse`)."""
        return getattr(self, "corr_head", None) is not None

    @property
    def has_variance_head(self):
        """Whether the network predicts a log-variance (`logvar_from_sparse`)."""
        return self.logvar_head is not None

    @property
    def k(self):
        return self.topk.k

    @property
    def in_channels(self):
        """The number of input bands of the first convolution."""
        return self.resnet.conv1.in_channels

    def feature_maps(self, x):
        """The ``layer4`` feature maps ``(N, n_features, h, w)`` (non-negative)."""
        r = self.resnet
        x = r.maxpool(r.relu(r.bn1(r.conv1(x))))
        return r.layer4(r.layer3(r.layer2(r.layer1(x))))

    def pooled_features(self, x):
        """Globally averaged ``layer4`` features, float32 ``(N, n_features)``.

        With ``symmetry="d4"``, also averaged over the 8 dihedral transforms of ``x``.
        """
        if self.symmetry is None:
            return self.feature_maps(x).float().mean(dim=(2, 3))
        n = x.shape[0]
        x8 = dihedral_transforms(x).contiguous(memory_format=torch.channels_last)
        pooled = self.feature_maps(x8).float().mean(dim=(2, 3)).view(8, n, -1)
        # sorted before summing: the same 8 numbers in any order give the same bits
        return pooled.sort(dim=0).values.sum(dim=0) / 8

    def sparse_features(self, x):
        """Post-top-k features ``(N, n_features)`` with at most k non-zeros per row."""
        return self.topk(self.pooled_features(x))

    def predict_from_sparse(self, a):
        """Apply the linear head in float32 (outside any autocast)."""
        with torch.autocast(device_type=a.device.type, enabled=False):
            return self.head(a.float())

    def logvar_from_sparse(self, a):
        """Log-variance of the standardised targets from the (detached) sparse features.

        ``logvar_head(a)`` in float32, clamped to ``LOGVAR_RANGE``; no gradient
        reaches ``a``.
        """
        if self.logvar_head is None:
            raise ValueError("this network has no variance head (variance_head=False)")
        with torch.autocast(device_type=a.device.type, enabled=False):
            return self.logvar_head(a.detach().float()).clamp(*LOGVAR_RANGE)

    def correlation_from_sparse(self, a):
        """Correlation matrices ``(N, T, T)`` of the residuals from the (detached) features."""
        if not self.has_correlation_head:
            raise ValueError("this network has no correlation head (correlation_head=False)")
        with torch.autocast(device_type=a.device.type, enabled=False):
            return correlation_matrix(self.corr_head(a.detach().float()),
                                      self.head.out_features)

    def forward(self, x, return_logvar=False, return_corr=False):
        """The prediction ``(N, n_targets)``; with ``return_logvar``, ``(mean, logvar)``;
        with ``return_corr`` too, ``(mean, logvar, correlation)``."""
        a = self.sparse_features(x)
        mean = self.predict_from_sparse(a)
        if return_logvar and return_corr:
            return mean, self.logvar_from_sparse(a), self.correlation_from_sparse(a)
        if return_logvar:
            return mean, self.logvar_from_sparse(a)
        return mean

    def extra_repr(self):
        return f"symmetry={self.symmetry!r}" if self.symmetry else ""
