"""Logs for operators: ``--log-level`` and ``--log-format text|json`` on the commands that keep
running, one line per event on stderr, identifiers never in clear."""

from __future__ import annotations

import json
import logging
import os
import re
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from datetime import datetime
from pathlib import Path

import pytest
import yaml

from garde.catalog import Catalog
from garde.logs import configure

NISS = "85073003328"
RECIPE = "urn:be:fgov:ehealth:recipe:protocol:v4"


def _closed_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _gateway(belgium: Catalog, tmp: Path, *flags: str) -> subprocess.Popen[str]:
    closed = [_closed_port() for _ in range(3)]
    endpoints = {
        sid: {f"dc{i + 1}": f"http://127.0.0.1:{p}{s.path_prefix}" for i, p in enumerate(closed)}
        for sid, s in belgium.services.items()
    }
    data = belgium.with_endpoints(endpoints).model_dump(mode="json", by_alias=True)
    (tmp / "catalog.yaml").write_text(yaml.safe_dump(data), encoding="utf-8")
    (tmp / "gateway.yaml").write_text(
        "health_interval: 200ms\nhealth_timeout: 200ms\ntarget_group: pharmacist\n",
        encoding="utf-8",
    )
    port = _closed_port()
    process = subprocess.Popen(
        [sys.executable, "-m", "garde", "gateway", "--catalog", str(tmp / "catalog.yaml"),
         "--config", str(tmp / "gateway.yaml"), "--journal", f"sqlite:///{tmp / 'j.db'}",
         "--journal-no-encryption", "--port", str(port), *flags],
        stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True,
        env={**os.environ, "PYTHONUNBUFFERED": "1"},
    )  # fmt: skip
    process.port = port  # type: ignore[attr-defined]
    return process


def _call(port: int) -> None:
    body = (
        '<soap:Envelope xmlns:soap="http://schemas.xmlsoap.org/soap/envelope/"><soap:Body>'
        f'<r:GetPrescriptionForExecutorRequest xmlns:r="{RECIPE}"><r:Rid>BEP0ABCDEFGH</r:Rid>'
        f"<r:PatientId>{NISS}</r:PatientId></r:GetPrescriptionForExecutorRequest>"
        "</soap:Body></soap:Envelope>"
    ).encode()
    request = urllib.request.Request(
        f"http://127.0.0.1:{port}/Recip-e/v4/Executor",
        body,
        {
            "Content-Type": "text/xml; charset=utf-8",
            "SOAPAction": f'"{RECIPE}:getPrescriptionForExecutor"',
        },
    )
    with pytest.raises(urllib.error.HTTPError, match="503"):
        urllib.request.urlopen(request, timeout=10)


def _run(belgium: Catalog, tmp: Path, *flags: str) -> str:
    process = _gateway(belgium, tmp, *flags)
    try:
        deadline = time.monotonic() + 20
        while time.monotonic() < deadline:
            try:
                _call(process.port)  # type: ignore[attr-defined]
                break
            except (ConnectionError, urllib.error.URLError):
                time.sleep(0.1)
        time.sleep(1.0)  # the health checks find every data center down
        _call(process.port)  # type: ignore[attr-defined]
    finally:
        process.terminate()
        _, err = process.communicate(timeout=20)
    return err


@pytest.mark.e2e
def test_json_logs_are_one_object_per_line_with_utc_times(belgium: Catalog, tmp_path: Path) -> None:
    err = _run(belgium, tmp_path, "--log-format", "json", "--log-level", "info")
    records = [json.loads(line) for line in err.splitlines() if line.startswith("{")]
    assert records, err
    for record in records:
        assert {"time", "level", "logger", "message"} <= set(record), record
        assert record["time"].endswith("Z") and datetime.fromisoformat(record["time"][:-1])
    messages = [r["message"] for r in records]
    assert any("fails its health check" in m for m in messages), messages
    assert any(" is now " in m for m in messages), messages  # mode changes
    assert "Traceback" not in err
    assert NISS not in err, "no identifier in the logs"


@pytest.mark.e2e
def test_the_level_silences_what_is_below_it(belgium: Catalog, tmp_path: Path) -> None:
    err = _run(belgium, tmp_path, "--log-level", "error")
    assert "fails its health check" not in err
    assert " is now " not in err


def test_configure_replaces_its_handler_and_writes_text_lines(
    capsys: pytest.CaptureFixture[str],
) -> None:
    configure("warning", "text")
    configure("info", "text")
    root = logging.getLogger("garde")
    assert len([h for h in root.handlers if h.get_name() == "garde-stderr"]) == 1
    logging.getLogger("garde.gateway").info("recipe-executor dc1 ejected")
    logging.getLogger("garde.gateway").debug("not shown")
    line = capsys.readouterr().err.strip()
    assert re.fullmatch(r"\d\d:\d\d:\d\d INFO garde\.gateway: recipe-executor dc1 ejected", line)
    with pytest.raises(ValueError, match="use one of debug, info, warning, error"):
        configure("loud", "text")
