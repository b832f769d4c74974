"""The one storage URL syntax the journal and the monitor share (``garde.storage``)."""

from __future__ import annotations

import asyncio
import os
import re
import secrets
from pathlib import Path
from urllib.parse import quote

import pytest
from hypothesis import given
from hypothesis import strategies as st

from garde.errors import UsageError
from garde.storage import (
    JOURNAL,
    MONITOR,
    POSTGRES,
    SQLITE,
    PostgresUrl,
    SqliteUrl,
    check_schema,
    is_postgres,
    parse_url,
    redact,
)

PG_URL = os.environ.get("GARDE_TEST_POSTGRES", "postgresql://postgres@127.0.0.1:5432/test")


# -- SQLite ---------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "path"),
    [
        ("sqlite:///garde-journal.db", "garde-journal.db"),  # relative, as the default
        ("sqlite:////var/lib/garde/journal.db", "/var/lib/garde/journal.db"),  # absolute
        ("SQLite:///data/j.db", "data/j.db"),  # schemes are case-insensitive
        ("sqlite:///:memory:", ":memory:"),
        ("garde-journal.db", "garde-journal.db"),  # a plain path, as `--journal PATH`
        ("/srv/garde/j.db", "/srv/garde/j.db"),
        ("./rel dir/j.db", "./rel dir/j.db"),
        ("what?.db", "what?.db"),  # a plain path is taken as it is, even with a '?'
        (":memory:", ":memory:"),
    ],
)
def test_sqlite_urls_and_plain_paths_name_a_file(text: str, path: str) -> None:
    assert parse_url(text, JOURNAL) == SqliteUrl(path)


@pytest.mark.parametrize(
    ("text", "problem"),
    [
        ("sqlite://host/j.db", "three slashes"),
        ("sqlite:///", "names no file"),
        ("sqlite:///j.db?schema=x", "SQLite takes no parameters"),
        ("sqlite:///j.db#x", "SQLite takes no parameters"),
        ("", "is empty"),
        ("   ", "is empty"),
    ],
)
def test_bad_sqlite_urls_say_what_is_wrong(text: str, problem: str) -> None:
    with pytest.raises(UsageError, match=re.escape(problem)):
        parse_url(text, JOURNAL)


# -- PostgreSQL -----------------------------------------------------------------------------


def test_postgres_schema_is_taken_out_and_other_parameters_stay_as_written() -> None:
    """Repeated parameters, blank values, order and percent-encoding reach libpq unchanged."""
    url = parse_url(
        "postgresql://garde@db.example:5433/chain?application_name=a&options=-c%20x%3D1"
        "&schema=garde_j2&application_name=b&sslmode=&options=-c%20y%3D2",
        JOURNAL,
    )
    assert url == PostgresUrl(
        "postgresql://garde@db.example:5433/chain?application_name=a&options=-c%20x%3D1"
        "&application_name=b&sslmode=&options=-c%20y%3D2",
        "garde_j2",
    )


def test_postgres_without_schema_leaves_it_to_the_store() -> None:
    assert parse_url("postgres://u@h/db", MONITOR) == PostgresUrl("postgres://u@h/db", None)
    assert parse_url("postgresql:///db?host=/run/postgresql", JOURNAL) == PostgresUrl(
        "postgresql:///db?host=/run/postgresql", None
    )


def test_a_percent_encoded_schema_key_and_value_are_read() -> None:
    assert parse_url("postgresql://h/db?%73chema=%67arde", JOURNAL).schema == "garde"


@pytest.mark.parametrize(
    ("text", "problem"),
    [
        ("postgresql://h/db?schema=a&schema=b", "gives schema= 2 times"),
        ("postgresql://h/db?schema=", "schema '' is not a plain name"),
        ("postgresql://h/db?schema=Garde", "schema 'Garde' is not a plain name"),
        ("postgresql://h/db?schema=a%22%3B%20drop", "is not a plain name"),
        ("postgresql://h:abc/db", "is not a valid URL"),
        ("postgresql://[::1/db", "is not a valid URL"),
        ("postgresql://h/db#frag", "remove the '#frag' part"),
    ],
)
def test_bad_postgres_urls_say_what_is_wrong(text: str, problem: str) -> None:
    with pytest.raises(UsageError, match=re.escape(problem)):
        parse_url(text, JOURNAL)


def test_errors_never_show_the_password() -> None:
    with pytest.raises(UsageError) as caught:
        parse_url("postgresql://garde:s3cret@h:abc/db", MONITOR)
    assert "s3cret" not in str(caught.value)
    assert "garde:***@" in str(caught.value)
    assert redact("postgresql://u:p@h/db") == "postgresql://u:***@h/db"
    assert redact("postgresql://u@h/db") == "postgresql://u@h/db"


# -- schemes, schema names ------------------------------------------------------------------


@pytest.mark.parametrize(
    "text", ["mysql://x/db", "file:///tmp/j.db", "http://h/", "postgresql+psycopg://h/db"]
)
def test_unknown_schemes_are_refused_with_the_forms_that_work(text: str) -> None:
    with pytest.raises(UsageError) as caught:
        parse_url(text, MONITOR)
    message = str(caught.value)
    assert message.startswith("monitor database URL")
    assert "unknown scheme" in message
    assert "use sqlite:///PATH or postgresql://USER@HOST/DB[?schema=NAME]" in message


def test_a_driver_name_in_the_scheme_gets_a_hint() -> None:
    with pytest.raises(UsageError, match="without a driver name"):
        parse_url("postgresql+psycopg://h/db", JOURNAL)


def test_is_postgres() -> None:
    assert is_postgres("postgresql://h/db")
    assert is_postgres("POSTGRES://h/db")
    assert not is_postgres("sqlite:///postgresql.db")
    assert not is_postgres("postgresql.db")
    assert not is_postgres("none")


@pytest.mark.parametrize("name", ["garde_journal", "_x", "a", "a1_b2", "x" * 63])
def test_plain_schema_names_pass(name: str) -> None:
    assert check_schema(name, JOURNAL) == name


@pytest.mark.parametrize("name", ["", "1abc", "Garde", "a-b", "a b", 'a"b', "x" * 64, "é"])
def test_other_schema_names_are_refused_naming_the_store(name: str) -> None:
    with pytest.raises(UsageError, match=r"^journal schema .* is not a plain name"):
        check_schema(name, JOURNAL)


@given(st.text(max_size=70))
def test_a_schema_name_passes_only_when_it_is_safe_in_a_statement(name: str) -> None:
    """Schema names are written into SQL: only lowercase ASCII, digits and _ ever pass."""
    try:
        check_schema(name, MONITOR)
    except UsageError:
        assert not re.fullmatch(r"[a-z_][a-z0-9_]{0,62}", name)
    else:
        assert re.fullmatch(r"[a-z_][a-z0-9_]{0,62}", name)


_KEYS = st.sampled_from(["application_name", "options", "sslmode", "host", "connect_timeout"])
_VALUES = st.text(st.characters(codec="utf-8", exclude_categories=["Cs"]), max_size=12)


@given(st.lists(st.tuples(_KEYS, _VALUES), max_size=6), st.integers(0, 6))
def test_every_parameter_but_schema_survives_in_order(
    pairs: list[tuple[str, str]], where: int
) -> None:
    query = [f"{k}={quote(v, safe='')}" for k, v in pairs]
    given_query = [*query[:where], "schema=s1", *query[where:]]
    url = parse_url(f"postgresql://u@h/db?{'&'.join(given_query)}", JOURNAL)
    assert isinstance(url, PostgresUrl)
    assert url.schema == "s1"
    assert url.conninfo == "postgresql://u@h/db" + (f"?{'&'.join(query)}" if query else "")


# -- the dialect ----------------------------------------------------------------------------


def test_one_statement_text_serves_both_dialects() -> None:
    text = "SELECT * FROM t WHERE a = ? AND b LIKE 'x%' AND c IN (?, ?)"
    assert SQLITE.sql(text) == text
    assert POSTGRES.sql(text) == "SELECT * FROM t WHERE a = %s AND b LIKE 'x%%' AND c IN (%s, %s)"


# -- both stores use it ---------------------------------------------------------------------


def test_a_bad_journal_url_opens_nothing_and_creates_no_file(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from garde.journal.factory import open_journal
    from garde.journal.sealing import Keyring

    monkeypatch.chdir(tmp_path)
    with pytest.raises(UsageError, match="unknown scheme mysql://"):
        asyncio.run(open_journal("mysql://h/db", Keyring.clear()))
    assert list(tmp_path.iterdir()) == []


def test_the_monitor_store_opens_sqlite_by_url_and_by_path(tmp_path: Path) -> None:
    from garde.monitor.store import open_store
    from garde.monitor.store.sqlite import SqliteStore

    for text in (f"sqlite:///{tmp_path / 'a.sqlite'}", str(tmp_path / "b.sqlite")):
        store = open_store(text)
        assert isinstance(store, SqliteStore)
        store.close()
    assert {p.name for p in tmp_path.iterdir()} >= {"a.sqlite", "b.sqlite"}


def _require_postgres() -> None:
    try:
        import psycopg

        with psycopg.connect(PG_URL, connect_timeout=3):
            return
    except Exception as exc:
        if os.environ.get("GARDE_REQUIRE_POSTGRES") == "1":
            pytest.fail(f"PostgreSQL required (GARDE_REQUIRE_POSTGRES=1) but: {exc}")
        pytest.skip(f"PostgreSQL not reachable at {PG_URL} ({exc})")


def _with(url: str, query: str) -> str:
    return url + ("&" if "?" in url else "?") + query


@pytest.mark.postgres
def test_the_monitor_store_keeps_repeated_parameters_on_postgres() -> None:
    """libpq takes the last of a repeated parameter: the monitor no longer keeps the first."""
    _require_postgres()
    from garde.monitor.store import open_store
    from garde.monitor.store.postgres import PostgresStore

    schema = f"garde_url_{secrets.token_hex(6)}"
    store = open_store(
        _with(
            PG_URL,
            f"application_name=first&schema={schema}&options=-c%20statement_timeout%3D4321"
            "&application_name=second",
        )
    )
    try:
        assert isinstance(store, PostgresStore)
        assert store.schema == schema
        conn = store._conn
        assert conn.info.parameter_status("application_name") == "second"
        assert conn.execute("SHOW statement_timeout").fetchone()[0] == "4321ms"
    finally:
        store.drop_schema()
        store.close()


@pytest.mark.postgres
def test_the_journal_opens_postgres_in_the_schema_its_url_names() -> None:
    _require_postgres()
    from garde.journal.factory import open_journal
    from garde.journal.postgres import PostgresJournal
    from garde.journal.sealing import Keyring

    schema = f"garde_url_{secrets.token_hex(6)}"

    async def main() -> None:
        journal = await open_journal(
            _with(PG_URL, f"schema={schema}&application_name=garde-url-test"), Keyring.clear()
        )
        try:
            assert isinstance(journal, PostgresJournal)
            assert journal.schema == schema
            assert "schema=" not in journal.conninfo
            assert journal.conninfo.endswith("application_name=garde-url-test")
            assert await journal.depth() == 0
        finally:
            await journal.drop()
            await journal.close()

    asyncio.run(main())
