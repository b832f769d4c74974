"""The one exception tree of garde.

Callers catch these, never a third-party library's errors: each part translates the errors of
its dependencies (yaml, sqlite3, psycopg, lxml...) at its boundary.

    GardeError
    ├── CatalogError                 the catalog cannot be used
    │   ├── CatalogSyntaxError       YAML that does not parse
    │   └── CatalogInvalid           parses, but breaks the schema or its references
    ├── UsageError                   a command or argument the user can correct
    │   ├── SettingsInvalid          a settings or scenario file with problems, located
    │   └── RequestRejected          an HTTP request the gateway refuses to forward (4xx)
    │       └── MalformedMessage     XML/SOAP that is malformed, unsafe (DTD, entities) or wrong:
    │           │                    the one error of ``garde.soap``, wherever a message is read
    │           ├── MessageTooLarge  a body over the size limit (413)
    │           └── UnsupportedEncoding  a body not in UTF-8 (415)
    ├── UpstreamError                a service of the chain did not answer usefully
    │   ├── UpstreamUnavailable      no data center could be reached
    │   │   └── TokenUnavailable     no STS token could be obtained for an identity
    │   ├── UpstreamTimeout          the deadline passed before an answer
    │   └── AttemptFailed            one attempt on one data center failed
    │       ├── ConnectFailed        ... before a byte of the request was sent
    │       └── SentFailed           ... after the request (or part of it) was sent
    ├── JournalError                 the journal cannot accept or deliver
    │   ├── JournalUnavailable       cannot persist now: refuse, never acknowledge
    │   └── EntryNotFound            no entry with that id
    ├── LabError                     the simulated chain could not start or be controlled
    ├── DrillError                   a drill could not be run to its end (not a missed verdict)
    └── MonitorError                 the monitor cannot store, read or publish
        ├── StoreUnavailable         the monitor's database cannot be reached or written
        └── NotFound                 no incident or maintenance window with that id

HTTP-facing errors carry the status they map to, so the gateway and the web parts answer
consistently.
"""

from __future__ import annotations

from dataclasses import dataclass


class GardeError(Exception):
    """Base of every error garde raises on purpose."""

    status: int = 500


@dataclass(frozen=True, slots=True)
class Problem:
    """One thing wrong in a catalog, located precisely enough for a person to fix it."""

    file: str
    line: int | None
    column: int | None
    path: str
    message: str
    hint: str = ""

    def __str__(self) -> str:
        where = self.file
        if self.line is not None:
            where += f":{self.line}"
            if self.column is not None:
                where += f":{self.column}"
        text = f"{where}: {self.path}: {self.message}" if self.path else f"{where}: {self.message}"
        if self.hint:
            text += f" (hint: {self.hint})"
        return text


def _report(subject: str, problems: list[Problem]) -> str:
    count = len(problems)
    head = f"{subject} has {count} problem{'s' if count != 1 else ''}"
    return head + ":\n" + "\n".join(f"  {p}" for p in problems)


class CatalogError(GardeError):
    """The catalog cannot be used. ``problems`` lists every problem found, not just the first."""

    def __init__(self, problems: list[Problem]) -> None:
        self.problems = problems
        super().__init__(_report("catalog", problems))


class CatalogSyntaxError(CatalogError):
    """The YAML itself does not parse."""


class CatalogInvalid(CatalogError):
    """The YAML parses but breaks the schema, references something unknown, or has a cycle."""


class UsageError(GardeError):
    """A command, argument or request the user can correct; the message says how."""

    status = 400


class SettingsInvalid(UsageError):
    """A settings file that cannot be used as written; ``problems`` lists all of them, each
    with its file and line, so that one run shows everything to fix."""

    def __init__(self, subject: str, problems: list[Problem]) -> None:
        self.problems = problems
        super().__init__(_report(subject, problems))


class RequestRejected(UsageError):
    """An HTTP request the gateway will not forward; ``status`` says why (400, 404, 413...)."""

    def __init__(self, status: int, message: str) -> None:
        super().__init__(message)
        self.status = status


class MalformedMessage(RequestRejected):
    """An XML or SOAP message that does not parse, is unsafe (DTD, entities) or is not SOAP.

    The only error ``garde.soap`` raises about a message, for a request as for an answer: a
    request is refused with ``status`` (the gateway and the lab answer it), an answer is
    translated by its reader (an unusable STS answer is an ``UpstreamError``).
    """

    status = 400

    def __init__(self, message: str, *, status: int | None = None) -> None:
        super().__init__(type(self).status if status is None else status, message)


class MessageTooLarge(MalformedMessage):
    """A message over the size limit; refused before any parsing."""

    status = 413


class UnsupportedEncoding(MalformedMessage):
    """A message not in UTF-8: a document type declaration could pass unseen in another."""

    status = 415


class UpstreamError(GardeError):
    """A service of the chain did not answer usefully."""

    status = 502


class UpstreamUnavailable(UpstreamError):
    """No data center of the service could be reached."""

    status = 503


class TokenUnavailable(UpstreamUnavailable):
    """No STS token could be obtained (STS down, or every credential refused)."""


class UpstreamTimeout(UpstreamError):
    """The caller's deadline passed before any data center answered."""

    status = 504


class AttemptFailed(UpstreamError):
    """One attempt on one data center failed; ``reason`` is a short machine word."""

    sent = True

    def __init__(self, reason: str, detail: str = "") -> None:
        super().__init__(f"{reason}: {detail}" if detail else reason)
        self.reason = reason


class ConnectFailed(AttemptFailed):
    """Nothing was sent: any operation may be retried on another data center."""

    sent = False


class SentFailed(AttemptFailed):
    """The request may have reached the service: only retry-safe operations are retried."""


class JournalError(GardeError):
    """The journal cannot accept or deliver."""


class JournalUnavailable(JournalError):
    """The journal cannot persist right now: the write must be refused, never acknowledged."""

    status = 503


class EntryNotFound(JournalError):
    """No journal entry (or receipt) with that id."""

    status = 404


class DrillError(GardeError):
    """A drill could not be run to its end: a process would not start, the lab would not answer.

    A drill that ran and missed an expectation is not an error: its report says so."""


class LabError(GardeError):
    """The simulated chain could not start or be controlled."""


class MonitorError(GardeError):
    """The monitor cannot store, read or publish."""


class StoreUnavailable(MonitorError):
    """The monitor's database cannot be reached or written (the message says which)."""

    status = 503


class NotFound(MonitorError):
    """No incident or maintenance window with that id."""

    status = 404
