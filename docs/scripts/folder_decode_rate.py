"""Decode rate of a galaxy folder: JPEG next to FITS (float fluxes) of the same galaxies.

Renders ``--n`` mock galaxies at ``--image-size`` pixels twice with the same seed -- as
8-bit gri colour composites and as float32 gri fluxes (and ugriz fluxes) -- writes them
with `sfnet.datasets.write_galaxy_folder` as ``.jpg``, ``.png``, ``.fits``, ``.fits.gz``,
and times `sfnet.datasets.load_galaxy_folder` (``cache=False``: the decode itself, not
the memory-mapped cache of later loads) with one thread and with ``--workers`` threads.
Prints one line per format with images/s and the folder size; ``--json FILE`` writes
them too.

    python docs/scripts/folder_decode_rate.py --n 1000 --image-size 64 --workers 2
"""

import argparse
import json
import os
import tempfile
import time


def folder_bytes(path):
    return sum(e.stat().st_size for e in os.scandir(os.path.join(path, "images-sdss")))


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--n", type=int, default=1000)
    parser.add_argument("--image-size", type=int, default=64)
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--repeats", type=int, default=2, help="best of this many loads")
    parser.add_argument("--json", default=None)
    args = parser.parse_args(argv)

    from sfnet.datasets import load_galaxy_folder, make_mock_galaxies, write_galaxy_folder

    kw = dict(image_size=args.image_size, seed=0, progress=False)
    rgb = make_mock_galaxies(args.n, **kw)
    gri = make_mock_galaxies(args.n, image_format="flux", **kw)
    ugriz = make_mock_galaxies(args.n, bands="ugriz", image_format="flux", **kw)
    cases = [("jpg", rgb, "jpg"), ("png", rgb, "png"), ("fits gri", gri, "fits"),
             ("fits.gz gri", gri, "fits.gz"), ("fits ugriz", ugriz, "fits")]
    rows = []
    with tempfile.TemporaryDirectory(prefix="sfnet-decode-") as tmp:
        for name, sample, fmt in cases:
            folder = write_galaxy_folder(sample, os.path.join(tmp, name.replace(" ", "-")),
                                         format=fmt, n_workers=args.workers)
            row = {"format": name, "n": args.n, "image_size": args.image_size,
                   "bands": sample.n_channels, "dtype": str(sample.images.dtype),
                   "mb": round(folder_bytes(folder) / 1e6, 2)}
            for workers in (1, args.workers):
                best = float("inf")
                for _ in range(args.repeats):
                    t0 = time.perf_counter()
                    loaded = load_galaxy_folder(folder, cache=False, progress=False,
                                                n_workers=workers)
                    best = min(best, time.perf_counter() - t0)
                assert len(loaded) == args.n
                row[f"img_s_{workers}w"] = round(args.n / best, 1)
            rows.append(row)
            print(f"{name:12s} C={row['bands']} {row['dtype']:8s} {row['mb']:7.2f} MB  "
                  + "  ".join(f"{k}: {v:8.1f}" for k, v in row.items() if k.startswith("img_s")),
                  flush=True)
    if args.json:
        with open(args.json, "w") as fh:
            json.dump(rows, fh, indent=1)
    return rows


if __name__ == "__main__":
    main()
