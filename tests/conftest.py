"""Shared pytest fixtures and the test-session header."""

import pytest

import sfnet

try:
    from pytest_astropy_header.display import PYTEST_HEADER_MODULES, TESTED_VERSIONS
except ImportError:  # the header plugin is optional (it is in the "test" extra)
    PYTEST_HEADER_MODULES, TESTED_VERSIONS = {}, {}


def pytest_configure(config):
    """Show the versions that matter for sfnet in the header (pytest-astropy-header)."""
    config.option.astropy_header = True
    PYTEST_HEADER_MODULES.clear()
    PYTEST_HEADER_MODULES.update({
        "numpy": "numpy", "scipy": "scipy", "astropy": "astropy", "astroquery": "astroquery",
        "torch": "torch", "torchvision": "torchvision", "matplotlib": "matplotlib",
        "pandas": "pandas",
    })
    TESTED_VERSIONS["sfnet"] = sfnet.__version__


@pytest.fixture(autouse=True, scope="session")
def _isolated_cache_dir(tmp_path_factory):
    """Keep caches (e.g. decoded image folders) out of the user's cache directory."""
    with sfnet.conf.set_temp("cache_dir", str(tmp_path_factory.mktemp("sfnet-cache"))):
        yield
