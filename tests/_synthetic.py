"""A synthetic image -> target task the estimator tests train on.

Each image holds one Gaussian blob at a random position; the target is the
blob's radius in pixels (std ~2 px).  A CNN can learn it; a pixel mean cannot
fully, because brightness also depends on position noise.
"""

import numpy as np


def blobs(n, size=32, seed=0):
    rng = np.random.default_rng(seed)
    yy, xx = np.mgrid[:size, :size]
    r = rng.uniform(2, 9, n)
    cx, cy = rng.uniform(0.35 * size, 0.65 * size, (2, n))
    d2 = (xx[None] - cx[:, None, None]) ** 2 + (yy[None] - cy[:, None, None]) ** 2
    img = np.exp(-0.5 * d2 / r[:, None, None] ** 2)
    colour = np.array([200.0, 150.0, 100.0])
    images = img[..., None] * colour + rng.normal(0, 8, (n, size, size, 3))
    return np.clip(images, 0, 255).astype(np.uint8), r


def register_groupnorm_backbone():
    """Register ``resnet18_gn``: resnet18 with GroupNorm instead of BatchNorm.

    Without batch statistics, a 2-process DDP run on a global batch computes
    exactly the gradients of a 1-process run on the same batch.
    """
    import torchvision
    from torch import nn

    from sfnet.nn import register_backbone

    def build(weights=None):
        return torchvision.models.resnet18(norm_layer=lambda c: nn.GroupNorm(8, c))

    register_backbone("resnet18_gn", build, 512)
