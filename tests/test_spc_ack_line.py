"""Acknowledging line alarms on a real `lineside run`: the robot's CONTROL bit 2 (role (a), and role (b)
against a robot-side Modbus server), the status page's button (a plain HTTP client; 401/403 off loopback
and for cross-site requests; a real browser clicking it) and `lineside alarms ack` as a process each release
a latched alarm, ALARM and STATUS bit 6 read back 0 with a Modbus client independent of the appliance's
pymodbus, and the acknowledgement is in the records; and a SIGKILLed alarms worker comes back with its
baseline, its latches and its acknowledgements.

The robot triggers every part (tests/line.py's station in robot mode), so each step sees exactly the parts
it planted: 50 parts at 1 in 10 rejected learn the centre, then a subgroup at 8 in 10 alarms on its last
part. `release` is 1000 subgroups: a latch here is released by an acknowledgement only.
"""

from __future__ import annotations

import getpass
import http.client
import json
import os
import signal
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any
from urllib.parse import urlencode

import pytest
from pyModbusTCP.client import ModbusClient  # type: ignore[import-untyped]
from selenium.webdriver.remote.webdriver import WebDriver

from edge.opcua.users import add_user
from edge.records.alarms import recorded_acks, recorded_alarms
from edge.records.query import query
from edge.robotlink import registers as reg
from tests.line import RunningLine, free_port, lineside, make_station, running_line
from tests.test_status_page import browser  # noqa: F401 (the real browser fixture, shared)

pytestmark = pytest.mark.slow

SUBGROUP, BASELINE = 10, 5
STEADY = "ggggdggggg"  # one subgroup at 1 in 10: the centre
SHIFT = "ddgddddgdd"  # one subgroup at 8 in 10: beyond 3 sigma on the reject rate and the scratch rate
SPC = {"pchart": {"subgroup": SUBGROUP, "baseline_subgroups": BASELINE, "release": 1000}}
BOTH = reg.AlarmBit.REJECT_RATE | reg.AlarmBit.CLASS_RATE
BOTH_CHARTS = ("reject_rate", "class_rate:scratch")
HOST = "127.0.0.2"  # loopback, but not 127.0.0.1: the page asks for credentials there
USER, PASSWORD = "shift-lead", "correct horse battery staple"
TOKEN = "scrape-token-0123456789abcdef"
JSON = {"Content-Type": "application/json"}
# The alarms worker runs niced: on a busy machine a 1 s silence is no hang (a killed worker is seen at once).
PATIENT = {"stuck_after_s": 5.0}


class Robot:
    """The robot's side over Modbus (pyModbusTCP): trigger parts one by one, read the block, pulse CONTROL."""

    def __init__(self, port: int, line: RunningLine | None = None) -> None:
        self.client = ModbusClient(host="127.0.0.1", port=port, auto_open=True, timeout=1.0)
        self.seq = 0
        self.line = line

    def log(self) -> str:
        return "" if self.line is None else "".join(self.line.stderr[-40:])

    def block(self, deadline_s: float = 20.0) -> list[int]:
        end = time.monotonic() + deadline_s
        while time.monotonic() < end:
            got: list[int] | None = self.client.read_holding_registers(0, reg.BLOCK_COUNT)
            if got:
                return got
            time.sleep(0.05)
        raise AssertionError("the appliance's Modbus server does not answer")

    def wait_ready(self) -> None:
        self.until(lambda b: bool(b[reg.STATUS] & reg.StatusBit.READY), "READY", 60)

    def parts(self, pattern: str) -> None:
        """Trigger one part per letter and wait for each one's result (the folder gives them in order)."""
        for _ in pattern:
            self.seq += 1
            assert self.client.write_single_register(reg.TRIGGER_SEQ, self.seq)
            self.until(
                lambda b: b[reg.RESULT_SEQ] == self.seq and b[reg.RESULT_WORD] != 0, f"part {self.seq}"
            )

    def pulse_ack(self) -> None:
        """CONTROL bit 2 up, held until ALARM clears, then down (a rising edge acts; docs/robot-link.md)."""
        assert self.client.write_single_register(reg.CONTROL, reg.ControlBit.ACK_ALARMS)
        self.alarm(0)
        assert self.client.write_single_register(reg.CONTROL, 0)

    def alarm(self, word: int, timeout: float = 60.0) -> list[int]:
        """The block once ALARM reads `word`, with STATUS bit 6 set exactly when ALARM is not 0 (a generous
        bound: the alarms worker runs niced, and on a busy machine it comes after the line's workers)."""
        block = self.until(lambda b: b[reg.ALARM] == word, f"ALARM {word:#b}", timeout)
        assert bool(block[reg.STATUS] & reg.StatusBit.ALARM_WARNING) == bool(word)
        return block

    def until(self, check: Any, what: str, timeout: float = 10.0) -> list[int]:
        end = time.monotonic() + timeout
        while time.monotonic() < end:
            block = self.block()
            if check(block):
                return block
            time.sleep(0.02)
        raise AssertionError(f"timed out waiting for {what}; last block {self.block()}\n{self.log()}")


def _station(root: Path, pattern: str, status: dict[str, Any]) -> tuple[Path, int]:
    status = {"enabled": True, **status}
    extra = {"spc": SPC, "status": status, "supervisor": PATIENT}
    return make_station(root, pattern, mode="robot", loop=False, extra=extra)


def _post(
    host: str, port: int, headers: dict[str, str], body: dict[str, Any] | None = None
) -> tuple[int, dict[str, Any]]:
    conn = http.client.HTTPConnection(host, port, timeout=10)
    try:
        conn.request("POST", "/api/alarms/ack", body=json.dumps(body or {}), headers=headers)
        reply = conn.getresponse()
        data = reply.read()
    finally:
        conn.close()
    try:
        return reply.status, json.loads(data)
    except ValueError:
        return reply.status, {"text": data.decode()}


def _ack_when_running(host: str, port: int, headers: dict[str, str]) -> dict[str, Any]:
    """POST until the alarms worker answers (after a restart it answers once its charts are rebuilt)."""
    end = time.monotonic() + 60
    while time.monotonic() < end:
        status, body = _post(host, port, headers)
        if status == 200:
            return body
        assert status in (202, 503), (status, body)
        time.sleep(0.2)
    raise AssertionError("the alarms worker never answered an acknowledgement")


def _running(line: RunningLine) -> None:
    line.wait_for(lambda: any("status page at" in text for text in line.stderr), 30, "the status page")


def _check_verdicts(records_dir: Path, pattern: str) -> None:
    """Every part got the verdict its frame deserves: acknowledging never touched one."""
    records = query(records_dir / "records.db")
    judged = [r.verdict.value for r in records if r.verdict.value != "FAULT"]
    assert judged == ["REJECT" if k == "d" else "ACCEPT" for k in pattern]


def test_the_robot_the_page_and_the_cli_each_release_a_latched_alarm_and_are_recorded(tmp_path: Path) -> None:
    http_port = free_port()
    pattern = STEADY * BASELINE + (SHIFT + STEADY * 2) * 3
    config, modbus = _station(tmp_path, pattern, {"port": http_port})
    with running_line(config) as line:
        _running(line)
        robot = Robot(modbus, line)
        robot.wait_ready()
        robot.parts(STEADY * BASELINE + SHIFT)
        robot.alarm(BOTH)
        robot.pulse_ack()  # 1: the robot, CONTROL bit 2's rising edge

        robot.parts(STEADY * 2 + SHIFT)  # released, so the next shift alarms again
        robot.alarm(BOTH)
        # A request another site could make a browser send is refused, and releases nothing.
        assert _post("127.0.0.1", http_port, {"Content-Type": "text/plain"})[0] == 403
        assert _post("127.0.0.1", http_port, {**JSON, "Origin": "http://evil.example"})[0] == 403
        assert _post("127.0.0.1", http_port, {**JSON, "Host": f"evil.example:{http_port}"})[0] == 403
        assert robot.block()[reg.ALARM] == BOTH
        status, body = _post("127.0.0.1", http_port, JSON, {"source": "page"})  # 2: the page's button
        assert status == 200 and tuple(body["charts"]) == BOTH_CHARTS and body["active"] == [], body
        robot.alarm(0)

        robot.parts(STEADY * 2 + SHIFT)
        robot.alarm(BOTH)
        cli = lineside("alarms", "ack", "--chart", "reject_rate", "--config", str(config), "--lang", "en")
        assert cli.returncode == 0, cli.stderr
        assert cli.stdout.splitlines() == ["Acknowledged: reject rate.", "Still in alarm: rate of scratch."]
        robot.alarm(reg.AlarmBit.CLASS_RATE)
        cli = lineside("alarms", "ack", "--config", str(config), "--lang", "en")  # 3: the command line
        assert (cli.returncode, cli.stdout) == (0, "Acknowledged: rate of scratch.\n"), cli.stderr
        robot.alarm(0)
        again = lineside("alarms", "ack", "--config", str(config), "--lang", "en")
        assert again.stdout == "Nothing to acknowledge: no line alarm was in force.\n", again.stderr
        robot.parts(STEADY * 2)
        robot.alarm(0)  # a process back in control raises nothing after an acknowledgement
    assert line.process.returncode == 0, "".join(line.stderr[-30:])

    records_dir = tmp_path / "records"
    _check_verdicts(records_dir, pattern)
    assert [a.alarm["chart"] for a in recorded_alarms(records_dir)] == list(BOTH_CHARTS) * 3
    me = getpass.getuser()
    assert [(a.source, a.user, a.charts) for a in recorded_acks(records_dir)] == [
        ("robot", None, BOTH_CHARTS),
        ("page", None, BOTH_CHARTS),
        ("cli", me, ("reject_rate",)),
        ("cli", me, ("class_rate:scratch",)),
    ]
    listed = lineside("records", "alarms", "--dir", str(records_dir), "--lang", "en")
    assert listed.returncode == 0, listed.stderr
    lines = listed.stdout.splitlines()
    assert "4 acknowledgement(s):" in lines, listed.stdout
    acks = lines[lines.index("4 acknowledgement(s):") + 1 :]
    assert acks[0].endswith(" by the robot: reject rate, rate of scratch.")
    assert acks[1].endswith(" by the status page: reject rate, rate of scratch.")
    assert acks[3].endswith(f" by the command line ({me}): rate of scratch.")
    summary = lineside("records", "summary", "--dir", str(records_dir), "--lang", "en")
    assert summary.returncode == 0, summary.stderr
    assert "Acknowledgements of line alarms: 4:" in summary.stdout
    assert f"by the command line ({me})." in summary.stdout


def _secured_station(root: Path, pattern: str, port: int) -> tuple[Path, int]:
    root.mkdir(parents=True)
    add_user(root / "status-users", USER, PASSWORD)
    (root / "status-token").write_text(TOKEN + "\n", encoding="utf-8")
    secured = {"bind": HOST, "port": port, "users_file": "status-users", "token_file": "status-token"}
    config, modbus = _station(root / "station", pattern, secured)
    for name in ("status-users", "status-token"):
        (root / name).rename(root / "station" / name)
    return config, modbus


def _login(port: int) -> str:
    conn = http.client.HTTPConnection(HOST, port, timeout=10)
    try:
        form = urlencode({"user": USER, "password": PASSWORD})
        conn.request(
            "POST", "/login", body=form, headers={"Content-Type": "application/x-www-form-urlencoded"}
        )
        reply = conn.getresponse()
        reply.read()
    finally:
        conn.close()
    assert reply.status == 303
    return reply.headers["Set-Cookie"].split(";", 1)[0]


def test_off_loopback_the_button_needs_a_login_or_the_token_and_a_same_site_json_request(
    tmp_path: Path,
    browser: WebDriver,  # noqa: F811 (the fixture imported above)
) -> None:
    from selenium.webdriver.common.by import By

    http_port = free_port()
    pattern = STEADY * BASELINE + SHIFT + STEADY * 2 + SHIFT + STEADY * 2 + SHIFT
    config, modbus = _secured_station(tmp_path / "secured", pattern, http_port)
    with running_line(config) as line:
        _running(line)
        robot = Robot(modbus, line)
        robot.wait_ready()
        robot.parts(STEADY * BASELINE + SHIFT)
        robot.alarm(BOTH)
        assert _post(HOST, http_port, JSON)[0] == 401  # no credentials
        assert _post(HOST, http_port, {**JSON, "Authorization": "Bearer not-the-token-at-all"})[0] == 401
        cookie = {"Cookie": _login(http_port)}
        assert (
            _post(HOST, http_port, {**cookie, "Content-Type": "application/x-www-form-urlencoded"})[0] == 403
        )
        assert _post(HOST, http_port, {**cookie, **JSON, "Origin": "http://evil.example"})[0] == 403
        assert robot.block()[reg.ALARM] == BOTH  # nothing of that released anything
        status, body = _post(HOST, http_port, {**cookie, **JSON})
        assert status == 200 and tuple(body["charts"]) == BOTH_CHARTS, body
        robot.alarm(0)

        robot.parts(STEADY * 2 + SHIFT)
        robot.alarm(BOTH)
        cli = lineside("alarms", "ack", "--config", str(config), "--lang", "en")  # the token from the config
        assert (cli.returncode, cli.stdout) == (0, "Acknowledged: reject rate, rate of scratch.\n"), (
            cli.stderr
        )
        robot.alarm(0)

        robot.parts(STEADY * 2 + SHIFT)
        robot.alarm(BOTH)
        driver = browser  # a person: logs in on the form, sees the button, clicks it
        driver.get(f"http://{HOST}:{http_port}/")
        driver.find_element(By.ID, "login-user").send_keys(USER)
        driver.find_element(By.ID, "login-password").send_keys(PASSWORD)
        driver.find_element(By.ID, "login-submit").click()
        _until(lambda: driver.find_element(By.ID, "alarms-ack").is_displayed(), "the Acknowledge button")
        driver.find_element(By.ID, "alarms-ack").click()
        robot.alarm(0)
        note = driver.find_element(By.ID, "alarms-ack-note")
        _until(
            lambda: note.text == "acknowledged: reject rate, rate of scratch", f"the note (was {note.text!r})"
        )
        _until(lambda: not driver.find_element(By.ID, "alarms-ack").is_displayed(), "the button to go")
    me = getpass.getuser()
    acks = recorded_acks(tmp_path / "secured" / "station" / "records")
    assert [(a.source, a.user) for a in acks] == [("page", USER), ("cli", f"{me} (token)"), ("page", USER)]


def _until(check: Any, what: str, timeout: float = 15.0) -> None:
    end = time.monotonic() + timeout
    while time.monotonic() < end:
        try:
            if check():
                return
        except Exception:  # the page may be between documents; ask again
            pass
        time.sleep(0.2)
    raise AssertionError(f"timed out waiting for {what}")


def test_a_killed_alarms_worker_keeps_its_baseline_latches_and_acknowledgements(tmp_path: Path) -> None:
    http_port = free_port()
    pattern = STEADY * BASELINE + SHIFT + STEADY + SHIFT
    config, modbus = _station(tmp_path, pattern, {"port": http_port})
    with running_line(config) as line:
        _running(line)
        robot = Robot(modbus, line)
        robot.wait_ready()
        robot.parts(STEADY * BASELINE + SHIFT)
        robot.alarm(BOTH)

        _kill_alarms_worker(line)
        # The new worker rebuilt its latches from the records: the acknowledgement finds both in alarm (a
        # worker that started afresh would have none, and would be learning its baseline for 50 parts).
        assert tuple(_ack_when_running("127.0.0.1", http_port, JSON)["charts"]) == BOTH_CHARTS
        robot.alarm(0)

        _kill_alarms_worker(line)
        # ... and replays the recorded acknowledgement where it happened: nothing is latched again.
        assert _ack_when_running("127.0.0.1", http_port, JSON)["charts"] == []
        robot.parts(STEADY + SHIFT)
        # The shift after the restarts is caught on its own subgroup, as without a restart: the baseline held.
        robot.alarm(BOTH)
    assert line.process.returncode == 0, "".join(line.stderr[-30:])
    records_dir = tmp_path / "records"
    _check_verdicts(records_dir, pattern)
    alarms = recorded_alarms(records_dir)
    # Raised once each (the rebuilt charts' replayed alarms are the recorded ones), and the second shift's
    # alarm names exactly its 10 parts: the subgroup right after the shift, as without a restart.
    assert [a.alarm["chart"] for a in alarms] == list(BOTH_CHARTS) * 2
    seqs = [seq for _, seq in alarms[2].alarm["parts"]]
    assert seqs == list(range(len(pattern) - SUBGROUP + 1, len(pattern) + 1))
    assert sum("charts rebuilt from" in text for text in line.stderr) >= 2, "".join(line.stderr[-30:])


def _kill_alarms_worker(line: RunningLine) -> None:
    victim = line.worker_pid("alarms")
    assert victim is not None
    os.kill(victim, signal.SIGKILL)
    line.wait_for(lambda: line.worker_pid("alarms") not in (None, victim), 30, "a new alarms worker")


def test_the_cli_says_in_one_line_when_no_line_runs(tmp_path: Path) -> None:
    port = free_port()
    config, _ = _station(tmp_path, "g", {"port": port})
    cli = lineside("alarms", "ack", "--config", str(config))
    assert cli.returncode == 1 and cli.stdout == ""
    where = f"http://127.0.0.1:{port}/ (Connection refused)"
    assert cli.stderr == f"lineside alarms ack: no line answers on {where}: is it running?\n"
    bad = lineside("alarms", "ack", "--chart", "reject", "--config", str(config))
    assert bad.returncode == 2 and bad.stderr.startswith("lineside alarms ack: no chart 'reject': one of ")


@contextmanager
def _robot_server(port: int) -> Iterator[Any]:
    from tests.test_robotlink_client import PyModbusTcpRobot

    robot = PyModbusTcpRobot(port)
    robot.start()
    try:
        yield robot
    finally:
        robot.stop()


def test_role_b_the_robot_acknowledges_with_control_bit_2_in_its_own_registers(tmp_path: Path) -> None:
    port = free_port()
    link = {"role": "client", "robot_host": "127.0.0.1", "robot_port": port, "base": 128, "unit_id": 255}
    pattern = STEADY * BASELINE + SHIFT + STEADY * 40  # free-running: the steady end lasts 16 s
    extra = {"spc": SPC, "robot_link": link, "supervisor": PATIENT}
    config, _ = make_station(tmp_path, pattern, takt_ms=40, loop=False, extra=extra)
    with _robot_server(port) as robot, running_line(config) as line:
        status = lambda: robot.read(reg.STATUS, 1)[0]  # noqa: E731 (lineside writes its block into ours)
        line.wait_for(
            lambda: status() & reg.StatusBit.ALARM_WARNING, 60, "STATUS bit 6 in the robot's registers"
        )
        # ALARM too, written into the robot's register base + 22 on its own write.
        line.wait_for(lambda: robot.read(reg.ALARM, 1)[0] == BOTH, 10, "ALARM in the robot's registers")
        robot.write(reg.CONTROL, [reg.ControlBit.ACK_ALARMS])  # the robot program, in its own register
        line.wait_for(lambda: not status() & reg.StatusBit.ALARM_WARNING, 10, "STATUS bit 6 to clear")
        line.wait_for(lambda: robot.read(reg.ALARM, 1)[0] == 0, 10, "ALARM to clear")
        robot.write(reg.CONTROL, [0])
        block = robot.read(0, reg.LINESIDE_COUNT)
        assert block[reg.CHECK] == reg.check_word(block)  # the block stays whole
        line.wait_for(lambda: line.process.poll() is not None, 60, "the line to finish its parts")
    assert line.process.returncode == 0, "".join(line.stderr[-30:])
    records_dir = tmp_path / "records"
    _check_verdicts(records_dir, pattern)
    assert [(a.source, a.charts) for a in recorded_acks(records_dir)] == [("robot", BOTH_CHARTS)]


def test_robot_sim_acknowledges_a_line_alarm_it_sees_and_the_records_say_robot(tmp_path: Path) -> None:
    pattern = STEADY * BASELINE + SHIFT + STEADY * 2
    config, modbus = _station(tmp_path, pattern, {"port": free_port()})
    with running_line(config) as line:
        args = ("--port", str(modbus), "--parts", str(len(pattern)), "--ack-alarms", "--json")
        sim = lineside("robot-sim", *args, timeout=240)
        assert sim.returncode == 0, sim.stdout[-2000:] + sim.stderr[-2000:] + "".join(line.stderr[-30:])
        summary = json.loads(sim.stdout.strip().splitlines()[-1])
        block = Robot(modbus, line).block()
    assert summary["alarm_acks"] >= 1 and summary["wrong_accepts"] == [], summary
    assert block[reg.ALARM] == 0 and not block[reg.STATUS] & reg.StatusBit.ALARM_WARNING  # released
    records_dir = tmp_path / "records"
    _check_verdicts(records_dir, pattern)  # acknowledging never touched a verdict
    assert {a.alarm["chart"] for a in recorded_alarms(records_dir)} == set(BOTH_CHARTS)
    acks = recorded_acks(records_dir)
    assert [a.source for a in acks] == ["robot"] and set(acks[0].charts) == set(BOTH_CHARTS), acks
