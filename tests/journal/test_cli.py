"""``garde journal``: what an operator sees and decides, masked and audited."""

from __future__ import annotations

import asyncio
import base64
import json
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner

from garde.cli import cli
from garde.errors import EntryNotFound, UsageError
from garde.journal.base import Answer, Delivery, Outcome, State, Submission
from garde.journal.sealing import Keyring
from garde.journal.sqlite import SqliteJournal

NISS = "85073003328"


@pytest.fixture
def keyfile(tmp_path: Path) -> Path:
    path = tmp_path / "keys"
    result = CliRunner().invoke(cli, ["journal", "keygen", "--key-file", str(path), "--id", "k1"])
    assert result.exit_code == 0, result.output
    assert path.stat().st_mode & 0o777 == 0o600
    return path


@pytest.fixture
def filled(tmp_path: Path, keyfile: Path) -> tuple[str, list[str]]:
    """A journal with a delivered, a conflicting, and a waiting entry."""
    location = tmp_path / "journal.db"

    async def fill() -> list[str]:
        ring = Keyring.load(keyfile)
        store = await SqliteJournal.open(location, ring)
        ids = []
        for n in range(3):
            receipt = await store.accept(
                Submission(
                    "eattest",
                    "sendAttestation",
                    "19876543210",
                    "gp",
                    f"idem-{n}",
                    NISS if n < 2 else "90010100131",
                    f"<Ssin>{NISS}</Ssin>".encode(),
                )
            )
            ids.append(receipt.id)
        first, third = await store.lease("t", ["eattest"], 10, 30)
        await store.settle(first, Delivery(Outcome.DELIVERED, Answer(200, b"<ok/>")))
        await store.settle(
            third, Delivery(Outcome.CONFLICT, None, f"NOT_SAME_DAY: care for {NISS} was earlier")
        )
        await store.close()
        return ids

    return f"sqlite:///{location}", asyncio.run(fill())


def invoke(*args: str) -> object:
    return CliRunner().invoke(cli, ["journal", *args])


def test_ls_lists_with_masked_reasons(filled: tuple[str, list[str]]) -> None:
    location, ids = filled
    result = CliRunner().invoke(cli, ["journal", "ls", "--journal", location, "--json"])
    assert result.exit_code == 0, result.output
    data = json.loads(result.output)
    assert [e["id"] for e in data["entries"]] == ids
    assert [e["state"] for e in data["entries"]] == ["delivered", "journaled", "conflict"]
    assert NISS not in result.output
    assert {"service": "eattest", "state": "conflict", "count": 1} in data["counts"]
    # Listed without the key: what is sealed is said to be sealed, not a key to add back.
    assert "not in the keyring" not in result.output
    assert "answer_problem" not in data["entries"][0]
    assert data["entries"][0]["answer_sealed"].startswith("sealed")
    assert data["entries"][0]["answer_status"] == 200
    only = CliRunner().invoke(
        cli, ["journal", "ls", "--journal", location, "--state", "conflict", "--json"]
    )
    assert [e["id"] for e in json.loads(only.output)["entries"]] == [ids[2]]
    table = CliRunner().invoke(cli, ["journal", "ls", "--journal", location])
    assert ids[0] in table.output
    assert "eattest.sendAttestation" in table.output


def test_show_masks_unless_reveal_which_is_audited(
    filled: tuple[str, list[str]], keyfile: Path
) -> None:
    location, ids = filled
    sealed = CliRunner().invoke(cli, ["journal", "show", ids[1], "--journal", location, "--json"])
    assert sealed.exit_code == 0, sealed.output
    assert "not in the keyring" in json.loads(sealed.output)["problem"]
    masked = CliRunner().invoke(
        cli,
        [
            "journal",
            "show",
            ids[1],
            "--journal",
            location,
            "--journal-key-file",
            str(keyfile),
            "--json",
        ],
    )
    assert masked.exit_code == 0, masked.output
    assert NISS not in masked.output
    assert json.loads(masked.output)["ordering_key"] == "85*******28"
    without_key = CliRunner().invoke(
        cli, ["journal", "show", ids[1], "--journal", location, "--reveal"]
    )
    assert isinstance(without_key.exception, UsageError)
    revealed = CliRunner().invoke(
        cli,
        [
            "journal",
            "show",
            ids[1],
            "--journal",
            location,
            "--journal-key-file",
            str(keyfile),
            "--reveal",
            "--operator",
            "alice",
            "--json",
        ],
    )
    assert revealed.exit_code == 0, revealed.output
    assert json.loads(revealed.output)["ordering_key"] == NISS
    log = CliRunner().invoke(cli, ["journal", "audit", "--journal", location, "--json"])
    assert [(r["who"], r["action"], r["entry_id"]) for r in json.loads(log.output)] == [
        ("alice", "reveal", ids[1])
    ]


def test_retry_and_discard_are_audited_and_checked(filled: tuple[str, list[str]]) -> None:
    location, ids = filled
    no_reason = CliRunner().invoke(cli, ["journal", "discard", ids[2], "--journal", location])
    assert no_reason.exit_code == 2
    assert "--reason" in no_reason.output
    wrong = CliRunner().invoke(
        cli, ["journal", "retry", ids[0], "--journal", location, "--operator", "bob"]
    )
    assert isinstance(wrong.exception, UsageError)
    assert "delivered" in str(wrong.exception)
    ok = CliRunner().invoke(
        cli, ["journal", "retry", ids[2], "--journal", location, "--operator", "bob"]
    )
    assert ok.exit_code == 0, ok.output
    gone = CliRunner().invoke(
        cli,
        [
            "journal",
            "discard",
            ids[2],
            "--journal",
            location,
            "--operator",
            "bob",
            "--reason",
            "paper certificate handed over",
        ],
    )
    assert gone.exit_code == 0, gone.output
    assert "discarded by bob: paper certificate handed over" in gone.output
    missing = CliRunner().invoke(cli, ["journal", "retry", "r-none", "--journal", location])
    assert isinstance(missing.exception, EntryNotFound)
    log = CliRunner().invoke(cli, ["journal", "audit", "--journal", location, "--json"])
    assert sorted(r["action"] for r in json.loads(log.output)) == ["discard", "retry"]


def test_export_jsonl(filled: tuple[str, list[str]], tmp_path: Path) -> None:
    location, ids = filled
    out = tmp_path / "export.jsonl"
    result = CliRunner().invoke(
        cli, ["journal", "export", "--journal", location, "--format", "jsonl", "--output", str(out)]
    )
    assert result.exit_code == 0, result.output
    lines = [json.loads(line) for line in out.read_text().splitlines()]
    assert [line["id"] for line in lines] == ids
    assert NISS not in out.read_text()
    assert lines[0]["state"] == State.DELIVERED.value


def test_a_missing_journal_is_a_clear_error(tmp_path: Path) -> None:
    result = CliRunner().invoke(cli, ["journal", "ls", "--journal", str(tmp_path / "nope.db")])
    assert isinstance(result.exception, UsageError)
    assert "no journal at" in str(result.exception)
    assert not (tmp_path / "nope.db").exists()


def test_keygen_appends_a_new_current_key(keyfile: Path) -> None:
    result = CliRunner().invoke(
        cli, ["journal", "keygen", "--key-file", str(keyfile), "--id", "k2"]
    )
    assert result.exit_code == 0, result.output
    ring = Keyring.load(keyfile)
    assert ring.key_ids == ["k1", "k2"]
    assert ring.current == "k2"
    again = CliRunner().invoke(cli, ["journal", "keygen", "--key-file", str(keyfile), "--id", "k2"])
    assert isinstance(again.exception, UsageError)


def test_replay_needs_the_key(filled: tuple[str, list[str]]) -> None:
    location, _ = filled
    result = CliRunner().invoke(cli, ["journal", "replay", "--now", "--journal", location])
    assert isinstance(result.exception, UsageError)
    assert "keys" in str(result.exception)


def test_rekey_moves_everything_to_the_new_key_so_the_old_can_go(
    filled: tuple[str, list[str]], keyfile: Path, tmp_path: Path
) -> None:
    """keygen a second key, rekey (audited), drop the first key: every entry still opens."""
    location, ids = filled
    added = _invoke("keygen", "--key-file", str(keyfile), "--id", "k2")
    assert added.exit_code == 0, added.output
    done = _invoke(
        "rekey", "--journal", location, "--journal-key-file", str(keyfile), "--operator", "ann"
    )
    assert done.exit_code == 0, done.output
    assert "3 of 3 entries sealed again with key k2" in done.output
    again = _invoke("rekey", "--journal", location, "--journal-key-file", str(keyfile), "--json")
    assert json.loads(again.output)["resealed"] == 0
    only_new = tmp_path / "k2-only"
    only_new.write_text(keyfile.read_text().splitlines()[-1] + "\n")
    for entry_id in ids:
        shown = _invoke(
            "show", entry_id, "--journal", location, "--journal-key-file", str(only_new),
            "--reveal", "--json",
        )  # fmt: skip
        data = json.loads(shown.output)
        assert data["key_id"] == "k2"
        assert data.get("problem") is None
        assert NISS.encode() in base64.b64decode(data["payload_base64"])
    first = json.loads(
        _invoke(
            "show", ids[0], "--journal", location, "--journal-key-file", str(only_new),
            "--reveal", "--json",
        ).output
    )  # fmt: skip
    assert first["answer"] == "<ok/>"
    audit = _invoke("audit", "--journal", location, "--json")
    assert any(r["action"] == "rekey" and r["who"] == "ann" for r in json.loads(audit.output))


def test_rekey_needs_a_key_and_reports_what_it_cannot_open(
    filled: tuple[str, list[str]], tmp_path: Path
) -> None:
    location, ids = filled
    clear = _invoke("rekey", "--journal", location, "--journal-no-encryption")
    assert isinstance(clear.exception, UsageError)
    assert "current key" in str(clear.exception)
    other = tmp_path / "other"
    assert _invoke("keygen", "--key-file", str(other), "--id", "x1").exit_code == 0
    stuck = _invoke("rekey", "--journal", location, "--journal-key-file", str(other), "--json")
    assert stuck.exit_code == 3
    data = json.loads(stuck.output)
    assert [u["id"] for u in data["unreadable"]] == ids
    assert all("not in the keyring" in u["reason"] for u in data["unreadable"])


def _invoke(*args: str) -> Any:
    return CliRunner().invoke(cli, ["journal", *args])
