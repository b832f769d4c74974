"""``garde drill --list`` and ``--check`` as a user runs them: the real script, its exit codes."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

from garde.drill import builtin_names
from tests.drill.test_scenario import BROKEN


def garde(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "garde", "drill", *args],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )


def test_list_gives_one_line_per_built_in_with_its_duration_at_scale() -> None:
    proc = garde("--list")
    assert proc.returncode == 0, proc.stderr
    lines = proc.stdout.splitlines()
    assert [line.split()[0] for line in lines] == builtin_names()
    demo = next(line for line in lines if line.startswith("demo "))
    assert " 30s " in demo and "Recip-e" in demo


def test_check_of_a_built_in_is_valid() -> None:
    proc = garde("mass-recovery", "--check")
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert "mass-recovery: valid" in proc.stdout and "24 gateway(s)" in proc.stdout


def test_check_of_a_broken_file_lists_every_problem_and_exits_2(tmp_path: Path) -> None:
    broken = tmp_path / "broken.yaml"
    broken.write_text(BROKEN, encoding="utf-8")
    proc = garde(str(broken), "--check")
    assert proc.returncode == 2
    assert "Traceback" not in proc.stdout + proc.stderr
    assert "has 5 problems" in proc.stdout
    assert f"{broken}:14:5: timeline[0].service: unknown service 'insurabilty'" in proc.stdout


def test_check_of_a_missing_file_names_the_built_ins() -> None:
    proc = garde("no-such-drill.yaml", "--check")
    assert proc.returncode == 2 and "Traceback" not in proc.stderr
    assert "cannot read the scenario" in proc.stdout and "demo" in proc.stdout
