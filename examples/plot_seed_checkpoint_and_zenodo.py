"""
The paper's released models and data layout
============================================

The paper's data and trained weights are on Zenodo
(`doi:10.5281/zenodo.14712542 <https://doi.org/10.5281/zenodo.14712542>`_):
a ``galaxies.csv`` catalog, an ``images-sdss/`` folder of 160 x 160 JPEG
cutouts named ``{objID}.jpg``, and models saved as
``resnet18-topk_{k}-{target}.pth``.  This example shows how sfnet reads both.

Downloading them needs the network, so the example first builds small
stand-ins with exactly the same structure: a checkpoint pickled the way the
paper's notebooks saved theirs, and a folder in the Zenodo layout.  With the
real files, skip those steps and point the same calls at your download.
"""

# %%
# A stand-in for ``resnet18-topk_4-metallicity.pth``
# --------------------------------------------------
# The released files are *whole pickled modules*: an ``nn.Module`` subclass
# (``ResNetTopK`` in the notebooks, ``ResNet18TopK`` in the code) holding a
# torchvision ResNet-18 as ``resnet`` -- its ``fc`` replaced by a linear layer
# with one output per target -- and the integer ``k``.  We define such a class
# here, give it random weights and save it the same way.  Its ``forward`` is the
# paper's: pooled features, ReLU, keep the top ``k``, linear layer.

import tempfile
from pathlib import Path

import numpy as np
import torch
import torchvision
from torch import nn


class ResNetTopK(nn.Module):
    def __init__(self, n_out=1, k=4):
        super().__init__()
        self.resnet = torchvision.models.resnet18()
        self.resnet.fc = nn.Linear(512, n_out)
        self.k = k

    def forward(self, x):
        r = self.resnet
        x = r.maxpool(r.relu(r.bn1(r.conv1(x))))
        x = r.avgpool(r.layer4(r.layer3(r.layer2(r.layer1(x))))).flatten(1)
        values, index = torch.relu(x).topk(self.k, dim=1)
        return r.fc(torch.zeros_like(x).scatter(1, index, values))


workdir = Path(tempfile.mkdtemp(prefix="sfnet-example-"))
torch.manual_seed(0)
original = ResNetTopK(n_out=1, k=4).eval()
checkpoint = workdir / "resnet18-topk_4-metallicity.pth"
torch.save(original, checkpoint)
print(checkpoint.name, f"{checkpoint.stat().st_size / 2**20:.1f} MiB")

# %%
# Load it safely
# --------------
# A pickle can run arbitrary code when it is loaded, and ``torch.load`` of a
# whole module normally needs the class that defined it.
# `~sfnet.SparseFeatureNet.from_seed_checkpoint` needs neither: it reads the
# file with PyTorch's restricted unpickler, allowing only tensors, the
# torch/torchvision classes of a ResNet-18 and the class names of the paper's code
# (mapped onto an inert stand-in), and copies the weights into an sfnet model.
# ``k`` and the target are taken from the file (and its name); the geometry
# defaults are the paper's: the central 144 pixels of the 160-pixel cutouts,
# resized back to 160 exactly as PIL's bilinear resize does.  The file does not
# hold the normalisation the network was trained with (the paper's pipeline
# computed it from one batch of training images), so it must be given: here
# numbers of the kind the pipeline reports for SDSS cutouts, on the 0-255
# scale; for the released files use ``stats_from=`` the Zenodo images.

from sfnet import SparseFeatureNet

model = SparseFeatureNet.from_seed_checkpoint(checkpoint, precision="fp32",
                                              mean=[18.0, 16.0, 19.0], std=[28.0, 26.0, 31.0])
print(model)
print("k =", model.network_.k, "| target:", model.target_names,
      "| crop", model.preprocessor_.crop_size, "-> resize", model.preprocessor_.image_size)

# %%
# The loaded model gives the same numbers as the original module on the same
# preprocessed input.  (It predicts in the units the network was trained in;
# with the real file that is 12 + log(O/H).)

rng = np.random.default_rng(0)
images = rng.integers(0, 256, size=(4, 160, 160, 3), dtype=np.uint8)
ours = model.predict(images)

x = torch.from_numpy(model.input_images(images)).permute(0, 3, 1, 2).float()
mean = torch.tensor(model.preprocessor_.mean).view(1, 3, 1, 1)
std = torch.tensor(model.preprocessor_.std).view(1, 3, 1, 1)
with torch.no_grad():
    theirs = original((x - mean) / std)[:, 0].numpy()
print("max difference:", float(np.abs(ours - theirs).max()))

# %%
# A file that tries to do anything other than rebuild those modules is refused
# before any of its code runs:

import pickle


class NotAModel:
    def __reduce__(self):  # unpickling this would call print(...)
        return (print, ("this line must never be printed",))


bad = workdir / "resnet18-topk_4-metallicity-tampered.pth"
torch.save({"model": NotAModel()}, bad)
try:
    SparseFeatureNet.from_seed_checkpoint(bad, mean=[18.0, 16.0, 19.0], std=[28.0, 26.0, 31.0])
except pickle.UnpicklingError as err:
    print(f"refused with {type(err).__name__}; nothing was printed or run")

# %%
# A folder in the Zenodo layout
# -----------------------------
# `~sfnet.datasets.write_galaxy_folder` writes any `~sfnet.GalaxySample` as
# ``galaxies.csv`` plus ``images-sdss/{objID}.jpg`` -- the release's layout.
# We write a few mock galaxies at the release's 160 pixels.

from sfnet.datasets import load_galaxy_folder, make_mock_galaxies, write_galaxy_folder

mock = make_mock_galaxies(24, image_size=160, seed=5, progress=False)
folder = write_galaxy_folder(mock, workdir / "zenodo")
print(sorted(p.name for p in folder.iterdir()))
print(sorted(p.name for p in (folder / "images-sdss").iterdir())[:3], "...")

# %%
# `~sfnet.datasets.load_galaxy_folder` reads such a folder.  ``objID`` is
# parsed as a 64-bit integer (never through float, which would corrupt SDSS
# identifiers), known MPA-JHU columns get their units, and rows whose image is
# missing or unreadable are dropped *with a warning* that names them.  Delete
# one image to see that:

(folder / "images-sdss" / f"{mock.catalog['objID'][0]}.jpg").unlink()

import warnings

with warnings.catch_warnings(record=True) as caught:
    warnings.simplefilter("always")
    galaxies = load_galaxy_folder(folder, cache=workdir / "decoded", progress=False)
for w in caught:
    print(f"{w.category.__name__}: {w.message}")
print(len(galaxies), "galaxies,", galaxies.images.shape[1:], galaxies.images.dtype)
print("objID exact:", bool(np.all(galaxies.catalog["objID"] == mock.catalog["objID"][1:])))
galaxies.catalog["objID", "ra", "dec", "z", "oh_p50"][:3]

# %%
# With ``cache`` the decoded images are stored once as a memory-mapped
# `~sfnet.GalaxySample` directory, so the next load of the unchanged folder
# only opens it (and a 250,000-galaxy sample never has to fit in memory).
# By default the cache lives under sfnet's cache directory.
#
# The loaded galaxies go straight into the checkpoint's model: it crops the
# central 144 pixels, resizes them to 160 and predicts.

print(model.predict(galaxies)[:5])

# %%
# With the real release the whole example reduces to::
#
#     from sfnet import SparseFeatureNet
#     from sfnet.datasets import load_galaxy_folder
#
#     galaxies = load_galaxy_folder("path/to/zenodo")          # galaxies.csv + images-sdss/
#     model = SparseFeatureNet.from_seed_checkpoint("resnet18-topk_4-metallicity.pth",
#                                                   stats_from=galaxies)
#     oh = model.predict(galaxies.select("metallicity"))
#     acts = model.activations(galaxies.select("metallicity"))
#
# and every tool of `sfnet.interpret` applies to ``model`` and ``acts``.

import shutil

shutil.rmtree(workdir)
