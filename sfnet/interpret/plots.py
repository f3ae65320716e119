"""Figures for interpreting an SFNet: the public ``plot_*`` functions.

Every function returns a `matplotlib.figure.Figure`; those drawing a single
panel accept ``ax`` to draw into an existing figure.  Figures are built with
`matplotlib.figure.Figure` (not `pyplot`), so nothing accumulates in pyplot's
figure registry when hundreds are made for a report; in a notebook they display
as usual, and ``fig.savefig(...)`` writes them.  matplotlib and cmasher are
imported inside the functions, so ``import sfnet`` stays fast.

Colour maps are from cmasher (perceptually uniform, tested for colour-vision
deficiency): ``cmr.ember`` for activations, ``cmr.fusion_r`` (blue-white-orange)
for correlations and light greys / ``cmr.arctic_r`` for number densities.
Sizes suit a journal column (3.5 in) or page (7.2 in) at 9 pt.  The style and
the drawing helpers the figures share live in `sfnet.interpret._plotting`.
"""

import numpy as np

from .._utils import regression_metrics
from ..catalog import property_label
from . import _plotting as _draw
from ._core import (as_activations, check_feature, check_length, display_image,
                    get_catalog, head_of, pearson, plain, property_columns, property_values,
                    spearman, take_images)
from .bpt import _has_line_errors, line_ratios
from .stats import feature_correlation_matrix, feature_correlations, feature_stats

__all__ = ["plot_bpt", "plot_max_activating", "plot_activation_vs",
           "plot_feature_correlations", "plot_property_correlations",
           "plot_predictions", "plot_localization", "plot_feature_density",
           "plot_history", "plot_ablation"]


def _acts_for(sample, activations, feature):
    """Dense activations checked against the sample, and the feature index."""
    acts = as_activations(activations)
    check_length(acts.shape[0], len(sample), "the sample")
    return acts, check_feature(feature, acts.shape[1])


def _most_frequent(acts, max_features):
    """The ``max_features`` most frequently active features."""
    stats = feature_stats(acts, include_dead=False)
    return np.asarray(stats["feature"][:max_features])


# --------------------------------------------------------------------------- BPT

@_draw.styled
def plot_bpt(sample, activations=None, feature=None, *, ax=None, examples=True,
             n_examples=9, min_snr=3.0, gridsize=60):
    """BPT diagram, optionally coloured by one feature's activation (Wu 2025, fig. 6 style).

    Parameters
    ----------
    sample : GalaxySample, `~astropy.table.Table` or array of shape (N, 4)
        Galaxies with the MPA-JHU line fluxes (or ``log_N2, log_Ha, log_O3,
        log_Hb``), or predicted log fluxes of a ``"bpt_lines"`` model (see
        `line_ratios`).
    activations : array-like, shape (N, n_features), optional
        Post-top-k activations, row-aligned with ``sample``.
    feature : int, optional
        Colour the galaxies where this feature is active by their normalised
        activation ``a / max(a)``; the rest stay in the grey density.
    ax : `~matplotlib.axes.Axes`, optional
        Draw the diagram here (then the example grid is not drawn).
    examples : bool, optional
        With ``feature`` and a sample with images, show a 3×3 grid of the
        feature's top galaxies beside the diagram, numbered as on the diagram.
    n_examples : int, optional
        Number of example galaxies (default 9, at most 9).
    min_snr : float or None, optional
        Only place galaxies whose four lines have S/N above this (default 3, the
        usual BPT cut; ignored for predicted log fluxes).
    gridsize : int, optional
        Hexagons across the density plot.

    Returns
    -------
    `~matplotlib.figure.Figure`
    """
    if feature is not None and activations is None:
        raise ValueError("feature needs activations")
    is_catalog = hasattr(sample, "catalog") or hasattr(sample, "colnames")
    x, y = line_ratios(sample, min_snr=min_snr if is_catalog and _has_line_errors(sample)
                       else None)
    a, feature = _feature_activations(activations, feature, len(x))
    with_grid = (a is not None and examples and ax is None and hasattr(sample, "images")
                 and n_examples > 0)
    if with_grid:
        fig = _draw.figure((7.2, 3.5))
        left, right = fig.subfigures(1, 2, width_ratios=[1.2, 1.0], wspace=0.02)
        ax = left.add_subplot()
    else:
        fig, ax = _draw.fig_ax(ax, (3.6, 3.3))
    xlim, ylim = _draw.bpt_limits(x, y)
    if a is None:
        _bpt_density(fig, ax, x, y, xlim, ylim, gridsize)
        return fig
    _bpt_feature(fig, ax, x, y, a, feature, xlim, ylim, gridsize)
    if with_grid:
        top = _draw.top_indices(a, min(int(n_examples), 9))
        _mark_examples(ax, x, y, top)
        _draw.gallery(right, sample, a, top, feature, ncols=3, label_bpt=(x, y))
    return fig


def _feature_activations(activations, feature, n):
    """``(activation of feature or None, feature index)``; checks rows against ``n``."""
    if activations is None:
        return None, feature
    acts = as_activations(activations)
    check_length(acts.shape[0], n, "the sample")
    if feature is None:
        return None, feature
    feature = check_feature(feature, acts.shape[1])
    return acts[:, feature], feature


def _bpt_density(fig, ax, x, y, xlim, ylim, gridsize):
    """The BPT diagram as a density of all galaxies."""
    ok = np.isfinite(x) & np.isfinite(y)
    if ok.any():
        hb = ax.hexbin(x[ok], y[ok], gridsize=gridsize, extent=(*xlim, *ylim), bins="log",
                       mincnt=1, cmap=_draw.cmap("arctic_r", 0.08, 0.92), linewidths=0)
        _draw.count_colorbar(fig, hb, ax)
    else:
        _draw.message(ax, "no galaxy with valid line ratios")
    _draw.draw_bpt_frame(ax, xlim, ylim)
    ax.set_title(f"BPT diagram ({int(ok.sum())} galaxies)")


def _bpt_feature(fig, ax, x, y, a, feature, xlim, ylim, gridsize):
    """Grey density of all galaxies; the feature's galaxies coloured by a / max(a)."""
    ok = np.isfinite(x) & np.isfinite(y)
    if ok.any():
        ax.hexbin(x[ok], y[ok], gridsize=gridsize, extent=(*xlim, *ylim), bins="log",
                  mincnt=1, cmap=_draw.cmap("neutral_r", 0.12, 0.45), linewidths=0,
                  zorder=0)
    on = ok & (a > 0)
    amax = a.max() if np.any(a > 0) else 1.0
    order = np.flatnonzero(on)[np.argsort(a[on], kind="stable")]
    sc = ax.scatter(x[order], y[order], c=a[order] / amax, s=9, vmin=0, vmax=1,
                    cmap=_draw.cmap("ember", 0.12, 0.95), edgecolors="none", zorder=2)
    fig.colorbar(sc, ax=ax, pad=0.01,
                 label=f"Normalised activation of feature {feature}")
    _draw.draw_bpt_frame(ax, xlim, ylim)
    n_on = int(np.count_nonzero(a > 0))
    ax.set_title(f"Feature {feature}: active in {n_on} galaxies ({int(on.sum())} on BPT)")


def _mark_examples(ax, x, y, top):
    """Circle and number the example galaxies on the diagram."""
    ok = np.isfinite(x) & np.isfinite(y)
    for rank, i in enumerate(top, 1):
        if ok[i]:
            ax.plot(x[i], y[i], marker="o", ms=9, mfc="none", mec=_draw.BLUE, mew=1.3,
                    zorder=3)
            ax.text(x[i] + 0.05, y[i] + 0.05, str(rank), color=_draw.BLUE, fontsize=7,
                    fontweight="bold", zorder=4, path_effects=_draw.outline())


@_draw.styled
def plot_max_activating(sample, activations, feature, n=9, *, ncols=None,
                        columns=("metallicity", "mass")):
    """Grid of the ``n`` galaxies with the largest activation of ``feature``.

    Parameters
    ----------
    sample : GalaxySample
        Images and catalog, row-aligned with ``activations``.
    activations : array-like, shape (N, n_features)
        Post-top-k activations.
    feature : int
        The feature.
    n : int, optional
        Number of galaxies (only galaxies where the feature is active are shown).
    ncols : int, optional
        Columns of the grid (default ``ceil(sqrt(n))``).
    columns : sequence of str, optional
        Properties printed under each image (keys of `PROPERTIES` or catalog
        columns; those missing from the catalog are skipped).  The ``objID`` is
        printed too when the catalog has it.

    Returns
    -------
    `~matplotlib.figure.Figure`
    """
    acts, feature = _acts_for(sample, activations, feature)
    if int(n) < 1:
        raise ValueError(f"n must be at least 1, got {n}")
    n = int(n)
    ncols = int(ncols or np.ceil(np.sqrt(n)))
    nrows = int(np.ceil(n / ncols))
    cat = get_catalog(sample)
    columns = [c for c in columns if all(x in cat.colnames for x in property_columns(c))]
    a = acts[:, feature]
    top = _draw.top_indices(a, n)
    fig = _draw.figure((1.25 * ncols + 0.2, 1.5 * nrows + 0.45))
    _draw.gallery(fig, sample, a, top, feature, ncols=ncols, nrows=nrows, columns=columns)
    n_on = int(np.count_nonzero(a > 0))
    fig.suptitle(f"Feature {feature}: top {len(top)} of {n_on} active galaxies "
                 f"({100 * n_on / max(len(a), 1):.1f}%)")
    return fig


# --------------------------------------------------------------------------- correlations

@_draw.styled
def plot_activation_vs(sample, activations, feature, column, *, model=None, ax=None,
                       min_snr=None, nbins=12):
    """Activation of one feature against a galaxy property.

    Galaxies where the feature is active are plotted as points; inactive ones
    (activation 0) as a rug at zero.  The line is the mean activation (inactive
    galaxies counting 0) in bins of the property: what the Pearson and Spearman
    coefficients in the legend measure.

    Parameters
    ----------
    sample : GalaxySample or `~astropy.table.Table`
        Catalog row-aligned with ``activations``.
    activations : array-like, shape (N, n_features)
        Post-top-k activations.
    feature : int
        The feature.
    column : str
        Property (key of `PROPERTIES`, e.g. ``"metallicity"``, or a catalog column).
    model : SparseFeatureNet or weights, optional
        Adds the feature's head weight(s) to the legend.
    ax : `~matplotlib.axes.Axes`, optional
    min_snr : float, optional
        S/N cut for line ratios.
    nbins : int, optional
        Bins of the mean-activation line.

    Returns
    -------
    `~matplotlib.figure.Figure`
    """
    acts, feature = _acts_for(sample, activations, feature)
    values = property_values(sample, column, min_snr=min_snr)
    fig, ax = _draw.fig_ax(ax, (3.6, 3.0))
    ok = np.isfinite(values)
    a = acts[:, feature]
    _scatter_active(ax, values, a, ok)
    entries = list(zip(*ax.get_legend_handles_labels()))
    if ok.sum() >= 3:
        entries += _binned_mean(ax, values[ok], a[ok], nbins)
        r = pearson(a[ok], values[ok])
        rho = spearman(a[ok], values[ok])
        text = (f"Pearson $r$ = {_draw.fmt(r, signed=True)}, "
                f"Spearman $\\rho$ = {_draw.fmt(rho, signed=True)}")
        entries.append((_blank(), text))
    else:
        _draw.message(ax, f"fewer than 3 galaxies with valid {column}")
    if model is not None:
        entries += _weight_entries(model, feature)
    handles, labels = zip(*entries)
    ax.legend(handles, labels, loc="lower left", bbox_to_anchor=(0.0, 1.01), ncols=1,
              handletextpad=0.4, markerscale=1.5, borderaxespad=0.0)
    ax.set_xlabel(property_label(column))
    ax.set_ylabel(f"Activation of feature {feature}")
    ax.set_ylim(bottom=-0.04 * max(a.max(), 1e-12))
    return fig


def _blank():
    """An invisible legend handle (for text-only legend lines)."""
    from matplotlib.lines import Line2D

    return Line2D([], [], ls="none")


def _scatter_active(ax, values, a, ok):
    """Active galaxies as points, inactive ones as a rug at zero."""
    on = ok & (a > 0)
    off = ok & ~(a > 0)
    ax.scatter(values[on], a[on], s=7, color=_draw.ACCENT, alpha=0.6, edgecolors="none",
               label=f"active ({int(on.sum())})", zorder=2)
    if off.any():
        ax.plot(values[off], np.zeros(int(off.sum())), "|", color="0.6", ms=5, alpha=0.4,
                label=f"inactive ({int(off.sum())})", zorder=1)


def _binned_mean(ax, values, a, nbins):
    """Draw the mean activation in quantile bins of ``values``; its legend entry."""
    edges = np.unique(np.percentile(values, np.linspace(0, 100, nbins + 1)))
    if edges.size < 2:
        return []
    idx = np.clip(np.searchsorted(edges, values, side="right") - 1, 0, edges.size - 2)
    cnt = np.bincount(idx, minlength=edges.size - 1)
    tot = np.bincount(idx, weights=a, minlength=edges.size - 1)
    good = cnt > 0
    centres = 0.5 * (edges[:-1] + edges[1:])
    line, = ax.plot(centres[good], tot[good] / cnt[good], color="k", lw=1.4, zorder=3)
    return [(line, "binned mean")]


def _weight_entries(model, feature):
    """Legend lines with the feature's head weight(s), two targets per line."""
    w, _, names = head_of(model)
    check_feature(feature, w.shape[1])
    if len(names) == 1:
        return [(_blank(), f"head weight $w$ = {w[0, feature]:+.3g}")]
    terms = [f"{name.replace('_', ' ')} {w[t, feature]:+.2g}" for t, name in enumerate(names)]
    return [(_blank(), ("head weights $w$: " if i == 0 else "") + ", ".join(terms[i:i + 2]))
            for i in range(0, len(terms), 2)]


@_draw.styled
def plot_feature_correlations(activations, features=None, *, method="pearson", ax=None,
                              max_features=30, annotate=None, normalize=None):
    """Feature–feature correlation matrix of the active features.

    The matrix is `feature_correlation_matrix`; with ``normalize="l2"`` it is
    the matrix of Wu (2025), whose activations were L2-normalised per galaxy.

    Parameters
    ----------
    activations : array-like, shape (N, n_features)
        Post-top-k activations.
    features : sequence of int, optional
        Features (default: the ``max_features`` most frequent active ones).
    method : {"pearson", "spearman"}
    ax : `~matplotlib.axes.Axes`, optional
    max_features : int, optional
        Cap on the default feature list.
    annotate : bool, optional
        Print the coefficients in the cells (default: when at most 12 features).
    normalize : {None, "l2"}, optional
        ``"l2"``: divide each galaxy's activation vector by its Euclidean norm
        before correlating (the paper's choice; see `feature_correlation_matrix`).
        The title says so.  Default: the activations as they are.

    Returns
    -------
    `~matplotlib.figure.Figure`
    """
    acts = as_activations(activations)
    if features is None:
        features = _most_frequent(acts, max_features)
    mat, features = feature_correlation_matrix(acts, features, method=method,
                                               normalize=normalize)
    m = len(features)
    size = min(2.2 + 0.28 * m, 7.2)
    fig, ax = _draw.fig_ax(ax, (size + 0.7, size))
    if m == 0:
        _draw.message(ax, "no active features")
        _draw.no_ticks(ax)
        return fig
    im = _draw.correlation_image(ax, mat)
    ax.set_xticks(np.arange(m), [str(f) for f in features], rotation=90)
    ax.set_yticks(np.arange(m), [str(f) for f in features])
    _draw.matrix_axes(ax, "Feature")
    ax.set_xlabel("Feature")
    if annotate is None:
        annotate = m <= 12
    if annotate:
        _draw.annotate_cells(ax, mat)
    fig.colorbar(im, ax=ax, label=_draw.coefficient_label(method), shrink=0.85, pad=0.02)
    ax.set_title("Correlation between feature activations"
                 + (" (L2-normalised per galaxy)" if normalize == "l2" else ""))
    return fig


@_draw.styled
def plot_property_correlations(sample, activations, features=None, columns=None, *,
                               model=None, method="spearman", ax=None, max_features=30,
                               min_snr=None):
    """Heat map of each feature's correlation with galaxy properties.

    Parameters
    ----------
    sample : GalaxySample or `~astropy.table.Table`
    activations : array-like, shape (N, n_features)
    features : sequence of int, optional
        Default: the ``max_features`` most frequent active features.
    columns : sequence of str, optional
        Properties (see `feature_correlations`).
    model : SparseFeatureNet or weights, optional
        Adds the head weight to each row label (single-target models).
    method : {"spearman", "pearson"}
    ax : `~matplotlib.axes.Axes`, optional
    max_features : int, optional
    min_snr : float, optional

    Returns
    -------
    `~matplotlib.figure.Figure`
    """
    if method not in ("pearson", "spearman"):
        raise ValueError(f"method must be 'pearson' or 'spearman', got {method!r}")
    acts = as_activations(activations)
    if features is None:
        features = _most_frequent(acts, max_features)
    table = feature_correlations(sample, acts, features, columns, model=model,
                                 min_snr=min_snr)
    cols = table.meta["columns"]
    m = len(table)
    mat = np.array([[table[f"{method}_{c}"][i] for c in cols] for i in range(m)]) \
        if m else np.zeros((0, len(cols)))
    fig, ax = _draw.fig_ax(ax, (1.6 + 0.55 * len(cols) + 0.8, 1.3 + 0.27 * max(m, 3)))
    if m == 0 or not cols:
        _draw.message(ax, "no active features" if m == 0 else "no properties in the catalog")
        _draw.no_ticks(ax)
        return fig
    im = _draw.correlation_image(ax, mat, aspect="auto")
    ax.set_yticks(np.arange(m), _feature_row_labels(table))
    ax.set_xticks(np.arange(len(cols)), [property_label(c, short=True) for c in cols],
                  rotation=40, ha="right", rotation_mode="anchor")
    _draw.matrix_axes(ax, "Feature")
    _draw.annotate_cells(ax, mat)
    fig.colorbar(im, ax=ax, label=_draw.coefficient_label(method), pad=0.02)
    ax.set_title("Feature activation vs galaxy properties")
    return fig


def _feature_row_labels(table):
    """Feature numbers, with the head weight when the model has a single target."""
    wcols = [c for c in table.colnames if c.startswith("weight_")]
    labels = []
    for i in range(len(table)):
        lab = f"{table['feature'][i]}"
        if len(wcols) == 1:
            lab += f"  ($w$={table[wcols[0]][i]:+.2g})"
        labels.append(lab)
    return labels


# --------------------------------------------------------------------------- performance

def _target_info(target):
    labels, units = None, None
    if target is not None:
        from ..targets import get_target

        target = get_target(target)
        labels, units = list(target.labels), list(target.units)
    return labels, units


def _stat_unit(unit):
    unit = str(unit or "")
    return "dex" if unit.startswith("dex") else unit


@_draw.styled
def plot_predictions(y_true, y_pred, *, y_std=None, target=None, labels=None, units=None,
                     ax=None, max_points=3000):
    """Predicted against true values, with RMSE, NMAD and bias, and residual histograms.

    Parameters
    ----------
    y_true, y_pred : array-like, shape (N,) or (N, T)
        Truth and prediction; non-finite pairs are ignored.
    y_std : array-like, shape like ``y_pred``, optional
        1-sigma uncertainty of each prediction (e.g. from
        ``model.predict(X, return_std=True)``), drawn as vertical error bars
        when the galaxies are shown as points.
    target : str or `~sfnet.targets.Target`, optional
        Supplies axis labels and units (e.g. ``model.target_``).
    labels, units : sequence of str, optional
        Override the labels/units of each target.
    ax : `~matplotlib.axes.Axes`, optional
        For a single target, draw only the predicted-vs-true panel here.
    max_points : int, optional
        Above this many galaxies the panel shows a density (hexbin) instead of points.

    Returns
    -------
    `~matplotlib.figure.Figure`

    Notes
    -----
    ``RMSE = sqrt(mean(Δ²))``, ``NMAD = 1.4826 median(|Δ − median(Δ)|)`` and
    ``bias = mean(Δ)``, with ``Δ = predicted − true``.

    Examples
    --------
    >>> import numpy as np
    >>> from sfnet.interpret import plot_predictions
    >>> rng = np.random.default_rng(0)
    >>> truth = rng.normal(8.9, 0.2, 500)
    >>> fig = plot_predictions(truth, truth + rng.normal(0, 0.08, 500), target="metallicity")
    >>> print(fig.axes[0].get_xlabel())
    True $12+\\log({\\rm O/H})$
    >>> fig.savefig("predictions.png")  # doctest: +SKIP
    """
    t, p = _paired_columns(y_true, y_pred)
    e = None
    if y_std is not None:
        e = np.asarray(plain(y_std), dtype=np.float64).reshape(-1, 1) \
            if np.ndim(y_std) == 1 else np.asarray(plain(y_std), dtype=np.float64)
        if e.shape != p.shape:
            raise ValueError(f"y_std has shape {np.shape(y_std)} but y_pred has "
                             f"{np.shape(y_pred)}")
    n_t = t.shape[1]
    labels, units = _labels_and_units(target, labels, units, n_t)
    if ax is not None and n_t != 1:
        raise ValueError("ax can only be given for a single target")
    if ax is None:
        fig = _draw.figure((3.0 * n_t + 0.3, 4.6))
        axes = fig.subplots(2, n_t, squeeze=False, height_ratios=[3, 1.2])
    else:
        fig = ax.figure
        axes = np.array([[ax], [None]], dtype=object)
    for j in range(n_t):
        ok = np.isfinite(t[:, j]) & np.isfinite(p[:, j])
        if ok.sum() == 0:
            _draw.message(axes[0, j], "no valid pairs")
            continue
        met = regression_metrics(t[ok, j], p[ok, j])
        _one_to_one(fig, axes[0, j], t[ok, j], p[ok, j], labels[j], units[j], met,
                    max_points, None if e is None else e[ok, j])
        if axes[1, j] is not None:
            _residuals(axes[1, j], p[ok, j] - t[ok, j], met, _stat_unit(units[j]))
    return fig


def _paired_columns(y_true, y_pred):
    """Truth and prediction as float64 ``(N, T)`` arrays of equal shape."""
    t = np.asarray(plain(y_true), dtype=np.float64)
    p = np.asarray(plain(y_pred), dtype=np.float64)
    if t.ndim == 1:
        t = t[:, None]
    if p.ndim == 1:
        p = p[:, None]
    if t.shape != p.shape:
        raise ValueError(f"y_true has shape {t.shape} but y_pred has {p.shape}")
    return t, p


def _labels_and_units(target, labels, units, n_t):
    """Axis labels and units per target: given, else the target's, else generic."""
    tl, tu = _target_info(target)
    labels = list(labels) if labels is not None else (tl or (
        ["value"] if n_t == 1 else [f"target {i}" for i in range(n_t)]))
    units = list(units) if units is not None else (tu or [""] * n_t)
    if len(labels) != n_t or len(units) != n_t:
        raise ValueError(f"labels/units need {n_t} entries")
    return labels, units


def _one_to_one(fig, a, t, p, label, unit, met, max_points, err=None):
    """Predicted against true (points or, above ``max_points``, a density) with metrics."""
    su = _stat_unit(unit)
    lo = min(np.percentile(t, 0.5), np.percentile(p, 0.5))
    hi = max(np.percentile(t, 99.5), np.percentile(p, 99.5))
    pad = 0.05 * (hi - lo or 1.0)
    lo, hi = lo - pad, hi + pad
    if len(t) > max_points:
        hb = a.hexbin(t, p, gridsize=50, extent=(lo, hi, lo, hi), bins="log", mincnt=1,
                      cmap=_draw.cmap("arctic_r", 0.08, 0.95), linewidths=0)
        _draw.count_colorbar(fig, hb, a)
    else:
        if err is not None:
            a.errorbar(t, p, yerr=np.where(np.isfinite(err), err, 0.0), fmt="none",
                       ecolor="0.6", elinewidth=0.5, alpha=0.35, zorder=1)
        a.scatter(t, p, s=5, color=_draw.BLUE, alpha=0.5, edgecolors="none", zorder=2)
    a.plot([lo, hi], [lo, hi], color="k", lw=1.0, ls="--")
    a.set_xlim(lo, hi)
    a.set_ylim(lo, hi)
    a.set_aspect("equal")
    unit_txt = f" [{unit}]" if unit and su != "dex" else ""
    a.set_xlabel(f"True {label}{unit_txt}")
    a.set_ylabel(f"Predicted {label}{unit_txt}")
    su_txt = f" {su}" if su else ""
    a.text(0.04, 0.96,
           f"RMSE = {met['rmse']:.3f}{su_txt}\nNMAD = {met['nmad']:.3f}{su_txt}\n"
           f"bias = {met['bias']:+.3f}{su_txt}\n$N$ = {met['n']}".replace("-", "\u2212"),
           transform=a.transAxes, ha="left", va="top", fontsize=7.5,
           bbox={"boxstyle": "round,pad=0.3", "fc": "white", "ec": "0.7", "alpha": 0.9})


def _residuals(h, d, met, su):
    """Histogram of the residuals ``d`` (clipped at 4 RMSE or the 99th percentile)."""
    lim = max(4 * met["rmse"], np.percentile(np.abs(d), 99)) or 1.0
    h.hist(np.clip(d, -lim, lim), bins=40, range=(-lim, lim), color=_draw.BLUE, alpha=0.8)
    h.axvline(0, color="k", lw=0.8, ls="--")
    h.set_xlim(-lim, lim)
    h.set_xlabel(r"$\Delta$ = predicted $-$ true" + (f" [{su}]" if su else ""))
    h.set_ylabel("Galaxies")


@_draw.styled
def plot_history(history, *, ax=None, target_names=None):
    """Training curve: training loss and validation RMSE per epoch.

    Parameters
    ----------
    history : list of dict
        ``model.history_``: dicts with ``epoch``, ``train_loss`` and ``valid_rmse``
        (a number, or one per target; missing keys are skipped).
    ax : `~matplotlib.axes.Axes`, optional
    target_names : sequence of str, optional
        Legend names of the targets when ``valid_rmse`` has several.

    Returns
    -------
    `~matplotlib.figure.Figure`
    """
    from matplotlib.ticker import MaxNLocator

    fig, ax = _draw.fig_ax(ax, (3.6, 2.6))
    ep, loss, vr = _history_arrays(history)
    if ep.size == 0 or not (np.isfinite(loss).any() or np.isfinite(vr).any()):
        _draw.message(ax, "no training history")
        return fig
    handles = _plot_loss(ax, ep, loss)
    ax.set_xlabel("Epoch")
    ax.xaxis.set_major_locator(MaxNLocator(integer=True))
    n_t = vr.shape[1]
    if np.isfinite(vr).any():
        handles += _plot_valid_rmse(ax, ep, vr, target_names)
    ax.legend(handles=handles, loc="lower center", bbox_to_anchor=(0.5, 1.02), ncols=2,
              borderaxespad=0.0, fontsize=6.5 if n_t > 1 else 7.5, columnspacing=1.0)
    return fig


def _history_arrays(history):
    """Epochs, training loss and validation RMSE ``(epochs, n_targets)`` (NaN if absent)."""
    history = list(history or [])
    ep = np.array([h.get("epoch", i + 1) for i, h in enumerate(history)], dtype=float)
    loss = np.array([h.get("train_loss", np.nan) for h in history], dtype=float)
    n_t = max([np.size(h["valid_rmse"]) for h in history if h.get("valid_rmse") is not None]
              or [0])
    vr = np.full((len(history), n_t), np.nan)
    for i, h in enumerate(history):
        v = h.get("valid_rmse")
        if v is not None and np.size(v) == n_t:
            vr[i] = np.asarray(v, dtype=float).ravel()
    return ep, loss, vr


def _plot_loss(ax, ep, loss):
    """The training loss (log axis when positive); its legend handles."""
    if not np.isfinite(loss).any():
        return []
    handles = ax.plot(ep, loss, "o-", ms=3, color=_draw.BLUE, label="training loss")
    ax.set_ylabel("Training loss", color=_draw.BLUE)
    if np.all(loss[np.isfinite(loss)] > 0):
        ax.set_yscale("log")
        _draw.plain_log_ticks(ax.yaxis)
    return handles


def _plot_valid_rmse(ax, ep, vr, target_names):
    """Validation RMSE per target on a twin axis, with the best epoch starred."""
    import cmasher as cmr

    n_t = vr.shape[1]
    ax2 = ax.twinx()
    names = list(target_names) if target_names is not None and \
        len(target_names) == n_t else [f"target {j}" for j in range(n_t)]
    colors = [_draw.ACCENT] if n_t == 1 else cmr.take_cmap_colors(
        "cmr.ember", n_t, cmap_range=(0.25, 0.85))
    handles = []
    for j in range(n_t):
        lab = "validation RMSE" if n_t == 1 else f"valid. RMSE {names[j]}"
        handles += ax2.plot(ep, vr[:, j], "s-", ms=3, color=colors[j], label=lab)
    score = vr.mean(axis=1)  # NaN for epochs without validation
    if np.isfinite(score).any():
        best = int(np.nanargmin(np.where(np.isfinite(score), score, np.inf)))
        what = "" if n_t == 1 else "mean "
        handles += ax2.plot(ep[best], score[best] if n_t > 1 else vr[best, 0], "*",
                            ms=10, color=_draw.ACCENT, mec="k", mew=0.5, ls="none",
                            label=f"best {what}{score[best]:.3f} (epoch {ep[best]:.0f})")
    ax2.set_ylabel("Validation RMSE", color=_draw.ACCENT)
    ax2.minorticks_on()
    ax.tick_params(right=False, which="both")
    return handles


@_draw.styled
def plot_ablation(result, *, ax=None):
    """RMSE when only the N most frequent features are kept (from `ablation`).

    Parameters
    ----------
    result : AblationResult
    ax : `~matplotlib.axes.Axes`, optional

    Returns
    -------
    `~matplotlib.figure.Figure`
    """
    fig, ax = _draw.fig_ax(ax, (3.6, 2.6))
    top = result.top_n
    if len(top) == 0:
        _draw.message(ax, "no active features")
        return fig
    n = np.asarray(top["n_kept"], dtype=float)
    r = np.asarray(top["rmse"], dtype=float)
    ax.plot(np.maximum(n, 0.7), r, "o-", ms=4, color=_draw.BLUE,
            label="top-$N$ features kept")
    ax.axhline(result.full_rmse["mean"], color="k", ls="--", lw=0.9,
               label=f"all features: {result.full_rmse['mean']:.3f}")
    ax.set_xscale("log")
    ticks = n[n > 0]
    if ticks.size <= 10:
        ax.set_xticks(ticks, [f"{v:.0f}" for v in ticks])
        ax.tick_params(axis="x", which="minor", bottom=False, top=False)
    else:
        from matplotlib.ticker import ScalarFormatter
        ax.xaxis.set_major_formatter(ScalarFormatter())
    ax.set_xlabel("Number of most frequent features kept, $N$")
    ax.set_ylabel("RMSE" + (" (mean over targets)" if len(result.full_rmse) > 2 else ""))
    ax.legend(loc="best")
    return fig


@_draw.styled
def plot_feature_density(activations, *, ax=None, bins=20, n_features=None):
    """Histogram of log10 firing frequency over features (the SAE "feature density").

    Parameters
    ----------
    activations : array-like, shape (N, n_features), or (indices, values)
    ax : `~matplotlib.axes.Axes`, optional
    bins : int, optional
    n_features : int, optional
        Needed for the sparse pair form.

    Returns
    -------
    `~matplotlib.figure.Figure`

    Examples
    --------
    >>> import numpy as np
    >>> from sfnet.interpret import plot_feature_density
    >>> acts = np.zeros((100, 16))
    >>> acts[:, 3] = 1.0
    >>> acts[::10, 7] = 2.0
    >>> plot_feature_density(acts).axes[0].get_title()
    '14 of 16 features never fire (not shown)'
    """
    from matplotlib.ticker import MaxNLocator

    stats = feature_stats(activations, n_features=n_features)
    fig, ax = _draw.fig_ax(ax, (3.6, 2.6))
    frac = np.asarray(stats["fraction_active"], dtype=float)
    alive = frac[frac > 0]
    n_gal, n_feat = stats.meta["n_galaxies"], stats.meta["n_features"]
    if alive.size:
        lf = np.log10(alive)
        lo = min(lf.min(), np.log10(1.0 / max(n_gal, 1))) - 0.1
        ax.hist(lf, bins=bins, range=(lo, 0.05), color=_draw.BLUE, alpha=0.85,
                label=f"{alive.size} active features")
        k = stats.meta["max_active_per_galaxy"]
        if k:
            ax.axvline(np.log10(min(k / n_feat, 1.0)), color="k", ls=":", lw=1,
                       label=f"uniform use ($k/n$ = {k}/{n_feat})")
        ax.legend(loc="upper left")
    else:
        _draw.message(ax, "no active features")
    ax.set_xlabel(r"$\log_{10}$(fraction of galaxies where active)")
    ax.set_ylabel("Number of features")
    ax.yaxis.set_major_locator(MaxNLocator(integer=True))
    ax.tick_params(axis="y", which="minor", left=False, right=False)
    ax.set_title(f"{stats.meta['n_dead']} of {n_feat} features never fire (not shown)",
                 fontsize=8)
    return fig


# --------------------------------------------------------------------------- localisation

@_draw.styled
def plot_localization(model, sample, feature, n=6, *, activations=None):
    """Where a feature fires: its top galaxies with the upsampled layer4 map overlaid.

    Top row: the galaxy as the network sees it (after resize/crop) with contours
    of the map at 25, 50 and 75 % of the largest value shown; bottom row: the map
    on a common colour scale (so panels compare directly).

    Parameters
    ----------
    model : SparseFeatureNet
        Fitted model (``feature_maps``, ``input_images``, ``activations``).
    sample : GalaxySample or image array (N, H, W, 3)
    feature : int
    n : int, optional
        Number of galaxies: the ``n`` with the largest activation of ``feature``.
    activations : array-like, optional
        Precomputed ``model.activations(sample)`` (otherwise computed here).

    Returns
    -------
    `~matplotlib.figure.Figure`

    Examples
    --------
    >>> from sfnet.interpret import plot_localization
    >>> acts = model.activations(sample)                          # doctest: +SKIP
    >>> fig = plot_localization(model, sample, 12, activations=acts)  # doctest: +SKIP
    """
    from .maps import localization_maps

    n_features = int(model.n_features)
    feature = check_feature(feature, n_features)
    if int(n) < 1:
        raise ValueError(f"n must be at least 1, got {n}")
    acts = as_activations(model.activations(sample) if activations is None else activations,
                          n_features)
    check_length(acts.shape[0], len(sample), "the sample")
    a = acts[:, feature]
    top = _draw.top_indices(a, int(n))
    fig = _draw.figure((1.3 * max(len(top), 1) + 1.2, 3.2))
    if len(top) == 0:
        ax = fig.add_subplot()
        _draw.no_ticks(ax)
        _draw.message(ax, f"feature {feature} is never active in this sample")
        return fig
    raw = take_images(sample, top)
    shown = np.asarray(model.input_images(raw))
    maps = localization_maps(model, raw, feature, size=shown.shape[1:3])
    _map_panels(fig, shown, maps, a[top])
    h, w = model.feature_maps(raw[:1], [feature]).shape[2:]
    fig.suptitle(f"Feature {feature}: where it fires (top {len(top)} galaxies)\n"
                 f"layer4 map of {h}\u00d7{w} cells upsampled to "
                 f"{shown.shape[1]}\u00d7{shown.shape[2]} px", fontsize=8.5)
    return fig


def _map_panels(fig, shown, maps, a):
    """Images with map contours (top row) and the maps on a common scale (bottom row)."""
    ncol = len(maps)
    vmax = float(maps.max()) if maps.size and maps.max() > 0 else 1.0
    axes = fig.subplots(2, ncol, squeeze=False)
    im = None
    for k in range(ncol):
        top_ax, bot_ax = axes[0, k], axes[1, k]
        _draw.no_ticks(top_ax)
        _draw.no_ticks(bot_ax)
        top_ax.imshow(display_image(shown[k]))
        if maps[k].max() > 0:
            top_ax.contour(maps[k], levels=np.array([0.25, 0.5, 0.75]) * vmax,
                           colors=["#7fd3ff", "#35a7e8", "#0b5fa5"], linewidths=0.8)
        top_ax.set_title(f"a = {a[k]:.3g}", fontsize=7, pad=2)
        im = bot_ax.imshow(maps[k], cmap=_draw.cmap("ember"), vmin=0, vmax=vmax)
        bot_ax.set_xlabel(f"mean = {maps[k].mean():.3g}", fontsize=6.5, labelpad=2)
    fig.colorbar(im, ax=axes[1, :].tolist(), label="channel map", shrink=0.9)
