"""Drill scenarios: the YAML file that says which chain to build, what load to drive, which
faults to play when, and what must hold; read and checked entirely before anything starts.

The file is read with the catalog loader's YAML reader and checked with pydantic, then
against its catalog (``garde.drill.checks``), so that every problem is reported at once with
its file, line and key. Built-in scenarios live in ``garde/drill/scenarios/*.yaml``.

Two clocks: the **timeline** (``duration``, ``at``, ``for``, ``period``) is on the
scenario's clock, compressed by ``time_scale``; everything else (``rate``, ``think_time``,
``latency``, ``jitter``, ``bandwidth`` and every expectation) is real time, because requests,
probes, timeouts and replay do not run faster in a drill.
"""

from __future__ import annotations

from dataclasses import dataclass
from importlib import resources
from pathlib import Path
from typing import Annotated, Any, Literal

from pydantic import BaseModel, BeforeValidator, ConfigDict, Field

from garde.catalog import Catalog, Path_, lenient_duration, lenient_number, read_settings
from garde.errors import Problem, SettingsInvalid

DOCS = "docs/drills.md"
ID = r"^[a-z][a-z0-9-]*$"


def _text(value: Any) -> Any:
    # YAML reads `status: 503` as a number; the lab's statuses are words ("503", "soap").
    return str(value) if isinstance(value, int) and not isinstance(value, bool) else value


Duration = Annotated[float, BeforeValidator(lenient_duration), Field(ge=0)]
Positive = Annotated[float, BeforeValidator(lenient_duration), Field(gt=0)]
Number = Annotated[float, BeforeValidator(lenient_number)]
Share = Annotated[float, BeforeValidator(lenient_number), Field(ge=0, le=1)]

LAB_KINDS = ("down", "blackhole", "latency", "errors", "reset", "slow", "flap")
"""Faults the lab's proxies play on a (service, data center): ``garde.lab.faults``."""
PROCESS_KINDS = ("kill_gateway", "kill_monitor")
"""Faults the runner plays on its own processes: SIGKILL, then a restart after ``for``."""
KINDS = LAB_KINDS + PROCESS_KINDS


class _Strict(BaseModel):
    # Strict: YAML reads `rate: "2"` as text and `gateways: yes` as a boolean; a value silently
    # converted would not be the drill its writer meant.
    model_config = ConfigDict(extra="forbid", frozen=True, strict=True)


class Workload(_Strict):
    """What the care software of one site sends, in real time."""

    rate: Annotated[float, BeforeValidator(lenient_number), Field(gt=0)]
    mix: dict[str, Annotated[float, BeforeValidator(lenient_number), Field(gt=0)]] = Field(
        min_length=1
    )
    think_time: Duration = 0.0


class Site(_Strict):
    """One place of care (a pharmacy, a practice, a hospital) and its gateways."""

    name: str = Field(pattern=ID)
    target_group: str
    gateways: int = Field(1, ge=1, le=64)
    copies: int = Field(1, ge=1, le=200)
    journal: Literal["sqlite", "postgres"] = "sqlite"
    workers: int | None = Field(None, ge=1, le=64)
    workload: Workload | None = None


class FaultEntry(_Strict):
    """One line of the timeline; which keys apply depends on ``kind`` (``garde.drill.checks``)."""

    at: Duration
    for_: Positive | None = Field(None, alias="for")
    kind: str
    note: str = ""
    service: str | None = None
    dc: str | None = None
    site: str | None = None
    gateway: int | None = Field(None, ge=1)
    latency: Duration | None = None
    jitter: Duration | None = None
    rate: Share | None = None
    status: Annotated[str, BeforeValidator(_text)] | None = None
    seed: int | None = Field(None, ge=0)
    after: int | None = Field(None, ge=0)
    bandwidth: int | None = Field(None, ge=1)
    period: Positive | None = None

    def targets(self, catalog: Catalog) -> list[tuple[str, str]]:
        """The (service, data center) pairs a lab fault hits, ``all`` expanded; none for the
        process kinds."""
        if self.kind not in LAB_KINDS:
            return []
        services = catalog.services.values() if self.service == "all" else []
        if self.service in catalog.services:
            services = [catalog.services[self.service]]
        return [(s.id, dc) for s in services for dc in s.endpoints if self.dc in ("all", dc)]

    def lab_options(self, time_scale: float) -> dict[str, Any]:
        """The options as the lab's fault API takes them (``garde.lab.faults.make_fault``),
        in real time: ``for`` and ``period`` compressed by ``time_scale``."""
        from garde.lab import OPTIONS, FaultKind

        options: dict[str, Any] = {}
        for name in OPTIONS[FaultKind(self.kind)]:
            value = getattr(self, name)
            if value is not None:
                options[name] = value / time_scale if name == "period" else value
        if self.for_ is not None:
            options["for"] = self.for_ / time_scale
        return options


class ServiceSettings(_Strict):
    """How a simulated service of the lab behaves for the whole drill (``garde.lab.capacity``)."""

    capacity: Annotated[float, BeforeValidator(lenient_number), Field(ge=1)] | None = None
    """Requests per second each of its data centers admits; beyond, 503 with Retry-After."""
    retry_after: Positive = 1.0
    """Real seconds its 503 asks for (``Retry-After``, rounded up to whole seconds)."""


class Rto(_Strict):
    services: dict[str, Duration] = Field(default_factory=dict)
    target_groups: dict[str, Duration] = Field(default_factory=dict)


class Expectations(_Strict):
    """What must hold for the drill to pass; see docs/drills.md for how each is measured."""

    rpo: Duration = 0.0
    duplicates: int = Field(0, ge=0)
    refused: dict[str, Share] = Field(default_factory=dict)
    detection: Positive | None = None
    failover: Positive | None = None
    drain: Positive | None = None
    rto: Rto = Rto()
    peak_load: Annotated[float, BeforeValidator(lenient_number), Field(ge=0, le=10)] | None = None
    """Every service given a capacity: its peak load (requests offered to one data center
    in one second, admitted or not) at most capacity × (1 + this)."""


class Scenario(_Strict):
    """A whole scenario file."""

    version: Literal[1] = 1
    description: str = Field(min_length=1)
    source: str = ""
    catalog: str = Field("belgium", min_length=1)
    duration: Positive
    time_scale: Annotated[float, BeforeValidator(lenient_number), Field(gt=0, le=3600)] = 1.0
    sites: list[Site] = Field(min_length=1)
    services: dict[str, ServiceSettings] = Field(default_factory=dict)
    timeline: list[FaultEntry] = Field(default_factory=list)
    expect: Expectations = Expectations()

    @property
    def real_duration(self) -> float:
        """Seconds of real time the timeline takes at ``time_scale``."""
        return self.duration / self.time_scale

    @property
    def gateway_count(self) -> int:
        return sum(site.gateways * site.copies for site in self.sites)


@dataclass(frozen=True, slots=True)
class CheckedScenario:
    """A scenario that passed every check, with its catalog and the file it came from."""

    name: str
    file: str
    scenario: Scenario
    catalog: Catalog


def builtin_names() -> list[str]:
    """The built-in scenarios, by name (the file's stem)."""
    folder = resources.files("garde.drill") / "scenarios"
    return sorted(
        entry.name.removesuffix(".yaml")
        for entry in folder.iterdir()
        if entry.name.endswith(".yaml")
    )


def load_scenario(source: str | Path) -> CheckedScenario:
    """Read and check a scenario: a built-in name (``demo``) or a file path.

    Raises ``SettingsInvalid`` listing every problem, each with its file, line and key.
    """
    text, file, name = _read(source)
    return parse_scenario(text, file, name=name)


def _read(source: str | Path) -> tuple[str, str, str]:
    if isinstance(source, str) and source in builtin_names():
        path = resources.files("garde.drill") / "scenarios" / f"{source}.yaml"
        return path.read_text(encoding="utf-8"), f"{source}.yaml", source
    file = str(source)
    try:
        text = Path(source).read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        reason = exc.strerror if isinstance(exc, OSError) and exc.strerror else str(exc)
        hint = f"give a path to a scenario file or a built-in: {', '.join(builtin_names())}"
        problem = Problem(file, None, None, "", f"cannot read the scenario: {reason}", hint)
        raise SettingsInvalid(f"scenario {file}", [problem]) from None
    return text, file, Path(source).stem


def parse_scenario(text: str, file: str = "<scenario>", *, name: str = "") -> CheckedScenario:
    """A checked scenario from YAML ``text``; ``file`` names it in messages (and relative
    catalog paths are found next to it)."""
    from garde.drill.checks import catalog_for, cross_check

    subject = f"scenario {file}"
    read = read_settings(
        text,
        file,
        Scenario,
        subject=subject,
        expected="a scenario is a YAML mapping (description: ..., sites: ..., timeline: ...)",
        hint=f"start from a built-in (garde drill --list) or the example in {DOCS}",
        docs=DOCS,
        allowed=_allowed,
    )
    data, scenario, problems, reader = read.data, read.model, read.problems, read.reader
    # The cross-checks read the raw data, so that they run even where the schema failed
    # elsewhere: one run lists the typo, the bad duration and the unknown service together.
    catalog, catalog_problems = catalog_for(data, file, reader)
    problems.extend(catalog_problems)
    if catalog is not None:
        problems.extend(cross_check(data, catalog, reader))
    if problems:
        problems.sort(key=lambda p: (p.file != file, p.line or 0, p.column or 0))
        raise SettingsInvalid(subject, _unique(problems))
    assert scenario is not None
    assert catalog is not None
    return CheckedScenario(name or Path(file).stem, file, scenario, catalog)


def _allowed(loc: Path_) -> list[str]:
    def keys(model: type[BaseModel]) -> list[str]:
        return sorted((f.alias or n) for n, f in model.model_fields.items())

    if not loc:
        return keys(Scenario)
    head, depth = loc[0], len(loc)
    if head == "sites":
        return keys(Site) if depth == 2 else keys(Workload) if depth == 3 else []
    if head == "timeline" and depth == 2:
        return keys(FaultEntry)
    if head == "expect":
        return keys(Expectations) if depth == 1 else keys(Rto) if loc[1:] == ("rto",) else []
    return []


def _unique(problems: list[Problem]) -> list[Problem]:
    seen: set[str] = set()
    out = []
    for problem in problems:
        if str(problem) not in seen:
            seen.add(str(problem))
            out.append(problem)
    return out
