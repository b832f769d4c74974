"""WSDL 1.1 (document/literal, SOAP 1.1) of a simulated service, generated from its contracts.

Served at ``?wsdl`` so that a vendor can generate a client (zeep, JAX-WS, .NET) against the
lab exactly as against the real service: same operation names, namespaces, body elements and
SOAPActions as the catalog gives.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING

from lxml import etree

from garde.lab.schema import Field
from garde.soap import SAMLP1_NS, qn

if TYPE_CHECKING:
    from garde.lab.services.base import OperationContract

WSDL = "http://schemas.xmlsoap.org/wsdl/"
WSDL_SOAP = "http://schemas.xmlsoap.org/wsdl/soap/"
XSD = "http://www.w3.org/2001/XMLSchema"
HTTP_TRANSPORT = "http://schemas.xmlsoap.org/soap/http"
OPEN_CONTENT_NAMESPACES = frozenset({SAMLP1_NS})
"""Body elements whose schema is a standard's own (SAML 1.1's ``samlp:Request`` and
``samlp:Response``, with their attributes, ``samlp:AttributeQuery``, ``samlp:Status`` and a
``saml:Assertion`` of another namespace): described as open content, any attribute and any
child, so that a generated client passes the standard's XML through as it is instead of
expecting simplified fields the STS does not serve."""


def _element(parent: etree._Element, field: Field) -> None:
    attributes = {"name": field.name}
    if field.optional:
        attributes["minOccurs"] = "0"
    if field.many:
        attributes["minOccurs"] = "0"
        attributes["maxOccurs"] = "unbounded"
    if not field.is_group and not field.attributes:
        attributes["type"] = f"xsd:{field.type}"
        etree.SubElement(parent, qn(XSD, "element"), attributes)
        return
    element = etree.SubElement(parent, qn(XSD, "element"), attributes)
    complex_type = etree.SubElement(element, qn(XSD, "complexType"))
    if field.is_group:
        sequence = etree.SubElement(complex_type, qn(XSD, "sequence"))
        for child in field.children:
            _element(sequence, child)
        return
    content = etree.SubElement(complex_type, qn(XSD, "simpleContent"))
    extension = etree.SubElement(content, qn(XSD, "extension"), base=f"xsd:{field.type}")
    for name in field.attributes:
        etree.SubElement(extension, qn(XSD, "attribute"), name=name, type="xsd:string")


def _top_element(schema: etree._Element, name: str, fields: tuple[Field, ...]) -> None:
    element = etree.SubElement(schema, qn(XSD, "element"), name=name)
    sequence = etree.SubElement(
        etree.SubElement(element, qn(XSD, "complexType")), qn(XSD, "sequence")
    )
    for field in fields:
        _element(sequence, field)


def _open_element(schema: etree._Element, name: str) -> None:
    element = etree.SubElement(schema, qn(XSD, "element"), name=name)
    complex_type = etree.SubElement(element, qn(XSD, "complexType"))
    sequence = etree.SubElement(complex_type, qn(XSD, "sequence"))
    etree.SubElement(
        sequence,
        qn(XSD, "any"),
        namespace="##any",
        processContents="lax",
        minOccurs="0",
        maxOccurs="unbounded",
    )
    etree.SubElement(
        complex_type, qn(XSD, "anyAttribute"), namespace="##any", processContents="lax"
    )


def render_wsdl(
    name: str, namespace: str, contracts: Sequence[OperationContract], location: str
) -> bytes:
    """The WSDL of a service named ``name`` whose port is at ``location``."""
    namespaces = sorted({c.namespace for c in contracts})
    prefixes = {ns: ("tns" if ns == namespace else f"ns{i}") for i, ns in enumerate(namespaces)}
    nsmap = {"wsdl": WSDL, "soap": WSDL_SOAP, "xsd": XSD, "tns": namespace}
    nsmap.update({prefix: ns for ns, prefix in prefixes.items()})
    definitions = etree.Element(
        qn(WSDL, "definitions"), nsmap=nsmap, name=name, targetNamespace=namespace
    )
    types = etree.SubElement(definitions, qn(WSDL, "types"))
    schemas = {
        ns: etree.SubElement(
            types, qn(XSD, "schema"), targetNamespace=ns, elementFormDefault="qualified"
        )
        for ns in namespaces
    }
    for contract in contracts:
        schema = schemas[contract.namespace]
        if contract.namespace in OPEN_CONTENT_NAMESPACES:
            _open_element(schema, contract.request_element)
            _open_element(schema, contract.response_element)
            continue
        _top_element(schema, contract.request_element, contract.request)
        _top_element(schema, contract.response_element, contract.response)

    for contract in contracts:
        prefix = prefixes[contract.namespace]
        for suffix, element in (
            ("Request", contract.request_element),
            ("Response", contract.response_element),
        ):
            message = etree.SubElement(
                definitions, qn(WSDL, "message"), name=f"{contract.published}{suffix}"
            )
            etree.SubElement(message, qn(WSDL, "part"), name="body", element=f"{prefix}:{element}")

    port_type = etree.SubElement(definitions, qn(WSDL, "portType"), name=f"{name}PortType")
    for contract in contracts:
        operation = etree.SubElement(port_type, qn(WSDL, "operation"), name=contract.published)
        etree.SubElement(operation, qn(WSDL, "input"), message=f"tns:{contract.published}Request")
        etree.SubElement(operation, qn(WSDL, "output"), message=f"tns:{contract.published}Response")

    binding = etree.SubElement(
        definitions, qn(WSDL, "binding"), name=f"{name}Binding", type=f"tns:{name}PortType"
    )
    etree.SubElement(binding, qn(WSDL_SOAP, "binding"), style="document", transport=HTTP_TRANSPORT)
    for contract in contracts:
        operation = etree.SubElement(binding, qn(WSDL, "operation"), name=contract.published)
        # Where the published WSDL declares no SOAPAction (ETK depot, KGSS), neither do we.
        action = {} if contract.soap_action is None else {"soapAction": contract.soap_action}
        etree.SubElement(operation, qn(WSDL_SOAP, "operation"), action, style="document")
        for direction in ("input", "output"):
            body = etree.SubElement(operation, qn(WSDL, direction))
            etree.SubElement(body, qn(WSDL_SOAP, "body"), use="literal")

    service = etree.SubElement(definitions, qn(WSDL, "service"), name=name)
    port = etree.SubElement(
        service, qn(WSDL, "port"), name=f"{name}Port", binding=f"tns:{name}Binding"
    )
    etree.SubElement(port, qn(WSDL_SOAP, "address"), location=location)
    return bytes(
        etree.tostring(definitions, xml_declaration=True, encoding="UTF-8", pretty_print=True)
    )
