"""Measure distributed-training throughput (run alone and under torchrun).

Single process::

    python docs/scripts/ddp_scaling.py --threads 2

Two processes on the same machine (gloo on CPU; use more GPUs with nccl)::

    torchrun --nproc_per_node=2 docs/scripts/ddp_scaling.py --threads 1

Streamed from a memory-mapped file (``sfnet.conf.max_in_memory_gb = 0``), on a
GPU, keeping the figures::

    python docs/scripts/ddp_scaling.py --device cuda --precision bf16 \\
        --image-size 144 --batch-size 256 --streamed --json streamed.json

Each process prints the images/s it trained (from the estimator's per-epoch
times, first epoch excluded) and, on rank 0, the global throughput and the
final validation RMSE, so the two launches can be compared; ``--json`` makes
rank 0 write them too.
"""

import argparse
import json
import os
import tempfile
import time

import numpy as np
import torch

import sfnet
from sfnet import SparseFeatureNet
from sfnet.benchmark import _synthetic_images


def main():
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--threads", type=int, default=torch.get_num_threads())
    p.add_argument("--image-size", type=int, default=64)
    p.add_argument("--n-images", type=int, default=1024)
    p.add_argument("--batch-size", type=int, default=64)
    p.add_argument("--epochs", type=int, default=3)
    p.add_argument("--precision", default="fp32")
    p.add_argument("--device", default="cpu", help="cpu (default), cuda, auto...")
    p.add_argument("--streamed", action="store_true",
                   help="train from a memory-mapped .npy, streamed batch by batch")
    p.add_argument("--json", metavar="FILE", help="rank 0 writes its figures here")
    args = p.parse_args()
    torch.set_num_threads(args.threads)
    images = _synthetic_images(args.n_images, args.image_size)
    y = images.reshape(len(images), -1).mean(axis=1)
    model = SparseFeatureNet(k=4, target="mean_pixel", epochs=args.epochs,
                             batch_size=args.batch_size, precision=args.precision,
                             random_state=0, progress=False, device=args.device)
    world = int(os.environ.get("WORLD_SIZE", "1"))
    rank = int(os.environ.get("RANK", "0"))
    t0 = time.perf_counter()
    with tempfile.TemporaryDirectory(prefix="sfnet-ddp-") as tmp:
        X = images
        if args.streamed:  # every rank writes its own copy: no shared file system needed
            np.save(os.path.join(tmp, "images.npy"), images)
            X = np.load(os.path.join(tmp, "images.npy"), mmap_mode="r")
        with sfnet.conf.set_temp("max_in_memory_gb", 0.0 if args.streamed
                                 else max(float(sfnet.conf.max_in_memory_gb), 1.0)):
            model.fit(X, y)
        del X
    total = time.perf_counter() - t0
    sec = np.mean([h["seconds"] for h in model.history_[1:]])
    per_epoch = model.n_train_ // args.batch_size * args.batch_size
    print(f"rank {rank}/{world}: {per_epoch / world / sec:.1f} img/s per process "
          f"({args.threads} threads)", flush=True)
    if rank == 0:
        rmse = model.history_[-1]["valid_rmse"][0]
        print(f"global: {per_epoch / sec:.1f} img/s; final validation RMSE "
              f"{rmse:.4f}", flush=True)
        if args.json:
            with open(args.json, "w") as fh:
                json.dump({"world_size": world, "device": str(model.device_),
                           "precision": args.precision, "streamed": args.streamed,
                           "image_size": args.image_size, "n_images": args.n_images,
                           "batch_size": args.batch_size, "epochs": args.epochs,
                           "global_img_s": per_epoch / sec,
                           "per_process_img_s": per_epoch / world / sec,
                           "fit_seconds_including_setup": total,
                           "final_valid_rmse": rmse}, fh, indent=2)


if __name__ == "__main__":
    main()
