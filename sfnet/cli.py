"""The ``sfnet`` command: demo, fetch, train, predict, interpret, sweep and benchmark.

Run ``sfnet --help`` (or ``python -m sfnet --help``) for the list of
subcommands and ``sfnet <command> --help`` for the options and examples of
each.  `main` is the entry point; it returns the exit status instead of
exiting, so it can be called from Python::

    from sfnet.cli import main
    status = main(["demo", "--n-galaxies", "400", "--epochs", "2"])

Exit status: 0 on success, 1 on an error (one ``sfnet: error: ...`` line on
stderr; ``--debug`` shows the traceback), 2 on a usage error, 130 when
interrupted.
"""

import argparse
import logging
import sys
import warnings
from pathlib import Path

from ._demo import DEMO_DEFAULTS
from .datasets.cutouts import cutout_services

__all__ = ["main", "build_parser", "DEMO_DEFAULTS"]

log = logging.getLogger("sfnet.cli")

#: Backbones offered by ``--backbone`` (sfnet.nn.BACKBONES, whose import needs torch).
_BACKBONES = ("resnet18", "resnet34", "resnet50")
#: Values of ``--precision``.
_PRECISIONS = ("auto", "fp32", "bf16")

#: Exceptions reported as one line (no traceback unless --debug).
_USER_ERRORS = (ValueError, TypeError, OSError)


class _UsageError(Exception):
    """A usage error found after parsing (exit status 2)."""


class _Parser(argparse.ArgumentParser):
    """ArgumentParser whose errors are one line: ``sfnet: error: ... (see --help)``."""

    def error(self, message):
        self.exit(2, f"sfnet: error: {message} (see '{self.prog} --help')\n")


class _Formatter(argparse.RawDescriptionHelpFormatter):
    """Keep the examples' line breaks; show meaningful defaults."""

    def _get_help_string(self, action):
        help = action.help or ""
        default = action.default
        if ("default" in help or any(default is x for x in (None, False, argparse.SUPPRESS))
                or action.option_strings == [] or isinstance(action, argparse._VersionAction)):
            return help
        return f"{help} (default: {default})" if help else f"default: {default}"


# --------------------------------------------------------------------------- types
def _int_at_least(minimum):
    def convert(text):
        try:
            value = int(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"must be an integer, got {text!r}") from None
        if value < minimum:
            raise argparse.ArgumentTypeError(f"must be an integer >= {minimum}, got {text!r}")
        return value
    convert.__name__ = f"integer >= {minimum}"
    return convert


def _number(text):
    try:
        return float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"must be a number, got {text!r}") from None


def _positive_float(text):
    value = _number(text)
    if not value > 0 or value == float("inf"):
        raise argparse.ArgumentTypeError(f"must be a positive number, got {text!r}")
    return value


def _fraction(text):
    value = _number(text)
    if not 0 <= value < 1:
        raise argparse.ArgumentTypeError(f"must be in [0, 1), got {text!r}")
    return value


def _target(text):
    """``metallicity``, ``bpt_lines``, or comma-separated catalog column names."""
    text = text.strip()
    if text in ("metallicity", "bpt_lines"):
        return text
    cols = [c.strip() for c in text.split(",")]
    if not text or not all(cols):
        raise argparse.ArgumentTypeError(
            f"must be 'metallicity', 'bpt_lines' or comma-separated column names, got {text!r}")
    return cols


# --------------------------------------------------------------------------- parser
_MAIN_EPILOG = """\
quick start:
  sfnet demo                                  # mock data -> train -> evaluate -> report
  sfnet fetch --output sdss --n-galaxies 5000 # real SDSS/MPA-JHU galaxies (network)
  sfnet train sdss --output model --k 4       # train on a data folder
  sfnet predict model sdss --output predictions.ecsv
  sfnet predict model sdss --output predictions.ecsv --std
  sfnet interpret model sdss --output report  # figures + report.html
  sfnet sweep --k 1 2 4 8 512                 # accuracy against sparsity (mock data)

Run 'sfnet <command> --help' for the options and examples of each command.
"""

_DEMO_EPILOG = """\
The demo generates SDSS-like mock galaxies (about a third are star-forming with a
metallicity), holds out 20% of those, trains an SFNet on the rest, compares its RMSE
with a mean predictor, gradient-boosted trees on the catalog photometry (tuned on the
training galaxies only), a linear fit on photometry and the oracle (the hidden scatter
that no image encodes), and writes into --output:
  metrics.json   RMSE, NMAD, bias, baselines, oracle, sizes, timings, versions
  model/         the trained model (SparseFeatureNet.load)
  report.html    the interpretation report, with figures/*.png

The defaults finish in a few minutes on a 2-core laptop CPU.  To scale up, generate more
galaxies, train longer and use larger images, ideally on a GPU; the paper used ~117k
galaxies at 160 px (centre crop 144) and k=4.

examples:
  sfnet demo
  sfnet demo --output demo-small --n-galaxies 1000 --epochs 3
  sfnet demo --n-galaxies 20000 --epochs 20 --image-size 96 --device cuda
"""

_TRAIN_EPILOG = """\
DATA is either a folder in the layout of the paper's Zenodo record (galaxies.csv plus
images-sdss/{objID}.jpg, as written by 'sfnet fetch') or a directory written by
GalaxySample.save.  Galaxies failing the target's quality cuts are dropped, a random
--validation-fraction is held out (seeded by --seed) and the metrics on it are printed.

examples:
  sfnet train sdss --output model
  sfnet train sdss --output model-bpt --target bpt_lines --k 4 --epochs 30 --device cuda
  sfnet train sdss --output model --image-size 160 --crop-size 144 --checkpoint-dir ckpt
  sfnet train sdss --output model --checkpoint-dir ckpt --resume   # after an interruption
  sfnet train sample-dir --output model-z --target z,petroMag_r
  sfnet train sdss --output model-paper --recipe paper   # the paper's training (sfnet.PAPER_RECIPE)
  sfnet train sdss --output model-paper --recipe paper --weights none   # offline

--recipe paper trains as the paper did: Ranger under fastai's one-cycle schedule (peak
0.1), 20 epochs of 64, centre crop 144 then resize to 160, dihedral flips with p=0.5,
RMSE on the raw target, last epoch kept, ImageNet weights (from the torch hub cache).
Options given explicitly override the recipe's values.
"""

_PREDICT_EPILOG = """\
Writes SparseFeatureNet.predict_table: objID, the position (a SkyCoord "coord" in
ECSV; ra and dec columns in FITS and CSV), one <target>_pred column per predicted
quantity (with units) and each galaxy's active features with their activations and
contributions (feature_i, activation_i, <target>_contribution_i); with --std also
<target>_std, the calibrated 1-sigma error bar of each prediction.  The format follows
the extension of --output: .ecsv (keeps units, 64-bit objIDs and metadata), .fits or
.csv.  The file is written atomically.

examples:
  sfnet predict model sdss --output predictions.ecsv
  sfnet predict model sdss --output predictions.ecsv --std
  sfnet predict model sample-dir --output predictions.fits --batch-size 256 --device cuda
"""

_INTERPRET_EPILOG = """\
Computes the active features of MODEL on DATA (galaxies passing the model's target cuts,
unless --all-galaxies) and writes report.html, figures/*.png and features.csv into --output.

examples:
  sfnet interpret model sdss --output report
  sfnet interpret model sdss --output report --max-features 6 --max-galaxies 5000
"""

_FETCH_EPILOG = """\
Queries SkyServer (SDSS spectra joined with the MPA-JHU catalogs) and downloads one colour
cutout per galaxy into the layout 'sfnet train' reads.  Running it again resumes: only
missing or damaged files are fetched.  Needs network access.

Cutouts come from the Legacy Survey viewer (layer=sdss, 0.262"/px), as in the paper.
'--selection paper' runs the paper's own CasJobs query (Galaxy view, PhotoObjDR7; its
'G.z > 0.02' is a z-band magnitude cut, i.e. none, kept verbatim).

examples:
  sfnet fetch --output sdss --n-galaxies 1000
  sfnet fetch --output sdss-paper --n-galaxies 1000 --selection paper
  sfnet fetch --output sdss-bpt --n-galaxies 50000 --target bpt_lines --max-workers 16
  sfnet fetch --output field --n-galaxies 500 --region 185.0 0.5 30
  sfnet fetch --output sdss --n-galaxies 1000 --cutout-service hips2fits
"""

_SWEEP_EPILOG = """\
Trains one SFNet per k on the same galaxies (those passing the target's cuts, 20% held
out) and writes into --output:
  sweep.ecsv    k, rmse, nmad, bias, r2, n_active (features active in any held-out
                galaxy), n_frequent (in more than 1% of them), max_active_per_galaxy,
                seconds, rmse_std (over seeds); interpretability on the held-out mock
                galaxies: disentanglement, completeness, informativeness (DCI-style
                scores of the 12 features with the most activation mass against the
                mock_* latents, NaN without them) and seed_match (mean matched
                fraction of the features over seed pairs, NaN with --seeds 1);
                the baselines and the floor in its metadata
  k_sweep.png   RMSE and active features against k, baselines and floor as lines,
                and the interpretability scores against k when measured
k = 512 is the dense network (all ResNet-18 features): the accuracy cost of sparsity.
With --seeds N each k is trained N times (seeds S, S+1, ...; the same split).
Without DATA the galaxies are mock galaxies, as in 'sfnet demo'.

examples:
  sfnet sweep --k 1 2 4 8 512
  sfnet sweep --k 1 4 512 --n-galaxies 2000 --epochs 4 --image-size 32 --output sweep-small
  sfnet sweep --k 2 4 8 512 --seeds 2 --n-galaxies 2000 --epochs 6 --image-size 32
  sfnet sweep sdss --k 2 4 8 --epochs 20 --device cuda
"""

_BENCHMARK_EPILOG = """\
Measures, on the same synthetic data in one run: a bare PyTorch training step against
SparseFeatureNet.fit and a bare forward against activations (images/s and ratios),
decode/load throughput, streamed training and peak memory.  Ratios taken in one run
are the figures to quote; absolute images/s drift on shared machines.

examples:
  sfnet benchmark
  sfnet benchmark --device cuda --image-size 144 --batch-size 256 --json bench.json
"""


def _common():
    """Options every subcommand accepts after its name too (``sfnet demo --debug``)."""
    parent = argparse.ArgumentParser(add_help=False)
    g = parent.add_argument_group("general options")
    g.add_argument("--debug", action="store_true", default=argparse.SUPPRESS,
                   help="show the full traceback on errors")
    g.add_argument("-v", "--verbose", action="store_true", default=argparse.SUPPRESS,
                   help="log progress messages (logging level INFO)")
    return parent


def _add_model_and_data(p):
    p.add_argument("model", metavar="MODEL", help="model directory (sfnet train --output)")
    p.add_argument("data", metavar="DATA", help="Zenodo-layout folder or saved GalaxySample")


def _add_device(p, precision=True):
    p.add_argument("--device", default="auto",
                   help="torch device: auto (cuda, then mps, then cpu), cpu, cuda, cuda:1, mps")
    if precision:
        p.add_argument("--precision", choices=_PRECISIONS, default="auto",
                       help="auto: bfloat16 autocast on CUDA and bf16-capable CPUs, else fp32")


def _add_no_progress(p, stage_lines=False):
    help = "no progress bars or stage lines" if stage_lines else "no progress bars"
    p.add_argument("--no-progress", action="store_true", help=help)


def _add_target(p):
    p.add_argument("--target", type=_target, default="metallicity",
                   help="metallicity, bpt_lines or comma-separated catalog column names")


def _add_mock_options(p, n_help, size_help):
    """``--n-galaxies`` and ``--image-size`` of the mock galaxies (demo, sweep)."""
    d = DEMO_DEFAULTS
    p.add_argument("--n-galaxies", type=_int_at_least(10), default=d["n_galaxies"],
                   metavar="N", help=n_help)
    p.add_argument("--image-size", type=_int_at_least(16), default=d["image_size"],
                   metavar="S", help=size_help)


def _add_subcommand(sub, common, name, help, epilog):
    """One subparser whose description is its help, capitalised, with a full stop."""
    return sub.add_parser(name, help=help, description=help[:1].upper() + help[1:] + ".",
                          epilog=epilog, formatter_class=_Formatter, parents=[common])


def _add_batch_and_seed(p, seed_help):
    """``--batch-size`` and ``--seed`` of the commands that train on the mock."""
    p.add_argument("--batch-size", type=_int_at_least(1), default=DEMO_DEFAULTS["batch_size"],
                   metavar="B", help="batch size")
    p.add_argument("--seed", type=_int_at_least(0), default=DEMO_DEFAULTS["seed"], metavar="S",
                   help=seed_help)


def _add_demo_parser(sub, common):
    d = DEMO_DEFAULTS
    p = _add_subcommand(sub, common, "demo",
                        "train and interpret an SFNet on embedded mock galaxies", _DEMO_EPILOG)
    p.add_argument("--output", "-o", default=d["output"], metavar="DIR",
                   help="output directory")
    _add_mock_options(p, "mock galaxies to generate (more: better RMSE, slower)",
                      "cutout size in pixels (the paper: 160)")
    p.add_argument("--epochs", type=_int_at_least(1), default=d["epochs"], metavar="E",
                   help="training epochs")
    p.add_argument("--k", type=_int_at_least(1), default=d["k"],
                   help="active features per galaxy (top-k)")
    _add_batch_and_seed(p, "seed of the mock, the split and the network")
    _add_device(p)
    p.add_argument("--max-features", type=_int_at_least(1), default=12, metavar="N",
                   help="features with their own section in the report")
    _add_no_progress(p, stage_lines=True)
    p.set_defaults(handler=_cmd_demo)


def _add_fetch_query_options(p):
    """The catalog query of ``sfnet fetch``: target cuts, data release, selection, region."""
    p.add_argument("--target", type=_target, default="metallicity",
                   help="whose quality cuts go into the query: metallicity, bpt_lines or "
                        "comma-separated column names")
    p.add_argument("--data-release", type=_int_at_least(1), default=None, metavar="DR",
                   help="SDSS data release (default: sfnet.conf.data_release, else "
                        "astroquery's)")
    p.add_argument("--selection", choices=("default", "paper"), default="default",
                   help="catalog query: sfnet's (default) or the paper's CasJobs query")
    p.add_argument("--region", nargs=3, type=_number, default=None,
                   metavar=("RA", "DEC", "RADIUS_ARCMIN"),
                   help="only galaxies within RADIUS_ARCMIN of (RA, DEC) in ICRS degrees")


def _add_fetch_transfer_options(p):
    """The downloads of ``sfnet fetch``: cutout service and size, workers, retries."""
    p.add_argument("--cutout-service", choices=cutout_services(), default=None,
                   help="where cutouts come from (default: sfnet.conf.cutout_service, "
                        "legacysurvey)")
    p.add_argument("--cutout-size", type=_int_at_least(16), default=160, metavar="PX",
                   help="cutout size in pixels (0.262 arcsec/px)")
    p.add_argument("--max-workers", type=_int_at_least(1), default=None, metavar="N",
                   help="concurrent downloads (default: sfnet.conf.max_workers)")
    p.add_argument("--timeout", type=float, default=None, metavar="S",
                   help="seconds per request (default: sfnet.conf.timeout)")
    p.add_argument("--max-retries", type=_int_at_least(0), default=None, metavar="N",
                   help="retries on timeouts and 5xx (default: sfnet.conf.max_retries)")
    p.add_argument("--rate-limit", type=float, default=10.0, metavar="R",
                   help="at most R cutout requests started per second (default: 10)")


def _add_fetch_parser(sub, common):
    p = _add_subcommand(sub, common, "fetch",
                        "download SDSS galaxies with MPA-JHU properties and colour cutouts",
                        _FETCH_EPILOG)
    p.add_argument("--output", "-o", required=True, metavar="DIR", help="folder to write")
    p.add_argument("--n-galaxies", type=_int_at_least(1), required=True, metavar="N",
                   help="number of galaxies")
    _add_fetch_query_options(p)
    _add_fetch_transfer_options(p)
    p.add_argument("--print-sql", action="store_true",
                   help="print the SkyServer SQL and exit without any request")
    p.add_argument("--overwrite", action="store_true",
                   help="replace a catalog in DIR that comes from a different query")
    _add_no_progress(p)
    p.set_defaults(handler=_cmd_fetch)


def _add_train_recipe_options(p):
    """The training recipe of ``sfnet train``: recipe, epochs, batch size, learning rate."""
    p.add_argument("--recipe", choices=("default", "paper"), default="default",
                   help="default: sfnet's AdamW recipe; paper: sfnet.PAPER_RECIPE")
    p.add_argument("--epochs", type=_int_at_least(1), default=None, metavar="E",
                   help="training epochs (default 20)")
    p.add_argument("--batch-size", type=_int_at_least(1), default=None, metavar="B",
                   help="batch size (default 64)")
    p.add_argument("--learning-rate", type=_positive_float, default=None, metavar="LR",
                   help="peak learning rate of the one-cycle schedule (default 3e-3 with "
                        "AdamW; the paper recipe: 0.1 with Ranger)")


def _add_train_network_options(p):
    """What the network sees and is built from: image and crop size, backbone, weights."""
    p.add_argument("--image-size", type=_int_at_least(8), default=None, metavar="S",
                   help="size of the images the network sees (the paper: 160)")
    p.add_argument("--crop-size", type=_int_at_least(8), default=None, metavar="C",
                   help="side of the central crop (the paper: 144)")
    p.add_argument("--preprocessing", choices=("resize-crop", "crop-resize"), default=None,
                   help="order of resize and crop (default resize-crop; the paper: "
                        "crop-resize)")
    p.add_argument("--backbone", choices=_BACKBONES, default="resnet18")
    p.add_argument("--weights", choices=("none", "imagenet"), default=None,
                   help="backbone initialisation (default none; the paper recipe: imagenet, "
                        "read from the torch hub cache or downloaded)")


def _add_train_parser(sub, common):
    p = _add_subcommand(sub, common, "train",
                        "train an SFNet on a data folder or a saved sample", _TRAIN_EPILOG)
    p.add_argument("data", metavar="DATA", help="Zenodo-layout folder or saved GalaxySample")
    p.add_argument("--output", "-o", required=True, metavar="MODEL",
                   help="directory to save the model in")
    _add_target(p)
    p.add_argument("--k", type=_int_at_least(1), default=4,
                   help="active features per galaxy (top-k)")
    _add_train_recipe_options(p)
    _add_train_network_options(p)
    p.add_argument("--validation-fraction", type=_fraction, default=0.2, metavar="F",
                   help="fraction of the galaxies held out for the printed metrics "
                        "(0: none)")
    p.add_argument("--seed", type=_int_at_least(0), default=0, metavar="S",
                   help="seed of the split, the initialisation and the shuffling")
    _add_device(p)
    p.add_argument("--checkpoint-dir", metavar="DIR", default=None,
                   help="write a checkpoint after every epoch")
    p.add_argument("--resume", action="store_true",
                   help="continue from the checkpoint in --checkpoint-dir")
    _add_no_progress(p)
    p.set_defaults(handler=_cmd_train)


def _add_predict_parser(sub, common):
    p = _add_subcommand(sub, common, "predict", "predict with a trained model",
                        _PREDICT_EPILOG)
    _add_model_and_data(p)
    p.add_argument("--output", "-o", required=True, metavar="FILE",
                   help="predictions table (.ecsv, .csv or .fits)")
    p.add_argument("--batch-size", type=_int_at_least(1), default=None, metavar="B",
                   help="inference batch size (default: the model's)")
    p.add_argument("--std", action="store_true",
                   help="also write {target}_std, the model's calibrated 1-sigma error bars")
    _add_device(p)
    _add_no_progress(p)
    p.set_defaults(handler=_cmd_predict)


def _add_interpret_parser(sub, common):
    p = _add_subcommand(sub, common, "interpret",
                        "write the interpretation report of a trained model",
                        _INTERPRET_EPILOG)
    _add_model_and_data(p)
    p.add_argument("--output", "-o", required=True, metavar="DIR", help="report directory")
    p.add_argument("--max-features", type=_int_at_least(1), default=12, metavar="N",
                   help="features with their own section, most frequent first")
    p.add_argument("--max-galaxies", type=_int_at_least(1), default=None, metavar="N",
                   help="interpret a random subset of N galaxies (seeded by --seed)")
    p.add_argument("--seed", type=_int_at_least(0), default=0, metavar="S")
    p.add_argument("--all-galaxies", action="store_true",
                   help="keep galaxies failing the model's target cuts")
    _add_device(p)
    _add_no_progress(p)
    p.set_defaults(handler=_cmd_interpret)


def _add_sweep_parser(sub, common):
    d = DEMO_DEFAULTS
    p = _add_subcommand(sub, common, "sweep",
                        "train one SFNet per k: accuracy against sparsity", _SWEEP_EPILOG)
    p.add_argument("data", metavar="DATA", nargs="?", default=None,
                   help="Zenodo-layout folder or saved GalaxySample (default: mock galaxies)")
    p.add_argument("--k", type=_int_at_least(1), nargs="+", default=[1, 2, 4, 8, 512],
                   metavar="K", help="the k values (512: dense)")
    p.add_argument("--output", "-o", default="sfnet-sweep", metavar="DIR",
                   help="output directory")
    _add_target(p)
    _add_mock_options(p, "mock galaxies to generate (without DATA)",
                      "mock cutout size in pixels (without DATA)")
    p.add_argument("--epochs", type=_int_at_least(1), default=d["epochs"], metavar="E",
                   help="training epochs for each k")
    p.add_argument("--seeds", type=_int_at_least(1), default=1, metavar="N",
                   help="networks trained per k (seeds S, S+1, ...): N >= 2 measures the "
                        "seed-reproducibility of the features")
    _add_batch_and_seed(p, "seed of the mock, the split and the networks")
    _add_device(p)
    _add_no_progress(p, stage_lines=True)
    p.set_defaults(handler=_cmd_sweep)


def _precision_list(text):
    """``--precision`` of ``sfnet benchmark``: comma-separated fp32, bf16, auto."""
    values = [v.strip() for v in text.split(",") if v.strip()]
    bad = [v for v in values if v not in _PRECISIONS]
    if not values or bad:
        raise argparse.ArgumentTypeError(
            f"must be comma-separated values from {', '.join(_PRECISIONS)}, got {text!r}")
    return values


def _count_list(text):
    """``--rss-images`` of ``sfnet benchmark``: comma-separated integers >= 0."""
    try:
        values = [int(v) for v in text.split(",") if v.strip()]
    except ValueError:
        values = None
    if values is None or any(v < 0 for v in values):
        raise argparse.ArgumentTypeError(
            f"must be comma-separated integers >= 0, got {text!r}")
    return values


def _add_benchmark_parser(sub, common):
    p = _add_subcommand(sub, common, "benchmark",
                        "measure training/inference throughput against bare PyTorch",
                        _BENCHMARK_EPILOG)
    _add_device(p, precision=False)
    p.add_argument("--precision", type=_precision_list, default=["fp32", "auto"],
                   metavar="P[,P...]",
                   help="precisions to measure, comma-separated from fp32, bf16, auto "
                        "(default: fp32,auto)")
    p.add_argument("--image-size", type=_int_at_least(8), default=144, metavar="S",
                   help="image side in pixels (the paper's crop: 144)")
    p.add_argument("--batch-size", type=_int_at_least(1), default=64, metavar="B",
                   help="batch size")
    p.add_argument("--steps", type=_int_at_least(1), default=6, metavar="N",
                   help="timed steps per measurement")
    p.add_argument("--k", type=_int_at_least(1), default=4, help="active features (top-k)")
    p.add_argument("--backbone", choices=_BACKBONES, default="resnet18", help="backbone")
    p.add_argument("--io-images", type=_int_at_least(1), default=256, metavar="N",
                   help="images for the I/O measurements")
    p.add_argument("--no-paper-baseline", action="store_true",
                   help="skip the paper-style PIL-decode-every-batch loop")
    p.add_argument("--no-streaming", action="store_true",
                   help="skip the in-memory vs streamed training comparison")
    p.add_argument("--rss-images", type=_count_list, default=[2000, 8000],
                   metavar="N[,N...]",
                   help="sample sizes for the peak memory of streamed training (64 px, "
                        "fresh processes); 0 to skip (default: 2000,8000)")
    p.add_argument("--compile", action="store_true",
                   help="also measure compile=True (torch.compile): compile time and "
                        "speed-up")
    p.add_argument("--json", metavar="FILE", help="also write the results as JSON")
    p.set_defaults(handler=_cmd_benchmark)


def build_parser():
    """The `argparse.ArgumentParser` of the ``sfnet`` command."""
    from . import __version__

    parser = _Parser(
        prog="sfnet", formatter_class=_Formatter, epilog=_MAIN_EPILOG,
        description="Interpretable Sparse Feature Networks (top-k ResNets) for galaxy "
                    "images (Wu 2025, ApJ 980, 183).")
    parser.add_argument("--version", action="version", version=f"sfnet {__version__}")
    parser.add_argument("--debug", action="store_true", help="show the full traceback on errors")
    parser.add_argument("-v", "--verbose", action="store_true",
                        help="log progress messages (logging level INFO)")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", parser_class=_Parser)
    sub.required = True
    common = _common()
    for add in (_add_demo_parser, _add_fetch_parser, _add_train_parser, _add_predict_parser,
                _add_interpret_parser, _add_sweep_parser, _add_benchmark_parser):
        add(sub, common)
    return parser


# --------------------------------------------------------------------------- helpers
def _progress(args):
    return not getattr(args, "no_progress", False)


def _say(args):
    def say(text):
        if _progress(args):
            print(f"sfnet: {text}", file=sys.stderr, flush=True)
    return say


def _check_device(device):
    """Fail early and clearly when an unavailable accelerator is requested."""
    if device in (None, "auto"):
        return
    import torch

    try:
        dev = torch.device(device)
    except (RuntimeError, TypeError):
        raise ValueError(f"--device {device!r} is not a valid torch device "
                         "(try auto, cpu, cuda, cuda:0 or mps)") from None
    if dev.type == "cuda":
        if not torch.cuda.is_available():
            raise ValueError(f"--device {device}: CUDA is not available here "
                             f"(torch {torch.__version__}); use --device cpu or auto")
        if dev.index is not None and dev.index >= torch.cuda.device_count():
            raise ValueError(f"--device {device}: only {torch.cuda.device_count()} CUDA "
                             "device(s) are visible")
    if dev.type == "mps" and not (getattr(torch.backends, "mps", None)
                                  and torch.backends.mps.is_available()):
        raise ValueError(f"--device {device}: MPS is not available here")


def _format_metrics(metrics, units=None):
    units = units or {}
    names = list(metrics)
    width = max(10, *(len(n) for n in names))
    lines = [f"  {'target':<{width}}  {'RMSE':>9}  {'NMAD':>9}  {'bias':>9}  {'R^2':>7}  {'n':>7}"]
    for name in names:
        m = metrics[name]
        unit = f" [{units[name]}]" if units.get(name) else ""
        lines.append(f"  {name:<{width}}  {m['rmse']:9.4f}  {m['nmad']:9.4f}  "
                     f"{m['bias']:+9.4f}  {m['r2']:7.3f}  {m['n']:7d}{unit}")
    return "\n".join(lines)


# --------------------------------------------------------------------------- commands
def _cmd_demo(args):
    from ._demo import format_summary, run_demo

    _check_device(args.device)
    metrics = run_demo(args.output, n_galaxies=args.n_galaxies, image_size=args.image_size,
                       epochs=args.epochs, k=args.k, batch_size=args.batch_size,
                       seed=args.seed, device=args.device, precision=args.precision,
                       max_features=args.max_features, progress=_progress(args),
                       say=_say(args))
    print(format_summary(metrics, args.output))
    return 0


def _fetch_region(values):
    """``--region RA DEC RADIUS_ARCMIN`` -> ``(SkyCoord, radius)`` or None."""
    if values is None:
        return None
    from astropy import units as u
    from astropy.coordinates import SkyCoord

    ra, dec, radius = values
    try:
        center = SkyCoord(ra * u.deg, dec * u.deg, frame="icrs")
    except ValueError as exc:
        raise _UsageError(f"--region: {exc}") from None
    return (center, radius * u.arcmin)


def _cmd_sweep(args):
    from .sweep import run_sweep

    _check_device(args.device)
    table = run_sweep(args.data, args.k, output=args.output, n_galaxies=args.n_galaxies,
                      image_size=args.image_size, seed=args.seed, target=args.target,
                      epochs=args.epochs, seeds=args.seeds, batch_size=args.batch_size,
                      device=args.device,
                      precision=args.precision, progress=_progress(args), say=_say(args))
    print(_format_sweep(table, args.output))
    return 0


def _format_sweep(table, output):
    """What ``sfnet sweep`` prints: one line per k, then the baselines and the floor."""
    import math

    meta = table.meta
    seeds = meta.get("seeds", 1)
    lines = [f"sfnet sweep: {meta['n_train']} training / {meta['n_valid']} held-out galaxies, "
             f"{meta['epochs']} epoch(s) per k, {seeds} seed(s), {meta['seconds']:.0f} s in all",
             f"  {'k':>4}  {'RMSE':>8}  {'NMAD':>8}  {'active':>6}  {'>1%':>5}  {'seconds':>8}"
             f"  {'D':>5}  {'C':>5}  {'I':>5}  {'match':>5}"]

    def score(row, name):
        value = float(row[name]) if name in row.colnames else math.nan
        return f"{value:5.2f}" if math.isfinite(value) else f"{'-':>5}"

    for row in table:
        lines.append(f"  {row['k']:>4}  {row['rmse']:8.4f}  {row['nmad']:8.4f}  "
                     f"{row['n_active']:>6}  {row['n_frequent']:>5}  {row['seconds']:8.1f}  "
                     + "  ".join(score(row, c) for c in ("disentanglement", "completeness",
                                                          "informativeness", "seed_match")))
    lines.append(f"  D/C/I: DCI scores of the top {meta.get('top_features', 12)} features "
                 "against the mock's latents; match: seed-reproducibility (needs --seeds >= 2)")
    for key, label in (("photometric_gbm_rmse", "photometric GBM"),
                       ("photometric_linear_rmse", "photometric linear"),
                       ("mean_rmse", "mean predictor"), ("oracle_rmse", "floor (oracle)")):
        value = meta.get(key)
        if value is not None and math.isfinite(value):
            lines.append(f"  {label:<20} RMSE {value:.4f}")
    lines.append(f"  wrote {Path(output) / 'sweep.ecsv'} and {Path(output) / 'k_sweep.png'}")
    return "\n".join(lines)


def _cmd_fetch(args):
    from .datasets._options import FetchOptions
    from .datasets.sdss import fetch_to_folder, load_fetched
    from .datasets.skyserver import QuerySpec

    # the options named like FetchOptions' fields, checked once
    options = FetchOptions.from_namespace(args, region=_fetch_region(args.region),
                                          progress=_progress(args))
    if args.print_sql:
        print(QuerySpec(args.n_galaxies, options).sql())
        return 0
    report = fetch_to_folder(args.output, args.n_galaxies, options)
    sample = load_fetched(args.output, report, options.progress)
    print("sfnet fetch: " + ", ".join(f"{k} {v}" for k, v in report.items()
                                      if isinstance(v, (int, float, str))))
    print(f"sfnet fetch: {len(sample)} galaxies with images in {args.output} "
          f"(train with: sfnet train {args.output} --output MODEL)")
    return 0


def _train_params(args):
    """SparseFeatureNet parameters of ``sfnet train``: the recipe, then the options given."""
    from . import PAPER_RECIPE

    params = {"epochs": 20, "batch_size": 64, "learning_rate": 3e-3, "weights": None}
    if args.recipe == "paper":
        params.update(PAPER_RECIPE)
    given = {"epochs": args.epochs, "batch_size": args.batch_size,
             "learning_rate": args.learning_rate, "image_size": args.image_size,
             "crop_size": args.crop_size, "preprocessing": args.preprocessing,
             "weights": args.weights}
    params.update({k: v for k, v in given.items() if v is not None})
    if params["weights"] == "none":
        params["weights"] = None
    # the held-out galaxies are split off here (for the printed metrics); the model
    # trains on all the others and keeps its last epoch
    params.update(target=args.target, backbone=args.backbone, validation_fraction=0.0,
                  device=args.device, precision=args.precision, random_state=args.seed,
                  progress=_progress(args))
    return params


def _cmd_train(args):
    from . import SparseFeatureNet
    from .workflow import train_model

    _check_device(args.device)
    if args.resume and args.checkpoint_dir is None:
        raise _UsageError("--resume needs --checkpoint-dir")
    result = train_model(SparseFeatureNet(k=args.k, **_train_params(args)), args.data,
                         args.output, validation_fraction=args.validation_fraction,
                         seed=args.seed, checkpoint_dir=args.checkpoint_dir,
                         resume=args.resume, progress=_progress(args), say=_say(args))
    model, split = result.model, result.split
    print(f"sfnet train: model saved to {result.output} (k={args.k}, {model.epochs} "
          f"epoch(s), {len(split.train)} training galaxies)")
    if result.scores is not None:
        units = dict(zip(model.target_names, model.target_units_))
        print(f"validation metrics ({len(split.valid)} held-out galaxies):")
        print(_format_metrics(result.scores.metrics, units))
    return 0


def _cmd_predict(args):
    from .workflow import write_predictions

    _check_device(args.device)
    table = write_predictions(args.model, args.data, args.output, return_std=args.std,
                              batch_size=args.batch_size, device=args.device,
                              precision=args.precision, progress=_progress(args))
    print(f"sfnet predict: {len(table)} predictions of {', '.join(table.meta['targets'])} "
          f"written to {args.output}")
    return 0


def _cmd_interpret(args):
    from .workflow import write_interpretation

    _check_device(args.device)
    report = write_interpretation(args.model, args.data, args.output,
                                  all_galaxies=args.all_galaxies,
                                  max_galaxies=args.max_galaxies, seed=args.seed,
                                  max_features=args.max_features, device=args.device,
                                  precision=args.precision, progress=_progress(args),
                                  say=_say(args))
    print(f"sfnet interpret: report written to {report}")
    return 0


def _cmd_benchmark(args):
    from ._io import atomic_write_json
    from .benchmark import format_table, run_benchmark

    _check_device(args.device)
    result = run_benchmark(device=args.device, image_size=args.image_size,
                           batch_size=args.batch_size, precisions=args.precision,
                           steps=args.steps, k=args.k, backbone=args.backbone,
                           io_images=args.io_images,
                           paper_baseline=not args.no_paper_baseline,
                           streaming=not args.no_streaming,
                           rss_images=[v for v in args.rss_images if v > 0],
                           compile=args.compile)
    print(format_table(result))
    if args.json:
        atomic_write_json(args.json, result)
    return 0


# --------------------------------------------------------------------------- main
def _setup_logging(verbose):
    logger = logging.getLogger("sfnet")
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(logging.Formatter("%(name)s: %(message)s"))
    logger.addHandler(handler)
    previous = logger.level
    logger.setLevel(logging.INFO if verbose else logging.WARNING)
    return logger, handler, previous


def _show_warning(message, category, filename, lineno, file=None, line=None):
    print(f"sfnet: warning: {message}", file=sys.stderr if file is None else file)


def main(argv=None):
    """Run the ``sfnet`` command line; return the exit status.

    Parameters
    ----------
    argv : list of str, optional
        Arguments without the program name (default ``sys.argv[1:]``).

    Returns
    -------
    int
        0 on success, 1 on an error, 2 on a usage error, 130 when interrupted.
    """
    argv = sys.argv[1:] if argv is None else [str(a) for a in argv]
    parser = build_parser()
    try:
        args = parser.parse_args(argv)
    except SystemExit as exc:  # --help, --version, usage errors
        return exc.code if isinstance(exc.code, int) else (0 if exc.code is None else 2)
    logger, handler, previous = _setup_logging(getattr(args, "verbose", False))
    try:
        with warnings.catch_warnings():
            warnings.showwarning = _show_warning
            return int(args.handler(args) or 0)
    except KeyboardInterrupt:
        if getattr(args, "debug", False):
            raise
        print("sfnet: interrupted", file=sys.stderr)
        return 130
    except _UsageError as exc:
        if getattr(args, "debug", False):
            raise
        print(f"sfnet: error: {exc} (see 'sfnet {args.command} --help')", file=sys.stderr)
        return 2
    except Exception as exc:
        if getattr(args, "debug", False) or not _is_user_error(exc):
            raise
        print(f"sfnet: error: {_message(exc)}", file=sys.stderr)
        return 1
    finally:
        logger.removeHandler(handler)
        logger.setLevel(previous)


def _is_user_error(exc):
    if isinstance(exc, _USER_ERRORS):
        return True
    from .exceptions import SkyServerError

    if isinstance(exc, SkyServerError):
        return True
    import torch

    return isinstance(exc, getattr(torch, "OutOfMemoryError", ()))


def _message(exc):
    text = " ".join(str(exc).split()) or type(exc).__name__
    name = type(exc).__name__
    plain = ("ValueError", "TypeError", "FileNotFoundError", "FileExistsError",
             "NotADirectoryError", "IsADirectoryError", "NotFittedError", "ImageReadError")
    if name not in plain and not text.startswith(name):
        text = f"{name}: {text}"
    if "OutOfMemoryError" in name:
        text += " (try a smaller --batch-size)"
    return text
