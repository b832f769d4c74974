"""Where garde's stores live, for the journal and the monitor alike: one URL syntax, one
schema-name rule, one SQL dialect switch, and each store's default place.

Light on purpose (no database driver is imported here): the command line reads the defaults
for its ``--help`` without loading a store. The catalog never imports this module.
"""

from __future__ import annotations

import functools
import re
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import unquote, urlsplit

from garde.errors import UsageError

POSTGRES_SCHEMES = ("postgresql", "postgres")
_SCHEME = re.compile(r"^(?P<scheme>[A-Za-z][A-Za-z0-9+.-]*)://")
_SCHEMA_NAME = re.compile(r"^[a-z_][a-z0-9_]{0,62}$")
_PASSWORD = re.compile(r"://([^:/@]+):[^@]*@")


@dataclass(frozen=True, slots=True)
class Place:
    """One store's place: what it is called in messages, its default URL, and the environment
    variable that names another. (The default PostgreSQL schema is each backend's own.)"""

    what: str
    default: str
    env: str


# Both defaults here, not in the stores' packages: ``garde --help`` shows them without
# importing a store (the monitor's pulls in its probes, the journal's its sealing).
JOURNAL = Place("journal", "sqlite:///garde-journal.db", "GARDE_JOURNAL")
MONITOR = Place("monitor database", "sqlite:///garde-monitor.sqlite", "GARDE_MONITOR_DB")

FORMS = "use sqlite:///PATH or postgresql://USER@HOST/DB[?schema=NAME], or a plain file path"


@dataclass(frozen=True, slots=True)
class SqliteUrl:
    """An embedded SQLite file (or ``:memory:``)."""

    path: str

    @property
    def file(self) -> Path:
        return Path(self.path)


@dataclass(frozen=True, slots=True)
class PostgresUrl:
    """A PostgreSQL database: ``conninfo`` is the URL as given, less its ``schema`` parameter,
    which libpq would refuse; every other parameter stays as written, repeats included."""

    conninfo: str
    schema: str | None


StoreUrl = SqliteUrl | PostgresUrl


def is_postgres(text: str) -> bool:
    """Whether ``text`` names a PostgreSQL database (it may still be malformed)."""
    found = _SCHEME.match(text)
    return found is not None and found["scheme"].lower() in POSTGRES_SCHEMES


def parse_url(text: str, place: Place) -> StoreUrl:
    """``sqlite:///PATH`` (``sqlite:////abs/path`` for an absolute one), a plain file path,
    or ``postgresql://`` / ``postgres://`` with an optional ``?schema=NAME``.

    A PostgreSQL URL without ``schema=`` leaves the schema to the store (None here). Anything
    else is a ``UsageError`` that says what is wrong and the forms that work.
    """
    if not text.strip():
        raise UsageError(f"the {place.what} URL is empty: {FORMS}")
    found = _SCHEME.match(text)
    if found is None:
        return SqliteUrl(text)
    scheme = found["scheme"].lower()
    if scheme in POSTGRES_SCHEMES:
        return _postgres(text, place)
    if scheme == "sqlite":
        return _sqlite(text, place)
    hint = ""
    if scheme.startswith(POSTGRES_SCHEMES):  # postgresql+psycopg://, SQLAlchemy's spelling
        hint = " (write postgresql://, without a driver name)"
    raise UsageError(
        f"{place.what} URL {redact(text)!r}: unknown scheme {found['scheme']}://{hint}; {FORMS}"
    )


def _sqlite(text: str, place: Place) -> SqliteUrl:
    rest = text[len("sqlite://") :]
    if not rest.startswith("/"):
        raise UsageError(
            f"{place.what} URL {text!r}: a SQLite URL has three slashes and no host:"
            " sqlite:///relative/path or sqlite:////absolute/path"
        )
    path = rest[1:]
    if not path:
        raise UsageError(f"{place.what} URL {text!r} names no file: give sqlite:///PATH")
    if "?" in path or "#" in path:
        raise UsageError(
            f"{place.what} URL {text!r}: SQLite takes no parameters (schema= is for"
            " PostgreSQL); give sqlite:///PATH alone"
        )
    return SqliteUrl(path)


def _postgres(text: str, place: Place) -> PostgresUrl:
    shown = redact(text)
    try:
        parts = urlsplit(text)
        parts.port  # noqa: B018 (read for its check: a port that is not a number raises)
    except ValueError as exc:
        raise UsageError(
            f"{place.what} URL {shown!r} is not a valid URL ({exc}); {FORMS}"
        ) from None
    if parts.fragment:
        raise UsageError(f"{place.what} URL {shown!r}: remove the '#{parts.fragment}' part")
    # The query is filtered by hand, not decoded and encoded again: libpq reads '+' as '+',
    # so a round trip through urlencode would change "options=-c%20x" into "options=-c+x".
    kept: list[str] = []
    schemas: list[str] = []
    for item in parts.query.split("&") if parts.query else []:
        name, _, value = item.partition("=")
        if unquote(name) == "schema":
            schemas.append(unquote(value))
        elif item:
            kept.append(item)
    if len(schemas) > 1:
        raise UsageError(
            f"{place.what} URL {shown!r} gives schema= {len(schemas)} times: give it once"
        )
    schema = check_schema(schemas[0], place) if schemas else None
    # Cut by hand too: urlunsplit would turn postgresql:///db (a local socket) into
    # postgresql:/db, which libpq refuses.
    conninfo = text.partition("?")[0] + ("?" + "&".join(kept) if kept else "")
    return PostgresUrl(conninfo, schema)


def check_schema(name: str, place: Place) -> str:
    """``name`` if it is a plain PostgreSQL schema name (it is written into statements)."""
    if not _SCHEMA_NAME.match(name):
        raise UsageError(
            f"{place.what} schema {name!r} is not a plain name: use lowercase letters, digits"
            " and _, at most 63, not starting with a digit"
        )
    return name


def redact(url: str) -> str:
    """The URL without its password, fit for a message or a log line."""
    return _PASSWORD.sub(r"://\1:***@", url)


@dataclass(frozen=True, slots=True)
class Dialect:
    """What differs between the two SQL backends. Statements are written once, with ``?``
    placeholders; ``sql`` turns them into the driver's."""

    name: str
    placeholder: str
    id_column: str
    real: str
    greatest: str
    without_rowid: str

    def sql(self, text: str) -> str:
        return text if self.placeholder == "?" else _format_style(text)


@functools.lru_cache(maxsize=1024)
def _format_style(text: str) -> str:
    # psycopg's placeholders are %s, so a literal % must be doubled first. Statements are
    # few and fixed (no values in them), hence the cache.
    return text.replace("%", "%%").replace("?", "%s")


SQLITE = Dialect("sqlite", "?", "INTEGER PRIMARY KEY", "REAL", "MAX", " WITHOUT ROWID")
POSTGRES = Dialect("postgres", "%s", "BIGSERIAL PRIMARY KEY", "DOUBLE PRECISION", "GREATEST", "")


def missing_directory(what: str, file: Path) -> str:
    """What to say when ``file``'s directory is not there (a mistyped path, most often)."""
    return (
        f"the {what} {file} is in a directory that does not exist ({file.parent}): check the"
        f" path, or create the directory first (mkdir -p {file.parent})"
    )
