"""A static HTML report on a fitted SFNet and the features it uses.

`write_report` writes ``report.html`` plus PNG figures in ``figures/`` and a
``features.csv`` table beside it.  The page has no JavaScript, loads nothing
from the network and links its figures relatively, so the directory can be
zipped, mailed or served as it is.
"""

import datetime
import html
import io
from pathlib import Path

import numpy as np

from .._io import atomic_path, atomic_write_bytes, atomic_write_text
from .._utils import regression_metrics
from ._core import as_activations, check_length, get_catalog, has_columns, head_of
from .bpt import BPT_CLASSES, _has_line_errors, bpt_class, line_ratios
from .stats import ablation, feature_correlations, feature_stats

__all__ = ["write_report"]

_HTML_LABEL = {
    "metallicity": "12+log(O/H)",
    "mass": "log M<sub>*</sub> [M<sub>&#9737;</sub>]",
    "sfr": "log SFR [M<sub>&#9737;</sub>&thinsp;yr<sup>&minus;1</sup>]",
    "ssfr": "log sSFR [yr<sup>&minus;1</sup>]",
    "log_nii_ha": "log([N&thinsp;II]/H&alpha;)",
    "log_oiii_hb": "log([O&thinsp;III]/H&beta;)",
    "z": "redshift z",
}

_CSS = """
:root { --ink:#1d2329; --muted:#5b6670; --line:#d9dee3; --accent:#c4321f; --bg:#fbfbfa; }
* { box-sizing: border-box; }
body { margin:0; font:15px/1.5 -apple-system, "Segoe UI", Roboto, "Helvetica Neue", Arial,
       sans-serif; color:var(--ink); background:var(--bg); }
main { max-width: 1120px; margin: 0 auto; padding: 0 24px 48px; }
header { background:#1d2329; color:#f4f4f2; padding: 28px 0 22px; }
header .wrap { max-width:1120px; margin:0 auto; padding:0 24px; }
header h1 { margin:0 0 4px; font-size: 26px; font-weight: 600; }
header p { margin:0; color:#c9cfd4; }
nav { position: sticky; top: 0; background: rgba(251,251,250,.96); border-bottom:1px solid
      var(--line); padding: 8px 0; margin-bottom: 12px; font-size: 13px; z-index: 2; }
nav a { margin-right: 14px; color: var(--ink); text-decoration: none; white-space: nowrap; }
nav a:hover { color: var(--accent); }
h2 { font-size: 21px; margin: 36px 0 10px; padding-bottom: 4px; border-bottom: 2px solid
     var(--ink); }
h3 { font-size: 18px; margin: 0 0 6px; }
section.feature { background: #fff; border: 1px solid var(--line); border-radius: 8px;
                  padding: 18px 20px; margin: 22px 0; }
.facts { color: var(--muted); margin: 0 0 12px; }
.facts b { color: var(--ink); }
table { border-collapse: collapse; font-size: 13px; margin: 8px 0 14px;
        font-variant-numeric: tabular-nums; }
th, td { padding: 4px 9px; border-bottom: 1px solid var(--line); text-align: right; }
th { background: #f0f2f4; font-weight: 600; white-space: nowrap; }
td.l, th.l { text-align: left; }
table.kv td:first-child { text-align: left; color: var(--muted); }
table.kv td { text-align: left; }
figure { margin: 10px 0 16px; }
figure img { max-width: 100%; height: auto; border: 1px solid var(--line); background: #fff; }
figcaption { font-size: 13px; color: var(--muted); max-width: 900px; }
.grid2 { display: grid; grid-template-columns: repeat(auto-fit, minmax(380px, 1fr));
         gap: 4px 22px; align-items: start; }
.grid2 > figure.wide { grid-column: 1 / -1; }
.trio { display: grid; grid-template-columns: minmax(330px, 0.9fr) 1fr 1fr;
        gap: 4px 18px; align-items: start; }
@media (max-width: 1000px) { .trio { grid-template-columns: 1fr; } }
td { white-space: nowrap; }
.note { font-size: 13px; color: var(--muted); }
.pill { display:inline-block; padding: 1px 8px; border-radius: 10px; font-size: 12px;
        background:#eef1f4; margin-right: 4px; }
a { color: #1f5f99; }
details { margin: 8px 0; font-size: 13px; }
footer { font-size: 12px; color: var(--muted); border-top: 1px solid var(--line);
         margin-top: 40px; padding-top: 12px; }
"""


def _e(text):
    return html.escape(str(text), quote=True)


def _num(v, fmt="{:.3f}"):
    try:
        v = float(v)
    except (TypeError, ValueError):
        return _e(v)
    return fmt.format(v) if np.isfinite(v) else "&ndash;"


def _heat(v):
    """Inline background colour for a correlation coefficient (cmasher fusion_r)."""
    if v is None or not np.isfinite(v):
        return ""
    import matplotlib
    import cmasher  # noqa: F401  (registers the cmr. colour maps)

    r, g, b, _ = matplotlib.colormaps["cmr.fusion_r"](0.5 + 0.5 * float(np.clip(v, -1, 1)))
    fg = "#fff" if abs(v) > 0.6 else "#000"
    return (f' style="background:rgb({int(255 * r)},{int(255 * g)},{int(255 * b)});'
            f'color:{fg}"')


def _rho_cell(v, fmt="{:+.3f}"):
    return f"<td{_heat(v)}>{_num(v, fmt)}</td>"


def _label(prop):
    return _HTML_LABEL.get(prop, _e(prop))


class _Figures:
    """Saves figures atomically into output_dir/figures and remembers what it wrote."""

    def __init__(self, output_dir, dpi):
        self.dir = Path(output_dir) / "figures"
        self.dpi = dpi
        self.written = []

    def save(self, fig, name):
        buf = io.BytesIO()
        fig.savefig(buf, format="png", dpi=self.dpi, facecolor="white")
        atomic_write_bytes(self.dir / name, buf.getvalue())
        self.written.append(name)
        return f"figures/{name}"


def _figure_html(src, caption, alt, wide=False):
    cls = ' class="wide"' if wide else ""
    return (f'<figure{cls}><img src="{_e(src)}" alt="{_e(alt)}" loading="lazy">'
            f"<figcaption>{caption}</figcaption></figure>")


def _metrics_html(metrics):
    if not metrics:
        return '<p class="note">No metrics available.</p>'
    nested = {k: v for k, v in metrics.items() if isinstance(v, dict)}
    flat = {k: v for k, v in metrics.items() if not isinstance(v, (dict, list, tuple))}
    out = []
    if nested:
        keys = ["rmse", "nmad", "bias", "r2", "n"]
        extra = sorted({k for v in nested.values() for k in v} - set(keys))
        keys = [k for k in keys if any(k in v for v in nested.values())] + extra
        head = "".join(f"<th>{_e(k.upper() if k != 'r2' else 'R²')}</th>" for k in keys)
        rows = []
        for name, vals in nested.items():
            cells = "".join(f"<td>{_fmt_metric(k, vals.get(k))}</td>" for k in keys)
            rows.append(f'<tr><td class="l">{_e(name)}</td>{cells}</tr>')
        out.append(f'<table><tr><th class="l">target</th>{head}</tr>{"".join(rows)}</table>')
    if flat:
        rows = "".join(f"<tr><td>{_e(k)}</td><td>{_fmt_metric(k, v)}</td></tr>"
                       for k, v in flat.items())
        out.append(f'<table class="kv">{rows}</table>')
    return "".join(out)


def _fmt_metric(key, value):
    if value is None:
        return ""
    if isinstance(value, (bool, np.bool_)):
        return _e(value)
    if isinstance(value, (int, np.integer)):
        return f"{int(value):d}"
    if isinstance(value, (float, np.floating)):
        return _num(value, "{:.4f}")
    return _e(value)


def _validate(model, sample, activations, max_features, n_examples, n_localization):
    if not hasattr(model, "head_weights") or not hasattr(model, "n_features"):
        raise TypeError("model must be a fitted SparseFeatureNet")
    n_features = int(model.n_features)
    if not hasattr(sample, "images") or not hasattr(sample, "catalog"):
        raise TypeError(f"sample must be a GalaxySample, got {type(sample).__name__}")
    n = len(sample)
    if n == 0:
        raise ValueError("sample is empty")
    for name, v in (("max_features", max_features), ("n_examples", n_examples),
                    ("n_localization", n_localization)):
        if isinstance(v, bool) or not isinstance(v, (int, np.integer)) or v < 0:
            raise ValueError(f"{name} must be a non-negative integer, got {v!r}")
    if activations is not None:
        acts = as_activations(activations, n_features)
        check_length(acts.shape[0], n, "the sample")
        return acts
    return None


def _truth(model, catalog):
    """(y_true (N, T) with NaN for rows failing the cuts, target) or (None, target)."""
    target = getattr(model, "target_", None)
    if target is None:
        return None, None
    try:
        cat = target.prepare(catalog)
        y = target.values(cat, check=False)
        y[~target.mask(cat)] = np.nan
    except (ValueError, TypeError, KeyError):
        return None, target
    return y, target


def write_report(model, sample, output_dir, *, activations=None, metrics=None,
                 max_features=12, n_examples=9, n_localization=6, title=None, dpi=130):
    """Write a static HTML report on a fitted SFNet and its active features.

    The page has a model card (k, backbone, target, training history, metrics),
    the prediction quality, an overview of all active features (frequency, head
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
    acts = _validate(model, sample, activations, max_features, n_examples, n_localization)
    output_dir = Path(output_dir)
    if output_dir.exists() and not output_dir.is_dir():
        raise ValueError(f"output_dir {str(output_dir)!r} exists and is not a directory")
    if isinstance(dpi, bool) or not isinstance(dpi, (int, float, np.number)) or dpi <= 0:
        raise ValueError(f"dpi must be a positive number, got {dpi!r}")
    if metrics is not None and not isinstance(metrics, dict):
        raise TypeError(f"metrics must be a dict, got {type(metrics).__name__}")
    if acts is None:
        acts = as_activations(model.activations(sample), int(model.n_features))
        check_length(acts.shape[0], len(sample), "the sample")

    from . import plots

    catalog = get_catalog(sample)
    w, b, names = head_of(model)
    stats = feature_stats(acts)
    alive = np.asarray(stats["feature"][stats["n_active"] > 0], dtype=np.int64)
    corr = feature_correlations(sample, acts, alive, model=model)
    props = corr.meta["columns"]
    pred = acts @ w.T + b
    y, target = _truth(model, catalog)
    if metrics is None and y is not None:
        metrics = {name: regression_metrics(y[:, t], pred[:, t])
                   for t, name in enumerate(names)}
    has_lines = has_columns(catalog, ("nii_6584_flux", "h_alpha_flux", "oiii_5007_flux",
                                      "h_beta_flux"))
    if has_lines:
        bx, by = line_ratios(catalog, min_snr=3.0 if _has_line_errors(catalog) else None)
        classes = bpt_class(bx, by)
    figs = _Figures(output_dir, dpi)
    parts = []
    toc = [("model", "Model card"), ("performance", "Performance"),
           ("features", "Features")]

    # ---------------------------------------------------------------- model card
    k = getattr(model, "k", None)
    backbone = getattr(model, "backbone", None)
    tname = getattr(target, "name", None) or ", ".join(names)
    history = list(getattr(model, "history_", None) or [])
    seconds = sum(float(h.get("seconds", 0) or 0) for h in history)
    rows = [("Target", f"{_e(tname)} ({', '.join(_e(n) for n in names)})"),
            ("k (active features per galaxy)", _e(k)), ("Backbone", _e(backbone)),
            ("Features in the head", _e(model.n_features)),
            ("Epochs trained", _e(len(history)) if history else "&ndash;"),
            ("Training time", f"{seconds / 60:.1f} min" if seconds else "&ndash;"),
            ("Galaxies in this report", _e(len(sample))),
            ("Bias of the head", ", ".join(f"{v:.4f}" for v in b))]
    meta = getattr(catalog, "meta", {}) or {}
    if "oracle_rmse" in meta:
        rows.append(("Oracle RMSE of the mock (hidden scatter)",
                     _num(meta["oracle_rmse"], "{:.4f}")))
    card = '<table class="kv">' + "".join(
        f"<tr><td>{a}</td><td>{v}</td></tr>" for a, v in rows) + "</table>"
    params = getattr(model, "get_params", None)
    if callable(params):
        try:
            p = params()
        except (TypeError, ValueError, AttributeError):
            p = {}
        if p:
            card += ("<details><summary>All parameters</summary><table class=\"kv\">"
                     + "".join(f"<tr><td>{_e(a)}</td><td>{_e(v)}</td></tr>"
                               for a, v in sorted(p.items())) + "</table></details>")
    hist_html = ""
    if history:
        src = figs.save(plots.plot_history(history, target_names=names), "history.png")
        caption = ("Training loss and validation RMSE per epoch; the star marks the best "
                   "validation epoch (the model kept)."
                   if any("valid_rmse" in h for h in history) else
                   "Training loss per epoch (training used no validation split, so the "
                   "last epoch is kept; the metrics below are on held-out galaxies).")
        hist_html = _figure_html(src, caption, "training history")
    parts.append(f'<h2 id="model">Model card</h2><div class="grid2"><div>{card}</div>'
                 f"<div>{hist_html}</div></div>")

    # ---------------------------------------------------------------- performance
    perf = [f'<h2 id="performance">Performance</h2>{_metrics_html(metrics)}']
    if y is not None and np.isfinite(y).any():
        src = figs.save(plots.plot_predictions(y, pred, target=target), "predictions.png")
        pred_html = _figure_html(
            src, "Predicted against true values on the galaxies of this report "
            "(dashed: one-to-one), and the residuals.", "predictions")
        abl = ablation((w, b), None, y, activations=acts)
        src = figs.save(plots.plot_ablation(abl), "ablation.png")
        trows = "".join(f"<tr><td>{r['n_kept']}</td><td>{r['rmse']:.4f}</td>"
                        f"<td>{r['n_galaxies_changed']}</td></tr>" for r in abl.top_n)
        if len(names) > 1:
            perf.append(pred_html)
            pred_html = ""
        perf.append(
            f'<div class="grid2"><div>{pred_html}</div><div>' + _figure_html(
                src, "Ablation: RMSE when only the N most frequently active features are "
                "kept (the others zeroed in the linear head; no re-selection).", "ablation")
            + "<table><tr><th>features kept</th><th>RMSE</th>"
            f"<th>galaxies changed</th></tr>{trows}</table></div></div>")
    else:
        perf.append('<p class="note">The catalog lacks the target columns; no truth to '
                    "compare with.</p>")
    parts.append("".join(perf))

    # ---------------------------------------------------------------- overview
    ov = [f'<h2 id="features">Features</h2><p>{stats.meta["n_active_features"]} of '
          f'{stats.meta["n_features"]} features are active in at least one of the '
          f'{stats.meta["n_galaxies"]} galaxies; {stats.meta["n_dead"]} never fire. A galaxy '
          f'has on average {stats.meta["mean_active_per_galaxy"]:.2f} active features '
          f'(at most {stats.meta["max_active_per_galaxy"]}). Correlations are Spearman '
          "&rho; of the activation (0 where inactive) with each property over the galaxies "
          "where that property is measured.</p>"]
    wcols = [f"weight_{n}" for n in names]
    head = ('<tr><th>#</th><th>feature</th><th>galaxies</th><th>fraction</th>'
            "<th>mean act.</th>" + "".join(f"<th>w ({_e(n)})</th>" for n in names)
            + "".join(f"<th>&rho; {_label(p)}</th>" for p in props) + "</tr>")
    body = []
    shown = set(alive[:max_features].tolist())
    by_feat = {int(f): i for i, f in enumerate(corr["feature"])}
    for rank, f in enumerate(alive, 1):
        i = by_feat[int(f)]
        srow = stats[np.flatnonzero(stats["feature"] == f)[0]]
        link = f'<a href="#feature-{f}">{f}</a>' if int(f) in shown else str(f)
        cells = [f"<td>{rank}</td><td>{link}</td><td>{srow['n_active']}</td>",
                 f"<td>{srow['fraction_active']:.3f}</td>",
                 f"<td>{_num(srow['mean_activation'], '{:.3g}')}</td>"]
        cells += [f"<td>{corr[c][i]:+.4f}</td>" for c in wcols]
        cells += [_rho_cell(corr[f"spearman_{p}"][i], "{:+.2f}") for p in props]
        body.append("<tr>" + "".join(cells) + "</tr>")
    ov.append(f"<table>{head}{''.join(body)}</table>")
    csv_name = "features.csv"
    ov.append(f'<p class="note">The same table with Pearson coefficients: '
              f'<a href="{csv_name}">{csv_name}</a>.</p>')
    grid = [_figure_html(figs.save(plots.plot_feature_density(acts), "feature_density.png"),
                         "Feature density: how often each feature fires.", "feature density")]
    if len(alive) >= 2:
        grid.append(_figure_html(
            figs.save(plots.plot_feature_correlations(acts, alive[:30]),
                      "feature_correlations.png"),
            "Pearson correlation between the activations of the active features "
            "(zeros included).", "feature-feature correlations", wide=len(alive) > 12))
    if len(alive) and props:
        grid.append(_figure_html(
            figs.save(plots.plot_property_correlations(sample, acts, alive[:30],
                                                       model=model),
                      "property_correlations.png"),
            "Spearman &rho; between each feature's activation and galaxy properties.",
            "feature-property correlations", wide=True))
    if has_lines:
        grid.append(_figure_html(
            figs.save(plots.plot_bpt(catalog), "bpt.png"),
            "BPT diagram of the sample (lines with S/N &gt; 3) with the Kauffmann+03 "
            "(dashed) and Kewley+01 (solid) demarcations.", "BPT diagram"))
    ov.append('<div class="grid2">' + "".join(grid) + "</div>")
    parts.append("".join(ov))

    # ---------------------------------------------------------------- per feature
    for rank, f in enumerate(alive[:max_features], 1):
        f = int(f)
        toc.append((f"feature-{f}", f"Feature {f}"))
        i = by_feat[f]
        a = acts[:, f]
        on = a != 0
        n_on = int(on.sum())
        facts = [f"rank <b>{rank}</b> by frequency",
                 f"active in <b>{n_on}</b> galaxies ({100 * n_on / len(a):.1f}%)",
                 f"mean activation <b>{a[on].mean():.3g}</b>, max {a.max():.3g}"]
        head_rows = []
        for t, name in enumerate(names):
            contrib = w[t, f] * a[on]
            head_rows.append(
                f'<tr><td class="l">{_e(name)}</td><td>{w[t, f]:+.3g}</td>'
                f"<td>{contrib.mean():+.2g}</td><td>{contrib.min():+.2g}&hellip;"
                f"{contrib.max():+.2g}</td></tr>")
        head_table = ('<table title="w: head weight; w&middot;a: its term in the prediction, '
                      'over the galaxies where the feature is active">'
                      '<tr><th class="l">target</th><th>weight w</th>'
                      "<th>mean w&middot;a</th><th>w&middot;a range</th></tr>"
                      + "".join(head_rows) + "</table>")
        if has_lines:
            cls = classes[on]
            known = cls != "unclassified"
            if known.any():
                frac = ", ".join(
                    f"{100 * np.mean(cls[known] == c):.0f}% {c}" for c in BPT_CLASSES)
                base = ", ".join(
                    f"{100 * np.mean(classes[classes != 'unclassified'] == c):.0f}%"
                    for c in BPT_CLASSES)
                facts.append(f"BPT classes of its galaxies: <b>{frac}</b> "
                             f"(whole sample: {base})")
        sec = [f'<section class="feature" id="feature-{f}"><h3>Feature {f}</h3>',
               '<p class="facts">' + " &middot; ".join(facts) + "</p>"]
        left = head_table
        if props:
            prow = "".join(
                f'<tr><td class="l">{_label(p)}</td>{_rho_cell(corr[f"pearson_{p}"][i])}'
                f'{_rho_cell(corr[f"spearman_{p}"][i])}<td>{corr.meta["n_valid"][p]}</td></tr>'
                for p in props)
            sec.append(f'<div class="trio"><div>{left}<table><tr><th class="l">property</th>'
                       f"<th>Pearson r</th><th>Spearman &rho;</th><th>N</th></tr>{prow}"
                       "</table></div>")
            sp = np.array([corr[f"spearman_{p}"][i] for p in props], dtype=float)
            strength = np.where(np.isfinite(sp), np.abs(sp), -1.0)
            best = [props[j] for j in np.argsort(-strength, kind="stable")
                    if strength[j] >= 0]
            if target is not None and target.name == "metallicity" and "metallicity" in best:
                best.remove("metallicity")
                best.insert(0, "metallicity")
            for p in best[:2]:
                src = figs.save(plots.plot_activation_vs(sample, acts, f, p, model=model),
                                f"feature_{f:04d}_vs_{p}.png")
                sec.append(_figure_html(src, f"Activation of feature {f} against "
                                        f"{_label(p)}.", f"feature {f} vs {p}"))
            sec.append("</div>")
        else:
            sec.append(left)
        if n_examples:
            if has_lines:
                fig = plots.plot_bpt(sample, acts, f, n_examples=n_examples)
                cap = (f"Left: BPT position of the galaxies where feature {f} is active, "
                       "coloured by normalised activation (grey: all galaxies). Right: its "
                       "top galaxies, numbered as circled on the diagram.")
            else:
                fig = plots.plot_max_activating(sample, acts, f, n=n_examples)
                cap = f"The galaxies with the largest activation of feature {f}."
            sec.append(_figure_html(figs.save(fig, f"feature_{f:04d}_top.png"), cap,
                                    f"feature {f} top galaxies"))
        if n_localization and hasattr(model, "feature_maps"):
            fig = plots.plot_localization(model, sample, f, n=n_localization,
                                          activations=acts)
            sec.append(_figure_html(
                figs.save(fig, f"feature_{f:04d}_localization.png"),
                f"Where feature {f} fires: the layer4 channel map that it averages, "
                "upsampled onto the image the network sees (top: contours at 25/50/75% of "
                "the largest value shown; bottom: the map on a common scale).",
                f"feature {f} localisation"))
        sec.append("</section>")
        parts.append("".join(sec))
    if len(alive) > max_features:
        parts.append(f'<p class="note">{len(alive) - max_features} less frequent active '
                     "features are listed in the table above but have no section "
                     "(raise max_features).</p>")

    # ---------------------------------------------------------------- page
    try:
        from .. import __version__
    except ImportError:  # pragma: no cover
        __version__ = "unknown"
    now = datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%d %H:%M UTC")
    title = title or f"SFNet report: {tname}"
    sub = (f"k = {_e(k)} &middot; {_e(backbone)} &middot; {len(sample)} galaxies &middot; "
           f"{stats.meta['n_active_features']} active features &middot; generated {now} "
           f"with sfnet {_e(__version__)}")
    nav = "\n".join(f'<a href="#{_e(a)}">{_e(t)}</a>' for a, t in toc)
    page = (
        "<!DOCTYPE html>\n<html lang=\"en\"><head><meta charset=\"utf-8\">"
        "<meta name=\"viewport\" content=\"width=device-width, initial-scale=1\">"
        f"<title>{_e(title)}</title><style>{_CSS}</style></head><body>"
        f'<header><div class="wrap"><h1>{_e(title)}</h1><p>{sub}</p></div></header>'
        f"<main><nav>{nav}</nav>{''.join(parts)}"
        "<footer>Sparse Feature Network (SFNet): every prediction is the head bias plus "
        "at most k terms w&middot;a of active features. Method: Wu (2025), ApJ 980, 183, "
        "<a href=\"https://doi.org/10.3847/1538-4357/adadec\">doi:10.3847/1538-4357/adadec"
        "</a>. BPT demarcations: Kauffmann et al. (2003), Kewley et al. (2001).</footer>"
        "</main></body></html>\n")

    table = stats.copy()
    table = table[np.isin(table["feature"], alive)]
    extra = corr.copy()
    extra.remove_columns(["n_active", "fraction_active"])
    from astropy.table import join

    table = join(table, extra, keys="feature", join_type="left")
    table = table[np.lexsort((np.asarray(table["feature"]), -np.asarray(table["n_active"])))]
    with atomic_path(output_dir / csv_name, suffix=".csv") as tmp:
        table.write(tmp, format="ascii.csv", overwrite=True)
    path = output_dir / "report.html"
    atomic_write_text(path, page)
    return path

