"""The paper's training recipe against sfnet's default on the mock, one change at a time.

Trains `SparseFeatureNet` on the same mock galaxies with sfnet's default
recipe, with `sfnet.PAPER_RECIPE` (``weights=None``: no network needed; the
paper's crop/resize scaled to the image size), with the paper recipe on
standardised targets, and with the default changed in one parameter at a
time; prints test RMSE, NMAD and fit time.  The table of the documentation's
"Reproducing the paper" page came from::

    OMP_NUM_THREADS=1 python docs/scripts/compare_recipes.py --n 3000 --size 64 --crop 56 \\
        --epochs 6

Timings of a shared machine are noisy; compare rows of one run.
"""

import argparse
import json
import time
import warnings

from sfnet import PAPER_RECIPE, SparseFeatureNet
from sfnet.datasets import make_mock_galaxies


def recipes(size, crop, epochs):
    """Name -> SparseFeatureNet parameters (besides k and the seed)."""
    base = {"epochs": epochs, "image_size": size}
    paper = dict(PAPER_RECIPE, weights=None, epochs=epochs, image_size=size, crop_size=crop)
    return {
        "sfnet default": base,
        "PAPER_RECIPE (weights=None)": paper,
        "PAPER_RECIPE, standardised target": dict(paper, standardize_target=True),
        "default + crop-resize": dict(base, preprocessing="crop-resize", crop_size=crop),
        "default + ranger (lr of default)": dict(base, optimizer="ranger"),
        "default + ranger, lr 0.1": dict(base, optimizer="ranger", learning_rate=0.1),
        "default + augment 0.5": dict(base, augment=0.5),
        "default + raw target": dict(base, standardize_target=False),
        "default + last epoch": dict(base, keep_epoch="last"),
    }


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--n", type=int, default=3000, help="mock galaxies before the cuts")
    ap.add_argument("--size", type=int, default=64)
    ap.add_argument("--crop", type=int, default=56)
    ap.add_argument("--epochs", type=int, default=6)
    ap.add_argument("--k", type=int, default=4)
    ap.add_argument("--seed", type=int, default=21)
    ap.add_argument("--json", default=None)
    args = ap.parse_args(argv)

    warnings.simplefilter("ignore")
    sample = make_mock_galaxies(args.n, image_size=args.size, seed=args.seed,
                                progress=False).select("metallicity")
    train, test = sample.split(0.2, seed=0)
    print(f"{len(train)} training, {len(test)} test galaxies; oracle RMSE "
          f"{sample.catalog.meta.get('oracle_rmse', float('nan')):.3f} dex", flush=True)
    results = {}
    for name, params in recipes(args.size, args.crop, args.epochs).items():
        model = SparseFeatureNet(k=args.k, random_state=0, progress=False, precision="fp32",
                                 **params)
        t0 = time.perf_counter()
        model.fit(train)
        seconds = time.perf_counter() - t0
        metrics = model.evaluate(test)["oh_p50"]
        results[name] = {"rmse": metrics["rmse"], "nmad": metrics["nmad"],
                         "seconds": seconds, "best_epoch": model.best_epoch_}
        print(f"{name:40s} RMSE {metrics['rmse']:.4f}  NMAD {metrics['nmad']:.4f}  "
              f"{seconds:7.1f} s  kept epoch {model.best_epoch_}", flush=True)
    if args.json:
        with open(args.json, "w") as fh:
            json.dump(results, fh, indent=1)
    return results


if __name__ == "__main__":
    main()
