"""Shared fixtures: the shipped catalog, loaded once."""

from __future__ import annotations

import pytest

from garde.catalog import Catalog, load_catalog


@pytest.fixture(scope="session")
def belgium() -> Catalog:
    return load_catalog("belgium", env={})
