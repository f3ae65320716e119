# Sphinx configuration for the sfnet documentation.
#
# Build (warnings are errors, as in CI):
#
#     sphinx-build -W -b html docs docs/_build/html
#
# The build needs no network.  Links into the documentation of astropy, numpy,
# matplotlib, torch, ... (intersphinx) are only fetched when the environment
# variable SFNET_DOCS_INTERSPHINX=1 is set, e.g. for the published site:
#
#     SFNET_DOCS_INTERSPHINX=1 sphinx-build -W -b html docs docs/_build/html
#
# The gallery examples in ../examples are executed (those named plot_*.py);
# SFNET_DOCS_PLOT_GALLERY=0 skips running them for a quick text-only build.

import os
import sys

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
extensions = [
    "sphinx.ext.autodoc",
    "sphinx.ext.intersphinx",
    "sphinx.ext.mathjax",
    "sphinx.ext.viewcode",
    "numpydoc",
    "sphinx_automodapi.automodapi",
    "sphinx_automodapi.smart_resolver",
    "sphinx_gallery.gen_gallery",
]

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
rst_epilog = """
.. |paper| replace:: Wu (2025, ApJ 980, 183; arXiv:2501.00089)
"""

# -- Intersphinx (off unless SFNET_DOCS_INTERSPHINX=1) ------------------------
#
# Sphinx reports an unreachable inventory with an untyped warning, which `-W`
# turns into an error and `suppress_warnings` cannot silence.  Offline builds
# therefore leave the mapping empty: references to external objects then stay
# plain text instead of failing the build.

_INTERSPHINX = {
    "python": ("https://docs.python.org/3/", None),
    "numpy": ("https://numpy.org/doc/stable/", None),
    "scipy": ("https://docs.scipy.org/doc/scipy/", None),
    "matplotlib": ("https://matplotlib.org/stable/", None),
    "astropy": ("https://docs.astropy.org/en/stable/", None),
    "astroquery": ("https://astroquery.readthedocs.io/en/latest/", None),
    "torch": ("https://docs.pytorch.org/docs/stable/", None),
    "torchvision": ("https://docs.pytorch.org/vision/stable/", None),
    "pandas": ("https://pandas.pydata.org/docs/", None),
}
if os.environ.get("SFNET_DOCS_INTERSPHINX", "0").lower() in ("1", "true", "yes"):
    intersphinx_mapping = _INTERSPHINX
else:
    intersphinx_mapping = {}
intersphinx_timeout = 10

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
suppress_warnings = []
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
