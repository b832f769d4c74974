"""Each part's face: what the CLI and the other parts may use, so the inside may change."""

from __future__ import annotations

import ast
import importlib
import subprocess
import sys
from pathlib import Path

import pytest

SRC = Path(__file__).resolve().parents[1] / "src" / "garde"
PARTS = ("gateway", "journal", "monitor", "lab", "drill")
"""The parts whose face loads on first use."""
ALL_PARTS = (*PARTS, "catalog", "soap")


@pytest.mark.parametrize("part", PARTS)
def test_every_name_of_a_face_is_what_its_module_defines(part: str) -> None:
    face = importlib.import_module(f"garde.{part}")
    assert sorted(face.__all__) == sorted(face._FACE), "__all__ and the table agree"
    for name, where in face._FACE.items():
        assert getattr(face, name) is getattr(importlib.import_module(where), name), name
    with pytest.raises(AttributeError, match="no attribute"):
        face.no_such_name  # noqa: B018


def test_parts_and_the_command_line_use_only_each_others_faces() -> None:
    """``garde.cli`` and every part import ``garde.journal``, never ``garde.journal.base``:
    the inside of a part is free to change. Tests may reach inside; the code may not."""
    inside = []
    for path in sorted(SRC.rglob("*.py")):
        own = path.relative_to(SRC).parts[0]
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            if isinstance(node, ast.ImportFrom) and node.module:
                parts = node.module.split(".")
                crossing = len(parts) > 2 and parts[0] == "garde" and parts[1] != own
                if crossing and parts[1] in ALL_PARTS:
                    where = path.relative_to(SRC).as_posix()
                    inside.append(f"{where}:{node.lineno} {node.module}")
    assert inside == [], "import these through the part's face (garde.<part>)"


def test_the_catalog_face_says_what_is_public() -> None:
    import garde.catalog

    for name in garde.catalog.__all__:
        assert hasattr(garde.catalog, name), name


def test_a_face_costs_nothing_until_a_name_is_used() -> None:
    code = (
        "import sys, garde.gateway, garde.journal, garde.monitor, garde.lab;"
        "print(sorted(m for m in sys.modules if m.startswith(('garde.gateway.',"
        " 'garde.journal.', 'garde.monitor.', 'garde.lab.'))))"
    )
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60)
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == "[]", done.stdout


def test_renamed_names_still_answer_with_a_deprecation_warning() -> None:
    import garde.catalog
    import garde.catalog.model

    with pytest.warns(DeprecationWarning, match="renamed garde.catalog.FailedService"):
        assert garde.catalog.Failure is garde.catalog.FailedService  # type: ignore[attr-defined]
    with pytest.warns(DeprecationWarning, match="WireProtocol"):
        assert garde.catalog.model.Protocol is garde.catalog.model.WireProtocol  # type: ignore[attr-defined]
    with pytest.raises(AttributeError):
        garde.catalog.model.NoSuchThing  # type: ignore[attr-defined]  # noqa: B018
