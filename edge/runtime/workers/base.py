"""One lifecycle for every worker process: setup, a loop of short steps, teardown in `finally`.

A worker stops when its stop event is set or its parent (the supervisor) has died, and sends a
heartbeat from inside its loop, so a hung step makes it fall silent and the supervisor notices.
"""

from __future__ import annotations

import logging
import os
import signal
import time
import traceback
from dataclasses import dataclass
from multiprocessing.synchronize import Event
from typing import ClassVar

import zmq

from edge.runtime.endpoints import Endpoints
from edge.runtime.messages import Heartbeat
from edge.runtime.placement import Placement
from edge.runtime.transport import Sender
from edge.station.config import LinesideConfig

log = logging.getLogger(__name__)

EXIT_OK = 0
EXIT_CRASHED = 3


@dataclass(frozen=True)
class WorkerContext:
    """What the supervisor hands a worker process (picklable for the spawn start method)."""

    config: LinesideConfig
    endpoints: Endpoints
    stop_event: Event
    parent_pid: int
    log_level: int = logging.INFO
    placement: Placement | None = None  # CPUs for onnxruntime and for the rest (edge/runtime/placement.py)
    # time.time() when this start of the appliance (`lineside run`) began: the records since then are this
    # start's (a restarted alarms worker rebuilds its charts from them); None: unknown.
    started_at: float | None = None


class Worker:
    """Base class: subclasses implement `setup`, `step` (returns within ~100 ms) and `teardown`."""

    name: ClassVar[str] = "worker"

    def __init__(self, ctx: WorkerContext) -> None:
        self.ctx = ctx
        self.config = ctx.config
        self.endpoints = ctx.endpoints
        self.state: str = "starting"
        self.detail: dict[str, object] = {}
        self.zmq = zmq.Context()
        if ctx.placement is not None:
            # zeromq's I/O threads (they start with the first socket) hand each message between the
            # processes: any CPU may run them, or a hop waits for a pinned worker's CPU to be free.
            for cpu in ctx.placement.service | ctx.placement.inference:
                self.zmq.set(zmq.THREAD_AFFINITY_CPU_ADD, cpu)
        self._heartbeat: Sender[Heartbeat] | None = None
        self._last_heartbeat = 0.0
        self._interval = ctx.config.supervisor.heartbeat_interval_s

    # -- lifecycle -----------------------------------------------------------------------------
    def setup(self) -> None:
        """Open sockets and resources; may take long (model warm-up) while heartbeats say 'starting'."""

    def step(self) -> None:
        """Do one bounded piece of work; must return within about 100 ms."""
        raise NotImplementedError

    def teardown(self) -> None:
        """Release what setup opened. Runs even when setup or step raised."""

    def main(self) -> None:
        """The loop; the asyncio robot link overrides this."""
        self.setup()
        if self.state == "starting":
            self.state = "ready"
        while not self.should_stop():
            self.step()
            self.beat()

    # -- helpers -------------------------------------------------------------------------------
    def should_stop(self) -> bool:
        return self.ctx.stop_event.is_set() or os.getppid() != self.ctx.parent_pid

    def beat(self, force: bool = False) -> None:
        """Send a heartbeat if one is due (or now, when forced)."""
        now = time.monotonic()
        if not force and now - self._last_heartbeat < self._interval:
            return
        if self._heartbeat is None:
            self._heartbeat = Sender(self.zmq, self.endpoints.heartbeats, Heartbeat, hwm=10)
        self._last_heartbeat = now
        message = Heartbeat(worker=self.name, pid=os.getpid(), state=self.state, detail=self.detail, t=now)
        self._heartbeat.send(message)

    def run(self) -> int:
        """Entry point in the child process; returns the exit code (never 0 after a crash)."""
        # Ctrl-C reaches the whole process group: only the supervisor decides when workers stop.
        signal.signal(signal.SIGINT, signal.SIG_IGN)
        signal.signal(signal.SIGTERM, lambda *_: self.ctx.stop_event.set())
        code = EXIT_OK
        try:
            self.beat(force=True)
            self.main()
            if os.getppid() != self.ctx.parent_pid:
                # The supervisor died (killed, crashed): say so, or its loss shows nowhere in the logs.
                log.warning("%s: the supervisor (pid %d) is gone; stopping", self.name, self.ctx.parent_pid)
            self.state = "stopping"
        except Exception:
            log.error("%s crashed:\n%s", self.name, traceback.format_exc())
            self.state = "failed"
            code = EXIT_CRASHED
        finally:
            try:
                self.teardown()
            except Exception:
                log.error("%s teardown failed:\n%s", self.name, traceback.format_exc())
                code = EXIT_CRASHED
            self.beat(force=True)
            if self._heartbeat is not None:
                self._heartbeat.close()
            self.zmq.term()
        return code


def sleep_unless_stopped(ctx: WorkerContext, seconds: float) -> bool:
    """Wait on the stop event instead of time.sleep; True if stop was requested."""
    return ctx.stop_event.wait(seconds)
