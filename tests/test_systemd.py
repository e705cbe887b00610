"""The systemd unit, its drop-ins and install script, and the sd_notify messages `lineside run` sends.

Run with `-rA` to see the exposure figures `systemd-analyze security` gives each shipped combination.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import errno
import itertools
import json
import os
import re
import shutil
import socket
import struct
import subprocess
import sys
import threading
import time
import uuid
from pathlib import Path

import pytest

from edge.runtime.systemd import notifier
from edge.station.config import SupervisorConfig, load_config
from tests.line import make_station

ROOT = Path(__file__).resolve().parents[1]
SYSTEMD = ROOT / "systemd"
INSTALL = SYSTEMD / "install.sh"
PLACEHOLDER = "/usr/local/bin/lineside"
COMBINATIONS = [(), ("camera",), ("port502",), ("camera", "port502")]
MAX_EXPOSURE = 2.0
ANALYZE = shutil.which("systemd-analyze")
needs_analyze = pytest.mark.skipif(
    ANALYZE is None, reason="systemd-analyze not installed (Debian package `systemd`): unit not checked"
)


def lineside_executable() -> str:
    # verify refuses an ExecStart binary that does not exist; the shipped /usr/local/bin path may not here.
    return shutil.which("lineside") or sys.executable


def staged_unit(folder: Path, dropins: tuple[str, ...]) -> Path:
    """The shipped unit with the given drop-ins, in a folder of its own, ExecStart pointing at a real file."""
    folder.mkdir(parents=True, exist_ok=True)
    unit = folder / "lineside.service"
    unit.write_text((SYSTEMD / "lineside.service").read_text().replace(PLACEHOLDER, lineside_executable()))
    for name in dropins:
        (folder / "lineside.service.d").mkdir(exist_ok=True)
        shutil.copy(SYSTEMD / "lineside.service.d" / f"{name}.conf", folder / "lineside.service.d")
    return unit


def service_settings(*files: Path) -> dict[str, list[str]]:
    """Every key=value of the unit files, in order; systemd allows a key more than once."""
    settings: dict[str, list[str]] = {}
    for path in files:
        for line in path.read_text().splitlines():
            if line.strip() and not line.startswith(("#", ";", "[")):
                key, _, value = line.partition("=")
                settings.setdefault(key.strip(), []).append(value.strip())
    return settings


def seconds(value: str) -> float:
    match = re.fullmatch(r"(\d+)(s|min)?", value)
    assert match, f"unexpected time span {value!r}"
    return float(match.group(1)) * (60 if match.group(2) == "min" else 1)


# -- the unit as systemd reads it ------------------------------------------------------------------------
@needs_analyze
@pytest.mark.parametrize("dropins", COMBINATIONS, ids=lambda d: "+".join(("unit", *d)))
def test_every_shipped_combination_verifies_clean(tmp_path: Path, dropins: tuple[str, ...]) -> None:
    unit = staged_unit(tmp_path, dropins)
    done = subprocess.run(
        [str(ANALYZE), "verify", str(unit)], capture_output=True, text=True, timeout=60, check=False
    )
    assert done.returncode == 0 and done.stdout == "" and done.stderr == "", done.stdout + done.stderr


@needs_analyze
@pytest.mark.parametrize("dropins", COMBINATIONS, ids=lambda d: "+".join(("unit", *d)))
def test_every_shipped_combination_has_exposure_at_most_2(tmp_path: Path, dropins: tuple[str, ...]) -> None:
    unit = staged_unit(tmp_path, dropins)
    done = subprocess.run(
        [str(ANALYZE), "security", "--offline=yes", "--no-pager", str(unit)],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    found = re.search(r"Overall exposure level for lineside\.service: (\d+\.\d+)", done.stdout)
    assert found, done.stdout + done.stderr
    exposure = float(found.group(1))
    print(f"systemd-analyze security exposure, {' + '.join(('lineside.service', *dropins))}: {exposure}")
    assert exposure <= MAX_EXPOSURE


def test_unit_timeouts_outlast_the_supervisors_own() -> None:
    unit = service_settings(SYSTEMD / "lineside.service")
    cfg = SupervisorConfig()
    # A worker the supervisor restarts sends no WATCHDOG=1 until ready: systemd must not race that.
    assert seconds(unit["WatchdogSec"][0]) > cfg.stuck_after_s + cfg.start_grace_s
    # Shutdown: per worker stop_timeout_s, 1 s after SIGTERM, 1 s after SIGKILL; then the final drain.
    assert seconds(unit["TimeoutStopSec"][0]) > 4 * (cfg.stop_timeout_s + 2) + cfg.stop_timeout_s
    assert unit["Type"] == ["notify"] and unit["NotifyAccess"] == ["main"] and unit["KillMode"] == ["mixed"]
    assert unit["Restart"] == ["on-failure"] and int(unit["StartLimitBurst"][0]) >= 1
    assert unit["ExecStartPre"] == [f"{PLACEHOLDER} run --check /etc/lineside/line.yaml"]


def test_only_the_port502_dropin_grants_a_capability_and_only_net_bind_service() -> None:
    base = service_settings(SYSTEMD / "lineside.service")
    assert base["CapabilityBoundingSet"] == [""] and base["AmbientCapabilities"] == [""]
    assert (
        service_settings(SYSTEMD / "lineside.service.d" / "camera.conf").get("CapabilityBoundingSet") is None
    )
    port502 = service_settings(SYSTEMD / "lineside.service.d" / "port502.conf")
    assert port502["CapabilityBoundingSet"] == port502["AmbientCapabilities"] == ["CAP_NET_BIND_SERVICE"]


def test_example_config_is_valid_and_uses_the_units_directories() -> None:
    config = load_config(SYSTEMD / "line.example.yaml")
    assert str(config.station.runtime_dir) == "/run/lineside"  # RuntimeDirectory=lineside
    assert str(config.records.dir).startswith("/var/lib/lineside/")  # StateDirectory=lineside


# -- the line inside the unit's system call filter and W^X -------------------------------------------------
SANDBOX = """
import ctypes, ctypes.util, json, os, sys
allowed, error = json.loads(sys.argv[1]), int(sys.argv[2])
seccomp = ctypes.CDLL(ctypes.util.find_library("seccomp"))
seccomp.seccomp_init.restype = ctypes.c_void_p
ctx = ctypes.c_void_p(seccomp.seccomp_init(ctypes.c_uint32(0x00050000 | error)))  # SCMP_ACT_ERRNO
for name in allowed:
    number = seccomp.seccomp_syscall_resolve_name(name.encode())
    if number >= 0:
        assert seccomp.seccomp_rule_add(ctx, ctypes.c_uint32(0x7FFF0000), number, 0) == 0, name
libc = ctypes.CDLL(None, use_errno=True)
assert libc.prctl(65, 1, 0, 0, 0) == 0, "PR_SET_MDWE"  # what MemoryDenyWriteExecute=yes does
assert seccomp.seccomp_load(ctx) == 0
os.execv(sys.executable, [sys.executable, *sys.argv[3:]])
"""


def syscall_set(names: list[str], seen: set[str] | None = None) -> set[str]:
    """System call names behind systemd's @groups, as systemd-analyze lists them (groups nest)."""
    seen = set() if seen is None else seen
    calls: set[str] = set()
    for name in names:
        if not name.startswith("@"):
            calls.add(name)
        elif name not in seen:
            seen.add(name)
            listing = subprocess.run(
                [str(ANALYZE), "syscall-filter", name], capture_output=True, text=True, timeout=30, check=True
            ).stdout.splitlines()[1:]
            items = [item.strip() for item in listing if item.strip() and not item.strip().startswith("#")]
            calls |= syscall_set(items, seen)
    return calls


def mdwe_supported() -> bool:
    # PR_GET_MDWE (Linux 6.3+) answers >= 0; older kernels refuse the option.
    return int(ctypes.CDLL(None, use_errno=True).prctl(66, 0, 0, 0, 0)) >= 0


@needs_analyze
@pytest.mark.skipif(ctypes.util.find_library("seccomp") is None, reason="libseccomp not installed")
@pytest.mark.skipif(not mdwe_supported(), reason="kernel without PR_SET_MDWE (Linux < 6.3)")
def test_line_judges_parts_inside_the_units_syscall_filter_and_w_xor_x(tmp_path: Path) -> None:
    unit = service_settings(SYSTEMD / "lineside.service")
    assert unit["MemoryDenyWriteExecute"] == ["yes"] and unit["SystemCallErrorNumber"] == ["EPERM"]
    allow = [f for f in unit["SystemCallFilter"] if not f.startswith("~")]
    deny = [word for f in unit["SystemCallFilter"] if f.startswith("~") for word in f[1:].split()]
    allowed = sorted(syscall_set(" ".join(allow).split()) - syscall_set(deny))
    config, _ = make_station(tmp_path / "station", "gdgd")
    line_args = ["-m", "lineside.cli", "run", str(config), "--max-parts", "4"]
    done = subprocess.run(
        [sys.executable, "-c", SANDBOX, json.dumps(allowed), str(errno.EPERM), *line_args],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    parts = [line for line in done.stdout.splitlines() if line.startswith("part ")]
    assert done.returncode == 0 and len(parts) == 4, done.stdout + done.stderr[-3000:]
    assert "Operation not permitted" not in done.stderr


# -- sd_notify -----------------------------------------------------------------------------------------
def receive_notifications(sock: socket.socket) -> tuple[float, int, str] | None:
    """One datagram with the sender's pid (SO_PASSCRED), or None after the socket's timeout."""
    try:
        data, ancillary, _flags, _addr = sock.recvmsg(4096, socket.CMSG_SPACE(12))
    except TimeoutError:
        return None
    pid = next(
        struct.unpack("iII", cdata[:12])[0]
        for level, kind, cdata in ancillary
        if level == socket.SOL_SOCKET and kind == socket.SCM_CREDENTIALS
    )
    return time.monotonic(), pid, data.decode("ascii")


def test_run_sends_ready_before_the_first_part_then_watchdog_then_stopping(tmp_path: Path) -> None:
    config, _ = make_station(tmp_path / "station", "gdgd", takt_ms=100)
    address = tmp_path / "notify.sock"
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_PASSCRED, 1)
    sock.bind(str(address))
    sock.settimeout(0.2)
    process = subprocess.Popen(
        [sys.executable, "-m", "lineside.cli", "run", str(config), "--max-parts", "6"],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env={**os.environ, "NOTIFY_SOCKET": str(address), "PYTHONUNBUFFERED": "1"},
    )
    part_times: list[float] = []
    stderr: list[str] = []
    readers = [
        threading.Thread(
            target=lambda: part_times.extend(
                time.monotonic() for ln in process.stdout or [] if ln[:5] == "part "
            )
        ),
        threading.Thread(target=lambda: stderr.extend(process.stderr or [])),
    ]
    for reader in readers:
        reader.start()
    messages: list[tuple[float, int, str]] = []
    deadline = time.monotonic() + 90
    try:
        while time.monotonic() < deadline:  # after exit, drain what is queued, then stop
            got = receive_notifications(sock)
            if got is None and process.poll() is not None:
                break
            if got is not None:
                messages.append(got)
    finally:
        if process.poll() is None:
            process.kill()
        process.wait(10)
        for reader in readers:
            reader.join(10)
        sock.close()
    texts = [text for _t, _pid, text in messages]
    assert process.returncode == 0 and len(part_times) == 6, "".join(stderr[-30:])
    assert texts.count("READY=1") == 1 and texts[-1] == "STOPPING=1" and texts.count("STOPPING=1") == 1
    ready_at = next(t for t, _pid, text in messages if text == "READY=1")
    assert ready_at < part_times[0], "READY=1 must come before the first inspection"
    beats = [t for t, _pid, text in messages if text == "WATCHDOG=1"]
    assert len(beats) >= 3 and ready_at <= beats[0]
    assert max(b - a for a, b in itertools.pairwise(beats)) < 2.0  # systemd's WatchdogSec is 75 s
    # NotifyAccess=main: systemd would drop a message from a worker; all of them come from the supervisor.
    assert {pid for _t, pid, _text in messages} == {process.pid}


def test_notifier_reaches_an_abstract_socket_and_sends_ready_once_but_every_watchdog() -> None:
    name = f"lineside-test-{uuid.uuid4().hex}"
    with socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM) as sock:
        sock.bind("\0" + name)
        sock.settimeout(2.0)
        send = notifier({"NOTIFY_SOCKET": "@" + name})
        for message in ("READY=1", "READY=1", "WATCHDOG=1", "WATCHDOG=1", "STOPPING=1"):
            send(message)
        got = [sock.recv(64).decode() for _ in range(4)]
        sock.settimeout(0.2)
        with pytest.raises(TimeoutError):
            sock.recv(64)
    assert got == ["READY=1", "WATCHDOG=1", "WATCHDOG=1", "STOPPING=1"]


def test_notifier_without_notify_socket_sends_nothing_and_opens_no_socket() -> None:
    before = len(os.listdir("/proc/self/fd"))
    notifier({})("READY=1")
    assert len(os.listdir("/proc/self/fd")) == before


# -- install.sh against a temporary root -----------------------------------------------------------------
def install(root: Path, *args: str) -> subprocess.CompletedProcess[str]:
    # `sh` (dash on Debian) rather than bash: the script must stay POSIX.
    done = subprocess.run(
        ["sh", str(INSTALL), "--root", str(root), "--bin", sys.executable, *args],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert done.returncode == 0, done.stdout + done.stderr
    return done


def test_install_into_a_root_creates_unit_config_and_directories_and_runs_nothing(tmp_path: Path) -> None:
    done = install(tmp_path)
    unit = tmp_path / "etc/systemd/system/lineside.service"
    assert f"ExecStart={sys.executable} run --quiet /etc/lineside/line.yaml" in unit.read_text()
    assert PLACEHOLDER not in unit.read_text()
    config = tmp_path / "etc/lineside/line.yaml"
    assert config.read_text() == (SYSTEMD / "line.example.yaml").read_text()
    assert (tmp_path / "var/lib/lineside/models").is_dir() and (tmp_path / "var/log/lineside").is_dir()
    assert not (tmp_path / "etc/systemd/system/lineside.service.d").exists()
    assert "would run: useradd --system" in done.stdout and "would run: systemctl enable" in done.stdout
    assert "running:" not in done.stdout and "would run: systemctl start" not in done.stdout


@needs_analyze
def test_installed_unit_verifies_clean(tmp_path: Path) -> None:
    install(tmp_path, "--camera")
    done = subprocess.run(
        [str(ANALYZE), "verify", str(tmp_path / "etc/systemd/system/lineside.service")],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert done.returncode == 0 and done.stderr == "", done.stderr


def test_install_never_overwrites_an_existing_line_yaml(tmp_path: Path) -> None:
    config = tmp_path / "etc/lineside/line.yaml"
    config.parent.mkdir(parents=True)
    config.write_text("station: {name: mine}\n")
    done = install(tmp_path)
    assert config.read_text() == "station: {name: mine}\n" and "kept" in done.stdout


def test_reinstall_installs_exactly_the_dropins_asked_for(tmp_path: Path) -> None:
    dropins = tmp_path / "etc/systemd/system/lineside.service.d"
    install(tmp_path, "--camera", "--port502", "--start")
    assert sorted(p.name for p in dropins.iterdir()) == ["camera.conf", "port502.conf"]
    install(tmp_path, "--port502")
    assert sorted(p.name for p in dropins.iterdir()) == ["port502.conf"]


def test_uninstall_removes_the_unit_but_keeps_data_and_config_unless_purged(tmp_path: Path) -> None:
    install(tmp_path, "--camera")
    (tmp_path / "var/lib/lineside/records").mkdir()
    done = install(tmp_path, "--uninstall")
    assert not (tmp_path / "etc/systemd/system/lineside.service").exists()
    assert not (tmp_path / "etc/systemd/system/lineside.service.d").exists()
    assert (tmp_path / "etc/lineside/line.yaml").exists() and (tmp_path / "var/lib/lineside/records").is_dir()
    assert "would run: systemctl disable --now lineside.service" in done.stdout
    install(tmp_path, "--uninstall", "--purge")
    assert not (tmp_path / "etc/lineside").exists() and not (tmp_path / "var/lib/lineside").exists()
