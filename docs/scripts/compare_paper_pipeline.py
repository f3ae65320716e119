"""Measure `SparseFeatureNet.from_seed_checkpoint` against the paper's own pipeline.

Writes two small folders of mock galaxies in the Zenodo layout (``galaxies.csv`` +
``images-sdss/{objID}.jpg``), runs the paper-pipeline runner ``seedpipe.py`` on
them in a separate process (fastai is never imported here), then loads the
checkpoint it saved with `SparseFeatureNet.from_seed_checkpoint` and the
normalisation statistics it reports (``seed.json``), predicts the same test
JPEGs and compares with the pipeline's own ``preds.csv``.

Usage (see ``/work/shared/paper-pipeline/README.md`` or the documentation page
"Reproducing the paper" for making a fastai environment)::

    site=$(path/to/paper-pipeline/install-fastai.sh python)
    python docs/scripts/compare_paper_pipeline.py path/to/paper-pipeline/seedpipe.py \\
        --site "$site" --workdir /tmp/cmp --size 64 --crop 56 --epochs 2 --k 4

Prints a table of max and rms |Δ| (dex) for: the paper's order in fp32 and
under bfloat16 autocast, sfnet's "resize-crop" order with the same statistics,
statistics computed by sfnet from the training images, ImageNet statistics,
and a `save`/`load` round trip; ``--json FILE`` writes them.
"""

import argparse
import json
import os
import subprocess
import sys
import tempfile
from pathlib import Path

import numpy as np


def _folders(workdir, n_train, n_test, size, seed):
    from sfnet.datasets import make_mock_galaxies, write_galaxy_folder

    train, test = workdir / "train", workdir / "test"
    if not (train / "galaxies.csv").exists() or not (test / "galaxies.csv").exists():
        sample = make_mock_galaxies(n_train + n_test, image_size=size, seed=seed,
                                    progress=False)
        write_galaxy_folder(sample[:n_train], train, overwrite=True)
        write_galaxy_folder(sample[n_train:], test, overwrite=True)
    return train, test


def _run_pipeline(seedpipe, python, site, train, test, out, size, crop, epochs, k):
    env = dict(os.environ)
    if site:
        env["PYTHONPATH"] = site + os.pathsep + env.get("PYTHONPATH", "")
    cmd = [python, str(seedpipe), str(train), str(test), str(out), str(size), str(crop),
           str(epochs), str(k)]
    print("running:", " ".join(cmd), flush=True)
    subprocess.run(cmd, check=True, env=env)


def _diff(a, b):
    d = np.abs(np.asarray(a, np.float64) - np.asarray(b, np.float64))
    return {"max": float(d.max()), "rms": float(np.sqrt(np.mean(d ** 2))),
            "median": float(np.median(d))}


def compare(out, train, test, size, crop, k):
    """The table of differences between sfnet and the pipeline's ``preds.csv``."""
    from astropy.table import Table

    from sfnet import SparseFeatureNet
    from sfnet.datasets import load_galaxy_folder

    seed = json.loads((out / "seed.json").read_text())
    mean = [255 * v for v in seed["mean"]]
    std = [255 * v for v in seed["std"]]
    preds = Table.read(out / "preds.csv", format="ascii.csv")
    galaxies = load_galaxy_folder(test, cache=False, progress=False)
    index = {int(o): i for i, o in enumerate(galaxies.catalog["objID"])}
    rows = np.array([index[int(o)] for o in preds["objID"]])
    images = np.asarray(galaxies.images)[rows]
    ref = np.asarray(preds["pred"], dtype=np.float64)
    pth = out / f"resnet18-topk_{k}-metallicity.pth"
    geometry = {"image_size": size, "crop_size": crop}
    results = {"n_test": int(len(ref)), "pred_std": float(ref.std()), "stats_0_255":
               {"mean": mean, "std": std}}

    paper = SparseFeatureNet.from_seed_checkpoint(pth, precision="fp32", mean=mean, std=std,
                                                  **geometry)
    p32 = paper.predict(images)
    results["crop-resize fp32"] = _diff(p32, ref)
    bf16 = SparseFeatureNet.from_seed_checkpoint(pth, precision="bf16", mean=mean, std=std,
                                                 **geometry)
    results["crop-resize bf16 autocast"] = _diff(bf16.predict(images), ref)
    old = SparseFeatureNet.from_seed_checkpoint(pth, precision="fp32", mean=mean, std=std,
                                                preprocessing="resize-crop", **geometry)
    results["resize-crop (sfnet's default order) fp32"] = _diff(old.predict(images), ref)
    train_gal = load_galaxy_folder(train, cache=False, progress=False)
    derived = SparseFeatureNet.from_seed_checkpoint(pth, precision="fp32",
                                                    stats_from=train_gal, **geometry)
    results["stats_from=training folder fp32"] = _diff(derived.predict(images), ref)
    results["stats_from_0_255"] = {"mean": derived.preprocessor_.mean,
                                   "std": derived.preprocessor_.std}
    imagenet = SparseFeatureNet.from_seed_checkpoint(
        pth, precision="fp32", mean=[0.485 * 255, 0.456 * 255, 0.406 * 255],
        std=[0.229 * 255, 0.224 * 255, 0.225 * 255], **geometry)
    results["ImageNet statistics fp32"] = _diff(imagenet.predict(images), ref)
    with tempfile.TemporaryDirectory() as tmp:
        paper.save(Path(tmp) / "m")
        again = SparseFeatureNet.load(Path(tmp) / "m", precision="fp32")
        results["save/load vs before (exact)"] = _diff(again.predict(images), p32)
    return results


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("seedpipe", type=Path, help="path of the paper-pipeline runner seedpipe.py")
    ap.add_argument("--python", default=sys.executable,
                    help="interpreter with torch for the pipeline (default: this one)")
    ap.add_argument("--site", default=None, help="folder with fastai, prepended to PYTHONPATH")
    ap.add_argument("--workdir", type=Path, default=Path("compare-paper-pipeline"))
    ap.add_argument("--n-train", type=int, default=300)
    ap.add_argument("--n-test", type=int, default=100)
    ap.add_argument("--size", type=int, default=64)
    ap.add_argument("--crop", type=int, default=56)
    ap.add_argument("--epochs", type=int, default=2)
    ap.add_argument("--k", type=int, default=4)
    ap.add_argument("--seed", type=int, default=11)
    ap.add_argument("--reuse", action="store_true",
                    help="skip the pipeline run if its outputs exist")
    ap.add_argument("--json", type=Path, default=None)
    args = ap.parse_args(argv)

    args.workdir.mkdir(parents=True, exist_ok=True)
    train, test = _folders(args.workdir, args.n_train, args.n_test, args.size, args.seed)
    out = args.workdir / f"pipeline-k{args.k}-e{args.epochs}"
    if not (args.reuse and (out / "preds.csv").exists()):
        _run_pipeline(args.seedpipe, args.python, args.site, train, test, out, args.size,
                      args.crop, args.epochs, args.k)
    results = compare(out, train, test, args.size, args.crop, args.k)
    print(f"{'case':45s} {'max |d| (dex)':>14s} {'rms |d| (dex)':>14s}")
    for name, r in results.items():
        if isinstance(r, dict) and "max" in r:
            print(f"{name:45s} {r['max']:14.3g} {r['rms']:14.3g}")
    print(f"n_test={results['n_test']}, spread of the pipeline's predictions "
          f"(std) {results['pred_std']:.3g} dex")
    if args.json:
        args.json.write_text(json.dumps(results, indent=1))
    return results


if __name__ == "__main__":
    main()
