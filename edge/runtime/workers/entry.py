"""The explicit registry of worker kinds and the function a spawned worker process starts in."""

from __future__ import annotations

import contextlib
import importlib
import logging
import sys
from pathlib import Path
from typing import TYPE_CHECKING

from edge.runtime.placement import lower_priority, pin_thread
from edge.runtime.workers.base import Worker, WorkerContext

if TYPE_CHECKING:
    from edge.station.config import LinesideConfig

# Start order; the supervisor stops them in reverse. The recorder starts first and stops last so
# that it sees every record; the robot link starts before inference so the robot sees a live
# heartbeat (READY=0) while the model warms up.
WORKER_ORDER = ("recorder", "robotlink", "inference", "capture")

WORKER_CLASSES = {
    "recorder": "edge.runtime.workers.recorder:RecorderWorker",
    "robotlink": "edge.runtime.workers.robotlink:RobotLinkWorker",
    "inference": "edge.runtime.workers.inference:InferenceWorker",
    "capture": "edge.runtime.workers.capture:CaptureWorker",
    "status": "edge.runtime.workers.status:StatusWorker",
    "fleet": "edge.runtime.workers.fleet:FleetWorker",
    "aas": "edge.runtime.workers.aas:AasWorker",
    "opcua": "edge.runtime.workers.opcua:OpcUaWorker",
    "alarms": "edge.runtime.workers.alarms:AlarmsWorker",
}

# Observers, started only when enabled in the config: after the recorder and before the robot link (so
# they see every final record, the shutdown's included), never part of READY, and given up (not a line
# fault) when they keep failing. The line's verdicts never depend on them.
OPTIONAL_WORKERS = ("alarms", "status", "fleet", "aas", "opcua")


def worker_order(config: LinesideConfig) -> tuple[str, ...]:
    """The start order of this configuration's workers (the supervisor stops them in reverse)."""
    enabled = {
        "status": config.status.enabled,
        "fleet": config.fleet.enabled,
        "aas": config.aas.enabled,
        "opcua": config.opcua.enabled,
        "alarms": config.spc.enabled,
    }
    optional = tuple(name for name in OPTIONAL_WORKERS if enabled[name])
    return (WORKER_ORDER[0], *optional, *WORKER_ORDER[1:])


def worker_class(name: str) -> type[Worker]:
    module_name, _, class_name = WORKER_CLASSES[name].partition(":")
    cls: object = getattr(importlib.import_module(module_name), class_name)
    if not (isinstance(cls, type) and issubclass(cls, Worker)):
        raise TypeError(f"{WORKER_CLASSES[name]} is not a Worker")
    return cls


def run_worker(name: str, ctx: WorkerContext) -> None:
    """Process target: build the worker and exit with its code (never 0 after a crash)."""
    logging.basicConfig(
        level=ctx.log_level,
        format=f"%(asctime)s %(levelname)s {name}[%(process)d] %(message)s",
        stream=sys.stderr,
    )
    set_process_name(f"lineside-{name}")
    place(name, ctx)
    worker = worker_class(name)(ctx)
    sys.exit(worker.run())


def place(name: str, ctx: WorkerContext) -> None:
    """This worker's priority, and its CPUs when the supervisor planned a placement (placement.py)."""
    lower_priority(name)
    if ctx.placement is not None:
        # Inference moves its own thread to the inference CPUs once set up (inference.py).
        pin_thread(ctx.placement.service)


def set_process_name(title: str) -> None:
    """Name the process as `ps`, `top` and `pkill` show it (Linux keeps 15 characters)."""
    # Not Linux, or /proc not mounted: the name is only a convenience.
    with contextlib.suppress(OSError):
        Path("/proc/self/comm").write_text(title[:15], encoding="ascii")
