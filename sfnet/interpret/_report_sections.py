"""The sections of the HTML report written by `sfnet.interpret.write_report`.

The page is a list of `Section` objects.  Each is built by one function of
`SECTIONS` (in page order) from the analysed report (``data``, the
``ReportData`` of `sfnet.interpret.report`) and a `FigureWriter`, and is
rendered by the macro of the same ``kind`` in ``templates/sections.html.j2``.
Adding a section to the report -- a calibration figure, a stability table --
is one builder function here (listed in `SECTIONS`) and one macro there.

Everything a builder puts into a Section is text that the template escapes,
except `markupsafe.Markup` values: the HTML labels of `sfnet.catalog`'s
properties and fixed phrases built with ``Markup(...).format(...)``, which
escapes what is inserted.
"""

import io
from pathlib import Path

import numpy as np
from markupsafe import Markup

from .._io import atomic_write_bytes
from ..catalog import PROPERTIES, property_label
from . import plots
from .bpt import BPT_CLASSES
from .stats import ablation

#: Shown for a missing or non-finite number.
DASH = "\u2013"


class Section:
    """One block of the report page.

    Parameters
    ----------
    kind : str
        Name of the macro in ``templates/sections.html.j2`` that renders it.
    anchor : str, optional
        ``id`` of the block in the page.
    nav : str, optional
        Title of its link in the navigation bar (none when omitted).
    **fields
        What the macro shows, as attributes.
    """

    def __init__(self, kind, *, anchor=None, nav=None, **fields):
        self.kind = kind
        self.anchor = anchor
        self.nav = nav
        self.__dict__.update(fields)


class FigureWriter:
    """Saves figures atomically as PNG into ``output_dir/figures``; remembers their names."""

    def __init__(self, output_dir, dpi):
        self.dir = Path(output_dir) / "figures"
        self.dpi = dpi
        self.written = []

    def add(self, fig, name, caption, alt, wide=False):
        """Write ``fig`` as ``figures/<name>``; return what the ``figure`` macro shows."""
        buf = io.BytesIO()
        fig.savefig(buf, format="png", dpi=self.dpi, facecolor="white")
        atomic_write_bytes(self.dir / name, buf.getvalue())
        self.written.append(name)
        return {"src": f"figures/{name}", "caption": caption, "alt": alt, "wide": wide}


# --------------------------------------------------------------------------- formatting

def number(v, fmt="{:.3f}"):
    """``v`` formatted, `DASH` when not finite, ``str(v)`` when not a number."""
    try:
        v = float(v)
    except (TypeError, ValueError):
        return str(v)
    return fmt.format(v) if np.isfinite(v) else DASH


def heat_style(v):
    """Inline CSS colouring a correlation coefficient (cmasher fusion_r); "" if not finite."""
    if v is None or not np.isfinite(v):
        return ""
    import cmasher  # noqa: F401  (registers the cmr. colour maps)
    import matplotlib

    r, g, b, _ = matplotlib.colormaps["cmr.fusion_r"](0.5 + 0.5 * float(np.clip(v, -1, 1)))
    fg = "#fff" if abs(v) > 0.6 else "#000"
    return f"background:rgb({int(255 * r)},{int(255 * g)},{int(255 * b)});color:{fg}"


def coefficient(v, fmt="{:+.3f}"):
    """A table cell for a correlation coefficient: its text and background."""
    return {"text": number(v, fmt), "style": heat_style(v)}


def html_label(name):
    """The HTML label of a property of `sfnet.catalog`; any other name as plain text."""
    if name in PROPERTIES:
        return Markup(property_label(name, html=True))
    return str(name)


def _metric(value):
    if value is None:
        return ""
    if isinstance(value, (bool, np.bool_)):
        return str(value)
    if isinstance(value, (int, np.integer)):
        return f"{int(value):d}"
    if isinstance(value, (float, np.floating)):
        return number(value, "{:.4f}")
    return str(value)


def metrics_tables(metrics):
    """``{target: {metric: v}}`` as a table and flat ``{name: v}`` entries as key-value rows."""
    nested = {k: v for k, v in (metrics or {}).items() if isinstance(v, dict)}
    flat = [(str(k), _metric(v)) for k, v in (metrics or {}).items()
            if not isinstance(v, (dict, list, tuple))]
    keys = ["rmse", "nmad", "bias", "r2", "n"]
    extra = sorted({k for v in nested.values() for k in v} - set(keys))
    keys = [k for k in keys if any(k in v for v in nested.values())] + extra
    return {
        "head": [k.upper() if k != "r2" else "R²" for k in keys],
        "rows": [(str(name), [_metric(vals.get(k)) for k in keys])
                 for name, vals in nested.items()],
        "flat": flat,
    }


# --------------------------------------------------------------------------- model card

def model_card(data, figs):
    """k, backbone, target, training, head bias, all parameters and the training curve."""
    model, history = data.model, data.history
    seconds = sum(float(h.get("seconds", 0) or 0) for h in history)
    rows = [("Target", f"{data.target_name} ({', '.join(data.names)})"),
            ("k (active features per galaxy)", str(data.k)), ("Backbone", str(data.backbone)),
            ("Features in the head", str(model.n_features)),
            ("Epochs trained", str(len(history)) if history else DASH),
            ("Training time", f"{seconds / 60:.1f} min" if seconds else DASH),
            ("Galaxies in this report", str(len(data.sample))),
            ("Bias of the head", ", ".join(f"{v:.4f}" for v in data.b))]
    meta = getattr(data.catalog, "meta", {}) or {}
    if "oracle_rmse" in meta:
        rows.append(("Oracle RMSE of the mock (hidden scatter)",
                     number(meta["oracle_rmse"], "{:.4f}")))
    curve = None
    if history:
        caption = ("Training loss and validation RMSE per epoch; the star marks the best "
                   "validation epoch (the model kept)."
                   if any("valid_rmse" in h for h in history) else
                   "Training loss per epoch (training used no validation split, so the "
                   "last epoch is kept; the metrics below are on held-out galaxies).")
        curve = figs.add(plots.plot_history(history, target_names=data.names),
                         "history.png", caption, "training history")
    return Section("model_card", anchor="model", nav="Model card", rows=rows,
                   params=_parameters(model), history=curve)


def _parameters(model):
    get_params = getattr(model, "get_params", None)
    if not callable(get_params):
        return []
    try:
        params = get_params()
    except (TypeError, ValueError, AttributeError):
        return []
    return [(str(k), str(v)) for k, v in sorted((params or {}).items())]


# --------------------------------------------------------------------------- performance

def performance(data, figs):
    """The metrics; predicted vs true and the ablation curve when the catalog has the truth."""
    section = Section("performance", anchor="performance", nav="Performance",
                      metrics=metrics_tables(data.metrics) if data.metrics else None,
                      truth=data.y is not None and bool(np.isfinite(data.y).any()))
    if not section.truth:
        return section
    section.predictions = figs.add(
        plots.plot_predictions(data.y, data.pred, y_std=data.std, target=data.target),
        "predictions.png",
        "Predicted against true values on the galaxies of this report (dashed: one-to-one; "
        "grey bars: the model's 1-sigma error bars, when it has them), and the residuals.",
        "predictions")
    section.wide_predictions = len(data.names) > 1
    abl = ablation((data.w, data.b), None, data.y, activations=data.acts)
    section.ablation = figs.add(
        plots.plot_ablation(abl), "ablation.png",
        "Ablation: RMSE when only the N most frequently active features are kept (the "
        "others zeroed in the linear head; no re-selection).", "ablation")
    section.ablation_rows = [(str(r["n_kept"]), f"{r['rmse']:.4f}",
                              str(r["n_galaxies_changed"])) for r in abl.top_n]
    return section


# --------------------------------------------------------------------------- features

def features_overview(data, figs):
    """Counts, the table of all active features and the overview figures."""
    meta = data.stats.meta
    shown = {int(f) for f in data.shown}
    rows = []
    for rank, f in enumerate(data.alive, 1):
        s, i = data.stats[data.stats_row[int(f)]], data.corr_row[int(f)]
        rows.append({
            "rank": rank, "feature": int(f), "link": int(f) in shown,
            "n_active": str(s["n_active"]), "fraction": f"{s['fraction_active']:.3f}",
            "mean": number(s["mean_activation"], "{:.3g}"),
            "weights": [f"{data.corr[f'weight_{n}'][i]:+.4f}" for n in data.names],
            "rho": [coefficient(data.corr[f"spearman_{p}"][i], "{:+.2f}")
                    for p in data.props]})
    return Section(
        "features_overview", anchor="features", nav="Features",
        n_active=meta["n_active_features"], n_features=meta["n_features"],
        n_galaxies=meta["n_galaxies"], n_dead=meta["n_dead"],
        mean_active=f"{meta['mean_active_per_galaxy']:.2f}",
        max_active=meta["max_active_per_galaxy"], targets=list(data.names),
        properties=[html_label(p) for p in data.props], rows=rows,
        csv=data.csv_name, figures=_overview_figures(data, figs))


def _overview_figures(data, figs):
    alive = data.alive
    out = [figs.add(plots.plot_feature_density(data.acts), "feature_density.png",
                    "Feature density: how often each feature fires.", "feature density")]
    if len(alive) >= 2:
        out.append(figs.add(
            plots.plot_feature_correlations(data.acts, alive[:30],
                                            normalize=data.correlation_normalize),
            "feature_correlations.png", _correlation_caption(data.correlation_normalize),
            "feature-feature correlations", wide=len(alive) > 12))
    if len(alive) and data.props:
        out.append(figs.add(
            plots.plot_property_correlations(data.sample, data.acts, alive[:30],
                                             model=data.model),
            "property_correlations.png",
            "Spearman \u03c1 between each feature's activation and galaxy properties.",
            "feature-property correlations", wide=True))
    if data.has_lines:
        out.append(figs.add(
            plots.plot_bpt(data.catalog), "bpt.png",
            "BPT diagram of the sample (lines with S/N > 3) with the Kauffmann+03 "
            "(dashed) and Kewley+01 (solid) demarcations.", "BPT diagram"))
    return out


def _correlation_caption(normalize):
    text = ("Pearson correlation between the activations of the active features "
            "(zeros included). ")
    if normalize == "l2":
        return text + ("Each galaxy's activation vector was L2-normalised first "
                       "(normalize=\"l2\"), as in Wu (2025).")
    return text + ("The activations are used as they are (normalize=None); Wu (2025) "
                   "L2-normalised each galaxy's activation vector first, which "
                   "feature_correlation_matrix(normalize=\"l2\") reproduces.")


def feature_sections(data, figs):
    """One section per shown feature, most frequent first."""
    return [_feature_section(data, figs, rank, int(f))
            for rank, f in enumerate(data.shown, 1)]


def _feature_section(data, figs, rank, f):
    i = data.corr_row[f]
    a = data.acts[:, f]
    on = a != 0
    head_rows = []
    for t, name in enumerate(data.names):
        contrib = data.w[t, f] * a[on]
        head_rows.append((name, f"{data.w[t, f]:+.3g}", f"{contrib.mean():+.2g}",
                          f"{contrib.min():+.2g}\u2026{contrib.max():+.2g}"))
    props = [{"label": html_label(p), "pearson": coefficient(data.corr[f"pearson_{p}"][i]),
              "spearman": coefficient(data.corr[f"spearman_{p}"][i]),
              "n": data.corr.meta["n_valid"][p]} for p in data.props]
    side = [figs.add(plots.plot_activation_vs(data.sample, data.acts, f, p, model=data.model),
                     f"feature_{f:04d}_vs_{p}.png",
                     Markup("Activation of feature {} against {}.").format(f, html_label(p)),
                     f"feature {f} vs {p}")
            for p in _most_correlated(data, i)]
    return Section("feature", anchor=f"feature-{f}", nav=f"Feature {f}", feature=f,
                   facts=_facts(data, rank, a, on), head_rows=head_rows, props=props,
                   side=side, top=_top_galaxies(data, figs, f),
                   localization=_localization(data, figs, f))


def _facts(data, rank, a, on):
    n_on = int(on.sum())
    facts = [Markup("rank <b>{}</b> by frequency").format(rank),
             Markup("active in <b>{}</b> galaxies ({:.1f}%)").format(n_on, 100 * n_on / len(a)),
             Markup("mean activation <b>{:.3g}</b>, max {:.3g}").format(a[on].mean(), a.max())]
    if data.has_lines:
        cls = data.classes[on]
        known = cls != "unclassified"
        if known.any():
            everyone = data.classes[data.classes != "unclassified"]
            frac = ", ".join(f"{100 * np.mean(cls[known] == c):.0f}% {c}" for c in BPT_CLASSES)
            base = ", ".join(f"{100 * np.mean(everyone == c):.0f}%" for c in BPT_CLASSES)
            facts.append(Markup("BPT classes of its galaxies: <b>{}</b> (whole sample: {})")
                         .format(frac, base))
    return facts


def _most_correlated(data, i):
    """The two properties most correlated with feature row ``i`` (the target's first)."""
    sp = np.array([data.corr[f"spearman_{p}"][i] for p in data.props], dtype=float)
    strength = np.where(np.isfinite(sp), np.abs(sp), -1.0)
    best = [data.props[j] for j in np.argsort(-strength, kind="stable") if strength[j] >= 0]
    if getattr(data.target, "name", None) == "metallicity" and "metallicity" in best:
        best.remove("metallicity")
        best.insert(0, "metallicity")
    return best[:2]


def _top_galaxies(data, figs, f):
    if not data.n_examples:
        return None
    if data.has_lines:
        fig = plots.plot_bpt(data.sample, data.acts, f, n_examples=data.n_examples)
        caption = (f"Left: BPT position of the galaxies where feature {f} is active, "
                   "coloured by normalised activation (grey: all galaxies). Right: its "
                   "top galaxies, numbered as circled on the diagram.")
    else:
        fig = plots.plot_max_activating(data.sample, data.acts, f, n=data.n_examples)
        caption = f"The galaxies with the largest activation of feature {f}."
    return figs.add(fig, f"feature_{f:04d}_top.png", caption, f"feature {f} top galaxies")


def _localization(data, figs, f):
    if not data.n_localization or not hasattr(data.model, "feature_maps"):
        return None
    fig = plots.plot_localization(data.model, data.sample, f, n=data.n_localization,
                                  activations=data.acts)
    return figs.add(
        fig, f"feature_{f:04d}_localization.png",
        f"Where feature {f} fires: the layer4 channel map that it averages, upsampled onto "
        "the image the network sees (top: contours at 25/50/75% of the largest value "
        "shown; bottom: the map on a common scale).", f"feature {f} localisation")


# --------------------------------------------------------------------------- trust

def trust(data, figs):
    """Calibration of the error bars and stability of the active sets; None if neither."""
    if data.std is None and not data.n_stability:
        return None
    section = Section("trust", anchor="trust", nav="Error bars", targets=list(data.names),
                      calibration=None, stability_rows=None, feature_rows=None)
    if data.std is None:
        section.calibration_note = ("This model has no variance head (e.g. a seed "
                                    "checkpoint), so it gives no error bars.")
    elif data.y is None or not np.isfinite(data.y).any():
        section.calibration_note = "The catalog lacks the targets; coverage cannot be measured."
    else:
        _calibration(section, data, figs)
    if data.n_stability:
        _stability(section, data)
    return section


#: How the note under the coverage table names the galaxies the error bars were scaled on.
_CALIBRATED_ON = {
    "validation": "the error bars were scaled on the fit's held-out validation galaxies",
    "validation-B": "the error bars were scaled on half of the fit's held-out galaxies; "
                    "the other half selected the epoch",
    "training": "the error bars were scaled on the training galaxies, so they are likely "
                "too small for galaxies the model has not seen",
    "calibrate": "the error bars were scaled on the galaxies given to "
                 "calibrate_uncertainty",
}


def _calibration(section, data, figs):
    from .calibration import ONE_SIGMA, coverage_table

    recorded = getattr(data.model, "uncertainty_", None) or {}
    source = recorded.get("calibrated_on", recorded.get("source"))
    section.calibration_note = _CALIBRATED_ON.get(
        source, "the error bars' calibration set is not recorded")
    section.calibration = figs.add(
        plots.plot_calibration(data.y, data.pred, data.std, names=list(data.names)),
        "calibration.png", "Calibration of the 1-sigma error bars: observed against nominal "
        "coverage, and the distribution of (true - predicted) / sigma (a unit Gaussian "
        "when calibrated).", "calibration", wide=True)
    table = coverage_table(data.y, data.pred, data.std, nominal=(ONE_SIGMA, 0.9, 0.95, 0.99),
                           names=list(data.names))
    section.coverage_rows = [
        (f"{100 * r['nominal']:.1f}%", f"{r['z']:.2f}",
         [f"{100 * r[f'coverage_{n}']:.1f}%" for n in data.names]) for r in table]
    _coverage_by(section, data, figs)


#: The quantities the report bins the coverage by: (label, catalog column or None
#: for a derived quantity, key).  Each shown when the catalog has it.
#: (name, catalog column or None, axis label) of the coverage-by-bin figures.
COVERAGE_BY = (("stellar mass", "lgm_tot_p50", "log stellar mass [M$_\\odot$]"),
               ("redshift", "z", "redshift z"),
               ("petroMag_r", "petroMag_r", "petroMag_r [mag]"),
               ("min BPT line S/N", None, "lowest S/N of the four BPT lines"),
               ("predicted sigma", None, "predicted 1σ (the target's units)"))


def _coverage_by_values(data, label, column):
    """The ``by`` array of one `COVERAGE_BY` row for the report's galaxies, or None."""
    cat = data.catalog
    if column is not None:
        if cat is None or column not in cat.colnames:
            return None
        return np.asarray(cat[column], dtype=np.float64)
    if label == "predicted sigma":
        return None  # per target, see _coverage_by
    from .bpt import LINE_ERROR_COLUMNS, LINE_FLUX_COLUMNS, has_line_errors, has_line_fluxes

    if cat is None or not (has_line_fluxes(cat) and has_line_errors(cat)):
        return None
    with np.errstate(divide="ignore", invalid="ignore"):
        sn = [np.asarray(cat[f], dtype=np.float64) / np.asarray(cat[e], dtype=np.float64)
              for f, e in zip(LINE_FLUX_COLUMNS, LINE_ERROR_COLUMNS)]
    return np.min(sn, axis=0)


def _coverage_by(section, data, figs):
    """Coverage in bins of mass, redshift, magnitude, line S/N and predicted sigma."""
    from .calibration import ONE_SIGMA, coverage_by

    section.coverage_by_rows = []
    section.coverage_by_figures = []
    for j, name in enumerate(data.names):
        for label, column, axis in COVERAGE_BY:
            by = data.std[:, j] if label == "predicted sigma" else \
                _coverage_by_values(data, label, column)
            if by is None:
                continue
            ok = np.isfinite(by) & np.isfinite(data.y[:, j])
            if ok.sum() < 20:  # too few galaxies for bins with a meaningful coverage
                continue
            table = coverage_by(data.y[ok, j], data.pred[ok, j], data.std[ok, j], by=by[ok],
                                bins=5)
            worst = int(np.nanargmax(np.abs(np.asarray(table["coverage_68"]) - ONE_SIGMA)))
            r = table[worst]
            section.coverage_by_rows.append((
                name, label, f"{r['bin_lo']:.3g} – {r['bin_hi']:.3g}", int(r["n"]),
                f"{100 * r['coverage_68']:.1f}% ({100 * r['coverage_68_lo']:.0f}–"
                f"{100 * r['coverage_68_hi']:.0f}%)", f"{r['std_scale']:.2f}"))
            slug = "".join(c if c.isalnum() else "_" for c in f"{name}_{label}")
            section.coverage_by_figures.append(figs.add(
                plots.plot_coverage_by(table=table, label=axis, title=f"{name} by {label}"),
                f"coverage_by_{slug}.png",
                f"Coverage of the {name} error bars in five bins of {label} (equal numbers "
                "of galaxies), with 95% Wilson intervals, and the factor each bin's sigma "
                "would need (1 = calibrated).", f"coverage of {name} by {label}"))


def _stability(section, data):
    from .stability import stability_tables

    sub = data.sample[:data.n_stability]
    per_galaxy, per_feature = stability_tables(data.model, sub)
    section.n_stability = len(sub)
    section.noise_dn = per_galaxy.meta.get("noise_dn", 1)
    section.stability_rows = [
        ("Same active set under all 8 flips/rotations",
         f"{100 * np.mean(per_galaxy['same_set_dihedral']):.1f}% of galaxies"),
        ("Mean Jaccard similarity under flips/rotations",
         number(np.mean(per_galaxy["jaccard_dihedral"]))),
        ("Same active set with pixel noise",
         f"{100 * np.mean(per_galaxy['same_set_noise']):.1f}% of galaxies"),
        ("Mean Jaccard similarity with pixel noise",
         number(np.mean(per_galaxy["jaccard_noise"]))),
        ("Model symmetry", str(getattr(data.model, "symmetry", None)))]
    shown = {int(f) for f in data.shown}
    section.feature_rows = [
        (int(r["feature"]), int(r["n_active"]), number(r["stay_dihedral"], "{:.2f}"),
         number(r["stay_noise"], "{:.2f}"))
        for r in per_feature if int(r["feature"]) in shown]


# --------------------------------------------------------------------------- outliers

#: How the outlier section names the galaxies that set the threshold.
_THRESHOLD_FROM = {
    "validation": "the fit's held-out validation galaxies",
    "training": "the training galaxies (the fit had no validation split), so more than "
                "1% of new galaxies like them are flagged",
}


def outliers(data, figs):
    """The out-of-distribution scores against the threshold and the most unusual
    galaxies; a note for a model without the statistics."""
    stats = getattr(data.model, "ood_", None)
    if data.ood is None or stats is None:
        return Section("outliers", anchor="outliers", nav="Outliers", figure=None, rows=None,
                       text="This model has no out-of-distribution statistics (e.g. a seed "
                            "checkpoint or an older save), so it gives no ood_score.")
    scores, threshold = data.ood, stats.threshold
    n_show = min(data.n_examples or 6, 9, len(scores))
    fig = plots.plot_ood(scores, threshold, sample=data.sample, n=n_show)
    figure = figs.add(
        fig, "ood.png",
        f"Left: out-of-distribution scores of the {len(scores)} galaxies of this report "
        "(the Mahalanobis distance of their pooled features from the training galaxies') "
        f"against the flag threshold. Right: the {n_show} highest scores, numbered by rank "
        "(red titles: flagged).", "out-of-distribution scores", wide=True)
    flagged = scores > threshold
    order = np.argsort(-scores, kind="stable")[:n_show]
    ids = (np.asarray(data.catalog["objID"]) if data.catalog is not None
           and "objID" in data.catalog.colnames else None)
    rows = [(rank + 1, str(ids[i]) if ids is not None else str(int(i)), number(scores[i]),
             "yes" if flagged[i] else "no") for rank, i in enumerate(order)]
    percentile = f"{stats.percentile:g}"
    return Section(
        "outliers", anchor="outliers", nav="Outliers", figure=figure, rows=rows,
        id_name="objID" if ids is not None else "row",
        text=(f"{int(flagged.sum())} of {len(scores)} galaxies "
              f"({100 * flagged.mean():.1f}%) score above the threshold "
              f"{threshold:.3g}, the {percentile}th percentile of the scores of "
              f"{_THRESHOLD_FROM.get(stats.source, 'an unrecorded set of galaxies')}; "
              f"galaxies like the training set would put about {100 - stats.percentile:g}% "
              "there. The score flags images unlike any training galaxy (noise, empty sky, "
              "another pixel scale); it does not say whether a prediction is right."))


# --------------------------------------------------------------------------- ground truth

#: Latents intervened on by the report's ground-truth section (by default).
GROUND_TRUTH_LATENTS = ("colour_gradient", "inclination", "bt")
#: Interventions are rendered only for models that take images of at most this many pixels.
INTERVENTION_MAX_SIZE = 64
#: Features of the model whose intervention responses are shown.
INTERVENTION_FEATURES = 5


def ground_truth(data, figs):
    """Features against the mock's known latents, interventions and seed agreement."""
    from .latents import LATENT_PREFIX

    has_latents = any(c.startswith(LATENT_PREFIX) for c in data.catalog.colnames)
    section = Section("ground_truth", anchor="ground-truth", nav="Ground truth",
                      has_latents=has_latents, recovery=None, summary=None, recovery_note="",
                      interventions=None, intervention_note="", seeds=None,
                      seed_note="")
    if has_latents:
        _recovery(section, data)
        _interventions(section, data)
    if data.other_models:
        _seed_agreement(section, data)
    else:
        section.seed_note = ("Seed agreement needs other fits of the same model (e.g. other "
                             "random_state values): pass write_report(..., other_models=[...]).")
    return section


def _recovery(section, data):
    from .latents import latent_recovery

    try:
        table = latent_recovery(None, data.sample, activations=data.acts,
                                features=data.shown, regressor="gbm", seed=0)
    except ValueError as err:
        section.recovery_note = f"Latent recovery could not be computed: {err}"
        return
    section.recovery_note = ""
    section.summary = [("Disentanglement", number(table.meta["disentanglement"])),
                       ("Completeness", number(table.meta["completeness"])),
                       ("Informativeness", number(table.meta["informativeness"])),
                       ("Features scored", str(len(table))),
                       ("Latents", str(len(table.meta["latents"])))]
    section.recovery = [
        {"feature": int(r["feature"]), "fraction": f"{r['fraction_active']:.3f}",
         "latent": str(r["latent"]) or DASH, "rho": coefficient(r["spearman"], "{:+.2f}"),
         "mi": number(r["mutual_info"], "{:.2f}"), "runner_up": str(r["runner_up"]) or DASH,
         "runner_rho": coefficient(r["runner_up_spearman"], "{:+.2f}"),
         "latent_mi": str(r["latent_mi"]) or DASH,
         "latent_importance": str(r["latent_importance"]) or DASH,
         "importance": number(r["importance"], "{:.2f}"),
         "disentanglement": number(r["disentanglement"], "{:.2f}")}
        for r in table]


def _intervention_values(catalog, latent):
    """The 10/50/90 % quantiles of ``mock_<latent>`` in the sample (both values if on/off)."""
    column = "mock_" + latent
    if column not in catalog.colnames:
        return None
    z = np.ma.filled(np.ma.asarray(catalog[column], dtype=np.float64), np.nan)
    z = z[np.isfinite(z)]
    values = np.unique(z) if np.unique(z).size <= 2 else \
        np.unique(np.round(np.quantile(z, [0.1, 0.5, 0.9]), 4))
    return values if values.size >= 2 else None


def _interventions(section, data):
    from .latents import intervention_response

    n = data.n_interventions
    shape = getattr(data.model, "input_shape_", None)
    if not n:
        section.intervention_note = "Intervention responses were skipped (n_interventions=0)."
        return
    if shape is None or int(shape[0]) > INTERVENTION_MAX_SIZE:
        section.intervention_note = (
            f"Intervention responses are computed only for models that take images of at most "
            f"{INTERVENTION_MAX_SIZE} px (this one: {shape}), to bound the cost of rendering; "
            "run sfnet.interpret.intervention_response yourself.")
        return
    if getattr(data.model, "input_kind_", "uint8") != "uint8" or \
            (len(shape) > 2 and int(shape[2]) != 3):
        section.intervention_note = (
            "Intervention responses are rendered as the mock's 8-bit gri colour images; this "
            "model takes other images (float or not three bands), so none were computed: "
            "pass your own counterfactual images to sfnet.interpret.intervention_response.")
        return
    top = [int(f) for f in data.shown[:INTERVENTION_FEATURES]]
    rows, used = [], []
    for latent in data.intervention_latents:
        values = _intervention_values(data.catalog, latent)
        if values is None:
            continue
        table = intervention_response(data.model, latent, values, n=n, seed=0, n_boot=200)
        used.append(latent)
        by_feature = {int(f): i for i, f in enumerate(table["feature"])}
        for name, pred in table.meta["prediction_slope"].items():
            rows.append({"latent": latent, "values": ", ".join(f"{v:g}" for v in values),
                         "what": f"prediction ({name})",
                         "slope": _with_interval(pred["slope"], pred["lo"], pred["hi"]),
                         "on": DASH})
        for f in top:
            i = by_feature.get(f)
            if i is None:
                rows.append({"latent": latent, "values": "", "what": f"feature {f}",
                             "slope": "never active", "on": DASH})
                continue
            r = table[i]
            contribution = [c for c in table.colnames if c.startswith("contribution_slope")
                            and not c.endswith(("_lo", "_hi"))]
            slope = _with_interval(r["activation_slope"], r["activation_slope_lo"],
                                   r["activation_slope_hi"])
            if contribution:
                c = contribution[0]
                slope += "; contribution " + _with_interval(r[c], r[c + "_lo"], r[c + "_hi"])
            rows.append({"latent": latent, "values": "", "what": f"feature {f}",
                         "slope": slope,
                         "on": _with_interval(r["on_fraction_slope"], r["on_fraction_slope_lo"],
                                              r["on_fraction_slope_hi"])})
    section.interventions = rows or None
    section.intervention_note = (
        f"{n} mock galaxies (make_mock_interventions, seed 0, at the model's "
        f"{int(shape[0])} px) rendered at the 10/50/90% quantiles of each latent in this "
        f"sample, everything else held fixed; slopes per unit of the latent with 95% "
        f"bootstrap intervals (200 resamples); the {len(top)} most frequent features. "
        f"Latents: {', '.join(used) if used else 'none found in the sample'}. The sample is "
        f"kept small to bound the cost: use sfnet.interpret.intervention_response for more.")


def _with_interval(value, lo, hi):
    return f"{number(value, '{:+.3g}')} [{number(lo, '{:+.2g}')}, {number(hi, '{:+.2g}')}]"


def _seed_agreement(section, data):
    from .universality import match_features

    rows, details = [], []
    shown = {int(f) for f in data.shown}
    for i, other in enumerate(data.other_models, 1):
        table = match_features(data.acts, other.activations(data.sample))
        meta = table.meta
        rows.append((f"model {i}", f"{100 * meta['matched_fraction']:.1f}%",
                     f"{meta['n_matched']} / {meta['n_features_a']}", str(meta["n_features_b"])))
        details.append([(int(r["feature_a"]), int(r["feature_b"]),
                         number(r["correlation"], "{:+.2f}"), f"{r['mass_a']:.3f}")
                        for r in table if int(r["feature_a"]) in shown])
    section.seeds = rows
    section.seed_details = details
    section.seed_note = (
        "Features paired one to one by the correlation of their activations on these "
        "galaxies (Hungarian matching, match_features); matched: correlation >= 0.5; "
        "matched mass: the share of this model's activation carried by matched features.")


def more_features_note(data, figs):
    """A note on the active features without a section of their own."""
    hidden = len(data.alive) - len(data.shown)
    if hidden <= 0:
        return None
    return Section("note", text=f"{hidden} less frequent active features are listed in the "
                                "table above but have no section (raise max_features).")


#: The section builders, in page order: ``builder(data, figs)`` returns a `Section`,
#: a list of them or None.
SECTIONS = (model_card, performance, trust, outliers, features_overview, ground_truth,
            feature_sections, more_features_note)


def build_sections(data, figs):
    """Run every builder of `SECTIONS`; the flat list of sections."""
    out = []
    for builder in SECTIONS:
        made = builder(data, figs)
        if isinstance(made, Section):
            out.append(made)
        elif made:
            out.extend(made)
    return out
