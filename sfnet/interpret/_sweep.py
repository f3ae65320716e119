"""The accuracy-sparsity figure of a k sweep (``sfnet sweep``)."""

import math

import numpy as np

__all__ = ["plot_k_sweep"]

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


def plot_k_sweep(table, *, references=None, figsize=(9.0, 3.6)):
    """RMSE and number of active features against k, with the reference RMSEs.

    Parameters
    ----------
    table : `~astropy.table.Table`
        The table of `sfnet.sweep.run_k_sweep` (or ``sweep.ecsv``), with columns
        ``k``, ``rmse``, ``n_active`` and optionally ``n_frequent``.
    references : dict, optional
        Horizontal lines on the RMSE panel, from ``mean_rmse``,
        ``photometric_linear_rmse``, ``photometric_gbm_rmse`` and
        ``oracle_rmse``; default ``table.meta``.  Missing or NaN values are
        not drawn.
    figsize : tuple, optional
        Figure size in inches.

    Returns
    -------
    `~matplotlib.figure.Figure`
        Left: held-out RMSE of the SFNet against k (log2 axis; the largest k,
        512 for ResNet-18, is the dense network) with the references as
        horizontal lines.  Right: features active in any galaxy and in more
        than 1 % of them, with the line ``n = k`` for scale.

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

    fig = Figure(figsize=figsize, layout="constrained")
    ax, ax2 = fig.subplots(1, 2)
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
    return fig
