"""Measure the out-of-distribution score's AUCs quoted in docs/uncertainty.rst.

Trains on the metallicity sample of a mock of seed 0 (2000 galaxies at 32 px;
k=4, 5 epochs, batch 64, CPU, fp32), scores the metallicity sample of a mock of
seed 1 (1000 galaxies) as the in-distribution set, and as many images of each
outlier kind of ``tests/test_ood.py`` (pure noise, empty sky, centred stars,
the same galaxies at half the pixel scale, and rotated by 45 degrees), and
prints the ROC AUC of each kind against the held-out galaxies, the fraction
flagged, and the seconds the statistics added to ``fit``.

Usage, from the repository root::

    python docs/scripts/ood_auc.py
"""

import sys
import time
from pathlib import Path

import numpy as np
from sklearn.metrics import roc_auc_score

from sfnet import SparseFeatureNet
from sfnet.datasets import make_mock_galaxies

sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "tests"))
import test_ood as outliers  # noqa: E402  (the tests' outlier sets)

SIZE = outliers.SIZE


def main():
    train = make_mock_galaxies(2000, image_size=SIZE, seed=0, progress=False).select(
        "metallicity")
    start = time.perf_counter()
    model = SparseFeatureNet(k=4, epochs=5, batch_size=64, random_state=0, progress=False,
                             device="cpu", precision="fp32").fit(train)
    wall = time.perf_counter() - start
    print(f"train {model.n_train_}, valid {model.n_valid_}: fit {wall:.1f} s, of which the "
          f"OOD statistics {model.ood_.seconds:.1f} s; {model.ood_.to_json()}")
    full = make_mock_galaxies(1000, image_size=SIZE, seed=1, progress=False)
    zoomed = make_mock_galaxies(1000, image_size=SIZE, seed=1, progress=False,
                                pixel_scale=outliers.FOV / SIZE / 2)
    held = full.select("metallicity")
    rows = np.flatnonzero(np.isin(np.asarray(full.catalog["objID"]),
                                  np.asarray(held.catalog["objID"])))
    inside = model.ood_score(held)
    print(f"held-out galaxies: {len(held)}, flagged {np.mean(inside > model.ood_.threshold):.3f}")
    for name, images in outliers._outliers(held, zoomed[rows]).items():
        scores = model.ood_score(images)
        truth = np.r_[np.zeros(len(inside)), np.ones(len(scores))]
        auc = roc_auc_score(truth, np.r_[inside, scores])
        print(f"{name:15s} n={len(scores)}  AUC {auc:.3f}  "
              f"flagged {np.mean(scores > model.ood_.threshold):.3f}")


if __name__ == "__main__":
    main()
