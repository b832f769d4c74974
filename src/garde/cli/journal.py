"""``garde journal``: the operator's view of the journal, and the decisions only they make.

Identifiers are masked unless ``--reveal``, which is audited (who, when, which entry);
``discard`` needs a reason and is audited too. ``replay --now`` drains the journal through
the same upstream side as the gateway (fresh tokens, data-center choice) with a progress
bar.
"""

from __future__ import annotations

import base64
import getpass
import json
import os
import sys
import time
from collections.abc import Callable, Coroutine
from pathlib import Path
from typing import Any, TypeVar

import click
from rich.table import Table

from garde.cli.common import FAILED, catalog_option, console, json_option, load, print_json
from garde.errors import UsageError
from garde.journal import EntryView, JournalStore, Receipt, RekeyReport, State
from garde.locales import moment
from garde.loop import run_loop
from garde.masking import mask, mask_text
from garde.storage import JOURNAL

F = TypeVar("F", bound=Callable[..., Any])
T = TypeVar("T")


def journal_options(function: F) -> F:
    """Where the journal is and the keys that open it (the same options as the gateway)."""
    function = click.option(
        "--journal-no-encryption",
        is_flag=True,
        help="The journal stores payloads in clear (it was started that way).",
    )(function)
    function = click.option(
        "--journal-key-file",
        default=None,
        envvar="GARDE_JOURNAL_KEY_FILE",
        help="Keyring file that opens sealed payloads (env GARDE_JOURNAL_KEY_FILE).",
    )(function)
    return click.option(
        "--journal",
        "location",
        default=JOURNAL.default,
        show_default=True,
        envvar=JOURNAL.env,
        help="sqlite:///path or postgresql://... (env GARDE_JOURNAL).",
    )(function)


def operator_option(function: F) -> F:
    return click.option(
        "--operator",
        default=None,
        envvar="GARDE_OPERATOR",
        help="Who acts, for the audit log (env GARDE_OPERATOR; default: the login name).",
    )(function)


def _who(operator: str | None) -> str:
    if operator:
        return operator
    try:
        return getpass.getuser()
    except (KeyError, OSError):
        return f"uid:{os.getuid()}"


def _run(
    location: str,
    key_file: str | None,
    no_encryption: bool,
    body: Callable[[JournalStore], Coroutine[Any, Any, T]],
    need_key: bool = False,
) -> T:
    import logging

    # The pool's own warnings (one per failed connection try) are not for the operator of a
    # one-shot command: the one message at the end says what failed and what to check.
    logging.getLogger("psycopg.pool").setLevel(logging.ERROR)

    async def main() -> T:
        from garde.journal import load_journal_settings, open_for_operator
        from garde.settings import environment

        settings = load_journal_settings(environment())
        store = await open_for_operator(location, key_file, no_encryption, need_key, settings)
        try:
            return await body(store)
        finally:
            await store.close()

    return run_loop(main())


def _when(stamp: float | None) -> str:
    if stamp is None:
        return "-"
    return time.strftime("%Y-%m-%d %H:%M:%S", time.localtime(stamp))


def receipt_json(receipt: Receipt) -> dict[str, Any]:
    data = receipt.fields()
    # An operator's terminal: business reasons may quote identifiers (masked unless revealed).
    data["last_error"] = mask_text(receipt.last_error) if receipt.last_error else None
    data["reason"] = mask_text(receipt.reason) if receipt.reason else None
    data.update(receipt.extra)
    if receipt.answer is not None:
        data["answer_status"] = receipt.answer.status
    return data


def view_json(view: EntryView, reveal: bool) -> dict[str, Any]:
    data = receipt_json(view.receipt)
    submission = view.submission
    data.update(
        {
            "seq": view.seq,
            "idempotency_key": view.idempotency_key,
            "key_id": view.key_id,
            "lease_owner": view.lease_owner,
            **moment("lease_until", view.lease_until),
            "problem": view.problem,
        }
    )
    if submission is None:
        data["identity"] = data["ordering_key"] = None
    elif reveal:
        data["identity"] = submission.identity
        data["ordering_key"] = submission.ordering_key
        data["headers"] = [list(h) for h in submission.headers]
        data["payload_base64"] = base64.b64encode(submission.payload).decode()
        if view.receipt.reason:
            data["reason"] = view.receipt.reason
        if view.receipt.answer is not None:
            data["answer"] = view.receipt.answer.body.decode("utf-8", "replace")
    else:
        data["identity"] = mask(submission.identity)
        data["ordering_key"] = mask(submission.ordering_key) if submission.ordering_key else None
        data["payload_bytes"] = len(submission.payload)
    if submission is not None and submission.caller is not None:
        # Sent with the caller's own token: whose, and until when (the header stays sealed).
        caller = submission.caller
        data["caller_token"] = {
            "subject": caller.subject if reveal else mask(caller.subject),
            **moment("valid_until", caller.not_on_or_after),
        }
    return data


@click.group()
def journal() -> None:
    """Look into the journal of writes waiting for a service, and decide what it cannot."""


@journal.command("ls")
@journal_options
@click.option("--state", type=click.Choice([s.value for s in State]), default=None)
@click.option("--service", default=None, help="Only this service's entries.")
@click.option("--limit", type=click.IntRange(1, 100_000), default=100, show_default=True)
@json_option
def ls(
    location: str,
    journal_key_file: str | None,
    journal_no_encryption: bool,
    state: str | None,
    service: str | None,
    limit: int,
    as_json: bool,
) -> None:
    """List entries (oldest first), by state and service, with the counts of each."""

    async def body(store: JournalStore) -> tuple[list[Receipt], dict[tuple[str, State], int]]:
        found = await store.receipts(State(state) if state else None, service, limit)
        return found, await store.counts()

    receipts, counts = _run(location, journal_key_file, journal_no_encryption, body)
    if as_json:
        print_json(
            {
                "entries": [receipt_json(r) for r in receipts],
                "counts": [
                    {"service": svc, "state": st.value, "count": n}
                    for (svc, st), n in sorted(counts.items())
                ],
            }
        )
        return
    out = console()
    table = Table(title=f"journal: {len(receipts)} entries shown")
    # Receipt ids are copied from here into `garde journal show/retry`: never cut them.
    table.add_column("id", no_wrap=True, min_width=len(receipts[0].id) if receipts else None)
    for column in ("state", "service.operation", "created", "attempts", "why"):
        table.add_column(column, overflow="fold")
    for r in receipts:
        why = r.reason or r.last_error or ""
        table.add_row(
            r.id,
            r.state.value,
            f"{r.service}.{r.operation}",
            _when(r.created_at),
            str(r.attempts),
            mask_text(why),
        )
    out.print(table)
    summary = ", ".join(f"{svc} {st.value}: {n}" for (svc, st), n in sorted(counts.items()))
    out.print(summary or "the journal is empty")


@journal.command()
@journal_options
@click.argument("entry_id")
@click.option("--reveal", is_flag=True, help="Show identifiers and the payload (audited).")
@operator_option
@json_option
def show(
    location: str,
    journal_key_file: str | None,
    journal_no_encryption: bool,
    entry_id: str,
    reveal: bool,
    operator: str | None,
    as_json: bool,
) -> None:
    """Everything about one entry; identifiers masked unless --reveal (audited)."""
    who = _who(operator) if reveal else None

    async def body(store: JournalStore) -> EntryView:
        return await store.entry(entry_id, reveal_by=who)

    view = _run(location, journal_key_file, journal_no_encryption, body, need_key=reveal)
    data = view_json(view, reveal)
    if as_json:
        print_json(data)
        return
    out = console()
    table = Table(show_header=False, title=f"journal entry {view.receipt.id}")
    table.add_column("field", style="bold")
    table.add_column("value", overflow="fold")
    for name, value in data.items():
        if value is None or value == "":
            continue
        if name in ("created_at", "updated_at", "deadline", "lease_until"):
            value = _when(value)
        table.add_row(name, str(value))
    out.print(table)
    if reveal:
        out.print(f"[yellow]revealed to {who}: this was written to the audit log[/yellow]")


@journal.command()
@journal_options
@click.argument("entry_id")
@operator_option
def retry(
    location: str,
    journal_key_file: str | None,
    journal_no_encryption: bool,
    entry_id: str,
    operator: str | None,
) -> None:
    """Send an entry again: a conflict you resolved, a quarantined entry whose key is back,
    or a journaled one now instead of after its back-off (audited)."""
    who = _who(operator)

    async def body(store: JournalStore) -> Receipt:
        return await store.retry(entry_id, who)

    receipt = _run(location, journal_key_file, journal_no_encryption, body)
    click.echo(f"{receipt.id} is {receipt.state.value} again; the replayer will send it")


@journal.command()
@journal_options
@click.argument("entry_id")
@click.option("--reason", required=True, help="Why it is given up (kept on the receipt).")
@operator_option
def discard(
    location: str,
    journal_key_file: str | None,
    journal_no_encryption: bool,
    entry_id: str,
    reason: str,
    operator: str | None,
) -> None:
    """Give up on an entry, with a reason; the rest of its ordering key goes on (audited)."""
    who = _who(operator)

    async def body(store: JournalStore) -> Receipt:
        return await store.discard(entry_id, reason, who)

    receipt = _run(location, journal_key_file, journal_no_encryption, body)
    click.echo(f"{receipt.id} discarded: {receipt.reason}")


@journal.command()
@journal_options
@click.option("--format", "fmt", type=click.Choice(["jsonl"]), default="jsonl", show_default=True)
@click.option("--reveal", is_flag=True, help="Include identifiers and payloads (audited).")
@click.option("--output", type=click.Path(dir_okay=False), default=None, help="File, not stdout.")
@operator_option
def export(
    location: str,
    journal_key_file: str | None,
    journal_no_encryption: bool,
    fmt: str,
    reveal: bool,
    output: str | None,
    operator: str | None,
) -> None:
    """Every entry, one JSON object per line, in journal order."""
    who = _who(operator) if reveal else None

    async def body(store: JournalStore) -> int:
        stream = open(output, "w", encoding="utf-8") if output else sys.stdout  # noqa: SIM115
        count = 0
        try:
            async for view in store.export(reveal_by=who):
                stream.write(json.dumps(view_json(view, reveal), ensure_ascii=False) + "\n")
                count += 1
        finally:
            if output:
                stream.close()
        return count

    count = _run(location, journal_key_file, journal_no_encryption, body, need_key=reveal)
    if output:
        click.echo(f"{count} entries written to {output}", err=True)


@journal.command()
@journal_options
@click.option("--limit", type=click.IntRange(1, 10_000), default=50, show_default=True)
@json_option
def audit(
    location: str,
    journal_key_file: str | None,
    journal_no_encryption: bool,
    limit: int,
    as_json: bool,
) -> None:
    """Who revealed, retried, discarded or re-keyed what, newest first."""

    async def body(store: JournalStore) -> list[Any]:
        return await store.audit_log(limit)

    records = _run(location, journal_key_file, journal_no_encryption, body)
    if as_json:
        print_json([_record(r) for r in records])
        return
    table = Table(title="journal audit log")
    for column in ("when", "who", "action"):
        table.add_column(column)
    table.add_column("entry", no_wrap=True)
    table.add_column("detail", overflow="fold")
    for r in records:
        table.add_row(_when(r.at), r.who, r.action, r.entry_id or "-", r.detail)
    console().print(table)


def _record(record: Any) -> dict[str, Any]:
    return {
        **moment("at", record.at),
        "who": record.who,
        "action": record.action,
        "entry_id": record.entry_id,
        "detail": record.detail,
    }


@journal.command()
@click.option("--key-file", required=True, type=click.Path(dir_okay=False))
@click.option("--id", "key_id", default=None, help="Key id (default: k + the date and time).")
def keygen(key_file: str, key_id: str | None) -> None:
    """Add a new key to a keyring file (created 0600); the new key seals from now on."""
    from garde.journal import new_key_line

    key_id = key_id or time.strftime("k%Y%m%d%H%M%S")
    path = Path(key_file)
    existing = path.read_text(encoding="utf-8") if path.exists() else ""
    if any(line.split()[:1] == [key_id] for line in existing.splitlines()):
        raise UsageError(f"{path} already has a key {key_id!r}: choose another --id")
    if not path.parent.is_dir():
        # A mistyped directory is named, not created: the key would end up where nobody
        # looks for it.
        raise UsageError(
            f"--key-file {path}: the directory {path.parent} does not exist; check the path,"
            f" or create the directory first (mkdir -p {path.parent})"
        )
    line = new_key_line(key_id)
    try:
        fd = os.open(path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o600)
    except OSError as exc:
        raise UsageError(f"--key-file {path}: cannot write it: {exc.strerror}") from None
    with os.fdopen(fd, "a", encoding="utf-8") as handle:
        if existing and not existing.endswith("\n"):
            handle.write("\n")
        handle.write(line)
    click.echo(
        f"key {key_id} added to {path}; it seals new entries once the gateway restarts."
        " Keep older keys until no waiting entry uses them."
    )


@journal.command()
@journal_options
@operator_option
@json_option
def rekey(
    location: str,
    journal_key_file: str | None,
    journal_no_encryption: bool,
    operator: str | None,
    as_json: bool,
) -> None:
    """Seal every entry again with the current key (the ring's last), so that older keys can
    be removed (audited). Entries that cannot be opened are listed and left as they are."""
    who = _who(operator)

    async def body(store: JournalStore) -> RekeyReport:
        return await store.rekey(who)

    report = _run(location, journal_key_file, journal_no_encryption, body, need_key=True)
    if as_json:
        print_json(
            {
                "key_id": report.key_id,
                "entries": report.seen,
                "resealed": report.resealed,
                "unreadable": [{"id": i, "reason": why} for i, why in report.unreadable],
            }
        )
    else:
        click.echo(
            f"{report.resealed} of {report.seen} entries sealed again with key"
            f" {report.key_id}; the others already were"
            + (
                f", except {len(report.unreadable)} that cannot be opened:"
                if report.unreadable
                else "."
            )
        )
        for entry_id, why in report.unreadable:
            click.echo(f"  {entry_id}: {why}")
        if not report.unreadable:
            click.echo("Keys other than the current one no longer seal anything here.")
    if report.unreadable:
        sys.exit(FAILED)


@journal.command()
@journal_options
@catalog_option
@click.option("--now", "now", is_flag=True, required=True, help="Replay now (required).")
@click.option("--service", "services", multiple=True, help="Only these services (repeatable).")
@click.option("--concurrency", type=click.IntRange(1, 1024), default=32, show_default=True)
@click.option("--rate", type=float, default=None, help="At most this many per second and service.")
@click.option(
    "--timeout", type=float, default=600.0, show_default=True, help="Give up after (seconds)."
)
@click.option(
    "--config",
    "config_file",
    default=None,
    help="The gateway's settings file (identities and their credentials for the STS).",
)
def replay(
    location: str,
    journal_key_file: str | None,
    journal_no_encryption: bool,
    catalog_source: str,
    now: bool,
    services: tuple[str, ...],
    concurrency: int,
    rate: float | None,
    timeout: float,
    config_file: str | None,
) -> None:
    """Deliver what waits now, through the gateway's upstream side, with a progress bar."""
    from rich.progress import BarColumn, Progress, TextColumn, TimeRemainingColumn

    from garde.gateway import ReplayNow, ReplayResult, load_config

    catalog = load(catalog_source)
    unknown = sorted(set(services) - set(catalog.services))
    if unknown:
        raise UsageError(f"--service {', '.join(unknown)}: not in catalog {catalog.name}")

    async def body(store: JournalStore) -> ReplayResult:
        progress = Progress(
            TextColumn("{task.description}"),
            BarColumn(),
            TextColumn("{task.completed}/{task.total}"),
            TimeRemainingColumn(),
            console=console(),
            transient=False,
        )
        now = ReplayNow(
            catalog,
            load_config(config_file),
            store,
            services,
            concurrency=concurrency,
            rate=rate,
            on_settled=lambda _receipt: progress.advance(bar),
        )
        bar = progress.add_task("replaying", total=await now.waiting())
        with progress:
            return await now.run(timeout)

    result = _run(location, journal_key_file, journal_no_encryption, body, need_key=True)
    click.echo(
        f"delivered {result.delivered}, conflicts {result.conflict}, expired"
        f" {result.expired}, still waiting {result.waiting}"
    )
    if result.waiting:
        sys.exit(FAILED)
