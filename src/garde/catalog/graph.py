"""The dependency graph of a catalog as Graphviz dot or Mermaid text."""

from __future__ import annotations

from garde.catalog.model import Catalog

FORMATS = ("dot", "mermaid")


def render_graph(catalog: Catalog, fmt: str) -> str:
    """An edge from each service to what it depends on; a node per service."""
    if fmt == "dot":
        return _dot(catalog)
    if fmt == "mermaid":
        return _mermaid(catalog)
    raise ValueError(f"unknown graph format {fmt!r}; use one of {', '.join(FORMATS)}")


def _dot(catalog: Catalog) -> str:
    lines = [f'digraph "{catalog.name}" {{', "  rankdir=LR;", "  node [shape=box];"]
    for sid, service in catalog.services.items():
        dcs = ", ".join(service.endpoints)
        lines.append(f'  "{sid}" [label="{service.name}\\n({dcs})"];')
    for sid, service in catalog.services.items():
        lines.extend(f'  "{sid}" -> "{dep}";' for dep in service.depends_on)
    lines.append("}")
    return "\n".join(lines) + "\n"


def _mermaid(catalog: Catalog) -> str:
    def node(sid: str) -> str:
        return sid.replace("-", "_")

    lines = ["graph LR"]
    for sid, service in catalog.services.items():
        label = service.name.replace('"', "'")
        lines.append(f'  {node(sid)}["{label}"]')
    for sid, service in catalog.services.items():
        lines.extend(f"  {node(sid)} --> {node(dep)}" for dep in service.depends_on)
    return "\n".join(lines) + "\n"
