"""Measure the error bars of a single SFNet, a deep ensemble and the BPT class probabilities.

On one mock of a seed no test uses (default 2026), split 70/30 into train and test:

1. metallicity: a `~sfnet.SparseFeatureEnsemble` of ``--members`` networks;
   its member 0 *is* the single model (``random_state=0``), so the single
   model costs nothing extra.  A fifth of the training galaxies is kept from
   the members to calibrate the ensemble's total error bar
   (`~sfnet.SparseFeatureEnsemble.calibrate_uncertainty`, which recalibrates
   the members too: "single_recalibrated").  Coverage at 68 % / 95 % overall and in the
   worst of ``--bins`` quantile bins of stellar mass (``lgm_tot_p50``) and of
   redshift (``z``), for the single model and the ensemble; RMSE of the
   ensemble mean against each member; the training time of every member.
2. BPT: one ``"bpt_lines"`` SparseFeatureNet (``--bpt-members`` for an
   ensemble); ``predict(return_cov=True)`` -> `sfnet.interpret.bpt_probabilities`;
   the accuracy of ``argmax P`` against the class of the measured line fluxes
   (`sfnet.interpret.bpt_class` of `sfnet.interpret.line_ratios` of the
   catalog) and a reliability table of P(AGN).

Usage (small; about 10 minutes of one CPU core)::

    python docs/scripts/ensemble_and_bpt.py --n 1500 --size 32 --epochs 5 --members 5 \\
        --json ensemble_and_bpt.json

Prints the tables; ``--json FILE`` writes the numbers.
"""

import argparse
import json
import time
import warnings

import numpy as np

from sfnet import SparseFeatureEnsemble, SparseFeatureNet
from sfnet.datasets import make_mock_galaxies
from sfnet.interpret import (BPT_CLASSES, ONE_SIGMA, bpt_class, bpt_probabilities, coverage,
                             line_ratios)


def coverage_in_bins(truth, mean, std, by, n_bins):
    """Coverage (68, 95) per quantile bin of ``by``: list of (lo, hi, n, c68, c95)."""
    ok = np.isfinite(by)
    edges = np.quantile(by[ok], np.linspace(0, 1, n_bins + 1))
    rows = []
    for lo, hi in zip(edges[:-1], edges[1:]):
        sel = ok & (by >= lo) & (by <= hi)
        c68, c95 = coverage(truth[sel], mean[sel], std[sel])
        rows.append((float(lo), float(hi), int(sel.sum()), float(c68), float(c95)))
    return rows


def worst_bin(rows):
    """The bin whose 68 % coverage is furthest from nominal."""
    return max(rows, key=lambda r: abs(r[3] - ONE_SIGMA))


def metallicity_part(train, test, args, out):
    params = dict(k=4, epochs=args.epochs, batch_size=args.batch_size, progress=False,
                  random_state=0, device="cpu", precision="fp32")
    # a fifth of the training galaxies is kept from every member: the ensemble's
    # total error bar is calibrated on it (SparseFeatureEnsemble.calibrate_uncertainty)
    train, calib = train.split(0.2, seed=1)
    cpu0, t0 = time.process_time(), time.perf_counter()
    ens = SparseFeatureEnsemble(args.members, **params).fit(train)
    out["ensemble_wall_s"] = time.perf_counter() - t0
    out["ensemble_cpu_s"] = time.process_time() - cpu0
    out["member_wall_s"] = ens.member_seconds_
    truth = np.asarray(test.catalog["oh_p50"], dtype=np.float64)
    by = {"mass": np.asarray(test.catalog["lgm_tot_p50"], dtype=np.float64),
          "redshift": np.asarray(test.catalog["z"], dtype=np.float64)}
    single = ens.members_[0]
    results = {}
    predictions = {"single": single.predict(test, return_std=True),
                   "ensemble": ens.predict(test, return_std=True)}
    ens.calibrate_uncertainty(calib)
    out["ensemble_std_scale"] = ens.std_scale_.tolist()
    predictions["ensemble_calibrated"] = ens.predict(test, return_std=True)
    predictions["single_recalibrated"] = ens.members_[0].predict(test, return_std=True)
    for name, (mean, std) in predictions.items():
        c68, c95 = coverage(truth, mean, std)
        res = {"rmse": float(np.sqrt(np.mean((mean - truth) ** 2))),
               "coverage_68": float(c68), "coverage_95": float(c95),
               "median_std": float(np.median(std))}
        for key, values in by.items():
            rows = coverage_in_bins(truth, mean, std, values, args.bins)
            res[f"bins_{key}"] = rows
            res[f"worst_{key}"] = worst_bin(rows)
        results[name] = res
    member_rmse = [float(np.sqrt(np.mean((m.predict(test) - truth) ** 2)))
                   for m in ens.members_]
    _, alea, epi = ens.predict_components(test)
    results["member_rmse"] = member_rmse
    results["median_std_aleatoric"] = float(np.median(alea))
    results["median_std_epistemic"] = float(np.median(epi))
    out["metallicity"] = results

    print(f"\nmetallicity: {len(train)} train / {len(calib)} calibration / {len(test)} test "
          "galaxies, "
          f"{args.size} px, {args.epochs} epochs, {args.members} members")
    print(f"{'':20s} {'RMSE':>7s} {'cov68':>6s} {'cov95':>6s} {'med std':>8s}"
          f"  worst mass bin (n, 68, 95)      worst z bin (n, 68, 95)")
    for name in ("single", "ensemble", "ensemble_calibrated", "single_recalibrated"):
        r = results[name]
        wm, wz = r["worst_mass"], r["worst_redshift"]
        print(f"{name:20s} {r['rmse']:7.4f} {r['coverage_68']:6.3f} {r['coverage_95']:6.3f} "
              f"{r['median_std']:8.4f}  [{wm[0]:.2f},{wm[1]:.2f}] {wm[2]:3d} {wm[3]:.2f} "
              f"{wm[4]:.2f}   [{wz[0]:.3f},{wz[1]:.3f}] {wz[2]:3d} {wz[3]:.2f} {wz[4]:.2f}")
    print("member RMSE:", " ".join(f"{v:.4f}" for v in member_rmse),
          f"(mean {np.mean(member_rmse):.4f}); ensemble mean {results['ensemble']['rmse']:.4f}")
    print(f"median std: aleatoric {results['median_std_aleatoric']:.4f}, "
          f"epistemic {results['median_std_epistemic']:.4f}")
    print("training wall time per member [s]:", " ".join(f"{s:.1f}" for s in ens.member_seconds_),
          f"; ensemble {out['ensemble_wall_s']:.1f} s wall, {out['ensemble_cpu_s']:.1f} s CPU")


def bpt_part(train, test, args, out):
    params = dict(k=4, target="bpt_lines", epochs=args.epochs, batch_size=args.batch_size,
                  progress=False, random_state=0, device="cpu", precision="fp32")
    t0 = time.perf_counter()
    model = (SparseFeatureEnsemble(args.bpt_members, **params) if args.bpt_members > 1
             else SparseFeatureNet(**params)).fit(train)
    out["bpt_wall_s"] = time.perf_counter() - t0
    mean, cov = model.predict(test, return_cov=True)
    prob = bpt_probabilities(mean, cov, n_samples=2000, seed=0)
    x, y = line_ratios(test)  # the measured fluxes of the catalog
    catalog_class = bpt_class(x, y)
    ok = catalog_class != "unclassified"
    predicted = np.asarray(BPT_CLASSES)[np.argmax(prob, axis=1)]
    accuracy = float(np.mean(predicted[ok] == catalog_class[ok]))
    point = bpt_class(*line_ratios(mean))  # the class of the mean prediction
    point_accuracy = float(np.mean(point[ok] == catalog_class[ok]))
    is_agn = catalog_class[ok] == "AGN"
    p_agn = prob[ok, 2]
    edges = np.array([0, 0.1, 0.3, 0.5, 0.7, 0.9, 1.0])
    table = []
    for lo, hi in zip(edges[:-1], edges[1:]):
        sel = (p_agn >= lo) & ((p_agn < hi) if hi < 1 else (p_agn <= hi))
        table.append((float(lo), float(hi), int(sel.sum()),
                      float(p_agn[sel].mean()) if sel.any() else float("nan"),
                      float(is_agn[sel].mean()) if sel.any() else float("nan")))
    counts = {c: int(np.sum(catalog_class[ok] == c)) for c in BPT_CLASSES}
    out["bpt"] = {"n_test": int(ok.sum()), "accuracy_argmax_p": accuracy,
                  "accuracy_point": point_accuracy, "catalog_counts": counts,
                  "reliability_p_agn": table}
    print(f"\nBPT: {len(train)} train / {int(ok.sum())} classified test galaxies "
          f"({counts}); training {out['bpt_wall_s']:.1f} s")
    print(f"accuracy of argmax P vs catalog class: {accuracy:.3f} "
          f"(class of the mean prediction: {point_accuracy:.3f})")
    print("P(AGN) bin     n   mean P  observed AGN fraction")
    for lo, hi, n, mp, obs in table:
        print(f"[{lo:.1f}, {hi:.1f}]  {n:4d}  {mp:6.3f}  {obs:6.3f}")


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--n", type=int, default=1500, help="mock galaxies")
    parser.add_argument("--size", type=int, default=32, help="image size (px)")
    parser.add_argument("--epochs", type=int, default=5)
    parser.add_argument("--batch-size", type=int, default=64)
    parser.add_argument("--members", type=int, default=5)
    parser.add_argument("--bpt-members", type=int, default=1)
    parser.add_argument("--bins", type=int, default=5, help="quantile bins of mass and z")
    parser.add_argument("--seed", type=int, default=2026, help="mock seed (no test uses it)")
    parser.add_argument("--skip-bpt", action="store_true")
    parser.add_argument("--skip-metallicity", action="store_true")
    parser.add_argument("--threads", type=int, default=1, help="torch CPU threads")
    parser.add_argument("--json", default=None, help="write the numbers here")
    args = parser.parse_args(argv)
    import torch

    torch.set_num_threads(args.threads)
    warnings.simplefilter("ignore")
    sample = make_mock_galaxies(args.n, image_size=args.size, seed=args.seed, progress=False)
    out = {"args": vars(args)}
    if not args.skip_metallicity:
        train, test = sample.select("metallicity").split(0.3, seed=0)
        metallicity_part(train, test, args, out)
    if not args.skip_bpt:
        train, test = sample.select("bpt_lines").split(0.3, seed=0)
        bpt_part(train, test, args, out)
    if args.json:
        with open(args.json, "w") as fh:
            json.dump(out, fh, indent=2)


if __name__ == "__main__":
    main()
