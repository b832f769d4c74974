"""What every handler of the monitor's web side shares: the monitor, the templates, the page's
history cache, the operator's token and the public address."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

from jinja2 import Environment, FileSystemLoader, select_autoescape
from starlette.requests import Request

from garde.monitor.service import Monitor
from garde.monitor.web.rendered import RenderedPages
from garde.monitor.web.requests import bound_url
from garde.monitor.web.views import History

TEMPLATES = Path(__file__).parent / "templates"


def templates() -> Environment:
    return Environment(
        loader=FileSystemLoader(TEMPLATES),
        autoescape=select_autoescape(["html"]),
        trim_blocks=True,
        lstrip_blocks=True,
    )


@dataclass
class Site:
    monitor: Monitor
    admin_token: str | None = None
    """Operator writes (incident updates, maintenance) need it; None disables them."""
    public_url: str | None = None
    """The base URL the monitor is reached at, for the Atom feed's ids and links."""
    env: Environment = field(default_factory=templates)
    history: History = field(default_factory=History)
    rendered: RenderedPages = field(default_factory=RenderedPages)
    """The status and profession pages, rendered once per snapshot and language."""
    writes: int = 0
    """Operator writes so far (incident updates, maintenance): a page shows the state of
    the chain (the snapshot) and of these."""

    def changed(self) -> None:
        """An operator write: the pages rendered before it are out of date."""
        self.writes += 1

    def base_url(self, request: Request) -> str:
        """``public_url``, else the address the request reached (the listening socket's),
        never the request's ``Host`` header, which the client chooses."""
        return self.public_url or bound_url(request)
