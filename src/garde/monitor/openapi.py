"""The OpenAPI description of the monitor's JSON API (served at ``/openapi.json``)."""

from __future__ import annotations

from typing import Any

from garde.locales import moment_schema


def _get(summary: str, schema: dict[str, Any] | None = None) -> dict[str, Any]:
    return {
        "summary": summary,
        "responses": {
            "200": {
                "description": "OK",
                "content": {"application/json": {"schema": schema or {"type": "object"}}},
            }
        },
    }


_ERROR = {"type": "object", "properties": {"error": {"type": "string"}}}
_OBSERVED = {
    "observed_seconds": {"type": "number", "description": "Time the samples cover"},
    "coverage": {
        "type": ["number", "null"],
        "description": "Observed share of the period (null: the period has not begun)",
    },
    "insufficient_data": {
        "type": "boolean",
        "description": "Too little observed for a figure (under min_coverage of the period"
        " or min_observed_seconds): the availability is then null",
    },
}
_NUMBER_OR_NULL = {"type": ["number", "null"]}
_INCIDENT = {
    "type": "object",
    "properties": {
        "id": {"type": "integer"},
        "service": {"type": "string"},
        "title": {"type": "string"},
        "severity": {"type": "string"},
        "state": {"enum": ["open", "resolved"]},
        "worst_status": {"type": "string"},
        **moment_schema("started_at", "when it began"),
        **moment_schema("resolved_at", "when it ended (null while open)", nullable=True),
        "impacted": {"type": "array", "items": {"type": "string"}},
        "groups": {"type": "array", "items": {"type": "string"}},
        "in_maintenance": {"type": "boolean"},
        "updates": {
            "type": "array",
            "items": {
                "type": "object",
                "properties": {
                    "id": {"type": "integer"},
                    **moment_schema("at"),
                    "kind": {"type": "string"},
                    "status": {"type": "string"},
                    "message": {"type": "string"},
                    "author": {"type": "string"},
                },
            },
        },
    },
}
_MAINTENANCE = {
    "type": "object",
    "properties": {
        "id": {"type": "integer"},
        "title": {"type": "string"},
        "scope": {"type": "array", "items": {"type": "string"}},
        **moment_schema("starts_at", "the (first) window's start"),
        **moment_schema("ends_at", "the (first) window's end"),
        "rrule": {"type": ["string", "null"]},
        **moment_schema("until", "last recurrence (null: one-off or endless)", nullable=True),
        "cancelled": {"type": "boolean"},
    },
}
_SINCE = moment_schema("since", "when this state began (null: not known)", nullable=True)
_STATUS = {
    "type": "object",
    "properties": {
        **moment_schema("at", "when the state was computed"),
        "overall": {"type": "string"},
        "services": {
            "type": "object",
            "additionalProperties": {"type": "object", "properties": {**_SINCE}},
        },
        "targets": {
            "type": "object",
            "additionalProperties": {"type": "object", "properties": {**_SINCE}},
        },
        "impact": {"type": "object"},
    },
}
_HISTORY = {
    "type": "object",
    "properties": {
        "target": {"type": "string"},
        "resolution": {"enum": ["m", "h", "d"]},
        **moment_schema("period_start", "start of the first bucket in the window"),
        **moment_schema("period_end", "now"),
        "availability": _NUMBER_OR_NULL,
        "buckets": {
            "type": "array",
            "items": {
                "type": "object",
                "properties": {
                    **moment_schema("start", "the bucket's start"),
                    "probes": {"type": "integer"},
                    "up": {"type": "integer"},
                    "availability": _NUMBER_OR_NULL,
                },
            },
        },
    },
}
_BEARER: list[dict[str, list[str]]] = [{"bearer": []}]

OPENAPI: dict[str, Any] = {
    "openapi": "3.1.0",
    "info": {
        "title": "garde monitor",
        "version": "1",
        "description": "State of the eHealth chain per service, data center and target group.",
    },
    "components": {
        "securitySchemes": {"bearer": {"type": "http", "scheme": "bearer"}},
        "schemas": {
            "Error": _ERROR,
            "Mode": {
                "type": "object",
                "required": ["mode", "status", "advice", "valid_until"],
                "properties": {
                    "mode": {"enum": ["normal", "degraded", "offline"]},
                    "status": {"enum": ["operational", "reduced_redundancy", "degraded", "outage"]},
                    "avoid_data_centers": {"type": "array", "items": {"type": "string"}},
                    "impacted_by": {"type": "array", "items": {"type": "string"}},
                    "since": {"type": ["string", "null"], "format": "date-time"},
                    "advice": {"type": "string"},
                    "valid_until": {"type": "string", "format": "date-time"},
                },
            },
            "Observed": {"type": "object", "properties": _OBSERVED},
            "SlaService": {
                "type": "object",
                "properties": {
                    "service": {"type": "string"},
                    "name": {"type": "string"},
                    "availability": {
                        **_NUMBER_OR_NULL,
                        "description": "Over the time observed, maintenance excluded; null"
                        " when nothing was measured or the data is insufficient",
                    },
                    "downtime_minutes": {
                        **_NUMBER_OR_NULL,
                        "description": "Minutes observed in outage (never extrapolated)",
                    },
                    "maintenance_minutes": {"type": "number"},
                    "incidents": {"type": "integer"},
                    "data_centers": {"type": "object", "additionalProperties": _NUMBER_OR_NULL},
                    **_OBSERVED,
                    "data_centers_observed": {
                        "type": "object",
                        "additionalProperties": {"$ref": "#/components/schemas/Observed"},
                    },
                },
            },
            "Result": {
                "type": "object",
                "required": ["target", "at", "ok", "latency"],
                "properties": {
                    "target": {"type": "string"},
                    "at": {
                        "type": ["string", "number"],
                        "description": "When the probe ran: RFC 3339 (UTC or with an offset),"
                        " or Unix seconds (what garde probe sends for one more release)",
                    },
                    "ok": {"type": "boolean"},
                    "latency": {"type": "number"},
                    "slow": {"type": "boolean"},
                    "error": {"type": ["string", "null"]},
                    "status": {"type": ["integer", "null"]},
                },
            },
        },
    },
    "paths": {
        "/api/v1/status": {
            "get": _get("Overall, per service, per target and per group state", _STATUS)
        },
        "/api/v1/modes": {
            "get": _get(
                "Mode feed the gateway follows",
                {
                    "type": "object",
                    "properties": {
                        "generated_at": {"type": "string", "format": "date-time"},
                        "services": {
                            "type": "object",
                            "additionalProperties": {"$ref": "#/components/schemas/Mode"},
                        },
                    },
                },
            )
        },
        "/api/v1/targets": {"get": _get("What is probed, where and how often")},
        "/api/v1/history/{target}": {
            "get": _get(
                "Availability and latency percentiles per bucket (?resolution=m|h|d&days=N),"
                " and the availability over the window with the time observed",
                _HISTORY,
            )
        },
        "/api/v1/sla/{month}": {
            "get": _get(
                "Monthly SLA report (month: YYYY-MM): per service, availability over the time"
                " observed, coverage, minutes down",
                {
                    "type": "object",
                    "properties": {
                        "month": {"type": "string"},
                        **moment_schema("period_start", "the month's start"),
                        **moment_schema("period_end", "the month's end, or now while it runs"),
                        "period_seconds": {"type": "number"},
                        "complete": {"type": "boolean"},
                        "min_coverage": {"type": "number"},
                        "min_observed_seconds": {"type": "number"},
                        "services": {
                            "type": "array",
                            "items": {"$ref": "#/components/schemas/SlaService"},
                        },
                    },
                },
            )
        },
        "/api/v1/incidents": {
            "get": _get(
                "Incidents, newest first (?open=1: open only)",
                {
                    "type": "object",
                    "properties": {"incidents": {"type": "array", "items": _INCIDENT}},
                },
            )
        },
        "/api/v1/incidents/{id}": {"get": _get("One incident with its timeline", _INCIDENT)},
        "/api/v1/incidents/{id}/updates": {
            "post": {
                "summary": "Add an operator update to an incident",
                "security": _BEARER,
                "requestBody": {
                    "content": {
                        "application/json": {
                            "schema": {
                                "type": "object",
                                "required": ["message"],
                                "properties": {
                                    "message": {"type": "string"},
                                    "status": {"type": "string"},
                                    "author": {"type": "string"},
                                },
                            }
                        }
                    }
                },
                "responses": {"201": {"description": "The incident, updated"}},
            }
        },
        "/api/v1/maintenance": {
            "get": _get(
                "Maintenance windows",
                {
                    "type": "object",
                    "properties": {"maintenance": {"type": "array", "items": _MAINTENANCE}},
                },
            ),
            "post": {
                "summary": "Plan a maintenance window (one-off, or recurring with an RRULE)",
                "security": _BEARER,
                "requestBody": {
                    "content": {
                        "application/json": {
                            "schema": {
                                "type": "object",
                                "required": ["title", "scope", "starts_at", "ends_at"],
                                "properties": {
                                    "title": {"type": "string"},
                                    "scope": {"type": "array", "items": {"type": "string"}},
                                    "starts_at": {"type": "string", "format": "date-time"},
                                    "ends_at": {"type": "string", "format": "date-time"},
                                    "rrule": {"type": "string"},
                                    "until": {"type": "string", "format": "date-time"},
                                },
                            }
                        }
                    }
                },
                "responses": {"201": {"description": "The window"}},
            },
        },
        "/api/v1/maintenance/{id}": {
            "delete": {
                "summary": "Cancel a maintenance window",
                "security": _BEARER,
                "responses": {"204": {"description": "Cancelled"}},
            }
        },
        "/api/v1/results": {
            "post": {
                "summary": "Push results from a remote probe location",
                "security": _BEARER,
                "requestBody": {
                    "content": {
                        "application/json": {
                            "schema": {
                                "type": "object",
                                "required": ["location", "results"],
                                "properties": {
                                    "location": {"type": "string"},
                                    "results": {
                                        "type": "array",
                                        "items": {"$ref": "#/components/schemas/Result"},
                                    },
                                },
                            }
                        }
                    }
                },
                "responses": {"200": {"description": "How many results were accepted"}},
            }
        },
        "/feed.atom": {
            "get": {
                "summary": "Atom feed of incidents",
                "responses": {"200": {"description": "Atom"}},
            }
        },
        "/metrics": {
            "get": {
                "summary": "Prometheus metrics",
                "responses": {"200": {"description": "text exposition"}},
            }
        },
        "/sla/{month}": {
            "get": {
                "summary": "Monthly SLA report: YYYY-MM.html, YYYY-MM.csv or YYYY-MM.json",
                "responses": {"200": {"description": "HTML, CSV or JSON"}},
            }
        },
    },
}
