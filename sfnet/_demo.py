"""The pipeline behind ``sfnet demo``: mock -> select -> split -> fit -> evaluate -> interpret.

The select, split, score and baseline steps are `sfnet.workflow`'s; this module
adds the mock, the error bars and stability, the report and ``metrics.json``.
Private module; the command line (`sfnet.cli`) is the public entry point.
"""

import logging
import math
import time
from collections.abc import Callable
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from ._io import check_output_dir
from .workflow import precision_name as _precision_name
from .workflow import reference_scores, score_model, select_and_split, versions

__all__ = ["DEMO_DEFAULTS", "run_demo", "format_summary"]

log = logging.getLogger("sfnet.demo")

#: Defaults of ``sfnet demo``: chosen so that the whole run (generation,
#: training, interpretation) finishes in a few minutes on a 2-core laptop CPU
#: while the SFNet clearly beats the photometric (gradient-boosted trees on the
#: catalog photometry, and a linear fit) and mean-predictor baselines.
#: About a quarter of the mock galaxies pass the metallicity cuts (quenched
#: galaxies, AGN and composites have no MPA-JHU metallicity).
DEMO_DEFAULTS = {
    "output": "sfnet-demo",
    "n_galaxies": 8000,
    "image_size": 64,
    "epochs": 12,
    "k": 4,
    "batch_size": 64,
    "seed": 0,
    "device": "auto",
    "precision": "auto",
}

#: Fraction of the selected galaxies held out to evaluate the model and the baselines.
VALIDATION_FRACTION = 0.2

_TARGET = "metallicity"


@contextmanager
def _timed(seconds, name):
    """Record the wall-clock seconds of the ``with`` block as ``seconds[name]``."""
    t0 = time.perf_counter()
    yield
    seconds[name] = round(time.perf_counter() - t0, 3)


@dataclass
class _DemoRun:
    """The state of one demo run, filled in stage by stage."""

    output: Path
    model: Any
    n_galaxies: int
    image_size: int
    k: int
    epochs: int
    batch_size: int
    seed: int
    progress: bool
    say: Callable[[str], None]
    seconds: dict = field(default_factory=dict)
    t_start: float = field(default_factory=time.perf_counter)
    # _generate
    sample: Any = None
    split: Any = None
    # _evaluate
    name: str = ""
    unit: Any = None
    scores: dict = field(default_factory=dict)
    acts: Any = None
    truth: Any = None
    # _measure_uncertainties
    coverage_68: float = math.nan
    coverage_95: float = math.nan
    std: Any = None
    stability: dict = field(default_factory=dict)
    # _fit_baselines
    references: Any = None

    @property
    def train(self):
        return self.split.train

    @property
    def valid(self):
        return self.split.valid


def _generate(run):
    """Generate the mock, keep the galaxies passing the target cuts, split them."""
    from .datasets import make_mock_galaxies

    n, size, seed = run.n_galaxies, run.image_size, run.seed
    with _timed(run.seconds, "generate"):
        run.say(f"generating {n} mock galaxies ({size}x{size} px, seed {seed})")
        run.sample = make_mock_galaxies(n, image_size=size, seed=seed, progress=run.progress)
        run.split = select_and_split(run.sample, _TARGET, VALIDATION_FRACTION, seed,
                                     min_selected=10,
                                     hint="use more galaxies (--n-galaxies)")


def _fit(run):
    with _timed(run.seconds, "train"):
        run.say(f"training an SFNet (k={run.k}) on {len(run.train)} galaxies for "
                f"{run.epochs} epoch(s)")
        run.model.fit(run.train)


def _evaluate(run):
    """Scores and activations on the held-out galaxies (one pass of the network)."""
    model = run.model
    with _timed(run.seconds, "evaluate"):
        run.say(f"evaluating on {len(run.valid)} held-out galaxies")
        scores = score_model(model, run.valid, run.split.truth)
        run.name = model.target_names[0]
        run.unit = model.target_units_[0]
        run.scores = scores.metrics[run.name]
        run.acts = scores.activations
        run.truth = run.split.truth[:, 0]


def _measure_uncertainties(run):
    """Coverage of the predicted error bars and stability of the explanations."""
    with _timed(run.seconds, "stability"):
        run.say("measuring the error bars and the stability of the explanations")
        from .interpret import activation_stability, coverage

        mean, run.std = run.model.predict(run.valid, return_std=True)
        run.coverage_68, run.coverage_95 = (float(c) for c in
                                            coverage(run.truth, mean, run.std))
        run.stability = activation_stability(run.model, run.valid, seed=run.seed)


def _fit_baselines(run):
    """The mean predictor, the two photometric baselines and the floor."""
    with _timed(run.seconds, "baselines"):
        run.references = reference_scores(run.split, run.sample, seed=run.seed, say=run.say)


def _save_model(run):
    with _timed(run.seconds, "save"):
        run.say(f"saving the model to {run.output / 'model'}")
        run.output.mkdir(parents=True, exist_ok=True)
        run.model.save(run.output / "model")


def _write_report(run, max_features):
    """Write report.html and the figures; return the report's path."""
    refs = run.references
    report_metrics = {run.name: run.scores, "oracle_rmse": refs.floor.sample,
                      "baseline_rmse (mean predictor)": refs.mean_rmse}
    report_metrics["photometric_gbm_rmse (gradient-boosted trees on catalog photometry)"] = \
        refs.photometric_gbm_rmse
    report_metrics["photometric_linear_rmse (linear fit on aperture colours)"] = \
        refs.photometric_linear_rmse
    with _timed(run.seconds, "interpret"):
        run.say(f"interpreting the features: {run.output / 'report.html'}")
        from .interpret import write_report

        return write_report(run.model, run.valid, run.output, activations=run.acts,
                            metrics=report_metrics, max_features=max_features,
                            title="sfnet demo: metallicity of mock SDSS galaxies")


def _accuracy_metrics(run):
    """The accuracy part of metrics.json: the SFNet, the oracle and the baselines."""
    ours, refs = run.scores, run.references
    return {
        "target": _TARGET,
        "target_column": run.name,
        "unit": run.unit,
        "rmse": float(ours["rmse"]),
        "nmad": float(ours["nmad"]),
        "bias": float(ours["bias"]),
        "r2": float(ours["r2"]),
        "oracle_rmse": refs.floor.sample,
        "oracle_rmse_valid": refs.floor.valid,
        "baseline_rmse": refs.mean_rmse,
        "photometric_rmse": refs.photometric_gbm_rmse,
        "photometric_gbm_rmse": refs.photometric_gbm_rmse,
        "photometric_linear_rmse": refs.photometric_linear_rmse,
        "photometric_baseline": refs.details,
        "target_std": float(run.truth.std()),
    }


def _run_metrics(run):
    """The sizes and settings part of metrics.json."""
    return {
        "n_galaxies": int(run.n_galaxies),
        "n_selected": int(run.split.n_selected),
        "n_train": int(len(run.train)),
        "n_valid": int(len(run.valid)),
        "k": int(run.k),
        "epochs": int(run.epochs),
        "best_epoch": run.model.best_epoch_,
        "batch_size": int(run.batch_size),
        "image_size": int(run.image_size),
        "seed": int(run.seed),
    }


def _explanation_metrics(run):
    """The error-bar, stability and active-feature part of metrics.json."""
    active = np.flatnonzero((run.acts != 0).any(axis=0))
    return {
        "coverage_68": run.coverage_68,
        "coverage_95": run.coverage_95,
        "coverage_calibrated_on": run.model.uncertainty_["source"],
        "median_std": float(np.median(run.std)),
        "stability_same_set": float(np.mean(run.stability["same_set_dihedral"])),
        "stability_same_set_noise": float(np.mean(run.stability["same_set_noise"])),
        "n_active_features": int(active.size),
        "n_features": int(run.model.n_features),
        "active_features": active.tolist(),
    }


def _provenance_metrics(run, report, seconds_total):
    """Device, timing, versions and the files written: the last part of metrics.json."""
    return {
        "device": str(run.model.device_),
        "precision": _precision_name(run.model.autocast_dtype_),
        "torch_threads": _torch_threads(),
        "seconds": seconds_total,
        "seconds_per_stage": run.seconds,
        "versions": versions(),
        "model_dir": "model",
        "report": Path(report).name,
        "figures": sorted(p.name for p in (run.output / "figures").glob("*.png")),
    }


def run_demo(output=DEMO_DEFAULTS["output"], *, n_galaxies=DEMO_DEFAULTS["n_galaxies"],
             image_size=DEMO_DEFAULTS["image_size"], epochs=DEMO_DEFAULTS["epochs"],
             k=DEMO_DEFAULTS["k"], batch_size=DEMO_DEFAULTS["batch_size"],
             seed=DEMO_DEFAULTS["seed"], device=DEMO_DEFAULTS["device"],
             precision=DEMO_DEFAULTS["precision"], max_features=12, overwrite=False,
             progress=True, say=None):
    """Run the demo end to end and write its outputs into ``output``.

    Parameters
    ----------
    output : path-like
        Directory for ``metrics.json``, ``model/``, ``figures/`` and ``report.html``:
        new, empty or an earlier demo's (``metrics.json`` or ``model/``); any
        directory with ``overwrite``.
    n_galaxies : int
        Mock galaxies to generate (about a third pass the metallicity cuts).
    image_size, epochs, k, batch_size, seed, device, precision
        As in `~sfnet.datasets.make_mock_galaxies` and `~sfnet.SparseFeatureNet`;
        ``seed`` seeds the mock, the split and the network.
    max_features : int
        Features with their own section in the report.
    overwrite : bool
        Write into a non-empty ``output`` that is not a demo's.
    progress : bool
        Show progress bars.
    say : callable, optional
        Called with one line of text at the start of each stage.

    Returns
    -------
    dict
        The content of ``metrics.json``.
    """
    from . import SparseFeatureNet
    from ._io import atomic_write_json

    say = say or (lambda text: None)
    # an earlier demo, finished (metrics.json) or interrupted after saving its model
    output = check_output_dir(output, marker=("metrics.json", "model"),
                              what="an sfnet demo output", overwrite=overwrite)
    model = SparseFeatureNet(k=k, target=_TARGET, epochs=epochs, batch_size=batch_size,
                             validation_fraction=0.0, device=device, precision=precision,
                             random_state=seed, progress=progress)
    # Validate every parameter before spending minutes on the mock.
    model.validate_params()
    if not isinstance(n_galaxies, int) or n_galaxies < 10:
        raise ValueError(f"n_galaxies must be an integer >= 10, got {n_galaxies!r}")

    run = _DemoRun(output=output, model=model, n_galaxies=n_galaxies, image_size=image_size,
                   k=k, epochs=epochs, batch_size=batch_size, seed=seed, progress=progress,
                   say=say)
    for step in (_generate, _fit, _evaluate, _measure_uncertainties, _fit_baselines,
                 _save_model):
        step(run)
    report = _write_report(run, max_features)
    seconds_total = round(time.perf_counter() - run.t_start, 3)
    metrics = {**_accuracy_metrics(run), **_run_metrics(run), **_explanation_metrics(run),
               **_provenance_metrics(run, report, seconds_total)}
    atomic_write_json(output / "metrics.json", metrics)
    return metrics


def _torch_threads():
    import torch

    return int(torch.get_num_threads())


def _fmt_seconds(s):
    s = float(s)
    if s < 60:
        return f"{s:.0f} s"
    return f"{int(s // 60)} min {s % 60:02.0f} s"


def format_summary(metrics, output):
    """The short table printed at the end of ``sfnet demo``."""
    unit = metrics.get("unit") or ""

    def num(v):
        return "n/a" if v is None or (isinstance(v, float) and not math.isfinite(v)) \
            else f"{v:.4f}"

    rows = [
        (f"SFNet (k={metrics['k']})", metrics["rmse"]),
        ("photometric GBM baseline", metrics.get("photometric_gbm_rmse",
                                                 metrics.get("photometric_rmse"))),
        ("photometric linear baseline", metrics.get("photometric_linear_rmse")),
        ("mean predictor", metrics["baseline_rmse"]),
        ("oracle (hidden scatter)", metrics["oracle_rmse"]),
    ]
    width = max(len(r[0]) for r in rows)
    head = f"RMSE [{unit}]" if unit else "RMSE"
    lines = [
        f"sfnet demo: 12+log(O/H) of {metrics['n_selected']} star-forming mock galaxies "
        f"({metrics['n_train']} train / {metrics['n_valid']} held out), "
        f"{metrics['image_size']} px, {metrics['epochs']} epoch(s), "
        f"{metrics['device']} {metrics['precision']}",
        "",
        f"  {'predictor':<{width}}  {head}",
        f"  {'-' * width}  {'-' * max(len(head), 6)}",
    ]
    lines += [f"  {label:<{width}}  {num(value)}" for label, value in rows]
    gbm = metrics.get("photometric_gbm_rmse")
    if gbm is not None and metrics["rmse"] > 0:
        lines += ["", f"  photometric GBM / SFNet RMSE: {gbm / metrics['rmse']:.2f} "
                      "(real SDSS: 0.130 / 0.085 = 1.5, Wu & Boada 2019)"]
    lines += [
        "",
        f"  NMAD {num(metrics['nmad'])}, bias {metrics['bias']:+.4f}, R^2 {metrics['r2']:.3f}; "
        f"{metrics['n_active_features']} of {metrics['n_features']} features active "
        "on the held-out galaxies",
        f"  time {_fmt_seconds(metrics['seconds'])} ("
        + ", ".join(f"{k} {_fmt_seconds(v)}" for k, v in metrics["seconds_per_stage"].items())
        + ")",
        f"  wrote {Path(output) / 'metrics.json'}, {Path(output) / 'model'}/, "
        f"{Path(output) / 'report.html'}, {Path(output) / 'figures'}/ "
        f"({len(metrics['figures'])} figures)",
    ]
    return "\n".join(lines)
