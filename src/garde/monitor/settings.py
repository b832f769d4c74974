"""The probe settings file (``--probes FILE``), checked entirely before the monitor starts.

A typo there fakes an outage (an XPath with an undefined prefix fails on every answer, so every
data center of the service shows down and the mode feed tells gateways it is offline), so the
file is read with the catalog loader's YAML reader, checked with pydantic and against the
catalog, and every problem is reported at once with its file and line.
"""

from __future__ import annotations

import difflib
import re
import string
from collections.abc import Mapping
from typing import Any

from pydantic import BaseModel, ConfigDict, Field, model_validator

from garde.catalog import Catalog, NodeReader, Path_, WireProtocol, read_settings, unknown_name
from garde.errors import MalformedMessage, Problem, SettingsInvalid
from garde.monitor.targets import PROBE_FIELDS, Assertion, ProbeSettings
from garde.settings import environment, resolve_secrets

DOCS = "docs/monitor.md"
PLACEHOLDERS = ("niss", "cbe")
"""What a request field may contain: ``{niss}`` (``probe_niss``) and ``{cbe}`` (``probe_cbe``)."""
_NCNAME = re.compile(r"^[A-Za-z_][A-Za-z0-9._-]*$")
_STRING = re.compile(r"\"[^\"]*\"|'[^']*'")
_LINE_COLUMN = re.compile(r", line \d+, column \d+")
"""lxml's position, which is in the wrapped fragment and not in the file: the line says where."""
_PREFIX = re.compile(r"(?<![A-Za-z0-9._:-])([A-Za-z_][A-Za-z0-9._-]*):(?![:=])")


class _Strict(BaseModel):
    # Strict: YAML turns 00010100173 into a number and `equals: true` into a boolean; a setting
    # silently converted would then probe the wrong patient or compare "True" with "true".
    model_config = ConfigDict(extra="forbid", frozen=True, strict=True)


class AssertionFile(_Strict):
    """One assertion as written: ``{xpath|jsonpath, equals?, namespaces?}``."""

    xpath: str | None = None
    jsonpath: str | None = None
    equals: str | None = None
    namespaces: dict[str, str] = Field(default_factory=dict)

    @model_validator(mode="after")
    def _one_expression(self) -> AssertionFile:
        if (self.xpath is None) == (self.jsonpath is None):
            raise ValueError("an assertion needs exactly one of xpath or jsonpath")
        if self.namespaces and self.xpath is None:
            raise ValueError("namespaces are for xpath assertions")
        return self


class ProbeSettingsFile(_Strict):
    """The whole file; every key is optional (docs/monitor.md shows each one)."""

    identity: str = Field("monitor", min_length=1)
    credential: str = Field("monitor-keystore", min_length=1)
    probe_niss: str = Field("85073003328", pattern=r"^(\d{11}|env:\w+)$")
    probe_cbe: str = Field("0809394427", pattern=r"^(\d{10}|env:\w+)$")
    latency_factor: float = Field(0.5, gt=0, le=1)
    tls_min_days: float = Field(14.0, ge=0)
    tls_warn_days: float = Field(30.0, ge=0)
    fields: dict[str, str] = Field(default_factory=dict)
    assertions: dict[str, list[AssertionFile]] = Field(default_factory=dict)


_SECRETS = ("identity", "credential", "probe_niss", "probe_cbe")
"""Settings that may be given as ``env:NAME``."""


def load_probe_settings(
    path: str, catalog: Catalog, *, env: Mapping[str, str] | None = None
) -> ProbeSettings:
    """Read and check ``--probes FILE``; raise ``SettingsInvalid`` listing every problem."""
    try:
        with open(path, encoding="utf-8") as handle:
            text = handle.read()
    except (OSError, UnicodeDecodeError) as exc:
        reason = exc.strerror if isinstance(exc, OSError) and exc.strerror else str(exc)
        raise SettingsInvalid(
            path, [Problem(path, None, None, "", f"cannot read the probe settings: {reason}")]
        ) from None
    return parse_probe_settings(text, path, catalog, env=environment() if env is None else env)


def parse_probe_settings(
    text: str, file: str, catalog: Catalog, *, env: Mapping[str, str] | None = None
) -> ProbeSettings:
    """Probe settings from YAML ``text`` (``file`` names it in messages)."""
    env = environment() if env is None else env
    read = read_settings(
        text,
        file,
        ProbeSettingsFile,
        subject=file,
        expected="probe settings are a YAML mapping (identity: ..., assertions: ...)",
        hint=f"start from the example in {DOCS}",
        docs=DOCS,
        allowed=_allowed,
        empty_ok=True,  # every setting has a default
    )
    data, model, problems, reader = read.data, read.model, read.problems, read.reader
    # The checks below read the raw data, so that they run even where the schema failed
    # elsewhere: one run lists the typo, the wrong type and the unknown service together.
    secrets = _resolve_secrets(data, env, reader, problems)
    problems.extend(_tls_problems(data, reader))
    problems.extend(_field_problems(data, catalog, reader))
    problems.extend(_assertion_problems(data, catalog, reader))
    if problems:
        problems.sort(key=lambda p: (p.line or 0, p.column or 0))
        raise SettingsInvalid(file, problems)
    assert model is not None
    return ProbeSettings(
        identity=secrets.get("identity", model.identity),
        credential=secrets.get("credential", model.credential),
        probe_niss=secrets.get("probe_niss", model.probe_niss),
        probe_cbe=secrets.get("probe_cbe", model.probe_cbe),
        latency_factor=model.latency_factor,
        tls_min_days=model.tls_min_days,
        tls_warn_days=model.tls_warn_days,
        fields={**PROBE_FIELDS, **model.fields},
        assertions={
            where: tuple(
                Assertion(
                    xpath=a.xpath,
                    jsonpath=a.jsonpath,
                    equals=a.equals,
                    namespaces=tuple(a.namespaces.items()),
                )
                for a in items
            )
            for where, items in model.assertions.items()
        },
    )


def _allowed(loc: Path_) -> list[str]:
    if len(loc) == 3 and loc[0] == "assertions":
        return sorted(AssertionFile.model_fields)
    if not loc:
        return sorted(ProbeSettingsFile.model_fields)
    return []


def _resolve_secrets(
    data: dict[str, Any], env: Mapping[str, str], reader: NodeReader, problems: list[Problem]
) -> dict[str, str]:
    resolved = resolve_secrets(
        data, [(key,) for key in _SECRETS], env, reader, problems, when="before starting"
    )
    found = {str(where[0]): value for where, value in resolved.items()}
    for key, digits in (("probe_niss", 11), ("probe_cbe", 10)):
        if key in found and not (found[key].isdigit() and len(found[key]) == digits):
            problems.append(
                reader.problem((key,), f"{data[key]} gives {found[key]!r}, not {digits} digits")
            )
    return found


def _tls_problems(data: dict[str, Any], reader: NodeReader) -> list[Problem]:
    low, high = data.get("tls_min_days", 14.0), data.get("tls_warn_days", 30.0)
    numbers = all(isinstance(v, int | float) and not isinstance(v, bool) for v in (low, high))
    if numbers and high < low:
        return [
            reader.problem(
                ("tls_warn_days",) if "tls_warn_days" in data else ("tls_min_days",),
                f"tls_warn_days ({high:g}) is below tls_min_days ({low:g})",
                "a certificate is degraded (warn) before it fails: warn days >= min days",
            )
        ]
    return []


def _field_problems(data: dict[str, Any], catalog: Catalog, reader: NodeReader) -> list[Problem]:
    from garde.soap import parse_xml  # lxml, imported when a settings file has fields

    fields = data.get("fields")
    if not isinstance(fields, dict):
        return []
    problems: list[Problem] = []
    for key, template in fields.items():
        path: Path_ = ("fields", key)
        sid, dot, oid = key.partition(".")
        if not dot:
            problems.append(
                reader.problem(
                    path,
                    f"{key!r} is not service.operation",
                    "e.g. recipe-executor.listOpenPrescriptions",
                )
            )
            continue
        service = catalog.services.get(sid)
        if service is None:
            problems.append(unknown_name(reader, path, "service", sid, catalog.services))
            continue
        if oid not in service.operations:
            problems.append(
                unknown_name(reader, path, f"operation of {sid}", oid, service.operations)
            )
            continue
        if service.probe.operation != oid or service.protocol is not WireProtocol.SOAP:
            probed = service.probe.operation or f"GET {service.probe.path or '/'}"
            problems.append(
                reader.problem(
                    path,
                    f"the monitor does not call {key} (the catalog probes {sid} with {probed})",
                    "set the fields of the probed operation, or change probe.operation in the"
                    " catalog",
                )
            )
            continue
        if not isinstance(template, str):
            continue  # the schema reports it
        try:
            names = {name for _, name, _, _ in string.Formatter().parse(template) if name}
        except ValueError as exc:
            problems.append(
                reader.problem(path, f"bad placeholder ({exc})", "write {{ and }} for braces")
            )
            continue
        unknown = sorted(names - set(PLACEHOLDERS))
        if unknown:
            problems.append(
                unknown_name(reader, path, "placeholder", "{" + unknown[0] + "}", _braced())
            )
            continue
        namespace = service.operations[oid].namespace or service.namespace or "urn:x"
        xml = template.format(niss="0", cbe="0")
        try:
            parse_xml(f'<op:Request xmlns:op="{namespace}">{xml}</op:Request>'.encode())
        except MalformedMessage as exc:
            why = str(exc).removeprefix("malformed XML: ")
            problems.append(
                reader.problem(
                    path,
                    f"not well-formed XML ({_LINE_COLUMN.sub('', why)})",
                    "elements of the operation take the op: prefix, e.g. <op:Ssin>{niss}</op:Ssin>",
                )
            )
    return problems


def _braced() -> list[str]:
    return ["{" + name + "}" for name in PLACEHOLDERS]


def _assertion_problems(
    data: dict[str, Any], catalog: Catalog, reader: NodeReader
) -> list[Problem]:
    assertions = data.get("assertions")
    if not isinstance(assertions, dict):
        return []
    problems: list[Problem] = []
    for where, items in assertions.items():
        path: Path_ = ("assertions", where)
        sid, at, dc = where.partition("@")
        service = catalog.services.get(sid)
        if service is None:
            problems.append(unknown_name(reader, path, "service", sid, catalog.services))
        elif at and dc not in service.endpoints:
            problems.append(
                unknown_name(reader, path, f"data center of {sid}", dc, service.endpoints)
            )
        for i, item in enumerate(items if isinstance(items, list) else []):
            if not isinstance(item, dict):
                continue
            problems.extend(_expression_problems(item, (*path, i), reader))
            if (
                service is not None
                and service.protocol is WireProtocol.SOAP
                and isinstance(item.get("jsonpath"), str)
            ):
                problems.append(
                    reader.problem(
                        (*path, i, "jsonpath"),
                        f"{sid} is a SOAP service: its answers are XML, a JSONPath never matches",
                        "use xpath (with namespaces) for this service",
                    )
                )
    return problems


def _expression_problems(item: dict[str, Any], path: Path_, reader: NodeReader) -> list[Problem]:
    """Compile the XPath with its namespaces, and run it once, or parse the JSONPath."""
    from lxml import etree

    xpath, jsonpath = item.get("xpath"), item.get("jsonpath")
    if isinstance(jsonpath, str):
        from jsonpath_ng.exceptions import JsonPathLexerError, JsonPathParserError
        from jsonpath_ng.ext.parser import parse

        try:
            parse(jsonpath)
        except (JsonPathLexerError, JsonPathParserError) as exc:
            return [reader.problem((*path, "jsonpath"), f"invalid JSONPath ({exc})")]
        return []
    if not isinstance(xpath, str):
        return []
    namespaces = item.get("namespaces") or {}
    if not isinstance(namespaces, dict) or not all(isinstance(v, str) for v in namespaces.values()):
        return []  # the schema reports it
    problems = [
        reader.problem(
            (*path, "namespaces", prefix),
            f"{prefix!r} cannot be an XPath prefix",
            "a prefix is a name: letters, digits, '.', '-', '_', not starting with a digit",
        )
        for prefix in namespaces
        if not _NCNAME.match(prefix)
    ]
    if problems:
        return problems
    where = (*path, "xpath")
    try:
        compiled = etree.XPath(xpath, namespaces=namespaces)
    except etree.XPathSyntaxError as exc:
        return [reader.problem(where, f"invalid XPath ({exc})", "check brackets and quotes")]
    # Compiling does not resolve prefixes, functions or variables; running it once does.
    try:
        compiled(etree.Element("probe"))
    except etree.XPathEvalError as exc:
        if "prefix" in str(exc).lower():
            return _prefix_problems(xpath, namespaces, where, reader)
        return [reader.problem(where, f"XPath cannot run ({exc})", "use XPath 1.0 functions")]
    return []


def _prefix_problems(
    xpath: str, namespaces: dict[str, str], where: Path_, reader: NodeReader
) -> list[Problem]:
    used = _PREFIX.findall(_STRING.sub("", xpath))
    missing = sorted({p for p in used if p not in namespaces}) or ["?"]
    problems = []
    for prefix in missing:
        known = ", ".join(sorted(namespaces)) or "none"
        close = difflib.get_close_matches(prefix, list(namespaces), n=1)
        hint = (
            f"did you mean {close[0]!r}?"
            if close
            else f"add namespaces: {{{prefix}: URI}} to this assertion, with the URI of the"
            " answer's elements"
        )
        problems.append(
            reader.problem(
                where, f"XPath prefix {prefix!r} is not defined (defined here: {known})", hint
            )
        )
    return problems
