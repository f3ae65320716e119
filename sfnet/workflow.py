"""The one workflow: select -> split -> fit -> score against the baselines and the floor.

``sfnet train``, ``sfnet demo`` and ``sfnet sweep`` all run the same steps on a
`~sfnet.datasets.GalaxySample`, and each step is written here once:

1. `load_data` opens DATA (a Zenodo-layout folder or a saved sample);
2. `select_and_split` keeps the galaxies passing the target's quality cuts
   and holds out a seeded fraction of them (`Split`, with the held-out
   targets read once);
3. the caller fits a `~sfnet.SparseFeatureNet` on ``split.train``;
4. `score_model` scores it on the held-out galaxies in one pass of the
   network (the active features, the predictions rebuilt from them and the
   metrics of `SparseFeatureNet.evaluate`);
5. `reference_scores` puts the SFNet in context on the same split: the mean
   predictor, the photometric gradient-boosted trees and linear fit of
   `sfnet.baselines`, and -- on the mock -- the floor (`oracle_floor`).

`train_model` chains them for ``sfnet train``; the demo (``sfnet._demo``) and
the k sweep (`sfnet.sweep`) call the steps with their own reporting around
them.  `write_predictions` and `write_interpretation` apply a fitted model for
``sfnet predict`` and ``sfnet interpret``.  Every command's output is checked
before any work is done (directories by ``sfnet._io.check_output_dir``, one
rule and one exception type, `FileExistsError`).
"""

import logging
import math
import platform
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, NamedTuple

import numpy as np

from ._io import check_output_dir, check_output_file
from ._utils import regression_metrics
from .datasets._layout import CATALOG_CSV
from .datasets._store import MANIFEST_FILE
from .targets import get_target

__all__ = ["load_data", "load_model", "Split", "select_and_split", "Scores", "score_model",
           "Floor", "oracle_floor", "References", "reference_scores",
           "TrainResult", "train_model", "train_metrics", "write_predictions",
           "write_interpretation", "versions", "precision_name"]

log = logging.getLogger("sfnet.workflow")


def _quiet(text):
    """The default ``say``: print nothing."""


# --------------------------------------------------------------------------- data
def load_data(path, *, progress=True):
    """Open DATA: a Zenodo-layout folder (``galaxies.csv``) or a saved `~sfnet.GalaxySample`.

    Parameters
    ----------
    path : path-like
        A folder holding ``galaxies.csv`` and ``images-sdss/`` (as written by
        ``sfnet fetch``), or a directory written by `GalaxySample.save`
        (``sample.json``).
    progress : bool, optional
        Progress bar while a folder's images are decoded.

    Returns
    -------
    `~sfnet.GalaxySample`

    Raises
    ------
    FileNotFoundError
        ``path`` does not exist or is neither layout.
    NotADirectoryError
        ``path`` is a file.
    """
    from .datasets import GalaxySample, load_galaxy_folder

    path = Path(path)
    if not path.exists():
        raise FileNotFoundError(f"DATA {str(path)!r} does not exist")
    if not path.is_dir():
        raise NotADirectoryError(f"DATA {str(path)!r} is not a directory")
    if (path / CATALOG_CSV).is_file():
        log.info("reading the galaxy folder %s", path)
        return load_galaxy_folder(path, progress=progress)
    if (path / MANIFEST_FILE).is_file():
        log.info("opening the saved sample %s", path)
        return GalaxySample.load(path)
    raise FileNotFoundError(
        f"DATA {str(path)!r} is neither a galaxy folder (galaxies.csv + images-sdss/) "
        "nor a saved GalaxySample (sample.json)")


@dataclass(frozen=True)
class Split:
    """The galaxies of one run: those passing the target's cuts, split in two.

    Attributes
    ----------
    target : `~sfnet.targets.Target`
        The resolved target.
    n_total : int
        Galaxies before the cuts.
    train : `~sfnet.GalaxySample`
        The training galaxies.
    valid : `~sfnet.GalaxySample` or None
        The held-out galaxies (None without a hold-out).
    truth : ndarray or None
        Target values of ``valid``, ``(n_valid, n_targets)``, read once.
    """

    target: Any
    n_total: int
    train: Any
    valid: Any = None
    truth: Any = None

    @property
    def n_selected(self):
        """Galaxies passing the target's cuts (training + held out)."""
        return len(self.train) + (0 if self.valid is None else len(self.valid))


def select_and_split(sample, target, validation_fraction, seed, *, min_selected=1,
                     hint=None, method="random"):
    """Keep the galaxies passing ``target``'s cuts and hold out a seeded fraction.

    Parameters
    ----------
    sample : `~sfnet.GalaxySample`
    target : str, list of str or `~sfnet.targets.Target`
        As in `~sfnet.SparseFeatureNet`.
    validation_fraction : float
        Held-out fraction, in ``[0, 1)``; 0 holds out nothing.
    seed : int
        Seed of `GalaxySample.split`.
    min_selected : int, optional
        Fewest galaxies that must pass the cuts.
    hint : str, optional
        Appended to the error when too few pass (what the caller can do).
    method : {"random", "paper"}, optional
        The split rule of `GalaxySample.split`: ``"paper"`` holds out the
        rows of fastai's ``RandomSplitter`` (the paper: fraction 0.2, seed
        256), applied to the galaxies passing the cuts in catalog order.

    Returns
    -------
    `Split`

    Examples
    --------
    >>> from sfnet.datasets import make_mock_galaxies
    >>> from sfnet.workflow import select_and_split
    >>> s = make_mock_galaxies(200, image_size=16, seed=0, progress=False)
    >>> split = select_and_split(s, "metallicity", 0.2, seed=0)
    >>> split.n_selected == len(s.select("metallicity")), split.truth.shape[1]
    (True, 1)
    """
    if not (hasattr(sample, "select") and hasattr(sample, "catalog")):
        raise TypeError(f"sample must be a GalaxySample, got {type(sample).__name__}")
    if isinstance(validation_fraction, bool) or \
            not isinstance(validation_fraction, (float, int)) or \
            not 0 <= validation_fraction < 1:
        raise ValueError(f"validation_fraction must be in [0, 1), got {validation_fraction!r}")
    tgt = get_target(target)
    selected = sample.select(tgt)
    if len(selected) < max(1, min_selected):
        need = f"; at least {min_selected} are needed" if min_selected > 1 else ""
        raise ValueError(f"only {len(selected)} of {len(sample)} galaxies pass the quality "
                         f"cuts of target {tgt.name!r}{need}" + (f" ({hint})" if hint else ""))
    if validation_fraction == 0:
        return Split(tgt, len(sample), selected)
    train, valid = selected.split(validation_fraction, seed=seed, method=method)
    if len(valid) == 0:
        raise ValueError(f"validation_fraction {validation_fraction} of {len(selected)} "
                         "galaxies leaves no held-out galaxy")
    return Split(tgt, len(sample), train, valid, tgt.values(valid.catalog))


# --------------------------------------------------------------------------- scores
class Scores(NamedTuple):
    """A fitted model on the held-out galaxies (`score_model`).

    ``metrics`` maps each target name to ``rmse``, ``nmad``, ``bias``, ``r2``
    and ``n`` (as `SparseFeatureNet.evaluate`); ``predictions`` is
    ``(N, n_targets)``; ``activations`` the dense post-top-k features.
    """

    metrics: dict
    predictions: np.ndarray
    activations: np.ndarray


def score_model(model, valid, truth=None):
    """Score a fitted model on ``valid`` with one pass of the network.

    The active features are computed once; the predictions follow from them
    through the linear head (``activations @ head_weights.T + head_bias``, the
    identity every SFNet satisfies), so the held-out galaxies are neither read
    nor checked twice.

    Parameters
    ----------
    model : `~sfnet.SparseFeatureNet`
        A fitted model.
    valid : `~sfnet.GalaxySample`
        Held-out galaxies that passed the model's target cuts.
    truth : array-like, optional
        Their target values ``(N, n_targets)`` (`Split.truth`); read from
        ``valid``'s catalog when not given.

    Returns
    -------
    `Scores`
    """
    if truth is None:
        truth = model.target_.values(valid.catalog)
    truth = np.asarray(truth, dtype=np.float64).reshape(len(valid), -1)
    if hasattr(model, "members_"):  # an ensemble: its mean, member 0's features
        acts = np.asarray(model.members_[0].activations(valid))
        pred = np.asarray(model.predict(valid), dtype=np.float64).reshape(len(valid), -1)
    else:
        acts = np.asarray(model.activations(valid))
        pred = acts.astype(np.float64) @ model.head_weights.T + model.head_bias
    if pred.shape != truth.shape:
        raise ValueError(f"truth has {truth.shape[1]} columns but the model predicts "
                         f"{pred.shape[1]}")
    metrics = {name: regression_metrics(truth[:, j], pred[:, j])
               for j, name in enumerate(model.target_names)}
    return Scores(metrics, pred, acts)


class Floor(NamedTuple):
    """The mock's floor (`oracle_floor`): ``sample`` as the mock recorded it over the
    galaxies passing the cuts, ``valid`` over the held-out galaxies; NaN where unknown."""

    sample: float
    valid: float

    @property
    def best(self):
        """The held-out floor when known, else the sample's."""
        return self.valid if math.isfinite(self.valid) else self.sample


def oracle_floor(sample, valid=None):
    """The best possible RMSE on the mock: the RMS of its hidden metallicity term.

    Parameters
    ----------
    sample : `~sfnet.GalaxySample`
        The sample as generated (its ``catalog.meta["oracle_rmse"]``).
    valid : `~sfnet.GalaxySample`, optional
        The held-out galaxies (their ``mock_oh_hidden`` column).

    Returns
    -------
    `Floor`
        NaN entries on real data, which has no hidden term.
    """
    from .datasets.mock import oracle_rmse

    whole = float(sample.catalog.meta.get("oracle_rmse", math.nan))
    held = math.nan
    if valid is not None and "mock_oh_hidden" in valid.catalog.colnames:
        held = float(oracle_rmse(valid.catalog["mock_oh_hidden"]))
    return Floor(whole, held)


@dataclass
class References:
    """What an SFNet is judged against on one split (`reference_scores`).

    RMSEs are averaged over the target's columns; NaN where a baseline could
    not run (its reason in ``notes``, e.g. ``photometric_gbm_note``).
    """

    mean_rmse: float
    photometric_gbm_rmse: float
    photometric_linear_rmse: float
    floor: Floor
    notes: dict = field(default_factory=dict)
    details: dict = field(default_factory=dict)


def _as_float(v):
    return float(np.mean(v))


def _gbm_details(res):
    params = res["params"]
    if isinstance(params, dict):
        params = {k: float(v) for k, v in params.items()}
    else:
        params = [{k: float(v) for k, v in p.items()} for p in params]
    cv = res["cv_rmse"]
    return {"gbm_params": params,
            "gbm_cv_rmse": float(cv) if np.ndim(cv) == 0 else [float(v) for v in cv],
            "gbm_n_iter": res["n_iter"] if isinstance(res["n_iter"], list)
            else int(res["n_iter"]),
            "gbm_features": list(res["feature_names"]),
            "n_train": int(res["n_train"]), "n_valid": int(res["n_valid"])}


def reference_scores(split, sample=None, *, seed=0, say=_quiet):
    """The baselines and the floor on a split's held-out galaxies.

    Parameters
    ----------
    split : `Split`
        With held-out galaxies.
    sample : `~sfnet.GalaxySample`, optional
        The sample as generated, for the mock's recorded floor.
    seed : int, optional
        Seed of the gradient-boosting baseline's folds and early stopping.
    say : callable, optional
        Called with one line of text before the baselines are fitted.

    Returns
    -------
    `References`
        ``mean_rmse`` (`sfnet.baselines.mean_baseline_rmse`),
        ``photometric_gbm_rmse`` and ``photometric_linear_rmse``
        (`sfnet.baselines.photometric_baseline`, tuned and fitted on
        ``split.train`` only), ``floor`` (`oracle_floor`) and ``details`` (the
        gradient-boosting hyper-parameters and feature names).
    """
    from .baselines import mean_baseline_rmse, photometric_baseline

    if split.valid is None:
        raise ValueError("split has no held-out galaxies to score the baselines on")
    train, valid, tgt = split.train, split.valid, split.target
    say("fitting the baselines (mean predictor; photometric gradient-boosted trees, "
        "tuned on the training galaxies, and linear fit)")
    rmse, notes, details = {}, {}, {}
    for model in ("gbm", "linear"):
        key = f"photometric_{model}_rmse"
        try:
            res = photometric_baseline(train, valid, tgt, model=model, random_state=seed)
        except ValueError as exc:       # e.g. a catalog without modelMag columns
            rmse[key] = math.nan
            notes[f"photometric_{model}_note"] = str(exc)
            continue
        rmse[key] = _as_float(res["rmse"])
        if model == "gbm":
            details.update(_gbm_details(res))
        else:
            details["linear_features"] = list(res["feature_names"])
    return References(mean_rmse=_as_float(mean_baseline_rmse(train, valid, tgt)),
                      floor=oracle_floor(train if sample is None else sample, valid),
                      notes=notes, details=details, **rmse)


# --------------------------------------------------------------------------- train
class TrainResult(NamedTuple):
    """What `train_model` did: the fitted ``model``, its ``split``, the ``scores``
    on the held-out galaxies (None without a hold-out), the ``output`` path, the
    split ``method`` and the wall-clock ``seconds``."""

    model: Any
    split: Split
    scores: Any
    output: Path
    method: str = "random"
    validation_fraction: float = 0.0
    seconds: float = math.nan


#: The file `train_model` and ``sfnet train`` write beside the saved model.
METRICS_FILE = "metrics.json"
#: The page `write_interpretation` writes: it marks a report directory.
REPORT_FILE = "report.html"


def _check_train_split(model, split):
    """The errors of ``split`` (and of a model it cannot train) before any data is read."""
    from .datasets._split import SPLIT_METHODS

    if split not in SPLIT_METHODS:
        raise ValueError(f"split must be one of {SPLIT_METHODS}, got {split!r}")
    if split == "paper":
        if model.validation_fraction == 0:
            raise ValueError("split='paper' needs validation_fraction > 0 (the paper: 0.2)")
        if model.keep_epoch != "last":
            raise ValueError("split='paper' needs keep_epoch='last' (the paper's): the "
                             "paper's validation galaxies are held out of fit, so no epoch "
                             "can be selected on them")
        if not isinstance(model.random_state, (int, np.integer)) or \
                isinstance(model.random_state, bool):
            raise ValueError("split='paper' needs an integer random_state (the paper: 256), "
                             f"got {model.random_state!r}")


def train_model(model, data, output, *, split="random", checkpoint_dir=None, resume=False,
                overwrite=False, progress=True, say=_quiet):
    """Select, split, fit, save and score: the pipeline of ``sfnet train``.

    The model is the estimator as given: with ``split="random"`` it is fitted
    on the galaxies passing its target's cuts, holds out its own
    ``validation_fraction`` (seeded by its ``random_state``, i.e.
    ``GalaxySample.split(validation_fraction, seed=model.seed_)``), selects
    the epoch (``keep_epoch``) and calibrates its error bars on them -- the
    same model as ``model.fit(sample.select(model.target))``; the held-out
    galaxies are then scored.  With ``split="paper"`` the held-out galaxies
    are the paper's (`GalaxySample.split` with ``method="paper"``, seeded by
    ``random_state``): the model is fitted on the others with
    ``validation_fraction=0`` (set on ``model``, so the saved parameters say
    what it trained with; it needs ``keep_epoch="last"``, as the paper), then
    its error bars are calibrated on the held-out ones.

    Parameters
    ----------
    model : `~sfnet.SparseFeatureNet` or `~sfnet.SparseFeatureEnsemble`
        An unfitted estimator (its ``target`` picks the cuts).  Its parameters
        are validated before DATA is read.  An ensemble is saved as one
        directory with a sub-directory per member.
    data : path-like or `~sfnet.GalaxySample`
        DATA (`load_data`) or a sample.
    output : path-like
        Directory to save the model in: new, empty or an earlier sfnet model
        (any directory with ``overwrite``).
    split : {"random", "paper"}, optional
        How the held-out galaxies are drawn (see above).
    checkpoint_dir, resume
        As in `SparseFeatureNet.fit`.
    overwrite : bool, optional
        Write into a non-empty ``output`` that is not an sfnet model.
    progress : bool, optional
        Progress bar while a folder is read.
    say : callable, optional
        Called with one line of text before training.

    Returns
    -------
    `TrainResult`
    """
    ensemble = hasattr(model, "n_members")
    t0 = time.perf_counter()
    output = check_output_dir(output, marker="sfnet-ensemble.json" if ensemble else "sfnet.json",
                              what="an sfnet ensemble" if ensemble else "an sfnet model",
                              overwrite=overwrite)
    if resume and checkpoint_dir is None:
        raise ValueError("resume=True needs checkpoint_dir")
    model.validate_params()  # before reading a possibly large folder
    _check_train_split(model, split)
    sample = data if hasattr(data, "catalog") else load_data(data, progress=progress)
    fraction = model.validation_fraction
    if split == "paper" or ensemble:
        # the paper's held-out galaxies, or an ensemble's (whose members each hold out
        # their own validation galaxies of the rest): split off before fitting
        seed = int(model.random_state) if split == "paper" or \
            isinstance(model.random_state, (int, np.integer)) else 0
        parts = select_and_split(sample, model.target, fraction, seed, method=split)
        _say_split(say, parts, model.target)
        if split == "paper":
            model.set_params(validation_fraction=0.0)
        model.fit(parts.train, checkpoint_dir=checkpoint_dir, resume=resume)
        if parts.valid is not None and (ensemble or model.network_.has_variance_head):
            # fit saw no held-out galaxy: calibrate the error bars on the paper's
            # validation galaxies, which the network never trained on
            model.calibrate_uncertainty(parts.valid)
    else:
        # the held-out count does not depend on the seed: check it before training
        whole = select_and_split(sample, model.target, fraction, 0)
        _say_split(say, whole, model.target)
        selected = whole.train if whole.valid is None else sample.select(whole.target)
        model.fit(selected, checkpoint_dir=checkpoint_dir, resume=resume)
        if whole.valid is None:
            parts = whole
        else:
            # the galaxies fit held out: split_positions with the seed it used
            train, valid = selected.split(fraction, seed=model.seed_)
            if len(valid) != model.n_valid_:
                raise RuntimeError(f"fit held out {model.n_valid_} galaxies, the split "
                                   f"rule gives {len(valid)}")
            parts = Split(whole.target, whole.n_total, train, valid,
                          whole.target.values(valid.catalog))
    model.save(output)
    scores = None if parts.valid is None else score_model(model, parts.valid, parts.truth)
    return TrainResult(model, parts, scores, output, split, fraction,
                       round(time.perf_counter() - t0, 3))


def _say_split(say, split, target):
    say(f"{split.n_selected} of {split.n_total} galaxies pass the cuts of target "
        f"{target!r}" + (f": holding out {len(split.valid)}" if split.valid is not None
                          else ": no hold-out"))


def precision_name(dtype):
    """``"fp32"``, ``"bf16"`` or ``"fp16"`` for a model's ``autocast_dtype_``."""
    if dtype is None:
        return "fp32"
    return {"torch.bfloat16": "bf16", "torch.float16": "fp16"}.get(str(dtype), str(dtype))


def versions():
    """Versions of sfnet and its main dependencies (for provenance in metrics.json)."""
    import astropy
    import torch
    import torchvision

    import sfnet

    return {"sfnet": sfnet.__version__, "torch": torch.__version__,
            "torchvision": torchvision.__version__, "astropy": astropy.__version__,
            "numpy": np.__version__, "python": platform.python_version()}


def train_metrics(result):
    """The content of ``metrics.json`` of ``sfnet train`` for a `TrainResult`.

    The keys follow ``sfnet demo``'s metrics.json where they overlap:
    ``target``, ``rmse``/``nmad``/``bias``/``r2`` (of a single-column target;
    every column's under ``metrics``), ``n_selected``, ``n_train``,
    ``n_valid``, ``k``, ``epochs``, ``best_epoch``, ``batch_size``,
    ``image_size``, ``seed``, ``device``, ``precision``, ``seconds`` and
    ``versions``; plus ``split``, ``validation_fraction``, ``keep_epoch``,
    ``n_galaxies`` (before the cuts) and ``params`` (the estimator's).

    Parameters
    ----------
    result : `TrainResult`

    Returns
    -------
    dict
        JSON-ready (see ``sfnet._io.json_safe``).
    """
    model, split, scores = result.model, result.split, result.scores
    per_target = {} if scores is None else {
        name: {key: (int(v) if key == "n" else float(v)) for key, v in m.items()}
        for name, m in scores.metrics.items()}
    metrics = {"target": split.target.name, "target_columns": list(model.target_names),
               "units": [str(u) for u in model.target_units_], "metrics": per_target}
    if len(per_target) == 1:
        ((name, m),) = per_target.items()
        metrics.update(target_column=name, unit=str(model.target_units_[0]),
                       rmse=m["rmse"], nmad=m["nmad"], bias=m["bias"], r2=m["r2"])
    params = model.get_params()
    image_size = model.image_size  # None: the images' own size
    # an ensemble's training details are its first member's (all members share them)
    fitted = model.members_[0] if hasattr(model, "members_") else model
    if image_size is None and getattr(fitted, "input_shape_", None) is not None:
        image_size = int(fitted.input_shape_[0])
    n_valid = 0 if split.valid is None else len(split.valid)
    metrics.update({
        "split": result.method,
        "validation_fraction": float(result.validation_fraction),
        "n_galaxies": int(split.n_total), "n_selected": int(split.n_selected),
        "n_train": int(len(split.train)), "n_valid": int(n_valid),
        "k": int(model.k), "epochs": int(model.epochs), "best_epoch": fitted.best_epoch_,
        "keep_epoch": model.keep_epoch, "batch_size": int(model.batch_size),
        "image_size": image_size, "seed": int(model.seed_),
        "device": str(fitted.device_), "precision": precision_name(fitted.autocast_dtype_),
        "seconds": result.seconds, "versions": versions(), "model_dir": ".",
        "params": {k: (v if isinstance(v, (int, float, str, bool, type(None))) else repr(v))
                   for k, v in params.items()},
    })
    return metrics


# --------------------------------------------------------------------------- apply
def load_model(path, *, device="auto", precision="auto"):
    """`SparseFeatureNet.load` of MODEL (`SparseFeatureEnsemble.load` of an ensemble
    directory), with a clear error when it is no model directory."""
    from . import SparseFeatureEnsemble, SparseFeatureNet
    from .ensemble import ENSEMBLE_META

    path = Path(path)
    if not path.is_dir():
        raise FileNotFoundError(f"MODEL {str(path)!r} is not a model directory")
    if (path / ENSEMBLE_META).is_file():
        return SparseFeatureEnsemble.load(path, device=device, precision=precision)
    return SparseFeatureNet.load(path, device=device, precision=precision)


def _fitted_model(model, device, precision):
    """(model, its directory or None) from MODEL or a fitted model."""
    if hasattr(model, "predict_table"):
        return model, None
    return load_model(model, device=device, precision=precision), Path(model)


def write_predictions(model, data, output, *, return_std=False, batch_size=None,
                      device="auto", precision="auto", overwrite=False, progress=True):
    """`SparseFeatureNet.predict_table` of DATA written to ``output``: ``sfnet predict``.

    Parameters
    ----------
    model : path-like or `~sfnet.SparseFeatureNet`
        MODEL (`load_model`) or a fitted model.
    data : path-like or `~sfnet.GalaxySample`
        DATA (`load_data`) or a sample.
    output : path-like
        ``.ecsv``, ``.fits`` or ``.csv`` file, checked before any work and
        written atomically.
    return_std, batch_size
        As in `SparseFeatureNet.predict_table`.
    device, precision : str, optional
        Where a MODEL path is loaded (`SparseFeatureNet.load`).
    overwrite : bool, optional
        Replace an existing ``output`` (refused otherwise, before any work).
    progress : bool, optional
        Progress bars.

    Returns
    -------
    `~astropy.table.QTable`
        The table written.
    """
    from ._tables import table_format, write_prediction_table

    table_format(output, "output")  # validate before any work
    check_output_file(output, "output", overwrite=overwrite)
    model, model_path = _fitted_model(model, device, precision)
    model.progress = progress
    sample = data if hasattr(data, "catalog") else load_data(data, progress=progress)
    table = model.predict_table(sample, return_std=return_std, batch_size=batch_size)
    if model_path is not None:
        table.meta["model"] = str(model_path.resolve())
    if not hasattr(data, "catalog"):
        table.meta["data"] = str(Path(data).resolve())
    write_prediction_table(table, output, argument="output")
    return table


def write_interpretation(model, data, output, *, all_galaxies=False, max_galaxies=None,
                         seed=0, max_features=12, device="auto", precision="auto",
                         overwrite=False, progress=True, say=_quiet):
    """The interpretation report of a fitted model on DATA: ``sfnet interpret``.

    Parameters
    ----------
    model : path-like or `~sfnet.SparseFeatureNet`
        MODEL (`load_model`) or a fitted model.
    data : path-like or `~sfnet.GalaxySample`
        DATA (`load_data`) or a sample.
    output : path-like
        Report directory (checked before any work): new, empty or an earlier
        report (``report.html``); any directory with ``overwrite``.
    all_galaxies : bool, optional
        Keep the galaxies failing the model's target cuts (kept anyway, with
        a warning, when the catalog lacks the target's columns).
    max_galaxies : int, optional
        Interpret a random subset of this many galaxies (seeded by ``seed``).
    max_features : int, optional
        As in `sfnet.interpret.write_report`.
    device, precision : str, optional
        Where a MODEL path is loaded (`SparseFeatureNet.load`).
    overwrite : bool, optional
        Write into a non-empty ``output`` that is not a report.
    progress : bool, optional
        Progress bars.
    say : callable, optional
        Called with one line of text before the report is written.

    Returns
    -------
    `~pathlib.Path`
        The path of ``report.html``.
    """
    from .interpret import write_report

    output = check_output_dir(output, marker=REPORT_FILE, what="an sfnet report",
                              overwrite=overwrite)
    model = _fitted_model(model, device, precision)[0]
    model.progress = progress
    sample = data if hasattr(data, "catalog") else load_data(data, progress=progress)
    target = model.target_
    if not all_galaxies:
        if all(c in sample.catalog.colnames for c in target.required):
            sample = sample.select(target)
        else:
            log.warning("the catalog lacks columns of target %r: interpreting all galaxies",
                        target.name)
    if len(sample) == 0:
        raise ValueError(f"no galaxy in {data} passes the cuts of target {target.name!r} "
                         "(use --all-galaxies)")
    if max_galaxies is not None and len(sample) > max_galaxies:
        rows = np.sort(np.random.default_rng(seed).choice(len(sample), max_galaxies,
                                                          replace=False))
        sample = sample[rows]
    say(f"interpreting {len(sample)} galaxies")
    return write_report(model, sample, output, max_features=max_features)
