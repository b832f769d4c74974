"""Fixtures of the lab's tests: a lab on free loopback ports with a clock the test moves."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from garde.catalog import Catalog
from garde.lab import Lab, LabSettings, lab_in_thread
from tests.lab.labkit import Client, Clock


@pytest.fixture
def clock() -> Clock:
    return Clock()


@pytest.fixture
def loop_kind() -> str:
    """Which event loop runs the lab (``-tcp``: proxies reach simulators over TCP, not memory).

    The fault tests run on each (`garde lab up` uses uvloop and the in-memory link).
    """
    return "asyncio"


@pytest.fixture
def lab(belgium: Catalog, clock: Clock, loop_kind: str) -> Iterator[Lab]:
    settings = LabSettings(efact_ack_delay=60, chapter4_decision_delay=120)
    with lab_in_thread(
        belgium,
        base_port=0,
        clock=clock,
        settings=settings,
        uvloop=loop_kind.startswith("uvloop"),
        memory_link=not loop_kind.endswith("-tcp"),
    ) as running:
        yield running


@pytest.fixture
def client(lab: Lab) -> Client:
    return Client(lab)
