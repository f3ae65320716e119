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

This module orchestrates a run: it checks every parameter once (one
`FetchOptions`, built from the keywords of `fetch_sdss_sample` or by
``sfnet fetch``) before the first request or file, re-uses the catalog of an
earlier run of the same query (resume), writes the catalog files and the
report, and loads the result.  The file names and the catalog writer are the
folder layout's (private ``_layout``); retries, rate limit, timeouts and
progress bars are the transport's (private ``_transport``).  The work is done
by two service modules, which import nothing from each other, and whose public
names this module re-exports:

`sfnet.datasets.skyserver`
    The SQL builder (`build_sdss_query`), paging through SkyServer with
    astroquery, and the checked CSV parsing (`query_sdss_catalog`).
`sfnet.datasets.cutouts`
    The registry of cutout services (the Legacy Survey viewer's
    ``cutout.jpg?layer=sdss``, the paper's and the default, and ``hips2fits``
    on ``CDS/P/SDSS9/color``) and the download loop (`fetch_sdss_cutouts`).

All endpoints come from `sfnet.conf` (``skyserver_url``, ``hips2fits_url``,
``legacysurvey_url``, ``timeout``, ``max_retries``, ``max_workers``,
``data_release``, ``cutout_service``); unset SDSS endpoints and release follow
astroquery's configuration (`sfnet.config`).
"""

import datetime
import logging
import sys

import numpy as np
from astropy import units as u

from .._io import atomic_write_json, check_output_dir
from ..exceptions import SkyServerError
from ._layout import (CATALOG_CSV, CATALOG_ECSV, FAILURES_CSV, IMAGE_DIR, REPORT_JSON,
                      read_catalog_ecsv, remove_stale_temporaries, write_catalog_csv,
                      write_galaxy_catalog)
from ._options import DEFAULT_R_MAG, DEFAULT_Z, FetchOptions
from ._transport import Counters, write_failure_manifest
from .cutouts import (HIPS_SDSS_COLOR, cutout_summary, download_cutouts,
                      fetch_sdss_cutouts, make_service, warn_failures)
from .skyserver import (PAPER_COLUMNS, SDSS_COLUMNS, SDSS_EXTRA_COLUMNS, SELECTIONS, QuerySpec,
                        build_sdss_query, one_line, query_catalog, query_sdss_catalog,
                        skyserver_url)

__all__ = ["fetch_sdss_sample", "build_sdss_query", "query_sdss_catalog",
           "fetch_sdss_cutouts", "SkyServerError", "SDSS_COLUMNS",
           "SDSS_EXTRA_COLUMNS", "HIPS_SDSS_COLOR", "SELECTIONS", "PAPER_COLUMNS"]

log = logging.getLogger(__name__)


def _existing_catalog(out, spec, options):
    """The catalog of an earlier run of the same query, or None (nothing is written).

    Raises `FileExistsError` if ``out`` holds another catalog (a different
    query, or a ``galaxies.csv`` sfnet did not write, such as the Zenodo
    release) and ``overwrite`` is false.
    """
    ecsv, csv_path = out / CATALOG_ECSV, out / CATALOG_CSV
    reason = None
    if ecsv.is_file():
        try:
            table = read_catalog_ecsv(ecsv)
        except Exception as exc:  # any unreadable file: treat as foreign
            reason = f"{ecsv} is unreadable ({exc})"
        else:
            if (table.meta.get("sdss_query") == one_line(spec.sql())
                    and table.meta.get("data_release") == options.data_release
                    and "objID" in table.colnames and table["objID"].dtype == np.int64):
                return table
            reason = f"{ecsv} holds a different query or data release"
    elif csv_path.is_file():
        reason = f"{csv_path} exists and was not written by fetch_sdss_sample"
    if reason is not None and not options.overwrite:
        raise FileExistsError(
            f"{reason}; pass overwrite=True to replace the catalog (valid images of "
            f"galaxies in the new catalog are kept) or choose another output_dir")
    return None


def _catalog_for(out, spec, options, counters):
    """The run's catalog: re-used from an earlier run of the same query, else queried.

    Returns (catalog, reused); a queried catalog is written to ``out``.
    """
    catalog = _existing_catalog(out, spec, options)
    out.mkdir(parents=True, exist_ok=True)
    remove_stale_temporaries(out)
    reused = catalog is not None
    if reused and not (out / CATALOG_CSV).is_file():
        write_catalog_csv(out / CATALOG_CSV, catalog)
    if not reused:
        catalog = query_catalog(spec, options, counters)
        if len(catalog) == 0:
            raise SkyServerError(
                "no galaxy matches the query (check r_mag_range, z_range, target, region "
                f"and data_release): {one_line(spec.sql())}")
        write_galaxy_catalog(out, catalog)
    return catalog, reused


def fetch_to_folder(output_dir, n_galaxies, options):
    """Everything `fetch_sdss_sample` does except loading; returns the run report.

    ``options`` are checked `FetchOptions`.  Its warning about failed cutouts
    points at the caller of `fetch_sdss_sample` (or of this function's caller).
    """
    # 1. check the rest; nothing is sent or written before this passes.
    out = check_output_dir(output_dir, "output_dir",
                           marker=(CATALOG_CSV, CATALOG_ECSV, IMAGE_DIR),
                           what="a galaxy folder", overwrite=options.overwrite)
    spec = QuerySpec(n_galaxies, options)
    service = make_service(options)
    skyserver_url()

    # 2. catalog: re-use a complete catalog of the same query, else page through SkyServer.
    sql_counters = Counters()
    catalog, reused = _catalog_for(out, spec, options, sql_counters)

    # 3. cutouts.
    counters, failures, seconds = download_cutouts(catalog, out, service, options)
    write_failure_manifest(out / FAILURES_CSV, failures)
    report, text = cutout_summary(counters, failures, seconds, len(catalog), out)
    report.update({
        "catalog": "reused" if reused else "queried",
        "catalog_rows": len(catalog),
        "skyserver_requests": sql_counters.requests,
        "skyserver_retries": sql_counters.retries,
        "cutout_service": service.service,
        "selection": spec.selection,
        "data_release": options.data_release,
        "finished": datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds"),
        "catalog_meta": {k: v for k, v in catalog.meta.items()
                         if isinstance(v, (str, int, float, bool))},
    })
    atomic_write_json(out / REPORT_JSON, report)
    log.info(text)
    if options.progress:
        print(text, file=sys.stderr)
    warn_failures(failures, len(catalog), out, stacklevel=4)  # -> fetch_sdss_sample's caller
    return report


def _load_sample(output_dir, progress):
    from .folder import load_galaxy_folder

    return load_galaxy_folder(output_dir, progress=progress)


def load_fetched(output_dir, report, progress):
    """Load a folder written by `fetch_to_folder`; its ``report`` goes into the meta.

    The catalog's meta gets the query's provenance (``galaxies.csv`` itself
    carries none) and ``sdss_fetch``, the run report.
    """
    sample = _load_sample(output_dir, progress)
    meta = getattr(getattr(sample, "catalog", None), "meta", None)
    if meta is not None:
        provenance = report.pop("catalog_meta")
        for key, value in provenance.items():
            meta.setdefault(key, value)
        meta["sdss_fetch"] = report
    return sample


def fetch_sdss_sample(output_dir, n_galaxies, *, target="metallicity", data_release=None,
                      cutout_size=160, pixel_scale=0.262 * u.arcsec, cutout_service=None,
                      progress=True, page_size=50000, r_mag_range=DEFAULT_R_MAG,
                      z_range=DEFAULT_Z, extra_columns=(), selection="default", region=None,
                      max_workers=None, rate_limit=10.0, timeout=None, max_retries=None,
                      retry_backoff=1.0, overwrite=False):
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
        SDSS data release (8-19); default ``sfnet.conf.data_release``, or
        astroquery's ``astroquery.sdss.conf.default_release`` when unset.
    cutout_size : int
        Cutout width and height in pixels (the paper: 160).
    pixel_scale : `~astropy.units.Quantity` or float
        Angular size of one pixel (float: arcsec); the paper: 0.262 arcsec.
    cutout_service : {"legacysurvey", "hips2fits"}, optional
        ``"legacysurvey"``: the Legacy Survey viewer ``cutout.jpg`` with
        ``layer=sdss``, as in the paper (a fixed colour mapping);
        ``"hips2fits"``: CDS hips2fits on the ``CDS/P/SDSS9/color`` HiPS
        (astroquery requests percentile cuts, i.e. contrast normalised per
        cutout -- see the data documentation before mixing it with weights
        trained on the paper's cutouts).  Default ``sfnet.conf.cutout_service``
        (``"legacysurvey"``).
    progress : bool
        Show progress bars (rate and ETA) and a summary on stderr.
    page_size : int
        Rows per SkyServer request (at most 500000).
    r_mag_range, z_range, extra_columns
        See `build_sdss_query`.
    selection : {"default", "paper"}
        ``"paper"``: the CasJobs query of Wu (2025) (Galaxy view,
        PhotoObjDR7, the four BPT fluxes > 0, its ``G.z > 0.02`` -- a z-band
        *magnitude* cut, i.e. none -- kept verbatim); see `build_sdss_query`.
    region : (`~astropy.coordinates.SkyCoord`, radius), optional
        Only galaxies within ``radius`` (angle Quantity, or arcmin) of the
        position (SkyServer's ``dbo.fGetNearbyObjEq``); see `build_sdss_query`.
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
        (or a ``galaxies.csv`` not written by this function), and write into a
        non-empty ``output_dir`` without a catalog or ``images-sdss/``.  Without it such
        a folder raises `FileExistsError` before any request.

    Returns
    -------
    `~sfnet.GalaxySample`

    Raises
    ------
    ValueError, TypeError
        An invalid parameter (raised before any request or file is written).
    FileExistsError
        ``output_dir`` holds another catalog, or is a non-empty folder
        without a catalog or ``images-sdss/``, and ``overwrite`` is false.
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
    options = FetchOptions(
        target=target, data_release=data_release, cutout_size=cutout_size,
        pixel_scale=pixel_scale, cutout_service=cutout_service, progress=progress,
        page_size=page_size, r_mag_range=r_mag_range, z_range=z_range,
        extra_columns=extra_columns, selection=selection, region=region,
        max_workers=max_workers, rate_limit=rate_limit, timeout=timeout,
        max_retries=max_retries, retry_backoff=retry_backoff, overwrite=overwrite)
    report = fetch_to_folder(output_dir, n_galaxies, options)
    return load_fetched(output_dir, report, options.progress)
