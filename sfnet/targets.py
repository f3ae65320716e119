"""Named regression targets: their output columns and declarative quality cuts.

A `Target` is data: the columns it predicts, how derived outputs are made from
catalog columns, and a tuple of small cut objects (`Cut`, `SnrCut`).  Everything
else is derived from those declarations -- the numpy row mask
(`Target.mask`), the SkyServer SQL ``WHERE`` conditions (`Target.sql_where`),
and the "truth with NaN where the cuts fail" array (`Target.truth`) used to
score models.  Adding a target is one entry in `TARGETS`.

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

Examples
--------
>>> from sfnet.targets import get_target
>>> get_target("metallicity").sql_where({"oh_p50": "e", "lgm_tot_p50": "e",
...                                      "sfr_tot_p50": "e"})
['e.oh_p50 > 0', 'e.lgm_tot_p50 > 0', 'e.sfr_tot_p50 > -10']
"""

import difflib
import math
import operator
from dataclasses import dataclass, field

import numpy as np

from ._utils import as_float64
from .catalog import BPT_LINES as _LINES
from .catalog import COLUMNS as _SCHEMA
from .catalog import LOG_FLUX_UNIT, PROPERTIES

__all__ = ["Target", "Cut", "SnrCut", "LogColumn", "get_target", "closest_names", "TARGETS",
           "BPT_LINES"]

#: Derived column -> (flux column, error column) for the BPT target.
BPT_LINES = {line.log_column: (line.flux, line.error) for line in _LINES.values()}

_OPS = {">": operator.gt, ">=": operator.ge, "<": operator.lt, "<=": operator.le}


def _sql_literal(value):
    """A finite number as an SQL literal: integers without a decimal point."""
    value = float(value)
    if not math.isfinite(value):
        raise ValueError(f"not a finite number: {value!r}")
    return str(int(value)) if value.is_integer() else repr(value)


def _qualify(aliases, column):
    alias = aliases.get(column) if aliases else None
    return f"{alias}.{column}" if alias else column


@dataclass(frozen=True)
class Cut:
    """Keep rows where ``column <op> value`` (NaN never passes).

    Parameters
    ----------
    column : str
        Catalog column.
    op : {">", ">=", "<", "<="}
        Comparison.
    value : float
        Threshold.

    Examples
    --------
    >>> Cut("oh_p50", ">", 0).sql()
    'oh_p50 > 0'
    """

    column: str
    op: str
    value: float

    def __post_init__(self):
        if self.op not in _OPS:
            raise ValueError(f"Cut op must be one of {sorted(_OPS)}, got {self.op!r}")

    @property
    def columns(self):
        return (self.column,)

    def mask(self, catalog):
        """Boolean array of the rows that pass."""
        with np.errstate(invalid="ignore"):
            return _OPS[self.op](as_float64(catalog[self.column]), self.value)

    def sql(self, aliases=None):
        """The SQL condition; ``aliases`` maps a column to its table alias."""
        return f"{_qualify(aliases, self.column)} {self.op} {_sql_literal(self.value)}"

    def sql_conditions(self, aliases=None):
        return [self.sql(aliases)]


@dataclass(frozen=True)
class SnrCut:
    """Keep rows where ``error > 0`` and ``flux / error > min_snr``.

    Examples
    --------
    >>> SnrCut("h_alpha_flux", "h_alpha_flux_err", 3).sql_conditions({"h_alpha_flux": "l",
    ...                                                               "h_alpha_flux_err": "l"})
    ['l.h_alpha_flux_err > 0', 'l.h_alpha_flux > 3 * l.h_alpha_flux_err']
    """

    flux: str
    error: str
    min_snr: float

    @property
    def columns(self):
        return (self.flux, self.error)

    def mask(self, catalog):
        f = as_float64(catalog[self.flux])
        e = as_float64(catalog[self.error])
        with np.errstate(divide="ignore", invalid="ignore"):
            return (e > 0) & (f / e > self.min_snr)

    def sql_conditions(self, aliases=None):
        f, e = _qualify(aliases, self.flux), _qualify(aliases, self.error)
        return [f"{e} > 0", f"{f} > {_sql_literal(self.min_snr)} * {e}"]


@dataclass(frozen=True)
class LogColumn:
    """An output column derived as log10 of a catalog column (NaN where not positive)."""

    name: str
    source: str
    unit: str

    def compute(self, catalog):
        f = as_float64(catalog[self.source])
        with np.errstate(divide="ignore", invalid="ignore"):
            return np.where(f > 0, np.log10(np.where(f > 0, f, 1.0)), np.nan)


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
        Catalog columns the target needs (by default those of its cuts and derived
        columns, and its outputs that are not derived).
    cuts : tuple of `Cut` or `SnrCut`
        Quality cuts; a row is usable when it passes all of them and its outputs
        are finite.
    derived : tuple of `LogColumn`
        Outputs computed from catalog columns by :meth:`prepare`.
    """

    name: str
    columns: tuple
    units: tuple
    labels: tuple
    required: tuple = field(default=None)
    cuts: tuple = ()
    derived: tuple = ()

    def __post_init__(self):
        if self.required is None:
            made = {d.name for d in self.derived}
            need = [c for cut in self.cuts for c in cut.columns]
            need += [d.source for d in self.derived]
            need += [c for c in self.columns if c not in made]
            object.__setattr__(self, "required", tuple(dict.fromkeys(need)))

    def _check(self, catalog):
        missing = [c for c in self.required if c not in catalog.colnames]
        if missing:
            hints = [f"{c!r} -> did you mean {close!r}?" for c in missing
                     for close in [closest_names(c, catalog.colnames)] if close]
            hint = f" ({'; '.join(hints)})" if hints else ""
            raise ValueError(
                f"target {self.name!r} needs catalog column(s) {missing}{hint}; "
                f"the catalog has {catalog.colnames}")

    def prepare(self, catalog):
        """Return ``catalog`` with the target's derived columns added (a copy if any are added)."""
        self._check(catalog)
        todo = [d for d in self.derived if d.name not in catalog.colnames]
        if not todo:
            return catalog
        from astropy.table import Column

        catalog = catalog.copy(copy_data=False)
        for d in todo:
            catalog[d.name] = Column(d.compute(catalog), unit=d.unit,
                                     description=f"log10 of {d.source}")
        return catalog

    def mask(self, catalog):
        """Boolean array: rows that pass the target's quality cuts and have finite outputs."""
        self._check(catalog)
        keep = np.ones(len(catalog), dtype=bool)
        for cut in self.cuts:
            keep &= cut.mask(catalog)
        keep &= np.all(np.isfinite(self.values(catalog, check=False)), axis=1)
        return keep

    def sql_where(self, aliases=None):
        """The cuts as SQL conditions (a list of strings, to be joined with AND).

        ``aliases`` maps a column name to the alias of its table in the query.
        """
        return [cond for cut in self.cuts for cond in cut.sql_conditions(aliases)]

    def values(self, catalog, check=True):
        """Target values, float64 of shape ``(N, n_targets)``.

        With ``check=True`` a `ValueError` names the column holding NaN or inf.
        """
        catalog = self.prepare(catalog)
        out = np.empty((len(catalog), len(self.columns)), dtype=np.float64)
        for j, col in enumerate(self.columns):
            if col not in catalog.colnames:
                raise ValueError(f"target column {col!r} is not in the catalog")
            out[:, j] = as_float64(catalog[col])
            if check and not np.all(np.isfinite(out[:, j])):
                bad = int(np.sum(~np.isfinite(out[:, j])))
                raise ValueError(
                    f"target column {col!r} has {bad} NaN/inf value(s); apply the "
                    f"target's quality cuts first (sample.select({self.name!r}))")
        return out

    def truth(self, catalog):
        """Target values ``(N, n_targets)`` with NaN in the rows that fail the cuts."""
        catalog = self.prepare(catalog)
        y = self.values(catalog, check=False)
        y[~self.mask(catalog)] = np.nan
        return y


def _bpt_lines():
    lines = tuple(_LINES.values())
    return Target(
        name="bpt_lines",
        columns=tuple(line.log_column for line in lines),
        units=(LOG_FLUX_UNIT,) * len(lines),
        labels=tuple(line.label for line in lines),
        required=tuple(c for line in lines for c in (line.flux, line.error)),
        cuts=tuple(c for line in lines
                   for c in (SnrCut(line.flux, line.error, 3), Cut(line.flux, "<", 1e5))),
        derived=tuple(LogColumn(line.log_column, line.flux, LOG_FLUX_UNIT) for line in lines),
    )


#: The named targets.  Adding one is one entry here.
TARGETS = {
    "metallicity": Target(
        name="metallicity",
        columns=("oh_p50",),
        units=("dex",),
        labels=(PROPERTIES["metallicity"].label,),
        # Wu (2025); MPA-JHU writes -9999 for missing values.
        cuts=(Cut("oh_p50", ">", 0), Cut("lgm_tot_p50", ">", 0), Cut("sfr_tot_p50", ">", -10)),
    ),
    "bpt_lines": _bpt_lines(),
}

#: The column names of sfnet's catalog schema (never taken for misspelt targets).
_KNOWN_COLUMNS = frozenset(_SCHEMA)


def closest_names(name, choices, n=3, cutoff=0.75):
    """The names among ``choices`` closest to ``name`` (`difflib`), joined by " or "; "" if none."""
    close = difflib.get_close_matches(name, [str(c) for c in choices], n=n, cutoff=cutoff)
    return " or ".join(close)


def _check_not_misspelt(name):
    """`ValueError` if ``name`` is no named target or schema column but is close to a named
    target (``"metalicity"``): a misspelling caught before any data is read."""
    if name in _KNOWN_COLUMNS:
        return
    close = difflib.get_close_matches(name, list(TARGETS), n=1, cutoff=0.8)
    if close:
        raise ValueError(
            f"target {name!r} is not a named target: did you mean {close[0]!r}? (named "
            f"targets: {sorted(TARGETS)}; a catalog column of that name is taken as "
            f"target=[{name!r}])")


def get_target(target):
    """Resolve a target specification.

    Parameters
    ----------
    target : str, sequence of str or `Target`
        ``"metallicity"``, ``"bpt_lines"``, one catalog column name or a list of
        numeric catalog column names (their units come from the catalog).

    Returns
    -------
    Target

    Raises
    ------
    ValueError
        For a single name that is neither a named target nor a column of
        sfnet's catalog schema but is close to a named target (``"metalicity"``:
        the message suggests ``"metallicity"``).  A column of such a name is
        still a target when passed in a list.  Column names are checked against
        the catalog when the target reads it (`Target.prepare`), with the
        closest catalog columns suggested.

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
        _check_not_misspelt(target)
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
