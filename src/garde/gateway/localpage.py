"""The gateway's own page, ``GET /_garde/``: for the pharmacy's or the practice's IT person.

What each service's mode is here, what the journal holds (by state, the oldest, the writes
waiting for a newer token of their caller), a receipt looked up by its id, and what to tell
the staff now (the catalog's procedures for this gateway's target group). The same guard as
every admin endpoint (loopback, or the admin token). Times in Europe/Brussels with their
offset; ``/_garde/status`` stays the machines' JSON.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from typing import TYPE_CHECKING

from jinja2 import Environment, PackageLoader, select_autoescape

from garde.errors import EntryNotFound, JournalError
from garde.journal import Backlog, Receipt, State
from garde.locales import LANGUAGES, pick_language
from garde.locales import local_time as _local_time

if TYPE_CHECKING:
    from garde.gateway.handler import Gateway

_MODE_ORDER = {"offline": -2, "degraded": -1, "normal": 0}
RECEIPT_ID_MAX = 128

_WORDS: dict[str, dict[str, str]] = {
    "title": {"en": "garde gateway", "fr": "Passerelle garde", "nl": "garde-gateway"},
    "tell": {
        "en": "What to tell the staff now",
        "fr": "Ce qu'il faut dire à l'équipe maintenant",
        "nl": "Wat u het team nu zegt",
    },
    "all_normal": {
        "en": "Every service answers normally: nothing to change.",
        "fr": "Tous les services répondent normalement : rien à changer.",
        "nl": "Alle diensten antwoorden normaal: niets te veranderen.",
    },
    "no_procedure": {
        "en": "The catalog names no procedure: call the service's helpdesk.",
        "fr": "Le catalogue ne nomme aucune procédure : appelez le helpdesk du service.",
        "nl": "De catalogus noemt geen procedure: bel de helpdesk van de dienst.",
    },
    "services": {"en": "Services", "fr": "Services", "nl": "Diensten"},
    "service": {"en": "Service", "fr": "Service", "nl": "Dienst"},
    "mode": {"en": "Mode", "fr": "Mode", "nl": "Modus"},
    "data_center": {"en": "Data center", "fr": "Centre de données", "nl": "Datacenter"},
    "waiting": {"en": "Waiting", "fr": "En attente", "nl": "Wachtend"},
    "normal": {"en": "normal", "fr": "normal", "nl": "normaal"},
    "degraded": {"en": "degraded", "fr": "dégradé", "nl": "verminderd"},
    "offline": {"en": "offline", "fr": "hors ligne", "nl": "offline"},
    "journal": {"en": "Journal", "fr": "Journal", "nl": "Journaal"},
    "no_journal": {
        "en": "This gateway runs without a journal: writes are refused while a service is down.",
        "fr": "Cette passerelle tourne sans journal : les écritures sont refusées pendant une"
        " panne.",
        "nl": "Deze gateway draait zonder journaal: schrijfacties worden geweigerd tijdens een"
        " storing.",
    },
    "journal_error": {
        "en": "The journal cannot be read now",
        "fr": "Le journal ne peut pas être lu maintenant",
        "nl": "Het journaal kan nu niet worden gelezen",
    },
    "empty": {
        "en": "Nothing waits: every acknowledged write was delivered.",
        "fr": "Rien n'attend : chaque écriture acceptée a été transmise.",
        "nl": "Niets wacht: elke aanvaarde schrijfactie is afgeleverd.",
    },
    "state": {"en": "State", "fr": "État", "nl": "Toestand"},
    "entries": {"en": "Entries", "fr": "Entrées", "nl": "Items"},
    "oldest": {"en": "Oldest since", "fr": "La plus ancienne depuis", "nl": "Oudste sinds"},
    "needs_token": {
        "en": "writes wait for a newer token of their caller: the next sign-in of that"
        " person's software releases them",
        "fr": "écritures attendent un nouveau jeton de leur auteur : la prochaine connexion"
        " de son logiciel les libère",
        "nl": "schrijfacties wachten op een nieuw token van hun auteur: de volgende aanmelding"
        " van diens software geeft ze vrij",
    },
    "lookup": {
        "en": "Look up a receipt",
        "fr": "Chercher un reçu",
        "nl": "Een ontvangstbewijs opzoeken",
    },
    "receipt_id": {"en": "Receipt id", "fr": "Numéro du reçu", "nl": "Nummer van het bewijs"},
    "go": {"en": "Look up", "fr": "Chercher", "nl": "Opzoeken"},
    "not_found": {
        "en": "No receipt with this id in this gateway's journal.",
        "fr": "Aucun reçu avec ce numéro dans le journal de cette passerelle.",
        "nl": "Geen ontvangstbewijs met dit nummer in het journaal van deze gateway.",
    },
    "bad_id": {
        "en": "A receipt id is the value of the Garde-Receipt header (letters and digits).",
        "fr": "Un numéro de reçu est la valeur de l'en-tête Garde-Receipt (lettres et chiffres).",
        "nl": "Een bewijsnummer is de waarde van de header Garde-Receipt (letters en cijfers).",
    },
    "keep_paper": {
        "en": "Keep the paper proof until the state says delivered.",
        "fr": "Gardez la preuve papier jusqu'à ce que l'état indique delivered.",
        "nl": "Bewaar het papieren bewijs tot de toestand delivered zegt.",
    },
    "updated": {"en": "Updated", "fr": "Mis à jour", "nl": "Bijgewerkt"},
    "attempts": {"en": "Attempts", "fr": "Tentatives", "nl": "Pogingen"},
    "last_error": {"en": "Last error", "fr": "Dernière erreur", "nl": "Laatste fout"},
    "as_of": {"en": "As of", "fr": "État au", "nl": "Stand van"},
    "group": {"en": "Care providers", "fr": "Prestataires", "nl": "Zorgverleners"},
    "any_group": {"en": "any", "fr": "tous", "nl": "alle"},
}

_ENV = Environment(
    loader=PackageLoader("garde.gateway", "templates"),
    autoescape=select_autoescape(default=True, default_for_string=True),
    trim_blocks=True,
    lstrip_blocks=True,
)


def local_time(moment: float) -> str:
    """``2026-12-02 09:38:05 +01:00``: to the second (an IT person compares log lines)."""
    return _local_time(moment, seconds=True)


def language_of(query: dict[str, str], accept: str | None) -> str:
    return pick_language(query.get("lang"), accept)


@dataclass(frozen=True, slots=True)
class Advice:
    service: str
    mode: str
    operation: str
    procedure: str | None
    link: str | None


async def render(
    gateway: Gateway, status: dict[str, object], language: str, receipt_id: str | None
) -> bytes:
    """The page, from the gateway's status (``Admin.status``) and its journal."""
    words = {key: texts[language] for key, texts in _WORDS.items()}
    catalog = gateway.catalog
    services = status["services"]
    assert isinstance(services, dict)
    group = gateway.config.target_group
    advice: list[Advice] = []
    rows = []
    for sid, entry in services.items():
        mode = str(entry["mode"])
        service = catalog.services[sid]
        rows.append(
            {
                "name": service.name,
                "mode": mode,
                "mode_word": words.get(mode, mode),
                "data_center": entry.get("data_center") or "—",
                "depth": entry.get("journal_depth"),
            }
        )
        if mode == "normal":
            continue
        for target in catalog.target_groups.values():
            if group is not None and target.id != group:
                continue
            for critical in target.critical:
                if critical.service != sid:
                    continue
                procedure = catalog.procedure_for(sid, critical.operation_id, target.id)
                advice.append(
                    Advice(
                        service.name,
                        words.get(mode, mode),
                        critical.operation_id,
                        None if procedure is None else procedure.text.get(language),
                        None if procedure is None else procedure.link,
                    )
                )
    rows.sort(key=lambda r: _MODE_ORDER.get(str(r["mode"]), 0))  # what is down comes first
    journal = gateway.callers.journal
    backlog: Backlog | None = None
    journal_error = None
    if journal is not None:
        try:
            backlog = await journal.backlog()
        except JournalError as exc:
            journal_error = str(exc)
    states: dict[str, tuple[int, float]] = {}
    if backlog is not None:
        for g in backlog.groups:
            count, oldest = states.get(g.state.value, (0, g.oldest))
            states[g.state.value] = (count + g.count, min(oldest, g.oldest))
    receipt: Receipt | None = None
    receipt_problem = None
    if receipt_id is not None:
        receipt_id = receipt_id.strip()
        if journal is None:
            receipt_problem = words["no_journal"]
        elif not receipt_id or len(receipt_id) > RECEIPT_ID_MAX or not receipt_id.isalnum():
            receipt_problem = words["bad_id"]
        else:
            try:
                receipt = await journal.receipt(receipt_id)
            except EntryNotFound:
                receipt_problem = words["not_found"]
            except JournalError as exc:
                receipt_problem = f"{words['journal_error']}: {exc}"
    template = _ENV.get_template("local.html")
    page = template.render(
        w=words,
        lang=language,
        languages=LANGUAGES,
        catalog=catalog.name,
        group=group or words["any_group"],
        now=local_time(time.time()),
        rows=rows,
        advice=advice,
        has_journal=journal is not None,
        journal_error=journal_error,
        states=[
            {"state": s, "count": n, "oldest": local_time(o)}
            for s, (n, o) in sorted(states.items())
        ],
        needs_token=states.get(State.NEEDS_TOKEN.value, (0, 0.0))[0],
        receipt=receipt,
        receipt_id=receipt_id or "",
        receipt_problem=receipt_problem,
        local_time=local_time,
    )
    return page.encode("utf-8")
