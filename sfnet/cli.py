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

Conventions shared by every command: the output is ``--output``; an existing
non-empty output that is not an earlier output of the same command (a file,
for ``predict`` and ``benchmark``) is refused before any work unless
``--overwrite``; errors name the flag (library argument names are mapped to
flags in `_FLAGS`); progress bars are off with ``--no-progress`` and whenever
stderr is not a terminal.  ``sfnet train`` takes its defaults from
`~sfnet.SparseFeatureNet`'s signature (`train_defaults`).
"""

import argparse
import inspect
import json
import logging
import re
import sys
import warnings
from pathlib import Path

from ._demo import DEMO_DEFAULTS
from .datasets.cutouts import cutout_services

__all__ = ["main", "build_parser", "train_defaults", "TRAIN_PARAMS", "DEMO_DEFAULTS"]

log = logging.getLogger("sfnet.cli")

#: Backbones offered by ``--backbone`` (sfnet.nn.BACKBONES, whose import needs torch).
_BACKBONES = ("resnet18", "resnet34", "resnet50")
#: Values of ``--precision``.
_PRECISIONS = ("auto", "fp32", "bf16")

#: Exceptions reported as one line (no traceback unless --debug).
_USER_ERRORS = (ValueError, TypeError, OSError)

#: The paper's split (fastai's RandomSplitter(valid_pct=0.2, seed=256)): the defaults of
#: ``sfnet train --split paper``.
_PAPER_SPLIT_FRACTION = 0.2
_PAPER_SPLIT_SEED = 256

#: SparseFeatureNet parameters that ``sfnet train`` sets from the option of the same
#: name (``--batch-size`` -> ``batch_size``); their defaults are the estimator's.
#: ``--seed`` sets ``random_state``.
TRAIN_PARAMS = ("k", "target", "backbone", "weights", "epochs", "batch_size",
                "learning_rate", "weight_decay", "optimizer", "image_size", "crop_size",
                "preprocessing", "validation_fraction", "keep_epoch", "device", "precision")

#: Library argument names -> the flags that set them, for error messages (one place).
_FLAGS = {
    "output": "--output", "output_dir": "--output", "device": "--device",
    "precision": "--precision", "batch_size": "--batch-size", "k": "--k",
    "ks": "--k", "epochs": "--epochs", "learning_rate": "--learning-rate",
    "weight_decay": "--weight-decay", "image_size": "--image-size",
    "crop_size": "--crop-size", "validation_fraction": "--validation-fraction",
    "keep_epoch": "--keep-epoch", "random_state": "--seed", "seed": "--seed",
    "n_galaxies": "--n-galaxies", "max_features": "--max-features",
    "max_galaxies": "--max-galaxies", "checkpoint_dir": "--checkpoint-dir",
    "resume": "--resume", "overwrite": "--overwrite", "split": "--split",
    "cutout_size": "--cutout-size", "max_workers": "--max-workers",
    "max_retries": "--max-retries", "rate_limit": "--rate-limit", "timeout": "--timeout",
    "data_release": "--data-release", "cutout_service": "--cutout-service",
    "io_images": "--io-images", "steps": "--steps", "rss_images": "--rss-images",
    "backbone": "--backbone", "weights": "--weights", "optimizer": "--optimizer",
    "preprocessing": "--preprocessing", "target": "--target", "region": "--region",
}


def train_defaults():
    """The defaults of ``sfnet train``: `~sfnet.SparseFeatureNet`'s signature.

    Returns
    -------
    dict
        Parameter name -> default, read with `inspect.signature`, so the
        command and the estimator cannot drift apart.
    """
    from .estimator import SparseFeatureNet

    return {name: param.default
            for name, param in inspect.signature(SparseFeatureNet).parameters.items()}


class _Given(argparse.Action):
    """Store the value and remember the option was given (``args.given_options``)."""

    def __call__(self, parser, namespace, values, option_string=None):
        setattr(namespace, self.dest, values)
        namespace.given_options = set(getattr(namespace, "given_options", ())) | {self.dest}


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


def _non_negative_float(text):
    value = _number(text)
    if not 0 <= value < float("inf"):
        raise argparse.ArgumentTypeError(f"must be a number >= 0, got {text!r}")
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
  sfnet cutouts mine.csv --output mine        # cutouts of your own catalog (network)
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
GalaxySample.save.  Galaxies failing the target's quality cuts are dropped and the rest
trained on as SparseFeatureNet(...).fit would: the defaults of the options are the
estimator's (read from its signature), so 'sfnet train DATA -o MODEL' trains the model
of SparseFeatureNet().fit(sample.select("metallicity")).  --validation-fraction of the
galaxies is held out (seeded by --seed): the epoch is selected (--keep-epoch best) and
the error bars are calibrated on them, and their metrics are printed and written to
MODEL/metrics.json.

--split paper holds out the validation galaxies of the paper's released models
(fastai's RandomSplitter: fraction 0.2 and seed 256 unless given; GalaxySample.split
with method="paper"); the model trains on the others and keeps its last epoch, as the
paper did.  An existing MODEL must be an earlier model (or empty) unless --overwrite.

examples:
  sfnet train sdss --output model
  sfnet train sdss --output model-bpt --target bpt_lines --k 4 --epochs 30 --device cuda
  sfnet train sdss --output model --image-size 160 --crop-size 144 --checkpoint-dir ckpt
  sfnet train sdss --output model --checkpoint-dir ckpt --resume   # after an interruption
  sfnet train sample-dir --output model-z --target z,petroMag_r
  sfnet train sdss --output model-paper --recipe paper   # the paper's training (sfnet.PAPER_RECIPE)
  sfnet train sdss --output model-paper --recipe paper --weights none   # offline
  sfnet train sdss --output model-paper --recipe paper --split paper    # the paper's split
  sfnet train sdss --output model --metrics - > metrics.json            # metrics as JSON
  sfnet train sdss --output ensemble --members 5   # a deep ensemble (5x the time)

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
  sfnet benchmark --device cuda --image-size 144 --batch-size 256 --output bench.json
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


def _device(text):
    """``--device``: a torch device string (its availability is checked by the library)."""
    text = text.strip()
    if not re.fullmatch(r"auto|cpu|mps|cuda(:\d+)?|xpu(:\d+)?|[a-z_]+(:\d+)?", text):
        raise argparse.ArgumentTypeError(
            f"must be auto, cpu, cuda, cuda:N or mps, got {text!r}")
    return text


def _name_like(what, pattern):
    """An argparse type: text matching ``pattern`` (a column name, a viewer layer, bands)."""
    def check(text):
        text = text.strip()
        if not re.fullmatch(pattern, text):
            raise argparse.ArgumentTypeError(f"not a valid {what}: {text!r}")
        return text
    check.__name__ = what.replace(" ", "_")
    return check


def _add_device(p, precision=True, default="auto", precision_default="auto"):
    p.add_argument("--device", type=_device, default=default, metavar="DEVICE",
                   action=_Given,
                   help="torch device: auto (cuda, then mps, then cpu), cpu, cuda, cuda:1, mps")
    if precision:
        p.add_argument("--precision", choices=_PRECISIONS, default=precision_default,
                       action=_Given,
                       help="auto: bfloat16 autocast on CUDA and bf16-capable CPUs, else fp32")


def _add_no_progress(p, stage_lines=False):
    help = ("no progress bars or stage lines (bars are off anyway when stderr is not a "
            "terminal)" if stage_lines else
            "no progress bars (they are off anyway when stderr is not a terminal)")
    p.add_argument("--no-progress", action="store_true", help=help)


def _add_overwrite(p, help):
    """``--overwrite``: the one exception to the overwrite rule."""
    p.add_argument("--overwrite", action="store_true", help=help)


def _add_target(p, default="metallicity"):
    p.add_argument("--target", type=_target, default=default, action=_Given,
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
    _add_overwrite(p, "write into a non-empty --output that is not an earlier demo's")
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
    _add_transport_options(p)


def _add_transport_options(p):
    """How downloads run (``sfnet fetch`` and ``sfnet cutouts``): workers, timeout,
    retries, rate."""
    p.add_argument("--max-workers", type=_int_at_least(1), default=None, metavar="N",
                   help="concurrent downloads (default: sfnet.conf.max_workers)")
    p.add_argument("--timeout", type=_positive_float, default=None, metavar="S",
                   help="seconds per request (default: sfnet.conf.timeout)")
    p.add_argument("--max-retries", type=_int_at_least(0), default=None, metavar="N",
                   help="retries on timeouts and 5xx (default: sfnet.conf.max_retries)")
    p.add_argument("--rate-limit", type=_positive_float, default=10.0, metavar="R",
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
    _add_overwrite(p, "write into a non-empty DIR without galaxies.csv, or replace a "
                      "catalog in DIR that comes from a different query")
    _add_no_progress(p)
    p.set_defaults(handler=_cmd_fetch)


_CUTOUTS_EPILOG = """\
Reads a catalog (CSV, ECSV or FITS table with ra/dec in degrees or a SkyCoord column) and
downloads one cutout per galaxy from the Legacy Survey viewer into DIR: galaxies.csv, the
images and folder.json (the ID column, image folder and suffix), so that 'sfnet train DIR'
and load_galaxy_folder(DIR) read it with no further options.  Running it again resumes:
only missing or damaged files are fetched.  Needs network access.

examples:
  sfnet cutouts mine.csv --output mine
  sfnet cutouts desi.fits --output desi --id-column TARGETID --layer ls-dr10 \\
      --format fits --bands grz
"""


def _add_cutouts_parser(sub, common):
    p = _add_subcommand(sub, common, "cutouts",
                        "download cutouts of your own catalog's galaxies (JPEG or FITS)",
                        _CUTOUTS_EPILOG)
    p.add_argument("catalog", metavar="CATALOG",
                   help="catalog file: .csv, .ecsv or .fits with ra/dec (or a SkyCoord column)")
    p.add_argument("--output", "-o", required=True, metavar="DIR", help="folder to write")
    p.add_argument("--id-column", type=_name_like("column name", r"[^\s,]+"),
                   default="objID", metavar="NAME",
                   help="the catalog's unique ID column, integers or strings; the file names "
                        "(default: objID; without one, IDs come from the positions)")
    p.add_argument("--layer", type=_name_like("viewer layer", r"[A-Za-z0-9][\w.-]*"),
                   default="sdss",
                   help="Legacy Survey viewer layer: sdss (the paper's), ls-dr10, ls-dr9, ...")
    p.add_argument("--format", choices=("jpg", "fits"), default="jpg",
                   help="colour JPEG, or FITS with one float image per band")
    p.add_argument("--bands", type=_name_like("band list", r"[ugrizYNW1-4]+"), default=None,
                   metavar="BANDS",
                   help="bands of FITS cutouts, e.g. grz (default: the layer's)")
    p.add_argument("--pixscale", type=_positive_float, default=0.262, metavar="ARCSEC",
                   help="arcsec per pixel (default: 0.262)")
    p.add_argument("--size", type=_int_at_least(16), default=160, metavar="PX",
                   help="cutout side in pixels (default: 160)")
    _add_transport_options(p)
    _add_no_progress(p)
    _add_overwrite(p, "write into a non-empty --output that is not a galaxy folder (one "
                      "without galaxies.csv or folder.json); a galaxy folder is resumed")
    p.set_defaults(handler=_cmd_cutouts)


def _add_train_recipe_options(p, d):
    """The training recipe of ``sfnet train``: recipe, epochs, batch size, optimizer."""
    p.add_argument("--recipe", choices=("default", "paper"), default="default",
                   help="default: the estimator's defaults; paper: sfnet.PAPER_RECIPE "
                        "(options given explicitly override it)")
    p.add_argument("--epochs", type=_int_at_least(1), default=d["epochs"], metavar="E",
                   action=_Given, help="training epochs (default: %(default)s; the paper "
                                       "recipe: 20)")
    p.add_argument("--batch-size", type=_int_at_least(1), default=d["batch_size"],
                   metavar="B", action=_Given,
                   help="batch size (default: %(default)s; the paper recipe: 64)")
    p.add_argument("--learning-rate", type=_positive_float, default=d["learning_rate"],
                   metavar="LR", action=_Given,
                   help="peak learning rate of the one-cycle schedule (default: %(default)s "
                        "with AdamW; the paper recipe: 0.1 with Ranger)")
    p.add_argument("--weight-decay", type=_non_negative_float, default=d["weight_decay"],
                   metavar="WD", action=_Given, help="weight decay")
    p.add_argument("--optimizer", choices=("adamw", "ranger"), default=d["optimizer"],
                   action=_Given, help="adamw: AdamW, one-cycle; ranger: the paper's Ranger "
                                       "under fastai's one-cycle schedule")
    p.add_argument("--keep-epoch", choices=("best", "last"), default=d["keep_epoch"],
                   action=_Given,
                   help="keep the epoch with the lowest RMSE on the held-out galaxies, or "
                        "the last (default: %(default)s; the paper recipe and --split "
                        "paper: last)")


def _add_train_network_options(p, d):
    """What the network sees and is built from: image and crop size, backbone, weights."""
    p.add_argument("--image-size", type=_int_at_least(8), default=d["image_size"],
                   metavar="S", action=_Given,
                   help="size of the images the network sees (default: the images' own; "
                        "the paper: 160)")
    p.add_argument("--crop-size", type=_int_at_least(8), default=d["crop_size"],
                   metavar="C", action=_Given,
                   help="side of the central crop (default: none; the paper: 144)")
    p.add_argument("--preprocessing", choices=("resize-crop", "crop-resize"),
                   default=d["preprocessing"], action=_Given,
                   help="order of resize and crop (default: %(default)s; the paper: "
                        "crop-resize)")
    p.add_argument("--backbone", choices=_BACKBONES, default=d["backbone"], action=_Given,
                   help="ResNet trunk")
    p.add_argument("--weights", choices=("none", "imagenet"),
                   default="none" if d["weights"] is None else d["weights"], action=_Given,
                   help="backbone initialisation (default: %(default)s; the paper recipe: "
                        "imagenet, read from the torch hub cache or downloaded)")


def _add_train_split_options(p, d):
    """The held-out galaxies of ``sfnet train``: fraction, split rule, seed."""
    p.add_argument("--validation-fraction", type=_fraction, default=d["validation_fraction"],
                   metavar="F", action=_Given,
                   help="fraction of the galaxies passing the cuts held out: the epoch is "
                        "selected (--keep-epoch best), the error bars calibrated and the "
                        "metrics measured on them; 0: none (default: %(default)s; "
                        f"--split paper: {_PAPER_SPLIT_FRACTION})")
    p.add_argument("--split", choices=("random", "paper"), default="random",
                   help="random: the estimator's own split (seeded by --seed); paper: the "
                        "split of the paper's released models, fastai's RandomSplitter "
                        "(default: random)")
    p.add_argument("--seed", type=_int_at_least(0), default=d["random_state"], metavar="S",
                   action=_Given,
                   help="seed of the split, the initialisation and the shuffling "
                        "(default: a fresh one, as random_state=None, recorded in "
                        f"metrics.json; --split paper: {_PAPER_SPLIT_SEED})")


def _add_train_parser(sub, common):
    d = train_defaults()
    p = _add_subcommand(sub, common, "train",
                        "train an SFNet on a data folder or a saved sample", _TRAIN_EPILOG)
    p.add_argument("data", metavar="DATA", help="Zenodo-layout folder or saved GalaxySample")
    p.add_argument("--output", "-o", required=True, metavar="MODEL",
                   help="directory to save the model (and metrics.json) in")
    _add_target(p, d["target"])
    p.add_argument("--k", type=_int_at_least(1), default=d["k"], action=_Given,
                   help="active features per galaxy (top-k)")
    _add_train_recipe_options(p, d)
    _add_train_network_options(p, d)
    _add_train_split_options(p, d)
    p.add_argument("--members", type=_int_at_least(1), default=1, metavar="N",
                   help="train a deep ensemble of N networks (seeds S..S+N-1; N times the "
                        "training time) and save it as one directory (default: 1, one network)")
    _add_device(p, default=d["device"], precision_default=d["precision"])
    p.add_argument("--checkpoint-dir", metavar="DIR", default=None,
                   help="write a checkpoint after every epoch")
    p.add_argument("--resume", action="store_true",
                   help="continue from the checkpoint in --checkpoint-dir")
    p.add_argument("--metrics", metavar="FILE", default=None,
                   help="metrics.json is always written into MODEL; '-' also prints it to "
                        "stdout as JSON (the summary then goes to stderr), FILE also "
                        "writes a copy there")
    _add_overwrite(p, "write into a non-empty MODEL directory that is not an sfnet model")
    _add_no_progress(p)
    p.set_defaults(handler=_cmd_train, given_options=frozenset())


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
    _add_overwrite(p, "replace an existing --output file")
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
    p.add_argument("--seed", type=_int_at_least(0), default=0, metavar="S",
                   help="seed of the --max-galaxies subset")
    p.add_argument("--all-galaxies", action="store_true",
                   help="keep galaxies failing the model's target cuts")
    _add_device(p)
    _add_overwrite(p, "write into a non-empty --output that is not an earlier report")
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
    _add_overwrite(p, "write into a non-empty --output that is not an earlier sweep")
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
    p.add_argument("--output", "-o", metavar="FILE", default=None,
                   help="also write the results as JSON to FILE")
    p.add_argument("--json", metavar="FILE", default=None, dest="json_deprecated",
                   help="deprecated alias of --output")
    _add_overwrite(p, "replace an existing --output file")
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
    for add in (_add_demo_parser, _add_fetch_parser, _add_cutouts_parser, _add_train_parser,
                _add_predict_parser, _add_interpret_parser, _add_sweep_parser,
                _add_benchmark_parser):
        add(sub, common)
    return parser


# --------------------------------------------------------------------------- helpers
def _progress(args):
    """Progress bars: on unless --no-progress or stderr is not a terminal."""
    return not getattr(args, "no_progress", False) and _stderr_is_terminal()


def _stderr_is_terminal():
    isatty = getattr(sys.stderr, "isatty", None)
    try:
        return bool(isatty and isatty())
    except ValueError:  # closed stream
        return False


def _say(args):
    """Stage lines on stderr (kept in logs; off with --no-progress)."""
    def say(text):
        if not getattr(args, "no_progress", False):
            print(f"sfnet: {text}", file=sys.stderr, flush=True)
    return say


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

    metrics = run_demo(args.output, n_galaxies=args.n_galaxies, image_size=args.image_size,
                       epochs=args.epochs, k=args.k, batch_size=args.batch_size,
                       seed=args.seed, device=args.device, precision=args.precision,
                       max_features=args.max_features, overwrite=args.overwrite,
                       progress=_progress(args), say=_say(args))
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

    table = run_sweep(args.data, args.k, output=args.output, n_galaxies=args.n_galaxies,
                      image_size=args.image_size, seed=args.seed, target=args.target,
                      epochs=args.epochs, seeds=args.seeds, batch_size=args.batch_size,
                      device=args.device, precision=args.precision, overwrite=args.overwrite,
                      progress=_progress(args), say=_say(args))
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


def _cmd_cutouts(args):
    from .datasets.cutouts import fetch_cutouts

    report = fetch_cutouts(args.catalog, args.output, id_column=args.id_column,
                           layer=args.layer, bands=args.bands, format=args.format,
                           pixscale=args.pixscale, size=args.size, progress=_progress(args),
                           max_workers=args.max_workers, rate_limit=args.rate_limit,
                           timeout=args.timeout, max_retries=args.max_retries,
                           overwrite=args.overwrite)
    print("sfnet cutouts: " + ", ".join(f"{k} {v}" for k, v in report.items()
                                        if isinstance(v, (int, float, str))))
    print(f"sfnet cutouts: {report['valid']} of {report['n_galaxies']} galaxies have an image "
          f"in {args.output} (train with: sfnet train {args.output} --output MODEL)")
    return 0


def _train_params(args):
    """SparseFeatureNet parameters of ``sfnet train``.

    The options' defaults are the estimator's; ``--recipe paper`` replaces
    those not given by `sfnet.PAPER_RECIPE`'s; ``--split paper`` those of the
    split by the paper's (fraction 0.2, seed 256, last epoch).
    """
    from . import PAPER_RECIPE

    given = getattr(args, "given_options", frozenset())
    params = {name: getattr(args, name) for name in TRAIN_PARAMS}
    params["random_state"] = args.seed
    if args.recipe == "paper":
        params.update({k: v for k, v in PAPER_RECIPE.items() if k not in given})
    if args.split == "paper":
        if "keep_epoch" not in given:
            params["keep_epoch"] = "last"
        elif params["keep_epoch"] != "last":
            raise _UsageError("--split paper keeps the last epoch (--keep-epoch last): the "
                              "paper's validation galaxies are held out of training, so "
                              "no epoch can be selected on them")
        if "validation_fraction" not in given:
            params["validation_fraction"] = _PAPER_SPLIT_FRACTION
        elif params["validation_fraction"] == 0:
            raise _UsageError("--split paper needs --validation-fraction > 0")
        if args.seed is None:
            params["random_state"] = _PAPER_SPLIT_SEED
    if params["weights"] == "none":
        params["weights"] = None
    params["progress"] = _progress(args)
    return params


def _cmd_train(args):
    from . import SparseFeatureNet
    from ._io import atomic_write_json, check_output_file, json_safe
    from .workflow import METRICS_FILE, train_metrics, train_model

    if args.resume and args.checkpoint_dir is None:
        raise _UsageError("--resume needs --checkpoint-dir")
    params = _train_params(args)
    copy = None if args.metrics in (None, "-") else args.metrics
    if copy is not None:
        check_output_file(copy, "--metrics", overwrite=args.overwrite)
    if args.members > 1:
        from . import SparseFeatureEnsemble

        estimator = SparseFeatureEnsemble(args.members, **params)
    else:
        estimator = SparseFeatureNet(**params)
    result = train_model(estimator, args.data, args.output,
                         split=args.split, checkpoint_dir=args.checkpoint_dir,
                         resume=args.resume, overwrite=args.overwrite,
                         progress=_progress(args), say=_say(args))
    metrics = train_metrics(result)
    atomic_write_json(result.output / METRICS_FILE, metrics)
    if copy is not None:
        atomic_write_json(copy, metrics)
    model, split = result.model, result.split
    out = sys.stderr if args.metrics == "-" else sys.stdout
    what = f", {args.members} members" if args.members > 1 else ""
    print(f"sfnet train: model saved to {result.output} (k={model.k}, {model.epochs} "
          f"epoch(s){what}, {len(split.train)} training galaxies, seed {model.seed_})",
          file=out)
    if result.scores is not None:
        units = dict(zip(model.target_names, model.target_units_))
        print(f"validation metrics ({len(split.valid)} held-out galaxies), {args.split} "
              "split:", file=out)
        print(_format_metrics(result.scores.metrics, units), file=out)
    print(f"  wrote {result.output / METRICS_FILE}", file=out)
    if args.metrics == "-":
        print(json.dumps(json_safe(metrics), indent=2, sort_keys=True, allow_nan=False))
    return 0


def _cmd_predict(args):
    from .workflow import write_predictions

    table = write_predictions(args.model, args.data, args.output, return_std=args.std,
                              batch_size=args.batch_size, device=args.device,
                              precision=args.precision, overwrite=args.overwrite,
                              progress=_progress(args))
    print(f"sfnet predict: {len(table)} predictions of {', '.join(table.meta['targets'])} "
          f"written to {args.output}")
    return 0


def _cmd_interpret(args):
    from .workflow import write_interpretation

    report = write_interpretation(args.model, args.data, args.output,
                                  all_galaxies=args.all_galaxies,
                                  max_galaxies=args.max_galaxies, seed=args.seed,
                                  max_features=args.max_features, device=args.device,
                                  precision=args.precision, overwrite=args.overwrite,
                                  progress=_progress(args), say=_say(args))
    print(f"sfnet interpret: report written to {report}")
    return 0


def _cmd_benchmark(args):
    from ._io import atomic_write_json, check_output_file
    from .benchmark import format_table, run_benchmark

    output = args.output
    if args.json_deprecated is not None:
        if output is not None:
            raise _UsageError("--json is a deprecated alias of --output: give one of them")
        print("sfnet: warning: --json FILE is deprecated; use --output FILE",
              file=sys.stderr)
        output = args.json_deprecated
    if output is not None:
        check_output_file(output, "output", overwrite=args.overwrite)
    result = run_benchmark(device=args.device, image_size=args.image_size,
                           batch_size=args.batch_size, precisions=args.precision,
                           steps=args.steps, k=args.k, backbone=args.backbone,
                           io_images=args.io_images,
                           paper_baseline=not args.no_paper_baseline,
                           streaming=not args.no_streaming,
                           rss_images=[v for v in args.rss_images if v > 0],
                           compile=args.compile)
    print(format_table(result))
    if output is not None:
        atomic_write_json(output, result)
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
    text = _name_flags(" ".join(str(exc).split())) or type(exc).__name__
    name = type(exc).__name__
    plain = ("ValueError", "TypeError", "FileNotFoundError", "FileExistsError",
             "NotADirectoryError", "IsADirectoryError", "NotFittedError", "ImageReadError",
             "NotADirectoryPathError")
    if name not in plain and not text.startswith(name):
        text = f"{name}: {text}"
    if "OutOfMemoryError" in name:
        text += " (try a smaller --batch-size)"
    return text


#: ``name=True`` (a library flag argument), ``name=value``, or ``name`` followed by a
#: space or quote, where ``name`` is a library argument of `_FLAGS` (not inside a word,
#: a flag or an identifier).
_ARGUMENT = re.compile(r"(?<![\w\-.])(" + "|".join(sorted(map(re.escape, _FLAGS), key=len,
                                                             reverse=True))
                       + r")(=True\b|=|(?=[ '\"(]|$))")


def _name_flags(text):
    """A library message with its argument names replaced by the flags that set them.

    ``device='cuda' requested ...`` -> ``--device 'cuda' requested ...``;
    ``pass overwrite=True`` -> ``pass --overwrite``.  Names that are also
    English words (``target``, ``seed``, ``k``...) are renamed only at the start
    of the message or before ``=``.
    """
    def flag(match):
        name, tail = match.group(1), match.group(2)
        if "_" not in name and not tail and match.start() != 0:
            return match.group(0)
        if tail == "=True":
            return _FLAGS[name]
        return _FLAGS[name] + (" " if tail == "=" else "")
    return _ARGUMENT.sub(flag, text)
