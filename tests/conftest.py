"""Shared pytest fixtures."""

import pytest

import sfnet


@pytest.fixture(autouse=True, scope="session")
def _isolated_cache_dir(tmp_path_factory):
    """Keep caches (e.g. decoded image folders) out of the user's cache directory."""
    with sfnet.conf.set_temp("cache_dir", str(tmp_path_factory.mktemp("sfnet-cache"))):
        yield
