"""``python -m garde`` runs the command line."""

from __future__ import annotations

from garde.cli import main

main()
