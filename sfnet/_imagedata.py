"""The image data path shared by training and inference.

`ImageSource` reads rows of an image array (in memory or a `numpy.memmap`,
channels last or first) batch by batch; `DeviceImages` holds the training or
validation images as the network sees them -- prepared once on the device
when they fit in `in_memory_limit` bytes, else streamed from the source with
`prefetched` reads in a background thread -- and applies the `dihedral`
augmentation and the `~sfnet.preprocessing.Preprocessor` normalisation.
Memory-mapped files are read with positioned reads
(`sfnet.datasets._store.read_file_rows`), so memory stays that of a few batches.
"""

import math

import numpy as np
import torch

from .datasets._store import read_file_rows

__all__ = ["in_memory_limit", "ImageSource", "dihedral", "DeviceImages", "prefetched",
           "to_device_with_geometry"]


def in_memory_limit():
    """Bytes of prepared images kept in memory: ``sfnet.conf.max_in_memory_gb`` GiB.

    Larger image sets are streamed batch by batch from their (memory-mapped)
    source instead.
    """
    from .config import conf

    gb = float(conf.max_in_memory_gb)
    if not math.isfinite(gb) or gb < 0:
        raise ValueError(f"sfnet.conf.max_in_memory_gb must be a non-negative number of GiB, "
                         f"got {conf.max_in_memory_gb!r}")
    return gb * 1024**3


class ImageSource:
    """Rows of an image array, read lazily in batches.

    Parameters
    ----------
    images : array-like
        ``(N, H, W, C)`` (channels last) or ``(N, C, H, W)``; `numpy.memmap`
        stays on disk until a batch is read.
    rows : array of int, optional
        The rows of ``images`` this source covers (default all).
    """

    def __init__(self, images, rows=None, channels_last=True):
        self.images = images
        self.rows = np.arange(len(images)) if rows is None else np.asarray(rows, np.int64)
        self.channels_last = channels_last

    def __len__(self):
        return len(self.rows)

    @property
    def image_shape(self):
        s = self.images.shape
        return (s[1], s[2]) if self.channels_last else (s[2], s[3])

    def read(self, positions):
        """Images at ``positions`` (into this source) as an NCHW tensor (uint8 or float32)."""
        rows = self.rows[np.asarray(positions)]
        batch = None
        if isinstance(self.images, np.memmap):  # read past the map: memory stays flat
            batch = read_file_rows(self.images, rows)
        if batch is None:
            contiguous = len(rows) > 0 and rows[-1] - rows[0] == len(rows) - 1 and np.all(
                np.diff(rows) == 1)
            batch = self.images[rows[0]:rows[-1] + 1] if contiguous else self.images[rows]
            batch = np.asarray(batch)
        if batch.dtype != np.uint8:
            batch = batch.astype(np.float32, copy=False)
        if not batch.flags.writeable or not batch.flags.c_contiguous:
            batch = np.array(batch)  # read-only memmap slices: one copy, as torch needs
        t = torch.from_numpy(batch)
        return t.permute(0, 3, 1, 2) if self.channels_last else t

    def batches(self, batch_size):
        """Yield ``(positions, NCHW tensor)`` over the source in order."""
        for start in range(0, len(self), batch_size):
            pos = np.arange(start, min(start + batch_size, len(self)))
            yield pos, self.read(pos)


def dihedral(x, generator=None, draws=None):
    """Apply one of the 8 dihedral transforms (flips, 90° rotations) to each image.

    Galaxies have no preferred orientation, so every element of the dihedral
    group D4 is a valid augmentation.  The transform of each image is drawn from
    ``generator`` (a CPU `torch.Generator`), so runs are reproducible, or given
    as ``draws``, a boolean ``(3, N)`` array (transpose, horizontal flip,
    vertical flip).
    """
    n = x.shape[0]
    if draws is None:
        draws = torch.randint(0, 2, (3, n), generator=generator)
    draws = torch.as_tensor(draws).bool().to(x.device)
    shape = (n,) + (1,) * (x.dim() - 1)
    if x.shape[-1] == x.shape[-2]:
        x = torch.where(draws[0].view(shape), x.transpose(-1, -2), x)
    x = torch.where(draws[1].view(shape), x.flip(-1), x)
    x = torch.where(draws[2].view(shape), x.flip(-2), x)
    return x


class DeviceImages:
    """The training/validation images as the network will see them.

    Small sets are prepared once (geometry applied, kept as uint8 on the
    device); large ones stream from the `ImageSource` batch by batch.
    """

    def __init__(self, source, prep, device, in_memory="auto"):
        self.source, self.prep, self.device = source, prep, device
        h, w = prep.output_shape(source.image_shape)
        itemsize = 1 if source.images.dtype == np.uint8 else 4
        s = source.images.shape
        bands = s[-1] if source.channels_last else s[1]
        nbytes = len(source) * bands * h * w * itemsize
        if in_memory == "auto":
            in_memory = nbytes <= in_memory_limit()
        self.tensor = None
        if in_memory:  # kept channels-last (N, H, W, C), as the network reads it
            parts = [to_device_with_geometry(t, prep, device).permute(0, 2, 3, 1)
                     for _, t in source.batches(512)]
            self.tensor = torch.cat(parts).contiguous() if parts else None

    def __len__(self):
        return len(self.source)

    def batch(self, positions, idx=None):
        """Geometry-applied batch (uint8 or float) on the device.

        ``idx`` is ``positions`` already as a tensor on the device, if the caller has it.
        """
        if self.tensor is not None:
            if idx is None:
                idx = torch.as_tensor(positions, device=self.device)
            return self.tensor.index_select(0, idx).permute(0, 3, 1, 2)
        return self._to_device(self._read_host(positions))

    def batches(self, plan, draws=None, prefetch=2):
        """Yield ``(idx, x)`` for each array of positions in ``plan``, ready to train on.

        ``x`` is the batch with the geometry applied, the dihedral transform
        ``draws[i]`` (a ``(3, len(plan[i]))`` boolean array, see `dihedral`)
        applied when ``draws`` is given, and normalised (`Preprocessor.normalize`);
        ``idx`` is the positions as a tensor on the device.

        Images held in memory are sliced on the device.  Streamed images are
        read, moved to the device and resized/cropped in a background thread,
        ``prefetch`` batches ahead of the consumer, so reading overlaps the
        training step; on accelerators the flips and the normalisation run
        there too, so the step receives a ready float batch.  On CPUs these
        float passes stay in the consumer, exactly as for images in memory: the
        training step already uses every core, and a second OpenMP team in the
        background thread would only compete with it.  The result is the same
        either way.
        """
        def ready(i, x):
            if draws is not None:
                x = dihedral(x, draws=draws[i])
            return self.prep.normalize(x)

        if self.tensor is not None or not plan:
            for i, pos in enumerate(plan):
                idx = torch.as_tensor(pos, device=self.device)
                yield idx, ready(i, self.batch(pos, idx))
            return

        if self.device.type == "cpu":
            def produce(i):  # uint8, laid out like a batch sliced from memory
                x = self._to_device(self._read_host(plan[i]))
                return x.contiguous(memory_format=torch.channels_last)

            host = prefetched(produce, len(plan), plan, self.device, prefetch)
            try:
                for i, (idx, x) in enumerate(host):
                    yield idx, ready(i, x)
            finally:
                host.close()  # stops the prefetch thread
            return

        def produce(i):
            return ready(i, self._to_device(self._read_host(plan[i])))

        yield from prefetched(produce, len(plan), plan, self.device, prefetch)

    def _read_host(self, positions):
        """Read a batch from the source in the requested order.

        NumPy arrays and memmaps are read straight into place (memmaps in file
        order, see `~sfnet.datasets._store.read_file_rows`); other array-likes
        (which may need increasing indices) are read sorted and put back in order.
        """
        pos = np.asarray(positions)
        if isinstance(self.source.images, np.ndarray):
            return self.source.read(pos)
        order = np.argsort(pos, kind="stable")
        x = self.source.read(pos[order])
        inv = np.empty_like(order)
        inv[order] = np.arange(len(order))
        return x[torch.from_numpy(inv)]

    def _to_device(self, host):
        return to_device_with_geometry(host, self.prep, self.device)


def to_device_with_geometry(host, prep, device):
    """Move a host batch to ``device`` with the geometry of ``prep`` applied.

    The geometry runs on the device, except when it is the PIL-exact resize
    (``prep.geometry_on_host``: the paper's ``"crop-resize"`` on uint8 images),
    which runs on the host *before* the transfer -- once, rather than moving
    the batch to the device, back to the host for PIL and to the device again.
    Batches bound for CUDA are pinned for an asynchronous copy.
    """
    pin = device.type == "cuda"
    if prep.geometry_on_host(host):
        host = prep.geometry(host)
        if pin:
            host = host.pin_memory()
        return host.to(device, non_blocking=pin)
    if pin:
        host = host.pin_memory()
    return prep.geometry(host.to(device, non_blocking=pin))


def prefetched(produce, n, plan, device, depth):
    """Yield ``(positions tensor, produce(i))`` for ``i < n``, computed ``depth`` ahead
    in one background thread (so in order); the thread stops when the generator
    is closed."""
    import collections
    from concurrent.futures import ThreadPoolExecutor

    depth = max(1, int(depth))
    pool = ThreadPoolExecutor(max_workers=1, thread_name_prefix="sfnet-prefetch")
    pending = collections.deque()
    try:
        for i in range(min(depth, n)):
            pending.append(pool.submit(produce, i))
        for i in range(n):
            x = pending.popleft().result()
            if i + depth < n:
                pending.append(pool.submit(produce, i + depth))
            yield torch.as_tensor(plan[i], device=device), x
    finally:
        for fut in pending:
            fut.cancel()
        pool.shutdown(wait=True)
