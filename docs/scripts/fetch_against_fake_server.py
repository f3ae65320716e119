"""Run ``sfnet fetch`` against the fault-injecting fake SDSS server of the test suite.

    python docs/scripts/fetch_against_fake_server.py [--rows 300] [--fault-rate 0.2]

Starts ``tests/_fakeservers.FakeSDSS`` on 127.0.0.1 (a SkyServer that pages
``TOP n``/``specObjID >`` queries, plus the Legacy Survey viewer -- the
default cutout service -- and hips2fits), injects faults (a 503 and a
slow answer from SkyServer; 503s, truncated JPEGs, slow answers and connection
resets on the cutouts, some permanent), points ``sfnet.conf`` at it and runs
``sfnet fetch`` twice: once with faults, then again after the permanent faults
are cleared (the resume).  Prints the server's request counts and the wall
time of each run.  Nothing leaves the machine.
"""

import argparse
import os
import random
import sys
import tempfile
import time
import warnings

sys.path.insert(0, os.path.join(os.path.dirname(__file__), "..", "..", "tests"))

import sfnet  # noqa: E402
from sfnet.cli import main  # noqa: E402
from _fakeservers import FakeSDSS  # noqa: E402


def run(fake, out, label, extra=()):
    n0 = len(fake.requests())
    t0 = time.perf_counter()
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        code = main(["fetch", "--output", out, "--n-galaxies", str(len(fake.rows)),
                     "--no-progress", "--timeout", "0.5", "--max-retries", "3",
                     "--rate-limit", "1000", *extra])
    wall = time.perf_counter() - t0
    kinds = {}
    for entry in fake.requests()[n0:]:
        kinds[entry["kind"]] = kinds.get(entry["kind"], 0) + 1
    print(f"[{label}] exit {code}, {wall:.2f} s, server requests {kinds}, "
          f"max cutout requests in flight {fake.max_inflight}, "
          f"warnings: {[str(w.message)[:120] for w in caught]}\n")


def main_():
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--rows", type=int, default=300)
    p.add_argument("--fault-rate", type=float, default=0.2)
    p.add_argument("--seed", type=int, default=0)
    args = p.parse_args()
    fake = FakeSDSS(n_rows=args.rows)
    rng = random.Random(args.seed)
    permanent = []
    for row in fake.rows:
        x = rng.random()
        if x < args.fault_rate:
            fake.cutout_faults[row["objID"]] = [rng.choice(["503", "truncated", "slow", "reset"])]
        elif x < 1.25 * args.fault_rate:
            fake.always_faults[row["objID"]] = rng.choice(["503", "truncated"])
            permanent.append(row["objID"])
    fake.skyserver_faults = ["503", "slow"]
    fake.slow_seconds = 1.0
    fake.start()
    try:
        with tempfile.TemporaryDirectory() as tmp, \
                sfnet.conf.set_temp("skyserver_url", fake.skyserver_url), \
                sfnet.conf.set_temp("legacysurvey_url", fake.legacysurvey_url), \
                sfnet.conf.set_temp("hips2fits_url", fake.hips2fits_url):
            out = os.path.join(tmp, "sdss")
            print(f"{args.rows} galaxies; {sum(1 for v in fake.cutout_faults.values() if v)} "
                  f"cutouts fail once, {len(permanent)} always; SkyServer: 503 then slow\n")
            run(fake, out, "run 1, faults")
            fake.always_faults.clear()
            run(fake, out, "run 2, resume")
            os.remove(os.path.join(out, "images-sdss", f"{fake.rows[0]['objID']}.jpg"))
            corrupt = os.path.join(out, "images-sdss", f"{fake.rows[1]['objID']}.jpg")
            with open(corrupt, "r+b") as fh:
                fh.truncate(200)
            run(fake, out, "run 3, one deleted + one corrupted file")
            run(fake, os.path.join(tmp, "paper"), "run 4, selection=paper",
                ["--selection", "paper"])
    finally:
        fake.stop()


if __name__ == "__main__":
    main_()
