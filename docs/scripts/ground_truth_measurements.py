"""The ground-truth measurements of the documentation's "Measured on the mock" subsection.

Three parts, each bounded (sizes on the command line):

``demo``
    With the model saved by ``sfnet demo --output DEMO`` (k = 4, 64 px): the
    latent recovery table (`sfnet.interpret.latent_recovery`, the top
    ``--top`` features by activation mass) on held-out mock galaxies of
    another seed that pass the metallicity cuts, and the intervention
    responses (`sfnet.interpret.intervention_response`) of its 5 most used
    features to a few latents (``--n-interventions`` galaxies per value, the
    default 5 quantile values); and the RMSE / floor / GBM ratios of the
    demo's ``metrics.json``.
``seeds``
    The seed-match score and DCI scores per k: `sfnet.sweep.run_k_sweep` with
    ``--seeds`` seeds per k on ``--n`` mock galaxies of ``--size`` px for
    ``--epochs`` epochs (``sfnet sweep --seeds`` does the same).

The smoke-sized table of docs/interpreting.rst ("Measured on the mock") came
from (a loaded 2-core machine, about 10 min)::

    OMP_NUM_THREADS=1 python docs/scripts/ground_truth_measurements.py seeds \\
        --k 2 4 8 512 --seeds 2 --n 600 --size 16 --epochs 1

and the intended sizes are::

    sfnet demo --output /tmp/gt-demo
    python docs/scripts/ground_truth_measurements.py demo /tmp/gt-demo \\
        --n-valid 4000 --n-interventions 100
    python docs/scripts/ground_truth_measurements.py seeds \\
        --k 2 4 8 512 --seeds 2 --n 2000 --size 32 --epochs 6 --output /tmp/gt-seeds

Add ``--json FILE`` before the part's name to keep the numbers.
"""

import argparse
import json
import time
from pathlib import Path

import numpy as np

from sfnet import SparseFeatureNet
from sfnet.datasets import make_mock_galaxies
from sfnet.interpret import intervention_response, latent_recovery
from sfnet.sweep import run_k_sweep, top_by_mass

LATENTS = ("colour_gradient", "inclination", "bt", "clump_fraction", "oh_visible")


def demo_part(args):
    out = {}
    metrics = json.loads((Path(args.demo) / "metrics.json").read_text())
    rmse, floor, gbm = metrics["rmse"], metrics["oracle_rmse"], metrics["photometric_gbm_rmse"]
    out["metrics"] = {"rmse": rmse, "oracle_rmse": floor, "photometric_gbm_rmse": gbm,
                      "rmse/floor": rmse / floor, "gbm/rmse": gbm / rmse,
                      "n_galaxies": metrics.get("n_galaxies"), "n_train": metrics.get("n_train"),
                      "n_valid": metrics.get("n_valid"), "seconds": metrics.get("seconds_total")}
    print("demo metrics:", json.dumps(out["metrics"], indent=1))

    model = SparseFeatureNet.load(Path(args.demo) / "model", device="cpu")
    size = int(model.input_shape_[0])
    t0 = time.process_time()
    valid = make_mock_galaxies(args.n_valid, image_size=size, seed=args.valid_seed,
                               progress=False).select("metallicity")
    acts = model.activations(valid)
    top = top_by_mass(acts, args.top)
    table = latent_recovery(None, valid, activations=acts, features=top, seed=0)
    cols = ["feature", "fraction_active", "latent", "spearman", "runner_up",
            "runner_up_spearman", "latent_mi", "latent_importance", "importance",
            "disentanglement"]
    print(f"\nlatent recovery: {len(valid)} held-out galaxies (mock seed {args.valid_seed}, "
          f"{size} px, metallicity cuts), top {len(top)} features by activation mass")
    table[cols].pprint(max_lines=-1, max_width=-1)
    summary = {k: table.meta[k] for k in ("disentanglement", "completeness", "informativeness")}
    print("DCI:", {k: round(v, 3) for k, v in summary.items()},
          f"({time.process_time() - t0:.0f} s CPU)")
    out["recovery"] = {"summary": summary, "n_galaxies": len(valid),
                       "rows": [{c: (r[c].item() if hasattr(r[c], "item") else str(r[c]))
                                 for c in cols} for r in table]}

    used = [int(f) for f in np.argsort(-(acts > 0).sum(axis=0), kind="stable")[:5]]
    print(f"\nintervention responses of the 5 most used features {used} "
          f"({args.n_interventions} galaxies per value, seed {args.valid_seed}):")
    out["interventions"] = {}
    for latent in LATENTS:
        t0 = time.process_time()
        resp = intervention_response(model, latent, n=args.n_interventions,
                                     seed=args.valid_seed)
        rows = {int(r["feature"]): r for r in resp}
        pred = resp.meta["prediction_slope"]
        name = next(iter(pred))
        line = {"values": resp.meta["values"],
                "prediction": [pred[name]["slope"], pred[name]["lo"], pred[name]["hi"]]}
        print(f"  {latent}: values {np.round(resp.meta['values'], 3).tolist()}; prediction "
              f"{pred[name]['slope']:+.4f} [{pred[name]['lo']:+.4f}, {pred[name]['hi']:+.4f}] "
              f"({time.process_time() - t0:.0f} s CPU)")
        for f in used:
            r = rows.get(f)
            if r is None:
                print(f"    feature {f}: never active")
                continue
            entry = [float(r[c]) for c in ("activation_slope", "activation_slope_lo",
                                           "activation_slope_hi", "contribution_slope",
                                           "contribution_slope_lo", "contribution_slope_hi")]
            line[f] = entry
            print(f"    feature {f}: activation {entry[0]:+.3g} [{entry[1]:+.2g}, "
                  f"{entry[2]:+.2g}], contribution {entry[3]:+.3g} [{entry[4]:+.2g}, "
                  f"{entry[5]:+.2g}] dex per unit")
        out["interventions"][latent] = line
    return out


def seeds_part(args):
    t0 = time.process_time()
    sample = make_mock_galaxies(args.n, image_size=args.size, seed=0, progress=False)
    table = run_k_sweep(sample, args.k, seeds=args.seeds, epochs=args.epochs,
                        device="cpu", progress=False, output=args.output,
                        say=lambda text: print("  " + text, flush=True))
    print(f"\nseed match and DCI per k: {args.n} galaxies at {args.size} px, "
          f"{table.meta['n_train']} training / {table.meta['n_valid']} held-out, "
          f"{args.epochs} epochs, {args.seeds} seeds; {time.process_time() - t0:.0f} s CPU")
    table["k", "rmse", "rmse_std", "n_active", "disentanglement", "completeness",
          "informativeness", "seed_match"].pprint(max_width=-1)
    return {"table": {c: np.asarray(table[c]).tolist() for c in table.colnames},
            "meta": {k: v for k, v in table.meta.items() if not isinstance(v, dict)}}


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    sub = parser.add_subparsers(dest="part", required=True)
    d = sub.add_parser("demo")
    d.add_argument("demo", help="output directory of sfnet demo")
    d.add_argument("--n-valid", type=int, default=4000, help="mock galaxies before the cuts")
    d.add_argument("--valid-seed", type=int, default=1)
    d.add_argument("--top", type=int, default=12)
    d.add_argument("--n-interventions", type=int, default=100)
    s = sub.add_parser("seeds")
    s.add_argument("--k", type=int, nargs="+", default=[2, 4, 8, 512])
    s.add_argument("--seeds", type=int, default=2)
    s.add_argument("--n", type=int, default=2000)
    s.add_argument("--size", type=int, default=32)
    s.add_argument("--epochs", type=int, default=6)
    s.add_argument("--output", default=None)
    parser.add_argument("--json", default=None, help="also write the numbers here")
    args = parser.parse_args()
    result = demo_part(args) if args.part == "demo" else seeds_part(args)
    if args.json:
        Path(args.json).write_text(json.dumps(result, indent=1, default=str))


if __name__ == "__main__":
    main()
