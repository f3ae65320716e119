"""Private drawing helpers of the figures in `sfnet.interpret.plots`.

The figure style (rcParams, accent colours, cmasher colour maps), figure and
axes creation without pyplot, small axis/label helpers, the thumbnail gallery
of galaxies, the annotated correlation heat map and the BPT frame (demarcation
curves, limits, region names).  matplotlib and cmasher are imported inside the
functions, so importing this module stays cheap.
"""

import functools

import numpy as np

from ...catalog import PROPERTIES, property_label
from .._core import display_image, get_catalog, property_values, take_images
from ..bpt import bpt_class, kauffmann03, kewley01

_RC = {
    "font.size": 9, "axes.labelsize": 9, "axes.titlesize": 9,
    "xtick.labelsize": 8, "ytick.labelsize": 8, "legend.fontsize": 7.5,
    "legend.frameon": False, "figure.titlesize": 10, "axes.linewidth": 0.8,
    "xtick.direction": "in", "ytick.direction": "in", "xtick.top": True,
    "ytick.right": True, "xtick.minor.visible": True, "ytick.minor.visible": True,
    "image.origin": "upper",
}

#: Colour of highlighted lines and markers (cmasher ember, mid-dark red-orange).
ACCENT = "#c4321f"
BLUE = "#2a6fb3"


def styled(func):
    """Run ``func`` with sfnet's figure style (rcParams) in effect."""

    @functools.wraps(func)
    def wrapper(*args, **kwargs):
        import matplotlib

        with matplotlib.rc_context(_RC):
            return func(*args, **kwargs)

    return wrapper


def cmap(name, lo=0.0, hi=1.0, bad=None):
    """The cmasher colour map ``cmr.<name>``, optionally cut to [lo, hi]."""
    import cmasher as cmr
    import matplotlib

    out = matplotlib.colormaps[f"cmr.{name}"] if (lo, hi) == (0.0, 1.0) else \
        cmr.get_sub_cmap(f"cmr.{name}", lo, hi)
    if bad is not None:
        out = out.with_extremes(bad=bad)
    return out


def figure(figsize, layout="constrained"):
    """A `matplotlib.figure.Figure` outside pyplot's registry."""
    from matplotlib.figure import Figure

    return Figure(figsize=figsize, layout=layout)


def fig_ax(ax, figsize):
    """``(figure, ax)``: the given axes, or a new figure with one axes."""
    if ax is None:
        fig = figure(figsize)
        return fig, fig.add_subplot()
    return ax.figure, ax


def no_ticks(ax):
    """Remove ticks and thin the frame (image panels)."""
    ax.set_xticks([])
    ax.set_yticks([])
    ax.minorticks_off()
    for side in ax.spines.values():
        side.set_linewidth(0.4)


def outline(width=2.0, color="white"):
    """Path effect drawing a halo around text."""
    from matplotlib import patheffects

    return [patheffects.withStroke(linewidth=width, foreground=color)]


def message(ax, text):
    """A grey note in the middle of ``ax`` (empty plots say why)."""
    ax.text(0.5, 0.5, text, ha="center", va="center", transform=ax.transAxes,
            fontsize=8, color="0.35", wrap=True)


def plain_log_ticks(axis):
    """Label a log axis with plain numbers (0.5, 1, 2) instead of 5x10^-1."""
    from matplotlib.ticker import FuncFormatter

    lo, hi = sorted(axis.get_view_interval())
    fmt = FuncFormatter(lambda v, _: f"{v:g}")
    axis.set_major_formatter(fmt)
    # label minor ticks too when the range is under a decade (else none is labelled)
    axis.set_minor_formatter(fmt if hi / max(lo, 1e-300) < 10 else
                             FuncFormatter(lambda v, _: ""))


def count_colorbar(fig, mappable, ax):
    """Colour bar of a log-scaled count map with plain-number tick labels."""
    from matplotlib.ticker import FuncFormatter, LogLocator, NullFormatter

    cb = fig.colorbar(mappable, ax=ax, label="Galaxies per bin", pad=0.01)
    cb.ax.yaxis.set_major_locator(LogLocator(subs=(1.0, 2.0, 5.0)))
    cb.ax.yaxis.set_major_formatter(FuncFormatter(lambda v, _: f"{v:g}"))
    cb.ax.yaxis.set_minor_formatter(NullFormatter())
    return cb


def top_indices(a, n):
    """Indices of the n largest positive values of a (descending)."""
    order = np.argsort(-a, kind="stable")
    order = order[a[order] > 0]
    return order[:n]


def fmt(v, digits=2, signed=False):
    """A number for a legend; ``"n/a"`` for None or non-finite."""
    if v is None or not np.isfinite(v):
        return "n/a"
    return f"{v:+.{digits}f}" if signed else f"{v:.{digits}f}"


def coefficient_label(method):
    """Colour-bar label of a correlation coefficient."""
    return "Pearson $r$" if method == "pearson" else r"Spearman $\rho$"


# --------------------------------------------------------------------------- heat maps

def correlation_image(ax, mat, **kwargs):
    """Draw a correlation matrix in [-1, 1] (cmasher fusion_r; NaN grey)."""
    return ax.imshow(mat, cmap=cmap("fusion_r", 0.08, 0.92, bad="0.85"), vmin=-1, vmax=1,
                     interpolation="nearest", **kwargs)


def annotate_cells(ax, mat):
    """Print each finite coefficient of ``mat`` in its cell."""
    for i in range(mat.shape[0]):
        for j in range(mat.shape[1]):
            if np.isfinite(mat[i, j]):
                ax.text(j, i, f"{mat[i, j]:.2f}", ha="center", va="center", fontsize=6,
                        color="white" if abs(mat[i, j]) > 0.6 else "black")


def matrix_axes(ax, ylabel):
    """Tick style of a heat map: no minor ticks, short major ticks on two sides."""
    ax.minorticks_off()
    ax.tick_params(top=False, right=False, length=2)
    ax.set_ylabel(ylabel)


# --------------------------------------------------------------------------- galleries

def gallery(fig, sample, a, top, feature, ncols=3, nrows=None, label_bpt=None,
            columns=()):
    """Draw thumbnails of ``sample[top]`` into (sub)figure ``fig``; return the axes."""
    n = len(top)
    nrows = nrows or max(1, int(np.ceil(max(n, 1) / ncols)))
    axes = fig.subplots(nrows, ncols, squeeze=False)
    images = take_images(sample, top)
    cat = get_catalog(sample) if hasattr(sample, "catalog") else None
    id_column = getattr(sample, "id_column", "objID")
    ids = np.asarray(cat[id_column]) if cat is not None and id_column in cat.colnames else None
    values = {c: property_values(cat, c) for c in columns} if cat is not None else {}
    cls = bpt_class(*label_bpt) if label_bpt is not None else None
    for k, ax in enumerate(axes.ravel()):
        no_ticks(ax)
        if k >= n:
            ax.set_axis_off()
            continue
        i = top[k]
        ax.imshow(display_image(images[k]),
                  interpolation="nearest" if images.shape[1] < 48 else None)
        ax.text(0.04, 0.96, str(k + 1), transform=ax.transAxes, ha="left", va="top",
                color="white", fontsize=7, fontweight="bold",
                path_effects=outline(1.5, "black"))
        title = f"a = {a[i]:.3g}"
        if cls is not None and cls[i] != "unclassified":
            title += f", {cls[i]}"
        ax.set_title(title, fontsize=6.5, pad=2)
        _thumbnail_label(ax, i, columns, values, ids)
    if n == 0:
        message(axes[0, 0] if axes.size == 1 else axes.ravel()[len(axes.ravel()) // 2],
                f"feature {feature} is never active")
    return axes


def _thumbnail_label(ax, i, columns, values, ids):
    lines = [f"{property_label(c, short=True)} = {values[c][i]:.2f}"
             for c in columns if np.isfinite(values[c][i])]
    if ids is not None:
        lines.append(f"{ids[i]}")
    if lines:
        ax.set_xlabel("\n".join(lines), fontsize=5.5, labelpad=2)


# --------------------------------------------------------------------------- BPT frame

def bpt_limits(x, y):
    """Axis limits of a BPT diagram: the usual window, widened to hold 99 % of the points."""
    xlim = [-1.8, 0.8]
    ylim = [-1.3, 1.5]
    ok = np.isfinite(x) & np.isfinite(y)
    if ok.sum() > 10:
        lo, hi = np.percentile(x[ok], [0.5, 99.5])
        xlim = [min(xlim[0], lo - 0.1), max(xlim[1], hi + 0.1)]
        lo, hi = np.percentile(y[ok], [0.5, 99.5])
        ylim = [min(ylim[0], lo - 0.1), max(ylim[1], hi + 0.1)]
    return xlim, ylim


def draw_bpt_frame(ax, xlim, ylim, legend=True):
    """The Kauffmann+03 and Kewley+01 curves, axis labels and region names."""
    xs = np.linspace(xlim[0], 0.0499, 300)
    ax.plot(xs, kauffmann03(xs), color="k", ls="--", lw=1.1, label="Kauffmann+03")
    xs = np.linspace(xlim[0], 0.4699, 300)
    ax.plot(xs, kewley01(xs), color="k", ls="-", lw=1.1, label="Kewley+01")
    ax.set_xlim(xlim)
    ax.set_ylim(ylim)
    ax.set_xlabel(PROPERTIES["log_nii_ha"].label)
    ax.set_ylabel(PROPERTIES["log_oiii_hb"].label)
    style = {"transform": ax.transAxes, "fontsize": 7.5, "color": "0.3",
             "path_effects": outline()}
    ax.text(0.04, 0.04, "Star-forming", ha="left", va="bottom", **style)
    ax.text(0.96, 0.04, "Composite", ha="right", va="bottom", **style)
    ax.text(0.96, 0.96, "AGN", ha="right", va="top", **style)
    if legend:
        ax.legend(loc="upper left", handlelength=1.8)
