"""Named regression targets, their catalog columns and quality cuts.

Two targets follow Wu (2025):

``"metallicity"``
    Gas-phase metallicity 12 + log(O/H), the MPA-JHU ``oh_p50`` column
    (Tremonti et al. 2004).  Rows are kept when ``oh_p50 > 0``,
    ``lgm_tot_p50 > 0`` and ``sfr_tot_p50 > -10`` (MPA-JHU writes -9999 for
    missing values), the cuts of the paper.
``"bpt_lines"``
    The four BPT emission-line log fluxes ``log_N2, log_Ha, log_O3, log_Hb`` =
    log10 of ``nii_6584_flux, h_alpha_flux, oiii_5007_flux, h_beta_flux``
    (MPA-JHU units of 1e-17 erg s-1 cm-2).  Rows are kept when every line has
    flux / error > 3 and flux < 1e5, as in the paper.

Any list of numeric catalog column names is also a target; its rows are kept
where all values are finite.
"""

from dataclasses import dataclass, field

import numpy as np

from ._utils import as_float64

__all__ = ["Target", "get_target", "TARGETS", "BPT_LINES"]

#: Derived column -> (flux column, error column) for the BPT target.
BPT_LINES = {
    "log_N2": ("nii_6584_flux", "nii_6584_flux_err"),
    "log_Ha": ("h_alpha_flux", "h_alpha_flux_err"),
    "log_O3": ("oiii_5007_flux", "oiii_5007_flux_err"),
    "log_Hb": ("h_beta_flux", "h_beta_flux_err"),
}

_LINE_UNIT = "dex(1e-17 erg / (s cm2))"


@dataclass(frozen=True)
class Target:
    """A regression target: which columns to predict and which rows are usable.

    Parameters
    ----------
    name : str
        Short name (``"metallicity"``, ``"bpt_lines"`` or the joined column names).
    columns : tuple of str
        Output columns, in prediction order.  They exist in the catalog after
        :meth:`prepare`.
    units : tuple of str
        Unit string of each output (astropy syntax, ``""`` if dimensionless).
    labels : tuple of str
        Axis labels for plots (matplotlib mathtext).
    required : tuple of str
        Catalog columns the target needs.
    """

    name: str
    columns: tuple
    units: tuple
    labels: tuple
    required: tuple = field(default=())

    def _check(self, catalog):
        missing = [c for c in self.required if c not in catalog.colnames]
        if missing:
            raise ValueError(
                f"target {self.name!r} needs catalog column(s) {missing}; "
                f"the catalog has {catalog.colnames}")

    def prepare(self, catalog):
        """Return ``catalog`` with the target's derived columns added (a copy if any are added)."""
        self._check(catalog)
        if self.name != "bpt_lines" or all(c in catalog.colnames for c in BPT_LINES):
            return catalog
        from astropy.table import Column

        catalog = catalog.copy(copy_data=False)
        for name, (flux, _) in BPT_LINES.items():
            f = _plain(catalog[flux])
            with np.errstate(divide="ignore", invalid="ignore"):
                logf = np.where(f > 0, np.log10(np.where(f > 0, f, 1.0)), np.nan)
            catalog[name] = Column(logf, unit=_LINE_UNIT,
                                   description=f"log10 of {flux}")
        return catalog

    def mask(self, catalog):
        """Boolean array: rows that pass the target's quality cuts."""
        self._check(catalog)
        n = len(catalog)
        if self.name == "metallicity":
            oh = _plain(catalog["oh_p50"])
            keep = (oh > 0) & (_plain(catalog["lgm_tot_p50"]) > 0) & (
                _plain(catalog["sfr_tot_p50"]) > -10)
        elif self.name == "bpt_lines":
            keep = np.ones(n, dtype=bool)
            for flux, err in BPT_LINES.values():
                f = _plain(catalog[flux])
                e = _plain(catalog[err])
                with np.errstate(divide="ignore", invalid="ignore"):
                    keep &= (e > 0) & (f / e > 3) & (f < 1e5)
        else:
            keep = np.ones(n, dtype=bool)
        values = self.values(catalog, check=False)
        keep &= np.all(np.isfinite(values), axis=1)
        return keep

    def values(self, catalog, check=True):
        """Target values, float64 of shape ``(N, n_targets)``.

        With ``check=True`` a `ValueError` names the column holding NaN or inf.
        """
        catalog = self.prepare(catalog)
        out = np.empty((len(catalog), len(self.columns)), dtype=np.float64)
        for j, col in enumerate(self.columns):
            if col not in catalog.colnames:
                raise ValueError(f"target column {col!r} is not in the catalog")
            out[:, j] = _plain(catalog[col])
            if check and not np.all(np.isfinite(out[:, j])):
                bad = int(np.sum(~np.isfinite(out[:, j])))
                raise ValueError(
                    f"target column {col!r} has {bad} NaN/inf value(s); apply the "
                    f"target's quality cuts first (sample.select({self.name!r}))")
        return out


_plain = as_float64


TARGETS = {
    "metallicity": Target(
        name="metallicity",
        columns=("oh_p50",),
        units=("dex",),
        labels=(r"$12+\log({\rm O/H})$",),
        required=("oh_p50", "lgm_tot_p50", "sfr_tot_p50"),
    ),
    "bpt_lines": Target(
        name="bpt_lines",
        columns=tuple(BPT_LINES),
        units=(_LINE_UNIT,) * 4,
        labels=(r"$\log F_{\rm [NII]\,6584}$", r"$\log F_{\rm H\alpha}$",
                r"$\log F_{\rm [OIII]\,5007}$", r"$\log F_{\rm H\beta}$"),
        required=tuple(c for pair in BPT_LINES.values() for c in pair),
    ),
}


def get_target(target):
    """Resolve a target specification.

    Parameters
    ----------
    target : str, sequence of str or `Target`
        ``"metallicity"``, ``"bpt_lines"``, one catalog column name or a list of
        numeric catalog column names.

    Returns
    -------
    Target

    Examples
    --------
    >>> from sfnet.targets import get_target
    >>> get_target("bpt_lines").columns
    ('log_N2', 'log_Ha', 'log_O3', 'log_Hb')
    >>> get_target(["z", "petroMag_r"]).name
    'z+petroMag_r'
    """
    if isinstance(target, Target):
        return target
    if isinstance(target, str):
        if target in TARGETS:
            return TARGETS[target]
        cols = (target,)
    elif isinstance(target, (list, tuple)) and target and all(
            isinstance(c, str) for c in target):
        cols = tuple(target)
    else:
        raise TypeError(
            "target must be 'metallicity', 'bpt_lines' or a list of catalog column "
            f"names, got {target!r}")
    if len(set(cols)) != len(cols):
        raise ValueError(f"target has duplicate columns: {list(cols)}")
    return Target(name="+".join(cols), columns=cols, units=("",) * len(cols),
                  labels=cols, required=cols)
