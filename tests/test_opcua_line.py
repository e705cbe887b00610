"""The OPC UA Machine Vision server in a real `lineside run --trigger robot` driven by `lineside robot-sim`,
watched by two clients nobody here wrote: asyncua's `uasubscribe`/`uaread` and open62541 (`o6`).

Every part gets a ResultReady event that matches its record; CurrentState is Operational while the line
is READY and Halted when it shuts down; a killed opcua worker is restarted and the line never stops.
"""

from __future__ import annotations

import importlib.util
import json
import os
import shutil
import signal
import subprocess
import sys
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any

import pytest

from tests.line import RunningLine, free_port, lineside, make_station, running_line
from tests.opcua_support import (
    ASYNCUA_CLI_URI,
    O6_URI,
    PASSWORD,
    STATE_NODE,
    USER,
    ClientCert,
    Watcher,
    events_in,
    make_client_cert,
    make_users_file,
    states_in,
    subscribed,
    uasubscribe,
    wait_for_state,
    watch,
)

PATTERN = "gdgddgdggd"  # replayed in a loop: g = good (ACCEPT), d = defective (REJECT)
FIRST, SECOND = 12, 6


def _o6_available() -> str | None:
    # Never `import o6` here: its free build starts a ten-minute timer in the importing process and then
    # ends it, which would end the whole test run. It runs in its own process (tests/opcua_o6.py).
    if importlib.util.find_spec("o6") is None:
        return "o6 (open62541 for Python) is not installed here; pip install o6"
    return None


def _robot(port: int, parts: int) -> None:
    proc = subprocess.run(
        [sys.executable, "-m", "lineside.cli", "robot-sim", "--port", str(port), "--parts", str(parts)],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert proc.returncode == 0, proc.stdout[-2000:] + proc.stderr[-2000:]


def _o6_client(port: int, client: ClientCert, server_cert: Path, events: int) -> Watcher:
    return watch(
        [
            *(sys.executable, str(Path(__file__).with_name("opcua_o6.py"))),
            *("--url", f"opc.tcp://127.0.0.1:{port}/lineside", "--cert", str(client.cert)),
            *("--key", str(client.key), "--server-cert", str(server_cert), "--app-uri", O6_URI),
            *("--user", USER, "--password", PASSWORD, "--events", str(events), "--seconds", "150"),
            "--get",
        ]
    )


def _o6_lines(watcher: Watcher, kind: str) -> list[dict[str, Any]]:
    parsed = [json.loads(line[3:]) for line in list(watcher.lines) if line.startswith("O6 {")]
    return [p for p in parsed if p["kind"] == kind]


def _records(config: Path) -> dict[str, dict[str, Any]]:
    proc = lineside("records", "--config", str(config), "--format", "jsonl", "--limit", "1000")
    assert proc.returncode == 0, proc.stderr
    records = [json.loads(line) for line in proc.stdout.splitlines() if line.strip()]
    return {f"{r['boot_id']}-{r['seq']}": r for r in records}


@dataclass
class Setup:
    """A station with the OPC UA server on, and the certificates of two trusted clients."""

    config: Path
    modbus: int
    port: int
    ua_client: ClientCert
    o6_client: ClientCert
    server_cert: Path  # generated at the server's first start


def _setup(root: Path, **extra: Any) -> Setup:
    certs = root / "certs"
    ua_client = make_client_cert(certs, "uacli", ASYNCUA_CLI_URI)
    o6_client = make_client_cert(certs, "o6cli", O6_URI)
    trusted = root / "trusted"
    trusted.mkdir()
    for cert in (ua_client.cert, o6_client.cert):
        shutil.copy(cert, trusted)
    users = root / "opcua-users"
    make_users_file(users)
    port = free_port()
    opcua = {"enabled": True, "port": port, "trusted_dir": str(trusted), "users_file": str(users)}
    config, modbus = make_station(root / "line", PATTERN, mode="robot", extra={"opcua": opcua, **extra})
    server_cert = root / "line" / "opcua" / "own" / "server_cert.der"
    return Setup(config, modbus, port, ua_client, o6_client, server_cert)


def _subscribe(setup: Setup, watchers: list[Watcher]) -> tuple[Watcher, Watcher]:
    """uasubscribe to the VisionSystem's events and to CurrentState; returns once both are subscribed."""
    events = uasubscribe(setup.port, setup.ua_client, "-t", "event", "-n", "ns=1;s=VisionSystem")
    states = uasubscribe(setup.port, setup.ua_client, "-n", STATE_NODE)
    watchers += [events, states]
    events.wait_for(subscribed, 30, "uasubscribe (events) subscribed")
    states.wait_for(subscribed, 30, "uasubscribe (state) subscribed")
    return events, states


def _kill_opcua_and_wait_for_its_return(line: RunningLine, setup: Setup) -> None:
    killed = line.worker_pid("opcua")
    assert killed is not None
    os.kill(killed, signal.SIGKILL)
    line.wait_for(lambda: line.worker_pid("opcua") not in (None, killed), 30, "opcua restarted")
    wait_for_state(setup.port, setup.ua_client, "Operational", 60)


def _check_events_match_records(events: list[tuple[str, str, int, str]], records: dict[str, Any]) -> None:
    by_event = {rid: (part, recipe, verdict) for rid, part, recipe, verdict in events}
    assert len(by_event) == len(events), "one event per part, no more"
    assert set(by_event) == set(records), "every part's event, and an event only for a part with a record"
    for rid, record in records.items():
        assert by_event[rid] == (record["part_id"], 1, record["verdict"]), (rid, record)
    assert {record["verdict"] for record in records.values()} == {"ACCEPT", "REJECT"}


def _check_o6_events_match_records(got: list[dict[str, Any]], records: dict[str, Any]) -> None:
    """The structured fields, decoded by open62541: ids, state, time and the content's verdict."""
    assert len(got) == FIRST
    for event in got:
        record = records[event["result_id"]]
        content = event["content"]
        ids = (event["part_id"], event["recipe_id"], event["job_id"])
        assert ids == (record["part_id"], "1", f"boot-{record['boot_id']}")
        assert event["result_state"] == (4 if record["verdict"] == "FAULT" else 1)
        assert content["verdict"] == record["verdict"] and content["reasons"] == record["reasons"]
        assert content["classes"] == [d["class"] for d in record["detections"]]
        assert content["scores"] == [d["confidence"] for d in record["detections"]]
        assert event["message"].startswith(f"ResultId={event['result_id']} ")
        assert abs(_epoch(event["creation_time"]) - record["decided_at"]) < 0.01


def _epoch(text: str) -> float:
    return datetime.fromisoformat(text.replace("Z", "+00:00")).timestamp()


@pytest.mark.slow
def test_every_part_has_its_result_ready_event_and_the_state_follows_the_line(tmp_path: Path) -> None:
    o6_missing = _o6_available()
    setup = _setup(tmp_path)
    watchers: list[Watcher] = []
    first_o6: list[dict[str, Any]] = []
    fetched: list[dict[str, Any]] = []
    try:
        with running_line(setup.config) as line:
            wait_for_state(setup.port, setup.ua_client, "Operational", 90)
            o6 = None
            if o6_missing is None:
                # After its events, o6 fetches the first and last part with GetResultById, and one never made.
                o6 = _o6_client(setup.port, setup.o6_client, setup.server_cert, FIRST)
                watchers.append(o6)
                o6.wait_for(lambda _lines: _o6_lines(o6, "ready"), 60, "o6 subscribed")
            events, states = _subscribe(setup, watchers)
            _robot(setup.modbus, FIRST)
            events.wait_for(lambda lines: len(events_in(lines)) >= FIRST, 30, f"{FIRST} ResultReady events")
            if o6 is not None:
                o6.wait_for(lambda _lines: len(_o6_lines(o6, "get")) == 3, 30, "the events and results in o6")
                assert _o6_lines(o6, "state")[0]["text"].endswith("Operational")
                first_o6 = _o6_lines(o6, "event")
                fetched = _o6_lines(o6, "get")
            first_events = events_in(events.lines)
            assert states_in(states.lines)[:1] == ["Operational"]

            # Kill the observer: the supervisor restarts it, the line never stopped.
            _kill_opcua_and_wait_for_its_return(line, setup)
            events, states = _subscribe(setup, watchers)
            _robot(setup.modbus, SECOND)
            events.wait_for(lambda lines: len(events_in(lines)) >= SECOND, 30, "events after the restart")
            second_events = events_in(events.lines)

            line.process.send_signal(signal.SIGTERM)
            assert line.process.wait(60) == 0, "".join(line.stderr[-30:])
            states.wait_for(lambda lines: "Halted" in states_in(lines), 15, "Halted at shutdown")
            assert states_in(states.lines) == ["Operational", "Halted"]
            assert "opcua died (exit code -9): restarting" in "".join(line.stderr)
    finally:
        for watcher in watchers:
            watcher.stop()

    records = _records(setup.config)
    assert (len(first_events), len(second_events), len(records)) == (FIRST, SECOND, FIRST + SECOND)
    _check_events_match_records(first_events + second_events, records)
    if o6_missing is not None:
        pytest.skip(f"asyncua's clients checked every part; the open62541 client could not run: {o6_missing}")
    _check_o6_events_match_records(first_o6, records)
    assert [(got["id"], got["status"], got["error"]) for got in fetched] == [
        (first_o6[0]["result_id"], 0, 0),
        (first_o6[-1]["result_id"], 0, 0),
        ("0-0", 0, -1),  # not a kept result: Error -1, an empty result
    ]
    for got in fetched[:2]:
        record = records[got["id"]]
        assert (got["content"]["seq"], got["content"]["verdict"]) == (record["seq"], record["verdict"])
    assert fetched[2]["content"] is None


@pytest.mark.slow
def test_a_fault_stop_shows_error_not_halted(tmp_path: Path) -> None:
    # No restarts allowed: the capture worker's death is a FAULT that stops the line.
    setup = _setup(tmp_path, supervisor={"restart_budget": {"count": 0, "window_s": 60}})
    watchers: list[Watcher] = []
    try:
        with running_line(setup.config) as line:
            wait_for_state(setup.port, setup.ua_client, "Operational", 90)
            _events, states = _subscribe(setup, watchers)
            capture = line.worker_pid("capture")
            assert capture is not None
            os.kill(capture, signal.SIGKILL)
            assert line.process.wait(60) == 1, "a FAULT stop exits 1"
            states.wait_for(lambda lines: "Error" in states_in(lines), 15, "Error at the FAULT stop")
            assert states_in(states.lines) == ["Operational", "Error"]
            assert "restart budget" in "".join(line.stderr)
    finally:
        for watcher in watchers:
            watcher.stop()
