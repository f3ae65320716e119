"""Retrieval of an SDSS galaxy sample: MPA-JHU catalog and colour cutouts.

`fetch_sdss_sample` writes the layout of the paper's Zenodo record
(10.5281/zenodo.14712542), so fetched data and the released data load the
same way with `~sfnet.datasets.load_galaxy_folder`::

    output_dir/
        galaxies.csv            catalog, objID as exact 64-bit integers
        galaxies.ecsv           same catalog with units and provenance (query, release, date)
        images-sdss/{objID}.jpg 160x160 colour JPEG cutouts (0.262 arcsec/px)
        failures.csv            cutouts that could not be fetched: objID, ra, dec, attempts, error
        fetch_report.json       counts of the last run (requests, retries, failures, seconds)

The catalog comes from one SkyServer SQL query (`build_sdss_query`) built
only from validated numbers and allow-listed column names, sent through
`astroquery.sdss.SDSS.query_sql` page by page (``TOP page_size`` rows ordered
by ``specObjID``, each page starting after the last ``specObjID`` seen).  The
response is checked before it becomes data: an HTML error page, an empty or
garbled body or a table without the expected columns raises
`SkyServerError`; ``objID``/``specObjID`` are parsed as exact int64.

Cutouts come from the CDS hips2fits service on the ``CDS/P/SDSS9/color`` HiPS
(default) or from the Legacy Survey viewer's ``cutout.jpg?layer=sdss`` (the
service the paper used).  Downloads run in a bounded thread pool with a
polite rate limit, retry timeouts, connection errors and HTTP 5xx with
exponential backoff and jitter, are written atomically and only count once
they decode.  A second run re-uses the catalog (same query) and fetches only
missing or damaged images.

All endpoints come from `sfnet.conf` (``skyserver_url``, ``hips2fits_url``,
``legacysurvey_url``, ``timeout``, ``max_retries``, ``max_workers``,
``data_release``, ``cutout_service``).
"""

import csv
import datetime
import html
import io
import logging
import math
import numbers
import os
import re
import sys
import time
import warnings
from pathlib import Path
from urllib.parse import urlsplit

import numpy as np
from astropy import units as u
from astropy.table import Column, Table

from .._io import atomic_write_bytes, atomic_write_json, atomic_write_text
from ..config import conf
from ..exceptions import DataDroppedWarning, SkyServerError
from ..targets import TARGETS, Target, get_target
from . import _download as _dl
from ..catalog import COLUMNS

__all__ = ["fetch_sdss_sample", "build_sdss_query", "query_sdss_catalog",
           "fetch_sdss_cutouts", "SkyServerError", "SDSS_COLUMNS",
           "SDSS_EXTRA_COLUMNS", "HIPS_SDSS_COLOR"]

log = logging.getLogger(__name__)

#: The HiPS the default cutouts come from (SDSS DR9 gri colour composite).
HIPS_SDSS_COLOR = "CDS/P/SDSS9/color"

def _col(c):
    return {"table": c.table, "kind": c.kind, "unit": c.unit, "description": c.description}


#: The catalog columns of a fetched sample (DESIGN.md), in order:
#: name -> table alias (s=SpecObj, p=PhotoObj, l=galSpecLine, e=galSpecExtra),
#: kind ("id", "int" or "float"), unit and description, from `sfnet.catalog`.
SDSS_COLUMNS = {name: _col(c) for name, c in COLUMNS.items() if c.default}

#: Further columns that may be requested with ``extra_columns`` (allow-list:
#: nothing else ever reaches the SQL).
SDSS_EXTRA_COLUMNS = {name: _col(c) for name, c in COLUMNS.items() if not c.default}

_KNOWN_COLUMNS = {**SDSS_COLUMNS, **SDSS_EXTRA_COLUMNS}

#: SkyServer's row limit for one synchronous query.
_MAX_PAGE = 500_000
_INT64 = np.iinfo(np.int64)
_SERVICES = ("hips2fits", "legacysurvey")
_IMAGE_DIR = "images-sdss"
_CATALOG_CSV = "galaxies.csv"
_CATALOG_ECSV = "galaxies.ecsv"
_MANIFEST = "failures.csv"
_REPORT = "fetch_report.json"


# --------------------------------------------------------------------------
# Parameter validation: every public entry point validates everything before
# the first request or the first file is written.
# --------------------------------------------------------------------------

def _check_int(value, name, minimum=None, maximum=None):
    if isinstance(value, (bool, np.bool_)) or isinstance(value, (str, bytes)):
        raise ValueError(f"{name} must be an integer, got {value!r}")
    if not isinstance(value, numbers.Integral):
        if isinstance(value, numbers.Real):
            raise ValueError(f"{name} must be an integer, got {value!r}")
        raise TypeError(f"{name} must be an integer, got {type(value).__name__} {value!r}")
    value = int(value)
    if minimum is not None and value < minimum:
        raise ValueError(f"{name} must be >= {minimum}, got {value}")
    if maximum is not None and value > maximum:
        raise ValueError(f"{name} must be <= {maximum}, got {value}")
    return value


def _check_float(value, name, unit=None, minimum=None, maximum=None, strict_min=False):
    if isinstance(value, u.Quantity):
        if unit is None:
            raise TypeError(f"{name} must be a plain number, got the Quantity {value!r}")
        try:
            value = value.to_value(unit)
        except u.UnitConversionError as exc:
            raise ValueError(f"{name} must be in units of {unit}, got {value!r}") from exc
        if np.ndim(value) != 0:
            raise ValueError(f"{name} must be a scalar, got {value!r}")
        value = float(value)
    if isinstance(value, (bool, np.bool_)) or isinstance(value, (str, bytes)):
        raise ValueError(f"{name} must be a number, got {value!r}")
    if not isinstance(value, numbers.Real):
        raise TypeError(f"{name} must be a number, got {type(value).__name__} {value!r}")
    value = float(value)
    if not math.isfinite(value):
        raise ValueError(f"{name} must be finite, got {value!r}")
    if minimum is not None and (value <= minimum if strict_min else value < minimum):
        raise ValueError(f"{name} must be {'>' if strict_min else '>='} {minimum}, got {value}")
    if maximum is not None and value > maximum:
        raise ValueError(f"{name} must be <= {maximum}, got {value}")
    return value


def _check_range(value, name, unit=None):
    if value is None:
        return (None, None)
    if isinstance(value, (str, bytes)) or not isinstance(value, (tuple, list)) or len(value) != 2:
        raise ValueError(f"{name} must be a (min, max) pair of numbers or None, got {value!r}")
    lo, hi = (None if v is None else _check_float(v, f"{name}[{i}]", unit=unit)
              for i, v in enumerate(value))
    if lo is not None and hi is not None and not lo < hi:
        raise ValueError(f"{name} must have min < max, got {value!r}")
    return (lo, hi)


def _check_bool(value, name):
    if not isinstance(value, (bool, np.bool_)):
        raise TypeError(f"{name} must be True or False, got {value!r}")
    return bool(value)


def _check_url(value, name):
    if not isinstance(value, str):
        raise TypeError(f"{name} must be a URL string, got {value!r}")
    parts = urlsplit(value)
    if parts.scheme not in ("http", "https") or not parts.netloc or any(
            c.isspace() for c in value):
        raise ValueError(f"{name} must be an http(s) URL, got {value!r}")
    return value


def _check_target(target):
    """Resolve ``target`` and return (Target, tuple of its SkyServer column names)."""
    if isinstance(target, Target):
        if target.name in TARGETS and TARGETS[target.name] == target:
            return target, ()
        names = tuple(target.required)
    else:
        target = get_target(target)
        if target.name in TARGETS:
            return target, ()
        names = tuple(target.columns)
    unknown = [c for c in names if c not in _KNOWN_COLUMNS]
    if unknown:
        raise ValueError(
            f"target must be 'metallicity', 'bpt_lines' or SDSS catalog column names "
            f"known to sfnet (SDSS_COLUMNS, SDSS_EXTRA_COLUMNS); {unknown[0]!r} is not "
            f"one (no free text is ever passed into the SQL)")
    return target, names


def _check_extra_columns(extra_columns):
    if extra_columns is None:
        return ()
    if isinstance(extra_columns, str):
        extra_columns = (extra_columns,)
    if not isinstance(extra_columns, (tuple, list)):
        raise TypeError(f"extra_columns must be a list of column names, got {extra_columns!r}")
    out = []
    for name in extra_columns:
        if not isinstance(name, str) or name not in _KNOWN_COLUMNS:
            raise ValueError(
                f"extra_columns: {name!r} is not a column sfnet can request; choose "
                f"from SDSS_EXTRA_COLUMNS: {sorted(SDSS_EXTRA_COLUMNS)}")
        if name not in SDSS_COLUMNS and name not in out:
            out.append(name)
    return tuple(out)


def _check_data_release(data_release):
    if data_release is None:
        data_release = conf.data_release
    # The MPA-JHU galSpec tables exist in SkyServer from DR8 on.
    return _check_int(data_release, "data_release", minimum=8, maximum=19)


def _check_service(cutout_service):
    if cutout_service is None:
        cutout_service = conf.cutout_service
    if not isinstance(cutout_service, str) or cutout_service not in _SERVICES:
        raise ValueError(f"cutout_service must be one of {_SERVICES}, got {cutout_service!r}")
    return cutout_service


class _QuerySpec:
    """Validated parameters of the catalog query; renders the SQL."""

    def __init__(self, n_galaxies, target, r_mag_range, z_range, extra_columns):
        self.n = _check_int(n_galaxies, "n_galaxies", minimum=1, maximum=10_000_000)
        self.target, target_cols = _check_target(target)
        self.r_mag_range = _check_range(r_mag_range, "r_mag_range", unit=u.mag)
        self.z_range = _check_range(z_range, "z_range")
        extra = _check_extra_columns(extra_columns)
        self.extra = tuple(dict.fromkeys(
            c for c in extra + target_cols if c not in SDSS_COLUMNS))
        self.columns = tuple(SDSS_COLUMNS) + self.extra

    def where(self):
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
        aliases = {name: col.table for name, col in COLUMNS.items()}
        cond += self.target.sql_where(aliases)
        return cond

    def sql(self, top=None, after=None):
        top = self.n if top is None else top
        names = [f"{_KNOWN_COLUMNS[c]['table']}.{c}" for c in self.columns]
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
            "FROM SpecObj AS s\n"
            "  JOIN PhotoObj AS p ON p.objID = s.bestObjID\n"
            "  JOIN galSpecInfo AS i ON i.specObjID = s.specObjID\n"
            "  JOIN galSpecLine AS l ON l.specObjID = s.specObjID\n"
            "  JOIN galSpecExtra AS e ON e.specObjID = s.specObjID\n"
            "WHERE " + "\n  AND ".join(cond) + "\n"
            "ORDER BY s.specObjID")


def _sql_num(x):
    """A validated finite float as an SQL literal (shortest exact repr)."""
    if not math.isfinite(x):  # pragma: no cover - validated before
        raise ValueError(f"not a finite number: {x!r}")
    return repr(float(x))


def _one_line(sql):
    return " ".join(sql.split())


def build_sdss_query(n_galaxies, target="metallicity", *, r_mag_range=(14.0, 17.77),
                     z_range=(0.02, None), extra_columns=()):
    """The SkyServer SQL that selects the sample (for inspection and the docs).

    The query joins ``SpecObj`` to ``PhotoObj`` on ``bestObjID`` and to the
    MPA-JHU tables ``galSpecInfo``, ``galSpecLine`` and ``galSpecExtra`` on
    ``specObjID``; it keeps primary galaxy spectra with a clean redshift
    (``class = 'GALAXY'``, ``sciencePrimary = 1``, ``zWarning = 0``), MPA-JHU
    ``reliable = 1``, the redshift and Petrosian r-magnitude ranges, and the
    target's quality cuts (see `sfnet.targets`).  Only validated numbers and
    allow-listed column names enter the text.  `fetch_sdss_sample` runs it in
    pages of ``TOP page_size`` rows, each with ``s.specObjID >`` the last
    value seen.

    Parameters
    ----------
    n_galaxies : int
        Number of galaxies (``TOP n_galaxies``), positive.
    target : str or list of str
        ``"metallicity"``, ``"bpt_lines"`` or a list of column names from
        `SDSS_COLUMNS` / `SDSS_EXTRA_COLUMNS`.
    r_mag_range : (float or None, float or None)
        Inclusive range of ``petroMag_r``; ``None`` leaves a side open.
    z_range : (float or None, float or None)
        Exclusive range of the redshift ``z``; default ``z > 0.02``.
    extra_columns : list of str
        Further columns from `SDSS_EXTRA_COLUMNS`.

    Returns
    -------
    str

    Raises
    ------
    ValueError, TypeError
        A parameter is not a valid number or known name.

    Examples
    --------
    >>> from sfnet.datasets import build_sdss_query
    >>> sql = build_sdss_query(1000, "metallicity")
    >>> print(sql.splitlines()[0])
    SELECT TOP 1000
    >>> "e.oh_p50 > 0" in sql and sql.endswith("ORDER BY s.specObjID")
    True
    """
    return _QuerySpec(n_galaxies, target, r_mag_range, z_range, extra_columns).sql()


# --------------------------------------------------------------------------
# SkyServer
# --------------------------------------------------------------------------

def _html_text(text, limit=400):
    text = re.sub(r"(?is)<(script|style)\b.*?</\1\s*>", " ", text)
    text = re.sub(r"(?s)<[^>]*>", " ", text)
    text = " ".join(html.unescape(text).split())
    return text[:limit] + ("..." if len(text) > limit else "")


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


def _parse_skyserver_csv(content, columns):
    """Parse SkyServer's CSV answer (``#Table1``, header, rows) into column arrays.

    Identifiers are parsed from their text as exact int64 (never via float).
    """
    text = content.decode("utf-8-sig", errors="replace") if isinstance(
        content, bytes) else content
    stripped = text.strip()
    if not stripped:
        raise SkyServerError("SkyServer returned an empty response instead of a table")
    head = stripped[:4000].lower()
    if stripped.startswith("<") or "<html" in head or "<body" in head:
        raise SkyServerError(
            f"SkyServer returned an HTML page instead of a table: {_html_text(text)!r}")
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
    index = {h.strip().lower(): j for j, h in enumerate(header)}
    missing = [c for c in columns if c.lower() not in index]
    if missing:
        raise SkyServerError(
            f"SkyServer table lacks the expected column(s) {missing}; it has {header}")
    rows = []
    for k, row in enumerate(reader, start=1):
        if not row:
            continue
        if len(row) != len(header):
            raise SkyServerError(
                f"SkyServer returned a garbled table: data row {k} has {len(row)} fields, "
                f"the header has {len(header)}")
        rows.append(row)
    out = {}
    for name in columns:
        j = index[name.lower()]
        kind = _KNOWN_COLUMNS[name]["kind"]
        if kind in ("id", "int"):
            values = [_parse_int64(r[j], name, k) for k, r in enumerate(rows, start=1)]
            out[name] = np.array(values, dtype=np.int64)
        else:
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
            out[name] = arr
    return out


def _run_sql(client, sql, *, data_release, timeout, policy, counters):
    """Send one SQL statement through astroquery, with retries; return column arrays."""
    import requests
    from astroquery.sdss import conf as sdss_conf

    base = conf.skyserver_url.rstrip("/")

    def attempt():
        try:
            with sdss_conf.set_temp("skyserver_baseurl", base):
                response = client.query_sql_async(sql, timeout=timeout,
                                                  data_release=data_release, cache=False)
        except requests.Timeout:
            raise _dl.TransientError(f"no answer within the {timeout} s timeout") from None
        except (requests.ConnectionError, requests.exceptions.ChunkedEncodingError) as exc:
            raise _dl.TransientError(f"connection error: {exc}") from None
        status = response.status_code
        if status in _dl.RETRYABLE_STATUS:
            raise _dl.TransientError(f"HTTP {status} from {base}",
                                     retry_after=_retry_after(response))
        if status != 200:
            raise _dl.PermanentError(
                f"HTTP {status} from {base}: {_html_text(response.text, 300)!r}")
        return response.content

    try:
        content, _ = _dl.call_with_retries(attempt, policy, counters)
    except (_dl.TransientError, _dl.PermanentError) as exc:
        raise SkyServerError(
            f"SkyServer query failed after {exc.n_attempts} attempt(s): {exc}") from exc
    return content


def _retry_after(response):
    value = response.headers.get("Retry-After", "")
    try:
        return max(0.0, float(value))
    except ValueError:
        return None


def _policy(max_retries, retry_backoff):
    max_retries = _check_int(conf.max_retries if max_retries is None else max_retries,
                             "max_retries", minimum=0, maximum=100)
    retry_backoff = _check_float(retry_backoff, "retry_backoff", minimum=0.0, maximum=3600.0)
    return _dl.RetryPolicy(max_retries=max_retries, backoff=retry_backoff,
                           max_backoff=max(60.0, retry_backoff))


def _timeout(timeout):
    return _check_float(conf.timeout if timeout is None else timeout, "timeout",
                        unit=u.s, minimum=0.0, strict_min=True)


def _sfnet_version():
    from .. import __version__
    return __version__


def _query_catalog(spec, *, data_release, page_size, timeout, policy, progress, counters):
    """Page through the query; return a Table with units and provenance meta."""
    from astroquery.sdss import SDSSClass

    client = SDSSClass()
    pages = []
    got = 0
    after = None
    bar = _progress_bar(progress, total=spec.n, desc="SkyServer catalog", unit="row")
    try:
        while got < spec.n:
            top = min(page_size, spec.n - got)
            content = _run_sql(client, spec.sql(top=top, after=after),
                               data_release=data_release, timeout=timeout, policy=policy,
                               counters=counters)
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
    finally:
        bar.close()
        client._session.close()

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
    import astroquery

    table.meta.update({
        "sdss_query": _one_line(spec.sql()),
        "data_release": int(data_release),
        "skyserver_url": conf.skyserver_url,
        "target": spec.target.name,
        "n_requested": int(spec.n),
        "retrieved": datetime.datetime.now(datetime.timezone.utc).isoformat(
            timespec="seconds"),
        "sfnet_version": _sfnet_version(),
        "astroquery_version": astroquery.__version__,
        "source": "SDSS SkyServer, MPA-JHU galSpec tables (Brinchmann et al. 2004, "
                  "Tremonti et al. 2004, Kauffmann et al. 2003)",
    })
    return table


def query_sdss_catalog(n_galaxies, target="metallicity", *, data_release=None,
                       page_size=50000, r_mag_range=(14.0, 17.77), z_range=(0.02, None),
                       extra_columns=(), timeout=None, max_retries=None,
                       retry_backoff=1.0, progress=False):
    """Run `build_sdss_query` on SkyServer and return the catalog (no images).

    Parameters
    ----------
    n_galaxies, target, r_mag_range, z_range, extra_columns
        See `build_sdss_query`.
    data_release : int, optional
        SDSS data release (8-19); default ``sfnet.conf.data_release``.
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
        Columns of `SDSS_COLUMNS` (plus extras) with units; ``objID`` and
        ``specObjID`` int64; ``meta`` holds the query and provenance.

    Raises
    ------
    SkyServerError
        An error page, a malformed table, or failure after all retries.
    """
    spec = _QuerySpec(n_galaxies, target, r_mag_range, z_range, extra_columns)
    data_release = _check_data_release(data_release)
    page_size = _check_int(page_size, "page_size", minimum=1, maximum=_MAX_PAGE)
    timeout = _timeout(timeout)
    policy = _policy(max_retries, retry_backoff)
    progress = _check_bool(progress, "progress")
    _check_url(conf.skyserver_url, "sfnet.conf.skyserver_url")
    return _query_catalog(spec, data_release=data_release, page_size=page_size,
                          timeout=timeout, policy=policy, progress=progress,
                          counters=_dl.Counters())


# --------------------------------------------------------------------------
# Cutouts
# --------------------------------------------------------------------------

class _BadImage(Exception):
    def __init__(self, message, retryable=True):
        super().__init__(message)
        self.retryable = retryable


def _check_jpeg(data, size):
    """Raise `_BadImage` unless ``data`` is a complete ``size`` x ``size`` RGB JPEG."""
    from PIL import Image

    if len(data) < 4 or data[:3] != b"\xff\xd8\xff":
        snippet = data[:60].decode("latin-1", errors="replace")
        raise _BadImage(f"not a JPEG ({len(data)} bytes starting {snippet!r})")
    if b"\xff\xd9" not in data[-64:]:
        raise _BadImage(f"truncated JPEG ({len(data)} bytes, no end-of-image marker)")
    try:
        with Image.open(io.BytesIO(data)) as im:
            im.load()  # full decode
            fmt, mode, dims = im.format, im.mode, im.size
            extrema = im.getextrema()
    except (OSError, SyntaxError, ValueError, Image.DecompressionBombError) as exc:
        raise _BadImage(f"JPEG does not decode: {exc}") from None
    if fmt != "JPEG" or mode != "RGB":
        raise _BadImage(f"not an RGB JPEG (format {fmt}, mode {mode})", retryable=False)
    if dims != (size, size):
        raise _BadImage(f"image is {dims[0]}x{dims[1]} px, expected {size}x{size}",
                        retryable=False)
    if all(lo == hi for lo, hi in extrema):
        raise _BadImage("blank cutout (a single colour: outside the survey footprint?)",
                        retryable=False)


def _hips2fits_params(ra, dec, size, scale_arcsec):
    """Request parameters of astroquery.hips2fits for one JPEG cutout (no request)."""
    from astropy.coordinates import Angle
    from astroquery.hips2fits import hips2fits

    return hips2fits.query_async(
        get_query_payload=True, hips=HIPS_SDSS_COLOR, width=size, height=size,
        projection="TAN", ra=Angle(ra * u.deg), dec=Angle(dec * u.deg),
        fov=Angle(size * scale_arcsec * u.arcsec), coordsys="icrs",
        rotation_angle=Angle(0 * u.deg), format="jpg", min_cut=0.5, max_cut=99.5,
        stretch="linear", cmap="Greys_r")


class _CutoutRequest:
    """URL and parameters of one cutout from the configured service."""

    def __init__(self, service, size, scale_arcsec):
        self.service = service
        self.size = size
        self.scale = scale_arcsec
        if service == "hips2fits":
            self.url = _check_url(conf.hips2fits_url, "sfnet.conf.hips2fits_url")
            _hips2fits_params(0.0, 0.0, size, scale_arcsec)  # import + validate up front
        else:
            base = _check_url(conf.legacysurvey_url, "sfnet.conf.legacysurvey_url")
            self.url = base.rstrip("/") + "/cutout.jpg"

    def params(self, ra, dec):
        if self.service == "hips2fits":
            return _hips2fits_params(ra, dec, self.size, self.scale)
        return {"ra": repr(float(ra)), "dec": repr(float(dec)), "layer": "sdss",
                "pixscale": f"{self.scale:g}", "size": self.size}


def _fetch_cutouts(catalog, out, *, request, timeout, policy, max_workers, rate_limit,
                   progress):
    """Download every missing or invalid cutout; return (counters, failures, seconds)."""
    import requests

    image_dir = out / _IMAGE_DIR
    image_dir.mkdir(parents=True, exist_ok=True)
    counters = _dl.Counters()
    limiter = _dl.RateLimiter(rate_limit)
    sessions = _dl.SessionPool(
        f"sfnet/{_sfnet_version()} python-requests/{requests.__version__}")
    size = request.size

    def work(task, stop):
        objid, ra, dec = task
        path = image_dir / f"{objid}.jpg"
        if path.exists():
            try:
                _check_jpeg(path.read_bytes(), size)
            except _BadImage as exc:
                log.debug("re-fetching %s: %s", path, exc)
            else:
                counters.add(skipped=1)
                return "present"

        def attempt():
            try:
                response = sessions.get().get(request.url, params=request.params(ra, dec),
                                              timeout=timeout)
            except requests.Timeout:
                raise _dl.TransientError(f"timeout: no answer within {timeout:g} s") from None
            except (requests.ConnectionError, requests.exceptions.ChunkedEncodingError,
                    requests.exceptions.ContentDecodingError) as exc:
                raise _dl.TransientError(f"connection error: {exc}") from None
            except requests.RequestException as exc:
                raise _dl.PermanentError(f"request error: {exc}") from None
            status = response.status_code
            if status in _dl.RETRYABLE_STATUS:
                raise _dl.TransientError(f"HTTP {status}", retry_after=_retry_after(response))
            if status != 200:
                raise _dl.PermanentError(f"HTTP {status}: {_html_text(response.text, 200)!r}")
            data = response.content
            try:
                _check_jpeg(data, size)
            except _BadImage as exc:
                cls = _dl.TransientError if exc.retryable else _dl.PermanentError
                raise cls(f"invalid image: {exc}") from None
            return data

        data, _ = _dl.call_with_retries(attempt, policy, counters, stop=stop, limiter=limiter)
        atomic_write_bytes(path, data)
        counters.add(downloaded=1)
        return "downloaded"

    tasks = ((int(o), float(r), float(d)) for o, r, d in zip(
        np.asarray(catalog["objID"]), _deg(catalog["ra"]), _deg(catalog["dec"])))
    failures = []
    bar = _progress_bar(progress, total=len(catalog), desc=f"cutouts ({request.service})",
                        unit="img")

    def on_done(task, outcome):
        if isinstance(outcome, BaseException):
            if isinstance(outcome, (_dl.TransientError, _dl.PermanentError)):
                attempts, error = outcome.n_attempts, str(outcome)
            else:
                attempts, error = 0, f"{type(outcome).__name__}: {outcome}"
            failures.append(_dl.Failure(task[0], attempts, error, extra={
                "objID": task[0], "ra": repr(task[1]), "dec": repr(task[2])}))
            counters.add(failed=1)
            bar.set_postfix(failed=counters.failed, retries=counters.retries, refresh=False)

    t0 = time.perf_counter()
    try:
        _dl.run_pool(tasks, work, max_workers=max_workers, progress_bar=bar, on_done=on_done)
    finally:
        bar.close()
        sessions.close()
    failures.sort(key=lambda f: f.key)
    return counters, failures, time.perf_counter() - t0


def _deg(col):
    if isinstance(col, u.Quantity):
        return np.asarray(col.to_value(u.deg), dtype=np.float64)
    unit = getattr(col, "unit", None)
    data = np.asarray(col, dtype=np.float64)
    return data if unit is None else (data * u.Unit(unit)).to_value(u.deg)


def _progress_bar(progress, **kwargs):
    from tqdm.auto import tqdm

    return tqdm(disable=not progress, file=sys.stderr, dynamic_ncols=True, smoothing=0.05,
                **kwargs)


class _CutoutOptions:
    """Validated cutout parameters."""

    def __init__(self, cutout_size, pixel_scale, cutout_service, max_workers, rate_limit,
                 timeout, max_retries, retry_backoff):
        self.size = _check_int(cutout_size, "cutout_size", minimum=8, maximum=2048)
        scale = _check_float(pixel_scale, "pixel_scale", unit=u.arcsec, minimum=0.0,
                             maximum=60.0, strict_min=True)
        self.request = _CutoutRequest(_check_service(cutout_service), self.size, scale)
        self.max_workers = _check_int(conf.max_workers if max_workers is None else max_workers,
                                      "max_workers", minimum=1, maximum=64)
        self.rate_limit = None if rate_limit is None else _check_float(
            rate_limit, "rate_limit", unit=u.Hz, minimum=0.0, strict_min=True)
        self.timeout = _timeout(timeout)
        self.policy = _policy(max_retries, retry_backoff)


def _check_output_dir(output_dir):
    if not isinstance(output_dir, (str, os.PathLike)):
        raise TypeError(f"output_dir must be a path, got {output_dir!r}")
    out = Path(output_dir)
    if out.exists() and not out.is_dir():
        raise ValueError(f"output_dir {str(out)!r} exists and is not a directory")
    return out


_TMP_NAME = re.compile(r"^\.(\d+\.jpg|galaxies\.e?csv|failures\.csv|fetch_report\.json)"
                       r"\..+\.tmp$")


def _remove_stale_temporaries(out):
    """Remove temporary files an earlier, killed run may have left (never real files)."""
    for folder in (out, out / _IMAGE_DIR):
        if folder.is_dir():
            for entry in os.scandir(folder):
                if entry.is_file() and _TMP_NAME.match(entry.name):
                    try:
                        os.unlink(entry.path)
                    except FileNotFoundError:
                        pass


def _cutout_summary(counters, failures, seconds, n_total, out):
    c = counters.as_dict()
    report = {
        "n_galaxies": int(n_total),
        "valid": int(c["skipped"] + c["downloaded"]),
        "already_present": c["skipped"],
        "downloaded": c["downloaded"],
        "failed": c["failed"],
        "requests": c["requests"],
        "retries": c["retries"],
        "seconds": round(seconds, 3),
        "failures_file": _MANIFEST,
    }
    text = (f"cutouts: {report['valid']}/{n_total} valid ({c['skipped']} already present, "
            f"{c['downloaded']} downloaded), {c['failed']} failed; {c['requests']} requests, "
            f"{c['retries']} retries, {seconds:.1f} s")
    if failures:
        text += f"; failures listed in {out / _MANIFEST}"
    return report, text


def _warn_failures(failures, n_total, out, stacklevel):
    if failures:
        shown = ", ".join(f"{f.key} ({f.error})" for f in failures[:3])
        warnings.warn(
            f"{len(failures)} of {n_total} cutouts could not be fetched and will be "
            f"missing from the sample (run again to retry them); see "
            f"{out / _MANIFEST}: {shown}{', ...' if len(failures) > 3 else ''}",
            DataDroppedWarning, stacklevel=stacklevel)


def _write_csv(table, out):
    buf = io.StringIO()
    table.write(buf, format="ascii.csv")
    atomic_write_text(out / _CATALOG_CSV, buf.getvalue())


def _write_catalog(table, out):
    # The ECSV (with the query in its meta) goes first: a run killed between
    # the two writes leaves a catalog the next run recognises and completes.
    buf = io.StringIO()
    table.write(buf, format="ascii.ecsv")
    atomic_write_text(out / _CATALOG_ECSV, buf.getvalue())
    _write_csv(table, out)


def _existing_catalog(out, spec, data_release, overwrite):
    """The catalog of an earlier run of the same query, or None (nothing is written).

    Raises `FileExistsError` if ``out`` holds another catalog (a different
    query, or a ``galaxies.csv`` sfnet did not write, such as the Zenodo
    release) and ``overwrite`` is false.
    """
    ecsv, csv_path = out / _CATALOG_ECSV, out / _CATALOG_CSV
    reason = None
    if ecsv.is_file():
        try:
            table = Table.read(ecsv, format="ascii.ecsv")
        except Exception as exc:  # any unreadable file: treat as foreign
            reason = f"{ecsv} is unreadable ({exc})"
        else:
            if (table.meta.get("sdss_query") == _one_line(spec.sql())
                    and table.meta.get("data_release") == data_release
                    and "objID" in table.colnames and table["objID"].dtype == np.int64):
                return table
            reason = f"{ecsv} holds a different query or data release"
    elif csv_path.is_file():
        reason = f"{csv_path} exists and was not written by fetch_sdss_sample"
    if reason is not None and not overwrite:
        raise FileExistsError(
            f"{reason}; pass overwrite=True to replace the catalog (valid images of "
            f"galaxies in the new catalog are kept) or choose another output_dir")
    return None


def _fetch_to_folder(output_dir, n_galaxies, *, target="metallicity", data_release=None,
                     cutout_size=160, pixel_scale=0.262 * u.arcsec, cutout_service=None,
                     progress=True, page_size=50000, r_mag_range=(14.0, 17.77),
                     z_range=(0.02, None), extra_columns=(), max_workers=None,
                     rate_limit=10.0, timeout=None, max_retries=None, retry_backoff=1.0,
                     overwrite=False):
    """Everything `fetch_sdss_sample` does except loading; returns the run report."""
    # 1. validate everything; nothing is sent or written before this passes.
    out = _check_output_dir(output_dir)
    spec = _QuerySpec(n_galaxies, target, r_mag_range, z_range, extra_columns)
    data_release = _check_data_release(data_release)
    page_size = _check_int(page_size, "page_size", minimum=1, maximum=_MAX_PAGE)
    opts = _CutoutOptions(cutout_size, pixel_scale, cutout_service, max_workers, rate_limit,
                          timeout, max_retries, retry_backoff)
    progress = _check_bool(progress, "progress")
    overwrite = _check_bool(overwrite, "overwrite")
    _check_url(conf.skyserver_url, "sfnet.conf.skyserver_url")

    # 2. catalog: re-use a complete catalog of the same query, else page through SkyServer.
    catalog = _existing_catalog(out, spec, data_release, overwrite)
    out.mkdir(parents=True, exist_ok=True)
    _remove_stale_temporaries(out)
    sql_counters = _dl.Counters()
    reused = catalog is not None
    if reused and not (out / _CATALOG_CSV).is_file():
        _write_csv(catalog, out)
    if not reused:
        catalog = _query_catalog(spec, data_release=data_release, page_size=page_size,
                                 timeout=opts.timeout, policy=opts.policy, progress=progress,
                                 counters=sql_counters)
        if len(catalog) == 0:
            raise SkyServerError(
                "no galaxy matches the query (check r_mag_range, z_range, target and "
                f"data_release): {_one_line(spec.sql())}")
        _write_catalog(catalog, out)

    # 3. cutouts.
    counters, failures, seconds = _fetch_cutouts(
        catalog, out, request=opts.request, timeout=opts.timeout, policy=opts.policy,
        max_workers=opts.max_workers, rate_limit=opts.rate_limit, progress=progress)
    _dl.write_failure_manifest(out / _MANIFEST, failures)
    report, text = _cutout_summary(counters, failures, seconds, len(catalog), out)
    report.update({
        "catalog": "reused" if reused else "queried",
        "catalog_rows": len(catalog),
        "skyserver_requests": sql_counters.requests,
        "skyserver_retries": sql_counters.retries,
        "cutout_service": opts.request.service,
        "data_release": data_release,
        "finished": datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds"),
        "catalog_meta": {k: v for k, v in catalog.meta.items()
                         if isinstance(v, (str, int, float, bool))},
    })
    atomic_write_json(out / _REPORT, report)
    log.info(text)
    if progress:
        print(text, file=sys.stderr)
    _warn_failures(failures, len(catalog), out, stacklevel=4)  # -> fetch_sdss_sample's caller
    return report


def fetch_sdss_cutouts(catalog, output_dir, *, cutout_size=160, pixel_scale=0.262 * u.arcsec,
                       cutout_service=None, progress=True, max_workers=None, rate_limit=10.0,
                       timeout=None, max_retries=None, retry_backoff=1.0):
    """Fetch colour cutouts for an existing catalog into ``output_dir/images-sdss``.

    Useful to complete a folder (for example the Zenodo release) whose
    images are missing.  Valid images already on disk are kept; missing or
    damaged ones are fetched.  Failures are written to
    ``output_dir/failures.csv``.

    Parameters
    ----------
    catalog : `~astropy.table.Table`
        With ``objID`` (integer), ``ra`` and ``dec`` (degrees).
    output_dir : path-like
    cutout_size, pixel_scale, cutout_service, progress
        See `fetch_sdss_sample`.
    max_workers, rate_limit, timeout, max_retries, retry_backoff
        See `fetch_sdss_sample`.

    Returns
    -------
    dict
        Counts: ``valid``, ``already_present``, ``downloaded``, ``failed``,
        ``requests``, ``retries``, ``seconds``.
    """
    out = _check_output_dir(output_dir)
    opts = _CutoutOptions(cutout_size, pixel_scale, cutout_service, max_workers, rate_limit,
                          timeout, max_retries, retry_backoff)
    progress = _check_bool(progress, "progress")
    for name in ("objID", "ra", "dec"):
        if name not in getattr(catalog, "colnames", ()):
            raise ValueError(f"catalog needs an {name!r} column")
    if not np.issubdtype(np.asarray(catalog["objID"]).dtype, np.integer):
        raise ValueError("catalog['objID'] must hold integers (read it as int64, never float)")
    out.mkdir(parents=True, exist_ok=True)
    _remove_stale_temporaries(out)
    counters, failures, seconds = _fetch_cutouts(
        catalog, out, request=opts.request, timeout=opts.timeout, policy=opts.policy,
        max_workers=opts.max_workers, rate_limit=opts.rate_limit, progress=progress)
    _dl.write_failure_manifest(out / _MANIFEST, failures)
    report, text = _cutout_summary(counters, failures, seconds, len(catalog), out)
    log.info(text)
    if progress:
        print(text, file=sys.stderr)
    _warn_failures(failures, len(catalog), out, stacklevel=3)
    return report


def _load_sample(output_dir, progress):
    from .folder import load_galaxy_folder

    return load_galaxy_folder(output_dir, progress=progress)


def fetch_sdss_sample(output_dir, n_galaxies, *, target="metallicity", data_release=None,
                      cutout_size=160, pixel_scale=0.262 * u.arcsec, cutout_service=None,
                      progress=True, page_size=50000, r_mag_range=(14.0, 17.77),
                      z_range=(0.02, None), extra_columns=(), max_workers=None,
                      rate_limit=10.0, timeout=None, max_retries=None, retry_backoff=1.0,
                      overwrite=False):
    """Download an SDSS/MPA-JHU galaxy sample with colour cutouts and load it.

    Queries SkyServer (`build_sdss_query`, paged, through
    `astroquery.sdss.SDSS.query_sql`), writes ``galaxies.csv`` and
    ``galaxies.ecsv`` (units and provenance), fetches one JPEG cutout per
    galaxy into ``images-sdss/{objID}.jpg`` and returns
    ``load_galaxy_folder(output_dir)``.  Running it again resumes: the
    catalog is re-used when ``galaxies.ecsv`` holds the same query and data
    release, valid images are kept and only missing or damaged ones are
    fetched.  Failed cutouts never stop the others; they are listed in
    ``failures.csv`` (objID, ra, dec, attempts, last error) and reported with a
    `~sfnet.exceptions.DataDroppedWarning`.  Counts of the run are written to
    ``fetch_report.json``.

    Parameters
    ----------
    output_dir : path-like
        Folder to write (created if needed).
    n_galaxies : int
        Number of galaxies to select: the first ``n_galaxies`` by ``specObjID``
        that pass the cuts, i.e. the earliest plates -- a contiguous set of
        sky regions, not a random subset of the survey.
    target : str or list of str
        ``"metallicity"`` or ``"bpt_lines"`` (their quality cuts go into the
        SQL) or a list of known column names.
    data_release : int, optional
        SDSS data release (8-19); default ``sfnet.conf.data_release``.
    cutout_size : int
        Cutout width and height in pixels (the paper: 160).
    pixel_scale : `~astropy.units.Quantity` or float
        Angular size of one pixel (float: arcsec); the paper: 0.262 arcsec.
    cutout_service : {"hips2fits", "legacysurvey"}, optional
        ``"hips2fits"``: CDS hips2fits on the ``CDS/P/SDSS9/color`` HiPS;
        ``"legacysurvey"``: the Legacy Survey viewer ``cutout.jpg`` with
        ``layer=sdss`` (as in the paper).  Default ``sfnet.conf.cutout_service``.
    progress : bool
        Show progress bars (rate and ETA) and a summary on stderr.
    page_size : int
        Rows per SkyServer request (at most 500000).
    r_mag_range, z_range, extra_columns
        See `build_sdss_query`.
    max_workers : int, optional
        Concurrent downloads; default ``sfnet.conf.max_workers``.
    rate_limit : float or None
        Most request starts per second across all workers (be polite to the
        public services); ``None`` for no limit.
    timeout : float or `~astropy.units.Quantity`, optional
        Seconds per request; default ``sfnet.conf.timeout``.
    max_retries : int, optional
        Retries per request on timeouts, connection errors, HTTP 5xx and
        truncated images; default ``sfnet.conf.max_retries``.
    retry_backoff : float
        Base delay of the exponential backoff with jitter, in seconds.
    overwrite : bool
        Replace a catalog in ``output_dir`` that comes from a different query
        (or a ``galaxies.csv`` not written by this function).  Without it such
        a folder raises `FileExistsError` before any request.

    Returns
    -------
    `~sfnet.GalaxySample`

    Raises
    ------
    ValueError, TypeError
        An invalid parameter (raised before any request or file is written).
    FileExistsError
        ``output_dir`` holds another catalog and ``overwrite`` is false.
    SkyServerError
        The catalog query failed (error page, malformed table, retries
        exhausted) or matched no galaxy.

    Examples
    --------
    >>> import tempfile
    >>> from sfnet.datasets import fetch_sdss_sample
    >>> folder = tempfile.mkdtemp()
    >>> sample = fetch_sdss_sample(folder, 20, progress=False)  # doctest: +REMOTE_DATA
    >>> len(sample), sample.images.shape[1:]  # doctest: +REMOTE_DATA
    (20, (160, 160, 3))
    >>> bool(sample.catalog["oh_p50"].min() > 0)  # doctest: +REMOTE_DATA
    True
    """
    report = _fetch_to_folder(
        output_dir, n_galaxies, target=target, data_release=data_release,
        cutout_size=cutout_size, pixel_scale=pixel_scale, cutout_service=cutout_service,
        progress=progress, page_size=page_size, r_mag_range=r_mag_range, z_range=z_range,
        extra_columns=extra_columns, max_workers=max_workers, rate_limit=rate_limit,
        timeout=timeout, max_retries=max_retries, retry_backoff=retry_backoff,
        overwrite=overwrite)
    sample = _load_sample(output_dir, progress)
    meta = getattr(getattr(sample, "catalog", None), "meta", None)
    if meta is not None:
        # Provenance of the query (galaxies.csv itself carries no metadata).
        provenance = report.pop("catalog_meta")
        for key, value in provenance.items():
            meta.setdefault(key, value)
        meta["sdss_fetch"] = report
    return sample
