"""Data-path cost of streaming vs in-memory, interleaved with real training steps.

For each repeat: one ResNet-18 training step (fp32, 1 thread) on a ready batch, one batch
through the in-memory data path, one through the streamed path (read from the memmap file,
geometry, flips, normalisation), timed with CPU time of this thread (time.thread_time:
immune to other processes' load) and wall time.  Ratio = (step + in-memory path) /
(step + streamed path), i.e. assuming no overlap of the prefetch thread with the step
(the real streamed path overlaps, so this is a lower bound on the throughput ratio).

Usage (network input size, batch size, repeats; 144 px crops from 160 px images)::

    python docs/scripts/streaming_cost.py 64 64 6
    python docs/scripts/streaming_cost.py 144 32 4
"""
import os
import sys
import tempfile
import time

import numpy as np
import torch

from sfnet.nn import SparseFeatureNetwork
from sfnet._imagedata import DeviceImages, ImageSource
from sfnet.preprocessing import Preprocessor

torch.set_num_threads(1)
size, bs, reps = int(sys.argv[1]), int(sys.argv[2]), int(sys.argv[3])
stored = 160 if size == 144 else size
n = 1024
tmp = tempfile.TemporaryDirectory(prefix="sfnet-stream-")
path = os.path.join(tmp.name, "images.npy")
np.save(path, np.random.default_rng(0).integers(0, 256, (n, stored, stored, 3), dtype=np.uint8))
X = np.load(path, mmap_mode="r")
src = ImageSource(X)
prep = Preprocessor(None, size if size != stored else None, [100.] * 3, [50.] * 3)
dev = torch.device("cpu")
mem = DeviceImages(src, prep, dev, in_memory=True)
st = DeviceImages(src, prep, dev, in_memory=False)
net = SparseFeatureNetwork(4, 1).to(memory_format=torch.channels_last)
opt = torch.optim.AdamW(net.parameters(), 1e-3)
rng = np.random.default_rng(1)
y = torch.randn(bs, 1)


def path_cost(d, pos, draws):
    c, t = time.thread_time(), time.perf_counter()
    g = d.batches([pos], [draws], prefetch=1)
    _, x = next(g)
    g.close()
    return x, time.thread_time() - c, time.perf_counter() - t


def step(x):
    c, t = time.thread_time(), time.perf_counter()
    loss = torch.sqrt(torch.nn.functional.mse_loss(net(x), y))
    opt.zero_grad()
    loss.backward()
    opt.step()
    return time.thread_time() - c, time.perf_counter() - t


res = []
for r in range(reps + 1):
    pos = rng.permutation(n)[:bs]
    draws = torch.randint(0, 2, (3, bs)).bool()
    xm, cm, wm = path_cost(mem, pos, draws)
    xs, cs, ws = path_cost(st, pos, draws)
    assert torch.equal(xm, xs)
    c_step, w_step = step(xm)
    if r:
        res.append((c_step, cm, cs, w_step, wm, ws))
a = np.median(np.array(res), axis=0)
print(f"{size}px batch {bs}: step cpu {a[0]*1e3:.0f} ms; data path cpu in-memory "
      f"{a[1]*1e3:.1f} ms, streamed {a[2]*1e3:.1f} ms (main-thread CPU; the streamed work runs "
      f"in the prefetch thread, so thread CPU undercounts it -> use wall) wall in-memory "
      f"{a[4]*1e3:.1f} ms streamed {a[5]*1e3:.1f} ms; ratio by wall of path + step cpu: "
      f"{(a[0]+a[4])/(a[0]+a[5]):.3f}; load {os.getloadavg()[0]:.1f}", flush=True)
tmp.cleanup()
