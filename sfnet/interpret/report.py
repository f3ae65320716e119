"""A static HTML report on a fitted SFNet and the features it uses: `write_report`.

`write_report` writes ``report.html`` plus PNG figures in ``figures/`` and a
``features.csv`` table beside it.  The page has no JavaScript, loads nothing
from the network and links its figures relatively, so the directory can be
zipped, mailed or served as it is.

It runs in named steps: check the inputs (nothing is written before), analyse
(`ReportData`: statistics, correlations, truth and metrics, computed once),
build the sections (`sfnet.interpret._report_sections`, which also writes the
figures), render them with the jinja2 templates in ``templates/`` (autoescape
on: every title, column name and value is escaped) and write the files.
"""

import datetime
import functools
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from .._io import atomic_path, atomic_write_text, check_output_dir
from .._utils import regression_metrics
from .._validation import check_float, check_int
from ._core import as_activations, check_length, get_catalog, head_of
from ._report_sections import GROUND_TRUTH_LATENTS, FigureWriter, build_sections
from .bpt import has_line_errors, has_line_fluxes, bpt_class, line_ratios
from .stats import feature_correlations, feature_stats

__all__ = ["write_report"]

#: The normalisation of the report's feature-feature correlation figure (see
#: `sfnet.interpret.feature_correlation_matrix`); its caption says which.
CORRELATION_NORMALIZE = None


def write_report(model, sample, output_dir, *, activations=None, metrics=None,
                 max_features=12, n_examples=9, n_localization=6, n_stability=500,
                 other_models=None, n_interventions=100, intervention_latents=None,
                 title=None, dpi=130):
    """Write a static HTML report on a fitted SFNet and its active features.

    The page has a model card (k, backbone, target, training history, metrics),
    the prediction quality (with the model's error bars and their calibration),
    the stability of the explanations under flips, rotations and pixel noise,
    how unlike the training galaxies the galaxies are (the out-of-distribution
    scores against the flag threshold and the most unusual galaxies, for a model
    with the statistics), an overview of all active features (frequency, head
    weight, correlation with metallicity, mass, SFR, sSFR, BPT ratios and
    redshift; the feature density, feature-feature and feature-property
    correlation figures; the ablation curve) and then one section per active
    feature, most frequent first: its weight and typical contribution, the
    correlation with each property, where its galaxies sit on the BPT diagram
    with the top galaxies, activation vs the most correlated property, and
    localisation maps.

    Parameters
    ----------
    model : SparseFeatureNet
        A fitted model.
    sample : GalaxySample
        Galaxies to interpret (typically the validation set).
    output_dir : str or path-like
        Directory to write ``report.html``, ``figures/*.png`` and ``features.csv``
        into (created if needed; files of an earlier report are replaced).
    activations : array-like, shape (N, n_features), optional
        Precomputed ``model.activations(sample)``.
    metrics : dict, optional
        Shown under "Performance": ``{target: {"rmse": ..., ...}}`` (as from
        ``model.evaluate``) and/or flat ``{name: value}`` entries.  Default: the
        metrics of the predictions on ``sample``, computed from the activations.
    max_features : int, optional
        Number of per-feature sections (most frequent features first).
    n_examples : int, optional
        Top galaxies shown per feature.
    n_localization : int, optional
        Galaxies with localisation maps per feature (0 to skip the maps).
    n_stability : int, optional
        Galaxies (the first of ``sample``) on which `activation_stability` and
        `feature_stability` are measured (0 to skip; they cost 9 forward passes
        of those galaxies).
    other_models : list of SparseFeatureNet, optional
        Other fits of the same model (e.g. other seeds): the ground-truth
        section shows how many of this model's features each reproduces.
    n_interventions : int, optional
        Mock galaxies rendered per latent value for the intervention
        responses (0 to skip them); three values per latent, the 10/50/90 %
        quantiles of the latent in ``sample``.
    intervention_latents : list of str, optional
        Latents (`sfnet.datasets.MOCK_LATENTS`) intervened on; default
        ``colour_gradient``, ``inclination`` and ``bt``.
    title : str, optional
        Page title.
    dpi : int, optional
        Resolution of the PNG figures.

    Returns
    -------
    path : `pathlib.Path`
        Path of ``report.html``.

    Examples
    --------
    >>> from sfnet import SparseFeatureNet
    >>> from sfnet.datasets import make_mock_galaxies
    >>> from sfnet.interpret import write_report
    >>> train = make_mock_galaxies(4000, seed=1).select("metallicity")  # doctest: +SKIP
    >>> model = SparseFeatureNet(k=4, epochs=10).fit(train)           # doctest: +SKIP
    >>> valid = make_mock_galaxies(1000, seed=2)                      # doctest: +SKIP
    >>> write_report(model, valid, "sfnet-report")                    # doctest: +SKIP
    PosixPath('sfnet-report/report.html')
    """
    acts = _check_inputs(model, sample, output_dir, activations, metrics, title, dpi,
                         max_features=max_features, n_examples=n_examples,
                         n_localization=n_localization, n_stability=n_stability,
                         n_interventions=n_interventions)
    other_models = _check_other_models(other_models)
    intervention_latents = _check_latents(intervention_latents)
    output_dir = Path(output_dir)
    data = _analyse(model, sample, acts, metrics, max_features=max_features,
                    n_examples=n_examples, n_localization=n_localization,
                    n_stability=n_stability, other_models=other_models,
                    n_interventions=n_interventions,
                    intervention_latents=intervention_latents)
    sections = build_sections(data, FigureWriter(output_dir, dpi))
    page = _render(data, sections, title)
    _write_features_csv(data, output_dir / data.csv_name)
    path = output_dir / "report.html"
    atomic_write_text(path, page)
    return path


# --------------------------------------------------------------------------- checks

def _check_inputs(model, sample, output_dir, activations, metrics, title, dpi, **counts):
    """Validate everything before anything is written; the dense activations."""
    if not hasattr(model, "head_weights") or not hasattr(model, "n_features"):
        raise TypeError("model must be a fitted SparseFeatureNet")
    n_features = int(model.n_features)
    if not hasattr(sample, "images") or not hasattr(sample, "catalog"):
        raise TypeError(f"sample must be a GalaxySample, got {type(sample).__name__}")
    if len(sample) == 0:
        raise ValueError("sample is empty")
    for name, v in counts.items():
        check_int(v, name, minimum=0)
    acts = None
    if activations is not None:
        acts = as_activations(activations, n_features)
        check_length(acts.shape[0], len(sample), "the sample")
    check_output_dir(output_dir, "output_dir")
    check_float(dpi, "dpi", minimum=0, strict_min=True)
    if metrics is not None and not isinstance(metrics, dict):
        raise TypeError(f"metrics must be a dict, got {type(metrics).__name__}")
    if title is not None and not isinstance(title, str):
        raise TypeError(f"title must be a string, got {type(title).__name__}")
    if acts is None:
        acts = as_activations(model.activations(sample), n_features)
        check_length(acts.shape[0], len(sample), "the sample")
    return acts


def _check_other_models(other_models):
    if other_models is None:
        return ()
    if hasattr(other_models, "activations"):
        other_models = [other_models]
    try:
        other_models = tuple(other_models)
    except TypeError:
        raise TypeError("other_models must be a list of fitted SparseFeatureNet, got "
                        f"{type(other_models).__name__}") from None
    for m in other_models:
        if not hasattr(m, "activations") or not hasattr(m, "n_features"):
            raise TypeError("other_models must hold fitted SparseFeatureNet, got "
                            f"{type(m).__name__}")
    return other_models


def _check_latents(latents):
    if latents is None:
        return GROUND_TRUTH_LATENTS
    if isinstance(latents, str):
        latents = [latents]
    latents = tuple(latents)
    from ..datasets import MOCK_LATENTS

    for name in latents:
        if name not in MOCK_LATENTS:
            raise ValueError(f"intervention_latents must name latents of "
                             f"sfnet.datasets.MOCK_LATENTS {MOCK_LATENTS}, got {name!r}")
    return latents


# --------------------------------------------------------------------------- analysis

@dataclass
class ReportData:
    """Everything the sections show, computed once from the model, sample and activations."""

    model: object
    sample: object
    catalog: object
    acts: np.ndarray
    w: np.ndarray              # head weights (T, n_features)
    b: np.ndarray              # head bias (T,)
    names: list                # target names
    target: object             # the model's Target, or None
    y: object                  # truth (N, T), NaN where the target's cuts fail; or None
    pred: np.ndarray           # predictions from the activations and the head (N, T)
    metrics: dict
    stats: object              # feature_stats table
    alive: np.ndarray          # active features, most frequent first
    corr: object               # feature_correlations table of the active features
    has_lines: bool            # the catalog has the four BPT line fluxes
    classes: object            # BPT class per galaxy (when has_lines)
    max_features: int
    n_examples: int
    n_localization: int
    n_stability: int = 0
    other_models: tuple = ()   # other fits compared in the ground-truth section
    n_interventions: int = 0   # mock galaxies per latent value for the interventions
    intervention_latents: tuple = GROUND_TRUTH_LATENTS
    std: object = None         # the model's 1-sigma error bars (N, T), or None
    ood: object = None         # the model's out-of-distribution scores (N,), or None
    correlation_normalize: object = CORRELATION_NORMALIZE
    csv_name: str = "features.csv"

    @property
    def props(self):
        """The properties correlated with (those the catalog has)."""
        return self.corr.meta["columns"]

    @property
    def shown(self):
        """The features that get a section of their own."""
        return self.alive[:self.max_features]

    @functools.cached_property
    def stats_row(self):
        return {int(f): i for i, f in enumerate(self.stats["feature"])}

    @functools.cached_property
    def corr_row(self):
        return {int(f): i for i, f in enumerate(self.corr["feature"])}

    @property
    def history(self):
        return list(getattr(self.model, "history_", None) or [])

    @property
    def k(self):
        return getattr(self.model, "k", None)

    @property
    def backbone(self):
        return getattr(self.model, "backbone", None)

    @property
    def target_name(self):
        return getattr(self.target, "name", None) or ", ".join(self.names)


def _analyse(model, sample, acts, metrics, **options):
    """Statistics, correlations, truth, predictions and metrics (`ReportData`)."""
    catalog = get_catalog(sample)
    w, b, names = head_of(model)
    stats = feature_stats(acts)
    alive = np.asarray(stats["feature"][stats["n_active"] > 0], dtype=np.int64)
    target = getattr(model, "target_", None)
    y = _truth(target, catalog)
    pred = acts @ w.T + b
    if metrics is None and y is not None:
        metrics = {name: regression_metrics(y[:, t], pred[:, t])
                   for t, name in enumerate(names)}
    has_lines = has_line_fluxes(catalog)
    classes = None
    if has_lines:
        classes = bpt_class(*line_ratios(
            catalog, min_snr=3.0 if has_line_errors(catalog) else None))
    return ReportData(
        model=model, sample=sample, catalog=catalog, acts=acts, w=w, b=b, names=names,
        target=target, y=y, pred=pred, std=_error_bars(model, sample, pred.shape),
        ood=_ood_scores(model, sample),
        metrics=metrics, stats=stats, alive=alive,
        corr=feature_correlations(sample, acts, alive, model=model),
        has_lines=has_lines, classes=classes, **options)


def _error_bars(model, sample, shape):
    """``model.predict(sample, return_std=True)``'s std as ``(N, T)``, or None without one."""
    network = getattr(model, "network_", None)
    if not getattr(network, "has_variance_head", False) or \
            getattr(model, "uncertainty_", None) is None:
        return None
    _, std = model.predict(sample, return_std=True)
    return np.asarray(std, dtype=np.float64).reshape(shape)


def _ood_scores(model, sample):
    """``model.ood_score(sample)``, or None for a model without the statistics."""
    if getattr(model, "ood_", None) is None:
        return None
    return np.asarray(model.ood_score(sample), dtype=np.float64)


def _truth(target, catalog):
    """``target.truth(catalog)`` (NaN where the cuts fail), or None without the columns."""
    if target is None:
        return None
    try:
        return target.truth(catalog)
    except (ValueError, TypeError, KeyError):
        return None


# --------------------------------------------------------------------------- output

@functools.lru_cache(maxsize=1)
def _environment():
    """The jinja2 environment of the report templates (autoescape on)."""
    import jinja2

    return jinja2.Environment(
        loader=jinja2.PackageLoader("sfnet.interpret", "templates"), autoescape=True,
        undefined=jinja2.StrictUndefined, trim_blocks=True, lstrip_blocks=True,
        keep_trailing_newline=True)


def _render(data, sections, title):
    """The page: the sections rendered into ``templates/report.html.j2``."""
    from .. import __version__

    now = datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%d %H:%M UTC")
    subtitle = [f"k = {data.k}", str(data.backbone), f"{len(data.sample)} galaxies",
                f"{data.stats.meta['n_active_features']} active features",
                f"generated {now} with sfnet {__version__}"]
    return _environment().get_template("report.html.j2").render(
        title=title or f"SFNet report: {data.target_name}", subtitle=subtitle,
        sections=sections)


def _write_features_csv(data, path):
    """The overview table with both correlation coefficients, most frequent first."""
    from astropy.table import join

    table = data.stats[np.isin(data.stats["feature"], data.alive)]
    extra = data.corr.copy()
    extra.remove_columns(["n_active", "fraction_active"])
    table = join(table, extra, keys="feature", join_type="left")
    table = table[np.lexsort((np.asarray(table["feature"]), -np.asarray(table["n_active"])))]
    with atomic_path(path, suffix=".csv") as tmp:
        table.write(tmp, format="ascii.csv", overwrite=True)
