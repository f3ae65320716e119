"""Figures of single features: top galaxies, activation against a property, correlations,
activation density and localisation maps."""

import numpy as np

from ...catalog import property_label
from .._core import (as_activations, check_feature, check_length,
                     get_catalog, head_of, pearson, property_columns, property_values,
                     spearman, take_images)
from ..stats import feature_correlation_matrix, feature_correlations, feature_stats
from . import _plotting as _draw

__all__ = ["plot_max_activating", "plot_activation_vs", "plot_feature_correlations",
           "plot_property_correlations", "plot_feature_density", "plot_localization"]


def _acts_for(sample, activations, feature):
    """Dense activations checked against the sample, and the feature index."""
    acts = as_activations(activations)
    check_length(acts.shape[0], len(sample), "the sample")
    return acts, check_feature(feature, acts.shape[1])


def _most_frequent(acts, max_features):
    """The ``max_features`` most frequently active features."""
    stats = feature_stats(acts, include_dead=False)
    return np.asarray(stats["feature"][:max_features])



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
    from ..maps import localization_maps

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
        top_ax.imshow(_draw.display_image(shown[k]))
        if maps[k].max() > 0:
            top_ax.contour(maps[k], levels=np.array([0.25, 0.5, 0.75]) * vmax,
                           colors=["#7fd3ff", "#35a7e8", "#0b5fa5"], linewidths=0.8)
        top_ax.set_title(f"a = {a[k]:.3g}", fontsize=7, pad=2)
        im = bot_ax.imshow(maps[k], cmap=_draw.cmap("ember"), vmin=0, vmax=vmax)
        bot_ax.set_xlabel(f"mean = {maps[k].mean():.3g}", fontsize=6.5, labelpad=2)
    fig.colorbar(im, ax=axes[1, :].tolist(), label="channel map", shrink=0.9)
