"""``garde lab``: run the simulated chain, break it on command, read its ledger.

``garde lab up`` runs the lab in the foreground; the other commands talk to a running lab
through its control API (``--control``, default http://127.0.0.1:18000).
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import signal
import sys
import urllib.error
import urllib.parse
import urllib.request
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import click
import yaml
from rich.table import Table

from garde.catalog import parse_duration
from garde.cli.common import catalog_option, console, json_option, load, log_options, print_json
from garde.errors import LabError, UsageError
from garde.locales import from_rfc3339
from garde.loop import run_loop
from garde.masking import mask_text

DEFAULT_CONTROL = "http://127.0.0.1:18000"


def control_option(function: Any) -> Any:
    return click.option(
        "--control",
        "control",
        default=DEFAULT_CONTROL,
        show_default=True,
        envvar="GARDE_LAB_CONTROL",
        help="URL of the lab control API (env GARDE_LAB_CONTROL).",
    )(function)


def _duration(value: str | None, name: str) -> float | None:
    if value is None:
        return None
    try:
        return parse_duration(value)
    except ValueError as exc:
        raise click.BadParameter(str(exc), param_hint=name) from None


@click.group()
def lab() -> None:
    """Run the simulated chain, inject faults, read the ground-truth ledger."""


@lab.command()
@log_options
@catalog_option
@click.option("--host", default="127.0.0.1", show_default=True, help="Loopback address to bind.")
@click.option(
    "--base-port",
    type=click.IntRange(min=0, max=65000),
    default=18000,
    show_default=True,
    help="Control API port; every service port shifts by (N - 18000). 0: free ports.",
)
@click.option("--token-validity", help="Validity of STS tokens, e.g. 5m (default: catalog's).")
@click.option("--efact-ack-delay", default="5s", show_default=True, help="eFact ack delay.")
@click.option(
    "--chapter4-delay", default="10s", show_default=True, help="Chapter IV decision delay."
)
@click.option(
    "--state",
    default=":memory:",
    show_default=True,
    help="SQLite file for the services' data and the ledger (default: in memory).",
)
@click.option(
    "--write-catalog",
    "catalog_out",
    default=None,
    metavar="FILE",
    help="Write the catalog with this lab's endpoints to FILE once it listens: give it to"
    " `garde gateway`, `garde monitor` or a drill as --catalog FILE (any --base-port).",
)
def up(
    catalog_source: str,
    host: str,
    base_port: int,
    token_validity: str | None,
    efact_ack_delay: str,
    chapter4_delay: str,
    state: str,
    catalog_out: str | None,
) -> None:
    """Start every service in every data center on loopback, until interrupted."""
    from garde.lab import Lab, LabSettings

    if host not in ("127.0.0.1", "::1", "localhost") and not host.startswith("127."):
        raise UsageError(f"the lab binds loopback only (127.0.0.0/8 or ::1), not {host!r}")
    target = _writable(catalog_out) if catalog_out else None
    settings = LabSettings(
        efact_ack_delay=_duration(efact_ack_delay, "--efact-ack-delay") or 0.0,
        chapter4_decision_delay=_duration(chapter4_delay, "--chapter4-delay") or 0.0,
    )
    running = Lab(
        load(catalog_source),
        host=host,
        base_port=base_port,
        token_validity=_duration(token_validity, "--token-validity"),
        settings=settings,
        database=state,
    )

    async def main() -> None:
        stop = asyncio.Event()
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGINT, signal.SIGTERM):
            with contextlib.suppress(NotImplementedError):
                loop.add_signal_handler(sig, stop.set)
        async with running:
            if target is not None:
                _write_catalog(running.catalog.with_endpoints(running.endpoints), target)
            _print_endpoints(running.status(), running.control_url)
            if target is not None:
                console().print(f"catalog with these endpoints written to {target}")
            sys.stdout.flush()
            await stop.wait()
        console().print("lab stopped")

    run_loop(main())


def _writable(name: str) -> Path:
    """Where ``--write-catalog`` goes, checked before the lab starts."""
    path = Path(name)
    if path.is_dir():
        raise UsageError(f"--write-catalog {name}: is a directory; give a file name (lab.yaml)")
    if not path.parent.exists():
        raise UsageError(
            f"--write-catalog {name}: the directory {path.parent} does not exist; create it"
            " or write the catalog elsewhere"
        )
    return path


def _write_catalog(catalog: Any, path: Path) -> None:
    """The catalog as the lab serves it: a complete file, loaded like any other."""
    data = catalog.model_dump(mode="json", by_alias=True, exclude_none=True)
    text = (
        "# Written by `garde lab up --write-catalog`: the lab's endpoints on this machine.\n"
        + yaml.safe_dump(data, sort_keys=False, allow_unicode=True)
    )
    temporary = path.with_name(path.name + ".tmp")
    temporary.write_text(text, encoding="utf-8")
    temporary.replace(path)  # a reader never sees half a file


def _print_endpoints(entries: list[dict[str, Any]], control_url: str) -> None:
    out = console()
    table = Table(title="garde lab: simulated chain on loopback")
    for column in ("service", "dc", "endpoint", "faults"):
        table.add_column(column)
    for entry in entries:
        faults = ", ".join(_fault_text(f) for f in entry["faults"]) or "–"
        table.add_row(entry["service"], entry["dc"], entry["url"], faults)
    out.print(table)
    out.print(f"control API: {control_url}  (OpenAPI: {control_url}/openapi.json)")
    out.print("Ctrl-C to stop.")


def _fault_text(fault: dict[str, Any]) -> str:
    options = ", ".join(f"{k}={v}" for k, v in fault.items() if k != "kind")
    return f"{fault['kind']}({options})" if options else str(fault["kind"])


def _call(control: str, method: str, path: str, body: Any = None) -> Any:
    url = control.rstrip("/") + path
    data = None if body is None else json.dumps(body).encode()
    request = urllib.request.Request(url, data=data, method=method)  # noqa: S310 (loopback URL)
    request.add_header("Content-Type", "application/json")
    try:
        with urllib.request.urlopen(request, timeout=10) as response:  # noqa: S310 (loopback URL)
            raw = response.read()
            if "ndjson" in (response.headers.get("Content-Type") or ""):
                return raw.decode()
            return json.loads(raw)
    except urllib.error.HTTPError as exc:
        try:
            message = json.loads(exc.read()).get("error", exc.reason)
        except ValueError:
            message = exc.reason
        raise UsageError(f"the lab refused: {message}") from None
    except (urllib.error.URLError, OSError) as exc:
        raise LabError(
            f"no lab answers at {control} ({exc}): start one with `garde lab up`,"
            " or point --control at it"
        ) from None


@lab.command()
@control_option
@json_option
def status(control: str, as_json: bool) -> None:
    """List every (service, dc) with its endpoint and active faults."""
    entries = _call(control, "GET", "/status")
    if as_json:
        print_json(entries)
        return
    _print_endpoints(entries, control)


@lab.command()
@click.argument("service")
@click.argument("dc")
@click.argument(
    "kind", type=click.Choice(["down", "blackhole", "latency", "errors", "reset", "slow", "flap"])
)
@click.option("--latency", help="latency: delay per request, e.g. 200ms.")
@click.option("--jitter", help="latency: random ± added to the delay, e.g. 50ms.")
@click.option("--rate", type=float, help="errors/reset: share of requests hit, 0..1.")
@click.option(
    "--status", "status_", type=click.Choice(["500", "503", "soap"]), help="errors: answer."
)
@click.option("--after", type=int, help="reset: bytes of the answer passed before the cut.")
@click.option("--bandwidth", type=int, help="slow: bytes per second.")
@click.option("--period", help="flap: full down+up cycle, e.g. 10s.")
@click.option("--seed", type=int, help="errors/reset: random seed, for reproducible drills.")
@click.option("--for", "duration", help="Heal by itself after this long, e.g. 30s.")
@control_option
@json_option
def fault(
    service: str,
    dc: str,
    kind: str,
    latency: str | None,
    jitter: str | None,
    rate: float | None,
    status_: str | None,
    after: int | None,
    bandwidth: int | None,
    period: str | None,
    seed: int | None,
    duration: str | None,
    control: str,
    as_json: bool,
) -> None:
    """Inject fault KIND in front of SERVICE in data center DC."""
    options = {
        "latency": latency,
        "jitter": jitter,
        "rate": rate,
        "status": status_,
        "after": after,
        "bandwidth": bandwidth,
        "period": period,
        "seed": seed,
        "for": duration,
    }
    body: dict[str, Any] = {"service": service, "dc": dc, "kind": kind}
    body.update({k: v for k, v in options.items() if v is not None})
    result = _call(control, "POST", "/faults", body)
    if as_json:
        print_json(result)
        return
    fault_view = {k: v for k, v in result.items() if k not in ("service", "dc")}
    console().print(f"{service}/{dc}: {_fault_text(fault_view)}")


@lab.command()
@click.argument("service", required=False)
@click.argument("dc", required=False)
@click.option("--kind", help="Heal only this kind of fault.")
@control_option
def heal(service: str | None, dc: str | None, kind: str | None, control: str) -> None:
    """Remove faults: all, of SERVICE, or of SERVICE in DC."""
    path = "/faults" + "".join(f"/{urllib.parse.quote(p)}" for p in (service, dc) if p)
    if kind:
        path += "?kind=" + urllib.parse.quote(kind)
    result = _call(control, "DELETE", path)
    console().print(f"healed {result['healed']} fault(s)")


@lab.command()
@click.option("--duplicates", is_flag=True, help="Only business effects applied more than once.")
@click.option("--key", help="Effects with this idempotency or business key.")
@click.option("--service", help="Effects of this service.")
@click.option("--jsonl", is_flag=True, help="Every effect as JSON lines (the full export).")
@control_option
@json_option
def ledger(
    duplicates: bool,
    key: str | None,
    service: str | None,
    jsonl: bool,
    control: str,
    as_json: bool,
) -> None:
    """What the simulated chain really did: its business effects, or the duplicated ones."""
    if jsonl:
        sys.stdout.write(_call(control, "GET", "/ledger/export"))
        return
    if duplicates:
        found = _call(control, "GET", "/ledger/duplicates")["duplicates"]
        if as_json:
            print_json({"duplicates": found})
            return
        if not found:
            console().print("[green]no duplicates: no business effect was applied twice[/]")
            return
        table = Table(title=f"{len(found)} duplicated business effect(s)")
        for column in ("service", "effect", "business key", "count", "data centers"):
            table.add_column(column)
        for group in found:
            dcs = ", ".join(e["dc"] for e in group["effects"])
            table.add_row(
                group["service"],
                group["effect"],
                mask_text(group["business_key"]),
                str(group["count"]),
                dcs,
            )
        console().print(table)
        return
    query = {k: v for k, v in (("key", key), ("service", service)) if v}
    path = "/ledger" + ("?" + urllib.parse.urlencode(query) if query else "")
    effects = _call(control, "GET", path)["effects"]
    if as_json:
        print_json({"effects": effects})
        return
    table = Table(title=f"{len(effects)} business effect(s)")
    for column in ("#", "time (UTC)", "service", "operation", "effect", "dc", "idempotency key"):
        table.add_column(column)
    for effect in effects:
        at = datetime.fromtimestamp(from_rfc3339(effect["at"]), UTC).strftime("%H:%M:%S.%f")[:-3]
        table.add_row(
            str(effect["seq"]),
            at,
            effect["service"],
            effect["operation"],
            effect["effect"],
            effect["dc"],
            effect["idempotency_key"] or "–",
        )
    console().print(table)
