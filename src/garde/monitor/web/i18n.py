"""The status page's own words in the three languages of the care providers.

Procedure texts and group names come from the catalog; these are the page's labels only.
"""

from __future__ import annotations

from garde.locales import LANGUAGES, pick_language

__all__ = ["LANGUAGES", "labels", "pick_language", "span"]

_LABELS: dict[str, dict[str, str]] = {
    "title": {
        "en": "eHealth chain status",
        "fr": "État de la chaîne eHealth",
        "nl": "Status van de eHealth-keten",
    },
    "overall": {"en": "Overall", "fr": "Global", "nl": "Globaal"},
    "groups": {"en": "By profession", "fr": "Par profession", "nl": "Per beroep"},
    "services": {
        "en": "Services and data centers",
        "fr": "Services et centres de données",
        "nl": "Diensten en datacenters",
    },
    "compact_services": {
        "en": "Each service's availability and response times are on its own page (its name).",
        "fr": "La disponibilité et les temps de réponse de chaque service sont sur sa page"
        " (son nom).",
        "nl": "De beschikbaarheid en antwoordtijden van elke dienst staan op zijn eigen"
        " pagina (zijn naam).",
    },
    "incidents": {
        "en": "Current incidents",
        "fr": "Incidents en cours",
        "nl": "Lopende incidenten",
    },
    "no_incidents": {
        "en": "No incident in progress.",
        "fr": "Aucun incident en cours.",
        "nl": "Geen lopend incident.",
    },
    "maintenance": {
        "en": "Planned maintenance",
        "fr": "Maintenance planifiée",
        "nl": "Gepland onderhoud",
    },
    "no_maintenance": {
        "en": "No maintenance planned.",
        "fr": "Aucune maintenance planifiée.",
        "nl": "Geen onderhoud gepland.",
    },
    "register": {
        "en": "Incident register (90 days)",
        "fr": "Registre des incidents (90 jours)",
        "nl": "Incidentenregister (90 dagen)",
    },
    "no_register": {
        "en": "No incident in 90 days.",
        "fr": "Aucun incident en 90 jours.",
        "nl": "Geen incident in 90 dagen.",
    },
    "impacted_by": {"en": "because of", "fr": "à cause de", "nl": "door"},
    "since": {"en": "since", "fr": "depuis", "nl": "sinds"},
    "started": {"en": "Started", "fr": "Début", "nl": "Begin"},
    "resolved": {"en": "Resolved", "fr": "Résolu", "nl": "Opgelost"},
    "ongoing": {"en": "ongoing", "fr": "en cours", "nl": "lopend"},
    "title_outage": {
        "en": "outage, no data center answers",
        "fr": "panne, aucun centre de données ne répond",
        "nl": "storing, geen enkel datacenter antwoordt",
    },
    "title_degraded": {
        "en": "degraded, slow answers",
        "fr": "dégradé, réponses lentes",
        "nl": "verstoord, trage antwoorden",
    },
    "title_reduced_redundancy": {
        "en": "reduced redundancy, a data center is down; the others serve",
        "fr": "redondance réduite, un centre de données est à l'arrêt ; les autres servent",
        "nl": "verminderde redundantie, een datacenter ligt stil; de andere bedienen",
    },
    "for_title": {"en": "For {group}", "fr": "Pour {group}", "nl": "Voor {group}"},
    "works": {"en": "works normally", "fr": "fonctionne normalement", "nl": "werkt normaal"},
    "all_works": {
        "en": "Everything your work needs online works normally.",
        "fr": "Tout ce dont votre travail a besoin en ligne fonctionne normalement.",
        "nl": "Alles wat uw werk online nodig heeft, werkt normaal.",
    },
    "now_stopped": {
        "en": "Stopped now: {what}. Follow the procedure below.",
        "fr": "À l'arrêt maintenant : {what}. Suivez la procédure ci-dessous.",
        "nl": "Nu stilgelegd: {what}. Volg de procedure hieronder.",
    },
    "now_degraded": {
        "en": "Works differently now: {what}.",
        "fr": "Fonctionne autrement maintenant : {what}.",
        "nl": "Werkt nu anders: {what}.",
    },
    "what_to_do": {"en": "What to do", "fr": "Que faire", "nl": "Wat te doen"},
    "next_update": {
        "en": "This page reloads every minute; next update at {at}.",
        "fr": "Cette page se recharge chaque minute ; prochaine mise à jour à {at}.",
        "nl": "Deze pagina herlaadt elke minuut; volgende update om {at}.",
    },
    "other_professions": {
        "en": "Other professions",
        "fr": "Autres professions",
        "nl": "Andere beroepen",
    },
    "because_of": {"en": "because of", "fr": "à cause de", "nl": "door"},
    "banner_down": {
        "en": "Down in every data center: {what}.",
        "fr": "En panne dans tous les centres : {what}.",
        "nl": "Buiten dienst in alle datacenters: {what}.",
    },
    "banner_stopped": {
        "en": "Work stopped for: {who} (see their page for what to do).",
        "fr": "Travail à l'arrêt pour : {who} (voir leur page pour savoir que faire).",
        "nl": "Werk stilgelegd voor: {who} (zie hun pagina voor wat te doen).",
    },
    "also_impacted": {"en": "Also impacted", "fr": "Également touchés", "nl": "Ook getroffen"},
    "availability_90": {
        "en": "Availability, last 90 days",
        "fr": "Disponibilité, 90 jours",
        "nl": "Beschikbaarheid, 90 dagen",
    },
    "latency_48": {
        "en": "Mean latency, 48 h",
        "fr": "Latence moyenne, 48 h",
        "nl": "Gemiddelde latentie, 48 u",
    },
    "no_impact": {
        "en": "Nothing stops you: work as usual.",
        "fr": "Rien ne vous arrête : travaillez normalement.",
        "nl": "Niets houdt u tegen: werk zoals gewoonlijk.",
    },
    "updated": {"en": "Updated", "fr": "Mis à jour", "nl": "Bijgewerkt"},
    "recurring": {"en": "recurring", "fr": "récurrente", "nl": "terugkerend"},
    "operational": {"en": "Operational", "fr": "Opérationnel", "nl": "Operationeel"},
    "reduced_redundancy": {
        "en": "Reduced redundancy",
        "fr": "Redondance réduite",
        "nl": "Verminderde redundantie",
    },
    "degraded": {"en": "Degraded", "fr": "Dégradé", "nl": "Verstoord"},
    "outage": {"en": "Outage", "fr": "Panne", "nl": "Storing"},
    "up": {"en": "up", "fr": "en service", "nl": "werkt"},
    "down": {"en": "down", "fr": "hors service", "nl": "buiten dienst"},
    "unknown": {"en": "not probed yet", "fr": "pas encore sondé", "nl": "nog niet gemeten"},
    "unaffected": {"en": "Unaffected", "fr": "Non touché", "nl": "Niet getroffen"},
    "stopped": {"en": "Stopped", "fr": "À l'arrêt", "nl": "Stilgelegd"},
    "failover": {
        "en": "served by another data center",
        "fr": "servi par un autre centre",
        "nl": "bediend door een ander datacenter",
    },
    "journal": {
        "en": "kept by garde, sent later",
        "fr": "conservé par garde, envoyé plus tard",
        "nl": "bewaard door garde, later verstuurd",
    },
    "stale_read": {
        "en": "last known answer",
        "fr": "dernière réponse connue",
        "nl": "laatst gekende antwoord",
    },
    "refuse": {"en": "unavailable", "fr": "indisponible", "nl": "onbeschikbaar"},
    "major": {"en": "major", "fr": "majeur", "nl": "ernstig"},
    "open": {"en": "Ongoing", "fr": "En cours", "nl": "Lopend"},
    "duration": {"en": "Duration", "fr": "Durée", "nl": "Duur"},
    "timeline": {"en": "Timeline", "fr": "Chronologie", "nl": "Tijdlijn"},
    "affected": {
        "en": "Who is affected, and what to do",
        "fr": "Qui est touché, et que faire",
        "nl": "Wie is getroffen, en wat te doen",
    },
    "no_group_affected": {
        "en": "No profession's daily work depends on this service.",
        "fr": "Aucune profession n'en dépend pour son travail quotidien.",
        "nl": "Geen beroep hangt er voor zijn dagelijks werk van af.",
    },
    "procedure_link": {"en": "the procedure", "fr": "la procédure", "nl": "de procedure"},
    "back": {"en": "All services", "fr": "Tous les services", "nl": "Alle diensten"},
    "incident": {"en": "Incident", "fr": "Incident", "nl": "Incident"},
    "minor": {"en": "minor", "fr": "mineur", "nl": "beperkt"},
    "sla": {
        "en": "Monthly SLA report",
        "fr": "Rapport SLA mensuel",
        "nl": "Maandelijks SLA-rapport",
    },
    "sla_intro": {
        "en": "Availability over the time observed, maintenance windows excluded; never"
        " extrapolated to the rest of the month.",
        "fr": "Disponibilité sur le temps observé, fenêtres de maintenance exclues ; jamais"
        " extrapolée au reste du mois.",
        "nl": "Beschikbaarheid over de waargenomen tijd, onderhoudsvensters uitgesloten; nooit"
        " doorgetrokken naar de rest van de maand.",
    },
    "sla_threshold": {
        "en": "No figure with less than {coverage} of the period observed, or less than {minimum}.",
        "fr": "Pas de chiffre si moins de {coverage} de la période est observé, ou moins de"
        " {minimum}.",
        "nl": "Geen cijfer als minder dan {coverage} van de periode is waargenomen, of minder"
        " dan {minimum}.",
    },
    "period": {"en": "Period", "fr": "Période", "nl": "Periode"},
    "month_running": {
        "en": "month in progress",
        "fr": "mois en cours",
        "nl": "lopende maand",
    },
    "service": {"en": "Service", "fr": "Service", "nl": "Dienst"},
    "availability": {"en": "Availability", "fr": "Disponibilité", "nl": "Beschikbaarheid"},
    "downtime_observed": {
        "en": "Downtime observed (min)",
        "fr": "Indisponibilité observée (min)",
        "nl": "Waargenomen onbeschikbaarheid (min)",
    },
    "maintenance_min": {
        "en": "Maintenance (min)",
        "fr": "Maintenance (min)",
        "nl": "Onderhoud (min)",
    },
    "incident_count": {"en": "Incidents", "fr": "Incidents", "nl": "Incidenten"},
    "observed": {"en": "Observed", "fr": "Observé", "nl": "Waargenomen"},
    "coverage": {"en": "Coverage", "fr": "Couverture", "nl": "Dekking"},
    "insufficient_data": {
        "en": "insufficient data",
        "fr": "données insuffisantes",
        "nl": "onvoldoende gegevens",
    },
    "insufficient_for": {
        "en": "insufficient data ({span} observed)",
        "fr": "données insuffisantes ({span} d'observation)",
        "nl": "onvoldoende gegevens ({span} waargenomen)",
    },
    "over_observed": {
        "en": "over {span} observed",
        "fr": "sur {span} d'observation",
        "nl": "over {span} waargenomen",
    },
}

_UNITS = {"en": ("d", "h", "min"), "fr": ("j", "h", "min"), "nl": ("d", "u", "min")}
"""Day, hour and minute, as durations are written in each language."""


def labels(language: str) -> dict[str, str]:
    lang = language if language in LANGUAGES else "en"
    return {key: texts[lang] for key, texts in _LABELS.items()}


def span(seconds: float, language: str) -> str:
    """A duration in ``language``'s units: ``45 j 3 h``, ``3 u 20 min``, ``12 min``."""
    from garde.monitor.observed import duration

    return duration(seconds, _UNITS.get(language, _UNITS["en"]))
