"""
Your own galaxies: a folder of multi-band FITS cutouts with string IDs
======================================================================

sfnet is not tied to SDSS JPEGs.  This page builds the kind of folder an
astronomer brings from the DESI Legacy Imaging Surveys -- one FITS file per
galaxy holding a ``(bands, H, W)`` stack of g, r and z fluxes, named by a
string identifier, next to a catalog CSV -- then loads it, trains a Sparse
Feature Network on the three float bands, writes a prediction table keyed by
the string IDs and draws a feature figure.

The galaxies are the built-in mock rendered as float fluxes in g, r and z, so
the page runs offline; with real cutouts (``sfnet cutouts`` with
``--format fits --bands grz``) only the first section changes.  The settings
are tiny (32-pixel cutouts, a few hundred galaxies, three epochs) so the page
builds in well under a minute on a two-core CPU; see :doc:`/own_data` for what
changes at full size.
"""

# %%
# A folder of FITS cutouts
# ------------------------
# ``make_mock_galaxies(..., bands="grz", image_format="flux")`` renders each
# galaxy as float32 fluxes, one channel per band (blue to red).  We write one
# FITS file per galaxy, ``images/{name}.fits``, as a ``(3, H, W)`` cube in the
# primary HDU, and a catalog CSV whose ID column ``name`` holds strings such
# as ``"LS-000042"``.  FITS stores the bottom row first, so the rows are
# flipped on the way out (`~sfnet.datasets.load_galaxy_folder` flips them
# back).

import tempfile
from pathlib import Path

import numpy as np
from astropy.io import fits

from sfnet import SparseFeatureNet, interpret
from sfnet.datasets import load_galaxy_folder, make_mock_galaxies

mock = make_mock_galaxies(600, image_size=32, seed=7, bands="grz", image_format="flux",
                          progress=False).select("metallicity")
print(mock.images.shape, mock.images.dtype)

folder = Path(tempfile.mkdtemp()) / "my-galaxies"
(folder / "images").mkdir(parents=True)
catalog = mock.catalog["ra", "dec", "z", "oh_p50", "lgm_tot_p50", "sfr_tot_p50"]
catalog.add_column([f"LS-{i:06d}" for i in range(len(catalog))], name="name", index=0)
catalog.write(folder / "galaxies.csv", format="ascii.csv")
for name, image in zip(catalog["name"], mock.images):
    cube = np.moveaxis(image, -1, 0)[:, ::-1]  # (bands, H, W), bottom row first
    header = fits.Header({"BANDS": "grz", "BUNIT": "nanomaggy"})
    fits.PrimaryHDU(np.ascontiguousarray(cube), header=header).writeto(
        folder / "images" / f"{name}.fits")
print(sorted(p.name for p in (folder / "images").iterdir())[:3])

# %%
# Load it
# -------
# `~sfnet.datasets.load_galaxy_folder` finds ``{name}.fits`` for every row,
# reads the cube as ``(H, W, 3)`` float32 and keeps the string IDs exactly.

sample = load_galaxy_folder(folder, image_dir="images", id_column="name",
                            cache=False, progress=False)
print(sample.id_column, sample.images.shape, sample.images.dtype)
train, valid = sample.split(0.25, seed=0)

# %%
# Train on the float bands
# ------------------------
# Nothing to configure: the network's first convolution takes the three
# bands, and the float fluxes are normalised per band from the training
# images -- ``asinh((x - median) / scale)`` with the median and a robust
# scale (1.4826 x the median absolute deviation), so bright cores do not
# set the scale.  The statistics are stored in the fitted
# ``preprocessor_`` and saved with the model.

model = SparseFeatureNet(k=4, epochs=3, batch_size=32, random_state=0,
                         progress=False).fit(train)
print(model.preprocessor_.stretch, np.round(model.preprocessor_.mean, 4))
print(model.evaluate(valid))

# %%
# A prediction table keyed by your IDs
# ------------------------------------
# `~sfnet.SparseFeatureNet.predict_table` puts the sample's ID column first
# (strings stay strings in ECSV, FITS and CSV files), then the position, the
# prediction and the active features with their contributions.

table = model.predict_table(valid)
table.write(folder / "predictions.ecsv", overwrite=True)
table["name", "oh_p50_pred", "feature_1", "activation_1"][:5]

# %%
# The galaxies behind a feature
# -----------------------------
# Figures that show images turn the float bands into colour with an asinh
# stretch (g, r, z shown as blue, green, red).

acts = model.activations(valid)
feature = int(np.argmax((acts > 0).sum(axis=0)))
fig = interpret.plot_max_activating(valid, acts, feature, n=6, ncols=3)
