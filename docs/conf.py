# Sphinx configuration for the sfnet documentation, on the shared settings of
# Astropy-affiliated packages (sphinx_astropy.conf.v2).
#
# Build (warnings are errors, as in CI):
#
#     sphinx-build -W -b html docs docs/_build/html
#
# Intersphinx links into the documentation of Python, numpy, astropy, PyTorch,
# ... are on by default.  Each inventory is probed first; any that cannot be
# reached (no network) is left out with a printed note, so offline builds pass
# with -W and simply render those references as plain text.
# SFNET_DOCS_INTERSPHINX=0 turns intersphinx off without probing; =1 keeps every
# inventory without probing (an unreachable one then fails a -W build).
#
# The gallery examples in ../examples are executed (those named plot_*.py);
# SFNET_DOCS_PLOT_GALLERY=0 skips running them for a quick text-only build.

import os
import sys
import urllib.request
from concurrent.futures import ThreadPoolExecutor

from sphinx_astropy.conf.v2 import *  # noqa: F403
from sphinx_astropy.conf.v2 import (extensions, intersphinx_mapping, rst_epilog,
                                     suppress_warnings)

# -- Project -----------------------------------------------------------------

project = "sfnet"
author = "The sfnet developers"
copyright = f"2026, {author}"

try:
    import sfnet
except ImportError:  # a source tree that is not installed
    sys.path.insert(0, os.path.abspath(os.path.join(os.path.dirname(__file__), "..")))
    import sfnet

release = sfnet.__version__
version = ".".join(release.split(".")[:2])

# -- General -----------------------------------------------------------------

needs_sphinx = "7.0"
extensions = [*extensions, "sphinx_gallery.gen_gallery"]

root_doc = "index"
source_suffix = {".rst": "restructuredtext"}
exclude_patterns = ["_build", "**.ipynb_checkpoints", "auto_examples/*.ipynb",
                    "auto_examples/*.py", "auto_examples/*.zip"]
templates_path = []

# `text` in reST means a cross-reference to any Python object (astropy style).
default_role = "obj"

# automodapi / numpydoc (astropy-affiliated conventions)
automodapi_toctreedirnm = "api"
automodsumm_inherited_members = False
autosummary_generate = True
autoclass_content = "both"
autodoc_typehints = "none"
numpydoc_show_class_members = False
numpydoc_xref_param_type = False
numpydoc_validation_checks = set()

# Substitutions used across pages.
rst_epilog += """
.. |paper| replace:: Wu (2025, ApJ 980, 183; arXiv:2501.00089)
"""

# -- Intersphinx (on; unreachable inventories are left out) -------------------
#
# Sphinx reports an unreachable inventory with an untyped warning, which `-W`
# turns into an error and `suppress_warnings` cannot silence, so each remote
# inventory is probed first (in parallel, a few seconds at most).

intersphinx_mapping.update({
    "python": ("https://docs.python.org/3/", None),
    "numpy": ("https://numpy.org/doc/stable/", None),
    "scipy": ("https://docs.scipy.org/doc/scipy/", None),
    "matplotlib": ("https://matplotlib.org/stable/", None),
    "astropy": ("https://docs.astropy.org/en/stable/", None),
    "astroquery": ("https://astroquery.readthedocs.io/en/latest/", None),
    "torch": ("https://docs.pytorch.org/docs/stable/", None),
    "torchvision": ("https://docs.pytorch.org/vision/stable/", None),
    "pandas": ("https://pandas.pydata.org/docs/", None),
    "sklearn": ("https://scikit-learn.org/stable/", None),
})
intersphinx_mapping.pop("h5py", None)
intersphinx_timeout = 10


def _inventory_url(target, inventory):
    """The first place Sphinx would read the inventory of ``target`` from (a URL or a file)."""
    if isinstance(inventory, (tuple, list)):
        inventory = inventory[0]
    return inventory or target.rstrip("/") + "/objects.inv"


def _reachable(location, timeout=5):
    if "://" not in location:
        return os.path.exists(location)
    try:
        with urllib.request.urlopen(location, timeout=timeout) as response:
            response.read(1)
        return True
    except (OSError, ValueError):
        return False


_INTERSPHINX = os.environ.get("SFNET_DOCS_INTERSPHINX", "auto").lower()
if _INTERSPHINX in ("0", "false", "no", "off"):
    intersphinx_mapping.clear()
elif _INTERSPHINX not in ("1", "true", "yes", "on"):
    _places = {name: _inventory_url(*value) for name, value in intersphinx_mapping.items()}
    with ThreadPoolExecutor(max_workers=len(_places) or 1) as _pool:
        _ok = dict(zip(_places, _pool.map(_reachable, _places.values())))
    _dropped = sorted(name for name, ok in _ok.items() if not ok)
    for _name in _dropped:
        del intersphinx_mapping[_name]
    if _dropped:
        print(f"sfnet docs: intersphinx inventories unreachable (offline?), left out: "
              f"{', '.join(_dropped)}; their references render as plain text")


# scikit-learn writes the docstrings of the ``set_{fit,predict,score}_request``
# methods that every estimator with keyword arguments inherits; they refer to
# its own glossary and user guide.  With scikit-learn's inventory these
# resolve; offline they render as plain text (only these two targets, so a
# broken reference of sfnet's own still fails the build).
_SKLEARN_DOCSTRING_TARGETS = {"meta-estimator", "metadata_routing"}


def _sklearn_targets_as_text(app, env, node, contnode):
    if node.get("reftarget") in _SKLEARN_DOCSTRING_TARGETS:
        return contnode
    return None


def setup(app):
    # After intersphinx (priority 500), so an available inventory links them.
    app.connect("missing-reference", _sklearn_targets_as_text, priority=900)


# -- Gallery -----------------------------------------------------------------

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

# Keep the executed examples polite on small shared machines.
os.environ.setdefault("OMP_NUM_THREADS", "2")
os.environ.setdefault("MPLBACKEND", "agg")

_PLOT_GALLERY = os.environ.get("SFNET_DOCS_PLOT_GALLERY", "1").lower() not in (
    "0", "false", "no")

sphinx_gallery_conf = {
    "examples_dirs": ["../examples"],
    "gallery_dirs": ["auto_examples"],
    # Only plot_*.py run; other scripts (fetch_sdss.py needs the network) are
    # rendered with their code but never executed.
    "filename_pattern": r"/plot_",
    "ignore_pattern": r"__init__\.py|/_",
    "plot_gallery": _PLOT_GALLERY,
    # sfnet's plot functions return Figures that pyplot does not manage; the
    # first scraper (docs/sfnet_docs_gallery.py) puts those in the pages, the
    # standard one handles pyplot figures.
    "image_scrapers": ("sfnet_docs_gallery.figure_scraper", "matplotlib"),
    "matplotlib_animations": False,
    "remove_config_comments": True,
    # A broken example fails the build (and CI).
    "abort_on_example_error": True,
    "only_warn_on_example_error": False,
    "within_subsection_order": "sfnet_docs_gallery.ExampleOrder",
    "reset_modules": ("matplotlib",),
    "download_all_examples": False,
    "show_memory": False,
    "line_numbers": False,
    "min_reported_time": 5,
    "capture_repr": ("_repr_html_", "__repr__"),
}

# Without executed examples the gallery images that data.rst shows do not exist.
if not _PLOT_GALLERY:
    suppress_warnings.append("image.not_readable")

# -- HTML --------------------------------------------------------------------

html_theme = "pydata_sphinx_theme"
html_title = f"sfnet {release}"
html_static_path = []
html_last_updated_fmt = "%d %b %Y"
html_show_sourcelink = False
html_theme_options = {
    "navigation_depth": 2,
    "show_nav_level": 1,
    "collapse_navigation": True,
    "use_edit_page_button": False,
    "navbar_align": "left",
    "header_links_before_dropdown": 8,
    "icon_links": [],
    "secondary_sidebar_items": ["page-toc"],
    "footer_start": ["copyright"],
    "footer_end": ["sphinx-version"],
}
html_sidebars = {"**": ["sidebar-nav-bs"]}
