"""`lineside run` as a restartable process (systemd's Restart= played by the campaign), its log file,
and its workers found by name under /proc."""

from __future__ import annotations

import os
import signal
import subprocess
import time
from pathlib import Path
from typing import IO

from edge.bench.appliance import children

WORKERS = ("recorder", "robotlink", "inference", "capture")


def comm(pid: int) -> str | None:
    try:
        return Path(f"/proc/{pid}/comm").read_text().strip()
    except OSError:
        return None


class LineProcess:
    """The appliance under test; stdout and stderr go (appended, across restarts) to `log`."""

    def __init__(self, command: list[str], config: Path, log: Path) -> None:
        self.command = [*command, str(config)]
        self.log = log
        self.starts = 0
        self._process: subprocess.Popen[bytes] | None = None
        self._out: IO[bytes] | None = None

    def start(self) -> None:
        if self._out is None:
            self._out = self.log.open("ab")
        env = {**os.environ, "PYTHONUNBUFFERED": "1"}
        # Its own process group: a "power cut" kills the supervisor and every worker at one instant.
        self._process = subprocess.Popen(
            self.command, stdout=self._out, stderr=subprocess.STDOUT, env=env, start_new_session=True
        )
        self.starts += 1

    @property
    def pid(self) -> int | None:
        return None if self._process is None else self._process.pid

    def exited(self) -> int | None:
        """The exit status once it has exited, else None."""
        return None if self._process is None else self._process.poll()

    def worker_pid(self, worker: str) -> int | None:
        if self.pid is None or self.exited() is not None:
            return None
        name = f"lineside-{worker}"[:15]
        return next((p for p in children(self.pid) if comm(p) == name), None)

    def pids(self) -> dict[str, int]:
        """supervisor and each worker that is up, by role."""
        found = {} if self.pid is None or self.exited() is not None else {"supervisor": self.pid}
        for worker in WORKERS:
            pid = self.worker_pid(worker)
            if pid is not None:
                found[worker] = pid
        return found

    def log_size(self) -> int:
        try:
            return self.log.stat().st_size
        except OSError:
            return 0

    def log_since(self, offset: int) -> str:
        with self.log.open("rb") as fh:
            fh.seek(offset)
            return fh.read().decode("utf-8", errors="replace")

    def kill(self) -> None:
        if self._process is not None and self._process.poll() is None:
            self._process.kill()
            self._process.wait(10)

    def stop(self, timeout_s: float = 30.0) -> int | None:
        """SIGTERM, a bounded wait, then SIGKILL; the exit status."""
        process = self._process
        if process is None:
            return None
        if process.poll() is None:
            process.send_signal(signal.SIGTERM)
        try:
            return process.wait(timeout_s)
        except subprocess.TimeoutExpired:
            process.kill()
            return process.wait(5.0)

    def close(self) -> None:
        self.stop()
        if self._out is not None:
            self._out.close()
            self._out = None

    def wait_gone(self, pids: list[int], timeout_s: float) -> None:
        """Wait (bounded) until these processes have exited, so a restart does not race them."""
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline and any(_alive(p) for p in pids):
            time.sleep(0.05)


def _alive(pid: int) -> bool:
    try:
        status = Path(f"/proc/{pid}/status").read_text()
    except OSError:
        return False
    return "State:\tZ" not in status
