"""The line interlock output (ROBOT-LINK.md rule 3): a PLC coil/register or a local command that stops the
line while the robot's heartbeat is stale. It starts raised (fail closed), is re-asserted periodically
and retried with backoff on failure, and never blocks the robot link's event loop.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import subprocess
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass
from typing import Annotated, Literal, Protocol

from pydantic import BaseModel, ConfigDict, Field, model_validator
from pymodbus.client import AsyncModbusTcpClient
from pymodbus.exceptions import ModbusException

from edge.errors import LinesideError

log = logging.getLogger(__name__)

FAILURE_LOG_PERIOD_S = 30.0  # while an output keeps failing, one log line per period


class _InterlockBase(BaseModel):
    model_config = ConfigDict(extra="forbid")

    reassert_period_ms: int = Field(
        1000,
        ge=0,
        le=600_000,
        description="Drive the current state again this often (a PLC may have restarted and lost it); "
        "0: only on a change and on retries.",
    )
    retry_min_ms: int = Field(200, ge=10, le=60_000, description="First retry delay after a failed output.")
    retry_max_ms: int = Field(
        5000, ge=10, le=600_000, description="Retry delays double up to this after repeated failures."
    )

    @model_validator(mode="after")
    def _check_retry(self) -> _InterlockBase:
        if self.retry_min_ms > self.retry_max_ms:
            raise ValueError(
                f"interlock.retry_min_ms ({self.retry_min_ms}) > retry_max_ms ({self.retry_max_ms})"
            )
        return self


class NoInterlockConfig(_InterlockBase):
    """No interlock output: a raised interlock is only logged and shown in STATUS (bit4 clear, ERROR)."""

    kind: Literal["none"] = Field("none", description="none: no line interlock output.")


class ModbusInterlockConfig(_InterlockBase):
    """Write a coil or holding register on a PLC that it wires to the line's run permit."""

    kind: Literal["modbus"] = Field(
        "modbus", description="modbus: write a coil or holding register on a PLC."
    )
    host: str = Field(..., min_length=1, description="The PLC's address.")
    port: int = Field(502, ge=1, le=65535, description="The PLC's Modbus TCP port.")
    unit_id: int = Field(1, ge=0, le=255, description="Modbus unit id (device id) of the PLC.")
    table: Literal["coil", "holding_register"] = Field(
        "coil", description="coil: FC5 write single coil; holding_register: FC6 write single register."
    )
    address: int = Field(..., ge=0, le=65535, description="PDU address (0-based) of the coil or register.")
    raised_value: int = Field(
        0,
        ge=0,
        le=65535,
        description="Written while the interlock is raised (stop the line). 0 by default, so a PLC that "
        "restarts with cleared memory reads 'raised' until lineside says otherwise.",
    )
    lowered_value: int = Field(
        1, ge=0, le=65535, description="Written while the robot is alive (run permit)."
    )
    timeout_ms: int = Field(300, ge=20, le=10_000, description="Bound on connecting and on each request.")

    @model_validator(mode="after")
    def _check_values(self) -> ModbusInterlockConfig:
        if self.raised_value == self.lowered_value:
            raise ValueError("interlock.raised_value and lowered_value must differ")
        if self.table == "coil" and {self.raised_value, self.lowered_value} != {0, 1}:
            raise ValueError("interlock.raised_value/lowered_value of a coil must be 0 and 1")
        return self


class CommandInterlockConfig(_InterlockBase):
    """Run a local program (no shell) to raise or lower the interlock, e.g. a GPIO or relay tool."""

    kind: Literal["command"] = Field(
        "command", description="command: run a local program on raise and lower."
    )
    raise_argv: list[str] = Field(..., min_length=1, description="argv run to raise (stop the line).")
    lower_argv: list[str] = Field(..., min_length=1, description="argv run to lower (run permit on).")
    timeout_ms: int = Field(
        2000, ge=50, le=60_000, description="A run longer than this is killed and failed."
    )


AnyInterlockConfig = NoInterlockConfig | ModbusInterlockConfig | CommandInterlockConfig
InterlockConfig = Annotated[AnyInterlockConfig, Field(discriminator="kind")]
"""robot_link.interlock: one of the three, chosen by `kind`."""


class InterlockError(LinesideError):
    """The interlock output could not be driven."""


class InterlockOutput(Protocol):
    """A way to drive the interlock. drive() raises InterlockError on any failure."""

    @property
    def timeout_s(self) -> float: ...

    async def drive(self, raised: bool) -> None: ...

    async def close(self) -> None: ...


class ModbusInterlockOutput:
    """Writes the coil/register with a pymodbus client: one connection, re-opened after any failure."""

    def __init__(self, cfg: ModbusInterlockConfig) -> None:
        self._cfg = cfg
        self._client: AsyncModbusTcpClient | None = None
        self.where = f"PLC {cfg.host}:{cfg.port} unit {cfg.unit_id} {cfg.table} {cfg.address}"

    @property
    def timeout_s(self) -> float:
        return 2 * self._cfg.timeout_ms / 1000.0  # connect + one request

    async def drive(self, raised: bool) -> None:
        cfg = self._cfg
        value = cfg.raised_value if raised else cfg.lowered_value
        try:
            client = await self._connected()
            if cfg.table == "coil":
                rr = await client.write_coil(cfg.address, bool(value), device_id=cfg.unit_id)
            else:
                rr = await client.write_register(cfg.address, value, device_id=cfg.unit_id)
        except (ModbusException, OSError, asyncio.TimeoutError) as exc:
            await self.close()
            raise InterlockError(f"interlock: writing {value} to {self.where} failed: {exc}") from None
        if rr.isError():
            raise InterlockError(f"interlock: {self.where} answered {rr} to writing {value}")

    async def _connected(self) -> AsyncModbusTcpClient:
        if self._client is not None and self._client.connected:
            return self._client
        await self.close()
        timeout_s = self._cfg.timeout_ms / 1000.0
        # retries=0 and no automatic reconnect: the retry policy is LineInterlock's, with backoff.
        client = AsyncModbusTcpClient(
            self._cfg.host, port=self._cfg.port, timeout=timeout_s, retries=0, reconnect_delay=0
        )
        self._client = client
        if not await asyncio.wait_for(client.connect(), timeout_s + 0.1):
            raise InterlockError(f"interlock: cannot connect to {self.where}")
        return client

    async def close(self) -> None:
        client, self._client = self._client, None
        if client is not None:
            client.close()


class CommandInterlockOutput:
    """Runs raise_argv or lower_argv (no shell); a non-zero exit or a timeout is a failure."""

    def __init__(self, cfg: CommandInterlockConfig) -> None:
        self._cfg = cfg

    @property
    def timeout_s(self) -> float:
        return self._cfg.timeout_ms / 1000.0 + 1.0  # the run, plus reaping a killed process

    async def drive(self, raised: bool) -> None:
        argv = self._cfg.raise_argv if raised else self._cfg.lower_argv
        try:
            proc = await asyncio.create_subprocess_exec(
                *argv, stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE
            )
        except OSError as exc:
            raise InterlockError(f"interlock: cannot run {argv[0]!r}: {exc}") from None
        try:
            _, stderr = await asyncio.wait_for(proc.communicate(), self._cfg.timeout_ms / 1000.0)
        except asyncio.TimeoutError:
            proc.kill()
            with contextlib.suppress(asyncio.TimeoutError):
                await asyncio.wait_for(proc.wait(), 1.0)
            raise InterlockError(
                f"interlock: {argv[0]!r} ran longer than {self._cfg.timeout_ms} ms and was killed"
            ) from None
        if proc.returncode != 0:
            lines = stderr.decode(errors="replace").strip().splitlines()
            tail = f": {lines[-1]}" if lines else ""
            raise InterlockError(f"interlock: {argv[0]!r} exited with {proc.returncode}{tail}")

    async def close(self) -> None:
        return None


@dataclass
class InterlockCounters:
    """How the interlock output is doing; every failure is counted."""

    drives: int = 0  # successful drives (changes and re-assertions)
    failures: int = 0  # failed drives, all retried
    consecutive_failures: int = 0
    changes: int = 0  # raise/lower requests that changed the wanted state

    def as_dict(self) -> dict[str, int]:
        return asdict(self)


def interlock_output(cfg: AnyInterlockConfig) -> InterlockOutput | None:
    """The output for a config; None for kind "none"."""
    if isinstance(cfg, ModbusInterlockConfig):
        return ModbusInterlockOutput(cfg)
    if isinstance(cfg, CommandInterlockConfig):
        return CommandInterlockOutput(cfg)
    return None


class LineInterlock:
    """Keeps an interlock output at the wanted state: raised from the start until set(False, ...).

    set() never blocks (it is called inside Modbus request handling); run() does the I/O on the loop.
    """

    def __init__(
        self,
        cfg: AnyInterlockConfig,
        output: InterlockOutput,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._cfg = cfg
        self._output = output
        self._clock = clock
        self._raised = True  # fail closed: nothing has proven the robot alive yet
        self._reason = "starting: no robot heartbeat seen yet"
        self.applied: bool | None = None  # the state the output last confirmed; None: unknown
        self.last_error: str | None = None
        self.counters = InterlockCounters()
        self._wake = asyncio.Event()
        self._one_drive = asyncio.Lock()  # run() and close() never drive the output concurrently
        self._closed = False
        self._last_failure_log = float("-inf")

    @property
    def raised(self) -> bool:
        """The wanted state (what the output is being driven to)."""
        return self._raised

    def set(self, raised: bool, reason: str) -> None:
        """Want the interlock raised or lowered; run() drives it at once."""
        changed = raised != self._raised
        self._raised, self._reason = raised, reason
        if changed:
            self.counters.changes += 1
            self._wake.set()

    def status(self) -> dict[str, object]:
        """For status pages: wanted and confirmed state, counters and the last error."""
        return {
            "raised": self._raised,
            "applied": self.applied,
            "reason": self._reason,
            "last_error": self.last_error,
            **self.counters.as_dict(),
        }

    async def run(self, stop: asyncio.Event) -> None:
        """Drive the wanted state now, again on every change, every reassert period, and after failures."""
        retry_s = self._cfg.retry_min_ms / 1000.0
        while not stop.is_set() and not self._closed:
            self._wake.clear()
            if await self._drive_once(self._raised):
                retry_s = self._cfg.retry_min_ms / 1000.0
                period = self._cfg.reassert_period_ms / 1000.0
                delay: float | None = period if period > 0 else None
            else:
                delay, retry_s = retry_s, min(2 * retry_s, self._cfg.retry_max_ms / 1000.0)
            await _wait_any(self._wake, stop, delay)

    async def close(self) -> None:
        """Stopping: drive "raised" once (lineside no longer watches the robot), then close the output."""
        self._closed = True
        self._raised, self._reason = True, "the robot link is stopping"
        self._wake.set()
        await self._drive_once(True)
        await self._output.close()

    async def _drive_once(self, raised: bool) -> bool:
        async with self._one_drive:  # held at most one bounded drive
            try:
                await asyncio.wait_for(self._output.drive(raised), self._output.timeout_s)
            except (InterlockError, asyncio.TimeoutError) as exc:
                timeout = f"interlock: no answer within {self._output.timeout_s:.1f} s"
                self._failed(raised, str(exc) or timeout)
                if isinstance(exc, asyncio.TimeoutError):
                    await self._output.close()  # the cancelled drive may have left a half-open connection
                return False
            self._succeeded(raised)
            return True

    def _succeeded(self, raised: bool) -> None:
        if self.counters.consecutive_failures:
            log.warning("interlock output recovered after %d failures", self.counters.consecutive_failures)
        if self.applied != raised:
            log.info("interlock output %s (%s)", "RAISED" if raised else "lowered", self._reason)
        self.applied = raised
        self.last_error = None
        self.counters.drives += 1
        self.counters.consecutive_failures = 0

    def _failed(self, raised: bool, error: str) -> None:
        self.applied = None  # a failed write may or may not have reached the PLC
        self.last_error = error
        self.counters.failures += 1
        self.counters.consecutive_failures += 1
        now = self._clock()
        if self.counters.consecutive_failures == 1 or now - self._last_failure_log >= FAILURE_LOG_PERIOD_S:
            self._last_failure_log = now
            log.error(
                "%s (driving %s; %d failures in a row, retrying)",
                error,
                "raised" if raised else "lowered",
                self.counters.consecutive_failures,
            )


async def _wait_any(event: asyncio.Event, stop: asyncio.Event, timeout_s: float | None) -> None:
    """Wait until either event is set or timeout_s (None: no timeout) passes."""
    waiters = [asyncio.ensure_future(event.wait()), asyncio.ensure_future(stop.wait())]
    try:
        await asyncio.wait(waiters, timeout=timeout_s, return_when=asyncio.FIRST_COMPLETED)
    finally:
        for waiter in waiters:
            waiter.cancel()


def line_interlock(cfg: AnyInterlockConfig) -> LineInterlock | None:
    """The LineInterlock for a config; None for kind "none" (nothing to drive)."""
    output = interlock_output(cfg)
    return LineInterlock(cfg, output) if output is not None else None
