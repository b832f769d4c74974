"""The journal's settings: one table read from the environment, every bad value reported at
once by its variable's name, and every setting documented in docs/journal.md."""

from __future__ import annotations

import dataclasses
import re
import subprocess
import sys
from pathlib import Path

import pytest

from garde.errors import SettingsInvalid
from garde.journal.replayer import ReplayPolicy
from garde.journal.settings import (
    TABLES,
    ReplaySettings,
    StoreSettings,
    WebhookSettings,
    load_journal_settings,
)
from garde.settings import env_table

ROOT = Path(__file__).resolve().parents[2]


def _section(doc: str, title: str) -> str:
    text = (ROOT / "docs" / doc).read_text(encoding="utf-8")
    return text.split(f"## {title}\n", 1)[1].split("\n## ", 1)[0]


def test_the_replay_pace_is_tuned_from_the_environment() -> None:
    settings = load_journal_settings(
        {"GARDE_REPLAY_RATE": "50", "GARDE_REPLAY_LEASE": "2m", "GARDE_REPLAY_CONCURRENCY": "8"}
    )
    policy = settings.policy
    assert (policy.rate, policy.lease_seconds, policy.concurrency) == (50.0, 120.0, 8)
    assert policy.send_timeout == ReplayPolicy().send_timeout, "unset: the default"
    assert load_journal_settings({}).policy == ReplayPolicy()
    assert load_journal_settings({"GARDE_REPLAY_RATE": ""}).policy == ReplayPolicy(), (
        "an empty variable is unset"
    )


def test_every_bad_variable_is_named_at_once() -> None:
    env = {
        "GARDE_REPLAY_CONCURRENCY": "many",
        "GARDE_REPLAY_RATE": "-1",
        "GARDE_REPLAY_JITTER": "soon",
        "GARDE_RECEIPT_WEBHOOK": "ftp://receiver",
        "GARDE_RECEIPT_WEBHOOK_SECRET": "s3cret-value",
    }
    with pytest.raises(SettingsInvalid) as caught:
        load_journal_settings(env)
    named = {p.file for p in caught.value.problems}
    assert named == {
        "GARDE_REPLAY_CONCURRENCY",
        "GARDE_REPLAY_RATE",
        "GARDE_REPLAY_JITTER",
        "GARDE_RECEIPT_WEBHOOK",
    }
    report = str(caught.value)
    assert "'many'" in report and "docs/journal.md" in report
    assert "s3cret-value" not in report


def test_settings_that_contradict_each_other_are_refused_with_both_names() -> None:
    with pytest.raises(SettingsInvalid, match="SEND_TIMEOUT must stay under GARDE_REPLAY_LEASE"):
        load_journal_settings({"GARDE_REPLAY_LEASE": "5s"})
    with pytest.raises(SettingsInvalid, match="GARDE_RECEIPT_WEBHOOK_SECRET is not"):
        load_journal_settings({"GARDE_RECEIPT_WEBHOOK": "http://127.0.0.1:9/hook"})


def test_a_secret_is_never_echoed_and_the_keys_are_handed_over() -> None:
    settings = load_journal_settings(
        {
            "GARDE_RECEIPT_WEBHOOK": "https://care.example/hook",
            "GARDE_RECEIPT_WEBHOOK_SECRET": "k",
            "GARDE_JOURNAL_KEYS": "k1 AAAA",
        }
    )
    assert settings.webhooks.url == "https://care.example/hook"
    assert settings.store.keys == "k1 AAAA"


def test_the_replayer_does_not_read_the_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    """A constructor takes its settings: GARDE_REPLAY_* in the process changes nothing."""
    from garde.journal.replayer import Replayer

    monkeypatch.setenv("GARDE_REPLAY_CONCURRENCY", "3")
    replayer = Replayer(None, None, lambda _s: True, None)  # type: ignore[arg-type]
    assert replayer.policy == ReplayPolicy()


def test_the_gateway_refuses_a_bad_variable_before_it_starts(tmp_path: Path) -> None:
    done = subprocess.run(
        [sys.executable, "-m", "garde", "gateway", "--journal", "none", "--port", "0"],
        capture_output=True,
        text=True,
        timeout=60,
        env={"GARDE_REPLAY_RATE": "fast", "PATH": "/usr/bin:/bin"},
        cwd=tmp_path,
    )
    assert done.returncode == 1, done.stderr
    assert "GARDE_REPLAY_RATE" in done.stderr and "'fast'" in done.stderr, done.stderr
    assert "Traceback" not in done.stderr


def test_every_setting_and_variable_is_in_the_table_of_docs_journal() -> None:
    """One table: the replayer's runtime pace and the settings are the same names, and each
    variable has its row (name, setting, type, default, meaning) in docs/journal.md."""
    tunable = {f.name for f in dataclasses.fields(ReplayPolicy)} - {
        "poll_interval",
        "batch",
        "honour_backoff",
    }
    assert tunable == set(ReplaySettings.model_fields)
    section = _section("journal.md", "Settings")
    rows = {
        match[0]: match[1]
        for match in re.findall(r"^\| `([A-Z_]+)` \| `([a-z_]+)` \|", section, re.MULTILINE)
    }
    table = env_table(*TABLES)
    assert set(table) == set(rows), "rows and settings differ"
    for variable, (_model, name) in table.items():
        assert rows[variable] == name, f"{variable} documented as {rows[variable]}"
    for model in (ReplaySettings, WebhookSettings, StoreSettings):
        for name, field in model.model_fields.items():
            assert field.description, f"{model.__name__}.{name} has no help"


def test_the_old_entry_points_still_work_with_a_deprecation_warning(tmp_path: Path) -> None:
    from garde.journal.sealing import Keyring, new_key_line

    with pytest.warns(DeprecationWarning, match="load_journal_settings"):
        assert ReplayPolicy.from_env({"GARDE_REPLAY_BURST": "5"}).burst == 5.0
    ring = new_key_line("k1")
    with pytest.warns(DeprecationWarning, match="keys' text"):
        assert Keyring.load(None, {"GARDE_JOURNAL_KEYS": ring}).key_ids == ["k1"]
    assert Keyring.load(None, ring).key_ids == ["k1"]
