"""``sfnet benchmark``: measure where the time goes, as ratios taken in one run.

Every figure is measured in the same process, on the same synthetic data:

(a) a bare PyTorch training loop (same network, batch, optimiser, loss and
    precision, a batch already normalised on the device) against
    `SparseFeatureNet.fit` on uint8 images (slicing, augmentation,
    normalisation, schedule, checkpoint-free) — images/s and their ratio;
(b) a bare ``inference_mode`` forward against `SparseFeatureNet.activations`;
(c) achieved training FLOP/s (the network's FLOPs counted once with
    `torch.utils.flop_counter`) against a dense matmul of the same precision
    measured on the spot — the hardware ceiling;
(d) a paper-style step that decodes and resizes every JPEG with PIL for every
    batch (as the paper's fastai pipeline did in every epoch) against our path,
    which decodes each JPEG once into a memory-mapped sample; plus JPEG-folder
    decode and memmap read throughput;
(e) peak memory (resident set size; CUDA allocator peak on GPUs);
(f) training on a memory-mapped sample held in memory against the same
    sample streamed batch by batch from its file (``sfnet.conf.max_in_memory_gb``
    set to 0) -- images/s and their ratio -- and the peak resident memory of
    streamed training over samples of growing size, each in a fresh process;
(g) optionally (``compile=True``) `torch.compile`'s steady-state speed-up and
    its one-off compile time, for training and for inference;
(h) a projection of the paper's two training runs (117k and 250k galaxies,
    20 epochs, the network seeing 144 px crops) on this machine from the
    measured training rate, assuming time proportional to pixels x images.

Absolute images/s drift on shared machines; ratios taken in one run do not.
"""

import logging
import os
import platform
import resource
import sys
import tempfile
import time

import numpy as np
import torch

from ._device import autocast, resolve_device, resolve_precision
from .datasets._layout import IMAGE_DIR
from .nn import SparseFeatureNetwork

__all__ = ["run_benchmark", "format_table"]

log = logging.getLogger("sfnet")


def _sync(device):
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def _timed(fn, device, repeat):
    """Run ``fn`` once to warm up, then ``repeat`` times; return seconds per call."""
    fn()
    _sync(device)
    t0 = time.perf_counter()
    for _ in range(repeat):
        fn()
    _sync(device)
    return (time.perf_counter() - t0) / repeat


def _synthetic_images(n, size, seed=0):
    """Smooth random blobs with noise, uint8 (N, size, size, 3): JPEG-like content."""
    rng = np.random.default_rng(seed)
    yy, xx = np.mgrid[:size, :size] / size
    out = np.empty((n, size, size, 3), np.uint8)
    for i in range(n):
        cx, cy, r = rng.uniform(0.3, 0.7), rng.uniform(0.3, 0.7), rng.uniform(0.05, 0.2)
        blob = np.exp(-((xx - cx) ** 2 + (yy - cy) ** 2) / (2 * r * r))
        img = blob[..., None] * rng.uniform(120, 250, 3) + rng.normal(20, 6, (size, size, 3))
        out[i] = np.clip(img, 0, 255)
    return out


def _peak_rss_mb():
    rss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return rss / 1024 if sys.platform != "darwin" else rss / 1024**2


def _plain_step(net, opt, x, y, device, dtype):
    """One bare PyTorch training step: forward, RMSE loss, backward, AdamW."""
    with autocast(device, dtype):
        pred = net(x)
    loss = torch.sqrt(torch.nn.functional.mse_loss(pred.float(), y))
    opt.zero_grad(set_to_none=True)
    loss.backward()
    opt.step()


def _bare_train(net, x, y, steps, device, dtype, lr):
    opt = torch.optim.AdamW(net.parameters(), lr=lr)
    net.train()
    return _timed(lambda: _plain_step(net, opt, x, y, device, dtype), device, steps)


def _matmul_ceiling(device, dtype, n=2048, repeat=10):
    dt = dtype or torch.float32
    a = torch.randn(n, n, device=device, dtype=dt)
    b = torch.randn(n, n, device=device, dtype=dt)
    sec = _timed(lambda: torch.mm(a, b), device, repeat)
    return 2 * n**3 / sec


def _train_flops(net, x, y, device, dtype):
    from torch.utils.flop_counter import FlopCounterMode

    net.train()
    with FlopCounterMode(display=False) as counter:
        with autocast(device, dtype):
            pred = net(x)
        torch.sqrt(torch.nn.functional.mse_loss(pred.float(), y)).backward()
    net.zero_grad(set_to_none=True)
    return counter.get_total_flops()


def _paper_style_step_rate(paths, size, crop, net, device, dtype, batch_size, steps):
    """Images/s of a loop that decodes + resizes JPEGs with PIL for every batch."""
    from PIL import Image

    opt = torch.optim.AdamW(net.parameters(), lr=1e-3)
    net.train()
    mean = torch.tensor([0.485, 0.456, 0.406], device=device).view(1, 3, 1, 1)
    std = torch.tensor([0.229, 0.224, 0.225], device=device).view(1, 3, 1, 1)
    y = torch.zeros(batch_size, 1, device=device)
    state = {"i": 0}

    def step():
        batch = []
        for _ in range(batch_size):
            p = paths[state["i"] % len(paths)]
            state["i"] += 1
            with Image.open(p) as im:
                im = im.convert("RGB").resize((size, size), Image.BILINEAR)
                off = (size - crop) // 2
                im = im.crop((off, off, off + crop, off + crop))
                batch.append(torch.from_numpy(np.array(im)))
        x = torch.stack(batch).permute(0, 3, 1, 2).to(device).float().div_(255)
        x = ((x - mean) / std).contiguous(memory_format=torch.channels_last)
        _plain_step(net, opt, x, y, device, dtype)

    return batch_size / _timed(step, device, steps)


def run_benchmark(*, device="auto", image_size=144, batch_size=64, precisions=("fp32", "auto"),
                  steps=6, k=4, backbone="resnet18", io_images=256, paper_baseline=True,
                  progress=False, streaming=True, rss_images=(2000, 8000), compile=False):
    """Measure training, inference and I/O throughput; return a JSON-able dict.

    Parameters
    ----------
    device : str
        ``"auto"``, ``"cpu"``, ``"cuda"``…
    image_size : int
        Side of the square images the network sees (the paper: 144 after cropping).
    batch_size : int
    precisions : sequence of {"fp32", "bf16", "auto"}
        Each is measured in turn; ``"auto"`` resolves as in `SparseFeatureNet`.
    steps : int
        Timed training steps per measurement (``fit`` runs ``steps`` batches per
        epoch for 2 epochs).
    io_images : int
        Images written as JPEGs / a saved sample for the I/O measurements.
    paper_baseline : bool
        Also time a paper-style loop that decodes JPEGs with PIL every batch.
    streaming : bool
        Compare training from memory with training streamed from a memmap.
    rss_images : sequence of int
        Sample sizes for the peak memory of streamed training (64 px images, a
        tiny network, one epoch, each in a fresh process); empty to skip.
    compile : bool
        Also measure ``compile=True`` (`torch.compile`): compile time and
        steady-state speed-up of training and of `~SparseFeatureNet.activations`.
    """
    dev = resolve_device(device)
    if dev.type == "cuda":
        torch.backends.cudnn.benchmark = True
    n_fit = batch_size * steps
    images = _synthetic_images(max(n_fit, batch_size), image_size)
    yv = images.reshape(len(images), -1).mean(axis=1).astype(np.float64)
    result = {"device": str(dev), "device_name": _device_name(dev), "image_size": image_size,
              "batch_size": batch_size, "k": k, "backbone": backbone, "steps": steps,
              "torch": torch.__version__, "threads": torch.get_num_threads(),
              "python": platform.python_version(), "precisions": {}}
    for label, dtype in _distinct_precisions(precisions, dev):
        result["precisions"][label] = _precision_entry(
            images, yv, dev, label, dtype, k=k, backbone=backbone, batch_size=batch_size,
            steps=steps, progress=progress)
    result["io"] = _io_benchmark(io_images, image_size, dev, batch_size, steps,
                                 result["precisions"], k, backbone, paper_baseline)
    best = max(result["precisions"], key=lambda lab: result["precisions"][lab]["fit_img_s"])
    common = {"k": k, "target": "mean_pixel", "backbone": backbone, "batch_size": batch_size,
              "validation_fraction": 0.0, "device": str(dev), "precision": best,
              "random_state": 0, "progress": progress}
    if streaming:
        result["streaming"] = _streaming_benchmark(images[:n_fit], yv[:n_fit], common, steps)
    if rss_images:
        result["streaming_rss"] = [_streaming_rss_in_subprocess(int(n)) for n in rss_images]
    if compile:
        result["compile"] = _compile_benchmark(images[:n_fit], yv[:n_fit], common, steps,
                                               result["precisions"][best])
    result["projection"] = _projection(result, best)
    result["peak_rss_mb"] = _peak_rss_mb()
    if dev.type == "cuda":
        result["cuda_peak_mb"] = torch.cuda.max_memory_allocated(dev) / 1024**2
    return result


def _distinct_precisions(precisions, dev):
    """Yield ``(label, autocast dtype)`` once per distinct resolved precision, in order.

    A generator, so that a bad precision raises only when the loop reaches it.
    """
    seen = set()
    for precision in precisions:
        dtype = resolve_precision(precision, dev)
        label = "bf16" if dtype == torch.bfloat16 else "fp32"
        if label in seen:
            continue
        seen.add(label)
        yield label, dtype


def _precision_entry(images, yv, dev, label, dtype, *, k, backbone, batch_size, steps,
                     progress):
    """Measurements (a)-(c) at one precision; ``fit`` sees ``batch_size * steps`` images."""
    n_fit = batch_size * steps
    torch.manual_seed(0)
    net = SparseFeatureNetwork(k, 1, backbone).to(dev).to(memory_format=torch.channels_last)
    x = ((torch.from_numpy(images[:batch_size]).permute(0, 3, 1, 2).float() - 100) / 50)
    x = x.to(dev).contiguous(memory_format=torch.channels_last)
    y = torch.randn(batch_size, 1, device=dev)
    flops = _train_flops(net, x, y, dev, dtype)
    ceiling = _matmul_ceiling(dev, dtype)
    model, fit_sec, fit_total, bare_sec = _fit_seconds(
        images[:n_fit], yv[:n_fit], dev, label, k=k, backbone=backbone, batch_size=batch_size,
        steps=steps, progress=progress,
        bare=lambda: _bare_train(net, x, y, steps, dev, dtype, 1e-3))
    net.eval()
    act_sec = _activations_seconds(model, images[:n_fit], batch_size, dev)
    fwd_sec = _bare_forward_seconds(net, x, dev, dtype, steps)
    return {
        "bare_train_img_s": batch_size / bare_sec,
        "fit_img_s": batch_size / fit_sec,
        "fit_ratio": bare_sec / fit_sec,
        "fit_img_s_including_setup": n_fit / fit_total,
        "bare_forward_img_s": batch_size / fwd_sec,
        "activations_img_s": batch_size / act_sec,
        "activations_ratio": fwd_sec / act_sec,
        "train_gflop_per_image": flops / batch_size / 1e9,
        "train_tflop_s": flops / bare_sec / 1e12,
        "fit_tflop_s": flops / fit_sec / 1e12,
        "matmul_tflop_s": ceiling / 1e12,
        "fit_fraction_of_matmul": (flops / fit_sec) / ceiling,
    }


#: Rounds of (bare loop, fit) for the fit / bare ratio; each side keeps its best.
ROUNDS = 3


def _fit_seconds(images, yv, dev, label, *, k, backbone, batch_size, steps, progress, bare):
    """``(model, seconds per step of a fit's second epoch, seconds of a whole 1-epoch fit,
    seconds per step of the bare loop)``.

    The bare loop (``bare()``, seconds per step) and a 2-epoch fit alternate for
    `ROUNDS` rounds and each keeps its fastest round, so a change of load during
    the measurement hits both alike; the first epoch of a fit pays one-off costs
    (allocator, statistics) and is not timed.
    """
    from .estimator import SparseFeatureNet

    model = SparseFeatureNet(k=k, target="mean_pixel", backbone=backbone, epochs=2,
                             batch_size=batch_size, validation_fraction=0.0,
                             device=str(dev), precision=label, random_state=0,
                             progress=progress)
    bare_sec, fit_sec = [], []
    for _ in range(ROUNDS):
        bare_sec.append(bare())
        model.fit(images, yv)
        fit_sec.append(model.history_[1]["seconds"] / steps)
    t_full = time.perf_counter()
    model.set_params(epochs=1).fit(images, yv)
    fit_total = time.perf_counter() - t_full
    return model, min(fit_sec), fit_total, min(bare_sec)


def _activations_seconds(model, images, batch_size, dev):
    """Seconds per batch of `SparseFeatureNet.activations`, best of three passes."""
    model.activations(images[:batch_size], batch_size=batch_size)  # warm-up
    passes = []
    for _ in range(3):  # best of three passes: the least disturbed by other load
        _sync(dev)
        t0 = time.perf_counter()
        model.activations(images, batch_size=batch_size)
        _sync(dev)
        passes.append((time.perf_counter() - t0) / (len(images) / batch_size))
    return min(passes)


def _bare_forward_seconds(net, x, dev, dtype, steps):
    """Seconds per batch of a bare ``inference_mode`` forward, best of three."""
    def bare_forward():
        with torch.inference_mode(), autocast(dev, dtype):
            net.sparse_features(x)

    return min(_timed(bare_forward, dev, steps) for _ in range(3))


def _io_benchmark(n, image_size, dev, batch_size, steps, per_precision, k, backbone,
                  paper_baseline):
    from astropy.table import Table

    from .datasets import GalaxySample, load_galaxy_folder
    from .datasets.folder import write_galaxy_folder

    jpeg_size = 160 if image_size <= 160 else image_size
    imgs = _synthetic_images(n, jpeg_size, seed=1)
    cat = Table({"objID": np.arange(1, n + 1, dtype=np.int64) + 1237648720693755000,
                 "ra": np.linspace(150, 151, n), "dec": np.linspace(2, 3, n)})
    out = {"n_images": n, "jpeg_size": jpeg_size}
    with tempfile.TemporaryDirectory(prefix="sfnet-bench-") as tmp:
        folder = os.path.join(tmp, "zenodo")
        write_galaxy_folder(GalaxySample(imgs, cat), folder)
        t0 = time.perf_counter()
        sample = load_galaxy_folder(folder, cache=os.path.join(tmp, "cache"), progress=False)
        out["jpeg_decode_img_s"] = n / (time.perf_counter() - t0)
        t0 = time.perf_counter()
        load_galaxy_folder(folder, cache=os.path.join(tmp, "cache"), progress=False)
        out["cached_folder_open_s"] = time.perf_counter() - t0
        sample.save(os.path.join(tmp, "saved"))
        saved = GalaxySample.load(os.path.join(tmp, "saved"), mmap=True)
        order = np.random.default_rng(0).permutation(n)
        t0 = time.perf_counter()
        for start in range(0, n, batch_size):
            saved.read_images(np.sort(order[start:start + batch_size]))
        out["memmap_random_batch_img_s"] = n / (time.perf_counter() - t0)
        if paper_baseline:
            from PIL import Image  # noqa: F401

            paths = sorted(os.path.join(folder, IMAGE_DIR, f) for f in
                           os.listdir(os.path.join(folder, IMAGE_DIR)))
            # the paper's pipeline trained in float32 and decoded every JPEG each epoch;
            # compare it with our fastest measured configuration
            torch.manual_seed(0)
            net = SparseFeatureNetwork(k, 1, backbone).to(dev).to(memory_format=torch.channels_last)
            rate = _paper_style_step_rate(paths, jpeg_size, image_size, net, dev, None,
                                          batch_size, steps)
            best = max(per_precision, key=lambda lab: per_precision[lab]["fit_img_s"])
            out["paper_style_precision"] = "fp32"
            out["paper_style_train_img_s"] = rate
            out["fit_best_precision"] = best
            out["fit_vs_paper_style"] = per_precision[best]["fit_img_s"] / rate
    return out


def _fit_rate(model, X, y, steps):
    """Fit for 3 epochs; images/s over epochs 2-3 and the seconds of epoch 1."""
    model.set_params(epochs=3).fit(X, y)
    per_epoch = [h["seconds"] for h in model.history_]
    return model.batch_size * steps / float(np.mean(per_epoch[1:])), per_epoch[0]


def _streaming_benchmark(images, y, common, steps):
    """Training from memory against training streamed from the same memmap file."""
    from .config import conf
    from .estimator import SparseFeatureNet

    with tempfile.TemporaryDirectory(prefix="sfnet-bench-") as tmp:
        path = os.path.join(tmp, "images.npy")
        np.save(path, images)
        mm = np.load(path, mmap_mode="r")
        rates = {"in_memory": [], "streamed": []}
        for _ in range(2):  # alternate, so that drifting load hits both alike
            for mode, gb in (("in_memory", max(float(conf.max_in_memory_gb), 1.0)),
                             ("streamed", 0.0)):
                with conf.set_temp("max_in_memory_gb", gb):
                    rates[mode].append(_fit_rate(SparseFeatureNet(**common), mm, y, steps)[0])
        del mm
    mem, st = max(rates["in_memory"]), max(rates["streamed"])
    return {"n_images": len(images), "precision": common["precision"],
            "in_memory_img_s": mem, "streamed_img_s": st, "streamed_vs_in_memory": st / mem}


def _streaming_rss_child(n, size, queue):
    """In a fresh process: one streamed epoch over ``n`` memory-mapped images; peak RSS."""
    torch.set_num_threads(1)
    from .config import conf
    from .estimator import SparseFeatureNet
    from .nn import BACKBONES, register_backbone

    if "_bench_tiny" not in BACKBONES:
        register_backbone("_bench_tiny", _tiny_backbone, 32)
    with tempfile.TemporaryDirectory(prefix="sfnet-bench-") as tmp:
        path = os.path.join(tmp, "images.npy")
        rng = np.random.default_rng(0)
        with open(path, "wb") as fh:  # plain writes: a writable memmap would be resident
            np.lib.format.write_array_header_1_0(fh, {"descr": "|u1", "fortran_order": False,
                                                      "shape": (n, size, size, 3)})
            for start in range(0, n, 1024):
                stop = min(n, start + 1024)
                fh.write(rng.integers(0, 256, (stop - start, size, size, 3), np.uint8).tobytes())
        images = np.load(path, mmap_mode="r")
        before = _status_mb()
        t0 = time.perf_counter()
        with conf.set_temp("max_in_memory_gb", 0.0):
            SparseFeatureNet(k=4, target="r", backbone="_bench_tiny", epochs=1, batch_size=64,
                             device="cpu", precision="fp32", random_state=0,
                             progress=False).fit(images, np.linspace(0.0, 1.0, n))
        seconds = time.perf_counter() - t0
        after = _status_mb()
    queue.put({"n_images": n, "image_size": size, "data_mb": n * size * size * 3 / 2**20,
               "rss_before_mb": before.get("VmRSS", float("nan")),
               "peak_rss_mb": after.get("VmHWM", _peak_rss_mb()),
               "rss_file_mb": after.get("RssFile", float("nan")),
               "fit_seconds": seconds})


def _tiny_backbone(weights=None):
    """A ResNet-shaped network small enough that the data path dominates its memory."""
    from torch import nn

    net = nn.Module()
    net.conv1 = nn.Conv2d(3, 16, 3, stride=4, bias=False)
    net.bn1, net.relu, net.maxpool = nn.BatchNorm2d(16), nn.ReLU(), nn.Identity()
    net.layer1 = net.layer2 = net.layer3 = nn.Identity()
    net.layer4 = nn.Sequential(nn.Conv2d(16, 32, 3, stride=2), nn.ReLU())
    return net


def _status_mb():
    """VmRSS, VmHWM, RssAnon and RssFile of this process in MB (Linux; else empty)."""
    out = {}
    try:
        with open("/proc/self/status") as fh:
            for line in fh:
                key, _, value = line.partition(":")
                if key in ("VmRSS", "VmHWM", "RssAnon", "RssFile"):
                    out[key] = int(value.split()[0]) / 1024
    except OSError:
        pass
    return out


def _streaming_rss_in_subprocess(n, size=64):
    """Run `_streaming_rss_child` in a spawned process (its own peak RSS)."""
    import multiprocessing

    ctx = multiprocessing.get_context("spawn")
    queue = ctx.Queue()
    proc = ctx.Process(target=_streaming_rss_child, args=(n, size, queue))
    proc.start()
    import queue as queues

    try:
        while True:
            try:
                return queue.get(timeout=5)
            except queues.Empty:
                if not proc.is_alive():
                    raise RuntimeError(f"the streaming-memory measurement for {n} images "
                                       f"failed (exit code {proc.exitcode})") from None
    finally:
        proc.join(timeout=60)
        queue.close()
        queue.join_thread()


def _compile_benchmark(images, y, common, steps, eager):
    """``compile=True`` against eager: steady-state images/s and one-off compile time."""
    import warnings

    from .estimator import SparseFeatureNet

    model = SparseFeatureNet(compile=True, **common)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always", RuntimeWarning)
        rate, first = _fit_rate(model, images, y, steps)
        t0 = time.perf_counter()
        model.activations(images, batch_size=common["batch_size"])  # compiles
        act_first = time.perf_counter() - t0
        t0 = time.perf_counter()
        model.activations(images, batch_size=common["batch_size"])
        act_sec = time.perf_counter() - t0
    failed = [str(w.message) for w in caught if "torch.compile" in str(w.message)]
    batches = len(images) / common["batch_size"]
    steady_epoch = model.batch_size * steps / rate
    return {"precision": common["precision"], "fell_back_to_eager": bool(failed),
            "warnings": failed[:2],
            "fit_img_s": rate, "fit_speedup": rate / eager["fit_img_s"],
            "train_compile_seconds": max(first - steady_epoch, 0.0),
            "activations_img_s": len(images) / act_sec,
            "activations_speedup": (len(images) / act_sec) / eager["activations_img_s"],
            "inference_compile_seconds": max(act_first - act_sec, 0.0),
            "batches_per_pass": batches}


#: The paper's two training samples (galaxies) and epochs.
PAPER_SAMPLES = {"metallicity (117k)": 117_000, "BPT lines (250k)": 250_207}
PAPER_EPOCHS = 20
PAPER_CROP = 144
PAPER_STORED = 160


def _projection(result, best):
    """Hours for the paper's runs on this machine, from the measured training rate.

    Assumes training time proportional to pixels x images (the network's cost
    at ``PAPER_CROP`` px is the measured one scaled by the pixel ratio), every
    galaxy seen once per epoch, and the streamed rate when the sample exceeds
    ``sfnet.conf.max_in_memory_gb``.
    """
    from .config import conf

    rate = result["precisions"][best]["fit_img_s"] * (result["image_size"] / PAPER_CROP) ** 2
    ratio = result.get("streaming", {}).get("streamed_vs_in_memory", 1.0)
    limit_gb = float(conf.max_in_memory_gb)
    rows = {}
    for name, n in PAPER_SAMPLES.items():
        prepared_gb = n * PAPER_CROP**2 * 3 / 2**30
        streamed = prepared_gb > limit_gb
        img_s = rate * (min(ratio, 1.0) if streamed else 1.0)
        rows[name] = {"n_galaxies": n, "epochs": PAPER_EPOCHS,
                      "stored_gb": n * PAPER_STORED**2 * 3 / 2**30,
                      "prepared_gb": prepared_gb, "streamed": streamed,
                      "img_s": img_s, "hours": n * PAPER_EPOCHS / img_s / 3600}
    return {"precision": best, "crop": PAPER_CROP, "measured_at_px": result["image_size"],
            "assumption": "time proportional to pixels x images; every galaxy once per "
                          "epoch; the streamed rate for samples over max_in_memory_gb",
            "max_in_memory_gb": limit_gb, "samples": rows}


def _device_name(dev):
    if dev.type == "cuda":
        return torch.cuda.get_device_name(dev)
    return platform.processor() or platform.machine()


#: The rows of the per-precision table: (label, result key, unit).
_PRECISION_ROWS = (("training: bare PyTorch loop", "bare_train_img_s", "img/s"),
                   ("training: SparseFeatureNet.fit", "fit_img_s", "img/s"),
                   ("  fit / bare", "fit_ratio", "ratio"),
                   ("  fit incl. setup (1 epoch)", "fit_img_s_including_setup", "img/s"),
                   ("inference: bare forward", "bare_forward_img_s", "img/s"),
                   ("inference: activations()", "activations_img_s", "img/s"),
                   ("  activations / bare", "activations_ratio", "ratio"),
                   ("training FLOPs per image", "train_gflop_per_image", "GFLOP"),
                   ("fit achieved", "fit_tflop_s", "TFLOP/s"),
                   ("dense matmul ceiling", "matmul_tflop_s", "TFLOP/s"),
                   ("  fit / matmul ceiling", "fit_fraction_of_matmul", "ratio"))


def format_table(result):
    """A plain-text table of a `run_benchmark` result."""
    lines = _header_lines(result) + _precision_lines(result["precisions"])
    lines += _io_lines(result["io"])
    if "streaming" in result:
        lines += _streaming_lines(result["streaming"])
    if result.get("streaming_rss"):
        lines += _streaming_rss_lines(result["streaming_rss"])
    if "compile" in result:
        lines += _compile_lines(result["compile"])
    if "projection" in result:
        lines += _projection_lines(result["projection"])
    lines.append(f"peak resident memory {result['peak_rss_mb']:.0f} MB" +
                 (f", CUDA peak {result['cuda_peak_mb']:.0f} MB"
                  if "cuda_peak_mb" in result else ""))
    return "\n".join(lines)


def _header_lines(result):
    """The run's settings, then a blank line."""
    return [f"sfnet benchmark: {result['backbone']} k={result['k']}, "
            f"{result['image_size']} px, batch {result['batch_size']}, device "
            f"{result['device']} ({result['device_name']}), {result['threads']} threads, "
            f"torch {result['torch']}", ""]


def _precision_lines(precisions):
    """One column per precision, one row per `_PRECISION_ROWS` entry."""
    labels = list(precisions)
    lines = [f"{'':34s}" + "".join(f"{lab:>12s}" for lab in labels)]
    for name, key, unit in _PRECISION_ROWS:
        vals = "".join(f"{precisions[lab][key]:12.3g}" for lab in labels)
        lines.append(f"{name:34s}{vals}  {unit}")
    return lines


def _io_lines(io):
    """JPEG decode, cached re-open, memmap reads and the paper-style loop if measured."""
    lines = ["", f"I/O ({io['n_images']} images of {io['jpeg_size']} px):",
             f"  JPEG folder decode (once, into a memmap) {io['jpeg_decode_img_s']:10.1f} img/s",
             f"  cached folder re-open                    {io['cached_folder_open_s']:10.3f} s",
             "  memmap random batches                    "
             f"{io['memmap_random_batch_img_s']:10.1f} img/s"]
    if "paper_style_train_img_s" in io:
        lines += [f"  paper-style training (PIL decode + resize every batch, fp32)"
                  f" {io['paper_style_train_img_s']:8.1f} img/s",
                  f"  fit ({io['fit_best_precision']}) / paper-style"
                  f"{io['fit_vs_paper_style']:27.2f} x"]
    return lines


def _streaming_lines(st):
    """Training held in memory against training streamed from the file."""
    return ["", f"Streaming ({st['n_images']} images, {st['precision']}, the same memmap):",
            f"  training held in memory                  {st['in_memory_img_s']:10.1f} img/s",
            f"  training streamed from the file          {st['streamed_img_s']:10.1f} img/s",
            f"  streamed / in memory                     {st['streamed_vs_in_memory']:10.3f}"]


def _streaming_rss_lines(rows):
    """Peak resident memory of streamed epochs, one line per sample size."""
    lines = ["", ("Peak resident memory of one streamed epoch (64 px, tiny network, "
                  "fresh process):")]
    for r in rows:
        lines.append(f"  {r['n_images']:>8d} images ({r['data_mb']:7.0f} MB on disk)"
                     f"   peak {r['peak_rss_mb']:7.0f} MB  (file pages at end "
                     f"{r['rss_file_mb']:.0f} MB)")
    return lines


def _compile_lines(c):
    """``compile=True`` speed-ups and one-off compile times."""
    fell = ", FELL BACK TO EAGER" if c["fell_back_to_eager"] else ""
    return ["", f"compile=True ({c['precision']}{fell}):",
            (f"  fit                                      {c['fit_img_s']:10.1f} img/s"
             f"  ({c['fit_speedup']:.2f} x eager)"),
            (f"  activations()                            {c['activations_img_s']:10.1f}"
             f" img/s  ({c['activations_speedup']:.2f} x eager)"),
            (f"  one-off compile time: training {c['train_compile_seconds']:.0f} s, "
             f"inference {c['inference_compile_seconds']:.0f} s")]


def _projection_lines(pr):
    """Hours of the paper's runs on this machine, one line per sample."""
    lines = ["", (f"Projection of the paper's runs on this machine ({pr['precision']}, "
                  f"{pr['crop']} px crops, {PAPER_EPOCHS} epochs;"),
             f"  assuming {pr['assumption']}):"]
    for name, r in pr["samples"].items():
        how = "streamed" if r["streamed"] else "in memory"
        lines.append(f"  {name:20s} {r['stored_gb']:5.1f} GB at {PAPER_STORED} px, "
                     f"{how:9s} {r['img_s']:8.1f} img/s  {r['hours']:8.1f} h")
    return lines
