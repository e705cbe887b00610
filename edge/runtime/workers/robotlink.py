"""The robot link worker: the Modbus TCP server, the part ledger, and the free-running trigger.

It is small and must always answer, so it runs one asyncio loop that never blocks: the Modbus
server, results from inference, health from the supervisor, and heartbeats. Every triggered part is
registered by the handshake and finalised exactly once; each step is sent to the recorder and
published as JSON for other consumers.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable
from contextlib import suppress
from typing import TypeVar

import zmq
import zmq.asyncio

from edge.errors import ErrorCode
from edge.records.journal import JournalWriter
from edge.robotlink.client import RobotLinkClient
from edge.robotlink.events import (
    AlarmsAckRequested,
    Event,
    Finalised,
    InterlockChanged,
    RecipeRequested,
    ResultDropped,
    TriggerRequested,
)
from edge.robotlink.handshake import Handshake
from edge.robotlink.interlock import line_interlock
from edge.robotlink.server import RobotLinkServer
from edge.runtime.messages import (
    AlarmAck,
    AlarmState,
    Health,
    LedgerEvent,
    Message,
    PartArrival,
    Result,
    Trigger,
)
from edge.runtime.transport import Sender, TransportError, decode_parts
from edge.runtime.workers.base import Worker

log = logging.getLogger(__name__)

M = TypeVar("M", bound=Message)
FLUSH_MS = 1000  # well inside the supervisor's stop_timeout_s
# free_run: parts in flight at once, so that capture of the next part overlaps inference of this one
# (pipelining). Each part keeps its own (boot_id, seq); a result applies only to its own part.
FREE_RUN_IN_FLIGHT = 2
# The alarms worker re-sends its state every second; a state older than this is no longer known to hold
# (that worker stopped or was given up), so ALARM returns to 0 rather than show a stale warning.
ALARM_STALE_S = 5.0


class RobotLinkWorker(Worker):
    name = "robotlink"

    def main(self) -> None:
        asyncio.run(self._amain())

    async def _amain(self) -> None:
        cfg = self.config
        self.handshake = Handshake(cfg.robot_link, clock=time.monotonic)
        # Every ledger event also goes to the journal, so a killed recorder loses no final verdict.
        self.journal = JournalWriter(cfg.records.dir, self.handshake.boot_id)
        self.handshake.set_recipe(cfg.default_recipe)
        self.recipe = cfg.default_recipe
        self.inflight: dict[int, Trigger] = {}
        self.results: dict[int, Result] = {}
        self.finalised = 0
        self.dropped = 0
        self.health: Health | None = None
        self._alarms_at = 0.0
        self.part_done = asyncio.Event()
        self._arriving_frame: int | None = None
        ep = self.endpoints
        self.triggers: Sender[Trigger] = Sender(self.zmq, ep.triggers, Trigger, hwm=100)
        self.ledger: Sender[LedgerEvent] = Sender(self.zmq, ep.ledger, LedgerEvent, hwm=100000)
        self.publisher: Sender[LedgerEvent] = Sender(
            self.zmq, ep.publish, LedgerEvent, bind=True, pub=True, hwm=10000
        )
        # CONTROL ACK_ALARMS to the alarms worker; immediate: with that worker down a send fails now (and is
        # logged) instead of waiting in a queue for a worker that may never come.
        self.alarm_acks: Sender[AlarmAck] | None = (
            Sender(self.zmq, ep.acks, AlarmAck, hwm=10, immediate=True) if cfg.spc.enabled else None
        )
        self.acks_sent = self.acks_lost = 0
        # The stream's subscribers lost their connection if this is a restart: no part until they are back.
        grace_s = cfg.publish.resubscribe_grace_ms / 1000.0
        if grace_s > 0:
            self.handshake.set_stream_ready(False)
            asyncio.get_running_loop().call_later(grace_s, self.handshake.set_stream_ready, True)
        # The line interlock output (None for kind none) starts raised: fail closed until the robot is seen.
        self.interlock = line_interlock(cfg.robot_link.interlock)
        self.server: RobotLinkServer | RobotLinkClient = (
            RobotLinkClient(cfg.robot_link, self.handshake, self.apply)
            if cfg.robot_link.role == "client"
            else RobotLinkServer(cfg.robot_link, self.handshake, self.apply)
        )
        inputs = self._open_inputs()
        try:
            await self.server.start()
            self.state = "ready"
            log.info("robot link %s, BOOT_ID %d", self._describe_link(), self.handshake.boot_id)
            await self._run(*inputs)
        finally:
            # Parts still in flight are failed, recorded and published before the server goes.
            self.apply(self.handshake.shutdown())
            await self.server.stop()
            if self.interlock is not None:
                await self.interlock.close()  # raised: nothing watches the robot any more
            for sock in inputs:
                sock.close(0)
            self.triggers.close()
            if self.alarm_acks is not None:
                self.alarm_acks.close()
            # The last final verdicts (the shutdown's own included) must reach the recorder and the
            # subscribers: flush them, bounded, rather than drop them with the socket.
            self.ledger.close(flush_ms=FLUSH_MS)
            self.publisher.close(flush_ms=FLUSH_MS)
            self.journal.close()

    def _open_inputs(
        self,
    ) -> tuple[zmq.asyncio.Socket, zmq.asyncio.Socket, zmq.asyncio.Socket, zmq.asyncio.Socket]:
        """Results (capture/inference), health (supervisor), hardware-trigger arrivals (capture) and the
        line alarms' state (alarms worker)."""
        actx = zmq.asyncio.Context.shadow(self.zmq)
        ep = self.endpoints
        results, health, arrivals = actx.socket(zmq.PULL), actx.socket(zmq.SUB), actx.socket(zmq.PULL)
        alarms = actx.socket(zmq.SUB)
        for sock in (results, health, arrivals, alarms):
            sock.setsockopt(zmq.LINGER, 0)
        for sock in (health, alarms):
            sock.setsockopt(zmq.CONFLATE, 1)  # only the newest health or alarm state matters
            sock.setsockopt(zmq.SUBSCRIBE, b"")
        results.bind(ep.results)
        health.connect(ep.health)
        arrivals.bind(ep.arrivals)
        alarms.connect(ep.alarms)  # connect: the alarms worker may be off, late or restarting
        return results, health, arrivals, alarms

    async def _run(
        self,
        results: zmq.asyncio.Socket,
        health: zmq.asyncio.Socket,
        arrivals: zmq.asyncio.Socket,
        alarms: zmq.asyncio.Socket,
    ) -> None:
        stop = asyncio.Event()
        tasks = [
            asyncio.create_task(self.server.run_ticks(stop)),
            asyncio.create_task(self._receive(results, Result, self.endpoints.results, self._on_result)),
            asyncio.create_task(self._receive(health, Health, self.endpoints.health, self._on_health)),
            asyncio.create_task(
                self._receive(arrivals, PartArrival, self.endpoints.arrivals, self._on_arrival)
            ),
            asyncio.create_task(self._free_run()),
            asyncio.create_task(self._receive(alarms, AlarmState, self.endpoints.alarms, self._on_alarms)),
        ]
        if self.interlock is not None:
            tasks.append(asyncio.create_task(self.interlock.run(stop)))
        try:
            await self._supervise(stop)
        finally:
            stop.set()
            for task in tasks:
                task.cancel()
            for task in tasks:
                with suppress(asyncio.CancelledError):
                    await task

    def _describe_link(self) -> str:
        link = self.config.robot_link
        if link.role == "client":
            return f"client of the robot at {link.robot_host}:{link.robot_port} (base {link.base})"
        return f"Modbus server on {link.host}:{link.port} (base {link.base})"

    def _link_detail(self) -> dict[str, object]:
        server = self.server
        detail: dict[str, object] = (
            dict(server.detail()) if isinstance(server, RobotLinkClient) else {"connections": server.stats()}
        )
        if isinstance(server, RobotLinkClient) and server.failed:
            # The link task died: without it no result reaches the robot; let the supervisor restart us.
            raise RuntimeError("robot link client task failed")
        if self.interlock is not None:
            detail["interlock_output"] = self.interlock.status()
        return detail

    async def _supervise(self, stop: asyncio.Event) -> None:
        """Heartbeat from the loop itself; return when asked to stop or the job is done."""
        while not self.should_stop():
            if self.handshake.alarm_word and time.monotonic() - self._alarms_at > ALARM_STALE_S:
                self.handshake.alarm_word = 0
            self._update_state()
            self.beat()
            await asyncio.sleep(min(0.05, self._interval / 2))

    def _update_state(self) -> None:
        limit = self.config.max_parts
        ended = self.health is not None and self._source_ended()
        finished = (limit is not None and self.finalised >= limit) or (
            ended and self.config.trigger.mode == "free_run"
        )
        if finished and self.handshake.in_flight_part_seq is None:
            self.state = "done"
        self.detail = {
            "boot_id": self.handshake.boot_id,
            "finalised": self.finalised,
            "results_dropped": self.dropped,
            "ready": self.handshake.ready,
            "interlock": self.handshake.interlock_raised,
            "link": self._link_detail(),
            "journal": self.journal.stats(),
            "alarm_acks": {"sent": self.acks_sent, "not_delivered": self.acks_lost},
            **self.handshake.counters.as_dict(),
        }

    def _source_ended(self) -> bool:
        return self.health is not None and self.health.source_ended

    # -- events from the handshake -----------------------------------------------------------------
    def apply(self, events: list[Event]) -> None:
        """Turn handshake events into messages. Called inside Modbus request handling: never blocks."""
        for event in events:
            if isinstance(event, TriggerRequested):
                self._on_trigger(event)
            elif isinstance(event, Finalised):
                self._on_finalised(event)
            elif isinstance(event, ResultDropped):
                self.dropped += 1
                self.results.pop(event.part_seq, None)
                log.warning("result for part %d dropped: %s", event.part_seq, event.reason)
            elif isinstance(event, InterlockChanged):
                log.warning("line interlock %s: %s", "RAISED" if event.raised else "lowered", event.reason)
                if self.interlock is not None:
                    self.interlock.set(event.raised, event.reason)  # never blocks: run() drives it
            elif isinstance(event, RecipeRequested):
                self._select_recipe(event.number)
            elif isinstance(event, AlarmsAckRequested):
                self._acknowledge_alarms()

    def _acknowledge_alarms(self) -> None:
        """CONTROL ACK_ALARMS rose: pass it on to the alarms worker, never blocking. A failure is logged and
        counted; the robot sees it as ALARM staying set, and no part or register of a part is touched."""
        if self.alarm_acks is None:
            log.info("robot acknowledged the line alarms, but they are off (spc.enabled: false)")
            return
        asked = self.acks_sent + self.acks_lost + 1
        ack = AlarmAck(id=f"robot-{self.handshake.boot_id}-{asked}", source="robot", t=time.time())
        if self.alarm_acks.send(ack):
            self.acks_sent += 1
            log.info("robot acknowledged the line alarms (CONTROL ACK_ALARMS)")
        else:
            self.acks_lost += 1
            log.warning("robot's alarm acknowledgement not delivered: the alarms worker is not running")

    def _select_recipe(self, number: int) -> None:
        """RECIPE from the robot; 0 means the configured default. Takes effect from the next trigger
        (a recipe written in the same request as a trigger applies to that trigger's part)."""
        chosen = number or self.config.default_recipe
        recipe = self.config.recipe(chosen)
        if recipe is None:
            # Not a silent keep: ACTIVE_RECIPE echoes the request and every part is an ERROR (recipe).
            log.error("recipe %d requested but not configured: parts will be FAULT (recipe)", chosen)
        else:
            log.info("recipe %d (%s) selected", chosen, recipe.name)
        self.recipe = chosen
        self.handshake.set_recipe(chosen)

    def _trigger_of(self, seq: int, part_seq: int, boot_id: int, t: float, source: str) -> Trigger:
        return Trigger(
            boot_id=boot_id,
            seq=part_seq,
            trigger_seq=seq,
            part_id=str(seq) if source == "robot" else None,
            recipe=self.recipe,
            t_trigger=t,
            wall_trigger=time.time() - (time.monotonic() - t),
            budget_ms=self.config.robot_link.publish_budget_ms,
            frame_ref=self._arriving_frame if source == "internal" else None,
        )

    def _on_trigger(self, event: TriggerRequested) -> None:
        trigger = self._trigger_of(event.seq, event.part_seq, event.boot_id, event.t, event.source)
        self.inflight[event.part_seq] = trigger
        self._send_ledger(LedgerEvent(kind="triggered", trigger=trigger))
        if not self.triggers.send(trigger):
            fault = Result.fault(trigger, ErrorCode.OVERLOAD, "capture is not taking triggers")
            self._on_result(fault)
        self.journal.append(LedgerEvent(kind="triggered", trigger=trigger))  # after the send: off its path

    def _on_finalised(self, event: Finalised) -> None:
        trigger = self.inflight.pop(event.part_seq, None)
        result = self.results.pop(event.part_seq, None)
        if trigger is None:
            # Refused at the trigger (not enabled, not READY, robot heartbeat stale): it was never
            # sent for capture, but it is a triggered part and gets its record all the same.
            trigger = self._trigger_of(
                event.seq, event.part_seq, event.boot_id, event.t_trigger, event.source
            )
            self._send_ledger(LedgerEvent(kind="triggered", trigger=trigger))
        ledger_event = LedgerEvent(
            kind="finalised",
            trigger=trigger,
            verdict=event.verdict,
            reasons=event.reasons,
            error_code=event.error,
            late=event.late,
            latency_ms=round(event.latency_ms, 3),
            wall_decided=time.time(),
            result=result,
        )
        self._send_ledger(ledger_event)
        self.publisher.send(ledger_event)
        self.journal.append(ledger_event)  # after the registers and the sends: no latency added
        self.finalised += 1
        self.part_done.set()

    def _send_ledger(self, event: LedgerEvent) -> None:
        if not self.ledger.send(event):
            log.error("recorder queue full: record for part %d not sent", event.trigger.seq)

    # -- inputs --------------------------------------------------------------------------------------
    def _on_result(self, result: Result) -> None:
        part_seq = result.trigger.seq
        if part_seq in self.inflight:
            self.results[part_seq] = result
        latency_ms = (time.monotonic() - result.trigger.t_trigger) * 1000.0
        self.apply(self.handshake.on_result(part_seq, result.decision(), latency_ms, result.trigger.boot_id))

    async def _receive(
        self, sock: zmq.asyncio.Socket, message_type: type[M], endpoint: str, handle: Callable[[M], None]
    ) -> None:
        """Decode each message and hand it on; a malformed one is logged and skipped, never fatal."""
        while True:
            parts = await sock.recv_multipart()
            try:
                message, _ = decode_parts(message_type, parts, endpoint)
            except TransportError as exc:
                log.error("%s", exc)
                continue
            handle(message)

    def _on_health(self, health: Health) -> None:
        self.health = health
        recorder = health.workers.get("recorder", "ready")
        self.handshake.records_warning = recorder not in ("ready", "done") or self.journal.failing
        self.apply(self.handshake.set_ready(health.model_ready, health.camera_ready))

    def _on_alarms(self, state: AlarmState) -> None:
        """The line alarms in force: STATUS bit ALARM_WARNING and ALARM (warnings; no verdict changes)."""
        self.handshake.alarm_word = state.word
        self._alarms_at = time.monotonic()

    def _on_arrival(self, arrival: PartArrival) -> None:
        """Hardware trigger: every frame the camera announces is registered as a part, by the same path
        as any trigger; its trigger names the frame, so a part can only ever be judged on its own frame."""
        if self.config.trigger.mode != "hardware":
            return
        self._arriving_frame = arrival.frame_ref
        try:
            self.apply(self.handshake.trigger_internal())
        finally:
            self._arriving_frame = None

    async def _free_run(self) -> None:
        """free_run mode: trigger the next part once fewer than FREE_RUN_IN_FLIGHT parts are in flight
        and the takt has passed."""
        if self.config.trigger.mode != "free_run":
            return
        self.handshake.set_internal_depth(FREE_RUN_IN_FLIGHT)
        takt_s = self.config.trigger.takt_ms / 1000.0
        while not self.handshake.ready:
            await asyncio.sleep(0.02)
        limit = self.config.max_parts
        started = 0
        while limit is None or started < limit:
            if self._source_ended() or self.handshake.in_flight_count >= FREE_RUN_IN_FLIGHT:
                self.part_done.clear()
                with suppress(asyncio.TimeoutError):
                    await asyncio.wait_for(self.part_done.wait(), timeout=0.05)
                if self._source_ended():
                    return
                continue
            next_at = time.monotonic() + takt_s
            self.apply(self.handshake.trigger_internal())
            started += 1
            await asyncio.sleep(max(0.0, next_at - time.monotonic()))
