"""kill -9 under load: every write a client saw acknowledged reaches the service once."""

from __future__ import annotations

import asyncio
from pathlib import Path

import pytest

from garde.catalog import Catalog
from garde.lab import lab_in_thread

from .crashkit import crash_run

pytestmark = pytest.mark.e2e


def test_acknowledged_writes_survive_kill_9_and_arrive_once(
    belgium: Catalog, tmp_path: Path
) -> None:
    with lab_in_thread(belgium) as lab:
        report = asyncio.run(crash_run(lab, belgium, tmp_path, kills=20))
        assert report.kills == 20
        assert len(report.acknowledged) > 20, report
        assert report.missing == [], report.replay_output
        assert "still waiting 0" in report.replay_output
        assert report.doubled == []
        assert lab.ledger.duplicates() == []
