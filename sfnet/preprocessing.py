"""Image geometry before the network: the order of centre crop and resize.

sfnet knows two orders, chosen with ``SparseFeatureNet(preprocessing=...)`` and
stored with a saved model:

``"resize-crop"`` (the default for new models)
    Resize the image to ``image_size`` (bilinear with antialiasing, in floating
    point, rounded back to uint8 for uint8 images), then cut the central
    ``crop_size`` pixels.  The network sees ``crop_size`` pixels that all come
    from the resized image.

``"crop-resize"`` (the paper's order)
    Cut the central ``crop_size`` pixels of the image as it is, then resize
    that crop to ``image_size``.  This is what the paper's fastai pipeline did:
    fastai sorts item transforms by their ``order`` attribute, so its
    ``CropPad(144)`` ran *before* ``Resize(160)``, and the network of Wu (2025)
    saw the central 144 px of each 160 px cutout upsampled back to 160 px.
    uint8 images are resized exactly as PIL's ``Image.resize(...,
    Image.BILINEAR)`` does (it is PIL that resizes them), so the network sees
    the same pixel values as in the paper's pipeline; float images are
    resized with `torch.nn.functional.interpolate` (bilinear, antialiased).

In both orders a size left as None skips that step, and the crop takes the
central pixels with the top-left corner at ``((H - c) // 2, (W - c) // 2)``.

A fitted model keeps its geometry and per-channel normalisation statistics in
a `Preprocessor` (saved with the model).

Normalisation, per band, from the training images (after the geometry):

uint8 images (0–255, e.g. SDSS or Legacy Surveys JPEGs)
    ``(x - mean) / std`` with the mean and standard deviation of each band,
    exactly as sfnet always did (``stretch=None``).
float images (e.g. FITS fluxes, any number of bands)
    ``asinh((x - median) / scale)`` (``stretch="asinh"``), where ``median`` is the
    band's median pixel and ``scale`` is `SOFTENING` (5) times its robust spread, 1.4826
    times the median absolute deviation from the median (the standard deviation of
    Gaussian sky noise), from a random sample of at most `ROBUST_PIXELS` training pixels
    per band.  With a softening of 1 sky sigma the sky noise alone filled the range
    -1..1 of the network's input and a mock model (2000 galaxies, 32 px, 6 epochs)
    learned a constant (r2 0.00); at 5 sky sigma the sky stays within about +-0.2 and
    the same model reached r2 0.33.  Across four seeds and softenings of 1 to 20 sky
    sigma, 5 was the one value that trained on every seed (the table in
    docs/own_data.rst; ``docs/scripts/softening_sweep.py``). Flux images have heavy
    tails: a bright core is hundreds of sky sigmas, and a mean and standard deviation
    would be set by a few bright galaxies and stars, squashing the faint outskirts (and
    the sky) into a sliver around 0.  The median and MAD are set by the typical (mostly
    sky) pixel and ignore the tail; the asinh is linear within a few sky sigmas and
    logarithmic beyond (like the asinh magnitudes of Lupton et al. 1999), so a core 1000
    sigma bright becomes about asinh(200) = 6.0, not 1000.  A band whose MAD is 0 (e.g.
    noiseless, mostly empty images) falls back to half its 16–84 percentile range, then
    to its standard deviation, then to 1.

(fastai's ``Resize`` computes the region it resizes as ``int(crop / size *
size)`` pixels, which floating-point rounding makes one pixel short for about
5 % of (crop, size) pairs, e.g. 15 -> 11; sfnet does not copy that quirk.  The
paper's 144 -> 160, and 56 -> 64, are not affected.)

Why PIL and not torchvision for the exact resize?  On uint8 CPU tensors
``torchvision.transforms.v2.functional.resize(..., antialias=True)`` agrees with
PIL bit for bit when *upsampling* (the paper's 144 -> 160), but measured with
PIL 13 it differs by 1 DN on some pixels when downsampling by a non-integer
factor (e.g. 4 % of pixels for 160 -> 144); PIL itself is as fast per image.
"""

from dataclasses import dataclass, field

import numpy as np
import torch
from torch.nn import functional as F

__all__ = ["ORDERS", "PAPER_ORDER", "STRETCHES", "ROBUST_PIXELS", "SOFTENING", "Preprocessor",
           "robust_stats", "apply_geometry", "center_crop",
           "check_order", "output_shape", "resize_like_pil"]

#: The known geometry orders.
ORDERS = ("resize-crop", "crop-resize")
#: The order of the paper's fastai pipeline (centre crop, then resize).
PAPER_ORDER = "crop-resize"
#: Normalisations of `Preprocessor`: None (linear, uint8 images) or ``"asinh"``
#: (robust centre and scale then asinh, float images).
STRETCHES = (None, "asinh")
#: Most pixels per band sampled by `robust_stats`.
ROBUST_PIXELS = 1_000_000
#: The asinh softening of float images, in robust sky sigmas (see `sfnet.preprocessing`).
SOFTENING = 5.0


def robust_stats(pixels):
    """Per-band (median, robust scale) of ``pixels`` ``(n, C)`` (float64 arrays).

    The scale is 1.4826 x the median absolute deviation; where that is 0,
    half the 16-84 percentile range, then the standard deviation, then 1.
    Non-finite pixels are ignored.
    """
    pixels = np.asarray(pixels, dtype=np.float64)
    med = np.empty(pixels.shape[1])
    scale = np.empty(pixels.shape[1])
    for c in range(pixels.shape[1]):
        v = pixels[:, c]
        v = v[np.isfinite(v)]
        if v.size == 0:
            med[c], scale[c] = 0.0, 1.0
            continue
        med[c] = np.median(v)
        s = 1.4826 * np.median(np.abs(v - med[c]))
        if not s > 1e-12:
            p16, p84 = np.percentile(v, [16, 84])
            s = 0.5 * (p84 - p16)
        if not s > 1e-12:
            s = float(np.std(v))
        scale[c] = s if s > 1e-12 else 1.0
    return med, scale


def check_order(order, name="preprocessing"):
    """``order`` if it is one of `ORDERS`; else `ValueError` naming ``name``."""
    if not isinstance(order, str) or order not in ORDERS:
        raise ValueError(f"{name} must be one of {list(ORDERS)}, got {order!r}")
    return order


def center_crop(x, size):
    """The central ``size`` x ``size`` pixels of ``x`` (``(..., H, W)``; a view)."""
    h, w = x.shape[-2:]
    if size > h or size > w:
        raise ValueError(f"crop_size={size} is larger than the images ({h}x{w})")
    top, left = (h - size) // 2, (w - size) // 2
    return x[..., top:top + size, left:left + size]


def resize_like_pil(x, size):
    """Resize uint8 ``(N, C, H, W)`` images to ``size`` x ``size`` as PIL's bilinear does.

    Each image goes through ``PIL.Image.resize((size, size), Image.BILINEAR)``,
    so the result equals PIL's bit for bit.  Tensors on another device are
    resized on the CPU and moved back.
    """
    from PIL import Image

    if x.dtype != torch.uint8:
        raise TypeError(f"resize_like_pil needs uint8 images, got {x.dtype}")
    if tuple(x.shape[-2:]) == (size, size):
        return x
    host = x.detach().to("cpu").permute(0, 2, 3, 1).numpy()
    out = np.empty((host.shape[0], size, size, host.shape[3]), dtype=np.uint8)
    for i, img in enumerate(host):
        if img.shape[2] == 1:
            out[i, ..., 0] = np.asarray(Image.fromarray(np.ascontiguousarray(img[..., 0]))
                                        .resize((size, size), Image.BILINEAR))
        else:
            out[i] = np.asarray(Image.fromarray(np.ascontiguousarray(img))
                                .resize((size, size), Image.BILINEAR))
    return torch.from_numpy(out).permute(0, 3, 1, 2).to(x.device)


def _resize_float(x, size, *, exact_uint8):
    """Bilinear antialiased resize; uint8 stays uint8 (PIL-exact if ``exact_uint8``)."""
    if tuple(x.shape[-2:]) == (size, size):
        return x
    if x.dtype == torch.uint8 and exact_uint8:
        return resize_like_pil(x, size)
    dtype = x.dtype
    x = F.interpolate(x.float(), size=(size, size), mode="bilinear", antialias=True,
                      align_corners=False)
    if dtype == torch.uint8:
        x = x.round_().clamp_(0, 255).to(torch.uint8)
    return x


def apply_geometry(x, image_size=None, crop_size=None, order="resize-crop"):
    """Resize and centre-crop ``(N, C, H, W)`` images in the given ``order`` (dtype kept).

    Parameters
    ----------
    x : torch.Tensor
        uint8 or float images, channels first.
    image_size, crop_size : int, optional
        Target sizes (None skips the step).
    order : {"resize-crop", "crop-resize"}
        See the module docstring; ``"crop-resize"`` is the paper's.

    Returns
    -------
    torch.Tensor

    Examples
    --------
    >>> import torch
    >>> from sfnet.preprocessing import apply_geometry
    >>> x = torch.zeros(2, 3, 64, 64, dtype=torch.uint8)
    >>> apply_geometry(x, 64, 56, "crop-resize").shape
    torch.Size([2, 3, 64, 64])
    >>> apply_geometry(x, 64, 56, "resize-crop").shape
    torch.Size([2, 3, 56, 56])
    """
    check_order(order)
    if order == "crop-resize":
        if crop_size is not None:
            x = center_crop(x, crop_size)
        if image_size is not None:
            x = _resize_float(x, image_size, exact_uint8=True)
        return x
    if image_size is not None:
        x = _resize_float(x, image_size, exact_uint8=False)
    if crop_size is not None:
        x = center_crop(x, crop_size)
    return x


def output_shape(shape, image_size=None, crop_size=None, order="resize-crop"):
    """``(height, width)`` of images of ``shape`` after `apply_geometry`."""
    h, w = shape
    steps = [("resize", image_size), ("crop", crop_size)]
    if check_order(order) == "crop-resize":
        steps.reverse()
    for _, size in steps:
        if size is not None:
            h = w = int(size)
    return h, w


@dataclass
class Preprocessor:
    """Resize and centre crop (in the order ``order``) and per-channel normalisation.

    ``mean``/``std`` are per-channel statistics on the scale of the input
    images (0–255 for uint8), computed from the training data by `fit_stats`:
    the mean and standard deviation for uint8 images, the median and robust
    scale for float images (see `sfnet.preprocessing`; the stored ``std`` of
    float images is `SOFTENING` x the robust scale).  One value per band.

    Parameters
    ----------
    image_size, crop_size : int or None
        The resize and centre-crop sizes (None skips that step).
    mean, std : list of float
        Per-channel statistics subtracted and divided by `normalize`.
    order : {"resize-crop", "crop-resize"}
        The order of the two steps (see the module documentation).
    stretch : {None, "asinh"}
        None: ``(x - mean) / std``; ``"asinh"``: ``asinh((x - mean) / std)``.
        `fit_stats` sets it from the images' dtype (asinh for float).
    """

    image_size: int = None
    crop_size: int = None
    mean: list = field(default_factory=lambda: [0.0, 0.0, 0.0])
    std: list = field(default_factory=lambda: [1.0, 1.0, 1.0])
    #: ``"resize-crop"`` or ``"crop-resize"`` (the paper's); see `sfnet.preprocessing`.
    order: str = "resize-crop"
    #: None (linear) or ``"asinh"``; see `sfnet.preprocessing`.
    stretch: str = None

    @property
    def n_channels(self):
        """The number of bands the statistics are for."""
        return len(self.mean)

    def geometry(self, x):
        """Resize and centre-crop in the order ``order`` (see `sfnet.preprocessing`; dtype kept)."""
        return apply_geometry(x, self.image_size, self.crop_size, self.order)

    def geometry_on_host(self, x):
        """Whether `geometry` of ``x`` is best run on the host, before a transfer.

        True when it resizes uint8 images in the ``"crop-resize"`` order, which
        PIL does on the CPU (see `resize_like_pil`): on another device the batch
        would travel there, back to the host and there again.
        """
        return (self.order == "crop-resize" and self.image_size is not None
                and x.dtype == torch.uint8
                and tuple(output_shape(x.shape[-2:], None, self.crop_size, self.order))
                != (self.image_size, self.image_size))

    def output_shape(self, shape):
        """``(height, width)`` of images of ``shape`` after `geometry`."""
        return output_shape(shape, self.image_size, self.crop_size, self.order)

    def normalize(self, x):
        """Float32 normalised copy in channels-last memory format.

        One conversion and two in-place passes (measured fastest on CPU: in-place
        float32 arithmetic beats bfloat16 arithmetic and broadcasting ``addcmul``);
        under bfloat16 autocast the first convolution casts the result.
        """
        mean, scale = self._stats(x.device)
        x = x.to(torch.float32, copy=True).sub_(mean).mul_(scale)  # never modifies the input
        if self.stretch == "asinh":
            x = x.asinh_()
        return x.contiguous(memory_format=torch.channels_last)

    def _stats(self, device):
        """(mean, 1/std) tensors on ``device``, made once per device and statistics."""
        key = (str(device), tuple(self.mean), tuple(self.std))
        cache = self.__dict__.setdefault("_stats_cache", {})
        if key not in cache:
            cache.clear()
            mean = torch.tensor(self.mean, dtype=torch.float32).view(1, -1, 1, 1)
            scale = torch.tensor([1.0 / s for s in self.std], dtype=torch.float32).view(1, -1, 1, 1)
            cache[key] = (mean.to(device), scale.to(device))
        return cache[key]

    def fit_stats(self, source, max_images=2048, seed=0):
        """Per-channel statistics from (a random subset of) ``source``.

        ``source`` is an image source with ``len`` and ``read(positions)``
        returning an NCHW tensor (`sfnet._imagedata.ImageSource`); the
        statistics are of the images after `geometry`.  uint8 images get the
        mean and std (``stretch=None``), float images the median and robust
        scale of at most `ROBUST_PIXELS` pixels per band (``stretch="asinh"``;
        see `sfnet.preprocessing`).  Returns ``self``.
        """
        n = len(source)
        pos = np.arange(n)
        rng = np.random.default_rng(seed)
        if n > max_images:
            pos = np.sort(rng.choice(n, max_images, replace=False))
        s = s2 = None
        count = 0
        floats = []
        for start in range(0, len(pos), 256):
            x = self.geometry(source.read(pos[start:start + 256]))
            if x.dtype != torch.uint8:  # a share of ROBUST_PIXELS from each batch
                px = x.permute(0, 2, 3, 1).reshape(-1, x.shape[1]).float().numpy()
                quota = -(-ROBUST_PIXELS * x.shape[0] // len(pos))
                if len(px) > quota:
                    px = px[rng.choice(len(px), quota, replace=False)]
                floats.append(px)
                continue
            x = x.double()
            if s is None:
                s = torch.zeros(x.shape[1], dtype=torch.float64)
                s2 = torch.zeros(x.shape[1], dtype=torch.float64)
            s += x.sum(dim=(0, 2, 3))
            s2 += (x * x).sum(dim=(0, 2, 3))
            count += x.shape[0] * x.shape[2] * x.shape[3]
        if floats:
            med, scale = robust_stats(np.concatenate(floats))
            self.mean = [float(v) for v in med]
            self.std = [float(SOFTENING * v) for v in scale]
            self.stretch = "asinh"
            return self
        mean = s / count
        std = torch.sqrt(torch.clamp(s2 / count - mean * mean, min=0.0))
        self.mean = [float(v) for v in mean]
        self.std = [float(v) if v > 1e-8 else 1.0 for v in std]
        self.stretch = None
        return self
