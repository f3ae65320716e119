"""Configuration of sfnet (`astropy.config` style).

Every remote endpoint is a configuration item, so tests and mirrors can point
sfnet at another server::

    >>> import sfnet
    >>> with sfnet.conf.set_temp("timeout", 5):
    ...     sfnet.conf.timeout
    5.0

The SDSS endpoints follow astroquery unless set here: an empty
``skyserver_url`` or ``hips2fits_url`` and an unset (``None``)
``data_release`` mean astroquery's ``astroquery.sdss.conf.skyserver_baseurl``,
``astroquery.hips2fits.conf.server`` and ``astroquery.sdss.conf.default_release``
(so a mirror configured for astroquery is used by sfnet too).  The default
cutout service is the paper's, the Legacy Survey viewer's ``layer=sdss``
JPEGs (``legacysurvey_url``).
"""

from astropy import config as _config
from astropy.extern.configobj import validate as _validate

__all__ = ["Conf", "conf"]


class _ChoiceItem(_config.ConfigItem):
    """A string item whose value must be one of ``choices``.

    ``choices`` is any collection that supports ``in``.  For
    ``cutout_service`` it starts as the names of the built-in services and is
    replaced, when `sfnet.datasets.cutouts` is imported, by that module's live
    registry (`~sfnet.datasets.cutouts.register_cutout_service`), which checks
    that it holds these names; so a service registered there can be configured
    too, while this module imports nothing from the modules it configures.
    """

    def __init__(self, defaultvalue, description, choices, **kwargs):
        self.choices = choices
        super().__init__(defaultvalue, description, **kwargs)

    def _validate_val(self, val):
        val = super()._validate_val(val)
        if val not in self.choices:
            raise _validate.VdtValueError(val)
        return val


class Conf(_config.ConfigNamespace):
    """Configuration parameters for `sfnet`."""

    cache_dir = _config.ConfigItem(
        "", "Directory for cached decoded images and downloads; empty means "
        "astropy's cache directory (``~/.astropy/cache/sfnet``).", cfgtype="string")
    data_release = _config.ConfigItem(
        None, "SDSS data release used by the SkyServer SQL queries; unset (None) means "
        "astroquery's astroquery.sdss.conf.default_release (17 in astroquery 0.4).",
        cfgtype="integer(default=None)")
    skyserver_url = _config.ConfigItem(
        "", "SkyServer base URL; the SQL goes through astroquery.sdss pointed at it. "
        "Empty means astroquery's astroquery.sdss.conf.skyserver_baseurl.",
        cfgtype="string")
    cutout_service = _ChoiceItem(
        "legacysurvey", "Service for colour cutouts: a name registered in "
        "sfnet.datasets.cutouts (built in: 'legacysurvey', the paper's and the default, "
        "and 'hips2fits').", choices=("hips2fits", "legacysurvey"), cfgtype="string")
    hips2fits_url = _config.ConfigItem(
        "", "hips2fits server base URL; empty means the server astroquery knows "
        "(astroquery.hips2fits.conf.server).", cfgtype="string")
    legacysurvey_url = _config.ConfigItem(
        "https://www.legacysurvey.org/viewer/", "Legacy Survey viewer base URL "
        "(cutouts come from its cutout.jpg endpoint with layer=sdss).", cfgtype="string")
    timeout = _config.ConfigItem(
        60.0, "Timeout of one remote request, in seconds.", cfgtype="float")
    max_retries = _config.ConfigItem(
        5, "Retries (exponential backoff with jitter) on timeouts, connection "
        "errors and HTTP 5xx.", cfgtype="integer")
    max_workers = _config.ConfigItem(
        8, "Concurrent downloads of cutouts.", cfgtype="integer")
    max_in_memory_gb = _config.ConfigItem(
        4.0, "Training images larger than this (GiB, after resizing and cropping) are "
        "streamed batch by batch from their memory-mapped file with a background "
        "prefetch; smaller ones are prepared once and kept in memory.", cfgtype="float")


conf = Conf()
