"""The lab control API: endpoints and faults, the ledger; JSON over HTTP, described by OpenAPI.

Routes (all JSON unless said):

- ``GET /status``: ``[{"service", "dc", "url", "faults"}]``; ``GET /endpoints``.
- ``POST /faults`` with ``{"service", "dc", "kind", ...options, "for"}``: inject a fault.
- ``DELETE /faults[/{service}[/{dc}]][?kind=K]``: heal; answers ``{"healed": n}``.
- ``PUT /capacity/{service}[/{dc}]`` with ``{"rate", "retry_after"}``: beyond ``rate``
  requests per second the service answers 503 with ``Retry-After``; ``DELETE
  /capacity[/{service}[/{dc}]]`` lifts it; ``GET /load``: the load offered per second.
- ``GET /ledger?key=&service=&effect=``: effects; ``GET /ledger/duplicates``;
  ``GET /ledger/export``: every effect as JSON lines (``application/x-ndjson``).
- ``GET /openapi.json``: this API described; ``GET /health``.

A request whose ``Origin`` is not the lab's own is refused (403), and a body must be sent as
``application/json`` (415): a web page open in the tester's browser could otherwise inject
faults with a cross-site form post (browsers send those as ``text/plain`` without asking).
"""

from __future__ import annotations

import json
from typing import TYPE_CHECKING, Any
from urllib.parse import urlsplit

from garde.errors import GardeError
from garde.lab.faults import OPTIONS, FaultKind
from garde.lab.http import Request, Response
from garde.locales import moment_schema

if TYPE_CHECKING:
    from garde.lab.runtime import Lab

JSON = "application/json"


def _json(status: int, data: Any) -> Response:
    return Response(status, json.dumps(data, indent=1).encode() + b"\n", JSON)


def _error(status: int, message: str) -> Response:
    return _json(status, {"error": message})


class ControlApi:
    def __init__(self, lab: Lab) -> None:
        self.lab = lab

    def handle(self, request: Request) -> Response:
        parts = [p for p in request.path.split("/") if p]
        refused = self._refuse_cross_site(request)
        if refused is not None:
            return refused
        try:
            return self._route(request, parts)
        except GardeError as exc:
            return _error(exc.status if exc.status < 500 else 400, str(exc))

    def own_origins(self) -> set[str]:
        """``http://HOST:PORT`` of the control API, under each name of its loopback address."""
        parts = urlsplit(self.lab.control_url)
        names = {parts.hostname or "", "127.0.0.1", "localhost", "[::1]"}
        return {f"http://{name}:{parts.port}" for name in names if name}

    def _refuse_cross_site(self, request: Request) -> Response | None:
        origin = request.headers.get("origin")
        if origin is not None and origin.rstrip("/").lower() not in self.own_origins():
            return _error(
                403,
                f"cross-site request refused: Origin {origin} is not the lab's own"
                f" ({self.lab.control_url}); call the control API from garde lab, a script or a"
                " test (they send no Origin), not from a web page",
            )
        if request.method in ("POST", "PUT", "PATCH") or request.body:
            kind = request.headers.get("content-type", "").partition(";")[0].strip().lower()
            if kind != JSON:
                shown = f"Content-Type {kind}" if kind else "no Content-Type"
                return _error(
                    415,
                    f"the body must be JSON, sent with Content-Type: application/json (got"
                    f" {shown}); e.g. curl -H 'Content-Type: application/json' -d"
                    ' \'{"service": "hub", "dc": "dc1", "kind": "down"}\'',
                )
        return None

    def _route(self, request: Request, parts: list[str]) -> Response:
        method = request.method
        if method == "GET" and parts in ([], ["health"]):
            return _json(200, {"status": "ok", "control": self.lab.control_url})
        if method == "GET" and parts == ["openapi.json"]:
            return _json(200, openapi())
        if method == "GET" and parts == ["status"]:
            return _json(200, self.lab.status())
        if method == "GET" and parts == ["endpoints"]:
            return _json(200, self.lab.endpoints)
        if parts[:1] == ["faults"]:
            if method == "POST" and len(parts) == 1:
                return self._set_fault(request)
            if method == "DELETE" and len(parts) <= 3:
                scope = [*parts[1:3], None, None]
                healed = self.lab.faults.heal(scope[0], scope[1], kind=request.param("kind"))
                return _json(200, {"healed": healed})
            if method == "GET" and len(parts) == 1:
                return _json(200, [s for s in self.lab.status() if s["faults"]])
        if parts[:1] == ["capacity"]:
            if method == "PUT" and 2 <= len(parts) <= 3:
                return self._set_capacity(request, parts[1], parts[2] if len(parts) == 3 else None)
            if method == "DELETE" and len(parts) <= 3:
                scope = [*parts[1:3], None, None]
                return _json(200, {"cleared": self.lab.faults.clear_capacity(scope[0], scope[1])})
            if method == "GET" and len(parts) == 1:
                return _json(200, [s for s in self.lab.status() if s["capacity"]])
        if method == "GET" and parts == ["load"]:
            return _json(200, self.lab.faults.load())
        if method == "GET" and parts[:1] == ["ledger"]:
            return self._ledger(request, parts[1:])
        return _error(
            404 if method in ("GET", "POST", "PUT", "DELETE") else 405,
            f"no route {method} {request.path}; see GET /openapi.json",
        )

    @staticmethod
    def _object(request: Request, example: str) -> dict[str, Any] | Response:
        """The request's JSON object body, or the 400 that says what it should be."""
        try:
            body = json.loads(request.body or b"{}")
        except ValueError:
            return _error(400, f"the body must be JSON: {example}")
        if not isinstance(body, dict):
            return _error(400, "the body must be a JSON object")
        return body

    def _set_fault(self, request: Request) -> Response:
        body = self._object(request, '{"service", "dc", "kind", ...}')
        if isinstance(body, Response):
            return body
        missing = [k for k in ("service", "dc", "kind") if not isinstance(body.get(k), str)]
        if missing:
            return _error(400, f"missing {', '.join(missing)} (strings) in the body")
        service, dc, kind = body.pop("service"), body.pop("dc"), body.pop("kind")
        fault = self.lab.faults.set(service, dc, kind, **body)
        return _json(201, {"service": service, "dc": dc, **fault.as_json()})

    def _set_capacity(self, request: Request, service: str, dc: str | None) -> Response:
        body = self._object(request, '{"rate": 20, "retry_after": "1s"}')
        if isinstance(body, Response):
            return body
        capacity = self.lab.faults.set_capacity(service, dc, body)
        return _json(200, {"service": service, "dc": dc or "all", **capacity.as_json()})

    def _ledger(self, request: Request, rest: list[str]) -> Response:
        ledger = self.lab.ledger
        if rest == []:
            effects = ledger.effects(
                key=request.param("key"),
                service=request.param("service"),
                effect=request.param("effect"),
            )
            return _json(200, {"effects": [e.as_json() for e in effects]})
        if rest == ["duplicates"]:
            return _json(200, {"duplicates": [d.as_json() for d in ledger.duplicates()]})
        if rest == ["export"]:
            return Response(200, "".join(ledger.export_jsonl()).encode(), "application/x-ndjson")
        return _error(404, f"no route GET {request.path}; see GET /openapi.json")


def openapi() -> dict[str, Any]:
    """The OpenAPI 3.1 description of the control API."""
    fault_options = {
        "latency": {"type": "string", "example": "200ms"},
        "jitter": {"type": "string", "example": "50ms"},
        "rate": {"type": "number", "minimum": 0, "maximum": 1},
        "status": {"type": "string", "enum": ["500", "503", "soap"]},
        "after": {"type": "integer", "minimum": 0},
        "bandwidth": {"type": "integer", "minimum": 1, "description": "bytes per second"},
        "period": {"type": "string", "example": "10s"},
        "seed": {"type": "integer"},
        "for": {"type": "string", "example": "30s", "description": "heal after this long"},
    }
    fault = {
        "type": "object",
        "required": ["service", "dc", "kind"],
        "properties": {
            "service": {"type": "string", "example": "recipe-executor"},
            "dc": {"type": "string", "example": "dc1"},
            "kind": {"type": "string", "enum": [k.value for k in FaultKind]},
            **fault_options,
        },
        "description": "Options per kind: "
        + "; ".join(f"{k.value}: {', '.join(v) or 'none'}" for k, v in OPTIONS.items()),
    }
    effect = {
        "type": "object",
        "properties": {
            name: {"type": kind}
            for name, kind in (
                ("seq", "integer"),
                ("service", "string"),
                ("operation", "string"),
                ("effect", "string"),
                ("business_key", "string"),
                ("idempotency_key", "string"),
                ("dc", "string"),
                ("identity", "string"),
                ("detail", "object"),
            )
        }
        | moment_schema("at", "when the lab applied the effect"),
    }
    ok = {"description": "OK", "content": {JSON: {"schema": {"type": "object"}}}}
    bad = {"description": "bad request: the error says what to fix"}
    foreign = {"description": "an Origin other than the lab's own (a cross-site request)"}
    not_json = {"description": "a body not sent as Content-Type: application/json"}
    heal = {
        "summary": "Heal faults (optionally only of one kind)",
        "parameters": [{"name": "kind", "in": "query", "schema": {"type": "string"}}],
        "responses": {"200": ok, "400": bad},
    }
    path_params = [
        {"name": n, "in": "path", "required": True, "schema": {"type": "string"}}
        for n in ("service", "dc")
    ]
    limit = {
        "summary": "Limit the requests admitted per second (each data center, or one)",
        "requestBody": {
            "content": {
                JSON: {
                    "schema": {
                        "type": "object",
                        "required": ["rate"],
                        "properties": {
                            "rate": {"type": "number", "minimum": 1},
                            "retry_after": {"type": "string", "example": "1s"},
                        },
                    }
                }
            }
        },
        "responses": {"200": ok, "400": bad, "403": foreign, "415": not_json},
    }
    return {
        "openapi": "3.1.0",
        "info": {"title": "garde lab control API", "version": "1"},
        "paths": {
            "/status": {
                "get": {"summary": "Endpoints and active faults", "responses": {"200": ok}}
            },
            "/endpoints": {"get": {"summary": "{service: {dc: url}}", "responses": {"200": ok}}},
            "/faults": {
                "get": {"summary": "Targets with active faults", "responses": {"200": ok}},
                "post": {
                    "summary": "Inject a fault",
                    "requestBody": {"content": {JSON: {"schema": fault}}},
                    "responses": {"201": ok, "400": bad, "403": foreign, "415": not_json},
                },
                "delete": heal,
            },
            "/faults/{service}": {
                "delete": {**heal, "parameters": [*heal["parameters"], path_params[0]]}
            },
            "/faults/{service}/{dc}": {
                "delete": {**heal, "parameters": [*heal["parameters"], *path_params]}
            },
            "/capacity": {
                "get": {"summary": "Targets with a capacity limit", "responses": {"200": ok}},
                "delete": {"summary": "Lift every capacity limit", "responses": {"200": ok}},
            },
            "/capacity/{service}": {
                "put": {**limit, "parameters": path_params[:1]},
                "delete": {
                    "summary": "Lift its limits",
                    "parameters": path_params[:1],
                    "responses": {"200": ok, "400": bad},
                },
            },
            "/capacity/{service}/{dc}": {
                "put": {**limit, "parameters": path_params},
                "delete": {
                    "summary": "Lift its limit",
                    "parameters": path_params,
                    "responses": {"200": ok, "400": bad},
                },
            },
            "/load": {
                "get": {
                    "summary": "Requests offered and refused per second, per metered target",
                    "responses": {"200": ok},
                }
            },
            "/ledger": {
                "get": {
                    "summary": "Business effects, in order",
                    "parameters": [
                        {"name": n, "in": "query", "schema": {"type": "string"}}
                        for n in ("key", "service", "effect")
                    ],
                    "responses": {
                        "200": {
                            "description": "effects",
                            "content": {
                                JSON: {
                                    "schema": {
                                        "type": "object",
                                        "properties": {
                                            "effects": {"type": "array", "items": effect}
                                        },
                                    }
                                }
                            },
                        }
                    },
                }
            },
            "/ledger/duplicates": {
                "get": {
                    "summary": "Business effects applied more than once",
                    "responses": {"200": ok},
                }
            },
            "/ledger/export": {
                "get": {
                    "summary": "Every effect as JSON lines",
                    "responses": {
                        "200": {"description": "JSONL", "content": {"application/x-ndjson": {}}}
                    },
                }
            },
            "/openapi.json": {"get": {"summary": "This description", "responses": {"200": ok}}},
            "/health": {"get": {"summary": "Liveness", "responses": {"200": ok}}},
        },
    }
