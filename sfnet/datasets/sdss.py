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

This module orchestrates a run and owns the folder: it validates every
parameter before the first request or file, re-uses the catalog of an
earlier run of the same query (resume), writes the catalog files and the
report, and loads the result.  The work is done by two modules whose public
names it re-exports:

`sfnet.datasets.skyserver`
    The SQL builder (`build_sdss_query`), SkyServer transport with paging
    and retries, and the checked CSV parsing (`query_sdss_catalog`).
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
from astropy.table import Table

from .._io import atomic_write_json
from .._validation import check_bool
from ..exceptions import SkyServerError
from . import _download as _dl
from .cutouts import (_CATALOG_CSV, _CATALOG_ECSV, _MANIFEST, _REPORT, HIPS_SDSS_COLOR,
                      _write_catalog, _write_csv,
                      _check_output_dir, _cutout_summary, _CutoutOptions, _fetch_cutouts,
                      _remove_stale_temporaries, _warn_failures, fetch_sdss_cutouts)
from .skyserver import (_DEFAULT_R_MAG, _DEFAULT_Z, PAPER_COLUMNS, SDSS_COLUMNS,
                        SDSS_EXTRA_COLUMNS, SELECTIONS, _check_data_release,
                        _check_page_size, _one_line, _query_catalog, _QuerySpec,
                        _skyserver_url, build_sdss_query, query_sdss_catalog)

__all__ = ["fetch_sdss_sample", "build_sdss_query", "query_sdss_catalog",
           "fetch_sdss_cutouts", "SkyServerError", "SDSS_COLUMNS",
           "SDSS_EXTRA_COLUMNS", "HIPS_SDSS_COLOR", "SELECTIONS", "PAPER_COLUMNS"]

log = logging.getLogger(__name__)




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


def _catalog_for(out, spec, *, data_release, page_size, opts, progress, overwrite,
                 counters):
    """The run's catalog: re-used from an earlier run of the same query, else queried.

    Returns (catalog, reused); a queried catalog is written to ``out``.
    """
    catalog = _existing_catalog(out, spec, data_release, overwrite)
    out.mkdir(parents=True, exist_ok=True)
    _remove_stale_temporaries(out)
    reused = catalog is not None
    if reused and not (out / _CATALOG_CSV).is_file():
        _write_csv(catalog, out)
    if not reused:
        catalog = _query_catalog(spec, data_release=data_release, page_size=page_size,
                                 timeout=opts.timeout, policy=opts.policy, progress=progress,
                                 counters=counters)
        if len(catalog) == 0:
            raise SkyServerError(
                "no galaxy matches the query (check r_mag_range, z_range, target, region "
                f"and data_release): {_one_line(spec.sql())}")
        _write_catalog(catalog, out)
    return catalog, reused


def _fetch_to_folder(output_dir, n_galaxies, *, target="metallicity", data_release=None,
                     cutout_size=160, pixel_scale=0.262 * u.arcsec, cutout_service=None,
                     progress=True, page_size=50000, r_mag_range=_DEFAULT_R_MAG,
                     z_range=_DEFAULT_Z, extra_columns=(), selection="default", region=None,
                     max_workers=None, rate_limit=10.0, timeout=None, max_retries=None,
                     retry_backoff=1.0, overwrite=False):
    """Everything `fetch_sdss_sample` does except loading; returns the run report."""
    # 1. validate everything; nothing is sent or written before this passes.
    out = _check_output_dir(output_dir)
    spec = _QuerySpec(n_galaxies, target, r_mag_range, z_range, extra_columns, selection,
                      region)
    data_release = _check_data_release(data_release)
    page_size = _check_page_size(page_size)
    opts = _CutoutOptions(cutout_size, pixel_scale, cutout_service, max_workers, rate_limit,
                          timeout, max_retries, retry_backoff)
    progress = check_bool(progress, "progress")
    overwrite = check_bool(overwrite, "overwrite")
    _skyserver_url()

    # 2. catalog: re-use a complete catalog of the same query, else page through SkyServer.
    sql_counters = _dl.Counters()
    catalog, reused = _catalog_for(out, spec, data_release=data_release, page_size=page_size,
                                   opts=opts, progress=progress, overwrite=overwrite,
                                   counters=sql_counters)

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
        "selection": spec.selection,
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


def _load_sample(output_dir, progress):
    from .folder import load_galaxy_folder

    return load_galaxy_folder(output_dir, progress=progress)


def fetch_sdss_sample(output_dir, n_galaxies, *, target="metallicity", data_release=None,
                      cutout_size=160, pixel_scale=0.262 * u.arcsec, cutout_service=None,
                      progress=True, page_size=50000, r_mag_range=_DEFAULT_R_MAG,
                      z_range=_DEFAULT_Z, extra_columns=(), selection="default", region=None,
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
        extra_columns=extra_columns, selection=selection, region=region,
        max_workers=max_workers, rate_limit=rate_limit,
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
