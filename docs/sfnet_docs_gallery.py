"""Helpers for the sphinx-gallery of the sfnet documentation.

`figure_scraper` -- an image scraper for figures that pyplot does not manage.
sfnet's plotting functions return `matplotlib.figure.Figure` objects created
without pyplot (so the library never touches global pyplot state).  The
standard matplotlib scraper only sees pyplot figures, so this one looks for
new ``Figure`` objects among the example's variables after each code block
and saves them into the gallery.  It must run *before* the matplotlib
scraper.

`ExampleOrder` -- the reading order of the examples in the gallery.

``conf.py`` refers to both by qualified name (``sfnet_docs_gallery.<name>``),
which keeps the Sphinx configuration picklable.
"""

import os
import weakref
from pathlib import PurePosixPath

__all__ = ["figure_scraper", "ExampleOrder"]

# Figures already written into the gallery (weak: they are freed with their example).
_SEEN = weakref.WeakSet()


def _candidate_figures(namespace):
    from matplotlib.figure import Figure

    found = []
    for value in list(namespace.values()):
        values = value if isinstance(value, (list, tuple)) else (value,)
        for obj in values:
            if not isinstance(obj, Figure) or obj in _SEEN:
                continue
            if getattr(obj.canvas, "manager", None) is not None:
                # A pyplot figure: the matplotlib scraper (which runs after this
                # one) saves and closes it.  Remember it, so that it is not
                # picked up again once closing has detached it from pyplot.
                _SEEN.add(obj)
            elif all(obj is not f for f in found):
                found.append(obj)
    return found


def figure_scraper(block, block_vars, gallery_conf, **kwargs):
    """Save new non-pyplot figures of this code block; return their reST."""
    from sphinx_gallery.scrapers import figure_rst

    figures = _candidate_figures(block_vars["example_globals"])
    if not figures:
        return ""
    paths = []
    for fig, path in zip(figures, block_vars["image_path_iterator"]):
        path = PurePosixPath(path)
        fig.savefig(path, dpi=kwargs.get("dpi", 150))
        _SEEN.add(fig)
        paths.append(path)
    return figure_rst(paths, gallery_conf["src_dir"])


class ExampleOrder:
    """Sort key for ``within_subsection_order``: from first steps to real data."""

    ORDER = (
        "plot_quickstart.py",
        "plot_mock_galaxies.py",
        "plot_bpt_features.py",
        "plot_interpret_features.py",
        "plot_seed_checkpoint_and_zenodo.py",
        "fetch_sdss.py",
    )

    def __init__(self, src_dir):
        self.src_dir = src_dir

    def __call__(self, filename):
        name = os.path.basename(filename)
        rank = self.ORDER.index(name) if name in self.ORDER else len(self.ORDER)
        return (rank, name)

    def __repr__(self):
        return f"<{type(self).__name__}>"
