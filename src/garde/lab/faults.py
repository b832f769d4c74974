"""Fault kinds and their options, validated; what the proxy and the control API agree on.

Modelled on Toxiproxy's toxics, one set per (service, data center):

- ``down``: connections are refused (the listener is closed), open ones are cut.
- ``blackhole``: connections are accepted, requests are swallowed, nothing ever answers.
- ``latency``: each request waits ``latency`` (± ``jitter``) before it is forwarded.
- ``errors``: a share ``rate`` of requests is answered by the proxy itself with ``status``
  500 or 503, or ``soap`` (an HTTP 500 carrying a ``soap:Server`` fault).
- ``reset``: for a share ``rate`` of requests, the answer is cut after ``after`` bytes and
  the connection reset (TCP RST).
- ``slow``: answers trickle at ``bandwidth`` bytes per second.
- ``flap``: down for the first half of each ``period``, up for the second half.

Any fault may be limited in time (``for``): it heals itself when that time is up.
"""

from __future__ import annotations

import random
from dataclasses import dataclass, field
from enum import StrEnum
from typing import Any

from garde.catalog import format_duration, parse_duration
from garde.errors import UsageError


class FaultKind(StrEnum):
    DOWN = "down"
    BLACKHOLE = "blackhole"
    LATENCY = "latency"
    ERRORS = "errors"
    RESET = "reset"
    SLOW = "slow"
    FLAP = "flap"


OPTIONS: dict[FaultKind, tuple[str, ...]] = {
    FaultKind.DOWN: (),
    FaultKind.BLACKHOLE: (),
    FaultKind.LATENCY: ("latency", "jitter"),
    FaultKind.ERRORS: ("rate", "status", "seed"),
    FaultKind.RESET: ("rate", "after", "seed"),
    FaultKind.SLOW: ("bandwidth",),
    FaultKind.FLAP: ("period",),
}
"""The options each kind accepts (besides ``for``)."""

ERROR_STATUSES = ("500", "503", "soap")


@dataclass(frozen=True, slots=True)
class Fault:
    kind: FaultKind
    latency: float = 0.0
    jitter: float = 0.0
    rate: float = 1.0
    status: str = "503"
    after: int = 64
    bandwidth: int = 0
    period: float = 0.0
    seed: int | None = None
    duration: float | None = None
    """Seconds the fault lasts (``for``); None: until healed."""
    rng: random.Random = field(default_factory=random.Random, compare=False, repr=False)

    def as_json(self) -> dict[str, Any]:
        out: dict[str, Any] = {"kind": self.kind.value}
        for name in OPTIONS[self.kind]:
            value = getattr(self, name)
            if name in ("latency", "jitter", "period"):
                value = format_duration(value)
            if value is not None:
                out[name] = value
        if self.duration is not None:
            out["for"] = format_duration(self.duration)
        return out

    def describe(self) -> str:
        options = ", ".join(f"{k}={v}" for k, v in self.as_json().items() if k != "kind")
        return f"{self.kind.value}({options})" if options else self.kind.value


def _duration(kind: FaultKind, name: str, value: Any) -> float:
    try:
        return parse_duration(value)
    except ValueError as exc:
        raise UsageError(f"{kind.value}: {name}: {exc}") from None


def _number(kind: FaultKind, name: str, value: Any, low: float, high: float | None) -> float:
    try:
        number = float(value)
    except (TypeError, ValueError):
        raise UsageError(f"{kind.value}: {name} must be a number, got {value!r}") from None
    if number < low or (high is not None and number > high):
        bound = f"between {low:g} and {high:g}" if high is not None else f"at least {low:g}"
        raise UsageError(f"{kind.value}: {name} must be {bound}, got {value!r}")
    return number


def make_fault(kind: str, options: dict[str, Any] | None = None) -> Fault:
    """A validated fault; ``UsageError`` names the wrong kind or option and what is expected."""
    try:
        fault_kind = FaultKind(kind)
    except ValueError:
        kinds = ", ".join(k.value for k in FaultKind)
        raise UsageError(f"unknown fault kind {kind!r}: use one of {kinds}") from None
    given = {k: v for k, v in (options or {}).items() if v is not None}
    allowed = (*OPTIONS[fault_kind], "for")
    unknown = sorted(set(given) - set(allowed))
    if unknown:
        raise UsageError(
            f"{fault_kind.value} does not take {', '.join(unknown)}; it takes: {', '.join(allowed)}"
        )
    values: dict[str, Any] = {}
    if "for" in given:
        values["duration"] = _duration(fault_kind, "for", given["for"])
        if values["duration"] <= 0:
            raise UsageError(f"{fault_kind.value}: for must be a positive duration")
    if fault_kind is FaultKind.LATENCY:
        if "latency" not in given:
            raise UsageError("latency needs latency=DURATION, e.g. latency=200ms")
        values["latency"] = _duration(fault_kind, "latency", given["latency"])
        values["jitter"] = _duration(fault_kind, "jitter", given.get("jitter", 0))
    elif fault_kind in (FaultKind.ERRORS, FaultKind.RESET):
        values["rate"] = _number(fault_kind, "rate", given.get("rate", 1.0), 0.0, 1.0)
        if "seed" in given:
            values["seed"] = int(_number(fault_kind, "seed", given["seed"], 0, None))
        if fault_kind is FaultKind.ERRORS:
            status = str(given.get("status", "503"))
            if status not in ERROR_STATUSES:
                raise UsageError(f"errors: status must be one of {ERROR_STATUSES}, got {status!r}")
            values["status"] = status
        else:
            values["after"] = int(_number(fault_kind, "after", given.get("after", 64), 0, None))
    elif fault_kind is FaultKind.SLOW:
        if "bandwidth" not in given:
            raise UsageError("slow needs bandwidth=BYTES_PER_SECOND, e.g. bandwidth=2000")
        values["bandwidth"] = int(_number(fault_kind, "bandwidth", given["bandwidth"], 1, None))
    elif fault_kind is FaultKind.FLAP:
        values["period"] = _duration(fault_kind, "period", given.get("period", "10s"))
        if values["period"] < 0.01:
            raise UsageError("flap: period must be at least 10ms")
    seed = values.get("seed")
    return Fault(kind=fault_kind, rng=random.Random(seed), **values)  # noqa: S311 (simulation)
