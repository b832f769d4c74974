"""Fixtures of the gateway's tests (the doubles themselves are in doubles.py)."""

from __future__ import annotations

import pytest

from garde.catalog import Catalog, load_catalog
from garde.gateway.config import GatewayConfig
from garde.gateway.handler import Gateway
from tests.gateway.doubles import FakeTransport, MemoryJournal


@pytest.fixture(scope="session")
def catalog() -> Catalog:
    return load_catalog("belgium")


@pytest.fixture
def transport() -> FakeTransport:
    return FakeTransport()


@pytest.fixture
def journal() -> MemoryJournal:
    return MemoryJournal()


@pytest.fixture
def gateway(catalog: Catalog, transport: FakeTransport, journal: MemoryJournal) -> Gateway:
    return Gateway(catalog, transport, GatewayConfig(health_checks=False), journal)
