"""Private: the validated options of an SDSS retrieval (`FetchOptions`).

`fetch_sdss_sample`, `query_sdss_catalog`, `fetch_sdss_cutouts`,
`build_sdss_query` and ``sfnet fetch`` take the same keywords (what to select,
how to cut out, how patiently to download).  Each builds one frozen
`FetchOptions` from them, which checks every value once, before the first
request or file, and resolves the defaults that come from `sfnet.conf` (and
astroquery's configuration); the SQL builder, the cutout loop and the
transport then read its attributes.  Nothing here sends a request.
"""

import math
from dataclasses import dataclass, field, fields

from astropy import units as u

from .._validation import check_bool, check_choice, check_float, check_int, check_range
from ..catalog import COLUMNS, DEFAULT_COLUMNS
from ..config import Conf, conf
from ..targets import TARGETS, Target, get_target
from ._transport import check_max_workers, check_rate_limit, check_timeout, retry_policy

__all__ = []  # private module

#: The catalog selections of `build_sdss_query`: name -> one-line description.
SELECTIONS = {
    "default": "sfnet's query: SpecObj + PhotoObj + MPA-JHU galSpec tables; clean "
               "primary galaxy spectra, reliable = 1, redshift and r-magnitude ranges",
    "paper": "the CasJobs query of Wu (2025) (agn-convnets data/AGN_K03.sql): SpecObj + "
             "Galaxy view + galSpec tables + PhotoObjDR7; Galaxy.z > 0.02 (a z-band "
             "magnitude cut, kept verbatim), 14 < petroMag_r <= 17.77, four BPT "
             "line fluxes > 0",
}

#: The defaults of r_mag_range and z_range (the paper's selection has its own
#: fixed cuts and refuses other values).
DEFAULT_R_MAG = (14.0, 17.77)
DEFAULT_Z = (0.02, None)

#: Largest cone radius of ``region`` (arcmin).  SkyServer's fGetNearbyObjEq has
#: no documented limit, but it is meant for small fields (~40 objects/arcmin^2).
MAX_REGION_ARCMIN = 600.0

#: SkyServer's row limit for one synchronous query.
MAX_PAGE = 500_000


def check_target(target):
    """Resolve ``target``; return (Target, tuple of the SkyServer columns it adds)."""
    if isinstance(target, Target):
        if target.name in TARGETS and TARGETS[target.name] == target:
            return target, ()
        names = tuple(target.required)
    else:
        target = get_target(target)
        if target.name in TARGETS:
            return target, ()
        names = tuple(target.columns)
    unknown = [c for c in names if c not in COLUMNS]
    if unknown:
        raise ValueError(
            f"target must be 'metallicity', 'bpt_lines' or SDSS catalog column names "
            f"known to sfnet (SDSS_COLUMNS, SDSS_EXTRA_COLUMNS); {unknown[0]!r} is not "
            f"one (no free text is ever passed into the SQL)")
    return target, names


def check_extra_columns(extra_columns):
    """``extra_columns`` as a tuple of known, non-default column names."""
    if extra_columns is None:
        return ()
    if isinstance(extra_columns, str):
        extra_columns = (extra_columns,)
    if not isinstance(extra_columns, (tuple, list)):
        raise TypeError(f"extra_columns must be a list of column names, got {extra_columns!r}")
    out = []
    for name in extra_columns:
        if not isinstance(name, str) or name not in COLUMNS:
            raise ValueError(
                f"extra_columns: {name!r} is not a column sfnet can request; choose "
                f"from SDSS_EXTRA_COLUMNS: "
                f"{sorted(c for c in COLUMNS if c not in DEFAULT_COLUMNS)}")
        if name not in DEFAULT_COLUMNS and name not in out:
            out.append(name)
    return tuple(out)


def check_region(region):
    """``None`` or ``(SkyCoord, radius)`` -> ``None`` or (ra_deg, dec_deg, radius_arcmin).

    Only finite floats come out (they are formatted into the SQL by sfnet).
    """
    if region is None:
        return None
    from astropy.coordinates import ConvertError, SkyCoord

    usage = ("region must be (SkyCoord, radius) with one position and a radius as an "
             "angle Quantity or a number of arcmin")
    if isinstance(region, (str, bytes)) or not isinstance(region, (tuple, list)) \
            or len(region) != 2:
        raise ValueError(f"{usage}, got {region!r}")
    center, radius = region
    if not isinstance(center, SkyCoord) or not center.isscalar:
        raise ValueError(f"{usage}; its first item is {center!r}")
    try:
        icrs = center.icrs
    except (ConvertError, ValueError, TypeError, u.UnitsError) as exc:  # e.g. AltAz, no time
        raise ValueError(f"region: cannot transform {center!r} to ICRS ({exc})") from None
    ra = float(icrs.ra.wrap_at(360 * u.deg).deg)
    dec = float(icrs.dec.deg)
    if not (math.isfinite(ra) and math.isfinite(dec)):
        raise ValueError(f"region: the position must be finite, got {center!r}")
    try:
        radius = check_float(radius, "region radius", unit=u.arcmin, minimum=0.0,
                             maximum=MAX_REGION_ARCMIN, strict_min=True,
                             text_is_value_error=True)
    except TypeError as exc:
        raise ValueError(f"{usage}; {exc}") from None
    return (ra, dec, radius)


def astroquery_sdss_conf():
    """astroquery's SDSS configuration (its SkyServer URL and default release)."""
    from astroquery.sdss import conf as sdss_conf

    return sdss_conf


def check_data_release(data_release):
    """The SDSS release: the argument, else ``sfnet.conf.data_release``, else astroquery's."""
    if data_release is None:
        data_release = conf.data_release
    if data_release is None:
        data_release = astroquery_sdss_conf().default_release
    # The MPA-JHU galSpec tables exist in SkyServer from DR8 on.
    return check_int(data_release, "data_release", minimum=8, maximum=19,
                     text_is_value_error=True)


def check_service_name(cutout_service):
    """The cutout service name: the argument, else ``sfnet.conf.cutout_service``.

    Checked against the names ``sfnet.conf.cutout_service`` accepts (the
    registry of `sfnet.datasets.cutouts`).
    """
    if cutout_service is None:
        cutout_service = conf.cutout_service
    names = Conf.cutout_service.choices
    if not isinstance(cutout_service, str) or cutout_service not in names:
        raise ValueError(f"cutout_service must be one of {tuple(names)}, "
                         f"got {cutout_service!r}")
    return cutout_service


@dataclass(frozen=True)
class FetchOptions:
    """The validated keywords of an SDSS retrieval (see `fetch_sdss_sample`).

    Every field is checked once, when the object is made, and replaced by its
    checked value: ``target`` becomes a `~sfnet.targets.Target`, angles and
    times plain floats (``pixel_scale`` in arcsec, ``timeout`` in s,
    ``rate_limit`` in Hz), and ``None`` defaults that come from `sfnet.conf`
    (``data_release``, ``cutout_service``, ``max_workers``, ``timeout``,
    ``max_retries``) their configured values.  ``region`` is kept as given;
    ``cone`` holds its checked ``(ra_deg, dec_deg, radius_arcmin)``.

    Raises
    ------
    ValueError, TypeError
        A value is invalid; the message names the keyword.
    """

    # what to select (the SkyServer query)
    target: object = "metallicity"
    data_release: object = None
    selection: str = "default"
    region: object = None
    r_mag_range: object = DEFAULT_R_MAG
    z_range: object = DEFAULT_Z
    extra_columns: object = ()
    page_size: int = 50000
    # what to cut out
    cutout_size: int = 160
    pixel_scale: object = 0.262 * u.arcsec
    cutout_service: object = None
    # how to download
    max_workers: object = None
    rate_limit: object = 10.0
    timeout: object = None
    max_retries: object = None
    retry_backoff: float = 1.0
    progress: bool = True
    overwrite: bool = False
    # derived
    target_columns: tuple = field(init=False, repr=False, compare=False)
    cone: object = field(init=False, repr=False, compare=False)

    def __post_init__(self):
        target, target_columns = check_target(self.target)
        selection = check_choice(self.selection, "selection", tuple(SELECTIONS))
        r_mag_range = check_range(self.r_mag_range, "r_mag_range", unit=u.mag)
        z_range = check_range(self.z_range, "z_range")
        if selection == "paper":
            for name, value, default in (("r_mag_range", r_mag_range, DEFAULT_R_MAG),
                                         ("z_range", z_range, DEFAULT_Z)):
                if value != default:
                    raise ValueError(
                        f"{name} cannot be changed with selection='paper' (the paper's "
                        f"cuts are fixed: G.z > 0.02, 14 < petroMag_r <= 17.77), got "
                        f"{value}")
        policy = retry_policy(self.max_retries, self.retry_backoff)
        checked = {
            "target": target, "target_columns": target_columns, "selection": selection,
            "r_mag_range": r_mag_range, "z_range": z_range,
            "cone": check_region(self.region),
            "extra_columns": check_extra_columns(self.extra_columns),
            "data_release": check_data_release(self.data_release),
            "page_size": check_int(self.page_size, "page_size", minimum=1, maximum=MAX_PAGE,
                                   text_is_value_error=True),
            "cutout_size": check_int(self.cutout_size, "cutout_size", minimum=8,
                                     maximum=2048, text_is_value_error=True),
            "pixel_scale": check_float(self.pixel_scale, "pixel_scale", unit=u.arcsec,
                                       minimum=0.0, maximum=60.0, strict_min=True,
                                       text_is_value_error=True),
            "cutout_service": check_service_name(self.cutout_service),
            "max_workers": check_max_workers(self.max_workers),
            "rate_limit": check_rate_limit(self.rate_limit),
            "timeout": check_timeout(self.timeout),
            "max_retries": policy.max_retries, "retry_backoff": policy.backoff,
            "progress": check_bool(self.progress, "progress"),
            "overwrite": check_bool(self.overwrite, "overwrite"),
        }
        for name, value in checked.items():
            object.__setattr__(self, name, value)

    @property
    def policy(self):
        """The `~sfnet.datasets._transport.RetryPolicy` of ``max_retries``/``retry_backoff``."""
        return retry_policy(self.max_retries, self.retry_backoff)

    @classmethod
    def from_namespace(cls, namespace, **overrides):
        """Options from the attributes of ``namespace`` named like fields (the CLI's).

        Attributes that are not fields are ignored; ``overrides`` win.
        """
        given = {f.name: getattr(namespace, f.name) for f in fields(cls)
                 if f.init and hasattr(namespace, f.name)}
        return cls(**{**given, **overrides})
