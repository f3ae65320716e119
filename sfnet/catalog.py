"""The one schema of the SDSS / MPA-JHU catalog columns sfnet reads and writes.

Every part of sfnet that meets a catalog column -- the SkyServer query, the
folder loader, the mock, the targets, `sfnet.interpret` and the report -- takes
its name, unit, description, SkyServer table and missing-value code from here.

Columns
-------
`COLUMNS` maps each known SkyServer/MPA-JHU column name to a `CatalogColumn`.
Those with ``default=True`` (`DEFAULT_COLUMNS`) are in every fetched sample, in
that order; the others may be requested with ``extra_columns``.  `PAPER_COLUMNS`
are those of the paper's query (``selection="paper"``), in its order.  Nothing that is
not in `COLUMNS` ever reaches an SQL query.

Missing values
--------------
MPA-JHU writes ``-9999`` (`MISSING`) for quantities it could not measure (and a
few columns use ``-99`` or ``-999``); every value at or below
`MISSING_THRESHOLD` (``-999``) of a column with a missing code is missing.
`valid_values` turns them into NaN.

Physical properties
-------------------
`PROPERTIES` are the derived quantities `sfnet.interpret` correlates features
with (metallicity, stellar mass, SFR, sSFR, the two BPT line ratios, redshift),
each with its axis label, a compact label, an HTML label and the columns it
needs; `property_values` computes them with NaN where undefined.

Examples
--------
>>> from sfnet import catalog
>>> catalog.COLUMNS["oh_p50"].unit
'dex'
>>> catalog.BPT_LINES["nii"].flux
'nii_6584_flux'
>>> catalog.valid_values([8.9, -9999.0], "oh_p50").tolist()
[8.9, nan]
"""

from dataclasses import dataclass

import numpy as np

from ._utils import as_float64

__all__ = ["CatalogColumn", "COLUMNS", "DEFAULT_COLUMNS", "PAPER_COLUMNS", "LINE_FLUX_UNIT",
           "LOG_FLUX_UNIT", "MISSING", "MISSING_THRESHOLD", "SKYSERVER_TABLES", "BptLine",
           "BPT_LINES",
           "Property", "PROPERTIES", "DEFAULT_PROPERTIES", "column_unit", "add_units",
           "valid_values", "property_values", "property_label"]

#: MPA-JHU line fluxes: 1e-17 erg s-1 cm-2 (astropy unit string).
LINE_FLUX_UNIT = "1e-17 erg / (s cm2)"
#: log10 of a line flux in MPA-JHU units.
LOG_FLUX_UNIT = f"dex({LINE_FLUX_UNIT})"

#: The MPA-JHU code for a value that could not be measured.
MISSING = -9999.0
#: Values at or below this are missing in any column that has a missing code.
MISSING_THRESHOLD = -999.0

#: SkyServer tables and the aliases the SQL uses for them.
SKYSERVER_TABLES = {
    "s": "SpecObj",
    "p": "PhotoObj",
    "i": "galSpecInfo",
    "l": "galSpecLine",
    "e": "galSpecExtra",
    # Used by the paper's selection (``selection="paper"``): the Galaxy view of
    # PhotoObj (its photometric columns replace PhotoObj's, alias ``p``) and the
    # DR7 cross-match table that supplies ``DR7ObjID``.
    "g": "Galaxy",
    "p7": "PhotoObjDR7",
}


@dataclass(frozen=True)
class CatalogColumn:
    """One SkyServer / MPA-JHU catalog column.

    Attributes
    ----------
    name : str
        The SkyServer column name (also sfnet's).
    table : str
        Alias of its SkyServer table (a key of `SKYSERVER_TABLES`).
    kind : {"id", "int", "float"}
        ``"id"``: a 64-bit object identifier, always read as exact int64.
    unit : str or None
        astropy unit string.
    description : str
        One line, for table metadata and documentation.
    missing : float or None
        The code the catalog writes for a missing value (`MISSING`), if any.
    default : bool
        Whether every fetched sample has this column.
    """

    name: str
    table: str
    kind: str
    unit: object
    description: str
    missing: object = None
    default: bool = False


def _columns():
    cols = []

    def add(name, table, kind, unit, description, missing=None, default=False):
        cols.append(CatalogColumn(name, table, kind, unit, description, missing, default))

    # ---- the columns of every sample (docs/data.rst), in this order
    add("objID", "p", "id", None, "SDSS photometric object ID (PhotoObj.objID)", default=True)
    add("specObjID", "s", "id", None, "SDSS spectrum ID (SpecObj.specObjID)", default=True)
    add("ra", "p", "float", "deg", "Right ascension (J2000) of the photometric object",
        default=True)
    add("dec", "p", "float", "deg", "Declination (J2000) of the photometric object",
        default=True)
    add("z", "s", "float", None, "Spectroscopic redshift", default=True)
    add("petroMag_r", "p", "float", "mag", "Petrosian r magnitude", default=True)
    add("petroR50_r", "p", "float", "arcsec", "Radius containing 50% of the Petrosian r flux",
        default=True)
    add("petroR90_r", "p", "float", "arcsec", "Radius containing 90% of the Petrosian r flux",
        default=True)
    for band in "ugriz":
        add(f"modelMag_{band}", "p", "float", "mag", f"Model {band} magnitude", default=True)
    add("lgm_tot_p50", "e", "float", "dex(solMass)",
        "MPA-JHU median log total stellar mass (-9999: missing)", MISSING, True)
    add("sfr_tot_p50", "e", "float", "dex(solMass / yr)",
        "MPA-JHU median log total star formation rate (-9999: missing)", MISSING, True)
    add("oh_p50", "e", "float", "dex",
        "MPA-JHU median 12 + log(O/H), Tremonti et al. 2004 (-9999: missing)", MISSING, True)
    add("bptclass", "e", "int", None,
        "MPA-JHU BPT class: -1 unclassifiable, 1 star-forming, 2 low-S/N star-forming, "
        "3 composite, 4 AGN, 5 low-S/N LINER", default=True)
    for line in ("h_alpha", "h_beta", "oiii_5007", "nii_6584"):
        label = _LINE_LABELS[line]
        add(f"{line}_flux", "l", "float", LINE_FLUX_UNIT, f"{label} line flux", default=True)
        add(f"{line}_flux_err", "l", "float", LINE_FLUX_UNIT, f"{label} line flux error",
            default=True)

    # ---- further columns that may be requested (allow-list)
    add("DR7ObjID", "p7", "id", None, "SDSS DR7 photometric object ID (PhotoObjDR7.dr7objid; "
        "only with selection='paper', which joins PhotoObjDR7)")
    add("reliable", "i", "int", None, "MPA-JHU galSpecInfo.reliable flag (1: reliable)")
    add("zErr", "s", "float", None, "Redshift error")
    add("velDisp", "s", "float", "km / s", "Velocity dispersion")
    add("velDispErr", "s", "float", "km / s", "Velocity dispersion error")
    add("plate", "s", "int", None, "Spectroscopic plate")
    add("mjd", "s", "int", "d", "MJD of the spectroscopic observation")
    add("fiberID", "s", "int", None, "Spectroscopic fibre")
    add("petroMagErr_r", "p", "float", "mag", "Petrosian r magnitude error")
    add("fracDeV_r", "p", "float", None, "Weight of the de Vaucouleurs component (r)")
    add("expAB_r", "p", "float", None, "Exponential fit axis ratio b/a (r)")
    add("deVAB_r", "p", "float", None, "de Vaucouleurs fit axis ratio b/a (r)")
    add("extinction_r", "p", "float", "mag", "Galactic extinction in r (SFD98)")
    add("e_bv_sfd", "i", "float", "mag", "E(B-V) from the SFD98 maps (MPA-JHU)")
    add("sn_median", "i", "float", None, "Median S/N per pixel of the spectrum")
    add("sigma_balmer", "l", "float", "km / s", "Velocity dispersion of the Balmer lines")
    add("specsfr_tot_p50", "e", "float", "dex(1 / yr)", "MPA-JHU median log specific SFR",
        MISSING)
    add("lgm_fib_p50", "e", "float", "dex(solMass)", "MPA-JHU median log fibre stellar mass",
        MISSING)
    add("sfr_fib_p50", "e", "float", "dex(solMass / yr)", "MPA-JHU median log fibre SFR",
        MISSING)
    for band in "ugiz":
        add(f"petroMag_{band}", "p", "float", "mag", f"Petrosian {band} magnitude")
    for p in ("p16", "p84"):
        add(f"lgm_tot_{p}", "e", "float", "dex(solMass)", f"MPA-JHU log stellar mass, {p}",
            MISSING)
        add(f"sfr_tot_{p}", "e", "float", "dex(solMass / yr)", f"MPA-JHU log SFR, {p}", MISSING)
        add(f"oh_{p}", "e", "float", "dex", f"MPA-JHU 12 + log(O/H), {p}", MISSING)
    for line in ("oii_3726", "oii_3729", "h_delta", "h_gamma", "oiii_4959", "oi_6300",
                 "nii_6548", "sii_6717", "sii_6731"):
        add(f"{line}_flux", "l", "float", LINE_FLUX_UNIT, f"{line} line flux")
        add(f"{line}_flux_err", "l", "float", LINE_FLUX_UNIT, f"{line} line flux error")
    return {c.name: c for c in cols}


_LINE_LABELS = {"h_alpha": "H-alpha 6563", "h_beta": "H-beta 4861",
                "oiii_5007": "[OIII] 5007", "nii_6584": "[NII] 6584"}

#: name -> `CatalogColumn` for every column sfnet knows.
COLUMNS = _columns()
#: The columns of every fetched sample, in order.
DEFAULT_COLUMNS = tuple(name for name, col in COLUMNS.items() if col.default)

#: The columns of the paper's query (``selection="paper"``, the CasJobs query of
#: Wu 2025), in its order; all in `COLUMNS`.
PAPER_COLUMNS = (
    "objID", "DR7ObjID", "specObjID", "ra", "dec", "z", "zErr", "velDisp", "velDispErr",
    "modelMag_u", "modelMag_g", "modelMag_r", "modelMag_i", "modelMag_z",
    "petroMag_r", "petroR50_r", "petroR90_r",
    "bptclass", "oh_p50", "lgm_tot_p50", "sfr_tot_p50",
    "nii_6584_flux", "nii_6584_flux_err", "h_alpha_flux", "h_alpha_flux_err",
    "oiii_5007_flux", "oiii_5007_flux_err", "h_beta_flux", "h_beta_flux_err",
    "reliable",
)


def column_unit(name):
    """The astropy unit string of a known column, or None."""
    col = COLUMNS.get(name)
    return None if col is None else col.unit


def add_units(table, descriptions=False):
    """Give the known numeric columns of ``table`` their unit, in place.

    Columns that already carry a unit keep it; unknown and non-numeric columns
    are left alone.  With ``descriptions``, columns without a description get
    the schema's.  Returns ``table``.
    """
    from astropy import units as u

    for name in table.colnames:
        col = COLUMNS.get(name)
        if col is None:
            continue
        if col.unit is not None and table[name].unit is None and \
                table[name].dtype.kind in "fiu":
            table[name].unit = u.Unit(col.unit)
        if descriptions and not getattr(table[name], "description", None):
            table[name].description = col.description
    return table


def valid_values(values, name=None):
    """float64 values with NaN where missing or not finite.

    Parameters
    ----------
    values : array-like, Column or Quantity
        Column values.
    name : str, optional
        Column name; values at or below `MISSING_THRESHOLD` are missing when the
        column has a missing code, or when ``name`` is unknown to sfnet.
    """
    v = as_float64(values)
    col = COLUMNS.get(name) if name is not None else None
    if col is None or col.missing is not None:
        v = np.where(v > MISSING_THRESHOLD, v, np.nan)
    return np.where(np.isfinite(v), v, np.nan)


# --------------------------------------------------------------------------- BPT lines

@dataclass(frozen=True)
class BptLine:
    """An emission line of the BPT diagram: its flux columns and the target's log column."""

    key: str
    flux: str
    error: str
    log_column: str
    label: str


#: The four BPT lines, in the order of the ``"bpt_lines"`` target's outputs.
BPT_LINES = {
    "nii": BptLine("nii", "nii_6584_flux", "nii_6584_flux_err", "log_N2",
                   r"$\log F_{\rm [NII]\,6584}$"),
    "ha": BptLine("ha", "h_alpha_flux", "h_alpha_flux_err", "log_Ha",
                  r"$\log F_{\rm H\alpha}$"),
    "oiii": BptLine("oiii", "oiii_5007_flux", "oiii_5007_flux_err", "log_O3",
                    r"$\log F_{\rm [OIII]\,5007}$"),
    "hb": BptLine("hb", "h_beta_flux", "h_beta_flux_err", "log_Hb",
                  r"$\log F_{\rm H\beta}$"),
}


# --------------------------------------------------------------------------- properties

@dataclass(frozen=True)
class Property:
    """A physical galaxy property computed from catalog columns.

    Attributes
    ----------
    name : str
        Short name (``"metallicity"``, ``"mass"``, ...).
    label : str
        Axis label in astronomers' notation (matplotlib mathtext, units included).
    short : str
        Compact label for table headers and heat-map ticks.
    html : str
        Label for HTML pages (entities for sub/superscripts and Greek letters).
    columns : tuple of str
        Catalog columns it is computed from.
    description : str
        One-line description.
    """

    name: str
    label: str
    short: str
    html: str
    columns: tuple
    description: str


_NII, _HA, _OIII, _HB = (BPT_LINES[k].flux for k in ("nii", "ha", "oiii", "hb"))

PROPERTIES = {
    "metallicity": Property(
        "metallicity", r"$12+\log({\rm O/H})$", r"$12+\log({\rm O/H})$", "12+log(O/H)",
        ("oh_p50",), "gas-phase oxygen abundance, MPA-JHU oh_p50 (Tremonti et al. 2004)"),
    "mass": Property(
        "mass", r"$\log(M_\ast/{\rm M}_\odot)$", r"$\log M_\ast$",
        "log M<sub>*</sub> [M<sub>&#9737;</sub>]", ("lgm_tot_p50",),
        "total stellar mass, MPA-JHU lgm_tot_p50"),
    "sfr": Property(
        "sfr", r"$\log({\rm SFR}/{\rm M}_\odot\,{\rm yr}^{-1})$", r"$\log{\rm SFR}$",
        "log SFR [M<sub>&#9737;</sub>&thinsp;yr<sup>&minus;1</sup>]", ("sfr_tot_p50",),
        "total star-formation rate, MPA-JHU sfr_tot_p50"),
    "ssfr": Property(
        "ssfr", r"$\log({\rm sSFR}/{\rm yr}^{-1})$", r"$\log{\rm sSFR}$",
        "log sSFR [yr<sup>&minus;1</sup>]", ("sfr_tot_p50", "lgm_tot_p50"),
        "specific SFR = sfr_tot_p50 - lgm_tot_p50"),
    "log_nii_ha": Property(
        "log_nii_ha", r"$\log([{\rm N\,II}]\,\lambda6584/{\rm H}\alpha)$",
        r"$\log([{\rm N\,II}]/{\rm H}\alpha)$", "log([N&thinsp;II]/H&alpha;)", (_NII, _HA),
        f"BPT line ratio log10({_NII} / {_HA})"),
    "log_oiii_hb": Property(
        "log_oiii_hb", r"$\log([{\rm O\,III}]\,\lambda5007/{\rm H}\beta)$",
        r"$\log([{\rm O\,III}]/{\rm H}\beta)$", "log([O&thinsp;III]/H&beta;)", (_OIII, _HB),
        f"BPT line ratio log10({_OIII} / {_HB})"),
    "z": Property("z", r"Redshift $z$", r"$z$", "redshift z", ("z",), "spectroscopic redshift"),
}

#: Default columns of `sfnet.interpret.feature_correlations` and the report.
DEFAULT_PROPERTIES = tuple(PROPERTIES)

#: Where each single-column property is physically defined (MPA-JHU conventions:
#: log masses are positive, log SFRs above -10, redshifts non-negative).
_DEFINED = {"metallicity": (0.0, False), "mass": (0.0, False), "sfr": (-10.0, False),
            "z": (0.0, True)}


def _column(table, name, what="column"):
    if name not in table.colnames:
        raise ValueError(f"{what} {name!r} is not in the catalog (columns: {table.colnames})")
    return as_float64(table[name])


def _log_ratio(table, num, den, min_snr=None):
    a = _column(table, num)
    b = _column(table, den)
    ok = np.isfinite(a) & np.isfinite(b) & (a > 0) & (b > 0)
    if min_snr is not None:
        for col in (num, den):
            err = _column(table, col + "_err")
            with np.errstate(divide="ignore", invalid="ignore"):
                ok &= (err > 0) & (_column(table, col) / err > min_snr)
    out = np.full(len(table), np.nan)
    out[ok] = np.log10(a[ok] / b[ok])
    return out


def property_values(table, name, min_snr=None):
    """Values of a property, NaN where undefined.

    Parameters
    ----------
    table : `~astropy.table.Table`
        A catalog.
    name : str
        A key of `PROPERTIES` or any numeric catalog column.
    min_snr : float, optional
        For the line ratios, also require flux / error above this on both lines.

    Returns
    -------
    values : ndarray
        float64, NaN where the catalog marks the value missing (MPA-JHU -9999),
        for non-positive line fluxes and for non-finite entries.
    """
    if not isinstance(name, str):
        raise TypeError(f"property name must be a string, got {name!r}")
    if name in _DEFINED:
        (column,) = PROPERTIES[name].columns
        lo, inclusive = _DEFINED[name]
        v = _column(table, column)
        v = np.where((v >= lo) if inclusive else (v > lo), v, np.nan)
    elif name == "ssfr":
        v = property_values(table, "sfr") - property_values(table, "mass")
    elif name in ("log_nii_ha", "log_oiii_hb"):
        v = _log_ratio(table, *PROPERTIES[name].columns, min_snr=min_snr)
    else:
        v = valid_values(_column(table, name, "property"))
    return np.where(np.isfinite(v), v, np.nan)


def property_label(name, short=False, html=False):
    """Axis (or HTML) label of a property; the column name itself for plain columns."""
    prop = PROPERTIES.get(name)
    if prop is None:
        if html:
            return str(name)
        return str(name).replace("_", r"\_") if short else str(name)
    if html:
        return prop.html
    return prop.short if short else prop.label
