"""Operation contracts as data: the fields of each request and response element.

One declaration per operation gives three things that must agree: the parsing of requests
(missing or mistyped fields are a business fault naming the field), the rendering of answers
(children in declared order, as an ``xsd:sequence`` demands) and the WSDL that a vendor's SOAP
client is generated from.
"""

from __future__ import annotations

import base64
import binascii
from dataclasses import dataclass
from datetime import date, datetime
from decimal import Decimal, InvalidOperation
from typing import Any

from lxml import etree

from garde.soap import qn

TYPES = ("string", "int", "boolean", "date", "dateTime", "base64Binary", "decimal")


@dataclass(frozen=True, slots=True)
class Field:
    """A child element: a simple value, or a group of fields; optional and/or repeated."""

    name: str
    type: str = "string"
    optional: bool = False
    many: bool = False
    children: tuple[Field, ...] = ()
    attributes: tuple[str, ...] = ()
    """String attributes of a simple element (e.g. ``Credential type="eid"``)."""

    @property
    def is_group(self) -> bool:
        return bool(self.children)


def f(
    name: str,
    type: str = "string",
    *,
    optional: bool = False,
    many: bool = False,
    attributes: tuple[str, ...] = (),
) -> Field:
    if type not in TYPES:
        raise ValueError(f"unknown field type {type!r}; use one of {TYPES}")
    return Field(name, type, optional, many, (), attributes)


def group(name: str, *children: Field, optional: bool = False, many: bool = False) -> Field:
    return Field(name, "group", optional, many, tuple(children))


class InvalidField(ValueError):
    """A request field is missing or has the wrong type; the message names it."""


def _convert(field: Field, text: str) -> Any:
    try:
        if field.type == "string":
            return text
        if field.type == "int":
            return int(text)
        if field.type == "decimal":
            return Decimal(text)
        if field.type == "boolean":
            if text not in ("true", "false", "1", "0"):
                raise ValueError(text)
            return text in ("true", "1")
        if field.type == "date":
            return date.fromisoformat(text[:10])
        if field.type == "dateTime":
            return datetime.fromisoformat(text.replace("Z", "+00:00"))
        if field.type == "base64Binary":
            return base64.b64decode("".join(text.split()), validate=True)
    except (ValueError, InvalidOperation, binascii.Error):
        raise InvalidField(f"<{field.name}> is not a valid {field.type}: {text[:40]!r}") from None
    raise AssertionError(field.type)


def parse_fields(element: etree._Element, fields: tuple[Field, ...], ns: str) -> dict[str, Any]:
    """The values of ``element``'s children per ``fields``; ``InvalidField`` names a bad one."""
    # One pass over the children, not a findall() per field: this runs on every request.
    children: dict[object, list[etree._Element]] = {}
    for child in element:
        children.setdefault(child.tag, []).append(child)
    values: dict[str, Any] = {}
    for field in fields:
        found = children.get(qn(ns, field.name), ())
        if not found and not field.optional and not field.many:
            raise InvalidField(f"<{field.name}> is required in <{etree.QName(element).localname}>")
        parsed = []
        for child in found:
            if field.is_group:
                parsed.append(parse_fields(child, field.children, ns))
                continue
            text = child.text or ""
            if len(child):
                # The parser keeps comments: a value split by one reads as if it were not.
                text += "".join(c.tail or "" for c in child if not isinstance(c.tag, str))
            text = text.strip()
            if not text and field.type != "string":
                raise InvalidField(f"<{field.name}> is empty; expected a {field.type}")
            value = _convert(field, text)
            if field.attributes:
                value = {"value": value, **{a: child.get(a) for a in field.attributes}}
            parsed.append(value)
        if field.many:
            values[field.name] = parsed
        elif parsed:
            values[field.name] = parsed[0]
    return values


def _text(field: Field, value: Any) -> str:
    if field.type == "boolean":
        return "true" if value else "false"
    if field.type == "base64Binary":
        return base64.b64encode(value).decode("ascii")
    if isinstance(value, datetime):
        return value.isoformat(timespec="seconds")
    if isinstance(value, date):
        return value.isoformat()
    return str(value)


def render_fields(
    parent: etree._Element, fields: tuple[Field, ...], values: dict[str, Any], ns: str
) -> None:
    """Append ``values`` to ``parent`` as children, in declared order (an ``xsd:sequence``)."""
    for field in fields:
        value = values.get(field.name)
        if value is None:
            if not field.optional and not field.many:
                raise KeyError(f"answer lacks required field {field.name}")
            continue
        for item in value if field.many else [value]:
            child = etree.SubElement(parent, qn(ns, field.name))
            if field.is_group:
                render_fields(child, field.children, item, ns)
            elif field.attributes and isinstance(item, dict):
                child.text = _text(field, item["value"])
                for attribute in field.attributes:
                    if item.get(attribute) is not None:
                        child.set(attribute, str(item[attribute]))
            else:
                child.text = _text(field, item)


def _escape(text: str) -> str:
    if "&" in text or "<" in text or ">" in text:
        return text.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")
    return text


def _attribute(text: str) -> str:
    return _escape(text).replace('"', "&quot;")


def _render_text(out: list[str], fields: tuple[Field, ...], values: dict[str, Any]) -> None:
    for field in fields:
        value = values.get(field.name)
        if value is None:
            if not field.optional and not field.many:
                raise KeyError(f"answer lacks required field {field.name}")
            continue
        for item in value if field.many else [value]:
            if field.is_group:
                out.append(f"<{field.name}>")
                _render_text(out, field.children, item)
                out.append(f"</{field.name}>")
            elif field.attributes and isinstance(item, dict):
                attributes = "".join(
                    f' {a}="{_attribute(str(item[a]))}"'
                    for a in field.attributes
                    if item.get(a) is not None
                )
                text = _escape(_text(field, item["value"]))
                out.append(f"<{field.name}{attributes}>{text}</{field.name}>")
            else:
                out.append(f"<{field.name}>{_escape(_text(field, item))}</{field.name}>")


_ENVELOPE_HEAD = (
    "<?xml version='1.0' encoding='UTF-8'?>\n"
    '<soap:Envelope xmlns:soap="http://schemas.xmlsoap.org/soap/envelope/"><soap:Body>'
)


def render_envelope(
    element: str, namespace: str, fields: tuple[Field, ...], values: dict[str, Any]
) -> bytes:
    """A SOAP envelope whose body is ``<element xmlns=namespace>`` with ``values`` as children.

    Text, not a tree: the same bytes lxml would write for these simple answers, faster.
    """
    out = [_ENVELOPE_HEAD, f'<{element} xmlns="{_attribute(namespace)}">']
    _render_text(out, fields, values)
    out.append(f"</{element}></soap:Body></soap:Envelope>")
    return "".join(out).encode("utf-8")


def example_fields(fields: tuple[Field, ...]) -> dict[str, Any]:
    """Placeholder values for documentation: every field, typed."""
    samples: dict[str, Any] = {
        "string": "...",
        "int": 1,
        "decimal": Decimal("0.00"),
        "boolean": True,
        "date": date(2026, 1, 1),
        "dateTime": datetime(2026, 1, 1, 9, 0),
        "base64Binary": b"...",
    }
    values: dict[str, Any] = {}
    for field in fields:
        value = example_fields(field.children) if field.is_group else samples[field.type]
        if field.attributes:
            value = {"value": value, **dict.fromkeys(field.attributes, "...")}
        values[field.name] = [value] if field.many else value
    return values
