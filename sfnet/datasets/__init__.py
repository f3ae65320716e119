"""Galaxy samples: the container, the embedded mock, the Zenodo-layout loader and SDSS retrieval.

* `sfnet.datasets.sample` -- `GalaxySample`, images plus catalog, saved as ECSV + ``.npy``;
* `sfnet.datasets.mock` -- `make_mock_galaxies`, the SDSS-like mock (the offline default),
  and `make_mock_interventions`: the same galaxies with one of `MOCK_LATENTS` set;
* `sfnet.datasets.folder` -- `load_galaxy_folder` / `write_galaxy_folder`, the Zenodo layout;
* `sfnet.datasets.skyserver` -- the SkyServer SQL query (`build_sdss_query`,
  `query_sdss_catalog`; ``selection="default"`` or the paper's ``"paper"``,
  `SELECTIONS`; optional ``region`` cones);
* `sfnet.datasets.cutouts` -- the cutout services behind a registry
  (`register_cutout_service`; the Legacy Survey viewer by default) and
  `fetch_sdss_cutouts` for catalogs or one's own positions (`position_ids`);
* `sfnet.datasets.sdss` -- `fetch_sdss_sample`: catalog and cutouts into a folder;
* `sfnet.datasets.colour` -- `to_rgb`: flux images (FITS, any bands) to 8-bit colour.

Private modules (no public names; imported by the modules above):

* ``_store`` -- the on-disk store of `GalaxySample.save` / ``load`` (ECSV + ``.npy``);
* ``_split`` -- the split rules of `GalaxySample.split` and ``SparseFeatureNet.fit``
  (random, and the paper's fastai ``RandomSplitter``);
* ``_layout`` -- the Zenodo folder layout's names and the catalog CSV readers/writers;
* ``_options`` -- ``FetchOptions``, the checked options of a retrieval;
* ``_transport`` -- the HTTP transport (retries, rate limit, counters, failure manifest);
* ``_mockphysics`` and ``_render`` -- the mock's physics and its image renderer.
"""

from .sample import *  # noqa: F401,F403
from .folder import *  # noqa: F401,F403
from .mock import *  # noqa: F401,F403
from .skyserver import *  # noqa: F401,F403
from .cutouts import *  # noqa: F401,F403
from .sdss import *  # noqa: F401,F403
from .colour import *  # noqa: F401,F403
from . import sample, folder, mock, skyserver, cutouts, sdss, colour

__all__ = list(dict.fromkeys(sample.__all__ + folder.__all__ + mock.__all__ + skyserver.__all__
                             + cutouts.__all__ + sdss.__all__ + colour.__all__))
