"""The BPT diagram of galaxies, coloured by one feature's activation (`plot_bpt`) or by
the predicted probability of the AGN class (`plot_bpt_probability`)."""

import numpy as np

from .._core import as_activations, check_feature, check_length
from ..bpt import has_line_errors, line_ratios
from . import _plotting as _draw

__all__ = ["plot_bpt", "plot_bpt_probability"]


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
    x, y = line_ratios(sample, min_snr=min_snr if is_catalog and has_line_errors(sample)
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
def plot_bpt_probability(mean, probabilities, *, errors=None, ax=None, max_errorbars=200):
    """Predicted BPT line ratios coloured by P(AGN).

    Parameters
    ----------
    mean : array-like, shape (N, 4)
        Predicted log fluxes in the ``"bpt_lines"`` order (log_N2, log_Ha,
        log_O3, log_Hb), e.g. ``predict(X, return_cov=True)[0]``.
    probabilities : array-like, shape (N, 3)
        P(star-forming), P(composite), P(AGN) (`sfnet.interpret.bpt_probabilities`).
    errors : tuple of two arrays, optional
        1σ errors of the two ratios (the last two outputs of
        `sfnet.interpret.line_ratio_errors`), drawn as error bars for up to
        ``max_errorbars`` galaxies.
    ax : `~matplotlib.axes.Axes`, optional
    max_errorbars : int
        Error bars of a random (seeded) subset of this many galaxies at most.

    Returns
    -------
    `~matplotlib.figure.Figure`
    """
    x, y = line_ratios(mean)
    p = np.asarray(probabilities, dtype=np.float64)
    if p.shape != (len(x), 3):
        raise ValueError(f"probabilities must have shape ({len(x)}, 3), got {p.shape}")
    fig, ax = _draw.fig_ax(ax, (3.9, 3.3))
    xlim, ylim = _draw.bpt_limits(x, y)
    ok = np.isfinite(x) & np.isfinite(y) & np.isfinite(p[:, 2])
    if errors is not None:
        sx, sy = (np.asarray(e, dtype=np.float64) for e in errors)
        show = np.flatnonzero(ok)
        if len(show) > max_errorbars:
            show = np.sort(np.random.default_rng(0).choice(show, max_errorbars, replace=False))
        ax.errorbar(x[show], y[show], xerr=sx[show], yerr=sy[show], fmt="none",
                    ecolor="0.75", elinewidth=0.5, zorder=1)
    order = np.flatnonzero(ok)[np.argsort(p[ok, 2], kind="stable")]
    sc = ax.scatter(x[order], y[order], c=p[order, 2], s=9, vmin=0, vmax=1,
                    cmap=_draw.cmap("ember", 0.12, 0.95), edgecolors="none", zorder=2)
    fig.colorbar(sc, ax=ax, pad=0.01, label="P(AGN)")
    _draw.draw_bpt_frame(ax, xlim, ylim)
    ax.set_title(f"Predicted BPT classes ({int(ok.sum())} galaxies)")
    return fig
