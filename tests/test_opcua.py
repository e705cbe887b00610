"""The OPC UA server (edge/opcua/) on its own: a real asyncua server on loopback, asked by asyncua's
command-line clients as processes. Who may connect (Basic256Sha256 SignAndEncrypt, trusted certificates,
user + password, no anonymous), what it refuses (writes, control methods), and the state and result
mapping it serves."""

from __future__ import annotations

import json
import shutil
import subprocess
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from edge.errors import ErrorCode, LinesideError
from edge.judge.inspection import Verdict
from edge.opcua.config import OpcUaConfig
from edge.opcua.results import RESULT_COMPLETED, RESULT_FAILED, part_result
from edge.opcua.security import ensure_server_identity
from edge.opcua.server import StateUpdate, VisionServer
from edge.opcua.state import VisionState, vision_state
from edge.opcua.users import add_user, check_login, load_users, parse_users
from edge.runtime.messages import LedgerEvent, Result, Trigger
from edge.station.config import LinesideConfig, parse_config
from edge.status.supervision import SupervisionReport, WorkerReport
from tests.line import free_port, lineside, make_station
from tests.opcua_support import (
    ASYNCUA_CLI_URI,
    PASSWORD,
    STATE_NODE,
    USER,
    ClientCert,
    make_client_cert,
    make_users_file,
    security,
    tool,
    uaread,
    url,
    wait_for_state,
)

RESULTS = "ns=1;s=VisionSystem.ResultManagement.Results"


# ---- the state machine follows the supervisor's reports ------------------------------------------------
def _report(ready: bool = True, fault: str | None = None, shutting_down: bool = False) -> SupervisionReport:
    robot = WorkerReport(state="ready", detail={"ready": ready})
    return SupervisionReport(
        workers={"robotlink": robot},
        model_ready=True,
        camera_ready=True,
        fault=fault,
        shutting_down=shutting_down,
        t=0.0,
    )


@pytest.mark.parametrize(
    ("report", "age", "stopping", "expected"),
    [
        (None, 0.0, False, VisionState.PREOPERATIONAL),  # no word from the supervisor yet
        (_report(ready=False), 0.0, False, VisionState.PREOPERATIONAL),  # warming up: READY off
        (_report(), 0.0, False, VisionState.OPERATIONAL),
        (_report(), 5.0, False, VisionState.PREOPERATIONAL),  # reports stopped: not trusted as READY
        (_report(shutting_down=True), 0.0, False, VisionState.HALTED),
        (_report(), 0.0, True, VisionState.HALTED),  # this worker stopped
        (
            _report(fault="capture died; restart budget spent", shutting_down=True),
            0.0,
            True,
            VisionState.ERROR,
        ),
    ],
)
def test_vision_state_follows_the_line(
    report: SupervisionReport | None, age: float, stopping: bool, expected: VisionState
) -> None:
    assert vision_state(report, age, stopping) is expected


# ---- one part as a Machine Vision result ---------------------------------------------------------------
def _event(verdict: Verdict, seq: int = 7, late: bool = False) -> LedgerEvent:
    trigger = Trigger(
        boot_id=3, seq=seq, trigger_seq=seq, part_id=str(seq), recipe=1, t_trigger=0.0,
        wall_trigger=1000.0, budget_ms=400,
    )  # fmt: skip
    if verdict is Verdict.FAULT:
        result = Result.fault(trigger, ErrorCode.CAMERA, "FAULT (camera): no frame")
        return LedgerEvent(
            kind="finalised", trigger=trigger, verdict=verdict, reasons=result.reasons,
            error_code=ErrorCode.CAMERA, wall_decided=1000.5, result=result,
        )  # fmt: skip
    detection = {"class": "scratch", "class_id": 0, "confidence": 0.91, "box": [1.0, 2.0, 3.0, 4.0]}
    reasons = (f"{verdict.value}: scratch 0.91",)
    result = Result(
        trigger=trigger, verdict=verdict, reasons=reasons, detections=(detection,), recipe_name="part-a",
        timings_ms={"capture": 2.0, "preprocess": 1.0, "infer": 5.0, "decode": 0.5},
    )  # fmt: skip
    return LedgerEvent(
        kind="finalised", trigger=trigger, verdict=verdict, reasons=reasons, wall_decided=1000.25,
        result=result, late=late,
    )  # fmt: skip


def test_a_part_becomes_a_result_with_its_ids_times_and_content() -> None:
    part = part_result(_event(Verdict.REJECT))
    assert (part.result_id, part.part_id, part.job_id, part.recipe_number) == ("3-7", "7", "boot-3", 1)
    assert part.result_state == RESULT_COMPLETED and part.verdict == "REJECT"
    assert (part.acquisition_ms, part.processing_ms) == (2.0, 6.5)
    assert part.creation_time.timestamp() == 1000.25 and part.start_time.timestamp() == 1000.0
    content = json.loads(part.content)
    assert content["verdict"] == "REJECT" and content["reasons"] == ["REJECT: scratch 0.91"]
    assert content["classes"] == ["scratch"] and content["scores"] == [0.91]
    assert part.message() == "ResultId=3-7 PartId=7 Recipe=1 Verdict=REJECT"


@pytest.mark.parametrize(("verdict", "late"), [(Verdict.FAULT, False), (Verdict.ACCEPT, True)])
def test_a_fault_or_a_late_part_is_a_failed_result_never_completed(verdict: Verdict, late: bool) -> None:
    part = part_result(_event(verdict, late=late))
    assert part.result_state == RESULT_FAILED
    assert json.loads(part.content)["error"] == ("camera" if verdict is Verdict.FAULT else None)


# ---- users file and config -----------------------------------------------------------------------------
def test_users_file_holds_hashes_and_checks_passwords(tmp_path: Path) -> None:
    path = tmp_path / "users"
    make_users_file(path)
    users = load_users(path)
    assert PASSWORD not in path.read_text() and users[USER].startswith("scrypt$")
    assert check_login(users, USER, PASSWORD)
    assert not check_login(users, USER, PASSWORD + "x")
    assert not check_login(users, "nobody", PASSWORD)
    assert not check_login(users, USER, None)


def test_a_plain_password_in_the_users_file_is_refused_naming_file_and_line() -> None:
    with pytest.raises(LinesideError, match=r"users:2: expected 'name:scrypt\$"):
        parse_users("# comment\nintegrator:hunter2\n", "users")


@pytest.mark.parametrize(
    ("section", "message"),
    [
        ({"enabled": True}, "set users_file"),
        ({"enabled": True, "allow_anonymous": True, "bind": "0.0.0.0"}, "allow_anonymous only on a loopback"),
        ({"enabled": True, "allow_anonymous": True, "certificate_file": "c.der"}, "go together"),
        ({"enabled": True, "users_file": "u", "path": "a/b"}, "path"),
    ],
)
def test_config_refuses_an_open_or_half_set_server(section: dict[str, Any], message: str) -> None:
    with pytest.raises(ValueError, match=message):
        OpcUaConfig.model_validate(section)


def test_server_identity_is_generated_once_and_repaired_when_not_a_pair(tmp_path: Path) -> None:
    first = ensure_server_identity(tmp_path, "urn:lineside:a", "127.0.0.1")
    cert = first.certificate.read_bytes()
    assert ensure_server_identity(tmp_path, "urn:lineside:a", "127.0.0.1").certificate.read_bytes() == cert
    assert (first.private_key.stat().st_mode & 0o077) == 0, "the key is readable by its owner only"
    other = ensure_server_identity(tmp_path / "other", "urn:lineside:a", "127.0.0.1")
    shutil.copy(other.private_key, first.private_key)  # a crash between the two writes
    repaired = ensure_server_identity(tmp_path, "urn:lineside:a", "127.0.0.1").certificate.read_bytes()
    assert repaired != cert
    renamed = ensure_server_identity(tmp_path, "urn:lineside:b", "127.0.0.1").certificate.read_bytes()
    assert renamed != repaired, "a certificate made for another ApplicationUri is replaced"


def test_offering_never_blocks_and_a_full_queue_drops_and_counts(tmp_path: Path) -> None:
    server = VisionServer(_config(tmp_path, free_port(), queue_size=5, users_file=None, allow_anonymous=True))
    started = time.monotonic()  # never started: nothing drains the queue
    taken = [server.offer(StateUpdate(VisionState.OPERATIONAL)) for _ in range(200)]
    assert time.monotonic() - started < 0.5
    assert taken.count(True) == 5 and server.counts()["dropped"] == 195


# ---- a real server, real clients -----------------------------------------------------------------------
@dataclass
class Served:
    server: VisionServer
    port: int
    client: ClientCert
    stranger: ClientCert
    folder: Path


def _config(root: Path, port: int, **opcua: Any) -> LinesideConfig:
    raw = {
        "station": {"name": "test-line"},
        "source": {"kind": "folder", "path": "parts"},
        "recipes": [
            {"number": 1, "name": "part-a", "model": "m"},
            {"number": 2, "name": "part-b", "model": "m"},
        ],
        "default_recipe": 1,
        "records": {"dir": "records"},
        "opcua": {"enabled": True, "port": port, **opcua},
    }
    return parse_config(raw, "test", root)


@pytest.fixture(scope="module")
def served(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Served]:
    root = tmp_path_factory.mktemp("opcua")
    client = make_client_cert(root / "certs", "uacli", ASYNCUA_CLI_URI)
    stranger = make_client_cert(root / "certs", "stranger", ASYNCUA_CLI_URI)
    (root / "trusted").mkdir()
    shutil.copy(client.cert, root / "trusted")
    make_users_file(root / "users")
    port = free_port()
    config = _config(root, port, users_file="users", trusted_dir="trusted", results_kept=3)
    server = VisionServer(config)
    server.start()
    assert server.serving.wait(60), f"server did not start: {server.error}"
    server.offer(StateUpdate(VisionState.OPERATIONAL))
    for seq in range(1, 6):
        server.offer(part_result(_event(Verdict.REJECT if seq % 2 else Verdict.ACCEPT, seq=seq)))
    try:
        yield Served(server, port, client, stranger, root / "opcua")
    finally:
        server.close(10)


def _run(name: str, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([tool(name), *args], capture_output=True, text=True, timeout=30, check=False)


def test_a_trusted_client_with_its_password_reads_the_state(served: Served) -> None:
    wait_for_state(served.port, served.client, "Operational", 30)


def test_a_wrong_password_is_refused(served: Served) -> None:
    before = served.server.counts()["refused_logins"]
    proc = uaread(served.port, served.client, STATE_NODE, password="not-the-password")
    assert proc.returncode != 0 and "BadUserAccessDenied" in proc.stdout + proc.stderr
    assert served.server.counts()["refused_logins"] == before + 1


def test_anonymous_is_refused_and_no_unencrypted_endpoint_exists(served: Served) -> None:
    proc = uaread(served.port, served.client, STATE_NODE, user=None)
    assert proc.returncode != 0 and "BadIdentityTokenRejected" in proc.stdout + proc.stderr
    plain = _run("uaread", "-u", url(served.port), "-n", STATE_NODE, "--timeout", "5")
    assert plain.returncode != 0 and "No matching endpoints" in plain.stdout + plain.stderr
    listed = _run("uadiscover", "-u", f"opc.tcp://127.0.0.1:{served.port}/lineside", "--timeout", "5")
    # One endpoint, Basic256Sha256 + SignAndEncrypt (mode 3); its user tokens: certificate and user name
    # (the password travels inside the encrypted channel, so that token names no policy of its own).
    lines = [line.strip() for line in listed.stdout.splitlines()]
    assert [line for line in lines if line.startswith("Security Mode")] == ["Security Mode: 3"], listed.stdout
    endpoint_policies = [
        line for line in listed.stdout.splitlines() if line.startswith("  Security Policy URI")
    ]
    assert [line.rsplit("#", 1)[1] for line in endpoint_policies] == ["Basic256Sha256"]
    assert [line for line in lines if line.startswith("User policy")] == [
        "User policy: certificate",
        "User policy: username",
    ]


def test_an_untrusted_client_certificate_is_refused_until_an_administrator_trusts_it(served: Served) -> None:
    proc = uaread(served.port, served.stranger, STATE_NODE)
    assert proc.returncode != 0 and "BadCertificateUntrusted" in proc.stdout + proc.stderr
    rejected = list((served.folder / "rejected").iterdir())
    assert len(rejected) == 1
    # The administrator moves it over; the folder is re-read, no restart needed.
    trusted = served.client.cert.parent.parent / "trusted"
    shutil.move(str(rejected[0]), trusted / rejected[0].name)
    try:
        assert uaread(served.port, served.stranger, STATE_NODE).returncode == 0
    finally:
        (trusted / rejected[0].name).unlink()
    time.sleep(0.05)  # a new mtime for the folder: the stranger is a stranger again
    assert uaread(served.port, served.stranger, STATE_NODE).returncode != 0


def test_clients_can_neither_write_nor_steer_the_line(served: Served) -> None:
    login = [url(served.port), security(served.client)]
    wrote = _run("uawrite", "-u", *login, "-n", STATE_NODE, "-t", "string", "Halted")
    assert wrote.returncode != 0 or "Bad" in wrote.stdout + wrote.stderr
    halt = _run("uacall", "-u", *login, "-n", "ns=1;s=VisionSystem.VisionStateMachine", "-m", "2:Halt")
    assert "BadNotSupported" in halt.stdout + halt.stderr
    wait_for_state(served.port, served.client, "Operational", 10)


def test_recipes_are_listed_read_only(served: Served) -> None:
    listed = _run(
        "uals", "-u", url(served.port), security(served.client), "-l", "-d", "2",
        "-n", "ns=1;s=VisionSystem.RecipeManagement.Recipes",
    )  # fmt: skip
    assert listed.returncode == 0, listed.stderr
    assert "part-a" in listed.stdout and "part-b" in listed.stdout
    prepared = uaread(served.port, served.client, "ns=1;s=VisionSystem.RecipeManagement.Recipes.1.IsPrepared")
    assert prepared.stdout.strip() == "True"  # the recipe of the last part
    other = uaread(served.port, served.client, "ns=1;s=VisionSystem.RecipeManagement.Recipes.2.IsPrepared")
    assert other.stdout.strip() == "False"


def test_only_the_last_results_are_kept_each_with_its_content(served: Served) -> None:
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline and served.server.counts()["published"] < 5:
        time.sleep(0.05)
    listed = _run("uals", "-u", url(served.port), security(served.client), "-n", RESULTS)
    assert listed.returncode == 0, listed.stderr
    kept = sorted(set(part for part in listed.stdout.split() if part.startswith("1:Result_")))
    assert kept == ["1:Result_3-3", "1:Result_3-4", "1:Result_3-5"]
    content = uaread(served.port, served.client, f"{RESULTS}.3-4.ResultContent")
    assert content.returncode == 0 and '"verdict":"ACCEPT"' in content.stdout
    state = uaread(served.port, served.client, f"{RESULTS}.3-4.ResultState")
    assert state.stdout.strip() == str(RESULT_COMPLETED)


async def _read_state_as_certificate_user(served: Served, user: ClientCert) -> str:
    """asyncua's client library (no CLI option for it): the channel as the trusted client, the session's
    user identified by `user`'s certificate (an X509 identity token) instead of a password."""
    from asyncua import Client

    client = Client(f"opc.tcp://127.0.0.1:{served.port}/lineside", timeout=5)
    await client.set_security_string(
        f"Basic256Sha256,SignAndEncrypt,{served.client.cert},{served.client.key}"
    )
    await client.load_client_certificate(str(user.cert))
    await client.load_private_key(str(user.key))
    await client.connect()
    try:
        value = await client.get_node(STATE_NODE).read_value()
        return str(value.Text)
    finally:
        await client.disconnect()


def test_a_trusted_certificate_logs_in_as_a_user_and_an_untrusted_one_does_not(served: Served) -> None:
    import asyncio

    assert asyncio.run(_read_state_as_certificate_user(served, served.client)) == "Operational"
    with pytest.raises(Exception, match="BadUserAccessDenied"):
        asyncio.run(_read_state_as_certificate_user(served, served.stranger))


def test_run_check_refuses_a_bad_users_file_and_a_missing_certificate_naming_them(tmp_path: Path) -> None:
    users = tmp_path / "users"
    users.write_text("operator:plain-password\n", encoding="utf-8")
    opcua: dict[str, Any] = {"enabled": True, "port": free_port(), "users_file": str(users)}
    config, _ = make_station(tmp_path / "bad", extra={"opcua": opcua})
    bad = lineside("run", "--check", str(config))
    assert bad.returncode == 1 and f"{users}:1" in bad.stderr and "never a password" in bad.stderr
    users.unlink()
    add_user(users, "operator", "a good long password")
    missing = tmp_path / "server.pem"
    opcua |= {"certificate_file": str(missing), "private_key_file": str(missing)}
    config, _ = make_station(tmp_path / "no-cert", extra={"opcua": opcua})
    no_cert = lineside("run", "--check", str(config))
    assert no_cert.returncode == 1 and "opcua.certificate_file" in no_cert.stderr, no_cert.stderr
    del opcua["certificate_file"], opcua["private_key_file"]
    config, _ = make_station(tmp_path / "good", extra={"opcua": opcua})
    good = lineside("run", "--check", str(config))
    assert good.returncode == 0, good.stderr
    assert f"opcua: 1 user(s) in {users}" in good.stdout
