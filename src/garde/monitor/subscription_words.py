"""The words of subscriptions (the form, its pages, its errors and the messages sent), in
the three languages of the care providers. The incident's own description stays as the
monitor wrote it; the procedures come from the catalog, in the subscriber's language."""

from __future__ import annotations

from garde.locales import LANGUAGES

_WORDS: dict[str, dict[str, str]] = {
    "sub_title": {
        "en": "Notifications for {group}",
        "fr": "Notifications pour : {group}",
        "nl": "Meldingen voor {group}",
    },
    "sub_intro": {
        "en": "Get a message when an incident that concerns you starts, changes or ends. Give"
        " an e-mail address, an apprise URL (ntfy://, mailto://, json://...) or a webhook URL"
        " (https://...). A confirmation link comes first: nothing else is sent before you"
        " confirm, and every message has a link to unsubscribe.",
        "fr": "Recevez un message quand un incident qui vous concerne commence, change ou se"
        " termine. Indiquez une adresse e-mail, une URL apprise (ntfy://, mailto://, json://...)"
        " ou l'URL d'un webhook (https://...). Un lien de confirmation arrive d'abord : rien"
        " d'autre n'est envoyé avant votre confirmation, et chaque message contient un lien de"
        " désinscription.",
        "nl": "Ontvang een bericht wanneer een incident dat u aangaat begint, verandert of"
        " eindigt. Geef een e-mailadres, een apprise-URL (ntfy://, mailto://, json://...) of een"
        " webhook-URL (https://...). Eerst komt een bevestigingslink: niets anders wordt"
        " verstuurd voor u bevestigt, en elk bericht bevat een link om u af te melden.",
    },
    "sub_channel": {
        "en": "E-mail address or URL",
        "fr": "Adresse e-mail ou URL",
        "nl": "E-mailadres of URL",
    },
    "sub_button": {"en": "Subscribe", "fr": "S'abonner", "nl": "Abonneren"},
    "sub_feed": {
        "en": "Or follow this profession's Atom feed",
        "fr": "Ou suivez le flux Atom de cette profession",
        "nl": "Of volg de Atom-feed van dit beroep",
    },
    "sub_page": {
        "en": "Subscribe on a page of its own (it does not refresh while you type)",
        "fr": "S'abonner sur une page à part (elle ne se rafraîchit pas pendant la saisie)",
        "nl": "Abonneren op een eigen pagina (die niet ververst terwijl u typt)",
    },
    "sub_sent": {
        "en": "Check your messages: a confirmation link was sent to {address}. It is valid"
        " for {hours} hours. Nothing else is sent before you confirm.",
        "fr": "Consultez vos messages : un lien de confirmation a été envoyé à {address}. Il"
        " est valable {hours} heures. Rien d'autre n'est envoyé avant votre confirmation.",
        "nl": "Bekijk uw berichten: er is een bevestigingslink verstuurd naar {address}. Hij"
        " is {hours} uur geldig. Niets anders wordt verstuurd voor u bevestigt.",
    },
    "sub_refused": {"en": "Not subscribed", "fr": "Pas d'abonnement", "nl": "Niet geabonneerd"},
    "back": {"en": "Back", "fr": "Retour", "nl": "Terug"},
    "confirm_title": {
        "en": "Confirm your subscription",
        "fr": "Confirmez votre abonnement",
        "nl": "Bevestig uw abonnement",
    },
    "confirm_text": {
        "en": "{address} will receive the incidents that concern {group}.",
        "fr": "{address} recevra les incidents qui concernent : {group}.",
        "nl": "{address} ontvangt de incidenten die {group} aangaan.",
    },
    "confirm_button": {"en": "Confirm", "fr": "Confirmer", "nl": "Bevestigen"},
    "confirm_unknown": {
        "en": "This confirmation link is not valid (any more): it was used already, or it"
        " expired after {hours} hours. Subscribe again from your profession's page.",
        "fr": "Ce lien de confirmation n'est pas (plus) valable : il a déjà servi, ou il a"
        " expiré après {hours} heures. Abonnez-vous à nouveau depuis la page de votre"
        " profession.",
        "nl": "Deze bevestigingslink is niet (meer) geldig: hij is al gebruikt, of hij is na"
        " {hours} uur verlopen. Abonneer u opnieuw vanaf de pagina van uw beroep.",
    },
    "confirmed_title": {
        "en": "Subscription confirmed",
        "fr": "Abonnement confirmé",
        "nl": "Abonnement bevestigd",
    },
    "secret_text": {
        "en": "Your webhook's secret, shown only now: keep it. Every delivery carries the"
        " header Garde-Signature: sha256=HMAC-SHA256(secret, body).",
        "fr": "Le secret de votre webhook, affiché une seule fois : conservez-le. Chaque envoi"
        " porte l'en-tête Garde-Signature: sha256=HMAC-SHA256(secret, corps).",
        "nl": "Het geheim van uw webhook, alleen nu getoond: bewaar het. Elke zending draagt"
        " de header Garde-Signature: sha256=HMAC-SHA256(geheim, body).",
    },
    "unsubscribe_where": {
        "en": "To stop, open this link (it is also in every message):",
        "fr": "Pour arrêter, ouvrez ce lien (il figure aussi dans chaque message) :",
        "nl": "Om te stoppen, open deze link (hij staat ook in elk bericht):",
    },
    "unsub_title": {"en": "Unsubscribe", "fr": "Se désabonner", "nl": "Afmelden"},
    "unsub_text": {
        "en": "Stop sending the incidents that concern {group} to {address}?",
        "fr": "Arrêter d'envoyer à {address} les incidents qui concernent : {group} ?",
        "nl": "Stoppen met het versturen van de incidenten voor {group} naar {address}?",
    },
    "unsub_button": {"en": "Unsubscribe", "fr": "Se désabonner", "nl": "Afmelden"},
    "unsub_done": {
        "en": "You are unsubscribed: nothing more is sent, and the address is deleted.",
        "fr": "Vous êtes désabonné : plus rien n'est envoyé, et l'adresse est effacée.",
        "nl": "U bent afgemeld: er wordt niets meer verstuurd, en het adres is gewist.",
    },
    "unsub_unknown": {
        "en": "This subscription does not exist (any more): nothing is sent to it.",
        "fr": "Cet abonnement n'existe pas (plus) : rien ne lui est envoyé.",
        "nl": "Dit abonnement bestaat niet (meer): er wordt niets naar verstuurd.",
    },
    # -- what was wrong, and how to fix it ------------------------------------------------
    "err_empty": {
        "en": "Nothing was entered. Type an e-mail address (name@example.org), an apprise URL"
        " (ntfy://my-topic) or a webhook URL (https://...).",
        "fr": "Rien n'a été saisi. Tapez une adresse e-mail (nom@example.org), une URL apprise"
        " (ntfy://mon-sujet) ou l'URL d'un webhook (https://...).",
        "nl": "Er is niets ingevuld. Typ een e-mailadres (naam@example.org), een apprise-URL"
        " (ntfy://mijn-onderwerp) of een webhook-URL (https://...).",
    },
    "err_long": {
        "en": "This is longer than {max} characters: give a shorter address or URL.",
        "fr": "Cela dépasse {max} caractères : donnez une adresse ou une URL plus courte.",
        "nl": "Dit is langer dan {max} tekens: geef een korter adres of een kortere URL.",
    },
    "err_space": {
        "en": "An address or URL has no spaces or line breaks: remove them.",
        "fr": "Une adresse ou une URL ne contient ni espace ni retour à la ligne : retirez-les.",
        "nl": "Een adres of URL bevat geen spaties of regeleinden: verwijder ze.",
    },
    "err_email": {
        "en": "'{given}' is not an e-mail address: write it as name@example.org, or give a"
        " URL starting with its scheme (ntfy://, https://...).",
        "fr": "'{given}' n'est pas une adresse e-mail : écrivez-la comme nom@example.org, ou"
        " donnez une URL qui commence par son schéma (ntfy://, https://...).",
        "nl": "'{given}' is geen e-mailadres: schrijf het als naam@example.org, of geef een URL"
        " die met haar schema begint (ntfy://, https://...).",
    },
    "err_no_mail": {
        "en": "This monitor does not send e-mail. Give an apprise URL (ntfy://my-topic) or a"
        " webhook URL instead, or ask its operator to set subscribe_mail.",
        "fr": "Ce moniteur n'envoie pas d'e-mail. Donnez plutôt une URL apprise"
        " (ntfy://mon-sujet) ou l'URL d'un webhook, ou demandez à son opérateur de régler"
        " subscribe_mail.",
        "nl": "Deze monitor verstuurt geen e-mail. Geef in de plaats een apprise-URL"
        " (ntfy://mijn-onderwerp) of een webhook-URL, of vraag de beheerder subscribe_mail in"
        " te stellen.",
    },
    "err_url": {
        "en": "'{given}' is not a usable URL: check the host name and the port (a number).",
        "fr": "'{given}' n'est pas une URL utilisable : vérifiez le nom d'hôte et le port"
        " (un nombre).",
        "nl": "'{given}' is geen bruikbare URL: controleer de hostnaam en de poort (een getal).",
    },
    "err_private": {
        "en": "'{host}' is on a private or local network, which this monitor does not send"
        " to: give an address reachable from the internet.",
        "fr": "'{host}' est sur un réseau privé ou local, vers lequel ce moniteur n'envoie"
        " rien : donnez une adresse joignable depuis internet.",
        "nl": "'{host}' ligt op een privé- of lokaal netwerk, waarnaar deze monitor niets"
        " verstuurt: geef een adres dat vanaf het internet bereikbaar is.",
    },
    "err_scheme": {
        "en": "'{scheme}://' is not a channel this monitor sends to. Use an e-mail address,"
        " https://, or one of: {known}.",
        "fr": "'{scheme}://' n'est pas un canal vers lequel ce moniteur envoie. Utilisez une"
        " adresse e-mail, https://, ou l'un de : {known}.",
        "nl": "'{scheme}://' is geen kanaal waarnaar deze monitor verstuurt. Gebruik een"
        " e-mailadres, https://, of een van: {known}.",
    },
    "err_apprise": {
        "en": "apprise does not understand this {scheme}:// URL: check it against the"
        " apprise documentation of {scheme}.",
        "fr": "apprise ne comprend pas cette URL {scheme}:// : vérifiez-la dans la"
        " documentation d'apprise pour {scheme}.",
        "nl": "apprise begrijpt deze {scheme}://-URL niet: controleer ze in de documentatie"
        " van apprise voor {scheme}.",
    },
    "err_group": {
        "en": "No such profession; known: {known}.",
        "fr": "Profession inconnue ; connues : {known}.",
        "nl": "Onbekend beroep; bekend: {known}.",
    },
    "err_rate": {
        "en": "Too many requests from your address: try again in an hour.",
        "fr": "Trop de demandes depuis votre adresse : réessayez dans une heure.",
        "nl": "Te veel aanvragen vanaf uw adres: probeer het over een uur opnieuw.",
    },
    "err_rate_address": {
        "en": "Confirmation links were already sent to this address today: use the last one,"
        " or try again tomorrow.",
        "fr": "Des liens de confirmation ont déjà été envoyés à cette adresse aujourd'hui :"
        " utilisez le dernier, ou réessayez demain.",
        "nl": "Er zijn vandaag al bevestigingslinks naar dit adres verstuurd: gebruik de"
        " laatste, of probeer het morgen opnieuw.",
    },
    "err_busy": {
        "en": "Too many subscriptions wait for their confirmation: try again in a few hours.",
        "fr": "Trop d'abonnements attendent leur confirmation : réessayez dans quelques heures.",
        "nl": "Te veel abonnementen wachten op bevestiging: probeer het over enkele uren opnieuw.",
    },
    "err_form": {
        "en": "The form could not be read: send it again from the profession's page.",
        "fr": "Le formulaire n'a pas pu être lu : renvoyez-le depuis la page de la profession.",
        "nl": "Het formulier kon niet gelezen worden: verstuur het opnieuw vanaf de pagina van"
        " het beroep.",
    },
    # -- the messages sent ----------------------------------------------------------------
    "msg_confirm_subject": {
        "en": "[garde] Confirm your subscription: {group}",
        "fr": "[garde] Confirmez votre abonnement : {group}",
        "nl": "[garde] Bevestig uw abonnement: {group}",
    },
    "msg_confirm_body": {
        "en": "Someone, hopefully you, asked that this address receive the incidents of the"
        " eHealth chain that concern {group}. To confirm, open:\n{url}\nThe link is valid for"
        " {hours} hours. If you did not ask, ignore this message: nothing will be sent.",
        "fr": "Quelqu'un, sans doute vous, a demandé que cette adresse reçoive les incidents"
        " de la chaîne eHealth qui concernent : {group}. Pour confirmer, ouvrez :\n{url}\nLe"
        " lien est valable {hours} heures. Si vous n'avez rien demandé, ignorez ce message :"
        " rien ne sera envoyé.",
        "nl": "Iemand, hopelijk u, vroeg dat dit adres de incidenten van de eHealth-keten"
        " ontvangt die {group} aangaan. Open om te bevestigen:\n{url}\nDe link is {hours} uur"
        " geldig. Vroeg u niets, negeer dan dit bericht: er wordt niets verstuurd.",
    },
    "incident.opened": {"en": "Incident", "fr": "Incident", "nl": "Incident"},
    "incident.updated": {
        "en": "Incident update",
        "fr": "Incident, mise à jour",
        "nl": "Incident, update",
    },
    "incident.operator_update": {
        "en": "Incident update",
        "fr": "Incident, mise à jour",
        "nl": "Incident, update",
    },
    "incident.resolved": {"en": "Resolved", "fr": "Résolu", "nl": "Opgelost"},
    "msg_for_you": {
        "en": "What it means for {group}:",
        "fr": "Ce que cela signifie pour : {group}",
        "nl": "Wat het betekent voor {group}:",
    },
    "msg_over": {
        "en": "It is over: everything works as usual again.",
        "fr": "C'est terminé : tout fonctionne à nouveau normalement.",
        "nl": "Het is voorbij: alles werkt weer zoals gewoonlijk.",
    },
    "msg_follow": {"en": "Follow it:", "fr": "Suivre l'incident :", "nl": "Volg het:"},
    "msg_unsubscribe": {
        "en": "Unsubscribe:",
        "fr": "Se désabonner :",
        "nl": "Afmelden:",
    },
}


def words(language: str) -> dict[str, str]:
    """Every word of subscriptions in ``language`` (English for an unknown one)."""
    lang = language if language in LANGUAGES else "en"
    return {key: texts[lang] for key, texts in _WORDS.items()}
