"""The files a ``garde gateway`` is started with: its catalog (wired to where the services
answer, the lab's endpoints in a drill or a test) and its settings file.

One writer for the drill's stack, the crash and real-client tests and the benchmarks, so
that a gateway started by any of them reads the same kind of files.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

import yaml

from garde.catalog import Catalog


def write_catalog(
    catalog: Catalog,
    path: Path,
    endpoints: Mapping[str, Mapping[str, str]] | None = None,
    adjust: Callable[[dict[str, Any]], None] | None = None,
) -> Path:
    """``catalog`` as YAML at ``path``; wired to ``endpoints`` (``{service: {dc: url}}``)
    when given; ``adjust`` may change the data before it is written (a test's variant)."""
    if endpoints is not None:
        catalog = catalog.with_endpoints({s: dict(dcs) for s, dcs in endpoints.items()})
    data = catalog.model_dump(mode="json", by_alias=True, exclude_none=True)
    if adjust is not None:
        adjust(data)
    path.write_text(yaml.safe_dump(data, sort_keys=False), encoding="utf-8")
    return path


def write_settings(path: Path, settings: Mapping[str, Any]) -> Path:
    """A gateway's settings file (``--config``)."""
    path.write_text(yaml.safe_dump(dict(settings), sort_keys=False), encoding="utf-8")
    return path


LAB_PIN = "1234"
"""The lab's STS takes any PIN: nothing real is protected by it."""


def eid_identity(nihii: str) -> dict[str, Any]:
    """The ``identities`` entry of a provider whose gateway holds an eID for it, in the lab."""
    return {nihii: {"primary": {"type": "eid", "secret": LAB_PIN}}}


def gateway_files(
    directory: Path,
    catalog: Catalog,
    settings: Mapping[str, Any],
    *,
    endpoints: Mapping[str, Mapping[str, str]] | None = None,
    adjust: Callable[[dict[str, Any]], None] | None = None,
    name: str = "gateway",
) -> tuple[Path, Path]:
    """``catalog.yaml`` and ``{name}.yaml`` in ``directory``: (catalog file, settings file)."""
    catalog_file = write_catalog(catalog, directory / "catalog.yaml", endpoints, adjust)
    return catalog_file, write_settings(directory / f"{name}.yaml", settings)
