"""The lab's documentation keeps up with its code."""

from __future__ import annotations

from pathlib import Path

from garde.catalog import Catalog
from garde.lab.describe import render_contracts_table, render_reference
from garde.lab.faults import FaultKind

DOCS = Path(__file__).resolve().parents[2] / "docs"


def test_envelope_reference_is_generated_from_the_code(belgium: Catalog) -> None:
    """docs/lab-envelopes.md is what `python -m garde.lab.describe` writes today."""
    written = (DOCS / "lab-envelopes.md").read_text(encoding="utf-8")
    assert written == render_reference(belgium), (
        "regenerate: python -m garde.lab.describe > docs/lab-envelopes.md"
    )


def test_every_operation_and_fault_kind_is_documented(belgium: Catalog) -> None:
    reference = (DOCS / "lab-envelopes.md").read_text(encoding="utf-8")
    guide = (DOCS / "lab.md").read_text(encoding="utf-8")
    for service in belgium.services.values():
        for operation in service.operations:
            assert f"### `{operation}`" in reference, operation
    for kind in FaultKind:
        assert f"| `{kind.value}` |" in guide, kind


def test_the_contracts_table_of_lab_md_is_generated_from_the_code(belgium: Catalog) -> None:
    """docs/lab.md's table of full and per-contract operations is the code's."""
    guide = (DOCS / "lab.md").read_text(encoding="utf-8")
    start = guide.index("<!-- contracts-table:")
    table = guide[guide.index("\n", start) + 1 : guide.index("<!-- /contracts-table -->")]
    assert table == render_contracts_table(belgium), (
        "regenerate the table: python -m garde.lab.describe --table"
    )
