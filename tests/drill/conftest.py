"""The demo drill, run once through the real ``garde drill`` script, for the tests that read
its report (the end-to-end test and the browser test)."""

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
    json_report: Path


@pytest.fixture(scope="session")
def demo_run(tmp_path_factory: pytest.TempPathFactory) -> DemoRun:
    directory = tmp_path_factory.mktemp("demo-drill")
    json_report = directory / "copy.json"
    process = subprocess.run(
        [sys.executable, "-m", "garde", "drill", "demo", "--report-dir", str(directory / "out"),
         "--json-report", str(json_report), "--seed", "7"],
        capture_output=True, text=True, timeout=150, check=False,
    )  # fmt: skip
    return DemoRun(process, directory / "out", json_report)
