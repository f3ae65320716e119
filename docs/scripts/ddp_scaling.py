"""Measure distributed-training throughput (run alone and under torchrun).

Single process::

    python docs/scripts/ddp_scaling.py --threads 2

Two processes on the same machine (gloo on CPU; use more GPUs with nccl)::

    torchrun --nproc_per_node=2 docs/scripts/ddp_scaling.py --threads 1

Each process prints the images/s it trained (from the estimator's per-epoch
times, first epoch excluded) and, on rank 0, the global throughput and the
final validation RMSE, so the two launches can be compared.
"""

import argparse
import os

import numpy as np
import torch

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
    args = p.parse_args()
    torch.set_num_threads(args.threads)
    images = _synthetic_images(args.n_images, args.image_size)
    y = images.reshape(len(images), -1).mean(axis=1)
    model = SparseFeatureNet(k=4, target="mean_pixel", epochs=args.epochs,
                             batch_size=args.batch_size, precision=args.precision,
                             random_state=0, progress=False, device="cpu")
    model.fit(images, y)
    world = int(os.environ.get("WORLD_SIZE", "1"))
    rank = int(os.environ.get("RANK", "0"))
    sec = np.mean([h["seconds"] for h in model.history_[1:]])
    per_epoch = model.n_train_ // args.batch_size * args.batch_size
    print(f"rank {rank}/{world}: {per_epoch / world / sec:.1f} img/s per process "
          f"({args.threads} threads)", flush=True)
    if rank == 0:
        print(f"global: {per_epoch / sec:.1f} img/s; final validation RMSE "
              f"{model.history_[-1]['valid_rmse'][0]:.4f}", flush=True)


if __name__ == "__main__":
    main()
