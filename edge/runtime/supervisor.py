"""The supervisor: the one composition root that owns every worker process and the sockets that join them.

It starts the workers in order, watches their heartbeats, restarts a dead or stuck worker within a
budget (then faults and stops), tells the robot link whether the line is ready, and shuts everything
down in reverse order with bounded waits (join, then terminate, then kill).
"""

from __future__ import annotations

import logging
import multiprocessing as mp
import os
import shutil
import signal
import tempfile
import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field
from multiprocessing.context import SpawnProcess
from pathlib import Path
from types import FrameType

import zmq

from edge.errors import LinesideError
from edge.records.hold import hold_records_dir
from edge.runtime.endpoints import Endpoints
from edge.runtime.messages import Health, Heartbeat, LedgerEvent
from edge.runtime.placement import Placement, line_threads, plan, usable_cpus
from edge.runtime.transport import Receiver, Sender
from edge.runtime.workers.base import WorkerContext
from edge.runtime.workers.entry import OPTIONAL_WORKERS, run_worker, worker_order
from edge.station.config import LinesideConfig
from edge.status.supervision import SupervisionReport, WorkerReport, supervision_endpoint

log = logging.getLogger(__name__)

EXIT_OK = 0
EXIT_FAULT = 1
MAX_IPC_PATH = 100  # sun_path is 108 bytes on Linux
REPORT_READERS = ("status", "opcua")  # observers that read the supervision reports


@dataclass
class WorkerSlot:
    """One worker: its process, its stop event, what it last said and when it was restarted."""

    name: str
    process: SpawnProcess | None = None
    stop_event: object | None = None
    started_at: float = 0.0
    last_heartbeat: float = 0.0
    state: str = "down"
    detail: dict[str, object] = field(default_factory=dict)
    restarts: deque[float] = field(default_factory=deque)
    total_restarts: int = 0


def _with_line_threads(config: LinesideConfig) -> LinesideConfig:
    """`config` with auto `detector.threads` made the count the line runs with (placement.line_threads),
    so that every worker loads its models, and the placement splits the CPUs, by the same number."""
    usable = usable_cpus()
    threads = line_threads(config.detector.threads, usable, config.supervisor.cpu_placement)
    if threads == config.detector.threads:
        return config
    log.info("detector.threads auto: %d onnxruntime threads, 1 of %d CPUs kept for the rest of the line",
             threads, len(usable))  # fmt: skip
    return config.model_copy(update={"detector": config.detector.model_copy(update={"threads": threads})})


class Supervisor:
    """Runs the appliance until stopped, done (max_parts) or out of restart budget."""

    def __init__(
        self,
        config: LinesideConfig,
        on_inspection: Callable[[LedgerEvent], None] | None = None,
        notify: Callable[[str], None] | None = None,
    ) -> None:
        self.config = _with_line_threads(config)
        self.on_inspection = on_inspection
        self.notify = notify or (lambda _message: None)
        self.mp = mp.get_context("spawn")
        self.order = worker_order(config)  # the line's workers, plus the enabled observers
        self.slots = {name: WorkerSlot(name) for name in self.order}
        self._supervision: Sender[SupervisionReport] | None = None
        self._last_report = 0.0
        self._stop_requested = False
        self._fault: str | None = None
        self._own_runtime_dir: Path | None = None
        self.runtime_dir = self._runtime_dir()
        self.endpoints = Endpoints.in_runtime_dir(self.runtime_dir, config.publish.endpoint)
        self.zmq = zmq.Context()
        self.ready_announced = False
        self._not_ready_since: float | None = None
        self._last_not_ready_warning = 0.0
        self.placement = self._plan_placement()
        self.started_at = time.time()  # this start's records are those triggered since (WorkerContext)

    # -- set-up ----------------------------------------------------------------------------------
    def _runtime_dir(self) -> Path:
        configured = self.config.station.runtime_dir or os.environ.get("RUNTIME_DIRECTORY")
        if configured:
            path = Path(str(configured).split(":")[0])
            path.mkdir(parents=True, exist_ok=True, mode=0o750)
        else:
            path = Path(tempfile.mkdtemp(prefix="lineside-"))
            self._own_runtime_dir = path
        if len(str(path)) + 20 > MAX_IPC_PATH:
            raise LinesideError(f"station.runtime_dir: '{path}' is too long for Unix sockets (max ~80 chars)")
        return path

    def _plan_placement(self) -> Placement | None:
        if self.config.supervisor.cpu_placement == "off":
            return None
        placement = plan(usable_cpus(), self.config.detector.threads)
        if placement is None:
            log.info(
                "cpu placement: onnxruntime may use all %d usable CPUs; the OS places every worker",
                len(usable_cpus()),
            )
        else:
            log.info("cpu placement: %s", placement.describe())
        return placement

    def request_stop(self, *_: object) -> None:
        self._stop_requested = True

    def _install_signals(self) -> None:
        def handler(signum: int, _frame: FrameType | None) -> None:
            log.info("received %s: shutting down", signal.Signals(signum).name)
            self.request_stop()

        signal.signal(signal.SIGTERM, handler)
        signal.signal(signal.SIGINT, handler)

    # -- worker processes --------------------------------------------------------------------------
    def _start(self, slot: WorkerSlot) -> None:
        stop_event = self.mp.Event()
        ctx = WorkerContext(
            config=self.config,
            endpoints=self.endpoints,
            stop_event=stop_event,
            parent_pid=os.getpid(),
            log_level=logging.getLogger().getEffectiveLevel(),
            placement=self.placement,
            started_at=self.started_at,
        )
        process = self.mp.Process(target=run_worker, args=(slot.name, ctx), name=f"lineside-{slot.name}")
        process.start()
        slot.process, slot.stop_event = process, stop_event
        slot.started_at = time.monotonic()
        slot.last_heartbeat = 0.0
        slot.state = "starting"
        log.info("started %s (pid %s)", slot.name, process.pid)

    def _stop(self, slot: WorkerSlot, timeout_s: float) -> None:
        process = slot.process
        if process is None:
            return
        if slot.stop_event is not None:
            slot.stop_event.set()  # type: ignore[attr-defined]
        process.join(timeout_s)
        if process.is_alive():
            log.warning("%s did not stop within %.1f s: terminating", slot.name, timeout_s)
            process.terminate()
            process.join(1.0)
        if process.is_alive():
            log.warning("%s ignored SIGTERM: killing", slot.name)
            process.kill()
            process.join(1.0)
        slot.process = None
        slot.state = "down"

    def _restart(self, slot: WorkerSlot, why: str) -> None:
        now = time.monotonic()
        budget = self.config.supervisor.restart_budget
        while slot.restarts and now - slot.restarts[0] > budget.window_s:
            slot.restarts.popleft()
        if len(slot.restarts) >= budget.count and slot.name in OPTIONAL_WORKERS:
            self._give_up(slot, why)
            return
        if len(slot.restarts) >= budget.count:
            self._fault = (
                f"{slot.name} {why}; restart budget ({budget.count} in {budget.window_s:.0f} s) spent"
            )
            log.error("FAULT: %s: stopping", self._fault)
            self.request_stop()
            return
        log.error("%s %s: restarting (%d/%d in window)", slot.name, why, len(slot.restarts) + 1, budget.count)
        if slot.process is not None and slot.process.is_alive():
            slot.process.kill()  # a stuck worker may be stopped (SIGSTOP) or deaf: no polite request
            slot.process.join(2.0)
        slot.process = None
        slot.restarts.append(now)
        slot.total_restarts += 1
        self._start(slot)

    def _give_up(self, slot: WorkerSlot, why: str) -> None:
        """An observer (status page, fleet feed) out of restart budget: stop it, keep the line running."""
        budget = self.config.supervisor.restart_budget
        log.error(
            "%s %s; restart budget (%d in %.0f s) spent: giving it up (the line runs on without it)",
            slot.name,
            why,
            budget.count,
            budget.window_s,
        )
        if slot.process is not None and slot.process.is_alive():
            slot.process.kill()
            slot.process.join(2.0)
        slot.process = None
        slot.state = "failed"

    def _watch(self, now: float) -> None:
        cfg = self.config.supervisor
        for slot in self.slots.values():
            process = slot.process
            if process is None:
                continue
            if not process.is_alive():
                if slot.state == "done":
                    continue
                self._restart(slot, f"died (exit code {process.exitcode})")
            elif slot.last_heartbeat == 0.0 or slot.state == "starting":
                if now - slot.started_at > cfg.start_grace_s:
                    self._restart(slot, f"did not start within {cfg.start_grace_s:.0f} s")
            elif now - slot.last_heartbeat > cfg.stuck_after_s:
                self._restart(slot, f"silent for {now - slot.last_heartbeat:.1f} s (stuck)")
            if self._stop_requested:
                return

    def _on_heartbeat(self, beat: Heartbeat) -> None:
        slot = self.slots.get(beat.worker)
        if slot is None or slot.process is None or slot.process.pid != beat.pid:
            return  # a message from a process we already replaced
        slot.last_heartbeat = time.monotonic()
        slot.state = beat.state
        slot.detail = dict(beat.detail)

    def health(self) -> Health:
        capture = self.slots["capture"]
        inference = self.slots["inference"]
        return Health(
            model_ready=inference.state == "ready",
            camera_ready=capture.state == "ready" and bool(capture.detail.get("camera_ready")),
            source_ended=bool(capture.detail.get("source_ended")),
            workers={name: slot.state for name, slot in self.slots.items()},
            shutting_down=self._stop_requested,
            t=time.monotonic(),
        )

    # -- main loop -----------------------------------------------------------------------------------
    def run(self) -> int:
        """Start everything, supervise until asked to stop, shut down; return the process exit code."""
        held = hold_records_dir(self.config.records.dir)  # before anything starts: one line per folder
        self._install_signals()
        heartbeats: Receiver[Heartbeat] = Receiver(self.zmq, self.endpoints.heartbeats, Heartbeat, hwm=1000)
        health_out: Sender[Health] = Sender(
            self.zmq, self.endpoints.health, Health, bind=True, pub=True, hwm=10
        )
        inspections: Receiver[LedgerEvent] = Receiver(
            self.zmq, self.endpoints.publish, LedgerEvent, bind=False, sub=True, hwm=10000
        )
        try:
            if any(name in self.order for name in REPORT_READERS):
                endpoint = supervision_endpoint(self.endpoints)
                self._supervision = Sender(self.zmq, endpoint, SupervisionReport, bind=True, pub=True, hwm=10)
            for name in self.order:
                self._start(self.slots[name])
            self._loop(heartbeats, health_out, inspections)
        finally:
            self.notify("STOPPING=1")
            self._shutdown(health_out, inspections)
            for sock in (heartbeats, health_out, inspections):
                sock.close()
            if self._supervision is not None:
                self._supervision.close()
            self.zmq.term()
            if self._own_runtime_dir is not None:
                shutil.rmtree(self._own_runtime_dir, ignore_errors=True)
            held.close()
        return EXIT_FAULT if self._fault else EXIT_OK

    def _loop(
        self,
        heartbeats: Receiver[Heartbeat],
        health_out: Sender[Health],
        inspections: Receiver[LedgerEvent],
    ) -> None:
        last_health = 0.0
        poller = zmq.Poller()
        poller.register(heartbeats.socket, zmq.POLLIN)
        poller.register(inspections.socket, zmq.POLLIN)
        while not self._stop_requested:
            ready = dict(poller.poll(50))
            if heartbeats.socket in ready:
                self._drain(heartbeats, self._on_heartbeat)
            if inspections.socket in ready:
                self._drain(inspections, self._on_inspection)
            now = time.monotonic()
            self._watch(now)
            if now - last_health >= 0.1:
                health = self.health()
                health_out.send(health)
                self._report(health, now)
                self._announce(health)
                last_health = now
            if self.slots["robotlink"].state == "done":
                log.info("robot link finished its parts: shutting down")
                self.request_stop()

    def _announce(self, health: Health) -> None:
        self._warn_if_not_ready(health)
        healthy = all(
            s.state in ("ready", "degraded") for s in self.slots.values() if s.name not in OPTIONAL_WORKERS
        )
        if health.model_ready and health.camera_ready and not self.ready_announced:
            self.ready_announced = True
            self.notify("READY=1")
        if healthy:
            self.notify("WATCHDOG=1")

    def _warn_if_not_ready(self, health: Health) -> None:
        """Say why the line is not READY, every `not_ready_warn_s` while it lasts: never a silent wait."""
        now = time.monotonic()
        if health.model_ready and health.camera_ready:
            self._not_ready_since = None
            return
        if self._not_ready_since is None:
            self._not_ready_since = now
        waited = now - self._not_ready_since
        every = self.config.supervisor.not_ready_warn_s
        if waited < every or now - self._last_not_ready_warning < every:
            return
        self._last_not_ready_warning = now
        inference, capture = self.slots["inference"], self.slots["capture"]
        why = [f"inference {inference.state}"]
        if inference.detail.get("load_error"):
            why.append(f"model: {inference.detail['load_error']}")
        why.append(f"capture {capture.state}, source {capture.detail.get('source_state', 'unknown')}")
        if capture.detail.get("station_check", "pass") != "pass":
            why.append(str(capture.detail["station_check"]))
        log.warning("not READY for %.0f s: %s", waited, "; ".join(why))

    def _drain(
        self, receiver: Receiver[Heartbeat] | Receiver[LedgerEvent], handle: Callable[..., None]
    ) -> None:
        for _ in range(1000):
            got = receiver.recv(0)
            if got is None:
                return
            handle(got[0])

    def _drain_until_quiet(self, inspections: Receiver[LedgerEvent], quiet_ms: int = 200) -> None:
        deadline = time.monotonic() + self.config.supervisor.stop_timeout_s
        while time.monotonic() < deadline:
            got = inspections.recv(quiet_ms)
            if got is None:
                return
            self._on_inspection(got[0])

    def _on_inspection(self, event: LedgerEvent) -> None:
        if self.on_inspection is not None and event.kind == "finalised":
            self.on_inspection(event)

    def _shutdown(self, health_out: Sender[Health], inspections: Receiver[LedgerEvent]) -> None:
        timeout = self.config.supervisor.stop_timeout_s
        health = self.health()
        health_out.send(health)
        # Observers learn of the shutdown (and of a FAULT, if that is why) before anything stops: the
        # OPC UA state machine shows Halted or Error from this report.
        self._report(health, time.monotonic(), force=True)
        for name in reversed(self.order):
            self._stop(self.slots[name], timeout)
            if name == "robotlink":
                # The robot link finalises in-flight parts as it stops: show them too, waiting until
                # the stream is quiet (bounded) since the last ones may still be on their way.
                self._drain_until_quiet(inspections)
        if self._fault:
            log.error("stopped with FAULT: %s", self._fault)

    def _report(self, health: Health, now: float, force: bool = False) -> None:
        """Tell the observers about every worker (state, restarts, detail), a few times a second."""
        if self._supervision is None or (now - self._last_report < 0.25 and not force):
            return
        self._last_report = now
        workers = {
            slot.name: WorkerReport(
                state=slot.state,
                pid=slot.process.pid if slot.process is not None else None,
                restarts=slot.total_restarts,
                heartbeat_age_s=round(now - slot.last_heartbeat, 3) if slot.last_heartbeat else None,
                optional=slot.name in OPTIONAL_WORKERS,
                detail=slot.detail,
            )
            for slot in self.slots.values()
        }
        report = SupervisionReport(
            workers=workers,
            model_ready=health.model_ready,
            camera_ready=health.camera_ready,
            fault=self._fault,
            shutting_down=self._stop_requested,
            t=time.time(),
        )
        self._supervision.send(report)

    @property
    def fault(self) -> str | None:
        return self._fault
