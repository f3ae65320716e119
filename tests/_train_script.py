"""Train the synthetic task; used by the resume (SIGKILL) and DDP tests.

usage: python _train_script.py OUTDIR [--kill-after-epoch N] [--resume]
Runs under ``torchrun`` too (then the estimator trains with DDP).
"""

import argparse
import os
import signal
import sys

sys.path.insert(0, os.path.dirname(__file__))

import numpy as np  # noqa: E402

import sfnet.training  # noqa: E402
from sfnet import SparseFeatureNet  # noqa: E402
from _synthetic import blobs, register_groupnorm_backbone  # noqa: E402

PARAMS = dict(k=2, target="radius", epochs=4, batch_size=32, progress=False,
              random_state=3, precision="fp32", device="cpu")


def main():
    p = argparse.ArgumentParser()
    p.add_argument("outdir")
    p.add_argument("--kill-after-epoch", type=int, default=0)
    p.add_argument("--resume", action="store_true")
    p.add_argument("--threads", type=int, default=1)
    p.add_argument("--backbone", default="resnet18")
    args = p.parse_args()
    import torch

    torch.set_num_threads(args.threads)
    if args.kill_after_epoch:
        original = sfnet.training._save_checkpoint
        count = {"n": 0}

        def save_then_die(path, state):
            original(path, state)
            count["n"] += 1
            if count["n"] == args.kill_after_epoch:
                os.kill(os.getpid(), signal.SIGKILL)

        sfnet.training._save_checkpoint = save_then_die
    register_groupnorm_backbone()
    X, y = blobs(192, seed=5)
    model = SparseFeatureNet(backbone=args.backbone, **PARAMS).fit(
        X, y, checkpoint_dir=os.path.join(args.outdir, "ckpt"), resume=args.resume)
    model.save(os.path.join(args.outdir, "model"))
    np.save(os.path.join(args.outdir, f"pred-rank{os.environ.get('RANK', '0')}.npy"),
            model.predict(X[:32]))


if __name__ == "__main__":
    main()
