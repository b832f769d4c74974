"""Every command's failures as a user meets them: the real ``garde`` script, its exit code,
one message and no traceback; and the code is the one docs/cli.md's "Exit codes" table gives
(the table is read here, so the docs cannot drift from the code)."""

from __future__ import annotations

import re
import socket
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import click
import pytest

from garde.cli import cli
from tests.drill.test_scenario import BROKEN

DOCS = Path(__file__).resolve().parent.parent / "docs"

CORRECTABLE = "input you can correct"
COMMAND_LINE = "the command line is wrong"
FAILED = "garde or the chain failed"
DRILL_INVALID = "the scenario or the command line is wrong"


def _tables(text: str) -> list[dict[str, int]]:
    """Every "| code | meaning |" table of a page: {bold meaning: code}."""
    found: list[dict[str, int]] = []
    current: dict[str, int] | None = None
    for line in text.splitlines():
        if line.startswith("| code | meaning"):
            current = {}
            found.append(current)
            continue
        row = re.match(r"\| (\d+) \| \*\*(.+?)\*\* \|", line)
        if current is not None and row:
            current[row[2]] = int(row[1])
        elif current is not None and not line.startswith("|"):
            current = None
    return found


def documented() -> tuple[dict[str, int], dict[str, int]]:
    """The general table and the drill's, as docs/cli.md gives them."""
    general, drill = _tables((DOCS / "cli.md").read_text(encoding="utf-8"))
    return general, drill


def _leaves(group: click.Group, prefix: tuple[str, ...] = ()) -> Iterator[tuple[str, ...]]:
    for name, command in sorted(group.commands.items()):
        if isinstance(command, click.Group):
            yield from _leaves(command, (*prefix, name))
        else:
            yield (*prefix, name)


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


@pytest.fixture(scope="module")
def files(tmp_path_factory: pytest.TempPathFactory) -> dict[str, str]:
    tmp = tmp_path_factory.mktemp("doors")
    (tmp / "gateway.yaml").write_text(
        "admin_tokn: x\noutlier:\n  base_ejection: 1x\nmax_body: lots\n", encoding="utf-8"
    )
    (tmp / "probes.yaml").write_text("latency_factor: fast\nzzz: 1\n", encoding="utf-8")
    (tmp / "catalog.yaml").write_text("name: x\nservices: [\n", encoding="utf-8")
    (tmp / "scenario.yaml").write_text(BROKEN, encoding="utf-8")
    return {
        "tmp": str(tmp),
        "missing": str(tmp / "no-such-dir"),
        "dead": f"http://127.0.0.1:{_free_port()}",
        "db": f"sqlite:///{tmp}/monitor.db",
        "journal": f"sqlite:///{tmp}/no-such-dir/journal.db",
        "pg_dead": f"postgresql://garde@127.0.0.1:{_free_port()}/test",
    }


# (command line, what the docs table calls it). {name} is filled from ``files``.
CASES: list[tuple[str, str]] = [
    ("catalog check {tmp}/catalog.yaml", CORRECTABLE),
    ("catalog coverage --catalog {tmp}/no-such-catalog.yaml", CORRECTABLE),
    ("catalog graph --format png", COMMAND_LINE),
    ("catalog impact no-such-service", CORRECTABLE),
    ("gateway --config {tmp}/gateway.yaml --journal none", CORRECTABLE),
    ("gateway --journal mysql://garde@localhost/journal", CORRECTABLE),
    ("gateway --journal sqlite:///{tmp}/j.db --journal-key-file {missing}/keys", CORRECTABLE),
    ("gateway --journal-no-encryption --journal {journal}", CORRECTABLE),
    ("gateway --target-group no-such-group --journal none", CORRECTABLE),
    ("gateway --port abc", COMMAND_LINE),
    ("monitor --probes {tmp}/probes.yaml --check", CORRECTABLE),
    ("monitor --db sqlite:///{missing}/monitor.db --check", CORRECTABLE),
    ("monitor --keep-raw 1x --check", CORRECTABLE),
    ("probe --location ghent --push {dead} --token t --probes {tmp}/probes.yaml", CORRECTABLE),
    ("probe --location ghent --token t", COMMAND_LINE),
    ("incident list --db {pg_dead}", FAILED),
    ("incident show 99 --db {db}", CORRECTABLE),
    ("incident update 99 --db {db}", COMMAND_LINE),
    (
        "maintenance add --title x --scope no-such --start 2026-01-01T00:00Z"
        " --end 2026-01-01T01:00Z --db {db}",
        CORRECTABLE,
    ),
    ("maintenance list --db mysql://x/y", CORRECTABLE),
    ("maintenance cancel 99 --db {db}", CORRECTABLE),
    ("sla --month 2026-13 --db {db}", CORRECTABLE),
    ("journal ls --journal {journal}", CORRECTABLE),
    ("journal ls --journal {pg_dead}", FAILED),
    ("journal show x --journal {journal}", CORRECTABLE),
    ("journal retry x --journal {journal}", CORRECTABLE),
    ("journal discard x --journal {journal}", COMMAND_LINE),
    ("journal export --format csv --journal {journal}", COMMAND_LINE),
    ("journal audit --journal {journal}", CORRECTABLE),
    ("journal keygen --key-file {missing}/keys", CORRECTABLE),
    ("journal rekey --journal {journal}", CORRECTABLE),
    ("journal replay --now --journal {journal} --journal-no-encryption", CORRECTABLE),
    ("lab up --write-catalog {missing}/lab.yaml", CORRECTABLE),
    ("lab up --host 10.1.2.3", CORRECTABLE),
    ("lab up --base-port 0 --state {missing}/lab.sqlite", CORRECTABLE),
    ("lab status --control {dead}", FAILED),
    ("lab fault recipe-executor dc1 down --control {dead}", FAILED),
    ("lab fault recipe-executor dc1 melt --control {dead}", COMMAND_LINE),
    ("lab heal --control {dead}", FAILED),
    ("lab ledger --control {dead}", FAILED),
]

DRILL_CASES: list[tuple[str, str]] = [
    ("drill {tmp}/scenario.yaml --check", DRILL_INVALID),
    ("drill no-such-scenario", DRILL_INVALID),
    ("drill demo --json-report {missing}/report.json", DRILL_INVALID),
    ("drill", DRILL_INVALID),
    ("drill demo --seed many", DRILL_INVALID),
    ("demo --lang de", DRILL_INVALID),
]


def garde(line: str, files: dict[str, str]) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "garde", *line.format(**files).split()],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
        cwd=files["tmp"],
    )


def test_the_docs_give_one_code_per_kind_of_failure() -> None:
    general, drill = documented()
    assert general == {
        "done": 0,
        CORRECTABLE: 1,
        COMMAND_LINE: 2,
        FAILED: 3,
        "interrupted": 130,
    }
    assert drill[DRILL_INVALID] == 2 and len(set(drill.values())) == len(drill) == 4
    # docs/drills.md has the drill's table too: the same codes.
    pages = (DOCS / "drills.md").read_text(encoding="utf-8")
    drills_codes = {int(c) for c in re.findall(r"^\| (\d) \| ", pages, re.MULTILINE)}
    assert drills_codes == set(drill.values())


def test_every_command_is_tried_here() -> None:
    tried = {tuple(line.split()[:2]) for line, _ in CASES + DRILL_CASES}
    tried |= {(line.split()[0],) for line, _ in CASES + DRILL_CASES}
    untried = [" ".join(leaf) for leaf in _leaves(cli) if leaf not in tried]
    assert not untried, f"add these commands' failures to CASES: {untried}"


@pytest.mark.parametrize(("line", "kind"), CASES + DRILL_CASES)
def test_a_failure_exits_with_the_documented_code(
    line: str, kind: str, files: dict[str, str]
) -> None:
    general, drill = documented()
    expected = (drill if kind == DRILL_INVALID else general)[kind]
    done = garde(line, files)
    said = done.stdout + done.stderr
    assert done.returncode == expected, f"garde {line}: {done.returncode}\n{said}"
    assert "Traceback" not in said
    assert said.strip(), "a failure says something"
    if kind == COMMAND_LINE:
        assert "Usage: garde" in done.stderr  # click's message: what to correct, and --help
    else:
        # click's, or garde's own message (a warning logged before it may precede it)
        assert any(m in said for m in ("Usage: garde", "garde: ", "problem")), said


@pytest.mark.parametrize(
    ("line", "flag"),
    [
        ("gateway --journal none --port {port}", "--port"),
        ("monitor --db sqlite:///{tmp}/port.db --port {port}", "--port"),
        ("lab up --base-port {port}", "--base-port"),
    ],
)
def test_a_port_in_use_is_input_you_can_correct(
    line: str, flag: str, files: dict[str, str]
) -> None:
    general, _ = documented()
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        done = garde(line.replace("{port}", str(port)), files)
    assert done.returncode == general[CORRECTABLE], done.stderr
    assert "the port is in use" in done.stderr and "Traceback" not in done.stderr
    assert f"choose another with {flag}" in done.stderr


def test_an_unknown_option_is_a_command_line_error_for_every_command() -> None:
    """Click's own code, whatever the command: run in-process through the entry point."""
    general, _ = documented()
    from garde.cli import main

    wrong = []
    for leaf in _leaves(cli):
        try:
            main([*leaf, "--no-such-option"])
        except SystemExit as exc:
            if exc.code != general[COMMAND_LINE]:
                wrong.append(f"garde {' '.join(leaf)}: {exc.code}")
        else:
            wrong.append(f"garde {' '.join(leaf)}: no exit")
    assert not wrong, wrong
