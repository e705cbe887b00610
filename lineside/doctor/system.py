"""Doctor checks of the machine around the station: camera, Modbus port, disk, clock, runtime versions."""

from __future__ import annotations

import ctypes
import ctypes.util
import errno
import shutil
import socket
import sqlite3
import subprocess
import sys
import time
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path

from edge.errors import LinesideError
from edge.records.schema import DB_FILE, open_reader
from edge.robotlink.config import RobotLinkConfig
from edge.station.config import LinesideConfig
from lineside.doctor.report import Check, Status

GIB = float(1 << 30)
CLOCK_SLACK_S = 60.0  # records written a little "ahead" (another clock source) are not a fault
TIMEDATECTL_TIMEOUT_S = 3.0
ROBOT_CONNECT_TIMEOUT_S = 2.0
_TIME_ERROR = 5  # adjtimex(2): the kernel clock is not synchronised
_LIVE_KINDS = ("camera", "stream", "genicam")


@dataclass(frozen=True)
class PortOwner:
    pid: int
    command: str  # the process name, as `ps` shows it (lineside workers: lineside-<worker>)


def check_camera(
    config: LinesideConfig, timeout_s: float, line_running: bool
) -> tuple[Check, tuple[int, int] | None]:
    """Open the configured source briefly and read one frame; its (width, height) for the calibrations."""
    from edge.sources.opener import open_source  # OpenCV (and a camera SDK) only when this check runs

    started = time.monotonic()
    source = None
    try:
        source = open_source(config.source)
        frame = source.read(timeout_s=timeout_s)
        described = source.describe()
    except LinesideError as exc:
        if line_running and config.source.kind in _LIVE_KINDS:
            return Check.of("camera", Status.WARN, "doctor.camera_held", error=str(exc)), None
        return Check("camera", Status.FAIL, str(exc)), None
    finally:
        if source is not None:
            source.close()
    took_ms = (time.monotonic() - started) * 1000.0
    size = {"width": frame.width, "height": frame.height, "ms": took_ms}
    found = Check.of("camera", Status.PASS, "doctor.camera", source=described, **size)
    return found, (frame.width, frame.height)


def check_modbus(link: RobotLinkConfig) -> tuple[Check, bool]:
    """Can the robot link bind its port (role client: reach the robot)? Also: is a lineside already on it."""
    if link.role == "client":
        return _check_robot_reachable(link), False
    where = f"{link.host}:{link.port}"
    if link.port == 0:
        return Check.of("modbus", Status.PASS, "doctor.modbus_any_port", where=where), False
    try:
        _try_bind(link.host, link.port)
    except OSError as exc:
        return _bind_refused(where, link.port, exc)
    return Check.of("modbus", Status.PASS, "doctor.modbus_free", where=where), False


def _check_robot_reachable(link: RobotLinkConfig) -> Check:
    where = f"{link.robot_host}:{link.robot_port}"
    try:
        with socket.create_connection((link.robot_host or "", link.robot_port), ROBOT_CONNECT_TIMEOUT_S):
            pass
    except OSError as exc:  # the robot may be off while the station is checked: not a FAIL
        return Check.of("modbus", Status.WARN, "doctor.robot_unreachable", where=where, error=str(exc))
    return Check.of("modbus", Status.PASS, "doctor.robot_reachable", where=where)


def _try_bind(host: str, port: int) -> None:
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    with socket.socket(family, socket.SOCK_STREAM) as sock:
        # As the server binds: a connection lingering in TIME_WAIT does not block a restart.
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.bind((host, port))


def _bind_refused(where: str, port: int, exc: OSError) -> tuple[Check, bool]:
    if exc.errno == errno.EADDRINUSE:
        owner = port_owner(port)
        if owner is not None and owner.command.startswith("lineside"):
            owned = {"where": where, "pid": owner.pid, "command": owner.command}
            return Check.of("modbus", Status.PASS, "doctor.modbus_lineside", **owned), True
        if owner is not None:
            owned = {"where": where, "pid": owner.pid, "command": owner.command}
            return Check.of("modbus", Status.FAIL, "doctor.modbus_taken", **owned), False
        return Check.of("modbus", Status.FAIL, "doctor.modbus_taken_unseen", where=where), False
    if exc.errno == errno.EACCES:
        return Check.of("modbus", Status.WARN, "doctor.modbus_low_port", where=where), False
    return Check.of("modbus", Status.FAIL, "doctor.modbus_no_bind", where=where, error=exc.strerror), False


def port_owner(port: int) -> PortOwner | None:
    """The process listening on TCP `port`, from /proc (None if not found or not visible to this user)."""
    inodes: set[str] = set()
    for table in ("/proc/net/tcp", "/proc/net/tcp6"):
        try:
            rows = Path(table).read_text().splitlines()[1:]
        except OSError:
            continue
        for row in rows:
            fields = row.split()
            # local address "ADDR:PORT" in hex; state 0A is LISTEN.
            if len(fields) > 9 and fields[3] == "0A" and int(fields[1].rsplit(":", 1)[1], 16) == port:
                inodes.add(f"socket:[{fields[9]}]")
    if not inodes:
        return None
    for proc in Path("/proc").iterdir():
        if not proc.name.isdigit():
            continue
        try:
            if any(str(fd.readlink()) in inodes for fd in (proc / "fd").iterdir()):
                return PortOwner(int(proc.name), (proc / "comm").read_text().strip())
        except OSError:  # another user's process, or gone meanwhile
            continue
    return None


def check_disk(config: LinesideConfig, warn_gb: float, fail_gb: float) -> Check:
    """Free space where the records go (the nearest existing folder if it is not created yet)."""
    records = config.records.dir
    target = records
    while not target.exists() and target != target.parent:
        target = target.parent
    usage = shutil.disk_usage(target)
    free_gb, total_gb = usage.free / GIB, usage.total / GIB
    quota_gb = config.records.quota_mb / 1024.0
    space = {"where": str(records), "free": free_gb, "total": total_gb, "quota": quota_gb}
    if free_gb < fail_gb:
        return Check.of("disk", Status.FAIL, "doctor.disk_under", limit=fail_gb, **space)
    if free_gb < warn_gb:
        return Check.of("disk", Status.WARN, "doctor.disk_under", limit=warn_gb, **space)
    if free_gb < quota_gb:
        return Check.of("disk", Status.WARN, "doctor.disk_quota", **space)
    return Check.of("disk", Status.PASS, "doctor.disk", **space)


def check_clock(config: LinesideConfig, now: float) -> Check:
    """A sane year, and not behind the newest record (records and their order rely on it)."""
    now_iso = datetime.fromtimestamp(now, tz=timezone.utc).isoformat(timespec="seconds")
    if not 2024 <= datetime.fromtimestamp(now, tz=timezone.utc).year < 2100:
        return Check.of("clock", Status.FAIL, "doctor.clock_insane", now=now_iso)
    try:
        newest = newest_record_time(config.records.dir / DB_FILE)
    except LinesideError as exc:
        return Check.of("clock", Status.WARN, "doctor.clock_unread", now=now_iso, error=str(exc))
    if newest is None:
        return Check.of("clock", Status.PASS, "doctor.clock_no_records", now=now_iso)
    newest_iso = datetime.fromtimestamp(newest, tz=timezone.utc).isoformat(timespec="seconds")
    if newest > now + CLOCK_SLACK_S:
        behind = {"now": now_iso, "seconds": newest - now, "newest": newest_iso}
        return Check.of("clock", Status.FAIL, "doctor.clock_behind", **behind)
    return Check.of("clock", Status.PASS, "doctor.clock", now=now_iso, newest=newest_iso)


def newest_record_time(db_path: Path) -> float | None:
    """The newest record's trigger time (epoch s), None when there is no database or no record."""
    if not db_path.is_file():
        return None
    conn = open_reader(db_path)
    try:
        row = conn.execute("SELECT MAX(triggered_at) FROM inspections").fetchone()
    except sqlite3.Error as exc:
        raise LinesideError(f"{db_path}: {exc}") from None
    finally:
        conn.close()
    return None if row is None or row[0] is None else float(row[0])


def check_ntp() -> Check:
    """Is the clock synchronised: timedatectl where systemd runs, else the kernel's own flag (adjtimex)."""
    if shutil.which("timedatectl") is not None:
        try:
            done = subprocess.run(
                ["timedatectl", "show", "--property=NTPSynchronized", "--value"],
                capture_output=True,
                text=True,
                timeout=TIMEDATECTL_TIMEOUT_S,
                check=False,
            )
        except (OSError, subprocess.TimeoutExpired):
            done = None
        if done is not None and done.returncode == 0 and done.stdout.strip() in ("yes", "no"):
            if done.stdout.strip() == "yes":
                return Check.of("ntp", Status.PASS, "doctor.ntp_synced")
            return Check.of("ntp", Status.WARN, "doctor.ntp_not_synced")
    state = _kernel_clock_state()
    if state is None:
        return Check.of("ntp", Status.WARN, "doctor.ntp_unknown")
    if state == _TIME_ERROR:
        return Check.of("ntp", Status.WARN, "doctor.ntp_kernel_not_synced")
    return Check.of("ntp", Status.PASS, "doctor.ntp_kernel_synced")


def _kernel_clock_state() -> int | None:
    """adjtimex(2) with modes 0 (read only): the clock state, 5 = TIME_ERROR (unsynchronised)."""
    name = ctypes.util.find_library("c")
    if name is None:
        return None
    try:
        libc = ctypes.CDLL(name, use_errno=True)
        timex = ctypes.create_string_buffer(512)  # larger than struct timex; zero modes = only read
        state = int(libc.adjtimex(timex))
    except (OSError, AttributeError):
        return None
    return None if state < 0 else state


def check_runtime(config: LinesideConfig | None) -> Check:
    """Python and onnxruntime versions, and whether the configured execution providers exist."""
    python = f"Python {sys.version.split()[0]}"
    try:
        import onnxruntime
    except ImportError as exc:
        return Check.of("runtime", Status.FAIL, "doctor.runtime_no_onnx", python=python, error=str(exc))
    available = list(onnxruntime.get_available_providers())
    head = f"{python}, onnxruntime {onnxruntime.__version__}, providers {', '.join(available)}"
    if config is None:
        return Check("runtime", Status.PASS, head)
    wanted = config.detector.providers
    missing = [p for p in wanted if p not in available]
    if missing:
        usable = [p for p in wanted if p in available] or ["CPUExecutionProvider (fallback)"]
        providers = {"missing": ", ".join(missing), "usable": ", ".join(usable)}
        return Check.of("runtime", Status.WARN, "doctor.runtime_missing", head=head, **providers)
    return Check.of("runtime", Status.PASS, "doctor.runtime", head=head, wanted=", ".join(wanted))
