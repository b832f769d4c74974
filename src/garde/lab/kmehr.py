"""KMEHR-shaped messages: read what the services check, and build them for tests and drills.

The real Recip-e, eAttest and hubs carry a KMEHR ``kmehrmessage`` (sealed in production): a
header with the sender, a folder with the patient (NISS) and transactions typed with
``CD-TRANSACTION`` (``pharmaceuticalprescription``, ``cga``, ``sumehr``) holding items typed with
``CD-ITEM``. The lab checks that shape and the facts it needs; it does not validate the whole
KMEHR schema.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date

from lxml import etree

from garde.errors import MalformedMessage
from garde.lab.services.base import BusinessFault
from garde.soap import parse_xml, qn

KMEHR_NS = "http://www.ehealth.fgov.be/standards/kmehr/schema/v1"


def _k(local: str) -> str:
    return qn(KMEHR_NS, local)


@dataclass(frozen=True, slots=True)
class Transaction:
    type: str
    date: date | None
    items: tuple[str, ...]
    """The CD-ITEM type of each item, in order."""


@dataclass(frozen=True, slots=True)
class Kmehr:
    patient: str
    """The patient's identifier (ID-PATIENT), as written."""
    sender: str | None
    """The sender's NIHII (ID-HCPARTY), if given."""
    transactions: tuple[Transaction, ...]


def _invalid(reason: str) -> BusinessFault:
    return BusinessFault("INVALID_KMEHR", f"the KMEHR message is not usable: {reason}")


def read_kmehr(data: bytes, *, max_bytes: int) -> Kmehr:
    """The facts of a ``kmehrmessage``; ``INVALID_KMEHR`` says what is missing or wrong."""
    try:
        root = parse_xml(data, max_bytes=max_bytes)
    except MalformedMessage as exc:
        raise _invalid(str(exc)) from None
    if root.tag != _k("kmehrmessage"):
        raise _invalid(f"root must be {{{KMEHR_NS}}}kmehrmessage, not {root.tag}")
    sender = root.findtext(f"{_k('header')}/{_k('sender')}/{_k('hcparty')}/{_k('id')}")
    folder = root.find(_k("folder"))
    if folder is None:
        raise _invalid("no folder")
    patient = None
    for ident in folder.findall(f"{_k('patient')}/{_k('id')}"):
        if ident.get("S") == "ID-PATIENT" and ident.text:
            patient = ident.text.strip()
    if not patient:
        raise _invalid("no patient id (folder/patient/id S='ID-PATIENT')")
    transactions = []
    for element in folder.findall(_k("transaction")):
        kind = None
        for cd in element.findall(_k("cd")):
            if cd.get("S") == "CD-TRANSACTION" and cd.text:
                kind = cd.text.strip()
        if kind is None:
            raise _invalid("a transaction has no cd S='CD-TRANSACTION'")
        when = None
        text = element.findtext(_k("date"))
        if text:
            try:
                when = date.fromisoformat(text.strip()[:10])
            except ValueError:
                raise _invalid(f"transaction date {text!r} is not YYYY-MM-DD") from None
        items = []
        for item in element.findall(_k("item")):
            for cd in item.findall(_k("cd")):
                if cd.get("S") == "CD-ITEM" and cd.text:
                    items.append(cd.text.strip())
        transactions.append(Transaction(kind, when, tuple(items)))
    if not transactions:
        raise _invalid("no transaction in the folder")
    return Kmehr(patient, sender.strip() if sender else None, tuple(transactions))


# -- builders --------------------------------------------------------------------------------


def _sub(
    parent: etree._Element, local: str, text: str | None = None, **attrs: str
) -> etree._Element:
    element = etree.SubElement(parent, _k(local), attrs)
    if text is not None:
        element.text = text
    return element


def _message(
    sender_nihii: str, patient: str, recipient: str
) -> tuple[etree._Element, etree._Element]:
    root = etree.Element(_k("kmehrmessage"), nsmap={None: KMEHR_NS})  # type: ignore[dict-item]
    header = _sub(root, "header")
    _sub(_sub(header, "standard"), "cd", "20161201", S="CD-STANDARD", SV="1.0")
    sender = _sub(_sub(header, "sender"), "hcparty")
    _sub(sender, "id", sender_nihii, S="ID-HCPARTY", SV="1.0")
    _sub(sender, "cd", "persphysician", S="CD-HCPARTY", SV="1.1")
    receiver = _sub(_sub(header, "recipient"), "hcparty")
    _sub(receiver, "cd", "application", S="CD-HCPARTY", SV="1.1")
    _sub(receiver, "name", recipient)
    folder = _sub(root, "folder")
    _sub(folder, "id", "1", S="ID-KMEHR", SV="1.0")
    _sub(_sub(folder, "patient"), "id", patient, S="ID-PATIENT", SV="1.0")
    return root, folder


def _transaction(folder: etree._Element, kind: str, when: date) -> etree._Element:
    transaction = _sub(folder, "transaction")
    _sub(transaction, "id", "1", S="ID-KMEHR", SV="1.0")
    _sub(transaction, "cd", kind, S="CD-TRANSACTION", SV="1.10")
    _sub(transaction, "date", when.isoformat())
    return transaction


def _bytes(root: etree._Element) -> bytes:
    return bytes(etree.tostring(root, xml_declaration=True, encoding="UTF-8"))


def prescription(
    prescriber_nihii: str,
    patient_niss: str,
    *,
    cnk: str = "0046581",
    posology: str = "1 tablet 3 times a day",
    when: date,
) -> bytes:
    """A Recip-e ``pharmaceuticalprescription`` with one medication item (a CNK product)."""
    root, folder = _message(prescriber_nihii, patient_niss, "RECIPE")
    transaction = _transaction(folder, "pharmaceuticalprescription", when)
    item = _sub(transaction, "item")
    _sub(item, "cd", "medication", S="CD-ITEM", SV="1.11")
    content = _sub(_sub(item, "content"), "medicinalproduct")
    _sub(content, "intendedcd", cnk, S="CD-DRUG-CNK", SV="01-2016")
    _sub(_sub(item, "posology"), "text", posology, L="en")
    return _bytes(root)


def attestation(
    provider_nihii: str, patient_niss: str, *, when: date, nomenclature: str = "101010"
) -> bytes:
    """An eAttest ``cga`` transaction: one claim (a NIHDI nomenclature code) on date ``when``."""
    root, folder = _message(provider_nihii, patient_niss, "MYCARENET")
    transaction = _transaction(folder, "cga", when)
    for kind, text in (("claim", nomenclature), ("encounterdatetime", when.isoformat())):
        item = _sub(transaction, "item")
        _sub(item, "cd", kind, S="CD-ITEM", SV="1.0")
        _sub(_sub(item, "content"), "text", text, L="en")
    return _bytes(root)


def sumehr(author_nihii: str, patient_niss: str, *, when: date, problem: str = "asthma") -> bytes:
    """A hub ``sumehr`` transaction with one problem item."""
    root, folder = _message(author_nihii, patient_niss, "HUB")
    transaction = _transaction(folder, "sumehr", when)
    item = _sub(transaction, "item")
    _sub(item, "cd", "problem", S="CD-ITEM", SV="1.0")
    _sub(_sub(item, "content"), "text", problem, L="en")
    return _bytes(root)
