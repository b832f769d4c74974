"""``garde demo --no-serve``: the live story runs to its end and the ledger agrees."""

from __future__ import annotations

import pytest
from click.testing import CliRunner

from garde.cli import cli

pytestmark = pytest.mark.e2e


def test_the_demo_tells_the_story_and_nothing_is_lost_or_doubled() -> None:
    result = CliRunner().invoke(cli, ["demo", "--no-serve", "--minute", "10"])
    assert result.exit_code == 0, result.output
    for step in ("1. A normal morning", "2. Recip-e's primary", "3. Every data center", "4."):
        assert step in result.output
    assert "journaled with a receipt" in result.output
    assert "refused with the procedure" in result.output
    assert "Nothing the pharmacist or the GP did was lost" in result.output
