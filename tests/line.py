"""Helpers for end-to-end tests: a station folder with known parts, its config, and `lineside` as a process.

The station's model is a tiny ONNX detector whose one `scratch` box scores the frame's mean
brightness: a bright part (grey 220) is defective (REJECT), a dark one (grey 40) is good (ACCEPT).
So every test knows each part's ground truth and can count wrong accepts.
"""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import cv2
import numpy as np
import yaml

from tests.models import ModelBox, make_yolo_model

BRIGHT, DARK = 220, 40
FRAME_W, FRAME_H = 160, 120


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


def write_part(path: Path, defective: bool) -> None:
    image = np.full((FRAME_H, FRAME_W, 3), BRIGHT if defective else DARK, np.uint8)
    cv2.imwrite(str(path), image)


def make_station(
    root: Path,
    pattern: str = "gd",
    *,
    corrupt_at: int | None = None,
    mode: str = "free_run",
    takt_ms: float = 20.0,
    loop: bool = True,
    budget_ms: float = 450.0,
    extra: dict[str, Any] | None = None,
) -> tuple[Path, int]:
    """Write parts (g = good, d = defective), a model and a config; return (config path, Modbus port)."""
    parts = root / "parts"
    parts.mkdir(parents=True)
    for i, kind in enumerate(pattern):
        name = parts / f"part_{i:03d}.png"
        if i == corrupt_at:
            name.write_bytes(b"\x89PNG\r\n\x1a\n this is not an image")
        else:
            write_part(name, kind == "d")
    model = make_yolo_model(
        root / "model",
        ["scratch", "pit"],
        [ModelBox(32, 32, 10, 10, 0, 1.0)],
        imgsz=(64, 64),
        gain="input_mean",
        thresholds={"confidence": 0.05, "iou": 0.45, "per_class": {"scratch": 0.5, "pit": 0.5}},
    )
    port = free_port()
    config: dict[str, Any] = {
        "station": {"name": "test-line"},
        "source": {"kind": "folder", "path": "parts", "loop": loop},
        "trigger": {"mode": mode, "takt_ms": takt_ms},
        "recipes": [{"number": 1, "name": "test-part", "model": str(model)}],
        "default_recipe": 1,
        "robot_link": {
            "port": port,
            "publish_budget_ms": budget_ms,
            "robot_heartbeat_required": False,
            "require_enable": False,
        },
        "records": {"dir": "records", "quota_mb": 20, "synchronous": "NORMAL"},
        "supervisor": {"heartbeat_interval_s": 0.1, "stuck_after_s": 1.0, "stop_timeout_s": 3.0},
    }
    for key, value in (extra or {}).items():
        config[key] = {**config.get(key, {}), **value} if isinstance(value, dict) else value
    path = root / "line.yaml"
    path.write_text(yaml.safe_dump(config), encoding="utf-8")
    return path, port


def lineside(*args: str, timeout: float = 120, cwd: Path | None = None) -> subprocess.CompletedProcess[str]:
    """Run the real `lineside` command as a process."""
    return subprocess.run(
        [sys.executable, "-m", "lineside.cli", *args],
        capture_output=True,
        text=True,
        timeout=timeout,
        cwd=cwd,
        check=False,
    )


@dataclass
class RunningLine:
    """A `lineside run` in the background, its output collected line by line."""

    process: subprocess.Popen[str]
    stdout: list[str] = field(default_factory=list)
    stderr: list[str] = field(default_factory=list)

    def part_lines(self) -> list[str]:
        return [line for line in list(self.stdout) if line.startswith("part ")]

    def wait_for(self, predicate: Any, timeout: float, what: str) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if predicate():
                return
            if self.process.poll() is not None:
                break
            time.sleep(0.05)
        raise AssertionError(f"timed out waiting for {what}; stderr tail:\n" + "".join(self.stderr[-30:]))

    def worker_pid(self, worker: str) -> int | None:
        """The pid of a worker process (workers name themselves lineside-<worker>), if it is up."""
        children = Path(f"/proc/{self.process.pid}/task/{self.process.pid}/children").read_text().split()
        for pid in children:
            try:
                if Path(f"/proc/{pid}/comm").read_text().strip() == f"lineside-{worker}"[:15]:
                    return int(pid)
            except FileNotFoundError:
                continue
        return None


@contextmanager
def running_line(config: Path, *args: str, stop_timeout: float = 30) -> Iterator[RunningLine]:
    process = subprocess.Popen(
        [sys.executable, "-m", "lineside.cli", "--log-level", "INFO", "run", str(config), *args],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env={**os.environ, "PYTHONUNBUFFERED": "1"},
    )
    line = RunningLine(process)
    readers = [
        threading.Thread(target=_collect, args=(process.stdout, line.stdout), daemon=True),
        threading.Thread(target=_collect, args=(process.stderr, line.stderr), daemon=True),
    ]
    for reader in readers:
        reader.start()
    try:
        yield line
    finally:
        if process.poll() is None:
            process.send_signal(signal.SIGTERM)
        try:
            process.wait(stop_timeout)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait(5)
        for reader in readers:
            reader.join(5)


def _collect(stream: Any, into: list[str]) -> None:
    for text in stream:
        into.append(text)
