"""The real appliance under test: a temporary station, `lineside run` as a process, and its memory.

The command that starts the appliance is passed in (edge does not know the CLI); the station is a
folder of parts, one model, records in the temporary folder and a free Modbus port.
"""

from __future__ import annotations

import signal
import socket
import subprocess
import time
from dataclasses import dataclass
from pathlib import Path
from typing import IO, Any, Literal

import yaml

from edge.errors import LinesideError
from edge.judge.detector.config import DetectorConfig
from edge.runtime.workers.entry import WORKER_ORDER
from edge.station.config import parse_config

KB_PER_MB = 1024.0  # /proc reports kB


def free_port() -> int:
    """A TCP port on 127.0.0.1 that was free a moment ago."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


@dataclass(frozen=True)
class Station:
    """A written station: its config file, Modbus port and result stream endpoint."""

    config: Path
    modbus_port: int
    publish: str


def write_station(
    root: Path,
    *,
    model_dir: Path,
    parts_dir: Path,
    detector: DetectorConfig,
    stages: tuple[Path, ...] = (),
    alarms: bool = True,
    mode: Literal["robot", "free_run"],
) -> Station:
    """Write `root/line.yaml` for the given trigger mode (free_run: takt 0, as fast as parts finish)."""
    root.mkdir(parents=True, exist_ok=True)
    port, publish = free_port(), f"tcp://127.0.0.1:{free_port()}"
    config: dict[str, Any] = {
        "station": {"name": f"bench-{mode}"},
        "source": {"kind": "folder", "path": str(parts_dir), "loop": True},
        "trigger": {"mode": mode, "takt_ms": 0.0},
        "detector": detector.model_dump(mode="json", exclude_none=True),
        "recipes": [
            {
                "number": 1,
                "name": "bench-part",
                # Absolute: a station file resolves relative paths from its own folder, not the caller's.
                "model": str(model_dir.resolve()),
                "stages": [{"model": str(p.resolve())} for p in stages],
            }
        ],
        "default_recipe": 1,
        "robot_link": {
            "host": "127.0.0.1",
            "port": port,
            # The bench is the only robot: it writes triggers and reads results, no heartbeat, no enable.
            "robot_heartbeat_required": False,
            "require_enable": False,
        },
        "publish": {"endpoint": publish},
        "records": {"dir": str(root / "records"), "quota_mb": 50},
        # On by default, as on a station: the alarms worker and the frames' image measures are part of the
        # line; `--no-alarms` measures what they cost.
        "spc": {"enabled": alarms},
    }
    path = root / "line.yaml"
    path.write_text(yaml.safe_dump(config, sort_keys=False), encoding="utf-8")
    parse_config(config, str(path), root)  # refuse a bad station here, not as a process that never starts
    return Station(path, port, publish)


@dataclass(frozen=True)
class ProcessMemory:
    """One process of the appliance: its role, pid, resident and proportional set size in MB."""

    name: str
    pid: int
    rss_mb: float
    pss_mb: float | None  # shared libraries split among the processes that map them; None if unreadable


class Appliance:
    """`lineside run CONFIG` in the background; stdout and stderr go to files beside the config."""

    def __init__(self, command: list[str], station: Station) -> None:
        self.command = [*command, str(station.config)]
        self.station = station
        self._logs = station.config.parent
        self._process: subprocess.Popen[bytes] | None = None
        self._files: list[IO[bytes]] = []
        self.started_at = 0.0

    def start(self) -> None:
        out = (self._logs / "run.out").open("wb")
        err = (self._logs / "run.err").open("wb")
        self._files = [out, err]
        self.started_at = time.monotonic()
        self._process = subprocess.Popen(self.command, stdout=out, stderr=err)

    @property
    def pid(self) -> int:
        if self._process is None:
            raise LinesideError("bench: the appliance was not started")
        return self._process.pid

    def check_alive(self) -> None:
        """Raise LinesideError with the tail of its log if the appliance has exited."""
        if self._process is not None and self._process.poll() is not None:
            raise LinesideError(
                f"bench: `lineside run` exited with {self._process.returncode}: {self.log_tail()}"
            )

    def log_tail(self, lines: int = 5) -> str:
        path = self._logs / "run.err"
        text = path.read_text(encoding="utf-8", errors="replace") if path.exists() else ""
        return " | ".join(text.strip().splitlines()[-lines:]) or "(no output)"

    def memory(self) -> list[ProcessMemory]:
        """The supervisor and each of its children, workers named by role."""
        pids = [self.pid, *children(self.pid)]
        found = [_memory_of(pid, "supervisor" if pid == self.pid else None) for pid in pids]
        return [m for m in found if m is not None]

    def stop(self, timeout_s: float = 30.0) -> int:
        """SIGTERM, a bounded wait, then SIGKILL (workers stop when their parent is gone); the exit code."""
        process = self._process
        if process is None:
            return 0
        try:
            if process.poll() is None:
                process.send_signal(signal.SIGTERM)
            try:
                return process.wait(timeout_s)
            except subprocess.TimeoutExpired:
                process.kill()
                return process.wait(5.0)
        finally:
            for handle in self._files:
                handle.close()
            self._files = []


def children(pid: int) -> list[int]:
    """Every process whose parent is `pid` (from /proc/*/stat, so children of any thread count)."""
    found: list[int] = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            stat = (entry / "stat").read_text()
        except OSError:
            continue  # gone since the listing
        # Field 4 is the parent pid; the command name (field 2) may hold spaces, so split after its ')'.
        fields = stat.rsplit(")", 1)[-1].split()
        if len(fields) > 1 and int(fields[1]) == pid:
            found.append(int(entry.name))
    return sorted(found)


def _memory_of(pid: int, name: str | None) -> ProcessMemory | None:
    try:
        comm = Path(f"/proc/{pid}/comm").read_text().strip()
        status = Path(f"/proc/{pid}/status").read_text()
    except OSError:
        return None
    rss = _kb_field(status, "VmRSS:")
    if rss is None:
        return None
    try:
        pss = _kb_field(Path(f"/proc/{pid}/smaps_rollup").read_text(), "Pss:")
    except OSError:
        pss = None
    role = name or next((w for w in WORKER_ORDER if comm == f"lineside-{w}"[:15]), comm)
    return ProcessMemory(role, pid, rss / KB_PER_MB, None if pss is None else pss / KB_PER_MB)


def _kb_field(text: str, key: str) -> float | None:
    for line in text.splitlines():
        if line.startswith(key):
            return float(line.split()[1])
    return None
