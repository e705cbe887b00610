"""The faults a campaign injects, each with what it needs in the station config and how it is undone.

Appliance-side faults act on processes, files and mounts; robot-side faults (link drop, flapping, slow,
heartbeat stop) are handed to the robot program as a FaultPlan for its next parts.
"""

from __future__ import annotations

import contextlib
import os
import signal
import socket
import struct
import subprocess
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from random import Random
from typing import Any, Protocol

from edge.robotlink import registers as reg
from edge.robotlink.robot import FaultPlan, Inject
from lineside.soak.metrics import FILLER
from lineside.soak.process import WORKERS, LineProcess


class Target(Protocol):
    """What a fault acts on (the campaign)."""

    line: LineProcess
    parts_dir: Path
    records_dir: Path
    modbus_port: int
    rng: Random

    def plan_robot_fault(self, plan: FaultPlan) -> None: ...


Undo = Callable[[], None]


@dataclass(frozen=True)
class Fault:
    """One kind of fault: inject() returns what it did and an undo (run after hold_s), or None if it
    could not be injected now (e.g. the worker was restarting)."""

    name: str
    inject: Callable[[Target], tuple[str, Undo | None] | None]
    hold_s: float = 0.0
    config: dict[str, Any] = field(default_factory=dict)  # station config this fault needs
    needs_mount: bool = False  # records on a tmpfs of its own (root only)
    expect_fault: bool = True  # the robot should see an ERROR/LATE for it (else only logs/records)


def _signal_worker(worker: str, sig: signal.Signals) -> Callable[[Target], tuple[str, Undo | None] | None]:
    def inject(t: Target) -> tuple[str, Undo | None] | None:
        pid = t.line.worker_pid(worker)
        if pid is None:
            return None
        os.kill(pid, sig)
        if sig == signal.SIGSTOP:
            # The supervisor should kill it for silence; resume it if it did not, so nothing stays hung.
            return f"SIGSTOP {worker}", lambda: _quiet_kill(pid, signal.SIGCONT)
        return f"{sig.name} {worker}", None

    return inject


def _quiet_kill(pid: int, sig: signal.Signals) -> None:
    with contextlib.suppress(ProcessLookupError):
        os.kill(pid, sig)


def _kill_supervisor(t: Target) -> tuple[str, Undo | None] | None:
    pid = t.line.pid
    if pid is None or t.line.exited() is not None:
        return None
    os.kill(pid, signal.SIGKILL)
    return "SIGKILL supervisor", None


def _power_cut(t: Target) -> tuple[str, Undo | None] | None:
    pid = t.line.pid
    if pid is None or t.line.exited() is not None:
        return None
    os.killpg(pid, signal.SIGKILL)  # the line runs in its own session: every process at one instant
    return "SIGKILL process group", None


def _camera_lost(t: Target) -> tuple[str, Undo | None] | None:
    away = t.parts_dir.with_name(t.parts_dir.name + ".away")
    os.rename(t.parts_dir, away)
    return "source folder removed", lambda: os.rename(away, t.parts_dir)


def _replace_part(t: Target, make: Callable[[bytes], bytes], what: str) -> tuple[str, Undo | None]:
    files = sorted(p for p in t.parts_dir.iterdir() if p.is_file() and not p.name.startswith("."))
    victims = t.rng.sample(files, min(3, len(files)))
    saved = {p: p.read_bytes() for p in victims}
    for path, data in saved.items():
        _swap_in(path, make(data))

    def undo() -> None:
        for path, data in saved.items():
            _swap_in(path, data)

    return f"{what} x{len(victims)}", undo


def _swap_in(path: Path, data: bytes) -> None:
    temp = path.with_name(f".{path.name}.swap")
    temp.write_bytes(data)
    os.replace(temp, path)


def _truncated(t: Target) -> tuple[str, Undo | None] | None:
    return _replace_part(t, lambda data: data[: max(1, len(data) // 3)], "truncated frames")


def _wrong_size(t: Target) -> tuple[str, Undo | None] | None:
    import cv2
    import numpy as np

    def shrink(data: bytes) -> bytes:
        image = cv2.imdecode(np.frombuffer(data, np.uint8), cv2.IMREAD_COLOR)
        if image is None:
            raise ValueError("a part image cannot be decoded to make a wrong-size copy of it")
        half = cv2.resize(image, (max(8, image.shape[1] // 2), max(8, image.shape[0] // 2)))
        return bytes(cv2.imencode(".png", half)[1].tobytes())

    return _replace_part(t, shrink, "wrong-size frames")


def _records_full(t: Target) -> tuple[str, Undo | None] | None:
    filler = t.records_dir / FILLER
    with filler.open("wb") as fh, contextlib.suppress(OSError):
        while True:  # bounded by the tmpfs size: it ends with ENOSPC
            fh.write(b"\0" * (1 << 16))
    return "records disk full (ENOSPC)", lambda: filler.unlink(missing_ok=True)


def _records_read_only(t: Target) -> tuple[str, Undo | None] | None:
    """A filesystem cannot go read-only under an open writer (busy), as ext4's errors=remount-ro
    forces it to: the recorder is killed, the records remounted read-only while it restarts."""
    pid = t.line.worker_pid("recorder")
    if pid is None:
        return None
    os.kill(pid, signal.SIGKILL)
    t.line.wait_gone([pid], 5.0)
    for _ in range(50):  # the restarted recorder may hold the files open again: retry, bounded
        done = subprocess.run(
            ["mount", "-o", "remount,ro", str(t.records_dir)], capture_output=True, timeout=10, check=False
        )
        if done.returncode == 0:
            return "recorder killed, records read-only (remount,ro)", lambda: _remount_rw(t.records_dir)
        recorder = t.line.worker_pid("recorder")
        if recorder is not None:
            _quiet_kill(recorder, signal.SIGKILL)
            t.line.wait_gone([recorder], 5.0)
    raise OSError(f"{t.records_dir}: cannot remount read-only (busy)")


def _remount_rw(path: Path) -> None:
    subprocess.run(["mount", "-o", "remount,rw", str(path)], check=True, timeout=10)


def _robot(kind: Inject, count: int, hold_ms: float) -> Callable[[Target], tuple[str, Undo | None] | None]:
    def inject(t: Target) -> tuple[str, Undo | None] | None:
        t.plan_robot_fault(FaultPlan(kind, count=count, hold_ms=hold_ms, slow_deadline_ms=1.0))
        return f"robot {kind.value} x{count}", None

    return inject


def mbap(transaction: int, unit: int, pdu: bytes, length: int | None = None) -> bytes:
    """A Modbus TCP frame; `length` overrides the MBAP length field (to make it lie)."""
    return struct.pack(">HHHB", transaction, 0, len(pdu) + 1 if length is None else length, unit) + pdu


GARBAGE = (
    mbap(1, 1, b"\x03\x00\x00\x00\x0b", length=200),  # MBAP length larger than the frame
    mbap(2, 1, b"\x5a\x00\x00"),  # an unknown function code
    mbap(3, 1, struct.pack(">BHH", 6, reg.STATUS, 0xFFFF)),  # a write to a read-only register
    mbap(4, 1, struct.pack(">BHHB", 16, reg.HEARTBEAT, 3, 6) + b"\xff" * 6),  # HEARTBEAT..: read-only
    b"\x00\x05\x00\x01\x00",  # a truncated header
    bytes(range(256)),  # noise
)


def _modbus_garbage(t: Target) -> tuple[str, Undo | None] | None:
    sent = 0
    for frame in GARBAGE:
        with contextlib.suppress(OSError), socket.create_connection(("127.0.0.1", t.modbus_port), 1) as s:
            s.settimeout(0.3)
            s.sendall(frame)
            sent += 1
            with contextlib.suppress(OSError):
                s.recv(256)
    return f"malformed Modbus frames x{sent}", None


def catalogue() -> dict[str, Fault]:
    """Every fault by name, in the order the suite and the soak list them."""
    # The recorder is off the inspection path and a records fault does not change STATUS: the robot
    # sees nothing of them (expect_fault=False); they show in the logs and the records' counters.
    faults = [
        Fault(f"kill-{w}", _signal_worker(w, signal.SIGKILL), expect_fault=w != "recorder") for w in WORKERS
    ]
    faults += [
        Fault("kill-supervisor", _kill_supervisor),
        Fault("power-cut", _power_cut),
        Fault("hang-inference", _signal_worker("inference", signal.SIGSTOP), hold_s=4.0),
        Fault("camera-lost", _camera_lost, hold_s=1.0),
        Fault("truncated-frame", _truncated, hold_s=1.5),
        Fault("wrong-size-frame", _wrong_size, hold_s=1.5),
        Fault("records-full", _records_full, hold_s=2.0, needs_mount=True, expect_fault=False),
        Fault("records-read-only", _records_read_only, hold_s=2.0, needs_mount=True, expect_fault=False),
        Fault(
            "records-quota",
            lambda t: ("every image kept, quota 0.05 MB", None),
            config={"records": {"quota_mb": 0.05, "accept_sample_rate": 1.0}},
            expect_fault=False,
        ),
        Fault("link-drop", _robot(Inject.LINK_DROP, 1, 300.0)),
        Fault("link-flap", _robot(Inject.LINK_DROP, 5, 100.0)),
        Fault("link-slow", _robot(Inject.SLOW, 3, 0.0)),
        Fault(
            "robot-heartbeat-stop",
            _robot(Inject.HEARTBEAT_STOP, 2, 1500.0),
            config={"robot_link": {"robot_heartbeat_required": True}},
        ),
        Fault("modbus-garbage", _modbus_garbage, expect_fault=False),
    ]
    return {f.name: f for f in faults}
