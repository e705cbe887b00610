"""Role (b): lineside as Modbus TCP client of the robot (docs/ROBOT-LINK.md).

Lineside writes its block (offsets 0..15) into the robot's general-purpose registers at cfg.base and polls
the robot's block (offsets 16..21) from the same base; the warnings (offset 22, ALARM) are written apart,
after the block and only when they change. One task owns the connection and sends one request
at a time; everything runs on the caller's asyncio loop: no threads.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Awaitable, Callable
from dataclasses import asdict, dataclass

from pymodbus.client import AsyncModbusTcpClient
from pymodbus.exceptions import ModbusException
from pymodbus.pdu import ModbusPDU

from edge.errors import LinesideError
from edge.robotlink import registers as reg
from edge.robotlink.config import RobotLinkConfig
from edge.robotlink.events import Event
from edge.robotlink.handshake import Handshake
from edge.robotlink.registers import StatusBit
from edge.robotlink.ticker import TICK_PERIOD_S, run_ticks

log = logging.getLogger(__name__)


_DEADLINE_MARGIN_S = 0.1  # the application's own bound on a request, beyond pymodbus's timeout
_RESULT_ZEROS = [0] * (reg.RESULT_LAST - reg.RESULT_FIRST + 1)
_UNPUBLISHED_BITS = ~(StatusBit.RESULT_VALID | StatusBit.BUSY)


class _LinkLostError(Exception):
    """The connection failed (no reply in time, closed, garbled): drop it and reconnect."""


@dataclass
class LinkCounters:
    """Link health for the worker's heartbeat detail: a lost link must be visible, never silent."""

    polls: int = 0  # FC3 reads of the robot block answered
    writes: int = 0  # FC16 writes of the lineside block answered
    connect_attempts: int = 0  # connect attempts, failed ones included
    connects: int = 0  # connections made and opened with a cleared block
    reconnects: int = 0  # connections made after a loss
    link_losses: int = 0  # established connections lost (timeout, closed by the robot, garbled reply)
    error_replies: int = 0  # Modbus exception replies (wrong base or unit id, registers not mapped)
    withheld: int = 0  # writes that withheld a result from before the connection (rule 5)
    warning_writes: int = 0  # writes of ALARM (offset 22) answered

    def as_dict(self) -> dict[str, int]:
        return asdict(self)


class RobotLinkClient:
    """A Modbus TCP client of the robot at cfg.robot_host:cfg.robot_port that publishes `handshake`.

    Every connection starts with a cleared block (no result, STATUS without RESULT_VALID and BUSY), and
    nothing registered before that block is ever shown on it: a result from before a reconnect is never
    replayed (rule 5). While disconnected the part in flight cannot be shown; it fails by its budget.
    on_events receives every event of robot writes (ticks: see run_ticks); it must not block.
    """

    def __init__(
        self, cfg: RobotLinkConfig, handshake: Handshake, on_events: Callable[[list[Event]], None]
    ) -> None:
        if cfg.role != "client" or cfg.robot_host is None:
            raise LinesideError("robot_link.role: RobotLinkClient needs role client and robot_host")
        self._cfg = cfg
        self._host = cfg.robot_host
        self._handshake = handshake
        self._on_events = on_events
        self.counters = LinkCounters()
        self._client: AsyncModbusTcpClient | None = None
        self._task: asyncio.Task[None] | None = None
        self._stop = asyncio.Event()
        self._up = False
        self._last_written: list[int] | None = None
        self._last_warnings: list[int] | None = None  # ALARM as last written (or refused) on this connection
        self._seen: list[int] | None = None  # the robot block as last polled by this process
        self._fence = 0  # handshake trigger count when this connection's cleared block was written
        self._error_streak = 0
        self.failed = False  # the link task died of an unexpected error (logged)

    @property
    def connected(self) -> bool:
        """True once connected and the cleared block was written; False while the link is down."""
        return self._up

    def detail(self) -> dict[str, int | bool]:
        """Connection state and counters, for the worker's heartbeat detail."""
        return {"connected": self._up, "failed": self.failed, **self.counters.as_dict()}

    async def start(self) -> None:
        """Start connecting and polling in the background; a robot that is not up yet is not an error."""
        if self._task is not None:
            raise LinesideError("robot link: client already started")
        # reconnect_delay=0: pymodbus must never reconnect on its own, or a request could reach the robot
        # on a new connection before the cleared block does. Reconnects and deadlines are ours.
        self._client = AsyncModbusTcpClient(
            self._host,
            port=self._cfg.robot_port,
            name="robotlink",
            timeout=self._cfg.timeout_s,
            retries=0,
            reconnect_delay=0,
        )
        self._stop = asyncio.Event()
        self._task = asyncio.create_task(self._run(), name="robot link client")
        log.info("robot link client for %s:%d, base %d", self._host, self._cfg.robot_port, self._cfg.base)

    async def stop(self, timeout_s: float = 2.0) -> None:
        """Write the block a last time if connected (e.g. the shutdown ERROR), then close; bounded."""
        task, self._task = self._task, None
        if task is None:
            return
        self._stop.set()
        try:
            await asyncio.wait_for(task, timeout_s)
        except asyncio.TimeoutError:
            log.warning("robot link client did not stop within %.1f s; cancelled", timeout_s)
        finally:
            self._drop(None)

    async def run_ticks(self, stop: asyncio.Event, period_s: float = TICK_PERIOD_S) -> None:
        """Call Handshake.tick() every period_s until stop is set (heartbeat, budget, robot staleness)."""
        await run_ticks(self._handshake, self._on_events, stop, period_s)

    # ---- the connection task ----
    async def _run(self) -> None:
        try:
            await self._keep_connected()
        except Exception:
            # A bug here must not leave a link that looks alive: the robot sees HEARTBEAT stop, and the
            # error is logged now and raised again from stop().
            log.exception("robot link client failed")
            self.failed = True
            raise
        finally:
            self._drop(None)

    async def _keep_connected(self) -> None:
        delay = self._cfg.reconnect_delay_s
        failures = 0
        while not self._stop.is_set():
            try:
                await self._connect()
            except _LinkLostError as exc:
                self._drop(str(exc))
                failures += 1
                level = logging.WARNING if failures == 1 else logging.DEBUG
                log.log(level, "robot link: %s; attempt %d failed, next in %.1f s", exc, failures, delay)
                await self._wait(delay)
                delay = min(2 * delay, self._cfg.reconnect_delay_max_s)
                continue
            delay, failures = self._cfg.reconnect_delay_s, 0
            try:
                await self._serve()
            except _LinkLostError as exc:
                self._drop(str(exc))

    async def _connect(self) -> None:
        """Connect (bounded), then write the cleared block before anything else."""
        client = self._client
        if client is None:
            raise _LinkLostError("client not started")
        self.counters.connect_attempts += 1
        try:
            ok = await asyncio.wait_for(client.connect(), self._cfg.timeout_s + _DEADLINE_MARGIN_S)
        except (asyncio.TimeoutError, OSError, ModbusException) as exc:
            raise _LinkLostError(f"cannot connect to {self._host}:{self._cfg.robot_port}: {exc!r}") from None
        if not ok:
            raise _LinkLostError(f"cannot connect to {self._host}:{self._cfg.robot_port}")
        self._fence = self._handshake.counters.triggers
        self._last_written = None
        self._last_warnings = None  # written at the first publish: a stale ALARM from before is replaced
        if not await self._write(self._cleared_block()):
            raise _LinkLostError("the robot refused the cleared block (exception reply)")
        self._up = True
        self.counters.connects += 1
        if self.counters.connects > 1:
            self.counters.reconnects += 1
        log.info(
            "robot link connected to %s:%d (connection %d)",
            self._host,
            self._cfg.robot_port,
            self.counters.connects,
        )

    async def _serve(self) -> None:
        """Poll and publish every poll period until stop; a last publish on the way out."""
        loop = asyncio.get_running_loop()
        period = self._cfg.poll_period_ms / 1000.0
        due = loop.time()
        while not self._stop.is_set():
            await self._poll()
            await self._publish()
            due = max(due + period, loop.time())  # a slow round never causes a burst of catch-up polls
            await self._wait(due - loop.time())
        await self._publish()

    async def _poll(self) -> None:
        """FC3 read of the robot block; feed what changed to the handshake as one write."""
        base, unit = self._cfg.base, self._cfg.unit_id
        rr = await self._call(
            "FC3 read of the robot block",
            lambda c: c.read_holding_registers(base + reg.ROBOT_FIRST, count=reg.ROBOT_COUNT, device_id=unit),
        )
        if rr is None:
            return
        values = [int(v) for v in rr.registers]
        if len(values) != reg.ROBOT_COUNT:
            raise _LinkLostError(f"FC3 reply has {len(values)} registers, expected {reg.ROBOT_COUNT}")
        self.counters.polls += 1
        self._apply_robot(values)

    def _apply_robot(self, values: list[int]) -> None:
        """Tell the handshake about the registers that changed since the last poll, in one call.

        At first contact the robot's TRIGGER_SEQ still holds what it wrote before this process existed:
        that is not a trigger for this process (robot registers outlive a lineside restart). Its other
        registers (SESSION, CONTROL, RECIPE, ROBOT_HEARTBEAT) are taken as they are.
        """
        if self._seen is None:
            previous = [values[0], *self._handshake.robot_registers()[1:]]
            if values[0]:
                log.info("robot TRIGGER_SEQ %d was set before this process: not a trigger", values[0])
        else:
            previous = self._seen
        self._seen = values
        changed = [i for i in range(reg.ROBOT_COUNT) if values[i] != previous[i]]
        if not changed:
            return
        first, last = changed[0], changed[-1]
        events = self._handshake.on_robot_write(reg.ROBOT_FIRST + first, values[first : last + 1])
        if events:
            self._on_events(events)

    async def _publish(self) -> None:
        """One FC16 write of the whole lineside block if it changed (the heartbeat moves it every period)."""
        block = self._handshake.snapshot()
        if self._handshake.counters.triggers == self._fence:
            # Nothing registered before this connection's cleared block may be shown (rule 5).
            published = self._withheld(block)
            if published != block:
                self.counters.withheld += 1
            block = published
        if block != self._last_written:
            await self._write(block)
        warnings = self._handshake.warnings()
        if warnings != self._last_warnings:
            await self._write_warnings(warnings)

    def _cleared_block(self) -> list[int]:
        """All zeros but STATUS (without RESULT_VALID and BUSY), HEARTBEAT, BOOT_ID and a matching CHECK."""
        snapshot = self._handshake.snapshot()
        block = [0] * reg.LINESIDE_COUNT
        block[reg.STATUS] = snapshot[reg.STATUS] & _UNPUBLISHED_BITS
        block[reg.HEARTBEAT] = snapshot[reg.HEARTBEAT]
        block[reg.BOOT_ID] = snapshot[reg.BOOT_ID]
        block[reg.CHECK] = reg.check_word(block)
        return block

    @staticmethod
    def _withheld(block: list[int]) -> list[int]:
        """The block with its result registers and position cleared and CHECK recomputed."""
        out = list(block)
        out[reg.STATUS] &= _UNPUBLISHED_BITS
        out[reg.RESULT_FIRST : reg.RESULT_LAST + 1] = _RESULT_ZEROS
        out[reg.DEFECT_X] = out[reg.DEFECT_Y] = reg.NO_POSITION
        out[reg.CHECK] = reg.check_word(out)
        return out

    async def _write(self, block: list[int]) -> bool:
        """One FC16 request for the whole block: RESULT_WORD, DEFECT_X/Y and CHECK never travel apart."""
        base, unit = self._cfg.base, self._cfg.unit_id
        rr = await self._call(
            "FC16 write of the lineside block", lambda c: c.write_registers(base, block, device_id=unit)
        )
        if rr is None:
            return False
        if (rr.address, rr.count) != (base, reg.LINESIDE_COUNT):
            raise _LinkLostError(f"FC16 reply echoes {rr.count} registers at {rr.address}, sent 16 at {base}")
        self.counters.writes += 1
        self._last_written = block
        return True

    async def _write_warnings(self, warnings: list[int]) -> None:
        """ALARM (offset 22) on its own FC16, after the block: a warning's write never delays or splits the
        block a result travels in. An exception reply (a robot that maps no register there) is logged and
        not retried until ALARM changes: the STATUS bit ALARM_WARNING, in the block, still says it."""
        base, unit = self._cfg.base, self._cfg.unit_id
        first = base + reg.WARNINGS_FIRST
        rr = await self._call(
            "FC16 write of ALARM", lambda c: c.write_registers(first, warnings, device_id=unit)
        )
        self._last_warnings = list(warnings)
        if rr is None:
            log.warning(
                "robot link: ALARM (register %d) not written; STATUS bit 6 still shows the alarm", first
            )
            return
        if (rr.address, rr.count) != (first, reg.WARNINGS_COUNT):
            raise _LinkLostError(f"FC16 reply echoes {rr.count} registers at {rr.address}, sent 1 at {first}")
        self.counters.warning_writes += 1

    async def _call(
        self, what: str, request: Callable[[AsyncModbusTcpClient], Awaitable[ModbusPDU]]
    ) -> ModbusPDU | None:
        """One request, bounded. Transport failures raise _LinkLostError; an exception reply returns None."""
        client = self._client
        # Checked right before sending, with no await in between: a request is never sent on a
        # connection this task has not opened (pymodbus would reconnect silently for it).
        if client is None or not client.connected:
            raise _LinkLostError(f"{what}: connection closed")
        try:
            rr = await asyncio.wait_for(request(client), self._cfg.timeout_s + _DEADLINE_MARGIN_S)
        except asyncio.TimeoutError:
            raise _LinkLostError(f"{what}: no reply within {self._cfg.timeout_s} s") from None
        except (ModbusException, OSError) as exc:
            raise _LinkLostError(f"{what}: {exc}") from None
        if rr.isError():
            self.counters.error_replies += 1
            self._error_streak += 1
            if self._error_streak == 1:
                log.warning(
                    "robot link: %s got an exception reply (%s): check base %d and unit id %d",
                    what,
                    rr,
                    self._cfg.base,
                    self._cfg.unit_id,
                )
            return None
        self._error_streak = 0
        return rr

    def _drop(self, why: str | None) -> None:
        """Close the connection (why None: on purpose); the next one starts with a cleared block again."""
        if self._up and why is not None:
            self.counters.link_losses += 1
            log.warning("robot link lost: %s", why)
            # The part in flight can no longer reach the robot: fail it in the ledger too, so the
            # record can never say ACCEPT for a part the robot rejected at its deadline.
            self._on_events(self._handshake.link_lost(why))
        self._up = False
        self._last_written = None
        self._last_warnings = None
        if self._client is not None:
            self._client.close()

    async def _wait(self, seconds: float) -> None:
        """Sleep that ends early on stop."""
        if seconds <= 0:
            return
        with contextlib.suppress(asyncio.TimeoutError):
            await asyncio.wait_for(self._stop.wait(), seconds)
