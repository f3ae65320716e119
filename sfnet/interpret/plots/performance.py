"""Figures of how well a model does: predictions against truth, the training history,
ablation, the calibration of the error bars (overall and by subgroup), accuracy against k
and the out-of-distribution scores."""

import math

import numpy as np

from ..._utils import regression_metrics
from .._core import plain, take_images
from ..calibration import ONE_SIGMA, coverage, coverage_by, coverage_table
from . import _plotting as _draw

__all__ = ["plot_predictions", "plot_history", "plot_ablation", "plot_calibration",
           "plot_coverage_by", "plot_k_sweep", "plot_ood"]


def _target_info(target):
    labels, units = None, None
    if target is not None:
        from ...targets import get_target

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


def plot_calibration(truth, mean, std, *, names=None, title=None):
    """Coverage against nominal level, and the histogram of ``(truth - mean) / std``.

    Parameters
    ----------
    truth, mean, std : array-like
        ``(N,)`` or ``(N, n_targets)``, e.g. held-out targets and
        ``model.predict(X, return_std=True)``.
    names : list of str, optional
        Target names for the legend.
    title : str, optional

    Returns
    -------
    matplotlib.figure.Figure
        Left: observed coverage of ``mean ± z std`` against the nominal level
        (calibrated error bars follow the diagonal; below it they are too
        small).  Right: the z-score histogram with the unit Gaussian.
    """
    import matplotlib
    from matplotlib.figure import Figure

    coverage(truth, mean, std)  # checks the arrays: same shapes, std >= 0
    truth, mean, std = np.broadcast_arrays(*(np.asarray(a, dtype=np.float64)
                                             for a in (truth, mean, std)))
    if truth.ndim == 1:
        truth, mean, std = truth[:, None], mean[:, None], std[:, None]
    names = names or ([""] if truth.shape[1] == 1 else
                      [f"target {j}" for j in range(truth.shape[1])])
    table = coverage_table(truth, mean, std, np.linspace(0.02, 0.98, 49),
                           names=[str(j) for j in range(truth.shape[1])])
    with matplotlib.rc_context({"font.size": 9, "legend.frameon": False,
                                "xtick.direction": "in", "ytick.direction": "in"}):
        fig = Figure(figsize=(7.2, 3.2), layout="constrained")
        ax, axz = fig.subplots(1, 2)
        ax.plot([0, 1], [0, 1], color="0.6", lw=0.8, ls="--", label="calibrated")
        for j, name in enumerate(names):
            ax.plot(table["nominal"], table[f"coverage_{j}"], lw=1.5, label=name or "observed")
        for p in (ONE_SIGMA, 0.95):
            c = coverage(truth, mean, std, p)[0]
            ax.plot([p] * len(c), c, "o", ms=4, color="k")
        ax.set(xlim=(0, 1), ylim=(0, 1), xlabel="nominal coverage", ylabel="observed coverage",
               aspect="equal")
        ax.legend(loc="upper left")
        grid = np.linspace(-4, 4, 201)
        for j, name in enumerate(names):
            ok = np.isfinite(truth[:, j]) & np.isfinite(mean[:, j]) & (std[:, j] > 0)
            zs = (truth[ok, j] - mean[ok, j]) / std[ok, j]
            axz.hist(np.clip(zs, -4, 4), bins=np.linspace(-4, 4, 33), density=True,
                     histtype="step", lw=1.2, label=name or None)
        axz.plot(grid, np.exp(-0.5 * grid ** 2) / np.sqrt(2 * np.pi), color="k", lw=0.8,
                 label="N(0, 1)")
        axz.set(xlabel="(truth − mean) / std", ylabel="density", xlim=(-4, 4))
        axz.legend(loc="upper right")
        if title:
            fig.suptitle(title)
    return fig


def plot_coverage_by(truth=None, mean=None, std=None, *, by=None, bins=5, table=None,
                     label=None, title=None):
    """Coverage of the error bars, and the factor they would need, in bins of ``by``.

    Parameters
    ----------
    truth, mean, std, by, bins
        As in `~sfnet.interpret.coverage_by` (one target); not needed when
        ``table`` is given.
    table : astropy.table.Table, optional
        A `~sfnet.interpret.coverage_by` result to draw.
    label : str, optional
        Axis label of ``by``.
    title : str, optional

    Returns
    -------
    matplotlib.figure.Figure
        Left: the 68.27 % and 95 % coverage per bin with their binomial
        (Wilson) intervals, against the nominal levels (dashed).  Right: the
        factor ``std_scale`` each bin's error bars would need (1 = calibrated).
    """
    import matplotlib
    from matplotlib.figure import Figure

    if table is None:
        if truth is None or mean is None or std is None or by is None:
            raise ValueError("give truth, mean, std and by, or a coverage_by table")
        table = coverage_by(truth, mean, std, by=by, bins=bins)
    x = np.asarray(table["bin_center"], dtype=np.float64)
    lo, hi = np.asarray(table["bin_lo"]), np.asarray(table["bin_hi"])
    with matplotlib.rc_context({"font.size": 9, "legend.frameon": False,
                                "xtick.direction": "in", "ytick.direction": "in"}):
        fig = Figure(figsize=(7.2, 3.0), layout="constrained")
        ax, axs = fig.subplots(1, 2)
        for key, nominal, colour in (("68", ONE_SIGMA, "tab:blue"), ("95", 0.95, "tab:red")):
            c = np.asarray(table[f"coverage_{key}"], dtype=np.float64)
            err = np.abs(np.stack([c - np.asarray(table[f"coverage_{key}_lo"]),
                                   np.asarray(table[f"coverage_{key}_hi"]) - c]))
            ax.errorbar(x, c, yerr=err, fmt="o-", ms=4, lw=1.2, capsize=2, color=colour,
                        label=f"{key} %")
            ax.axhline(nominal, color=colour, lw=0.8, ls="--")
        ax.set(ylim=(0, 1.02), xlabel=label or "", ylabel="observed coverage")
        ax.legend(loc="lower left")
        axs.step(np.r_[lo, hi[-1:]], np.r_[table["std_scale"], table["std_scale"][-1:]],
                 where="post", color="k", lw=1.2)
        axs.axhline(1.0, color="0.6", lw=0.8, ls="--")
        axs.set(xlabel=label or "", ylabel="factor the σ would need")
        if title:
            fig.suptitle(title)
    return fig


#: Reference lines drawn from ``table.meta``: key -> (label, colour, line style).
_REFERENCES = {
    "mean_rmse": ("mean predictor", "0.55", ":"),
    "photometric_linear_rmse": ("photometric linear fit", "tab:orange", "-."),
    "photometric_gbm_rmse": ("photometric GBM", "tab:red", "--"),
    "oracle_rmse": ("floor (hidden scatter)", "black", "-"),
}


def _column(table, name):
    try:
        return np.asarray(table[name], dtype=float)
    except (KeyError, ValueError):
        raise ValueError(f"table needs a {name!r} column (as written by sfnet sweep)") from None


def _k_ticks(ax, k):
    """Label the x axis with the k values themselves (1, 2, 4, ..., 512)."""
    from matplotlib.ticker import NullLocator

    ax.set_xticks(k)
    ax.set_xticklabels([f"{v:g}" for v in k])
    ax.xaxis.set_minor_locator(NullLocator())


#: The interpretability scores of the sweep table drawn by `plot_k_sweep`: label, style.
_INTERPRETABILITY = {
    "disentanglement": ("disentanglement (D)", "tab:red", "o-"),
    "completeness": ("completeness (C)", "tab:orange", "s-"),
    "informativeness": ("informativeness (I)", "tab:olive", "^-"),
    "seed_match": ("seed match", "tab:cyan", "D--"),
}


def plot_k_sweep(table, *, references=None, figsize=None):
    """RMSE, active features and (when measured) interpretability against k.

    Parameters
    ----------
    table : `~astropy.table.Table`
        The table of `sfnet.sweep.run_k_sweep` (or ``sweep.ecsv``), with columns
        ``k``, ``rmse``, ``n_active`` and optionally ``n_frequent`` and the
        interpretability scores ``disentanglement``, ``completeness``,
        ``informativeness`` and ``seed_match``.
    references : dict, optional
        Horizontal lines on the RMSE panel, from ``mean_rmse``,
        ``photometric_linear_rmse``, ``photometric_gbm_rmse`` and
        ``oracle_rmse``; default ``table.meta``.  Missing or NaN values are
        not drawn.
    figsize : tuple, optional
        Figure size in inches (default: 9 x 3.6, 13 x 3.6 with the third panel).

    Returns
    -------
    `~matplotlib.figure.Figure`
        Left: held-out RMSE of the SFNet against k (log2 axis; the largest k,
        512 for ResNet-18, is the dense network) with the references as
        horizontal lines.  Middle: features active in any galaxy and in more
        than 1 % of them, with the line ``n = k`` for scale.  Right, only when
        the table has a finite interpretability score: each score against k
        (all in [0, 1]), so the accuracy-interpretability trade-off is read
        across the first and last panels.

    Examples
    --------
    >>> from astropy.table import Table
    >>> from sfnet.interpret import plot_k_sweep
    >>> t = Table({"k": [1, 4, 512], "rmse": [0.12, 0.10, 0.09], "n_active": [3, 9, 400]},
    ...           meta={"oracle_rmse": 0.08, "photometric_gbm_rmse": 0.14})
    >>> fig = plot_k_sweep(t)
    >>> [line.get_label() for line in fig.axes[0].get_lines()]
    ['SFNet', 'photometric GBM', 'floor (hidden scatter)']
    """
    from matplotlib.figure import Figure

    if not hasattr(table, "colnames") and not isinstance(table, dict):
        raise TypeError(f"table must be an astropy Table, got {type(table).__name__}")
    k = _column(table, "k")
    rmse = _column(table, "rmse")
    active = _column(table, "n_active")
    if k.size == 0:
        raise ValueError("table has no rows")
    order = np.argsort(k)
    k, rmse, active = k[order], rmse[order], active[order]
    names = table.colnames if hasattr(table, "colnames") else list(table)
    frequent = _column(table, "n_frequent")[order] if "n_frequent" in names else None
    if references is None:
        references = dict(getattr(table, "meta", {}) or {})
    elif not isinstance(references, dict):
        raise TypeError(f"references must be a dict, got {type(references).__name__}")

    scores = {}
    for name in _INTERPRETABILITY:
        if name in names:
            values = _column(table, name)[order]
            if np.isfinite(values).any():
                scores[name] = values
    if figsize is None:
        figsize = (13.0, 3.6) if scores else (9.0, 3.6)
    fig = Figure(figsize=figsize, layout="constrained")
    axes = fig.subplots(1, 3 if scores else 2)
    ax, ax2 = axes[0], axes[1]
    unit = getattr(table["rmse"], "unit", None) if hasattr(table, "colnames") else None
    ax.plot(k, rmse, "o-", color="tab:blue", label="SFNet")
    for key, (label, colour, style) in _REFERENCES.items():
        value = references.get(key)
        try:
            value = float(value)
        except (TypeError, ValueError):
            continue
        if math.isfinite(value):
            ax.axhline(value, color=colour, ls=style, lw=1.2, label=label)
    ax.set_xscale("log", base=2)
    _k_ticks(ax, k)
    ax.set_xlabel("k (active features per galaxy)")
    ax.set_ylabel(f"held-out RMSE [{unit}]" if unit else "held-out RMSE")
    ax.set_title("accuracy")
    ax.legend(fontsize=7)

    ax2.plot(k, active, "o-", color="tab:green", label="active in any galaxy")
    if frequent is not None:
        ax2.plot(k, frequent, "s--", color="tab:purple", label="active in > 1% of galaxies")
    ax2.plot(k, k, ":", color="0.6", label="n = k")
    ax2.set_xscale("log", base=2)
    _k_ticks(ax2, k)
    ax2.set_yscale("log")
    ax2.set_xlabel("k (active features per galaxy)")
    ax2.set_ylabel("number of features")
    ax2.set_title("sparsity")
    ax2.legend(fontsize=7)

    if scores:
        ax3 = axes[2]
        for name, values in scores.items():
            label, colour, style = _INTERPRETABILITY[name]
            ax3.plot(k, values, style, color=colour, label=label)
        ax3.set_xscale("log", base=2)
        _k_ticks(ax3, k)
        ax3.set_ylim(-0.02, 1.02)
        ax3.set_xlabel("k (active features per galaxy)")
        ax3.set_ylabel("score (1: best)")
        ax3.set_title("interpretability")
        ax3.legend(fontsize=7)
    return fig


@_draw.styled
def plot_ood(scores, threshold, *, sample=None, n=6, ncols=3):
    """The distribution of out-of-distribution scores against the flag threshold,
    and the images of the most unusual galaxies.

    Parameters
    ----------
    scores : array-like, shape (N,)
        ``model.ood_score(sample)`` (higher: less like the training galaxies).
    threshold : float
        The flag threshold, ``model.ood_.threshold``.
    sample : GalaxySample or image array, optional
        The galaxies scored: the ``n`` highest-scoring are shown beside the
        histogram (none without ``sample``).
    n : int
        Galaxies shown (0: the histogram only).
    ncols : int
        Columns of the thumbnail grid.

    Returns
    -------
    matplotlib.figure.Figure
        Left: histogram of the scores (logarithmic when they span more than a
        factor 20) with the threshold and the fraction above it.  Right: the
        ``n`` highest scores' images, numbered by rank, titled with the score.
    """
    scores = np.asarray(scores, dtype=np.float64)
    if scores.ndim != 1 or not len(scores):
        raise ValueError(f"scores must be a non-empty 1-d array, got shape {scores.shape}")
    threshold = float(threshold)
    if isinstance(n, bool) or not isinstance(n, (int, np.integer)) or n < 0:
        raise ValueError(f"n must be a non-negative integer, got {n!r}")
    if sample is not None and len(sample) != len(scores):
        raise ValueError(f"sample has {len(sample)} galaxies but scores has {len(scores)}")
    shown = n if sample is not None else 0
    fig = _draw.figure((7.2 if shown else 3.6, 3.0))
    if shown:
        left, right = fig.subfigures(1, 2, width_ratios=(1.1, 1))
    else:
        left, right = fig, None
    ax = left.subplots()
    ok = np.isfinite(scores)
    if not ok.any():
        raise ValueError("scores has no finite value")
    vals = scores[ok]
    lo, hi = max(vals.min(), 1e-6), max(vals.max(), threshold)
    log = hi / lo > 20
    bins = np.geomspace(lo, hi * 1.001, 40) if log else np.linspace(min(lo, threshold),
                                                                      hi * 1.001, 40)
    ax.hist(vals, bins=bins, color=_draw.BLUE, alpha=0.8, histtype="stepfilled")
    if log:
        ax.set_xscale("log")
    above = float(np.mean(vals > threshold)) if len(vals) else float("nan")
    ax.axvline(threshold, color=_draw.ACCENT, lw=1.2, ls="--",
               label=f"threshold {threshold:.3g}\n({100 * above:.1f}% above)")
    ax.legend(loc="best")
    ax.set(xlabel="OOD score (Mahalanobis distance)", ylabel="galaxies")
    if shown:
        order = np.argsort(np.where(ok, -scores, np.inf), kind="stable")[:shown]
        images = take_images(sample, order) if len(order) else []
        nrows = max(1, int(np.ceil(len(order) / ncols)))
        axes = right.subplots(nrows, ncols, squeeze=False)
        for k, a in enumerate(axes.ravel()):
            _draw.no_ticks(a)
            if k >= len(order):
                a.set_axis_off()
                continue
            a.imshow(_draw.display_image(images[k]),
                     interpolation="nearest" if images.shape[1] < 48 else None)
            a.set_title(f"{k + 1}: {scores[order[k]]:.3g}", fontsize=7, pad=2,
                        color=_draw.ACCENT if scores[order[k]] > threshold else "black")
        right.suptitle("most unusual", fontsize=8)
    return fig
