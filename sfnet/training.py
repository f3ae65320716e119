"""The training loop: data path, schedule, optimiser, augmentation, checkpoints, DDP.

Everything here works on tensors on the training device; there is no
per-image Python or PIL work inside the epoch loop.  Images live either as one
uint8 tensor prepared once (resized and cropped) or, for memory-mapped samples
too large for memory, are read batch by batch from the memmap.
"""

import contextlib
import logging
import math
import os
import sys
import time
from dataclasses import dataclass, field

import numpy as np
import torch
from torch.nn import functional as F

from ._io import atomic_path
from .preprocessing import apply_geometry, output_shape

__all__ = ["resolve_device", "resolve_precision", "autocast", "CompiledCall",
           "CompiledNetwork", "in_memory_limit", "ImageSource",
           "Preprocessor", "dihedral", "TrainConfig", "train_network",
           "distributed_context", "load_checkpoint", "CHECKPOINT_NAME"]

log = logging.getLogger("sfnet")

CHECKPOINT_NAME = "checkpoint.pt"


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


# ----------------------------------------------------------------------------- devices
def resolve_device(device):
    """``"auto"`` -> cuda, then mps, then cpu; anything else via `torch.device`."""
    if device is None or device == "auto":
        if torch.cuda.is_available():
            return torch.device("cuda", int(os.environ.get("LOCAL_RANK", 0)))
        if getattr(torch.backends, "mps", None) and torch.backends.mps.is_available():
            return torch.device("mps")
        return torch.device("cpu")
    try:
        dev = torch.device(device)
    except (RuntimeError, TypeError) as exc:
        raise ValueError(f"device {device!r} is not a valid torch device") from exc
    if dev.type == "cuda" and dev.index is None and int(os.environ.get("WORLD_SIZE", "1")) > 1:
        dev = torch.device("cuda", int(os.environ.get("LOCAL_RANK", 0)))  # one GPU per rank
    return dev


def _cpu_has_bf16():
    try:
        with open("/proc/cpuinfo") as fh:
            flags = fh.read()
    except OSError:
        return False
    return "avx512_bf16" in flags or "amx_bf16" in flags


def resolve_precision(precision, device):
    """Map ``"auto"``/``"fp32"``/``"bf16"`` to the autocast dtype (or None for fp32).

    ``"auto"`` chooses bfloat16 autocast on CUDA devices that support it and on
    CPUs with AVX512-BF16 or AMX instructions, float32 elsewhere.
    """
    if precision not in ("auto", "fp32", "bf16"):
        raise ValueError(f"precision must be 'auto', 'fp32' or 'bf16', got {precision!r}")
    if precision == "fp32":
        return None
    if precision == "bf16":
        return torch.bfloat16
    if device.type == "cuda":
        return torch.bfloat16 if torch.cuda.is_bf16_supported() else None
    if device.type == "cpu":
        return torch.bfloat16 if _cpu_has_bf16() else None
    return None


def autocast(device, dtype):
    """Autocast context for ``dtype`` (no-op for float32)."""
    if dtype is None:
        return contextlib.nullcontext()
    return torch.autocast(device_type=device.type, dtype=dtype)


# ----------------------------------------------------------------------------- compilation
class CompiledCall:
    """``torch.compile(fn)`` that falls back to ``fn``, with a warning, if compiling fails.

    `torch.compile` compiles on the first call (and again for new input
    shapes); without a working C++ compiler, or on a platform TorchDynamo
    does not support, that call raises.  This wrapper then warns once and
    runs ``fn`` eagerly from then on, so ``compile=True`` never stops a run.
    Attributes other than the call (``train``, ``eval``, ``parameters``...) are
    those of ``fn``.
    """

    def __init__(self, fn, what="the network"):
        self.fn, self.what = fn, what
        try:
            self.compiled = torch.compile(fn)
        except RuntimeError as exc:  # e.g. a Python version Dynamo does not support
            self._fall_back(exc)

    def _fall_back(self, exc):
        import warnings

        warnings.warn(f"compile=True: torch.compile of {self.what} failed, running it "
                      f"eagerly instead ({type(exc).__name__}: {str(exc).strip()[:300]})",
                      RuntimeWarning, stacklevel=3)
        self.compiled = None

    def __call__(self, *args, **kwargs):
        if self.compiled is not None:
            from torch._dynamo.exc import TorchDynamoException

            try:
                return self.compiled(*args, **kwargs)
            except TorchDynamoException as exc:  # backend (compiler) failures end here
                self._fall_back(exc)
        return self.fn(*args, **kwargs)

    def __getattr__(self, name):
        if name in ("fn", "what", "compiled"):
            raise AttributeError(name)
        return getattr(self.fn, name)


class CompiledNetwork:
    """A `~sfnet.nn.SparseFeatureNetwork` whose forward and ``sparse_features``
    run through `CompiledCall`; every other attribute is the network's own."""

    def __init__(self, network):
        self.network = network
        self.forward = CompiledCall(network, "the network's forward")
        self.sparse_features = CompiledCall(network.sparse_features, "sparse_features")

    def __call__(self, x, **kwargs):
        # options such as return_logvar take the eager path (compiled: the plain forward)
        return self.network(x, **kwargs) if kwargs else self.forward(x)

    def __getattr__(self, name):
        if name == "network":
            raise AttributeError(name)
        return getattr(self.network, name)


# ----------------------------------------------------------------------------- data path
class ImageSource:
    """Rows of an image array, read lazily in batches.

    Parameters
    ----------
    images : array-like
        ``(N, H, W, 3)`` (channels last) or ``(N, 3, H, W)``; `numpy.memmap`
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
            from .datasets.sample import read_file_rows

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


@dataclass
class Preprocessor:
    """Resize and centre crop (in the order ``order``) and per-channel normalisation.

    ``mean``/``std`` are per-channel statistics on the scale of the input
    images (0–255 for uint8), computed from the training data by `fit_stats`.
    """

    image_size: int = None
    crop_size: int = None
    mean: list = field(default_factory=lambda: [0.0, 0.0, 0.0])
    std: list = field(default_factory=lambda: [1.0, 1.0, 1.0])
    #: ``"resize-crop"`` or ``"crop-resize"`` (the paper's); see `sfnet.preprocessing`.
    order: str = "resize-crop"

    def geometry(self, x):
        """Resize and centre-crop in the order ``order`` (see `sfnet.preprocessing`; dtype kept)."""
        return apply_geometry(x, self.image_size, self.crop_size, self.order)

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
        """Per-channel mean and std from (a random subset of) ``source``."""
        n = len(source)
        pos = np.arange(n)
        if n > max_images:
            pos = np.sort(np.random.default_rng(seed).choice(n, max_images, replace=False))
        s = torch.zeros(3, dtype=torch.float64)
        s2 = torch.zeros(3, dtype=torch.float64)
        count = 0
        for start in range(0, len(pos), 256):
            x = self.geometry(source.read(pos[start:start + 256])).double()
            s += x.sum(dim=(0, 2, 3))
            s2 += (x * x).sum(dim=(0, 2, 3))
            count += x.shape[0] * x.shape[2] * x.shape[3]
        mean = s / count
        std = torch.sqrt(torch.clamp(s2 / count - mean * mean, min=0.0))
        self.mean = [float(v) for v in mean]
        self.std = [float(v) if v > 1e-8 else 1.0 for v in std]
        return self


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
        nbytes = len(source) * 3 * h * w * itemsize
        if in_memory == "auto":
            in_memory = nbytes <= in_memory_limit()
        self.tensor = None
        if in_memory:  # kept channels-last (N, H, W, C), as the network reads it
            parts = [prep.geometry(t.to(device)).permute(0, 2, 3, 1)
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

            host = _prefetched(produce, len(plan), plan, self.device, prefetch)
            try:
                for i, (idx, x) in enumerate(host):
                    yield idx, ready(i, x)
            finally:
                host.close()  # stops the prefetch thread
            return

        def produce(i):
            return ready(i, self._to_device(self._read_host(plan[i])))

        yield from _prefetched(produce, len(plan), plan, self.device, prefetch)

    def _read_host(self, positions):
        """Read a batch from the source (sorted, memmap friendly), in the requested order."""
        pos = np.asarray(positions)
        order = np.argsort(pos, kind="stable")
        x = self.source.read(pos[order])
        inv = np.empty_like(order)
        inv[order] = np.arange(len(order))
        x = x[torch.from_numpy(inv)]
        return x.pin_memory() if self.device.type == "cuda" else x

    def _to_device(self, host):
        pin = self.device.type == "cuda"
        return self.prep.geometry(host.to(self.device, non_blocking=pin))


def _prefetched(produce, n, plan, device, depth):
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


# ----------------------------------------------------------------------------- distributed
@dataclass
class DistInfo:
    world_size: int = 1
    rank: int = 0
    enabled: bool = False
    created: bool = False

    @property
    def is_main(self):
        return self.rank == 0


@contextlib.contextmanager
def distributed_context(device):
    """Join a torchrun job if ``WORLD_SIZE > 1`` (gloo on CPU, nccl on CUDA)."""
    import torch.distributed as dist

    world = int(os.environ.get("WORLD_SIZE", "1"))
    if world <= 1 or not dist.is_available():
        yield DistInfo()
        return
    created = False
    if not dist.is_initialized():
        if device.type == "cuda":
            torch.cuda.set_device(device)
            dist.init_process_group(backend="nccl", device_id=device)
        else:
            dist.init_process_group(backend="gloo")
        created = True
    try:
        yield DistInfo(dist.get_world_size(), dist.get_rank(), True, created)
    finally:
        if created:
            dist.destroy_process_group()


def _all_reduce_sum(t, info):
    if info.enabled:
        import torch.distributed as dist

        dist.all_reduce(t, op=dist.ReduceOp.SUM)
    return t


# ----------------------------------------------------------------------------- checkpoints
def _save_checkpoint(path, state):
    with atomic_path(path) as tmp:
        torch.save(state, tmp)


def load_checkpoint(path):
    """Load a training checkpoint written by `train_network` (never runs pickled code)."""
    return torch.load(path, map_location="cpu", weights_only=True)


# ----------------------------------------------------------------------------- the loop
@dataclass
class TrainConfig:
    epochs: int
    batch_size: int
    learning_rate: float
    weight_decay: float
    augment: bool
    seed: int
    progress: bool
    autocast_dtype: object = None
    optimizer: str = "adamw"     # or "ranger" (with fastai's one-cycle; see sfnet.optim)
    keep_epoch: str = "best"     # or "last"
    compile: bool = False


def _dihedral_draws(n, augment, gen):
    """``(3, n)`` booleans for `dihedral`: one of the 8 transforms per image or, with a
    probability ``augment < 1``, a random transform for that fraction of images only."""
    draws = torch.randint(0, 2, (3, n), generator=gen).bool()
    if augment < 1:  # a random transform with this probability, else none
        draws &= torch.rand(n, generator=gen) < augment
    return draws


def _accumulator_dtype(device):
    """float64 for running sums, except on MPS, which has no float64."""
    return torch.float32 if device.type == "mps" else torch.float64


def _batch_rmse(pred, y):
    return torch.sqrt(F.mse_loss(pred.float(), y))


def _evaluate_rmse(network, valid, y_valid, prep, device, dtype, info, batch_size):
    """Per-target RMSE (standardised units) on the validation images, summed over ranks."""
    n = len(valid)
    mine = np.arange(info.rank, n, info.world_size)
    acc = _accumulator_dtype(device)
    sse = torch.zeros(y_valid.shape[1], dtype=acc, device=device)
    count = torch.zeros(1, dtype=acc, device=device)
    network.eval()
    plan = [mine[start:start + batch_size] for start in range(0, len(mine), batch_size)]
    with torch.inference_mode():
        for idx, x in valid.batches(plan):
            with autocast(device, dtype):
                pred = network(x)
            err = pred.float() - y_valid[idx]
            sse += (err.to(acc) ** 2).sum(0)
            count += len(idx)
    _all_reduce_sum(sse, info)
    _all_reduce_sum(count, info)
    return torch.sqrt(sse / count.clamp(min=1)).cpu().numpy()


def train_network(network, train, y_train, valid, y_valid, prep, cfg, device, *,
                  checkpoint_dir=None, resume=False, extra_state=None, y_scale=None):
    """Train ``network`` in place; return ``(history, best_epoch)``.

    Parameters
    ----------
    network : SparseFeatureNetwork
    train, valid : DeviceImages
        ``valid`` may be None (no validation: the last epoch is kept).
    y_train, y_valid : torch.Tensor
        Standardised targets ``(N, T)`` on ``device``.
    prep : Preprocessor
    cfg : TrainConfig
    checkpoint_dir : path-like, optional
        Where to write ``checkpoint.pt`` after every epoch (atomically, rank 0 only).
    resume : bool
        Continue from ``checkpoint_dir/checkpoint.pt`` if it exists.
    extra_state : dict, optional
        Stored in the checkpoint and checked on resume (must match).
    y_scale : array, optional
        Target standard deviations, to report validation RMSE in original units.
    """
    with distributed_context(device) as info:
        run = _start_run(network, len(train), cfg, device, info, checkpoint_dir,
                         extra_state, y_scale)
        if resume and run.ckpt_path and os.path.exists(run.ckpt_path):
            _resume(run)
        for epoch in range(run.start_epoch, cfg.epochs):
            t0 = time.perf_counter()
            record = _train_epoch(run, epoch, train, y_train, prep)
            if valid is not None and len(valid):
                score = _validate_epoch(run, record, valid, y_valid, prep)
            else:
                score = -float(epoch)  # no validation: keep the last epoch
            if cfg.keep_epoch == "last":
                score = -float(epoch)
            record["seconds"] = time.perf_counter() - t0
            _end_epoch(run, epoch, record, score)
        return _finish(run)


@dataclass
class _Run:
    """The state of one training run, shared by its steps."""

    network: object          # the bare network (its state is what is saved)
    model: object            # what is called: the network or its DDP wrapper
    opt: object
    sched: object
    cfg: TrainConfig
    device: object
    info: DistInfo
    n: int                   # training images
    per_rank: int            # batch size per process
    global_batch: int
    full: bool               # False: one step over all the (few) training images
    steps: int               # steps per epoch
    ckpt_path: object
    extra_state: dict
    scale: object            # target standard deviations or None
    history: list = field(default_factory=list)
    best: float = math.inf
    best_state: object = None
    start_epoch: int = 0


def _start_run(network, n, cfg, device, info, checkpoint_dir, extra_state, y_scale):
    """Wrap the network for DDP, plan the steps and build the optimiser and schedule."""
    model = network
    if info.enabled:
        if device.type == "cuda":
            network = torch.nn.SyncBatchNorm.convert_sync_batchnorm(network)
        model = torch.nn.parallel.DistributedDataParallel(
            network, device_ids=[device.index] if device.type == "cuda" else None)
    if cfg.compile:
        model = CompiledCall(model)
    per_rank = max(1, cfg.batch_size // info.world_size)
    global_batch = per_rank * info.world_size
    if n < max(2, info.world_size):
        raise ValueError(f"need at least {max(2, info.world_size)} training images "
                         f"({info.world_size} process(es)), got {n}")
    full = n >= global_batch  # else one step over all (smaller) training data
    steps = n // global_batch if full else 1
    opt, sched = _optimizer_and_schedule(network, cfg, cfg.epochs * steps)
    ckpt_path = None if checkpoint_dir is None else os.path.join(checkpoint_dir, CHECKPOINT_NAME)
    scale = None if y_scale is None else np.asarray(y_scale, dtype=np.float64)
    return _Run(network, model, opt, sched, cfg, device, info, n, per_rank, global_batch,
                full, steps, ckpt_path, extra_state or {}, scale)


#: Learning-rate multiplier of the variance head: a linear layer on features
#: that keep moving, trained for as few steps as the rest, needs larger steps
#: to follow them (AdamW moves a weight by at most about the learning rate per step).
#: Only with AdamW's small default rate: under Ranger (the paper's lr 0.1) the head
#: trains at the network's rate.
VARIANCE_LR_FACTOR = 10.0


def _optimizer_and_schedule(network, cfg, total_steps):
    """AdamW or Ranger (no decay on biases and norms) with a one-cycle schedule.

    ``"adamw"``: `torch.optim.AdamW` and PyTorch's `OneCycleLR`; ``"ranger"``:
    `sfnet.optim.Ranger` and fastai's one-cycle (`sfnet.optim.OneCycle`), as in the paper.
    The variance head, if any, is its own parameter group with
    `VARIANCE_LR_FACTOR` times the learning rate.
    """
    decay, no_decay, variance = [], [], []
    for name, p in network.named_parameters():
        if name.startswith("logvar_head."):
            variance.append(p)
        else:
            (no_decay if p.ndim <= 1 else decay).append(p)
    groups = [{"params": decay, "weight_decay": cfg.weight_decay},
              {"params": no_decay, "weight_decay": 0.0}]
    max_lr = [cfg.learning_rate, cfg.learning_rate]
    if variance:
        factor = VARIANCE_LR_FACTOR if cfg.optimizer == "adamw" else 1.0
        groups.append({"params": variance, "weight_decay": 0.0,
                       "lr": cfg.learning_rate * factor})
        max_lr.append(cfg.learning_rate * factor)
    if cfg.optimizer == "ranger":
        from .optim import OneCycle, Ranger

        opt = Ranger(groups, lr=cfg.learning_rate)
        return opt, OneCycle(opt, total_steps)
    opt = torch.optim.AdamW(groups, lr=cfg.learning_rate)
    if total_steps >= 3:  # one-cycle needs a warm-up and an annealing step
        sched = torch.optim.lr_scheduler.OneCycleLR(
            opt, max_lr=max_lr, total_steps=total_steps,
            pct_start=min(0.5, max(0.25, 1.5 / total_steps)))
    else:
        sched = torch.optim.lr_scheduler.LambdaLR(opt, lambda step: 1.0)
    return opt, sched


def _resume(run):
    """Restore the run from its checkpoint (refused if it was written for other data)."""
    state = load_checkpoint(run.ckpt_path)
    if state.get("extra") != run.extra_state:
        raise ValueError(
            f"checkpoint {run.ckpt_path} was written for different data or parameters "
            f"({state.get('extra')}); use another checkpoint_dir or resume=False")
    run.network.load_state_dict(state["model"])
    run.opt.load_state_dict(state["optimizer"])
    run.sched.load_state_dict(state["scheduler"])
    run.history, run.best, run.start_epoch = state["history"], state["best"], state["epoch"] + 1
    run.best_state = state["best_state"]
    torch.set_rng_state(state["torch_rng"])
    log.info("resumed from %s at epoch %d", run.ckpt_path, run.start_epoch)


def _train_epoch(run, epoch, train, y_train, prep):
    """One pass over the training images; returns the epoch's history record."""
    from tqdm.auto import tqdm

    cfg, info = run.cfg, run.info
    gen = torch.Generator().manual_seed(cfg.seed * 100003 + epoch)
    perm = torch.randperm(run.n, generator=gen).numpy()
    run.model.train()
    total = torch.zeros((), dtype=_accumulator_dtype(run.device), device=run.device)
    seen = 0
    bar = tqdm(range(run.steps), desc=f"epoch {epoch + 1}/{cfg.epochs}", unit="batch",
               disable=not (cfg.progress and info.is_main), leave=False)
    mine = slice(info.rank, None, info.world_size)
    globs = [perm[step * run.global_batch:(step + 1) * run.global_batch] if run.full else perm
             for step in range(run.steps)]
    draws = None
    if cfg.augment:  # drawn for the global batch (DDP == one process), step by step
        draws = [_dihedral_draws(len(g), cfg.augment, gen)[:, mine] for g in globs]
    batches = train.batches([g[mine] for g in globs], draws)
    for step, (idx, x) in zip(bar, batches):
        glob = globs[step]
        loss = _train_step(run, x, y_train[idx])
        n_mine = len(glob[mine])
        total += loss * n_mine  # no host sync per step
        seen += n_mine
        if cfg.progress and info.is_main and (step % 10 == 0 or step == run.steps - 1):
            bar.set_postfix(loss=f"{float(total) / seen:.4f}")
    bar.close()
    batches.close()  # stops the prefetch thread
    return {"epoch": epoch + 1, "train_loss": float(total) / max(seen, 1),
            "lr": float(run.sched.get_last_lr()[0])}


def _gaussian_nll(pred, logvar, y):
    """Mean Gaussian negative log-likelihood (without the constant) of ``y`` given
    the *detached* prediction and ``logvar``: it trains the variance head only."""
    r2 = (y - pred.detach().float()) ** 2
    return 0.5 * (logvar + r2 * torch.exp(-logvar)).mean()


def _train_step(run, x, y):
    """Forward, backward and update on one batch; returns the (global) batch RMSE.

    A network with a variance head also gets the Gaussian negative
    log-likelihood of its log-variance added to the loss; as the head sees
    detached features and a detached prediction, that term moves the variance
    head alone.
    """
    nll = None
    variance = getattr(run.network, "has_variance_head", False)
    with autocast(run.device, run.cfg.autocast_dtype):
        if variance:
            pred, logvar = run.model(x, return_logvar=True)
        else:
            pred = run.model(x)
    loss = _batch_rmse(pred, y)
    if variance:
        nll = _gaussian_nll(pred, logvar, y)
    run.opt.zero_grad(set_to_none=True)
    if run.info.enabled:
        # DDP averages gradients, and the mean of per-process RMSE gradients
        # is not the gradient of the global RMSE; this surrogate's is:
        # d sqrt(m) = d m / (2 sqrt(m)) with m the global mean squared error.
        mse = loss.detach() ** 2
        _all_reduce_sum(mse, run.info)
        global_rmse = torch.sqrt(mse / run.info.world_size)
        surrogate = loss ** 2 / (2 * global_rmse.clamp(min=1e-12))
        (surrogate if nll is None else surrogate + nll).backward()
        loss = global_rmse
    else:
        (loss if nll is None else loss + nll).backward()
    run.opt.step()
    run.sched.step()
    return loss.detach()


def _validate_epoch(run, record, valid, y_valid, prep):
    """Add the validation RMSE to ``record``; return the score that selects the best epoch."""
    rmse = _evaluate_rmse(run.network, valid, y_valid, prep, run.device,
                          run.cfg.autocast_dtype, run.info, 2 * run.per_rank)
    record["valid_rmse"] = [float(v) for v in
                            (rmse * run.scale if run.scale is not None else rmse)]
    record["valid_score"] = float(np.sqrt(np.mean(rmse ** 2)))
    return record["valid_score"]


def _end_epoch(run, epoch, record, score):
    """Keep the best weights, report the epoch and write the checkpoint."""
    from tqdm.auto import tqdm

    run.history.append(record)
    if score < run.best:
        run.best = score
        run.best_state = {k: v.detach().to("cpu", copy=True)
                          for k, v in run.network.state_dict().items()}
    if run.info.is_main:
        msg = f"epoch {epoch + 1}/{run.cfg.epochs} loss {record['train_loss']:.4f}"
        if "valid_rmse" in record:
            msg += " valid RMSE " + ", ".join(f"{v:.4f}" for v in record["valid_rmse"])
        log.info(msg)
        if run.cfg.progress:
            tqdm.write(msg, file=sys.stderr)
    if run.ckpt_path and run.info.is_main:
        _save_checkpoint(run.ckpt_path, {
            "model": run.network.state_dict(), "optimizer": run.opt.state_dict(),
            "scheduler": run.sched.state_dict(), "epoch": epoch, "history": run.history,
            "best": run.best, "best_state": run.best_state,
            "torch_rng": torch.get_rng_state(), "extra": run.extra_state})
    if run.info.enabled:
        import torch.distributed as dist

        dist.barrier()


def _finish(run):
    """Load the best weights (on every rank: rank 0's); return ``(history, best_epoch)``."""
    if run.best_state is not None:
        run.network.load_state_dict(run.best_state)
    if run.info.enabled:
        # batch-norm running statistics are per process: make every rank hold
        # exactly rank 0's model
        import torch.distributed as dist

        for tensor in run.network.state_dict().values():
            dist.broadcast(tensor, src=0)
    history = run.history
    if run.cfg.keep_epoch == "last":
        return history, len(history)
    best_epoch = int(np.argmin([h.get("valid_score", -h["epoch"]) for h in history])) + 1
    return history, best_epoch
