"""
Fetching real galaxies from SDSS
================================

How to build a training set like the paper's from the public SDSS services:
the MPA-JHU spectroscopic catalog from SkyServer and one colour cutout per
galaxy.  The result is a folder in the same layout as the paper's Zenodo
release, ready for `~sfnet.SparseFeatureNet` or ``sfnet train``.

.. note::

   This example needs internet access, so it is shown here but not run when
   the documentation is built.  Download it and run it yourself; start small.
"""

# %%
# The query
# ---------
# `~sfnet.datasets.build_sdss_query` shows the SQL that will be sent.  It joins
# ``SpecObj`` to ``PhotoObj`` and to the MPA-JHU tables ``galSpecInfo``,
# ``galSpecLine`` and ``galSpecExtra``, keeps clean galaxy spectra, the r-band
# magnitude range of the main sample and the target's quality cuts, and is
# built only from validated numbers and known column names.  Building it needs
# no network.

from sfnet.datasets import build_sdss_query

print(build_sdss_query(1000, target="metallicity"))

# %%
# ``selection="paper"`` gives the paper's own CasJobs query instead: the
# ``Galaxy`` view and ``PhotoObjDR7``, the four BPT line fluxes > 0 and its
# ``G.z > 0.02`` -- which, in the ``Galaxy`` view, is a cut on the z-band
# *magnitude*, not on redshift (kept verbatim, so it removes almost nothing).

print(build_sdss_query(1000, target="bpt_lines", selection="paper"))

# %%
# Download a sample
# -----------------
# `~sfnet.datasets.fetch_sdss_sample` runs the query (in pages, so large
# requests stay within SkyServer's limits) and fetches 160 x 160 cutouts at
# 0.262 arcsec per pixel -- the paper's geometry -- from the Legacy Survey
# viewer's ``layer=sdss`` JPEGs, as the paper did (``cutout_service="hips2fits"``
# uses the CDS SDSS9 colour HiPS instead, whose JPEGs astroquery asks to be
# contrast-stretched per cutout; see :ref:`cutout-scaling`).  Downloads run
# concurrently, politely rate-limited, with retries;
# each file is written atomically and checked to decode.  Galaxies whose
# cutout keeps failing are listed in ``failures.csv`` and reported in a
# warning; they never stop the others.  Running the same call again resumes:
# only missing or damaged images are fetched.

from sfnet.datasets import fetch_sdss_sample

sample = fetch_sdss_sample("sdss-metallicity", 1000, target="metallicity")
print(len(sample), sample.images.shape)

# %%
# The folder now holds::
#
#     sdss-metallicity/
#         galaxies.csv        the catalog (SkyServer / MPA-JHU column names)
#         galaxies.ecsv       the same with units and provenance (query, data release, date)
#         images-sdss/        {objID}.jpg, one per galaxy
#         failures.csv        galaxies whose cutout could not be fetched (header only if none)
#         fetch_report.json   counts of requests, retries and failures
#
# and reads back with `~sfnet.datasets.load_galaxy_folder` exactly like the
# Zenodo release.

# %%
# Settings
# --------
# The services, timeouts, retries and concurrency come from `sfnet.conf` (an
# `astropy.config` namespace, so they can also be set in
# ``~/.astropy/config/sfnet.cfg``).  ``set_temp`` changes them for a block:

import sfnet

with sfnet.conf.set_temp("max_workers", 4), sfnet.conf.set_temp("timeout", 120):
    lines = fetch_sdss_sample("sdss-bpt", 500, target="bpt_lines", selection="paper")

# %%
# Unset SDSS endpoints follow astroquery's configuration: with
# ``sfnet.conf.skyserver_url`` empty (the default) the SQL goes to
# ``astroquery.sdss.conf.skyserver_baseurl``, and with ``data_release`` unset
# to ``astroquery.sdss.conf.default_release``.

from astroquery.sdss import conf as sdss_conf

with sdss_conf.set_temp("default_release", 16):
    dr16 = fetch_sdss_sample("sdss-dr16", 100)

# %%
# A field, and galaxies of your own
# ---------------------------------
# ``region=(SkyCoord, radius)`` restricts the query to a cone (SkyServer's
# ``fGetNearbyObjEq``), and `~sfnet.datasets.fetch_sdss_cutouts` fetches
# cutouts for any positions -- a SkyCoord or a table with ra/dec -- into the
# same folder layout.

import astropy.units as u
from astropy.coordinates import SkyCoord

from sfnet.datasets import fetch_sdss_cutouts, load_galaxy_folder

field = fetch_sdss_sample("sdss-field", 200,
                          region=(SkyCoord(185.0 * u.deg, 0.5 * u.deg), 60 * u.arcmin))
mine = SkyCoord([185.0, 150.1], [0.1, 2.2], unit="deg")
fetch_sdss_cutouts(mine, "my-galaxies", ids=[1, 2])
print(load_galaxy_folder("my-galaxies").catalog)

# %%
# Train on it
# -----------
# The paper resized the 160-pixel cutouts and cropped the central 144 pixels.

from sfnet import SparseFeatureNet

train, valid = sample.select("metallicity").split(0.2, seed=0)
model = SparseFeatureNet(k=4, image_size=160, crop_size=144, epochs=20, random_state=0)
model.fit(train, checkpoint_dir="checkpoints")
print(model.evaluate(valid))

# %%
# From the command line
# ---------------------
# The same steps as shell commands::
#
#     sfnet fetch --n-galaxies 20000 --target metallicity --output data/
#     sfnet train data/ --target metallicity --k 4 --image-size 160 --crop-size 144 \
#         --output model/ --checkpoint-dir checkpoints/
#     sfnet predict model/ data/ --output predictions.ecsv
#     sfnet interpret model/ data/ --output report/
#
# ``sfnet fetch --help`` lists every option.
