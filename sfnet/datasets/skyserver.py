"""SkyServer catalog queries: the SQL builder, paging, and checked CSV parsing.

`build_sdss_query` renders one SkyServer SQL statement (`QuerySpec`) from
validated numbers and allow-listed column names only: the options are checked
once by the private `FetchOptions` (``_options``) and the column names come
from the schema, `sfnet.catalog`.  `query_sdss_catalog` sends it through
`astroquery.sdss.SDSSClass.query_sql_async` page by page (``TOP page_size``
rows ordered by ``specObjID``, each page starting after the last
``specObjID`` seen); retries, backoff, timeouts, the progress bar and the
classification of HTTP answers are the transport's (``_transport``).  The
response is checked before it becomes data: an HTML error page, an empty or
garbled body or a table without the expected columns raises
`SkyServerError`; ``objID`` and ``specObjID`` are parsed from their text as
exact int64.

Two selections are known (`SELECTIONS`): ``"default"``, sfnet's own query on
``PhotoObj`` with clean-redshift, ``reliable = 1`` and magnitude/redshift
cuts, and ``"paper"``, the CasJobs query of Wu (2025) on the ``Galaxy`` view
and ``PhotoObjDR7`` (see `build_sdss_query`).  Either may be restricted to a
cone with ``region=(SkyCoord, radius)`` through SkyServer's
``dbo.fGetNearbyObjEq``.

The endpoint and defaults come from `sfnet.conf` (``skyserver_url``,
``data_release``, ``timeout``, ``max_retries``); an unset ``skyserver_url`` or
``data_release`` means astroquery's (``astroquery.sdss.conf.skyserver_baseurl``
and ``default_release``).  This module imports nothing from its sibling
service module, `sfnet.datasets.cutouts`.
"""

import csv
import datetime
import logging
import math
import re

import numpy as np
from astropy.table import Column, Table

from .._validation import check_int, check_url
from ..catalog import BPT_LINES, COLUMNS, PAPER_COLUMNS
from ..config import conf
from ..exceptions import SkyServerError
from ._options import (DEFAULT_R_MAG, DEFAULT_Z, SELECTIONS, FetchOptions,
                       astroquery_sdss_conf)
from ._transport import (Counters, PermanentError, TransientError, call_with_retries,
                         html_text, looks_like_html, progress_bar, raise_for_status,
                         sfnet_version)

__all__ = ["build_sdss_query", "query_sdss_catalog", "SkyServerError", "SDSS_COLUMNS",
           "SDSS_EXTRA_COLUMNS", "SELECTIONS", "PAPER_COLUMNS"]

log = logging.getLogger(__name__)


def _col(c):
    return {"table": c.table, "kind": c.kind, "unit": c.unit, "description": c.description}


#: The catalog columns of a fetched sample (docs/data.rst), in order:
#: name -> table alias (s=SpecObj, p=PhotoObj, l=galSpecLine, e=galSpecExtra),
#: kind ("id", "int" or "float"), unit and description, from `sfnet.catalog`.
SDSS_COLUMNS = {name: _col(c) for name, c in COLUMNS.items() if c.default}

#: Further columns that may be requested with ``extra_columns`` (allow-list:
#: nothing else ever reaches the SQL).
SDSS_EXTRA_COLUMNS = {name: _col(c) for name, c in COLUMNS.items() if not c.default}

_KNOWN_COLUMNS = {**SDSS_COLUMNS, **SDSS_EXTRA_COLUMNS}

# Re-exported: PAPER_COLUMNS (the columns of selection="paper" in the order of the
# paper's query, from the schema in sfnet.catalog) and SELECTIONS (from _options).

# Table alias of each schema table key (`sfnet.catalog.SKYSERVER_TABLES`) in the
# SQL of each selection; a key absent here cannot be selected (``p7`` is only
# joined by the paper's query).
_ALIASES = {
    "default": {"s": "s", "p": "p", "i": "i", "l": "l", "e": "e"},
    "paper": {"s": "s", "p": "g", "i": "i", "l": "l", "e": "e", "p7": "p7"},
}

_INT64 = np.iinfo(np.int64)


def skyserver_url():
    """The SkyServer base URL: ``sfnet.conf.skyserver_url``, else astroquery's."""
    url = conf.skyserver_url or astroquery_sdss_conf().skyserver_baseurl
    name = "sfnet.conf.skyserver_url" if conf.skyserver_url else \
        "astroquery.sdss.conf.skyserver_baseurl"
    return check_url(url, name)


class QuerySpec:
    """The catalog query of ``n_galaxies`` galaxies with checked `FetchOptions`; renders the SQL."""

    def __init__(self, n_galaxies, options):
        self.n = check_int(n_galaxies, "n_galaxies", minimum=1, maximum=10_000_000,
                           text_is_value_error=True)
        self.selection = options.selection
        self.target = options.target
        self.r_mag_range = options.r_mag_range
        self.z_range = options.z_range
        self.region = options.cone
        self.aliases = _ALIASES[self.selection]
        base = PAPER_COLUMNS if self.selection == "paper" else tuple(SDSS_COLUMNS)
        self.extra = tuple(dict.fromkeys(
            c for c in options.extra_columns + options.target_columns if c not in base))
        self.columns = base + self.extra
        unavailable = [c for c in self.columns
                       if _KNOWN_COLUMNS[c]["table"] not in self.aliases]
        if unavailable:
            raise ValueError(
                f"extra_columns/target: {unavailable[0]!r} is only available with "
                f"selection='paper' (its table is not joined by selection="
                f"{self.selection!r})")

    def _qualified(self, column):
        return f"{self.aliases[_KNOWN_COLUMNS[column]['table']]}.{column}"

    def where(self):
        if self.selection == "paper":
            # The paper's cuts, verbatim.  In the Galaxy view ``z`` is the z-band
            # magnitude, so ``g.z > 0.02`` is (almost) no cut at all -- not a redshift cut.
            cond = ["g.z > 0.02", "g.petroMag_r > 14", "g.petroMag_r <= 17.77"]
            cond += [f"l.{line.flux} > 0" for line in BPT_LINES.values()]
        else:
            cond = ["s.class = 'GALAXY'", "s.sciencePrimary = 1", "s.zWarning = 0",
                    "i.reliable = 1"]
            lo, hi = self.z_range
            if lo is not None:
                cond.append(f"s.z > {_sql_num(lo)}")
            if hi is not None:
                cond.append(f"s.z < {_sql_num(hi)}")
            lo, hi = self.r_mag_range
            if lo is not None:
                cond.append(f"p.petroMag_r >= {_sql_num(lo)}")
            if hi is not None:
                cond.append(f"p.petroMag_r <= {_sql_num(hi)}")
        aliases = {name: self.aliases[col.table] for name, col in COLUMNS.items()
                   if col.table in self.aliases}
        for c in self.target.sql_where(aliases):
            if c not in cond:
                cond.append(c)
        return cond

    def joins(self):
        if self.selection == "paper":
            lines = ["FROM SpecObj AS s",
                     "  JOIN Galaxy AS g ON g.objID = s.bestObjID",
                     "  JOIN galSpecLine AS l ON l.specObjID = s.specObjID",
                     "  JOIN galSpecInfo AS i ON i.specObjID = s.specObjID",
                     "  JOIN galSpecExtra AS e ON e.specObjID = s.specObjID",
                     "  JOIN PhotoObjDR7 AS p7 ON p7.DR8ObjID = s.bestObjID"]
        else:
            lines = ["FROM SpecObj AS s",
                     "  JOIN PhotoObj AS p ON p.objID = s.bestObjID",
                     "  JOIN galSpecInfo AS i ON i.specObjID = s.specObjID",
                     "  JOIN galSpecLine AS l ON l.specObjID = s.specObjID",
                     "  JOIN galSpecExtra AS e ON e.specObjID = s.specObjID"]
        if self.region is not None:
            ra, dec, radius = self.region
            lines.append(f"  JOIN dbo.fGetNearbyObjEq({_sql_num(ra)}, {_sql_num(dec)}, "
                         f"{_sql_num(radius)}) AS n ON n.objID = s.bestObjID")
        return lines

    def sql(self, top=None, after=None):
        top = self.n if top is None else top
        names = [self._qualified(c) for c in self.columns]
        lines = [[]]
        for name in names:
            if lines[-1] and sum(len(x) + 2 for x in lines[-1]) + len(name) > 64:
                lines.append([])
            lines[-1].append(name)
        cols = ",\n       ".join(", ".join(line) for line in lines)
        cond = self.where()
        if after is not None:
            cond.append(f"s.specObjID > {int(after)}")
        return (
            f"SELECT TOP {int(top)}\n       {cols}\n"
            + "\n".join(self.joins()) + "\n"
            "WHERE " + "\n  AND ".join(cond) + "\n"
            "ORDER BY s.specObjID")


def _sql_num(x):
    """A validated finite float as an SQL literal (shortest exact repr)."""
    if not math.isfinite(x):  # pragma: no cover - validated before
        raise ValueError(f"not a finite number: {x!r}")
    return repr(float(x))


def one_line(sql):
    """The SQL on one line (as recorded in a catalog's meta)."""
    return " ".join(sql.split())


def build_sdss_query(n_galaxies, target="metallicity", *, r_mag_range=DEFAULT_R_MAG,
                     z_range=DEFAULT_Z, extra_columns=(), selection="default", region=None):
    """The SkyServer SQL that selects the sample (for inspection and the docs).

    Only validated numbers and allow-listed column names enter the text; no
    user text ever reaches the SQL.  `fetch_sdss_sample` runs it in pages of
    ``TOP page_size`` rows ordered by ``specObjID``, each page with
    ``s.specObjID >`` the last value seen.

    ``selection="default"`` joins ``SpecObj`` to ``PhotoObj`` on ``bestObjID``
    and to the MPA-JHU tables ``galSpecInfo``, ``galSpecLine`` and
    ``galSpecExtra`` on ``specObjID``; it keeps primary galaxy spectra with a
    clean redshift (``class = 'GALAXY'``, ``sciencePrimary = 1``,
    ``zWarning = 0``), MPA-JHU ``reliable = 1``, the redshift and Petrosian
    r-magnitude ranges, and the target's quality cuts (see `sfnet.targets`).

    ``selection="paper"`` reproduces the CasJobs query of Wu (2025) (linked
    from the paper's README: agn-convnets ``data/AGN_K03.sql``): ``SpecObj``
    joined to the ``Galaxy`` view on ``bestObjID``, to ``galSpecLine``,
    ``galSpecInfo`` and ``galSpecExtra`` on ``specObjID`` and to
    ``PhotoObjDR7`` on ``DR8ObjID = bestObjID`` (an inner join: galaxies
    without a DR7 counterpart are dropped, as in the paper); its cuts
    ``G.z > 0.02``, ``14 < petroMag_r <= 17.77`` and the four BPT line fluxes
    (``nii_6584``, ``h_alpha``, ``oiii_5007``, ``h_beta``) ``> 0``; and its
    columns (`PAPER_COLUMNS`: `SDSS_COLUMNS` plus ``DR7ObjID``, ``zErr``,
    ``velDisp``, ``velDispErr`` and ``reliable``).  The target's cuts are
    added (for ``"bpt_lines"``: S/N > 3 on all four lines, as the paper's
    README says it enforced after the query).  Note that ``G.z > 0.02`` is
    kept verbatim although it is **not a redshift cut**: in the ``Galaxy``
    view ``z`` is the z-band magnitude, so the condition removes (almost)
    nothing; the paper's sample has no redshift cut.  Neither has it
    ``class``, ``zWarning`` nor ``reliable`` cuts (``reliable`` is only
    returned).  ``r_mag_range`` and ``z_range`` must keep their defaults.

    Parameters
    ----------
    n_galaxies : int
        Number of galaxies (``TOP n_galaxies``), positive.
    target : str or list of str
        ``"metallicity"``, ``"bpt_lines"`` or a list of column names from
        `SDSS_COLUMNS` / `SDSS_EXTRA_COLUMNS`.
    r_mag_range : (float or None, float or None)
        Inclusive range of ``petroMag_r``; ``None`` leaves a side open.
        Only with ``selection="default"``.
    z_range : (float or None, float or None)
        Exclusive range of the redshift ``z``; default ``z > 0.02``.
        Only with ``selection="default"``.
    extra_columns : list of str
        Further columns from `SDSS_EXTRA_COLUMNS` (``DR7ObjID`` only with
        ``selection="paper"``).
    selection : {"default", "paper"}
        Which query (`SELECTIONS`).
    region : (`~astropy.coordinates.SkyCoord`, radius), optional
        Restrict the sample to a cone: one position and a radius (an angle
        `~astropy.units.Quantity` or a number of arcmin, at most 600), joined
        through SkyServer's ``dbo.fGetNearbyObjEq(ra, dec, radius_arcmin)`` on
        ``bestObjID``.  The position is converted to ICRS degrees; only these
        floats, formatted by sfnet, enter the SQL.

    Returns
    -------
    str

    Raises
    ------
    ValueError, TypeError
        A parameter is not a valid number or known name; the message names it.

    Examples
    --------
    >>> from sfnet.datasets import build_sdss_query
    >>> sql = build_sdss_query(1000, "metallicity")
    >>> print(sql.splitlines()[0])
    SELECT TOP 1000
    >>> "e.oh_p50 > 0" in sql and sql.endswith("ORDER BY s.specObjID")
    True
    >>> paper = build_sdss_query(1000, "metallicity", selection="paper")
    >>> "JOIN PhotoObjDR7 AS p7 ON p7.DR8ObjID = s.bestObjID" in paper
    True
    >>> from astropy.coordinates import SkyCoord
    >>> import astropy.units as u
    >>> cone = build_sdss_query(10, region=(SkyCoord(150 * u.deg, 2 * u.deg), 30 * u.arcmin))
    >>> "dbo.fGetNearbyObjEq(150.0, 2.0, 30.0)" in cone
    True
    """
    options = FetchOptions(target=target, r_mag_range=r_mag_range, z_range=z_range,
                           extra_columns=extra_columns, selection=selection, region=region)
    return QuerySpec(n_galaxies, options).sql()


# --------------------------------------------------------------------------
# Transport and parsing
# --------------------------------------------------------------------------

def _parse_int64(text, name, row):
    s = text.strip()
    if not re.fullmatch(r"[+-]?\d+", s):
        raise SkyServerError(
            f"SkyServer returned {name} = {text!r} in data row {row}, which is not an "
            f"exact integer")
    value = int(s)
    if not _INT64.min <= value <= _INT64.max:
        raise SkyServerError(f"SkyServer returned {name} = {s} in data row {row}, outside int64")
    return value


def _csv_rows(content):
    """Check SkyServer's answer (``#Table1``, header, rows); return (header, rows)."""
    text = content.decode("utf-8-sig", errors="replace") if isinstance(
        content, bytes) else content
    stripped = text.strip()
    if not stripped:
        raise SkyServerError("SkyServer returned an empty response instead of a table")
    if looks_like_html(stripped):
        raise SkyServerError(
            f"SkyServer returned an HTML page instead of a table: {html_text(text)!r}")
    lines = stripped.splitlines()
    if lines[0].strip() != "#Table1":
        raise SkyServerError(
            "SkyServer returned an unexpected response (it does not start with "
            f"'#Table1'): {stripped[:300]!r}")
    if any(line.startswith("#Table") for line in lines[1:]):
        raise SkyServerError("SkyServer returned more than one table")
    reader = csv.reader(lines[1:])
    header = next(reader, None)
    if not header:
        raise SkyServerError("SkyServer returned a table without a header line")
    rows = []
    for k, row in enumerate(reader, start=1):
        if not row:
            continue
        if len(row) != len(header):
            raise SkyServerError(
                f"SkyServer returned a garbled table: data row {k} has {len(row)} fields, "
                f"the header has {len(header)}")
        rows.append(row)
    return header, rows


def _parse_floats(rows, j, name):
    arr = np.empty(len(rows), dtype=np.float64)
    for k, r in enumerate(rows):
        s = r[j].strip()
        if s == "" or s.lower() == "null":
            arr[k] = np.nan
            continue
        try:
            arr[k] = float(s)
        except ValueError:
            raise SkyServerError(
                f"SkyServer returned {name} = {s!r} in data row {k + 1}, "
                "which is not a number") from None
    return arr


def _parse_skyserver_csv(content, columns):
    """Parse SkyServer's CSV answer (``#Table1``, header, rows) into column arrays.

    Identifiers are parsed from their text as exact int64 (never via float).
    """
    header, rows = _csv_rows(content)
    index = {h.strip().lower(): j for j, h in enumerate(header)}
    missing = [c for c in columns if c.lower() not in index]
    if missing:
        raise SkyServerError(
            f"SkyServer table lacks the expected column(s) {missing}; it has {header}")
    out = {}
    for name in columns:
        j = index[name.lower()]
        if _KNOWN_COLUMNS[name]["kind"] in ("id", "int"):
            values = [_parse_int64(r[j], name, k) for k, r in enumerate(rows, start=1)]
            out[name] = np.array(values, dtype=np.int64)
        else:
            out[name] = _parse_floats(rows, j, name)
    return out


def _run_sql(client, sql, options, counters):
    """Send one SQL statement through astroquery, with retries; return the answer's bytes."""
    import requests

    sdss_conf = astroquery_sdss_conf()
    base = skyserver_url().rstrip("/")
    timeout = options.timeout

    def attempt():
        try:
            # astroquery's own configuration is only changed for the call (public
            # ConfigNamespace API); with sfnet.conf.skyserver_url unset it is
            # astroquery's value anyway.
            with sdss_conf.set_temp("skyserver_baseurl", base):
                response = client.query_sql_async(sql, timeout=timeout,
                                                  data_release=options.data_release,
                                                  cache=False)
        except requests.Timeout:
            raise TransientError(f"no answer within the {timeout} s timeout") from None
        except (requests.ConnectionError, requests.exceptions.ChunkedEncodingError) as exc:
            raise TransientError(f"connection error: {exc}") from None
        raise_for_status(response, source=base, snippet=300)
        return response.content

    try:
        content, _ = call_with_retries(attempt, options.policy, counters)
    except (TransientError, PermanentError) as exc:
        raise SkyServerError(
            f"SkyServer query failed after {exc.n_attempts} attempt(s): {exc}") from exc
    return content


def _fetch_pages(client, spec, options, bar, counters):
    """Send the query page by page (keyset paging on specObjID); return the pages."""
    pages = []
    got = 0
    after = None
    while got < spec.n:
        top = min(options.page_size, spec.n - got)
        content = _run_sql(client, spec.sql(top=top, after=after), options, counters)
        page = _parse_skyserver_csv(content, spec.columns)
        ids = page["specObjID"]
        if len(ids) > top:
            raise SkyServerError(
                f"SkyServer returned {len(ids)} rows for a TOP {top} query")
        if len(ids) and (np.any(np.diff(ids) <= 0) or (
                after is not None and ids[0] <= after)):
            raise SkyServerError(
                "SkyServer returned rows out of specObjID order; paging would not "
                "be reliable")
        pages.append(page)
        got += len(ids)
        bar.update(len(ids))
        if len(ids) < top:
            break
        after = int(ids[-1])
    return pages


def _catalog_table(spec, pages, data_release):
    """Join the pages into a Table with units, one row per objID, and provenance meta."""
    import astroquery

    table = Table()
    for name in spec.columns:
        info = _KNOWN_COLUMNS[name]
        data = np.concatenate([p[name] for p in pages]) if pages else np.array(
            [], dtype=np.int64 if info["kind"] != "float" else np.float64)
        table[name] = Column(data, unit=info["unit"], description=info["description"])
    # One row per photometric object (each image is keyed by objID).
    _, first = np.unique(table["objID"], return_index=True)
    if len(first) < len(table):
        log.info("dropping %d duplicate objID row(s)", len(table) - len(first))
        table = table[np.sort(first)]
    if len(table) < spec.n:
        log.info("SkyServer has only %d galaxies matching the query (asked for %d)",
                 len(table), spec.n)
    if spec.region is not None:
        table.meta["region"] = {"ra_deg": spec.region[0], "dec_deg": spec.region[1],
                                "radius_arcmin": spec.region[2]}
    table.meta.update({
        "sdss_query": one_line(spec.sql()),
        "data_release": int(data_release),
        "skyserver_url": skyserver_url(),
        "selection": spec.selection,
        "target": spec.target.name,
        "n_requested": int(spec.n),
        "retrieved": datetime.datetime.now(datetime.timezone.utc).isoformat(
            timespec="seconds"),
        "sfnet_version": sfnet_version(),
        "astroquery_version": astroquery.__version__,
        "source": "SDSS SkyServer, MPA-JHU galSpec tables (Brinchmann et al. 2004, "
                  "Tremonti et al. 2004, Kauffmann et al. 2003)",
    })
    return table


def query_catalog(spec, options, counters):
    """Page through the query of ``spec``; return a Table with units and provenance meta."""
    from astroquery.sdss import SDSSClass

    # A client of our own for this run (released when the function returns);
    # no private attribute of astroquery objects is touched.
    client = SDSSClass()
    bar = progress_bar(options.progress, total=spec.n, desc="SkyServer catalog", unit="row")
    try:
        pages = _fetch_pages(client, spec, options, bar, counters)
    finally:
        bar.close()
    return _catalog_table(spec, pages, options.data_release)


def query_sdss_catalog(n_galaxies, target="metallicity", *, data_release=None,
                       page_size=50000, r_mag_range=DEFAULT_R_MAG, z_range=DEFAULT_Z,
                       extra_columns=(), selection="default", region=None, timeout=None,
                       max_retries=None, retry_backoff=1.0, progress=False):
    """Run `build_sdss_query` on SkyServer and return the catalog (no images).

    Parameters
    ----------
    n_galaxies, target, r_mag_range, z_range, extra_columns, selection, region
        See `build_sdss_query`.
    data_release : int, optional
        SDSS data release (8-19); default ``sfnet.conf.data_release``, and
        when that is unset (``None``) astroquery's
        ``astroquery.sdss.conf.default_release``.
    page_size : int
        Rows per request (at most 500000, SkyServer's limit).
    timeout : float or `~astropy.units.Quantity`, optional
        Seconds per request; default ``sfnet.conf.timeout``.
    max_retries : int, optional
        Retries per request on timeouts, connection errors and HTTP 5xx;
        default ``sfnet.conf.max_retries``.
    retry_backoff : float
        Base delay of the exponential backoff, in seconds.
    progress : bool
        Show a progress bar.

    Returns
    -------
    `~astropy.table.Table`
        Columns of `SDSS_COLUMNS` (`PAPER_COLUMNS` with ``selection="paper"``)
        plus extras, with units; ``objID``, ``specObjID`` (and ``DR7ObjID``)
        int64; ``meta`` holds the query, selection, region and provenance.
        The SkyServer URL is ``sfnet.conf.skyserver_url``, or astroquery's
        ``astroquery.sdss.conf.skyserver_baseurl`` when that is empty.

    Raises
    ------
    SkyServerError
        An error page, a malformed table, or failure after all retries.
    """
    options = FetchOptions(target=target, data_release=data_release, page_size=page_size,
                           r_mag_range=r_mag_range, z_range=z_range,
                           extra_columns=extra_columns, selection=selection, region=region,
                           timeout=timeout, max_retries=max_retries,
                           retry_backoff=retry_backoff, progress=progress)
    spec = QuerySpec(n_galaxies, options)
    skyserver_url()
    return query_catalog(spec, options, Counters())
