"""The demo drill, run once through the real ``garde demo --no-serve`` (the ``demo``
scenario), for the tests that read its story and report (end to end, and the browser)."""

from __future__ import annotations

import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

import pytest


@dataclass(frozen=True)
class DemoRun:
    process: subprocess.CompletedProcess[str]
    directory: Path


@pytest.fixture(scope="session")
def demo_run(tmp_path_factory: pytest.TempPathFactory) -> DemoRun:
    directory = tmp_path_factory.mktemp("demo-drill")
    process = subprocess.run(
        [sys.executable, "-m", "garde", "demo", "--no-serve", "--report-dir",
         str(directory / "out")],
        capture_output=True, text=True, timeout=150, check=False,
    )  # fmt: skip
    return DemoRun(process, directory / "out")
