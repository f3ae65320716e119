"""Colour cutouts of catalog galaxies: a registry of cutout services and the download loop.

Each service is one small class registered under a name with
`register_cutout_service`; it knows its URL (from `sfnet.conf`) and builds
the request parameters of one cutout for (ra, dec, size, scale).  Two are
registered:

``"hips2fits"`` (`Hips2FitsService`)
    The CDS hips2fits service on the ``CDS/P/SDSS9/color`` HiPS
    (``sfnet.conf.hips2fits_url``, or astroquery's
    ``astroquery.hips2fits.conf.server`` when that is empty), parameters built
    by astroquery.  astroquery always asks for JPEG/PNG contrast cuts as
    percentiles of the cutout (``min_cut=0.5%``, ``max_cut=99.5%``) and a
    stretch, i.e. a per-cutout normalisation (see the data documentation).
``"legacysurvey"`` (`LegacySurveyService`, the default)
    The Legacy Survey viewer's ``cutout.jpg?layer=sdss``
    (``sfnet.conf.legacysurvey_url``), the service the paper used: a fixed
    colour mapping of the SDSS images, the same for every cutout.  Other
    layers (``ls-dr10``: the DESI Legacy Imaging Surveys' deeper grz images)
    and ``cutout.fits`` (float fluxes per band) are asked for by
    `fetch_cutouts`.

`cutout_services` lists the names; ``cutout_service`` arguments and
``sfnet.conf.cutout_service`` are checked against the registry (this module
hands it to the configuration item, so `sfnet.config` imports nothing from
here).  `fetch_cutouts` takes any catalog (any ID column, JPEG or FITS,
any layer and bands); `fetch_sdss_cutouts` takes positions of one's own
(a `~astropy.coordinates.SkyCoord` or a table) and writes the
`~sfnet.datasets.load_galaxy_folder` layout.  It (and `fetch_sdss_sample`) runs the
downloads in a bounded thread pool with a polite rate limit, retry timeouts,
connection errors, HTTP 5xx and truncated images with exponential backoff and
jitter, write each image atomically to ``images-sdss/{objID}.jpg`` and only
count it once it decodes as a complete RGB JPEG of the requested size.
Valid images already on disk are kept; failures go to ``failures.csv``.
The options are checked once by the private `FetchOptions` (``_options``);
retries, the rate limit, timeouts, the progress bar and the classification of
HTTP answers are the transport's (``_transport``); file names and the catalog
reader and writer are the folder layout's (``_layout``).  This module imports
nothing from its sibling service module, `sfnet.datasets.skyserver`.
"""

import io
import logging
import os
import re
import sys
import time
import warnings

import numpy as np
from astropy import units as u

from .._io import atomic_write_bytes, check_output_dir
from .._validation import check_url
from ..config import Conf, conf
from ..exceptions import DataDroppedWarning
from ._layout import (CATALOG_CSV, FAILURES_CSV, FOLDER_JSON, IMAGE_DIR, image_path,
                      read_catalog_csv, remove_stale_temporaries, write_folder_json,
                      write_galaxy_catalog)
from ._options import FetchOptions
from ._transport import (Counters, Failure, PermanentError, RateLimiter, SessionPool,
                         TransientError, call_with_retries, progress_bar, raise_for_status,
                         run_pool, user_agent, write_failure_manifest)

__all__ = ["fetch_cutouts", "fetch_sdss_cutouts", "register_cutout_service", "cutout_services",
           "Hips2FitsService", "LegacySurveyService", "HIPS_SDSS_COLOR", "position_ids"]

log = logging.getLogger(__name__)

#: The HiPS the default cutouts come from (SDSS DR9 gri colour composite).
HIPS_SDSS_COLOR = "CDS/P/SDSS9/color"

# --------------------------------------------------------------------------
# Service registry
# --------------------------------------------------------------------------

_SERVICES = {}


def register_cutout_service(name):
    """Class decorator: register a cutout service under ``name``.

    The class is called as ``cls(size, scale_arcsec)`` (validated before the
    first request) and must provide ``url`` and ``params(ra, dec)``.  A name
    already registered raises `ValueError`.
    """
    if not isinstance(name, str) or not name:
        raise TypeError(f"a cutout service name must be a non-empty string, got {name!r}")

    def decorator(cls):
        if name in _SERVICES:
            raise ValueError(f"a cutout service named {name!r} is already registered")
        _SERVICES[name] = cls
        cls.name = name
        return cls

    return decorator


def cutout_services():
    """The names of the registered cutout services, in registration order."""
    return tuple(_SERVICES)


def make_service(options):
    """The service of checked `FetchOptions`, ready for requests (its URL checked)."""
    return _SERVICES[options.cutout_service](options.cutout_size, options.pixel_scale)


class _CutoutService:
    """A cutout service: ``url`` and the parameters of one ``size`` x ``size`` cutout.

    ``suffix`` is the file name ending of its answers and ``check(data)`` raises
    `_BadImage` unless ``data`` is a complete cutout (by default: an RGB JPEG).
    """

    name = None
    suffix = ".jpg"

    def __init__(self, size, scale_arcsec):
        self.size = size
        self.scale = scale_arcsec

    @property
    def service(self):
        return self.name

    def params(self, ra, dec):  # pragma: no cover - abstract
        raise NotImplementedError

    def check(self, data):
        """Raise `_BadImage` unless ``data`` is a complete cutout of this service."""
        _check_jpeg(data, self.size)


def _hips2fits_url():
    """``sfnet.conf.hips2fits_url``, else the server astroquery's hips2fits knows."""
    if conf.hips2fits_url:
        return check_url(conf.hips2fits_url, "sfnet.conf.hips2fits_url")
    from astroquery.hips2fits import conf as hips2fits_conf

    return check_url(hips2fits_conf.server, "astroquery.hips2fits.conf.server")


@register_cutout_service("hips2fits")
class Hips2FitsService(_CutoutService):
    """CDS hips2fits on the ``CDS/P/SDSS9/color`` HiPS.

    The server is ``sfnet.conf.hips2fits_url``, or astroquery's
    ``astroquery.hips2fits.conf.server`` when that is empty.  The request
    parameters come from astroquery, which sends percentile cuts
    (``min_cut=0.5%``, ``max_cut=99.5%``) and ``stretch=linear``: JPEG contrast
    normalised per cutout, unlike the paper's Legacy Survey cutouts.
    """

    def __init__(self, size, scale_arcsec):
        super().__init__(size, scale_arcsec)
        self.url = _hips2fits_url()
        self.params(0.0, 0.0)  # import + validate up front

    def params(self, ra, dec):
        """Request parameters of astroquery.hips2fits for one JPEG cutout (no request)."""
        from astropy.coordinates import Angle
        from astroquery.hips2fits import hips2fits

        return hips2fits.query_async(
            get_query_payload=True, hips=HIPS_SDSS_COLOR, width=self.size, height=self.size,
            projection="TAN", ra=Angle(ra * u.deg), dec=Angle(dec * u.deg),
            fov=Angle(self.size * self.scale * u.arcsec), coordsys="icrs",
            rotation_angle=Angle(0 * u.deg), format="jpg", min_cut=0.5, max_cut=99.5,
            stretch="linear", cmap="Greys_r")


@register_cutout_service("legacysurvey")
class LegacySurveyService(_CutoutService):
    """Legacy Survey viewer cutouts (``sfnet.conf.legacysurvey_url``).

    By default ``cutout.jpg`` with ``layer=sdss``, the paper's colour images.
    ``layer`` picks another viewer layer (e.g. ``"ls-dr10"``, the DESI Legacy
    Imaging Surveys DR10 grz images); ``format="fits"`` asks for
    ``cutout.fits``, a float image per band (a cube ``(bands, size, size)``) in
    the viewer's flux units (nanomaggies), of the ``bands`` given (e.g.
    ``"grz"``; the viewer's default bands of the layer if None).
    """

    def __init__(self, size, scale_arcsec, layer="sdss", bands=None, format="jpg"):
        super().__init__(size, scale_arcsec)
        base = check_url(conf.legacysurvey_url, "sfnet.conf.legacysurvey_url")
        self.layer, self.bands, self.format = layer, bands, format
        self.suffix = ".fits" if format == "fits" else ".jpg"
        self.url = base.rstrip("/") + ("/cutout.fits" if format == "fits" else "/cutout.jpg")

    def params(self, ra, dec):
        params = {"ra": repr(float(ra)), "dec": repr(float(dec)), "layer": self.layer,
                  "pixscale": f"{self.scale:g}", "size": self.size}
        if self.bands:
            params["bands"] = self.bands
        return params

    def check(self, data):
        if self.format == "fits":
            _check_fits(data, self.size, self.bands)
        else:
            _check_jpeg(data, self.size)


def _share_registry_with_config():
    """Make ``sfnet.conf.cutout_service`` accept exactly the names of this registry."""
    unknown = [name for name in Conf.cutout_service.choices if name not in _SERVICES]
    if unknown:  # pragma: no cover - a mismatch between sfnet.config and this module
        raise RuntimeError(f"sfnet.config names unregistered cutout services {unknown}")
    Conf.cutout_service.choices = _SERVICES


_share_registry_with_config()


# --------------------------------------------------------------------------
# Image checks and the download loop
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


def _check_fits(data, size, bands=None):
    """Raise `_BadImage` unless ``data`` is a complete FITS image of ``size`` x ``size``.

    With ``bands`` (e.g. ``"grz"``) the image must hold that many bands: a cube
    ``(len(bands), size, size)`` (or 2-D for one band).  An answer that is not
    FITS (an HTML error page), is truncated (not whole 2880-byte blocks) or
    does not decode is retried; a wrong shape, or no finite non-zero pixel
    (outside the footprint), is not.
    """
    from astropy.io import fits

    if len(data) < 80 or not data.startswith(b"SIMPLE  ="):
        snippet = data[:60].decode("latin-1", errors="replace")
        raise _BadImage(f"not a FITS file ({len(data)} bytes starting {snippet!r})")
    if len(data) % 2880:
        raise _BadImage(f"truncated FITS ({len(data)} bytes, not whole 2880-byte blocks)")
    try:
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            with fits.open(io.BytesIO(data), memmap=False) as hdus:
                image = next((h.data for h in hdus if h.is_image and h.data is not None
                              and h.data.ndim >= 2), None)
                image = None if image is None else np.array(image, dtype=np.float32)
    except (OSError, ValueError, TypeError, IndexError) as exc:
        raise _BadImage(f"FITS does not decode: {exc}") from None
    truncated = [w for w in caught if "truncated" in str(w.message)]
    if truncated:
        raise _BadImage(f"truncated FITS: {truncated[0].message}")
    if image is None:
        raise _BadImage("FITS file holds no image", retryable=False)
    expected = (size, size) if not bands or len(bands) == 1 else (len(bands), size, size)
    if image.shape != expected and not (image.shape == (1, size, size) and bands
                                        and len(bands) == 1):
        raise _BadImage(f"FITS image has shape {image.shape}, expected {expected}",
                        retryable=False)
    if not np.any(np.isfinite(image) & (image != 0)):
        raise _BadImage("blank cutout (no finite non-zero pixel: outside the survey "
                        "footprint?)", retryable=False)


def _valid_on_disk(path, service):
    """True if ``path`` holds a valid cutout of ``service`` (kept by a resumed run)."""
    if not path.exists():
        return False
    try:
        service.check(path.read_bytes())
    except _BadImage as exc:
        log.debug("re-fetching %s: %s", path, exc)
        return False
    return True


def _download_one(session, request, ra, dec, timeout):
    """One attempt at one cutout; return its bytes or raise a classified error."""
    import requests

    try:
        response = session.get(request.url, params=request.params(ra, dec), timeout=timeout)
    except requests.Timeout:
        raise TransientError(f"timeout: no answer within {timeout:g} s") from None
    except (requests.ConnectionError, requests.exceptions.ChunkedEncodingError,
            requests.exceptions.ContentDecodingError) as exc:
        raise TransientError(f"connection error: {exc}") from None
    except requests.RequestException as exc:
        raise PermanentError(f"request error: {exc}") from None
    raise_for_status(response, snippet=200)
    data = response.content
    try:
        request.check(data)
    except _BadImage as exc:
        cls = TransientError if exc.retryable else PermanentError
        raise cls(f"invalid image: {exc}") from None
    return data


def _failure(task, outcome, id_column="objID"):
    """The failure-manifest entry of a task that raised ``outcome``."""
    if isinstance(outcome, (TransientError, PermanentError)):
        attempts, error = outcome.n_attempts, str(outcome)
    else:
        attempts, error = 0, f"{type(outcome).__name__}: {outcome}"
    return Failure(task[0], attempts, error, extra={
        id_column: task[0], "ra": repr(task[1]), "dec": repr(task[2])})


def download_cutouts(catalog, out, service, options, id_column="objID", image_dir=IMAGE_DIR):
    """Download every missing or invalid cutout of ``catalog`` into ``out``.

    ``service`` comes from `make_service`; ``options`` are checked `FetchOptions`.
    Files are ``out/image_dir/{id}{service.suffix}``, ids from ``id_column``.

    Returns
    -------
    (Counters, list of Failure, seconds)
    """
    (out / image_dir).mkdir(parents=True, exist_ok=True)
    counters = Counters()
    limiter = RateLimiter(options.rate_limit)
    sessions = SessionPool(user_agent())
    policy, timeout = options.policy, options.timeout

    def work(task, stop):
        objid, ra, dec = task
        path = image_path(out, objid, service.suffix, image_dir)
        if _valid_on_disk(path, service):
            counters.add(skipped=1)
            return "present"
        data, _ = call_with_retries(
            lambda: _download_one(sessions.get(), service, ra, dec, timeout),
            policy, counters, stop=stop, limiter=limiter)
        atomic_write_bytes(path, data)
        counters.add(downloaded=1)
        return "downloaded"

    tasks = ((o.item() if isinstance(o, np.generic) else o, float(r), float(d))
             for o, r, d in zip(np.asarray(catalog[id_column]), _deg(catalog["ra"]),
                                _deg(catalog["dec"])))
    failures = []
    bar = progress_bar(options.progress, total=len(catalog),
                       desc=f"cutouts ({service.service})", unit="img")

    def on_done(task, outcome):
        if isinstance(outcome, BaseException):
            failures.append(_failure(task, outcome, id_column))
            counters.add(failed=1)
            bar.set_postfix(failed=counters.failed, retries=counters.retries, refresh=False)

    t0 = time.perf_counter()
    try:
        run_pool(tasks, work, max_workers=options.max_workers, progress_bar=bar,
                 on_done=on_done)
    finally:
        bar.close()
        sessions.close()
    failures.sort(key=lambda f: f.key)
    return counters, failures, time.perf_counter() - t0


def _deg(col, name=None):
    try:
        if isinstance(col, u.Quantity):
            return np.asarray(col.to_value(u.deg), dtype=np.float64)
        unit = getattr(col, "unit", None)
        data = np.asarray(col, dtype=np.float64)
        return data if unit is None else (data * u.Unit(unit)).to_value(u.deg)
    except (TypeError, ValueError, u.UnitsError) as exc:
        if name is None:
            raise
        raise ValueError(f"positions: column {name!r} must hold angles in degrees "
                         f"({exc})") from None


# --------------------------------------------------------------------------
# Output folder helpers (shared with sfnet.datasets.sdss)
# --------------------------------------------------------------------------

def cutout_summary(counters, failures, seconds, n_total, out):
    """(report dict, one-line text) of a cutout run."""
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
        "failures_file": FAILURES_CSV,
    }
    text = (f"cutouts: {report['valid']}/{n_total} valid ({c['skipped']} already present, "
            f"{c['downloaded']} downloaded), {c['failed']} failed; {c['requests']} requests, "
            f"{c['retries']} retries, {seconds:.1f} s")
    if failures:
        text += f"; failures listed in {out / FAILURES_CSV}"
    return report, text


def warn_failures(failures, n_total, out, stacklevel):
    """One `~sfnet.exceptions.DataDroppedWarning` naming the failed cutouts, if any."""
    if failures:
        shown = ", ".join(f"{f.key} ({f.error})" for f in failures[:3])
        warnings.warn(
            f"{len(failures)} of {n_total} cutouts could not be fetched and will be "
            f"missing from the sample (run again to retry them); see "
            f"{out / FAILURES_CSV}: {shown}{', ...' if len(failures) > 3 else ''}",
            DataDroppedWarning, stacklevel=stacklevel)


#: Scale of the position-derived identifiers (see `position_ids`).
_ID_SCALE = 1_000_000


def position_ids(coords):
    """Deterministic int64 identifiers of positions (the file names of `fetch_sdss_cutouts`).

    ``id = round(ra * 1e6) * 1e9 + round((dec + 90) * 1e6)`` with ICRS ``ra``
    and ``dec`` in degrees (``ra`` wrapped to [0, 360)): the same position
    always gets the same id, ids of positions more than 1e-6 deg (3.6 mas)
    apart differ, and the position can be read back from the id.  They are
    positive and below 3.6e17, so they never collide with SDSS objIDs' use
    as int64 and load with `~sfnet.datasets.load_galaxy_folder`.

    Parameters
    ----------
    coords : `~astropy.coordinates.SkyCoord`

    Returns
    -------
    ndarray of int64

    Examples
    --------
    >>> from astropy.coordinates import SkyCoord
    >>> from sfnet.datasets.cutouts import position_ids
    >>> position_ids(SkyCoord([150.0, 10.5], [2.0, -1.25], unit="deg")).tolist()
    [150000000092000000, 10500000088750000]
    """
    icrs = coords.icrs
    ra = np.rint(np.atleast_1d(icrs.ra.wrap_at(360 * u.deg).deg) * _ID_SCALE).astype(np.int64)
    ra[ra >= 360 * _ID_SCALE] -= 360 * _ID_SCALE
    dec = np.rint((np.atleast_1d(icrs.dec.deg) + 90.0) * _ID_SCALE).astype(np.int64)
    return ra * 1_000_000_000 + dec


def _check_ids(ids, n):
    arr = np.asarray(ids)
    if arr.ndim != 1 or len(arr) != n:
        raise ValueError(f"ids must hold one integer per position ({n}), got shape "
                         f"{arr.shape}")
    if arr.dtype.kind not in "iu":
        raise ValueError(f"ids must be integers (they name the files {{id}}.jpg and are "
                         f"read back as int64 objIDs), got dtype {arr.dtype}")
    if arr.dtype.kind == "u" and n and arr.max() > np.iinfo(np.int64).max:
        raise ValueError("ids must fit in int64")
    arr = arr.astype(np.int64)
    if n and arr.min() < 0:
        raise ValueError(f"ids must be non-negative, got {int(arr.min())}")
    _, index, counts = np.unique(arr, return_index=True, return_counts=True)
    if np.any(counts > 1):
        raise ValueError(f"ids must be unique; {int(arr[index[counts > 1][0]])} repeats")
    return arr


def _table_positions(table, id_column="objID"):
    """(Table of the other columns, SkyCoord) from a Table/QTable/DataFrame."""
    from astropy.coordinates import SkyCoord
    from astropy.table import Table

    if not isinstance(table, Table):
        table = Table.from_pandas(table)
    table = Table(table, copy=True, masked=False)
    coord_cols = [name for name in table.colnames if isinstance(table[name], SkyCoord)]
    if coord_cols:
        name = "coord" if "coord" in coord_cols else coord_cols[0]
        coords = table[name]
        table.remove_columns(coord_cols)
        for col in ("ra", "dec"):
            if col in table.colnames:
                table.remove_column(col)
        return table, SkyCoord(coords)
    missing = [c for c in ("ra", "dec") if c not in table.colnames]
    if missing:
        raise ValueError(f"positions: a table needs 'ra' and 'dec' columns (degrees) or a "
                         f"SkyCoord column; it has {table.colnames}")
    for name in ("ra", "dec", id_column):
        mask = getattr(table[name], "mask", None) if name in table.colnames else None
        if mask is not None and np.any(mask):
            raise ValueError(f"positions: column {name!r} has "
                             f"{int(np.count_nonzero(mask))} missing (masked) value(s)")
    ra, dec = (_deg(table[c], c) for c in ("ra", "dec"))
    table.remove_columns(["ra", "dec"])
    return table, SkyCoord(ra * u.deg, dec * u.deg)


def _positions_catalog(positions, ids, id_column="objID"):
    """Validate ``positions``/``ids``; return a Table with the IDs, ra, dec (deg) first."""
    from astropy.coordinates import SkyCoord
    from astropy.table import Table

    if isinstance(positions, SkyCoord):
        if positions.isscalar:
            positions = positions.reshape((1,))
        if positions.ndim != 1:
            raise ValueError(f"positions must be a 1-d SkyCoord, got shape {positions.shape}")
        others, coords = Table(), positions
    elif isinstance(positions, Table) or type(positions).__name__ == "DataFrame":
        others, coords = _table_positions(positions, id_column)
    else:
        raise TypeError("positions must be a SkyCoord, an astropy Table/QTable or a pandas "
                        f"DataFrame with ra/dec (or a SkyCoord column), got "
                        f"{type(positions).__name__}")
    n = len(coords)
    if n == 0:
        raise ValueError("positions is empty")
    from astropy.coordinates import ConvertError

    try:
        icrs = coords.icrs
    except (ConvertError, ValueError, TypeError, u.UnitsError) as exc:
        raise ValueError(f"positions: cannot transform to ICRS ({exc})") from None
    ra = np.asarray(icrs.ra.wrap_at(360 * u.deg).deg, dtype=np.float64)
    dec = np.asarray(icrs.dec.deg, dtype=np.float64)
    bad = ~(np.isfinite(ra) & np.isfinite(dec))
    if np.any(bad):
        raise ValueError(f"positions: {int(bad.sum())} position(s) are not finite, first "
                         f"at row {int(np.flatnonzero(bad)[0])}")
    if id_column != "objID" and (ids is not None or id_column in others.colnames):
        objid = _check_named_ids(others[id_column] if ids is None else ids, n, id_column)
        if id_column in others.colnames:
            others.remove_column(id_column)
    elif ids is not None:
        objid = _check_ids(ids, n)
        if "objID" in others.colnames:
            others.remove_column("objID")
    elif "objID" in others.colnames:
        col = np.asarray(others["objID"])
        if not np.issubdtype(col.dtype, np.integer):
            raise ValueError("catalog['objID'] must hold integers (read it as int64, never "
                             "float)")
        objid = _check_ids(col, n)
        others.remove_column("objID")
    else:
        objid = position_ids(icrs)
        _, index, counts = np.unique(objid, return_index=True, return_counts=True)
        if np.any(counts > 1):
            raise ValueError("positions: two positions closer than 1e-6 deg get the same "
                             f"file name ({int(objid[index[counts > 1][0]])}.jpg); pass ids")
    catalog = Table()
    catalog[id_column] = objid
    catalog["ra"] = ra * u.deg
    catalog["dec"] = dec * u.deg
    for name in others.colnames:
        catalog[name] = others[name]
    return catalog


def _check_named_ids(values, n, id_column):
    """IDs of a column other than objID: unique int64 or strings usable as file names."""
    from astropy.table import Table

    from ._store import normalize_ids

    arr = np.asarray(values)
    if arr.ndim != 1 or len(arr) != n:
        raise ValueError(f"ids must hold one ID per position ({n}), got shape {arr.shape}")
    table = normalize_ids(Table({id_column: arr}), id_column)
    arr = np.asarray(table[id_column])
    if arr.dtype.kind == "U":
        bad = [v for v in arr if "/" in v or "\\" in v or "\0" in v or v.startswith(".")
               or v != v.strip()]
        if bad:
            raise ValueError(f"{id_column} values name the image files, so they must not "
                             f"contain '/' or '\\', start with '.' or have surrounding "
                             f"spaces; got {bad[0]!r}")
    return arr


def _write_positions_catalog(catalog, out, id_column="objID"):
    """Write galaxies.csv (and .ecsv) unless a catalog is there already; return the action."""
    csv_path = out / CATALOG_CSV
    if csv_path.is_file():
        try:
            existing = read_catalog_csv(csv_path.read_bytes(), csv_path, id_column)
        except ValueError as exc:
            raise FileExistsError(f"{csv_path} exists and cannot be read ({exc}); it is not "
                                  "replaced -- choose another output_dir") from None
        missing = np.setdiff1d(np.asarray(catalog[id_column]),
                               np.asarray(existing[id_column]))
        if missing.size:
            warnings.warn(
                f"{csv_path} exists and is kept; {missing.size} of the {len(catalog)} "
                f"galaxies are not in it and will not load with load_galaxy_folder "
                f"(first: {missing[:3].tolist()}); use another output_dir for new galaxies",
                DataDroppedWarning, stacklevel=3)
        return "kept"
    write_galaxy_catalog(out, catalog)
    return "written"


def fetch_sdss_cutouts(positions, output_dir, *, ids=None, cutout_size=160,
                       pixel_scale=0.262 * u.arcsec, cutout_service=None, progress=True,
                       max_workers=None, rate_limit=10.0, timeout=None, max_retries=None,
                       retry_backoff=1.0):
    """Fetch colour cutouts of one's own galaxies into the `load_galaxy_folder` layout.

    "Bring your own galaxies": ``positions`` is a
    `~astropy.coordinates.SkyCoord` or a table of them, and ``output_dir``
    receives ``images-sdss/{id}.jpg`` plus ``galaxies.csv`` (and
    ``galaxies.ecsv`` with units), so that
    ``load_galaxy_folder(output_dir)`` loads the result.  An existing
    ``galaxies.csv`` (for example the Zenodo release's, whose images are
    being completed) is never replaced; galaxies missing from it are reported
    with a `~sfnet.exceptions.DataDroppedWarning`.  Valid images already on
    disk are kept; missing or damaged ones are fetched.  Failures are written
    to ``output_dir/failures.csv``.

    Parameters
    ----------
    positions : `~astropy.coordinates.SkyCoord`, `~astropy.table.Table` or `pandas.DataFrame`
        The galaxies.  A table needs ``ra`` and ``dec`` columns (degrees;
        Quantities are converted) or a SkyCoord column (``coord`` if there
        are several); its other columns are copied into ``galaxies.csv``
        (so labels of one's own travel with the images).  Any celestial
        frame is converted to ICRS.
    output_dir : path-like
    ids : sequence of int, optional
        One unique non-negative integer per position, used as ``objID`` and
        file name.  Default: a table's ``objID`` column if it has one, else
        `position_ids` (``round(ra*1e6)*1e9 + round((dec+90)*1e6)``, ICRS
        degrees): deterministic, so a second run finds the same files.
    cutout_size, pixel_scale, cutout_service, progress
        See `~sfnet.datasets.fetch_sdss_sample`.
    max_workers, rate_limit, timeout, max_retries, retry_backoff
        See `~sfnet.datasets.fetch_sdss_sample`.

    Returns
    -------
    dict
        Counts: ``valid``, ``already_present``, ``downloaded``, ``failed``,
        ``requests``, ``retries``, ``seconds``; ``catalog`` is ``"written"``
        or ``"kept"``.

    Raises
    ------
    ValueError, TypeError
        Invalid positions, ids or options (before any request or file).

    Examples
    --------
    >>> import tempfile
    >>> from astropy.coordinates import SkyCoord
    >>> from sfnet.datasets import fetch_sdss_cutouts, load_galaxy_folder
    >>> folder = tempfile.mkdtemp()
    >>> coords = SkyCoord([185.0, 150.1], [0.1, 2.2], unit="deg")
    >>> report = fetch_sdss_cutouts(coords, folder, progress=False)  # doctest: +REMOTE_DATA
    >>> len(load_galaxy_folder(folder, progress=False))  # doctest: +REMOTE_DATA
    2
    """
    out = check_output_dir(output_dir, "output_dir")
    catalog = _positions_catalog(positions, ids)
    options = FetchOptions(cutout_size=cutout_size, pixel_scale=pixel_scale,
                           cutout_service=cutout_service, progress=progress,
                           max_workers=max_workers, rate_limit=rate_limit, timeout=timeout,
                           max_retries=max_retries, retry_backoff=retry_backoff)
    service = make_service(options)
    out.mkdir(parents=True, exist_ok=True)
    remove_stale_temporaries(out)
    action = _write_positions_catalog(catalog, out)
    counters, failures, seconds = download_cutouts(catalog, out, service, options)
    write_failure_manifest(out / FAILURES_CSV, failures)
    report, text = cutout_summary(counters, failures, seconds, len(catalog), out)
    report["catalog"] = action
    log.info(text)
    if options.progress:
        print(text, file=sys.stderr)
    warn_failures(failures, len(catalog), out, stacklevel=3)
    return report


#: The viewer layers' names: letters, digits, ``-``, ``_`` and ``.``.
_LAYER = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]*$")


def fetch_cutouts(positions, output_dir, *, ids=None, id_column="objID",
                  service="legacysurvey", layer="sdss", bands=None, format="jpg",
                  pixscale=0.262, size=160, image_dir=None, progress=True, max_workers=None,
                  rate_limit=10.0, timeout=None, max_retries=None, retry_backoff=1.0,
                  overwrite=False):
    """Fetch cutouts of any catalog's galaxies -- JPEG or FITS, any viewer layer -- into a folder.

    The general form of `fetch_sdss_cutouts`: ``output_dir`` receives one
    image per galaxy, ``galaxies.csv`` (+ ``galaxies.ecsv`` with units) and a
    ``folder.json`` recording the ID column, the image folder and the file
    suffix, so that ``load_galaxy_folder(output_dir)`` and
    ``sfnet train output_dir`` read it with no further arguments.  Downloads
    run in a bounded thread pool with a polite rate limit and retries;
    valid files already on disk are kept (a second run resumes); failures go
    to ``failures.csv`` and one `~sfnet.exceptions.DataDroppedWarning`.

    Parameters
    ----------
    positions : `~astropy.coordinates.SkyCoord`, `~astropy.table.Table`, `pandas.DataFrame` or path
        The galaxies: a SkyCoord, or a table with ``ra``/``dec`` (degrees) or a
        SkyCoord column; a table's other columns are copied into the catalog.
        A path names a catalog file: ``.csv`` (the ID column read exactly, never
        through float), ``.ecsv`` or ``.fits`` / ``.fit`` / ``.fits.gz``.
    output_dir : path-like
    ids : sequence, optional
        One unique ID per position (the file names).  Default: the table's
        ``id_column`` if it has one, else `position_ids` (integers from the
        positions).
    id_column : str
        The ID column of the catalog (default ``"objID"``, which must hold
        non-negative integers).  Another name may hold integers or strings
        (e.g. a DESI ``TARGETID`` or galaxy names); strings name files, so
        they must not contain ``/`` or start with ``.``.
    service : str
        A registered cutout service (`cutout_services`); ``layer``, ``bands``
        and ``format`` other than the defaults need ``"legacysurvey"``.
    layer : str
        The Legacy Survey viewer layer: ``"sdss"`` (the paper's colour JPEGs),
        ``"ls-dr10"``, ``"ls-dr9"``, ...
    bands : str, optional
        Bands of a FITS cutout, e.g. ``"grz"`` (the layer's default if None).
    format : {"jpg", "fits"}
        ``"jpg"``: the viewer's colour JPEG (``cutout.jpg``).  ``"fits"``:
        ``cutout.fits``, a float image per band in nanomaggies (a cube
        ``(bands, size, size)``), checked to decode with astropy and to have
        the requested shape (an HTML error page or a truncated file is
        retried).
    pixscale : float or `~astropy.units.Quantity`
        Arcsec per pixel (default 0.262, the paper's and the surveys' native scale).
    size : int
        Cutout side in pixels (default 160).
    image_dir : str, optional
        Sub-folder for the images.  Default ``images-sdss`` for the sdss
        layer, else ``"images-{layer}"`` (e.g. ``images-ls-dr10``).
    progress, max_workers, rate_limit, timeout, max_retries, retry_backoff
        See `~sfnet.datasets.fetch_sdss_sample`.
    overwrite : bool
        Write into an existing non-empty directory that is not a galaxy folder
        (one without ``galaxies.csv`` or ``folder.json``); by default it is
        refused before anything is sent or written.  A galaxy folder is always
        resumed.

    Returns
    -------
    dict
        Counts: ``valid``, ``already_present``, ``downloaded``, ``failed``,
        ``requests``, ``retries``, ``seconds``; ``catalog`` (``"written"`` or
        ``"kept"``), ``image_dir``, ``suffix`` and ``id_column``.

    Raises
    ------
    ValueError, TypeError
        Invalid positions, ids or options (before any request or file).

    Examples
    --------
    >>> import tempfile
    >>> from astropy.coordinates import SkyCoord
    >>> from sfnet.datasets import fetch_cutouts, load_galaxy_folder
    >>> folder = tempfile.mkdtemp()
    >>> coords = SkyCoord([185.0, 150.1], [0.1, 2.2], unit="deg")
    >>> report = fetch_cutouts(coords, folder, ids=["a", "b"], id_column="name",
    ...                        layer="ls-dr10", bands="grz", format="fits",
    ...                        progress=False)  # doctest: +REMOTE_DATA
    >>> load_galaxy_folder(folder, progress=False).image_shape  # doctest: +REMOTE_DATA
    (160, 160, 3)
    """
    from ._store import check_id_column

    out = check_output_dir(output_dir, "output_dir", marker=(CATALOG_CSV, FOLDER_JSON),
                           what="a galaxy folder", overwrite=overwrite)
    check_id_column(id_column)
    if not isinstance(layer, str) or not _LAYER.match(layer):
        raise ValueError(f"layer must be a viewer layer name such as 'sdss' or 'ls-dr10', "
                         f"got {layer!r}")
    if bands is not None and (not isinstance(bands, str) or not bands.isalpha()):
        raise ValueError(f"bands must be a string of band letters such as 'grz', got {bands!r}")
    if format not in ("jpg", "fits"):
        raise ValueError(f"format must be 'jpg' or 'fits', got {format!r}")
    if image_dir is None:
        image_dir = IMAGE_DIR if layer == "sdss" else f"images-{layer}"
    if not isinstance(image_dir, str) or not image_dir or "/" in image_dir or \
            image_dir.startswith("."):
        raise ValueError(f"image_dir must be a plain folder name, got {image_dir!r}")
    if isinstance(positions, (str, os.PathLike)):
        positions = read_positions_file(positions, id_column)
    catalog = _positions_catalog(positions, ids, id_column)
    options = FetchOptions(cutout_size=size, pixel_scale=pixscale, cutout_service=service,
                           progress=progress, max_workers=max_workers, rate_limit=rate_limit,
                           timeout=timeout, max_retries=max_retries,
                           retry_backoff=retry_backoff)
    if options.cutout_service == "legacysurvey":
        request = LegacySurveyService(options.cutout_size, options.pixel_scale, layer=layer,
                                      bands=bands, format=format)
    elif (layer, bands, format) != ("sdss", None, "jpg"):
        raise ValueError(f"layer, bands and format need service='legacysurvey'; the "
                         f"{options.cutout_service!r} service serves its own SDSS colour JPEGs")
    else:
        request = make_service(options)
    out.mkdir(parents=True, exist_ok=True)
    remove_stale_temporaries(out, image_dir)
    action = _write_positions_catalog(catalog, out, id_column)
    write_folder_json(out, id_column, image_dir, request.suffix)
    counters, failures, seconds = download_cutouts(catalog, out, request, options,
                                                   id_column=id_column, image_dir=image_dir)
    write_failure_manifest(out / FAILURES_CSV, failures, columns=(id_column, "ra", "dec"))
    report, text = cutout_summary(counters, failures, seconds, len(catalog), out)
    report.update(catalog=action, image_dir=image_dir, suffix=request.suffix,
                  id_column=id_column)
    log.info(text)
    if options.progress:
        print(text, file=sys.stderr)
    warn_failures(failures, len(catalog), out, stacklevel=3)
    return report


def read_positions_file(path, id_column="objID"):
    """A catalog file (CSV, ECSV or FITS table) as a Table, its ID column exact.

    Raises
    ------
    FileNotFoundError
        If there is no such file.
    ValueError
        An unknown file type or a file astropy cannot read as a table.
    """
    from pathlib import Path

    from astropy.table import Table

    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"catalog file {path} does not exist")
    name = path.name.lower()
    try:
        if name.endswith(".csv"):
            data = path.read_bytes()
            header = data.decode("utf-8-sig", errors="replace").splitlines()[:1]
            names = [h.strip() for h in header[0].split(",")] if header else []
            if id_column in names:
                return read_catalog_csv(data, path, id_column)
            return Table.read(path, format="ascii.csv")
        if name.endswith(".ecsv"):
            return Table.read(path, format="ascii.ecsv")
        if name.endswith((".fits", ".fit", ".fits.gz", ".fts")):
            return Table.read(path, format="fits")
    except (OSError, ValueError, TypeError) as exc:
        if isinstance(exc, FileNotFoundError):
            raise
        raise ValueError(f"cannot read catalog file {path}: {exc}") from exc
    raise ValueError(f"catalog file {path} must be .csv, .ecsv or .fits (a table with ra/dec "
                     "or a SkyCoord column)")
